"""Safe labels and release precision, on hand-built results.

Guarantees under test:
- every label that leaves is held by at least the threshold of participants in the output;
  cells whose labels are not are left out, labels and all, and no reason names them;
- a sum, mean, SD or quantile is rounded to a step at least as large as one participant could
  move it, so two releases that differ in one person's value cannot give the value back.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.enclave.steps import Rounding, round_to_step
from strongroom.errors import Invalid
from strongroom.outputs import precision, requests
from strongroom.outputs.check import check
from strongroom.outputs.render import MEDIA_TYPE, Format, render
from strongroom.outputs.rules import load_rules
from strongroom.outputs.service import _fits

KEYED = Rounding(b"a key for these figures only")

RULES = load_rules()


def ids(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int64)


def count(row: tuple[str, ...], n: int, start: int = 0, column: str = "n",
          margin: bool = False) -> Cell:
    return Cell(row, column, CellKind.COUNT, float(n), ids(n, start), margin=margin)


def test_aggregate_rows_with_small_label_support_leave_nothing_of_their_labels() -> None:
    cells = [count(("27.3817", "143"), 1), count(("31.0422", "128"), 2, 1),
             count(("obese", "high"), 40, 10)]
    result = Result(AnalysisKind.AGGREGATE_SQL, {}, cells)
    report = check(result, RULES)
    assert report.removed == {0, 1}
    payload = render(result, report.suppressed, Format.CSV, report.removed).decode()
    assert "27.3817" not in payload and "31.0422" not in payload and "obese" in payload
    assert not any("27.3817" in f.reason or "31.0422" in f.reason for f in report.findings)


def test_a_row_is_judged_by_all_its_cells_participants() -> None:
    # count(bmi) is small but count(*) is not: the label is held by the row's 12 people
    cells = [count(("a",), 12), Cell(("a",), "with_bmi", CellKind.COUNT, 3.0, ids(3))]
    report = check(Result(AnalysisKind.AGGREGATE_SQL, {}, cells), RULES)
    assert report.removed == set() and 1 in report.suppressed


def test_a_crosstab_category_held_by_few_is_left_out_with_its_margins() -> None:
    # row "rare" is held by 3 people in all; its row total would name it
    cells = [count(("common",), 50, 0, "x"), count(("common",), 60, 50, "y"),
             count(("rare",), 2, 110, "x"), count(("rare",), 1, 112, "y"),
             count(("common",), 110, 0, "Total", margin=True),
             count(("rare",), 3, 110, "Total", margin=True),
             count(("Total",), 52, 0, "x", margin=True), count(("Total",), 61, 50, "y",
                                                               margin=True)]
    result = Result(AnalysisKind.CROSSTAB, {}, cells)
    report = check(result, RULES)
    assert report.removed == {2, 3, 5}
    body = json.loads(render(result, report.suppressed, Format.JSON, report.removed))
    assert all("rare" not in c["row"] for c in body["cells"])
    # the column totals less the shown cells would give the rare row's cells: secondary
    # suppression hides more (the common row, or the totals)
    assert ({0, 1} <= report.suppressed) or ({6, 7} <= report.suppressed)


def test_a_small_column_category_is_left_out() -> None:
    cells = [count(("a",), 50, 0, "x"), count(("a",), 2, 50, "rare-col"),
             count(("b",), 40, 60, "x"), count(("b",), 0, 0, "rare-col")]
    report = check(Result(AnalysisKind.CROSSTAB, {}, cells), RULES)
    assert {1, 3} <= report.removed


def test_labels_of_summaries_and_models_are_not_data_and_stay() -> None:
    mean = Cell(("bmi",), "mean", CellKind.MEAN, 27.0, ids(50),
                magnitudes=np.linspace(20, 30, 50), distinct_values=50,
                values=np.linspace(20, 30, 50))
    assert check(Result(AnalysisKind.SUMMARY, {}, [mean]), RULES).removed == set()


def test_a_statistic_without_its_participants_values_is_refused() -> None:
    mean = Cell(("bmi",), "mean", CellKind.MEAN, 27.0, ids(50),
                magnitudes=np.linspace(20, 30, 50), distinct_values=50)
    report = check(Result(AnalysisKind.SUMMARY, {}, [mean]), RULES)
    assert {f.rule for f in report.findings} == {"unknown"}


# ---------------------------------------------------------------- precision


def test_nice_steps() -> None:
    assert precision.nice_step(0.0035) == 0.005
    assert precision.nice_step(0.002) == 0.002
    assert precision.nice_step(37.0) == 50.0
    assert precision.nice_step(0.0) == 0.0
    assert round_to_step(27.38417, 0.005) == 27.385
    assert round_to_step(273841.5, 50.0) == 273850.0
    assert KEYED(27.38417, 0.005) in (27.38, 27.385)


def _mean(x: np.ndarray) -> Cell:
    return Cell(("all",), "mean", CellKind.MEAN, float(x.mean()), ids(x.size),
                magnitudes=np.abs(x), values=x, distinct_values=int(np.unique(x).size))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=10, max_value=3000), st.integers(min_value=0, max_value=2**31),
       st.floats(min_value=-1000, max_value=1000))
def test_a_mean_moves_at_most_one_step_when_one_value_changes(
        n: int, seed: int, new: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(27, 5, n).round(4)
    y = x.copy()
    y[0] = np.clip(new, x.min(), x.max())  # any value in the range the others span
    a, b = _mean(x), _mean(y)
    step = max(precision.step_for(a, 10), precision.step_for(b, 10))
    pa, pb = KEYED(float(x.mean()), step), KEYED(float(y.mean()), step)
    # each is within a step of its mean, so the difference is at most two steps: it says
    # less than the range the value lies in
    assert abs(pa - float(x.mean())) <= step * (1 + 1e-9)
    assert abs(pa - pb) <= 2 * step * (1 + 1e-9)
    assert step * n >= (x.max() - x.min()) * (1 - 1e-9)


@pytest.mark.parametrize("kind", [CellKind.SUM, CellKind.MEAN, CellKind.SD, CellKind.MEDIAN])
def test_differencing_one_changed_value_gives_at_most_a_range(kind: CellKind) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(27, 5, 5000).round(4)
    y = x.copy()
    y[123] = 0.0  # the target's value taken out by a CASE
    shown = []
    for values in (x, y):
        value = {CellKind.SUM: values.sum(), CellKind.MEAN: values.mean(),
                 CellKind.SD: values.std(ddof=1), CellKind.MEDIAN: np.median(values)}[kind]
        cell = Cell(("all",), kind.value, kind, float(value), ids(values.size), values=values)
        result = Result(AnalysisKind.SUMMARY, {}, [cell])
        precision.apply(result, 10, KEYED)
        shown.append(result.cells[0].value)
    if kind is CellKind.SUM:
        # the estimate of the target's value is off by up to a whole step (the range)
        step = precision.step_for(Cell(("all",), "sum", kind, float(x.sum()), ids(x.size),
                                       values=x), 10)
        assert step >= np.abs(x).max()
        assert shown[0] - shown[1] != pytest.approx(x[123], abs=1e-4) or step >= 1
    else:
        assert shown[0] is not None and shown[1] is not None
        estimate = (shown[0] - shown[1]) * x.size if kind is CellKind.MEAN else None
        if estimate is not None:
            assert estimate != pytest.approx(x[123], abs=1e-3)


def test_a_quantile_is_rounded_to_an_interval_holding_the_threshold() -> None:
    x = np.array([10.0] * 20 + [27.3817] + [40.0] * 20)
    cell = Cell(("all",), "median", CellKind.MEDIAN, 27.3817, ids(x.size), values=x,
                below=20, above=20)
    result = Result(AnalysisKind.SUMMARY, {}, [cell])
    precision.apply(result, 10, KEYED)
    assert result.cells[0].value != 27.3817
    assert precision.NOTE in result.notes


@pytest.mark.parametrize("side", [-0.3, 0.3])
def test_a_quantile_at_a_gap_is_rounded_past_what_one_crossing_moves(side: float) -> None:
    """Others set in two dense clusters either side of a cut, the quantile where they meet:
    the side of the cut the target is on moved it across the gap, while the k values nearest
    it (all on one side) made a step finer than the gap. The step must be at least k times
    the gap, so the side moves the rounded value by at most a tenth of a step at k = 10."""
    from strongroom.enclave.analyses.summary import sorted_quantile
    jitter = np.arange(1500) % 97 / 200.0
    x = np.sort(np.concatenate([30 - 0.01 - jitter, 30 + 0.01 + jitter, [30 + side]]))
    for q in np.linspace(0.4975, 0.5025, 9):  # within 8 ranks of where the clusters meet
        value = sorted_quantile(x, float(q))
        cell = Cell(("all",), "p", CellKind.QUANTILE, value, ids(x.size), values=x, level=q)
        assert precision.step_for(cell, 10) >= 10 * 0.02, q


def test_a_histograms_small_tail_bins_are_left_out() -> None:
    cells = [count(("[10, 20)",), 1), count(("[20, 30)",), 40, 1), count(("[30, 40)",), 55, 41),
             count(("[40, 50]",), 2, 96)]
    report = check(Result(AnalysisKind.HISTOGRAM, {}, cells), RULES)
    assert report.removed == {0, 3}


def test_no_label_can_make_an_output_fail_to_record_once_the_check_has_acted() -> None:
    """Whether recording fails must not depend on which rows the check removed: a NUL in a
    label (built in SQL) renders as U+FFFD, and the size limit is met on the whole result
    before the check, so it cannot tell whether a row was shown."""
    cells = [count(("a\x00b",), 40), count(("c",), 3, 40)]
    result = Result(AnalysisKind.AGGREGATE_SQL, {}, cells)
    for fmt in Format:
        payload = render(result, set(), fmt)
        assert requests.payload_problems(payload, MEDIA_TYPE[fmt], f"t.{fmt.value}") == []
    assert "\ufffd" in render(result, set(), Format.CSV).decode()


def test_the_size_limit_is_the_whole_result_s_whatever_the_check_removes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = Result(AnalysisKind.AGGREGATE_SQL, {}, [count((f"g{i}",), 20, 20 * i)
                                                     for i in range(50)])
    whole = len(render(result, set(), Format.JSON))
    monkeypatch.setattr(requests, "MAX_BYTES", whole + 20)  # shown less a row: would fit
    assert len(render(result, set(), Format.JSON, removed={0})) < requests.MAX_BYTES
    with pytest.raises(Invalid, match="fewer groups"):
        _fits(result, Format.JSON)
    monkeypatch.setattr(requests, "MAX_BYTES", whole + len(result.cells))
    _fits(result, Format.JSON)


def test_keyed_rounding_is_reproducible_unbiased_and_has_no_boundary_to_find() -> None:
    """Guarantee: a figure rounds the same way every time, but up or down by a draw no one
    without the key can foresee, so shifting it a little at a time finds no fixed boundary;
    on average it is exact."""
    step = 0.01
    assert KEYED(27.3841, step) == KEYED(27.3841, step)  # reproducible
    other = Rounding(b"another project's key, not this")
    values = 27.38 + np.arange(20_000) * 1e-7  # 27.38 … 27.382: straddles two multiples
    shown = np.array([KEYED(float(v), step) for v in values])
    assert set(np.round(shown, 3)) <= {27.38, 27.39}
    assert abs(shown.mean() - values.mean()) < 2e-4  # unbiased, where nearest is not
    # nearest rounding flips once, at 27.385; keyed rounding flips all the way along, so
    # the place where a shifted figure first rounds up says nothing of where it lies
    ups = shown > 27.385
    assert ups[:5000].any() and not ups[-5000:].all()
    assert 0.1 < ups.mean() < 0.3  # the values are 0.0–0.2 of a step past 27.38
    assert sum(KEYED(float(v), step) != other(float(v), step) for v in values) > 1000


def test_a_rounding_boundary_cannot_be_bisected() -> None:
    """The attack a review ran against nearest rounding: everyone else's values shifted by a
    known amount each release, so that the mean crosses a rounding boundary exactly when the
    shift passes a point set by the target's value. Nearest rounding gives the value back to
    many digits; keyed rounding, to nothing better than the whole step's worth (n × step)."""
    n, step, truth = 1000, 0.05, 31.4159

    def attack(rounding: Callable[[float, float], float]) -> float:
        low, high = 0.0, 0.1  # the shift at which the mean first shows as 0.1
        for _ in range(40):
            mid = (low + high) / 2
            if rounding((truth + (n - 1) * mid) / n, step) >= 0.1 - 1e-12:
                high = mid
            else:
                low = mid
        return n * 0.075 - (n - 1) * high  # nearest: the boundary is at 0.075

    assert attack(round_to_step) == pytest.approx(truth, abs=1e-6)
    assert abs(attack(KEYED) - truth) > 0.5


