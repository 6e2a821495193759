"""The marketdata node: one thread keeps a copy of every book and publishes the public feed.

    SUB+DEALER  matcher events + replay    the gap-free event stream (nodes/stream/consumer.py)
    PUB         marketdata.feed_bind       [topic, update]: md.<SYMBOL>.<channel> (protocol/marketdata.py)
    ROUTER      marketdata.snapshot_bind   SnapshotRequest in, Snapshot / L3Snapshot / SnapshotReject out
    PAIR        inproc control             stop() sends b"STOP"

For each matcher command the books change by, the node sends, back to back
and with the command's ``mseq``: the trades, the changed L2 levels, the new
best bid/offer if it changed, and (``l3 = true``) the order-by-order
changes, each on its own topic with its own gap-free ``seq``. Snapshots are
answered from the same thread, between batches, so a snapshot's ``seq`` is
exactly the last update of its topic that it includes (the Clone pattern).

The numbering is a function of the event stream alone: at start the node
replays the stream from seq 1 (replay service) without publishing, then
goes live where its numbering stands, so a node killed and restarted
continues every topic's ``seq``; subscribers see the updates made while it
was down as a gap, and resynchronise by snapshot. Snapshot requests that
arrive during that catch-up are answered once it is done.

Idle topics get an MdHeartbeat every ``heartbeat_ms`` carrying the next
``seq``. The PUB never blocks: a subscriber past its high-water mark loses
updates (it sees the gap); a disconnected subscriber is counted.
"""

from __future__ import annotations

import logging
import time
from typing import get_args

import msgspec
import zmq
from zmq.utils.monitor import recv_monitor_message

from zex.protocol import marketdata as md
from zex.protocol.codec import classify, peek
from zex.protocol.internal import BUY, SELL, SIDE_NAMES
from zex.protocol.messages import ReqId
from zex.protocol.reasons import Reason

from ..runtime.config import Config
from ..runtime.hotpath import MORE_NOBLOCK as _MORE
from ..runtime.hotpath import NOBLOCK as _NOBLOCK
from ..runtime.hotpath import send
from ..runtime.metrics import LATENCY_BUCKETS, histogram
from ..runtime.service import NodeThread
from ..stream.consumer import EventStream
from .view import Bbo as BboTuple
from .view import CommandUpdate, MarketView

log = logging.getLogger("zex.marketdata")

POLL_MS = 100  # idle wake-up for heartbeats and replay timeouts
MAX_REQUEST = 4096  # bytes; a SnapshotRequest is well under 100 (SPEC.md §12.4)
# The longest req_id a reply may carry (SPEC 12.4.9), from the wire type itself.
REQ_ID_MAX: int = get_args(ReqId)[1].max_length

MAX_WAITING = 10_000  # snapshot requests held while catching up at start


