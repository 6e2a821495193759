"""Property tests: MarketView, fed a real engine's event stream, keeps the engine's books.

A real Engine runs random command streams (the matcher harness's orders,
cancels and replaces over its narrow price band, plus cancel-on-disconnect
and kill switches; 2 symbols, 3 accounts, a Digest every few commands).
After every command its events go to the view as one EventBatch, and:

- the view's levels and orders equal the engine's depth and priority order;
- a subscriber book built only from the updates' L2 and L3 deltas equals
  them too, and never sees a delta that does not fit (an add of a level it
  has, a change that changes nothing, an order added and touched again in
  one command);
- bbo_changed is true exactly when the engine's best bid or ask moved, and
  the trades are the engine's Trade events of that symbol;
- a view with l3=False says the same without orders, and a view that lists
  one symbol only says the same for that symbol.

Delivered in batches of several commands, overlapping and re-delivered,
through a state() round trip, the view gives the same updates and books.
"""

from __future__ import annotations

import os

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zex.nodes.marketdata.view import CommandUpdate, MarketView
from zex.nodes.matcher.book import Book
from zex.nodes.matcher.engine import Engine
from zex.protocol.internal import (
    BUY,
    CXL_DISCONNECT,
    GTC,
    IOC,
    KILL_BLOCK,
    KILL_OFF,
    KILL_REDUCE_ONLY,
    LIMIT,
    SELL,
    STP_CANCEL_BOTH,
    Accepted,
    CancelCmd,
    EventBatch,
    KillSwitchCmd,
    MassCancelCmd,
    NewOrderCmd,
    ReplaceCmd,
    Trade,
)

from ..matcher.harness import (
    ACCOUNTS,
    HIGH,
    LOW,
    SYMBOLS,
    UNKNOWN_ID,
    cancels,
    new_orders,
    replaces,
)

