"""The Grafana dashboards in deploy/grafana/ are valid dashboard JSON and use
only names of the data contract (docs/schema.md).

Their InfluxQL queries are run against a real InfluxDB in
``test_dashboards_influxql.py``; the Flux ones cannot be run here (no InfluxDB
2.x can be installed), so they are checked for structure and names only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboards import ALL_FIELDS, ALL_TAGS, CONTRACT, row_of

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DASHBOARDS = {
    "influxql": GRAFANA / "dashboard-influxql.json",
    "flux": GRAFANA / "dashboard-flux.json",
}

PANEL_TYPES = {"stat", "timeseries", "table", "status-history", "state-timeline", "heatmap", "row"}
# Grafana's own variables, and Flux's v.* record, that need no templating entry.
BUILTIN_VARIABLES = {"timeFilter", "__interval", "__interval_ms", "__range", "__timeFilter"}


def load(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARDS[kind].read_text(encoding="utf-8"))
    return data


def queries(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every target of every panel."""
    return [(p, t) for p in dashboard["panels"] for t in p.get("targets", [])]


def variables_used(text: str) -> set[str]:
    return set(re.findall(r"\$\{?(\w+)", text))


@pytest.mark.parametrize("kind", sorted(DASHBOARDS))
def test_dashboard_is_valid_grafana_json(kind: str) -> None:
    d = load(kind)
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time", "annotations"):
        assert key in d, f"{kind}: missing {key}"
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert d["id"] is None, "provisioned dashboards carry no database id"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"])
    assert set(d["time"]) == {"from", "to"}

    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), f"{kind}: duplicate panel ids"
    assert all(isinstance(i, int) for i in ids)

    occupied: set[tuple[int, int]] = set()
    for p in d["panels"]:
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p["title"]
        grid = p["gridPos"]
        if p["type"] == "row":  # a heading across the dashboard, open, with no query
            assert grid["w"] == 24 and grid["h"] == 1 and grid["x"] == 0
            assert p["collapsed"] is False and p["panels"] == [] and "targets" not in p
        assert set(grid) >= {"h", "w", "x", "y"}
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in ("h", "w", "x", "y"))
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & occupied, f"{kind}: panel {p['title']!r} overlaps another"
        occupied |= cells
        if p["type"] == "row":
            continue
        assert p["datasource"]["type"] == "influxdb"
        assert p["targets"], f"{kind}: panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert isinstance(t["query"], str) and t["query"].strip()
            assert t["datasource"]["type"] == "influxdb"
        for override in p["fieldConfig"]["overrides"]:
            assert override["matcher"]["id"] == "byName" and override["properties"]


@pytest.mark.parametrize("kind", sorted(DASHBOARDS))
def test_variables_exist_and_every_used_one_is_defined(kind: str) -> None:
    d = load(kind)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    gateway = variables["gateway"]
    assert gateway["type"] == "query"
    assert gateway["query"] and gateway["definition"] == gateway["query"]
    assert gateway["datasource"]["uid"] == "${datasource}"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "influxdb"
    for v in variables.values():
        assert {"name", "type", "label"} <= set(v)
    defined = set(variables) | BUILTIN_VARIABLES
    for panel, target in queries(d):
        uid = panel["datasource"]["uid"]
        assert uid.startswith("${") and uid[2:-1] in variables
        assert target["datasource"]["uid"] == uid
        used = variables_used(target["query"]) | variables_used(target.get("alias", ""))
        used = {u for u in used if not u.startswith("tag_")}  # InfluxQL alias patterns
        assert used <= defined, f"{panel['title']}: undefined {used - defined}"
        assert "gateway" in used, f"{panel['title']}: not filtered by $gateway"


def test_influxql_queries_use_only_contract_names() -> None:
    for panel, target in queries(load("influxql")):
        q = target["query"]
        assert target["rawQuery"] is True
        assert '"gateway" =~ /^$gateway$/' in q, panel["title"]
        assert q.count("$timeFilter") == q.count("WHERE"), panel["title"]
        measurements = set(re.findall(r'FROM "(enphase_\w+)"', q))
        assert measurements and measurements <= set(CONTRACT), panel["title"]
        tags, fields = set(), set()
        for m in measurements:
            tags |= CONTRACT[m][0]
            fields |= CONTRACT[m][1]
        names = set(re.findall(r'"(\w+)"', q)) - measurements
        aliases = set(re.findall(r'AS "(\w+)"', q))
        unknown = names - tags - fields - aliases
        assert not unknown, f"{panel['title']}: {unknown} not in the data contract"


