"""Crash anywhere, short: every node SIGKILLed under load at least once; nothing acknowledged lost or doubled.

The long run (200+ kills) is ``make chaos``; its figures are in bench/README.md.
"""

from __future__ import annotations

import pytest

from tests.chaos.checks import check_all
from tests.chaos.harness import Options, run

pytestmark = pytest.mark.integration

NODES = {"matcher", "gw1", "gw2", "marketdata", "logger"}


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    """One short run, shared: 6 kills (every node once, in a seeded order, then one more).

    Snapshots every 200 commands, so a matcher restart loads one and replays the journal's tail;
    a state digest every 100, so `zex replay` compares the restarted matcher's whole state.
    """
    res = run(
        Options(kills=6, seed=7, snapshot_every=200, digest_every=100),
        tmp_path_factory.mktemp("chaos"),
    )
    print("\n".join(res.lines()))
    return res


def test_every_node_killed_and_every_invariant_holds(chaos):
    assert chaos.ok, "\n".join(chaos.lines())
    assert set(chaos.kills) == NODES and sum(chaos.kills.values()) == 6
    f = chaos.figures
    assert f["lost"] == 0 and f["duplicated"] == 0
    assert f["acknowledged"] == f["orders_sent"] - f["rejected"] > 200  # every order answered, once
    assert f["trades"] > 50 and f["trades_seen"] == f["trades"]
    assert all(len(xs) == chaos.kills[n] for n, xs in chaos.recover_s.items())
    assert f["from_snapshot"] >= 1  # the matcher came back from a snapshot and the journal's tail
    # and `zex replay` found each of its state digests equal to a fresh replay's
    assert f["digests"] >= 5
    assert chaos.seconds < 60


def test_the_checks_catch_a_lost_ack_a_duplicate_a_phantom_fill_and_a_wrong_book(chaos):
    """The same run's evidence, each time with one fault planted: the checks must name it."""
    assert chaos.inputs is not None, "\n".join(chaos.lines())
    cl, truth, traders, views = chaos.inputs
    seen = traders[0].seen
    acct = traders[0].account
    some_fill = next(iter(seen.fills.values()))
    cl_id, oid = next(iter(seen.acks.items()))
    sym = next(iter(views.md_books))
    saved = (
        dict(seen.acks),
        dict(seen.fills),
        list(truth.accepted[(acct, cl_id)]),
        views.md_books[sym],
    )
    try:
        seen.acks["planted-1"] = 10**9  # acknowledged, never journaled: lost
        truth.accepted[(acct, cl_id)].append(oid + 10**9)  # journaled twice: duplicated
        seen.fills[(some_fill.symbol, 10**9)] = some_fill  # a fill of a trade that never happened
        views.md_books[sym] = ([], [])  # the feed's book wiped
        problems, f = check_all(cl, truth, traders, views)
    finally:
        seen.acks, seen.fills = saved[0], saved[1]
        truth.accepted[(acct, cl_id)] = saved[2]
        views.md_books[sym] = saved[3]
    text = "\n".join(problems)
    assert f["lost"] == 1 and "LOST acknowledged: t0 planted-1" in text, text
    assert f["duplicated"] == 1 and f"DUPLICATED: {acct} {cl_id}" in text, text
    assert f"saw trade ('{some_fill.symbol}', {10**9})" in text, text
    assert f"{sym}: the marketdata snapshot" in text, text
