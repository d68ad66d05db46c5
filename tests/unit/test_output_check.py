"""The per-result disclosure check: each trap, on hand-built results and on real analyses.

Secondary suppression is proved, not sampled by eye: after the check, every row and column of
a table has no hidden cell alone, and (solving the table's whole system of row and column
relations, built here from the table's layout independently of the module) no hidden cell is
determined by the shown cells and the totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.enclave.steps import Rounding
from strongroom.outputs.check import MOSTLY, NOTHING_LEFT, WORTH, check
from strongroom.outputs.rules import load_rules, tighten
from strongroom.outputs.verdicts import CheckReport, Verdict

RULES = load_rules()


def ids(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int64)


def rules_of(report: CheckReport, verdict: Verdict | None = None) -> set[str]:
    """The disclosure rules that found something (what is left worth releasing aside)."""
    return {f.rule for f in report.findings
            if (verdict is None or f.verdict is verdict) and f.rule not in WORTH}


def cell_findings(report: CheckReport, i: int) -> list[tuple[str, Verdict]]:
    return [(f.rule, f.verdict) for f in report.findings if f.cell == i]


def mean_cell(n: int, value: float = 5.0, *, start: int = 0, distinct: int | None = 40,
              magnitudes: np.ndarray | None = None, row: str = "bmi",
              kind: CellKind = CellKind.MEAN) -> Cell:
    m = magnitudes if magnitudes is not None else np.linspace(20.0, 30.0, n)
    return Cell((row,), kind.value, kind, value, ids(n, start), magnitudes=m,
                distinct_values=distinct, values=m)


def summary(*cells: Cell) -> Result:
    return Result(AnalysisKind.SUMMARY, {}, list(cells))


# ---------------------------------------------------------------- crosstabs


@dataclass
class Table:
    """A crosstab built from a matrix of distinct-participant counts, with its layout."""

    result: Result
    inner: dict[tuple[int, int], int]  # (r, c) -> cell index
    row_total: dict[int, int] = field(default_factory=dict)  # r -> margin cell index
    col_total: dict[int, int] = field(default_factory=dict)
    grand: int | None = None
    percent: dict[tuple[int, int], int] = field(default_factory=dict)


def crosstab(counts: list[list[int]] | np.ndarray, *, margins: bool = True,
             percents: bool = False, rows_per_person: int = 1) -> Table:
    m = np.asarray(counts, dtype=np.int64)
    n_rows, n_cols = m.shape
    cells: list[Cell] = []
    members: dict[tuple[int, int], np.ndarray] = {}
    start = 0
    table = Table(Result(AnalysisKind.CROSSTAB, {"rows": "a", "columns": "b"}, cells), {})
    for r in range(n_rows):
        for c in range(n_cols):
            members[r, c] = ids(int(m[r, c]), start)
            start += int(m[r, c])
            table.inner[r, c] = len(cells)
            cells.append(Cell((f"a{r}",), f"b{c}", CellKind.COUNT,
                              float(m[r, c] * rows_per_person), members[r, c]))
    row_sets = {r: np.concatenate([members[r, c] for c in range(n_cols)]) for r in range(n_rows)}
    col_sets = {c: np.sort(np.concatenate([members[r, c] for r in range(n_rows)]))
                for c in range(n_cols)}
    everyone = ids(start)
    if margins:
        for r in range(n_rows):
            table.row_total[r] = len(cells)
            cells.append(Cell((f"a{r}",), "Total", CellKind.COUNT, float(row_sets[r].size),
                              row_sets[r], margin=True))
        for c in range(n_cols):
            table.col_total[c] = len(cells)
            cells.append(Cell(("Total",), f"b{c}", CellKind.COUNT, float(col_sets[c].size),
                              col_sets[c], margin=True))
        table.grand = len(cells)
        cells.append(Cell(("Total",), "Total", CellKind.COUNT, float(start), everyone,
                          margin=True))
    if percents:  # row percentages
        for r in range(n_rows):
            for c in range(n_cols):
                table.percent[r, c] = len(cells)
                den = row_sets[r]
                value = 100.0 * members[r, c].size / den.size if den.size else None
                cells.append(Cell((f"a{r}",), f"b{c}", CellKind.PERCENT, value, members[r, c],
                                  denominator=den, table="percent"))
            if margins:
                cells.append(Cell((f"a{r}",), "Total", CellKind.PERCENT, 100.0, row_sets[r],
                                  denominator=row_sets[r], table="percent", margin=True))
    return table


def lines(t: Table) -> list[list[tuple[int, int]]]:
    """The table's count relations as (cell, coefficient) lists: parts +1, their total -1."""
    n_rows = 1 + max(r for r, _ in t.inner)
    n_cols = 1 + max(c for _, c in t.inner)
    out = []
    for r in range(n_rows):
        line = [(t.inner[r, c], 1) for c in range(n_cols)]
        out.append(line + ([(t.row_total[r], -1)] if t.row_total else []))
    for c in range(n_cols):
        line = [(t.inner[r, c], 1) for r in range(n_rows)]
        out.append(line + ([(t.col_total[c], -1)] if t.col_total else []))
    if t.grand is not None:
        out.append([(t.col_total[c], 1) for c in range(n_cols)] + [(t.grand, -1)])
        out.append([(t.row_total[r], 1) for r in range(n_rows)] + [(t.grand, -1)])
    return out