# -- what a held or blocked output's reasons may name (outputs/labels.py namable) ------------

def _held_reasons(result: Result, findings: list[tuple[int | None, str]]) -> list[str]:
    """The reasons kept for an output people must decide, as the researcher reads them."""
    from strongroom.outputs.labels import namable
    from strongroom.outputs.service import _settled
    from strongroom.outputs.verdicts import CheckReport, Finding, Verdict

    report = check(result, RULES)
    found = [Finding("threshold", Verdict.REVIEW, reason, cell) for cell, reason in findings]
    held = CheckReport(Verdict.REVIEW, found, report.suppressed, report.rules_version,
                       report.thresholds, report.removed)
    kept = _settled(found, held, None, namable(result, RULES.threshold, report.removed))
    return [f.reason for f in kept.findings]


def test_a_held_output_names_a_cell_only_by_labels_it_would_show() -> None:
    cells = [count(("27.3817", "143"), 1), count(("obese", "high"), 40, 10),
             count(("obese", "low"), 40, 60)]
    reasons = _held_reasons(Result(AnalysisKind.AGGREGATE_SQL, {}, cells), [
        (0, 'row "27.3817 / 143", column "n": fewer than the threshold'),
        (1, 'row "obese / high", column "n": fewer than the threshold'),
        (1, 'row "obese / high" beside row "27.3817 / 143"'),  # another cell's: never
        (None, 'the level "27.3817" is held by fewer'),
    ])
    assert reasons == ['row “…”, column “…”: fewer than the threshold',
                       'row "obese / high", column "n": fewer than the threshold',
                       'row "obese / high" beside row “…”',
                       'the level “…” is held by fewer']


