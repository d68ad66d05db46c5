"""Reading and writing the tables ``strongroom risk`` and ``strongroom anonymise`` work on.

CSV, TSV (``.tsv``, ``.tab``, or a tab in the header line) and Parquet (told by its first
bytes). A text file's delimiter is the one given, else told from its header line: a tab, else
``;`` when the line holds more of them than commas (the European CSV, and ARX's), else ``,``.
Text is read with every column's type inferred from all of its values, so a column of years
stays numeric and a column of codes with one letter stays text; empty cells and ``NA`` are
missing. Every failure says what is wrong with the file and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from strongroom.errors import Invalid, is_failure

MISSING = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A"]
_PARQUET = b"PAR1"


def delimiter_of(given: str | None) -> str | None:
    """One character from ``--delimiter`` (``tab`` or ``\\t`` for a tab); None: tell it."""
    if given is None:
        return None
    text = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ","}.get(given.lower(), given)
    if len(text) != 1 or text in ('"', "\n", "\r"):
        raise Invalid(f"the delimiter must be one character (such as ; or , or tab), not "
                      f"{given!r}")
    return text


def read_table(path: Path, delimiter: str | None = None) -> pl.DataFrame:
    """The table in ``path``; ``Invalid`` naming the problem when it cannot be read."""
    if not path.exists():
        raise Invalid(f"there is no file {path}; check the path")
    if path.is_dir():
        raise Invalid(f"{path} is a folder; give a CSV, TSV or Parquet file")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}; check its permissions"
                      ) from exc
    if not head:
        raise Invalid(f"{path} is empty; give a table with a header row and data rows")
    frame = (_parquet(path) if head.startswith(_PARQUET)
             else _text(path, head, delimiter_of(delimiter)))
    if frame.width == 0 or frame.height == 0:
        raise Invalid(f"{path} has no data rows; give a table with a header row and data rows")
    return frame


def _parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except BaseException as exc:  # polars raises several types for damaged files
        if not is_failure(exc):
            raise
        raise Invalid(f"{path} looks like Parquet but cannot be read "
                      f"({type(exc).__name__}); is it complete?") from exc


def sniff(path: Path, first_line: bytes) -> str:
    """The delimiter a header line uses: tab, then ``;`` over ``,``, else ``,``."""
    if path.suffix.lower() in (".tsv", ".tab") or b"\t" in first_line:
        return "\t"
    return ";" if first_line.count(b";") > first_line.count(b",") else ","


def _text(path: Path, head: bytes, delimiter: str | None) -> pl.DataFrame:
    if b"\x00" in head:
        raise Invalid(f"{path} is not a text table (it holds binary data); give CSV, TSV or "
                      f"Parquet")
    separator = delimiter or sniff(path, head.split(b"\n", 1)[0])
    try:
        return pl.read_csv(path, separator=separator, null_values=MISSING,
                           infer_schema_length=None, try_parse_dates=True,
                           encoding="utf8-lossy")
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        shown = "tab" if separator == "\t" else repr(separator)
        raise Invalid(f"{path} cannot be read as text separated by {shown}: "
                      f"{str(exc).splitlines()[0][:200]}; give --delimiter if it uses "
                      f"another") from exc


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write CSV, TSV or Parquet by the suffix, atomically; never over an existing file."""
    if path.exists():
        raise Invalid(f"{path} already exists; choose another name (nothing is overwritten)")
    if not path.parent.is_dir():
        raise Invalid(f"the folder {path.parent} does not exist; create it first")
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame.write_parquet(staging, compression="zstd")
        elif suffix in (".tsv", ".tab"):
            frame.write_csv(staging, separator="\t")
        elif suffix in (".csv", ".txt"):
            frame.write_csv(staging)
        else:
            raise Invalid(f"cannot tell the format of {path.name}; end it in .csv, .tsv or "
                          f".parquet")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
