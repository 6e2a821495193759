"""`zex run` (what `make run` starts) and the trading CLI against it, as a user would type it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.conftest import free_port, free_port_config


def zex(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zex.nodes.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_zex_run_starts_everything_and_the_cli_trades_against_it(
    tmp_path, nodes, default_ports_held
):
    # Every default port is held (as by an exchange `make run` left up): the test's own config
    # must move every node off them. It once left the logger's two on the defaults.
    cfg = free_port_config(tmp_path / "zex.toml", tmp_path / "data")
    gw = tomllib.loads(cfg.read_text())["gateway"]["bind"]
    run = nodes(
        ["run", "--config", str(cfg), "--data-dir", str(tmp_path / "data"), "--quiet"],
        "Ctrl+C to quit",
        tmp_path / "run.log",
    )
    # says where to connect, with an example
    assert gw in run.banner and "zex order buy" in run.banner
    alice = ["--gateway", gw, "--account", "alice", "--credential", "alice"]

    placed = zex("order", "buy", "5", "XYZ", "90.00", *alice)
    assert placed.returncode == 0, placed.stderr
    m = re.search(r"ack\s+#(\d+) buy 5 XYZ @ 90 gtc", placed.stdout)
    assert m, placed.stdout
    order_id = m.group(1)
    listed = zex("orders", "XYZ", *alice)
    assert re.search(rf"^\s*{order_id}\s+buy\s+XYZ\s+90\s+5\s+5\s+0", listed.stdout, re.M), (
        listed.stdout
    )
    book = zex("book", "XYZ", "--once", "--config", str(cfg))  # the public feed: no account needed
    assert re.search(r"^\s+1\s+5\s+90 \|", book.stdout, re.M), book.stdout
    replaced = zex("replace", "XYZ", order_id, "3", "90.00", *alice)
    assert "kept priority" in replaced.stdout, replaced.stdout
    cancelled = zex("cancel", "XYZ", order_id, *alice)
    assert re.search(rf"cancelled #{order_id} buy 3 XYZ \(user\)", cancelled.stdout), (
        cancelled.stdout
    )
    positions = zex("positions", *alice)
    assert positions.returncode == 0 and "open orders 0" in positions.stdout, positions.stdout

    refused = zex("order", "buy", "5", "XYZ", "90.001", *alice)
    assert refused.returncode == 1 and "PRICE_OFF_TICK" in refused.stdout, refused.stdout
    bad = zex("orders", "--gateway", gw, "--account", "alice", "--credential", "nope")
    assert bad.returncode != 0 and "logon refused" in bad.stderr and "--credential" in bad.stderr
    nobody = zex(
        "orders",
        "--gateway",
        f"tcp://127.0.0.1:{free_port()}",
        "--account",
        "alice",
        "--credential",
        "alice",
        "--timeout",
        "0.5",
    )
    assert nobody.returncode != 0 and "make run" in nobody.stderr, nobody.stderr

    assert run.stop() == 0  # Ctrl+C: a clean stop
