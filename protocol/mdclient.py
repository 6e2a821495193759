"""Subscribe to the zex market-data feed and keep local L2 books in sync (SPEC.md §12).

    from zex.protocol.mdclient import BookSubscriber

    with BookSubscriber("tcp://127.0.0.1:7104", "tcp://127.0.0.1:7105", ["XYZ", "ABC"],
                        on_trade=print) as md:
        md.run_until(lambda: md.synced("XYZ"), timeout=5.0)
        while True:
            md.poll(1.0)                                  # trades reach on_trade meanwhile
            bid, ask = md.book("XYZ").best()              # ("101.5", "6", 1) or None
            top5 = md.book("XYZ").levels("sell", 5)

This is the ZeroMQ guide's Clone pattern. Wire: one SUB connected to the
feed PUB, subscribed to ``md.<SYM>.l2``, ``.bbo`` and ``.trades`` of each
symbol (two frames: topic, one MessagePack map); one DEALER connected to the
snapshot ROUTER (one frame each way: ``snapshot_request`` -> ``snapshot`` or
``snapshot_reject``). Codec and message types: protocol/marketdata.py.

Sync, per symbol: the l2 topic's messages are buffered from the moment the
subscription is live (its first message, an update or a heartbeat, proves
that) and the snapshot is requested then, or after JOIN_WAIT at the latest.
The snapshot loads the book as of its ``seq``; buffered updates with a
higher seq are applied, the rest dropped. A snapshot older than the buffer
(its seq below the first buffered seq minus one) is requested again. Once in
sync, an update or heartbeat that shows a missing seq (or a sequence that
went backwards) throws the book away and starts over. A snapshot that does
not arrive within ``timeout`` is requested again on a new DEALER.

Counters: ``gaps`` (sequence gaps seen on any subscribed topic), ``resyncs``
(snapshots requested again after a gap broke a synced book or a snapshot
came back older than the buffer), ``timeouts`` (snapshot requests that
expired), ``snapshot_requests`` (all sent), ``bad_frames`` (feed or reply
frames that did not decode or did not match their topic; skipped).

Threads: the sockets are created in ``__init__`` and used by ``poll``; use
one subscriber from the thread that created it. There is no background thread.
Under gevent pass ``context=zmq.green.Context()``: sockets and poller are then green.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

import msgspec
import zmq
from sortedcontainers import SortedDict

from .errors import ZexError
from .marketdata import (
    HEARTBEAT_MS,
    Bbo,
    L2Update,
    L3Update,
    MdHeartbeat,
    Snapshot,
    SnapshotReject,
    SnapshotRequest,
    Trades,
    encoder,
    feed_decoder,
    snapshot_reply_decoder,
    topic,
)
from .messages import VERSION, Side
from .reasons import reason_name

JOIN_WAIT = 3 * HEARTBEAT_MS / 1000  # s: ask for the first snapshot by then, heard or not
BUFFER_LIMIT = 100_000  # l2 updates held per symbol while its snapshot is on the way
# The channel of each update type: its tag, typed as the str it is.
_CHANNELS: dict[type, str] = {
    c: str(c.__struct_config__.tag) for c in (Trades, Bbo, L2Update, L3Update)
}
DRAIN_LIMIT = 1_000  # frames read from one socket per poll turn, so both sockets get a turn

Level = tuple[str, str, int]  # (price, qty, orders), as on the wire

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class SnapshotRejected(ZexError):
    """The snapshot service refused a request; ``code`` is a reason code (SPEC.md §5)."""

    def __init__(self, symbol: str, code: int, text: str) -> None:
        name = reason_name(code)
        super().__init__(f"snapshot of {symbol} rejected: {code} {name}: {text}")
        self.symbol = symbol
        self.code = code
        self.text = text


def _decimal(value: str, field: str, symbol: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{field} must be a decimal string in {symbol}, was {value!r}") from None


class LocalBook:
    """One symbol's L2 book as the feed describes it: per side, price -> (qty, orders).

        book = LocalBook("XYZ")
        book.load(snapshot)        # the book as of l2 update snapshot.seq
        book.apply(update)         # update.seq must be book.seq + 1
        book.levels("buy", 5)      # [("101.5", "6", 1), ...], best first
        book.best()                # (best bid, best ask), each a level or None

    ``bids`` and ``asks`` map ``decimal.Decimal`` prices to (qty str, orders
    int). ``seq`` is the l2 update the book reflects, ``mseq`` the matcher
    command (0 and 0 for an empty book that was never loaded).
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.seq = 0
        self.mseq = 0
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.seq = self.mseq = 0

    def load(self, snapshot: Snapshot) -> None:
        """Replace the whole book with ``snapshot``."""
        if snapshot.symbol != self.symbol:
            raise ValueError(f"snapshot of {snapshot.symbol} loaded into the book of {self.symbol}")
        sides = []
        for name, levels in (("bids", snapshot.bids), ("asks", snapshot.asks)):
            side = SortedDict()
            for lv in levels:
                price = _decimal(lv.price, f"{name}.price", self.symbol)
                if _decimal(lv.qty, f"{name}.qty", self.symbol) != 0:
                    side[price] = (lv.qty, lv.orders)
            sides.append(side)
        self.bids, self.asks = sides
        self.seq, self.mseq = snapshot.seq, snapshot.mseq

    def apply(self, update: L2Update) -> None:
        """Set each changed level to its final state (qty 0 or delete: remove it)."""
        if update.symbol != self.symbol:
            raise ValueError(f"l2 update of {update.symbol} applied to the book of {self.symbol}")
        if update.seq != self.seq + 1:
            raise ValueError(
                f"l2 update seq must be {self.seq + 1} for {self.symbol}, was {update.seq}"
            )
        # all first, so a bad change leaves the book untouched
        parsed = [
            (c, _decimal(c.price, "price", self.symbol), _decimal(c.qty, "qty", self.symbol))
            for c in update.changes
        ]
        for c, price, qty in parsed:
            side = self.bids if c.side == "buy" else self.asks
            if c.action == "delete" or qty == 0:
                side.pop(price, None)
            else:
                side[price] = (c.qty, c.orders)
        self.seq, self.mseq = update.seq, update.mseq

    def levels(self, side: Side, depth: int = 0) -> list[Level]:
        """The levels of ``side`` ("buy" or "sell"), best first; ``depth`` 0: all of them."""
        if side == "buy":
            prices = (
                reversed(self.bids)
                if depth <= 0
                else self.bids.islice(max(0, len(self.bids) - depth), reverse=True)
            )
            book = self.bids
        elif side == "sell":
            prices = iter(self.asks) if depth <= 0 else self.asks.islice(0, depth)
            book = self.asks
        else:
            raise ValueError(f"side must be 'buy' or 'sell', was {side!r}")
        return [(format(p, "f"), *book[p]) for p in prices]

    def best(self) -> tuple[Level | None, Level | None]:
        """(best bid, best ask); a side with no levels is None."""
        bid = self.levels("buy", 1)
        ask = self.levels("sell", 1)
        return (bid[0] if bid else None, ask[0] if ask else None)

    def __repr__(self) -> str:
        return (
            f"LocalBook({self.symbol!r}, seq={self.seq}, {len(self.bids)} bids, "
            f"{len(self.asks)} asks)"
        )


