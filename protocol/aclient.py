"""The asyncio zex client: the same API as ``Client``, as coroutines, on ``zmq.asyncio``.

    import asyncio
    from zex.protocol.aclient import AsyncClient

    async def main():
        async with AsyncClient("tcp://127.0.0.1:7100", "alice", "s3cret") as c:
            await c.logon()
            acks = await asyncio.gather(*(c.place("XYZ", "buy", "1", p) for p in ("101", "100.5")))
            async for report in c.reports(timeout=1.0):  # in rseq order, answers included
                print(report)

    asyncio.run(main())

All protocol logic lives in the sans-IO ``Session`` of client.py; this
module only moves frames. One reader task receives every frame, feeds the
session, resolves the futures of waiting calls (by cl_ord_id or req_id) and
puts the reports released in rseq order on an ``asyncio.Queue``; one timer
task sends heartbeats, notices a silent gateway and retries recovery. Calls
may run concurrently (pipelining): each waits for its own answer.

Waits use ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11
``wait_for`` swallows a cancellation that lands in the same loop turn as
its inner result, which would leave a task running after ``close()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from functools import partial
from typing import Any

import zmq
import zmq.asyncio

from .client import (
    ClientError,
    ExecReport,
    GatewayTimeout,
    Key,
    Keyed,
    LogonRejected,
    QueryRejected,
    Session,
)
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

_END = object()  # queued when the session ends, to wake a reader of the stream


class AsyncClient:
    """An asyncio zex client; one reader and one timer task own the socket's receive side.

        c = AsyncClient("tcp://127.0.0.1:7100", "alice", "s3cret", timeout=2.0, retries=2)
        await c.logon()
        ack = await c.place("XYZ", "buy", "10", "101.50")    # Ack or Reject
        await c.cancel("XYZ", ack.order_id)                  # Cancelled or Reject
        async for report in c.reports():                     # until logout; SessionLost if lost
            ...
        await c.close()                                      # logout, cancel tasks, close socket

    Arguments, timeouts, resends and errors are those of ``Client``.
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
        context: zmq.asyncio.Context | None = None,
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
        self._ctx = context or zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task] = []
        self._futures: dict[Key, asyncio.Future] = {}
        self._queue: asyncio.Queue = asyncio.Queue()
        self._progress = asyncio.Event()  # set after every frame and state change
        self._kick = asyncio.Event()  # wakes the timer when the session's timers change
        self._state = "new"
        self._closed = False

    @property
    def last_rseq(self) -> int | None:
        return self.session.last_rseq

    @property
    def bad_frames(self) -> int:
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

    async def logon(self, timeout: float | None = None) -> LogonAck:
        """Open the session (connecting first if needed); raises LogonRejected or GatewayTimeout."""
        if self._sock is None:
            self._open()
            self._closed = False
        ans = await self._wait(self.session.logon(), timeout)
        if isinstance(ans, Reject):
            raise LogonRejected(ans)
        return ans

    async def logout(self, timeout: float | None = None) -> LoggedOut:
        return await self._wait(self.session.logout(), timeout)

    async def reconnect(self, timeout: float | None = None) -> LogonAck:
        """New socket, logon, recover missed reports, resend unanswered requests (same ids)."""
        await self._shut()
        self.session.reset()
        self._open()
        ack = await self.logon(timeout)
        s = self.session
        await self._until(
            lambda: (s.settled() and not s.unanswered) or s.state != "open",
            self.timeout if timeout is None else timeout,
        )
        return ack

    async def close(self) -> None:
        """Log out if logged on (briefly, best effort), stop the tasks, close the socket."""
        if self._sock is None:
            return
        if self.session.state == "open":
            try:
                await self._wait(self.session.logout(), min(self.timeout, 1.0), retries=0)
            except ClientError:
                pass
        await self._shut()
        self._closed = True
        err = ClientError("the client was closed")
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # retrieved: no "never retrieved" warning if nobody waits
        self._futures.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------- requests

    async def place(
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
        return await self._call(msg, timeout)

    async def cancel(
        self,
        symbol: str,
        order_id: int = 0,
        *,
        orig_cl_ord_id: str = "",
        cl_ord_id: str | None = None,
        timeout: float | None = None,
    ) -> Cancelled | Reject:
        msg = self.session.cancel(
            symbol, order_id, orig_cl_ord_id=orig_cl_ord_id, cl_ord_id=cl_ord_id
        )
        return await self._call(msg, timeout)

    async def replace(
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
        msg = self.session.replace(
            symbol, order_id, qty, price, orig_cl_ord_id=orig_cl_ord_id, cl_ord_id=cl_ord_id
        )
        return await self._call(msg, timeout)

    async def kill_switch(
        self,
        account: str,
        mode: KillMode,
        *,
        cl_ord_id: str | None = None,
        timeout: float | None = None,
    ) -> KillSwitchSet | Reject:
        return await self._call(self.session.kill_switch(account, mode, cl_ord_id), timeout)

    async def orders(self, symbol: str = "", timeout: float | None = None) -> Orders:
        return await self._query(self.session.query("orders", symbol), timeout)

    async def positions(self, timeout: float | None = None) -> Positions:
        return await self._query(self.session.query("positions"), timeout)

    async def book(self, symbol: str, depth: int = 10, timeout: float | None = None) -> Book:
        return await self._query(self.session.query("book", symbol, depth), timeout)

    async def recover(
        self, from_rseq: int | None = None, timeout: float | None = None
    ) -> Recovered:
        """Fetch reports from ``from_rseq`` (default: the next expected) into the stream."""
        s = self.session
        timeout = self.timeout if timeout is None else timeout
        for _ in range(self.retries + 1):
            token = s.recover(time.monotonic(), from_rseq)
            from_rseq = None
            await self._flush()
            await self._until(partial(s.recover_done, token), timeout)
            if s.caught_up(token):
                assert s.recovered is not None
                return s.recovered
            s.check_open()
        raise GatewayTimeout(Recover(from_rseq=(s.last_rseq or 0) + 1), self.retries + 1, timeout)

    # ------------------------------------------------------------- stream

    async def poll(self, timeout: float | None = 0.0) -> list[ExecReport]:
        """The reports now in order, waiting up to ``timeout`` s (None: until some arrive).

        Raises SessionLost once the session is lost and every report before
        the loss has been returned.
        """
        s = self.session
        out = self._drain()
        if not out and s.state not in ("closed", "lost") and timeout != 0:
            try:
                async with asyncio.timeout(timeout):
                    first = await self._queue.get()
            except TimeoutError:
                return out
            if first is not _END:
                out.append(first)
            out += self._drain()
        if not out and s.state == "lost":
            s.check_open()
        return out

    async def reports(self, timeout: float | None = None) -> AsyncIterator[ExecReport]:
        """``async for`` the reports in rseq order; stop after ``timeout`` s with none.

        ``timeout`` None: until logout (or SessionLost when the session is lost).
        """
        q, s = self._queue, self.session
        while True:
            if q.empty():
                if s.state == "closed":
                    return
                if s.state == "lost":
                    s.check_open()
            try:
                async with asyncio.timeout(timeout):
                    item = await q.get()
            except TimeoutError:
                return
            if item is not _END:
                yield item

    # ------------------------------------------------------------ the I/O

    def _open(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        if self.routing_id is not None:
            sock.routing_id = self.routing_id
        sock.connect(self.endpoint)
        self._sock = sock
        self.session.last_rx = self.session.last_tx = time.monotonic()
        self._state = self.session.state
        self._tasks = [
            asyncio.create_task(self._read(sock), name="zex-client-reader"),
            asyncio.create_task(self._timers(), name="zex-client-timers"),
        ]

    async def _shut(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    async def _call(self, msg: Keyed, timeout: float | None) -> Any:
        if self._sock is None:
            raise ClientError(
                "the client is closed" if self._closed else "not connected: call logon() first"
            )
        return await self._wait(self.session.start(msg), timeout)

    async def _query(self, msg: Query, timeout: float | None) -> Any:
        ans = await self._call(msg, timeout)
        if isinstance(ans, Reject):
            raise QueryRejected(ans)
        return ans

    async def _wait(self, key: Key, timeout: float | None, retries: int | None = None) -> Any:
        """Wait for the answer to ``key``, resending on each timeout; raise on loss or timeout."""
        s = self.session
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        fut = asyncio.get_running_loop().create_future()
        self._futures[key] = fut
        try:
            for attempt in range(retries + 1):
                if attempt:
                    s.resend(key)
                await self._flush()
                try:
                    async with asyncio.timeout(timeout):
                        return await asyncio.shield(fut)  # the timeout must not cancel fut
                except TimeoutError:
                    continue
            p = s.pending[key]
            raise GatewayTimeout(p.msg, p.sends, timeout)
        except BaseException:
            s.abandon(key)
            if isinstance(key, tuple) and s.state == "logging_on":
                s.state = "new"
            raise
        finally:
            if self._futures.get(key) is fut:
                del self._futures[key]

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._progress.clear()
            try:
                async with asyncio.timeout(left):
                    await self._progress.wait()
            except TimeoutError:
                pass
        return True

    async def _flush(self) -> None:
        if self._sock is None:
            raise ClientError("the client is closed")
        for frame in self.session.outgoing(time.monotonic()):
            try:
                await self._sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:  # queue full (gateway gone): the resend timers cover it
                pass

    def _drain(self) -> list[ExecReport]:
        q = self._queue
        out = []
        while not q.empty():
            item = q.get_nowait()
            if item is not _END:
                out.append(item)
        return out

    def _dispatch(self) -> None:
        """Hand answers to their waiters and reports to the queue; react to a state change."""
        s = self.session
        if s.answers:
            for key, ans in s.answers.items():
                fut = self._futures.get(key)
                if fut is not None and not fut.done():
                    fut.set_result(ans)
            s.answers.clear()
        put = self._queue.put_nowait
        while s.ready:
            put(s.ready.popleft())
        if s.state != self._state:
            self._state = s.state
            self._kick.set()
            err = s.state_error()
            if err is not None and s.state in ("lost", "closed"):
                for fut in self._futures.values():
                    if not fut.done():
                        fut.set_exception(err)
                put(_END)
        self._progress.set()

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        s = self.session
        while True:
            frames = await sock.recv_multipart()
            if len(frames) == 1:
                s.receive(frames[0], time.monotonic())
            else:  # the spec allows exactly one frame
                s.bad_frames += 1
            self._dispatch()
            await self._flush()

    async def _timers(self) -> None:
        s = self.session
        while True:
            self._kick.clear()  # before tick: a kick from here on is not lost
            wake = s.tick(time.monotonic())
            self._dispatch()
            await self._flush()
            delay = wake - time.monotonic()
            try:
                async with asyncio.timeout(None if delay == float("inf") else max(0.0, delay)):
                    await self._kick.wait()
            except TimeoutError:
                pass
