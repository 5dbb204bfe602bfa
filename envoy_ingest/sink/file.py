"""The file sink: line protocol in one ``YYYY-MM-DD.lp`` file per UTC day.

The embedded default when no ``[influxdb]`` table is configured. The day is
the point's own time (UTC), so a late report lands in the file of the day it
describes. Each batch is appended as whole lines and fsynced before
:meth:`FileSink.submit` returns (see :mod:`envoy_ingest.sink._append`). The
files import into InfluxDB later, unchanged::

    influx write --bucket solar --precision s --file data/2026-11-23.lp
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from envoy_ingest.errors import SinkError
from envoy_ingest.point import Point
from envoy_ingest.sink._append import LineAppender
from envoy_ingest.sink.base import ImmediateSink
from envoy_ingest.sink.lineprotocol import encode_point


def day_file(directory: Path, time: int) -> Path:
    """The file a point with timestamp ``time`` (seconds) belongs in."""
    return directory / f"{datetime.fromtimestamp(time, UTC):%Y-%m-%d}.lp"


class FileSink(ImmediateSink):
    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.points_written = 0
        self._appender = LineAppender()

    def submit(self, points: Sequence[Point]) -> None:
        by_file: dict[Path, list[str]] = defaultdict(list)
        for point in points:
            line = encode_point(point)
            if line is not None:
                by_file[day_file(self.directory, point.time)].append(line + "\n")
        for path in sorted(by_file):
            lines = by_file[path]
            try:
                self._appender.append(path, "".join(lines).encode())
            except OSError as exc:
                raise SinkError(
                    f"cannot write {path}: {exc.strerror or exc} (check file.directory)"
                ) from None
            self.points_written += len(lines)
