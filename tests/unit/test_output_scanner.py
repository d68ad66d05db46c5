"""The payload readers and the raw-row scanner, on a synthetic cohort of 5,000.

Ordinary aggregate outputs must pass; participant-level rows must be found however they are
disguised (renamed, reordered, dropped, rounded, mixed, transposed, in any format), and so
must participant IDs. Anything unreadable is refused.
"""

from __future__ import annotations

import io
import json

import numpy as np
import openpyxl
import polars as pl
import pytest
import statsmodels.formula.api as smf

from strongroom.access.pseudonyms import random_ids
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import Cohort
from strongroom.cohort.synth.generator import synthesise
from strongroom.errors import Invalid
from strongroom.outputs import readers, scanner
from strongroom.outputs.ids import IdSet
from strongroom.outputs.readers import PayloadTable, UnreadablePayload, read_payload
from strongroom.outputs.scanner import RowIndex, scan
from strongroom.outputs.verdicts import Finding, Verdict

MEASURES = ["p21001_i0", "p4080_i0_a0", "p4079_i0_a0", "p30690_i0", "p30740_i0", "p50_i0",
            "p21002_i0", "p48_i0", "p34", "p21003_i0"]


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return synthesise(5000, 21)


@pytest.fixture(scope="module")
def pids() -> list[np.ndarray]:
    return [random_ids(5000, np.empty(0, np.int64)) for _ in range(2)]


@pytest.fixture(scope="module")
def index(cohort: Cohort, dictionary: Dictionary, pids: list[np.ndarray]) -> RowIndex:
    built = RowIndex.build(cohort.participants, dictionary)
    built.ids.sync({"a": 1, "b": 1}, {"a": pids[0], "b": pids[1]}.__getitem__)
    return built


@pytest.fixture(scope="module")
def people(cohort: Cohort) -> pl.DataFrame:
    """30 participants with every measure recorded (raw rows to leak)."""
    return cohort.participants.drop_nulls(MEASURES).sample(30, seed=5)


def rules(findings: list[Finding]) -> list[str]:
    assert all(f.verdict == Verdict.BLOCK for f in findings)
    return sorted(f.rule for f in findings)


# -- ordinary outputs pass --------------------------------------------------------------------


def _crosstab(p: pl.DataFrame) -> bytes:
    counts = p.group_by("p31", "p54_i0").len("n").sort("p31", "p54_i0")
    counts = counts.with_columns(
        pct=(pl.col("n") / pl.col("n").sum() * 100).round(1),
        row_pct=(pl.col("n") / pl.col("n").sum().over("p31") * 100).round(2))
    margins = counts.group_by("p31").agg(pl.col("n").sum()).with_columns(
        p54_i0=pl.lit(None, pl.Int64), pct=(pl.col("n") / p.height * 100).round(1),
        row_pct=pl.lit(100.0))
    table = pl.concat([counts, margins.select(counts.columns)], how="vertical_relaxed")
    return table.write_csv().encode()


def _wide_crosstab(p: pl.DataFrame) -> bytes:
    counts = p.group_by("p54_i0", "p20116_i0").len("n").sort("p54_i0", "p20116_i0")
    return counts.pivot(on="p20116_i0", index="p54_i0", values="n").write_csv().encode()


def _summary_json(p: pl.DataFrame) -> bytes:
    def stats(frame: pl.DataFrame) -> dict[str, dict[str, float]]:
        return {c: {"n": int(frame[c].count()), "mean": round(float(frame[c].mean()), 2),
                    "sd": round(float(frame[c].std()), 2), "median": frame[c].median(),
                    "q1": frame[c].quantile(0.25), "q3": frame[c].quantile(0.75)}
                for c in MEASURES}
    groups = [{"sex": int(s), "variables": stats(g)} for (s,), g in p.group_by("p31")]
    return json.dumps({"overall": stats(p), "by_sex": groups}).encode()


def _grouped_means_csv(p: pl.DataFrame) -> bytes:
    table = p.group_by("p54_i0").agg(
        pl.len().alias("n"), *(pl.col(c).mean().round(2).alias(f"mean_{c}") for c in MEASURES),
        *(pl.col(c).std().round(2).alias(f"sd_{c}") for c in MEASURES)).sort("p54_i0")
    return table.write_csv().encode()


def _regression_csv(p: pl.DataFrame) -> bytes:
    frame = p.select([*MEASURES, "p31"]).drop_nulls().to_pandas()
    model = smf.ols("p21001_i0 ~ p4080_i0_a0 + p34 + C(p31) + p30690_i0 + p50_i0", frame).fit()
    return str(model.summary2().tables[1].reset_index().to_csv(index=False)).encode()


