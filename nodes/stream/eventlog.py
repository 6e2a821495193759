"""The event log: every EventBatch the matcher published, in order, for the replay service.

The journal holds commands; the events are derived from them (the engine is
deterministic), so this log needs no fsync and no hash chain: after a crash
the matcher cuts it back to the journal and regenerates what is missing from
the journal's tail (recovery.py). It exists so that a consumer that missed
batches can have them again without anyone re-running the engine. Being
derived, damage in it is not fatal either: the matcher checks every segment
when it starts, cuts the log at the first damage (logging the file and
offset) and regenerates the rest, so the replay service never stops at a
hole that nothing fills.

The files and the framing are nodes/runtime/records.py's; the body is:

    segment file  events-<first seq, 20 digits>.ze, magic b"ZEXEVLG2"
    record body, little-endian
      u64  first seq            the batch covers commands first..last
      u64  last seq
      the EventBatch, exactly the bytes published on the event stream

One writer (the matcher thread: ``EventLog``) appends one record per loop
turn with one write(2); readers (the replay service thread:
``EventLogReader``) open their own file handles and index only whole
records, so a record being written is simply not there yet.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
from array import array
from pathlib import Path
from typing import BinaryIO

from ..runtime.durability import SyncPolicy
from ..runtime.records import HEADER, MAGIC_SIZE, Layout, RecordDamaged, RecordWriter

log = logging.getLogger("zex.stream")

LAYOUT = Layout(b"ZEXEVLG2", "events", ".ze", what="zex event log segment")
MAGIC = LAYOUT.magic
SEQS = struct.Struct("<QQ")  # the body's head: first and last seq
_pack_seqs = SEQS.pack
SEGMENT_BYTES = 64 * 1024 * 1024  # rotate at this size; 16..1024 MiB is reasonable
RECORD_OVERHEAD = HEADER.size + SEQS.size  # bytes a record adds to its batch


def segment_name(first_seq: int) -> str:
    return LAYOUT.name(first_seq)


def segments(directory: Path) -> list[Path]:
    return LAYOUT.segments(directory)


def _verify(path: Path, last: bool, prev: int) -> tuple[int, int, str, RecordDamaged | None]:
    """Check one segment's records and that their seqs follow ``prev`` (0: the log's first).

    Return where its whole, continuous records end, the last seq they reach (``prev`` if
    none), the torn tail after them if any, and the damage that stopped the check if any.
    Bodies are not copied: at every matcher start this reads the whole log.
    """
    data = path.read_bytes()
    early = LAYOUT.begin(data, path, last=last)
    if early is not None:
        return early.end, prev, early.torn, early.damage
    end = MAGIC_SIZE
    torn: list[str] = []
    unpack = SEQS.unpack_from
    try:
        for offset, start, stop in LAYOUT.scan(data, MAGIC_SIZE, path, last=last, torn=torn):
            if stop - start < SEQS.size:
                return end, prev, "", RecordDamaged(path, offset, "record shorter than its seqs")
            first, last_seq = unpack(data, start)
            if (prev and first != prev + 1) or last_seq < first:
                # Whole records, but a hole or an overlap: the reader could not index past it.
                why = f"batch {first}..{last_seq} does not follow seq {prev}"
                return end, prev, "", RecordDamaged(path, offset, why)
            prev, end = last_seq, stop
    except RecordDamaged as exc:
        return end, prev, "", exc
    return end, prev, f"torn tail ({torn[0]})" if torn else "", None


class EventLog:
    """The writing end, owned by the matcher thread.

    log = EventLog(directory)
    log.last_seq                    # the last command whose batch is in the log (0: empty)
    log.append(first, last, batch)  # after the journal write, before publishing
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.last_seq = 0
        self._w = self._open_tail()
        self._write = self._w.write

    def _open_tail(self) -> RecordWriter:
        """Verify every segment, cut the log at the first damage or torn tail, resume there.

        The whole log, not only its newest segment: damage in an older one, found only by
        the replay service, would stop it serving there at every start, since the matcher
        regenerates only what follows ``last_seq``. It costs about 0.75 s of CPU per 100 MB
        at one command a turn (90-byte records), 0.1 s at 64 a turn, where the journal's
        own check at the same start takes about 4 s per 100 MB at one a turn.
        """
        # Derived data: no fsync (a crash loses nothing the journal cannot regenerate).
        w = RecordWriter(LAYOUT, self.dir, SyncPolicy("off", 0.0, "event log"), self.segment_bytes)
        paths = segments(self.dir)
        for i, path in enumerate(paths):
            end, self.last_seq, why, damage = _verify(path, i == len(paths) - 1, self.last_seq)
            if damage is not None:
                log.warning(
                    "%s: the event log is cut there, and the matcher regenerates the rest "
                    "from the journal",
                    damage,
                )
                for later in paths[i + 1 :]:
                    later.unlink()
                why = f"damage ({damage.why}), and {len(paths) - i - 1} later segments removed"
            if damage is not None or i == len(paths) - 1:
                # Cuts a torn tail or the damage; a file without a whole magic is removed.
                w.resume(path, end, why)
                break
        return w

    def truncate_after(self, seq: int) -> None:
        """Drop every batch after command ``seq`` (the journal lost them: fsync off, power loss)."""
        self._w.close()
        for path in reversed(segments(self.dir)):
            seg = LAYOUT.read(path, last=True)  # damage only ends what is kept
            keep = MAGIC_SIZE
            for offset, body in seg.records:
                if SEQS.unpack_from(body)[1] > seq:
                    break
                keep = offset + HEADER.size + len(body)
            if keep == MAGIC_SIZE and LAYOUT.number(path) > seq:
                path.unlink()
                continue
            os.truncate(path, keep)
            break
        self.last_seq = 0
        self._w = self._open_tail()
        self._write = self._w.write

    def append(self, first_seq: int, last_seq: int, batch: bytes) -> None:
        """Add the batch of commands first_seq..last_seq (one write: readers see all or none)."""
        self._write(first_seq, _pack_seqs(first_seq, last_seq), batch)
        self.last_seq = last_seq

    def close(self) -> None:
        self._w.close()


