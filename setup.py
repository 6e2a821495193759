"""Build hook: compiles the matcher's hot modules with Cython when it can.

Everything else about the package is in pyproject.toml. The compiled modules
are the very same .py sources, typed by the .pxd files beside them (Cython's
pure Python mode), so the compiled matcher and the pure-Python one run the
same code and must give the same bytes (tests/matcher/test_compiled.py).

All or nothing: if any module fails to compile, none is installed compiled
(book and engine use accounts' C types, so a half-compiled set cannot
import), and the install goes on as plain Python, saying so. Beside the
compiled modules goes compiled.json, the hashes of the sources they were
built from; nodes/matcher/__init__.py refuses a compiled module whose source
has changed since.

ZEX_PURE=1 installs plain Python, and removes compiled modules an earlier
in-place build left beside the sources. Cython is a build requirement
(pyproject.toml) either way: pip fetches it into the build environment.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

SRC = Path("nodes", "matcher")
# the module list and the source hash the import-time check compares (not importable yet)
_spec = importlib.util.spec_from_file_location("zex_buildinfo", SRC / "buildinfo.py")
buildinfo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(buildinfo)
HOT, MANIFEST, source_hash = buildinfo.HOT, buildinfo.MANIFEST, buildinfo.source_hash


def remove_built(directory: Path) -> None:
    for old in [*directory.glob("*.so"), *directory.glob("*.pyd"), directory / MANIFEST]:
        old.unlink(missing_ok=True)


class BuildHot(build_ext):
    """build_ext, all or nothing, writing the manifest beside what it built."""

    def run(self) -> None:
        in_source = self.inplace or getattr(self, "editable_mode", False)
        if in_source:  # the last build's modules, beside the sources
            remove_built(SRC)
        try:
            super().run()
        except Exception as e:  # a compiler error, a missing header, a link error
            print(
                f"\nzex: could not compile the matcher ({e}); installing it as plain Python.\n"
                f"zex: for the compiled build install a C compiler and the Python headers, "
                f"then run `make build`.\n"
            )
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            if in_source:
                remove_built(SRC)
            return
        manifest = json.dumps(HASHES, indent=1) + "\n"
        built = Path(self.get_ext_fullpath(self.extensions[0].name)).parent
        built.mkdir(parents=True, exist_ok=True)
        (built / MANIFEST).write_text(manifest)
        if in_source:
            (SRC / MANIFEST).write_text(manifest)


HASHES: dict[str, str] = {}


def packages() -> tuple[list[str], dict[str, str]]:
    """Every folder under protocol/ and nodes/ that holds an __init__.py, as zex.* packages,
    and the folder of each (a wheel misses any package a hand-kept list leaves out)."""
    names, dirs = [], {}
    for top in ("protocol", "nodes"):
        for init in sorted(Path(top).rglob("__init__.py")):
            if "__pycache__" in init.parts:
                continue
            folder = init.parent
            name = "zex." + ".".join(folder.parts)
            names.append(name)
            dirs[name] = folder.as_posix()
    return names, dirs


def extensions():
    if os.environ.get("ZEX_PURE") == "1":
        remove_built(SRC)
        print("zex: ZEX_PURE=1: the matcher is installed as plain Python")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("zex: Cython is not installed: the matcher is installed as plain Python")
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
        HASHES[m] = source_hash(pkg, m)  # of exactly what is compiled
    exts = [Extension(f"zex.nodes.matcher.{m}", [str(pkg / f"{m}.py")]) for m in HOT]
    try:
        return cythonize(
            exts,
            language_level=3,
            quiet=True,
            include_path=[str(tree)],
            # the .py annotations are for readers and mypy; the .pxd files type the build
            compiler_directives={"annotation_typing": False},
        )
    except Exception as e:  # Cython refused the sources: the pure build still works
        print(f"zex: Cython could not translate the matcher ({e}); installing it as plain Python")
        return []


_packages, _dirs = packages()
setup(
    packages=_packages,
    package_dir=_dirs,
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildHot},
)
