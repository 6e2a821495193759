"""Load profiles, chosen by ZEX_LOAD_PROFILE (locust picks a shape class when it imports the file).

| profile  | loop   | users                                  | each order user                        |
|----------|--------|----------------------------------------|----------------------------------------|
| steady   | closed | -u, all the run                        | waits ZEX_LOAD_WAIT (5..15 ms) between |
| burst    | closed | -u; every 20 s, 5 s at 4x (logon storm)| as steady                              |
| many     | closed | -u (make load: 100), ramped at -r      | one request per ZEX_LOAD_PACING (0.5 s)|
| open     | open   | -u                                     | its share of ZEX_LOAD_RATE requests/s  |

Closed loop: a user sends its next request only after the answer to the
last, so a stall of the exchange also stalls the senders and shows up as
one slow request instead of every request that should have been sent
meanwhile (coordinated omission). ``open`` keeps a fixed schedule per user:
it records each request's latency from the time it was due, not from when
it could finally be sent, so a stall counts for every request it delayed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from locust import LoadTestShape, between, constant_pacing


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, was {text!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be > 0, was {text!r}")
    return value


def _env_range(name: str, default: tuple[float, float]) -> tuple[float, float]:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(
            f"{name} must be 'min,max' in seconds, e.g. 0.005,0.015; was {text!r}"
        ) from None
    if not 0 <= lo <= hi:
        raise SystemExit(f"{name} must have 0 <= min <= max, was {text!r}")
    return lo, hi


def scheduled(interval_of: Callable[[object], float]) -> Callable[[object], float]:
    """An open-loop wait_time: the user's tasks are due every ``interval_of(user)`` seconds.

    Unlike locust's ``constant_pacing``, which measures each pause from the end
    of the last task, the schedule never slips: a task that overran is followed
    at once by the ones that fell due meanwhile. Each task finds the time it was
    due in ``user.due`` (None for the first) and measures its latency from there.
    """

    def wait(user) -> float:
        now = time.perf_counter()
        interval = interval_of(user)
        due = getattr(user, "due", None)
        # first task: a random phase, so the users do not all fire in the same instant
        user.due = now + random.random() * interval if due is None else due + interval
        return max(0.0, user.due - now)

    return wait


class BurstShape(LoadTestShape):
    """-u users, and every ZEX_LOAD_BURST_EVERY s, ZEX_LOAD_BURST_FOR s at ZEX_LOAD_BURST_FACTOR x."""

    use_common_options = True  # -u and -t keep their meaning
    every = _env_float("ZEX_LOAD_BURST_EVERY", 20.0)
    length = _env_float("ZEX_LOAD_BURST_FOR", 5.0)
    factor = _env_float("ZEX_LOAD_BURST_FACTOR", 4.0)
    spawn_rate = 100.0  # users/s into and out of a burst: all at once, as at a market open

    def tick(self):
        opts = self.runner.environment.parsed_options
        run_time = float(opts.run_time or 60)
        t = self.get_run_time()
        if t >= run_time:
            return None
        base = max(1, int(opts.num_users or 1))
        in_burst = (t % self.every) >= self.every - self.length
        return (round(base * self.factor) if in_burst else base), self.spawn_rate


@dataclass(frozen=True)
class Profile:
    name: str
    wait_time: Callable[[object], float]
    max_open: int  # open orders a user keeps at most (the account's limit is per account)
    shape: type[LoadTestShape] | None = None
    open_loop: bool = False


def select(name: str, interval_of: Callable[[object], float]) -> Profile:
    """The profile ``name``; ``interval_of(user)`` gives an open-loop user's interval in seconds."""
    think = between(*_env_range("ZEX_LOAD_WAIT", (0.005, 0.015)))
    if name == "steady":
        return Profile(name, think, 10)
    if name == "burst":
        return Profile(name, think, 5, shape=BurstShape)
    if name == "many":
        return Profile(name, constant_pacing(_env_float("ZEX_LOAD_PACING", 0.5)), 4)
    if name == "open":
        return Profile(name, scheduled(interval_of), 10, open_loop=True)
    raise SystemExit(f"ZEX_LOAD_PROFILE must be one of steady, burst, many, open; was {name!r}")


def open_rate() -> float:
    """ZEX_LOAD_RATE: requests per second the ``open`` profile sends, all order users together."""
    return _env_float("ZEX_LOAD_RATE", 500.0)
