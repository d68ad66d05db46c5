"""Analyses over hand-made dataset definitions with known answers, and specs refused."""

from __future__ import annotations

import math
import re
import warnings
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.linalg
from lifelines import CoxPHFitter, KaplanMeierFitter

from strongroom.enclave.analyses import sensitivity
from strongroom.enclave.analyses.frame import group_pids
from strongroom.enclave.analyses.regression import coefficient_steps
from strongroom.enclave.analyses.run import run as run_with
from strongroom.enclave.analyses.spec import parse_spec
from strongroom.enclave.analyses.survival import survival_at
from strongroom.enclave.analyses.tables import nice_edges
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.enclave.steps import Rounding
from strongroom.errors import Invalid

run = partial(run_with, rounding=Rounding(b"a key for these figures only"))


def cell(result: Result, row: tuple[str, ...], column: str, kind: CellKind | None = None,
         table: str | None = None) -> Cell:
    found = [c for c in result.cells if c.row == row and c.column == column
             and (kind is None or c.kind == kind) and (table is None or c.table == table)]
    assert len(found) == 1, f"{len(found)} cells at {row} / {column}"
    return found[0]


def ids(c: Cell) -> list[int]:
    return [int(p) for p in c.contributors]


def refused(body: dict[str, Any], frame: pl.DataFrame) -> str:
    with pytest.raises(Invalid) as caught:
        run(body, frame)
    return " ".join(caught.value.reasons)


def assert_sorted_sets(result: Result) -> None:
    for c in result.cells:
        assert c.contributors.dtype == np.int64
        assert np.all(np.diff(c.contributors) > 0), f"{c.row}/{c.column} not a sorted set"


# -- specs ----------------------------------------------------------------------------------

MINIMAL = {
    "frequency": {"variable": "a"},
    "crosstab": {"rows": "a", "columns": "b"},
    "summary": {"variables": ["x"]},
    "histogram": {"variable": "x", "bins": 5},
    "ols": {"outcome": "y", "covariates": ["x"]},
    "logistic": {"outcome": "y", "covariates": ["x"]},
    "kaplan_meier": {"time": "t", "event": "e"},
    "cumulative_incidence": {"time": "t", "event": "e"},
    "cox": {"time": "t", "event": "e", "covariates": ["x"]},
    "correlation": {"variables": ["x", "y"]},
}


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_every_kind_parses_and_round_trips(kind: str) -> None:
    spec = parse_spec({"kind": kind, **MINIMAL[kind]})
    assert spec.kind == AnalysisKind(kind)
    assert parse_spec(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(("body", "reason"), [
    ({"variable": "a"}, "kind must be one of"),
    ({"kind": "median_of_everyone"}, "kind must be one of"),
    ({"kind": "aggregate_sql", "sql": "SELECT 1"}, "aggregate SQL is run as a query"),
    ({"kind": "frequency"}, "variable: required for a frequency analysis"),
    ({"kind": "frequency", "variable": "a", "weights": "w"}, "weights: not a field"),
    ({"kind": "frequency", "variable": "pid"}, "pid is the participant pseudonym"),
    ({"kind": "frequency", "variable": "a", "round_to": 1}, "round_to: Input should be greater"),
    ({"kind": "crosstab", "rows": "a", "columns": "a"}, "same variable"),
    ({"kind": "crosstab", "rows": "a", "columns": "b", "percentages": "cell"}, "percentages:"),
    ({"kind": "summary", "variables": ["x", "x"]}, "variables: names 'x' twice"),
    ({"kind": "summary", "variables": ["x"], "statistics": ["mean", "range"]}, "statistics.1"),
    ({"kind": "summary", "variables": ["x"], "quantiles": [1.5]}, "quantiles.0"),
    ({"kind": "summary", "variables": ["x"], "statistics": []}, "at least one statistic"),
    ({"kind": "histogram", "variable": "x", "bins": 5, "edges": [0, 1]}, "not both"),
    ({"kind": "histogram", "variable": "x", "edges": [0, 2, 1]}, "strictly increasing"),
    ({"kind": "histogram", "variable": "x", "bins": 0}, "bins:"),
    ({"kind": "ols", "outcome": "y", "covariates": []}, "covariates:"),
    ({"kind": "ols", "outcome": "y", "covariates": ["x"], "categorical": ["g"]},
     "list it in covariates too"),
    ({"kind": "ols", "outcome": "y", "covariates": ["y"]}, "both a response and a covariate"),
    ({"kind": "logistic", "outcome": "y", "covariates": ["x"], "round_to": 5}, "round_to: not"),
    ({"kind": "kaplan_meier", "time": "t", "event": "e", "interval": 0}, "interval:"),
    ({"kind": "kaplan_meier", "time": "t", "event": "t"}, "different columns"),
    ({"kind": "kaplan_meier", "time": "t", "event": "e", "unit": "fortnights"}, "unit:"),
    ({"kind": "correlation", "variables": ["x"], "method": "pearson"}, "variables:"),
    ({"kind": "correlation", "variables": ["x", "y"], "method": "kendall"}, "method:"),
])
def test_bad_specs_are_refused_with_their_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_spec(body)
    assert reason in " ".join(caught.value.reasons)


def test_a_spec_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(Invalid, match="must be an object"):
        parse_spec(["frequency"])  # type: ignore[arg-type]


FRAME = pl.DataFrame({"pid": [11, 12, 13], "a": ["x", "y", "x"], "n": [1.0, 2.0, 3.0]})


def test_a_missing_column_is_named_with_the_available_ones() -> None:
    reason = refused({"kind": "crosstab", "rows": "a", "columns": "sex"}, FRAME)
    assert "'sex' is not a column of the dataset definition" in reason
    assert "its columns are: a, n" in reason


@pytest.mark.parametrize(("frame", "reason"), [
    (FRAME.drop("pid"), "no pid column"),
    (FRAME.with_columns(pl.col("pid").cast(pl.String)), "integer participant pseudonyms"),
    (FRAME.with_columns(pl.Series("pid", [1, None, 3])), "every row must belong"),
    (FRAME.clear(), "no rows"),
    (FRAME.with_columns(a=pl.Series([[1], [2], [3]])), "cannot read"),
])
def test_frames_that_are_not_definitions_are_refused(frame: pl.DataFrame, reason: str) -> None:
    assert reason in refused({"kind": "frequency", "variable": "a"}, frame)


def test_infinite_values_count_as_missing_not_as_a_refusal() -> None:
    # a refusal would say whether anyone the definition picked out has an infinite value
    frame = FRAME.with_columns(n=pl.Series([1.0, math.inf, 3.0]))
    result = run({"kind": "summary", "variables": ["n"]}, frame)
    n = next(c for c in result.cells if c.column == "n")
    assert n.value == 2


# -- frequency, crosstab, histogram -----------------------------------------------------------

def test_frequency_counts_percentages_and_total() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3, 4, 5, 6], "g": ["b", "a", "b", None, "b", "a"]})
    result = run({"kind": "frequency", "variable": "g"}, frame)
    assert [(c.row, c.value) for c in result.cells if c.kind == CellKind.COUNT] == [
        (("a",), 2), (("b",), 3), (("(missing)",), 1), (("Total",), 6)]
    assert ids(cell(result, ("a",), "count")) == [2, 6]
    assert cell(result, ("Total",), "count").margin
    b = cell(result, ("b",), "percent")
    assert b.kind == CellKind.PERCENT and b.table == "percent"
    assert b.value == pytest.approx(50.0)
    assert ids(b) == [1, 3, 5] and list(b.denominator) == [1, 2, 3, 4, 5, 6]  # type: ignore
    assert [c.row for c in result.cells if c.kind == CellKind.PERCENT] == [
        ("a",), ("b",), ("(missing)",)]  # not the total's own 100%
    assert_sorted_sets(result)


