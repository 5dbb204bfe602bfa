"""envoy-ingest: poll Enphase Envoy / IQ Gateways and write their data to InfluxDB.

The pipeline reads left to right::

    envoy/ (transport, auth, firmware, capabilities)
      -> normalize/ (pure: JSON -> Point)
      -> sink/ (line protocol, spool, writers)

wired together by ``worker/`` and nothing else.
"""

from importlib.metadata import PackageNotFoundError, version

from envoy_ingest.point import FieldValue, Point

try:
    # One source of truth: pyproject.toml's version, as installed (CHANGELOG.md
    # names the same one).
    __version__ = version("envoy-ingest")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["FieldValue", "Point", "__version__"]
