"""An exchange of real processes for the order-entry tests: one matcher, gateways on demand.

The matcher listens on ipc (a unique path under the test's temp dir) so
these tests cover that transport; the crash test covers tcp and the
in-process test inproc.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import NodeProcess, free_port

ACCOUNTS = """
[[accounts]]
id = "alice"
credential = "alice-pw"
cancel_on_disconnect = true

[[accounts]]
id = "bob"
credential = "bob-pw"

[[accounts]]
id = "mallory"
credential = "mallory-pw"
rate = 20
burst = 10

[[accounts]]
id = "risky"
credential = "risky-pw"
max_order_qty = "20"
max_notional = "150"
collar_pct = "10"
max_open_orders = 3
max_position = "10"
credit = "100"

[[accounts]]
id = "ops"
credential = "ops-pw"
operator = true
"""

MATCHER_HWM = (
    300  # commands a gateway queues towards a matcher that is down (small, so a test can fill it)
)

INSTRUMENTS = """
[[instruments]]
symbol = "XYZ"
tick = "0.01"
lot = "1"
max_price = "1000"
max_qty = "100000"
reference_price = "10"

[[instruments]]
symbol = "ABC"
tick = "0.05"
lot = "1"
min_price = "0.05"
max_price = "1000"
"""


@dataclass
class Exchange:
    tmp: Path
    start_node: object
    matcher_ep: str
    events_ep: str
    data: Path
    matcher: NodeProcess | None = None
    gateways: dict[str, NodeProcess] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    workers: int = 0  # gateway.workers for start_gateway: 0 (front thread) or worker threads

    def config(self) -> Path:
        path = self.tmp / "zex.toml"
        if not path.exists():
            path.write_text(
                f'[matcher]\nbind = "{self.matcher_ep}"\nevents_bind = "{self.events_ep}"\n'
                f'replay_bind = "{self.events_ep}-replay"\nmetrics_bind = ""\n'
                f'data_dir = "{self.data}"\nfsync = "off"\n'
                # audit off: the default logger address is a fixed port another exchange may hold
                f'[gateway]\nmetrics_bind = ""\naudit = "off"\nmatcher_hwm = {MATCHER_HWM}\n'
                + INSTRUMENTS
                + ACCOUNTS
            )
        return path

    def start_matcher(self) -> NodeProcess:
        self.matcher = self.start_node(
            ["matcher", "--config", str(self.config())], "Ctrl+C to quit", self.tmp / "matcher.log"
        )
        return self.matcher

    def start_gateway(self, name: str = "gw1") -> str:
        """Start (or restart) gateway ``name``; return the endpoint clients connect to."""
        ep = self.endpoints.setdefault(name, f"tcp://127.0.0.1:{free_port()}")
        self.gateways[name] = self.start_node(
            [
                "gateway",
                "--config",
                str(self.config()),
                "--name",
                name,
                "--bind",
                ep,
                "--workers",
                str(self.workers),
            ],
            "Ctrl+C to quit",
            self.tmp / f"{name}.log",
        )
        return ep


@pytest.fixture(params=[0, 2], ids=["front", "2workers"])
def exchange(request, tmp_path, nodes, ipc_dir) -> Exchange:
    """Every order-entry test runs against both gateway arrangements: requests handled in the
    front thread (workers = 0, the default) and handed to two worker threads."""
    ex = Exchange(
        tmp_path,
        nodes,
        f"ipc://{ipc_dir}/m",
        f"ipc://{ipc_dir}/ev",
        tmp_path / "data",
        workers=request.param,
    )
    ex.start_matcher()
    ex.start_gateway()
    return ex
