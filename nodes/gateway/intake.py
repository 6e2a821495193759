"""Gateway intake without I/O: a client frame and the session state in, one decision out.

    intake = Intake("gw1", instruments, rules, cash, refs)
    result = intake.handle(client, frame)   # client: the ROUTER routing id, frame: its bytes
    # None          nothing to send (a heartbeat)
    # Refusal       answer the client with a reject (seq 0); nothing reaches the matcher
    # Opened        logon accepted: announce the session, send ``query`` to learn the account's rseq
    # Closed        logout: end the session, send ``cancel`` (cancel-on-disconnect) if there is one
    # a command     NewOrderCmd, CancelCmd, ReplaceCmd, KillSwitchCmd or QueryCmd: forward it

Decode, validate, authorise and the stateless risk checks (risk.py) happen
here and nowhere else; sockets, threads, clocks' owners and the audit trail
belong to the runners (worker.py), the way pyzmq keeps ``zmq/auth/base.py``
apart from its thread and asyncio authenticators. One Intake serves the
clients of one runner, so one client's requests are decided in order.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable
from typing import TypeAlias

from zex.protocol import messages as m
from zex.protocol.codec import decode_request, peek
from zex.protocol.errors import DecodeFailed, ProtocolError
from zex.protocol.internal import (
    BUY,
    CXL_DISCONNECT,
    KILL_CODES,
    LIMIT,
    MARKET,
    Q_REPORTS,
    QUERY_CODES,
    SIDE_CODES,
    STP_CODES,
    TIF_CODES,
    CancelCmd,
    KillSwitchCmd,
    MassCancelCmd,
    NewOrderCmd,
    QueryCmd,
    ReplaceCmd,
)
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

from .risk import AccountRules, TokenBucket


class Refusal:
    """Refuse a request: the runner sends a ``reject`` with seq 0 and audits it."""

    __slots__ = ("account", "cl_ord_id", "reason", "ref_type", "text")

    def __init__(
        self, ref_type: str, cl_ord_id: str, reason: Reason, text: str, account: str = ""
    ) -> None:
        self.ref_type = ref_type  # the request's type ("" if unreadable)
        self.cl_ord_id = cl_ord_id  # its cl_ord_id or req_id, as sent
        self.reason = reason
        self.text = text
        self.account = account  # the session's account, "" before logon

    def __repr__(self) -> str:
        return f"Refusal({self.ref_type!r}, {self.cl_ord_id!r}, {self.reason.name}, {self.text!r})"


class Opened:
    """A logon accepted: the session is (still) open; ``query`` asks the matcher for the account's rseq.

    ``first``: the logon opened the session (False: it repeats a live one's). A runner
    that cannot forward ``query`` refuses the logon: a first one's session goes with it
    (it has no orders yet), a repeated one's stays as it was.
    """

    __slots__ = ("account", "first", "heartbeat_ms", "query", "session_id")

    def __init__(
        self, account: str, heartbeat_ms: int, session_id: str, query: QueryCmd, first: bool
    ) -> None:
        self.account = account
        self.heartbeat_ms = heartbeat_ms
        self.session_id = session_id
        self.query = query
        self.first = first


class Closed:
    """A session ended here; ``cancel`` is its cancel-on-disconnect (None: the account has none)."""

    __slots__ = ("account", "cancel", "why")

    def __init__(self, account: str, why: str, cancel: MassCancelCmd | None) -> None:
        self.account = account
        self.why = why  # "logout" or "heartbeat"
        self.cancel = cancel


class Session:
    """What intake keeps of one logged-on client: its account's rules and its rate bucket."""

    __slots__ = ("bucket", "rules")

    def __init__(self, rules: AccountRules, now: float) -> None:
        self.rules = rules
        self.bucket = TokenBucket(rules.rate, rules.burst, now) if rules.rate > 0 else None


# What Intake.handle decides for one frame (module docstring).
Decision: TypeAlias = (
    Refusal
    | Opened
    | Closed
    | NewOrderCmd
    | CancelCmd
    | ReplaceCmd
    | KillSwitchCmd
    | QueryCmd
    | None
)


class Intake:
    """Decide each client request of the sessions it holds; no sockets, no threads.

    ``refs`` (symbol -> last trade ticks, the collar's reference) is read, never
    written: the front keeps it from the event stream. ``clock`` (seconds,
    monotonic: the rate buckets) and ``wall_ns`` (the commands' ts) can be
    replaced by a test.
    """

    def __init__(
        self,
        name: str,
        instruments: tuple[Instrument, ...],
        rules: dict[str, AccountRules],
        cash: Cash,
        refs: dict[str, int],
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = name
        self.inst = {i.symbol: i for i in instruments}
        self.rules = rules
        self.mult = cash.mult
        self.refs = refs
        self.clock = clock
        self.wall_ns = wall_ns
        self.sessions: dict[bytes, Session] = {}

    # ------------------------------------------------------------ requests

    def handle(self, client: bytes, frame: bytes) -> Decision:
        """The decision for one frame from ``client``: None, Refusal, Opened, Closed or a command."""
        try:
            msg = decode_request(frame)
        except DecodeFailed as exc:
            kind, ident = peek(frame)
            return self._refuse(client, kind, ident, exc.reason, exc.text)
        # type(msg) is X rather than a local t: the type checker narrows msg on it, and it costs
        # as little (the call is specialised; measured 19 ns against 18 for t is X).
        sess = self.sessions.get(client)
        if type(msg) is m.Logon:
            return self.logon(client, msg, sess)
        if type(msg) is m.Heartbeat:
            return None
        if sess is None:
            return Refusal(
                _kind(msg),
                _ident(msg),
                Reason.NOT_LOGGED_ON,
                "log on first: send logon with your account and credential",
            )
        rules = sess.rules
        if sess.bucket is not None and not sess.bucket.take(self.clock()):
            return _too_fast(_kind(msg), _ident(msg), rules)
        if type(msg) is m.NewOrder:
            return self.new_order(client, msg, rules)
        if type(msg) is m.Cancel:
            return self.cancel(client, msg, rules)
        if type(msg) is m.Replace:
            return self.replace(client, msg, rules)
        if type(msg) is m.Query:
            if msg.symbol and msg.symbol not in self.inst:
                return Refusal(
                    "query",
                    msg.req_id,
                    Reason.UNKNOWN_SYMBOL,
                    f"symbol {msg.symbol!r} is not listed",
                    rules.id,
                )
            if msg.what == "book" and not msg.symbol:
                return Refusal(
                    "query",
                    msg.req_id,
                    Reason.MISSING_FIELD,
                    "symbol is required for a book query",
                    rules.id,
                )
            return QueryCmd(
                self.name,
                client,
                rules.id,
                QUERY_CODES[msg.what],
                msg.req_id,
                msg.symbol,
                0,
                msg.depth,
            )
        if type(msg) is m.Recover:
            return QueryCmd(
                self.name, client, rules.id, Q_REPORTS, "", "", msg.from_rseq, msg.limit
            )
        if type(msg) is m.KillSwitch:
            return self.kill_switch(client, msg, rules)
        if type(msg) is m.Logout:
            return self.drop(client, "logout")
        return None  # a request type this intake does not act on (none today)

    def too_many_frames(self, client: bytes, n: int) -> Refusal:
        """Several frames in one message from ``client``: the spec allows exactly one."""
        return self._refuse(
            client, "", "", Reason.MALFORMED, f"a message is exactly one frame; got {n}"
        )

    def logon(self, client: bytes, msg: m.Logon, sess: Session | None) -> Opened | Refusal:
        # A repeat on a live session takes a token: each asks the matcher and is audited. A
        # first logon has no session (no bucket) yet.
        if sess is not None and sess.bucket is not None and not sess.bucket.take(self.clock()):
            return _too_fast("logon", "", sess.rules)
        rules = self.rules.get(msg.account)
        if sess is not None and sess.rules.id != msg.account:
            return Refusal(
                "logon",
                "",
                Reason.AUTH_FAILED,
                f"this connection is logged on as {sess.rules.id}; log out first",
                sess.rules.id,
            )
        if rules is None or not hmac.compare_digest(
            rules.credential.encode(), msg.credential.encode()
        ):
            return Refusal(
                "logon",
                "",
                Reason.AUTH_FAILED,
                "the account or credential is wrong",
                sess.rules.id if sess is not None else "",
            )
        if sess is None:
            self.sessions[client] = Session(rules, self.clock())
        # The answer (the account's last rseq) completes the logon at the front.
        return Opened(
            rules.id,
            msg.heartbeat_ms,
            uuid.uuid4().hex[:16],
            QueryCmd(self.name, client, rules.id, Q_REPORTS, "", "", 1, 0),
            sess is None,
        )

    def drop(self, client: bytes, why: str) -> Closed | None:
        """End ``client``'s session (logout, heartbeat loss); None if it had none."""
        sess = self.sessions.pop(client, None)
        if sess is None:
            return None
        rules = sess.rules
        cancel = (
            MassCancelCmd(self.wall_ns(), self.name, client, rules.id, CXL_DISCONNECT)
            if rules.cancel_on_disconnect
            else None
        )
        return Closed(rules.id, why, cancel)

    def new_order(
        self, client: bytes, msg: m.NewOrder, rules: AccountRules
    ) -> NewOrderCmd | Refusal:
        inst = self.inst.get(msg.symbol)
        if inst is None:
            return self._unlisted("new_order", msg, rules)
        market = msg.ord_type == "market"
        tif = msg.tif or ("ioc" if market else "gtc")  # SPEC 4.4: a market order never rests
        problem = None
        if market:
            if msg.price is not None:
                problem = (
                    Reason.INVALID_COMBINATION,
                    "a market order takes no price; omit price or send null",
                )
            elif tif == "gtc":
                problem = (
                    Reason.INVALID_COMBINATION,
                    "a market order needs tif ioc or fok (or none: ioc), was gtc",
                )
            elif msg.post_only:
                problem = (Reason.INVALID_COMBINATION, "a market order cannot be post_only")
        elif msg.price is None:
            problem = (Reason.MISSING_FIELD, "price is required for a limit order")
        elif msg.post_only and tif != "gtc":
            problem = (Reason.INVALID_COMBINATION, f"post_only needs tif gtc, was {tif}")
        if problem is not None:
            return Refusal("new_order", msg.cl_ord_id, problem[0], problem[1], rules.id)
        try:
            lots = inst.qty_lots[msg.qty]
            ticks = 0 if market else inst.price_ticks[msg.price]
        except ProtocolError as exc:
            return Refusal("new_order", msg.cl_ord_id, exc.reason, exc.text, rules.id)
        side = SIDE_CODES[msg.side]
        ref = self.refs.get(inst.symbol) or inst.ref_ticks
        if market:
            ticks = rules.protection(inst, side, ref)
        refusal = rules.check(inst, side, ticks, lots, ref, self.mult[inst.symbol], market)
        if refusal is not None:
            return Refusal("new_order", msg.cl_ord_id, refusal[0], refusal[1], rules.id)
        return NewOrderCmd(
            self.wall_ns(),
            self.name,
            client,
            rules.id,
            msg.cl_ord_id,
            inst.symbol,
            side,
            MARKET if market else LIMIT,
            TIF_CODES[tif],
            ticks,
            lots,
            msg.post_only,
            STP_CODES[msg.stp],
        )

    def cancel(self, client: bytes, msg: m.Cancel, rules: AccountRules) -> CancelCmd | Refusal:
        if msg.symbol not in self.inst:
            return self._unlisted("cancel", msg, rules)
        if not msg.order_id and not msg.orig_cl_ord_id:
            return Refusal(
                "cancel",
                msg.cl_ord_id,
                Reason.MISSING_FIELD,
                "name the order: order_id or orig_cl_ord_id is required",
                rules.id,
            )
        return CancelCmd(
            self.wall_ns(),
            self.name,
            client,
            rules.id,
            msg.cl_ord_id,
            msg.symbol,
            msg.order_id,
            msg.orig_cl_ord_id,
        )

    def replace(self, client: bytes, msg: m.Replace, rules: AccountRules) -> ReplaceCmd | Refusal:
        inst = self.inst.get(msg.symbol)
        if inst is None:
            return self._unlisted("replace", msg, rules)
        if not msg.order_id and not msg.orig_cl_ord_id:
            return Refusal(
                "replace",
                msg.cl_ord_id,
                Reason.MISSING_FIELD,
                "name the order: order_id or orig_cl_ord_id is required",
                rules.id,
            )
        try:
            lots = inst.qty_lots[msg.qty]
            ticks = inst.price_ticks[msg.price]
        except ProtocolError as exc:
            return Refusal("replace", msg.cl_ord_id, exc.reason, exc.text, rules.id)
        ref = self.refs.get(inst.symbol) or inst.ref_ticks
        # The side is the matcher's to know; both sides have the same stateless limits.
        refusal = rules.check(inst, BUY, ticks, lots, ref, self.mult[inst.symbol], False)
        if refusal is not None:
            return Refusal("replace", msg.cl_ord_id, refusal[0], refusal[1], rules.id)
        return ReplaceCmd(
            self.wall_ns(),
            self.name,
            client,
            rules.id,
            msg.cl_ord_id,
            inst.symbol,
            ticks,
            lots,
            msg.order_id,
            msg.orig_cl_ord_id,
        )

    def kill_switch(
        self, client: bytes, msg: m.KillSwitch, rules: AccountRules
    ) -> KillSwitchCmd | Refusal:
        if not rules.operator:
            return Refusal(
                "kill_switch",
                msg.cl_ord_id,
                Reason.NOT_AUTHORISED,
                f"account {rules.id} is not an operator; kill_switch needs operator = true",
                rules.id,
            )
        if msg.account not in self.rules:
            return Refusal(
                "kill_switch",
                msg.cl_ord_id,
                Reason.INVALID_VALUE,
                f"account: {msg.account!r} is not a configured account",
                rules.id,
            )
        return KillSwitchCmd(
            self.wall_ns(),
            self.name,
            client,
            rules.id,
            msg.cl_ord_id,
            msg.account,
            KILL_CODES[msg.mode],
        )

    # ------------------------------------------------------------- helpers

    def _refuse(self, client: bytes, kind: str, ident: str, reason: Reason, text: str) -> Refusal:
        sess = self.sessions.get(client)
        return Refusal(kind, ident, reason, text, sess.rules.id if sess is not None else "")

    def _unlisted(
        self, kind: str, msg: m.NewOrder | m.Cancel | m.Replace, rules: AccountRules
    ) -> Refusal:
        return Refusal(
            kind,
            msg.cl_ord_id,
            Reason.UNKNOWN_SYMBOL,
            f"symbol {msg.symbol!r} is not listed; listed: {', '.join(self.inst)}",
            rules.id,
        )


def _too_fast(kind: str, ident: str, rules: AccountRules) -> Refusal:
    return Refusal(
        kind,
        ident,
        Reason.RATE_LIMITED,
        f"rate limit {rules.rate:g}/s (burst {rules.burst:g}) for account {rules.id}; slow down",
        rules.id,
    )


def _kind(msg: m.Message) -> str:
    return str(msg.__struct_config__.tag)  # a client message's tag is its type, a str


def _ident(msg: m.Message) -> str:
    return getattr(msg, "cl_ord_id", None) or getattr(msg, "req_id", "") or ""
