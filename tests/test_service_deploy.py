"""The deployment files: what can be checked here without Docker or a running systemd.

- the Dockerfile's HEALTHCHECK command, run against a real health server;
- the compose stack's settings file loads as the container loads it;
- the systemd unit passes ``systemd-analyze verify`` (where systemd-analyze exists)
  and keeps its hardening;
- ``docker compose config`` (where a compose client exists).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from envoy_ingest.service.health import HealthState
from envoy_ingest.service.server import start_health_server
from envoy_ingest.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
UNIT = REPO / "deploy" / "systemd" / "envoy-ingest.service"
COMPOSE = REPO / "deploy" / "compose"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_unprivileged_with_state_volume_and_health() -> None:
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2 and "AS build" in froms[0]  # multi-stage
    assert any(a.startswith("PYTHON_IMAGE=python:3.11-slim") for w, a in ins if w == "ARG")
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    assert ("VOLUME", '["/var/lib/envoy-ingest"]') in final
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "ENVOY_INGEST_HEALTH__ENABLED=true" in env
    assert "ENVOY_INGEST_HEALTH__LISTEN=0.0.0.0:9842" in env
    assert "STATE_DIRECTORY=/var/lib/envoy-ingest" in env
    assert ("ENTRYPOINT", '["envoy-ingest"]') in final
    assert ("CMD", '["run"]') in final
    assert any(word == "HEALTHCHECK" and "/healthz" in rest for word, rest in final)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:4] == [
        "*",
        "!pyproject.toml",
        "!README.md",
        "!envoy_ingest",
    ]


def healthcheck_code(port: int) -> str:
    rest = next(r for w, r in dockerfile_instructions() if w == "HEALTHCHECK")
    argv = json.loads(rest[rest.index("CMD") + 3 :])
    assert argv[:2] == ["python", "-c"]
    return str(argv[2]).replace("127.0.0.1:9842", f"127.0.0.1:{port}")


async def test_the_healthcheck_command_follows_healthz() -> None:
    state = HealthState()
    server = await start_health_server("127.0.0.1:0", state)
    port = server.port
    try:

        async def check() -> int:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                healthcheck_code(port),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            return await asyncio.wait_for(proc.wait(), 20)

        assert await check() == 1  # 503: the scheduler is not running
        state.scheduler_running(True)
        assert await check() == 0
    finally:
        await server.close()
    assert await check() == 1  # nobody listening


def test_compose_settings_load_as_in_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("ENVOY_INGEST_INFLUXDB__TOKEN", "STATE_DIRECTORY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ENVOY_INGEST_INFLUXDB__TOKEN", "from-the-environment")
    monkeypatch.setenv("ENVOY_INGEST_HEALTH__ENABLED", "true")
    monkeypatch.setenv("ENVOY_INGEST_HEALTH__LISTEN", "0.0.0.0:9842")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/envoy-ingest")
    settings = load_settings(COMPOSE / "settings.toml")
    assert settings.gateways[0].host == "http://gateway:8080"
    influx = settings.influxdb
    assert influx is not None and influx.api == "v2" and influx.bucket == "solar"
    assert influx.token is not None and influx.token.get_secret_value() == "from-the-environment"
    assert settings.health.enabled and settings.health.listen == "0.0.0.0:9842"
    assert settings.spool_path == Path("/var/lib/envoy-ingest/spool.sqlite")
    compose = (COMPOSE / "docker-compose.yml").read_text()
    env = dict(
        line.split("=", 1) for line in (COMPOSE / ".env").read_text().splitlines() if "=" in line
    )
    assert "--batteries=acb" in compose and env["COMPOSE_PROFILES"] == "simulator"
    for name in re.findall(r"\$\{(\w+)", compose):
        assert name in env, f"{name} is not in deploy/compose/.env"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_unit_is_hardened() -> None:
    unit = unit_settings()
    want = {
        "DynamicUser": "yes",
        "StateDirectory": "envoy-ingest",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "RestartPreventExitStatus": "2",
    }
    for key, value in want.items():
        assert unit.get(key, [None])[-1] == value, key
    assert unit["SystemCallFilter"][0] == "@system-service"
    assert unit["ExecStart"][0].endswith("run --config /etc/envoy-ingest/settings.toml")
    assert any(c.startswith("influxdb_token:") for c in unit["LoadCredential"])


def missing(reason: str) -> NoReturn:
    """Skip on a developer machine without the tool; under CI=true it must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's envoy-ingest.
    exe = Path(sys.executable).with_name("envoy-ingest")
    if not exe.exists():
        missing(f"{exe} is not installed")
    unit = tmp_path / "envoy-ingest.service"
    unit.write_text(UNIT.read_text().replace("/opt/envoy-ingest/bin/envoy-ingest", str(exe)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "envoy-ingest.service" not in result.stderr, result.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if security.returncode == 0:
        level = re.search(r"exposure level for envoy-ingest\.service: ([\d.]+)", security.stdout)
        assert level is not None and float(level.group(1)) <= 2.0, security.stdout[-500:]


def test_compose_file_is_valid_compose(tmp_path: Path) -> None:
    if shutil.which("docker-compose"):
        # Compose v1 does not know the top-level `name:`; the rest it validates.
        text = (COMPOSE / "docker-compose.yml").read_text()
        copy = COMPOSE / f".validate-{tmp_path.name}.yml"
        copy.write_text(re.sub(r"(?m)^name: .*\n", "", text))
        try:
            result = subprocess.run(
                ["docker-compose", "-f", str(copy), "config", "--quiet"],
                cwd=COMPOSE,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            copy.unlink()
    else:
        missing("no compose client (docker-compose) installed: make test-servers installs it")
    assert result.returncode == 0, result.stderr
