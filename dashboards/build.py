"""Build the Grafana dashboards of zex from Python (grafana-foundation-sdk) into ``grafana/*.json``.

    .venv/bin/pip install -e '.[dashboards]'
    .venv/bin/python dashboards/build.py            # rewrite dashboards/grafana/*.json
    .venv/bin/python dashboards/build.py --check    # exit 1 if the checked-in JSON is stale

The JSON is what Grafana loads (dashboards/provisioning/dashboards/zex.yml points
at it); this script is its source, so edit here and rebuild. Every panel queries
the datasource with the fixed uid ``zex-prometheus`` that
dashboards/provisioning/datasources/prometheus.yml creates. Rate windows are
``$__rate_interval``, which Grafana derives from the datasource's scrape interval
(timeInterval 5s there, as in dashboards/prometheus.yml). Every panel option is
set here: one left unset serialises as null, which Grafana does not fill in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm

from zex.protocol.reasons import Reason

OUT = Path(__file__).resolve().parent / "grafana"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="zex-prometheus")
RATE = "$__rate_interval"
ACK_SLO_S = 0.001  # the p99 order latency ZexOrderLatencyHigh (alerts.yml) holds gateways to
REJECT_RATIO_MAX = 0.1  # ZexRejectRatioHigh's threshold

REJECT_HELP = (
    "Reason codes (protocol/SPEC.md; 1xx message, 2xx instrument, 3xx session, "
    "4xx risk, 5xx book): " + ", ".join(f"{r.value} {r.name}" for r in Reason) + "."
)
UP = {"0": ("DOWN", "red"), "1": ("UP", "green")}
LIVE = {"0": ("CATCHING UP", "orange"), "1": ("LIVE", "green")}
GREEN = ((None, "green"),)  # a threshold's base step has no value (-Infinity)


# ------------------------------------------------------------------ queries


def rate(metric: str, by: str = "") -> str:
    """``sum [by (...)] (rate(metric[$__rate_interval]))``."""
    return (f"sum by ({by}) " if by else "sum") + f"(rate({metric}[{RATE}]))"


def quantile(q: float, histogram: str, by: str = "") -> str:
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', f'le, {by}' if by else 'le')})"


def either(metric: str) -> str:
    """A labelled counter's total rate, 0 (not empty) before its first labelled sample."""
    return f"(sum(rate({metric}[{RATE}])) or vector(0))"


LAG = "max(zex_matcher_seq) - max(zex_marketdata_matcher_seq)"
AUDIT_LAG = "max(zex_matcher_seq) - max(zex_logger_matcher_seq)"
REJECTS = f"{either('zex_matcher_rejects_total')} + {either('zex_gateway_rejects_total')}"
REQUESTS = f"{rate('zex_gateway_forwarded_total')} + {either('zex_gateway_rejects_total')}"
REJECT_RATIO = f"({REJECTS}) / ({REQUESTS})"


def target(
    expr: str, legend: str, ref: str = "A", fmt: str = "time_series"
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return q.format(fmt).range()


def targets(*pairs: tuple[str, str]) -> list[prometheus.Dataquery]:
    """One target per (expr, legend), refIds A, B, C..."""
    return [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(pairs)]


# ------------------------------------------------------------------ panels


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def no_hiding() -> cb.HideSeriesConfig:
    return cb.HideSeriesConfig().legend(False).tooltip(False).viz(False)


def graph(
    title: str,
    description: str,
    qs: list,
    unit: str,
    *,
    w: int = 12,
    stack: bool = False,
    bars: bool = False,
    slo: float | None = None,
    log_y: bool = False,
) -> timeseries.Panel:
    """A time series panel; ``slo`` draws a dashed red line at that value."""
    scale = cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LINEAR)
    if log_y:
        scale = cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(10)
    legend = (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .show_legend(True)
        .placement(cm.LegendPlacement.BOTTOM)
        .calcs(["mean", "max", "lastNotNull"])
    )
    p = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(qs)
        .unit(unit)
        .span(w)
        .height(8)
        .legend(legend)
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(60 if bars else 10)
        .point_size(4)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .insert_nulls(False)
        .line_interpolation(cm.LineInterpolation.LINEAR)
        .gradient_mode(cm.GraphGradientMode.NONE)
        .bar_alignment(cm.BarAlignment.CENTER)
        .axis_placement(cm.AxisPlacement.AUTO)
        .axis_label("")
        .axis_color_mode(cm.AxisColorMode.TEXT)
        .axis_centered_zero(False)
        .axis_border_show(False)
        .hide_from(no_hiding())
        .scale_distribution(scale)
        .stacking(
            cb.StackingConfig()
            .group("A")
            .mode(cm.StackingMode.NORMAL if stack else cm.StackingMode.NONE)
        )
    )
    if not log_y:
        p = p.min(0)  # counts and rates start at 0; a log axis has no 0
    line = cm.GraphThresholdsStyleMode.OFF if slo is None else cm.GraphThresholdsStyleMode.DASHED
    steps = GREEN if slo is None else (*GREEN, (slo, "red"))
    style = cb.GraphThresholdsStyleConfig().mode(line)
    return p.thresholds(thresholds(*steps)).thresholds_style(style)


