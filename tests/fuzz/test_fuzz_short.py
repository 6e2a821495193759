"""The fuzz targets of fuzz/ in the suite: a short, deterministic run of each with hypothesis.

``make fuzz`` runs them under atheris for a million inputs each (bench/README.md);
here each gets its seeds and a few thousand derandomised inputs, fed through
the same mode byte and map builder (fuzz/shapes.py), so a finding of the long
run can be kept as a test. Every target checks its own invariants and raises
on a finding; these tests add that the run reached the reject codes it should,
so a harness that silently stopped exercising zex would fail here.
"""

from __future__ import annotations

import random

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import (
    TARGETS,
    CodecTarget,
    IntakeTarget,
    SnapshotTarget,
    Target,
)
from zex.protocol import marketdata as md
from zex.protocol.reasons import Reason as R

EXAMPLES = 2000

# What each short run reaches (measured, derandomised): a floor, not the whole set.
CODEC_CODES = {R.MALFORMED, R.UNKNOWN_TYPE, R.MISSING_FIELD, R.WRONG_TYPE, R.INVALID_VALUE}
INTAKE_CODES = CODEC_CODES | {R.UNKNOWN_SYMBOL, R.NOT_LOGGED_ON, R.AUTH_FAILED}
SNAPSHOT_CODES = CODEC_CODES | {R.UNKNOWN_SYMBOL}


def short_run(target: Target) -> Target:
    for data in target.corpus():
        target.one(data)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.binary(max_size=512))
    def fuzz(data: bytes) -> None:
        target.one(data)

    fuzz()
    return target


@pytest.mark.parametrize(
    ("cls", "floor"),
    [(CodecTarget, CODEC_CODES), (IntakeTarget, INTAKE_CODES), (SnapshotTarget, SNAPSHOT_CODES)],
    ids=["codec", "intake", "snapshot"],
)
def test_short_fuzz_run_finds_nothing_and_reaches_the_reject_codes(cls, floor):
    target = short_run(cls())
    assert target.inputs >= EXAMPLES
    missing = {int(c) for c in floor} - target.codes
    assert not missing, f"{cls.name} never reached {sorted(missing)}: the harness lost its reach"


def test_every_target_is_run_here():
    assert set(TARGETS) == {"codec", "intake", "snapshot"}


def test_a_valid_seed_is_accepted_by_each_target():
    # The seeds are accepted messages: no reject code comes from replaying them alone.
    intake = IntakeTarget()
    orders = [s for s in intake.corpus() if s[0] == 0 and s[1] == 0 and b"new_order" in s]
    assert orders
    for data in orders[:3]:
        intake.one(data)
    assert intake.codes == set()


@pytest.mark.integration
def test_a_real_marketdata_node_answers_every_fuzzed_request(md_exchange):
    # The snapshot target calls MarketDataNode._snapshot directly; here the same frames go
    # through a real node's ROUTER (real processes): one answer each, a reject with a reason.
    ex = md_exchange
    ex.start("matcher")
    ex.start("marketdata")
    target = SnapshotTarget()
    rng = random.Random(15)
    inputs = target.corpus() + [rng.randbytes(rng.randrange(1, 200)) for _ in range(300)]
    d = zmq.Context.instance().socket(zmq.DEALER)
    d.linger = 0
    d.connect(ex.snapshot_ep)
    codes = set()
    try:
        for data in inputs:
            d.send(target.frame(data))
            assert d.poll(5000), f"no answer to {target.frame(data)!r}"
            reply = md.snapshot_reply_decoder.decode(d.recv())  # one a subscriber reads
            if isinstance(reply, md.SnapshotReject):
                codes.add(R(reply.code))
                assert reply.text
        assert not d.poll(100), "a request got more than one answer"
    finally:
        d.close(0)
    assert {R.MALFORMED, R.UNKNOWN_SYMBOL} <= codes
