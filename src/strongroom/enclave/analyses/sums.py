"""A model's row-level work done where the rows are: sums over the design, never the design.

On an engine whose rows live on a cluster (Spark), OLS and logistic regression need not build
their design matrix (a float per row and term) on the Strongroom host. The host prepares the
definition's complete rows as before (winsorised, categories recoded, every id set the output
check reads: regression.py's own code), and hands the engine a narrow frame of them: ``pid``,
the outcome and each covariate as fitted (a categorical one as its level codes). The engine's
executors build each row's terms from it (:func:`matrix`, the host's own construction) and
give back sums only: ``XᵀWX`` and ``XᵀW(y − μ)`` for each Newton step, and then, given the
inverse information, what the check's facts need per participant (summed leverage, the most
one participant moves each coefficient), reduced to one number each.

Every function here runs on any :class:`Rows`: :class:`LocalRows` (the rows in memory, split
by participant as a cluster's partitions are, for the tests) or the Spark engine's. What this
path cannot answer as the host would (a design whose rank the Gram matrix leaves in doubt, a
fit that does not settle as Newton's method does when nothing separates) raises
:class:`HostOnlyError`, and the caller runs the host's fit instead: never a different answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom.enclave.results import FloatArray

PID = "pid"
OUTCOME = "y"
Columns = Mapping[str, npt.NDArray[np.generic]]
Partial = Callable[[Columns], dict[str, FloatArray]]
MAX_PREFIX = "max:"  # a partial's key whose parts are reduced by their maximum, not summed
NEWTON_STEPS = 30  # from zeros, a fit that is not separated settles in a handful
SETTLED = 1e-10  # Newton's method stops when no coefficient moves further than this
WELL_CONDITIONED = 1e6  # the unit Gram matrix's condition number the normal equations take


class HostOnlyError(Exception):
    """This path cannot give the host's answer here: the caller fits on the host."""


class Rows(Protocol):
    """A narrow frame of a model's complete rows where an engine keeps them, every
    participant's rows in one part."""

    def each(self, work: Partial) -> dict[str, FloatArray]:
        """``work`` over each part's columns, its results summed over the parts (those whose
        key starts ``max:`` by their maximum)."""
        ...


def reduce(parts: Iterable[dict[str, FloatArray]]) -> dict[str, FloatArray]:
    """The parts' results combined: summed, or (``max:`` keys) their maximum."""
    out: dict[str, FloatArray] = {}
    for part in parts:
        for key, value in part.items():
            found = out.get(key)
            if found is None:
                out[key] = np.asarray(value, dtype=np.float64).copy()
            elif key.startswith(MAX_PREFIX):
                out[key] = np.maximum(found, value)
            else:
                out[key] = found + value
    return out


class LocalRows:
    """The rows in this process, split into ``parts`` by participant (as a cluster's
    partitions split them): the executors' arithmetic run here, for tests."""

    def __init__(self, frame: pl.DataFrame, parts: int = 3):
        self.frame = frame
        self.parts = parts

    def each(self, work: Partial) -> dict[str, FloatArray]:
        part = self.frame[PID].hash(seed=7) % self.parts
        return reduce([work(columns(self.frame.filter(part == i)))
                       for i in range(self.parts)])


def columns(frame: pl.DataFrame) -> dict[str, npt.NDArray[np.generic]]:
    return {name: frame[name].to_numpy() for name in frame.columns}


@dataclass(frozen=True)
class Recipe:
    """How a row's terms are built from the narrow frame: the intercept, then per term the
    column it reads and, for a categorical one's dummy, the level code it is 1 at."""

    terms: tuple[tuple[str, int | None], ...]

    @property
    def width(self) -> int:
        return 1 + len(self.terms)


def matrix(cols: Columns, recipe: Recipe) -> FloatArray:
    """The design's rows for these columns, with its intercept, as the host builds them."""
    n = len(cols[PID])
    return np.column_stack([np.ones(n), *(matrix_column(cols, term) for term in recipe.terms)])


