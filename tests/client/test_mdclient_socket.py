"""The market-data subscribers over real sockets, against a scripted feed (SPEC.md §12).

``FakeFeed`` is a PUB and a ROUTER on free loopback ports, driven from the
test thread: nothing is published or answered unless the test says so, and
it keeps the truth (each symbol's book after every l2 seq), so a snapshot
can be answered as of any seq. The slow joiner is handled as a subscriber
would: the feed heartbeats until the subscriber, having heard one, asks for
its snapshot. Every wait polls sockets with a deadline; nothing sleeps.
``protocol/examples/plain_book.py`` runs as a real process through the same
scenario as ``BookSubscriber`` and must end with the same book.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal

import msgpack
import pytest
import zmq

from tests.conftest import REPO, free_port
from zex.protocol import mdclient
from zex.protocol.marketdata import (
    Bbo,
    L2Update,
    LevelChange,
    MdHeartbeat,
    SnapLevel,
    Snapshot,
    SnapshotReject,
    SnapshotRequest,
    TradeInfo,
    Trades,
    encoder,
    snapshot_request_decoder,
    topic,
)
from zex.protocol.mdclient import BookSubscriber, LocalBook, SnapshotRejected
from zex.protocol.reasons import Reason

PLAIN_BOOK = REPO / "protocol" / "examples" / "plain_book.py"
FAST = 0.3  # s: the snapshot timeout where a timeout is the point of the test
WAIT = 5.0  # s: the deadline of every other wait

Change = tuple[str, str, str, int]  # (side, price, qty, orders); qty "0" deletes the level


class FakeFeed:
    """A scripted marketdata node: ``with FakeFeed(ctx) as feed: feed.feed, feed.snapshot``."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.pub = ctx.socket(zmq.PUB)
        self.router = ctx.socket(zmq.ROUTER)
        for sock in (self.pub, self.router):
            sock.linger = 0
        self.feed = f"tcp://127.0.0.1:{free_port()}"
        self.snapshot = f"tcp://127.0.0.1:{free_port()}"
        self.pub.bind(self.feed)
        self.router.bind(self.snapshot)
        self.seqs: dict[tuple[str, str], int] = {}
        self.mseq = 0
        # symbol -> the book after each l2 seq (index 0: empty); a book is side -> price -> level
        self.history: dict[str, list[dict[str, dict[Decimal, tuple[str, str, int]]]]] = {}
        self.requests: list[tuple[bytes, SnapshotRequest]] = []

    def __enter__(self) -> FakeFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pub.close(linger=0)
        self.router.close(linger=0)

    # ----------------------------------------------------------- the feed

    def _next(self, symbol: str, channel: str) -> int:
        seq = self.seqs.get((symbol, channel), 0) + 1
        self.seqs[(symbol, channel)] = seq
        return seq

    def seq(self, symbol: str, channel: str = "l2") -> int:
        return self.seqs.get((symbol, channel), 0)

    def _publish(self, symbol: str, channel: str, msg: object) -> None:
        self.pub.send_multipart([topic(symbol, channel), encoder.encode(msg)])

    def l2(self, symbol: str, *changes: Change, send: bool = True) -> L2Update:
        """Change the truth and publish it as the next l2 update (``send=False``: it is lost)."""
        books = self.history.setdefault(symbol, [{"buy": {}, "sell": {}}])
        book = {side: dict(levels) for side, levels in books[-1].items()}
        out = []
        for side, price, qty, orders in changes:
            key = Decimal(price)
            if Decimal(qty) == 0:
                action = "delete"
                book[side].pop(key)
            else:
                action = "change" if key in book[side] else "add"
                book[side][key] = (price, qty, orders)
            out.append(LevelChange(action=action, side=side, price=price, qty=qty, orders=orders))
        books.append(book)
        self.mseq += 1
        msg = L2Update(
            symbol=symbol,
            seq=self._next(symbol, "l2"),
            mseq=self.mseq,
            ts=time.time_ns(),
            changes=out,
        )
        assert msg.seq == len(books) - 1
        if send:
            self._publish(symbol, "l2", msg)
        return msg

    def heartbeat(self, symbol: str, channel: str = "l2") -> None:
        self._publish(
            symbol,
            channel,
            MdHeartbeat(
                symbol=symbol,
                channel=channel,
                next_seq=self.seq(symbol, channel) + 1,
                mseq=self.mseq,
            ),
        )

    def trade(self, symbol: str, price: str, qty: str, aggressor: str) -> Trades:
        self.mseq += 1
        msg = Trades(
            symbol=symbol,
            seq=self._next(symbol, "trades"),
            mseq=self.mseq,
            ts=1,
            trades=[TradeInfo(trade_id=self.mseq, price=price, qty=qty, aggressor=aggressor)],
        )
        self._publish(symbol, "trades", msg)
        return msg

    def bbo(self, symbol: str, bid: str | None, ask: str | None, send: bool = True) -> Bbo:
        msg = Bbo(
            symbol=symbol,
            seq=self._next(symbol, "bbo"),
            mseq=self.mseq,
            ts=1,
            bid_price=bid,
            bid_qty=bid and "1",
            ask_price=ask,
            ask_qty=ask and "1",
        )
        if send:
            self._publish(symbol, "bbo", msg)
        return msg

    def levels(self, symbol: str, side: str, at: int | None = None) -> list[tuple[str, str, int]]:
        """The truth, best first, after l2 update ``at`` (default: the latest)."""
        books = self.history.get(symbol, [{"buy": {}, "sell": {}}])
        book = books[-1 if at is None else at][side]
        return [book[p] for p in sorted(book, reverse=(side == "buy"))]

    # ---------------------------------------------------- snapshot service

    def take_request(self, timeout_s: float = 0.0) -> tuple[bytes, SnapshotRequest] | None:
        if not self.router.poll(int(timeout_s * 1000)):
            return None
        ident, frame = self.router.recv_multipart()
        req = snapshot_request_decoder.decode(frame)
        self.requests.append((ident, req))
        return ident, req

    def answer(self, ident: bytes, req: SnapshotRequest, at: int | None = None) -> Snapshot:
        """Send the l2 snapshot of ``req.symbol`` as of seq ``at`` (default: the latest)."""
        seq = self.seq(req.symbol) if at is None else at
        snap = Snapshot(
            req_id=req.req_id,
            symbol=req.symbol,
            seq=seq,
            mseq=self.mseq,
            bids=[
                SnapLevel(price=p, qty=q, orders=n)
                for p, q, n in self.levels(req.symbol, "buy", seq)
            ],
            asks=[
                SnapLevel(price=p, qty=q, orders=n)
                for p, q, n in self.levels(req.symbol, "sell", seq)
            ],
        )
        self.router.send_multipart([ident, encoder.encode(snap)])
        return snap


