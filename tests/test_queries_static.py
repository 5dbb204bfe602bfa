"""The Flux and SQL of docs/queries.md, checked statically: no InfluxDB 2.x or 3
can be installed here to run them (the InfluxQL ones run against a real
InfluxDB 1.6.7 in test_dashboards_influxql.py, test_dashboards_energy.py,
test_dashboards_backup.py and test_dashboards_live.py).

Each query names only measurements, fields and tags of the data contract (or
names it makes itself), filters on the example gateway and is balanced."""

from __future__ import annotations

import re

import pytest

from tests.support.dashboards import ALL_FIELDS, CONTRACT, QUERIES_MD

GATEWAY = "122238082690"
TEXT = QUERIES_MD.read_text(encoding="utf-8")
SECTIONS = {s.splitlines()[0]: s for s in re.split(r"(?m)^## ", TEXT)[1:]}


def blocks(language: str) -> list[tuple[str, str]]:
    return [
        (title, q)
        for title, section in SECTIONS.items()
        for q in re.findall(rf"```{language}\n(.*?)\n```", section, re.S)
    ]


FLUX, SQL = blocks("flux"), blocks("sql")
#: what the downsampling writes: a name of the user's own, not the contract's
DOWNSAMPLED = "enphase_live_1m"


def balanced(q: str) -> bool:
    return all(q.count(a) == q.count(b) for a, b in ("()", "{}", "[]")) and q.count('"') % 2 == 0


@pytest.mark.parametrize(("title", "query"), FLUX, ids=[f"flux{i}" for i in range(len(FLUX))])
def test_docs_flux(title: str, query: str) -> None:
    assert balanced(query), title
    buckets = set(re.findall(r'from\(bucket: "(\w+)"\)', query))
    assert buckets and buckets <= {"solar", "solar_live"}, title
    assert ("solar_live" in buckets) == (title == "Downsampling live data"), title
    measurements = set(re.findall(r'r\._measurement == "(\w+)"', query))
    assert measurements and measurements <= set(CONTRACT), title
    assert f'r.gateway == "{GATEWAY}"' in query, title
    tags = set().union(*(CONTRACT[m][0] for m in measurements))
    fields = set().union(*(CONTRACT[m][1] for m in measurements))
    used_fields = set(re.findall(r'r\._field == "(\w+)"', query))
    assert used_fields <= fields, f"{title}: {used_fields - fields}"
    used_tags = set(re.findall(r"r\.(\w+) ==", query)) - {"_measurement", "_field"}
    assert used_tags <= tags, f"{title}: {used_tags - tags}"
    # live data is read from its own bucket where the user has one; everything is
    # read within a range; only the downsampling task writes, and not into the contract
    assert re.search(r"range\(start: -(\d+[a-z]+|task\.every)\)", query), title
    writes = re.findall(r'set\(key: "_measurement", value: "(\w+)"\)', query)
    assert ("to(bucket:" in query) == bool(writes) == (writes == [DOWNSAMPLED]), title


@pytest.mark.parametrize(("title", "query"), SQL, ids=[f"sql{i}" for i in range(len(SQL))])
def test_docs_sql(title: str, query: str) -> None:
    assert balanced(query) and query.rstrip().endswith(";"), title
    assert query.count("'") % 2 == 0, title
    assert f"gateway = '{GATEWAY}'" in query, title
    ctes = set(re.findall(r"(?:WITH|,)\s*(\w+) AS \(", query))
    tables = set(re.findall(r"FROM (\w+)", query)) - ctes
    assert tables and tables <= set(CONTRACT), f"{title}: {tables}"
    tags = set().union(*(CONTRACT[m][0] for m in tables))
    fields = set().union(*(CONTRACT[m][1] for m in tables))
    aliases = set(re.findall(r"AS (\w+)", query))
    # every word that reads like a contract field (a unit suffix) is one of these
    # tables' fields, or a name the query gives a result
    words = set(re.findall(r"\b([a-z]\w*_(?:wh|w|pct|s|v|a|hz|factor))\b", query))
    unknown = words - fields - aliases
    assert not unknown, f"{title}: {unknown} not in the data contract"
    assert not (words & ALL_FIELDS) - fields - aliases, title
    for tag in ("flow", "phase", "kind", "serial"):
        if re.search(rf"\b{tag}\b", query):
            assert tag in tags, f"{title}: tag {tag}"
