"""The Grafana dashboards and docs/queries.md as the dashboard tests read them,
and InfluxDB 1.x answers as rows.

- :func:`dashboard` loads ``deploy/grafana/dashboard-<kind>.json``;
  :func:`row_of` says which row each panel sits in (the tests of a row's panels
  live in their own module, with the data that row needs);
- :func:`doc_influxql` gives the InfluxQL queries of one section of
  docs/queries.md (``## title``), :func:`doc_sections` the sections' titles;
- :func:`rows` runs a query and answers ``time -> column -> value``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.support.servers import InfluxDB1

ROOT = Path(__file__).resolve().parent.parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
QUERIES_MD = ROOT / "docs" / "queries.md"


def dashboard(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (GRAFANA / f"dashboard-{kind}.json").read_text(encoding="utf-8")
    )
    return data


def row_of(board: dict[str, Any]) -> dict[int, str]:
    """panel id -> the title of the row above it ("" above the first row)."""
    heads = sorted((p["gridPos"]["y"], p["title"]) for p in board["panels"] if p["type"] == "row")
    return {
        p["id"]: next((t for y, t in reversed(heads) if y <= p["gridPos"]["y"]), "")
        for p in board["panels"]
        if p["type"] != "row"
    }


def panels_in(board: dict[str, Any], *rows: str) -> list[dict[str, Any]]:
    """The panels (with queries) of these rows, in the dashboard's order."""
    where = row_of(board)
    return [p for p in board["panels"] if where.get(p["id"], None) in rows]


def _sections() -> dict[str, str]:
    text = QUERIES_MD.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^## ", text)[1:]
    return {part.splitlines()[0]: part for part in parts}


def doc_sections() -> list[str]:
    return list(_sections())


def doc_influxql(*titles: str) -> list[str]:
    """The InfluxQL queries of these sections of docs/queries.md, in order."""
    sections = _sections()
    return [
        q for title in titles for q in re.findall(r"```influxql\n(.*?)\n```", sections[title], re.S)
    ]


def rows(db: InfluxDB1, query: str, database: str) -> dict[int, dict[str, Any]]:
    """time -> column -> value over every series of the answer, leaving out nulls
    (and rows of nothing but nulls)."""
    body = db.query(query, database, epoch="s")
    result = body["results"][0]
    assert "error" not in result, result
    out: dict[int, dict[str, Any]] = {}
    for series in result.get("series", []):
        for row in series["values"]:
            values = dict(zip(series["columns"][1:], row[1:], strict=True))
            if present := {c: v for c, v in values.items() if v is not None}:
                out[int(row[0])] = present
    return out


def series_rows(
    db: InfluxDB1, query: str, database: str
) -> dict[tuple[tuple[str, str], ...], dict[int, dict[str, Any]]]:
    """tags -> time -> column -> value, leaving out nulls."""
    body = db.query(query, database, epoch="s")
    out: dict[tuple[tuple[str, str], ...], dict[int, dict[str, Any]]] = {}
    for series in body["results"][0].get("series", []):
        tags = tuple(sorted(series.get("tags", {}).items()))
        for row in series["values"]:
            values = dict(zip(series["columns"][1:], row[1:], strict=True))
            if present := {c: v for c, v in values.items() if v is not None}:
                out.setdefault(tags, {})[int(row[0])] = present
    return out
