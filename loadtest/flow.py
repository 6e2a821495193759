"""The order flow of one load-test user, without sockets: what to send next, given what it knows.

    flow = OrderFlow(instrument, random.Random(7), max_open=10)
    flow.on_book(book)                  # a zex `book` answer: sets the mid
    action = flow.next_action()         # "new_order" | "cancel" | "replace" | "ioc"
    side, qty, price = flow.resting_order()
    flow.opened(ack)                    # an Ack of a resting order
    flow.on_report(report)              # fills and unsolicited cancels of its own orders

The mix is about 60 % resting limit orders near the mid, 20 % cancels of
one of its open orders, 10 % replaces and 10 % marketable IOC orders. With
no open order a cancel or replace becomes a new order; at ``max_open`` a new
order becomes a cancel, so the book and the account's open-order count stay
bounded however long the test runs. Sides lean against the account's
position (``on_positions``), so repeated runs do not walk it to its limit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from zex.protocol import messages as m
from zex.protocol.numbers import Instrument

MIX = (("new_order", 60), ("cancel", 20), ("replace", 10), ("ioc", 10))
DEPTH = 5  # resting orders go 0..DEPTH-1 ticks behind the best price of their side
MAX_LOTS = 10  # order size, 1..MAX_LOTS lots
LEAN = 500  # lots of position at which the side choice leans fully against it


@dataclass
class Resting:
    side: str
    ticks: int
    lots: int
    filled: int = 0


class OrderFlow:
    """Decide the next request of one user trading ``inst`` and track its open orders."""

    def __init__(self, inst: Instrument, rng: random.Random, max_open: int = 10) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, was {max_open}")
        self.inst = inst
        self.rng = rng
        self.max_open = max_open
        self.open: dict[int, Resting] = {}
        self.bid: int | None = None  # best bid and ask in ticks, from the last book
        self.ask: int | None = None
        self.mid = inst.ref_ticks or max(inst.min_ticks, 100)
        self.position = 0  # the account's, in lots (all users of the account share it)
        self._names = [n for n, _ in MIX]
        self._weights = [w for _, w in MIX]

    # ------------------------------------------------------- what it knows

    def on_book(self, book: m.Book) -> None:
        p = self.inst.price_to_ticks
        self.bid = p(book.bids[0].price) if book.bids else None
        self.ask = p(book.asks[0].price) if book.asks else None
        if self.bid is not None and self.ask is not None:
            self.mid = (self.bid + self.ask) // 2
        elif self.bid is not None:
            self.mid = self.bid + 1
        elif self.ask is not None:
            self.mid = self.ask - 1

    def on_positions(self, positions: m.Positions) -> None:
        for pos in positions.positions:
            if pos.symbol == self.inst.symbol:
                self.position = self.lots_of(pos.qty)

    def opened(self, ack: m.Ack) -> None:
        """A resting order was acknowledged: it is open until filled or cancelled."""
        assert ack.price is not None
        self.open[ack.order_id] = Resting(
            ack.side, self.inst.price_to_ticks(ack.price), self.lots_of(ack.qty)
        )

    def replaced(self, ans: m.Replaced) -> None:
        o = self.open.get(ans.order_id)
        if o is not None:
            o.ticks, o.lots = self.inst.price_to_ticks(ans.price), self.lots_of(ans.qty)
            if self.lots_of(ans.leaves) == 0:
                del self.open[ans.order_id]

    def gone(self, order_id: int) -> None:
        """The order is no longer open (cancelled, or unknown to the matcher: it filled)."""
        self.open.pop(order_id, None)

    def on_report(self, r: object) -> None:
        """Fills and unsolicited cancels of this user's own open orders; others are ignored."""
        if isinstance(r, m.Fill):
            o = self.open.get(r.order_id)
            if o is not None:
                o.filled += self.lots_of(r.qty)
                if self.lots_of(r.leaves) == 0:
                    del self.open[r.order_id]
        elif isinstance(r, (m.Cancelled, m.Expired)):
            self.open.pop(r.order_id, None)

    # ------------------------------------------------------ what to send

    def next_action(self) -> str:
        action = self.rng.choices(self._names, self._weights)[0]
        if action in ("cancel", "replace") and not self.open:
            return "new_order"
        if action == "new_order" and len(self.open) >= self.max_open:
            return "cancel"
        return action

    def resting_order(self) -> tuple[str, str, str]:
        """(side, qty, price) of a passive limit order a few ticks behind the best price."""
        side = self._side(bias=0.65)
        behind = self.rng.randrange(DEPTH)
        if side == "buy":
            top = self.bid if self.bid is not None else self.mid - 1
            if self.ask is not None:
                top = min(top, self.ask - 1)
            ticks = top - behind
        else:
            top = self.ask if self.ask is not None else self.mid + 1
            if self.bid is not None:
                top = max(top, self.bid + 1)
            ticks = top + behind
        return side, self._qty(self.rng.randint(1, MAX_LOTS)), self._price(ticks)

    def ioc_order(self) -> tuple[str, str, str]:
        """(side, qty, price) of a marketable limit IOC: it trades what it can, the rest expires."""
        side = self._side(bias=0.75)
        lots = self.rng.randint(1, MAX_LOTS // 2)
        if side == "buy":
            ticks = (self.ask if self.ask is not None else self.mid) + 2
        else:
            ticks = (self.bid if self.bid is not None else self.mid) - 2
        return side, self._qty(lots), self._price(ticks)

    def cancel_target(self) -> int:
        return self.rng.choice(list(self.open))

    def replace_target(self) -> tuple[int, str, str]:
        """(order_id, new total qty, new price): half keep the price with less qty (priority kept)."""
        oid = self.rng.choice(list(self.open))
        o = self.open[oid]
        if self.rng.random() < 0.5 and o.lots - o.filled > 1:
            lots, ticks = o.lots - 1, o.ticks
        else:
            step = self.rng.choice((-1, 1))
            # away from the other side when moving towards it would cross
            if o.side == "buy" and self.ask is not None and o.ticks + step >= self.ask:
                step = -1
            if o.side == "sell" and self.bid is not None and o.ticks + step <= self.bid:
                step = 1
            lots, ticks = o.lots + self.rng.randint(0, 2), o.ticks + step
        return oid, self._qty(max(lots, o.filled + 1)), self._price(ticks)

    # ---------------------------------------------------------- internals

    def _side(self, bias: float) -> str:
        """buy or sell; the further the position is from flat, the likelier the side that reduces it."""
        lean = max(-1.0, min(1.0, self.position / LEAN))  # -1 very short .. +1 very long
        p_sell = 0.5 + lean * (bias - 0.5)
        return "sell" if self.rng.random() < p_sell else "buy"

    def _price(self, ticks: int) -> str:
        return self.inst.ticks_to_price(max(self.inst.min_ticks, ticks))

    def _qty(self, lots: int) -> str:
        return self.inst.lots_to_qty(lots)

    def lots_of(self, qty: str) -> int:
        """Lots of a wire quantity; unlike Instrument.qty_to_lots it takes 0 and negatives."""
        return int(Decimal(qty) / self.inst.lot_d)
