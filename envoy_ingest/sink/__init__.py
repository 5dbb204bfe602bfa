"""Sinks: where points go. See :class:`envoy_ingest.sink.base.Sink`.

:func:`build_sink` picks the sink from the settings (the file sink, or InfluxDB
behind the durable spool, plus stdout); :func:`check_sink` checks it for
``envoy-ingest check``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from envoy_ingest.sink.base import DeliveryReport, FanoutSink, Sink
from envoy_ingest.sink.build import build_sink, build_writer, check_sink
from envoy_ingest.sink.file import FileSink
from envoy_ingest.sink.stdout import StdoutSink

if TYPE_CHECKING:
    from envoy_ingest.sink.delivery import SinkStats, SpooledDelivery
    from envoy_ingest.sink.spool import Spool
    from envoy_ingest.sink.spool_read import SpoolStats

# The spool's side, imported on first use: a worker with the file sink never
# loads sqlite3 (about 1 MB of memory).
_LAZY = {
    "SinkStats": "delivery",
    "SpooledDelivery": "delivery",
    "Spool": "spool",
    "SpoolStats": "spool_read",
}

__all__ = [
    "DeliveryReport",
    "FanoutSink",
    "FileSink",
    "Sink",
    "SinkStats",
    "Spool",
    "SpoolStats",
    "SpooledDelivery",
    "StdoutSink",
    "build_sink",
    "build_writer",
    "check_sink",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
