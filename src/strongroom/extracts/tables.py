"""Reading a suspect file, whatever shape a leak arrives in: CSV/TSV, Parquet, Excel or
JSON lines (one JSON object per line, ``.jsonl``/``.ndjson``: told by a first ``{``).

A leaked copy may have been renamed, re-delimited, opened in a spreadsheet and saved again, so
nothing about it is trusted: the format is told by the file's first bytes, not its name; the
delimiter is sniffed; a column becomes numeric only when all its non-empty cells parse as
numbers (so a column of numbers stored as strings reads as numbers, and a column of codes with
one stray word stays text). In delimited text, the columns whose first thousand rows are all
numbers are parsed as numbers by the reader itself; any other column, and any file where that
fails, is read as text first and typed column by column, to the same table. Column names and
order are kept as found; matching them to the master is the linkage's job, by values.

A hostile file is refused before it is parsed (``check_suspect``): by its size on disk, its
type (first bytes), and its width (the header line of text, the schema of Parquet, the
dimension of a workbook's sheet) and, for compressed formats, the size it would unpack to.
The limits are far above any extract (a 500,000 × 20 CSV is about 60 MiB; the cohort's
participant table has about 100 columns).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import polars as pl

from strongroom.errors import Invalid, is_failure

_PARQUET = b"PAR1"
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other OLE compound files)
_GZIP = b"\x1f\x8b"
_DELIMITERS = (",", "\t", ";", "|")
_MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A", ".")
_SNIFF_LINES = 50
MAX_BYTES = 256 * 1024 * 1024  # on disk
MAX_UNPACKED = 1024 * 1024 * 1024  # what a Parquet file or workbook would unpack to
MAX_COLUMNS = 1_000
MAX_ROWS = 5_000_000  # Parquet and workbooks say how many before they are read
MAX_HEADER = 1024 * 1024  # bytes of a text file's first line
_NESTED = (pl.List, pl.Array, pl.Struct, pl.Object)
_BOM = b"\xef\xbb\xbf"
_SEND = "send CSV, TSV, Parquet, .xlsx or JSON lines"


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

    Raises ``Invalid`` naming what is wrong when the file cannot be read as a table, or
    when it is too large or too wide to be a leaked extract (``check_suspect``, first).
    """
    check_suspect(path)
    head = _head(path)
    if head.startswith(_PARQUET):
        frame = _read_parquet(path)
    elif head.startswith(_ZIP):
        frame = _read_excel(path)
    elif head.startswith(_OLE):
        raise Invalid(f"{path.name} is a legacy Excel (.xls) file; save it as .xlsx or CSV")
    elif head.startswith(_GZIP):
        raise Invalid(f"{path.name} is gzip-compressed; decompress it first")
    elif _json_lines(path):
        frame = _read_json_lines(path)
    else:
        frame = _read_text(path)
    if frame.width == 0 or frame.height == 0:
        raise Invalid(f"{path.name} holds no data rows; nothing to attribute")
    return frame


