"""``zex replay``: re-run a journal through a fresh engine and diff every event against the audit trail.

    zex replay data/matcher --trail data/logger [--config FILE]

The journal holds the commands, the trail holds the events the matcher
published, the engine is deterministic: so replaying the journal must give
the trail's events, batch for batch and field for field. Any difference is
printed with its seq (the first ``--show`` of them), and the exit status is
1; a trail that stops short of the journal (the logger is behind) is
reported, not counted as a difference. ``--config`` must be the matcher's
(instruments and ``digest_every`` change the events).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zex.protocol.internal import EventBatch, batch_decoder, command_decoder
from zex.protocol.numbers import Cash

from ..matcher.engine import Engine
from ..matcher.journal import scan as scan_journal
from .segments import KIND_EVENTS
from .segments import scan as scan_trail


@dataclass
class Result:
    records: int = 0
    commands: int = 0
    compared: int = 0  # batches found in both
    differences: list[str] = field(default_factory=list)
    trail_ends: int = 0  # last seq the trail holds
    journal_ends: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences


def _trail_batches(trail: Path) -> Iterator[EventBatch]:
    for e in scan_trail(trail):
        if e.kind == KIND_EVENTS:
            yield batch_decoder.decode(e.payload)


def replay(
    journal: Path,
    trail: Path,
    instruments,
    cash_mult,
    digest_every: int,
    *,
    show: int = 20,
    progress=None,
) -> Result:
    """Replay ``journal`` and compare with ``trail``; ``progress(result)`` is called now and then."""
    res = Result()
    # the instruments, not their names: the engine's reject texts show their decimals
    engine = Engine(instruments, digest_every, cash_mult)
    decode = command_decoder.decode
    theirs = _trail_batches(trail)
    pending: list = []  # the trail's events not yet matched, with their seqs
    done_trail = False
    last_report = time.monotonic()
    for rec in scan_journal(journal):
        for raw in rec.commands:
            engine.process(decode(raw))
        ours = list(engine.events)
        engine.events.clear()
        engine.reports.clear()
        res.records += 1
        res.commands += len(rec.commands)
        res.journal_ends = rec.last_seq
        # The trail's batches may be cut differently (a consumer re-joining mid-batch), so
        # compare event by event over this record's seq range.
        while not done_trail and (not pending or pending[-1].seq < rec.last_seq):
            try:
                b = next(theirs)
            except StopIteration:
                done_trail = True
                break
            res.trail_ends = b.last_seq
            pending.extend(b.events)
        mine_here = [e for e in pending if e.seq <= rec.last_seq]
        pending = [e for e in pending if e.seq > rec.last_seq]
        if done_trail and res.trail_ends < rec.last_seq:
            break  # the trail stops here: the logger is behind the journal
        res.compared += 1
        if mine_here != ours and len(res.differences) < show:
            res.differences.append(_diff(rec.first_seq, rec.last_seq, ours, mine_here))
        elif mine_here != ours:
            res.differences.append("")
        if progress is not None and time.monotonic() - last_report >= 1.0:
            progress(res)
            last_report = time.monotonic()
    return res


def _diff(first: int, last: int, ours: list, theirs: list) -> str:
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):  # lengths differ: see below
        if a != b:
            return f"seq {a.seq} (record {first}..{last}), event {i}: journal replay gives {a!r}, trail has {b!r}"
    if len(ours) != len(theirs):
        extra = ours[len(theirs) :] or theirs[len(ours) :]
        side = "journal replay" if len(ours) > len(theirs) else "trail"
        return f"record {first}..{last}: {side} has {abs(len(ours) - len(theirs))} more event(s), first {extra[0]!r}"
    return f"record {first}..{last}: differs"


def cmd_replay(args) -> int:
    from ..runtime import config as config_mod

    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        sys.exit(f"zex replay: {exc}")
    journal = Path(args.journal)
    trail = Path(args.trail or cfg.logger.data_dir)
    for p, what in ((journal, "journal directory"), (trail, "audit trail directory (--trail)")):
        if not p.is_dir():
            sys.exit(f"zex replay: {p} is not a directory; give the {what}")

    def progress(r: Result) -> None:
        print(
            f"  ... {r.commands:,} commands replayed, seq {r.journal_ends:,}, {r.compared:,} records compared",
            file=sys.stderr,
            flush=True,
        )

    started = time.monotonic()
    r = replay(
        journal,
        trail,
        cfg.instruments,
        Cash(cfg.instruments).mult,
        cfg.matcher.digest_every,
        show=args.show,
        progress=progress,
    )
    took = time.monotonic() - started
    print(
        f"replayed {r.commands:,} commands ({r.records:,} journal records) in {took:.1f} s; "
        f"journal ends at seq {r.journal_ends:,}, trail at {r.trail_ends:,}"
    )
    if r.trail_ends < r.journal_ends:
        print(
            f"the trail stops at seq {r.trail_ends:,}: the logger is behind (compared up to there)"
        )
    for d in r.differences:
        if d:
            print(f"DIFFERENT {d}")
    if r.ok:
        print(
            f"OK: the journal, the engine and the trail agree on every event of {r.compared:,} records"
        )
        return 0
    print(f"FAILED: {len(r.differences)} record(s) differ")
    return 1