def recoverable(relations: Iterable[list[tuple[int, int]]], hidden: set[int]) -> set[int]:
    """Hidden cells fixed by the relations: dropping one from the system lowers its rank."""
    unknowns = sorted(hidden)
    if not unknowns:
        return set()
    col = {i: k for k, i in enumerate(unknowns)}
    a = np.array([[dict(rel).get(i, 0) for i in unknowns] for rel in relations
                  if any(i in hidden for i, _ in rel)], dtype=float).reshape(-1, len(unknowns))
    if a.shape[0] == 0:
        return set()
    rank = np.linalg.matrix_rank(a)
    return {i for i in unknowns
            if np.linalg.matrix_rank(np.delete(a, col[i], axis=1)) < rank}


def assert_protected(t: Table, report: CheckReport) -> None:
    hidden = report.suppressed
    for rel in lines(t):
        inside = [i for i, _ in rel if i in hidden]
        assert len(inside) != 1, f"a lone hidden cell in a line: {inside}"
    assert recoverable(lines(t), hidden) == set()


def test_a_safe_crosstab_is_released_untouched() -> None:
    t = crosstab([[120, 45, 60], [80, 30, 95]], percents=True)
    report = check(t.result, RULES)
    assert report.verdict is Verdict.RELEASE
    assert report.findings == []
    assert report.suppressed == set()
    assert report.rules_version == RULES.version_id
    assert report.thresholds["threshold"]["min_participants"] == 10


def test_a_small_cell_is_hidden_with_a_rectangle_of_partners() -> None:
    t = crosstab([[50, 3, 40, 60], [70, 80, 90, 100], [20, 30, 25, 35]])
    report = check(t.result, RULES)
    assert report.verdict is Verdict.SUPPRESS
    small = t.inner[0, 1]
    assert ("threshold", Verdict.SUPPRESS) in cell_findings(report, small)
    # the smallest partners: 40 in its row, 30 in its column, and 25 closing the rectangle
    assert report.suppressed == {small, t.inner[0, 2], t.inner[2, 1], t.inner[2, 2]}
    assert rules_of(report) == {"threshold", "secondary_suppression"}
    assert_protected(t, report)
    shown = t.result.public(report.suppressed)["cells"]
    assert shown[small]["value"] is None and shown[small]["suppressed"]


def test_a_cell_bridging_two_hidden_blocks_is_protected_too() -> None:
    # every line has two or more hidden cells, yet (0,2) alone links two rectangles: the
    # line rule is satisfied, only the audit of the whole system finds it recoverable
    m = np.full((4, 4), 100)
    for r, c in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 2)]:
        m[r, c] = 5
    t = crosstab(m)
    primary = {t.inner[r, c] for r in range(4) for c in range(4) if m[r, c] == 5}
    assert recoverable(lines(t), primary) == {t.inner[0, 2]}  # the trap is real
    report = check(t.result, RULES)
    assert report.suppressed > primary
    assert_protected(t, report)


def test_secondary_suppression_without_margins_assumes_known_totals() -> None:
    t = crosstab([[50, 4, 60], [70, 80, 90]], margins=False)
    report = check(t.result, RULES)
    assert len(report.suppressed) == 4
    assert_protected(t, report)


def test_percentages_derived_from_a_hidden_count_are_hidden() -> None:
    t = crosstab([[50, 4, 60], [70, 80, 90]], percents=True)
    report = check(t.result, RULES)
    for (r, c), i in t.inner.items():
        assert (i in report.suppressed) == (t.percent[r, c] in report.suppressed)
    assert_protected(t, report)
    # the percent table's own rows (summing to 100%) have no lone hidden cell either
    for r in range(2):
        hidden = [c for c in range(3) if t.percent[r, c] in report.suppressed]
        assert len(hidden) != 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_hidden_cell_can_be_recovered_from_any_table(data: st.DataObject) -> None:
    n_rows = data.draw(st.integers(2, 5))
    n_cols = data.draw(st.integers(2, 6))
    small = st.integers(1, 9)
    large = st.integers(10, 300)
    m = [[data.draw(st.one_of(small, large, large)) for _ in range(n_cols)]
         for _ in range(n_rows)]
    t = crosstab(m, margins=data.draw(st.booleans()))
    report = check(t.result, RULES)
    primary = {i for (r, c), i in t.inner.items() if m[r][c] < 10}
    primary |= {i for r, i in t.row_total.items() if sum(m[r]) < 10}
    primary |= {i for c, i in t.col_total.items() if sum(row[c] for row in m) < 10}
    assert primary <= report.suppressed
    if report.verdict is not Verdict.BLOCK:
        assert_protected(t, report)
    else:  # only when nothing is left to hide, and then it says so
        assert "secondary_suppression" in rules_of(report, Verdict.BLOCK)


