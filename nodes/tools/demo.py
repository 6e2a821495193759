"""A demo market for ``zex run``: a market maker quoting and a taker lifting, through the gateway.

Both are ordinary clients (the client library over a DEALER, accounts
``maker`` and ``taker``), so the demo exercises the whole path a user's
client takes: logon, validation, risk, sequencing, journal, matching,
unsolicited fills. It runs in one thread that owns both clients' sockets.
"""

from __future__ import annotations

import random
import threading
import time

import zmq

from zex.protocol import messages as m

from ..runtime.config import Config

LEVELS = 3  # quote levels a side
SIDES: tuple[m.Side, m.Side] = ("buy", "sell")


class DemoMarket:
    """Quote every instrument two-sided around a drifting mid; take liquidity now and then."""

    def __init__(
        self,
        cfg: Config,
        ctx: zmq.Context,
        endpoint: str,
        period: float = 0.5,
        seed: int = 1,
        echo=print,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.endpoint = endpoint
        self.period = period
        self.rng = random.Random(seed)
        self.echo = echo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="zex-demo", daemon=True)
        self.trades = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:  # the exchange keeps running; say why the demo stopped
            self.error = exc
            self.echo(f"demo stopped: {exc}")

    def _run(self) -> None:
        from zex.protocol.client import Client

        maker = Client(
            self.endpoint, "maker", self._credential("maker"), context=self.ctx, timeout=5.0
        )
        taker = Client(
            self.endpoint, "taker", self._credential("taker"), context=self.ctx, timeout=5.0
        )
        try:
            maker.logon()
            taker.logon()
            mids = {i.symbol: i.ref_ticks or max(i.min_ticks, 100) for i in self.cfg.instruments}
            quotes: dict[str, list[int]] = {s: [] for s in mids}
            while not self._stop.is_set():
                for inst in self.cfg.instruments:
                    s = inst.symbol
                    mids[s] = max(
                        inst.min_ticks + LEVELS + 2, mids[s] + self.rng.choice((-1, 0, 1))
                    )
                    for oid in quotes[s]:
                        maker.cancel(s, oid)
                    quotes[s] = []
                    for k in range(1, LEVELS + 1):
                        for side, px in zip(SIDES, (mids[s] - k, mids[s] + k), strict=True):
                            ans = maker.place(
                                s, side, inst.lots_to_qty(5 * k), inst.ticks_to_price(px)
                            )
                            if isinstance(ans, m.Ack):
                                quotes[s].append(ans.order_id)
                    if self.rng.random() < 0.5:
                        side = self.rng.choice(SIDES)
                        px = mids[s] + 2 if side == "buy" else mids[s] - 2
                        taker.place(
                            s,
                            side,
                            inst.lots_to_qty(self.rng.randint(1, 8)),
                            inst.ticks_to_price(px),
                            tif="ioc",
                        )
                deadline = time.monotonic() + self.period
                while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
                    for r in taker.poll(min(left, 0.1)) + maker.poll(0):
                        if isinstance(r, m.Fill) and r.liquidity == "taker":
                            self.trades += 1
                            self.echo(
                                f"trade #{r.trade_id} {r.symbol} {r.qty} @ {r.price}  "
                                f"(seq {r.seq}, taker {r.side}s)"
                            )
        finally:
            maker.close()
            taker.close()

    def _credential(self, account: str) -> str:
        acct = self.cfg.account(account)
        if acct is None:
            raise RuntimeError(
                f"the demo needs account {account!r} in [[accounts]]; add it or run with the "
                "default accounts"
            )
        return acct.credential
