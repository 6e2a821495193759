"""A gateway worker: decode, validate, authorise, stateless risk, forward to the matcher.

Each worker thread owns three sockets and the sessions of the clients hashed
to it (so one client's requests are handled in order, by one thread):

    PULL    inproc from the front   [client, frame] or control [b"", kind, client]
    PUSH    inproc to the front     [b"R", client, frame]   a reply (a reject) for the client
                                    [b"S", client, account, heartbeat_ms, session_id]  logon accepted
                                    [b"X", client]          the client logged out
    DEALER  to the matcher          identity "<gateway>/<n>"; internal commands (protocol/internal.py)

With ``gateway.workers = 0`` there is no thread: the front owns one Worker
and calls ``handle`` itself (``Worker.inline``), its replies go straight to
the front's routing and its commands out of the front's DEALER. On CPython
that is the fastest arrangement (one GIL: a worker thread adds a hand-off
per request and no parallel work; bench/README.md).

A refused request gets a ``reject`` with seq 0 from here and never reaches
the matcher: it changed nothing and did not use up its cl_ord_id.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections import deque

import zmq

from zex.protocol import messages as m
from zex.protocol.codec import decode_request, encode, peek
from zex.protocol.errors import DecodeFailed, ProtocolError
from zex.protocol.internal import (
    BUY,
    CXL_DISCONNECT,
    FOK,
    GTC,
    IOC,
    KILL_BLOCK,
    KILL_OFF,
    KILL_REDUCE_ONLY,
    LIMIT,
    MARKET,
    Q_BOOK,
    Q_ORDERS,
    Q_POSITIONS,
    Q_REPORTS,
    SELL,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_NONE,
    CancelCmd,
    KillSwitchCmd,
    MassCancelCmd,
    NewOrderCmd,
    QueryCmd,
    ReplaceCmd,
)
from zex.protocol.internal import encoder as internal_encoder
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

from ..runtime.audit import AuditPush
from ..runtime.hotpath import NOBLOCK, send
from .risk import AccountRules, TokenBucket

log = logging.getLogger("zex.gateway")

TIFS = {"gtc": GTC, "ioc": IOC, "fok": FOK}
STPS = {"none": STP_NONE, "cancel_newest": STP_CANCEL_NEWEST, "cancel_oldest": STP_CANCEL_OLDEST,
        "cancel_both": STP_CANCEL_BOTH}
KILLS = {"off": KILL_OFF, "block": KILL_BLOCK, "reduce_only": KILL_REDUCE_ONLY}
QUERIES = {"orders": Q_ORDERS, "positions": Q_POSITIONS, "book": Q_BOOK}


class Session:
    __slots__ = ("rules", "bucket")

    def __init__(self, rules: AccountRules) -> None:
        self.rules = rules
        self.bucket = TokenBucket(rules.rate, rules.burst) if rules.rate > 0 else None


class Worker:
    """One worker thread's state and loop; the front starts it with ``run`` in a thread."""

    def __init__(self, index: int, name: str, ctx: zmq.Context, in_addr: str, out_addr: str,
                 matcher: str, instruments: tuple[Instrument, ...], rules: dict[str, AccountRules],
                 cash: Cash, refs: dict[str, int], audit: str = "", matcher_hwm: int = 100_000) -> None:
        self.index = index
        self.name = name
        self.ctx = ctx
        self.in_addr = in_addr
        self.out_addr = out_addr
        self.matcher = matcher
        self.inst = {i.symbol: i for i in instruments}
        self.rules = rules
        self.cash = cash
        self.refs = refs  # symbol -> last trade ticks; written by the front only (from the event stream)
        self.sessions: dict[bytes, Session] = {}
        self.rejected = 0
        self.forwarded = 0
        self.reject_counts: dict[int, int] = {}  # reason code -> rejects here (metrics)
        self.audit_endpoint = audit
        self.matcher_hwm = matcher_hwm
        self.audit: AuditPush | None = None  # made in run(): the socket belongs to this thread
        self.out = None  # replies to the front: frames -> None (the PUSH, or the front itself)
        self.out_is_front = False  # inline: this worker runs in the front thread and must never block
        self.dealer: zmq.Socket | None = None
        self.unsent: deque[bytes] = deque()  # inline: commands held back by a full queue (see send)

    @classmethod
    def inline(cls, name: str, ctx: zmq.Context, out, dealer: zmq.Socket, instruments: tuple[Instrument, ...],
               rules: dict[str, AccountRules], cash: Cash, refs: dict[str, int], audit: str = "",
               matcher_hwm: int = 100_000) -> Worker:
        """A worker with no thread of its own: the calling thread owns it and ``dealer``."""
        w = cls(0, name, ctx, "", "", "", instruments, rules, cash, refs, audit, matcher_hwm)
        w.out, w.dealer, w.out_is_front = out, dealer, True
        w.audit = AuditPush(ctx, audit, name)
        return w

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()

    def run(self, ready) -> None:
        ctx = self.ctx
        pull = ctx.socket(zmq.PULL)
        push = ctx.socket(zmq.PUSH)
        dealer = ctx.socket(zmq.DEALER)
        try:
            for s in (pull, push, dealer):
                s.linger = 0
            pull.connect(self.in_addr)
            push.connect(self.out_addr)
            dealer.identity = f"{self.name}/{self.index}".encode()
            dealer.sndhwm = self.matcher_hwm
            dealer.connect(self.matcher)
            self.out, self.dealer = push.send_multipart, dealer
            self.audit = AuditPush(ctx, self.audit_endpoint, self.name)
            ready()
            recv = pull.recv_multipart
            handle = self.handle
            while True:
                frames = recv()
                if frames[0]:
                    if len(frames) == 2:
                        handle(frames[0], frames[1])
                    else:
                        self.too_many_frames(frames[0], len(frames) - 1)
                elif frames[1] == b"STOP":
                    return
                elif frames[1] == b"DROP":
                    self.drop(frames[2], "heartbeat")
        except zmq.ContextTerminated:
            return
        finally:
            for s in (pull, push, dealer):
                s.close(0)
            self.close()

    # ------------------------------------------------------------ replies

    def reject(self, client: bytes, ref_type: str, cl_ord_id: str, reason: Reason, text: str) -> None:
        self.rejected += 1
        code = int(reason)
        self.reject_counts[code] = self.reject_counts.get(code, 0) + 1
        sess = self.sessions.get(client)
        self.audit.record("logon_failed" if ref_type == "logon" else "reject",
                          sess.rules.id if sess is not None else "", client, cl_ord_id, code, text)
        msg = m.Reject(cl_ord_id=cl_ord_id, ref_type=ref_type, reason=int(reason), reason_name=reason.name,
                       text=text)
        self.out([b"R", client, encode(msg)])

    def too_many_frames(self, client: bytes, n: int) -> None:
        """Several frames from one client: the spec allows exactly one."""
        self.reject(client, "", "", Reason.MALFORMED, f"a message is exactly one frame; got {n}")

    def send(self, cmd, kind: str = "") -> bool:
        """Forward a command to the matcher; False if it was refused for a full queue.

        A worker thread may wait for room in its queue; the front (``inline``) must not,
        or a matcher that is down would freeze heartbeats, reports and stop() with it. A
        request (``kind`` names it) that finds the queue full is refused with UNAVAILABLE;
        a cancel-on-disconnect (no ``kind``) is kept and retried on the front's tick.
        """
        raw = internal_encoder.encode(cmd)
        if self.out_is_front:
            try:
                send(self.dealer, raw, NOBLOCK)
            except zmq.Again:
                if not kind:
                    self.unsent.append(raw)
                    return True
                what = "req_id" if kind == "query" else "cl_ord_id"
                self.reject(cmd.client, kind, getattr(cmd, what, ""), Reason.UNAVAILABLE,
                            f"the queue to the matcher is full ({self.matcher_hwm} commands): the matcher is "
                            f"down or far behind; resend later with the same {what}")
                return False
        else:
            send(self.dealer, raw, 0)
        self.forwarded += 1
        return True

    def retry_unsent(self) -> None:
        """Send what an earlier full queue held back (cancel-on-disconnect), oldest first."""
        while self.unsent:
            try:
                send(self.dealer, self.unsent[0], NOBLOCK)
            except zmq.Again:
                return
            self.unsent.popleft()
            self.forwarded += 1

    # ----------------------------------------------------------- requests

    def handle(self, client: bytes, frame: bytes) -> None:
        try:
            msg = decode_request(frame)
        except DecodeFailed as exc:
            kind, ident = peek(frame)
            return self.reject(client, kind, ident, exc.reason, exc.text)
        t = type(msg)
        sess = self.sessions.get(client)
        if t is m.Logon:
            return self.logon(client, msg, sess)
        if sess is None:
            if t is m.Heartbeat:
                return None
            return self.reject(client, msg.__struct_config__.tag, _ident(msg), Reason.NOT_LOGGED_ON,
                               "log on first: send logon with your account and credential")
        if t is m.Heartbeat:
            return None
        if sess.bucket is not None and not sess.bucket.take(time.monotonic()):
            r = sess.rules
            return self.reject(client, msg.__struct_config__.tag, _ident(msg), Reason.RATE_LIMITED,
                               f"rate limit {r.rate:g}/s (burst {r.burst:g}) for account {r.id}; slow down")
        if t is m.NewOrder:
            return self.new_order(client, msg, sess.rules)
        if t is m.Cancel:
            return self.cancel(client, msg, sess.rules)
        if t is m.Replace:
            return self.replace(client, msg, sess.rules)
        if t is m.Query:
            if msg.symbol and msg.symbol not in self.inst:
                return self.reject(client, "query", msg.req_id, Reason.UNKNOWN_SYMBOL,
                                   f"symbol {msg.symbol!r} is not listed")
            if msg.what == "book" and not msg.symbol:
                return self.reject(client, "query", msg.req_id, Reason.MISSING_FIELD, "symbol is required for a book query")
            self.send(QueryCmd(self.name, client, sess.rules.id, QUERIES[msg.what], msg.req_id, msg.symbol,
                               0, msg.depth), "query")
            return None
        if t is m.Recover:
            self.send(QueryCmd(self.name, client, sess.rules.id, Q_REPORTS, "", "", msg.from_rseq, msg.limit), "recover")
            return None
        if t is m.KillSwitch:
            return self.kill_switch(client, msg, sess.rules)
        if t is m.Logout:
            self.drop(client, "logout")
            self.out([b"X", client])
        return None

    def logon(self, client: bytes, msg: m.Logon, sess: Session | None) -> None:
        rules = self.rules.get(msg.account)
        if sess is not None and sess.rules.id != msg.account:
            return self.reject(client, "logon", "", Reason.AUTH_FAILED,
                               f"this connection is logged on as {sess.rules.id}; log out first")
        if rules is None or not hmac.compare_digest(rules.credential.encode(), msg.credential.encode()):
            return self.reject(client, "logon", "", Reason.AUTH_FAILED, "the account or credential is wrong")
        if sess is None:
            self.sessions[client] = Session(rules)
        self.audit.record("logon", rules.id, client)
        self.out([b"S", client, msg.account.encode(), str(msg.heartbeat_ms).encode(),
                                  uuid.uuid4().hex[:16].encode()])
        # The answer (the account's last rseq) completes the logon at the front.
        if not self.send(QueryCmd(self.name, client, rules.id, Q_REPORTS, "", "", 1, 0), "logon"):
            self.sessions.pop(client, None)  # refused: the session it announced ends with it
            self.out([b"X", client])

    def drop(self, client: bytes, why: str) -> None:
        sess = self.sessions.pop(client, None)
        if sess is not None:
            self.audit.record("logout" if why == "logout" else "session_dropped", sess.rules.id, client,
                              text=why)
        if sess is not None and sess.rules.cancel_on_disconnect:
            self.send(MassCancelCmd(time.time_ns(), self.name, client, sess.rules.id, CXL_DISCONNECT))

    def _instrument(self, client: bytes, kind: str, msg) -> Instrument | None:
        inst = self.inst.get(msg.symbol)
        if inst is None:
            self.reject(client, kind, msg.cl_ord_id, Reason.UNKNOWN_SYMBOL,
                        f"symbol {msg.symbol!r} is not listed; listed: {', '.join(self.inst)}")
        return inst

    def new_order(self, client: bytes, msg: m.NewOrder, rules: AccountRules) -> None:
        inst = self._instrument(client, "new_order", msg)
        if inst is None:
            return None
        market = msg.ord_type == "market"
        tif = msg.tif or ("ioc" if market else "gtc")  # SPEC 4.4: a market order never rests
        problem = None
        if market:
            if msg.price is not None:
                problem = (Reason.INVALID_COMBINATION, "a market order takes no price; omit price or send null")
            elif tif == "gtc":
                problem = (Reason.INVALID_COMBINATION, "a market order needs tif ioc or fok (or none: ioc), was gtc")
            elif msg.post_only:
                problem = (Reason.INVALID_COMBINATION, "a market order cannot be post_only")
        elif msg.price is None:
            problem = (Reason.MISSING_FIELD, "price is required for a limit order")
        elif msg.post_only and tif != "gtc":
            problem = (Reason.INVALID_COMBINATION, f"post_only needs tif gtc, was {tif}")
        if problem is not None:
            return self.reject(client, "new_order", msg.cl_ord_id, *problem)
        try:
            lots = inst.qty_lots[msg.qty]
            ticks = 0 if market else inst.price_ticks[msg.price]
        except ProtocolError as exc:
            return self.reject(client, "new_order", msg.cl_ord_id, exc.reason, exc.text)
        side = BUY if msg.side == "buy" else SELL
        ref = self.refs.get(inst.symbol) or inst.ref_ticks
        if market:
            ticks = rules.protection(inst, side, ref)
        refusal = rules.check(inst, side, ticks, lots, ref, self.cash.mult[inst.symbol], market)
        if refusal is not None:
            return self.reject(client, "new_order", msg.cl_ord_id, *refusal)
        self.send(NewOrderCmd(time.time_ns(), self.name, client, rules.id, msg.cl_ord_id, inst.symbol, side,
                              MARKET if market else LIMIT, TIFS[tif], ticks, lots, msg.post_only,
                              STPS[msg.stp]), "new_order")
        return None

    def cancel(self, client: bytes, msg: m.Cancel, rules: AccountRules) -> None:
        if self._instrument(client, "cancel", msg) is None:
            return None
        if not msg.order_id and not msg.orig_cl_ord_id:
            return self.reject(client, "cancel", msg.cl_ord_id, Reason.MISSING_FIELD,
                               "name the order: order_id or orig_cl_ord_id is required")
        self.send(CancelCmd(time.time_ns(), self.name, client, rules.id, msg.cl_ord_id, msg.symbol,
                            msg.order_id, msg.orig_cl_ord_id), "cancel")
        return None

    def replace(self, client: bytes, msg: m.Replace, rules: AccountRules) -> None:
        inst = self._instrument(client, "replace", msg)
        if inst is None:
            return None
        if not msg.order_id and not msg.orig_cl_ord_id:
            return self.reject(client, "replace", msg.cl_ord_id, Reason.MISSING_FIELD,
                               "name the order: order_id or orig_cl_ord_id is required")
        try:
            lots = inst.qty_lots[msg.qty]
            ticks = inst.price_ticks[msg.price]
        except ProtocolError as exc:
            return self.reject(client, "replace", msg.cl_ord_id, exc.reason, exc.text)
        ref = self.refs.get(inst.symbol) or inst.ref_ticks
        # The side is the matcher's to know; both sides have the same stateless limits.
        refusal = rules.check(inst, BUY, ticks, lots, ref, self.cash.mult[inst.symbol], False)
        if refusal is not None:
            return self.reject(client, "replace", msg.cl_ord_id, *refusal)
        self.send(ReplaceCmd(time.time_ns(), self.name, client, rules.id, msg.cl_ord_id, inst.symbol, ticks, lots,
                             msg.order_id, msg.orig_cl_ord_id), "replace")
        return None

    def kill_switch(self, client: bytes, msg: m.KillSwitch, rules: AccountRules) -> None:
        if not rules.operator:
            return self.reject(client, "kill_switch", msg.cl_ord_id, Reason.NOT_AUTHORISED,
                               f"account {rules.id} is not an operator; kill_switch needs operator = true")
        if msg.account not in self.rules:
            return self.reject(client, "kill_switch", msg.cl_ord_id, Reason.INVALID_VALUE,
                               f"account: {msg.account!r} is not a configured account")
        self.audit.record("kill_switch", rules.id, client, msg.cl_ord_id, text=f"{msg.account} -> {msg.mode}")
        self.send(KillSwitchCmd(time.time_ns(), self.name, client, rules.id, msg.cl_ord_id, msg.account,
                                KILLS[msg.mode]), "kill_switch")
        return None


def _ident(msg) -> str:
    return getattr(msg, "cl_ord_id", None) or getattr(msg, "req_id", "") or ""
