"""The site around the batteries: grid and backup state, generator, dry contacts.

``/ivp/ensemble/inventory`` lists, beside the IQ batteries (``ENCHARGE``), the
IQ System Controller (``ENPOWER``: the grid relay, ``temperature`` in °F), the
IQ Meter Collar (``COLLAR``: ``grid_state``, ``temperature`` in °C) and the IQ
Combiner's controller (``C6 COMBINER CONTROLLER``)::

    [{"type": "ENPOWER", "devices": [{"serial_num": "122029016399",
        "last_rpt_date": 1692817873, "communicating": true, "temperature": 88,
        "mains_admin_state": "closed", "mains_oper_state": "closed",
        "Enpwr_grid_mode": "multimode-ongrid"}]},
     {"type": "COLLAR", "devices": [{"serial_num": "482520020939",
        "grid_state": "on_grid", "temperature": 42, ...}]}]

Where a System Controller is: ``/ivp/ensemble/dry_contacts`` (every cycle),
``/ivp/ss/dry_contact_settings`` (hourly, kept between reads) and, where a
generator is configured, ``/ivp/ensemble/generator``::

    {"dry_contacts": [{"id": "NC1", "status": "closed"}]}
    {"dry_contacts": [{"id": "NC1", "load_name": "AC/Water heater", "mode": "manual",
                       "soc_low": 30.0, "soc_high": 70.0, ...}]}
    {"admin_state": "open", "oper_state": "open", "admin_mode": 2, "start_soc": 30,
     "stop_soc": 70, "present": 1, ...}
"""

from __future__ import annotations

from envoy_ingest.envoy.capabilities import (
    DRY_CONTACT_SETTINGS,
    DRY_CONTACTS,
    ENSEMBLE_INVENTORY,
    GENERATOR,
    Capabilities,
    Snapshot,
)
from envoy_ingest.gateway_json import (
    JsonObject,
    dicts,
    flag,
    integer,
    label,
    mapping,
    number,
    put,
    report_time,
    serial,
    text,
)
from envoy_ingest.point import FieldValue, Point

#: ``/ivp/ensemble/inventory`` group -> ``type`` tag of ``enphase_controller``.
CONTROLLERS = {
    "ENPOWER": "system_controller",
    "COLLAR": "collar",
    "C6 COMBINER CONTROLLER": "combiner",
}
_STATES = ("mains_admin_state", "mains_oper_state", "grid_state")


def site_points(snapshot: Snapshot, caps: Capabilities, now: int) -> list[Point]:
    """Controllers, the grid state on ``enphase_system``, the generator and the
    dry contacts."""
    inventory = snapshot.get(ENSEMBLE_INVENTORY)
    points = controller_points(inventory, now)
    grid = grid_point(inventory, now)
    if grid is not None:
        points.append(grid)
    # The generator and the dry contacts are the System Controller's relays and
    # carry no report time: the controller's, else the poll time.
    controller = _first_device(inventory, "ENPOWER") or {}
    relays = report_time(controller.get("last_rpt_date")) or now
    if caps.generator and (generator := generator_point(snapshot.get(GENERATOR), relays)):
        points.append(generator)
    if caps.system_controller:
        points += dry_contact_points(snapshot, relays)
    return points


def controller_points(inventory: object, now: int) -> list[Point]:
    """``enphase_controller``, one per device, at its ``last_rpt_date``."""
    points: list[Point] = []
    for group in dicts(inventory):
        kind = CONTROLLERS.get(label(group.get("type")).upper())
        if kind is None:
            continue
        for device in dicts(group.get("devices")):
            s = serial(device.get("serial_num"))
            if not s:
                continue
            fields: dict[str, FieldValue] = {}
            if (mode := text(device.get("Enpwr_grid_mode"))) is not None:
                fields["grid_mode"] = mode
            for name in _STATES:
                if (state := text(device.get(name))) is not None:
                    fields[name] = state
            temperature = number(device.get("temperature"))
            if temperature is not None and kind == "system_controller":
                # The System Controller reports °F (pyenphase, Home Assistant), the collar °C.
                temperature = (temperature - 32) / 1.8
            put(fields, "temperature_c", temperature)
            if (communicating := flag(device.get("communicating"))) is not None:
                fields["communicating"] = communicating
            if fields:
                time = report_time(device.get("last_rpt_date")) or now
                tags = {"serial": s, "type": kind}
                points.append(Point("enphase_controller", fields, time, tags))
    return points


