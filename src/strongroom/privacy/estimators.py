"""How many people are unique in the population, judged from a sample; and journalist risk.

All estimators read only the sample's class-size histogram: mⱼ classes of size j, u = Σ mⱼ
classes, n = Σ j·mⱼ rows, drawn from a population of N (sampling fraction π = n/N). They follow
the definitions Dankar, El Emam, Neisa and Roffey (2012) compared, which ARX also implements:

- **Pitman** (Hoshino 2001): the class sizes follow Pitman's sampling formula with parameters
  (θ, α), fitted by maximum likelihood: the likelihood's maximum is located by its profile
  over α (closed forms in digamma and log-gamma), then the score equations are solved from
  there (Powell's hybrid method) to full precision; population uniques ≈ Γ(θ+1)/Γ(θ+α) · N^α.
  No number when the likelihood has no interior maximum (it grows towards α → 0 or 1).
- **Zayatz** (1991): the share of sample uniques that are population uniques,
  P(F=1 | f=1) ∝ P(f=1 | F=1)·P(F=1), with the sample's class-size distribution standing in for
  the population's and hypergeometric P(f=1 | F=j); population uniques = m₁·P(F=1 | f=1)/π.
- **SNB** (Chen and Keller-McNulty 1998): population class sizes are 1 + NegBin(α, β); K, the
  number of classes in the population, by Shlosser's estimator (Haas et al. 1995, D̂_Sh3); α, β
  solve E[m₁] = m₁ and E[m₂] = m₂ under Bernoulli sampling; population uniques = K·β^α.
- **Dankar's rule**: π ≤ 0.1 — Pitman if it converges, else Zayatz; π > 0.1 — the smaller of
  Zayatz and SNB, Zayatz alone if SNB does not converge.

An estimator that does not converge, or converges outside its model's range, says so and
gives no number: a failed fit is never reported as 0 uniques. (With no sample uniques every
estimate is 0 by construction, as in ARX, and says why.)

Journalist risk uses E[1/F | f] for a class of sample size f under Benedetti and Franconi's
model, F − f ~ NegBin(f, π) (the model sdcMicro and μ-Argus use). With w = πt/(1 − (1−π)t),
E[1/F | f] = π ∫₀¹ w^{f−1} / (π + (1−π)w) dw, whose integrals obey a two-term recurrence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

RESIDUAL = 1e-8  # relative residual of the fitted equations that counts as converged
MAX_EVALUATIONS = 200  # per fit: a fit that needs more is not converging
RECURRENCE_CAP = 20_000  # beyond this class size, E[1/F|f] by its asymptotic expansion


@dataclass(frozen=True)
class Histogram:
    """The sample's class sizes j and how many classes have each size (mⱼ)."""

    sizes: np.ndarray  # int64, ascending, distinct
    classes: np.ndarray  # int64, mⱼ

    @classmethod
    def of(cls, class_sizes: np.ndarray) -> Histogram:
        sizes, counts = np.unique(np.asarray(class_sizes, dtype=np.int64), return_counts=True)
        return cls(sizes, counts.astype(np.int64))

    def count(self, size: int) -> int:
        hit = np.searchsorted(self.sizes, size)
        return int(self.classes[hit]) if hit < self.sizes.size and self.sizes[hit] == size else 0

    @property
    def rows(self) -> int:
        return int((self.sizes * self.classes).sum())

    @property
    def total(self) -> int:
        return int(self.classes.sum())


@dataclass(frozen=True)
class Estimate:
    """One model's estimate of population uniques, or why there is none."""

    model: str
    uniques: float | None  # None: no estimate (never 0 for a failed fit)
    converged: bool
    note: str = ""
    parameters: dict[str, float] = field(default_factory=dict)

    def to_json(self, population: int) -> dict[str, Any]:
        share = None if self.uniques is None else self.uniques / population
        return {"model": self.model, "uniques": self.uniques, "proportion": share,
                "converged": self.converged, "note": self.note,
                "parameters": dict(self.parameters)}


def _no_uniques(model: str) -> Estimate:
    return Estimate(model, 0.0, True, "no sample uniques, so none are estimated in the "
                                      "population")


