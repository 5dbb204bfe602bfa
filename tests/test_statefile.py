"""State files: atomic replacement and quarantine of damaged files."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from envoy_ingest.statefile import quarantine, write_atomic


def test_write_atomic_replaces_whole_file_with_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_write_atomic_failure_raises_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # a directory where the file should go: the rename fails
    (path / "keep").write_bytes(b"old")
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert (path / "keep").read_bytes() == b"old"


def test_quarantine_moves_aside_with_timestamp(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "counters.json"
    path.write_bytes(b"\x00garbage")
    caplog.set_level(logging.ERROR)
    first = quarantine(path, "not JSON", clock=0.0)
    path.write_bytes(b"again")
    second = quarantine(path, "not JSON", clock=0.0)
    assert first == tmp_path / "counters.json.corrupt-19700101T000000Z"
    assert second == tmp_path / "counters.json.corrupt-19700101T000000Z-2"
    assert first.read_bytes() == b"\x00garbage"
    assert not path.exists()
    assert "moved it aside to counters.json.corrupt-19700101T000000Z" in caplog.text
