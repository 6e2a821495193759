"""Property tests: whatever order reports arrive in, the stream is 1..n, once each, in order.

Two levels: the bare ``Sequencer`` given every report (shuffled, repeated),
and the whole ``Session`` given only some of them live while a model
gateway answers its ``recover`` requests (at random moments, a few reports
at a time) -- which checks that a recover is sent exactly when a report is
missing, from the first missing one, one at a time.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from zex.protocol.client import Sequencer, Session
from zex.protocol.codec import decode_request, encode
from zex.protocol.messages import Heartbeat, Recover

from .fakes import fill, logon_ack, recovered

EXAMPLES = int(os.environ.get("ZEX_PROPERTY_EXAMPLES", "300"))


@st.composite
def shuffled_with_repeats(draw, max_n: int = 40):
    """(n, a permutation of 1..n with some elements repeated anywhere)."""
    n = draw(st.integers(1, max_n))
    items = list(range(1, n + 1)) + draw(st.lists(st.integers(1, n), max_size=n))
    return n, draw(st.permutations(items))


@settings(max_examples=EXAMPLES, deadline=None)
@given(shuffled_with_repeats())
def test_sequencer_releases_exactly_one_to_n_in_order(case):
    n, arrivals = case
    seq = Sequencer(last=0)
    out: list[int] = []
    for r in arrivals:
        released = [x.rseq for x in seq.push(fill(r))]
        # what is released continues the stream without a hole
        assert released == list(range(len(out) + 1, len(out) + 1 + len(released)))
        out += released
        assert seq.last == len(out)
        assert seq.gap == (seq.high > seq.last)
        assert all(k > seq.last + 1 for k in seq.held)  # nothing releasable is held
    assert out == list(range(1, n + 1))
    assert not seq.held and not seq.gap
    assert seq.duplicates == len(arrivals) - n


class ModelGateway:
    """Holds reports 1..n; live reports reveal how far the account has got."""

    def __init__(self, n: int, limit: int) -> None:
        self.n = n
        self.limit = limit
        self.produced = 0  # the account's latest rseq so far, as far as the gateway knows
        self.waiting: list[Recover] = []

    def answer(self, req: Recover) -> list:
        to = min(req.from_rseq + req.limit - 1, self.produced)
        frames = [fill(r) for r in range(req.from_rseq, to + 1)]
        return frames + [recovered(req.from_rseq, max(to, req.from_rseq - 1), self.produced)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.data())
def test_session_recovers_exactly_the_missing_reports(data):
    n = data.draw(st.integers(0, 30), label="n")
    live = data.draw(
        st.lists(st.integers(1, n), max_size=2 * n) if n else st.just([]), label="live arrivals"
    )
    limit = data.draw(st.integers(1, 5), label="recover limit")
    gw = ModelGateway(n, limit)
    s = Session("alice", id_prefix="t", recover_limit=limit)
    s.logon()
    s.outgoing(0.0)
    s.receive(encode(logon_ack(next_rseq=1)), 0.0)
    stream: list[int] = []
    recovers_sent = 0

    def collect() -> None:
        nonlocal recovers_sent
        for frame in s.outgoing(0.0):
            req = decode_request(frame)
            assert type(req) is Recover
            # needed: something is known to be missing, and it asks from the first missing one
            assert s.seq.gap and req.from_rseq == s.seq.last + 1
            assert req.limit == limit
            assert not gw.waiting, "a second recover while one is in flight"
            gw.waiting.append(req)
            recovers_sent += 1
        stream.extend(r.rseq for r in s.take_reports())

    def deliver(msg) -> None:
        s.receive(encode(msg), 0.0)
        collect()

    def answer_one() -> None:
        for msg in gw.answer(gw.waiting.pop(0)):
            deliver(msg)

    for r in live:
        gw.produced = max(gw.produced, r)
        deliver(fill(r))
        if gw.waiting and data.draw(st.booleans(), label="answer a recover now"):
            answer_one()
    # the gateway's heartbeat reveals any lost tail; then recovery runs to the end
    gw.produced = n
    deliver(Heartbeat(next_seq=n + 1))
    for _ in range(2 * n + 5):  # a bound, so a recover loop fails the test instead of hanging
        if not gw.waiting:
            break
        answer_one()
    assert not gw.waiting
    assert stream == list(range(1, n + 1))
    assert s.settled()
    if live == sorted(live) and set(live) == set(range(1, n + 1)):
        assert recovers_sent == 0  # in order with repeats only: nothing was ever missing
