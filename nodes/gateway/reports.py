"""Turn the matcher's internal events and answers into client reports.

The matcher speaks ticks, lots and small integer enums; clients get the
self-describing maps of protocol/messages.py with decimal strings, formatted
by each Instrument (protocol/numbers.py), which caches them.
"""

from __future__ import annotations

from zex.protocol import messages as m
from zex.protocol.codec import encode
from zex.protocol.internal import (
    CXL_NAMES,
    EXP_NAMES,
    KILL_NAMES,
    MAKER_ROLE,
    MARKET,
    ORD_TYPE_NAMES,
    OTHER_SIDE,
    REF_TYPE_NAMES,
    RESENT_ROLE,
    SIDE_NAMES,
    TAKER_ROLE,
    TIF_NAMES,
    Accepted,
    Answer,
    BookAnswer,
    Cancelled,
    Event,
    Expired,
    KillSwitchSet,
    OrdersAnswer,
    PositionsAnswer,
    Rejected,
    Replaced,
    ReportsAnswer,
    Trade,
)
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import reason_name


class Reports:
    def __init__(self, instruments: tuple[Instrument, ...], cash: Cash) -> None:
        self.inst = {i.symbol: i for i in instruments}
        self.cash = cash
        # symbol -> the instrument's caching formatters (one C dict lookup a number once warm)
        self._px = {i.symbol: i.price_str for i in instruments}
        self._qty = {i.symbol: i.qty_str for i in instruments}

    def price(self, symbol: str, ticks: int) -> str:
        fmt = self._px.get(symbol)
        return str(ticks) if fmt is None else fmt[ticks]  # None: a symbol delisted since: raw ticks

    def qty(self, symbol: str, lots: int) -> str:
        fmt = self._qty.get(symbol)
        return str(lots) if fmt is None else fmt[lots]

    def event(self, ev: Event | Answer, role: int, rseq: int) -> m.Message | None:
        """The client report for one matcher event as seen by one account (None: nothing to say,
        or not an event: the payload of a report item may be either)."""
        # type(ev) is X rather than a local t: the type checker narrows ev on it, at the same cost
        resent = role == RESENT_ROLE
        if type(ev) is Accepted:
            return m.Ack(
                cl_ord_id=ev.cl_ord_id,
                order_id=ev.order_id,
                symbol=ev.symbol,
                side=SIDE_NAMES[ev.side],
                ord_type=ORD_TYPE_NAMES[ev.ord_type],
                tif=TIF_NAMES[ev.tif],
                price=None if ev.ord_type == MARKET else self.price(ev.symbol, ev.price),
                qty=self.qty(ev.symbol, ev.qty),
                seq=ev.seq,
                ts=ev.ts,
                rseq=rseq,
                resent=resent,
            )
        if type(ev) is Trade:
            taker = role == TAKER_ROLE
            if taker:
                oid, cl, side, leaves = (
                    ev.taker_order_id,
                    ev.taker_cl_ord_id,
                    ev.taker_side,
                    ev.taker_leaves,
                )
            elif role == MAKER_ROLE:
                oid, cl, leaves = ev.maker_order_id, ev.maker_cl_ord_id, ev.maker_leaves
                side = OTHER_SIDE[ev.taker_side]
            else:
                return None
            return m.Fill(
                order_id=oid,
                cl_ord_id=cl,
                symbol=ev.symbol,
                side=SIDE_NAMES[side],
                price=self.price(ev.symbol, ev.price),
                qty=self.qty(ev.symbol, ev.qty),
                leaves=self.qty(ev.symbol, leaves),
                trade_id=ev.trade_id,
                liquidity="taker" if taker else "maker",
                seq=ev.seq,
                ts=ev.ts,
                rseq=rseq,
            )
        if type(ev) is Rejected:
            return m.Reject(
                cl_ord_id=ev.cl_ord_id,
                ref_type=REF_TYPE_NAMES.get(ev.ref, "new_order"),
                reason=ev.reason,
                reason_name=reason_name(ev.reason),
                text=ev.text,
                seq=ev.seq,
                rseq=rseq,
                resent=resent,
            )
        if type(ev) is Cancelled:
            return m.Cancelled(
                order_id=ev.order_id,
                cl_ord_id=ev.req_cl_ord_id or ev.cl_ord_id,
                orig_cl_ord_id=ev.cl_ord_id,
                symbol=ev.symbol,
                side=SIDE_NAMES[ev.side],
                qty=self.qty(ev.symbol, ev.qty),
                reason=CXL_NAMES[ev.reason],
                seq=ev.seq,
                ts=ev.ts,
                rseq=rseq,
                resent=resent,
            )
        if type(ev) is Expired:
            return m.Expired(
                order_id=ev.order_id,
                cl_ord_id=ev.cl_ord_id,
                symbol=ev.symbol,
                side=SIDE_NAMES[ev.side],
                qty=self.qty(ev.symbol, ev.qty),
                reason=EXP_NAMES[ev.reason],
                seq=ev.seq,
                ts=ev.ts,
                rseq=rseq,
            )
        if type(ev) is Replaced:
            return m.Replaced(
                order_id=ev.order_id,
                cl_ord_id=ev.req_cl_ord_id or ev.cl_ord_id,
                orig_cl_ord_id=ev.cl_ord_id,
                symbol=ev.symbol,
                side=SIDE_NAMES[ev.side],
                price=self.price(ev.symbol, ev.price),
                qty=self.qty(ev.symbol, ev.qty),
                leaves=self.qty(ev.symbol, ev.leaves),
                kept_priority=ev.kept_priority,
                seq=ev.seq,
                ts=ev.ts,
                rseq=rseq,
                resent=resent,
            )
        if type(ev) is KillSwitchSet:
            return m.KillSwitchSet(
                cl_ord_id=ev.cl_ord_id,
                account=ev.target,
                mode=KILL_NAMES[ev.mode],
                cancelled=ev.cancelled,
                seq=ev.seq,
                ts=ev.ts,
                rseq=rseq,
                resent=resent,
            )
        return None

    def answer(self, ans: Event | Answer) -> list[bytes]:
        """The frames answering a query: one message, or for recover the reports then ``recovered``
        (none if ``ans`` is not an answer)."""
        if type(ans) is OrdersAnswer:
            orders = [
                m.OrderInfo(
                    order_id=o.order_id,
                    cl_ord_id=o.cl_ord_id,
                    symbol=o.symbol,
                    side=SIDE_NAMES[o.side],
                    price=self.price(o.symbol, o.price),
                    qty=self.qty(o.symbol, o.qty),
                    leaves=self.qty(o.symbol, o.leaves),
                    filled=self.qty(o.symbol, o.filled),
                )
                for o in ans.orders
            ]
            return [encode(m.Orders(req_id=ans.req_id, orders=orders, seq=ans.seq))]
        if type(ans) is PositionsAnswer:
            positions = [
                m.PositionInfo(
                    symbol=p.symbol,
                    qty=self.qty(p.symbol, p.lots),
                    bought=self.qty(p.symbol, p.bought),
                    sold=self.qty(p.symbol, p.sold),
                )
                for p in ans.positions
            ]
            return [
                encode(
                    m.Positions(
                        req_id=ans.req_id,
                        cash=self.cash.to_str(ans.cash),
                        positions=positions,
                        open_orders=ans.open_orders,
                        kill_switch=KILL_NAMES[ans.kill],
                        seq=ans.seq,
                    )
                )
            ]
        if type(ans) is BookAnswer:
            symbol = ans.symbol

            def levels(side: list[tuple[int, int, int]]) -> list[m.Level]:
                return [
                    m.Level(price=self.price(symbol, p), qty=self.qty(symbol, q), orders=n)
                    for p, q, n in side
                ]

            return [
                encode(
                    m.Book(
                        req_id=ans.req_id,
                        symbol=ans.symbol,
                        bids=levels(ans.bids),
                        asks=levels(ans.asks),
                        seq=ans.seq,
                    )
                )
            ]
        if type(ans) is ReportsAnswer:
            frames = []
            for rseq, role, ev in ans.reports:
                msg = self.event(ev, role, rseq)
                if msg is not None:
                    frames.append(encode(msg))
            frames.append(
                encode(
                    m.Recovered(
                        from_rseq=ans.from_rseq, to_rseq=ans.to_rseq, last_rseq=ans.last_rseq
                    )
                )
            )
            return frames
        return []
