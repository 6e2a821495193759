"""The exchange under test: matcher, one or two gateways, marketdata, logger, each its own process.

    cl = Cluster(Path("/tmp/run"), gateways=2)
    cl.start_all()                 # every node, each waited for until it says it is ready
    cl.kill("gw2")                 # SIGKILL, reaped, file handles closed
    cl.start("gw2")                # the same command line, ports and data directories again
    cl.metrics("logger")           # {series: value}, scraped now
    cl.close()                     # SIGINT to each (SIGKILL after a deadline); never hangs

Ports are picked below the kernel's ephemeral range (32768.. on Linux), so
while a node is down no outgoing connection can take its port and its
restart cannot fail to bind.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from tests.conftest import NodeProcess, free_port
from zex.nodes.runtime import config as config_mod

SYMBOLS = ("XYZ", "ABC")
MID_TICKS = {"XYZ": 1000, "ABC": 400}  # 10.00 and 20.00: where the traders quote
READY = "Ctrl+C to quit"
PORTS = (
    "matcher",
    "events",
    "replay",
    "gw1",
    "gw2",
    "feed",
    "snapshot",
    "logger",
    "m_matcher",
    "m_gw1",
    "m_gw2",
    "m_marketdata",
    "m_logger",
)

CONFIG = """\
[matcher]
bind = "tcp://127.0.0.1:{p[matcher]}"
events_bind = "tcp://127.0.0.1:{p[events]}"
replay_bind = "tcp://127.0.0.1:{p[replay]}"
data_dir = "{data}"
fsync = "off"                 # a process crash loses nothing under any policy (journal.py)
snapshot_every = {snapshot_every}
digest_every = {digest_every}      # a digest of the whole state on the stream: `zex replay` compares it
heartbeat_ms = 200
metrics_bind = "127.0.0.1:{p[m_matcher]}"

[gateway]
bind = "tcp://127.0.0.1:{p[gw1]}"
metrics_bind = "127.0.0.1:{p[m_gw1]}"

[logger]
bind = "tcp://127.0.0.1:{p[logger]}"
data_dir = "{trail}"
fsync = "off"
metrics_bind = "127.0.0.1:{p[m_logger]}"

[marketdata]
feed_bind = "tcp://127.0.0.1:{p[feed]}"
snapshot_bind = "tcp://127.0.0.1:{p[snapshot]}"
heartbeat_ms = 200
metrics_bind = "127.0.0.1:{p[m_marketdata]}"

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
{accounts}"""


def pick_ports(names) -> dict[str, int]:
    """Distinct loopback ports below the ephemeral range that were free a moment ago, one per
    name (conftest.free_port: never one this run handed out before)."""
    return {name: free_port() for name in names}


class Cluster:
    """The node processes of one exchange and everything needed to kill and restart them."""

    def __init__(
        self,
        tmp: Path,
        *,
        gateways: int = 2,
        accounts: tuple[str, ...] = ("t0", "t1", "t2", "t3"),
        cancel_on_disconnect: tuple[str, ...] = (),
        snapshot_every: int = 2_000,
        digest_every: int = 5_000,
    ) -> None:
        if gateways not in (1, 2):
            raise ValueError(f"gateways must be 1 or 2, was {gateways}")
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.gateways = tuple(f"gw{i + 1}" for i in range(gateways))
        self.nodes = ("matcher", *self.gateways, "marketdata", "logger")
        self.accounts = accounts
        self.ports = pick_ports(PORTS)
        self.data = self.tmp / "data"
        self.trail = self.tmp / "trail"
        self.config_path = self.tmp / "zex.toml"
        accts = "".join(
            f'\n[[accounts]]\nid = "{a}"\ncredential = "{a}"\n'
            f"cancel_on_disconnect = {'true' if a in cancel_on_disconnect else 'false'}\n"
            for a in accounts
        )
        self.config_path.write_text(
            CONFIG.format(
                p=self.ports,
                data=self.data,
                trail=self.trail,
                snapshot_every=snapshot_every,
                digest_every=digest_every,
                accounts=accts,
            )
        )
        self.cfg = config_mod.load(self.config_path, env={})
        self.procs: dict[str, NodeProcess] = {}
        self.starts: dict[str, int] = {}

    # ------------------------------------------------------------ endpoints

    def endpoint(self, node: str) -> str:
        """Where clients (gw1, gw2), feed subscribers (feed) or snapshot requests (snapshot) connect."""
        return f"tcp://127.0.0.1:{self.ports[node]}"

    def metrics(self, node: str, timeout: float = 2.0) -> dict[str, float]:
        """A node's /metrics, scraped now: {series with labels: value}; raises OSError if it is down."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.ports['m_' + node]}/metrics", timeout=timeout
        ) as r:
            text = r.read().decode()
        return {
            k: float(v)
            for k, v in (
                ln.rsplit(" ", 1) for ln in text.splitlines() if ln and not ln.startswith("#")
            )
        }

    def matcher_seq(self) -> int:
        return int(self.metrics("matcher")["zex_matcher_seq"])

    # -------------------------------------------------------------- nodes

    def args(self, node: str) -> list[str]:
        cfg = ["--config", str(self.config_path)]
        if node == "gw2":  # the second gateway: the first one's config, its own name and ports
            return [
                "gateway",
                *cfg,
                "--name",
                "gw2",
                "--bind",
                self.endpoint("gw2"),
                "--metrics",
                f"127.0.0.1:{self.ports['m_gw2']}",
            ]
        return ["gateway" if node == "gw1" else node, *cfg]

    def start(self, node: str, timeout: float = 30.0) -> NodeProcess:
        """Start ``node`` and wait for its readiness line (it is bound and serving, or catching up)."""
        n = self.starts[node] = self.starts.get(node, 0) + 1
        proc = NodeProcess(self.args(node), READY, self.tmp / f"{node}.log")
        self.procs[node] = proc
        proc.start(timeout)
        proc.generation = n
        return proc

    def start_all(self) -> None:
        for node in self.nodes:  # the matcher first: everyone else connects to it
            self.start(node)

    def started_seq(self, node: str = "matcher") -> int:
        """The seq the matcher said it recovered to in its readiness banner."""
        found = re.search(r"seq (\d+)", self.procs[node].banner)
        if found is None:
            raise RuntimeError(f"no seq in the matcher's banner: {self.procs[node].banner!r}")
        return int(found.group(1))

    def alive(self, node: str) -> bool:
        p = self.procs.get(node)
        return p is not None and p.proc is not None and p.proc.poll() is None

    def kill(self, node: str) -> None:
        """SIGKILL ``node``, reap it and close its pipes (a run makes hundreds of these)."""
        p = self.procs[node]
        p.kill()
        p.stop()

    def stop(self, node: str, timeout: float = 15.0) -> int:
        """A clean stop (SIGINT); returns the exit status (0 is clean)."""
        p = self.procs.pop(node, None)
        return 0 if p is None else p.stop(timeout)

    def close(self) -> dict[str, int]:
        """Stop every node still running, gateways first and the matcher last; never raises."""
        order = [
            n
            for n in (*reversed(self.gateways), "marketdata", "logger", "matcher")
            if n in self.procs
        ]
        codes: dict[str, int] = {}
        for node in order:
            try:
                codes[node] = self.stop(node)
            except Exception as exc:  # keep stopping the others
                codes[node] = -999
                print(f"chaos: could not stop {node}: {exc}")
        return codes
