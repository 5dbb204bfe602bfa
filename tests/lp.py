"""A strict line-protocol reader for tests: keeps each field's type as written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FieldValue = float | int | bool | str

_TOKEN = re.compile(r'(?:\\.|"(?:\\.|[^"\\])*"|[^ ])+')


@dataclass(frozen=True)
class Line:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: int


def _split(text: str, sep: str) -> list[str]:
    out, cur, i, quoted = [], "", 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur += text[i : i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _value(raw: str) -> FieldValue:
    if raw in ("true", "false"):
        return raw == "true"
    if raw.startswith('"'):
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if raw.endswith("i"):
        return int(raw[:-1])
    assert "." in raw or "e" in raw, f"float written without a decimal point: {raw}"
    return float(raw)


def parse_line(line: str) -> Line:
    parts = _TOKEN.findall(line)
    assert len(parts) == 3, f"not measurement+tags fields time: {line!r}"
    head, fields_text, time_text = parts
    head_parts = _split(head, ",")
    tags = {}
    for kv in head_parts[1:]:
        k, v = _split(kv, "=")
        tags[_unescape(k)] = _unescape(v)
    fields = {}
    for kv in _split(fields_text, ","):
        k, v = kv.split("=", 1)
        fields[_unescape(k)] = _value(v)
    return Line(_unescape(head_parts[0]), tags, fields, int(time_text))


def parse(text: str) -> list[Line]:
    return [parse_line(line) for line in text.splitlines() if line]


def read_dir(directory: Path) -> list[Line]:
    lines: list[Line] = []
    for path in sorted(directory.glob("*.lp")):
        lines.extend(parse(path.read_text()))
    return lines