# ---------------------------------------------------------------- the traps


def test_rows_duplicated_to_inflate_a_count_fail() -> None:
    # 2 participants, 15 rows each: the count shows 30, the threshold counts people
    cell = Cell(("rare",), "count", CellKind.COUNT, 30.0, ids(2))
    result = Result(AnalysisKind.AGGREGATE_SQL, {}, [cell, Cell(("common",), "count",
                                                     CellKind.COUNT, 40.0, ids(40, 2))])
    report = check(result, RULES)
    assert ("threshold", Verdict.SUPPRESS) in cell_findings(report, 0)
    assert 0 in report.suppressed
    # alone with its neighbour in a column whose total is known: the neighbour goes too
    assert report.suppressed == {0, 1}


def test_duplicated_rows_in_a_crosstab_fail_though_every_count_looks_large() -> None:
    t = crosstab([[2, 50], [60, 70]], rows_per_person=15)  # the small cell shows 30
    report = check(t.result, RULES)
    assert t.inner[0, 0] in report.suppressed
    assert_protected(t, report)


def test_a_mean_over_identical_values_is_blocked() -> None:
    report = check(summary(mean_cell(50, 7.0, distinct=1, magnitudes=np.full(50, 7.0))), RULES)
    assert report.verdict is Verdict.BLOCK
    assert ("identical_values", Verdict.BLOCK) in cell_findings(report, 0)


def test_an_sd_of_zero_and_a_sum_of_identical_values_are_blocked() -> None:
    sd = Cell(("x",), "sd", CellKind.SD, 0.0, ids(30), distinct_values=1, values=np.full(30, 3.0))
    total = mean_cell(30, 90.0, distinct=1, magnitudes=np.full(30, 3.0), kind=CellKind.SUM)
    report = check(summary(sd, total), RULES)
    assert {f.cell for f in report.findings if f.rule == "identical_values"} == {0, 1}


def test_a_winsorised_figure_over_fewer_than_2k_is_suppressed_not_blocked() -> None:
    """Winsorised below 2k participants, a mean is their median (its clipped values all one):
    a small group's cell, hidden with the threshold's verdict; an honest grouped mean with a
    few small groups is released with those cells hidden, not blocked as identical values."""
    k = RULES.threshold
    few = mean_cell(2 * k - 1, 7.0, distinct=1, magnitudes=np.full(2 * k - 1, 7.0))
    few.winsorised = True
    enough = mean_cell(2 * k, 7.0, start=100, distinct=1, magnitudes=np.full(2 * k, 7.0))
    enough.winsorised = True  # bounds held by 2 or more: the identical-values rule as ever
    rows = Cell(("n",), "n", CellKind.COUNT, 3.0 * (2 * k - 1), ids(2 * k - 1, start=300),
                magnitudes=np.full(2 * k - 1, 3.0), values=np.full(2 * k - 1, 3.0),
                winsorised=True)
    report = check(summary(few, rows), RULES)
    assert report.verdict is Verdict.SUPPRESS
    assert report.suppressed == {0, 1}
    assert cell_findings(report, 0) == [("threshold", Verdict.SUPPRESS)]
    assert ("identical_values", Verdict.BLOCK) in cell_findings(check(summary(enough), RULES), 0)


def test_a_mean_without_its_distinct_values_is_refused() -> None:
    report = check(summary(mean_cell(50, distinct=None)), RULES)
    assert report.verdict is Verdict.BLOCK
    assert rules_of(report) == {"unknown"}


@pytest.mark.parametrize("kind", [CellKind.MIN, CellKind.MAX])
def test_max_and_min_are_blocked_unless_shared_by_enough_people(kind: CellKind) -> None:
    lone = Cell(("age",), kind.value, kind, 79.0, ids(400), holders=1)
    unknown = Cell(("age",), kind.value, kind, 79.0, ids(400))
    shared = Cell(("score",), kind.value, kind, 0.0, ids(400), holders=37)
    report = check(summary(lone, unknown, shared), RULES)
    assert report.verdict is Verdict.BLOCK
    assert cell_findings(report, 0) == [("extremes", Verdict.BLOCK)]
    assert cell_findings(report, 1) == [("extremes", Verdict.BLOCK)]
    assert cell_findings(report, 2) == []  # the floor of a score that 37 people share


def test_the_mode_of_two_people_is_blocked() -> None:
    of_two = Cell(("x",), "mode", CellKind.MODE, 3.0, ids(2), holders=1, distinct_values=2)
    held_by_two = Cell(("y",), "mode", CellKind.MODE, 3.0, ids(2), holders=2, distinct_values=90)
    held_by_many = Cell(("z",), "mode", CellKind.MODE, 2.0, ids(40), holders=40,
                        distinct_values=5)
    everyone_same = Cell(("w",), "mode", CellKind.MODE, 1.0, ids(40), holders=40,
                         distinct_values=1)
    report = check(summary(of_two, held_by_two, held_by_many, everyone_same), RULES)
    assert ("extremes", Verdict.BLOCK) in cell_findings(report, 0)
    assert ("extremes", Verdict.BLOCK) in cell_findings(report, 1)
    assert cell_findings(report, 2) == []
    assert cell_findings(report, 3) == [("identical_values", Verdict.BLOCK)]


