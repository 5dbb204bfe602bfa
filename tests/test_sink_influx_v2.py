"""The v2 writer (influxdb-client) behind the spool: into a real VictoriaMetrics
through ``/api/v2/write``, and against a scripted fake for the answers only
InfluxDB 2.x/3.x or Cloud give (they cannot be installed here): 401, 404,
400 with a JSON reason, 429/503 with Retry-After, 5xx."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from envoy_ingest.settings import Settings
from envoy_ingest.sink import check_sink
from envoy_ingest.sink.answers import parse_retry_after
from envoy_ingest.telemetry import metrics
from tests.support.builders import device_points, expected_samples, influx_sink, totals_points
from tests.support.fakes import FakeInflux, FakeRequest
from tests.support.servers import VictoriaMetrics

T0 = 1748995140  # Tue 2025-06-03 23:59 UTC: past (VictoriaMetrics exports up to now), mid-shard
TOKEN = "secret-token-abc123"


def fake_table(fake: FakeInflux, **extra: object) -> dict[str, object]:
    return {"url": fake.url, "api": "v2", "org": "home", "bucket": "solar", "token": TOKEN, **extra}


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def error(status: int, message: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"code": "x", "message": message}).encode()
    return status, {"Content-Type": "application/json", **headers}, body


async def test_into_victoria_metrics_exactly_once(
    victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    sink = influx_sink(tmp_path, victoria_metrics.influxdb_settings())
    points = totals_points(T0) + device_points(T0) + totals_points(T0 + 60)
    sink.submit(points[:33])
    sink.submit(points[33:])
    report = await sink.drain(10)
    await sink.close()
    assert report.complete and report.delivered == 40
    assert victoria_metrics.samples() == expected_samples(points)


async def test_routes_by_bucket_with_token_gzip_and_seconds(
    fake_influx: FakeInflux, tmp_path: Path
) -> None:
    sink = influx_sink(tmp_path, fake_table(fake_influx, device_bucket="devices"))
    sink.submit(totals_points(T0) + device_points(T0))
    assert (await sink.drain(5)).complete
    await sink.close()
    writes = fake_influx.writes()
    assert [(w.path, w.query) for w in writes] == [
        ("/api/v2/write", {"org": "home", "bucket": "solar", "precision": "s"}),
        ("/api/v2/write", {"org": "home", "bucket": "devices", "precision": "s"}),
    ]
    assert writes[0].headers["Authorization"] == f"Token {TOKEN}"
    assert writes[0].headers["Content-Encoding"] == "gzip"
    assert writes[0].body.count(b"\n") == 7 and writes[1].body.count(b"\n") == 26
    assert b"enphase_inverter" in writes[1].body and b"enphase_inverter" not in writes[0].body


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (error(401, "unauthorized access"), "the server refused the token: check influxdb.token"),
        (error(403, "insufficient permissions"), "may not write to bucket 'solar'"),
        (error(404, 'bucket "solar" not found'), "check influxdb.bucket and influxdb.org"),
    ],
)
async def test_refusals_name_the_key_keep_spooling_and_hide_the_token(
    fake_influx: FakeInflux,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    answer: tuple[int, dict[str, str], bytes],
    message: str,
) -> None:
    fake_influx.default = answer
    errors_before = metric("envoy_ingest_write_errors_total", {"class": "http_4xx"})
    sink = influx_sink(tmp_path, fake_table(fake_influx))
    sink.submit(totals_points(T0))
    assert metric("envoy_ingest_spool_points") == 7
    report = await sink.drain(5)
    assert metric("envoy_ingest_write_errors_total", {"class": "http_4xx"}) == errors_before + 1
    assert report.pending == 7 and len(fake_influx.writes()) == 1  # no point waiting
    assert message in caplog.text
    assert TOKEN not in caplog.text
    last_error = sink.stats().last_error
    assert last_error is not None and TOKEN not in last_error
    fake_influx.default = (204, {}, b"")
    assert (await sink.drain(5)).complete
    await sink.close()


async def test_a_rejected_batch_never_holds_back_later_ones(
    fake_influx: FakeInflux, tmp_path: Path
) -> None:
    def answer(req: FakeRequest) -> tuple[int, dict[str, str], bytes]:
        if b"poison" in req.body:
            return error(400, 'partial write: field type conflict: input field "x"')
        return 204, {}, b""

    fake_influx.answers = [answer] * 20
    dead_before = metric("envoy_ingest_dead_lettered_points_total")
    sink = influx_sink(tmp_path, fake_table(fake_influx))
    bad = totals_points(T0 + 60, gateway="poison")
    for t in (T0, T0 + 120, T0 + 180):
        sink.submit(totals_points(t))
    sink.submit(bad)
    sink.submit(totals_points(T0 + 240))
    report = await sink.drain(5)
    await sink.close()
    assert report.complete and report.delivered == 28 and report.dead_lettered == 7
    assert metric("envoy_ingest_dead_lettered_points_total") == dead_before + 7
    assert metric("envoy_ingest_spool_points") == 0
    text = (tmp_path / "dead-letter.lp").read_text()
    assert text.startswith("# ") and "bucket 'solar': 400: partial write" in text
    assert text.count("gateway=poison") == 7
    # The poisoned row was isolated by bisection: ≤ 2 * rows - 1 requests.
    assert len(fake_influx.writes()) <= 9


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_retry_after_is_honoured(fake_influx: FakeInflux, tmp_path: Path, api: str) -> None:
    fake_influx.answers = [
        error(429, "too many requests", **{"Retry-After": "1"}),
        error(503, "unavailable", **{"Retry-After": "1"}),
    ]
    table = (
        fake_table(fake_influx)
        if api == "v2"
        else {"url": fake_influx.url, "api": "v1", "database": "solar"}
    )
    sink = influx_sink(tmp_path, table, backoff=(0.01, 0.01))
    sink.submit(totals_points(T0))
    report = await sink.drain(10)
    await sink.close()
    assert report.complete
    at = [w.at for w in fake_influx.writes()]
    assert len(at) == 3
    assert 1.0 <= at[1] - at[0] < 1.5 and 1.0 <= at[2] - at[1] < 1.5


async def test_5xx_backs_off_exponentially_with_jitter(
    fake_influx: FakeInflux, tmp_path: Path
) -> None:
    fake_influx.answers = [error(500, "internal error")] * 5
    sink = influx_sink(tmp_path, fake_table(fake_influx), backoff=(0.05, 0.4))
    sink.submit(totals_points(T0))
    report = await sink.drain(10)
    await sink.close()
    assert report.complete
    at = [w.at for w in fake_influx.writes()]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert len(gaps) == 5
    for gap, nominal in zip(gaps, [0.05, 0.1, 0.2, 0.4, 0.4], strict=True):
        assert 0.5 * nominal <= gap < nominal + 0.1  # jitter: between half and all of it


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("99999") == 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def settings_for(tmp_path: Path, influxdb: dict[str, object]) -> Settings:
    return Settings(
        gateways=[{"host": "192.0.2.1"}],
        influxdb=influxdb,
        state={"directory": tmp_path / "state"},
    )


async def test_check(
    victoria_metrics: VictoriaMetrics, fake_influx: FakeInflux, tmp_path: Path
) -> None:
    lines = await check_sink(settings_for(tmp_path, victoria_metrics.influxdb_settings()))
    assert lines[0][0] and f"reachable at {victoria_metrics.url}" in lines[0][1]
    assert lines[1] == (True, "bucket 'solar' accepts writes")

    fake_influx.answers = [error(401, "unauthorized access")]
    lines = await check_sink(settings_for(tmp_path, fake_table(fake_influx)))
    assert lines[1][0] is False and "check influxdb.token" in lines[1][1]
    assert not any(TOKEN in text for _, text in lines)
    # InfluxDB 2.x answers an empty write with 400 once token and bucket passed.
    fake_influx.answers = [error(400, "writing requires points")]
    lines = await check_sink(settings_for(tmp_path, fake_table(fake_influx)))
    assert lines[1] == (True, "bucket 'solar' accepts writes")

    lines = await check_sink(
        settings_for(tmp_path, fake_table(fake_influx, url="http://127.0.0.1:9"))
    )
    assert lines[0][0] is False and "not reachable" in lines[0][1]
