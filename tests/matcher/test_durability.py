"""The batch fsync policy's syncer thread: it fsyncs off the writer's thread, reports failures, stops."""

from __future__ import annotations

import os
import threading
import time

import pytest

from zex.nodes.runtime.durability import SyncPolicy


def _syncers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("zex-sync-")]


def test_a_failed_background_fsync_is_raised_to_the_writer_with_what_to_check():
    r, w = os.pipe()  # fsync on a pipe fails (EINVAL): a real failing fsync, no mock
    sync = SyncPolicy("batch", interval_ms=1.0, what="matcher.fsync")
    try:
        sync.after_write(w)  # returns at once: the writer never waits for the disk
        deadline = time.monotonic() + 5
        while sync.error is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sync.error is not None
        with pytest.raises(OSError, match="matcher.fsync: a background fsync failed.*disk"):
            sync.after_write(w)
    finally:
        sync.close()
        os.close(r)
        os.close(w)
    assert not _syncers()


def test_the_syncer_fsyncs_new_writes_and_forgets_a_retired_file(tmp_path):
    f = open(tmp_path / "j", "ab")  # noqa: SIM115 - closed below
    sync = SyncPolicy("batch", interval_ms=1.0)
    try:
        for _ in range(3):  # each new write is fsynced by the syncer within a few intervals
            before = sync.synced
            f.write(b"x" * 100)
            f.flush()
            sync.after_write(f.fileno())
            deadline = time.monotonic() + 5
            while sync.synced == before and time.monotonic() < deadline:
                time.sleep(0.002)
            assert sync.synced > before
        sync.on_close(f.fileno())  # fsyncs now and forgets the descriptor
        after = sync.synced
        f.close()
        assert sync.error is None
    finally:
        sync.close()
    assert sync.synced == after  # nothing fsynced once the file was retired
    assert not _syncers()


@pytest.mark.parametrize("policy", ["always", "off"])
def test_only_batch_starts_a_thread(tmp_path, policy):
    with open(tmp_path / "j", "ab") as f:
        sync = SyncPolicy(policy, interval_ms=1.0)
        f.write(b"x")
        f.flush()
        sync.after_write(f.fileno())
        assert not _syncers()
        sync.on_close(f.fileno())
        sync.close()
