"""End-to-end order entry benchmark: order -> ack through real gateway and matcher processes.

    python bench/e2e_bench.py [--orders 5000] [--window 256] [--quick]

The exchange runs as separate OS processes (``python -m zex.nodes.tools.cli matcher``
and ``... gateway``) with a config written to a temp dir: tcp loopback
everywhere, matcher fsync="batch" (journal on the local disk), one
instrument, accounts without risk or rate limits. Clients are raw pyzmq
DEALERs and the codec (zex.protocol.codec), one client process per gateway.

Order flow: each client has 4 sessions (accounts), two buyers and two
sellers; order i goes to session i % 4, so buys and sells alternate, all
limit GTC qty 1 at one price. A sell meets the resting buy, so most orders
trade, the book never grows (it is empty after each phase) and no account
trades with itself. A buy is answered by an ``ack``; a sell by ``ack`` and
``fill``, and the resting buyer gets a ``fill`` too. Latency is measured to
the ``ack``.

Baseline, measured in the same run and interleaved with the exchange: a
process with a ROUTER that decodes each request with decode_request and
answers it with an encoded ``ack`` (DEALER -> ROUTER echo through one
process hop, the same codec, the same client code, one echo process per
gateway being compared).

Figures:
  latency    one order outstanding per client, p50/p99/p99.9/max in us
  pipelined  a window of W outstanding orders per client, orders/s over a
             fixed count (with 2 gateways: both clients start together;
             total orders / (last ack - first send))
  open loop  orders sent at fixed rates (25/50/90 % of the exchange's measured
             pipelined maximum); each latency counts from the order's
             intended send time, so a stall is not hidden; HDR histogram
  workers    latency and pipelined for one gateway with 1, 2 and 4 workers

Targets: p50 <= 2.5x and p99 <= 4x the baseline's; pipelined >= 0.5x.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from zex.nodes.runtime.config import GatewayConfig, MatcherConfig
from zex.protocol import messages as m
from zex.protocol.codec import decode_report, decode_request, encode

try:
    from hdrh.histogram import HdrHistogram
except ImportError:  # pragma: no cover - the bench extra installs hdrhistogram
    HdrHistogram = None

SESSIONS = 4  # per client: buyers at even indexes, sellers at odd
PRICE = "10.00"
SYMBOL = "XYZ"
STALL_S = 15.0  # no answer for this long: the run is broken, not slow
READY = "Ctrl+C to quit"

INSTRUMENT = """
[[instruments]]
symbol = "XYZ"
tick = "0.01"
lot = "1"
max_price = "1000"
max_qty = "100000"
reference_price = "10"
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -------------------------------------------------------------- histogram
class LogLinearHistogram:
    """Fallback when hdrhistogram is missing: HDR-style buckets, 2 significant digits.

    A value keeps its top 7 bits (128 sub-buckets per power of two, < 1 %
    relative error); same method names as hdrh's HdrHistogram.
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max = 0

    def record_value(self, v: int) -> None:
        s = max(0, v.bit_length() - 7)
        key = (v >> s) << s
        self.counts[key] = self.counts.get(key, 0) + 1
        self.total += 1
        self.max = max(self.max, v)

    def get_value_at_percentile(self, p: float) -> int:
        want, seen = self.total * p / 100.0, 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= want:
                return key + (1 << max(0, key.bit_length() - 7)) - 1
        return self.max

    def get_max_value(self) -> int:
        return self.max

    def get_total_count(self) -> int:
        return self.total


def summarise(lat_ns: list[int]) -> dict[str, float]:
    """p50/p99/p99.9/max in microseconds, from an HDR histogram of the samples."""
    h = HdrHistogram(1, 120_000_000, 3) if HdrHistogram is not None else LogLinearHistogram()
    for v in lat_ns:
        h.record_value(max(1, v // 1000))
    if not h.get_total_count():
        return {"n": 0, "p50": 0, "p99": 0, "p99.9": 0, "max": 0}
    return {
        "n": h.get_total_count(),
        "p50": h.get_value_at_percentile(50),
        "p99": h.get_value_at_percentile(99),
        "p99.9": h.get_value_at_percentile(99.9),
        "max": h.get_max_value(),
    }


# -------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server as an OS process in its own session (a terminal Ctrl+C is ours to relay)."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Proc:
        self._fh = open(self.log, "ab")  # noqa: SIM115 - open as long as the process runs
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, *self.args],
            stdout=subprocess.PIPE,
            stderr=self._fh,
            env=env,
            start_new_session=True,
        )
        out = self.proc.stdout
        assert out is not None
        os.set_blocking(out.fileno(), False)
        seen, deadline = b"", time.monotonic() + timeout
        while READY.encode() not in seen:
            chunk = out.read()
            if chunk:
                seen += chunk
                self._fh.write(chunk)
            if self.proc.poll() is not None:
                self._fh.flush()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; {self.log}:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready within {timeout} s; see {self.log}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (a clean stop), then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"  {self.name} did not stop within {timeout} s: SIGKILL")
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._fh.close()
        self.proc = None


class Exchange:
    """One matcher, gateways gw1..gwN and echo servers, on loopback ports, in a temp dir."""

    def __init__(
        self,
        tmp: Path,
        clients: int,
        matcher: dict | None = None,
        metrics: bool = False,
        link: str = "tcp",
    ) -> None:
        self.tmp = tmp
        self.metrics = metrics  # exporters on free ports (scraped by the bench), else off
        self.metrics_urls: list[str] = []
        mport = free_port()
        if metrics:
            self.metrics_urls.append(f"http://127.0.0.1:{mport}/metrics")
        self.procs: dict[str, Proc] = {}
        self.endpoints: dict[str, str] = {}
        self.accounts = [[f"c{k}s{j}" for j in range(SESSIONS)] for k in range(clients)]
        accounts = "".join(
            f'\n[[accounts]]\nid = "{a}"\ncredential = "x"\n' for acs in self.accounts for a in acs
        )
        # gateways -> matcher: tcp loopback, or ipc (a Unix socket: same host, fewer kernel layers)
        matcher_ep = (
            f"ipc://{tmp / 'matcher.sock'}" if link == "ipc" else f"tcp://127.0.0.1:{free_port()}"
        )
        self.config = tmp / "zex.toml"
        self.config.write_text(
            f'[matcher]\nbind = "{matcher_ep}"\n'
            f'events_bind = "tcp://127.0.0.1:{free_port()}"\n'
            f'replay_bind = "tcp://127.0.0.1:{free_port()}"\n'
            + (f'metrics_bind = "127.0.0.1:{mport}"\n' if metrics else 'metrics_bind = ""\n')
            + f'data_dir = "{tmp / "data"}"\n'
            + "".join(
                f"{k} = {v!r}\n".replace("'", '"')
                for k, v in {"fsync": "batch", **(matcher or {})}.items()
            )
            + '[gateway]\nmetrics_bind = ""\naudit = "off"\n'
            + INSTRUMENT
            + accounts
        )

    def _start(self, name: str, args: list[str]) -> None:
        self.procs[name] = Proc(name, args, self.tmp / f"{name}.log").start()

    def start_matcher(self) -> None:
        self._start(
            "matcher", ["-m", "zex.nodes.tools.cli", "matcher", "--config", str(self.config)]
        )

    def start_gateway(self, name: str, workers: int) -> str:
        if name in self.procs:
            self.procs.pop(name).stop()
        ep = self.endpoints.setdefault(name, f"tcp://127.0.0.1:{free_port()}")
        self._start(
            name,
            [
                "-m",
                "zex.nodes.tools.cli",
                "gateway",
                "--config",
                str(self.config),
                "--name",
                name,
                "--bind",
                ep,
                "--workers",
                str(workers),
                *self._gateway_metrics(),
            ],
        )
        return ep

    def _gateway_metrics(self) -> list[str]:
        if not self.metrics:
            return []
        port = free_port()
        self.metrics_urls.append(f"http://127.0.0.1:{port}/metrics")
        return ["--metrics", f"127.0.0.1:{port}"]

    def start_echo(self, name: str) -> str:
        ep = self.endpoints.setdefault(name, f"tcp://127.0.0.1:{free_port()}")
        self._start(name, [os.path.abspath(__file__), "--echo-server", ep])
        return ep

    def start_relay(self, name: str, target: str) -> str:
        ep = self.endpoints.setdefault(name, f"tcp://127.0.0.1:{free_port()}")
        self._start(name, [os.path.abspath(__file__), "--relay-server", ep, target])
        return ep

    def stop(self) -> None:
        for name in [n for n in self.procs if n != "matcher"] + ["matcher"]:
            p = self.procs.pop(name, None)
            if p is not None:
                p.stop()


# --------------------------------------------------------------- baseline
def echo_server(endpoint: str) -> None:
    """The baseline: decode each request, answer with an encoded ack (logon_ack, logged_out)."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.sndhwm = router.rcvhwm = 100_000
    router.bind(endpoint)
    print(f"echo on {endpoint}  ({READY})", flush=True)
    n = 0
    try:
        while True:
            # [client, frame], or via a relay [relay, client, frame]
            *route, frame = router.recv_multipart()
            msg = decode_request(frame)
            n += 1
            t = type(msg)
            if t is m.NewOrder:
                reply = m.Ack(
                    cl_ord_id=msg.cl_ord_id,
                    order_id=n,
                    symbol=msg.symbol,
                    side=msg.side,
                    ord_type=msg.ord_type,
                    # as the gateway answers (SPEC 4.4): no tif is gtc, or ioc for a market order
                    tif=msg.tif or ("ioc" if msg.ord_type == "market" else "gtc"),
                    price=msg.price,
                    qty=msg.qty,
                    seq=n,
                    ts=time.time_ns(),
                    rseq=n,
                )
            elif t is m.Logon:
                reply = m.LogonAck(
                    account=msg.account, session_id="echo", heartbeat_ms=msg.heartbeat_ms
                )
            elif t is m.Logout:
                reply = m.LoggedOut(reason="logout")
            else:
                continue
            router.send_multipart([*route, encode(reply)])
    except KeyboardInterrupt:
        pass
    finally:
        router.close(0)
        ctx.term()


