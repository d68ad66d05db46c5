"""Reading and writing every UKB file style: text as text, problems as data, atomic writes."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import stat
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.cohort.dictionary import Coding, Dictionary, Field, Role, ValueType
from strongroom.cohort.formats import ROW, ReadResult, Style, read_table, write_table
from strongroom.cohort.model import Cohort, event_schema, event_table, storage_dtype
from strongroom.cohort.problems import IngestError


def _field(fid: int, vt: ValueType, instances: int = 1, arrays: int = 1,
           coding: int | None = None) -> Field:
    return Field(fid, f"field {fid}", vt, Role.SENSITIVE, coding_id=coding,
                 instances=instances, arrays=arrays)


def small_dictionary() -> Dictionary:
    """Hand-made, so these tests do not move when the shipped dictionary does."""
    fields = [
        _field(31, ValueType.CATEGORICAL_SINGLE, coding=9),
        _field(34, ValueType.INTEGER),
        _field(53, ValueType.DATE, instances=4),
        _field(4080, ValueType.INTEGER, instances=4, arrays=2),
        _field(21001, ValueType.CONTINUOUS, instances=4),
        _field(20002, ValueType.CATEGORICAL_MULTIPLE, instances=4, arrays=34, coding=6),
        _field(3166, ValueType.TIME, instances=4),
        _field(36, ValueType.TEXT, instances=4),
        _field(41270, ValueType.CATEGORICAL_MULTIPLE, arrays=213, coding=19),
        _field(41280, ValueType.DATE, arrays=213),
        _field(40000, ValueType.DATE, instances=2),
        _field(40001, ValueType.CATEGORICAL_SINGLE, instances=2, coding=19),
        _field(40007, ValueType.CONTINUOUS, instances=2),
    ]
    codings = {
        9: Coding(9, {"0": "Female", "1": "Male"}),
        6: Coding(6, {"1065": "hypertension", "1074": "angina"}),
        19: Coding(19, {"I10": "Essential hypertension", "E119": "Type 2 diabetes",
                        "C509": "Breast, unspecified"}),
    }
    return Dictionary({f.field_id: f for f in fields}, codings)


D = small_dictionary()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def read_ok(path: Path) -> ReadResult:
    result = read_table(path, D)
    assert result.problems == [], [str(p) for p in result.problems]
    return result


def messages(result: ReadResult) -> list[str]:
    return [str(p) for p in result.problems]


UKBCONV = (
    "eid,31-0.0,34-0.0,21001-0.0,21001-1.0,41270-0.0,41270-0.3,41280-0.0,41280-0.3\n"
    "1000017,0,1950,27.3817,,I10,C509,2011-05-17,2015-01-02\n"
    "1000025,1,1961,NA,31.0,,,,\n"
    "1000033,1,1944,007, 1.50,E119,,,2019-12-31\n"
)


# -- reading text ------------------------------------------------------------------------


def test_ukbconv_csv_is_read_as_text_with_rows(tmp_path: Path) -> None:
    result = read_ok(write(tmp_path, "ukb.csv", UKBCONV))
    assert result.style == Style.UKBCONV
    p = result.cohort.participants
    assert p.columns == ["eid", ROW, "p31", "p34", "p21001_i0", "p21001_i1"]
    assert all(p.schema[c] == pl.String for c in p.columns if c != ROW)
    assert p.schema[ROW] == pl.Int64
    assert p[ROW].to_list() == [1, 2, 3]
    # no inference, no trimming: the validator sees exactly what the file says
    assert p["p21001_i0"].to_list() == ["27.3817", None, "007"]
    assert p["p21001_i1"].to_list() == [None, "31.0", " 1.50"]


def test_array_events_pair_code_and_date_at_the_same_slot(tmp_path: Path) -> None:
    result = read_ok(write(tmp_path, "ukb.csv", UKBCONV))
    d = result.cohort.events["diagnoses"]
    assert d.columns == ["eid", ROW, "array_index", "code", "date"]
    assert d.schema["array_index"] == pl.Int32
    assert d.rows() == [
        ("1000017", 1, 0, "I10", "2011-05-17"),
        ("1000017", 1, 3, "C509", "2015-01-02"),
        ("1000033", 3, 0, "E119", None),
        ("1000033", 3, 3, None, "2019-12-31"),  # a date alone is still an event
    ]
    assert set(result.cohort.events) == {"diagnoses"}


def test_tsv_with_ukbconv_names(tmp_path: Path) -> None:
    text = UKBCONV.replace(",", "\t")
    result = read_ok(write(tmp_path, "ukb.tsv", text))
    assert result.style == Style.UKBCONV
    assert result.cohort.participants["p34"].to_list() == ["1950", "1961", "1944"]


def test_r_tab_with_na(tmp_path: Path) -> None:
    text = ("f.eid\tf.31.0.0\tf.4080.0.0\tf.4080.0.1\tf.40000.1.0\tf.40001.1.0\n"
            "1\t0\t143\tNA\t2020-02-02\tI10\n"
            "2\tNA\tNA\t131\tNA\tNA\n")
    result = read_ok(write(tmp_path, "ukb.tab", text))
    assert result.style == Style.RTAB
    p = result.cohort.participants
    assert p.columns == ["eid", ROW, "p31", "p4080_i0_a0", "p4080_i0_a1"]
    assert p.rows() == [("1", 1, "0", "143", None), ("2", 2, None, None, "131")]
    deaths = result.cohort.events["deaths"]
    assert deaths.columns == ["eid", ROW, "instance", "date", "cause", "age"]
    assert deaths.rows() == [("1", 1, 1, "2020-02-02", "I10", None)]


def test_rap_csv_and_entity_prefix(tmp_path: Path) -> None:
    text = ("participant.eid,participant.p31,p21001_i0,p4080_i2_a1,p41270_a3,p41280_a3\n"
            "7,1,22.5,120,I10,2001-01-01\n")
    result = read_ok(write(tmp_path, "rap.csv", text))
    assert result.style == Style.RAP
    p = result.cohort.participants
    assert p.columns == ["eid", ROW, "p31", "p4080_i2_a1", "p21001_i0"]  # in field order
    assert result.cohort.events["diagnoses"].rows() == [("7", 1, 3, "I10", "2001-01-01")]


def test_quoted_values_and_crlf(tmp_path: Path) -> None:
    text = ('"eid","31-0.0","36-0.0"\r\n'
            '"1","0","BP, ""left"" arm"\r\n'
            '"2","","multi\nline"\r\n')
    result = read_ok(write(tmp_path, "ukb.csv", text))
    p = result.cohort.participants
    assert p["p36_i0"].to_list() == ['BP, "left" arm', "multi\nline"]
    assert p[ROW].to_list() == [1, 2]  # a quoted newline does not start a row


def test_trailing_blank_lines_are_not_rows(tmp_path: Path) -> None:
    result = read_ok(write(tmp_path, "ukb.csv", "eid,31-0.0\n1,0\n2,1\n\n\n"))
    assert result.cohort.participants.height == 2


def test_no_final_newline(tmp_path: Path) -> None:
    result = read_ok(write(tmp_path, "ukb.csv", "eid,31-0.0\n1,0\n2,1"))
    assert result.cohort.participants["p31"].to_list() == ["0", "1"]


def test_utf8_bom_is_not_part_of_the_eid_name(tmp_path: Path) -> None:
    result = read_ok(write(tmp_path, "ukb.csv", "\ufeffeid,31-0.0\n1,0\n"))
    assert result.cohort.participants.columns == ["eid", ROW, "p31"]


# -- structural problems -------------------------------------------------------------------


def test_unknown_field_is_reported_and_dropped(tmp_path: Path) -> None:
    result = read_table(write(tmp_path, "ukb.csv", "eid,31-0.0,99999-0.0\n1,0,5\n"), D)
    assert messages(result) == [
        "ukb.csv, field 99999-0.0: field 99999 is not in the data dictionary; column dropped "
        "(add the field to the dictionary to ingest it)"]
    assert result.cohort.participants.columns == ["eid", ROW, "p31"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("31-1.0", "field 31 (field 31) has instances 0–0, not 1"),
        ("4080-4.0", "field 4080 (field 4080) has instances 0–3, not 4"),
        ("4080-0.2", "field 4080 (field 4080) has array slots 0–1, not 2"),
        ("41270-0.213", "field 41270 (field 41270) has array slots 0–212, not 213"),
        ("40000-2.0", "field 40000 (field 40000) has instances 0–1, not 2"),
    ],
)
def test_index_outside_the_field_is_reported_and_dropped(
    tmp_path: Path, name: str, expected: str
) -> None:
    result = read_table(write(tmp_path, "ukb.csv", f"eid,34-0.0,{name}\n1,1950,5\n"), D)
    assert messages(result) == [f"ukb.csv, field {name}: {expected}; column dropped"]
    assert result.cohort.participants.columns == ["eid", ROW, "p34"]
    assert result.cohort.events == {}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("31-0", "is not a ukbconv column name"),
        ("31-00.0", "is not a ukbconv column name"),
        ("sex", "is not a ukbconv column name"),
        ("", "is not a ukbconv column name"),
        ("f.34.0.0", "it is in rtab style, but the file is in ukbconv style"),
        ("p34", "it is in rap style, but the file is in ukbconv style"),
    ],
)
def test_unparseable_name_is_reported_and_dropped(tmp_path: Path, name: str, why: str) -> None:
    result = read_table(write(tmp_path, "ukb.csv", f"eid,31-0.0,{name}\n1,0,5\n"), D)
    [problem] = result.problems
    assert why in problem.message and "(column 3)" in problem.message
    assert problem.field == name
    assert result.cohort.participants.columns == ["eid", ROW, "p31"]


def test_rap_name_must_fit_the_fields_layout(tmp_path: Path) -> None:
    text = "eid,p31,p21001,p31_i0\n1,0,25.1,1\n"
    result = read_table(write(tmp_path, "rap.csv", text), D)
    assert [p.field for p in result.problems] == ["p21001", "p31_i0"]
    assert "expected 'p21001_i0'" in result.problems[0].message
    assert "expected 'p31'" in result.problems[1].message
    assert result.cohort.participants.columns == ["eid", ROW, "p31"]


def test_duplicate_column_keeps_the_first(tmp_path: Path) -> None:
    result = read_table(write(tmp_path, "ukb.csv", "eid,31-0.0,34-0.0,31-0.0\n1,0,1950,1\n"), D)
    [problem] = result.problems
    assert problem.field == "31-0.0"
    assert "column 4 holds the same field, instance and array as column 2" in problem.message
    assert result.cohort.participants["p31"].to_list() == ["0"]


def test_second_eid_column(tmp_path: Path) -> None:
    result = read_table(write(tmp_path, "ukb.csv", "eid,31-0.0,eid\n1,0,2\n"), D)
    assert messages(result) == ["ukb.csv, field eid: second participant ID column (column 3); "
                                "dropped"]
    assert result.cohort.participants["eid"].to_list() == ["1"]


def test_missing_eid(tmp_path: Path) -> None:
    result = read_table(write(tmp_path, "ukb.csv", "31-0.0,41270-0.0\n0,I10\n"), D)
    assert messages(result) == [
        "ukb.csv, field eid: no participant ID column (expected 'eid', 'f.eid' or "
        "'participant.eid')"]
    assert result.cohort.participants.columns == [ROW, "p31"]
    assert result.cohort.events["diagnoses"].columns == [ROW, "array_index", "code", "date"]


def test_header_only(tmp_path: Path) -> None:
    result = read_table(write(tmp_path, "ukb.csv", "eid,31-0.0\n"), D)
    assert messages(result) == ["ukb.csv: the file has a header but no data rows"]
    assert result.cohort.participants.height == 0
    assert result.cohort.participants.columns == ["eid", ROW, "p31"]


@pytest.mark.parametrize("text", ["", "\n", "  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    result = read_table(write(tmp_path, "ukb.csv", text), D)
    assert messages(result) == ["ukb.csv: the file is empty"]
    assert result.cohort.participants.height == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eid,31-0.0,34-0.0\n1,0,1950\n2,1\n3,0,1960\n",
         ["ukb.csv, row 2: row has 2 fields, the header has 3"]),
        ("eid,31-0.0,34-0.0\n1,0,1950\n2,1,1961,x\n",
         ["ukb.csv, row 2: row has 4 fields, the header has 3"]),
        ("eid,31-0.0,34-0.0\n1,0,1950\n\n3,0,1960\n", ["ukb.csv, row 2: blank line in the data"]),
        # truncated in mid-row: the classic partial transfer
        ("eid,31-0.0,34-0.0\n1,0,1950\n2,1,1961\n3,0", ["ukb.csv, row 3: row has 2 fields"]),
        # long and short rows that cancel out in the totals are still found
        ("eid,31-0.0,34-0.0\n1,0\n2,1,1961,x\n", ["ukb.csv, row 1: row has 2 fields",
                                                   "ukb.csv, row 2: row has 4 fields"]),
    ],
)
def test_rows_of_the_wrong_width_refuse_the_file(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    with pytest.raises(IngestError) as info:
        read_table(write(tmp_path, "ukb.csv", text), D)
    shown = [str(p) for p in info.value.problems]
    assert len(shown) == len(expected)
    assert all(s.startswith(e) for s, e in zip(shown, expected, strict=True)), shown


def test_unreadable_files_raise(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot read the file"):
        read_table(tmp_path / "nope.csv", D)
    with pytest.raises(IngestError, match="cannot read the file"):
        read_table(tmp_path, D)  # a directory
    gz = tmp_path / "ukb.csv.gz"
    gz.write_bytes(gzip.compress(b"eid,31-0.0\n1,0\n"))
    with pytest.raises(IngestError, match="gzip-compressed; decompress it first"):
        read_table(gz, D)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("eid,36-0.0\n1,Zürich\n".encode("latin-1"))
    with pytest.raises(IngestError, match="cannot read the file"):
        read_table(latin, D)
    notpq = tmp_path / "bad.parquet"
    notpq.write_bytes(b"PAR1 not really")
    with pytest.raises(IngestError, match="cannot read the file"):
        read_table(notpq, D)


# -- Parquet -----------------------------------------------------------------------------


def test_parquet_keeps_types_and_reads_any_naming(tmp_path: Path) -> None:
    table = pa.table({
        "eid": pa.array([1, 2], pa.int64()),
        "31-0.0": pa.array(["0", "1"]).dictionary_encode(),  # pandas categoricals
        "21001-0.0": pa.array([27.5, None]),
        "41270-0.1": pa.array(["I10", ""]),
        "41280-0.1": pa.array([dt.date(2010, 1, 2), None]),
    })
    pq.write_table(table, tmp_path / "ukb.parquet")
    result = read_ok(tmp_path / "ukb.parquet")
    assert result.style == Style.PARQUET
    p = result.cohort.participants
    assert p.schema == {"eid": pl.Int64, ROW: pl.Int64, "p31": pl.String,
                        "p21001_i0": pl.Float64}
    assert p.rows() == [(1, 1, "0", 27.5), (2, 2, "1", None)]
    d = result.cohort.events["diagnoses"]
    assert d.rows() == [(1, 1, 1, "I10", dt.date(2010, 1, 2))]


def test_parquet_structural_problems(tmp_path: Path) -> None:
    table = pa.table([
        pa.array([1]), pa.array([0]), pa.array([1]), pa.array([["I10", "E119"]]),
        pa.array([["I10"]]), pa.array([5]),
    ], names=["eid", "p31", "p31", "p41270", "p41270_a0", "p99999"])
    pq.write_table(table, tmp_path / "rap.parquet")
    result = read_table(tmp_path / "rap.parquet", D)
    assert [p.field for p in result.problems] == ["p31", "p41270", "p41270_a0", "p99999"]
    assert "duplicate column" in result.problems[0].message
    # RAP's own layout for array fields (one column of lists) is named as such
    assert "expected 'p41270_a0'" in result.problems[1].message
    assert "one column per array slot" in result.problems[1].message
    assert "holds list<element: string> values" in result.problems[2].message
    assert "not in the data dictionary" in result.problems[3].message
    assert result.cohort.participants.columns == ["eid", ROW, "p31"]
    assert result.cohort.events == {}


def test_empty_parquet(tmp_path: Path) -> None:
    pq.write_table(pa.table({"eid": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    result = read_table(tmp_path / "e.parquet", D)
    assert messages(result) == ["e.parquet: the file has no data rows"]


# -- writing -----------------------------------------------------------------------------


def typed_cohort() -> Cohort:
    """A cohort as the validator returns it: storage dtypes, no _row."""
    def frame(data: dict[str, list[object]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
        return pl.DataFrame(data, schema=schema)

    participants = frame(
        {
            "eid": [1000017, 1000025],
            "p31": [0, 1],
            "p34": [1950, 1961],
            "p53_i0": [dt.date(2008, 3, 14), dt.date(2009, 11, 2)],
            "p21001_i0": [27.3817, 25.0],
            "p21001_i1": [0.1 + 0.2, None],
            "p4080_i0_a1": [139, None],
            "p3166_i0": [dt.datetime(2008, 3, 14, 9, 5, 7), None],
            "p36_i0": ['BP, "left"', None],
            "p20002_i0_a0": [None, None],  # a column without values is not written
        },
        {"eid": pl.Int64(), "p31": pl.Int64(), "p34": pl.Int64(), "p53_i0": pl.Date(),
         "p21001_i0": pl.Float64(), "p21001_i1": pl.Float64(), "p4080_i0_a1": pl.Int64(),
         "p3166_i0": pl.Datetime("us"), "p36_i0": pl.String(), "p20002_i0_a0": pl.Int64()},
    )
    diagnoses = frame(
        {"eid": [1000017, 1000017, 1000025], "array_index": [0, 3, 3],
         "code": ["I10", "C509", None], "date": [dt.date(2011, 5, 17), dt.date(2015, 1, 2),
                                                  dt.date(2019, 12, 31)]},
        event_schema(event_table("diagnoses"), D),
    )
    deaths = frame(
        {"eid": [1000025], "instance": [1], "date": [dt.date(2020, 2, 2)], "cause": ["I10"],
         "age": [59.5]},
        event_schema(event_table("deaths"), D),
    )
    return Cohort(participants, {"diagnoses": diagnoses, "deaths": deaths})


EXPECTED_CSV = (
    "eid,31-0.0,34-0.0,36-0.0,53-0.0,3166-0.0,4080-0.1,21001-0.0,21001-1.0,"
    "40000-1.0,40001-1.0,40007-1.0,41270-0.0,41270-0.3,41280-0.0,41280-0.3\n"
    '1000017,0,1950,"BP, ""left""",2008-03-14,2008-03-14T09:05:07,139,27.3817,'
    "0.30000000000000004,,,,I10,C509,2011-05-17,2015-01-02\n"
    "1000025,1,1961,,2009-11-02,,,25,,2020-02-02,I10,59.5,,,,2019-12-31\n"
)