def ols_result(levels: dict[str, np.ndarray], residual_df: float = 400.0) -> Result:
    cells = [Cell((term,), col, CellKind.COEFFICIENT, 0.5, ids(410))
             for term in ("const", "age", "smoking=Current") for col in ("coef", "se")]
    cells.append(Cell(("model",), "r_squared", CellKind.STATISTIC, 0.2, ids(410),
                      table="model"))
    return Result(AnalysisKind.OLS, {}, cells, facts={"residual_df": residual_df,
                                                      "n_obs": 410.0},
                  levels=levels, influence=0.01)


def test_a_regression_dummy_held_by_one_participant_is_blocked() -> None:
    fine = {"level:smoking=Never": ids(300), "level:smoking=Current": ids(110, 300)}
    assert check(ols_result(fine), RULES).verdict is Verdict.RELEASE
    lone = {"level:smoking=Never": ids(409), "level:smoking=Current": ids(1, 409)}
    report = check(ols_result(lone), RULES)
    assert report.verdict is Verdict.BLOCK
    [finding] = report.findings
    assert finding.rule == "regression"
    assert "smoking=Current" in finding.reason and "level:" not in finding.reason


def test_a_regression_with_few_residual_df_or_none_known_is_blocked() -> None:
    levels = {"level:smoking=Never": ids(300), "level:smoking=Current": ids(110, 300)}
    assert rules_of(check(ols_result(levels, residual_df=4), RULES)) == {"regression"}
    no_df = ols_result(levels)
    del no_df.facts["residual_df"]
    report = check(no_df, RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}


def test_a_coefficient_over_few_participants_is_blocked_not_suppressed() -> None:
    result = ols_result({})
    result.cells[4] = Cell(("smoking=Current",), "coef", CellKind.COEFFICIENT, 1.2, ids(4))
    report = check(result, RULES)
    assert report.verdict is Verdict.BLOCK
    assert report.suppressed == set()


def test_percentage_tables_are_not_falsely_failed() -> None:
    # a 5% share of 1,000 people is 50 people, not a count of 5
    share = Cell(("smokers",), "percent", CellKind.PERCENT, 5.0, ids(50), denominator=ids(1000))
    total = Cell(("all",), "percent", CellKind.PERCENT, 100.0, ids(1000), denominator=ids(1000),
                 margin=True)
    report = check(Result(AnalysisKind.FREQUENCY, {}, [share, total]), RULES)
    assert report.verdict is Verdict.RELEASE, report.findings
    t = crosstab([[950, 50], [400, 600]], percents=True)
    assert check(t.result, RULES).verdict is Verdict.RELEASE


def test_percentages_with_a_small_side_fail() -> None:
    few = Cell(("a",), "percent", CellKind.PERCENT, 5.0, ids(5), denominator=ids(100))
    small_base = Cell(("b",), "percent", CellKind.PERCENT, 50.0, ids(4), denominator=ids(8))
    # 97% of 100: the 3 who are not in the numerator are a count of 3
    complement = Cell(("c",), "percent", CellKind.PERCENT, 97.0, ids(97),
                      denominator=ids(100))
    report = check(Result(AnalysisKind.FREQUENCY, {}, [few, small_base, complement]), RULES)
    assert {0, 1, 2} <= report.suppressed
    assert {0, 1} <= report.removed  # labels held by fewer than 10: left out, labels and all
    assert all(f.rule in {"threshold", "secondary_suppression", "labels", *WORTH}
               for f in report.findings)
    no_denominator = Cell(("d",), "percent", CellKind.PERCENT, 50.0, ids(40))
    report = check(Result(AnalysisKind.FREQUENCY, {}, [no_denominator]), RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}


def km_result(events: list[int], censored: list[int], *, with_at_risk: bool = True) -> Result:
    cells: list[Cell] = []
    at_risk = sum(events) + sum(censored)
    start = 0
    for k, (e, c) in enumerate(zip(events, censored, strict=True)):
        row = ("All", f"({k}, {k + 1}] years")
        risk = ids(at_risk - start, start)
        if with_at_risk:
            cells.append(Cell(row, "at_risk", CellKind.AT_RISK, float(risk.size), risk))
        cells.append(Cell(row, "events", CellKind.EVENTS, float(e), ids(e, start)))
        cells.append(Cell(row, "censored", CellKind.CENSORED, float(c), ids(c, start + e)))
        cells.append(Cell(row, "survival", CellKind.SURVIVAL, 0.9, risk))
        start += e + c
    return Result(AnalysisKind.KAPLAN_MEIER, {}, cells,
                  facts={"n_obs": float(at_risk), "events": float(sum(events))})


