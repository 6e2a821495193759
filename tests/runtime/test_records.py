"""Record files: the torn-tail rule at every byte, every flipped bit found, rotation's edges."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from zex.nodes.runtime.durability import SyncPolicy
from zex.nodes.runtime.records import HEADER, MAGIC_SIZE, Layout, RecordDamaged, RecordWriter, frame

LAYOUT = Layout(b"ZEXTEST1", "test", ".zt", what="zex test segment")


def writer(directory, segment_bytes: int = 1 << 20, rotate_s: float = 0.0, **kw) -> RecordWriter:
    return RecordWriter(LAYOUT, directory, SyncPolicy("off", 0.0), segment_bytes, rotate_s, **kw)


def bodies(n: int) -> list[tuple[bytes, bytes]]:
    """Records of varied sizes (head, payload), the payloads non-zero so a zero run is not one."""
    return [
        (i.to_bytes(8, "little"), bytes([i % 250 + 1]) * (i * 7 % 40 + 1)) for i in range(1, n + 1)
    ]


def write_all(directory, records, **kw) -> list[int]:
    """Write the records, one commit each; return each record's end offset."""
    w = writer(directory, **kw)
    ends = []
    for i, (head, payload) in enumerate(records, 1):
        w.write(i, head, payload)
        ends.append(w.size)
    w.close()
    return ends


def test_a_record_is_its_header_then_its_body():
    rec = frame(b"ab", b"cdef")
    length, body_crc, head_crc = HEADER.unpack_from(rec)
    assert length == 6 and rec[HEADER.size :] == b"abcdef" and len(rec) == HEADER.size + 6
    import zlib

    assert body_crc == zlib.crc32(b"abcdef") and head_crc == zlib.crc32(rec[:8])


def test_torn_tail_at_every_byte_offset_of_the_last_record_is_cut_and_writing_goes_on(tmp_path):
    records = bodies(6)
    ends = write_all(tmp_path, records)
    (path,) = LAYOUT.segments(tmp_path)
    whole = path.read_bytes()
    start = ends[-2]
    for cut in range(start, len(whole)):
        path.write_bytes(whole[:cut])
        seg = LAYOUT.read(path, last=True)
        assert seg.damage is None, cut
        assert [b for _, b in seg.records] == [h + p for h, p in records[:-1]], cut
        assert seg.end == start and bool(seg.torn) == (cut > start), cut
        # In a closed segment the same cut is damage, at the record's offset.
        closed = LAYOUT.read(path, last=False)
        if cut > start:
            assert closed.damage is not None and closed.damage.offset == start, cut
            assert "inside a closed segment" in str(closed.damage)
            assert str(path) in str(closed.damage)
        w = writer(tmp_path)
        w.resume(path, seg.end)  # the torn tail is cut off, and the last record written again
        w.write(6, *records[-1])
        w.close()
        assert path.read_bytes() == whole, cut


def test_a_segment_cut_inside_its_magic_died_being_created(tmp_path):
    write_all(tmp_path, bodies(1))
    (path,) = LAYOUT.segments(tmp_path)
    for cut in range(MAGIC_SIZE):
        path.write_bytes(LAYOUT.magic[:cut])
        seg = LAYOUT.read(path, last=True)
        assert (seg.records, seg.end, seg.damage) == ([], 0, None)
        w = writer(tmp_path)
        w.resume(path, seg.end)
        assert not path.exists()  # removed: the next record makes the segment again
        w.close()
    path.write_bytes(b"ZEXOTHER" + bytes(20))
    assert "bad magic" in str(LAYOUT.read(path, last=True).damage)


@pytest.mark.parametrize("victim", ["middle", "last"])
def test_every_flipped_bit_of_a_header_and_a_body_is_found_with_file_and_offset(tmp_path, victim):
    records = bodies(5)
    ends = write_all(tmp_path, records)
    (path,) = LAYOUT.segments(tmp_path)
    whole = path.read_bytes()
    i = 2 if victim == "middle" else 4
    start, stop = ends[i - 1], ends[i]
    for byte in range(start, stop):
        for bit in range(8):
            data = bytearray(whole)
            data[byte] ^= 1 << bit
            path.write_bytes(bytes(data))
            seg = LAYOUT.read(path, last=True)
            in_header = byte < start + HEADER.size
            where = f"byte {byte - start} bit {bit}"
            if victim == "last" and not in_header:
                # The torn-tail rule: a last record whose body does not check was being written.
                assert seg.damage is None and seg.end == start and seg.torn, where
                continue
            assert seg.damage is not None, where
            assert (seg.damage.path, seg.damage.offset, seg.end) == (path, start, start), where
            assert str(seg.damage).startswith(f"{path}: offset {start}: record "), where
            what = "header" if in_header else "body"
            assert f"record {what} checksum mismatch" in seg.damage.why, where
            assert [b for _, b in seg.records] == [h + p for h, p in records[:i]]


