"""The v1 writer behind the spool, against a real InfluxDB 1.6.7 (auth off and on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoy_ingest.point import Point
from envoy_ingest.settings import Settings
from envoy_ingest.sink import check_sink
from tests.lp import parse
from tests.support.builders import device_points, expected_lines, influx_sink, totals_points
from tests.support.servers import InfluxDB1

T0 = 1748995140  # Tue 2025-06-03 23:59 UTC: past (VictoriaMetrics exports up to now), mid-shard


async def test_every_type_and_tag_lands_exactly(influxdb1: InfluxDB1, tmp_path: Path) -> None:
    influxdb1.create_database("solar_devices")
    sink = influx_sink(tmp_path, influxdb1.influxdb_settings(device_database="solar_devices"))
    totals = totals_points(T0) + totals_points(T0 + 60)
    devices = device_points(T0)
    sink.submit(totals)
    sink.submit(devices)
    report = await sink.drain(10)
    await sink.close()
    assert report.complete and report.delivered == len(totals) + len(devices) == 40

    assert influxdb1.lines("solar") == expected_lines(totals)
    assert influxdb1.lines("solar_devices") == expected_lines(devices)
    types = influxdb1.field_types("solar") | influxdb1.field_types("solar_devices")
    assert types[("enphase_system", "production_w")] == "float"
    assert types[("enphase_system", "inverters")] == "integer"
    assert types[("enphase_system", "battery_state")] == "string"
    assert types[("enphase_inverter", "producing")] == "boolean"
    assert types[("enphase_battery", "state")] == "string"
    meter = influxdb1.lines("solar", "enphase_meter")[0]
    assert set(meter.tags) == {"flow", "phase", "gateway", "site"}


async def test_with_authentication(influxdb1_auth: InfluxDB1, tmp_path: Path) -> None:
    sink = influx_sink(tmp_path, influxdb1_auth.influxdb_settings())
    sink.submit(totals_points(T0))
    assert (await sink.drain(10)).complete
    await sink.close()
    assert influxdb1_auth.lines() == expected_lines(totals_points(T0))


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({}, "InfluxDB requires authentication: set influxdb.username and influxdb.password"),
        (
            {"username": "admin", "password": "wrong-password-123"},
            "InfluxDB refused user 'admin': check influxdb.username and influxdb.password",
        ),
        (
            {"username": "reader", "password": "reader-pw-456"},
            "user 'reader' may not write to database 'solar': grant it WRITE",
        ),
    ],
)
async def test_refused_credentials_name_the_key_and_keep_the_points(
    influxdb1_auth: InfluxDB1,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    credentials: dict[str, str],
    message: str,
) -> None:
    influxdb1_auth.create_user("reader", "reader-pw-456", grant='READ ON "solar"')
    table = {"url": influxdb1_auth.url, "api": "v1", "database": "solar", **credentials}
    sink = influx_sink(tmp_path, table)
    sink.submit(totals_points(T0))
    report = await sink.drain(5)
    await sink.close()
    assert report.pending == 7 and report.delivered == 0
    assert message in caplog.text
    assert "wrong-password-123" not in caplog.text and "reader-pw-456" not in caplog.text
    # Fixed configuration, same spool: everything arrives.
    sink = influx_sink(tmp_path, influxdb1_auth.influxdb_settings())
    assert (await sink.drain(10)).complete
    await sink.close()
    assert influxdb1_auth.count() == 7


async def test_missing_database_is_named_then_delivered_once_created(
    influxdb1: InfluxDB1, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = influx_sink(tmp_path, influxdb1.influxdb_settings(device_database="devices"))
    sink.submit(totals_points(T0) + device_points(T0))
    report = await sink.drain(5)
    assert report.delivered == 7 and report.pending == 26
    assert (
        "database 'devices' not found: create it (CREATE DATABASE \"devices\") "
        "or fix influxdb.device_database"
    ) in caplog.text
    influxdb1.create_database("devices")
    assert (await sink.drain(10)).complete
    await sink.close()
    assert influxdb1.count("devices") == 26


async def test_a_field_type_conflict_goes_to_the_dead_letter_file(
    influxdb1: InfluxDB1, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = influx_sink(tmp_path, influxdb1.influxdb_settings())
    before = totals_points(T0)
    # production_w is a float; a string for it is a field type conflict.
    poison = [
        Point("enphase_system", {"production_w": "oops"}, T0 + 60, {"gateway": "g2"}),
        Point("enphase_system", {"production_w": 5.0}, T0 + 60, {"gateway": "g3"}),
    ]
    after = totals_points(T0 + 120)
    sink.submit(before)
    assert (await sink.drain(10)).complete
    sink.submit(poison)  # three batches waiting: the bad one in the middle
    sink.submit(after)
    sink.submit(totals_points(T0 + 180))
    report = await sink.drain(10)
    await sink.close()
    assert report.complete and report.dead_lettered == 2

    text = (tmp_path / "dead-letter.lp").read_text()
    comment, *lines = text.splitlines()
    assert comment.startswith("# ")
    assert "rejected by InfluxDB 1.x at" in comment and "database 'solar'" in comment
    assert "field type conflict" in comment
    assert [(ln.tags, ln.fields) for ln in parse("\n".join(lines))] == [
        ({"gateway": "g2"}, {"production_w": "oops"}),
        ({"gateway": "g3"}, {"production_w": 5.0}),
    ]
    assert "will not be retried" in caplog.text
    # Later batches landed; InfluxDB 1.x kept the good line of the partial write.
    stored = influxdb1.lines()
    assert len(stored) == 7 * 3 + 1
    assert not any(ln.tags.get("gateway") == "g2" for ln in stored)


async def test_413_splits_the_request(tmp_path: Path) -> None:
    server = InfluxDB1(tmp_path / "influxd", max_body_size=4000)
    server.first_start()
    try:
        sink = influx_sink(tmp_path, server.influxdb_settings(gzip=False))
        points = [p for t in range(T0, T0 + 600, 60) for p in totals_points(t)]
        for t in range(T0, T0 + 600, 60):
            sink.submit(totals_points(t))  # ~1.6 kB each, 16 kB in one request
        sink.submit(device_points(T0))  # one row of ~9 kB: split by lines
        sink.submit([Point("enphase_system", {"note": "x" * 5000}, T0, {"gateway": "big"})])
        report = await sink.drain(10)
        await sink.close()
        assert report.complete and report.delivered == len(points) + 26
        assert report.dead_lettered == 1  # a single line larger than the limit
        assert sink._limit < 5000
        assert server.lines() == expected_lines(points + device_points(T0))
        assert "413" in (tmp_path / "dead-letter.lp").read_text().splitlines()[0]
    finally:
        server.kill()


def settings_for(tmp_path: Path, influxdb: dict[str, object]) -> Settings:
    return Settings(
        gateways=[{"host": "192.0.2.1"}],
        influxdb=influxdb,
        state={"directory": tmp_path / "state"},
    )


async def test_check_with_and_without_auth(
    influxdb1: InfluxDB1, influxdb1_auth: InfluxDB1, tmp_path: Path
) -> None:
    lines = await check_sink(settings_for(tmp_path, influxdb1.influxdb_settings()))
    assert lines[0] == (True, f"InfluxDB (1.6.7~rc0) reachable at {influxdb1.url}")
    assert lines[1] == (True, "database 'solar' accepts writes")
    assert lines[2] == (True, f"spool empty (no file yet at {tmp_path / 'state/spool.sqlite'})")

    table = influxdb1_auth.influxdb_settings(device_database="nope")
    lines = await check_sink(settings_for(tmp_path, table))
    assert lines[1] == (True, "database 'solar' accepts writes as user 'admin'")
    assert lines[2][0] is False and "database 'nope' not found" in lines[2][1]

    table = influxdb1_auth.influxdb_settings(password="bad-pw-789")
    lines = await check_sink(settings_for(tmp_path, table))
    assert lines[1][0] is False and "check influxdb.username and influxdb.password" in lines[1][1]
    assert not any("bad-pw-789" in text for _, text in lines)

    lines = await check_sink(settings_for(tmp_path, {**table, "url": "http://127.0.0.1:9"}))
    assert lines[0][0] is False and lines[1][1].startswith("spool empty")
    assert lines[0][1].startswith("InfluxDB at http://127.0.0.1:9 is not reachable")


async def test_the_v2_api_against_influxdb_1_6_says_to_use_v1(
    influxdb1: InfluxDB1, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = {"url": influxdb1.url, "api": "v2", "org": "home", "bucket": "solar"}
    sink = influx_sink(tmp_path, table)
    sink.submit(totals_points(T0))
    report = await sink.drain(5)
    await sink.close()
    assert report.pending == 7
    assert "for InfluxDB 1.x set influxdb.api = 'v1'" in caplog.text
