"""State benchmark: how long a digest and a snapshot pause the matcher, and what keeping
ahead of them costs per command.

    python bench/state_bench.py [--n 1000000] [--batch 256] [--repeat 3]

The book benchmark's stream (zex.nodes.matcher.workload.mixed_stream, seed 1)
runs through Engine.process in turns of ``batch`` commands, each turn followed
by what the matcher node does after its acks are out: ``keep_up`` (encode the
turn's new report-log entries, answers and changed resting orders). Then, on
the state that leaves (at 1M commands: ~280k resting orders, every report and
answer of the day), the matcher's own calls are timed:

  digest       Engine.digest(): what the node pays every digest_every commands
  state_parts  Engine.state_parts(): what the node pays every snapshot_every
               commands before the writer thread takes over
  state_bytes  the same joined into one bytes object (tests and tools)

against a baseline measured in the same run on the same state: the cold way,
capturing the whole state as Structs and encoding it (``encode(engine.state())``)
and hashing that for a digest. Best of ``repeat`` each.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import time

import zex.nodes.matcher.engine  # noqa: F401  (the installed build)
from zex.nodes.matcher import build_kind
from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.node import GC_YOUNG
from zex.nodes.matcher.state import encode
from zex.nodes.matcher.workload import mixed_stream


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="commands in the stream")
    ap.add_argument("--batch", type=int, default=256, help="commands per turn")
    ap.add_argument("--repeat", type=int, default=3, help="timings per call; the best is kept")

    args = ap.parse_args()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])  # the matcher node's GC policy

    print(f"generating {args.n:,} commands (seed 1) ...", file=sys.stderr, flush=True)
    cmds = list(mixed_stream(args.n, seed=1))
    eng = Engine(["XYZ"])
    kept = 0.0
    t0 = time.perf_counter()
    for i in range(0, len(cmds), args.batch):
        for c in cmds[i : i + args.batch]:
            eng.process(c)
        t = time.perf_counter()
        eng.keep_up({r[1] for r in eng.reports if r[3]})  # as the node does after each turn
        kept += time.perf_counter() - t
        eng.events.clear()
        eng.reports.clear()
        gc.collect(0)
        gc.freeze()
        if (i // args.batch) % 400 == 0:
            print(f"  {i:,} commands ...", file=sys.stderr, flush=True)
    total = time.perf_counter() - t0
    book = eng.books["XYZ"]
    logged = sum(len(a.log) for a in eng.accounts.values())
    print(
        f"timing digest and snapshot on {book.resting:,} resting orders, {logged:,} reports, "
        f"{len(eng.answers):,} answers ...",
        file=sys.stderr,
        flush=True,
    )

    rows = [
        (
            "digest",
            best(eng.digest, args.repeat),
            best(
                lambda: hashlib.blake2b(encode(eng.state()), digest_size=16).digest(), args.repeat
            ),
        ),
        (
            "state_parts",
            best(eng.state_parts, args.repeat),
            best(lambda: encode(eng.state()), args.repeat),
        ),
        ("state_bytes", best(eng.state_bytes, args.repeat), None),
    ]
    size = sum(len(p) for p in eng.state_parts())
    assert eng.state_bytes() == encode(eng.state())  # the same bytes either way

    print(
        f"\n{args.n:,} commands, batch {args.batch}, Python {sys.version.split()[0]}, "
        f"matcher build: {build_kind()}; state {size / 1e6:.0f} MB"
    )
    print(
        f"process + keep_up: {args.n / total:,.0f} commands/s; keep_up {kept / args.n * 1e6:.2f} us "
        f"a command ({100 * kept / total:.0f} % of the time)"
    )
    print(f"{'call':14} {'zex ms':>9} {'cold ms':>9} {'cold / zex':>11}")
    cold_state = rows[1][2]
    for name, zex_s, cold in rows:
        cold = cold if cold is not None else cold_state
        print(f"{name:14} {zex_s * 1e3:9.1f} {cold * 1e3:9.1f} {cold / zex_s:10.1f}x")


if __name__ == "__main__":
    main()
