"""What a gateway can tell us, decided once, and the requests that follow from it.

Pure decision logic, no I/O: the worker fetches :func:`probe_paths` once at
start (and again when the firmware changes), hands the answers to
:func:`detect`, and from then on polls only :attr:`Capabilities.totals_paths`
(every 60 s) and :attr:`Capabilities.devices_paths` (every 300 s).

The gateway is a weak device (``/production.json`` takes 5 to 11 s on 8.x), so
the totals job makes one request a minute (two with IQ batteries, whose power
it also reads); what else a total needs (battery count and capacities) comes
from the latest answers of the devices job, which the worker merges into the
totals snapshot (:attr:`Capabilities.totals_extra_paths`), and the other way
round (:attr:`Capabilities.devices_extra_paths`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.envoy.probe_answers import (
    device_data_usable as device_data_usable,  # re-exported: normalize/inverters.py
)
from envoy_ingest.envoy.probe_answers import (
    enabled_meters,
    encharge_count,
    ensemble_groups,
    entry,
    generator_configured,
    phase_count,
)
from envoy_ingest.gateway_json import acb_storage, active, dicts, label, mapping, number

Snapshot = Mapping[str, Any]
"""Request path (exactly as requested) -> parsed JSON, or ``str`` for a non-JSON body.
Endpoints that failed (401, 404, timeout) are absent."""

BatteryKind = Literal["acb", "encharge"]
ProductionSource = Literal["eim", "inverters", "api_v1"]

PRODUCTION_JSON = "/production.json?details=1"
API_V1_PRODUCTION = "/api/v1/production"
API_V1_INVERTERS = "/api/v1/production/inverters"
INVENTORY = "/inventory.json?deleted=1"
METERS = "/ivp/meters"
METERS_READINGS = "/ivp/meters/readings"
ENSEMBLE_INVENTORY = "/ivp/ensemble/inventory"
ENSEMBLE_POWER = "/ivp/ensemble/power"
DEVICE_DATA = "/ivp/pdm/device_data"
#: The battery system in aggregate: available energy, capacity, backup reserve.
SECCTRL = "/ivp/ensemble/secctrl"
#: The IQ System Controller's dry contacts (status) and their settings.
DRY_CONTACTS = "/ivp/ensemble/dry_contacts"
DRY_CONTACT_SETTINGS = "/ivp/ss/dry_contact_settings"
#: A standby generator on the System Controller: its state, and (probe) its configuration.
GENERATOR = "/ivp/ensemble/generator"
GEN_CONFIG = "/ivp/ss/gen_config"
#: Storage mode, reserve and charge-from-grid (``storage_settings``), with the tariff.
TARIFF = "/admin/lib/tariff"

#: Endpoints that a gateway may lack or refuse although its firmware and devices
#: suggest them: one that answers 404, 401 or 403 is learned by the worker
#: (:attr:`Capabilities.absent`) and not asked again until the firmware changes.
OPTIONAL_PATHS = frozenset({SECCTRL, DRY_CONTACTS, DRY_CONTACT_SETTINGS, GENERATOR, TARIFF})
#: How often the settings (:attr:`Capabilities.settings_paths`) are read, in seconds.
SETTINGS_INTERVAL = 3600.0

#: Firmware from which an ``imeter`` gateway without enabled CTs stops updating
#: ``/api/v1/production``.
API_V1_STALE_FROM = (8, 2, 4264)
#: Firmware from which ``/ivp/ensemble/*`` exists (IQ batteries).
ENSEMBLE_FROM = (5,)
#: Firmware from which ``/ivp/pdm/device_data`` may exist (about 8.2; probing
#: from 8.0 costs one 404 at start on the builds that lack it).
DEVICE_DATA_FROM = (8,)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What :func:`detect` found. Frozen: a new probe makes a new one."""

    firmware: tuple[int, ...] = ()
    imeter: bool | None = None
    #: ``/production.json?details=1`` answers JSON (3.9.36 answers HTML, some 401).
    production_json: bool = False
    #: ``/api/v1/production`` answers JSON with its ``wattHours*`` keys.
    api_v1: bool = False
    #: ``imeter`` without enabled CTs on >= 8.2.4264: ``/api/v1/production`` stalls.
    api_v1_stale: bool = False
    #: All three ``wattHours*`` of ``/api/v1/production`` were 0 at probe time.
    api_v1_zero: bool = False
    #: Where production comes from: the production CT (``eim`` entry), the
    #: ``inverters`` entry of production.json, or ``/api/v1/production``.
    production_source: ProductionSource | None = None
    production_ct: bool = False
    consumption_ct: bool = False
    #: ``(eid, measurementType)`` of every enabled CT in ``/ivp/meters``, in its
    #: order (``production``, ``net-consumption``, ``storage``, ``backfeed``, ...):
    #: ``/ivp/meters/readings`` is matched to them by ``eid``, never by position
    #: (8.3 lists CTs it has not enabled).
    cts: tuple[tuple[str, str], ...] = ()
    #: Phases metered: from ``/ivp/meters`` (``phaseCount``), else the number of
    #: non-zero ``lines`` in production.json; ``None`` when neither says.
    phase_count: int | None = None
    acb_count: int = 0
    encharge_count: int = 0
    #: ``/ivp/ensemble/inventory`` lists an IQ System Controller (``ENPOWER``), an
    #: IQ Meter Collar (``COLLAR``), an IQ Combiner controller (``C6 COMBINER
    #: CONTROLLER``), each with at least one device.
    system_controller: bool = False
    collar: bool = False
    combiner: bool = False
    #: A generator is configured (``/ivp/ss/gen_config`` answers its settings;
    #: asked only where a System Controller is: :func:`followup_paths`).
    generator: bool = False
    #: ``/ivp/pdm/device_data`` lists the microinverters (see :func:`device_data_usable`).
    device_data: bool = False
    #: The gateway serves its device endpoints. Learned by the worker, not the
    #: probe: False once every path of the devices plan answered 404 (4.2.27 serves
    #: none), which empties the plan.
    device_endpoints: bool = True
    #: Optional endpoints (:data:`OPTIONAL_PATHS`) learned by the worker to answer
    #: 404, 401 or 403: left out of every plan.
    absent: frozenset[str] = frozenset()

    def describe(self) -> str:
        """One line for logs and ``discover``: what was found and what will be polled."""
        ct = [
            k
            for k, on in (
                ("production", self.production_ct),
                ("consumption", self.consumption_ct),
                ("storage", self.storage_ct),
            )
            if on
        ]
        parts = [
            f"metering: {', '.join(ct) + ' CTs' if ct else 'no CTs'}"
            + (f" ({self.phase_count} phase)" if self.phase_count else ""),
            f"production from {self.production_source or 'nothing usable yet'}",
        ]
        if self.acb_count:
            parts.append(f"{self.acb_count} AC batteries")
        if self.encharge_count:
            parts.append(f"{self.encharge_count} IQ batteries")
        for name, on in (
            ("IQ System Controller", self.system_controller),
            ("IQ Meter Collar", self.collar),
            ("IQ Combiner controller", self.combiner),
            ("generator", self.generator),
            ("device data", self.device_data),
        ):
            if on:
                parts.append(name)
        devices = " ".join(self.devices_paths) or "none (the gateway serves no device endpoint)"
        plan = f"totals: {' '.join(self.totals_paths)}; devices: {devices}"
        if self.settings_paths:
            plan += f"; hourly: {' '.join(self.settings_paths)}"
        parts.append(plan)
        return "; ".join(parts)

    @property
    def storage_ct_eids(self) -> tuple[str, ...]:
        """``eid`` of the enabled storage CT(s)."""
        return tuple(eid for eid, kind in self.cts if kind == "storage")

    @property
    def storage_ct(self) -> bool:
        return bool(self.storage_ct_eids)

    @property
    def grid_ct(self) -> bool:
        """An enabled ``net-consumption`` CT: grid import and export are measured."""
        return any(kind == "net-consumption" for _, kind in self.cts)

    @property
    def metered(self) -> bool:
        """At least one CT measures (production or consumption)."""
        return self.production_ct or self.consumption_ct

    @property
    def batteries(self) -> frozenset[BatteryKind]:
        kinds: set[BatteryKind] = set()
        if self.acb_count:
            kinds.add("acb")
        if self.encharge_count:
            kinds.add("encharge")
        return frozenset(kinds)

    @property
    def totals_paths(self) -> tuple[str, ...]:
        """What the 60 s job fetches: one request, and a second for IQ battery
        power, which swings too fast to be read only every 5 minutes."""
        if self.production_source == "api_v1" or not self.production_json:
            # Also when nothing was usable at probe time: the endpoint every firmware has.
            main = API_V1_PRODUCTION
        else:
            main = PRODUCTION_JSON
        return (main, ENSEMBLE_POWER) if self.encharge_count else (main,)

    @property
    def devices_paths(self) -> tuple[str, ...]:
        """What the 300 s job fetches (nothing where the gateway serves none of it)."""
        if not self.device_endpoints:
            return ()
        paths: list[str] = []
        # Microinverter watts come from device_data where usable; ACB watts only
        # from /api/v1/production/inverters (devType 11).
        if not self.device_data or self.acb_count:
            paths.append(API_V1_INVERTERS)
        paths.append(INVENTORY)  # provisioned / communicating / producing, ACB charge
        if self.device_data:
            paths.append(DEVICE_DATA)
        if self.encharge_count or self.ensemble_controller:
            # IQ batteries (power: see devices_extra_paths); the System Controller's
            # grid relay, the collar's grid state: +12 an hour where no IQ battery.
            paths.append(ENSEMBLE_INVENTORY)
        if self.cts:
            # Every CT's lifetime energies (grid import / export on the
            # net-consumption CT) and the storage CT: +12 requests an hour.
            paths.append(METERS_READINGS)
        if self.batteries and self.firmware >= ENSEMBLE_FROM:
            paths.append(SECCTRL)  # the battery system's energy and reserve: +12
        if self.system_controller:
            paths.append(DRY_CONTACTS)  # +12
        if self.generator:
            paths.append(GENERATOR)  # +12
        return tuple(p for p in paths if p not in self.absent)

    @property
    def ensemble_controller(self) -> bool:
        """A System Controller, Meter Collar or Combiner controller: grid state."""
        return self.system_controller or self.collar or self.combiner

    @property
    def settings_paths(self) -> tuple[str, ...]:
        """What the devices job also fetches once an hour (and at its first cycle):
        the storage settings on battery sites, the dry contacts' settings where a
        System Controller is. Nothing where the gateway serves no device endpoint."""
        if not self.device_endpoints:
            return ()
        paths: list[str] = []
        if self.batteries:
            paths.append(TARIFF)
        if self.system_controller:
            paths.append(DRY_CONTACT_SETTINGS)
        return tuple(p for p in paths if p not in self.absent)

    @property
    def settings_kept_paths(self) -> tuple[str, ...]:
        """Hourly answers that ``normalize.devices`` reads every cycle (the dry
        contacts' load names and thresholds), kept by the worker between reads."""
        return tuple(p for p in self.settings_paths if p == DRY_CONTACT_SETTINGS)

    @property
    def devices_extra_paths(self) -> tuple[str, ...]:
        """Totals-job answers that ``normalize.devices`` also reads when the worker
        merges the latest of them into the devices snapshot: per-battery IQ power."""
        return (ENSEMBLE_POWER,) if self.encharge_count else ()

    @property
    def totals_extra_paths(self) -> tuple[str, ...]:
        """Devices-job answers that ``normalize.totals`` also reads when the worker
        merges the latest of them into the totals snapshot: IQ battery count and
        capacities; the microinverter count where production.json is not polled.
        (``/ivp/meters/readings`` is not among them: each CT reading is written
        once, by the devices job that fetched it, at its own ``timestamp``.)"""
        extra: list[str] = []
        if self.production_source == "api_v1" and self.device_endpoints:
            extra.append(API_V1_INVERTERS)
        if self.encharge_count:
            extra.append(ENSEMBLE_INVENTORY)
        return tuple(extra)