def await_request(
    feed: FakeFeed,
    tick: Callable[[], object],
    symbols: tuple[str, ...] = ("XYZ",),
    timeout: float = WAIT,
) -> tuple[bytes, SnapshotRequest]:
    """Heartbeat ``symbols``' l2 topics and let the client ``tick`` until a request arrives.

    The heartbeats are the slow-joiner handshake: a subscriber asks for its
    snapshot once it has heard its topic, so a request proves the SUB is live.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in symbols:
            feed.heartbeat(s)
        tick()
        got = feed.take_request(0.02)
        if got is not None:
            return got
    raise TimeoutError(f"no snapshot request within {timeout} s")


def sync(feed: FakeFeed, sub: BookSubscriber, *symbols: str) -> None:
    """Join and answer each symbol's snapshot request at the latest seq; wait until in sync."""
    asked: set[str] = set()
    while asked != set(symbols):
        ident, req = await_request(feed, lambda: sub.poll(0.01), symbols)
        feed.answer(ident, req)
        asked.add(req.symbol)
    sub.run_until(lambda: all(sub.synced(s) for s in symbols), WAIT)


def assert_book(sub: BookSubscriber, feed: FakeFeed, symbol: str = "XYZ") -> None:
    book = sub.book(symbol)
    assert sub.synced(symbol)
    assert book.seq == feed.seq(symbol)
    assert book.levels("buy") == feed.levels(symbol, "buy")
    assert book.levels("sell") == feed.levels(symbol, "sell")


