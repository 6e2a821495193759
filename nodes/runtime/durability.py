"""The fsync policy of the record files (records.py: journal, audit segments): always, batch or off.

    sync = SyncPolicy("batch", interval_ms=5.0, what="matcher.fsync")
    sync.after_write(f.fileno())    # after each group commit
    sync.on_close(f.fileno())       # before closing or rotating a file
    sync.close()                    # when the writer is done: stops the syncer thread

  always  fsync after every group commit, before any ack: survives power loss.
  batch   fsync every interval while there are new writes, in a syncer thread:
          a power loss may lose the last interval of writes (and the fsync in
          progress); a process crash loses nothing.
  off     never fsync: the OS writes back when it likes; a process crash loses
          nothing, a power loss may lose seconds.

Why a thread for ``batch``: an fsync on this kind of disk takes 0.2 ms at the
median and 2 ms at p99 (measured, bench/README.md). Done on the writer's
thread every 5 ms, it stalled the matcher for that long and put the orders
that arrived meanwhile into the latency tail. The writer only marks the file
dirty; ``os.fsync`` releases the GIL, so the syncer costs the writer one
thread wake-up per interval. The lock is only for retiring a file: the syncer
never fsyncs a descriptor after ``on_close`` has returned for it.
"""

from __future__ import annotations

import os
import threading

FSYNC_POLICIES = ("always", "batch", "off")


class SyncPolicy:
    """When to fsync the one file that one writer thread appends to."""

    __slots__ = (
        "policy",
        "interval",
        "what",
        "_fd",
        "_dirty",
        "_lock",
        "_wake",
        "_thread",
        "error",
        "synced",
    )

    def __init__(self, policy: str, interval_ms: float, what: str = "fsync") -> None:
        if policy not in FSYNC_POLICIES:
            raise ValueError(f"{what} must be one of {FSYNC_POLICIES}, was {policy!r}")
        self.policy = policy
        self.interval = interval_ms / 1000.0
        self.what = what
        self._fd = -1  # the file the syncer keeps durable; -1: none
        self._dirty = False  # written since the syncer last looked (set by the writer only)
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set by close()
        self._thread: threading.Thread | None = None
        self.error: OSError | None = None  # the syncer's fsync failed: the writer raises it next
        self.synced = 0  # fsyncs done by the syncer thread

    def after_write(self, fd: int) -> None:
        if self.policy == "always":
            os.fsync(fd)
        elif self.policy == "batch":
            if self.error is not None:
                raise OSError(
                    f"{self.what}: a background fsync failed: {self.error}; the disk may be "
                    f"full or failing, and recent writes may not be durable"
                ) from self.error
            self._fd = fd
            self._dirty = True
            if self._thread is None:
                self._wake.clear()  # a policy used again after close() gets a working syncer
                self._thread = threading.Thread(
                    target=self._run, name=f"zex-sync-{self.what}", daemon=True
                )
                self._thread.start()

    def sync_now(self, fd: int) -> None:
        """fsync ``fd`` now, on the caller's thread, whatever the policy."""
        with self._lock:
            os.fsync(fd)

    def on_close(self, fd: int) -> None:
        """Make ``fd`` durable now (unless the policy is off) and stop syncing it."""
        with self._lock:
            if self.policy != "off":
                os.fsync(fd)
            if self._fd == fd:
                self._fd = -1
                self._dirty = False

    def close(self) -> None:
        """Stop the syncer thread (after on_close for the last file)."""
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            if not self._dirty:
                continue
            with self._lock:
                self._dirty = False  # a write after this point is caught by the next interval
                fd = self._fd
                if fd < 0:
                    continue
                try:
                    os.fsync(fd)
                except OSError as exc:
                    self.error = exc
                    return
                self.synced += 1