def test_flux_queries_use_only_contract_names() -> None:
    for panel, target in queries(load("flux")):
        q = target["query"]
        title = panel["title"]
        assert "range(start: v.timeRangeStart, stop: v.timeRangeStop)" in q, title
        assert re.search(r'from\(bucket: "\$\{(bucket|device_bucket|live_bucket)\}"\)', q), title
        assert 'r.gateway == "${gateway}"' in q, title
        for opening, closing in ("()", "{}", "[]"):
            assert q.count(opening) == q.count(closing), f"{title}: unbalanced {opening}"
        assert q.count('"') % 2 == 0
        measurements = set(re.findall(r'r\._measurement == "(\w+)"', q))
        assert measurements and measurements <= set(CONTRACT), title
        fields = set().union(*(CONTRACT[m][1] for m in measurements))
        tags = set().union(*(CONTRACT[m][0] for m in measurements))
        used_fields = set(re.findall(r'r\._field == "(\w+)"', q))
        assert used_fields <= fields, f"{title}: {used_fields - fields}"
        used_tags = set(re.findall(r"r\.(\w+) ==", q)) - {"_measurement", "_field"}
        used_tags |= {c for c in re.findall(r'"(\w+)"', q) if c in ALL_TAGS}
        assert used_tags <= tags, f"{title}: {used_tags - tags}"
        # measurements go to the bucket the sink routes them to
        devices = measurements & {"enphase_inverter", "enphase_battery"}
        assert ("${device_bucket}" in q) == bool(devices), title


def test_both_dashboards_show_the_same_panels() -> None:
    def layout(kind: str) -> list[tuple[int, str, str, dict[str, int]]]:
        return [(p["id"], p["title"], p["type"], p["gridPos"]) for p in load(kind)["panels"]]

    assert layout("influxql") == layout("flux")
    titles = {p["title"] for p in load("influxql")["panels"]}
    assert {
        "Production",
        "Consumption",
        "Grid (+ import)",
        "Produced today",
        "Power",
        "Battery",
        "Energy per day",
        "Power per phase",
        "Microinverter power",
        "Microinverters",
        "Batteries",
        "Energy",
        "Daily energy from the counters",
        "Self-consumption and self-sufficiency",
        "Battery and backup",
        "Battery energy",
        "Battery charged and discharged per day",
        "Grid and storage mode",
        "Grid outages",
        "Live",
        "Live power",
        "Live power per phase",
        "Live voltage per phase",
    } <= titles


def test_both_dashboards_read_the_same_names_per_panel() -> None:
    """Each panel shows the same thing in both: the same measurements and fields."""

    def names(panel: dict[str, Any], known: set[str]) -> set[str]:
        text = " ".join(t["query"] for t in panel.get("targets", []))
        return {w for w in re.findall(r'"(\w+)"', text) if w in known}

    known = set(CONTRACT) | ALL_FIELDS
    for a, b in zip(load("influxql")["panels"], load("flux")["panels"], strict=True):
        assert names(a, known) == names(b, known), a["title"]


#: annotation name -> the kinds of enphase_event it draws (None: every other kind)
ANNOTATIONS: dict[str, tuple[str, ...] | None] = {
    "Gateway events": None,
    "Grid outages": ("grid",),
    "Storage mode and generator": ("storage_mode", "generator"),
}
OWN_KINDS = ("grid", "storage_mode", "generator")


