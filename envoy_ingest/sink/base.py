"""The sink interface.

The worker hands every batch of points to :meth:`Sink.submit`, which must make
them durable (or print them) quickly and without network I/O, so that a slow or
absent InfluxDB never delays polling. Delivery to a remote server happens in
:meth:`Sink.start`'s background task and in :meth:`Sink.drain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from envoy_ingest.point import Point


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What :meth:`Sink.drain` achieved: ``pending`` points are still waiting."""

    delivered: int = 0
    pending: int = 0
    dead_lettered: int = 0
    dropped: int = 0

    @property
    def complete(self) -> bool:
        return self.pending == 0


class StatusBoard(Protocol):
    """Where a sink reports a degraded state (the worker's health state)."""

    def set_degraded(self, component: str, reason: str) -> None: ...

    def clear_degraded(self, component: str) -> None: ...


class Sink(Protocol):
    name: str

    def submit(self, points: Sequence[Point]) -> None:
        """Accept one batch durably. Called from the event loop: keep it fast."""

    async def start(self) -> None:
        """Start background delivery, if the sink has any."""

    async def drain(self, timeout: float) -> DeliveryReport:  # noqa: ASYNC109
        """Deliver what is waiting, for up to ``timeout`` seconds (``run --once``)."""

    async def close(self) -> None:
        """Stop background work and release resources. Accepted points stay durable."""


class ImmediateSink:
    """For sinks that write at :meth:`submit`: nothing to start, drain or close."""

    async def start(self) -> None:
        return None

    async def drain(self, timeout: float) -> DeliveryReport:  # noqa: ASYNC109
        return DeliveryReport()

    async def close(self) -> None:
        return None


class FanoutSink:
    """Submits every batch to several sinks (e.g. InfluxDB and stdout)."""

    name = "fanout"

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def submit(self, points: Sequence[Point]) -> None:
        for sink in self.sinks:
            sink.submit(points)

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    async def drain(self, timeout: float) -> DeliveryReport:  # noqa: ASYNC109
        total = DeliveryReport()
        for sink in self.sinks:
            r = await sink.drain(timeout)
            total = DeliveryReport(
                total.delivered + r.delivered,
                total.pending + r.pending,
                total.dead_lettered + r.dead_lettered,
                total.dropped + r.dropped,
            )
        return total

    async def close(self) -> None:
        for sink in self.sinks:
            await sink.close()
