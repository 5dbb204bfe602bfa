"""The gateways file (``gateways_file``): a fleet's gateways as CSV.

CSV because a fleet's gateway list usually lives in a spreadsheet: any
spreadsheet exports it, and it is easy to write by hand. The first row names
the columns, which are the keys of a ``[[gateways]]`` table in any order (only
``host`` is required); every further row is one gateway::

    host,name,serial,token_file,enlighten_username,enlighten_password_file
    10.8.0.11,school-north,122238082690,tokens/122238082690,,
    10.8.0.12,school-south,,,ops@example.com,/run/secrets/enlighten-ops

- An empty cell is the key's default. Blank rows and rows whose first cell
  starts with ``#`` are skipped (comments).
- Flags are ``true``/``false`` (also ``yes``/``no``, ``1``/``0``).
- Secrets never go in the file: the columns ``password``, ``token`` and
  ``enlighten_password`` are refused; use their ``*_file`` columns (a relative
  path is relative to the gateways file) or ``[[gateways]]`` in the settings.
- Errors name the file, the line and the column, never a cell's value.

The gateways of the settings file and of this file are merged; the same host,
serial or name twice is an error naming both places (:func:`check_unique`).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envoy_ingest.errors import SettingsError

if TYPE_CHECKING:
    from envoy_ingest.gateway import GatewaySettings

#: Columns the file may not have: secrets belong in files or the settings.
SECRET_COLUMNS = ("password", "token", "enlighten_password")
FILE_COLUMNS = ("password_file", "token_file", "enlighten_password_file")


def read_rows(path: Path, columns: Collection[str]) -> list[tuple[int, dict[str, str]]]:
    """The gateway rows of the CSV file ``path``: (line number, non-empty cells by column).

    ``columns`` are the keys a row may have. Raises :class:`SettingsError`, one
    line per problem naming the line and the column. Relative ``*_file`` paths
    are made relative to the file's directory.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not a column name
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text (export the sheet as CSV UTF-8)") from None
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    out: list[tuple[int, dict[str, str]]] = []
    problems: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            problems += _check_header(path, line, header, columns)
            if problems:
                break
            continue
        if len(row) > len(header):
            problems.append(f"{path}: line {line}: {len(row)} cells but {len(header)} columns")
            continue
        cells = {k: v.strip() for k, v in zip(header, row, strict=False) if v.strip()}
        for key in FILE_COLUMNS:
            if key in cells and not Path(cells[key]).expanduser().is_absolute():
                cells[key] = str(path.parent / cells[key])
        out.append((line, cells))
    if header is None and not problems:
        problems.append(f"{path}: no header row (the first row names the columns, e.g. host,name)")
    elif not out and not problems:
        problems.append(f"{path}: no gateways (one row per gateway after the header)")
    if problems:
        raise SettingsError("\n".join(problems))
    return out


def _check_header(path: Path, line: int, header: list[str], known: Collection[str]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for name in header:
        where = f"{path}: line {line}: {name or '(empty)'}"
        if name in SECRET_COLUMNS:
            problems.append(
                f"{where}: secrets do not go in the gateways file; use the {name}_file column "
                "(a file holding it) or the gateway's [[gateways]] table in the settings"
            )
        elif name not in known:
            problems.append(f"{where}: unknown column")
        elif name in seen:
            problems.append(f"{where}: column given twice")
        seen.add(name)
    if not problems and "host" not in seen:
        problems.append(f"{path}: line {line}: host: required column is missing")
    return problems


def check_unique(gateways: Sequence[GatewaySettings], places: Sequence[str]) -> None:
    """No two gateways share a host, serial, name or label. ``places[i]`` says where
    gateway ``i`` was written (``settings.toml: gateways[0]``, ``fleet.csv: line 4``).
    Hosts compare normalized (``https://Envoy.local`` is ``envoy.local``: the key of
    :class:`~envoy_ingest.origin.GatewayAddress`)."""
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for i, gw in enumerate(gateways):
        # The label (name, else serial, else host) names the gateway in logs,
        # metrics and /gateways: a name may not be another gateway's serial either.
        keys = [("host", gw.address.key), ("serial", gw.serial), ("name", gw.label)]
        for what, value in keys:
            if value is None:
                continue
            first = seen.setdefault((what, value), i)
            if first != i:
                problems.append(
                    f"{places[i]}: {what} {value!r} is also used by {places[first]}: "
                    "list each gateway once"
                )
                break
    if problems:
        raise SettingsError("\n".join(problems))