def _regression_text(p: pl.DataFrame) -> bytes:
    frame = p.select([*MEASURES, "p31"]).drop_nulls().to_pandas()
    model = smf.ols("p4080_i0_a0 ~ p21001_i0 + p21003_i0 + C(p31) + p30740_i0", frame).fit()
    return str(model.summary()).encode()


def _text_report(p: pl.DataFrame) -> bytes:
    bmi, sbp = p["p21001_i0"], p["p4080_i0_a0"]
    lines = [
        "Baseline characteristics",
        f"Of {p.height} participants, {int((p['p31'] == 0).sum())} "
        f"({float((p['p31'] == 0).mean()) * 100:.1f}%) were women.",
        f"Mean BMI was {bmi.mean():.1f} (SD {bmi.std():.1f}); median {bmi.median():.2f} "
        f"(IQR {bmi.quantile(0.25):.2f}-{bmi.quantile(0.75):.2f}).",
        f"Mean systolic blood pressure {sbp.mean():.1f} mmHg; recruited 2006-03-13 to "
        "2010-10-01 at 22 centres.",
        "Life table: year, at risk, events, censored, survival",
    ]
    at_risk = p.height
    survival = 1.0
    for year in range(10):
        events, censored = 31 + year, 12
        survival *= 1 - events / at_risk
        lines.append(f"{year}  {at_risk}  {events}  {censored}  {survival:.4f}")
        at_risk -= events + censored
    lines += [f"{c}: mean {p[c].mean():.2f}, sd {p[c].std():.2f}, n {p[c].count()}"
              for c in MEASURES]
    return "\n".join(lines).encode()


def _histogram_csv(p: pl.DataFrame) -> bytes:
    return p["p21001_i0"].drop_nulls().hist(bin_count=25).write_csv().encode()


def _correlations_csv(p: pl.DataFrame) -> bytes:
    corr = p.select(MEASURES).drop_nulls().corr().with_columns(pl.all().round(3))
    return corr.write_csv().encode()


def _quantiles_parquet(p: pl.DataFrame) -> bytes:
    qs = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    frame = pl.DataFrame({"quantile": qs, **{c: [p[c].quantile(q) for q in qs]
                                             for c in MEASURES}})
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


ORDINARY = {
    "crosstab.csv": _crosstab, "wide_crosstab.csv": _wide_crosstab,
    "summary.json": _summary_json, "means_by_centre.csv": _grouped_means_csv,
    "regression.csv": _regression_csv, "regression.txt": _regression_text,
    "report.txt": _text_report, "histogram.csv": _histogram_csv,
    "correlations.csv": _correlations_csv, "quantiles.parquet": _quantiles_parquet,
}


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_outputs_pass(name: str, cohort: Cohort, index: RowIndex) -> None:
    assert scan(index, ORDINARY[name](cohort.participants), name) == []


def test_one_seven_digit_count_that_is_an_id_passes(cohort: Cohort, index: RowIndex) -> None:
    eid = int(cohort.participants["eid"][17])
    report = f"Total follow-up: {eid} person-days over 9.8 years.\n".encode()
    assert scan(index, report, "report.txt") == []


# -- raw rows are found ------------------------------------------------------------------------


def _raw(people: pl.DataFrame) -> pl.DataFrame:
    return people.select("p21001_i0", "p34", "p4080_i0_a0", "p30690_i0", "p31", "p53_i0",
                         "p50_i0")


def _disguised(people: pl.DataFrame) -> pl.DataFrame:
    """Renamed, reordered, columns dropped, rounded to one decimal."""
    return people.select(
        pl.col("p30690_i0").round(1).alias("chol"), pl.col("p34").alias("born"),
        pl.col("p21001_i0").round(1).alias("bmi"), pl.col("p4080_i0_a0").alias("sbp"),
        pl.col("p50_i0").alias("height"))


def _integers(people: pl.DataFrame) -> pl.DataFrame:
    return people.select(pl.col(c).round(0).cast(pl.Int64).alias(f"v{i}") for i, c in
                         enumerate(["p21002_i0", "p4079_i0_a0", "p21001_i0", "p34",
                                    "p4080_i0_a0", "p50_i0"]))


def test_raw_rows_in_a_csv(people: pl.DataFrame, index: RowIndex) -> None:
    findings = scan(index, _raw(people).write_csv().encode(), "rows.csv")
    assert rules(findings) == ["raw_rows"]
    assert findings[0].reason.startswith("30 rows of the payload match participant records")
    shown = {str(v) for v in people["p21001_i0"]} | {str(v) for v in people["eid"]}
    assert not [v for v in shown if v in findings[0].reason]  # how many, never which


