"""Valid frames of every message type: the corpus every fuzz target starts from.

The client and market-data samples are the conformance tests' (one per type;
those tests fail when a type has no sample), and the intake gets requests that
pass its checks for each listed instrument, so mutations start from accepted
orders rather than from refusals.
"""

from __future__ import annotations

import msgpack

from tests.protocol.test_conformance import SAMPLES as CLIENT_SAMPLES
from tests.protocol.test_marketdata_conformance import SAMPLES as MD_SAMPLES
from zex.protocol import marketdata as md
from zex.protocol import messages as m
from zex.protocol.codec import encode

# Requests the default config (nodes/runtime/config.py) accepts from alice or ops.
INTAKE_REQUESTS: tuple[m.Message, ...] = (
    m.Logon(account="alice", credential="alice"),
    m.Logon(account="ops", credential="ops", heartbeat_ms=1000),
    m.Heartbeat(next_seq=1),
    m.NewOrder(cl_ord_id="o1", symbol="XYZ", side="buy", qty="10", price="100.5"),
    m.NewOrder(cl_ord_id="o2", symbol="ABC", side="sell", qty="3", price="50.05", tif="ioc"),
    m.NewOrder(cl_ord_id="o3", symbol="BTC-USD", side="buy", qty="0.25", price="60000.5"),
    # alice's max_notional is 1,000,000: 16 BTC at 60000 is just under it, a little more is over
    m.NewOrder(cl_ord_id="o6", symbol="BTC-USD", side="sell", qty="16", price="60000"),
    m.NewOrder(cl_ord_id="o7", symbol="BTC-USD", side="buy", qty="1", ord_type="market"),
    m.NewOrder(cl_ord_id="o4", symbol="XYZ", side="sell", qty="1", ord_type="market", tif="fok"),
    m.NewOrder(
        cl_ord_id="o5", symbol="XYZ", side="buy", qty="2", price="99", post_only=True, stp="none"
    ),
    m.Cancel(cl_ord_id="c1", symbol="XYZ", order_id=7),
    m.Cancel(cl_ord_id="c2", symbol="ABC", orig_cl_ord_id="o2"),
    m.Replace(cl_ord_id="r1", symbol="XYZ", qty="5", price="101", order_id=7),
    m.Replace(cl_ord_id="r2", symbol="BTC-USD", qty="0.5", price="60001", orig_cl_ord_id="o3"),
    m.Query(req_id="q1", what="orders"),
    m.Query(req_id="q2", what="book", symbol="XYZ", depth=5),
    m.Recover(from_rseq=1, limit=10),
    m.KillSwitch(cl_ord_id="k1", account="bob", mode="block"),
    m.Logout(),
)

SNAPSHOT_REQUESTS: tuple[md.SnapshotRequest, ...] = (
    md.SnapshotRequest(symbol="XYZ", req_id="s1"),
    md.SnapshotRequest(symbol="ABC", channel="l3", depth=2, req_id="s2"),
    md.SnapshotRequest(symbol="BTC-USD", depth=1),
)


def client_frames() -> list[bytes]:
    return [encode(msg) for msg in CLIENT_SAMPLES.values()]


def md_frames() -> list[bytes]:
    return [md.encoder.encode(msg) for msg in MD_SAMPLES.values()]


def intake_frames() -> list[bytes]:
    return [encode(msg) for msg in INTAKE_REQUESTS] + client_frames()


def snapshot_frames() -> list[bytes]:
    return [md.encoder.encode(msg) for msg in SNAPSHOT_REQUESTS] + md_frames()


def maps(frames: list[bytes]) -> list[dict]:
    """The frames as plain dicts, for the map builder to edit."""
    return [msgpack.unpackb(f) for f in frames]


def field_names(frames: list[bytes]) -> tuple[str, ...]:
    """Every key of every seed map, nested ones included, sorted: what the builder sets."""
    names: set[str] = set()

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                names.add(k)
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    for f in frames:
        walk(msgpack.unpackb(f))
    return tuple(sorted(names))
