"""The three fuzz targets: each takes one fuzz input and checks what zex made of it.

    codec      protocol/codec.py and the market-data decoders: any bytes give a
               message or a DecodeFailed with a Reason; nothing else escapes
    intake     nodes/gateway/intake.py Intake.handle, logged-on sessions and the
               default config's instruments and accounts: it never raises, every
               Refusal has a Reason and a text, every command is within its
               instrument's and account's bounds
    snapshot   the marketdata node's snapshot service (MarketDataNode._snapshot,
               the narrowest function that turns a request frame into a reply;
               the ROUTER is a stand-in that keeps what is sent): one reply per
               request, and anything but a valid request for a listed symbol
               gets a snapshot_reject with a Reason and a text

A target raises AssertionError for a finding (or lets the unexpected
exception through); ``codes`` collects the distinct reject codes reached.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from zex.nodes.gateway.intake import Closed, Intake, Opened, Refusal, Session
from zex.nodes.gateway.risk import AccountRules
from zex.nodes.marketdata.node import MarketDataNode
from zex.nodes.runtime.config import AccountConfig, Config
from zex.protocol import marketdata as md
from zex.protocol import messages as m
from zex.protocol.codec import MAX_FRAME, classify, decode_report, decode_request, encode, peek
from zex.protocol.errors import DecodeFailed
from zex.protocol.internal import (
    BUY,
    LIMIT,
    MARKET,
    SELL,
    CancelCmd,
    KillSwitchCmd,
    NewOrderCmd,
    QueryCmd,
    ReplaceCmd,
)
from zex.protocol.numbers import Cash
from zex.protocol.reasons import Reason

from . import seeds, shapes

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class Target:
    """Frames from fuzz bytes (shapes.py) over this target's seeds; ``one`` checks one input."""

    name = ""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.maps = seeds.maps(frames)
        self.names = seeds.field_names(frames)
        self.codes: set[int] = set()
        self.inputs = 0
        self.known: Counter[str] = Counter()  # known findings hit (each has an xfail test)

    def corpus(self) -> list[bytes]:
        """Seed inputs: each valid frame as is (mode 0) and as a map to edit (mode 2)."""
        out = [b"\x00" + f for f in self.frames]
        out += [bytes([2, i, 0]) for i in range(len(self.maps))]
        return out

    def frame(self, data: bytes) -> bytes:
        return shapes.frame(data, self.frames, self.maps, self.names)

    def one(self, data: bytes) -> None:
        raise NotImplementedError

    def _reject(self, reason: object, text: object, where: str) -> None:
        assert isinstance(reason, Reason), f"{where}: reason {reason!r} is not a Reason"
        assert isinstance(text, str) and text, f"{where}: empty text for {reason!r}"
        self.codes.add(int(reason))


class CodecTarget(Target):
    name = "codec"

    def __init__(self) -> None:
        super().__init__(seeds.client_frames() + seeds.md_frames())

    def one(self, data: bytes) -> None:
        self.inputs += 1
        frame = self.frame(data)
        try:
            req = decode_request(frame)
        except DecodeFailed as exc:
            self._reject(exc.reason, exc.text, "decode_request")
        else:
            # what decoded re-encodes to a frame that decodes to the same message
            assert decode_request(encode(req)) == req, f"request round trip: {req!r}"
        try:
            rep = decode_report(frame)
        except DecodeFailed as exc:
            self._reject(exc.reason, exc.text, "decode_report")
        else:
            assert decode_report(encode(rep)) == rep, f"report round trip: {rep!r}"
        kind, ident = peek(frame)
        assert isinstance(kind, str) and isinstance(ident, str), (kind, ident)
        for dec in (md.feed_decoder, md.snapshot_request_decoder, md.snapshot_reply_decoder):
            try:
                dec.decode(frame)
            except _DECODE_ERRORS as exc:
                err = classify(frame, exc)  # how the node words it: must itself not fail
                assert isinstance(err, DecodeFailed), err
                self._reject(err.reason, err.text, "md classify")


def _intake() -> tuple[Intake, Config]:
    # The default accounts, and one whose rate limit the fuzz's pace passes: alice's 500/s
    # with a 500 burst would take thousands of her requests in a row, which starve her other
    # paths (the first runs reached RATE_LIMITED that way, and not MAX_NOTIONAL).
    cfg = Config(accounts=(*Config().accounts, AccountConfig("flood", "flood", rate=50, burst=2)))
    cash = Cash(list(cfg.instruments))
    rules = {a.id: AccountRules.build(a, cfg.instruments, cash) for a in cfg.accounts}
    clock = [0.0]

    def tick() -> float:  # 1 ms a reading: one a decoded request of a logged-on client
        clock[0] += 0.001
        return clock[0]

    intake = Intake("gw-fuzz", cfg.instruments, rules, cash, {}, clock=tick, wall_ns=lambda: 1)
    return intake, cfg


# routing id -> the account its session is logged on as ("": none)
CLIENTS = {b"alice": "alice", b"ops": "ops", b"taker": "taker", b"flood": "flood", b"nobody": ""}