def test_kaplan_meier_tables_are_not_falsely_failed() -> None:
    # censorings only at the end of follow-up (the everyday case): the intervals without any
    # have their (zero) count hidden, as a few would be, and the table is released
    report = check(km_result([40, 30, 25, 12], [0, 0, 0, 60]), RULES)
    assert report.verdict is Verdict.SUPPRESS, report.findings
    assert rules_of(report) == {"kaplan_meier"}
    assert report.suppressed == {2, 6, 10}  # the censored cells of the first three intervals
    report = check(km_result([40, 30, 25, 12], [20, 30, 15, 60]), RULES)
    assert report.verdict is Verdict.RELEASE, report.findings


def test_a_kaplan_meier_zero_is_held_like_a_few() -> None:
    """A definition can place one person alone in an interval, or make them the only one
    without the event: none with an event while people are at risk, none without one, and
    none censored are each acted on as one would be."""
    for events in ([40, 0, 25], [40, 1, 25]):
        assert check(km_result(events, [20, 30, 60]), RULES).verdict is Verdict.BLOCK
    for last in (0, 1):  # everyone at risk in the last interval has the event, or all but one
        assert check(km_result([40, 30, 25], [20, 30, last]), RULES).verdict is Verdict.BLOCK
    none, one = (check(km_result([40, 30, 25], [20, c, 60]), RULES) for c in (0, 1))
    assert none.verdict is one.verdict is Verdict.SUPPRESS
    assert none.suppressed == one.suppressed == {6}
    for facts in ({"events": 0.0}, {"censored": 0.0}, {"censored": 1.0}):
        result = km_result([40, 30, 25], [20, 30, 60])
        result.facts.update(facts)
        assert "threshold" in rules_of(check(result, RULES)), facts


def test_a_kaplan_meier_step_of_few_events_is_blocked() -> None:
    report = check(km_result([40, 3, 25], [20, 30, 60]), RULES)
    assert report.verdict is Verdict.BLOCK
    assert rules_of(report) == {"kaplan_meier"}
    assert report.suppressed == set()
    report = check(km_result([40, 30, 25], [20, 2, 60]), RULES)
    assert rules_of(report) == {"kaplan_meier"}


def test_a_survival_step_without_its_counts_is_refused() -> None:
    report = check(km_result([40, 30], [20, 30], with_at_risk=False), RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}


def test_an_unknown_analysis_is_blocked() -> None:
    result = Result(AnalysisKind.CROSSTAB, {}, [Cell(("a",), "n", CellKind.COUNT, 50.0, ids(50))])
    result.kind = "dp_count"  # type: ignore[assignment]  # not an AnalysisKind
    report = check(result, RULES)
    assert report.verdict is Verdict.BLOCK
    assert [f.rule for f in report.findings] == ["unknown"]
    narrowed = tighten(RULES, {"analyses": {}})
    assert check(Result(AnalysisKind.CROSSTAB, {}, []), narrowed).verdict is Verdict.RELEASE


def test_an_unknown_aggregation_or_cell_kind_is_blocked() -> None:
    variance = Cell(("bmi",), "variance", CellKind.SD, 4.0, ids(50), distinct_values=40)
    variance.kind = "variance"  # type: ignore[assignment]  # an aggregation the check lacks
    report = check(summary(variance), RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}
    # a known kind in an analysis that should not produce it
    hazard = Cell(("x",), "hr", CellKind.HAZARD_RATIO, 1.4, ids(500))
    report = check(Result(AnalysisKind.CROSSTAB, {}, [hazard]), RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}
    # a kind the project removed from what it accepts
    narrowed = tighten(RULES, {"analyses": {"summary": ["count", "mean", "sd"]}})
    q = Cell(("bmi",), "median", CellKind.MEDIAN, 26.0, ids(50), below=24, above=25,
             values=np.linspace(20.0, 32.0, 50))
    assert check(summary(q), narrowed).verdict is Verdict.BLOCK
    assert check(summary(q), RULES).verdict is Verdict.RELEASE


def test_an_unknown_fact_is_blocked_and_small_fact_counts_too() -> None:
    result = ols_result({})
    result.facts["secret_sauce"] = 1.0
    assert rules_of(check(result, RULES)) == {"unknown"}
    cox = Result(AnalysisKind.COX, {}, [Cell(("age",), "hr", CellKind.HAZARD_RATIO, 1.1,
                                             ids(300))],
                 facts={"residual_df": 299.0, "n_obs": 300.0, "events": 4.0})
    report = check(cox, RULES)
    assert report.verdict is Verdict.BLOCK
    assert any("'events'" in f.reason for f in report.findings)


def test_contributors_that_are_not_a_set_are_refused() -> None:
    rows_not_people = Cell(("a",), "n", CellKind.COUNT, 40.0, np.repeat(ids(4), 10))
    report = check(Result(AnalysisKind.FREQUENCY, {}, [rows_not_people]), RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}


def test_a_count_shown_without_participants_behind_it_is_refused() -> None:
    ghost = Cell(("a",), "events", CellKind.EVENTS, 12.0, ids(0))
    report = check(Result(AnalysisKind.KAPLAN_MEIER, {}, [ghost]), RULES)
    assert report.verdict is Verdict.BLOCK and rules_of(report) == {"unknown"}


