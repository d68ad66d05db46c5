"""The participant-subset carrier: which participants a recipient receives.

Every extract withholds a keyed share ``r`` (``SHARE``, 2%) of the participants it could hold:
participant ``i`` is withheld from extract ``j`` when ``u(j, i) < r·2³²``, ``u`` the same AES
pseudo-random function as the symbols (``codes.py``) under the extract's own key, on a tag no
column uses. So ``withheld(j, i) ~ Bernoulli(r)`` exactly and independently of every symbol and
of every other extract. For analysis this is a random 2% subsample (missing completely at
random): no estimate is biased, standard errors grow by about 1%.

The mark lives in *which rows exist*, so it survives any deletion, rewriting or wiping of
columns: a leaked copy of extract ``j`` holds none of ``j``'s withheld participants, whatever
was done to its values, as long as its rows can still be linked to the cohort on the columns
that survive.

**The bound.** For a suspect whose rows link to ``n`` distinct participants, let ``W_j`` be the
number of them withheld from extract ``j``. Under the null hypothesis (the file holds no row of
``j``'s copy) the linked set is independent of ``j``'s key, so ``W_j ~ Binomial(n, r)`` exactly,
whatever the file is; the evidence against ``j`` is the exact lower tail ``P(W ≤ W_j)``. A
guilty copy gives ``W_j = 0`` (or a few, from wrong links or rows mixed in from elsewhere):
``(1 − r)ⁿ``, e.g. ``e⁻¹⁰¹`` at 5,000 rows, ``10⁻¹³`` (naming, among 1,000 recipients) at
about 1,500.

**Rows that match a class, not a participant.** A copy of only coarse columns links few rows
to one participant, but each matches a class of ``c`` (``classes.py``); each member then
weighs ``1/c`` (the expected number of the copy's rows that are them) and a linked
participant 1. The statistic is ``S_j = Σ a_i·[i withheld from j]`` over the participants
with weight ``a_i > 0``; under the null each indicator is still an independent Bernoulli(r)
(the weights never look at a key), so the lower tail is bounded by Chernoff with the exact
moment-generating function, ``ln P(S ≤ s) ≤ min_λ≥0 λs + Σ ln(1 − r + r·e^(−λ·a_i))``, which
is exact at ``S = 0`` with unit weights (``n·ln(1 − r)``). A guilty copy's rows are never
withheld, so ``S_j`` falls short of its null mean ``r·Σ a_i`` by about ``r·Σ_rows 1/c``.
With every weight 1 the exact binomial tail above is used.

**At most ``MAX_PARTICIPANTS`` are read** (issue 57: the AES under every recipient's key is
most of the test's cost at 500,000 rows × 1,000 recipients). When more participants carry
weight, those with the largest weights are kept (linked ones first), ties by the lowest
participant id: a rule that never looks at a key, so under the null the kept indicators are
still independent Bernoulli(r) and both tails stay exact. 50,000 unit weights already give a
guilty copy ``50,000·ln 0.98 ≈ −1,010``; naming needs about 1,500.

What it cannot do: colluders who pool their copies and keep the *union* of their rows hold
about ``r·n`` of each one's withheld participants, like an innocent; their values still carry
the fingerprints. A seller who keeps only the *intersection* of several copies is named by
each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import logsumexp

from strongroom.cohort.model import EID
from strongroom.extracts import accuse, arrays, codes

SHARE = 0.02  # share of eligible participants withheld from each extract
MAX_SHARE = 0.1  # a custodian may choose up to this; more would cost analyses real power
TAG = codes.column_tag("\0strongroom membership v1")  # no storage column has this name
MAX_PARTICIPANTS = 50_000  # read at most this many (the heaviest, then lowest ids): no key


def threshold(share: float) -> int:
    """``share`` as a threshold in units of 2⁻³² (the withheld share is exactly this / 2³²)."""
    return round(share * codes.SCALE)


def withheld(key: bytes, eids: np.ndarray, share: float) -> np.ndarray:
    """Whether each participant is withheld from the extract with symbol key ``key``."""
    eids = np.asarray(eids, dtype=np.int64)
    if share <= 0 or len(eids) == 0:
        return np.zeros(len(eids), dtype=np.bool_)
    return codes.prf_u32(key, eids, np.array(TAG, dtype=np.uint64)) < np.uint32(threshold(share))


def withhold(frame: pl.DataFrame, key: bytes, share: float) -> pl.DataFrame:
    """``frame`` (master ``eid`` + columns) without the participants withheld under ``key``."""
    out = withheld(key, frame[EID].cast(pl.Int64).to_numpy(), share)
    return frame.filter(pl.Series(~out))


@dataclass(frozen=True)
class Evidence:
    """One extract's membership evidence in a suspect file."""

    positions: int  # distinct linked participants
    withheld: int  # of them withheld from this extract
    log_p: float  # ln P(W ≤ withheld) under the null: Binomial(positions, share)


def log_lower_tail(count: int, n: int, p: float) -> float:
    """``ln P(W ≤ count)`` for ``W ~ Binomial(n, p)``, summed in logs (``binom.logcdf``
    underflows to −∞ far in the tail: 0 of 490,000 at 2% is e⁻⁹⁸⁹⁹)."""
    if count >= n * p:  # at or above the mean: no evidence (1 is a valid bound), and no sum
        return 0.0
    from scipy.special import bdtr

    direct = float(bdtr(count, n, p))  # the regularised incomplete beta: one call, not count+1
    if direct > 1e-250:
        return min(0.0, math.log(direct))
    from scipy.special import gammaln, xlog1py, xlogy  # as scipy.stats' binom.logpmf, whose
    # module takes ~1 s to import
    x = np.arange(count + 1, dtype=np.float64)
    terms = (gammaln(n + 1) - (gammaln(x + 1) + gammaln(n - x + 1))
             + xlogy(x, p) + xlog1py(n - x, -p))
    return min(0.0, float(logsumexp(terms)))


