"""Property tests: the engine against a simple model, its invariants, snapshots, determinism.

Streams mix 3 accounts and 2 symbols, prices in a narrow band (so orders
cross often), every order type, tif, STP mode and post_only, cancels and
replaces of live, dead, foreign and unknown orders, and repeated cl_ord_ids.
See harness.py for what is checked after every command.
"""

from __future__ import annotations

import os

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.state import state_decoder
from zex.protocol.internal import (
    BUY,
    CXL_STP,
    EXP_FOK,
    EXP_IOC,
    EXP_MARKET,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_NONE,
    CancelCmd,
    NewOrderCmd,
    ReplaceCmd,
    command_decoder,
    encoder,
)
from zex.protocol.reasons import Reason

from .harness import SYMBOLS, Driver, streams

# 300 examples each take about 5 s on 2 cores; set ZEX_PROPERTY_EXAMPLES=5000
# for a long hunt.
EXAMPLES = int(os.environ.get("ZEX_PROPERTY_EXAMPLES", "300"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPS
@given(streams)
def test_engine_matches_model_and_keeps_invariants(stream):
    d = Driver()
    for a in stream:
        d.step(a)


@PROPS
@given(streams, st.integers(0, 100), st.integers(0, 7))
def test_snapshot_restores_same_state_and_future(stream, split, digest_every):
    d = Driver(check_model=False)
    for a in stream:
        d.step(a)
    cmds = d.commands
    split = min(split, len(cmds))
    first = Engine(SYMBOLS, digest_every)
    for c in cmds[:split]:
        first.process(c)
    first.take_events()
    restored = Engine.from_state(state_decoder.decode(first.state_bytes()), (), digest_every)
    assert restored.digest() == first.digest()
    assert restored.state_bytes() == first.state_bytes()
    for c in cmds[split:]:
        first.process(c)
        restored.process(c)
        r1, r2 = list(first.reports), list(restored.reports)
        assert encoder.encode(restored.take_events()) == encoder.encode(first.take_events()), c
        assert encoder.encode(r2) == encoder.encode(r1), c
        assert restored.digest() == first.digest()


@PROPS
@given(streams)
def test_same_commands_same_bytes(stream):
    d = Driver(check_model=False)
    for a in stream:
        d.step(a)
    again = Engine(SYMBOLS)
    for c, want in zip(d.commands, d.encoded, strict=True):
        again.process(c)
        assert encoder.encode(again.take_events()) == want, c
    assert again.state_bytes() == d.engine.state_bytes()
    assert again.digest() == d.engine.digest()


# ------------------------------------------------------- worked examples
# Small fixed cases of the rules the model encodes, so a reader sees them
# without running hypothesis. Each runs through the Driver, so the engine is
# checked against the model and the invariants as well; ``d.last`` is the
# engine's events for the last command.


def new(
    acct,
    clid,
    side,
    price,
    qty,
    ord_type=LIMIT,
    tif=GTC,
    post_only=False,
    stp=STP_CANCEL_NEWEST,
    sym="XYZ",
):
    return NewOrderCmd(
        0,
        "gw",
        acct.encode(),
        acct,
        clid,
        sym,
        side,
        ord_type,
        tif,
        0 if ord_type == MARKET else price,
        qty,
        post_only,
        stp,
    )


def cancel(acct, clid, order_id, sym="XYZ"):
    return CancelCmd(0, "gw", acct.encode(), acct, clid, sym, order_id)


def replace(acct, clid, order_id, price, qty, sym="XYZ"):
    return ReplaceCmd(0, "gw", acct.encode(), acct, clid, sym, price, qty, order_id)


def run(*cmds):
    d = Driver()
    for c in cmds:
        d.apply(c)
    return d


def kinds(d):
    return [(e[0], e[1]) if e[0] in ("Accepted", "Cancelled", "Expired") else e[0] for e in d.last]


def ids(d, side, sym="XYZ"):
    return [o.order_id for o in d.engine.books[sym].orders_in_priority(side)]


TWO_ASKS = (new("a", "r1", SELL, 100, 3), new("b", "r2", SELL, 100, 3))  # ids 1 (alice), 2 (bob)


def test_stp_cancel_oldest_cancels_own_resting_and_goes_on():
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 3, stp=STP_CANCEL_OLDEST))
    assert kinds(d) == [("Accepted", 3), ("Cancelled", 1), "Trade"]
    assert d.last[1][-1] == CXL_STP and d.last[2][10] == 2  # traded with bob
    assert ids(d, SELL) == []


