"""envoy-ingest: poll Enphase Envoy / IQ Gateways and write their data to InfluxDB.

The pipeline reads left to right::

    envoy/ (transport, auth, firmware, capabilities)
      -> normalize/ (pure: JSON -> Point)
      -> sink/ (line protocol, spool, writers)

wired together by ``worker/`` and nothing else.
"""

from envoy_ingest.point import FieldValue, Point

__version__ = "0.1.0"

__all__ = ["FieldValue", "Point", "__version__"]
