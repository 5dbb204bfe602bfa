"""Shared test fixtures.

Recorded gateway answers are read in place from ``../shared/fixtures/envoy``
(never copied into the repository). Without them the tests that need them skip
on a developer machine, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The test support (real servers, fakes, the `servers` marker): see tests/support/.
pytest_plugins = [
    "tests.support.servers",
    "tests.support.fakes",
    "tests.support.markers",
    "tests.support.loops",
]

REPO = Path(__file__).resolve().parent.parent
FIXTURES_ROOT = Path(
    os.environ.get("ENVOY_FIXTURES", REPO.parent / "shared" / "fixtures" / "envoy")
).resolve()


def fixture_sets() -> list[str]:
    """Names of the recorded gateway sets (directories) available."""
    if not FIXTURES_ROOT.is_dir():
        return []
    return sorted(p.name for p in FIXTURES_ROOT.iterdir() if p.is_dir())


def require_fixtures() -> Path:
    """The fixtures directory; fail under CI=true, skip elsewhere, when it is missing."""
    if FIXTURES_ROOT.is_dir() and any(FIXTURES_ROOT.iterdir()):
        return FIXTURES_ROOT
    msg = f"recorded gateway fixtures not found at {FIXTURES_ROOT}"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def fixtures_root() -> Path:
    return require_fixtures()


@pytest.fixture(autouse=True)
def _no_envoy_ingest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own ENVOY_INGEST_* variables never leak into a test."""
    for key in list(os.environ):
        if key.startswith("ENVOY_INGEST_"):
            monkeypatch.delenv(key)
