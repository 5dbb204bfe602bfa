"""Our values agree with pyenphase 4.2.0 (the library behind Home Assistant's
Enphase integration) on every recorded gateway, to within its rounding.

pyenphase is run whole (probe, every updater, its data validation) with its
HTTP layer replaced by the recorded files, so it sees exactly what a gateway
answered, status codes included. Our side is the worker's path: probe,
capabilities, the request plan, the normalizers.

Grid import and export are the net-consumption CT's ``energy_delivered`` /
``energy_received`` (``ctmeters["net-consumption"]``), and every enabled CT's
energies per phase agree with ``ctmeters_phases`` (single phase: with the CT's
total, pyenphase having no phases there).

Where we legitimately differ, the difference is named in ``LEFT_OUT`` and
docs/schema.md:

- 8.2.4264 (metered, CTs disabled): pyenphase takes production today / 7 days
  from the ``eim`` entry although its ``activeCount`` is 0; a CT that does not
  measure reports noise (70 Wh today against 32 MWh lifetime). We leave them out.
- 8.2.4345: an ``ENCHARGE`` group with no devices gives pyenphase an Encharge
  aggregate of zeros; a site without batteries gets no battery fields from us.
- Inverter times: ours is the latest of the watts report and the inventory's
  ``last_rpt_date``, so it is never earlier than pyenphase's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from pyenphase import Envoy
from pyenphase.exceptions import EnvoyAuthenticationRequired
from pyenphase.firmware import EnvoyFirmware
from pyenphase.models.envoy import EnvoyData

from envoy_ingest import normalize
from envoy_ingest.normalize.ct_readings import FLOWS
from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures

NOW = 1_700_000_000

#: (set, field) that pyenphase reports and we leave out, with the reason above.
LEFT_OUT = {
    ("8.2.4264_metered_noct", "production_today_wh"),
    ("8.2.4264_metered_noct", "production_7d_wh"),
}


class _Response:
    """The part of an aiohttp response pyenphase reads."""

    def __init__(self, status: int, body: bytes, url: str) -> None:
        self.status, self._body, self.url = status, body, url
        self.headers: dict[str, str] = {}

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _RecordedFirmware(EnvoyFirmware):
    def __init__(self, client: aiohttp.ClientSession, set_dir: Path) -> None:
        super().__init__(client, "recorded.invalid")
        self._set_dir = set_dir

    # pyenphase wraps the original in tenacity's retry decorator; a plain
    # coroutine method is what it calls.
    async def _get_info(self) -> tuple[int, bytes]:  # type: ignore[override]
        return 200, (self._set_dir / "info").read_bytes()


class _RecordedEnvoy(Envoy):
    """pyenphase's Envoy answered by a recorded set instead of the network."""

    def __init__(self, set_dir: Path) -> None:
        super().__init__("recorded.invalid", v2_acb_mode=False)
        self._set_dir = set_dir
        self._firmware = _RecordedFirmware(self._client, set_dir)

    async def _request(
        self, endpoint: str, data: dict[str, Any] | None = None, method: str | None = None
    ) -> aiohttp.ClientResponse:
        file = fx.fixture_file(self._set_dir, endpoint)
        if file is None:
            return cast(aiohttp.ClientResponse, _Response(404, b"", endpoint))
        status = fx.status(file)
        if status in (401, 403):
            raise EnvoyAuthenticationRequired(f"{endpoint}: {status}")
        return cast(aiohttp.ClientResponse, _Response(status, file.read_bytes(), endpoint))


async def _pyenphase(name: str) -> EnvoyData:
    envoy = _RecordedEnvoy(fx.set_dir(name))
    try:
        await envoy.setup()
        return await envoy.update()
    finally:
        await envoy.close()


def _ours(name: str) -> tuple[list[Point], list[Point]]:
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    return (
        normalize.totals(fx.totals_snapshot(d, caps), caps, NOW),
        normalize.devices(fx.devices_snapshot(d, caps), caps, NOW),
    )


def _close(ours: Any, theirs: Any, tolerance: float = 0.5) -> bool:
    """pyenphase rounds to whole W / Wh (Python's round: at most 0.5 away)."""
    return isinstance(ours, float) and abs(ours - theirs) <= tolerance


