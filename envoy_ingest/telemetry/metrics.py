"""Prometheus metrics of the worker itself, in one module-level registry.

Every other module instruments itself with one call of a small typed function
below (``metrics.record_poll(gateway, job, "ok")``), never with the
``prometheus_client`` objects directly, so names and labels live in one place.
``docs/operations.md`` lists every metric; ``/metrics`` of the health server
serves :data:`REGISTRY`.

Label values are bounded: ``gateway`` is the gateway's label (its configured
name, serial or host), ``endpoint`` a request path of the request plan, ``job``
``totals`` or ``devices``, ``measurement`` one of the five of the data contract.
Per-gateway series are few (polls, last success, token expiry): every series
costs memory in each of a fleet's thousands of gateways, so the per-request
counter and latency histogram are by endpoint only. The per-gateway series are
not prometheus_client's labelled children (about 0.5 KB each, six or more per
gateway) but one small record per gateway, rendered when scraped
(``telemetry/gateway_series.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from envoy_ingest.point import Kind, Point
from envoy_ingest.telemetry.gateway_series import (
    PREFIX,
    GatewaySeries,
    PollOutcome,
    TokenExpiry,
)

__all__ = [
    "REGISTRY",
    "PollOutcome",
    "exposition",
    "forget_gateway",
    "forget_gateways",
    "gateway_info",
    "last_error",
    "last_success",
    "live_backed_off",
    "record_counter_correction",
    "record_dead_letter",
    "record_dropped",
    "record_live_read",
    "record_live_skipped",
    "record_missed_cycle",
    "record_points",
    "record_poll",
    "record_request",
    "record_write_error",
    "set_degraded",
    "set_memory_points",
    "set_spool",
    "set_token_expiry",
]

# No *_created series next to every counter: they double the output and nobody
# graphs them. (A process-wide prometheus_client setting; this process is ours.)
disable_created_metrics()  # type: ignore[no-untyped-call]

#: The registry ``/metrics`` serves. Not prometheus_client's global one, so that
#: importing this module twice (or a library registering its own metrics) never
#: clashes, and tests read exactly what the worker exposes.
REGISTRY = CollectorRegistry(auto_describe=True)

# Gateway requests take 50 ms (a fast LAN answer) to 45 s (the read timeout).
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 45.0)


#: Polls, last success and error, up, info: one record per gateway (see its module).
GATEWAYS = GatewaySeries()
REGISTRY.register(GATEWAYS)
REQUESTS = Counter(
    f"{PREFIX}_requests",
    "HTTP requests to gateways (all gateways) by endpoint and status "
    "(the HTTP status code, or the error's name when no answer came).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    f"{PREFIX}_request_duration_seconds",
    "Time from sending a request to a gateway to its full answer (or failure), "
    "all gateways, by endpoint.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
MISSED_CYCLES = Counter(
    f"{PREFIX}_missed_cycles",
    "Intervals at a gateway's phase in which no cycle of a job started, by job: the "
    "previous cycle of the same gateway was still running, or the worker was too "
    "busy to start it in time.",
    ["job"],
    registry=REGISTRY,
)
POINTS = Counter(
    f"{PREFIX}_points_written",
    "Points handed to the sink (written durably to its file or spool), by measurement.",
    ["measurement"],
    registry=REGISTRY,
)
SPOOL_POINTS = Gauge(
    f"{PREFIX}_spool_points",
    "Points waiting in the spool for delivery.",
    registry=REGISTRY,
)
SPOOL_BYTES = Gauge(
    f"{PREFIX}_spool_bytes",
    "Size of the spool on disk.",
    registry=REGISTRY,
)
WRITE_ERRORS = Counter(
    f"{PREFIX}_write_errors",
    "Failed deliveries to the sink's server, by class (e.g. timeout, connection, "
    "http_4xx, http_5xx or an exception name).",
    ["class"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    f"{PREFIX}_dead_lettered_points",
    "Points the server refused for good, moved to the dead-letter file.",
    registry=REGISTRY,
)
DROPPED = Counter(
    f"{PREFIX}_dropped_points",
    "Points dropped without delivery, by reason: spool_max_bytes, spool_min_free_bytes "
    "(the spool was full), memory_full (held in memory while the spool could not be "
    "written), stopped (still in memory at shutdown), file_unwritable (file sink), "
    "implausible_time (a point's time before 2008 or far in the future).",
    ["reason"],
    registry=REGISTRY,
)
DEGRADED = Gauge(
    f"{PREFIX}_degraded",
    "1 while a component (spool, file) runs degraded, by the kind of fault "
    "(disk_full, low_space, corrupt, read_only, unavailable); 0 otherwise.",
    ["component", "fault"],
    registry=REGISTRY,
)
_faults: dict[str, str] = {}
_faults_lock = threading.Lock()
MEMORY_POINTS = Gauge(
    f"{PREFIX}_memory_points",
    "Points held in memory because the spool cannot be written.",
    registry=REGISTRY,
)
COUNTER_CORRECTIONS = Counter(
    f"{PREFIX}_counter_corrections",
    "Energy counter corrections by gateway and kind (glitch, wrap, reset, jump: "
    "held readings decided; reboot: every lifetime counter read 0).",
    ["gateway", "kind"],
    registry=REGISTRY,
)
LIVE_READS = Counter(
    f"{PREFIX}_live_reads",
    "Live reads (/ivp/meters/readings for enphase_live), all gateways, by outcome (ok, error).",
    ["outcome"],
    registry=REGISTRY,
)
LIVE_SKIPPED = Counter(
    f"{PREFIX}_live_skipped",
    "Live reads not made, all gateways, by reason: worker_late (the previous read "
    "started late: a busy worker), gateway_slow (the previous read still waited for "
    "the gateway), gateway_busy (a totals or devices read had or was about to have "
    "the gateway).",
    ["reason"],
    registry=REGISTRY,
)
LIVE_BACKED_OFF = Gauge(
    f"{PREFIX}_live_backed_off_gateways",
    "Gateways whose live interval is backed off now (they answered slowly or failed).",
    registry=REGISTRY,
)
TOKEN_EXPIRY = TokenExpiry()
REGISTRY.register(TOKEN_EXPIRY)
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, cpu seconds, fds
PlatformCollector(registry=REGISTRY)  # python_info


# --- what the other modules call ---------------------------------------------------


def record_poll(gateway: str, job: Kind, outcome: PollOutcome) -> None:
    """One poll cycle of ``job`` (``totals``/``devices``) ended with ``outcome``."""
    GATEWAYS.poll(gateway, job, outcome)


# The labelled children of the request metrics, found once per (path, status):
# a fleet records about 100 requests a second, and labels() takes a lock and
# checks the values every time. Few paths and statuses: a small, bounded map.
_request_children: dict[tuple[str, int | str], tuple[Counter, Histogram]] = {}
_MAX_REQUEST_CHILDREN = 1024


def record_request(endpoint: str, status: int | str, seconds: float) -> None:
    """One HTTP request to a gateway: its path, status code (or error name) and duration."""
    children = _request_children.get((endpoint, status))
    if children is None:
        if len(_request_children) >= _MAX_REQUEST_CHILDREN:
            _request_children.clear()
        children = _request_children[(endpoint, status)] = (
            REQUESTS.labels(endpoint, str(status)),
            REQUEST_SECONDS.labels(endpoint),
        )
    children[0].inc()
    children[1].observe(max(seconds, 0.0))


def record_missed_cycle(job: str, count: int = 1) -> None:
    """``count`` intervals of a gateway in which no cycle of ``job`` started."""
    MISSED_CYCLES.labels(job).inc(count)


# The points counter's child per measurement (the data contract's four, and
# the events): found once, not by labels() at every poll.
_points_children: dict[str, Counter] = {}


def record_live_read(outcome: PollOutcome) -> None:
    """One live read ended with ``outcome``."""
    LIVE_READS.labels(outcome).inc()


def record_live_skipped(reason: str, count: int = 1) -> None:
    """``count`` live reads were skipped for ``reason`` (worker_late, gateway_slow,
    gateway_busy)."""
    LIVE_SKIPPED.labels(reason).inc(count)


def live_backed_off(change: int) -> None:
    """A gateway's live interval backed off (+1) or came back (-1)."""
    LIVE_BACKED_OFF.inc(change)


