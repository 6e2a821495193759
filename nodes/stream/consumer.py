"""Consume the matcher's event stream gap-free: live batches from its PUB, holes filled by replay.

    stream = EventStream(ctx, events_endpoint, replay_endpoint, after_seq=0)
    poller.register(stream.sub, zmq.POLLIN)
    poller.register(stream.replay, zmq.POLLIN)      # stream.replay changes after a timeout:
    ...                                             #   re-register when stream.sockets_changed
    for batch in stream.read(ready_socket):         # EventBatches in seq order, none missing
        apply(batch)
    stream.tick()                                   # now and then: resends a request that timed out

The consumer owns the stream's two sockets, so one thread uses it. It keeps
``next_seq``, the first command it has not applied. A live batch that
starts there is handed out at once. One that starts later means batches
were lost (the PUB dropped them at its high-water mark, or this consumer
started late or restarted): it is kept, and the missing range is asked of
the replay service in bounded chunks until the kept batches connect. The
matcher's quiet-time heartbeat ([b"hb", last seq]) shows a loss at the end
of a burst, when no later batch would. The matcher never waits for any of
this: a slow consumer only costs itself a replay.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque

import msgspec
import zmq

from zex.protocol.internal import (
    EventBatch,
    ReplayRequest,
    batch_decoder,
    encoder,
    replay_chunk_decoder,
)

log = logging.getLogger("zex.stream")

# an unanswered replay request is sent again after this; 0.5..10 is reasonable
REQUEST_TIMEOUT_S = 2.0
CHUNK_BATCHES = 512  # batches asked for per replay request
MAX_KEPT = 10_000  # live batches kept while filling a gap; beyond it the newest are dropped (replayed later),
# so a consumer catching up on a long day under live load holds a bounded backlog


class EventStream:
    """Gap-free EventBatches for one consumer thread (see the module docstring)."""

    def __init__(
        self,
        ctx: zmq.Context,
        events_endpoint: str,
        replay_endpoint: str,
        after_seq: int = 0,
        *,
        rcvhwm: int = 100_000,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.ctx = ctx
        self.replay_endpoint = replay_endpoint
        self.timeout = timeout
        self.next_seq = after_seq + 1
        self.head = after_seq  # the highest seq known to exist
        self.sub = ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.rcvhwm = rcvhwm
        self.sub.subscribe(b"ev")
        self.sub.subscribe(b"hb")
        self.sub.connect(events_endpoint)
        self.replay = self._dealer()
        self.sockets_changed = False
        self._kept: deque[EventBatch] = deque()
        self._req_ids = itertools.count(1)
        self._req_id = 0  # the outstanding request, 0: none
        self._req_at = 0.0
        # what a consumer (and its metrics) wants to know
        self.gaps = 0  # times a loss was detected
        self.replayed = 0  # batches received from the replay service
        self.requests = 0
        self.timeouts = 0
        self.dropped_kept = 0
        self.lost = 0  # seqs the replay service could not provide (should stay 0)
        # Ask at once: a fresh consumer learns the head (and catches up) without
        # waiting for the next live batch or heartbeat.
        self._request()

    def _dealer(self) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(self.replay_endpoint)
        return s

    @property
    def filling(self) -> bool:
        return self._req_id != 0

    @property
    def caught_up(self) -> bool:
        """Every batch up to the highest seq seen has been handed out."""
        return not self._req_id and self.next_seq > self.head

    def close(self) -> None:
        self.sub.close(0)
        self.replay.close(0)

    # ------------------------------------------------------------ reading

    def read(self, sock: zmq.Socket, limit: int = 64) -> list[EventBatch]:
        """Drain up to ``limit`` messages waiting on ``sock``; return the batches now in order.

        Small bounds keep a consumer's memory flat after a backlog: it applies
        what it decoded before it decodes more (measured +23 % per update at 1000).
        """
        out: list[EventBatch] = []
        if sock is self.sub:
            for _ in range(limit):
                try:
                    frames = self.sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._live(frames, out)
        elif sock is self.replay:
            for _ in range(limit):
                try:
                    frames = self.replay.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._chunk(frames, out)
        return out

    def _live(self, frames: list[bytes], out: list[EventBatch]) -> None:
        if len(frames) != 2:
            return
        topic, body = frames
        try:
            if topic == b"hb":
                seq = msgspec.msgpack.decode(body, type=int)
                if seq > self.head:
                    self.head = seq
                if seq >= self.next_seq and not self._req_id:
                    self.gaps += 1
                    self._request()
                return
            batch = batch_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("undecodable event stream message on topic %r", topic)
            return
        if batch.last_seq > self.head:
            self.head = batch.last_seq
        if batch.last_seq < self.next_seq:
            return  # already applied (replayed before it arrived live)
        if self._req_id:
            self._keep(batch)
        elif batch.first_seq <= self.next_seq:
            self._emit(batch, out)
        else:
            self.gaps += 1
            self._keep(batch)
            self._request()

    def _keep(self, batch: EventBatch) -> None:
        kept = self._kept
        if kept and batch.first_seq != kept[-1].last_seq + 1:
            self.gaps += 1  # lost live while a replay was on its way: the replay goes on past it
        if len(kept) >= MAX_KEPT:
            self.dropped_kept += 1  # the replay will bring it
            return
        kept.append(batch)

    def _emit(self, batch: EventBatch, out: list[EventBatch]) -> None:
        nxt = self.next_seq
        if batch.first_seq < nxt:  # overlaps what was applied: hand out only the rest
            batch = EventBatch(nxt, batch.last_seq, [e for e in batch.events if e.seq >= nxt])
        out.append(batch)
        self.next_seq = batch.last_seq + 1

    def _chunk(self, frames: list[bytes], out: list[EventBatch]) -> None:
        try:
            head = replay_chunk_decoder.decode(frames[0])
            batches = [batch_decoder.decode(f) for f in frames[1:]]
        except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
            log.warning("undecodable replay answer")
            return
        if head.req_id != self._req_id:
            return  # a late answer to a request that timed out; the current one is on its way
        self._req_id = 0
        self.replayed += len(batches)
        if head.head > self.head:
            self.head = head.head
        for b in batches:
            if b.last_seq >= self.next_seq:
                if b.first_seq > self.next_seq:
                    self._skip(b.first_seq, f"its log starts at {head.first}")
                self._emit(b, out)
        # The kept live batches that now connect go out; the rest wait for more replay.
        kept = self._kept
        self._connect(out)
        if kept and kept[0].first_seq > self.next_seq and not batches:
            if head.head >= self.next_seq:
                # The log says it holds the hole yet sent nothing: it cannot fill it (the
                # matcher logs before it publishes, so this is damage). Say so, go on.
                self._skip(kept[0].first_seq, f"its log ends at {head.head} but sent nothing")
                self._connect(out)
            # Otherwise the answer predates the kept batch: the log has it now, ask again.
        if self.next_seq <= max(self.head, kept[-1].last_seq if kept else 0) and (batches or kept):
            self._request()  # more to fetch

    def _connect(self, out: list[EventBatch]) -> None:
        kept = self._kept
        while kept and kept[0].last_seq < self.next_seq:
            kept.popleft()
        while kept and kept[0].first_seq <= self.next_seq:
            self._emit(kept.popleft(), out)
            while kept and kept[0].last_seq < self.next_seq:
                kept.popleft()

    def _skip(self, to_seq: int, why: str) -> None:
        """Give up on seqs next_seq..to_seq-1: counted in ``lost`` (an alert), logged."""
        log.error(
            "replay service cannot provide seq %d..%d (%s); skipping them",
            self.next_seq,
            to_seq - 1,
            why,
        )
        self.lost += to_seq - self.next_seq
        self.next_seq = to_seq

    def _request(self) -> None:
        self._req_id = next(self._req_ids)
        self._req_at = time.monotonic()
        self.requests += 1
        try:
            self.replay.send(
                encoder.encode(ReplayRequest(self._req_id, self.next_seq, CHUNK_BATCHES)),
                zmq.NOBLOCK,
            )
        except zmq.Again:
            pass  # the timeout sends it again

    def tick(self) -> None:
        """Resend a replay request that went unanswered (the service restarted, or dropped it)."""
        if self._req_id and time.monotonic() - self._req_at > self.timeout:
            self.timeouts += 1
            # A fresh DEALER: the old one may hold the lost request's queue forever.
            self.replay.close(0)
            self.replay = self._dealer()
            self.sockets_changed = True
            self._request()
