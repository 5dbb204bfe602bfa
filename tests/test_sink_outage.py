"""Outages and crashes against real servers: every point arrives exactly once.

VictoriaMetrics keeps duplicate samples (same series and time) side by side,
so counting them there proves "exactly once"; InfluxDB would silently merge
duplicates, so against it these tests prove "every point".
"""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from envoy_ingest.point import Point
from tests.support.builders import (
    device_points,
    expected_lines,
    expected_samples,
    influx_sink,
    totals_points,
)
from tests.support.servers import InfluxDB1, VictoriaMetrics

T0 = 1748995140  # Tue 2025-06-03 23:59 UTC: past (VictoriaMetrics exports up to now), mid-shard
CYCLE = 0.05  # seconds of test time per simulated minute


def cycle_points(i: int) -> list[Point]:
    """Minute ``i``: the totals, and every 5th minute the devices too."""
    t = T0 + 60 * i
    return totals_points(t) + (device_points(t) if i % 5 == 0 else [])


def assert_exactly_once(vm: VictoriaMetrics, points: list[Point]) -> None:
    samples = vm.samples()
    counts = collections.Counter(samples)
    duplicates = [s for s, n in counts.items() if n > 1]
    assert not duplicates, f"{len(duplicates)} duplicated samples, e.g. {duplicates[0]}"
    assert samples == expected_samples(points)


@pytest.mark.parametrize("kind", ["victoria-metrics", "influxdb1"])
async def test_server_outage_while_polling_loses_and_duplicates_nothing(
    kind: str, tmp_path: Path
) -> None:
    root = tmp_path / "server"
    server: VictoriaMetrics | InfluxDB1 = (
        VictoriaMetrics(root) if kind == "victoria-metrics" else InfluxDB1(root)
    )
    server.first_start()
    try:
        sink = influx_sink(tmp_path, server.influxdb_settings(), backoff=(0.02, 0.1))
        await sink.start()
        submitted: list[Point] = []
        for i in range(45):
            if i == 10:
                server.stop()  # InfluxDB goes away while polling goes on
            if i == 35:
                server.start()  # ... and comes back, same data directory
            points = cycle_points(i)
            sink.submit(points)
            submitted += points
            await asyncio.sleep(CYCLE)
            if i == 34:
                assert sink.spool.pending_points > 0  # it was really kept back
        report = await sink.drain(10)
        stats = sink.stats()
        await sink.close()
        assert report.complete and report.delivered == len(submitted)
        assert stats.dead_lettered == 0 and stats.dropped == 0
        if isinstance(server, VictoriaMetrics):
            assert_exactly_once(server, submitted)
        else:
            assert server.lines() == expected_lines(submitted)
    finally:
        server.kill()


CHILD = """
import asyncio, sys
from pathlib import Path
from tests.support.builders import influx_sink
from tests.test_sink_outage import cycle_points

async def main() -> None:
    sink = influx_sink(
        Path(sys.argv[1]),
        {"url": sys.argv[2], "api": "v2", "org": "home", "bucket": "solar"},
        backoff=(0.01, 0.05),
    )
    await sink.start()  # delivery keeps failing: the server is down
    i = int(sys.argv[3])
    while True:
        sink.submit(cycle_points(i))
        print(i, flush=True)  # after submit returned: the spool accepted it
        i += 1
        await asyncio.sleep(0.002)

asyncio.run(main())
"""


async def test_kill_9_during_an_outage_then_restart_delivers_everything_once(
    tmp_path: Path,
) -> None:
    vm = VictoriaMetrics(tmp_path / "server")  # its port is chosen; it is not running yet
    repo = Path(__file__).resolve().parent.parent
    acknowledged: list[int] = []  # cycles whose submit returned
    maybe: list[int] = []  # the cycle a kill may have caught committed but unprinted
    start = 0
    for _ in range(2):  # two workers killed in turn, the second resuming the spool
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), vm.url, str(start)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=repo,
        )
        assert child.stdout is not None
        for _ in range(100):
            line = child.stdout.readline()
            assert line, "the worker died"
            acknowledged.append(int(line))
        child.send_signal(signal.SIGKILL)
        child.wait()
        maybe.append(acknowledged[-1] + 1)
        start = acknowledged[-1] + 2  # skip it, so that no cycle is submitted twice
    vm.first_start()
    try:
        sink = influx_sink(tmp_path, vm.influxdb_settings())
        report = await sink.drain(20)
        await sink.close()
        assert report.complete
        samples = vm.samples()
    finally:
        vm.kill()
    counts = collections.Counter(samples)
    assert max(counts.values()) == 1, "a sample was delivered twice"
    stored = set(samples)
    must = expected_samples([p for i in acknowledged for p in cycle_points(i)])
    may = expected_samples([p for i in maybe for p in cycle_points(i)])
    assert stored >= set(must)
    assert stored <= set(must) | set(may)
