"""Hostile suspect files are refused before parsing: size, width, type, unpacked size."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import NoReturn

import numpy as np
import openpyxl
import polars as pl
import pytest

from strongroom.errors import Invalid
from strongroom.extracts import tables

# the readers that parse a file's rows: a hostile file must be refused before any of them runs
# (parsing the 10,000-column one took 145 s once)
PARSERS = ("read_csv", "read_parquet", "read_ndjson", "read_excel")


def _parsed(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("the file was parsed before it was refused")


def _refused_fast(path: Path, reason: str) -> None:
    with pytest.MonkeyPatch.context() as patched:
        for name in PARSERS:
            patched.setattr(pl, name, _parsed)
        patched.setattr(openpyxl, "load_workbook", _parsed)
        with pytest.raises(Invalid, match=reason):
            tables.read_suspect(path)


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:  # sparse: a size on disk without writing it
        fh.write(b"a,b\n1,2\n")
        fh.truncate(tables.MAX_BYTES + 1)
    _refused_fast(path, "MiB, more than")


def test_ten_thousand_columns_of_text_are_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(10_000))
    path.write_text(header + "\n" + "\n".join(",".join("1" * 10_000) for _ in range(50)))
    _refused_fast(path, "10,000 columns")
    tabs = tmp_path / "wide.tsv"
    tabs.write_text("\t".join(f"c{i}" for i in range(2_000)) + "\n")
    _refused_fast(tabs, "2,000 columns")


def test_a_header_line_without_end_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line.csv"
    path.write_bytes(b"x" * (tables.MAX_HEADER + 10))
    _refused_fast(path, "first line is longer")


def test_wide_long_or_nested_parquet_is_refused_from_its_metadata(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wide = tmp_path / "wide.parquet"
    pl.DataFrame({f"c{i}": [1.0] for i in range(tables.MAX_COLUMNS + 1)}).write_parquet(wide)
    _refused_fast(wide, "1,001 columns")
    nested = tmp_path / "nested.parquet"
    pl.DataFrame({"a": [1.0, 2.0], "b": [[1, 2], [3]]}).write_parquet(nested)
    _refused_fast(nested, "nested columns")
    monkeypatch.setattr(tables, "MAX_UNPACKED", 2**20)  # small limits: small files, same code
    bomb = tmp_path / "bomb.parquet"  # zeros compress to almost nothing
    pl.DataFrame({"z": np.zeros(2**20 // 8 * 4)}).write_parquet(bomb, compression="zstd")
    assert bomb.stat().st_size < 2**16
    _refused_fast(bomb, "unpack to")
    monkeypatch.setattr(tables, "MAX_ROWS", 100_000)
    long = tmp_path / "long.parquet"
    pl.DataFrame({"z": np.arange(100_001, dtype=np.int8)}).write_parquet(long)
    _refused_fast(long, "100,001 rows")


def test_wide_workbooks_and_zip_bombs_are_refused_unopened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.cell(row=1, column=1, value="a")
    sheet.cell(row=2, column=tables.MAX_COLUMNS + 5, value=1.0)
    wide = tmp_path / "wide.xlsx"
    book.save(wide)
    _refused_fast(wide, "1,005 columns")
    monkeypatch.setattr(tables, "MAX_UNPACKED", 2**20)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b" " * 2**21)
    assert bomb.stat().st_size < 2**16
    _refused_fast(bomb, "unpack to")


def test_ordinary_files_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    assert tables.read_suspect(path).shape == (2, 2)


def test_columns_cast_as_they_stand_type_as_each_column_alone() -> None:
    """``_typed`` casts every text column at once and keeps the cast where every present
    cell parsed (no NaN): the same columns, types and values as judging each column alone
    (stripped, its missing markers nulled, decimal commas tried)."""
    cells = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A", ".", " 1", "1 ",
             "\t2", "+3", "1e3", "inf", "-inf", "1,5", "x", None, "1.", ".5", "\u00a01",
             "1", "2.5", "-3", "1e-3"]
    rng = np.random.default_rng(7)
    columns = {f"c{i}": [cells[j] for j in rng.integers(0, len(cells), 6)] for i in range(300)}
    columns |= {"numbers": ["1", "2.5", None, "-3", "1e3", "4"],
                "padded": ["1", " 2", None, "3", "4", "5"], "nan": ["1", "NaN", "2", "3", "4", "5"],
                "empty": [None] * 6}
    frame = pl.DataFrame(columns, schema={c: pl.String for c in columns}).with_columns(
        pl.Series("flag", [True, False, None, True, True, False]))
    typed = tables._typed(frame)
    alone = [tables._from_text(frame[c]) if frame[c].dtype == pl.String
             else frame[c].cast(pl.Float64) for c in frame.columns]
    assert typed.columns == frame.columns
    for got, want in zip(typed.get_columns(), alone, strict=True):
        assert got.dtype == want.dtype, got.name
        assert got.is_null().to_list() == want.is_null().to_list(), got.name
        assert got.to_list() == want.to_list() or (
            got.dtype == pl.Float64 and np.array_equal(got.to_numpy(), want.to_numpy(),
                                                       equal_nan=True)), got.name
    assert typed["numbers"].dtype == pl.Float64 and typed["padded"].to_list()[1] == 2.0
    assert typed["empty"].dtype == pl.String


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet", "xlsx"])
def test_columns_named_as_patterns_are_read_each_as_itself(tmp_path: Path, kind: str) -> None:
    """``*`` and ``^…$`` are what Polars reads as every column and as a pattern: a leaker's file
    so named crashed the reader (a free escape from attribution). Each such name is read with
    its position beside it, its own values under it, whatever the format."""
    frame = pl.DataFrame({"^p.*$": [1.5, 2.5], "*": ["a", None], "^.*$": [None, None],
                          "b": [3.0, 4.0]}, schema_overrides={"^.*$": pl.String})
    path = tmp_path / f"hostile.{kind}"
    if kind in ("csv", "tsv"):
        frame.write_csv(path, separator="," if kind == "csv" else "\t")
    elif kind == "jsonl":
        frame.write_ndjson(path)
    elif kind == "parquet":
        frame.write_parquet(path)
    else:
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(frame.columns)
        for row in frame.iter_rows():
            sheet.append(list(row))
        book.save(path)
    read = tables.read_suspect(path)
    assert "^p.*$ (column 1)" in read.columns and "* (column 2)" in read.columns
    assert read["^p.*$ (column 1)"].to_list() == [1.5, 2.5]
    assert read["* (column 2)"].to_list() == ["a", None]
    assert read["b"].to_list() == [3.0, 4.0]
    assert all(len(read.select(pl.col(name)).columns) == 1 for name in read.columns)


def _as_text_then_typed(path: Path) -> pl.DataFrame:
    """What ``_read_text`` answered when every column was read as text and typed after."""
    frame = pl.read_csv(path, separator=tables._sniff(path), infer_schema=False,
                        encoding="utf8-lossy", truncate_ragged_lines=False)
    frame = frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})
    return tables._typed(tables._safely_named(frame))


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """Equal frames, floats bit for bit (−0.0 apart from 0.0, NaN equal to NaN)."""
    assert a.schema == b.schema
    for x, y in zip(a.get_columns(), b.get_columns(), strict=True):
        assert x.is_null().to_list() == y.is_null().to_list(), x.name
        if x.dtype == pl.Float64:
            bits = [v.fill_null(0.0).to_numpy().view(np.uint64) for v in (x, y)]
            assert np.array_equal(*bits), x.name
        else:
            assert x.to_list() == y.to_list(), x.name


@pytest.mark.parametrize("late", [False, True])
def test_columns_of_numbers_read_as_numbers_type_as_text_would(tmp_path: Path,
                                                              late: bool) -> None:
    """The reader's own parse of the columns whose sample is all numbers gives what reading
    every cell as text and typing it gave: odd cells early (in the sample) or late (after it,
    where the reader must fail and the file be read as text)."""
    odd = [" 1.5", "\t2", "  -0", "-0.0", "+.5", "5.", "1e3", "1E-400", "1e400", "-inf", "Inf",
           "infinity", "NaN", "nan", "NA", "N/A", ".", "-", "", " ", "1.5 ", "0x10", "1_000",
           '"1,5"', "TRUE", "1d3", "000123", "12345678901234567890123", '"1.5"', '" 7"',
           "4.9e-324", "1.7976931348623157e308", "١", "None", "#N/A", "x"]
    rows = 1_200
    at = 1_100 if late else 10
    base = np.random.default_rng(5).normal(100, 15, rows).round(1)
    for which, cell in enumerate(odd):
        path = tmp_path / f"odd{which}.csv"
        lines = ["a,b,c,d"]
        for i in range(rows):
            b = cell if i == at else f"{base[i]}"
            d = "" if i % 7 else "3"
            lines.append(f"{i},{b},x{i % 3},{d}")
        path.write_text("\n".join(lines) + "\n")
        _same(tables.read_suspect(path), _as_text_then_typed(path))
    empty = tmp_path / "empty_column.csv"
    empty.write_text("a;b;c\n" + "\n".join(f"{i};;{i / 4}" for i in range(50)) + "\n")
    _same(tables.read_suspect(empty), _as_text_then_typed(empty))
    nan = tmp_path / "nan.tsv"
    nan.write_text("\ufeffa\tb\n" + "\n".join(f"{i}\t{'NaN' if i == 3 else i}"
                                            for i in range(50)) + "\n")
    _same(tables.read_suspect(nan), _as_text_then_typed(nan))
    assert tables.read_suspect(nan).columns == ["a", "b"]
