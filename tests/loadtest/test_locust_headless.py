"""The real locustfile, headless, against a real `zex run` on free ports: what `make load` does."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from zex.nodes.runtime import config as zconfig

pytestmark = pytest.mark.integration

ORDER_NAMES = ("new_order", "cancel", "replace", "ioc")
MIN_ORDERS_PER_S = 15  # 3 order users manage hundreds a second here; this only catches a stall
MAX_MEDIAN_US = 20_000  # about 1 ms here; generous for a loaded CI box


def exchange_config(path: Path) -> Path:
    """A config whose every endpoint is a free loopback port and every metrics port is off.

    Built from the config's own sections, so a node added later (with its own
    binds) does not collide with an exchange `make run` left on the defaults.
    """
    lines = []
    for section in dataclasses.fields(zconfig.Config):
        if section.default_factory is dataclasses.MISSING:
            continue
        value = section.default_factory()
        if not dataclasses.is_dataclass(value):
            continue
        lines.append(f"[{section.name}]")
        for f in dataclasses.fields(value):
            if f.name == "metrics_bind":
                lines.append('metrics_bind = ""')
            elif f.name == "bind" or f.name.endswith("_bind"):
                lines.append(f'{f.name} = "tcp://127.0.0.1:{free_port()}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_locust_headless_trades_with_no_failure_and_no_feed_gap(tmp_path, nodes):
    cfg = exchange_config(tmp_path / "zex.toml")
    run = nodes(
        ["run", "--config", str(cfg), "--data-dir", str(tmp_path / "data"), "--quiet"],
        "Ctrl+C to quit",
        tmp_path / "run.log",
    )
    out = tmp_path / "results"
    log = tmp_path / "locust.log"
    env = dict(os.environ, ZEX_LOAD_PROFILE="steady", PYTHONUNBUFFERED="1")
    with open(log, "wb") as fh:
        locust = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(REPO / "loadtest" / "locustfile.py"),
                "--headless",
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "10s",
                "--stop-timeout",
                "3",
                "--only-summary",
                "--json-file",
                str(out / "stats"),
                "--zex-config",
                str(cfg),
                "--zex-out",
                str(out),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
    tail = log.read_text(errors="replace")[-3000:]
    assert locust.returncode == 0, f"locust exited {locust.returncode}:\n{tail}"

    stats = {e["name"]: e for e in json.loads((out / "stats.json").read_text())}
    lat = json.loads((out / "latency_us.json").read_text())
    failures = {n: e["num_failures"] for n, e in stats.items() if e["num_failures"]}
    assert not failures, f"{failures}: {lat['failures']}\n{tail}"
    assert stats["logon"]["num_requests"] == 3  # -u 4: one market-data user, three order users

    for name in ORDER_NAMES:
        assert stats[name]["num_requests"] > 0, f"no {name} was sent:\n{tail}"
    orders = sum(
        e["num_requests"]
        for n, e in stats.items()
        if n in ORDER_NAMES or n.endswith("raced a fill")
    )
    span = max(e["last_request_timestamp"] for e in stats.values()) - min(
        e["start_time"] for e in stats.values()
    )
    assert orders / span > MIN_ORDERS_PER_S, f"{orders} order requests in {span:.1f} s"
    # the expected races stay a small part of the flow
    raced = sum(e["num_requests"] for n, e in stats.items() if n.endswith("raced a fill"))
    assert raced <= 0.05 * orders, f"{raced} raced of {orders}"

    for name in ORDER_NAMES:
        assert lat["latency"][name]["p50"] < MAX_MEDIAN_US, lat["latency"][name]

    # the market-data user synced once, saw updates, and no gap, resync or bad frame
    assert stats["md_sync"]["num_requests"] == 1
    assert stats["md_bbo"]["num_requests"] > 0
    md = lat["market_data"]
    assert md.get("gaps") == 0 and md.get("resyncs") == 0 and md.get("bad_frames") == 0, md
    assert md.get("timeouts") == 0 and md.get("l2_changes", 0) > 0, md
    assert "md_gap" not in stats

    assert run.stop() == 0  # the exchange stops cleanly after the load
