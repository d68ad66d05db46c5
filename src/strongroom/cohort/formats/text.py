"""Delimited text: ukbconv CSV/TSV (``31-0.0``), ukbconv R ``.tab`` (``f.31.0.0``) and RAP CSV.

Every column is read as text: no type inference, so the validator sees each value exactly as
written and can name it in a problem. ``""`` and ``NA`` are the missing markers in all three.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.formats._files import (
    atomic_output,
    count_totals,
    scan_records,
    unreadable,
)
from strongroom.cohort.formats.naming import (
    EID_NAMES,
    Header,
    Naming,
    format_key,
    resolve_header,
)
from strongroom.cohort.formats.wide import from_model
from strongroom.cohort.model import EID, Cohort, FieldKey
from strongroom.cohort.problems import ROW, IngestError, Problem

MISSING = ("", "NA")
TAB_SUFFIXES = (".tsv", ".tab", ".txt")
MAX_ROW_PROBLEMS = 1000  # a wholly garbled file should not produce a million problems


@dataclass
class WideRead:
    """A wide table as read: ``eid``, ``_row`` and data columns named as in the file."""

    frame: pl.DataFrame
    keys: dict[str, FieldKey]
    naming: Naming
    problems: list[Problem]


def read_header(path: Path) -> tuple[list[str], str] | None:
    """The header's names and the separator (tab if the header has one, else comma);
    None for an empty file."""
    try:
        with path.open("rb") as fh:
            raw = fh.readline()
    except OSError as exc:
        raise unreadable(path, exc.strerror or str(exc)) from exc
    if not raw.strip():
        return None
    try:
        line = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise unreadable(path, f"the header is not UTF-8 ({exc.reason})") from exc
    if "\t" in line:
        separator = "\t"
    elif "," in line:
        separator = ","
    else:  # a single column: the suffix is the only hint
        separator = "\t" if path.suffix.lower() in TAB_SUFFIXES else ","
    return next(csv.reader([line], delimiter=separator)), separator


def read_text(path: Path, dictionary: Dictionary, source: str) -> WideRead:
    """Read a delimited UKB file as text, with a ``_row`` column and its header resolved."""
    found = read_header(path)
    if found is None:
        guess = Naming.RTAB if path.suffix.lower() == ".tab" else Naming.UKBCONV
        empty = pl.DataFrame(schema={EID: pl.String, ROW: pl.Int64})
        return WideRead(empty, {}, guess, [Problem(source, "the file is empty")])
    names, separator = found
    header = resolve_header(names, dictionary, source)
    n_rows = _data_rows(path, separator, len(names), source)
    problems = list(header.problems)
    if n_rows == 0:
        problems.append(Problem(source, "the file has a header but no data rows"))
    try:
        raw = pl.read_csv(
            path,
            has_header=False,
            skip_rows=1,
            n_rows=n_rows,
            separator=separator,
            schema={f"c{i}": pl.String for i in range(len(names))},
            null_values=list(MISSING),
            row_index_name=ROW,
            row_index_offset=1,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        # Polars refuses long rows, and a short first row; name them (and any others)
        _data_rows(path, separator, len(names), source, quick=False)
        raise unreadable(path, str(exc).splitlines()[0]) from exc
    return WideRead(_select(raw, header), {c.name: c.key for c in header.columns},
                    header.naming, problems)


def _data_rows(path: Path, separator: str, width: int, source: str, quick: bool = True) -> int:
    """The number of data rows; ``IngestError`` naming every row of the wrong width.

    Blank lines at the end of the file are not rows (editors add them); anywhere else they,
    like short or long rows, mean the file is damaged, and nothing in it can be trusted.
    Polars refuses rows that are too long, so if no row is too long and the separators add
    up to ``width - 1`` per record, no row is short either: the per-record scan is only
    needed when the totals disagree.
    """
    if quick:
        totals = count_totals(path, separator)
        if totals.separators == (width - 1) * totals.records:
            return max(totals.records - 1, 0)
    records = scan_records(path, separator)
    data_widths, data_blank = records.widths[1:], records.blank[1:]
    n = data_widths.size
    while n and data_blank[n - 1]:
        n -= 1
    bad = np.flatnonzero((data_widths[:n] != width) | data_blank[:n])
    if bad.size:
        problems = [
            Problem(source,
                    "blank line in the data" if data_blank[i] else
                    f"row has {data_widths[i]} fields, the header has {width}; "
                    "the file is damaged (truncated, or a value holds an unquoted separator)",
                    row=int(i) + 1)
            for i in bad[:MAX_ROW_PROBLEMS]
        ]
        if bad.size > MAX_ROW_PROBLEMS:
            problems.append(Problem(source, f"… and {bad.size - MAX_ROW_PROBLEMS} more such rows"))
        raise IngestError(problems)
    return n


def _select(raw: pl.DataFrame, header: Header) -> pl.DataFrame:
    """Keep eid, _row and the accepted columns, under their header names."""
    selected = [pl.col(ROW).cast(pl.Int64)]
    if header.eid is not None:
        selected.insert(0, pl.col(f"c{header.eid}").alias(EID))
    selected += [pl.col(f"c{c.position}").alias(c.name) for c in header.columns]
    return raw.select(selected)


# -- writing ----------------------------------------------------------------------------------


def write_text(
    cohort: Cohort,
    path: Path,
    dictionary: Dictionary,
    naming: Naming,
    separator: str,
    missing: str,
) -> None:
    """Write the cohort wide, one column per (field, instance, array) that holds a value."""
    wide, keys = from_model(cohort, dictionary)
    out = wide.select(
        as_text(pl.col(EID), wide.schema[EID]).alias(EID_NAMES[naming]),
        *(as_text(pl.col(name), wide.schema[name])
          .alias(format_key(key, dictionary.field(key.field_id), naming))
          for name, key in keys.items()),
    )
    with atomic_output(path) as fh:
        out.write_csv(fh, separator=separator, null_value=missing, quote_style="necessary",
                      line_terminator="\n")


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A typed column as UKB writes it: ISO dates, integers bare, floats shortest-exact."""
    if dtype == pl.String:
        return expr
    if dtype.is_integer() or dtype in (pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum):
        return expr.cast(pl.String)
    if dtype.is_float():
        # Polars prints the shortest text that parses back to the same float; only the
        # ".0" of whole numbers is dropped, as ukbconv writes them ("25", not "25.0").
        return expr.cast(pl.String).str.strip_suffix(".0")
    if dtype == pl.Date:
        return expr.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return expr.dt.to_string("%Y-%m-%dT%H:%M:%S%.f")
    if dtype == pl.Null:
        return expr.cast(pl.String)
    raise ValueError(f"cannot write a column of type {dtype} as text")