class _Sync:
    """Where one symbol's l2 sync stands (SPEC.md §12.5)."""

    __slots__ = ("book", "synced", "buffer", "floor", "req_id", "deadline", "rejected")

    def __init__(self, symbol: str, join_deadline: float) -> None:
        self.book = LocalBook(symbol)
        self.synced = False
        self.buffer: deque[L2Update] = deque()
        self.floor: int | None = None  # the first seq the buffer is sure to hold from
        self.req_id: str | None = None  # the snapshot request on its way, if any
        self.deadline = join_deadline  # when to send (no request yet) or resend (one on its way)
        self.rejected: SnapshotReject | None = None


class BookSubscriber:
    """Keep L2 books of ``symbols`` in sync from a feed and a snapshot service (see module doc).

    ``on_book(book)`` is called after a snapshot is loaded and after each
    update applied; ``on_trade(trades)`` with each Trades message and
    ``on_bbo(bbo)`` with each Bbo, in sync or not. ``timeout`` (seconds) is
    how long a snapshot request may stay unanswered before it is sent again;
    ``rcvhwm`` how many feed messages may wait unread before ZeroMQ drops.
    """

    def __init__(
        self,
        feed_endpoint: str,
        snapshot_endpoint: str,
        symbols: Iterable[str],
        *,
        context: zmq.Context | None = None,
        on_book: Callable[[LocalBook], object] | None = None,
        on_trade: Callable[[Trades], object] | None = None,
        on_bbo: Callable[[Bbo], object] | None = None,
        timeout: float = 5.0,
        rcvhwm: int = 100_000,
    ) -> None:
        symbols = list(dict.fromkeys(symbols))
        if not symbols:
            raise ValueError("symbols must name at least one symbol")
        for s in symbols:
            if not s or "." in s:
                raise ValueError(f"symbol must be non-empty and contain no '.', was {s!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, was {timeout}")
        self.feed_endpoint = feed_endpoint
        self.snapshot_endpoint = snapshot_endpoint
        self.timeout = timeout
        self.on_book, self.on_trade, self.on_bbo = on_book, on_trade, on_bbo
        self.gaps = self.resyncs = self.timeouts = self.snapshot_requests = self.bad_frames = 0
        now = time.monotonic()
        self._syncs = {s: _Sync(s, now + JOIN_WAIT) for s in symbols}
        self._wire: dict[tuple[str, str], int] = {}  # topic -> the seq its next message should say
        self._bbo: dict[str, Bbo] = {}
        self._by_req: dict[str, _Sync] = {}
        self._req_n = 0
        self._ctx = context or zmq.Context.instance()
        self._sub = self._ctx.socket(zmq.SUB)
        # The poller that belongs with the context's sockets (pyzmq's Socket.poll picks it the
        # same way): a zmq.green context gets a green poller, so the subscriber also runs under
        # gevent (locust, loadtest/locustfile.py); a plain zmq.Poller there would block every
        # greenlet while it waits.
        self._poller = self._sub._poller_class()
        self._sub.linger = 0
        self._sub.rcvhwm = rcvhwm  # updates queued here; past it ZeroMQ drops (seen as a gap)
        self._sub.connect(feed_endpoint)
        for s in symbols:
            # l2 last: its first message then proves the other two are live as well
            for channel in ("trades", "bbo", "l2"):
                self._sub.setsockopt(zmq.SUBSCRIBE, topic(s, channel))
        self._poller.register(self._sub, zmq.POLLIN)
        self._dealer = self._new_dealer()

    # -------------------------------------------------------------- state

    def book(self, symbol: str) -> LocalBook:
        """The local book of ``symbol`` (empty, seq 0, while not in sync)."""
        return self._sync(symbol).book

    def synced(self, symbol: str) -> bool:
        """True when the book of ``symbol`` is a snapshot plus every update since."""
        return self._sync(symbol).synced

    def bbo(self, symbol: str) -> Bbo | None:
        """The last Bbo received for ``symbol``, if any."""
        self._sync(symbol)
        return self._bbo.get(symbol)

    def wire_seq(self, symbol: str, channel: str = "l2") -> int | None:
        """The seq of the last update received on a topic (a heartbeat's next_seq - 1), or None."""
        nxt = self._wire.get((symbol, channel))
        return None if nxt is None else nxt - 1

    def _sync(self, symbol: str) -> _Sync:
        s = self._syncs.get(symbol)
        if s is None:
            raise KeyError(f"{symbol!r} is not a subscribed symbol ({', '.join(self._syncs)})")
        return s

    # ------------------------------------------------------------ running

    def poll(self, timeout_s: float = 0.0) -> int:
        """Wait up to ``timeout_s`` for messages, handle all that are waiting; return how many.

        Returns as soon as something was handled (0 when the time ran out).
        Snapshot requests are sent and re-sent from here. Raises
        SnapshotRejected when the service refuses a symbol.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            now = time.monotonic()
            self._timers(now)
            wait = max(0.0, min(deadline, self._next_timer()) - now)
            ready = dict(self._poller.poll(math.ceil(wait * 1000)))
            handled = 0
            if self._sub in ready:
                handled += self._drain(self._sub, self._on_feed)
            if self._dealer in ready:
                handled += self._drain(self._dealer, self._on_reply)
            if handled or time.monotonic() >= deadline:
                return handled

    def run_until(self, predicate: Callable[[], object], timeout: float) -> bool:
        """Poll until ``predicate()`` is true; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = ", ".join(
                    f"{s}: {'synced' if v.synced else 'not synced'} seq {v.book.seq}"
                    for s, v in self._syncs.items()
                )
                raise TimeoutError(f"condition not met after {timeout} s ({state})")
            self.poll(remaining)
        return True

    def close(self) -> None:
        """Close both sockets (linger 0). Safe to call twice."""
        for sock in (self._sub, self._dealer):
            if not sock.closed:
                sock.close(linger=0)

    def __enter__(self) -> BookSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- internals

    def _drain(self, sock: zmq.Socket, handle: Callable[[list[bytes]], None]) -> int:
        n = 0
        while n < DRAIN_LIMIT:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            handle(frames)
        return n

    def _open_dealer(self) -> None:
        # A new socket rather than a resend on the old one: a reply lost with a
        # broken connection must not leave a request half-answered.
        self._poller.unregister(self._dealer)
        self._dealer.close(linger=0)
        self._dealer = self._new_dealer()
        self._by_req.clear()

    def _new_dealer(self) -> zmq.Socket:
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(self.snapshot_endpoint)
        self._poller.register(dealer, zmq.POLLIN)
        return dealer

    def _request(self, s: _Sync) -> None:
        self._req_n += 1
        s.req_id = f"md-{self._req_n}"
        s.deadline = time.monotonic() + self.timeout
        self._by_req[s.req_id] = s
        self.snapshot_requests += 1
        req = SnapshotRequest(symbol=s.book.symbol, channel="l2", depth=0, req_id=s.req_id)
        try:
            self._dealer.send(encoder.encode(req), zmq.NOBLOCK)
        except zmq.Again:
            pass  # the queue to the service is full: the deadline resends it

    def _next_timer(self) -> float:
        pending = [s.deadline for s in self._syncs.values() if not s.synced and not s.rejected]
        return min(pending, default=math.inf)

    def _timers(self, now: float) -> None:
        active = [s for s in self._syncs.values() if not s.synced and not s.rejected]
        due = [s for s in active if now >= s.deadline]
        if not due:
            return
        lost = [s for s in due if s.req_id is not None]
        if lost:
            self.timeouts += len(lost)
            self._open_dealer()
            # every request on the old socket is lost with it, due or not
            due = [s for s in active if s.req_id is not None or s in due]
        for s in due:
            self._request(s)

    def _on_feed(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self.bad_frames += 1
            return
        try:
            msg = feed_decoder.decode(frames[1])
        except _DECODE_ERRORS:
            self.bad_frames += 1
            return
        # What this message says about its topic's sequence: the seq it has, or
        # for a heartbeat the seq that comes next; both should equal `expect`.
        if isinstance(msg, MdHeartbeat):
            channel: str = msg.channel
            says = after = msg.next_seq
        else:
            channel, says = _CHANNELS[type(msg)], msg.seq
            after = says + 1
        if (
            msg.v != VERSION
            or msg.symbol not in self._syncs
            or frames[0] != topic(msg.symbol, channel)
        ):
            self.bad_frames += 1
            return
        key = (msg.symbol, channel)
        expect = self._wire.get(key)
        self._wire[key] = after
        broken = expect is not None and says != expect
        # channel "l2" is always one of these two; isinstance says so to the type checker
        if channel == "l2" and isinstance(msg, (L2Update, MdHeartbeat)):
            self._on_l2(
                self._syncs[msg.symbol], msg, says, broken, expect is not None and says < expect
            )
            return
        if broken:
            self.gaps += 1
        if isinstance(msg, Trades) and self.on_trade is not None:
            self.on_trade(msg)
        elif isinstance(msg, Bbo):
            self._bbo[msg.symbol] = msg
            if self.on_bbo is not None:
                self.on_bbo(msg)

    def _on_l2(
        self, s: _Sync, msg: L2Update | MdHeartbeat, says: int, broken: bool, backwards: bool
    ) -> None:
        if s.rejected:
            return
        if not s.synced:
            if broken:  # the buffer must be gap-free: start it again here
                self.gaps += 1
                s.buffer.clear()
                s.floor = None
            self._buffer(s, msg, says)
            if s.req_id is None:
                self._request(s)  # a message arrived, so the subscription is live: ask now
            return
        last = s.book.seq
        if backwards or says > last + 1:
            self.gaps += 1
            self.resyncs += 1
            s.synced = False
            s.book.clear()
            s.buffer.clear()
            s.floor = None
            self._buffer(s, msg, says)
            self._request(s)
            return
        if isinstance(msg, MdHeartbeat) or msg.seq <= last:
            return  # a heartbeat in line, or an update the snapshot already holds
        self._apply(s, msg)

    def _buffer(self, s: _Sync, msg: L2Update | MdHeartbeat, says: int) -> None:
        if s.floor is None:
            s.floor = says
        if isinstance(msg, L2Update):
            s.buffer.append(msg)
            if len(s.buffer) > BUFFER_LIMIT:
                s.buffer.popleft()
                s.floor = s.buffer[0].seq

    def _apply(self, s: _Sync, update: L2Update) -> None:
        try:
            s.book.apply(update)
        except ValueError:
            self.bad_frames += 1  # an update the book cannot take: the book is no longer whole
            self.resyncs += 1
            s.synced = False
            s.book.clear()
            s.buffer.clear()
            s.floor = update.seq + 1
            self._request(s)
            return
        self._changed(s)

    def _on_reply(self, frames: list[bytes]) -> None:
        try:
            if len(frames) != 1:
                raise msgspec.DecodeError("a reply is one frame")
            msg = snapshot_reply_decoder.decode(frames[0])
        except _DECODE_ERRORS:
            self.bad_frames += 1
            return
        s = self._by_req.pop(msg.req_id, None)
        if s is None or s.req_id != msg.req_id:
            return  # an answer to a request given up on
        s.req_id = None
        if isinstance(msg, SnapshotReject):
            s.rejected = msg
            raise SnapshotRejected(s.book.symbol, msg.code, msg.text)
        if not isinstance(msg, Snapshot) or msg.symbol != s.book.symbol:
            self.bad_frames += 1
            self._request(s)
            return
        if s.floor is not None and msg.seq < s.floor - 1:
            self.resyncs += 1  # older than the buffer: updates seq+1..floor-1 are missing
            self._request(s)
            return
        try:
            s.book.load(msg)
            s.synced = True
            self._changed(s)
            for update in s.buffer:
                if update.seq > msg.seq:
                    s.book.apply(update)
                    self._changed(s)
        except ValueError:
            self.bad_frames += 1  # a snapshot or buffered update the book cannot take
            s.synced = False
            s.book.clear()
            self._request(s)
            return
        finally:
            s.buffer.clear()
            s.floor = None

    def _changed(self, s: _Sync) -> None:
        if self.on_book is not None:
            self.on_book(s.book)
