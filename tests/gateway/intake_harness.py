"""Drive the gateway's intake and the runners' reply path with no sockets: frames in, replies out."""

from __future__ import annotations

import zmq

from zex.nodes.gateway.intake import Intake, Session
from zex.nodes.gateway.worker import Runner
from zex.nodes.runtime.audit import AuditPush
from zex.protocol import messages as m
from zex.protocol.codec import decode_report, encode


class Harness:
    def __init__(self, instruments, rules, cash, refs: dict[str, int] | None = None) -> None:
        self.replies: list[list[bytes]] = []
        self.intake = Intake("gw-test", instruments, rules, cash, refs if refs is not None else {})
        # audit "" makes no socket: the runner's reply path is all that runs
        self.runner = Runner(
            self.intake, self.replies.append, AuditPush(zmq.Context.instance(), "", "gw-test")
        )

    def close(self) -> None:
        self.runner.close()

    def log_on(self, client: bytes, account: str) -> None:
        self.intake.sessions[client] = Session(self.intake.rules[account], self.intake.clock())

    def reject_frame(self, client: bytes, frame: bytes) -> m.Reject:
        self.replies.clear()
        self.runner.handle(client, frame)
        assert len(self.replies) == 1 and self.replies[0][:2] == [b"R", client], self.replies
        msg = decode_report(self.replies[0][2])
        assert isinstance(msg, m.Reject), msg
        return msg

    def reject(self, client: bytes, msg: m.Message) -> m.Reject:
        return self.reject_frame(client, encode(msg))