def test_a_model_level_or_survival_group_held_by_few_is_not_named() -> None:
    coefficient = Cell(("g=sbp 143",), "coef", CellKind.COEFFICIENT, 0.4, ids(500))
    common = Cell(("g=other",), "coef", CellKind.COEFFICIENT, 0.1, ids(500))
    model = Result(AnalysisKind.LOGISTIC, {}, [coefficient, common],
                   levels={"level:g=sbp 143": ids(2), "level:g=other": ids(498, 2)})
    assert _held_reasons(model, [(0, 'row "g=sbp 143"'), (1, 'row "g=other"')]) == [
        "row “…”", 'row "g=other"']
    at_risk = [Cell((g, "[0, 5] years"), "at_risk", CellKind.AT_RISK, float(n), ids(n, s),
                    table=g) for g, n, s in (("sbp 143", 3, 0), ("other", 400, 3))]
    late = Cell(("other", "(5, 10] years"), "at_risk", CellKind.AT_RISK, 2.0, ids(2, 3),
                table="other")
    survival = Result(AnalysisKind.KAPLAN_MEIER, {"group": "g"}, [*at_risk, late],
                      levels={"level:g=sbp 143": ids(3), "level:g=other": ids(400, 3)})
    assert _held_reasons(survival, [
        (0, 'table "sbp 143", row "sbp 143 / [0, 5] years"'),
        (1, 'table "other", row "other / [0, 5] years"'),
        (2, 'row "other / (5, 10] years"'),  # followed into by two: the grid says so
    ]) == ['table “…”, row “…”', 'table "other", row "other / [0, 5] years"', "row “…”"]


