"""The ``zex`` command: start nodes, or the whole exchange on this host.

zex run [--config FILE]          everything on this host, with a demo market
zex matcher [--config FILE]      the matcher node alone (any host)
zex gateway [--config FILE]      one gateway node (any host; --name, --bind for more)
zex marketdata [--config FILE]   the market-data node (any host)
zex logger [--config FILE]       the audit logger node (any host)
zex audit [verify] ...           query or verify the audit trail
zex replay JOURNAL_DIR           re-run the journal and diff it against the audit trail
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from zex.protocol.errors import ZexError

from ..runtime import config as config_mod

if TYPE_CHECKING:
    from ..matcher.node import MatcherNode  # imported when a command needs it: start-up stays fast

log = logging.getLogger("zex")


def _load(args: argparse.Namespace) -> config_mod.Config:
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        sys.exit(f"zex: {exc}")
    if getattr(args, "data_dir", None):
        cfg.matcher.data_dir = args.data_dir
    for key in ("name", "bind", "workers", "metrics_bind"):
        value = getattr(args, f"gw_{key}", None)
        if value is not None:
            setattr(cfg.gateway, key, value)
    return cfg


WATCH_S = 0.1  # how often the main thread looks for a dead node; 0.05..0.5 is reasonable

# Where an OSError with no message of its own happened: the innermost zex module in its
# traceback names what was being written.
_WRITING = {
    "journal.py": "the journal",
    "eventlog.py": "the event log",
    "snapshot.py": "a snapshot",
    "recovery.py": "recovery",
    "segments.py": "the audit trail",
}
_DISK = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_ACCESS = (errno.EACCES, errno.EPERM, errno.EROFS)
_NOT_DIR = (errno.ENOTDIR, errno.EEXIST, errno.EISDIR)
# What a restart does for a node whose state is on disk.
_RESTART = {
    "matcher": "the journal recovers every acknowledged command",
    "logger": "it fills the gap in the trail from the matcher's replay service",
}


@dataclass
class Part:
    """One thing ``_serve`` starts, watches and stops: a node (NodeThread) or the demo."""

    name: str  # as the user knows it: "matcher", "gateway gw1"
    node: Any  # start() and stop(); a NodeThread also has ended and error
    section: Any = None  # its config section: data_dir and the *bind endpoints name what to check


class Ended(Exception):
    """A node's loop ended on its own: the process must stop and say why."""

    def __init__(self, part: Part, name: str, error: BaseException | None) -> None:
        super().__init__(name)
        self.part, self.name, self.error = part, name, error