def check_suspect(path: Path) -> None:
    """Refuse a file too large, too wide or of the wrong kind, before parsing any of it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if size > MAX_BYTES:
        raise Invalid(f"{path.name} is {size / 2**20:,.0f} MiB, more than the "
                      f"{MAX_BYTES // 2**20} MiB a suspect file may be; send a sample of its "
                      f"rows (a few thousand are plenty to attribute)")
    if size == 0:
        raise Invalid(f"{path.name} is empty")
    head = _head(path)
    if head.startswith(_PARQUET):
        _check_parquet(path)
    elif head.startswith(_ZIP):
        _check_workbook(path)
    elif head.startswith((_OLE, _GZIP)):  # those are refused with their own reasons
        return
    elif _json_lines(path):
        _check_json_header(path)
    else:
        _check_header(path)


def _too_wide(name: str, columns: int) -> Invalid:
    return Invalid(f"{name} has {columns:,} columns, more than the {MAX_COLUMNS:,} a suspect "
                   f"file may have; keep the columns that came from the extract")


def _too_long(name: str, rows: int) -> Invalid:
    return Invalid(f"{name} has {rows:,} rows, more than the {MAX_ROWS:,} a suspect file may "
                   f"have; send a sample of its rows")


def _check_header(path: Path) -> None:
    line = _first_line(path).decode("utf-8", errors="replace")
    widest = max(_count_outside_quotes(line, sep) for sep in _DELIMITERS) + 1
    if widest > MAX_COLUMNS:
        raise _too_wide(path.name, widest)


def _first_line(path: Path) -> bytes:
    with path.open("rb") as fh:
        first = fh.readline(MAX_HEADER + 1)
    if len(first) > MAX_HEADER:
        raise Invalid(f"{path.name}'s first line is longer than {MAX_HEADER // 1024:,} KiB; "
                      f"a table's header is far shorter (is it a table?)")
    return first


def _json_lines(path: Path) -> bool:
    """Whether the file starts like JSON lines: its first non-blank byte (after any byte-order
    mark) opens an object."""
    try:
        with path.open("rb") as fh:
            start = fh.read(4096)
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    start = start.removeprefix(_BOM).lstrip()
    if start.startswith(b"[") and start[1:].lstrip().startswith((b"{", b"[")):
        raise Invalid(f"{path.name} is one JSON array, not JSON lines; save it with one "
                      f"object per line (.jsonl), or as CSV, TSV, Parquet or .xlsx")
    return start.startswith(b"{")


def _check_json_header(path: Path) -> None:
    """The first object's width, before the whole file is parsed."""
    first = _first_line(path)
    try:
        row = json.loads(first.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"{path.name} starts like JSON lines but its first line is not one JSON "
                      f"object ({_kind(exc)}); {_SEND}") from exc
    if not isinstance(row, dict):
        raise Invalid(f"{path.name}'s first line is not a JSON object; {_SEND}")
    if len(row) > MAX_COLUMNS:
        raise _too_wide(path.name, len(row))


