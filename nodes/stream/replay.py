"""The replay service: old event batches from the event log, on request, off the matching thread.

    ROUTER  replay_bind      consumers' DEALERs: ReplayRequest in, ReplayChunk + batches out
    PAIR    inproc control   stop() sends b"STOP"

A consumer that sees a gap in the event stream (a batch dropped at the
PUB's high-water mark, a restart, a late start) asks for the batches from
the first seq it is missing; the answer is a bounded chunk (``max_batches``,
and at most ``MAX_CHUNK_BYTES``), and the consumer asks again from where the
chunk ended until it has caught up. Each answer is one multi-part message:

    frame 0: ReplayChunk (req_id, from_seq, last_seq, head, count, first)
    frame 1..count: EventBatch, exactly the bytes the event stream carried

The service reads the files the matcher thread writes (eventlog.py) through
its own handles, so it takes no lock and the matcher never waits for it.
Sends never block: an answer to a consumer whose queue is full is dropped,
and the consumer asks again after its timeout.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import zmq

from zex.protocol.internal import ReplayChunk, encoder, replay_request_decoder

from ..runtime.service import NodeThread
from .eventlog import EventLogReader

log = logging.getLogger("zex.replay")

MAX_BATCHES = 1024  # per answer, whatever the request asks; 64..4096 is reasonable
MAX_CHUNK_BYTES = 4 << 20  # per answer


class ReplayService(NodeThread):
    """Serve ``directory``'s event log on ``endpoint``: ``start()``, then ``stop()``."""

    def __init__(self, endpoint: str, directory: Path, ctx: zmq.Context | None = None) -> None:
        super().__init__("replay", ctx, log)
        self.endpoint = endpoint
        self.dir = Path(directory)
        self.requests = 0
        self.batches_sent = 0
        self.bad_requests = 0
        self.dropped_answers = 0

    def _run(self) -> None:
        reader = EventLogReader(self.dir)
        router = self.ctx.socket(zmq.ROUTER)
        ctrl = self.ctx.socket(zmq.PAIR)
        try:
            router.linger = 0
            # a full or vanished consumer: an error we count, not a silent drop
            router.router_mandatory = 1
            # answers queued per consumer, each up to MAX_CHUNK_BYTES: memory stays bounded
            router.sndhwm = 16
            router.bind(self.endpoint)
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            log.info(
                "replay service on %s (event log from seq %d to %d)",
                self.endpoint,
                reader.first_seq,
                reader.last_seq,
            )
            self._ready.set()
            poller = zmq.Poller()
            poller.register(router, zmq.POLLIN)
            poller.register(ctrl, zmq.POLLIN)
            while True:
                ready = dict(poller.poll())
                if ctrl in ready:
                    return
                self._serve(router, reader)
        except zmq.ContextTerminated:
            return
        finally:
            reader.close()
            router.close(0)
            ctrl.close(0)

    def _serve(self, router: zmq.Socket, reader: EventLogReader) -> None:
        while True:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.bad_requests += 1
                continue
            peer, raw = frames
            try:
                req = replay_request_decoder.decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError):
                self.bad_requests += 1
                continue
            self.requests += 1
            reader.refresh()  # reads only what was appended since: the head must be current
            batches = reader.read(
                max(req.from_seq, 1), min(max(req.max_batches, 1), MAX_BATCHES), MAX_CHUNK_BYTES
            )
            last = batches[-1][1] if batches else req.from_seq - 1
            head = ReplayChunk(
                req.req_id, req.from_seq, last, reader.last_seq, len(batches), reader.first_seq or 1
            )
            try:
                router.send_multipart(
                    [peer, encoder.encode(head), *(b for _, _, b in batches)], zmq.NOBLOCK
                )
                self.batches_sent += len(batches)
            except zmq.ZMQError:  # EAGAIN (its queue is full) or EHOSTUNREACH (gone): it asks again
                self.dropped_answers += 1
