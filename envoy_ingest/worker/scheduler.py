"""The worker: APScheduler's asyncio scheduler with one job per gateway and kind.

Jobs coalesce and never overlap themselves (``max_instances=1``); a little
jitter keeps many gateways from firing together. The two jobs of one gateway
share a lock so the weak gateway never serves two of our requests at once,
while different gateways poll independently: a failing one never stalls others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.clock import JumpDetector
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.token_info import duration_text
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.service import metrics
from envoy_ingest.service.health import HealthState, start_health_server
from envoy_ingest.settings import Settings
from envoy_ingest.sink import build_sink
from envoy_ingest.sink.base import Sink
from envoy_ingest.worker.poller import CycleResult, GatewayPoller, Job

log = logging.getLogger(__name__)

ResultCallback = Callable[[CycleResult], None]

# How often the worker looks for a jump of the host clock (seconds, monotonic).
CLOCK_CHECK_SECONDS = 5.0

# How long `run --once` waits by default for the sink to deliver what it holds.
ONCE_DRAIN_TIMEOUT = 30.0


def after_clock_jump(scheduler: AsyncIOScheduler, jump: float) -> None:
    """The host clock jumped by ``jump`` seconds: keep polling at the same pace.

    APScheduler's interval trigger runs on wall time. After a forward jump it
    runs each job once (``coalesce``, ``misfire_grace_time`` of one interval)
    and goes on: no burst. After a backward jump it would wait until its old
    next run time came round again, i.e. stop polling for as long as the clock
    went back; so every job is rescheduled to run now, and the trigger counts
    its intervals from there."""
    log.warning(
        "the host clock jumped %s by %s%s",
        "forward" if jump > 0 else "back",
        duration_text(abs(jump)),
        "; rescheduled every job to run now" if jump < 0 else "; polling goes on as before",
    )
    if jump < 0:
        now = datetime.now().astimezone()
        for job in scheduler.get_jobs():
            job.modify(next_run_time=now)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.settings = settings
        self.health = HealthState()
        self.sink = sink if sink is not None else build_sink(settings, self.health)
        self.tokens = TokenManager(settings)
        self.on_result = on_result
        self.pollers = [
            GatewayPoller(gw, EnvoyClient(gw, self.tokens), self.sink) for gw in settings.gateways
        ]
        self._locks = {id(p): asyncio.Lock() for p in self.pollers}
        self._stop = asyncio.Event()

    def _interval(self, job: Job) -> float:
        s = self.settings.schedule
        return s.totals_interval if job == "totals" else s.devices_interval

    async def poll(self, poller: GatewayPoller, job: Job) -> CycleResult:
        """One cycle of one job of one gateway, within its interval."""
        interval = self._interval(job)
        async with self._locks[id(poller)]:
            deadline = asyncio.get_running_loop().time() + interval * 0.9
            result = await poller.poll(job, deadline=deadline)
        if result.ok:
            self.health.poll_succeeded(poller.label, job)
        if poller.serial is not None:
            left = self.tokens.seconds_until_expiry(poller.serial)
            if left is not None:
                metrics.set_token_expiry(poller.label, time.time() + left)
        if self.on_result is not None:
            self.on_result(result)
        return result

    async def run_once(self, drain_timeout: float = ONCE_DRAIN_TIMEOUT) -> int:
        """Run every job once, deliver (waiting up to ``drain_timeout`` seconds), and
        return the exit status: 0 ok, 1 if a gateway failed or points stay spooled."""
        await self.tokens.start()
        try:

            async def both(p: GatewayPoller) -> list[CycleResult]:
                return [await self.poll(p, "totals"), await self.poll(p, "devices")]

            results = await asyncio.gather(*(both(p) for p in self.pollers))
            report = await self.sink.drain(drain_timeout)
        finally:
            await self._close()
        failed = [r for rs in results for r in rs if not r.ok]
        if report.pending:
            log.error(
                "%d points could not be delivered yet; they stay spooled for the next run",
                report.pending,
            )
        return 1 if failed or report.pending else 0

    def stop(self) -> None:
        self._stop.set()

    async def run_forever(self) -> None:
        """Poll on schedule until SIGINT/SIGTERM or :meth:`stop`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        health_server = None
        if self.settings.health.enabled:
            health_server = await start_health_server(self.settings.health.listen, self.health)
        await self.sink.start()
        await self.tokens.start()
        scheduler = AsyncIOScheduler(event_loop=loop)
        jitter = self.settings.schedule.jitter
        now = datetime.now().astimezone()
        for index, poller in enumerate(self.pollers):
            for job in ("totals", "devices"):
                interval = self._interval(job)
                self.health.register_gateway(poller.label, job, interval)
                # Start at once, staggered a little so gateways do not fire together.
                first = now + timedelta(seconds=min(index * 0.5 + random.uniform(0, 1), 10))
                scheduler.add_job(
                    self.poll,
                    "interval",
                    args=[poller, job],
                    seconds=interval,
                    jitter=min(jitter, interval / 4) or None,
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=int(interval),
                    next_run_time=first,
                    id=f"{poller.label}:{job}",
                    name=f"{job} {poller.label}",
                )
        scheduler.start()
        watch = asyncio.create_task(self._watch_clock(scheduler, JumpDetector()))
        self.health.scheduler_running(True)
        log.info(
            "polling %d gateway(s): totals every %gs, devices every %gs",
            len(self.pollers),
            self.settings.schedule.totals_interval,
            self.settings.schedule.devices_interval,
        )
        try:
            await self._stop.wait()
        finally:
            log.info("stopping")
            watch.cancel()
            self.health.scheduler_running(False)
            scheduler.shutdown(wait=False)
            if health_server is not None:
                await health_server.close()
            await self._close()

    async def _watch_clock(self, scheduler: AsyncIOScheduler, detector: JumpDetector) -> None:
        """Check for a host clock jump every few seconds (on the monotonic clock)."""
        while True:
            await asyncio.sleep(CLOCK_CHECK_SECONDS)
            jump = detector.jumped()
            if jump:
                after_clock_jump(scheduler, jump)

    async def _close(self) -> None:
        await self.tokens.aclose()
        for p in self.pollers:
            await p.aclose()
        await self.sink.close()
