"""The compiled matcher (Cython, setup.py) against the same sources run as plain Python.

The compiled build must be a faster copy of the pure one, never a different
engine: same events, same reports, same state bytes and digests, on the
benchmark's stream and on a stream with every command type. The stateful test
(test_engine_stateful.py) also runs a twin of the other build (builds.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from importlib.machinery import EXTENSION_SUFFIXES

import pytest

from zex.nodes import matcher
from zex.nodes.matcher.builds import pure
from zex.nodes.matcher.engine import MAX_LOTS, MAX_TICKS, Engine
from zex.nodes.matcher.state import state_decoder
from zex.nodes.matcher.workload import mixed_stream
from zex.protocol.internal import (
    BUY,
    CXL_DISCONNECT,
    CXL_KILL,
    CXL_STP,
    CXL_USER,
    EXP_FOK,
    EXP_IOC,
    EXP_MARKET,
    FOK,
    GTC,
    IOC,
    KILL_BLOCK,
    KILL_OFF,
    KILL_REDUCE_ONLY,
    LIMIT,
    MARKET,
    OWNER_ROLE,
    SELL,
    CancelCmd,
    KillSwitchCmd,
    LimitsCmd,
    MassCancelCmd,
    NewOrderCmd,
    Rejected,
    ReplaceCmd,
    encoder,
)
from zex.protocol.reasons import Reason

SYMBOLS = ["XYZ", "ABC"]


def test_the_install_is_the_compiled_build_unless_asked_for_pure():
    # a silent fall-back to pure Python (no compiler, a failed compile) must not go unnoticed
    want = "pure" if os.environ.get("ZEX_PURE") == "1" else "compiled"
    assert matcher.build_kind() == want, (
        f"the matcher is installed {matcher.build_kind()}: see the compile messages of "
        f"`make build`, or set ZEX_PURE=1 to test plain Python on purpose"
    )


def every_kind_of_command(n: int, seed: int, big: bool = False):
    """Random commands of every type, with prices that cross, resends and unknown ids.

    Each account trades from two sessions (gateways gw1 and gw2), so a cancel or replace
    often comes from another session than the order's, whose own session hears of it too.
    Cancels and replaces mostly name an open order of their account: a scout engine (the
    pure build) runs the stream as it is made, so the stream is fixed before either build
    under test sees it.

    ``big``: prices near 2^27 ticks and quantities near 2^15 lots, so that prices, lots,
    notionals and the accounts' sums pass every 32-bit C int on the way, while a day of
    trades stays within the 2^62 the matcher allows (SPEC 3.4).
    """
    px, lots = (20, 12) if big else (0, 0)
    rng = random.Random(seed)
    scout = pure().engine.Engine(SYMBOLS, cash_mult=CASH_MULT)
    accounts = ["a", "b", "c"]
    sent: list = []

    def price() -> int:
        return rng.randint(95, 105) << px

    def target(acct: str, i: int) -> int:  # mostly one of the account's open orders
        mine = scout.accounts[acct].orders if acct in scout.accounts else {}
        if mine and rng.random() < 0.8:
            return rng.choice(list(mine))
        return rng.randint(1, i + 1)

    for i in range(n):
        ts = 1_000 + i
        acct = rng.choice(accounts)
        gw = "gw2" if i % 3 == 0 else "gw1"  # two sessions per account (see above)
        r = rng.random()
        if r < 0.05 and sent:
            again = rng.choice(sent)  # a resend: the first answer again
            scout.process(again)
            scout.events.clear()
            scout.reports.clear()
            yield again
            continue
        if r < 0.50:
            tif = rng.choice([GTC, GTC, GTC, IOC, FOK])
            market = tif != GTC and rng.random() < 0.2
            cmd = NewOrderCmd(
                ts,
                gw,
                acct.encode(),
                acct,
                f"n{i}",
                rng.choice(SYMBOLS),
                rng.choice([BUY, SELL]),
                MARKET if market else LIMIT,
                tif,
                0 if market and rng.random() < 0.5 else price(),
                rng.randint(1, 9) << lots,
                tif == GTC and rng.random() < 0.1,
                rng.choice([0, 1, 2, 3]),
            )
        elif r < 0.70:
            oid = target(acct, i)
            o = scout.accounts[acct].orders.get(oid) if acct in scout.accounts else None
            cmd = CancelCmd(
                ts,
                gw,
                acct.encode(),
                acct,
                f"x{i}",
                o.symbol if o and rng.random() < 0.9 else rng.choice(SYMBOLS),
                oid,
            )
        elif r < 0.88:
            oid = target(acct, i)
            o = scout.accounts[acct].orders.get(oid) if acct in scout.accounts else None
            if o is not None and rng.random() < 0.4:  # keep the price: a smaller qty keeps priority
                cmd = ReplaceCmd(
                    ts,
                    gw,
                    acct.encode(),
                    acct,
                    f"r{i}",
                    o.symbol,
                    o.price,
                    rng.randint(1, 12) << lots,
                    oid,
                )
            else:
                cmd = ReplaceCmd(
                    ts,
                    gw,
                    acct.encode(),
                    acct,
                    f"r{i}",
                    o.symbol if o and rng.random() < 0.9 else rng.choice(SYMBOLS),
                    price(),
                    rng.randint(1, 12) << lots,
                    oid,
                )
        elif r < 0.91:
            cmd = MassCancelCmd(ts, gw, acct.encode(), acct, CXL_DISCONNECT)
        elif r < 0.94:
            cmd = KillSwitchCmd(
                ts,
                "gw1",
                b"ops",
                "ops",
                f"k{i}",
                acct,
                rng.choice([KILL_OFF, KILL_OFF, KILL_OFF, KILL_BLOCK, KILL_REDUCE_ONLY]),
            )
        else:
            cmd = LimitsCmd(
                ts,
                acct,
                rng.choice([None, 5]),
                rng.choice([None, 2_000 << (px + lots)]),
                rng.choice([{}, {"XYZ": 20 << lots}]),
            )
        sent.append(cmd)
        scout.process(cmd)
        scout.events.clear()
        scout.reports.clear()
        yield cmd


CASH_MULT = {"XYZ": 1, "ABC": 100}


def run(engine_cls, cmds, every: int = 500):
    """Events and reports as bytes, with state bytes and a digest every ``every`` commands;
    and what happened, as (event type, its reason or kind) -> count."""
    eng = engine_cls(SYMBOLS, cash_mult=CASH_MULT)
    out = []
    seen: Counter = Counter()
    for i, c in enumerate(cmds, 1):
        eng.process(c)
        for ev in eng.events:
            seen[type(ev).__name__, getattr(ev, "reason", getattr(ev, "kept_priority", None))] += 1
        for r in eng.reports:  # a cancel or replace from another session than the order's
            if r[2] == OWNER_ROLE and r[3] == 0:
                seen["to the order's own session", None] += 1
        out.append(encoder.encode(eng.events))
        out.append(encoder.encode([r[1:] for r in eng.reports]))
        eng.events.clear()
        eng.reports.clear()
        if i % every == 0:
            out.append(eng.state_bytes())
            out.append(eng.digest())
    return eng, out, seen


# what the "every kind" streams must have made happen, so that their agreement means something
OUTCOMES = {
    ("Trade", None),
    ("Replaced", True),
    ("Replaced", False),
    ("Cancelled", CXL_USER),
    ("Cancelled", CXL_STP),
    ("Cancelled", CXL_KILL),
    ("Cancelled", CXL_DISCONNECT),
    ("Expired", EXP_IOC),
    ("Expired", EXP_FOK),
    ("Expired", EXP_MARKET),
    ("Rejected", Reason.CREDIT_LIMIT),
    ("Rejected", Reason.MAX_POSITION),
    ("Rejected", Reason.KILL_SWITCH),
    ("Rejected", Reason.MAX_OPEN_ORDERS),
    ("Rejected", Reason.UNKNOWN_ORDER),
    ("Rejected", Reason.POST_ONLY_WOULD_CROSS),
    ("Rejected", Reason.INVALID_REPLACE),
    ("to the order's own session", None),
}


@pytest.mark.skipif(matcher.build_kind() != "compiled", reason="a pure install has one build only")
@pytest.mark.parametrize("stream", ["benchmark", "every kind", "every kind, big numbers"])
def test_both_builds_give_the_same_bytes(stream):
    if stream == "benchmark":
        cmds = list(mixed_stream(30_000, seed=3, symbols=tuple(SYMBOLS)))
    else:
        cmds = list(every_kind_of_command(20_000, seed=5, big="big" in stream))
    eng, got, seen = run(Engine, cmds)
    _, want, _ = run(pure().engine.Engine, cmds)
    assert len(got) == len(want)
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b), None)
    assert first is None, f"the builds differ first at output {first}"
    if stream != "benchmark":
        assert OUTCOMES <= {k for k, n in seen.items() if n}, OUTCOMES - set(seen)
    # and a snapshot of one build restores in the other
    back = pure().engine.Engine.from_state(
        pure().state.state_decoder.decode(eng.state_bytes()), cash_mult=CASH_MULT
    )
    assert back.state_bytes() == eng.state_bytes()
    again = Engine.from_state(state_decoder.decode(back.state_bytes()), cash_mult=CASH_MULT)
    assert again.digest() == eng.digest()


@pytest.mark.parametrize("build", ["installed", "pure"])
def test_kept_order_encodings_follow_every_change_of_an_order(build):
    """A snapshot splices each resting order's kept encoding (Order.enc); a partial fill, a
    replace that keeps priority or one that loses it must each renew it, or the snapshot
    and digest would carry the order as it was. Checked against encoding the state cold."""
    from zex.nodes.matcher.state import encode

    engine_cls = Engine if build == "installed" else pure().engine.Engine
    cmds = list(every_kind_of_command(6_000, seed=11))
    eng = engine_cls(SYMBOLS, cash_mult=CASH_MULT)
    restored = None  # from a snapshot at half way, then fed the same commands
    seen: Counter = Counter()
    for i, c in enumerate(cmds, 1):
        for e in (eng, restored) if restored is not None else (eng,):
            e.process(c)
            for ev in e.events:
                seen[type(ev).__name__, getattr(ev, "kept_priority", None)] += e is eng
            e.keep_up({r[1] for r in e.reports})
            e.events.clear()
            e.reports.clear()
            if i % 7 == 0:
                e.catch_up(3)  # budgeted, as in idle time: some orders left to encode
        if i % 250 == 0:
            assert eng.state_bytes() == encode(eng.state()), i
            cold = engine_cls.from_state(eng.state(), cash_mult=CASH_MULT)  # nothing kept
            assert cold.digest() == eng.digest(), i
            if restored is not None:  # its orders were restored, then traded, replaced, cancelled
                assert (
                    restored.state_bytes() == eng.state_bytes()
                    and restored.digest() == eng.digest()
                ), i
        if i == len(cmds) // 2:
            restored = engine_cls.from_state(eng.state(), cash_mult=CASH_MULT)
    assert seen["Trade", None] and seen["Replaced", True] and seen["Replaced", False]
    assert b"".join(eng.state_parts()) == eng.state_bytes() == encode(eng.state())


@pytest.mark.parametrize("engine", ["installed", "pure"])
@pytest.mark.parametrize(
    "price,qty,reason,word",
    [
        (100, MAX_LOTS + 1, Reason.QTY_TOO_LARGE, "qty"),
        (100, 2**64 - 1, Reason.QTY_TOO_LARGE, "qty"),
        (MAX_TICKS + 1, 5, Reason.PRICE_OUT_OF_BAND, "price"),
        (2**63, 5, Reason.PRICE_OUT_OF_BAND, "price"),
        (2**40, 2**30, Reason.QTY_TOO_LARGE, "notional"),  # each within range, the product not
    ],
)
def test_numbers_beyond_the_engine_range_are_refused_not_raised(engine, price, qty, reason, word):
    # the compiled build keeps an order's numbers in C int64s, and the state's cash must fit
    # msgpack's ints: a number past them is a reject naming it, in both builds, and the
    # engine goes on as before
    cls = Engine if engine == "installed" else pure().engine.Engine
    eng = cls(SYMBOLS)
    eng.process(NewOrderCmd(1, "gw1", b"c", "a", "n1", "XYZ", BUY, LIMIT, GTC, price, qty))
    (rej,) = eng.take_events()
    assert type(rej) is Rejected and rej.reason == reason and word in rej.text and rej.seq == 1
    eng.process(NewOrderCmd(2, "gw1", b"c", "a", "n2", "XYZ", BUY, LIMIT, GTC, 100, 5))
    (ack,) = eng.take_events()
    eng.process(ReplaceCmd(3, "gw1", b"c", "a", "r1", "XYZ", price, qty, ack.order_id))
    (rej,) = eng.take_events()
    assert type(rej) is Rejected and rej.reason == reason and word in rej.text
    assert [o.leaves for o in eng.books["XYZ"].orders_in_priority(BUY)] == [5]
    eng.state_bytes()  # and the state still encodes


def test_a_compiled_module_older_than_its_source_is_refused(tmp_path, monkeypatch):
    for ext in (".py", ".pxd"):
        (tmp_path / f"book{ext}").write_text("x = 1\n")
    (tmp_path / f"book{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    monkeypatch.setattr(matcher, "_HERE", tmp_path)
    (tmp_path / "compiled.json").write_text(json.dumps({"book": "0" * 64}))
    with pytest.raises(ImportError, match=r"book\.py.*make build"):
        matcher._check_compiled()
    (tmp_path / "compiled.json").write_text(
        json.dumps({"book": hashlib.sha256(b"x = 1\nx = 1\n").hexdigest()})
    )
    matcher._check_compiled()  # built from this very source: fine
