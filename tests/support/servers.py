"""Real servers: InfluxDB 1.x (``influxd``) and VictoriaMetrics, and their fixtures.

Each fixture starts its own server on free loopback ports with a temporary data
directory and stops it afterwards (both start in well under a second). Without
the binary the tests skip on a developer machine and FAIL under ``CI=true``
(``make test-servers`` installs them: Debian's ``influxdb`` and
``victoria-metrics``).

- ``influxdb1`` / ``influxdb1_auth``: InfluxDB 1.6.7 with auth off / on (an
  admin user is created; database ``solar`` exists). Read back with
  :meth:`InfluxDB1.lines` (exact field types, from ``SHOW FIELD KEYS``).
- ``victoria_metrics``: the real server behind influxdb-client's
  ``/api/v2/write``; read back with :meth:`VictoriaMetrics.samples` (strings are
  stored as 0, booleans as 0/1; ``bucket`` is not stored).

``server.influxdb_settings()`` gives the ``[influxdb]`` table for a settings
file, for end-to-end tests of the worker.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lp import FieldValue, Line

START_TIMEOUT = 15.0


def require_binary(name: str) -> str:
    """The binary's path; fail under CI=true, skip elsewhere, when it is missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if Path(p).exists()), None
    )
    if path:
        return path
    msg = (
        f"{name} not found: `make test-servers` installs it "
        "(apt-get install influxdb victoria-metrics)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server binary run in the background; stop/start keep ports and data."""

    name = "server"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def new_ports(self) -> None:
        """Pick other free ports (after losing a race for the first ones)."""
        raise NotImplementedError

    def first_start(self) -> None:
        """Start; on new ports if another process took the first ones (3 tries)."""
        for attempt in range(3):
            try:
                self.start()
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                self.new_ports()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.name} did not start in {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), as a service manager would."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _get(self, url: str) -> int | None:
        try:
            return httpx.get(url, timeout=0.5).status_code
        except httpx.HTTPError:
            return None


# --- InfluxDB 1.x ----------------------------------------------------------------