def test_frequency_without_missing_or_percentages() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3], "g": [2, None, 10]})
    result = run({"kind": "frequency", "variable": "g", "missing": False,
                  "percentages": False}, frame)
    # numbers sort as numbers: 2 before 10
    assert [(c.row[0], c.value) for c in result.cells] == [("2", 1), ("10", 1), ("Total", 2)]


def test_duplicated_rows_do_not_inflate_a_grid_count() -> None:
    # a definition that repeats one participant's row (as many times as their value, say)
    # must not move the count by that person alone: grid tables count participants
    rows = [(7, "x")] * 25 + [(8, "x"), (9, "x"), (10, "y")]
    frame = pl.DataFrame({"pid": [r[0] for r in rows], "g": [r[1] for r in rows]})
    result = run({"kind": "frequency", "variable": "g"}, frame)
    x = cell(result, ("x",), "count")
    assert x.value == 3
    assert ids(x) == [7, 8, 9]
    assert cell(result, ("Total",), "count").value == 4  # what the check counts
    assert ids(cell(result, ("Total",), "count")) == [7, 8, 9, 10]


CROSS = pl.DataFrame({
    "pid": [1, 2, 3, 4, 5, 6, 7, 7],
    "sex": [0, 0, 0, 1, 1, 1, 1, 1],
    "band": ["lo", "mid", "hi", "lo", "lo", "mid", "mid", "mid"],
})


def test_crosstab_has_every_combination_margins_and_a_grand_total() -> None:
    result = run({"kind": "crosstab", "rows": "sex", "columns": "band"}, CROSS)
    assert [c.column for c in result.cells[:4]] == ["hi", "lo", "mid", "Total"]
    zero = cell(result, ("1",), "hi")
    assert zero.value == 0 and len(zero.contributors) == 0 and not zero.margin
    mid = cell(result, ("1",), "mid")
    assert mid.value == 2 and ids(mid) == [6, 7]  # participant 7's two rows count once
    assert cell(result, ("1",), "Total").value == 4
    assert ids(cell(result, ("1",), "Total")) == [4, 5, 6, 7]
    assert cell(result, ("Total",), "lo").value == 3
    grand = cell(result, ("Total",), "Total")
    assert grand.value == 7 and ids(grand) == [1, 2, 3, 4, 5, 6, 7] and grand.margin
    assert {c.margin for c in result.cells if "Total" in (c.row[0], c.column)} == {True}
    assert {c.table for c in result.cells} == {""}
    assert len(result.cells) == 3 * 4
    assert_sorted_sets(result)


