"""What the health endpoints judge by: :class:`HealthState`, which the worker updates.

Three questions, three answers (served by ``service/server.py``):

- **live** (``/healthz``): the process works. The scheduler runs and its
  heartbeat job fired within :data:`HEARTBEAT_LIMIT` seconds, and no
  process-wide problem is set (e.g. the sink refused points: disk full). A
  gateway that does not answer never makes the worker unhealthy: in a fleet
  some gateway is always offline, and restarting the worker would not help it.
- **ready** (``/readyz``): live, and every gateway's totals job ran at least
  once since it was added (successfully or not), so a rolling restart moves on
  only once the new worker has been round its gateways.
- **per gateway** (``/gateways``): for each gateway its host, serial, firmware,
  token expiry, last success, last error and, per job, whether it succeeded
  within three of its intervals.

The worker drives it::

    health = HealthState()
    health.register_gateway("home", "totals", 60.0)
    health.scheduler_running(True)
    health.heartbeat()                      # from a scheduler job, every few seconds
    health.poll_succeeded("home", "totals") # or poll_failed("home", "totals", "timeout")
    health.gateway_facts("home", serial="1222...", firmware="D8.2.4264")
    health.set_problem("sink", "points cannot be stored: disk full")   # None clears it
    health.set_degraded("spool", "database or disk is full")  # clear_degraded("spool")

A sink working in a **degraded mode** (the spool cannot be written, points
are held in memory and delivered from there; see ``sink/durable.py``) is not a
problem: ``/healthz`` stays 200 with ``"status": "degraded"`` and
``"degraded": {"spool": "<reason>"}``, since collection goes on and a restart
would not free a disk. Another process-wide condition is one more :meth:`set_problem` name. Times
for staleness come from ``clock`` (monotonic: a wall-clock jump never makes
anything look stale); the Unix times shown come from ``wall``. Thread-safe:
the HTTP server reads it from its own threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: A gateway job counts as failing after this many intervals without a successful poll.
STALE_INTERVALS = 3
#: The worker is not live when the scheduler's heartbeat job has not run for this long.
HEARTBEAT_LIMIT = 60.0
#: How often the worker's heartbeat job runs.
HEARTBEAT_INTERVAL = 10.0


@dataclass(slots=True)
class _Job:
    interval: float
    registered: float
    last_success: float | None = None
    attempted: bool = False


@dataclass(slots=True)
class _Gateway:
    jobs: dict[str, _Job] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    last_success: float | None = None  # Unix time
    last_error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A verdict and the JSON body that explains it."""

    healthy: bool
    body: dict[str, Any]