@pytest.mark.parametrize("name", sorted(ANNOTATIONS))
@pytest.mark.parametrize("kind", sorted(DASHBOARDS))
def test_events_are_annotations(kind: str, name: str) -> None:
    """enphase_event (tags gateway, kind; field text) is drawn on every panel, for the
    selected gateway, its text as the annotation's text and its kind as a tag: grid
    outages and storage mode / generator changes in their own colours, every other
    kind as *Gateway events*. Each kind is drawn once."""
    (events,) = [a for a in load(kind)["annotations"]["list"] if a["name"] == name]
    assert events["enable"] is True and events["datasource"] == {
        "type": "influxdb",
        "uid": "${datasource}",
    }
    kinds = ANNOTATIONS[name]
    if kind == "influxql":
        q = events["query"]
        if kinds is None:
            condition = '"kind" !~ /^(grid|storage_mode|generator)$/'
        elif len(kinds) == 1:
            condition = f"\"kind\" = '{kinds[0]}'"
        else:
            condition = f'"kind" =~ /^({"|".join(kinds)})$/'
        assert q == (
            'SELECT "text", "kind" FROM "enphase_event" '
            f'WHERE "gateway" =~ /^$gateway$/ AND {condition} AND $timeFilter'
        )
        assert (events["textColumn"], events["tagsColumn"]) == ("text", "kind")
    else:
        q = events["target"]["query"]
        assert "range(start: v.timeRangeStart, stop: v.timeRangeStop)" in q
        assert 'r._measurement == "enphase_event" and r.gateway == "${gateway}"' in q
        assert 'r._field == "text"' in q
        if kinds is None:
            assert " and ".join(f'r.kind != "{k}"' for k in OWN_KINDS) in q
        else:
            assert " or ".join(f'r.kind == "{k}"' for k in kinds) in q
        assert 'keep(columns: ["_time", "_value", "kind"])' in q
        assert events["mappings"] == {
            "text": {"source": "field", "value": "_value"},
            "tags": {"source": "field", "value": "kind"},
        }
    assert variables_used(q) <= {"gateway", "timeFilter", "bucket"}


@pytest.mark.parametrize("kind", sorted(DASHBOARDS))
def test_the_annotations_have_distinct_colours(kind: str) -> None:
    listed = [a for a in load(kind)["annotations"]["list"] if a["name"] in ANNOTATIONS]
    assert sorted(a["name"] for a in listed) == sorted(ANNOTATIONS)
    assert len({a["iconColor"] for a in listed}) == len(ANNOTATIONS)


@pytest.mark.parametrize("kind", sorted(DASHBOARDS))
def test_live_row_reads_the_live_data_over_15_minutes(kind: str) -> None:
    """The Live row's panels, and only they, read enphase_live, from the live data
    source (InfluxQL) / bucket (Flux), always over the last 15 minutes; the
    dashboard's link opens it refreshed every 5 s."""
    d = load(kind)
    rows = row_of(d)
    live = [p for p in d["panels"] if rows.get(p["id"]) == "Live"]
    assert [p["title"] for p in live] == [
        "Live power",
        "Live power per phase",
        "Live voltage per phase",
    ]
    for p in d["panels"]:
        for t in p.get("targets", []):
            reads_live = "enphase_live" in t["query"]
            assert reads_live == (p in live), p["title"]
            if kind == "influxql":
                assert (p["datasource"]["uid"] == "${live_datasource}") == reads_live
            else:
                assert ('from(bucket: "${live_bucket}")' in t["query"]) == reads_live
    for p in live:
        assert p["timeFrom"] == "15m" and p["interval"] == "5s"
    (link,) = d["links"]
    assert link["url"] == f"/d/{d['uid']}?from=now-15m&to=now&refresh=5s"
    assert link["includeVars"] is True and link["keepTime"] is False
    # the live data defaults to where the totals are
    variables = {v["name"]: v for v in d["templating"]["list"]}
    default, own = (
        ("datasource", "live_datasource") if kind == "influxql" else ("bucket", "live_bucket")
    )
    assert variables[own]["type"] == variables[default]["type"]
    assert variables[own]["current"] == variables[default]["current"]


@pytest.mark.parametrize("kind", sorted(DASHBOARDS))
def test_battery_and_backup_row(kind: str) -> None:
    d = load(kind)
    rows = row_of(d)
    panels = {p["title"]: p for p in d["panels"] if rows.get(p["id"]) == "Battery and backup"}
    assert list(panels) == [
        "Battery energy",
        "Battery charged and discharged per day",
        "Grid and storage mode",
        "Grid outages",
    ]
    # grid connected as a state timeline: on grid green, off grid red
    grid = panels["Grid and storage mode"]
    assert grid["type"] == "state-timeline"
    (mapping,) = grid["fieldConfig"]["defaults"]["mappings"]
    assert mapping["options"]["true"]["color"] == "green"
    assert mapping["options"]["false"]["color"] == "red"
    # daily energy from the counters, days in the gateway's time zone
    daily = panels["Battery charged and discharged per day"]["targets"][0]["query"]
    assert ("tz('$tz')" if kind == "influxql" else 'timezone.location(name: "${tz}")') in daily
    for counter in ("battery_charged_lifetime_wh", "battery_discharged_lifetime_wh"):
        assert counter in daily
