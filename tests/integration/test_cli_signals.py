"""SIGINT and SIGTERM while ``zex`` starts or stops: whatever started is stopped, and said so.

Real ``zex`` processes where the timing can be made certain without a sleep in the product: a
matcher recovering a journal of many commands is still starting for a second or more, and the
test signals it once its event log is being rebuilt (the recovery is under way). The signal in
the middle of a stop is tested in-process, with parts whose stop() sends it, where it lands
exactly there.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
import zmq

from tests.conftest import free_port, free_port_config, wait_for
from zex.nodes.matcher.journal import Journal
from zex.nodes.runtime.service import NodeThread
from zex.nodes.tools import cli
from zex.protocol.internal import BUY, GTC, LIMIT, SELL, NewOrderCmd, encoder

pytestmark = pytest.mark.integration

COMMANDS = 200_000  # about 1.5 s of recovery here, compiled and idle (more when loaded or pure)
BATCH = 1000


def write_journal(directory: Path, n: int = COMMANDS) -> None:
    """``n`` resting orders of the demo's market maker, away from the demo's prices: each is
    applied and regenerates events at recovery, so recovery takes a while."""
    journal = Journal(directory, "off")
    seq = 1
    try:
        while seq <= n:
            batch = [
                encoder.encode(
                    NewOrderCmd(
                        1,
                        "gw",
                        b"c",
                        "maker",
                        f"o{s}",
                        "XYZ",
                        BUY if s % 2 else SELL,
                        LIMIT,
                        GTC,
                        (9000 if s % 2 else 10100) + s % 500,
                        1,
                    )
                )
                for s in range(seq, seq + BATCH)
            ]
            journal.write(seq, batch)
            seq += BATCH
    finally:
        journal.close()


def binds(cfg: Path) -> list[tuple[str, int]]:
    """Every (host, port) the config binds (tcp endpoints and metrics host:port)."""
    out = []
    for section in tomllib.loads(cfg.read_text()).values():
        if not isinstance(section, dict):
            continue
        for key, value in section.items():
            if (key == "bind" or key.endswith("_bind")) and value:
                host, _, port = value.removeprefix("tcp://").rpartition(":")
                out.append((host, int(port)))
    return out


def bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Zex:
    """``python -m zex.nodes.tools.cli ARGS``; its stdout read as it comes, stderr to a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._err = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zex.nodes.tools.cli", *args],
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.out = b""

    def read(self) -> str:
        assert self.proc.stdout is not None
        self.out += self.proc.stdout.read() or b""
        return self.out.decode(errors="replace")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def zex_proc():
    started: list[Zex] = []

    def start(args: list[str], log: Path) -> Zex:
        z = Zex(args, log)
        started.append(z)
        return z

    yield start
    for z in started:
        z.close()


@pytest.mark.parametrize(
    "command, signum",
    [("run", signal.SIGINT), ("run", signal.SIGTERM), ("matcher", signal.SIGTERM)],
    ids=["run-SIGINT", "run-SIGTERM", "matcher-SIGTERM"],
)
def test_a_signal_while_the_matcher_recovers_stops_it_cleanly(tmp_path, zex_proc, command, signum):
    # Before the fix: zex run died on matcher.engine.seq (AttributeError, exit 1) and neither
    # command stopped the matcher it was starting (its thread was cut off mid-recovery).
    data = tmp_path / "data"
    cfg = free_port_config(tmp_path / "zex.toml", data)
    write_journal(data / "matcher")
    args = [command, "--config", str(cfg)] + (["--quiet"] if command == "run" else [])
    z = zex_proc(args, tmp_path / "zex.log")

    def recovering() -> bool:
        assert z.proc.poll() is None, f"exited {z.proc.returncode}:\n{z.stderr()}"
        # The matcher's thread opens its event log and rebuilds it batch by batch as it replays.
        return any(p.stat().st_size for p in (data / "matcher").glob("events-*"))

    wait_for(recovering, 30, "the matcher to start recovering")
    z.proc.send_signal(signum)
    assert "recovered to seq" not in z.stderr(), "signalled too late: the recovery was over"
    rc = z.proc.wait(60)
    out, err = z.read(), z.stderr()
    assert rc == 0, err  # a stop that was asked for and completed, as after the banner
    assert "Traceback" not in err and "Error" not in err, err
    assert "zex: stopping (Ctrl+C again to force)" in err, err
    assert "Ctrl+C to quit" not in out, out  # no banner: it was stopped while starting
    # The matcher was stopped, not abandoned: it finished its recovery, then its loop heard
    # the stop (a daemon thread cut off at exit would have logged neither).
    assert f"recovered to seq {COMMANDS}" in err and "matcher at seq" in err, err
    assert "did not stop cleanly" not in err, err
    if command == "run":
        m = re.search(r"zex stopped at seq (\d+)", out)  # its journal's, and the risk limits
        assert m and int(m.group(1)) >= COMMANDS, out
    taken = [f"{h}:{p}" for h, p in binds(cfg) if not bindable(h, p)]
    assert not taken, f"still held after exit: {taken}"


