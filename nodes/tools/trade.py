"""``zex`` subcommands that trade from a terminal, through a gateway, with the client library.

    zex order buy 10 XYZ 1.01 --account alice --credential alice
    zex order sell 5 XYZ --market --tif ioc
    zex cancel XYZ 42
    zex replace XYZ 42 8 1.02
    zex orders [XYZ]            zex positions
    zex reports                 (follow my execution reports)
    zex book XYZ                (the book, refreshing in place)
    zex kill bob block --account ops --credential ops

The gateway, account and credential come from --gateway/--account/--credential,
else ZEX_GATEWAY/ZEX_ACCOUNT/ZEX_CREDENTIAL, else the config's gateway.bind.
"""

from __future__ import annotations

import os
import sys
import time

from zex.protocol import messages as m

from ..runtime import config as config_mod

DEMO_HINT = "the demo accounts of `zex run` are alice, bob, maker, taker and ops (operator); the credential is the name"


def add_parsers(sub) -> None:
    def common(p):
        p.add_argument(
            "--gateway",
            help="gateway endpoint (default: $ZEX_GATEWAY, else gateway.bind of --config)",
        )
        p.add_argument("--account", help="account id (default: $ZEX_ACCOUNT)")
        p.add_argument("--credential", help="credential (default: $ZEX_CREDENTIAL)")
        p.add_argument("--config", help="TOML config file, for the default gateway endpoint")
        p.add_argument("--timeout", type=float, default=3.0, help="seconds per attempt (default 3)")

    p = sub.add_parser("order", help="place an order and print its answer and any immediate fills")
    p.add_argument("side", choices=["buy", "sell"])
    p.add_argument("qty")
    p.add_argument("symbol")
    p.add_argument("price", nargs="?", help="limit price; omit with --market")
    p.add_argument("--market", action="store_true", help="a market order (needs --tif ioc or fok)")
    p.add_argument(
        "--tif", choices=["gtc", "ioc", "fok"], help="time in force (default gtc, ioc for --market)"
    )
    p.add_argument("--post-only", action="store_true")
    p.add_argument(
        "--stp",
        choices=["cancel_newest", "cancel_oldest", "cancel_both", "none"],
        default="cancel_newest",
    )
    p.add_argument(
        "--cl-ord-id", help="client order id (default: generated); reuse it to resend safely"
    )
    common(p)
    p.set_defaults(func=cmd_order)
    p = sub.add_parser("cancel", help="cancel one of my open orders")
    p.add_argument("symbol")
    p.add_argument("order_id", type=int)
    common(p)
    p.set_defaults(func=cmd_cancel)
    p = sub.add_parser("replace", help="change one of my open orders' total qty and price")
    p.add_argument("symbol")
    p.add_argument("order_id", type=int)
    p.add_argument("qty")
    p.add_argument("price")
    common(p)
    p.set_defaults(func=cmd_replace)
    p = sub.add_parser("orders", help="show my open orders")
    p.add_argument("symbol", nargs="?", default="")
    common(p)
    p.set_defaults(func=cmd_orders)
    p = sub.add_parser("positions", help="show my positions and cash")
    common(p)
    p.set_defaults(func=cmd_positions)
    p = sub.add_parser("reports", help="follow my execution reports (Ctrl+C to stop)")
    p.add_argument(
        "--from-rseq", type=int, help="first replay the account's reports from this rseq"
    )
    common(p)
    p.set_defaults(func=cmd_reports)
    p = sub.add_parser(
        "book", help="watch a symbol's book from the market-data feed, refreshing in place"
    )
    p.add_argument("symbol")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument(
        "--once", action="store_true", help="print the book once (when in sync) and exit"
    )
    p.add_argument(
        "--feed", help="market-data feed endpoint (default: $ZEX_FEED, else marketdata.feed_bind)"
    )
    p.add_argument(
        "--snapshot",
        help="snapshot endpoint (default: $ZEX_SNAPSHOT, else marketdata.snapshot_bind)",
    )
    p.add_argument("--config", help="TOML config file, for the default endpoints")
    p.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        help="seconds to wait for the first snapshot (default 3)",
    )
    p.set_defaults(func=cmd_book)
    p = sub.add_parser(
        "kill", help="operator: set an account's kill switch (block, reduce_only, off)"
    )
    p.add_argument("target")
    p.add_argument("mode", choices=["block", "reduce_only", "off"])
    common(p)
    p.set_defaults(func=cmd_kill)


