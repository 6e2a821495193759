"""Audit segments: append-only files of checksummed records, rotated by size and by age.

The files, the framing (length, a CRC over the header and one over the
body), the torn-tail rule, rotation and the fsync policy are
nodes/runtime/records.py's; the body is:

    segment file  audit-<index, 8 digits>.za, magic b"ZEXAUDT2"
    record body, little-endian
      u8   kind          1: a matcher EventBatch   2: an AuditRecord from a node
      u64  ts            ns since the epoch when the logger wrote it
      payload            the EventBatch or AuditRecord, MessagePack (protocol/internal.py)

One writer (the logger thread) appends; a torn tail (the logger died
mid-write) is cut when it opens the last segment again, exactly like the
journal; damage anywhere else is reported by ``verify`` with the file and
offset, never skipped silently, and the writer refuses to resume after it.

fsync policy (config ``fsync``), as for the journal: ``always`` after every
loop turn's records, ``batch`` at most every ``fsync_interval_ms``, ``off``
never (the OS writes back). Events lost from the tail of a crash are not
lost from the trail: the logger asks the replay service for everything after
the last batch it finds on disk.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..runtime.durability import SyncPolicy
from ..runtime.records import Layout, RecordDamaged, RecordWriter

Damaged = RecordDamaged  # a record that is not a torn tail: its file and offset, and what is wrong
LAYOUT = Layout(b"ZEXAUDT2", "audit", ".za", digits=8, what="zex audit segment")
MAGIC = LAYOUT.magic
BODY = struct.Struct("<BQ")
KIND_EVENTS, KIND_AUDIT = 1, 2


def segment_name(index: int) -> str:
    return LAYOUT.name(index)


def segments(directory: Path) -> list[Path]:
    return LAYOUT.segments(directory)


@dataclass(frozen=True)
class Entry:
    kind: int
    ts: int
    payload: bytes
    path: Path
    offset: int


def read(path: Path, *, last: bool) -> tuple[list[Entry], int, Damaged | None]:
    """The whole records of one segment, the offset after the last good one, and the damage if any.

    In the last segment a record cut short at the end of the file is a torn
    tail (not damage); anywhere else anything that does not check is damage.
    """
    path = Path(path)
    seg = LAYOUT.read(path, last=last)
    out: list[Entry] = []
    for offset, body in seg.records:
        if len(body) < BODY.size:  # it checks, so it was written so: a bug, not a torn write
            return out, offset, Damaged(path, offset, "record body shorter than its kind and time")
        kind, ts = BODY.unpack_from(body)
        out.append(Entry(kind, ts, body[BODY.size :], path, offset))
    return out, seg.end, seg.damage


def scan(directory: Path) -> Iterator[Entry]:
    """Every record, oldest first; raises Damaged at the first damage (a torn tail just ends it)."""
    paths = segments(directory)
    for i, path in enumerate(paths):
        entries, _, damage = read(path, last=i == len(paths) - 1)
        yield from entries
        if damage is not None:
            raise damage


class AuditWriter:
    """The appending end, owned by the logger thread.

        w = AuditWriter(directory, fsync="batch", segment_bytes=64 << 20, rotate_s=3600)
        w.append(KIND_EVENTS, batch_bytes)
        w.commit()          # once per loop turn: one write, fsync by policy

    Opening cuts a torn tail off the last segment; damage there raises Damaged
    (``zex audit verify`` says where), so a damaged trail is never appended to.
    """

    def __init__(
        self,
        directory: Path,
        fsync: str = "batch",
        fsync_interval_ms: float = 200.0,
        segment_bytes: int = 64 << 20,
        rotate_s: float = 3600.0,
    ) -> None:
        self.dir = Path(directory)
        sync = SyncPolicy(fsync, fsync_interval_ms, "logger.fsync")
        self._w = RecordWriter(LAYOUT, self.dir, sync, segment_bytes, rotate_s, counted=True)
        self.records = 0
        paths = segments(self.dir)
        if paths:
            tail = LAYOUT.read(paths[-1], last=True)
            if tail.damage is not None:
                self._w.close()
                raise tail.damage
            self._w.resume(paths[-1], tail.end, tail.torn)

    def append(self, kind: int, payload: bytes, ts: int | None = None) -> None:
        self._w.append(0, BODY.pack(kind, time.time_ns() if ts is None else ts), payload)
        self.records += 1

    def commit(self) -> None:
        """End of a loop turn: hand the records to the OS, and fsync as the policy says."""
        self._w.commit()

    def close(self) -> None:
        self._w.close()