class HealthState:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self._running = False
        self._since = clock()  # of the scheduler's start, or of the last heartbeat
        self._problems: dict[str, str] = {}
        self._degraded: dict[str, str] = {}
        self._gateways: dict[str, _Gateway] = {}
        self._lock = threading.Lock()

    # --- process -------------------------------------------------------------

    def scheduler_running(self, running: bool) -> None:
        """The scheduler started (``True``) or stopped (``False``)."""
        with self._lock:
            self._running = running
            self._since = self.clock()

    def heartbeat(self) -> None:
        """The scheduler ran its heartbeat job just now."""
        with self._lock:
            self._since = self.clock()

    def set_problem(self, name: str, reason: str | None) -> None:
        """A process-wide problem ``name`` (``"sink"``...) now has ``reason``; None clears it.

        Clearing a problem that is not set takes no lock (the worker clears the
        sink's after every good poll)."""
        if reason is None and name not in self._problems:
            return
        with self._lock:
            if reason is None:
                self._problems.pop(name, None)
            else:
                self._problems[name] = reason

    def set_degraded(self, component: str, reason: str) -> None:
        """``component`` (``spool``, ``file``) works in a degraded mode because of ``reason``."""
        with self._lock:
            self._degraded[component] = reason

    def clear_degraded(self, component: str) -> None:
        """``component`` works normally again."""
        with self._lock:
            self._degraded.pop(component, None)

    # --- gateways ------------------------------------------------------------

    def register_gateway(self, name: str, job: str, interval: float) -> None:
        """Watch ``job`` of gateway ``name``, which should succeed every ``interval`` s."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        with self._lock:
            gw = self._gateways.setdefault(name, _Gateway())
            old = gw.jobs.get(job)
            gw.jobs[job] = _Job(interval, self.clock(), old.last_success if old else None)

    def unregister_gateway(self, name: str) -> None:
        """Forget gateway ``name``: it is no longer polled."""
        with self._lock:
            self._gateways.pop(name, None)

    def poll_succeeded(self, name: str, job: str) -> None:
        """A poll of ``job`` of gateway ``name`` succeeded just now."""
        with self._lock:
            gw = self._gateways.get(name)
            entry = gw.jobs.get(job) if gw else None
            if gw is None or entry is None:
                return
            entry.last_success, entry.attempted = self.clock(), True
            gw.last_success = self.wall()

    def poll_failed(self, name: str, job: str, error: str) -> None:
        """A poll of ``job`` of gateway ``name`` failed just now with ``error``."""
        with self._lock:
            gw = self._gateways.get(name)
            entry = gw.jobs.get(job) if gw else None
            if gw is None or entry is None:
                return
            entry.attempted = True
            gw.last_error = {"time": round(self.wall(), 3), "job": job, "error": error}

    def gateway_facts(self, name: str, **facts: Any) -> None:
        """What is known about gateway ``name`` (host, serial, firmware, token_expires...);
        a None value is left out."""
        with self._lock:
            gw = self._gateways.get(name)
            if gw is not None:
                gw.facts.update({k: v for k, v in facts.items() if v is not None})

    # --- verdicts --------------------------------------------------------------

    def report(self) -> HealthReport:
        """Live: the scheduler runs, its heartbeat is recent, no process-wide problem."""
        with self._lock:
            now = self.clock()
            reasons = self._process_reasons(now)
            status = "unhealthy" if reasons else "degraded" if self._degraded else "ok"
            body: dict[str, Any] = {"status": status}
            if reasons:
                body["reason"] = "; ".join(reasons)
                body["reasons"] = reasons
            if self._degraded:
                body["degraded"] = dict(sorted(self._degraded.items()))
            body["scheduler_running"] = self._running
            failing = sum(
                1
                for gw in self._gateways.values()
                if not all(self._job_ok(j, now) for j in gw.jobs.values())
            )
            body["gateways"] = {"total": len(self._gateways), "failing": failing}
        return HealthReport(not reasons, body)

    def readiness(self) -> HealthReport:
        """Ready: live, and every gateway's totals job ran at least once."""
        live = self.report()
        with self._lock:
            waiting = sorted(
                name
                for name, gw in self._gateways.items()
                if any(not j.attempted for job, j in gw.jobs.items() if job == "totals")
            )
        reasons = list(live.body.get("reasons", []))
        if waiting:
            reasons.append(f"{len(waiting)} gateway(s) not polled yet since start")
        body: dict[str, Any] = {"status": "ready" if not reasons else "not ready"}
        if reasons:
            body["reason"] = "; ".join(reasons)
            body["reasons"] = reasons
        body["waiting"] = len(waiting)
        return HealthReport(not reasons, body)

    def gateways(self) -> dict[str, Any]:
        """The per-gateway state ``/gateways`` serves, by gateway name."""
        with self._lock:
            now = self.clock()
            out: dict[str, Any] = {}
            for name, gw in sorted(self._gateways.items()):
                jobs = {
                    job: {
                        "interval_seconds": entry.interval,
                        "seconds_since_success": (
                            round(now - entry.last_success, 1)
                            if entry.last_success is not None
                            else None
                        ),
                        "healthy": self._job_ok(entry, now),
                    }
                    for job, entry in sorted(gw.jobs.items())
                }
                out[name] = {
                    **gw.facts,
                    "healthy": all(j["healthy"] for j in jobs.values()),
                    "last_success": gw.last_success,
                    "last_error": gw.last_error,
                    "jobs": jobs,
                }
        return out

    def _process_reasons(self, now: float) -> list[str]:
        reasons = []
        if not self._running:
            reasons.append("the scheduler is not running")
        elif now - self._since > HEARTBEAT_LIMIT:
            reasons.append(
                f"the scheduler has not run its heartbeat job for {now - self._since:.0f} s "
                f"(limit {HEARTBEAT_LIMIT:g} s)"
            )
        reasons += [f"{name}: {why}" for name, why in sorted(self._problems.items())]
        return reasons

    @staticmethod
    def _job_ok(job: _Job, now: float) -> bool:
        since = job.last_success if job.last_success is not None else job.registered
        return now - since <= STALE_INTERVALS * job.interval
