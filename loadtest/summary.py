"""Print the figures of one load-test run from its files (what `make load` shows at the end).

    python loadtest/summary.py loadtest/results/20260101-120000

Reads ``stats.json`` (locust's --json-file: final counts, written at exit;
the CSV lags the run by up to a second) and ``latency_us.json`` (the
microsecond histograms of loadtest/locustfile.py), and prints one Markdown
table: requests, failures, rate, and p50/p99/p99.9/max in µs per request name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = (
    "new_order",
    "cancel",
    "replace",
    "ioc",
    "cancel: raced a fill",
    "replace: raced a fill",
    "book",
    "positions",
    "logon",
    "reconnect",
)


def load(run: Path) -> tuple[list[dict], dict]:
    stats_file, lat_file = run / "stats.json", run / "latency_us.json"
    if not stats_file.exists():
        raise SystemExit(f"{stats_file} is missing: did locust run (with --json-file {run}/stats)?")
    stats = json.loads(stats_file.read_text())
    lat = json.loads(lat_file.read_text()) if lat_file.exists() else {"latency": {}}
    return stats, lat


def rate(entry: dict, span: float) -> float:
    return entry["num_requests"] / span if span > 0 else 0.0


def table(stats: list[dict], lat: dict) -> str:
    start = min((e["start_time"] for e in stats), default=0.0)
    end = max((e["last_request_timestamp"] or 0.0 for e in stats), default=0.0)
    span = end - start
    rank = {n: i for i, n in enumerate(ORDER)}
    rows = sorted(stats, key=lambda e: (rank.get(e["name"], len(ORDER)), e["name"]))
    hist = lat.get("latency", {})
    lines = [
        "| request | count | failures | per s | p50 µs | p99 µs | p99.9 µs | max µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    orders = 0
    for e in rows:
        h = hist.get(e["name"], {})
        if e["name"] in ("new_order", "cancel", "replace", "ioc") or "raced" in e["name"]:
            orders += e["num_requests"]
        lines.append(
            f"| {e['name']} | {e['num_requests']} | {e['num_failures']} | "
            f"{rate(e, span):.0f} | {h.get('p50', '-')} | {h.get('p99', '-')} | "
            f"{h.get('p99.9', '-')} | {h.get('max', '-')} |"
        )
    for name in sorted(n for n in hist if n.endswith("(from due time)")):
        h = hist[name]
        lines.append(
            f"| {name} | {h['count']} | | | {h['p50']} | {h['p99']} | {h['p99.9']} | {h['max']} |"
        )
    failures = sum(e["num_failures"] for e in stats)
    md = lat.get("market_data", {})
    lines.append("")
    lines.append(
        f"{span:.0f} s, profile {lat.get('profile', '?')}: {orders} order requests "
        f"({orders / span if span else 0:.0f}/s), {failures} failures; market data: "
        + (", ".join(f"{k} {v}" for k, v in sorted(md.items())) or "none")
    )
    for what, n in sorted(lat.get("failures", {}).items()):
        lines.append(f"  failure: {what} x{n}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    stats, lat = load(Path(argv[0]))
    print(table(stats, lat))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
