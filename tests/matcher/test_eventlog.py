"""The event log: whole records only, torn tails cut, and a matcher regenerates what it lost."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import wait_for
from zex.nodes.matcher.node import MatcherNode
from zex.nodes.matcher.workload import mixed_stream
from zex.nodes.runtime import config as config_mod
from zex.nodes.stream.eventlog import RECORD_OVERHEAD, EventLog, EventLogReader, segments
from zex.protocol.internal import EventBatch, batch_decoder, encoder


def batch(first: int, last: int) -> bytes:
    return encoder.encode(EventBatch(first, last, []))


def test_reader_sees_appends_across_segments_and_reads_in_bounded_chunks(tmp_path):
    log = EventLog(tmp_path, segment_bytes=200)
    reader = EventLogReader(tmp_path)
    assert reader.last_seq == 0 and reader.read(1) == []
    seq = 1
    for n in range(40):
        width = n % 3 + 1  # batches of 1..3 commands
        log.append(seq, seq + width - 1, batch(seq, seq + width - 1))
        seq += width
    assert len(segments(tmp_path)) > 3
    reader.refresh()
    assert reader.last_seq == seq - 1
    got, at = [], 1
    while at < seq:
        chunk = reader.read(at, max_batches=7)
        assert 1 <= len(chunk) <= 7
        got.extend(chunk)
        at = chunk[-1][1] + 1
    decoded = [batch_decoder.decode(b) for _, _, b in got]
    assert [(f, last) for f, last, _ in got] == [(b.first_seq, b.last_seq) for b in decoded]
    assert [f for f, _, _ in got] == sorted({f for f, _, _ in got}) and got[0][0] == 1
    # A seq inside a batch returns that batch.
    inside = next(f for f, last, _ in got if last > f)
    assert reader.read(inside + 1, 1)[0][0] == inside
    log.close()
    reader.close()


def test_torn_tail_is_cut_at_every_byte_offset(tmp_path):
    log = EventLog(tmp_path)
    for s in range(1, 6):
        log.append(s, s, batch(s, s))
    log.close()
    path = segments(tmp_path)[-1]
    whole = path.read_bytes()
    size_last = len(batch(5, 5)) + RECORD_OVERHEAD  # the record's header, the seqs and the batch
    for cut in range(len(whole) - size_last, len(whole)):
        path.write_bytes(whole[:cut])
        reopened = EventLog(tmp_path)
        assert reopened.last_seq == 4, cut
        assert path.stat().st_size == len(whole) - size_last
        reopened.close()


def _config(tmp_path: Path, ipc: Path):
    cfg = config_mod.load(env={})
    cfg.accounts = ()
    cfg.matcher.bind = f"ipc://{ipc}/m"
    cfg.matcher.events_bind = f"ipc://{ipc}/ev"
    cfg.matcher.replay_bind = f"ipc://{ipc}/rp"
    cfg.matcher.data_dir = str(tmp_path / "data")
    cfg.matcher.fsync = "off"
    cfg.matcher.metrics_bind = ""
    cfg.matcher.digest_every = 50
    cfg.matcher.snapshot_every = 300
    return cfg


def feed(ctx, cfg, cmds) -> int:
    """Send commands as gateway gw1 and wait for the matcher to sequence them all."""
    import zmq

    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.identity = b"gw1"
    d.connect(cfg.matcher.bind)
    n = 0
    for c in cmds:
        d.send(encoder.encode(c))
        n += 1
    d.close(linger=5000)  # the io thread still delivers what is queued
    return n


def test_matcher_regenerates_a_lost_event_log_byte_for_byte(tmp_path, ipc_dir, ctx):
    cfg = _config(tmp_path, ipc_dir)
    node = MatcherNode(cfg, ctx)
    node.start()
    try:
        feed(ctx, cfg, mixed_stream(1200, seed=5))
        wait_for(lambda: node.engine.seq == 1200, 20, "1200 commands sequenced")
    finally:
        node.stop()
    data = Path(cfg.matcher.data_dir)
    original = b"".join(p.read_bytes() for p in segments(data))
    assert original.count(b"ZEXEVLG2") >= 1
    # 1) the whole log lost (snapshots exist past its end): regenerated from the journal's start
    for p in segments(data):
        p.unlink()
    # 2) then again with only its second half lost
    for damage in ("all", "half"):
        if damage == "half":
            p = segments(data)[-1]
            os.truncate(p, p.stat().st_size // 2)
        node = MatcherNode(cfg, ctx)
        node.start()
        node.stop()
        assert b"".join(p.read_bytes() for p in segments(data)) == original, damage
