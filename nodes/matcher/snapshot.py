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


def write_snapshot(directory: Path, seq: int, chain: bytes, state: bytes) -> Path:
    """Write a snapshot atomically and prune old ones; return its path."""
    directory = Path(directory)
    rest = HEAD.pack(seq, chain) + state
    data = MAGIC + struct.pack("<I", zlib.crc32(rest)) + rest
    final = directory / snapshot_name(seq)
    tmp = final.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
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


def read_snapshot(path: Path) -> Snapshot:
    data = Path(path).read_bytes()
    if data[:8] != MAGIC or len(data) < 12 + HEAD.size:
        raise ValueError(f"{path}: not a zex snapshot")
    (crc,) = struct.unpack_from("<I", data, 8)
    if zlib.crc32(data[12:]) != crc:
        raise ValueError(f"{path}: checksum mismatch")
    seq, chain = HEAD.unpack_from(data, 12)
    try:
        state = state_decoder.decode(data[12 + HEAD.size:])
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