def test_one_participant_holding_most_of_a_sum_fails_dominance() -> None:
    m = np.r_[950.0, np.full(49, 50.0 / 49)]  # one holds 95% of the total
    report = check(summary(mean_cell(50, 20.0, magnitudes=m, kind=CellKind.SUM)), RULES)
    assert {"dominance_p", "dominance_nk"} <= rules_of(report, Verdict.SUPPRESS)
    assert report.suppressed == {0}
    spread = check(summary(mean_cell(50, 25.0)), RULES)
    assert spread.verdict is Verdict.RELEASE


SPREAD = np.linspace(0.5, 1.5, 18)  # the rest's own values differ (mean 1)


def test_the_p_rule_and_the_nk_rule_catch_different_cells() -> None:
    # two big contributors, 40% each, the rest 20%: (2,85) passes, p% passes
    two = np.r_[40.0, 40.0, SPREAD * 20.0 / 18]
    assert check(summary(mean_cell(20, magnitudes=two)), RULES).verdict is Verdict.RELEASE
    # 50% + 40%: the top two hold 90% > 85%, but the rest (10%) is over 10% of the largest
    nk_only = np.r_[50.0, 40.0, SPREAD * 10.0 / 18]
    assert rules_of(check(summary(mean_cell(20, magnitudes=nk_only)), RULES)) == {"dominance_nk"}
    # 70% + 26%: the rest (4%) is under 10% of the largest → the p% rule; top two 96% → nk too
    both = np.r_[70.0, 26.0, SPREAD * 4.0 / 18]
    assert rules_of(check(summary(mean_cell(20, magnitudes=both)), RULES)) == {
        "dominance_p", "dominance_nk"}


def test_a_hidden_mean_hides_its_rows_sum_and_sd_but_not_other_variables() -> None:
    m = np.r_[950.0, np.full(49, 50.0 / 49)]
    cells = [Cell(("income",), "n", CellKind.COUNT, 50.0, ids(50)),
             mean_cell(50, 20.0, magnitudes=m, row="income"),
             Cell(("income",), "sd", CellKind.SD, 130.0, ids(50), distinct_values=2),
             Cell(("age",), "n", CellKind.COUNT, 50.0, ids(50)),
             mean_cell(50, 55.0, row="age"),
             Cell(("age",), "sd", CellKind.SD, 8.0, ids(50), distinct_values=30)]
    report = check(summary(*cells), RULES)
    assert report.suppressed == {1, 2}  # a summary's rows are variables: no totals to protect
    assert rules_of(report, Verdict.SUPPRESS) >= {"dominance_p", "secondary_suppression"}


def test_a_mean_over_few_non_zero_contributors_or_a_rare_flag_fails() -> None:
    three_drinkers = np.r_[np.full(3, 10.0), np.zeros(197)]
    report = check(summary(mean_cell(200, 0.15, magnitudes=three_drinkers, distinct=2)), RULES)
    assert rules_of(report) == {"threshold"}
    # the mean of a 0/1 flag that 197 of 200 have: the 3 without are a count of 3
    flag = np.r_[np.ones(197), np.zeros(3)]
    report = check(summary(mean_cell(200, 0.985, magnitudes=flag, distinct=2)), RULES)
    assert rules_of(report) == {"threshold"}
    balanced = np.r_[np.ones(120), np.zeros(80)]
    assert check(summary(mean_cell(200, 0.6, magnitudes=balanced, distinct=2)),
                 RULES).verdict is Verdict.RELEASE


def test_a_zero_or_a_share_of_everyone_is_held_like_a_few() -> None:
    """A zero shown where a one is hidden would answer whether one person has the attribute:
    a zero, a 0% and a 100% fail the threshold as a few would (a margin's 100% does not)."""
    zero = crosstab([[120, 0, 60], [80, 30, 95]], percents=True)
    one = crosstab([[120, 1, 60], [80, 30, 95]], percents=True)
    reports = [check(t.result, RULES) for t in (zero, one)]
    assert {r.verdict for r in reports} == {Verdict.SUPPRESS}
    held = [{(f.rule, f.cell) for f in r.findings if f.rule == "threshold"} for r in reports]
    assert held[0] == held[1] == {("threshold", zero.inner[0, 1]),
                                  ("threshold", zero.percent[0, 1])}
    assert zero.inner[0, 1] in reports[0].suppressed
    everyone = Cell(("a",), "percent", CellKind.PERCENT, 100.0, ids(40), denominator=ids(40))
    report = check(Result(AnalysisKind.FREQUENCY, {}, [everyone]), RULES)
    assert rules_of(report) == {"threshold"}
    total = Cell(("a",), "percent", CellKind.PERCENT, 100.0, ids(40), denominator=ids(40),
                 margin=True)
    assert check(Result(AnalysisKind.FREQUENCY, {}, [total]), RULES).verdict is Verdict.RELEASE