def matrix_column(cols: Columns, term: tuple[str, int | None]) -> FloatArray:
    """One term's column of :func:`matrix` (the host builds a term at a time, for its id
    sets, never the whole matrix)."""
    name, level = term
    values = cols[name]
    return (np.asarray(values, dtype=np.float64) if level is None
            else (values == level).astype(np.float64))


def _grouped_max(values: FloatArray, ids: npt.NDArray[np.generic]) -> FloatArray:
    """Per column of ``values`` (rows × c), the largest sum over one participant's rows."""
    if len(ids) == 0:
        return np.zeros(values.shape[1])
    pids = np.asarray(ids, dtype=np.int64)
    if bool(np.all(pids[1:] > pids[:-1])):  # one row each, in order: rows are people
        return np.asarray(values.max(axis=0), dtype=np.float64)
    codes = np.unique(pids, return_inverse=True)[1]
    return np.array([float(np.bincount(codes, weights=values[:, j]).max())
                     for j in range(values.shape[1])])


def _gram(cols: Columns, recipe: Recipe) -> dict[str, FloatArray]:
    x = matrix(cols, recipe)
    y = np.asarray(cols[OUTCOME], dtype=np.float64)
    return {"xx": (x.T @ x).ravel(), "xy": x.T @ y}


def _logistic_at(cols: Columns, recipe: Recipe, beta: FloatArray) -> dict[str, FloatArray]:
    """One Newton step's sums at ``beta``: the information, the score and the
    log-likelihood (statsmodels' Logit's own formulas)."""
    x = matrix(cols, recipe)
    y = np.asarray(cols[OUTCOME], dtype=np.float64)
    eta = x @ beta
    mu = 1 / (1 + np.exp(-eta))
    q = 2 * y - 1
    w = mu * (1 - mu)
    return {"h": (x.T @ (x * w[:, None])).ravel(), "g": x.T @ (y - mu),
            "llf": np.array([np.sum(np.log(1 / (1 + np.exp(-q * eta))))]),
            # rows on their own side: all of them is complete separation (the host decides)
            "wrong": np.array([float(np.count_nonzero((mu > 0.5) != (y == 1)))])}


def _facts(cols: Columns, recipe: Recipe, beta: FloatArray, inverse: FloatArray,
           logistic: bool) -> dict[str, FloatArray]:
    """Per participant, their rows' summed leverage and ``Σ |(XᵀWX)⁻¹ xᵢ|`` per coefficient,
    each reduced to its largest; and the residuals' (or logits') extremes."""
    x = matrix(cols, recipe)
    y = np.asarray(cols[OUTCOME], dtype=np.float64)
    eta = x @ beta
    effect = np.abs(x @ inverse.T)  # rows × p: |(XᵀWX)⁻¹ xᵢ|
    if logistic:
        p = 1 / (1 + np.exp(-eta))
        w = p * (1 - p)
        logit = np.abs(np.log(np.clip(p, 1e-12, 1)) - np.log(np.clip(1 - p, 1e-12, 1)))
        extreme = {"max:logit": np.array([float(logit.max(initial=0.0))])}
    else:
        w = np.ones(len(y))
        r = y - eta
        extreme = {"rss": np.array([float(r @ r)]), "xr": x.T @ r,
                   "max:residual": np.array([float(np.abs(r).max(initial=0.0))])}
    leverage = np.einsum("ij,jk,ik->i", x, inverse, x) * w
    per = _grouped_max(np.column_stack([leverage, effect]), cols[PID])
    return {"max:influence": per[:1], "max:effect": per[1:], **extreme}


@dataclass(frozen=True)
class Design:
    """What the host knows of a model's rows without their design matrix."""

    rows: Rows
    recipe: Recipe
    n: int  # rows
    moderate: bool  # every term's largest value within 1e±100 (regression._moderate)


@dataclass
class Fitted:
    """A fit from sums: estimates, their covariance (unscaled for OLS), and the facts."""

    params: FloatArray
    inverse: FloatArray  # (XᵀWX)⁻¹
    llf: float
    influence: float
    most: FloatArray  # per coefficient: the most one participant's rows move it (unscaled)
    rss: float = math.nan
    max_residual: float = math.nan
    max_logit: float = math.nan


