"""The event stream consumer over real sockets: late, paused past the HWM, across a matcher restart.

Each ends with every batch 1..N handed out exactly once, in order, equal
byte for byte (re-encoded) to what the matcher logged.
"""

from __future__ import annotations

import time
from pathlib import Path

import zmq

from tests.conftest import wait_for
from tests.matcher.test_eventlog import _config
from zex.nodes.matcher.node import MatcherNode
from zex.nodes.matcher.workload import mixed_stream
from zex.nodes.stream.consumer import EventStream
from zex.nodes.stream.eventlog import EventLogReader
from zex.protocol.internal import ReplayChunk, ReplayRequest, encoder, replay_chunk_decoder

# Deadlines for a loaded 2-core machine (the suite's node processes and a benchmark beside them):
# each step takes well under a second alone, and was seen to take 20 s and more under such load.
# They only bound a failure; a passing run waits for the condition, not the deadline.
DEADLINE = 90.0


class Gateway:
    """Commands into the matcher as gateway gw1, through one DEALER for the whole test.

    One socket, not one per batch: the matcher's ROUTER ignores a second peer named gw1 while
    it still holds the first one's pipe, and on a busy machine it still did when the next batch
    came (seen: every later command lost). Each ``feed`` waits until the matcher sequenced all
    it sent (a close with a linger would instead drop what was still undelivered).
    """

    def __init__(self, ctx: zmq.Context, cfg) -> None:
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.dealer.identity = b"gw1"
        self.dealer.connect(cfg.matcher.bind)

    def feed(self, node: MatcherNode, cmds) -> None:
        target = node.engine.seq
        for c in cmds:
            self.dealer.send(encoder.encode(c))
            target += 1
        wait_for(
            lambda: node.engine.seq >= target, DEADLINE, f"the matcher to sequence up to {target}"
        )

    def close(self) -> None:
        self.dealer.close(0)


