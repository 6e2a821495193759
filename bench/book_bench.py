"""Book benchmark: commands/s for the book, the engine, and the engine + journal.

    python bench/book_bench.py [--n 1000000] [--batch 256] [--fsync batch]

One reproducible stream (zex.nodes.matcher.workload.mixed_stream: ~70 % passive
limits, ~20 % cancels of open orders, ~10 % marketable IOC) is replayed through:

  baseline  a minimal SortedDict price-level book written below (~60 lines):
            price-time matching, lazy O(1) cancel, nothing else
  (a) book  zex's bare Book driven directly, as the baseline is: price-time
            matching, resting, cancel, typed Trade events, and the settle step
            after it (settle.py): each fill settled in both accounts and logged
            as their execution report
  engine    zex's Engine.process on decoded commands: (a) plus sequencing,
            validation, STP, FOK/IOC/post-only, risk, the idempotency map
            and an Accepted or Cancelled event answering every command
  (b) engine  that plus what the node does per command and per batch: decode
            the command bytes, encode one EventBatch per batch
  (c) +journal  (b) plus one journal record per batch on local disk

Each figure is also printed as a ratio to the baseline measured in the same
run, because these machines are noisy. Targets: (a) >= 1.0x, (c) >= 0.5x.
The zex variants run for the installed matcher build and, when that is the
compiled one (setup.py), again for the same sources as plain Python
(--build installed|pure|both).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from sortedcontainers import SortedDict

# the installed build of the four hot modules, loaded before builds.pure() makes its copies
import zex.nodes.matcher.accounts  # noqa: F401
import zex.nodes.matcher.book  # noqa: F401
import zex.nodes.matcher.engine  # noqa: F401
import zex.nodes.matcher.settle  # noqa: F401
from zex.nodes import matcher as installed
from zex.nodes.matcher import build_kind
from zex.nodes.matcher.builds import pure
from zex.nodes.matcher.journal import Journal
from zex.nodes.matcher.node import GC_YOUNG
from zex.nodes.matcher.workload import mixed_stream
from zex.protocol.internal import (
    BUY,
    GTC,
    LIMIT,
    STP_NONE,
    CancelCmd,
    EventBatch,
    command_decoder,
    encoder,
)


# --------------------------------------------------------------- baseline
class BaselineBook:
    """Minimal price-time book: SortedDict of price -> deque of [id, qty]; lazy cancel."""

    def __init__(self) -> None:
        self.bids = SortedDict()  # key -price, so the best bid is first
        self.asks = SortedDict()
        self.live: dict[int, list] = {}
        self.next_id = 1
        self.fills: list[tuple[int, int, int]] = []

    def limit(self, side: int, price: int, qty: int, rest: bool) -> None:
        oid = self.next_id
        self.next_id += 1
        if side == BUY:
            book, key, crosses = self.asks, -price, lambda p: p <= price
            own = self.bids
        else:
            book, key, crosses = self.bids, price, lambda p: -p >= price
            own = self.asks
        while qty and book:
            p, q = book.peekitem(0)
            if not crosses(p):
                break
            while q and qty:
                entry = q[0]
                if entry[1] == 0:  # cancelled or filled
                    q.popleft()
                    continue
                n = min(qty, entry[1])
                entry[1] -= n
                qty -= n
                self.fills.append((entry[0], oid, n))
                if entry[1] == 0:
                    q.popleft()
                    del self.live[entry[0]]
            if not q:
                del book[p]
        if qty and rest:
            entry = [oid, qty]
            own.setdefault(key if side == BUY else price, deque()).append(entry)
            self.live[oid] = entry

    def cancel(self, oid: int) -> None:
        entry = self.live.pop(oid, None)
        if entry is not None:
            entry[1] = 0  # lazy: skipped when it reaches the front


# Every variant, the baseline too, runs under the matcher node's GC policy unless
# --gc default: what survives a turn of `batch` commands is frozen out of the
# collector's reach, so the growing book is not walked again, and automatic young
# collections come every GC_YOUNG allocations instead of 700 (nodes/matcher/node.py).
FREEZE = True


def end_turn() -> None:
    if FREEZE:
        gc.freeze()


def run_baseline(cmds, batch: int) -> float:
    b = BaselineBook()
    t0 = time.perf_counter()
    for i in range(0, len(cmds), batch):
        for c in cmds[i : i + batch]:
            if type(c) is CancelCmd:
                b.cancel(c.order_id)
            else:
                b.limit(c.side, c.price, c.qty, c.tif == GTC)
        if len(b.fills) > 10_000:
            b.fills.clear()
        end_turn()
    return time.perf_counter() - t0


# -------------------------------------------------------------------- zex
def run_bare_book(m, cmds, batch: int) -> float:
    Account, Book, Order = m.accounts.Account, m.book.Book, m.book.Order
    events: list = []
    reports: list = []
    book = Book("XYZ", events)
    settle = m.settle.Settlement(events)
    makers = book.makers
    accounts: dict = {}
    origin = ("gw1", b"c1")
    next_id = 1
    t0 = time.perf_counter()
    for i in range(0, len(cmds), batch):
        for c in cmds[i : i + batch]:
            if type(c) is CancelCmd:
                acct = accounts.get(c.account)
                o = None if acct is None else acct.orders.get(c.order_id)
                if o is not None:
                    book.unrest(o)
                    settle.closed(o, o.leaves)
                continue
            acct = accounts.get(c.account)
            if acct is None:
                acct = accounts[c.account] = Account(c.account, reports)
            h = acct.holding("XYZ", 1)
            o = Order(
                next_id,
                h,
                acct.name,
                c.cl_ord_id,
                "XYZ",
                c.side,
                c.price,
                c.qty,
                STP_NONE,
                False,
                origin,
            )
            next_id += 1
            if book.would_cross(c.side, c.price):
                start = len(events)
                settle.matched(o, start, makers, not book.match(o, True, i, c.ts))
            if o.leaves:
                if c.tif == GTC:
                    book.rest(o)
                    settle.opened(o)
                else:
                    settle.expired(o, book.expire(o, c.tif, LIMIT, i, c.ts))
        events.clear()
        reports.clear()
        end_turn()
    return time.perf_counter() - t0


def run_engine_only(m, cmds, batch: int) -> float:
    eng = m.engine.Engine(["XYZ"])
    process, events, reports = eng.process, eng.events, eng.reports
    t0 = time.perf_counter()
    for i in range(0, len(cmds), batch):
        for c in cmds[i : i + batch]:
            process(c)
        events.clear()
        reports.clear()
        end_turn()
    return time.perf_counter() - t0


def run_engine(m, raws, batch: int, journal: Journal | None) -> float:
    eng = m.engine.Engine(["XYZ"])
    process, events, reports = eng.process, eng.events, eng.reports
    decode, encode = command_decoder.decode, encoder.encode
    t0 = time.perf_counter()
    for i in range(0, len(raws), batch):
        chunk = raws[i : i + batch]
        first = eng.seq + 1
        for raw in chunk:
            process(decode(raw))
        if journal is not None:
            journal.write(first, chunk)
        encode(EventBatch(first, eng.seq, events))
        events.clear()
        reports.clear()
        end_turn()
    return time.perf_counter() - t0


def timed(fn) -> float:
    gc.unfreeze()  # the last run's state is garbage now
    gc.collect()
    return fn()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="commands in the stream")
    ap.add_argument(
        "--batch", type=int, default=256, help="commands per loop turn / journal record"
    )
    ap.add_argument("--fsync", default="batch", choices=["always", "batch", "off"])
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    ap.add_argument(
        "--gc",
        default="freeze",
        choices=["freeze", "default"],
        help="freeze: the matcher's policy, gc.freeze() after each batch and young "
        "collections every GC_YOUNG allocations (all variants); "
        "default: Python's collector as it comes",
    )
    ap.add_argument(
        "--build",
        default="both",
        choices=["both", "installed", "pure"],
        help="both: the installed build and, if it is compiled, plain Python beside it",
    )
    args = ap.parse_args()
    global FREEZE
    FREEZE = args.gc == "freeze"
    if FREEZE:
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])

    print(f"generating {args.n:,} commands (seed 1) ...", file=sys.stderr, flush=True)
    cmds = list(mixed_stream(args.n, seed=1))
    raws = [encoder.encode(c) for c in cmds]
    kinds = {"cancel": 0, "ioc": 0, "gtc": 0}
    for c in cmds:
        kinds["cancel" if type(c) is CancelCmd else ("gtc" if c.tif == GTC else "ioc")] += 1
    mix = ", ".join(f"{k} {100 * v / len(cmds):.1f} %" for k, v in kinds.items())
    print(f"stream: {mix}", file=sys.stderr)

    # The installed build, and plain Python beside it when the installed one is compiled.
    builds = {"installed": installed}
    if build_kind() == "compiled" and args.build == "both":
        builds["pure"] = pure()
    elif args.build == "pure":
        builds = {"pure": pure()}

    def with_journal(m):
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as d:
            j = Journal(Path(d), fsync=args.fsync)
            try:
                return run_engine(m, raws, args.batch, j)
            finally:
                j.close()

    variants = [("baseline SortedDict book", None, lambda _: run_baseline(cmds, args.batch))]
    for label, m in builds.items():
        tag = f" [{build_kind() if label == 'installed' else 'pure'}]"
        variants += [
            ("(a) zex book (bare Book)" + tag, m, lambda m: run_bare_book(m, cmds, args.batch)),
            (
                "    engine (Engine.process)" + tag,
                m,
                lambda m: run_engine_only(m, cmds, args.batch),
            ),
            (
                "(b) + decode + event encoding" + tag,
                m,
                lambda m: run_engine(m, raws, args.batch, None),
            ),
            (f"(c) + journal (fsync={args.fsync})" + tag, m, with_journal),
        ]
    # Round robin, best of each: a slow spell of the machine then hits every variant
    # alike instead of whichever ran during it.
    results: dict[str, float] = {}
    for r in range(1, args.repeat + 1):
        for i, (name, m, fn) in enumerate(variants, 1):
            print(
                f"round {r}/{args.repeat}, [{i}/{len(variants)}] {name.strip()} ...",
                file=sys.stderr,
                flush=True,
            )
            secs = timed(lambda fn=fn, m=m: fn(m))
            results[name] = min(secs, results.get(name, secs))

    base = args.n / results["baseline SortedDict book"]
    print(
        f"\n{args.n:,} commands, batch {args.batch}, best of {args.repeat}, gc {args.gc}, "
        f"Python {sys.version.split()[0]}, installed matcher build: {build_kind()}"
    )
    print(f"{'variant':44} {'commands/s':>12} {'vs baseline':>12}")
    for name, secs in results.items():
        rate = args.n / secs
        print(f"{name:44} {rate:12,.0f} {rate / base:11.2f}x")


if __name__ == "__main__":
    main()
