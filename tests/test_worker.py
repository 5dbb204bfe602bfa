"""The worker end to end against the synthetic simulator, in both firmware
families: legacy (http + digest) and modern (https + JWT). The simulator's clock
is frozen at noon so every written value can be checked exactly against its model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from envoy_ingest.cli import main
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.render_totals import api_v1_production
from envoy_ingest.worker import CycleResult, Worker
from tests.lp import Line, read_dir
from tests.worker_settings import gateway_table, midday_timezone, write_settings

NOON = 1718971200  # 2024-06-21 12:00 UTC


def frozen(**kw: object) -> SimulatorConfig:
    return SimulatorConfig(start_time=NOON, time_scale=0, **kw)  # type: ignore[arg-type]


def only(lines: list[Line], measurement: str, **tags: str) -> Line:
    found = [
        ln
        for ln in lines
        if ln.measurement == measurement and all(ln.tags.get(k) == v for k, v in tags.items())
    ]
    assert len(found) == 1, (measurement, tags, found)
    return found[0]


def test_modern_https_jwt_site_with_cts_and_iq_batteries(tmp_path: Path) -> None:
    cfg = frozen(family="modern", cts="1phase", batteries="iq", battery_count=2, inverters=12)
    with Simulator(cfg) as sim:
        assert sim.model is not None
        r = sim.model.reading(NOON)
        rc = main(["run", "--once", "-c", str(write_settings(tmp_path, gateway_table(sim)))])
        requests = list(sim.requests)
    assert rc == 0
    lines = read_dir(tmp_path / "data")
    # The totals point, and the grid energies the devices job read from the
    # net-consumption CT (written at the CT's own timestamp, here the same).
    (battery_system,) = [ln for ln in lines if "battery_available_wh" in ln.fields]
    system, grid = sorted(
        (ln for ln in lines if ln.measurement == "enphase_system" and ln is not battery_system),
        key=lambda ln: "grid_import_lifetime_wh" in ln.fields,
    )
    assert system.tags == grid.tags == {"gateway": sim.serial, "site": "home"}
    assert system.time == grid.time == NOON
    assert grid.fields == {
        "grid_import_lifetime_wh": round(r.import_lifetime, 3),
        "grid_export_lifetime_wh": round(r.export_lifetime, 3),
    }
    f = system.fields
    assert f["production_w"] == round(r.production_w, 3)
    assert f["production_today_wh"] == round(r.prod_today, 3)
    assert f["production_lifetime_wh"] == round(r.prod_lifetime, 3)
    assert f["consumption_w"] == round(r.consumption_w, 3)
    assert f["consumption_today_wh"] == round(r.cons_today, 3)
    assert f["net_w"] == round(r.consumption_w - r.production_w - r.battery_w, 3)
    assert f["inverters"] == 12
    assert f["batteries"] == 2
    assert f["battery_soc_pct"] == pytest.approx(r.soc, abs=0.5)
    assert f["battery_w"] == pytest.approx(r.battery_w, abs=1)
    assert f["battery_state"] in {"charging", "discharging", "idle", "full"}
    meter, energy = sorted(
        (ln for ln in lines if ln.tags.get("flow") == "production"),
        key=lambda ln: "delivered_lifetime_wh" in ln.fields,
    )
    assert meter.tags["phase"] == energy.tags["phase"] == "l1"
    assert meter.fields["power_w"] == f["production_w"]
    assert energy.fields["delivered_lifetime_wh"] == round(r.prod_lifetime, 3)
    inverters = [ln for ln in lines if ln.measurement == "enphase_inverter"]
    assert len(inverters) == 12
    by_serial = {ln.tags["serial"]: ln for ln in inverters}
    for report in sim.model.inverters(NOON):
        ln = by_serial[report.serial]
        assert ln.time == report.report_time
        assert ln.fields["power_w"] == float(round(report.watts))
        assert ln.fields["producing"] is True
    batteries = [ln for ln in lines if ln.measurement == "enphase_battery"]
    assert len(batteries) == 2
    assert {b.tags["type"] for b in batteries} == {"encharge"}
    # The request plan: /info, the probe, then one cycle of each job; nothing else.
    paths = [p for _, p in requests]
    assert paths.count("/production.json?details=1") == 2  # probe + totals
    assert paths.count("/ivp/ensemble/power") == 1  # read with the totals, reused by devices
    # The battery system every devices cycle; the storage settings at the first
    # (the synthetic gateway has no /admin/lib/tariff: 404, learned).
    assert paths.count("/ivp/ensemble/secctrl") == 1
    assert paths.count("/admin/lib/tariff") == 1
    site = sim.model.site
    capacity = round(site.storage_wh)
    reserve = round(site.battery_reserve_pct)
    assert battery_system.fields == {
        "battery_available_wh": float(round(r.stored_wh)),
        "battery_capacity_wh": float(capacity),
        "battery_backup_wh": float(round(capacity * reserve / 100)),
        "battery_reserve_pct": float(reserve),
        "battery_reserve_configured_pct": float(reserve),
    }
    # at the latest battery report (secctrl carries no time of its own)
    assert battery_system.time == max(b.time for b in batteries)


def test_legacy_http_digest_site_without_cts(tmp_path: Path) -> None:
    with Simulator(frozen(family="legacy", cts="none", inverters=12)) as sim:
        assert sim.model is not None
        r = sim.model.reading(NOON)
        api = api_v1_production(sim.model, NOON)
        before = int(time.time())
        table = gateway_table(sim, timezone=midday_timezone())
        rc = main(["run", "--once", "-c", str(write_settings(tmp_path, table))])
        after = int(time.time())
    assert rc == 0
    lines = read_dir(tmp_path / "data")
    system = only(lines, "enphase_system")
    f = system.fields
    # /api/v1/production gives whole numbers (here the inverters' reports) and no
    # time: the poll time is used.
    assert f["production_w"] == float(api["wattsNow"])
    assert f["production_today_wh"] == float(api["wattHoursToday"])
    assert f["production_7d_wh"] == float(api["wattHoursSevenDays"])
    assert f["production_lifetime_wh"] == float(api["wattHoursLifetime"])
    assert abs(f["production_w"] - r.production_w) < 0.2 * r.production_w
    assert before <= system.time <= after
    for absent in ("consumption_w", "net_w", "battery_w", "battery_soc_pct", "batteries"):
        assert absent not in f
    assert not [ln for ln in lines if ln.measurement == "enphase_meter"]
    assert len([ln for ln in lines if ln.measurement == "enphase_inverter"]) == 12


def test_a_dead_gateway_fails_the_run_but_not_the_others(tmp_path: Path) -> None:
    with Simulator(frozen(family="legacy", inverters=4)) as sim:
        cfg = write_settings(
            tmp_path,
            gateway_table(sim, "good"),
            'host = "http://127.0.0.1:9"\nname = "dead"\nconnect_timeout = 2',
        )
        started = time.monotonic()
        rc = main(["run", "--once", "-c", str(cfg)])
        elapsed = time.monotonic() - started
    assert rc == 1
    lines = read_dir(tmp_path / "data")
    assert {ln.tags["site"] for ln in lines} == {"good"}
    assert only(lines, "enphase_system", site="good").fields["inverters"] == 4
    assert elapsed < 15


def test_settings_error_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(tmp_path, 'host = "h"\nusernam = "envoy"')
    assert main(["run", "--once", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"envoy-ingest: settings error: {path}: gateways[0].usernam: unknown key\n"


def test_scheduled_run_polls_on_its_intervals(tmp_path: Path) -> None:
    """The scheduler runs totals every interval and devices less often, each
    gateway's jobs one at a time, and stops cleanly."""
    with Simulator(SimulatorConfig(family="modern", cts="1phase", inverters=4)) as sim:
        path = write_settings(
            tmp_path,
            gateway_table(sim),
            extra="[schedule]\ntotals_interval = 1\ndevices_interval = 3\njitter = 0\n",
        )
        from envoy_ingest.settings import load_settings

        settings: Settings = load_settings(path)
        results: list[CycleResult] = []
        worker = Worker(settings, on_result=results.append)

        async def go() -> None:
            asyncio.get_running_loop().call_later(6.5, worker.stop)
            await worker.run_forever()

        asyncio.run(go())
    totals = [r for r in results if r.job == "totals"]
    devices = [r for r in results if r.job == "devices"]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert 5 <= len(totals) <= 8
    assert 2 <= len(devices) <= 3
    written = read_dir(tmp_path / "data")
    system = [ln for ln in written if ln.measurement == "enphase_system"]
    # One totals point per totals cycle, one grid reading per devices cycle.
    grid = [ln for ln in system if "grid_import_lifetime_wh" in ln.fields]
    assert (len(system) - len(grid), len(grid)) == (len(totals), len(devices))


