"""Keep one symbol's L2 book from the zex market-data feed with only pyzmq and msgpack.

Written from protocol/SPEC.md §12 alone, as a subscriber in any other
language would be: nothing here comes from zex.

    python protocol/examples/plain_book.py --feed tcp://127.0.0.1:7104 \\
        --snapshot tcp://127.0.0.1:7105 --symbol XYZ --seconds 10

It subscribes to ``md.<SYMBOL>.l2``, buffers what arrives, asks the snapshot
service for the book once the subscription is live, loads it, applies the
buffered and live updates newer than the snapshot (§12.5), and starts over
from a new snapshot whenever a seq is missing. At exit it prints the book;
with ``--json``, one JSON object on stdout:

    {"symbol": "XYZ", "seq": 12, "bids": [["101.5", "6", 1], ...], "asks": [...],
     "gaps": 0, "resyncs": 0}

It stops after ``--updates N`` l2 updates have arrived and the book is in
sync, after ``--seconds S``, or on Ctrl+C; the exit status is 0 when the
book was in sync at exit, 1 when it was not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal

import msgpack
import zmq

HEARTBEAT_MS = 1000  # §12.3: an idle topic gets a heartbeat this often
JOIN_WAIT = 3 * HEARTBEAT_MS / 1000  # s: ask for the snapshot by then even if nothing arrived


class Book:
    """Price levels of one symbol: price -> [price str, qty str, orders int]."""

    def __init__(self) -> None:
        self.seq = 0
        self.sides: dict[str, dict[Decimal, list]] = {"buy": {}, "sell": {}}

    def load(self, snap: dict) -> None:
        self.seq = snap["seq"]
        for side, key in (("buy", "bids"), ("sell", "asks")):
            self.sides[side] = {
                Decimal(lv["price"]): [lv["price"], lv["qty"], lv["orders"]]
                for lv in snap[key]
                if Decimal(lv["qty"]) != 0
            }

    def apply(self, update: dict) -> None:
        for c in update["changes"]:  # each change is the level's final state
            levels = self.sides[c["side"]]
            if c["action"] == "delete" or Decimal(c["qty"]) == 0:
                levels.pop(Decimal(c["price"]), None)
            else:
                levels[Decimal(c["price"])] = [c["price"], c["qty"], c["orders"]]
        self.seq = update["seq"]

    def levels(self, side: str) -> list[list]:
        best_first = sorted(self.sides[side], reverse=(side == "buy"))
        return [self.sides[side][p] for p in best_first]


class Follower:
    """The snapshot + deltas rule of SPEC.md §12.5 for one symbol's l2 topic."""

    def __init__(self, ctx: zmq.Context, snapshot_ep: str, symbol: str, timeout: float) -> None:
        self.ctx, self.snapshot_ep, self.symbol, self.timeout = ctx, snapshot_ep, symbol, timeout
        self.book = Book()
        self.synced = False
        self.buffer: list[dict] = []  # l2 updates since the buffer (re)started, gap-free
        self.floor: int | None = None  # the first seq the buffer is sure to hold from
        self.expect: int | None = None  # the seq the next message on the topic should say
        self.req_id: str | None = None
        self.deadline = time.monotonic() + JOIN_WAIT
        self.n = 0
        self.gaps = self.resyncs = 0
        self.dealer = self._connect()

    def new_dealer(self) -> None:
        # A fresh socket: a reply lost with a broken connection is gone for good.
        self.dealer.close(linger=0)
        self.dealer = self._connect()

    def _connect(self) -> zmq.Socket:
        dealer = self.ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(self.snapshot_ep)
        return dealer

    def request(self) -> None:
        self.n += 1
        self.req_id = f"plain-{self.n}"
        self.deadline = time.monotonic() + self.timeout
        self.dealer.send(
            msgpack.packb(
                {
                    "type": "snapshot_request",
                    "v": 1,
                    "symbol": self.symbol,
                    "channel": "l2",
                    "depth": 0,
                    "req_id": self.req_id,
                }
            )
        )

    def tick(self, now: float) -> None:
        if self.synced or now < self.deadline:
            return
        if self.req_id is not None:  # no answer in time: ask again on a new socket
            self.new_dealer()
        self.request()

    def on_feed(self, msg: dict) -> None:
        hb = msg["type"] == "md_heartbeat"
        says = msg["next_seq"] if hb else msg["seq"]
        broken = self.expect is not None and says != self.expect
        backwards = self.expect is not None and says < self.expect
        self.expect = says if hb else says + 1
        if not self.synced:
            if broken:  # keep the buffer gap-free: it starts again here
                self.gaps += 1
                self.buffer, self.floor = [], None
            self.hold(msg, says, hb)
            if self.req_id is None:
                self.request()  # a message arrived, so the subscription is live
            return
        if backwards or says > self.book.seq + 1:  # something is missing: start over
            self.gaps += 1
            self.resyncs += 1
            self.synced = False
            self.book = Book()
            self.buffer, self.floor = [], None
            self.hold(msg, says, hb)
            self.request()
        elif not hb and says == self.book.seq + 1:
            self.book.apply(msg)
        # else: a heartbeat in line, or an update the snapshot already holds

    def hold(self, msg: dict, says: int, hb: bool) -> None:
        if self.floor is None:
            self.floor = says
        if not hb:
            self.buffer.append(msg)

    def on_reply(self, msg: dict) -> None:
        if msg.get("req_id") != self.req_id or self.req_id is None:
            return  # not the answer we wait for
        self.req_id = None
        if msg["type"] == "snapshot_reject":
            sys.exit(f"snapshot of {self.symbol} rejected: {msg['code']} {msg['text']}")
        if self.floor is not None and msg["seq"] < self.floor - 1:
            self.resyncs += 1  # older than the buffer: seq+1..floor-1 are missing
            self.request()
            return
        self.book.load(msg)
        for update in self.buffer:
            if update["seq"] > msg["seq"]:
                self.book.apply(update)
        self.buffer, self.floor = [], None
        self.synced = True


