"""The per-gateway series of ``/metrics``, rendered when scraped.

A fleet has thousands of gateways: a prometheus_client labelled child costs
about 0.5 KB, and each gateway had six or more (polls by job and outcome, last
success, last error, up, info). Here each gateway has one small record
(:class:`GatewaySeries`), and the families are built from the records at each
scrape, with the same names, help texts, labels and values as the labelled
metrics they replace. :class:`TokenExpiry` computes seconds left at scrape time.
``telemetry/metrics.py`` registers both and is the only module that updates them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from envoy_ingest.point import Kind

PREFIX = "envoy_ingest"

PollOutcome = Literal["ok", "error"]


class _Series:
    """What ``/metrics`` says about one gateway."""

    __slots__ = ("info", "last_error", "last_success", "polls", "up")

    def __init__(self) -> None:
        self.polls = [0, 0, 0, 0]  # by POLL_KEYS
        self.last_success: float | None = None
        self.last_error: float | None = None
        self.up: float | None = None  # 1.0 / 0.0 after the first success / failure
        self.info: tuple[str, str] | None = None  # (serial, firmware)


POLL_KEYS: tuple[tuple[Kind, PollOutcome], ...] = (
    ("totals", "ok"),
    ("totals", "error"),
    ("devices", "ok"),
    ("devices", "error"),
)


class GatewaySeries(Collector):
    """The per-gateway series (polls, last success and error, up, info), rendered at
    scrape time from one :class:`_Series` per gateway, gateways sorted by name.

    A series appears once it has a value, as a labelled child would (a poll
    counter once that job ended with that outcome)."""

    def __init__(self) -> None:
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()

    def _get(self, gateway: str) -> _Series:
        series = self._series.get(gateway)
        if series is None:
            series = self._series[gateway] = _Series()
        return series

    def poll(self, gateway: str, job: Kind, outcome: PollOutcome) -> None:
        key = POLL_KEYS.index((job, outcome))
        with self._lock:
            self._get(gateway).polls[key] += 1

    def succeeded(self, gateway: str, ts: float) -> None:
        with self._lock:
            series = self._get(gateway)
            series.last_success, series.up = ts, 1.0

    def failed(self, gateway: str, ts: float) -> None:
        with self._lock:
            series = self._get(gateway)
            series.last_error, series.up = ts, 0.0

    def info(self, gateway: str, serial: str, firmware: str) -> None:
        with self._lock:
            self._get(gateway).info = (serial, firmware)

    def forget(self, gateways: Iterable[str]) -> None:
        with self._lock:
            for gateway in gateways:
                self._series.pop(gateway, None)

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        polls = CounterMetricFamily(
            f"{PREFIX}_polls",
            "Poll cycles by gateway, job (totals, devices) and outcome (ok, error).",
            labels=["gateway", "job", "outcome"],
        )
        success = GaugeMetricFamily(
            f"{PREFIX}_last_success_timestamp_seconds",
            "Unix time of the last successful poll of each gateway (any job).",
            labels=["gateway"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_gateway_up",
            "1 if the gateway's latest poll (any job) succeeded, else 0.",
            labels=["gateway"],
        )
        error = GaugeMetricFamily(
            f"{PREFIX}_last_error_timestamp_seconds",
            "Unix time of the last failed poll of each gateway (any job); the error is in "
            "/gateways.",
            labels=["gateway"],
        )
        info = GaugeMetricFamily(
            f"{PREFIX}_gateway_info",
            "Always 1: what each gateway is (serial number, firmware version).",
            labels=["gateway", "serial", "firmware"],
        )
        with self._lock:
            rows = [
                (g, list(s.polls), s.last_success, s.up, s.last_error, s.info)
                for g, s in sorted(self._series.items())
            ]
        for gateway, counts, last_ok, is_up, last_failed, facts in rows:
            for (job, outcome), n in zip(POLL_KEYS, counts, strict=True):
                if n:
                    polls.add_metric([gateway, job, outcome], n)
            if last_ok is not None:
                success.add_metric([gateway], last_ok)
            if is_up is not None:
                up.add_metric([gateway], is_up)
            if last_failed is not None:
                error.add_metric([gateway], last_failed)
            if facts is not None:
                info.add_metric([gateway, *facts], 1)
        yield from (polls, success, up, error, info)


class TokenExpiry(Collector):
    """Seconds until each gateway's token expires, computed at scrape time.

    The token manager knows an expiry instant, not a countdown; computing the
    difference when scraped keeps the value right between token events.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()

    def set(self, gateway: str, expires_at: float | None) -> None:
        with self._lock:
            if expires_at is None:
                self._expires.pop(gateway, None)
            else:
                self._expires[gateway] = float(expires_at)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_token_expiry_seconds",
            "Seconds until the token used for each gateway expires "
            "(negative once expired; only gateways with firmware >= 7).",
            labels=["gateway"],
        )
        now = self.clock()
        with self._lock:
            items = sorted(self._expires.items())
        for gateway, expires in items:
            family.add_metric([gateway], expires - now)
        yield family
