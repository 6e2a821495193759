"""Prometheus metrics: each node serves its own ``/metrics`` on its own port.

    exporter = Exporter("127.0.0.1:7113")              # "" turns it off
    exporter.add(Sampled("zex_marketdata", [
        ("counter", "updates_published", "Feed messages sent", lambda: node.published),
        ("gauge", "matcher_seq", "Last matcher seq applied", lambda: node.view.last_seq),
    ]))
    exporter.start()      # serves in a thread of its own
    ...
    exporter.stop()

Counts live where they are made: plain ints that the owning thread adds to,
with no lock and no call into a metrics library on the hot path. ``Sampled``
reads them only when Prometheus scrapes (reading an int another thread
writes is safe in CPython). Each node has its own registry and port, so
nodes in one process (``zex run``) and nodes in separate processes expose
the same series, and prometheus-client's multiprocess mode is never needed.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("zex.metrics")

# Latency buckets in seconds, 10 us to 1 s (prometheus-client's defaults start at 5 ms,
# above a whole order round trip here). Roughly 1-2-5 per decade.
LATENCY_BUCKETS = (
    10e-6,
    20e-6,
    50e-6,
    100e-6,
    200e-6,
    500e-6,
    1e-3,
    2e-3,
    5e-3,
    10e-3,
    20e-3,
    50e-3,
    0.1,
    0.2,
    0.5,
    1.0,
)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # commands per matcher loop turn

# (kind, name, help, read[, label]): kind "counter", "gauge" or "histogram"; read() gives a
# number, a Histogram, or with a label name a dict {label value: number}.
Item = tuple


class Histogram:
    """A histogram one thread observes into: a bisect and two adds, no lock.

    h = Histogram(LATENCY_BUCKETS)
    h.observe(0.000123)
    h.observe(0.000456, n=8)      # eight events that each took that long (a batch)
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        counts = list(self.counts)  # one copy, so the buckets add up even while the owner observes
        buckets, total = [], 0
        for bound, c in zip((*self.bounds, float("inf")), counts, strict=True):
            total += c
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.sum)


class _Off:
    """What a node observes into when its metrics are off: nothing."""

    __slots__ = ()

    def observe(self, value: float, n: int = 1) -> None:
        pass


OFF = _Off()


def histogram(enabled: bool, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram | _Off:
    """A Histogram, or with metrics off (``metrics_bind = ""``) one that records nothing."""
    return Histogram(bounds) if enabled else OFF


class Sampled(Collector):
    """Metrics read from the node's own counters at scrape time (no cost between scrapes)."""

    def __init__(self, namespace: str, items: Iterable[Item]) -> None:
        self.namespace = namespace
        self.items = list(items)
        for item in self.items:
            if item[0] not in ("counter", "gauge", "histogram"):
                raise ValueError(
                    f"metric {item[1]}: kind must be counter, gauge or histogram, was {item[0]!r}"
                )

    def collect(self):
        for item in self.items:
            kind, name, doc, read = item[:4]
            full = f"{self.namespace}_{name}"
            if kind == "histogram":
                yield read().family(full, doc)
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            if len(item) == 5:
                fam = family(full, doc, labels=[item[4]])
                for value, n in sorted(dict(read()).items()):
                    fam.add_metric([str(value)], n)
                yield fam
            else:
                yield family(full, doc, value=read())


class Exporter:
    """One node's /metrics endpoint: its own registry on its own ``host:port``."""

    def __init__(self, bind: str) -> None:
        self.bind = bind
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)  # CPU, memory, open fds of the node's process
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)

    @property
    def url(self) -> str:
        return f"http://{self.bind}/metrics" if self.bind else ""

    def start(self) -> None:
        if not self.bind:
            return
        host, _, port = self.bind.rpartition(":")
        try:
            self._server, self._thread = start_http_server(
                int(port), host or "127.0.0.1", self.registry
            )
        except OSError as exc:
            raise OSError(
                f"metrics: cannot listen on {self.bind}: {exc.strerror}; "
                'set metrics_bind to a free host:port, or "" to turn metrics off'
            ) from None
        log.info("metrics on %s", self.url)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None
