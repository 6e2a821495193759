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
from collections.abc import Callable, Iterable

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("zex.metrics")

Item = tuple[str, str, str, Callable[[], float]]  # (kind "counter"|"gauge", name, help, read)


class Sampled(Collector):
    """Metrics read from the node's own counters at scrape time (no cost between scrapes)."""

    def __init__(self, namespace: str, items: Iterable[Item]) -> None:
        self.namespace = namespace
        self.items = list(items)
        for kind, name, _, _ in self.items:
            if kind not in ("counter", "gauge"):
                raise ValueError(f"metric {name}: kind must be counter or gauge, was {kind!r}")

    def collect(self):
        for kind, name, doc, read in self.items:
            full = f"{self.namespace}_{name}"
            if kind == "counter":
                yield CounterMetricFamily(full, doc, value=read())
            else:
                yield GaugeMetricFamily(full, doc, value=read())


class Exporter:
    """One node's /metrics endpoint: its own registry on its own ``host:port``."""

    def __init__(self, bind: str) -> None:
        self.bind = bind
        self.registry = CollectorRegistry(auto_describe=False)
        self._server = None
        self._thread = None

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
            self._server, self._thread = start_http_server(int(port), host or "127.0.0.1", self.registry)
        except OSError as exc:
            raise OSError(f"metrics: cannot listen on {self.bind}: {exc.strerror}; "
                          "set metrics_bind to a free host:port, or \"\" to turn metrics off") from None
        log.info("metrics on %s", self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None
