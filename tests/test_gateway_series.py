# ruff: noqa: E501 - the exact exposition text has long HELP lines
"""The per-gateway series of /metrics, rendered from one record per gateway
(telemetry/gateway_series.py): exactly what prometheus_client's labelled metrics
said before, at a fraction of the memory."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from envoy_ingest.settings import Settings
from envoy_ingest.simulator.fleet import FleetSimulator, fixture_sets
from envoy_ingest.sink.file import FileSink
from envoy_ingest.telemetry import metrics
from envoy_ingest.telemetry.gateway_series import GatewaySeries, TokenExpiry
from envoy_ingest.worker.scheduler import Worker
from tests.conftest import require_fixtures

T = 1_700_000_000.0

EXPECTED = """\
# HELP envoy_ingest_polls_total Poll cycles by gateway, job (totals, devices) and outcome (ok, error).
# TYPE envoy_ingest_polls_total counter
envoy_ingest_polls_total{gateway="barn",job="totals",outcome="error"} 1.0
envoy_ingest_polls_total{gateway="home",job="totals",outcome="ok"} 2.0
envoy_ingest_polls_total{gateway="home",job="devices",outcome="ok"} 1.0
# HELP envoy_ingest_last_success_timestamp_seconds Unix time of the last successful poll of each gateway (any job).
# TYPE envoy_ingest_last_success_timestamp_seconds gauge
envoy_ingest_last_success_timestamp_seconds{gateway="home"} 1.70000012e+09
# HELP envoy_ingest_gateway_up 1 if the gateway's latest poll (any job) succeeded, else 0.
# TYPE envoy_ingest_gateway_up gauge
envoy_ingest_gateway_up{gateway="barn"} 0.0
envoy_ingest_gateway_up{gateway="home"} 1.0
# HELP envoy_ingest_last_error_timestamp_seconds Unix time of the last failed poll of each gateway (any job); the error is in /gateways.
# TYPE envoy_ingest_last_error_timestamp_seconds gauge
envoy_ingest_last_error_timestamp_seconds{gateway="barn"} 1.70000003e+09
# HELP envoy_ingest_gateway_info Always 1: what each gateway is (serial number, firmware version).
# TYPE envoy_ingest_gateway_info gauge
envoy_ingest_gateway_info{firmware="8.2.4264",gateway="home",serial="122238082690"} 1.0
# HELP envoy_ingest_token_expiry_seconds Seconds until the token used for each gateway expires (negative once expired; only gateways with firmware >= 7).
# TYPE envoy_ingest_token_expiry_seconds gauge
envoy_ingest_token_expiry_seconds{gateway="home"} 86400.0
"""


def two_gateways(series: GatewaySeries, expiry: TokenExpiry) -> None:
    """What the worker records for "home" (8.x, token, polled fine after a firmware
    update) and "barn" (never answered)."""
    series.info("home", "122238082690", "7.6.175")
    series.poll("home", "totals", "ok")
    series.succeeded("home", T + 60)
    series.poll("barn", "totals", "error")
    series.failed("barn", T + 30)
    series.poll("home", "devices", "ok")
    series.info("home", "122238082690", "8.2.4264")  # the firmware changed
    series.poll("home", "totals", "ok")
    series.succeeded("home", T + 120)
    expiry.set("home", T + 86400)


def test_two_gateway_worker_metrics_exactly() -> None:
    registry = CollectorRegistry(auto_describe=True)
    series, expiry = GatewaySeries(), TokenExpiry(clock=lambda: T)
    registry.register(series)
    registry.register(expiry)
    two_gateways(series, expiry)
    assert generate_latest(registry).decode() == EXPECTED
    series.forget(["home"])
    expiry.set("home", None)
    text = generate_latest(registry).decode()
    assert "home" not in text
    assert 'envoy_ingest_gateway_up{gateway="barn"} 0.0' in text


def test_same_samples_as_labelled_metrics() -> None:
    """The labelled prometheus_client metrics they replace, fed the same calls."""
    old = CollectorRegistry(auto_describe=True)
    polls = Counter(
        "envoy_ingest_polls",
        "Poll cycles by gateway, job (totals, devices) and outcome (ok, error).",
        ["gateway", "job", "outcome"],
        registry=old,
    )
    success = Gauge(
        "envoy_ingest_last_success_timestamp_seconds",
        "Unix time of the last successful poll of each gateway (any job).",
        ["gateway"],
        registry=old,
    )
    up = Gauge(
        "envoy_ingest_gateway_up",
        "1 if the gateway's latest poll (any job) succeeded, else 0.",
        ["gateway"],
        registry=old,
    )
    error = Gauge(
        "envoy_ingest_last_error_timestamp_seconds",
        "Unix time of the last failed poll of each gateway (any job); the error is in /gateways.",
        ["gateway"],
        registry=old,
    )
    info = Gauge(
        "envoy_ingest_gateway_info",
        "Always 1: what each gateway is (serial number, firmware version).",
        ["gateway", "serial", "firmware"],
        registry=old,
    )
    polls.labels("home", "totals", "ok").inc(2)
    polls.labels("home", "devices", "ok").inc()
    polls.labels("barn", "totals", "error").inc()
    success.labels("home").set(T + 120)
    up.labels("home").set(1)
    error.labels("barn").set(T + 30)
    up.labels("barn").set(0)
    info.labels("home", "122238082690", "8.2.4264").set(1)
    new = CollectorRegistry(auto_describe=True)
    series = GatewaySeries()
    new.register(series)
    two_gateways(series, TokenExpiry())

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return sorted(line for line in text.splitlines() if "_created" not in line)

    assert lines(new) == lines(old)


async def test_a_two_gateway_worker_exposes_exactly_its_series(tmp_path: Path) -> None:
    """A real worker polls two recorded gateways once (the fleet simulator on loopback):
    every /metrics line about them, exactly."""
    sets = [s for s in fixture_sets(require_fixtures()) if s.name in ("3.17.3", "5.0.62")]
    with FleetSimulator(sets, 2, delay_scale=0.0) as fleet:
        gateways = [
            {"host": fleet.host(g), "name": f"series-{name}"}
            for g, name in zip(fleet.gateways, ("a", "b"), strict=True)
        ]
        settings = Settings(gateways=gateways, state={"directory": tmp_path})
        worker = Worker(settings, sink=FileSink(tmp_path / "data"))
        for poller in worker.pollers:
            poller.clock = lambda: T
        assert await worker.run_once(drain_timeout=5) == 0
        serials = [g.serial for g in fleet.gateways]
    lines = [
        line for line in metrics.exposition().decode().splitlines() if 'gateway="series-' in line
    ]
    assert lines == [
        'envoy_ingest_polls_total{gateway="series-a",job="totals",outcome="ok"} 1.0',
        'envoy_ingest_polls_total{gateway="series-a",job="devices",outcome="ok"} 1.0',
        'envoy_ingest_polls_total{gateway="series-b",job="totals",outcome="ok"} 1.0',
        'envoy_ingest_polls_total{gateway="series-b",job="devices",outcome="ok"} 1.0',
        'envoy_ingest_last_success_timestamp_seconds{gateway="series-a"} 1.7e+09',
        'envoy_ingest_last_success_timestamp_seconds{gateway="series-b"} 1.7e+09',
        'envoy_ingest_gateway_up{gateway="series-a"} 1.0',
        'envoy_ingest_gateway_up{gateway="series-b"} 1.0',
        f'envoy_ingest_gateway_info{{firmware="3.17.3",gateway="series-a",serial="{serials[0]}"}} 1.0',
        f'envoy_ingest_gateway_info{{firmware="5.0.62",gateway="series-b",serial="{serials[1]}"}} 1.0',
    ]
    metrics.forget_gateways(["series-a", "series-b"])
    assert 'gateway="series-' not in metrics.exposition().decode()
