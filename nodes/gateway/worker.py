"""The gateway's runners: intake (intake.py) between the sockets, in the front thread or a worker thread.

Intake decides; a runner carries the decision out. Both runners speak to the
front with the same frames (``out``), so the front reads them one way:

    [b"R", client, frame]                                  a reply (a reject) for the client
    [b"S", client, account, heartbeat_ms, session_id]      logon accepted
    [b"X", client]                                         the session ended at the client's request

``FrontRunner`` (``gateway.workers = 0``): the front thread calls ``handle``
itself; ``out`` is a call into the front, and commands leave through the
front's DEALER without ever blocking (a full queue refuses the request with
UNAVAILABLE, or holds a cancel-on-disconnect for the next tick). On CPython
that is the fastest arrangement (one GIL: a worker thread adds a hand-off
per request and no parallel work; bench/README.md).

``WorkerThread`` (``gateway.workers = N``): a thread owning three sockets and
the sessions of the clients hashed to it (so one client's requests are
decided in order, by one thread):

    PULL    inproc from the front   [client, frame] or control [b"", kind, client]
    PUSH    inproc to the front     the ``out`` frames above
    DEALER  to the matcher          identity "<gateway>/<n>"; internal commands (protocol/internal.py)

It may wait for room in its queue to the matcher: it holds nothing the front needs.

A refused request gets a ``reject`` with seq 0 from here and never reaches
the matcher: it changed nothing and did not use up its cl_ord_id.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import zmq

from zex.protocol import messages as m
from zex.protocol.codec import encode
from zex.protocol.internal import (
    KILL_NAMES,
    Q_REPORTS,
    CancelCmd,
    KillSwitchCmd,
    MassCancelCmd,
    NewOrderCmd,
    QueryCmd,
    ReplaceCmd,
)
from zex.protocol.internal import encoder as internal_encoder
from zex.protocol.reasons import Reason

from ..runtime.audit import AuditPush
from ..runtime.hotpath import NOBLOCK, send
from .intake import Closed, Intake, Opened, Refusal

log = logging.getLogger("zex.gateway")

_encode = internal_encoder.encode

# What a runner sends the matcher.
Forwarded = NewOrderCmd | CancelCmd | ReplaceCmd | KillSwitchCmd | QueryCmd | MassCancelCmd


def _not_started(frames: list[bytes]) -> None:
    raise RuntimeError("the worker thread has not started: it makes its sockets in run()")


class Runner:
    """Carry out intake's decisions: replies and session changes to ``out``, commands to the matcher.

    Subclasses say how a command leaves (``forward``). Counters are written by
    the runner's thread only and read by the metrics scrape.
    """

    def __init__(
        self,
        intake: Intake,
        out: Callable[[list[bytes]], None],
        audit: AuditPush,
        matcher_hwm: int = 100_000,
    ) -> None:
        self.intake = intake
        self.out = out
        self.audit = audit
        self.matcher_hwm = matcher_hwm
        self.rejected = 0
        self.forwarded = 0
        self.reject_counts: dict[int, int] = {}  # reason code -> rejects here (metrics)

    def close(self) -> None:
        self.audit.close()

    def handle(self, client: bytes, frame: bytes) -> None:
        r = self.intake.handle(client, frame)
        # type(r) is X: the type checker narrows r on it, and it costs what t is X does (19 ns
        # against 18). The kind names the request, for the UNAVAILABLE reject if it cannot go.
        if type(r) is NewOrderCmd:  # the hot path first
            self.forward(r, "new_order")
        elif type(r) is CancelCmd:
            self.forward(r, "cancel")
        elif type(r) is ReplaceCmd:
            self.forward(r, "replace")
        elif type(r) is Refusal:
            self.refuse(client, r)
        elif type(r) is QueryCmd:
            self.forward(r, "recover" if r.what == Q_REPORTS else "query")
        elif type(r) is KillSwitchCmd:
            self.audit.record(
                "kill_switch",
                r.account,
                client,
                r.cl_ord_id,
                text=f"{r.target} -> {KILL_NAMES[r.mode]}",
            )
            self.forward(r, "kill_switch")
        elif type(r) is Opened:
            self.opened(client, r)
        elif type(r) is Closed:
            self.ended(client, r)
            self.out([b"X", client])

    def too_many_frames(self, client: bytes, n: int) -> None:
        self.refuse(client, self.intake.too_many_frames(client, n))

    def drop(self, client: bytes, why: str) -> None:
        """The front ended ``client``'s session (heartbeat loss): forget it, cancel-on-disconnect."""
        closed = self.intake.drop(client, why)
        if closed is not None:
            self.ended(client, closed)

    def refuse(self, client: bytes, r: Refusal) -> None:
        self.rejected += 1
        code = int(r.reason)
        self.reject_counts[code] = self.reject_counts.get(code, 0) + 1
        self.audit.record(
            "logon_failed" if r.ref_type == "logon" else "reject",
            r.account,
            client,
            r.cl_ord_id,
            code,
            r.text,
        )
        self.out(
            [
                b"R",
                client,
                encode(
                    m.Reject(
                        cl_ord_id=r.cl_ord_id,
                        ref_type=r.ref_type,
                        reason=code,
                        reason_name=r.reason.name,
                        text=r.text,
                    )
                ),
            ]
        )

    def opened(self, client: bytes, r: Opened) -> None:
        """Announce the session to the front, then ask the matcher for the account's rseq.

        In that order: a worker's query may be answered before an announcement sent
        after it has reached the front. A worker waits for room, so the query goes.
        """
        self.announce(client, r)
        self.forward(r.query, "logon")

    def announce(self, client: bytes, r: Opened) -> None:
        self.audit.record("logon", r.account, client)
        self.out(
            [b"S", client, r.account.encode(), str(r.heartbeat_ms).encode(), r.session_id.encode()]
        )

    def ended(self, client: bytes, r: Closed) -> None:
        self.audit.record(
            "logout" if r.why == "logout" else "session_dropped", r.account, client, text=r.why
        )
        if r.cancel is not None:
            self.forward(r.cancel, "")

    def forward(self, cmd: Forwarded, kind: str) -> bool:
        """Send ``cmd`` to the matcher; False if it was refused (the runner answered the client)."""
        raise NotImplementedError

    def unavailable(self, cmd: Forwarded, kind: str) -> None:
        what = "req_id" if kind == "query" else "cl_ord_id"
        self.refuse(
            cmd.client,
            Refusal(
                kind,
                getattr(cmd, what, ""),
                Reason.UNAVAILABLE,
                f"the queue to the matcher is full ({self.matcher_hwm} commands): the matcher is down or far "
                f"behind; resend later with the same {what}",
                cmd.account,
            ),
        )


