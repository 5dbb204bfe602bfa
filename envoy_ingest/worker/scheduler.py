"""The worker: APScheduler's asyncio scheduler runs each gateway's two jobs.

Each job runs at a stable phase of its interval (:mod:`.spread`), so a fleet's
polls are spread evenly instead of firing together, and a restart does not
burst. The scheduler holds one job per slot of half a second, which starts the
cycles of the gateways in it (:mod:`.slots`) once in every interval (:mod:`.grid`:
jitter never accumulates). Cycles coalesce and never overlap themselves; an
interval without a cycle of a gateway is a missed cycle. The two jobs of one
gateway share a lock so the weak gateway never serves two of our requests at
once; gateways poll independently (a failing one never stalls others) under
one bound on the requests in flight (``[schedule] max_in_flight``). Nothing
escapes a job: a cancelled or failed cycle is an ordinary failed poll.

With a shard (``--shard I/N``) the worker polls only its share of the
gateways. SIGHUP reloads the settings (:meth:`Worker.reload`): gateways are
added, removed and changed, and the schedule applied, while the sink and its
spool keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.clock import JumpDetector
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.envoy.transport import InFlightLimit
from envoy_ingest.errors import SettingsError
from envoy_ingest.point import Kind
from envoy_ingest.service.health import HEARTBEAT_INTERVAL, HealthState
from envoy_ingest.service.server import start_health_server
from envoy_ingest.settings import GatewaySettings, Settings
from envoy_ingest.sink import build_sink
from envoy_ingest.sink.base import Sink
from envoy_ingest.statefile import sync_all
from envoy_ingest.telemetry import metrics
from envoy_ingest.telemetry.logging import redact
from envoy_ingest.worker.host import (
    CLOCK_CHECK_SECONDS,
    after_clock_jump,
    pace_gc,
    raise_fd_limit,
)
from envoy_ingest.worker.live import LiveReads
from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from envoy_ingest.worker.reload import gateway_changes, needs_restart, own_share
from envoy_ingest.worker.slots import Slots
from envoy_ingest.worker.spread import start_offsets

log = logging.getLogger(__name__)

ResultCallback = Callable[[CycleResult], None]
#: Reads the settings again (from the same files and environment) for a reload.
SettingsLoader = Callable[[], Settings]

# How long `run --once` waits by default for the sink to deliver what it holds.
ONCE_DRAIN_TIMEOUT = 30.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        on_result: ResultCallback | None = None,
        reload: SettingsLoader | None = None,
    ) -> None:
        self.settings = own_share(settings)
        self.health = HealthState()
        self.sink = sink if sink is not None else build_sink(settings, self.health)
        self.tokens = TokenManager(self.settings)
        self.on_result = on_result
        self.limit = InFlightLimit(self.settings.schedule.max_in_flight)
        self._loader = reload
        self._pollers: dict[str, GatewayPoller] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()
        # What _record last told health and metrics of each gateway: (its info,
        # serial, token expiry); told again only when it changes.
        self._facts: dict[str, tuple[GatewayInfo | None, str | None, int | None]] = {}
        for gw in self.settings.gateways:
            self._add_poller(gw)
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[object]] = set()
        self.live = LiveReads(self._locks.get)
        self.slots = Slots(self._slot_job, self._running, missed={"live": self.live.missed})

    @property
    def pollers(self) -> list[GatewayPoller]:
        return list(self._pollers.values())

    def _interval(self, job: Kind) -> float:
        s = self.settings.schedule
        return s.totals_interval if job == "totals" else s.devices_interval

    async def _slot_job(self, poller: GatewayPoller, job: Kind) -> object:
        """What a slot starts: a cycle, or a live read (:mod:`.live`)."""
        if job == "live":
            return await self.live.run(poller, self.on_result)
        return await self.run_job(poller, job)

    async def poll(self, poller: GatewayPoller, job: Kind) -> CycleResult:
        """One cycle of one job of one gateway, within its interval."""
        interval = self._interval(job)
        lock = self._locks.get(poller.label)
        if lock is None or self._pollers.get(poller.label) is not poller:
            return CycleResult(poller.label, job, ok=False, error="removed by a reload")
        with self.live.other(poller.label):  # live reads make way
            async with lock:
                deadline = asyncio.get_running_loop().time() + interval * 0.9
                result = await poller.poll(job, deadline=deadline)
        self._record(poller, result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    async def run_job(self, poller: GatewayPoller, job: Kind) -> CycleResult:
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

    async def _cancel_running(self) -> None:
        """Stop the cycles in flight (they end as failed polls) before closing clients."""
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

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
        info = poller.info
        serial = poller.serial
        expires: float | None = None
        if serial is not None:
            left = self.tokens.seconds_until_expiry(serial)
            if left is not None:
                expires = time.time() + left
        rounded = round(expires) if expires is not None else None
        known = self._facts.get(label)
        if known is not None and known[0] is info and known[1:] == (serial, rounded):
            return  # (a token expiry moving by less than half a second is not news)
        self._facts[label] = (info, serial, rounded)
        if expires is not None:
            metrics.set_token_expiry(label, expires)
        firmware = info.firmware if info is not None else None
        if info is not None:
            metrics.gateway_info(label, serial or info.serial, info.firmware)
        self.health.gateway_facts(label, serial=serial, firmware=firmware, token_expires=rounded)

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
        """Poll on schedule until SIGINT/SIGTERM or :meth:`stop`; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if self._loader is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        raise_fd_limit(len(self._pollers), len(self._pollers) + self.limit.limit + 100)
        health_server = None
        if self.settings.health.enabled:
            health_server = await start_health_server(self.settings.health.listen, self.health)
        await self.sink.start()
        await self.tokens.start()
        self._scheduler = scheduler = AsyncIOScheduler(event_loop=loop)
        scheduler.add_listener(self.slots.on_missed, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        scheduler.add_job(self._heartbeat, "interval", seconds=HEARTBEAT_INTERVAL, id="heartbeat")
        now = time.time()
        for poller in self.pollers:
            self.add_gateway_jobs(scheduler, poller, now)
        scheduler.start()
        watch = asyncio.create_task(self._watch_clock(scheduler, JumpDetector()))
        self.health.scheduler_running(True)
        log.info(
            "polling %d gateway(s)%s: totals every %gs, devices every %gs%s",
            len(self._pollers),
            f" (shard {self.settings.shard_spec})" if self.settings.shard else "",
            self.settings.schedule.totals_interval,
            self.settings.schedule.devices_interval,
            self.live.describe(self.pollers, self.settings.schedule),
        )
        restore_gc = pace_gc()
        try:
            await self._stop.wait()
        finally:
            restore_gc()
            log.info("stopping")
            watch.cancel()
            self.health.scheduler_running(False)
            scheduler.shutdown(wait=False)
            await self._cancel_running()
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
                self.slots.clock_jumped()
                if jump < 0:
                    self.slots.all_due()

    # --- the gateways' jobs -----------------------------------------------------------

    def _add_poller(self, gw: GatewaySettings) -> GatewayPoller:
        poller = GatewayPoller(
            gw,
            EnvoyClient(gw, self.tokens, limit=self.limit),
            self.sink,
            state_dir=self.settings.state.directory,
            energy=self.settings.energy,
        )
        self._pollers[poller.label] = poller
        self._locks[poller.label] = asyncio.Lock()
        return poller

    def add_gateway_jobs(
        self, scheduler: AsyncIOScheduler, poller: GatewayPoller, now: float
    ) -> None:
        """Schedule both jobs of one gateway at its stable phases (see :mod:`.spread`),
        in their slots (:mod:`.slots`): the totals job first runs within two intervals
        of ``now`` (Unix seconds), the devices job within one."""
        s = self.settings.schedule
        offsets = start_offsets(poller.settings.identity, s.totals_interval, s.devices_interval)
        jobs: tuple[Kind, Kind] = ("totals", "devices")
        self.live.schedule(scheduler, self.slots, poller, s, offsets, now)
        for job, offset, ramp in zip(jobs, offsets, (2, 1), strict=True):
            interval = self._interval(job)
            self.health.register_gateway(poller.label, job, interval)
            self.health.gateway_facts(poller.label, host=poller.settings.host)
            self.slots.add(
                scheduler,
                poller,
                job,
                offset,
                interval,
                now=now,
                ramp=ramp,
                jitter=min(s.jitter, interval / 4),
            )

    async def _remove_gateway(self, label: str) -> None:
        """Stop polling gateway ``label``: its jobs and health entry go (its metrics
        are dropped by the caller, for all removed gateways at once)."""
        if self._scheduler is not None:
            self.slots.remove(self._scheduler, label)
        self._facts.pop(label, None)
        self.live.remove(label)
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
                new = own_share(self._loader())
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
            if new.schedule.max_in_flight != self.limit.limit:
                self.limit = InFlightLimit(new.schedule.max_in_flight)
            for poller in self.pollers:
                poller.client.tokens = self.tokens
                poller.client.limit = self.limit
            fresh = [self._add_poller(gw) for gw in changes.added + changes.changed]
            if self._scheduler is not None:
                again = self.pollers if schedule_changed else fresh
                if schedule_changed:
                    self.slots.clear(self._scheduler)
                now = time.time()
                for poller in again:
                    self.add_gateway_jobs(self._scheduler, poller, now)
            log.info(
                "reloaded the settings: gateways %s; now %d%s",
                changes.describe(),
                len(self._pollers),
                "; new schedule" if schedule_changed else "",
            )
            return True

    async def _close(self) -> None:
        await self.tokens.aclose()
        self.flush_states()
        for p in self.pollers:
            await p.aclose()
        await self.sink.close()

    def flush_states(self) -> None:
        """Write every gateway's energy state at stop: no fsync per file (thousands
        of them would outlast systemd's stop timeout), then one sync for all."""
        written = [p.flush_state(durable=False) for p in self.pollers]
        if any(written):
            sync_all()