def latency(
    title: str,
    description: str,
    histogram: str,
    *,
    by: str = "",
    qs: tuple[float, ...] = (0.5, 0.99),
    unit: str = "s",
    slo: float | None = None,
    w: int = 12,
) -> timeseries.Panel:
    """Quantiles (per ``by``) of a histogram, from its buckets; seconds on a log axis."""
    inst = f" {{{{{by}}}}}" if by else ""
    pairs = [(quantile(q, histogram, by), f"p{q * 100:g}{inst}") for q in qs]
    return graph(title, description, targets(*pairs), unit, slo=slo, log_y=unit == "s", w=w)


def heat(
    title: str, description: str, histogram: str, *, unit: str = "s", w: int = 12
) -> heatmap.Panel:
    """The histogram's buckets over time (Grafana turns cumulative ``le`` buckets into cells)."""
    colors = (
        heatmap.HeatmapColorOptions()
        .mode(hm.HeatmapColorMode.SCHEME)
        .scheme("Oranges")
        .scale(hm.HeatmapColorScale.EXPONENTIAL)
        .exponent(0.5)
        .fill("dark-orange")
        .steps(64)
        .reverse(False)
    )
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(w)
        .height(8)
        .with_target(target(rate(f"{histogram}_bucket", "le"), "{{le}}", fmt="heatmap"))
        .calculate(False)
        .cell_gap(1)
        .show_value(cm.VisibilityMode.NEVER)
        .color(colors)
        .filter_values(heatmap.FilterValueRange().le(1e-9))
        .rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.LE))
        .y_axis(
            heatmap.YAxisConfig().unit(unit).axis_placement(cm.AxisPlacement.LEFT).reverse(False)
        )
        .cell_values(heatmap.CellValues().unit("ops").decimals(1))
        .show_legend()
        .mode(cm.TooltipDisplayMode.SINGLE)
        .show_y_histogram()
        .show_color_scale(True)
        .exemplars_color("rgba(255,0,255,0.7)")
        .selection_mode(hm.HeatmapSelectionMode.X)
        .scale_distribution(cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LINEAR))
        .hide_from(no_hiding())
        .unit(unit)
        .thresholds(thresholds(*GREEN))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )


def single(
    title: str,
    description: str,
    expr: str,
    legend: str,
    *,
    w: int = 4,
    steps: tuple = GREEN,
    mappings: dict[str, tuple[str, str]] | None = None,
) -> stat.Panel:
    """A stat: the last value of each series, coloured by ``steps``, named by ``mappings``."""
    p = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(w)
        .height(4)
        .with_target(target(expr, legend))
        .unit("short")
        .decimals(0)
        .thresholds(thresholds(*steps))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields(""))
        .graph_mode(cm.BigValueGraphMode.NONE if mappings else cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.BACKGROUND if mappings else cm.BigValueColorMode.VALUE)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .orientation(cm.VizOrientation.AUTO)
        .wide_layout(True)
        .show_percent_change(False)
        .percent_change_color_mode(cm.PercentChangeColorMode.STANDARD)
        .text(cb.VizTextDisplayOptions().title_size(12).value_size(24))
    )
    if mappings:
        p = p.mappings(
            [
                dm.ValueMap(
                    options={
                        k: dm.ValueMappingResult(text=t, color=c, index=i)
                        for i, (k, (t, c)) in enumerate(mappings.items())
                    }
                )
            ]
        )
    return p


