"""Read the audit trail: queries (by account, order, symbol, time) and verification.

    rows = list(query(Path("data/logger"), Filter(account="alice")))
    report = verify(Path("data/logger"))      # report.ok, report.lines()

A row is one thing that happened, from the matcher's events (every state
change of every order, with its seq) or from a node's audit records (logons,
rejects at the gateway, operator requests, dropped sessions). The life of
one order (``Filter(order_id=N)``) is its acceptance (``ts`` is when the
gateway received it), each fill, each replace and its end (cancelled or
expired), plus whatever the gateway refused under its client order id.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from zex.protocol.internal import (
    CXL_NAMES,
    EXP_NAMES,
    KILL_NAMES,
    SIDE_NAMES,
    TIF_NAMES,
    Accepted,
    Cancelled,
    Expired,
    KillSwitchSet,
    LimitsSet,
    Rejected,
    Replaced,
    Trade,
    audit_decoder,
    batch_decoder,
)
from zex.protocol.reasons import reason_name

from .segments import KIND_AUDIT, KIND_EVENTS, read, segments
from .segments import Damaged as Damaged  # re-exported: `zex audit` catches query.Damaged


@dataclass
class Row:
    ts: int  # ns since the epoch: when the command entered zex, or when the node saw it
    source: str  # "matcher" or the node's name
    kind: str
    account: str = ""
    seq: int = 0
    order_id: int = 0
    cl_ord_id: str = ""
    symbol: str = ""
    side: str = ""
    price: int = 0  # ticks
    qty: int = 0  # lots
    detail: str = ""
    accounts: tuple[str, ...] = ()  # every account the row concerns (both sides of a trade)
    order_ids: tuple[int, ...] = ()
    cl_ord_ids: tuple[str, ...] = ()


@dataclass
class Filter:
    account: str = ""
    order_id: int = 0
    cl_ord_id: str = ""
    symbol: str = ""
    since: int = 0  # ns, inclusive
    until: int = 0  # ns, exclusive; 0: no bound

    def wants(self, r: Row) -> bool:
        if self.account and self.account not in r.accounts:
            return False
        if self.order_id and self.order_id not in r.order_ids:
            return False
        if self.cl_ord_id and self.cl_ord_id not in r.cl_ord_ids:
            return False
        if self.symbol and r.symbol != self.symbol:
            return False
        if self.since and r.ts < self.since:
            return False
        return not (self.until and r.ts >= self.until)


def rows_of_event(ev) -> Row | None:
    t = type(ev)
    if t is Accepted:
        return Row(
            ev.ts,
            "matcher",
            "accepted",
            ev.account,
            ev.seq,
            ev.order_id,
            ev.cl_ord_id,
            ev.symbol,
            SIDE_NAMES.get(ev.side, ""),
            ev.price,
            ev.qty,
            TIF_NAMES.get(ev.tif, ""),
            (ev.account,),
            (ev.order_id,),
            (ev.cl_ord_id,),
        )
    if t is Trade:
        return Row(
            ev.ts,
            "matcher",
            "trade",
            ev.taker_account,
            ev.seq,
            ev.taker_order_id,
            ev.taker_cl_ord_id,
            ev.symbol,
            SIDE_NAMES.get(ev.taker_side, ""),
            ev.price,
            ev.qty,
            f"trade {ev.trade_id}: taker #{ev.taker_order_id} {ev.taker_account} (leaves {ev.taker_leaves}) "
            f"maker #{ev.maker_order_id} {ev.maker_account} (leaves {ev.maker_leaves})",
            (ev.taker_account, ev.maker_account),
            (ev.taker_order_id, ev.maker_order_id),
            (ev.taker_cl_ord_id, ev.maker_cl_ord_id),
        )
    if t is Cancelled:
        return Row(
            ev.ts,
            "matcher",
            "cancelled",
            ev.account,
            ev.seq,
            ev.order_id,
            ev.cl_ord_id,
            ev.symbol,
            SIDE_NAMES.get(ev.side, ""),
            ev.price,
            ev.qty,
            CXL_NAMES.get(ev.reason, str(ev.reason)),
            (ev.account,),
            (ev.order_id,),
            (ev.cl_ord_id, ev.req_cl_ord_id),
        )
    if t is Expired:
        return Row(
            ev.ts,
            "matcher",
            "expired",
            ev.account,
            ev.seq,
            ev.order_id,
            ev.cl_ord_id,
            ev.symbol,
            SIDE_NAMES.get(ev.side, ""),
            ev.price,
            ev.qty,
            EXP_NAMES.get(ev.reason, str(ev.reason)),
            (ev.account,),
            (ev.order_id,),
            (ev.cl_ord_id,),
        )
    if t is Replaced:
        return Row(
            ev.ts,
            "matcher",
            "replaced",
            ev.account,
            ev.seq,
            ev.order_id,
            ev.cl_ord_id,
            ev.symbol,
            SIDE_NAMES.get(ev.side, ""),
            ev.price,
            ev.qty,
            f"leaves {ev.leaves}, {'kept' if ev.kept_priority else 'lost'} priority",
            (ev.account,),
            (ev.order_id,),
            (ev.cl_ord_id, ev.req_cl_ord_id),
        )
    if t is Rejected:
        return Row(
            ev.ts,
            "matcher",
            "rejected",
            ev.account,
            ev.seq,
            0,
            ev.cl_ord_id,
            ev.symbol,
            detail=f"{_reason(ev.reason)}: {ev.text}",
            accounts=(ev.account,),
            cl_ord_ids=(ev.cl_ord_id,),
        )
    if t is KillSwitchSet:
        return Row(
            ev.ts,
            "matcher",
            "kill_switch_set",
            ev.account,
            ev.seq,
            cl_ord_id=ev.cl_ord_id,
            detail=f"{ev.target} -> {KILL_NAMES.get(ev.mode, ev.mode)}, {ev.cancelled} cancelled",
            accounts=(ev.account, ev.target),
            cl_ord_ids=(ev.cl_ord_id,),
        )
    if t is LimitsSet:
        return Row(ev.ts, "matcher", "limits_set", ev.account, ev.seq, accounts=(ev.account,))
    return None  # Digest: not an audit fact


def _reason(code: int) -> str:
    return f"{code} {reason_name(code)}"


def query(directory: Path, f: Filter) -> Iterator[Row]:
    """The rows the filter wants, in the order the logger wrote them (damage raises Damaged)."""
    paths = segments(directory)
    for i, path in enumerate(paths):
        entries, _, damage = read(path, last=i == len(paths) - 1)
        for e in entries:
            if e.kind == KIND_EVENTS:
                for ev in batch_decoder.decode(e.payload).events:
                    r = rows_of_event(ev)
                    if r is not None and f.wants(r):
                        yield r
            elif e.kind == KIND_AUDIT:
                a = audit_decoder.decode(e.payload)
                detail = f"{_reason(a.reason)}: {a.text}" if a.reason else a.text
                r = Row(
                    a.ts,
                    a.source,
                    a.kind,
                    a.account,
                    cl_ord_id=a.cl_ord_id,
                    detail=detail,
                    accounts=(a.account,),
                    cl_ord_ids=(a.cl_ord_id,),
                )
                if f.wants(r):
                    yield r
        if damage is not None:
            raise damage


def order_life(directory: Path, order_id: int) -> list[Row]:
    """Everything about one order: its events, and the gateway's refusals under its cl_ord_ids.

    One pass over the trail: the order's rows, and every node record that names a
    cl_ord_id (few: refusals and requests), kept until the order's ids are known.
    """
    mine: list[Row] = []
    nodes: list[Row] = []
    for r in query(directory, Filter()):
        if order_id in r.order_ids:
            mine.append(r)
        elif r.source != "matcher" and r.cl_ord_id:
            nodes.append(r)
    accepted = [r for r in mine if r.kind == "accepted"]
    if not accepted:
        return mine
    ids = {c for r in accepted for c in r.cl_ord_ids if c}
    extra = [r for r in nodes if r.account == accepted[0].account and set(r.cl_ord_ids) & ids]
    return sorted(mine + extra, key=lambda r: (r.ts, r.seq))


# ------------------------------------------------------------- verification


@dataclass
class Report:
    segments: int = 0
    records: int = 0
    batches: int = 0
    audit_records: int = 0
    first_seq: int = 0
    last_seq: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [
            f"{self.segments} segments, {self.records} records: {self.batches} event batches "
            f"(matcher seq {self.first_seq}..{self.last_seq}), {self.audit_records} audit records"
        ]
        out += [f"PROBLEM {p}" for p in self.problems]
        out.append(
            "OK: every checksum matches and the matcher's sequence has no gap"
            if self.ok
            else f"FAILED: {len(self.problems)} problem(s)"
        )
        return out


def verify(directory: Path) -> Report:
    """Check every record's CRC and decoding, and that event batches continue seq 1, 2, ... with no gap."""
    rep = Report()
    paths = segments(directory)
    rep.segments = len(paths)
    expect = 1
    for i, path in enumerate(paths):
        entries, _, damage = read(path, last=i == len(paths) - 1)
        for e in entries:
            rep.records += 1
            try:
                if e.kind == KIND_EVENTS:
                    b = batch_decoder.decode(e.payload)
                    rep.batches += 1
                    if b.first_seq != expect:
                        what = "gap" if b.first_seq > expect else "repeat"
                        rep.problems.append(
                            f"{e.path}: offset {e.offset}: seq {what}: expected {expect}, "
                            f"batch covers {b.first_seq}..{b.last_seq}"
                        )
                    rep.first_seq = rep.first_seq or b.first_seq
                    rep.last_seq = b.last_seq
                    expect = max(expect, b.last_seq + 1)
                elif e.kind == KIND_AUDIT:
                    audit_decoder.decode(e.payload)
                    rep.audit_records += 1
                else:
                    rep.problems.append(
                        f"{e.path}: offset {e.offset}: unknown record kind {e.kind}"
                    )
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                rep.problems.append(f"{e.path}: offset {e.offset}: record does not decode: {exc}")
        if damage is not None:
            rep.problems.append(f"{damage}; the records after it in this segment were not read")
    return rep


