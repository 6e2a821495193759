"""A node that dies on a fatal error exits, non-zero, at once, saying what failed and what to check.

Real ``zex`` processes. The write errors are real too: the child runs under a
small RLIMIT_FSIZE with SIGXFSZ ignored, so a write past the limit fails with
EFBIG ("File too large"), as a full disk fails with ENOSPC, while the test's
own files are untouched.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import zmq

from tests.conftest import free_port, wait_for
from zex.nodes.runtime.service import NodeThread
from zex.protocol.internal import BUY, GTC, LIMIT, SELL, NewOrderCmd, encoder

pytestmark = pytest.mark.integration

LIMIT_BYTES = 64 * 1024  # the child's file-size limit: a flood passes it within a second
EXIT_S = 5.0  # fault to exit, with room for a loaded 2-core machine (measured: well under a second)
START_S = 30.0


def limit_file_size() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, resource.RLIM_INFINITY))
    # EFBIG instead of being killed (Python ignores SIGXFSZ at startup too; this says so here)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class DiesAfterReady(NodeThread):
    """A loop that fails as a full disk makes the matcher's fail, closing its sockets on the way."""

    def __init__(self) -> None:
        super().__init__("dies", None, logging.getLogger("zex.test"))
        self.die = threading.Event()  # set by the test once start() has returned

    def _run(self) -> None:
        ctrl = self.ctx.socket(zmq.PAIR)
        try:
            ctrl.linger = 0
            ctrl.connect(self._ctrl_addr)
            self._ready.set()
            self.die.wait(10)
            raise OSError(errno.ENOSPC, "No space left on device")
        finally:
            ctrl.close(0)


def test_stop_returns_at_once_when_the_loop_has_died():
    node = DiesAfterReady()
    node.start()
    node.die.set()
    wait_for(lambda: node.ended, 10, "the loop to end")
    assert isinstance(node.error, OSError) and node.error.errno == errno.ENOSPC
    stopper = threading.Thread(target=node.stop, daemon=True)  # before the fix: blocked for ever
    t0 = time.monotonic()
    stopper.start()
    stopper.join(EXIT_S)
    assert not stopper.is_alive(), "stop() blocked on a dead loop"
    assert time.monotonic() - t0 < 1.0
    assert not node.ended  # stopped: nothing left to report


def matcher_config(tmp_path: Path, data: Path) -> tuple[Path, str, int]:
    cmd_ep, metrics = f"tcp://127.0.0.1:{free_port()}", free_port()
    cfg = tmp_path / "zex.toml"
    cfg.write_text(
        "accounts = []\n"
        "[matcher]\n"
        f'bind = "{cmd_ep}"\nevents_bind = "tcp://127.0.0.1:{free_port()}"\n'
        f'replay_bind = "tcp://127.0.0.1:{free_port()}"\nmetrics_bind = "127.0.0.1:{metrics}"\n'
        f'data_dir = "{data}"\nfsync = "off"\nsnapshot_every = 0\ndigest_every = 0\n'
        '[[instruments]]\nsymbol = "XYZ"\ntick = "0.01"\nlot = "1"\nmax_price = "100000"\n'
    )
    return cfg, cmd_ep, metrics


class Zex:
    """``python -m zex.nodes.tools.cli ARGS`` as a process; always killed at the end of the test."""

    def __init__(self, args: list[str], log: Path, limited: bool = False) -> None:
        self.log = log
        self._err = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zex.nodes.tools.cli", *args],
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            preexec_fn=limit_file_size if limited else None,
        )
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.out = b""

    def ready(self) -> None:
        def banner():
            self.out += self.proc.stdout.read() or b""
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.stderr()}"
            return b"Ctrl+C to quit" in self.out

        wait_for(banner, START_S, "the banner")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def zex_proc():
    started: list[Zex] = []

    def start(args, log, limited=False):
        z = Zex(args, log, limited)
        started.append(z)
        return z

    yield start
    for z in started:
        z.close()


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def size_of(directory: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern))


