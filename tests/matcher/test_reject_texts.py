"""The matcher's reject texts show decimals, as SPEC 3.5 and 4.8 say (issue 14, defect 4).

Every reason the matcher itself refuses with, on instruments whose tick and lot are
not 1, so that a price in ticks, a quantity in lots or cash in cash units would show
as a different number from the decimal the client wrote.
"""

from __future__ import annotations

import re

import pytest

from zex.nodes.matcher.engine import MAX_LOTS, MAX_TICKS, Engine
from zex.protocol.internal import (
    BUY,
    FOK,
    GTC,
    IOC,
    KILL_BLOCK,
    KILL_REDUCE_ONLY,
    LIMIT,
    MARKET,
    SELL,
    STP_NONE,
    CancelCmd,
    KillSwitchCmd,
    LimitsCmd,
    NewOrderCmd,
    Rejected,
    ReplaceCmd,
)
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

XYZ = Instrument("XYZ", tick="0.01", lot="1", min_price="0.01")
BTC = Instrument(
    "BTC-USD", tick="0.5", lot="0.001", min_price="0.5", max_price="1000000", max_qty="100"
)
CASH = Cash([XYZ, BTC])  # unit 0.0001: XYZ 100 units per tick * lot, BTC-USD 5


def fresh() -> Engine:
    eng = Engine([XYZ, BTC])
    assert eng.cash_mult == {"XYZ": 100, "BTC-USD": 5}
    return eng


def new(acct, clid, side, price, qty, sym="BTC-USD", ord_type=LIMIT, tif=GTC, post_only=False):
    return NewOrderCmd(
        0, "gw", b"c", acct, clid, sym, side, ord_type, tif, price, qty, post_only, STP_NONE
    )


def rejected(eng: Engine, cmd) -> Rejected:
    eng.process(cmd)
    evs = [e for e in eng.take_events() if type(e) is Rejected]
    assert len(evs) == 1, evs
    return evs[0]


def limits(acct, max_open=None, credit=None, max_position=None):
    return LimitsCmd(0, acct, max_open, credit, max_position or {})


