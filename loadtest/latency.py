"""Sub-millisecond latency histograms for the load test (locust's own percentiles are whole ms).

    lat = Latencies()
    lat.record("new_order", 0.000412)          # seconds
    lat.summary()["new_order"]["p99"]          # microseconds
    print(lat.table())

An HDR histogram (the ``hdrhistogram`` package, in the ``load`` and ``bench``
extras) when it is installed, otherwise a log-linear one of the same shape:
exact below 128 µs, then 64 buckets per power of two (at most 1.6 % off).
Values are whole microseconds from 1 µs to 60 s; longer ones count as 60 s.
"""

from __future__ import annotations

import json
from pathlib import Path

try:  # the real thing when present; the fallback keeps the load test dependency-free
    from hdrh.histogram import HdrHistogram
except ImportError:  # pragma: no cover - exercised by tests through LogLinear directly
    HdrHistogram = None

MAX_US = 60_000_000  # 60 s: anything slower is a timeout anyway
SUB_BITS = 6  # 2**6 = 64 sub-buckets per power of two
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class LogLinear:
    """A log-linear histogram of positive ints with the part of HdrHistogram's API used here."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max = 0

    @staticmethod
    def _bucket(v: int) -> int:
        e = v.bit_length() - SUB_BITS - 1
        return v if e <= 0 else (e << SUB_BITS) + (v >> e)  # exact below 2**(SUB_BITS+1)

    @staticmethod
    def _upper(b: int) -> int:
        e = (b >> SUB_BITS) - 1
        if b < (2 << SUB_BITS):
            return b
        return (((b & ((1 << SUB_BITS) - 1)) | (1 << SUB_BITS)) << e) + (1 << e) - 1

    def record_value(self, v: int) -> None:
        b = self._bucket(v)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.total += 1
        self.max = max(self.max, v)

    def get_total_count(self) -> int:
        return self.total

    def get_max_value(self) -> int:
        return self.max

    def get_value_at_percentile(self, pct: float) -> int:
        if not self.total:
            return 0
        rank = max(1, round(self.total * pct / 100.0 + 0.4999999))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(self._upper(b), self.max)
        return self.max


def new_histogram():
    return HdrHistogram(1, MAX_US, 3) if HdrHistogram is not None else LogLinear()


class Latencies:
    """One histogram per request name, in microseconds."""

    def __init__(self) -> None:
        self.hists: dict[str, object] = {}

    def reset(self) -> None:
        self.hists.clear()

    def record(self, name: str, seconds: float) -> None:
        h = self.hists.get(name)
        if h is None:
            h = self.hists[name] = new_histogram()
        h.record_value(min(MAX_US, max(1, round(seconds * 1e6))))

    def summary(self) -> dict[str, dict[str, int]]:
        """{name: {count, p50, p90, p99, p99.9, max}}, latencies in µs."""
        out = {}
        for name in sorted(self.hists):
            h = self.hists[name]
            row = {"count": h.get_total_count()}
            for p in PERCENTILES:
                row[f"p{p:g}"] = h.get_value_at_percentile(p)
            row["max"] = h.get_max_value()
            out[name] = row
        return out

    def table(self) -> str:
        rows = self.summary()
        if not rows:
            return "(no requests recorded)"
        width = max(len(n) for n in rows)
        head = f"{'name':<{width}} {'count':>9} " + " ".join(
            f"{k:>8}" for k in ("p50", "p90", "p99", "p99.9", "max")
        )
        lines = [head]
        for name, r in rows.items():
            lines.append(
                f"{name:<{width}} {r['count']:>9} "
                + " ".join(f"{r[k]:>8}" for k in ("p50", "p90", "p99", "p99.9", "max"))
            )
        return "\n".join(lines)

    def write(self, path: Path, extra: dict | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "unit": "us",
            "histogram": "hdr" if HdrHistogram is not None else "log-linear",
            "latency": self.summary(),
            **(extra or {}),
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