def test_renamed_reordered_dropped_and_rounded_rows(people: pl.DataFrame,
                                                    index: RowIndex) -> None:
    findings = scan(index, _disguised(people).write_csv().encode(), "table1.csv")
    assert rules(findings) == ["raw_rows"]


def test_rows_rounded_to_integers(people: pl.DataFrame, index: RowIndex) -> None:
    findings = scan(index, _integers(people).write_csv().encode(), "counts.csv")
    assert rules(findings) == ["raw_rows"]


def test_a_few_raw_rows_among_aggregate_rows(cohort: Cohort, people: pl.DataFrame,
                                             index: RowIndex) -> None:
    cols = ["p21001_i0", "p4080_i0_a0", "p30690_i0", "p34", "p50_i0"]
    groups = (cohort.participants.group_by("p54_i0")
              .agg(pl.col(c).mean().round(2) for c in cols).sort("p54_i0")
              .select(pl.col("p54_i0").cast(pl.String).alias("group"), *cols))
    assert scan(index, groups.write_csv().encode(), "means.csv") == []
    rows = people.head(3).select(pl.lit("x").alias("group"), pl.col("p21001_i0").round(1),
                                 *cols[1:])
    mixed = pl.concat([groups, rows], how="vertical_relaxed")
    assert rules(scan(index, mixed.write_csv().encode(), "means.csv")) == ["raw_rows"]
    # and raw rows appended as a second section of a different shape
    text = groups.write_csv() + "\nIndividuals\n" + _disguised(people.head(6)).write_csv()
    assert rules(scan(index, text.encode(), "means.csv")) == ["raw_rows"]


def test_group_labels_that_are_raw_values(cohort: Cohort, index: RowIndex) -> None:
    """GROUP BY bmi, sbp, birth year: every group is one person, counts hidden or not."""
    groups = (cohort.participants.group_by("p21001_i0", "p4080_i0_a0", "p34").len("n")
              .head(40).with_columns(n=pl.lit(None, pl.Int64)))
    cells = [{"row": [str(v) for v in row[:3]], "column": "count", "value": None,
              "suppressed": True} for row in groups.rows()]
    assert rules(scan(index, json.dumps({"kind": "aggregate_sql", "cells": cells}).encode(),
                      "result.json")) == ["raw_rows"]


def test_raw_rows_in_parquet(people: pl.DataFrame, index: RowIndex) -> None:
    buffer = io.BytesIO()
    _disguised(people).write_parquet(buffer)
    assert rules(scan(index, buffer.getvalue(), "result.parquet")) == ["raw_rows"]


@pytest.mark.parametrize("shape", ["records", "nested", "columns", "arrays"])
def test_raw_rows_in_json(shape: str, people: pl.DataFrame, index: RowIndex) -> None:
    frame = _disguised(people)
    doc: object = {
        "records": frame.to_dicts(),
        "nested": {"analysis": {"n": 30, "rows": frame.to_dicts()}},
        "columns": frame.to_dict(as_series=False),
        "arrays": [list(r) for r in frame.rows()],
    }[shape]
    assert rules(scan(index, json.dumps(doc).encode(), "out.json")) == ["raw_rows"]


def test_raw_rows_in_text(people: pl.DataFrame, index: RowIndex) -> None:
    frame = _disguised(people)
    plain = "\n".join("  ".join(str(v) for v in row) for row in frame.rows())
    assert rules(scan(index, f"Listing\n{plain}\n".encode(), "listing.txt")) == ["raw_rows"]
    with pl.Config(tbl_rows=40):
        printed = str(frame)  # a printed DataFrame, box characters and all
    assert rules(scan(index, printed.encode(), "console.log")) == ["raw_rows"]


def test_participants_as_columns(people: pl.DataFrame, index: RowIndex) -> None:
    frame = _disguised(people.head(12))
    transposed = pl.DataFrame({f"person_{i}": list(row) for i, row in enumerate(frame.rows())})
    findings = scan(index, transposed.write_csv().encode(), "wide.csv")
    assert rules(findings) == ["raw_rows"]
    assert "rows and columns swapped" in findings[0].reason


def test_raw_rows_in_a_workbook(people: pl.DataFrame, index: RowIndex) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    frame = _disguised(people)
    sheet.append(frame.columns)
    for row in frame.rows():
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    assert rules(scan(index, buffer.getvalue(), "table.xlsx")) == ["raw_rows"]


