"""The worker: APScheduler's asyncio scheduler with one job per gateway and kind.

Each job runs at a stable phase of its interval (:mod:`.spread`), so a fleet's
polls are spread evenly instead of firing together, and a restart does not
burst. Jobs coalesce and never overlap themselves (``max_instances=1``); a run
that could not start in time is counted as a missed cycle. The two jobs of one
gateway share a lock so the weak gateway never serves two of our requests at
once, while different gateways poll independently: a failing one never stalls
others. All gateways share one bound on the requests in flight
(``[schedule] max_in_flight``). Nothing escapes a job: a cancelled or failed
cycle is an ordinary failed poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.envoy.transport import InFlightLimit
from envoy_ingest.service import metrics
from envoy_ingest.service.health import HealthState, start_health_server
from envoy_ingest.settings import Settings
from envoy_ingest.sink import build_sink
from envoy_ingest.sink.base import Sink
from envoy_ingest.worker.poller import CycleResult, GatewayPoller, Job
from envoy_ingest.worker.spread import next_run, start_offsets

log = logging.getLogger(__name__)

ResultCallback = Callable[[CycleResult], None]

# How long `run --once` waits by default for the sink to deliver what it holds.
ONCE_DRAIN_TIMEOUT = 30.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink if sink is not None else build_sink(settings)
        self.tokens = TokenManager(settings)
        self.on_result = on_result
        self.health = HealthState()
        self.limit = InFlightLimit(settings.schedule.max_in_flight)
        self.pollers = [
            GatewayPoller(gw, EnvoyClient(gw, self.tokens, limit=self.limit), self.sink)
            for gw in settings.gateways
        ]
        self._locks = {id(p): asyncio.Lock() for p in self.pollers}
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[object]] = set()

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

    async def run_job(self, poller: GatewayPoller, job: Job) -> CycleResult:
        """What the scheduler runs: :meth:`poll`, from which nothing escapes.

        A cancelled cycle (the worker stopping, or a cancellation that leaked
        out of a library) and any unexpected error are a failed poll.
        """
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self.poll(poller, job)
        except asyncio.CancelledError:
            if self._stop.is_set():
                log.debug("%s: %s poll stopped with the worker", poller.label, job)
            else:
                metrics.record_poll(poller.label, job, "error")
                log.error("%s: %s poll failed: cancelled", poller.label, job)
            return CycleResult(poller.label, job, ok=False, error="cancelled")
        except Exception as exc:  # a bug: say so loudly, keep polling
            metrics.record_poll(poller.label, job, "error")
            log.exception("%s: %s poll failed unexpectedly", poller.label, job)
            return CycleResult(poller.label, job, ok=False, error=f"internal error: {exc!r}")
        finally:
            if task is not None:
                self._running.discard(task)

    def add_gateway_jobs(
        self, scheduler: AsyncIOScheduler, poller: GatewayPoller, now: float
    ) -> None:
        """Schedule both jobs of one gateway at its stable phases (see :mod:`.spread`);
        each first runs within one interval of ``now`` (Unix seconds)."""
        s = self.settings.schedule
        offsets = start_offsets(poller.settings.identity, s.totals_interval, s.devices_interval)
        jobs: tuple[Job, Job] = ("totals", "devices")
        for job, offset in zip(jobs, offsets, strict=True):
            interval = self._interval(job)
            self.health.register_gateway(poller.label, job, interval)
            first = datetime.fromtimestamp(next_run(now, offset, interval)).astimezone()
            scheduler.add_job(
                self.run_job,
                "interval",
                args=[poller, job],
                seconds=interval,
                start_date=first,
                jitter=min(s.jitter, interval / 4) or None,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(interval),
                next_run_time=first,
                id=f"{poller.label}:{job}",
                name=f"{job} {poller.label}",
            )

    def _on_missed(self, event: JobEvent) -> None:
        """A run skipped (the previous one still runs) or started too late."""
        job = str(event.job_id).rpartition(":")[2]
        metrics.record_missed_cycle(job)
        reason = "still running" if event.code == EVENT_JOB_MAX_INSTANCES else "started too late"
        log.warning("%s: cycle missed (%s)", event.job_id, reason)

    async def _cancel_running(self) -> None:
        """Stop the cycles in flight (they end as failed polls) before closing clients."""
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def run_once(self, drain_timeout: float = ONCE_DRAIN_TIMEOUT) -> int:
        """Run every job once, deliver (waiting up to ``drain_timeout`` seconds), and
        return the exit status: 0 ok, 1 if a gateway failed or points stay spooled."""
        await self.tokens.start()
        try:

            async def both(p: GatewayPoller) -> list[CycleResult]:
                return [await self.run_job(p, "totals"), await self.run_job(p, "devices")]

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
        scheduler.add_listener(self._on_missed, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        now = time.time()
        for poller in self.pollers:
            self.add_gateway_jobs(scheduler, poller, now)
        scheduler.start()
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
            self.health.scheduler_running(False)
            scheduler.shutdown(wait=False)
            await self._cancel_running()
            if health_server is not None:
                await health_server.close()
            await self._close()

    async def _close(self) -> None:
        await self.tokens.aclose()
        for p in self.pollers:
            await p.aclose()
        await self.sink.close()
