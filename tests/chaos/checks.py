"""The invariants a crash-anywhere run must end with, checked from the files and the live views.

    truth = replay_journal(cluster)          # the journal through a fresh Engine
    problems, figures = check_all(cluster, truth, traders, views)

Sources compared: the journal (commands; replayed, it gives every event),
the audit trail (the events the logger wrote), what each client was told
(acks, fills, cancels, replaces; its open orders), the matcher's live book
(a gateway query), the marketdata node's snapshot and a feed subscriber
that lived through the whole run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from zex.nodes.logger.query import verify
from zex.nodes.logger.segments import KIND_EVENTS
from zex.nodes.logger.segments import scan as scan_trail
from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.journal import scan as scan_journal
from zex.protocol.internal import (
    BUY,
    Q_ORDERS,
    Accepted,
    Cancelled,
    Digest,
    QueryCmd,
    Replaced,
    Trade,
    batch_decoder,
    command_decoder,
)
from zex.protocol.numbers import Cash

from .cluster import SYMBOLS, Cluster
from .traders import Trader, norm_levels


@dataclass
class Truth:
    """What the journal says, replayed through a fresh engine."""

    engine: Engine
    last_seq: int = 0
    records: int = 0
    accepted: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    trades: Counter = field(default_factory=Counter)  # (symbol, trade_id) -> times seen
    trade: dict[tuple[str, int], Trade] = field(default_factory=dict)
    # (account, request cl_ord_id) -> order
    cancels: dict[tuple[str, str], int] = field(default_factory=dict)
    replaces: dict[tuple[str, str], int] = field(default_factory=dict)
    gap: str = ""
    instruments: tuple = ()
    # account -> open orders at its seq
    orders_at: dict[str, list[tuple]] = field(default_factory=dict)

    def book(self, symbol: str) -> tuple[list, list]:
        inst = {i.symbol: i for i in self.instruments}[symbol]
        b = self.engine.books[symbol]
        return tuple(
            norm_levels(
                (inst.ticks_to_price(p), inst.lots_to_qty(q), n) for p, q, n in b.depth(side)
            )
            for side in (BUY, 2)
        )

    def open_orders(self, account: str) -> list[tuple]:
        inst = {i.symbol: i for i in self.instruments}
        ans = self.engine.query(QueryCmd("chaos", b"", account, Q_ORDERS))
        return sorted(
            (
                o.order_id,
                o.cl_ord_id,
                o.symbol,
                "buy" if o.side == BUY else "sell",
                Decimal(inst[o.symbol].ticks_to_price(o.price)),
                Decimal(inst[o.symbol].lots_to_qty(o.qty)),
                Decimal(inst[o.symbol].lots_to_qty(o.leaves)),
                Decimal(inst[o.symbol].lots_to_qty(o.filled)),
            )
            for o in ans.orders
        )


def replay_journal(cl: Cluster, orders_at: dict[str, int] | None = None) -> Truth:
    """Run every journaled command through a fresh engine (as ``zex replay`` does) and index the events.

    ``orders_at`` {account: seq}: also take each account's open orders as they
    were right after command ``seq`` (when its client asked), in ``Truth.orders_at``.
    """
    cfg = cl.cfg
    engine = Engine(cfg.instruments, cfg.matcher.digest_every, Cash(cfg.instruments).mult)
    t = Truth(engine, instruments=cfg.instruments)
    decode = command_decoder.decode
    expect = 1
    wanted: dict[int, list[str]] = defaultdict(list)
    for account, seq in (orders_at or {}).items():
        wanted[seq].append(account)
    for account in wanted.pop(0, []):
        t.orders_at[account] = t.open_orders(account)
    for rec in scan_journal(cl.data):  # raises JournalCorrupt on any gap, repeat or broken chain
        if rec.first_seq != expect and not t.gap:
            t.gap = f"journal record {rec.path.name}@{rec.offset} starts at seq {rec.first_seq}, expected {expect}"
        expect = rec.last_seq + 1
        for raw in rec.commands:
            engine.process(decode(raw))
            for account in wanted.pop(engine.seq, ()):
                t.orders_at[account] = t.open_orders(account)
        for ev in engine.events:
            typ = type(ev)
            if typ is Accepted:
                t.accepted[(ev.account, ev.cl_ord_id)].append(ev.order_id)
            elif typ is Trade:
                key = (ev.symbol, ev.trade_id)
                t.trades[key] += 1
                t.trade[key] = ev
            elif typ is Cancelled and ev.req_cl_ord_id:
                t.cancels[(ev.account, ev.req_cl_ord_id)] = ev.order_id
            elif typ is Replaced and ev.req_cl_ord_id:
                t.replaces[(ev.account, ev.req_cl_ord_id)] = ev.order_id
        engine.events.clear()
        engine.reports.clear()
        t.records += 1
        t.last_seq = rec.last_seq
    return t


@dataclass
class Views:
    """What the live system said at the end, once every node had caught up."""

    final_seq: int = 0
    matcher_books: dict = field(default_factory=dict)  # symbol -> (bids, asks), via a gateway query
    md_books: dict = field(default_factory=dict)  # symbol -> (bids, asks), a marketdata snapshot
    md_mseq: dict = field(default_factory=dict)
    feed_books: dict = field(default_factory=dict)  # the long-lived BookSubscriber's books
    feed_matched: bool | None = None
    exit_codes: dict = field(default_factory=dict)


def check_all(cl: Cluster, t: Truth, traders: list[Trader], v: Views) -> tuple[list[str], dict]:
    """Every invariant; returns (problems, figures). No problems: the run passed."""
    problems: list[str] = []
    fig: dict = {}
    say = problems.append

    # 1. The journal: seq 1..N with no gap (scan verified checksums and the chain), N = the matcher's last.
    if t.gap:
        say(t.gap)
    if t.last_seq != v.final_seq:
        say(f"journal ends at seq {t.last_seq}, the matcher said {v.final_seq}")
    fig["commands"] = t.last_seq

    # 2. Acknowledged orders: each in the journal exactly once, under the order id the client was told.
    lost, wrong_id, sent, acked, rejected = [], [], 0, 0, 0
    duplicated = [
        f"{a} {c}: accepted {len(ids)} times {ids}"
        for (a, c), ids in t.accepted.items()
        if len(ids) > 1
    ]
    for tr in traders:
        sent += tr.sent_orders
        acked += len(tr.seen.acks)
        rejected += tr.rejected_orders
        duplicated += tr.seen.conflicts
        for cl_id, oid in tr.seen.acks.items():
            ids = t.accepted.get((tr.account, cl_id))
            if not ids:
                lost.append(f"{tr.account} {cl_id} (order {oid})")
            elif ids[0] != oid:
                wrong_id.append(
                    f"{tr.account} {cl_id}: client was told order {oid}, journal says {ids[0]}"
                )
        for what, mine, theirs in (
            ("cancel", tr.seen.cancels, t.cancels),
            ("replace", tr.seen.replaces, t.replaces),
        ):
            for cl_id, oid in mine.items():
                if theirs.get((tr.account, cl_id)) != oid:
                    lost.append(f"{tr.account} {what} {cl_id} of order {oid}: not in the journal")
    fig.update(
        orders_sent=sent,
        acknowledged=acked,
        rejected=rejected,
        lost=len(lost),
        duplicated=len(duplicated),
    )
    for p in lost[:10]:
        say(f"LOST acknowledged: {p}")
    for p in duplicated[:10]:
        say(f"DUPLICATED: {p}")
    for p in wrong_id[:10]:
        say(p)

    # 3. Trades: unique per symbol in the journal; every fill a client saw is one of them, same price and qty.
    dup_trades = [k for k, n in t.trades.items() if n > 1]
    if dup_trades:
        say(f"trade ids repeated in the journal replay: {dup_trades[:5]}")
    seen_trades: set = set()
    inst = {i.symbol: i for i in cl.cfg.instruments}
    for tr in traders:
        if tr.seen.fill_repeats:
            say(f"{tr.account}: {tr.seen.fill_repeats} fills delivered twice in the report stream")
        for key, f in tr.seen.fills.items():
            seen_trades.add(key)
            ev = t.trade.get(key)
            if ev is None:
                say(
                    f"{tr.account} saw trade {key} (fill of order {f.order_id}): not in the journal"
                )
            elif (Decimal(f.price), Decimal(f.qty)) != (
                Decimal(inst[f.symbol].ticks_to_price(ev.price)),
                Decimal(inst[f.symbol].lots_to_qty(ev.qty)),
            ):
                say(
                    f"{tr.account} trade {key}: fill {f.qty} @ {f.price}, journal {ev.qty} lots @ {ev.price} ticks"
                )
    fig["trades_seen"] = len(seen_trades)
    fig["trades"] = len(t.trades)
    # ... and every trade reached both its accounts (their report streams are gap-free, recovered at the end).
    for tr in traders:
        mine = {
            k for k, ev in t.trade.items() if tr.account in (ev.taker_account, ev.maker_account)
        }
        unseen = sorted(mine - set(tr.seen.fills))
        if unseen:
            say(
                f"{tr.account}: {len(unseen)} of its {len(mine)} trades in the journal never reached it, "
                f"e.g. {unseen[:3]}"
            )

    # 4. The audit trail: verifies, covers 1..N, and holds each trade and each acceptance exactly once.
    rep = verify(cl.trail)
    if not rep.ok:
        say("audit trail: " + "; ".join(rep.problems[:5]))
    if (rep.first_seq, rep.last_seq) != (1, t.last_seq):
        say(f"audit trail covers seq {rep.first_seq}..{rep.last_seq}, the journal 1..{t.last_seq}")
    trail_trades: Counter = Counter()
    trail_accepted: Counter = Counter()
    digests = 0
    for e in scan_trail(cl.trail):
        if e.kind == KIND_EVENTS:
            for ev in batch_decoder.decode(e.payload).events:
                if type(ev) is Trade:
                    trail_trades[(ev.symbol, ev.trade_id)] += 1
                elif type(ev) is Accepted:
                    trail_accepted[(ev.account, ev.cl_ord_id)] += 1
                elif type(ev) is Digest:
                    digests += 1
    if any(n != 1 for n in trail_trades.values()) or set(trail_trades) != set(t.trades):
        extra = [k for k, n in trail_trades.items() if n != 1][:3]
        missing = sorted(set(t.trades) - set(trail_trades))[:3]
        say(
            f"audit trail trades differ from the journal: repeated {extra}, missing {missing}, "
            f"{len(trail_trades)} vs {len(t.trades)}"
        )
    if any(n != 1 for n in trail_accepted.values()) or set(trail_accepted) != set(t.accepted):
        say(
            f"audit trail acceptances differ from the journal: {len(trail_accepted)} vs {len(t.accepted)}"
        )
    missing_in_trail = [k for k in seen_trades if k not in trail_trades]
    if missing_in_trail:
        say(f"trades clients saw that the audit trail lacks: {missing_in_trail[:5]}")
    fig["trail_records"] = rep.records
    fig["trail_audit_records"] = rep.audit_records
    # state digests in the trail; `zex replay` below compares each with a fresh replay's
    fig["digests"] = digests
    if cl.cfg.matcher.digest_every and digests != t.last_seq // cl.cfg.matcher.digest_every:
        say(
            f"the trail holds {digests} state digests, expected {t.last_seq // cl.cfg.matcher.digest_every}"
        )

    # 5. `zex replay`: the journal through a fresh engine agrees with the trail, event by event.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "zex.nodes.tools.cli",
            "replay",
            str(cl.data),
            "--trail",
            str(cl.trail),
            "--config",
            str(cl.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    ends = re.search(r"journal ends at seq ([\d,]+), trail at ([\d,]+)", out.stdout)
    if out.returncode != 0 or "OK: the journal, the engine and the trail agree" not in out.stdout:
        say(f"zex replay failed ({out.returncode}): {(out.stdout + out.stderr)[-800:]}")
    elif ends is None or {int(x.replace(",", "")) for x in ends.groups()} != {t.last_seq}:
        say(
            f"zex replay compared a different range: {ends.group(0) if ends else out.stdout[-300:]}"
        )

    # 6. Books: the matcher's (live), the marketdata node's snapshot and the feed subscriber's equal the replay's.
    for s in SYMBOLS:
        want = t.book(s)
        if v.matcher_books.get(s) != want:
            say(
                f"{s}: the matcher's book differs from the journal replay's: {v.matcher_books.get(s)} vs {want}"
            )
        if v.md_books.get(s) != want:
            say(
                f"{s}: the marketdata snapshot (mseq {v.md_mseq.get(s)}) differs from the journal replay's"
            )
        if v.feed_matched is not None and v.feed_books.get(s) != want:
            say(f"{s}: the feed subscriber's book differs from the journal replay's")
    if v.feed_matched is False:
        say("the feed subscriber never caught up with the final books")

    # 7. Clients' views: each account's open orders (its `orders` query) equal the replay engine's at that
    # query's seq (a client that logs out afterwards may have its orders cancelled on disconnect).
    for tr in traders:
        if tr.final_orders is None or tr.account not in t.orders_at:
            say(
                f"{tr.account}: no final orders query (or its seq {tr.final_orders_seq} is not in the journal)"
            )
            continue
        mine = sorted(
            (
                o.order_id,
                o.cl_ord_id,
                o.symbol,
                o.side,
                Decimal(o.price),
                Decimal(o.qty),
                Decimal(o.leaves),
                Decimal(o.filled),
            )
            for o in tr.final_orders
        )
        want = t.orders_at[tr.account]
        if mine != want:
            diff = sorted(set(mine) ^ set(want))[:3]
            say(
                f"{tr.account}: open orders per the gateway ({len(mine)}) differ from the replay's "
                f"({len(want)}): e.g. {diff}"
            )

    # 8. Every node stopped cleanly at the end.
    bad = {n: c for n, c in v.exit_codes.items() if c != 0}
    if bad:
        say(f"nodes did not stop cleanly (exit status): {bad}")
    return problems, fig
