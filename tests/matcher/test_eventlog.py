"""The event log: whole records only, torn tails cut, and a matcher regenerates what it lost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import zmq

from tests.conftest import wait_for
from zex.nodes.matcher.node import MatcherNode
from zex.nodes.matcher.workload import mixed_stream
from zex.nodes.runtime import config as config_mod
from zex.nodes.runtime.records import HEADER, MAGIC_SIZE
from zex.nodes.stream.consumer import EventStream
from zex.nodes.stream.eventlog import RECORD_OVERHEAD, EventLog, EventLogReader, segments
from zex.protocol.internal import (
    EventBatch,
    LimitsSet,
    ReplayRequest,
    batch_decoder,
    encoder,
    replay_chunk_decoder,
)


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


def fat_batch(seq: int) -> bytes:
    """A one-command batch of 52 bytes: two records (160 bytes) to a 200-byte segment."""
    return encoder.encode(
        EventBatch(seq, seq, [LimitsSet(seq, 1000 + i, "alice") for i in range(4)])
    )


def served(reader: EventLogReader) -> list[tuple[int, int, bytes]]:
    """Every batch the reader serves, asking for each seq from 1 to its last."""
    out = []
    for seq in range(1, reader.last_seq + 1):
        (got,) = reader.read(seq, max_batches=1)
        assert got[0] <= seq <= got[1], seq
        out.append(got)
    return out


def test_damage_in_any_older_segment_is_cut_at_open_and_the_rest_regenerated(tmp_path, caplog):
    # The reviewer's case: 5 segments, one bit flipped in the second. Before, the writer
    # read only the newest segment (last_seq stayed 10, nothing was regenerated) while the
    # reader stopped at the damage and served up to seq 2, at every restart.
    log = EventLog(tmp_path, segment_bytes=200)
    originals = [fat_batch(s) for s in range(1, 11)]
    for s, b in enumerate(originals, 1):
        log.append(s, s, b)
    log.close()
    segs = segments(tmp_path)
    assert len(segs) == 5 and {p.stat().st_size for p in segs} == {MAGIC_SIZE + 2 * 80}
    wholes = {p: p.read_bytes() for p in segs}
    # Every byte of segments 2..5: in the magic, a header or a body, a flipped bit cuts the
    # log before that record and the records after it are regenerated.
    for k in range(1, 5):
        for byte in range(len(wholes[segs[k]])):
            where = f"segment {k + 1} byte {byte}"
            for p in segments(tmp_path):
                p.unlink()
            for p, data in wholes.items():
                p.write_bytes(data)
            data = bytearray(wholes[segs[k]])
            data[byte] ^= 1 << byte % 8
            segs[k].write_bytes(bytes(data))
            caplog.clear()
            log = EventLog(tmp_path, segment_bytes=200)
            cut = 2 * k + (byte >= MAGIC_SIZE + 80)  # batches kept: the records before it
            assert log.last_seq == cut, where
            # Logged with the file (the last record's body in the last segment: a torn tail).
            assert f"{segs[k]}: cutting " in caplog.text, where
            torn = k == 4 and byte >= MAGIC_SIZE + 80 + HEADER.size
            assert ("torn tail" if torn else "the event log is cut there") in caplog.text, where
            assert segments(tmp_path)[-1] in (segs[k], segs[k - 1]), where
            reader = EventLogReader(tmp_path)
            assert reader.damage is None and reader.last_seq == cut, where
            for s in range(cut + 1, 11):  # what recovery's on_batch hands the publisher
                log.append(s, s, originals[s - 1])
            log.close()
            reader.refresh()
            assert [b for _, _, b in served(reader)] == originals, where
            reader.close()
            assert [p.read_bytes() for p in segments(tmp_path)] == list(wholes.values()), where
    caplog.clear()
    EventLog(tmp_path, segment_bytes=200).close()  # whole again: nothing more is cut
    assert "cut" not in caplog.text


def test_a_hole_or_an_overlap_between_whole_records_is_cut_at_open(tmp_path, caplog):
    log = EventLog(tmp_path)
    for s in range(1, 6):
        log.append(s, s, batch(s, s))
    ends = log._w.size
    log.append(7, 7, batch(7, 7))  # checksums fine, seq 6 missing
    log.close()
    log = EventLog(tmp_path)
    assert log.last_seq == 5 and "batch 7..7 does not follow seq 5" in caplog.text
    log.append(6, 6, batch(6, 6))
    log.append(6, 7, batch(6, 7))  # overlaps 6
    log.close()
    (path,) = segments(tmp_path)
    assert EventLog(tmp_path).last_seq == 6 and f"{path}: offset " in caplog.text
    reader = EventLogReader(tmp_path)
    assert reader.last_seq == 6 and reader.damage is None
    assert path.stat().st_size == ends + HEADER.size + 16 + len(batch(6, 6))
    reader.close()


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


def replay_every_seq(ctx, endpoint: str, last: int) -> list[tuple[int, int, bytes]]:
    """Ask the replay service for each seq 1..last, one batch at a time, as a consumer would."""
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(endpoint)
    out: list[tuple[int, int, bytes]] = []
    try:
        for seq in range(1, last + 1):
            d.send(encoder.encode(ReplayRequest(seq, seq, 1)))
            assert d.poll(30_000), f"no answer to a replay request for seq {seq}"
            head, *batches = d.recv_multipart()
            chunk = replay_chunk_decoder.decode(head)
            assert chunk.req_id == seq and chunk.head == last, (seq, chunk)
            assert len(batches) == 1, f"seq {seq} not served (head {chunk.head})"
            b = batch_decoder.decode(batches[0])
            assert b.first_seq <= seq <= b.last_seq, seq
            out.append((b.first_seq, b.last_seq, batches[0]))
    finally:
        d.close(0)
    return out


def test_a_matcher_restarted_on_a_damaged_older_segment_serves_every_seq(tmp_path, ipc_dir, ctx):
    cfg = _config(tmp_path, ipc_dir)
    cfg.matcher.max_batch = 4  # many batches
    node = MatcherNode(cfg, ctx)
    node.start()
    try:
        feed(ctx, cfg, mixed_stream(1200, seed=7))
        wait_for(lambda: node.engine.seq == 1200, 60, "1200 commands sequenced")
    finally:
        node.stop()
    data = Path(cfg.matcher.data_dir)
    reader = EventLogReader(data)
    original = served(reader)
    reader.close()
    # The same batches in six segments (the matcher's are 64 MiB), then a bit flipped in
    # the middle of the second one.
    size = sum(p.stat().st_size for p in segments(data))
    for p in segments(data):
        p.unlink()
    log = EventLog(data, segment_bytes=size // 6)
    for first, last, b in dict.fromkeys(original):
        log.append(first, last, b)
    log.close()
    second = segments(data)[1]
    bad = bytearray(second.read_bytes())
    bad[len(bad) // 2] ^= 0x10
    second.write_bytes(bytes(bad))
    node = MatcherNode(cfg, ctx)
    node.start()
    try:
        assert replay_every_seq(ctx, cfg.matcher.replay_bind, 1200) == original
        # And a consumer from scratch gets every batch, none lost.
        stream = EventStream(ctx, cfg.matcher.events_bind, cfg.matcher.replay_bind)
        got: list[EventBatch] = []
        deadline = time.monotonic() + 60
        try:
            while stream.next_seq <= 1200:
                assert time.monotonic() < deadline, f"consumer stuck at {stream.next_seq}"
                for sock in (stream.sub, stream.replay):
                    if sock.poll(20):
                        got.extend(stream.read(sock))
                stream.tick()
            assert stream.lost == 0
            assert [encoder.encode(b) for b in got] == [b for _, _, b in dict.fromkeys(original)]
        finally:
            stream.close()
    finally:
        node.stop()
