"""Build hook: compiles the matcher's hot modules with Cython when it can.

Everything else about the package is in pyproject.toml. The compiled modules
are the very same .py sources, typed by the .pxd files beside them (Cython's
pure Python mode), so the compiled matcher and the pure-Python one run the
same code and must give the same bytes (tests/matcher/test_compiled.py).

ZEX_PURE=1 skips the build and installs plain Python. Without a C compiler the
build falls back to plain Python too, and says so.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

from setuptools import setup

HOT = ["accounts", "book", "engine"]  # zex.nodes.matcher.<name>, in nodes/matcher/
SRC = Path("nodes", "matcher")


def source_hash(name: str) -> str:
    """What nodes/matcher/__init__.py compares to refuse a build older than its source."""
    h = hashlib.sha256()
    for ext in (".py", ".pxd"):
        h.update((SRC / (name + ext)).read_bytes())
    return h.hexdigest()


def extensions():
    # an in-place (editable) build leaves the last build's modules beside the sources
    for old in [*SRC.glob("*.so"), *SRC.glob("*.pyd"), SRC / "compiled.json"]:
        old.unlink(missing_ok=True)
    manifest = SRC / "compiled.json"
    if os.environ.get("ZEX_PURE") == "1":
        print("ZEX_PURE=1: the matcher is installed as plain Python")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("Cython is not installed: the matcher is installed as plain Python")
        return []
    from setuptools import Extension

    # Cython finds a module's .pxd by its full name (zex/nodes/matcher/book.pxd), but the
    # repository keeps zex.nodes in nodes/: mirror the hot modules under that name.
    tree = Path("build", "cython")
    pkg = tree / "zex" / "nodes" / "matcher"
    pkg.mkdir(parents=True, exist_ok=True)
    for d in (tree / "zex", tree / "zex" / "nodes", pkg):
        (d / "__init__.py").touch()
    for m in HOT:
        for ext in (".py", ".pxd"):
            shutil.copyfile(SRC / (m + ext), pkg / (m + ext))
    # optional: a failed C compile leaves that module pure Python instead of failing the install
    exts = [Extension(f"zex.nodes.matcher.{m}", [str(pkg / f"{m}.py")], optional=True) for m in HOT]
    manifest.write_text(json.dumps({m: source_hash(m) for m in HOT}, indent=1) + "\n")
    return cythonize(exts, language_level=3, quiet=True, include_path=[str(tree)],
                     # the .py annotations are for readers and mypy; the .pxd files type the build
                     compiler_directives={"annotation_typing": False})


setup(ext_modules=extensions())
