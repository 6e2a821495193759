"""Decimal strings at the edge, integer ticks and lots inside (SPEC.md section 3).

The expected answers come from an independent model written from SPEC.md
with ``fractions.Fraction`` and plain string checks, not from the code under
test.
"""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zex.protocol.errors import ProtocolError
from zex.protocol.numbers import Instrument
from zex.protocol.reasons import Reason

INSTRUMENTS = [
    Instrument("XYZ", tick="0.01", lot="1", min_price="0.01", max_price="10000", max_qty="100000"),
    Instrument("ABC", tick="0.05", lot="1", min_price="1", max_price="1000", max_qty="500"),
    Instrument(
        "BTC-USD", tick="0.5", lot="0.001", min_price="1", max_price="1000000", max_qty="100"
    ),
    Instrument("QTR", tick="0.25", lot="5", min_price="0.25", max_price="250", max_qty="1000"),
    Instrument("BIG", tick="5", lot="100", min_price="10", max_price="999995", max_qty="1000000"),
    Instrument(
        "FINE", tick="0.000001", lot="0.0001", min_price="0.000001", max_price="1000", max_qty="50"
    ),
]
BY_SYMBOL = {i.symbol: i for i in INSTRUMENTS}
CANONICAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")


# ------------------------------------------------- the model, from SPEC.md 3


def grammatical(text: object) -> bool:
    """SPEC.md 3.1, written without a regular expression."""
    if not isinstance(text, str) or len(text) > 37:
        return False
    whole, point, frac = text.partition(".")
    ascii_digits = set("0123456789")
    if not (1 <= len(whole) <= 18 and set(whole) <= ascii_digits):
        return False
    if point and not (1 <= len(frac) <= 18 and set(frac) <= ascii_digits):
        return False
    return True


def expected_price(inst: Instrument, text: str) -> int | Reason:
    """SPEC.md 3.3: the ticks, or the reason of the first failed check."""
    if not grammatical(text):
        return Reason.BAD_PRICE
    value, tick = Fraction(text), Fraction(inst.tick)
    if value == 0:
        return Reason.BAD_PRICE
    if value > Fraction(inst.max_price):
        return Reason.PRICE_OUT_OF_BAND
    ticks = value / tick
    if ticks.denominator != 1:
        return Reason.PRICE_OFF_TICK
    if value < Fraction(inst.min_price):
        return Reason.PRICE_OUT_OF_BAND
    return int(ticks)


def expected_qty(inst: Instrument, text: str) -> int | Reason:
    """SPEC.md 3.4."""
    if not grammatical(text):
        return Reason.BAD_QTY
    value = Fraction(text)
    if value == 0:
        return Reason.BAD_QTY
    if value > Fraction(inst.max_qty):
        return Reason.QTY_TOO_LARGE
    lots = value / Fraction(inst.lot)
    if lots.denominator != 1:
        return Reason.QTY_OFF_LOT
    return int(lots)


def outcome(fn, text):
    try:
        return fn(text)
    except ProtocolError as err:
        return err.reason


def fmt(value: Fraction, zeros: int = 0, lead: int = 0) -> str:
    """Write a non-negative decimal fraction in plain digits, with extra leading/trailing zeros."""
    scale = 0
    while (value * 10**scale).denominator != 1:
        scale += 1
    n = int(value * 10**scale)
    digits = str(n).rjust(scale + 1, "0")
    whole, frac = digits[: len(digits) - scale] or "0", digits[len(digits) - scale :]
    frac += "0" * zeros
    return "0" * lead + whole + ("." + frac if frac else "")


# ----------------------------------------------------- ticks <-> string


instrument = st.sampled_from(INSTRUMENTS)


@settings(max_examples=200, deadline=None)
@given(inst=instrument, data=st.data())
def test_ticks_round_trip_exactly(inst, data):
    ticks = data.draw(st.integers(inst.min_ticks, inst.max_ticks), label="ticks")
    text = inst.ticks_to_price(ticks)
    assert CANONICAL.fullmatch(text), text  # no exponent, no trailing zeros or point
    assert grammatical(text)
    assert Fraction(text) == ticks * Fraction(inst.tick)
    assert inst.price_to_ticks(text) == ticks


@settings(max_examples=200, deadline=None)
@given(inst=instrument, data=st.data())
def test_lots_round_trip_exactly(inst, data):
    lots = data.draw(st.integers(1, inst.max_lots), label="lots")
    text = inst.lots_to_qty(lots)
    assert CANONICAL.fullmatch(text), text
    assert Fraction(text) == lots * Fraction(inst.lot)
    assert inst.qty_to_lots(text) == lots


