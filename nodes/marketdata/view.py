"""The marketdata node's copy of the books, rebuilt order by order from the matcher's events.

Pure: no sockets, no clock. ``MarketView.apply_batch`` applies one
EventBatch of the matcher's event stream and returns, for every command
that changed a symbol, one CommandUpdate per symbol it changed: its trades,
its L2 level changes (each level once, in its final state) and its L3 order
changes (in the order they happened). The node turns those into the Trades,
Bbo, L2Update and L3Update messages of protocol/marketdata.py.

    view = MarketView(["XYZ"])
    for u in view.apply_batch(batch):       # batch: protocol.internal.EventBatch
        u.seq, u.symbol, u.trades, u.levels, u.orders, u.bbo  # bbo: None unless it changed
    view.books["XYZ"].levels(BUY)           # [(price, qty, count), ...] best first
    view.books["XYZ"].bbo()                 # (bid_px, bid_qty, ask_px, ask_qty)
    again = MarketView.from_state(view.state())

The stream never says that an order rests: a GTC limit order (new, or
replaced without keeping its priority) that still has leaves when its
command's events end has joined the back of its level, as in
nodes/matcher/book.py. Everything else is explicit: a Trade sets the
maker's leaves, a Cancelled of a resting order takes it out, a Replaced
changes it in place or takes it out to trade again as a taker. An Expired
only ever ends a taker that was never in the book, so it changes nothing
here; nor do Rejected, Digest, KillSwitchSet and LimitsSet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sortedcontainers import SortedList

from zex.protocol.internal import (
    BUY,
    GTC,
    LIMIT,
    SELL,
    Accepted,
    Cancelled,
    EventBatch,
    Replaced,
    Trade,
)
from zex.protocol.marketdata import LevelAction, OrderAction

Bbo = tuple[int | None, int, int | None, int]  # (bid_px, bid_qty, ask_px, ask_qty); None/0: empty


@dataclass(slots=True)
class CommandUpdate:
    """What one matcher command changed in one symbol."""

    seq: int  # the command's matcher sequence number
    ts: int  # when the command entered zex, ns since the epoch
    symbol: str
    trades: list[tuple[int, int, int, int]]  # (trade_id, price, qty, taker_side), in order
    # (action "add" | "change" | "delete", side, price, qty, count): each level the command
    # changed, once, in its final state; delete has qty 0 and count 0. A level that appeared
    # and vanished within the command is not there.
    levels: list[tuple[LevelAction, int, int, int, int]]
    # (action "add" | "modify" | "delete", order_id, side, price, leaves), in the order they
    # happened; delete has leaves 0. Empty when the view was made with l3=False.
    orders: list[tuple[OrderAction, int, int, int, int]]
    bbo_changed: bool  # the best bid or ask, price or qty, differs from before the command
    bbo: Bbo | None = None  # when it changed: the best bid and ask after this command


class _Level:
    __slots__ = ("qty", "orders")

    def __init__(self) -> None:
        self.qty = 0  # sum of the leaves
        self.orders: dict[int, int] = {}  # order_id -> leaves; insertion order is time priority


class BookView:
    """One symbol's book as the event stream tells it."""

    __slots__ = (
        "symbol",
        "bids",
        "asks",
        "bid_prices",
        "ask_prices",
        "index",
        "_update",
        "_before",
        "_bbo",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[int, _Level] = {}
        self.asks: dict[int, _Level] = {}
        self.bid_prices = SortedList()  # best bid is [-1]
        self.ask_prices = SortedList()  # best ask is [0]
        self.index: dict[int, tuple[int, int]] = {}  # resting order_id -> (side, price)
        # The command being applied, between _open and _close: its update (None
        # otherwise), the (qty, count) of each level it touched as it was before
        # (None: absent), and the bbo before it. Kept here, not in a dict by
        # symbol, so a change finds them without a lookup.
        self._update: CommandUpdate | None = None
        self._before: dict[tuple[int, int], tuple[int, int] | None] = {}
        self._bbo: Bbo = (None, 0, None, 0)

    # ------------------------------------------------------------ queries

    def levels(self, side: int) -> list[tuple[int, int, int]]:
        """(price, qty, count) per level, best first (as matcher Book.depth)."""
        if side == BUY:
            levels, prices = self.bids, reversed(self.bid_prices)
        else:
            levels, prices = self.asks, iter(self.ask_prices)
        return [(p, (lv := levels[p]).qty, len(lv.orders)) for p in prices]

    def orders(self, side: int) -> list[tuple[int, int, int]]:
        """(order_id, price, leaves) of one side in priority order (as Book.orders_in_priority)."""
        if side == BUY:
            levels, prices = self.bids, reversed(self.bid_prices)
        else:
            levels, prices = self.asks, iter(self.ask_prices)
        return [(oid, p, leaves) for p in prices for oid, leaves in levels[p].orders.items()]

    def bbo(self) -> Bbo:
        bp, ap = self.bid_prices, self.ask_prices
        if bp:
            bid = bp[-1]
            bid_qty = self.bids[bid].qty
        else:
            bid, bid_qty = None, 0
        if ap:
            ask = ap[0]
            ask_qty = self.asks[ask].qty
        else:
            ask, ask_qty = None, 0
        return bid, bid_qty, ask, ask_qty

    # ------------------------------------------------------------ changes
    # Only between _open and _close: every change records the level's state
    # before the command the first time the command touches it, and its L3
    # change in ``u``, the command's update (the one _open returned).

    def _open(self, seq: int, ts: int) -> CommandUpdate:
        # The BBO before this command is the one after the last: only commands change a book.
        u = self._update = CommandUpdate(seq, ts, self.symbol, [], [], [], False)
        return u

    def _rest(
        self, u: CommandUpdate, order_id: int, side: int, price: int, leaves: int, l3: bool
    ) -> None:
        """Put an order at the back of its level."""
        if side == BUY:
            levels, prices = self.bids, self.bid_prices
        else:
            levels, prices = self.asks, self.ask_prices
        key = (side, price)
        before = self._before
        level = levels.get(price)
        if level is None:
            level = levels[price] = _Level()
            prices.add(price)
            if key not in before:
                before[key] = None
        elif key not in before:
            before[key] = (level.qty, len(level.orders))
        level.orders[order_id] = leaves
        level.qty += leaves
        self.index[order_id] = key
        if l3:
            u.orders.append(("add", order_id, side, price, leaves))

    def _set_leaves(self, u: CommandUpdate, order_id: int, leaves: int, l3: bool) -> None:
        """Set a resting order's leaves in place (it keeps its priority); 0 takes it out."""
        side, price = key = self.index[order_id]
        levels = self.bids if side == BUY else self.asks
        level = levels[price]
        old = level.orders[order_id]
        if old == leaves:  # a replace to the same quantity
            return
        before = self._before
        if key not in before:
            before[key] = (level.qty, len(level.orders))
        level.qty += leaves - old
        action: OrderAction
        if leaves:
            level.orders[order_id] = leaves  # assigning an existing key keeps its place
            action = "modify"
        else:
            del level.orders[order_id]
            del self.index[order_id]
            if not level.orders:
                del levels[price]
                (self.bid_prices if side == BUY else self.ask_prices).remove(price)
            action = "delete"
        if l3:
            u.orders.append((action, order_id, side, price, leaves))

    def _close(self) -> CommandUpdate | None:
        """End the command: its update, or None if it changed nothing (or none was open)."""
        u = self._update
        if u is None:
            return None
        self._update = None
        out = u.levels
        bids, asks = self.bids, self.asks
        for (side, price), was in self._before.items():
            level = (bids if side == BUY else asks).get(price)
            if level is None:
                if was is not None:
                    out.append(("delete", side, price, 0, 0))
            elif was is None:
                out.append(("add", side, price, level.qty, len(level.orders)))
            elif was[0] != level.qty or was[1] != len(level.orders):
                out.append(("change", side, price, level.qty, len(level.orders)))
        self._before.clear()
        now = self.bbo()
        if now != self._bbo:
            u.bbo_changed = True
            u.bbo = self._bbo = now
        return u if (u.trades or out or u.orders or u.bbo_changed) else None


class MarketView:
    """Every listed symbol's BookView, and the last matcher command applied to them."""

    def __init__(self, symbols: Iterable[str], l3: bool = True) -> None:
        self.books: dict[str, BookView] = {s: BookView(s) for s in symbols}
        self.l3 = l3  # False: CommandUpdate.orders stays empty (the books still keep orders)
        self.last_seq = 0

    def apply_batch(self, batch: EventBatch) -> list[CommandUpdate]:
        """Apply a batch; return the updates it made, in order.

        Events of commands already applied (seq <= last_seq) are skipped, so a
        batch delivered twice changes nothing the second time. Events of
        symbols this view does not list are ignored.
        """
        out: list[CommandUpdate] = []
        books, l3, last = self.books, self.l3, self.last_seq
        opened: list[BookView] = []  # books the current command changed, in order
        cur = 0  # seq of the current command
        # The current command's GTC limit taker (t_id 0: none), with what it has
        # left: it rests at the end of the command if that is more than 0.
        t_book: BookView | None = None
        t_id = t_side = t_price = t_leaves = t_ts = 0
        for ev in batch.events:
            seq = ev.seq
            if seq != cur:
                # cur is only ever a seq above last, so an old seq is always caught here
                if seq <= last:
                    continue
                if opened or t_id:
                    self._end(opened, out, t_book, t_id, t_side, t_price, t_leaves, cur, t_ts)
                    t_id = 0
                cur = seq
            # type(ev) is X: the type checker narrows ev on it, at the cost of t is X
            if type(ev) is Trade:
                book = books.get(ev.symbol)
                if book is None:
                    continue
                u = book._update
                if u is None:
                    u = book._open(seq, ev.ts)
                    opened.append(book)
                u.trades.append((ev.trade_id, ev.price, ev.qty, ev.taker_side))
                book._set_leaves(u, ev.maker_order_id, ev.maker_leaves, l3)
                if ev.taker_order_id == t_id:
                    t_leaves = ev.taker_leaves
            elif type(ev) is Accepted:
                # IOC, FOK and market orders never rest: only their trades matter
                if ev.ord_type == LIMIT and ev.tif == GTC:
                    book = books.get(ev.symbol)
                    if book is not None:
                        t_book, t_id, t_side, t_price, t_leaves, t_ts = (
                            book,
                            ev.order_id,
                            ev.side,
                            ev.price,
                            ev.qty,
                            ev.ts,
                        )
            elif type(ev) is Cancelled:
                book = books.get(ev.symbol)
                if book is None:
                    continue
                oid = ev.order_id
                if oid in book.index:
                    u = book._update
                    if u is None:
                        u = book._open(seq, ev.ts)
                        opened.append(book)
                    book._set_leaves(u, oid, 0, l3)
                elif oid == t_id:  # STP cancelled the taker: it will not rest
                    t_id = 0
            elif type(ev) is Replaced:
                book = books.get(ev.symbol)
                if book is None:
                    continue
                u = book._update
                if u is None:
                    u = book._open(seq, ev.ts)
                    opened.append(book)
                oid = ev.order_id
                if ev.kept_priority:
                    book._set_leaves(u, oid, ev.leaves, l3)
                else:
                    # The old entry leaves its level; the order comes back as a taker
                    # at its new price and rests at the back with what it has left.
                    book._set_leaves(u, oid, 0, l3)
                    t_book, t_id, t_side, t_price, t_leaves, t_ts = (
                        book,
                        oid,
                        ev.side,
                        ev.price,
                        ev.leaves,
                        ev.ts,
                    )
        if opened or t_id:
            self._end(opened, out, t_book, t_id, t_side, t_price, t_leaves, cur, t_ts)
        if batch.last_seq > last:
            self.last_seq = batch.last_seq
        return out

    def _end(
        self,
        opened: list[BookView],
        out: list[CommandUpdate],
        t_book: BookView | None,
        t_id: int,
        t_side: int,
        t_price: int,
        t_leaves: int,
        seq: int,
        ts: int,
    ) -> None:
        """End a command: rest its taker if it has leaves, collect the books' updates."""
        if t_id and t_leaves > 0 and t_book is not None:  # t_book is set with t_id
            u = t_book._update
            if u is None:
                u = t_book._open(seq, ts)
                opened.append(t_book)
            t_book._rest(u, t_id, t_side, t_price, t_leaves, self.l3)
        for book in opened:
            u = book._close()
            if u is not None:
                out.append(u)
        opened.clear()

    # -------------------------------------------------------------- state

    def state(self) -> dict:
        """Plain data (msgpack-ready): last_seq and each book's resting orders in priority order."""
        return {
            "last_seq": self.last_seq,
            "books": {s: [b.orders(BUY), b.orders(SELL)] for s, b in self.books.items()},
        }

    @classmethod
    def from_state(cls, state: dict, l3: bool = True) -> MarketView:
        """Rebuild a view from ``state()``'s data."""
        view = cls(state["books"], l3)
        view.last_seq = state["last_seq"]
        for symbol, sides in state["books"].items():
            book = view.books[symbol]
            for side, orders in zip((BUY, SELL), sides, strict=True):
                levels, prices = (
                    (book.bids, book.bid_prices) if side == BUY else (book.asks, book.ask_prices)
                )
                for oid, price, leaves in orders:
                    level = levels.get(price)
                    if level is None:
                        level = levels[price] = _Level()
                        prices.add(price)
                    level.orders[oid] = leaves
                    level.qty += leaves
                    book.index[oid] = (side, price)
            book._bbo = book.bbo()
        return view
