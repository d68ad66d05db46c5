"""A Cox model (Efron's ties) from sums over its rows where an engine keeps them (sums.Rows).

Efron's partial likelihood needs, per distinct event time, sums over its risk set and over
its tied events of exp(zβ), z·exp(zβ) and z zᵀ·exp(zβ). Each part of the rows (a cluster's
partition, a participant's rows all in one) bins its rows by the latest event time at or
before their own and sends back per-time sums; the host adds the parts' sums per time, makes
risk sets of them by reverse cumulative sums and does Efron's arithmetic (that of
proportional_hazards._Efron) on arrays as long as the event times (and a number an event
for the ties' shares), never on the rows' covariates. The
information's weighted Gram matrix weights each row by the Σ 1/φ of the event times up to
its own, which only the whole gives: a second job at each β, those weights sent out. The fit
is proportional_hazards' own (its Newton steps, thresholds and checks); whatever it would
refuse or could settle otherwise raises sums.HostOnlyError, and the host fits instead.

At the estimate, again on the executors, with the per-time tables sent out: each row's score
residual times the variance (its delta-beta), summed per participant and reduced to the
largest per coefficient (sensitivity.cox_steps), each participant's summed leverage in the
covariates with the intercept (the influence check), xβ's extremes (the log-likelihood's
step) and Harrell's C's counts. C pairs each row with the events before it, across parts:
the host sends out the events' times and risks (xβ, one number an event, made from the
narrow frame a term at a time, as the executors make every row's), and each part counts, for
its own rows, the events in their pool with a higher and an equal risk
(proportional_hazards.concordance's wavelet matrix, over the events, built once a part).

On the host still: the 500 rows of the rank-correlation check, built from the narrow frame
(the same draw as proportional_hazards'), and what survival.cox reads from the times and
events alone (comparable pairs, events per level), as the definition's rows are there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom import sets
from strongroom.enclave.analyses import proportional_hazards as ph
from strongroom.enclave.analyses import sums
from strongroom.enclave.results import FloatArray

TIME = sums.OUTCOME  # the narrow frame's outcome column holds the time
EVENT = "e"
# the shift (exp(η − shift) ≤ 1: no overflow) is an upper bound of η from each column's
# extremes; where it is this far above the largest η, the pass is taken again from that
SLACK = 300.0


@dataclass(frozen=True)
class Standard:
    """How the executors make a row's standardised covariates as fit() does: its terms less
    their mean (survival.cox centres them), less the centred terms' own mean, over their
    standard deviation."""

    recipe: sums.Recipe
    centre: FloatArray
    again: FloatArray
    scale: FloatArray


@dataclass(frozen=True)
class Times:
    """The distinct event times and the events tied at each, and per event (in time order)
    its time's index and Efron's share a = l/d of its tie (as _Efron's); ``shared``: each
    time's place among those with two events or more (−1: one event), where alone the
    tied events' own sums count (a = 0 for a lone event: a part sends none for it)."""

    times: FloatArray
    tied: npt.NDArray[np.int64]
    tie: npt.NDArray[np.int64]
    a: FloatArray
    shared: npt.NDArray[np.int64]

    @classmethod
    def of(cls, t: FloatArray, e: FloatArray) -> Times:
        times, tied = np.unique(t[e == 1], return_counts=True)
        tie = np.repeat(np.arange(len(times)), tied)
        first = np.cumsum(tied) - tied
        shared = np.full(len(times), -1, dtype=np.int64)
        several = tied > 1
        shared[several] = np.arange(int(several.sum()))
        return cls(times, tied, tie, (np.arange(len(tie)) - first[tie]) / tied[tie], shared)

    @property
    def sharing(self) -> int:
        return int(np.count_nonzero(self.shared >= 0))


@dataclass
class CoxSums:
    """A fit from sums: proportional_hazards' CoxFit, Harrell's C of its xβ, and the facts
    the output check reads."""

    fit: ph.CoxFit
    concordance: float
    most: FloatArray  # per coefficient: the largest Σ |delta-beta| over one participant's rows
    influence: float  # the largest summed leverage of one participant (with the intercept)
    largest_xb: float  # the largest |xβ| of a row
    spread: float  # xβ's largest less its smallest


def terms(cols: sums.Columns, recipe: sums.Recipe) -> FloatArray:
    """The rows' terms, without the intercept (a Cox model has none)."""
    return sums.matrix(cols, recipe)[:, 1:]


def risks(cols: sums.Columns, recipe: sums.Recipe, centre: FloatArray, beta: FloatArray
          ) -> FloatArray:
    """Each row's xβ on the centred covariates (survival.cox's), a term at a time: the same
    arithmetic wherever it runs, so that equal risks are equal everywhere."""
    xb = np.zeros(len(cols[sums.PID]))
    for term, mean, b in zip(recipe.terms, centre, beta, strict=True):
        xb += (sums.matrix_column(cols, term) - mean) * b
    return xb


def _standardised(cols: sums.Columns, s: Standard) -> FloatArray:
    z = terms(cols, s.recipe) - s.centre
    z -= s.again
    z /= s.scale
    return z


def _bins(cols: sums.Columns, times: FloatArray) -> npt.NDArray[np.int64]:
    """1 + each row's latest event time at or before its own (0: before every one)."""
    return np.searchsorted(times, np.asarray(cols[TIME], dtype=np.float64), side="right")


def _per_bin(bins: npt.NDArray[np.int64], weights: FloatArray, z: FloatArray,
             length: int) -> tuple[FloatArray, FloatArray]:
    s1 = np.column_stack([ph._binned(bins, weights * z[:, j], length)
                          for j in range(z.shape[1])])
    return ph._binned(bins, weights, length), s1


def _moments(cols: sums.Columns, recipe: sums.Recipe, centre: FloatArray
             ) -> dict[str, FloatArray]:
    """The Gram matrix with the intercept (the rank check, the leverages), and of each term
    less ``centre``: its sum, sum of squares and extremes."""
    x = sums.matrix(cols, recipe)
    centred = x[:, 1:] - centre
    return {"xx": (x.T @ x).ravel(), "sum": centred.sum(axis=0),
            "squares": np.einsum("ij,ij->j", centred, centred),
            "max:high": centred.max(axis=0, initial=-math.inf),
            "max:low": (-centred).max(axis=0, initial=-math.inf)}


def _at_times(cols: sums.Columns, s: Standard, beta: FloatArray, times: FloatArray,
              shared: npt.NDArray[np.int64], shift: float) -> dict[str, FloatArray]:
    """Per event time: Σ w and Σ w·z over the rows binned there (risk sets once summed from
    the end), and over its events where they are tied (``shared``: Times'); Σ η and Σ z
    over the events; the largest η."""
    z = _standardised(cols, s)
    happened = np.asarray(cols[EVENT]) == 1
    eta = z @ beta
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.exp(eta - shift)
    bins = _bins(cols, times)
    g = len(times)
    s0, s1 = _per_bin(bins, w, z, g + 1)
    place = shared[bins[happened] - 1]
    tied = place >= 0
    d0, d1 = _per_bin(place[tied], w[happened][tied], z[happened][tied],
                      int(np.count_nonzero(shared >= 0)))
    return {"s0": s0, "s1": s1.ravel(), "d0": d0, "d1": d1.ravel(),
            "eta": np.array([float(eta[happened].sum())]), "ze": z[happened].sum(axis=0),
            "max:eta": np.array([float(eta.max(initial=-math.inf))])}


def _weighted_gram(cols: sums.Columns, s: Standard, beta: FloatArray, times: FloatArray,
                   shift: float, cumulative: FloatArray, tied: FloatArray
                   ) -> dict[str, FloatArray]:
    """The information's first part: Σ wᵢ C(tᵢ) zᵢzᵢᵀ − Σ_events wᵢ c'ᵢ zᵢzᵢᵀ (_Efron's)."""
    z = _standardised(cols, s)
    happened = np.asarray(cols[EVENT]) == 1
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.exp(z @ beta - shift)
    bins = _bins(cols, times)
    ze = z[happened]
    weights = w[happened] * tied[bins[happened] - 1]
    return {"h": ((z * (w * cumulative[bins])[:, None]).T @ z
                  - (ze * weights[:, None]).T @ ze).ravel()}


def _facts(cols: sums.Columns, s: Standard, beta: FloatArray, times: FloatArray,
           shift: float, tables: FloatArray, variance: FloatArray,
           inverse: FloatArray) -> dict[str, FloatArray]:
    """Per participant: the largest Σ |delta-beta| per coefficient (survival.score_residuals
    times the variance, Breslow's risk sets, from the per-time ``tables``: each time's risk
    mean, cumulative hazard and drift, a row of zeros first for rows before every event) and
    the largest summed leverage of the terms with the intercept (``inverse``: of its Gram)."""
    p = len(beta)
    z = _standardised(cols, s)
    happened = (np.asarray(cols[EVENT]) == 1).astype(np.float64)
    phi = np.exp(z @ beta - shift)
    at = tables[_bins(cols, times)]
    mean, cumulative, drift = at[:, :p], at[:, p], at[:, p + 1:]
    u = happened[:, None] * (z - mean) - phi[:, None] * (z * cumulative[:, None] - drift)
    delta = (u * s.scale) @ variance  # the centred covariates' residuals, as survival.cox's
    x = sums.matrix(cols, s.recipe)
    leverage = np.einsum("ij,jk,ik->i", x, inverse, x)
    per = sums._grouped_max(np.column_stack([leverage, np.abs(delta)]), cols[sums.PID])
    return {"max:influence": per[:1], "max:effect": per[1:]}


class _Concordance:
    """Harrell's C's counts over a part's rows (proportional_hazards.concordance's, split):
    for each row, the events in its pool (before its time; at or before it, censored) with
    a higher risk, and with an equal one. The events' wavelet matrix is built on the first
    batch and kept for the part's others (one object a task)."""

    def __init__(self, recipe: sums.Recipe, centre: FloatArray, beta: FloatArray,
                 times: FloatArray, ranks: npt.NDArray[np.int64], distinct: FloatArray
                 ) -> None:
        self.recipe, self.centre, self.beta = recipe, centre, beta
        self.times = times  # the events' times, ascending
        self.ranks = ranks  # each of those events' distinct event risks above its own
        self.distinct = distinct  # the distinct event risks, descending
        self._prefix: ph._PrefixRanks | None = None

    def __call__(self, cols: sums.Columns) -> dict[str, FloatArray]:
        if self._prefix is None:
            self._prefix = ph._PrefixRanks(self.ranks, len(self.distinct))
        xb = risks(cols, self.recipe, self.centre, self.beta)
        t = np.asarray(cols[TIME], dtype=np.float64)
        happened = np.asarray(cols[EVENT]) == 1
        pool = np.where(happened, np.searchsorted(self.times, t, side="left"),
                        np.searchsorted(self.times, t, side="right"))
        above = np.searchsorted(-self.distinct, -xb, side="left")
        equal = np.flatnonzero(self.distinct[np.minimum(above, len(self.distinct) - 1)] == xb)
        higher = self._prefix.below(pool, above)
        at_most = self._prefix.below(pool[equal], above[equal] + 1)
        return {"correct": np.array([float(higher.sum())]),
                "tied": np.array([float(at_most.sum() - higher[equal].sum())]),
                "max:xb": np.array([float(xb.max(initial=-math.inf))]),
                "max:-xb": np.array([float((-xb).max(initial=-math.inf))])}


def _at_estimate(cols: sums.Columns, facts: sums.Partial, concordance: _Concordance
                 ) -> dict[str, FloatArray]:
    return {**facts(cols), **concordance(cols)}


class _Efron:
    """Efron's log-likelihood, gradient and information at β (proportional_hazards.
    Evaluation) from the rows' per-time sums: two jobs, one where ℓ is not finite."""

    def __init__(self, rows: sums.Rows, s: Standard, times: Times, high: FloatArray,
                 low: FloatArray) -> None:
        self.rows, self.s, self.t = rows, s, times
        self.high, self.low = high, low  # each standardised column's largest and smallest
        # the latest evaluation's β, shift, and per-time S₀ and S₁ (risk sets)
        self.latest: tuple[FloatArray, float, FloatArray, FloatArray] | None = None

    def _sums(self, beta: FloatArray, shift: float) -> dict[str, FloatArray]:
        return self.rows.each(partial(_at_times, s=self.s, beta=beta, times=self.t.times,
                                      shared=self.t.shared, shift=shift))

    def __call__(self, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        with np.errstate(all="ignore"):
            return self._at(beta)

    def _at(self, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        g, p = len(self.t.times), len(beta)
        shift = float(np.maximum(beta * self.high, beta * self.low).sum())  # ≥ every η
        found = self._sums(beta, shift)
        largest = float(found["max:eta"][0])
        if math.isfinite(largest) and shift - largest > SLACK:
            shift = largest
            found = self._sums(beta, shift)
        s0 = ph._from_the_end(found["s0"][1:])
        s1 = ph._from_the_end(found["s1"].reshape(g + 1, p)[1:])
        d0, d1 = np.zeros(g), np.zeros((g, p))  # a lone event's are never read (a = 0)
        several = self.t.shared >= 0
        d0[several] = found["d0"]
        d1[several] = found["d1"].reshape(self.t.sharing, p)
        self.latest = (beta.copy(), shift, s0, s1)
        tie, a = self.t.tie, self.t.a
        phi = s0[tie] - a * d0[tie]
        loglik = float(found["eta"][0] - np.log(phi).sum() - len(a) * shift)
        inverse = 1 / phi
        c, c_tied = ph._binned(tie, inverse, g), ph._binned(tie, a * inverse, g)
        gradient = found["ze"] - (s1.T @ c - d1.T @ c_tied)
        if not (math.isfinite(loglik) and np.isfinite(gradient).all()):
            return loglik, gradient, np.full((p, p), math.nan)  # halved: no second job
        cumulative = np.zeros(g + 1)
        np.cumsum(c, out=cumulative[1:])
        gram = self.rows.each(partial(_weighted_gram, s=self.s, beta=beta,
                                      times=self.t.times, shift=shift,
                                      cumulative=cumulative, tied=c_tied))["h"].reshape(p, p)
        # Σ over ties of m mᵀ, m = (S₁ − a·D₁)/φ, per time from Σ 1/φ², Σ a/φ², Σ a²/φ²
        k0, k1, k2 = (ph._binned(tie, a ** j * inverse ** 2, g) for j in range(3))
        cross = s1.T @ (d1 * k1[:, None])
        means = s1.T @ (s1 * k0[:, None]) - cross - cross.T + d1.T @ (d1 * k2[:, None])
        return loglik, gradient, gram - means


def fit(d: sums.Design, narrow: pl.DataFrame) -> CoxSums:
    """survival.cox's fit of the rows at ``d.rows``, whose copy here is ``narrow`` (pid, the
    time, the event, each covariate as fitted): sums.HostOnlyError wherever the host's own
    fit would refuse, or the sums could answer otherwise than it would."""
    recipe, n = d.recipe, d.n
    cols = sums.columns(narrow)
    centre = np.array([float(np.mean(sums.matrix_column(cols, term))) for term in recipe.terms])
    first = d.rows.each(partial(_moments, recipe=recipe, centre=centre))
    width = recipe.width
    gram = first["xx"].reshape(width, width)
    sums._full_rank(d, gram)  # regression.check_rank's, or the host decides
    again = first["sum"] / n
    variances = (first["squares"] - n * again ** 2) / (n - 1)
    t = np.asarray(cols[TIME], dtype=np.float64)
    e = np.asarray(cols[EVENT], dtype=np.float64)
    sample = ph.sampled_rows(n)
    some = cols if sample is None else {k: v[sample] for k, v in cols.items()}
    try:
        ph.check_variances(variances)
        ph.check_ranks(ph.rank_correlations(terms(some, recipe) - centre - again,
                                            t if sample is None else t[sample]))
    except ph.NotConverged:
        raise sums.HostOnlyError("refused") from None
    scale = np.sqrt(variances)
    s = Standard(recipe, centre, again, scale)
    efron = _Efron(d.rows, s, Times.of(t, e), (first["max:high"] - again) / scale,
                   -(first["max:low"] + again) / scale)
    try:
        fitted = ph.maximised(efron, scale, list)
    except ph.NotConverged:
        raise sums.HostOnlyError("did not converge") from None
    events = {k: v[e == 1] for k, v in cols.items()}
    found = d.rows.each(partial(
        _at_estimate, facts=_facts_at(efron, fitted, sums._scaled_inverse(gram)),
        concordance=_concordance_of(events, recipe, centre, fitted.beta)))
    pairs = comparable_pairs(t, e == 1)
    c = (float(found["correct"][0]) + float(found["tied"][0]) / 2) / pairs if pairs \
        else math.nan
    high, low = float(found["max:xb"][0]), float(found["max:-xb"][0])
    return CoxSums(fitted, c, found["max:effect"], float(found["max:influence"][0]),
                   max(high, low, 0.0), high + low)


PAIRS_CHUNK = 1 << 20  # rows at a time of comparable_pairs (16 MB of positions)


def comparable_pairs(t: FloatArray, happened: npt.NDArray[np.bool_]) -> int:
    """The pairs Harrell's C compares: ``proportional_hazards._pool_sizes`` of the rows in
    time order, summed (each event's events before its time, each censoring's at or before
    it), without sorting the rows: each row's count found among the events' sorted times,
    a chunk of rows at a time (the sort and the pool sizes held six copies of the rows,
    275 MB at 5,000,000). The same integer."""
    event_times = np.sort(t[happened])
    total = 0
    for start in range(0, len(t), PAIRS_CHUNK):
        times, events = t[start:start + PAIRS_CHUNK], happened[start:start + PAIRS_CHUNK]
        total += int(np.searchsorted(event_times, times[events], side="left").sum())
        total += int(np.searchsorted(event_times, times[~events], side="right").sum())
    return total


def _facts_at(efron: _Efron, fitted: ph.CoxFit, inverse: FloatArray) -> sums.Partial:
    """The facts job at the estimate, from the last evaluation's per-time sums (the
    estimate's: Newton's last step is the one it accepted)."""
    assert efron.latest is not None
    beta, shift, s0, s1 = efron.latest
    mean = s1 / s0[:, None]
    hazard = efron.t.tied / s0
    tables = np.vstack([np.zeros(2 * len(beta) + 1), np.column_stack([
        mean, np.cumsum(hazard), np.cumsum(mean * hazard[:, None], axis=0)])])
    return partial(_facts, s=efron.s, beta=beta, times=efron.t.times, shift=shift,
                   tables=tables, variance=fitted.variance, inverse=inverse)


def _concordance_of(events: sums.Columns, recipe: sums.Recipe, centre: FloatArray,
                    beta: FloatArray) -> _Concordance:
    """Harrell's C's job: the events' times and risks, in time order, with each one's rank
    among the distinct event risks (proportional_hazards._event_ranks')."""
    t = np.asarray(events[TIME], dtype=np.float64)
    order = np.argsort(t, kind="stable")
    xb = risks(events, recipe, centre, beta)[order]
    distinct = sets.distinct(xb)[::-1].copy()
    ranks = np.searchsorted(-distinct, -xb, side="left").astype(np.int64)
    return _Concordance(recipe, centre, beta, t[order], ranks, distinct)