def relay_server(front: str, back: str) -> None:
    """The transport floor: zex's hops with no work in them. A ROUTER for clients forwards
    to a DEALER connected to an echo server, in libzmq's zmq_proxy (C, no Python per message):
    client -> relay -> echo -> relay -> client, the hops of client -> gateway -> matcher."""
    ctx = zmq.Context()
    f, b = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    for sock in (f, b):
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 100_000
    f.bind(front)
    b.connect(back)
    print(f"relay on {front} -> {back}  ({READY})", flush=True)
    try:
        zmq.proxy(f, b)
    except (KeyboardInterrupt, zmq.ContextTerminated):
        pass
    finally:
        f.close(0)
        b.close(0)


# ----------------------------------------------------------------- client
class Client:
    """SESSIONS DEALERs, one per account, on one endpoint; order i goes to session i % SESSIONS."""

    def __init__(self, ctx: zmq.Context, endpoint: str, accounts: list[str], prefix: str) -> None:
        self.socks = []
        self.poller = zmq.Poller()
        for _ in accounts:
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.sndhwm = s.rcvhwm = 100_000
            s.connect(endpoint)
            self.socks.append(s)
            self.poller.register(s, zmq.POLLIN)
        self.fds = [s.getsockopt(zmq.FD) for s in self.socks]
        self.accounts = accounts
        self.prefix = prefix
        self.pending: dict[str, int] = {}  # cl_ord_id -> intended send time (ns)
        self.lat: list[int] = []

    def logon(self) -> None:
        for s, acct in zip(self.socks, self.accounts, strict=True):  # a socket per account
            s.send(encode(m.Logon(account=acct, credential="x", heartbeat_ms=30_000)))
        self._expect(m.LogonAck, "logon_ack")

    def logout(self) -> None:
        for s in self.socks:
            s.send(encode(m.Logout()))
        self._expect(m.LoggedOut, "logged_out")

    def _expect(self, kind, what: str) -> None:
        """Wait for one ``kind`` on every session; name those still waiting if it times out."""
        waiting, other, deadline = set(self.socks), [], time.monotonic() + STALL_S
        while waiting:
            for s, _ in self.poller.poll(1000):
                msg = decode_report(s.recv())
                if type(msg) is m.Reject:
                    raise RuntimeError(f"{what} refused: {msg.reason_name}: {msg.text}")
                if type(msg) is kind:
                    waiting.discard(s)
                else:
                    other.append(type(msg).__name__)
            if time.monotonic() > deadline:
                names = [a for s, a in zip(self.socks, self.accounts, strict=True) if s in waiting]
                raise RuntimeError(
                    f"no {what} within {STALL_S} s for {names} of {self.accounts}; "
                    f"other reports meanwhile: {other[-5:]}"
                )

    def frames(self, n: int, tag: str = "") -> list[tuple[zmq.Socket, str, bytes]]:
        """Encode n orders ahead of time (buy, sell, buy, ...), so the timed loops only send."""
        socks, k, out = self.socks, len(self.socks), []
        for i in range(n):
            cl = f"{self.prefix}{tag}{i}"
            side = "buy" if i % 2 == 0 else "sell"
            out.append(
                (
                    socks[i % k],
                    cl,
                    encode(
                        m.NewOrder(cl_ord_id=cl, symbol=SYMBOL, side=side, qty="1", price=PRICE)
                    ),
                )
            )
        return out

    def pump(self, timeout_s: float) -> bool:
        """Read every waiting report (recording acks' latency), else wait up to timeout_s for one.

        Waits in select() on the sockets' ZMQ_FDs, which takes a sub-millisecond
        timeout (zmq_poll's is whole milliseconds): the open-loop sender sleeps
        until its next send instead of spinning a core away from the exchange.
        ZMQ_FD is edge-triggered, so ZMQ_EVENTS is checked before every wait.
        """
        if self._drain():
            return True
        if timeout_s > 0:
            select.select(self.fds, (), (), timeout_s)
            return self._drain()
        return False

    def _drain(self) -> bool:
        pending, lat, now_ns, Ack, EVENTS, POLLIN = (
            self.pending,
            self.lat,
            time.monotonic_ns,
            m.Ack,
            zmq.EVENTS,
            zmq.POLLIN,
        )
        got = False
        for s in self.socks:
            while s.getsockopt(EVENTS) & POLLIN:
                msg = decode_report(s.recv())
                got = True
                t = type(msg)
                if t is Ack:
                    lat.append(now_ns() - pending.pop(msg.cl_ord_id))
                elif t is m.Reject or t is m.Cancelled:
                    raise RuntimeError(f"order {msg.cl_ord_id} answered {msg}")
        return got

    def wait_all(self) -> None:
        last = time.monotonic()
        while self.pending:
            if self.pump(0.2):
                last = time.monotonic()
            elif time.monotonic() - last > STALL_S:
                raise RuntimeError(f"no ack for {STALL_S} s with {len(self.pending)} outstanding")

    def close(self) -> None:
        for s in self.socks:
            s.close(0)