def test_quantiles_with_too_few_on_one_side_fail() -> None:
    x = np.linspace(17.0, 46.0, 200)
    low = Cell(("bmi",), "p5", CellKind.QUANTILE, 18.0, ids(200), below=3, above=190, values=x)
    high = Cell(("bmi",), "p99", CellKind.QUANTILE, 45.0, ids(200), below=195, above=2,
                values=x)
    fine = Cell(("bmi",), "median", CellKind.MEDIAN, 26.0, ids(200), below=99, above=100,
                values=x)
    unknown = Cell(("bmi",), "p50", CellKind.QUANTILE, 26.0, ids(200), values=x)
    report = check(summary(low, high, fine, unknown), RULES)
    assert cell_findings(report, 0) == [("quantiles", Verdict.SUPPRESS)]
    assert cell_findings(report, 1) == [("quantiles", Verdict.SUPPRESS)]
    assert cell_findings(report, 2) == []
    assert cell_findings(report, 3) == [("unknown", Verdict.BLOCK)]
    # a median survival time cannot be hidden from a life table: blocked
    km = km_result([40, 30], [20, 30])
    km.cells.append(Cell(("All",), "median", CellKind.MEDIAN, 1.5, ids(120), below=4, above=80))
    assert ("quantiles", Verdict.BLOCK) in cell_findings(check(km, RULES), len(km.cells) - 1)


def test_rounding_claims_are_verified() -> None:
    def count(value: float, exact: float | None, base: int = 5) -> Cell:
        return Cell(("a",), "n", CellKind.COUNT, value, ids(40), rounded_to=base, exact=exact)

    true_claim = count(40.0, 38.0)
    assert check(Result(AnalysisKind.FREQUENCY, {}, [true_claim]), RULES).verdict is \
        Verdict.RELEASE
    for false in (count(40.0, 47.0), count(42.0, 41.0), count(40.0, None), count(40.0, 40, 0)):
        report = check(Result(AnalysisKind.FREQUENCY, {}, [false]), RULES)
        assert report.verdict is Verdict.BLOCK
        assert rules_of(report) == {"rounding"}


def test_reasons_never_show_the_values_or_exact_small_counts() -> None:
    cell = Cell(("rare",), "count", CellKind.COUNT, 37.0, ids(3), rounded_to=None)
    mean = mean_cell(7, 123.456, distinct=1, magnitudes=np.full(7, 123.456))
    report = check(Result(AnalysisKind.AGGREGATE_SQL, {}, [cell, mean]), RULES)
    assert report.findings
    for f in report.findings:
        assert "37" not in f.reason and "123" not in f.reason
        assert " 3 " not in f.reason and " 7 " not in f.reason
        # rows of fewer than 10 are left out, labels and all: no reason names them either
        assert '"rare"' not in f.reason and '"bmi"' not in f.reason
    assert report.removed == {0, 1}


def test_a_tightened_threshold_applies() -> None:
    t = crosstab([[120, 15, 60], [80, 30, 95]])
    assert check(t.result, RULES).verdict is Verdict.RELEASE
    strict = tighten(RULES, {"threshold": {"min_participants": 20}})
    report = check(t.result, strict)
    assert t.inner[0, 1] in report.suppressed
    assert report.rules_version == strict.version_id
    assert report.thresholds["threshold"]["min_participants"] == 20
    blocking = tighten(RULES, {"threshold": {"verdict": "block"}})
    assert check(crosstab([[120, 5], [80, 30]]).result, blocking).verdict is Verdict.BLOCK


def test_the_report_is_json_ready() -> None:
    import json

    report = check(crosstab([[50, 3], [70, 80]]).result, RULES)
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["verdict"] == "release_with_suppression"
    assert doc["rules_version"] == RULES.version_id
    assert all(f["reason"] for f in doc["findings"])


# ---------------------------------------------------------------- real analyses

run = partial(pytest.importorskip("strongroom.enclave.analyses.run").run,
              rounding=Rounding(b"a key for these figures only"))


def people(n: int, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "pid": np.arange(1000, 1000 + n, dtype=np.int64),
        "sex": rng.integers(0, 2, n),
        "band": rng.integers(0, 4, n),
        "bmi": np.round(rng.normal(27, 4, n), 1),
        "age": rng.integers(40, 70, n),
    })


def test_real_crosstab_with_percentages_is_released() -> None:
    result = run({"kind": "crosstab", "rows": "sex", "columns": "band", "percentages": "row"},
                 people(2000))
    report = check(result, RULES)
    assert report.verdict is Verdict.RELEASE, report.findings


def test_real_frequency_of_duplicated_rows_fails() -> None:
    frame = people(300)
    frame = frame.with_columns(pl.lit("common").alias("group"))
    rare = pl.DataFrame({"pid": np.repeat(np.array([1, 2], dtype=np.int64), 15),
                         "group": ["rare"] * 30})
    frame = pl.concat([frame.select("pid", "group"), rare])
    result = run({"kind": "frequency", "variable": "group"}, frame)
    i = next(i for i, c in enumerate(result.cells)
             if c.row == ("rare",) and c.kind is CellKind.COUNT)
    assert result.cells[i].value == 2.0  # participants, not their 30 rows
    report = check(result, RULES)
    assert ("threshold", Verdict.SUPPRESS) in cell_findings(report, i)
    assert i in report.suppressed
    # its percentage is hidden with it, and so is the other count, which the total gives away
    shown = {(c.row, c.kind) for k, c in enumerate(result.cells) if k not in report.suppressed}
    assert (("rare",), CellKind.PERCENT) not in shown
    assert (("common",), CellKind.COUNT) not in shown


