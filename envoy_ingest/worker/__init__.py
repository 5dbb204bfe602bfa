"""The scheduler that wires envoy/ -> normalize/ -> sink/ and nothing else."""

from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from envoy_ingest.worker.scheduler import Worker

__all__ = ["CycleResult", "GatewayPoller", "Worker"]
