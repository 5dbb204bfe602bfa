"""The ``servers`` marker, set at collection on every test that starts a server or
a process, so that ``pytest -m "not servers"`` runs only the fast, in-process
tests. Nothing to do in a new test: it is marked when it uses a fixture that
starts a server (directly or through another fixture), or when its module uses
a server class (the simulator, a real server, the scripted fake) or
``subprocess``.
"""

from __future__ import annotations

import subprocess
from types import ModuleType

import pytest

from envoy_ingest.simulator import Simulator
from tests.support.fakes import FakeInflux
from tests.support.servers import ServerProcess

SERVER_FIXTURES = frozenset({"influxdb1", "influxdb1_auth", "victoria_metrics", "fake_influx"})
_SERVER_CLASSES = (Simulator, ServerProcess, FakeInflux)


def starts_servers(module: ModuleType | None) -> bool:
    """Whether a test module uses a server class or runs processes."""
    if module is None:
        return False
    for value in vars(module).values():
        if value is subprocess or getattr(value, "__module__", None) == "subprocess":
            return True
        if isinstance(value, type) and issubclass(value, _SERVER_CLASSES):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    by_module: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        name = getattr(module, "__name__", "")
        if name not in by_module:
            by_module[name] = starts_servers(module)
        fixtures = set(getattr(item, "fixturenames", ()))
        if by_module[name] or fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.servers)
