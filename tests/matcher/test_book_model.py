"""The bare Book against the simple model (model.py), with no engine and no accounts.

The book rests, matches and cancels orders and emits events, nothing more: here
it runs with owners that are plain ``object()``s (so it cannot read an account
through them) and a few lines of order flow written below, on random streams of
limit and market orders of every tif and STP mode, cancels and replaces. After
every step its events equal the model's, its book equals the model's, it is
never crossed, and ``makers`` names the resting order of each event about one,
in order: the contract the settle step relies on.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zex.nodes.matcher.book import Book, Order
from zex.protocol.internal import (
    BUY,
    CXL_USER,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_NONE,
    CancelCmd,
    Cancelled,
    NewOrderCmd,
    ReplaceCmd,
    Trade,
)

from .harness import event_key
from .model import Model

OWNERS = {name: object() for name in ("alice", "bob", "carol")}  # opaque keys, never read
EXAMPLES = int(os.environ.get("ZEX_PROPERTY_EXAMPLES", "300"))

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("new"),
            st.sampled_from(sorted(OWNERS)),
            st.sampled_from([BUY, SELL]),
            st.sampled_from(
                [(LIMIT, GTC)] * 4 + [(LIMIT, IOC), (LIMIT, FOK), (MARKET, IOC), (MARKET, FOK)]
            ),
            st.integers(95, 105),
            st.integers(1, 10),
            st.sampled_from([STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH]),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 1000)),
        st.tuples(
            st.just("replace"), st.integers(0, 1000), st.integers(95, 105), st.integers(-3, 4)
        ),
    ),
    min_size=1,
    max_size=60,
)


class BookDriver:
    """The order flow of a new order, a cancel and a replace, on a bare Book."""

    def __init__(self) -> None:
        self.events: list = []
        self.book = Book("XYZ", self.events)
        self.orders: dict[int, Order] = {}  # resting, by id
        self.next_id = 1

    def _matched(self, o: Order, start: int, ok: bool) -> None:
        """Check the makers contract, then empty it as the settle step would."""
        book = self.book
        about = self.events[start : len(self.events) - (0 if ok else 1)]
        assert [m.order_id for m in book.makers] == [
            e.maker_order_id if type(e) is Trade else e.order_id for e in about
        ]
        for m, e in zip(book.makers, about, strict=True):
            assert type(e) is Trade or (type(e) is Cancelled and not m.live)
            if not m.live:
                self.orders.pop(m.order_id, None)
        if not ok:
            assert type(self.events[-1]) is Cancelled and self.events[-1].order_id == o.order_id
        book.makers.clear()

    def new(
        self, owner: str, side: int, ord_type: int, tif: int, price: int, qty: int, stp: int
    ) -> None:
        book = self.book
        price = 0 if ord_type == MARKET else price
        o = Order(
            self.next_id,
            OWNERS[owner],
            owner,
            f"c{self.next_id}",
            "XYZ",
            side,
            price,
            qty,
            stp,
            False,
            ("gw", b""),
        )
        self.next_id += 1
        bounded = price > 0
        if tif == FOK and not book.fillable(o, bounded):
            book.expire(o, tif, ord_type, 0, 0)
            return
        if ord_type == MARKET or book.would_cross(side, price):
            start = len(self.events)
            ok = book.match(o, bounded, 0, 0)
            self._matched(o, start, ok)
            if not ok or o.leaves == 0:
                return
        if ord_type == LIMIT and tif == GTC:
            book.rest(o)
            self.orders[o.order_id] = o
        else:
            book.expire(o, tif, ord_type, 0, 0)

    def cancel(self, o: Order) -> None:
        self.book.cancel(o, CXL_USER, 0, 0)
        del self.orders[o.order_id]

    def replace(self, o: Order, price: int, qty: int) -> bool:
        """False: the model would refuse it (qty at or below the filled)."""
        book = self.book
        if qty <= o.filled:
            return False
        leaves = qty - o.filled
        if price == o.price and qty <= o.qty:
            book.reduce(o, o.leaves - leaves)
            o.qty = qty
            return True
        book.unrest(o)
        n = Order(
            o.order_id,
            o.owner,
            o.account,
            o.cl_ord_id,
            "XYZ",
            o.side,
            price,
            qty,
            o.stp,
            False,
            o.origin,
        )
        n.filled, n.leaves, o.leaves = o.filled, leaves, 0
        self.orders[n.order_id] = n
        if book.would_cross(n.side, price):
            start = len(self.events)
            ok = book.match(n, True, 0, 0)
            self._matched(n, start, ok)
            if not ok or n.leaves == 0:
                self.orders.pop(n.order_id, None)
                return True
        book.rest(n)
        return True


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_the_bare_book_matches_the_model(stream):
    d, model = BookDriver(), Model(["XYZ"])
    for step in stream:
        d.events.clear()
        if step[0] == "new":
            _, owner, side, (ord_type, tif), price, qty, stp = step
            cmd = NewOrderCmd(
                0,
                "gw",
                b"",
                owner,
                f"c{d.next_id}",
                "XYZ",
                side,
                ord_type,
                tif,
                0 if ord_type == MARKET else price,
                qty,
                False,
                stp,
            )
            want = model.process(cmd)[1:]  # the engine's Accepted is not the book's
            d.new(owner, side, ord_type, tif, price, qty, stp)
        else:
            if not d.orders:
                continue
            o = d.orders[sorted(d.orders)[step[1] % len(d.orders)]]
            if step[0] == "cancel":
                want = model.process(
                    CancelCmd(0, "gw", b"", o.account, f"x{len(model.answers)}", "XYZ", o.order_id)
                )
                d.cancel(o)
            else:
                qty = max(0, o.qty + step[3])
                want = model.process(
                    ReplaceCmd(
                        0,
                        "gw",
                        b"",
                        o.account,
                        f"r{len(model.answers)}",
                        "XYZ",
                        step[2],
                        qty,
                        o.order_id,
                    )
                )
                if not d.replace(o, step[2], qty):
                    assert want[0][0] == "Rejected"
                    continue
                want = want[1:]  # the engine's Replaced is not the book's
        got = [event_key(e) for e in d.events]
        if step[0] == "cancel":
            got = [g[:-1] + (CXL_USER,) for g in got]
        assert got == want, (step, got, want)
        book = d.book
        for side in (BUY, SELL):
            assert [(o.order_id, o.price, o.leaves) for o in book.orders_in_priority(side)] == [
                (o.order_id, o.price, o.leaves) for o in model.priority("XYZ", side)
            ]
            assert book.depth(side) == model.depth("XYZ", side)
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
        assert book.resting == len(d.orders) and not book.makers
        assert sorted(d.orders) == sorted(
            o.order_id for s in (BUY, SELL) for o in book.orders_in_priority(s)
        )
