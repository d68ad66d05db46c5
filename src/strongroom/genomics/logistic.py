"""Logistic GWAS for case/control traits, with plink2 --glm's Firth fallback.

Per variant, ``trait ~ 1 + dosage + covariates`` is fitted by Newton–Raphson (IRLS) from
zero, the variants of a chunk together: the Hessian's covariate blocks for all of them come
from two matrix products. The iteration, its stopping and failure rules, and the Hessian the
standard error comes from (the one of the last step's starting point) are plink2's, so that
results agree with it (plink2 runs them in single precision, this in double).

As in ``plink2 --glm firth-fallback`` (its default), a variant goes to Firth's penalised
regression when no case or no control carries one of its alleles, or when the ordinary fit
fails; so does every variant of a trait that a covariate separates. Firth's fit is plink2's
port of logistf: Newton steps on the penalised score capped at 5, up to five step-halvings
on the penalised likelihood, at most 25 iterations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import special

from strongroom.genomics.gwas import (
    _ERR,
    F64,
    INVALID_RESULT,
    MAX_CORR,
    MAX_VIF,
    UNFINISHED,
    Block,
    Chunk,
    Design,
    GwasInputError,
    _checked,
    check_variants,
    design,
    in_parallel,
    inputs,
    results_frame,
    trait_groups,
    variant_sums,
)

LOGISTIC: Final = "logistic"
FIRTH: Final = "firth"
_BATCH_ELEMENTS: Final = 1 << 23  # samples × variants per Newton batch: bounds its memory


@dataclass
class _Fit:
    beta: F64  # v
    se: F64
    err: NDArray[np.int8]
    firth: NDArray[np.bool_]


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


def _newton(c1: F64, cross: F64, pairs: tuple[NDArray[np.intp], NDArray[np.intp]], y: F64,
            g: F64, present: F64) -> tuple[F64, F64, NDArray[np.bool_], NDArray[np.bool_]]:
    """plink2's LogisticRegression for each column of ``g``, all at once.

    ``c1`` is [1, covariates]; ``cross`` its row-wise products for the pairs ``pairs``;
    ``present`` is 1 where the variant's call is present (0 drops the sample). Coefficients
    are ordered (intercept, covariates, genotype). Returns the coefficients, the inverse of
    the Hessian at the last step's start, which fits failed and which ran out of steps.
    """
    v = g.shape[1]
    kc = c1.shape[1]
    coef = np.zeros((v, kc + 1))
    h_last = np.full((v, kc + 1, kc + 1), np.nan)
    failed = np.zeros(v, dtype=bool)
    unfinished = np.zeros(v, dtype=bool)
    min_delta = np.full(v, 1e9)
    active = np.arange(v)
    for iteration in range(15):
        cols = active
        gc = g[:, cols]
        p = special.expit(c1 @ coef[cols, :kc].T + gc * coef[cols, kc])
        w = p * (1.0 - p) * present[:, cols]
        res = (y[:, None] - p) * present[:, cols]
        wg = w * gc
        h = h_last[cols]
        h[:, pairs[0], pairs[1]] = (cross.T @ w).T
        h[:, pairs[1], pairs[0]] = h[:, pairs[0], pairs[1]]
        h[:, :kc, kc] = h[:, kc, :kc] = (c1.T @ wg).T
        h[:, kc, kc] = np.einsum("ij,ij->j", wg, gc)
        grad = np.column_stack([(c1.T @ res).T, np.einsum("ij,ij->j", gc, res)])
        h_last[cols] = h
        delta = _solve(h, grad)
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


def _solve(h: F64, rhs: F64) -> F64:
    try:
        return np.asarray(np.linalg.solve(h, rhs[:, :, None])[:, :, 0])
    except np.linalg.LinAlgError:
        out = np.full_like(rhs, np.nan)
        for i in range(h.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.solve(h[i], rhs[i])
        return out


def _penalised(x: F64, y: F64, coef: F64) -> tuple[float, F64, F64, F64] | None:
    """Firth's penalised log-likelihood at ``coef``, with p, the weights and the inverse
    information; None if the information matrix is singular."""
    eta = x @ coef
    p = special.expit(eta)
    w = p * (1.0 - p)
    info = x.T @ (x * w[:, None])
    try:
        chol = np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        return None
    loglik = float(np.sum(np.where(y > 0, special.log_expit(eta), special.log_expit(-eta))))
    loglik += float(np.sum(np.log(np.diag(chol))))  # ½ log det(info)
    return loglik, p, w, np.asarray(np.linalg.inv(info))


def firth_regression(x: F64, y: F64) -> tuple[F64, F64, bool] | None:
    """plink2's FirthRegression: coefficients, inverse information and whether it ran out
    of iterations; None if the information matrix turns singular."""
    coef = np.zeros(x.shape[1])
    state = _penalised(x, y, coef)
    if state is None:
        return None
    loglik, p, w, info_inv = state
    for _ in range(25):
        hat = np.einsum("ij,jk,ik->i", x, info_inv, x) * w
        grad = x.T @ (y - p + hat * (0.5 - p))
        grad_max = float(np.abs(grad).max())
        step = info_inv @ grad
        step_max = float(np.abs(step).max())
        if step_max > 5.0:
            step *= 5.0 / step_max
            step_max = 5.0
        coef = coef + step
        converged = step_max <= 1e-4 and grad_max < 1e-4
        old = loglik
        threshold = old - 0.999999e-4 if converged else old
        max_halvings, halving, bailed = 5, 1, False
        while True:
            state = _penalised(x, y, coef)
            if state is None:
                return None
            loglik, p, w, info_inv = state
            if halving > max_halvings:
                break
            if loglik >= threshold:
                if loglik >= old:
                    break
                max_halvings = halving
            elif halving == max_halvings and step_max < 1e-3 and grad_max < 0.05 and (
                    loglik >= old - 1e-4):
                halving -= 1  # as good as it gets: undo the step altogether
                max_halvings -= 1
                bailed = True
            coef = coef - step * 2.0 ** -halving
            halving += 1
        if abs(loglik - old) <= 1e-4 and (converged or bailed):
            return coef, info_inv, False
    return coef, info_inv, True


def _firth_fits(c1: F64, y: F64, g: F64, present: F64, which: NDArray[np.intp],
                fit: _Fit) -> None:
    for j in which:
        keep = present[:, j] > 0
        x = np.column_stack([c1[keep], g[keep, j]])
        out = firth_regression(x, y[keep])
        fit.firth[j] = True
        if out is None:
            fit.err[j] = _ERR["FIRTH_CONVERGE_FAIL"]
            continue
        coef, info_inv, unfinished = out
        if not _valid(info_inv[None])[0]:
            fit.err[j] = _ERR[INVALID_RESULT]
            continue
        fit.beta[j], fit.se[j] = coef[-1], np.sqrt(info_inv[-1, -1])
        if unfinished:
            fit.err[j] = _ERR[UNFINISHED]


@dataclass
class _Trait:
    design: Design
    index: int
    y: F64  # 0/1 on the design's samples
    extra: F64  # n × 2: [1, y]
    c1: F64  # n × (1 + c): [1, raw covariates]
    cross: F64  # n × pairs: products of c1's columns, for the Hessian
    pairs: tuple[NDArray[np.intp], NDArray[np.intp]]
    all_firth: bool

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
        c1 = np.column_stack([np.ones(d.n), d.covariates])
        pairs = np.triu_indices(c1.shape[1])
        return cls(d, index, ys, np.asfortranarray(np.column_stack([np.ones(d.n), ys])), c1,
                   np.asfortranarray(c1[:, pairs[0]] * c1[:, pairs[1]]), pairs, bool(separating))


def _logistic_block(trait: _Trait, first: int, dosages: NDArray[np.float32], firth_fallback: bool,
                    max_corr: float, max_vif: float) -> Block:
    d = trait.design
    s = variant_sums(d, dosages, trait.extra)
    err = check_variants(d, s, max_corr, max_vif)
    v = s.n.size
    cases = np.full(v, trait.y.sum())
    for j in np.flatnonzero(s.n < d.n):
        cases[j] -= trait.y[s.missing[j]].sum()
    alt_cases = s.products[1]
    alt_controls = s.total - alt_cases
    ref_cases = 2.0 * cases - alt_cases
    ref_controls = 2.0 * (s.n - cases) - alt_controls
    separated = np.minimum.reduce([alt_cases, alt_controls, ref_cases, ref_controls]) <= 0
    fit = _Fit(np.full(v, np.nan), np.full(v, np.nan), err, np.zeros(v, dtype=bool))
    firth = np.flatnonzero((err == 0) & (separated | trait.all_firth))
    if not firth_fallback:
        err[firth] = _ERR["SEPARATION"]
        firth = firth[:0]
    ordinary = np.flatnonzero((err == 0) & ~separated & ~trait.all_firth)
    g32 = d.take(dosages)
    g = g32.astype(np.float64)
    present = (~np.isnan(g)).astype(np.float64)
    np.nan_to_num(g, copy=False)
    batch = max(1, _BATCH_ELEMENTS // max(d.n, 1))
    failed: list[NDArray[np.intp]] = []
    for start in range(0, ordinary.size, batch):
        cols = ordinary[start:start + batch]
        coef, h_inv, bad, unfinished = _newton(trait.c1, trait.cross, trait.pairs, trait.y,
                                               g[:, cols], present[:, cols])
        valid = _valid(h_inv)
        good = valid & ~bad
        fit.beta[cols[good]] = coef[good, -1]
        fit.se[cols[good]] = np.sqrt(h_inv[good, -1, -1])
        err[cols[~bad & ~valid]] = _ERR[INVALID_RESULT]
        err[cols[good & unfinished]] = _ERR[UNFINISHED]
        failed.append(cols[bad])
    gave_up = np.concatenate(failed) if failed else ordinary[:0]
    if firth_fallback:
        firth = np.concatenate([firth, gave_up])
    else:
        err[gave_up] = _ERR["LOGISTIC_CONVERGE_FAIL"]
    _firth_fits(trait.c1, trait.y, g, present, firth, fit)
    z = fit.beta / fit.se
    p = 2.0 * special.ndtr(-np.abs(z))
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
        "beta": fit.beta, "se": fit.se, "stat": z, "p": p,
        "error": err,
        "firth": fit.firth,
    }


LOGISTIC_EXTRA: Final = ("n_cases", "alt_count_cases", "mac_cases", "mac_controls")


def logistic_gwas(chunks: Iterable[Chunk], phenotypes: ArrayLike,
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
        d = design(mask, data.covariates, data.covariate_names, quantitative=False,
                   max_corr=max_corr, max_vif=max_vif)
        traits += [_Trait.build(d, data.traits[:, j], j, data.trait_names[j],
                                data.covariate_names, firth_fallback) for j in members]

    def fit(first: int, dosages: NDArray[np.float32]) -> list[Block]:
        return [_logistic_block(trait, first, dosages, firth_fallback, max_corr, max_vif)
                for trait in traits]

    blocks = in_parallel(fit, _checked(chunks, data.n), threads)
    tests = np.concatenate([np.where(b.pop("firth"), FIRTH, LOGISTIC) for b in blocks]) if (
        blocks) else np.zeros(0, dtype=str)
    return results_frame(blocks, data.trait_names, tests, extra=LOGISTIC_EXTRA)
