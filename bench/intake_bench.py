"""Gateway intake benchmark: client frames decided per second, against the codec alone.

    python bench/intake_bench.py [--n 100000] [--rounds 5]

The same frames (nine orders to one cancel, one logged-on session with every
stateless limit set) go through, in interleaved rounds, best of each kept:

- baseline: ``decode_request`` alone, the msgspec decode every intake starts with;
- ``Intake.handle``: decode, validate, authorise, rate and stateless risk, the
  internal command built (nodes/gateway/intake.py, no I/O);
- ``FrontRunner.handle``: the same plus the encode and send of each command to
  an inproc DEALER, as the gateway's front thread does with ``workers = 0``.

The ratios to the baseline are what to compare between runs: this 2-core box is
shared and its absolute rates swing by tens of per cent.
"""

from __future__ import annotations

import argparse
import random
import time

import zmq

from zex.nodes.gateway.intake import Intake
from zex.nodes.gateway.risk import AccountRules
from zex.nodes.gateway.worker import FrontRunner
from zex.nodes.runtime.audit import AuditPush
from zex.nodes.runtime.config import AccountConfig
from zex.protocol import messages as m
from zex.protocol.codec import decode_request, encode
from zex.protocol.internal import NewOrderCmd
from zex.protocol.numbers import Cash, Instrument

XYZ = Instrument("XYZ", tick="0.01", lot="1", max_price="1000", reference_price="100")


def frames(n: int) -> list[bytes]:
    rng = random.Random(3)
    out = []
    for k in range(n):
        if k % 10 == 9:
            out.append(encode(m.Cancel(cl_ord_id=f"c{k}", symbol="XYZ", order_id=k)))
        else:
            px = f"{rng.randint(9500, 10500) / 100:.2f}"
            side = "buy" if k % 2 else "sell"
            msg = m.NewOrder(
                cl_ord_id=f"o{k}", symbol="XYZ", side=side, qty=str(rng.randint(1, 50)), price=px
            )
            out.append(encode(msg))
    return out


def intake() -> Intake:
    cash = Cash([XYZ])
    acct = AccountConfig(
        id="a", credential="pw", max_order_qty="1000", collar_pct="20", max_notional="1000000"
    )
    rules = {"a": AccountRules.build(acct, (XYZ,), cash)}
    i = Intake("gw", (XYZ,), rules, cash, {})
    i.handle(b"c", encode(m.Logon(account="a", credential="pw")))
    return i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="frames per round")
    ap.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds; the best of each is kept"
    )
    args = ap.parse_args()
    data = frames(args.n)

    ctx = zmq.Context()
    sink = ctx.socket(zmq.ROUTER)
    sink.rcvhwm = 0
    sink.bind("inproc://intake-bench")
    dealer = ctx.socket(zmq.DEALER)
    dealer.sndhwm = 0
    dealer.linger = 0
    dealer.connect("inproc://intake-bench")
    replies: list[list[bytes]] = []
    pure = intake()
    front = FrontRunner(intake(), replies.append, dealer, AuditPush(ctx, "", "gw"))

    def decode_only(client: bytes, frame: bytes) -> None:
        decode_request(frame)

    variants = {
        "baseline: decode_request": decode_only,
        "Intake.handle": pure.handle,
        "FrontRunner.handle (+ send)": front.handle,
    }
    # The decisions are real: count what intake made of one round, so a bench that
    # silently refused everything shows it.
    made = [pure.handle(b"c", f) for f in data[:1000]]
    orders = sum(type(d) is NewOrderCmd for d in made)
    print(
        f"{args.n} frames a round, {args.rounds} rounds; of the first 1000: {orders} orders forwarded"
    )

    best = dict.fromkeys(variants, 0.0)
    for r in range(args.rounds):
        for name, handle in variants.items():
            while sink.poll(0):
                sink.recv_multipart(zmq.NOBLOCK)
            t0 = time.perf_counter()
            for f in data:
                handle(b"c", f)
            best[name] = max(best[name], args.n / (time.perf_counter() - t0))
        print(f"  round {r + 1}/{args.rounds} done", flush=True)
    if replies:
        raise SystemExit(f"intake refused frames it should take: {replies[:2]}")
    base = best["baseline: decode_request"]
    for name, rate in best.items():
        print(f"{name:32s} {rate / 1e3:8.1f} k frames/s   {rate / base:5.2f}x of the baseline")
    dealer.close()
    sink.close()
    ctx.term()


if __name__ == "__main__":
    main()
