"""What of one job's answer the other job's normalizer reads: the poller keeps only
that between cycles (``GatewayPoller.latest``), since in a fleet every cached
answer is paid per gateway.

Each answer that one job fetches and the other also reads
(``Capabilities.totals_extra_paths`` / ``devices_extra_paths``) is reduced to
the objects and keys its reader looks at; everything else is left as it is.
The normalizers give exactly the same points from the reduced answer as from
the whole one (``tests/test_normalize_kept.py``, on every recorded set and on
mutated answers), so a reader that starts reading another key must add it here.

- ``/api/v1/production/inverters`` (the totals job counts microinverters:
  ``inverters.count``): ``serialNumber`` and ``devType`` of each entry;
- ``/ivp/ensemble/inventory`` (the totals job's IQ battery count and capacities:
  ``batteries.encharge_aggregate``): the ``ENCHARGE`` groups, and of each battery
  ``serial_num``, ``percentFull``, ``encharge_capacity``;
- ``/ivp/ensemble/power`` (the devices job's per-battery power:
  ``batteries.encharge_power``): of each device ``serial_num``, ``real_power_mw``, ``soc``;
- ``/ivp/ss/dry_contact_settings`` (read hourly, kept for the devices job's cycles
  between reads: ``ensemble.dry_contact_points``): of each contact ``id``,
  ``load_name``, ``mode``, ``soc_low``, ``soc_high``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy_ingest.envoy.capabilities import (
    API_V1_INVERTERS,
    DRY_CONTACT_SETTINGS,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_POWER,
)
from envoy_ingest.gateway_json import dicts

_V1_INVERTER_KEYS = ("serialNumber", "devType")
_ENCHARGE_KEYS = ("serial_num", "percentFull", "encharge_capacity")
_POWER_KEYS = ("serial_num", "real_power_mw", "soc")
_DRY_CONTACT_KEYS = ("id", "load_name", "mode", "soc_low", "soc_high")


def kept(path: str, body: Any) -> Any:
    """The part of ``body`` (the answer to ``path``) that the other job reads."""
    if path == API_V1_INVERTERS and isinstance(body, list):
        return _only(dicts(body), _V1_INVERTER_KEYS)
    if path == ENSEMBLE_INVENTORY and isinstance(body, list):
        return [
            {"type": "ENCHARGE", "devices": _only(dicts(group.get("devices")), _ENCHARGE_KEYS)}
            for group in dicts(body)
            if group.get("type") == "ENCHARGE"
        ]
    if path == ENSEMBLE_POWER and isinstance(body, Mapping):
        return {
            key: _only(dicts(body[key]), _POWER_KEYS) if isinstance(body[key], list) else body[key]
            for key in ("devices:", "devices")
            if key in body
        }
    if path == DRY_CONTACT_SETTINGS and isinstance(body, Mapping):
        contacts = body.get("dry_contacts")
        if isinstance(contacts, list):
            return {"dry_contacts": _only(dicts(contacts), _DRY_CONTACT_KEYS)}
        return {"dry_contacts": contacts} if "dry_contacts" in body else {}
    return body


def _only(objects: list[Mapping[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{k: o[k] for k in keys if k in o} for o in objects]
