"""Locust users that trade on zex through the real client library, and one that reads its feed.

    make run                                            # the exchange, in another terminal
    make load USERS=10 DURATION=60s PROFILE=steady      # headless; results in loadtest/results/
    .venv/bin/locust -f loadtest/locustfile.py          # or the web UI (http://127.0.0.1:8089)

``OrderUser`` logs on to the gateway (a DEALER, zex.protocol.client.Client)
as one of ``--zex-accounts`` and sends a mix of resting limit orders near the
mid, cancels, replaces and marketable IOC orders (loadtest/flow.py). Every
answer is checked: an ack, cancelled or replaced is a success, a reject a
failure, except the races a real client must expect, which are counted under
their own names ("cancel: raced a fill", "replace: raced a fill") and only
when the fill that explains them has arrived. ``MarketDataUser`` (one,
``fixed_count``) keeps the books with zex.protocol.mdclient.BookSubscriber
and reports updates, sequence gaps (``md_gap``, a failure) and resyncs.

Locust 2.x monkey-patches the process with gevent when it is imported, and
runs every user as a greenlet of one thread: the sockets here are
``zmq.green`` sockets (and a green poller), so a user waiting for its answer
lets the others run. With plain pyzmq sockets each wait would block the whole
hub and the users would send one request at a time.

Latency: each request's time goes to locust (whole-millisecond percentiles)
and to an HDR histogram here, printed in microseconds when the test stops and
written to ``--zex-out``/latency_us.json. Endpoints, accounts and symbols are
``--zex-*`` options (or ZEX_LOAD_* variables, see ``--help``); the profile is
ZEX_LOAD_PROFILE (loadtest/profiles.py), read when locust imports this file.
Beside it: common.py (the green context, settings, reporting), mduser.py
(MarketDataUser), flow.py (the order flow), latency.py, summary.py.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `loadtest.*`, from any cwd

from locust import User, events, task
from locust.runners import WorkerRunner
from locust.stats import StatsError

from loadtest import common, profiles
from loadtest.common import GREEN, ID_MARK, MD_TOTALS, MD_USERS, Settings, fire, rejected, short
from loadtest.flow import OrderFlow
from loadtest.mduser import MarketDataUser  # noqa: F401 - locust finds the users here
from zex.nodes.runtime import config as zconfig
from zex.protocol import messages as m
from zex.protocol.client import (
    Client,
    ClientError,
    GatewayTimeout,
    IdGen,
    LogonRejected,
    SessionLost,
)
from zex.protocol.reasons import Reason

log = logging.getLogger("zex.load")

BOOK_EVERY = 0.5  # s: how often a user asks for the book to re-read the mid
POSITIONS_EVERY = 5.0  # s: and for the account's position (the order flow leans against it)
_user_numbers = itertools.count()


# ------------------------------------------------------------- options


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    def opt(name, env, help, **kw):
        parser.add_argument(name, env_var=env, help=f"{help} (env {env})", **kw)

    opt(
        "--zex-config",
        "ZEX_LOAD_CONFIG",
        "zex TOML file: endpoints and instruments from it",
        default="",
    )
    opt(
        "--zex-gateway",
        "ZEX_LOAD_GATEWAY",
        "gateway endpoint (default: config, -H, tcp://127.0.0.1:7100)",
        default="",
    )
    opt(
        "--zex-feed", "ZEX_LOAD_FEED", "market-data feed (default tcp://127.0.0.1:7104)", default=""
    )
    opt(
        "--zex-snapshots",
        "ZEX_LOAD_SNAPSHOTS",
        "snapshot service (default tcp://127.0.0.1:7105)",
        default="",
    )
    opt(
        "--zex-accounts",
        "ZEX_LOAD_ACCOUNTS",
        "accounts the order users log on as, in turn: "
        "id or id:credential, comma separated (demo credential = the id)",
        default="alice,bob",
    )
    opt("--zex-symbols", "ZEX_LOAD_SYMBOLS", "symbols to trade, in turn per user", default="XYZ")
    opt(
        "--zex-max-open",
        "ZEX_LOAD_MAX_OPEN",
        "open orders per user at most (0: the profile's)",
        type=int,
        default=0,
    )
    opt(
        "--zex-timeout",
        "ZEX_LOAD_TIMEOUT",
        "seconds to wait for an answer",
        type=float,
        default=5.0,
    )
    opt("--zex-out", "ZEX_LOAD_OUT", "directory for latency_us.json", default="")


def _connectable(endpoint: str) -> str:
    """A bind endpoint as a client connects to it (a wildcard host is this host)."""
    for wild in ("tcp://0.0.0.0:", "tcp://*:"):
        if endpoint.startswith(wild):
            return "tcp://127.0.0.1:" + endpoint[len(wild) :]
    return endpoint


def _settings(opts, host: str | None) -> Settings:
    cfg = zconfig.load(opts.zex_config or None)
    from_file = bool(opts.zex_config)
    accounts = []
    for item in filter(None, (a.strip() for a in opts.zex_accounts.split(","))):
        acct, _, cred = item.partition(":")
        accounts.append((acct, cred or acct))
    if not accounts:
        raise SystemExit("--zex-accounts names no account")
    symbols = [s.strip() for s in opts.zex_symbols.split(",") if s.strip()]
    instruments = {}
    for s in symbols:
        inst = cfg.instrument(s)
        if inst is None:
            raise SystemExit(
                f"--zex-symbols: {s!r} is not an instrument of the config "
                f"({', '.join(i.symbol for i in cfg.instruments)})"
            )
        instruments[s] = inst
    return Settings(
        gateway=opts.zex_gateway or host or _connectable(cfg.gateway.bind),
        feed=opts.zex_feed
        or (_connectable(cfg.marketdata.feed_bind) if from_file else "tcp://127.0.0.1:7104"),
        snapshots=opts.zex_snapshots
        or (_connectable(cfg.marketdata.snapshot_bind) if from_file else "tcp://127.0.0.1:7105"),
        accounts=accounts,
        symbols=symbols,
        instruments=instruments,
        max_open=opts.zex_max_open or PROFILE.max_open,
        timeout=opts.zex_timeout,
        out=Path(opts.zex_out) if opts.zex_out else None,
    )


@events.init.add_listener
def _init(environment, **_) -> None:
    s = common.SETTINGS = _settings(environment.parsed_options, environment.host)
    log.info(
        "zex load: profile %s, gateway %s, feed %s, accounts %s",
        PROFILE.name,
        s.gateway,
        s.feed,
        ",".join(a for a, _ in s.accounts),
    )
    if not isinstance(environment.runner, WorkerRunner):
        _sweep(s)


def _sweep(s: Settings) -> None:
    """Log on as every account (fail fast, clearly) and cancel orders an earlier run left open."""
    for acct, cred in s.accounts:
        c = Client(s.gateway, acct, cred, context=GREEN, timeout=2.0, retries=0)
        try:
            c.logon()
            stale = [o for o in c.orders().orders if o.cl_ord_id.startswith(ID_MARK)]
            for o in stale:
                c.cancel(o.symbol, o.order_id)
            if stale:
                log.info(
                    "cancelled %d order(s) of %s left open by an earlier load test",
                    len(stale),
                    acct,
                )
        except LogonRejected as exc:
            raise SystemExit(
                f"zex load: account {acct!r} cannot log on to {s.gateway}: {exc}; "
                f"name accounts with --zex-accounts / ZEX_LOAD_ACCOUNTS"
            ) from None
        except GatewayTimeout:
            raise SystemExit(
                f"zex load: no zex exchange answers at {s.gateway}: start it with "
                f"`make run` in another terminal (or point --zex-gateway / "
                f"ZEX_LOAD_GATEWAY at one)"
            ) from None
        except ClientError as exc:
            raise SystemExit(
                f"zex load: start-up as {acct!r} at {s.gateway} failed: {exc}"
            ) from None
        finally:
            c.close()


def _interval(user) -> float:
    """The open profile's interval per order user: ZEX_LOAD_RATE shared by all of them."""
    opts = user.environment.parsed_options
    order_users = max(1, int(opts.num_users or 1) - (MD_USERS if MD_USERS > 0 else 0))
    return order_users / profiles.open_rate()