# -- participant IDs ---------------------------------------------------------------------------


def test_pseudonymous_ids_are_found(pids: list[np.ndarray], index: RowIndex) -> None:
    table = pl.DataFrame({"id": pids[1][:5], "n": [12, 15, 11, 19, 30]})
    findings = scan(index, table.write_csv().encode(), "list.csv")
    assert rules(findings) == ["identifiers"]
    assert findings[0].reason.startswith("5 distinct values are participant IDs")
    assert str(pids[1][0]) not in findings[0].reason


def test_the_id_set_follows_the_live_projects() -> None:
    """A new project's pseudonyms are added alone; a rewritten or retired map is rebuilt, so
    its old pseudonyms stop being IDs (and a damaged map is refused, never skipped)."""
    drawn = random_ids(4000, np.empty(0, np.int64))  # four maps that share no pseudonym
    maps = {"a": drawn[:1000], "b": drawn[1000:2000], "c": drawn[2000:3000]}
    loads: list[str] = []

    def load(project: str) -> np.ndarray:
        loads.append(project)
        return maps[project]

    ids = IdSet(np.array([5, 6, 7]))
    ids.sync({"a": 1, "b": 1}, load)
    ids.sync({"a": 1, "b": 1, "c": 1}, load)
    assert loads == ["a", "b", "c"]  # the third project cost one read, not three
    assert ids.contains(np.concatenate([maps["a"], maps["c"], [5, 7]])).all()
    assert not ids.contains(np.array([4, 8, 999_999, 10_000_000])).any()
    old_b = maps["b"]
    maps["b"] = drawn[3000:]
    ids.sync({"a": 1, "b": 2}, load)  # b rewritten, c retired: rebuilt from what is live
    assert ids.contains(maps["b"]).all() and ids.contains(maps["a"]).all()
    assert not ids.contains(old_b).any() and not ids.contains(maps["c"]).any()
    maps["d"] = np.array([123])
    with pytest.raises(Invalid, match="not 7-digit"):
        ids.sync({"a": 1, "b": 2, "d": 1}, load)
    assert ids.contains(maps["a"]).all()  # a refused sync leaves the set as it was


def test_master_ids_in_text_are_found(cohort: Cohort, index: RowIndex) -> None:
    eids = cohort.participants["eid"].to_list()[:2]
    text = f"Outliers: participant {eids[0]} (BMI high) and ID{eids[1]}.\n".encode()
    assert rules(scan(index, text, "notes.md")) == ["identifiers"]


def test_one_id_in_an_id_column_is_found(pids: list[np.ndarray], index: RowIndex) -> None:
    table = pl.DataFrame({"pid": [int(pids[0][3])], "events": [4]})
    assert rules(scan(index, table.write_csv().encode(), "one.csv")) == ["identifiers"]


def test_ids_as_column_names_are_found(pids: list[np.ndarray], index: RowIndex) -> None:
    table = pl.DataFrame({str(p): [1.5, 2.5] for p in pids[0][:3]})
    assert "identifiers" in rules(scan(index, table.write_csv().encode(), "wide.csv"))


# -- fail closed -------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "name"), [
    (b"PK\x03\x04 not really", "table.xls"),
    (b"%PDF-1.7", "report.pdf"),
    (b"a,b\n1,\x00\x01\x02\n", "rows.csv"),
    (b"PAR1 not a parquet file", "rows.parquet"),
    (b"not a zip", "table.xlsx"),
    (b'{"rows": [1, 2', "rows.json"),
    (b"1,2,3", "archive.csv.gz"),
])
def test_unreadable_payloads_are_refused(data: bytes, name: str, index: RowIndex) -> None:
    findings = scan(index, data, name)
    assert rules(findings) == ["unrecognised_format"]
    assert "unrecognised format" in findings[0].reason


# -- readers -----------------------------------------------------------------------------------


def test_csv_cells_become_numbers_and_dates() -> None:
    data = b"group,n (%),mean,date\nmen,\"1,204 (48.2%)\",27.41,2008-03-14\nwomen,12,3,1/2/2009\n"
    table = read_payload(data, "t.csv").tables[0]
    assert table.text.columns == ["group", "n (%)", "mean", "date"]
    numbers = table.numbers
    assert numbers["n (%)"].to_list() == [1204.0, 12.0]
    assert numbers["n (%)#2"].to_list() == [48.2, None]
    assert numbers["date"].to_list() == [13952.0, 14276.0]  # days since 1970-01-01
    assert table.date_columns == frozenset({"date"})
    assert "group" not in numbers.columns


