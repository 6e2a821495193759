"""The AsyncClient over a real socket, against a scripted gateway (fakes.py).

Each test runs one event loop with ``asyncio.run`` under an overall
deadline; the client gets its own ``zmq.asyncio.Context``, destroyed at the
end, and the gateway thread its own (the ``ctx`` fixture).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq.asyncio

from zex.protocol.aclient import AsyncClient
from zex.protocol.client import ClientError, GatewayTimeout, SessionLost
from zex.protocol.messages import (
    Ack,
    Book,
    Cancel,
    Heartbeat,
    LoggedOut,
    Logon,
    NewOrder,
    Query,
)

from .fakes import ScriptedGateway, ack, cancelled, fill, logon_ack, reject, session_step

FAST = 0.3  # s per attempt where a timeout is the point of the test


def run(main, gw: ScriptedGateway, deadline: float = 20.0, **kw):
    """Run ``main(client)`` on a fresh loop with a client connected to ``gw``; always clean up."""

    async def outer():
        actx = zmq.asyncio.Context()
        client = AsyncClient(gw.endpoint, "alice", "pw", context=actx, **kw)
        try:
            return await asyncio.wait_for(main(client), deadline)
        finally:
            await client.close()
            assert all(t.done() for t in client._tasks)
            actx.destroy(linger=0)

    return asyncio.run(outer())


async def until(predicate, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def test_a_timeout_resends_the_same_cl_ord_id_and_a_resent_ack_completes_the_call(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            if len(gw.requests(NewOrder)) == 1:
                return []
            return [ack(msg.cl_ord_id, rseq=0, resent=True)]
        return []

    async def main(c):
        assert await c.logon() == c.logon_ack and c.logon_ack.account == "alice"
        answer = await c.place("XYZ", "buy", "5", "10")
        assert isinstance(answer, Ack) and answer.resent
        assert await c.poll(0) == [answer]
        return answer

    with ScriptedGateway(ctx, script) as gw:
        answer = run(main, gw, timeout=FAST, retries=2)
        raws = [raw for _, msg, raw in gw.seen if type(msg) is NewOrder]
        assert len(raws) == 2 and raws[0] == raws[1]
        assert gw.requests(NewOrder)[0].cl_ord_id == answer.cl_ord_id


def test_no_answer_raises_gateway_timeout_and_keeps_the_request_pending(ctx):
    def script(gw, ident, msg):
        return session_step(msg) or []

    async def main(c):
        await c.logon()
        with pytest.raises(GatewayTimeout, match="cl_ord_id='a-1' after 2 send"):
            await c.place("XYZ", "buy", "5", "10", cl_ord_id="a-1")
        assert [m.cl_ord_id for m in c.unanswered] == ["a-1"]

    with ScriptedGateway(ctx, script) as gw:
        run(main, gw, timeout=FAST, retries=1)
        assert [m.cl_ord_id for m in gw.wait_requests(NewOrder, 2)] == ["a-1", "a-1"]


def test_concurrent_requests_get_their_own_answers_and_the_stream_is_in_rseq_order(ctx):
    held: list = []

    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            held.append(msg)
            if len(held) < 3:
                return []
            # answer all three at once, last first, with rseqs in the order they were sequenced
            a, b, c = held
            return [
                ack(c.cl_ord_id, rseq=3, order_id=3),
                ack(b.cl_ord_id, rseq=2, order_id=2),
                ack(a.cl_ord_id, rseq=1, order_id=1),
            ]
        if isinstance(msg, Cancel):
            return [reject(msg.cl_ord_id, reason=500, ref_type="cancel", seq=9, rseq=4)]
        if isinstance(msg, Query):
            return [Book(req_id=msg.req_id, symbol=msg.symbol, bids=[], asks=[], seq=9)]
        return []

    async def main(c):
        await c.logon()
        answers = await asyncio.gather(*(c.place("XYZ", "buy", "1", p) for p in ("10", "11", "12")))
        assert [a.order_id for a in answers] == [1, 2, 3]
        assert [a.cl_ord_id for a in answers] == [m.cl_ord_id for m in held]
        r, book = await asyncio.gather(c.cancel("XYZ", 77), c.book("XYZ", 5))
        assert r.reason == 500 and book.symbol == "XYZ"
        got: list = []
        async for report in c.reports(timeout=0.5):
            got.append(report.rseq)
        assert got == [1, 2, 3, 4]
        assert c.last_rseq == 4

    with ScriptedGateway(ctx, script) as gw:
        run(main, gw, timeout=5.0)


def test_unsolicited_reports_reach_async_for_between_answers(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            return [ack(msg.cl_ord_id, rseq=1, order_id=5)]
        return []

    async def main(c):
        await c.logon()
        await c.place("XYZ", "sell", "2", "10", cl_ord_id="o-5")
        ident = gw.seen[0][0]
        gw.send(
            ident,
            fill(3, order_id=5, cl="o-5"),
            fill(2, order_id=5, cl="o-5"),
            cancelled(5, "o-5", rseq=4, reason="kill", orig="o-5"),
        )
        got = []
        async for report in c.reports():
            got.append((type(report).__name__, report.rseq))
            if len(got) == 4:
                break
        assert got == [("Ack", 1), ("Fill", 2), ("Fill", 3), ("Cancelled", 4)]

    with ScriptedGateway(ctx, script) as gw:
        run(main, gw, timeout=5.0)


def test_a_lost_session_fails_waiters_and_reconnect_resends(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            if len(gw.requests(NewOrder)) == 1:
                return [LoggedOut(reason="heartbeat")]
            return [ack(msg.cl_ord_id, rseq=1)]
        return []

    async def main(c):
        await c.logon()
        with pytest.raises(SessionLost, match="reconnect"):
            await c.place("XYZ", "buy", "5", "10", cl_ord_id="r-1")
        with pytest.raises(SessionLost):
            await c.poll(0)
        await c.reconnect()
        assert c.unanswered == []
        assert [(r.cl_ord_id, r.rseq) for r in await c.poll(1.0)] == [("r-1", 1)]

    with ScriptedGateway(ctx, script) as gw:
        run(main, gw, timeout=5.0)
        idents = [ident for ident, msg, _ in gw.seen if type(msg) is NewOrder]
        assert len(idents) == 2 and idents[0] != idents[1]


def test_the_timer_task_heartbeats_an_idle_client_and_notices_a_silent_gateway(ctx):
    def script(gw, ident, msg):
        return [logon_ack(2, msg.heartbeat_ms)] if isinstance(msg, Logon) else []

    async def main(c):
        await c.logon()
        t0 = time.monotonic()
        with pytest.raises(SessionLost, match="nothing from the gateway for 3 heartbeat"):
            async for _ in c.reports():
                pass
        assert time.monotonic() - t0 < 2
        with pytest.raises(SessionLost):
            await c.orders()

    with ScriptedGateway(ctx, script) as gw:
        run(main, gw, heartbeat_ms=100, timeout=5.0)
        beats = gw.wait_requests(Heartbeat, 1)
        assert all(b.next_seq == 2 for b in beats)


def test_close_fails_pending_calls_and_stops_the_tasks(ctx):
    def script(gw, ident, msg):
        return session_step(msg) or []

    async def main(c):
        await c.logon()
        call = asyncio.create_task(c.place("XYZ", "buy", "1", "10"))
        await until(lambda: gw.requests(NewOrder), "the order at the gateway")
        await c.close()  # logs out: a call still waiting ends with the session
        with pytest.raises(ClientError, match="logged out"):
            await call
        assert len(c.unanswered) == 1  # still pending: a reconnect would resend it
        assert c._sock is None and all(t.done() for t in c._tasks)
        with pytest.raises(ClientError, match="closed"):
            await c.positions()

    with ScriptedGateway(ctx, script) as gw:
        run(main, gw, timeout=5.0)