def new(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with the zex defaults: 30 min, 10 s refresh, links to the other zex ones."""
    builtin = (
        db.AnnotationQuery()
        .name("Annotations & Alerts")
        .built_in(1)
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
    )
    others = (
        db.DashboardLink("zex")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(["zex"])
        .as_dropdown(True)
        .include_vars(False)
        .keep_time(True)
        .target_blank(False)
        .icon("external link")
        .tooltip("")
        .url("")
    )
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["zex"])
        .editable()
        .timezone("browser")
        .time("now-30m", "now")
        .refresh("10s")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .timepicker(db.TimePicker().refresh_intervals(["5s", "10s", "30s", "1m", "5m"]))
        .annotation(builtin)
        .variables([])
        .link(others)
    )


def panels(d: db.Dashboard, *items) -> None:
    """Add rows (a str is a row title) and panels in order; the SDK lays them out."""
    for item in items:
        if isinstance(item, str):
            d.with_row(db.Row(item))
        else:
            d.with_panel(item)


# ------------------------------------------------------------------ dashboards

PER = "instance"  # per-process series: a line per matcher, gateway or marketdata process


def overview() -> db.Dashboard:
    d = new(
        "zex-overview",
        "zex / Exchange overview",
        "Health, order flow, latency, market data and audit trail of the whole exchange.",
    )
    panels(
        d,
        "Health",
        single(
            "Nodes up",
            "Prometheus' scrape of each node: DOWN means its metrics port does not "
            "answer (process gone, or metrics_bind changed).",
            'up{job=~"zex-.*"}',
            "{{node}} {{instance}}",
            w=8,
            mappings=UP,
            steps=((None, "red"), (1, "green")),
        ),
        single(
            "Market data live",
            "1 once marketdata has caught up with the event stream and publishes.",
            "zex_marketdata_live",
            "{{instance}}",
            mappings=LIVE,
            steps=((None, "orange"), (1, "green")),
        ),
        single(
            "Sessions",
            "Logged-on client sessions, all gateways.",
            "sum(zex_gateway_sessions)",
            "sessions",
        ),
        single(
            "Matcher seq",
            "The last sequence number the matcher stamped.",
            "max(zex_matcher_seq)",
            "seq",
        ),
        single(
            "Market data lag",
            "Events the matcher sequenced that marketdata has not applied yet.",
            LAG,
            "events",
            steps=((None, "green"), (100, "orange"), (1000, "red")),
        ),
        "Order flow",
        graph(
            "Orders, trades and commands per second",
            "Orders accepted, trades, and every command the matcher sequenced.",
            targets(
                (rate("zex_matcher_orders_total"), "orders/s"),
                (rate("zex_matcher_trades_total"), "trades/s"),
                (rate("zex_matcher_commands_total"), "commands/s"),
            ),
            "ops",
            w=8,
        ),
        graph(
            "Rejects per second by reason",
            "Gateway rejects never reach the matcher (message, "
            "instrument, session, stateless risk); matcher rejects are stateful risk and book "
            "refusals. " + REJECT_HELP,
            targets(
                (rate("zex_matcher_rejects_total", "reason"), "matcher {{reason}}"),
                (rate("zex_gateway_rejects_total", "reason"), "gateway {{reason}}"),
            ),
            "ops",
            w=8,
            stack=True,
            bars=True,
        ),
        graph(
            "Reject ratio",
            "(matcher + gateway rejects) / (forwarded + gateway rejects). The "
            "dashed line is the ZexRejectRatioHigh threshold.",
            targets((REJECT_RATIO, "rejects / requests")),
            "percentunit",
            w=8,
            slo=REJECT_RATIO_MAX,
        ),
        "Latency",
        latency(
            "Order ack latency p50 / p99",
            "At the gateway: the worker's stamp to the "
            "matcher's answer leaving for the client. Dashed: the 1 ms p99 alert threshold.",
            "zex_gateway_order_ack_seconds",
            slo=ACK_SLO_S,
        ),
        heat(
            "Order ack latency",
            "Distribution of order ack latency at the gateways.",
            "zex_gateway_order_ack_seconds",
        ),
        latency(
            "Market data publish delay p50 / p99",
            "From a command entering zex (the "
            "gateway's stamp) to its updates leaving marketdata's PUB.",
            "zex_marketdata_publish_delay_seconds",
        ),
        latency(
            "Matcher time per command p50 / p99",
            "The matcher's loop turn per command, journal write included.",
            "zex_matcher_command_seconds",
        ),
        "Market data",
        graph(
            "Feed updates and snapshots per second",
            "Updates (and heartbeats) published on the "
            "feed; snapshots served to subscribers resynchronising.",
            targets(
                (rate("zex_marketdata_updates_published_total"), "updates/s"),
                (rate("zex_marketdata_snapshots_served_total"), "snapshots/s"),
            ),
            "ops",
        ),
        graph(
            "Gaps, gap fills and disconnects",
            "Event-stream gaps marketdata detected, replay "
            "batches it fetched to fill them, replay timeouts, and feed subscribers that left.",
            targets(
                (rate("zex_marketdata_event_gaps_total"), "gaps/s"),
                (rate("zex_marketdata_events_replayed_total"), "replay batches/s"),
                (rate("zex_marketdata_event_replay_timeouts_total"), "replay timeouts/s"),
                (rate("zex_marketdata_subscribers_disconnected_total"), "disconnects/s"),
            ),
            "ops",
        ),
        "Audit trail",
        single(
            "Audit trail lag",
            "Events the matcher sequenced that the logger has not written yet.",
            AUDIT_LAG,
            "events",
            w=4,
            steps=((None, "green"), (100, "orange"), (1000, "red")),
        ),
        graph(
            "Audit trail writes per second",
            "Event batches and node audit records the logger "
            "wrote; audit records the gateways pushed, and dropped because the logger's queue "
            "was full (the gateway never waits for it).",
            targets(
                (rate("zex_logger_event_batches_total"), "event batches/s"),
                (rate("zex_logger_audit_records_total"), "audit records/s"),
                (rate("zex_gateway_audit_records_total"), "pushed by gateways/s"),
                (rate("zex_gateway_audit_dropped_total"), "dropped by gateways/s"),
            ),
            "ops",
            w=10,
        ),
        latency(
            "Logger commit p50 / p99",
            "One loop turn's write and commit (fsync by policy).",
            "zex_logger_commit_seconds",
            w=10,
        ),
    )
    return d


def matcher() -> db.Dashboard:
    d = new(
        "zex-matcher",
        "zex / Matcher",
        "The sequencer: throughput, time per command, journal, "
        "books, rejects, held reports and the replay service.",
    )
    panels(
        d,
        "Throughput",
        graph(
            "Commands, orders and trades per second",
            "Per matcher process.",
            targets(
                (rate("zex_matcher_commands_total", PER), "commands/s {{instance}}"),
                (rate("zex_matcher_orders_total", PER), "orders/s {{instance}}"),
                (rate("zex_matcher_trades_total", PER), "trades/s {{instance}}"),
            ),
            "ops",
        ),
        latency(
            "Batch size p50 / p99",
            "Commands per loop turn (smart batching): near 1 when "
            "idle, growing with backlog. A rising p99 means commands queue in front of the "
            "matcher.",
            "zex_matcher_batch_commands",
            by=PER,
            unit="short",
        ),
        "Latency",
        latency(
            "Time per command p50 / p99 / p99.9",
            "The loop turn, from its first read to the acks sent, journal write included.",
            "zex_matcher_command_seconds",
            by=PER,
            qs=(0.5, 0.99, 0.999),
        ),
        heat(
            "Time per command",
            "Distribution of the matcher's time per command.",
            "zex_matcher_command_seconds",
        ),
        latency(
            "Journal write p50 / p99",
            "One group commit (write, and fsync by policy).",
            "zex_matcher_journal_write_seconds",
            by=PER,
        ),
        heat(
            "Journal write",
            "Distribution of group-commit time.",
            "zex_matcher_journal_write_seconds",
        ),
        heat(
            "Batch size",
            "Distribution of commands per loop turn.",
            "zex_matcher_batch_commands",
            unit="short",
            w=24,
        ),
        "Books",
        graph(
            "Open orders by symbol",
            "Orders resting in the books.",
            targets(("sum by (symbol) (zex_matcher_open_orders)", "{{symbol}}")),
            "short",
        ),
        graph(
            "Book levels by symbol",
            "Price levels, both sides.",
            targets(("sum by (symbol) (zex_matcher_book_levels)", "{{symbol}}")),
            "short",
        ),
        "Rejects and bad input",
        graph(
            "Matcher rejects per second by reason",
            "Stateful risk and book refusals. " + REJECT_HELP,
            targets((rate("zex_matcher_rejects_total", "reason"), "{{reason}}")),
            "ops",
            stack=True,
            bars=True,
        ),
        graph(
            "Undecodable frames from gateways",
            "Frames that did not decode or named another "
            "gateway: a version mismatch or a bug, never client input.",
            targets((rate("zex_matcher_bad_commands_total", PER), "{{instance}}")),
            "ops",
        ),
        "Reports and replay",
        graph(
            "Report frames held and dropped",
            "Held: frames waiting for a reconnecting gateway. "
            "Dropped: given up on (gateway gone, full, or away too long).",
            targets(
                ("sum by (instance) (zex_matcher_held_report_frames)", "held {{instance}}"),
                (rate("zex_matcher_dropped_reports_total", PER), "dropped/s {{instance}}"),
            ),
            "short",
        ),
        graph(
            "Replay service",
            "Gap-fill requests answered, event batches sent, and answers "
            "dropped because the consumer was full or gone.",
            targets(
                (rate("zex_matcher_replay_requests_total", PER), "requests/s {{instance}}"),
                (rate("zex_matcher_replay_batches_total", PER), "batches/s {{instance}}"),
                (rate("zex_matcher_replay_dropped_answers_total", PER), "dropped/s {{instance}}"),
            ),
            "ops",
        ),
    )
    return d


def gateway() -> db.Dashboard:
    d = new(
        "zex-gateway",
        "zex / Gateway",
        "Client-facing order entry: ack latency, forwarded "
        "flow, rejects, sessions and report delivery, per gateway process.",
    )
    panels(
        d,
        "Latency",
        latency(
            "Order ack latency p50 / p90 / p99",
            "The worker's stamp to the matcher's answer "
            "leaving for the client, per gateway. Dashed: the 1 ms p99 alert threshold.",
            "zex_gateway_order_ack_seconds",
            by=PER,
            qs=(0.5, 0.9, 0.99),
            slo=ACK_SLO_S,
        ),
        heat(
            "Order ack latency",
            "Distribution of order ack latency, all gateways.",
            "zex_gateway_order_ack_seconds",
        ),
        "Flow",
        graph(
            "Forwarded per second",
            "Commands and queries sent on to the matcher.",
            targets((rate("zex_gateway_forwarded_total", PER), "{{instance}}")),
            "ops",
        ),
        graph(
            "Gateway rejects per second by reason",
            "Refused at the gateway, never sequenced. " + REJECT_HELP,
            targets((rate("zex_gateway_rejects_total", "reason"), "{{reason}}")),
            "ops",
            stack=True,
            bars=True,
        ),
        "Sessions",
        graph(
            "Sessions",
            "Logged-on sessions per gateway.",
            targets(("sum by (instance) (zex_gateway_sessions)", "{{instance}}")),
            "short",
            w=8,
        ),
        graph(
            "Logons and heartbeat drops per second",
            "Logons accepted (reconnecting clients "
            "show up here) and sessions dropped for missed heartbeats.",
            targets(
                (rate("zex_gateway_logons_total", PER), "logons/s {{instance}}"),
                (rate("zex_gateway_heartbeat_drops_total", PER), "heartbeat drops/s {{instance}}"),
            ),
            "ops",
            w=8,
        ),
        graph(
            "Report delivery problems per second",
            "Dropped: a client could not take a report "
            "(gone or not reading). Orphan: answers whose session had ended. Bad: undecodable "
            "frames from the matcher.",
            targets(
                (rate("zex_gateway_dropped_reports_total", PER), "dropped {{instance}}"),
                (rate("zex_gateway_orphan_reports_total", PER), "orphan {{instance}}"),
                (rate("zex_gateway_bad_reports_total", PER), "bad {{instance}}"),
            ),
            "ops",
            w=8,
        ),
        "Audit trail",
        graph(
            "Audit records pushed and dropped per second",
            "Records (logons, logouts, dropped "
            "sessions, rejects, operator requests) pushed to the logger, and dropped because "
            "its queue was full: the logger is slow or down, trading is not held up.",
            targets(
                (rate("zex_gateway_audit_records_total", PER), "pushed {{instance}}"),
                (rate("zex_gateway_audit_dropped_total", PER), "dropped {{instance}}"),
            ),
            "ops",
            w=24,
        ),
    )
    return d


def marketdata() -> db.Dashboard:
    d = new(
        "zex-marketdata",
        "zex / Market data",
        "The public feed: publish delay, updates, "
        "snapshots, and how marketdata keeps up with the matcher's event stream.",
    )
    panels(
        d,
        "State",
        single(
            "Live",
            "1 once caught up with the event stream and publishing.",
            "zex_marketdata_live",
            "{{instance}}",
            w=6,
            mappings=LIVE,
            steps=((None, "orange"), (1, "green")),
        ),
        single(
            "Lag behind the matcher",
            "Events sequenced but not yet applied here.",
            LAG,
            "events",
            w=6,
            steps=((None, "green"), (100, "orange"), (1000, "red")),
        ),
        single(
            "Events lost",
            "Matcher seqs the replay service could not provide: this node's "
            "books are wrong until it restarts. Anything but 0 is an incident.",
            "sum(zex_marketdata_events_lost_total)",
            "lost",
            w=6,
            steps=((None, "green"), (1, "red")),
        ),
        single(
            "Subscribers disconnected",
            "Feed subscribers that went away since the node started.",
            "sum(zex_marketdata_subscribers_disconnected_total)",
            "disconnected",
            w=6,
        ),
        "Latency",
        latency(
            "Publish delay p50 / p99",
            "A command entering zex (the gateway's stamp) to its updates leaving this node's PUB.",
            "zex_marketdata_publish_delay_seconds",
            by=PER,
        ),
        heat(
            "Publish delay",
            "Distribution of the publish delay.",
            "zex_marketdata_publish_delay_seconds",
        ),
        "Feed",
        graph(
            "Updates published per second",
            "Trades, BBO, L2/L3 deltas and heartbeats sent.",
            targets((rate("zex_marketdata_updates_published_total", PER), "{{instance}}")),
            "ops",
        ),
        graph(
            "Snapshots per second",
            "Snapshots served (late or resynchronising subscribers) "
            "and snapshot requests refused as malformed.",
            targets(
                (rate("zex_marketdata_snapshots_served_total", PER), "served {{instance}}"),
                (rate("zex_marketdata_bad_requests_total", PER), "bad requests {{instance}}"),
            ),
            "ops",
        ),
        "Event stream",
        graph(
            "Gaps and gap fills per second",
            "Gaps detected in the matcher's event stream, "
            "replay batches fetched to fill them, replay requests that timed out, seqs lost.",
            targets(
                (rate("zex_marketdata_event_gaps_total", PER), "gaps {{instance}}"),
                (rate("zex_marketdata_events_replayed_total", PER), "replay batches {{instance}}"),
                (rate("zex_marketdata_event_replay_timeouts_total", PER), "timeouts {{instance}}"),
                (rate("zex_marketdata_events_lost_total", PER), "lost {{instance}}"),
            ),
            "ops",
        ),
        graph(
            "Subscribers disconnected per second",
            "A PUB drops silently for a subscriber past "
            "its HWM; what the node sees is the subscriber going away.",
            targets((rate("zex_marketdata_subscribers_disconnected_total", PER), "{{instance}}")),
            "ops",
        ),
        graph(
            "Sequence: matcher vs marketdata",
            "The matcher's last seq and the last one applied here; the lines should overlap.",
            targets(
                ("max(zex_matcher_seq)", "matcher"),
                ("max by (instance) (zex_marketdata_matcher_seq)", "marketdata {{instance}}"),
            ),
            "short",
            w=24,
        ),
    )
    return d


DASHBOARDS = (overview, matcher, gateway, marketdata)


def render() -> dict[str, str]:
    """{file name: JSON text} for every dashboard, panel ids numbered in order."""
    out = {}
    for make in DASHBOARDS:
        built = make().build()
        for i, panel in enumerate(built.panels or [], start=1):
            panel.id_val = i
        doc = json.loads(json.dumps(built, cls=JSONEncoder))
        out[f"{doc['uid']}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="only compare with grafana/*.json; exit 1 if any is stale",
    )
    args = ap.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        OUT.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run python dashboards/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