# 200 examples: about 7 s for both properties on 2 cores; set ZEX_PROPERTY_EXAMPLES=5000
# for a long hunt.
EXAMPLES = int(os.environ.get("ZEX_PROPERTY_EXAMPLES", "200"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DIGEST_EVERY = 7  # Digest events in the stream, which the view must pass over
SIDES = (BUY, SELL)

# ------------------------------------------------------------ strategies

mass_cancels = st.fixed_dictionaries(
    {
        "kind": st.just("mass"),
        "acct": st.integers(0, len(ACCOUNTS) - 1),
        "other_session": st.sampled_from([False] * 3 + [True]),  # a session with no orders
    }
)
kills = st.fixed_dictionaries(
    {
        "kind": st.just("kill"),
        "acct": st.integers(0, len(ACCOUNTS) - 1),
        # mostly off again: a blocked account only makes rejects
        "mode": st.sampled_from([KILL_OFF, KILL_OFF, KILL_BLOCK, KILL_REDUCE_ONLY]),
    }
)
_by_kind = {
    "new": new_orders,
    "cancel": cancels,
    "replace": replaces,
    "mass": mass_cancels,
    "kill": kills,
}
commands = st.sampled_from(
    ["new"] * 20 + ["cancel"] * 4 + ["replace"] * 4 + ["mass"] * 2 + ["kill"]
).flatmap(_by_kind.__getitem__)
streams = st.lists(st.lists(commands, min_size=1, max_size=10), min_size=1, max_size=10).map(
    lambda chunks: [a for chunk in chunks for a in chunk]
)


class Builder:
    """Make abstract commands concrete against the engine's state (the harness's rules)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.n = 0
        self.used: list[tuple[str, str]] = []
        self.known: dict[int, tuple[str, str, str]] = {}  # order_id -> (account, symbol, cl_ord_id)

    def learn(self, events: list) -> None:
        for ev in events:
            if type(ev) is Accepted:
                self.known[ev.order_id] = (ev.account, ev.symbol, ev.cl_ord_id)

    def _cl_ord_id(self, account: str, dup: int | None) -> str:
        if dup is not None and self.used:
            return self.used[dup % len(self.used)][1]  # a resend, or another account's id
        self.n += 1
        return f"c{self.n}"

    def build(self, a: dict, ts: int):
        kind = a["kind"]
        if kind == "new":
            account = ACCOUNTS[a["acct"]]
            # one tick more aggressive than the harness (buys 96..103, sells 104..97),
            # so that about half of the limit orders cross
            price = LOW + 1 + a["price"] if a["side"] == BUY else HIGH - 1 - a["price"]
            limit = a["ord_type"] == LIMIT
            # a market order with tif gtc is only a reject: make most of them trade
            tif = IOC if not limit and a["tif"] == GTC and a["qty"] > 2 else a["tif"]
            cmd = NewOrderCmd(
                ts,
                "gw1",
                account.encode(),
                account,
                self._cl_ord_id(account, a["dup"]),
                SYMBOLS[a["sym"]],
                a["side"],
                a["ord_type"],
                tif,
                price if limit else 0,
                a["qty"],
                a["post_only"],
                a["stp"],
            )
        elif kind == "mass":
            account = ACCOUNTS[a["acct"]]
            gw = "gw9" if a["other_session"] else "gw1"  # new orders all come in through gw1
            return MassCancelCmd(ts, gw, account.encode(), account, CXL_DISCONNECT)
        elif kind == "kill":
            self.n += 1
            return KillSwitchCmd(
                ts, "gw3", b"ops", "ops", f"k{self.n}", ACCOUNTS[a["acct"]], a["mode"]
            )
        else:
            oid, live = self._target(a["target"])
            account, symbol, clid = self.known.get(oid, (ACCOUNTS[0], SYMBOLS[0], "nope"))
            if a["acct"] is not None:
                account = ACCOUNTS[a["acct"]]
            if a["sym_flip"]:
                symbol = SYMBOLS[1 - SYMBOLS.index(symbol)]
            by = dict(order_id=0, orig_cl_ord_id=clid) if a["by_clid"] else dict(order_id=oid)
            new_clid = self._cl_ord_id(account, a["dup"])
            if kind == "cancel":
                cmd = CancelCmd(ts, "gw2", account.encode(), account, new_clid, symbol, **by)
            else:
                price = a["price"] or (live.price if live else 100)
                mode, q = a["qty"]
                qty = q if mode == "abs" or live is None else max(0, live.qty + q)
                cmd = ReplaceCmd(
                    ts, "gw2", account.encode(), account, new_clid, symbol, price, qty, **by
                )
        self.used.append((cmd.account, cmd.cl_ord_id))
        return cmd

    def _target(self, t: tuple[str, int]):
        kind, i = t
        if kind == "unknown" or not self.known:
            return UNKNOWN_ID, None
        open_orders = {oid: o for a in self.engine.accounts.values() for oid, o in a.orders.items()}
        if kind == "live" and open_orders:
            live = sorted(open_orders)
            oid = live[i % len(live)]
        else:
            known = list(self.known)
            oid = known[i % len(known)]
        return oid, open_orders.get(oid)


# ------------------------------------------------------------ subscriber


class Subscriber:
    """A client's books built from the updates alone, strict about what each delta may do."""

    def __init__(self) -> None:
        self.levels: dict[tuple[str, int], dict[int, tuple[int, int]]] = {}  # price -> (qty, count)
        self.orders: dict[tuple[str, int], dict[int, dict[int, int]]] = {}  # price -> {oid: leaves}
        self.where: dict[int, tuple[str, int, int]] = {}  # oid -> (symbol, side, price)

    def apply(self, u: CommandUpdate) -> None:
        seen = set()
        for action, side, price, qty, count in u.levels:
            assert (side, price) not in seen, f"level {side} {price} reported twice: {u}"
            seen.add((side, price))
            book = self.levels.setdefault((u.symbol, side), {})
            if action == "add":
                assert price not in book and qty > 0 and count > 0, u
                book[price] = (qty, count)
            elif action == "change":
                assert price in book and book[price] != (qty, count) and qty > 0 and count > 0, u
                book[price] = (qty, count)
            else:
                assert action == "delete" and price in book and qty == count == 0, u
                del book[price]
        added = set()
        for action, oid, side, price, leaves in u.orders:
            # an order rests only at the very end of its command
            assert oid not in added, f"order {oid} touched after it rested: {u}"
            levels = self.orders.setdefault((u.symbol, side), {})
            if action == "add":
                assert oid not in self.where and leaves > 0, u
                levels.setdefault(price, {})[oid] = leaves  # joins the back
                self.where[oid] = (u.symbol, side, price)
                added.add(oid)
            elif action == "modify":
                assert self.where[oid] == (u.symbol, side, price) and leaves > 0, u
                assert levels[price][oid] != leaves, u
                levels[price][oid] = leaves
            else:
                assert action == "delete" and leaves == 0, u
                assert self.where.pop(oid) == (u.symbol, side, price), u
                del levels[price][oid]
                if not levels[price]:
                    del levels[price]

    def depth(self, symbol: str, side: int) -> list[tuple[int, int, int]]:
        book = self.levels.get((symbol, side), {})
        return [(p, *book[p]) for p in sorted(book, reverse=side == BUY)]

    def priority(self, symbol: str, side: int) -> list[tuple[int, int, int]]:
        levels = self.orders.get((symbol, side), {})
        return [
            (oid, p, leaves)
            for p in sorted(levels, reverse=side == BUY)
            for oid, leaves in levels[p].items()
        ]


# ------------------------------------------------------------ driving


def bbo_of(book: Book) -> tuple:
    bid, ask = book.best_bid(), book.best_ask()
    return (
        bid,
        book.bids[bid].qty if bid is not None else 0,
        ask,
        book.asks[ask].qty if ask is not None else 0,
    )


def engine_orders(book: Book, side: int) -> list[tuple[int, int, int]]:
    return [(o.order_id, o.price, o.leaves) for o in book.orders_in_priority(side)]


def without_orders(updates: list[CommandUpdate]) -> list[tuple]:
    return [(u.seq, u.ts, u.symbol, u.trades, u.levels, u.bbo_changed) for u in updates]


def drive(stream: list[dict], check: bool) -> tuple[Engine, MarketView, list, list]:
    """Run the stream one command a batch; return engine, view, batches and updates."""
    eng = Engine(SYMBOLS, digest_every=DIGEST_EVERY)
    view = MarketView(SYMBOLS)
    lean = MarketView(SYMBOLS, l3=False)
    one = MarketView(SYMBOLS[:1])  # the other symbol's events are not its business
    sub = Subscriber()
    builder = Builder(eng)
    batches: list[EventBatch] = []
    updates: list[CommandUpdate] = []
    for i, a in enumerate(stream):
        before = {s: bbo_of(b) for s, b in eng.books.items()}
        cmd = builder.build(a, 1_000 * (i + 1))
        eng.process(cmd)
        events = list(eng.events)
        eng.events.clear()  # in place: the books append to this very list
        eng.reports.clear()
        builder.learn(events)
        batch = EventBatch(eng.seq, eng.seq, events)
        got = view.apply_batch(batch)
        batches.append(batch)
        updates.extend(got)
        assert view.last_seq == eng.seq
        if check:
            check_command(eng, view, sub, cmd, events, got, before)
            lean_got = lean.apply_batch(batch)
            assert without_orders(lean_got) == without_orders(got)
            assert all(u.orders == [] for u in lean_got)
            assert one.apply_batch(batch) == [u for u in got if u.symbol == SYMBOLS[0]]
    if check:
        assert_same_books(one, eng, SYMBOLS[:1])
    return eng, view, batches, updates


def check_command(
    eng: Engine,
    view: MarketView,
    sub: Subscriber,
    cmd,
    events: list,
    got: list[CommandUpdate],
    before: dict,
) -> None:
    by_symbol = {u.symbol: u for u in got}
    assert len(by_symbol) == len(got), f"a symbol updated twice by one command: {got}"
    trades: dict[str, list] = {}
    for ev in events:
        if type(ev) is Trade:
            trades.setdefault(ev.symbol, []).append((ev.trade_id, ev.price, ev.qty, ev.taker_side))
    for u in got:
        assert (u.seq, u.ts) == (eng.seq, cmd.ts), u
        assert u.trades or u.levels or u.orders or u.bbo_changed, f"an empty update: {u}"
        sub.apply(u)
    for symbol, book in eng.books.items():
        u = by_symbol.get(symbol)
        assert (u.trades if u else []) == trades.get(symbol, []), (symbol, u, events)
        vb = view.books[symbol]
        for side in SIDES:
            depth, orders = book.depth(side), engine_orders(book, side)
            assert vb.levels(side) == depth, (symbol, side, events)
            assert vb.orders(side) == orders, (symbol, side, events)
            assert sub.depth(symbol, side) == depth, (symbol, side, got)
            assert sub.priority(symbol, side) == orders, (symbol, side, got)
        after = bbo_of(book)
        assert vb.bbo() == after
        assert (u.bbo_changed if u else False) == (after != before[symbol]), (symbol, u, events)
        if u is not None and u.bbo_changed:
            assert u.bbo == after, (symbol, u, events)


def assert_same_books(view: MarketView, eng: Engine, symbols: list[str]) -> None:
    assert sorted(view.books) == sorted(symbols)
    for symbol in symbols:
        book = eng.books[symbol]
        for side in SIDES:
            assert view.books[symbol].levels(side) == book.depth(side)
            assert view.books[symbol].orders(side) == engine_orders(book, side)


# ------------------------------------------------------------ properties


@PROPS
@given(streams)
def test_view_and_deltas_follow_the_engine(stream):
    drive(stream, check=True)


# (size, back, again): a batch of `size` commands that starts `back` commands
# before the next new one (overlap), then maybe the last batch re-delivered.
deliveries = st.lists(
    st.tuples(st.integers(1, 8), st.sampled_from([0, 0, 0, 1, 3]), st.booleans()),
    min_size=1,
    max_size=20,
)


@PROPS
@given(streams, deliveries, st.integers(0, 100))
def test_batches_overlap_and_redelivery_change_nothing(stream, sizes, split):
    eng, single, batches, updates = drive(stream, check=False)
    view = MarketView(SYMBOLS)
    got: list[CommandUpdate] = []
    i = k = 0
    restored = False
    while i < len(batches):
        size, back, again = sizes[k % len(sizes)]
        k += 1
        chunk = batches[max(0, i - back) : i + size]
        batch = EventBatch(
            chunk[0].first_seq, chunk[-1].last_seq, [e for c in chunk for e in c.events]
        )
        got.extend(view.apply_batch(batch))
        assert view.last_seq == batch.last_seq
        i += size
        if again:
            state = view.state()
            assert view.apply_batch(batch) == []
            assert view.state() == state
        if not restored and i >= split:
            # a restart from a snapshot: the rest of the stream gives the same updates
            restored = True
            raw = msgspec.msgpack.encode(view.state())
            view = MarketView.from_state(msgspec.msgpack.decode(raw))
    assert got == updates
    assert view.last_seq == single.last_seq == eng.seq
    assert view.state() == single.state()
    assert_same_books(view, eng, SYMBOLS)


# ------------------------------------------------------- worked examples


def new(acct, clid, side, price, qty, tif=GTC, stp=STP_CANCEL_BOTH):
    return NewOrderCmd(
        0, "gw", acct.encode(), acct, clid, "XYZ", side, LIMIT, tif, price, qty, False, stp
    )


def updates_of(*cmds):
    eng = Engine(["XYZ"])
    view = MarketView(["XYZ"])
    out = []
    for c in cmds:
        eng.process(c)
        out.append(view.apply_batch(EventBatch(eng.seq, eng.seq, eng.take_events())))
    return out


def test_what_rests_is_inferred_at_the_end_of_the_command():
    *_, [u] = updates_of(new("a", "1", SELL, 100, 2), new("b", "2", BUY, 101, 5))
    assert u.trades == [(1, 100, 2, BUY)]
    assert u.levels == [("delete", SELL, 100, 0, 0), ("add", BUY, 101, 3, 1)]
    assert u.orders == [("delete", 1, SELL, 100, 0), ("add", 2, BUY, 101, 3)]
    assert u.bbo_changed


def test_an_ioc_taker_leaves_no_trace_but_its_trades():
    *_, [u] = updates_of(new("a", "1", SELL, 100, 5), new("b", "2", BUY, 101, 2, tif=IOC))
    assert u.levels == [("change", SELL, 100, 3, 1)]
    assert u.orders == [("modify", 1, SELL, 100, 3)]


def test_a_replace_that_loses_priority_is_delete_then_add():
    replace = ReplaceCmd(0, "gw", b"a", "a", "r", "XYZ", 99, 7, 1)
    *_, [u] = updates_of(new("a", "1", BUY, 99, 5), new("b", "2", BUY, 99, 5), replace)
    assert u.levels == [("change", BUY, 99, 12, 2)]
    assert u.orders == [("delete", 1, BUY, 99, 0), ("add", 1, BUY, 99, 7)]
    assert u.bbo_changed  # the qty at the best bid grew


def test_stp_cancel_both_and_a_quiet_command():
    # b's buy meets its own ask: both go, nothing rests, the level is gone
    # the third command is a resend: no events at all
    *_, [u], quiet = updates_of(
        new("b", "1", SELL, 100, 2), new("b", "2", BUY, 100, 2), new("b", "2", BUY, 100, 2)
    )
    assert u.trades == [] and u.levels == [("delete", SELL, 100, 0, 0)]
    assert u.orders == [("delete", 1, SELL, 100, 0)]
    assert quiet == []
