"""Drive the gateway's request handling with no sockets: frames in, replies out."""

from __future__ import annotations

import zmq

from zex.nodes.gateway.worker import Session, Worker
from zex.protocol import messages as m
from zex.protocol.codec import decode_report, encode


class Harness:
    def __init__(self, instruments, rules, cash) -> None:
        self.replies: list[list[bytes]] = []
        self.worker = Worker.inline("gw-test", zmq.Context.instance(), self.replies.append, None, instruments,
                                    rules, cash, {}, audit="")

    def close(self) -> None:
        self.worker.close()

    def log_on(self, client: bytes, account: str) -> None:
        self.worker.sessions[client] = Session(self.worker.rules[account])

    def reject_frame(self, client: bytes, frame: bytes) -> m.Reject:
        self.replies.clear()
        self.worker.handle(client, frame)
        assert len(self.replies) == 1 and self.replies[0][:2] == [b"R", client], self.replies
        msg = decode_report(self.replies[0][2])
        assert isinstance(msg, m.Reject), msg
        return msg

    def reject(self, client: bytes, msg: m.Message) -> m.Reject:
        return self.reject_frame(client, encode(msg))