def test_ukbconv_csv_is_written_faithfully(tmp_path: Path) -> None:
    write_table(typed_cohort(), tmp_path / "out.csv", Style.UKBCONV, D)
    assert (tmp_path / "out.csv").read_text() == EXPECTED_CSV


def test_ukbconv_tsv_by_suffix(tmp_path: Path) -> None:
    write_table(typed_cohort(), tmp_path / "out.tsv", Style.UKBCONV, D)
    header = (tmp_path / "out.tsv").read_text().splitlines()[0]
    assert header.split("\t")[:3] == ["eid", "31-0.0", "34-0.0"]


def test_r_tab_is_written_with_na(tmp_path: Path) -> None:
    write_table(typed_cohort(), tmp_path / "out.tab", Style.RTAB, D)
    lines = (tmp_path / "out.tab").read_text().splitlines()
    assert lines[0].split("\t")[:4] == ["f.eid", "f.31.0.0", "f.34.0.0", "f.36.0.0"]
    assert lines[2].split("\t")[:6] == ["1000025", "1", "1961", "NA", "2009-11-02", "NA"]


def test_rap_csv_names(tmp_path: Path) -> None:
    write_table(typed_cohort(), tmp_path / "out.csv", Style.RAP, D)
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["eid", "p31", "p34", "p36_i0", "p53_i0", "p3166_i0"]
    assert "p41270_a3" in header and "p40001_i1" in header


