"""Drive the engine and the model side by side; check the design's invariants on the engine.

``Driver.step`` takes an abstract command (drawn by ``commands``), makes it
concrete against what has happened so far (which order ids exist, which
cl_ord_ids were used), applies it to both, and asserts after every command:

- the engine's events equal the model's, field by field (seq and ts apart,
  which are checked against the command);
- both books are the same, in priority order and by level (``Book.depth``);
- ``Audit``: the invariants, checked from the engine's own event stream and
  book alone (ints everywhere, price-time priority, conservation, never
  crossed), so they hold even where the model might be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.settle import RESENT, TAKER
from zex.protocol.internal import (
    BUY,
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
    Accepted,
    CancelCmd,
    Cancelled,
    Digest,
    Expired,
    NewOrderCmd,
    Rejected,
    ReplaceCmd,
    Replaced,
    Trade,
    encoder,
)

from .model import Model

SYMBOLS = ["XYZ", "ABC"]
ACCOUNTS = ["alice", "bob", "carol"]
LOW, HIGH = 95, 105  # a narrow band, so orders cross often
UNKNOWN_ID = 999_999

# ------------------------------------------------------------ strategies
# Abstract commands: plain dicts, made concrete by Driver.build.

# Weights by repetition in sampled_from (one_of does not weight by repetition);
# each shrinks towards its first, most ordinary, choice.
dup_pick = st.tuples(st.sampled_from([False] * 7 + [True]), st.integers(0, 1000)).map(
    lambda t: t[1] if t[0] else None
)  # an int: reuse an earlier cl_ord_id
# ("live", i): an order resting now; ("any", i): any order ever accepted; ("unknown", _)
target = st.tuples(st.sampled_from(["live"] * 7 + ["any", "unknown"]), st.integers(0, 1000))
other_account = st.sampled_from([None] * 7 + list(range(len(ACCOUNTS))))  # None: the owner
flip = st.sampled_from([False] * 19 + [True])

new_orders = st.fixed_dictionaries(
    {
        "kind": st.just("new"),
        "acct": st.integers(0, len(ACCOUNTS) - 1),
        "sym": st.integers(0, len(SYMBOLS) - 1),
        "side": st.sampled_from([BUY, SELL]),
        "ord_type": st.sampled_from([LIMIT] * 5 + [MARKET]),
        "tif": st.sampled_from([GTC] * 4 + [IOC, FOK]),
        # buys 95..102, sells 98..105: they overlap enough to cross often and
        # rest often, so books get deep; shrinks towards the passive end
        "price": st.integers(0, HIGH - LOW - 3),
        "qty": st.integers(1, 10),
        "post_only": st.sampled_from([False] * 4 + [True]),
        "stp": st.sampled_from([STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH]),
        "dup": dup_pick,
    }
)

cancels = st.fixed_dictionaries(
    {
        "kind": st.just("cancel"),
        "acct": other_account,
        "sym_flip": flip,
        "target": target,
        "by_clid": st.booleans(),
        "dup": dup_pick,
    }
)

replaces = st.fixed_dictionaries(
    {
        "kind": st.just("replace"),
        "acct": other_account,
        "sym_flip": flip,
        "target": target,
        "price": st.one_of(st.none(), st.integers(LOW, HIGH)),  # None: keep the price
        "qty": st.one_of(
            st.tuples(st.just("abs"), st.integers(0, 12)),
            st.tuples(st.just("rel"), st.integers(-4, 3)),
        ),
        "by_clid": st.sampled_from([False, False, False, True]),
        "dup": dup_pick,
    }
)

_by_kind = {"new": new_orders, "cancel": cancels, "replace": replaces}
commands = st.sampled_from(["new"] * 5 + ["cancel", "replace"]).flatmap(_by_kind.__getitem__)
# Lists of lists: about 25 commands on average (a flat list averages 6), and
# still shrinks to a handful.
streams = st.lists(st.lists(commands, min_size=1, max_size=10), min_size=1, max_size=10).map(
    lambda chunks: [a for chunk in chunks for a in chunk]
)

# ------------------------------------------------------------ events


def event_key(ev) -> tuple:
    """The fields of an engine event the model predicts (all but seq, ts, text)."""
    t = type(ev)
    if t is Accepted:
        return (
            "Accepted",
            ev.order_id,
            ev.account,
            ev.cl_ord_id,
            ev.symbol,
            ev.side,
            ev.ord_type,
            ev.tif,
            ev.price,
            ev.qty,
        )
    if t is Rejected:
        return ("Rejected", ev.account, ev.cl_ord_id, ev.symbol, ev.ref, ev.reason)
    if t is Trade:
        return (
            "Trade",
            ev.trade_id,
            ev.symbol,
            ev.price,
            ev.qty,
            ev.taker_side,
            ev.taker_order_id,
            ev.taker_account,
            ev.taker_cl_ord_id,
            ev.taker_leaves,
            ev.maker_order_id,
            ev.maker_account,
            ev.maker_cl_ord_id,
            ev.maker_leaves,
        )
    if t is Cancelled or t is Expired:
        return (
            t.__name__,
            ev.order_id,
            ev.account,
            ev.cl_ord_id,
            ev.symbol,
            ev.side,
            ev.price,
            ev.qty,
            ev.reason,
        )
    if t is Replaced:
        return (
            "Replaced",
            ev.order_id,
            ev.account,
            ev.cl_ord_id,
            ev.symbol,
            ev.side,
            ev.price,
            ev.qty,
            ev.leaves,
            ev.kept_priority,
        )
    raise AssertionError(f"unexpected event {ev!r}")


INT_FIELDS = (
    "price",
    "qty",
    "leaves",
    "taker_leaves",
    "maker_leaves",
    "order_id",
    "taker_order_id",
    "maker_order_id",
    "trade_id",
    "seq",
    "ts",
)


def assert_ints(ev) -> None:
    for name in INT_FIELDS:
        v = getattr(ev, name, None)
        if v is not None:
            assert type(v) is int, f"{type(ev).__name__}.{name} is {type(v).__name__}: {v!r}"


# ------------------------------------------------------------ audit


@dataclass
class Tracked:
    """One order as its events tell it."""

    account: str
    symbol: str
    side: int
    price: int
    total: int
    arrival: int
    filled: int = 0
    closed: int = 0  # cancelled or expired


class Audit:
    """The invariants of DESIGN.md, from the engine's events and book only."""

    def __init__(self) -> None:
        self.orders: dict[int, Tracked] = {}
        self.clock = 0

    def _stamp(self) -> int:
        self.clock += 1
        return self.clock

    def apply(self, events: list) -> None:
        for ev in events:
            assert_ints(ev)
            t = type(ev)
            if t is Accepted:
                assert ev.order_id not in self.orders, f"order id {ev.order_id} reused"
                assert ev.qty > 0
                self.orders[ev.order_id] = Tracked(
                    ev.account, ev.symbol, ev.side, ev.price, ev.qty, self._stamp()
                )
            elif t is Trade:
                tk, mk = self.orders[ev.taker_order_id], self.orders[ev.maker_order_id]
                assert ev.qty > 0, ev
                assert tk.side == ev.taker_side and mk.side != tk.side, ev
                assert tk.symbol == mk.symbol == ev.symbol, ev
                assert ev.price == mk.price, f"trade not at the maker's price: {ev}"
                if tk.price:  # a limit taker never trades through its limit
                    assert ev.price <= tk.price if tk.side == BUY else ev.price >= tk.price, ev
                # one qty for both sides: the buyer gets what the seller gives
                tk.filled += ev.qty
                mk.filled += ev.qty
                assert ev.taker_leaves == tk.total - tk.filled - tk.closed >= 0, ev
                assert ev.maker_leaves == mk.total - mk.filled - mk.closed >= 0, ev
            elif t is Cancelled or t is Expired:
                o = self.orders[ev.order_id]
                assert ev.qty > 0, ev
                o.closed += ev.qty
                assert o.total == o.filled + o.closed, f"{ev} leaves {o}"
            elif t is Replaced:
                o = self.orders[ev.order_id]
                assert o.closed == 0, ev
                o.total, o.price = ev.qty, ev.price
                assert ev.leaves == ev.qty - o.filled > 0, ev
                if not ev.kept_priority:
                    o.arrival = self._stamp()
            elif t is Digest:
                pass
            else:
                assert t is Rejected, ev

    def check(self, eng: Engine) -> None:
        live: set[int] = set()
        for symbol, book in eng.books.items():
            for side in (BUY, SELL):
                orders = book.orders_in_priority(side)
                keys = []
                for o in orders:
                    for v in (o.price, o.qty, o.leaves, o.filled):
                        assert type(v) is int, f"order {o.order_id} holds {v!r}"
                    tr = self.orders[o.order_id]
                    assert (tr.symbol, tr.side, tr.account) == (symbol, side, o.account)
                    assert o.price == tr.price and o.qty == tr.total and o.filled == tr.filled
                    # conservation: fills + leaves + cancelled/expired == total
                    assert tr.filled + o.leaves + tr.closed == tr.total, (o.order_id, tr)
                    assert o.qty == o.filled + o.leaves + o.cancelled
                    assert o.leaves > 0
                    live.add(o.order_id)
                    keys.append((-o.price if side == BUY else o.price, tr.arrival))
                # price-time priority: better price first, then earlier arrival
                assert keys == sorted(keys), f"{symbol} side {side} out of priority: {keys}"
                assert len(set(keys)) == len(keys)
                levels: list[tuple[int, int, int]] = []
                for o in orders:
                    if levels and levels[-1][0] == o.price:
                        p, q, n = levels[-1]
                        levels[-1] = (p, q + o.leaves, n + 1)
                    else:
                        levels.append((o.price, o.leaves, 1))
                depth = book.depth(side)
                assert depth == levels, f"{symbol} side {side}: depth {depth}, orders {levels}"
                for lv in depth:
                    assert all(type(v) is int for v in lv), lv
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is None or ask is None or bid < ask, f"{symbol} crossed: {bid} >= {ask}"
            in_book = {o.order_id for s in (BUY, SELL) for o in book.orders_in_priority(s)}
            assert book.resting == len(in_book)  # the count the open_orders metric reads
            assert {
                oid
                for a in eng.accounts.values()
                for oid, o in a.orders.items()
                if o.symbol == symbol
            } == in_book
        # an order not in a book is finished: everything filled or closed
        for oid, tr in self.orders.items():
            if oid not in live:
                assert tr.total == tr.filled + tr.closed, (oid, tr)
        self.check_accounts(eng)

    def check_accounts(self, eng: Engine) -> None:
        """Settlement and exposure agree with the orders; every report is the account's own."""
        expected_pos: dict[tuple[str, str], int] = {}
        for tr in self.orders.values():
            k = (tr.account, tr.symbol)
            expected_pos[k] = expected_pos.get(k, 0) + (tr.filled if tr.side == BUY else -tr.filled)

        def held(a, symbol: str, field: str) -> int:
            h = a.holdings.get(symbol)
            return 0 if h is None else getattr(h, field)

        for symbol in eng.books:
            # every lot bought was sold by someone, and cash only changed hands
            assert sum(held(a, symbol, "pos") for a in eng.accounts.values()) == 0
            assert sum(held(a, symbol, "bought") for a in eng.accounts.values()) == sum(
                held(a, symbol, "sold") for a in eng.accounts.values()
            )
        assert sum(a.cash for a in eng.accounts.values()) == 0
        for name, a in eng.accounts.items():
            for symbol in eng.books:
                assert held(a, symbol, "pos") == expected_pos.get((name, symbol), 0), (name, symbol)
            mine = {
                o.order_id: o
                for b in eng.books.values()
                for s in (BUY, SELL)
                for o in b.orders_in_priority(s)
                if o.account == name
            }
            assert a.orders == mine, name
            for symbol in eng.books:
                buys = [o for o in mine.values() if o.side == BUY and o.symbol == symbol]
                sells = [o for o in mine.values() if o.side == SELL and o.symbol == symbol]
                assert held(a, symbol, "bid_lots") == sum(o.leaves for o in buys), (name, symbol)
                assert held(a, symbol, "ask_lots") == sum(o.leaves for o in sells), (name, symbol)
            assert a.bid_cash == sum(
                o.leaves * o.price * eng.cash_mult.get(o.symbol, 1)
                for o in mine.values()
                if o.side == BUY
            ), name
            assert a.ask_cash == sum(
                o.leaves * o.price * eng.cash_mult.get(o.symbol, 1)
                for o in mine.values()
                if o.side == SELL
            ), name
            for role, ev in a.log:
                if type(ev) is Trade:
                    assert (ev.taker_account if role == TAKER else ev.maker_account) == name, (
                        name,
                        role,
                        ev,
                    )
                else:
                    assert ev.account == name, (name, ev)