# (setup commands, the refused command, its reason, decimals the text must show,
#  raw numbers it must not show)
CASES = {
    "bad qty": ([], new("a", "q", BUY, 203, -2), Reason.BAD_QTY, ["-0.002"], ["-2"]),
    "qty too large": (
        [],
        new("a", "q", BUY, 203, MAX_LOTS + 1),
        Reason.QTY_TOO_LARGE,
        ["4611686018427387.904"],
        [str(MAX_LOTS + 1)],
    ),
    "bad price": ([], new("a", "q", BUY, -203, 2), Reason.BAD_PRICE, ["-101.5"], ["-203"]),
    "price out of band": (
        [],
        new("a", "q", BUY, MAX_TICKS + 1, 2),
        Reason.PRICE_OUT_OF_BAND,
        ["2305843009213693952"],
        [str(MAX_TICKS + 1)],
    ),
    "protection price out of band": (
        [],
        new("a", "q", BUY, MAX_TICKS + 1, 2, ord_type=MARKET, tif=IOC),
        Reason.PRICE_OUT_OF_BAND,
        ["2305843009213693952"],
        [str(MAX_TICKS + 1)],
    ),
    "notional": (
        [],
        new("a", "q", BUY, 1 << 40, 1 << 30),
        Reason.QTY_TOO_LARGE,
        [CASH.to_str(5 << 70), CASH.to_str((1 << 62) - 1)],
        [str(5 << 70)],
    ),
    "post_only would cross": (
        [new("b", "s", SELL, 203, 2)],
        new("a", "q", BUY, 203, 2, post_only=True),
        Reason.POST_ONLY_WOULD_CROSS,
        ["101.5"],
        ["203"],
    ),
    "the state's bounds": (
        [new("b", "s", SELL, 1 << 40, 1 << 19)],
        new("b", "s2", SELL, 1 << 40, 1 << 19),
        Reason.RISK_LIMIT,
        [CASH.to_str(10 << 59), CASH.to_str((1 << 62) - 1)],
        [str(10 << 59)],
    ),
    "reduce-only": (
        [
            new("a", "b1", BUY, 203, 2),
            new("b", "s1", SELL, 203, 2),
            KillSwitchCmd(0, "gw", b"ops", "ops", "k", "a", KILL_REDUCE_ONLY),
        ],
        new("a", "q", BUY, 203, 3),
        Reason.KILL_SWITCH,
        ["0.002", "0.005"],
        ["2 ", "5"],
    ),
    "max position": (
        [limits("a", max_position={"BTC-USD": 4}), new("a", "b1", BUY, 203, 3)],
        new("a", "q", BUY, 203, 2),
        Reason.MAX_POSITION,
        ["0.004", "0.005"],
        ["4 ", "5"],
    ),
    "credit": (
        [limits("a", credit=10_000_000)],  # 1000 in cash units of 0.0001
        new("a", "q", BUY, 2_000, 1_001),
        Reason.CREDIT_LIMIT,
        ["credit 1000:", "needs 1001,", "1000 left"],
        ["10000000", "10000 "],
    ),
    "invalid replace": (
        [new("a", "b1", BUY, 203, 3), new("b", "s1", SELL, 203, 2)],
        ReplaceCmd(0, "gw", b"c", "a", "q", "BTC-USD", 203, 2, 1),
        Reason.INVALID_REPLACE,
        ["filled 0.002, was 0.002"],
        ["filled 2"],
    ),
    "replaced post_only would cross": (
        [new("a", "b1", BUY, 200, 3, post_only=True), new("b", "s1", SELL, 203, 2)],
        ReplaceCmd(0, "gw", b"c", "a", "q", "BTC-USD", 203, 3, 1),
        Reason.POST_ONLY_WOULD_CROSS,
        ["101.5"],
        ["203"],
    ),
    "replace price out of band": (
        [new("a", "b1", BUY, 200, 3)],
        ReplaceCmd(0, "gw", b"c", "a", "q", "BTC-USD", MAX_TICKS + 1, 3, 1),
        Reason.PRICE_OUT_OF_BAND,
        ["2305843009213693952"],
        [str(MAX_TICKS + 1)],
    ),
    "replace qty too large": (
        [new("a", "b1", BUY, 200, 3)],
        ReplaceCmd(0, "gw", b"c", "a", "q", "BTC-USD", 200, MAX_LOTS + 1, 1),
        Reason.QTY_TOO_LARGE,
        ["4611686018427387.904"],
        [str(MAX_LOTS + 1)],
    ),
    "xyz post_only": (
        [new("b", "s", SELL, 10140, 2, sym="XYZ")],
        new("a", "q", BUY, 10140, 2, sym="XYZ", post_only=True),
        Reason.POST_ONLY_WOULD_CROSS,
        ["101.4"],
        ["10140"],
    ),
}
# reasons whose texts carry no number of the instrument: checked to be refused all the same
PLAIN = {
    "unknown symbol": ([], new("a", "q", BUY, 203, 2, sym="NOPE"), Reason.UNKNOWN_SYMBOL),
    "market gtc": ([], new("a", "q", BUY, 0, 2, ord_type=MARKET), Reason.INVALID_COMBINATION),
    "post_only ioc": (
        [],
        new("a", "q", BUY, 203, 2, tif=IOC, post_only=True),
        Reason.INVALID_COMBINATION,
    ),
    "blocked": (
        [KillSwitchCmd(0, "gw", b"ops", "ops", "k", "a", KILL_BLOCK)],
        new("a", "q", BUY, 203, 2, tif=FOK),
        Reason.KILL_SWITCH,
    ),
    "max open orders": (
        [limits("a", max_open=1), new("a", "b1", BUY, 200, 3)],
        new("a", "q", BUY, 200, 3),
        Reason.MAX_OPEN_ORDERS,
    ),
    "unknown order": ([], CancelCmd(0, "gw", b"c", "a", "q", "BTC-USD", 77), Reason.UNKNOWN_ORDER),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reject_texts_show_decimals_not_ticks_lots_or_cash_units(case):
    setup, cmd, reason, decimals, raw = CASES[case]
    eng = fresh()
    for c in setup:
        eng.process(c)
        eng.take_events()
    rej = rejected(eng, cmd)
    assert rej.reason == reason, rej
    for d in decimals:
        assert d in rej.text, (d, rej.text)
    for r in raw:
        assert not re.search(rf"(?<![\d.]){re.escape(r)}(?![\d.])", rej.text), (r, rej.text)


@pytest.mark.parametrize("case", sorted(PLAIN))
def test_every_other_matcher_reason_is_refused_with_a_text(case):
    setup, cmd, reason = PLAIN[case]
    eng = fresh()
    for c in setup:
        eng.process(c)
        eng.take_events()
    rej = rejected(eng, cmd)
    assert rej.reason == reason and rej.text, rej


def test_every_reason_the_engine_can_give_is_walked():
    """A new reason in engine.py must join CASES or PLAIN."""
    from pathlib import Path

    from zex.nodes.matcher import engine

    source = (Path(engine.__file__).parent / "engine.py").read_text()  # the compiled build's too
    used = set(re.findall(r"Reason\.([A-Z_]+)", source))
    walked = {CASES[c][2].name for c in CASES} | {PLAIN[c][2].name for c in PLAIN}
    assert used <= walked, used - walked


def test_bare_symbol_names_keep_ticks_and_units_as_they_are():
    """Engine(["XYZ"]) (tests and tools): tick, lot and cash unit 1, so the numbers print as is."""
    eng = Engine(["XYZ"])
    rej = rejected(eng, new("a", "q", BUY, -5, 2, sym="XYZ"))
    assert rej.text == "price must be positive, was -5"
