"""The matcher's two builds side by side: the installed one and plain Python.

The hot modules (accounts, book, settle, engine) are installed compiled when a C
compiler is there (setup.py). ``pure()`` loads the very same .py files as
plain Python under another package name, so the tests can run both builds on
one command stream and compare their bytes, and bench/book_bench.py can time
both in one run.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from importlib.machinery import SourceFileLoader
from pathlib import Path

from . import build_kind

PURE = "zex_pure_matcher"
# in import order: each may import the ones before it (state.py imports book.py)
MODULES = ("accounts", "book", "settle", "state", "engine")


def pure() -> types.ModuleType:
    """The matcher package as plain Python, whatever the installed build is."""
    pkg = sys.modules.get(PURE)
    if pkg is not None:
        return pkg
    here = Path(__file__).parent
    pkg = types.ModuleType(PURE)
    pkg.__path__ = []  # nothing to find: every submodule is loaded here, from its .py
    sys.modules[PURE] = pkg
    for m in MODULES:
        name = f"{PURE}.{m}"
        loader = SourceFileLoader(name, str(here / f"{m}.py"))
        spec = importlib.util.spec_from_loader(name, loader)
        assert spec is not None  # a SourceFileLoader always gives one
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        loader.exec_module(mod)
        setattr(pkg, m, mod)
    return pkg


def other_engine() -> type:
    """The Engine of the other build: plain Python if the installed one is compiled. A pure
    install has no compiled build to offer, so then it is the installed Engine itself."""
    if build_kind() == "compiled":
        return pure().engine.Engine
    from .engine import Engine

    return Engine
