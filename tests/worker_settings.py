"""Settings files for tests that run the worker against the simulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from envoy_ingest.simulator import Simulator


def afternoon_zone() -> str:
    """An IANA zone where it is afternoon now (13:00 to 22:59), for a gateway whose
    totals carry no report time: the poll time is used, and the energy stage only
    believes a day's energy that could have been made since the local midnight."""
    hour = datetime.now(UTC).hour
    offset = min(14, 23 - hour) - 1  # local = hour + offset, in 13..22
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"  # Etc/GMT-13 is UTC+13


def gateway_table(sim: Simulator, name: str = "home", timezone: str | None = None) -> str:
    """The body of a ``[[gateways]]`` table for ``sim`` (a one-year token when modern)."""
    lines = [f'host = "{sim.host}"', f'name = "{name}"']
    if timezone is not None:
        lines.append(f'timezone = "{timezone}"')
    if sim.url.startswith("https://"):
        lines.append(f'token = "{sim.issue_token(lifetime=365 * 86400)}"')
    return "\n".join(lines)


def write_settings(tmp: Path, *gateways: str, extra: str = "") -> Path:
    """``tmp/settings.toml`` with these gateways, the file sink in ``tmp/data``, the
    state in ``tmp/state``, and ``extra`` TOML after them."""
    text = "".join(f"[[gateways]]\n{g}\n" for g in gateways)
    text += f'[file]\ndirectory = "{tmp / "data"}"\n[state]\ndirectory = "{tmp / "state"}"\n'
    path = tmp / "settings.toml"
    path.write_text(text + extra)
    return path
