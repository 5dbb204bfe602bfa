"""The *Battery and backup* row of the InfluxQL dashboard, its outage and storage
mode annotations, and the battery and outage queries of docs/queries.md, run
against a real InfluxDB 1.6.7 holding hand-written contract line protocol, with
days (and months) cut at Europe/Berlin's midnight (UTC+2 in summer). Every
answer is compared with numbers worked out here by hand.

The battery counters, as the worker writes them (UTC; Wh):

    time (UTC)    charged  discharged  charged today  discharged today
    06-13 23:00   100,000      80,000
    06-14 04:00   100,000      81,500
    06-14 10:00   104,000      81,500
    06-14 20:00   104,000      83,000
    06-14 23:00   104,000      83,800              0               800
    06-15 10:00   109,000      84,000          5,000             1,000
    06-15 19:00   109,000      84,000          5,000             1,000   grid lost
    06-15 21:30   109,000      86,500          5,000             3,500   grid back
    06-15 23:00   109,500      86,500            500                 0
    06-16 10:00   113,000      86,500          4,000                 0
    06-16 20:00   113,000      88,000          4,000             1,500

The energy between two readings counts on the Berlin day of the later one:
06-14 charged 4,000 discharged 1,500 + 1,500 = 3,000; 06-15 charged 5,000,
discharged 800 (across midnight) + 200 + 2,500 (the outage) = 3,500; 06-16
charged 500 + 3,500 = 4,000, discharged 1,500. The today fields start once the
worker has seen a midnight (none on 06-14).

Outages ("grid back" events with ``duration_s``), by Berlin month: June
06-14 05:30 UTC (30 min), 06-15 21:30 (150 min), 06-30 21:50 (60 min, 23:50 in
Berlin): 3 outages, 4 h, the longest 150 min. July: 06-30 22:25 UTC (20 min,
00:25 on 07-01 in Berlin) and 07-01 23:00 (10 min): 2, 0.5 h, longest 20 min.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.dashboards import dashboard, doc_influxql, loaded_influxdb1, panels_in, rows
from tests.support.servers import InfluxDB1

DB = "solar"
GATEWAY = "122238082690"  # the serial of docs/queries.md's examples
OTHER = "202400000017"
TZ = "Europe/Berlin"


def utc(text: str) -> int:
    """'06-15 19:00' (2025, UTC) as epoch seconds."""
    return int(datetime.strptime(f"2025-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp())


def berlin(day: str) -> int:
    """The Berlin midnight starting '06-15' (UTC+2 in summer), as epoch seconds."""
    return utc(f"{day} 00:00") - 7200


NOW = utc("07-03 00:00")
START = NOW - 30 * 86400  # the dashboard's time range: 30 days
_SYS = f"enphase_system,gateway={GATEWAY},site=home"
_EVENT = f"enphase_event,gateway={GATEWAY},kind={{kind}},site=home"

# time, charged, discharged, (charged today, discharged today)
COUNTERS: list[tuple[str, int, int, tuple[int, int] | None]] = [
    ("06-13 23:00", 100_000, 80_000, None),
    ("06-14 04:00", 100_000, 81_500, None),
    ("06-14 10:00", 104_000, 81_500, None),
    ("06-14 20:00", 104_000, 83_000, None),
    ("06-14 23:00", 104_000, 83_800, (0, 800)),
    ("06-15 10:00", 109_000, 84_000, (5000, 1000)),
    ("06-15 19:00", 109_000, 84_000, (5000, 1000)),
    ("06-15 21:30", 109_000, 86_500, (5000, 3500)),
    ("06-15 23:00", 109_500, 86_500, (500, 0)),
    ("06-16 10:00", 113_000, 86_500, (4000, 0)),
    ("06-16 20:00", 113_000, 88_000, (4000, 1500)),
]
# time, available, capacity, backup (reserve), reserve %, grid connected
STATE = [
    ("06-15 18:00", 9000, 10_000, 2000, 20, True),
    ("06-15 19:00", 9000, 10_000, 2000, 20, False),
    ("06-15 20:00", 8000, 10_000, 2000, 20, False),
    ("06-15 21:00", 7000, 10_000, 2000, 20, False),
    ("06-15 21:30", 6500, 10_000, 2000, 20, True),
    ("06-15 23:30", 6000, 10_000, 2000, 20, True),
]
# time, storage mode, reserve %
MODES = [("06-14 00:00", "self-consumption", 20), ("06-15 12:00", "backup", 100),
         ("06-15 13:00", "self-consumption", 20)]  # fmt: skip
# (lost, back, minutes away)
OUTAGES = [
    ("06-14 05:00", "06-14 05:30", 30),
    ("06-15 19:00", "06-15 21:30", 150),
    ("06-30 20:50", "06-30 21:50", 60),
    ("06-30 22:05", "06-30 22:25", 20),
    ("07-01 22:50", "07-01 23:00", 10),
]
OTHER_EVENTS = {  # kind -> (time, text)
    "storage_mode": [
        ("06-15 12:00", "storage mode self-consumption -> backup; reserve 20 % -> 100 %"),
        ("06-15 13:00", "storage mode backup -> self-consumption; reserve 100 % -> 20 %"),
    ],
    "generator": [("06-15 19:10", "generator started"), ("06-15 21:20", "generator stopped")],
    "reboot": [("06-16 03:00", "gateway rebooted")],
}


def _line_protocol() -> str:
    out = []
    for t, charged, discharged, today in COUNTERS:
        fields = (
            f"battery_charged_lifetime_wh={charged}.0,battery_discharged_lifetime_wh={discharged}.0"
        )
        if today:
            fields += (
                f",battery_charged_today_wh={today[0]}.0,battery_discharged_today_wh={today[1]}.0"
            )
        out.append(f"{_SYS} {fields} {utc(t)}")
    for t, available, capacity, backup, reserve, grid in STATE:
        out.append(
            f"{_SYS} battery_available_wh={available}.0,battery_capacity_wh={capacity}.0,"
            f"battery_backup_wh={backup}.0,battery_reserve_pct={reserve}.0,"
            f"battery_reserve_configured_pct={reserve}.0,grid_connected={str(grid).lower()},"
            f'grid_mode="{"on-grid" if grid else "off-grid"}" {utc(t)}'
        )
    for t, mode, reserve in MODES:
        out.append(
            f'{_SYS} storage_mode="{mode}",storage_reserve_pct={reserve}.0,'
            f"charge_from_grid=false,very_low_soc_pct=5.0 {utc(t)}"
        )
    for lost, back, minutes in OUTAGES:
        out.append(f'{_EVENT.format(kind="grid")} text="grid lost" {utc(lost)}')
        out.append(
            f'{_EVENT.format(kind="grid")} text="grid back after {minutes} min",'
            f"duration_s={minutes * 60}.0 {utc(back)}"
        )
    for kind, events in OTHER_EVENTS.items():
        out += [f'{_EVENT.format(kind=kind)} text="{text}" {utc(t)}' for t, text in events]
    # another gateway: never in this one's answers
    other = f"gateway={OTHER},site=cabin"
    out += [
        f"enphase_system,{other} battery_charged_lifetime_wh=5.0,battery_available_wh=1.0,"
        f"grid_connected=false {utc('06-15 12:00')}",
        f"enphase_system,{other} battery_charged_lifetime_wh=99999.0 {utc('06-15 18:00')}",
        f'enphase_event,{other},kind=grid text="grid back",duration_s=99999.0 {utc("06-20 10:00")}',
        f'enphase_event,{other},kind=reboot text="another gateway" {utc("06-20 10:00")}',
    ]
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def server() -> Iterator[InfluxDB1]:
    with loaded_influxdb1("backup", DB, _line_protocol()) as db:
        yield db


def grafana(query: str, interval: int = 300) -> str:
    """Grafana's variables filled in: the 30 days before NOW, the gateway, Berlin."""
    return (
        query.replace("$timeFilter", f"time >= {START * 1000}ms and time <= {NOW * 1000}ms")
        .replace("$__interval", f"{interval}s")
        .replace("$gateway", re.escape(GATEWAY))
        .replace("$tz", TZ)
    )