def drain(stream: EventStream, got: list, until, timeout: float = DEADLINE) -> None:
    """Poll the stream's sockets, collecting batches, until ``until()`` or the deadline."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream stuck at next_seq {stream.next_seq}, head {stream.head}")
        poller = zmq.Poller()
        poller.register(stream.sub, zmq.POLLIN)
        poller.register(stream.replay, zmq.POLLIN)
        for sock, _ in poller.poll(50):
            got.extend(stream.read(sock))
        stream.tick()


def logged(cfg) -> list[bytes]:
    reader = EventLogReader(Path(cfg.matcher.data_dir))
    out, at = [], 1
    while True:
        chunk = reader.read(at, 1000)
        if not chunk:
            break
        out.extend(b for _, _, b in chunk)
        at = chunk[-1][1] + 1
    reader.close()
    return out


def check_complete(got: list, cfg, n: int) -> None:
    seqs = [(b.first_seq, b.last_seq) for b in got]
    assert seqs[0][0] == 1 and seqs[-1][1] == n
    assert all(a[1] + 1 == b[0] for a, b in zip(seqs, seqs[1:], strict=False)), "a gap or a repeat"
    assert [encoder.encode(b) for b in got] == logged(cfg)


def test_late_and_paused_consumers_end_complete(tmp_path, ipc_dir, ctx):
    cfg = _config(tmp_path, ipc_dir)
    cfg.matcher.pub_hwm = 20  # so a paused consumer overflows its queue quickly
    cfg.matcher.max_batch = 4  # many small batches
    node = MatcherNode(cfg, ctx)
    node.start()
    gw = Gateway(ctx, cfg)
    try:
        gw.feed(node, mixed_stream(800, seed=3))
        assert node.engine.seq == 800
        # Late: joins after 800 commands and before the rest.
        late = EventStream(ctx, cfg.matcher.events_bind, cfg.matcher.replay_bind)
        # Paused: a tiny receive HWM and nobody reading while 3000 commands flow.
        paused = EventStream(ctx, cfg.matcher.events_bind, cfg.matcher.replay_bind, rcvhwm=5)
        paused.sub.setsockopt(zmq.RCVBUF, 4096)
        got_late, got_paused = [], []
        drain(late, got_late, lambda: late.caught_up and late.next_seq > 800)
        gw.feed(node, mixed_stream(3000, seed=4, prefix="b", first_order_id=10_000))
        assert node.engine.seq == 3800
        drain(late, got_late, lambda: late.next_seq > 3800)
        drain(paused, got_paused, lambda: paused.next_seq > 3800)
        check_complete(got_late, cfg, 3800)
        check_complete(got_paused, cfg, 3800)
        assert late.replayed >= 1 and paused.gaps >= 1, "the pause must have lost batches live"
        assert paused.lost == 0 and late.lost == 0
        late.close()
        paused.close()
    finally:
        gw.close()
        node.stop()


def test_consumer_continues_across_a_matcher_restart(tmp_path, ipc_dir, ctx):
    cfg = _config(tmp_path, ipc_dir)
    node = MatcherNode(cfg, ctx)
    node.start()
    stream = EventStream(ctx, cfg.matcher.events_bind, cfg.matcher.replay_bind, timeout=0.5)
    gw = Gateway(ctx, cfg)  # its DEALER reconnects to the restarted matcher, as a gateway's does
    got: list = []
    try:
        gw.feed(node, mixed_stream(500, seed=8))
        drain(stream, got, lambda: stream.next_seq > 500)
        node.stop()
        # Commands sequenced while the consumer cannot see the live stream.
        node = MatcherNode(cfg, ctx)
        node.start()
        gw.feed(node, mixed_stream(400, seed=9, prefix="r", first_order_id=5000))
        assert node.engine.seq == 900
        drain(stream, got, lambda: stream.next_seq > 900)
        check_complete(got, cfg, 900)
    finally:
        gw.close()
        stream.close()
        node.stop()


def test_replay_service_answers_past_the_end_and_refuses_garbage(tmp_path, ipc_dir, ctx):
    cfg = _config(tmp_path, ipc_dir)
    node = MatcherNode(cfg, ctx)
    node.start()
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(cfg.matcher.replay_bind)
    gw = Gateway(ctx, cfg)
    try:
        gw.feed(node, mixed_stream(50, seed=1))
        # The service answers from the event log, which the matcher writes at the end of its
        # turn, after engine.seq moved: wait for the log, or a busy machine sees head 0.
        reader = EventLogReader(Path(cfg.matcher.data_dir))
        try:
            wait_for(
                lambda: reader.refresh() or reader.last_seq == 50, DEADLINE, "50 in the event log"
            )
        finally:
            reader.close()
        d.send(b"\xc1garbage")
        d.send(encoder.encode(ReplayRequest(7, 51, 10)))
        assert d.poll(DEADLINE * 1000)
        frames = d.recv_multipart()
        chunk = replay_chunk_decoder.decode(frames[0])
        assert chunk == ReplayChunk(7, 51, 50, 50, 0, 1) and len(frames) == 1
        wait_for(lambda: node.replay.bad_requests == 1, DEADLINE, "the garbage counted")
    finally:
        gw.close()
        d.close(0)
        node.stop()


def test_an_empty_answer_older_than_a_kept_batch_is_asked_again_not_counted_lost(ctx):
    """The first answer can predate a live batch that overtook it: that is no hole in the log."""
    from zex.protocol.internal import EventBatch

    stream = EventStream(ctx, "inproc://zx-nowhere-ev", "inproc://zx-nowhere-rp", after_seq=5)
    try:
        first = stream._req_id
        out: list = []
        stream._live([b"ev", encoder.encode(EventBatch(7, 7, []))], out)  # 6 missed live, 7 kept
        assert out == [] and stream.filling
        # answered when the log ended at 5
        chunk = encoder.encode(ReplayChunk(first, 6, 5, 5, 0, 1))
        stream._chunk([chunk], out)
        assert stream.lost == 0 and stream.next_seq == 6 and stream.filling, "must ask again"
        again = stream._req_id
        assert again != first
        b6 = encoder.encode(EventBatch(6, 6, []))
        stream._chunk([encoder.encode(ReplayChunk(again, 6, 6, 7, 1, 1)), b6], out)
        assert [(b.first_seq, b.last_seq) for b in out] == [(6, 6), (7, 7)] and stream.lost == 0
        # A log that claims the hole yet sends nothing is damage: counted lost, never asked forever.
        stream._live([b"ev", encoder.encode(EventBatch(10, 10, []))], out)
        rid = stream._req_id
        stream._chunk([encoder.encode(ReplayChunk(rid, 8, 7, 10, 0, 1))], out)
        assert stream.lost == 2 and stream.next_seq == 11 and out[-1].first_seq == 10
    finally:
        stream.close()
