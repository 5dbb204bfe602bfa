"""Live points are the first to go: the spool and the memory queue, when full,
drop live rows before any totals or devices row, and a live batch that finds
no live row to make room for it is not stored rather than cost a totals point."""

from __future__ import annotations

from pathlib import Path

from envoy_ingest.sink.memory import MemoryQueue
from envoy_ingest.sink.spool import ROW_OVERHEAD, Spool
from envoy_ingest.telemetry import metrics

MiB = 1024 * 1024
SIZE = 1000
PER_ROW = SIZE + ROW_OVERHEAD


def body(kind: str, i: int) -> bytes:
    line = f"enphase_{kind},gateway=g power_w={i}.5 {1795478340 + i}"
    return line.ljust(SIZE - 1, " ").encode() + b"\n"


def dropped(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "envoy_ingest_dropped_points_total", {"reason": reason}
    )
    return value or 0.0


def targets(spool: Spool) -> list[str]:
    return [e.target for e in spool.peek(10**7)]


def test_a_full_spool_drops_live_rows_first_and_never_a_totals_row(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", MiB)
    live_before, totals_before = dropped("live_spool_max_bytes"), dropped("spool_max_bytes")
    totals = [("totals", body("system", i), 1) for i in range(300)]
    for row in totals:
        spool.append([row])
    n_live = 3 * MiB // PER_ROW  # three times what the whole spool holds
    for i in range(n_live):
        assert spool.append([("live", body("live", i), 1)]) in (0, 1)
    kept = targets(spool)
    # Every totals row is still there, oldest first; the live rows kept are the newest.
    assert kept[:300] == ["totals"] * 300
    live_kept = len(kept) - 300
    assert 0 < live_kept < n_live
    assert [e.body for e in spool.peek(10**7)][300:] == [
        body("live", i) for i in range(n_live - live_kept, n_live)
    ]
    assert spool.dropped_points == n_live - live_kept
    assert dropped("live_spool_max_bytes") - live_before == n_live - live_kept
    assert dropped("spool_max_bytes") == totals_before

    # New totals rows push out live rows, not older totals rows.
    more = [("totals", body("system", 1000 + i), 1) for i in range(live_kept // 2)]
    for row in more:
        spool.append([row])
    after = [e.body for e in spool.peek(10**7)]
    assert [b for b in after if b.startswith(b"enphase_system")] == [b for _, b, _ in totals + more]
    assert dropped("spool_max_bytes") == totals_before
    spool.close()


def test_a_spool_full_of_totals_refuses_a_live_batch_rather_than_drop_totals(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool.sqlite", MiB)
    for i in range(2 * MiB // PER_ROW):  # full of totals (the oldest dropped, as ever)
        spool.append([("totals", body("system", i), 1)])
    held = [e.body for e in spool.peek(10**7)]
    live_before, points_before = dropped("live_spool_max_bytes"), spool.dropped_points
    # Fifty live rows in one batch: they fit only where the spool has slack; no
    # totals row goes for them.
    got = spool.append([("live", body("live", i), 1) for i in range(50)])
    rows = spool.peek(10**7)
    assert [e.body for e in rows if e.target == "totals"] == held
    stored = sum(1 for e in rows if e.target == "live")
    assert stored < 5  # the slack under the bound: a few 1 kB rows
    assert got == 50 - stored
    assert spool.dropped_points - points_before == 50 - stored
    assert dropped("live_spool_max_bytes") - live_before == 50 - stored
    spool.close()


def test_the_memory_queue_drops_live_rows_first() -> None:
    queue = MemoryQueue(1000)
    assert queue.append([("totals", b"t\n" * 600, 600)]) == 0
    assert queue.append([("live", f"l{i}\n".encode(), 1) for i in range(300)]) == 0
    # 300 more live points: 200 over, the 200 oldest live rows go.
    assert queue.append([("live", f"m{i}\n".encode(), 1) for i in range(300)]) == 200
    assert queue.dropped_live == 200
    rows = queue.rows()
    assert rows[0] == ("totals", b"t\n" * 600, 600)
    assert [b for _, b, _ in rows[1:]] == [f"l{i}\n".encode() for i in range(200, 300)] + [
        f"m{i}\n".encode() for i in range(300)
    ]
    # Totals push out live rows: 300 new totals points, 300 live points go.
    assert queue.append([("totals", b"u\n" * 300, 300)]) == 300
    assert queue.dropped_live == 300
    assert [t for t, _, _ in queue.rows()] == ["totals"] + ["live"] * 100 + ["totals"]
    # New live rows push out older live rows.
    assert queue.append([("live", b"x\n", 1)] * 100) == 100
    assert queue.dropped_live == 100
    assert [b for _, b, _ in queue.rows()[2:]] == [b"x\n"] * 100
    assert queue.append([("totals", b"v\n" * 50, 50)]) == 50
    assert queue.dropped_live == 50
    # Only when no live row is left does the oldest totals row go (a whole row).
    assert queue.append([("totals", b"w\n" * 100, 100)]) == 50 + 600
    assert queue.dropped_live == 50
    assert [n for _, _, n in queue.rows()] == [300, 50, 100]