BOARD = dashboard("influxql")
PANELS = {p["title"]: p for p in panels_in(BOARD, "Battery and backup")}


def panel_rows(server: InfluxDB1, title: str, ref: str = "A") -> dict[int, dict[str, Any]]:
    (target,) = [t for t in PANELS[title]["targets"] if t["refId"] == ref]
    return rows(server, grafana(target["query"]), DB)


def annotation_rows(server: InfluxDB1, name: str) -> dict[int, dict[str, Any]]:
    (a,) = [a for a in BOARD["annotations"]["list"] if a["name"] == name]
    return rows(server, grafana(a["query"]), DB)


def test_every_panel_of_the_row_is_checked_here() -> None:
    assert sorted(PANELS) == sorted(
        [
            "Battery energy",
            "Battery charged and discharged per day",
            "Grid and storage mode",
            "Grid outages",
        ]
    )
    assert sorted(t["refId"] for t in PANELS["Grid and storage mode"]["targets"]) == ["A", "B"]


def test_battery_energy_against_capacity_and_reserve(server: InfluxDB1) -> None:
    want = {
        utc(t): {"available": available, "capacity": capacity, "reserve": backup}
        for t, available, capacity, backup, _, _ in STATE
    }
    assert panel_rows(server, "Battery energy") == want


DAILY_WH = {"06-14": (4000, 3000), "06-15": (5000, 3500), "06-16": (4000, 1500)}


