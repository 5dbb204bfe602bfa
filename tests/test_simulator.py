"""The synthetic gateway over real HTTP: shapes of real firmware, values of a
plausible day, counters that only grow, faults, reboots and the request record."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envoy_ingest.envoy.firmware import parse_info
from envoy_ingest.envoy.passwords import envoy_password
from envoy_ingest.errors import SettingsError
from envoy_ingest.simulator import Simulator, SimulatorConfig, serve_forever
from tests.conftest import require_fixtures

NOON = 1718971200  # 2024-06-21 12:00 UTC: the site's solar noon (UTC, longitude 0)
MIDNIGHT = NOON + 12 * 3600


def client(sim: Simulator) -> httpx.Client:
    """A client authenticated as the gateway's family expects."""
    if sim.family == "modern":
        headers = {"Authorization": f"Bearer {sim.issue_token()}"}
        return httpx.Client(base_url=sim.url, verify=False, headers=headers, timeout=10)
    auth = httpx.DigestAuth("envoy", envoy_password(sim.serial))
    return httpx.Client(base_url=sim.url, auth=auth, timeout=10)


def get_json(sim: Simulator, path: str) -> Any:
    with client(sim) as c:
        r = c.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return r.json()


def frozen(**kw: Any) -> SimulatorConfig:
    return SimulatorConfig(**{"start_time": NOON, "time_scale": 0.0, **kw})


@pytest.fixture(scope="module")
def modern() -> Iterator[Simulator]:
    with Simulator(frozen(family="modern", cts="1phase", batteries="acb", inverters=12)) as sim:
        yield sim


@pytest.fixture(scope="module")
def modern_iq() -> Iterator[Simulator]:
    cfg = frozen(family="modern", cts="3phase", batteries="iq", inverters=9, battery_count=2)
    with Simulator(cfg) as sim:
        yield sim


@pytest.fixture(scope="module")
def legacy() -> Iterator[Simulator]:
    with Simulator(frozen(family="legacy", cts="none", inverters=12)) as sim:
        yield sim


# --- shapes of real firmware -----------------------------------------------------


