"""Bad input, as a hostile client sends it: each gets a reject with its reason, nothing reaches the book,
and a well-behaved client on the same gateway keeps trading meanwhile."""

from __future__ import annotations

import msgpack
import pytest

from zex.protocol import messages as m
from zex.protocol.reasons import Reason

from .test_order_entry import connect
from .wire import Wire


def order(**over) -> dict:
    base = {
        "type": "new_order",
        "v": 1,
        "cl_ord_id": "h-1",
        "symbol": "XYZ",
        "side": "buy",
        "qty": "1",
        "price": "10.00",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


BAD = [
    ("garbage bytes", b"\xc1\xff\x00garbage", Reason.MALFORMED),
    ("not a map", msgpack.packb([1, 2, 3]), Reason.MALFORMED),
    ("truncated", msgpack.packb(order())[:-4], Reason.MALFORMED),
    (
        "oversized",
        msgpack.packb(order(cl_ord_id="h-big", symbol="X" * 5000)),
        Reason.FRAME_TOO_LARGE,
    ),
    ("unknown type", msgpack.packb({"type": "buy_everything", "v": 1}), Reason.UNKNOWN_TYPE),
    ("future version", msgpack.packb(order(v=2)), Reason.UNSUPPORTED_VERSION),
    ("wrong type", msgpack.packb(order(qty=5)), Reason.WRONG_TYPE),
    ("missing field", msgpack.packb(order(side=...)), Reason.MISSING_FIELD),
    ("limit without price", msgpack.packb(order(price=...)), Reason.MISSING_FIELD),
    (
        "market with price",
        msgpack.packb(order(ord_type="market", tif="ioc")),
        Reason.INVALID_COMBINATION,
    ),
    ("unknown symbol", msgpack.packb(order(symbol="NOPE")), Reason.UNKNOWN_SYMBOL),
    ("negative price", msgpack.packb(order(price="-10")), Reason.BAD_PRICE),
    ("off-tick price", msgpack.packb(order(price="10.001")), Reason.PRICE_OFF_TICK),
    ("price out of band", msgpack.packb(order(price="5000")), Reason.PRICE_OUT_OF_BAND),
    ("zero qty", msgpack.packb(order(qty="0")), Reason.BAD_QTY),
    ("fractional lot", msgpack.packb(order(qty="1.5")), Reason.QTY_OFF_LOT),
    ("bad side", msgpack.packb(order(side="both")), Reason.INVALID_VALUE),
    (
        "cancel naming nothing",
        msgpack.packb({"type": "cancel", "v": 1, "cl_ord_id": "h-c", "symbol": "XYZ"}),
        Reason.MISSING_FIELD,
    ),
    (
        "kill switch by a non-operator",
        msgpack.packb(
            {"type": "kill_switch", "v": 1, "cl_ord_id": "h-k", "account": "bob", "mode": "block"}
        ),
        Reason.NOT_AUTHORISED,
    ),
]


def test_requests_before_logon_are_refused(exchange, ctx):
    w = Wire(ctx, exchange.endpoints["gw1"])
    w.send(m.NewOrder(cl_ord_id="x-1", symbol="XYZ", side="buy", qty="1", price="10"))
    r = w.answer("x-1")
    assert isinstance(r, m.Reject) and r.reason == Reason.NOT_LOGGED_ON and r.seq == 0
    w.send(m.Logon(account="bob", credential="wrong"))
    r = w.expect(lambda r: isinstance(r, m.Reject))
    assert r.reason == Reason.AUTH_FAILED and "credential" in r.text
    w.send(m.Logon(account="nobody", credential="bob-pw"))
    assert w.expect(lambda r: isinstance(r, m.Reject)).reason == Reason.AUTH_FAILED


def test_every_kind_of_bad_input_gets_its_reason_and_never_reaches_the_book(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    alice = connect(ctx, ep, "alice", "alice-pw")
    bob = connect(ctx, ep, "bob", "bob-pw")
    mallory = connect(ctx, ep, "bob", "bob-pw")  # a second session of bob turns hostile
    alice.order("a-0", "sell", "1000", "10.00")
    for i, (what, frame, reason) in enumerate(BAD):
        mallory.send(frame)
        r = mallory.expect(
            lambda r: isinstance(r, m.Reject) and r.seq == 0, what=f"reject for {what}"
        )
        assert r.reason == reason, (what, r)
        assert r.rseq == 0 and r.text, (what, r)
        # the honest client trades in between, unaffected
        ack = bob.order(f"b-{i}", "buy", "1", "10.00")
        assert isinstance(ack, m.Ack), (what, ack)
    # several frames in one message: refused as malformed
    mallory.send([msgpack.packb(order(cl_ord_id="h-mf")), b"extra"])
    assert mallory.expect(lambda r: isinstance(r, m.Reject)).reason == Reason.MALFORMED
    # nothing of it reached the book: bob has exactly his honest orders' fills
    pos = bob.query("positions")
    assert [(p.symbol, p.qty) for p in pos.positions] == [("XYZ", str(len(BAD)))]
    assert bob.query("orders", "q2").orders == []
    book = alice.query("orders").orders
    assert [o.leaves for o in book] == [str(1000 - len(BAD))]


def test_a_flood_past_the_rate_limit_is_refused_per_message_and_every_request_is_answered(
    exchange, ctx
):
    ep = exchange.endpoints["gw1"]
    flood = connect(ctx, ep, "mallory", "mallory-pw")  # rate 20/s, burst 10
    bob = connect(ctx, ep, "bob", "bob-pw")
    n = 200
    for i in range(n):
        flood.send(m.NewOrder(cl_ord_id=f"f-{i}", symbol="XYZ", side="buy", qty="1", price="9.00"))
    answers = [flood.answer(f"f-{i}") for i in range(n)]
    limited = [a for a in answers if isinstance(a, m.Reject) and a.reason == Reason.RATE_LIMITED]
    acked = [a for a in answers if isinstance(a, m.Ack)]
    assert len(limited) + len(acked) == n
    assert 10 <= len(acked) < 60, len(acked)  # the burst, plus what 20/s refilled meanwhile
    assert "rate limit 20/s" in limited[0].text
    assert isinstance(bob.order("b-1", "sell", "1", "11.00"), m.Ack)  # others unaffected
    # the limit is per session: a fresh session of the same account sees exactly the admitted orders
    assert len(connect(ctx, ep, "mallory", "mallory-pw").query("orders").orders) == len(acked)


@pytest.mark.parametrize("size", [64 * 1024, 2 * 1024 * 1024])
def test_huge_frames_do_not_hurt_the_gateway(exchange, ctx, size):
    """Up to 1 MiB a frame is refused with FRAME_TOO_LARGE; beyond, ZeroMQ drops the connection."""
    ep = exchange.endpoints["gw1"]
    w = Wire(ctx, ep)
    w.send(b"\x00" * size)
    if size <= 1 << 20:
        assert w.expect(lambda r: isinstance(r, m.Reject)).reason == Reason.FRAME_TOO_LARGE
    bob = connect(ctx, ep, "bob", "bob-pw")
    assert isinstance(bob.order("b-1", "buy", "1", "9.00"), m.Ack)
