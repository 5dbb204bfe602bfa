"""Both event loops the worker can run on (``envoy_ingest/eventloop.py``): the test
modules that drive the gateway sockets run each of their async tests once on
Python's own loop and once on uvloop (the default where it is installed)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
import uvloop

from envoy_ingest.eventloop import LoopFactory

#: Modules whose async tests run on both loops: the socket code and the client on it.
BOTH_LOOPS = frozenset(
    {"test_http11", "test_http11_refused", "test_http11_faults", "test_client", "test_event_loop"}
)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    module = getattr(item, "module", None)
    if module is None or module.__name__.rpartition(".")[2] not in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop}  # (a single loop adds no test id)
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
