"""The *Live* row of the InfluxQL dashboard and the live queries of
docs/queries.md (the last 15 minutes, and the downsampling into one-minute
means), run against a real InfluxDB 1.6.7.

The data is contract line protocol for ``enphase_live`` written by hand to a
database of its own (``solar_live``, as ``live_database`` would be): a 3-phase
site read every 5 s for 20 minutes up to 12:00:00 UTC (241 readings, k = 0 to
240), whole site (no ``phase`` tag) and per phase:

- production: 2000 + 10 * (k mod 12) W (a ramp that starts again every
  minute: a minute's mean is 2055 W), per phase l1 1000 + 10 * (k mod 12),
  l2 600, l3 400; voltage l1 230 V (231 V on odd k), l2 231 V, l3 232 V;
- consumption: a load that steps between 1500 W (even minutes) and 1600 W
  (odd minutes); net = consumption - production (l1 net - 200, l2 and l3
  100 W; voltage l1 232, l2 231, l3 230 V);
- storage (battery): charging at 300 W until 11:50, then discharging 250 W.

A single-phase site (``SINGLE``) has whole-CT points only, with their voltage:
production 229 V (230 V on odd k), net 229.5 V. Another gateway's points are
never in this one's answers.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.dashboards import (
    dashboard,
    doc_influxql,
    loaded_influxdb1,
    panels_in,
    series_rows,
)
from tests.support.servers import InfluxDB1

DB, LIVE_DB = "solar", "solar_live"
GATEWAY = "122238082690"
SINGLE = "202400000099"  # a single-phase site
NOW = int(datetime(2025, 6, 15, 12, 0, tzinfo=UTC).timestamp())
T0 = NOW - 20 * 60  # the first reading, 11:40:00
WINDOW = 15 * 60  # the Live row's time range

Tags = tuple[tuple[str, str], ...]
Reading = tuple[dict[str, str], dict[str, float], int]


def at(minute: int, second: int = 0) -> int:
    """11:<minute>:<second> UTC on the day of the data (minute 60 is 12:00)."""
    return NOW - (60 - minute) * 60 + second


def readings(gateway: str = GATEWAY) -> list[Reading]:
    """(tags, fields, time) of every enphase_live point written."""
    out: list[Reading] = []
    for k in range(241):
        t = T0 + 5 * k
        production = 2000.0 + 10 * (k % 12)
        consumption = 1500.0 + 100 * ((k // 12) % 2)
        net = consumption - production
        site = {"gateway": gateway, "site": "home"}
        out += [
            ({**site, "flow": "production"}, {"power_w": production}, t),
            ({**site, "flow": "consumption"}, {"power_w": consumption}, t),
            ({**site, "flow": "net"}, {"power_w": net, "frequency_hz": 50.0}, t),
            ({**site, "flow": "storage"}, {"power_w": -300.0 if t < at(50) else 250.0}, t),
        ]
        phases = {
            "production": ((production - 1000, 230.0 + k % 2), (600.0, 231.0), (400.0, 232.0)),
            "net": ((net - 200, 232.0), (100.0, 231.0), (100.0, 230.0)),
        }
        for flow, values in phases.items():
            for phase, (power, volts) in zip(("l1", "l2", "l3"), values, strict=True):
                fields = {"power_w": power, "voltage_v": volts, "current_a": power / volts}
                if flow == "production":
                    fields |= {"power_factor": 0.99, "frequency_hz": 50.0}
                out.append(({**site, "flow": flow, "phase": phase}, fields, t))
    return out


def single_phase() -> list[Reading]:
    site = {"gateway": SINGLE, "site": "flat"}
    return [
        reading
        for k in range(241)
        for reading in (
            (
                {**site, "flow": "production"},
                {"power_w": 800.0, "voltage_v": 229.0 + k % 2},
                T0 + 5 * k,
            ),
            ({**site, "flow": "net"}, {"power_w": -300.0, "voltage_v": 229.5}, T0 + 5 * k),
        )
    ]


def line_protocol(points: list[Reading]) -> str:
    def line(tags: dict[str, str], fields: dict[str, float], t: int) -> str:
        tag_text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        field_text = ",".join(f"{k}={v!r}" for k, v in fields.items())
        return f"enphase_live,{tag_text} {field_text} {t}\n"

    return "".join(line(*p) for p in points)


POINTS = readings()


@pytest.fixture(scope="module")
def server() -> Iterator[InfluxDB1]:
    body = line_protocol(POINTS + readings("202400000017")[::7] + single_phase())
    with loaded_influxdb1("live", DB, body, into=LIVE_DB) as db:
        yield db


def means(
    field: str, by: tuple[str, ...], every: int, start: int, stop: int, *, phases: bool
) -> dict[Tags, dict[int, dict[str, Any]]]:
    """The mean of ``field`` per group of tags ``by`` and bucket of ``every`` s, over the
    points in [start, stop] with (phases) or without a phase tag."""
    values: dict[Tags, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for tags, fields, t in POINTS:
        if start <= t <= stop and ("phase" in tags) == phases and field in fields:
            key = tuple((k, tags.get(k, "")) for k in sorted(by))
            values[key][t - t % every].append(fields[field])
    return {
        key: {t: {"mean": sum(v) / len(v)} for t, v in buckets.items()}
        for key, buckets in values.items()
    }


def assert_close(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    assert set(got) == set(want)
    for tags, rows in want.items():
        assert set(got[tags]) == set(rows), tags
        for t, cols in rows.items():
            assert set(got[tags][t]) == set(cols), (tags, t)
            for col, value in cols.items():
                assert got[tags][t][col] == pytest.approx(value, rel=1e-12), (tags, t, col)


# --- the dashboard's Live row -----------------------------------------------------------

BOARD = dashboard("influxql")
PANELS = {p["title"]: p for p in panels_in(BOARD, "Live")}
INTERVAL = 10  # $__interval: two readings per bucket


def panel_rows(
    server: InfluxDB1, title: str, ref: str = "A", gateway: str = GATEWAY
) -> dict[Tags, dict[int, dict[str, Any]]]:
    """The panel's query as Grafana sends it over the last 15 minutes, on the live
    data source (the database solar_live)."""
    (target,) = [t for t in PANELS[title]["targets"] if t["refId"] == ref]
    assert PANELS[title]["datasource"]["uid"] == "${live_datasource}"
    query = (
        target["query"]
        .replace("$timeFilter", f"time >= {(NOW - WINDOW) * 1000}ms and time <= {NOW * 1000}ms")
        .replace("$__interval", f"{INTERVAL}s")
        .replace("$gateway", re.escape(gateway))
    )
    return series_rows(server, query, LIVE_DB)


def test_every_panel_of_the_row_is_checked_here() -> None:
    assert sorted(PANELS) == ["Live power", "Live power per phase", "Live voltage per phase"]


def test_live_power(server: InfluxDB1) -> None:
    got = panel_rows(server, "Live power")
    want = means("power_w", ("flow",), INTERVAL, NOW - WINDOW, NOW, phases=False)
    assert_close(got, want)
    assert sorted(dict(k)["flow"] for k in got) == ["consumption", "net", "production", "storage"]
    # 11:59:50 and :55 are k = 238 and 239: production 2100 and 2110 W
    assert got[(("flow", "production"),)][at(59, 50)] == {"mean": 2105.0}
    assert got[(("flow", "storage"),)][at(49, 50)] == {"mean": -300.0}
    assert got[(("flow", "storage"),)][at(50)] == {"mean": 250.0}
    # the last 15 minutes, no earlier
    assert min(got[(("flow", "net"),)]) == NOW - WINDOW


def test_live_power_per_phase(server: InfluxDB1) -> None:
    got = panel_rows(server, "Live power per phase")
    assert_close(got, means("power_w", ("flow", "phase"), INTERVAL, NOW - WINDOW, NOW, phases=True))
    assert len(got) == 6  # production and net, three phases each
    assert got[(("flow", "production"), ("phase", "l2"))][at(55)] == {"mean": 600.0}


def test_live_voltage_per_phase(server: InfluxDB1) -> None:
    """Each phase's voltage, the mean over its CTs: l1 (230.5 + 232) / 2 on every
    10 s bucket (one odd and one even k) but the last (12:00:00, k = 240 alone:
    (230 + 232) / 2), l2 231, l3 (232 + 230) / 2."""
    got = panel_rows(server, "Live voltage per phase")
    assert_close(got, means("voltage_v", ("phase",), INTERVAL, NOW - WINDOW, NOW, phases=True))
    for phase, volts in (("l1", 231.25), ("l2", 231.0), ("l3", 231.0)):
        rows = got[(("phase", phase),)]
        assert {r["mean"] for t, r in rows.items() if t < NOW} == {volts}, phase
    assert got[(("phase", "l1"),)][NOW] == {"mean": 231.0}
    # the whole CTs of a multi-phase site carry no voltage
    assert panel_rows(server, "Live voltage per phase", "B") == {}


def test_live_voltage_of_a_single_phase_site(server: InfluxDB1) -> None:
    """No phases: the site's voltage, the mean of its CTs' (229 + 230 + 2 * 229.5) / 4,
    and (229 + 229.5) / 2 at 12:00:00 (k = 240 alone)."""
    assert panel_rows(server, "Live voltage per phase", "A", SINGLE) == {}
    got = panel_rows(server, "Live voltage per phase", "B", SINGLE)
    buckets = range(NOW - WINDOW, NOW + 1, INTERVAL)
    assert got == {(): {t: {"voltage": 229.5 if t < NOW else 229.25} for t in buckets}}


# --- docs/queries.md ----------------------------------------------------------------------

LIVE_DOCS = doc_influxql("Live power")
(DOWNSAMPLE,) = doc_influxql("Downsampling live data")


def doc(query: str) -> str:
    return query.replace("now()", f"{NOW}s")


def test_every_docs_query_is_checked_here() -> None:
    assert len(LIVE_DOCS) == 2
    assert all(f"'{GATEWAY}'" in q and "now()" in q for q in (*LIVE_DOCS, DOWNSAMPLE))


def test_docs_live_power(server: InfluxDB1) -> None:
    """Every 5 s of the last 15 minutes: one reading each, as written."""
    got = series_rows(server, doc(LIVE_DOCS[0]), LIVE_DB)
    want = means("power_w", ("flow",), 5, NOW - WINDOW + 1, NOW, phases=False)
    assert_close(
        got, {k: {t: {"power_w": r["mean"]} for t, r in v.items()} for k, v in want.items()}
    )
    assert len(got[(("flow", "production"),)]) == 180  # time > now() - 15m: 11:45:05 to 12:00


def test_docs_live_power_per_phase(server: InfluxDB1) -> None:
    got = series_rows(server, doc(LIVE_DOCS[1]), LIVE_DB)
    by = ("flow", "phase")
    power = means("power_w", by, 5, NOW - WINDOW + 1, NOW, phases=True)
    volts = means("voltage_v", by, 5, NOW - WINDOW + 1, NOW, phases=True)
    want = {
        k: {t: {"power_w": r["mean"], "voltage_v": volts[k][t]["mean"]} for t, r in v.items()}
        for k, v in power.items()
    }
    assert_close(got, want)


def test_docs_downsampling_into_one_minute_means(server: InfluxDB1) -> None:
    """Run as documented, from the live database into the totals database:
    one-minute means of every field, per series, tags kept."""
    body = server.query(doc(DOWNSAMPLE), LIVE_DB)
    written = body["results"][0]["series"][0]["values"][0][1]
    got = series_rows(server, 'SELECT * FROM "enphase_live_1m" GROUP BY *', DB)
    every_tag = ("flow", "gateway", "phase", "site")
    want: dict[Tags, dict[int, dict[str, Any]]] = defaultdict(dict)
    for field in ("power_w", "voltage_v", "current_a", "frequency_hz", "power_factor"):
        for phases in (False, True):
            for tags, buckets in means(field, every_tag, 60, 0, NOW, phases=phases).items():
                for t, r in buckets.items():  # the whole site: phase "" (no such tag)
                    want[tags].setdefault(t, {})[field] = r["mean"]
    assert_close(got, dict(want))
    assert written == sum(len(v) for v in want.values()) == 10 * 21  # 10 series, 21 minutes
    site = (("flow", "production"), ("gateway", GATEWAY), ("phase", ""), ("site", "home"))
    assert got[site][at(45)] == {"power_w": 2055.0}  # the ramp's mean
    assert got[site][at(60)] == {"power_w": 2000.0}  # 12:00: one reading, k = 240
    consumption = (("flow", "consumption"), ("gateway", GATEWAY), ("phase", ""), ("site", "home"))
    assert got[consumption][at(41)] == {"power_w": 1600.0}
