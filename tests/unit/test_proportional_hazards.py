"""The vectorised Cox fit and Harrell's C against lifelines, the custodian-side truth they
replace.

Guarantee: on untied, heavily tied and dummy-coded data from 50 to 5,000 rows, ``fit`` gives
lifelines' Efron estimates, variance matrix, log-likelihood and hazard-ratio table (to 1e-6,
against lifelines run to its own maximum); ``concordance`` is
``lifelines.utils.concordance_index(t, -risk, e)`` to 1e-12 whatever the ties, and a brute
count of the pairs on small data; and what lifelines refuses or warns about (separation, a
constant covariate, one ranked as the times are, collinearity) is NotConverged, so ``cox``
refuses it in the same words as before."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import polars as pl
import pytest
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.utils import concordance_index

from strongroom.enclave.analyses import proportional_hazards as ph
from strongroom.enclave.analyses.run import run as run_with
from strongroom.enclave.results import FloatArray
from strongroom.enclave.steps import Rounding
from strongroom.errors import Invalid

run = partial(run_with, rounding=Rounding(b"a key for these figures only"))
Data = tuple[FloatArray, FloatArray, FloatArray]
# lifelines' defaults stop ~1e-7 short of its maximum (a relative change in log-likelihood
# below 1e-9); run to the maximum, it agrees with ``fit`` to ~1e-10
TIGHT = {"precision": 1e-14, "r_precision": 1e-15}


def lifelines_fit(x: FloatArray, t: FloatArray, e: FloatArray,
                  **options: float) -> CoxPHFitter:
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])]).assign(t=t, e=e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter().fit(frame, "t", "e", fit_options=options or None)


def lifelines_objects(x: FloatArray, t: FloatArray, e: FloatArray) -> bool:
    """Whether lifelines fails or warns that its fit did not converge (the old refusal)."""
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])]).assign(t=t, e=e)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            CoxPHFitter().fit(frame, "t", "e")
        except ConvergenceError:
            return True
    return any(issubclass(w.category, ConvergenceWarning) for w in caught)


def centred(x: FloatArray) -> FloatArray:
    return np.asarray(x - x.mean(axis=0), dtype=np.float64)


def continuous(seed: int = 1, n: int = 50) -> Data:
    """Untied times, two covariates, most rows events."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = rng.exponential(np.exp(-x @ [0.5, -0.3]))
    return centred(x), t, (rng.random(n) < 0.7).astype(float)


def integer_times(seed: int = 2, n: int = 800) -> Data:
    """Whole-number times 1…15: every time heavily tied, events and censorings alike."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.gamma(2, 1, n)])
    t = np.minimum(np.ceil(rng.exponential(4 * np.exp(-x @ [0.4, 0.6, -0.2]))), 15)
    return centred(x), t, (rng.random(n) < 0.6).astype(float)


def one_big_tie(seed: int = 3, n: int = 300) -> Data:
    """120 events at one time, the rest spread out."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = rng.uniform(0, 10, n)
    e = (rng.random(n) < 0.3).astype(float)
    t[:120], e[:120] = 5.0, 1.0
    return centred(x), t, e


def dummies(seed: int = 4, n: int = 5000) -> Data:
    """Age, sex and a four-level group as three dummies; days over 12 years in years, ~10%
    events: the shape of the benchmark's cohort."""
    rng = np.random.default_rng(seed)
    age, sex, group = rng.normal(60, 10, n), rng.integers(0, 2, n), rng.integers(0, 4, n)
    x = np.column_stack([age, sex, group == 1, group == 2, group == 3]).astype(float)
    hazard = np.exp(0.03 * (age - 60) + 0.3 * sex + 0.2 * (group == 1) - 0.2 * (group == 3))
    onset = rng.exponential(100 / hazard)
    end = rng.uniform(0, 12, n)
    t = np.ceil(np.minimum(onset, end) * 365.25) / 365.25
    return centred(x), t, (onset <= end).astype(float)


