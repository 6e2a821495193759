"""Configuration: one TOML file, every key with a default.

Defaults live here and only here; a file overrides them, then the
environment (ZEX_<SECTION>_<KEY>, e.g. ZEX_MATCHER_FSYNC=off), then the
command line. ``zex run`` with no file starts a working exchange on one host.

    [matcher]
    bind = "tcp://127.0.0.1:7101"        # gateways connect their DEALER here
    events_bind = "tcp://127.0.0.1:7102" # event stream (PUB)
    data_dir = "data/matcher"
    fsync = "batch"                      # always | batch | off (see journal.py)

    [[instruments]]
    symbol = "XYZ"
    tick = "0.01"
    lot = "1"

Ports: the 71xx range, clear of locust's 5557/5558 and Prometheus' 9090.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zex.protocol.numbers import Instrument

DEFAULT_INSTRUMENTS = (
    Instrument("XYZ", tick="0.01", lot="1", min_price="0.01", max_price="10000", max_qty="100000"),
    Instrument("ABC", tick="0.05", lot="1", min_price="0.05", max_price="10000", max_qty="100000"),
    Instrument("BTC-USD", tick="0.5", lot="0.001", min_price="1", max_price="1000000", max_qty="100"),
)


@dataclass
class MatcherConfig:
    bind: str = "tcp://127.0.0.1:7101"
    events_bind: str = "tcp://127.0.0.1:7102"
    data_dir: str = "data/matcher"
    fsync: str = "batch"
    fsync_interval_ms: float = 5.0
    segment_mb: int = 64
    snapshot_every: int = 100_000  # commands between snapshots; 0 = never
    digest_every: int = 10_000  # commands between state digests on the event stream; 0 = never
    max_batch: int = 512  # commands drained per loop turn (one group commit)
    router_hwm: int = 100_000
    pub_hwm: int = 100_000


@dataclass
class Config:
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    instruments: tuple[Instrument, ...] = DEFAULT_INSTRUMENTS

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
            raise ConfigError(f"{where}.{key}: unknown key; known keys are {', '.join(sorted(known))}")
        current = getattr(section, key)
        if isinstance(current, bool) or not isinstance(current, (int, float, str)):
            setattr(section, key, value)
            continue
        try:
            value = type(current)(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.{key}: expected {type(current).__name__}, was {value!r}") from None
        setattr(section, key, value)


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Build the config: defaults, then the file (if any), then ZEX_* environment variables."""
    cfg = Config()
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file; run without --config for the defaults") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key, value in data.items():
        if key == "instruments":
            try:
                cfg.instruments = tuple(Instrument(**spec) for spec in value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: instruments: {exc}") from None
        elif key == "matcher":
            _apply(cfg.matcher, value, "matcher")
        else:
            raise ConfigError(f"{path}: unknown section [{key}]; known: matcher, instruments")
    env = os.environ if env is None else env
    for name, value in env.items():
        if name.startswith("ZEX_MATCHER_"):
            _apply(cfg.matcher, {name[len("ZEX_MATCHER_"):].lower(): value}, "ZEX_MATCHER")
    return cfg
