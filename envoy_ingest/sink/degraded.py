"""A sink's degraded mode, said once: when it starts, when it ends, and a summary
in between, never a line per poll.

Used by the spool (:mod:`envoy_ingest.sink.durable`) and the file sink. The
state goes to ``/healthz`` through a :class:`StatusBoard` and to ``/metrics``
(``envoy_ingest_degraded{component, fault}``); drops are counted in
``envoy_ingest_dropped_points_total{reason}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from envoy_ingest.errors import SpoolCorrupt
from envoy_ingest.sink.base import StatusBoard
from envoy_ingest.telemetry import metrics

log = logging.getLogger(__name__)

#: While degraded, a summary line at most this often (seconds).
SUMMARY_INTERVAL = 600.0


def fault_of(exc: BaseException) -> str:
    """A bounded name for what went wrong (the ``fault`` label of the metric)."""
    text = str(exc).lower()
    if isinstance(exc, SpoolCorrupt):
        return "corrupt"
    if "min_free_bytes" in text:
        return "low_space"
    if "disk is full" in text or "no space" in text:
        return "disk_full"
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return "read_only"
    return "unavailable"


class Degraded:
    """The degraded state of one ``component`` (``spool``, ``file``)."""

    def __init__(
        self,
        component: str,
        status: StatusBoard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component = component
        self.status = status
        self.clock = clock
        self.reason: str | None = None
        self.dropped = 0  # in the current episode
        self._since = self._last_summary = 0.0

    @property
    def active(self) -> bool:
        return self.reason is not None

    def enter(self, exc: BaseException, message: str) -> None:
        """Degraded because of ``exc``; ``message`` is logged only if this starts it."""
        if self.reason is None:
            self._since = self._last_summary = self.clock()
            self.dropped = 0
            log.error("%s", message)
        self.reason = str(exc)
        metrics.set_degraded(self.component, fault_of(exc))
        if self.status is not None:
            self.status.set_degraded(self.component, self.reason)

    def drop(self, points: int, reason: str) -> None:
        """``points`` were dropped undelivered, for ``reason`` (the metric's label)."""
        self.dropped += points
        metrics.record_dropped(points, reason)

    def summary(self, held: int) -> None:
        """A periodic line while degraded (call it as often as you like)."""
        now = self.clock()
        if self.reason is None or now - self._last_summary < SUMMARY_INTERVAL:
            return
        self._last_summary = now
        log.warning(
            "%s still degraded for %.0f s (%s): %d points held in memory, %d dropped",
            self.component,
            now - self._since,
            self.reason,
            held,
            self.dropped,
        )

    def leave(self, what: str) -> None:
        """No longer degraded; logs ``what`` with the episode's length and drops."""
        if self.reason is None:
            return
        log.warning(
            "%s after %.0f s; %d points were dropped meanwhile",
            what,
            self.clock() - self._since,
            self.dropped,
        )
        self.reason = None
        metrics.set_degraded(self.component, None)
        if self.status is not None:
            self.status.clear_degraded(self.component)