class MarketDataNode(NodeThread):
    """Run the marketdata node in a thread of this process: ``start()``, then ``stop()``."""

    def __init__(self, cfg: Config, ctx: zmq.Context | None = None) -> None:
        super().__init__("marketdata", ctx, log, cfg.marketdata.metrics_bind)
        self.cfg = cfg
        self.mc = cfg.marketdata
        self.symbols = [i.symbol for i in cfg.instruments]
        self.inst = {i.symbol: i for i in cfg.instruments}  # each formats (and caches) its numbers
        self.view = MarketView(self.symbols, l3=self.mc.l3)
        self.seqs: dict[bytes, int] = {}  # topic -> last seq sent on it
        self._sent_at: dict[bytes, float] = {}  # topic -> when it last carried anything
        self._topics: dict[tuple[str, str], bytes] = {}
        self.live = False  # False while catching up at start: apply, do not publish
        self.stream: EventStream | None = None
        # counters (exported as metrics by the metrics issue)
        self.published = 0
        self.snapshots = 0
        self.bad_requests = 0
        self.subscribers_disconnected = 0
        # command entered zex (gateway stamp) to its update sent
        self.h_publish = histogram(bool(self.mc.metrics_bind), LATENCY_BUCKETS)

    namespace = "marketdata"

    def _metrics(self) -> list:
        def stream(attr: str):
            return lambda: getattr(self.stream, attr, 0) if self.stream is not None else 0

        return [
            (
                "counter",
                "updates_published",
                "Feed messages sent (updates and heartbeats)",
                lambda: self.published,
            ),
            ("counter", "snapshots_served", "Snapshots answered", lambda: self.snapshots),
            (
                "counter",
                "bad_requests",
                "Snapshot requests refused as malformed",
                lambda: self.bad_requests,
            ),
            # A PUB drops for a subscriber past its HWM without telling anyone; what
            # the node can see is a subscriber going away, and resyncs (snapshots).
            (
                "counter",
                "subscribers_disconnected",
                "Feed subscribers that disconnected",
                lambda: self.subscribers_disconnected,
            ),
            (
                "counter",
                "event_gaps",
                "Gaps detected in the matcher's event stream",
                stream("gaps"),
            ),
            (
                "counter",
                "events_replayed",
                "Event batches fetched from the replay service",
                stream("replayed"),
            ),
            (
                "counter",
                "event_replay_timeouts",
                "Replay requests that timed out",
                stream("timeouts"),
            ),
            (
                "counter",
                "events_lost",
                "Matcher seqs the replay service could not provide",
                stream("lost"),
            ),
            (
                "histogram",
                "publish_delay_seconds",
                "From a command entering zex (the gateway's stamp) to "
                "its updates leaving this node's PUB",
                lambda: self.h_publish,
            ),
            (
                "gauge",
                "matcher_seq",
                "Last matcher seq applied to the books",
                lambda: self.view.last_seq,
            ),
            (
                "gauge",
                "live",
                "1 once caught up with the event stream and publishing",
                lambda: int(self.live),
            ),
        ]

    @property
    def events_endpoint(self) -> str:
        return self.mc.events or self.cfg.matcher.events_bind

    @property
    def replay_endpoint(self) -> str:
        return self.mc.replay or self.cfg.matcher.replay_bind

    # --------------------------------------------------------------- loop

    def _run(self) -> None:
        ctx = self.ctx
        pub = ctx.socket(zmq.PUB)
        router = ctx.socket(zmq.ROUTER)
        ctrl = ctx.socket(zmq.PAIR)
        monitor = None
        stream = None
        try:
            pub.linger = 0
            pub.sndhwm = self.mc.pub_hwm
            pub.bind(self.mc.feed_bind)
            monitor = pub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            router.linger = 0
            router.maxmsgsize = 1 << 20  # far above MAX_REQUEST: ZeroMQ drops the connection
            router.bind(self.mc.snapshot_bind)
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            stream = self.stream = EventStream(ctx, self.events_endpoint, self.replay_endpoint)
            log.info(
                "marketdata: feed on %s, snapshots on %s, events from %s",
                self.mc.feed_bind,
                self.mc.snapshot_bind,
                self.events_endpoint,
            )
            self._ready.set()
            self._loop(stream, pub, router, ctrl, monitor)
        except zmq.ContextTerminated:
            return
        finally:
            if stream is not None:
                stream.close()
            if monitor is not None:
                pub.disable_monitor()
                monitor.close(0)
            for s in (pub, router, ctrl):
                s.close(0)

    def _loop(self, stream: EventStream, pub, router, ctrl, monitor) -> None:
        def poller_for() -> zmq.Poller:
            p = zmq.Poller()
            for s in (ctrl, stream.sub, stream.replay, router, monitor):
                p.register(s, zmq.POLLIN)
            return p

        poller = poller_for()
        apply = self.view.apply_batch
        publish = self._publish
        observe = self.h_publish.observe
        heartbeat_s = self.mc.heartbeat_ms / 1000.0
        next_hb = time.monotonic() + heartbeat_s
        waiting: list[tuple[bytes, bytes]] = []  # snapshot requests held during catch-up
        while True:
            ready = dict(poller.poll(POLL_MS))
            if ctrl in ready:
                return
            for sock in (stream.sub, stream.replay):
                if sock in ready:
                    for batch in stream.read(sock):
                        updates = apply(batch)
                        if self.live and updates:
                            for u in updates:
                                publish(pub, u)
                            now_ns = time.time_ns()
                            for u in updates:
                                observe((now_ns - u.ts) * 1e-9)
                        else:  # catching up: number the updates exactly as if they had been sent
                            for u in updates:
                                self._count(u)
            if not self.live and stream.caught_up:
                self.live = True
                log.info("marketdata live at matcher seq %d", self.view.last_seq)
                for peer, raw in waiting:
                    self._snapshot(router, peer, raw)
                waiting.clear()
            if router in ready:
                self._requests(router, waiting)
            if monitor in ready:
                self._monitor(monitor)
            stream.tick()
            if stream.sockets_changed:
                stream.sockets_changed = False
                poller = poller_for()
            now = time.monotonic()
            if self.live and now >= next_hb:
                self._heartbeats(pub, now - heartbeat_s)
                next_hb = now + heartbeat_s

    # ----------------------------------------------------------- publishing

    def _send(self, pub: zmq.Socket, topic: bytes, msg: msgspec.Struct) -> None:
        # Two sends with int flags: pyzmq's send_multipart checks types and builds its flags
        # from enums per call, measured at twice the cost (bench/README.md, market data).
        send(pub, topic, _MORE)
        send(pub, md.encoder.encode(msg), _NOBLOCK)
        self.published += 1
        self._sent_at[topic] = time.monotonic()

    def _topic(self, symbol: str, channel: str) -> bytes:
        t = self._topics.get((symbol, channel))
        if t is None:
            t = self._topics[(symbol, channel)] = md.topic(symbol, channel)
        return t

    def _next(self, topic: bytes) -> int:
        seq = self.seqs.get(topic, 0) + 1
        self.seqs[topic] = seq
        return seq

    def _channels(self, u: CommandUpdate) -> list[str]:
        """The channels an update goes out on: what _publish sends and _count numbers."""
        out = []
        if u.trades:
            out.append("trades")
        if u.levels:
            out.append("l2")
        if u.bbo is not None:
            out.append("bbo")
        if u.orders and self.mc.l3:
            out.append("l3")
        return out

    def _count(self, u: CommandUpdate) -> None:
        """Advance the topics' seqs for an update without sending it (see _publish)."""
        for ch in self._channels(u):
            self._next(self._topic(u.symbol, ch))

    def _publish(self, pub: zmq.Socket, u: CommandUpdate) -> None:
        sym, topic = u.symbol, self._topic
        inst = self.inst[sym]
        px, lots = inst.price_str.__getitem__, inst.qty_str.__getitem__
        msg: md.FeedMessage
        for ch in self._channels(u):
            t = topic(sym, ch)
            seq = self._next(t)
            if ch == "trades":
                msg = md.Trades(
                    symbol=sym,
                    seq=seq,
                    mseq=u.seq,
                    ts=u.ts,
                    trades=[
                        md.TradeInfo(
                            trade_id=tid, price=px(p), qty=lots(q), aggressor=SIDE_NAMES[side]
                        )
                        for tid, p, q, side in u.trades
                    ],
                )
            elif ch == "l2":
                msg = md.L2Update(
                    symbol=sym,
                    seq=seq,
                    mseq=u.seq,
                    ts=u.ts,
                    changes=[
                        md.LevelChange(
                            action=a, side=SIDE_NAMES[side], price=px(p), qty=lots(q), orders=n
                        )
                        for a, side, p, q, n in u.levels
                    ],
                )
            elif ch == "bbo":
                assert u.bbo is not None  # _channels lists bbo only when it changed
                msg = self._bbo(sym, seq, u.seq, u.ts, u.bbo)
            else:
                msg = md.L3Update(
                    symbol=sym,
                    seq=seq,
                    mseq=u.seq,
                    ts=u.ts,
                    changes=[
                        md.OrderChange(
                            action=a, order_id=oid, side=SIDE_NAMES[side], price=px(p), qty=lots(q)
                        )
                        for a, oid, side, p, q in u.orders
                    ],
                )
            self._send(pub, t, msg)

    def _bbo(self, sym: str, seq: int, mseq: int, ts: int, bbo: BboTuple) -> md.Bbo:
        inst = self.inst[sym]
        bid, bid_qty, ask, ask_qty = bbo
        return md.Bbo(
            symbol=sym,
            seq=seq,
            mseq=mseq,
            ts=ts,
            bid_price=None if bid is None else inst.ticks_to_price(bid),
            bid_qty=None if bid is None else inst.lots_to_qty(bid_qty),
            ask_price=None if ask is None else inst.ticks_to_price(ask),
            ask_qty=None if ask is None else inst.lots_to_qty(ask_qty),
        )

    def _heartbeats(self, pub: zmq.Socket, quiet_since: float) -> None:
        channels = md.CHANNELS if self.mc.l3 else tuple(c for c in md.CHANNELS if c != "l3")
        mseq = self.view.last_seq
        sent_at = self._sent_at
        interval = self.mc.heartbeat_ms
        for sym in self.symbols:
            for ch in channels:
                t = md.topic(sym, ch)
                if sent_at.get(t, 0.0) <= quiet_since:
                    self._send(
                        pub,
                        t,
                        md.MdHeartbeat(
                            symbol=sym,
                            channel=ch,
                            next_seq=self.seqs.get(t, 0) + 1,
                            mseq=mseq,
                            heartbeat_ms=interval,
                        ),
                    )

    # ------------------------------------------------------------ snapshots

    def _requests(self, router: zmq.Socket, waiting: list) -> None:
        for _ in range(1000):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.bad_requests += 1
                self._reply(
                    router,
                    frames[0],
                    md.SnapshotReject(
                        req_id="",
                        code=int(Reason.MALFORMED),
                        text="a snapshot request is one frame from a DEALER (SPEC.md §12.5)",
                    ),
                )
                continue
            if not self.live:
                # Held until caught up: the newest request per subscriber, well-formed size only.
                if len(frames[1]) > MAX_REQUEST:
                    self._snapshot(router, frames[0], frames[1])  # refused at once: FRAME_TOO_LARGE
                    continue
                if len(waiting) >= MAX_WAITING:
                    self._refuse(
                        router,
                        frames[0],
                        "",
                        Reason.INTERNAL,
                        f"{MAX_WAITING} snapshot requests are waiting for this node to catch up "
                        "with the matcher; ask again in a few seconds",
                    )
                    continue
                waiting[:] = [w for w in waiting if w[0] != frames[0]]
                waiting.append((frames[0], frames[1]))
                continue
            self._snapshot(router, frames[0], frames[1])

    def _snapshot(self, router: zmq.Socket, peer: bytes, raw: bytes) -> None:
        if len(raw) > MAX_REQUEST:
            return self._refuse(
                router,
                peer,
                "",
                Reason.FRAME_TOO_LARGE,
                f"frame is {len(raw)} bytes; the limit is {MAX_REQUEST}",
            )
        try:
            req = md.snapshot_request_decoder.decode(raw)
        except (
            msgspec.ValidationError,
            msgspec.DecodeError,
            UnicodeDecodeError,
            RecursionError,
        ) as exc:
            err = classify(raw, exc)
            return self._refuse(
                router, peer, peek(raw)[1], err.reason, f"bad snapshot_request: {err.text}"
            )
        if peek(raw)[0] != "snapshot_request":  # a lone Struct type decodes without its tag: insist
            return self._refuse(router, peer, req.req_id, Reason.MISSING_FIELD, "type is required")
        if req.v != md.VERSION:
            return self._refuse(
                router,
                peer,
                req.req_id,
                Reason.UNSUPPORTED_VERSION,
                f"v must be {md.VERSION}, was {req.v}",
            )
        book = self.view.books.get(req.symbol)
        if book is None:
            self._reply(
                router,
                peer,
                md.SnapshotReject(
                    req_id=req.req_id,
                    code=int(Reason.UNKNOWN_SYMBOL),
                    text=f"symbol {req.symbol!r} is not listed; listed: {', '.join(self.symbols)}",
                ),
            )
            return
        if req.channel == "l3" and not self.mc.l3:
            self._reply(
                router,
                peer,
                md.SnapshotReject(
                    req_id=req.req_id,
                    code=int(Reason.INVALID_VALUE),
                    text="channel l3 is off on this feed (marketdata.l3 = false)",
                ),
            )
            return
        inst = self.inst[req.symbol]
        depth = req.depth or None
        mseq = self.view.last_seq
        seq = self.seqs.get(md.topic(req.symbol, req.channel), 0)
        self.snapshots += 1
        msg: md.Snapshot | md.L3Snapshot
        if req.channel == "l2":

            def levels(side: int) -> list[md.SnapLevel]:
                return [
                    md.SnapLevel(price=inst.ticks_to_price(p), qty=inst.lots_to_qty(q), orders=n)
                    for p, q, n in book.levels(side)[:depth]
                ]

            msg = md.Snapshot(
                req_id=req.req_id,
                symbol=req.symbol,
                seq=seq,
                mseq=mseq,
                bids=levels(BUY),
                asks=levels(SELL),
            )
        else:

            def orders(side: int) -> list[md.SnapOrder]:
                return [
                    md.SnapOrder(
                        order_id=oid, price=inst.ticks_to_price(p), qty=inst.lots_to_qty(q)
                    )
                    for oid, p, q in book.orders(side)[:depth]
                ]

            msg = md.L3Snapshot(
                req_id=req.req_id,
                symbol=req.symbol,
                seq=seq,
                mseq=mseq,
                bids=orders(BUY),
                asks=orders(SELL),
            )
        self._reply(router, peer, msg)

    def _refuse(
        self, router: zmq.Socket, peer: bytes, req_id: str, code: Reason, text: str
    ) -> None:
        self.bad_requests += 1
        if len(req_id) > REQ_ID_MAX:
            # SPEC 12.4.9: the request's req_id, or empty if it could not be read. One over its
            # length is not a req_id: echoed, it made a reply the subscriber's decoder refuses,
            # so the client never saw why it got no snapshot (found by fuzz/ snapshot).
            req_id = ""
        self._reply(router, peer, md.SnapshotReject(req_id=req_id, code=int(code), text=text))

    def _reply(self, router: zmq.Socket, peer: bytes, msg: msgspec.Struct) -> None:
        try:
            router.send_multipart([peer, md.encoder.encode(msg)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the subscriber went away or is not reading: it asks again after its timeout

    def _monitor(self, monitor: zmq.Socket) -> None:
        while True:
            try:
                ev = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if ev["event"] == zmq.EVENT_DISCONNECTED:
                self.subscribers_disconnected += 1