# ------------------------------------------------------------ driver


@dataclass
class Driver:
    """One engine and one model fed the same commands; every step is checked."""

    engine: Engine = field(default_factory=lambda: Engine(SYMBOLS))
    model: Model = field(default_factory=lambda: Model(SYMBOLS))
    audit: Audit = field(default_factory=Audit)
    commands: list = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # the engine's events per command
    used: list[tuple[str, str]] = field(default_factory=list)  # (account, cl_ord_id) so far
    check_model: bool = True  # False: the model only picks targets; invariants still checked
    last: list[tuple] = field(default_factory=list)  # event_key of the engine's last events
    n: int = 0

    def _cl_ord_id(self, account: str, dup: int | None) -> str:
        if dup is not None and self.used:
            mine = [c for a, c in self.used if a == account]
            if mine and dup % 3:
                return mine[dup % len(mine)]
            return self.used[dup % len(self.used)][1]  # maybe another account's: not a dup
        self.n += 1
        return f"c{self.n}"

    def _target(self, t: tuple[str, int]) -> int:
        kind, i = t
        if kind == "unknown" or not self.model.orders:
            return UNKNOWN_ID
        if kind == "live":
            live = sorted(o.order_id for b in self.model.resting.values() for o in b)
            if live:
                return live[i % len(live)]
        known = list(self.model.orders)
        return known[i % len(known)]

    def build(self, a: dict):
        """Make an abstract command concrete against the history so far."""
        ts = 1_000 * (len(self.commands) + 1)
        if a["kind"] == "new":
            account = ACCOUNTS[a["acct"]]
            market = a["ord_type"] == MARKET
            price = LOW + a["price"] if a["side"] == BUY else HIGH - a["price"]
            cmd = NewOrderCmd(
                ts,
                "gw1",
                account.encode(),
                account,
                self._cl_ord_id(account, a["dup"]),
                SYMBOLS[a["sym"]],
                a["side"],
                a["ord_type"],
                a["tif"],
                0 if market else price,
                a["qty"],
                a["post_only"],
                a["stp"],
            )
        else:
            oid = self._target(a["target"])
            o = self.model.orders.get(oid)
            owner = o.account if o else ACCOUNTS[0]
            account = owner if a["acct"] is None else ACCOUNTS[a["acct"]]
            symbol = o.symbol if o else SYMBOLS[0]
            if a["sym_flip"]:
                symbol = SYMBOLS[1 - SYMBOLS.index(symbol)]
            by = (
                dict(order_id=0, orig_cl_ord_id=o.cl_ord_id if o else "nope")
                if a["by_clid"]
                else dict(order_id=oid)
            )
            clid = self._cl_ord_id(account, a["dup"])
            if a["kind"] == "cancel":
                cmd = CancelCmd(ts, "gw2", account.encode(), account, clid, symbol, **by)
            else:
                price = a["price"]
                if price is None:  # keep the order's price
                    price = o.price if o and o.price else 100
                mode, q = a["qty"]
                qty = q if mode == "abs" or o is None else max(0, o.qty + q)
                cmd = ReplaceCmd(
                    ts, "gw2", account.encode(), account, clid, symbol, price, qty, **by
                )
        self.used.append((cmd.account, cmd.cl_ord_id))
        return cmd

    def step(self, a: dict) -> None:
        self.apply(self.build(a))

    def apply(self, cmd) -> None:
        self.commands.append(cmd)
        key = (cmd.account, cmd.cl_ord_id)
        first = self.model.answers.get(key)
        expected = self.model.process(cmd)
        eng = self.engine
        eng.process(cmd)
        reports = list(eng.reports)
        events = eng.take_events()
        self.encoded.append(encoder.encode(events))
        self.last = [event_key(e) for e in events if type(e) is not Digest]
        if expected is None:
            # a resend: nothing happens, the first answer goes back to the sender
            assert events == [], f"resend of {key} made events {events}"
            assert len(reports) == 1, reports
            origin, account, role, rseq, ev = reports[0]
            assert origin == (cmd.gw, cmd.client) and role == RESENT and rseq == 0, reports[0]
            assert not self.check_model or event_key(ev) == first, (event_key(ev), first)
        else:
            if self.check_model:
                assert self.last == expected, _diff(cmd, self.last, expected)
            for e in events:
                assert e.seq == eng.seq, f"{e} carries seq {e.seq}, command got {eng.seq}"
                if type(e) is not Digest:
                    assert e.ts == cmd.ts, e
        if self.check_model:
            self.compare_books()
        self.audit.apply(events)
        self.audit.check(eng)

    def compare_books(self) -> None:
        for symbol in SYMBOLS:
            book = self.engine.books[symbol]
            for side in (BUY, SELL):
                got = [
                    (o.order_id, o.account, o.price, o.qty, o.leaves, o.filled)
                    for o in book.orders_in_priority(side)
                ]
                want = [
                    (o.order_id, o.account, o.price, o.qty, o.leaves, o.filled)
                    for o in self.model.priority(symbol, side)
                ]
                assert got == want, (
                    f"{symbol} {'bids' if side == BUY else 'asks'}:\n"
                    f"  engine {got}\n  model  {want}"
                )
                assert book.depth(side) == self.model.depth(symbol, side)


def _diff(cmd, got: list, expected: list) -> str:
    lines = [f"events differ for {cmd!r}", "  engine:"]
    lines += [f"    {e}" for e in got]
    lines.append("  model:")
    lines += [f"    {e}" for e in expected]
    return "\n".join(lines)
