"""Every InfluxQL query of deploy/grafana/dashboard-influxql.json, run against a
real InfluxDB 1.6.7, returns the series and values it should.

The data is what the worker writes: two days of a simulated 3-phase gateway
with IQ batteries, polled through the real client, capability probe and
normalizers (:class:`GatewayPoller`) with the simulated clock stepped forward,
encoded by the real line-protocol encoder. A second gateway is written by hand
as contract line protocol, with a dead microinverter and an AC Battery, to see
that the dashboard shows it and that ``$gateway`` keeps gateways apart.

Each query runs with Grafana's variables filled in as Grafana would
(``$timeFilter`` as epoch milliseconds, ``$__interval``, ``$gateway``,
``$tz``), and its answer is compared with the same aggregation computed here in
Python from the points that were written.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.point import Kind, Point
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.sink.lineprotocol import encode
from envoy_ingest.worker.poller import GatewayPoller
from tests.lp import FieldValue, Line, parse
from tests.support.dashboards import QUERIES_MD, doc_influxql, doc_sections, panels_in
from tests.support.fakes import ListSink
from tests.support.servers import InfluxDB1

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboard-influxql.json"
)
DB = "solar"
T0 = 1_749_945_600  # 2025-06-15 00:00 UTC
DAY = 86400
START, END = T0, T0 + 2 * DAY  # the dashboard's time range: two whole days
INTERVAL = 600  # $__interval: 10m, two totals polls per bucket
SIM_SERIAL = "122238082690"
HAND_SERIAL = "202400000017"

# --- the second gateway, by hand: contract line protocol ------------------------------
# A single-phase site (production + net CT), an AC Battery, three microinverters of
# which 482200000003 is dead (never produces, stops communicating).

_HAND_LP = """\
enphase_system,gateway=202400000017,site=cabin production_w=1520.5,production_today_wh=4200.0,consumption_w=610.25,consumption_today_wh=3100.0,net_w=-909.75,net_today_wh=0.0,inverters=3i,batteries=1i,battery_w=-250.0,battery_soc_pct=40.0,battery_state="charging" 1749981600
enphase_system,gateway=202400000017,site=cabin production_w=1480.0,production_today_wh=4325.5,consumption_w=1900.0,consumption_today_wh=3180.0,net_w=420.0,net_today_wh=0.0,inverters=3i,batteries=1i,battery_w=0.0,battery_soc_pct=41.0,battery_state="idle" 1749981900
enphase_system,gateway=202400000017,site=cabin production_w=900.0,production_today_wh=6100.0,consumption_w=500.0,consumption_today_wh=7200.0,net_w=-400.0,net_today_wh=0.0,inverters=3i,batteries=1i,battery_w=0.0,battery_soc_pct=100.0,battery_state="full" 1750075200
enphase_meter,flow=production,gateway=202400000017,phase=l1,site=cabin power_w=1520.5,voltage_v=241.5,current_a=6.3,today_wh=4200.0,lifetime_wh=9000000.0 1749981600
enphase_meter,flow=net,gateway=202400000017,phase=l1,site=cabin power_w=-909.75,voltage_v=241.5,current_a=3.8,lifetime_wh=120000.0 1749981600
enphase_meter,flow=production,gateway=202400000017,phase=l1,site=cabin power_w=1480.0,voltage_v=240.0,current_a=6.2 1749981900
enphase_meter,flow=net,gateway=202400000017,phase=l1,site=cabin power_w=420.0,voltage_v=240.0,current_a=1.8 1749981900
enphase_inverter,gateway=202400000017,serial=482200000001,site=cabin power_w=250.0,max_power_w=290.0,producing=true,communicating=true,provisioned=true 1749981600
enphase_inverter,gateway=202400000017,serial=482200000002,site=cabin power_w=244.0,max_power_w=288.0,producing=true,communicating=true,provisioned=true 1749981600
enphase_inverter,gateway=202400000017,serial=482200000003,site=cabin power_w=0.0,max_power_w=0.0,producing=false,communicating=true,provisioned=true 1749981600
enphase_inverter,gateway=202400000017,serial=482200000001,site=cabin power_w=150.0,max_power_w=290.0,producing=true,communicating=true,provisioned=true 1750075200
enphase_inverter,gateway=202400000017,serial=482200000002,site=cabin power_w=149.0,max_power_w=288.0,producing=true,communicating=true,provisioned=true 1750075200
enphase_inverter,gateway=202400000017,serial=482200000003,site=cabin power_w=0.0,max_power_w=0.0,producing=false,communicating=false,provisioned=true 1750075200
enphase_battery,gateway=202400000017,serial=121900000001,site=cabin,type=acb power_w=-250.0,max_power_w=260.0,soc_pct=40.0,max_temperature_c=31.0,provisioned=true,communicating=true,producing=false,state="charging" 1749981600
enphase_battery,gateway=202400000017,serial=121900000001,site=cabin,type=acb power_w=0.0,max_power_w=260.0,soc_pct=100.0,max_temperature_c=27.0,provisioned=true,communicating=true,producing=false,state="full" 1750075200
enphase_system,gateway=202400000017,site=cabin production_lifetime_wh=9010000.0,consumption_lifetime_wh=7010000.0 1749967200
enphase_system,gateway=202400000017,site=cabin grid_import_lifetime_wh=3003000.0,grid_export_lifetime_wh=5000000.0 1749967230
enphase_system,gateway=202400000017,site=cabin production_lifetime_wh=9020000.0,consumption_lifetime_wh=7012000.0 1749988800
enphase_system,gateway=202400000017,site=cabin grid_import_lifetime_wh=3003500.0,grid_export_lifetime_wh=5007500.0 1749988830
enphase_system,gateway=202400000017,site=cabin production_lifetime_wh=9025000.0,consumption_lifetime_wh=7015000.0 1750028400
enphase_system,gateway=202400000017,site=cabin grid_import_lifetime_wh=3005000.0,grid_export_lifetime_wh=5010000.0 1750028430
enphase_system,gateway=202400000017,site=cabin production_lifetime_wh=9040000.0,consumption_lifetime_wh=7020000.0 1750071600
enphase_system,gateway=202400000017,site=cabin grid_import_lifetime_wh=3005500.0,grid_export_lifetime_wh=5020000.0 1750071630
"""  # noqa: E501
DEAD = "482200000003"


# --- the simulated gateway, polled as the worker does ----------------------------------


async def _poll_two_days(sim: Simulator, state: Path) -> list[Point]:
    settings = Settings(
        gateways=[{"host": sim.host, "name": "home", "token": sim.issue_token(lifetime=DAY)}],
        state={"directory": state},
    )
    gw = settings.gateways[0]
    sink = ListSink()
    poller = GatewayPoller(gw, EnvoyClient(gw, TokenManager(settings)), sink, clock=sim.now)
    try:
        for step in range(0, 2 * DAY, 300):  # totals every 5 min, devices every 15 min
            jobs: tuple[Kind, ...] = ("totals", "devices") if step % 900 == 0 else ("totals",)
            for job in jobs:
                result = await poller.poll(job)
                assert result.ok, result.error
            sim.advance(300)
    finally:
        await poller.aclose()
    return sink.points


def simulated_points(state: Path) -> list[Point]:
    cfg = SimulatorConfig(
        family="modern",
        inverters=8,
        batteries="iq",
        battery_count=2,
        cts="3phase",
        time_scale=0,
        start_time=T0,
        tz="UTC",
        serial=SIM_SERIAL,
    )
    with Simulator(cfg) as sim:
        return asyncio.run(_poll_two_days(sim, state))


@pytest.fixture(scope="module")
def influx() -> Iterator[tuple[InfluxDB1, list[Line]]]:
    """InfluxDB 1.6.7 holding both gateways; the lines written, as read back by tests.lp."""
    root = Path(tempfile.mkdtemp(prefix="influxd-dash-"))
    try:
        server = InfluxDB1(root / "db", database=DB)
        server.first_start()
        try:
            sim_lp = encode(simulated_points(root / "state"))
            body = sim_lp + _HAND_LP
            r = httpx.post(
                f"{server.url}/write", params={"db": DB, "precision": "s"}, content=body, timeout=30
            )
            assert r.status_code == 204, r.text
            yield server, stored(parse(body))
        finally:
            server.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stored(lines: list[Line]) -> list[Line]:
    """What InfluxDB keeps: a point written again (same series and time) overwrites
    the fields it carries. The worker relies on this: a report read twice is one point."""
    points: dict[tuple[str, tuple[tuple[str, str], ...], int], dict[str, FieldValue]] = {}
    for ln in lines:
        key = (ln.measurement, tuple(sorted(ln.tags.items())), ln.time)
        points.setdefault(key, {}).update(ln.fields)
    return [Line(m, dict(tags), fields, t) for (m, tags, t), fields in points.items()]


# --- filling in Grafana's variables -----------------------------------------------------


def _duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY}
    return int(text[:-1]) * units[text[-1]]


def render(query: str, panel: dict[str, Any], gateway: str) -> str:
    """The query as Grafana sends it for this gateway and the two days."""
    interval = max(_duration(panel.get("interval", "1s")), INTERVAL)
    return (
        query.replace("$timeFilter", f"time >= {START * 1000}ms and time <= {END * 1000 - 1}ms")
        .replace("$__interval", f"{interval}s")
        .replace("$gateway", re.escape(gateway))
        .replace("$tz", "UTC")
    )


def run(
    server: InfluxDB1, query: str
) -> dict[tuple[tuple[str, str], ...], dict[int, dict[str, Any]]]:
    """tags -> time -> column -> value, without rows whose values are all null."""
    body = server.query(query, DB, epoch="s")
    out: dict[tuple[tuple[str, str], ...], dict[int, dict[str, Any]]] = {}
    for series in body["results"][0].get("series", []):
        tags = tuple(sorted(series.get("tags", {}).items()))
        rows = out.setdefault(tags, {})
        for row in series["values"]:
            values = dict(zip(series["columns"][1:], row[1:], strict=True))
            if any(v is not None for v in values.values()):
                rows[int(row[0])] = values
    return out


# --- the same aggregations in Python --------------------------------------------------

Series = dict[tuple[tuple[str, str], ...], dict[int, dict[str, Any]]]


def select(lines: list[Line], measurement: str, gateway: str) -> list[Line]:
    return sorted(
        (
            ln
            for ln in lines
            if ln.measurement == measurement
            and ln.tags["gateway"] == gateway
            and START <= ln.time < END
        ),
        key=lambda ln: ln.time,
    )


def grouped(
    lines: list[Line],
    columns: dict[str, str],
    by: tuple[str, ...] = (),
    every: int | None = None,
    how: Callable[[list[FieldValue]], Any] | None = None,
    start: int = START,
) -> Series:
    """Group lines by tags ``by`` and time buckets ``every``; ``columns`` alias -> field;
    ``how`` reduces each group's values (default: the mean)."""
    reduce = how or mean
    buckets: dict[Any, dict[int, dict[str, list[FieldValue]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for ln in lines:
        tags = tuple(sorted((k, ln.tags.get(k, "")) for k in by))
        t = start if every is None else ln.time - ln.time % every
        for alias, name in columns.items():
            if name in ln.fields:
                buckets[tags][t][alias].append(ln.fields[name])
    return {
        tags: {t: {a: reduce(v) for a, v in cols.items()} for t, cols in rows.items()}
        for tags, rows in buckets.items()
    }


def mean(values: list[FieldValue]) -> float:
    return sum(float(v) for v in values) / len(values)


def last(values: list[FieldValue]) -> FieldValue:
    return values[-1]


def peak(values: list[FieldValue]) -> FieldValue:
    return max(float(v) for v in values)


def integral_wh(points: list[tuple[int, float]], start: int, stop: int) -> float:
    """InfluxDB 1.x ``integral(x, 1h)`` over the window [start, stop): trapezoids
    between the window's points, and to each window edge the line towards the
    neighbouring point outside it (so energy across midnight is split at midnight)."""
    inside = [(t, v) for t, v in points if start <= t < stop]
    before = [(t, v) for t, v in points if t < start][-1:]
    after = [(t, v) for t, v in points if t >= stop][:1]

    def between(a: tuple[int, float], b: tuple[int, float], t: int) -> float:
        return a[1] + (b[1] - a[1]) * (t - a[0]) / (b[0] - a[0])

    if before and inside and inside[0][0] > start:
        inside.insert(0, (start, between(before[0], inside[0], start)))
    if after and inside:
        inside.append((stop, between(inside[-1], after[0], stop)))
    pairs = itertools.pairwise(inside)
    return sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in pairs) / 3600


def import_export(lines: list[Line]) -> Series:
    """integral(1h) per day of the positive and negative parts of net_w's 1-minute means."""
    net = [
        (ln.time - ln.time % 60, float(ln.fields["net_w"])) for ln in lines if "net_w" in ln.fields
    ]
    imports = [(t, max(v, 0.0)) for t, v in net]
    exports = [(t, max(-v, 0.0)) for t, v in net]
    days = sorted({t - t % DAY for t, _ in net})
    return {
        (): {
            day: {
                "import": integral_wh(imports, day, day + DAY),
                "export": integral_wh(exports, day, day + DAY),
            }
            for day in days
        }
    }


COUNTERS = {
    "production": "production_lifetime_wh",
    "consumption": "consumption_lifetime_wh",
    "import": "grid_import_lifetime_wh",
    "export": "grid_export_lifetime_wh",
}


def counter_days(lines: list[Line]) -> dict[int, dict[str, float]]:
    """Per day, the sum of the non-negative differences between the last readings
    of consecutive 5-minute buckets of each lifetime counter."""
    days: dict[int, dict[str, float]] = defaultdict(dict)
    for alias, name in COUNTERS.items():
        last_of: dict[int, float] = {}
        for ln in lines:
            if name in ln.fields:
                last_of[ln.time - ln.time % 300] = float(ln.fields[name])
        for (_, before), (t, after) in itertools.pairwise(sorted(last_of.items())):
            if after >= before:
                day = days[t - t % DAY]
                day[alias] = day.get(alias, 0.0) + after - before
    return dict(days)


def shares(days: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for t, d in days.items():
        row = {}
        if "export" in d and "production" in d:
            row["self_consumption"] = 1 - d["export"] / d["production"]
        if "import" in d and "consumption" in d:
            row["self_sufficiency"] = 1 - d["import"] / d["consumption"]
        if row:
            out[t] = row
    return out


def expected(title: str, lines: list[Line], gateway: str) -> Series:
    system = select(lines, "enphase_system", gateway)
    stats = {
        "Production": "production_w",
        "Consumption": "consumption_w",
        "Grid (+ import)": "net_w",
        "Produced today": "production_today_wh",
        "Consumed today": "consumption_today_wh",
        "Battery charge": "battery_soc_pct",
    }
    if title in stats:  # one selector: InfluxDB answers with the selected point's time
        newest = [ln for ln in system if stats[title] in ln.fields][-1]
        return {(): {newest.time: {"last": newest.fields[stats[title]]}}}
    if title == "Power":
        cols = {"production": "production_w", "consumption": "consumption_w", "net": "net_w"}
        return grouped(system, cols, every=INTERVAL)
    if title == "Battery":
        return grouped(system, {"charge": "battery_soc_pct", "power": "battery_w"}, every=INTERVAL)
    if title == "Energy per day":
        cols = {"production": "production_today_wh", "consumption": "consumption_today_wh"}
        return grouped(system, cols, every=DAY, how=last)
    if title == "Grid import and export per day":
        return import_export(system)
    if title == "Daily energy from the counters":
        return {(): counter_days(system)}
    if title == "Self-consumption and self-sufficiency":
        return {(): shares(counter_days(system))}
    if title == "Power per phase":
        meters = select(lines, "enphase_meter", gateway)
        return grouped(meters, {"mean": "power_w"}, by=("flow", "phase"), every=INTERVAL)
    inverters = select(lines, "enphase_inverter", gateway)
    if title == "Microinverter power":
        return grouped(inverters, {"mean": "power_w"}, by=("serial",), every=INTERVAL)
    if title == "Microinverters":
        latest = grouped(
            inverters,
            {"power_w": "power_w", "producing": "producing", "communicating": "communicating"},
            by=("serial",),
            how=last,
        )
        top = grouped(inverters, {"peak_w": "power_w"}, by=("serial",), how=peak)
        return {k: {START: {**latest[k][START], **top[k][START]}} for k in latest}
    if title == "Batteries":
        fields = ("soc_pct", "power_w", "state", "temperature_c", "communicating")
        batteries = select(lines, "enphase_battery", gateway)
        return grouped(batteries, {f: f for f in fields}, by=("serial", "type"), how=last)
    raise AssertionError(f"no expectation for panel {title!r}: add one")


def assert_same(got: Series, want: Series, *, rel: float = 1e-9) -> None:
    assert set(got) == set(want), f"series {sorted(got)} != {sorted(want)}"
    for tags, rows in want.items():
        assert set(got[tags]) == set(rows), f"{tags}: times differ"
        for t, cols in rows.items():
            for col, value in cols.items():
                actual = got[tags][t].get(col)
                if isinstance(value, float) and not isinstance(value, bool):
                    assert actual is not None and math.isclose(
                        actual, value, rel_tol=rel, abs_tol=1e-6
                    ), f"{tags} {t} {col}: {actual} != {value}"
                else:
                    assert actual == value, f"{tags} {t} {col}: {actual!r} != {value!r}"
            extra = {c for c, v in got[tags][t].items() if v is not None} - set(cols)
            assert not extra, f"{tags} {t}: unexpected columns {extra}"


# --- the tests --------------------------------------------------------------------------

_DASH = json.loads(DASHBOARD.read_text(encoding="utf-8"))
#: The rows whose data the simulated days carry; the battery and backup row is
#: checked in test_dashboards_backup.py, the live row in test_dashboards_live.py.
ROWS = ("", "Energy")
TARGETS = [(p, t) for p in panels_in(_DASH, *ROWS) for t in p.get("targets", [])]


@pytest.mark.parametrize("gateway", [SIM_SERIAL, HAND_SERIAL])
@pytest.mark.parametrize(
    ("panel", "target"), TARGETS, ids=[f"{p['title']}-{t['refId']}" for p, t in TARGETS]
)
def test_every_dashboard_query_returns_the_expected_series(
    influx: tuple[InfluxDB1, list[Line]],
    panel: dict[str, Any],
    target: dict[str, Any],
    gateway: str,
) -> None:
    server, lines = influx
    got = run(server, render(target["query"], panel, gateway))
    want = expected(panel["title"], lines, gateway)
    assert want, "the test data has nothing for this panel"
    # integral() over 1-minute means: the same trapezoids as here, to rounding
    assert_same(got, want, rel=1e-6 if "integral" in target["query"] else 1e-9)


def test_gateway_variable_lists_every_gateway(influx: tuple[InfluxDB1, list[Line]]) -> None:
    server, _ = influx
    variable = next(v for v in _DASH["templating"]["list"] if v["name"] == "gateway")
    body = server.query(variable["query"], DB)
    values = [row[1] for row in body["results"][0]["series"][0]["values"]]
    assert values == sorted([SIM_SERIAL, HAND_SERIAL])


def test_the_dead_microinverter_stands_out(influx: tuple[InfluxDB1, list[Line]]) -> None:
    server, _ = influx
    panel, target = next((p, t) for p, t in TARGETS if p["title"] == "Microinverters")
    rows = {
        dict(tags)["serial"]: r[START]
        for tags, r in run(server, render(target["query"], panel, HAND_SERIAL)).items()
    }
    assert rows[DEAD] == {
        "power_w": 0.0,
        "peak_w": 0.0,
        "producing": False,
        "communicating": False,
    }
    assert all(r["peak_w"] > 200 and r["producing"] for s, r in rows.items() if s != DEAD)
    # The table's bar turns red below half of the best peak: the dead one, no other.
    peak_override = next(
        o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Peak"
    )
    thresholds = next(p["value"] for p in peak_override["properties"] if p["id"] == "thresholds")
    assert thresholds["mode"] == "percentage"
    red_below = thresholds["steps"][1]["value"] / 100 * max(r["peak_w"] for r in rows.values())
    assert [s for s, r in rows.items() if r["peak_w"] < red_below] == [DEAD]


def test_the_simulated_days_make_sense(influx: tuple[InfluxDB1, list[Line]]) -> None:
    """The daily panels mean what they say: energy per day agrees with the lifetime
    counters, and import minus export with the net counter."""
    server, lines = influx
    by_title = {p["title"]: (p, t) for p, t in TARGETS}
    system = select(lines, "enphase_system", SIM_SERIAL)

    def spread(field: str, day: int) -> float:
        values = [
            float(v)
            for ln in system
            if day <= ln.time < day + DAY
            if (v := ln.fields.get(field)) is not None
        ]
        return max(values) - min(values)

    daily = run(
        server,
        render(by_title["Energy per day"][1]["query"], by_title["Energy per day"][0], SIM_SERIAL),
    )[()]
    grid = run(
        server,
        render(
            by_title["Grid import and export per day"][1]["query"],
            by_title["Grid import and export per day"][0],
            SIM_SERIAL,
        ),
    )[()]
    counters, share = (
        run(server, render(by_title[title][1]["query"], by_title[title][0], SIM_SERIAL))[()]
        for title in ("Daily energy from the counters", "Self-consumption and self-sufficiency")
    )
    assert sorted(daily) == sorted(grid) == sorted(counters) == [T0, T0 + DAY]
    for day in (T0, T0 + DAY):
        produced = daily[day]["production"]
        assert produced > 5000  # a June day at 45°N with 8 panels
        assert produced == pytest.approx(spread("production_lifetime_wh", day), rel=0.01)
        assert daily[day]["consumption"] == pytest.approx(
            spread("consumption_lifetime_wh", day), rel=0.01
        )
        net = grid[day]["import"] - grid[day]["export"]
        first, last_ = (
            [float(ln.fields["net_lifetime_wh"]) for ln in system if day <= ln.time < day + DAY
             and "net_lifetime_wh" in ln.fields][i]
            for i in (0, -1)
        )  # fmt: skip
        assert net == pytest.approx(last_ - first, rel=0.01, abs=20)
        # The counters' days agree with the gateway's today counters, the grid CT's
        # import and export with net power integrated over the day, and with the
        # net counter.
        counted = counters[day]
        assert counted["production"] == pytest.approx(produced, rel=0.01)
        assert counted["consumption"] == pytest.approx(daily[day]["consumption"], rel=0.01)
        # The grid CT is read every 15 minutes here: the night's import between the
        # day's last reading and midnight counts on the next day (< 150 Wh).
        assert counted["import"] == pytest.approx(grid[day]["import"], rel=0.02, abs=150)
        assert counted["export"] == pytest.approx(grid[day]["export"], rel=0.02)
        assert counted["import"] - counted["export"] == pytest.approx(last_ - first, abs=150)
        assert 0 < share[day]["self_consumption"] < 1 and 0 < share[day]["self_sufficiency"] < 1


# --- the InfluxQL answers of docs/queries.md ------------------------------------------

#: The sections answered from the simulated days; the battery, outage and live
#: ones in test_dashboards_backup.py and test_dashboards_live.py.
SIMULATED_SECTIONS = (
    "Today's production",
    "Daily energy over a month",
    "Import and export",
    "Self-consumption",
    "Daily energy from the counters",
    "Self-consumption and self-sufficiency from the counters",
    "Gateway events",
    "A microinverter producing less than its neighbours",
    "Battery cycles",
)
DOC_QUERIES = doc_influxql(*SIMULATED_SECTIONS)
DOC_NOW = f"'{datetime.fromtimestamp(END, UTC):%Y-%m-%dT%H:%M:%SZ}'"


@pytest.mark.parametrize("query", DOC_QUERIES, ids=[f"q{i}" for i in range(len(DOC_QUERIES))])
def test_docs_queries_run(influx: tuple[InfluxDB1, list[Line]], query: str) -> None:
    """Each answers with numbers, for the example gateway (the simulated one)."""
    server, lines = influx
    assert "'122238082690'" in query and "now()" in query
    if '"enphase_event"' in query:  # text, not numbers: tests/test_dashboards_energy.py
        assert "error" not in server.query(query.replace("now()", DOC_NOW), DB)["results"][0]
        return
    got = run(server, query.replace("now()", DOC_NOW))
    values = [v for rows in got.values() for row in rows.values() for v in row.values()]
    assert values and all(isinstance(v, int | float) and math.isfinite(v) for v in values)
    if query.startswith('SELECT last("production_today_wh") / 1000'):
        newest = select(lines, "enphase_system", SIM_SERIAL)[-1]
        assert values == [pytest.approx(float(newest.fields["production_today_wh"]) / 1000)]
    if "self_consumption" in query:
        shares = [row["self_consumption"] for rows in got.values() for row in rows.values()]
        assert all(0 <= s <= 1 for s in shares)
    if '"cycles"' in query:
        assert 0.3 < max(values) < 1.5  # two IQ batteries: about one cycle a day in June


def test_docs_have_every_question_in_every_language() -> None:
    text = QUERIES_MD.read_text(encoding="utf-8")
    sections = re.split(r"(?m)^## ", text)[1:]
    assert doc_sections() == [
        *SIMULATED_SECTIONS,
        "Battery energy per day",
        "Battery available energy",
        "Grid outages",
        "Live power",
        "Downsampling live data",
    ]
    for section in sections:
        for language in ("influxql", "flux", "sql"):
            assert f"```{language}\n" in section, (section.splitlines()[0], language)