class EventLogReader:
    """The reading end, owned by one thread; it indexes whole records as they appear.

        reader = EventLogReader(directory)
        reader.refresh()                       # index what was appended since
        for first, last, batch in reader.read(from_seq=42, max_batches=256, max_bytes=1 << 20):
            ...

    Damage (not a record being written) stops the index there: the batches after it
    are not served, and ``damage`` says where, until the matcher's next start cuts it.
    """

    # Set by _reset, which refresh (earlier in this file) also calls: declared here for mypy.
    _seg: int
    _pos: int

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.damage: RecordDamaged | None = None  # where indexing stopped at damage, if it did
        self._reset()
        self.refresh()

    @property
    def first_seq(self) -> int:
        return self._firsts[0] if self._firsts else 0

    @property
    def last_seq(self) -> int:
        return self._lasts[-1] if self._lasts else 0

    def refresh(self) -> None:
        """Index the records appended since the last call (new segments too)."""
        paths = segments(self.dir)
        if paths[: len(self._paths)] != self._paths:
            self._reset()  # segments went away under us (cut back at a matcher restart): start over
        for path in paths[len(self._paths) :]:
            self._paths.append(path)
            self._files.append(open(path, "rb"))  # noqa: SIM115 - closed by _reset
        while self._seg < len(self._paths):
            f, path = self._files[self._seg], self._paths[self._seg]
            last = self._seg == len(self._paths) - 1
            if self._pos == 0:
                magic = f.read(MAGIC_SIZE)
                if magic != MAGIC:
                    if last and MAGIC.startswith(magic):
                        return  # being created: nothing to read yet
                    return self._damaged(RecordDamaged(path, 0, f"not a {LAYOUT.what} (bad magic)"))
                self._pos = MAGIC_SIZE
            f.seek(self._pos)
            data = f.read()
            base, seg = self._pos, self._seg
            try:
                for _, start, stop in LAYOUT.scan(data, 0, path, last=last, base=base):
                    first, last_seq = SEQS.unpack_from(data, start)
                    if self._lasts and first != self._lasts[-1] + 1:
                        self._reset()  # rewritten under us: start over
                        return self.refresh()
                    self._firsts.append(first)
                    self._lasts.append(last_seq)
                    self._segs.append(seg)
                    self._starts.append(base + start + SEQS.size)
                    self._ends.append(base + stop)
                    self._pos = base + stop
            except RecordDamaged as exc:
                return self._damaged(exc)
            if last:
                return
            self._seg += 1
            self._pos = 0

    def _damaged(self, exc: RecordDamaged) -> None:
        if self.damage is None or (self.damage.path, self.damage.offset) != (exc.path, exc.offset):
            log.error(
                "%s: batches after it are not served until the matcher restarts and cuts the "
                "event log there",
                exc,
            )
        self.damage = exc

    def _reset(self) -> None:
        for f in getattr(self, "_files", ()):
            f.close()
        # One entry per record, in flat arrays (8 bytes a field, not a Python object each):
        # a day at one command per turn is millions of records.
        self._firsts = array("q")  # first seq of each indexed record
        self._lasts = array("q")
        self._segs = array("q")  # segment index
        self._starts = array("q")  # batch start and end offsets in that segment
        self._ends = array("q")
        self._paths: list[Path] = []
        self._files: list[BinaryIO] = []
        self._seg = 0  # the segment being indexed, and the offset indexed up to in it
        self._pos = 0
        self.damage = None

    def read(
        self, from_seq: int, max_batches: int = 256, max_bytes: int = 1 << 20
    ) -> list[tuple[int, int, bytes]]:
        """The batches from the one holding command ``from_seq`` on, bounded by count and bytes.

        At least one batch when any covers ``from_seq``; empty when ``from_seq`` is past the end.
        """
        if not self._lasts or from_seq > self._lasts[-1]:
            return []
        i = bisect.bisect_left(self._lasts, from_seq)
        out: list[tuple[int, int, bytes]] = []
        size = 0
        while i < len(self._lasts) and len(out) < max_batches:
            seg, start, stop = self._segs[i], self._starts[i], self._ends[i]
            if out and size + stop - start > max_bytes:
                break
            f = self._files[seg]
            f.seek(start)
            out.append((self._firsts[i], self._lasts[i], f.read(stop - start)))
            size += stop - start
            i += 1
        return out

    def close(self) -> None:
        self._reset()
