"""One gateway's polling: connect, probe once, then fetch the planned endpoints,
normalize them and hand the points to the sink.

The poller holds the only state that crosses cycles: the gateway's identity,
its capabilities (probed once; again when the firmware changes) and the latest
answer of the few endpoints that one job's normalizer reads from the other job
(``Capabilities.totals_extra_paths`` and ``devices_extra_paths``: battery counts
and capacities, IQ battery power), reduced to what that normalizer reads
(``normalize/kept.py``). Nothing else is kept between cycles: in a fleet of
thousands, every cached answer is paid per gateway.

The devices job also reads the settings (``Capabilities.settings_paths``:
storage settings, dry contact settings) at its first cycle and then once an
hour; of them the dry contacts' settings are kept for the cycles between.
Optional endpoints that answer 404 (or 401 / 403 while the cycle's others
answer) are learned (``Capabilities.absent``) and not asked again until the
firmware changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envoy_ingest import normalize
from envoy_ingest.energy.stage import EVENT, EnergyStage
from envoy_ingest.energy.store import EnergyStore, state_path
from envoy_ingest.envoy.capabilities import (
    API_V1_PRODUCTION,
    METERS_READINGS,
    OPTIONAL_PATHS,
    PRODUCTION_JSON,
    SETTINGS_INTERVAL,
    Capabilities,
    detect,
    followup_paths,
    probe_paths,
)
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.errors import EnvoyIngestError, GatewayError, SinkError
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.normalize.kept import kept
from envoy_ingest.point import Kind, Point
from envoy_ingest.settings import EnergySettings
from envoy_ingest.sink.base import Sink
from envoy_ingest.telemetry import metrics
from envoy_ingest.timecheck import FLOOR, implausible, latest

log = logging.getLogger(__name__)


# /info is re-read this often even when all goes well, to notice a firmware
# update that happened without a failed poll (one cheap request an hour).
INFO_RECHECK_SECONDS = 3600.0
# Capabilities decided from a degraded probe (nothing usable, or the all-zero
# answers of a 3.x gateway just after a reboot) are probed again after this.
REPROBE_SECONDS = 3600.0


@dataclass(slots=True)
class CycleResult:
    """What one poll of one gateway produced (for the live summary and --once)."""

    gateway: str
    job: Kind
    ok: bool
    points: list[Point] = field(default_factory=list)
    error: str | None = None
    sink_failed: bool = False  # the gateway answered, but the sink refused the points
    answered_in: float | None = None  # a live read: seconds the gateway took to answer


class GatewayPoller:
    def __init__(
        self,
        settings: GatewaySettings,
        client: EnvoyClient,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        steady: Callable[[], float] = time.monotonic,
        state_dir: Path | None = None,
        energy: EnergySettings | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sink = sink
        self.clock = clock  # the host's wall time: only a fallback for point times
        self.steady = steady  # intervals: a host clock jump never shortens or stretches them
        self.implausible_dropped = 0
        self._implausible: dict[str, int] = {}  # job -> points dropped in the current episode
        # Counters and days (energy/): needs the serial, so made at the first poll.
        self.state_dir = state_dir
        self.energy_settings = energy or EnergySettings()
        self.energy: EnergyStage | None = None
        self._events: list[
            Point
        ] = []  # firmware changes, re-probes, reboots: sent with the next points
        self._unavailable = False
        self.info: GatewayInfo | None = None
        self.caps: Capabilities | None = None
        self.latest: dict[str, Any] = {}
        self._info_checked = 0.0
        self._reconnect = True
        self._probed_at = 0.0
        self._degraded = False
        self._no_devices_on: str | None = None  # firmware that serves no device endpoint
        # Optional endpoints that answered 404 / 401 / 403, and on which firmware.
        self._absent: frozenset[str] = frozenset()
        self._absent_on: str | None = None
        self._settings_read: float | None = None  # steady time of the last settings read

    @property
    def label(self) -> str:
        return self.settings.label

    @property
    def serial(self) -> str | None:
        if self.settings.serial:
            return self.settings.serial
        return self.info.serial if self.info else None

    async def ensure_ready(self, deadline: float | None = None) -> Capabilities:
        """Connect (``/info``) and probe when needed; re-probe when the firmware changed."""
        now = self.steady()
        if self._reconnect or self.info is None or now - self._info_checked > INFO_RECHECK_SECONDS:
            info = await self.client.connect(deadline=deadline)
            self._info_checked = now
            self._reconnect = False
            if self.info is not None and info.software != self.info.software:
                log.warning(
                    "%s: firmware changed from %s to %s; probing capabilities again",
                    self.label,
                    self.info.firmware,
                    info.firmware,
                )
                self._event(
                    "firmware", f"firmware changed from {self.info.firmware} to {info.firmware}"
                )
                self.caps = None
                self.latest.clear()
            self.info = info
        if self.caps is not None and self._degraded and now - self._probed_at > REPROBE_SECONDS:
            self.caps = None  # decided while the gateway said little: look again
        if self.caps is None:
            assert self.info is not None
            probe = await self.client.fetch(probe_paths(self.info), deadline=deadline)
            if PRODUCTION_JSON not in probe and API_V1_PRODUCTION not in probe:
                # Typically right after a reboot (503): decide nothing yet, probe next cycle.
                detail = "; ".join(f"{p}: {r}" for p, r in self.client.last_errors.items())
                raise GatewayError(f"the gateway does not serve production data yet ({detail})")
            followup = followup_paths(self.info, probe)
            if followup:  # a System Controller: is a generator configured? (1 request)
                probe.update(await self.client.fetch(followup, deadline=deadline))
            reprobe = self._probed_at > 0
            self.caps = detect(self.info, probe)
            if reprobe:
                self._event("reprobe", f"capabilities probed again: {self.caps.describe()}")
            self._probed_at = now
            # All-zero /api/v1/production is what 3.x says right after a reboot:
            # such a plan is looked at again within the hour.
            self._degraded = self.caps.production_source is None or self.caps.api_v1_zero
            if self._no_devices_on == self.info.software:  # learned before: still none
                self.caps = replace(self.caps, device_endpoints=False)
            if self._absent_on == self.info.software:
                self.caps = replace(self.caps, absent=self._absent)
            self._settings_read = None  # a new plan reads its settings at once
            self._remember(probe, self.caps)
            log.info("%s: %s", self.label, self.caps.describe())
        return self.caps

    def _remember(self, snap: Mapping[str, Any], caps: Capabilities) -> None:
        """Keep the answers that the other job's normalizer also reads, and the
        hourly settings the devices job reads every cycle; of them only what is
        read (:func:`normalize.kept.kept`)."""
        for path in (*caps.totals_extra_paths, *caps.devices_extra_paths):
            if path in snap:
                self.latest[path] = kept(path, snap[path])
        for path in caps.settings_kept_paths:
            if path in snap:
                self.latest[path] = kept(path, snap[path])

    def _settings_due(self, caps: Capabilities) -> tuple[str, ...]:
        """The settings paths when their hourly read is due (at the first devices
        cycle, then once :data:`SETTINGS_INTERVAL` has passed since the last)."""
        if not caps.settings_paths:
            return ()
        last = self._settings_read
        if last is not None and self.steady() - last < SETTINGS_INTERVAL:
            return ()
        return caps.settings_paths

    def _learn_absent(self, caps: Capabilities, answered: bool) -> Capabilities:
        """Optional endpoints that answered 404 (or 401 / 403 while others of the
        same fetch answered, so the credentials are good) are not asked again
        until the firmware changes. Said once each."""
        refused = self.client.refused if answered else set()
        learned = (self.client.not_found | refused) & OPTIONAL_PATHS
        learned -= caps.absent
        if not learned:
            return caps
        assert self.info is not None
        for path in sorted(learned):
            why = "404" if path in self.client.not_found else "refused"
            log.info("%s: %s answered %s: not asked again", self.label, path, why)
        self._absent = caps.absent | learned
        self._absent_on = self.info.software
        self.caps = replace(caps, absent=self._absent)
        return self.caps

    def _no_device_endpoints(self, caps: Capabilities, paths: Sequence[str]) -> Capabilities:
        """Every device endpoint answered 404: the gateway has none. Said once; the
        devices job asks for nothing more (until the firmware changes)."""
        assert self.info is not None
        log.warning(
            "%s: the gateway serves no device endpoint (%s answered 404): no microinverter "
            "or battery points from it; the devices job stops asking",
            self.label,
            ", ".join(paths),
        )
        self._no_devices_on = self.info.software
        self.caps = replace(caps, device_endpoints=False)
        return self.caps

    def _event(self, kind: str, text: str) -> None:
        self._events.append(Point(EVENT, {"text": text}, int(self.clock()), {"kind": kind}))

    def _energy(self, points: list[Point], extra: Mapping[str, str]) -> list[Point]:
        """Counters corrected, day fields chosen, events added (energy/); every
        point made once, with the gateway's tags ``extra`` (:meth:`_gateway_tags`)."""
        if self.state_dir is None:
            return self._tag(points, extra)
        if self.energy is None:
            serial = self.serial or "unknown"
            store = EnergyStore(
                state_path(self.state_dir, serial),
                flush_interval=self.energy_settings.state_flush_interval,
            )
            self.energy = EnergyStage(
                store,
                self.settings.zone,
                label=self.label,
                raw_fields=self.energy_settings.raw_counters,
            )
        storage_ct = self.caps is not None and self.caps.storage_ct
        corrected, events = self.energy.apply(points, extra, storage_ct=storage_ct)
        return corrected + events

    def flush_state(self, *, durable: bool = True) -> bool:
        """Write what the energy stage holds (at shutdown); True if a file was
        written. See :meth:`EnergyStore.flush` for ``durable``."""
        if self.energy is not None:
            return self.energy.store.flush(durable=durable)
        return False

    def _gateway_tags(self) -> dict[str, str]:
        """The ``gateway`` and ``site`` tags the worker adds to every point."""
        extra = {"gateway": self.serial or "unknown"}
        if self.settings.name is not None:
            extra["site"] = self.settings.name
        return extra

    def _tag(self, points: Sequence[Point], extra: Mapping[str, str]) -> list[Point]:
        """Each point with the gateway's tags ``extra`` (``Point.with_tags``, the
        merged tags built once per point rather than through keywords)."""
        return [Point(p.measurement, p.fields, p.time, {**p.tags, **extra}) for p in points]

    async def poll(self, job: Kind, deadline: float | None = None) -> CycleResult:
        """Run one cycle of ``job``; never raises for gateway trouble."""
        started = self.clock()
        try:
            caps = await self.ensure_ready(deadline)
            paths = caps.totals_paths if job == "totals" else caps.devices_paths
            extra = caps.totals_extra_paths if job == "totals" else caps.devices_extra_paths
            # The other job's answers this one also reads; fetched here only until
            # that job has answered once (the first cycle after start).
            missing = tuple(p for p in extra if p not in self.latest and p not in paths)
            hourly = self._settings_due(caps) if job == "devices" else ()
            snap = await self.client.fetch(paths + hourly + missing, deadline=deadline)
            errors = dict(self.client.last_errors)
            if job == "devices" and paths and set(paths) <= self.client.not_found:
                caps = self._no_device_endpoints(caps, paths)
                paths = caps.devices_paths
                errors = {p: r for p, r in errors.items() if p not in self.client.not_found}
            caps = self._learn_absent(caps, answered=bool(snap))
            errors = {p: r for p, r in errors.items() if p not in caps.absent}
            if hourly and all(p in snap or p in caps.absent for p in hourly):
                self._settings_read = self.steady()
            if job == "devices":
                extra += caps.settings_kept_paths
            if paths and not snap:
                detail = "; ".join(f"{p}: {r}" for p, r in errors.items())
                raise GatewayError(f"no endpoint answered ({detail})")
            for path, reason in errors.items():
                log.warning("%s: %s failed: %s", self.label, path, reason)
            self._remember(snap, caps)
            merged = {p: self.latest[p] for p in extra if p in self.latest}
            merged.update(snap)
            normalizer = normalize.totals if job == "totals" else normalize.devices
            points = normalizer(merged, caps, int(self.clock()))
        except EnvoyIngestError as exc:
            # Read /info again next time (the gateway may have rebooted into new
            # firmware), unless the cycle only ran out of time: then the extra
            # request would add load where the load (ours, or the gateway's) is
            # the trouble, and an hour later /info is read anyway.
            self._reconnect = not _out_of_time(deadline)
            metrics.record_poll(self.label, job, "error")
            metrics.last_error(self.label, self.clock())
            log.error("%s: %s poll failed: %s", self.label, job, exc)
            self._seen_unavailable(exc)
            return CycleResult(self.label, job, ok=False, error=str(exc))
        self._unavailable = False
        # Impossible times go before the energy stage sees them (no false "new day").
        events, self._events = self._events, []
        checked = self._plausible(job, [*points, *events])
        if len(checked) < len(points) + len(events):
            believable = {id(p) for p in checked}
            points = [p for p in points if id(p) in believable]
            events = [e for e in events if id(e) in believable]
        gateway_tags = self._gateway_tags()
        tagged = self._energy(points, gateway_tags)
        if events:
            tagged += self._tag(events, gateway_tags)
        if tagged:
            try:
                self.sink.submit(tagged)
            except SinkError as exc:  # e.g. the disk is full: these points are lost
                metrics.record_poll(self.label, job, "error")
                metrics.last_error(self.label, self.clock())
                log.error("%s: %s points could not be stored: %s", self.label, job, exc)
                return CycleResult(self.label, job, ok=False, error=str(exc), sink_failed=True)
            metrics.record_points(tagged)
        metrics.record_poll(self.label, job, "ok")
        metrics.last_success(self.label, self.clock())
        log.debug(
            "%s: %s poll wrote %d points in %.2f s",
            self.label,
            job,
            len(tagged),
            self.clock() - started,
        )
        return CycleResult(self.label, job, ok=True, points=tagged)

    async def poll_live(self, deadline: float | None = None) -> CycleResult:
        """One live read: ``/ivp/meters/readings`` alone -> ``enphase_live``
        (:func:`normalize.live`). Never connects or probes (the totals job does)
        and never raises for gateway trouble."""
        caps = self.caps
        if caps is None:
            return CycleResult(self.label, "live", ok=False, error="not probed yet")
        started = self.steady()
        try:
            body = await self.client.get(METERS_READINGS, deadline=deadline)
        except EnvoyIngestError as exc:
            log.debug("%s: live read failed: %s", self.label, exc)
            took = self.steady() - started
            return CycleResult(self.label, "live", ok=False, error=str(exc), answered_in=took)
        took = self.steady() - started
        now = int(self.clock())
        points = self._plausible("live", normalize.live({METERS_READINGS: body}, caps, now))
        tagged = self._tag(points, self._gateway_tags())
        if tagged:
            try:
                self.sink.submit(tagged)
            except SinkError as exc:
                log.error("%s: live points could not be stored: %s", self.label, exc)
                return CycleResult(
                    self.label, "live", ok=False, error=str(exc), sink_failed=True, answered_in=took
                )
            metrics.record_points(tagged)
        return CycleResult(self.label, "live", ok=True, points=tagged, answered_in=took)

    def _plausible(self, job: Kind, points: list[Point]) -> list[Point]:
        """Drop (and count) points whose time cannot be true; say so once per episode."""
        host_now, gateway_now = self.clock(), self.client.gateway_now
        last = latest(host_now, gateway_now)
        keep: list[Point] = []
        why: dict[str, list[Point]] = {}
        for p in points:
            if FLOOR <= p.time <= last:  # what implausible() accepts, in one comparison
                keep.append(p)
                continue
            reason = implausible(p.time, host_now, gateway_now)
            if reason is None:
                keep.append(p)
            else:
                why.setdefault(reason, []).append(p)
        dropped = sum(len(ps) for ps in why.values())
        if dropped:
            metrics.record_dropped(dropped, "implausible_time")
            self.implausible_dropped += dropped
            if not self._implausible.get(job):
                reason, example = next(iter(why.items()))
                log.warning(
                    "%s: %d %s points have an impossible time (%s: %s); they are not written, "
                    'and counted (envoy_ingest_dropped_points_total{reason="implausible_time"}) '
                    "until the times are right again. Check the gateway's and the host's clock",
                    self.label,
                    dropped,
                    job,
                    reason,
                    datetime.fromtimestamp(example[0].time, UTC).isoformat(),
                )
            self._implausible[job] = self._implausible.get(job, 0) + dropped
        elif self._implausible.get(job) and keep:
            log.warning(
                "%s: %s report times are plausible again; %d points with impossible times "
                "were not written",
                self.label,
                job,
                self._implausible.pop(job),
            )
        return keep

    def _seen_unavailable(self, exc: EnvoyIngestError) -> None:
        """A gateway that answered before and now answers only 503 is rebooting
        (newer firmware does that for a few minutes): one event per episode."""
        reasons = list(self.client.last_errors.values()) or [str(exc)]
        if self._probed_at > 0 and not self._unavailable and all("503" in r for r in reasons):
            self._unavailable = True
            self._event("reboot", "the gateway answers 503 (service unavailable): it is rebooting")

    async def aclose(self) -> None:
        await self.client.aclose()


def _out_of_time(deadline: float | None) -> bool:
    return deadline is not None and asyncio.get_running_loop().time() >= deadline
