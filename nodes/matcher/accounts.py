"""Accounts in the matcher: positions, cash, open orders, limits, report log.

All of it is part of the engine's journaled state, so it survives a restart
exactly and a replay rebuilds it. Quantities are lots per symbol; cash is an
int in the exchange's cash unit (see ``numbers.cash_units``): a trade of
``q`` lots at ``p`` ticks moves ``p * q * mult`` cash units, where ``mult``
is the symbol's cash multiplier.

Exposure (what open orders could add) is kept up to date by the book as
orders rest, fill and leave, so each stateful risk check is O(1):

    worst long  = position + open buy lots        <= max_position
    worst short = position - open sell lots       >= -max_position
    cash - open buy cash - this order's cash      >= -credit
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zex.protocol.internal import KILL_OFF

if TYPE_CHECKING:
    from .book import Order


class Account:
    __slots__ = (
        "name", "cash", "pos", "bought", "sold", "orders", "bid_lots", "ask_lots", "bid_cash",
        "kill", "max_open_orders", "credit", "max_position", "checks", "origin", "log", "reports",
    )

    def __init__(self, name: str, reports: list) -> None:
        self.name = name
        self.cash = 0
        self.pos: dict[str, int] = {}  # symbol -> net lots (negative: short)
        self.bought: dict[str, int] = {}
        self.sold: dict[str, int] = {}
        self.orders: dict[int, Order] = {}  # order_id -> resting Order
        self.bid_lots: dict[str, int] = {}  # symbol -> lots of open buys
        self.ask_lots: dict[str, int] = {}
        self.bid_cash = 0  # cash the open buys would spend, at their limit prices
        self.kill = KILL_OFF
        self.max_open_orders: int | None = None
        self.credit: int | None = None
        self.max_position: dict[str, int] = {}
        self.checks = False  # any limit or a kill switch: the hot path skips risk when False
        self.origin: tuple[str, bytes] = ("", b"")  # where the account's last command came from
        # Every execution report of the account, in order; rseq is the index + 1.
        self.log: list[tuple[int, object]] = []
        self.reports = reports  # the engine's outgoing list (origin, account, role, rseq, event)

    def report(self, origin: tuple[str, bytes], role: int, ev: object) -> None:
        """Give ``ev`` the account's next rseq and queue it for ``origin``."""
        log = self.log
        log.append((role, ev))
        self.reports.append((origin, self.name, role, len(log), ev))

    def set_limits(self, max_open_orders: int | None, credit: int | None,
                   max_position: dict[str, int]) -> None:
        self.max_open_orders = max_open_orders
        self.credit = credit
        self.max_position = dict(max_position)
        self._refresh()

    def set_kill(self, mode: int) -> None:
        self.kill = mode
        self._refresh()

    def _refresh(self) -> None:
        self.checks = bool(self.kill != KILL_OFF or self.max_open_orders is not None
                           or self.credit is not None or self.max_position)

    # Exposure, called by the book only.

    def expose_bid(self, symbol: str, lots: int, cash: int) -> None:
        self.bid_lots[symbol] = self.bid_lots.get(symbol, 0) + lots
        self.bid_cash += cash

    def expose_ask(self, symbol: str, lots: int) -> None:
        self.ask_lots[symbol] = self.ask_lots.get(symbol, 0) + lots

    # Settlement (T+0), called by the book for each trade.

    def buy(self, symbol: str, lots: int, cash: int) -> None:
        self.pos[symbol] = self.pos.get(symbol, 0) + lots
        self.bought[symbol] = self.bought.get(symbol, 0) + lots
        self.cash -= cash

    def sell(self, symbol: str, lots: int, cash: int) -> None:
        self.pos[symbol] = self.pos.get(symbol, 0) - lots
        self.sold[symbol] = self.sold.get(symbol, 0) + lots
        self.cash += cash
