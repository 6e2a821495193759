"""The matcher node: one thread owns the engine, the journal, the stream publisher, three sockets.

    ROUTER  cfg.bind         gateways' DEALERs: commands in, reports out
    PUB     cfg.events_bind  the event stream (nodes/stream/publisher.py): [b"ev", EventBatch]
                             per loop turn, [b"hb", last seq] after ``heartbeat_ms`` of quiet
    PAIR    inproc control   stop() sends b"STOP"; the loop exits cleanly

A second thread, the replay service (nodes/stream/replay.py), owns a ROUTER on
``replay_bind`` and serves old batches from the event log, so a consumer
that missed some catches up without the matching thread doing any work.

One loop turn (smart batching, the LMAX way): wait for input; drain up to
``max_batch`` commands without blocking; apply each to the engine; write
them to the journal as one record (the group commit); only then send the
reports to the gateways, append the batch to the event log and publish it. Under low load a batch is
one command, so latency does not suffer; under load the per-message costs are
paid once per batch. Sends never block: a gateway that is gone or full
loses its reports (counted in ``dropped_reports``) and recovers them by
sequence later; the matcher never waits for anyone. A gateway that is not
connected at the moment (its front reconnects a moment after its workers
when the matcher restarts) has its report frames held for up to
``HOLD_S`` and sent in order once it is back.

Report frames to a gateway: [gateway name, items] where items is a
MessagePack array of [client routing id (bin), account, role, rseq, payload]
(protocol/internal.py ReportItem). Queries (QueryCmd) are read-only: they
take no seq, are not journaled, and are answered after the turn's reports,
so an answer reflects every command sequenced before it.

At start the node journals a LimitsCmd for each configured account whose
stateful risk limits differ from the recovered state, so a replay applies
the limits that were in force when each order arrived.
"""

from __future__ import annotations

import errno
import gc
import logging
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import zmq

from zex.protocol.internal import DIRECT_ROLE, LimitsCmd, QueryCmd, command_decoder, encoder
from zex.protocol.numbers import Cash

from ..runtime.config import Config
from ..runtime.hotpath import EVENTS, MORE_NOBLOCK, NOBLOCK, POLLIN, RCVMORE, send
from ..runtime.metrics import LATENCY_BUCKETS, SIZE_BUCKETS, histogram
from ..runtime.service import NodeThread
from ..stream.publisher import Publisher
from ..stream.replay import ReplayService
from .recovery import recover
from .snapshot import SnapshotWriter

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("zex.matcher")

POLL_MS = 100  # idle wake-up for heartbeats and idle encoding; 10..1000 is reasonable
HOLD_S = 2.0  # how long report frames wait for an unreachable gateway; 0.5..10 is reasonable
HOLD_MAX = 10_000  # frames held per gateway before the oldest are dropped
IDLE_ENCODE = 20_000  # state entries encoded per idle poll (about 20 ms); 1k..100k is reasonable
# Allocations between automatic young collections (Python's default: 700). Each turn ends
# with its own young collection and a freeze (see _loop), so automatic ones in between only
# walk objects that will survive anyway; at 20,000 most turns have none (Engine.process
# +6-10 % in bench/README.md). Cyclic garbage waits at most that many allocations.
GC_YOUNG = 20_000


