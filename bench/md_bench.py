"""Market-data benchmark: fan-out, ack-to-print latency, and a stalled subscriber vs matching.

    python bench/md_bench.py [--commands 150000] [--window 500] [--trades 2000] [--quick]

Real node processes (``python -m zex.nodes.tools.cli matcher|marketdata|gateway``)
on tcp loopback, from a config written to a temp dir, a fresh exchange (new
data dir) for every run so each run sees the same workload. One instrument
(XYZ), matcher fsync="batch", digests and snapshots off (their stalls are
bench/e2e_bench.py's subject), marketdata defaults (l3 off, pub_hwm 100k);
where the nodes have them, metrics exporters on free ports and the gateway's
audit PUSH off (no logger node runs here).

The feeder is this process: a DEALER with identity b"gw1" on the matcher's
ROUTER sending encoded NewOrderCmd/CancelCmd of ``mixed_stream`` (about 70 %
resting limits, 20 % cancels, 10 % sweeping IOCs), encoded beforehand, with a
window of W commands in flight; a command is done when its first DIRECT
answer (Accepted, Rejected or Cancelled) comes back. After the stream, one
sentinel order (a resting buy at 0.01) makes a last l2 update whose mseq
tells every subscriber that the stream is over; it is not counted.

1. Fan-out: 1 and 4 subscriber processes SUB to ``md.``; each counts updates
   and bytes, stamps the first and last arrival, checks every topic's seq.
   live:    the marketdata node runs while the matcher is fed; delivered
            updates/s is then bounded by the matcher and the shared CPU.
   backlog: the marketdata node is SIGSTOPped while the matcher is fed and
            SIGCONTed after, so it works off the queued event stream as fast
            as it can, alone: its own publishing ceiling.
   baseline: a raw pyzmq PUB process sends the frames the first live
            subscriber recorded (the same bytes, so the same sizes) back to
            back to 1 and 4 of the same subscriber processes.
   Target: >= 50 % of the baseline rate.
2. Ack-to-print: matcher + gateway + marketdata; a maker rests a sell (Client),
   a taker sends a crossing IOC buy (Client); latency from the taker's ack to
   a SUB thread in this process receiving the Trades message (mseq == the
   ack's seq). Baseline, interleaved trade by trade: a PUB in this process ->
   a SUB thread, the same Trades bytes, one hop.
3. Stalled subscriber: matching throughput (commands/s from the feeder's
   acks) with the marketdata node attached and (a) no subscriber, (b) one
   SUB process on the md feed that never reads, (c) that plus one SUB on
   the matcher's event stream that never reads; a, b, c alternated.
   Target: (b) and (c) >= 80 % of (a).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import multiprocessing as mp
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import zmq
from e2e_bench import HdrHistogram, Proc, free_port, say, summarise

from zex.nodes.matcher.workload import mixed_stream
from zex.nodes.runtime.config import GatewayConfig, MarketDataConfig, MatcherConfig
from zex.protocol import marketdata as md
from zex.protocol.client import Client
from zex.protocol.internal import (
    BUY,
    DIRECT_ROLE,
    GTC,
    LIMIT,
    STP_NONE,
    Accepted,
    Cancelled,
    NewOrderCmd,
    Rejected,
    encoder,
    event_decoder,
)
from zex.protocol.messages import Reject

STALL_S = 15.0  # no answer for this long: the run is broken, not slow
IDLE_S = 3.0  # a subscriber that saw no sentinel gives up this long after its last update
PUB_HWM = 100_000  # the marketdata node's default pub_hwm; the baseline PUB uses the same
SUB_HWM = 100_000  # every subscriber's rcvhwm (BookSubscriber's default)

CONFIG = """\
[matcher]
bind = "tcp://127.0.0.1:{p[0]}"
events_bind = "tcp://127.0.0.1:{p[1]}"
replay_bind = "tcp://127.0.0.1:{p[2]}"
data_dir = "{data}"
fsync = "{fsync}"
digest_every = 0
snapshot_every = 0
{extra[matcher]}
[gateway]
bind = "tcp://127.0.0.1:{p[3]}"
{extra[gateway]}
[marketdata]
feed_bind = "tcp://127.0.0.1:{p[4]}"
snapshot_bind = "tcp://127.0.0.1:{p[5]}"
{extra[marketdata]}

[[instruments]]
symbol = "XYZ"
tick = "0.01"
lot = "1"
max_price = "100000"
reference_price = "100"

[[accounts]]
id = "mm"
credential = "mm"

