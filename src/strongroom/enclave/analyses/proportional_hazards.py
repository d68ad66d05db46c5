"""Cox proportional hazards (Efron's ties) and Harrell's C, vectorised in NumPy.

lifelines' CoxPHFitter loops in Python over the distinct times (17 s at 500,000 rows whose
times are mostly distinct, 3.5 s when they are whole days) and its concordance over the rows
(3 to 5 s); these take about 0.25 s and 0.2 s, with a few passes over whole arrays each.

``fit`` is lifelines' estimator: Efron's partial likelihood maximised by Newton–Raphson on
standardised covariates (to within 1e-8 of lifelines run to its maximum; lifelines' default
stopping rule leaves it ~1e-6 short). It fails closed: every condition on which lifelines
warns that its fit did not converge (the enclave refused those) raises NotConverged, and so
do a covariate ranked as the times are and an estimate only separation allows (lifelines
gives up on both). Its steps are halved when the log-likelihood falls, which lifelines' are
not: data on which lifelines' first step ran off to infinity, but which have an ordinary
maximum, are fitted. ``concordance`` is ``lifelines.utils.concordance_index(t, -risk, e)``
exactly: the same pairs, the same ties. tests/unit/test_proportional_hazards.py holds both
to lifelines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from strongroom.enclave.results import FloatArray

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
Z_95 = 1.959963984540054  # the normal quantile of a 95 % interval

# lifelines' thresholds (utils.check_low_var, CoxPHFitter._newton_raphson_for_efron_model)
LOW_VARIANCE = 1e-4  # a covariate's sample variance below this: "may harm convergence"
R_PRECISION = 1e-9  # a relative change in log-likelihood below this is "converged"…
LARGE_STEP = 0.1  # …but not with a Newton step still this long: "non-unique solutions"
NEAR_ZERO = 1e-4  # a log-likelihood this close to 0 with a step over 1: "complete separation"
SEPARATION_CORRELATION = 0.99  # utils.check_complete_separation_close_to_perfect_correlation
SEPARATION_SAMPLE = 500  # …which it computes on 500 rows
# this module's own: Newton steps are full steps, halved while the log-likelihood falls
PRECISION = 1e-9  # converged when the Newton step (standardised scale) is shorter than this
MAX_STEPS = 50  # Newton from 0 takes 4 to 8 steps on a model that has a maximum
MAX_HALVINGS = 20  # lifelines gives up when its step size falls to 1e-5 (about 2⁻¹⁷)
# Newton reaches maxima lifelines' damped steps never do: beyond about 20 per standard
# deviation (a hazard ratio of e²⁰ per SD) its fits failed in trials, and were refused
LARGEST = 20.0


class NotConverged(Exception):  # noqa: N818  (an outcome, as strongroom.errors' are)
    """The Cox model has no (unique, finite) maximum, or the data could not be fitted; the
    message says why, for the custodian: the researcher's refusal is a fixed text."""


@dataclass(frozen=True)
class CoxFit:
    """A converged fit on the covariates' own scale: ``variance`` is the inverse of the
    negative Hessian of ``log_likelihood`` (Efron's partial log-likelihood) at ``beta``."""

    beta: FloatArray
    variance: FloatArray
    log_likelihood: float
    steps: int  # Newton steps taken

    @property
    def se(self) -> FloatArray:
        return np.sqrt(np.diag(self.variance))

    @property
    def hazard_ratio(self) -> FloatArray:
        return np.exp(self.beta)

    @property
    def ci_low(self) -> FloatArray:
        return np.exp(self.beta - Z_95 * self.se)

    @property
    def ci_high(self) -> FloatArray:
        return np.exp(self.beta + Z_95 * self.se)

    @property
    def p(self) -> FloatArray:
        """Two-sided Wald p-values, β/se against the normal (lifelines: χ²₁ of its square)."""
        return np.array([math.erfc(abs(z) / math.sqrt(2)) for z in self.beta / self.se])

    def table(self) -> FloatArray:
        """One row per covariate: hazard ratio, 95 % limits, p (lifelines' summary columns
        exp(coef), exp(coef) lower 95%, exp(coef) upper 95%, p)."""
        return np.column_stack([self.hazard_ratio, self.ci_low, self.ci_high, self.p])