# ------------------------------------------------------------------ output

COLUMNS = (
    "time",
    "seq",
    "source",
    "kind",
    "account",
    "order",
    "cl_ord_id",
    "symbol",
    "side",
    "price",
    "qty",
    "detail",
)


def when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def format_row(r: Row, inst) -> dict:
    """The row with decimal prices and quantities (``inst``: symbol -> Instrument, may lack it)."""
    i = inst.get(r.symbol)
    price = (i.ticks_to_price(r.price) if i else str(r.price)) if r.price else ""
    qty = (i.lots_to_qty(r.qty) if i else str(r.qty)) if r.qty else ""
    return {
        "time": when(r.ts),
        "seq": r.seq or "",
        "source": r.source,
        "kind": r.kind,
        "account": r.account,
        "order": r.order_id or "",
        "cl_ord_id": r.cl_ord_id,
        "symbol": r.symbol,
        "side": r.side,
        "price": price,
        "qty": qty,
        "detail": r.detail,
    }


def as_json(r: Row, inst) -> str:
    d = format_row(r, inst)
    d["ts"] = r.ts
    d["seq"] = r.seq
    d["order"] = r.order_id
    return json.dumps(d)


def as_table(rows: list[Row], inst) -> str:
    data = [format_row(r, inst) for r in rows]
    widths = {c: max([len(c)] + [len(str(d[c])) for d in data]) for c in COLUMNS}
    widths["detail"] = len("detail")
    head = "  ".join(c.ljust(widths[c]) for c in COLUMNS)
    body = ["  ".join(str(d[c]).ljust(widths[c]) for c in COLUMNS) for d in data]
    return "\n".join([head, *body])