def test_a_gwas_names_no_variant_when_held() -> None:
    cell = Cell(("rs123",), "beta", CellKind.COEFFICIENT, 0.1, ids(500))
    assert _held_reasons(Result(AnalysisKind.GWAS, {}, [cell]), [(0, 'variant "rs123"')]) \
        == ["variant “…”"]


def test_quote_marks_in_labels_cannot_end_a_reason_s_quotes() -> None:
    """A label the researcher builds with a quote mark (`'x"' || sbp`) would close the quotes
    a reason puts round it, and its rest would escape the redaction: quote marks in labels
    become primes, before the check writes any reason, and the levels' keys with them."""
    from strongroom.outputs.labels import shorten_long

    secret = 'x"142\' and “143”'
    cells = [count((secret,), 3), count(("common",), 40, 10)]
    result = Result(AnalysisKind.KAPLAN_MEIER, {"group": "g"},
                    [Cell((secret, "[0, 5] years"), "at_risk", CellKind.AT_RISK, 3.0, ids(3),
                          table=secret), *cells],
                    levels={f"level:g={secret}": ids(3)})
    shorten_long(result)
    shown = [p for c in result.cells for p in (*c.row, c.column, c.table)]
    assert not any(q in p for p in shown for q in "\"'“”‘’")
    assert list(result.levels) == ["level:g=x″142′ and ″143″"]
    label = result.cells[0].row[0]
    reasons = _held_reasons(result, [(2, f'row "common" beside row "{label}" and \'{label}\'')])
    assert "142" not in reasons[0] and "143" not in reasons[0]