[[accounts]]
id = "tk"
credential = "tk"
"""

Reports = msgspec.msgpack.Decoder(list[tuple[bytes, str, int, int, msgspec.Raw]])


class Head(msgspec.Struct):
    """What a subscriber reads of every feed message (msgspec skips the other keys)."""

    type: str
    seq: int = 0
    mseq: int = 0
    next_seq: int = 0


head_decoder = msgspec.msgpack.Decoder(Head)


# -------------------------------------------------------------- processes
def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> tuple[float, float]:
    """(CPU s the whole machine was busy, CPU s of this process and its reaped children)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(x) for x in f.readline().split()[1:9]
        )
    ours = sum(
        getattr(resource.getrusage(who), k)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for k in ("ru_utime", "ru_stime")
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), ours


def measured(fn, *args) -> dict:
    """Run one phase; add ``others``: the share of one core that processes not ours used meanwhile.

    Every phase reaps the processes it started, so getrusage(RUSAGE_CHILDREN) has their CPU.
    """
    b0, t0 = machine_cpu_s(), time.monotonic()
    d = fn(*args)
    b1, t1 = machine_cpu_s(), time.monotonic()
    d["others"] = max(0.0, (b1[0] - b0[0]) - (b1[1] - b0[1])) / (t1 - t0)
    return d


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def optional_keys() -> dict[str, str]:
    """Keys only some versions of nodes/runtime/config.py have: metrics on free ports, no audit logger."""
    out = {}
    for section, cls in (
        ("matcher", MatcherConfig),
        ("gateway", GatewayConfig),
        ("marketdata", MarketDataConfig),
    ):
        fields = {f.name for f in dataclasses.fields(cls)}
        lines = []
        if "metrics_bind" in fields:  # a fixed default port would clash with anything else running
            lines.append(f'metrics_bind = "127.0.0.1:{free_port()}"')
        if "audit" in fields:  # the logger node is not part of this benchmark
            lines.append('audit = "off"')
        out[section] = "".join(line + "\n" for line in lines)
    return out


class Exchange:
    """A fresh matcher + marketdata (+ gateway) on loopback ports, in its own dir under tmp."""

    def __init__(self, tmp: Path, name: str, fsync: str) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.ports = [free_port() for _ in range(6)]
        self.config = self.dir / "zex.toml"
        self.config.write_text(
            CONFIG.format(p=self.ports, data=self.dir / "data", fsync=fsync, extra=optional_keys())
        )
        self.procs: dict[str, Proc] = {}

    def ep(self, k: int) -> str:
        return f"tcp://127.0.0.1:{self.ports[k]}"

    cmd_ep = property(lambda self: self.ep(0))
    events_ep = property(lambda self: self.ep(1))
    gateway_ep = property(lambda self: self.ep(3))
    feed_ep = property(lambda self: self.ep(4))

    def start(self, *nodes: str) -> Exchange:
        for node in nodes:
            args = ["-m", "zex.nodes.tools.cli", node, "--config", str(self.config)]
            self.procs[node] = Proc(node, args, self.dir / f"{node}.log").start()
        return self

    def pid(self, node: str) -> int:
        return self.procs[node].proc.pid

    def stop(self) -> None:
        for node in ("gateway", "marketdata", "matcher"):
            p = self.procs.pop(node, None)
            if p is not None:
                if node == "marketdata":  # a SIGSTOPped node must run to hear SIGINT
                    os.kill(p.proc.pid, signal.SIGCONT)
                p.stop()


# ----------------------------------------------------------------- feeder
def stream_frames(n: int, seed: int) -> list[bytes]:
    return [encoder.encode(c) for c in mixed_stream(n, seed=seed, gw="gw1")]


class Feeder:
    """The matcher's command link as a gateway would use it: DEALER b"gw1", W in flight."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.identity = b"gw1"
        self.sock.sndhwm = self.sock.rcvhwm = 1_000_000
        self.sock.connect(endpoint)
        self.last_seq = 0

    def run(self, frames: list[bytes], window: int) -> dict:
        """Send every frame with up to ``window`` unanswered; commands/s first send -> last ack."""
        sock, n = self.sock, len(frames)
        send, recv, poll, decode = sock.send, sock.recv, sock.poll, Reports.decode
        answers = (Accepted, Rejected, Cancelled)
        sent = done = 0
        gc.collect()
        gc.disable()
        t0 = time.monotonic_ns()
        try:
            while done < n:
                while sent < n and sent - done < window:
                    send(frames[sent])
                    sent += 1
                if not poll(int(STALL_S * 1000)):
                    raise RuntimeError(f"no answer from the matcher for {STALL_S} s ({done}/{n})")
                while True:
                    for _client, _acct, role, _rseq, raw in decode(recv()):
                        if role == DIRECT_ROLE:
                            ev = event_decoder.decode(raw)
                            if type(ev) in answers:
                                done += 1
                                self.last_seq = max(self.last_seq, ev.seq)
                    if not poll(0):
                        break
            t1 = time.monotonic_ns()
        finally:
            gc.enable()
        return {"n": n, "t0": t0, "t1": t1, "rate": n / ((t1 - t0) / 1e9)}

    def sentinel(self) -> int:
        """One resting buy far below the market: its l2 update ends the subscribers' count."""
        seq = self.last_seq + 1
        cmd = NewOrderCmd(
            time.time_ns(),
            "gw1",
            b"c1",
            "sentinel",
            f"end{seq}",
            "XYZ",
            BUY,
            LIMIT,
            GTC,
            1,
            1,
            False,
            STP_NONE,
        )
        self.sock.send(encoder.encode(cmd))
        deadline = time.monotonic() + STALL_S
        while time.monotonic() < deadline:
            if self.sock.poll(100):
                for _c, _a, role, _r, raw in Reports.decode(self.sock.recv()):
                    ev = event_decoder.decode(raw)
                    if role == DIRECT_ROLE and type(ev) is Accepted and ev.cl_ord_id == f"end{seq}":
                        if ev.seq != seq:
                            raise RuntimeError(f"sentinel got seq {ev.seq}, expected {seq}")
                        self.last_seq = seq
                        return seq
        raise RuntimeError("the sentinel order was not answered")

    def close(self) -> None:
        self.sock.close(0)


