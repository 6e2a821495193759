"""The gateway node: a front thread that owns the client ROUTER, and a pool of workers.

    ROUTER  cfg.bind            clients' DEALERs: one frame per message (protocol/SPEC.md)
    DEALER  matcher             identity "<name>": reports and answers come back here
    SUB     matcher events      the last trade price per symbol (the workers' collar reference)
    PUSH    inproc, one/worker  [client, frame]; a client always goes to the same worker
    PULL    inproc              replies and session changes from the workers (worker.py)
    PAIR    inproc control      stop() sends b"STOP"

Every request is decided by intake (intake.py: decode, validate, authorise,
stateless risk; no I/O), run by one of two thin runners (worker.py).
``workers = 0`` (the default) runs no worker threads: the front runs intake
itself and sends the command out of its own DEALER.
On CPython that is measured fastest (bench/README.md): the GIL lets one
thread run Python at a time, so a worker thread adds a hand-off per request
and no parallel work; a gateway scales by running more gateway processes.
``workers = N`` keeps N threads, for an interpreter without a GIL or
validation that waits on I/O.

The front owns the session table (who is logged on as which account, and
their heartbeats) and routes every report: a report in an account's
sequence (rseq > 0) goes to every live session of that account here; one
outside it (rseq 0: a resent answer, an answer to a query) only to the
session it names. A session silent for ``heartbeat_liveness`` intervals is
dropped: it gets ``logged_out`` and its worker applies cancel-on-disconnect.
The price feed is read after the reports of a turn, and on the tick, so it
never wakes the front by itself: only the newest trade price per symbol
matters, and a reference up to one tick (50 ms) old is fine for a collar.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import cast

import msgspec
import zmq

from zex.protocol import messages as m
from zex.protocol.codec import encode
from zex.protocol.internal import (
    DIRECT_ROLE,
    Accepted,
    Cancelled,
    KillSwitchSet,
    Rejected,
    Replaced,
    ReportsAnswer,
    Trade,
    batch_decoder,
    report_decoder,
)
from zex.protocol.numbers import Cash

from ..runtime.audit import AuditPush
from ..runtime.config import Config
from ..runtime.hotpath import EVENTS, MORE_NOBLOCK, NOBLOCK, POLLIN, RCVMORE, send
from ..runtime.metrics import LATENCY_BUCKETS, histogram
from ..runtime.service import NodeThread
from .intake import Intake
from .reports import Reports
from .risk import AccountRules
from .worker import FrontRunner, Runner, WorkerThread

log = logging.getLogger("zex.gateway")

# The matcher's first answers to a request; each carries the ts the worker stamped.
_ANSWERS_WITH_TS = frozenset({Accepted, Rejected, Cancelled, Replaced, KillSwitchSet})


PRICE_HWM = 100_000  # event batches the price feed may queue between reads (one tick: 50 ms)
TICK_S = 0.05  # how often the front looks at heartbeats; well under the 100 ms minimum interval
TICK_MS = round(TICK_S * 1000)  # the same, as the poll's timeout
# A client frame above this makes ZeroMQ drop the connection (ZMQ_MAXMSGSIZE).
MAX_MSG_BYTES = 1 << 20


class Session:
    __slots__ = ("client", "account", "hb", "last_rx", "last_tx", "pending", "session_id")

    def __init__(
        self, client: bytes, account: str, hb_ms: int, session_id: str, now: float
    ) -> None:
        self.client = client
        self.account = account
        self.hb = hb_ms / 1000.0
        self.last_rx = now
        self.last_tx = now
        self.pending = True  # logon accepted, waiting for the account's rseq from the matcher
        self.session_id = session_id


class GatewayNode(NodeThread):
    """Run a gateway in threads of this process: ``start()``, then ``stop()``.

    node = GatewayNode(config.load())
    node.start()          # returns once bound and the workers are up, or raises
    ...
    node.stop()
    """

    def __init__(self, cfg: Config, ctx: zmq.Context | None = None) -> None:
        super().__init__(f"gw-{cfg.gateway.name}", ctx, log, cfg.gateway.metrics_bind)
        self.cfg = cfg
        self.gc = cfg.gateway
        tag = uuid.uuid4().hex
        self._back_addr = f"inproc://zex-gw-back-{tag}"
        self._work_addr = [f"inproc://zex-gw-work-{tag}-{i}" for i in range(self.gc.workers)]
        self.cash = Cash(cfg.instruments)
        self.rules = {a.id: AccountRules.build(a, cfg.instruments, self.cash) for a in cfg.accounts}
        # logon_ack's extras
        self._logon_fields = {a: r.logon_fields() for a, r in self.rules.items()}
        self.refs: dict[str, int] = {}
        self.sessions: dict[bytes, Session] = {}
        self.by_account: dict[str, set[bytes]] = defaultdict(set)
        self.next_rseq: dict[str, int] = {}
        self.workers: list[Runner] = []
        self._inline: FrontRunner | None = None  # workers = 0: intake runs in the front thread
        self._threads: list[threading.Thread] = []  # the workers; the front joins them
        self.dropped_reports = 0  # frames a client could not take (gone or not reading)
        self.orphan_reports = 0  # rseq-0 reports whose session had ended
        self.bad_reports = 0
        # metrics: written by the front thread only, read at scrape time
        self.logons = 0
        self.reconnects = 0
        self._ended: set[str] = set()  # accounts with a session here that has ended
        self._back = None  # the front's PULL from the workers, once the loop runs
        self.heartbeat_drops = 0
        # request in (worker's stamp) to the matcher's answer out
        self.h_ack = histogram(bool(self.gc.metrics_bind), LATENCY_BUCKETS)

    namespace = "gateway"

    def _metrics(self) -> list:
        def rejects() -> dict[int, int]:
            out: dict[int, int] = {}
            for w in list(self.workers):
                for code, n in dict(w.reject_counts).items():
                    out[code] = out.get(code, 0) + n
            return out

        return [
            (
                "histogram",
                "order_ack_seconds",
                "Request to answer at this gateway: from the worker's "
                "timestamp to the matcher's ack, reject, cancelled or replaced going out to the client",
                lambda: self.h_ack,
            ),
            (
                "counter",
                "forwarded",
                "Commands and queries forwarded to the matcher",
                lambda: sum(w.forwarded for w in list(self.workers)),
            ),
            (
                "counter",
                "rejects",
                "Requests the gateway refused itself (never sent to the matcher), by reason code",
                rejects,
                "reason",
            ),
            ("gauge", "sessions", "Logged-on sessions", lambda: len(self.sessions)),
            ("counter", "logons", "Logons accepted", lambda: self.logons),
            (
                "counter",
                "reconnects",
                "Logons of accounts whose earlier session here had ended (logout, "
                "heartbeat loss or a new connection)",
                lambda: self.reconnects,
            ),
            (
                "counter",
                "heartbeat_drops",
                "Sessions dropped for missed heartbeats",
                lambda: self.heartbeat_drops,
            ),
            (
                "counter",
                "dropped_reports",
                "Report frames a client could not take (gone or not reading)",
                lambda: self.dropped_reports,
            ),
            (
                "counter",
                "orphan_reports",
                "Answers whose session had ended",
                lambda: self.orphan_reports,
            ),
            (
                "counter",
                "bad_reports",
                "Undecodable frames from the matcher",
                lambda: self.bad_reports,
            ),
            (
                "counter",
                "audit_records",
                "Audit records pushed to the logger",
                lambda: sum(w.audit.sent for w in list(self.workers)),
            ),
            (
                "counter",
                "audit_dropped",
                "Audit records dropped: the queue to the logger was full (logger slow "
                "or down); the gateway never waits for it",
                lambda: sum(w.audit.dropped for w in list(self.workers)),
            ),
        ]

    @property
    def matcher_endpoint(self) -> str:
        return self.gc.matcher or self.cfg.matcher.bind

    @property
    def events_endpoint(self) -> str:
        return self.gc.events or self.cfg.matcher.events_bind

    @property
    def audit_endpoint(self) -> str:
        a = self.gc.audit
        return "" if a == "off" else (a or self.cfg.logger.bind)

    def _intake(self) -> Intake:
        """One runner's intake: its own sessions, the shared rules and the front's price references."""
        return Intake(self.gc.name, self.cfg.instruments, self.rules, self.cash, self.refs)

    # ---------------------------------------------------------- the front

    def _run(self) -> None:
        ctx, gc = self.ctx, self.gc
        router = ctx.socket(zmq.ROUTER)
        dealer = ctx.socket(zmq.DEALER)
        sub = ctx.socket(zmq.SUB)
        back = ctx.socket(zmq.PULL)
        ctrl = ctx.socket(zmq.PAIR)
        pushes = [ctx.socket(zmq.PUSH) for _ in range(gc.workers)]
        sockets = [router, dealer, sub, back, ctrl, *pushes]
        try:
            for s in sockets:
                s.linger = 0
            router.router_mandatory = 1  # a client that is gone: count it, do not block
            router.sndhwm = router.rcvhwm = gc.router_hwm
            router.maxmsgsize = MAX_MSG_BYTES
            router.bind(gc.bind)
            dealer.identity = gc.name.encode()
            dealer.sndhwm = gc.matcher_hwm
            dealer.connect(self.matcher_endpoint)
            sub.rcvhwm = PRICE_HWM
            sub.subscribe(b"ev")
            sub.connect(self.events_endpoint)
            back.bind(self._back_addr)
            for push, addr in zip(pushes, self._work_addr, strict=True):
                push.bind(addr)
            ctrl.connect(self._ctrl_addr)
            if not gc.workers:

                def out(frames: list[bytes]) -> None:
                    self._from_worker(router, frames, time.monotonic())

                self._inline = FrontRunner(
                    self._intake(),
                    out,
                    dealer,
                    AuditPush(ctx, self.audit_endpoint, gc.name),
                    gc.matcher_hwm,
                )
                self.workers.append(self._inline)
            started = threading.Semaphore(0)
            for i in range(gc.workers):
                w = WorkerThread(
                    i,
                    self._intake(),
                    ctx,
                    self._work_addr[i],
                    self._back_addr,
                    self.matcher_endpoint,
                    audit=self.audit_endpoint,
                    matcher_hwm=gc.matcher_hwm,
                )
                self.workers.append(w)
                t = threading.Thread(
                    target=w.run, args=(started.release,), name=f"zex-gw-worker-{i}", daemon=True
                )
                self._threads.append(t)
                t.start()
            for _ in range(gc.workers):
                if not started.acquire(timeout=10):
                    raise TimeoutError("a gateway worker did not start within 10 s")
            log.info(
                "gateway %s: clients on %s, matcher at %s, %s",
                gc.name,
                gc.bind,
                self.matcher_endpoint,
                f"{gc.workers} worker threads"
                if gc.workers
                else "requests handled in the front thread",
            )
            self._ready.set()
            self._loop(router, dealer, sub, back, ctrl, pushes)
        finally:
            for push in pushes:
                try:
                    push.send_multipart([b"", b"STOP"], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass
            for t in self._threads:
                t.join(5)
            if self._inline is not None:
                self._inline.close()
            for s in sockets:
                s.close(0)

    def _loop(self, router, dealer, sub, back, ctrl, pushes) -> None:
        poller = zmq.Poller()
        # Not the price feed: it is read when the matcher has spoken (its batches come with
        # the reports) and on the tick, so an idle gateway is not woken by every batch.
        for s in (
            (router, dealer, ctrl) if self._inline is not None else (router, dealer, back, ctrl)
        ):
            poller.register(s, POLLIN)
        reports = Reports(self.cfg.instruments, self.cash)
        n = len(pushes)
        self._back = back if n else None  # workers = 0: sessions are announced synchronously
        sessions = self.sessions
        inline = self._inline
        handle = inline.handle if inline is not None else None
        recv = router.recv
        router_events, dealer_events = router.getsockopt, dealer.getsockopt
        next_tick = time.monotonic() + TICK_S
        while True:
            ready = dict(poller.poll(TICK_MS))
            now = time.monotonic()
            if ctrl in ready:
                return
            if router in ready:
                for i in range(1000):  # bounded so reports and heartbeats keep their turn
                    # The poll said the first is there. One getsockopt (2 us) then tells a turn
                    # of one from a busy one, where a single zmq.Again (5 us) ends the turn.
                    if i == 1 and not router_events(EVENTS) & POLLIN:
                        break
                    try:
                        # a ROUTER message: [client, frame]; a client sends one frame
                        client = recv(NOBLOCK)
                        frame = recv(NOBLOCK)
                    except zmq.Again:
                        break
                    sess = sessions.get(client)
                    if sess is not None:
                        sess.last_rx = now
                    if router_events(RCVMORE):  # more than one frame: the rest goes, refused
                        extra = len(router.recv_multipart(NOBLOCK))
                        if inline is None:
                            pushes[hash(client) % n].send_multipart([client, frame, *[b""] * extra])
                        else:
                            inline.too_many_frames(client, 1 + extra)
                    elif handle is None:
                        pushes[hash(client) % n].send_multipart([client, frame])
                    else:
                        handle(client, frame)
            # The workers' pipe first, and whenever the matcher has spoken too: a worker
            # announces a session here before it asks the matcher for the account's rseq,
            # and the answer may come in after this poll but before we read the matcher.
            if n and (back in ready or dealer in ready):
                self._drain_back(router, back, now)
            if dealer in ready:
                for i in range(1000):
                    if i == 1 and not dealer_events(EVENTS) & POLLIN:
                        break
                    try:
                        frame = dealer.recv(NOBLOCK)
                    except zmq.Again:
                        break
                    self._from_matcher(router, reports, frame, now)
            if now >= next_tick:
                next_tick = now + TICK_S
                self._heartbeats(router, pushes, now)
                if inline is not None and inline.unsent:
                    inline.retry_unsent()
                # everything waiting: the reference is at most a tick old
                self._prices(sub, PRICE_HWM)
            elif dealer in ready:
                self._prices(sub, 1000)

    def _drain_back(self, router, back, now: float) -> None:
        while True:
            try:
                frames = back.recv_multipart(NOBLOCK)
            except zmq.Again:
                return
            self._from_worker(router, frames, now)

    def _send(self, router, client: bytes, frame: bytes, now: float) -> None:
        try:
            # a ROUTER refuses a message at its first frame or not at all
            send(router, client, MORE_NOBLOCK)
            send(router, frame, NOBLOCK)
        except zmq.ZMQError:  # EHOSTUNREACH (gone) or EAGAIN (not reading): it recovers by rseq
            self.dropped_reports += 1
            return
        sess = self.sessions.get(client)
        if sess is not None:
            sess.last_tx = now

    def _from_worker(self, router, frames: list[bytes], now: float) -> None:
        kind = frames[0]
        if kind == b"R":
            self._send(router, frames[1], frames[2], now)
        elif kind == b"S":
            client, account = frames[1], frames[2].decode()
            old = self.sessions.get(client)
            if old is not None and old.account == account:
                old.pending = True  # a repeated logon: answer it again once the rseq is back
                return
            sess = Session(client, account, int(frames[3]), frames[4].decode(), now)
            self.logons += 1
            if account in self._ended:  # it had a session here that ended: a client reconnecting
                self.reconnects += 1
            self.sessions[client] = sess
            self.by_account[account].add(client)
        elif kind == b"X":
            self._end(frames[1])
            self._send(router, frames[1], encode(m.LoggedOut(reason="logout")), now)

    def _end(self, client: bytes) -> Session | None:
        sess = self.sessions.pop(client, None)
        if sess is not None:
            self._ended.add(sess.account)
            peers = self.by_account.get(sess.account)
            if peers is not None:
                peers.discard(client)
                if not peers:
                    del self.by_account[sess.account]
        return sess

    def _from_matcher(self, router, reports: Reports, frame: bytes, now: float) -> None:
        try:
            items = report_decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.bad_reports += 1
            log.warning("undecodable report frame from the matcher (%d bytes)", len(frame))
            return
        sessions, by_account, next_rseq = self.sessions, self.by_account, self.next_rseq
        now_ns = time.time_ns()
        observe = self.h_ack.observe
        for it in items:
            payload = it.payload
            if (
                it.role == DIRECT_ROLE
                and type(payload) in _ANSWERS_WITH_TS
                # not an order's own STP cancel
                and (type(payload) is not Cancelled or payload.req_cl_ord_id)
            ):
                # each type in _ANSWERS_WITH_TS has ts; a set lookup does not narrow for mypy
                observe((now_ns - payload.ts) * 1e-9)  # type: ignore[union-attr]
            if it.rseq:
                if it.rseq >= next_rseq.get(it.account, 1):
                    next_rseq[it.account] = it.rseq + 1
                msg = reports.event(payload, it.role, it.rseq)
                if msg is None:
                    continue
                raw = encode(msg)
                for client in by_account.get(it.account, ()):
                    self._send(router, client, raw, now)
                continue
            sess = sessions.get(it.client)
            if sess is None and type(payload) is ReportsAnswer and self._back is not None:
                # A logon's answer that overtook the worker's session message: read it now.
                self._drain_back(router, self._back, now)
                sess = sessions.get(it.client)
            if sess is None or sess.account != it.account:
                self.orphan_reports += 1  # its session has gone; nothing in the sequence is lost
                if type(payload) is ReportsAnswer:
                    log.info("answer for a session that has gone (account %s); dropped", it.account)
                continue
            if type(payload) is ReportsAnswer and sess.pending:
                sess.pending = False
                nxt = payload.last_rseq + 1
                if nxt > next_rseq.get(it.account, 1):
                    next_rseq[it.account] = nxt
                ack = m.LogonAck(
                    account=sess.account,
                    session_id=sess.session_id,
                    heartbeat_ms=int(sess.hb * 1000),
                    next_rseq=nxt,
                    **self._logon_fields[sess.account],
                )
                self._send(router, it.client, encode(ack), now)
                continue
            msg = reports.event(payload, it.role, 0)
            if msg is not None:
                self._send(router, it.client, encode(msg), now)
                continue
            for raw in reports.answer(payload):
                self._send(router, it.client, raw, now)

    def _heartbeats(self, router, pushes, now: float) -> None:
        liveness = self.gc.heartbeat_liveness
        for client, sess in list(self.sessions.items()):
            if now - sess.last_rx > liveness * sess.hb:
                self._end(client)
                self._send(
                    router,
                    client,
                    encode(
                        m.LoggedOut(
                            reason="heartbeat",
                            text=(
                                f"nothing received for {liveness} heartbeat intervals of {sess.hb:g} s"
                            ),
                        )
                    ),
                    now,
                )
                if self._inline is not None:
                    self._inline.drop(client, "heartbeat")
                else:
                    pushes[hash(client) % len(pushes)].send_multipart([b"", b"DROP", client])
                self.heartbeat_drops += 1
                log.info("dropped session %s of %s: heartbeat lost", sess.session_id, sess.account)
            elif now - sess.last_tx >= sess.hb and not sess.pending:
                hb = m.Heartbeat(next_seq=self.next_rseq.get(sess.account, 1))
                self._send(router, client, encode(hb), now)

    # --------------------------------------------------------- price feed

    def _prices(self, sub: zmq.Socket, limit: int) -> None:
        """Keep ``refs`` (symbol -> last trade ticks) from up to ``limit`` waiting event batches."""
        # EVENTS and RCVMORE are int options: getsockopt returns an int for them
        events = cast(Callable[[int], int], sub.getsockopt)
        refs, recv = self.refs, sub.recv
        for _ in range(limit):
            if not events(EVENTS) & POLLIN:
                return
            try:
                topic = recv(NOBLOCK)
                body = recv(NOBLOCK) if topic == b"ev" and events(RCVMORE) else None
                while events(RCVMORE):  # not the matcher's [ev, batch]: skip the rest of it
                    recv(NOBLOCK)
                    body = None
            except zmq.Again:
                return
            if body is None:
                continue
            try:
                batch = batch_decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            for ev in batch.events:
                if type(ev) is Trade:
                    refs[ev.symbol] = ev.price