def flood(ctx, endpoint: str, z: Zex, full, orders) -> float:
    """Send ``orders`` until ``full()``, then until the process exits: the seconds between the two.

    The test fails if the process is still running EXIT_S after the file filled up.
    """
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.sndhwm = 1000
    dealer.identity = b"tgw"
    dealer.connect(endpoint)
    filled = None
    deadline = time.monotonic() + 60
    for cmd in orders:
        if z.proc.poll() is not None:
            break
        now = time.monotonic()
        assert now < deadline, "the files never filled up"
        if filled is None and full():
            filled = now
        if filled is not None:
            assert now - filled < EXIT_S, f"still running {EXIT_S} s after the fault:\n{z.stderr()}"
        try:
            dealer.send(encoder.encode(cmd), zmq.NOBLOCK)
        except zmq.Again:
            dealer.poll(10, zmq.POLLOUT)
        while dealer.poll(0):  # the acks: the node keeps serving until the fault
            dealer.recv()
    exited = time.monotonic()
    dealer.close(0)
    assert filled is not None, f"exited before its files filled up:\n{z.stderr()}"
    return exited - filled


def resends(n: int = 10**9):
    """One order, then the same order again and again: each resend is journaled (it takes a seq)
    but makes no event, so the journal grows and the event log barely does."""
    cmd = NewOrderCmd(1, "tgw", b"c1", "acct1", "the-same-order", "XYZ", BUY, LIMIT, GTC, 100, 1)
    for _ in range(n):
        yield cmd


def sweeps(n: int = 10**9):
    """Twenty one-lot sells, then a buy of twenty that trades with all of them: the events
    (an accept each, twenty trades and their fills) outgrow the commands, so the event log
    fills first."""
    for i in range(n):
        if i % 21 < 20:
            yield NewOrderCmd(1, "tgw", b"c1", "a0", f"s{i}", "XYZ", SELL, LIMIT, GTC, 10000, 1)
        else:
            yield NewOrderCmd(1, "tgw", b"c1", "a1", f"b{i}", "XYZ", BUY, LIMIT, GTC, 10000, 20)


def zex_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("zex:")]


def test_matcher_exits_at_once_when_a_journal_write_fails(tmp_path, zex_proc, ctx):
    data = tmp_path / "data"
    cfg, cmd_ep, metrics = matcher_config(tmp_path, data)
    z = zex_proc(["matcher", "--config", str(cfg)], tmp_path / "m1.log", limited=True)
    z.ready()
    assert answers(metrics)

    took = flood(ctx, cmd_ep, z, lambda: size_of(data, "journal-*") >= LIMIT_BYTES, resends())
    rc = z.wait(EXIT_S)
    print(f"journal full -> exit: {took:.3f} s")
    err = z.stderr()
    assert rc == 1, err
    assert "Traceback" not in err, err  # the traceback is for -v
    [line] = zex_lines(err)
    assert line.startswith("zex: matcher stopped: ") and "File too large" in line, line
    assert str(data) in line and "journal" in line, line  # what failed, and where
    assert "check" in line and "restart" in line, line  # what to do
    assert not answers(metrics)
    assert size_of(data, "events-*") < LIMIT_BYTES  # it was the journal that failed

    # What the line promises: started again (no limit), it recovers and serves.
    z2 = zex_proc(["matcher", "--config", str(cfg)], tmp_path / "m2.log")
    z2.ready()
    assert int(re.search(rb"seq (\d+)", z2.out).group(1)) > 100
    z2.proc.send_signal(signal.SIGINT)
    assert z2.wait(20) == 0


