"""The lifecycle every node shares: one owning thread, ready or failed, stopped through a pipe.

    class MyNode(NodeThread):
        def _run(self):              # binds its sockets in the owning thread,
            ...                      # calls self._ready.set(), then loops until
                                     # self._ctrl_addr says b"STOP"

    node.start()   # serves its /metrics (if any), returns once ready, or raises the error that stopped it
    node.ended     # True once the loop has ended without stop(): node.error says why
    node.stop()    # sends b"STOP" on the control pipe, joins, stops its /metrics; also after a
                   # start() that a signal interrupted (see stop())
    node.join()    # blocks until the loop ends, then re-raises its error

The node is fail-stop: a loop that raises ends, and whoever runs it (the
``zex`` command) sees ``ended`` and stops the process. ``stop()`` never waits
on a dead loop: a loop that died has closed its end of the control pipe, and
a blocking send to it would never return (issue 14: the process then hung,
its /metrics still answering, and no supervisor restarted it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import zmq

from .metrics import Exporter, Sampled


class NodeThread:
    """Run a node's loop in a thread of this process; the node is fail-stop."""

    namespace = ""  # metrics are zex_<namespace>_*; a node with metrics sets it and _metrics()

    def __init__(
        self, role: str, ctx: zmq.Context | None, log: logging.Logger, metrics_bind: str = ""
    ) -> None:
        self.role = role
        self.exporter = Exporter(metrics_bind)  # its /metrics, served from start() to stop()
        self.ctx = ctx or zmq.Context.instance()
        self._log = log
        self._ctrl_addr = f"inproc://zex-{role}-ctrl-{uuid.uuid4().hex}"
        self._ctrl: zmq.Socket | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_deadline = 0.0  # how long start() waits for the loop to be ready
        self._error: BaseException | None = None

    def _run(self) -> None:  # pragma: no cover - every node defines it
        raise NotImplementedError

    def _metrics(self) -> list:
        """The node's metrics as Sampled items (nodes/runtime/metrics.py); none by default."""
        return []

    def start(self, timeout: float = 30.0) -> None:
        self._start_deadline = time.monotonic() + timeout
        items = self._metrics()
        if items:
            self.exporter.add(Sampled(f"zex_{self.namespace}", items))
        self.exporter.start()
        try:
            self._start_thread(timeout)
        except BaseException:
            self.exporter.stop()
            raise

    def _start_thread(self, timeout: float) -> None:
        self._ctrl = self.ctx.socket(zmq.PAIR)
        self._ctrl.linger = 0
        self._ctrl.bind(self._ctrl_addr)
        self._thread = threading.Thread(target=self._main, name=f"zex-{self.role}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.role} did not become ready within {timeout} s")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and the /metrics, whatever start() got to.

        After a start() that did not return (a signal interrupted it while the loop was still
        on its start-up work, such as a matcher recovering a long journal), the loop hears the
        control pipe only once that work is done: stop() waits for it as long as start() would
        have, then ``timeout`` more. A start-up that never ends is what a second signal is for.
        """
        try:
            self._stop_thread(timeout)
        finally:
            self.exporter.stop()

    def _stop_thread(self, timeout: float) -> None:
        thread, ctrl = self._thread, self._ctrl
        if thread is None or thread.ident is None or ctrl is None:
            # start() never got its thread going (interrupted before): only the pipe to close
            self._thread = None
            self._close_ctrl()
            return
        now = time.monotonic()
        deadline = now + timeout
        if not self._ready.is_set():
            deadline = max(now, self._start_deadline) + timeout  # see stop()
        # Never a blocking send: a PAIR without its peer (a loop that died and closed its end,
        # or one not yet connected) blocks forever. EAGAIN while the thread lives means not
        # connected yet, or winding down after an error: look again until it ends or is told.
        while thread.is_alive():
            try:
                ctrl.send(b"STOP", zmq.NOBLOCK)
                break
            except zmq.Again:
                thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    break
        thread.join(max(0.0, deadline - time.monotonic()))
        self._close_ctrl()
        if thread.is_alive():
            state = "ready" if self._ready.is_set() else "still starting"
            raise TimeoutError(f"{self.role} thread ({state}) did not stop within {timeout} s")
        self._thread = None

    def _close_ctrl(self) -> None:
        if self._ctrl is not None:
            self._ctrl.close(linger=0)
            self._ctrl = None

    @property
    def ended(self) -> bool:
        """True once the loop has ended on its own (a fatal error) rather than through stop()."""
        t = self._thread
        return t is not None and t.ident is not None and not t.is_alive()  # started, then ended

    @property
    def error(self) -> BaseException | None:
        """The error that ended the loop (or failed start()), if any."""
        return self._error

    def join(self) -> None:
        """Block until the loop ends (on stop() or a fatal error), then re-raise that error."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced through start(), join() and ended/error
            # One line here; whoever runs the node says what to check. The traceback is for -v.
            self._log.error("%s stopped on an error: %s: %s", self.role, type(exc).__name__, exc)
            self._log.debug("%s: the error's traceback", self.role, exc_info=True)
            self._error = exc
            self._ready.set()