def _scaled_inverse(information: FloatArray) -> FloatArray:
    """As sensitivity.most_moved takes it: scaled to unit diagonal, inverted, scaled back."""
    scale = np.sqrt(np.abs(np.diag(information)))
    scale[scale == 0] = 1.0
    outer = np.outer(scale, scale)
    try:
        inverse: FloatArray = np.linalg.inv(information / outer) / outer
    except np.linalg.LinAlgError:
        raise HostOnlyError("singular information") from None
    return inverse


def _full_rank(d: Design, gram: FloatArray) -> None:
    """regression.check_rank's fast test, from the Gram matrix; anything it leaves in doubt
    (or a design with no more rows than terms) goes to the host, which decides."""
    from strongroom.enclave.analyses.regression import _clearly_full_rank

    if d.n <= d.recipe.width or not d.moderate:
        raise HostOnlyError("rank")
    scale = np.sqrt(np.abs(np.diag(gram)))
    scale[scale == 0] = 1.0
    unit = gram / np.outer(scale, scale)
    if not _clearly_full_rank(unit) or np.linalg.cond(unit) > WELL_CONDITIONED:
        raise HostOnlyError("rank")


def logistic(d: Design) -> Fitted:
    """Newton's method from zeros (statsmodels' Logit's), each step's sums on the rows."""
    p = d.recipe.width
    first = d.rows.each(partial(_gram, recipe=d.recipe))
    _full_rank(d, first["xx"].reshape(p, p))
    beta = np.zeros(p)
    for _ in range(NEWTON_STEPS):
        sums = d.rows.each(partial(_logistic_at, recipe=d.recipe, beta=beta))
        information, score = sums["h"].reshape(p, p), sums["g"]
        if not (np.all(np.isfinite(information)) and np.all(np.isfinite(score))):
            raise HostOnlyError("not finite")
        if float(sums["wrong"][0]) == 0:  # every row on its side: separated, no estimate
            raise HostOnlyError("separation")
        try:
            step = np.linalg.solve(information, score)
        except np.linalg.LinAlgError:
            raise HostOnlyError("singular information") from None
        beta = beta + step
        if np.all(np.abs(step) < SETTLED):
            break
    else:
        raise HostOnlyError("did not settle")
    at = d.rows.each(partial(_logistic_at, recipe=d.recipe, beta=beta))
    information = at["h"].reshape(p, p)
    llf = float(at["llf"][0])
    if not math.isfinite(llf) or float(at["wrong"][0]) == 0:
        raise HostOnlyError("separation")
    inverse = _scaled_inverse(information)
    facts = d.rows.each(partial(_facts, recipe=d.recipe, beta=beta, inverse=inverse,
                                logistic=True))
    covariance = np.asarray(np.linalg.inv(information), dtype=np.float64)
    return Fitted(beta, covariance, llf, float(facts["max:influence"][0]), facts["max:effect"],
                  max_logit=float(facts["max:logit"][0]))


def least_squares(d: Design) -> Fitted:
    """The normal equations' solution, refined once by the residuals' own sums, then the
    residual sum of squares and the facts at it."""
    p = d.recipe.width
    first = d.rows.each(partial(_gram, recipe=d.recipe))
    gram = first["xx"].reshape(p, p)
    _full_rank(d, gram)
    inverse = _scaled_inverse(gram)
    beta = inverse @ first["xy"]
    correction = d.rows.each(partial(_facts, recipe=d.recipe, beta=beta, inverse=inverse,
                                     logistic=False))
    beta = beta + inverse @ correction["xr"]
    facts = d.rows.each(partial(_facts, recipe=d.recipe, beta=beta, inverse=inverse,
                                logistic=False))
    return Fitted(beta, inverse, math.nan, float(facts["max:influence"][0]),
                  facts["max:effect"], rss=float(facts["rss"][0]),
                  max_residual=float(facts["max:residual"][0]))