def test_headerless_and_semicolon_files_keep_every_row() -> None:
    assert read_payload(b"1;2;3\n4;5;6\n", "x.csv").tables[0].numbers.rows() == [
        (1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]
    ragged = read_payload(b"a,b\n1,2\n3,4,5,6\n", "x.csv").tables[0].numbers
    assert ragged.height == 2 and ragged.width == 4


def test_every_json_number_lands_in_a_table() -> None:
    doc = {"model": {"n": 4974, "r2": 0.21},
           "coefficients": [{"term": "age", "est": 0.05, "ci": [0.01, 0.09]},
                            {"term": "sex", "est": -1.2, "ci": [-1.5, -0.9]}],
           "by_group": {"a": {"mean": 1.5, "sd": 0.2}, "b": {"mean": 2.5, "sd": 0.3}},
           "matrix": [[1, 2], [3, 4]], "flags": [True, None, 7]}
    payload = read_payload(json.dumps(doc).encode(), "x.json")
    found = sorted(v for t in payload.tables for c in t.numbers.columns
                   for v in t.numbers[c].drop_nulls().to_list())
    assert found == sorted([4974, 0.21, 0.05, 0.01, 0.09, -1.2, -1.5, -0.9, 1.5, 0.2, 2.5, 0.3,
                            1, 2, 3, 4, 1, 7])


def test_parquet_nesting_is_flattened_and_odd_types_refused() -> None:
    buffer = io.BytesIO()
    pl.DataFrame({"s": [{"a": 1.5, "b": "x 2"}], "l": [[3, 4]]}).write_parquet(buffer)
    table = read_payload(buffer.getvalue(), "n.parquet").tables[0]
    assert sorted(table.numbers.row(0)) == [1.5, 2.0, 3.0, 4.0]
    buffer = io.BytesIO()
    pl.DataFrame({"blob": [b"\x00\x01"]}).write_parquet(buffer)
    with pytest.raises(UnreadablePayload, match="a column has type Binary"):
        read_payload(buffer.getvalue(), "b.parquet")


def test_json_nested_beyond_reason_is_refused() -> None:
    with pytest.raises(UnreadablePayload, match="nested deeper"):
        read_payload(("[" * 200 + "]" * 200).encode(), "deep.json")


def test_small_tables_are_read_as_polars_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small ASCII tables are tokenised in Python: numbers, dates, slots and names as Polars'."""
    pieces = ["0", "7", "12", "1,234", "1,234,567.25", "-3", "-.5", "3.14159", "1.5e3", "2E-4",
              "1e400", "12345678901234567890123", "007", "2008-03-14", "2000-02-29",
              "1900-02-29", "0000-02-29", "0000-01-01", "0001-02-29", "9999-12-31",
              "2008-13-01", "2008-00-10", "1/2/2009", "29/2/2004", "29/2/2100", "31/04/2009",
              "00/01/2000", "01/01/0001", "-", ".", ",", "e", "/", " ", "(", "%)", "x", "NULL"]
    rng = np.random.default_rng(8)

    def cell() -> str | None:
        if rng.random() < 0.1:
            return None
        return "".join(rng.choice(pieces, int(rng.integers(0, 5))))

    for _ in range(300):
        height, width = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        names = [f"c{i}" if rng.random() < 0.8 else f"c{i} 12" for i in range(width)]
        text = pl.DataFrame({n: [cell() for _ in range(height)] for n in names},
                            schema=dict.fromkeys(names, pl.String))
        reserved = frozenset({"c0"}) if rng.random() < 0.3 else frozenset()
        small = readers.tabulate("t", text, reserved)
        with monkeypatch.context() as patch:
            patch.setattr(readers, "SMALL_TABLE", 0)  # Polars, whatever the size
            large = readers.tabulate("t", text, reserved)
        assert small.numbers.equals(large.numbers), text.rows()
        assert small.numbers.columns == large.numbers.columns
        assert (small.date_columns, dict(small.sources)) == (large.date_columns,
                                                             dict(large.sources))
    # the year 0 of the proleptic calendar, and a day that does not exist
    table = read_payload(b"when\n0000-01-01\n2001-02-29\n1970-01-02\n", "d.csv").tables[0]
    assert table.numbers["when"].to_list() == [-719528.0, None, 1.0]


def test_tables_with_other_digits_are_read_by_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    """Digits outside ASCII take the Polars path (Python's Unicode tables may differ)."""
    monkeypatch.setattr(readers, "_tabulate_small", _never)
    table = read_payload("a,b\n١٢,7\n".encode(), "x.csv").tables[0]
    assert table.numbers["b"].to_list() == [7.0]


def _never(*_: object) -> PayloadTable:
    raise AssertionError("this path was not to be taken")


# -- bounds settle most tables before any record is linked; they never change the outcome ------


def _borderline(cohort: Cohort, people: pl.DataFrame) -> dict[str, bytes]:
    """Outputs near the lines the scanner draws: 1–3 raw rows, few columns, one full record."""
    out = {}
    for k in (1, 2, 3):
        for cols in (MEASURES[:3], MEASURES[:4], MEASURES[:6], MEASURES):
            out[f"rows{k}x{len(cols)}.csv"] = people.head(k).select(cols).write_csv().encode()
    rounded = people.head(3).select(pl.col(c).round(0) for c in MEASURES[:5])
    out["rounded.csv"] = rounded.write_csv().encode()
    two = _disguised(people.head(2))
    out["two_as_columns.csv"] = pl.DataFrame(
        {f"p{i}": list(r) for i, r in enumerate(two.rows())}).write_csv().encode()
    counts = cohort.participants.group_by("p31", "p20116_i0").len("n").sort("p31", "p20116_i0")
    cells = [{"column": "n", "kind": "count", "row": [str(s), str(k)], "suppressed": False,
              "value": float(n)} for s, k, n in counts.rows()]
    out["grouped.json"] = json.dumps({"cells": cells, "facts": {}, "kind": "aggregate_sql",
                                      "notes": [], "spec": {"sql": "SELECT …"}}).encode()
    return out


def test_the_bounds_never_change_an_outcome(cohort: Cohort, people: pl.DataFrame,
                                             index: RowIndex,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = {name: make(cohort.participants) for name, make in ORDINARY.items()}
    payloads |= _borderline(cohort, people)
    bounded = {name: scan(index, data, name) for name, data in payloads.items()}
    monkeypatch.setattr(scanner, "_screened_out", lambda *_: False)
    monkeypatch.setattr(scanner, "_cannot_block", lambda *_, **__: False)
    searched = {name: scan(index, data, name) for name, data in payloads.items()}
    assert bounded == searched
    blocked = {name for name, found in bounded.items() if found}
    assert {"rows1x10.csv", "rows3x3.csv", "rows3x10.csv"} <= blocked  # one full record, 3 rows
    assert not blocked & {"rows1x3.csv", "rows2x4.csv", "grouped.json", *ORDINARY}


def test_one_full_record_is_reported_as_one_row(people: pl.DataFrame, index: RowIndex) -> None:
    findings = scan(index, people.head(1).select(MEASURES).write_csv().encode(), "one.csv")
    assert rules(findings) == ["raw_rows"]
    assert findings[0].reason.startswith("1 row of the payload matches a participant record")


def test_a_count_is_settled_by_bounds_alone(cohort: Cohort, index: RowIndex,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A count by sex never reaches the column mapping: its rows cannot single anyone out."""
    counts = cohort.participants.group_by("p31").len("n").sort("p31")
    cells = [{"column": "n", "kind": "count", "row": [str(s)], "suppressed": False,
              "value": float(n)} for s, n in counts.rows()]
    monkeypatch.setattr(scanner, "_map_columns", _never)
    assert scan(index, json.dumps({"cells": cells}).encode(), "result.json") == []


# -- the batched confirmation is the whole table's ---------------------------------------------


def _whole_table_confirm(index: RowIndex, hits: pl.DataFrame,
                         pairs: pl.DataFrame) -> tuple[int, bool, int, int]:
    """``_confirm`` as first written: every match of every row held at once, each record
    deduplicated on its own (the reference the batched, set-compressed search must equal)."""
    def agreeing(tried: pl.DataFrame) -> pl.DataFrame:
        parts = []
        for (j,), part in tried.partition_by("j", as_dict=True).items():
            col = index.columns[int(j)]
            d = part["d"].to_numpy()
            raw = col.values[part["rec"].to_numpy()]
            key = np.floor_divide(raw.astype(np.int64), 10 ** (col.precision - d))
            k = part["k"].to_numpy()
            ok = (raw != col.null) & ((key == k) | ((col.precision > d) & (key == k - 1)))
            parts.append(part.filter(pl.Series(ok)))
        return pl.concat(parts)

    def best(matched: pl.DataFrame, rows: pl.DataFrame, hypotheses: int) -> pl.DataFrame:
        scored = (scanner._dedupe(matched).group_by("r", "rec")
                  .agg(score=pl.len(), logf=pl.col("logf").sum(), records=pl.lit(1)))
        return scanner._best(index, scored, rows, hypotheses)

    matched = agreeing(pairs.join(hits, on="r"))
    first = best(matched, hits, scanner.HYPOTHESES)
    strong = first.filter((pl.col("chance") <= np.log(scanner.STRONG_CHANCE))
                          & (pl.col("score") >= scanner.STRONG_COLUMNS))
    votes = (matched.join(first.select("r", "rec"), on=["r", "rec"], how="semi")
             .group_by("c", "j").agg(votes=pl.col("r").n_unique(), rank=pl.col("rank").min())
             .filter(pl.col("votes") >= scanner.MIN_ROWS)
             .sort("c", "votes", "rank", descending=[False, True, False])
             .unique("c", keep="first").select("c", "j"))
    agreed = matched.join(votes, on=["c", "j"], how="semi")
    second = (best(agreed, hits.join(votes, on=["c", "j"], how="semi"), 1)
              .filter(pl.col("chance") <= np.log(scanner.CHANCE)))
    found = pl.concat([second.select("r", "score"), strong.select("r", "score")])
    if found.height == 0:
        return 0, False, 0, 0
    return (found["r"].n_unique(), strong.height > 0, int(found["score"].min()),
            int(found["score"].max()))


def _linked(index: RowIndex, table: pl.DataFrame) -> tuple[pl.DataFrame, scanner._Links] | None:
    cells = scanner._cells(read_payload(table.write_csv().encode(), "t.csv").tables[0])
    digits, keys = scanner._digits_and_keys(cells["v"].to_numpy())
    cells = cells.with_columns(d=pl.Series(digits), k=pl.Series(keys)).filter(pl.col("d") >= 0)
    hits = scanner._feasible(index, scanner._mapped_hits(
        index, cells, scanner._map_columns(index, cells)))
    links = scanner._link(index, hits) if hits.height else None
    return (hits, links) if links is not None else None


@pytest.fixture(scope="module")
def twinned(cohort: Cohort, dictionary: Dictionary) -> tuple[RowIndex, pl.DataFrame]:
    """The cohort with 20 records entered twice under new IDs (as a duplicated enrolment
    would be), and those 20 records: each row of them matches two records equally well."""
    twins = cohort.participants.drop_nulls(MEASURES).sample(20, seed=9)
    copies = twins.with_columns(pl.col("eid") + 10_000_000)
    return RowIndex.build(pl.concat([cohort.participants, copies]), dictionary), twins


@pytest.mark.parametrize(("batch", "link_rows", "keep"),
                         [(50, 3, 0), (5_000, 7, 200), (10_000_000, 1000, 10_000_000)])
def test_the_batched_search_is_the_whole_tables(cohort: Cohort, index: RowIndex, batch: int,
                                                link_rows: int, keep: int,
                                                twinned: tuple[RowIndex, pl.DataFrame],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows linked a chunk at a time and confirmed a batch at a time, each set of matched
    cells scored once for every record that shares it, give what holding every match at once
    gives: on raw rows (exact, rounded, coarse, twin columns, with decoys, of records held
    twice) and aggregates, in chunks and batches of a few rows, pairs kept or made again."""
    monkeypatch.setattr(scanner, "_BATCH", batch)
    monkeypatch.setattr(scanner, "LINK_ROWS", link_rows)
    monkeypatch.setattr(scanner, "_KEEP_PAIRS", keep)
    people = cohort.participants
    twice, twins = twinned
    assert _confirm_both(twice, twins.select(MEASURES)) == (0, False, 0, 0)  # all tied
    half = pl.concat([twins.head(10), people.drop_nulls(MEASURES).sample(10, seed=8)])
    assert _confirm_both(twice, half.select(MEASURES))[0] == 10
    coarse = ["p31", "p34", "p54_i0", "p20116_i0", "p4080_i0_a0", "p4080_i0_a1", "p21001_i0"]
    tables = [
        people.sample(40, seed=1).select(coarse),
        people.sample(60, seed=2).select(pl.col(c).cast(pl.Float64).round(0) for c in coarse),
        people.sample(25, seed=3).select("p31", "p34", "p4079_i0_a0", "p4079_i0_a1", "p48_i0"),
        pl.concat([people.sample(10, seed=4).select(MEASURES),
                   people.sample(30, seed=5).select(pl.col(c).shuffle(seed=i)
                                                    for i, c in enumerate(MEASURES))]),
        people.group_by("p54_i0", "p31").agg(pl.len().alias("n"), pl.col("p21001_i0").mean(),
                                             pl.col("p34").median()).sort("p54_i0", "p31"),
    ]
    outcomes = [_confirm_both(index, table) for table in tables]
    assert sum(rows >= scanner.MIN_ROWS for rows, *_ in outcomes) >= 2
    assert sum(rows == 0 for rows, *_ in outcomes) >= 1


def _confirm_both(index: RowIndex, table: pl.DataFrame) -> tuple[int, bool, int, int]:
    """``_confirm``'s outcome on a table, once it is checked to be the reference's."""
    linked = _linked(index, table)
    if linked is None:
        return 0, False, 0, 0
    hits, links = linked
    got = scanner._confirm(index, hits, links)
    outcome = (got.rows, got.strong, got.fewest, got.most)
    every = pl.concat([links.pairs(at) for at in range(len(links.chunks))])
    assert outcome == _whole_table_confirm(index, hits, every)
    return outcome


def _irregular_rows(people: pl.DataFrame) -> bytes:
    """Raw rows each showing its own mix of decimals: each links on other keys."""
    rng = np.random.default_rng(4)
    rows = people.select(MEASURES).to_numpy().astype(np.float64)
    shown = [[round(v, int(d)) for v, d in zip(row, rng.integers(0, 3, len(row)), strict=True)]
             for row in rows]
    return pl.DataFrame(shown, schema=MEASURES, orient="row").write_csv().encode()


def test_rows_too_irregular_to_link_are_refused_a_chunk_at_a_time(
        people: pl.DataFrame, index: RowIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """The joins are bounded per chunk of rows: a chunk needing more is refused (fail
    closed, with what to do); the same rows in chunks small enough are searched, and found."""
    data = _irregular_rows(people)
    monkeypatch.setattr(scanner, "MAX_JOINS", 5)
    refused = scan(index, data, "rows.csv")
    assert rules(refused) == ["raw_rows"]
    assert "too large or irregular" in refused[0].reason and "split it" in refused[0].reason
    monkeypatch.setattr(scanner, "LINK_ROWS", 1)  # a row's at most 4 link signatures each
    found = scan(index, data, "rows.csv")
    assert rules(found) == ["raw_rows"]
    assert "singling out one participant" in found[0].reason
    monkeypatch.setattr(scanner, "MAX_TABLE_JOINS", 20)  # and the table's joins are bounded
    assert "too large or irregular" in scan(index, data, "rows.csv")[0].reason


def test_a_link_cell_whose_column_is_taken_is_left_out_not_its_row() -> None:
    """A payload column copied (a birth month shown twice) maps to the cohort column an
    earlier link cell uses; that cell is left out of the row's link keys, and the row is
    still linked (it was dropped from the search, so a copied column hid raw rows)."""
    options = pl.DataFrame({"r": [0, 0, 0, 0, 0], "pos": [0, 1, 1, 2, 3],
                            "j": [5, 7, 8, 5, 9], "d": [0, 0, 0, 0, 1],
                            "k": [1950, 3, 4, 1950, 17]})
    found = scanner._signatures(options).sort("j1")
    assert found["r"].to_list() == [0, 0]  # one signature per option of the second cell
    assert found["j1"].to_list() == [7, 8]
    assert found["j2"].null_count() == 2 and found["j3"].to_list() == [9, 9]
    # an option that clashes beside one that does not is dropped as before
    options = options.with_columns(pl.when(pl.col("pos") == 1).then(pl.Series([0, 5, 7, 0, 0]))
                                   .otherwise(pl.col("j")).alias("j"))
    assert scanner._signatures(options)["j1"].to_list() == [7]


def test_records_are_joined_on_the_link_cells_that_remain(cohort: Cohort,
                                                           index: RowIndex) -> None:
    """A signature with a cell left out joins on the cells before and after it."""
    person = cohort.participants.drop_nulls(["p34", "p52", "p21003_i0"]).row(0, named=True)
    at = {c.name: j for j, c in enumerate(index.columns)}
    options = pl.DataFrame({"r": [0, 0, 0, 0], "pos": [0, 1, 2, 3],
                            "j": [at["p34"], at["p52"], at["p34"], at["p21003_i0"]],
                            "d": [0, 0, 0, 0],
                            "k": [person["p34"], person["p52"], person["p34"],
                                  person["p21003_i0"]]})
    group = scanner._signatures(options)
    assert group["j2"].null_count() == 1
    records = scanner._join(index, group, {})["rec"].to_numpy()
    people = cohort.participants.with_row_index("rec").filter(
        (pl.col("p34") == person["p34"]) & (pl.col("p52") == person["p52"])
        & (pl.col("p21003_i0") == person["p21003_i0"]))
    assert sorted(records.tolist()) == sorted(people["rec"].to_list())