def test_daily_charged_and_discharged(server: InfluxDB1) -> None:
    want = {berlin(d): {"charged": c, "discharged": e} for d, (c, e) in DAILY_WH.items()}
    assert panel_rows(server, "Battery charged and discharged per day") == want


def test_grid_connected_and_storage_mode_as_states(server: InfluxDB1) -> None:
    grid = panel_rows(server, "Grid and storage mode", "A")
    assert grid == {utc(t): {"grid": connected} for t, *_, connected in STATE}
    # the outage: off grid from 19:00 until 21:30
    assert [t for t, row in grid.items() if not row["grid"]] == [
        utc("06-15 19:00"),
        utc("06-15 20:00"),
        utc("06-15 21:00"),
    ]
    modes = panel_rows(server, "Grid and storage mode", "B")
    assert modes == {utc(t): {"storage_mode": mode} for t, mode, _ in MODES}
    # every state the panel shows has a colour
    (mapping,) = PANELS["Grid and storage mode"]["fieldConfig"]["defaults"]["mappings"]
    shown = {str(r["grid"]).lower() for r in grid.values()} | {
        r["storage_mode"] for r in modes.values()
    }
    assert shown <= set(mapping["options"])


def test_grid_outages_table(server: InfluxDB1) -> None:
    assert panel_rows(server, "Grid outages") == {
        utc(back): {"duration": minutes * 60, "text": f"grid back after {minutes} min"}
        for _, back, minutes in OUTAGES
    }


def test_outages_and_mode_changes_are_annotations(server: InfluxDB1) -> None:
    """Each event on exactly one annotation: grid, storage mode and generator on
    their own, every other kind as *Gateway events*; not another gateway's."""
    grid = {utc(lost): {"text": "grid lost", "kind": "grid"} for lost, _, _ in OUTAGES} | {
        utc(back): {"text": f"grid back after {m} min", "kind": "grid"} for _, back, m in OUTAGES
    }
    assert annotation_rows(server, "Grid outages") == grid
    modes = {
        utc(t): {"text": text, "kind": kind}
        for kind in ("storage_mode", "generator")
        for t, text in OTHER_EVENTS[kind]
    }
    assert annotation_rows(server, "Storage mode and generator") == modes
    assert annotation_rows(server, "Gateway events") == {
        utc("06-16 03:00"): {"text": "gateway rebooted", "kind": "reboot"}
    }


# --- docs/queries.md ---------------------------------------------------------------------

DOCS = {
    title: doc_influxql(title)
    for title in ("Battery energy per day", "Battery available energy", "Grid outages")
}


def doc(title: str, index: int, now: int = NOW) -> str:
    return DOCS[title][index].replace("now()", f"{now}s")


def test_every_docs_query_is_checked_here() -> None:
    assert {title: len(queries) for title, queries in DOCS.items()} == {
        "Battery energy per day": 2,
        "Battery available energy": 1,
        "Grid outages": 2,
    }
    for queries in DOCS.values():
        assert all(f"'{GATEWAY}'" in q for q in queries)


def test_docs_daily_battery_energy_from_the_counters(server: InfluxDB1) -> None:
    want = {
        berlin(d): {"charged_kwh": c / 1000, "discharged_kwh": e / 1000}
        for d, (c, e) in DAILY_WH.items()
    }
    assert rows(server, doc("Battery energy per day", 0), DB) == want


def test_docs_daily_battery_energy_from_the_today_fields(server: InfluxDB1) -> None:
    """The same days (but the first, before the worker saw a midnight)."""
    want = {
        berlin(d): {"charged_kwh": c / 1000, "discharged_kwh": e / 1000}
        for d, (c, e) in DAILY_WH.items()
        if d != "06-14"
    }
    assert rows(server, doc("Battery energy per day", 1), DB) == want


def test_docs_available_energy(server: InfluxDB1) -> None:
    got = rows(server, doc("Battery available energy", 0, now=utc("06-16 00:00")), DB)
    assert list(got.values()) == [
        {
            "available_wh": 6000,
            "capacity_wh": 10_000,
            "backup_wh": 2000,
            "reserve_pct": 20,
            "above_reserve_wh": 4000,
        }
    ]


def test_docs_outages_per_month(server: InfluxDB1) -> None:
    june = doc("Grid outages", 0)
    assert rows(server, june, DB) == {
        berlin("06-01"): {"outages": 3, "hours": 4.0, "longest_minutes": 150.0}
    }
    july = june.replace("2025-07-01", "2025-08-01").replace("2025-06-01", "2025-07-01")
    assert rows(server, july, DB) == {
        berlin("07-01"): {"outages": 2, "hours": 0.5, "longest_minutes": 20.0}
    }


def test_docs_each_outage(server: InfluxDB1) -> None:
    assert rows(server, doc("Grid outages", 1), DB) == {
        utc(back): {"minutes": minutes, "text": f"grid back after {minutes} min"}
        for _, back, minutes in OUTAGES
    }
