"""The synthetic gateway: which endpoint answers what, by family and firmware.

=============================  ========================  ==========================
path                           legacy (< 7)              modern (>= 7)
=============================  ========================  ==========================
/info                          XML, no ``web-tokens``    XML, ``web-tokens`` true
/production.json[?details=1]   JSON (HTML below 3.10)    JSON
/api/v1/production[/inverters] JSON (devType from 4.x)   JSON (+ ACB as devType 11)
/inventory.json[?deleted=1]    PCU, ACB, NSRB            PCU, ACB, NSRB, ESUB
/ivp/meters[/readings]         ``[]`` without CTs (404   ``[]`` without CTs
                               below 4.x)
/ivp/ensemble/...              IQ batteries on >= 5,     always (empty without IQ
                               else 404                  batteries; ``ENPOWER`` with a
                                                         System Controller)
/ivp/ensemble/generator        with a generator          with a generator
/admin/lib/tariff,             with a System Controller  with a System Controller
/ivp/ss/gen_config (``{}``
without a generator),
/ivp/ensemble/dry_contacts,
/ivp/ss/dry_contact_settings
/ivp/pdm/device_data           404                       8.2 and later
=============================  ========================  ==========================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from envoy_ingest.simulator import render_backup as backup
from envoy_ingest.simulator import render_devices as dev
from envoy_ingest.simulator import render_totals as tot
from envoy_ingest.simulator.answer import HTML, JSON, NOT_FOUND, Answer, json_answer
from envoy_ingest.simulator.faults import Faults
from envoy_ingest.simulator.model import Model
from envoy_ingest.simulator.render_device_data import device_data
from envoy_ingest.simulator.site import Site

_OLD_HTML = (
    b'    <!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN">\n    <html lang="en">\n'
    b"    <head>\n      <title>Envoy</title>\n    </head>\n    <body>\n"
    b"    <h1>Envoy</h1>\n    <p>System Statistics</p>\n    </body>\n    </html>\n"
)


def _app_version(version: tuple[int, ...]) -> str:
    return ".".join(f"{p:02d}" for p in version)


def info_xml(site: Site, software: str, now: float) -> bytes:
    """``/info`` as the gateway writes it (shape of 5.0.62 / 8.2.4345)."""
    modern = site.family == "modern"
    device = [
        f"    <sn>{site.serial}</sn>",
        f"    <pn>{'800-00649-r01' if modern else '800-00551-r02'}</pn>",
        f"    <software>{software}</software>",
        "    <euaid>4c8675</euaid>",
        "    <seqnum>0</seqnum>",
        "    <apiver>1</apiver>",
    ]
    if site.version >= (4,):
        device.append(f"    <imeter>{'true' if site.metered else 'false'}</imeter>")
    packages = [
        ("rootfs", "500-00001-r01", "02.00.00", "1211"),
        ("kernel", "500-00011-r02", "04.04.225", "08bedf"),
        ("app", "500-00002-r01", _app_version(site.version), "3f3de0"),
        ("devimg", "500-00005-r01", "01.02.502", "355b53"),
        ("security", "500-00016-r01", "02.00.00", "54a6dc"),
    ]
    lines = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        "<envoy_info>",
        f"  <time>{int(now)}</time>",
        "  <device>",
        *device,
        "  </device>",
    ]
    if modern:
        lines.append("  <web-tokens>true</web-tokens>")
    for name, pn, version, build in packages:
        lines += [
            f"  <package name='{name}'>",
            f"    <pn>{pn}</pn>",
            f"    <version>{version}</version>",
            f"    <build>{build}</build>",
            "  </package>",
        ]
    lines += [
        "  <build_info>",
        "    <build_time_gmt>1725031207</build_time_gmt>",
        "    <build_id>envoy-simulator</build_id>",
        "  </build_info>",
        "</envoy_info>",
        "",
    ]
    return "\n".join(lines).encode()


class SyntheticGateway:
    def __init__(self, model: Model, software: str) -> None:
        self.model = model
        self.site = model.site
        self.software = software
        self.faults = Faults(model=model)
        site = self.site
        modern = site.family == "modern"
        ensemble = modern or (site.battery_kind == "iq" and site.version >= (5,))
        self._routes: dict[str, Callable[[float, dict[str, list[str]], bool], Answer]] = {
            "/production.json": self._production_json,
            "/api/v1/production": self._api_v1_production,
            "/api/v1/production/inverters": lambda t, q, z: json_answer(
                dev.api_v1_inverters(model, t), indent=2
            ),
            "/inventory.json": lambda t, q, z: json_answer(dev.inventory(model, t), indent=4),
        }
        if site.version >= (4,):
            self._routes["/ivp/meters"] = lambda t, q, z: json_answer(
                tot.ivp_meters(site), indent=4
            )
            self._routes["/ivp/meters/readings"] = lambda t, q, z: json_answer(
                tot.meters_readings(model, t, zero=z), indent=4
            )
        if ensemble:
            self._routes["/ivp/ensemble/inventory"] = lambda t, q, z: json_answer(
                dev.ensemble_inventory(model, t), indent=4
            )
            self._routes["/ivp/ensemble/power"] = lambda t, q, z: json_answer(
                dev.ensemble_power(model, t), indent=4
            )
            self._routes["/ivp/ensemble/secctrl"] = lambda t, q, z: json_answer(
                dev.secctrl(model, t), indent=4
            )
        if ensemble and site.generator is not None:
            self._routes["/ivp/ensemble/generator"] = lambda t, q, z: json_answer(
                backup.generator(model, t), indent=4
            )
        if ensemble and site.system_controller:
            self._routes["/admin/lib/tariff"] = lambda t, q, z: json_answer(
                backup.tariff(model, self.faults, t)
            )
            self._routes["/ivp/ss/gen_config"] = lambda t, q, z: json_answer(
                backup.gen_config(model), indent=4
            )
            self._routes["/ivp/ensemble/dry_contacts"] = lambda t, q, z: json_answer(
                backup.dry_contacts(model, t), indent=4
            )
            self._routes["/ivp/ss/dry_contact_settings"] = lambda t, q, z: json_answer(
                backup.dry_contact_settings(), indent=4
            )
        if modern and site.version >= (8, 2):
            self._routes["/ivp/pdm/device_data"] = lambda t, q, z: json_answer(
                device_data(model, t), indent=4
            )

    @property
    def paths(self) -> list[str]:
        """Every data path this gateway serves (besides /info)."""
        return sorted(self._routes)

    def answer(self, path: str, now: float, *, rebooting: bool = False) -> Answer:
        """Answer ``path`` (with its query) at simulated time ``now``.

        ``rebooting``: the legacy answer right after a boot, all-zero production.
        """
        parts = urlsplit(path)
        if parts.path == "/info":
            return Answer(200, info_xml(self.site, self.software, now), "text/xml")
        route = self._routes.get(parts.path)
        if route is None:
            return NOT_FOUND
        answer = route(now, parse_qs(parts.query), rebooting)
        if self.faults.active and answer.status == 200 and answer.content_type == JSON:
            doc = self.faults.apply(parts.path, json.loads(answer.body), self.model, now)
            return json_answer(doc)
        return answer

    def _production_json(self, t: float, query: dict[str, list[str]], zero: bool) -> Answer:
        if self.site.version < (3, 10):
            return Answer(200, _OLD_HTML, HTML)  # 3.9.x: an HTML page, with 200
        details = query.get("details", ["0"])[-1] == "1"
        doc: Any = tot.production_json(self.model, t, details=details, zero=zero)
        return json_answer(doc)

    def _api_v1_production(self, t: float, query: dict[str, list[str]], zero: bool) -> Answer:
        return json_answer(tot.api_v1_production(self.model, t, zero=zero), indent=2)