def test_stp_cancel_newest_cancels_the_taker():
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 3, stp=STP_CANCEL_NEWEST))
    assert kinds(d) == [("Accepted", 3), ("Cancelled", 3)]
    assert ids(d, SELL) == [1, 2]


def test_stp_cancel_newest_keeps_the_fills_before_it():
    d = run(
        new("b", "r0", SELL, 99, 2), *TWO_ASKS, new("a", "t", BUY, 100, 5, stp=STP_CANCEL_NEWEST)
    )
    assert kinds(d) == [("Accepted", 4), "Trade", ("Cancelled", 4)]
    assert d.last[2][7] == 3 and d.last[2][-1] == CXL_STP


def test_stp_cancel_both():
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 3, stp=STP_CANCEL_BOTH))
    assert kinds(d) == [("Accepted", 3), ("Cancelled", 1), ("Cancelled", 3)]
    assert ids(d, SELL) == [2]


def test_stp_none_trades_with_itself():
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 3, stp=STP_NONE))
    assert kinds(d) == [("Accepted", 3), "Trade"]
    assert d.last[1][10] == 1


def test_fok_counts_liquidity_as_execution_would():
    # cancel_oldest skips the own order: bob's 3 lots are not enough for 4, nothing happens
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 4, tif=FOK, stp=STP_CANCEL_OLDEST))
    assert d.last[1] == ("Expired", 3, "a", "t", "XYZ", BUY, 100, 4, EXP_FOK)
    assert ids(d, SELL) == [1, 2]
    # ...but are enough for 3, and the own order is cancelled on the way
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 3, tif=FOK, stp=STP_CANCEL_OLDEST))
    assert kinds(d) == [("Accepted", 3), ("Cancelled", 1), "Trade"]
    # cancel_newest meets its own order first, so it could not fill at all
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 1, tif=FOK, stp=STP_CANCEL_NEWEST))
    assert kinds(d) == [("Accepted", 3), ("Expired", 3)]
    # none: the own order counts
    d = run(*TWO_ASKS, new("a", "t", BUY, 100, 6, tif=FOK, stp=STP_NONE))
    assert kinds(d) == [("Accepted", 3), "Trade", "Trade"]


def test_ioc_and_market_remainders_expire():
    d = run(new("b", "r1", SELL, 100, 2), new("a", "t", BUY, 101, 5, tif=IOC))
    assert d.last[-1] == ("Expired", 2, "a", "t", "XYZ", BUY, 101, 3, EXP_IOC)
    d = run(new("b", "r1", SELL, 100, 2), new("a", "t", BUY, 0, 5, ord_type=MARKET, tif=IOC))
    assert d.last[-1] == ("Expired", 2, "a", "t", "XYZ", BUY, 0, 3, EXP_MARKET)


def test_market_fok_that_cannot_fill_expires_as_fok():
    """A FOK killed whole says fok, whether it was a limit or a market order."""
    d = run(new("b", "r1", SELL, 100, 2), new("a", "t", BUY, 0, 5, ord_type=MARKET, tif=FOK))
    assert d.last[-1] == ("Expired", 2, "a", "t", "XYZ", BUY, 0, 5, EXP_FOK)


