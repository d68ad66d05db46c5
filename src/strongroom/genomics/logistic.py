"""Logistic GWAS for case/control traits, with plink2 --glm's Firth fallback.

Per variant, ``trait ~ 1 + dosage + covariates`` is fitted by Newton–Raphson (IRLS) from
zero, the variants of a chunk together: the information matrices of all of them come from a
few matrix products per step (covariate pairs × weights, covariates × weighted dosages). The
iteration, its stopping and failure rules, and the Hessian the standard error comes from
(the one at the last step's start) are plink2's, so that results agree with it; plink2 runs
them in single precision, this in double.

As in ``plink2 --glm firth-fallback`` (its default), a variant goes to Firth's penalised
regression when no case or no control carries one of its alleles, or when the ordinary fit
fails; so does every variant of a trait that a covariate separates. Firth's fit is plink2's
port of logistf (Newton steps on the penalised score capped at 5, up to five step-halvings on
the penalised likelihood, at most 25 iterations), also run on all such variants of a chunk at
once, each with its own step-halvings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import special

from strongroom import sets
from strongroom.genomics.gwas import (
    ERROR_CODE,
    F64,
    INVALID_RESULT,
    MAX_CORR,
    MAX_VIF,
    UNFINISHED,
    Block,
    Chunk,
    Design,
    Distributed,
    GwasInputError,
    check_variants,
    design,
    fitted,
    inputs,
    results_frame,
    trait_groups,
    variant_sums,
)

LOGISTIC: Final = "logistic"
FIRTH: Final = "firth"
# variants fitted together by Newton's method: 40, fewer at large n so that a batch's float32
# dosages (a copy per thread) stay near 32 MiB: at 500,000 samples, 16 of them took no more
# CPU than 64 and 120 MiB less memory over two threads (BENCHMARKS.md, session 45); at 50,000,
# 40 took the same CPU as 64 and 10 MiB less (254 against 264 MiB, plink2 268: session 50)
_NEWTON_BATCH: Final = 40
_NEWTON_CELLS: Final = 1 << 23
_CROSS_ROWS: Final = 1 << 16  # rows of the covariates' products made at once
_FIRTH_BATCH_ELEMENTS: Final = 1 << 21  # samples × variants per Firth batch: bounds its memory


def _separated_by(covariate: F64, cases: NDArray[np.bool_]) -> bool:
    """plink2: does a covariate separate cases from controls, fully or at one value?"""
    a, b = covariate[cases], covariate[~cases]
    return bool(a.min() >= b.max() or b.min() >= a.max())


def _valid(h_inv: F64) -> NDArray[np.bool_]:
    """plink2's validParameters(): positive finite variances, no correlation ≥ 0.99999."""
    diag = np.einsum("vii->vi", h_inv)
    ok = np.isfinite(h_inv).all(axis=(1, 2)) & (diag[:, 1:] >= 1e-20).all(axis=1)
    sd = np.sqrt(np.where(diag > 0, diag, np.nan))
    k = h_inv.shape[1]
    low = np.tril(np.ones((k, k), dtype=bool), -1)
    with np.errstate(invalid="ignore"):
        too_close = (h_inv > 0.99999 * sd[:, :, None] * sd[:, None, :]) & low
    return np.asarray(ok & ~too_close.any(axis=(1, 2)))


def _inverse(h: F64) -> F64:
    """Inverses of a stack of matrices; NaN for the singular ones."""
    try:
        return np.asarray(np.linalg.inv(h))
    except np.linalg.LinAlgError:
        out = np.full_like(h, np.nan)
        for i, m in enumerate(h):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.inv(m)
        return out