def _fail(text: str) -> None:
    sys.exit(f"zex: {text}")


def _client(args):
    from zex.protocol.client import Client, ClientError, LogonRejected

    endpoint = args.gateway or os.environ.get("ZEX_GATEWAY")
    if not endpoint:
        try:
            endpoint = config_mod.load(args.config).gateway.bind
        except config_mod.ConfigError as exc:
            _fail(str(exc))
    account = args.account or os.environ.get("ZEX_ACCOUNT")
    credential = (
        args.credential if args.credential is not None else os.environ.get("ZEX_CREDENTIAL", "")
    )
    if not account:
        _fail(
            f"say which account: --account NAME --credential SECRET (or ZEX_ACCOUNT); {DEMO_HINT}"
        )
    c = Client(endpoint, account, credential, timeout=args.timeout, retries=1, heartbeat_ms=5_000)
    try:
        c.logon()
    except LogonRejected as exc:
        c.close()
        _fail(f"logon refused: {exc}; check --account and --credential ({DEMO_HINT})")
    except (TimeoutError, ClientError):
        c.close()
        _fail(
            f"no answer from a gateway at {endpoint}; is the exchange running? Start it with `make run`, "
            "or pass --gateway tcp://HOST:PORT"
        )
    return c


def _line(r) -> str:
    t = type(r)
    if t is m.Ack:
        px = "market" if r.price is None else f"@ {r.price}"
        return (
            f"ack       #{r.order_id} {r.side} {r.qty} {r.symbol} {px} {r.tif}  (cl {r.cl_ord_id}, seq {r.seq})"
            + ("  [resent: the first answer]" if r.resent else "")
        )
    if t is m.Reject:
        return f"reject    {r.reason} {r.reason_name}: {r.text}  (cl {r.cl_ord_id or '-'})"
    if t is m.Fill:
        return (
            f"fill      #{r.order_id} {r.side} {r.qty} {r.symbol} @ {r.price} {r.liquidity}, leaves {r.leaves}"
            f"  (trade {r.trade_id})"
        )
    if t is m.Cancelled:
        return f"cancelled #{r.order_id} {r.side} {r.qty} {r.symbol} ({r.reason})"
    if t is m.Expired:
        return f"expired   #{r.order_id} {r.side} {r.qty} {r.symbol} ({r.reason})"
    if t is m.Replaced:
        return (
            f"replaced  #{r.order_id} {r.side} now {r.qty} {r.symbol} @ {r.price}, leaves {r.leaves}"
            f"{' (kept priority)' if r.kept_priority else ''}"
        )
    if t is m.KillSwitchSet:
        return f"kill      {r.account} -> {r.mode}, {r.cancelled} orders cancelled"
    return repr(r)


def _finish(c, answer) -> int:
    print(_line(answer))
    for r in c.poll(0.2):  # immediate fills and expiries that came with the answer
        if r is not answer:
            print(_line(r))
    c.close()
    return 1 if isinstance(answer, m.Reject) else 0


def cmd_order(args) -> int:
    if args.market and args.price:
        _fail("a market order takes no price: drop the price or --market")
    if not args.market and not args.price:
        _fail("a limit order needs a price: zex order buy 10 XYZ 1.01 (or --market --tif ioc)")
    c = _client(args)
    tif = args.tif or ("ioc" if args.market else "gtc")
    ans = c.place(
        args.symbol,
        args.side,
        args.qty,
        None if args.market else args.price,
        ord_type="market" if args.market else "limit",
        tif=tif,
        post_only=args.post_only,
        stp=args.stp,
        cl_ord_id=args.cl_ord_id,
    )
    return _finish(c, ans)


