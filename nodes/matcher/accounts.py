"""Accounts in the matcher: positions, cash, open orders, limits, report log.

All of it is part of the engine's journaled state, so it survives a restart
exactly and a replay rebuilds it. Quantities are lots per symbol; cash is an
int in the exchange's cash unit (see ``numbers.Cash``): a trade of ``q`` lots
at ``p`` ticks moves ``p * q * mult`` cash units, where ``mult`` is the
symbol's cash multiplier.

The books never touch an account: the settle step (settle.py) is the one
writer of positions, cash and exposure (what open orders could add), keeping
each up to date as orders rest, fill and leave, so each stateful risk check
is O(1):

    worst long  = position + open buy lots        <= max_position
    worst short = position - open sell lots       >= -max_position
    cash - open buy cash - this order's cash      >= -credit

and so are the bounds of what the state can hold (engine.MAX_CASH, MAX_LOTS),
which no command may pass: bid_cash and ask_cash count every open order as if
it filled at its price.
"""

from __future__ import annotations

from typing import Any

from zex.protocol.internal import KILL_OFF, Event


class Holding:
    """One account's numbers in one symbol: its position and its open orders' lots.

    It is what the book knows an order's owner by (Order.owner): one per account and
    symbol, so self-trade prevention compares owners by identity, and settling a fill
    updates plain fields instead of looking the account and symbol up in dicts.
    """

    __slots__ = ("acct", "ask_lots", "bid_lots", "bought", "mult", "pos", "sold", "symbol")

    def __init__(self, acct: Account, symbol: str, mult: int) -> None:
        self.acct = acct
        self.symbol = symbol
        self.mult = mult  # cash units per tick * lot in this symbol
        self.pos = 0  # net lots (negative: short)
        self.bought = 0  # lots bought today
        self.sold = 0
        self.bid_lots = 0  # lots of open buys
        self.ask_lots = 0  # lots of open sells

    def traded(self) -> bool:
        return bool(self.bought or self.sold)


class Account:
    __slots__ = (
        "ask_cash",
        "bid_cash",
        "cash",
        "checks",
        "credit",
        "holdings",
        "kill",
        "log",
        "max_open_orders",
        "max_position",
        "name",
        "orders",
        "origin",
        "reports",
    )

    def __init__(self, name: str, reports: list) -> None:
        self.name = name
        self.cash = 0
        self.holdings: dict[str, Holding] = {}  # symbol -> Holding, made by the first order
        self.orders: dict[int, Any] = {}  # order_id -> resting book.Order
        self.bid_cash = 0  # cash the open buys would spend, at their limit prices
        self.ask_cash = 0  # cash the open sells would bring, at their limit prices
        self.kill = KILL_OFF
        self.max_open_orders: int | None = None
        self.credit: int | None = None
        self.max_position: dict[str, int] = {}
        self.checks = False  # any limit or a kill switch: the hot path skips risk when False
        self.origin: tuple[str, bytes] = ("", b"")  # where the account's last command came from
        # Every execution report of the account, in order; rseq is the index + 1.
        self.log: list[tuple[int, Event]] = []
        self.reports = reports  # the engine's outgoing list (origin, account, role, rseq, event)

    def holding(self, symbol: str, mult: int) -> Holding:
        """The account's Holding in ``symbol`` (cash multiplier ``mult``), made on first use."""
        h = self.holdings.get(symbol)
        if h is None:
            h = self.holdings[symbol] = Holding(self, symbol, mult)
        return h

    def traded(self) -> list[Holding]:
        """The holdings in symbols the account has traded, by symbol."""
        return [h for _, h in sorted(self.holdings.items()) if h.traded()]

    def report(self, origin: tuple[str, bytes], role: int, ev: Event) -> None:
        """Give ``ev`` the account's next rseq and queue it for ``origin``."""
        log = self.log
        log.append((role, ev))
        self.reports.append((origin, self.name, role, len(log), ev))

    def set_limits(
        self, max_open_orders: int | None, credit: int | None, max_position: dict[str, int]
    ) -> None:
        self.max_open_orders = max_open_orders
        self.credit = credit
        self.max_position = dict(max_position)
        self._refresh()

    def set_kill(self, mode: int) -> None:
        self.kill = mode
        self._refresh()

    def _refresh(self) -> None:
        self.checks = bool(
            self.kill != KILL_OFF
            or self.max_open_orders is not None
            or self.credit is not None
            or self.max_position
        )
