"""The stateless risk checks (risk.py) alone: limits in engine units, texts in decimals."""

from __future__ import annotations

from zex.nodes.gateway.risk import AccountRules, TokenBucket
from zex.nodes.runtime.config import AccountConfig
from zex.protocol.internal import BUY, SELL
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

XYZ = Instrument("XYZ", tick="0.01", lot="1", max_price="1000")
BTC = Instrument("BTC", tick="0.5", lot="0.001", min_price="1", max_price="100000", max_qty="10")
CASH = Cash([XYZ, BTC])


def rules(**kw) -> AccountRules:
    return AccountRules.build(AccountConfig(id="a", credential="pw", **kw), (XYZ, BTC), CASH)


def test_no_limits_refuse_nothing():
    r = rules()
    assert r.check(BTC, BUY, BTC.max_ticks, BTC.max_lots, 0, CASH.mult["BTC"], False) is None
    assert r.band(XYZ, 1000) == (XYZ.min_ticks, XYZ.max_ticks)


def test_max_order_qty_is_per_instrument_in_its_lots():
    r = rules(max_order_qty="2")
    assert r.max_lots == {"XYZ": 2, "BTC": 2000}
    assert r.check(BTC, BUY, 100, 2000, 0, CASH.mult["BTC"], False) is None
    reason, text = r.check(BTC, SELL, 100, 2001, 0, CASH.mult["BTC"], False)
    assert reason == Reason.MAX_ORDER_QTY and text == "max_order_qty 2 for BTC, order qty 2.001"


def test_the_collar_rounds_inward_and_only_with_a_reference():
    r = rules(collar_pct="10")
    assert r.band(XYZ, 1005) == (905, 1105)  # 904.5 up, 1105.5 down
    assert r.band(XYZ, 0) == (XYZ.min_ticks, XYZ.max_ticks)
    assert r.check(XYZ, BUY, 1106, 1, 1005, CASH.mult["XYZ"], False)[0] == Reason.PRICE_COLLAR
    # a market order has no limit price
    assert r.check(XYZ, BUY, 1106, 1, 1005, CASH.mult["XYZ"], True) is None
    assert r.check(XYZ, BUY, 1106, 1, 0, CASH.mult["XYZ"], False) is None
    assert (r.protection(XYZ, BUY, 1005), r.protection(XYZ, SELL, 1005)) == (1105, 905)
    text = r.check(XYZ, SELL, 904, 1, 1005, CASH.mult["XYZ"], False)[1]
    assert text == "price 9.04 is outside the collar [9.05, 11.05] (10% around 10.05) for XYZ"


def test_max_notional_counts_cash_exactly_and_names_the_protection_price():
    r = rules(max_notional="150")
    mult = CASH.mult["BTC"]
    assert r.check(BTC, BUY, 300, 1000, 0, mult, False) is None  # 150 * 1 = 150
    reason, text = r.check(BTC, BUY, 301, 1000, 0, mult, True)
    assert (
        reason == Reason.MAX_NOTIONAL
        and text == "max_notional 150, order notional 150.5 at its protection price"
    )


def test_logon_fields_state_the_limits_as_decimals():
    assert rules().logon_fields() == {
        "operator": False,
        "cancel_on_disconnect": False,
        "rate": None,
        "burst": None,
        "max_order_qty": None,
        "max_notional": None,
        "collar_pct": None,
    }
    got = rules(
        operator=True,
        rate=0.5,
        burst=4,
        max_order_qty="2.50",
        max_notional="1000.00",
        collar_pct="7.5",
    ).logon_fields()
    assert got == {
        "operator": True,
        "cancel_on_disconnect": False,
        "rate": "0.5",
        "burst": "4",
        "max_order_qty": "2.5",
        "max_notional": "1000",
        "collar_pct": "7.5",
    }


def test_the_token_bucket_banks_at_most_burst_and_refills_at_rate():
    t = 50.0
    b = TokenBucket(rate=10, burst=2, now=t)
    assert [b.take(t) for _ in range(3)] == [True, True, False]
    assert b.take(t + 0.05) is False  # half a token
    assert b.take(t + 0.11) is True
    assert [b.take(t + 100) for _ in range(3)] == [True, True, False]  # never more than the burst
