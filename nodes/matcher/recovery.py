"""Start from disk: newest snapshot + replay of the journal after it.

    >>> engine, journal = recover(Path("data/matcher"), ["XYZ"])

The journal is verified from its first record (checksums, hash chain, seq
continuity); a torn tail is cut; anything else damaged stops the start with
JournalCorrupt naming the file and offset.

``on_batch(first_seq, last_seq, events)`` receives the events that replaying
each record after ``events_after`` produces, one call per record, exactly as
the matcher published them (the engine is deterministic): the matcher uses it
to regenerate the end of its event log. When the newest snapshot is past
``events_after``, recovery replays from the start instead, so no batch is
missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from zex.protocol.errors import ZexError
from zex.protocol.internal import command_decoder
from zex.protocol.numbers import Instrument

from .engine import Engine
from .journal import Journal, Record
from .snapshot import latest_snapshot

log = logging.getLogger("zex.matcher")


class RecoveryError(ZexError):
    """The snapshot and the journal do not agree; the data directory needs an operator."""


def recover(
    directory: Path,
    symbols: Iterable[str | Instrument],
    *,
    digest_every: int = 0,
    fsync: str = "always",
    fsync_interval_ms: float = 5.0,
    segment_bytes: int | None = None,
    use_snapshot: bool = True,
    cash_mult: Mapping[str, int] | None = None,
    events_after: int | None = None,
    on_batch: Callable[[int, int, list], None] | None = None,
) -> tuple[Engine, Journal]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    symbols = list(symbols)
    snap = latest_snapshot(directory) if use_snapshot else None
    if snap is not None and events_after is not None and snap.seq > events_after:
        log.warning(
            "event log ends at seq %d, before snapshot %d: replaying the journal from the start "
            "to regenerate it",
            events_after,
            snap.seq,
        )
        snap = None
    if snap is not None:
        engine = Engine.from_state(snap.state, symbols, digest_every, cash_mult)
        log.info("loaded snapshot %s at seq %d", snap.path.name, snap.seq)
    else:
        engine = Engine(symbols, digest_every, cash_mult)
    base = engine.seq
    replayed = 0
    process, decode = engine.process, command_decoder.decode

    def apply(r: Record) -> None:
        nonlocal replayed
        if snap is not None and r.last_seq == snap.seq and r.chain != snap.chain:
            raise RecoveryError(
                f"{snap.path}: its journal chain differs from {r.path} at offset {r.offset}; "
                "the snapshot belongs to another journal: move it away and restart"
            )
        if r.last_seq <= engine.seq:
            return
        # commands of a straddling record already in the snapshot
        skip = engine.seq - r.first_seq + 1
        for raw in r.commands[skip if skip > 0 else 0 :]:
            process(decode(raw))
            replayed += 1
        if on_batch is not None and events_after is not None and r.last_seq > events_after:
            first = max(r.first_seq, events_after + 1)
            on_batch(first, r.last_seq, [e for e in engine.events if e.seq >= first])
        engine.events.clear()
        engine.reports.clear()

    kw = {} if segment_bytes is None else {"segment_bytes": segment_bytes}
    journal = Journal(directory, fsync, fsync_interval_ms, on_record=apply, **kw)
    if journal.next_seq - 1 < engine.seq:
        raise RecoveryError(
            f"{directory}: snapshot is at seq {engine.seq} but the journal ends at {journal.next_seq - 1}; "
            "journal segments are missing: restore them, or move the snapshots away to start from the journal"
        )
    if journal.next_seq - 1 > engine.seq:  # pragma: no cover - apply() replays everything
        raise RecoveryError(
            f"{directory}: replay stopped at {engine.seq}, journal has {journal.next_seq - 1}"
        )
    log.info("recovered to seq %d (snapshot %d + %d replayed)", engine.seq, base, replayed)
    return engine, journal
