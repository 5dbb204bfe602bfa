"""Fixture mode: serve a recorded gateway directory (layout of
``../shared/fixtures/envoy``, see its README) byte for byte.

- A request path maps to a file name with :func:`path_to_fixture_name`.
- ``NAME_log.json`` gives the recorded status code and content type.
- ``/production.json?details=1`` falls back to ``production.json``.
- ``/inventory.json`` (most sets lack it, every real gateway answers it) falls
  back to ``inventory.json_deleted_1`` and the other way round; with neither, it
  is built from the recorded ``/api/v1/production/inverters`` (same status when
  that was refused).
- The family (http + digest, or https + JWT) and serial come from ``/info``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envoy_ingest.envoy.firmware import GatewayInfo, parse_info
from envoy_ingest.errors import GatewayResponseError, SettingsError
from envoy_ingest.simulator.answer import NOT_FOUND, Answer, json_answer
from envoy_ingest.simulator.render_totals import zeroed

LOG_SUFFIX = "_log.json"
_ZEROED_ON_REBOOT = ("production.json", "production.json_details_1", "api_v1_production")


def path_to_fixture_name(path: str) -> str:
    """``"/production.json?details=1"`` -> ``"production.json_details_1"``.

    The leading ``/`` is dropped; ``/``, ``?`` and ``=`` become ``_``.
    """
    name = path[1:] if path.startswith("/") else path
    for ch in "/?=":
        name = name.replace(ch, "_")
    return name


def _guess_type(body: bytes) -> str:
    head = body.lstrip()[:64]
    if head.startswith(b"<?xml"):
        return "text/xml"
    if head.startswith(b"<"):
        return "text/html"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain"
    return "application/json"


@dataclass(frozen=True, slots=True)
class Recorded:
    body: bytes
    status: int
    content_type: str

    def answer(self) -> Answer:
        return Answer(self.status, self.body, self.content_type)


def load_recorded(directory: Path) -> dict[str, Recorded]:
    """Every recorded answer of a set, by file name."""
    out: dict[str, Recorded] = {}
    for path in sorted(directory.iterdir()):
        name = path.name
        if not path.is_file() or name.endswith(LOG_SUFFIX) or name.startswith("_"):
            continue
        body = path.read_bytes()
        status, content_type = 200, None
        log = directory / f"{name}{LOG_SUFFIX}"
        if log.is_file():
            try:
                meta = json.loads(log.read_text())
            except ValueError as exc:
                raise SettingsError(f"fixture: {log} is not JSON ({exc})") from None
            status = int(meta.get("code", 200))
            headers = {str(k).lower(): str(v) for k, v in meta.get("headers", {}).items()}
            content_type = headers.get("content-type")
        out[name] = Recorded(body, status, content_type or _guess_type(body))
    return out


class FixtureGateway:
    """Answers of one recorded gateway."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise SettingsError(f"fixture: {directory} is not a directory")
        self.directory = directory
        self.recorded = load_recorded(directory)
        info = self.recorded.get("info")
        self.info: GatewayInfo | None = None
        if info is not None:
            try:
                self.info = parse_info(info.body.decode("utf-8", "replace"))
            except GatewayResponseError:
                self.info = None

    @property
    def serial(self) -> str | None:
        return self.info.serial if self.info else None

    @property
    def modern(self) -> bool | None:
        """Whether the recorded gateway uses JWTs (None: /info does not say)."""
        return self.info.uses_jwt if self.info else None

    @property
    def software(self) -> str | None:
        return self.info.software if self.info else None

    def answer(self, path: str, now: float = 0.0, *, rebooting: bool = False) -> Answer:
        """The recorded answer to ``path`` (``now`` is ignored: recordings do not age).

        ``rebooting``: the legacy answer right after a boot, all-zero production.
        """
        name = path_to_fixture_name(path)
        rec = self.recorded.get(name)
        if rec is None and name == "production.json_details_1":
            rec = self.recorded.get("production.json")
        if rec is None and name in ("inventory.json", "inventory.json_deleted_1"):
            other = "inventory.json_deleted_1" if name == "inventory.json" else "inventory.json"
            rec = self.recorded.get(other)
            if rec is None:
                return self._built_inventory()
        if rec is None:
            return NOT_FOUND
        if rebooting and rec.status == 200 and name in _ZEROED_ON_REBOOT:
            try:
                doc = json.loads(rec.body)
            except ValueError:
                return rec.answer()
            return json_answer(zeroed(doc))
        return rec.answer()

    # /inventory.json from /api/v1/production/inverters ---------------------------

    def _built_inventory(self) -> Answer:
        source = self.recorded.get("api_v1_production_inverters")
        if source is None:
            return NOT_FOUND
        if source.status != 200:
            return source.answer()
        try:
            devices = json.loads(source.body)
        except ValueError:
            return NOT_FOUND
        if not isinstance(devices, list):
            return NOT_FOUND
        storage = self._storage()
        pcus, acbs = [], []
        for dev in devices:
            if not isinstance(dev, dict) or "serialNumber" not in dev:
                continue
            if dev.get("devType") == 11:
                acbs.append(_inventory_entry(dev, 11, storage))
            else:
                pcus.append(_inventory_entry(dev, 1, storage))
        return json_answer(
            [
                {"type": "PCU", "devices": pcus},
                {"type": "ACB", "devices": acbs},
                {"type": "NSRB", "devices": []},
            ],
            indent=4,
        )

    def _storage(self) -> dict[str, Any]:
        rec = self.recorded.get("production.json")
        try:
            doc = json.loads(rec.body) if rec else {}
            first = doc.get("storage", [{}])[0]
        except (ValueError, AttributeError, IndexError, TypeError):
            return {}
        return first if isinstance(first, dict) else {}


def _inventory_entry(dev: dict[str, Any], dev_type: int, storage: dict[str, Any]) -> dict[str, Any]:
    last = dev.get("lastReportDate", 0)
    watts = dev.get("lastReportWatts", 0)
    entry: dict[str, Any] = {
        "part_num": "800-00930-r03" if dev_type == 11 else "800-00631-r02",
        "installed": "1500000000",
        "serial_num": str(dev["serialNumber"]),
        "device_status": ["envoy.global.ok"],
        "last_rpt_date": str(last),
        "admin_state": 1,
        "dev_type": dev_type,
        "created_date": "1500000000",
        "img_load_date": "1500000000",
        "img_pnum_running": "520-00082-r01-v04.30.32",
        "ptpn": "540-00134-r01-v04.30.10",
        "chaneid": 1627390225,
        "device_control": [{"gficlearset": False}],
        "producing": isinstance(watts, int | float) and watts > 0,
        "communicating": True,
        "provisioned": True,
        "operating": True,
    }
    if dev_type == 11:
        entry |= {
            "sleep_enabled": False,
            "percentFull": storage.get("percentFull", 0),
            "maxCellTemp": 25,
            "sleep_min_soc": 25,
            "sleep_max_soc": 30,
            "charge_status": storage.get("state", "idle"),
        }
    return entry
