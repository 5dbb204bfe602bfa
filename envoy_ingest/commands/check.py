"""``envoy-ingest check``: the settings are valid (we got here); reach every
gateway and the sink."""

from __future__ import annotations

from envoy_ingest.commands import Out, print_line
from envoy_ingest.commands.probe import probed, started_tokens
from envoy_ingest.errors import EnvoyIngestError
from envoy_ingest.settings import Settings
from envoy_ingest.sink import check_sink


async def check(settings: Settings, out: Out = print_line) -> int:
    """Settings are valid (we got here); reach every gateway and the sink."""
    status = 0
    out("settings: ok")
    async with started_tokens(settings) as tokens:
        for gw in settings.gateways:
            try:
                async with probed(gw, tokens) as (client, info, caps):
                    path = caps.totals_paths[0]
                    await client.get(path)
                    out(
                        f"gateway {gw.label}: ok: {info.serial}, firmware {info.firmware}, "
                        f"{client.scheme}, {client.auth_description}; {path} answered"
                    )
            except EnvoyIngestError as exc:
                out(f"gateway {gw.label}: FAILED: {exc}")
                status = 1
    report = sink_report(await check_sink(settings))
    for line in report:
        out(line)
    if any(line.startswith("sink: FAILED: ") for line in report):
        status = 1
    return status


def sink_report(results: list[tuple[bool, str]]) -> list[str]:
    """``check_sink``'s results as lines. Once a check failed, what follows (the
    spool's depth) is said without "ok": the sink is not ok."""
    lines: list[str] = []
    failed = False
    for ok, text in results:
        failed = failed or not ok
        prefix = "sink: FAILED: " if not ok else ("sink: " if failed else "sink: ok: ")
        lines.append(prefix + text)
    return lines
