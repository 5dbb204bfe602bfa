"""Settings files for tests that run the worker against the simulator."""

from __future__ import annotations

import time
from pathlib import Path

from envoy_ingest.simulator import Simulator


def gateway_table(sim: Simulator, name: str = "home", timezone: str | None = None) -> str:
    """The body of a ``[[gateways]]`` table for ``sim`` (a one-year token when modern).

    The gateway's ``timezone`` is ``timezone``, else the simulator's own zone: the
    energy stage then cuts days where the simulated gateway resets its day
    counters, whatever the host's zone (a test must not depend on ``$TZ``)."""
    lines = [f'host = "{sim.host}"', f'name = "{name}"']
    zone = timezone or sim.config.tz
    if zone != "local":
        lines.append(f'timezone = "{zone}"')
    if sim.url.startswith("https://"):
        lines.append(f'token = "{sim.issue_token(lifetime=365 * 86400)}"')
    return "\n".join(lines)


def midday_timezone(now: float | None = None) -> str:
    """A zone where it is about noon now: for sites whose report times are the
    wall clock (``/api/v1/production``), whose day counter the energy stage
    does not believe shortly after local midnight (more than could have been
    produced since)."""
    hour = time.gmtime(time.time() if now is None else now).tm_hour
    offset = 12 - hour  # UTC+12 at 00 UTC ... UTC-11 at 23 UTC
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX signs are inverted


def write_settings(tmp: Path, *gateways: str, extra: str = "") -> Path:
    """``tmp/settings.toml`` with these gateways, the file sink in ``tmp/data``, the
    state in ``tmp/state``, and ``extra`` TOML after them."""
    text = "".join(f"[[gateways]]\n{g}\n" for g in gateways)
    text += f'[file]\ndirectory = "{tmp / "data"}"\n[state]\ndirectory = "{tmp / "state"}"\n'
    path = tmp / "settings.toml"
    path.write_text(text + extra)
    return path
