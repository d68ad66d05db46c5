"""Reading a payload that is about to leave the enclave, whatever its format, as tables.

The raw-row scanner must see every number a file holds, so each reader turns its format into
:class:`PayloadTable` s: the cells as text, and every number found in them as a parsed number
(a cell such as ``523 (12.5%)`` gives two numbers, in two columns). Dates become days since
1970-01-01 so that they can be matched like numbers. A format this module does not know, or
bytes that do not parse as the format the name claims, raise :class:`UnreadablePayload`: the
output check refuses what it cannot read (fail closed), it never passes it unread.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from strongroom.errors import Invalid

# A date (ISO, or day/month/year as UK tools print it), else a number: thousands separators,
# decimals and exponents. Dates come first so that 2008-03-14 is not read as 2008, -3 and -14.
DATE = r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}"
NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+"
TOKEN = f"{DATE}|{NUMBER}"

FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "text", ".text": "text",
    ".log": "text", ".md": "text", ".json": "json", ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "xlsx",
}
MAX_JSON_DEPTH = 64
SMALL_TABLE = 4096  # cells: a table this small is tokenised in Python (same result, no Polars
# per-call overhead, which dominates small tables)

_TOKEN = re.compile(TOKEN)
_IS_DATE = re.compile(f"(?:{DATE})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_EPOCH = dt.date(1970, 1, 1)
_GREGORIAN_CYCLE = 400, 146_097  # years, and days in them: the calendar repeats


class UnreadablePayload(Invalid):
    """The payload is in a format the check does not recognise, or does not parse as it."""


@dataclass(frozen=True)
class PayloadTable:
    """One table of a payload.

    ``text`` holds the cells as read (every column a String); ``numbers`` holds every number
    found in them (Float64; a column whose cells hold several numbers is split into
    ``name``, ``name#2`` …), with dates as days since 1970-01-01 in the ``date_columns``;
    ``sources`` names the text column each numbers column came from.
    """

    name: str
    text: pl.DataFrame
    numbers: pl.DataFrame
    date_columns: frozenset[str] = frozenset()
    sources: Mapping[str, str] = field(default_factory=dict)  # numbers column → text column


@dataclass(frozen=True)
class Payload:
    format: str
    tables: tuple[PayloadTable, ...] = field(default_factory=tuple)


def read_payload(data: bytes, filename: str) -> Payload:
    """Read ``data`` as the format its ``filename`` names; refuse anything else."""
    fmt = payload_format(filename)
    try:
        return Payload(fmt, tuple(_read(data, filename, fmt)))
    except (pl.exceptions.PolarsError, ValueError, OverflowError, RecursionError) as exc:
        raise UnreadablePayload(f"unrecognised format: {filename!r} could not be read as "
                                f"{fmt} ({type(exc).__name__})") from None


def _read(data: bytes, filename: str, fmt: str) -> list[PayloadTable]:
    if fmt == "parquet":
        tables = [_read_parquet(data)]
    elif fmt == "xlsx":
        tables = _read_xlsx(data)
    else:
        text = _decode(data, filename)
        if fmt == "json":
            tables = _read_json(text)
        elif fmt == "text":
            lines = text.splitlines()
            tables = [tabulate("", pl.DataFrame({"line": lines}, schema={"line": pl.String}))]
        else:
            tables = [_read_delimited(text, "\t" if fmt == "tsv" else _sniff(text))]
    return tables


def payload_format(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix not in FORMATS:
        raise UnreadablePayload(
            f"unrecognised format: {filename!r} is not one of the formats the output check "
            f"reads ({', '.join(sorted(FORMATS))}); convert it to CSV, Parquet, JSON or text"
        )
    return FORMATS[suffix]


# -- turning text cells into numbers --------------------------------------------------------


def tabulate(name: str, text: pl.DataFrame, reserved: frozenset[str] = frozenset()
             ) -> PayloadTable:
    """A table from text cells: find every number and date in them, by position in the cell.

    ``reserved`` are names the numeric columns must not take (the caller's own columns).
    """
    text = text.select(pl.col(c).cast(pl.String) for c in text.columns)
    if text.width == 0 or text.height == 0:
        return PayloadTable(name, text, pl.DataFrame())
    if text.width * text.height <= SMALL_TABLE:
        cells = [text[c].to_list() for c in text.columns]
        # ASCII only: Polars' \d is any Unicode digit, Python's those of its own Unicode version
        if all(v is None or v.isascii() for column in cells for v in column):
            return _tabulate_small(name, text, cells, reserved)
    original = text.columns
    tokens = (
        text.rename({c: str(i) for i, c in enumerate(original)})  # names that cannot clash
        .with_row_index("row")
        .unpivot(index="row", variable_name="col", value_name="text")
        .with_columns(pl.col("col").cast(pl.Int64), tok=pl.col("text").str.extract_all(TOKEN))
        .drop("text")
        .explode("tok")
        .drop_nulls("tok")
        .with_columns(pos=pl.int_range(pl.len()).over("row", "col"),
                      is_date=pl.col("tok").str.contains(f"^(?:{DATE})$"))
    )
    # a position holding mostly dates is a date column; other tokens there are not its values
    slots = (tokens.group_by("col", "pos").agg(date_col=pl.col("is_date").mean() >= 0.5)
             .sort("col", "pos").with_row_index("slot"))
    if slots.height == 0:
        return PayloadTable(name, text, pl.DataFrame())
    names = _slot_names(slots.select("col", "pos").iter_rows(), original, reserved)
    days = pl.coalesce(
        pl.col("tok").str.to_date("%Y-%m-%d", strict=False),
        pl.col("tok").str.to_date("%d/%m/%Y", strict=False),
    ).cast(pl.Int32).cast(pl.Float64)
    number = pl.col("tok").str.replace_all(",", "").cast(pl.Float64, strict=False)
    values = tokens.join(slots, on=["col", "pos"]).select(
        "row", pl.col("slot").cast(pl.String),
        value=pl.when(pl.col("date_col")).then(pl.when(pl.col("is_date")).then(days))
        .otherwise(pl.when(~pl.col("is_date")).then(number)),
    )
    wide = values.pivot(on="slot", index="row", values="value", aggregate_function="first")
    rows = pl.DataFrame({"row": pl.arange(0, text.height, eager=True).cast(pl.UInt32)})
    numbers = rows.join(wide, on="row", how="left").select(
        pl.col(str(i)).cast(pl.Float64).alias(n) for i, n in enumerate(names))
    dates = frozenset(n for n, d in zip(names, slots["date_col"], strict=True) if d)
    sources = {n: original[c] for n, c in zip(names, slots["col"], strict=True)}
    return PayloadTable(name, text, numbers, dates, sources)


def _tabulate_small(name: str, text: pl.DataFrame, cells: list[list[str | None]],
                    reserved: frozenset[str]) -> PayloadTable:
    """``tabulate`` in Python, for small tables of ASCII text: the same tables, sooner."""
    found: dict[tuple[int, int], list[tuple[int, str]]] = {}  # (column, position) → tokens
    for col, column in enumerate(cells):
        for row, cell in enumerate(column):
            if cell is not None:
                for pos, token in enumerate(_TOKEN.findall(cell)):
                    found.setdefault((col, pos), []).append((row, token))
    if not found:
        return PayloadTable(name, text, pl.DataFrame())
    slots = sorted(found)
    names = _slot_names(slots, text.columns, reserved)
    columns: dict[str, list[float | None]] = {}
    dates = set()
    for slot, column_name in zip(slots, names, strict=True):
        tokens = [(row, token, _IS_DATE.fullmatch(token) is not None)
                  for row, token in found[slot]]
        date_col = 2 * sum(is_date for _, _, is_date in tokens) >= len(tokens)
        values: list[float | None] = [None] * text.height
        for row, token, is_date in tokens:
            if date_col and is_date:
                values[row] = _days(token)
            elif not date_col and not is_date:
                values[row] = float(token.replace(",", ""))
        columns[column_name] = values
        if date_col:
            dates.add(column_name)
    numbers = pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.Float64))
    sources = {n: text.columns[col] for n, (col, _) in zip(names, slots, strict=True)}
    return PayloadTable(name, text, numbers, frozenset(dates), sources)


def _days(token: str) -> float | None:
    """Days since 1970-01-01 of a date token (``yyyy-mm-dd`` or ``d/m/yyyy``); None if no such
    day. Year 0 is a (leap) year, as in Polars' proleptic calendar; ``datetime`` starts at 1."""
    if iso := _ISO_DATE.fullmatch(token):
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    elif uk := _UK_DATE.fullmatch(token):
        day, month, year = int(uk[1]), int(uk[2]), int(uk[3])
    else:
        return None
    years, days = _GREGORIAN_CYCLE if year == 0 else (0, 0)
    try:
        date = dt.date(year + years, month, day)
    except ValueError:
        return None
    return float((date - _EPOCH).days - days)


def _slot_names(slots: Iterable[tuple[int, int]], original: list[str],
                reserved: frozenset[str]) -> list[str]:
    """``column`` for a cell's first number, ``column#2`` for its second …, all distinct."""
    used = set(reserved)
    names = []
    for col, pos in slots:
        base = original[col]
        candidate = base if pos == 0 else f"{base}#{pos + 1}"
        while candidate in used:
            candidate += "'"
        used.add(candidate)
        names.append(candidate)
    return names


# -- text formats ------------------------------------------------------------------------


def _decode(data: bytes, filename: str) -> str:
    if b"\x00" in data:
        raise UnreadablePayload(
            f"unrecognised format: {filename!r} holds binary content, not text; "
            "export it as CSV, Parquet, JSON or plain text"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text = data.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if printable < 0.98 * max(1, len(text)):
        raise UnreadablePayload(
            f"unrecognised format: {filename!r} is neither UTF-8 nor Latin-1 text; "
            "export it as UTF-8"
        )
    return text


def _sniff(text: str) -> str:
    """The delimiter that splits the first lines most consistently (comma unless clearly not)."""
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    best, best_score = ",", -1.0
    for sep in (",", ";", "\t", "|"):
        counts = [ln.count(sep) for ln in lines]
        if not counts or max(counts) == 0:
            continue
        modal = max(set(counts), key=counts.count)
        score = counts.count(modal) / len(counts) + (0.01 if sep == "," else 0.0)
        if modal > 0 and score > best_score:
            best, best_score = sep, score
    return best


def _read_delimited(text: str, sep: str) -> PayloadTable:
    try:
        raw = pl.read_csv(io.StringIO(text), has_header=False, infer_schema=False,
                          separator=sep, truncate_ragged_lines=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError):
        raw = _read_ragged(text, sep)  # rows of different lengths: keep every field
    return tabulate("", _with_header(raw))


def _read_ragged(text: str, sep: str) -> pl.DataFrame:
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    except csv.Error as exc:
        raise UnreadablePayload(f"unrecognised format: the file is not valid CSV ({exc})") from None
    width = max((len(r) for r in rows), default=0)
    columns = {f"column_{i}": [r[i] if i < len(r) else None for r in rows] for i in range(width)}
    return pl.DataFrame(columns, schema={c: pl.String for c in columns})


def _with_header(raw: pl.DataFrame) -> pl.DataFrame:
    """Use the first row as names when none of its cells is a number (else it is data)."""
    if raw.height == 0:
        return raw
    first = [v for v in raw.row(0) if v is not None and v.strip()]
    numeric = pl.Series(first, dtype=pl.String).str.strip_chars().str.contains(
        f"^(?:{TOKEN})%?$"
    )
    if not first or numeric.any():
        return raw
    return raw.slice(1).rename(dict(zip(raw.columns, _unique_names(raw.row(0)), strict=True)))


def _unique_names(values: Any) -> list[str]:
    """Each header made unique with a suffix, in time linear in the header (a file of
    thousands of repeated names is a job's to write, and the scanner reads it)."""
    names: list[str] = []
    taken: set[str] = set()
    tried: dict[str, int] = {}
    for i, v in enumerate(values):
        base = (v or "").strip() or f"column_{i + 1}"
        name, k = base, tried.get(base, 2)
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        tried[base] = k
        taken.add(name)
        names.append(name)
    return names


# -- JSON ---------------------------------------------------------------------------------


def _read_json(text: str) -> list[PayloadTable]:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UnreadablePayload(
            f"unrecognised format: the file is not valid JSON ({exc})") from None
    found: list[tuple[str, list[dict[str, str | None]]]] = []
    _walk(doc, "$", found, 0)
    return [tabulate(name, _rows_frame(rows)) for name, rows in found if rows]


def _walk(node: Any, path: str, out: list[tuple[str, list[dict[str, str | None]]]],
          depth: int) -> None:
    """Find the tables in a JSON document; every scalar ends up in exactly one of them."""
    if depth > MAX_JSON_DEPTH:
        raise UnreadablePayload(f"unrecognised format: JSON nested deeper than {MAX_JSON_DEPTH}")
    if isinstance(node, list):
        _walk_list(node, path, out, depth)
    elif isinstance(node, dict):
        _walk_object(node, path, out, depth)
    else:
        out.append((path, [{"value": _scalar(node)}]))


def _walk_list(node: list[Any], path: str, out: list[tuple[str, list[dict[str, str | None]]]],
               depth: int) -> None:
    if node and all(isinstance(x, dict) for x in node):  # an array of objects: rows
        out.append((path, [_flatten(x, f"{path}[{i}]", out, depth) for i, x in enumerate(node)]))
    elif node and all(isinstance(x, list) for x in node):  # an array of arrays: positional rows
        out.append((path, [_flatten(dict(enumerate(x)), f"{path}[{i}]", out, depth)
                           for i, x in enumerate(node)]))
    else:
        scalars = [{"value": _scalar(x)} for x in node if not isinstance(x, dict | list)]
        if scalars:
            out.append((path, scalars))
        for i, x in enumerate(node):
            if isinstance(x, dict | list):
                _walk(x, f"{path}[{i}]", out, depth + 1)


def _walk_object(node: dict[str, Any], path: str,
                 out: list[tuple[str, list[dict[str, str | None]]]], depth: int) -> None:
    children = {k: v for k, v in node.items() if isinstance(v, dict | list)}
    scalars = {k: _scalar(v) for k, v in node.items() if k not in children}
    lists = [v for v in children.values() if isinstance(v, list)]
    if (children and len(lists) == len(children)
            and all(not isinstance(x, dict | list) for v in lists for x in v)
            and len({len(v) for v in lists}) == 1):
        # columns of equal length ({"bmi": [...], "sbp": [...]}): a column-oriented table
        length = len(lists[0])
        out.append((path, [{k: _scalar(v[i]) for k, v in children.items()}
                           for i in range(length)]))
    else:
        # objects of scalars keyed by name ({"bmi": {"mean": …}, "sbp": {…}}): one row per key
        keyed = {k: v for k, v in children.items() if isinstance(v, dict)
                 and all(not isinstance(x, dict | list) for x in v.values())}
        if len(keyed) < 2:
            keyed = {}
        if keyed:
            out.append((path, [{"key": k, **{kk: _scalar(x) for kk, x in v.items()}}
                               for k, v in keyed.items()]))
        for k, v in children.items():
            if k not in keyed:
                _walk(v, f"{path}.{k}", out, depth + 1)
    if scalars:
        out.append((path, [scalars]))


def _flatten(obj: dict[Any, Any], path: str, out: list[tuple[str, list[dict[str, str | None]]]],
             depth: int, prefix: str = "") -> dict[str, str | None]:
    """One row: nested objects and arrays of scalars become columns; deeper tables recurse."""
    row: dict[str, str | None] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            row.update(_flatten(value, path, out, depth + 1, f"{name}."))
        elif isinstance(value, list) and all(not isinstance(x, dict | list) for x in value):
            row.update({f"{name}[{i}]": _scalar(x) for i, x in enumerate(value)})
        elif isinstance(value, list):
            _walk(value, f"{path}.{name}", out, depth + 1)
        else:
            row[name] = _scalar(value)
    return row


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str) else repr(value)


def _rows_frame(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pl.DataFrame({n: [r.get(n) for r in rows] for n in names},
                        schema={n: pl.String for n in names})


# -- Parquet ------------------------------------------------------------------------------


def _read_parquet(data: bytes) -> PayloadTable:
    if not (data.startswith(b"PAR1") and data.endswith(b"PAR1")):
        raise UnreadablePayload(
            "unrecognised format: the file is named .parquet but is not a Parquet file"
        )
    try:  # pyarrow reports a corrupt file as an error (Polars' reader may panic instead)
        frame = pl.from_arrow(pq.read_table(io.BytesIO(data)))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # any reader failure, panics included: refuse, never pass
        raise UnreadablePayload(f"unrecognised format: the Parquet file cannot be read "
                                f"({type(exc).__name__})") from None
    if not isinstance(frame, pl.DataFrame):
        raise UnreadablePayload("unrecognised format: the Parquet file holds no table")
    return typed_table("", frame)


def typed_table(name: str, frame: pl.DataFrame) -> PayloadTable:
    """A table from typed columns: numbers and dates directly, strings through the tokeniser."""
    frame = _flat_columns(frame).with_columns(  # durations as days, the unit of dates here
        pl.col(pl.Duration).dt.total_microseconds().cast(pl.Float64) / 86_400e6)
    numeric = {c for c, t in frame.schema.items() if t.is_numeric() or t == pl.Boolean}
    temporal = {c for c, t in frame.schema.items() if t == pl.Date or isinstance(t, pl.Datetime)}
    other = [c for c in frame.columns if c not in numeric and c not in temporal]
    for c in other:
        if isinstance(frame.schema[c], pl.Binary | pl.Object | pl.Unknown):
            raise UnreadablePayload(  # the name is not repeated: it could be anything
                f"unrecognised format: a column has type {frame.schema[c]}, which the "
                "output check cannot read; store it as numbers, dates or text"
            )
    text = frame.select(pl.col(c).cast(pl.String) for c in frame.columns)
    tokens = tabulate(name, text.select(other), frozenset(numeric | temporal))
    columns: list[pl.Series] = []
    sources: dict[str, str] = {}
    for c in frame.columns:  # in the file's order, each string column's numbers in place
        if c in numeric:
            columns.append(frame[c].cast(pl.Float64))
        elif c in temporal:
            columns.append(frame[c].cast(pl.Date).cast(pl.Int32).cast(pl.Float64))
        derived = [c] if c not in other else [n for n, src in tokens.sources.items() if src == c]
        sources.update(dict.fromkeys(derived, c))
        columns += [tokens.numbers[n] for n in derived if c in other]
    numbers = pl.DataFrame(columns) if columns else pl.DataFrame()
    return PayloadTable(name, text, numbers, frozenset(temporal) | tokens.date_columns, sources)


def _flat_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Structs become their fields and lists their elements, as columns, recursively."""
    for _ in range(MAX_JSON_DEPTH):
        nested = [c for c, t in frame.schema.items()
                  if isinstance(t, pl.Struct | pl.List | pl.Array)]
        if not nested:
            return frame
        parts = []
        for c in frame.columns:
            t = frame.schema[c]
            if isinstance(t, pl.Struct):
                parts.append(frame.select(pl.col(c).struct.unnest().name.prefix(f"{c}.")))
            elif isinstance(t, pl.List | pl.Array):
                s = frame[c] if isinstance(t, pl.List) else frame[c].arr.to_list()
                width = int(s.list.len().max() or 0)  # type: ignore[arg-type]
                parts.append(pl.DataFrame([s.list.get(i, null_on_oob=True).alias(f"{c}[{i}]")
                                           for i in range(width)]))
            else:
                parts.append(frame.select(c))
        frame = pl.concat([p for p in parts if p.width], how="horizontal")
    raise UnreadablePayload("unrecognised format: columns nested too deeply")


# -- XLSX ---------------------------------------------------------------------------------


def _read_xlsx(data: bytes) -> list[PayloadTable]:
    import openpyxl  # only for workbooks

    if not data.startswith(b"PK\x03\x04"):
        raise UnreadablePayload("unrecognised format: the file is named .xlsx but is not one")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadablePayload(f"unrecognised format: the workbook cannot be read "
                                f"({type(exc).__name__})") from None
    tables = []
    for sheet in book.worksheets:
        rows = [[_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        width = max((len(r) for r in rows), default=0)
        columns = {f"column_{i}": [r[i] if i < len(r) else None for r in rows]
                   for i in range(width)}
        raw = pl.DataFrame(columns, schema={c: pl.String for c in columns})
        tables.append(tabulate(sheet.title, _with_header(raw)))
    book.close()
    return tables


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return str(value.isoformat())[:10]  # dates and datetimes: the day
    return _scalar(value)
