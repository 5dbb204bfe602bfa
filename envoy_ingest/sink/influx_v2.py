"""The v2 writer: ``/api/v2/write`` through influxdb-client's write API.

Serves InfluxDB 2.x, InfluxDB Cloud, InfluxDB 3 (the database name as bucket)
and other servers of the same API (VictoriaMetrics). The client is used in its
SYNCHRONOUS mode, one request per call, in a worker thread so the event loop
never waits on the network; our spool does the batching and retrying, so the
client's own retries are off (``retries=False`` is its default). The token goes
in the ``Authorization: Token`` header, never in a URL or a message.

influxdb-client is imported only when a v2 writer is built: it costs ~0.2 s
and ~15 MB that the file sink does not need.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from envoy_ingest.point import KINDS, Kind
from envoy_ingest.settings import InfluxDBSettings
from envoy_ingest.sink.answers import (
    Outcome,
    WriteResult,
    classify,
    display_url,
    short,
    unreachable,
)

_PRECISION: Any = "s"  # influxdb_client.WritePrecision.S

#: The setting that names each kind's bucket.
_KEYS: dict[Kind, str] = {
    "totals": "influxdb.bucket",
    "devices": "influxdb.device_bucket",
    "live": "influxdb.live_bucket",
}


def _reason(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            data = json.loads(body)
        except ValueError:
            return str(body)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])
        return str(body)
    headers = getattr(exc, "headers", None) or {}
    for key in ("X-Platform-Error-Code", "X-Influx-Error", "X-Influxdb-Error"):
        if headers.get(key):
            return str(headers[key])
    return str(getattr(exc, "reason", "") or "")


class InfluxV2Writer:
    def __init__(self, settings: InfluxDBSettings) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.rest import ApiException

        assert settings.bucket, "influxdb.bucket is required with api = 'v2'"
        self.url = settings.url
        self.name = f"InfluxDB v2 API at {display_url(self.url)}"
        self._org = settings.org or ""
        self._buckets: dict[Kind, str] = {
            "totals": settings.bucket,
            "devices": settings.device_bucket or settings.bucket,
            "live": settings.live_bucket or settings.bucket,
        }
        self._has_token = settings.token is not None
        self._api_exception: type[Exception] = ApiException
        # An empty token sends no Authorization header (servers without auth).
        self._client: Any = InfluxDBClient(
            url=self.url,
            token=settings.token.get_secret_value() if settings.token else "",
            org=self._org,
            timeout=int(settings.timeout * 1000),
            enable_gzip=settings.gzip,
            verify_ssl=settings.verify_tls,
        )
        self._write_api: Any = self._client.write_api(write_options=SYNCHRONOUS)

    def destination(self, target: Kind) -> str:
        return f"bucket {self._buckets[target]!r}"

    def _refused(self, target: Kind) -> dict[int, str]:
        key = _KEYS[target]
        bucket = self._buckets[target]
        token = (
            "the server refused the token: check influxdb.token (or influxdb.token_file)"
            if self._has_token
            else "the server requires a token: set influxdb.token (or influxdb.token_file)"
        )
        return {
            401: token,
            403: f"the token may not write to bucket {bucket!r}: check influxdb.token",
            404: (
                f"bucket {bucket!r} (org {self._org!r}) not found: check {key} and "
                "influxdb.org; for InfluxDB 1.x set influxdb.api = 'v1'"
            ),
        }

    def _write_sync(self, target: Kind, body: bytes) -> WriteResult:
        try:
            if body:
                self._write_api.write(
                    bucket=self._buckets[target],
                    org=self._org,
                    record=body,
                    write_precision=_PRECISION,
                )
            else:  # empty probe (check): the write API would skip it
                from influxdb_client.service import write_service

                service_class: Any = write_service.WriteService
                service = service_class(self._client.api_client)
                service.post_write(
                    org=self._org,
                    bucket=self._buckets[target],
                    body=b"",
                    precision=_PRECISION,
                    content_type="text/plain; charset=utf-8",
                )
        except self._api_exception as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if status == 0:  # the client's way of saying "no response"
                return unreachable(self.url, exc)
            headers = getattr(exc, "headers", None) or {}
            return classify(status, _reason(exc), headers, refused=self._refused(target))
        except Exception as exc:  # urllib3 / socket errors: the network, not the data
            return unreachable(self.url, exc)
        return WriteResult(Outcome.OK)

    async def write(self, target: Kind, body: bytes) -> WriteResult:
        return await asyncio.to_thread(self._write_sync, target, body)

    def _version(self) -> str:
        try:
            return str(self._client.version())
        except self._api_exception as exc:
            if getattr(exc, "status", None):  # it answered (e.g. 401 on InfluxDB 3)
                return ""
            raise

    async def check(self) -> list[tuple[bool, str]]:
        url = display_url(self.url)
        try:
            version = await asyncio.to_thread(self._version)
        except Exception as exc:
            return [(False, f"{url} is not reachable: {short(str(exc)) or type(exc).__name__}")]
        known = version and version.lower() not in ("unknown", "unknown version")
        about = f" ({version})" if known else ""
        lines = [(True, f"InfluxDB v2 API{about} reachable at {url}")]
        seen: set[str] = set()
        for target in KINDS:
            bucket = self._buckets[target]
            if bucket in seen:
                continue
            seen.add(bucket)
            # An empty write checks token, permission and bucket, and writes nothing.
            # InfluxDB 2.x answers 400 "writing requires points" only after those passed.
            result = await self.write(target, b"")
            ok = result.outcome is Outcome.OK or result.status == 400
            if ok:
                lines.append((True, f"bucket {bucket!r} accepts writes"))
            else:
                lines.append((False, f"bucket {bucket!r}: {result.message}"))
        return lines

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        self._write_api.close()
        self._client.close()
