"""Stateless pre-trade checks, run by the gateway workers before anything is sequenced.

Stateless here means: no position, open order or cash is needed, so any
worker of any gateway can decide alone. What needs account state (kill
switch, open orders, position, credit) is checked by the matcher.

    rules = AccountRules.build(account_cfg, instruments, cash)
    refusal = rules.check(inst, side, ticks, lots, reference_ticks)   # None or (Reason, text)

Every refusal names the limit and the value, in the instrument's units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict

from zex.protocol.internal import BUY
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

from ..runtime.config import AccountConfig

BP = 10_000  # basis points in one


class LogonFields(TypedDict):
    """An account's options and limits as logon_ack states them (protocol.messages.LogonAck)."""

    operator: bool
    cancel_on_disconnect: bool
    rate: str | None
    burst: str | None
    max_order_qty: str | None
    max_notional: str | None
    collar_pct: str | None


@dataclass
class AccountRules:
    """One account's credential, session options and stateless limits, in engine units."""

    id: str
    credential: str
    operator: bool
    cancel_on_disconnect: bool
    rate: float  # messages/s per session; 0: no limit
    burst: float
    max_lots: dict[str, int] = field(default_factory=dict)  # symbol -> lots per order
    max_notional: int | None = None  # cash units per order
    collar_bp: int | None = None  # basis points around the reference price
    cash: Cash | None = None
    max_order_qty: str = ""  # as configured ("": none), for logon_ack

    def logon_fields(self) -> LogonFields:
        """The account's options and limits as logon_ack states them (SPEC 4.2): decimals, None for none."""
        return {
            "operator": self.operator,
            "cancel_on_disconnect": self.cancel_on_disconnect,
            "rate": _decimal(self.rate) if self.rate > 0 else None,
            "burst": _decimal(self.burst) if self.rate > 0 else None,
            "max_order_qty": _decimal(self.max_order_qty) if self.max_order_qty else None,
            "max_notional": (
                self.cash.to_str(self.max_notional)
                if self.max_notional is not None and self.cash is not None
                else None
            ),
            "collar_pct": _decimal(Decimal(self.collar_bp) / 100)
            if self.collar_bp is not None
            else None,
        }

    @classmethod
    def build(
        cls, a: AccountConfig, instruments: tuple[Instrument, ...], cash: Cash
    ) -> AccountRules:
        max_lots = {}
        if a.max_order_qty:
            q = Decimal(a.max_order_qty)
            max_lots = {i.symbol: int(q / i.lot_d) for i in instruments}
        return cls(
            id=a.id,
            credential=a.credential,
            operator=a.operator,
            cancel_on_disconnect=a.cancel_on_disconnect,
            rate=a.rate,
            burst=float(a.burst or a.rate),
            max_lots=max_lots,
            max_notional=cash.parse(a.max_notional, f"accounts.{a.id}.max_notional")
            if a.max_notional
            else None,
            collar_bp=int(Decimal(a.collar_pct) * 100) if a.collar_pct else None,
            cash=cash,
            max_order_qty=a.max_order_qty,
        )

    def band(self, inst: Instrument, ref: int) -> tuple[int, int]:
        """The ticks a price may take: the collar around ``ref`` within the instrument's band."""
        lo, hi = inst.min_ticks, inst.max_ticks
        if self.collar_bp is not None and ref > 0:
            lo = max(lo, -(-ref * (BP - self.collar_bp) // BP))  # ceil: inward
            hi = min(hi, ref * (BP + self.collar_bp) // BP)
        return lo, hi

    def protection(self, inst: Instrument, side: int, ref: int) -> int:
        """The worst price a market order of this account may trade at."""
        lo, hi = self.band(inst, ref)
        return hi if side == BUY else lo

    def check(
        self, inst: Instrument, side: int, ticks: int, lots: int, ref: int, mult: int, market: bool
    ) -> tuple[Reason, str] | None:
        limit = self.max_lots.get(inst.symbol)
        if limit is not None and lots > limit:
            return (
                Reason.MAX_ORDER_QTY,
                f"max_order_qty {inst.lots_to_qty(limit)} for {inst.symbol}, order qty {inst.lots_to_qty(lots)}",
            )
        if not market and self.collar_bp is not None and ref > 0:
            lo, hi = self.band(inst, ref)
            if not lo <= ticks <= hi:
                return (
                    Reason.PRICE_COLLAR,
                    f"price {inst.ticks_to_price(ticks)} is outside the collar "
                    f"[{inst.ticks_to_price(lo)}, {inst.ticks_to_price(hi)}] "
                    f"({Decimal(self.collar_bp) / 100}% around {inst.ticks_to_price(ref)}) for {inst.symbol}",
                )
        if self.max_notional is not None and ticks * lots * mult > self.max_notional:
            fmt = self.cash.to_str if self.cash is not None else str
            return (
                Reason.MAX_NOTIONAL,
                f"max_notional {fmt(self.max_notional)}, order notional {fmt(ticks * lots * mult)}"
                + (" at its protection price" if market else ""),
            )
        return None


def _decimal(value: float | str | Decimal) -> str:
    """The canonical decimal string (SPEC 3.5) of a config number: 20.0 -> "20", "0.50" -> "0.5"."""
    d = Decimal(repr(value) if isinstance(value, float) else value)
    return format(d.normalize(), "f") if d else "0"


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` banked; one message takes one token."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic() if now is None else now  # the clock ``take`` will be given

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True
