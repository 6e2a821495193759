"""Numbers the state can hold: no command may take an account past them (issue 14, defect 3).

The state is MessagePack: an int below -2^63 (or above 2^64 - 1) cannot be
encoded, and a journaled trade that put one there would crash every query,
digest and snapshot, and again after every restart (the journal replays into
the same state). So the matcher bounds every account's cash, bought and sold
lots and position by 2^62 - 1, counting what its open orders and the new one
could add at worst, and refuses (RISK_LIMIT) a command that could pass them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zex.nodes.matcher.builds import other_engine
from zex.nodes.matcher.engine import MAX_CASH, MAX_LOTS, MAX_TICKS, Engine
from zex.nodes.matcher.state import state_decoder
from zex.protocol.internal import (
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STP_NONE,
    NewOrderCmd,
    Rejected,
    ReplaceCmd,
    encoder,
)
from zex.protocol.reasons import Reason


def new(i, acct, side, price, qty, sym="XYZ", ord_type=LIMIT, tif=GTC):
    return NewOrderCmd(
        i, "gw", acct.encode(), acct, f"n{i}", sym, side, ord_type, tif, price, qty, False, STP_NONE
    )


def test_a_few_trades_at_the_top_of_the_range_are_refused_before_cash_passes_int64():
    """Before the fix: three trades of 2^62 - 2^31 cash units each took the buyer's cash
    below -2^63, and state_bytes() and digest() raised OverflowError from then on."""
    eng = Engine(["XYZ"])
    price, qty = 1 << 31, (1 << 31) - 1  # a notional just under the matcher's 2^62 - 1
    rejects = []
    for i in range(3):
        eng.process(new(2 * i, "s", SELL, price, qty))
        eng.process(new(2 * i + 1, "b", BUY, price, qty))
        rejects += [e for e in eng.take_events() if type(e) is Rejected]
        eng.state_bytes()
        eng.digest()
    assert rejects and all(r.reason == Reason.RISK_LIMIT for r in rejects), rejects
    assert "cash" in rejects[0].text
    for a in eng.accounts.values():
        assert -MAX_CASH <= a.cash <= MAX_CASH
    # and the journal's commands replay into a state that encodes, refusals and all
    again = Engine.from_state(state_decoder.decode(eng.state_bytes()))
    assert again.digest() == eng.digest()


def test_a_market_buy_without_protection_is_bounded_by_the_highest_ask():
    eng = Engine(["XYZ"])
    eng.process(new(1, "s", SELL, 1, MAX_LOTS))
    eng.process(new(2, "t", SELL, MAX_TICKS, 1))
    eng.process(new(3, "b", BUY, 0, MAX_LOTS, ord_type=MARKET, tif=IOC))
    (rej,) = eng.take_events()[2:]
    assert type(rej) is Rejected and rej.reason == Reason.RISK_LIMIT, rej
    eng.state_bytes()


def test_a_sell_is_bounded_at_the_best_bid_it_could_trade_at():
    eng = Engine(["XYZ"])
    for i in range(3):  # each a bid of ~2^62 cash units, from three accounts
        eng.process(new(i, f"b{i}", BUY, 1 << 31, (1 << 31) - 1))
    eng.process(new(9, "s", SELL, 1, 3 * ((1 << 31) - 1)))  # a low limit sweeps them all
    evs = eng.take_events()
    assert type(evs[-1]) is Rejected and evs[-1].reason == Reason.RISK_LIMIT, evs[-1]
    eng.state_bytes()


# ------------------------------------------------------------- properties
# Extreme prices, quantities and cash multipliers: every command either applies or is
# refused with a reason code, and the state always encodes.

EXTREME = st.sampled_from([1, 2, 3, 1 << 20, 1 << 31, 1 << 40, (1 << 61), MAX_TICKS - 1, MAX_TICKS])
MULTS = st.sampled_from([1, 100, 10_000, 1 << 20])
ACCOUNTS = ["a", "b", "c"]
SEEN: set = set()  # what the property test made happen (checked by the test after it)

orders = st.tuples(
    st.sampled_from(["new", "new", "new", "replace"]),
    st.sampled_from(ACCOUNTS),
    st.sampled_from([BUY, SELL]),
    st.sampled_from(
        [(LIMIT, GTC)] * 4 + [(LIMIT, IOC), (LIMIT, FOK), (MARKET, IOC), (MARKET, FOK)]
    ),
    st.one_of(EXTREME, st.integers(1, MAX_TICKS)),
    st.one_of(EXTREME, st.integers(1, MAX_LOTS), st.integers(1, 1 << 20)),
    st.integers(0, 50),
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(orders, min_size=1, max_size=40), MULTS)
def test_extreme_numbers_are_refused_with_a_reason_and_the_state_always_encodes(cmds, mult):
    """And the other build (builds.py: plain Python beside a compiled install), whose C ints
    meet these numbers first, gives the same bytes."""
    eng = Engine(["XYZ"], digest_every=7, cash_mult={"XYZ": mult})
    twin = other_engine()(["XYZ"], digest_every=7, cash_mult={"XYZ": mult})
    codes = {int(r) for r in Reason}
    for i, (kind, acct, side, (ord_type, tif), price, qty, pick) in enumerate(cmds):
        if kind == "replace":
            mine = sorted(eng.accounts[acct].orders) if acct in eng.accounts else []
            oid = mine[pick % len(mine)] if mine else pick
            cmd = ReplaceCmd(i, "gw", b"c", acct, f"r{i}", "XYZ", price, qty, oid)
        else:
            if ord_type == MARKET and pick % 2:
                price = 0  # no protection price
            cmd = NewOrderCmd(
                i,
                "gw",
                b"c",
                acct,
                f"n{i}",
                "XYZ",
                side,
                ord_type,
                tif,
                price,
                qty,
                False,
                STP_NONE,
            )
        eng.process(cmd)
        twin.process(cmd)
        events = eng.take_events()
        assert encoder.encode(twin.take_events()) == encoder.encode(events)
        for ev in events:
            if type(ev) is Rejected:
                assert ev.reason in codes and ev.text, ev
            SEEN.add(type(ev).__name__ if type(ev) is not Rejected else ev.reason)
        assert eng.state_bytes() == twin.state_bytes()
        assert eng.digest() == twin.digest()
        for a in eng.accounts.values():
            assert -MAX_CASH <= a.cash <= MAX_CASH, a.cash
            for h in a.holdings.values():
                assert -MAX_LOTS <= h.pos <= MAX_LOTS and 0 <= h.bought <= MAX_LOTS
                assert 0 <= h.sold <= MAX_LOTS


def test_the_extreme_streams_trade_and_meet_the_bounds():
    """The property test above means something only if its streams trade and hit the bounds."""
    if not SEEN:
        test_extreme_numbers_are_refused_with_a_reason_and_the_state_always_encodes()
    assert {"Trade", Reason.RISK_LIMIT, Reason.QTY_TOO_LARGE} <= SEEN, SEEN


def test_a_cash_multiplier_past_the_bounds_is_refused_when_listed():
    """Every order of such a symbol would pass the notional bound; and the accounts keep a
    symbol's multiplier in an int64 in the compiled build."""
    import pytest

    with pytest.raises(ValueError, match=r"XYZ: its cash multiplier must be 1\.\."):
        Engine(["XYZ"], cash_mult={"XYZ": MAX_CASH + 1})
