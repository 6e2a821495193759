"""The sending end of the audit trail: a bounded PUSH to the logger that never blocks its owner.

    audit = AuditPush(ctx, "tcp://127.0.0.1:7106", source="gw1")   # in the thread that uses it
    audit.record("reject", account="alice", cl_ord_id="a-1", reason=202, text="price off tick")
    audit.dropped            # records given up because the queue to the logger was full
    audit.close()

ZeroMQ queues up to ``hwm`` records while the logger is slow, down or not
started yet, and delivers them when it is back; past that, a record is
dropped and counted, so a dead logger costs a gateway a counter, never a
stall. Records already in the logger's queue when it is killed are lost;
the matcher's events are never lost (the logger fills them from the replay
service), which is why the trail keeps the two apart.
"""

from __future__ import annotations

import time

import zmq

from zex.protocol.internal import AuditRecord, encoder

AUDIT_HWM = 10_000  # records queued towards the logger per sending thread; 1k..100k is reasonable


class AuditPush:
    """One thread's PUSH of AuditRecords; ``endpoint`` "" turns auditing off."""

    def __init__(self, ctx: zmq.Context, endpoint: str, source: str, hwm: int = AUDIT_HWM) -> None:
        self.source = source
        self.sent = 0
        self.dropped = 0
        self._sock = None
        if endpoint:
            self._sock = ctx.socket(zmq.PUSH)
            self._sock.linger = 0
            self._sock.sndhwm = hwm
            self._sock.connect(endpoint)

    def record(
        self,
        kind: str,
        account: str = "",
        client: bytes = b"",
        cl_ord_id: str = "",
        reason: int = 0,
        text: str = "",
    ) -> None:
        if self._sock is None:
            return
        frame = encoder.encode(
            AuditRecord(time.time_ns(), self.source, kind, account, client, cl_ord_id, reason, text)
        )
        try:
            self._sock.send(frame, zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
