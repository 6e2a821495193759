"""Audit segments: torn tails cut, damage reported with file and offset, rotation by size, age."""

from __future__ import annotations

import subprocess
import sys
import time

from zex.nodes.logger.query import verify
from zex.nodes.logger.segments import KIND_AUDIT, KIND_EVENTS, AuditWriter, read, scan, segments
from zex.nodes.runtime.records import HEADER
from zex.protocol.internal import AuditRecord, EventBatch, encoder


def batch(first: int, last: int) -> bytes:
    return encoder.encode(EventBatch(first, last, []))


def audit(kind: str) -> bytes:
    return encoder.encode(AuditRecord(1, "gw1", kind, "alice"))


def test_torn_tail_is_cut_at_every_byte_offset(tmp_path):
    w = AuditWriter(tmp_path, fsync="off")
    for s in range(1, 5):
        w.append(KIND_EVENTS, batch(s, s), ts=s)
    w.commit()
    w.close()
    path = segments(tmp_path)[-1]
    whole = path.read_bytes()
    last_size = HEADER.size + 9 + len(batch(4, 4))  # record header, kind + ts, the batch
    for cut in range(len(whole) - last_size, len(whole)):
        path.write_bytes(whole[:cut])
        w = AuditWriter(tmp_path, fsync="off")  # opening cuts the torn record
        w.append(KIND_EVENTS, batch(4, 4), ts=4)
        w.commit()
        w.close()
        assert [e.ts for e in scan(tmp_path)] == [1, 2, 3, 4], cut
        assert verify(tmp_path).ok


def test_a_flipped_bit_is_reported_with_file_and_offset(tmp_path):
    w = AuditWriter(tmp_path, fsync="off", segment_bytes=150)  # several segments
    for s in range(1, 13):
        w.append(KIND_EVENTS, batch(s, s))
        w.append(KIND_AUDIT, audit("logon"))
    w.close()
    paths = segments(tmp_path)
    assert len(paths) >= 3
    victim = paths[1]
    entries, _, _ = read(victim, last=False)
    target = entries[1]
    data = bytearray(victim.read_bytes())
    data[target.offset + 12] ^= 0x10  # inside the body
    victim.write_bytes(bytes(data))
    rep = verify(tmp_path)
    assert not rep.ok
    assert f"{victim}: offset {target.offset}: record body checksum mismatch" in rep.problems[0]
    # the batches after the damage in that segment were not read: the seq check sees the hole
    assert any("seq gap" in p for p in rep.problems[1:])


def test_verify_reports_gaps_and_repeats_in_the_matchers_sequence(tmp_path):
    w = AuditWriter(tmp_path, fsync="off")
    for first, last in ((1, 3), (4, 4), (6, 7), (7, 7)):
        w.append(KIND_EVENTS, batch(first, last))
    w.close()
    rep = verify(tmp_path)
    assert [p.split(": ", 2)[2] for p in rep.problems] == [
        "seq gap: expected 5, batch covers 6..7",
        "seq repeat: expected 8, batch covers 7..7",
    ]


def test_segments_rotate_by_size_and_by_age(tmp_path):
    w = AuditWriter(tmp_path, fsync="off", segment_bytes=50)
    for s in range(1, 11):
        w.append(KIND_EVENTS, batch(s, s))
    w.close()
    by_size = len(segments(tmp_path))
    assert by_size >= 3
    w = AuditWriter(tmp_path, fsync="off", rotate_s=0.001)
    for s in range(11, 14):
        time.sleep(0.002)  # the segment's age is what is tested: each one is old at the next append
        w.append(KIND_EVENTS, batch(s, s))
    w.close()
    assert len(segments(tmp_path)) == by_size + 3
    w = AuditWriter(tmp_path, fsync="off", rotate_s=0.0)  # 0: no rotation by age
    for s in range(14, 17):
        w.append(KIND_EVENTS, batch(s, s))
    w.close()
    assert len(segments(tmp_path)) == by_size + 3  # appended to the last one
    assert verify(tmp_path).ok and verify(tmp_path).last_seq == 16


def test_a_query_over_damage_says_where_and_what_to_run(tmp_path):
    # `zex audit` catches query.Damaged: the name must stay importable from query.
    w = AuditWriter(tmp_path, fsync="off")
    for s in range(1, 4):
        w.append(KIND_EVENTS, batch(s, s))
        w.append(KIND_AUDIT, audit("logon"))
    w.close()
    victim = segments(tmp_path)[0]
    entries, _, _ = read(victim, last=False)
    data = bytearray(victim.read_bytes())
    data[entries[1].offset + 12] ^= 0x10  # inside a body, not in the last record
    victim.write_bytes(bytes(data))
    out = subprocess.run(
        [sys.executable, "-m", "zex.nodes.tools.cli", "audit", "--trail", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert f"zex audit: {victim}: offset {entries[1].offset}" in out.stderr
    assert "run `zex audit verify` for a full report" in out.stderr
