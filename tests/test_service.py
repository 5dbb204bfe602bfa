"""The service layer: /healthz and /metrics over real HTTP, logging and redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envoy_ingest.errors import SettingsError
from envoy_ingest.point import Point
from envoy_ingest.service.health import HEARTBEAT_LIMIT, HealthState
from envoy_ingest.service.server import parse_listen, start_health_server
from envoy_ingest.settings import load_settings
from envoy_ingest.telemetry import metrics
from envoy_ingest.telemetry.logging import clear_secrets, redact, register_secret, setup_logging


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- health ------------------------------------------------------------------------


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url)


async def test_healthz_is_503_until_the_scheduler_runs_then_200() -> None:
    clock = FakeClock()
    state = HealthState(clock)
    server = await start_health_server("127.0.0.1:0", state)
    try:
        r = await get(f"{server.url}/healthz")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/json"
        assert r.json()["status"] == "unhealthy"
        assert r.json()["reason"] == "the scheduler is not running"

        state.register_gateway("home", "totals", 60)
        state.register_gateway("home", "devices", 300)
        state.scheduler_running(True)
        r = await get(f"{server.url}/healthz")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "ok",
            "scheduler_running": True,
            "gateways": {"total": 1, "failing": 0},
        }
    finally:
        await server.close()


async def test_a_silent_gateway_never_makes_the_worker_unhealthy() -> None:
    clock = FakeClock()
    wall = FakeClock()
    state = HealthState(clock, wall)
    for name in ("home", "barn"):
        state.register_gateway(name, "totals", 60)
        state.register_gateway(name, "devices", 300)
    state.scheduler_running(True)
    server = await start_health_server("127.0.0.1:0", state)
    try:
        clock.now += 9
        wall.now = 1_700_000_000.0
        for job in ("totals", "devices"):
            state.poll_succeeded("home", job)
            state.poll_succeeded("barn", job)
        state.gateway_facts("home", host="10.0.0.1", serial="1222", firmware="D8.2.4264")
        state.gateway_facts("home", token_expires=1_800_000_000, firmware=None)
        state.heartbeat()
        clock.now += 181  # barn answers, home stays silent beyond three totals intervals
        state.heartbeat()
        state.poll_succeeded("barn", "totals")
        state.poll_failed("home", "totals", "connection refused")
        r = await get(f"{server.url}/healthz")
        assert r.status_code == 200, r.text
        assert r.json()["gateways"] == {"total": 2, "failing": 1}

        r = await get(f"{server.url}/gateways")
        assert r.status_code == 200
        home = r.json()["gateways"]["home"]
        assert home == {
            "host": "10.0.0.1",
            "serial": "1222",
            "firmware": "D8.2.4264",
            "token_expires": 1_800_000_000,
            "healthy": False,
            "last_success": 1_700_000_000.0,
            "last_error": {"time": 1_700_000_000.0, "job": "totals", "error": "connection refused"},
            "jobs": {
                "devices": {
                    "interval_seconds": 300.0,
                    "seconds_since_success": 181.0,
                    "healthy": True,
                },
                "totals": {
                    "interval_seconds": 60.0,
                    "seconds_since_success": 181.0,
                    "healthy": False,
                },
            },
        }
        assert r.json()["gateways"]["barn"]["healthy"] is True

        state.unregister_gateway("home")
        r = await get(f"{server.url}/gateways")
        assert list(r.json()["gateways"]) == ["barn"]
    finally:
        await server.close()


async def test_liveness_follows_the_heartbeat_and_process_problems() -> None:
    clock = FakeClock()
    state = HealthState(clock)
    state.scheduler_running(True)
    clock.now += HEARTBEAT_LIMIT
    assert state.report().healthy
    clock.now += 1
    report = state.report()
    assert not report.healthy
    assert report.body["reason"] == (
        "the scheduler has not run its heartbeat job for 61 s (limit 60 s)"
    )
    state.heartbeat()
    assert state.report().healthy
    state.set_problem("sink", "points cannot be stored: disk full")
    report = state.report()
    assert not report.healthy
    assert report.body["reasons"] == ["sink: points cannot be stored: disk full"]
    state.set_problem("sink", None)
    assert state.report().healthy
    state.scheduler_running(False)
    assert state.report().body["reason"] == "the scheduler is not running"


async def test_ready_once_every_gateway_was_polled_once() -> None:
    state = HealthState(FakeClock())
    server = await start_health_server("127.0.0.1:0", state)
    try:
        state.register_gateway("home", "totals", 60)
        state.register_gateway("barn", "totals", 60)
        state.scheduler_running(True)
        r = await get(f"{server.url}/readyz")
        assert r.status_code == 503
        assert r.json() == {
            "status": "not ready",
            "reason": "2 gateway(s) not polled yet since start",
            "reasons": ["2 gateway(s) not polled yet since start"],
            "waiting": 2,
        }
        state.poll_succeeded("home", "totals")
        state.poll_failed("barn", "totals", "timeout")  # a failed poll counts: it was tried
        r = await get(f"{server.url}/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "waiting": 0}
        state.scheduler_running(False)
        assert (await get(f"{server.url}/readyz")).status_code == 503
    finally:
        await server.close()


async def test_unknown_paths_methods_and_garbage() -> None:
    server = await start_health_server("127.0.0.1:0", HealthState())
    try:
        r = await get(f"{server.url}/nope")
        assert r.status_code == 404
        assert r.json() == {"error": "try /healthz, /readyz, /gateways, /metrics"}
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.post(f"{server.url}/healthz", content=b"x")
            assert r.status_code == 405
            assert r.headers["allow"] == "GET, HEAD"
            r = await client.post(f"{server.url}/metrics", content=b"x")
            assert r.status_code == 405
            r = await client.head(f"{server.url}/metrics")
            assert r.status_code == 200
            assert r.content == b""
            r = await client.head(f"{server.url}/healthz")
            assert r.status_code == 503
            assert r.content == b""
        # Garbage gets a 400 and a silent client its own thread; the server keeps answering.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"\x00\x01 not http\r\n\r\n")
        await writer.drain()
        assert b"400 - Bad request" in await asyncio.wait_for(reader.read(), 5)
        writer.close()
        _, idle = await asyncio.open_connection(server.host, server.port)
        assert (await get(f"{server.url}/healthz")).status_code == 503
    finally:
        await server.close()
    idle.close()


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9842") == ("127.0.0.1", 9842)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen(":9842") == ("0.0.0.0", 9842)
    assert parse_listen("[::1]:9842") == ("::1", 9842)
    assert parse_listen("localhost:1") == ("localhost", 1)
    for bad in ("9842", "host:", "::1:9842", "host:99999", "host:abc"):
        with pytest.raises(SettingsError, match=r"^health\.listen: "):
            parse_listen(bad)


async def test_a_busy_port_is_a_settings_error() -> None:
    server = await start_health_server("127.0.0.1:0", HealthState())
    try:
        with pytest.raises(SettingsError, match=r"health\.listen: cannot listen on"):
            await start_health_server(f"127.0.0.1:{server.port}", HealthState())
    finally:
        await server.close()


# --- metrics -----------------------------------------------------------------------

EXPECTED_METRICS = {
    "envoy_ingest_polls_total": {"gateway", "job", "outcome"},
    "envoy_ingest_requests_total": {"endpoint", "status"},
    "envoy_ingest_request_duration_seconds_bucket": {"endpoint", "le"},
    "envoy_ingest_request_duration_seconds_sum": {"endpoint"},
    "envoy_ingest_request_duration_seconds_count": {"endpoint"},
    "envoy_ingest_missed_cycles_total": {"job"},
    "envoy_ingest_points_written_total": {"measurement"},
    "envoy_ingest_spool_points": set(),
    "envoy_ingest_spool_bytes": set(),
    "envoy_ingest_write_errors_total": {"class"},
    "envoy_ingest_dead_lettered_points_total": set(),
    "envoy_ingest_dropped_points_total": {"reason"},
    "envoy_ingest_degraded": {"component", "fault"},
    "envoy_ingest_memory_points": set(),
    "envoy_ingest_token_expiry_seconds": {"gateway"},
    "envoy_ingest_last_success_timestamp_seconds": {"gateway"},
    "envoy_ingest_last_error_timestamp_seconds": {"gateway"},
    "envoy_ingest_gateway_up": {"gateway"},
    "envoy_ingest_gateway_info": {"gateway", "serial", "firmware"},
    "process_resident_memory_bytes": set(),
}


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_metrics_endpoint_exposes_every_metric_with_its_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before_polls = sample("envoy_ingest_polls_total", gateway="home", job="totals", outcome="ok")
    before_inv = sample("envoy_ingest_points_written_total", measurement="enphase_inverter")
    before_dead = sample("envoy_ingest_dead_lettered_points_total")
    metrics.record_poll("home", "totals", "ok")
    metrics.record_poll("home", "devices", "error")
    # An endpoint of its own: the worker tests record real requests too.
    metrics.record_request("/metrics-test/production", 200, 0.12)
    metrics.record_request("/metrics-test/device_data", "error", 45.0)
    before_missed = sample("envoy_ingest_missed_cycles_total", job="devices")
    metrics.record_missed_cycle("devices")
    metrics.record_points(
        [
            Point("enphase_inverter", {"power_w": 1.0}, 1, {"serial": "1"}),
            Point("enphase_inverter", {"power_w": 2.0}, 1, {"serial": "2"}),
            Point("enphase_system", {"production_w": 3.0}, 1),
        ]
    )
    metrics.set_spool(12, 4096)
    metrics.record_write_error("timeout")
    metrics.record_write_error(ConnectionRefusedError())
    metrics.record_dead_letter(3)
    metrics.record_dead_letter(0)
    before_dropped = sample("envoy_ingest_dropped_points_total", reason="memory_full")
    metrics.record_dropped(2, "memory_full")
    metrics.record_dropped(0, "memory_full")
    metrics.set_degraded("metrics-test", "disk_full")
    metrics.set_degraded("metrics-test", "corrupt")
    metrics.set_memory_points(7)
    monkeypatch.setattr(metrics.TOKEN_EXPIRY, "clock", lambda: 1_000_000.0)
    metrics.set_token_expiry("home", 1_000_000.0 + 86400)
    metrics.set_token_expiry("gone", 5.0)
    metrics.set_token_expiry("gone", None)
    metrics.last_success("home", 1_700_000_000.0)
    metrics.last_error("barn", 1_700_000_001.0)
    metrics.gateway_info("home", "1222", "D7.6.175")
    metrics.gateway_info("home", "1222", "D8.2.4264")  # a firmware update replaces the series

    server = await start_health_server("127.0.0.1:0", HealthState())
    try:
        r = await get(f"{server.url}/metrics")
    finally:
        await server.close()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    samples = parse_exposition(r.text)
    for name, labels in EXPECTED_METRICS.items():
        assert name in samples, name
        assert any(set(lbls) == labels for lbls, _ in samples[name]), (name, samples[name])

    polls = sample("envoy_ingest_polls_total", gateway="home", job="totals", outcome="ok")
    assert polls == before_polls + 1
    inv = sample("envoy_ingest_points_written_total", measurement="enphase_inverter")
    assert inv == before_inv + 2
    assert sample("envoy_ingest_dead_lettered_points_total") == before_dead + 3
    assert sample("envoy_ingest_spool_points") == 12
    assert sample("envoy_ingest_memory_points") == 7
    assert sample("envoy_ingest_dropped_points_total", reason="memory_full") == before_dropped + 2
    assert sample("envoy_ingest_degraded", component="metrics-test", fault="disk_full") == 0
    assert sample("envoy_ingest_degraded", component="metrics-test", fault="corrupt") == 1
    metrics.set_degraded("metrics-test", None)
    assert sample("envoy_ingest_degraded", component="metrics-test", fault="corrupt") == 0
    assert sample("envoy_ingest_spool_bytes") == 4096
    assert sample("envoy_ingest_write_errors_total", **{"class": "ConnectionRefusedError"}) >= 1
    assert sample("envoy_ingest_token_expiry_seconds", gateway="home") == 86400
    assert (
        metrics.REGISTRY.get_sample_value("envoy_ingest_token_expiry_seconds", {"gateway": "gone"})
        is None
    )
    assert sample("envoy_ingest_last_success_timestamp_seconds", gateway="home") == 1_700_000_000
    assert sample("envoy_ingest_gateway_up", gateway="home") == 1
    assert sample("envoy_ingest_gateway_up", gateway="barn") == 0
    assert sample("envoy_ingest_last_error_timestamp_seconds", gateway="barn") == 1_700_000_001
    info = [labels for labels, _ in samples["envoy_ingest_gateway_info"]]
    assert [i for i in info if i["gateway"] == "home"] == [
        {"gateway": "home", "serial": "1222", "firmware": "D8.2.4264"}
    ]
    slow = sample(
        "envoy_ingest_request_duration_seconds_bucket",
        endpoint="/metrics-test/device_data",
        le="20.0",
    )
    assert slow == 0  # 45 s is above the 20 s bucket
    assert (
        sample("envoy_ingest_request_duration_seconds_count", endpoint="/metrics-test/device_data")
        == 1
    )
    assert sample("envoy_ingest_missed_cycles_total", job="devices") == before_missed + 1


def test_forget_gateway_drops_every_series_of_that_gateway() -> None:
    metrics.record_poll("gone-gw", "totals", "ok")
    metrics.last_success("gone-gw", 1.0)
    metrics.last_error("gone-gw", 2.0)
    metrics.gateway_info("gone-gw", "9", "D8")
    metrics.set_token_expiry("gone-gw", 5.0)
    metrics.record_poll("kept-gw", "totals", "ok")
    assert "gone-gw" in metrics.exposition().decode()
    metrics.forget_gateway("gone-gw")
    text = metrics.exposition().decode()
    assert "gone-gw" not in text
    assert 'envoy_ingest_polls_total{gateway="kept-gw",job="totals",outcome="ok"}' in text


# --- logging -----------------------------------------------------------------------

JWT = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiIxMjIyMzgwODI2OTAifQ.c2lnbmF0dXJl"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    clear_secrets()
    yield stream
    clear_secrets()
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    logging.captureWarnings(False)


def emit_everything(secret: str) -> None:
    log = logging.getLogger("envoy_ingest.test")
    log.debug("debug with the secret %s", secret)
    log.info("password=%s&user=envoy", secret)
    log.warning("headers %s", {"Authorization": f"Bearer {JWT}", "Accept": "application/json"})
    log.error("token %r in a message", JWT)
    log.info("the secret in extra", extra={"detail": f"user envoy / {secret}"})
    try:
        raise RuntimeError(f"login failed for {secret} with Authorization: Digest response=abc")
    except RuntimeError:
        log.exception("exception text with %s", secret)
    log.info("url-encoded form: user=me&password=%s", "s3cr%2Fet%21tokenvalue")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_reaches_the_log_at_any_level(log_stream: io.StringIO, fmt: str) -> None:
    secret = "s3cr/et!tokenvalue"
    setup_logging("debug", fmt, log_stream)  # type: ignore[arg-type]
    register_secret(secret)
    emit_everything(secret)
    out = log_stream.getvalue()
    assert "debug with the secret ***" in out
    assert secret not in out
    assert "s3cr%2Fet%21tokenvalue" not in out
    assert JWT not in out
    assert "eyJ" not in out
    assert "response=abc" not in out
    assert "RuntimeError: login failed for ***" in out.replace("\\n", "\n")
    assert out.count("***") >= 7
    if fmt == "json":
        records = [json.loads(line) for line in out.splitlines()]
        assert [r["level"] for r in records] == [
            "debug",
            "info",
            "warning",
            "error",
            "info",
            "error",
            "info",
        ]
        assert all(r["logger"] == "envoy_ingest.test" for r in records)
        assert records[4]["detail"] == "user envoy / ***"
        assert records[5]["exception"].startswith("Traceback")
        assert records[0]["time"].endswith("Z")
    else:
        first = out.splitlines()[0]
        assert " DEBUG   envoy_ingest.test: debug with the secret ***" in first


def test_text_is_the_default_and_levels_filter(log_stream: io.StringIO) -> None:
    setup_logging("info", stream=log_stream)
    setup_logging("info", stream=log_stream)  # a second call replaces the first
    log = logging.getLogger("envoy_ingest.test")
    log.debug("not shown")
    log.warning("shown once")
    assert log_stream.getvalue().count("shown once") == 1
    assert " WARNING envoy_ingest.test: shown once\n" in log_stream.getvalue()
    assert "not shown" not in log_stream.getvalue()
    logging.getLogger("httpx").info("HTTP Request: GET https://envoy/info")
    logging.getLogger("apscheduler.executors").info("Running job")
    logging.getLogger("httpx").warning("httpx warns")
    out = log_stream.getvalue()
    assert "HTTP Request" not in out and "Running job" not in out and "httpx warns" in out
    assert logging.getLogger("httpx").level == logging.NOTSET  # untouched for others
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("loud", "text", log_stream)


def test_redact_patterns_without_registered_secrets() -> None:
    clear_secrets()
    assert redact(f"Authorization: Bearer {JWT}") == "Authorization: ***"
    assert redact(f"sent Bearer {JWT} to the gateway") == "sent Bearer *** to the gateway"
    assert (
        redact('{"password": "a b c", "user": "envoy"}') == '{"password": "***", "user": "envoy"}'
    )
    assert redact("https://h/login?token=abc123&x=1") == "https://h/login?token=***&x=1"
    assert redact("token_file=/run/credentials/x token expires in 3 days") == (
        "token_file=/run/credentials/x token expires in 3 days"
    )
    assert redact("session_id='abcdef'") == "session_id='***'"
    # Redacting twice changes nothing more (the filter and the formatter both redact).
    text = "{'Authorization': 'Digest username=\"envoy\", response=\"0f\"', 'Accept': 'json'}"
    assert redact(text) == "{'Authorization': '***', 'Accept': 'json'}"
    assert redact(redact(text)) == redact(text)
    register_secret("ab")  # too short to search for
    assert redact("table") == "table"
    clear_secrets()


# --- the container's environment ---------------------------------------------------


def test_environment_turns_health_on_over_a_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Dockerfile sets these two variables over whatever the mounted file says."""
    path = tmp_path / "settings.toml"
    path.write_text('[[gateways]]\nhost = "envoy.local"\n[health]\nlisten = "127.0.0.1:1"\n')
    monkeypatch.setenv("ENVOY_INGEST_HEALTH__ENABLED", "true")
    monkeypatch.setenv("ENVOY_INGEST_HEALTH__LISTEN", "0.0.0.0:9842")
    monkeypatch.setenv("ENVOY_INGEST_STATE__DIRECTORY", str(tmp_path / "state"))
    settings = load_settings(path)
    assert settings.health.enabled is True
    assert settings.health.listen == "0.0.0.0:9842"
    assert settings.state.directory == tmp_path / "state"
    assert settings.gateways[0].host == "envoy.local"