def record_points(points: Iterable[Point]) -> None:
    """Points handed to the sink, counted by measurement."""
    counts: dict[str, int] = {}
    for p in points:
        counts[p.measurement] = counts.get(p.measurement, 0) + 1
    for measurement, n in counts.items():
        child = _points_children.get(measurement)
        if child is None:
            if len(_points_children) >= _MAX_REQUEST_CHILDREN:
                _points_children.clear()
            child = _points_children[measurement] = POINTS.labels(measurement)
        child.inc(n)


def set_spool(depth: int, size_bytes: int) -> None:
    """The spool now holds ``depth`` points in ``size_bytes`` bytes."""
    SPOOL_POINTS.set(depth)
    SPOOL_BYTES.set(size_bytes)


def record_write_error(cls: str | BaseException) -> None:
    """A failed delivery; ``cls`` names its class, or is the exception (its type name)."""
    name = cls if isinstance(cls, str) else type(cls).__name__
    WRITE_ERRORS.labels(name).inc()


def record_dead_letter(n: int) -> None:
    """``n`` points went to the dead-letter file."""
    if n > 0:
        DEAD_LETTERED.inc(n)


def record_dropped(n: int, reason: str) -> None:
    """``n`` points were dropped undelivered, for ``reason`` (see :data:`DROPPED`)."""
    if n > 0:
        DROPPED.labels(reason).inc(n)


