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
from importlib.machinery import EXTENSION_SUFFIXES

import pytest
from zex.nodes import matcher
from zex.nodes.matcher.builds import pure
from zex.nodes.matcher.engine import MAX_LOTS, MAX_TICKS, Engine
from zex.nodes.matcher.state import state_decoder
from zex.nodes.matcher.workload import mixed_stream
from zex.protocol.internal import (
    BUY,
    FOK,
    GTC,
    IOC,
    KILL_BLOCK,
    KILL_OFF,
    LIMIT,
    MARKET,
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
        f"`make build`, or set ZEX_PURE=1 to test plain Python on purpose")


def every_kind_of_command(n: int, seed: int):
    """Random commands of every type, with prices that cross, resends and unknown ids."""
    rng = random.Random(seed)
    accounts = ["a", "b", "c"]
    sent: list = []
    for i in range(n):
        ts = 1_000 + i
        acct = rng.choice(accounts)
        r = rng.random()
        if r < 0.05 and sent:
            yield rng.choice(sent)  # a resend: the first answer again
            continue
        if r < 0.50:
            tif = rng.choice([GTC, GTC, GTC, IOC, FOK])
            market = tif != GTC and rng.random() < 0.2
            cmd = NewOrderCmd(ts, "gw1", acct.encode(), acct, f"n{i}", rng.choice(SYMBOLS),
                              rng.choice([BUY, SELL]), MARKET if market else LIMIT, tif,
                              0 if market and rng.random() < 0.5 else rng.randint(95, 105),
                              rng.randint(1, 9), tif == GTC and rng.random() < 0.1,
                              rng.choice([0, 1, 2, 3]))
        elif r < 0.70:
            cmd = CancelCmd(ts, "gw1", acct.encode(), acct, f"x{i}", rng.choice(SYMBOLS),
                            rng.randint(1, i + 1))
        elif r < 0.88:
            cmd = ReplaceCmd(ts, "gw1", acct.encode(), acct, f"r{i}", rng.choice(SYMBOLS),
                             rng.randint(95, 105), rng.randint(1, 12), rng.randint(1, i + 1))
        elif r < 0.93:
            cmd = MassCancelCmd(ts, "gw1", acct.encode(), acct, 4)
        elif r < 0.97:
            cmd = KillSwitchCmd(ts, "gw1", b"ops", "ops", f"k{i}", acct,
                                rng.choice([KILL_OFF, KILL_OFF, KILL_BLOCK, 2]))
        else:
            cmd = LimitsCmd(ts, acct, rng.choice([None, 5]), rng.choice([None, 10_000]),
                            rng.choice([{}, {"XYZ": 20}]))
        sent.append(cmd)
        yield cmd


def run(engine_cls, cmds, every: int = 500):
    """Events and reports as bytes, with state bytes and a digest every ``every`` commands."""
    eng = engine_cls(SYMBOLS)
    out = []
    for i, c in enumerate(cmds, 1):
        eng.process(c)
        out.append(encoder.encode(eng.events))
        out.append(encoder.encode([r[1:] for r in eng.reports]))
        eng.events.clear()
        eng.reports.clear()
        if i % every == 0:
            out.append(eng.state_bytes())
            out.append(eng.digest())
    return eng, out


@pytest.mark.parametrize("stream", ["benchmark", "every kind"])
def test_both_builds_give_the_same_bytes(stream):
    if stream == "benchmark":
        cmds = list(mixed_stream(30_000, seed=3, symbols=tuple(SYMBOLS)))
    else:
        cmds = list(every_kind_of_command(20_000, seed=5))
    eng, got = run(Engine, cmds)
    _, want = run(pure().engine.Engine, cmds)
    assert len(got) == len(want)
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert first is None, f"the builds differ first at output {first} (command {first // 2 + 1})"
    if stream == "every kind":  # the stream did reach the rarer paths
        kinds = {type(c).__name__ for c in cmds}
        assert kinds >= {"NewOrderCmd", "CancelCmd", "ReplaceCmd", "MassCancelCmd",
                         "KillSwitchCmd", "LimitsCmd"}
    # and a snapshot of one build restores in the other
    back = pure().engine.Engine.from_state(pure().state.state_decoder.decode(eng.state_bytes()))
    assert back.state_bytes() == eng.state_bytes()
    again = Engine.from_state(state_decoder.decode(back.state_bytes()))
    assert again.digest() == eng.digest()


@pytest.mark.parametrize("engine", ["installed", "pure"])
@pytest.mark.parametrize("field,value,reason", [
    ("qty", MAX_LOTS + 1, Reason.BAD_QTY),
    ("qty", 2**64 - 1, Reason.BAD_QTY),
    ("price", MAX_TICKS + 1, Reason.BAD_PRICE),
    ("price", 2**63, Reason.BAD_PRICE),
])
def test_numbers_beyond_the_engine_range_are_refused_not_raised(engine, field, value, reason):
    # the compiled build keeps an order's numbers in C int64s: a number past them must be a
    # reject with the field's reason, and the engine must go on as before
    cls = Engine if engine == "installed" else pure().engine.Engine
    eng = cls(SYMBOLS)
    kw = {"price": 100, "qty": 5}
    kw[field] = value
    eng.process(NewOrderCmd(1, "gw1", b"c", "a", "n1", "XYZ", BUY, LIMIT, GTC, kw["price"], kw["qty"]))
    rej = eng.take_events()
    assert [type(e) for e in rej] == [Rejected] and rej[0].reason == reason and field in rej[0].text
    eng.process(NewOrderCmd(2, "gw1", b"c", "a", "n2", "XYZ", BUY, LIMIT, GTC, 100, 5))
    (ack,) = eng.take_events()
    eng.process(ReplaceCmd(3, "gw1", b"c", "a", "r1", "XYZ", kw["price"], kw["qty"], ack.order_id))
    (rej,) = eng.take_events()
    assert type(rej) is Rejected and rej.reason == reason and field in rej.text
    assert [o.leaves for o in eng.books["XYZ"].orders_in_priority(BUY)] == [5]


def test_a_compiled_module_older_than_its_source_is_refused(tmp_path, monkeypatch):
    for ext in (".py", ".pxd"):
        (tmp_path / f"book{ext}").write_text("x = 1\n")
    (tmp_path / f"book{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    monkeypatch.setattr(matcher, "_HERE", tmp_path)
    (tmp_path / "compiled.json").write_text(json.dumps({"book": "0" * 64}))
    with pytest.raises(ImportError, match=r"book\.py.*make build"):
        matcher._check_compiled()
    (tmp_path / "compiled.json").write_text(json.dumps(
        {"book": hashlib.sha256(b"x = 1\nx = 1\n").hexdigest()}))
    matcher._check_compiled()  # built from this very source: fine
