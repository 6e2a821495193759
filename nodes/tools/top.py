"""``zex top``: the exchange at a glance, from the nodes' own /metrics, refreshing in place.

    zex top                          the endpoints of the default config (or --config FILE)
    zex top --matcher 10.0.0.5:7111 --gateway 10.0.0.6:7112 --gateway 10.0.0.7:7112
    zex top --once --interval 2      two scrapes 2 s apart, one screen, then exit

Rates are the difference of two scrapes over the time between them;
percentiles are interpolated inside the histogram bucket where they fall
(as PromQL's histogram_quantile does), over the same interval. A node that
does not answer shows as down with the error, and the rest still shows.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from zex.protocol.reasons import reason_name

from ..runtime import config as config_mod


@dataclass
class Scrape:
    """One node's metrics at one moment: {(name, labels): value}, or the error that stopped it."""

    url: str
    at: float
    values: dict[tuple[str, tuple], float] = field(default_factory=dict)
    error: str = ""

    def get(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        return {
            dict(lb)[label]: v
            for (n, lb), v in self.values.items()
            if n == name and label in dict(lb)
        }

    def buckets(self, name: str) -> list[tuple[float, float]]:
        out = [
            (float(dict(lb)["le"]), v)
            for (n, lb), v in self.values.items()
            if n == f"{name}_bucket"
        ]
        return sorted(out)


def scrape(url: str, timeout: float = 2.0) -> Scrape:
    s = Scrape(url, time.monotonic())
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        s.error = str(getattr(exc, "reason", exc))
        return s
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            s.values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return s


def quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float | None:
    """The q-quantile of what was observed between two scrapes of one histogram (None: nothing)."""
    prev = dict(before)
    cum = [(le, v - prev.get(le, 0.0)) for le, v in after]
    if not cum or cum[-1][1] <= 0:
        return None
    rank = q * cum[-1][1]
    lo_le, lo_c = 0.0, 0.0
    for le, c in cum:
        if c >= rank:
            if le == float("inf"):
                return lo_le  # beyond the last finite bucket: its bound is all we know
            return lo_le + (le - lo_le) * ((rank - lo_c) / (c - lo_c) if c > lo_c else 1.0)
        lo_le, lo_c = le, c
    return None


def _us(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def _reason(code: str) -> str:
    """A metric's reason label with its name; a label that is not a number stays as it is."""
    return f"{code} {reason_name(int(code))}" if code.isdigit() else code


def render(nodes: dict[str, tuple[Scrape, Scrape]]) -> str:
    """One screen from a pair of scrapes per node: (earlier, later)."""
    lines = [f"zex top  {time.strftime('%H:%M:%S')}"]
    rate_lines, health = [], []
    rejects: dict[str, float] = {}
    for name, (a, b) in nodes.items():
        dt = max(b.at - a.at, 1e-9)
        if b.error:
            health.append(f"  {name:<22} DOWN   {b.url}: {b.error}")
            continue
        kind = name.split(" ")[0]
        if kind == "matcher":
            health.append(
                f"  {name:<22} up     seq {b.get('zex_matcher_seq'):,.0f}  open orders "
                f"{sum(b.by_label('zex_matcher_open_orders', 'symbol').values()):,.0f}  held report frames "
                f"{b.get('zex_matcher_held_report_frames'):,.0f}"
            )
            for what, metric in (
                ("orders/s", "zex_matcher_orders_total"),
                ("trades/s", "zex_matcher_trades_total"),
                ("commands/s", "zex_matcher_commands_total"),
            ):
                rate_lines.append(f"  {what:<12} {(b.get(metric) - a.get(metric)) / dt:>10,.1f}")
            h = "zex_matcher_command_seconds"
            rate_lines.append(
                f"  {'matcher p50':<12} {_us(quantile(0.5, a.buckets(h), b.buckets(h))):>10}   "
                f"p99 {_us(quantile(0.99, a.buckets(h), b.buckets(h)))}  (time in the matcher)"
            )
            for code, v in b.by_label("zex_matcher_rejects_total", "reason").items():
                rejects[code] = (
                    rejects.get(code, 0.0)
                    + v
                    - a.by_label("zex_matcher_rejects_total", "reason").get(code, 0.0)
                )
        elif kind == "gateway":
            health.append(
                f"  {name:<22} up     sessions {b.get('zex_gateway_sessions'):,.0f}  dropped reports "
                f"{b.get('zex_gateway_dropped_reports_total'):,.0f}"
            )
            h = "zex_gateway_order_ack_seconds"
            rate_lines.append(
                f"  {name + ' p50':<12} {_us(quantile(0.5, a.buckets(h), b.buckets(h))):>10}   "
                f"p99 {_us(quantile(0.99, a.buckets(h), b.buckets(h)))}  (order -> ack)"
            )
            for code, v in b.by_label("zex_gateway_rejects_total", "reason").items():
                rejects[code] = (
                    rejects.get(code, 0.0)
                    + v
                    - a.by_label("zex_gateway_rejects_total", "reason").get(code, 0.0)
                )
        elif kind == "marketdata":
            live = "live" if b.get("zex_marketdata_live") else "catching up"
            health.append(
                f"  {name:<22} up     {live}, matcher seq {b.get('zex_marketdata_matcher_seq'):,.0f}  "
                f"gaps {b.get('zex_marketdata_event_gaps_total'):,.0f}  subscribers gone "
                f"{b.get('zex_marketdata_subscribers_disconnected_total'):,.0f}"
            )
            m = "zex_marketdata_updates_published_total"
            rate_lines.append(f"  {'md updates/s':<12} {(b.get(m) - a.get(m)) / dt:>10,.1f}")
        elif kind == "logger":
            health.append(
                f"  {name:<22} up     trail at matcher seq {b.get('zex_logger_matcher_seq'):,.0f}  "
                f"audit records {b.get('zex_logger_audit_records_total'):,.0f}  events lost "
                f"{b.get('zex_logger_events_lost_total'):,.0f}"
            )
    lines += ["", "rates (over the last interval)", *rate_lines]
    lines += ["", "rejects by reason (over the last interval)"]
    shown = {c: v for c, v in rejects.items() if v > 0}
    lines += [f"  {_reason(c):<28} {v:>8,.0f}" for c, v in sorted(shown.items())] or ["  none"]
    lines += ["", "nodes", *health]
    return "\n".join(lines)


def endpoints(args) -> dict[str, str]:
    """Node label -> metrics URL, from the flags or the config's metrics_bind keys."""
    out: dict[str, str] = {}
    if args.matcher or args.gateway or args.marketdata or args.logger:
        for kind, values in (
            ("matcher", args.matcher or []),
            ("gateway", args.gateway or []),
            ("marketdata", args.marketdata or []),
            ("logger", args.logger or []),
        ):
            for i, hp in enumerate(values):
                out[kind if len(values) == 1 else f"{kind} {i + 1}"] = f"http://{hp}/metrics"
        return out
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        sys.exit(f"zex top: {exc}")
    for kind, bind in (
        ("matcher", cfg.matcher.metrics_bind),
        ("gateway", cfg.gateway.metrics_bind),
        ("marketdata", cfg.marketdata.metrics_bind),
        ("logger", cfg.logger.metrics_bind),
    ):
        if bind:
            out[kind] = f"http://{bind}/metrics"
    if not out:
        sys.exit(
            "zex top: every metrics_bind in the config is off; "
            "pass --matcher/--gateway/--marketdata/--logger HOST:PORT"
        )
    return out


def cmd_top(args) -> int:
    urls = endpoints(args)
    last = {name: scrape(u) for name, u in urls.items()}
    try:
        while True:
            time.sleep(args.interval)  # the display's refresh period, not a synchronisation
            now = {name: scrape(u) for name, u in urls.items()}
            text = render({name: (last[name], now[name]) for name in urls})
            last = now
            if args.once:
                print(text)
                return 0 if all(not s.error for s in now.values()) else 1
            sys.stdout.write("\x1b[H\x1b[J" + text + "\n\n(Ctrl+C to stop)\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "top", help="orders/s, trades/s, latency, rejects and node health, refreshing in place"
    )
    p.add_argument(
        "--config",
        help="TOML config file, for the nodes' metrics_bind (default: built-in defaults)",
    )
    p.add_argument(
        "--matcher", action="append", metavar="HOST:PORT", help="a matcher's metrics endpoint"
    )
    p.add_argument(
        "--gateway",
        action="append",
        metavar="HOST:PORT",
        help="a gateway's metrics endpoint (repeat)",
    )
    p.add_argument(
        "--marketdata",
        action="append",
        metavar="HOST:PORT",
        help="a marketdata node's metrics endpoint",
    )
    p.add_argument(
        "--logger", action="append", metavar="HOST:PORT", help="a logger node's metrics endpoint"
    )
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between refreshes (default 1)"
    )
    p.add_argument(
        "--once", action="store_true", help="two scrapes --interval apart, one screen, then exit"
    )
    p.set_defaults(func=cmd_top)
