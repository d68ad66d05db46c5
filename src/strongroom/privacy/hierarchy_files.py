"""Generalisation hierarchies from files: ARX's CSV layout, for ``strongroom anonymise``.

One row per value, no header: the value, then its label at each level up, ``;`` separated
(ARX's own files; ``,`` and tab are told from the first line too), for example
``37;35-39;30-39;*``. Every row has as many cells. Each value of the column must have a row:
a value missing from the file would otherwise be released as it is at every level below
``*``, so it is refused, saying how many are missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from strongroom.errors import Invalid
from strongroom.privacy.hierarchies import Hierarchy, Lookup

_UNMAPPED = "\x00unmapped"
MAX_BYTES = 64 * 1024 * 1024


def parse_options(items: Sequence[str]) -> dict[str, Path]:
    """``COLUMN=FILE`` pairs (``--hierarchy``), each column once."""
    found: dict[str, Path] = {}
    for item in items:
        column, sep, path = item.partition("=")
        if not sep or not column.strip() or not path.strip():
            raise Invalid(f"--hierarchy takes COLUMN=FILE (for example age=age.csv), not "
                          f"{item!r}")
        if column.strip() in found:
            raise Invalid(f"--hierarchy names {column.strip()} twice; give one file per column")
        found[column.strip()] = Path(path.strip())
    return found


def read(column: str, path: Path) -> Hierarchy:
    """The hierarchy in ``path`` for ``column`` (ARX's layout)."""
    if not path.is_file():
        raise Invalid(f"there is no hierarchy file {path} (for {column}); check the path")
    if path.stat().st_size > MAX_BYTES:
        raise Invalid(f"the hierarchy file {path} is over 64 MB; is it the right file?")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"the hierarchy file {path} is not UTF-8 text; save it as UTF-8 "
                      f"(ARX exports UTF-8)") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise Invalid(f"the hierarchy file {path} is empty; give one row per value: the "
                      f"value, then its label at each level, separated by ;")
    first = lines[0]
    delimiter = "\t" if "\t" in first else ";" if first.count(";") >= first.count(",") else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    seen: dict[str, list[str]] = {}
    for number, row in enumerate(rows, 1):
        if row[0] in seen and seen[row[0]] != row:
            raise Invalid(f"the hierarchy file {path} gives the value on row {number} two "
                          f"different generalisations; give each value one row")
        seen[row[0]] = row
    try:
        return Hierarchy.from_table(column, list(seen.values()))
    except Invalid as problem:
        raise Invalid(f"the hierarchy file {path}: {problem}") from None


def check_covers(hierarchy: Hierarchy, series: pl.Series, path: Path) -> None:
    """Refuse a hierarchy that leaves some of the column's values without a row."""
    if hierarchy.height < 2 or not isinstance(hierarchy.levels[1].rule, Lookup):
        return
    mapping: Mapping[str, str] = hierarchy.levels[1].rule.mapping
    probe = Lookup("probe", mapping, other=_UNMAPPED).apply(series.drop_nulls())
    unmapped = int((probe == _UNMAPPED).sum())
    if unmapped:
        distinct = series.drop_nulls().filter(probe == _UNMAPPED).n_unique()
        raise Invalid(f"{distinct:,} distinct value(s) of {hierarchy.column} ({unmapped:,} "
                      f"rows) have no row in its hierarchy file {path}; every value needs "
                      f"one, or it would be released as it is")


def load(frame: pl.DataFrame, files: Mapping[str, Path],
         quasi_identifiers: Sequence[str]) -> dict[str, Hierarchy]:
    """Each named column's hierarchy, read and checked against the table's values."""
    stray = sorted(set(files) - set(quasi_identifiers))
    if stray:
        raise Invalid(f"--hierarchy names {', '.join(stray)}, not among the quasi-"
                      f"identifiers ({', '.join(quasi_identifiers)}); add them with --qi")
    found = {}
    for column, path in files.items():
        hierarchy = read(column, path)
        check_covers(hierarchy, frame[column], path)
        found[column] = hierarchy
    return found
