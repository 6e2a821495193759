"""The fsync policy the journal and the audit segments share: always, batch or off.

    sync = SyncPolicy("batch", interval_ms=5.0, what="matcher.fsync")
    sync.after_write(f.fileno())    # after each group commit
    sync.if_due(f.fileno())         # when idle: a batch write older than the interval
    sync.on_close(f.fileno())       # closing or rotating a file

  always  fsync after every group commit, before any ack: survives power loss.
  batch   fsync at most every interval: a power loss may lose the last interval
          of writes; a process crash loses nothing.
  off     never fsync: the OS writes back when it likes; a process crash loses
          nothing, a power loss may lose seconds.
"""

from __future__ import annotations

import os
import time

FSYNC_POLICIES = ("always", "batch", "off")


class SyncPolicy:
    """When to fsync one file that one thread writes."""

    __slots__ = ("policy", "interval", "_last")

    def __init__(self, policy: str, interval_ms: float, what: str = "fsync") -> None:
        if policy not in FSYNC_POLICIES:
            raise ValueError(f"{what} must be one of {FSYNC_POLICIES}, was {policy!r}")
        self.policy = policy
        self.interval = interval_ms / 1000.0
        self._last = 0.0

    def after_write(self, fd: int) -> None:
        if self.policy == "always":
            os.fsync(fd)
        elif self.policy == "batch":
            self.if_due(fd)

    def if_due(self, fd: int) -> None:
        """Under ``batch``, fsync if the last fsync is older than the interval."""
        if self.policy == "batch":
            now = time.monotonic()
            if now - self._last >= self.interval:
                os.fsync(fd)
                self._last = now

    def on_close(self, fd: int) -> None:
        if self.policy != "off":
            os.fsync(fd)
