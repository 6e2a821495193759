"""The journal: append-only, checksummed, hash-chained batches of commands.

One record holds the commands of one matcher loop turn (a group commit), so
its checks and its write are paid once per batch. Layout, little-endian:

    segment file  journal-<first seq, 20 digits>.zj
      magic   8 bytes  b"ZEXJRNL1"
      record* 
    record
      u32  body length
      u32  crc32 of the body
      u32  crc32 of the eight bytes above   (a corrupt length is caught before it is trusted)
      body
        u64  first seq
        u32  command count
        16B  chain: blake2b-128(previous chain || first seq, count, commands)
        (u32 length, command bytes) * count

A torn tail (the process died mid-write) is cut back to the last whole
record, which was the last one that could have been acknowledged. Damage
anywhere else stops recovery with JournalCorrupt naming the file and offset:
a record is never skipped silently.

fsync policy (config ``fsync``):
  always  fsync after every group commit, before any ack: survives power loss.
  batch   fsync every ``fsync_interval_ms`` while there are new records, in a
          syncer thread (durability.py), never on the matcher's: a power loss
          may lose the last interval of acked commands; a process crash loses nothing.
  off     never fsync: the OS writes back when it likes; a process crash
          loses nothing, a power loss may lose seconds.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from zex.protocol.errors import ZexError

from ..runtime.durability import SyncPolicy

MAGIC = b"ZEXJRNL1"
HEADER = struct.Struct("<III")
BODY_HEAD = struct.Struct("<QI16s")
U32 = struct.Struct("<I")
SEGMENT_BYTES = 64 * 1024 * 1024  # rotate at this size; 16..1024 MiB is reasonable
GENESIS = bytes(16)  # the chain value before the first record


class JournalCorrupt(ZexError):
    """The journal is damaged somewhere other than a torn tail; recovery must stop."""

    def __init__(self, path: Path, offset: int, why: str) -> None:
        super().__init__(f"{path}: offset {offset}: {why}; restore the file from a replica or backup")
        self.path = path
        self.offset = offset


@dataclass(frozen=True)
class Record:
    first_seq: int
    commands: list[bytes]
    chain: bytes
    path: Path
    offset: int

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.commands) - 1


def chain_next(prev: bytes, head: bytes, payload: bytes) -> bytes:
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(head)
    h.update(payload)
    return h.digest()


def segment_name(first_seq: int) -> str:
    return f"journal-{first_seq:020d}.zj"


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal-*.zj"))


def _parse_commands(payload: bytes, count: int, path: Path, offset: int) -> list[bytes]:
    out = []
    pos = 0
    unpack = U32.unpack_from
    for _ in range(count):
        (n,) = unpack(payload, pos)
        pos += 4
        out.append(payload[pos:pos + n])
        pos += n
    if pos != len(payload):
        raise JournalCorrupt(path, offset, "command lengths do not add up to the record length")
    return out


def read_segment(path: Path, *, last: bool) -> tuple[list[Record], int]:
    """Read every whole record of one segment; return them and the end offset of the last.

    For the last segment a torn tail is tolerated (its offset is returned so the
    caller can cut it off); in any other segment it is corruption.
    """
    data = path.read_bytes()
    if data[:8] != MAGIC:
        if last and len(data) < 8 and MAGIC.startswith(data):
            return [], 0  # died while creating the segment
        raise JournalCorrupt(path, 0, "not a zex journal segment (bad magic)")
    records: list[Record] = []
    pos, end = 8, len(data)
    while pos < end:
        if end - pos < HEADER.size:
            return _torn(path, pos, last, records, "partial record header")
        length, body_crc, head_crc = HEADER.unpack_from(data, pos)
        if zlib.crc32(data[pos:pos + 8]) != head_crc:
            if last and not any(data[pos:]):
                return _torn(path, pos, last, records, "zero-filled tail")
            raise JournalCorrupt(path, pos, "record header checksum mismatch")
        start = pos + HEADER.size
        stop = start + length
        if stop > end:
            return _torn(path, pos, last, records, "record runs past the end of the file")
        body = data[start:stop]
        if zlib.crc32(body) != body_crc:
            if last and stop == end:
                return _torn(path, pos, last, records, "last record checksum mismatch")
            raise JournalCorrupt(path, pos, "record body checksum mismatch")
        if length < BODY_HEAD.size:
            raise JournalCorrupt(path, pos, "record body shorter than its fixed part")
        first_seq, count, chain = BODY_HEAD.unpack_from(body, 0)
        cmds = _parse_commands(body[BODY_HEAD.size:], count, path, pos)
        records.append(Record(first_seq, cmds, chain, path, pos))
        pos = stop
    return records, pos


def _torn(path: Path, pos: int, last: bool, records: list[Record], why: str) -> tuple[list[Record], int]:
    if not last:
        raise JournalCorrupt(path, pos, f"{why} inside a closed segment")
    return records, pos


def scan(directory: Path) -> Iterator[Record]:
    """Yield every record in order, verifying checksums, the chain and seq continuity.

    Does not modify anything; a torn tail simply ends the iteration.
    """
    paths = segments(directory)
    chain = GENESIS
    expect: int | None = None
    for i, path in enumerate(paths):
        records, _ = read_segment(path, last=i == len(paths) - 1)
        for r in records:
            if expect is not None and r.first_seq != expect:
                raise JournalCorrupt(r.path, r.offset,
                                     f"sequence jumps from {expect - 1} to {r.first_seq} (missing or repeated record)")
            payload = b"".join(U32.pack(len(c)) + c for c in r.commands)
            if chain_next(chain, struct.pack("<QI", r.first_seq, len(r.commands)), payload) != r.chain:
                raise JournalCorrupt(r.path, r.offset, "hash chain broken (a record was rewritten or removed)")
            chain = r.chain
            expect = r.last_seq + 1
            yield r


class Journal:
    """The writing end. Open it after recovery; it continues the chain and sequence."""

    def __init__(self, directory: Path, fsync: str = "always", fsync_interval_ms: float = 5.0,
                 segment_bytes: int = SEGMENT_BYTES,
                 on_record: Callable[[Record], None] | None = None) -> None:
        self._sync = SyncPolicy(fsync, fsync_interval_ms)
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.chain = GENESIS
        self.next_seq = 1
        self._file = None
        self._size = 0
        self._open_tail(on_record)

    def _open_tail(self, on_record: Callable[[Record], None] | None) -> None:
        """Verify the whole journal (handing each record to ``on_record``), cut a torn tail."""
        paths = segments(self.dir)
        for r in scan(self.dir):
            if on_record is not None:
                on_record(r)
            self.chain = r.chain
            self.next_seq = r.last_seq + 1
        if not paths:
            return
        tail = paths[-1]
        _, good = read_segment(tail, last=True)
        if good < 8:
            tail.unlink()  # a segment that died before its magic was written
            return
        if good < tail.stat().st_size:
            with open(tail, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        self._file = open(tail, "ab")
        self._size = good

    def _rotate(self, first_seq: int) -> None:
        if self._file is not None:
            self._file.flush()
            self._sync.on_close(self._file.fileno())
            self._file.close()
        path = self.dir / segment_name(first_seq)
        self._file = open(path, "ab")
        self._file.write(MAGIC)
        self._size = len(MAGIC)
        _fsync_dir(self.dir)

    def write(self, first_seq: int, commands: list[bytes]) -> None:
        """Append one batch (a group commit) and make it as durable as the policy says."""
        if first_seq != self.next_seq:
            raise ValueError(f"journal expects seq {self.next_seq} next, was given {first_seq}")
        pack = U32.pack
        payload = b"".join([pack(len(c)) + c for c in commands])
        head = struct.pack("<QI", first_seq, len(commands))
        chain = chain_next(self.chain, head, payload)
        body = head + chain + payload
        h = U32.pack(len(body)) + U32.pack(zlib.crc32(body))
        record = h + U32.pack(zlib.crc32(h)) + body
        if self._file is None or self._size + len(record) > self.segment_bytes:
            self._rotate(first_seq)
        self._file.write(record)
        self._file.flush()
        self._size += len(record)
        self.chain = chain
        self.next_seq = first_seq + len(commands)
        self._sync.after_write(self._file.fileno())

    def sync(self) -> None:
        """fsync what is written now, whatever the policy (before a snapshot is taken)."""
        if self._file is not None:
            self._sync.sync_now(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._sync.on_close(self._file.fileno())
            self._file.close()
            self._file = None
        self._sync.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
