"""Record files benchmark: journal and event-log appends/s, a git revision's code against this one.

    python bench/records_bench.py [--old 34ccaf4] [--turns 2000] [--repeat 21] [--fsync off]
                                  [--dir /dev/shm] [--batch 1 64]

The old journal.py and eventlog.py (and the durability.py they import) are
taken from ``--old`` with ``git show`` into a temporary package and loaded
beside the installed modules, so both run in the same process on the same
data, alternately, and the best of ``--repeat`` short runs is kept for each
(on a loaded 2-core box a long run measures the neighbours).

The data is real: ``mixed_stream`` through an Engine, cut into turns of
``--batch`` commands (1: a quiet matcher, one command a turn; 64: a busy
one); the journal gets each turn's command bytes, the event log each turn's
encoded EventBatch. The files go to a temporary directory (``--dir``), and
``--fsync off`` measures the framing and the write(2), not the disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.journal import Journal
from zex.nodes.matcher.workload import mixed_stream
from zex.nodes.stream.eventlog import EventLog
from zex.protocol.internal import EventBatch, encoder

REPO = Path(__file__).resolve().parent.parent
OLD_FILES = {  # module name in the temporary package -> path at the old revision
    "runtime.durability": "nodes/runtime/durability.py",
    "matcher.journal": "nodes/matcher/journal.py",
    "stream.eventlog": "nodes/stream/eventlog.py",
}


def load_old(rev: str, where: Path) -> dict[str, types.ModuleType]:
    """The old modules, importable as ``zexold.<name>`` with their relative imports intact."""
    root = where / "zexold"
    mods = {}
    for pkg in ("", "runtime", "matcher", "stream"):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(where))
    for name, path in OLD_FILES.items():
        src = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        file = root / (name.replace(".", "/") + ".py")
        file.write_text(src)
        spec = importlib.util.spec_from_file_location(f"zexold.{name}", file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods


def workload(turns: int, batch: int) -> list[tuple[int, int, list[bytes], bytes]]:
    """(first seq, last seq, command bytes, EventBatch bytes) per turn."""
    engine = Engine(["XYZ"])
    stream = mixed_stream(turns * batch, seed=11)
    out = []
    for _ in range(turns):
        first = engine.seq + 1
        raws = []
        for _ in range(batch):
            cmd = next(stream)
            engine.process(cmd)
            raws.append(encoder.encode(cmd))
        out.append(
            (
                first,
                engine.seq,
                raws,
                encoder.encode(EventBatch(first, engine.seq, engine.take_events())),
            )
        )
        engine.reports.clear()
    return out


def run_journal(cls, directory: Path, turns, fsync: str) -> float:
    j = cls(directory, fsync=fsync)
    write = j.write
    t0 = time.perf_counter()
    for first, _, raws, _ in turns:
        write(first, raws)
    j.close()
    return time.perf_counter() - t0


def run_eventlog(cls, directory: Path, turns, fsync: str) -> float:
    log = cls(directory)
    append = log.append
    t0 = time.perf_counter()
    for first, last, _, batch in turns:
        append(first, last, batch)
    log.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--old", default="34ccaf4", help="the revision to compare with")
    ap.add_argument("--turns", type=int, default=2_000)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="commands per turn")
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--fsync", default="off", choices=("always", "batch", "off"))
    ap.add_argument("--dir", default=None, help="where the files go (default: the system temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        old = load_old(args.old, Path(tmp) / "src")
        rows = []
        for batch in args.batch:
            turns = workload(args.turns, batch)
            nbytes = {
                "journal": sum(len(r) for t in turns for r in t[2]),
                "event log": sum(len(t[3]) for t in turns),
            }
            for what, run, classes in (
                ("journal", run_journal, (old["matcher.journal"].Journal, Journal)),
                ("event log", run_eventlog, (old["stream.eventlog"].EventLog, EventLog)),
            ):
                best = [float("inf"), float("inf")]
                for r in range(args.repeat):
                    # alternate who goes first
                    for i, cls in (
                        ((0, classes[0]), (1, classes[1]))
                        if r % 2 == 0
                        else ((1, classes[1]), (0, classes[0]))
                    ):
                        d = Path(tmp) / f"{what}-{batch}-{r}-{i}".replace(" ", "")
                        best[i] = min(best[i], run(cls, d, turns, args.fsync))
                rows.append(
                    (
                        what,
                        batch,
                        len(turns) / best[0],
                        len(turns) / best[1],
                        nbytes[what] / len(turns),
                    )
                )
    print(
        f"records_bench: {args.turns} turns, fsync {args.fsync}, best of {args.repeat}, "
        f"{args.old} vs working tree"
    )
    print(
        f"{'file':10} {'cmds/turn':>9} {'bytes/rec':>9} {'old rec/s':>10} {'new rec/s':>10} "
        f"{'old us':>7} {'new us':>7} {'new/old':>7}"
    )
    for what, batch, o, n, size in rows:
        print(
            f"{what:10} {batch:9d} {size:9.0f} {o:10,.0f} {n:10,.0f} {1e6 / o:7.2f} "
            f"{1e6 / n:7.2f} {n / o:7.2f}"
        )


if __name__ == "__main__":
    main()
