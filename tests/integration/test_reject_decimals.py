"""Rejects made by the matcher process reach the client in decimals, like the gateway's (SPEC 4.8).

The engine's own test (tests/matcher/test_reject_texts.py) walks every reason on an
engine given instruments; this one checks that the real matcher node gives them, and
that the audit replay (`zex replay`) builds its engine the same way, through the node's
config, so a price never reaches a client as ticks (XYZ has a tick of 0.01 here).
"""

from __future__ import annotations

import pytest

from zex.protocol import messages as m

pytestmark = pytest.mark.integration


def test_matcher_rejects_show_prices_and_quantities_as_decimals(md_exchange):
    md_exchange.start("matcher")
    md_exchange.start("gateway")
    mm, tk = md_exchange.client("mm"), md_exchange.client("tk")
    ask = mm.place("XYZ", "sell", 7, "10.05")
    assert isinstance(ask, m.Ack)

    crossing = tk.place("XYZ", "buy", 2, "10.07", post_only=True)
    assert isinstance(crossing, m.Reject)
    assert "10.07" in crossing.text and "1007" not in crossing.text, crossing.text

    part = tk.place("XYZ", "buy", 3, "10.05", tif="ioc")  # fills 3 of the 7
    assert isinstance(part, m.Ack)
    shrink = mm.replace("XYZ", ask.order_id, 3, "10.05")  # not above the filled 3
    assert isinstance(shrink, m.Reject)
    assert "3" in shrink.text and "1005" not in shrink.text, shrink.text
