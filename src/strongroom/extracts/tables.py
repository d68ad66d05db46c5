"""Reading a suspect file, whatever shape a leak arrives in: CSV/TSV, Parquet or Excel.

A leaked copy may have been renamed, re-delimited, opened in a spreadsheet and saved again, so
nothing about it is trusted: the format is told by the file's first bytes, not its name; the
delimiter is sniffed; every column is read as text first and becomes numeric only when all its
non-empty cells parse as numbers (so a column of numbers stored as strings reads as numbers, and
a column of codes with one stray word stays text). Column names and order are kept as found;
matching them to the master is the linkage's job, by values.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import polars as pl

from strongroom.errors import Invalid

_PARQUET = b"PAR1"
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other OLE compound files)
_GZIP = b"\x1f\x8b"
_DELIMITERS = (",", "\t", ";", "|")
_MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A", ".")
_SNIFF_LINES = 50


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, as lower-case hex (for manifests and evidence)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def read_suspect(path: Path) -> pl.DataFrame:
    """The suspect file as a table: numeric columns typed, others text, names as found.

    Raises ``Invalid`` naming what is wrong when the file cannot be read as a table.
    """
    head = _head(path)
    if head.startswith(_PARQUET):
        frame = _read_parquet(path)
    elif head.startswith(_ZIP):
        frame = _read_excel(path)
    elif head.startswith(_OLE):
        raise Invalid(f"{path.name} is a legacy Excel (.xls) file; save it as .xlsx or CSV")
    elif head.startswith(_GZIP):
        raise Invalid(f"{path.name} is gzip-compressed; decompress it first")
    else:
        frame = _read_text(path)
    if frame.width == 0 or frame.height == 0:
        raise Invalid(f"{path.name} holds no data rows; nothing to attribute")
    return frame


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(8)
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for damaged files
        raise Invalid(f"{path.name} looks like Parquet but cannot be read ({_kind(exc)})") from exc
    return _typed(frame)


def _read_text(path: Path) -> pl.DataFrame:
    separator = _sniff(path)
    try:
        frame = pl.read_csv(
            path,
            separator=separator,
            infer_schema=False,  # every column as text; typed below, column by column
            encoding="utf8-lossy",
            truncate_ragged_lines=False,
        )
    except Exception as exc:
        raise Invalid(
            f"{path.name} cannot be read as delimited text ({_kind(exc)}); "
            "send CSV, TSV, Parquet or .xlsx"
        ) from exc
    frame = frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})
    return _typed(frame)


def _sniff(path: Path) -> str:
    """The delimiter whose per-line count is the same and non-zero on the most lines."""
    try:
        with path.open("rb") as fh:
            sample = fh.read(1 << 16)
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if b"\x00" in sample:
        raise Invalid(f"{path.name} is binary, not a table; send CSV, TSV, Parquet or .xlsx")
    text = sample.decode("utf-8", errors="replace")
    lines = [ln for ln in text.splitlines()[:_SNIFF_LINES] if ln.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line short
    if not lines:
        raise Invalid(f"{path.name} is empty")
    best, best_score = ",", -1
    for sep in _DELIMITERS:
        counts = [_count_outside_quotes(ln, sep) for ln in lines]
        if counts[0] == 0:
            continue
        score = sum(c == counts[0] for c in counts)
        if score > best_score:
            best, best_score = sep, score
    if best_score < 0:
        raise Invalid(
            f"{path.name} has a single column or no recognisable delimiter "
            "(comma, tab, semicolon or bar)"
        )
    return best


def _count_outside_quotes(line: str, sep: str) -> int:
    return sum(part.count(sep) for part in line.split('"')[::2])


def _read_excel(path: Path) -> pl.DataFrame:
    import openpyxl

    with path.open("rb") as handle:  # a handle: openpyxl would judge a path by its suffix
        try:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise Invalid(
                f"{path.name} is a zip file but not a readable .xlsx workbook ({_kind(exc)})"
            ) from exc
        return _workbook(path, book)


def _workbook(path: Path, book: Any) -> pl.DataFrame:
    try:
        sheet = max(book.worksheets, key=lambda ws: ws.max_row or 0)  # the sheet with the data
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise Invalid(f"{path.name}: the workbook's sheets are empty")
        names = _header_names(header)
        columns: list[list[Any]] = [[] for _ in names]
        for row in rows:
            for j in range(len(names)):
                columns[j].append(row[j] if j < len(row) else None)
    finally:
        book.close()
    series = [_excel_series(name, cells) for name, cells in zip(names, columns, strict=True)]
    frame = pl.DataFrame(series)
    empty = frame.select(pl.all().is_null().all()).row(0)
    return _typed(frame.select([c for c, e in zip(frame.columns, empty, strict=True) if not e]))


def _header_names(header: tuple[Any, ...]) -> list[str]:
    names: list[str] = []
    for j, cell in enumerate(header):
        name = str(cell).strip() if cell is not None else f"column_{j + 1}"
        while name in names:
            name += "_"
        names.append(name)
    return names


def _excel_series(name: str, cells: list[Any]) -> pl.Series:
    """One spreadsheet column: numbers stay numbers, dates stay dates, the rest is text."""
    kinds = {type(c) for c in cells if c is not None}
    if kinds and kinds <= {int, float, bool}:
        return pl.Series(name, [None if c is None else float(c) for c in cells], pl.Float64)
    if kinds and all(hasattr(k, "year") for k in kinds):  # datetime / date cells
        return pl.Series(name, cells).cast(pl.Date, strict=False)
    return pl.Series(name, [None if c is None else str(c) for c in cells], pl.String)


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns whose every non-empty cell is a number become Float64; the rest stay."""
    out = []
    for name in frame.columns:
        col = frame[name]
        if col.dtype == pl.String:
            col = _from_text(col)
        elif col.dtype == pl.Boolean:
            col = col.cast(pl.Float64)
        out.append(col)
    return pl.DataFrame(out)


def _from_text(col: pl.Series) -> pl.Series:
    text = col.str.strip_chars()
    text = pl.select(
        pl.when(text.is_in(_MISSING)).then(None).otherwise(text).alias(col.name)
    ).to_series()
    present = text.len() - text.null_count()
    if present == 0:
        return text
    numbers = text.cast(pl.Float64, strict=False)
    if numbers.len() - numbers.null_count() == present:
        return numbers
    if not text.str.contains(".", literal=True).any():  # decimal commas (1,25), as in Europe
        numbers = text.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
        if numbers.len() - numbers.null_count() == present:
            return numbers
    return text


def _kind(exc: BaseException) -> str:
    """A short description of a reader's failure, without quoting the file's contents."""
    return type(exc).__name__
