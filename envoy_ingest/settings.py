"""Settings: a TOML file plus ``ENVOY_INGEST_*`` environment variables.

Every key is documented with its default in ``settings.example.toml``; the
keys are a contract other tools rely on. Environment variables override the
file and nest with ``__`` (``ENVOY_INGEST_INFLUXDB__TOKEN``). Every secret can
also be read from a file (``*_file`` keys) for Docker secrets and systemd
credentials. A bad setting raises :class:`SettingsError` with one line naming
the key and the problem.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from envoy_ingest.errors import SettingsError
from envoy_ingest.eventloop import EventLoopChoice

# Re-exported: GatewaySettings lives in gateway.py, with the gateway's identity.
from envoy_ingest.gateway import GatewaySettings as GatewaySettings
from envoy_ingest.gateways_file import check_unique, read_rows
from envoy_ingest.settings_base import Section, load_secret_files
from envoy_ingest.shard import Shard, parse_shard

DEFAULT_CONFIG_PATHS = (Path("settings.toml"), Path("/etc/envoy-ingest/settings.toml"))
ENV_PREFIX = "ENVOY_INGEST_"


class FileSettings(Section):
    directory: Path = Path("./data")
    # fsync a day file at most this often (seconds); 0: at every batch.
    fsync_interval: float = Field(default=1.0, ge=0)


class StdoutSettings(Section):
    enabled: bool = False


class ScheduleSettings(Section):
    totals_interval: float = Field(default=60.0, ge=1)
    devices_interval: float = Field(default=300.0, ge=1)
    jitter: float = Field(default=5.0, ge=0)
    max_in_flight: int = Field(default=1000, ge=1)
    # Seconds between live reads (enphase_live) of metered gateways, 1 to 59; 0: off.
    live_interval: int = Field(default=0, ge=0, le=59)


class InfluxDBSettings(Section):
    url: str
    api: Literal["v1", "v2"] = "v2"
    # v2 (InfluxDB 2.x, Cloud, 3.x)
    org: str | None = None
    bucket: str | None = None
    device_bucket: str | None = None
    live_bucket: str | None = None  # enphase_live; default: bucket
    token: SecretStr | None = None
    token_file: str | None = None
    # v1 (InfluxDB 1.x)
    database: str | None = None
    device_database: str | None = None
    live_database: str | None = None  # enphase_live; default: database
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    verify_tls: bool = True
    timeout: float = Field(default=10.0, gt=0)
    gzip: bool = True
    batch_size: int = Field(default=5000, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> InfluxDBSettings:
        load_secret_files(self, ("token", "password"))
        if self.api == "v2" and not self.bucket:
            raise ValueError("bucket is required with api = 'v2'")
        if self.api == "v1" and not self.database:
            raise ValueError("database is required with api = 'v1'")
        return self


class SpoolSettings(Section):
    path: Path | None = None  # default: <state.directory>/spool.sqlite
    max_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)
    # Free space the spool leaves on its filesystem for the rest of the host.
    min_free_bytes: int = Field(default=100 * 1024 * 1024, ge=0)
    # Points held in memory while the spool cannot be written (oldest dropped first).
    memory_max_points: int = Field(default=200_000, ge=1000)
    dead_letter_path: Path | None = None  # default: <state.directory>/dead-letter.lp


class EnlightenSettings(Section):
    login_url: str = "https://enlighten.enphaseenergy.com/login/login.json"
    token_url: str = "https://entrez.enphaseenergy.com/tokens"  # noqa: S105 - a URL
    timeout: float = Field(default=30.0, gt=0)
    verify_tls: bool = True
    request_spacing: float = Field(default=1.0, ge=0)  # seconds between two cloud calls


def _default_state_dir() -> Path:
    # systemd's StateDirectory= sets $STATE_DIRECTORY.
    return Path(os.environ.get("STATE_DIRECTORY", "./state"))


class StateSettings(Section):
    directory: Path = Field(default_factory=_default_state_dir)


class EnergySettings(Section):
    raw_counters: bool = False
    state_flush_interval: float = Field(default=300.0, ge=0)


class HealthSettings(Section):
    enabled: bool = False
    listen: str = "127.0.0.1:9842"


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    gateways: list[GatewaySettings] = []
    gateways_file: Path | None = None  # CSV, merged with gateways (see gateways_file.py)
    shard: str | None = None  # "I/N" or "auto/N": poll only this shard's gateways
    event_loop: EventLoopChoice = "auto"  # see eventloop.py
    file: FileSettings = FileSettings()
    stdout: StdoutSettings = StdoutSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    influxdb: InfluxDBSettings | None = None
    spool: SpoolSettings = SpoolSettings()
    enlighten: EnlightenSettings = EnlightenSettings()
    state: StateSettings = Field(default_factory=StateSettings)
    energy: EnergySettings = EnergySettings()
    health: HealthSettings = HealthSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives through init kwargs (see load_settings); env wins over it.
        return (env_settings, init_settings)

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str | None) -> str | None:
        if v is not None:
            parse_shard(v)  # raises ValueError naming the problem
        return v

    @model_validator(mode="after")
    def _some_gateways(self) -> Settings:
        if not self.gateways and self.gateways_file is None:
            raise ValueError(
                "gateways: required key is missing (give [[gateways]] tables or a gateways_file)"
            )
        return self

    @property
    def shard_spec(self) -> Shard | None:
        """This worker's shard (``auto/N`` resolved from the host name), or None."""
        return parse_shard(self.shard) if self.shard is not None else None

    @property
    def spool_path(self) -> Path:
        return self.spool.path or self.state.directory / "spool.sqlite"

    @property
    def dead_letter_path(self) -> Path:
        return self.spool.dead_letter_path or self.state.directory / "dead-letter.lp"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _describe(exc: ValidationError) -> str:
    """One line per problem, each naming the key, without echoing values (they may be secret)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in err["loc"] if p not in {"function-after"})
        key = _loc(loc)  # empty for Settings' own checks: their message names the key
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{key}: {msg}" if key else msg)
    return "\n".join(lines)


def find_config(path: Path | None) -> Path | None:
    """The settings file to read: ``path`` if given, else the first default that exists."""
    if path is not None:
        return path
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: Path | None = None) -> Settings:
    """Read settings from ``path`` (or a default location) and the environment.

    Raises :class:`SettingsError` with one line per problem.
    """
    data: dict[str, Any] = {}
    config = find_config(path)
    if config is not None:
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"{config}: settings file not found") from None
        except OSError as exc:
            raise SettingsError(f"{config}: cannot read ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config}: not valid TOML ({exc})") from None
    has_env_gateways = any(k.startswith(f"{ENV_PREFIX}GATEWAYS") for k in os.environ)
    if config is None and not data.get("gateways") and not has_env_gateways:
        where = " or ".join(str(p) for p in DEFAULT_CONFIG_PATHS)
        raise SettingsError(
            f"no settings file: pass -c/--config, or create {where} (see settings.example.toml)"
        )
    prefix = f"{config}: " if config else ""
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise SettingsError(prefix + _describe(exc).replace("\n", "\n" + prefix)) from None
    places = [f"{prefix}gateways[{i}]" for i in range(len(settings.gateways))]
    gateways = list(settings.gateways)
    if settings.gateways_file is not None:
        path = settings.gateways_file.expanduser()
        if config is not None and not path.is_absolute():
            path = config.parent / path  # next to the settings file (a ConfigMap, /etc/...)
        for line, gw in _read_gateways_file(path):
            gateways.append(gw)
            places.append(f"{path}: line {line}")
    check_unique(gateways, places)
    return settings.model_copy(update={"gateways": gateways})


def _read_gateways_file(path: Path) -> list[tuple[int, GatewaySettings]]:
    """The gateways of a ``gateways_file``, validated like ``[[gateways]]`` tables."""
    out, problems = [], []
    for line, cells in read_rows(path, GatewaySettings.model_fields):
        try:
            out.append((line, GatewaySettings(**cells)))
        except ValidationError as exc:
            for problem in _describe(exc).splitlines():
                problems.append(f"{path}: line {line}: {problem}")
    if problems:
        raise SettingsError("\n".join(problems))
    return out
