"""Fleet settings: the CSV gateways file, merged with [[gateways]]; shards by rendezvous hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoy_ingest.cli import main
from envoy_ingest.errors import SettingsError
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import load_settings
from envoy_ingest.shard import Shard, parse_shard, select, shard_of
from envoy_ingest.simulator import Simulator, SimulatorConfig
from tests.lp import read_dir


def write(tmp: Path, toml: str, csv: str | None = None) -> Path:
    if csv is not None:
        (tmp / "fleet.csv").write_text(csv)
    path = tmp / "settings.toml"
    path.write_text(toml)
    return path


def test_gateways_file_rows_merge_with_tables(tmp_path: Path) -> None:
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "122238082690").write_text("eyJ-not-checked-here\n")
    csv = (
        "\ufeffhost,name,serial,token_file,verify_tls,read_timeout\n"
        "# a comment row, and a blank one:\n"
        "\n"
        "10.8.0.11,school-north,122238082690,tokens/122238082690,yes,60\n"
        '"https://10.8.0.12:8443",school-south,,,,\n'
        "10.8.0.13\n"
    )
    path = write(tmp_path, 'gateways_file = "fleet.csv"\n[[gateways]]\nhost = "home"\n', csv)
    gws = load_settings(path).gateways
    assert [g.host for g in gws] == ["home", "10.8.0.11", "https://10.8.0.12:8443", "10.8.0.13"]
    north = gws[1]
    assert north.name == "school-north"
    assert north.serial == "122238082690"
    assert north.token is not None and north.token.get_secret_value() == "eyJ-not-checked-here"
    assert north.token_file == str(tmp_path / "tokens" / "122238082690")
    assert north.verify_tls is True
    assert north.read_timeout == 60.0
    assert gws[2] == GatewaySettings(host="https://10.8.0.12:8443", name="school-south")
    assert gws[3] == GatewaySettings(host="10.8.0.13")


def test_a_gateways_file_alone_is_enough(tmp_path: Path) -> None:
    path = write(tmp_path, f'gateways_file = "{tmp_path / "fleet.csv"}"\n', "host\na\nb\n")
    assert [g.host for g in load_settings(path).gateways] == ["a", "b"]


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("host,usernam\nh,x\n", "fleet.csv: line 1: usernam: unknown column"),
        ("name\nx\n", "fleet.csv: line 1: host: required column is missing"),
        ("host,host\nh,h\n", "fleet.csv: line 1: host: column given twice"),
        ("host\n", "fleet.csv: no gateways"),
        ("", "fleet.csv: no header row"),
        ("host,name\n# header first\na,b\n,c\n", "fleet.csv: line 4: host: required key"),
        ("host,verify_tls\na,maybe\n", "fleet.csv: line 2: verify_tls: Input should be a valid"),
        ("host,read_timeout\na,-1\n", "fleet.csv: line 2: read_timeout: Input should be greater"),
        ("host\na,b\n", "fleet.csv: line 2: 2 cells but 1 columns"),
        ("host,username\na,root\n", "fleet.csv: line 2: username: Input should be 'envoy'"),
        ("host,token_file\na,/nonexistent/t\n", "fleet.csv: line 2: cannot read token_file"),
    ],
)
def test_gateways_file_errors_name_file_line_and_column(
    tmp_path: Path, csv: str, message: str
) -> None:
    path = write(tmp_path, 'gateways_file = "fleet.csv"\n', csv)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert message in str(info.value)
    assert str(tmp_path / "fleet.csv") in str(info.value)


def test_secrets_are_refused_in_the_file_and_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, 'gateways_file = "fleet.csv"\n', "host,token\nh,s3cr3t-token-value\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    text = str(info.value)
    assert "fleet.csv: line 1: token: secrets do not go in the gateways file" in text
    assert "token_file" in text
    assert "s3cr3t" not in text
    # A bad cell next to a secret-bearing file column: the value is not shown either.
    path = write(tmp_path, 'gateways_file = "fleet.csv"\n', "host,verify_tls\nh,s3cr3t\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert "s3cr3t" not in str(info.value)


def test_unreadable_gateways_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'gateways_file = "missing.csv"\n')
    with pytest.raises(SettingsError, match=r"missing\.csv: cannot read"):
        load_settings(path)
    (tmp_path / "fleet.csv").write_bytes(b"host\n\xff\xfe\n")
    path = write(tmp_path, 'gateways_file = "fleet.csv"\n')
    with pytest.raises(SettingsError, match=r"fleet\.csv: not UTF-8"):
        load_settings(path)


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("host\nhttp://Home\n", "line 2: host 'home' is also used by "),
        ("host,serial\nb,111\n", "line 2: serial '111' is also used by "),
        ("host,name\nb,house\n", "line 2: name 'house' is also used by "),
        ("host,name\nb,x\nc,x\n", "fleet.csv: line 3: name 'x' is also used by "),
    ],
)
def test_duplicates_across_both_places_are_an_error(tmp_path: Path, csv: str, message: str) -> None:
    toml = 'gateways_file = "fleet.csv"\n[[gateways]]\nhost = "home"\nserial = "111"\n'
    toml = toml.replace('serial = "111"', 'serial = "111"\nname = "house"')
    path = write(tmp_path, toml, csv)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert message in str(info.value)
    assert "each gateway once" in str(info.value)


def test_no_gateways_anywhere(tmp_path: Path) -> None:
    path = write(tmp_path, "[schedule]\ntotals_interval = 60\n")
    with pytest.raises(SettingsError, match="gateways: required key is missing"):
        load_settings(path)


# --- shards ---------------------------------------------------------------------------


def test_parse_shard() -> None:
    assert parse_shard("2/5") == Shard(2, 5)
    assert parse_shard(" 0 / 1 ") == Shard(0, 1)
    assert parse_shard("auto/4", hostname="envoy-ingest-3") == Shard(3, 4)
    assert parse_shard("auto/4", hostname="envoy-ingest-0.envoy-ingest.ns.svc") == Shard(0, 4)
    for bad, why in (
        ("5/5", "shard 5 does not exist with 5 shards"),
        ("1/0", "at least 1"),
        ("1", "must be I/N"),
        ("-1/3", "must be I/N"),
        ("auto/3", "host name ending in -<number>"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_shard(bad, hostname="laptop")


def test_shard_setting_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[[gateways]]\nhost = "h"\n')
    monkeypatch.setenv("ENVOY_INGEST_SHARD", "1/3")
    assert load_settings(path).shard_spec == Shard(1, 3)
    monkeypatch.setenv("ENVOY_INGEST_SHARD", "3/3")
    with pytest.raises(SettingsError, match="shard: shard 3 does not exist with 3 shards"):
        load_settings(path)


FLEET = [GatewaySettings(host=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(10_000)]


def test_shards_cover_a_fleet_exactly_once() -> None:
    for count in (1, 2, 3, 7):
        seen: list[str] = []
        for index in range(count):
            seen += [gw.host for gw in select(FLEET, Shard(index, count))]
        assert sorted(seen) == sorted(gw.host for gw in FLEET)
        assert len(seen) == len(set(seen)) == 10_000


def test_growing_by_one_shard_moves_about_one_in_n_plus_one() -> None:
    identities = [gw.identity for gw in FLEET]
    for count in (2, 4, 9):
        before = [shard_of(i, count) for i in identities]
        after = [shard_of(i, count + 1) for i in identities]
        moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        # Only the new shard gains gateways; it wins 1/(N+1) of them, give or take 1.5 %
        # (the binomial spread of 10,000 draws is under 0.5 %).
        assert {a for _, a in moved} == {count}
        assert abs(len(moved) / 10_000 - 1 / (count + 1)) < 0.015
        # ... and the shards stay balanced (within 15 % of the mean; the spread is ~3 %).
        mean = 10_000 / (count + 1)
        assert all(abs(after.count(s) - mean) < mean * 0.15 for s in range(count + 1))


def test_identity_prefers_the_serial() -> None:
    a = GatewaySettings(host="10.0.0.1", serial="122238082690")
    b = GatewaySettings(host="10.9.9.9", serial="122238082690")
    assert a.identity == b.identity == "serial:122238082690"
    assert GatewaySettings(host="https://Envoy.Local").identity == "host:envoy.local"


def test_run_once_polls_only_its_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sims = [Simulator(SimulatorConfig(family="legacy", inverters=1)).start() for _ in range(4)]
    try:
        rows = "".join(f"{sim.host},gw{i}\n" for i, sim in enumerate(sims))
        (tmp_path / "fleet.csv").write_text("host,name\n" + rows)
        sites: list[set[str]] = []
        monkeypatch.setenv("ENVOY_INGEST_SHARD", "2/3")  # the command line wins
        for shard in ("0/2", "1/2"):
            out = tmp_path / shard.replace("/", "-")
            out.mkdir()
            path = out / "settings.toml"
            path.write_text(
                f'gateways_file = "{tmp_path / "fleet.csv"}"\n'
                f'[file]\ndirectory = "{out / "data"}"\n[state]\ndirectory = "{out / "state"}"\n'
            )
            assert main(["run", "--once", "--shard", shard, "-c", str(path)]) == 0
            sites.append({ln.tags["site"] for ln in read_dir(out / "data")})
        assert main(["run", "--once", "--shard", "2/2", "-c", str(path)]) == 2
    finally:
        for sim in sims:
            sim.stop()
    expected = [
        {gw.name for gw in select(load_settings(path).gateways, Shard(i, 2)) if gw.name}
        for i in range(2)
    ]
    assert sites == expected
    assert sites[0] | sites[1] == {"gw0", "gw1", "gw2", "gw3"}
    assert not sites[0] & sites[1]
    assert "--shard: shard 2 does not exist with 2 shards (0 to 1)" in capsys.readouterr().err
