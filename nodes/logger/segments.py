"""Audit segments: append-only files of checksummed records, rotated by size and by age.

    segment file  audit-<index, 8 digits>.za
      magic   8 bytes  b"ZEXAUDT1"
      record*
    record, little-endian
      u32  body length
      u32  crc32 of the body
      body
        u8   kind          1: a matcher EventBatch   2: an AuditRecord from a node
        u64  ts            ns since the epoch when the logger wrote it
        payload            the EventBatch or AuditRecord, MessagePack (protocol/internal.py)

One writer (the logger thread) appends; a torn tail (the logger died
mid-write) is cut when it opens the last segment again, exactly like the
journal; damage anywhere else is reported by ``verify`` with the file and
offset, and never skipped silently by a reader that asks for strictness.

fsync policy (config ``fsync``), as for the journal: ``always`` after every
loop turn's records, ``batch`` at most every ``fsync_interval_ms``, ``off``
never (the OS writes back). Events lost from the tail of a crash are not
lost from the trail: the logger asks the replay service for everything after
the last batch it finds on disk.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..runtime.durability import SyncPolicy

MAGIC = b"ZEXAUDT1"
HEAD = struct.Struct("<II")
BODY = struct.Struct("<BQ")
KIND_EVENTS, KIND_AUDIT = 1, 2


def segment_name(index: int) -> str:
    return f"audit-{index:08d}.za"


def segments(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("audit-*.za"))


@dataclass(frozen=True)
class Entry:
    kind: int
    ts: int
    payload: bytes
    path: Path
    offset: int


class Damaged(Exception):
    """A record that is not a torn tail: its file and offset, and what is wrong."""

    def __init__(self, path: Path, offset: int, why: str) -> None:
        super().__init__(f"{path}: offset {offset}: {why}")
        self.path, self.offset, self.why = path, offset, why


def read(path: Path, *, last: bool) -> tuple[list[Entry], int, Damaged | None]:
    """The whole records of one segment, the offset after the last good one, and the damage if any.

    In the last segment a record cut short at the end of the file is a torn
    tail (not damage); anywhere else anything that does not check is damage.
    """
    data = Path(path).read_bytes()
    if data[:8] != MAGIC:
        if last and MAGIC.startswith(data):
            return [], 0, None
        return [], 0, Damaged(path, 0, "not a zex audit segment (bad magic)")
    out: list[Entry] = []
    pos, end = 8, len(data)
    while pos < end:
        if end - pos < HEAD.size:
            return out, pos, None if last else Damaged(path, pos, "partial record header")
        length, crc = HEAD.unpack_from(data, pos)
        start, stop = pos + HEAD.size, pos + HEAD.size + length
        if stop > end:
            return out, pos, None if last else Damaged(path, pos, "record runs past the end of the file")
        body = data[start:stop]
        if zlib.crc32(body) != crc or length < BODY.size:
            if last and stop == end:
                return out, pos, None  # the last record, half written
            return out, pos, Damaged(path, pos, "record checksum mismatch")
        kind, ts = BODY.unpack_from(body, 0)
        out.append(Entry(kind, ts, body[BODY.size:], Path(path), pos))
        pos = stop
    return out, pos, None


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
        w.commit()          # once per loop turn: flush, fsync by policy, rotate when due
    """

    def __init__(self, directory: Path, fsync: str = "batch", fsync_interval_ms: float = 200.0,
                 segment_bytes: int = 64 << 20, rotate_s: float = 3600.0) -> None:
        self._sync = SyncPolicy(fsync, fsync_interval_ms, "logger.fsync")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes, self.rotate_s = segment_bytes, rotate_s
        self._file = None
        self._size = 0
        self._index = 0
        self._opened = 0.0
        self._dirty = False
        self.records = 0
        paths = segments(self.dir)
        if paths:
            tail = paths[-1]
            _, good, _ = read(tail, last=True)
            self._index = int(tail.stem.split("-")[1])
            if good >= 8:
                if good < tail.stat().st_size:
                    os.truncate(tail, good)  # a torn tail from a crash
                self._file = open(tail, "ab")
                self._size = good
                self._opened = time.monotonic()
            else:
                tail.unlink()
                self._index -= 1

    def append(self, kind: int, payload: bytes, ts: int | None = None) -> None:
        if self._file is None or self._size >= self.segment_bytes or (
                time.monotonic() - self._opened >= self.rotate_s and self._size > 8):
            self._rotate()
        body = BODY.pack(kind, time.time_ns() if ts is None else ts) + payload
        rec = HEAD.pack(len(body), zlib.crc32(body)) + body
        self._file.write(rec)
        self._size += len(rec)
        self.records += 1
        self._dirty = True

    def commit(self) -> None:
        """End of a loop turn: hand the records to the OS, and fsync as the policy says."""
        if not self._dirty:
            return
        self._file.flush()
        self._dirty = False
        self._sync.after_write(self._file.fileno())

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._sync.on_close(self._file.fileno())
            self._file.close()
        self._index += 1
        self._file = open(self.dir / segment_name(self._index), "ab")
        self._file.write(MAGIC)
        self._size = len(MAGIC)
        self._opened = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._sync.on_close(self._file.fileno())
            self._file.close()
            self._file = None
        self._sync.close()