def read(sock: zmq.Socket) -> list[list[bytes]]:
    out = []
    while True:
        try:
            out.append(sock.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            return out


def decode(frame: bytes) -> dict | None:
    try:
        msg = msgpack.unpackb(frame, raw=False)
    except Exception:  # any bad frame is skipped, never fatal
        return None
    return msg if isinstance(msg, dict) and msg.get("v", 1) == 1 else None


def report(f: Follower, as_json: bool) -> None:
    bids, asks = f.book.levels("buy"), f.book.levels("sell")
    if as_json:
        print(
            json.dumps(
                {
                    "symbol": f.symbol,
                    "seq": f.book.seq,
                    "bids": bids,
                    "asks": asks,
                    "gaps": f.gaps,
                    "resyncs": f.resyncs,
                }
            )
        )
        return
    state = "in sync" if f.synced else "NOT in sync"
    print(f"{f.symbol} seq {f.book.seq}, {state}, gaps {f.gaps}, resyncs {f.resyncs}")
    print(f"{'bid qty':>12} {'bid':>12} | {'ask':<12} {'ask qty':<12}")
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else ["", "", ""]
        a = asks[i] if i < len(asks) else ["", "", ""]
        print(f"{b[1]:>12} {b[0]:>12} | {a[0]:<12} {a[1]:<12}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feed", required=True, help="the feed (PUB), e.g. tcp://127.0.0.1:7104")
    ap.add_argument("--snapshot", required=True, help="the snapshot ROUTER endpoint")
    ap.add_argument("--symbol", required=True)
    ap.add_argument("--updates", type=int, help="stop after N l2 updates, once in sync")
    ap.add_argument("--seconds", type=float, help="stop after S seconds")
    ap.add_argument("--timeout", type=float, default=5.0, help="s to wait for a snapshot")
    ap.add_argument("--json", action="store_true", help="print the book as one JSON object")
    args = ap.parse_args(argv)
    if "." in args.symbol:
        ap.error(f"a symbol never contains '.', was {args.symbol!r}")

    ctx = zmq.Context()
    topic = f"md.{args.symbol}.l2".encode()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.connect(args.feed)
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    f = Follower(ctx, args.snapshot, args.symbol, args.timeout)
    end = None if args.seconds is None else time.monotonic() + args.seconds
    received = 0
    try:
        while not (args.updates is not None and received >= args.updates and f.synced):
            now = time.monotonic()
            if end is not None and now >= end:
                break
            f.tick(now)
            wait = min(x for x in (f.deadline, end, now + 1.0) if x is not None) - now
            poller = zmq.Poller()
            poller.register(sub, zmq.POLLIN)
            poller.register(f.dealer, zmq.POLLIN)
            ready = dict(poller.poll(max(0, int(wait * 1000) + 1)))
            if sub in ready:
                for frames in read(sub):
                    msg = decode(frames[-1]) if len(frames) == 2 and frames[0] == topic else None
                    if msg is None or msg.get("symbol") != args.symbol:
                        continue
                    if msg.get("type") == "l2":
                        received += 1
                    if msg.get("type") in ("l2", "md_heartbeat"):
                        f.on_feed(msg)
            if f.dealer in ready:
                for frames in read(f.dealer):
                    msg = decode(frames[0]) if len(frames) == 1 else None
                    if msg is not None:
                        f.on_reply(msg)
    except KeyboardInterrupt:
        pass
    finally:
        sub.close(linger=0)
        f.dealer.close(linger=0)
        ctx.term()
    report(f, args.json)
    return 0 if f.synced else 1


if __name__ == "__main__":
    sys.exit(main())