def subscriber(feed: FakeFeed, ctx: zmq.Context, symbols=("XYZ",), **kw) -> BookSubscriber:
    return BookSubscriber(feed.feed, feed.snapshot, list(symbols), context=ctx, **kw)


# ------------------------------------------------------------- BookSubscriber


def test_a_late_joiner_applies_only_the_updates_newer_than_its_snapshot(ctx):
    seen: list[tuple[int, list, list]] = []

    def on_book(book: LocalBook) -> None:
        seen.append((book.seq, book.levels("buy"), book.levels("sell")))

    with FakeFeed(ctx) as feed:
        feed.l2("XYZ", ("buy", "101.5", "6", 1), ("sell", "102", "2", 1))  # before the join
        feed.l2("XYZ", ("buy", "101.4", "250", 12))
        with subscriber(feed, ctx, on_book=on_book) as sub:
            ident, req = await_request(feed, lambda: sub.poll(0.01))
            assert req == SnapshotRequest(symbol="XYZ", channel="l2", depth=0, req_id=req.req_id)
            feed.l2("XYZ", ("buy", "101.5", "10", 2))  # 3: buffered, and in the snapshot
            feed.l2("XYZ", ("sell", "102", "0", 0))  # 4: buffered, and in the snapshot
            feed.l2("XYZ", ("sell", "102.5", "3", 1))  # 5: buffered, newer than the snapshot
            sub.run_until(lambda: sub.wire_seq("XYZ") == 5, WAIT)
            assert not sub.synced("XYZ") and sub.book("XYZ").seq == 0
            feed.answer(ident, req, at=4)
            sub.run_until(lambda: sub.synced("XYZ"), WAIT)
            assert [s for s, _, _ in seen] == [4, 5]  # loaded at 4, then only 5 applied
            assert seen[0][1:] == (feed.levels("XYZ", "buy", 4), feed.levels("XYZ", "sell", 4))
            assert_book(sub, feed)
            feed.l2("XYZ", ("buy", "101.4", "0", 0), ("buy", "101", "1", 1))  # 6: live
            sub.run_until(lambda: sub.book("XYZ").seq == 6, WAIT)
            assert_book(sub, feed)
            assert sub.book("XYZ").best() == (("101.5", "10", 2), ("102.5", "3", 1))
            assert (sub.gaps, sub.resyncs, sub.timeouts, sub.snapshot_requests) == (0, 0, 0, 1)


def test_a_missing_update_throws_the_book_away_and_a_new_snapshot_repairs_it(ctx):
    with FakeFeed(ctx) as feed:
        feed.l2("XYZ", ("buy", "101.5", "6", 1), ("sell", "102", "2", 1))
        feed.l2("ABC", ("buy", "50", "1", 1))
        with subscriber(feed, ctx, ("XYZ", "ABC")) as sub:
            sync(feed, sub, "XYZ", "ABC")
            feed.l2("XYZ", ("buy", "101.5", "4", 1), send=False)  # lost on the way
            feed.l2("XYZ", ("sell", "102", "1", 1))  # the next one shows the gap
            feed.l2("ABC", ("sell", "51", "2", 1))  # ABC is not affected
            ident, req = await_request(feed, lambda: sub.poll(0.01), ("XYZ", "ABC"))
            assert req.symbol == "XYZ" and not sub.synced("XYZ")
            assert sub.book("XYZ").levels("buy") == []  # discarded, not patched
            sub.run_until(lambda: sub.book("ABC").seq == feed.seq("ABC"), WAIT)
            assert sub.synced("ABC")
            feed.answer(ident, req)
            feed.l2("XYZ", ("buy", "101.6", "3", 1))
            sub.run_until(lambda: sub.synced("XYZ") and sub.book("XYZ").seq == 4, WAIT)
            assert_book(sub, feed, "XYZ")
            assert_book(sub, feed, "ABC")
            assert (sub.gaps, sub.resyncs, sub.timeouts) == (1, 1, 0)


