"""The matcher node: one thread owns the engine, the journal and three sockets.

    ROUTER  cfg.bind         gateways' DEALERs: commands in, reports out
    PUB     cfg.events_bind  the event stream, one EventBatch per loop turn
    PAIR    inproc control   stop() sends b"STOP"; the loop exits cleanly

One loop turn (smart batching, the LMAX way): wait for input; drain up to
``max_batch`` commands without blocking; apply each to the engine; write
them to the journal as one record (the group commit); only then send the
reports to the gateways and publish the events. Under low load a batch is
one command, so latency does not suffer; under load the per-message costs are
paid once per batch. Sends never block: a gateway that is gone or full
loses its reports (counted in ``dropped_reports``) and recovers them by
sequence later; the matcher never waits for anyone.

Report frames to a gateway: [gateway name, ReportBatch] where ReportBatch is
a MessagePack array of [client routing id (bin), role (int), event].
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from pathlib import Path

import msgspec
import zmq

from zex.protocol.internal import EventBatch, command_decoder, encoder

from ..config import Config
from .recovery import recover
from .snapshot import write_snapshot

log = logging.getLogger("zex.matcher")

POLL_MS = 100  # idle wake-up for the fsync timer; 10..1000 is reasonable


class MatcherNode:
    """Run the matcher in a thread of this process: ``start()``, then ``stop()``.

        node = MatcherNode(config.load())
        node.start()          # returns once recovered and bound, or raises
        ...
        node.stop()
    """

    def __init__(self, cfg: Config, ctx: zmq.Context | None = None) -> None:
        self.cfg = cfg
        self.mc = cfg.matcher
        self.ctx = ctx or zmq.Context.instance()
        self._ctrl_addr = f"inproc://zex-matcher-ctrl-{uuid.uuid4().hex}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.engine = None
        self.dropped_reports = 0
        self.bad_commands = 0

    # ---------------------------------------------------------- lifecycle

    def start(self, timeout: float = 30.0) -> None:
        self._ctrl = self.ctx.socket(zmq.PAIR)
        self._ctrl.linger = 0
        self._ctrl.bind(self._ctrl_addr)
        self._thread = threading.Thread(target=self._main, name="zex-matcher", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"matcher did not become ready within {timeout} s")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._ctrl.send(b"STOP")
        self._thread.join(timeout)
        self._ctrl.close()
        if self._thread.is_alive():
            raise TimeoutError(f"matcher thread did not stop within {timeout} s")
        self._thread = None

    def join(self) -> None:
        """Block until the loop ends (on stop() or a fatal error), then re-raise that error."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced through start()/join(); the node is fail-stop
            log.exception("matcher stopped on an error")
            self._error = exc
            self._ready.set()

    # --------------------------------------------------------------- loop

    def _run(self) -> None:
        mc = self.mc
        symbols = [i.symbol for i in self.cfg.instruments]
        engine, journal = recover(Path(mc.data_dir), symbols, digest_every=mc.digest_every,
                                  fsync=mc.fsync, fsync_interval_ms=mc.fsync_interval_ms,
                                  segment_bytes=mc.segment_mb * 1024 * 1024)
        self.engine = engine
        ctx = self.ctx
        router = ctx.socket(zmq.ROUTER)
        pub = ctx.socket(zmq.PUB)
        ctrl = ctx.socket(zmq.PAIR)
        try:
            router.linger = 0
            router.router_mandatory = 1  # unknown gateway: an error we count, not a silent drop
            router.sndhwm = router.rcvhwm = mc.router_hwm
            router.bind(mc.bind)
            pub.linger = 0
            pub.sndhwm = mc.pub_hwm
            pub.bind(mc.events_bind)
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            log.info("matcher at seq %d: commands on %s, events on %s", engine.seq, mc.bind, mc.events_bind)
            self._ready.set()
            self._loop(engine, journal, router, pub, ctrl)
        finally:
            journal.close()
            for s in (router, pub, ctrl):
                s.close(linger=0)

    def _loop(self, engine, journal, router, pub, ctrl) -> None:
        mc = self.mc
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(ctrl, zmq.POLLIN)
        recv = router.recv_multipart
        decode = command_decoder.decode
        process = engine.process
        events, reports = engine.events, engine.reports
        max_batch = mc.max_batch
        snapshot_every = mc.snapshot_every
        next_snapshot = (engine.seq // snapshot_every + 1) * snapshot_every if snapshot_every else 0
        NOBLOCK = zmq.NOBLOCK
        while True:
            ready = dict(poller.poll(POLL_MS))
            if ctrl in ready:
                return
            if router not in ready:
                journal.sync_if_due()
                continue
            raws: list[bytes] = []
            first_seq = engine.seq + 1
            for _ in range(max_batch):
                try:
                    frames = recv(NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 2:
                    self.bad_commands += 1
                    continue
                gw, raw = frames
                try:
                    cmd = decode(raw)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    # A gateway bug, not client input: refuse it, keep matching.
                    self.bad_commands += 1
                    log.warning("bad command from gateway %r: %s", gw, exc)
                    continue
                if cmd.gw.encode() != gw:
                    self.bad_commands += 1
                    log.warning("command names gateway %r but came from %r", cmd.gw, gw)
                    continue
                process(cmd)
                raws.append(raw)
            if not raws:
                continue
            journal.write(first_seq, raws)  # the group commit: nothing is sent before it
            if next_snapshot and engine.seq >= next_snapshot:
                write_snapshot(journal.dir, engine.seq, journal.chain, engine.state_bytes())
                next_snapshot = (engine.seq // snapshot_every + 1) * snapshot_every
            self._send_reports(router, reports)
            # One batch per turn, empty too: a resend takes a seq but makes no event,
            # and subscribers must see every seq accounted for. PUB never blocks.
            pub.send_multipart([b"ev", encoder.encode(EventBatch(first_seq, engine.seq, events))], NOBLOCK)
            events.clear()
            reports.clear()

    def _send_reports(self, router: zmq.Socket, reports: list) -> None:
        by_gw: dict[str, list] = defaultdict(list)
        for (gw, client), ev, role in reports:
            by_gw[gw].append((client, role, ev))
        for gw, items in by_gw.items():
            try:
                router.send_multipart([gw.encode(), encoder.encode(items)], zmq.NOBLOCK)
            except zmq.ZMQError:  # EHOSTUNREACH (gateway gone) or EAGAIN (gateway full)
                self.dropped_reports += len(items)
