"""Configuration: one TOML file, every key with a default.

Defaults live here and only here; a file overrides them, then the
environment (ZEX_<SECTION>_<KEY>, e.g. ZEX_MATCHER_FSYNC=off), then the
command line. ``zex run`` with no file starts a working exchange on one host.

    [matcher]
    bind = "tcp://127.0.0.1:7101"        # gateways connect their DEALER here
    events_bind = "tcp://127.0.0.1:7102" # event stream (PUB)
    data_dir = "data/matcher"
    fsync = "batch"                      # always | batch | off (see journal.py)

    [marketdata]
    feed_bind = "tcp://127.0.0.1:7104"   # public feed (PUB), snapshots on snapshot_bind (ROUTER)
    l3 = false                           # also publish order-by-order updates

    [gateway]
    name = "gw1"                         # unique per gateway; the matcher routes reports by it
    bind = "tcp://127.0.0.1:7100"        # clients connect their DEALER here
    workers = 0                          # 0: the front thread validates (fastest on CPython)

    [[instruments]]
    symbol = "XYZ"
    tick = "0.01"
    lot = "1"
    reference_price = "100"              # centre of the price collar until the first trade

    [[accounts]]
    id = "alice"
    credential = "alice"
    cancel_on_disconnect = true
    max_order_qty = "1000"               # per order, in the symbol's units
    max_notional = "1000000"             # cash per order
    collar_pct = "10"                    # limit price within 10 % of the reference
    rate = 500                           # messages/s per session, burst below
    burst = 1000
    max_open_orders = 200                # 0: no limit
    max_position = "5000"                # per symbol, long or short; or a table {XYZ = "100"}
    credit = "1000000"                   # cash the account may owe, open buys included

Ports: the 71xx range, clear of locust's 5557/5558 and Prometheus' 9090.
A decimal limit given as "" means no limit.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from zex.protocol.numbers import Cash, Instrument

DEFAULT_INSTRUMENTS = (
    Instrument(
        "XYZ",
        tick="0.01",
        lot="1",
        min_price="0.01",
        max_price="10000",
        max_qty="100000",
        reference_price="100",
    ),
    Instrument(
        "ABC",
        tick="0.05",
        lot="1",
        min_price="0.05",
        max_price="10000",
        max_qty="100000",
        reference_price="50",
    ),
    Instrument(
        "BTC-USD",
        tick="0.5",
        lot="0.001",
        min_price="1",
        max_price="1000000",
        max_qty="100",
        reference_price="60000",
    ),
)


@dataclass
class AccountConfig:
    """One account: its credential, session options and risk limits."""

    id: str
    credential: str = ""
    operator: bool = False  # may send kill_switch
    cancel_on_disconnect: bool = False
    # stateless, checked by the gateway workers
    max_order_qty: str = ""
    max_notional: str = ""
    collar_pct: str = ""
    rate: float = 0.0  # messages/s per session; 0: no limit
    burst: int = 0  # token bucket depth; 0: one second's worth
    # stateful, checked by the matcher
    max_open_orders: int = 0
    max_position: str | dict[str, str] = ""
    credit: str = ""

    def matcher_limits(
        self, instruments, cash: Cash
    ) -> tuple[int | None, int | None, dict[str, int]]:
        """The stateful limits in engine units: (max_open_orders, credit, {symbol: lots})."""
        max_open = self.max_open_orders or None
        try:
            credit = cash.parse(self.credit, f"accounts.{self.id}.credit") if self.credit else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        spec = self.max_position
        max_pos: dict[str, int] = {}
        for inst in instruments:
            text = spec.get(inst.symbol, "") if isinstance(spec, dict) else spec
            if text:
                max_pos[inst.symbol] = _lots(inst, text, f"accounts.{self.id}.max_position")
        return max_open, credit, dict(sorted(max_pos.items()))


def _lots(inst: Instrument, text: str, what: str) -> int:
    """A position-sized quantity in lots (above the per-order max_qty is fine)."""
    try:
        value = Decimal(text)
        lots, rest = divmod(value, inst.lot_d)
        if value <= 0 or rest:
            raise ValueError
    except (ArithmeticError, ValueError):
        raise ConfigError(
            f"{what}: must be a positive multiple of lot {inst.lot} for {inst.symbol}, was {text!r}"
        ) from None
    return int(lots)


# Demo accounts for `zex run`: the credential is the account id. Change them
# (a config file with [[accounts]] replaces this list) before real use.
# None cancels on disconnect: each `zex order` is a session of its own, and
# its resting order must outlive it.
DEFAULT_ACCOUNTS = (
    AccountConfig("maker", "maker"),
    AccountConfig("taker", "taker", max_order_qty="1000", collar_pct="20", rate=1000),
    AccountConfig(
        "alice",
        "alice",
        max_order_qty="1000",
        max_notional="1000000",
        collar_pct="20",
        rate=500,
        max_open_orders=500,
        max_position="10000",
        credit="1000000",
    ),
    AccountConfig(
        "bob",
        "bob",
        max_order_qty="1000",
        max_notional="1000000",
        collar_pct="20",
        rate=500,
        max_open_orders=500,
        max_position="10000",
        credit="1000000",
    ),
    AccountConfig("ops", "ops", operator=True),
)


@dataclass
class GatewayConfig:
    name: str = "gw1"  # the matcher routes reports by it: unique per gateway
    bind: str = "tcp://127.0.0.1:7100"
    matcher: str = ""  # the matcher's command endpoint to connect to; "" = matcher.bind
    events: str = ""  # the matcher's event stream (for last trade prices); "" = matcher.events_bind
    workers: int = 0  # decode/validate threads; 0 = in the front thread, measured fastest (GIL), bench/README.md
    heartbeat_liveness: int = 3  # intervals of silence before a session is dropped
    router_hwm: int = 100_000
    matcher_hwm: int = 100_000  # commands queued towards the matcher; past it (workers = 0) requests get UNAVAILABLE
    # Prometheus /metrics (host:port); "" = off; unique per gateway
    metrics_bind: str = "127.0.0.1:7112"
    audit: str = ""  # the logger to PUSH audit records to; "" = logger.bind, "off" = none


@dataclass
class MatcherConfig:
    bind: str = "tcp://127.0.0.1:7101"
    events_bind: str = "tcp://127.0.0.1:7102"
    replay_bind: str = "tcp://127.0.0.1:7103"  # the replay service: old event batches on request
    heartbeat_ms: int = 1000  # a quiet event stream says [b"hb", seq] this often
    data_dir: str = "data/matcher"
    fsync: str = "batch"
    fsync_interval_ms: float = 5.0
    segment_mb: int = 64
    snapshot_every: int = 100_000  # commands between snapshots; 0 = never
    digest_every: int = 100_000  # commands between state digests on the event stream; 0 = never.
    # A digest serialises the whole state on the matcher thread: 0.73 s at 100k commands with 38k
    # open orders (bench/README.md), so it is a pause in matching; keep it rare.
    max_batch: int = 512  # commands drained per loop turn (one group commit)
    router_hwm: int = 100_000
    pub_hwm: int = 100_000
    metrics_bind: str = "127.0.0.1:7111"  # Prometheus /metrics (host:port); "" = off


@dataclass
class MarketDataConfig:
    feed_bind: str = "tcp://127.0.0.1:7104"  # the public feed (PUB): md.<SYMBOL>.<channel>
    snapshot_bind: str = "tcp://127.0.0.1:7105"  # snapshots (ROUTER)
    events: str = ""  # the matcher's event stream to connect to; "" = matcher.events_bind
    replay: str = ""  # the matcher's replay service; "" = matcher.replay_bind
    l3: bool = False  # also publish the order-by-order channel
    heartbeat_ms: int = 1000  # idle topics get a heartbeat this often
    pub_hwm: int = 100_000  # updates queued per subscriber before the PUB drops for it
    metrics_bind: str = "127.0.0.1:7113"  # Prometheus /metrics (host:port); "" = off


@dataclass
class LoggerConfig:
    bind: str = "tcp://127.0.0.1:7106"  # the PULL sink every node PUSHes its audit records to
    data_dir: str = "data/logger"
    fsync: str = "batch"  # always | batch | off, as for the journal
    fsync_interval_ms: float = 200.0
    segment_mb: int = 64  # rotate a segment at this size ...
    rotate_s: float = 3600.0  # ... or at this age
    events: str = ""  # the matcher's event stream; "" = matcher.events_bind
    replay: str = ""  # the matcher's replay service; "" = matcher.replay_bind
    metrics_bind: str = "127.0.0.1:7114"


@dataclass
class Config:
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    marketdata: MarketDataConfig = field(default_factory=MarketDataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    instruments: tuple[Instrument, ...] = DEFAULT_INSTRUMENTS
    accounts: tuple[AccountConfig, ...] = DEFAULT_ACCOUNTS

    def account(self, account_id: str) -> AccountConfig | None:
        for a in self.accounts:
            if a.id == account_id:
                return a
        return None

    def instrument(self, symbol: str) -> Instrument | None:
        for inst in self.instruments:
            if inst.symbol == symbol:
                return inst
        return None


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key."""


