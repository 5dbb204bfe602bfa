"""``envoy-ingest run``: poll on schedule, or every job once (``--once``)."""

from __future__ import annotations

from collections.abc import Callable

from envoy_ingest.commands import Out, print_line
from envoy_ingest.commands.summary import summarize
from envoy_ingest.settings import Settings
from envoy_ingest.worker import CycleResult, Worker
from envoy_ingest.worker.scheduler import SettingsLoader


async def run(
    settings: Settings,
    *,
    once: bool,
    summary: bool,
    drain_timeout: float = 30.0,
    out: Out = print_line,
    reload: SettingsLoader | None = None,
) -> int:
    on_result: Callable[[CycleResult], None] | None = None
    if summary:

        def on_result(result: CycleResult) -> None:
            out(summarize(result))

    worker = Worker(settings, on_result=on_result, reload=reload)
    if once:
        return await worker.run_once(drain_timeout)
    await worker.run_forever()
    return 0