# -- Pitman ---------------------------------------------------------------------------------

def pitman(hist: Histogram, population: int) -> Estimate:
    """Hoshino's Pitman-model estimate of the population uniques."""
    m1, u, n = hist.count(1), hist.total, hist.rows
    if m1 == 0:
        return _no_uniques("pitman")
    if u == n:
        return Estimate("pitman", None, False, "every sample class is unique: the Pitman "
                        "likelihood has no maximum (α tends to 1)")
    if u == 1:
        return Estimate("pitman", None, False, "the sample is one class: the Pitman "
                        "likelihood has no maximum")
    i = np.arange(1, u, dtype=np.float64)
    many = hist.sizes > 1
    sizes, counts = hist.sizes[many].astype(np.float64), hist.classes[many].astype(np.float64)

    def score(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta, alpha = float(x[0]), float(x[1])
        d = theta + i * alpha
        inv, inv2 = 1.0 / d, 1.0 / (d * d)
        f1 = inv.sum() - (special.digamma(theta + n) - special.digamma(theta + 1.0))
        f2 = (i * inv).sum() - (counts * (special.digamma(sizes - alpha)
                                          - special.digamma(1.0 - alpha))).sum()
        j11 = -inv2.sum() + _trigamma(theta + 1.0) - _trigamma(theta + n)
        j12 = -(i * inv2).sum()
        j22 = -(i * i * inv2).sum() + (counts * (_trigamma(sizes - alpha)
                                                 - _trigamma(1.0 - alpha))).sum()
        return np.array([f1, f2]), np.array([[j11, j12], [j12, j22]])

    def valid(x: np.ndarray) -> bool:
        return bool(0.0 < x[1] < 1.0 and x[0] > -x[1])

    def size(x: np.ndarray) -> np.ndarray:
        """How large each equation's terms are: its residual is judged against them."""
        theta, alpha = float(x[0]), float(x[1])
        inv = 1.0 / (theta + i * alpha)
        return np.array([abs(inv.sum()) + abs(special.digamma(theta + n)
                                              - special.digamma(theta + 1.0)),
                         abs((i * inv).sum()) + abs((counts * (special.digamma(sizes - alpha)
                                                               - special.digamma(1.0 - alpha))
                                                     ).sum())])

    likelihood = _PitmanLikelihood(hist)
    found = likelihood.maximum()
    if isinstance(found, str):
        return Estimate("pitman", None, False, found)
    theta, alpha = found
    polished = _solve(score, np.array([theta, alpha]), valid, size)  # the score's own root
    if polished is not None and likelihood.log(*polished) >= likelihood.log(theta, alpha) - 1e-6:
        theta, alpha = float(polished[0]), float(polished[1])
    log_uniques = (special.gammaln(theta + 1.0) - special.gammaln(theta + alpha)
                   + alpha * math.log(population))
    uniques = math.exp(log_uniques) if log_uniques < 700 else math.inf
    if not 0.0 <= uniques <= population:
        return Estimate("pitman", None, False, f"the fit (θ={theta:.4g}, α={alpha:.4g}) "
                        f"implies {uniques:.3g} uniques, outside 0…N",
                        {"theta": theta, "alpha": alpha})
    return Estimate("pitman", uniques, True, "", {"theta": theta, "alpha": alpha})


class _PitmanLikelihood:
    """Pitman's sampling formula's log-likelihood in closed form (digamma and log-gamma of
    x = θ/α, so each evaluation costs the number of distinct class sizes, not of classes):

    L(θ, α) = Σᵢ₌₁^{u−1} log(θ + iα) − log Γ(θ+n)/Γ(θ+1) + Σⱼ mⱼ log Γ(j−α)/Γ(1−α),
    Σᵢ log(θ + iα) = (u−1) log α + log Γ(x+u)/Γ(x+1).

    Its maximum is found by the profile over α: for each α the θ-equation has exactly one
    sign change between θ → −α (where it tends to +∞) and θ → ∞ (where it tends to
    (u−n)/θ < 0), found by bracketing; the profile is scanned over α on a logit grid and its
    best interior point refined. A profile highest at the grid's end means the likelihood
    grows towards α → 0 or α → 1: there is no interior maximum, and that is said.
    """

    GRID = np.linspace(-11.0, 11.0, 45)  # logit α: α from 1.7e-5 to 1 − 1.7e-5

    def __init__(self, hist: Histogram):
        self.u, self.n = float(hist.total), float(hist.rows)
        self.sizes = hist.sizes.astype(np.float64)
        self.counts = hist.classes.astype(np.float64)

    def log(self, theta: float, alpha: float) -> float:
        if not (0.0 < alpha < 1.0 and theta > -alpha):
            return -math.inf
        x = theta / alpha
        gl = special.gammaln
        value = ((self.u - 1.0) * math.log(alpha) + gl(x + self.u) - gl(x + 1.0)
                 - gl(theta + self.n) + gl(theta + 1.0)
                 + float((self.counts * (gl(self.sizes - alpha) - gl(1.0 - alpha))).sum()))
        return float(value) if math.isfinite(value) else -math.inf

    def theta_at(self, alpha: float) -> float | None:
        """The θ maximising L at this α (None: L grows without end as θ grows)."""
        u, n, psi = self.u, self.n, special.digamma

        def equation(s: float) -> float:  # ∂L/∂θ at θ = e^s − α
            theta = math.exp(s) - alpha
            x = theta / alpha
            return float((psi(x + u) - psi(x + 1.0)) / alpha - psi(theta + n)
                         + psi(theta + 1.0))

        low, high = math.log(alpha) - 30.0, math.log(1e15)
        with np.errstate(all="ignore"):
            at_low, at_high = equation(low), equation(high)
            if not (at_low > 0.0 and math.isfinite(at_high)) or at_high >= 0.0:
                return None
            s = optimize.brentq(equation, low, high, xtol=1e-13, rtol=1e-14, maxiter=200)
        return math.exp(s) - alpha

    def profile(self, logit: float) -> float:
        alpha = float(special.expit(logit))
        theta = self.theta_at(alpha)
        return -math.inf if theta is None else self.log(theta, alpha)

    def maximum(self) -> tuple[float, float] | str:
        """(θ, α) at the likelihood's interior maximum, or why there is none."""
        values = np.array([self.profile(a) for a in self.GRID])
        if not np.isfinite(values).any():
            return "the Pitman likelihood grows without end as θ grows: no maximum"
        best = int(np.argmax(values))
        if best in (0, self.GRID.size - 1):
            end = "0" if best == 0 else "1"
            return (f"the Pitman likelihood grows towards α → {end}: it has no interior "
                    f"maximum, so the model does not fit this sample")
        def lower(a: float) -> float:  # minimised: off the model's range counts as worst
            value = self.profile(a)
            return -value if math.isfinite(value) else 1e300

        refined = optimize.minimize_scalar(lower,
                                           bounds=(self.GRID[best - 1], self.GRID[best + 1]),
                                           method="bounded", options={"xatol": 1e-10})
        logit = (float(refined.x) if refined.fun < 1e300 and -refined.fun >= values[best]
                 else float(self.GRID[best]))
        for candidate in (logit, float(self.GRID[best])):  # the grid's best is finite
            alpha = float(special.expit(candidate))
            theta = self.theta_at(alpha)
            if theta is not None:
                return theta, alpha
        return "the Pitman likelihood's maximum could not be located"


def _trigamma(x: float | np.ndarray) -> float | np.ndarray:
    """ψ′(x) for x > 0, fast at any size (scipy's polygamma crawls for huge arguments):
    the recurrence ψ′(x) = ψ′(x+1) + 1/x² up to 16, then the asymptotic series."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~(x > 0)  # also NaN: outside the domain the fit is wandering, say so with NaN
    x = np.where(bad, 16.0, x)
    out = np.zeros_like(x)
    small = x < 16.0
    while small.any():  # at most 16 rounds
        out[small] += 1.0 / (x[small] * x[small])
        x = np.where(small, x + 1.0, x)
        small = x < 16.0
    inv = 1.0 / x
    inv2 = inv * inv
    out += inv + inv2 / 2 + inv * inv2 * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))
    out[bad] = np.nan
    return out if out.ndim else float(out)


def _solve(fun: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], start: np.ndarray,
           valid: Callable[[np.ndarray], bool], size: Callable[[np.ndarray], np.ndarray]
           ) -> np.ndarray | None:
    """A root of ``fun`` from ``start`` that ``valid`` accepts, its residuals at most
    ``RESIDUAL`` of the size of their equations' terms; or None."""
    with np.errstate(all="ignore"):
        try:
            result = optimize.root(fun, start, jac=True, method="hybr",
                                   options={"maxfev": MAX_EVALUATIONS})
        except (ValueError, FloatingPointError, ZeroDivisionError):
            return None
        if not np.all(np.isfinite(result.x)) or not valid(result.x):
            return None
        residual, _ = fun(result.x)
        bound = RESIDUAL * np.maximum(size(result.x), 1.0)
    if not np.all(np.isfinite(residual)) or np.any(np.abs(residual) > bound):
        return None
    return np.asarray(result.x, dtype=np.float64)


# -- Zayatz ---------------------------------------------------------------------------------

def zayatz(hist: Histogram, population: int) -> Estimate:
    """Zayatz's estimate: the sample uniques expected to be population uniques, over π."""
    m1, n = hist.count(1), hist.rows
    if m1 == 0:
        return _no_uniques("zayatz")
    fraction = n / population
    from scipy.stats import hypergeom  # here: scipy.stats takes ~1.5 s to import, every CLI paid it

    once = hypergeom.pmf(1, population, hist.sizes, n)  # P(f=1 | F=j)
    weighted = float((hist.classes * once).sum())
    conditional = m1 * (n / population) / weighted  # P(F=1 | f=1), common 1/u cancels
    return Estimate("zayatz", m1 * conditional / fraction, True, "",
                    {"p_unique_given_sample_unique": conditional})


# -- SNB ------------------------------------------------------------------------------------

def shlosser(hist: Histogram, fraction: float) -> float:
    """The number of classes in the population: Shlosser's estimator in the form Haas et
    al. (1995) call D̂_Sh3 (the form ARX uses), which they found the most accurate:

    d + m₁ · [Σ j q² (1−q²)^{j−1} mⱼ / Σ ((1−q²)^j − (1−q)^j) mⱼ]
          · [Σ (1−q)^j mⱼ / Σ j q (1−q)^{j−1} mⱼ]²
    """
    if fraction >= 1.0:
        return float(hist.total)
    q = fraction
    j = hist.sizes.astype(np.float64)
    m = hist.classes.astype(np.float64)
    miss = np.exp(j * math.log1p(-q))  # (1−q)^j
    miss_sq = np.exp(j * math.log1p(-q * q))  # (1−q²)^j
    first = (j * q * q * miss_sq / (1 - q * q) * m).sum() / ((miss_sq - miss) * m).sum()
    second = (miss * m).sum() / (j * q * miss / (1 - q) * m).sum()
    return float(hist.total + hist.count(1) * first * second**2)


def snb(hist: Histogram, population: int, classes: float | None = None) -> Estimate:
    """The slide negative binomial model's estimate of the population uniques.

    ``classes``: the number of classes in the population when it is known (else Shlosser's
    estimate, on which the result depends most).
    """
    m1, m2, n = hist.count(1), hist.count(2), hist.rows
    if m1 == 0:
        return _no_uniques("snb")
    if m2 == 0:
        return Estimate("snb", None, False, "the SNB model is fitted to the classes of size 1 "
                        "and 2, and there are none of size 2")
    f = n / population
    k = classes if classes is not None else shlosser(hist, f)

    def expected(alpha: float, beta: float) -> tuple[float, float]:
        d = (1 - f) * (1 - beta)
        ones = k * f * (beta / (1 - d)) ** alpha * (1 + alpha * d / (1 - d))
        twos = (k * alpha * beta**alpha * f * f * (1 - beta) * (2 - (1 - alpha) * d)
                / (2 * (1 - d) ** (alpha + 2)))
        return ones, twos

    def equations(x: np.ndarray) -> np.ndarray:
        ones, twos = expected(math.exp(x[0]), float(special.expit(x[1])))
        return np.array([ones / m1 - 1.0, twos / m2 - 1.0])

    for a0, b0 in ((0.0, 0.0), (0.0, -3.0), (2.0, -5.0), (-2.0, 2.0), (3.0, 3.0)):
        with np.errstate(all="ignore"):
            try:
                result = optimize.root(equations, np.array([a0, b0]), method="hybr",
                                       options={"maxfev": MAX_EVALUATIONS})
            except (ValueError, OverflowError, ZeroDivisionError):
                continue
            residual = equations(result.x) if np.all(np.isfinite(result.x)) else None
        if residual is None or not np.all(np.isfinite(residual)) or \
                np.any(np.abs(residual) > RESIDUAL):
            continue
        alpha, beta = math.exp(result.x[0]), float(special.expit(result.x[1]))
        uniques = k * beta**alpha
        if not 0.0 <= uniques <= population:
            continue
        return Estimate("snb", uniques, True, "", {"alpha": alpha, "beta": beta, "K": k})
    return Estimate("snb", None, False, "no (α, β) with α > 0 and 0 < β < 1 reproduces the "
                    "numbers of classes of size 1 and 2")


# -- the decision rule ----------------------------------------------------------------------

@dataclass(frozen=True)
class Uniqueness:
    """Every model's estimate and the one Dankar et al.'s rule picks."""

    estimates: dict[str, Estimate]
    chosen: str | None  # the model the rule picks; None when none gives a number
    uniques: float | None


def population_uniqueness(hist: Histogram, population: int) -> Uniqueness:
    """Pitman, Zayatz and SNB, and the estimate Dankar et al.'s decision rule picks."""
    estimates = {e.model: e for e in (pitman(hist, population), zayatz(hist, population),
                                      snb(hist, population))}
    fraction = hist.rows / population
    if fraction <= 0.1:
        order = ["pitman", "zayatz"]
    else:
        snb_value, zayatz_value = estimates["snb"].uniques, estimates["zayatz"].uniques
        prefer_snb = (snb_value is not None and zayatz_value is not None
                      and snb_value < zayatz_value)
        order = ["snb", "zayatz"] if prefer_snb else ["zayatz", "snb"]
    for model in order:
        if estimates[model].uniques is not None:
            return Uniqueness(estimates, model, estimates[model].uniques)
    return Uniqueness(estimates, None, None)


# -- journalist risk --------------------------------------------------------------------------

def inverse_population_size(sizes: np.ndarray, fraction: float) -> np.ndarray:
    """E[1/F | f] for each sample class size f, sampling fraction π (1/f when π = 1)."""
    f = np.asarray(sizes, dtype=np.int64)
    if fraction >= 1.0:
        return 1.0 / f
    p, q = fraction, 1.0 - fraction
    top = int(min(f.max(initial=1), RECURRENCE_CAP))
    integrals = _integrals(top, p, q)
    out = np.empty(f.size, dtype=np.float64)
    small = f <= top
    out[small] = p * integrals[f[small] - 1]
    big = f[~small].astype(np.float64)
    out[~small] = p / big * (1.0 + q / big)  # error O(1/f²)
    return out


def _integrals(top: int, p: float, q: float) -> np.ndarray:
    """I_f = ∫₀¹ w^{f−1}/(p + qw) dw for f = 1 … top, recurring in the stable direction.

    q·I_{f+1} + p·I_f = 1/f: forwards errors scale by p/q, backwards by q/p.
    """
    out = np.empty(top, dtype=np.float64)
    if p <= 0.5:
        value = -math.log(p) / q
        for f in range(1, top + 1):
            out[f - 1] = value
            value = (1.0 / f - p * value) / q
        return out
    start = top + 2_000
    value = (1.0 + q / start) / start  # I_f ≈ (1 + q/f)/f for large f
    for f in range(start - 1, 0, -1):
        value = (1.0 / f - q * value) / p
        if f <= top:
            out[f - 1] = value
    return out