def set_degraded(component: str, fault: str | None) -> None:
    """``component`` runs degraded because of ``fault`` (None: no longer degraded)."""
    with _faults_lock:
        old = _faults.pop(component, None)
        if old is not None and old != fault:
            DEGRADED.labels(component, old).set(0)
        if fault is not None:
            _faults[component] = fault
            DEGRADED.labels(component, fault).set(1)


def set_memory_points(n: int) -> None:
    """``n`` points are held in memory, waiting for the spool to be writable."""
    MEMORY_POINTS.set(n)


def record_counter_correction(gateway: str, kind: str) -> None:
    """The energy stage decided a correction of ``kind`` on one of ``gateway``'s counters."""
    COUNTER_CORRECTIONS.labels(gateway, kind).inc()


def set_token_expiry(gateway: str, expires_at: float | None) -> None:
    """The token now used for ``gateway`` expires at Unix time ``expires_at``.

    ``None`` removes the gateway (it no longer uses a token). The exposed metric
    is the number of seconds left, computed at each scrape.
    """
    TOKEN_EXPIRY.set(gateway, expires_at)


def last_success(gateway: str, ts: float | None = None) -> None:
    """``gateway`` was polled successfully at Unix time ``ts`` (default: now)."""
    GATEWAYS.succeeded(gateway, time.time() if ts is None else ts)


def last_error(gateway: str, ts: float | None = None) -> None:
    """A poll of ``gateway`` failed at Unix time ``ts`` (default: now)."""
    GATEWAYS.failed(gateway, time.time() if ts is None else ts)


def gateway_info(gateway: str, serial: str, firmware: str) -> None:
    """``gateway`` is the gateway with this serial number, running this firmware."""
    GATEWAYS.info(gateway, serial, firmware)


def forget_gateway(gateway: str) -> None:
    """Drop every series of a gateway that is no longer polled."""
    forget_gateways([gateway])


def forget_gateways(gateways: Iterable[str]) -> None:
    """Drop every series of these gateways."""
    gone = set(gateways)
    for gateway in gone:
        TOKEN_EXPIRY.set(gateway, None)
    GATEWAYS.forget(gone)


def exposition() -> bytes:
    """The registry in Prometheus text format (what ``/metrics`` answers)."""
    return generate_latest(REGISTRY)
