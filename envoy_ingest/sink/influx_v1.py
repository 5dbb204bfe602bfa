"""The InfluxDB 1.x writer: ``POST /write?db=...&rp=...&precision=s`` through httpx.

Credentials go in an ``Authorization: Basic`` header, never as the ``u``/``p``
query parameters InfluxDB 1.x also accepts: a URL ends up in logs (httpx logs
every request line), a header does not. Per-device points go to
``device_database`` and live points (enphase_live) to ``live_database`` when
they are set.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx

from envoy_ingest.point import Kind
from envoy_ingest.settings import InfluxDBSettings
from envoy_ingest.sink import answers

# Bodies larger than this are gzipped in a thread, off the event loop.
_GZIP_INLINE_LIMIT = 64 * 1024
#: The setting that names each kind's database.
_KEYS: dict[Kind, str] = {
    "totals": "influxdb.database",
    "devices": "influxdb.device_database",
    "live": "influxdb.live_database",
}


def _reason(resp: httpx.Response) -> str:
    header = resp.headers.get("X-Influxdb-Error")
    if header:
        return str(header)
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return resp.text
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return resp.text


class InfluxV1Writer:
    def __init__(
        self,
        settings: InfluxDBSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        assert settings.database, "influxdb.database is required with api = 'v1'"
        self.url = settings.url
        self.name = f"InfluxDB 1.x at {answers.display_url(self.url)}"
        self._databases: dict[Kind, str] = {
            "totals": settings.database,
            "devices": settings.device_database or settings.database,
            "live": settings.live_database or settings.database,
        }
        self._rp = settings.retention_policy or None
        self._username = settings.username
        self._gzip = settings.gzip
        auth = None
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._client = httpx.AsyncClient(
            base_url=self.url,
            auth=auth,
            timeout=settings.timeout,
            verify=settings.verify_tls,
            follow_redirects=False,
            transport=transport,
        )

    def destination(self, target: Kind) -> str:
        return f"database {self._databases[target]!r}"

    def _refused(self, target: Kind) -> dict[int, str]:
        key = _KEYS[target]
        db = self._databases[target]
        if self._username:
            auth = (
                f"InfluxDB refused user {self._username!r}: check influxdb.username and "
                "influxdb.password (or influxdb.password_file)"
            )
        else:
            auth = (
                "InfluxDB requires authentication: set influxdb.username and "
                "influxdb.password (or influxdb.password_file)"
            )
        return {
            401: auth,
            403: (
                f"user {self._username!r} may not write to database {db!r}: grant it WRITE, "
                "or check influxdb.username"
            ),
            404: f'database {db!r} not found: create it (CREATE DATABASE "{db}") or fix {key}',
        }

    def _params(self, target: Kind) -> dict[str, str]:
        params = {"db": self._databases[target], "precision": "s"}
        if self._rp:
            params["rp"] = self._rp
        return params

    async def _post(self, target: Kind, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        content = body
        if self._gzip and body:
            if len(body) > _GZIP_INLINE_LIMIT:
                content = await asyncio.to_thread(gzip.compress, body, 6)
            else:
                content = gzip.compress(body, 6)
            headers["Content-Encoding"] = "gzip"
        return await self._client.post(
            "/write", params=self._params(target), content=content, headers=headers
        )

    async def write(self, target: Kind, body: bytes) -> answers.WriteResult:
        try:
            resp = await self._post(target, body)
        except httpx.HTTPError as exc:
            return answers.unreachable(self.url, exc)
        return answers.classify(
            resp.status_code, _reason(resp), resp.headers, refused=self._refused(target)
        )

    async def check(self) -> list[tuple[bool, str]]:
        url = answers.display_url(self.url)
        try:
            ping = await self._client.get("/ping")
        except httpx.HTTPError as exc:
            return [
                (False, f"InfluxDB at {url} is not reachable: {answers.short(str(exc)) or exc!r}")
            ]
        version = ping.headers.get("X-Influxdb-Version", "unknown version")
        lines = [(True, f"InfluxDB ({version}) reachable at {url}")]
        seen: set[str] = set()
        for target, db in self._databases.items():
            if db in seen:
                continue
            seen.add(db)
            # An empty write checks exactly what we need (auth, WRITE privilege,
            # database) and writes nothing.
            result = await self.write(target, b"")
            as_user = f" as user {self._username!r}" if self._username else ""
            if result.outcome is answers.Outcome.OK:
                lines.append((True, f"database {db!r} accepts writes{as_user}"))
            else:
                lines.append((False, f"database {db!r}: {result.message}"))
        return lines

    async def aclose(self) -> None:
        await self._client.aclose()