def test_real_summary_traps() -> None:
    frame = people(200).with_columns(pl.lit(7.0).alias("same"))
    result = run({"kind": "summary", "variables": ["bmi", "same"],
                  "statistics": ["n", "mean", "sd", "median", "max"]}, frame)
    report = check(result, RULES)
    assert report.verdict is Verdict.BLOCK
    by_cell = {(result.cells[f.cell].row[0], result.cells[f.cell].column): f.rule
               for f in report.findings if f.cell is not None}
    assert by_cell[("same", "mean")] == "identical_values"
    assert by_cell[("bmi", "max")] == "extremes"
    assert ("bmi", "mean") not in by_cell


def test_real_mode_of_two_people_is_blocked() -> None:
    frame = pl.DataFrame({"pid": np.arange(40, dtype=np.int64),
                          "x": np.r_[5.0, 5.0, np.arange(38) + 10.0]})
    result = run({"kind": "summary", "variables": ["x"], "statistics": ["mode"]}, frame)
    report = check(result, RULES)
    assert report.verdict is Verdict.BLOCK
    assert "extremes" in rules_of(report)


def test_real_regression_with_a_lone_dummy_is_blocked() -> None:
    frame = people(300).with_columns(
        pl.when(pl.col("pid") == 1000).then(pl.lit("rare")).otherwise(
            pl.when(pl.col("sex") == 0).then(pl.lit("a")).otherwise(pl.lit("b"))).alias("grp"))
    safe = run({"kind": "ols", "outcome": "bmi", "covariates": ["age", "sex"],
                "categorical": ["sex"]}, frame)
    assert check(safe, RULES).verdict is Verdict.RELEASE
    lone = run({"kind": "ols", "outcome": "bmi", "covariates": ["age", "grp"],
                "categorical": ["grp"]}, frame)
    report = check(lone, RULES)
    assert report.verdict is Verdict.BLOCK
    assert any(f.rule == "regression" and "grp=rare" in f.reason for f in report.findings)


def test_real_kaplan_meier_is_not_falsely_failed() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    frame = pl.DataFrame({"pid": np.arange(n, dtype=np.int64),
                          "years": rng.uniform(0.01, 3.0, n),
                          "died": rng.integers(0, 2, n)})
    result = run({"kind": "kaplan_meier", "time": "years", "event": "died", "unit": "years"},
                 frame)
    report = check(result, RULES)
    assert report.verdict is Verdict.RELEASE, report.findings


def test_a_table_too_large_to_prove_safe_is_blocked_not_solved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: a system of totals too large to solve blocks the output (no crash)."""
    from strongroom.outputs import suppression
    monkeypatch.setattr(suppression, "MAX_SYSTEM", 4)  # as if the table were enormous
    table = crosstab([[3, 40, 50], [45, 2, 60], [55, 48, 4]])
    report = check(table.result, load_rules())
    assert report.verdict is Verdict.BLOCK
    assert any("too many cells to prove" in f.reason for f in report.findings)


# -- what is left, worth releasing or not ------------------------------------------------------

def _counts(*sizes: int) -> Result:
    cells, start = [], 0
    for i, n in enumerate(sizes):
        cells.append(Cell((f"g{i}",), "count", CellKind.COUNT, float(n),
                          np.arange(start, start + n, dtype=np.int64)))
        start += n
    return Result(AnalysisKind.FREQUENCY, {}, cells)


def test_a_table_left_with_nothing_says_so_and_a_mostly_hidden_one_too() -> None:
    """All hidden, or only counts of no one kept: nothing to release (the release is refused
    on it: outputs/requests.py). More than half hidden: said, with what to ask instead. The
    verdict stays the disclosure rules' own; a table mostly kept says nothing more."""
    empty = check(_counts(3, 4, 2), RULES)
    assert empty.verdict is Verdict.SUPPRESS and empty.suppressed == {0, 1, 2}
    assert [f.rule for f in empty.findings if f.rule in WORTH] == [NOTHING_LEFT]
    zeros = check(_counts(3, 0, 0), RULES)
    assert [f.rule for f in zeros.findings if f.rule in WORTH] == [NOTHING_LEFT]
    mostly = check(_counts(3, 4, 2, 50, 60), RULES)
    found = [f for f in mostly.findings if f.rule in WORTH]
    assert [f.rule for f in found] == [MOSTLY], mostly.findings
    assert "of its 5 figures would be hidden" in found[0].reason
    assert "coarser" in found[0].reason
    kept = check(_counts(3, 50, 60, 70), RULES)
    assert not [f for f in kept.findings if f.rule in WORTH]
    assert not [f for f in check(_counts(50, 60), RULES).findings if f.rule in WORTH]
