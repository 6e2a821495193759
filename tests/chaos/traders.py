"""The order flow: client threads that keep trading through crashes, and what each of them saw.

Each ``Trader`` owns one account and one ``Client`` (its socket lives in the
trader's thread). It quotes resting limits around the mid, crosses with IOC
orders, cancels and replaces its own orders, paced at ``rate`` requests/s.
Every request has a client order id of the trader's own making, and is sent
until it is answered: on a timeout or a lost session the trader logs on
again and sends the same request, same ``cl_ord_id`` -- the idempotency the
design promises (DESIGN.md invariant 5). It records every answer and every
report it received: acks (cl_ord_id -> order_id), fills (by symbol and trade
id), cancels and replaces, so the checks can hold the journal to them.

``FeedWatcher`` keeps a ``BookSubscriber`` on the public feed for the whole
run (through marketdata restarts); at the end its books must equal the
journal's.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal

from zex.protocol import messages as m
from zex.protocol.client import Client, ClientError, GatewayTimeout
from zex.protocol.mdclient import BookSubscriber

from .cluster import MID_TICKS, SYMBOLS

REQUEST_DEADLINE_S = 90.0  # one request unanswered this long through restarts: the run fails
CLIENT_TIMEOUT_S = 1.0  # per attempt; a resend follows, then a reconnect
HEARTBEAT_MS = 500  # a dead gateway is noticed after 3 intervals of silence


class Stuck(Exception):
    """A request got no answer within REQUEST_DEADLINE_S, through every resend and reconnect."""


class AckLog:
    """When each fresh ack (not a resent one) arrived, its seq and the gateway it came through.

    The driver reads it to see when a restarted node serves again: the first
    ack after the restart with a seq above what existed before it.
    """

    def __init__(self, keep: int = 50_000) -> None:
        self._log: deque[tuple[float, str, int]] = deque(maxlen=keep)  # append is thread-safe

    def saw(self, gateway: str, seq: int, now: float) -> None:
        self._log.append((now, gateway, seq))

    def first(self, since: float, above: int, gateway: str | None = None) -> float:
        """The time of the first fresh ack at or after ``since`` with seq above ``above``; 0.0: none yet."""
        earliest = 0.0
        # newest first: stop at the first one before ``since``
        for t, gw, seq in reversed(list(self._log)):
            if t < since:
                break
            if seq > above and (gateway is None or gw == gateway):
                earliest = t
        return earliest


def norm_levels(levels) -> list[tuple[Decimal, Decimal, int]]:
    """(price, qty, orders) from any book form (strings of any canonical spelling), comparable."""
    return [(Decimal(str(p)), Decimal(str(q)), int(n)) for p, q, n in levels]


@dataclass
class Seen:
    """Everything one trader was told."""

    acks: dict[str, int] = field(default_factory=dict)  # new_order cl_ord_id -> order_id
    conflicts: list[str] = field(default_factory=list)  # one cl_ord_id acked with two order ids
    rejects: dict[str, m.Reject] = field(default_factory=dict)
    cancels: dict[str, int] = field(default_factory=dict)  # cancel cl_ord_id -> order_id
    replaces: dict[str, int] = field(default_factory=dict)  # replace cl_ord_id -> order_id
    fills: dict[tuple[str, int], m.Fill] = field(default_factory=dict)  # (symbol, trade_id) -> fill
    fill_repeats: int = 0  # the same fill delivered twice in the stream (must stay 0)


class Trader(threading.Thread):
    def __init__(
        self,
        account: str,
        gateway: str,
        endpoint: str,
        inst: dict,
        *,
        seed: int,
        rate: float,
        stop: threading.Event,
        acks: AckLog,
        failed: threading.Event,
    ) -> None:
        super().__init__(name=f"chaos-trader-{account}", daemon=True)
        self.account = account
        self.gateway = gateway
        self.endpoint = endpoint
        self.inst = inst
        self.rng = random.Random(seed)
        self.rate = rate
        self.stop_flag = stop
        self.ack_log = acks
        self.failed = failed
        self.seen = Seen()
        self.sent_orders = 0  # distinct new_order cl_ord_ids
        self.sent_other = 0  # cancels and replaces
        # new orders answered with a reject (by the gateway or the matcher)
        self.rejected_orders = 0
        self.rejected_other = 0  # cancels and replaces refused (the order had filled, say)
        self.resends = 0  # requests sent again under the same cl_ord_id
        self.reconnects = 0
        self.logons = 0
        self.error: BaseException | None = None
        self.final_orders: list | None = None  # the account's open orders, asked at the end ...
        self.final_orders_seq = 0  # ... as of this matcher seq
        self.client: Client | None = None
        self._n = 0
        self._live: dict[str, list[int]] = defaultdict(list)  # symbol -> own resting order ids
        # The end, in steps the driver takes everyone through together:
        self.done = threading.Event()  # flow stopped, this trader's last request answered
        self.final = threading.Event()  # driver: every trader is done, read the final state
        self.state_read = threading.Event()  # missed reports recovered, open orders asked
        # driver: the gateways are stopped; close without logging out (a logout would journal a
        # cancel-on-disconnect after the final views were taken), or: the run failed, give up now
        self.release = threading.Event()
        self.finished = threading.Event()

    # ---------------------------------------------------------------- run

    def run(self) -> None:
        try:
            self.client = Client(
                self.endpoint,
                self.account,
                self.account,
                heartbeat_ms=HEARTBEAT_MS,
                timeout=CLIENT_TIMEOUT_S,
                retries=1,
                recover_all=True,
            )
            self._reconnect(time.monotonic() + REQUEST_DEADLINE_S, first=True)
            period = 1.0 / self.rate
            next_at = time.monotonic()
            while not self.stop_flag.is_set():
                self._step()
                next_at += period
                now = time.monotonic()
                if next_at < now - 1.0:
                    next_at = now  # fell far behind (a restart): no burst to make up for it
                self._collect(0.0)
                # pace, reading reports meanwhile (poll returns when some arrive)
                while now < next_at:
                    self._collect(next_at - now)
                    now = time.monotonic()
            self.done.set()
            while not self.final.wait(0.2):  # keep the session alive until everyone is done
                self._collect(0.0)
            self._final_state()
            self.state_read.set()
            while not self.release.is_set():  # heartbeats, so no session is dropped (and cancelled)
                try:
                    self.client.poll(0.2)
                except ClientError:
                    break  # the gateway stopped: the run is over
        except BaseException as exc:
            if not self.release.is_set():
                self.error = exc
                self.failed.set()
        finally:
            if self.client is not None:
                self.client._close_socket()  # no logout: see ``release``
            self.done.set()
            self.state_read.set()
            self.finished.set()

    def _step(self) -> None:
        rng, sym = self.rng, self.rng.choice(SYMBOLS)
        mid, live = MID_TICKS[sym], self._live[sym]
        r = rng.random()
        if r < 0.20 and live:
            oid = live.pop(rng.randrange(len(live)))
            self._request("cancel", sym, order_id=oid)
        elif r < 0.30 and live:
            oid = rng.choice(live)
            side_off = rng.randint(1, 8)
            self._request(
                "replace",
                sym,
                order_id=oid,
                qty=rng.randint(1, 30),
                ticks=mid + rng.choice((-side_off, side_off)),
            )
        elif r < 0.55:
            side = rng.choice(("buy", "sell"))
            self._request(
                "new",
                sym,
                side=side,
                qty=rng.randint(1, 25),
                ticks=mid + (6 if side == "buy" else -6),
                tif="ioc",
            )
        else:
            side = rng.choice(("buy", "sell"))
            off = rng.randint(1, 8)
            self._request(
                "new",
                sym,
                side=side,
                qty=rng.randint(1, 20),
                ticks=mid - off if side == "buy" else mid + off,
                tif="gtc",
            )

    # ---------------------------------------------------------- requests

    def _request(
        self,
        kind: str,
        sym: str,
        *,
        side: str = "",
        qty: int = 0,
        ticks: int = 0,
        tif: str = "gtc",
        order_id: int = 0,
    ) -> None:
        """Send one request until it is answered, logging on again as needed; record the answer."""
        self._n += 1
        cl = f"{self.account}-{self._n}"
        c = self.client
        price = self.inst[sym].ticks_to_price(ticks) if ticks else ""
        if kind == "new":
            self.sent_orders += 1

            def send():
                return c.place(sym, side, qty, price, tif=tif, cl_ord_id=cl)
        elif kind == "cancel":
            self.sent_other += 1

            def send():
                return c.cancel(sym, order_id, cl_ord_id=cl)
        else:
            self.sent_other += 1

            def send():
                return c.replace(sym, order_id, qty, price, cl_ord_id=cl)

        ans = self._until_answered(send, cl)
        self._record(ans)
        if isinstance(ans, m.Reject):
            if kind == "new":
                self.rejected_orders += 1
            else:
                self.rejected_other += 1
        if isinstance(ans, m.Ack) and tif == "gtc" and kind == "new":
            self._live[sym].append(ans.order_id)

    def _until_answered(self, send, what: str):
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        timeouts = 0
        attempt = 0
        while True:
            if self.release.is_set():
                raise Stuck(f"{self.account}: {what}: the run was given up")
            if attempt:
                self.resends += 1
            attempt += 1
            try:
                return send()
            except GatewayTimeout:
                timeouts += 1
                # The session may still be good (the matcher was restarting): resend on it once,
                # then log on again in case the gateway lost us.
                if timeouts >= 2 or self.client.session.state != "open":
                    self._reconnect(deadline)
                    timeouts = 0
            except ClientError:  # SessionLost, NotLoggedOn: the gateway restarted or dropped us
                self._reconnect(deadline)
            if time.monotonic() > deadline:
                raise Stuck(f"{self.account}: {what} unanswered after {REQUEST_DEADLINE_S} s")

    def _reconnect(self, deadline: float, first: bool = False) -> None:
        while True:
            try:
                if first:
                    self.client.logon()
                else:
                    self.reconnects += 1
                    self.client.reconnect()
                self.logons += 1
                return
            except ClientError:
                first = False
                if self.release.is_set():
                    raise Stuck(f"{self.account}: the run was given up") from None
                if time.monotonic() > deadline:
                    raise Stuck(
                        f"{self.account}: could not log on to {self.gateway} for "
                        f"{REQUEST_DEADLINE_S} s"
                    ) from None

    # ----------------------------------------------------------- reports

    def _collect(self, timeout: float) -> None:
        """Read reports for up to ``timeout`` s; a lost session is re-opened (its reports recovered)."""
        try:
            for r in self.client.poll(timeout):
                self._record(r)
        except ClientError:
            self._reconnect(time.monotonic() + REQUEST_DEADLINE_S)

    def _record(self, r) -> None:
        s = self.seen
        if isinstance(r, m.Ack):
            old = s.acks.setdefault(r.cl_ord_id, r.order_id)
            if old != r.order_id:
                s.conflicts.append(
                    f"{self.account} {r.cl_ord_id}: acked as order {old} and as {r.order_id}"
                )
            if not r.resent:
                self.ack_log.saw(self.gateway, r.seq, time.monotonic())
        elif isinstance(r, m.Fill):
            key = (r.symbol, r.trade_id)
            if key in s.fills and r.rseq:
                s.fill_repeats += 1
            s.fills[key] = r
            if r.leaves == "0":
                self._forget(r.symbol, r.order_id)
        elif isinstance(r, m.Cancelled):
            if r.cl_ord_id != r.orig_cl_ord_id:  # the answer to a cancel request (not stp/kill)
                s.cancels[r.cl_ord_id] = r.order_id
            self._forget(r.symbol, r.order_id)
        elif isinstance(r, m.Replaced):
            s.replaces[r.cl_ord_id] = r.order_id
        elif isinstance(r, m.Expired):
            self._forget(r.symbol, r.order_id)
        elif isinstance(r, m.Reject):
            s.rejects[r.cl_ord_id] = r

    def _forget(self, symbol: str, order_id: int) -> None:
        live = self._live.get(symbol)
        if live and order_id in live:
            live.remove(order_id)

    def _final_state(self) -> None:
        """Every report of the account (recover), then its open orders, as the gateway says."""
        self._until_answered(self.client.recover, "final recover")
        self._collect(0.0)
        ans = self._until_answered(self.client.orders, "orders query")
        self.final_orders, self.final_orders_seq = ans.orders, ans.seq


class FeedWatcher(threading.Thread):
    """A ``BookSubscriber`` that follows the public feed through every restart of the marketdata node.

    The driver sets ``expect`` ({symbol: (bids, asks)} as ``norm_levels``) at
    the end; the watcher then polls until its books equal it (``matched``) or
    the deadline passes.
    """

    def __init__(self, feed: str, snapshot: str, stop: threading.Event) -> None:
        super().__init__(name="chaos-feed-watcher", daemon=True)
        self.feed, self.snapshot = feed, snapshot
        self.stop_flag = stop
        self.expect: dict | None = None
        self.expect_set = threading.Event()
        self.deadline_s = 30.0
        self.matched: bool | None = None
        self.last_books: dict = {}
        self.counters: dict[str, int] = {}
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def _books(self, md: BookSubscriber) -> dict:
        return {
            s: (norm_levels(md.book(s).levels("buy")), norm_levels(md.book(s).levels("sell")))
            for s in SYMBOLS
        }

    def run(self) -> None:
        try:
            with BookSubscriber(self.feed, self.snapshot, SYMBOLS, timeout=2.0) as md:
                while not self.expect_set.is_set():
                    md.poll(0.05)
                if self.expect is None:  # the run was given up
                    return
                deadline = time.monotonic() + self.deadline_s
                want = self.expect

                def same() -> bool:
                    return all(md.synced(s) for s in SYMBOLS) and self._books(md) == want

                try:
                    self.matched = md.run_until(same, max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    self.matched = False
                self.last_books = self._books(md)
                self.counters = {
                    k: getattr(md, k)
                    for k in ("gaps", "resyncs", "timeouts", "snapshot_requests", "bad_frames")
                }
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished.set()
