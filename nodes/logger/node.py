"""The logger node: one thread writes the audit trail.

    PULL        logger.bind                 AuditRecords PUSHed by the gateways (nodes/runtime/audit.py)
    SUB+DEALER  matcher events + replay     the gap-free event stream (nodes/stream/consumer.py)
    PAIR        inproc control              stop() sends b"STOP"

Each loop turn appends what arrived (event batches in seq order, audit
records as they came) to the current segment (segments.py) and commits
once: a group commit, as in the matcher. At start it reads its segments
back to the last event batch it holds and asks the replay service for
everything after it, so the matcher's part of the trail has no hole even if
the logger was down, slow, or killed mid-write. It can run on another host:
only the endpoints change.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import msgspec
import zmq

from zex.protocol.internal import audit_decoder, batch_decoder, encoder

from ..runtime.config import Config
from ..runtime.metrics import LATENCY_BUCKETS, histogram
from ..runtime.service import NodeThread
from ..stream.consumer import EventStream
from .segments import KIND_AUDIT, KIND_EVENTS, AuditWriter, Damaged, read, segments

log = logging.getLogger("zex.logger")

POLL_MS = 100
MAX_RECORDS_PER_TURN = 5000  # bounded, so the event stream and the control pipe keep their turn


def last_event_seq(directory: Path) -> int:
    """The last matcher seq whose batch the segments hold (0: none), reading from the newest segment back."""
    paths = segments(directory)
    for i in range(len(paths) - 1, -1, -1):
        entries, _, damage = read(paths[i], last=i == len(paths) - 1)
        if damage is not None:
            raise Damaged(
                damage.path,
                damage.offset,
                damage.why + "; run `zex audit verify` and restore the segment from a copy",
            )
        for e in reversed(entries):
            if e.kind == KIND_EVENTS:
                return batch_decoder.decode(e.payload).last_seq
    return 0


class LoggerNode(NodeThread):
    """Run the logger in a thread of this process: ``start()``, then ``stop()``."""

    def __init__(self, cfg: Config, ctx: zmq.Context | None = None) -> None:
        super().__init__("logger", ctx, log, cfg.logger.metrics_bind)
        self.cfg = cfg
        self.lc = cfg.logger
        self.stream: EventStream | None = None
        self.started_after = 0
        self.batches = 0
        self.audit_records = 0
        self.bad_records = 0
        self.last_seq = 0
        self.h_commit = histogram(bool(self.lc.metrics_bind), LATENCY_BUCKETS)

    @property
    def events_endpoint(self) -> str:
        return self.lc.events or self.cfg.matcher.events_bind

    @property
    def replay_endpoint(self) -> str:
        return self.lc.replay or self.cfg.matcher.replay_bind

    namespace = "logger"

    def start(self, timeout: float = 60.0) -> None:  # a long trail takes a while to read back
        super().start(timeout)

    def _metrics(self) -> list:
        return [
            ("counter", "event_batches", "Matcher event batches written", lambda: self.batches),
            ("counter", "audit_records", "Node audit records written", lambda: self.audit_records),
            (
                "counter",
                "bad_records",
                "Pushed frames that were not AuditRecords",
                lambda: self.bad_records,
            ),
            ("gauge", "matcher_seq", "Last matcher seq in the trail", lambda: self.last_seq),
            (
                "counter",
                "event_gaps",
                "Gaps in the event stream (filled by replay)",
                lambda: self.stream.gaps if self.stream else 0,
            ),
            (
                "counter",
                "events_replayed",
                "Event batches fetched from the replay service",
                lambda: self.stream.replayed if self.stream else 0,
            ),
            (
                "counter",
                "events_lost",
                "Seqs the replay service could not provide",
                lambda: self.stream.lost if self.stream else 0,
            ),
            (
                "histogram",
                "commit_seconds",
                "One loop turn's write and commit",
                lambda: self.h_commit,
            ),
        ]

    def _run(self) -> None:
        lc = self.lc
        directory = Path(lc.data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.started_after = self.last_seq = last_event_seq(directory)
        writer = AuditWriter(
            directory, lc.fsync, lc.fsync_interval_ms, lc.segment_mb << 20, lc.rotate_s
        )
        pull = self.ctx.socket(zmq.PULL)
        ctrl = self.ctx.socket(zmq.PAIR)
        stream = None
        try:
            pull.linger = 0
            pull.rcvhwm = 100_000
            pull.bind(lc.bind)
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            stream = self.stream = EventStream(
                self.ctx, self.events_endpoint, self.replay_endpoint, after_seq=self.last_seq
            )
            log.info(
                "logger: audit records on %s, events from %s after seq %d, segments in %s",
                lc.bind,
                self.events_endpoint,
                self.last_seq,
                directory,
            )
            self._ready.set()
            self._loop(writer, stream, pull, ctrl)
        except zmq.ContextTerminated:
            return
        finally:
            writer.close()
            if stream is not None:
                stream.close()
            pull.close(0)
            ctrl.close(0)

    def _loop(self, writer: AuditWriter, stream: EventStream, pull, ctrl) -> None:
        def poller_for() -> zmq.Poller:
            p = zmq.Poller()
            for s in (ctrl, pull, stream.sub, stream.replay):
                p.register(s, zmq.POLLIN)
            return p

        poller = poller_for()
        append, encode = writer.append, encoder.encode
        while True:
            ready = dict(poller.poll(POLL_MS))
            if ctrl in ready:
                return
            t0 = time.perf_counter()
            for sock in (stream.sub, stream.replay):
                if sock in ready:
                    for batch in stream.read(sock):
                        append(KIND_EVENTS, encode(batch))
                        self.batches += 1
                        self.last_seq = batch.last_seq
            if pull in ready:
                for _ in range(MAX_RECORDS_PER_TURN):
                    try:
                        raw = pull.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        audit_decoder.decode(raw)  # only well-formed records enter the trail
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        self.bad_records += 1
                        continue
                    append(KIND_AUDIT, raw)
                    self.audit_records += 1
            writer.commit()
            self.h_commit.observe(time.perf_counter() - t0)
            stream.tick()
            if stream.sockets_changed:
                stream.sockets_changed = False
                poller = poller_for()
