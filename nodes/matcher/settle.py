# cython: overflowcheck=True
"""Settlement: what the books did, applied to the accounts.

The book rests, matches and cancels orders and emits events; it never
touches an account. This step, run by the engine right after each book
call, is the one writer of the accounts' positions, cash and exposure (and
appends the book's events to their report logs), much as exchange-core's
risk stage releases holds after its matching stage. It reads an order's
owner (``Order.owner``, the account's accounts.Holding in the symbol).

Trades settle at once (T+0): a trade of ``q`` lots at ``p`` ticks moves
``q`` lots and ``p * q * mult`` cash units between the taker and the maker,
and takes the maker's open lots and, on the buy side, open cash with it.

    settle = Settlement(events)
    k = len(events)
    ok = book.match(order, limit, seq, ts)
    settle.matched(order, k, book.makers, not ok)
"""

from __future__ import annotations

from zex.protocol.internal import (
    BUY,
    DIRECT_ROLE,
    MAKER_ROLE,
    OWNER_ROLE,
    RESENT_ROLE,
    TAKER_ROLE,
    Event,
    Trade,
)

from .accounts import Account, Holding
from .book import Order

# Report roles (defined with the report frame in protocol/internal.py).
DIRECT, TAKER, MAKER, OWNER, RESENT = DIRECT_ROLE, TAKER_ROLE, MAKER_ROLE, OWNER_ROLE, RESENT_ROLE


class Settlement:
    """Applies the books' events for one engine, whose ``events`` list the books append to."""

    def __init__(self, events: list) -> None:
        self.events = events

    def opened(self, o: Order) -> None:
        """``o`` rests in its book now: its account counts it open."""
        h: Holding = o.owner
        acct = h.acct
        acct.orders[o.order_id] = o
        lots = o.leaves
        if o.side == BUY:  # _expose, inline: this runs for every order that rests
            h.bid_lots += lots
            acct.bid_cash += h.mult * lots * o.price
        else:
            h.ask_lots += lots
            acct.ask_cash += h.mult * lots * o.price

    def closed(self, o: Order, lots: int) -> None:
        """``o`` left its book with ``lots`` unfilled (cancelled, or replaced by a new entry)."""
        h: Holding = o.owner
        del h.acct.orders[o.order_id]
        self._expose(h, o, -lots)

    def reduced(self, o: Order, lots: int) -> None:
        """``o`` rests on with ``lots`` fewer (a replace that keeps priority)."""
        self._expose(o.owner, o, -lots)

    def expired(self, o: Order, ev: Event) -> None:
        """The rest of taker ``o`` left the market (ev: its Expired): its owner hears of it."""
        acct: Account = o.owner.acct
        acct.report(o.origin, DIRECT, ev)

    def _expose(self, h: Holding, o: Order, lots: int) -> None:
        """Add ``lots`` of ``o`` (negative: remove) to its account's open lots and cash."""
        acct = h.acct
        if o.side == BUY:
            h.bid_lots += lots
            acct.bid_cash += h.mult * lots * o.price
        else:
            h.ask_lots += lots
            acct.ask_cash += h.mult * lots * o.price

    def matched(self, taker: Order, start: int, makers: list[Order], taker_cancelled: bool) -> None:
        """Settle what ``Book.match`` of ``taker`` did: its events from ``events[start]`` on,
        where each of ``makers`` (which this empties) is the resting order of one event, in
        order, and the event after them, if ``taker_cancelled``, the taker's STP Cancelled."""
        events = self.events
        th: Holding = taker.owner
        t_acct: Account = th.acct
        t_origin = taker.origin
        buy = taker.side == BUY
        i = start
        for m in makers:
            ev = events[i]
            i += 1
            mh: Holding = m.owner
            m_acct: Account = mh.acct
            if type(ev) is Trade:
                q = ev.qty
                cash = mh.mult * q * m.price  # a trade is at the maker's price
                if buy:
                    th.pos += q
                    th.bought += q
                    t_acct.cash -= cash
                    mh.pos -= q
                    mh.sold += q
                    m_acct.cash += cash
                    mh.ask_lots -= q
                    m_acct.ask_cash -= cash
                else:
                    th.pos -= q
                    th.sold += q
                    t_acct.cash += cash
                    mh.pos += q
                    mh.bought += q
                    m_acct.cash -= cash
                    mh.bid_lots -= q
                    m_acct.bid_cash -= cash
                t_acct.report(t_origin, TAKER, ev)
                m_acct.report(m.origin, MAKER, ev)
                if m.leaves == 0:  # filled: no longer open
                    del m_acct.orders[m.order_id]
            else:  # its Cancelled: self-trade prevention took it out
                self.closed(m, ev.qty)
                m_acct.report(m.origin, OWNER, ev)
        del makers[:]
        if taker_cancelled:
            t_acct.report(t_origin, DIRECT, events[i])
