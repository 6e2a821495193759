"""The front's runner (workers = 0) against a real DEALER whose queue to the matcher fills up.

The matcher here is a ROUTER in the test: it reads only when the test says, so
the queue is full or has room exactly when a test wants it, and the front's
tick (``retry_unsent``) runs only when a test calls it.
"""

from __future__ import annotations

import uuid

import pytest
import zmq

from zex.nodes.gateway.intake import Intake
from zex.nodes.gateway.risk import AccountRules
from zex.nodes.gateway.worker import FrontRunner
from zex.nodes.runtime.audit import AuditPush
from zex.nodes.runtime.config import AccountConfig
from zex.protocol import internal as i
from zex.protocol import messages as m
from zex.protocol.codec import decode_report, encode
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

XYZ = Instrument("XYZ", tick="0.01", lot="1", max_price="1000", reference_price="10")
ACCOUNTS = [
    AccountConfig(id="alice", credential="pw", cancel_on_disconnect=True),
    AccountConfig(id="bob", credential="pw"),
]
ALICE, BOB = b"client-alice", b"client-bob"


class Front:
    """A FrontRunner, the replies it sends the front, and the matcher's end of its queue."""

    def __init__(self, ctx: zmq.Context) -> None:
        ep = f"inproc://front-runner-{uuid.uuid4().hex}"
        self.matcher = ctx.socket(zmq.ROUTER)
        self.matcher.linger = 0
        self.matcher.rcvhwm = 1
        self.matcher.bind(ep)
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.dealer.sndhwm = 4  # a small queue: a few orders fill it
        self.dealer.connect(ep)
        cash = Cash([XYZ])
        rules = {a.id: AccountRules.build(a, (XYZ,), cash) for a in ACCOUNTS}
        self.out: list[list[bytes]] = []
        self.runner = FrontRunner(
            Intake("gw1", (XYZ,), rules, cash, {}),
            self.out.append,
            self.dealer,
            AuditPush(ctx, "", "gw1"),
            matcher_hwm=4,
        )

    def close(self) -> None:
        self.runner.close()
        self.dealer.close(0)
        self.matcher.close(0)

    def send(self, client: bytes, msg: m.Message) -> list[list[bytes]]:
        """Hand ``msg`` to the runner as the front would; return what it sent the front."""
        n = len(self.out)
        self.runner.handle(client, encode(msg))
        return self.out[n:]

    def logon(self, client: bytes, account: str) -> list[list[bytes]]:
        return self.send(client, m.Logon(account=account, credential="pw"))

    def order(self, client: bytes, cl: str) -> list[list[bytes]]:
        return self.send(
            client, m.NewOrder(cl_ord_id=cl, symbol="XYZ", side="buy", qty="1", price="9.00")
        )

    def received(self) -> list:
        """Every command the matcher has been sent so far, in the order it got them."""
        got = []
        while self.matcher.poll(100):
            _gw, raw = self.matcher.recv_multipart()
            got.append(i.command_decoder.decode(raw))
        return got

    def fill(self) -> int:
        """Send bob's orders until the queue refuses one; return how many went."""
        for k in range(1000):
            out = self.order(BOB, f"fill-{k}")
            if out:
                assert rejects(out) == [Reason.UNAVAILABLE], out
                return k
        raise AssertionError("the queue to the matcher never filled")

    def drain(self) -> None:
        """Make room: the matcher reads all it was sent, and the DEALER learns of it."""
        self.received()
        assert self.dealer.poll(2000, zmq.POLLOUT), "the queue to the matcher has no room"


def rejects(out: list[list[bytes]]) -> list[Reason]:
    got = []
    for frames in out:
        if frames[0] == b"R":
            msg = decode_report(frames[2])
            assert isinstance(msg, m.Reject), msg
            got.append(Reason(msg.reason))
    return got


@pytest.fixture
def front():
    ctx = zmq.Context()
    f = Front(ctx)
    yield f
    f.close()
    ctx.term()


def test_a_held_cancel_on_disconnect_goes_before_what_its_client_sends_next(front):
    """A logout's cancel held back by a full queue is never overtaken: when the queue has room
    again, the client's next logon and order reach the matcher behind it, not ahead of it (the
    cancel matches the client's orders by connection, so it would cancel the new one)."""
    front.logon(BOB, "bob")
    front.logon(ALICE, "alice")
    front.drain()
    front.fill()
    assert front.send(ALICE, m.Logout()) == [[b"X", ALICE]]  # answered; its cancel is held
    assert len(front.runner.unsent) == 1
    front.drain()  # the matcher reads again; the front's tick has not come round yet
    assert [f[0] for f in front.logon(ALICE, "alice")] == [b"S"]
    assert front.order(ALICE, "a-1") == []  # forwarded
    front.runner.retry_unsent()  # the tick
    alices = [type(c) for c in front.received() if c.client == ALICE]
    assert alices == [i.MassCancelCmd, i.QueryCmd, i.NewOrderCmd]
    assert not front.runner.unsent


def test_a_logon_the_full_queue_cannot_take_is_refused_and_changes_nothing(front):
    """The front refuses a logon whose query to the matcher finds the queue full (UNAVAILABLE,
    as a worker's would wait): a repeat leaves the live session and its cancel-on-disconnect
    as they were; a first one leaves no session. Neither announces or ends one at the front."""
    front.logon(BOB, "bob")
    front.logon(ALICE, "alice")
    front.drain()
    front.fill()
    out = front.logon(ALICE, "alice")
    assert [f[0] for f in out] == [b"R"] and rejects(out) == [Reason.UNAVAILABLE]
    assert ALICE in front.runner.intake.sessions
    out = front.logon(b"client-new", "bob")
    assert [f[0] for f in out] == [b"R"] and rejects(out) == [Reason.UNAVAILABLE]
    assert b"client-new" not in front.runner.intake.sessions
    front.drain()
    assert front.send(ALICE, m.Logout()) == [[b"X", ALICE]]
    assert [(type(c), c.client) for c in front.received()] == [(i.MassCancelCmd, ALICE)]