class IntakeTarget(Target):
    name = "intake"

    def __init__(self) -> None:
        super().__init__(seeds.intake_frames())
        self.intake, cfg = _intake()
        self.clients = tuple(CLIENTS)
        now = self.intake.clock()
        self.held = {c: Session(self.intake.rules[a], now) for c, a in CLIENTS.items() if a}

    def corpus(self) -> list[bytes]:
        return [bytes([i]) + s for s in super().corpus() for i in range(len(self.clients))]

    def one(self, data: bytes) -> None:
        self.inputs += 1
        if not data:
            return
        client = self.clients[data[0] % len(self.clients)]
        intake = self.intake
        # every input starts from the same sessions: logged on as named, or not at all
        account = CLIENTS[client]
        sess = intake.sessions.get(client)
        if account and (sess is None or sess.rules.id != account):
            # the same Session each time, so flood's rate bucket stays drained across logouts
            intake.sessions[client] = self.held[client]
        elif not account:
            intake.sessions.pop(client, None)
        frame = self.frame(data[1:])
        out = intake.handle(client, frame)
        self.check(client, account, frame, out)

    def check(self, client: bytes, account: str, frame: bytes, out: object) -> None:
        intake = self.intake
        if isinstance(out, Refusal):
            self._reject(out.reason, out.text, "intake")
            assert out.account == account, f"refusal names {out.account!r}, session {account!r}"
            return
        if out is None or isinstance(out, Closed):
            return
        if isinstance(out, Opened):
            logon = decode_request(frame)
            assert isinstance(logon, m.Logon), f"opened a session on {logon!r}"
            rules = intake.rules[logon.account]
            assert rules.credential == logon.credential, f"logon without the credential: {logon!r}"
            return
        assert account, f"{type(out).__name__} from a client not logged on: {out!r}"
        rules = intake.rules[account]
        assert out.account == account and out.client == client, out  # type: ignore[attr-defined]
        if isinstance(out, (NewOrderCmd, ReplaceCmd)):
            inst = intake.inst[out.symbol]
            assert 0 < out.qty <= inst.max_lots, f"qty {out.qty} lots outside (0, {inst.max_lots}]"
            limit = rules.max_lots.get(out.symbol)
            assert limit is None or out.qty <= limit, f"qty {out.qty} above max_order_qty {limit}"
            market = isinstance(out, NewOrderCmd) and out.ord_type == MARKET
            lo, hi = inst.min_ticks, inst.max_ticks
            if market:
                assert 0 <= out.price <= hi, f"protection price {out.price} outside [0, {hi}]"
            else:
                assert lo <= out.price <= hi, f"price {out.price} ticks outside [{lo}, {hi}]"
                if rules.collar_bp is not None:
                    clo, chi = rules.band(inst, inst.ref_ticks)
                    assert clo <= out.price <= chi, f"price {out.price} outside collar"
            if rules.max_notional is not None:
                notional = out.price * out.qty * intake.mult[out.symbol]
                assert notional <= rules.max_notional, f"notional {notional} above the limit"
            if isinstance(out, NewOrderCmd):
                assert out.side in (BUY, SELL) and out.ord_type in (LIMIT, MARKET), out
        elif isinstance(out, CancelCmd):
            assert out.symbol in intake.inst, out
            assert out.order_id or out.orig_cl_ord_id, f"cancel names no order: {out!r}"
        elif isinstance(out, KillSwitchCmd):
            assert rules.operator, f"kill switch from non-operator {account}"
            assert out.target in intake.rules, out
        else:
            assert isinstance(out, QueryCmd), f"unexpected decision {out!r}"
            assert not out.symbol or out.symbol in intake.inst, out


class _Router:
    """Stands in for the ROUTER: keeps what the node sends."""

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        self.sent.append(frames)


def snapshot_node() -> MarketDataNode:
    """A MarketDataNode that is never started (no sockets), live, with a few orders resting."""
    cfg = Config()
    cfg.marketdata.metrics_bind = ""
    cfg.marketdata.l3 = False  # channel l3 refused: one more reject path reached
    node = MarketDataNode(cfg)
    node.live = True
    oid = 0
    for inst in cfg.instruments:
        book = node.view.books[inst.symbol]
        u = book._open(1, 0)
        for k in range(3):
            for side, price in ((BUY, inst.ref_ticks - k - 1), (SELL, inst.ref_ticks + k + 1)):
                oid += 1
                book._rest(u, oid, side, price, k + 1, False)
        book._close()
    return node


class SnapshotTarget(Target):
    name = "snapshot"

    def __init__(self) -> None:
        super().__init__(seeds.snapshot_frames())
        self.node = snapshot_node()
        self.router = _Router()

    def one(self, data: bytes) -> None:
        self.inputs += 1
        frame = self.frame(data)
        router = self.router
        router.sent.clear()
        self.node._snapshot(router, b"peer", frame)  # type: ignore[arg-type]
        assert len(router.sent) == 1, f"{len(router.sent)} replies to one request"
        peer, raw = router.sent[0]
        assert peer == b"peer", peer
        # Every reply must be one a subscriber can read (tests/fuzz/test_fuzz_findings.py
        # keeps the over-long req_id this once failed on).
        reply = md.snapshot_reply_decoder.decode(raw)
        try:
            req = md.snapshot_request_decoder.decode(frame)
        except _DECODE_ERRORS:
            req = None
        good = (
            req is not None
            and len(frame) <= MAX_FRAME
            and peek(frame)[0] == "snapshot_request"
            and req.v == md.VERSION
            and req.symbol in self.node.inst
            and req.channel == "l2"
        )
        if isinstance(reply, md.SnapshotReject):
            assert not good, f"a valid request was refused: {req!r} -> {reply!r}"
            self._reject(Reason._value2member_map_.get(reply.code), reply.text, "snapshot")
        else:
            assert good, f"answered a request that is not valid: {frame!r} -> {reply!r}"
            assert req is not None and reply.symbol == req.symbol and reply.req_id == req.req_id


TARGETS = {t.name: t for t in (CodecTarget, IntakeTarget, SnapshotTarget)}