def test_matcher_exits_at_once_when_an_event_log_write_fails(tmp_path, zex_proc, ctx):
    # Before the fix this one hung for ever: the loop's cleanup closed its end of the control
    # pipe, and stop()'s blocking send waited for a reader that was gone, /metrics answering.
    data = tmp_path / "data"
    cfg, cmd_ep, metrics = matcher_config(tmp_path, data)
    z = zex_proc(["matcher", "--config", str(cfg)], tmp_path / "m.log", limited=True)
    z.ready()
    assert answers(metrics)

    took = flood(ctx, cmd_ep, z, lambda: size_of(data, "events-*") >= LIMIT_BYTES, sweeps())
    rc = z.wait(EXIT_S)
    print(f"event log full -> exit: {took:.3f} s")
    err = z.stderr()
    assert rc == 1, err
    assert "Traceback" not in err, err
    [line] = zex_lines(err)
    assert line.startswith("zex: matcher stopped: ") and str(data) in line, line
    assert re.search(r"event log|events-\d+", line), line  # what failed
    # The event log's own error says what to do: the CLI adds no second copy of that advice.
    assert re.search(r"free disk space|check the disk", line) and "restart" in line, line
    assert line.count("restart") == 1, line  # one piece of advice, not two
    assert not answers(metrics)


def run_config(tmp_path: Path) -> tuple[Path, str, int]:
    """A zex run config on free ports: the matcher's command endpoint and metrics port."""
    cmd_ep, metrics = f"tcp://127.0.0.1:{free_port()}", free_port()
    cfg = tmp_path / "zex.toml"
    cfg.write_text(
        f'[matcher]\nbind = "{cmd_ep}"\nevents_bind = "tcp://127.0.0.1:{free_port()}"\n'
        f'replay_bind = "tcp://127.0.0.1:{free_port()}"\nmetrics_bind = "127.0.0.1:{metrics}"\n'
        'fsync = "off"\nsnapshot_every = 0\ndigest_every = 0\n'
        f'[gateway]\nbind = "tcp://127.0.0.1:{free_port()}"\nmetrics_bind = ""\n'
        f'[marketdata]\nfeed_bind = "tcp://127.0.0.1:{free_port()}"\n'
        f'snapshot_bind = "tcp://127.0.0.1:{free_port()}"\nmetrics_bind = ""\n'
        f'[logger]\nbind = "tcp://127.0.0.1:{free_port()}"\nmetrics_bind = ""\nfsync = "off"\n'
    )
    return cfg, cmd_ep, metrics


def test_zex_run_exits_when_its_matcher_dies(tmp_path, zex_proc, ctx):
    cfg, cmd_ep, metrics = run_config(tmp_path)
    data = tmp_path / "data"
    z = zex_proc(
        ["run", "--config", str(cfg), "--data-dir", str(data), "--quiet"],
        tmp_path / "run.log",
        limited=True,
    )
    z.ready()
    assert answers(metrics)

    took = flood(ctx, cmd_ep, z, lambda: size_of(data, "journal-*") >= LIMIT_BYTES, resends())
    rc = z.wait(EXIT_S)
    print(f"zex run: journal full -> exit: {took:.3f} s")
    err = z.stderr()
    assert rc == 1, err
    assert "Traceback" not in err, err
    [line] = zex_lines(err)
    assert line.startswith("zex: matcher stopped: ") and "File too large" in line, line
    assert str(data) in line and "journal" in line and "check" in line, line
    assert not answers(metrics)


def test_a_sigterm_while_zex_run_stops_for_a_dead_matcher_lets_it_finish_and_say_why(
    tmp_path, zex_proc, ctx
):
    # A supervisor's SIGTERM (or a Ctrl+C) as the process is stopping for a failed node. Before
    # the fix it became a KeyboardInterrupt: in the watch it turned the failure into a clean
    # stop (exit 0, no line); in the stop it escaped it (the rest left running, a traceback).
    cfg, cmd_ep, metrics = run_config(tmp_path)
    data = tmp_path / "data"
    z = zex_proc(
        ["run", "--config", str(cfg), "--data-dir", str(data), "--quiet"],
        tmp_path / "run.log",
        limited=True,
    )
    z.ready()
    sent: list[bool] = []

    def sigterm_once_the_matcher_dies() -> None:
        # The matcher's loop logs its error as it ends; the main thread notices within
        # WATCH_S and stops the four other parts: the signal lands in that stop, or just before.
        deadline = time.monotonic() + 60
        while z.proc.poll() is None and time.monotonic() < deadline:
            if "matcher stopped on an error" in z.stderr():
                z.proc.send_signal(signal.SIGTERM)
                sent.append(True)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=sigterm_once_the_matcher_dies, daemon=True)
    watcher.start()
    try:
        flood(ctx, cmd_ep, z, lambda: size_of(data, "journal-*") >= LIMIT_BYTES, resends())
        rc = z.wait(EXIT_S)
    finally:
        watcher.join(70)
    err = z.stderr()
    assert sent, f"the process exited before the test saw the matcher's error:\n{err}"
    assert rc == 1, err  # the failure, not a clean stop: the supervisor must restart it
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "zex: stopping (Ctrl+C again to force)" in err, err  # the signal was heard
    assert "forced exit" not in err, err
    [failure] = [ln for ln in zex_lines(err) if "stopping" not in ln]
    assert failure.startswith("zex: matcher stopped: ") and "File too large" in failure, failure
    assert "did not stop cleanly" not in err, err
    assert not answers(metrics)