def test_a_heartbeat_whose_next_seq_reveals_a_loss_triggers_a_resync(ctx):
    with FakeFeed(ctx) as feed:
        feed.l2("XYZ", ("buy", "101.5", "6", 1))
        with subscriber(feed, ctx) as sub:
            sync(feed, sub, "XYZ")
            feed.l2("XYZ", ("buy", "101.5", "0", 0), ("sell", "103", "7", 2), send=False)
            feed.heartbeat("XYZ")  # next_seq 3, but the subscriber's last is 1
            ident, req = await_request(feed, lambda: sub.poll(0.01))
            feed.answer(ident, req)
            sub.run_until(lambda: sub.synced("XYZ"), WAIT)
            assert_book(sub, feed)
            assert sub.book("XYZ").best() == (None, ("103", "7", 2))
            assert (sub.gaps, sub.resyncs) == (1, 1)


def test_a_snapshot_older_than_the_buffer_is_requested_again(ctx):
    with FakeFeed(ctx) as feed:
        for i in range(3):
            feed.l2("XYZ", ("buy", f"10{i}", "1", 1))
        with subscriber(feed, ctx) as sub:
            ident, req = await_request(feed, lambda: sub.poll(0.01))  # heard next_seq 4
            feed.l2("XYZ", ("sell", "110", "5", 1))  # 4
            sub.run_until(lambda: sub.wire_seq("XYZ") == 4, WAIT)
            feed.answer(ident, req, at=2)  # stale: update 3 is in neither snapshot nor buffer
            ident, req = await_request(feed, lambda: sub.poll(0.01))
            assert not sub.synced("XYZ")
            feed.answer(ident, req)
            sub.run_until(lambda: sub.synced("XYZ"), WAIT)
            assert_book(sub, feed)
            assert (sub.gaps, sub.resyncs, sub.snapshot_requests) == (0, 1, 2)


def test_a_lost_snapshot_reply_is_requested_again_on_a_new_dealer(ctx):
    with FakeFeed(ctx) as feed:
        feed.l2("XYZ", ("buy", "101.5", "6", 1))
        with subscriber(feed, ctx, timeout=FAST) as sub:
            first = await_request(feed, lambda: sub.poll(0.01))
            asked = time.monotonic()
            second = await_request(feed, lambda: sub.poll(0.01))  # the first is never answered
            assert time.monotonic() - asked >= FAST * 0.8
            assert second[0] != first[0], "the request was resent on the same DEALER"
            assert second[1].req_id != first[1].req_id
            feed.answer(*first)  # too late: its DEALER is gone
            feed.answer(*second)
            sub.run_until(lambda: sub.synced("XYZ"), WAIT)
            assert_book(sub, feed)
            assert (sub.timeouts, sub.snapshot_requests, sub.resyncs) == (1, 2, 0)


def test_a_silent_topic_still_gets_its_snapshot_request_after_the_join_wait(ctx, monkeypatch):
    monkeypatch.setattr(mdclient, "JOIN_WAIT", FAST)
    with FakeFeed(ctx) as feed:
        with subscriber(feed, ctx) as sub:
            started = time.monotonic()
            ident, req = await_request(feed, lambda: sub.poll(0.01), symbols=())  # no heartbeats
            assert time.monotonic() - started >= FAST * 0.8
            feed.answer(ident, req)  # seq 0: nothing has happened yet
            sub.run_until(lambda: sub.synced("XYZ"), WAIT)
            assert sub.book("XYZ").seq == 0
            deadline = time.monotonic() + WAIT
            while sub.wire_seq("XYZ") is None:  # make sure the SUB is live before publishing
                assert time.monotonic() < deadline, "the subscriber never heard a heartbeat"
                feed.heartbeat("XYZ")
                sub.poll(0.02)
            feed.l2("XYZ", ("buy", "9", "1", 1))
            sub.run_until(lambda: sub.book("XYZ").seq == 1, WAIT)
            assert_book(sub, feed)


