"""A subscriber in C, written from protocol/SPEC.md §12 alone, rebuilds the L2 book of a real exchange.

``protocol/examples/c/md_book.c`` needs only libzmq and msgpack-c. It is
compiled here, joins the feed of a running exchange after some trading,
sees live updates after its snapshot, and must end with the matcher's book
of ``XYZ`` at full depth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

SOURCE = REPO / "protocol" / "examples" / "c" / "md_book.c"
INSTALL = "install libzmq3-dev libmsgpack-dev (make test does it)"


def _flags(*args: str) -> list[str]:
    """pkg-config's answer for libzmq and msgpack-c, or the plain libraries without it."""
    if shutil.which("pkg-config"):
        p = subprocess.run(
            ["pkg-config", *args, "libzmq", "msgpack"], capture_output=True, text=True
        )
        if p.returncode == 0:
            return p.stdout.split()
    return ["-lzmq", "-lmsgpackc"] if "--libs" in args else []


@pytest.fixture(scope="module")
def md_book(tmp_path_factory):
    """The compiled C subscriber; skipped where there is no compiler or no headers."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip(f"no C compiler (gcc): {INSTALL}")
    tmp = tmp_path_factory.mktemp("c_md_book")
    probe = tmp / "probe.c"
    probe.write_text("#include <zmq.h>\n#include <msgpack.h>\nint main(void) { return 0; }\n")
    p = subprocess.run(
        [cc, "-fsyntax-only", *_flags("--cflags"), str(probe)], capture_output=True, text=True
    )
    if p.returncode != 0:
        pytest.skip(f"zmq.h or msgpack.h missing: {INSTALL}\n{p.stderr.strip()}")
    exe = tmp / "md_book"
    p = subprocess.run(
        [
            cc,
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            *_flags("--cflags"),
            "-o",
            str(exe),
            str(SOURCE),
            *_flags("--libs"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, f"md_book.c does not compile:\n{p.stderr}"
    assert "warning" not in p.stderr, p.stderr
    return exe


def _args(exe, ex, seconds: float) -> list[str]:
    return [
        str(exe),
        "--feed",
        ex.feed_ep,
        "--snapshot",
        ex.snapshot_ep,
        "--symbol",
        "XYZ",
        "--seconds",
        str(seconds),
    ]


def _book(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {stdout!r}"
    out = json.loads(lines[0])
    assert out["symbol"] == "XYZ"
    return out


def _levels(levels) -> list[tuple[str, str, int]]:
    return [(p, q, n) for p, q, n in levels]


def test_c_subscriber_rebuilds_the_matchers_book(md_exchange, md_book):
    ex = md_exchange
    for node in ("matcher", "marketdata", "gateway"):
        ex.start(node)
    ex.flow(200, seed=11)  # a book to join, and a sequence well past 1

    # Run A: join, then trade while it is live, so it applies updates after its snapshot.
    proc = subprocess.Popen(
        _args(md_book, ex, 1.5), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    t0 = time.monotonic()
    err: list[str] = []
    synced = threading.Event()

    def read_stderr():
        for line in proc.stderr:
            err.append(line)
            if "in sync at seq" in line:
                synced.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert synced.wait(1.2), f"md_book not in sync within 1.2 s: {''.join(err)}"
    ex.flow(50, seed=12)
    flow_end = time.monotonic()
    stdout = proc.stdout.read()
    assert proc.wait(10) == 0, f"md_book exited {proc.returncode}: {''.join(err)}"
    reader.join(5)
    a = _book(stdout)
    bids, asks = ex.truth("XYZ")
    assert bids and asks, "the flow left an empty XYZ book: nothing compared"
    stats = err[-1]
    assert "in sync at exit" in stats and " 0 live update" not in stats, (
        f"no live update applied: {stats}"
    )
    assert a["gaps"] == 0 and a["resyncs"] == 0, a
    assert a["seq"] > 10, "the snapshot told it where the numbering stood"
    if flow_end < t0 + 1.0:  # it ran 0.5 s past the flow's last update: it must hold it
        assert (_levels(a["bids"]), _levels(a["asks"])) == (bids, asks), (a, bids, asks)

    # Run B, on a now quiet feed (it joins on a heartbeat): the same book and the same seq.
    p = subprocess.run(_args(md_book, ex, 1.5), capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    b = _book(p.stdout)
    assert (_levels(b["bids"]), _levels(b["asks"])) == (bids, asks), (b, bids, asks)
    if flow_end < t0 + 1.0:
        assert b["seq"] == a["seq"]