def _check_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = pl.read_parquet_schema(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Invalid(f"{path.name} looks like Parquet but cannot be read ({_kind(exc)})") from exc
    except BaseException as exc:  # polars raises several types for damaged files
        if not is_failure(exc):
            raise
        raise Invalid(f"{path.name} looks like Parquet but cannot be read ({_kind(exc)})") from exc
    if meta.num_columns > MAX_COLUMNS:
        raise _too_wide(path.name, meta.num_columns)
    if meta.num_rows > MAX_ROWS:
        raise _too_long(path.name, meta.num_rows)
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > MAX_UNPACKED:
        raise Invalid(f"{path.name} would unpack to {unpacked / 2**20:,.0f} MiB, more than "
                      f"{MAX_UNPACKED // 2**20:,} MiB; send a sample of its rows")
    nested = [name for name, dtype in schema.items() if isinstance(dtype, _NESTED)]
    if nested:
        raise Invalid(f"{path.name} has nested columns ({', '.join(nested[:5])}); a leaked "
                      f"extract is a flat table of numbers, dates and text")


def _check_workbook(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            sheets = [i for i in archive.infolist() if i.filename.startswith("xl/worksheets/")]
            dimensions = [_dimension(archive, info) for info in sheets]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Invalid(f"{path.name} is a zip file but not a readable .xlsx workbook "
                      f"({_kind(exc)})") from exc
    if unpacked > MAX_UNPACKED:
        raise Invalid(f"{path.name} would unpack to {unpacked / 2**20:,.0f} MiB, more than "
                      f"{MAX_UNPACKED // 2**20:,} MiB; send a sample of its rows")
    for columns, rows in dimensions:
        if columns > MAX_COLUMNS:
            raise _too_wide(path.name, columns)
        if rows > MAX_ROWS:
            raise _too_long(path.name, rows)


def _dimension(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int]:
    """A sheet's declared columns and rows, from its ``<dimension ref="A1:XFD9">`` (0, 0 if
    it declares none; openpyxl then stops at the cells themselves)."""
    with archive.open(info) as fh:
        start = fh.read(4096).decode("utf-8", errors="replace")
    found = re.search(r'<(?:\w+:)?dimension ref="[A-Z]*\d*:?([A-Z]+)(\d+)"', start)
    if found is None:
        return 0, 0
    letters, rows = found.groups()
    columns = 0
    for letter in letters:
        columns = columns * 26 + ord(letter) - ord("A") + 1
    return columns, int(rows)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(8)
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except BaseException as exc:  # polars raises several types for damaged files
        if not is_failure(exc):
            raise
        raise Invalid(f"{path.name} looks like Parquet but cannot be read ({_kind(exc)})") from exc
    return _typed(_safely_named(frame))


def _read_json_lines(path: Path) -> pl.DataFrame:
    """One JSON object per line: keys are columns (every line's, in order of appearance),
    values numbers, text, booleans or null; nested values are refused, as for Parquet."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    try:
        frame = pl.read_ndjson(io.BytesIO(data.removeprefix(_BOM)), infer_schema_length=None)
    except BaseException as exc:  # polars raises several types for malformed lines
        if not is_failure(exc):
            raise
        raise Invalid(f"{path.name} looks like JSON lines but cannot be read ({_kind(exc)}); "
                      f"each line must be one flat JSON object; {_SEND}") from exc
    frame = _safely_named(frame)
    if frame.width > MAX_COLUMNS:
        raise _too_wide(path.name, frame.width)
    if frame.height > MAX_ROWS:
        raise _too_long(path.name, frame.height)
    nested = [name for name, dtype in frame.schema.items() if isinstance(dtype, _NESTED)]
    if nested:
        raise Invalid(f"{path.name} has nested values ({', '.join(nested[:5])}); a leaked "
                      f"extract is a flat table of numbers, dates and text")
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                               if t == pl.Null)
    return _typed(frame)


def _read_text(path: Path) -> pl.DataFrame:
    separator = _sniff(path)
    try:
        frame = _numbers_read_as_numbers(path, separator)
        if frame is None:
            frame = pl.read_csv(
                path,
                separator=separator,
                infer_schema=False,  # every column as text; typed below, column by column
                encoding="utf8-lossy",
                truncate_ragged_lines=False,
            )
    except BaseException as exc:
        if not is_failure(exc):
            raise
        raise Invalid(
            f"{path.name} cannot be read as delimited text ({_kind(exc)}); "
            f"{_SEND}"
        ) from exc
    frame = frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})
    return _typed(_safely_named(frame))


_SAMPLE_ROWS = 1_000  # rows read as text to tell which columns hold numbers


def _numbers_read_as_numbers(path: Path, separator: str) -> pl.DataFrame | None:
    """The file as :func:`_typed` will see it, its columns of numbers parsed by the reader
    itself instead of read as text and cast (a 500,000-row extract: half the CPU, and no
    ten million strings made); None when that cannot be told, and the file is read as text.

    The columns whose first ``_SAMPLE_ROWS`` rows are all numbers (or empty) are read as
    Float64; if any later cell of them is not a number the reader fails, and so does this.
    The reader parses exactly what a cast of the cell with its surrounding spaces stripped
    parses, to the same number (``tests/unit/test_suspect_files.py`` holds it to that), which
    is :func:`_typed`'s answer for a column whose every present cell parses; a column that
    holds a NaN (a missing marker there) or no value at all is read again as text and
    typed as before."""
    try:
        options: dict[str, Any] = {"separator": separator, "encoding": "utf8-lossy",
                                   "truncate_ragged_lines": False}
        sample = pl.read_csv(path, infer_schema=False, n_rows=_SAMPLE_ROWS, **options)
        numeric = [_all_numbers(column) for column in sample.get_columns()]
        if len(set(sample.columns)) < sample.width or not any(numeric):
            return None
        frame = pl.read_csv(path, schema_overrides=[pl.Float64 if n else pl.String
                                                    for n in numeric], **options)
        if frame.columns != sample.columns or [
                dtype == pl.Float64 for dtype in frame.dtypes] != numeric:
            return None
        again = [at for at, column in enumerate(frame.get_columns()) if numeric[at] and (
            column.null_count() == column.len() or bool(column.is_nan().any()))]
        if again:
            text = pl.read_csv(path, infer_schema=False, columns=again, **options)
            frame = frame.with_columns(text.get_columns())
    except BaseException as failure:  # read again as text, which says what is wrong
        if not is_failure(failure):
            raise
        return None
    return frame


def _all_numbers(column: pl.Series) -> bool:
    """Whether every present cell of a text column is a number once its spaces are stripped
    (and some cell is present)."""
    present = column.len() - column.null_count()
    numbers = column.str.strip_chars().cast(pl.Float64, strict=False)
    return present > 0 and numbers.len() - numbers.null_count() == present


def _sniff(path: Path) -> str:
    """The delimiter whose per-line count is the same and non-zero on the most lines."""
    try:
        with path.open("rb") as fh:
            sample = fh.read(1 << 16)
    except OSError as exc:
        raise Invalid(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if b"\x00" in sample:
        raise Invalid(f"{path.name} is binary, not a table; {_SEND}")
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
    return safe_names(names)


def _excel_series(name: str, cells: list[Any]) -> pl.Series:
    """One spreadsheet column: numbers stay numbers, dates stay dates, the rest is text."""
    kinds = {type(c) for c in cells if c is not None}
    if kinds and kinds <= {int, float, bool}:
        return pl.Series(name, [None if c is None else float(c) for c in cells], pl.Float64)
    if kinds and all(hasattr(k, "year") for k in kinds):  # datetime / date cells
        return pl.Series(name, cells).cast(pl.Date, strict=False)
    return pl.Series(name, [None if c is None else str(c) for c in cells], pl.String)


def safe_names(names: list[str]) -> list[str]:
    """The suspect's column names as found, except a name Polars would read as more than one
    column's (``*``, or a pattern ``^…$``): that one gets its position after it. A leaker
    naming a column so must not stop attribution (a crash was a free escape), and no later
    ``pl.col(name)`` may select another column than the one named."""
    out: list[str] = []
    for at, name in enumerate(names):
        if name == "*" or (name.startswith("^") and name.endswith("$")):
            name = f"{name} (column {at + 1})"
            while name in names or name in out:
                name += "_"
        out.append(name)
    return out


def _safely_named(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with :func:`safe_names`: each reader renames first, before any expression
    names a column."""
    return frame.rename(dict(zip(frame.columns, safe_names(frame.columns), strict=True)))


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns whose every non-empty cell is a number become Float64; the rest stay;
    names as :func:`safe_names` leaves them (every reader's table comes through here).

    Every text column is first cast to numbers as it stands, all in one ``select`` (Polars
    spreads the columns over the cores). Where every present cell parses and none is NaN,
    that is :func:`_from_text`'s answer already: a number with spaces around it, and every
    missing marker (``NaN`` aside), does not parse as it stands, so stripping and nulling the
    markers would change nothing. The other columns are judged by :func:`_from_text`."""
    frame = _safely_named(frame)
    text = [at for at, dtype in enumerate(frame.dtypes) if dtype == pl.String]
    direct = frame.select(pl.nth(text).cast(pl.Float64, strict=False)) if text else frame
    out = []
    for at, col in enumerate(frame.get_columns()):
        if col.dtype == pl.String:
            numbers = direct.to_series(text.index(at))
            whole = (col.null_count() < col.len() and numbers.null_count() == col.null_count()
                     and not numbers.is_nan().any())
            col = numbers if whole else _from_text(col)
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