@dataclass(frozen=True)
class _Model:
    """What every fit of one trait shares: [1, covariates], its row-wise products and y."""

    c1: F64  # n × kc
    cross: F64  # n × pairs: c1[:, a] * c1[:, b] for a ≤ b
    pairs: tuple[NDArray[np.intp], NDArray[np.intp]]
    y: F64  # 0/1
    c1_t: F64  # kc × n, C order
    pair_sums: F64  # pairs: Σ c1[:, a] * c1[:, b] over every sample
    resid_sums: F64  # kc: Σ c1 (y − 1/2)

    @classmethod
    def of(cls, covariates: F64, y: F64) -> _Model:
        c1 = np.column_stack([np.ones(y.size), covariates])
        pairs = np.triu_indices(c1.shape[1])
        # a block of rows at a time: whole, the two gathers and their product were three
        # times its size at once (0.8 GiB at 500,000 samples and ten covariates)
        cross = np.empty((y.size, pairs[0].size))
        for a in range(0, y.size, _CROSS_ROWS):
            block = c1[a:a + _CROSS_ROWS]
            np.multiply(block[:, pairs[0]], block[:, pairs[1]], out=cross[a:a + _CROSS_ROWS])
        return cls(c1, cross, pairs, y, np.ascontiguousarray(c1.T), np.ones(y.size) @ cross,
                   (y - 0.5) @ c1)

    @property
    def k(self) -> int:
        return int(self.c1.shape[1]) + 1  # coefficients: intercept, covariates, genotype

    def eta(self, coef: F64, g: F64) -> F64:
        kc = self.k - 1
        return np.asarray(self.c1 @ coef[:, :kc].T + g * coef[:, kc])

    def information(self, w: F64, g: F64) -> F64:
        """Xᵀ diag(w) X for each column: one product per block of the matrix."""
        kc = self.k - 1
        info = np.empty((g.shape[1], kc + 1, kc + 1))
        info[:, self.pairs[0], self.pairs[1]] = (self.cross.T @ w).T
        info[:, self.pairs[1], self.pairs[0]] = info[:, self.pairs[0], self.pairs[1]]
        wg = w * g
        info[:, :kc, kc] = (self.c1.T @ wg).T
        info[:, kc, :kc] = info[:, :kc, kc]
        info[:, kc, kc] = np.einsum("ij,ij->j", wg, g)
        return info

    def score(self, r: F64, g: F64) -> F64:
        """Xᵀ r for each column."""
        return np.column_stack([(self.c1.T @ r).T, np.einsum("ij,ij->j", g, r)])

    def leverage(self, info_inv: F64, g: F64) -> F64:
        """xᵢᵀ info⁻¹ xᵢ for each sample and column, as products too."""
        kc = self.k - 1
        twice = np.where(self.pairs[0] == self.pairs[1], 1.0, 2.0)
        quad = self.cross @ (info_inv[:, self.pairs[0], self.pairs[1]] * twice).T
        quad += 2.0 * g * (self.c1 @ info_inv[:, :kc, kc].T)
        return np.asarray(quad + g * g * info_inv[:, kc, kc])


def _newton(model: _Model, batch: _Batch) -> tuple[F64, F64, NDArray[np.bool_], NDArray[np.bool_]]:
    """plink2's LogisticRegression for each variant of ``batch``, all at once.

    A sample whose call is missing is dropped from that variant's fit. Returns the
    coefficients, the inverse of the Hessian at the last step's start, which fits failed and
    which ran out of steps. Each step's Hessian and score are sums over blocks of samples
    (:func:`_step_sums`), so that the step's arrays stay in cache.
    """
    v = batch.v
    coef = np.zeros((v, model.k))
    h_last = np.full((v, model.k, model.k), np.nan)
    failed = np.zeros(v, dtype=bool)
    unfinished = np.zeros(v, dtype=bool)
    min_delta = np.full(v, 1e9)
    active = np.arange(v)
    g_t, missing = batch.g_t, batch.missing
    for iteration in range(15):
        cols = active
        if cols.size < g_t.shape[0]:  # fewer to fit: drop the others' dosages
            g_t, missing = batch.only(cols)
        h, score = (_first_sums if iteration == 0 else _step_sums)(model, g_t, missing,
                                                                  coef[cols])
        h_last[cols] = h
        delta = _solve(h, score)
        coef[cols] += delta
        size = np.abs(delta).sum(axis=1)
        min_delta[cols] = np.minimum(min_delta[cols], size)
        big = np.abs(coef[cols]).max(axis=1)
        fail = np.isnan(size)
        if iteration > 3:
            fail |= (size > 20.0) & (size > 2.0 * min_delta[cols])
            if iteration > 6:
                fail |= np.abs(1.0 - size) < 1e-3
        done = fail.copy()
        if iteration == 14:  # out of steps: plink2 keeps the fit unless it blew up
            fail |= ~done & (big > 8e3)
            unfinished[cols[~fail]] = True
            done[:] = True
        converged = ~done & (size < 1e-4)
        fail |= converged & (big > 6e4)
        done |= converged
        failed[cols[fail]] = True
        active = cols[~done]
        if not active.size:
            break
    return coef, _inverse(h_last), failed, unfinished


