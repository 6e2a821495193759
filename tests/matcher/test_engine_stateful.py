"""A stateful property test: an engine that restarts from snapshots, a model, and a twin.

Hypothesis interleaves commands with exact resends of earlier commands and
with restarts (the engine is replaced by ``Engine.from_state`` of its own
snapshot). After every step the Driver checks the engine against the model
and the invariants (see harness.py), and a twin engine that never restarts
must have produced the same bytes: restarts are invisible. The twin is the
other build (builds.py): plain Python when the installed matcher is compiled,
so every step also checks that the two builds agree.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zex.nodes.matcher.builds import other_engine
from zex.nodes.matcher.engine import Engine
from zex.nodes.matcher.state import state_decoder
from zex.protocol.internal import BUY, SELL, encoder

from .harness import SYMBOLS, Driver, commands


class EngineMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.d = Driver()
        self.twin = other_engine()(SYMBOLS)
        self.restarts = 0

    def _twin_agrees(self) -> None:
        self.twin.process(self.d.commands[-1])
        assert encoder.encode(self.twin.take_events()) == self.d.encoded[-1]

    @rule(a=commands)
    def command(self, a: dict) -> None:
        self.d.step(a)
        self._twin_agrees()

    @precondition(lambda self: self.d.commands)
    @rule(i=st.integers(0, 1000))
    def resend(self, i: int) -> None:
        """The client resends an earlier command after a timeout: nothing may change."""
        books = {s: (b.depth(BUY), b.depth(SELL)) for s, b in self.d.engine.books.items()}
        self.d.apply(self.d.commands[-1 - i % len(self.d.commands)])
        assert self.d.last == []
        assert books == {s: (b.depth(BUY), b.depth(SELL)) for s, b in self.d.engine.books.items()}
        self._twin_agrees()

    @rule()
    def restart(self) -> None:
        """Replace the engine with one rebuilt from its snapshot."""
        eng = self.d.engine
        restored = Engine.from_state(state_decoder.decode(eng.state_bytes()))
        assert restored.digest() == eng.digest()
        self.d.engine = restored
        self.restarts += 1

    @invariant()
    def twin_has_same_state(self) -> None:
        if hasattr(self, "d"):
            assert self.twin.state_bytes() == self.d.engine.state_bytes()


EngineMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("ZEX_STATEFUL_EXAMPLES", "150")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_engine_machine = EngineMachine.TestCase