class _Signals:
    """SIGINT and SIGTERM while ``_serve`` runs.

    The first interrupts a start or the watch (KeyboardInterrupt), so that ``_serve`` stops
    what started. Once the process is stopping (a node failed: its one line is still to come)
    it interrupts nothing: a stop cut short would leave nodes running and lose that line. A
    second signal forces exit (130). The handler writes with os.write: a print could land in
    the middle of the main thread's own print to stderr (a reentrant call, RuntimeError).
    """

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts  # those started, or starting: a node that ended means a failure
        self.stopping = False
        self.signalled = False
        self._before: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._before[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.signalled:
            os.write(2, b"\nzex: forced exit\n")
            raise SystemExit(130)
        self.signalled = True
        if self.stopping or _ended(self.parts) is not None:
            # Already on its way down (a node that ended is about to be reported): go on.
            os.write(2, b"\nzex: stopping (Ctrl+C again to force)\n")
            return
        self.stopping = True
        raise KeyboardInterrupt


def _serve(
    parts: list[Part], banner: Callable[[], None], after: Callable[[], None] | None = None
) -> int:
    """Start ``parts`` in order and serve until SIGINT/SIGTERM or a node dies; stop them in reverse.

    The first signal drains and stops cleanly (exit 0), also while a node is still starting
    (a matcher recovering its journal): it is stopped too, and ``after`` runs. A second signal
    forces exit (130). A node whose loop ends on its own (fail-stop: a full disk, a broken
    journal) stops the others and the process, with one line saying what failed and what to
    check (exit 1), so a supervisor restarts it; so does a node that cannot start. A signal
    during that stop does not cut it short, and the line is still said.
    """
    started: list[Part] = []
    signals = _Signals(started)
    signals.install()
    failure = ""
    try:
        try:
            failure = _start_and_watch(parts, started, banner, signals)
        finally:
            signals.stopping = True
            try:
                _stop(started)
            finally:
                if failure:  # said also when a second signal forced the exit
                    print(failure, file=sys.stderr, flush=True)
        if failure:
            return 1
        if after is not None:
            after()
        return 0
    finally:
        signals.restore()


def _start_and_watch(
    parts: list[Part], started: list[Part], banner: Callable[[], None], signals: _Signals
) -> str:
    """Start ``parts`` into ``started``, print the banner, watch: return the failure ("" for a
    signal)."""
    serving = False
    try:
        for part in parts:
            # Listed before its start(): a signal during it leaves the node half started (its
            # thread still recovering a journal, its /metrics up), and its stop() undoes that.
            started.append(part)
            try:
                part.node.start()
            except Exception as exc:
                signals.stopping = True
                started.pop()  # a start() that failed undid itself: nothing of it to stop
                return _explain(part, part.name, exc, starting=True)
        serving = True
        banner()
        _watch(started)
    except KeyboardInterrupt:
        end = _ended(started)  # a node that ended as the signal came: that is the news
        if end is not None:
            part, name, error = end
            return _explain(part, name, error, starting=not serving and part is started[-1])
        print("\nzex: stopping (Ctrl+C again to force)", file=sys.stderr, flush=True)
    except Ended as end:
        signals.stopping = True
        return _explain(end.part, end.name, end.error, starting=False)
    return ""


def _ended(parts: list[Part]) -> tuple[Part, str, BaseException | None] | None:
    """The first of ``parts`` whose loop ended on its own: the part, the loop's name, its error."""
    for part in parts:
        # The matcher's replay service is a loop of its own, started and stopped with it.
        for name, loop in (
            (part.name, part.node),
            (f"{part.name}'s replay service", getattr(part.node, "replay", None)),
        ):
            if loop is not None and getattr(loop, "ended", False):
                return part, name, loop.error
    return None


def _watch(parts: list[Part]) -> None:
    """Block until a node's loop ends on its own (raise Ended) or a signal interrupts."""
    while (end := _ended(parts)) is None:
        time.sleep(WATCH_S)
    raise Ended(*end)


def _stop(parts: list[Part]) -> None:
    """Stop what started, last first; one that fails to stop does not keep the others running."""
    for part in reversed(parts):
        try:
            part.node.stop()
        except Exception as exc:
            log.error("%s did not stop cleanly: %s", part.name, exc)
            log.debug("%s: the error's traceback", part.name, exc_info=True)


def _explain(part: Part, name: str, exc: BaseException | None, starting: bool) -> str:
    """One line for the operator: what failed, and what to check before starting it again."""
    head = f"zex: {name} {'could not start' if starting else 'stopped'}: "
    again = "then start it again" if starting else "then restart it"
    if part.name in _RESTART:
        again += f": {_RESTART[part.name]}"
    data_dir = getattr(part.section, "data_dir", "")
    if exc is None:
        return head + f"its loop ended without an error; see the log above, {again}"
    if isinstance(exc, ZexError) or _worded(exc):
        return head + str(exc)  # zex's own errors say what to check (event log, fsync, metrics)
    if isinstance(exc, zmq.ZMQError):
        fields = vars(part.section) if part.section is not None else {}
        binds = ", ".join(v for k, v in fields.items() if k.endswith("bind") and v)
        which = "" if "addr=" in str(exc) else f" (one of {binds})"  # pyzmq names it, when it can
        if exc.errno == errno.EADDRINUSE:
            return head + f"{exc}{which}: stop what holds the port or choose another in the config"
        return head + f"{exc}{which}: check the node's endpoints in the config"
    if isinstance(exc, OSError):
        where = f" in {data_dir}" if data_dir and not exc.filename else ""  # a path is named once
        files = [Path(f.filename).name for f in traceback.extract_tb(exc.__traceback__)]
        writing = next((_WRITING[f] for f in reversed(files) if f in _WRITING), "")
        what = f"{exc} writing {writing}{where}" if writing else f"{exc}{where}"
        place = data_dir or "the disk"
        if exc.errno in _DISK:
            check = f"free space on the disk under {place} and the file-size limit (ulimit -f)"
        elif exc.errno in _ACCESS:
            check = f"that {place} is writable by this user"
        elif exc.errno in _NOT_DIR and data_dir:
            check = (
                f"that data_dir ({data_dir}) is a directory or can be made one "
                "(config or --data-dir)"
            )
        else:
            check = f"the disk and {place}"
        return head + f"{what}; check {check}, {again}"
    return head + f"{type(exc).__name__}: {exc}; zex -v logs the traceback; {again}"


def _worded(exc: BaseException) -> bool:
    """True for an OSError that zex raised with its own words (what failed, what to do): no
    errno, or a text other than the system's for its errno; those are shown as they are."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno is None or exc.strerror != os.strerror(exc.errno)


def _serve_node(part: Part, banner: Callable[[], list[str]]) -> int:
    """Start one node, print ``banner()``'s lines (its metrics URL before the last), serve until Ctrl+C."""

    def show():
        lines = banner()
        if part.node.exporter.url:
            lines.insert(-1, f"  metrics (Prometheus) on {part.node.exporter.url}")
        lines[-1] += "  (Ctrl+C to quit)"
        print("\n".join(lines), flush=True)

    return _serve([part], show)


def _seq(node: MatcherNode) -> int:
    """The matcher's seq; 0 before its engine is recovered (a stop while it was starting)."""
    return node.engine.seq if node.engine is not None else 0


def cmd_matcher(args: argparse.Namespace) -> int:
    from ..matcher import build_kind
    from ..matcher.node import MatcherNode

    cfg = _load(args)
    node, m = MatcherNode(cfg), cfg.matcher
    return _serve_node(
        Part("matcher", node, m),
        lambda: [
            f"zex matcher ({build_kind()} build): seq {_seq(node)}, data in {m.data_dir}",
            f"  commands (gateways' DEALER) on {m.bind}",
            f"  for zex nodes only (every account's orders and fills): "
            f"event stream on {m.events_bind}, replay service on {m.replay_bind}",
        ],
    )


def cmd_gateway(args: argparse.Namespace) -> int:
    from ..gateway.node import GatewayNode

    cfg = _load(args)
    node, g = GatewayNode(cfg), cfg.gateway
    return _serve_node(
        Part(f"gateway {g.name}", node, g),
        lambda: [
            f"zex gateway {g.name}: {f'{g.workers} workers' if g.workers else 'no worker threads'}, matcher at {node.matcher_endpoint}",
            f"  clients (DEALER, protocol/SPEC.md) on {g.bind}",
        ],
    )


def cmd_marketdata(args: argparse.Namespace) -> int:
    from ..marketdata.node import MarketDataNode

    cfg = _load(args)
    node, d = MarketDataNode(cfg), cfg.marketdata
    return _serve_node(
        Part("marketdata", node, d),
        lambda: [
            f"zex marketdata: events from {node.events_endpoint}, replay from {node.replay_endpoint}",
            f"  feed (SUB, topics md.<SYMBOL>.<channel>) on {d.feed_bind}",
            f"  snapshots (DEALER, protocol/SPEC.md section 12) on {d.snapshot_bind}",
        ],
    )


def cmd_logger(args: argparse.Namespace) -> int:
    from ..logger.node import LoggerNode

    cfg = _load(args)
    if getattr(args, "logger_dir", None):
        cfg.logger.data_dir = args.logger_dir
    node, lg = LoggerNode(cfg), cfg.logger
    return _serve_node(
        Part("logger", node, lg),
        lambda: [
            f"zex logger: trail in {lg.data_dir} (matcher seq {node.started_after} on disk), "
            f"events from {node.events_endpoint}",
            f"  audit records (PUSH) on {lg.bind}",
        ],
    )


def cmd_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..logger import query as q

    cfg = _load(args)
    directory = Path(args.trail or cfg.logger.data_dir)
    if not directory.is_dir():
        sys.exit(
            f"zex audit: no audit trail at {directory}; pass --trail DIR (the logger's data_dir)"
        )
    if args.what == "verify":
        rep = q.verify(directory)
        print("\n".join(rep.lines()))
        return 0 if rep.ok else 1
    f = q.Filter(
        account=args.account or "",
        order_id=args.order_id or 0,
        cl_ord_id=args.cl_ord_id or "",
        symbol=args.symbol or "",
        since=_when(args.since),
        until=_when(args.until),
    )
    inst = {i.symbol: i for i in cfg.instruments}
    try:
        if f.order_id:  # the whole life of the order, gateway refusals of its ids included
            window = q.Filter(since=f.since, until=f.until)
            rows = [r for r in q.order_life(directory, f.order_id) if window.wants(r)]
        else:
            rows = list(q.query(directory, f))
    except q.Damaged as exc:
        sys.exit(f"zex audit: {exc}; run `zex audit verify` for a full report")
    if args.json:
        for r in rows:
            print(q.as_json(r, inst))
    else:
        print(q.as_table(rows, inst) if rows else "(nothing matches)")
    return 0


def _when(text: str | None) -> int:
    """ISO 8601 (UTC unless it says otherwise) or ns since the epoch -> ns; None -> 0."""
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        sys.exit(
            f"zex audit: time {text!r} is neither ISO 8601 (2026-12-01T09:30:00) nor ns since the epoch"
        )
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


def cmd_replay(args: argparse.Namespace) -> int:
    from ..logger.replay import cmd_replay as run

    return run(args)


def cmd_run(args: argparse.Namespace) -> int:
    from ..gateway.node import GatewayNode
    from ..logger.node import LoggerNode
    from ..marketdata.node import MarketDataNode
    from ..matcher import build_kind
    from ..matcher.node import MatcherNode
    from .demo import DemoMarket

    cfg = _load(args)
    if getattr(args, "data_dir", None):  # one --data-dir holds the logger's trail too
        from pathlib import Path

        cfg.logger.data_dir = str(Path(args.data_dir) / "logger")
    ctx: zmq.Context = zmq.Context.instance()
    matcher = MatcherNode(cfg, ctx)
    logger = LoggerNode(cfg, ctx)
    gateway = GatewayNode(cfg, ctx)
    marketdata = MarketDataNode(cfg, ctx)
    demo = DemoMarket(cfg, ctx, cfg.gateway.bind, echo=(lambda s: None) if args.quiet else print)

    m, g, d = cfg.matcher, cfg.gateway, cfg.marketdata
    parts = [
        Part("matcher", matcher, m),
        Part("logger", logger, cfg.logger),
        Part("marketdata", marketdata, d),
        Part(f"gateway {g.name}", gateway, g),
        Part("demo market", demo),
    ]

    def banner():
        print(
            f"zex is running (matcher at seq {_seq(matcher)}, {build_kind()} build, "
            f"data in {m.data_dir})"
        )
        print(f"  clients connect a DEALER to the gateway: {g.bind}   (protocol/SPEC.md)")
        print(
            f"  market data (SUB, topics md.<SYMBOL>.):  {d.feed_bind}   snapshots (DEALER): {d.snapshot_bind}"
        )
        print(
            f"  matcher, for more gateways:               {m.bind}   (zex gateway --name gw2 --bind ...)"
        )
        # Every account's orders and fills travel on the event stream: it is for the exchange's
        # own nodes (marketdata, logger), never a client's feed, so it is named as internal.
        print(f"  internal, zex nodes only: event stream {m.events_bind}, replay {m.replay_bind}")
        print(
            f"  audit trail:                              {cfg.logger.data_dir}   (zex audit --account alice)"
        )
        urls = [
            f"{n} {x.exporter.url}"
            for n, x in (
                ("matcher", matcher),
                ("gateway", gateway),
                ("marketdata", marketdata),
                ("logger", logger),
            )
            if x.exporter.url
        ]
        if urls:
            print(f"  metrics (Prometheus /metrics):           {', '.join(urls)}")
        print(
            f"  instruments: {', '.join(i.symbol for i in cfg.instruments)}; "
            f"accounts: {', '.join(a.id for a in cfg.accounts)} (demo credential = the name)"
        )
        print(
            f"  try:  .venv/bin/zex order buy 5 XYZ {_example_price(cfg)} --account alice --credential alice"
        )
        print("        .venv/bin/zex book XYZ")
        print(
            "  demo market maker 'maker' and taker 'taker' are trading; Ctrl+C to quit", flush=True
        )

    def stopped():
        # A signal may have come while the matcher was starting: if its recovery never finished,
        # there is no seq to tell (not 0: the journal holds what it holds).
        at = f"at seq {_seq(matcher)}" if matcher.engine is not None else "before it recovered"
        print(f"zex stopped {at}; {demo.trades} demo trades", flush=True)

    return _serve(parts, banner, stopped)


def _example_price(cfg: config_mod.Config) -> str:
    inst = cfg.instrument("XYZ") or cfg.instruments[0]
    return inst.ticks_to_price(inst.ref_ticks or inst.min_ticks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zex", description="zex, a brokerless exchange on ZeroMQ")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="start the whole exchange on this host with a demo market")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--data-dir", help="override matcher.data_dir")
    p.add_argument("--quiet", action="store_true", help="do not print the demo's trades")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("matcher", help="start the matcher node")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--data-dir", help="override matcher.data_dir")
    p.set_defaults(func=cmd_matcher)
    p = sub.add_parser("gateway", help="start a gateway node")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--name", dest="gw_name", help="override gateway.name (unique per gateway)")
    p.add_argument(
        "--bind", dest="gw_bind", help="override gateway.bind, e.g. tcp://127.0.0.1:7110"
    )
    p.add_argument("--workers", dest="gw_workers", type=int, help="override gateway.workers")
    p.add_argument(
        "--metrics",
        dest="gw_metrics_bind",
        help='override gateway.metrics_bind (host:port, unique per gateway; "" = off)',
    )
    p.set_defaults(func=cmd_gateway)
    p = sub.add_parser("logger", help="start the audit logger node")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--data-dir", dest="logger_dir", help="override logger.data_dir")
    p.set_defaults(func=cmd_logger)
    p = sub.add_parser(
        "audit", help="query the audit trail (by account, order, symbol, time), or verify it"
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=["query", "verify"],
        default="query",
        help="query (default) or verify: checksums and sequence continuity",
    )
    p.add_argument("--config", help="TOML config file (for logger.data_dir and the instruments)")
    p.add_argument("--trail", help="the audit trail directory (default: logger.data_dir)")
    p.add_argument("--account")
    p.add_argument("--order-id", type=int, help="the whole life of one order")
    p.add_argument("--cl-ord-id")
    p.add_argument("--symbol")
    p.add_argument("--since", help="ISO 8601 time (UTC) or ns since the epoch, inclusive")
    p.add_argument("--until", help="ISO 8601 time (UTC) or ns since the epoch, exclusive")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.set_defaults(func=cmd_audit)
    p = sub.add_parser(
        "replay", help="re-run a journal through a fresh engine and diff it against the audit trail"
    )
    p.add_argument("journal", help="the matcher's data directory (its journal-*.zj segments)")
    p.add_argument("--trail", help="the audit trail directory (default: logger.data_dir)")
    p.add_argument("--config", help="the matcher's TOML config (instruments, digest_every)")
    p.add_argument("--show", type=int, default=20, help="differences to print (default 20)")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("marketdata", help="start the market-data node")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.set_defaults(func=cmd_marketdata)
    from . import top, trade

    trade.add_parsers(sub)
    top.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