def test_a_zero_filled_tail_is_torn_but_zeros_before_a_record_are_damage(tmp_path):
    ends = write_all(tmp_path, bodies(4))
    (path,) = LAYOUT.segments(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[: ends[1]] + bytes(len(whole) - ends[1]))  # size kept, data lost
    seg = LAYOUT.read(path, last=True)
    assert seg.damage is None and seg.end == ends[1] and len(seg.records) == 2
    path.write_bytes(whole[: ends[1]] + bytes(ends[2] - ends[1]) + whole[ends[2] :])
    seg = LAYOUT.read(path, last=True)
    assert seg.damage is not None and seg.damage.offset == ends[1]


def test_zeros_from_anywhere_in_a_record_to_the_end_of_the_last_segment_are_a_torn_tail(
    tmp_path, caplog
):
    # A power loss under fsync batch or off: the file grew by several group commits, and
    # the pages from somewhere in record 4's header or body on never reached the disk.
    records = bodies(6)
    ends = write_all(tmp_path, records)
    (path,) = LAYOUT.segments(tmp_path)
    whole = path.read_bytes()
    start, stop = ends[2], ends[3]
    for zero in range(start, stop):
        where = f"zeros from byte {zero - start} of the record"
        path.write_bytes(whole[:zero] + bytes(len(whole) - zero))
        seg = LAYOUT.read(path, last=True)
        assert seg.damage is None and seg.end == start and seg.torn, where
        assert [b for _, b in seg.records] == [h + p for h, p in records[:3]], where
        closed = LAYOUT.read(path, last=False)  # in a closed segment the same is damage
        assert closed.damage is not None and closed.damage.offset == start, where
        caplog.clear()
        w = writer(tmp_path)
        w.resume(path, seg.end, seg.torn)  # cut, logged, and writing goes on from there
        cut = f"{path}: cutting {len(whole) - start} bytes after offset {start}: torn tail ("
        assert cut in caplog.text, where
        for n in range(4, 7):
            w.write(n, *records[n - 1])
        w.close()
        assert path.read_bytes() == whole, where


@pytest.mark.parametrize("bad", ["body zeroed", "header bit", "body bit"])
def test_a_bad_record_followed_by_a_whole_one_is_damage_though_zeros_follow(tmp_path, bad):
    ends = write_all(tmp_path, bodies(6))
    (path,) = LAYOUT.segments(tmp_path)
    data = bytearray(path.read_bytes())
    start, stop = ends[2], ends[3]
    if bad == "body zeroed":
        data[stop - 5 : stop] = bytes(5)
    else:
        data[start + (2 if bad == "header bit" else HEADER.size + 3)] ^= 8
    data[ends[4] :] = bytes(len(data) - ends[4])  # record 5 whole, record 6 lost to zeros
    path.write_bytes(bytes(data))
    seg = LAYOUT.read(path, last=True)
    assert seg.damage is not None and seg.damage.offset == start and not seg.torn
    assert "checksum mismatch" in seg.damage.why and len(seg.records) == 3
    # Zeros to the end but one non-zero byte at the very end: damage too.
    data = bytearray(path.read_bytes())
    data[start + 20 :] = bytes(len(data) - start - 20)
    data[-1] = 1
    path.write_bytes(bytes(data))
    assert LAYOUT.read(path, last=True).damage.offset == start


def test_a_last_segment_of_zeros_or_of_part_of_its_magic_then_zeros_is_torn(tmp_path, caplog):
    w = writer(tmp_path, segment_bytes=MAGIC_SIZE + HEADER.size + 20)
    for n in (1, 2, 3):
        w.write(n, n.to_bytes(8, "little"), b"p" * 12)
    w.close()
    first, second, last = LAYOUT.segments(tmp_path)
    whole = last.read_bytes()
    for content in (bytes(len(whole)), bytes(3), LAYOUT.magic[:5] + bytes(len(whole) - 5)):
        last.write_bytes(content)
        seg = LAYOUT.read(last, last=True)
        assert (seg.records, seg.end, seg.damage) == ([], 0, None), content
        assert seg.torn == "torn tail (died while creating the segment)"
        # A closed segment of zeros is damage: it held records once.
        assert "bad magic" in str(LAYOUT.read(last, last=False).damage)
        caplog.clear()
        w = writer(tmp_path, segment_bytes=MAGIC_SIZE + HEADER.size + 20)
        w.resume(last, seg.end, seg.torn)
        assert not last.exists() and f"{last}: cutting {len(content)} bytes" in caplog.text
        w.write(3, (3).to_bytes(8, "little"), b"p" * 12)  # the same segment, made again
        w.close()
        assert last.read_bytes() == whole
    # Zeros where the magic goes, then something that is not zero: damage, not a torn tail.
    last.write_bytes(bytes(MAGIC_SIZE) + whole[MAGIC_SIZE:])
    assert "bad magic" in str(LAYOUT.read(last, last=True).damage)
    # Magic, then only zeros: torn right after the magic.
    last.write_bytes(LAYOUT.magic + bytes(40))
    seg = LAYOUT.read(last, last=True)
    assert (seg.records, seg.end, seg.damage) == ([], MAGIC_SIZE, None) and seg.torn


