"""The load test's order flow and its latency histogram, without sockets."""

from __future__ import annotations

import random
from collections import Counter

from loadtest.flow import MIX, OrderFlow
from loadtest.latency import Latencies, LogLinear
from zex.protocol import messages as m
from zex.protocol.numbers import Instrument

XYZ = Instrument(
    "XYZ",
    tick="0.01",
    lot="1",
    min_price="0.01",
    max_price="10000",
    max_qty="100000",
    reference_price="100",
)


def book(bid: str | None, ask: str | None) -> m.Book:
    lv = lambda p: [m.Level(price=p, qty="5", orders=1)] if p else []  # noqa: E731
    return m.Book(req_id="q", symbol="XYZ", bids=lv(bid), asks=lv(ask), seq=1)


def ack(oid: int, side: str, qty: str, price: str) -> m.Ack:
    return m.Ack(
        cl_ord_id=f"c{oid}",
        order_id=oid,
        symbol="XYZ",
        side=side,
        ord_type="limit",
        tif="gtc",
        price=price,
        qty=qty,
        seq=oid,
        ts=0,
    )


def test_the_mix_is_about_60_20_10_10_and_open_orders_stay_bounded():
    flow = OrderFlow(XYZ, random.Random(1), max_open=8)
    flow.on_book(book("99.98", "100.02"))
    seen = Counter()
    for i in range(1, 20_001):
        action = flow.next_action()
        seen[action] += 1
        if action == "new_order":
            side, qty, price = flow.resting_order()
            flow.opened(ack(i, side, qty, price))
        elif action in ("cancel", "replace"):
            flow.gone(flow.cancel_target())  # the answer came back: gone either way here
        assert len(flow.open) <= 8
    # with no order open a cancel becomes a new order, at the cap a new order a cancel: the
    # flow settles where new orders and removals balance, and IOCs keep their share
    assert abs(seen["ioc"] / 20_000 - dict(MIX)["ioc"] / 100) < 0.02
    assert all(seen[a] > 1000 for a, _ in MIX), seen


def test_resting_orders_never_cross_and_iocs_do():
    flow = OrderFlow(XYZ, random.Random(2))
    flow.on_book(book("99.98", "100.02"))
    for _ in range(2000):
        side, qty, price = flow.resting_order()
        ticks = XYZ.price_to_ticks(price)
        assert (ticks < 10002) if side == "buy" else (ticks > 9998), (side, price)
        assert 1 <= int(qty) <= 10
        side, qty, price = flow.ioc_order()
        ticks = XYZ.price_to_ticks(price)
        assert (ticks >= 10002) if side == "buy" else (ticks <= 9998), (side, price)


def test_sides_lean_against_the_position():
    flow = OrderFlow(XYZ, random.Random(3))
    flow.on_positions(
        m.Positions(
            req_id="p",
            cash="0",
            open_orders=0,
            kill_switch="off",
            seq=1,
            positions=[m.PositionInfo(symbol="XYZ", qty="2000", bought="2000", sold="0")],
        )
    )
    sides = Counter(flow.ioc_order()[0] for _ in range(2000))
    assert sides["sell"] > 1.5 * sides["buy"], sides


def test_fills_and_unsolicited_cancels_of_its_own_orders_close_them():
    flow = OrderFlow(XYZ, random.Random(4))
    flow.opened(ack(1, "buy", "5", "99.5"))
    flow.opened(ack(2, "sell", "5", "100.5"))
    fill = dict(
        cl_ord_id="c1",
        symbol="XYZ",
        side="buy",
        price="99.5",
        trade_id=1,
        liquidity="maker",
        seq=3,
        ts=0,
    )
    flow.on_report(m.Fill(order_id=1, qty="2", leaves="3", **fill))
    assert flow.open[1].filled == 2
    flow.on_report(m.Fill(order_id=1, qty="3", leaves="0", **fill))
    flow.on_report(m.Fill(order_id=99, qty="3", leaves="0", **fill))  # another session's order
    flow.on_report(
        m.Cancelled(
            order_id=2,
            cl_ord_id="c2",
            orig_cl_ord_id="c2",
            symbol="XYZ",
            side="sell",
            qty="5",
            reason="stp",
            seq=4,
            ts=0,
        )
    )
    assert flow.open == {}


def test_the_fallback_histogram_is_within_2_percent_of_the_exact_percentiles():
    rng = random.Random(5)
    values = sorted(int(rng.lognormvariate(7, 1.2)) + 1 for _ in range(50_000))
    h = LogLinear()
    for v in values:
        h.record_value(v)
    for pct in (50.0, 90.0, 99.0, 99.9):
        exact = values[min(len(values) - 1, int(len(values) * pct / 100))]
        got = h.get_value_at_percentile(pct)
        assert abs(got - exact) <= max(1, 0.02 * exact), (pct, got, exact)
    assert h.get_max_value() == values[-1] and h.get_total_count() == len(values)


def test_latencies_report_microseconds():
    lat = Latencies()
    for us in (100, 200, 300, 400, 1000):
        lat.record("new_order", us / 1e6)
    row = lat.summary()["new_order"]
    assert row["count"] == 5 and 290 <= row["p50"] <= 310 and row["max"] == 1000
    assert "new_order" in lat.table()
