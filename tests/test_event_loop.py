"""eventloop.py: which event loop the commands run on, and the setting that chooses."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
import uvloop

from envoy_ingest.cli import main
from envoy_ingest.errors import SettingsError
from envoy_ingest.eventloop import loop_factory, run
from envoy_ingest.settings import load_settings


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_takes_uvloop_when_it_is_installed() -> None:
    name, factory = loop_factory("auto")
    assert name == "uvloop"
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert run(_loop_module()) == "uvloop"
    assert run(_loop_module(), "uvloop") == "uvloop"


def test_asyncio_takes_pythons_own_loop() -> None:
    assert loop_factory("asyncio") == ("asyncio", asyncio.new_event_loop)
    assert run(_loop_module(), "asyncio") == "asyncio.unix_events"


def test_without_uvloop_auto_falls_back_and_uvloop_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory("auto") == ("asyncio", asyncio.new_event_loop)
    assert run(_loop_module()) == "asyncio.unix_events"
    with pytest.raises(SettingsError) as err:
        loop_factory("uvloop")
    assert str(err.value).startswith('event_loop = "uvloop", but uvloop cannot be imported (')
    assert str(err.value).endswith('); install it (pip install uvloop) or set event_loop = "auto"')


def test_the_setting_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('event_loop = "tokio"\n[[gateways]]\nhost = "h"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert "event_loop" in str(err.value)
    assert "'auto', 'uvloop' or 'asyncio'" in str(err.value)
    path.write_text('event_loop = "asyncio"\n[[gateways]]\nhost = "h"\n')
    assert load_settings(path).event_loop == "asyncio"


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_a_command_runs_on_the_chosen_loop(
    tmp_path: Path, choice: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.toml"
    # Nothing listens on port 9 of this loopback address: check fails fast (exit 1).
    path.write_text(
        f'event_loop = "{choice}"\n[[gateways]]\nhost = "http://127.0.0.1:9"\n'
        f'connect_timeout = 1\n[state]\ndirectory = "{tmp_path}"\n'
    )
    with caplog.at_level(logging.DEBUG, logger="envoy_ingest.eventloop"):
        assert main(["check", "-c", str(path)]) == 1
    expected = "uvloop" if choice == "auto" else "asyncio"
    assert [r.getMessage() for r in caplog.records if r.name == "envoy_ingest.eventloop"] == [
        f"event loop: {expected}"
    ]
