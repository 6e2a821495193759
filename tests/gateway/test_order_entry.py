"""Order entry over real sockets between real processes: clients -> gateway -> matcher."""

from __future__ import annotations

from zex.protocol import messages as m
from zex.protocol.reasons import Reason

from .wire import Wire


def connect(ctx, ep, account, credential, **kw) -> Wire:
    w = Wire(ctx, ep)
    w.logon(account, credential, **kw)
    return w


def test_two_accounts_trade_and_the_maker_gets_its_unsolicited_fill(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    alice = connect(ctx, ep, "alice", "alice-pw")
    bob = connect(ctx, ep, "bob", "bob-pw")
    ack = alice.order("a-1", "sell", "5", "10.00")
    assert isinstance(ack, m.Ack) and ack.rseq == 1 and ack.price == "10" and ack.seq > 0
    back = bob.order("b-1", "buy", "3", "10.05")
    assert isinstance(back, m.Ack)
    taker = bob.expect(lambda r: isinstance(r, m.Fill))
    assert (taker.liquidity, taker.price, taker.qty, taker.leaves) == ("taker", "10", "3", "0")
    maker = alice.expect(lambda r: isinstance(r, m.Fill))  # nobody asked: it is pushed to alice
    assert (maker.liquidity, maker.order_id, maker.qty, maker.leaves) == (
        "maker",
        ack.order_id,
        "3",
        "2",
    )
    assert maker.trade_id == taker.trade_id and maker.seq == taker.seq == back.seq
    assert maker.rseq == 2 and taker.rseq == 2  # each account's own report sequence
    # T+0 settlement: positions and cash moved at once, for both sides
    pa, pb = alice.query("positions"), bob.query("positions")
    assert [(p.symbol, p.qty) for p in pa.positions] == [("XYZ", "-3")] and pa.cash == "30"
    assert [(p.symbol, p.qty) for p in pb.positions] == [("XYZ", "3")] and pb.cash == "-30"
    orders = alice.query("orders").orders
    assert [(o.order_id, o.leaves, o.filled) for o in orders] == [(ack.order_id, "2", "3")]
    # the public book shows the rest of alice's order, and nobody's name
    bob.order("b-2", "buy", "1", "9.90")
    book = bob.query("book", "bk", "XYZ")
    assert [(lv.price, lv.qty, lv.orders) for lv in book.asks] == [("10", "2", 1)]
    assert [(lv.price, lv.qty, lv.orders) for lv in book.bids] == [("9.9", "1", 1)]


def test_an_account_cannot_cancel_replace_or_see_another_accounts_orders(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    alice = connect(ctx, ep, "alice", "alice-pw")
    bob = connect(ctx, ep, "bob", "bob-pw")
    ack = alice.order("a-1", "buy", "5", "9.50")
    bob.send(m.Cancel(cl_ord_id="b-c", symbol="XYZ", order_id=ack.order_id))
    r = bob.answer("b-c")
    assert isinstance(r, m.Reject) and r.reason == Reason.UNKNOWN_ORDER and r.seq > 0
    bob.send(m.Cancel(cl_ord_id="b-c2", symbol="XYZ", orig_cl_ord_id="a-1"))
    assert bob.answer("b-c2").reason == Reason.UNKNOWN_ORDER
    bob.send(m.Replace(cl_ord_id="b-r", symbol="XYZ", order_id=ack.order_id, qty="1", price="9.40"))
    assert bob.answer("b-r").reason == Reason.UNKNOWN_ORDER
    assert bob.query("orders").orders == []
    assert all(getattr(x, "cl_ord_id", "") != "a-1" for x in bob.seen)
    # alice's order is untouched and hers to cancel
    assert [o.leaves for o in alice.query("orders").orders] == ["5"]
    alice.send(m.Cancel(cl_ord_id="a-c", symbol="XYZ", order_id=ack.order_id))
    assert isinstance(alice.answer("a-c"), m.Cancelled)


def test_reconnect_and_recover_returns_exactly_the_missed_reports(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    bob = connect(ctx, ep, "bob", "bob-pw")  # bob has no cancel-on-disconnect
    for i in range(3):
        assert isinstance(bob.order(f"b-{i}", "sell", "2", f"10.0{i}"), m.Ack)
    last = max(r.rseq for r in bob.seen if getattr(r, "rseq", 0))
    bob.close()
    alice = connect(ctx, ep, "alice", "alice-pw")
    alice.order("a-1", "buy", "6", "10.05")
    fills = [alice.expect(lambda r: isinstance(r, m.Fill)) for _ in range(3)]
    bob = Wire(ctx, ep)
    logon = bob.logon("bob", "bob-pw")
    assert logon.next_rseq == last + 4  # three fills happened while bob was away
    bob.send(m.Recover(from_rseq=last + 1))
    done = bob.expect(lambda r: isinstance(r, m.Recovered))
    assert (done.from_rseq, done.to_rseq, done.last_rseq) == (last + 1, last + 3, last + 3)
    got = [r for r in bob.seen if isinstance(r, m.Fill)]
    assert [r.rseq for r in got] == [last + 1, last + 2, last + 3]
    assert [r.trade_id for r in got] == [f.trade_id for f in fills]
    assert all(r.liquidity == "maker" for r in got)
    # a second recover from the end has nothing more to say
    bob.send(m.Recover(from_rseq=last + 4))
    done = bob.expect(lambda r: isinstance(r, m.Recovered) and r.from_rseq == last + 4)
    assert (done.to_rseq, done.last_rseq) == (last + 3, last + 3)


def test_resend_after_the_gateway_is_killed_returns_the_first_ack_and_makes_one_order(
    exchange, ctx
):
    ep = exchange.endpoints["gw1"]
    bob = connect(ctx, ep, "bob", "bob-pw")
    first = bob.order("b-1", "buy", "4", "9.00")
    assert isinstance(first, m.Ack) and not first.resent
    bob.send(m.NewOrder(cl_ord_id="b-2", symbol="XYZ", side="buy", qty="1", price="9.01"))
    exchange.gateways["gw1"].kill()  # b-2's answer may or may not have been sent: a timeout
    bob.close()
    exchange.start_gateway("gw1")
    bob = connect(ctx, ep, "bob", "bob-pw")
    bob.send(m.NewOrder(cl_ord_id="b-1", symbol="XYZ", side="buy", qty="4", price="9.00"))
    again = bob.answer("b-1")
    assert isinstance(again, m.Ack) and again.resent
    assert (again.order_id, again.seq, again.rseq) == (first.order_id, first.seq, 0)
    bob.send(m.NewOrder(cl_ord_id="b-2", symbol="XYZ", side="buy", qty="1", price="9.01"))
    assert isinstance(bob.answer("b-2"), m.Ack)
    orders = bob.query("orders").orders
    assert sorted(o.cl_ord_id for o in orders) == ["b-1", "b-2"]


def test_resend_after_a_matcher_restart_still_returns_the_first_answer(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    bob = connect(ctx, ep, "bob", "bob-pw")
    first = bob.order("b-1", "sell", "2", "11.00")
    exchange.matcher.kill()
    exchange.start_matcher()
    bob.send(m.NewOrder(cl_ord_id="b-1", symbol="XYZ", side="sell", qty="2", price="11.00"))
    again = bob.answer("b-1", timeout=20)  # the gateway's DEALER reconnects by itself
    assert again.resent and again.order_id == first.order_id
    assert len(bob.query("orders").orders) == 1


def test_several_gateways_feed_one_matcher_and_reports_reach_the_right_one(exchange, ctx):
    ep2 = exchange.start_gateway("gw2")
    alice = connect(ctx, exchange.endpoints["gw1"], "alice", "alice-pw")
    bob = connect(ctx, ep2, "bob", "bob-pw")
    ack = alice.order("a-1", "sell", "3", "10.00")
    assert isinstance(bob.order("b-1", "buy", "3", "10.00"), m.Ack)
    assert bob.expect(lambda r: isinstance(r, m.Fill)).liquidity == "taker"
    fill = alice.expect(lambda r: isinstance(r, m.Fill))
    assert fill.order_id == ack.order_id and fill.liquidity == "maker"
