"""``/ivp/pdm/device_data`` (firmware 8.2 and later) in the shape of 8.2.4345
(microinverters and meters) and 8.3.5169 (AC batteries): one object per device
keyed by its id, plus ``deviceCount`` and ``deviceDataLimit``."""

from __future__ import annotations

import math
from typing import Any

from envoy_ingest.simulator.model import REPORT, InverterReport, Model
from envoy_ingest.simulator.render_devices import (
    ACB_CHANNEL,
    PCU_CHANNEL,
    ambient_c,
    battery_report_time,
    battery_temp,
)
from envoy_ingest.simulator.render_totals import (
    NET_EID,
    PRODUCTION_EID,
    Flows,
    frequency,
    voltage,
)
from envoy_ingest.simulator.site import Site, unit_hash

PCU_EID = 553648384
ACB_EID = 721420544


def _pcu_data(site: Site, index: int, rep: InverterReport, t: float) -> dict[str, Any]:
    chan = PCU_CHANNEL + 256 * index
    volts = voltage(site, rep.report_time, site.inverter_phases[index] % site.phases, 0.5)
    dc_volts = 31.5 + 2 * unit_hash(rep.serial, "dc") if rep.watts > 0 else 0.0
    reading = {
        "eid": chan,
        "interval_type": 0,
        "endDate": rep.report_time,
        "duration": REPORT,
        "flags": 0,
        "flags_hex": "0x0000000000000000",
        "joulesProduced": round(rep.watts * REPORT),
        "acVoltageINmV": round(volts * 1000),
        "acFrequencyINmHz": round(frequency(site, rep.report_time) * 1000),
        "dcVoltageINmV": round(dc_volts * 1000),
        "dcCurrentINmA": round(rep.watts / 0.965 / dc_volts * 1000) if dc_volts else 0,
        "channelTemp": round(ambient_c(site, rep.report_time) + 0.06 * rep.watts),
        "pwrConvErrSecs": 0,
        "pwrConvMaxErrCycles": 0,
        "joulesUsed": 0,
        "leadingVArs": 0,
        "laggingVArs": 38,
        "acCurrentInmA": round(rep.watts / volts * 1000),
        "l1NAcVoltageInmV": 0,
        "l2NAcVoltageInmV": 0,
        "l3NAcVoltageInmV": 0,
        "rssi": 110,
        "issi": 60 + round(20 * unit_hash(rep.serial, "issi")),
    }
    return {
        "devName": "pcu",
        "sn": rep.serial,
        "active": True,
        "modGone": False,
        "channels": [
            {
                "chanEid": chan,
                "created": rep.report_time,
                "wattHours": {
                    "today": round(rep.today_wh),
                    "yesterday": round(rep.yesterday_wh),
                    "week": round(rep.week_wh),
                },
                "watts": {"now": round(rep.watts), "nowUsed": 0, "max": round(rep.max_watts)},
                "lastReading": reading,
                "lifetime": {
                    "createdTime": site.install_time,
                    "duration": round(t) - site.install_time,
                    "joulesProduced": round(rep.lifetime_wh * 3600),
                },
            }
        ],
    }


