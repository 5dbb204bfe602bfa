"""Line protocol encoding: exact text, escaping, and the contract's types."""

from __future__ import annotations

from envoy_ingest.point import Point
from envoy_ingest.sink.lineprotocol import encode, encode_point, format_value
from tests.lp import parse_line


def test_types_are_written_as_the_contract_says() -> None:
    assert format_value(5.0) == "5.0"
    assert format_value(5) == "5i"
    assert format_value(True) == "true"
    assert format_value(False) == "false"
    assert format_value(-11.468) == "-11.468"
    assert format_value(1e21) == "1e+21"
    assert format_value('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert format_value(float("nan")) is None
    assert format_value(float("inf")) is None


def test_point_with_tags_sorted_and_escaped() -> None:
    p = Point(
        "enphase_meter",
        {"power_w": 488.154, "today_wh": 4425.0},
        1693745129,
        {"phase": "l1", "gateway": "122238082763", "site": "my home,north=1", "flow": "production"},
    )
    assert encode_point(p) == (
        "enphase_meter,flow=production,gateway=122238082763,phase=l1,"
        "site=my\\ home\\,north\\=1 power_w=488.154,today_wh=4425.0 1693745129"
    )
    back = parse_line(encode_point(p) or "")
    assert back.tags["site"] == "my home,north=1"
    assert back.fields == {"power_w": 488.154, "today_wh": 4425.0}


def test_empty_tag_values_and_unwritable_fields_are_left_out() -> None:
    p = Point("enphase_system", {"production_w": float("nan"), "inverters": 7}, 10, {"site": ""})
    assert encode_point(p) == "enphase_system inverters=7i 10"
    assert encode_point(Point("enphase_system", {"x": float("nan")}, 10)) is None


def test_encode_many_ends_every_line() -> None:
    points = [
        Point("enphase_inverter", {"producing": True}, 1, {"serial": "1"}),
        Point("enphase_battery", {"state": "idle"}, 2, {"serial": "2", "type": "acb"}),
    ]
    assert encode(points) == (
        "enphase_inverter,serial=1 producing=true 1\n"
        'enphase_battery,serial=2,type=acb state="idle" 2\n'
    )
    assert encode([]) == ""
