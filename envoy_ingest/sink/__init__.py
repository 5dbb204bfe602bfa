"""Sinks: where points go. See :class:`envoy_ingest.sink.base.Sink`.

:func:`build_sink` picks the sink from the settings (the file sink, or InfluxDB
behind the durable spool, plus stdout); :func:`check_sink` checks it for
``envoy-ingest check``.
"""

from envoy_ingest.sink.base import DeliveryReport, FanoutSink, Sink
from envoy_ingest.sink.build import build_sink, build_writer, check_sink
from envoy_ingest.sink.delivery import SinkStats, SpooledDelivery
from envoy_ingest.sink.file import FileSink
from envoy_ingest.sink.spool import Spool
from envoy_ingest.sink.spool_read import SpoolStats
from envoy_ingest.sink.stdout import StdoutSink

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
