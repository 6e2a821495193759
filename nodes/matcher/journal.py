"""The journal: append-only, checksummed, hash-chained batches of commands.

One record holds the commands of one matcher loop turn (a group commit), so
its checks and its write are paid once per batch. The files, the framing
(length, a CRC over the header and one over the body), the torn-tail rule,
rotation and the fsync policy are nodes/runtime/records.py's; the body is:

    segment file  journal-<first seq, 20 digits>.zj, magic b"ZEXJRNL1"
    record body, little-endian
      u64  first seq
      u32  command count
      16B  chain: blake2b-128(previous chain || first seq, count, commands)
      (u32 length, command bytes) * count

A torn tail (the process died mid-write) is cut back to the last whole
record, which was the last one that could have been acknowledged. Damage
anywhere else stops recovery with JournalCorrupt naming the file and offset:
a record is never skipped silently. The chain finds what the CRCs cannot: a
record rewritten with valid checksums, or one removed.

fsync policy (config ``fsync``):
  always  fsync after every group commit, before any ack: survives power loss.
  batch   fsync every ``fsync_interval_ms`` while there are new records, in a
          syncer thread (runtime/durability.py), never on the matcher's: a power loss
          may lose the last interval of acked commands; a process crash loses nothing.
  off     never fsync: the OS writes back when it likes; a process crash
          loses nothing, a power loss may lose seconds.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..runtime.durability import SyncPolicy
from ..runtime.records import Layout, RecordDamaged, RecordWriter

SEQ_COUNT = struct.Struct("<QI")
BODY_HEAD = struct.Struct("<QI16s")
U32 = struct.Struct("<I")
SEGMENT_BYTES = 64 * 1024 * 1024  # rotate at this size; 16..1024 MiB is reasonable
GENESIS = bytes(16)  # the chain value before the first record


class JournalCorrupt(RecordDamaged):
    """The journal is damaged somewhere other than a torn tail; recovery must stop."""

    advice = "; restore the file from a replica or backup"


LAYOUT = Layout(b"ZEXJRNL1", "journal", ".zj", what="zex journal segment", damaged=JournalCorrupt)
MAGIC = LAYOUT.magic


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
    return LAYOUT.name(first_seq)


def segments(directory: Path) -> list[Path]:
    return LAYOUT.segments(directory)


def _parse_commands(payload: bytes, count: int, path: Path, offset: int) -> list[bytes]:
    out = []
    pos = 0
    unpack = U32.unpack_from
    for _ in range(count):
        (n,) = unpack(payload, pos)
        pos += 4
        out.append(payload[pos : pos + n])
        pos += n
    if pos != len(payload):
        raise JournalCorrupt(path, offset, "command lengths do not add up to the record length")
    return out


def scan(directory: Path) -> Iterator[Record]:
    """Yield every record in order, verifying checksums, the chain and seq continuity.

    Does not modify anything; a torn tail simply ends the iteration.
    """
    return _scan(directory, None)


def _scan(directory: Path, tail: list | None) -> Iterator[Record]:
    """``scan``; at the end ``tail`` (if given) holds the last segment's path, resume offset
    and what was torn after it (for ``RecordWriter.resume``)."""
    paths = segments(directory)
    chain = GENESIS
    expect: int | None = None
    for i, path in enumerate(paths):
        seg = LAYOUT.read(path, last=i == len(paths) - 1)
        if seg.damage is not None:
            raise seg.damage
        for offset, body in seg.records:
            if len(body) < BODY_HEAD.size:
                raise JournalCorrupt(path, offset, "record body shorter than its fixed part")
            first_seq, count, rec_chain = BODY_HEAD.unpack_from(body, 0)
            if expect is not None and first_seq != expect:
                raise JournalCorrupt(
                    path,
                    offset,
                    f"sequence jumps from {expect - 1} to {first_seq} (missing or repeated record)",
                )
            payload = body[BODY_HEAD.size :]
            if chain_next(chain, body[: SEQ_COUNT.size], payload) != rec_chain:
                raise JournalCorrupt(
                    path, offset, "hash chain broken (a record was rewritten or removed)"
                )
            commands = _parse_commands(payload, count, path, offset)
            r = Record(first_seq, commands, rec_chain, path, offset)
            chain = rec_chain
            expect = r.last_seq + 1
            yield r
        if tail is not None and i == len(paths) - 1:
            tail[:] = [path, seg.end, seg.torn]


class Journal:
    """The writing end. Open it after recovery; it continues the chain and sequence."""

    def __init__(
        self,
        directory: Path,
        fsync: str = "always",
        fsync_interval_ms: float = 5.0,
        segment_bytes: int = SEGMENT_BYTES,
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        self.dir = Path(directory)
        sync = SyncPolicy(fsync, fsync_interval_ms, "matcher.fsync")
        self._w = RecordWriter(LAYOUT, self.dir, sync, segment_bytes)
        self.chain = GENESIS
        self.next_seq = 1
        self._open_tail(on_record)

    @property
    def segment_bytes(self) -> int:
        return self._w.segment_bytes

    @property
    def size(self) -> int:
        """Bytes in the current segment: the offset where the next record goes."""
        return self._w.size

    def _open_tail(self, on_record: Callable[[Record], None] | None) -> None:
        """Verify the whole journal (handing each record to ``on_record``), cut a torn tail."""
        tail: list = []
        for r in _scan(self.dir, tail):
            if on_record is not None:
                on_record(r)
            self.chain = r.chain
            self.next_seq = r.last_seq + 1
        if tail:
            self._w.resume(*tail)

    def write(self, first_seq: int, commands: list[bytes]) -> None:
        """Append one batch (a group commit) and make it as durable as the policy says."""
        if first_seq != self.next_seq:
            raise ValueError(f"journal expects seq {self.next_seq} next, was given {first_seq}")
        pack = U32.pack
        payload = b"".join([pack(len(c)) + c for c in commands])
        head = SEQ_COUNT.pack(first_seq, len(commands))
        chain = chain_next(self.chain, head, payload)
        self._w.write(first_seq, head + chain, payload)
        self.chain = chain
        self.next_seq = first_seq + len(commands)

    def sync(self) -> None:
        """fsync what is written now, whatever the policy (before a snapshot is taken)."""
        self._w.sync()

    def close(self) -> None:
        self._w.close()
