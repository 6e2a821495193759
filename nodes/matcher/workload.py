"""Reproducible synthetic order flow for benchmarks, tests and demos.

    >>> cmds = list(mixed_stream(1000, seed=7))

The mix is about 70 % passive limit orders around a drifting mid, 20 %
cancels of orders this stream placed and believes still open, and 10 %
marketable IOC orders that sweep one or more levels. Order ids are predicted
the way the engine assigns them (one per accepted new order, from 1), so
cancels name real ids without feedback from an engine.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from zex.protocol.internal import (
    BUY,
    GTC,
    IOC,
    LIMIT,
    SELL,
    STP_NONE,
    CancelCmd,
    Command,
    NewOrderCmd,
    SideCode,
)


def mixed_stream(
    n: int,
    seed: int = 1,
    symbols: tuple[str, ...] = ("XYZ",),
    accounts: int = 50,
    gw: str = "gw1",
    mid: int = 10_000,
    first_order_id: int = 1,
    ts0: int = 1_700_000_000_000_000_000,
    prefix: str = "",
) -> Iterator[Command]:
    rng = random.Random(seed)
    rand = rng.random
    randint = rng.randint
    mids = {s: mid for s in symbols}
    open_ids: list[tuple[int, str, str]] = []  # (order_id, account, symbol)
    next_id = first_order_id
    names = [f"acct{i}" for i in range(accounts)]
    client = b"c1"
    for i in range(n):
        ts = ts0 + i * 1000
        r = rand()
        sym = symbols[i % len(symbols)] if len(symbols) > 1 else symbols[0]
        if r < 0.20 and open_ids:
            k = randint(0, len(open_ids) - 1)
            open_ids[k], open_ids[-1] = open_ids[-1], open_ids[k]
            oid, acct, osym = open_ids.pop()
            yield CancelCmd(ts, gw, client, acct, f"{prefix}x{i}", osym, oid)
            continue
        acct = names[randint(0, accounts - 1)]
        m = mids[sym]
        if r < 0.30:
            side: SideCode = BUY if rand() < 0.5 else SELL
            px = m + randint(1, 5) if side == BUY else m - randint(1, 5)
            yield NewOrderCmd(
                ts,
                gw,
                client,
                acct,
                f"{prefix}o{i}",
                sym,
                side,
                LIMIT,
                IOC,
                px,
                randint(5, 40),
                False,
                STP_NONE,
            )
        else:
            side = BUY if rand() < 0.5 else SELL
            px = m - randint(0, 40) if side == BUY else m + randint(1, 41)
            yield NewOrderCmd(
                ts,
                gw,
                client,
                acct,
                f"{prefix}o{i}",
                sym,
                side,
                LIMIT,
                GTC,
                px,
                randint(1, 20),
                False,
                STP_NONE,
            )
            open_ids.append((next_id, acct, sym))
        next_id += 1
        if rand() < 0.01:
            mids[sym] = max(100, m + (1 if rand() < 0.5 else -1))
