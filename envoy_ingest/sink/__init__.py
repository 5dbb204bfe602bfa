"""Sinks: where points go. See :class:`envoy_ingest.sink.base.Sink`."""

from envoy_ingest.sink.base import DeliveryReport, Sink

__all__ = ["DeliveryReport", "Sink"]
