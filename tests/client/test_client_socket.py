"""The synchronous Client over a real socket, against a scripted gateway (fakes.py).

Timeouts here are the client's own per-attempt timeouts (the behaviour under
test), never sleeps; every wait has a deadline and every socket is closed.
"""

from __future__ import annotations

import time

import pytest

from zex.protocol.client import Client, GatewayTimeout, LogonRejected, SessionLost
from zex.protocol.codec import encode
from zex.protocol.messages import (
    Ack,
    Heartbeat,
    LoggedOut,
    Logon,
    NewOrder,
    Positions,
    Query,
    Recover,
)
from zex.protocol.reasons import Reason

from .fakes import ScriptedGateway, ack, fill, logon_ack, recovered, reject, session_step

FAST = 0.3  # s per attempt where a timeout is the point of the test


def test_a_timeout_resends_the_same_cl_ord_id_and_a_resent_ack_completes_the_call(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            if len(gw.requests(NewOrder)) == 1:
                return []  # the first answer is lost
            return [ack(msg.cl_ord_id, rseq=0, resent=True)]
        return []

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", "pw", context=ctx, timeout=FAST, retries=2) as c:
            assert c.logon_ack is None
            # its options and limits
            assert c.logon() == c.logon_ack and c.logon_ack.account == "alice"
            answer = c.place("XYZ", "buy", "5", "10")
            assert isinstance(answer, Ack) and answer.resent
            assert c.unanswered == []
            assert c.poll(0) == [answer]  # the answer is in the stream too (rseq 0)
        sends = [(ident, raw) for ident, msg, raw in gw.seen if type(msg) is NewOrder]
        assert len(sends) == 2
        assert sends[0] == sends[1]  # same connection, byte for byte the same request
        assert gw.requests(NewOrder)[0].cl_ord_id == answer.cl_ord_id


def test_no_answer_after_every_resend_raises_a_clear_gateway_timeout(ctx):
    def script(gw, ident, msg):
        return session_step(msg) or []

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", context=ctx, timeout=FAST, retries=1) as c:
            c.logon()
            with pytest.raises(GatewayTimeout) as err:
                c.place("XYZ", "buy", "5", "10", cl_ord_id="my-1")
            assert isinstance(err.value, TimeoutError)
            assert "new_order cl_ord_id='my-1' after 2 send(s)" in str(err.value)
            assert "never under a new id" in str(err.value)
            assert [m.cl_ord_id for m in c.unanswered] == ["my-1"]
        assert [m.cl_ord_id for m in gw.wait_requests(NewOrder, 2)] == ["my-1", "my-1"]


def test_unsolicited_reports_and_a_gap_reach_the_stream_in_rseq_order(ctx):
    reports = {1: fill(1, order_id=9), 2: fill(2, order_id=9)}

    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            reports[3] = ack(msg.cl_ord_id, rseq=3, order_id=10)
            # report 1 (a maker fill) is lost on the way; 2 and the answer arrive
            return [reports[2], reports[3]]
        if isinstance(msg, Recover):
            last = max(reports)
            return [reports[r] for r in range(msg.from_rseq, last + 1)] + [
                recovered(msg.from_rseq, last, last)
            ]
        return []

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", context=ctx, timeout=5.0) as c:
            c.logon()
            answer = c.place("XYZ", "buy", "5", "10")
            assert isinstance(answer, Ack) and answer.rseq == 3  # answered at once, gap or not
            got: list = []
            deadline = time.monotonic() + 5
            while len(got) < 3 and time.monotonic() < deadline:
                got += c.poll(0.5)
            assert [(type(r).__name__, r.rseq) for r in got] == [
                ("Fill", 1),
                ("Fill", 2),
                ("Ack", 3),
            ]
            assert c.last_rseq == 3
        assert [m.from_rseq for m in gw.requests(Recover)] == [1]


def test_a_lost_session_raises_and_reconnect_resends_unanswered_requests(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            if len(gw.requests(NewOrder)) == 1:
                return [LoggedOut(reason="heartbeat", text="gone quiet")]
            return [ack(msg.cl_ord_id, rseq=1)]
        return []

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", context=ctx, timeout=5.0) as c:
            c.logon()
            with pytest.raises(SessionLost, match=r"\(heartbeat\): gone quiet; call reconnect"):
                c.place("XYZ", "buy", "5", "10", cl_ord_id="k-1")
            with pytest.raises(SessionLost):
                c.orders()
            c.reconnect()
            assert c.unanswered == []
            assert [(r.cl_ord_id, r.rseq) for r in c.poll(0)] == [("k-1", 1)]
        firsts = [ident for ident, msg, _ in gw.seen if type(msg) is NewOrder]
        assert [m.cl_ord_id for m in gw.requests(NewOrder)] == ["k-1", "k-1"]
        assert firsts[0] != firsts[1]  # the resend went out on the new connection


def test_heartbeats_are_sent_while_polling_and_a_silent_gateway_loses_the_session(ctx):
    def script(gw, ident, msg):
        return [logon_ack(4, msg.heartbeat_ms)] if isinstance(msg, Logon) else []  # then silence

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", context=ctx, heartbeat_ms=100, timeout=5.0) as c:
            c.logon()
            t0 = time.monotonic()
            with pytest.raises(SessionLost, match="nothing from the gateway for 3 heartbeat"):
                while time.monotonic() - t0 < 5:
                    c.poll(0.5)
            assert time.monotonic() - t0 < 2
        beats = gw.wait_requests(Heartbeat, 1)  # one a quiet interval, before the loss
        assert all(b.next_seq == 4 for b in beats)


def test_garbage_from_the_gateway_is_counted_not_raised(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, NewOrder):
            return [
                b"\xc1garbage",
                [b"two", b"frames"],
                encode({"type": "ack", "v": 9}),
                ack(msg.cl_ord_id, rseq=1),
            ]
        return []

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", context=ctx, timeout=5.0) as c:
            c.logon()
            assert isinstance(c.place("XYZ", "buy", "1", "10"), Ack)
            assert c.bad_frames == 3


def test_a_refused_logon_raises_logon_rejected(ctx):
    def script(gw, ident, msg):
        return [reject("", reason=Reason.AUTH_FAILED, ref_type="logon")]

    with ScriptedGateway(ctx, script) as gw:
        with Client(gw.endpoint, "alice", "wrong", context=ctx, timeout=5.0) as c:
            with pytest.raises(LogonRejected, match="AUTH_FAILED") as err:
                c.logon()
            assert err.value.reject.reason == Reason.AUTH_FAILED


def test_queries_and_logout(ctx):
    def script(gw, ident, msg):
        if (out := session_step(msg)) is not None:
            return out
        if isinstance(msg, Query):
            return [
                Positions(
                    req_id=msg.req_id,
                    cash="0",
                    positions=[],
                    open_orders=0,
                    kill_switch="off",
                    seq=7,
                )
            ]
        return []

    with ScriptedGateway(ctx, script) as gw:
        c = Client(gw.endpoint, "alice", context=ctx, timeout=5.0)
        try:
            c.logon()
            assert c.positions().seq == 7
            assert c.logout().reason == "logout"
            assert list(c.reports()) == []  # logged out: the stream ends
        finally:
            c.close()