def few_events(seed: int = 5, n: int = 2000) -> Data:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return centred(x), rng.exponential(1, n), (rng.random(n) < 0.03).astype(float)


COHORTS: dict[str, Callable[[], Data]] = {
    "continuous": continuous, "integer times": integer_times, "one big tie": one_big_tie,
    "dummies": dummies, "few events": few_events}


# -- the fit ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COHORTS)
def test_fit_is_lifelines_efron_estimate(name: str) -> None:
    x, t, e = COHORTS[name]()
    fitted = ph.fit(x, t, e)
    reference = lifelines_fit(x, t, e, **TIGHT)
    np.testing.assert_allclose(fitted.beta, reference.params_.to_numpy(), rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(fitted.variance, reference.variance_matrix_.to_numpy(),
                               rtol=1e-6, atol=1e-12)
    assert fitted.log_likelihood == pytest.approx(reference.log_likelihood_, rel=1e-10)
    summary = reference.summary[["exp(coef)", "exp(coef) lower 95%", "exp(coef) upper 95%",
                                 "p"]].to_numpy()
    np.testing.assert_allclose(fitted.table(), summary, rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(fitted.se, reference.standard_errors_.to_numpy(), rtol=1e-6)
    # lifelines as it ran (its default stopping rule): within 1e-4 of a standard error
    default = lifelines_fit(x, t, e)
    assert np.all(np.abs(fitted.beta - default.params_.to_numpy()) <= 1e-4 * fitted.se)
    assert fitted.log_likelihood == pytest.approx(default.log_likelihood_, rel=1e-9)


def overshooting() -> Data:
    """One binary covariate, 200 rows: found by a search over random data for what lifelines
    cannot fit although it has an ordinary maximum (a log hazard ratio of ~1.2 per SD)."""
    rng = np.random.default_rng(20)
    n, p = int(rng.choice([15, 30, 60, 200])), int(rng.integers(1, 4))
    assert (n, p) == (200, 1)
    x = (rng.normal(size=(n, p)) > 1).astype(float)
    strength = float(rng.choice([1, 3, 6, 12, 20]))
    beta = rng.normal(size=p) * strength
    onset = rng.exponential(1 / np.exp(x @ beta))
    end = rng.exponential(np.median(onset) * 2, n)
    return centred(x), np.minimum(onset, end), (onset <= end).astype(float)


def test_fit_reaches_the_maximum_where_lifelines_first_step_overshoots() -> None:
    """lifelines' Newton steps are not halved when the log-likelihood falls: here they run
    off (its "delta contains nan" ConvergenceError). Halving reaches the maximum, and
    lifelines started there stays: the same estimate."""
    x, t, e = overshooting()
    assert lifelines_objects(x, t, e)
    fitted = ph.fit(x, t, e)
    frame = pd.DataFrame({"x0": x[:, 0], "t": t, "e": e})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # lifelines' initial point is on its standardised scale
        started = CoxPHFitter().fit(frame, "t", "e", fit_options=TIGHT,
                                    initial_point=fitted.beta * x.std(axis=0, ddof=1))
    np.testing.assert_allclose(fitted.beta, started.params_.to_numpy(), rtol=1e-8)
    assert fitted.log_likelihood == pytest.approx(started.log_likelihood_, rel=1e-12)


@pytest.mark.parametrize(("columns", "order"), [(1, "C"), (2, "C"), (2, "F")])
def test_fit_leaves_its_arguments_alone(columns: int, order: Literal["C", "F"]) -> None:
    """A one-column array is Fortran-ordered too: the fit must copy it, never standardise
    the caller's (cox reuses it for the residuals)."""
    x, t, e = continuous()
    x = np.array(x[:, :columns], order=order)
    kept = x.copy(), t.copy(), e.copy()
    ph.fit(x, t, e)
    ph.concordance(t, e, x[:, 0])
    for now, before in zip((x, t, e), kept, strict=True):
        np.testing.assert_array_equal(now, before)


# -- refusals ---------------------------------------------------------------------------------

def separated(n: int = 200) -> Data:
    """A covariate that is 1 exactly for the events."""
    rng = np.random.default_rng(7)
    e = (rng.random(n) < 0.5).astype(float)
    return centred(np.column_stack([rng.normal(size=n), e])), rng.exponential(10, n), e


def with_column(column: Callable[[np.random.Generator, FloatArray], FloatArray]) -> Data:
    rng = np.random.default_rng(7)
    t, e = rng.exponential(10, 200), (rng.random(200) < 0.5).astype(float)
    x = np.column_stack([rng.normal(size=200), column(rng, t)])
    return centred(x), t, e


def collinear() -> Data:
    x, t, e = with_column(lambda rng, t: rng.normal(size=len(t)))
    x[:, 1] = 2 * x[:, 0]
    return x, t, e


REFUSED: dict[str, Callable[[], Data]] = {
    "complete separation": separated,
    "constant": lambda: with_column(lambda rng, t: np.ones(len(t))),
    "almost constant": lambda: with_column(lambda rng, t: 1 + 1e-3 * rng.normal(size=len(t))),
    "ranked as the times": lambda: with_column(lambda rng, t: t + 0.3 * rng.normal(size=len(t))),
    "the times themselves": lambda: with_column(lambda rng, t: t.copy()),
    "collinear": collinear,
}


@pytest.mark.parametrize("name", REFUSED)
def test_what_lifelines_refuses_does_not_converge(name: str) -> None:
    x, t, e = REFUSED[name]()
    assert lifelines_objects(x, t, e)
    with pytest.raises(ph.NotConverged):
        ph.fit(x, t, e)


def test_a_maximum_only_separation_allows_is_refused() -> None:
    """A log hazard ratio of ~30 per standard deviation: Newton reaches a finite maximum,
    lifelines gives up on the way; refused."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    onset = rng.exponential(1 / np.exp(np.clip(30 * x[:, 0] + 0.3 * x[:, 1], -700, 700)))
    end = rng.exponential(np.median(onset) * 2, 300)
    t, e, x = np.minimum(onset, end), (onset <= end).astype(float), centred(x)
    assert lifelines_objects(x, t, e)
    with pytest.raises(ph.NotConverged, match="per standard deviation"):
        ph.fit(x, t, e)


@pytest.mark.parametrize("change", ["nan covariate", "infinite time", "no events", "one row"])
def test_bad_input_is_refused(change: str) -> None:
    x, t, e = continuous()
    if change == "nan covariate":
        x[3, 1] = np.nan
    elif change == "infinite time":
        t[4] = np.inf
    elif change == "no events":
        e[:] = 0
    else:
        x, t, e = x[:1], t[:1], e[:1]
    with pytest.raises(ph.NotConverged):
        ph.fit(x, t, e)


def test_cox_refuses_separation_in_its_usual_words_without_the_reason() -> None:
    n = 200
    rng = np.random.default_rng(8)
    e = (rng.random(n) < 0.5).astype(int)
    frame = pl.DataFrame({"pid": np.arange(n), "t": rng.exponential(10, n), "e": e,
                          "x": rng.normal(size=n), "flag": e.astype(float)})
    with pytest.raises(Invalid) as caught:
        run({"kind": "cox", "time": "t", "event": "e", "covariates": ["x", "flag"]}, frame)
    reason = " ".join(caught.value.reasons)
    assert reason.startswith("the Cox model did not converge: a covariate may (almost) "
                             "separate events from censorings")
    assert "column" not in reason and "Traceback" not in reason


# -- Harrell's C ------------------------------------------------------------------------------

def brute_force(t: FloatArray, e: FloatArray, risk: FloatArray) -> float:
    """Every row against every event before it (at or before it, if the row is censored)."""
    correct = tied = pairs = 0
    for j in range(len(t)):
        for i in range(len(t)):
            if e[i] == 1 and (t[i] < t[j] or (t[i] == t[j] and e[j] == 0)):
                pairs += 1
                correct += risk[i] > risk[j]
                tied += risk[i] == risk[j]
    return (correct + tied / 2) / pairs if pairs else float("nan")


def lifelines_c(t: FloatArray, e: FloatArray, risk: FloatArray) -> float:
    try:
        return float(concordance_index(t, -risk, e))
    except ZeroDivisionError:  # no comparable pair
        return float("nan")


def random_data(rng: np.random.Generator, n: int) -> Data:
    """Times and risks tied or not, events rare to certain."""
    tied_times, tied_risks = rng.random() < 0.5, rng.random() < 0.5
    t = rng.integers(0, max(2, n // 4), n).astype(float) if tied_times else rng.exponential(
        size=n)
    risk = rng.integers(0, 4, n).astype(float) if tied_risks else rng.normal(size=n)
    e = (rng.random(n) < rng.choice([0.0, 0.05, 0.4, 1.0])).astype(float)
    return t, e, risk


def same(a: float, b: float) -> bool:
    return bool(np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-12


@pytest.mark.parametrize("n", [1, 2, 3, 10, 100, 1000, 20_000])
def test_concordance_is_lifelines_concordance_index(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(30 if n <= 1000 else 3):
        t, e, risk = random_data(rng, n)
        assert same(ph.concordance(t, e, risk), lifelines_c(t, e, risk))


def test_concordance_counts_the_pairs_one_by_one() -> None:
    rng = np.random.default_rng(9)
    for _ in range(300):
        t, e, risk = random_data(rng, int(rng.integers(1, 40)))
        assert same(ph.concordance(t, e, risk), brute_force(t, e, risk))


@pytest.mark.parametrize(("t", "e", "risk", "expected"), [
    ([1.0, 2, 3], [0, 0, 0], [1.0, 2, 3], float("nan")),  # all censored: no pair
    ([3.0, 1, 2], [1, 0, 0], [1.0, 2, 3], float("nan")),  # one event, the last: no pair
    ([1.0, 2, 3], [1, 0, 0], [3.0, 2, 1], 1.0),  # one event, first and riskiest
    ([1.0, 2, 3], [1, 0, 0], [1.0, 2, 3], 0.0),
    ([2.0, 2, 2], [1, 0, 0], [1.0, 2, 1], 0.25),  # censored at the event's time: compared
    ([2.0, 2, 5], [1, 1, 0], [1.0, 2, 3], 0.0),  # tied events: not compared with each other
    ([2.0, 2, 2], [1, 1, 1], [1.0, 2, 3], float("nan")),  # all events at one time
    ([1.0, 2, 3, 4], [1, 1, 1, 1], [5.0, 5, 5, 5], 0.5),  # one risk: every pair tied
])
def test_concordance_edge_cases(t: list[float], e: list[float], risk: list[float],
                                expected: float) -> None:
    arrays = np.asarray(t), np.asarray(e, dtype=float), np.asarray(risk)
    assert same(ph.concordance(*arrays), expected)
    assert same(lifelines_c(*arrays), expected)


def test_concordance_of_a_fit_is_lifelines_own() -> None:
    x, t, e = dummies(n=3000)
    reference = lifelines_fit(x, t, e)
    risk = x @ reference.params_.to_numpy()
    assert ph.concordance(t, e, risk) == pytest.approx(reference.concordance_index_,
                                                       abs=1e-12)


def test_concordance_refuses_missing_values() -> None:
    t, e, risk = continuous()[1], continuous()[2], np.arange(50.0)
    risk[3] = np.nan
    with pytest.raises(ValueError, match="missing"):
        ph.concordance(t, e, risk)
