"""The zex client library: a synchronous ``Client`` and the sans-IO ``Session`` under it.

    from zex.protocol.client import Client
    from zex.protocol.messages import Ack

    with Client("tcp://127.0.0.1:7100", "alice", "s3cret") as c:
        c.logon()
        ack = c.place("XYZ", "buy", "10", "101.50")       # Ack or Reject
        if isinstance(ack, Ack):
            c.replace("XYZ", ack.order_id, "8", "101.50")  # Replaced or Reject
            c.cancel("XYZ", ack.order_id)                  # Cancelled or Reject
        for report in c.reports(timeout=1.0):             # the account's reports, in rseq order
            print(report)

Wire: one DEALER socket connected to the gateway's ROUTER; every message is
one frame, a MessagePack map (protocol/messages.py, SPEC.md). ``Session``
holds everything that is not the socket -- ids, request building, answer
matching, the rseq reorder buffer, recovery and heartbeat timers -- so the
asyncio client (aclient.py) shares it line for line.

Report stream. Execution reports carry ``rseq``, the account's gap-free
report sequence. The session drops repeats (``rseq`` <= last applied),
holds reports that arrive after a gap, asks for the gap with ``recover``
and releases everything in ``rseq`` order. Reports with ``rseq`` 0 (a
reject before sequencing, a ``resent`` repeat of a first answer, the copy of
a cancel's or replace's answer sent to the order's own session) are passed
through at once and not counted: with ``seq`` > 0 they repeat a report that
is, or will be, in the sequence, so a consumer that rebuilds state from the
stream skips them. Answers to the caller's requests are in the stream too,
so the stream is the account's complete history since start.

Idempotency. On a timeout a request is resent with the same ``cl_ord_id``;
the gateway answers a repeat with the first answer (``resent`` true), never a
second order. A request still unanswered when the session is lost is resent,
same id, by ``reconnect()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import zmq

from .messages import (
    Ack,
    Book,
    Cancelled,
    KillMode,
    KillSwitchSet,
    LoggedOut,
    LogonAck,
    Orders,
    OrdType,
    Positions,
    Query,
    Recover,
    Recovered,
    Reject,
    Replaced,
    Request,
    Side,
    Stp,
    Tif,
)
from .session import (
    EXEC_REPORTS,
    HEARTBEAT_LIVENESS,
    LOGON_KEY,
    RECOVER_LIMIT,
    ClientError,
    ExecReport,
    GatewayTimeout,
    IdGen,
    Key,
    Keyed,
    LogonRejected,
    NotLoggedOn,
    QueryRejected,
    Sequencer,
    Session,
    SessionLost,
    decimal_str,
)

# Client, and the session's public names, re-exported
__all__ = [
    "Client",
    "ClientError",
    "EXEC_REPORTS",
    "ExecReport",
    "GatewayTimeout",
    "HEARTBEAT_LIVENESS",
    "IdGen",
    "LogonRejected",
    "NotLoggedOn",
    "QueryRejected",
    "RECOVER_LIMIT",
    "Sequencer",
    "Session",
    "SessionLost",
    "decimal_str",
]


class Client:
    """A synchronous zex client; the calling thread owns the socket (no background thread).

        with Client("tcp://127.0.0.1:7100", "alice", "s3cret", timeout=2.0, retries=2) as c:
            c.logon()
            ack = c.place("XYZ", "buy", "10", "101.50")   # waits: Ack or Reject
            book = c.orders("XYZ")                        # Orders
            while True:
                for report in c.poll(1.0):                # fills of resting orders, etc.
                    handle(report)

    Every waiting call keeps processing reports and heartbeats while it waits;
    heartbeats are only sent while some call runs, so an idle program must
    call ``poll()`` at least once per heartbeat interval (default 1 s) or the
    gateway logs it out after three.

    Under gevent (locust) pass ``context=zmq.green.Context()``: the socket and
    its poll are then green, so other greenlets run while a call waits.

    ``timeout`` (seconds) is per attempt; a request unanswered after
    ``retries`` resends (same cl_ord_id) raises ``GatewayTimeout``. After
    ``SessionLost`` call ``reconnect()``. ``last_rseq`` resumes the report
    stream of an earlier run after that rseq; by default a fresh client
    starts at the account's current end, or at rseq 1 with ``recover_all``.
    """

    def __init__(
        self,
        endpoint: str,
        account: str,
        credential: str = "",
        *,
        heartbeat_ms: int = 1_000,
        timeout: float = 5.0,
        retries: int = 2,
        last_rseq: int | None = None,
        recover_all: bool = False,
        id_prefix: str | None = None,
        routing_id: bytes | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError(f"timeout must be > 0 and retries >= 0, were {timeout}, {retries}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.routing_id = routing_id
        self.session = Session(
            account,
            credential,
            heartbeat_ms=heartbeat_ms,
            last_rseq=last_rseq,
            recover_all=recover_all,
            id_prefix=id_prefix,
        )
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._open()

    # -------------------------------------------------------------- state

    @property
    def last_rseq(self) -> int | None:
        return self.session.last_rseq

    @property
    def bad_frames(self) -> int:
        """Gateway frames that did not decode (counted and skipped)."""
        return self.session.bad_frames

    @property
    def unanswered(self) -> list[Request]:
        return self.session.unanswered

    @property
    def logon_ack(self) -> LogonAck | None:
        """The last logon_ack: the account's options and limits at this gateway (SPEC 4.2).

        ``c.logon_ack.max_order_qty``, ``.rate``, ``.collar_pct``... are decimal strings, None
        where the account has no such limit; ``.operator`` and ``.cancel_on_disconnect`` bools.
        """
        return self.session.logon_ack

    # ------------------------------------------------------------ session

    def logon(self, timeout: float | None = None) -> LogonAck:
        """Open the session (a new connection after ``close()``); LogonRejected, GatewayTimeout."""
        if self._sock is None:
            self._open()
        s = self.session
        key = s.logon()
        ans = self._wait(key, timeout)
        if isinstance(ans, Reject):
            raise LogonRejected(ans)
        return ans

    def logout(self, timeout: float | None = None) -> LoggedOut:
        """Close the session (the gateway's cancel-on-disconnect applies)."""
        return self._wait(self.session.logout(), timeout)

    def reconnect(self, timeout: float | None = None) -> LogonAck:
        """New socket, logon, recover missed reports, resend unanswered requests (same ids).

        Waits up to ``timeout`` for the recovery and the resent requests'
        answers, which arrive in the report stream; what is still unanswered
        then stays in ``unanswered``.
        """
        self._close_socket()
        self.session.reset()
        self._open()
        ack = self.logon(timeout)
        s = self.session
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._pump(lambda: (s.settled() and not s.unanswered) or s.state != "open", deadline)
        return ack

    def close(self) -> None:
        """Log out if logged on (briefly, best effort), then close the socket (linger 0)."""
        if self._sock is None:
            return
        if self.session.state == "open":
            try:
                self._wait(self.session.logout(), min(self.timeout, 1.0), retries=0)
            except ClientError:
                pass
        self._close_socket()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- requests

    def place(
        self,
        symbol: str,
        side: Side,
        qty: str | int | Decimal,
        price: str | int | Decimal | None = None,
        *,
        ord_type: OrdType | None = None,
        tif: Tif | None = None,
        post_only: bool = False,
        stp: Stp = "cancel_newest",
        cl_ord_id: str | None = None,
        timeout: float | None = None,
    ) -> Ack | Reject:
        """Enter an order: limit if ``price`` is given, else market (tif ioc by default)."""
        msg = self.session.new_order(
            symbol,
            side,
            qty,
            price,
            ord_type=ord_type,
            tif=tif,
            post_only=post_only,
            stp=stp,
            cl_ord_id=cl_ord_id,
        )
        return self._call(msg, timeout)

    def cancel(
        self,
        symbol: str,
        order_id: int = 0,
        *,
        orig_cl_ord_id: str = "",
        cl_ord_id: str | None = None,
        timeout: float | None = None,
    ) -> Cancelled | Reject:
        """Cancel an order by ``order_id`` or by the ``orig_cl_ord_id`` of its new_order."""
        msg = self.session.cancel(
            symbol, order_id, orig_cl_ord_id=orig_cl_ord_id, cl_ord_id=cl_ord_id
        )
        return self._call(msg, timeout)

    def replace(
        self,
        symbol: str,
        order_id: int,
        qty: str | int | Decimal,
        price: str | int | Decimal,
        *,
        orig_cl_ord_id: str = "",
        cl_ord_id: str | None = None,
        timeout: float | None = None,
    ) -> Replaced | Reject:
        """Change an order's price and total quantity (``order_id`` 0: by ``orig_cl_ord_id``)."""
        msg = self.session.replace(
            symbol, order_id, qty, price, orig_cl_ord_id=orig_cl_ord_id, cl_ord_id=cl_ord_id
        )
        return self._call(msg, timeout)

    def kill_switch(
        self,
        account: str,
        mode: KillMode,
        *,
        cl_ord_id: str | None = None,
        timeout: float | None = None,
    ) -> KillSwitchSet | Reject:
        """Operator accounts only: set ``account``'s kill switch (block, reduce_only, off)."""
        return self._call(self.session.kill_switch(account, mode, cl_ord_id), timeout)

    def orders(self, symbol: str = "", timeout: float | None = None) -> Orders:
        """The account's open orders (in ``symbol``, or all); raises QueryRejected."""
        return self._query(self.session.query("orders", symbol), timeout)

    def positions(self, timeout: float | None = None) -> Positions:
        """The account's positions, cash, open-order count and kill switch."""
        return self._query(self.session.query("positions"), timeout)

    def book(self, symbol: str, depth: int = 10, timeout: float | None = None) -> Book:
        """The public book of ``symbol``: up to ``depth`` price levels a side, best first."""
        return self._query(self.session.query("book", symbol, depth), timeout)

    def recover(self, from_rseq: int | None = None, timeout: float | None = None) -> Recovered:
        """Fetch every report from ``from_rseq`` (default: the next expected) to the latest.

        The reports go to the stream (``poll``/``reports``); a ``from_rseq``
        already applied rewinds it, so those reports are delivered again.
        Returns the gateway's last ``recovered`` (its ``last_rseq`` is the end).
        """
        s = self.session
        timeout = self.timeout if timeout is None else timeout
        for _ in range(self.retries + 1):
            token = s.recover(time.monotonic(), from_rseq)
            from_rseq = None
            self._pump(partial(s.recover_done, token), time.monotonic() + timeout)
            if s.caught_up(token):
                assert s.recovered is not None
                return s.recovered
            s.check_open()
        raise GatewayTimeout(Recover(from_rseq=(s.last_rseq or 0) + 1), self.retries + 1, timeout)

    # ------------------------------------------------------------- stream

    def poll(self, timeout: float | None = 0.0) -> list[ExecReport]:
        """The reports now in order, waiting up to ``timeout`` s (None: until some arrive).

        Raises SessionLost once the session is lost and every report before
        the loss has been returned.
        """
        s = self.session
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        self._pump(lambda: bool(s.ready) or s.state in ("lost", "closed"), deadline)
        if not s.ready and s.state == "lost":
            s.check_open()
        return s.take_reports()

    def reports(self, timeout: float | None = None) -> Iterator[ExecReport]:
        """Yield reports as they come, in rseq order; stop after ``timeout`` s with none.

        ``timeout`` None: run until the session is logged out (or lost: SessionLost).
        """
        s = self.session
        while True:
            if s.ready:
                yield s.ready.popleft()
                continue
            if s.state == "closed":
                return
            deadline = float("inf") if timeout is None else time.monotonic() + timeout
            self._pump(lambda: bool(s.ready) or s.state in ("lost", "closed"), deadline)
            if not s.ready:
                if s.state == "lost":
                    s.check_open()
                if timeout is not None:
                    return

    # ------------------------------------------------------------ the I/O

    def _open(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        if self.routing_id is not None:
            sock.routing_id = self.routing_id
        sock.connect(self.endpoint)
        self._sock = sock
        self.session.last_rx = self.session.last_tx = time.monotonic()

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _call(self, msg: Keyed, timeout: float | None) -> Any:
        if self._sock is None:
            raise ClientError("the client is closed")
        return self._wait(self.session.start(msg), timeout)

    def _query(self, msg: Query, timeout: float | None) -> Any:
        ans = self._call(msg, timeout)
        if isinstance(ans, Reject):
            raise QueryRejected(ans)
        return ans

    def _wait(self, key: Key, timeout: float | None, retries: int | None = None) -> Any:
        """Pump until ``key`` is answered, resending on each timeout; raise on loss or timeout."""
        s = self.session
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        try:
            for attempt in range(retries + 1):
                if attempt:
                    s.resend(key)
                self._pump(
                    lambda: key in s.answers or s.state in ("lost", "closed"),
                    time.monotonic() + timeout,
                )
                if key in s.answers:
                    return s.answers.pop(key)
                if s.state in ("lost", "closed"):
                    s.check_open()
            p = s.pending[key]
            raise GatewayTimeout(p.msg, p.sends, timeout)
        except BaseException:
            s.abandon(key)
            if key == LOGON_KEY and s.state == "logging_on":
                s.state = "new"
            raise

    def _pump(self, done: Callable[[], bool], deadline: float) -> None:
        """Send, receive and run timers until ``done()`` or ``deadline`` (monotonic s)."""
        s, sock = self.session, self._sock
        if sock is None:
            raise ClientError("the client is closed")
        while True:
            now = time.monotonic()
            wake = s.tick(now)
            for frame in s.outgoing(now):
                try:
                    sock.send(frame, zmq.NOBLOCK)
                except zmq.Again:  # queue full (gateway gone): the resend timers cover it
                    pass
            if done() or now >= deadline:
                return
            wait = min(deadline, wake) - now
            ms = None if wait == float("inf") else math.ceil(max(0.0, wait) * 1000)
            if sock.poll(ms, zmq.POLLIN):
                now = time.monotonic()
                for _ in range(1_000):  # bounded: timers keep their turn under a flood
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if len(frames) == 1:
                        s.receive(frames[0], now)
                    else:  # the spec allows exactly one frame
                        s.bad_frames += 1