def fit(x: FloatArray, t: FloatArray, e: FloatArray) -> CoxFit:
    """Cox's model of times ``t`` with events ``e`` (1, else 0: censored) on the columns of
    ``x`` (n × p, best centred), by Newton–Raphson from β = 0 with step halving.

    As lifelines, the covariates are standardised for the fit (its thresholds on the step's
    length are on that scale) and the estimates scaled back; a fit lifelines would warn about
    raises NotConverged instead (see the module's constants)."""
    x, t, happened = _checked(x, t, e)
    z = np.array(x, order="F")  # a copy (never the caller's), by columns: contiguous passes
    z -= z.mean(axis=0)
    variances = np.einsum("ij,ij->j", z, z) / (len(z) - 1)
    check_variances(variances)
    rows = sampled_rows(len(t))
    check_ranks(rank_correlations(z, t) if rows is None else rank_correlations(z[rows], t[rows]))
    scale = np.sqrt(variances)
    z /= scale
    return maximised(_Efron(z, t, happened), scale, lambda: _separation_hints(x, happened))


Evaluation = Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]
"""Efron's log-likelihood, its gradient and information at β (standardised), wherever the
rows are summed (here: :class:`_Efron`; on an engine's executors: cox_sums.py)."""


def check_variances(variances: FloatArray) -> None:
    """lifelines' low-variance warning as a refusal: the covariates' sample variances."""
    low = np.flatnonzero(~(variances >= LOW_VARIANCE))
    if len(low):
        raise NotConverged(f"column(s) {low.tolist()} have very low variance (below "
                           f"{LOW_VARIANCE}): constant, or almost")


def check_ranks(rho: FloatArray) -> None:
    """A covariate ranked as the times are (:func:`rank_correlations`) is separation."""
    ranked = np.flatnonzero(np.abs(rho) >= SEPARATION_CORRELATION)
    if len(ranked):
        raise NotConverged(f"column(s) {ranked.tolist()} ranked almost as the times are "
                           f"(|Spearman's ρ| ≥ {SEPARATION_CORRELATION}): separation")


def maximised(evaluate: Evaluation, scale: FloatArray, hints: Callable[[], list[str]]
              ) -> CoxFit:
    """Newton's maximum of ``evaluate`` (on covariates divided by ``scale``), scaled back;
    NotConverged (its reason, then ``hints``) where there is none to give."""
    try:
        beta, information, loglik, steps = _newton(evaluate, len(scale))
        if np.abs(beta).max() > LARGEST:
            raise NotConverged(f"a log hazard ratio of {np.abs(beta).max():.3g} per standard "
                               "deviation: separation in all but name")
        variance = _inverse(information) / np.outer(scale, scale)
    except NotConverged as error:
        raise NotConverged("; ".join([str(error), *hints()])) from None
    return CoxFit(beta / scale, variance, loglik, steps)


