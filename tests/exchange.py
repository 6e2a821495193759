"""A whole exchange of real processes: matcher, gateway, marketdata, logger (start what a test needs).

Used by the market-data, observability and audit tests. Everything on free
tcp loopback ports (metrics too); ``flow`` trades through the gateway
with two real clients; ``truth`` is the matcher's own book, asked of it
through the gateway (query book), to compare a subscriber's book with.
"""

from __future__ import annotations

import random
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from tests.conftest import NodeProcess, free_port
from zex.protocol import messages as m
from zex.protocol.client import Client
from zex.protocol.codec import decode_report, encode

SYMBOLS = ("XYZ", "ABC")
CONFIG = """
[matcher]
bind = "tcp://127.0.0.1:{p[0]}"
events_bind = "tcp://127.0.0.1:{p[1]}"
replay_bind = "tcp://127.0.0.1:{p[2]}"
data_dir = "{data}"
fsync = "off"
digest_every = 0
metrics_bind = "127.0.0.1:{p[7]}"

[gateway]
bind = "tcp://127.0.0.1:{p[3]}"
metrics_bind = "127.0.0.1:{p[8]}"
audit = "tcp://127.0.0.1:{p[9]}"

[logger]
bind = "tcp://127.0.0.1:{p[9]}"
data_dir = "{trail}"
metrics_bind = "127.0.0.1:{p[10]}"
fsync = "off"

[marketdata]
feed_bind = "{feed}"
snapshot_bind = "tcp://127.0.0.1:{p[5]}"
l3 = true
pub_hwm = {pub_hwm}
heartbeat_ms = 200
metrics_bind = "127.0.0.1:{p[6]}"

[[instruments]]
symbol = "XYZ"
tick = "0.01"
lot = "1"
max_price = "1000"
reference_price = "10"

[[instruments]]
symbol = "ABC"
tick = "0.05"
lot = "1"
min_price = "0.05"
max_price = "1000"
reference_price = "20"

[[accounts]]
id = "mm"
credential = "mm"

[[accounts]]
id = "tk"
credential = "tk"
"""


@dataclass
class MdExchange:
    tmp: Path
    start_node: object
    pub_hwm: int = 100_000
    feed_ipc: Path | None = None  # the feed on ipc instead of tcp: small, fixed kernel buffers
    ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(11)])
    procs: dict[str, NodeProcess] = field(default_factory=dict)
    _clients: list[Client] = field(default_factory=list)

    @property
    def trail(self) -> Path:
        return self.tmp / "trail"

    @property
    def gateway_ep(self) -> str:
        return f"tcp://127.0.0.1:{self.ports[3]}"

    @property
    def feed_ep(self) -> str:
        return f"ipc://{self.feed_ipc}" if self.feed_ipc else f"tcp://127.0.0.1:{self.ports[4]}"

    @property
    def snapshot_ep(self) -> str:
        return f"tcp://127.0.0.1:{self.ports[5]}"

    def metrics(self, node: str = "marketdata") -> dict[str, float]:
        """A node's /metrics, scraped now: {series with labels: value}."""
        port = self.ports[{"marketdata": 6, "matcher": 7, "gateway": 8, "logger": 10}[node]]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            k: float(v)
            for k, v in (
                ln.rsplit(" ", 1) for ln in text.splitlines() if ln and not ln.startswith("#")
            )
        }

    def config(self) -> Path:
        path = self.tmp / "zex.toml"
        if not path.exists():
            path.write_text(
                CONFIG.format(
                    p=self.ports,
                    data=self.tmp / "data",
                    pub_hwm=self.pub_hwm,
                    feed=self.feed_ep,
                    trail=self.trail,
                )
            )
        return path

    def start(self, node: str) -> NodeProcess:
        self.procs[node] = self.start_node(
            [node, "--config", str(self.config())], "Ctrl+C to quit", self.tmp / f"{node}.log"
        )
        return self.procs[node]

    def client(self, account: str) -> Client:
        c = Client(self.gateway_ep, account, account, timeout=5.0)
        c.logon()
        self._clients.append(c)
        return c

    def flow(self, n: int, seed: int) -> int:
        """Trade ``n`` requests: resting limits near the mid, cancels, replaces, crossing IOCs."""
        rng = random.Random(seed)
        mm, tk = self.client("mm"), self.client("tk")
        open_ids: dict[str, list[int]] = {s: [] for s in SYMBOLS}
        trades = 0
        for i in range(n):
            sym = SYMBOLS[i % 2]
            mid, tick = (1000, "0.01") if sym == "XYZ" else (400, "0.05")
            r = rng.random()
            if r < 0.15 and open_ids[sym]:
                oid = open_ids[sym].pop(rng.randrange(len(open_ids[sym])))
                mm.cancel(sym, oid)
            elif r < 0.25 and open_ids[sym]:
                oid = rng.choice(open_ids[sym])
                px = (mid + rng.randint(-8, 8)) * float(tick)
                mm.replace(sym, oid, rng.randint(1, 30), f"{px:.2f}")
            elif r < 0.40:
                side = rng.choice(["buy", "sell"])
                px = (mid + (6 if side == "buy" else -6)) * float(tick)
                ack = tk.place(sym, side, rng.randint(1, 25), f"{px:.2f}", tif="ioc")
                trades += 1 if isinstance(ack, m.Ack) else 0
            else:
                side = rng.choice(["buy", "sell"])
                off = rng.randint(1, 8)
                px = (mid - off if side == "buy" else mid + off) * float(tick)
                ack = mm.place(sym, side, rng.randint(1, 20), f"{px:.2f}")
                if getattr(ack, "order_id", None):
                    open_ids[sym].append(ack.order_id)
            mm.poll(0)
            tk.poll(0)
        return trades

    def burst(self, n: int, seed: int) -> None:
        """Pipeline ``n`` orders through one raw DEALER session, then wait for every answer.

        Much faster than ``flow`` (no round trip per order), for volume: half
        rest around the mid, half cross it.
        """
        rng = random.Random(seed)
        d = zmq.Context.instance().socket(zmq.DEALER)
        d.linger = 0
        d.connect(self.gateway_ep)
        try:
            d.send(encode(m.Logon(account="tk", credential="tk", heartbeat_ms=60_000)))
            assert d.poll(10_000), "no logon_ack"
            assert isinstance(decode_report(d.recv()), m.LogonAck)
            for i in range(n):
                side = "buy" if i % 2 else "sell"
                off = rng.randint(-3, 8)
                ticks = 1000 - off if side == "buy" else 1000 + off
                d.send(
                    encode(
                        m.NewOrder(
                            cl_ord_id=f"b{seed}-{i}",
                            symbol="XYZ",
                            side=side,
                            qty=str(rng.randint(1, 9)),
                            price=f"{ticks / 100:.2f}",
                        )
                    )
                )
            answered = 0
            while answered < n:
                assert d.poll(10_000), f"only {answered} of {n} orders answered"
                r = decode_report(d.recv())
                if isinstance(r, (m.Ack, m.Reject)) and r.cl_ord_id.startswith(f"b{seed}-"):
                    answered += 1
        finally:
            d.close(0)

    def truth(self, symbol: str) -> tuple[list, list]:
        """The matcher's book of ``symbol``: (bids, asks) as (price, qty, orders), best first."""
        c = self.client("tk")
        b = c.book(symbol, 1000)
        return (
            [(lv.price, lv.qty, lv.orders) for lv in b.bids],
            [(lv.price, lv.qty, lv.orders) for lv in b.asks],
        )

    def close(self) -> None:
        for c in self._clients:
            c.close()
