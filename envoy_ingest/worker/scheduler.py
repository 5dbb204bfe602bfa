"""The worker: APScheduler's asyncio scheduler with one job per gateway and kind.

Jobs coalesce and never overlap themselves (``max_instances=1``); a little
jitter keeps many gateways from firing together. The two jobs of one gateway
share a lock so the weak gateway never serves two of our requests at once,
while different gateways poll independently: a failing one never stalls others.

With a shard (``--shard I/N``) the worker polls only its share of the
gateways. SIGHUP reloads the settings (:meth:`Worker.reload`): gateways are
added, removed and changed, and the schedule applied, while the sink and its
spool keep running.
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

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.clock import JumpDetector
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.envoy.tokens.claims import duration_text
from envoy_ingest.errors import SettingsError
from envoy_ingest.point import Kind
from envoy_ingest.service import metrics
from envoy_ingest.service.health import HEARTBEAT_INTERVAL, HealthState
from envoy_ingest.service.logging import redact
from envoy_ingest.service.server import start_health_server
from envoy_ingest.settings import GatewaySettings, Settings
from envoy_ingest.shard import select
from envoy_ingest.sink import build_sink
from envoy_ingest.sink.base import Sink
from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from envoy_ingest.worker.reload import gateway_changes, needs_restart

log = logging.getLogger(__name__)

ResultCallback = Callable[[CycleResult], None]
#: Reads the settings again (from the same files and environment) for a reload.
SettingsLoader = Callable[[], Settings]

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
        reload: SettingsLoader | None = None,
    ) -> None:
        self.settings = _own_share(settings)
        self.health = HealthState()
        self.sink = sink if sink is not None else build_sink(settings, self.health)
        self.tokens = TokenManager(self.settings)
        self.on_result = on_result
        self._loader = reload
        self._pollers: dict[str, GatewayPoller] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()
        for gw in self.settings.gateways:
            self._add_poller(gw)
        self._stop = asyncio.Event()

    @property
    def pollers(self) -> list[GatewayPoller]:
        return list(self._pollers.values())

    def _interval(self, job: Kind) -> float:
        s = self.settings.schedule
        return s.totals_interval if job == "totals" else s.devices_interval

    async def poll(self, poller: GatewayPoller, job: Kind) -> CycleResult:
        """One cycle of one job of one gateway, within its interval."""
        interval = self._interval(job)
        lock = self._locks.get(poller.label)
        if lock is None or self._pollers.get(poller.label) is not poller:
            return CycleResult(poller.label, job, ok=False, error="removed by a reload")
        async with lock:
            deadline = asyncio.get_running_loop().time() + interval * 0.9
            result = await poller.poll(job, deadline=deadline)
        self._record(poller, result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _record(self, poller: GatewayPoller, result: CycleResult) -> None:
        """Tell health and metrics how a poll went and what the gateway is."""
        label = poller.label
        if self._pollers.get(label) is not poller:
            return  # removed by a reload while it polled: its state is gone
        if result.ok:
            self.health.poll_succeeded(label, result.job)
            self.health.set_problem("sink", None)
        else:
            error = redact(result.error or "failed")
            self.health.poll_failed(label, result.job, error)
            if result.sink_failed:
                self.health.set_problem("sink", f"points cannot be stored: {error}")
        expires: float | None = None
        if poller.serial is not None:
            left = self.tokens.seconds_until_expiry(poller.serial)
            if left is not None:
                expires = time.time() + left
                metrics.set_token_expiry(label, expires)
        info = poller.info
        if info is not None:
            metrics.gateway_info(label, poller.serial or info.serial, info.firmware)
        self.health.gateway_facts(
            label,
            serial=poller.serial,
            firmware=info.firmware if info else None,
            token_expires=round(expires) if expires is not None else None,
        )

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
        """Poll on schedule until SIGINT/SIGTERM or :meth:`stop`; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if self._loader is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        health_server = None
        if self.settings.health.enabled:
            health_server = await start_health_server(self.settings.health.listen, self.health)
        await self.sink.start()
        await self.tokens.start()
        self._scheduler = scheduler = AsyncIOScheduler(event_loop=loop)
        scheduler.add_job(self._heartbeat, "interval", seconds=HEARTBEAT_INTERVAL, id="heartbeat")
        for index, poller in enumerate(self.pollers):
            self._add_jobs(poller, index)
        scheduler.start()
        watch = asyncio.create_task(self._watch_clock(scheduler, JumpDetector()))
        self.health.scheduler_running(True)
        log.info(
            "polling %d gateway(s)%s: totals every %gs, devices every %gs",
            len(self._pollers),
            f" (shard {self.settings.shard_spec})" if self.settings.shard else "",
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
            self._scheduler = None
            if self._loader is not None:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signal.SIGHUP)
            if health_server is not None:
                await health_server.close()
            await self._close()

    async def _heartbeat(self) -> None:
        """A job on the event loop: it runs only while the loop and the scheduler do."""
        self.health.heartbeat()

    async def _watch_clock(self, scheduler: AsyncIOScheduler, detector: JumpDetector) -> None:
        """Check for a host clock jump every few seconds (on the monotonic clock)."""
        while True:
            await asyncio.sleep(CLOCK_CHECK_SECONDS)
            jump = detector.jumped()
            if jump:
                after_clock_jump(scheduler, jump)

    # --- the gateways' jobs -----------------------------------------------------------

    def _add_poller(self, gw: GatewaySettings) -> GatewayPoller:
        poller = GatewayPoller(
            gw,
            EnvoyClient(gw, self.tokens),
            self.sink,
            state_dir=self.settings.state.directory,
            energy=self.settings.energy,
        )
        self._pollers[poller.label] = poller
        self._locks[poller.label] = asyncio.Lock()
        return poller

    def _add_jobs(self, poller: GatewayPoller, index: int) -> None:
        """Schedule the totals and devices jobs of one gateway (the ``index``-th)."""
        assert self._scheduler is not None
        jitter = self.settings.schedule.jitter
        now = datetime.now().astimezone()
        for job in ("totals", "devices"):
            interval = self._interval(job)
            self.health.register_gateway(poller.label, job, interval)
            self.health.gateway_facts(poller.label, host=poller.settings.host)
            # Start at once, staggered a little so gateways do not fire together.
            first = now + timedelta(seconds=min(index * 0.5 + random.uniform(0, 1), 10))
            self._scheduler.add_job(
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
                replace_existing=True,
            )

    def _remove_jobs(self, label: str) -> None:
        assert self._scheduler is not None
        for job in ("totals", "devices"):
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(f"{label}:{job}")

    async def _remove_gateway(self, label: str) -> None:
        """Stop polling gateway ``label``: its jobs and health entry go (its metrics
        are dropped by the caller, for all removed gateways at once)."""
        if self._scheduler is not None:
            self._remove_jobs(label)
        poller = self._pollers.pop(label)
        self.health.unregister_gateway(label)
        async with self._locks.pop(label):  # let a poll in progress finish first
            poller.flush_state()
            await poller.aclose()

    # --- reload -------------------------------------------------------------------------

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """Read the settings again and apply them (SIGHUP). A bad reload keeps the
        running settings and says why in one log line. Returns whether it applied."""
        if self._loader is None:
            return False
        async with self._reloading:
            try:
                new = _own_share(self._loader())
                tokens = TokenManager(new)  # checks pasted tokens before anything changes
            except SettingsError as exc:
                why = "; ".join(str(exc).splitlines())
                log.error("reload failed, the running settings stay: %s", why)
                return False
            old = self.settings
            restart = needs_restart(old, new)
            if restart:
                log.warning(
                    "reload: %s changed; that takes a restart (the running values stay)",
                    ", ".join(restart),
                )
            changes = gateway_changes(old.gateways, new.gateways)
            schedule_changed = new.schedule != old.schedule
            self.settings = old.model_copy(
                update={
                    "gateways": new.gateways,
                    "gateways_file": new.gateways_file,
                    "schedule": new.schedule,
                }
            )
            if changes:
                await self.tokens.aclose()
                self.tokens = tokens
                await tokens.start()
            for label in changes.removed + [gw.label for gw in changes.changed]:
                await self._remove_gateway(label)
            metrics.forget_gateways(changes.removed)
            for poller in self.pollers:
                poller.client.tokens = self.tokens
            fresh = [self._add_poller(gw) for gw in changes.added + changes.changed]
            if self._scheduler is not None:
                again = self.pollers if schedule_changed else fresh
                for index, poller in enumerate(again):
                    self._add_jobs(poller, index)
            log.info(
                "reloaded the settings: gateways %s; now %d%s",
                changes.describe(),
                len(self._pollers),
                "; new schedule" if schedule_changed else "",
            )
            return True

    async def _close(self) -> None:
        await self.tokens.aclose()
        for p in self.pollers:
            p.flush_state()
            await p.aclose()
        await self.sink.close()


def _own_share(settings: Settings) -> Settings:
    """``settings`` with only the gateways of its shard (all of them without one)."""
    if settings.shard is None:
        return settings
    return settings.model_copy(update={"gateways": select(settings.gateways, settings.shard_spec)})
