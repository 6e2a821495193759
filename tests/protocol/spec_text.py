"""Read the tables and examples out of protocol/SPEC.md, so tests can hold the code to the text.

Only the shapes SPEC.md uses are parsed: the field table under each
"### 4.N <type> (...)" heading, the reason table of section 5, the internal
tables of Appendix A, and the example of section 11.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md"


def text() -> str:
    return SPEC.read_text(encoding="utf-8")


def _section(body: str, start: str, stop_prefix: str) -> str:
    i = body.index(start)
    j = body.find(stop_prefix, i + len(start))
    return body[i:] if j < 0 else body[i:j]


def _rows(table: str) -> list[list[str]]:
    """The body rows of the first markdown table in ``table`` (header and rule skipped)."""
    rows = []
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    for ln in lines[2:]:
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return rows


@dataclass(frozen=True)
class FieldRow:
    name: str
    type: str
    required: str  # "yes", "no" or "see text"
    default: str | None  # the cell as written, None where the table has no default column
    range: str | None  # the "range" cell as written, None where the table has none


def message_tables() -> dict[str, list[FieldRow]]:
    """type tag -> the rows of its field table in section 4."""
    body = _section(text(), "## 4. Messages", "## 5.")
    out: dict[str, list[FieldRow]] = {}
    for m in re.finditer(r"^### 4\.\d+ (\w+) \(", body, re.M):
        tag = m.group(1)
        chunk = body[m.end():]
        nxt = chunk.find("\n### ")
        chunk = chunk if nxt < 0 else chunk[:nxt]
        header = next(ln for ln in chunk.splitlines() if ln.startswith("|"))
        cols = [c.strip() for c in header.strip().strip("|").split("|")]
        rows = []
        for cells in _rows(chunk):
            cell = dict(zip(cols, cells))
            rng = cell.get("range", cell.get("range / values"))
            rows.append(FieldRow(cell["field"].strip("`"), cell["type"], cell["required"],
                                 cell.get("default"), rng))
        out[tag] = rows
    return out


def spec_default(cell: str):
    """A default cell (`"limit"`, `0`, `false`, nil) as a Python value."""
    if cell == "nil":
        return None
    return json.loads(cell.strip("`"))


def reason_rows() -> list[tuple[int, str, str]]:
    """(code, name, sentence) of every row of the reason table in section 5."""
    body = _section(text(), "## 5. Reason codes", "### 5.1")
    return [(int(c[0]), c[1], c[2]) for c in _rows(body)]


def internal_rows() -> dict[str, tuple[int, list[str]]]:
    """Appendix A: class name -> (tag, field names in order)."""
    body = _section(text(), "## Appendix A.", "\n## ")
    out = {}
    for ln in body.splitlines():
        m = re.match(r"\| (\d+) \| (\w+) \| (.*) \|$", ln)
        if m:
            names = re.findall(r"`(\w+)`", m.group(3))
            out[m.group(2)] = (int(m.group(1)), names)
    return out


def example_messages() -> list[tuple[str, dict]]:
    """The complete maps of the section 11 example: ("request" | "report", map).

    Maps with an ellipsis (fields left out for brevity) are skipped.
    """
    body = _section(text(), "## 11. Example", "## Appendix A.")
    block = body[body.index("```") + 3:]
    block = block[: block.index("```")]
    out = []
    for m in re.finditer(r"^(\w+) → (\w+)\s+(\{.*?\})\s*$", block, re.M | re.S):
        src, raw = m.group(1), m.group(3)
        if "…" in raw:
            continue
        out.append(("report" if src == "GW" else "request", json.loads(raw)))
    return out


def example_bytes() -> bytes:
    """The hex dump of the first request in section 11."""
    body = _section(text(), "## 11. Example", "## Appendix A.")
    after = body[body.index("The bytes of the first request"):]
    block = after[after.index("```") + 3:]
    block = block[: block.index("```")]
    return bytes.fromhex(" ".join(block.split()))