def test_parquet_is_written_typed_with_rap_names(tmp_path: Path) -> None:
    cohort = typed_cohort()
    write_table(cohort, tmp_path / "out.parquet", Style.PARQUET, D)
    frame = pl.read_parquet(tmp_path / "out.parquet")
    assert frame.schema["eid"] == pl.Int64
    assert frame.schema["p53_i0"] == pl.Date
    assert frame.schema["p41280_a3"] == pl.Date
    assert frame.schema["p3166_i0"] == storage_dtype(D.field(3166), D)
    assert frame["p41270_a3"].to_list() == ["C509", None]
    assert "p20002_i0_a0" not in frame.columns


@pytest.mark.parametrize(
    ("style", "name"),
    [(Style.UKBCONV, "x.csv"), (Style.UKBCONV, "x.tsv"), (Style.RTAB, "x.tab"),
     (Style.RAP, "x.csv"), (Style.PARQUET, "x.parquet")],
)
def test_every_style_round_trips(tmp_path: Path, style: Style, name: str) -> None:
    cohort = typed_cohort()
    write_table(cohort, tmp_path / name, style, D)
    result = read_ok(tmp_path / name)
    assert result.style == style
    again = retype(result.cohort)
    expected = cohort.participants.drop("p20002_i0_a0")
    assert_frames(again.participants.drop(ROW), expected)
    for table in ("diagnoses", "deaths"):
        assert_frames(again.events[table].drop(ROW), cohort.events[table])


