"""Record files: the one on-disk framing the journal, the event log and the audit segments share.

    segment file  <stem>-<number><suffix>   the number: the first seq it holds, or a counter
      magic   8 bytes, one per kind of file (b"ZEXJRNL1", b"ZEXEVLG2", b"ZEXAUDT2")
      record*
    record, little-endian
      u32  body length
      u32  crc32 of the body
      u32  crc32 of the 8 bytes above   the header's own check: a damaged length is caught
                                        before it is trusted to find the next record
      body                              laid out by the file's owner (journal.py, eventlog.py,
                                        logger/segments.py)

The two checksums cover the header and the body, so any flipped bit is found.

The torn-tail rule. A process that dies mid-write leaves part of its last
record; after a power loss the file may also end in zeros (the size was
written, the data not), and the zeros may start anywhere: at a record, in a
header, in a body, in the magic (several group commits between fsyncs each
grew the file; none of their pages reached the disk). In the last segment
of a directory, a partial header, a record that runs past the end of the
file, a record that does not check followed only by zeros to the end of the
file (none at all included), and a segment holding only part of its magic
or zeros are a torn tail: reading ends at the last whole record, and the
writer cuts the rest off (and logs it) when it resumes. That record was the
last that could have been acknowledged. Anything else that does not check
(followed by a non-zero byte, or anywhere in a closed segment) is damage:
``RecordDamaged`` names the file and the offset, and a record is never
skipped silently.

Rotation: a record that would take a segment past ``segment_bytes`` starts
a new one (a segment always takes at least one record, however big), and so
does any record once a segment is older than ``rotate_s`` (0: never).

Durability: ``commit`` writes the pending records with one write(2) (so a
reader sees a record whole or not at all) and then applies the writer's
SyncPolicy (durability.py: always, batch or off); closing or rotating a
segment makes it durable, and a new segment's directory entry is fsynced,
unless the policy is off.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic

from zex.protocol.errors import ZexError

from .durability import SyncPolicy

HEADER = struct.Struct("<III")  # body length, crc32 of the body, crc32 of the first 8 bytes
_LEN_CRC = struct.Struct("<II")
_U32 = struct.Struct("<I")
MAGIC_SIZE = 8
_crc32, _os_write = zlib.crc32, os.write  # module-level names: the append path is per matcher turn
_pack_len_crc, _pack_u32 = _LEN_CRC.pack, _U32.pack

log = logging.getLogger("zex.records")


class RecordDamaged(ZexError):
    """A record file is damaged somewhere other than a torn tail: its path, the offset, and what."""

    advice = ""  # a subclass says what the operator should do

    def __init__(self, path: Path, offset: int, why: str) -> None:
        super().__init__(f"{path}: offset {offset}: {why}{self.advice}")
        self.path, self.offset, self.why = Path(path), offset, why


@dataclass(frozen=True)
class Segment:
    """What reading one segment found."""

    path: Path
    records: list[tuple[int, bytes]]  # (offset of the record, its body), the whole ones in order
    end: int  # the offset after the last whole record: where a writer resumes
    damage: RecordDamaged | None = None  # reading stopped here (never set for a torn tail)
    torn: str = ""  # why the bytes after ``end`` are a torn tail ("" when there are none)


@dataclass(frozen=True)
class Layout:
    """One kind of record file: its magic, its file names, and the words for its errors.

    JOURNAL = Layout(b"ZEXJRNL1", "journal", ".zj", digits=20, what="zex journal segment")
    """

    magic: bytes
    stem: str
    suffix: str
    digits: int = 20
    what: str = "zex record file"
    damaged: type[RecordDamaged] = field(default=RecordDamaged)  # the error this kind raises

    def __post_init__(self) -> None:
        if len(self.magic) != MAGIC_SIZE:
            raise ValueError(f"magic must be {MAGIC_SIZE} bytes, was {self.magic!r}")

    def name(self, number: int) -> str:
        return f"{self.stem}-{number:0{self.digits}d}{self.suffix}"

    def number(self, path: Path) -> int:
        return int(Path(path).stem.rsplit("-", 1)[1])

    def segments(self, directory: Path) -> list[Path]:
        """The segments in ``directory``, oldest first (the numbers sort as they grow)."""
        return sorted(Path(directory).glob(f"{self.stem}-*{self.suffix}"))

    def scan(
        self,
        data: bytes,
        pos: int,
        path: Path,
        *,
        last: bool,
        base: int = 0,
        torn: list[str] | None = None,
    ) -> Iterator[tuple[int, int, int]]:
        """Yield (offset, body start, body end) of each whole record in ``data`` from ``pos``.

        ``data`` is the file from offset ``base`` on (offsets yielded are into ``data``;
        errors name ``base`` + offset). With ``last`` a torn tail ends the iteration (and
        ``torn``, if given, gets why); anything else that does not check raises
        ``self.damaged``.
        """
        end = len(data)
        head, crc32 = HEADER.unpack_from, zlib.crc32
        view = memoryview(data)  # checksums over slices of it copy nothing
        while pos < end:
            if end - pos < HEADER.size:
                self._torn(path, base + pos, last, "partial record header", torn)
                return
            length, body_crc, head_crc = head(data, pos)
            start = pos + HEADER.size
            if crc32(view[pos : pos + 8]) != head_crc:
                # A header that does not check and nothing but zeros after it: the zeros
                # began in it (or at it) and ran to the end, so the length is not trusted.
                if _zeros_from(data, start):
                    why = "zero-filled tail" if _zeros_from(data, pos) else "header then zeros"
                    self._torn(path, base + pos, last, why, torn)
                    return
                raise self.damaged(path, base + pos, "record header checksum mismatch")
            stop = start + length
            if stop > end:
                self._torn(path, base + pos, last, "record runs past the end of the file", torn)
                return
            if crc32(view[start:stop]) != body_crc:
                if _zeros_from(data, stop):  # the last record, or only zeros after it
                    why = "last record's body checksum mismatch"
                    self._torn(path, base + pos, last, why, torn)
                    return
                raise self.damaged(path, base + pos, "record body checksum mismatch")
            yield pos, start, stop
            pos = stop

    def _torn(self, path: Path, offset: int, last: bool, why: str, torn: list | None) -> None:
        if not last:
            raise self.damaged(path, offset, f"{why} inside a closed segment")
        if torn is not None:
            torn.append(f"{why} at offset {offset}")

    def read(self, path: Path, *, last: bool) -> Segment:
        """Every whole record of one segment, where a writer would resume, and the damage if any.

        ``last``: the newest segment of its directory, where a torn tail is allowed.
        """
        data = Path(path).read_bytes()
        early = self.begin(data, path, last=last)
        if early is not None:
            return early
        records: list[tuple[int, bytes]] = []
        end = MAGIC_SIZE
        why: list[str] = []
        try:
            for offset, start, stop in self.scan(data, MAGIC_SIZE, path, last=last, torn=why):
                records.append((offset, data[start:stop]))
                end = stop
        except RecordDamaged as exc:
            return Segment(Path(path), records, exc.offset, exc)
        return Segment(Path(path), records, end, torn=f"torn tail ({why[0]})" if why else "")

    def begin(self, data: bytes, path: Path, *, last: bool) -> Segment | None:
        """None when ``data`` (a whole segment) starts with the magic, else what reading ends with.

        For a reader that walks the records with ``scan`` itself instead of ``read``.
        """
        if data[:MAGIC_SIZE] == self.magic:
            return None
        # Part of the magic, then zeros (or nothing): the segment died being created,
        # or the power went before its first page reached the disk.
        begun = data[:MAGIC_SIZE].rstrip(b"\0")
        if last and self.magic.startswith(begun) and _zeros_from(data, len(begun)):
            torn = "torn tail (died while creating the segment)" if data else ""
            return Segment(Path(path), [], 0, torn=torn)
        return Segment(Path(path), [], 0, self.damaged(path, 0, f"not a {self.what} (bad magic)"))


def _zeros_from(data: bytes, pos: int) -> bool:
    """Whether every byte of ``data`` from ``pos`` on is zero (true at or past the end)."""
    return data.count(0, pos) == len(data) - pos if pos < len(data) else True


def frame(head: bytes, payload: bytes) -> bytes:
    """One record whose body is ``head`` + ``payload`` (the payload is copied once)."""
    h = _LEN_CRC.pack(len(head) + len(payload), _crc32(payload, _crc32(head)))
    return b"".join((h, _U32.pack(_crc32(h)), head, payload))


class RecordWriter:
    """The appending end of one directory of segments, owned by one thread.

    w = RecordWriter(layout, directory, SyncPolicy("batch", 5.0, "matcher.fsync"), 64 << 20)
    w.resume(tail_path, seg.end, seg.torn)  # after reading the tail: cut a torn tail, go on there
    w.append(first_seq, head, payload)    # buffered; ``number`` names a segment it starts
    w.commit()                            # one write(2), then fsync by the policy
    w.write(first_seq, head, payload)     # append + commit
    w.close()
    """

    def __init__(
        self,
        layout: Layout,
        directory: Path,
        sync: SyncPolicy,
        segment_bytes: int,
        rotate_s: float = 0.0,
        *,
        counted: bool = False,
    ) -> None:
        if segment_bytes <= MAGIC_SIZE:
            raise ValueError(f"segment_bytes must be above {MAGIC_SIZE}, was {segment_bytes}")
        self.layout = layout
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sync_policy = sync
        self._after_write = None if sync.policy == "off" else sync.after_write
        self.segment_bytes = segment_bytes
        self.rotate_s = rotate_s
        self.counted = counted  # segments numbered 1, 2, ... instead of by the number appends give
        self.number = 0  # the current segment's number
        self.path: Path | None = None
        self.size = 0  # bytes in the current segment, pending ones included
        self._fd = -1
        self._opened = 0.0
        self._pending: list[bytes] = []
        self._failed: OSError | None = None

    def resume(self, path: Path, end: int, why: str = "") -> None:
        """Append to ``path`` after its last whole record at ``end``, cutting anything after it.

        A file with no whole magic died while being created: it is removed. ``why``: what
        reading found after ``end`` (``Segment.torn``), for the warning that logs a cut.
        """
        path = Path(path)
        self.number = self.layout.number(path)
        size = path.stat().st_size
        if end < size:
            log.warning(
                "%s: cutting %d bytes after offset %d: %s",
                path,
                size - end,
                end,
                why or "not whole records",
            )
        if end < MAGIC_SIZE:
            path.unlink()
            self.number -= 1  # a counted layout makes the same segment again
            return
        if end < size:
            os.truncate(path, end)
            if self.sync_policy.policy != "off":
                self._fsync_file(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.path, self.size, self._opened = path, end, monotonic()

    def append(self, number: int, head: bytes, payload: bytes = b"") -> None:
        """Queue one record (body: ``head`` + ``payload``) for the next commit."""
        record = frame(head, payload)
        size = self.size
        if self._fd < 0 or (
            size > MAGIC_SIZE
            and (
                size + len(record) > self.segment_bytes
                or (self.rotate_s and monotonic() - self._opened >= self.rotate_s)
            )
        ):
            self._rotate(number)
        self._pending.append(record)
        self.size += len(record)

    def commit(self) -> None:
        """Write the queued records with one write(2), then fsync as the policy says."""
        if not self._pending:
            return
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._write(data)
        if self._after_write is not None:
            self._after_write(self._fd)

    def write(self, number: int, head: bytes, payload: bytes = b"") -> None:
        """Append one record and commit it: ``append`` + ``commit``, flat.

        The journal's and the event log's path, once per matcher turn, so it frames
        and writes in one function instead of going through both (bench/records_bench.py).
        """
        if self._pending:
            self.commit()
        h = _pack_len_crc(len(head) + len(payload), _crc32(payload, _crc32(head)))
        record = b"".join((h, _pack_u32(_crc32(h)), head, payload))
        size = self.size
        n = len(record)
        if self._fd < 0 or (
            size > MAGIC_SIZE
            and (
                size + n > self.segment_bytes
                or (self.rotate_s and monotonic() - self._opened >= self.rotate_s)
            )
        ):
            self._rotate(number)
        written = 0
        if self._failed is None:
            try:
                written = _os_write(self._fd, record)
            except OSError as exc:
                raise self._fail(exc, n, 0) from exc
        if written != n:
            self._write(record, written)  # finishes a short write, or refuses after a failure
        self.size += n
        if self._after_write is not None:
            self._after_write(self._fd)

    def sync(self) -> None:
        """fsync what is written now, whatever the policy (before a snapshot is taken)."""
        if self._fd >= 0:
            self.sync_policy.sync_now(self._fd)

    def close(self) -> None:
        """Write what is pending, make the segment durable (unless the policy is off), stop."""
        try:
            if self._fd >= 0 and self._failed is None:
                self.commit()
                self.sync_policy.on_close(self._fd)
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self.sync_policy.close()

    def _write(self, data: bytes, written: int = 0) -> None:
        """Write ``data`` from offset ``written`` on, all of it or raise (and stop the writer)."""
        if self._failed is not None:
            raise OSError(
                f"{self.path}: writing stopped after an earlier failure "
                f"({self._failed}); restart once the disk is fixed (the torn tail is "
                "cut then)"
            )
        try:
            while written < len(data):  # after a short write the next call says why, or goes on
                written += os.write(self._fd, memoryview(data)[written:])
        except OSError as exc:
            raise self._fail(exc, len(data), written) from exc

    def _fail(self, exc: OSError, size: int, written: int) -> OSError:
        # A part of a record may be in the file: appending after it would put damage
        # in the middle, so this writer stops, and a restart cuts the torn tail.
        self._failed = exc
        return OSError(
            exc.errno,
            f"{self.path}: write failed with {size - written} of {size} "
            f"bytes unwritten: {exc.strerror}; check the disk (full? read-only?) "
            "and restart",
        )

    def _rotate(self, number: int) -> None:
        if self._fd >= 0:
            if self._pending:
                data = b"".join(self._pending)
                self._pending.clear()
                self._write(data)
            self.sync_policy.on_close(self._fd)
            os.close(self._fd)
            self._fd = -1
        self.number = self.number + 1 if self.counted else number
        path = self.dir / self.layout.name(self.number)
        # O_EXCL: never append a second magic to a segment that is already there.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.path, self._opened = path, monotonic()
        self._write(self.layout.magic)
        self.size = MAGIC_SIZE
        if self.sync_policy.policy != "off":
            fsync_dir(self.dir)  # the new file's name survives a power loss with its records

    @staticmethod
    def _fsync_file(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
