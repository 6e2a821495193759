"""The incremental state digest: independent of where digests were taken, sensitive to any change."""

from __future__ import annotations

from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.state import capture, encode
from zex.nodes.matcher.workload import mixed_stream
from zex.protocol.internal import NewOrderCmd


def run(cmds, every: int = 0) -> Engine:
    e = Engine(["XYZ"], 0)
    for i, c in enumerate(cmds, 1):
        e.process(c)
        e.events.clear()
        e.reports.clear()
        if every and i % every == 0:
            e.digest()
    return e


def test_the_same_state_gives_the_same_digest_whatever_digests_came_before():
    cmds = list(mixed_stream(3000, seed=4))
    often, never = run(cmds, every=7), run(cmds)
    assert often.digest() == never.digest()
    restored = Engine.from_state(
        often.state(), ["XYZ"]
    )  # a snapshot's engine starts with no running hashes
    assert restored.digest() == never.digest()
    assert encode(capture(restored)) == encode(capture(never))


def test_snapshot_bytes_spliced_from_the_cache_equal_encoding_the_whole_state():
    cmds = list(mixed_stream(4000, seed=6))
    e = Engine(["XYZ"], 0)
    for i, c in enumerate(cmds, 1):
        e.process(c)
        e.events.clear()
        e.reports.clear()
        if i % 500 == 0:
            e.catch_up(333)  # idle-time encoding, partial on purpose
        if i % 1300 == 0:
            assert e.state_bytes() == encode(e.state()), i
    assert e.state_bytes() == encode(e.state())
    assert Engine.from_state(e.state(), ["XYZ"]).state_bytes() == e.state_bytes()


def test_any_change_of_state_changes_the_digest():
    cmds = list(mixed_stream(500, seed=5))
    base = run(cmds).digest()
    news = [i for i, c in enumerate(cmds) if type(c) is NewOrderCmd]
    for i in (
        news[0],
        news[len(news) // 2],
        news[-1],
    ):  # early (deep in the logs and answers), middle, last
        c = cmds[i]
        changed = list(cmds)
        changed[i] = NewOrderCmd(
            c.ts,
            c.gw,
            c.client,
            c.account,
            c.cl_ord_id + "x",
            c.symbol,
            c.side,
            c.ord_type,
            c.tif,
            c.price,
            c.qty,
            c.post_only,
            c.stp,
        )
        assert run(changed).digest() != base, i
    assert run(cmds[:-1]).digest() != base


def test_keeping_up_each_turn_leaves_the_digest_and_snapshot_bytes_unchanged():
    """The node's way: after each turn, encode what that turn added (its reported accounts and
    its answers), mixed with partial idle catch-ups; the results equal a cold encoding."""
    cmds = list(mixed_stream(5000, seed=8))
    warm = Engine(["XYZ"], 0)
    i, turn = 0, 1
    while i < len(cmds):
        for c in cmds[i : i + turn]:
            warm.process(c)
        i += turn
        warm.keep_up({r[1] for r in warm.reports if r[3]})
        warm.events.clear()
        warm.reports.clear()
        if turn % 5 == 0:
            warm.catch_up(17)
        turn = turn % 37 + 1  # turns of 1..37 commands
    cold = run(cmds)
    assert warm.state_bytes() == encode(cold.state()) == encode(warm.state())
    assert warm.digest() == cold.digest()


def test_sealed_chunks_and_tails_splice_to_the_same_bytes(monkeypatch):
    """The growing parts are kept as sealed chunks and a tail (state.CHUNK); with chunks of
    a few entries, every snapshot splices many of both, and must still equal a cold encoding."""
    from zex.nodes.matcher import state

    monkeypatch.setattr(state, "CHUNK", 200)
    cmds = list(mixed_stream(3000, seed=9))
    e = Engine(["XYZ"], 0)
    for i, c in enumerate(cmds, 1):
        e.process(c)
        e.keep_up({r[1] for r in e.reports})
        e.events.clear()
        e.reports.clear()
        if i % 600 == 0:
            assert b"".join(e.state_parts()) == e.state_bytes() == encode(e.state()), i
        if i == 1500:  # what a snapshot hands the writer thread must not change after it
            taken = e.state_parts()
            copied = [bytes(p) for p in taken]
            assert all(type(p) is bytes for p in taken)
    assert taken == copied
    sealed = [g for g in e._digester._logs.values() if len(g.chunks) > 3]
    assert sealed and e._digester._answers.chunks  # the case under test happened
    assert Engine.from_state(e.state(), ["XYZ"]).digest() == e.digest()


def test_orders_waiting_to_be_encoded_stay_bounded_when_nothing_encodes_them():
    """An engine whose owner takes no digest or snapshot (a replay, a tool) must not keep
    every order it ever rested alive in Book.fresh: place and cancel 20,000 orders."""
    from zex.protocol.internal import BUY, GTC, LIMIT, CancelCmd

    e = Engine(["XYZ"], 0)
    book = e.books["XYZ"]
    most = 0
    for i in range(20_000):
        e.process(NewOrderCmd(i, "gw", b"c", "a", f"n{i}", "XYZ", BUY, LIMIT, GTC, 100 + i % 7, 5))
        e.process(CancelCmd(i, "gw", b"c", "a", f"x{i}", "XYZ", e.next_order_id - 1))
        e.events.clear()
        e.reports.clear()
        most = max(most, len(book.fresh))
    assert book.resting == 0 and 4096 <= most <= 4100  # reached, and cut back (it would be 20,000)
    assert e.state_bytes() == encode(e.state())
