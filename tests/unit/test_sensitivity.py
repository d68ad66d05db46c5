"""The rounding steps of fitted figures are true bounds: moving one participant's value
anywhere in its variable's range never moves the figure by more than its step (checked by
refitting, custodian-side, for every participant of random data and both ends of the range)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from strongroom.enclave.analyses import sensitivity
from strongroom.enclave.steps import Rounding

KEYED = Rounding(b"a key for these figures only")


def _ols(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    design = np.column_stack([np.ones(len(y)), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(((y - design @ beta) ** 2).sum())
    tss = float(((y - y.mean()) ** 2).sum())
    n = len(y)
    llf = -n / 2 * (1 + math.log(2 * math.pi) + math.log(rss / n))
    return {"r_squared": 1 - rss / tss, "log_likelihood": llf}


@pytest.mark.parametrize("seed", range(4))
def test_no_participant_moves_r_squared_or_the_log_likelihood_past_its_step(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    x = rng.normal(size=(n, 2))
    y = x @ [1.0, -0.5] + rng.normal(size=n) * (1 + seed)
    design = np.column_stack([np.ones(n), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    steps = sensitivity.least_squares_steps(y, y - design @ beta, np.arange(n), 3)
    base = _ols(x, y)
    for i in range(n):
        for end in (y.min(), y.max()):
            moved = y.copy()
            moved[i] = end
            for name, value in _ols(x, moved).items():
                assert abs(value - base[name]) <= steps[name], (name, i)


@pytest.mark.parametrize("ranks", [False, True])
def test_no_participant_moves_a_correlation_past_its_step(ranks: bool) -> None:
    rng = np.random.default_rng(3)
    n = 200
    a = rng.normal(size=n)
    b = 0.3 * a + rng.normal(size=n)

    def r(u: np.ndarray, v: np.ndarray) -> float:
        if ranks:
            u, v = np.argsort(np.argsort(u)) + 1.0, np.argsort(np.argsort(v)) + 1.0
        return float(np.corrcoef(u, v)[0, 1])

    rank = (lambda v: np.argsort(np.argsort(v)) + 1.0) if ranks else (lambda v: v)
    step = sensitivity.correlation_step(rank(a), rank(b), np.arange(n), ranks=ranks)
    base = r(a, b)
    for i in range(n):
        for which, values in ((0, a), (1, b)):
            for end in (values.min() - 1, values.max() + 1) if ranks else (values.min(),
                                                                           values.max()):
                moved = values.copy()
                moved[i] = end
                got = r(moved, b) if which == 0 else r(a, moved)
                assert abs(got - base) <= step, (i, which)


def test_a_figure_one_participant_could_move_anywhere_is_not_shown() -> None:
    y = np.array([0.0] * 50 + [1.0] * 50 + [30.0])  # everyone known but one outlier
    steps = sensitivity.least_squares_steps(y, y - y.mean(), np.arange(len(y)), 1)
    assert sensitivity.shown(0.3, steps["r_squared"], KEYED) is None
    assert sensitivity.shown(-200.0, steps["log_likelihood"], KEYED) is None
    assert sensitivity.correlation_step(np.arange(5.0), np.arange(5.0), np.arange(5),
                                        ranks=False) == math.inf


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(3, 60), columns=st.integers(1, 5), repeats=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_the_most_one_participant_moves_is_the_solve_it_replaced(
        rows: int, columns: int, repeats: bool, seed: int) -> None:
    # the per-row solve (XᵀWX)⁻¹xᵢ, summed by participant, as the steps were computed before,
    # for designs the rank check lets through (regression.check_rank refuses the rest)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)) * rng.choice([1e-6, 1e-3, 1.0, 1e3, 1e6],
                                                      size=columns)
    w = rng.random(rows) + 0.01
    ids = (np.sort(rng.integers(0, rows // 2 + 1, rows)) if repeats
           else np.arange(rows) * 3 + 7).astype(np.int64)
    information = x.T @ (x * w[:, None])
    unit = information / np.outer(*[np.sqrt(np.diag(information))] * 2)
    assume(rows >= 3 * columns and np.linalg.cond(unit) < 1e8)
    effect = np.abs(np.linalg.solve(information, x.T))
    codes = np.unique(ids, return_inverse=True)[1]
    before = np.array([np.bincount(codes, weights=row).max() for row in effect])
    after = sensitivity.most_moved(information, x, ids)
    assert after is not None
    np.testing.assert_allclose(after, before, rtol=1e-7, atol=1e-12 * float(before.max()))


def test_a_singular_information_moves_every_coefficient_out_of_sight() -> None:
    x = np.ones((20, 2))  # two identical columns
    assert sensitivity.most_moved(x.T @ x, x, np.arange(20)) is None