@settings(max_examples=200, deadline=None)
@given(inst=instrument, data=st.data())
def test_any_spelling_of_an_on_tick_price_gives_its_ticks(inst, data):
    ticks = data.draw(st.integers(inst.min_ticks, inst.max_ticks), label="ticks")
    zeros = data.draw(st.integers(0, 4), label="trailing zeros")
    lead = data.draw(st.integers(0, 3), label="leading zeros")
    text = fmt(ticks * Fraction(inst.tick), zeros, lead)
    if not grammatical(text):
        return  # padding pushed a part past 18 digits
    assert inst.price_to_ticks(text) == ticks


def test_canonical_form_examples():
    xyz, btc = BY_SYMBOL["XYZ"], BY_SYMBOL["BTC-USD"]
    assert xyz.price_to_ticks("101.50") == 10150
    assert xyz.ticks_to_price(10150) == "101.5"
    assert xyz.ticks_to_price(10000) == "100"
    assert xyz.ticks_to_price(1) == "0.01"
    assert xyz.ticks_to_price(0) == "0"
    assert btc.lots_to_qty(1500) == "1.5"
    assert btc.lots_to_qty(1) == "0.001"
    assert btc.qty_to_lots("0.0010") == 1


# --------------------------------------------------- the model, at random

decimal_like = st.one_of(
    st.from_regex(r"[0-9]{1,7}(\.[0-9]{1,7})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,18}(\.[0-9]{1,18})?", fullmatch=True),
    st.from_regex(r"-?[0-9 ._,eE+-]{0,8}", fullmatch=True),
    st.sampled_from(["NaN", "Infinity", "inf", "0x10", "1e3", "+1", "-0", "٣", "１", "1.", ".5"]),
    st.text(max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(inst=instrument, text=decimal_like)
def test_price_checks_follow_the_spec_order(inst, text):
    assert outcome(inst.price_to_ticks, text) == expected_price(inst, text)


@settings(max_examples=200, deadline=None)
@given(inst=instrument, text=decimal_like)
def test_qty_checks_follow_the_spec_order(inst, text):
    assert outcome(inst.qty_to_lots, text) == expected_qty(inst, text)


# ---------------------------------------------------------- the refusals


def refusal(fn, text) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        fn(text)
    return info.value


@pytest.mark.parametrize("text", ["101.27", "101.251", "0.07", "999.99"])
def test_off_tick_price(text):
    abc = BY_SYMBOL["ABC"]
    err = refusal(abc.price_to_ticks, text)
    assert err.reason is Reason.PRICE_OFF_TICK
    assert err.field == "price"
    for word in ("price", "tick 0.05", "ABC", text):
        assert word in err.text


@pytest.mark.parametrize("text", ["0.95", "0.05", "1000.05", "1001", "999999999999999999.5"])
def test_price_out_of_band(text):
    abc = BY_SYMBOL["ABC"]
    err = refusal(abc.price_to_ticks, text)
    assert err.reason is Reason.PRICE_OUT_OF_BAND
    assert err.field == "price"
    assert "[1, 1000]" in err.text and "ABC" in err.text


def test_band_edges_are_inside():
    abc = BY_SYMBOL["ABC"]
    assert abc.price_to_ticks("1") == 20
    assert abc.price_to_ticks("1000") == 20000


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0.00",
        "-1",
        "-0.05",
        "+1",
        "1e3",
        "1E3",
        " 1",
        "1 ",
        "1_000",
        "1,000",
        "NaN",
        "nan",
        "Infinity",
        "",
        ".5",
        "1.",
        "1..0",
        "0x10",
        "١٢",
        "1" * 19,
        "1." + "0" * 19,
    ],
)
def test_bad_price_strings(text):
    err = refusal(BY_SYMBOL["XYZ"].price_to_ticks, text)
    assert err.reason is Reason.BAD_PRICE
    assert err.field == "price" and "price" in err.text


@pytest.mark.parametrize("value", [5, 1.5, None, b"1"])
def test_non_string_price_is_bad_price(value):
    assert refusal(BY_SYMBOL["XYZ"].price_to_ticks, value).reason is Reason.BAD_PRICE


@pytest.mark.parametrize(
    "text", ["0", "0.0", "-1", "-5", "1e2", " 5", "5 ", "1_000", "NaN", "inf", "", "1.", "one"]
)
def test_bad_qty_strings(text):
    err = refusal(BY_SYMBOL["XYZ"].qty_to_lots, text)
    assert err.reason is Reason.BAD_QTY
    assert err.field == "qty" and "qty" in err.text


