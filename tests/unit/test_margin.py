"""Keyed margins (enclave/margin.py): every "is this group held by k?" is taken at k plus a
margin in [0, k − 1] drawn from the request's key and the decision's name.

Guarantee under test: k − 1 accomplices and the target make a group that reaches the line
only by its draw, so across requests the obese target's group of k stands about one time in
k, and the lean target's k − 1 never; a group of 2k − 1 always stands; outside a keyed
request the line is k, as the enclave's own tests expect. Each adversarial test reads the
truth (who is in the group) from the test's own data, and counts over many request keys how
often the two outcomes can be told apart.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest
from pyroaring import BitMap

from strongroom.enclave import margin, winsor
from strongroom.enclave.aggregate import aggregate_sql
from strongroom.enclave.analyses.run import run
from strongroom.enclave.engine import Limits
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.enclave.steps import Rounding
from strongroom.enclave.view import schema_of
from strongroom.outputs import contributions, precision
from strongroom.outputs.check import check
from strongroom.outputs.contributions import Vector, leftover
from strongroom.outputs.labels import unsafe_cells
from strongroom.outputs.overlap import within_output
from strongroom.outputs.rules import load_rules

K = 10
KEYS = [hashlib.sha256(f"request {i}".encode()).digest() for i in range(300)]


def test_outside_a_keyed_request_the_line_is_k() -> None:
    assert margin.reach(K, "anything") == K == margin.highest(K)
    assert winsor.bounds(np.arange(100, dtype=np.float64), K) == (9.0, 90.0)


def test_a_draw_is_the_same_for_the_same_request_and_name_and_spans_k_to_2k_minus_1() -> None:
    seen = []
    for key in KEYS:
        with margin.keyed(key):
            line = margin.reach(K, "cell", ("x",))
            assert line == margin.reach(K, "cell", ("x",))  # reproducible
            assert margin.highest(K) == 2 * K - 1
        seen.append(line)
    assert set(seen) == set(range(K, 2 * K))
    # two decisions of one request draw apart (no calibration inside a request)
    with margin.keyed(KEYS[0]):
        lines = {margin.reach(K, "cell", (str(i),)) for i in range(200)}
    assert lines == set(range(K, 2 * K))


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"), margin.keyed(b"short"):
        pass


def _share_told_apart(outcome: object) -> float:
    """Over many requests, how often the obese world's outcome differs from the lean one's."""
    apart = 0
    for key in KEYS:
        with margin.keyed(key):
            apart += outcome(True) != outcome(False)  # type: ignore[operator]
    return apart / len(KEYS)


def test_a_category_of_k_minus_1_accomplices_and_the_target_is_a_noisy_bit() -> None:
    def stands(obese: bool) -> bool:
        holders = K - 1 + obese
        codes = np.array([0] * 50 + [1] * holders, dtype=np.int64)
        _, remain = winsor.rare_to_common(codes, np.arange(codes.size, dtype=np.int64), 2, K)
        return bool(remain[1])
    share = _share_told_apart(stands)
    assert 0.0 < share < 0.2  # one in k, not every time


def test_a_count_of_k_minus_1_accomplices_and_the_target_is_a_noisy_bit() -> None:
    rules = load_rules()

    def shown(obese: bool) -> bool:
        n = K - 1 + obese
        cell = Cell(("x",), "n", CellKind.COUNT, float(n), np.arange(n, dtype=np.int64))
        report = check(Result(AnalysisKind.AGGREGATE_SQL, {}, [cell]), rules)
        return 0 not in report.suppressed
    assert 0.0 < _share_told_apart(shown) < 0.2


def test_a_label_held_by_k_stands_by_its_draw_and_by_2k_minus_1_always() -> None:
    def kept(n: int) -> bool:
        cell = Cell(("x",), "n", CellKind.COUNT, float(n), np.arange(n, dtype=np.int64))
        return not unsafe_cells(Result(AnalysisKind.AGGREGATE_SQL, {}, [cell]), K)
    shares = []
    for n in (K - 1, K, 2 * K - 1):
        hits = 0
        for key in KEYS:
            with margin.keyed(key):
                hits += kept(n)
        shares.append(hits / len(KEYS))
    assert shares[0] == 0.0 and 0.0 < shares[1] < 0.2 and shares[2] == 1.0


def test_a_large_value_shared_by_k_minus_1_accomplices_and_the_target_rarely_sets_the_bound(
) -> None:
    """Lean: k − 1 hold 1000 and are clipped to the bulk's 1; obese: k hold it, and with the
    line at k it was the bound (the sum's verdict told them apart)."""
    def bound(obese: bool) -> float:
        x = np.array([1.0] * 60 + [1000.0] * (K - 1 + obese))
        return winsor.bounds(x, K)[1]
    assert 0.0 < _share_told_apart(bound) < 0.2


def test_aggregate_sql_draws_per_request_and_per_cell() -> None:
    frame = pl.DataFrame({"pid": np.arange(60, dtype=np.int64),
                          "g": ["x"] * K + ["y"] * 50})
    tables = {"t": frame}
    sql = "SELECT g, count(*) AS n FROM t GROUP BY g"
    rows = []
    for key in KEYS[:100]:
        with margin.keyed(key):
            result = aggregate_sql(tables, schema_of(tables), sql, Limits(seconds=20.0),
                                   {"sql": sql}, k=K)
        rows.append(tuple(sorted(c.row for c in result.cells)))
    stood = sum(("x",) in r for r in rows) / len(rows)
    assert 0.0 < stood < 0.25


# -- rounded counts (outputs/precision.py) -------------------------------------------------

BASE = 5


def _frequency(n_x: int, n_y: int) -> Result:
    frame = pl.DataFrame({"pid": np.arange(n_x + n_y, dtype=np.int64),
                          "g": ["x"] * n_x + ["y"] * n_y})
    return run({"kind": "frequency", "variable": "g", "percentages": True}, frame,
               rounding=Rounding(b"a key for these figures only"))


def _rounded(result: Result, key: bytes) -> dict[tuple[tuple[str, ...], str], float | None]:
    with margin.keyed(key):
        precision.apply(result, K, Rounding(b"the project's own secret"), BASE)
    return {(c.row, c.column): c.value for c in result.cells}


def test_counts_are_multiples_of_the_base_within_one_of_it_and_right_on_average() -> None:
    seen = [_rounded(_frequency(23, 51), key) for key in KEYS]
    xs = np.array([s[(("x",), "count")] for s in seen])
    assert set(xs) == {20.0, 25.0}  # 23 goes down or up, never further
    assert abs(xs.mean() - 23) < 0.6  # unbiased: 23 on average (SD of the mean ≈ 0.14)
    for s in seen:  # percentages are of the rounded counts shown beside them
        assert s[(("x",), "percent")] == pytest.approx(
            100 * s[(("x",), "count")] / s[(("Total",), "count")])  # type: ignore[operator]


def test_a_known_group_with_or_without_the_target_is_a_one_in_base_bit() -> None:
    """2k − 2 accomplices, plus the target if obese: the exact counts 18 and 19 differ by one;
    what is shown differs in distribution by at most one in the base (here the share of
    requests where the shown count is 20 moves from 3/5 to 4/5)."""
    def shown(n: int) -> list[float | None]:
        return [_rounded(_frequency(n, 40), key)[(("x",), "count")] for key in KEYS]
    lean, obese = np.array(shown(18)), np.array(shown(19))
    gap = abs(float((lean == 20).mean()) - float((obese == 20).mean()))
    assert gap < 1 / BASE + 0.1


def test_a_count_asked_rounded_to_a_base_is_rounded_at_random_from_its_exact_value() -> None:
    frame = pl.DataFrame({"pid": np.arange(60, dtype=np.int64), "g": ["x"] * 14 + ["y"] * 46})
    values = set()
    for key in KEYS[:60]:
        result = run({"kind": "frequency", "variable": "g", "round_to": 10}, frame,
                     rounding=Rounding(b"a key for these figures only"))
        values.add(_rounded(result, key)[(("x",), "count")])
    assert values == {10.0, 20.0}  # "nearest" would always show 10: a fixed boundary


def test_value_differencing_sees_through_clips_at_different_ranks() -> None:
    """Two releases of the same values, each clipped at its own keyed rank, differ for those
    between the ranks; a value zeroed for one person is still found, and nothing else."""
    rng = np.random.default_rng(3)
    raw = rng.normal(27, 5, 400).round(4)
    ids = np.arange(400, dtype=np.int64)
    zeroed = raw.copy()
    zeroed[7] = 0.0  # the target, inside the bulk in the first release

    def clipped(x: np.ndarray, r: int) -> np.ndarray:
        low, high = np.sort(x)[r - 1], np.sort(x)[x.size - r]
        return np.clip(x, low, high)
    a = Vector.of("a", ids, clipped(raw, 12))
    assert leftover(a, Vector.of("b", ids, clipped(raw, 17)), K) == 0
    assert leftover(a, Vector.of("b", ids, clipped(zeroed, 17)), K) == 1


def test_a_models_counts_are_rounded_and_its_residual_df_moves_with_them() -> None:
    rng = np.random.default_rng(5)
    frame = pl.DataFrame({"pid": np.arange(43, dtype=np.int64), "x": rng.normal(0, 1, 43),
                          "y": rng.normal(0, 1, 43)})
    seen = set()
    for key in KEYS[:40]:
        result = run({"kind": "ols", "outcome": "y", "covariates": ["x"]}, frame,
                     rounding=Rounding(b"a key for these figures only"))
        with margin.keyed(key):
            precision.apply(result, K, Rounding(b"the project's own secret"), BASE,
                            load_rules().fact_counts)
        assert result.exact_facts["n_obs"] == 43 and result.exact_facts["residual_df"] == 41
        assert result.facts["n_obs"] - result.facts["residual_df"] == 2  # n less the parameters
        seen.add(result.facts["n_obs"])
    assert seen == {40.0, 45.0}  # 43 is not shown, and n − df does not give it back


# -- differencing: a clash is a decision on the size of the group two releases differ by ----


def test_two_statistics_k_minus_1_accomplices_and_the_target_apart_are_a_noisy_bit() -> None:
    """Value differencing (contributions.clashes) at the pair's keyed line: the lean
    target's k − 1 apart always clash, the obese target's k about one time in k does not."""
    ids = np.arange(500, dtype=np.int64)
    base = np.random.default_rng(3).normal(1950, 8, ids.size).round()

    def clash(obese: bool) -> bool:
        moved = base.copy()
        moved[: K - 1 + obese] += 1  # the accomplices' values, and the target's if obese
        found = contributions.clashes([Vector.of("b", ids, moved)],
                                      [Vector.of("a", ids, base)], K, within=False)
        return bool(found)
    share = _share_told_apart(clash)
    assert 0.0 < share < 0.2
    with margin.keyed(KEYS[0]):  # below k always, from 2k − 1 never
        for n, expected in ((K - 1, True), (2 * K - 1, False)):
            moved = base.copy()
            moved[:n] += 1
            assert bool(contributions.clashes([Vector.of("b", ids, moved)],
                                              [Vector.of("a", ids, base)], K,
                                              within=False)) is expected


def test_two_cells_of_one_output_k_minus_1_and_the_target_apart_are_a_noisy_bit() -> None:
    everyone = BitMap(range(1000))

    def clash(obese: bool) -> bool:
        rest = everyone - BitMap(range(K - 1 + obese))
        return bool(within_output([("all", everyone), ("rest", rest)], K))
    assert 0.0 < _share_told_apart(clash) < 0.2
    with margin.keyed(KEYS[1]):
        assert within_output([("all", everyone), ("rest", everyone - BitMap(range(K - 1)))],
                             K)[0].cell == 1  # the later cell, for the service to hide
        assert not within_output([("all", everyone),
                                  ("rest", everyone - BitMap(range(2 * K - 1)))], K)


# -- one draw per group: copies in one output do not draw again ------------------------------


def test_copies_of_one_group_share_their_draw_and_their_rounding() -> None:
    """Three hundred copies of "k − 1 accomplices and the target if obese" in one output drew
    three hundred lines (some copy of the obese target's group stood), and three hundred
    copies of one count, each rounded by its own draw, averaged to the exact count. Named by
    their members, copies are one decision and one rounded value; another group draws its
    own."""
    rules = load_rules()
    group = np.arange(100, 100 + K, dtype=np.int64)
    copies = [Cell(("",), f"n{j}", CellKind.COUNT, float(K), group.copy()) for j in range(300)]
    for key in KEYS[:40]:
        with margin.keyed(key):
            report = check(Result(AnalysisKind.AGGREGATE_SQL, {}, copies), rules)
        shown = {i for i in range(len(copies)) if i not in report.suppressed}
        assert shown in (set(), set(range(len(copies))))  # all stand, or none
    big = np.arange(1000, 1019, dtype=np.int64)  # 19 people: rounded to 15 or 20
    result = Result(AnalysisKind.AGGREGATE_SQL, {}, [
        Cell(("",), f"n{j}", CellKind.COUNT, 19.0, big.copy()) for j in range(300)])
    values = _rounded(result, KEYS[0])
    assert len(set(values.values())) == 1
    other = [_rounded(Result(AnalysisKind.AGGREGATE_SQL, {}, [
        Cell(("",), "n", CellKind.COUNT, 19.0, big + shift)]), KEYS[0])[(("",), "n")]
        for shift in range(1, 200)]
    assert set(other) == {15.0, 20.0}  # other groups of 19 draw their own


def test_a_decision_without_a_line_outside_the_band_is_not_named() -> None:
    """Below k and from 2k − 1 the line is not drawn, so nothing is hashed there."""
    with margin.keyed(KEYS[0]):
        assert margin.short(K - 1, K, members=np.arange(K - 1)) is True
        assert margin.short(2 * K - 1, K, members=np.arange(2 * K - 1)) is False
    assert margin.of(np.arange(5)) == margin.of(np.arange(5)[::-1])
    assert margin.of(np.arange(5)) != margin.of(np.arange(1, 6))
