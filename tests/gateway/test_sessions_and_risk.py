"""Sessions (heartbeats, logout, cancel-on-disconnect), the kill switch, and every risk limit."""

from __future__ import annotations

import time

from tests.conftest import wait_for
from zex.protocol import messages as m
from zex.protocol.reasons import Reason

from .conftest import MATCHER_HWM
from .test_order_entry import connect


def test_a_silent_client_is_dropped_and_cancel_on_disconnect_applies_per_session(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    quiet = connect(ctx, ep, "alice", "alice-pw", heartbeat_ms=200)  # alice: cancel_on_disconnect
    other = connect(ctx, ep, "alice", "alice-pw")  # a second session of alice keeps heartbeating
    mine = quiet.order("a-1", "buy", "2", "9.50")
    theirs = other.order("a-2", "buy", "2", "9.40")
    bob = connect(ctx, ep, "bob", "bob-pw", heartbeat_ms=200)  # bob: no cancel_on_disconnect
    bobs = bob.order("b-1", "sell", "1", "10.50")
    # quiet and bob now say nothing at all; the gateway drops both after 3 intervals
    out = quiet.expect(lambda r: isinstance(r, m.LoggedOut), timeout=5)
    assert out.reason == "heartbeat"
    assert bob.expect(lambda r: isinstance(r, m.LoggedOut), timeout=5).reason == "heartbeat"
    cxl = other.expect(lambda r: isinstance(r, m.Cancelled), timeout=5)  # same account: it hears
    assert (cxl.order_id, cxl.reason) == (mine.order_id, "disconnect")
    other.send(m.Heartbeat())
    assert [o.order_id for o in other.query("orders").orders] == [theirs.order_id]
    # bob's order stays: his account does not cancel on disconnect
    again = connect(ctx, ep, "bob", "bob-pw")
    assert [o.order_id for o in again.query("orders").orders] == [bobs.order_id]
    # a dropped session is gone: its next request is refused until it logs on again
    quiet.send(m.NewOrder(cl_ord_id="a-3", symbol="XYZ", side="buy", qty="1", price="9"))
    assert quiet.answer("a-3").reason == Reason.NOT_LOGGED_ON


def test_logout_ends_the_session_and_cancels_its_orders(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    alice = connect(ctx, ep, "alice", "alice-pw")
    ack = alice.order("a-1", "sell", "3", "10.20")
    alice.send(m.Logout())
    assert alice.expect(lambda r: isinstance(r, m.LoggedOut)).reason == "logout"
    back = connect(ctx, ep, "alice", "alice-pw")
    assert back.query("orders").orders == []
    back.send(m.Recover(from_rseq=1))
    back.expect(lambda r: isinstance(r, m.Recovered))
    # the cancel may also have arrived live, if back logged on before the matcher
    # sent it; a client drops the repeat by its rseq (SPEC 7.2 item 5)
    cancels = {r.rseq: (r.order_id, r.reason) for r in back.seen if isinstance(r, m.Cancelled)}
    assert list(cancels.values()) == [(ack.order_id, "disconnect")]


def test_kill_switch_blocks_then_reduce_only_then_off_and_survives_a_matcher_restart(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    ops = connect(ctx, ep, "ops", "ops-pw")
    alice = connect(ctx, ep, "alice", "alice-pw")
    bob = connect(ctx, ep, "bob", "bob-pw")
    alice.order("a-1", "sell", "3", "10.00")
    bob.order("b-1", "buy", "3", "10.00")  # bob is long 3
    resting = bob.order("b-2", "buy", "5", "9.00")
    ops.send(m.KillSwitch(cl_ord_id="k-1", account="bob", mode="block"))
    done = ops.answer("k-1")
    assert isinstance(done, m.KillSwitchSet) and (done.account, done.mode, done.cancelled) == (
        "bob",
        "block",
        1,
    )
    cxl = bob.expect(lambda r: isinstance(r, m.Cancelled))
    assert (cxl.order_id, cxl.reason) == (resting.order_id, "kill")
    assert bob.expect(lambda r: isinstance(r, m.KillSwitchSet)).mode == "block"
    r = bob.order("b-3", "sell", "1", "10.00")
    assert (
        isinstance(r, m.Reject)
        and r.reason == Reason.KILL_SWITCH
        and r.seq > 0
        and "blocked" in r.text
    )
    # journaled: a restarted matcher still blocks
    exchange.matcher.kill()
    exchange.start_matcher()
    r = bob.order("b-4", "sell", "1", "10.00")
    assert isinstance(r, m.Reject) and r.reason == Reason.KILL_SWITCH
    ops.send(m.KillSwitch(cl_ord_id="k-2", account="bob", mode="reduce_only"))
    assert ops.answer("k-2").mode == "reduce_only"
    r = bob.order("b-5", "buy", "1", "9.00")
    assert r.reason == Reason.KILL_SWITCH and "reduce-only" in r.text
    r = bob.order("b-6", "sell", "4", "10.50")  # would flip long 3 to short 1
    assert r.reason == Reason.KILL_SWITCH
    assert isinstance(bob.order("b-7", "sell", "2", "10.50"), m.Ack)  # reduces
    ops.send(m.KillSwitch(cl_ord_id="k-3", account="bob", mode="off"))
    ops.answer("k-3")
    assert isinstance(bob.order("b-8", "buy", "1", "9.00"), m.Ack)
    assert bob.query("positions").kill_switch == "off"
    # a resend of the operator's command is idempotent
    ops.send(m.KillSwitch(cl_ord_id="k-1", account="bob", mode="block"))
    again = ops.answer("k-1")
    assert again.resent and again.mode == "block" and again.seq == done.seq
    assert isinstance(bob.order("b-9", "buy", "1", "9.00"), m.Ack)  # the resend changed nothing


def test_each_risk_limit_refuses_with_its_reason_and_names_the_limit(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    risky = connect(ctx, ep, "risky", "risky-pw")
    bob = connect(ctx, ep, "bob", "bob-pw")

    def refused(cl, side, qty, price, **kw):
        r = risky.order(cl, side, qty, price, **kw)
        assert isinstance(r, m.Reject), r
        return r

    r = refused("r-1", "buy", "21", "10.00")  # stateless, in the gateway: seq 0
    assert (r.reason, r.seq) == (Reason.MAX_ORDER_QTY, 0) and "max_order_qty 20" in r.text
    r = refused("r-2", "buy", "15", "10.50")
    assert r.reason == Reason.MAX_NOTIONAL and "max_notional 150" in r.text and "157.5" in r.text
    r = refused("r-3", "buy", "1", "12.00")
    assert r.reason == Reason.PRICE_COLLAR and "[9, 11]" in r.text
    for i in range(3):
        assert isinstance(risky.order(f"s-{i}", "sell", "1", "11.00"), m.Ack)
    r = refused("s-3", "sell", "1", "11.00")  # stateful, in the matcher: seq > 0
    assert r.reason == Reason.MAX_OPEN_ORDERS and r.seq > 0 and "max_open_orders 3" in r.text
    # nothing to hit: expires
    assert isinstance(risky.order("r-4", "buy", "8", "10.00", tif="ioc"), m.Ack)
    assert isinstance(risky.order("r-5", "buy", "8", "10.00", tif="ioc"), m.Ack)
    bob.order("b-1", "sell", "8", "10.00")
    # long 8 now, cash -80
    assert isinstance(risky.order("r-6", "buy", "8", "10.00", tif="ioc"), m.Ack)
    r = refused("r-7", "buy", "3", "10.00", tif="ioc")
    assert r.reason == Reason.MAX_POSITION and "max_position 10" in r.text
    r = refused("r-8", "buy", "2", "10.50", tif="ioc")  # 80 + 21 > credit 100
    assert r.reason == Reason.CREDIT_LIMIT and "credit" in r.text
    # market orders carry a protection price: they never trade beyond the collar
    bob.order("b-2", "sell", "1", "10.90")
    bob.order("b-3", "sell", "1", "11.50")
    bob.order("b-4", "buy", "50", "9.00")
    risky.send(
        m.NewOrder(
            cl_ord_id="r-9", symbol="XYZ", side="sell", qty="10", ord_type="market", tif="ioc"
        )
    )
    ack = risky.answer("r-9")
    assert isinstance(ack, m.Ack), ack
    fill = risky.expect(lambda r: isinstance(r, m.Fill) and r.cl_ord_id == "r-9")
    assert fill.price == "9" and fill.qty == "10"
    pos = risky.query("positions")
    assert [(p.symbol, p.qty) for p in pos.positions] == [("XYZ", "-2")]


def test_many_clients_logging_on_at_once_each_get_their_logon_ack(exchange):
    """Each logon's answer comes back from the matcher; it must never overtake the session it completes."""
    import threading

    import zmq

    from zex.protocol.codec import decode_report, encode

    ep = exchange.endpoints["gw1"]
    ctx = zmq.Context()
    socks = []
    try:
        for _ in range(60):
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.connect(ep)
            socks.append(s)
        go = threading.Barrier(len(socks))
        acks: list = [None] * len(socks)

        def logon(i: int) -> None:
            s = socks[i]
            go.wait()
            s.send(
                encode(
                    m.Logon(
                        account="bob" if i % 2 else "alice",
                        credential="bob-pw" if i % 2 else "alice-pw",
                        heartbeat_ms=60_000,
                    )
                )
            )
            if s.poll(10_000):
                acks[i] = decode_report(s.recv())

        threads = [threading.Thread(target=logon, args=(i,)) for i in range(len(socks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert all(isinstance(a, m.LogonAck) for a in acks), [type(a).__name__ for a in acks]
    finally:
        ctx.destroy(linger=0)


def test_the_price_collar_follows_the_last_trade_from_the_event_stream(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    risky = connect(ctx, ep, "risky", "risky-pw")
    alice = connect(ctx, ep, "alice", "alice-pw")
    bob = connect(ctx, ep, "bob", "bob-pw")
    # Reference 10, collar 10 %: 11.50 is outside [9, 11] until a trade moves the reference.
    r = risky.order("c-0", "buy", "1", "11.50")
    assert r.reason == Reason.PRICE_COLLAR and "[9, 11]" in r.text
    alice.order("a-c", "sell", "1", "10.80")
    assert isinstance(bob.order("b-c", "buy", "1", "10.80"), m.Ack)
    bob.expect(lambda x: isinstance(x, m.Fill))
    # The gateway learns the trade price from the matcher's event stream, a moment after the
    # fill: ask again until the collar is [9.72, 11.88].
    deadline, i = time.monotonic() + 10, 0
    while True:
        i += 1
        r = risky.order(f"c-{i}", "buy", "1", "11.50")
        if isinstance(r, m.Ack) or time.monotonic() > deadline:
            break
        assert r.reason == Reason.PRICE_COLLAR, r
        time.sleep(0.005)  # paces the retries; the deadline, not this, bounds the wait
    assert isinstance(r, m.Ack), r
    r = risky.order("c-high", "buy", "1", "11.90")
    assert r.reason == Reason.PRICE_COLLAR and "11.88" in r.text, r


def test_a_matcher_that_is_down_never_freezes_the_gateway_and_every_order_is_answered_once(
    exchange, ctx
):
    """Orders sent while the matcher is down: up to gateway.matcher_hwm wait in the queue and are
    acked once it is back; past it, the front (workers = 0) refuses them at once with UNAVAILABLE
    (a worker thread instead waits for room). Nothing is answered twice, nothing is lost."""
    ep = exchange.endpoints["gw1"]
    bob = connect(ctx, ep, "bob", "bob-pw")
    # cancel_on_disconnect: her logout needs the matcher
    alice = connect(ctx, ep, "alice", "alice-pw")
    exchange.matcher.kill()
    n = MATCHER_HWM + 200
    for i in range(n):
        bob.send(m.NewOrder(cl_ord_id=f"d-{i}", symbol="XYZ", side="buy", qty="1", price="9.00"))
    if not exchange.workers:
        refused = [
            bob.expect(lambda r: isinstance(r, m.Reject), what=f"refusal {k}") for k in range(150)
        ]
        assert {r.reason for r in refused} == {Reason.UNAVAILABLE} and {r.seq for r in refused} == {
            0
        }
        assert "matcher_hwm" not in refused[0].text and "resend later" in refused[0].text
        alice.send(m.Logout())  # the front is not stuck: answered now, its cancel held for later
        alice.expect(
            lambda r: isinstance(r, m.LoggedOut), timeout=5, what="logged_out during the outage"
        )
    exchange.start_matcher()
    deadline = time.monotonic() + 30
    answers: dict[str, list] = {}
    while sum(len(v) for v in answers.values()) < n and time.monotonic() < deadline:
        try:
            r = bob.expect(
                lambda r: isinstance(r, (m.Ack, m.Reject)) and r.cl_ord_id.startswith("d-"),
                timeout=1.0,
            )
        except TimeoutError:
            continue
        answers.setdefault(r.cl_ord_id, []).append(r)
    for r in refused if not exchange.workers else []:
        answers.setdefault(r.cl_ord_id, []).append(r)
    assert sorted(answers) == sorted(f"d-{i}" for i in range(n))
    assert all(len(v) == 1 for v in answers.values()), [
        k for k, v in answers.items() if len(v) > 1
    ][:5]
    acked = sum(isinstance(v[0], m.Ack) for v in answers.values())
    assert acked >= MATCHER_HWM - 50 if not exchange.workers else acked == n


def _orders_once_answered(w, req_id: str, timeout: float = 20.0) -> list:
    """The account's open orders, asking again while the queue to the matcher is still full."""
    deadline = time.monotonic() + timeout
    for k in range(1000):
        q = f"{req_id}-{k}"
        w.send(m.Query(req_id=q, what="orders"))
        r = w.expect(
            lambda r, q=q: (
                (isinstance(r, m.Orders) and r.req_id == q)
                or (isinstance(r, m.Reject) and r.cl_ord_id == q)
            ),
            what="orders answer",
        )
        if isinstance(r, m.Orders):
            return r.orders
        assert r.reason == Reason.UNAVAILABLE and time.monotonic() < deadline, r
        time.sleep(0.05)  # paces the retries; the deadline bounds the wait
    raise AssertionError("no orders answer")


def test_a_repeat_logon_that_cannot_reach_the_matcher_leaves_the_session_and_its_cancel(
    exchange, ctx
):
    """SPEC 9.1: a logon repeated on a live session while the queue to the matcher is full is
    refused with UNAVAILABLE by the front (workers = 0); a worker thread waits for room and
    answers it once the matcher is back. Either way the session goes on as it was: no
    logged_out, its orders stay, and its cancel-on-disconnect still applies when it ends."""
    ep = exchange.endpoints["gw1"]
    bob = connect(ctx, ep, "bob", "bob-pw")
    alice = connect(ctx, ep, "alice", "alice-pw")  # alice: cancel_on_disconnect
    rest = alice.order("a-1", "buy", "2", "9.50")
    exchange.matcher.kill()
    for i in range(MATCHER_HWM + 200):
        bob.send(m.NewOrder(cl_ord_id=f"d-{i}", symbol="XYZ", side="buy", qty="1", price="9.00"))
    if not exchange.workers:  # the queue is full
        r = bob.expect(lambda r: isinstance(r, m.Reject), what="a refusal")
        assert r.reason == Reason.UNAVAILABLE, r
    alice.send(m.Logon(account="alice", credential="alice-pw", heartbeat_ms=5000))
    if not exchange.workers:
        r = alice.expect(lambda r: isinstance(r, (m.Reject, m.LogonAck)), what="logon answer")
        assert isinstance(r, m.Reject) and (r.ref_type, r.reason) == ("logon", Reason.UNAVAILABLE)
    exchange.start_matcher()
    if exchange.workers:
        alice.expect(lambda r: isinstance(r, m.LogonAck), timeout=20, what="the repeated logon_ack")
    assert [o.order_id for o in _orders_once_answered(alice, "q")] == [rest.order_id]
    assert not [r for r in alice.seen if isinstance(r, m.LoggedOut)]
    alice.send(m.Logout())
    assert alice.expect(lambda r: isinstance(r, m.LoggedOut)).reason == "logout"
    back = connect(ctx, ep, "alice", "alice-pw")
    wait_for(
        lambda: _orders_once_answered(back, f"b{time.monotonic_ns()}") == [],
        what="alice's order cancelled on logout",
    )
