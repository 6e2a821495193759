"""The long crash-anywhere run: ``make chaos`` (= ``python bench/chaos.py --kills 200``).

SIGKILLs any node of a whole exchange of processes under a steady order
flow, restarts it, measures the time to recover, and at the end checks that
nothing acknowledged was lost or duplicated (tests/chaos/harness.py has the
details; ``--help`` the options). Figures: bench/README.md, "Crash anywhere".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.chaos

from tests.chaos.harness import main

if __name__ == "__main__":
    sys.exit(main())