@pytest.mark.parametrize(("how", "value", "denominator"), [
    ("row", 100 * 2 / 4, [4, 5, 6, 7]),
    ("column", 100 * 2 / 3, [2, 6, 7]),
    ("total", 100 * 2 / 7, [1, 2, 3, 4, 5, 6, 7]),
])
def test_crosstab_percentages_carry_numerator_and_denominator(
        how: str, value: float, denominator: list[int]) -> None:
    result = run({"kind": "crosstab", "rows": "sex", "columns": "band", "percentages": how},
                 CROSS)
    mid = cell(result, ("1",), "mid", CellKind.PERCENT)
    assert mid.value == pytest.approx(value) and mid.table == "percent"
    assert ids(mid) == [6, 7] and list(mid.denominator) == denominator  # type: ignore
    # a margin over itself is always 100%: left out, so the check never sees a false 100% share
    percents = [c for c in result.cells if c.kind == CellKind.PERCENT]
    assert not any(c.row == ("Total",) and c.column == "Total" for c in percents)
    own = {"row": lambda c: c.column == "Total", "column": lambda c: c.row == ("Total",),
           "total": lambda c: c.row == ("Total",) and c.column == "Total"}[how]
    assert not any(own(c) for c in percents)
    assert len(percents) == 12 - {"row": 2 + 1, "column": 3 + 1, "total": 1}[how]
    assert_sorted_sets(result)


def test_crosstab_without_margins_still_gives_percentages() -> None:
    result = run({"kind": "crosstab", "rows": "sex", "columns": "band", "margins": False,
                  "percentages": "row"}, CROSS)
    assert not any(c.margin for c in result.cells)
    assert cell(result, ("0",), "hi", CellKind.PERCENT).value == pytest.approx(100 / 3)
    assert len(result.cells) == 2 * 2 * 3


def test_rounded_counts_keep_the_exact_value_and_percentages_use_the_rounded() -> None:
    frame = pl.DataFrame({"pid": range(1, 24), "g": ["a"] * 7 + ["b"] * 16})
    result = run({"kind": "frequency", "variable": "g", "round_to": 5}, frame)
    a = cell(result, ("a",), "count")
    assert (a.value, a.exact, a.rounded_to) == (5, 7, 5)
    assert cell(result, ("b",), "count").value == 15
    assert cell(result, ("Total",), "count").value == 25  # 23 rounds up
    assert cell(result, ("a",), "percent").value == pytest.approx(20.0)
    assert "rounded" in result.notes[0]


def test_crosstab_with_more_cells_than_a_table_is_refused() -> None:
    frame = pl.DataFrame({"pid": range(20_000), "a": range(20_000), "b": [0, 1] * 10_000})
    assert "more than 1000 distinct values" in refused(
        {"kind": "crosstab", "rows": "a", "columns": "b"}, frame)


def test_histogram_with_edges_and_open_ended_bins() -> None:
    frame = pl.DataFrame({"pid": range(1, 8), "x": [-1.0, 0, 5, 10, 20, 25, None]})
    result = run({"kind": "histogram", "variable": "x", "edges": [0, 10, 20]}, frame)
    assert [(c.row[0], c.value) for c in result.cells] == [
        ("< 0", 1), ("[0, 10)", 2), ("[10, 20]", 2), ("> 20", 1)]
    assert ids(result.cells[2]) == [4, 5]
    assert {c.kind for c in result.cells} == {CellKind.COUNT}


def test_a_histogram_s_open_bins_are_shown_whether_or_not_anyone_is_in_them() -> None:
    """Which bins exist follows the request, never the data: an open bin shown only when
    someone is past the edge said so of one person (catalogue: "a histogram with edges")."""
    for x, beyond in (([1.0, 2, 3], 0), ([1.0, 2, 31], 1)):
        frame = pl.DataFrame({"pid": range(1, 4), "x": x})
        result = run({"kind": "histogram", "variable": "x", "edges": [0, 30]}, frame)
        assert [(c.row[0], c.value) for c in result.cells] == [
            ("< 0", 0), ("[0, 30]", 3 - beyond), ("> 30", beyond)]


def test_histogram_bins_do_not_show_the_minimum_or_maximum() -> None:
    x = [3.7, 11.0, 15.2, 33.3, 50.0, 61.9, 77.7, 96.2]
    frame = pl.DataFrame({"pid": range(len(x)), "x": x})
    result = run({"kind": "histogram", "variable": "x", "bins": 10}, frame)
    labels = " ".join(c.row[0] for c in result.cells)
    assert "3.7" not in labels and "96.2" not in labels
    assert result.cells[0].row == ("[0, 10)",) and result.cells[-1].row == ("[90, 100]",)
    assert sum(c.value or 0 for c in result.cells) == len(x)


def test_nice_edges_cover_the_range_on_a_round_step() -> None:
    edges = nice_edges(0.013, 0.087, 4)
    assert edges[0] <= 0.013 and edges[-1] >= 0.087
    assert list(edges) == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.1])
    assert list(nice_edges(50.0, 50.0, 10)) == [50.0, 55.0]


def test_histogram_of_text_is_refused() -> None:
    assert "not numeric" in refused({"kind": "histogram", "variable": "a"}, FRAME)


def test_group_pids_falls_back_to_ranks_for_widely_spread_pids() -> None:
    pids = np.array([2**61, 5, 2**61, -7, 5], dtype=np.int64)
    codes = np.array([0, 0, 1, 1, -1], dtype=np.int64)
    got = group_pids(codes, pids, 3)
    assert [list(g) for g in got] == [[5, 2**61], [-7, 2**61], []]


# -- summary --------------------------------------------------------------------------------

