"""Matching with the audit logger attached versus detached, in one run.

    python bench/logger_bench.py [--commands 100000] [--window 500] [--rounds 3] [--quick]

Real node processes on tcp loopback, a fresh data dir for every run so each
sees the same workload: the matcher alone (detached), then the matcher with
a logger node consuming its event stream and writing the audit trail
(attached, logger fsync "batch"), alternated ``--rounds`` times. The feeder
is this process (bench/md_bench.py's Feeder: a DEALER b"gw1" with a window
of W commands in flight, the mixed stream of nodes/matcher/workload.py);
throughput is commands/s from the first send to the last ack. The logger's
trail is verified after each attached run (every batch, seq 1..N), so a
logger that kept up by skipping would fail the run. Target: attached >= 90 %
of detached.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_bench import Proc, free_port, say
from md_bench import Feeder, stream_frames

from zex.nodes.logger.query import verify

CONFIG = """\
[matcher]
bind = "tcp://127.0.0.1:{p[0]}"
events_bind = "tcp://127.0.0.1:{p[1]}"
replay_bind = "tcp://127.0.0.1:{p[2]}"
data_dir = "{dir}/data"
fsync = "batch"
digest_every = 0
snapshot_every = 0
metrics_bind = ""

[logger]
bind = "tcp://127.0.0.1:{p[3]}"
data_dir = "{dir}/trail"
fsync = "batch"
metrics_bind = "127.0.0.1:{p[4]}"

[[instruments]]
symbol = "XYZ"
tick = "0.01"
lot = "1"
max_price = "100000"
reference_price = "100"
"""


def logger_seq(port: int) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("zex_logger_matcher_seq "):
                return int(float(line.split()[1]))
    return 0


def run(tmp: Path, tag: str, attached: bool, frames: list[bytes], window: int) -> dict:
    d = tmp / tag
    d.mkdir()
    ports = [free_port() for _ in range(5)]
    cfg = d / "zex.toml"
    cfg.write_text(CONFIG.format(p=ports, dir=d))
    procs = {
        "matcher": Proc(
            "matcher",
            ["-m", "zex.nodes.tools.cli", "matcher", "--config", str(cfg)],
            d / "matcher.log",
        ).start()
    }
    ctx = zmq.Context()
    try:
        if attached:
            procs["logger"] = Proc(
                "logger",
                ["-m", "zex.nodes.tools.cli", "logger", "--config", str(cfg)],
                d / "logger.log",
            ).start()
        feeder = Feeder(ctx, f"tcp://127.0.0.1:{ports[0]}")
        res = feeder.run(frames, window)
        out = {"rate": res["rate"], "seq": feeder.last_seq}
        if attached:  # the trail must be complete, or "keeping up" means nothing
            deadline = time.monotonic() + 60
            while logger_seq(ports[4]) < feeder.last_seq:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"logger stuck at seq {logger_seq(ports[4])} of {feeder.last_seq}"
                    )
                time.sleep(0.1)  # polling a metric with a deadline, not synchronising on time
            procs.pop("logger").stop()
            rep = verify(d / "trail")
            if not rep.ok or rep.last_seq < feeder.last_seq:
                raise RuntimeError("audit trail incomplete: " + "; ".join(rep.lines()))
            out["trail"] = rep.last_seq
        feeder.sock.close(0)
        return out
    finally:
        for p in procs.values():
            p.stop()
        ctx.term()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--commands", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20k commands, 2 rounds: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.commands, args.rounds = 20_000, 2
    frames = stream_frames(args.commands, seed=42)
    tmp = Path(tempfile.mkdtemp(prefix="zex-logger-bench-"))
    results: dict[str, list[dict]] = {"detached": [], "attached": []}
    try:
        for r in range(args.rounds):
            for mode in ("detached", "attached"):
                res = run(tmp, f"{mode}{r}", mode == "attached", frames, args.window)
                results[mode].append(res)
                extra = f", trail verified to seq {res['trail']:,}" if mode == "attached" else ""
                say(f"round {r + 1}/{args.rounds} {mode:>8}: {res['rate']:,.0f} commands/s{extra}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    det = sorted(x["rate"] for x in results["detached"])
    att = sorted(x["rate"] for x in results["attached"])
    med = lambda xs: xs[len(xs) // 2]  # noqa: E731
    print()
    print(f"{'':>10} {'median cmd/s':>14} {'runs':>30}")
    print(f"{'detached':>10} {med(det):>14,.0f} {', '.join(f'{x:,.0f}' for x in det):>30}")
    print(f"{'attached':>10} {med(att):>14,.0f} {', '.join(f'{x:,.0f}' for x in att):>30}")
    ratio = med(att) / med(det)
    print(
        f"attached / detached: {ratio:.2f}x  (target >= 0.90x: {'met' if ratio >= 0.9 else 'missed'})"
    )


if __name__ == "__main__":
    main()