def _apply(section: Any, values: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in dataclasses.fields(section)}
    for key, value in values.items():
        f = known.get(key)
        if f is None:
            raise ConfigError(
                f"{where}.{key}: unknown key; known keys are {', '.join(sorted(known))}"
            )
        current = getattr(section, key)
        if isinstance(current, bool):
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
                value = value.lower() in ("1", "true", "yes")
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false, was {value!r}")
            setattr(section, key, value)
            continue
        if not isinstance(current, (int, float, str)) or isinstance(value, dict):
            setattr(section, key, value)
            continue
        try:
            value = type(current)(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}.{key}: expected {type(current).__name__}, was {value!r}"
            ) from None
        setattr(section, key, value)


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the config: defaults, then the file (if any), then ZEX_* environment variables."""
    cfg = Config()
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no such config file; run without --config for the defaults"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key, value in data.items():
        if key == "instruments":
            try:
                cfg.instruments = tuple(Instrument(**spec) for spec in value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: instruments: {exc}") from None
        elif key == "accounts":
            cfg.accounts = tuple(_account(spec, path) for spec in value)
        elif key in ("matcher", "gateway", "marketdata", "logger"):
            _apply(getattr(cfg, key), value, key)
        else:
            raise ConfigError(
                f"{path}: unknown section [{key}]; "
                "known: matcher, gateway, marketdata, logger, instruments, accounts"
            )
    for name, value in (os.environ if env is None else env).items():
        for section in ("matcher", "gateway", "marketdata", "logger"):
            prefix = f"ZEX_{section.upper()}_"
            if name.startswith(prefix):
                _apply(getattr(cfg, section), {name[len(prefix) :].lower(): value}, prefix[:-1])
    validate(cfg)
    return cfg


def _account(spec: dict[str, Any], path: Any) -> AccountConfig:
    if not isinstance(spec, dict) or "id" not in spec:
        raise ConfigError(f"{path}: every [[accounts]] entry needs an id")
    acct = AccountConfig(str(spec["id"]))
    _apply(acct, {k: v for k, v in spec.items() if k != "id"}, f"accounts.{acct.id}")
    return acct


def validate(cfg: Config) -> None:
    """Refuse a config that would fail later: name the key and the fix."""
    symbols = [i.symbol for i in cfg.instruments]
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"instruments: a symbol is listed twice: {symbols}")
    for s in symbols:
        # market-data topics are md.<SYMBOL>.<channel>: a dot would make them ambiguous
        if "." in s:
            raise ConfigError(
                f"instruments: symbol {s!r} contains '.'; use another separator, e.g. '-'"
            )
    ids = [a.id for a in cfg.accounts]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"accounts: an id is listed twice: {ids}")
    cash = Cash(cfg.instruments)
    for a in cfg.accounts:
        where = f"accounts.{a.id}"
        a.matcher_limits(cfg.instruments, cash)  # raises ConfigError naming the key
        if a.max_notional:
            try:
                cash.parse(a.max_notional, f"{where}.max_notional")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        for key in ("max_order_qty", "collar_pct"):
            text = getattr(a, key)
            if text:
                try:
                    if Decimal(text) <= 0:
                        raise ValueError
                except (ArithmeticError, ValueError):
                    raise ConfigError(
                        f"{where}.{key}: must be a positive decimal string, was {text!r}"
                    ) from None
        if isinstance(a.max_position, dict):
            unknown = set(a.max_position) - set(symbols)
            if unknown:
                raise ConfigError(
                    f"{where}.max_position: unknown symbol(s) {sorted(unknown)}; listed: {symbols}"
                )
    if cfg.gateway.workers < 0:
        raise ConfigError(
            f"gateway.workers: must be 0 (validate in the front thread) or more, "
            f"was {cfg.gateway.workers}"
        )