def test_logger_exits_at_once_when_its_trail_cannot_be_written(tmp_path, zex_proc, ctx):
    # Any node, not only the matcher: the logger's audit trail fills while the matcher is fine.
    data, trail = tmp_path / "data", tmp_path / "trail"
    cfg, cmd_ep, _ = matcher_config(tmp_path, data)
    lg_metrics = free_port()
    with open(cfg, "a") as f:
        f.write(
            f'[logger]\nbind = "tcp://127.0.0.1:{free_port()}"\ndata_dir = "{trail}"\n'
            f'metrics_bind = "127.0.0.1:{lg_metrics}"\nfsync = "off"\n'
        )
    matcher = zex_proc(["matcher", "--config", str(cfg)], tmp_path / "m.log")
    matcher.ready()
    z = zex_proc(["logger", "--config", str(cfg)], tmp_path / "lg.log", limited=True)
    z.ready()
    assert answers(lg_metrics)

    took = flood(ctx, cmd_ep, z, lambda: size_of(trail, "audit-*") >= LIMIT_BYTES, sweeps())
    rc = z.wait(EXIT_S)
    print(f"audit trail full -> exit: {took:.3f} s")
    err = z.stderr()
    assert rc == 1, err
    assert "Traceback" not in err, err
    [line] = zex_lines(err)
    assert line.startswith("zex: logger stopped: ") and str(trail) in line, line
    assert "check" in line and "restart" in line, line
    assert not answers(lg_metrics)
    assert matcher.proc.poll() is None  # the matcher never waits for its consumers


@pytest.mark.parametrize("where", ["is a file", "inside a file"])
def test_a_data_dir_that_is_no_directory_stops_the_start_with_one_line(tmp_path, zex_proc, where):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    data = a_file if where == "is a file" else a_file / "data"
    cfg, _, metrics = matcher_config(tmp_path, data)
    z = zex_proc(["matcher", "--config", str(cfg)], tmp_path / "m.log")
    rc = z.wait(START_S)
    err = z.stderr()
    assert rc == 1, err
    assert "Traceback" not in err, err
    [line] = zex_lines(err)
    assert line.startswith("zex: matcher could not start: [Errno"), line
    assert str(data) in line and "is a directory" in line and "--data-dir" in line, line
    assert not answers(metrics)


@pytest.mark.parametrize("taken", ["bind", "metrics_bind"])
def test_a_port_in_use_stops_the_start_with_one_line(tmp_path, zex_proc, taken):
    cfg, cmd_ep, metrics = matcher_config(tmp_path, tmp_path / "data")
    port = int(cmd_ep.rsplit(":", 1)[1]) if taken == "bind" else metrics
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        z = zex_proc(["matcher", "--config", str(cfg)], tmp_path / "m.log")
        rc = z.wait(START_S)
    err = z.stderr()
    assert rc == 1, err
    assert "Traceback" not in err, err
    [line] = zex_lines(err)
    assert line.startswith("zex: matcher could not start:") and str(port) in line, line
    assert "already in use" in line.lower(), line
    assert ("stop what holds the port" if taken == "bind" else "set metrics_bind") in line, line