def warm_up(c: Client, n: int = 400, window: int = 16) -> None:
    """Warm the connections and code paths before anything is timed (n orders, a small window)."""
    frames = c.frames(n, "w")
    for i in range(0, n, window):
        for sock, cl, frame in frames[i : i + window]:
            c.pending[cl] = time.monotonic_ns()
            sock.send(frame)
        c.wait_all()
    c.lat.clear()


def job_latency(c: Client, n: int, warmup: int, **_) -> dict:
    """One order outstanding: send, wait for its ack, repeat."""
    frames = c.frames(warmup + n)
    now_ns, pending = time.monotonic_ns, c.pending
    for i, (sock, cl, frame) in enumerate(frames):
        if i == warmup:
            c.lat.clear()
        pending[cl] = now_ns()
        sock.send(frame)
        c.wait_all()
    return {"lat": c.lat}


def job_pipelined(c: Client, n: int, warmup: int, window: int, **_) -> dict:
    """A window of outstanding orders: send while fewer than ``window`` wait for an ack."""
    frames = c.frames(warmup + n)
    now_ns, pending = time.monotonic_ns, c.pending
    t0 = 0
    i, total, last = 0, len(frames), time.monotonic()
    while i < total or pending:
        while i < total and len(pending) < window:
            if i == warmup:
                c.wait_all()  # the measured part starts from an empty pipe
                t0, cpu0 = now_ns(), time.process_time()
            sock, cl, frame = frames[i]
            pending[cl] = now_ns()
            sock.send(frame)
            i += 1
        if c.pump(0.2):
            last = time.monotonic()
        elif time.monotonic() - last > STALL_S:
            raise RuntimeError(f"no ack for {STALL_S} s with {len(pending)} outstanding")
    t1 = now_ns()
    return {
        "t0": t0,
        "t1": t1,
        "n": n,
        "lat": c.lat[warmup:],
        "cpu": (time.process_time() - cpu0) / ((t1 - t0) / 1e9),
    }


