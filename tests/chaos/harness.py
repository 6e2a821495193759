"""Crash anywhere: SIGKILL any node of a whole exchange under load, restart it, and check everything.

    python -m tests.chaos.harness --kills 200          # the long run (make chaos)
    python -m tests.chaos.harness --kills 6 --seed 3   # a short one

The exchange runs as separate processes (tests/chaos/cluster.py): matcher,
two gateways, marketdata, logger. Client threads (traders.py) trade through
both gateways the whole time. The driver kills one node with SIGKILL after a
random stretch of flow (seeded), restarts it, waits until it serves again
and measures how long that took, and goes on; the nodes are taken round
robin in a seeded order, so every node is killed as often as the others.

Serving again means: the matcher, the first fresh ack (a seq above the one it
recovered to) any client gets; a gateway, the first fresh ack a client gets
through it; marketdata, ``live`` and its ``matcher_seq`` at the matcher's seq
of the moment it was restarted; the logger, its ``matcher_seq`` there.

At the end the flow stops, every client asks for its missed reports and its
open orders, every node catches up and stops cleanly, and checks.py holds the
journal, the audit trail, the clients' records, the books and the feed to the
invariants (DESIGN.md 5). The report says what was killed, what was sent,
acknowledged, lost (must be 0) and duplicated (must be 0), and the recovery
times per node. Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from tests.conftest import wait_for
from zex.protocol import marketdata as md
from zex.protocol.client import Client

from .checks import Views, check_all, replay_journal
from .cluster import SYMBOLS, Cluster
from .traders import AckLog, FeedWatcher, Trader, norm_levels

RECOVER_DEADLINE_S = 60.0  # a restarted node not serving within this fails the run
CATCH_UP_DEADLINE_S = 60.0  # marketdata and the logger reaching the final seq at the end


@dataclass
class Options:
    kills: int = 200
    seed: int = 1
    clients: int = 4
    gateways: int = 2
    rate: float = 40.0  # requests/s per client
    min_flow: float = 0.5  # s of flow between a node serving again and the next kill ...
    max_flow: float = 1.5  # ... drawn uniformly from the seeded RNG
    # matcher restarts then load a snapshot and replay the journal's tail
    snapshot_every: int = 2_000
    # A digest of the matcher's whole state goes on the event stream this often, so `zex replay`
    # proves a restarted matcher's state equals a replay from seq 1, byte for byte.
    digest_every: int = 5_000
    # accounts whose dropped sessions cancel their orders
    cancel_on_disconnect: tuple[str, ...] = ("t1",)
    progress: bool = True


@dataclass
class Result:
    options: Options
    kills: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    recover_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    problems: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0
    directory: Path | None = None
    # what the checks were given, so a test can show they catch a fault (tests/chaos/test_crash_anywhere.py)
    inputs: tuple | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        f, o = self.figures, self.options
        out = [
            f"crash anywhere: {sum(self.kills.values())} kills in {self.seconds:.1f} s (seed {o.seed}, "
            f"{o.clients} clients on {o.gateways} gateway(s), {o.rate:g} requests/s each, "
            f"{o.min_flow:g}..{o.max_flow:g} s of flow between kills)",
            "kills per node: "
            + ", ".join(f"{n} {k}" for n, k in sorted(self.kills.items(), key=_node_order)),
        ]
        if "orders_sent" in f:
            out.append(
                f"orders sent {f['orders_sent']:,}, acknowledged {f['acknowledged']:,}, "
                f"rejected {f['rejected']:,}, lost {f['lost']}, duplicated {f['duplicated']}; "
                f"trades {f['trades']:,} (seen by clients {f['trades_seen']:,}); "
                f"commands journaled {f['commands']:,}"
            )
            out.append(
                f"clients: {f['resends']:,} requests resent (same cl_ord_id), {f['reconnects']:,} "
                f"reconnects, {f['logons']:,} logons; cancels/replaces sent {f['other_sent']:,} "
                f"({f['other_rejected']:,} refused: the order had gone)"
            )
            out.append(
                f"matcher restarts: {f['from_snapshot']} from a snapshot + the journal's tail, "
                f"{f['from_start']} from the journal's start"
            )
            out.append(
                f"audit trail: {f['trail_records']:,} records, {f['trail_audit_records']:,} of them "
                f"gateway audit records, {f['digests']} state digests equal to a fresh replay's; "
                f"feed subscriber: {f.get('feed', {})}"
            )
        out.append("time to recover (restart -> serving), p50 / p99 / max:")
        for node, xs in sorted(self.recover_s.items(), key=_node_order):
            out.append(
                f"  {node:<10} {pct(xs, 0.50):6.3f} s / {pct(xs, 0.99):6.3f} s / {max(xs):6.3f} s"
                f"   ({len(xs)} restarts; {SERVING[node if node in SERVING else 'gw']})"
            )
        if self.ok:
            out.append(
                "OK: nothing acknowledged was lost or duplicated; journal, audit trail, `zex replay`, "
                "books (matcher, marketdata, feed) and every client's view agree"
            )
        else:
            out += [f"PROBLEM {p}" for p in self.problems]
            out.append(
                f"FAILED: {len(self.problems)} problem(s); logs and data in {self.directory}"
            )
        return out


def _node_order(item) -> int:
    return ("matcher", "gw1", "gw2", "marketdata", "logger").index(item[0])


SERVING = {
    "matcher": "first fresh ack",
    "gw": "first fresh ack through it",
    "marketdata": "live, caught up",
    "logger": "trail caught up",
}


def pct(xs: list[float], q: float) -> float:
    """The nearest-rank percentile (no interpolation: with few samples, a value that happened)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def kill_schedule(rng: random.Random, nodes: tuple[str, ...], kills: int) -> list[str]:
    """Round robin over the nodes, each round in a fresh seeded order: every node killed equally often."""
    out: list[str] = []
    while len(out) < kills:
        rnd = list(nodes)
        rng.shuffle(rnd)
        out += rnd
    return out[:kills]