def log_weighted_lower_tail(observed: float, weights: np.ndarray, counts: np.ndarray,
                            p: float) -> float:
    """A bound on ``ln P(S ≤ observed)`` for ``S = Σ a·Bernoulli(p)``: ``counts[i]`` terms of
    weight ``weights[i]`` (Chernoff with the exact moment-generating function; any λ ≥ 0
    gives a valid bound, the best of a bracketed search is taken)."""
    mean = p * float(np.dot(weights, counts))
    if observed >= mean or len(weights) == 0:
        return 0.0
    from scipy.optimize import minimize_scalar

    def bound(lam: float) -> float:
        return float(lam * observed + np.dot(counts, np.log1p(p * np.expm1(-lam * weights))))

    top = 50.0 / max(float(weights.min()), 1e-9)
    best = minimize_scalar(bound, bounds=(0.0, top), method="bounded",
                           options={"xatol": 1e-6 * top})
    return min(0.0, float(best.fun), bound(top))


_PARTS = 4  # parts of the extracts each test is made for, on a pool (both cores busy)


def _by_parts(keys: Mapping[str, tuple[bytes, float]], pool: Executor | None,
              one: Callable[[bytes, float], Evidence]) -> dict[str, Evidence]:
    """``{extract: one(key, share)}`` in ``keys``' order; with ``pool``, parts of the
    extracts on its threads beside this one (each extract's test is its own)."""
    items = list(keys.items())
    step = max(1, math.ceil(len(items) / (_PARTS if pool is not None else 1)))
    parts: Sequence[list[tuple[str, tuple[bytes, float]]]] = [
        items[start:start + step] for start in range(0, len(items), step)]
    done = accuse.each(pool, lambda part: [(e, one(k, s)) for e, (k, s) in part], parts)
    return {e: found for part in done for e, found in part}


def evidence(linked: np.ndarray, keys: Mapping[str, tuple[bytes, float]],
             pool: Executor | None = None) -> dict[str, Evidence]:
    """Each extract's evidence from the suspect's linked master ids (``-1``: unlinked).

    ``keys``: extract id → (symbol key, withheld share); extracts made before this carrier
    existed have share 0 and no positions. ``pool``: extracts tested on its threads too.
    """
    eids = arrays.unique(np.asarray(linked, dtype=np.int64))[0]
    eids = eids[eids >= 0][:MAX_PARTICIPANTS]  # sorted: the lowest ids, never a key
    blocks = codes.prf_input(eids, np.array(TAG, dtype=np.uint64))  # built once, keyed per extract

    def one(key: bytes, share: float) -> Evidence:
        if share <= 0 or len(eids) == 0:
            return Evidence(0, 0, 0.0)
        count = int(np.count_nonzero(codes.prf_u32_of(key, blocks)
                                     < np.uint32(threshold(share))))
        exact = threshold(share) / codes.SCALE
        return Evidence(len(eids), count, log_lower_tail(count, len(eids), exact))

    return _by_parts(keys, pool, one)


def weighted_evidence(eids: np.ndarray, weights: np.ndarray,
                      keys: Mapping[str, tuple[bytes, float]], pool: Executor | None = None
                      ) -> dict[str, Evidence]:
    """Each extract's evidence from participants weighted by the suspect's rows that may be
    them (``classes.weights``); unit weights give :func:`evidence`'s exact binomial test.

    Rows matching classes add participants whose indicators are mostly noise beside the
    linked ones (weight ≥ 1), so they can weaken a test that the links alone would pass: both
    are taken, the exact binomial over the linked and the weighted tail over everyone, and
    the smaller p-value doubled (a union over the two tests, ln 2 of evidence).
    ``Evidence.withheld`` is then the number of weighted participants withheld. ``pool``:
    extracts tested on its threads too."""
    eids = np.asarray(eids, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    keep = (eids >= 0) & (weights > 0)
    # one participant is one Bernoulli: listed twice, their weights are summed first
    eids, where, _ = arrays.unique(eids[keep], return_inverse=True)
    weights = np.bincount(where, weights=weights[keep], minlength=len(eids))
    if len(weights) and bool(np.all(weights == 1.0)):
        return evidence(eids, keys, pool)
    if len(eids) > MAX_PARTICIPANTS:  # the heaviest, ties by the lowest id (eids ascend)
        kept = np.sort(np.argsort(-weights, kind="stable")[:MAX_PARTICIPANTS])
        eids, weights = eids[kept], weights[kept]
    values, inverse, _ = arrays.unique(weights, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(values)).astype(np.float64)
    whole = weights >= 1.0  # a linked row's participant (and anyone a class adds to it)
    n_whole = int(np.count_nonzero(whole))
    blocks = codes.prf_input(eids, np.array(TAG, dtype=np.uint64))

    def one(key: bytes, share: float) -> Evidence:
        if share <= 0 or len(eids) == 0:
            return Evidence(0, 0, 0.0)
        out_of = codes.prf_u32_of(key, blocks) < np.uint32(threshold(share))
        exact = threshold(share) / codes.SCALE
        observed = float(weights[out_of].sum())
        weighted = log_weighted_lower_tail(observed, values, counts, exact)
        linked = log_lower_tail(int(np.count_nonzero(out_of[whole])), n_whole, exact)
        return Evidence(len(eids), int(np.count_nonzero(out_of)),
                        min(0.0, math.log(2) + min(weighted, linked)))

    return _by_parts(keys, pool, one)