def shape(obj: Any) -> Any:
    """Keys (in order) and kinds of a JSON value; a list by its first element."""
    if isinstance(obj, dict):
        return [(k, shape(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [shape(obj[0])] if obj else []
    if isinstance(obj, bool):
        return "bool"
    return "number" if isinstance(obj, int | float) else type(obj).__name__


def recorded(name: str, path: str) -> Any:
    return json.loads((require_fixtures() / name / path).read_text())


def test_modern_shapes_are_those_of_real_firmware(modern: Simulator) -> None:
    prod = get_json(modern, "/production.json?details=1")
    real = recorded("8.2.4345_with_device_data", "production.json_details_1")
    for key in ("production", "consumption"):
        assert [shape(e) for e in prod[key]] == [shape(e) for e in real[key]], key
    acb_real = recorded("8.2.4382_ACB", "production.json")["storage"][0]
    assert shape(prod["storage"][0]) == shape(acb_real)
    device_data = get_json(modern, "/ivp/pdm/device_data")
    dd_real = recorded("8.2.4345_with_device_data", "ivp_pdm_device_data")
    assert shape(device_data["553648384"]) == shape(dd_real["553648384"])  # a pcu
    assert shape(device_data["704643328"]) == shape(dd_real["704643328"])  # the eim
    acb_dd = recorded("8.3.5169_ACB_inventory", "ivp_pdm_device_data")["721420544"]
    assert shape(device_data["721420544"]) == shape(acb_dd)
    assert device_data["deviceCount"] == 12 + 2 + 2 < device_data["deviceDataLimit"]
    inverters = get_json(modern, "/api/v1/production/inverters")
    inv_real = recorded("8.2.4382_ACB", "api_v1_production_inverters")
    assert shape(inverters[0]) == shape(inv_real[0])
    assert [i["devType"] for i in inverters] == [1] * 12 + [11] * 2
    inventory = get_json(modern, "/inventory.json")
    inv_json = recorded("8.3.5169_ACB_inventory", "inventory.json_deleted_1")
    assert [g["type"] for g in inventory] == [g["type"] for g in inv_json]
    for ours, theirs in zip(inventory[:2], inv_json[:2], strict=True):
        assert shape(ours["devices"][0]) == shape(theirs["devices"][0])
    assert get_json(modern, "/inventory.json?deleted=1") == inventory
    for path, real_name in (
        ("/ivp/meters", "ivp_meters"),
        ("/ivp/meters/readings", "ivp_meters_readings"),
    ):
        assert shape(get_json(modern, path)) == shape(
            recorded("8.2.4345_with_device_data", real_name)
        )
    assert shape(get_json(modern, "/ivp/ensemble/secctrl")) == shape(
        recorded("8.2.4382_ACB", "ivp_ensemble_secctrl")
    )


def test_modern_iq_battery_and_three_phase_shapes(modern_iq: Simulator) -> None:
    for path, real in (
        ("/ivp/ensemble/inventory", "ivp_ensemble_inventory"),
        ("/ivp/ensemble/power", "ivp_ensemble_power"),
    ):
        assert shape(get_json(modern_iq, path)) == shape(recorded("8.2.4382_ACB", real))
    prod = get_json(modern_iq, "/production.json?details=1")
    real = recorded("7.3.466_with_cts_3phase", "production.json")
    assert [len(e["lines"]) for e in prod["production"][1:] + prod["consumption"]] == [3, 3, 3]
    assert shape(prod["production"][1]) == shape(real["production"][1])
    assert "lines" not in get_json(modern_iq, "/production.json")["production"][1]
    meters = get_json(modern_iq, "/ivp/meters")
    assert [(m["measurementType"], m["phaseCount"]) for m in meters] == [
        ("production", 3),
        ("net-consumption", 3),
    ]


def test_legacy_shapes_are_those_of_real_firmware(legacy: Simulator) -> None:
    for path, real in (
        ("/production.json", "production.json"),
        ("/api/v1/production", "api_v1_production"),
        ("/api/v1/production/inverters", "api_v1_production_inverters"),
    ):
        assert shape(get_json(legacy, path)) == shape(recorded("5.0.62", real)), path
    metered = frozen(family="legacy", cts="1phase")
    with Simulator(metered) as sim:
        prod = get_json(sim, "/production.json")
        real = recorded("4.10.35", "production.json")
        for key in ("production", "consumption"):
            assert [shape(e) for e in prod[key]] == [shape(e) for e in real[key]]
        readings = get_json(sim, "/ivp/meters/readings")
        assert shape(readings) == shape(recorded("4.10.35", "ivp_meters_readings"))


def test_info_says_what_the_gateway_is(legacy: Simulator, modern: Simulator) -> None:
    old = parse_info(httpx.get(legacy.url + "/info").text)  # no auth needed
    assert (old.serial, old.software, old.imeter, old.web_tokens) == (
        "122238082690",
        "D5.0.62",
        False,
        False,
    )
    new = parse_info(httpx.get(modern.url + "/info", verify=False).text)
    assert (new.software, new.imeter, new.web_tokens, new.time) == ("D8.2.4345", True, True, NOON)
    assert modern.firmware == "8.2.4345" and legacy.firmware == "5.0.62"
    with Simulator(frozen(family="modern", firmware="7.6.175")) as sim:
        assert parse_info(httpx.get(sim.url + "/info", verify=False).text).version == (7, 6, 175)
        assert httpx.get(sim.url + "/ivp/pdm/device_data", verify=False).status_code == 401
        with client(sim) as c:
            assert c.get("/ivp/pdm/device_data").status_code == 404  # before 8.2


def test_endpoints_that_do_not_apply(legacy: Simulator, modern: Simulator) -> None:
    assert get_json(legacy, "/ivp/meters") == []
    assert get_json(legacy, "/ivp/meters/readings") == []
    with client(legacy) as c:
        for path in ("/ivp/ensemble/inventory", "/ivp/pdm/device_data", "/auth/check_jwt", "/x"):
            r = c.get(path)
            assert r.status_code == 404 and r.json() == {"error": "404 - Not Found"}, path
    assert get_json(modern, "/ivp/ensemble/inventory") == []
    assert get_json(modern, "/ivp/ensemble/power") == {"devices:": []}
    prod = get_json(legacy, "/production.json")
    assert list(prod) == ["production", "storage"]  # no CTs: no eim, no consumption
    assert prod["storage"][0] == {
        "type": "acb",
        "activeCount": 0,
        "readingTime": 0,
        "wNow": 0,
        "whNow": 0,
        "state": "idle",
    }
    with Simulator(frozen(family="legacy", firmware="3.9.36")) as sim, client(sim) as c:
        r = c.get("/production.json")  # 3.9.x: an HTML page with 200
        assert r.status_code == 200 and r.headers["content-type"] == "text/html"
        assert c.get("/ivp/meters").status_code == 404
        assert "devType" not in c.get("/api/v1/production/inverters").json()[0]


# --- values of a plausible day -------------------------------------------------------


def test_values_at_noon_agree_across_endpoints(modern: Simulator) -> None:
    assert modern.model is not None
    r = modern.model.reading(NOON)
    prod = get_json(modern, "/production.json?details=1")
    inv_entry, eim = prod["production"]
    total, net = prod["consumption"]
    assert eim["readingTime"] == total["readingTime"] == NOON
    assert eim["wNow"] == round(r.production_w, 3)
    assert eim["whToday"] == round(r.prod_today, 3)
    assert eim["whLifetime"] == round(r.prod_lifetime, 3)
    assert total["wNow"] == round(r.consumption_w, 3)
    assert net["wNow"] == round(r.consumption_w - r.production_w - r.battery_w, 3)
    assert (net["whToday"], net["whLastSevenDays"]) == (0, 0)  # as real gateways
    assert eim["lines"][0]["wNow"] == eim["wNow"]
    # A sunny June noon at 45 N: most of the array's 12 x 295 W.
    assert 0.6 * 12 * 295 < eim["wNow"] < 12 * 295
    assert eim["whLastSevenDays"] > 6 * eim["whToday"]
    # The inverters' own reports add up to the meter's reading.
    inverters = [i for i in get_json(modern, "/api/v1/production/inverters") if i["devType"] == 1]
    watts = sum(i["lastReportWatts"] for i in inverters)
    assert abs(watts - inv_entry["wNow"]) <= len(inverters)
    assert abs(inv_entry["wNow"] - eim["wNow"]) < 0.1 * eim["wNow"]
    assert all(NOON - 300 < i["lastReportDate"] <= NOON for i in inverters)
    assert inv_entry["readingTime"] == max(i["lastReportDate"] for i in inverters)
    # Device data tells the same story as the inverters list.
    dd = get_json(modern, "/ivp/pdm/device_data")
    devices = [d for d in dd.values() if isinstance(d, dict)]
    pcus = {d["sn"]: d["channels"][0] for d in devices if d["devName"] == "pcu"}
    for i in inverters:
        ch = pcus[i["serialNumber"]]
        assert ch["watts"]["now"] == i["lastReportWatts"]
        assert ch["lastReading"]["endDate"] == i["lastReportDate"]
    # The ACB's state agrees everywhere.
    storage = prod["storage"][0]
    acbs = get_json(modern, "/inventory.json")[1]["devices"]
    assert storage["percentFull"] == round(r.soc)
    assert {a["percentFull"] for a in acbs} == {storage["percentFull"]}
    assert storage["whNow"] == round(r.stored_wh)


def test_pinned_values_of_the_default_site() -> None:
    """The same config gives the same numbers (regression pins)."""
    with Simulator(frozen(family="legacy", cts="none", inverters=12)) as sim:
        api = get_json(sim, "/api/v1/production")
        first = get_json(sim, "/api/v1/production/inverters")[0]
    assert api == {
        "wattHoursToday": 8655,
        "wattHoursSevenDays": 130250,
        "wattHoursLifetime": 11032496,
        "wattsNow": 1922,
    }
    assert first == {
        "serialNumber": "122133312758",
        "lastReportDate": 1718970964,
        "devType": 1,
        "lastReportWatts": 165,
        "maxReportWatts": 204,
    }


def test_night_inverters_rest_and_batteries_discharge() -> None:
    cfg = frozen(family="modern", cts="1phase", batteries="iq", start_time=MIDNIGHT - 3 * 3600)
    with Simulator(cfg) as sim:
        prod = get_json(sim, "/production.json")
        assert prod["production"][0]["wNow"] == 0
        assert prod["production"][1]["wNow"] == 0.0
        inverters = get_json(sim, "/api/v1/production/inverters")
        # Reports stopped at dusk: lastReportDate stays at the evening's last one.
        assert all(i["lastReportDate"] < sim.now() - 3600 for i in inverters)
        inventory = get_json(sim, "/inventory.json")[0]["devices"]
        assert not any(d["producing"] or d["communicating"] for d in inventory)
        power = get_json(sim, "/ivp/ensemble/power")["devices:"]
        assert all(d["real_power_mw"] > 0 for d in power)  # discharging at 21:00
        secctrl = get_json(sim, "/ivp/ensemble/secctrl")
        assert 15 <= secctrl["agg_soc"] < 100
        assert secctrl["ENC_agg_avail_energy"] <= secctrl["Max_energy"] == 7000


def test_inverter_reports_move_every_five_minutes() -> None:
    with Simulator(frozen(family="legacy", inverters=4)) as sim:
        before = get_json(sim, "/api/v1/production/inverters")
        sim.advance(299)
        same = get_json(sim, "/api/v1/production/inverters")
        sim.advance(1)
        after = get_json(sim, "/api/v1/production/inverters")
    for a, b, c in zip(before, same, after, strict=True):
        assert c["lastReportDate"] - a["lastReportDate"] == 300
        assert a["lastReportDate"] <= b["lastReportDate"] <= c["lastReportDate"]


def test_counters_only_grow_over_a_compressed_run() -> None:
    """Two simulated days in about 2 s: counters grow, today resets at midnight."""
    cfg = SimulatorConfig(
        family="modern",
        cts="1phase",
        batteries="iq",
        start_time=MIDNIGHT - 4 * 3600,
        time_scale=3600 * 24,
    )
    samples: list[dict[str, Any]] = []
    with Simulator(cfg) as sim, client(sim) as c:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            prod = c.get("/production.json").json()
            api = c.get("/api/v1/production").json()
            soc = c.get("/ivp/ensemble/secctrl").json()["agg_soc"]
            samples.append({"prod": prod, "api": api, "soc": soc})
    assert len(samples) > 20
    resets = 0
    for a, b in itertools.pairwise(samples):
        pa, pb = a["prod"], b["prod"]
        assert pb["production"][1]["readingTime"] >= pa["production"][1]["readingTime"]
        for key, idx in (("production", 1), ("consumption", 0)):
            ea, eb = pa[key][idx], pb[key][idx]
            assert eb["whLifetime"] >= ea["whLifetime"], key
            if eb["whToday"] < ea["whToday"]:
                resets += key == "production"
                assert eb["whToday"] < 0.2 * ea["whToday"] + 200  # a reset, not a dip
        assert pb["production"][0]["whLifetime"] >= pa["production"][0]["whLifetime"]
        assert b["api"]["wattHoursLifetime"] >= a["api"]["wattHoursLifetime"]
        assert 0 <= b["soc"] <= 100
    assert resets in (1, 2)  # midnight passed once or twice in two days
    socs = [s["soc"] for s in samples]
    assert max(socs) - min(socs) > 30  # charged by day, drained by night


def test_config_is_validated() -> None:
    for bad in (
        {"family": "ancient"},
        {"batteries": "lead"},
        {"cts": "2phase"},
        {"inverters": -1},
        {"time_scale": -1.0},
        {"family": "legacy", "firmware": "7.6.175"},
        {"family": "modern", "firmware": "5.0.62"},
        {"serial": "12"},
    ):
        with pytest.raises(SettingsError):
            SimulatorConfig(**bad)


# --- faults, latency, reboots, the request record ----------------------------------


def test_fail_drop_latency_and_the_request_record() -> None:
    with Simulator(frozen(family="legacy", inverters=2)) as sim, client(sim) as c:
        sim.fail_next("/production.json", status=503, count=2)
        assert c.get("/production.json?details=1").status_code == 503  # any query
        assert c.get("/production.json").status_code == 503
        assert c.get("/production.json").status_code == 200
        sim.drop_next("/api/v1/production")
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/api/v1/production")
        assert c.get("/api/v1/production").status_code == 200
        assert sim.requests[:3] == [
            ("GET", "/production.json?details=1"),
            ("GET", "/production.json"),
            ("GET", "/production.json"),
        ]
        assert sim.request_count("/production.json") == 3
        assert sim.request_count("/production.json?details=1") == 1
        assert sim.request_count() == 5
        sim.latency = 0.3
        began = time.monotonic()
        c.get("/info")
        assert time.monotonic() - began >= 0.3


def test_reboot_legacy_zeros_modern_503() -> None:
    with Simulator(frozen(family="legacy", cts="1phase")) as sim, client(sim) as c:
        sim.reboot(0.3)
        prod = c.get("/production.json").json()
        assert prod["production"][1]["wNow"] == 0 and prod["production"][1]["whLifetime"] == 0
        assert c.get("/api/v1/production").json()["wattHoursLifetime"] == 0
        time.sleep(0.35)
        assert c.get("/api/v1/production").json()["wattHoursLifetime"] > 0
    with Simulator(frozen(family="modern")) as sim, client(sim) as c:
        sim.reboot(0.3)
        assert c.get("/production.json").status_code == 503
        assert c.get("/info").status_code == 200
        time.sleep(0.35)
        assert c.get("/production.json").status_code == 200


def test_stop_returns_with_idle_connections_open() -> None:
    sim = Simulator(frozen(family="modern")).start()
    c = client(sim)
    assert c.get("/info").status_code == 200  # a keep-alive connection stays open
    began = time.monotonic()
    sim.stop()
    assert time.monotonic() - began < 2
    c.close()


def test_serve_forever_prints_one_line_and_stops() -> None:
    lines: list[str] = []
    stop = threading.Event()
    runner = threading.Thread(
        target=serve_forever, args=(frozen(family="modern"), lines.append), kwargs={"stop": stop}
    )
    runner.start()
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    runner.join(5)
    assert not runner.is_alive()
    assert len(lines) == 1
    assert "modern" in lines[0] and "122238082690" in lines[0] and "https://127.0.0.1:" in lines[0]
    assert "secret-password" not in lines[0] and "eyJ" not in lines[0]


def test_serve_forever_ends_cleanly_on_sigterm(tmp_path: Path) -> None:
    code = (
        "from envoy_ingest.simulator import SimulatorConfig, serve_forever\n"
        "serve_forever(SimulatorConfig(family='legacy', inverters=2))\n"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": repo},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("simulated legacy gateway 122238082690")
        url = line.split(" at ", 1)[1].split(";", 1)[0]
        assert httpx.get(url + "/info").status_code == 200
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
