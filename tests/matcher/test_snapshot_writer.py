"""The snapshot writer thread: the newest snapshot lands whole, a failing disk is reported, not raised."""

from __future__ import annotations

import threading
import time

from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.snapshot import SnapshotWriter, latest_snapshot
from zex.nodes.matcher.state import encode
from zex.nodes.matcher.workload import mixed_stream


def test_submitted_snapshots_land_whole_and_the_newest_is_what_recovery_reads(tmp_path):
    eng = Engine(["XYZ"])
    writer = SnapshotWriter(tmp_path)
    submitted = []
    for i, c in enumerate(mixed_stream(3000, seed=3), 1):
        eng.process(c)
        eng.events.clear()
        eng.reports.clear()
        if i % 500 == 0:  # the node's way: the state as buffers, most of them kept encodings
            writer.submit(eng.seq, bytes(16), eng.state_parts())
            submitted.append(eng.seq)
    writer.close()  # writes what is still pending
    snap = latest_snapshot(tmp_path)
    assert snap is not None and snap.seq == submitted[-1] == writer.last_seq
    assert encode(snap.state) == eng.state_bytes()
    assert writer.written + writer.skipped == len(submitted) and writer.error is None
    assert not [t for t in threading.enumerate() if t.name == "zex-snapshots"]


def test_a_snapshot_that_cannot_be_written_is_reported_and_the_writer_carries_on(tmp_path):
    missing = tmp_path / "gone"  # the directory does not exist: open() fails in the thread
    empty = Engine(["XYZ"]).state_bytes()  # seq 0
    writer = SnapshotWriter(missing)
    try:
        writer.submit(0, bytes(16), empty)
        deadline = time.monotonic() + 10
        while writer.error is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert isinstance(writer.error, OSError) and writer.written == 0
        missing.mkdir()
        writer.submit(0, bytes(16), empty)
    finally:
        writer.close()
    assert writer.written == 1 and latest_snapshot(missing).seq == 0
