"""A deliberately simple model of the matching engine, for property tests.

It shares no code with ``zex.nodes.matcher``: each symbol's book is a plain
list of resting orders, and the best order is found by sorting that list on
every step. Slow and obvious on purpose, so that when it and the engine
disagree, the model is easy to check by eye against the rules:

- limit or market; tif gtc, ioc or fok; post_only only on a gtc limit, and
  rejected (POST_ONLY_WOULD_CROSS) if it would trade on arrival; a market
  order needs ioc or fok;
- trades happen at the resting order's price, best price first, earliest
  first at one price;
- self-trade prevention follows the incoming order's mode: cancel_newest
  cancels the incoming rest (fills before it stand), cancel_oldest cancels the
  resting order and goes on, cancel_both does both, none lets it trade;
- fok fills completely or nothing happens at all (Expired fok): it is tried
  on a copy of the book, so liquidity counts exactly as execution would;
- cancel and replace find an open order of the sender's own account in the
  command's symbol; replace takes the new total quantity (filled included):
  same price and no more quantity keeps priority, anything else goes to the
  back of its new level and may trade on arrival as a gtc limit;
- a repeated (account, cl_ord_id) changes nothing: the first answer stands.

Events are plain tuples (see ``event_key`` in the tests), without seq and ts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from zex.protocol.internal import (
    BUY,
    CXL_STP,
    CXL_USER,
    EXP_FOK,
    EXP_IOC,
    EXP_MARKET,
    FOK,
    GTC,
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
)
from zex.protocol.reasons import Reason

NEW_REF, CANCEL_REF, REPLACE_REF = 1, 2, 3


@dataclass
class MOrder:
    order_id: int
    account: str
    cl_ord_id: str
    symbol: str
    side: int
    price: int  # 0 for a market order
    qty: int  # current total quantity, filled included
    leaves: int
    filled: int
    stp: int
    post_only: bool
    arrival: int = 0  # when it joined the back of its level


def accepted(o: MOrder, ord_type: int, tif: int) -> tuple:
    return (
        "Accepted",
        o.order_id,
        o.account,
        o.cl_ord_id,
        o.symbol,
        o.side,
        ord_type,
        tif,
        o.price,
        o.qty,
    )


def rejected(account: str, cl_ord_id: str, symbol: str, ref: int, reason: Reason) -> tuple:
    return ("Rejected", account, cl_ord_id, symbol, ref, int(reason))


def cancelled(o: MOrder, qty: int, reason: int) -> tuple:
    return ("Cancelled", o.order_id, o.account, o.cl_ord_id, o.symbol, o.side, o.price, qty, reason)


def expired(o: MOrder, qty: int, reason: int) -> tuple:
    return ("Expired", o.order_id, o.account, o.cl_ord_id, o.symbol, o.side, o.price, qty, reason)


def replaced(o: MOrder, kept: bool) -> tuple:
    return (
        "Replaced",
        o.order_id,
        o.account,
        o.cl_ord_id,
        o.symbol,
        o.side,
        o.price,
        o.qty,
        o.leaves,
        kept,
    )


class Model:
    """Books of several symbols as lists; the first answer to every (account, cl_ord_id)."""

    def __init__(self, symbols: list[str]) -> None:
        self.resting: dict[str, list[MOrder]] = {s: [] for s in symbols}
        self.trade_ids: dict[str, int] = {s: 0 for s in symbols}
        self.answers: dict[tuple[str, str], tuple] = {}
        self.next_order_id = 1
        self.clock = 0  # arrival counter
        # every order ever accepted (for the tests to pick targets): order_id -> MOrder
        self.orders: dict[int, MOrder] = {}
        self.events: list[tuple] = []

    # ------------------------------------------------------------ queries

    def priority(self, symbol: str, side: int) -> list[MOrder]:
        """Resting orders of one side, best first: price, then arrival."""
        orders = [o for o in self.resting[symbol] if o.side == side]
        if side == BUY:
            return sorted(orders, key=lambda o: (-o.price, o.arrival))
        return sorted(orders, key=lambda o: (o.price, o.arrival))

    def depth(self, symbol: str, side: int) -> list[tuple[int, int, int]]:
        """(price, total leaves, order count) per price, best first."""
        out: list[list[int]] = []
        for o in self.priority(symbol, side):
            if out and out[-1][0] == o.price:
                out[-1][1] += o.leaves
                out[-1][2] += 1
            else:
                out.append([o.price, o.leaves, 1])
        return [tuple(x) for x in out]

    def crosses(self, symbol: str, side: int, price: int) -> bool:
        """Would a limit order at ``price`` meet the other side's best price?"""
        other = self.priority(symbol, SELL if side == BUY else BUY)
        if not other:
            return False
        best = other[0].price
        return best <= price if side == BUY else best >= price

    # ----------------------------------------------------------- commands

    def process(self, cmd) -> list[tuple] | None:
        """Apply one command; return its events, or None if it was a resend."""
        self.events = []
        first = self.answers.get((cmd.account, cmd.cl_ord_id))
        if first is not None:
            return None
        if isinstance(cmd, NewOrderCmd):
            self._new(cmd)
        elif isinstance(cmd, CancelCmd):
            self._cancel(cmd)
        elif isinstance(cmd, ReplaceCmd):
            self._replace(cmd)
        else:
            raise TypeError(cmd)
        return self.events

    def _answer(self, cmd, ev: tuple) -> None:
        self.events.append(ev)
        self.answers[(cmd.account, cmd.cl_ord_id)] = ev

    def _reject(self, cmd, ref: int, reason: Reason) -> None:
        self._answer(cmd, rejected(cmd.account, cmd.cl_ord_id, cmd.symbol, ref, reason))

    def _new(self, cmd: NewOrderCmd) -> None:
        if cmd.symbol not in self.resting:
            return self._reject(cmd, NEW_REF, Reason.UNKNOWN_SYMBOL)
        if cmd.qty <= 0:
            return self._reject(cmd, NEW_REF, Reason.BAD_QTY)
        price = cmd.price
        if cmd.ord_type == LIMIT:
            if price <= 0:
                return self._reject(cmd, NEW_REF, Reason.BAD_PRICE)
            if cmd.post_only and cmd.tif != GTC:
                return self._reject(cmd, NEW_REF, Reason.INVALID_COMBINATION)
            if cmd.post_only and self.crosses(cmd.symbol, cmd.side, price):
                return self._reject(cmd, NEW_REF, Reason.POST_ONLY_WOULD_CROSS)
        else:
            if cmd.tif == GTC or cmd.post_only:
                return self._reject(cmd, NEW_REF, Reason.INVALID_COMBINATION)
            price = 0
        o = MOrder(
            self.next_order_id,
            cmd.account,
            cmd.cl_ord_id,
            cmd.symbol,
            cmd.side,
            price,
            cmd.qty,
            cmd.qty,
            0,
            cmd.stp,
            cmd.post_only,
        )
        self.next_order_id += 1
        self.orders[o.order_id] = o
        self._answer(cmd, accepted(o, cmd.ord_type, cmd.tif))
        limit = cmd.ord_type == LIMIT

        if cmd.tif == FOK:
            # Try it on a copy: if it would not fill completely, nothing happens.
            trial = copy.deepcopy(self)
            trial.events = []
            t = trial.orders[o.order_id]
            if not trial._match(t, limit) or t.leaves > 0:
                return self.events.append(expired(o, o.leaves, EXP_FOK))

        if not self._match(o, limit):
            return  # self-trade prevention cancelled the rest
        if o.leaves == 0:
            return
        if limit and cmd.tif == GTC:
            self._rest(o)
        elif cmd.ord_type == MARKET:
            self.events.append(expired(o, o.leaves, EXP_MARKET))
        else:
            self.events.append(expired(o, o.leaves, EXP_IOC))

    def _rest(self, o: MOrder) -> None:
        self.clock += 1
        o.arrival = self.clock
        self.resting[o.symbol].append(o)

    def _match(self, taker: MOrder, limit: bool) -> bool:
        """Trade ``taker`` against the other side; False if STP cancelled its rest."""
        book = self.resting[taker.symbol]
        other = SELL if taker.side == BUY else BUY
        while taker.leaves > 0:
            makers = self.priority(taker.symbol, other)
            if not makers:
                return True
            m = makers[0]
            if limit and (m.price > taker.price if taker.side == BUY else m.price < taker.price):
                return True
            if m.account == taker.account and taker.stp != STP_NONE:
                if taker.stp in (STP_CANCEL_OLDEST, STP_CANCEL_BOTH):
                    book.remove(m)
                    self.events.append(cancelled(m, m.leaves, CXL_STP))
                    m.leaves = 0
                    if taker.stp == STP_CANCEL_OLDEST:
                        continue
                assert taker.stp in (STP_CANCEL_NEWEST, STP_CANCEL_BOTH)
                self.events.append(cancelled(taker, taker.leaves, CXL_STP))
                taker.leaves = 0
                return False
            q = min(m.leaves, taker.leaves)
            m.leaves -= q
            m.filled += q
            taker.leaves -= q
            taker.filled += q
            self.trade_ids[taker.symbol] += 1
            self.events.append(
                (
                    "Trade",
                    self.trade_ids[taker.symbol],
                    taker.symbol,
                    m.price,
                    q,
                    taker.side,
                    taker.order_id,
                    taker.account,
                    taker.cl_ord_id,
                    taker.leaves,
                    m.order_id,
                    m.account,
                    m.cl_ord_id,
                    m.leaves,
                )
            )
            if m.leaves == 0:
                book.remove(m)
        return True

    def _find(self, cmd, ref: int) -> MOrder | None:
        if cmd.symbol not in self.resting:
            self._reject(cmd, ref, Reason.UNKNOWN_SYMBOL)
            return None
        oid = cmd.order_id
        if not oid and cmd.orig_cl_ord_id:
            first = self.answers.get((cmd.account, cmd.orig_cl_ord_id))
            if first is not None and first[0] == "Accepted":
                oid = first[1]
        for o in self.resting[cmd.symbol]:
            if o.order_id == oid and o.account == cmd.account:
                return o
        self._reject(cmd, ref, Reason.UNKNOWN_ORDER)
        return None

    def _cancel(self, cmd: CancelCmd) -> None:
        o = self._find(cmd, CANCEL_REF)
        if o is None:
            return
        self.resting[o.symbol].remove(o)
        q, o.leaves = o.leaves, 0
        self._answer(cmd, cancelled(o, q, CXL_USER))

    def _replace(self, cmd: ReplaceCmd) -> None:
        o = self._find(cmd, REPLACE_REF)
        if o is None:
            return
        if cmd.price <= 0:
            return self._reject(cmd, REPLACE_REF, Reason.BAD_PRICE)
        if cmd.qty <= o.filled:
            return self._reject(cmd, REPLACE_REF, Reason.INVALID_REPLACE)
        if cmd.price == o.price and cmd.qty <= o.qty:
            o.qty = cmd.qty
            o.leaves = cmd.qty - o.filled
            return self._answer(cmd, replaced(o, True))
        if o.post_only and self.crosses(o.symbol, o.side, cmd.price):
            return self._reject(cmd, REPLACE_REF, Reason.POST_ONLY_WOULD_CROSS)
        self.resting[o.symbol].remove(o)
        o.price = cmd.price
        o.qty = cmd.qty
        o.leaves = cmd.qty - o.filled
        self._answer(cmd, replaced(o, False))
        if self._match(o, True) and o.leaves > 0:
            self._rest(o)
