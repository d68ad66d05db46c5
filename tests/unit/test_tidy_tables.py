"""Released records as labelled tables, and the codings a definition's columns carry.

The guarantee: the table holds exactly the released figures (hidden ones empty, named in
``suppressed``), labelled by the dictionary's codings only where the SQL passes a coded field
through unchanged; nothing else is added but exponentials of released coefficients."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary
from strongroom.enclave.codings import coded_columns, value_labels
from strongroom.errors import Invalid
from strongroom.outputs.tidy import TableFormat, encode, term_meaning, term_parts, tidy, tidy_csv

SEX = {"0": "Female", "1": "Male"}
SMOKING = {"-3": "Prefer not to answer", "0": "Never", "1": "Previous", "2": "Current"}


def cell(row: list[str], column: str, kind: str, value: float | None,
         suppressed: bool = False) -> dict[str, Any]:
    return {"row": row, "column": column, "kind": kind, "value": value,
            "suppressed": suppressed}


def test_a_crosstab_is_a_row_per_pair_of_categories_with_meanings_and_codes() -> None:
    record = {"kind": "crosstab", "spec": {"rows": "sex", "columns": "smoking"}, "cells": [
        cell(["0"], "-3", "count", None, True), cell(["0"], "0", "count", 6655.0),
        cell(["1"], "0", "count", 4210.0), cell(["Total"], "0", "count", 10865.0),
        cell(["0"], "0", "percent", 61.25)]}
    frame = tidy(record, {"sex": SEX, "smoking": SMOKING})
    assert frame.columns == ["sex", "sex_code", "smoking", "smoking_code", "count", "percent",
                             "suppressed"]
    assert frame.row(0) == ("Female", "0", "Prefer not to answer", "-3", None, None, "count")
    assert frame.row(1) == ("Female", "0", "Never", "0", 6655, 61.25, "")
    assert frame.row(3)[:2] == ("Total", "Total")  # a margin is not a code
    assert frame.schema["count"] == pl.Int64()


def test_codes_from_a_float_column_and_unknown_codes_keep_their_text() -> None:
    record = {"kind": "frequency", "spec": {"variable": "sex"}, "cells": [
        cell(["1.0"], "count", "count", 10.0), cell(["7"], "count", "count", 10.0),
        cell(["(missing)"], "count", "count", 15.0)]}
    frame = tidy(record, {"sex": SEX})
    assert frame["sex"].to_list() == ["Male", "7", "(missing)"]
    assert frame["sex_code"].to_list() == ["1.0", "7", "(missing)"]


def test_without_labels_the_codes_are_shown_as_released() -> None:
    record = {"kind": "frequency", "spec": {"variable": "sex"},
              "cells": [cell(["0"], "count", "count", 10.0)]}
    frame = tidy(record, {})
    assert frame.columns == ["sex", "count", "suppressed"]


def test_a_logistic_model_gets_odds_ratios_from_its_released_coefficients() -> None:
    rows = [("Intercept", -3.2, -3.4, -3.0), ("bmi", 0.08, 0.07, 0.09),
            ("sex=1", 0.41, 0.3, 0.52)]
    cells = []
    for term, coef, low, high in rows:
        cells += [cell([term], "coef", "coefficient", coef),
                  cell([term], "ci_low", "coefficient", low),
                  cell([term], "ci_high", "coefficient", high)]
    cells.append(cell(["model"], "n_obs", "statistic", 5000.0))
    frame = tidy({"kind": "logistic", "spec": {}, "cells": cells}, {"sex": SEX})
    sex = frame.row(2, named=True)
    assert (sex["variable"], sex["level"]) == ("sex", "Male")
    # the term by its level's meaning, the term as fitted (and checked) beside it
    assert (sex["term"], sex["term_code"]) == ("sex=Male", "sex=1")
    assert frame.columns[:4] == ["term", "term_code", "variable", "level"]
    assert sex["odds_ratio"] == pytest.approx(math.exp(0.41), rel=1e-5)
    assert sex["or_ci_low"] == pytest.approx(math.exp(0.3), rel=1e-5)
    assert frame.row(0, named=True)["variable"] is None  # the intercept is no variable
    assert frame.row(3, named=True)["odds_ratio"] is None  # model figures have no ratio


@pytest.mark.parametrize(("term", "parts"), [
    ("sex=1", ("sex", "Male")),
    ("sex=1:smoking=2", ("sex:smoking", "Male:Current")),
    ("bmi:sex=0", ("bmi:sex", "Female")),
    ("cr(age, df=4)[0]", ("cr(age, df=4)[0]", None)),
    ("cr(age, df=4)[1]:sex=1", ("cr(age, df=4)[1]:sex", "Male")),
    ("centre=11012", ("centre", "11012")),  # no coding: the code as released
    ("Intercept", (None, None)),
])
def test_model_terms_are_split_into_variables_and_levels_by_meaning(
        term: str, parts: tuple[str | None, str | None]) -> None:
    assert term_parts(term, {"sex": SEX, "smoking": SMOKING}) == parts


@pytest.mark.parametrize(("term", "said"), [
    ("sex=1", "sex=Male"),
    ("smoking=2", "smoking=Current"),
    ("sex=1:smoking=2", "sex=Male:smoking=Current"),
    ("bmi:sex=0", "bmi:sex=Female"),
    ("cr(age, df=4)[1]:sex=1", "cr(age, df=4)[1]:sex=Male"),
    ("cr(age, df=4)[0]", "cr(age, df=4)[0]"),
    ("centre=11012", "centre=11012"),  # no coding: the code as released
    ("sex=7", "sex=7"),  # a code the coding lacks
    ("Intercept", "Intercept"),
])
def test_model_terms_read_their_levels_by_meaning(term: str, said: str) -> None:
    assert term_meaning(term, {"sex": SEX, "smoking": SMOKING}) == said


def test_a_survival_table_has_its_intervals_as_numbers() -> None:
    record = {"kind": "kaplan_meier", "spec": {"group": None}, "cells": [
        cell(["All", "[0, 365.25] days"], "at_risk", "at_risk", 100.0),
        cell(["All", "[0, 365.25] days"], "survival", "survival", 0.98),
        cell(["All", "(365.25, 730.5] days"], "at_risk", "at_risk", 95.0)]}
    frame = tidy(record, {})
    assert frame.columns[:3] == ["interval", "start", "end"]  # no grouping: no group column
    assert frame["end"].to_list() == [365.25, 730.5]


def test_aggregate_sql_names_its_keys_from_the_select_list() -> None:
    record = {"kind": "aggregate_sql", "spec": {"sql": "…"}, "cells": [
        cell(["0", "2"], "n", "count", 1045.0), cell(["0", "2"], "mean_bmi", "mean", 26.3)]}
    assert tidy(record, {"sex": SEX}, ["sex", "smoking"]).columns[:3] == \
        ["sex", "sex_code", "smoking"]
    assert tidy(record, {}, ["only_one"]).columns[:2] == ["key1", "key2"]


def test_a_csv_record_is_read_and_an_ambiguous_one_refused() -> None:
    payload = b"row,column,kind,value,suppressed\n0,count,count,10.0,no\n1,count,count,,yes\n"
    frame = tidy_csv(payload, {"variable": "sex"}, "frequency", {"sex": SEX})
    assert frame["count"].to_list() == [10, None] and frame["suppressed"][1] == "count"
    joined = b"row,column,kind,value,suppressed\na | b,n,count,10.0,no\n"
    with pytest.raises(Invalid, match="cannot be told apart"):
        tidy_csv(joined, {"sql": "…"}, "aggregate_sql", {}, ["x"])


def test_kinds_without_a_table_are_refused_by_name() -> None:
    with pytest.raises(Invalid, match="job_file"):
        tidy({"kind": "job_file", "spec": {}, "cells": []}, {})


def test_csv_and_parquet_hold_the_same_table() -> None:
    record = {"kind": "summary", "spec": {}, "cells": [cell(["bmi"], "mean", "mean", 26.19)]}
    frame = tidy(record, {})
    assert pl.read_parquet(encode(frame, TableFormat.PARQUET)).equals(frame)
    assert encode(frame, TableFormat.CSV).decode().splitlines()[1] == 'bmi,26.19,""'


# -- which columns carry a coding -----------------------------------------------------------

@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT pid, p31 AS sex, p20116_i0 FROM participants", {"sex": 31, "p20116_i0": 20116}),
    ("SELECT p.pid, p.p31 AS sex FROM participants p", {"sex": 31}),
    ("SELECT pid, CAST(p31 AS VARCHAR) AS sex FROM participants", {"sex": 31}),
    ("SELECT pid, p31 + 0 AS sex, p21001_i0 AS bmi FROM participants", {}),  # computed; uncoded
    ("SELECT pid, CASE WHEN p31 = 1 THEN 0 ELSE 1 END AS sex FROM participants", {}),
    ("SELECT b.pid, b.sex FROM base b", {"sex": 31}),
    ("SELECT * FROM base", {"sex": 31}),
    ("SELECT pid, sex FROM base JOIN other USING (pid)", {"sex": 31}),
    ("WITH x AS (SELECT pid, p31 FROM participants) SELECT pid, p31 FROM x", {}),
    ("SELECT pid, p31 AS sex FROM participants; DROP TABLE x", {}),
    ("not sql at all (", {}),
])
def test_only_columns_passed_through_unchanged_carry_a_coding(
        dictionary: Dictionary, sql: str, expected: dict[str, int]) -> None:
    assert coded_columns(sql, dictionary, {"base": {"sex": 31}, "other": {}}) == expected


def test_a_name_two_sources_could_mean_carries_none(dictionary: Dictionary) -> None:
    found = coded_columns("SELECT a.pid, sex FROM base a JOIN twin b ON a.pid = b.pid",
                          dictionary, {"base": {"sex": 31}, "twin": {"sex": 20116}})
    assert found == {}


def test_value_labels_are_the_codings_meanings(dictionary: Dictionary) -> None:
    labels = value_labels({"sex": 31}, dictionary)
    assert labels["sex"]["0"] == "Female" and labels["sex"]["1"] == "Male"
