"""The Pitman fit finds the likelihood's maximum whenever there is one, and says there is none
only when the likelihood grows towards the edge of the model. Both are checked against an
independent likelihood (plain sums over the classes, maximised by brute force), not against
the estimator's own formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import optimize, special

from strongroom.privacy import estimators


def skewed_table(seed: int, rows: int) -> np.ndarray:
    """Class sizes of a table shaped like a cohort's quasi-identifiers: five columns (2, 30,
    12, 22, 10 values) with Zipf-like marginals. Seed 15 at 10,000 rows is one the previous
    fit (Newton's method from Hoshino's moment start and four fixed starts) found nothing on."""
    rng = np.random.default_rng(seed)
    code = np.zeros(rows, dtype=np.int64)
    for card in (2, 30, 12, 22, 10):
        weights = 1.0 / np.arange(1, card + 1) ** rng.uniform(0.5, 2.0)
        code = code * card + rng.choice(card, rows, p=weights / weights.sum())
    return np.unique(code, return_counts=True)[1]


def log_likelihood(sizes: np.ndarray, theta: float, alpha: float) -> float:
    """Pitman's sampling formula, by its definition: Π(θ + iα) · Π (1−α)_{j−1} / (θ+1)_{n−1}."""
    if not (0 < alpha < 1 and theta > -alpha):
        return -math.inf
    u, n = sizes.size, int(sizes.sum())
    i = np.arange(1, u)
    seats = special.gammaln(sizes - alpha) - special.gammaln(1 - alpha)
    return float(np.log(theta + i * alpha).sum() + seats.sum()
                 - (special.gammaln(theta + n) - special.gammaln(theta + 1)))


def best_theta(sizes: np.ndarray, alpha: float) -> float:
    """max over θ of the log-likelihood at this α, by a bounded search on log(θ + α)."""
    found = optimize.minimize_scalar(
        lambda s: -log_likelihood(sizes, math.exp(s) - alpha, alpha),
        bounds=(math.log(alpha) - 20, math.log(1e9)), method="bounded",
        options={"xatol": 1e-9})
    return float(-found.fun)


def test_the_maximum_is_found_where_the_old_starting_points_found_nothing() -> None:
    sizes = skewed_table(15, 10_000)
    fit = estimators.pitman(estimators.Histogram.of(sizes), 1_000_000)
    assert fit.converged and fit.uniques is not None, fit.note
    theta, alpha = fit.parameters["theta"], fit.parameters["alpha"]
    at = log_likelihood(sizes, theta, alpha)
    # a maximum: every nearby point is lower …
    for d_theta, d_alpha in ((0.01, 0), (-0.01, 0), (0, 0.005), (0, -0.005),
                             (0.01, 0.005), (-0.01, -0.005)):
        assert log_likelihood(sizes, theta * (1 + d_theta), alpha + d_alpha) < at
    # … and the best of the whole profile, α from 0.001 to 0.999, is no higher
    profile = [best_theta(sizes, a) for a in np.linspace(0.001, 0.999, 60)]
    assert max(profile) <= at + 1e-6
    # the score equations hold there
    polished = optimize.minimize(lambda x: -log_likelihood(sizes, x[0], x[1]),
                                 np.array([theta, alpha]), method="Nelder-Mead",
                                 options={"xatol": 1e-9, "fatol": 1e-12})
    assert -polished.fun <= at + 1e-6


def test_no_estimate_only_when_the_likelihood_grows_towards_the_edge() -> None:
    """Three uniques beside a hundred classes of fifty: fewer uniques than any (θ, α > 0)
    explains, so the likelihood is highest as α → 0 (Ewens's model, outside Pitman's)."""
    sizes = np.array([1] * 3 + [50] * 100)
    fit = estimators.pitman(estimators.Histogram.of(sizes), 1_000_000)
    assert not fit.converged and fit.uniques is None
    assert "no interior maximum" in fit.note and "α → 0" in fit.note
    profile = [best_theta(sizes, a) for a in (1e-6, 1e-4, 0.01, 0.1, 0.3, 0.6, 0.9)]
    assert all(a > b for a, b in itertools.pairwise(profile))  # falls all the way


def test_the_fit_is_the_same_from_any_order_and_fast_on_cohort_shapes() -> None:
    """The fit depends on the histogram alone; a cohort-sized table is fitted well within the
    report's budget (timed in benchmarks/, not here: this only checks it converges)."""
    sizes = skewed_table(2, 200_000)
    shuffled = np.random.default_rng(0).permutation(sizes)
    one = estimators.pitman(estimators.Histogram.of(sizes), 24_000_000)
    other = estimators.pitman(estimators.Histogram.of(shuffled), 24_000_000)
    assert one.converged and one == other
    assert math.isclose(
        log_likelihood(sizes, one.parameters["theta"], one.parameters["alpha"]),
        max(best_theta(sizes, a) for a in np.linspace(0.01, 0.99, 50)), rel_tol=0, abs_tol=5)


def test_any_histogram_gets_a_maximum_or_a_reason_never_an_error() -> None:
    """Random small samples, from nearly all unique to a few large classes: the fit either
    reports a point no neighbour beats, or no number with a reason; when the reason is the
    likelihood growing towards α → 0, the independent profile falls all the way too (class
    sizes of 1 + a negative binomial are mostly like that: too even for Pitman's model)."""
    rng = np.random.default_rng(20)
    reported = edge = 0
    for _ in range(150):
        classes = int(rng.integers(2, 400))
        sizes = 1 + rng.negative_binomial(rng.uniform(0.05, 5), rng.uniform(0.02, 0.98), classes)
        fit = estimators.pitman(estimators.Histogram.of(sizes), 10 * int(sizes.sum()))
        if not fit.converged:
            assert fit.uniques is None and fit.note
            if "α → 0" in fit.note:
                edge += 1
                profile = [best_theta(sizes, a) for a in (1e-6, 0.01, 0.3, 0.9)]
                assert all(a > b for a, b in itertools.pairwise(profile)), profile
            continue
        if not fit.parameters:  # no sample uniques: 0 by construction, no fit
            assert fit.uniques == 0 and "no sample uniques" in fit.note
            continue
        reported += 1
        theta, alpha = fit.parameters["theta"], fit.parameters["alpha"]
        assert 0 < alpha < 1 and theta > -alpha
        at = log_likelihood(sizes, theta, alpha)
        for d_theta, d_alpha in ((1e-3, 0), (-1e-3, 0), (0, 1e-4), (0, -1e-4)):
            step = abs(theta) * d_theta
            assert log_likelihood(sizes, theta + step, alpha + d_alpha) <= at + 1e-9
    assert reported >= 5 and edge >= 50  # both kinds were met