def grid_point(inventory: object, now: int) -> Point | None:
    """``grid_connected`` and ``grid_mode`` on ``enphase_system``, at the report
    time of the device that says: the System Controller's grid relay
    (``mains_oper_state`` ``closed``), else the collar's ``grid_state`` ``on_grid``."""
    controller = _first_device(inventory, "ENPOWER")
    collar = _first_device(inventory, "COLLAR")
    fields: dict[str, FieldValue] = {}
    source: JsonObject | None = None
    if controller is not None and text(controller.get("mains_oper_state")) is not None:
        fields["grid_connected"] = label(controller.get("mains_oper_state")) == "closed"
        source = controller
    elif collar is not None and text(collar.get("grid_state")) is not None:
        fields["grid_connected"] = label(collar.get("grid_state")) == "on_grid"
        source = collar
    if controller is not None and (mode := text(controller.get("Enpwr_grid_mode"))):
        fields["grid_mode"] = mode
        source = source or controller
    if source is None:
        return None
    return Point("enphase_system", fields, report_time(source.get("last_rpt_date")) or now)


def generator_point(body: object, time: int) -> Point | None:
    """``enphase_generator`` at ``time`` (the answer carries none)."""
    generator = mapping(body)
    if generator is None:
        return None
    fields: dict[str, FieldValue] = {}
    for name in ("admin_state", "oper_state"):
        if (state := text(generator.get(name))) is not None:
            fields[name] = state
    if (mode := integer(generator.get("admin_mode"))) is not None:
        fields["admin_mode"] = mode
    for key, name in (("start_soc", "start_soc_pct"), ("stop_soc", "stop_soc_pct")):
        soc = number(generator.get(key))
        if soc is not None and 0 <= soc <= 100:  # -1: not set
            fields[name] = soc
    relay = label(generator.get("oper_state"))
    if relay in ("open", "closed"):
        fields["running"] = relay == "closed"
    return Point("enphase_generator", fields, time) if fields else None


def dry_contact_points(snapshot: Snapshot, time: int) -> list[Point]:
    """``enphase_dry_contact``, one per contact id, at ``time``: its status
    (every cycle) and its latest settings (read hourly)."""
    status = _by_id(snapshot.get(DRY_CONTACTS))
    settings = _by_id(snapshot.get(DRY_CONTACT_SETTINGS))
    points: list[Point] = []
    for cid in [*status, *(c for c in settings if c not in status)]:
        contact, setting = status.get(cid, {}), settings.get(cid, {})
        fields: dict[str, FieldValue] = {}
        if (state := text(contact.get("status"))) is not None:
            fields["status"] = state
            if label(state) in ("open", "closed"):
                fields["closed"] = label(state) == "closed"
        if (mode := text(setting.get("mode"))) is not None:
            fields["mode"] = mode
        put(fields, "soc_low_pct", setting.get("soc_low"))
        put(fields, "soc_high_pct", setting.get("soc_high"))
        if not fields:
            continue
        tags = {"contact": cid}
        if (load := text(setting.get("load_name"))) is not None:
            tags["load"] = load
        points.append(Point("enphase_dry_contact", fields, time, tags))
    return points


# --- helpers -----------------------------------------------------------------


def _first_device(inventory: object, kind: str) -> JsonObject | None:
    for group in dicts(inventory):
        if label(group.get("type")).upper() == kind:
            devices = dicts(group.get("devices"))
            if devices:
                return devices[0]
    return None


def _by_id(body: object) -> dict[str, JsonObject]:
    """``dry_contacts`` entries by ``id``; the first wins for a repeated id."""
    found: dict[str, JsonObject] = {}
    for entry in dicts((mapping(body) or {}).get("dry_contacts")):
        if (cid := text(entry.get("id"))) is not None:
            found.setdefault(cid, entry)
    return found
