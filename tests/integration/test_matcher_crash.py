"""The matcher as a real process: SIGKILL mid-stream, restart, nothing acknowledged is lost."""

from __future__ import annotations

import re
import threading

import msgspec
import pytest
import zmq

from tests.conftest import free_port, wait_for
from zex.nodes.matcher.journal import scan
from zex.nodes.matcher.settle import DIRECT, RESENT
from zex.nodes.matcher.workload import mixed_stream
from zex.protocol.internal import (
    BUY,
    GTC,
    LIMIT,
    Accepted,
    Cancelled,
    Event,
    NewOrderCmd,
    Rejected,
    batch_decoder,
    encoder,
)

pytestmark = pytest.mark.integration

Reports = msgspec.msgpack.Decoder(list[tuple[bytes, str, int, int, Event]])


def write_config(tmp_path, data_dir) -> tuple[str, str, str]:
    cmd_ep = f"tcp://127.0.0.1:{free_port()}"
    ev_ep = f"tcp://127.0.0.1:{free_port()}"
    cfg = tmp_path / "zex.toml"
    cfg.write_text(
        "accounts = []\n"  # no risk limits: every command below is an order command
        "[matcher]\n"
        f'bind = "{cmd_ep}"\nevents_bind = "{ev_ep}"\ndata_dir = "{data_dir}"\n'
        f'replay_bind = "tcp://127.0.0.1:{free_port()}"\nmetrics_bind = ""\n'
        'fsync = "off"\nsnapshot_every = 400\ndigest_every = 100\nmax_batch = 64\n'
        '[[instruments]]\nsymbol = "XYZ"\ntick = "0.01"\nlot = "1"\nmax_price = "100000"\n'
    )
    return str(cfg), cmd_ep, ev_ep


def gateway(ctx, endpoint):
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.identity = b"gw1"
    s.connect(endpoint)
    return s


def test_sigkill_mid_stream_loses_no_acknowledged_command(tmp_path, nodes, ctx):
    data = tmp_path / "data"
    cfg, cmd_ep, ev_ep = write_config(tmp_path, data)
    node = nodes(["matcher", "--config", cfg], "Ctrl+C to quit", tmp_path / "m1.log")
    assert re.search(r"seq 0\b", node.banner)

    acked: dict[str, object] = {}  # cl_ord_id -> the DIRECT answer received before the kill
    stop = threading.Event()
    dealer = gateway(ctx, cmd_ep)
    stream = mixed_stream(20_000, seed=11, gw="gw1")

    def pump():
        # Keep up to 200 commands in flight until told to stop.
        in_flight = 0
        for cmd in stream:
            if stop.is_set():
                return
            dealer.send(encoder.encode(cmd))
            in_flight += 1
            while in_flight >= 200 or dealer.poll(0):
                if not dealer.poll(100):
                    if stop.is_set():
                        return
                    continue
                for _client, _acct, role, _rseq, ev in Reports.decode(dealer.recv()):
                    # The first answer to each command: an order's Accepted, or a Rejected
                    # (carrying the request's own cl_ord_id), or a cancel's Cancelled.
                    if role != DIRECT or type(ev) not in (Accepted, Rejected, Cancelled):
                        continue
                    in_flight -= 1
                    if type(ev) is not Cancelled:  # Cancelled names the order, not the request
                        acked[ev.cl_ord_id] = ev

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    wait_for(lambda: len(acked) >= 1500, 60, "1500 acknowledged orders")
    node.kill()  # SIGKILL while the pump is still sending
    stop.set()
    t.join(10)
    assert not t.is_alive()
    dealer.close(0)  # drop whatever it queued for the dead peer
    snapshot = dict(acked)
    max_acked = max(ev.seq for ev in snapshot.values())

    node2 = nodes(["matcher", "--config", cfg], "Ctrl+C to quit", tmp_path / "m2.log")
    restart_seq = int(re.search(r"seq (\d+)", node2.banner).group(1))
    assert restart_seq >= max_acked, "an acknowledged command is missing from the journal"

    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"ev")
    sub.connect(ev_ep)
    dealer = gateway(ctx, cmd_ep)

    # The first new command continues the sequence exactly: no gap, no repeat.
    # (Resend it until the SUB is connected, to see its event too; resends are idempotent.)
    fresh = NewOrderCmd(1, "gw1", b"c1", "acct1", "after-restart", "XYZ", BUY, LIMIT, GTC, 100, 1)
    first_ack = None
    while first_ack is None:
        dealer.send(encoder.encode(fresh))
        if dealer.poll(2000):
            for _, _acct, _role, _rseq, ev in Reports.decode(dealer.recv()):
                if type(ev) is Accepted:
                    first_ack = ev
    assert first_ack.seq == restart_seq + 1
    batch = None

    def got_batch():
        nonlocal batch
        if sub.poll(100):
            batch = batch_decoder.decode(sub.recv_multipart()[1])
            return True
        dealer.send(encoder.encode(fresh))  # a resend: same order, new seq, keeps the stream moving
        return False

    wait_for(got_batch, 20, "an event batch after restart")
    assert batch.first_seq > restart_seq

    # Every acknowledged command is in the recovered state: a resend returns the same first answer.
    pending = dict(snapshot)
    for clid, ev in snapshot.items():
        dealer.send(
            encoder.encode(
                NewOrderCmd(2, "gw1", b"c1", ev.account, clid, "XYZ", BUY, LIMIT, GTC, 100, 1)
            )
        )

    def drain():
        while dealer.poll(50):
            for _, _acct, role, _rseq, ev in Reports.decode(dealer.recv()):
                if role == RESENT and ev.cl_ord_id in pending:
                    assert ev == pending.pop(ev.cl_ord_id)
        return not pending

    wait_for(drain, 60, f"resent answers ({len(pending)} left)")

    assert node2.stop() == 0
    # Offline: the journal is one gap-free sequence covering everything acknowledged.
    seqs = [s for r in scan(data) for s in range(r.first_seq, r.last_seq + 1)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= max_acked
