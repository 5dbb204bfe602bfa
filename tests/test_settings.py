"""Settings: TOML + environment + *_file secrets, and one clear line per bad setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from envoy_ingest.errors import SettingsError
from envoy_ingest.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[[gateways]]\nhost = "192.168.1.50"\n'))
    gw = s.gateways[0]
    assert gw.host == "192.168.1.50"
    assert gw.username == "envoy"
    assert gw.password is None and gw.token is None
    assert gw.verify_tls is False
    assert (gw.connect_timeout, gw.read_timeout) == (10.0, 45.0)
    assert s.schedule.totals_interval == 60.0
    assert s.schedule.devices_interval == 300.0
    assert s.file.directory == Path("./data")
    assert s.influxdb is None
    assert s.health.enabled is False and s.health.listen == "127.0.0.1:9842"


def test_example_file_is_valid_and_documents_every_key() -> None:
    example = REPO / "settings.example.toml"
    s = load_settings(example)
    assert s.gateways[0].host == "192.168.1.50"
    text = example.read_text()

    def keys(model: type[BaseModel]) -> set[str]:
        return set(model.model_fields)

    missing = []
    for section, field in Settings.model_fields.items():
        annotation = field.annotation
        models = [
            a
            for a in getattr(annotation, "__args__", (annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        for model in models:
            for key in keys(model):
                if not re.search(rf"^#?\s*{key}\s*=", text, re.MULTILINE):
                    missing.append(f"{section}.{key}")
        table = re.search(rf"^#?\s*\[+{section}\]+", text, re.MULTILINE)
        if not table and not re.search(rf"^#?\s*{section}\s*=", text, re.MULTILINE):
            missing.append(section)  # neither a table nor a top-level key
    assert missing == []


def test_environment_overrides_file_with_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        '[[gateways]]\nhost = "h"\n[schedule]\ntotals_interval = 60\n'
        '[influxdb]\nurl = "http://db:8086"\nbucket = "solar"\n',
    )
    monkeypatch.setenv("ENVOY_INGEST_SCHEDULE__TOTALS_INTERVAL", "30")
    monkeypatch.setenv("ENVOY_INGEST_INFLUXDB__TOKEN", "tok-from-env")
    s = load_settings(path)
    assert s.schedule.totals_interval == 30.0
    assert s.influxdb is not None
    assert s.influxdb.url == "http://db:8086"
    assert s.influxdb.token is not None
    assert s.influxdb.token.get_secret_value() == "tok-from-env"


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    (tmp_path / "tok").write_text("eyJabc.def.ghi\n")
    path = write(
        tmp_path,
        f'[[gateways]]\nhost = "h"\npassword_file = "{tmp_path / "pw"}"\n'
        f'token_file = "{tmp_path / "tok"}"\n',
    )
    gw = load_settings(path).gateways[0]
    assert gw.password is not None and gw.password.get_secret_value() == "hunter2"
    assert gw.token is not None and gw.token.get_secret_value() == "eyJabc.def.ghi"
    assert "hunter2" not in repr(gw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[gateways]]\nhost = "h"\nbogus = 1\n', "gateways[0].bogus: unknown key"),
        ('[[gateways]]\nname = "x"\n', "gateways[0].host: required key is missing"),
        ("[schedule]\ntotals_interval = 60\n", "gateways: required key is missing"),
        (
            '[[gateways]]\nhost = "h"\n[schedule]\ntotals_interval = "soon"\n',
            "schedule.totals_interval: Input should be a valid number",
        ),
        (
            '[[gateways]]\nhost = "h"\npassword_file = "/nonexistent/pw"\n',
            "gateways[0]: cannot read password_file '/nonexistent/pw'",
        ),
        (
            '[[gateways]]\nhost = "h"\nusername = "root"\n',
            "gateways[0].username: Input should be 'envoy' or 'installer'",
        ),
        (
            '[[gateways]]\nhost = "h"\ntls_fingerprint = "abc"\n',
            "gateways[0].tls_fingerprint: must be the certificate's SHA-256 fingerprint",
        ),
        (
            '[[gateways]]\nhost = "ftp://h"\n',
            "gateways[0].host: scheme must be http:// or https://",
        ),
        (
            '[[gateways]]\nhost = "h"\n[influxdb]\nurl = "http://db"\napi = "v1"\n',
            "influxdb: database is required with api = 'v1'",
        ),
        (
            '[[gateways]]\nhost = "h"\nenlighten_username = "me@example.com"\n',
            "gateways[0]: enlighten_username and enlighten_password go together",
        ),
        (
            '[[gateways]]\nhost = "h"\ntimezone = "Europe/Atlantis"\n',
            "gateways[0].timezone: unknown time zone 'Europe/Atlantis': use an IANA name",
        ),
        (
            '[[gateways]]\nhost = "h"\n[energy]\nstate_flush_interval = -1\n',
            "energy.state_flush_interval: Input should be greater than or equal to 0",
        ),
        (
            '[[gateways]]\nhost = "h"\n[file]\nfsync_interval = -0.5\n',
            "file.fsync_interval: Input should be greater than or equal to 0",
        ),
        ("[[gateways]\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "Traceback" not in message


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[[gateways]]\nhost = "h"\npassword = ["s3cr3t-value"]\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert "gateways[0].password" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_missing_file_and_no_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings(tmp_path / "absent.toml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="no settings file: pass -c/--config"):
        load_settings(None)


def test_default_location_is_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[[gateways]]\nhost = "from-cwd"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(None).gateways[0].host == "from-cwd"


def test_state_directory_follows_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/envoy-ingest")
    s = load_settings(write(tmp_path, '[[gateways]]\nhost = "h"\n'))
    assert s.state.directory == Path("/var/lib/envoy-ingest")
    assert s.spool_path == Path("/var/lib/envoy-ingest/spool.sqlite")


def test_gateway_time_zone_defaults_to_the_host_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("TZ", "America/New_York")
    settings = load_settings(write(tmp_path, '[[gateways]]\nhost = "h"\n'))
    gw = settings.gateways[0]
    assert gw.timezone is None
    winter, summer = datetime(2025, 1, 15, 12), datetime(2025, 7, 15, 12)
    # with daylight saving, not a fixed offset
    assert winter.replace(tzinfo=gw.zone).utcoffset() != summer.replace(tzinfo=gw.zone).utcoffset()
    named = load_settings(write(tmp_path, '[[gateways]]\nhost = "h"\ntimezone = "Asia/Tokyo"\n'))
    assert named.gateways[0].zone == ZoneInfo("Asia/Tokyo")
