"""The matcher: books, engine, journal and the node that owns them.

The hot modules (accounts, book, settle, engine) are compiled with Cython at install
when a C compiler is there (setup.py); the compiled modules are built from the
same .py files, typed by the .pxd files beside them. Before any of them is
imported, this checks that a compiled module was built from the source beside
it: an edited book.py with an old book.*.so would silently run the old code.
"""

from __future__ import annotations

import importlib
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from .buildinfo import HOT, MANIFEST, source_hash

_HERE = Path(__file__).parent


def _check_compiled() -> None:
    built = [m for m in HOT if any((_HERE / (m + s)).exists() for s in EXTENSION_SUFFIXES)]
    if not built:
        return
    try:
        hashes = json.loads((_HERE / MANIFEST).read_text())
    except (OSError, ValueError):
        hashes = {}
    for m in built:
        try:
            h = source_hash(_HERE, m)
        except OSError:  # an installed wheel may leave out the sources: nothing to compare
            return
        if hashes.get(m) != h:
            raise ImportError(
                f"the compiled {m} module in {_HERE} was built from another version of {m}.py; "
                f"rebuild it with `make build` (or `pip install -e .`), or run pure Python with "
                f"`ZEX_PURE=1 make build`"
            )


_check_compiled()


def build_kind() -> str:
    """'compiled' if the hot modules run as C extensions (Cython), 'pure' if none does,
    'mixed' if only some do (setup.py builds all or none, so that is a broken install)."""
    mods = [importlib.import_module(f"{__name__}.{m}") for m in HOT]
    compiled = sum(not str(m.__file__).endswith(".py") for m in mods)
    return "compiled" if compiled == len(mods) else "pure" if compiled == 0 else "mixed"