def probe_paths(info: GatewayInfo) -> list[str]:
    """What to fetch once at start: at most five requests (one more where
    :func:`followup_paths` says so)."""
    paths = [PRODUCTION_JSON, API_V1_PRODUCTION]
    if info.imeter is not False:  # older firmware does not say, and may have CTs (4.2.33)
        paths.append(METERS)
    if info.at_least(*ENSEMBLE_FROM):
        paths.append(ENSEMBLE_INVENTORY)
    if info.at_least(*DEVICE_DATA_FROM):
        paths.append(DEVICE_DATA)
    return paths


def followup_paths(info: GatewayInfo, probe: Snapshot) -> list[str]:
    """What the answers to :func:`probe_paths` make worth one more request at start:
    the generator's configuration, only where an IQ System Controller is (a
    generator connects to it). Its ``/ivp/ensemble/generator`` cannot tell: it
    reports ``present: 1`` on sites without one (7.3.517, 8.2.127)."""
    del info  # the ensemble inventory was probed only where the firmware has it
    if "ENPOWER" in ensemble_groups(probe.get(ENSEMBLE_INVENTORY)):
        return [GEN_CONFIG]
    return []


def detect(info: GatewayInfo, probe: Snapshot) -> Capabilities:
    """Decide what the gateway offers from the answers to :func:`probe_paths`."""
    production = mapping(probe.get(PRODUCTION_JSON))
    production_json = production is not None and isinstance(production.get("production"), list)
    pj: Mapping[str, Any] = production if production is not None and production_json else {}

    enabled = enabled_meters(probe.get(METERS))
    types = {label(m.get("measurementType")) for m in enabled}
    eim_active = active(entry(pj.get("production"), "eim"))
    production_ct = "production" in types or eim_active
    consumption_ct = bool(types & {"net-consumption", "total-consumption"}) or any(
        active(e) for e in dicts(pj.get("consumption"))
    )
    cts = tuple(
        (str(m["eid"]), kind)
        for m in enabled
        if (kind := label(m.get("measurementType"))) and m.get("eid") is not None
    )

    api = mapping(probe.get(API_V1_PRODUCTION)) or {}
    watt_hours = [v for k, v in api.items() if str(k).startswith("wattHours")]
    api_v1 = bool(watt_hours)
    api_v1_zero = api_v1 and all(number(v) == 0 for v in watt_hours)
    api_v1_stale = bool(info.imeter) and info.at_least(*API_V1_STALE_FROM) and not enabled

    acb = acb_storage(pj)
    acb_count = acb[1] if acb else 0
    source: ProductionSource | None
    if production_json and (production_ct or consumption_ct or acb_count):
        # production.json is polled anyway: one request gives everything.
        source = "eim" if production_ct else "inverters"
    elif api_v1 and not api_v1_stale and not api_v1_zero:
        source = "api_v1"  # the only source of today / 7 days without a production CT
    elif production_json:
        source = "inverters"
    elif api_v1:
        source = "api_v1"  # stale or zero, but nothing else answers (3.x right after boot)
    else:
        source = None

    groups = ensemble_groups(probe.get(ENSEMBLE_INVENTORY))
    system_controller = "ENPOWER" in groups
    return Capabilities(
        firmware=info.version,
        imeter=info.imeter,
        production_json=production_json,
        api_v1=api_v1,
        api_v1_stale=api_v1_stale,
        api_v1_zero=api_v1_zero,
        production_source=source,
        production_ct=production_ct,
        consumption_ct=consumption_ct,
        cts=cts,
        phase_count=phase_count(enabled, pj),
        acb_count=acb_count,
        encharge_count=encharge_count(probe.get(ENSEMBLE_INVENTORY)),
        system_controller=system_controller,
        collar="COLLAR" in groups,
        combiner="C6 COMBINER CONTROLLER" in groups,
        generator=system_controller and generator_configured(probe.get(GEN_CONFIG)),
        device_data=device_data_usable(probe.get(DEVICE_DATA)),
    )


def requests_per_hour(
    caps: Capabilities, totals_interval: float = 60, devices_interval: float = 300
) -> float:
    """Requests one gateway receives per hour under the request plan (the hourly
    settings read included)."""
    return (
        len(caps.totals_paths) * 3600 / totals_interval
        + len(caps.devices_paths) * 3600 / devices_interval
        + len(caps.settings_paths) * 3600 / SETTINGS_INTERVAL
    )