class Chaos:
    def __init__(self, opts: Options, directory: Path) -> None:
        self.o = opts
        self.dir = directory
        self.rng = random.Random(opts.seed)
        self.stop = threading.Event()
        self.failed = threading.Event()
        self.acks = AckLog()
        self.traders: list[Trader] = []
        self.watcher: FeedWatcher | None = None
        self.cl: Cluster | None = None

    def say(self, text: str) -> None:
        if self.o.progress:
            print(text, flush=True)

    # ---------------------------------------------------------------- run

    def run(self) -> Result:
        o = self.o
        res = Result(o, directory=self.dir)
        started = time.monotonic()
        accounts = tuple(f"t{i}" for i in range(o.clients))
        self.cl = cl = Cluster(
            self.dir,
            gateways=o.gateways,
            accounts=accounts,
            snapshot_every=o.snapshot_every,
            digest_every=o.digest_every,
            cancel_on_disconnect=o.cancel_on_disconnect,
        )
        views = Views()
        try:
            cl.start_all()
            inst = {i.symbol: i for i in cl.cfg.instruments}
            for i, acct in enumerate(accounts):
                gw = cl.gateways[i % len(cl.gateways)]
                self.traders.append(
                    Trader(
                        acct,
                        gw,
                        cl.endpoint(gw),
                        inst,
                        seed=o.seed * 1000 + i,
                        rate=o.rate,
                        stop=self.stop,
                        acks=self.acks,
                        failed=self.failed,
                    )
                )
            self.watcher = FeedWatcher(cl.endpoint("feed"), cl.endpoint("snapshot"), self.stop)
            self.watcher.start()
            for tr in self.traders:
                tr.start()
            wait_for(
                lambda: self.failed.is_set() or all(tr.seen.acks for tr in self.traders),
                30,
                "every trader's first ack",
            )
            self.say(
                f"chaos: {len(cl.nodes)} nodes up ({', '.join(cl.nodes)}), {o.clients} traders trading; "
                f"data in {self.dir}"
            )
            for n, node in enumerate(kill_schedule(self.rng, cl.nodes, o.kills), 1):
                flow = self.rng.uniform(o.min_flow, o.max_flow)
                if self.failed.wait(flow):  # the stimulus: a random stretch of flow, then the kill
                    break
                took = self.kill_and_restart(node)
                res.kills[node] += 1
                res.recover_s[node].append(took)
                self.say(
                    f"kill {n}/{o.kills}: {node:<10} after {flow:4.2f} s of flow, serving again in "
                    f"{took:6.3f} s (seq {cl.matcher_seq():,}, {self.acked():,} orders acked)"
                )
                dead = [x for x in cl.nodes if not cl.alive(x)]
                if dead:
                    raise RuntimeError(
                        f"node(s) {dead} exited by themselves; see their logs in {self.dir}"
                    )
            self.finish_flow()
            views = self.final_views()
        except Exception as exc:
            res.problems.append(f"the run stopped early: {type(exc).__name__}: {exc}")
        finally:
            self.stop.set()
            if self.watcher is not None:
                self.watcher.expect_set.set()
            if res.problems:  # given up: the traders stop trying now
                for tr in self.traders:
                    tr.release.set()
            for tr in self.traders:
                tr.final.set()
            views.exit_codes = cl.close()  # gateways first: sessions end without a logout
            for tr in self.traders:
                tr.release.set()
            for t in [*self.traders, *([self.watcher] if self.watcher else [])]:
                t.join(10)
        for tr in self.traders:
            if tr.error is not None:
                res.problems.append(
                    f"trader {tr.account} failed: {type(tr.error).__name__}: {tr.error}"
                )
        if not res.problems:
            try:
                truth = replay_journal(cl, {t.account: t.final_orders_seq for t in self.traders})
                res.inputs = (cl, truth, self.traders, views)
                problems, res.figures = check_all(*res.inputs)
            except (
                Exception
            ) as exc:  # JournalCorrupt, Damaged, ...: a finding, not a crash of the harness
                problems = [f"the checks could not run: {type(exc).__name__}: {exc}"]
            res.problems += problems
            res.figures.update(
                resends=sum(t.resends for t in self.traders),
                reconnects=sum(t.reconnects for t in self.traders),
                logons=sum(t.logons for t in self.traders),
                other_sent=sum(t.sent_other for t in self.traders),
                other_rejected=sum(t.rejected_other for t in self.traders),
                feed=self.watcher.counters if self.watcher else {},
                **matcher_starts(cl),
            )
        res.seconds = time.monotonic() - started
        return res

    def acked(self) -> int:
        return sum(len(t.seen.acks) for t in self.traders)

    # ------------------------------------------------------------- a kill

    def kill_and_restart(self, node: str) -> float:
        """SIGKILL ``node``, start it again, wait until it serves; return restart -> serving in s."""
        cl = self.cl
        cl.kill(node)
        if node == "matcher":
            t0 = time.monotonic()
            cl.start(node)
            recovered = cl.started_seq()

            def done() -> float:
                return self.acks.first(t0, recovered)
        elif node.startswith("gw"):
            before = cl.matcher_seq()
            t0 = time.monotonic()
            cl.start(node)

            def done() -> float:
                return self.acks.first(t0, before, node)
        else:
            target = cl.matcher_seq()
            t0 = time.monotonic()
            cl.start(node)

            def done() -> float:
                try:
                    mx = cl.metrics(node)
                except OSError:
                    return 0.0
                caught = mx.get(f"zex_{node}_matcher_seq", 0) >= target
                live = node != "marketdata" or mx.get("zex_marketdata_live") == 1
                return time.monotonic() if caught and live else 0.0

        hit = wait_for(
            lambda: self.failed.is_set() or done(), RECOVER_DEADLINE_S, f"{node} serving again"
        )
        if self.failed.is_set():
            raise RuntimeError(
                "a trader failed: "
                + "; ".join(f"{t.account}: {t.error}" for t in self.traders if t.error is not None)
            )
        return hit - t0

    # ------------------------------------------------------------- the end

    def finish_flow(self) -> None:
        """Stop the flow; once every trader is done, each reads its missed reports and open orders."""
        self.stop.set()
        wait_for(
            lambda: all(t.done.is_set() for t in self.traders), 120, "every trader's last answer"
        )
        for t in self.traders:
            t.final.set()
        wait_for(
            lambda: all(t.state_read.is_set() for t in self.traders),
            120,
            "every trader's final state",
        )

    def final_views(self) -> Views:
        """The live system's books, once marketdata and the logger are at the matcher's last seq."""
        cl, v = self.cl, Views()
        v.final_seq = final = cl.matcher_seq()
        for node in ("marketdata", "logger"):
            wait_for(
                lambda node=node: cl.metrics(node).get(f"zex_{node}_matcher_seq") == final,
                CATCH_UP_DEADLINE_S,
                f"{node} at seq {final}",
            )
        gw = cl.gateways[0]
        with Client(
            cl.endpoint(gw), self.traders[0].account, self.traders[0].account, timeout=5.0
        ) as c:
            c.logon()
            for s in SYMBOLS:
                b = c.book(s, 1000)
                v.matcher_books[s] = (
                    norm_levels((lv.price, lv.qty, lv.orders) for lv in b.bids),
                    norm_levels((lv.price, lv.qty, lv.orders) for lv in b.asks),
                )
        for s in SYMBOLS:
            snap = snapshot(cl.endpoint("snapshot"), s)
            v.md_mseq[s] = snap.mseq
            v.md_books[s] = (
                norm_levels((lv.price, lv.qty, lv.orders) for lv in snap.bids),
                norm_levels((lv.price, lv.qty, lv.orders) for lv in snap.asks),
            )
        w = self.watcher
        w.expect = v.matcher_books
        w.expect_set.set()
        w.finished.wait(w.deadline_s + 10)
        if w.error is not None:
            raise RuntimeError(f"the feed subscriber failed: {w.error}")
        v.feed_matched, v.feed_books = w.matched, w.last_books
        return v


