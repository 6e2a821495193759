"""One target under atheris (libFuzzer): ``python -m fuzz.atheris_main NAME [libFuzzer flags] DIRS``.

Run by fuzz/run.py, which passes the corpus and artifact directories and reads
the figures back. zex and the harness are instrumented for coverage (msgspec
is C, and gets none: shapes.py builds its structure). Progress goes to stdout
every PROGRESS inputs; the target's figures go to the JSON file named by
ZEX_FUZZ_STATS each time a new reject code is reached and at every progress
line (libFuzzer ends the process with exit(), so nothing runs at the end).
"""

from __future__ import annotations

import json
import os
import sys
import time

import atheris

with atheris.instrument_imports(include=["zex"]):
    from fuzz.targets import TARGETS

PROGRESS = 100_000


def main() -> None:
    name = sys.argv[1]
    target = TARGETS[name]()
    stats = os.environ.get("ZEX_FUZZ_STATS", "")
    started = time.monotonic()
    seen = [0]

    def dump() -> None:
        if stats:
            figures = {
                "target": name,
                "inputs": target.inputs,
                "codes": sorted(target.codes),
                "known": dict(target.known),
                "seconds": round(time.monotonic() - started, 1),
            }
            with open(stats + ".tmp", "w") as f:
                json.dump(figures, f)
            os.replace(stats + ".tmp", stats)

    def one(data: bytes) -> None:
        target.one(data)
        if len(target.codes) != seen[0]:
            seen[0] = len(target.codes)
            dump()
        if target.inputs % PROGRESS == 0:
            dump()
            rate = target.inputs / max(time.monotonic() - started, 1e-9)
            print(
                f"  {name}: {target.inputs:,} inputs, {rate:,.0f}/s, "
                f"{len(target.codes)} reject codes reached",
                flush=True,
            )

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
