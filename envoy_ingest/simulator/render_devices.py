"""Devices in the JSON shapes of real firmware: /api/v1/production/inverters,
/inventory.json, /ivp/ensemble/{inventory,power,secctrl}.

Shapes copied from the recorded gateways (8.3.5169 / 8.3.5433 inventory,
8.2.4382 ensemble); device data is in render_device_data.py. Microinverters
report on a 5-minute cycle each (offset per device) and stop overnight, when the
gateway shows them not communicating, as real ones do.
"""

from __future__ import annotations

import math
from typing import Any

from envoy_ingest.simulator.model import REPORT, InverterReport, Model, Reading
from envoy_ingest.simulator.render_backup import enpower
from envoy_ingest.simulator.render_totals import (
    battery_state,
)
from envoy_ingest.simulator.site import Site, unit_hash
from envoy_ingest.simulator.sky import sin_elevation

PCU_CHANNEL = 1627390225
ACB_CHANNEL = 1795162385
_NIGHT_STATUS = ["envoy.cond_flags.pcu_ctrl.dc-pwr-low", "envoy.cond_flags.obs_strs.failure"]


def ambient_c(site: Site, t: float) -> float:
    return 14 + 12 * max(0.0, sin_elevation(site, t))


def battery_report_time(site: Site, index: int, t: float) -> int:
    offset = int(unit_hash(site.serial, "battery", index) * REPORT)
    return offset + REPORT * math.floor((t - offset) / REPORT)


def battery_temp(site: Site, r: Reading) -> float:
    return ambient_c(site, r.t) * 0.5 + 12 + abs(r.battery_w) / max(1, site.battery_count) / 120


# --- /api/v1/production/inverters ------------------------------------------------


def api_v1_inverters(model: Model, t: float) -> list[dict[str, Any]]:
    site = model.site
    with_type = site.version >= (4,)
    out: list[dict[str, Any]] = []
    for rep in model.inverters(t):
        entry: dict[str, Any] = {"serialNumber": rep.serial, "lastReportDate": rep.report_time}
        if with_type:
            entry["devType"] = 1
        entry["lastReportWatts"] = round(rep.watts)
        entry["maxReportWatts"] = round(rep.max_watts)
        out.append(entry)
    if site.battery_kind == "acb" and site.family == "modern":
        n = site.battery_count
        for i, serial in enumerate(site.battery_serials):
            when = battery_report_time(site, i, t)
            watts = model.reading(when).battery_w / n
            out.append(
                {
                    "serialNumber": serial,
                    "lastReportDate": when,
                    "devType": 11,
                    "lastReportWatts": abs(round(watts)),
                    "maxReportWatts": round(model.max_battery(when) / n),
                }
            )
    return out


# --- /inventory.json -----------------------------------------------------------------


def _common(site: Site, serial: str, part: str, last: int, dev_type: int) -> dict[str, Any]:
    installed = str(site.install_time)
    return {
        "part_num": part,
        "installed": installed,
        "serial_num": serial,
        "device_status": ["envoy.global.ok"],
        "last_rpt_date": str(last),
        "admin_state": 2 if site.family == "modern" else 1,
        "dev_type": dev_type,
        "created_date": installed,
        "img_load_date": str(site.install_time + 30 * 86400),
    }


def _pcu(site: Site, index: int, rep: InverterReport) -> dict[str, Any]:
    modern = site.family == "modern"
    part = "800-01736-r02" if modern else "800-00631-r02"
    doc = _common(site, rep.serial, part, rep.report_time, 1)
    if not rep.current:
        doc["device_status"] = list(_NIGHT_STATUS)
    doc |= {
        "img_pnum_running": "520-00082-r01-v04.30.32",
        "ptpn": "540-00134-r01-v04.30.10",
        "chaneid": PCU_CHANNEL + 256 * index,
        "device_control": [{"gficlearset": False}],
        "producing": rep.current and rep.watts > 0,
        "communicating": rep.current,
        "provisioned": True,
        "operating": True,
    }
    if modern:
        doc["phase"] = "ph-" + "abc"[site.inverter_phases[index]]
    return doc


def _acb(site: Site, model: Model, index: int, t: float) -> dict[str, Any]:
    when = battery_report_time(site, index, t)
    r = model.reading(when)
    doc = _common(site, site.battery_serials[index], "800-00930-r03", when, 11)
    return doc | {
        "img_pnum_running": "520-00092-r01-v02.13.02",
        "ptpn": "540-00155-r01-v02.13.01",
        "chaneid": ACB_CHANNEL + 256 * index,
        "device_control": [{"gficlearset": False}],
        "producing": True,
        "communicating": True,
        "provisioned": True,
        "operating": True,
        "sleep_enabled": False,
        "percentFull": round(r.soc),
        "maxCellTemp": round(battery_temp(site, r)),
        "sleep_min_soc": 25,
        "sleep_max_soc": 30,
        "charge_status": battery_state(r.battery_w, r.soc),
    }


