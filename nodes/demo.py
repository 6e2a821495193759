"""A demo market for ``zex run``: a market maker quoting and a taker lifting.

It speaks to the matcher the way a gateway does (internal commands over a
DEALER whose identity is the gateway name), so it exercises the real path:
sequencing, journal, matching, reports. Until the gateway node exists this
is the only order flow of ``zex run``.
"""

from __future__ import annotations

import random
import threading
import time

import msgspec
import zmq

from zex.protocol.internal import (
    BUY,
    GTC,
    IOC,
    LIMIT,
    SELL,
    STP_CANCEL_NEWEST,
    CancelCmd,
    NewOrderCmd,
    Trade,
    encoder,
)

from .config import Config

GATEWAY_NAME = "demo"
_reports = msgspec.msgpack.Decoder(list[tuple[bytes, str, int, int, msgspec.Raw]])


class DemoMarket:
    """Quote every instrument two-sided around a drifting mid; take liquidity now and then."""

    def __init__(self, cfg: Config, ctx: zmq.Context, period: float = 0.5, seed: int = 1,
                 echo=print) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.period = period
        self.rng = random.Random(seed)
        self.echo = echo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zex-demo", daemon=True)
        self.trades = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        dealer = self.ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.identity = GATEWAY_NAME.encode()
        dealer.connect(self.cfg.matcher.bind)
        sub = self.ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"ev")
        sub.connect(self.cfg.matcher.events_bind)
        from zex.protocol.internal import batch_decoder

        mids = {i.symbol: max(i.min_ticks, min(i.max_ticks, 100 * int(1 / i.tick_d))) for i in self.cfg.instruments}
        quotes: dict[str, list[int]] = {s: [] for s in mids}
        # cl_ord_ids are unique per account for the day: a new run must not reuse the last one's
        run = format(time.time_ns() // 1_000_000 % 36**6, "x")
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                ts = time.time_ns()
                for inst in self.cfg.instruments:
                    s = inst.symbol
                    mids[s] = max(inst.min_ticks + 10, mids[s] + self.rng.choice((-1, 0, 1)))
                    for oid in quotes[s]:
                        dealer.send(encoder.encode(CancelCmd(ts, GATEWAY_NAME, b"mm", "maker", f"{run}c{n}-{oid}", s, oid)))
                    quotes[s] = []
                    for k in range(1, 4):
                        for side, px in ((BUY, mids[s] - k), (SELL, mids[s] + k)):
                            cmd = NewOrderCmd(ts, GATEWAY_NAME, b"mm", "maker", f"{run}q{n}-{s}-{side}{k}", s,
                                              side, LIMIT, GTC, px, 5 * k, False, STP_CANCEL_NEWEST)
                            dealer.send(encoder.encode(cmd))
                    if self.rng.random() < 0.5:
                        side = self.rng.choice((BUY, SELL))
                        px = mids[s] + 2 if side == BUY else mids[s] - 2
                        dealer.send(encoder.encode(NewOrderCmd(ts, GATEWAY_NAME, b"tk", "taker", f"{run}t{n}-{s}", s,
                                                               side, LIMIT, IOC, px, self.rng.randint(1, 8))))
                deadline = time.monotonic() + self.period
                while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
                    if dealer.poll(int(left * 1000) + 1):
                        for client, _account, role, _rseq, raw in _reports.decode(dealer.recv()):
                            ev = msgspec.msgpack.decode(raw)
                            if client == b"mm" and ev[0] == 10:  # Accepted: remember our quote ids
                                quotes[ev[6]].append(ev[3])
                    while sub.poll(0):
                        batch = batch_decoder.decode(sub.recv_multipart()[1])
                        for ev in batch.events:
                            if type(ev) is Trade:
                                self.trades += 1
                                inst = self.cfg.instrument(ev.symbol)
                                self.echo(f"trade #{ev.trade_id} {ev.symbol} {inst.lots_to_qty(ev.qty)} @ "
                                          f"{inst.ticks_to_price(ev.price)}  (seq {ev.seq}, taker {ev.taker_account})")
        finally:
            dealer.close(0)
            sub.close(0)
