"""What each command does, once cli.py has parsed its arguments and read the
settings: one module per command (``run``, ``demo``, ``discover``, ``check``,
``token``, ``replay``, ``simulate``), with ``probe.py`` shared by discover and check and
``summary.py`` the one line per cycle of ``run --summary`` and ``demo``.
Each takes an ``out`` callable for its lines (print by default; tests collect).
"""

from __future__ import annotations

from collections.abc import Callable

Out = Callable[[str], None]


def print_line(line: str) -> None:
    print(line, flush=True)