# ------------------------------------------------------------ subscribers
def subscriber_main(endpoint: str, record: str, ready, out, stop_mseq) -> None:
    """SUB to md., count updates until the one with mseq >= stop_mseq (the sentinel)."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = SUB_HWM
    sub.subscribe(md.TOPIC_PREFIX)
    sub.connect(endpoint)
    try:
        if not sub.poll(10_000):  # the first message (a heartbeat) proves the subscription live
            raise RuntimeError(f"nothing on {endpoint} within 10 s")
        ready.put(os.getpid())
        expect: dict[bytes, int] = {}  # topic -> the seq its next update should carry
        missing: dict[bytes, int] = {}  # topic -> updates lost (seq gaps)
        kept: list[tuple[bytes, bytes]] = []
        n = nbytes = hb = 0
        first = last = 0
        stop_at, finished = stop_mseq.value, False
        recv, decode, now, NOBLOCK = (
            sub.recv_multipart,
            head_decoder.decode,
            time.monotonic_ns,
            zmq.NOBLOCK,
        )
        gc.disable()
        while not finished:
            if not sub.poll(200):
                stop_at = stop_mseq.value
                if stop_at and last and now() - last > IDLE_S * 1e9:
                    break  # the sentinel was lost: the last update stands
                continue
            for _ in range(1000):
                try:
                    frames = recv(NOBLOCK)
                except zmq.Again:
                    break
                t = now()
                topic, payload = frames
                h = decode(payload)
                if h.type == "md_heartbeat":
                    hb += 1
                    e = expect.get(topic)
                    if e is not None and e != h.next_seq:
                        missing[topic] = missing.get(topic, 0) + h.next_seq - e
                    expect[topic] = h.next_seq
                    continue
                e = expect.get(topic)
                if e is not None and e != h.seq:
                    missing[topic] = missing.get(topic, 0) + h.seq - e
                expect[topic] = h.seq + 1
                if record:
                    kept.append((topic, payload))
                if stop_at and h.mseq >= stop_at:
                    finished = True
                    break
                n += 1
                nbytes += len(topic) + len(payload)
                if not first:
                    first = t
                last = t
            stop_at = stop_mseq.value
        gc.enable()
        if record:
            Path(record).write_bytes(msgspec.msgpack.encode(kept))
        out.put(
            (
                "ok",
                {
                    "n": n,
                    "bytes": nbytes,
                    "first": first,
                    "last": last,
                    "hb": hb,
                    "gaps": {k.decode(): v for k, v in missing.items()},
                    "sentinel": finished,
                },
            )
        )
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        out.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        sub.close(0)
        ctx.term()


def publisher_main(endpoint: str, record: str, ready, go, done, out) -> None:
    """The fan-out baseline: send the recorded frames back to back from a raw PUB."""
    frames = [list(f) for f in msgspec.msgpack.decode(Path(record).read_bytes())]
    firsts: dict[bytes, int] = {}
    for topic, payload in frames:
        firsts.setdefault(topic, head_decoder.decode(payload).seq)
    hbs = [
        [
            t,
            md.encoder.encode(
                md.MdHeartbeat(
                    symbol=t.split(b".")[1].decode(),
                    channel=t.split(b".")[2].decode(),
                    next_seq=s,
                    mseq=0,
                )
            ),
        ]
        for t, s in firsts.items()
    ]
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.sndhwm = PUB_HWM
    pub.bind(endpoint)
    try:
        ready.put(os.getpid())
        while not go.wait(0.02):  # heartbeats until every subscriber has heard one
            for f in hbs:
                pub.send_multipart(f)
        send, NOBLOCK = pub.send_multipart, zmq.NOBLOCK
        gc.disable()
        t0 = time.monotonic_ns()
        for f in frames:
            send(f, NOBLOCK)
        t1 = time.monotonic_ns()
        gc.enable()
        out.put(("ok", {"t0": t0, "t1": t1, "n": len(frames)}))
        done.wait(120)  # closing now would discard what is still queued (linger 0)
    finally:
        pub.close(0)
        ctx.term()


class Subscribers:
    """k subscriber processes on one feed endpoint, started together, ready when they heard it."""

    def __init__(self, endpoint: str, k: int, record: Path | None = None) -> None:
        self.mp = mp.get_context("spawn")
        self.ready, self.out = self.mp.Queue(), self.mp.Queue()
        self.stop_mseq = self.mp.RawValue("q", 0)
        self.procs = [
            self.mp.Process(
                target=subscriber_main,
                daemon=True,
                args=(
                    endpoint,
                    str(record) if (record and i == 0) else "",
                    self.ready,
                    self.out,
                    self.stop_mseq,
                ),
            )
            for i in range(k)
        ]
        for p in self.procs:
            p.start()

    def wait_ready(self, timeout: float = 60.0) -> list[int]:
        pids, deadline = [], time.monotonic() + timeout
        while len(pids) < len(self.procs):
            try:
                pids.append(self.ready.get(timeout=0.2))
            except queue.Empty:
                if not self.out.empty():
                    raise RuntimeError(f"subscriber failed: {self.out.get()[1]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"subscribers not ready within {timeout} s") from None
        return pids

    def results(self, timeout: float = 300.0) -> list[dict]:
        res = []
        for _ in self.procs:
            status, value = self.out.get(timeout=timeout)
            if status != "ok":
                raise RuntimeError(f"subscriber failed: {value}")
            res.append(value)
        return res

    def close(self) -> None:
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()


def fanout_figures(res: list[dict]) -> dict:
    per = [r["n"] / max(1e-9, (r["last"] - r["first"]) / 1e9) for r in res]
    t0, t1 = min(r["first"] for r in res), max(r["last"] for r in res)
    return {
        "per": sum(per) / len(per),
        "agg": sum(r["n"] for r in res) / ((t1 - t0) / 1e9),
        "n": sum(r["n"] for r in res) / len(res),
        "bytes": sum(r["bytes"] for r in res) / len(res),
        "gaps": sum(sum(r["gaps"].values()) for r in res),
        "lost_sentinel": sum(not r["sentinel"] for r in res),
        "t0": t0,
        "t1": t1,
    }


# ------------------------------------------------------------- fan-out
def fanout_zex(
    tmp: Path, tag: str, k: int, frames: list[bytes], args, record: Path | None, backlog: bool
) -> dict:
    ex = Exchange(tmp, tag, args.fsync).start("matcher", "marketdata")
    subs = None
    ctx = zmq.Context()
    feeder = Feeder(ctx, ex.cmd_ep)
    try:
        subs = Subscribers(ex.feed_ep, k, record)
        # A fresh matcher gives command i seq i, so the sentinel's seq is known before it is sent.
        subs.stop_mseq.value = len(frames) + 1
        subs.wait_ready()
        md_pid = ex.pid("marketdata")
        cpu0 = {n: cpu_s(ex.pid(n)) for n in ("matcher", "marketdata")}
        if backlog:
            os.kill(md_pid, signal.SIGSTOP)
        f = feeder.run(frames, args.window)
        f["last_seq"] = feeder.sentinel()
        if f["last_seq"] != len(frames) + 1:
            raise RuntimeError(f"the sentinel took seq {f['last_seq']}, not {len(frames) + 1}")
        if backlog:
            os.kill(md_pid, signal.SIGCONT)
        res = subs.results()
        d = fanout_figures(res)
        d["cpu"] = {n: cpu_s(ex.pid(n)) - cpu0[n] for n in cpu0}
        d["feed"] = f
        d["lag_ms"] = (d["t1"] - f["t1"]) / 1e6  # last update's arrival after the last ack
        d["rss_md"] = rss_mb(md_pid)
        return d
    finally:
        feeder.close()
        ctx.term()
        if subs is not None:
            subs.close()
        ex.stop()


def fanout_baseline(tmp: Path, k: int, record: Path, stop_mseq: int) -> dict:
    ctx = mp.get_context("spawn")
    ready, go, done, out = ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Queue()
    ep = f"tcp://127.0.0.1:{free_port()}"
    pub = ctx.Process(
        target=publisher_main, daemon=True, args=(ep, str(record), ready, go, done, out)
    )
    pub.start()
    subs = None
    try:
        ready.get(timeout=60)
        subs = Subscribers(ep, k)
        subs.stop_mseq.value = stop_mseq
        subs.wait_ready()
        go.set()
        status, p = out.get(timeout=120)
        if status != "ok":
            raise RuntimeError(f"publisher failed: {p}")
        d = fanout_figures(subs.results())
        d["send_rate"] = p["n"] / ((p["t1"] - p["t0"]) / 1e9)
        return d
    finally:
        done.set()
        if subs is not None:
            subs.close()
        pub.join(10)
        if pub.is_alive():
            pub.kill()
            pub.join()


# ---------------------------------------------------------- ack-to-print
def sub_thread(
    ctx: zmq.Context,
    endpoint: str,
    topic: bytes,
    q: queue.Queue,
    live: threading.Event,
    stop: threading.Event,
) -> None:
    """Stamp each update's arrival at once; hand (mseq, ns) to the main thread."""
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(topic)
    sub.connect(endpoint)
    decode, now = head_decoder.decode, time.monotonic_ns
    try:
        while not stop.is_set():
            if not sub.poll(100):
                continue
            frames = sub.recv_multipart()
            t = now()
            h = decode(frames[1])
            if h.type == "md_heartbeat":
                live.set()
            else:
                q.put((h.mseq, t, frames[1]))
    finally:
        sub.close(0)