def _step_as_it_was(cell: Cell, threshold: int) -> float:
    """step_for before it shared one sort per variable (session 24): every sort its own."""
    from strongroom.enclave import margin
    from strongroom.enclave.steps import nice_step
    x = np.asarray(cell.values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return 0.0
    low, high = float(x.min()), float(x.max())
    spread = high - low
    if cell.kind not in (CellKind.MEDIAN, CellKind.QUANTILE):
        top = margin.highest(threshold)
        ordered, gap = np.sort(x), 0.0
        if x.size >= 2:
            at_top = int(np.count_nonzero(ordered == ordered[-1]))
            if at_top <= top and at_top < x.size:
                gap = float(ordered[-1] - ordered[-at_top - 1])
            at_bottom = int(np.count_nonzero(ordered == ordered[0]))
            if at_bottom <= top and at_bottom < x.size:
                gap = max(gap, float(ordered[at_bottom] - ordered[0]))
        spread = max(spread, top * gap)
    if cell.kind is CellKind.SUM:
        return nice_step(max(abs(low), abs(high), spread))
    if cell.kind is CellKind.MEAN:
        return nice_step(max(spread, abs(high) if n == 1 else 0.0) / n)
    if cell.kind is CellKind.SD:
        if n < 2:
            return 0.0
        bound = spread / np.sqrt(n - 1)
        if abs(cell.value) > 0:
            bound = min(bound, spread * spread / (abs(cell.value) * (n - 1)))
        return nice_step(bound)
    reach = float(np.sort(np.abs(x - cell.value))[min(threshold, n) - 1])
    ordered = np.sort(x)
    first = int(np.searchsorted(ordered, cell.value, side="left"))
    last = int(np.searchsorted(ordered, cell.value, side="right"))
    window = ordered[max(first - threshold - 1, 0):last + threshold + 1]
    widest = float(np.diff(window).max()) if window.size > 1 else 0.0
    return nice_step(max(2.0 * reach, threshold * widest))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.integers(-5, 5).map(float),
                                 st.floats(-1e3, 1e3, allow_nan=False),
                                 st.just(float("nan"))), min_size=1, max_size=60),
       kind=st.sampled_from([CellKind.SUM, CellKind.MEAN, CellKind.SD, CellKind.MEDIAN,
                             CellKind.QUANTILE]),
       at=st.floats(0, 1), threshold=st.integers(1, 12))
def test_the_step_from_one_shared_sort_is_the_step_as_it_was(
        values: list[float], kind: CellKind, at: float, threshold: int) -> None:
    x = np.asarray(values)
    finite = x[np.isfinite(x)]
    value = (float(np.quantile(finite, at)) if finite.size else 1.0) if kind in (
        CellKind.MEDIAN, CellKind.QUANTILE) else float(np.nansum(x) or 1.0)
    cell = Cell(("all",), kind.value, kind, value, ids(x.size), values=x)
    assert precision.step_for(cell, threshold) == _step_as_it_was(cell, threshold)
    assert precision.step_for(cell, threshold, precision.finite_sorted(x)) == \
        _step_as_it_was(cell, threshold)