def test_trades_and_bbo_reach_their_callbacks_and_a_bbo_gap_is_counted(ctx):
    trades: list[Trades] = []
    bbos: list[Bbo] = []
    with FakeFeed(ctx) as feed:
        with subscriber(feed, ctx, on_trade=trades.append, on_bbo=bbos.append) as sub:
            sync(feed, sub, "XYZ")  # l2 is subscribed last, so trades and bbo are live too
            t = feed.trade("XYZ", "101.5", "4", "sell")
            b1 = feed.bbo("XYZ", "101.4", None)
            feed.bbo("XYZ", "101.3", None, send=False)
            b3 = feed.bbo("XYZ", None, "102")
            sub.run_until(lambda: len(bbos) == 2, WAIT)
            assert trades == [t] and bbos == [b1, b3] and sub.bbo("XYZ") == b3
            assert (sub.gaps, sub.resyncs) == (1, 0)  # nothing to resync on bbo


def test_a_rejected_snapshot_raises_and_is_not_asked_again(ctx):
    with FakeFeed(ctx) as feed:
        with subscriber(feed, ctx, ("QQQ",), timeout=FAST) as sub:
            ident, req = await_request(feed, lambda: sub.poll(0.01), ("QQQ",))
            text = "symbol 'QQQ' is not listed"
            feed.router.send_multipart(
                [
                    ident,
                    encoder.encode(
                        SnapshotReject(
                            req_id=req.req_id, code=int(Reason.UNKNOWN_SYMBOL), text=text
                        )
                    ),
                ]
            )
            with pytest.raises(SnapshotRejected, match=f"QQQ rejected: 200 UNKNOWN_SYMBOL: {text}"):
                sub.run_until(lambda: False, WAIT)
            deadline = time.monotonic() + FAST * 2  # past the timeout: still no request
            while (left := deadline - time.monotonic()) > 0:
                sub.poll(left)
            assert feed.take_request(0.05) is None
            assert sub.snapshot_requests == 1 and sub.timeouts == 0 and not sub.synced("QQQ")


def test_bad_feed_frames_are_counted_and_skipped(ctx):
    with FakeFeed(ctx) as feed:
        feed.l2("XYZ", ("buy", "101.5", "6", 1))
        with subscriber(feed, ctx) as sub:
            sync(feed, sub, "XYZ")
            l2 = topic("XYZ", "l2")
            feed.pub.send_multipart([l2, b"\xc1"])  # not MessagePack
            feed.pub.send_multipart([l2, b"x", b"y"])  # three frames
            wrong = MdHeartbeat(symbol="XYZ", channel="bbo", next_seq=1, mseq=0)
            feed.pub.send_multipart([l2, encoder.encode(wrong)])  # channel does not match topic
            feed.pub.send_multipart([l2, msgpack.packb({"type": "l2", "v": 1, "symbol": "XYZ"})])
            sub.run_until(lambda: sub.bad_frames == 4, WAIT)
            feed.l2("XYZ", ("buy", "101.5", "5", 1))
            sub.run_until(lambda: sub.book("XYZ").seq == 2, WAIT)
            assert_book(sub, feed)
            assert (sub.gaps, sub.resyncs) == (0, 0)


def test_local_book_refuses_what_it_cannot_apply():
    book = LocalBook("XYZ")
    book.load(
        Snapshot(
            req_id="",
            symbol="XYZ",
            seq=3,
            mseq=9,
            bids=[SnapLevel(price="0.0000001", qty="1", orders=1)],
            asks=[],
        )
    )
    assert book.levels("buy") == [("0.0000001", "1", 1)]  # no exponent
    up = L2Update(symbol="XYZ", seq=5, mseq=10, ts=1, changes=[])
    with pytest.raises(ValueError, match="seq must be 4 for XYZ, was 5"):
        book.apply(up)
    bad = L2Update(
        symbol="XYZ",
        seq=4,
        mseq=10,
        ts=1,
        changes=[
            LevelChange(action="add", side="buy", price="1", qty="2", orders=1),
            LevelChange(action="add", side="sell", price="1e", qty="2", orders=1),
        ],
    )
    with pytest.raises(ValueError, match="price must be a decimal string in XYZ, was '1e'"):
        book.apply(bad)
    assert book.seq == 3 and len(book.bids) == 1  # untouched
    with pytest.raises(ValueError, match="side must be 'buy' or 'sell'"):
        book.levels("bid")


