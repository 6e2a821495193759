"""Snapshots: the engine's whole state at a batch boundary, written atomically.

    snapshot-<seq, 20 digits>.zs
      magic  8 bytes  b"ZEXSNAP1"
      u32    crc32 of everything after this field
      u64    seq: the last command the state includes
      16B    journal chain value after that command's record
      state  EngineState, MessagePack (engine.py)

Written to a temporary name, fsynced, then renamed, so a crash leaves either
the old snapshot or the new one, never half of one. Recovery takes the newest
snapshot that verifies and replays the journal after it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .state import EngineState, state_decoder

MAGIC = b"ZEXSNAP1"
HEAD = struct.Struct("<Q16s")
KEEP = 2  # snapshots kept on disk; older ones are removed after a new one lands

log = logging.getLogger("zex.matcher")


@dataclass(frozen=True)
class Snapshot:
    seq: int
    chain: bytes
    state: EngineState
    path: Path


def snapshot_name(seq: int) -> str:
    return f"snapshot-{seq:020d}.zs"


def write_snapshot(directory: Path, seq: int, chain: bytes, state: bytes | list[bytes]) -> Path:
    """Write a snapshot atomically and prune old ones; return its path.

    ``state``: the state's bytes, or buffers that are those bytes in order (Engine.state_parts).
    """
    directory = Path(directory)
    parts = [state] if isinstance(state, (bytes, bytearray, memoryview)) else state
    head = HEAD.pack(seq, chain)
    crc = zlib.crc32(head)
    for part in parts:  # in pieces: no 50 MB concatenation
        crc = zlib.crc32(part, crc)
    final = directory / snapshot_name(seq)
    tmp = final.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<I", crc) + head)
        for part in parts:
            f.write(part)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in sorted(directory.glob("snapshot-*.zs"))[:-KEEP]:
        old.unlink()
    return final


class SnapshotWriter:
    """Writes snapshots in a thread of its own, so the matcher never waits for the disk.

        writer = SnapshotWriter(data_dir)
        writer.submit(seq, chain, engine.state_parts())   # returns at once
        writer.close()                                     # writes what is pending, then stops

    A 50 MB snapshot's write and fsync took 0.1-0.5 s here; on the matcher's thread
    that was a stall of every order behind it. If a snapshot is still being written
    when the next is submitted, only the newest pending one is kept: recovery needs
    one good snapshot and the journal after it, and the journal has everything.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.written = 0
        self.skipped = 0  # submitted but replaced by a newer one before it was written
        self.last_seq = 0
        self.error: Exception | None = None
        self._cv = threading.Condition()
        self._next: tuple[int, bytes, bytes | list[bytes]] | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="zex-snapshots", daemon=True)
        self._thread.start()

    def submit(self, seq: int, chain: bytes, state: bytes | list[bytes]) -> None:
        with self._cv:
            if self._next is not None:
                self.skipped += 1
            self._next = (seq, chain, state)
            self._cv.notify()

    def close(self, timeout: float = 60.0) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._next is None and not self._closing:
                    self._cv.wait()
                if self._next is None:
                    return
                job, self._next = self._next, None
            try:
                write_snapshot(self.dir, *job)
            except Exception as exc:  # the journal still has everything: log it, keep matching
                self.error = exc
                log.error(
                    "snapshot at seq %d not written: %s; check the disk under %s (recovery "
                    "replays more of the journal until one is written)",
                    job[0],
                    exc,
                    self.dir,
                )
                continue
            self.written += 1
            self.last_seq = job[0]


def read_snapshot(path: Path) -> Snapshot:
    data = Path(path).read_bytes()
    if data[:8] != MAGIC or len(data) < 12 + HEAD.size:
        raise ValueError(f"{path}: not a zex snapshot")
    (crc,) = struct.unpack_from("<I", data, 8)
    if zlib.crc32(data[12:]) != crc:
        raise ValueError(f"{path}: checksum mismatch")
    seq, chain = HEAD.unpack_from(data, 12)
    try:
        state = state_decoder.decode(data[12 + HEAD.size :])
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path}: state does not decode: {exc}") from None
    if state.seq != seq:
        raise ValueError(f"{path}: header seq {seq} differs from state seq {state.seq}")
    return Snapshot(seq, chain, state, Path(path))


def latest_snapshot(directory: Path) -> Snapshot | None:
    """The newest snapshot that verifies; a damaged one is reported and skipped for an older one."""
    for path in sorted(Path(directory).glob("snapshot-*.zs"), reverse=True):
        try:
            return read_snapshot(path)
        except ValueError as exc:
            log.warning("ignoring damaged snapshot: %s", exc)
    return None
