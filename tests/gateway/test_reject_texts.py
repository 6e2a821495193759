"""Every reject the gateway makes shows numbers as a client writes them (SPEC 3.5, 4.8).

The instrument is chosen so that ticks, lots and cash units are all far from
the decimals they stand for (tick 0.25, lot 0.001: price 120 is 480 ticks,
qty 3 is 3000 lots); every number in every reject text must be one of the
decimals the client sent or the configuration states, compared by value.
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgpack
import pytest

from zex.nodes.gateway.risk import AccountRules
from zex.nodes.runtime.config import AccountConfig
from zex.protocol import messages as m
from zex.protocol.codec import decode_report, encode
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

from .intake_harness import Harness

BTC = Instrument(
    "BTC",
    tick="0.25",
    lot="0.001",
    min_price="1",
    max_price="500",
    max_qty="5",
    reference_price="100",
)
ACCOUNT = AccountConfig(
    id="risky", credential="pw", max_order_qty="2", max_notional="150", collar_pct="10"
)
# Decimals a reject may show: the configuration's, and the collar band and notionals they imply.
CONFIG = {
    "0.25",
    "0.001",
    "1",
    "500",
    "5",
    "100",
    "2",
    "150",
    "10",
    "90",
    "110",
    "210",
    "220",
    "200",
}


def order(cl: str, qty: str, price: str | None = "100", **kw) -> m.NewOrder:
    return m.NewOrder(
        cl_ord_id=cl, symbol="BTC", side=kw.pop("side", "buy"), qty=qty, price=price, **kw
    )


CASES = [
    (order("off-tick", "1", "100.1"), Reason.PRICE_OFF_TICK, {"100.1"}),
    (order("band", "1", "600"), Reason.PRICE_OUT_OF_BAND, {"600"}),
    (order("low", "1", "0.5"), Reason.PRICE_OUT_OF_BAND, {"0.5"}),
    (order("off-lot", "0.0015"), Reason.QTY_OFF_LOT, {"0.0015"}),
    (order("too-large", "6"), Reason.QTY_TOO_LARGE, {"6"}),
    (order("max-qty", "3"), Reason.MAX_ORDER_QTY, {"3"}),
    (order("collar", "1", "120"), Reason.PRICE_COLLAR, {"120"}),
    (order("collar-sell", "1", "80", side="sell"), Reason.PRICE_COLLAR, {"80"}),
    (order("notional", "2", "105"), Reason.MAX_NOTIONAL, set()),
    (order("market", "2", None, ord_type="market", tif="ioc"), Reason.MAX_NOTIONAL, set()),
    (
        m.Replace(cl_ord_id="r-collar", symbol="BTC", qty="1", price="120", order_id=7),
        Reason.PRICE_COLLAR,
        {"120"},
    ),
    (
        m.Replace(cl_ord_id="r-qty", symbol="BTC", qty="3", price="100", order_id=7),
        Reason.MAX_ORDER_QTY,
        {"3"},
    ),
    (
        m.Replace(cl_ord_id="r-lot", symbol="BTC", qty="0.0001", price="100", order_id=7),
        Reason.QTY_OFF_LOT,
        {"0.0001"},
    ),
    (
        m.Replace(cl_ord_id="r-tick", symbol="BTC", qty="1", price="100.3", order_id=7),
        Reason.PRICE_OFF_TICK,
        {"100.3"},
    ),
]


@pytest.fixture
def harness():
    cash = Cash([BTC])
    h = Harness((BTC,), {ACCOUNT.id: AccountRules.build(ACCOUNT, (BTC,), cash)}, cash)
    h.log_on(b"c1", "risky")
    yield h
    h.close()


@pytest.mark.parametrize("msg,reason,sent", CASES, ids=[c[0].cl_ord_id for c in CASES])
def test_a_gateway_reject_shows_decimals_never_ticks_lots_or_cash_units(harness, msg, reason, sent):
    r = harness.reject(b"c1", msg)
    assert (r.reason, r.cl_ord_id, r.seq) == (reason, msg.cl_ord_id, 0), r
    allowed = {Decimal(x) for x in CONFIG | sent}
    numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", r.text)
    assert numbers, r.text  # each of these rejects names a value
    leaked = [x for x in numbers if Decimal(x) not in allowed]
    assert not leaked, f"{r.text!r} shows {leaked}: ticks, lots or cash units?"


def test_an_over_long_cl_ord_id_is_echoed_whole_not_cut(harness):
    """SPEC 4.8: the refused request's cl_ord_id exactly as sent; a cut copy could name another order."""
    long_id = "L" * 36 + "-tail"
    frame = msgpack.packb(
        {
            "type": "new_order",
            "v": 1,
            "cl_ord_id": long_id,
            "symbol": "BTC",
            "side": "buy",
            "qty": "1",
            "price": "100",
        }
    )
    r = harness.reject_frame(b"c1", frame)
    assert r.reason == Reason.INVALID_VALUE and "cl_ord_id" in r.text, r
    assert r.cl_ord_id == long_id and r.ref_type == "new_order"
    assert decode_report(encode(r)) == r