PROFILE = profiles.select(os.environ.get("ZEX_LOAD_PROFILE", "steady"), _interval)
if PROFILE.shape is not None:
    Shape = PROFILE.shape  # locust runs the one shape class it finds in this module


# ------------------------------------------------------------- reporting


@events.test_start.add_listener
def _test_start(**_) -> None:
    common.LATENCY.reset()
    MD_TOTALS.clear()


@events.test_stop.add_listener
def _test_stop(environment, **_) -> None:
    s, lat = common.SETTINGS, common.LATENCY
    if not lat.hists:
        return
    print(
        f"\nzex load latency in µs (profile {PROFILE.name}; this process; locust's own "
        f"percentiles are whole ms)\n{lat.table()}",
        flush=True,
    )
    if MD_TOTALS:
        print(
            "market data: " + ", ".join(f"{k} {v}" for k, v in sorted(MD_TOTALS.items())),
            flush=True,
        )
    if s is not None and s.out is not None:
        failures = {
            f"{e.name}: {StatsError.parse_error(e.error)}": e.occurrences
            for e in environment.runner.stats.errors.values()
        }
        # --processes / --worker: every worker has its own histograms and its own file
        worker = isinstance(environment.runner, WorkerRunner)
        name = f"latency_us-{os.getpid()}.json" if worker else "latency_us.json"
        lat.write(
            s.out / name,
            {
                "profile": PROFILE.name,
                "gateway": s.gateway,
                "accounts": [a for a, _ in s.accounts],
                "symbols": s.symbols,
                "market_data": dict(MD_TOTALS),
                "failures": failures,
            },
        )