def _checked(x: FloatArray, t: FloatArray, e: FloatArray
             ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    x, t, e = (np.asarray(a, dtype=np.float64) for a in (x, t, e))
    if x.ndim != 2 or t.ndim != 1 or e.shape != t.shape or len(x) != len(t) or x.shape[1] < 1:
        raise ValueError("x must be n × p (p ≥ 1), t and e of length n")
    if not (np.isfinite(x).all() and np.isfinite(t).all()):
        raise NotConverged("a covariate or time is missing or infinite")
    if not np.isin(e, (0.0, 1.0)).all():
        raise NotConverged("an event is neither 0 nor 1")
    if len(t) < 2:
        raise NotConverged("fewer than two rows")
    happened = e == 1
    if not happened.any():
        raise NotConverged("no row has an event")
    return x, t, happened


class _Efron:
    """Efron's partial log-likelihood, its gradient and information (minus its Hessian) at
    any β, in O(n·p²) per evaluation. Precomputes what does not depend on β.

    With event times u_g (d_g events tied at each), rows at risk R_g = {i: tᵢ ≥ u_g}, the
    tied events D_g, w = exp(zβ), S_k = Σ_{R_g} w z^⊗k and D_k = Σ_{D_g} w z^⊗k, each tie
    l = 0…d_g−1 (a = l/d_g) has φ = S₀ − a·D₀, mean m = (S₁ − a·D₁)/φ and second moment
    (S₂ − a·D₂)/φ; ℓ = Σ_events zβ − Σ log φ, ∇ℓ = Σ_events z − Σ m and the information is
    Σ (S₂ − a·D₂)/φ − Σ m mᵀ. Its first sum is never formed per time: with c_g = Σ_l 1/φ and
    c'_g = Σ_l a/φ it is Σᵢ wᵢ (Σ_{g: u_g ≤ tᵢ} c_g) zᵢzᵢᵀ − Σ_events wᵢ c'_{g(i)} zᵢzᵢᵀ, two
    weighted Gram matrices."""

    def __init__(self, z: FloatArray, t: FloatArray, happened: npt.NDArray[np.bool_]) -> None:
        """``z`` standardised. The rows stay in their order: sorted by time, the bins a pass
        adds to come in runs, each addition waiting for the last (slower, not faster)."""
        order = np.argsort(t)
        run, starts, ends = _runs(t[order])
        events = np.zeros(len(t) + 1, dtype=np.int64)  # events before each sorted row
        np.cumsum(happened[order], out=events[1:])
        is_event_time = events[ends] > events[starts]
        self.groups = int(is_event_time.sum())  # the event times u_g
        latest = np.empty(len(t), dtype=np.int64)  # the latest u_g ≤ tᵢ (-1: none)
        latest[order] = (np.cumsum(is_event_time) - 1)[run]
        # 1 + that: 0 for a row never at risk, whose sums go to a bin dropped
        self.last = latest + 1
        self.z = z
        self.z_events = np.asfortranarray(z[happened])
        self.time_of_event = latest[happened]
        tied = np.bincount(self.time_of_event, minlength=self.groups)
        self.tie = np.repeat(np.arange(self.groups), tied)  # each event's time, ascending
        first = np.cumsum(tied) - tied
        self.a = (np.arange(len(self.tie)) - first[self.tie]) / tied[self.tie]
        self.z_events_sum = self.z_events.sum(axis=0)

    def __call__(self, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        """ℓ, ∇ℓ and the information at β (not finite where β is too far out to hold)."""
        with np.errstate(all="ignore"):
            return self._at(beta)

    def _at(self, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        g = self.groups
        eta = self.z @ beta
        shift = float(eta.max())  # exp(η − shift) ≤ 1: no overflow; ℓ adds it back
        w = np.exp(eta - shift)
        eta_events = self.z_events @ beta
        w_events = np.exp(eta_events - shift)
        s0 = _from_the_end(_binned(self.last, w, g + 1)[1:])
        s1 = _from_the_end(self._sums(self.last, w, self.z, g + 1)[1:])
        d0 = _binned(self.time_of_event, w_events, g)
        d1 = self._sums(self.time_of_event, w_events, self.z_events, g)
        a, tie = self.a, self.tie
        phi = s0[tie] - a * d0[tie]
        mean = (s1[tie] - a[:, None] * d1[tie]) / phi[:, None]
        loglik = float(eta_events.sum() - np.log(phi).sum() - len(a) * shift)
        gradient = self.z_events_sum - mean.sum(axis=0)
        inverse = 1 / phi
        c = np.zeros(g + 1)  # a row's Σ c_g over the event times up to its own
        np.cumsum(_binned(tie, inverse, g), out=c[1:])
        c_tied = _binned(tie, a * inverse, g)
        information = (_gram(self.z, w * c[self.last])
                       - _gram(self.z_events, w_events * c_tied[self.time_of_event])
                       - mean.T @ mean)
        return loglik, gradient, information

    @staticmethod
    def _sums(index: IntArray, w: FloatArray, z: FloatArray, g: int) -> FloatArray:
        return np.column_stack([_binned(index, w * z[:, j], g) for j in range(z.shape[1])])


def _binned(index: IntArray, weights: FloatArray, length: int) -> FloatArray:
    """The sum of ``weights`` in each bin (fast: a C loop, as no grouping of rows is)."""
    return np.bincount(index, weights=weights, minlength=length).astype(np.float64, copy=False)


def _from_the_end(sums: FloatArray) -> FloatArray:
    """Sums over the risk sets: of every time from each one on."""
    return np.asarray(np.cumsum(sums[::-1], axis=0)[::-1], dtype=np.float64)


def _gram(z: FloatArray, weights: FloatArray) -> FloatArray:
    return np.asarray((z * weights[:, None]).T @ z, dtype=np.float64)


def _newton(efron: Evaluation, p: int) -> tuple[FloatArray, FloatArray, float, int]:
    """β maximising Efron's likelihood (``p`` covariates), the information and the
    log-likelihood there, and the steps taken. Full Newton steps, halved while the
    log-likelihood falls (or is not finite); lifelines' signs of no maximum raise
    NotConverged."""
    beta = np.zeros(p)
    loglik, gradient, information = efron(beta)
    previous: float | None = None
    if not _finite(loglik, gradient, information):
        raise NotConverged("the log-likelihood, its gradient or Hessian is not finite at 0")
    for step in range(1, MAX_STEPS + 1):
        delta = _solve(information, gradient)
        size = float(np.linalg.norm(delta))
        if size < PRECISION:
            return beta, information, loglik, step - 1
        if abs(loglik) < NEAR_ZERO and size > 1:
            raise NotConverged("the log-likelihood is getting suspiciously close to 0 and the "
                               "step is still large: complete separation")
        if (previous is not None and abs(loglik - previous) < R_PRECISION * abs(previous)
                and size > LARGE_STEP):
            raise NotConverged(f"the log-likelihood stopped rising with a step of {size:.3g} "
                               "still to go: no unique maximum (collinearity or separation)")
        previous = loglik
        length = 1.0
        for _ in range(MAX_HALVINGS + 1):
            trial = beta + length * delta
            found = efron(trial)
            # a fall within rounding is no fall: near the maximum the gain is below it
            if _finite(*found) and found[0] >= loglik - 1e-12 * max(1.0, abs(loglik)):
                break
            length /= 2
        else:
            raise NotConverged("the step halved to nothing without the log-likelihood rising")
        beta = trial
        loglik, gradient, information = found
    raise NotConverged(f"Newton–Raphson did not converge in {MAX_STEPS} steps")


def _finite(loglik: float, gradient: FloatArray, information: FloatArray) -> bool:
    return bool(math.isfinite(loglik) and np.isfinite(gradient).all()
                and np.isfinite(information).all())


def _solve(information: FloatArray, gradient: FloatArray) -> FloatArray:
    """The Newton step, by Cholesky: the information must be positive definite (lifelines
    solves with assume_a="pos" and gives up when it is not)."""
    try:
        lower = np.linalg.cholesky(information)
    except np.linalg.LinAlgError:
        raise NotConverged("the Hessian is singular or not negative definite: collinear "
                           "covariates, or a covariate that separates events") from None
    half = np.linalg.solve(lower, gradient)
    return np.asarray(np.linalg.solve(lower.T, half), dtype=np.float64)


def _inverse(information: FloatArray) -> FloatArray:
    variance = np.asarray(np.linalg.inv(information), dtype=np.float64)
    if not (np.isfinite(variance).all() and (np.diag(variance) > 0).all()):
        raise NotConverged("the variance matrix is not finite and positive")
    return (variance + variance.T) / 2


def sampled_rows(n: int) -> IntArray | None:
    """The 500 rows (drawn at random, always the same draw) of :func:`rank_correlations`
    when there are more (None: all of them), as lifelines'
    check_complete_separation_close_to_perfect_correlation; with replacement: a draw from a
    permutation costs more."""
    if n <= SEPARATION_SAMPLE:
        return None
    return np.random.default_rng(0).integers(0, n, SEPARATION_SAMPLE)


def rank_correlations(x: FloatArray, t: FloatArray) -> FloatArray:
    """Spearman's ρ of each column with the times (on :func:`sampled_rows`): a column that
    orders the times (almost) separates the events; lifelines looks only once its fit has
    gone wrong, which in such data it does (its damped steps give up while Newton's full
    steps may reach a finite maximum that only separation allows: refused either way)."""
    ranks = np.column_stack([_average_ranks(t)] + [_average_ranks(c) for c in x.T])
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.asarray(np.corrcoef(ranks, rowvar=False), dtype=np.float64)[0, 1:]
    return np.nan_to_num(rho)  # a constant column: no correlation


def _average_ranks(values: FloatArray) -> FloatArray:
    """Ranks from 0, ties sharing their mean rank."""
    order = np.argsort(values)
    run, starts, ends = _runs(values[order])
    ranks = np.empty(len(values))
    ranks[order] = ((starts + ends - 1) / 2)[run]
    return ranks


def _separation_hints(x: FloatArray, happened: npt.NDArray[np.bool_]) -> list[str]:
    """What lifelines adds to a failed fit (utils.check_complete_separation_low_variance):
    columns (almost) constant among the events or among the censored rows. Only a hint: a
    rare level is that too, and lifelines fits it."""
    hints = []
    for name, rows in (("events", happened), ("censored rows", ~happened)):
        if rows.sum() > 1:
            low = np.flatnonzero(np.var(x[rows], axis=0, ddof=1) < LOW_VARIANCE)
            if len(low):
                hints.append(f"column(s) {low.tolist()} almost constant among the {name}")
    return hints


def concordance(t: FloatArray, e: FloatArray, risk: FloatArray) -> float:
    """Harrell's C of ``risk`` (higher: the event sooner), as
    ``lifelines.utils.concordance_index(t, -risk, e)``; NaN when no pair is comparable.

    Each row j is compared with the pool of events before it: those with a time before tⱼ
    if j is an event, at or before tⱼ if it is censored. A pooled event with a higher risk is
    concordant, an equal risk half: C = (concordant + tied/2) / pairs. O(n log n): each row's
    pool is a prefix (of length kⱼ) of the events in time order, and the pool members with a
    risk above rⱼ are those whose dense rank among the events' risks, in descending order,
    is below cⱼ: a count answered for all rows at once by a wavelet matrix (``_PrefixRanks``)."""
    t, e, v = (np.asarray(a, dtype=np.float64) for a in (t, e, risk))
    if t.ndim != 1 or e.shape != t.shape or v.shape != t.shape:
        raise ValueError("t, e and risk must be vectors of one length")
    if np.isnan(t).any() or np.isnan(v).any() or not np.isin(e, (0.0, 1.0)).all():
        raise ValueError("a time or risk is missing, or an event is neither 0 nor 1")
    happened = e == 1
    if not happened.any():
        return math.nan
    by_time = np.argsort(t)  # ties in any order: no pool ends inside a time
    pool = _pool_sizes(t[by_time], happened[by_time])
    pairs = int(pool.sum())
    if pairs == 0:
        return math.nan
    rank, ties, distinct_risks = _event_ranks(v, happened)
    rank, ties, events = rank[by_time], ties[by_time], happened[by_time]
    ranks = _PrefixRanks(rank[events], distinct_risks)
    higher = ranks.below(pool, rank)
    tied_rows = np.flatnonzero(ties)
    at_most = ranks.below(pool[tied_rows], rank[tied_rows] + 1)
    correct = int(higher.sum())
    tied = int(at_most.sum() - higher[tied_rows].sum())
    return (correct + tied / 2) / pairs


def _runs(values: FloatArray) -> tuple[IntArray, IntArray, IntArray]:
    """Of sorted ``values``: each one's run of equal values, and the runs' starts and ends."""
    new = np.empty(len(values), dtype=bool)
    new[0] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return np.cumsum(new) - 1, starts, np.append(starts[1:], len(values))


def _pool_sizes(t: FloatArray, happened: npt.NDArray[np.bool_]) -> IntArray:
    """For rows sorted by time, each one's number of comparable events: before its time if
    it is an event, at or before it if censored (lifelines takes a time's events before its
    censorings)."""
    run, starts, ends = _runs(t)
    events = np.zeros(len(t) + 1, dtype=np.int64)  # events before each place
    np.cumsum(happened, out=events[1:])
    return np.where(happened, events[starts][run], events[ends][run])


def _event_ranks(risk: FloatArray, happened: npt.NDArray[np.bool_]
                 ) -> tuple[IntArray, IntArray, int]:
    """Each row's number of distinct event risks above its own, its number of other events
    with its risk, and the number of distinct event risks."""
    order = np.argsort(risk)[::-1]  # descending: ties in any order
    events = happened[order]
    run, starts, ends = _runs(risk[order])
    before = np.zeros(len(risk) + 1, dtype=np.int64)
    np.cumsum(events, out=before[1:])
    per_run = before[ends] - before[starts]
    has = per_run > 0
    above: IntArray = np.cumsum(has) - has
    rank, ties = np.empty(len(risk), dtype=np.int64), np.empty(len(risk), dtype=np.int64)
    rank[order] = above[run]
    ties[order] = per_run[run] - events
    return rank, ties, int(has.sum())


class _PrefixRanks:
    """A wavelet matrix over a sequence of ranks s (0 ≤ sᵢ < r): ``below(k, c)`` counts, for
    every query at once, the i < kⱼ with sᵢ < cⱼ, in one pass per bit of r of a few
    whole-array operations (two gathers from a rank array, no search, no mask: masked
    operations are several times slower than arithmetic on 0/1), where a merge-sort tree
    would binary-search each of its levels. In 32-bit integers: half the memory traffic."""

    def __init__(self, sequence: IntArray, r: int) -> None:
        self.length = len(sequence)
        if self.length >= 2**31 - 1:
            raise ValueError("too many events for 32-bit counts")
        self.levels: list[tuple[int, Int32Array, int]] = []  # bit, 1s before each place, 0s
        current = sequence.astype(np.int32)
        for bit in reversed(range(max(1, r.bit_length()))):
            set_ = (current >> bit) & 1
            ones = np.zeros(self.length + 1, dtype=np.int32)
            np.cumsum(set_, out=ones[1:])
            self.levels.append((bit, ones, self.length - int(ones[-1])))
            current = np.concatenate([current[set_ == 0], current[set_ == 1]])  # stable

    def below(self, k: IntArray, c: IntArray) -> IntArray:
        """#{i < kⱼ : sᵢ < cⱼ} for each j (0 ≤ kⱼ ≤ length, 0 ≤ cⱼ < 2^bits). Each query
        follows its prefix [low, high) down the levels: where cⱼ has a 1, the places holding
        a 0 are below it (counted) and the search goes on among the 1s, else among the 0s."""
        n = len(k)
        count = np.zeros(n, dtype=np.int32)
        low, high = np.zeros(n, dtype=np.int32), k.astype(np.int32)
        c32 = c.astype(np.int32)
        one, ones_low, ones_high, part = (np.empty(n, dtype=np.int32) for _ in range(4))
        for bit, ones, zeros in self.levels:
            np.right_shift(c32, bit, out=one)
            np.bitwise_and(one, 1, out=one)
            np.take(ones, low, out=ones_low)
            np.take(ones, high, out=ones_high)
            low -= ones_low  # now the 0s before each end
            high -= ones_high
            np.subtract(high, low, out=part)
            part *= one
            count += part
            for end, ones_end in ((low, ones_low), (high, ones_high)):
                ones_end += zeros  # where the 1s are: after all the 0s
                ones_end -= end
                ones_end *= one
                end += ones_end
        return count.astype(np.int64)
