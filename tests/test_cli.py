"""The CLI commands as a user runs them: check, discover, token, help, exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from envoy_ingest.cli import main
from envoy_ingest.commands.check import sink_report
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.sink import check_sink
from tests.worker_settings import write_settings

NOON = 1718971200
EMAIL, PASSWORD = "owner@example.com", "secret-password"


def write(tmp_path: Path, text: str) -> Path:
    return write_settings(tmp_path, extra=text)


def test_check_reports_scheme_auth_and_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Simulator(SimulatorConfig(family="legacy", start_time=NOON, time_scale=0)) as sim:
        path = write(
            tmp_path,
            f'[[gateways]]\nhost = "{sim.host}"\nname = "home"\n'
            '[[gateways]]\nhost = "http://127.0.0.1:9"\nname = "barn"\nconnect_timeout = 2\n',
        )
        assert main(["check", "-c", str(path)]) == 1
        serial, firmware = sim.serial, sim.firmware
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "settings: ok"
    assert out[1] == (
        f"gateway home: ok: {serial}, firmware {firmware}, http, "
        "digest as envoy (default password); /api/v1/production answered"
    )
    assert out[2].startswith("gateway barn: FAILED: gateway barn: no answer at 127.0.0.1:9")
    assert any(line.startswith("sink: ok: ") for line in out[3:])


async def test_check_never_calls_a_failed_sink_ok(tmp_path: Path) -> None:
    settings = Settings(
        gateways=[{"host": "127.0.0.1:9"}],
        influxdb={"url": "http://127.0.0.1:9", "api": "v1", "database": "solar"},
        state={"directory": tmp_path / "state"},
    )
    lines = sink_report(await check_sink(settings))
    assert lines[0].startswith("sink: FAILED: ")
    assert lines[1:] == [f"sink: spool empty (no file yet at {tmp_path / 'state/spool.sqlite'})"]


def test_check_passes_on_a_healthy_modern_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Simulator(SimulatorConfig(family="modern", cts="1phase")) as sim:
        token = sim.issue_token(lifetime=365 * 86400)
        path = write(tmp_path, f'[[gateways]]\nhost = "{sim.host}"\ntoken = "{token}"\n')
        assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"gateway 127\.0\.0\.1:\d+: ok: \d+, firmware [\d.]+, https, bearer token \(owner", out
    )
    assert token not in out


def test_discover_lists_every_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = SimulatorConfig(
        family="modern",
        cts="3phase",
        batteries="iq",
        battery_count=2,
        inverters=5,
        start_time=NOON,
        time_scale=0,
    )
    with Simulator(cfg) as sim:
        path = write(
            tmp_path,
            f'[[gateways]]\nhost = "{sim.host}"\nname = "home"\n'
            f'token = "{sim.issue_token(lifetime=86400)}"\n',
        )
        assert main(["discover", "-c", str(path)]) == 0
        assert sim.model is not None
        serials = [r.serial for r in sim.model.inverters(NOON)]
        header = f"home: gateway {sim.serial}, firmware {sim.firmware} at {sim.url}"
    out = capsys.readouterr().out
    assert header in out
    assert "metering: production, consumption CTs (3 phase)" in out
    assert "2 IQ batteries" in out
    # CTs (their energies every 5 minutes) and IQ batteries (their system every 5
    # minutes, the storage settings hourly).
    assert "requests per hour with the current schedule: 181" in out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d{12}\s", line)]
    assert len(rows) == 7
    for serial in serials:
        (row,) = [r for r in rows if r.split()[0] == serial]
        assert row.split()[1] == "microinverter"
        assert row.split()[2:5] == ["yes", "yes", "yes"]
    assert sum("battery (encharge)" in r for r in rows) == 2


def test_token_fetches_and_shows_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Simulator(SimulatorConfig(family="modern")) as sim:
        path = write(
            tmp_path,
            f'[[gateways]]\nhost = "{sim.host}"\nname = "home"\n'
            f'enlighten_username = "{EMAIL}"\nenlighten_password = "{PASSWORD}"\n'
            f'[enlighten]\nlogin_url = "{sim.cloud.login_url}"\n'
            f'token_url = "{sim.cloud.token_url}"\n',
        )
        assert main(["token", "-c", str(path)]) == 0
        hidden = capsys.readouterr().out
        assert main(["token", "--show", "-c", str(path)]) == 0
        shown = capsys.readouterr().out
        assert sim.cloud.token_calls == 2
    assert "owner" in hidden and "expires" in hidden
    assert re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", hidden) is None
    assert re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", shown) is not None
    assert PASSWORD not in hidden + shown
    cache = list((tmp_path / "state").rglob("*"))
    files = [p for p in cache if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o600 for p in files)


def test_token_for_an_unknown_gateway_is_a_settings_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[gateways]]\nhost = "192.0.2.1"\nname = "home"\n')
    assert main(["token", "--gateway", "nope", "-c", str(path)]) == 2
    assert capsys.readouterr().err.startswith("envoy-ingest: settings error: ")


def test_every_command_has_help_and_takes_a_config() -> None:
    for command in ("run", "discover", "check", "token", "simulate", "demo"):
        result = subprocess.run(
            [sys.executable, "-m", "envoy_ingest", command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "--log-level" in result.stdout
        if command not in ("simulate", "demo"):
            assert "-c FILE, --config FILE" in result.stdout


ROOT = Path(__file__).resolve().parent.parent


def test_version_is_pyprojects_and_the_changelogs_latest_release() -> None:
    """`envoy-ingest --version` prints pyproject.toml's version (through the installed
    metadata: reinstall with `make .venv/.dev` after changing it), and CHANGELOG.md's
    first release after [Unreleased] is that version."""
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = subprocess.run(
        [sys.executable, "-m", "envoy_ingest", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"envoy-ingest {expected}\n",
        "",
    )
    releases = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases[:2] == ["Unreleased", expected]


def test_unknown_option_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--bogus"])
    assert info.value.code == 2


def test_demo_shows_data_and_writes_files(tmp_path: Path) -> None:
    import signal

    exe = Path(sys.executable).with_name("envoy-ingest")
    # The devices job first runs at its phase of the interval (counted from the
    # epoch, see worker/spread.py), up to one devices interval (5 s here) after
    # the start: read until it has run, then stop with Ctrl-C (--duration only
    # ends a demo that never gets there).
    proc = subprocess.Popen(
        [
            *(str(exe), "demo", "--speed", "60", "--duration", "60"),
            *("--at", "12:00", "--data", str(tmp_path / "d")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while line := proc.stdout.readline():
        lines.append(line.rstrip("\n"))
        if " demo devices: " in line and sum(" demo production " in ln for ln in lines) >= 3:
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=30)
    lines += rest.splitlines()
    assert proc.returncode == 0, err
    assert lines[0].startswith("simulated modern gateway 122238082690 at https://127.0.0.1:")
    assert sum(" demo production " in line for line in lines) >= 3
    # Noon (simulated, local time): every panel produces.
    assert any(" demo devices: 16 microinverters (16 producing, " in line for line in lines)
    production = [line for line in lines if " demo production " in line]
    assert " demo production 0 W " not in production[0]
    assert lines[-1] == "stopped"
    assert list((tmp_path / "d").glob("*.lp"))


def test_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    import signal
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("envoy-ingest")
    proc = subprocess.Popen(
        [
            str(exe),
            "simulate",
            "--family",
            "legacy",
            "--port",
            str(port),
            "--serial",
            "121212121212",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in first
        info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=5)
        assert info.status_code == 200
        assert "<sn>121212121212</sn>" in info.text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_simulate_rejects_a_missing_fixture_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--fixture", "/nonexistent/set"]) == 2
    assert "--fixture: /nonexistent/set is not a directory" in capsys.readouterr().err


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    import signal

    exe = Path(sys.executable).with_name("envoy-ingest")
    proc = subprocess.Popen(
        [str(exe), "demo", "--speed", "60", "--data", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # banner, schedule, first cycle
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert " demo " in lines[2]
    assert rest.splitlines()[-1] == "stopped"


def test_run_loads_neither_pyjwt_cryptography_nor_sqlite3() -> None:
    """pyjwt would load cryptography's native library (about 10 MB of RSS) into every
    worker to read claims it never verifies: `run` reads them itself (tokens/claims.py);
    sqlite3 (the spool) is loaded only with [influxdb] (sink/build.py)."""
    code = (
        "import sys, envoy_ingest.cli, envoy_ingest.commands.run\n"
        "print(*(m in sys.modules for m in ('jwt', 'cryptography', 'sqlite3')))\n"
        "from envoy_ingest.sink import Spool\n"
        "print('sqlite3' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "False", "True"]


def test_demo_shows_a_battery_site(tmp_path: Path) -> None:
    """``demo --site battery``: the grid fails 15 simulated minutes after start
    (at night); the batteries carry the house, the battery energy is written and
    the outage is an event."""
    exe = Path(sys.executable).with_name("envoy-ingest")
    done = subprocess.run(
        [
            *(str(exe), "demo", "--site", "battery", "--speed", "120", "--duration", "25"),
            *("--at", "23:00", "--data", str(tmp_path / "d")),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith(
        "battery site: IQ batteries, an IQ System Controller and a standby generator; "
        "the grid fails at 23:15 (simulated) for 30 minutes"
    )
    written = "".join(p.read_text() for p in (tmp_path / "d").glob("*.lp"))
    discharged = [
        float(field.split("=")[1])
        for line in written.splitlines()
        if line.startswith("enphase_system,")
        for field in line.split(" ")[1].split(",")
        if field.startswith("battery_discharged_lifetime_wh=")
    ]
    assert discharged and discharged[-1] > discharged[0] > 0
    assert any(
        line.startswith("enphase_event,") and "kind=grid" in line and 'text="grid lost"' in line
        for line in written.splitlines()
    )
    assert "grid_connected=false" in written