_ENERGY = (
    ("_w", "watts_now"),
    ("_today_wh", "watt_hours_today"),
    ("_7d_wh", "watt_hours_last_7_days"),
    ("_lifetime_wh", "watt_hours_lifetime"),
)
_PHASE_FIELDS = (
    ("power_w", "watts_now"),
    ("today_wh", "watt_hours_today"),
    ("last_7d_wh", "watt_hours_last_7_days"),
    ("lifetime_wh", "watt_hours_lifetime"),
)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_totals_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    totals, _ = _ours(name)
    system = next((p.fields for p in totals if p.measurement == "enphase_system"), {})
    # The 8.3.5433 repair adds two numbers pyenphase rounded separately.
    tolerance = 1.0 if name.startswith("8.3.5433") else 0.5
    for prefix, theirs in (
        ("production", data.system_production),
        ("consumption", data.system_consumption),
        ("net", data.system_net_consumption),
    ):
        if theirs is None:
            assert not any(k.startswith(prefix + "_") for k in system), prefix
            continue
        for suffix, attr in _ENERGY:
            field = prefix + suffix
            if (name, field) in LEFT_OUT:
                assert field not in system
                continue
            assert _close(system.get(field), getattr(theirs, attr), tolerance), field


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_phases_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    totals, _ = _ours(name)
    meters = {
        (p.tags["flow"], p.tags["phase"]): p.fields
        for p in totals
        if p.measurement == "enphase_meter"
    }
    tolerance = 1.0 if name.startswith("8.3.5433") else 0.5
    for flow, phases, aggregate in (
        ("production", data.system_production_phases, data.system_production),
        ("consumption", data.system_consumption_phases, data.system_consumption),
        ("net", data.system_net_consumption_phases, data.system_net_consumption),
    ):
        ours = {phase: fields for (f, phase), fields in meters.items() if f == flow}
        if phases:
            assert set(ours) == {str(k).lower() for k in phases}, flow
            compare = {str(k).lower(): v for k, v in phases.items()}
        elif ours:
            # pyenphase has no per-phase data for a single phase: our L1 is its total.
            assert set(ours) == {"l1"} and aggregate is not None
            compare = {"l1": aggregate}
        else:
            continue
        for phase, theirs in compare.items():
            for field, attr in _PHASE_FIELDS:
                assert _close(ours[phase][field], getattr(theirs, attr), tolerance), (
                    flow,
                    phase,
                    field,
                )


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_storage_ct_agrees(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    _, devices = _ours(name)
    ours = {p.tags["phase"]: p.fields for p in devices if p.tags.get("flow") == "storage"}
    theirs = {str(k).lower(): v for k, v in (data.ctmeters_phases.get("storage") or {}).items()}
    assert set(ours) == set(theirs)
    for phase, meter in theirs.items():
        assert meter is not None
        assert _close(ours[phase]["power_w"], meter.active_power)
        assert ours[phase]["voltage_v"] == meter.voltage
        assert ours[phase]["current_a"] == meter.current
        assert ours[phase]["power_factor"] == meter.power_factor
        assert ours[phase]["frequency_hz"] == meter.frequency


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_grid_import_export_agree(name: str) -> None:
    """Grid import / export are the net-consumption CT's energies as pyenphase
    reads them; a site without a net-consumption CT writes neither."""
    require_fixtures()
    data = await _pyenphase(name)
    _, devices = _ours(name)
    grid = [
        p
        for p in devices
        if p.measurement == "enphase_system" and "grid_import_lifetime_wh" in p.fields
    ]
    net = data.ctmeters.get("net-consumption")
    if net is None:
        assert not [p for p in devices if "grid_import_lifetime_wh" in p.fields]
        assert not [p for p in devices if "grid_export_lifetime_wh" in p.fields]
        return
    (point,) = grid
    assert set(point.fields) == {"grid_import_lifetime_wh", "grid_export_lifetime_wh"}
    assert _close(point.fields["grid_import_lifetime_wh"], net.energy_delivered)
    assert _close(point.fields["grid_export_lifetime_wh"], net.energy_received)
    assert point.time == net.timestamp


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_ct_energies_agree(name: str) -> None:
    """Every enabled CT's delivered / received energy per phase, as pyenphase reads
    it (single phase: pyenphase has only the CT's total, which is our L1)."""
    require_fixtures()
    data = await _pyenphase(name)
    _, devices = _ours(name)
    ours: dict[str, dict[str, Mapping[str, Any]]] = {}
    for p in devices:
        if p.measurement == "enphase_meter":
            ours.setdefault(p.tags["flow"], {})[p.tags["phase"]] = p.fields
    theirs: dict[str, dict[str, Any]] = {}
    for kind, meter in data.ctmeters.items():
        phases = data.ctmeters_phases.get(kind)
        flow = FLOWS.get(str(kind), str(kind))
        theirs[flow] = {str(k).lower(): v for k, v in phases.items()} if phases else {"l1": meter}
    assert set(ours) == set(theirs)
    for flow, phases in theirs.items():
        assert set(ours[flow]) == set(phases), flow
        for phase, meter in phases.items():
            fields = ours[flow][phase]
            assert meter is not None, (flow, phase)
            assert _close(fields["delivered_lifetime_wh"], meter.energy_delivered), (flow, phase)
            assert _close(fields["received_lifetime_wh"], meter.energy_received), (flow, phase)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_inverters_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    _, devices = _ours(name)
    ours = {
        p.tags["serial"]: p
        for p in devices
        if p.measurement == "enphase_inverter" and "power_w" in p.fields
    }
    theirs = data.inverters or {}
    assert set(ours) == set(theirs)
    optional = (
        ("dc_voltage_v", "dc_voltage"),
        ("dc_current_a", "dc_current"),
        ("ac_voltage_v", "ac_voltage"),
        ("ac_current_a", "ac_current"),
        ("frequency_hz", "ac_frequency"),
        ("temperature_c", "temperature"),
    )
    for serial, inverter in theirs.items():
        point = ours[serial]
        assert point.fields["power_w"] == inverter.last_report_watts
        assert point.fields["max_power_w"] == inverter.max_report_watts
        assert point.time >= inverter.last_report_date
        for field, attr in optional:
            assert point.fields.get(field) == getattr(inverter, attr), field
        if inverter.lifetime_energy is None:
            assert "lifetime_wh" not in point.fields
        else:
            assert _close(point.fields["lifetime_wh"], inverter.lifetime_energy)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_batteries_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    totals, devices = _ours(name)
    system = next((p.fields for p in totals if p.measurement == "enphase_system"), {})
    batteries = {
        (p.tags["type"], p.tags["serial"]): p.fields
        for p in devices
        if p.measurement == "enphase_battery"
    }

    encharge = data.encharge_inventory or {}
    power = data.encharge_power or {}
    for serial, battery in encharge.items():
        fields = batteries["encharge", serial]
        assert fields["soc_pct"] == battery.percent_full
        assert fields["temperature_c"] == battery.temperature
        assert fields["max_temperature_c"] == battery.max_cell_temp
        assert fields["communicating"] is battery.communicating
        assert fields["power_w"] == power[serial].real_power_mw / 1000
    for serial, acb in (data.acb_inventory or {}).items():
        fields = batteries["acb", serial]
        assert fields["power_w"] == acb.last_report_watts
        assert fields["max_power_w"] == acb.max_report_watts
        assert fields["soc_pct"] == acb.percent_full
        assert fields["max_temperature_c"] == acb.max_cell_temp
        assert (fields["communicating"], fields["producing"]) == (acb.communicating, acb.producing)
        assert fields["state"] == acb.charge_status

    acb_power = data.acb_power
    if acb_power is None and not encharge:
        assert not any(k.startswith("batter") for k in system)
        if data.encharge_aggregate is not None:  # an ENCHARGE group without devices
            assert data.encharge_aggregate.max_available_capacity == 0
        return
    assert system["batteries"] == (acb_power.batteries if acb_power else 0) + len(encharge)
    watts = (acb_power.power if acb_power else 0) + sum(
        p.real_power_mw for p in power.values()
    ) / 1000
    assert system["battery_w"] == watts
    if acb_power and encharge:
        assert data.battery_aggregate is not None
        assert _close(system["battery_soc_pct"], data.battery_aggregate.state_of_charge)
    elif acb_power:
        assert system["battery_soc_pct"] == acb_power.state_of_charge
        assert system["battery_state"] == acb_power.state
    else:
        assert data.encharge_aggregate is not None
        assert _close(system["battery_soc_pct"], data.encharge_aggregate.state_of_charge)
