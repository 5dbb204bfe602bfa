"""build_sink / check_sink: which sink the settings give, and what `check` says."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.errors import SinkError
from envoy_ingest.settings import Settings
from envoy_ingest.sink import (
    FanoutSink,
    FileSink,
    SpooledDelivery,
    StdoutSink,
    build_sink,
    check_sink,
)
from tests.support.builders import influx_sink, totals_points

T0 = 1748995140


def settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        gateways=[{"host": "192.0.2.1"}],
        file={"directory": tmp_path / "data"},
        state={"directory": tmp_path / "state"},
        **extra,
    )


V1 = {"url": "http://127.0.0.1:9", "api": "v1", "database": "solar"}
V2 = {"url": "http://127.0.0.1:9", "api": "v2", "org": "home", "bucket": "solar"}


async def test_file_sink_without_influxdb(tmp_path: Path) -> None:
    sink = build_sink(settings(tmp_path))
    assert isinstance(sink, FileSink) and sink.directory == tmp_path / "data"
    assert await check_sink(settings(tmp_path)) == [
        (True, f"file: writing to {tmp_path / 'data'} (no [influxdb] table)")
    ]


async def test_stdout_joins_the_main_sink(tmp_path: Path) -> None:
    sink = build_sink(settings(tmp_path, stdout={"enabled": True}))
    assert isinstance(sink, FanoutSink)
    assert [type(s) for s in sink.sinks] == [FileSink, StdoutSink]
    lines = await check_sink(settings(tmp_path, stdout={"enabled": True}))
    assert lines[1] == (True, "stdout: printing every point as line protocol")


@pytest.mark.parametrize("table", [V1, V2])
async def test_influxdb_behind_the_spool_in_the_state_directory(
    tmp_path: Path, table: dict[str, str]
) -> None:
    s = settings(tmp_path, influxdb=table, spool={"max_bytes": 2 * 1024 * 1024})
    sink = build_sink(s)
    assert isinstance(sink, SpooledDelivery)
    assert sink.spool.path == tmp_path / "state" / "spool.sqlite"
    assert sink.spool.max_bytes == 2 * 1024 * 1024
    assert sink.dead_letter_path == tmp_path / "state" / "dead-letter.lp"
    with pytest.raises(SinkError, match="in use by another envoy-ingest process"):
        build_sink(s)
    sink.submit(totals_points(T0))
    await sink.close()
    lines = await check_sink(s)
    assert lines[0][0] is False and "127.0.0.1:9" in lines[0][1]
    assert lines[-1][0] is True
    assert lines[-1][1].startswith("7 points waiting in the spool (0.0 MiB of 2.0 MiB, oldest")


async def test_drain_gives_up_at_its_timeout_and_says_what_waits(tmp_path: Path) -> None:
    sink = influx_sink(tmp_path, V1, backoff=(0.05, 0.2))
    sink.submit(totals_points(T0))
    started = time.monotonic()
    report = await sink.drain(0.5)
    assert time.monotonic() - started < 1.0
    assert report.pending == 7 and not report.complete
    await sink.close()


async def test_background_delivery_never_blocks_submit(tmp_path: Path) -> None:
    """With a write hanging at the server, submit still returns at once: it only
    commits to the spool, and the delivery task waits on its own."""
    requests = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await reader.readline()  # the request line: a write is in flight
        requests.set()
        await asyncio.sleep(3600)  # never answers

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hanging = 60.0  # the writer's timeout: a submit that waited would wait this long
    sink = influx_sink(tmp_path, {**V1, "url": f"http://127.0.0.1:{port}", "timeout": hanging})
    await sink.start()
    sink.submit(totals_points(T0))
    await asyncio.wait_for(requests.wait(), 30)
    worst = 0.0
    for i in range(1, 21):
        started = time.monotonic()
        sink.submit(totals_points(T0 + 60 * i))
        worst = max(worst, time.monotonic() - started)
        await asyncio.sleep(0.01)
    assert not sink.report().complete
    assert sink.spool.pending_points == 21 * 7  # all committed, none delivered
    assert worst < hanging / 2
    await sink.close()
    for task in handlers:
        task.cancel()
    server.close()
    await server.wait_closed()