class FrontRunner(Runner):
    """Intake in the front thread (workers = 0): ``handle`` is called by the front, which owns ``dealer``."""

    def __init__(
        self,
        intake: Intake,
        out: Callable[[list[bytes]], None],
        dealer: zmq.Socket,
        audit: AuditPush,
        matcher_hwm: int = 100_000,
    ) -> None:
        super().__init__(intake, out, audit, matcher_hwm)
        self.dealer = dealer
        self.unsent: deque[bytes] = deque()  # cancel-on-disconnect held back by a full queue

    def forward(self, cmd: Forwarded, kind: str) -> bool:
        """Never wait: a matcher that is down would freeze heartbeats, reports and stop() with it.

        A request (``kind`` names it) that finds the queue full is refused with
        UNAVAILABLE; a cancel-on-disconnect (no ``kind``) is kept and retried on
        the front's tick. Nothing goes ahead of a held cancel: it matches its
        client's orders by connection, so it would cancel an order the client
        entered after logging on again (the queue is full while one is held).
        """
        raw = _encode(cmd)
        if self.unsent:
            self.retry_unsent()
            if self.unsent:
                return self._full(cmd, raw, kind)
        try:
            send(self.dealer, raw, NOBLOCK)
        except zmq.Again:
            return self._full(cmd, raw, kind)
        self.forwarded += 1
        return True

    def _full(self, cmd: Forwarded, raw: bytes, kind: str) -> bool:
        if not kind:
            self.unsent.append(raw)
            return True
        self.unavailable(cmd, kind)
        return False

    def opened(self, client: bytes, r: Opened) -> None:
        """Ask the matcher first and announce only a logon it was asked about.

        ``out`` runs in this thread, so the answer cannot overtake the announcement. A
        logon refused here (UNAVAILABLE) changes nothing, as a worker's never fails: a
        repeat leaves the live session as it was, its cancel-on-disconnect armed; a first
        logon leaves no session (it could not have entered an order).
        """
        if self.forward(r.query, "logon"):
            self.announce(client, r)
        elif r.first:
            self.intake.sessions.pop(client, None)

    def retry_unsent(self) -> None:
        """Send what an earlier full queue held back (cancel-on-disconnect), oldest first."""
        while self.unsent:
            try:
                send(self.dealer, self.unsent[0], NOBLOCK)
            except zmq.Again:
                return
            self.unsent.popleft()
            self.forwarded += 1


class WorkerThread(Runner):
    """Intake in a thread of its own (workers > 0); the front starts ``run`` in a thread."""

    dealer: zmq.Socket  # to the matcher: made in run(), by the thread that uses it

    def __init__(
        self,
        index: int,
        intake: Intake,
        ctx: zmq.Context,
        in_addr: str,
        out_addr: str,
        matcher: str,
        audit: str = "",
        matcher_hwm: int = 100_000,
    ) -> None:
        # out, audit and dealer are made in run(), by the thread that uses them; until then out
        # refuses and the audit records nothing (endpoint "": no socket).
        super().__init__(intake, _not_started, AuditPush(ctx, "", intake.name), matcher_hwm)
        self.index = index
        self.ctx = ctx
        self.in_addr = in_addr
        self.out_addr = out_addr
        self.matcher = matcher
        self.audit_endpoint = audit

    def forward(self, cmd: Forwarded, kind: str) -> bool:
        send(self.dealer, _encode(cmd), 0)  # may wait for room: this thread holds nothing else
        self.forwarded += 1
        return True

    def run(self, ready: Callable[[], None]) -> None:
        ctx = self.ctx
        pull = ctx.socket(zmq.PULL)
        push = ctx.socket(zmq.PUSH)
        dealer = ctx.socket(zmq.DEALER)
        try:
            for s in (pull, push, dealer):
                s.linger = 0
            pull.connect(self.in_addr)
            push.connect(self.out_addr)
            dealer.identity = f"{self.intake.name}/{self.index}".encode()
            dealer.sndhwm = self.matcher_hwm
            dealer.connect(self.matcher)
            self.out, self.dealer = push.send_multipart, dealer
            self.audit = AuditPush(ctx, self.audit_endpoint, self.intake.name)
            ready()
            recv = pull.recv_multipart
            handle = self.handle
            while True:
                frames = recv()
                if frames[0]:
                    if len(frames) == 2:
                        handle(frames[0], frames[1])
                    else:
                        self.too_many_frames(frames[0], len(frames) - 1)
                elif frames[1] == b"STOP":
                    return
                elif frames[1] == b"DROP":
                    self.drop(frames[2], "heartbeat")
        except zmq.ContextTerminated:
            return
        finally:
            for s in (pull, push, dealer):
                s.close(0)
            self.close()
