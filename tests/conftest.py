"""Shared fixtures: free loopback ports, temp data dirs, real node processes that always stop."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

REPO = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()  # every port free_port() gave this run


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that nothing else will take.

    It is below the kernel's ephemeral range, so no outgoing connection (a zmq connect's
    source port) can take it between this call and the node's bind; the OS's own pick
    (bind to port 0) is from that range and was seen taken so ("Address already in use" in
    a node). And it is one this run has not handed out before, so two endpoints never
    share one, even after the first is closed.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12_000)
    rng = random.SystemRandom()  # not any test's seed: ports need not repeat, only be free
    for _ in range(1000):
        port = rng.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(
        f"no free loopback port in {low}..{high}: close what holds them and run again"
    )


def default_binds() -> dict[tuple[str, str], str]:
    """Every endpoint the built-in defaults bind: {(section, key): "tcp://127.0.0.1:7100", ...}.

    Read from the config's own dataclasses, so a bind added to a node later is covered.
    """
    from zex.nodes.runtime import config as config_mod

    out = {}
    for section in dataclasses.fields(config_mod.Config):
        factory = section.default_factory
        value = factory() if factory is not dataclasses.MISSING else None
        if not dataclasses.is_dataclass(value):
            continue
        for f in dataclasses.fields(value):
            default = getattr(value, f.name)
            if (f.name == "bind" or f.name.endswith("_bind")) and default:
                out[section.name, f.name] = default
    return out


def free_port_config(path: Path, data_dir: Path, extra: str = "") -> Path:
    """Write a config whose every bind is on a free loopback port and whose data is in ``data_dir``.

    So a test never meets what holds the default ports (an exchange `make run` left up, another
    test run); ``extra`` is appended (more TOML). The file is plain TOML any zex reads.
    """
    sections: dict[str, list[str]] = {
        "matcher": [f'data_dir = "{data_dir / "matcher"}"'],
        "logger": [f'data_dir = "{data_dir / "logger"}"'],
    }
    for (section, key), default in default_binds().items():
        head, _, _ = default.rpartition(":")  # keep the form: tcp://127.0.0.1:N or 127.0.0.1:N
        sections.setdefault(section, []).append(f'{key} = "{head}:{free_port()}"')
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items())
    path.write_text(text + extra)
    return path


def wait_for(predicate, timeout: float = 10.0, what: str = "condition", interval: float = 0.01):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class NodeProcess:
    """A zex node as a real OS process; stdout is read until its readiness line appears."""

    def __init__(
        self,
        args: list[str],
        ready_text: str,
        log: Path,
        *,
        zex: list[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = args
        self.ready_text = ready_text
        self.log = log
        self.zex = zex or [sys.executable, "-m", "zex.nodes.tools.cli"]  # the zex command to run
        self.cwd = cwd
        self.env = os.environ if env is None else env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> NodeProcess:
        self._fh = open(self.log, "ab")
        env = dict(self.env, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*self.zex, *self.args], stdout=subprocess.PIPE, stderr=self._fh, env=env, cwd=self.cwd
        )
        os.set_blocking(self.proc.stdout.fileno(), False)
        seen = b""

        def ready():
            nonlocal seen
            chunk = self.proc.stdout.read()
            if chunk:
                seen += chunk
                self._fh.write(chunk)
                self._fh.flush()
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"node exited with {self.proc.returncode}; see {self.log}:\n"
                    + self.log.read_text(errors="replace")[-2000:]
                )
            return self.ready_text.encode() in seen

        wait_for(ready, timeout, f"'{self.ready_text}' from {self.args}")
        self.banner = seen.decode(errors="replace")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (a clean stop), escalating to SIGKILL after ``timeout``."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._fh.close()
        return self.proc.returncode


@pytest.fixture
def nodes():
    """Start node processes with ``nodes(args, ready_text, log)``; all are stopped at teardown."""
    started: list[NodeProcess] = []

    def start(args, ready_text, log):
        n = NodeProcess(args, ready_text, log).start()
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


@pytest.fixture
def default_ports_held():
    """Listen on every port the built-in defaults bind, as another exchange on this host would.

    A port something else already holds is left to it (held all the same). Yields the ports.
    """
    held: list[socket.socket] = []
    ports = sorted({int(ep.rpartition(":")[2]) for ep in default_binds().values()})
    for port in ports:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            s.close()
            continue
        held.append(s)
    yield ports
    for s in held:
        s.close()


@pytest.fixture
def ctx():
    """A private zmq context whose sockets are all closed (linger 0) at teardown."""
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def ipc_dir():
    """A short unique directory for ipc paths (they must fit in 107 bytes, tmp_path may not)."""
    d = tempfile.mkdtemp(prefix="zx-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def md_exchange(tmp_path, nodes):
    """A whole exchange of real processes (tests/exchange.py); start the nodes a test needs."""
    from tests.exchange import MdExchange

    ex = MdExchange(tmp_path, nodes)
    yield ex
    ex.close()
