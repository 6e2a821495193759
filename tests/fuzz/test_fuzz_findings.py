"""What the fuzz runs found, kept as tests (xfail until the product code is fixed).

Each names the target that found it and replays the input's essence directly.
"""

from __future__ import annotations

import msgspec
import pytest

from fuzz.targets import SnapshotTarget, _Router, snapshot_node
from zex.protocol import marketdata as md
from zex.protocol.reasons import Reason


@pytest.mark.xfail(
    strict=True,
    reason="snapshot service echoes a req_id over 36 characters in snapshot_reject (SPEC 12.4.9 "
    "says 0..36); the subscriber's decoder then refuses the reply: found by fuzz snapshot",
)
def test_snapshot_reject_of_an_over_long_req_id_is_a_valid_reply():
    node = snapshot_node()
    router = _Router()
    frame = md.encoder.encode({"type": "snapshot_request", "symbol": "XYZ", "req_id": "r" * 37})
    node._snapshot(router, b"peer", frame)  # type: ignore[arg-type]
    [[peer, raw]] = router.sent
    # The reply must be one a subscriber can read: SPEC 12.4.9's req_id is 0..36 characters.
    reply = md.snapshot_reply_decoder.decode(raw)
    assert isinstance(reply, md.SnapshotReject) and reply.code == Reason.INVALID_VALUE


def test_the_snapshot_target_counts_the_known_finding_apart():
    # The long run goes on past it (fuzz/targets.py) rather than stopping at its first hit.
    target = SnapshotTarget()
    frame = md.encoder.encode({"type": "snapshot_request", "symbol": "XYZ", "req_id": "r" * 37})
    target.one(b"\x00" + frame)
    assert sum(target.known.values()) == 1
    with pytest.raises(msgspec.ValidationError):
        md.snapshot_reply_decoder.decode(target.router.sent[0][1])
