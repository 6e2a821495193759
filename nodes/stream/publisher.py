"""The matcher's end of the event stream: the event log, then the PUB socket, then heartbeats.

    PUB  events_bind   frame 0: b"ev"   frame 1: EventBatch (first_seq, last_seq, events)
                       frame 0: b"hb"   frame 1: the last seq published, a MessagePack int,
                                        after ``heartbeat_ms`` without a batch (SPEC A.3)

One publisher per matcher, owned by the matcher thread (it creates the PUB
socket in ``bind``, so the socket never changes threads):

    pub = Publisher(data_dir, heartbeat_ms=1000)    # opens the event log, before recovery
    pub.regenerate(first, last, events)             # recovery hands over what the log lacks
    pub.cut_back(journal_seq)                       # the log never runs ahead of the journal
    pub.bind(ctx, events_bind, hwm)
    pub.publish(first, last, events)                # once per loop turn, after the journal write
    pub.idle(seq)                                   # when a poll found nothing: a due heartbeat
    pub.close()

Every batch goes to the event log before the PUB (SPEC A.3: whatever a
consumer has seen announced, the replay service has). The PUB never blocks:
a subscriber behind its high-water mark loses batches and fills them from
the replay service (replay.py), so the matcher never waits for anyone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from time import monotonic

import zmq

from zex.protocol.internal import EventBatch, encoder

from ..runtime.hotpath import MORE_NOBLOCK, NOBLOCK, send
from .eventlog import EventLog

log = logging.getLogger("zex.matcher")

TOPIC_EVENTS = b"ev"
TOPIC_HEARTBEAT = b"hb"


class Publisher:
    """The event log and the PUB socket of one matcher (see the module docstring)."""

    def __init__(self, directory: Path, heartbeat_ms: float = 1000.0) -> None:
        self.log = EventLog(Path(directory))
        self.sock: zmq.Socket | None = None
        self.heartbeat_s = heartbeat_ms / 1000.0
        self.regenerated = 0  # batches rebuilt from the journal at this start
        self._quiet_until = 0.0  # monotonic time of the next heartbeat if nothing is published

    @property
    def last_seq(self) -> int:
        """The last command whose batch is in the event log (0: none)."""
        return self.log.last_seq

    def regenerate(self, first: int, last: int, events: list) -> None:
        """Log a batch that recovery rebuilt from the journal (unpublished: no one listens yet)."""
        self.log.append(first, last, encoder.encode(EventBatch(first, last, events)))
        self.regenerated += 1

    def cut_back(self, seq: int) -> None:
        """Drop logged batches after ``seq``: the journal lost them (fsync off and a power loss)."""
        if self.log.last_seq > seq:
            log.warning(
                "event log runs to seq %d, the journal to %d: cutting the event log",
                self.log.last_seq,
                seq,
            )
            self.log.truncate_after(seq)

    def bind(self, ctx: zmq.Context, endpoint: str, hwm: int) -> None:
        """Create and bind the PUB socket (on the thread that will publish)."""
        sock = self.sock = ctx.socket(zmq.PUB)
        sock.linger = 0
        sock.sndhwm = hwm
        sock.bind(endpoint)
        self._quiet_until = monotonic() + self.heartbeat_s

    def publish(self, first_seq: int, last_seq: int, events: list) -> None:
        """Log, then publish, the batch of commands first_seq..last_seq (once per loop turn).

        One batch per turn, empty too: a resend takes a seq but makes no event, and
        consumers must see every seq accounted for.
        """
        batch = encoder.encode(EventBatch(first_seq, last_seq, events))
        self.log.append(first_seq, last_seq, batch)
        sock = self.sock
        assert sock is not None, "Publisher.publish before bind()"
        send(sock, TOPIC_EVENTS, MORE_NOBLOCK)
        send(sock, batch, NOBLOCK)
        self._quiet_until = monotonic() + self.heartbeat_s  # heartbeats are for quiet streams

    def idle(self, seq: int) -> None:
        """Send a heartbeat if nothing went out for ``heartbeat_ms``: a consumer then tells a
        quiet matcher from a lost last batch."""
        now = monotonic()
        if now >= self._quiet_until:
            sock = self.sock
            assert sock is not None, "Publisher.idle before bind()"
            send(sock, TOPIC_HEARTBEAT, MORE_NOBLOCK)
            send(sock, encoder.encode(seq), NOBLOCK)
            self._quiet_until = now + self.heartbeat_s

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
        self.log.close()
