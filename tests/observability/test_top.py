"""`zex top` against a live exchange under load, and its percentile arithmetic."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

from tests.conftest import free_port
from tests.exchange import MdExchange
from zex.nodes.runtime.metrics import LATENCY_BUCKETS, Histogram
from zex.nodes.tools.top import quantile


def cumulative(h: Histogram) -> list[tuple[float, float]]:
    fam = h.family("x", "x")
    return [(float(s.labels["le"]), s.value) for s in fam.samples if s.name == "x_bucket"]


def test_quantile_of_the_interval_between_two_scrapes():
    h = Histogram(LATENCY_BUCKETS)
    for _ in range(1000):
        h.observe(0.5)  # old traffic, before the first scrape: must not count
    before = cumulative(h)
    for i in range(100):
        h.observe(0.000015 if i < 90 else 0.0015)  # 90 in (10us, 20us], 10 in (1ms, 2ms]
    after = cumulative(h)
    p50, p99 = quantile(0.5, before, after), quantile(0.99, before, after)
    assert 10e-6 < p50 <= 20e-6
    assert 1e-3 < p99 <= 2e-3
    assert quantile(0.5, after, after) is None  # nothing observed in between


@pytest.mark.integration
def test_zex_top_shows_rates_latency_and_a_down_node(tmp_path, nodes):
    ex = MdExchange(tmp_path, nodes)
    stop = threading.Event()
    try:
        for node in ("matcher", "marketdata", "logger", "gateway"):
            ex.start(node)

        def load():
            i = 0
            while not stop.is_set():
                ex.flow(40, seed=100 + i)
                i += 1

        t = threading.Thread(target=load, daemon=True)
        t.start()
        p = ex.ports
        dead = free_port()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "zex.nodes.tools.cli",
                "top",
                "--once",
                "--interval",
                "1.5",
                "--matcher",
                f"127.0.0.1:{p[7]}",
                "--gateway",
                f"127.0.0.1:{p[8]}",
                "--gateway",
                f"127.0.0.1:{dead}",
                "--marketdata",
                f"127.0.0.1:{p[6]}",
                "--logger",
                f"127.0.0.1:{p[10]}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        stop.set()
        t.join(30)
        text = out.stdout
        assert out.returncode == 1, text  # one gateway is down
        assert float(re.search(r"commands/s\s+([\d,.]+)", text).group(1).replace(",", "")) > 10, (
            text
        )
        assert re.search(r"matcher p50\s+[\d,]+ us", text), text
        assert re.search(r"gateway 1 p50\s+[\d,.]+ (us|ms)", text), text
        assert re.search(rf"gateway 2\s+DOWN\s+http://127.0.0.1:{dead}/metrics", text), text
        assert re.search(r"marketdata\s+up\s+live", text), text
        assert re.search(r"logger\s+up\s+trail at matcher seq [\d,]+ .*events lost 0", text), text
    finally:
        stop.set()
        ex.close()
