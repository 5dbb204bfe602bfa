"""The stdout sink: every point as line protocol on standard output."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from envoy_ingest.point import Point
from envoy_ingest.sink.base import ImmediateSink
from envoy_ingest.sink.lineprotocol import encode

log = logging.getLogger(__name__)


class StdoutSink(ImmediateSink):
    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._broken = False

    def submit(self, points: Sequence[Point]) -> None:
        if self._broken:
            return
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(encode(points))
            stream.flush()
        except BrokenPipeError:
            # `envoy-ingest run | head`: stop printing, keep polling.
            self._broken = True
            log.warning("standard output was closed; no longer printing points")
