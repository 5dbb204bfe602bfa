"""The Grafana dashboards and docs/queries.md as the dashboard tests read them,
and InfluxDB 1.x answers as rows.

- :func:`dashboard` loads ``deploy/grafana/dashboard-<kind>.json``;
  :func:`row_of` says which row each panel sits in (the tests of a row's panels
  live in their own module, with the data that row needs);
- :func:`doc_influxql` gives the InfluxQL queries of one section of
  docs/queries.md (``## title``), :func:`doc_sections` the sections' titles;
- :func:`rows` runs a query and answers ``time -> column -> value``;
- :data:`CONTRACT`: the names of the data contract the dashboards and queries
  may use.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import InfluxDB1

ROOT = Path(__file__).resolve().parent.parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
QUERIES_MD = ROOT / "docs" / "queries.md"

#: The data contract: measurement -> (tags, fields). Dashboards may use nothing else.
CONTRACT: dict[str, tuple[set[str], set[str]]] = {
    "enphase_system": (
        {"gateway", "site"},
        {
            *(f"{k}_{s}" for k in ("production", "consumption", "net") for s in ("w", "today_wh")),
            *(f"{k}_{s}" for k in ("production", "consumption", "net") for s in ("7d_wh",)),
            *(f"{k}_lifetime_wh" for k in ("production", "consumption", "net")),
            "grid_import_lifetime_wh",
            "grid_export_lifetime_wh",
            "grid_import_today_wh",
            "grid_export_today_wh",
            "inverters",
            "batteries",
            "battery_w",
            "battery_soc_pct",
            "battery_state",
            "battery_available_wh",
            "battery_capacity_wh",
            "battery_backup_wh",
            "battery_reserve_pct",
            "battery_reserve_configured_pct",
            "battery_charged_lifetime_wh",
            "battery_discharged_lifetime_wh",
            "battery_charged_today_wh",
            "battery_discharged_today_wh",
            "grid_connected",
            "grid_mode",
            "storage_mode",
            "storage_reserve_pct",
            "charge_from_grid",
            "very_low_soc_pct",
        },
    ),
    "enphase_meter": (
        {"gateway", "site", "flow", "phase"},
        {
            "power_w",
            "today_wh",
            "last_7d_wh",
            "lifetime_wh",
            "voltage_v",
            "current_a",
            "power_factor",
            "apparent_power_va",
            "reactive_power_var",
            "frequency_hz",
            "delivered_lifetime_wh",
            "received_lifetime_wh",
        },
    ),
    "enphase_event": ({"gateway", "site", "kind"}, {"text", "duration_s"}),
    "enphase_live": (
        {"gateway", "site", "flow", "phase"},
        {"power_w", "voltage_v", "current_a", "frequency_hz", "power_factor"},
    ),
    "enphase_inverter": (
        {"gateway", "site", "serial"},
        {
            "power_w",
            "max_power_w",
            "provisioned",
            "communicating",
            "producing",
            "dc_voltage_v",
            "dc_current_a",
            "ac_voltage_v",
            "ac_current_a",
            "frequency_hz",
            "temperature_c",
            "lifetime_wh",
        },
    ),
    "enphase_battery": (
        {"gateway", "site", "serial", "type"},
        {
            "power_w",
            "max_power_w",
            "soc_pct",
            "temperature_c",
            "max_temperature_c",
            "provisioned",
            "communicating",
            "producing",
            "state",
        },
    ),
}
ALL_TAGS = set().union(*(tags for tags, _ in CONTRACT.values()))
ALL_FIELDS = set().union(*(fields for _, fields in CONTRACT.values()))


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


@contextlib.contextmanager
def loaded_influxdb1(
    name: str, database: str, body: str, *, into: str | None = None
) -> Iterator[InfluxDB1]:
    """A real InfluxDB 1.x with database ``database`` (and ``into``, where the
    line protocol ``body`` goes, if another), ``body`` written: the data a
    dashboard test module queries. Killed and removed on the way out."""
    root = Path(tempfile.mkdtemp(prefix=f"influxd-{name}-"))
    try:
        db = InfluxDB1(root / "db", database=database)
        db.first_start()
        try:
            if into is not None:
                db.create_database(into)
            r = httpx.post(
                f"{db.url}/write",
                params={"db": into or database, "precision": "s"},
                content=body,
                timeout=30,
            )
            assert r.status_code == 204, r.text
            yield db
        finally:
            db.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)
