"""What SPEC.md 4.2 and 4.4 promise a client without probing: its account's options and limits in
logon_ack, and a market order without tif is ioc."""

from __future__ import annotations

import msgpack

from zex.protocol import messages as m
from zex.protocol.reasons import Reason

from .test_order_entry import connect
from .wire import Wire

LIMITS = (
    "operator",
    "cancel_on_disconnect",
    "rate",
    "burst",
    "max_order_qty",
    "max_notional",
    "collar_pct",
)


def limits(ack: m.LogonAck) -> dict:
    return {k: getattr(ack, k) for k in LIMITS}


def test_logon_ack_states_the_accounts_options_and_limits(exchange, ctx):
    """Each field as tests/gateway/conftest.py configures the account, decimals as SPEC 3.5 writes them."""
    ep = exchange.endpoints["gw1"]
    none = dict.fromkeys(LIMITS)
    expected = {
        "bob": {**none, "operator": False, "cancel_on_disconnect": False},
        "alice": {**none, "operator": False, "cancel_on_disconnect": True},
        "ops": {**none, "operator": True, "cancel_on_disconnect": False},
        "mallory": {
            **none,
            "operator": False,
            "cancel_on_disconnect": False,
            "rate": "20",
            "burst": "10",
        },
        "risky": {
            **none,
            "operator": False,
            "cancel_on_disconnect": False,
            "max_order_qty": "20",
            "max_notional": "150",
            "collar_pct": "10",
        },
    }
    for account, want in expected.items():
        w = Wire(ctx, ep)
        try:
            assert limits(w.logon(account, f"{account}-pw")) == want, account
        finally:
            w.close()


def test_a_market_order_without_tif_is_ioc_and_an_explicit_gtc_is_refused(exchange, ctx):
    ep = exchange.endpoints["gw1"]
    bob = connect(ctx, ep, "bob", "bob-pw")
    alice = connect(ctx, ep, "alice", "alice-pw")
    maker = bob.order("b-1", "sell", "5", "10.00")  # a limit order without tif: gtc, it rests
    assert isinstance(maker, m.Ack) and maker.tif == "gtc"
    # tif absent from the map, as a plain msgpack client writes it
    alice.send(
        msgpack.packb(
            {
                "type": "new_order",
                "v": 1,
                "cl_ord_id": "a-1",
                "symbol": "XYZ",
                "side": "buy",
                "qty": "3",
                "ord_type": "market",
            }
        )
    )
    ack = alice.answer("a-1")
    assert isinstance(ack, m.Ack) and (ack.ord_type, ack.tif, ack.price) == (
        "market",
        "ioc",
        None,
    ), ack
    assert alice.expect(lambda r: isinstance(r, m.Fill) and r.cl_ord_id == "a-1").qty == "3"
    # tif nil: the same; what the book cannot fill expires, it never rests
    ack = alice.order("a-2", "buy", "10", None, ord_type="market")
    assert isinstance(ack, m.Ack) and ack.tif == "ioc", ack
    assert alice.expect(lambda r: isinstance(r, m.Fill) and r.cl_ord_id == "a-2").qty == "2"
    exp = alice.expect(lambda r: isinstance(r, m.Expired) and r.cl_ord_id == "a-2")
    assert (exp.qty, exp.reason) == ("8", "market")
    r = alice.order("a-3", "buy", "1", None, ord_type="market", tif="gtc")
    assert isinstance(r, m.Reject) and r.reason == Reason.INVALID_COMBINATION and "gtc" in r.text, r
    assert alice.query("orders").orders == []
