"""One gateway, one identity: every spelling of a host is one normalized address,
and the schedule phase, the shard and the duplicate check all follow it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from envoy_ingest.commands.token import _select
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.http11 import origin_of
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.envoy.transport import Target, path_of
from envoy_ingest.errors import SettingsError
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.gateways_file import check_unique
from envoy_ingest.origin import GatewayAddress, Origin, split_url
from envoy_ingest.settings import Settings, load_settings
from envoy_ingest.shard import shard_of
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.worker.spread import slot, start_offsets

# written as -> (normalized host setting, key: host and a port that is not the default)
SPELLINGS = {
    "envoy.local": ("envoy.local", "envoy.local"),
    "ENVOY.LOCAL": ("envoy.local", "envoy.local"),
    " envoy.local/ ": ("envoy.local", "envoy.local"),
    "https://Envoy.local": ("https://envoy.local", "envoy.local"),
    "HTTPS://envoy.local:443/": ("https://envoy.local", "envoy.local"),
    "ENVOY.LOCAL:443": ("https://envoy.local", "envoy.local"),
    "envoy.local:80": ("http://envoy.local", "envoy.local"),
    "http://envoy.local:80": ("http://envoy.local", "envoy.local"),
    "http://Envoy.Local/": ("http://envoy.local", "envoy.local"),
}
OTHER_SPELLINGS = {
    "envoy.local:8443": ("envoy.local:8443", "envoy.local:8443"),
    "https://envoy.local:8443": ("https://envoy.local:8443", "envoy.local:8443"),
    "http://envoy.local:443": ("http://envoy.local:443", "envoy.local:443"),
    "10.0.0.5": ("10.0.0.5", "10.0.0.5"),
    "[FE80::0:1]:8443": ("[fe80::1]:8443", "[fe80::1]:8443"),
    "fe80::1": ("[fe80::1]", "[fe80::1]"),
    "https://[2001:DB8::1]:443": ("https://[2001:db8::1]", "[2001:db8::1]"),
}


@pytest.mark.parametrize("text", [*SPELLINGS, *OTHER_SPELLINGS])
def test_each_spelling_resolves_by_the_rules(text: str) -> None:
    host, key = {**SPELLINGS, **OTHER_SPELLINGS}[text]
    gw = GatewaySettings(host=text)
    assert gw.host == host
    assert gw.address.key == key
    assert gw.identity == f"host:{key}"
    assert gw.label == host  # logs and metrics name it so (no name, no serial)
    assert str(GatewayAddress.parse(host)) == host  # normalized stays normalized


def test_where_each_spelling_connects() -> None:
    assert GatewayAddress.parse("ENVOY.LOCAL:443") == GatewayAddress("https", "envoy.local", None)
    assert GatewayAddress.parse("envoy.local") == GatewayAddress(None, "envoy.local", None)
    plain = GatewayAddress.parse("Envoy.Local:8443")
    assert plain == GatewayAddress(None, "envoy.local", 8443)
    assert plain.base_url("https") == "https://envoy.local:8443"
    assert plain.origin("http") == Origin("http", "envoy.local", 8443)
    v6 = GatewayAddress.parse("[fe80::1]")
    assert v6.base_url("http") == "http://[fe80::1]"
    assert v6.origin("https") == Origin("https", "fe80::1", 443)  # sockets take it bare


def test_one_parser_for_urls_too() -> None:
    assert split_url("HTTPS://[FE80::1]:8443/ivp/meters?x=1") == (
        "https",
        "fe80::1",
        8443,
        "/ivp/meters?x=1",
    )
    assert split_url("envoy.local") == (None, "envoy.local", None, "")
    assert path_of("https://10.0.0.5/ivp/meters?x=1") == "/ivp/meters?x=1"
    assert path_of("http://10.0.0.5:8080") == "/"
    # a prepared request and httpx's own URL agree on where the connection goes
    for url in ("https://Envoy.local/info", "http://[::1]:8080/info", "http://10.0.0.5/x"):
        assert Target(url).origin == origin_of(httpx.URL(url))
    assert Target("http://[::1]:8080/info?a=1").origin == Origin("http", "::1", 8080)
    assert Target("http://[::1]:8080/info?a=1").path == "/info?a=1"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("envoy.local/ivp", "gateways[0].host: must be the gateway's address only"),
        ("https://envoy.local/?x=1", "without a path or query: '/?x=1'"),
        ("ftp://envoy.local", "gateways[0].host: scheme must be http:// or https://"),
        ("installer@envoy.local", "gateways[0].host: no user@ before the host"),
        ("envoy.local:0", "the port must be a number from 1 to 65535, not '0'"),
        ("envoy.local:65536", "the port must be a number from 1 to 65535"),
        ("envoy.local:https", "the port must be a number from 1 to 65535, not 'https'"),
        ("[fe80::1", "gateways[0].host: an IPv6 address opened with [ is not closed with ]"),
        ("[fe80::1]8443", "only :port may follow an IPv6 address in brackets"),
        ("[envoy.local]", "'envoy.local' is not an IPv6 address"),
        ("fe80::zz", "'fe80::zz' is not an IPv6 address"),
        ("envoy local", "'envoy local' is not a host name or address"),
        ("https://", "gateways[0].host: no host"),
    ],
)
def test_a_bad_host_is_an_error_naming_the_key(tmp_path: Path, host: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(f'[[gateways]]\nhost = "{host}"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert message in str(err.value)
    assert str(err.value).startswith(f"{path}: gateways[0].host: ")


def test_one_gateway_under_every_spelling_has_one_phase_shard_and_duplicate_verdict() -> None:
    gws = [GatewaySettings(host=text) for text in SPELLINGS]
    assert {gw.identity for gw in gws} == {"host:envoy.local"}
    assert len({start_offsets(gw.identity, 60.0, 300.0) for gw in gws}) == 1
    assert len({slot(start_offsets(gw.identity, 60.0, 300.0)[0], 60.0) for gw in gws}) == 1
    for count in (2, 3, 7, 50):
        assert len({shard_of(gw.identity, count) for gw in gws}) == 1
    # any two spellings are one gateway listed twice
    for other in gws[1:]:
        with pytest.raises(SettingsError, match=r"host 'envoy\.local' is also used by a\.toml"):
            check_unique([gws[0], other], ["a.toml", "b.csv"])
    # ... while a port that is not a default may be another gateway behind one address
    forwards = [GatewaySettings(host=h) for h in ("envoy.local", "envoy.local:8443")]
    check_unique(forwards, ["a.toml", "b.toml"])
    assert forwards[0].identity != forwards[1].identity


def test_phases_follow_the_identity_not_the_spelling() -> None:
    # the hash input is the identity: two addresses have their own phases
    a, b = (start_offsets(f"host:{h}", 60.0, 300.0)[0] for h in ("10.0.0.5", "10.0.0.6"))
    assert a != b
    assert start_offsets(GatewaySettings(host="HTTP://10.0.0.5/").identity, 60.0, 300.0)[0] == a


def test_a_serial_keeps_the_identity_when_the_host_changes() -> None:
    before = GatewaySettings(host="10.0.0.5", serial="122238082690")
    after = GatewaySettings(host="https://envoy-garage.example:8443", serial="122238082690")
    assert before.identity == after.identity == "serial:122238082690"
    assert start_offsets(before.identity, 60.0, 300.0) == start_offsets(after.identity, 60, 300)
    assert all(shard_of(before.identity, n) == shard_of(after.identity, n) for n in range(1, 9))
    assert before.label == after.label == "122238082690"
    # without a serial a new address is a new gateway
    assert GatewaySettings(host="10.0.0.5").identity != GatewaySettings(host="10.0.0.6").identity


def test_a_spelling_change_is_no_change_of_settings() -> None:
    # so a reload keeps the gateway's poller, its phase and its series
    assert GatewaySettings(host="https://Envoy.local:443/") == GatewaySettings(
        host="HTTPS://envoy.local"
    )
    assert GatewaySettings(host="envoy.local", serial=" 122238082690 ").serial == "122238082690"
    assert GatewaySettings(host="envoy.local", serial="").identity == "host:envoy.local"


def test_the_token_command_finds_a_gateway_by_any_spelling_of_its_host() -> None:
    settings = Settings(
        gateways=[GatewaySettings(host="10.0.0.4"), GatewaySettings(host="https://Envoy.local")]
    )
    for spelling in ("envoy.local", "ENVOY.LOCAL:443", "http://envoy.local/"):
        assert [gw.host for gw in _select(settings, spelling)] == ["https://envoy.local"]
    with pytest.raises(SettingsError, match="no gateway with that name, serial or host"):
        _select(settings, "envoy.local:8443")


async def test_the_client_connects_to_the_normalized_address() -> None:
    with Simulator(SimulatorConfig(family="legacy", inverters=1)) as sim:
        gw = GatewaySettings(host=f"HTTP://{sim.host}/")
        assert gw.host == f"http://{sim.host}"
        async with EnvoyClient(gw, TokenManager(Settings(gateways=[gw]))) as client:
            info = await client.connect()
            assert (client.scheme, client.base_url) == ("http", f"http://{sim.host}")
            assert info.serial == sim.serial
