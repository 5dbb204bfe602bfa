"""Builders: points of the data contract made by hand, and what the real servers
store for them, for the sink tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy_ingest.backoff import Backoff
from envoy_ingest.point import Point
from envoy_ingest.settings import InfluxDBSettings
from envoy_ingest.sink import Spool, SpooledDelivery, build_writer
from tests.lp import Line
from tests.support.servers import Sample

GATEWAY = "122238082690"


def totals_points(t: int, gateway: str = GATEWAY, site: str | None = "home") -> list[Point]:
    """What one totals cycle writes for a 3-phase metered site with batteries: 1 + 6 points."""
    k = t % 997
    system = Point(
        "enphase_system",
        {
            "production_w": 1234.5 + k,
            "production_today_wh": 8123.25 + k,
            "production_lifetime_wh": 31_234_567.0 + k,
            "consumption_w": 456.75,
            "net_w": -777.75 + k,
            "inverters": 24,
            "batteries": 2,
            "battery_w": -300.5,
            "battery_soc_pct": 57.0,
            "battery_state": "charging",
        },
        t,
    )
    meters = [
        Point(
            "enphase_meter",
            {
                "power_w": 400.125 + i + k,
                "voltage_v": 230.5,
                "current_a": 1.75,
                "power_factor": 0.98,
            },
            t,
            {"flow": flow, "phase": phase},
        )
        for i, (flow, phase) in enumerate(
            (f, p) for f in ("production", "net") for p in ("l1", "l2", "l3")
        )
    ]
    return [p.with_tags(gateway=gateway, site=site) for p in [system, *meters]]


def device_points(
    t: int, gateway: str = GATEWAY, site: str | None = "home", inverters: int = 24
) -> list[Point]:
    """What one devices cycle writes: ``inverters`` microinverters and 2 IQ batteries."""
    points = [
        Point(
            "enphase_inverter",
            {
                "power_w": 200.5 + i,
                "max_power_w": 295.0,
                "producing": True,
                "communicating": True,
                "provisioned": True,
                "lifetime_wh": 1_000_000.25 + t % 997,
            },
            t,
            {"serial": f"48221{i:07d}"},
        )
        for i in range(inverters)
    ]
    points += [
        Point(
            "enphase_battery",
            {
                "power_w": -150.25,
                "soc_pct": 57.0,
                "max_power_w": 3840.0,
                "temperature_c": 21.0,
                "producing": False,
                "communicating": True,
                "state": "charging",
            },
            t,
            {"serial": f"4823{i:08d}", "type": "encharge"},
        )
        for i in range(2)
    ]
    return [p.with_tags(gateway=gateway, site=site) for p in points]


def influx_sink(
    directory: Path,
    influxdb: dict[str, Any],
    *,
    batch_size: int = 5000,
    max_bytes: int = 64 * 1024 * 1024,
    backoff: tuple[float, float] = (0.02, 0.2),
) -> SpooledDelivery[Spool]:
    """An InfluxDB sink on ``directory/spool.sqlite`` (dead letters in
    ``directory/dead-letter.lp``), built from an ``[influxdb]`` table such as
    ``server.influxdb_settings()``, with a fast backoff for tests."""
    writer = build_writer(InfluxDBSettings(**influxdb))
    return SpooledDelivery(
        writer,
        Spool(directory / "spool.sqlite", max_bytes),
        directory / "dead-letter.lp",
        batch_size=batch_size,
        backoff=Backoff(*backoff),
        close_grace=2.0,
    )


def expected_lines(points: list[Point]) -> list[Line]:
    """The points as :class:`tests.lp.Line`, sorted as :meth:`InfluxDB1.lines` sorts.
    Points of one series at one time are one line, as InfluxDB stores them (e.g. a
    meter's power and the CT energies read by the other job at the same second)."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...], int], Line] = {}
    for p in points:
        key = (p.measurement, tuple(sorted(p.tags.items())), p.time)
        line = merged.setdefault(key, Line(p.measurement, dict(p.tags), {}, p.time))
        line.fields.update(p.fields)
    return [merged[key] for key in sorted(merged)]


def expected_samples(points: list[Point]) -> list[Sample]:
    """The points as VictoriaMetrics stores them: strings 0, booleans 0/1."""
    out = []
    for p in points:
        labels = tuple(sorted(p.tags.items()))
        for key, value in p.fields.items():
            number = 0.0 if isinstance(value, str) else float(value)
            out.append(Sample(f"{p.measurement}_{key}", labels, p.time, number))
    return sorted(out, key=lambda s: (s.name, s.labels, s.time, s.value))
