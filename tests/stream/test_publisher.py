"""The stream publisher: the log before the PUB, the same bytes in both, heartbeats when quiet."""

from __future__ import annotations

import time

import msgpack
import zmq

from zex.nodes.stream.eventlog import EventLogReader
from zex.nodes.stream.publisher import Publisher
from zex.protocol.internal import EventBatch, LimitsSet, batch_decoder, encoder


def test_batches_logged_then_published_byte_for_byte_heartbeats_when_quiet(tmp_path, ipc_dir, ctx):
    pub = Publisher(tmp_path, heartbeat_ms=0)  # a heartbeat each idle call: the SUB handshake
    sub = ctx.socket(zmq.SUB)
    try:
        pub.bind(ctx, f"ipc://{ipc_dir}/ev", hwm=1000)
        sub.linger = 0
        sub.subscribe(b"ev")
        sub.subscribe(b"hb")
        sub.connect(f"ipc://{ipc_dir}/ev")
        deadline = time.monotonic() + 10
        while not sub.poll(10):  # a PUB drops what it sends before the SUB is joined
            assert time.monotonic() < deadline, "no heartbeat reached the subscriber"
            pub.idle(0)
        while sub.poll(0):
            topic, body = sub.recv_multipart()
            assert topic == b"hb" and msgpack.unpackb(body) == 0
        pub.heartbeat_s = 3600.0  # from here on only batches go out
        sent = []
        for seq in range(1, 6):
            events = [LimitsSet(seq, 1000 + seq, "alice")] if seq % 2 else []  # empty batches too
            pub.publish(seq, seq, events)
            sent.append(encoder.encode(EventBatch(seq, seq, events)))
            pub.idle(seq)  # not quiet: no heartbeat between batches
        got = [sub.recv_multipart() for _ in sent]
        assert [t for t, _ in got] == [b"ev"] * 5
        assert [b for _, b in got] == sent
        assert not sub.poll(50)
        reader = EventLogReader(tmp_path)
        assert [b for _, _, b in reader.read(1)] == sent  # what a gap fill returns is what went out
        assert batch_decoder.decode(sent[0]).events[0].account == "alice"
        reader.close()
    finally:
        sub.close(0)
        pub.close()
