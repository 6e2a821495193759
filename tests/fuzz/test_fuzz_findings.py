"""What the fuzz runs found, kept as tests: each failed until its fix.

Each names the target that found it and replays the input's essence directly.
(A finding not fixed yet is an xfail(strict=True) here, and its target counts it
apart in ``known`` so a long run goes on past it.)
"""

from __future__ import annotations

from fuzz.targets import _Router, snapshot_node
from zex.protocol import marketdata as md
from zex.protocol.reasons import Reason


def test_snapshot_reject_of_an_over_long_req_id_is_a_valid_reply():
    # Found by fuzz snapshot: the reject echoed a req_id over 36 characters (SPEC 12.4.9 says
    # 0..36), and the subscriber's decoder refused the reply, so the client never saw it.
    node = snapshot_node()
    router = _Router()
    frame = md.encoder.encode({"type": "snapshot_request", "symbol": "XYZ", "req_id": "r" * 37})
    node._snapshot(router, b"peer", frame)  # type: ignore[arg-type]
    [[peer, raw]] = router.sent
    # The reply must be one a subscriber can read: SPEC 12.4.9's req_id is 0..36 characters.
    reply = md.snapshot_reply_decoder.decode(raw)
    assert isinstance(reply, md.SnapshotReject) and reply.code == Reason.INVALID_VALUE
    assert reply.req_id == ""  # not the request's: it could not be read as one
