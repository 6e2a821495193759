"""The client's sans-IO Session: rseq order, recovery, answer matching, resends, timers.

No sockets: frames go in with ``receive(frame, now)``, requests come out of
``outgoing(now)`` and are decoded with the gateway's own decoder.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from zex.protocol.client import (
    HEARTBEAT_LIVENESS,
    IdGen,
    NotLoggedOn,
    Session,
    SessionLost,
)
from zex.protocol.codec import decode_request, encode
from zex.protocol.errors import DecodeFailed
from zex.protocol.messages import (
    Book,
    Cancel,
    Heartbeat,
    LoggedOut,
    Logon,
    LogonAck,
    NewOrder,
    OrderInfo,
    Orders,
    Query,
    Recover,
)
from zex.protocol.reasons import Reason

from .fakes import ack, cancelled, fill, logon_ack, recovered, reject, replaced


def sent(s: Session, now: float = 0.0) -> list:
    return [decode_request(f) for f in s.outgoing(now)]


def recovers(s: Session, now: float = 0.0) -> list[int]:
    return [m.from_rseq for m in sent(s, now) if type(m) is Recover]


def rseqs(s: Session) -> list[int]:
    return [r.rseq for r in s.take_reports()]


def logged_on(next_rseq: int = 1, **kw) -> Session:
    s = Session("alice", "pw", id_prefix="t", **kw)
    s.logon()
    assert [type(m) for m in sent(s)] == [Logon]
    s.receive(encode(logon_ack(next_rseq)), 0.0)
    assert s.answers.pop(("logon",)).next_rseq == next_rseq
    return s


def feed(s: Session, *msgs, now: float = 0.0) -> None:
    for m in msgs:
        s.receive(encode(m), now)


# ------------------------------------------------------------- rseq order


def test_reports_in_order_pass_through():
    s = logged_on()
    feed(s, fill(1), fill(2), fill(3))
    assert rseqs(s) == [1, 2, 3]
    assert s.last_rseq == 3
    assert recovers(s) == []


def test_repeats_are_dropped():
    s = logged_on()
    feed(s, fill(1), fill(2), fill(1), fill(2), fill(3), fill(3))
    assert rseqs(s) == [1, 2, 3]
    assert s.seq.duplicates == 3


def test_a_gap_is_held_and_recovered_in_order():
    s = logged_on()
    feed(s, fill(1), fill(4), fill(3))
    assert rseqs(s) == [1]
    assert recovers(s) == [2]  # one recover for the gap, not one per held report
    feed(s, fill(5))
    assert recovers(s) == []  # still in flight
    feed(s, fill(2), fill(3), fill(4), fill(5), recovered(2, 5, 5))
    assert rseqs(s) == [2, 3, 4, 5]
    assert recovers(s) == []
    assert s.settled()


def test_a_partial_recovered_asks_again_from_where_it_stopped():
    s = logged_on(recover_limit=2)
    feed(s, fill(5))
    assert recovers(s) == [1]
    feed(s, fill(1), fill(2), recovered(1, 2, 5))
    assert rseqs(s) == [1, 2]
    assert recovers(s) == [3]
    feed(s, fill(3), fill(4), recovered(3, 4, 5))
    assert rseqs(s) == [3, 4, 5]
    assert recovers(s) == []


def test_a_gateway_heartbeat_reveals_lost_tail_reports():
    s = logged_on()
    feed(s, fill(1), Heartbeat(next_seq=2))
    assert recovers(s) == []
    feed(s, Heartbeat(next_seq=4))  # reports 2 and 3 exist; this client never saw them
    assert recovers(s) == [2]
    feed(s, fill(2), fill(3), recovered(2, 3, 3))
    assert rseqs(s) == [1, 2, 3]


def test_an_empty_recovered_does_not_loop_and_the_timer_retries():
    s = logged_on()
    feed(s, fill(3))
    assert recovers(s) == [1]
    feed(s, recovered(1, 0, 3))  # the gateway had nothing to send for the gap we need
    assert recovers(s) == []
    s.tick(1.0)
    assert recovers(s, 1.0) == []
    later = HEARTBEAT_LIVENESS * s.hb
    s.last_rx = later  # the gateway is alive
    s.tick(later)
    assert recovers(s, later) == [1]


def test_a_lost_recover_is_sent_again_after_the_timeout():
    s = logged_on()
    feed(s, fill(2))
    assert recovers(s) == [1]
    t = HEARTBEAT_LIVENESS * s.hb
    s.last_rx = t
    s.tick(t)
    assert recovers(s, t) == [1]


def test_rseq_zero_reports_are_delivered_but_not_counted():
    s = logged_on()
    feed(s, fill(1), reject("x-1"), ack("x-2", rseq=0, resent=True), fill(2))
    out = s.take_reports()
    assert [(type(r).__name__, r.rseq) for r in out] == [
        ("Fill", 1),
        ("Reject", 0),
        ("Ack", 0),
        ("Fill", 2),
    ]
    assert s.last_rseq == 2


def test_rseq_zero_passes_a_held_gap():
    s = logged_on()
    feed(s, fill(2), reject("x-1"))
    assert [r.rseq for r in s.take_reports()] == [0]


# ----------------------------------------------------------- logon and rseq


def test_a_fresh_client_starts_at_the_accounts_end():
    s = logged_on(next_rseq=10)
    assert s.last_rseq == 9
    assert recovers(s) == []
    feed(s, fill(9), fill(10))
    assert rseqs(s) == [10]


def test_recover_all_asks_for_the_whole_day():
    s = logged_on(next_rseq=4, recover_all=True)
    assert s.last_rseq == 0
    assert recovers(s) == [1]


def test_a_resumed_client_recovers_what_it_missed():
    s = logged_on(next_rseq=9, last_rseq=5)
    assert recovers(s) == [6]
    feed(s, fill(6), fill(7), fill(8), recovered(6, 8, 8))
    assert rseqs(s) == [6, 7, 8]


def test_a_resumed_client_on_a_new_day_warns_and_follows_the_gateway():
    s = Session("alice", id_prefix="t", last_rseq=50)
    s.logon()
    with pytest.warns(UserWarning, match="next_rseq 3 is at or below the last rseq 50"):
        feed(s, logon_ack(next_rseq=3))
    assert s.last_rseq == 2
    feed(s, fill(3))
    assert rseqs(s) == [3]


def test_reports_before_the_logon_ack_are_applied_after_it():
    s = Session("alice", id_prefix="t")
    s.logon()
    sent(s)
    feed(s, fill(4), fill(5))  # routed to the session before its logon_ack
    assert s.take_reports() == []
    feed(s, logon_ack(next_rseq=5))
    assert rseqs(s) == [5]
    assert s.last_rseq == 5


def test_a_rejected_logon_is_the_logons_answer():
    s = Session("alice", "wrong", id_prefix="t")
    s.logon()
    feed(s, reject("", reason=Reason.AUTH_FAILED, ref_type="logon"))
    assert s.answers[("logon",)].reason == Reason.AUTH_FAILED
    assert s.state == "new"
    assert s.take_reports() == []


# ------------------------------------------------------------ answers


def test_an_ack_and_a_reject_answer_their_cl_ord_id():
    s = logged_on()
    k1 = s.start(s.new_order("XYZ", "buy", "5", "10"))
    k2 = s.start(s.new_order("XYZ", "buy", "5", "10.001"))
    feed(s, reject(k2, reason=Reason.PRICE_OFF_TICK), ack(k1, rseq=1))
    assert type(s.answers.pop(k1)).__name__ == "Ack"
    assert s.answers.pop(k2).reason == Reason.PRICE_OFF_TICK
    assert s.unanswered == []
    # answers are in the stream too, in order
    assert [type(r).__name__ for r in s.take_reports()] == ["Reject", "Ack"]


def test_a_fill_does_not_answer_a_new_order():
    s = logged_on()
    k = s.start(s.new_order("XYZ", "buy", "5", "10"))
    feed(s, fill(1, cl=k))  # the ack was lost; a fill of the order came first
    assert k not in s.answers
    assert [m.cl_ord_id for m in s.unanswered] == [k]


def test_cancelled_and_replaced_answer_the_request_they_name():
    s = logged_on()
    c = s.start(s.cancel("XYZ", 7))
    r = s.start(s.replace("XYZ", 0, "5", "11", orig_cl_ord_id="o-9"))
    feed(s, replaced(9, r, rseq=1, orig="o-9"), cancelled(7, c, rseq=2, orig="o-7"))
    assert s.answers.pop(c).orig_cl_ord_id == "o-7"
    assert s.answers.pop(r).orig_cl_ord_id == "o-9"
    assert s.unanswered == []


def test_a_report_naming_a_pending_id_answers_only_a_request_of_its_kind():
    s = logged_on()
    k = s.start(s.new_order("XYZ", "buy", "5", "10"))
    # The ack was lost; the order was then cancelled by stp and filled: these name the order
    # by its own cl_ord_id, which is the pending new_order's key, and answer nothing.
    feed(s, cancelled(3, k, rseq=2, reason="stp", orig=k), fill(3, cl=k))
    assert k not in s.answers
    assert [m.cl_ord_id for m in s.unanswered] == [k]
    feed(s, ack(k, rseq=0, resent=True))
    assert s.answers.pop(k).resent


def test_a_resent_cancelled_answers_the_resent_cancel():
    s = logged_on()
    c = s.start(s.cancel("XYZ", 7))
    s.resend(c)
    feed(s, cancelled(7, c, rseq=0, orig="o-7", resent=True))
    assert s.answers.pop(c).resent


def test_query_answers_and_rejects_match_the_req_id():
    s = logged_on()
    q1 = s.start(s.query("orders"))
    q2 = s.start(s.query("orders", "NOPE"))
    info = OrderInfo(
        order_id=1,
        cl_ord_id="o",
        symbol="XYZ",
        side="buy",
        price="1",
        qty="1",
        leaves="1",
        filled="0",
    )
    feed(
        s,
        Orders(req_id=q1, orders=[info], seq=3),
        reject(q2, reason=Reason.UNKNOWN_SYMBOL, ref_type="query"),
    )
    assert s.answers.pop(q1).orders == [info]
    assert s.answers.pop(q2).reason == Reason.UNKNOWN_SYMBOL
    q3 = s.start(s.query("book", "XYZ", depth=3))
    assert [m.depth for m in sent(s) if type(m) is Query] == [10, 10, 3]
    feed(s, Book(req_id=q3, symbol="XYZ", bids=[], asks=[], seq=3))
    assert s.answers.pop(q3).symbol == "XYZ"
    # a query's reject is in the stream; the answers to queries are not
    assert s.take_reports()[0].cl_ord_id == q2
    assert s.take_reports() == []


def test_an_abandoned_request_is_answered_into_the_stream_only():
    s = logged_on()
    k = s.start(s.new_order("XYZ", "buy", "5", "10"))
    s.abandon(k)
    assert [m.cl_ord_id for m in s.unanswered] == [k]  # still pending for a reconnect
    feed(s, ack(k, rseq=1))
    assert k not in s.answers
    assert s.unanswered == []
    assert rseqs(s) == [1]


# ------------------------------------------------------- resends, sessions


def test_a_resend_is_the_same_request_with_the_same_cl_ord_id():
    s = logged_on()
    k = s.start(s.new_order("XYZ", "sell", "2", "102"))
    s.resend(k)
    s.resend(k)
    frames = s.outgoing(0.0)
    assert len(frames) == 3 and len(set(frames)) == 1
    assert decode_request(frames[0]).cl_ord_id == k
    assert s.pending[k].sends == 3


def test_not_logged_on_reject_loses_the_session_and_reconnect_resends_same_ids():
    s = logged_on()
    k = s.start(s.new_order("XYZ", "buy", "1", "10"))
    c = s.start(s.cancel("XYZ", 3))
    sent(s)
    feed(s, reject(k, reason=Reason.NOT_LOGGED_ON))
    assert s.state == "lost" and k not in s.answers
    with pytest.raises(SessionLost, match="reconnect"):
        s.start(s.new_order("XYZ", "buy", "1", "10"))
    s.reset()
    s.logon()
    feed(s, logon_ack(next_rseq=1))
    again = [m for m in sent(s) if type(m) in (NewOrder, Cancel)]
    assert [m.cl_ord_id for m in again] == [k, c]


def test_logged_out_by_the_gateway_is_a_lost_session():
    s = logged_on()
    feed(s, LoggedOut(reason="heartbeat", text="silent"))
    assert s.state == "lost"
    with pytest.raises(SessionLost, match=r"logged this session out \(heartbeat\): silent"):
        s.check_open()


def test_logout_closes():
    s = logged_on()
    k = s.logout()
    feed(s, LoggedOut(reason="logout"))
    assert s.answers.pop(k).reason == "logout"
    assert s.state == "closed"
    with pytest.raises(NotLoggedOn, match="logged out"):
        s.start(s.new_order("XYZ", "buy", "1", "10"))


def test_requests_before_logon_are_refused_here():
    s = Session("alice", id_prefix="t")
    with pytest.raises(NotLoggedOn, match="call logon"):
        s.start(s.new_order("XYZ", "buy", "1", "10"))
    assert s.outgoing(0.0) == []


def test_undecodable_frames_are_counted_and_skipped():
    s = logged_on()
    for bad in (
        b"\xc1",
        b"\x81\xa4type\xa3ack",
        encode(fill(1))[:-3],
        encode({"type": "fill", "v": 2}),
        encode({"type": "nope", "v": 1}),
    ):
        s.receive(bad, 0.0)
    assert s.bad_frames == 5
    feed(s, fill(1))
    assert rseqs(s) == [1]


# ---------------------------------------------------------------- timers


def test_heartbeat_after_one_quiet_interval_and_lost_after_three_silent():
    s = logged_on()
    feed(s, fill(1))
    s.last_tx = 0.0
    assert s.tick(0.5) == pytest.approx(1.0)
    assert sent(s, 0.5) == []
    s.tick(1.0)
    assert sent(s, 1.0) == [Heartbeat(next_seq=2)]
    s.tick(2.9)
    assert s.state == "open"
    s.tick(3.0)
    assert s.state == "lost"
    assert "nothing from the gateway for 3 heartbeat intervals" in s.lost_why


def test_anything_received_keeps_the_session_alive():
    s = logged_on()
    for t in (2.0, 4.0, 6.0):
        feed(s, Heartbeat(next_seq=1), now=t)
        s.tick(t + 2.5)
        assert s.state == "open"


def test_the_heartbeat_interval_is_the_gateways():
    s = Session("alice", id_prefix="t", heartbeat_ms=5000)
    s.logon()
    feed(s, logon_ack(heartbeat_ms=200))
    assert s.hb == 0.2


# --------------------------------------------------------- explicit recover


def test_recover_from_an_applied_rseq_rewinds_the_stream():
    s = logged_on()
    feed(s, fill(1), fill(2), fill(3))
    rseqs(s)
    token = s.recover(0.0, 2)
    assert recovers(s) == [2]
    assert not s.caught_up(token)
    feed(s, fill(2), fill(3), recovered(2, 3, 3))
    assert rseqs(s) == [2, 3]
    assert s.caught_up(token)


def test_recover_refuses_to_skip_reports():
    s = logged_on()
    with pytest.raises(ValueError, match=r"from_rseq must be in 1..1"):
        s.recover(0.0, 5)


# ------------------------------------------------------ ids and validation


def test_ids_are_unique_short_and_differ_between_runs():
    a, b = IdGen(), IdGen()
    assert a.prefix != b.prefix
    ids = [a() for _ in range(1000)] + [b() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert all(len(i) <= 36 and re.fullmatch(r"[0-9a-z]+-[0-9]+", i) for i in ids)
    a.count = 10**19  # even an absurd counter fits the 36 characters
    assert len(a()) <= 36


def test_queries_and_orders_share_one_id_space():
    s = logged_on()
    ids = [
        s.query("orders").req_id,
        s.new_order("XYZ", "buy", "1", "1").cl_ord_id,
        s.kill_switch("bob", "block").cl_ord_id,
        s.cancel("XYZ", 1).cl_ord_id,
    ]
    assert len(set(ids)) == 4


def test_bad_id_prefix_is_refused():
    with pytest.raises(ValueError, match="id_prefix must be"):
        IdGen("has space")


def test_order_defaults_limit_gtc_or_market_ioc():
    s = logged_on()
    lim = s.new_order("XYZ", "buy", 5, Decimal("10.50"))
    assert (lim.ord_type, lim.tif, lim.price, lim.qty) == ("limit", "gtc", "10.50", "5")
    mkt = s.new_order("XYZ", "sell", "5")
    assert (mkt.ord_type, mkt.tif, mkt.price) == ("market", "ioc", None)


def test_floats_are_refused_by_name():
    s = logged_on()
    with pytest.raises(TypeError, match=r"price must be a decimal string .* was float 10.1"):
        s.new_order("XYZ", "buy", "1", 10.1)


def test_a_bad_field_fails_fast_naming_it():
    s = logged_on()
    with pytest.raises(DecodeFailed, match="side") as err:
        s.start(s.new_order("XYZ", "long", "1", "10"))
    assert err.value.field == "side"
    with pytest.raises(DecodeFailed, match="cl_ord_id"):
        s.start(s.new_order("XYZ", "buy", "1", "10", cl_ord_id="x" * 37))
    assert s.outgoing(0.0) == [] and s.pending == {}


def test_cancel_and_replace_must_name_the_order():
    s = logged_on()
    with pytest.raises(ValueError, match="order_id or orig_cl_ord_id"):
        s.cancel("XYZ")
    with pytest.raises(ValueError, match="order_id or orig_cl_ord_id"):
        s.replace("XYZ", 0, "1", "1")


def test_the_session_keeps_the_logon_acks_account_options_and_limits():
    """SPEC 4.2: a client reads its limits from logon_ack instead of probing for rejects."""
    s = Session("alice", "pw")
    s.logon()
    s.outgoing(0.0)
    ack = LogonAck(
        account="alice",
        session_id="s-1",
        heartbeat_ms=1000,
        operator=True,
        rate="20",
        burst="10",
        max_order_qty="5",
        collar_pct="7.5",
    )
    s.receive(encode(ack), 0.0)
    assert s.state == "open" and s.logon_ack == ack
    assert (s.logon_ack.operator, s.logon_ack.cancel_on_disconnect, s.logon_ack.max_notional) == (
        True,
        False,
        None,
    )
