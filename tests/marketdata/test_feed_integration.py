"""The market-data feed over real processes: late, paused past the HWM, and a killed marketdata node.

Each scenario ends with the subscriber's local book equal to the matcher's
book at full depth, every gap it saw answered by a resync, and its l2
sequence equal to the feed's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import zmq

from tests.conftest import REPO, wait_for
from tests.exchange import SYMBOLS, MdExchange
from zex.protocol import marketdata as md
from zex.protocol.mdclient import BookSubscriber

pytestmark = pytest.mark.integration


def local(sub: BookSubscriber, symbol: str) -> tuple[list, list]:
    b = sub.book(symbol)
    return b.levels("buy"), b.levels("sell")


def assert_converges(ex: MdExchange, sub: BookSubscriber, timeout: float = 15.0) -> None:
    """Poll until every symbol's local book equals the matcher's, or fail showing the difference."""
    truth = {s: ex.truth(s) for s in SYMBOLS}
    assert any(truth[s][0] or truth[s][1] for s in SYMBOLS), (
        "the flow left empty books: nothing compared"
    )
    deadline = time.monotonic() + timeout
    while True:
        sub.poll(0.05)
        if all(sub.synced(s) and local(sub, s) == truth[s] for s in SYMBOLS):
            return
        if time.monotonic() > deadline:
            s = next(s for s in SYMBOLS if not (sub.synced(s) and local(sub, s) == truth[s]))
            raise AssertionError(
                f"{s}: synced={sub.synced(s)}\nlocal {local(sub, s)}\nmatcher {truth[s]}"
            )


def test_late_subscriber_ends_with_the_matchers_book(md_exchange):
    ex = md_exchange
    for node in ("matcher", "marketdata", "gateway"):
        ex.start(node)
    ex.flow(300, seed=1)
    with BookSubscriber(ex.feed_ep, ex.snapshot_ep, SYMBOLS, timeout=2.0) as sub:
        assert sub.run_until(lambda: all(sub.synced(s) for s in SYMBOLS), 10)
        ex.flow(300, seed=2)
        assert_converges(ex, sub)
        assert sub.gaps == 0, "a subscriber that keeps up sees no gap"
        # the snapshot told it where the numbering stood: it did not restart at 1
        assert all(sub.book(s).seq > 10 for s in SYMBOLS)
    # The node's metrics saw it: two snapshots served, then a subscriber gone.
    wait_for(
        lambda: ex.metrics().get("zex_marketdata_subscribers_disconnected_total", 0) >= 1,
        10,
        "the disconnect counted",
    )
    scraped = ex.metrics()
    assert scraped["zex_marketdata_snapshots_served_total"] >= len(SYMBOLS)
    assert scraped["zex_marketdata_live"] == 1 and scraped["zex_marketdata_events_lost_total"] == 0
    assert scraped["zex_marketdata_matcher_seq"] == 600  # every command of the two flows applied


def test_paused_subscriber_dropped_by_the_hwm_resyncs(tmp_path, nodes, ipc_dir):
    # Small queues at both ends and an ipc feed (no TCP autotuning buffering megabytes),
    # so a subscriber that stops reading during a burst loses updates at the PUB.
    ex = MdExchange(tmp_path, nodes, pub_hwm=20, feed_ipc=ipc_dir / "feed")
    try:
        for node in ("matcher", "marketdata", "gateway"):
            ex.start(node)
        with BookSubscriber(ex.feed_ep, ex.snapshot_ep, SYMBOLS, timeout=2.0, rcvhwm=20) as sub:
            assert sub.run_until(lambda: all(sub.synced(s) for s in SYMBOLS), 10)
            ex.burst(4000, seed=3)  # nobody polls the subscriber meanwhile
            ex.flow(50, seed=3)
            assert_converges(ex, sub)
            assert sub.gaps >= 1 and sub.resyncs >= 1, (sub.gaps, sub.resyncs)
    finally:
        ex.close()


def test_marketdata_killed_and_restarted_continues_its_numbering(md_exchange):
    ex = md_exchange
    for node in ("matcher", "marketdata", "gateway"):
        ex.start(node)
    with BookSubscriber(ex.feed_ep, ex.snapshot_ep, SYMBOLS, timeout=1.0) as sub:
        ex.flow(200, seed=4)
        assert_converges(ex, sub)
        before = {s: sub.book(s).seq for s in SYMBOLS}
        ex.procs["marketdata"].kill()
        ex.flow(200, seed=5)  # traded while the feed is down
        ex.start("marketdata")
        ex.flow(100, seed=6)
        assert_converges(ex, sub)
        after = {s: sub.book(s).seq for s in SYMBOLS}
        assert all(after[s] > before[s] for s in SYMBOLS), (before, after)
        assert sub.gaps >= 1 and sub.resyncs >= 1, "the updates made while it was down are a gap"

        # The numbering is the event stream's alone: a second subscriber joining now
        # is told the same seq as the one that lived through the restart.
        with BookSubscriber(ex.feed_ep, ex.snapshot_ep, SYMBOLS, timeout=1.0) as late:
            assert late.run_until(lambda: all(late.synced(s) for s in SYMBOLS), 10)
            sub.poll(0.2)
            assert {s: late.book(s).seq for s in SYMBOLS} == {s: sub.book(s).seq for s in SYMBOLS}


def test_plain_msgpack_subscriber_rebuilds_the_book(md_exchange):
    """protocol/examples/plain_book.py imports only pyzmq and msgpack: the spec is enough."""
    ex = md_exchange
    for node in ("matcher", "marketdata", "gateway"):
        ex.start(node)
    ex.flow(200, seed=7)
    truth = ex.truth("XYZ")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "protocol" / "examples" / "plain_book.py"),
            "--feed",
            ex.feed_ep,
            "--snapshot",
            ex.snapshot_ep,
            "--symbol",
            "XYZ",
            "--seconds",
            "1.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [tuple(lv) for lv in got["bids"]] == truth[0] and [
        tuple(lv) for lv in got["asks"]
    ] == truth[1]


def test_snapshot_service_refuses_bad_requests_with_reasons(md_exchange):
    ex = md_exchange
    ex.start("matcher")
    ex.start("marketdata")
    ctx = zmq.Context.instance()
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(ex.snapshot_ep)
    try:

        def ask(frame: bytes):
            d.send(frame)
            assert d.poll(5000), "no answer"
            return md.snapshot_reply_decoder.decode(d.recv())

        assert ask(md.encoder.encode(md.SnapshotRequest(symbol="NOPE", req_id="a"))).code == 200
        bad = ask(b"\x81\xa4type\xb0snapshot_request")  # no symbol
        assert bad.code == 103 and "symbol" in bad.text
        wrong = ask(md.encoder.encode({"type": "snapshot_request", "symbol": 7, "req_id": "w"}))
        assert wrong.code == 104 and wrong.req_id == "w"
        assert ask(b"\xc1\xc1garbage").code == 100
        ok = ask(md.encoder.encode(md.SnapshotRequest(symbol="XYZ", req_id="b")))
        assert ok.req_id == "b" and ok.bids == [] and ok.asks == []
        l3 = ask(md.encoder.encode(md.SnapshotRequest(symbol="XYZ", channel="l3", req_id="c")))
        assert isinstance(l3, md.L3Snapshot)
    finally:
        d.close(0)