# ---------------------------------------------------------------- in-process, with fake parts


class Fake:
    """A part for cli._serve: start() and stop() are logged and may run a hook."""

    def __init__(self, name: str, log: list[str], on_start=None, on_stop=None) -> None:
        self.name, self.log = name, log
        self.on_start, self.on_stop = on_start, on_stop
        self.ended = False
        self.error: BaseException | None = None

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.on_start is not None:
            self.on_start(self)

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.on_stop is not None:
            self.on_stop(self)


@pytest.fixture
def handlers():
    """The test process's own SIGINT and SIGTERM handlers, put back whatever _serve leaves."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield before
    for s, h in before.items():
        signal.signal(s, h)


def serve(parts: list[Fake], after=None) -> int:
    try:
        return cli._serve([cli.Part(p.name, p) for p in parts], lambda: None, after)
    except KeyboardInterrupt:  # what the code before the fix let out; pytest would stop on it
        pytest.fail("a KeyboardInterrupt escaped _serve")


def dies(part: Fake) -> None:
    part.ended, part.error = True, OSError(errno.ENOSPC, "No space left on device")


def test_a_signal_during_a_start_stops_the_part_being_started(handlers, capfd):
    log: list[str] = []

    def interrupted(part: Fake) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs before os.kill returns
        threading.Event().wait(5)  # a start that would go on (a matcher recovering)

    after: list[bool] = []
    rc = serve(
        [Fake("a", log), Fake("b", log, on_start=interrupted), Fake("c", log)],
        lambda: after.append(True),
    )
    assert rc == 0
    assert log == ["start a", "start b", "stop b", "stop a"]  # before the fix: b never stopped
    assert after == [True]
    assert "zex: stopping (Ctrl+C again to force)" in capfd.readouterr().err
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # _serve put them back


def test_a_signal_during_the_stop_after_a_failure_neither_cuts_it_short_nor_loses_the_line(
    handlers, capfd
):
    log: list[str] = []
    after: list[bool] = []
    rc = serve(
        [
            Fake("a", log),
            Fake("b", log, on_stop=lambda p: os.kill(os.getpid(), signal.SIGTERM)),
            Fake("c", log, on_start=dies),
        ],
        lambda: after.append(True),
    )
    err = capfd.readouterr().err
    assert rc == 1, err
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert after == []  # after() is for a clean stop
    lines = [ln for ln in err.splitlines() if ln.startswith("zex:")]
    assert lines[0] == "zex: stopping (Ctrl+C again to force)", err  # the signal, noted
    assert lines[-1].startswith("zex: c stopped: [Errno 28] No space left on device"), err
    assert "Traceback" not in err, err


def test_a_second_signal_during_that_stop_forces_exit_and_still_says_the_failure(handlers, capfd):
    log: list[str] = []

    def twice(part: Fake) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as forced:
        serve([Fake("a", log), Fake("b", log, on_stop=twice), Fake("c", log, on_start=dies)])
    assert forced.value.code == 130
    assert log == ["start a", "start b", "start c", "stop c", "stop b"]  # forced: a is left
    err = capfd.readouterr().err
    assert "zex: forced exit" in err and "zex: c stopped: [Errno 28]" in err, err


class EndsAsTheSignalComes(Fake):
    """A node whose loop has ended when a signal arrives, before the watch has looked."""

    @property  # type: ignore[override]
    def ended(self) -> bool:
        if not self._signalled:
            self._signalled = True
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, the node ended
        return True

    @ended.setter
    def ended(self, value: bool) -> None:
        self._signalled = False


def test_a_signal_that_comes_as_a_node_ends_does_not_hide_the_failure(handlers, capfd):
    # Before the fix the signal turned the failure into a clean stop: exit 0, no line.
    log: list[str] = []
    node = EndsAsTheSignalComes("c", log)
    node.error = OSError(errno.EFBIG, "File too large")
    rc = serve([Fake("a", log), node])
    err = capfd.readouterr().err
    assert rc == 1, err
    assert log == ["start a", "start c", "stop c", "stop a"]
    assert "zex: c stopped: [Errno 27] File too large" in err, err


# ---------------------------------------------------------------- NodeThread itself


class SlowStart(NodeThread):
    """A loop whose start-up work (a matcher's recovery) lasts until ``go`` is set."""

    def __init__(self, metrics_bind: str) -> None:
        super().__init__("slow", None, logging.getLogger("zex.test"), metrics_bind)
        self.working, self.go = threading.Event(), threading.Event()
        self.told_to_stop = False

    def _run(self) -> None:
        self.working.set()
        self.go.wait(30)
        ctrl = self.ctx.socket(zmq.PAIR)
        try:
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            self._ready.set()
            self.told_to_stop = ctrl.recv() == b"STOP"
        finally:
            ctrl.close(0)


class Interrupted(BaseException):
    """What the test's signal handler raises in start(), as zex's raises KeyboardInterrupt."""


def test_stop_after_an_interrupted_start_waits_for_the_start_up_work_then_stops(ctx):
    port = free_port()
    node = SlowStart(f"127.0.0.1:{port}")

    def interrupt(signum, frame):
        raise Interrupted

    before = signal.signal(signal.SIGUSR1, interrupt)
    try:
        threading.Thread(
            target=lambda: node.working.wait(10) and os.kill(os.getpid(), signal.SIGUSR1),
            daemon=True,
        ).start()
        with pytest.raises(Interrupted):
            node.start(timeout=30)
    finally:
        signal.signal(signal.SIGUSR1, before)
    assert not node.go.is_set() and node._thread is not None and node._thread.is_alive()

    # The start-up work outlasts stop()'s own timeout; start() would have waited for it. Before
    # the fix stop() gave up after 0.2 s (TimeoutError) with the thread still working.
    # t0 before the timer starts: a loaded machine may pause this thread past 0.5 s between
    # the two, and stop() must still be seen to have waited for the work, not to have returned.
    timer = threading.Timer(0.5, node.go.set)
    t0 = time.monotonic()
    timer.start()
    try:
        node.stop(timeout=0.2)
        took = time.monotonic() - t0
    finally:
        timer.cancel()
        node.go.set()
    assert node.told_to_stop  # the loop heard the pipe, once it could
    assert node._thread is None and not node.ended
    assert 0.5 <= took < 10, took  # it cannot end before go is set
    assert bindable("127.0.0.1", port)  # its /metrics is gone


def test_stop_after_a_start_interrupted_before_its_thread_only_stops_the_metrics():
    port = free_port()
    node = SlowStart(f"127.0.0.1:{port}")
    node.exporter.start()  # start() got this far when the signal came (zex run's first line)
    assert not bindable("127.0.0.1", port)
    node.stop(timeout=1)
    assert bindable("127.0.0.1", port) and not node.working.is_set() and not node.ended