def cmd_cancel(args) -> int:
    c = _client(args)
    return _finish(c, c.cancel(args.symbol, args.order_id))


def cmd_replace(args) -> int:
    c = _client(args)
    return _finish(c, c.replace(args.symbol, args.order_id, args.qty, args.price))


def cmd_orders(args) -> int:
    c = _client(args)
    ans = c.orders(args.symbol)
    c.close()
    if not ans.orders:
        print(f"no open orders (after seq {ans.seq})")
        return 0
    print(
        f"{'order':>8} {'side':4} {'symbol':8} {'price':>12} {'qty':>10} {'leaves':>10} {'filled':>10}  cl_ord_id"
    )
    for o in ans.orders:
        print(
            f"{o.order_id:>8} {o.side:4} {o.symbol:8} {o.price:>12} {o.qty:>10} {o.leaves:>10} {o.filled:>10}  "
            f"{o.cl_ord_id}"
        )
    return 0


def cmd_positions(args) -> int:
    c = _client(args)
    ans = c.positions()
    c.close()
    print(
        f"cash {ans.cash}   open orders {ans.open_orders}   kill switch {ans.kill_switch}   (after seq {ans.seq})"
    )
    for p in ans.positions:
        print(f"  {p.symbol:8} {p.qty:>12}   bought {p.bought}, sold {p.sold}")
    return 0


def cmd_reports(args) -> int:
    c = _client(args)
    try:
        if args.from_rseq:
            c.recover(args.from_rseq)
        for r in c.reports():
            print(f"[{r.rseq}] {_line(r)}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return 0


def cmd_kill(args) -> int:
    c = _client(args)
    return _finish(c, c.kill_switch(args.target, args.mode))


def cmd_book(args) -> int:
    from zex.protocol.mdclient import BookSubscriber, SnapshotRejected

    feed = args.feed or os.environ.get("ZEX_FEED")
    snap = args.snapshot or os.environ.get("ZEX_SNAPSHOT")
    if not (feed and snap):
        try:
            md_cfg = config_mod.load(args.config).marketdata
        except config_mod.ConfigError as exc:
            _fail(str(exc))
        feed, snap = feed or md_cfg.feed_bind, snap or md_cfg.snapshot_bind
    sub = BookSubscriber(feed, snap, [args.symbol], timeout=args.timeout)
    try:
        try:
            in_sync = sub.run_until(lambda: sub.synced(args.symbol), args.timeout * 2)
        except SnapshotRejected as exc:
            _fail(f"{exc}")
        except TimeoutError:
            in_sync = False
        if not in_sync:
            _fail(
                f"no snapshot of {args.symbol} from {snap} (feed {feed}); is the exchange running? "
                "Start it with `make run`, or pass --feed and --snapshot"
            )
        while True:
            text = _render_book(sub.book(args.symbol), args.depth)
            if args.once:
                print(text)
                return 0
            # refresh in place: home the cursor, clear the screen below it
            sys.stdout.write("\x1b[H\x1b[J" + text + "\n(Ctrl+C to stop)\n")
            sys.stdout.flush()
            deadline = time.monotonic() + 0.25
            while time.monotonic() < deadline:
                sub.poll(deadline - time.monotonic())
    except KeyboardInterrupt:
        return 0
    finally:
        sub.close()


def _render_book(book, depth: int) -> str:
    bids, asks = book.levels("buy", depth), book.levels("sell", depth)
    lines = [
        f"{book.symbol}  l2 seq {book.seq}  matcher seq {book.mseq}  {time.strftime('%H:%M:%S')}",
        f"{'orders':>6} {'bid qty':>12} {'bid':>12} | {'ask':<12} {'ask qty':<12} {'orders':<6}",
    ]
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else ("", "", "")
        a = asks[i] if i < len(asks) else ("", "", "")
        lines.append(f"{b[2]:>6} {b[1]:>12} {b[0]:>12} | {a[0]:<12} {a[1]:<12} {a[2]:<6}")
    if not bids and not asks:
        lines.append("(empty)")
    return "\n".join(lines)
