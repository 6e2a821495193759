"""The market-data user: BookSubscriber on green sockets; updates, gaps and resyncs to locust."""

from __future__ import annotations

import time

from locust import User, constant, task

from loadtest import common
from loadtest.common import MD_TOTALS, MD_USERS, Rejected, fire
from zex.protocol import messages as m
from zex.protocol.mdclient import BookSubscriber


class MarketDataUser(User):
    """A feed subscriber: books kept in sync, updates counted, gaps and resyncs reported."""

    fixed_count = max(0, MD_USERS)
    abstract = MD_USERS <= 0  # ZEX_LOAD_MD_USERS=0: order users only
    wait_time = constant(0)

    def on_start(self) -> None:
        s = common.SETTINGS
        assert s is not None, "the init hook sets SETTINGS"
        self.md = BookSubscriber(
            s.feed,
            s.snapshots,
            s.symbols,
            context=common.GREEN,
            on_book=self._on_book,
            on_bbo=self._on_bbo,
            on_trade=self._on_trades,
        )
        self.seen = {"gaps": 0, "resyncs": 0, "timeouts": 0, "bad_frames": 0}
        t0 = time.perf_counter()
        try:
            self.md.run_until(lambda: all(self.md.synced(x) for x in s.symbols), timeout=10.0)
        except TimeoutError as exc:
            fire(self.environment, "md_sync", time.perf_counter() - t0, exc=Rejected(str(exc)))
        else:
            fire(self.environment, "md_sync", time.perf_counter() - t0)

    def on_stop(self) -> None:
        if getattr(self, "md", None) is not None:
            self.md.close()

    @task
    def listen(self) -> None:
        self.md.poll(0.5)
        self.check()

    def check(self) -> None:
        md, env = self.md, self.environment
        for counter, name, failure in (
            ("gaps", "md_gap", "sequence gap on the feed: updates were lost"),
            ("timeouts", "md_snapshot_timeout", "snapshot request unanswered"),
            ("bad_frames", "md_bad_frame", "feed frame did not decode"),
            ("resyncs", "md_resync", None),  # a resync is the recovery, not a loss
        ):
            now, before = getattr(md, counter), self.seen[counter]
            for _ in range(now - before):
                env.events.request.fire(
                    request_type="zex",
                    name=name,
                    response_time=0.0,
                    response_length=0,
                    context={},
                    exception=Rejected(failure) if failure else None,
                )
            self.seen[counter] = now
            MD_TOTALS[counter] = MD_TOTALS.get(counter, 0) + now - before

    def _on_book(self, book) -> None:
        MD_TOTALS["l2_changes"] = MD_TOTALS.get("l2_changes", 0) + 1

    def _on_bbo(self, bbo: m.Bbo) -> None:
        self._feed("md_bbo", bbo.ts)

    def _on_trades(self, trades) -> None:
        self._feed("md_trades", trades.ts)

    def _feed(self, name: str, ts: int) -> None:
        """One feed message; its latency is from the command entering zex (same host's clock)."""
        seconds = max(0.0, (time.time_ns() - ts) / 1e9)
        common.LATENCY.record(name, seconds)
        self.environment.events.request.fire(
            request_type="zex",
            name=name,
            response_time=seconds * 1000.0,
            response_length=0,
            exception=None,
            context={},
        )
