"""The audit trail over real processes: a logger killed under load, queries, verify, replay."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from tests.conftest import wait_for
from tests.exchange import MdExchange
from zex.nodes.logger.query import verify
from zex.nodes.logger.segments import KIND_AUDIT, KIND_EVENTS, AuditWriter, scan, segments
from zex.protocol import messages as m
from zex.protocol.internal import EventBatch, Trade, batch_decoder

pytestmark = pytest.mark.integration


def zex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zex.nodes.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def matcher_seq(ex: MdExchange) -> int:
    return int(ex.metrics("matcher")["zex_matcher_seq"])


def test_logger_killed_under_load_ends_with_a_complete_trail(tmp_path, nodes):
    ex = MdExchange(tmp_path, nodes)
    stop = threading.Event()
    try:
        for node in ("matcher", "logger", "gateway"):
            ex.start(node)

        def load():
            i = 0
            while not stop.is_set():
                ex.flow(30, seed=200 + i)
                i += 1

        t = threading.Thread(target=load, daemon=True)
        t.start()
        for _ in range(3):  # kill it mid-stream three times, at whatever it was doing
            wait_for(
                lambda: ex.metrics("logger").get("zex_logger_event_batches_total", 0) > 20,
                20,
                "the logger writing",
            )
            ex.procs["logger"].kill()
            wait_for(lambda: matcher_seq(ex) > 0, 5)
            ex.start("logger")
        stop.set()
        t.join(60)
        final = matcher_seq(ex)
        wait_for(
            lambda: ex.metrics("logger").get("zex_logger_matcher_seq") == final,
            20,
            f"the logger catching up to seq {final}",
        )
        ex.procs["logger"].stop()
        rep = verify(ex.trail)
        assert rep.ok, rep.lines()
        assert (rep.first_seq, rep.last_seq) == (1, final)
        # and the trail agrees with the journal, event for event
        out = zex(
            "replay", str(tmp_path / "data"), "--trail", str(ex.trail), "--config", str(ex.config())
        )
        assert (
            out.returncode == 0 and "OK: the journal, the engine and the trail agree" in out.stdout
        ), out.stdout + out.stderr
        # gateway records: every logon of the flow (2 per flow() call) that the logger was up to take
        logons = [e for e in scan(ex.trail) if e.kind == KIND_AUDIT]
        assert logons, "no gateway audit records at all"
    finally:
        stop.set()
        ex.close()


def test_queries_give_the_whole_life_of_an_order(md_exchange):
    ex = md_exchange
    for node in ("matcher", "logger", "gateway"):
        ex.start(node)
    mm, tk = ex.client("mm"), ex.client("tk")
    ack = mm.place("XYZ", "sell", 10, "10.05")
    assert isinstance(ack, m.Ack)
    assert isinstance(tk.place("XYZ", "buy", 3, "10.05", tif="ioc"), m.Ack)  # a fill of 3
    assert isinstance(mm.replace("XYZ", ack.order_id, 8, "10.05"), m.Replaced)  # keeps priority
    assert isinstance(tk.place("XYZ", "buy", 2, "10.05", tif="ioc"), m.Ack)  # a fill of 2
    bad = mm.cancel("NOPE", ack.order_id)  # refused at the gateway: unknown symbol
    assert isinstance(bad, m.Reject) and bad.reason == 200
    assert isinstance(mm.cancel("XYZ", ack.order_id), m.Cancelled)
    off = mm.place("XYZ", "buy", 1, "10.001")  # refused at the gateway, never sequenced
    assert isinstance(off, m.Reject)
    final = matcher_seq(ex)
    wait_for(
        lambda: ex.metrics("logger").get("zex_logger_matcher_seq") == final, 10, "trail caught up"
    )
    # 2 logons + 2 rejects
    wait_for(
        lambda: ex.metrics("logger").get("zex_logger_audit_records_total", 0) >= 4,
        10,
        "gateway records written",
    )

    out = zex("audit", "--config", str(ex.config()), "--order-id", str(ack.order_id), "--json")
    assert out.returncode == 0, out.stderr
    life = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert [r["kind"] for r in life] == ["accepted", "trade", "replaced", "trade", "cancelled"]
    assert [r["qty"] for r in life] == ["10", "3", "8", "2", "3"]
    assert life[-1]["detail"] == "user" and life[0]["price"] == "10.05"
    assert all(r["seq"] > 0 for r in life) and [r["seq"] for r in life] == sorted(
        r["seq"] for r in life
    )

    mine = zex("audit", "--config", str(ex.config()), "--account", "mm", "--json")
    kinds = [json.loads(ln)["kind"] for ln in mine.stdout.splitlines()]
    assert kinds.count("logon") == 1 and kinds.count("reject") == 2, kinds
    assert "trade" in kinds  # as the maker
    table = zex("audit", "--config", str(ex.config()), "--symbol", "XYZ")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:4] == [
        "time",
        "seq",
        "source",
        "kind",
    ]
    none = zex("audit", "--config", str(ex.config()), "--since", "2999-01-01T00:00:00")
    assert "(nothing matches)" in none.stdout


def test_verify_names_the_file_and_offset_of_a_corrupt_record(md_exchange):
    ex = md_exchange
    for node in ("matcher", "logger", "gateway"):
        ex.start(node)
    ex.flow(60, seed=9)
    final = matcher_seq(ex)
    wait_for(
        lambda: ex.metrics("logger").get("zex_logger_matcher_seq") == final, 10, "trail caught up"
    )
    ex.procs["logger"].stop()
    ok = zex("audit", "verify", "--trail", str(ex.trail))
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout
    path = segments(ex.trail)[0]
    victim = [e for e in scan(ex.trail) if e.kind == KIND_EVENTS][5]
    data = bytearray(path.read_bytes())
    data[victim.offset + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = zex("audit", "verify", "--trail", str(ex.trail))
    assert bad.returncode == 1
    assert f"{path}: offset {victim.offset}: record body checksum mismatch" in bad.stdout, (
        bad.stdout
    )


def test_replay_finds_a_trail_that_disagrees_with_the_journal(md_exchange, tmp_path):
    ex = md_exchange
    for node in ("matcher", "logger", "gateway"):
        ex.start(node)
    ex.flow(80, seed=10)
    final = matcher_seq(ex)
    wait_for(
        lambda: ex.metrics("logger").get("zex_logger_matcher_seq") == final, 10, "trail caught up"
    )
    ex.procs["logger"].stop()
    # A forged trail: the same records, but one trade's quantity changed, with valid checksums.
    forged = tmp_path / "forged"
    w = AuditWriter(forged, fsync="off")
    changed = None
    for e in scan(ex.trail):
        payload = e.payload
        if e.kind == KIND_EVENTS and changed is None:
            b = batch_decoder.decode(payload)
            trades = [i for i, ev in enumerate(b.events) if type(ev) is Trade]
            if trades:
                evs = list(b.events)
                t = evs[trades[0]]
                evs[trades[0]] = Trade(
                    *[getattr(t, f) if f != "qty" else t.qty + 1 for f in t.__struct_fields__]
                )
                from zex.protocol.internal import encoder

                payload = encoder.encode(EventBatch(b.first_seq, b.last_seq, evs))
                changed = t.seq
        w.append(e.kind, payload, ts=e.ts)
    w.close()
    assert changed is not None, "the flow made no trade"
    out = zex(
        "replay", str(tmp_path / "data"), "--trail", str(forged), "--config", str(ex.config())
    )
    assert out.returncode == 1, out.stdout
    assert f"DIFFERENT seq {changed}" in out.stdout, out.stdout