def _eim_data(model: Model, eid: int, t: float) -> dict[str, Any]:
    site = model.site
    end = 900 * math.floor(t / 900)
    r = model.reading(end)
    flows = Flows(site, r)
    flow = (flows.production if eid == PRODUCTION_EID else flows.consumption)(0)
    today = r.prod_today if eid == PRODUCTION_EID else r.cons_today
    week = r.prod_7d if eid == PRODUCTION_EID else r.cons_7d
    watts = r.production_w if eid == PRODUCTION_EID else r.consumption_w
    lifetime = r.prod_lifetime if eid == PRODUCTION_EID else r.cons_lifetime
    cum = {
        "wh_dlvd_cum": round(lifetime),
        "varh_lead_cum": round(flow.lead_lifetime * site.phases),
        "varh_lag_cum": round(flow.lag_lifetime * site.phases),
        "vah_cum": round(flow.vah_lifetime * site.phases),
    }
    reading = {
        "eid": 1778385169 + (eid - PRODUCTION_EID),
        "interval_type": 0,
        "endDate": end,
        "duration": 900,
        "curr_w": round(watts),
        **cum,
        "rms_mvolt": round(flow.volts * 1000),
        "rms_mamp": round(flow.amps * site.phases * 1000),
        "freq_mhz": round(frequency(site, end) * 1000),
        "wh_pos": round(r.import_lifetime if eid == NET_EID else lifetime),
        "wh_neg": round(r.export_lifetime if eid == NET_EID else 0),
    }
    channels: list[dict[str, Any]] = [
        {
            "chanEid": reading["eid"],
            "created": end,
            "wattHours": {
                "today": round(today),
                "yesterday": 0,
                "week": round(week),
            },
            "watts": {"now": round(watts), "nowUsed": 0, "max": round(watts)},
            "lastReading": reading,
            "lifetime": {
                "createdTime": site.install_time,
                "duration": end - site.install_time,
                **cum,
            },
        }
    ]
    for ch in (1, 2):
        channels.append(
            {
                "chanEid": reading["eid"] + ch,
                "created": 0,
                "wattHours": {"today": 0, "yesterday": 0, "week": 0},
                "watts": {"now": 0, "nowUsed": 0, "max": 0},
                "lastReading": {},
                "lifetime": {},
            }
        )
    suffix = "EIM1" if eid == PRODUCTION_EID else "EIM2"
    return {
        "devName": "eim",
        "sn": site.serial + suffix,
        "active": True,
        "modGone": True,
        "channels": channels,
    }


def device_data(model: Model, t: float) -> dict[str, Any]:
    site = model.site
    doc: dict[str, Any] = {}
    for i, rep in enumerate(model.inverters(t)):
        doc[str(PCU_EID + 256 * i)] = _pcu_data(site, i, rep, t)
    if site.metered:
        doc[str(PRODUCTION_EID)] = _eim_data(model, PRODUCTION_EID, t)
        doc[str(NET_EID)] = _eim_data(model, NET_EID, t)
    if site.battery_kind == "acb":
        for i, serial in enumerate(site.battery_serials):
            doc[str(ACB_EID + 256 * i)] = _acb_data(model, i, serial, t)
    doc["deviceCount"] = len(doc)
    doc["deviceDataLimit"] = 50
    return doc


def _acb_data(model: Model, index: int, serial: str, t: float) -> dict[str, Any]:
    site = model.site
    n = site.battery_count
    when = battery_report_time(site, index, t)
    r = model.reading(when)
    watts = r.battery_w / n
    chan = ACB_CHANNEL + 256 * index
    temp = round(battery_temp(site, r))
    dc_volts = 20.0 + 4.0 * r.soc / 100
    cycles_j = site.battery_capacity_wh * 0.8 * 3600 * (when - site.install_time) / 86400
    return {
        "devName": "acb",
        "sn": serial,
        "active": True,
        "modGone": False,
        "channels": [
            {
                "chanEid": chan,
                "created": when,
                "wattHours": {"today": round(r.stored_wh / n), "yesterday": 0, "week": 0},
                "watts": {
                    "now": abs(round(watts)),
                    "nowUsed": 1,
                    "max": round(model.max_battery(when) / n),
                },
                "lastReading": {
                    "eid": chan,
                    "interval_type": 0,
                    "endDate": when,
                    "duration": REPORT,
                    "flags": 3149824,
                    "flags_hex": "0x0000000000301000",
                    "joulesProduced": round(max(watts, 0) * REPORT),
                    "acVoltageINmV": round(voltage(site, when, 0, 0.5) * 1000),
                    "acFrequencyINmHz": round(frequency(site, when) * 1000),
                    "dcVoltageINmV": round(dc_volts * 1000),
                    "dcCurrentINmA": round(abs(watts) / dc_volts * 1000),
                    "channelTemp": temp + 4,
                    "pwrConvErrSecs": 0,
                    "pwrConvMaxErrCycles": 0,
                    "joulesUsed": round(max(-watts, 0) * REPORT),
                    "leadingVArs": 0,
                    "laggingVArs": 0,
                    "SOC": round(r.soc),
                    "SOH": 100,
                    "minCellTemp": temp - 1,
                    "maxCellTemp": temp,
                    "totVoltage": round(dc_volts * 1000),
                    "vendor_data": "",
                },
                "lifetime": {
                    "createdTime": site.install_time,
                    "duration": when - site.install_time,
                    "joulesProduced": round(cycles_j),
                    "joulesUsed": round(cycles_j * 1.1),
                },
            }
        ],
    }
