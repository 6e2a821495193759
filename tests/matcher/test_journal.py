"""Journal and recovery: torn tails, corruption with file and offset, snapshot + tail == replay."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.journal import Journal, JournalCorrupt, scan, segments
from zex.nodes.matcher.recovery import RecoveryError, recover
from zex.nodes.matcher.snapshot import write_snapshot
from zex.nodes.matcher.workload import mixed_stream
from zex.nodes.runtime.records import HEADER
from zex.protocol.internal import command_decoder, encoder

SYMBOLS = ["XYZ"]


def build(
    directory: Path,
    batches: list[int],
    seed: int = 3,
    snapshot_after: int | None = None,
    segment_bytes: int | None = None,
) -> tuple[list[bytes], list[int]]:
    """Run an engine over batches of commands, journaling each batch as one record.

    Return the digest after each batch and the end offset (in the last segment) of each record.
    """
    engine = Engine(SYMBOLS)
    kw = {"segment_bytes": segment_bytes} if segment_bytes else {}
    journal = Journal(directory, fsync="off", **kw)
    stream = mixed_stream(sum(batches), seed=seed)
    digests, ends = [], []
    for i, size in enumerate(batches):
        first = engine.seq + 1
        raws = []
        for _ in range(size):
            cmd = next(stream)
            engine.process(cmd)
            raws.append(encoder.encode(cmd))
        engine.take_events()
        journal.write(first, raws)
        digests.append(engine.digest())
        ends.append(journal.size)
        if snapshot_after is not None and i == snapshot_after:
            write_snapshot(directory, engine.seq, journal.chain, engine.state_bytes())
    journal.close()
    return digests, ends


def test_torn_tail_at_every_byte_offset_of_last_record(tmp_path):
    src = tmp_path / "src"
    digests, ends = build(src, [5, 7, 3, 6])
    (seg,) = segments(src)
    start, end = ends[-2], ends[-1]
    assert end == seg.stat().st_size
    for cut in range(start, end):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(src, d)
        os.truncate(d / seg.name, cut)
        engine, journal = recover(d, SYMBOLS, fsync="off")
        assert engine.digest() == digests[-2], f"cut at {cut}"
        assert journal.next_seq == 5 + 7 + 3 + 1
        # The tail was cut back to the last whole record, and writing goes on from there.
        assert (d / seg.name).stat().st_size == start
        more = encoder.encode(next(mixed_stream(1, seed=99, prefix="z")))
        journal.write(journal.next_seq, [more])
        journal.close()
        assert [r.last_seq for r in scan(d)][-1] == 5 + 7 + 3 + 1
        shutil.rmtree(d)


def test_zero_filled_tail_is_torn_not_corrupt(tmp_path):
    digests, ends = build(tmp_path, [4, 4])
    (seg,) = segments(tmp_path)
    with open(seg, "r+b") as f:
        f.seek(ends[0])
        f.write(bytes(ends[1] - ends[0]))
    engine, _ = recover(tmp_path, SYMBOLS, fsync="off")
    assert engine.digest() == digests[0]


def test_zeros_from_inside_a_record_to_the_end_after_a_power_loss_are_a_torn_tail(tmp_path):
    # fsync off: three group commits grew the file, only its first page reached the disk.
    j = Journal(tmp_path, fsync="off")
    for s in (1, 2, 3):
        j.write(s, [b"x" * 3000])
    j.close()
    (seg,) = segments(tmp_path)
    whole = seg.read_bytes()
    seg.write_bytes(whole[:4096] + bytes(len(whole) - 4096))
    assert [r.first_seq for r in scan(tmp_path)] == [1]  # was JournalCorrupt at offset 3052
    j = Journal(tmp_path, fsync="off")
    assert j.next_seq == 2 and seg.stat().st_size == 8 + HEADER.size + 3032
    for s in (2, 3):  # the same commands again: the same bytes, the chain unbroken
        j.write(s, [b"x" * 3000])
    j.close()
    assert seg.read_bytes() == whole


def test_a_last_segment_of_zeros_is_torn_and_the_journal_goes_on(tmp_path):
    digests, _ = build(tmp_path, [20] * 12, segment_bytes=2048)
    segs = segments(tmp_path)
    first_lost = int(segs[-1].stem.rsplit("-", 1)[1])
    segs[-1].write_bytes(bytes(segs[-1].stat().st_size))
    engine, journal = recover(tmp_path, SYMBOLS, fsync="off")
    assert journal.next_seq == first_lost and not segs[-1].exists()
    more = encoder.encode(next(mixed_stream(1, seed=99, prefix="z")))
    journal.write(first_lost, [more])
    journal.close()
    assert segments(tmp_path)[-1] == segs[-1]  # made again, under the same name
    assert [r.last_seq for r in scan(tmp_path)][-1] == first_lost
    # The same zeros in a closed segment are damage.
    segs[0].write_bytes(bytes(segs[0].stat().st_size))
    with pytest.raises(JournalCorrupt, match="bad magic") as info:
        recover(tmp_path, SYMBOLS, fsync="off")
    assert info.value.path == segs[0]


@pytest.mark.parametrize("where", ["length", "header_crc", "seq", "chain", "command"])
def test_flipped_bit_in_middle_record_names_file_and_offset(tmp_path, where):
    _, ends = build(tmp_path, [4, 5, 6, 3])
    (seg,) = segments(tmp_path)
    offset = ends[1]  # the third record, followed by a fourth
    delta = {
        "length": 1,
        "header_crc": 9,
        "seq": HEADER.size + 2,
        "chain": HEADER.size + 14,
        "command": HEADER.size + 40,
    }[where]
    data = bytearray(seg.read_bytes())
    data[offset + delta] ^= 0x10
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as info:
        recover(tmp_path, SYMBOLS, fsync="off")
    assert info.value.path == seg
    assert info.value.offset == offset
    assert str(seg) in str(info.value) and f"offset {offset}" in str(info.value)


def test_rewritten_record_with_valid_crc_breaks_the_chain(tmp_path):
    _, ends = build(tmp_path, [4, 5, 6])
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    start = ends[0]
    length, _, _ = HEADER.unpack_from(data, start)
    body = bytearray(data[start + HEADER.size : start + HEADER.size + length])
    body[-1] ^= 0x01  # change a command, then forge both checksums
    h = struct.pack("<II", length, zlib.crc32(bytes(body)))
    data[start : start + HEADER.size + length] = h + struct.pack("<I", zlib.crc32(h)) + bytes(body)
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="hash chain broken") as info:
        recover(tmp_path, SYMBOLS, fsync="off")
    assert info.value.offset == start


def test_removed_record_is_a_sequence_gap(tmp_path):
    _, ends = build(tmp_path, [4, 5, 6])
    (seg,) = segments(tmp_path)
    data = seg.read_bytes()
    seg.write_bytes(data[: ends[0]] + data[ends[1] :])
    with pytest.raises(JournalCorrupt, match="sequence jumps from 4 to 10"):
        recover(tmp_path, SYMBOLS, fsync="off")


def test_snapshot_plus_tail_equals_full_replay(tmp_path):
    digests, _ = build(tmp_path, [50, 70, 30, 60, 40], snapshot_after=2)
    assert len(list(tmp_path.glob("snapshot-*.zs"))) == 1
    with_snap, j1 = recover(tmp_path, SYMBOLS, fsync="off")
    j1.close()
    full, j2 = recover(tmp_path, SYMBOLS, fsync="off", use_snapshot=False)
    j2.close()
    assert with_snap.seq == full.seq == 250
    assert with_snap.digest() == full.digest() == digests[-1]
    assert with_snap.state_bytes() == full.state_bytes()


def test_snapshot_from_another_journal_is_refused(tmp_path):
    build(tmp_path / "a", [10, 10], snapshot_after=0, seed=1)
    build(tmp_path / "b", [10, 10], seed=2)
    snap = next((tmp_path / "a").glob("snapshot-*.zs"))
    shutil.copy(snap, tmp_path / "b" / snap.name)
    with pytest.raises(RecoveryError, match="another journal"):
        recover(tmp_path / "b", SYMBOLS, fsync="off")


def test_snapshot_ahead_of_journal_is_refused(tmp_path):
    build(tmp_path, [10, 10], snapshot_after=1)
    for seg in segments(tmp_path):
        seg.unlink()
    with pytest.raises(RecoveryError, match="journal segments are missing"):
        recover(tmp_path, SYMBOLS, fsync="off")


def test_rotation_and_torn_tail_in_closed_segment(tmp_path):
    digests, _ = build(tmp_path, [20] * 12, segment_bytes=2048)
    segs = segments(tmp_path)
    assert len(segs) > 2
    engine, j = recover(tmp_path, SYMBOLS, fsync="off")
    j.close()
    assert engine.digest() == digests[-1] and engine.seq == 240
    # A short closed segment is damage, not a torn tail: only the last segment may be torn.
    os.truncate(segs[0], segs[0].stat().st_size - 3)
    with pytest.raises(JournalCorrupt) as info:
        recover(tmp_path, SYMBOLS, fsync="off")
    assert info.value.path == segs[0]


def test_replay_is_byte_identical(tmp_path):
    build(tmp_path, [25, 25, 25, 25])

    def replay() -> bytes:
        engine = Engine(SYMBOLS, digest_every=10)
        out = []
        for r in scan(tmp_path):
            for raw in r.commands:
                engine.process(command_decoder.decode(raw))
            out.append(encoder.encode(engine.take_events()))
        return b"".join(out)

    first = replay()
    assert first == replay()
    assert len(first) > 1000


def test_journal_refuses_a_sequence_gap_on_write(tmp_path):
    j = Journal(tmp_path, fsync="off")
    j.write(1, [b"\x91\x01"])
    with pytest.raises(ValueError, match="expects seq 2"):
        j.write(5, [b"\x91\x01"])
    j.close()
