"""Read the tables and examples out of protocol/SPEC.md, so tests can hold the code to the text.

Only the shapes SPEC.md uses are parsed: the field table under each
"### 4.N <type> (...)" heading and the element tables that follow it
("Each element of `bids` and of `asks` is a map:"), the reason table of section 5, the
internal tables and enumerations of Appendix A, and the example of section 11.
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


def _tables(chunk: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every markdown table in ``chunk``: (the text line before it, header cells, body rows)."""
    out = []
    lines = chunk.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].startswith("|"):
            j += 1
        intro = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        block = "\n".join(lines[i:j])
        header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        out.append((intro, header, _rows(block)))
        i = j
    return out


@dataclass(frozen=True)
class FieldRow:
    name: str
    type: str
    required: str  # "yes", "no" or "see text"
    default: str | None  # the cell as written, None where the table has no default column
    range: str | None  # the "range" cell as written, None where the table has none
    note: str  # the last cell: the range, values or meaning, as written


def _field_rows(header: list[str], rows: list[list[str]]) -> list[FieldRow]:
    out = []
    for cells in rows:
        cell = dict(zip(header, cells, strict=True))
        rng = cell.get("range", cell.get("range / values"))
        out.append(
            FieldRow(
                cell["field"].strip("`"),
                cell["type"],
                cell["required"],
                cell.get("default"),
                rng,
                cells[-1],
            )
        )
    return out


_ELEMENT = re.compile(r"^Each element of (`\w+`(?:,? (?:and |or )?(?:of )?`\w+`)*) is a map")


def _message_sections() -> list[tuple[str, str, str]]:
    """(type tag, "request" | "report" | "both ways", section text) for each 4.N section."""
    body = _section(text(), "## 4. Messages", "## 5.")
    out = []
    for m in re.finditer(r"^### 4\.\d+ (\w+) \(([^)]*)\)", body, re.M):
        chunk = body[m.end() :]
        nxt = chunk.find("\n### ")
        out.append((m.group(1), m.group(2), chunk if nxt < 0 else chunk[:nxt]))
    return out


def message_kinds() -> dict[str, str]:
    """type tag -> what its heading says it is: "request", "report" or "both ways"."""
    return {tag: kind for tag, kind, _ in _message_sections()}


def message_tables() -> dict[str, list[FieldRow]]:
    """type tag -> the rows of its field table in section 4 ([] for a message with no fields)."""
    out: dict[str, list[FieldRow]] = {}
    for tag, _, chunk in _message_sections():
        main = [(h, r) for intro, h, r in _tables(chunk) if not _ELEMENT.match(intro)]
        assert len(main) <= 1, f"SPEC.md section for {tag} has {len(main)} field tables"
        out[tag] = _field_rows(*main[0]) if main else []
    return out


def element_tables() -> dict[tuple[str, str], list[FieldRow]]:
    """(type tag, array field) -> the rows of the table of that array's map elements."""
    out: dict[tuple[str, str], list[FieldRow]] = {}
    for tag, _, chunk in _message_sections():
        for intro, header, rows in _tables(chunk):
            m = _ELEMENT.match(intro)
            if m:
                for name in re.findall(r"`(\w+)`", m.group(1)):
                    out[(tag, name)] = _field_rows(header, rows)
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


def internal_rows() -> dict[str, tuple[int | None, list[str]]]:
    """Appendix A: class name -> (tag, or None for an untagged array; field names in order)."""
    body = _section(text(), "## Appendix A.", "\n## ")
    out = {}
    for ln in body.splitlines():
        m = re.match(r"\| (\d+|—) \| (\w+) \| (.*) \|$", ln)
        if m:
            names = re.findall(r"`(\w+)`", m.group(3))
            assert m.group(2) not in out, f"Appendix A lists {m.group(2)} twice"
            out[m.group(2)] = (None if m.group(1) == "—" else int(m.group(1)), names)
    return out


def internal_enums() -> dict[str, dict[int, str]]:
    """Appendix A "Enumerations on internal links": name -> {code: word}."""
    body = _section(text(), "Enumerations on internal links", "\n\n**")
    out = {}
    for name, values in _rows(body):
        pairs = re.findall(r"(?:^|, )(\d+) (\w+)", values)
        out[name] = {int(code): word for code, word in pairs}
    return out


def example_flow() -> list[tuple[str, str, dict]]:
    """The complete maps of the section 11 example in order: (sender, receiver, map).

    Maps with an ellipsis (fields left out for brevity) are skipped.
    """
    body = _section(text(), "## 11. Example", "## Appendix A.")
    block = body[body.index("```") + 3 :]
    block = block[: block.index("```")]
    out = []
    for m in re.finditer(r"^(\w+) → (\w+)\s+(\{.*?\})\s*$", block, re.M | re.S):
        src, dst, raw = m.groups()
        if "…" in raw:
            continue
        out.append((src, dst, json.loads(raw)))
    return out


def example_messages() -> list[tuple[str, dict]]:
    """The complete maps of the section 11 example: ("request" | "report", map)."""
    return [("report" if src == "GW" else "request", msg) for src, _, msg in example_flow()]


def example_bytes() -> bytes:
    """The hex dump of the first request in section 11."""
    body = _section(text(), "## 11. Example", "## Appendix A.")
    after = body[body.index("The bytes of the first request") :]
    block = after[after.index("```") + 3 :]
    block = block[: block.index("```")]
    return bytes.fromhex(" ".join(block.split()))
