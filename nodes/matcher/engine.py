"""The engine: sequences commands, runs the stateful risk checks, applies them to the books.

Deterministic by construction: it reads no clock (every command carries the
time it entered zex), iterates only insertion-ordered or sorted containers,
and numbers orders, trades and commands from counters in its own state. So
the same commands give the same events, byte for byte, and ``state_bytes()``
gives the same bytes for the same history.

    >>> eng = Engine(["XYZ"])
    >>> eng.process(NewOrderCmd(1, "gw", b"c", "alice", "a1", "XYZ", BUY, LIMIT, GTC, 100, 5))
    >>> [type(e).__name__ for e in eng.take_events()]
    ['Accepted']

What it hands out after each command: ``events`` (everything, in order, for
the event stream) and ``reports``: (origin, account, role, rseq, event) for
the owners, where origin is (gateway, client) and rseq the account's report
sequence number (0 for a ``RESENT`` repeat, which is not in the sequence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from msgspec.structs import astuple

from zex.protocol.internal import (
    BUY,
    CXL_KILL,
    CXL_USER,
    FOK,
    GTC,
    KILL_BLOCK,
    KILL_OFF,
    KILL_REDUCE_ONLY,
    LIMIT,
    Q_BOOK,
    Q_ORDERS,
    Q_POSITIONS,
    SELL,
    Accepted,
    Answer,
    BookAnswer,
    CancelCmd,
    Cancelled,
    Digest,
    Event,
    KillSwitchCmd,
    KillSwitchSet,
    LimitsCmd,
    LimitsSet,
    MassCancelCmd,
    NewOrderCmd,
    OpenOrder,
    OrdersAnswer,
    Position,
    PositionsAnswer,
    QueryCmd,
    Rejected,
    ReplaceCmd,
    Replaced,
    ReportsAnswer,
)
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

from . import state as state_mod
from .accounts import Account, Holding
from .book import Book, Order
from .settle import DIRECT, OWNER, RESENT, Settlement

# The largest price (ticks), quantity (lots) and notional (cash units: price * qty * the
# symbol's cash multiplier) the engine takes (SPEC 3.4). A price at the book's no-ask
# sentinel (book.NO_ASK, 2^62) would corrupt the book; the compiled build keeps an order's
# numbers in C int64s; and a trade's cash must fit the state's msgpack ints. So every
# fill's cash is within 2^62: a maker's fill is bounded by its own order's notional. An
# account's cash, and its lots bought and sold in a symbol, are bounded by the same numbers
# (RISK_LIMIT, _past_bounds), so no sum of fills can leave the state's int64s either.
MAX_TICKS = (1 << 62) - 1
MAX_LOTS = (1 << 62) - 1
MAX_CASH = (1 << 62) - 1


# Rejected.ref: the internal tag of the command a Rejected answers.
def _tag(cls: type) -> int:
    tag = cls.__struct_config__.tag  # type: ignore[attr-defined]
    assert isinstance(tag, int), f"{cls.__name__} has no int tag"
    return tag


REF_NEW, REF_CANCEL, REF_REPLACE, REF_KILL = (
    _tag(c) for c in (NewOrderCmd, CancelCmd, ReplaceCmd, KillSwitchCmd)
)


def _pin_fields(cls: type, order: str) -> None:
    """Refuse to import if ``cls``'s fields are not ``order``: the hot path unpacks its
    commands by position (astuple), so a field added or moved in protocol/internal.py
    must fail here, not shift every value into the wrong name."""
    if cls.__struct_fields__ != tuple(order.split()):  # type: ignore[attr-defined]
        raise ImportError(
            f"engine.py unpacks {cls.__name__} as ({', '.join(order.split())}) but "
            f"its fields are {cls.__struct_fields__}: "  # type: ignore[attr-defined]
            f"update the astuple unpacking in engine.py"
        )


_pin_fields(
    NewOrderCmd, "ts gw client account cl_ord_id symbol side ord_type tif price qty post_only stp"
)
_pin_fields(CancelCmd, "ts gw client account cl_ord_id symbol order_id orig_cl_ord_id")
_pin_fields(ReplaceCmd, "ts gw client account cl_ord_id symbol price qty order_id orig_cl_ord_id")


class Engine:
    """Books, accounts, a sequence counter, and the first answer to every cl_ord_id."""

    def __init__(
        self,
        symbols: Iterable[str | Instrument],
        digest_every: int = 0,
        cash_mult: Mapping[str, int] | None = None,
    ) -> None:
        """``symbols``: the listed instruments (protocol.numbers.Instrument), whose tick and lot
        the reject texts use to show decimals; a bare symbol name lists one with tick and lot 1.
        ``cash_mult``: cash units per tick * lot of each symbol; by default the instruments'
        own (numbers.Cash), 1 for a bare name."""
        symbols = list(symbols)
        self.seq = 0
        self.next_order_id = 1
        self.digest_every = digest_every
        # the cash unit the texts show cash in: the instruments' (1 when only names are given)
        self.cash = Cash([s for s in symbols if isinstance(s, Instrument)])
        self.cash_mult = dict(self.cash.mult if cash_mult is None else cash_mult)
        self.instruments: dict[str, Instrument] = {}
        self.events: list[Event] = []
        self.reports: list[tuple] = []  # (origin, account, role, rseq, event)
        self.settle = Settlement(self.events)  # the one writer of the accounts' numbers
        # (account, cl_ord_id) -> the first answer; makes resends idempotent for the day
        self.answers: dict[tuple[str, str], Event] = {}
        self.books: dict[str, Book] = {}
        self.accounts: dict[str, Account] = {}
        # reason code -> rejects since this engine object was made; for metrics only,
        # not state: a snapshot does not carry it and the digest does not cover it
        self.reject_counts: dict[int, int] = {}
        self._digester = state_mod.Digester()
        for s in symbols:
            self.add_symbol(s)

    def add_symbol(self, symbol: str | Instrument) -> Book:
        """List a symbol (an Instrument, or a bare name: tick and lot 1) and return its book."""
        if isinstance(symbol, Instrument):
            self.instruments[symbol.symbol] = symbol
            symbol = symbol.symbol
        elif symbol not in self.instruments:
            self.instruments[symbol] = Instrument(symbol, tick="1", lot="1", min_price="1")
        mult = self.cash_mult.get(symbol, 1)
        if not 0 < mult <= MAX_CASH:
            raise ValueError(
                f"{symbol}: its cash multiplier must be 1..{MAX_CASH} cash units "
                f"per tick * lot, was {mult}: choose a coarser tick or lot"
            )
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book(symbol, self.events)
        return book

    def account(self, name: str) -> Account:
        acct = self.accounts.get(name)
        if acct is None:
            acct = self.accounts[name] = Account(name, self.reports)
        return acct

    def take_events(self) -> list[Event]:
        """Return the events since the last call and start a new list."""
        out = self.events[:]
        self.events.clear()
        self.reports.clear()
        return out

    # ---------------------------------------------------------- commands

    def process(self, cmd: Any) -> None:
        """Sequence one command and apply it; events land in ``events`` and ``reports``.

        ``cmd`` is a Command; typed Any because the dispatch is by ``type(cmd) is``,
        which a type checker does not narrow (and mypyc would check the union on each call).
        """
        seq = self.seq = self.seq + 1
        t = type(cmd)
        if t is NewOrderCmd:
            self._new_order(cmd, seq)
        elif t is CancelCmd:
            self._cancel(cmd, seq)
        elif t is ReplaceCmd:
            self._replace(cmd, seq)
        elif t is MassCancelCmd:
            self._mass_cancel(cmd, seq)
        elif t is KillSwitchCmd:
            self._kill_switch(cmd, seq)
        else:
            self._limits(cmd, seq)
        if self.digest_every and seq % self.digest_every == 0:
            self.events.append(Digest(seq, self.digest()))

    # ------------------------------------------------------- reject texts
    # Prices and quantities as the client wrote them (SPEC 3.5, 4.8): decimals of the
    # instrument, cash in the exchange's currency; never ticks, lots or cash units.

    def _px(self, symbol: str, ticks: int) -> str:
        return self.instruments[symbol].ticks_to_price(ticks)

    def _qty(self, symbol: str, lots: int) -> str:
        return self.instruments[symbol].lots_to_qty(lots)

    def _cash(self, units: int) -> str:
        return self.cash.to_str(units)

    def _past_bounds(
        self, acct: Account, h: Holding, side: int, lots: int, cash: int
    ) -> str | None:
        """Why an order adding ``lots`` and at worst ``cash`` (net of what a replaced order
        counted for) could take the account past what the state holds, or None. Open orders
        count as if filled at their prices, so no fill after this check passes the bounds."""
        # Each sum below stays within an int64 (the bounds it checks hold before it: so
        # the compiled build, which keeps them in C ints, cannot overflow); ``cash`` may not.
        sym = h.symbol
        max_cash, max_lots = MAX_CASH, MAX_LOTS
        if side == BUY:
            room = acct.cash - acct.bid_cash + max_cash  # what buys may yet spend: 0..2^63 - 2
            if cash > room:
                low = acct.cash - acct.bid_cash - cash
                return (
                    f"account {acct.name}'s cash could reach {self._cash(low)} with its open buys "
                    f"and this order filled, past the matcher's limit {self._cash(-MAX_CASH)}"
                )
            lots += h.bought + h.bid_lots
            if lots > max_lots:
                return (
                    f"account {acct.name} could buy {self._qty(sym, lots)} {sym} today with its "
                    f"open buys and this order, past the matcher's limit {self._qty(sym, MAX_LOTS)}"
                )
        else:
            room = max_cash - acct.cash - acct.ask_cash  # what sells may yet bring: 0..2^63 - 2
            if cash > room:
                high = acct.cash + acct.ask_cash + cash
                return (
                    f"account {acct.name}'s cash could reach {self._cash(high)} with its open sells "
                    f"and this order filled, past the matcher's limit {self._cash(MAX_CASH)}"
                )
            lots += h.sold + h.ask_lots
            if lots > max_lots:
                return (
                    f"account {acct.name} could sell {self._qty(sym, lots)} {sym} today with its "
                    f"open sells and this order, past the matcher's limit {self._qty(sym, MAX_LOTS)}"
                )
        return None

    def _reject(self, cmd: Any, seq: int, ref: int, reason: Reason, text: str) -> None:
        code = int(reason)
        self.reject_counts[code] = self.reject_counts.get(code, 0) + 1
        ev = Rejected(
            seq, cmd.ts, cmd.account, cmd.cl_ord_id, getattr(cmd, "symbol", ""), ref, code, text
        )
        self.events.append(ev)
        self.account(cmd.account).report((cmd.gw, cmd.client), DIRECT, ev)
        self.answers[(cmd.account, cmd.cl_ord_id)] = ev

    def _session(self, account: str, cl_ord_id: str, gw: str, client: bytes) -> Account | None:
        """The command's account with its origin set to (gw, client), or None when the command
        is a resend, which this answers with the first answer (_new_order has this inline)."""
        acct = self.accounts.get(account)
        if acct is None:
            acct = self.account(account)
        origin = acct.origin
        if origin[0] != gw or origin[1] != client:
            origin = (gw, client)
        first = self.answers.get((acct.name, cl_ord_id))
        if first is not None:
            self.reports.append((origin, acct.name, RESENT, 0, first))
            return None
        acct.origin = origin
        return acct

    def _new_order(self, cmd: NewOrderCmd, seq: int) -> None:
        # The hot path: a new order. Plain and flat on purpose (measured in bench/). The
        # fields come out in one astuple (why: engine.pxd), in the order _pin_fields checks.
        (
            ts,
            gw,
            client,
            account,
            cl_ord_id,
            symbol,
            side,
            ord_type,
            tif,
            price,
            qty,
            post_only,
            stp,
        ) = astuple(cmd)
        acct = self.accounts.get(account)
        if acct is None:
            acct = self.account(account)
        # The account's own name and last origin, not this command's copies: the day's
        # events, keys and orders then share one string and one tuple per account, where
        # each decoded command brought its own (memory the matcher keeps all day).
        account = acct.name
        origin = acct.origin
        if origin[0] != gw or origin[1] != client:
            origin = (gw, client)
        key = (account, cl_ord_id)
        first = self.answers.get(key)
        if first is not None:
            self.reports.append((origin, account, RESENT, 0, first))
            return
        acct.origin = origin
        book = self.books.get(symbol)
        if book is None:
            return self._reject(
                cmd, seq, REF_NEW, Reason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not listed"
            )
        symbol = book.symbol
        # The gateway checked all of this; the engine re-checks what would
        # corrupt a book if a gateway were wrong, because it is cheap.
        if qty <= 0:
            return self._reject(
                cmd,
                seq,
                REF_NEW,
                Reason.BAD_QTY,
                f"qty must be positive, was {self._qty(symbol, qty)}",
            )
        if qty > MAX_LOTS:
            return self._reject(
                cmd,
                seq,
                REF_NEW,
                Reason.QTY_TOO_LARGE,
                f"qty must be at most {self._qty(symbol, MAX_LOTS)} for {symbol}, "
                f"was {self._qty(symbol, qty)}",
            )
        limit = ord_type == LIMIT
        if limit:
            if price <= 0:
                return self._reject(
                    cmd,
                    seq,
                    REF_NEW,
                    Reason.BAD_PRICE,
                    f"price must be positive, was {self._px(symbol, price)}",
                )
            if price > MAX_TICKS:
                return self._reject(
                    cmd,
                    seq,
                    REF_NEW,
                    Reason.PRICE_OUT_OF_BAND,
                    f"price must be at most {self._px(symbol, MAX_TICKS)} for {symbol}, "
                    f"was {self._px(symbol, price)}",
                )
            crosses = price >= book.best_ask_px if side == BUY else price <= book.best_bid_px
            if post_only:
                if tif != GTC:
                    return self._reject(
                        cmd, seq, REF_NEW, Reason.INVALID_COMBINATION, "post_only needs tif gtc"
                    )
                if crosses:
                    return self._reject(
                        cmd,
                        seq,
                        REF_NEW,
                        Reason.POST_ONLY_WOULD_CROSS,
                        f"post_only {'buy' if side == BUY else 'sell'} at {self._px(symbol, price)} "
                        f"would cross",
                    )
        else:
            if tif == GTC or post_only:
                return self._reject(
                    cmd,
                    seq,
                    REF_NEW,
                    Reason.INVALID_COMBINATION,
                    "a market order needs tif ioc or fok and no post_only",
                )
            # A market order's price, when the gateway sets one, is its protection:
            # it trades up to that price and no further (0: no protection).
            if price < 0:
                price = 0
            elif price > MAX_TICKS:
                return self._reject(
                    cmd,
                    seq,
                    REF_NEW,
                    Reason.PRICE_OUT_OF_BAND,
                    f"a market order's protection price must be at most "
                    f"{self._px(symbol, MAX_TICKS)} for {symbol}, was {self._px(symbol, price)}",
                )
            crosses = True
        # the account's numbers in the symbol: what the book knows the order's owner by
        h = acct.holdings.get(symbol)
        if h is None:
            h = acct.holding(symbol, self.cash_mult.get(symbol, 1))
        mult = h.mult
        notional = qty * price * mult
        if notional > MAX_CASH:
            return self._reject(
                cmd,
                seq,
                REF_NEW,
                Reason.QTY_TOO_LARGE,
                f"notional {self._cash(notional)} is above the "
                f"matcher's limit {self._cash(MAX_CASH)}",
            )
        # What the state can hold: the account's cash and lots, were its open orders and this
        # one to fill at their worst, within MAX_CASH and MAX_LOTS (a buy pays at most its
        # limit, or the highest ask without one; a sell gets at most the best bid or its limit).
        # Far from the bounds this is two compares; _past_bounds says which was passed.
        max_cash, max_lots, lots = MAX_CASH, MAX_LOTS, qty
        if side == BUY:
            worst = notional if price else qty * book.highest_ask() * mult
            past = (
                worst > acct.cash - acct.bid_cash + max_cash
                or h.bought + h.bid_lots + lots > max_lots
            )
        else:
            best = book.best_bid_px
            worst = notional if price >= best else qty * best * mult
            past = (
                worst > max_cash - acct.cash - acct.ask_cash
                or h.sold + h.ask_lots + lots > max_lots
            )
        if past:
            return self._reject(
                cmd,
                seq,
                REF_NEW,
                Reason.RISK_LIMIT,
                self._past_bounds(acct, h, side, qty, worst) or "past the bounds",
            )
        if acct.checks:
            refusal = self._risk(acct, h, side, price, qty, 0, 0, limit and tif == GTC)
            if refusal is not None:
                return self._reject(cmd, seq, REF_NEW, refusal[0], refusal[1])
        oid = self.next_order_id
        self.next_order_id = oid + 1
        o = Order(oid, h, account, cl_ord_id, symbol, side, price, qty, stp, post_only, origin)
        ack = Accepted(
            seq, ts, o.order_id, account, cl_ord_id, symbol, side, ord_type, tif, price, qty
        )
        events = self.events
        events.append(ack)
        acct.report(origin, DIRECT, ack)
        self.answers[key] = ack
        bounded = price > 0
        settle = self.settle
        if tif == FOK and not book.fillable(o, bounded):
            return settle.expired(o, book.expire(o, tif, ord_type, seq, ts))
        if crosses:
            start = len(events)
            done = not book.match(o, bounded, seq, ts)  # done: STP cancelled the rest
            settle.matched(o, start, book.makers, done)
            if done or o.leaves == 0:
                return
        if limit and tif == GTC:
            book.rest(o)
            settle.opened(o)
        else:
            settle.expired(o, book.expire(o, tif, ord_type, seq, ts))

    def _risk(
        self,
        acct: Account,
        h: Holding,
        side: int,
        price: int,
        qty: int,
        old_qty: int,
        old_cash: int,
        rests: bool,
    ) -> tuple[Reason, str] | None:
        """The stateful pre-trade checks; None if the order may go to the book.

        ``old_qty``/``old_cash`` are what a replaced order already counts for.
        The texts give quantities and cash as decimals (_qty, _cash).
        """
        sym = h.symbol
        pos = h.pos
        if acct.kill == KILL_BLOCK:
            return Reason.KILL_SWITCH, f"account {acct.name} is blocked by its kill switch"
        if side == BUY:
            open_lots = h.bid_lots - old_qty
            worst = pos + open_lots + qty
        else:
            open_lots = h.ask_lots - old_qty
            worst = pos - open_lots - qty
        # Reduce-only: even if every open order on this side filled, the
        # position must shrink towards zero and not flip.
        if acct.kill == KILL_REDUCE_ONLY and not (
            pos < 0 and worst <= 0 if side == BUY else pos > 0 and worst >= 0
        ):
            return (
                Reason.KILL_SWITCH,
                (
                    f"account {acct.name} is reduce-only: position {self._qty(sym, pos)} {sym}, "
                    f"this order would take it to {self._qty(sym, worst)}"
                ),
            )
        if (
            rests
            and acct.max_open_orders is not None
            and not old_qty
            and len(acct.orders) >= acct.max_open_orders
        ):
            return (
                Reason.MAX_OPEN_ORDERS,
                f"max_open_orders {acct.max_open_orders} reached: {len(acct.orders)} open",
            )
        limit = acct.max_position.get(sym)
        if limit is not None and abs(worst) > limit and abs(worst) > abs(pos):
            return (
                Reason.MAX_POSITION,
                (
                    f"max_position {self._qty(sym, limit)} {sym}: position {self._qty(sym, pos)} "
                    f"with open orders and this order could reach {self._qty(sym, worst)}"
                ),
            )
        if acct.credit is not None and side == BUY:
            if price <= 0:
                return (
                    Reason.CREDIT_LIMIT,
                    "a market buy without a protection price cannot be checked against credit",
                )
            need = h.mult * price * qty - old_cash
            left = acct.cash - acct.bid_cash + acct.credit
            if need > left:
                return (
                    Reason.CREDIT_LIMIT,
                    (
                        f"credit {self._cash(acct.credit)}: this buy needs {self._cash(need)}, "
                        f"{self._cash(left)} left (cash {self._cash(acct.cash)}, "
                        f"open buys {self._cash(acct.bid_cash)})"
                    ),
                )
        return None

    def _lookup(
        self,
        cmd: CancelCmd | ReplaceCmd,
        seq: int,
        ref: int,
        acct: Account,
        symbol: str,
        oid: int,
        orig_cl_ord_id: str,
    ) -> Order | None:
        """The account's open order in ``symbol`` named by ``oid`` (or, when 0, by the
        cl_ord_id that entered it), or None and a reject.

        Another account's order gets the same UNKNOWN_ORDER as a missing one,
        so an account cannot even learn that someone else's order exists.
        """
        if symbol not in self.books:
            self._reject(cmd, seq, ref, Reason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not listed")
            return None
        named = oid
        if not oid and orig_cl_ord_id:
            first = self.answers.get((acct.name, orig_cl_ord_id))
            if isinstance(first, Accepted):
                oid = first.order_id
        o = acct.orders.get(oid)
        if o is None or o.symbol != symbol:
            name = named or repr(orig_cl_ord_id)
            self._reject(
                cmd,
                seq,
                ref,
                Reason.UNKNOWN_ORDER,
                f"no open order {name} of account {acct.name} in {symbol}",
            )
            return None
        return o

    def _cancel(self, cmd: CancelCmd, seq: int) -> None:
        ts, gw, client, account, cl_ord_id, symbol, order_id, orig_cl_ord_id = astuple(cmd)
        acct = self._session(account, cl_ord_id, gw, client)
        if acct is None:
            return
        key, origin = (acct.name, cl_ord_id), acct.origin
        o = self._lookup(cmd, seq, REF_CANCEL, acct, symbol, order_id, orig_cl_ord_id)
        if o is None:
            return
        ev = self._take_out(self.books[symbol], o, CXL_USER, seq, ts, cl_ord_id)
        self._answer(acct, origin, key, o, ev)

    def _take_out(
        self, book: Book, o: Order, reason: int, seq: int, ts: int, req: str = ""
    ) -> Cancelled:
        q = o.leaves
        ev = book.cancel(o, reason, seq, ts, req)
        self.settle.closed(o, q)
        return ev

    def _answer(
        self, acct: Account, origin: tuple[str, bytes], key: tuple[str, str], o: Order, ev: Event
    ) -> None:
        """Report ``ev``, the answer to the command ``key`` from ``origin`` about ``acct``'s
        order ``o``."""
        acct.report(origin, DIRECT, ev)
        if o.origin != origin:  # the order's own session hears of it too, outside the sequence
            self.reports.append((o.origin, acct.name, OWNER, 0, ev))
        self.answers[key] = ev

    def _replace(self, cmd: ReplaceCmd, seq: int) -> None:
        ts, gw, client, account, cl_ord_id, symbol, price, qty, order_id, orig_cl_ord_id = astuple(
            cmd
        )
        acct = self._session(account, cl_ord_id, gw, client)
        if acct is None:
            return
        key, origin = (acct.name, cl_ord_id), acct.origin
        o = self._lookup(cmd, seq, REF_REPLACE, acct, symbol, order_id, orig_cl_ord_id)
        if o is None:
            return
        book = self.books[symbol]
        symbol = book.symbol
        if price <= 0:
            return self._reject(
                cmd,
                seq,
                REF_REPLACE,
                Reason.BAD_PRICE,
                f"price must be positive, was {self._px(symbol, price)}",
            )
        if price > MAX_TICKS:
            return self._reject(
                cmd,
                seq,
                REF_REPLACE,
                Reason.PRICE_OUT_OF_BAND,
                f"price must be at most {self._px(symbol, MAX_TICKS)} for {symbol}, "
                f"was {self._px(symbol, price)}",
            )
        if qty > MAX_LOTS:
            return self._reject(
                cmd,
                seq,
                REF_REPLACE,
                Reason.QTY_TOO_LARGE,
                f"qty must be at most {self._qty(symbol, MAX_LOTS)} for {symbol}, "
                f"was {self._qty(symbol, qty)}",
            )
        h = o.owner
        mult = h.mult
        if mult * qty * price > MAX_CASH:
            return self._reject(
                cmd,
                seq,
                REF_REPLACE,
                Reason.QTY_TOO_LARGE,
                f"notional {self._cash(mult * qty * price)} is above the "
                f"matcher's limit {self._cash(MAX_CASH)}",
            )
        if qty <= o.filled:
            return self._reject(
                cmd,
                seq,
                REF_REPLACE,
                Reason.INVALID_REPLACE,
                f"qty must be above the filled {self._qty(symbol, o.filled)}, "
                f"was {self._qty(symbol, qty)}",
            )
        leaves = qty - o.filled
        if leaves > o.leaves or price != o.price:  # it could add to the account's numbers
            worst = price
            if o.side != BUY and book.best_bid_px > price:
                worst = book.best_bid_px
            past = self._past_bounds(
                acct,
                h,
                o.side,
                leaves - o.leaves,
                mult * leaves * worst - mult * o.leaves * o.price,
            )
            if past is not None:
                return self._reject(cmd, seq, REF_REPLACE, Reason.RISK_LIMIT, past)
        if acct.checks and (leaves > o.leaves or price != o.price or acct.kill == KILL_BLOCK):
            old_cash = mult * o.leaves * o.price if o.side == BUY else 0
            refusal = self._risk(acct, h, o.side, price, leaves, o.leaves, old_cash, True)
            if refusal is not None:
                return self._reject(cmd, seq, REF_REPLACE, refusal[0], refusal[1])
        settle = self.settle
        if price == o.price and qty <= o.qty:
            less = o.leaves - leaves
            book.reduce(o, less)
            settle.reduced(o, less)
            o.qty = qty
            ev = Replaced(
                seq,
                ts,
                o.order_id,
                o.account,
                o.cl_ord_id,
                symbol,
                o.side,
                price,
                qty,
                leaves,
                True,
                cl_ord_id,
            )
            self.events.append(ev)
            return self._answer(acct, origin, key, o, ev)
        if o.post_only and price != o.price and book.would_cross(o.side, price):
            return self._reject(
                cmd,
                seq,
                REF_REPLACE,
                Reason.POST_ONLY_WOULD_CROSS,
                f"post_only order {o.order_id} at {self._px(symbol, price)} would cross",
            )
        # Loses priority: the old entry dies in its level, a new one joins the back.
        book.unrest(o)
        settle.closed(o, o.leaves)
        n = Order(
            o.order_id,
            h,
            o.account,
            o.cl_ord_id,
            symbol,
            o.side,
            price,
            qty,
            o.stp,
            o.post_only,
            o.origin,
        )
        n.filled = o.filled
        n.leaves = leaves
        o.leaves = 0  # the old incarnation is dead; everything it had moved to n
        events = self.events
        ev = Replaced(
            seq,
            ts,
            n.order_id,
            n.account,
            n.cl_ord_id,
            symbol,
            n.side,
            price,
            qty,
            leaves,
            False,
            cl_ord_id,
        )
        events.append(ev)
        self._answer(acct, origin, key, n, ev)
        if book.would_cross(n.side, price):
            start = len(events)
            done = not book.match(n, True, seq, ts)
            settle.matched(n, start, book.makers, done)
            if done or n.leaves == 0:
                return
        book.rest(n)
        settle.opened(n)

    def _cancel_all(
        self, acct: Account, reason: int, seq: int, ts: int, origin: tuple[str, bytes] | None = None
    ) -> int:
        """Cancel the account's open orders (only those entered from ``origin`` if given)."""
        n = 0
        for o in list(acct.orders.values()):
            if origin is not None and o.origin != origin:
                continue
            ev = self._take_out(self.books[o.symbol], o, reason, seq, ts)
            acct.report(o.origin, OWNER, ev)
            n += 1
        return n

    def _mass_cancel(self, cmd: MassCancelCmd, seq: int) -> None:
        # Cancel-on-disconnect: the session (gateway, client) that ended loses its orders;
        # the account's other sessions keep theirs.
        acct = self.accounts.get(cmd.account)
        if acct is not None:
            self._cancel_all(acct, cmd.reason, seq, cmd.ts, (cmd.gw, cmd.client))

    def _kill_switch(self, cmd: KillSwitchCmd, seq: int) -> None:
        operator = self._session(cmd.account, cmd.cl_ord_id, cmd.gw, cmd.client)
        if operator is None:
            return
        target = self.account(cmd.target)
        target.set_kill(cmd.mode)
        n = 0 if cmd.mode == KILL_OFF else self._cancel_all(target, CXL_KILL, seq, cmd.ts)
        ev = KillSwitchSet(seq, cmd.ts, cmd.account, cmd.cl_ord_id, cmd.target, cmd.mode, n)
        self.events.append(ev)
        operator.report(operator.origin, DIRECT, ev)
        if target is not operator:
            target.report(target.origin, OWNER, ev)
        self.answers[(cmd.account, cmd.cl_ord_id)] = ev

    def _limits(self, cmd: LimitsCmd, seq: int) -> None:
        self.account(cmd.account).set_limits(cmd.max_open_orders, cmd.credit, cmd.max_position)
        self.events.append(LimitsSet(seq, cmd.ts, cmd.account))

    # ----------------------------------------------------------- queries

    def query(self, q: QueryCmd) -> Answer:
        """Answer a read-only query from the current state (nothing changes, no seq)."""
        acct = self.accounts.get(q.account) or Account(q.account, [])
        if q.what == Q_ORDERS:
            orders = [
                OpenOrder(
                    o.order_id, o.cl_ord_id, o.symbol, o.side, o.price, o.qty, o.leaves, o.filled
                )
                for _, o in sorted(acct.orders.items())
                if not q.symbol or o.symbol == q.symbol
            ]
            return OrdersAnswer(self.seq, q.req_id, orders)
        if q.what == Q_BOOK:
            book = self.books.get(q.symbol)
            if book is None:
                return BookAnswer(self.seq, q.req_id, q.symbol, [], [])
            return BookAnswer(
                self.seq,
                q.req_id,
                q.symbol,
                book.depth(BUY)[: q.limit],
                book.depth(SELL)[: q.limit],
            )
        if q.what == Q_POSITIONS:
            positions = [Position(h.symbol, h.pos, h.bought, h.sold) for h in acct.traded()]
            return PositionsAnswer(
                self.seq, q.req_id, acct.cash, positions, len(acct.orders), acct.kill
            )
        last = len(acct.log)
        start = max(q.from_rseq, 1)
        end = min(last, start + max(q.limit, 0) - 1)
        reports: list = [
            (r, role, ev) for r, (role, ev) in enumerate(acct.log[start - 1 : end], start)
        ]
        return ReportsAnswer(start, end if end >= start else start - 1, last, reports)

    # ------------------------------------------------------------- state

    def state(self) -> state_mod.EngineState:
        """The canonical state: what a snapshot stores and the digest hashes."""
        return state_mod.capture(self)

    def state_bytes(self) -> bytes:
        """The snapshot's bytes: ``state()`` encoded, the growing parts from the digester's cache."""
        return self._digester.state_bytes(self)

    def state_parts(self) -> list[bytes]:
        """``state_bytes()`` as buffers to write one after another, most of them kept
        encodings shared, not copied (what the node hands the snapshot writer)."""
        return self._digester.state_parts(self)

    def catch_up(self, budget: int) -> int:
        """In idle time: encode up to ``budget`` new log entries and answers ahead of the next
        digest or snapshot, so those pause the matcher less (state.Digester)."""
        return self._digester.catch_up(self, budget)

    def keep_up(self, accounts: Iterable[str]) -> None:
        """After a loop turn, with the accounts it reported to: encode its new state entries
        for the next digest and snapshot (state.Digester.keep_up)."""
        self._digester.keep_up(self, accounts)

    def digest(self) -> bytes:
        """16 bytes of BLAKE2b over the canonical state: equal digests, equal state (state.Digester)."""
        return self._digester.digest(self)

    @classmethod
    def from_state(
        cls,
        st: state_mod.EngineState,
        symbols: Iterable[str | Instrument] = (),
        digest_every: int = 0,
        cash_mult: Mapping[str, int] | None = None,
    ) -> Engine:
        """Rebuild an engine from a snapshot's state; ``symbols`` as for Engine(): the listed
        instruments, which may add new ones to the snapshot's."""
        eng = cls(symbols, digest_every, cash_mult)
        state_mod.restore(eng, st)
        return eng