SUMMARY = pl.DataFrame({"pid": [1, 2, 3, 4, 5], "x": [4.0, 1.0, 100.0, 3.0, 2.0]})
ALL_STATISTICS = ["n", "mean", "sd", "median", "q25", "q75", "min", "max", "mode"]


def test_summary_statistics_with_what_their_rules_read() -> None:
    result = run({"kind": "summary", "variables": ["x"], "statistics": ALL_STATISTICS,
                  "quantiles": [0.1]}, SUMMARY)
    row = ("x",)
    assert cell(result, row, "n").value == 5
    mean = cell(result, row, "mean")
    assert mean.kind == CellKind.MEAN and mean.value == pytest.approx(22.0)
    assert list(mean.magnitudes) == [4.0, 1.0, 100.0, 3.0, 2.0]  # type: ignore[arg-type]
    assert mean.distinct_values == 5
    assert cell(result, row, "sd").value == pytest.approx(np.std([4, 1, 100, 3, 2], ddof=1))
    median = cell(result, row, "median")
    assert (median.kind, median.value, median.below, median.above) == (CellKind.MEDIAN, 3, 2, 2)
    q25 = cell(result, row, "q25")
    assert (q25.kind, q25.value, q25.below, q25.above) == (CellKind.QUANTILE, 2, 1, 3)
    assert (cell(result, row, "q75").below, cell(result, row, "q75").above) == (3, 1)
    p10 = cell(result, row, "p10")
    assert p10.value == pytest.approx(np.quantile([4, 1, 100, 3, 2], 0.1))
    assert (p10.below, p10.above) == (1, 4)
    largest = cell(result, row, "max")
    assert (largest.kind, largest.value, largest.holders) == (CellKind.MAX, 100, 1)
    assert cell(result, row, "min").value == 1
    assert_sorted_sets(result)


def test_the_mode_of_two_people_has_those_two_as_contributors() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3, 4, 5], "x": [9.0, 1.0, 9.0, 2.0, 3.0]})
    mode = run({"kind": "summary", "variables": ["x"], "statistics": ["mode"]}, frame).cells[0]
    assert (mode.kind, mode.value, mode.holders, mode.distinct_values) == (
        CellKind.MODE, 9, 2, 4)
    assert ids(mode) == [1, 3]


def test_a_mean_over_identical_values_says_so() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3], "x": [5, 5, 5]})
    mean = run({"kind": "summary", "variables": ["x"], "statistics": ["mean"]}, frame).cells[0]
    assert mean.value == 5 and mean.distinct_values == 1


def test_participants_on_several_rows_count_once_and_on_each_side() -> None:
    frame = pl.DataFrame({"pid": [1, 1, 2, 3, 3], "x": [1.0, -9.0, 3.0, 5.0, None]})
    result = run({"kind": "summary", "variables": ["x"],
                  "statistics": ["n", "mean", "median", "min"]}, frame)
    n = cell(result, ("x",), "n")
    assert n.value == 3 and ids(n) == [1, 2, 3]  # participants with a value, not rows
    mean = cell(result, ("x",), "mean")
    assert list(mean.magnitudes) == [10.0, 3.0, 5.0]  # type: ignore[arg-type]
    # a median of participants, each by their own rows' median (-4, 3, 5): 3, not the rows'
    # 2, so that no one's extra row breaks a tie the others' rows make
    median = cell(result, ("x",), "median")
    assert (median.value, median.below, median.above) == (3.0, 1, 1)
    assert cell(result, ("x",), "min").holders == 1


def test_a_variable_with_no_values_shows_nothing() -> None:
    frame = pl.DataFrame({"pid": [1, 2], "x": [None, None]}, schema={"pid": pl.Int64,
                                                                  "x": pl.Float64})
    result = run({"kind": "summary", "variables": ["x"], "statistics": ALL_STATISTICS}, frame)
    assert cell(result, ("x",), "n").value == 0
    assert all(c.value is None for c in result.cells if c.kind != CellKind.COUNT)


def test_summary_of_text_is_refused() -> None:
    assert "not numeric" in refused({"kind": "summary", "variables": ["a"]}, FRAME)


# -- regression -----------------------------------------------------------------------------

