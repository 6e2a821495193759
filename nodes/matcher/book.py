"""One order book: price-time priority matching for one symbol.

Prices are int ticks, quantities int lots. Each side is a dict price -> Level
plus a SortedList of its prices; a Level is a FIFO deque of Orders with the
live quantity and count kept alongside. Cancel is O(1) on the level (the
order is marked dead and skipped when it reaches the front) plus O(log n)
when the level empties; a level whose deque holds many dead entries is
compacted, so memory stays bounded and cancel stays amortised O(1).

The book rests, matches and cancels orders and appends every event, in order,
to the ``events`` list it is given; that is all. It knows an order's owner
only as an opaque key (``Order.owner``), compared for self-trade prevention
and never read, so it never touches an account: the engine's settle step
(settle.py) applies what the book did to the accounts afterwards, walking the
book's events, with ``makers`` naming the resting order of each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sortedcontainers import SortedList

from zex.protocol.internal import (
    BUY,
    CXL_STP,
    EXP_FOK,
    EXP_IOC,
    EXP_MARKET,
    FOK,
    MARKET,
    SELL,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_NONE,
    Cancelled,
    Expired,
    Trade,
)

NO_BID = 0  # best_bid_px when there are no bids (prices are positive)
NO_ASK = 1 << 62  # best_ask_px when there are no asks

Origin = tuple[str, bytes]  # (gateway name, client routing id at that gateway)


class Order:
    """A live or finished order. Invariant: qty == filled + leaves + cancelled.

    ``owner``: who the order belongs to, as the book knows it: an opaque key, the same object
    for every order of one owner in this book (self-trade prevention compares them by
    identity). The engine passes the account's numbers in the symbol (accounts.Holding),
    which its settle step reads; the book never does. ``account`` is the owner's name, for
    the events.
    """

    __slots__ = (
        "account",
        "cancelled",
        "cl_ord_id",
        "enc",
        "filled",
        "leaves",
        "live",
        "order_id",
        "origin",
        "owner",
        "post_only",
        "price",
        "qty",
        "side",
        "stp",
        "symbol",
    )

    def __init__(
        self,
        order_id: int,
        owner: Any,
        account: str,
        cl_ord_id: str,
        symbol: str,
        side: int,
        price: int,
        qty: int,
        stp: int,
        post_only: bool,
        origin: Origin,
    ) -> None:
        self.order_id = order_id
        self.owner = owner
        self.account = account
        self.cl_ord_id = cl_ord_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.leaves = qty
        self.filled = 0
        self.cancelled = 0
        self.stp = stp
        self.post_only = post_only
        self.origin = origin
        self.live = False  # True only while resting in a level
        # Its state as a snapshot stores it, encoded (encode_fresh); None when out of
        # date. Kept while it rests unchanged, so a snapshot re-encodes only what changed.
        self.enc: bytes | None = None


class Level:
    __slots__ = ("count", "orders", "price", "qty")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.qty = 0  # sum of leaves of live orders
        self.count = 0  # live orders


class Book:
    """The book of one symbol. The matcher thread is its only writer."""

    def __init__(self, symbol: str, events: list) -> None:
        self.symbol = symbol
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_prices = SortedList()  # best bid is [-1]
        self.ask_prices = SortedList()  # best ask is [0]
        # The best prices, cached as plain ints: the hot path reads them on
        # every order, and only a level appearing or emptying changes them.
        self.best_bid_px = NO_BID
        self.best_ask_px = NO_ASK
        # Live orders resting here. An order is found by its id in its account's orders
        # (Account.orders, kept by the settle step): one map per order, not two.
        self.resting = 0
        self.events = events
        # The resting order of each event the last match made about one (a Trade, or its
        # Cancelled by self-trade prevention), in the events' order: how the settle step, which
        # empties it, finds the orders those events name only by id.
        self.makers: list[Order] = []
        self.next_trade_id = 1
        # Resting orders that have come or changed since state.Digester last encoded them
        # (it drains this): a snapshot then finds almost every order already encoded.
        self.fresh: list[Order] = []

    # ------------------------------------------------------------ queries

    def best_bid(self) -> int | None:
        return None if self.best_bid_px == NO_BID else self.best_bid_px

    def best_ask(self) -> int | None:
        return None if self.best_ask_px == NO_ASK else self.best_ask_px

    def depth(self, side: int) -> list[tuple[int, int, int]]:
        """(price, qty, count) per level, best first."""
        if side == BUY:
            return [(p, self.bids[p].qty, self.bids[p].count) for p in reversed(self.bid_prices)]
        return [(p, self.asks[p].qty, self.asks[p].count) for p in self.ask_prices]

    def orders_in_priority(self, side: int) -> list[Order]:
        """Live orders of one side, best price first, earliest first within a price."""
        levels = self.bids if side == BUY else self.asks
        prices = reversed(self.bid_prices) if side == BUY else iter(self.ask_prices)
        out = []
        for p in prices:
            level = levels[p]
            for o in level.orders:
                if o.live:
                    out.append(o)
        return out

    def encode_fresh(self, encode: Callable[[tuple], bytes], budget: int) -> int:
        """Encode up to ``budget`` of the fresh orders that still rest and are out of date:
        o.enc = encode(the fields of state.OrderState, in its order); return how many.
        Here, not in state.py, for the fields' types (book.pxd)."""
        fresh = self.fresh
        take = fresh[:budget]
        del fresh[: len(take)]
        done = 0
        for o in take:
            if o.live and o.enc is None:
                o.enc = encode(
                    (
                        o.order_id,
                        o.account,
                        o.cl_ord_id,
                        o.side,
                        o.price,
                        o.qty,
                        o.leaves,
                        o.filled,
                        o.stp,
                        o.post_only,
                        o.origin[0],
                        o.origin[1],
                    )
                )
                done += 1
        return done

    def encoded_in_priority(self, side: int) -> list[bytes | None]:
        """Order.enc of the live orders of one side, in orders_in_priority's order."""
        out = []
        for o in self.orders_in_priority(side):
            out.append(o.enc)
        return out

    def highest_ask(self) -> int:
        """The highest price an ask rests at (0: none): the most a market buy could pay."""
        prices = self.ask_prices
        return prices[-1] if prices else 0

    def would_cross(self, side: int, price: int) -> bool:
        if side == BUY:
            return self.best_ask_px <= price
        return self.best_bid_px >= price

    # ------------------------------------------------------------ resting

    def rest(self, o: Order) -> None:
        """Put a live order at the back of its price level."""
        price = o.price
        if o.side == BUY:
            level = self.bids.get(price)
            if level is None:
                level = self.bids[price] = Level(price)
                self.bid_prices.add(price)
                if price > self.best_bid_px:
                    self.best_bid_px = price
        else:
            level = self.asks.get(price)
            if level is None:
                level = self.asks[price] = Level(price)
                self.ask_prices.add(price)
                if price < self.best_ask_px:
                    self.best_ask_px = price
        level.orders.append(o)
        level.qty += o.leaves
        level.count += 1
        o.live = True
        self.resting += 1
        o.enc = None
        self._changed(o)

    def _changed(self, o: Order) -> None:
        """Note a resting order whose encoded state is now out of date (o.enc is None)."""
        fresh = self.fresh
        fresh.append(o)
        # Bounded by the live orders even if nothing drains it (an engine whose owner takes
        # no digests or snapshots): drop the finished ones and repeats of the same order.
        if len(fresh) > 2 * self.resting + 4096:
            seen = set()
            keep = []
            for x in fresh:
                if x.live and x.enc is None and id(x) not in seen:
                    seen.add(id(x))
                    keep.append(x)
            self.fresh = keep

    def unrest(self, o: Order) -> None:
        """Take a live order out of its level (lazily: it stays in the deque, dead)."""
        o.live = False
        self.resting -= 1
        level = (self.bids if o.side == BUY else self.asks)[o.price]
        level.qty -= o.leaves
        level.count -= 1
        if level.count == 0:
            self._drop_level(o.side, o.price)
        elif len(level.orders) > 2 * level.count + 16:
            level.orders = deque([x for x in level.orders if x.live])

    def _drop_level(self, side: int, price: int) -> None:
        """Remove an empty level and refresh the cached best price."""
        if side == BUY:
            del self.bids[price]
            prices = self.bid_prices
            prices.remove(price)
            if price == self.best_bid_px:
                self.best_bid_px = prices[-1] if prices else NO_BID
        else:
            del self.asks[price]
            prices = self.ask_prices
            prices.remove(price)
            if price == self.best_ask_px:
                self.best_ask_px = prices[0] if prices else NO_ASK

    def reduce(self, o: Order, by: int) -> None:
        """Lower a resting order's leaves in place (keeps priority)."""
        o.leaves -= by
        levels = self.bids if o.side == BUY else self.asks
        levels[o.price].qty -= by
        o.enc = None  # the caller also sets its qty: encoded later, by the Digester
        self._changed(o)

    def cancel(self, o: Order, reason: int, seq: int, ts: int, req: str = "") -> Cancelled:
        """Take a resting order out and cancel what it had left; ``req``: the cl_ord_id of
        the request that cancelled it, if any."""
        self.unrest(o)
        q = o.leaves
        o.cancelled += q
        o.leaves = 0
        ev = Cancelled(
            seq,
            ts,
            o.order_id,
            o.account,
            o.cl_ord_id,
            self.symbol,
            o.side,
            o.price,
            q,
            reason,
            req,
        )
        self.events.append(ev)
        return ev

    # ----------------------------------------------------------- matching

    def fillable(self, taker: Order, limit: bool) -> bool:
        """Would ``taker`` fill completely, counting STP as execution would? (FOK pre-check)"""
        need = taker.leaves
        buy = taker.side == BUY
        if buy:
            levels, prices = self.asks, iter(self.ask_prices)
        else:
            levels, prices = self.bids, reversed(self.bid_prices)
        owner, stp = taker.owner, taker.stp
        for price in prices:
            if limit and (price > taker.price if buy else price < taker.price):
                return False
            for m in levels[price].orders:
                if not m.live:
                    continue
                if m.owner is owner and stp != STP_NONE:
                    if stp == STP_CANCEL_OLDEST:
                        continue  # it would be cancelled and matching would go on
                    return False  # the taker would be cancelled here
                need -= m.leaves
                if need <= 0:
                    return True
        return False

    def match(self, taker: Order, limit: bool, seq: int, ts: int) -> bool:
        """Trade ``taker`` against the other side; return False if STP cancelled it (its
        Cancelled is then the last event). Each Trade, and each resting order STP cancels,
        puts that resting order in ``makers``."""
        buy = taker.side == BUY
        if buy:
            levels, maker_side = self.asks, SELL
        else:
            levels, maker_side = self.bids, BUY
        events, makers = self.events, self.makers
        symbol, owner, t_account, stp = self.symbol, taker.owner, taker.account, taker.stp
        t_price = taker.price
        while True:
            if buy:
                best = self.best_ask_px
                if best == NO_ASK or (limit and best > t_price):
                    break
            else:
                best = self.best_bid_px
                if best == NO_BID or (limit and best < t_price):
                    break
            level = levels[best]
            orders = level.orders
            while orders:
                m = orders[0]
                if not m.live:
                    orders.popleft()
                    continue
                if m.owner is owner and stp != STP_NONE:
                    if stp != STP_CANCEL_NEWEST:  # oldest or both: the resting order goes
                        self._cancel_resting(m, level, CXL_STP, seq, ts)
                        orders.popleft()
                        if stp == STP_CANCEL_OLDEST:
                            continue
                    if level.count == 0:
                        self._drop_level(maker_side, best)
                    self._cancel_taker(taker, seq, ts)
                    return False
                q = m.leaves if m.leaves < taker.leaves else taker.leaves
                m.leaves -= q
                m.filled += q
                taker.leaves -= q
                taker.filled += q
                level.qty -= q
                tid = self.next_trade_id
                self.next_trade_id = tid + 1
                ev = Trade(
                    seq,
                    ts,
                    tid,
                    symbol,
                    best,
                    q,
                    taker.side,
                    taker.order_id,
                    t_account,
                    taker.cl_ord_id,
                    taker.leaves,
                    m.order_id,
                    m.account,
                    m.cl_ord_id,
                    m.leaves,
                )
                events.append(ev)
                makers.append(m)
                if m.leaves == 0:
                    m.live = False
                    orders.popleft()
                    level.count -= 1
                    self.resting -= 1
                else:  # partly filled: rests on, changed
                    m.enc = None
                    self._changed(m)
                if taker.leaves == 0:
                    break
            if level.count == 0:
                self._drop_level(maker_side, best)
            if taker.leaves == 0:
                break
        return True

    def _cancel_resting(self, m: Order, level: Level, reason: int, seq: int, ts: int) -> None:
        q = m.leaves
        m.cancelled += q
        m.leaves = 0
        m.live = False
        level.qty -= q
        level.count -= 1
        self.resting -= 1
        ev = Cancelled(
            seq, ts, m.order_id, m.account, m.cl_ord_id, self.symbol, m.side, m.price, q, reason
        )
        self.events.append(ev)
        self.makers.append(m)

    def _cancel_taker(self, t: Order, seq: int, ts: int) -> None:
        q = t.leaves
        t.cancelled += q
        t.leaves = 0
        ev = Cancelled(
            seq, ts, t.order_id, t.account, t.cl_ord_id, self.symbol, t.side, t.price, q, CXL_STP
        )
        self.events.append(ev)

    def expire(self, t: Order, tif: int, ord_type: int, seq: int, ts: int) -> Expired:
        """The unfilled rest of an IOC/FOK/market taker leaves the market."""
        q = t.leaves
        t.cancelled += q
        t.leaves = 0
        reason = EXP_FOK if tif == FOK else (EXP_MARKET if ord_type == MARKET else EXP_IOC)
        ev = Expired(
            seq, ts, t.order_id, t.account, t.cl_ord_id, self.symbol, t.side, t.price, q, reason
        )
        self.events.append(ev)
        return ev
