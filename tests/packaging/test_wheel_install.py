"""The install contract: the wheel built from this checkout works installed outside it.

An editable install (what `make test` uses) imports from the checkout's folders, so it hides a
wheel that lacks a package: a hand-kept package list once left out zex.nodes.logger, and
`zex run`, `zex logger`, `zex audit` and `zex replay` died with ModuleNotFoundError after a
plain `pip install .`. Here the wheel is built from a copy of the checkout's sources, installed
into a fresh venv in a temp dir (its dependencies from pip's index and cache, as a user's are),
and every command runs from a working directory outside the checkout, with no PYTHONPATH, so
nothing of the repository can stand in for what the wheel lacks.

The wheel is built the way this environment builds the editable install: compiled (Cython, the
default user path) unless the checkout's matcher is the plain-Python build (ZEX_PURE=1), and the
installed package must be the same kind. Measured on this 2-core box with other work beside it
(load 4-5): the compiled wheel builds in 106 s (47 s of CPU), the pure one in 10-13 s; this whole
file takes 2 min compiled, 35 s pure. The fixture prints each step's time (pytest -s).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO, NodeProcess, free_port_config

pytestmark = pytest.mark.packaging

BUILD_TIMEOUT = 600  # a compiled build on a loaded 2-core machine; a normal one takes 1-2 min
STEP_TIMEOUT = 120  # one command of the installed package (import, connect, answer)
TOP = ("protocol", "nodes")  # the folders installed as zex.protocol and zex.nodes
# Not shipped: examples of clients that need nothing from zex (pyzmq and msgpack only, and C).
NOT_SHIPPED = ("protocol/examples",)


def _sources(dest: Path) -> Path:
    """Copy the checkout's sources (tracked and new files, not what .gitignore names) to ``dest``.

    Built from a copy, the build's own files (build/, *.egg-info) and setup.py's clean-up of
    compiled modules never touch the checkout, whose editable install may be the compiled one.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = REPO / name
        if not src.is_file():  # deleted in the working tree, not yet in a commit
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    return dest


