"""The sans-IO half of the client library: everything but the socket.

``Session`` holds ids, request building, answer matching, the rseq reorder
buffer (``Sequencer``), recovery and heartbeat timers. It reads frames and
the time it is given and hands back frames to send, so the synchronous
``Client`` (client.py) and the asyncio ``AsyncClient`` (aclient.py) share it
line for line, and the tests drive it without sockets. See client.py for
the behaviour a user sees.
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeAlias

from .codec import decode_report, decode_request, encode
from .errors import DecodeFailed, ZexError
from .messages import (
    Ack,
    Book,
    Cancel,
    Cancelled,
    Expired,
    Fill,
    Heartbeat,
    KillMode,
    KillSwitch,
    KillSwitchSet,
    LoggedOut,
    Logon,
    LogonAck,
    Logout,
    NewOrder,
    Orders,
    OrdType,
    Positions,
    Query,
    Recover,
    Recovered,
    Reject,
    Replace,
    Replaced,
    Request,
    Side,
    Stp,
    Tif,
)
from .reasons import Reason

HEARTBEAT_LIVENESS = 3  # intervals of silence before the peer counts as dead (SPEC.md 9)
RECOVER_LIMIT = 1_000  # reports per recover request; the gateway allows 1..10000

ExecReport: TypeAlias = Ack | Reject | Fill | Cancelled | Expired | Replaced | KillSwitchSet
EXEC_REPORTS = (Ack, Reject, Fill, Cancelled, Expired, Replaced, KillSwitchSet)
Keyed: TypeAlias = NewOrder | Cancel | Replace | Query | KillSwitch  # requests answered by id
Key: TypeAlias = str | tuple  # a cl_ord_id or req_id; the tuples below name the session requests
LOGON_KEY: tuple = ("logon",)
LOGOUT_KEY: tuple = ("logout",)


# ------------------------------------------------------------------ errors


class ClientError(ZexError):
    """Base of the errors the client raises (under the protocol's one ZexError tree)."""


class NotLoggedOn(ClientError):
    """A request before ``logon()`` or after ``logout()``."""


class LogonRejected(ClientError):
    """The gateway refused the logon; ``reject`` is its answer (AUTH_FAILED, usually)."""

    def __init__(self, reject: Reject) -> None:
        super().__init__(f"logon refused: {reject.reason_name} ({reject.reason}): {reject.text}")
        self.reject = reject


class QueryRejected(ClientError):
    """A query was refused (unknown symbol, rate limit); ``reject`` is the gateway's answer."""

    def __init__(self, reject: Reject) -> None:
        super().__init__(
            f"query {reject.cl_ord_id} refused: {reject.reason_name} "
            f"({reject.reason}): {reject.text}"
        )
        self.reject = reject


class SessionLost(ClientError):
    """The gateway ended the session or went silent; ``reconnect()`` logs on again and resends."""

    def __init__(self, why: str, unanswered: int) -> None:
        super().__init__(
            f"session lost: {why}; call reconnect() to log on again, recover missed reports and "
            f"resend the {unanswered} unanswered request(s) with their original cl_ord_ids"
        )
        self.why = why


class GatewayTimeout(ClientError, TimeoutError):
    """No answer after every resend; ``request`` was sent ``sends`` times."""

    def __init__(self, request: Request, sends: int, timeout: float) -> None:
        kind = request.__struct_config__.tag
        ident: str | None = getattr(request, "cl_ord_id", None)
        if ident is not None:
            advice = (
                f"it stays pending: reconnect() resends it, or send it again with "
                f"cl_ord_id={ident!r} -- never under a new id, or it may execute twice"
            )
            what = f"{kind} cl_ord_id={ident!r}"
        else:
            advice = "it is safe to ask again; check the gateway if this persists"
            req_id = getattr(request, "req_id", "")
            what = f"{kind} req_id={req_id!r}" if req_id else str(kind)
        super().__init__(f"no answer to {what} after {sends} send(s), {timeout:g} s each; {advice}")
        self.request = request
        self.sends = sends


# ----------------------------------------------------------- pure helpers


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID_CHARS = frozenset(_B36 + _B36.upper() + "._-")


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


class IdGen:
    """Client order ids unique across runs: ``<run prefix>-<counter>``, at most 36 characters.

    The default prefix is the start time in ms (base 36, so ids sort by run)
    and 20 random bits, e.g. ``mi4k2x9a0f3z-17``: two clients started in the
    same millisecond still differ.
    """

    def __init__(self, prefix: str | None = None) -> None:
        if prefix is None:
            prefix = _b36(time.time_ns() // 1_000_000) + _b36(secrets.randbits(20)).rjust(4, "0")
        if not 1 <= len(prefix) <= 15 or not set(prefix) <= _ID_CHARS:
            raise ValueError(
                f"id_prefix must be 1..15 characters of [A-Za-z0-9._-], was {prefix!r}"
            )
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count}"


def decimal_str(value: str | int | Decimal, name: str) -> str:
    """A price or quantity as the wire's decimal string; floats are refused (they are inexact)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(
        f"{name} must be a decimal string like '101.25' (or an int or Decimal), "
        f"was {type(value).__name__} {value!r}"
    )


class Sequencer:
    """Put execution reports in ``rseq`` order: drop repeats, hold what follows a gap.

        >>> from types import SimpleNamespace as R
        >>> s = Sequencer(last=0)
        >>> [r.rseq for r in s.push(R(rseq=2))], s.gap
        ([], True)
        >>> [r.rseq for r in s.push(R(rseq=1))], s.last, s.gap
        ([1, 2], 2, False)

    ``high`` is the highest rseq known to exist (seen, or announced by a
    heartbeat, a logon_ack or a recovered); ``gap`` is true while
    ``last`` < ``high``, i.e. while something must be recovered.
    """

    def __init__(self, last: int = 0) -> None:
        self.last = last
        self.high = last
        self.held: dict[int, ExecReport] = {}
        self.duplicates = 0

    @property
    def gap(self) -> bool:
        return self.high > self.last

    def saw(self, rseq: int) -> None:
        """Note that report ``rseq`` exists (it may still have to be recovered)."""
        if rseq > self.high:
            self.high = rseq

    def push(self, report: ExecReport) -> list[ExecReport]:
        """Take one report with rseq > 0; return those now in order (maybe none)."""
        r = report.rseq
        if r <= self.last or r in self.held:
            self.duplicates += 1
            return []
        self.saw(r)
        if r != self.last + 1:
            self.held[r] = report
            return []
        out = [report]
        self.last = r
        held = self.held
        while held:
            nxt = held.pop(self.last + 1, None)
            if nxt is None:
                break
            out.append(nxt)
            self.last += 1
        return out

    def rewind(self, last: int) -> None:
        """Apply again from ``last + 1`` (to re-read reports already delivered)."""
        self.last = min(self.last, last)

    def restart(self, last: int) -> None:
        """Forget everything: a new sequence (a new trading day) starts after ``last``."""
        self.last = self.high = last
        self.held.clear()


@dataclass
class Pending:
    """A request sent and not yet answered."""

    key: Key
    msg: Request
    sends: int = 0
    waiting: bool = True  # someone waits for the answer; False: it goes to the stream only


# ------------------------------------------------------------ the session


class Session:
    """Everything a client does except I/O: give it frames and the time, take frames to send.

        s = Session("alice", "s3cret")
        s.logon()                          # queues a Logon
        for frame in s.outgoing(now): sock.send(frame)
        s.receive(frame, now)              # each frame from the gateway
        s.tick(now)                        # heartbeats, liveness, recover retries; -> next deadline
        s.answers.pop(key)                 # answers to waiting requests, by cl_ord_id / req_id
        s.take_reports()                   # the stream, in rseq order

    ``state``: "new" (never logged on), "logging_on", "open", "closed"
    (logged out) or "lost" (``lost_why`` says why).
    """

    def __init__(
        self,
        account: str,
        credential: str = "",
        *,
        heartbeat_ms: int = 1_000,
        last_rseq: int | None = None,
        recover_all: bool = False,
        id_prefix: str | None = None,
        recover_limit: int = RECOVER_LIMIT,
    ) -> None:
        if last_rseq is not None and last_rseq < 0:
            raise ValueError(f"last_rseq must be >= 0, was {last_rseq}")
        self.account = account
        self.credential = credential
        self.heartbeat_ms = heartbeat_ms
        self.recover_all = recover_all
        self.recover_limit = recover_limit
        self.ids = IdGen(id_prefix)
        self.seq: Sequencer | None = None if last_rseq is None else Sequencer(last_rseq)
        self.state = "new"
        self.lost_why = ""
        self.session_id = ""
        # The last logon_ack: the account's options and limits as the gateway states them
        # (operator, cancel_on_disconnect, rate, burst, max_order_qty, max_notional, collar_pct).
        self.logon_ack: LogonAck | None = None
        self.hb = heartbeat_ms / 1000.0
        self.pending: dict[Key, Pending] = {}
        self.answers: dict[Key, object] = {}
        self.ready: deque[ExecReport] = deque()
        self.bad_frames = 0
        self.recovered: Recovered | None = None  # the last one
        self.recovered_count = 0
        self._early: list[ExecReport] = []  # reports before the first logon_ack fixed the start
        self._out: list[Request] = []
        self._recover_at: float | None = None  # when the recover in flight was sent
        self._recover_hold = 0.0  # no automatic recover before this (the gateway had nothing)
        self.last_rx = self.last_tx = 0.0

    # ------------------------------------------------------------ queries

    @property
    def last_rseq(self) -> int | None:
        """The rseq of the last report released in order (None before the first logon)."""
        return None if self.seq is None else self.seq.last

    @property
    def unanswered(self) -> list[Request]:
        """Requests sent and not answered yet, oldest first (``reconnect`` resends these)."""
        return [p.msg for p in self.pending.values() if not isinstance(p.key, tuple)]

    def caught_up(self, token: int) -> bool:
        """True once a recover sent after ``token`` (``recovered_count``) answered, with no gap."""
        return self.recovered_count > token and self.settled()

    def recover_done(self, token: int) -> bool:
        """True once ``caught_up(token)`` or the session is not open: either ends a wait."""
        return self.caught_up(token) or self.state != "open"

    def settled(self) -> bool:
        """No recover in flight and no known gap: the stream holds every report up to ``high``."""
        return self._recover_at is None and self.seq is not None and not self.seq.gap

    def state_error(self) -> ClientError | None:
        """The error that says why requests cannot be sent now (None: they can)."""
        if self.state == "open":
            return None
        if self.state == "lost":
            return SessionLost(self.lost_why, len(self.unanswered))
        if self.state == "logging_on":
            return NotLoggedOn("logon has not been answered yet")
        return NotLoggedOn(
            "not logged on: call logon() first"
            if self.state == "new"
            else "logged out: call logon() or reconnect() to open a new session"
        )

    def check_open(self) -> None:
        err = self.state_error()
        if err is not None:
            raise err

    # ---------------------------------------------------- building requests

    def new_order(
        self,
        symbol: str,
        side: Side,
        qty: str | int | Decimal,
        price: str | int | Decimal | None = None,
        *,
        ord_type: OrdType | None = None,
        tif: Tif | None = None,
        post_only: bool = False,
        stp: Stp = "cancel_newest",
        cl_ord_id: str | None = None,
    ) -> NewOrder:
        """A NewOrder: limit if ``price`` is given, else market; tif gtc (limit) or ioc (market)."""
        if ord_type is None:
            ord_type = "market" if price is None else "limit"
        if tif is None:
            tif = "ioc" if ord_type == "market" else "gtc"
        return NewOrder(
            cl_ord_id=cl_ord_id or self.ids(),
            symbol=symbol,
            side=side,
            qty=decimal_str(qty, "qty"),
            price=None if price is None else decimal_str(price, "price"),
            ord_type=ord_type,
            tif=tif,
            post_only=post_only,
            stp=stp,
        )

    def cancel(
        self,
        symbol: str,
        order_id: int = 0,
        *,
        orig_cl_ord_id: str = "",
        cl_ord_id: str | None = None,
    ) -> Cancel:
        """A Cancel of the order named by ``order_id`` or (when 0) ``orig_cl_ord_id``."""
        if not order_id and not orig_cl_ord_id:
            raise ValueError("name the order to cancel: order_id or orig_cl_ord_id")
        return Cancel(
            cl_ord_id=cl_ord_id or self.ids(),
            symbol=symbol,
            order_id=order_id,
            orig_cl_ord_id=orig_cl_ord_id,
        )

    def replace(
        self,
        symbol: str,
        order_id: int,
        qty: str | int | Decimal,
        price: str | int | Decimal,
        *,
        orig_cl_ord_id: str = "",
        cl_ord_id: str | None = None,
    ) -> Replace:
        """A Replace to a new price and total quantity (filled included)."""
        if not order_id and not orig_cl_ord_id:
            raise ValueError("name the order to replace: order_id or orig_cl_ord_id")
        return Replace(
            cl_ord_id=cl_ord_id or self.ids(),
            symbol=symbol,
            order_id=order_id,
            orig_cl_ord_id=orig_cl_ord_id,
            qty=decimal_str(qty, "qty"),
            price=decimal_str(price, "price"),
        )

    def query(
        self, what: Literal["orders", "positions", "book"], symbol: str = "", depth: int = 10
    ) -> Query:
        return Query(req_id=self.ids(), what=what, symbol=symbol, depth=depth)

    def kill_switch(self, account: str, mode: KillMode, cl_ord_id: str | None = None) -> KillSwitch:
        return KillSwitch(cl_ord_id=cl_ord_id or self.ids(), account=account, mode=mode)

    # ------------------------------------------------------------ sending

    def start(self, msg: Keyed) -> Key:
        """Validate ``msg`` as the gateway will, queue it and wait for its answer under its key."""
        self.check_open()
        decode_request(encode(msg))  # fail fast here, naming the field, with the gateway's rules
        key = msg.req_id if isinstance(msg, Query) else msg.cl_ord_id
        old = self.pending.pop(key, None)  # the same id again: a resend by hand
        p = self.pending[key] = Pending(key, msg, sends=old.sends if old else 0)
        self._send(p)
        return key

    def resend(self, key: Key) -> None:
        """Send a pending request again, unchanged (same cl_ord_id)."""
        self._send(self.pending[key])

    def abandon(self, key: Key) -> None:
        """Nobody waits for ``key`` any more; an order request stays pending for ``reconnect``."""
        self.answers.pop(key, None)
        p = self.pending.get(key)
        if p is None:
            return
        if isinstance(key, tuple) or type(p.msg) is Query:
            del self.pending[key]
        else:
            p.waiting = False

    def logon(self) -> Key:
        if self.state == "open":
            raise ClientError(f"already logged on as {self.account} (session {self.session_id})")
        self.state, self.lost_why = "logging_on", ""
        msg = Logon(
            account=self.account, credential=self.credential, heartbeat_ms=self.heartbeat_ms
        )
        decode_request(encode(msg))
        self.pending[LOGON_KEY] = p = Pending(LOGON_KEY, msg)
        self._send(p)
        return LOGON_KEY

    def logout(self) -> Key:
        self.check_open()
        self.pending[LOGOUT_KEY] = p = Pending(LOGOUT_KEY, Logout())
        self._send(p)
        return LOGOUT_KEY

    def recover(self, now: float, from_rseq: int | None = None) -> int:
        """Ask for every report from ``from_rseq`` (default: the next one) up to the latest.

        ``from_rseq`` at or below the last applied rseq rewinds the stream:
        those reports are delivered again. Returns a token for ``caught_up``.
        """
        self.check_open()
        assert self.seq is not None
        if from_rseq is not None:
            if from_rseq < 1 or from_rseq > self.seq.last + 1:
                raise ValueError(
                    f"from_rseq must be in 1..{self.seq.last + 1} (the next rseq this "
                    f"client expects), was {from_rseq}"
                )
            self.seq.rewind(from_rseq - 1)
        token = self.recovered_count
        self._send_recover(now)
        return token

    def reset(self) -> None:
        """Forget the connection (not the stream or the pending requests): before a reconnect."""
        self.state = "new"
        self._out.clear()
        self._recover_at = None
        self._recover_hold = 0.0
        self.pending.pop(LOGON_KEY, None)
        self.pending.pop(LOGOUT_KEY, None)

    def outgoing(self, now: float) -> list[bytes]:
        """The frames to send now, in order."""
        if not self._out:
            return []
        frames = [encode(m) for m in self._out]
        self._out.clear()
        self.last_tx = now
        return frames

    def _send(self, p: Pending) -> None:
        p.sends += 1
        self._out.append(p.msg)

    def _send_recover(self, now: float) -> None:
        assert self.seq is not None
        self._out.append(Recover(from_rseq=self.seq.last + 1, limit=self.recover_limit))
        self._recover_at = now

    # ----------------------------------------------------------- receiving

    def receive(self, frame: bytes, now: float) -> None:
        """Take one frame from the gateway. Undecodable frames are counted and skipped."""
        try:
            msg = decode_report(frame)
        except DecodeFailed:
            self.bad_frames += 1
            return
        self.last_rx = now
        if isinstance(msg, Heartbeat):
            if self.seq is not None and msg.next_seq > 0:
                self.seq.saw(msg.next_seq - 1)
                self._maybe_recover(now)
        elif isinstance(msg, LogonAck):
            self._on_logon_ack(msg, now)
        elif isinstance(msg, LoggedOut):
            self._on_logged_out(msg)
        elif isinstance(msg, Recovered):
            self._on_recovered(msg, now)
        elif isinstance(msg, (Orders, Positions, Book)):
            self._answer(msg.req_id, msg)
        else:
            self._on_report(msg, now)

    def take_reports(self) -> list[ExecReport]:
        """The reports released in order since the last call."""
        out = list(self.ready)
        self.ready.clear()
        return out

    def tick(self, now: float) -> float:
        """Run the timers: heartbeat, liveness, recover retry. Returns when to call again."""
        if self.state != "open":
            return float("inf")
        hb = self.hb
        if now - self.last_rx >= HEARTBEAT_LIVENESS * hb:
            self.state = "lost"
            self.lost_why = (
                f"nothing from the gateway for {HEARTBEAT_LIVENESS} heartbeat intervals of {hb:g} s"
            )
            return float("inf")
        if self._recover_at is not None and now - self._recover_at >= HEARTBEAT_LIVENESS * hb:
            self._send_recover(now)  # the recover or its answer was lost: ask again
        else:
            self._maybe_recover(now)
        if not self._out and now - self.last_tx >= hb:
            assert self.seq is not None
            self._out.append(Heartbeat(next_seq=self.seq.last + 1))
        tx = now if self._out else self.last_tx  # the caller sends what is queued right away
        wake = min(tx + hb, self.last_rx + HEARTBEAT_LIVENESS * hb)
        if self._recover_at is not None:
            wake = min(wake, self._recover_at + HEARTBEAT_LIVENESS * hb)
        elif self.seq is not None and self.seq.gap:
            wake = min(wake, max(self._recover_hold, now))
        return wake

    # ---------------------------------------------------------- internals

    def _answer(self, key: Key, msg: object) -> None:
        p = self.pending.pop(key, None)
        if p is not None and p.waiting:
            self.answers[key] = msg

    def _match(self, msg: ExecReport) -> Key | None:
        """The pending request ``msg`` answers, if any.

        An answer carries its request's cl_ord_id (a query's reject, its
        req_id). The type must fit too: a fill, or an stp cancel, names the
        order's cl_ord_id, which is never a pending cancel's and must not
        answer a new_order whose ack was lost.
        """
        key = msg.cl_ord_id
        p = self.pending.get(key)
        if p is not None and (isinstance(msg, Reject) or type(p.msg) is _ANSWERS.get(type(msg))):
            return key
        if isinstance(msg, Reject) and msg.ref_type == "logon" and LOGON_KEY in self.pending:
            return LOGON_KEY
        return None

    def _on_report(self, msg: ExecReport, now: float) -> None:
        key = self._match(msg)
        if isinstance(msg, Reject):
            if msg.reason == Reason.NOT_LOGGED_ON and self.state == "open":
                # The gateway has no session for us (it restarted, or dropped us unseen). Not an
                # answer: the request did not count and is resent, same id, after reconnect.
                self.state = "lost"
                self.lost_why = f"the gateway does not know this session: {msg.text}"
                return
            if msg.ref_type == "recover":
                self._recover_at = None
                self._recover_hold = now + HEARTBEAT_LIVENESS * self.hb
            if key is LOGON_KEY:
                self.state = "new"
                self._answer(key, msg)
                return
        if key is not None:
            self._answer(key, msg)
        if msg.rseq == 0:
            self.ready.append(msg)
        elif self.seq is None:
            self._early.append(msg)
        else:
            self.ready.extend(self.seq.push(msg))
            self._maybe_recover(now)

    def _on_logon_ack(self, msg: LogonAck, now: float) -> None:
        self.session_id = msg.session_id
        self.logon_ack = msg
        self.hb = msg.heartbeat_ms / 1000.0
        first = LOGON_KEY in self.pending
        self.state = "open"
        top = msg.next_rseq - 1
        if self.seq is None:
            self.seq = Sequencer(0 if self.recover_all else top)
        elif top < self.seq.last:
            warnings.warn(
                f"the gateway's next_rseq {msg.next_rseq} is at or below the last rseq "
                f"{self.seq.last} this client applied: a new trading day or another "
                f"account's sequence; following the gateway from rseq {msg.next_rseq}",
                stacklevel=2,
            )
            self.seq.restart(top)
        self.seq.saw(top)
        early, self._early = self._early, []
        for r in early:
            self.ready.extend(self.seq.push(r))
        self._answer(LOGON_KEY, msg)
        if first:  # a reconnect: what was unanswered goes again, same ids
            for p in list(self.pending.values()):
                if not isinstance(p.key, tuple):
                    self._send(p)
        self._recover_at = None
        self._recover_hold = 0.0
        self._maybe_recover(now)

    def _on_logged_out(self, msg: LoggedOut) -> None:
        if msg.reason == "logout" and LOGOUT_KEY in self.pending:
            self.state = "closed"
            self._answer(LOGOUT_KEY, msg)
            return
        self.state = "lost"
        self.lost_why = f"the gateway logged this session out ({msg.reason})" + (
            f": {msg.text}" if msg.text else ""
        )

    def _on_recovered(self, msg: Recovered, now: float) -> None:
        self.recovered = msg
        self.recovered_count += 1
        self._recover_at = None
        if self.seq is None:
            return
        self.seq.saw(msg.last_rseq)
        if msg.to_rseq < msg.from_rseq and msg.from_rseq == self.seq.last + 1:
            # Nothing for exactly the gap we need: do not ask again in a tight loop.
            self._recover_hold = now + HEARTBEAT_LIVENESS * self.hb
        self._maybe_recover(now)

    def _maybe_recover(self, now: float) -> None:
        if (
            self.state == "open"
            and self._recover_at is None
            and self.seq is not None
            and self.seq.gap
            and now >= self._recover_hold
        ):
            self._send_recover(now)


_ANSWERS = {Ack: NewOrder, Cancelled: Cancel, Replaced: Replace, KillSwitchSet: KillSwitch}


# ------------------------------------------------------------- the client
