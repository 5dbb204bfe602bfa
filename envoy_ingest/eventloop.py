"""The event loop the commands run on.

``event_loop = "auto"`` (the default) takes uvloop, a libuv-based event loop
written in C, when it is installed (a dependency wherever it builds: Linux and
macOS), else Python's own. A fleet's worker spends a good part of its CPU in
the loop itself (thousands of sockets and timers a minute); uvloop cuts that
(docs/operations.md#fleets has the figures). ``"asyncio"`` always takes
Python's loop (e.g. to rule uvloop out when looking into a problem);
``"uvloop"`` insists on uvloop and says so when it is missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from envoy_ingest.errors import SettingsError

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

T = TypeVar("T")

log = logging.getLogger(__name__)


def loop_factory(choice: EventLoopChoice = "auto") -> tuple[str, LoopFactory]:
    """``(name, factory)`` of the event loop for ``choice``; raises SettingsError for
    ``"uvloop"`` when uvloop cannot be imported."""
    if choice == "asyncio":
        return "asyncio", asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise SettingsError(
                f'event_loop = "uvloop", but uvloop cannot be imported ({exc}); '
                'install it (pip install uvloop) or set event_loop = "auto"'
            ) from None
        return "asyncio", asyncio.new_event_loop
    factory: LoopFactory = uvloop.new_event_loop
    return "uvloop", factory


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on the loop that ``choice`` names."""
    name, factory = loop_factory(choice)
    log.debug("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
