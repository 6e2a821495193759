"""What the load-test users share: the green context, settings, histograms and reporting.

One locust process runs every user as a greenlet of one thread, so module
state here is shared without locks. ``SETTINGS`` is set by the locustfile's
init hook, after locust has parsed the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq.green as zmq_green

from loadtest.latency import Latencies
from zex.protocol import messages as m
from zex.protocol.codec import encode
from zex.protocol.session import SessionLost

# cl_ord_id prefix of every order the load test sends: what the start-up sweep cancels
ID_MARK = "lt."
MD_USERS = int(os.environ.get("ZEX_LOAD_MD_USERS", "1"))  # market-data users, counted in -u

# Locust monkey-patches with gevent when it is imported: every socket is a zmq.green socket, or
# each user's wait would block the whole hub and requests would go one at a time.
GREEN = zmq_green.Context()
# zmq.green's poller waits for an edge on the socket's ZMQ_FD, and now and then misses one:
# measured here, about one request in 5,000 then waited for the client's next timer (its 1 s
# heartbeat) with the answer already in the socket. The poller re-checks the socket every
# `_gevent_bug_timeout` seconds for exactly this reason (pyzmq's default, 1.33 s, is longer than
# that timer, so it never helped); at 5 ms a missed edge costs at most 5 ms.
zmq_green.Poller._gevent_bug_timeout = 0.005

LATENCY = Latencies()  # µs histograms by request name
MD_TOTALS: dict[str, int] = {}  # market-data counters, all market-data users together


@dataclass
class Settings:
    gateway: str
    feed: str
    snapshots: str
    accounts: list[tuple[str, str]]  # (id, credential)
    symbols: list[str]
    instruments: dict
    max_open: int
    timeout: float
    out: Path | None


SETTINGS: Settings | None = None


class Rejected(Exception):
    """An outcome the load test did not expect; its text is the reason, so locust groups by it."""


def fire(
    env,
    name: str,
    seconds: float,
    answer=None,
    exc: Exception | None = None,
    due: float | None = None,
    end: float = 0.0,
) -> None:
    """Report one request to locust and to the histograms (``due``: open loop's due time)."""
    LATENCY.record(name, seconds)
    if due is not None:
        LATENCY.record(f"{name} (from due time)", end - due)
    env.events.request.fire(
        request_type="zex",
        name=name,
        response_time=seconds * 1000.0,
        response_length=len(encode(answer)) if answer is not None else 0,
        exception=exc,
        context={},
    )


def short(exc: Exception) -> Exception:
    """One line per kind of error, so locust's failure table groups them."""
    if isinstance(exc, TimeoutError):
        return Rejected(f"no answer within the timeout ({type(exc).__name__})")
    if isinstance(exc, SessionLost):
        return Rejected(f"session lost: {exc.why}")
    return Rejected(f"{type(exc).__name__}: {str(exc)[:80]}")


def rejected(ans: m.Reject) -> Rejected:
    return Rejected(f"reject {ans.reason} {ans.reason_name}")
