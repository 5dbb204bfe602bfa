"""Settings files for tests that run the worker against the simulator."""

from __future__ import annotations

from pathlib import Path

from envoy_ingest.simulator import Simulator


def gateway_table(sim: Simulator, name: str = "home") -> str:
    """The body of a ``[[gateways]]`` table for ``sim`` (a one-year token when modern)."""
    lines = [f'host = "{sim.host}"', f'name = "{name}"']
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