# -------------------------------------------- the same scenario, two clients


def gap_scenario(feed: FakeFeed, tick: Callable[[], object]) -> None:
    """Join, buffer, snapshot, lose an update, resync, go on: truth ends at l2 seq 9.

    Updates 1..3 come before the client joins; 4 and 5 while its request is
    out; 6 is lost and 7 shows the gap; 8 and 9 after the second snapshot.
    The client receives 5 updates (4, 5, 7, 8, 9).
    """
    ident, req = await_request(feed, tick)
    feed.l2("XYZ", ("buy", "101.5", "10", 2))
    feed.l2("XYZ", ("sell", "102", "0", 0), ("sell", "102.5", "3", 1))
    feed.answer(ident, req)
    feed.l2("XYZ", ("buy", "101.4", "0", 0), send=False)
    feed.l2("XYZ", ("sell", "103", "9", 4))
    ident, req = await_request(feed, tick)
    feed.answer(ident, req)
    feed.l2("XYZ", ("buy", "101", "1", 1))
    feed.l2("XYZ", ("buy", "101.5", "7", 1), ("sell", "102.5", "2", 1))


def before_join(feed: FakeFeed) -> None:
    feed.l2("XYZ", ("buy", "101.5", "6", 1), ("sell", "102", "2", 1))
    feed.l2("XYZ", ("buy", "101.4", "250", 12))
    feed.l2("XYZ", ("sell", "102", "1", 1))


def test_book_subscriber_through_the_gap_scenario(ctx):
    with FakeFeed(ctx) as feed:
        before_join(feed)
        with subscriber(feed, ctx) as sub:
            gap_scenario(feed, lambda: sub.poll(0.01))
            sub.run_until(lambda: sub.synced("XYZ") and sub.book("XYZ").seq == 9, WAIT)
            assert_book(sub, feed)
            assert (sub.gaps, sub.resyncs) == (1, 1)


def test_plain_book_example_through_the_gap_scenario_ends_with_the_same_book(ctx):
    with FakeFeed(ctx) as feed:
        before_join(feed)
        proc = subprocess.Popen(
            [
                sys.executable,
                str(PLAIN_BOOK),
                "--feed",
                feed.feed,
                "--snapshot",
                feed.snapshot,
                "--symbol",
                "XYZ",
                "--updates",
                "5",
                "--seconds",
                "30",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:

            def alive() -> None:
                if proc.poll() is not None:
                    raise AssertionError(f"plain_book exited early: {proc.stderr.read()!r}")

            gap_scenario(feed, alive)
            deadline = time.monotonic() + WAIT
            while proc.poll() is None and time.monotonic() < deadline:
                feed.heartbeat("XYZ")  # in line with seq 9: harmless, and keeps it serviced
                got = feed.take_request(0.05)
                if got is not None:
                    feed.answer(*got)
            out, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert len(feed.requests) == 2
        assert json.loads(out) == {
            "symbol": "XYZ",
            "seq": 9,
            "bids": [list(lv) for lv in feed.levels("XYZ", "buy")],
            "asks": [list(lv) for lv in feed.levels("XYZ", "sell")],
            "gaps": 1,
            "resyncs": 1,
        }


def test_plain_book_example_imports_nothing_but_pyzmq_msgpack_and_the_stdlib():
    tree = ast.parse(PLAIN_BOOK.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import"
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) == {"zmq", "msgpack"}
    assert not (PLAIN_BOOK.parent / "__init__.py").exists()
