"""Decimal strings at the edge, integer ticks and lots inside.

A price on the wire is a decimal string; inside zex it is an int number of
ticks. The conversion is exact (no float) and refuses what does not fit:

    >>> inst = Instrument("XYZ", tick="0.05", lot="1", min_price="0.05")
    >>> inst.price_to_ticks("101.25")
    2025
    >>> inst.price_to_ticks("101.27")
    Traceback (most recent call last):
    ...
    zex.protocol.errors.ProtocolError: price must be a multiple of tick 0.05 for XYZ, was 101.27
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Context, Decimal

from .errors import ProtocolError
from .reasons import Reason

_MAX_INT = 2**63 - 1
# Each instrument remembers what it formatted and parsed: a busy book repeats the same few
# hundred prices and sizes, and Decimal arithmetic is most of the cost of a report or an order
# at the gateway. A full cache starts over (cheaper than an LRU's bookkeeping on every hit).
FORMAT_CACHE_MAX = (
    50_000  # formatted prices, and apart quantities, per instrument; 10k..1M is reasonable
)
PARSE_CACHE_MAX = (
    20_000  # parsed price, and apart quantity, strings per instrument (valid ones only)
)
# Exact arithmetic for up to 18 + 18 digits each side: the default 28-digit
# context would round ticks * tick for a tick of many significant digits.
_EXACT = Context(prec=80)


# SPEC.md "Numbers": digits, optionally a point and more digits; no sign,
# exponent, blanks or separators, so every language parses it the same way.
_DECIMAL = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")


def _parse(text: str, what: str, reason: Reason) -> Decimal:
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        raise ProtocolError(
            reason, f"{what} must be a positive decimal string like '12.5', was {text!r}", what
        )
    return Decimal(text)


class _Memo(dict):
    """``memo[key]`` is ``fn(key)``, computed once; past ``cap`` entries it starts over."""

    __slots__ = ("fn", "cap")

    def __init__(self, fn, cap: int) -> None:
        super().__init__()
        self.fn = fn
        self.cap = cap

    def __missing__(self, key):
        value = self.fn(key)  # may raise (a bad string): then nothing is kept
        if len(self) >= self.cap:
            self.clear()
        self[key] = value
        return value


@dataclass(frozen=True)
class Instrument:
    """One listed instrument: its increments and limits.

    ``min_price`` and ``max_price`` (decimal strings) bound a limit price;
    ``max_qty`` (decimal string) bounds one order's quantity;
    ``reference_price`` ("" for none) centres the price collar until the
    instrument's first trade.

    The four conversions are the one place zex turns ticks and lots into
    decimal strings and back; each keeps a bounded cache (FORMAT_CACHE_MAX,
    PARSE_CACHE_MAX), shared by every thread that holds the instrument (a
    dict read or write is atomic, and a lost entry only costs a recompute).
    """

    symbol: str
    tick: str = "0.01"
    lot: str = "1"
    min_price: str = "0.01"
    max_price: str = "1000000"
    max_qty: str = "1000000"
    reference_price: str = ""
    tick_d: Decimal = field(init=False, repr=False, compare=False)
    lot_d: Decimal = field(init=False, repr=False, compare=False)
    min_ticks: int = field(init=False, repr=False, compare=False)
    max_ticks: int = field(init=False, repr=False, compare=False)
    max_lots: int = field(init=False, repr=False, compare=False)
    ref_ticks: int = field(init=False, repr=False, compare=False)  # 0: no reference price
    # The conversions as bounded caching mappings, for hot loops: ``inst.price_str[ticks]`` is
    # one C-level dict lookup when the value is known (a method call costs about as much again).
    price_str: _Memo = field(init=False, repr=False, compare=False)  # ticks -> canonical price
    qty_str: _Memo = field(init=False, repr=False, compare=False)  # lots -> canonical qty
    price_ticks: _Memo = field(init=False, repr=False, compare=False)  # price string -> ticks
    qty_lots: _Memo = field(init=False, repr=False, compare=False)  # qty string -> lots

    def __post_init__(self) -> None:
        try:
            self._derive()
        except ProtocolError as exc:  # a config value, not client input: say which instrument
            raise ValueError(f"{self.symbol}: {exc}") from None

    def _derive(self) -> None:
        set_ = object.__setattr__
        set_(self, "price_str", _Memo(self._format_price, FORMAT_CACHE_MAX))
        set_(self, "qty_str", _Memo(self._format_qty, FORMAT_CACHE_MAX))
        # A bad string raises in the parser, so only valid ones are ever kept.
        set_(self, "price_ticks", _Memo(self._price_to_ticks, PARSE_CACHE_MAX))
        set_(self, "qty_lots", _Memo(self._qty_to_lots, PARSE_CACHE_MAX))
        tick = _parse(self.tick, "tick", Reason.INVALID_VALUE)
        lot = _parse(self.lot, "lot", Reason.INVALID_VALUE)
        if tick <= 0 or lot <= 0:
            raise ValueError(
                f"{self.symbol}: tick and lot must be positive, were {self.tick}, {self.lot}"
            )
        set_(self, "tick_d", tick)
        set_(self, "lot_d", lot)
        lo = _parse(self.min_price, "min_price", Reason.INVALID_VALUE)
        hi = _parse(self.max_price, "max_price", Reason.INVALID_VALUE)
        mq = _parse(self.max_qty, "max_qty", Reason.INVALID_VALUE)
        if _EXACT.remainder(lo, tick) or _EXACT.remainder(hi, tick) or lo <= 0 or hi < lo:
            raise ValueError(
                f"{self.symbol}: price band [{self.min_price}, {self.max_price}] must be positive "
                f"multiples of tick {self.tick}, low <= high"
            )
        if _EXACT.remainder(mq, lot) or mq <= 0:
            raise ValueError(
                f"{self.symbol}: max_qty {self.max_qty} must be a positive multiple of lot {self.lot}"
            )
        set_(self, "min_ticks", int(_EXACT.divide(lo, tick)))
        set_(self, "max_ticks", int(_EXACT.divide(hi, tick)))
        set_(self, "max_lots", int(_EXACT.divide(mq, lot)))
        if self.max_ticks > _MAX_INT or self.max_lots > _MAX_INT:
            raise ValueError(f"{self.symbol}: max_price/tick and max_qty/lot must fit in 63 bits")
        ref = 0
        if self.reference_price:
            try:
                ref = self.price_to_ticks(self.reference_price)
            except ProtocolError as exc:
                raise ValueError(f"{self.symbol}: reference_price: {exc}") from None
        set_(self, "ref_ticks", ref)

    def price_to_ticks(self, text: str) -> int:
        """Convert a decimal price string to ticks, refusing off-tick or out-of-band prices."""
        try:
            return self.price_ticks[text]
        except TypeError:  # unhashable, so not a string: refused with the reason and field
            return self._price_to_ticks(text)

    def qty_to_lots(self, text: str) -> int:
        """Convert a decimal quantity string to lots, refusing zero, negative, off-lot or oversized."""
        try:
            return self.qty_lots[text]
        except TypeError:
            return self._qty_to_lots(text)

    def ticks_to_price(self, ticks: int) -> str:
        """Format ticks as the canonical decimal string (SPEC 3.5: no exponent, no trailing zeros)."""
        return self.price_str[ticks]

    def lots_to_qty(self, lots: int) -> str:
        """Format lots as the canonical decimal string; negative (a short position) gets a "-"."""
        return self.qty_str[lots]

    def _format_price(self, ticks: int) -> str:
        return _fmt(_EXACT.multiply(ticks, self.tick_d))

    def _format_qty(self, lots: int) -> str:
        return _fmt(_EXACT.multiply(lots, self.lot_d))

    def _price_to_ticks(self, text: str) -> int:
        value = _parse(text, "price", Reason.BAD_PRICE)
        if value <= 0:
            raise ProtocolError(Reason.BAD_PRICE, f"price must be positive, was {text}", "price")
        if value > self.max_ticks * self.tick_d:
            raise ProtocolError(
                Reason.PRICE_OUT_OF_BAND,
                f"price must be within [{self.min_price}, {self.max_price}] for {self.symbol}, was {text}",
                "price",
            )
        whole, rest = _EXACT.divmod(value, self.tick_d)
        if rest:
            raise ProtocolError(
                Reason.PRICE_OFF_TICK,
                f"price must be a multiple of tick {self.tick} for {self.symbol}, was {text}",
                "price",
            )
        ticks = int(whole)
        if not self.min_ticks <= ticks <= self.max_ticks:
            raise ProtocolError(
                Reason.PRICE_OUT_OF_BAND,
                f"price must be within [{self.min_price}, {self.max_price}] for {self.symbol}, was {text}",
                "price",
            )
        return ticks

    def _qty_to_lots(self, text: str) -> int:
        value = _parse(text, "qty", Reason.BAD_QTY)
        if value <= 0:
            raise ProtocolError(Reason.BAD_QTY, f"qty must be positive, was {text}", "qty")
        if value > self.max_lots * self.lot_d:
            raise ProtocolError(
                Reason.QTY_TOO_LARGE,
                f"qty must be at most {self.max_qty} for {self.symbol}, was {text}",
                "qty",
            )
        whole, rest = _EXACT.divmod(value, self.lot_d)
        if rest:
            raise ProtocolError(
                Reason.QTY_OFF_LOT,
                f"qty must be a multiple of lot {self.lot} for {self.symbol}, was {text}",
                "qty",
            )
        lots = int(whole)
        if lots > self.max_lots:
            raise ProtocolError(
                Reason.QTY_TOO_LARGE,
                f"qty must be at most {self.max_qty} for {self.symbol}, was {text}",
                "qty",
            )
        return lots


def _fmt(value: Decimal) -> str:
    return format(_EXACT.normalize(value), "f")


def _places(value: Decimal) -> int:
    """Digits after the point of a finite ``value`` once normalized (negative for 1E+2)."""
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # "n", "N" or "F": NaN or infinity
        raise ValueError(f"{value} is not a finite decimal")
    return -exponent


class Cash:
    """The one cash unit of an exchange, and each instrument's multiplier into it.

    A trade of ``q`` lots at ``p`` ticks moves ``p * q * mult[symbol]`` cash
    units. The unit is the smallest power of ten that makes every
    instrument's tick * lot a whole number of units, so cash is an exact int.

        >>> cash = Cash([Instrument("XYZ", tick="0.01"), Instrument("BTC", tick="0.5", lot="0.001", min_price="1")])
        >>> cash.unit, cash.mult
        (Decimal('0.0001'), {'XYZ': 100, 'BTC': 5})
        >>> cash.to_str(-12345)
        '-1.2345'
    """

    def __init__(self, instruments) -> None:
        products = {i.symbol: _EXACT.multiply(i.tick_d, i.lot_d) for i in instruments}
        places = max((_places(p) for p in products.values()), default=0)
        self.unit = Decimal(1).scaleb(-max(places, 0))
        self.mult = {s: int(_EXACT.divide(p, self.unit)) for s, p in products.items()}

    def to_str(self, units: int) -> str:
        return _fmt(_EXACT.multiply(units, self.unit))

    def parse(self, text: str, what: str) -> int:
        """A non-negative decimal amount of cash in units; ValueError names ``what``."""
        if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
            raise ValueError(f"{what} must be a decimal string like '1000000', was {text!r}")
        units, rest = _EXACT.divmod(Decimal(text), self.unit)
        if rest:
            raise ValueError(f"{what} must be a multiple of the cash unit {self.unit}, was {text}")
        return int(units)
