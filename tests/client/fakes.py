"""Test doubles for the client: report builders and a scripted gateway on a real socket.

``ScriptedGateway`` is a ROUTER on a free loopback port (the OS picks it),
owned by its own thread and stopped through an inproc control pipe; a
``script(gw, ident, request)`` callback decides what to answer. Every frame
it receives is kept (``seen``: (routing id, decoded request, raw bytes)).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import zmq

from tests.conftest import wait_for
from zex.protocol.codec import decode_request, encode
from zex.protocol.messages import (
    Ack,
    Cancelled,
    Fill,
    Heartbeat,
    LoggedOut,
    Logon,
    LogonAck,
    Logout,
    Recovered,
    Reject,
    Replaced,
)
from zex.protocol.reasons import Reason


def ack(cl: str, rseq: int = 0, order_id: int = 1, resent: bool = False) -> Ack:
    return Ack(
        cl_ord_id=cl,
        order_id=order_id,
        symbol="XYZ",
        side="buy",
        ord_type="limit",
        tif="gtc",
        price="10",
        qty="5",
        seq=100 + order_id,
        ts=1,
        rseq=rseq,
        resent=resent,
    )


def fill(rseq: int, order_id: int = 1, cl: str = "o-1") -> Fill:
    return Fill(
        order_id=order_id,
        cl_ord_id=cl,
        symbol="XYZ",
        side="buy",
        price="10",
        qty="1",
        leaves="4",
        trade_id=rseq,
        liquidity="maker",
        seq=200 + rseq,
        ts=1,
        rseq=rseq,
    )


def cancelled(
    order_id: int,
    cl: str,
    rseq: int = 0,
    reason: str = "user",
    orig: str = "o-1",
    resent: bool = False,
) -> Cancelled:
    """``cl`` is the cancel request's id when this answers one, else the order's (= ``orig``)."""
    return Cancelled(
        order_id=order_id,
        cl_ord_id=cl,
        orig_cl_ord_id=orig,
        symbol="XYZ",
        side="buy",
        qty="5",
        reason=reason,
        seq=300,
        ts=1,
        rseq=rseq,
        resent=resent,
    )


def replaced(order_id: int, cl: str, rseq: int = 0, orig: str = "o-1") -> Replaced:
    return Replaced(
        order_id=order_id,
        cl_ord_id=cl,
        orig_cl_ord_id=orig,
        symbol="XYZ",
        side="buy",
        price="11",
        qty="5",
        leaves="5",
        kept_priority=False,
        seq=400,
        ts=1,
        rseq=rseq,
    )


def reject(
    cl: str, reason: int = 204, ref_type: str = "new_order", seq: int = 0, rseq: int = 0
) -> Reject:
    name = Reason(reason).name if reason in Reason._value2member_map_ else "UNKNOWN"
    return Reject(
        cl_ord_id=cl,
        ref_type=ref_type,
        reason=reason,
        reason_name=name,
        text="no",
        seq=seq,
        rseq=rseq,
    )


def logon_ack(next_rseq: int = 1, heartbeat_ms: int = 1000) -> LogonAck:
    return LogonAck(
        account="alice", session_id="s-1", heartbeat_ms=heartbeat_ms, next_rseq=next_rseq
    )


def recovered(from_rseq: int, to_rseq: int, last_rseq: int) -> Recovered:
    return Recovered(from_rseq=from_rseq, to_rseq=to_rseq, last_rseq=last_rseq)


Script = Callable[["ScriptedGateway", bytes, object], list]


class ScriptedGateway:
    """A fake gateway in a thread; ``with ScriptedGateway(ctx, script) as gw: gw.endpoint``.

    The script returns what to send back to the requester: messages, raw
    frames (bytes) or multi-part lists. ``send(ident, *items)`` pushes
    unsolicited items from the test thread through the control pipe.
    """

    def __init__(self, ctx: zmq.Context, script: Script) -> None:
        self.ctx = ctx
        self.script = script
        self.seen: list[tuple[bytes, object, bytes]] = []
        self.endpoint = ""
        self._ctrl_addr = f"inproc://fake-gw-{uuid.uuid4().hex}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-gateway", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> ScriptedGateway:
        self._ctrl = self.ctx.socket(zmq.PAIR)
        self._ctrl.linger = 0
        self._ctrl.bind(self._ctrl_addr)
        self._thread.start()
        if not self._ready.wait(5):
            raise TimeoutError("the fake gateway did not bind within 5 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctrl.send_multipart([b"STOP"])
        self._thread.join(5)
        self._ctrl.close(0)
        assert not self._thread.is_alive(), "the fake gateway did not stop"
        if self.error is not None:
            raise self.error

    def send(self, ident: bytes, *items: object) -> None:
        self._ctrl.send_multipart([b"SEND", ident, *(_frame(i) for i in items)])

    def requests(self, kind: type) -> list:
        return [msg for _, msg, _ in self.seen if type(msg) is kind]

    def wait_requests(self, kind: type, count: int, timeout: float = 5.0) -> list:
        """The requests of ``kind`` once ``count`` have arrived (for requests left unanswered)."""
        return wait_for(
            lambda: len(self.requests(kind)) >= count and self.requests(kind),
            timeout,
            f"{count} {kind.__name__} request(s) at the fake gateway",
        )

    def _run(self) -> None:
        router = self.ctx.socket(zmq.ROUTER)
        ctrl = self.ctx.socket(zmq.PAIR)
        try:
            router.linger = ctrl.linger = 0
            router.bind("tcp://127.0.0.1:*")
            self.endpoint = router.last_endpoint.decode()
            ctrl.connect(self._ctrl_addr)
            self._ready.set()
            poller = zmq.Poller()
            poller.register(router, zmq.POLLIN)
            poller.register(ctrl, zmq.POLLIN)
            while True:
                ready = dict(poller.poll())
                if ctrl in ready:
                    cmd = ctrl.recv_multipart()
                    if cmd[0] == b"STOP":
                        return
                    for f in cmd[2:]:
                        router.send_multipart([cmd[1], f])
                if router in ready:
                    ident, raw = router.recv_multipart()
                    msg = decode_request(raw)
                    self.seen.append((ident, msg, raw))
                    for item in self.script(self, ident, msg):
                        parts = item if isinstance(item, list) else [_frame(item)]
                        router.send_multipart([ident, *parts])
        except BaseException as exc:  # surfaced by __exit__
            self.error = exc
            self._ready.set()
        finally:
            router.close(0)
            ctrl.close(0)


def _frame(item: object) -> bytes:
    return item if isinstance(item, bytes) else encode(item)


def session_step(msg: object, next_rseq: int = 1) -> list | None:
    """The session part of a script: logon, logout and heartbeats; None for anything else."""
    if isinstance(msg, Logon):
        return [logon_ack(next_rseq, msg.heartbeat_ms)]
    if isinstance(msg, Logout):
        return [LoggedOut(reason="logout")]
    if isinstance(msg, Heartbeat):
        return []
    return None