def test_firmware_update_is_noticed_and_the_gateway_probed_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A firmware update reboots the gateway: the failed poll makes the worker
    read /info again, see the new firmware, and probe its capabilities anew
    (here the update also added CTs, so production.json replaces /api/v1)."""
    import socket

    from envoy_ingest.settings import load_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    old = frozen(family="legacy", firmware="5.0.62", cts="none", inverters=4, port=port)
    new = frozen(family="legacy", firmware="6.0.4", cts="1phase", inverters=4, port=port)
    path = write_settings(tmp_path, f'host = "http://127.0.0.1:{port}"\nname = "home"')
    worker = Worker(load_settings(path))
    poller = worker.pollers[0]

    results: list[CycleResult] = []
    requests: list[tuple[str, str]] = []

    async def go() -> None:
        with Simulator(old):
            results.append(await worker.poll(poller, "totals"))
        results.append(await worker.poll(poller, "totals"))  # rebooting: no answer
        with Simulator(new) as sim:
            results.append(await worker.poll(poller, "totals"))
            requests.extend(sim.requests)
        await poller.aclose()

    asyncio.run(go())
    first, down, after = results
    assert [first.ok, down.ok, after.ok] == [True, False, True]
    assert poller.info is not None and poller.info.firmware == "6.0.4"
    assert poller.caps is not None and poller.caps.production_ct
    assert "firmware changed from 5.0.62 to 6.0.4" in caplog.text
    paths = [p for _, p in requests]
    assert paths[0] == "/info"
    assert paths.count("/production.json?details=1") == 2  # the new probe, then the poll
    (system,) = [p for p in after.points if p.measurement == "enphase_system"]
    assert "consumption_w" in system.fields
    # Both are annotations (docs/schema.md, enphase_event).
    events = {p.tags["kind"]: p for p in after.points if p.measurement == "enphase_event"}
    assert sorted(events) == ["firmware", "reprobe"]
    assert events["firmware"].fields == {"text": "firmware changed from 5.0.62 to 6.0.4"}
    assert events["firmware"].tags["gateway"] == poller.serial


def test_a_probe_during_a_reboot_decides_nothing(tmp_path: Path) -> None:
    """Right after a reboot a modern gateway serves /info but answers 503 for the
    rest: the worker must not settle on an empty request plan, but probe again."""
    from envoy_ingest.settings import load_settings

    with Simulator(frozen(family="modern", cts="1phase", inverters=4)) as sim:
        worker = Worker(load_settings(write_settings(tmp_path, gateway_table(sim))))
        poller = worker.pollers[0]
        undecided: list[bool] = []

        async def go() -> list[CycleResult]:
            loop = asyncio.get_running_loop()
            sim.reboot(2.0)
            during = await poller.poll("totals", deadline=loop.time() + 1.0)
            undecided.append(poller.caps is None)
            await asyncio.sleep(2.0)
            after = await poller.poll("totals", deadline=loop.time() + 5.0)
            await poller.aclose()
            return [during, after]

        during, after = asyncio.run(go())
    assert not during.ok
    assert during.error is not None
    assert "the gateway does not serve production data yet" in during.error
    assert undecided == [True]  # no request plan was settled on during the reboot
    assert after.ok
    assert poller.caps is not None and poller.caps.production_ct
    (system,) = [p for p in after.points if p.measurement == "enphase_system"]
    assert system.time == NOON


def test_a_plan_made_from_after_reboot_zeros_is_revisited(tmp_path: Path) -> None:
    """3.x answers all-zero production right after a reboot; a plan decided then
    (no /api/v1/production) is probed again within the hour, not kept forever."""
    from envoy_ingest.settings import load_settings
    from envoy_ingest.worker import poller as poller_module

    with Simulator(frozen(family="legacy", firmware="3.17.3", inverters=4)) as sim:
        worker = Worker(load_settings(write_settings(tmp_path, gateway_table(sim))))
        poller = worker.pollers[0]
        now = [1_000_000.0]
        poller.steady = lambda: now[0]  # the interval clock
        sources: list[str | None] = []

        async def go() -> None:
            sim.reboot(1.0)
            await poller.poll("totals")
            sources.append(poller.caps.production_source if poller.caps else None)
            await asyncio.sleep(1.2)
            await poller.poll("totals")  # within the hour: same plan
            sources.append(poller.caps.production_source if poller.caps else None)
            now[0] += poller_module.REPROBE_SECONDS + 1
            await poller.poll("totals")
            sources.append(poller.caps.production_source if poller.caps else None)
            await poller.aclose()

        asyncio.run(go())
    assert sources == ["inverters", "inverters", "api_v1"]


def test_a_gateway_answering_503_after_it_answered_is_a_reboot_event(tmp_path: Path) -> None:
    """Newer firmware answers 503 while it boots: one `reboot` event per episode,
    sent with the first points after it, and the counters carry on unchanged."""
    from envoy_ingest.settings import load_settings

    with Simulator(frozen(family="modern", cts="1phase", inverters=4)) as sim:
        worker = Worker(load_settings(write_settings(tmp_path, gateway_table(sim))))
        poller = worker.pollers[0]

        async def go() -> list[CycleResult]:
            loop = asyncio.get_running_loop()
            results = [await poller.poll("totals")]
            sim.reboot(1.5)
            for _ in range(2):
                results.append(await poller.poll("totals", deadline=loop.time() + 0.5))
            await asyncio.sleep(1.0)
            sim.advance(60)
            results.append(await poller.poll("totals", deadline=loop.time() + 5.0))
            await poller.aclose()
            return results

        before, down1, down2, after = asyncio.run(go())
    assert [before.ok, down1.ok, down2.ok, after.ok] == [True, False, False, True]
    events = [p for p in after.points if p.measurement == "enphase_event"]
    assert [(e.tags["kind"], e.fields["text"]) for e in events] == [
        ("reboot", "the gateway answers 503 (service unavailable): it is rebooting")
    ]
    (first,) = [p for p in before.points if p.measurement == "enphase_system"]
    (last,) = [p for p in after.points if p.measurement == "enphase_system"]
    was, now = first.fields["production_lifetime_wh"], last.fields["production_lifetime_wh"]
    assert isinstance(was, float) and isinstance(now, float)
    assert 0 < now - was < 100  # a noon minute later: written as read, no step