@pytest.mark.parametrize(
    "symbol,text,lot", [("BTC-USD", "0.0015", "0.001"), ("XYZ", "1.5", "1"), ("QTR", "12", "5")]
)
def test_off_lot_qty(symbol, text, lot):
    err = refusal(BY_SYMBOL[symbol].qty_to_lots, text)
    assert err.reason is Reason.QTY_OFF_LOT
    assert err.field == "qty"
    assert f"lot {lot}" in err.text and symbol in err.text and text in err.text


@pytest.mark.parametrize(
    "symbol,text", [("BTC-USD", "100.001"), ("BTC-USD", "101"), ("ABC", "501"), ("ABC", "500.5")]
)
def test_qty_too_large(symbol, text):
    inst = BY_SYMBOL[symbol]
    err = refusal(inst.qty_to_lots, text)
    assert err.reason is Reason.QTY_TOO_LARGE
    assert err.field == "qty" and inst.max_qty in err.text and symbol in err.text


def test_max_qty_itself_is_allowed():
    assert BY_SYMBOL["BTC-USD"].qty_to_lots("100") == 100_000
    assert BY_SYMBOL["ABC"].qty_to_lots("500") == 500


# ------------------------------------------------------ instrument config


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"tick": "0"}, ["tick"]),
        ({"lot": "0"}, ["lot"]),
        ({"tick": "0.03", "min_price": "0.01"}, ["tick 0.03"]),  # band not a multiple of tick
        ({"tick": "0.05", "max_price": "1000.01"}, ["tick 0.05"]),
        ({"min_price": "0"}, ["price band"]),
        ({"min_price": "10", "max_price": "5"}, ["price band"]),
        ({"max_qty": "1.5"}, ["max_qty", "lot 1"]),  # max_qty not a multiple of lot
        ({"max_qty": "0"}, ["max_qty"]),
    ],
)
def test_bad_instrument_config_names_the_symbol(kwargs, words):
    with pytest.raises(ValueError) as info:
        Instrument("BADSYM", **kwargs)
    msg = str(info.value)
    assert "BADSYM" in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "field,value",
    [
        ("tick", "abc"),
        ("tick", 0.01),
        ("tick", "-0.01"),
        ("lot", "1e-3"),
        ("max_price", " 100"),
        ("max_qty", None),
    ],
)
def test_unparsable_config_value_is_a_value_error_naming_symbol_and_field(field, value):
    # config.load turns ValueError into a ConfigError; a TOML float (tick = 0.01) must land there
    with pytest.raises(ValueError) as info:
        Instrument("BADSYM", **{field: value})
    assert not isinstance(info.value, ProtocolError)
    assert "BADSYM" in str(info.value) and field in str(info.value)


def test_round_trip_with_a_tick_of_many_digits():
    tick = Fraction("0.123456789012345678")
    n = 10**11 + 1
    hi = fmt(tick * n)
    inst = Instrument(
        "P", tick="0.123456789012345678", min_price="0.123456789012345678", max_price=hi
    )
    assert inst.max_ticks == n
    assert inst.price_to_ticks(inst.ticks_to_price(n)) == n


def test_the_instruments_caches_are_bounded_and_keep_only_valid_strings():
    """Formatting and parsing are cached on the instrument (one place, every node); the caches
    start over when full, and a refused string is never remembered."""
    import zex.protocol.numbers as numbers

    inst = Instrument(
        "CAP", tick="0.5", lot="0.001", min_price="0.5", max_price="100000", max_qty="1000"
    )
    inst.price_str.cap = inst.qty_lots.cap = 100
    for t in range(1, 1000):
        assert inst.ticks_to_price(t) == numbers._fmt(numbers._EXACT.multiply(t, inst.tick_d))
        assert len(inst.price_str) <= 100
    assert inst.ticks_to_price(203) == "101.5" and inst.lots_to_qty(-1500) == "-1.5"
    for q in range(1, 500):
        assert inst.qty_to_lots(f"0.{q:03d}") == q
        assert len(inst.qty_lots) <= 100
    with pytest.raises(ProtocolError):
        inst.qty_to_lots("0.0005")
    assert "0.0005" not in inst.qty_lots
    with pytest.raises(ProtocolError):
        inst.price_to_ticks(["not", "hashable"])  # not a string: the reason, never a TypeError
