"""JSON lines suspect files (``.jsonl``, ``.ndjson``) read like CSV, Parquet and workbooks;
malformed ones are refused with a reason and nothing else happens."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from strongroom.errors import Invalid
from strongroom.extracts import tables

FRAME = pl.DataFrame({"eid": [3, 1, 2], "p21001_i0": [27.1234, 22.5, None],
                      "p31": [0, 1, 1], "p53_i0": ["2008-01-02", "2009-11-30", None]})


@pytest.mark.parametrize("name", ["leak.jsonl", "leak.ndjson", "leak.txt", "leak.csv"])
def test_json_lines_read_like_a_table_whatever_the_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    FRAME.write_ndjson(path)
    read = tables.read_suspect(path)
    assert read.columns == FRAME.columns
    assert read["p21001_i0"].to_list() == [27.1234, 22.5, None]
    assert read["p31"].cast(pl.Float64).to_list() == [0.0, 1.0, 1.0]
    assert read["p53_i0"].to_list() == ["2008-01-02", "2009-11-30", None]  # dates as text


def test_numbers_as_text_keys_missing_from_some_lines_and_a_byte_order_mark(
        tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text('\ufeff {"a": "1.5", "b": 2}\n{"a": "2"}\n\n{"a": null, "b": 3, "c": true}\n',
                    encoding="utf-8")
    read = tables.read_suspect(path)
    assert read.columns == ["a", "b", "c"]
    assert read["a"].to_list() == [1.5, 2.0, None] and read["b"].to_list() == [2, None, 3]
    assert read["c"].to_list() == [None, None, 1.0]


@pytest.mark.parametrize(("text", "reason"), [
    ('{"a": 1}\n{"a": \n', "cannot be read"),
    ('{"a": 1, oops}\n', "first line is not one JSON object"),
    ('{"a": [1, 2]}\n{"a": [3]}\n', "nested values"),
    ('{"a": {"b": 1}}\n', "nested values"),
    ('[{"a": 1}, {"a": 2}]\n', "one JSON array"),
])
def test_malformed_json_lines_are_refused_with_a_reason(tmp_path: Path, text: str,
                                                        reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(Invalid, match=reason):
        tables.read_suspect(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # nothing written


def test_a_json_line_too_wide_is_refused_from_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "wide.jsonl"
    row = "{" + ", ".join(f'"c{i}": 1' for i in range(tables.MAX_COLUMNS + 1)) + "}\n"
    path.write_text(row * 3)
    with pytest.raises(Invalid, match="1,001 columns"):
        tables.check_suspect(path)
