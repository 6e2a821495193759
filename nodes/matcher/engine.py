"""The engine: sequences commands and applies them to the books.

Deterministic by construction: it reads no clock (every command carries the
time it entered zex), iterates only insertion-ordered or sorted containers,
and numbers orders, trades and commands from counters in its own state. So
the same commands give the same events, byte for byte, and ``state_bytes()``
gives the same bytes for the same history.

    >>> eng = Engine(["XYZ"])
    >>> eng.process(NewOrderCmd(1, "gw", b"c", "alice", "a1", "XYZ", BUY, LIMIT, GTC, 100, 5))
    >>> [type(e).__name__ for e in eng.take_events()]
    ['Accepted']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec
from msgspec import Struct

from zex.protocol.internal import (
    BUY,
    CXL_USER,
    FOK,
    GTC,
    LIMIT,
    Accepted,
    CancelCmd,
    Cancelled,
    Command,
    Digest,
    Event,
    NewOrderCmd,
    Rejected,
    Replaced,
    ReplaceCmd,
)
from zex.protocol.reasons import Reason

from .book import DIRECT, OWNER, RESENT, Book, Order

# ------------------------------------------------------------------- state
# The canonical form of the engine's state: what snapshots hold and what the
# digest hashes. Orders are listed in priority order so that restoring them
# in that order rebuilds identical levels.


class OrderState(Struct, array_like=True, frozen=True):
    order_id: int
    account: str
    cl_ord_id: str
    side: int
    price: int
    qty: int
    leaves: int
    filled: int
    stp: int
    post_only: bool
    gw: str
    client: bytes


class BookState(Struct, array_like=True, frozen=True):
    symbol: str
    next_trade_id: int
    bids: list[OrderState]
    asks: list[OrderState]


class EngineState(Struct, array_like=True, frozen=True):
    seq: int
    next_order_id: int
    books: list[BookState]
    answers: list[tuple[str, str, Event]]  # (account, cl_ord_id, first answer), in arrival order


_state_encoder = msgspec.msgpack.Encoder()
state_decoder = msgspec.msgpack.Decoder(EngineState)


class Engine:
    """Books for a set of symbols, a sequence counter, and the first answer to every cl_ord_id."""

    def __init__(self, symbols: Iterable[str], digest_every: int = 0) -> None:
        self.seq = 0
        self.next_order_id = 1
        self.digest_every = digest_every
        self.events: list[Event] = []
        self.reports: list[tuple] = []  # (origin, event, role)
        # (account, cl_ord_id) -> the first answer; makes resends idempotent for the day
        self.answers: dict[tuple[str, str], Event] = {}
        self.books: dict[str, Book] = {}
        for s in symbols:
            self.add_symbol(s)

    def add_symbol(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book(symbol, self.events, self.reports)
        return book

    def take_events(self) -> list[Event]:
        """Return the events since the last call and start a new list."""
        out = self.events[:]
        self.events.clear()
        self.reports.clear()
        return out

    # ---------------------------------------------------------- commands

    def process(self, cmd: Command) -> None:
        """Sequence one command and apply it; events land in ``events`` and ``reports``."""
        seq = self.seq = self.seq + 1
        t = type(cmd)
        if t is NewOrderCmd:
            self._new_order(cmd, seq)
        elif t is CancelCmd:
            self._cancel(cmd, seq)
        else:
            self._replace(cmd, seq)
        if self.digest_every and seq % self.digest_every == 0:
            self.events.append(Digest(seq, self.digest()))

    def _reject(self, cmd: Command, seq: int, ref: int, reason: Reason, text: str) -> None:
        ev = Rejected(seq, cmd.ts, cmd.account, cmd.cl_ord_id, cmd.symbol, ref, int(reason), text)
        self.events.append(ev)
        self.reports.append(((cmd.gw, cmd.client), ev, DIRECT))
        self.answers[(cmd.account, cmd.cl_ord_id)] = ev

    def _resent(self, cmd: Command) -> bool:
        first = self.answers.get((cmd.account, cmd.cl_ord_id))
        if first is None:
            return False
        self.reports.append(((cmd.gw, cmd.client), first, RESENT))
        return True

    def _new_order(self, cmd: NewOrderCmd, seq: int) -> None:
        # The hot path: a new order. Plain and flat on purpose (measured in bench/).
        key = (cmd.account, cmd.cl_ord_id)
        first = self.answers.get(key)
        origin = (cmd.gw, cmd.client)
        if first is not None:
            self.reports.append((origin, first, RESENT))
            return
        book = self.books.get(cmd.symbol)
        if book is None:
            return self._reject(cmd, seq, 1, Reason.UNKNOWN_SYMBOL, f"symbol {cmd.symbol!r} is not listed")
        ord_type, tif, side, price, qty = cmd.ord_type, cmd.tif, cmd.side, cmd.price, cmd.qty
        # The gateway checked all of this; the engine re-checks what would
        # corrupt a book if a gateway were wrong, because it is cheap.
        if qty <= 0:
            return self._reject(cmd, seq, 1, Reason.BAD_QTY, f"qty must be positive, was {qty}")
        limit = ord_type == LIMIT
        if limit:
            if price <= 0:
                return self._reject(cmd, seq, 1, Reason.BAD_PRICE, f"price must be positive, was {price}")
            crosses = price >= book.best_ask_px if side == BUY else price <= book.best_bid_px
            if cmd.post_only:
                if tif != GTC:
                    return self._reject(cmd, seq, 1, Reason.INVALID_COMBINATION, "post_only needs tif gtc")
                if crosses:
                    return self._reject(cmd, seq, 1, Reason.POST_ONLY_WOULD_CROSS,
                                        f"post_only {'buy' if side == BUY else 'sell'} at {price} would cross")
        else:
            if tif == GTC or cmd.post_only:
                return self._reject(cmd, seq, 1, Reason.INVALID_COMBINATION,
                                    "a market order needs tif ioc or fok and no post_only")
            price = 0
            crosses = True
        oid = self.next_order_id
        self.next_order_id = oid + 1
        account, ts = cmd.account, cmd.ts
        o = Order(oid, account, cmd.cl_ord_id, side, price, qty, cmd.stp, cmd.post_only, origin)
        ack = Accepted(seq, ts, oid, account, cmd.cl_ord_id, cmd.symbol, side, ord_type, tif, price, qty)
        self.events.append(ack)
        self.reports.append((origin, ack, DIRECT))
        self.answers[key] = ack
        if tif == FOK and not book.fillable(o, limit):
            return book.expire(o, tif, ord_type, seq, ts)
        if crosses:
            if not book.match(o, limit, seq, ts) or o.leaves == 0:
                return
        if limit and tif == GTC:
            book.rest(o)
        else:
            book.expire(o, tif, ord_type, seq, ts)

    def _lookup(self, cmd: CancelCmd | ReplaceCmd, seq: int, ref: int) -> tuple[Book, Order] | None:
        """The account's open order in cmd.symbol named by the command, or a reject.

        Another account's order gets the same UNKNOWN_ORDER as a missing one,
        so an account cannot even learn that someone else's order exists.
        """
        book = self.books.get(cmd.symbol)
        if book is None:
            self._reject(cmd, seq, ref, Reason.UNKNOWN_SYMBOL, f"symbol {cmd.symbol!r} is not listed")
            return None
        oid = cmd.order_id
        if not oid and cmd.orig_cl_ord_id:
            first = self.answers.get((cmd.account, cmd.orig_cl_ord_id))
            if isinstance(first, Accepted):
                oid = first.order_id
        o = book.open_orders.get(oid)
        if o is None or o.account != cmd.account:
            name = cmd.order_id or repr(cmd.orig_cl_ord_id)
            self._reject(cmd, seq, ref, Reason.UNKNOWN_ORDER,
                         f"no open order {name} of account {cmd.account} in {cmd.symbol}")
            return None
        return book, o

    def _cancel(self, cmd: CancelCmd, seq: int) -> None:
        if self._resent(cmd):
            return
        found = self._lookup(cmd, seq, 2)
        if found is None:
            return
        book, o = found
        book.unrest(o)
        q = o.leaves
        o.cancelled += q
        o.leaves = 0
        ev = Cancelled(seq, cmd.ts, o.order_id, o.account, o.cl_ord_id, cmd.symbol, o.side, o.price,
                       q, CXL_USER)
        self._answer(cmd, o, ev)

    def _answer(self, cmd: CancelCmd | ReplaceCmd, o: Order, ev: Event) -> None:
        origin = (cmd.gw, cmd.client)
        self.events.append(ev)
        self.reports.append((origin, ev, DIRECT))
        if o.origin != origin:
            self.reports.append((o.origin, ev, OWNER))
        self.answers[(cmd.account, cmd.cl_ord_id)] = ev

    def _replace(self, cmd: ReplaceCmd, seq: int) -> None:
        if self._resent(cmd):
            return
        found = self._lookup(cmd, seq, 3)
        if found is None:
            return
        book, o = found
        price, qty = cmd.price, cmd.qty
        if price <= 0:
            return self._reject(cmd, seq, 3, Reason.BAD_PRICE, f"price must be positive, was {price}")
        if qty <= o.filled:
            return self._reject(cmd, seq, 3, Reason.INVALID_REPLACE,
                                f"qty must be above the filled {o.filled}, was {qty}")
        leaves = qty - o.filled
        if price == o.price and qty <= o.qty:
            book.reduce(o, o.leaves - leaves)
            o.qty = qty
            ev = Replaced(seq, cmd.ts, o.order_id, o.account, o.cl_ord_id, cmd.symbol, o.side, price,
                          qty, leaves, True)
            return self._answer(cmd, o, ev)
        if o.post_only and price != o.price and book.would_cross(o.side, price):
            return self._reject(cmd, seq, 3, Reason.POST_ONLY_WOULD_CROSS,
                                f"post_only order {o.order_id} at {price} would cross")
        # Loses priority: the old entry dies in its level, a new one joins the back.
        book.unrest(o)
        n = Order(o.order_id, o.account, o.cl_ord_id, o.side, price, qty, o.stp, o.post_only, o.origin)
        n.filled = o.filled
        n.leaves = leaves
        o.leaves = 0  # the old incarnation is dead; everything it had moved to n
        ev = Replaced(seq, cmd.ts, n.order_id, n.account, n.cl_ord_id, cmd.symbol, n.side, price, qty,
                      leaves, False)
        self._answer(cmd, n, ev)
        if book.would_cross(n.side, price):
            if not book.match(n, True, seq, cmd.ts) or n.leaves == 0:
                return
        book.rest(n)

    # ------------------------------------------------------------- state

    def state(self) -> EngineState:
        """The canonical state: what a snapshot stores and the digest hashes."""
        books = []
        for symbol in sorted(self.books):
            b = self.books[symbol]
            books.append(BookState(symbol, b.next_trade_id,
                                   [_order_state(o) for o in b.orders_in_priority(BUY)],
                                   [_order_state(o) for o in b.orders_in_priority(2)]))
        answers = [(a, c, ev) for (a, c), ev in self.answers.items()]
        return EngineState(self.seq, self.next_order_id, books, answers)

    def state_bytes(self) -> bytes:
        return _state_encoder.encode(self.state())

    def digest(self) -> bytes:
        """A 16-byte BLAKE2b of the canonical state: equal digests, equal state."""
        return hashlib.blake2b(self.state_bytes(), digest_size=16).digest()

    @classmethod
    def from_state(cls, st: EngineState, symbols: Iterable[str] = (), digest_every: int = 0) -> Engine:
        """Rebuild an engine from a snapshot's state; ``symbols`` adds newly listed ones."""
        eng = cls([], digest_every)
        eng.seq = st.seq
        eng.next_order_id = st.next_order_id
        for bs in st.books:
            book = eng.add_symbol(bs.symbol)
            book.next_trade_id = bs.next_trade_id
            for os_ in (*bs.bids, *bs.asks):
                o = Order(os_.order_id, os_.account, os_.cl_ord_id, os_.side, os_.price, os_.qty,
                          os_.stp, os_.post_only, (os_.gw, os_.client))
                o.leaves, o.filled = os_.leaves, os_.filled
                book.rest(o)
        for s in symbols:
            eng.add_symbol(s)
        eng.answers = {(a, c): ev for a, c, ev in st.answers}
        return eng


def _order_state(o: Order) -> OrderState:
    return OrderState(o.order_id, o.account, o.cl_ord_id, o.side, o.price, o.qty, o.leaves,
                      o.filled, o.stp, o.post_only, o.origin[0], o.origin[1])


