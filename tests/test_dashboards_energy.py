"""Daily energy from the lifetime counters, and the gateway events, exactly.

The counter queries of both places (the InfluxQL dashboard's *Energy* row and
its annotation query, and docs/queries.md) run against a real InfluxDB 1.6.7
holding hand-written counters that span three days, with days cut at
Europe/Berlin's midnight (UTC+2 in June), and must answer these kWh exactly.

The counters, as the worker writes them (UTC; grid readings 30 s after the totals):

    time (UTC)          production  consumption  grid import  grid export
    06-14 12:00          1,000,000    2,000,000
    06-14 21:00          1,010,000    2,005,000      500,000      300,000
    06-15 06:00          1,010,000    2,010,000      503,000      300,000
    06-15 12:00          1,020,000    2,012,000      503,500      307,500
    06-15 23:00          1,025,000    2,015,000      505,000      310,000
    06-16 11:00          1,040,000    2,020,000      505,500      320,000

Berlin days: 06-14 ends at 06-14 22:00 UTC, so the 21:00 reading is its last;
06-16 starts at 06-15 22:00 UTC, so the 23:00 reading is its first. The energy
between two readings counts on the day of the later one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboards import loaded_influxdb1
from tests.support.dashboards import rows as answer_rows
from tests.support.servers import InfluxDB1

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
QUERIES_MD = GRAFANA.parent.parent / "docs" / "queries.md"
DB = "solar"
GATEWAY = "122238082690"  # the serial of docs/queries.md's examples
NOW = 1750118400  # 2025-06-17 00:00 UTC
BERLIN = {"06-14": 1749852000, "06-15": 1749938400, "06-16": 1750024800}  # 00:00 Berlin

_ROWS = [
    (1749902400, 1_000_000, 2_000_000, None, None),
    (1749934800, 1_010_000, 2_005_000, 500_000, 300_000),
    (1749967200, 1_010_000, 2_010_000, 503_000, 300_000),
    (1749988800, 1_020_000, 2_012_000, 503_500, 307_500),
    (1750028400, 1_025_000, 2_015_000, 505_000, 310_000),
    (1750071600, 1_040_000, 2_020_000, 505_500, 320_000),
]
_TAGS = f"gateway={GATEWAY},site=home"
LP = "".join(
    f"enphase_system,{_TAGS} production_lifetime_wh={p}.0,consumption_lifetime_wh={c}.0 {t}\n"
    + (
        f"enphase_system,{_TAGS} grid_import_lifetime_wh={i}.0,grid_export_lifetime_wh={e}.0 "
        f"{t + 30}\n"
        if i is not None
        else ""
    )
    for t, p, c, i, e in _ROWS
)
EVENTS = f"""\
enphase_event,gateway={GATEWAY},kind=counter_reset,site=home text="production_lifetime_wh: reset" 1750028500
enphase_event,gateway={GATEWAY},kind=reboot,site=home text="gateway rebooted" 1750071000
enphase_event,gateway=202400000017,kind=reboot,site=cabin text="another gateway" 1750071000
"""  # noqa: E501

#: kWh per Berlin day: production, consumption, import, export (None: no reading pair).
DAILY_KWH = {
    "06-14": (10.0, 5.0, None, None),
    "06-15": (10.0, 7.0, 3.5, 7.5),
    "06-16": (20.0, 8.0, 2.0, 12.5),
}
#: max - min within each day: the energy across midnight is not counted.
SPREAD_KWH = {
    "06-14": (10.0, 5.0, 0.0, 0.0),
    "06-15": (10.0, 2.0, 0.5, 7.5),
    "06-16": (15.0, 5.0, 0.5, 10.0),
}
#: self-consumption = 1 - export / production; self-sufficiency = 1 - import / consumption
SHARES = {"06-15": (0.25, 0.5), "06-16": (0.375, 0.75)}


@pytest.fixture(scope="module")
def server() -> Iterator[InfluxDB1]:
    with loaded_influxdb1("energy", DB, LP + EVENTS) as db:
        yield db


def rows(db: InfluxDB1, query: str) -> dict[int, dict[str, Any]]:
    return answer_rows(db, query, DB)


def by_day(table: Mapping[str, tuple[float | None, ...]], columns: tuple[str, ...]) -> Any:
    return {
        BERLIN[day]: {c: v for c, v in zip(columns, values, strict=True) if v is not None}
        for day, values in table.items()
    }


def dashboard_query(title: str) -> str:
    dashboard = json.loads((GRAFANA / "dashboard-influxql.json").read_text(encoding="utf-8"))
    (panel,) = [p for p in dashboard["panels"] if p["title"] == title]
    (target,) = panel["targets"]
    return grafana(str(target["query"]))


def grafana(query: str) -> str:
    """Grafana's variables filled in: all of the data, the gateway, Berlin days."""
    return (
        query.replace(
            "$timeFilter", f"time >= {(NOW - 30 * 86400) * 1000}ms and time <= {NOW}000ms"
        )
        .replace("$gateway", re.escape(GATEWAY))
        .replace("$tz", "Europe/Berlin")
    )


def doc_query(starts: str) -> str:
    text = QUERIES_MD.read_text(encoding="utf-8")
    queries: list[str] = re.findall(r"```influxql\n(.*?)\n```", text, re.S)
    (query,) = [q for q in queries if q.startswith(starts)]
    return query.replace("now()", f"{NOW}s")


KWH = ("production_kwh", "consumption_kwh", "import_kwh", "export_kwh")
WH = ("production", "consumption", "import", "export")


def test_docs_daily_energy_from_the_counters(server: InfluxDB1) -> None:
    got = rows(server, doc_query('SELECT sum("production") / 1000'))
    assert got == by_day(DAILY_KWH, KWH)


def test_docs_daily_energy_max_minus_min(server: InfluxDB1) -> None:
    got = rows(server, doc_query('SELECT spread("production_lifetime_wh")'))
    assert got == by_day(SPREAD_KWH, KWH)


def test_docs_self_consumption_and_self_sufficiency(server: InfluxDB1) -> None:
    got = rows(server, doc_query('SELECT 1 - sum("export") / sum("production")'))
    assert got == by_day(SHARES, ("self_consumption", "self_sufficiency"))


def test_dashboard_daily_energy(server: InfluxDB1) -> None:
    wh = {
        day: tuple(None if v is None else v * 1000 for v in kwh) for day, kwh in DAILY_KWH.items()
    }
    assert rows(server, dashboard_query("Daily energy from the counters")) == by_day(wh, WH)


def test_dashboard_shares(server: InfluxDB1) -> None:
    got = rows(server, dashboard_query("Self-consumption and self-sufficiency"))
    assert got == by_day(SHARES, ("self_consumption", "self_sufficiency"))


def test_events_as_annotations(server: InfluxDB1) -> None:
    """The dashboard's annotation query and the docs' answer the gateway's events:
    time, text (the annotation's text) and kind (its tag); not another gateway's."""
    dashboard = json.loads((GRAFANA / "dashboard-influxql.json").read_text(encoding="utf-8"))
    (events,) = [a for a in dashboard["annotations"]["list"] if a["name"] == "Gateway events"]
    want = {
        1750028500: {"text": "production_lifetime_wh: reset", "kind": "counter_reset"},
        1750071000: {"text": "gateway rebooted", "kind": "reboot"},
    }
    assert rows(server, grafana(events["query"])) == want
    assert rows(server, doc_query('SELECT "text", "kind" FROM "enphase_event"')) == want