class InfluxDB1(ServerProcess):
    name = "influxd"

    def __init__(
        self,
        root: Path,
        *,
        auth: bool = False,
        max_body_size: int = 25_000_000,
        database: str | None = "solar",
    ) -> None:
        super().__init__(root)
        self.binary = require_binary("influxd")
        self.auth = auth
        self.max_body_size = max_body_size
        self.database = database
        self.admin = ("admin", "admin-secret-pw")
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        config = self.root / "influxdb.conf"
        config.write_text(
            f"""reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.root}/meta"
  logging-enabled = false
[data]
  dir = "{self.root}/data"
  wal-dir = "{self.root}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  max-body-size = {self.max_body_size}
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
        )
        return [self.binary, "-config", str(config)]

    def ready(self) -> bool:
        return self._get(f"{self.url}/ping") == 204

    def new_ports(self) -> None:
        self.port, self.rpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def first_start(self) -> None:
        super().first_start()
        if self.auth:
            user, password = self.admin
            self.query(f"CREATE USER {user} WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
        if self.database:
            self.create_database(self.database)

    def query(self, q: str, db: str | None = None, **params: str) -> dict[str, Any]:
        data = {"q": q, **params}
        if db:
            data["db"] = db
        auth = self.admin if self.auth else None
        resp = httpx.post(f"{self.url}/query", data=data, auth=auth, timeout=10)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        for result in body.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL {q!r}: {result['error']}")
        return body

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def create_user(self, name: str, password: str, *, grant: str | None = None) -> None:
        """Create a non-admin user; ``grant`` e.g. ``'READ ON "solar"'``."""
        self.query(f"CREATE USER \"{name}\" WITH PASSWORD '{password}'")
        if grant:
            self.query(f'GRANT {grant} TO "{name}"')

    def field_types(self, db: str) -> dict[tuple[str, str], str]:
        """``(measurement, field) -> float|integer|boolean|string``."""
        out: dict[tuple[str, str], str] = {}
        for series in self.query("SHOW FIELD KEYS", db)["results"][0].get("series", []):
            for key, kind in series["values"]:
                out[(series["name"], key)] = kind
        return out

    def lines(self, db: str | None = None, measurement: str = "/.*/") -> list[Line]:
        """Every point in ``db``, with tags and exact field types, sorted."""
        db = db or self.database
        assert db
        types = self.field_types(db)
        result = self.query(f"SELECT * FROM {measurement} GROUP BY *", db, epoch="s")
        out: list[Line] = []
        for series in result["results"][0].get("series", []):
            name = series["name"]
            columns = series["columns"]
            for row in series["values"]:
                fields: dict[str, FieldValue] = {}
                for col, value in zip(columns[1:], row[1:], strict=True):
                    if value is None:
                        continue
                    kind = types.get((name, col))
                    fields[col] = float(value) if kind == "float" else value
                tags = {k: v for k, v in series.get("tags", {}).items() if v != ""}
                out.append(Line(name, tags, fields, int(row[0])))
        return sorted(out, key=lambda ln: (ln.measurement, sorted(ln.tags.items()), ln.time))

    def count(self, db: str | None = None) -> int:
        return len(self.lines(db))

    def influxdb_settings(self, **extra: Any) -> dict[str, Any]:
        table: dict[str, Any] = {"url": self.url, "api": "v1", "database": self.database}
        if self.auth:
            table["username"], table["password"] = self.admin
        table.update(extra)
        return table


# --- VictoriaMetrics --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sample:
    """One stored sample. Equal when name, labels and time match and the values
    agree to 1e-12: VictoriaMetrics stores floats as a decimal mantissa and
    exponent, so the last bit or two of a double may differ."""

    name: str  # <measurement>_<field>
    labels: tuple[tuple[str, str], ...]
    time: int  # seconds
    value: float

    def key(self) -> tuple[str, tuple[tuple[str, str], ...], int]:
        return (self.name, self.labels, self.time)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        return self.key() == other.key() and math.isclose(
            self.value, other.value, rel_tol=1e-12, abs_tol=1e-12
        )

    def __hash__(self) -> int:
        return hash(self.key())


class VictoriaMetrics(ServerProcess):
    name = "victoria-metrics"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.binary = require_binary("victoria-metrics")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.root / 'data'}",
            "-retentionPeriod=100y",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-loggerLevel=ERROR",
            "-search.disableCache",
        ]

    def ready(self) -> bool:
        return self._get(f"{self.url}/health") == 200

    def new_ports(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def flush(self) -> None:
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()

    def samples(self, match: str = '{__name__=~"enphase_.*"}') -> list[Sample]:
        """Every stored sample (duplicates included), sorted."""
        self.flush()
        resp = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, timeout=30)
        resp.raise_for_status()
        out = []
        for text in resp.text.splitlines():
            if not text.strip():
                continue
            series = json.loads(text)
            metric = dict(series["metric"])
            name = metric.pop("__name__")
            labels = tuple(sorted(metric.items()))
            for value, ts in zip(series["values"], series["timestamps"], strict=True):
                out.append(Sample(name, labels, ts // 1000, float(value)))
        return sorted(out, key=lambda s: (s.name, s.labels, s.time, s.value))

    def influxdb_settings(self, **extra: Any) -> dict[str, Any]:
        table: dict[str, Any] = {"url": self.url, "api": "v2", "org": "home", "bucket": "solar"}
        table.update(extra)
        return table


# --- fixtures ------------------------------------------------------------------------


@contextlib.contextmanager
def _tempdir(prefix: str) -> Iterator[Path]:
    # A directory of its own, outside the test's tmp_path: a server's files stay apart.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _influxdb1(auth: bool) -> Iterator[InfluxDB1]:
    with _tempdir("influxd-") as root:
        server = InfluxDB1(root, auth=auth)
        server.first_start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture
def influxdb1() -> Iterator[InfluxDB1]:
    """A fresh InfluxDB 1.x without authentication; database ``solar``."""
    yield from _influxdb1(auth=False)


@pytest.fixture
def influxdb1_auth() -> Iterator[InfluxDB1]:
    """A fresh InfluxDB 1.x with authentication on; admin user ``server.admin``."""
    yield from _influxdb1(auth=True)


@pytest.fixture
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    with _tempdir("vm-") as root:
        server = VictoriaMetrics(root)
        server.first_start()
        try:
            yield server
        finally:
            server.stop()