class MatcherNode(NodeThread):
    """Run the matcher in a thread of this process: ``start()``, then ``stop()``.

    node = MatcherNode(config.load())
    node.start()          # returns once recovered and bound, or raises
    ...
    node.stop()
    """

    def __init__(self, cfg: Config, ctx: zmq.Context | None = None) -> None:
        super().__init__("matcher", ctx, log, cfg.matcher.metrics_bind)
        self.cfg = cfg
        self.mc = cfg.matcher
        self.engine: Engine | None = None  # once recovered, in the node's thread
        self.dropped_reports = 0  # report frames given up on (gateway gone or full)
        self.bad_commands = 0
        self._held: dict[str, deque[tuple[float, bytes]]] = {}  # gateway -> (deadline, frame)
        self.replay: ReplayService | None = None
        self.snapshots: SnapshotWriter | None = None  # the snapshot writer thread, once running
        # Encoding the state's growing parts ahead serves only digests and snapshots.
        self._encode_ahead = bool(self.mc.digest_every or self.mc.snapshot_every)
        # metrics: written by the matcher thread only, read at scrape time
        self.commands = 0  # sequenced by this process (replay at start excluded)
        on = bool(self.mc.metrics_bind)
        self.h_command = histogram(on, LATENCY_BUCKETS)  # turn start to acks sent, once per command
        self.h_journal = histogram(on, LATENCY_BUCKETS)  # the group commit
        self.h_batch = histogram(on, SIZE_BUCKETS)  # commands per turn

    namespace = "matcher"

    def start(self, timeout: float = 30.0) -> None:
        super().start(timeout)
        self.replay = ReplayService(self.mc.replay_bind, Path(self.mc.data_dir), self.ctx)
        try:
            self.replay.start(timeout)
        except BaseException:
            super().stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        try:
            if self.replay is not None:
                self.replay.stop(timeout)
                self.replay = None
        finally:
            super().stop(timeout)

    def _metrics(self) -> list:
        def eng(read):
            return lambda: read(self.engine) if self.engine is not None else 0

        def rp(attr):
            return lambda: getattr(self.replay, attr, 0)

        return [
            (
                "counter",
                "commands",
                "Commands sequenced and journaled by this process",
                lambda: self.commands,
            ),
            (
                "histogram",
                "command_seconds",
                "Time in the matcher per command: its loop turn, from the first "
                "read to the acks sent (journal write included)",
                lambda: self.h_command,
            ),
            (
                "histogram",
                "journal_write_seconds",
                "One group commit: journal write (and fsync by policy)",
                lambda: self.h_journal,
            ),
            (
                "histogram",
                "batch_commands",
                "Commands per loop turn (smart batching)",
                lambda: self.h_batch,
            ),
            ("gauge", "seq", "The last sequence number", eng(lambda e: e.seq)),
            (
                "counter",
                "orders",
                "Orders accepted today (from the journaled state)",
                eng(lambda e: e.next_order_id - 1),
            ),
            (
                "counter",
                "trades",
                "Trades today (from the journaled state)",
                eng(lambda e: sum(b.next_trade_id - 1 for b in e.books.values())),
            ),
            (
                "counter",
                "rejects",
                "Commands the matcher rejected since this process started, by reason code",
                eng(lambda e: e.reject_counts),
                "reason",
            ),
            (
                "gauge",
                "open_orders",
                "Orders resting in the books, by symbol",
                eng(lambda e: {s: b.resting for s, b in e.books.items()}),
                "symbol",
            ),
            (
                "gauge",
                "book_levels",
                "Price levels in the book (both sides), by symbol",
                eng(lambda e: {s: len(b.bids) + len(b.asks) for s, b in e.books.items()}),
                "symbol",
            ),
            (
                "counter",
                "dropped_reports",
                "Report frames given up on (gateway gone, full, or away > 2 s)",
                lambda: self.dropped_reports,
            ),
            (
                "counter",
                "bad_commands",
                "Frames from gateways that did not decode or named another gateway",
                lambda: self.bad_commands,
            ),
            (
                "counter",
                "snapshots_written",
                "Snapshots written by the snapshot thread",
                lambda: getattr(self.snapshots, "written", 0),
            ),
            (
                "gauge",
                "held_report_frames",
                "Report frames held for gateways that are reconnecting",
                lambda: sum(len(h) for h in list(self._held.values())),
            ),
            ("counter", "replay_requests", "Replay service requests answered", rp("requests")),
            (
                "counter",
                "replay_batches",
                "Event batches sent by the replay service (gap fills)",
                rp("batches_sent"),
            ),
            (
                "counter",
                "replay_dropped_answers",
                "Replay answers dropped (consumer full or gone)",
                rp("dropped_answers"),
            ),
        ]

    # --------------------------------------------------------------- loop

    def _run(self) -> None:
        mc = self.mc
        cash = Cash(self.cfg.instruments)
        publisher = Publisher(Path(mc.data_dir), mc.heartbeat_ms)
        try:
            engine, journal = recover(
                Path(mc.data_dir),
                self.cfg.instruments,
                digest_every=mc.digest_every,
                fsync=mc.fsync,
                fsync_interval_ms=mc.fsync_interval_ms,
                segment_bytes=mc.segment_mb * 1024 * 1024,
                cash_mult=cash.mult,
                events_after=publisher.last_seq,
                on_batch=publisher.regenerate,
            )
        except BaseException:
            publisher.close()
            raise
        if publisher.regenerated:
            log.info("event log: regenerated %d batches from the journal", publisher.regenerated)
        engine.reject_counts.clear()  # metrics count this process's commands, not the replay
        publisher.cut_back(engine.seq)
        self.engine = engine
        ctx = self.ctx
        gc_before = None
        router = ctx.socket(zmq.ROUTER)
        ctrl = ctx.socket(zmq.PAIR)
        try:
            router.linger = 0
            router.router_mandatory = 1  # unknown gateway: an error we count, not a silent drop
            router.sndhwm = router.rcvhwm = mc.router_hwm
            router.bind(mc.bind)
            publisher.bind(ctx, mc.events_bind, mc.pub_hwm)
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            self._apply_limits(engine, journal, publisher, cash)
            log.info(
                "matcher at seq %d: commands on %s, events on %s",
                engine.seq,
                mc.bind,
                mc.events_bind,
            )
            if self._encode_ahead:
                # encode the recovered state's logs now, not in the first busy turn
                engine.catch_up(1 << 62)
            gc.collect()
            gc.freeze()  # the recovered state: see _loop
            gc_before = gc.get_threshold()
            gc.set_threshold(GC_YOUNG, *gc_before[1:])  # process-wide, like the freeze
            snapshots = self.snapshots = SnapshotWriter(journal.dir)
            self._ready.set()
            self._loop(engine, journal, publisher, snapshots, router, ctrl)
        finally:
            # Nested so that every step runs even when one raises (a journal that failed a
            # write fails its close too): the sockets, the event log and the GC policy are
            # released and the first error is the one the node reports.
            try:
                try:
                    if self.snapshots is not None:
                        # a pending snapshot is written before the node stops
                        self.snapshots.close(8.0)
                finally:
                    journal.close()
            finally:
                gc.unfreeze()  # the state is garbage once this node is gone (tests, zex run)
                if gc_before is not None:
                    gc.set_threshold(*gc_before)
                try:
                    publisher.close()
                finally:
                    for s in (router, ctrl):
                        s.close(linger=0)

    def _apply_limits(self, engine, journal, publisher: Publisher, cash: Cash) -> None:
        """Journal a LimitsCmd for every account whose configured limits differ from the state."""
        raws = []
        first_seq = engine.seq + 1
        ts = time.time_ns()  # the node is where these commands enter, so it stamps them
        for acfg in self.cfg.accounts:
            max_open, credit, max_pos = acfg.matcher_limits(self.cfg.instruments, cash)
            acct = engine.accounts.get(acfg.id)
            if acct is None and max_open is None and credit is None and not max_pos:
                continue
            if acct is not None and (
                (acct.max_open_orders, acct.credit, acct.max_position)
                == (max_open, credit, max_pos)
            ):
                continue
            cmd = LimitsCmd(ts, acfg.id, max_open, credit, max_pos)
            engine.process(cmd)
            raws.append(encoder.encode(cmd))
        if raws:
            journal.write(first_seq, raws)
            publisher.publish(first_seq, engine.seq, engine.events)
            log.info("journaled risk limits for %d account(s)", len(raws))
            engine.events.clear()
            engine.reports.clear()

    def _loop(
        self, engine, journal, publisher: Publisher, snapshots: SnapshotWriter, router, ctrl
    ) -> None:
        mc = self.mc
        poller = zmq.Poller()
        poller.register(router, POLLIN)
        poller.register(ctrl, POLLIN)
        recv = router.recv
        router_events = router.getsockopt
        decode = command_decoder.decode
        process = engine.process
        events, reports = engine.events, engine.reports
        max_batch = mc.max_batch
        snapshot_every = mc.snapshot_every
        next_snapshot = (engine.seq // snapshot_every + 1) * snapshot_every if snapshot_every else 0
        publish, idle = publisher.publish, publisher.idle
        keep_up = engine.keep_up
        encode_ahead = self._encode_ahead
        perf = time.perf_counter
        h_command, h_journal, h_batch = self.h_command, self.h_journal, self.h_batch
        while True:
            ready = dict(poller.poll(POLL_MS))
            if ctrl in ready:
                return
            if self._held:
                self._flush_held(router)
            if router not in ready:
                if encode_ahead:
                    engine.catch_up(IDLE_ENCODE)  # idle: get ahead of the next digest and snapshot
                idle(engine.seq)  # a heartbeat when the stream has been quiet
                continue
            t0 = perf()
            raws: list[bytes] = []
            queries: list[QueryCmd] = []
            first_seq = engine.seq + 1
            for i in range(max_batch):
                # The poll said the first is there. One getsockopt (2 us) then tells a turn
                # of one from a busy one, where a single zmq.Again (5 us) ends the turn.
                if i == 1 and not router_events(EVENTS) & POLLIN:
                    break
                try:
                    gw = recv(NOBLOCK)  # [gateway identity, command]: two recvs, one RCVMORE check
                    raw = recv(NOBLOCK)
                except zmq.Again:
                    break
                if router_events(RCVMORE):
                    router.recv_multipart(NOBLOCK)
                    self.bad_commands += 1
                    continue
                try:
                    cmd = decode(raw)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    # A gateway bug, not client input: refuse it, keep matching.
                    self.bad_commands += 1
                    log.warning("bad command from gateway %r: %s", gw, exc)
                    continue
                # A gateway's front DEALER is named "<gw>" and takes the reports;
                # its workers send commands as "<gw>/<n>".
                name = cmd.gw.encode()
                if gw != name and not gw.startswith(name + b"/"):
                    self.bad_commands += 1
                    log.warning("command names gateway %r but came from %r", cmd.gw, gw)
                    continue
                if type(cmd) is QueryCmd:
                    queries.append(cmd)
                    continue
                process(cmd)
                raws.append(raw)
            if not raws:
                if queries:
                    self._answer(router, engine, queries)
                continue
            t1 = perf()
            journal.write(first_seq, raws)  # the group commit: nothing is sent before it
            h_journal.observe(perf() - t1)
            self._send_reports(router, reports)
            publish(first_seq, engine.seq, events)  # the event log, then the PUB
            if encode_ahead:
                keep_up({r[1] for r in reports if r[3]})  # the accounts whose logs grew this turn
            if next_snapshot and engine.seq >= next_snapshot:
                # After the turn's acks are out: the snapshot is the state after its commands,
                # which are journaled already. The journal is synced first: a snapshot must never
                # be on disk ahead of the records it follows (fsync batch or off), or recovery
                # after a power loss stops.
                journal.sync()
                snapshots.submit(engine.seq, journal.chain, engine.state_parts())
                next_snapshot = (engine.seq // snapshot_every + 1) * snapshot_every
            n = len(raws)
            self.commands += n
            h_command.observe(perf() - t0, n)
            h_batch.observe(n)
            # The day's state (resting orders, answers, report logs) only grows, and
            # Python's collector would walk all of it again and again: it halved the
            # matcher's throughput at 340k open orders (bench/README.md). After each turn
            # a young-generation collection frees this turn's cyclic garbage (the review
            # found none per command), then what survived is frozen (O(1)), out of the
            # collector's reach: 0.3 ms worst per turn, no cost in throughput (measured).
            # The freeze is process-wide: other nodes in this process get the same.
            gc.collect(0)
            gc.freeze()
            events.clear()
            reports.clear()
            if queries:
                self._answer(router, engine, queries)

    def _answer(self, router: zmq.Socket, engine, queries: list[QueryCmd]) -> None:
        items = [((q.gw, q.client), q.account, DIRECT_ROLE, 0, engine.query(q)) for q in queries]
        self._send_reports(router, items)

    def _send_reports(self, router: zmq.Socket, reports: list) -> None:
        by_gw: dict[str, list] = defaultdict(list)
        for (gw, client), account, role, rseq, ev in reports:
            by_gw[gw].append((client, account, role, rseq, ev))
        for gw, items in by_gw.items():
            frame = encoder.encode(items)
            held = self._held.get(gw)
            if held is not None:  # keep the gateway's frames in order behind the held ones
                self._hold(held, frame)
                continue
            try:
                send(router, gw.encode(), MORE_NOBLOCK)  # refused at the first frame or not at all
                send(router, frame, NOBLOCK)
            except zmq.ZMQError as exc:
                if exc.errno == errno.EHOSTUNREACH:
                    self._held[gw] = held = deque()
                    self._hold(held, frame)
                else:  # EAGAIN: the gateway is connected but not reading; it recovers by rseq
                    self.dropped_reports += 1

    def _hold(self, held: deque, frame: bytes) -> None:
        if len(held) >= HOLD_MAX:
            held.popleft()
            self.dropped_reports += 1
        held.append((time.monotonic() + HOLD_S, frame))

    def _flush_held(self, router: zmq.Socket) -> None:
        now = time.monotonic()
        for gw, held in list(self._held.items()):
            name = gw.encode()
            while held:
                deadline, frame = held[0]
                if now > deadline:
                    self.dropped_reports += len(held)
                    log.warning(
                        "gateway %s unreachable for %.1f s: dropped %d report frames",
                        gw,
                        HOLD_S,
                        len(held),
                    )
                    held.clear()
                    break
                try:
                    send(router, name, MORE_NOBLOCK)
                    send(router, frame, NOBLOCK)
                except zmq.ZMQError:
                    break
                held.popleft()
            if not held:
                del self._held[gw]