def _first_sums(model: _Model, g_t: NDArray[np.float32], missing: tuple[NDArray[np.intp],
                NDArray[np.intp]], coef: F64) -> tuple[F64, F64]:
    """What :func:`_step_sums` gives at the first step, from zero: there every p is exactly
    1/2 (1 / (1 + exp(0))), every weight 1/4 and every residual y − 1/2, so the covariates'
    block is the trait's own, less the missing samples', and no exponential is needed."""
    v, n = g_t.shape
    kc = model.k - 1
    var, sample = missing
    pairs = np.broadcast_to(model.pair_sums, (v, model.pair_sums.size)).copy()
    score_c = np.broadcast_to(model.resid_sums, (v, kc)).copy()
    for at in range(0, var.size, _MIN_ROWS):  # the samples each variant lacks: not in its fit
        vs, ss = var[at:at + _MIN_ROWS], sample[at:at + _MIN_ROWS]
        np.subtract.at(pairs, vs, model.cross[ss])
        np.subtract.at(score_c, vs, model.c1[ss] * (model.y[ss] - 0.5)[:, None])
    gc = np.zeros((v, kc))
    gg = np.zeros(v)
    gr = np.zeros(v)
    rows = max(_MIN_ROWS, _BLOCK_CELLS // v)
    for a in range(0, n, rows):
        b = min(n, a + rows)
        g = g_t[:, a:b].astype(np.float64)
        gc += g @ model.c1[a:b]
        gg += np.einsum("ij,ij->i", g, g)
        gr += g @ (model.y[a:b] - 0.5)
    info = np.empty((v, kc + 1, kc + 1))
    pairs *= 0.25
    info[:, model.pairs[0], model.pairs[1]] = pairs
    info[:, model.pairs[1], model.pairs[0]] = pairs
    info[:, :kc, kc] = info[:, kc, :kc] = 0.25 * gc
    info[:, kc, kc] = 0.25 * gg
    return info, np.column_stack([score_c, gr])


def _step_sums(model: _Model, g_t: NDArray[np.float32], missing: tuple[NDArray[np.intp],
               NDArray[np.intp]], coef: F64) -> tuple[F64, F64]:
    """The information matrix Xᵀ W X and the score Xᵀ (y − p) of each variant at ``coef``,
    summed over blocks of samples: the dosages of a block are made float64, and its linear
    predictor, probabilities, weights and the products with them are computed while in cache.

    ``g_t`` is variants × samples, 0 where a call is missing; ``missing`` the (variant,
    sample) pairs of the missing calls, by sample: there p is set to y, so that the sample's
    weight p (1 − p) and residual y − p are 0 (y is 0 or 1), as if it were not there.
    """
    v, n = g_t.shape
    kc = model.k - 1
    minus_c = -np.ascontiguousarray(coef[:, :kc])  # −η, so that p = 1 / (1 + exp(−η))
    minus_beta = -coef[:, kc:]
    pairs = np.zeros((v, model.cross.shape[1]))
    cross_c = np.zeros((2 * v, kc))  # Σ w g c and Σ (y − p) c
    gwg = np.zeros(v)
    gr = np.zeros(v)
    rows = max(_MIN_ROWS, _BLOCK_CELLS // v)
    wr = np.empty((2 * v, min(rows, n)))
    m_var, m_sample = missing
    for a in range(0, n, rows):
        b = min(n, a + rows)
        g = g_t[:, a:b].astype(np.float64)
        p = minus_c @ model.c1_t[:, a:b]
        w = wr[:v, :b - a]
        np.multiply(g, minus_beta, out=w)
        p += w
        with np.errstate(over="ignore"):  # exp(−η) = inf: p = 0
            np.exp(p, out=p)
        p += 1.0
        np.reciprocal(p, out=p)  # scipy's expit, 1 / (1 + exp(−η)), in fewer passes
        if m_sample.size:
            lo, hi = np.searchsorted(m_sample, (a, b))
            if hi > lo:
                at = m_sample[lo:hi]
                p[m_var[lo:hi], at - a] = model.y[at]
        r = wr[v:, :b - a]
        np.subtract(model.y[a:b], p, out=r)
        np.subtract(1.0, p, out=w)
        w *= p
        pairs += w @ model.cross[a:b]
        gr += np.einsum("ij,ij->i", g, r)
        w *= g  # now w g
        gwg += np.einsum("ij,ij->i", w, g)
        cross_c += wr[:, :b - a] @ model.c1[a:b]
    info = np.empty((v, kc + 1, kc + 1))
    info[:, model.pairs[0], model.pairs[1]] = pairs
    info[:, model.pairs[1], model.pairs[0]] = pairs
    info[:, :kc, kc] = info[:, kc, :kc] = cross_c[:v]
    info[:, kc, kc] = gwg
    return info, np.column_stack([cross_c[v:], gr])


_BLOCK_CELLS: Final = 1 << 17  # variants × samples per block of a Newton step (1 MiB each)
_MIN_ROWS: Final = 1024


def _solve(h: F64, rhs: F64) -> F64:
    try:
        return np.asarray(np.linalg.solve(h, rhs[:, :, None])[:, :, 0])
    except np.linalg.LinAlgError:
        out = np.full_like(rhs, np.nan)
        for i in range(h.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.solve(h[i], rhs[i])
        return out


@dataclass
class _Penalised:
    """Firth's penalised fit of each column, at its current coefficients."""

    loglik: F64  # v: log-likelihood + ½ log det(information)
    p: F64  # n × v
    w: F64  # n × v: p (1 − p), 0 where the call is missing
    info_inv: F64  # v × k × k
    singular: NDArray[np.bool_]  # v

    def update(self, model: _Model, coef: F64, g: F64, present: F64,
               cols: NDArray[np.intp]) -> None:
        gc = g[:, cols]
        eta = model.eta(coef[cols], gc)
        p = special.expit(eta)
        w = p * (1.0 - p) * present[:, cols]
        info = model.information(w, gc)
        log_half_det = np.full(cols.size, np.nan)
        for i, m in enumerate(info):  # each alone: one singular must not stop the rest
            try:
                log_half_det[i] = np.log(np.diag(np.linalg.cholesky(m))).sum()
            except np.linalg.LinAlgError:
                self.singular[cols[i]] = True
        fitted = np.where(model.y[:, None] > 0, special.log_expit(eta), special.log_expit(-eta))
        self.loglik[cols] = np.einsum("ij,ij->j", fitted, present[:, cols]) + log_half_det
        self.p[:, cols], self.w[:, cols] = p, w
        self.info_inv[cols] = _inverse(info)


def _firth(model: _Model, g: F64, present: F64
           ) -> tuple[F64, F64, NDArray[np.bool_], NDArray[np.bool_]]:
    """plink2's FirthRegression (logistf's algorithm) for each column of ``g``, all at once:
    coefficients, inverse information, which failed (singular information) and which ran
    out of its 25 iterations."""
    n, v = g.shape
    coef = np.zeros((v, model.k))
    fit = _Penalised(np.zeros(v), np.zeros((n, v)), np.zeros((n, v)),
                     np.zeros((v, model.k, model.k)), np.zeros(v, dtype=bool))
    fit.update(model, coef, g, present, np.arange(v))
    active = ~fit.singular
    unfinished = np.zeros(v, dtype=bool)
    for iteration in range(25):
        cols = np.flatnonzero(active & ~fit.singular)
        if not cols.size:
            break
        gc, p = g[:, cols], fit.p[:, cols]
        hat = fit.w[:, cols] * model.leverage(fit.info_inv[cols], gc)
        grad = model.score((model.y[:, None] - p + hat * (0.5 - p)) * present[:, cols], gc)
        grad_max = np.abs(grad).max(axis=1)
        step = np.einsum("vij,vj->vi", fit.info_inv[cols], grad)
        step_max = np.abs(step).max(axis=1)
        capped = step_max > 5.0
        step[capped] *= (5.0 / step_max[capped])[:, None]
        step_max[capped] = 5.0
        coef[cols] += step
        converged = (step_max <= 1e-4) & (grad_max < 1e-4)
        old = fit.loglik[cols].copy()
        threshold = np.where(converged, old - 0.999999e-4, old)
        halving = np.ones(cols.size, dtype=np.int64)
        most = np.full(cols.size, 5)
        bailed = np.zeros(cols.size, dtype=bool)
        halving_more = np.ones(cols.size, dtype=bool)
        while halving_more.any():  # up to five step-halvings on the penalised likelihood
            at = np.flatnonzero(halving_more)
            fit.update(model, coef, g, present, cols[at])
            loglik = fit.loglik[cols[at]]
            stop = (halving[at] > most[at]) | fit.singular[cols[at]]
            better = loglik >= threshold[at]
            stop |= better & (loglik >= old[at])
            most[at] = np.where(better & ~stop, halving[at], most[at])
            bail = (~better & ~stop & (halving[at] == most[at]) & (step_max[at] < 1e-3)
                    & (grad_max[at] < 0.05) & (loglik >= old[at] - 1e-4))
            halving[at] -= bail  # as good as it gets: undo the step altogether
            most[at] -= bail
            bailed[at] |= bail
            go = at[~stop]
            coef[cols[go]] -= step[go] * (2.0 ** -halving[go].astype(np.float64))[:, None]
            halving[go] += 1
            halving_more[at[stop]] = False
        settled = (np.abs(fit.loglik[cols] - old) <= 1e-4) & (converged | bailed)
        active[cols[settled]] = False
        if iteration == 24:
            unfinished[cols[~settled]] = True
    return coef, fit.info_inv, fit.singular, unfinished


@dataclass
class _Trait:
    design: Design
    index: int
    extra: F64  # n × 2: [1, y]
    model: _Model
    all_firth: bool  # a covariate separates cases from controls: Firth for every variant

    @classmethod
    def build(cls, d: Design, y: F64, index: int, name: str, covariate_names: Sequence[str],
              firth_fallback: bool) -> _Trait:
        ys = y if d.rows is None else y[d.rows]
        cases = ys > 0
        if cases.all() or not cases.any():
            raise GwasInputError(f"trait {name!r} has only {'cases' if cases.all() else 'controls'}"
                                 " among the samples with every covariate: nothing to compare")
        separating = [covariate_names[j] for i, j in enumerate(d.kept)
                      if _separated_by(d.covariates[:, i], cases)]
        if separating and not firth_fallback:
            raise GwasInputError(
                f"covariate {separating[0]!r} separates the cases of {name!r} from its controls, "
                "so ordinary logistic regression cannot be fitted: drop it or allow Firth")
        return cls(d, index, np.asfortranarray(np.column_stack([np.ones(d.n), ys])),
                   _Model.of(d.covariates, ys), bool(separating))


@dataclass
class _Batch:
    """Variants fitted together: their dosages as variants × samples float32 (0 where a call
    is missing) and the missing calls as (variant, sample) pairs ordered by sample."""

    g_t: NDArray[np.float32]
    missing: tuple[NDArray[np.intp], NDArray[np.intp]]

    @classmethod
    def of(cls, dosages: NDArray[np.float32], cols: NDArray[np.intp]) -> _Batch:
        """The variants ``cols`` (sorted) of samples × variants ``dosages``."""
        if cols.size and cols[-1] - cols[0] + 1 == cols.size:  # a run: one copy, not two
            g_t = np.array(dosages[:, cols[0]:cols[-1] + 1].T, order="C")
        else:
            g_t = np.ascontiguousarray(dosages[:, cols].T)
        absent = np.isnan(g_t)
        var, sample = np.nonzero(absent)
        g_t[var, sample] = 0.0
        order = np.argsort(sample, kind="stable")
        return cls(g_t, (var[order], sample[order]))

    @property
    def v(self) -> int:
        return int(self.g_t.shape[0])

    def only(self, cols: NDArray[np.intp]) -> tuple[NDArray[np.float32],
                                                   tuple[NDArray[np.intp], NDArray[np.intp]]]:
        """The dosages and missing calls of the variants ``cols`` (sorted), renumbered."""
        position = np.full(self.v, -1)
        position[cols] = np.arange(cols.size)
        var, sample = self.missing
        kept = position[var]
        keep = kept >= 0
        return self.g_t[cols], (kept[keep], sample[keep])

    def dense(self) -> tuple[F64, F64]:
        """Samples × variants float64 dosages (0 where missing) and 1/0 presence."""
        g = np.asfortranarray(self.g_t.T, dtype=np.float64)
        present = np.ones_like(g)
        var, sample = self.missing
        present[sample, var] = 0.0
        return g, present


def _firth_dense(model: _Model, batch: _Batch
                 ) -> tuple[F64, F64, NDArray[np.bool_], NDArray[np.bool_]]:
    return _firth(model, *batch.dense())


def _fits(fitter: Callable[[_Model, _Batch], tuple[F64, F64, NDArray[np.bool_],
                                                   NDArray[np.bool_]]],
          model: _Model, dosages: NDArray[np.float32], cols: NDArray[np.intp], beta: F64,
          se: F64, err: NDArray[np.int8], batch_size: int) -> NDArray[np.intp]:
    """Fit the columns ``cols`` of ``dosages`` in batches; fill beta, SE and errors; return
    those failed."""
    failed = []
    for start in range(0, cols.size, batch_size):
        part = cols[start:start + batch_size]
        coef, h_inv, bad, unfinished = fitter(model, _Batch.of(dosages, part))
        valid = _valid(h_inv)
        good = valid & ~bad
        beta[part[good]] = coef[good, -1]
        se[part[good]] = np.sqrt(h_inv[good, -1, -1])
        err[part[~bad & ~valid]] = ERROR_CODE[INVALID_RESULT]
        err[part[good & unfinished]] = ERROR_CODE[UNFINISHED]
        failed.append(part[bad])
    return np.concatenate(failed) if failed else cols[:0]


def _logistic_block(trait: _Trait, first: int, dosages: NDArray[np.float32], firth_fallback: bool,
                    max_corr: float, max_vif: float) -> Block:
    d = trait.design
    y = trait.model.y
    s = variant_sums(d, dosages, trait.extra)
    err = check_variants(d, s, max_corr, max_vif)
    v = s.n.size
    cases = np.full(v, y.sum())
    for j in np.flatnonzero(s.n < d.n):
        cases[j] -= y[s.missing[j]].sum()
    alt_cases = s.products[1]
    alt_controls = s.total - alt_cases
    ref_cases = 2.0 * cases - alt_cases
    ref_controls = 2.0 * (s.n - cases) - alt_controls
    # plink2: when no case or no control carries one of the alleles, straight to Firth
    separated = np.minimum.reduce([alt_cases, alt_controls, ref_cases, ref_controls]) <= 0
    firth = np.flatnonzero((err == 0) & (separated | trait.all_firth))
    if not firth_fallback:
        err[firth] = ERROR_CODE["SEPARATION"]
        firth = firth[:0]
    ordinary = sets.difference(np.flatnonzero(err == 0), firth)
    g = d.take(dosages)
    beta, se = np.full(v, np.nan), np.full(v, np.nan)
    gave_up = _fits(_newton, trait.model, g, ordinary, beta, se, err,
                    max(8, min(_NEWTON_BATCH, _NEWTON_CELLS // d.n)))
    if firth_fallback:
        firth = np.concatenate([firth, gave_up])
    else:
        err[gave_up] = ERROR_CODE["LOGISTIC_CONVERGE_FAIL"]
    err[_fits(_firth_dense, trait.model, g, firth, beta, se, err,
              max(1, _FIRTH_BATCH_ELEMENTS // d.n))] = ERROR_CODE["FIRTH_CONVERGE_FAIL"]
    used_firth = np.zeros(v, dtype=bool)
    used_firth[firth] = True
    z = beta / se
    minor_is_alt = s.total <= s.n
    return {
        "variant": first + np.arange(v, dtype=np.int64),
        "trait_idx": np.full(v, trait.index, dtype=np.int64),
        "n": s.n,
        "n_cases": cases.astype(np.int64),
        "alt_count": s.total,
        "alt_count_cases": alt_cases,
        "mac_cases": np.where(minor_is_alt, alt_cases, ref_cases),
        "mac_controls": np.where(minor_is_alt, alt_controls, ref_controls),
        "beta": beta, "se": se, "stat": z, "p": 2.0 * special.ndtr(-np.abs(z)),
        "error": err,
        "firth": used_firth,
    }


LOGISTIC_EXTRA: Final = ("n_cases", "alt_count_cases", "mac_cases", "mac_controls")


def logistic_gwas(chunks: Iterable[Chunk] | Distributed, phenotypes: ArrayLike,
                  covariates: ArrayLike | None = None, *,
                  trait_names: Sequence[str] | None = None,
                  covariate_names: Sequence[str] | None = None,
                  firth_fallback: bool = True,
                  max_corr: float = MAX_CORR, max_vif: float = MAX_VIF,
                  threads: int = 1) -> pl.DataFrame:
    """Logistic association of each variant with each case/control trait (1 case, 0 control,
    NaN missing). Columns as ``linear_gwas`` (``stat`` is the Wald z), plus the numbers of
    cases and the minor allele's count in cases and in controls; ``test`` says whether the
    ordinary or Firth fit gave the row. ``threads`` as in ``linear_gwas``."""
    data = inputs(phenotypes, covariates, trait_names, covariate_names)
    values = data.traits[np.isfinite(data.traits)]
    if not np.isin(values, (0.0, 1.0)).all():
        raise GwasInputError("case/control traits must be 1 (case), 0 (control) or NaN "
                             "(missing); recode them (e.g. plink's 2/1 as 1/0)")
    traits = []
    for mask, members in trait_groups(data):
        d = design(mask, data.covariates, data.covariate_names,
                   traits=data.describe(members), quantitative=False,
                   max_corr=max_corr, max_vif=max_vif)
        traits += [_Trait.build(d, data.traits[:, j], j, data.trait_names[j],
                                data.covariate_names, firth_fallback) for j in members]

    def fit(first: int, dosages: NDArray[np.float32]) -> list[Block]:
        return [_logistic_block(trait, first, dosages, firth_fallback, max_corr, max_vif)
                for trait in traits]

    blocks = fitted(fit, chunks, data.n, threads)
    tests = np.concatenate([np.where(b.pop("firth"), FIRTH, LOGISTIC) for b in blocks]) if (
        blocks) else np.zeros(0, dtype=str)
    return results_frame(blocks, data.trait_names, tests, extra=LOGISTIC_EXTRA)