def regression_frame(n: int = 200, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    x = rng.normal(0, 1, n)
    y = 1.5 + 2.0 * x + np.select([g == "b", g == "c"], [0.7, -1.2], 0.0) + rng.normal(0, 1, n)
    return pl.DataFrame({"pid": np.arange(1000, 1000 + n), "x": x, "g": g, "y": y})


def test_ols_matches_least_squares_with_the_most_frequent_level_as_reference() -> None:
    frame = regression_frame()
    result = run({"kind": "ols", "outcome": "y", "covariates": ["x", "g"],
                  "categorical": ["g"]}, frame)
    g = frame["g"].to_numpy()
    design = np.column_stack([np.ones(frame.height), frame["x"].to_numpy(),
                              g == "b", g == "c"]).astype(float)
    beta, residual, *_ = np.linalg.lstsq(design, frame["y"].to_numpy(), rcond=None)
    terms = ["Intercept", "x", "g=b", "g=c"]
    # within one step of what one participant could move each estimate (release precision,
    # rounded up or down by a keyed draw)
    steps = coefficient_steps(design, frame["y"].to_numpy(), frame["pid"].to_numpy())
    got = np.array([cell(result, (t,), "coef").value for t in terms])
    assert np.all(np.abs(got - beta) <= steps + 1e-9) and np.all(steps > 0)
    sigma2 = residual[0] / (frame.height - 4)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
    got_se = np.array([cell(result, (t,), "se").value for t in terms])
    assert np.all(np.abs(got_se - se) <= steps + 1e-9)
    assert result.facts["residual_df"] == frame.height - 4
    assert result.facts["n_obs"] == frame.height
    assert ids(cell(result, ("g=c",), "coef")) == sorted(frame.filter(g=="c")["pid"].to_list())
    assert len(cell(result, ("x",), "p").contributors) == frame.height
    assert set(result.levels) == {"level:g=a", "level:g=b", "level:g=c", "support:x", "support:y"}
    r2 = cell(result, ("model",), "r_squared")
    # rounded to what one participant could move it (analyses/sensitivity.py)
    assert r2.kind == CellKind.STATISTIC and r2.value is not None and 0 <= r2.value <= 1
    assert {c.kind for c in result.cells} == {CellKind.COEFFICIENT, CellKind.STATISTIC}
    assert_sorted_sets(result)


def test_a_dummy_held_by_one_participant_has_one_contributor() -> None:
    frame = regression_frame(60).with_columns(
        g=pl.when(pl.col("pid") == 1007).then(pl.lit("rare")).otherwise(pl.col("g")))
    result = run({"kind": "ols", "outcome": "y", "covariates": ["x", "g"],
                  "categorical": ["g"]}, frame)
    rare = cell(result, ("g=rare",), "coef")
    assert ids(rare) == [1007]
    assert list(result.levels["level:g=rare"]) == [1007]


def test_rows_with_missing_values_are_left_out_and_said_so() -> None:
    frame = regression_frame(50).with_columns(
        x=pl.when(pl.col("pid") < 1005).then(None).otherwise(pl.col("x")))
    result = run({"kind": "ols", "outcome": "y", "covariates": ["x"]}, frame)
    assert result.facts["n_obs"] == 45
    assert any("left out" in note for note in result.notes)


@pytest.mark.parametrize("kind", ["ols", "logistic"])
def test_a_singular_design_is_refused_naming_no_covariate(kind: str) -> None:
    """Which covariates are dependent is the data's answer: the refusal names none."""
    frame = regression_frame().with_columns(x2=pl.col("x") * 2,
                                            yb=(pl.col("y") > 1.5).cast(pl.Int64))
    outcome = "y" if kind == "ols" else "yb"
    reason = refused({"kind": kind, "outcome": outcome, "covariates": ["x", "x2"]}, frame)
    assert "collinear" in reason and "one of the 2 asked for" in reason
    assert "'x2'" not in reason and "'x'" not in reason
    constant = frame.with_columns(k=pl.lit(3.0))
    assert "collinear" in refused({"kind": kind, "outcome": outcome,
                                   "covariates": ["x", "k"]}, constant)


def test_a_categorical_with_one_level_or_a_text_covariate_is_refused() -> None:
    frame = regression_frame().with_columns(one=pl.lit("z"))
    assert "single level" in refused({"kind": "ols", "outcome": "y", "covariates": ["one"],
                                      "categorical": ["one"]}, frame)
    assert "list it in categorical" in refused({"kind": "ols", "outcome": "y",
                                                "covariates": ["g"]}, frame)


def test_ols_refuses_a_text_outcome_and_a_perfect_fit() -> None:
    frame = regression_frame()
    assert "not numeric" in refused({"kind": "ols", "outcome": "g", "covariates": ["x"]}, frame)
    exact = frame.with_columns(y=pl.col("x") * 3 + 1)
    assert "perfect fit" in refused({"kind": "ols", "outcome": "y", "covariates": ["x"]}, exact)


def test_logistic_with_one_binary_covariate_gives_the_log_odds_ratio() -> None:
    # 2×2 table: exposed 30 events of 50, unexposed 20 of 80 (the MLE is closed-form)
    exposed = [1] * 50 + [0] * 80
    outcome = [1] * 30 + [0] * 20 + [1] * 20 + [0] * 60
    frame = pl.DataFrame({"pid": range(130), "e": exposed, "y": outcome})
    result = run({"kind": "logistic", "outcome": "y", "covariates": ["e"]}, frame)
    # each estimate is rounded to what one participant's outcome could move it by
    assert cell(result, ("e",), "coef").value == pytest.approx(math.log((30 / 20) / (20 / 60)),
                                                               abs=0.1)
    assert cell(result, ("Intercept",), "coef").value == pytest.approx(math.log(20 / 60),
                                                                       abs=0.1)
    assert result.facts["events"] == 50 and result.facts["non_events"] == 80
    assert list(result.levels["outcome=1"]) == [*range(30), *range(50, 70)]
    assert len(result.levels["outcome=0"]) == 80
    assert cell(result, ("model",), "pseudo_r_squared").value is not None


def test_logistic_separation_is_refused_in_plain_words() -> None:
    x = np.arange(40, dtype=float)
    frame = pl.DataFrame({"pid": range(40), "x": x, "y": (x > 19).astype(int)})
    reason = refused({"kind": "logistic", "outcome": "y", "covariates": ["x"]}, frame)
    assert "separation" in reason and "Traceback" not in reason
    by_level = pl.DataFrame({"pid": range(40), "g": ["a"] * 10 + ["b"] * 30,
                             "x": np.sin(x), "y": [1] * 10 + [0, 1] * 15})
    reason = refused({"kind": "logistic", "outcome": "y", "covariates": ["x", "g"],
                      "categorical": ["g"]}, by_level)
    # which covariate separates is the data's to say: none is named, nor any level
    assert "a level of a categorical covariate" in reason
    assert "'g'" not in reason and "'a'" not in reason


def test_logistic_needs_a_binary_outcome_with_both_values() -> None:
    frame = regression_frame()
    assert "0/1 or true/false" in refused({"kind": "logistic", "outcome": "y",
                                           "covariates": ["x"]}, frame)
    ones = frame.with_columns(b=pl.lit(1))
    assert "single value" in refused({"kind": "logistic", "outcome": "b",
                                      "covariates": ["x"]}, ones)


# -- survival -------------------------------------------------------------------------------

def survival_frame(n: int = 60, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(25, n))  # whole days: ties, zeros and grid ends happen
    t[:3] = [0, 10, 20]  # exactly on grid points
    return pl.DataFrame({"pid": np.arange(500, 500 + n), "t": t,
                         "e": (rng.random(n) < 0.6).astype(int),
                         "arm": rng.choice(["A", "B"], n)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_survival_fitted_on_distinct_times_is_lifelines_own_bit_for_bit(seed: int) -> None:
    # fitted on a table of distinct (time, event) weighted by their counts, not on a row each
    # (lifelines copied every row into pandas several times over)
    rng = np.random.default_rng(seed)
    n = 20_000
    t = np.round(rng.exponential(8, n) * 12) / 12  # months as years: many ties
    t[:50] = 0.0
    e = (rng.random(n) < 0.3).astype(np.float64)
    ends = 2.0 * np.arange(1, 1 + math.ceil(t.max() / 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = np.asarray(KaplanMeierFitter().fit(t, e).survival_function_at_times(ends))
    weighted = survival_at(t, e, ends)
    assert weighted.tobytes() == rows.tobytes()
    assert np.array_equal(survival_at(t[e == 0], e[e == 0], ends), np.ones(len(ends)))


def test_kaplan_meier_matches_lifelines_own_table() -> None:
    frame = survival_frame()
    result = run({"kind": "kaplan_meier", "time": "t", "event": "e", "interval": 10}, frame)
    t, e = frame["t"].to_numpy(), frame["e"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = KaplanMeierFitter().fit(t, e)
    table = fitted.event_table
    intervals = sorted({c.row for c in result.cells}, key=lambda r: result.cells.index(
        cell(result, r, "at_risk")))
    assert len(intervals) == math.ceil(t.max() / 10)
    for k, row in enumerate(intervals):
        start, end = 10 * k, 10 * (k + 1)
        # lifelines' at-risk table (add_at_risk_counts): at_risk minus removed up to the tick
        expected_at_risk = (len(t) if k == 0 else
                            len(t) - int(table.loc[table.index <= start, "removed"].sum()))
        inside = (table.index > start) | (table.index == 0 if k == 0 else False)
        inside &= table.index <= end
        assert cell(result, row, "at_risk").value == expected_at_risk
        assert cell(result, row, "events").value == int(table.loc[inside, "observed"].sum())
        assert cell(result, row, "censored").value == int(table.loc[inside, "censored"].sum())
        survival = cell(result, row, "survival")
        exact = float(fitted.survival_function_at_times([end]).iloc[0])
        step = sensitivity.survival_step(exact, expected_at_risk, 1)  # one person's reach
        assert survival.value is None if not math.isfinite(step) else \
            abs(survival.value - exact) <= step + 1e-9
        at_risk_pids = frame.filter(pl.col("t") > start if k else pl.lit(True))["pid"]
        assert ids(survival) == sorted(at_risk_pids.to_list())
        assert ids(cell(result, row, "at_risk")) == ids(survival)
    assert_sorted_sets(result)


def test_kaplan_meier_tables_balance_and_show_only_grid_ends() -> None:
    frame = survival_frame(80, seed=9)
    result = run({"kind": "kaplan_meier", "time": "t", "event": "e", "group": "arm",
                  "interval": 7, "unit": "days"}, frame)
    for arm in ("A", "B"):
        rows = [c for c in result.cells if c.row[0] == arm and c.kind == CellKind.AT_RISK]
        at_risk = [cell(result, c.row, "at_risk").value for c in rows]
        removed = [(cell(result, c.row, "events").value or 0)
                   + (cell(result, c.row, "censored").value or 0) for c in rows]
        assert at_risk[0] == frame.filter(pl.col("arm") == arm).height
        for k in range(len(rows) - 1):
            assert at_risk[k + 1] == (at_risk[k] or 0) - removed[k]
        assert {c.table for c in result.cells if c.row[0] == arm} == {arm}
    numbers = {float(n) for c in result.cells for n in re.findall(r"[\d.]+", c.row[1])}
    assert all(n % 7 == 0 for n in numbers)
    assert list(result.levels["level:arm=A"]) == sorted(
        frame.filter(pl.col("arm") == "A")["pid"].to_list())
    assert result.facts["events"] == frame["e"].sum()


def test_kaplan_meier_default_grid_is_one_year() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3], "t": [100.0, 400.0, 800.0], "e": [1, 0, 1]})
    result = run({"kind": "kaplan_meier", "time": "t", "event": "e"}, frame)
    rows = list(dict.fromkeys(c.row for c in result.cells))
    assert rows == [("All", "[0, 365.25] days"), ("All", "(365.25, 730.5] days"),
                    ("All", "(730.5, 1095.75] days")]
    assert ids(cell(result, rows[1], "censored")) == [2]
    assert ids(cell(result, rows[2], "events")) == [3]


def test_rounded_kaplan_meier_counts() -> None:
    frame = survival_frame()
    result = run({"kind": "kaplan_meier", "time": "t", "event": "e", "interval": 10,
                  "round_to": 5}, frame)
    first = result.cells[0]
    assert first.kind == CellKind.AT_RISK and first.value == 60 and first.exact == 60
    assert all((c.value or 0) % 5 == 0 for c in result.cells if c.kind != CellKind.SURVIVAL)


def test_kaplan_meier_refuses_what_it_cannot_read() -> None:
    frame = survival_frame().with_columns(pl.col("t") * 1000)
    got = refused({"kind": "kaplan_meier", "time": "t", "event": "e", "interval": 1}, frame)
    assert "intervals" in got
    text = survival_frame().with_columns(pl.col("t").cast(pl.String))
    assert "must be a number" in refused({"kind": "kaplan_meier", "time": "t", "event": "e"},
                                         text)


@pytest.mark.parametrize("change", [pl.col("t") - 30, pl.col("e") + 1])
def test_kaplan_meier_leaves_out_negative_times_and_odd_events(change: pl.Expr) -> None:
    # refusing them would say whether anyone the definition picked out has one
    frame = survival_frame().with_columns(change)
    result = run({"kind": "kaplan_meier", "time": "t", "event": "e", "interval": 10}, frame)
    assert any("negative time" in note for note in result.notes)


def test_cox_matches_lifelines_and_keeps_level_contributors() -> None:
    frame = survival_frame(120, seed=2).with_columns(
        x=pl.Series(np.random.default_rng(4).normal(0, 1, 120)))
    result = run({"kind": "cox", "time": "t", "event": "e", "covariates": ["x", "arm"],
                  "categorical": ["arm"]}, frame)
    reference = frame.group_by("arm").len().sort(["len", "arm"], descending=[True, False])
    other = reference["arm"][1]
    data = frame.select("t", "e", "x", d=(pl.col("arm") == other).cast(pl.Float64)).to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = CoxPHFitter().fit(data, duration_col="t", event_col="e").summary
    hr = cell(result, ("x",), "hr")
    assert hr.kind == CellKind.HAZARD_RATIO
    # rounded to what one participant's follow-up could move them (a step of 0.2 here), up
    # or down by a keyed draw of the exact figure (steps.Rounding): within a step of lifelines'
    assert hr.value == pytest.approx(expected.loc["x", "exp(coef)"], abs=0.2)
    assert cell(result, (f"arm={other}",), "ci_high").value == pytest.approx(
        expected.loc["d", "exp(coef) upper 95%"], rel=0.25)
    assert ids(cell(result, (f"arm={other}",), "p")) == sorted(
        frame.filter(pl.col("arm") == other)["pid"].to_list())
    assert result.facts["events"] == frame["e"].sum() and result.facts["n_obs"] == 120
    assert {"level:arm=A", "level:arm=B", "outcome=1", "outcome=0"} <= set(result.levels)
    assert cell(result, ("model",), "concordance").value is not None
    assert_sorted_sets(result)


def test_cox_refuses_a_level_without_events() -> None:
    frame = survival_frame(60).with_columns(
        e=pl.when(pl.col("arm") == "B").then(0).otherwise(pl.col("e")))
    assert "has no events" in refused({"kind": "cox", "time": "t", "event": "e",
                                       "covariates": ["arm"], "categorical": ["arm"]}, frame)


# -- correlation ----------------------------------------------------------------------------

def test_correlations_pairwise_with_their_contributors() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3, 4, 5, 6], "x": [1.0, 2, 3, 4, 5, 6],
                          "y": [2.0, 4, 6, 8, 30, None], "z": [6.0, 5, 4, 3, 2, 1]})
    pearson = run({"kind": "correlation", "variables": ["x", "y", "z"]}, frame)
    xy = cell(pearson, ("x",), "y")
    assert xy.kind == CellKind.CORRELATION
    # over five or six people one participant could move any coefficient anywhere: hidden
    assert xy.value is None and cell(pearson, ("x",), "z").value is None
    assert ids(xy) == [1, 2, 3, 4, 5] and ids(cell(pearson, ("x",), "z")) == [1, 2, 3, 4, 5, 6]
    assert cell(pearson, ("y",), "y").value == pytest.approx(1.0)
    assert len(pearson.cells) == 9
    # over many, rounded to what one participant could move it, Pearson and Spearman alike
    rng = np.random.default_rng(5)
    x = rng.normal(size=3000)
    y = 0.5 * x + rng.normal(size=3000)
    many = pl.DataFrame({"pid": range(3000), "x": x, "y": y})
    for method, exact in (("pearson", np.corrcoef(x, y)[0, 1]),
                          ("spearman", np.corrcoef(np.argsort(np.argsort(x)),
                                                   np.argsort(np.argsort(y)))[0, 1])):
        got = cell(run({"kind": "correlation", "variables": ["x", "y"], "method": method},
                       many), ("x",), "y").value
        assert got is not None and got != exact and abs(got - exact) <= 0.05


