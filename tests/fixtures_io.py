"""Reading recorded gateway answers (``../shared/fixtures/envoy``) as the client would.

A recorded set is one folder per gateway, one file per endpoint, named after the
request path (``/production.json?details=1`` -> ``production.json_details_1``,
falling back to ``production.json``). ``NAME_log.json`` beside a file records
the real status code: an answer that was not 2xx is absent from a snapshot,
exactly as the client leaves out a failed endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envoy_ingest.envoy.capabilities import Capabilities, detect, followup_paths, probe_paths
from envoy_ingest.envoy.firmware import GatewayInfo, parse_info
from tests.conftest import FIXTURES_ROOT

#: Where a recorded set has no file for the exact path, the gateway answered
#: these paths with the same body.
_FALLBACKS = {"production.json_details_1": "production.json"}


def file_name(path: str) -> str:
    """``/production.json?details=1`` -> ``production.json_details_1``."""
    return path.lstrip("/").replace("/", "_").replace("?", "_").replace("=", "_")


def fixture_file(set_dir: Path, path: str) -> Path | None:
    name = file_name(path)
    for candidate in (name, _FALLBACKS.get(name)):
        if candidate and (set_dir / candidate).is_file():
            return set_dir / candidate
    return None


def status(file: Path) -> int:
    """The recorded status code (200 where the set has no log)."""
    log = file.with_name(file.name + "_log.json")
    if not log.is_file():
        return 200
    code = json.loads(log.read_text()).get("code", 200)
    return int(code)


def body(file: Path) -> Any:
    """Parsed JSON, or the text when the body is not JSON (HTML pages)."""
    text = file.read_text(encoding="utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def snapshot(set_dir: Path, paths: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """What the client would hand the normalizers after fetching ``paths``."""
    snap: dict[str, Any] = {}
    for path in paths:
        file = fixture_file(set_dir, path)
        if file is not None and 200 <= status(file) < 300:
            snap[path] = body(file)
    return snap


def set_dir(name: str) -> Path:
    return FIXTURES_ROOT / name


def info(set_dir: Path) -> GatewayInfo:
    return parse_info((set_dir / "info").read_text())


def probe(set_dir: Path, gateway: GatewayInfo) -> dict[str, Any]:
    """The answers to the probe and, where they call for it, to its follow-up."""
    answers = snapshot(set_dir, probe_paths(gateway))
    answers.update(snapshot(set_dir, followup_paths(gateway, answers)))
    return answers


def probed(set_dir: Path) -> tuple[GatewayInfo, dict[str, Any], Capabilities]:
    """The set's ``/info``, its probe answers, and the capabilities decided from them."""
    gateway = info(set_dir)
    answers = probe(set_dir, gateway)
    return gateway, answers, detect(gateway, answers)


def capabilities(set_dir: Path) -> Capabilities:
    return probed(set_dir)[2]


def totals_snapshot(set_dir: Path, caps: Capabilities) -> dict[str, Any]:
    """The totals job's answer with the latest devices-job answers merged in,
    as the worker hands it to ``normalize.totals``."""
    return snapshot(set_dir, [*caps.totals_paths, *caps.totals_extra_paths])


def devices_snapshot(set_dir: Path, caps: Capabilities) -> dict[str, Any]:
    """The devices job's first cycle: its paths, the hourly settings, and the
    totals job's answers it reads."""
    return snapshot(set_dir, [*caps.devices_paths, *caps.settings_paths, *caps.devices_extra_paths])
