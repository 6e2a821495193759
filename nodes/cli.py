"""The ``zex`` command: start nodes, or the whole exchange on this host.

    zex run [--config FILE]          everything on this host, with a demo market
    zex matcher [--config FILE]      the matcher node alone (any host)
    zex gateway [--config FILE]      one gateway node (any host; --name, --bind for more)
    zex marketdata [--config FILE]   the market-data node (any host)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import zmq

from . import config as config_mod


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


def _serve(start, stop, wait) -> int:
    """Run until SIGINT/SIGTERM: the first drains and stops cleanly, a second forces exit."""
    def second(signum, frame):  # pragma: no cover - interactive
        print("\nzex: forced exit", file=sys.stderr)
        raise SystemExit(130)

    def first(signum, frame):
        signal.signal(signal.SIGINT, second)
        signal.signal(signal.SIGTERM, second)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    signal.signal(signal.SIGTERM, first)
    start()
    try:
        wait()
    except KeyboardInterrupt:
        print("\nzex: stopping (Ctrl+C again to force)", file=sys.stderr)
    finally:
        stop()
    return 0


def cmd_matcher(args: argparse.Namespace) -> int:
    from .matcher.node import MatcherNode

    cfg = _load(args)
    node = MatcherNode(cfg)

    def start():
        node.start()
        m = cfg.matcher
        print(f"zex matcher: seq {node.engine.seq}, data in {m.data_dir}", flush=True)
        print(f"  commands (gateways' DEALER) on {m.bind}", flush=True)
        print(f"  replay service (DEALER) on {m.replay_bind}", flush=True)
        if node.exporter.url:
            print(f"  metrics (Prometheus) on {node.exporter.url}", flush=True)
        print(f"  events (SUB, topic 'ev') on {m.events_bind}  (Ctrl+C to quit)", flush=True)

    return _serve(start, node.stop, node.join)


def cmd_gateway(args: argparse.Namespace) -> int:
    from .gateway.node import GatewayNode

    cfg = _load(args)
    node = GatewayNode(cfg)

    def start():
        node.start()
        g = cfg.gateway
        print(f"zex gateway {g.name}: {g.workers} workers, matcher at {node.matcher_endpoint}", flush=True)
        if node.exporter.url:
            print(f"  metrics (Prometheus) on {node.exporter.url}", flush=True)
        print(f"  clients (DEALER, protocol/SPEC.md) on {g.bind}  (Ctrl+C to quit)", flush=True)

    return _serve(start, node.stop, node.join)


def cmd_marketdata(args: argparse.Namespace) -> int:
    from .marketdata.node import MarketDataNode

    cfg = _load(args)
    node = MarketDataNode(cfg)

    def start():
        node.start()
        d = cfg.marketdata
        print(f"zex marketdata: events from {node.events_endpoint}, replay from {node.replay_endpoint}", flush=True)
        print(f"  feed (SUB, topics md.<SYMBOL>.<channel>) on {d.feed_bind}", flush=True)
        if node.exporter.url:
            print(f"  metrics (Prometheus) on {node.exporter.url}", flush=True)
        print(f"  snapshots (DEALER, protocol/SPEC.md section 12) on {d.snapshot_bind}  (Ctrl+C to quit)", flush=True)

    return _serve(start, node.stop, node.join)


def cmd_run(args: argparse.Namespace) -> int:
    from .demo import DemoMarket
    from .gateway.node import GatewayNode
    from .marketdata.node import MarketDataNode
    from .matcher.node import MatcherNode

    cfg = _load(args)
    ctx = zmq.Context.instance()
    matcher = MatcherNode(cfg, ctx)
    gateway = GatewayNode(cfg, ctx)
    marketdata = MarketDataNode(cfg, ctx)
    demo = DemoMarket(cfg, ctx, cfg.gateway.bind, echo=(lambda s: None) if args.quiet else print)

    def start():
        matcher.start()
        marketdata.start()
        gateway.start()
        demo.start()
        m, g, d = cfg.matcher, cfg.gateway, cfg.marketdata
        print(f"zex is running (matcher at seq {matcher.engine.seq}, data in {m.data_dir})")
        print(f"  clients connect a DEALER to the gateway: {g.bind}   (protocol/SPEC.md)")
        print(f"  market data (SUB, topics md.<SYMBOL>.):  {d.feed_bind}   snapshots (DEALER): {d.snapshot_bind}")
        print(f"  event stream (SUB, topic 'ev'):           {m.events_bind}   replay: {m.replay_bind}")
        print(f"  matcher, for more gateways:               {m.bind}   (zex gateway --name gw2 --bind ...)")
        urls = [f"{n} {x.exporter.url}" for n, x in (("matcher", matcher), ("gateway", gateway),
                                                    ("marketdata", marketdata)) if x.exporter.url]
        if urls:
            print(f"  metrics (Prometheus /metrics):           {', '.join(urls)}")
        print(f"  instruments: {', '.join(i.symbol for i in cfg.instruments)}; "
              f"accounts: {', '.join(a.id for a in cfg.accounts)} (demo credential = the name)")
        print(f"  try:  .venv/bin/zex order buy 5 XYZ {_example_price(cfg)} --account alice --credential alice")
        print("        .venv/bin/zex book XYZ")
        print("  demo market maker 'maker' and taker 'taker' are trading; Ctrl+C to quit", flush=True)

    def stop():
        demo.stop()
        gateway.stop()
        marketdata.stop()
        matcher.stop()
        print(f"zex stopped at seq {matcher.engine.seq}; {demo.trades} demo trades", flush=True)

    return _serve(start, stop, matcher.join)


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
    p.add_argument("--bind", dest="gw_bind", help="override gateway.bind, e.g. tcp://127.0.0.1:7110")
    p.add_argument("--workers", dest="gw_workers", type=int, help="override gateway.workers")
    p.add_argument("--metrics", dest="gw_metrics_bind",
                   help='override gateway.metrics_bind (host:port, unique per gateway; "" = off)')
    p.set_defaults(func=cmd_gateway)
    p = sub.add_parser("marketdata", help="start the market-data node")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.set_defaults(func=cmd_marketdata)
    from . import top, trade

    trade.add_parsers(sub)
    top.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