def test_a_constant_variable_has_no_correlation() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3], "x": [1.0, 2, 3], "k": [4.0, 4, 4]})
    result = run({"kind": "correlation", "variables": ["x", "k"]}, frame)
    assert cell(result, ("x",), "k").value is None and result.notes


@pytest.mark.parametrize("repeated", [False, True])
def test_a_fits_vectors_are_each_participants_own_total_over_the_complete_rows(
        repeated: bool) -> None:
    """What value-aware differencing compares: per column, over the rows complete in every
    column read, each participant's total (a category as a stable number), by participant."""
    import zlib

    from strongroom.enclave.analyses.run import vectors
    rng = np.random.default_rng(7)
    n = 500
    pid = rng.choice(np.arange(100, 10_000), n, replace=not repeated)
    if repeated:
        pid = np.concatenate([pid[:300], pid[:200]])
    m = pid.size
    frame = pl.DataFrame({
        "pid": pid, "bmi": pl.Series(rng.normal(27, 4, m)).set(
            pl.Series(rng.random(m) < 0.1), None),
        "smoker": rng.random(m) < 0.3, "sex": rng.choice(["F", "M"], m),
        "visits": rng.integers(0, 5, m)})
    found = vectors(frame, ["bmi", "smoker", "sex", "visits"])
    complete = frame.drop_nulls()
    expected_ids = np.unique(complete["pid"].to_numpy())
    for name, (got_ids, values) in found.items():
        assert np.array_equal(got_ids, expected_ids)
        column = complete[name]
        numbers = (column.cast(pl.Float64) if column.dtype != pl.String else
                   column.map_elements(lambda v: float(zlib.crc32(v.encode())),
                                       return_dtype=pl.Float64))
        totals = (pl.DataFrame({"pid": complete["pid"], "x": numbers}).group_by("pid")
                  .agg(pl.col("x").sum()).sort("pid"))
        assert np.allclose(values, totals["x"].to_numpy(), rtol=0, atol=1e-9), name