def _outside_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell with the venv activated: nothing points into the checkout."""
    # ZEX_* too: ZEX_<SECTION>_<KEY> would override the test's config
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        and not k.startswith("ZEX_")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _checkout_kind() -> str:
    from zex.nodes.matcher import build_kind

    return build_kind()


class Installed:
    """The venv the wheel went into, and how to run its commands from outside the checkout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.home = root / "home"  # the working directory of every command: not the checkout
        self.home.mkdir()
        self.env = _outside_env(self.venv)
        self.python = self.venv / "bin" / "python"
        self.zex_cmd = self.venv / "bin" / "zex"
        self.timings: dict[str, float] = {}
        self.wheel: Path | None = None

    def step(self, what: str, args: list, timeout: float, **kw) -> subprocess.CompletedProcess:
        """Run ``args`` (checked) and record how long it took."""
        t = time.monotonic()
        out = subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw
        )
        self.timings[what] = time.monotonic() - t
        assert out.returncode == 0, (
            f"{what} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
        return out

    def zex(self, *args, timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.zex_cmd), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
            env=self.env,
        )

    def py(self, code: str, *args, timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), "-c", code, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
            env=self.env,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """Build the wheel, make a fresh venv outside the checkout, install the wheel into it."""
    inst = Installed(tmp_path_factory.mktemp("wheel"))
    assert REPO not in inst.root.parents, "the venv must be outside the checkout"
    src = _sources(inst.root / "src")
    dist = inst.root / "dist"
    build_env = dict(os.environ)
    if _checkout_kind() == "pure":
        build_env["ZEX_PURE"] = "1"
    else:
        build_env.pop("ZEX_PURE", None)
    inst.step(
        "build the wheel",
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-w",
            dist,
            src,
        ],
        BUILD_TIMEOUT,
        cwd=inst.root,
        env=build_env,
    )
    wheels = list(dist.glob("zex-*.whl"))
    assert len(wheels) == 1, wheels
    inst.wheel = wheels[0]
    # Without a pip of its own (ensurepip takes ~10 s here): this pip installs into it (--python).
    inst.step(
        "create the venv",
        [sys.executable, "-m", "venv", "--without-pip", inst.venv],
        STEP_TIMEOUT,
        cwd=inst.home,
    )
    inst.step(
        "install the wheel",
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            inst.python,
            "install",
            "--quiet",
            "--disable-pip-version-check",
            inst.wheel,
        ],
        BUILD_TIMEOUT,
        cwd=inst.home,
        env=inst.env,
    )
    yield inst
    print("wheel test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in inst.timings.items()))


def test_the_wheel_holds_every_module_of_the_checkout(installed):
    """Every module under protocol/ and nodes/ is in the venv as zex.*, imported from there."""
    site = installed.py("import zex, pathlib; print(pathlib.Path(zex.__path__[0]).resolve())")
    assert site.returncode == 0, site.stderr
    zex_dir = Path(site.stdout.strip())
    assert installed.venv.resolve() in zex_dir.parents, f"zex imported from {zex_dir}, not the venv"
    # Every module, not only those of folders with an __init__.py: in the editable install a folder
    # without one still imports (a namespace package), but setup.py leaves it out of the wheel.
    modules = [
        py.relative_to(REPO)
        for top in TOP
        for py in sorted((REPO / top).rglob("*.py"))
        if "__pycache__" not in py.parts
        and not py.relative_to(REPO).as_posix().startswith(NOT_SHIPPED)
    ]
    missing = [m.as_posix() for m in modules if not (zex_dir / m).is_file()]
    assert not missing, f"the wheel lacks {missing}: is each folder a package (an __init__.py)?"
    assert len(modules) > 50  # the walk found the sources
    # Import every package of the checkout in the venv: a package the wheel lacks fails here by name.
    packages = sorted(
        "zex." + ".".join(i.parent.relative_to(REPO).parts)
        for top in TOP
        for i in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in i.parts
    )
    imported = installed.py(
        "import importlib, sys\nfor p in sys.argv[1:]: importlib.import_module(p)\n"
        "from zex.nodes.matcher import build_kind; print(build_kind())",
        *packages,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split()[-1] == _checkout_kind(), (
        "the wheel's matcher is not the checkout's build"
    )


def _subcommands(installed: Installed) -> list[str]:
    """The subcommands, from the installed parser itself: argparse lists its choices when refused."""
    refused = installed.zex("no-such-command")
    assert refused.returncode == 2, refused
    m = re.search(r"invalid choice: .*?\(choose from (.*)\)", refused.stderr)
    assert m, refused.stderr
    return [c.strip().strip("'\"") for c in m.group(1).split(",")]


def test_zex_help_and_every_subcommand_help(installed):
    top = installed.zex("--help")
    assert top.returncode == 0 and top.stdout.startswith("usage: zex"), top
    subs = _subcommands(installed)
    assert {"run", "matcher", "gateway", "marketdata", "logger", "audit", "replay", "order"} <= set(
        subs
    )
    for sub in subs:
        assert re.search(rf"^\s+{re.escape(sub)}\s", top.stdout, re.M), (
            f"zex --help does not list {sub}"
        )
    with ThreadPoolExecutor(4) as pool:  # each is a whole interpreter start: ~0.5 s, mostly waiting
        helps = dict(
            zip(subs, pool.map(lambda sub: installed.zex(sub, "--help"), subs), strict=True)
        )
    for sub, out in helps.items():
        assert out.returncode == 0 and out.stdout.startswith(f"usage: zex {sub}"), (sub, out.stderr)


# The client side of the trade, run by the venv's python: the installed client library only.
TRADE = """
import sys
from zex.protocol import messages as m
from zex.protocol.client import Client

gw = sys.argv[1]
with Client(gw, "alice", "alice", timeout=20.0) as alice, Client(gw, "bob", "bob", timeout=20.0) as bob:
    alice.logon()
    bob.logon()
    buy = alice.place("XYZ", "buy", "3", "100.00")
    assert isinstance(buy, m.Ack), buy
    sell = bob.place("XYZ", "sell", "3", "100.00")
    assert isinstance(sell, m.Ack), sell
    fills = []
    for _ in range(120):  # alice's resting buy is filled: an unsolicited report (a 2 min bound)
        fills += [r for r in alice.poll(1.0) if isinstance(r, m.Fill)]
        if fills:
            break
    assert fills, "no fill for alice's resting buy in 2 min"
    f = fills[0]
    assert (f.order_id, f.qty, f.price, f.leaves, f.liquidity) == (buy.order_id, "3", "100", "0", "maker"), f
    print("filled", f.order_id, f.trade_id)
"""

# Only alice and bob: the demo market of `zex run` needs maker and taker, so it sits out and
# cannot trade with alice's order first.
ACCOUNTS = """
[[accounts]]
id = "alice"
credential = "alice"
[[accounts]]
id = "bob"
credential = "bob"
"""


def test_zex_run_trades_an_order_and_stops_cleanly(installed):
    cfg = free_port_config(installed.root / "zex.toml", installed.root / "data", ACCOUNTS)
    gw = tomllib.loads(cfg.read_text())["gateway"]["bind"]
    # the config puts the journal in data/matcher, the trail in data/logger
    data = installed.root / "data"
    run = NodeProcess(
        ["run", "--config", cfg, "--quiet"],
        "Ctrl+C to quit",
        installed.root / "run.log",
        zex=[str(installed.zex_cmd)],
        cwd=installed.home,
        env=installed.env,
    )
    t = time.monotonic()
    try:
        run.start(timeout=STEP_TIMEOUT)
        assert gw in run.banner, run.banner
        traded = installed.py(TRADE, gw)
        assert traded.returncode == 0, traded.stderr
        assert traded.stdout.startswith("filled"), traded.stdout
    finally:
        code = run.stop(timeout=30)
    installed.timings["zex run and a trade"] = time.monotonic() - t
    assert code == 0, run.log.read_text(errors="replace")[-3000:]
    # The commands that read what the run left, from the installed package too.
    trail = data / "logger"
    _, order_id, trade_id = traded.stdout.split()
    audit = installed.zex("audit", "--trail", trail, "--account", "alice", "--config", cfg)
    assert audit.returncode == 0, audit
    assert re.search(
        rf"trade {trade_id}: taker #\d+ bob .* maker #{order_id} alice", audit.stdout
    ), audit.stdout
    verify = installed.zex("audit", "verify", "--trail", trail, "--config", cfg)
    assert verify.returncode == 0, verify
    replay = installed.zex("replay", data / "matcher", "--trail", trail, "--config", cfg)
    assert replay.returncode == 0 and "OK:" in replay.stdout, replay