def inventory(model: Model, t: float) -> list[dict[str, Any]]:
    site = model.site
    pcus = [_pcu(site, i, rep) for i, rep in enumerate(model.inverters(t))]
    acbs = (
        [_acb(site, model, i, t) for i in range(site.battery_count)]
        if site.battery_kind == "acb"
        else []
    )
    groups: list[dict[str, Any]] = [
        {"type": "PCU", "devices": pcus},
        {"type": "ACB", "devices": acbs},
        {"type": "NSRB", "devices": []},
    ]
    if site.family == "modern":
        groups.append({"type": "ESUB", "devices": []})
    return groups


# --- /ivp/ensemble ---------------------------------------------------------------


def ensemble_inventory(model: Model, t: float) -> list[dict[str, Any]]:
    site = model.site
    if site.battery_kind != "iq":
        return []
    r = model.reading(t)
    enc_grid = "grid-tied" if r.grid_connected else "off-grid"
    temp = battery_temp(site, r)
    devices = []
    for i, serial in enumerate(site.battery_serials):
        devices.append(
            {
                "part_num": "830-01760-r42",
                "serial_num": serial,
                "installed": site.install_time,
                "device_status": ["envoy.global.ok", "prop.done"],
                "last_rpt_date": battery_report_time(site, i, t),
                "admin_state": 6,
                "admin_state_str": "ENCHG_STATE_READY",
                "created_date": site.install_time,
                "img_load_date": site.install_time,
                "img_pnum_running": "2.6.7854_rel/22.33",
                "bmu_fw_version": "2.1.38",
                "communicating": True,
                "sleep_enabled": False,
                "percentFull": round(r.soc),
                "temperature": round(temp),
                "maxCellTemp": round(temp + 1),
                "reported_enc_grid_state": enc_grid,
                "comm_level_sub_ghz": 4,
                "comm_level_2_4_ghz": 4,
                "led_status": 17,
                "dc_switch_off": False,
                "encharge_rev": 2,
                "encharge_capacity": round(site.battery_capacity_wh),
                "phase": "ph-" + "abc"[i % site.phases],
                "der_index": i + 1,
            }
        )
    groups = [{"type": "ENCHARGE", "devices": devices}]
    if site.system_controller:
        groups.append(enpower(model, t))
    return groups


def ensemble_power(model: Model, t: float) -> dict[str, Any]:
    site = model.site
    if site.battery_kind != "iq":
        return {"devices:": []}
    r = model.reading(t)
    mw = round(r.battery_w / site.battery_count * 1000)
    devices = [
        {
            "serial_num": serial,
            "real_power_mw": mw,
            "apparent_power_mva": abs(mw),
            "soc": round(r.soc),
        }
        for serial in site.battery_serials
    ]
    return {"devices:": devices}


def secctrl(model: Model, t: float) -> dict[str, Any]:
    site = model.site
    r = model.reading(t)
    iq = site.battery_kind == "iq"
    acb = site.battery_kind == "acb"
    cap = round(site.storage_wh)
    reserve = round(site.battery_reserve_pct) if iq else 0
    doc: dict[str, Any] = {"shutdown": False}
    for suffix in ("", "_phaseb", "_phasec"):
        doc |= {
            f"freq_bias_hz{suffix}": 0.0,
            f"voltage_bias_v{suffix}": 0.0,
            f"freq_bias_hz_q8{suffix}": 0,
            f"voltage_bias_v_q5{suffix}": 0,
        }
    return doc | {
        "configured_backup_soc": reserve,
        "adjusted_backup_soc": reserve,
        "agg_soc": round(r.soc) if cap else 0,
        "Max_energy": cap,
        "ENC_agg_soc": round(r.soc) if iq else 0,
        "ENC_agg_soh": 100 if iq else 0,
        "ENC_agg_backup_energy": round(cap * reserve / 100) if iq else 0,
        "ENC_agg_avail_energy": round(r.stored_wh) if iq else 0,
        "Enc_commissioned_capacity": cap if iq else 0,
        "Enc_max_available_capacity": cap if iq else 0,
        "ACB_agg_soc": round(r.soc) if acb else 0,
        "ACB_agg_energy": round(r.stored_wh) if acb else 0,
        "VLS_Limit": 5,
        "soc_rec_enabled": True,
        "soc_recovery_entry": 0,
        "soc_recovery_exit": 10,
        "Commission_in_progress": False,
        "ESS_in_progress": False,
    }