def job_open_loop(c: Client, rate: float, seconds: float, start_ns: int, **_) -> dict:
    """Send order i at start + i/rate whatever happened before; latency counts from that time."""
    total = max(2, int(rate * seconds) // 2 * 2)
    frames = c.frames(total)
    now_ns, pending = time.monotonic_ns, c.pending
    step = 1e9 / rate
    behind = 0  # the worst lateness of the sender itself
    i, last = 0, time.monotonic()
    while time.monotonic_ns() < start_ns - 2_000_000:
        time.sleep(0.001)
    while i < total:
        now = now_ns()
        due = start_ns + int(i * step)
        while due <= now:
            sock, cl, frame = frames[i]
            pending[cl] = due
            sock.send(frame)
            behind = max(behind, now - due)
            i += 1
            if i == total:
                break
            due = start_ns + int(i * step)
        if c.pump((due - now_ns()) / 1e9 if i < total else 0.0):
            last = time.monotonic()
        elif time.monotonic() - last > STALL_S:
            raise RuntimeError(f"no ack for {STALL_S} s with {len(pending)} outstanding")
    c.wait_all()
    return {"lat": c.lat, "behind_us": behind // 1000, "n": total}


JOBS: dict[str, Callable[..., dict]] = {
    "latency": job_latency,
    "pipelined": job_pipelined,
    "open": job_open_loop,
}


def client_main(
    endpoint: str, accounts: list[str], prefix: str, job: str, params: dict, ready, go, start, out
) -> None:
    ctx = zmq.Context()
    c = Client(ctx, endpoint, accounts, prefix)
    try:
        c.logon()
        warm_up(c)
        ready.put(os.getpid())
        if not go.wait(60):
            raise RuntimeError("no start signal within 60 s")
        if job == "open":
            params["start_ns"] = start.value
        gc.collect()
        gc.disable()  # the client is not what is measured: keep its pauses out of the figures
        result = JOBS[job](c, **params)
        gc.enable()
        c.logout()
        out.put(("ok", result))
    except Exception as exc:  # noqa: BLE001 - any failure goes to the parent, which stops all
        out.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        c.close()
        ctx.term()


class Runner:
    """Run a job in one client process per endpoint, started together; gather the results."""

    def __init__(self, accounts: list[list[str]]) -> None:
        self.mp = mp.get_context("spawn")
        self.accounts = accounts
        self.run_id = f"{int(time.time()) % 46656:x}"
        self.phase = 0

    def __call__(self, endpoints: list[str], job: str, **params) -> list[dict]:
        self.phase += 1
        ready, out, go = self.mp.Queue(), self.mp.Queue(), self.mp.Event()
        # the open loop's common t0 (CLOCK_MONOTONIC, shared by processes)
        start = self.mp.Value("q", 0)
        procs = [
            self.mp.Process(
                target=client_main,
                daemon=True,
                args=(
                    ep,
                    self.accounts[k],
                    f"{self.run_id}.{self.phase}.{k}.",
                    job,
                    params,
                    ready,
                    go,
                    start,
                    out,
                ),
            )
            for k, ep in enumerate(endpoints)
        ]
        try:
            for p in procs:
                p.start()
            deadline = time.monotonic() + 60
            for _ in procs:
                while True:  # a client that fails before it is ready says why on ``out``
                    try:
                        ready.get(timeout=0.2)
                        break
                    except queue.Empty:
                        pass
                    if not out.empty():
                        raise RuntimeError(f"client failed before {job}: {out.get()[1]}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"a client was not ready for {job} within 60 s")
            start.value = time.monotonic_ns() + 50_000_000  # a moment for every client to wake
            go.set()
            results = []
            for _ in procs:
                status, value = out.get(timeout=600)
                if status != "ok":
                    raise RuntimeError(f"client failed in {job}: {value}")
                results.append(value)
            return results
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()


# ------------------------------------------------------------- measuring
def measure_latency(run: Runner, eps: list[str], n: int, warmup: int) -> dict:
    res = run(eps, "latency", n=n, warmup=warmup)
    return summarise([v for r in res for v in r["lat"]])


def measure_pipelined(run: Runner, eps: list[str], n: int, warmup: int, window: int) -> dict:
    res = run(eps, "pipelined", n=n, warmup=warmup, window=window)
    t0, t1 = min(r["t0"] for r in res), max(r["t1"] for r in res)
    out = summarise([v for r in res for v in r["lat"]])
    out["rate"] = sum(r["n"] for r in res) / ((t1 - t0) / 1e9)
    # the busiest client's CPU share: is the client the limit?
    out["cpu"] = max(r["cpu"] for r in res)
    return out


def measure_open(run: Runner, eps: list[str], rate: float, seconds: float) -> dict:
    res = run(eps, "open", rate=rate / len(eps), seconds=seconds)
    out = summarise([v for r in res for v in r["lat"]])
    out["behind_us"] = max(r["behind_us"] for r in res)
    return out


def fmt_lat(d: dict) -> str:
    return (
        f"p50 {d['p50']:,} us  p99 {d['p99']:,} us  p99.9 {d['p99.9']:,} us  "
        f"max {d['max']:,} us  (n {d['n']:,})"
    )


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--orders", type=int, default=5000, help="orders per latency measurement (after warm-up)"
    )
    ap.add_argument(
        "--window", type=int, default=256, help="outstanding orders per client when pipelined"
    )
    ap.add_argument(
        "--pipelined", type=int, default=20_000, help="orders per pipelined measurement"
    )
    ap.add_argument("--rounds", type=int, default=2, help="interleaved baseline/zex rounds")
    ap.add_argument(
        "--workers",
        type=int,
        default=GatewayConfig().workers,
        help="gateway workers for the main figures (default: the config default)",
    )
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each open-loop rate")
    ap.add_argument(
        "--fsync", default="batch", choices=["always", "batch", "off"], help="matcher.fsync"
    )
    ap.add_argument(
        "--digest-every",
        type=int,
        default=MatcherConfig().digest_every,
        help="matcher.digest_every (0: no state digests); default: the config default",
    )
    ap.add_argument(
        "--snapshot-every",
        type=int,
        default=MatcherConfig().snapshot_every,
        help="matcher.snapshot_every (0: no snapshots); default: the config default",
    )
    ap.add_argument(
        "--link",
        default="tcp",
        choices=["tcp", "ipc"],
        help="the gateway -> matcher transport (clients always use tcp)",
    )
    ap.add_argument(
        "--gateways", default="1,2", help="gateway process counts to measure, e.g. 1 or 1,2"
    )
    ap.add_argument(
        "--sweep",
        default="0,1,2,4",
        help="gateway.workers values for the worker sweep on one gateway ('' to skip)",
    )
    ap.add_argument(
        "--rates",
        default="0.25,0.5,0.9",
        help="open-loop rates as fractions of the measured maximum ('' to skip)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of a few seconds: tiny counts, one gateway",
    )
    ap.add_argument(
        "--metrics-compare",
        action="store_true",
        help="only compare metrics on (scraped every second) vs off: two exchanges, interleaved",
    )
    ap.add_argument("--echo-server", metavar="ENDPOINT", help=argparse.SUPPRESS)
    ap.add_argument("--relay-server", nargs=2, metavar=("FRONT", "BACK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo_server:
        return echo_server(args.echo_server)
    if args.relay_server:
        return relay_server(*args.relay_server)
    if args.metrics_compare:
        return metrics_compare(args)
    if args.quick:
        args.orders, args.pipelined, args.window, args.rounds, args.seconds = 200, 1000, 64, 1, 0.5

    def ints(text: str, conv=int) -> list:
        return [conv(x) for x in text.split(",") if x.strip()]

    gateways = [1] if args.quick else ints(args.gateways)
    sweep = [] if args.quick else ints(args.sweep)
    rates = [0.5] if args.quick else ints(args.rates, float)
    warm = max(100, args.orders // 10)
    pwarm = max(500, args.pipelined // 10)
    hist = (
        "hdrhistogram (hdrh)"
        if HdrHistogram is not None
        else "built-in log-linear (hdrh not installed)"
    )
    say(f"e2e bench: {os.cpu_count()} cores, Python {sys.version.split()[0]}, histogram {hist}")

    tmp = Path(tempfile.mkdtemp(prefix="zex-e2e-"))
    ex = Exchange(
        tmp,
        max(gateways),
        {
            "fsync": args.fsync,
            "digest_every": args.digest_every,
            "snapshot_every": args.snapshot_every,
        },
        link=args.link,
    )
    run = Runner(ex.accounts)
    t_start = time.monotonic()
    try:
        ex.start_matcher()
        echos = [ex.start_echo(f"echo{k + 1}") for k in range(max(gateways))]
        gws = [ex.start_gateway(f"gw{k + 1}", args.workers) for k in range(max(gateways))]
        relays = [ex.start_relay(f"relay{k + 1}", echos[k]) for k in range(max(gateways))]
        base_eps = {g: echos[:g] for g in gateways}
        relay_eps = {g: relays[:g] for g in gateways}
        zex_eps = {g: gws[:g] for g in gateways}
        say(
            f"matcher, {max(gateways)} gateway(s) ({args.workers} workers each), "
            f"echo server(s) up in {tmp}"
        )

        # -- latency and pipelined, baseline and zex interleaved, then a last baseline
        samples: dict[tuple, list[dict]] = {}

        def both(kind: str, g: int, which: str, eps: list[str]) -> None:
            if kind == "lat":
                d = measure_latency(run, eps, args.orders, warm)
                say(f"  {which:8} {g} gw latency:   {fmt_lat(d)}")
            else:
                d = measure_pipelined(run, eps, args.pipelined, pwarm, args.window)
                say(
                    f"  {which:8} {g} gw pipelined: {d['rate']:,.0f} orders/s "
                    f"(window {args.window}, "
                    f"p50 {d['p50']:,} us, client CPU {d['cpu']:.0%})"
                )
            samples.setdefault((kind, g, which), []).append(d)

        for r in range(args.rounds):
            say(f"round {r + 1}/{args.rounds}")
            for g in gateways:
                for kind in ("lat", "pipe"):
                    both(kind, g, "baseline", base_eps[g])
                    both(kind, g, "relay", relay_eps[g])
                    both(kind, g, "zex", zex_eps[g])
        say("closing baseline")
        for g in gateways:
            for kind in ("lat", "pipe"):
                both(kind, g, "baseline", base_eps[g])

        # -- open loop at fractions of the measured zex maximum, baseline at the same rates
        opens: list[tuple] = []
        for g in gateways:
            zmax = sum(d["rate"] for d in samples[("pipe", g, "zex")]) / len(
                samples[("pipe", g, "zex")]
            )
            for frac in rates:
                rate = frac * zmax
                say(
                    f"open loop {g} gw at {rate:,.0f} orders/s "
                    f"({frac:.0%} of zex max {zmax:,.0f}/s), {args.seconds} s"
                )
                b = measure_open(run, base_eps[g], rate, args.seconds)
                say(f"  baseline {fmt_lat(b)}  sender behind <= {b['behind_us']:,} us")
                z = measure_open(run, zex_eps[g], rate, args.seconds)
                say(f"  zex      {fmt_lat(z)}  sender behind <= {z['behind_us']:,} us")
                opens.append((g, frac, rate, b, z))

        # -- worker sweep on one gateway (smaller counts), each beside a baseline
        sweeps: list[tuple] = []
        n_lat, n_pipe = max(200, args.orders // 2), max(1000, args.pipelined // 2)
        for w in sweep * (1 if args.quick else args.rounds):
            ep = [ex.start_gateway("gw1", w)]
            say(f"workers={w}: 1 gateway")
            bl = measure_latency(run, base_eps[1], n_lat, warm)
            zl = measure_latency(run, ep, n_lat, warm)
            bp = measure_pipelined(run, base_eps[1], n_pipe, pwarm, args.window)
            zp = measure_pipelined(run, ep, n_pipe, pwarm, args.window)
            say(f"  baseline {fmt_lat(bl)}; {bp['rate']:,.0f}/s")
            say(f"  zex      {fmt_lat(zl)}; {zp['rate']:,.0f}/s (client CPU {zp['cpu']:.0%})")
            sweeps.append((w, bl, zl, bp, zp))
    except BaseException:
        say(f"stopping the exchange; its logs stay in {tmp}")
        ex.stop()
        raise
    say("stopping the exchange")
    ex.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    report(args, gateways, samples, opens, sweeps, time.monotonic() - t_start, hist)


def metrics_compare(args) -> None:
    """Latency and pipelined throughput with metrics on (scraped every second) vs off, interleaved."""
    import threading
    import urllib.request

    if args.quick:
        args.orders, args.pipelined, args.window, args.rounds = 500, 4000, 64, 2
    tmp = Path(tempfile.mkdtemp(prefix="zex-e2e-metrics-"))
    exes = {}
    stop = threading.Event()
    scrapes = {"ok": 0, "failed": 0}

    def scraper(urls: list[str]) -> None:  # what a Prometheus at a 1 s interval costs the nodes
        while not stop.wait(1.0):
            for u in urls:
                try:
                    with urllib.request.urlopen(u, timeout=2) as r:
                        r.read()
                    scrapes["ok"] += 1
                except OSError:
                    scrapes["failed"] += 1

    cfg = {
        "fsync": args.fsync,
        "digest_every": args.digest_every,
        "snapshot_every": args.snapshot_every,
    }
    samples: dict[tuple, list[dict]] = {}
    try:
        for mode in ("on", "off"):
            (tmp / mode).mkdir()
            ex = exes[mode] = Exchange(tmp / mode, 1, cfg, metrics=mode == "on")
            ex.start_matcher()
            ex.start_gateway("gw1", args.workers)
        eps = {mode: [ex.endpoints["gw1"]] for mode, ex in exes.items()}
        t = threading.Thread(target=scraper, args=(exes["on"].metrics_urls,), daemon=True)
        t.start()
        warm, pwarm = max(100, args.orders // 10), max(500, args.pipelined // 10)
        for r in range(args.rounds):
            say(f"round {r + 1}/{args.rounds}")
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                run = Runner(exes[mode].accounts)
                d = measure_latency(run, eps[mode], args.orders, warm)
                p = measure_pipelined(run, eps[mode], args.pipelined, pwarm, args.window)
                say(f"  metrics {mode:3}: {fmt_lat(d)}; pipelined {p['rate']:,.0f} orders/s")
                samples.setdefault(("lat", mode), []).append(d)
                samples.setdefault(("pipe", mode), []).append(p)
    finally:
        stop.set()
        for ex in exes.values():
            ex.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    on_rate, off_rate = (
        pooled(samples[("pipe", "on")], "rate"),
        pooled(samples[("pipe", "off")], "rate"),
    )
    print(
        f"\nmetrics on (scraped {scrapes['ok']} times, {scrapes['failed']} failed) vs off, "
        f"{args.rounds} interleaved rounds, 1 gateway:"
    )
    for key in ("p50", "p99"):
        on_v, off_v = pooled(samples[("lat", "on")], key), pooled(samples[("lat", "off")], key)
        print(
            f"  latency {key}: on {on_v:,.0f} us, off {off_v:,.0f} us  (on/off {on_v / off_v:.2f}x)"
        )
    print(
        f"  pipelined: on {on_rate:,.0f}/s, off {off_rate:,.0f}/s  (on/off {on_rate / off_rate:.2f}x; "
        f"target >= 0.90x: {'met' if on_rate / off_rate >= 0.9 else 'missed'})"
    )


def pooled(samples: list[dict], key: str) -> float:
    return sum(d[key] for d in samples) / len(samples)


def report(args, gateways, samples, opens, sweeps, elapsed: float, hist: str) -> None:
    print(
        f"\nzex end-to-end, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"{elapsed:.0f} s; "
        f"{args.rounds} round(s) interleaved with {args.rounds + 1} baseline runs; "
        f"latency n={args.orders:,}/client, pipelined {args.pipelined:,} orders/client, "
        f"window {args.window}; "
        f"gateway workers {args.workers}, link {args.link}; matcher fsync={args.fsync} "
        f"digest_every={args.digest_every} "
        f"snapshot_every={args.snapshot_every}; histogram {hist}"
    )
    print(
        "figures are means over the runs; each baseline run is listed in the progress lines above"
    )
    print(f"\n{'figure':34} {'zex':>12} {'baseline':>12} {'ratio':>7}  target")
    for g in gateways:
        for key, target in (("p50", 2.5), ("p99", 4.0), ("p99.9", None), ("max", None)):
            z, b = (
                pooled(samples[("lat", g, "zex")], key),
                pooled(samples[("lat", g, "baseline")], key),
            )
            verdict = (
                "" if target is None else f"<= {target}x {'PASS' if z / b <= target else 'MISS'}"
            )
            print(
                f"{g} gw latency {key + ' (us)':21} {z:12,.0f} {b:12,.0f} {z / b:6.2f}x  {verdict}"
            )
        z, b = (
            pooled(samples[("pipe", g, "zex")], "rate"),
            pooled(samples[("pipe", g, "baseline")], "rate"),
        )
        print(
            f"{g} gw pipelined (orders/s){'':9} {z:12,.0f} {b:12,.0f} {z / b:6.2f}x  >= 0.5x "
            f"{'PASS' if z / b >= 0.5 else 'MISS'}"
        )
    print(
        "\ntransport floor: the same hops as zex with no work in them (client -> C relay ->"
        " echo -> relay -> client)"
    )
    print(f"{'figure':34} {'relay':>12} {'vs baseline':>12} {'zex vs relay':>13}")
    for g in gateways:
        for key in ("p50", "p99"):
            r = pooled(samples[("lat", g, "relay")], key)
            b = pooled(samples[("lat", g, "baseline")], key)
            z = pooled(samples[("lat", g, "zex")], key)
            print(f"{g} gw latency {key + ' (us)':21} {r:12,.0f} {r / b:11.2f}x {z / r:12.2f}x")
        r = pooled(samples[("pipe", g, "relay")], "rate")
        b = pooled(samples[("pipe", g, "baseline")], "rate")
        z = pooled(samples[("pipe", g, "zex")], "rate")
        print(f"{g} gw pipelined (orders/s){'':9} {r:12,.0f} {r / b:11.2f}x {z / r:12.2f}x")
    if opens:
        print(
            f"\n{'open loop (from intended send)':34} "
            f"{'zex p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9}"
            f"   {'base p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9}  (us; sender late <= zex/base)"
        )
        for g, frac, rate, b, z in opens:
            label = f"{g} gw {frac:.0%} of max = {rate:,.0f}/s"
            print(
                f"{label:34} {z['p50']:9,} {z['p99']:9,} {z['p99.9']:9,} {z['max']:9,}"
                f"   {b['p50']:9,} {b['p99']:9,} {b['p99.9']:9,} {b['max']:9,}"
                f"  {z['behind_us']:,}/{b['behind_us']:,}"
            )
    if sweeps:
        print(
            f"\n{'workers (1 gateway), mean of runs':34} "
            f"{'p50 us':>8} {'ratio':>6} {'p99 us':>8} {'ratio':>6} "
            f"{'orders/s':>9} {'ratio':>6}"
        )
        for w in sorted({row[0] for row in sweeps}):
            rows = [row for row in sweeps if row[0] == w]
            bl, zl, bp, zp = ([row[i] for row in rows] for i in range(1, 5))
            z50, z99, zr = pooled(zl, "p50"), pooled(zl, "p99"), pooled(zp, "rate")
            print(
                f"{w:<34} {z50:8,.0f} {z50 / pooled(bl, 'p50'):5.2f}x "
                f"{z99:8,.0f} {z99 / pooled(bl, 'p99'):5.2f}x "
                f"{zr:9,.0f} {zr / pooled(bp, 'rate'):5.2f}x"
            )


if __name__ == "__main__":
    main()
