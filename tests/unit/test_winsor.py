"""Winsorised values, on hand-built data.

Guarantee under test: *changing the values of fewer than k participants to anything outside
the range held by the others changes nothing that is released*: sums, means, SDs, counts of
rows, fits and category counts come out the same whether a few people's values are ordinary
or extreme, and a category held by fewer than k is counted in the most common one (no row
disappears, no other count moves).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.enclave import winsor
from strongroom.enclave.aggregate import aggregate_sql
from strongroom.enclave.analyses.run import run
from strongroom.enclave.engine import Limits
from strongroom.enclave.steps import Rounding
from strongroom.enclave.view import schema_of
from strongroom.errors import Invalid

K = 10
KEYED = Rounding(b"a key for these figures only")
LIMITS = Limits(seconds=20.0)


def test_bounds_are_the_kth_smallest_and_largest_or_the_median_below_2k() -> None:
    x = np.arange(100, dtype=np.float64)
    assert winsor.bounds(x, K) == (9.0, 90.0)
    assert winsor.bounds(np.arange(19, dtype=np.float64), K) == (9.0, 9.0)
    assert winsor.bounds(x, 0) == (-np.inf, np.inf)


@settings(max_examples=60, deadline=None)
@given(others=st.lists(st.floats(-50, 50, allow_nan=False), min_size=2 * K, max_size=60),
       few=st.integers(1, K - 1), a=st.floats(51, 1e9), b=st.floats(51, 1e9),
       below=st.booleans())
def test_fewer_than_k_values_outside_the_others_range_change_nothing(
        others: list[float], few: int, a: float, b: float, below: bool) -> None:
    sign = -1.0 if below else 1.0
    first = np.array([*others, *[sign * a] * few])
    second = np.array([*others, *[sign * (b + i) for i in range(few)]])  # all outside too
    assert winsor.clip(first, K).sum() == pytest.approx(winsor.clip(second, K).sum())
    ids = np.arange(first.size, dtype=np.int64)
    assert np.allclose(np.sort(winsor.clip_rows(first, ids, K)),
                       np.sort(winsor.clip_rows(second, ids, K)))


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=1,
                       max_size=80),
       gaps=st.lists(st.integers(1, 5), min_size=80, max_size=80), k=st.integers(0, 12))
def test_rows_one_per_participant_clip_as_participants_with_one_row_each(
        values: list[float], gaps: list[int], k: int) -> None:
    # rows in pid order, one each (the shortcut) against the same rows with a second row
    # copied for each participant (the general path: each one's lowest and highest)
    x = np.array(values)
    ids = np.cumsum(gaps[:x.size]).astype(np.int64)
    doubled = winsor.clip_rows(np.repeat(x, 2), np.repeat(ids, 2), k)
    assert np.array_equal(winsor.clip_rows(x, ids, k), doubled[::2], equal_nan=True)


def test_all_equal_but_few_cannot_survive_the_clip() -> None:
    x = np.array([1.0] * 50 + [1000.0] * (K - 1))
    assert set(winsor.clip(x, K)) == {1.0}


def test_bounds_for_rows_are_set_by_participants_not_rows() -> None:
    # one participant with 100 rows at 1000 cannot hold the k-th largest row
    x = np.array([1.0] * 30 + [1000.0] * 100)
    ids = np.array(list(range(30)) + [99] * 100, dtype=np.int64)
    assert set(winsor.clip_rows(x, ids, K)) == {1.0}


def test_a_rare_category_is_counted_in_the_most_common() -> None:
    codes = np.array([0] * 30 + [1] * 12 + [2], dtype=np.int64)
    ids = np.arange(codes.size, dtype=np.int64)
    moved, remain = winsor.rare_to_common(codes, ids, 3, K)
    assert list(remain) == [True, True, False]
    assert np.bincount(moved).tolist() == [31, 12]


def _sql(frame: pl.DataFrame, sql: str) -> dict[tuple[tuple[str, ...], str], float | None]:
    tables = {"t": frame}
    result = aggregate_sql(tables, schema_of(tables), sql, LIMITS, {"sql": sql}, k=K)
    return {(c.row, c.column): c.value for c in result.cells}


def _people(n: int, unusual: dict[int, float]) -> pl.DataFrame:
    return pl.DataFrame({"pid": np.arange(n, dtype=np.int64),
                         "x": [unusual.get(i, 1.0) for i in range(n)],
                         "g": ["y" if i not in unusual else "x" for i in range(n)]})


def test_a_sum_with_one_large_contribution_is_the_sum_without_it() -> None:
    plain, odd = _people(40, {}), _people(40, {7: 1000.0})
    sql = "SELECT sum(x) AS s, avg(x) AS m, stddev(x) AS sd, count(*) AS n FROM t"
    assert _sql(plain, sql) == _sql(odd, sql)


def test_one_more_row_for_one_participant_moves_no_count_of_rows() -> None:
    plain = _people(40, {})
    doubled = pl.concat([plain, plain.filter(pl.col("pid") == 3)]).sort("pid")
    sql = "SELECT count(*) AS n FROM t"
    assert _sql(plain, sql) == _sql(doubled, sql) == {((), "n"): 40.0}


def test_a_group_key_held_by_few_joins_the_most_common_and_moves_nothing_else() -> None:
    sql = "SELECT g, count(*) AS n FROM t GROUP BY g"
    assert _sql(_people(40, {5: 2.0}), sql) == _sql(_people(40, {}), sql) == {
        (("y",), "n"): 40.0}


def test_a_frequency_category_held_by_few_leaves_no_gap() -> None:
    body = {"kind": "frequency", "variable": "g"}
    plain = run(body, _people(40, {}), rounding=KEYED, k=K)
    odd = run(body, _people(40, {5: 2.0}), rounding=KEYED, k=K)
    assert [(c.row, c.column, c.value) for c in plain.cells] == \
        [(c.row, c.column, c.value) for c in odd.cells]
    assert plain.notes == odd.notes and winsor.CATEGORY_NOTE in plain.notes


def test_an_outcome_constant_but_for_one_is_refused_as_constant_either_way() -> None:
    body = {"kind": "ols", "outcome": "x", "covariates": ["z"]}
    frame = _people(40, {}).with_columns(z=pl.Series(np.arange(40) % 3, dtype=pl.Float64))
    odd = _people(40, {7: 2.0}).with_columns(z=frame["z"])
    reasons = []
    for f in (frame, odd):
        with pytest.raises(Invalid) as caught:
            run(body, f, rounding=KEYED, k=K)
        reasons.append(caught.value.reasons)
    assert reasons[0] == reasons[1]


def test_a_follow_up_too_long_is_pulled_back_into_the_table() -> None:
    body = {"kind": "kaplan_meier", "time": "x", "event": "e", "interval": 1}
    plain = _people(40, {}).with_columns(e=pl.lit(1))
    odd = _people(40, {3: 100_000.0}).with_columns(e=pl.lit(1))
    a, b = (run(body, f, rounding=KEYED, k=K) for f in (plain, odd))
    assert [(c.row, c.column, c.value) for c in a.cells] == \
        [(c.row, c.column, c.value) for c in b.cells]
    assert a.notes == b.notes
    # what the ledger keeps is what was fitted: the clipped follow-up
    assert a.vectors["x"][1].tolist() == b.vectors["x"][1].tolist()


def test_missing_values_stay_missing_in_a_winsorised_fit() -> None:
    frame = _people(40, {}).with_columns(
        x=pl.Series([None if i % 7 == 0 else float(i % 5) for i in range(40)]),
        z=pl.Series(np.arange(40) % 3, dtype=pl.Float64))
    result = run({"kind": "ols", "outcome": "x", "covariates": ["z"]}, frame,
                 rounding=KEYED, k=K)
    pids, values = result.vectors["x"]
    assert np.isfinite(values).all() and pids.size == 34


def _levels_frame(rare: int) -> pl.DataFrame:
    """60 participants at level "a", 40 at "b", and ``rare`` more at "c"; y depends on x."""
    n = 100 + rare
    x = np.arange(n, dtype=np.float64) % 17
    return pl.DataFrame({"pid": np.arange(n, dtype=np.int64), "x": x,
                         "y": 2.0 * x + (np.arange(n) % 5),
                         "g": ["a"] * 60 + ["b"] * 40 + ["c"] * rare})


@pytest.mark.parametrize("kind", ["ols", "logistic"])
def test_a_fit_counts_a_level_held_by_few_in_the_reference(kind: str) -> None:
    """A dummy held by a few people gives back their outcomes; the level is counted in the
    reference, silently and always (as a table's category is), so the model has no row for
    it and needs no block (the honest OLS with a rare smoking answer lost its release)."""
    frame = _levels_frame(3)
    if kind == "logistic":
        frame = frame.with_columns(y=(pl.col("y") > 16).cast(pl.Int64))
    body = {"kind": kind, "outcome": "y", "covariates": ["x", "g"], "categorical": ["g"]}
    result = run(body, frame, rounding=KEYED, k=K)
    terms = {c.row[0] for c in result.cells if c.table != "model"}
    assert terms == {"Intercept", "x", "g=b"}
    assert winsor.CATEGORY_NOTE in result.notes
    assert result.levels["level:g=a"].size == 63  # the reference holds the three
    # a level held by k or more stays its own term
    wide = _levels_frame(2 * K)
    if kind == "logistic":
        wide = wide.with_columns(y=(pl.col("y") > 16).cast(pl.Int64))
    wide = run(body, wide, rounding=KEYED, k=K)
    assert "g=c" in {c.row[0] for c in wide.cells}


def test_a_category_kept_passes_the_threshold_of_its_own_count() -> None:
    """The merge and the threshold take one keyed draw for the same members: for every size
    between k and 2k − 1, a category kept is never then hidden as short (two draws asked the
    question twice, and the honest frequency lost a category to the second)."""
    from strongroom.enclave import margin
    from strongroom.outputs.check import check
    from strongroom.outputs.rules import load_rules

    rules = load_rules()
    seen: set[bool] = set()
    for size in range(K, 2 * K):
        for salt in range(6):
            with margin.keyed(f"a request key {salt:04d} {size:04d}".encode()):
                frame = pl.DataFrame({"pid": np.arange(150 + size, dtype=np.int64),
                                      "g": ["a"] * 100 + ["c"] * 50 + ["b"] * size})
                result = run({"kind": "frequency", "variable": "g"}, frame, rounding=KEYED,
                             k=K)
                kept = [c for c in result.cells if c.row == ("b",) and c.column == "count"]
                report = check(result, rules)
            if kept:  # not merged: then its count and its label pass the threshold
                assert not report.findings, (size, report.findings)
                seen.add(True)
            else:
                seen.add(False)
    assert seen == {True, False}  # both outcomes were tried