def pctl(samples: list[int], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p / 100))] / 1000  # us


def ack_to_print(tmp: Path, n: int, args) -> dict:
    ex = Exchange(tmp, "latency", args.fsync).start("matcher", "marketdata", "gateway")
    ctx = zmq.Context()
    stop = threading.Event()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    base_ep = f"tcp://127.0.0.1:{free_port()}"
    pub.bind(base_ep)
    topic = md.topic("XYZ", "trades")
    qz, qb, live_z, live_b = queue.Queue(), queue.Queue(), threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=sub_thread, args=(ctx, ep, topic, q, lv, stop), daemon=True)
        for ep, q, lv in ((ex.feed_ep, qz, live_z), (base_ep, qb, live_b))
    ]
    for t in threads:
        t.start()
    mm = Client(ex.gateway_ep, "mm", "mm", timeout=5.0, context=ctx)
    tk = Client(ex.gateway_ep, "tk", "tk", timeout=5.0, context=ctx)
    try:
        mm.logon()
        tk.logon()
        hb = md.encoder.encode(md.MdHeartbeat(symbol="XYZ", channel="trades", next_seq=1, mseq=0))
        deadline = time.monotonic() + 10
        while not (live_z.is_set() and live_b.is_set()):
            pub.send_multipart([topic, hb])
            time.sleep(0.02)
            if time.monotonic() > deadline:
                raise RuntimeError("the trades subscriptions were not live within 10 s")
        to_ack, to_print, ack_print, base = [], [], [], []
        payload = b""
        warm = max(50, n // 10)
        for i in range(warm + n):
            r = mm.place("XYZ", "sell", 1, "100.00")
            if type(r) is Reject:
                raise RuntimeError(f"maker order refused: {r.reason_name}: {r.text}")
            t_send = time.monotonic_ns()
            r = tk.place("XYZ", "buy", 1, "100.00", tif="ioc")
            t_ack = time.monotonic_ns()
            if type(r) is Reject:
                raise RuntimeError(f"taker order refused: {r.reason_name}: {r.text}")
            while True:
                mseq, t_print, real = qz.get(timeout=STALL_S)
                if mseq >= r.seq:
                    break
            if mseq != r.seq:
                raise RuntimeError(f"print for mseq {mseq}, expected {r.seq}")
            mm.poll(0)  # the maker's fills
            tk.poll(0)
            if not payload:  # the baseline sends a real Trades message of this run
                payload = real
            t0 = time.monotonic_ns()
            pub.send_multipart([topic, payload])
            _, t1, _ = qb.get(timeout=STALL_S)
            if i >= warm:
                to_ack.append(t_ack - t_send)
                to_print.append(t_print - t_send)
                ack_print.append(t_print - t_ack)
                base.append(t1 - t0)
        return {
            "n": n,
            "ack_print": ack_print,
            "to_ack": summarise(to_ack),
            "to_print": summarise(to_print),
            "base": summarise(base),
            "size": len(payload),
            "early": sum(v < 0 for v in ack_print),
        }
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        mm.close()
        tk.close()
        pub.close(0)
        ctx.term()
        ex.stop()


# -------------------------------------------------------- stalled reader
batch_head = msgspec.msgpack.Decoder(tuple[int, int, msgspec.Raw])


def stalled_main(endpoints: list[tuple[str, bytes]], ready, drain, out) -> None:
    """SUB to each (endpoint, topic) and never read; when told, drain and count what got through."""
    ctx = zmq.Context()
    socks = []
    for ep, topic in endpoints:
        s = ctx.socket(zmq.SUB)
        s.linger = 0
        s.subscribe(topic)
        s.connect(ep)
        socks.append(s)
    time.sleep(0.5)  # the subscriptions reach the PUBs
    ready.put(os.getpid())
    drain.wait(600)
    res = []
    for (_ep, topic), s in zip(endpoints, socks, strict=True):
        # md feed: updates received, and lost by the seq gaps (heartbeats show a lost tail);
        # event stream: commands covered by the batches received, and lost ([b"hb", seq] likewise)
        n = lost = 0
        expect: dict[bytes, int] = {}
        last = time.monotonic()
        while time.monotonic() - last < 2.5:  # an idle topic's heartbeat comes within 2 s
            if not s.poll(200):
                continue
            key, payload = s.recv_multipart()
            if topic == md.TOPIC_PREFIX:
                h = head_decoder.decode(payload)
                seq, span = (h.next_seq, 0) if h.type == "md_heartbeat" else (h.seq, 1)
            elif key == b"ev":
                first, seq, _ = batch_head.decode(payload)
                seq, span = first, seq - first + 1
            else:  # b"hb": the last seq published
                key, seq, span = b"ev", msgspec.msgpack.decode(payload) + 1, 0
            e = expect.get(key)
            if e is not None and seq > e:
                lost += seq - e
            expect[key] = max(seq + span, e or 0)
            n += span
            if span:
                last = time.monotonic()
        res.append({"n": n, "lost": lost})
    out.put(res)
    for s in socks:
        s.close(0)
    ctx.term()


def stalled_run(tmp: Path, tag: str, variant: str, frames: list[bytes], args) -> dict:
    ex = Exchange(tmp, tag, args.fsync).start("matcher", "marketdata")
    stalled = None
    ctx = zmq.Context()
    feeder = Feeder(ctx, ex.cmd_ep)
    c = mp.get_context("spawn")
    drain, out = c.Event(), c.Queue()
    try:
        eps = {
            "a": [],
            "b": [(ex.feed_ep, md.TOPIC_PREFIX)],
            "c": [(ex.feed_ep, md.TOPIC_PREFIX), (ex.events_ep, b"")],
        }[variant]
        if eps:
            ready = c.Queue()
            stalled = c.Process(target=stalled_main, args=(eps, ready, drain, out), daemon=True)
            stalled.start()
            ready.get(timeout=60)
        pids = {n: ex.pid(n) for n in ("matcher", "marketdata")}
        rss0 = {n: rss_mb(pid) for n, pid in pids.items()}
        cpu0 = {n: cpu_s(pid) for n, pid in pids.items()}
        f = feeder.run(frames, args.window)
        time.sleep(0.5)  # the marketdata node finishes its backlog
        f["rss"] = {n: rss_mb(pid) - rss0[n] for n, pid in pids.items()}
        f["cpu"] = {n: cpu_s(pid) - cpu0[n] for n, pid in pids.items()}
        f["drained"] = []
        if stalled is not None:
            f["rss"]["stalled"] = rss_mb(stalled.pid)
            drain.set()
            f["drained"] = out.get(timeout=120)
        return f
    finally:
        drain.set()
        if stalled is not None:
            stalled.join(10)
            if stalled.is_alive():
                stalled.kill()
                stalled.join()
        feeder.close()
        ctx.term()
        ex.stop()


# ------------------------------------------------------------------ main
def code_version() -> str:
    """The commit the nodes run from, and the files changed since (read-only git)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "nodes", "protocol"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"{head}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=150_000, help="commands per fan-out run")
    ap.add_argument("--stall-commands", type=int, default=150_000, help="commands per stall run")
    ap.add_argument("--window", type=int, default=500, help="commands in flight from the feeder")
    ap.add_argument("--trades", type=int, default=2000, help="trades measured ack-to-print")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of every fan-out run")
    ap.add_argument(
        "--stall-rounds", type=int, default=3, help="rounds of stall runs a, b, c (then a)"
    )
    ap.add_argument("--fsync", default="batch", choices=["always", "batch", "off"])
    ap.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    args = ap.parse_args()
    if args.quick:
        args.commands, args.stall_commands, args.trades = 20_000, 20_000, 500
        args.rounds = args.stall_rounds = 1
    hist = "hdrhistogram (hdrh)" if HdrHistogram is not None else "built-in log-linear"
    say(
        f"md bench: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"pyzmq {zmq.__version__}"
        f" (libzmq {zmq.zmq_version()}), msgspec {msgspec.__version__}, histogram {hist}"
    )
    say(f"code: {code_version()}")
    tmp = Path(tempfile.mkdtemp(prefix="zex-md-"))
    record = tmp / "recorded.msgpack"
    t_start = time.monotonic()
    busy0 = machine_cpu_s()
    fan: dict[tuple, list[dict]] = {}
    stall: dict[str, list[dict]] = {}
    try:
        say(f"encoding {args.commands:,} + {args.stall_commands:,} commands of mixed_stream")
        frames = stream_frames(args.commands, seed=1)
        sframes = (
            frames
            if args.stall_commands == args.commands
            else stream_frames(args.stall_commands, 1)
        )

        # -- 1. fan-out: zex live, zex backlog, baseline; 1 and 4 subscribers, in rounds
        stop_mseq = 0
        for r in range(args.rounds):
            for k in (1, 4):
                for kind in ("live", "backlog", "baseline"):
                    tag = f"fan-{kind}-{k}-{r}"
                    if kind == "baseline":
                        d = measured(fanout_baseline, tmp, k, record, stop_mseq)
                        extra = f"PUB sent {d['send_rate']:,.0f}/s"
                    else:
                        rec = record if not record.exists() else None
                        d = measured(fanout_zex, tmp, tag, k, frames, args, rec, kind == "backlog")
                        stop_mseq = stop_mseq or d["feed"]["last_seq"]
                        extra = (
                            f"matcher {d['feed']['rate']:,.0f} cmd/s, last update "
                            f"{d['lag_ms']:,.0f} ms after last ack, CPU s matcher "
                            f"{d['cpu']['matcher']:.1f} md {d['cpu']['marketdata']:.1f}, "
                            f"md RSS {d['rss_md']:.0f} MB"
                        )
                    say(
                        f"  fan-out {kind:8} {k} sub: {d['per']:,.0f} updates/s per sub, "
                        f"{d['agg']:,.0f} aggregate ({d['n']:,.0f} updates, "
                        f"{d['bytes'] / max(1, d['n']):.0f} B avg, gaps {d['gaps']}, "
                        f"sentinel lost {d['lost_sentinel']}); {extra}; others {d['others']:.0%}"
                    )
                    fan.setdefault((kind, k), []).append(d)

        # -- 2. ack-to-print latency
        say(f"ack-to-print: {args.trades:,} trades through matcher + gateway + marketdata")
        lat = measured(ack_to_print, tmp, args.trades, args)
        say(
            f"  ack->print p50 {pctl(lat['ack_print'], 50):,.0f} us p99 "
            f"{pctl(lat['ack_print'], 99):,.0f} us; one hop p50 {lat['base']['p50']:,} us "
            f"p99 {lat['base']['p99']:,} us; others {lat['others']:.0%}"
        )

        # -- 3. stalled subscriber vs matching throughput
        order = ["a", "b", "c"] * args.stall_rounds + ["a"]
        for i, v in enumerate(order):
            f = measured(stalled_run, tmp, f"stall-{v}-{i}", v, sframes, args)
            # zip is strict=False: variant a stalls no SUB and b only the md one (fewer drained)
            got = "; ".join(
                f"{what} got {g['n']:,}, lost {g['lost']:,}"
                for what, g in zip(
                    ("stalled md SUB: updates", "stalled event SUB: commands"),
                    f["drained"],
                    strict=False,
                )
            )
            say(
                f"  stall ({v}) {f['rate']:,.0f} cmd/s; "
                f"RSS growth matcher {f['rss']['matcher']:+.0f} MB, "
                f"marketdata {f['rss']['marketdata']:+.0f} MB"
                + (
                    f", stalled SUB process {f['rss']['stalled']:.0f} MB"
                    if "stalled" in f["rss"]
                    else ""
                )
                + f"; CPU s matcher {f['cpu']['matcher']:.1f} md {f['cpu']['marketdata']:.1f}"
                + (f"; then drained: {got}" if got else "")
                + f"; others {f['others']:.0%}"
            )
            stall.setdefault(v, []).append(f)
    except BaseException:
        say(f"stopped; logs stay in {tmp}")
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    busy1 = machine_cpu_s()
    others = (busy1[0] - busy0[0]) - (busy1[1] - busy0[1])
    report(args, fan, lat, stall, time.monotonic() - t_start, hist, others)


def mean(ds: list[dict], key: str) -> float:
    return sum(d[key] for d in ds) / len(ds)


def report(args, fan, lat, stall, elapsed: float, hist: str, others: float) -> None:
    print(
        f"\nzex market data, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"{elapsed:.0f} s "
        f"(other processes on the machine meanwhile: {others:.0f} CPU-s, "
        f"{others / elapsed:.0%} of one core); "
        f"{args.rounds} fan-out round(s), {args.stall_rounds} stall round(s); "
        f"{args.commands:,} commands per fan-out run, "
        f"{args.stall_commands:,} per stall run, window {args.window}, fsync={args.fsync}; "
        f"histogram {hist}; figures are means over the rounds"
    )
    print(
        f"\n{'fan-out (updates/s)':40} {'zex':>11} {'baseline':>11} {'ratio':>7}  {'target':14}"
        "  each round zex/baseline (others' share of a core, the larger)"
    )
    for k in (1, 4):
        b = fan[("baseline", k)]
        for kind in ("live", "backlog"):
            z = fan[(kind, k)]
            for key, what in (("per", "per sub"), ("agg", "aggregate")):
                zv, bv = mean(z, key), mean(b, key)
                verdict = f">= 0.5x {'PASS' if zv / bv >= 0.5 else 'MISS'}" if key == "per" else ""
                runs = (
                    ""
                    if key == "agg"
                    else "  runs "
                    + ", ".join(
                        f"{d[key]:,.0f}/{e[key]:,.0f} ({max(d['others'], e['others']):.0%})"
                        for d, e in zip(z, b, strict=True)  # one of each per round
                    )
                )
                print(
                    f"{f'{k} sub, {kind}, {what}':40} {zv:11,.0f} {bv:11,.0f} "
                    f"{zv / bv:6.2f}x  {verdict:14}{runs}"
                )
    for k in (1, 4):
        z = fan[("live", k)]
        print(
            f"  {k} sub live: matcher {mean([d['feed'] for d in z], 'rate'):,.0f} cmd/s, "
            f"{mean(z, 'n') / args.commands:.2f} updates/cmd, "
            f"md lag after last ack {mean(z, 'lag_ms'):,.0f} ms, "
            f"md CPU {sum(d['cpu']['marketdata'] for d in z) / len(z):.1f} s, "
            f"gaps {sum(d['gaps'] for d in z)}"
        )
    ap = lat["ack_print"]
    print(
        f"\n{'ack-to-print (us), n=' + format(lat['n'], ','):40} "
        f"{'zex':>11} {'one hop':>11} {'ratio':>7}"
    )
    for p in (50, 99):
        z, b = pctl(ap, p), lat["base"][f"p{p}"]
        print(f"{f'p{p}':40} {z:11,.0f} {b:11,} {z / b:6.2f}x")
    print(f"{'max':40} {pctl(ap, 100):11,.0f} {lat['base']['max']:11,}")
    print(
        f"  taker send->ack p50/p99 {lat['to_ack']['p50']:,}/{lat['to_ack']['p99']:,} us, "
        f"send->print {lat['to_print']['p50']:,}/{lat['to_print']['p99']:,} us; "
        f"print before ack in {lat['early']} of {lat['n']}; Trades message {lat['size']} B"
    )
    a = mean(stall["a"], "rate")
    print(
        f"\n{'stalled subscriber (commands/s)':40} {'rate':>11} {'vs (a)':>7}  {'target':13} "
        f"{'RSS growth matcher/md MB':>24}  each run (others' share of a core)"
    )
    names = {
        "a": "(a) no subscriber",
        "b": "(b) md SUB never reads",
        "c": "(c) + event-stream SUB never reads",
    }
    for v in ("a", "b", "c"):
        r = mean(stall[v], "rate")
        verdict = "" if v == "a" else f">= 0.8x {'PASS' if r / a >= 0.8 else 'MISS'}"
        rss = "/".join(
            f"{sum(d['rss'][n] for d in stall[v]) / len(stall[v]):+.0f}"
            for n in ("matcher", "marketdata")
        )
        runs = ", ".join(f"{d['rate']:,.0f} ({d['others']:.0%})" for d in stall[v])
        print(f"{names[v]:40} {r:11,.0f} {r / a:6.2f}x  {verdict:13} {rss:>24}  {runs}")
    for v in ("b", "c"):
        for i, what in enumerate(
            ("md feed: updates", "event stream: commands")[: 1 if v == "b" else 2]
        ):
            g = [d["drained"][i] for d in stall[v]]
            print(
                f"  ({v}) stalled SUB on the {what} drained after the run: got "
                f"{mean(g, 'n'):,.0f}, lost {mean(g, 'lost'):,.0f} (mean of {len(g)})"
            )
        rss = mean([d["rss"] for d in stall[v]], "stalled")
        cpu_v = mean([d["cpu"] for d in stall[v]], "marketdata")
        cpu_a = mean([d["cpu"] for d in stall["a"]], "marketdata")
        print(
            f"  ({v}) stalled SUB process RSS {rss:.0f} MB; "
            f"marketdata CPU {cpu_v:.1f} s vs {cpu_a:.1f} s in (a)"
        )


if __name__ == "__main__":
    main()