def retype(cohort: Cohort) -> Cohort:
    """Text back to storage types (a strict cast: the writer must produce parseable text)."""
    def cast(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        exprs = []
        for name, dtype in schema.items():
            col = pl.col(name)
            if frame.schema[name] != pl.String:
                exprs.append(col.cast(dtype))
            elif dtype == pl.Date:
                exprs.append(col.str.to_date("%Y-%m-%d"))
            elif isinstance(dtype, pl.Datetime):
                exprs.append(col.str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us"))
            else:
                exprs.append(col.cast(dtype))
        return frame.select(ROW, *exprs)

    p = cohort.participants
    pschema = {name: storage_dtype(D.field(int(name[1:].split("_")[0])), D)
               for name in p.columns if name not in ("eid", ROW)}
    events = {name: cast(frame, event_schema(event_table(name), D))
              for name, frame in cohort.events.items()}
    return Cohort(cast(p, {"eid": pl.Int64(), **pschema}), events)


def assert_frames(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert dict(got.schema) == dict(expected.schema)
    got = got.select(expected.columns)
    assert got.sort(got.columns[:2]).rows() == expected.sort(expected.columns[:2]).rows()


def test_untyped_cohort_is_written_verbatim(tmp_path: Path) -> None:
    source = write(tmp_path, "in.csv", UKBCONV)
    write_table(read_ok(source).cohort, tmp_path / "out.csv", Style.UKBCONV, D)
    out = (tmp_path / "out.csv").read_text().splitlines()
    assert out[3] == "1000033,1,1944,007, 1.50,E119,,,2019-12-31"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_floats_re_read_to_the_same_float(values: list[float]) -> None:
    import tempfile

    participants = pl.DataFrame({"eid": list(range(1, len(values) + 1)), "p21001_i0": values},
                                schema={"eid": pl.Int64, "p21001_i0": pl.Float64})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        write_table(Cohort(participants, {}), path, Style.UKBCONV, D)
        text = read_ok(path).cohort.participants["p21001_i0"]
    back = text.cast(pl.Float64).to_list()
    assert [repr(v) for v in back] == [repr(v) for v in values]  # -0.0 stays -0.0 too


def test_writing_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.csv"
    target.write_text("the previous, complete file\n")

    def half_then_fail(self: pl.DataFrame, file: object, **kwargs: object) -> None:
        assert hasattr(file, "write")
        file.write(b"eid,31-0.0\n1000017,")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_csv", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_table(typed_cohort(), target, Style.UKBCONV, D)
    assert target.read_text() == "the previous, complete file\n"
    assert sorted(os.listdir(tmp_path)) == ["out.csv"], "no temporary file is left behind"


def test_written_files_are_private(tmp_path: Path) -> None:
    write_table(typed_cohort(), tmp_path / "out.csv", Style.UKBCONV, D)
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o600


def test_a_cohort_no_wide_file_can_hold_is_refused_before_writing(tmp_path: Path) -> None:
    cohort = typed_cohort()
    twice = pl.concat([cohort.events["diagnoses"], cohort.events["diagnoses"].head(1)])
    with pytest.raises(ValueError, match="two events at the same array_index"):
        write_table(Cohort(cohort.participants, {"diagnoses": twice}), tmp_path / "o.csv",
                    Style.UKBCONV, D)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 1 << 24])
def test_record_scan_carries_quotes_and_rows_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from strongroom.cohort.formats import _files

    monkeypatch.setattr(_files, "_CHUNK", chunk)
    path = write(tmp_path, "q.csv", 'eid,a,b\r\n1,"x,\n""y""",2\r\n\r\n3,4\n"5",,""\n6,7,8')
    records = _files.scan_records(path, ",")
    assert records.widths.tolist() == [3, 3, 1, 2, 3, 3]
    assert records.blank.tolist() == [False, False, True, False, False, False]
    assert _files.count_totals(path, ",") == _files.Totals(records=6, separators=9)
