"""A raw client for tests: a DEALER and the codec, nothing else from zex.

Tests that play a hostile client need to send arbitrary bytes, so they use
this rather than the client library; it also keeps these tests independent
of the library they will later check.
"""

from __future__ import annotations

import time

import zmq

from zex.protocol import messages as m
from zex.protocol.codec import decode_report, encode


class Wire:
    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.seen: list[m.Message] = []  # every report received, in order
        self._unread: list[m.Message] = []

    def close(self) -> None:
        self.sock.close(0)

    def send(self, msg: m.Message | bytes | list[bytes]) -> None:
        if isinstance(msg, list):
            self.sock.send_multipart(msg)
        else:
            self.sock.send(msg if isinstance(msg, bytes) else encode(msg))

    def _pump(self, timeout: float) -> bool:
        if not self.sock.poll(int(timeout * 1000)):
            return False
        while True:
            try:
                frame = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            msg = decode_report(frame)
            self.seen.append(msg)
            self._unread.append(msg)

    def expect(self, pred, timeout: float = 10.0, what: str = "a report"):
        """The first unread report matching ``pred`` (heartbeats never match unless asked)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self._unread):
                if pred(msg):
                    del self._unread[i]
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout} s; unread: {self._unread[-5:]}")
            self._pump(min(left, 0.2))

    def answer(self, cl_ord_id: str, timeout: float = 10.0):
        """The first answer (not a fill) carrying ``cl_ord_id``."""
        return self.expect(
            lambda r: getattr(r, "cl_ord_id", None) == cl_ord_id and not isinstance(r, m.Fill),
            timeout,
            f"answer to {cl_ord_id}",
        )

    def logon(self, account: str, credential: str, heartbeat_ms: int = 5000) -> m.LogonAck:
        self.send(m.Logon(account=account, credential=credential, heartbeat_ms=heartbeat_ms))
        r = self.expect(lambda r: isinstance(r, (m.LogonAck, m.Reject)), what="logon answer")
        assert isinstance(r, m.LogonAck), r
        return r

    def order(self, cl: str, side: str, qty: str, price: str | None, symbol: str = "XYZ", **kw):
        self.send(m.NewOrder(cl_ord_id=cl, symbol=symbol, side=side, qty=qty, price=price, **kw))
        return self.answer(cl)

    def query(self, what: str, req_id: str = "q", symbol: str = ""):
        self.send(m.Query(req_id=req_id, what=what, symbol=symbol))
        return self.expect(
            lambda r: isinstance(r, (m.Orders, m.Positions, m.Book)) and r.req_id == req_id,
            what=f"{what} answer",
        )

    def drain(self, quiet: float = 0.3) -> list[m.Message]:
        """Read until nothing arrives for ``quiet`` seconds; return the unread reports."""
        while self._pump(quiet):
            pass
        out, self._unread = self._unread, []
        return out