@pytest.mark.parametrize("collinear", [0.0, 1e-3, 1e-7])
def test_leverages_by_cholesky_are_the_qr_leverages(collinear: float) -> None:
    """Each row's leverage (what the influence rule sums per participant) from the Gram
    matrix's Cholesky factor equals the Householder QR's; a design near collinearity takes
    the QR itself."""
    from strongroom.enclave.analyses.regression import _leverages
    rng = np.random.default_rng(11)
    n = 20_000
    a = rng.normal(50, 8, n)
    x = np.column_stack([np.ones(n), a, rng.normal(27, 4, n) * 1e4, rng.random(n) < 0.01,
                         a + collinear * rng.normal(0, 1, n) if collinear else
                         rng.normal(0, 1, n)])
    q, _ = np.linalg.qr(x)
    expected = np.einsum("ij,ij->i", q, q)
    assert np.allclose(_leverages(x), expected, rtol=1e-6, atol=1e-12)



@pytest.mark.parametrize("noise", [0.0, 1e-12, 1e-6, 1e-3, 1.0])
def test_the_rank_check_decides_as_the_qr_alone_would(noise: float) -> None:
    """A design the Gram matrix shows clearly full rank is passed without the QR; every
    other goes to the QR, which refuses what it refused before."""
    from strongroom.enclave.analyses.regression import _clearly_full_rank, check_rank
    rng = np.random.default_rng(5)
    n = 5_000
    a = rng.normal(50, 8, n)
    x = np.column_stack([np.ones(n), a, rng.normal(27, 4, n), 2 * a + noise * rng.normal(0, 1, n)])
    scale = np.linalg.norm(x, axis=0)
    unit = x / scale
    r = scipy.linalg.qr(unit, mode="r", pivoting=True)[0]
    diagonal = np.abs(np.diag(r))
    qr_full = bool(np.all(diagonal > diagonal[0] * n * np.finfo(float).eps))
    if _clearly_full_rank(unit.T @ unit):
        assert qr_full
    if qr_full:
        check_rank(x, ["intercept", "a", "b", "c"])
    else:
        with pytest.raises(Invalid, match="collinear"):
            check_rank(x, ["intercept", "a", "b", "c"])
    if noise in (0.0, 1.0):  # collinear: to the QR; far from it: passed at once
        assert _clearly_full_rank(unit.T @ unit) == (noise == 1.0)


@pytest.mark.parametrize("exponent", [-160.5, -160.0, -159.25, 120.0])
def test_collinear_columns_at_extreme_scales_are_refused_as_before(exponent: float) -> None:
    """A red-team design (session 24): collinear columns near 1e-160 underflowed the Gram
    matrix's squares, which then looked full rank; such scales go to the QR, which refuses."""
    from strongroom.enclave.analyses.regression import _leverages, check_rank
    rng = np.random.default_rng(3)
    n = 5_000
    v = rng.normal(size=n) * 10.0 ** exponent
    x = np.column_stack([np.ones(n), v, 3.0 * v])
    with pytest.raises(Invalid, match="collinear"):
        check_rank(x, ["intercept", "b", "c"])
    w = np.column_stack([np.ones(n), v, rng.normal(size=n)])
    q, _ = np.linalg.qr(w)
    assert np.allclose(_leverages(w), np.einsum("ij,ij->i", q, q), rtol=1e-6, atol=1e-12)
