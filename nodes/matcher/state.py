"""The engine's canonical state: what a snapshot stores and the digest hashes.

Orders are listed in priority order, so restoring them in that order
rebuilds identical levels; accounts and answers in insertion order, which is
deterministic because the engine only ever inserts in command order.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec
from msgspec import Struct

from zex.protocol.internal import BUY, SELL, Event

from .book import Order

if TYPE_CHECKING:
    from .engine import Engine


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


class AccountState(Struct, array_like=True, frozen=True):
    name: str
    cash: int
    positions: list[tuple[str, int, int, int]]  # symbol, net lots, bought, sold
    kill: int
    max_open_orders: int | None
    credit: int | None
    max_position: dict[str, int]
    origin_gw: str
    origin_client: bytes
    log: list[tuple[int, Event]]  # (role, event); rseq = index + 1


class EngineState(Struct, array_like=True, frozen=True):
    seq: int
    next_order_id: int
    books: list[BookState]
    accounts: list[AccountState]
    answers: list[tuple[str, str, Event]]  # (account, cl_ord_id, first answer), in arrival order


_encoder = msgspec.msgpack.Encoder()
state_decoder = msgspec.msgpack.Decoder(EngineState)
encode = _encoder.encode


def digest(state_bytes: bytes) -> bytes:
    return hashlib.blake2b(state_bytes, digest_size=16).digest()


def capture(eng: Engine) -> EngineState:
    books = []
    for symbol in sorted(eng.books):
        b = eng.books[symbol]
        books.append(BookState(symbol, b.next_trade_id,
                               [_order_state(o) for o in b.orders_in_priority(BUY)],
                               [_order_state(o) for o in b.orders_in_priority(SELL)]))
    accounts = []
    for a in eng.accounts.values():
        positions = [(s, a.pos.get(s, 0), a.bought.get(s, 0), a.sold.get(s, 0))
                     for s in sorted(set(a.bought) | set(a.sold))]
        accounts.append(AccountState(a.name, a.cash, positions, a.kill, a.max_open_orders, a.credit,
                                     dict(sorted(a.max_position.items())), a.origin[0], a.origin[1],
                                     list(a.log)))
    answers = [(a, c, ev) for (a, c), ev in eng.answers.items()]
    return EngineState(eng.seq, eng.next_order_id, books, accounts, answers)


def restore(eng: Engine, st: EngineState) -> None:
    """Fill a new, empty engine from ``st``."""
    eng.seq = st.seq
    eng.next_order_id = st.next_order_id
    for ast in st.accounts:
        a = eng.account(ast.name)
        a.cash = ast.cash
        for symbol, lots, bought, sold in ast.positions:
            a.pos[symbol], a.bought[symbol], a.sold[symbol] = lots, bought, sold
        a.set_limits(ast.max_open_orders, ast.credit, ast.max_position)
        a.set_kill(ast.kill)
        a.origin = (ast.origin_gw, ast.origin_client)
        a.log = list(ast.log)
    for bs in st.books:
        book = eng.add_symbol(bs.symbol)
        book.next_trade_id = bs.next_trade_id
        for os_ in (*bs.bids, *bs.asks):
            o = Order(os_.order_id, eng.account(os_.account), os_.cl_ord_id, bs.symbol, os_.side,
                      os_.price, os_.qty, os_.stp, os_.post_only, (os_.gw, os_.client))
            o.leaves, o.filled = os_.leaves, os_.filled
            book.rest(o)
    eng.answers = {(a, c): ev for a, c, ev in st.answers}


def _order_state(o: Order) -> OrderState:
    return OrderState(o.order_id, o.account, o.cl_ord_id, o.side, o.price, o.qty, o.leaves,
                      o.filled, o.stp, o.post_only, o.origin[0], o.origin[1])
