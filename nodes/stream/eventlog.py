"""The event log: every EventBatch the matcher published, in order, for the replay service.

The journal holds commands; the events are derived from them (the engine is
deterministic), so this log needs no fsync and no hash chain: after a crash
the matcher cuts it back to the journal and regenerates what is missing from
the journal's tail (recovery.py). It exists so that a consumer that missed
batches can have them again without anyone re-running the engine.

    segment file  events-<first seq, 20 digits>.ze
      magic   8 bytes  b"ZEXEVLG1"
      record*
    record, little-endian
      u64  first seq            the batch covers commands first..last
      u64  last seq
      u32  length of the batch
      u32  crc32 of the 16 bytes of seqs, the length and the batch
      the EventBatch, exactly the bytes published on the event stream

One writer (the matcher thread: ``EventLog``) appends one record per loop
turn with one write(2); readers (the replay service thread:
``EventLogReader``) open their own file handles and index only whole
records, so a record being written is simply not there yet.
"""

from __future__ import annotations

import bisect
import os
from array import array
import struct
import zlib
from pathlib import Path

MAGIC = b"ZEXEVLG1"
HEAD = struct.Struct("<QQII")
SEGMENT_BYTES = 64 * 1024 * 1024  # rotate at this size; 16..1024 MiB is reasonable


def segment_name(first_seq: int) -> str:
    return f"events-{first_seq:020d}.ze"


def segments(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("events-*.ze"))


def _crc(first: int, last: int, batch: bytes) -> int:
    return zlib.crc32(batch, zlib.crc32(struct.pack("<QQI", first, last, len(batch))))


def _scan(data: bytes, pos: int):
    """Yield (offset, first, last, batch start, batch end) of each whole, valid record from ``pos``."""
    end = len(data)
    while end - pos >= HEAD.size:
        first, last, length, crc = HEAD.unpack_from(data, pos)
        start = pos + HEAD.size
        stop = start + length
        if stop > end or _crc(first, last, data[start:stop]) != crc:
            return  # torn (being written, or cut by a crash): the end of what is readable
        yield pos, first, last, start, stop
        pos = stop


class EventLog:
    """The writing end, owned by the matcher thread.

        log = EventLog(directory)
        log.last_seq                    # the last command whose batch is in the log (0: empty)
        log.append(first, last, batch)  # after the journal write, before publishing
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.last_seq = 0
        self._fd = -1
        self._size = 0
        self._open_tail()

    def _open_tail(self) -> None:
        for path in reversed(segments(self.dir)):
            data = path.read_bytes()
            if data[:8] != MAGIC:
                path.unlink()  # died before its magic was written
                continue
            good = 8
            for _, _, last, _, stop in _scan(data, 8):
                self.last_seq, good = last, stop
            if good == 8 and path != segments(self.dir)[0]:
                path.unlink()  # an empty tail segment: the previous one holds the end
                continue
            if good < len(data):
                os.truncate(path, good)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._size = good
            return

    def truncate_after(self, seq: int) -> None:
        """Drop every batch after command ``seq`` (the journal lost them: a power loss with fsync off)."""
        for path in reversed(segments(self.dir)):
            data = path.read_bytes()
            keep = 8
            for _, _, last, _, stop in _scan(data, 8):
                if last > seq:
                    break
                keep = stop
            if keep == 8 and int(path.stem.split("-")[1]) > seq:
                path.unlink()
                continue
            os.truncate(path, keep)
            break
        self.close()
        self.last_seq = 0
        self._open_tail()

    def append(self, first_seq: int, last_seq: int, batch: bytes) -> None:
        """Add the batch of commands first_seq..last_seq (one write: readers see all of it or none)."""
        record = HEAD.pack(first_seq, last_seq, len(batch), _crc(first_seq, last_seq, batch)) + batch
        if self._fd < 0 or self._size + len(record) > self.segment_bytes:
            self._rotate(first_seq)
        written = os.write(self._fd, record)
        if written != len(record):  # a short write (disk full): stop rather than leave a hole mid-file
            raise OSError(f"{self.dir}: event log write of {len(record)} bytes wrote {written}; "
                          "free disk space and restart the matcher (it regenerates the event log)")
        self._size += len(record)
        self.last_seq = last_seq

    def _rotate(self, first_seq: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.dir / segment_name(first_seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, MAGIC)
        self._size = len(MAGIC)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class EventLogReader:
    """The reading end, owned by one thread; it indexes whole records as they appear.

        reader = EventLogReader(directory)
        reader.refresh()                       # index what was appended since
        for first, last, batch in reader.read(from_seq=42, max_batches=256, max_bytes=1 << 20):
            ...
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
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
        if paths[:len(self._paths)] != self._paths:
            self._reset()  # segments went away under us (cut back at a matcher restart): start over
        for path in paths[len(self._paths):]:
            self._paths.append(path)
            self._files.append(open(path, "rb"))
        while self._seg < len(self._paths):
            f = self._files[self._seg]
            if self._pos == 0:
                if f.read(8) != MAGIC:
                    return  # being created: nothing to read yet
                self._pos = 8
            f.seek(self._pos)
            data = f.read()
            base, seg = self._pos, self._seg
            for _, first, last, start, stop in _scan(data, 0):
                if self._lasts and first != self._lasts[-1] + 1:
                    self._reset()  # rewritten under us: start over
                    return self.refresh()
                self._firsts.append(first)
                self._lasts.append(last)
                self._segs.append(seg)
                self._starts.append(base + start)
                self._ends.append(base + stop)
                self._pos = base + stop
            if self._seg == len(self._paths) - 1:
                return
            self._seg += 1
            self._pos = 0

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
        self._files: list = []
        self._seg = 0  # the segment being indexed, and the offset indexed up to in it
        self._pos = 0

    def read(self, from_seq: int, max_batches: int = 256, max_bytes: int = 1 << 20) -> list[tuple[int, int, bytes]]:
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