def test_rotation_at_its_boundaries(tmp_path):
    size = HEADER.size + 10  # every record here: a 10-byte body
    room = MAGIC_SIZE + 3 * size
    w = writer(tmp_path, segment_bytes=room)
    for n in range(1, 4):  # three fill the segment exactly: no rotation
        w.write(n, b"h" * 8, b"pp")
    assert [p.name for p in LAYOUT.segments(tmp_path)] == [LAYOUT.name(1)] and w.size == room
    w.write(4, b"h" * 8, b"pp")  # one byte over: a new segment, named by the number given
    assert [p.name for p in LAYOUT.segments(tmp_path)] == [LAYOUT.name(1), LAYOUT.name(4)]
    w.write(5, b"big" * room)  # bigger than a segment: a segment of its own
    w.write(6, b"h" * 8, b"pp")
    w.close()
    segs = LAYOUT.segments(tmp_path)
    assert [p.name for p in segs] == [LAYOUT.name(n) for n in (1, 4, 5, 6)]
    assert [len(LAYOUT.read(p, last=p == segs[-1]).records) for p in segs] == [3, 1, 1, 1]
    assert segs[0].stat().st_size == room
    # Records queued in one commit across a boundary land on both sides of it, in order.
    w = writer(tmp_path, segment_bytes=room)
    w.resume(segs[-1], LAYOUT.read(segs[-1], last=True).end)
    for n in range(7, 12):
        w.append(n, n.to_bytes(8, "little"), b"pp")
    w.commit()
    w.close()
    got = [
        int.from_bytes(b[:8], "little")
        for p in LAYOUT.segments(tmp_path)[3:]
        for _, b in LAYOUT.read(p, last=False).records
    ]
    assert got == [int.from_bytes(b"h" * 8, "little"), 7, 8, 9, 10, 11]


def test_counted_segments_and_a_segment_is_never_created_twice(tmp_path):
    w = writer(tmp_path, segment_bytes=MAGIC_SIZE + HEADER.size + 1, counted=True)
    for _ in range(3):
        w.write(999, b"x")  # counted: the number given is ignored
    w.close()
    assert [p.name for p in LAYOUT.segments(tmp_path)] == [LAYOUT.name(n) for n in (1, 2, 3)]
    w = writer(tmp_path / "b")
    (tmp_path / "b" / LAYOUT.name(7)).write_bytes(b"already here")
    with pytest.raises(FileExistsError):
        w.write(7, b"x")  # a second magic in the middle of a file would be damage
    w.close()


def test_a_failed_write_stops_the_writer_and_the_torn_tail_is_cut_at_restart(tmp_path):
    # A real short write: the file size limit (RLIMIT_FSIZE) in a child process, where a
    # write past it fails with EFBIG once SIGXFSZ is ignored. The child writes until it fails.
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from zex.nodes.runtime.records import Layout, RecordWriter
        from zex.nodes.runtime.durability import SyncPolicy
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
        layout = Layout(b"ZEXTEST1", "test", ".zt")
        w = RecordWriter(layout, {str(tmp_path)!r}, SyncPolicy("off", 0.0), 1 << 20)
        n = 0
        try:
            while True:
                n += 1
                w.write(n, n.to_bytes(8, "little"), b"p" * 90)
        except OSError as exc:
            print("first", n, exc)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        try:
            w.write(n + 1, b"more")
        except OSError as exc:
            print("then", exc)
        w.close()
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    first, then = out.stdout.splitlines()
    assert "write failed with" in first and "check the disk" in first
    assert "writing stopped after an earlier failure" in then  # nothing after the torn part
    (path,) = LAYOUT.segments(tmp_path)
    assert path.stat().st_size == 1000
    seg = LAYOUT.read(path, last=True)
    n = int(first.split()[1])
    assert seg.damage is None and seg.torn and len(seg.records) == n - 1
    w = writer(tmp_path)
    w.resume(path, seg.end)
    w.close()
    assert os.path.getsize(path) == seg.end


def test_damage_raises_the_layouts_own_error(tmp_path):
    class Mine(RecordDamaged):
        advice = "; do the thing"

    layout = Layout(b"ZEXTEST1", "test", ".zt", damaged=Mine)
    ends = write_all(tmp_path, bodies(3))
    (path,) = layout.segments(tmp_path)
    data = bytearray(path.read_bytes())
    data[ends[0] + 1] ^= 4
    path.write_bytes(bytes(data))
    damage = layout.read(path, last=True).damage
    assert isinstance(damage, Mine) and str(damage).endswith("; do the thing")
