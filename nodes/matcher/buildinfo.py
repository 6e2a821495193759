"""What the compiled build is made of, shared by setup.py and the import-time check.

setup.py loads this file by its path (the package is not importable while it
builds), so it imports nothing outside the standard library.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HOT = ("accounts", "book", "settle", "engine")  # zex.nodes.matcher.<name>, compiled by setup.py
MANIFEST = "compiled.json"  # beside the compiled modules: {name: source_hash}


def source_hash(directory: Path, name: str) -> str:
    """The hash of a hot module's sources (its .py and .pxd); OSError if one is missing."""
    h = hashlib.sha256()
    for ext in (".py", ".pxd"):
        h.update((directory / (name + ext)).read_bytes())
    return h.hexdigest()
