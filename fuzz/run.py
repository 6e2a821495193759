"""Run the fuzz targets under atheris and print their figures (what ``make fuzz`` runs).

    python -m fuzz.run [--runs 1000000] [--timeout 10] [codec intake snapshot]

Each target runs in its own process (libFuzzer owns it and ends it), one after
the other, from a fresh corpus: the valid seed frames (seeds.py) written to
build/fuzz/<target>/seeds, new inputs kept in build/fuzz/<target>/corpus, and
any crashing or hanging input (libFuzzer's ``crash-*``, ``timeout-*``,
``oom-*`` files) in build/fuzz/<target>/. A target's progress is printed every
100,000 inputs; at the end, one line a target:

    target  inputs  seconds  crashes  hangs  reject codes reached

An input that hangs for ``--timeout`` seconds is a hang. Replay one saved
input with: python -m fuzz.atheris_main TARGET build/fuzz/TARGET/crash-...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack

from zex.protocol.reasons import Reason

from . import shapes
from .targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "fuzz"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def _escape(raw: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in raw)


def run_one(name: str, runs: int, timeout: int) -> dict:
    work = OUT / name
    shutil.rmtree(work, ignore_errors=True)
    seeds, corpus = work / "seeds", work / "corpus"
    seeds.mkdir(parents=True)
    corpus.mkdir()
    for i, data in enumerate(TARGETS[name]().corpus()):
        (seeds / f"seed-{i:04d}").write_bytes(data)
    # A libFuzzer dictionary: the field names, words and edge decimals as msgpack strings, so
    # a mutation can swap "16" for "100" in a valid order (shapes.py's own lists).
    target = TARGETS[name]()
    tokens = sorted({*target.names, *shapes.WORDS, *shapes.DECIMALS} - {""})
    (work / "dict").write_text(
        "".join(f'"{_escape(msgpack.packb(t))}"\n' for t in tokens if len(t) < 64)
    )
    stats = work / "stats.json"
    cmd = [
        sys.executable,
        "-m",
        "fuzz.atheris_main",
        name,
        f"-runs={runs}",
        f"-timeout={timeout}",
        "-max_len=8192",  # past the 4096-byte frame limit
        "-len_control=0",  # long inputs from the start: the seeds are up to 1 KiB
        "-rss_limit_mb=2048",
        "-seed=1",
        f"-dict={work / 'dict'}",
        f"-artifact_prefix={work}/",
        str(corpus),
        str(seeds),
    ]
    env = dict(os.environ, ZEX_FUZZ_STATS=str(stats), PYTHONPATH=str(ROOT))
    print(f"{name}: {runs:,} inputs, seeds in {seeds}", flush=True)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    done = None
    log = (work / "libfuzzer.log").open("w")
    for line in proc.stdout:
        log.write(line)
        if line.startswith("  "):  # the target's own progress lines
            print(line, end="", flush=True)
        elif "Uncaught Python exception" in line or "ALARM" in line or "ERROR:" in line:
            print(f"  {name}: {line.strip()}", flush=True)
        m = _DONE.search(line)
        if m:
            done = (int(m.group(1)), int(m.group(2)))
    rc = proc.wait()
    log.close()
    figures = json.loads(stats.read_text()) if stats.exists() else {"codes": [], "known": {}}
    crashes = sorted(p.name for p in work.glob("crash-*")) + sorted(
        p.name for p in work.glob("oom-*")
    )
    hangs = sorted(p.name for p in work.glob("timeout-*"))
    return {
        "target": name,
        "inputs": done[0] if done else figures.get("inputs", 0),
        "seconds": done[1] if done else figures.get("seconds", 0),
        "crashes": crashes,
        "hangs": hangs,
        "codes": figures["codes"],
        "known": figures["known"],
        "rc": rc,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    ap.add_argument("--timeout", type=int, default=10, help="seconds an input may take")
    ap.add_argument("targets", nargs="*", default=list(TARGETS), help=", ".join(TARGETS))
    args = ap.parse_args()
    results = [run_one(name, args.runs, args.timeout) for name in args.targets]
    print(f"\n{'target':9s} {'inputs':>10s} {'seconds':>8s} {'crashes':>8s} {'hangs':>6s}  codes")
    for r in results:
        names = ", ".join(f"{c} {Reason(c).name}" for c in r["codes"])
        print(
            f"{r['target']:9s} {r['inputs']:>10,} {r['seconds']:>8} {len(r['crashes']):>8} "
            f"{len(r['hangs']):>6}  {len(r['codes'])}: {names}"
        )
        for finding, n in r["known"].items():
            print(f"{'':9s} known finding (xfail test), {n:,} inputs: {finding}")
        for f in r["crashes"] + r["hangs"]:
            print(f"{'':9s} saved input: {OUT / r['target'] / f}")
    bad = any(r["crashes"] or r["hangs"] or r["rc"] != 0 for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
