"""The one-line-per-cycle live summary shown by the quick start (``--summary``)."""

from __future__ import annotations

import time
from collections import Counter

from envoy_ingest.point import FieldValue
from envoy_ingest.worker.poller import CycleResult


def _watts(value: FieldValue | None) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{round(value):,d} W"  # round() first: never "-0 W"


def summarize(result: CycleResult) -> str:
    """A short human line for one cycle's points."""
    stamp = time.strftime("%H:%M:%S")
    if not result.ok:
        return f"{stamp} {result.gateway} {result.job}: FAILED ({result.error})"
    if result.job == "totals":
        system = next((p for p in result.points if p.measurement == "enphase_system"), None)
        if system is None:
            return f"{stamp} {result.gateway} totals: no data this cycle"
        f = system.fields
        parts = [
            f"production {_watts(f.get('production_w'))}",
            f"consumption {_watts(f.get('consumption_w'))}",
            f"net {_watts(f.get('net_w'))}",
        ]
        if "battery_soc_pct" in f or "battery_w" in f:
            soc = f.get("battery_soc_pct")
            soc_text = f"{soc:.0f}%" if isinstance(soc, float) else "-"
            state = f.get("battery_state", "")
            parts.append(f"battery {soc_text} {state} {_watts(f.get('battery_w'))}".strip())
        meters = sum(1 for p in result.points if p.measurement == "enphase_meter")
        if meters:
            parts.append(f"{meters} meter points")
        return f"{stamp} {result.gateway} " + " | ".join(parts)
    if result.job == "live":
        whole = {
            p.tags.get("flow"): p.fields.get("power_w")
            for p in result.points
            if "phase" not in p.tags
        }
        flows = ("production", "consumption", "net", "storage")
        parts = [f"{flow} {_watts(whole[flow])}" for flow in flows if flow in whole]
        return f"{stamp} {result.gateway} live: " + (" | ".join(parts) or "no reading")
    counts = Counter(p.measurement for p in result.points)
    inverters = [p for p in result.points if p.measurement == "enphase_inverter"]
    producing = sum(1 for p in inverters if p.fields.get("producing") is True)
    power = sum(v for p in inverters if isinstance(v := p.fields.get("power_w"), float))
    line = (
        f"{stamp} {result.gateway} devices: {counts['enphase_inverter']} microinverters "
        f"({producing} producing, {power:,.0f} W)"
    )
    if counts["enphase_battery"]:
        line += f", {counts['enphase_battery']} batteries"
    return line
