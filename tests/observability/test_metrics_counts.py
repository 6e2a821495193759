"""A known order flow moves each node's counters by exactly what it did (real processes, real scrapes)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.exchange import MdExchange
from zex.protocol import messages as m

pytestmark = pytest.mark.integration


def delta(before: dict, after: dict, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_known_flow_moves_every_counter_by_its_amount(tmp_path, nodes):
    ex = MdExchange(tmp_path, nodes)
    try:
        for node in ("matcher", "marketdata", "gateway"):
            ex.start(node)
        mm, tk = ex.client("mm"), ex.client("tk")
        wait_for(
            lambda: ex.metrics("marketdata").get("zex_marketdata_live") == 1, 10, "marketdata live"
        )
        before = {n: ex.metrics(n) for n in ("matcher", "gateway", "marketdata")}

        # 5 resting sells, 5 resting buys far away, then 3 IOC buys that each take one sell:
        rest = [mm.place("XYZ", "sell", 2, f"10.{i + 1:02d}") for i in range(5)]
        rest += [mm.place("XYZ", "buy", 1, f"9.{i + 50}") for i in range(5)]
        assert all(isinstance(a, m.Ack) for a in rest)
        takes = [tk.place("XYZ", "buy", 2, f"10.{i + 1:02d}", tif="ioc") for i in range(3)]
        assert all(isinstance(a, m.Ack) for a in takes)
        # one cancel of an order that is gone (a matcher reject, 500), one off-tick price
        # (a gateway reject, 202, never sequenced), one good cancel
        gone = mm.cancel("XYZ", rest[0].order_id)
        assert isinstance(gone, m.Reject) and gone.reason == 500
        off = mm.place("XYZ", "buy", 1, "9.001")
        assert isinstance(off, m.Reject) and off.reason == 202
        assert isinstance(mm.cancel("XYZ", rest[5].order_id), m.Cancelled)
        sequenced = 10 + 3 + 2  # the off-tick order never reached the matcher
        # every sequenced request got its first answer back through the gateway
        answered = sequenced

        wait_for(
            lambda: (
                delta(before["marketdata"], ex.metrics("marketdata"), "zex_marketdata_matcher_seq")
                == sequenced
            ),
            10,
            "marketdata caught up",
        )
        after = {n: ex.metrics(n) for n in ("matcher", "gateway", "marketdata")}
        mt, gw, md = before["matcher"], before["gateway"], before["marketdata"]
        am, ag, ad = after["matcher"], after["gateway"], after["marketdata"]
        assert delta(mt, am, "zex_matcher_commands_total") == sequenced
        assert delta(mt, am, "zex_matcher_seq") == sequenced
        assert delta(mt, am, "zex_matcher_orders_total") == 13
        assert delta(mt, am, "zex_matcher_trades_total") == 3
        assert delta(mt, am, 'zex_matcher_rejects_total{reason="500"}') == 1
        assert delta(mt, am, "zex_matcher_command_seconds_count") == sequenced
        assert delta(mt, am, 'zex_matcher_open_orders{symbol="XYZ"}') == 5 + 5 - 3 - 1
        assert delta(gw, ag, 'zex_gateway_rejects_total{reason="202"}') == 1
        assert delta(gw, ag, "zex_gateway_forwarded_total") >= sequenced  # plus the logons' queries
        assert delta(gw, ag, "zex_gateway_order_ack_seconds_count") == answered
        assert (
            ag['zex_gateway_order_ack_seconds_bucket{le="1.0"}']
            == ag["zex_gateway_order_ack_seconds_count"]
        )
        assert ag["zex_gateway_sessions"] == 2
        # marketdata: one publish delay per command that changed the book
        # the reject: none
        assert delta(md, ad, "zex_marketdata_publish_delay_seconds_count") == sequenced - 1
        assert ad["zex_marketdata_events_lost_total"] == 0
    finally:
        ex.close()