def matcher_starts(cl: Cluster) -> dict[str, int]:
    """How the matcher's restarts recovered, from its log (recovery.py says it at each start)."""
    text = (cl.tmp / "matcher.log").read_text(errors="replace")
    snap = text.count("loaded snapshot")
    return {"from_snapshot": snap, "from_start": text.count("recovered to seq") - snap - 1}


def snapshot(endpoint: str, symbol: str, timeout: float = 10.0) -> md.Snapshot:
    """Ask the marketdata node for the full L2 book of ``symbol``."""
    d = zmq.Context.instance().socket(zmq.DEALER)
    d.linger = 0
    try:
        d.connect(endpoint)
        d.send(
            md.encoder.encode(md.SnapshotRequest(symbol=symbol, depth=0, req_id=f"chaos-{symbol}"))
        )
        if not d.poll(int(timeout * 1000)):
            raise TimeoutError(f"no snapshot of {symbol} from {endpoint} within {timeout} s")
        reply = md.snapshot_reply_decoder.decode(d.recv())
        if not isinstance(reply, md.Snapshot):
            raise RuntimeError(f"snapshot of {symbol} refused: {reply}")
        return reply
    finally:
        d.close(0)


def run(opts: Options, directory: Path | None = None, keep: bool = False) -> Result:
    """One run in ``directory`` (default: a new temp dir, removed after a passing run unless ``keep``)."""
    own = directory is None
    directory = Path(tempfile.mkdtemp(prefix="zex-chaos-")) if own else directory
    res = Chaos(opts, directory).run()
    if own and res.ok and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    d = Options()
    p.add_argument(
        "--kills", type=int, default=d.kills, help=f"SIGKILLs in the run (default {d.kills})"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--clients", type=int, default=d.clients, help="trader threads, one account each"
    )
    p.add_argument("--gateways", type=int, default=d.gateways, choices=(1, 2))
    p.add_argument("--rate", type=float, default=d.rate, help="requests/s per trader")
    p.add_argument(
        "--min-flow", type=float, default=d.min_flow, help="s of flow between kills, at least"
    )
    p.add_argument(
        "--max-flow", type=float, default=d.max_flow, help="s of flow between kills, at most"
    )
    p.add_argument(
        "--dir",
        type=Path,
        help="run in this directory (kept); default a temp dir, removed after a passing run",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir of a passing run")
    a = p.parse_args(argv)
    if a.kills < 0 or a.clients < 2 or not 0 <= a.min_flow <= a.max_flow or a.rate <= 0:
        p.error("need --kills >= 0, --clients >= 2, 0 <= --min-flow <= --max-flow, --rate > 0")
    opts = Options(
        kills=a.kills,
        seed=a.seed,
        clients=a.clients,
        gateways=a.gateways,
        rate=a.rate,
        min_flow=a.min_flow,
        max_flow=a.max_flow,
    )
    if a.dir is not None:
        a.dir.mkdir(parents=True, exist_ok=True)
    res = run(opts, a.dir, a.keep)
    print("\n".join(res.lines()), flush=True)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