# ----------------------------------------------------------------- users


class OrderUser(User):
    """One trading session: logon, then the order mix of loadtest/flow.py, every answer checked."""

    wait_time = PROFILE.wait_time

    def on_start(self) -> None:
        s = common.SETTINGS
        assert s is not None, "the init hook sets SETTINGS"
        n = next(_user_numbers)
        self.account, cred = s.accounts[n % len(s.accounts)]
        self.symbol = s.symbols[n % len(s.symbols)]
        self.flow = OrderFlow(s.instruments[self.symbol], random.Random(), s.max_open)
        self.client = Client(
            s.gateway,
            self.account,
            cred,
            context=GREEN,
            timeout=s.timeout,
            retries=1,
            id_prefix=ID_MARK + IdGen().prefix,
        )
        self.next_book = self.next_positions = 0.0
        self.lost = True  # until the logon is answered; a failed one is retried by reconnect()
        t0 = time.perf_counter()
        try:
            ack = self.client.logon()
        except ClientError as exc:
            fire(self.environment, "logon", time.perf_counter() - t0, exc=short(exc))
            return
        fire(self.environment, "logon", time.perf_counter() - t0, ack)
        self.lost = False
        self.refresh()

    def on_stop(self) -> None:
        """Cancel what this user left open (not reported: it is not part of the load)."""
        client = getattr(self, "client", None)
        if client is None:
            return
        try:
            if not self.lost:
                for oid in list(self.flow.open):
                    client.cancel(self.symbol, oid, timeout=0.5)
        except Exception as exc:  # the next run's start-up sweep cancels what is left
            log.warning("%s: cleanup stopped: %s", self.account, exc)
        finally:
            try:
                client.close()
            except Exception:
                pass

    @task
    def trade(self) -> None:
        if self.lost:
            self.reconnect()
            return
        due = getattr(self, "due", None) if PROFILE.open_loop else None
        self.drain()
        action = self.flow.next_action()
        if action == "new_order":
            self.new_order(due)
        elif action == "cancel":
            self.cancel(due)
        elif action == "replace":
            self.replace(due)
        else:
            self.ioc(due)
        self.refresh()

    # ------------------------------------------------------- the requests

    def call(self, name: str, fn, *args, due: float | None = None, **kw):
        """Run one client call; on an error report it and return None."""
        t0 = time.perf_counter()
        try:
            ans = fn(*args, **kw)
        except ClientError as exc:
            end = time.perf_counter()
            self.lost = self.lost or isinstance(exc, SessionLost)
            fire(self.environment, name, end - t0, exc=short(exc), due=due, end=end)
            return None, 0.0, 0.0
        end = time.perf_counter()
        return ans, end - t0, end

    def new_order(self, due: float | None) -> None:
        side, qty, price = self.flow.resting_order()
        ans, took, end = self.call(
            "new_order", self.client.place, self.symbol, side, qty, price, due=due
        )
        if ans is None:
            return
        if isinstance(ans, m.Ack):
            self.flow.opened(ans)
            fire(self.environment, "new_order", took, ans, due=due, end=end)
        else:
            fire(self.environment, "new_order", took, ans, rejected(ans), due=due, end=end)

    def ioc(self, due: float | None) -> None:
        side, qty, price = self.flow.ioc_order()
        ans, took, end = self.call(
            "ioc", self.client.place, self.symbol, side, qty, price, tif="ioc", due=due
        )
        if ans is not None:
            exc = None if isinstance(ans, m.Ack) else rejected(ans)
            fire(self.environment, "ioc", took, ans, exc, due=due, end=end)

    def cancel(self, due: float | None) -> None:
        oid = self.flow.cancel_target()
        ans, took, end = self.call("cancel", self.client.cancel, self.symbol, oid, due=due)
        if ans is None:
            return
        if isinstance(ans, m.Cancelled):
            self.flow.gone(oid)
            fire(self.environment, "cancel", took, ans, due=due, end=end)
        elif ans.reason == Reason.UNKNOWN_ORDER and self.explained(oid):
            fire(self.environment, "cancel: raced a fill", took, ans, due=due, end=end)
        else:
            self.flow.gone(oid)
            fire(self.environment, "cancel", took, ans, rejected(ans), due=due, end=end)

    def replace(self, due: float | None) -> None:
        oid, qty, price = self.flow.replace_target()
        ans, took, end = self.call(
            "replace", self.client.replace, self.symbol, oid, qty, price, due=due
        )
        if ans is None:
            return
        if isinstance(ans, m.Replaced):
            self.flow.replaced(ans)
            fire(self.environment, "replace", took, ans, due=due, end=end)
            return
        lots = self.flow.lots_of(qty)
        if (ans.reason == Reason.UNKNOWN_ORDER and self.explained(oid)) or (
            ans.reason == Reason.INVALID_REPLACE and self.explained(oid, lots)
        ):
            fire(self.environment, "replace: raced a fill", took, ans, due=due, end=end)
        else:
            fire(self.environment, "replace", took, ans, rejected(ans), due=due, end=end)

    def explained(self, oid: int, lots: int | None = None) -> bool:
        """True if a report that arrived with the answer explains the reject.

        The matcher filled (or cancelled) the order before it saw our request,
        so its report precedes the reject on our connection: it is in the
        stream now. UNKNOWN_ORDER is explained when the order is gone, and
        INVALID_REPLACE (new qty at or below filled) when fills now reach ``lots``.
        """
        self.drain()
        o = self.flow.open.get(oid)
        if lots is None:
            return o is None
        return o is None or o.filled >= lots

    def refresh(self) -> None:
        """Re-read the mid and the position now and then (queries, reported like the rest)."""
        now = time.perf_counter()
        if now >= self.next_book:
            self.next_book = now + BOOK_EVERY
            book, took, _ = self.call("book", self.client.book, self.symbol, 1)
            if book is not None:
                self.flow.on_book(book)
                fire(self.environment, "book", took, book)
        if now >= self.next_positions:
            self.next_positions = now + POSITIONS_EVERY
            pos, took, _ = self.call("positions", self.client.positions)
            if pos is not None:
                self.flow.on_positions(pos)
                fire(self.environment, "positions", took, pos)

    def drain(self) -> None:
        """Take the reports waiting (the account's fills reach every session of it)."""
        try:
            for r in self.client.poll(0):
                self.flow.on_report(r)
        except SessionLost:
            self.lost = True

    def reconnect(self) -> None:
        t0 = time.perf_counter()
        try:
            ack = self.client.reconnect()
        except ClientError as exc:
            fire(self.environment, "reconnect", time.perf_counter() - t0, exc=short(exc))
            return
        self.lost = False
        fire(self.environment, "reconnect", time.perf_counter() - t0, ack)