def test_order_type_and_post_only_rules():
    d = run(new("b", "r1", SELL, 100, 2))
    for cmd, reason in [
        (new("a", "p1", BUY, 100, 1, post_only=True), Reason.POST_ONLY_WOULD_CROSS),
        (new("a", "p2", BUY, 99, 1, post_only=True, tif=IOC), Reason.INVALID_COMBINATION),
        (new("a", "m1", BUY, 0, 1, ord_type=MARKET, tif=GTC), Reason.INVALID_COMBINATION),
    ]:
        d.apply(cmd)
        assert d.last[0][0] == "Rejected" and d.last[0][-1] == reason, d.last
    d.apply(new("a", "p3", BUY, 99, 1, post_only=True))
    d.apply(replace("a", "p4", 2, 100, 1))
    assert d.last[0][-1] == Reason.POST_ONLY_WOULD_CROSS
    assert ids(d, BUY) == [2]


def test_replace_priority_rules():
    d = run(new("a", "o1", BUY, 99, 5), new("b", "o2", BUY, 99, 5))
    d.apply(replace("a", "r1", 1, 99, 4))  # less at the same price: keeps priority
    assert d.last[0][-2:] == (4, True) and ids(d, BUY) == [1, 2]
    d.apply(replace("a", "r2", 1, 99, 6))  # more: to the back
    assert d.last[0][-2:] == (6, False) and ids(d, BUY) == [2, 1]
    d.apply(new("c", "s1", SELL, 99, 2))  # fills 2 of bob's
    d.apply(replace("b", "r3", 2, 99, 2))  # qty <= filled
    assert d.last[0][-1] == Reason.INVALID_REPLACE
    d.apply(replace("b", "r4", 2, 98, 3))  # price change: to the back, leaves 1
    assert d.last[0][-3:] == (3, 1, False) and ids(d, BUY) == [1, 2]
    d.apply(new("c", "s2", SELL, 101, 1))
    d.apply(replace("a", "r5", 1, 101, 6))  # crosses: trades on arrival as a gtc limit
    assert kinds(d) == ["Replaced", "Trade"] and ids(d, BUY) == [1, 2]


def test_cancel_only_by_owner_in_its_symbol():
    d = run(new("a", "o1", BUY, 99, 5))
    for cmd in (cancel("b", "x1", 1), cancel("a", "x2", 1, sym="ABC"), cancel("a", "x3", 7)):
        d.apply(cmd)
        assert d.last == [
            ("Rejected", cmd.account, cmd.cl_ord_id, cmd.symbol, 2, Reason.UNKNOWN_ORDER)
        ]
    d.apply(cancel("a", "x4", 1))
    assert d.last == [("Cancelled", 1, "a", "o1", "XYZ", BUY, 99, 5, 1)]
    d.apply(cancel("a", "x5", 1))  # dead now
    assert d.last[0][-1] == Reason.UNKNOWN_ORDER


def test_resend_changes_nothing():
    d = run(new("a", "o1", BUY, 99, 5), cancel("a", "x1", 1))
    d.apply(new("a", "o1", SELL, 90, 5))  # resend of o1 (content differs): nothing
    d.apply(new("a", "x1", SELL, 90, 5))  # the cancel's cl_ord_id: nothing either
    d.apply(new("b", "o1", SELL, 90, 5))  # another account's o1 is its own
    assert kinds(d) == [("Accepted", 2)]


def test_trades_at_the_makers_price_in_priority_order():
    d = run(new("a", "o1", SELL, 97, 5), new("c", "o0", SELL, 96, 1), new("b", "o2", BUY, 105, 7))
    assert d.last[1:] == [
        ("Trade", 1, "XYZ", 96, 1, BUY, 3, "b", "o2", 6, 2, "c", "o0", 0),
        ("Trade", 2, "XYZ", 97, 5, BUY, 3, "b", "o2", 1, 1, "a", "o1", 0),
    ]
    assert ids(d, BUY) == [3] and d.engine.books["XYZ"].depth(BUY) == [(105, 1, 1)]


def test_a_float_cannot_reach_a_book():
    """The matcher decodes commands with int fields: 100.0 is refused, never rounded."""
    for price, qty in ((100.0, 5), (100, 5.0), (100.5, 5)):
        cmd = NewOrderCmd(0, "gw", b"a", "a", "f", "XYZ", BUY, LIMIT, GTC, price, qty)
        raw = encoder.encode(cmd)
        with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `float`"):
            command_decoder.decode(raw)
