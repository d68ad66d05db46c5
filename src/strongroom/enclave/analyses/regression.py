"""OLS and logistic regression (statsmodels, on arrays: no formula is built from user text).

Rows with a missing outcome or covariate are left out. A categorical covariate becomes one
dummy per level against its most frequent level (the reference); a level held by fewer than
the project's threshold is counted in the reference (``winsor.recoded``, the threshold's own
decision, silently and always), so no coefficient rests on a few people's outcomes. Every
term is a row of COEFFICIENT cells (coef, se, ci_low, ci_high, p) whose contributors are the
participants the estimate rests on: a dummy's are the participants at that level; the
intercept's and a continuous term's are all participants in the fit. ``Result.levels`` lists
the participants at every level (reference included) and, for logistic regression, at each
outcome value.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.linalg

from strongroom.enclave import winsor
from strongroom.enclave.analyses import sensitivity, sums
from strongroom.enclave.analyses.frame import (
    PID,
    Levels,
    distinct,
    encode,
    finite,
    floats,
    group_pids,
    person_codes,
    pids,
)
from strongroom.enclave.analyses.spec import LogisticSpec, OlsSpec
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, FloatArray, PidArray, Result
from strongroom.enclave.steps import Rounding, nice_step
from strongroom.errors import Invalid

INTERCEPT = "Intercept"
MODEL_ROW_LABEL = "model"  # the row of a model's own figures (R², log-likelihood …)
MODEL_ROW = (MODEL_ROW_LABEL,)
MODEL_TABLE = "model"
MAX_LEVELS = 100  # per categorical covariate: more is not a covariate but an identifier
COEFFICIENT_COLUMNS = ("coef", "se", "ci_low", "ci_high", "p")


@dataclass
class Design:
    """The rows a model is fitted on, its covariate matrix (no intercept) and its terms."""

    used: pl.DataFrame  # the complete rows: pid, responses, covariates
    x: FloatArray  # one column per term
    terms: list[str]
    term_variables: list[str]  # the covariate each term comes from
    term_pids: list[PidArray]  # the participants each term's estimate rests on
    everyone: PidArray  # the distinct participants in the fit
    levels: dict[str, PidArray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    categories: dict[str, Levels] = field(default_factory=dict)  # as fitted (rare ones moved)
    # per term, the covariate it reads and (a dummy) the level code it is 1 at
    recipe: list[tuple[str, int | None]] = field(default_factory=list)

    @property
    def ids(self) -> PidArray:
        return pids(self.used)


MISSING_NOTE = "rows with a missing value in the outcome or a covariate are left out"
REPEATED_NOTE = ("a participant on several rows counts once per row: the model treats rows as "
                 "independent, so standard errors may be too small")


def design(frame: pl.DataFrame, responses: list[str], covariates: list[str],
           categorical: list[str], k: int = 0, build: bool = True) -> Design:
    """Complete rows of ``responses`` and ``covariates``, with dummies for the categorical
    (a level held by fewer than ``k``, the project's threshold, counted in the reference).
    ``build``: make the covariate matrix (else ``x`` has no columns and ``recipe`` says how
    an engine's executors build it: sums.py)."""
    used = frame.select(PID, *responses, *covariates).drop_nulls()
    # the notes are the same whatever the data: a note shown only when some row is missing
    # (or repeated) would answer a question about whoever the definition picked out
    notes = [MISSING_NOTE, REPEATED_NOTE, *([winsor.CATEGORY_NOTE] if categorical and k else [])]
    if used.height == 0:
        raise Invalid("no row has values for the outcome and every covariate")
    ids = pids(used)
    everyone = distinct(ids)
    columns: list[FloatArray] = []
    terms: list[str] = []
    term_variables: list[str] = []
    term_pids: list[PidArray] = []
    levels: dict[str, PidArray] = {}
    categories: dict[str, Levels] = {}
    recipe: list[tuple[str, int | None]] = []
    for name in covariates:
        if name in categorical:
            categories[name] = winsor.recoded(encode(used[name], missing=False,
                                                     limit=MAX_LEVELS), ids, k)
            dummies = _dummies(name, categories[name], ids, levels)
            for label, j, who in dummies:
                if build:
                    columns.append((categories[name].codes == j).astype(np.float64))
                recipe.append((name, j))
                terms.append(f"{name}={label}")
                term_variables.append(name)
                term_pids.append(who)
            continue
        dtype = used.schema[name]
        if not (dtype.is_numeric() or isinstance(dtype, pl.Boolean)):
            raise Invalid(f"{name!r} is not numeric: list it in categorical, or derive a number "
                          "from it in the dataset definition")
        values = floats(used, name)
        if build:
            columns.append(values)
        recipe.append((name, None))
        levels[f"support:{name}"] = support(values, ids)
        terms.append(name)
        term_variables.append(name)
        term_pids.append(everyone)
    x = np.column_stack(columns) if columns else np.empty((used.height, 0))
    return Design(used, x, terms, term_variables, term_pids, everyone, levels, notes, categories,
                  recipe)


def support(values: FloatArray, ids: PidArray) -> PidArray:
    """The participants a numeric covariate's coefficient rests on: those whose value is not
    its most common one (a 0/1 flag that is 1 for one person rests on that person alone)."""
    found, counts = np.unique(values, return_counts=True)
    return distinct(ids[values != found[np.argmax(counts)]])


def influence(x: FloatArray, ids: PidArray, weights: FloatArray | None = None) -> float:
    """The largest summed leverage of one participant's rows in the design ``x`` (weighted
    for logistic regression): the share of their own value in their fitted value, so 1/m
    for a group of m that some combination of covariates singles out."""
    xw = x if weights is None else x * np.sqrt(weights)[:, None]
    h = _leverages(xw)
    codes = person_codes(ids)
    return float(np.bincount(codes, weights=h).max())


def _leverages(x: FloatArray) -> FloatArray:
    """Each row's leverage, the diagonal of x(xᵀx)⁻¹xᵀ, from the Cholesky factor of the
    Gram matrix of unit columns (the leverages do not depend on the columns' scale): a
    fraction of a Householder QR at 500,000 rows, and within 1e-6 of it for any design
    check_rank passes whose columns are not near-collinear; one that is gets the QR."""
    if _moderate(x):
        scale = np.sqrt(np.einsum("ij,ij->j", x, x))
        scale[scale == 0] = 1.0
        unit = x / scale
        gram = unit.T @ unit
        if np.linalg.cond(gram) < 1e8:  # the Cholesky route squares the condition number
            try:
                factor = scipy.linalg.cholesky(gram, lower=True)
                z = scipy.linalg.solve_triangular(factor, unit.T, lower=True,
                                                  check_finite=False)
                return np.asarray(np.einsum("ij,ij->j", z, z), dtype=np.float64)
            except np.linalg.LinAlgError:
                pass
    q, _ = np.linalg.qr(x)  # full rank: check_rank ran first
    return np.asarray(np.einsum("ij,ij->i", q, q), dtype=np.float64)


def coefficient_steps(x: FloatArray, y: FloatArray, ids: PidArray) -> FloatArray:
    """Per coefficient, the most one participant could move it: Σ over their rows of
    |(XᵀX)⁻¹xᵢ| times the outcome's spread. An estimate shown finer than that (an intercept
    times a group's size) would give back one person's outcome: see
    docs/explanation/output-check.md, release precision."""
    q, r = np.linalg.qr(x)
    weights = np.abs(scipy.linalg.solve_triangular(r, q.T))  # (XᵀX)⁻¹Xᵀ, p × rows
    codes = person_codes(ids)
    spread = float(np.ptp(y))
    return np.array([nice_step(float(np.bincount(codes, weights=w).max()) * spread)
                     for w in weights])


def _rounded(table: FloatArray, steps: FloatArray, df: float | None,
             rounding: Rounding) -> FloatArray:
    """Estimates, SEs and confidence limits to each term's step, and p-values worked out
    from those rounded figures (a p-value at six digits gives back the exact t, so the exact
    estimate: see sensitivity.py); ``df``: the t distribution's, None for the normal."""
    out = table.copy()
    for i, step in enumerate(steps):
        if not np.isfinite(step):  # one participant could move it anywhere: not shown
            out[i, :4] = np.nan
        elif step > 0:
            out[i, :4] = [rounding(float(v), step) if np.isfinite(v) else v
                          for v in table[i, :4]]
    out[:, 4] = sensitivity.p_values(out[:, 0], out[:, 1], df,
                                     np.where(np.isfinite(steps), steps / 2, np.nan))
    return out


# which categorical covariate has a single level is the data's answer (the first of several
# to fail), so the refusal names none
SINGLE_LEVEL = ("a categorical covariate has a single level in the rows used (levels held by "
                "fewer than the threshold are counted in the most common), so it cannot be "
                "categorical (which one is an answer about the data, so it is not said): leave "
                "it out or merge levels")


def _dummies(name: str, coded: Levels, ids: PidArray,
             levels: dict[str, PidArray]) -> list[tuple[str, int, PidArray]]:
    """(label, level code, participants) per non-reference level; ``levels`` gets them
    all."""
    if len(coded) < 2:
        raise Invalid(SINGLE_LEVEL)
    counts = np.bincount(coded.codes, minlength=len(coded))
    reference = int(np.argmax(counts))  # the most frequent level (the first on a tie)
    members = group_pids(coded.codes, ids, len(coded))
    for label, who in zip(coded.labels, members, strict=True):
        levels[f"level:{name}={label}"] = who
    return [(label, j, members[j]) for j, label in enumerate(coded.labels) if j != reference]


def check_rank(x: FloatArray, term_variables: list[str]) -> None:
    """Refuse a singular design, naming none of the covariates involved (which are dependent is
    the data's answer) and never a level's value."""
    if x.shape[0] <= x.shape[1]:  # the row count itself is not said: it is unchecked output
        raise Invalid(f"the model has {x.shape[1]} parameters and no more rows than that: use "
                      "fewer covariates or levels, or a larger population")
    if _moderate(x):
        gram = x.T @ x
        scale = np.sqrt(np.abs(np.diag(gram)))  # each column's norm
        scale[scale == 0] = 1.0
        if _clearly_full_rank(gram / np.outer(scale, scale)):
            return
    else:
        scale = np.linalg.norm(x, axis=0)
        scale[scale == 0] = 1.0
    r, _ = scipy.linalg.qr(x / scale, mode="r", pivoting=True, overwrite_a=True)
    diagonal = np.abs(np.diag(r))
    rank = int(np.count_nonzero(diagonal > diagonal[0] * max(x.shape) * np.finfo(float).eps))
    if rank < x.shape[1]:
        # which covariates are dependent is the data's to say (a covariate equal to another
        # except on one row, or on none): naming them told the red team a target's band
        # among four for one rationed refusal, so none is named
        asked = len(set(term_variables) - {INTERCEPT})
        raise Invalid(f"the covariates are collinear: one of the {asked} asked for "
                      "is constant in this population, or a combination of others or of the "
                      "levels of a categorical one (which one is an answer about the data, so "
                      "it is not said); leave out a covariate you expect to be redundant, or "
                      "merge levels, and ask again")


def _moderate(x: FloatArray) -> bool:
    """Whether every column's largest value is within 1e±100, where the Gram matrix's sums of
    squares and products are exact enough to read (a red-team design of collinear columns
    near 1e-160 underflowed them and passed as full rank): others go to the QR."""
    peak = np.max(np.abs(x), axis=0) if x.size else np.ones(x.shape[1])
    return bool(np.all((peak > 1e-100) & (peak < 1e100)))


def _clearly_full_rank(unit_gram: FloatArray) -> bool:
    """Whether the Gram matrix of the unit columns already shows the design far from
    singular: its eigenvalues are the squared singular values, accurate to about 1e-15 of
    the largest, so a smallest above 1e-8 of it (singular values 1e-4 apart) leaves no doubt
    where the QR's test draws the line at 1e-10. Anything closer goes to the QR."""
    if not np.all(np.isfinite(unit_gram)):
        return False
    values = np.linalg.eigvalsh(unit_gram)
    return bool(values[0] > 1e-8 * values[-1])


def _with_intercept(d: Design) -> tuple[FloatArray, list[str], list[str], list[PidArray]]:
    x = np.column_stack([np.ones(d.x.shape[0]), d.x])
    return (x, [INTERCEPT, *d.terms], [INTERCEPT, *d.term_variables],
            [d.everyone, *d.term_pids])


def coefficient_cells(terms: list[str], term_pids: list[PidArray], kind: CellKind,
                      columns: tuple[str, ...], values: FloatArray) -> list[Cell]:
    """One row of cells per term; ``values`` has a column per entry of ``columns``."""
    return [Cell((term,), column, kind, finite(values[i, j]), who)
            for i, (term, who) in enumerate(zip(terms, term_pids, strict=True))
            for j, column in enumerate(columns)]


def statistic_cells(stats: dict[str, float], everyone: PidArray, steps: dict[str, float],
                    rounding: Rounding) -> list[Cell]:
    """The fit's statistics, each rounded to its step (``sensitivity``; hidden: None); the
    exact value stays with the cell for the check (a near-perfect fit is judged on it, not on
    a draw that may round 0.995 down to 0.98), never rendered."""
    return [Cell(MODEL_ROW, name, CellKind.STATISTIC,
                 sensitivity.shown(finite(value), steps[name], rounding), everyone,
                 table=MODEL_TABLE, exact=finite(value))
            for name, value in stats.items()]


def ols(spec: OlsSpec, frame: pl.DataFrame, rounding: Rounding, k: int = 0) -> Result:
    """Least squares of a numeric outcome on the covariates, with an intercept."""
    import statsmodels.api as sm

    d = design(frame, [spec.outcome], spec.covariates, spec.categorical, k)
    if not d.used.schema[spec.outcome].is_numeric():
        raise Invalid(f"the outcome {spec.outcome!r} is not numeric: OLS needs a number")
    x, terms, variables, term_pids = _with_intercept(d)
    check_rank(x, variables)
    y = floats(d.used, spec.outcome)
    if np.ptp(y) == 0:
        raise Invalid(f"the outcome {spec.outcome!r} is the same on every row used")
    with warnings.catch_warnings(record=True):  # a perfect fit divides by zero: refused below
        warnings.simplefilter("always")
        fit = sm.OLS(y, x).fit()
        table = np.column_stack([fit.params, fit.bse, fit.conf_int(0.05), fit.pvalues])
    if fit.ssr <= 1e-12 * float(np.sum((y - y.mean()) ** 2)):
        raise Invalid("the outcome is an exact combination of the covariates (a perfect fit), "
                      "so the model has no error to estimate")
    table = _rounded(table, coefficient_steps(x, y, d.ids), float(fit.df_resid), rounding)
    cells = coefficient_cells(terms, term_pids, CellKind.COEFFICIENT, COEFFICIENT_COLUMNS, table)
    steps = sensitivity.least_squares_steps(y, np.asarray(fit.resid, dtype=np.float64), d.ids,
                                            x.shape[1])
    cells += statistic_cells({"r_squared": fit.rsquared, "adj_r_squared": fit.rsquared_adj,
                              "log_likelihood": fit.llf, "aic": fit.aic}, d.everyone, steps,
                             rounding)
    facts = {"residual_df": float(fit.df_resid), "n_obs": float(len(d.everyone)),
             "n_parameters": float(x.shape[1])}
    # the outcome too: an outcome that is 0 for all but one person puts their value in the
    # coefficients (an intercept times the group size)
    levels = {**d.levels, f"support:{spec.outcome}": support(y, d.ids)}
    return Result(AnalysisKind.OLS, spec.model_dump(mode="json"), cells, facts=facts,
                  levels=levels, notes=d.notes, influence=influence(x, d.ids))


def binary(frame: pl.DataFrame, name: str, what: str) -> FloatArray:
    """A 0/1 (or true/false) column as floats, or :class:`Invalid`."""
    dtype = frame.schema[name]
    y = floats(frame, name) if (dtype.is_numeric() or isinstance(dtype, pl.Boolean)) else None
    if y is None or not np.all((y == 0) | (y == 1)):
        raise Invalid(f"{what} {name!r} must hold 0/1 or true/false")
    return y


def logistic(spec: LogisticSpec, frame: pl.DataFrame, rounding: Rounding,
             k: int = 0) -> Result:
    """Logistic regression of a 0/1 outcome; separation and non-convergence are refused."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        HessianInversionWarning,
        PerfectSeparationError,
        PerfectSeparationWarning,
    )

    d = design(frame, [spec.outcome], spec.covariates, spec.categorical, k)
    y = binary(d.used, spec.outcome, "the outcome")
    ids = d.ids
    with_event, without = distinct(ids[y == 1]), distinct(ids[y == 0])
    if len(with_event) == 0 or len(without) == 0:
        raise Invalid(f"the outcome {spec.outcome!r} takes a single value in the rows used")
    if any(_separates(d, name, y) for name in spec.categorical):
        # which covariate separates is the data's answer (the first of several): none named
        raise Invalid("the outcome is the same for everyone at a level of a categorical "
                      "covariate (separation; which one is an answer about the data, so it is "
                      "not said), so its coefficient cannot be estimated: merge levels or "
                      "leave a covariate out")
    x, terms, variables, term_pids = _with_intercept(d)
    check_rank(x, variables)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(y, x, check_rank=False).fit(disp=0, maxiter=200)  # rank: above
        except (PerfectSeparationError, np.linalg.LinAlgError):
            fit = None
    bad = {w.category for w in caught} & {PerfectSeparationWarning, ConvergenceWarning,
                                          HessianInversionWarning}
    if fit is None or PerfectSeparationWarning in bad or (bad and _classifies_all(fit, y)):
        raise Invalid("the covariates predict the outcome perfectly (separation), so the "
                      "coefficients cannot be estimated: leave out or band the covariate that "
                      "separates the outcome")
    if bad or not fit.mle_retvals.get("converged", False):
        raise Invalid("the logistic model did not converge: a covariate may almost separate "
                      "the outcome (quasi-separation), or be on a very large scale; band, "
                      "rescale or leave it out")
    p = np.asarray(fit.predict(), dtype=np.float64)
    # the intercept-only model's log-likelihood in closed form (its estimate is the share of
    # events): statsmodels fits it again by Nelder–Mead, 1.5 s at 500,000 rows
    share = float(y.mean())
    ll_null = float(len(y) * (share * math.log(share) + (1 - share) * math.log1p(-share)))
    pseudo_r_squared = 1 - float(fit.llf) / ll_null
    steps, fit_steps = sensitivity.logistic_steps(x, p, y, ids, ll_null, pseudo_r_squared)
    table = _rounded(np.column_stack([fit.params, fit.bse, fit.conf_int(0.05), fit.pvalues]),
                     steps, None, rounding)
    cells = coefficient_cells(terms, term_pids, CellKind.COEFFICIENT, COEFFICIENT_COLUMNS, table)
    cells += statistic_cells({"pseudo_r_squared": pseudo_r_squared, "log_likelihood": fit.llf,
                              "ll_null": ll_null, "aic": fit.aic}, d.everyone, fit_steps,
                             rounding)
    facts = {"residual_df": float(fit.df_resid), "n_obs": float(len(d.everyone)),
             "n_parameters": float(x.shape[1]), "events": float(len(with_event)),
             "non_events": float(len(without))}
    levels = {**d.levels, "outcome=1": with_event, "outcome=0": without}
    return Result(AnalysisKind.LOGISTIC, spec.model_dump(mode="json"), cells, facts=facts,
                  levels=levels, notes=d.notes, influence=influence(x, ids, p * (1 - p)))


def _classifies_all(fit: Any, y: FloatArray) -> bool:
    """Whether the last estimate puts every row on its own side: complete separation, for
    which no maximum-likelihood estimate exists."""
    predicted = np.asarray(fit.predict(), dtype=np.float64)
    return bool(np.all((predicted > 0.5) == (y == 1)))


def _separates(d: Design, name: str, y: FloatArray) -> bool:
    """Whether some level of ``name`` (as fitted) has only events or only non-events."""
    coded = d.categories[name]
    rows = np.bincount(coded.codes, minlength=len(coded))
    events = np.bincount(coded.codes, weights=y, minlength=len(coded))
    return bool(np.any((events == 0) | (events == rows)))


# -- the same fits with their row-level sums taken where an engine keeps the rows ------------

Placement = Callable[[pl.DataFrame], AbstractContextManager[sums.Rows] | None]
"""Where a model's narrow rows go for their sums (an engine's ``model_rows``): a context for
one fit, or None where the engine fits here."""


def placed(fit: Callable[..., Result | None], host: Callable[..., Result],
           place: Placement | None) -> Callable[[Any, pl.DataFrame, Rounding, int], Result]:
    """``fit`` with its rows at ``place``, or ``host`` where there is no place or the placed
    fit cannot answer as the host would (sums.HostOnlyError): never a different answer."""
    def run(spec: Any, frame: pl.DataFrame, rounding: Rounding, k: int = 0) -> Result:
        if place is not None:
            found = fit(spec, frame, rounding, k, place)
            if found is not None:
                return found
        return host(spec, frame, rounding, k)

    return run


def _narrow(d: Design, outcome: FloatArray) -> tuple[pl.DataFrame, sums.Recipe, bool]:
    """The design's rows as the executors read them: pid, the outcome and each covariate as
    fitted (a categorical one's level codes), under names of their own; the recipe of its
    terms, and whether every term is of a moderate scale (``_moderate``)."""
    named = {name: f"v{i}" for i, name in enumerate(dict.fromkeys(v for v, _ in d.recipe))}
    made: dict[str, Any] = {PID: d.ids, sums.OUTCOME: outcome}
    peaks = [1.0]  # the intercept's
    for name, column in named.items():
        if name in d.categories:
            made[column] = d.categories[name].codes
        else:
            made[column] = floats(d.used, name)
            peaks.append(float(np.max(np.abs(made[column]))) if len(made[column]) else 1.0)
    moderate = all(1e-100 < peak < 1e100 for peak in peaks)
    recipe = sums.Recipe(tuple((named[v], level) for v, level in d.recipe))
    return pl.DataFrame(made), recipe, moderate


def _placed_fit(place: Placement, d: Design, outcome: FloatArray,
                fit: Callable[[sums.Design], sums.Fitted]) -> sums.Fitted | None:
    narrow, recipe, moderate = _narrow(d, outcome)
    where = place(narrow)
    if where is None:
        return None
    with where as rows:
        try:
            return fit(sums.Design(rows, recipe, narrow.height, moderate))
        except sums.HostOnlyError:
            return None


def ols_placed(spec: OlsSpec, frame: pl.DataFrame, rounding: Rounding, k: int,
               place: Placement) -> Result | None:
    """:func:`ols` with the design's sums at ``place``; None where only the host can say."""
    from scipy import stats

    d = design(frame, [spec.outcome], spec.covariates, spec.categorical, k, build=False)
    if not d.used.schema[spec.outcome].is_numeric():
        return None  # the host's refusal, in its order
    y = floats(d.used, spec.outcome)
    fitted = _placed_fit(place, d, y, sums.least_squares)
    if fitted is None:
        return None
    if np.ptp(y) == 0:
        raise Invalid(f"the outcome {spec.outcome!r} is the same on every row used")
    terms, term_pids = _intercept_terms(d)
    n, p = len(y), len(fitted.params)
    df = float(n - p)
    tss = float(((y - y.mean()) ** 2).sum())
    if fitted.rss <= 1e-12 * tss:
        raise Invalid("the outcome is an exact combination of the covariates (a perfect fit), "
                      "so the model has no error to estimate")
    bse = np.sqrt(np.diag(fitted.inverse) * fitted.rss / df)
    half = stats.t.ppf(0.975, df) * bse
    table = np.column_stack([fitted.params, bse, fitted.params - half, fitted.params + half,
                             2 * stats.t.sf(np.abs(fitted.params / bse), df)])
    spread = float(np.ptp(y))
    steps = np.array([nice_step(float(one) * spread) for one in fitted.most])
    table = _rounded(table, steps, df, rounding)
    cells = coefficient_cells(terms, term_pids, CellKind.COEFFICIENT, COEFFICIENT_COLUMNS, table)
    llf = -n / 2 * (math.log(2 * math.pi) + math.log(fitted.rss / n) + 1)
    r2 = 1 - fitted.rss / tss
    fit_steps = sensitivity.least_squares_bounds(
        n, sensitivity.rows_per_person(d.ids), spread, fitted.rss, fitted.max_residual, tss,
        float(np.abs(y - y.mean()).max()), p)
    cells += statistic_cells({"r_squared": r2, "adj_r_squared": 1 - (n - 1) / df * (1 - r2),
                              "log_likelihood": llf, "aic": -2 * llf + 2 * p}, d.everyone,
                             fit_steps, rounding)
    facts = {"residual_df": df, "n_obs": float(len(d.everyone)), "n_parameters": float(p)}
    levels = {**d.levels, f"support:{spec.outcome}": support(y, d.ids)}
    return Result(AnalysisKind.OLS, spec.model_dump(mode="json"), cells, facts=facts,
                  levels=levels, notes=d.notes, influence=fitted.influence)


def logistic_placed(spec: LogisticSpec, frame: pl.DataFrame, rounding: Rounding, k: int,
                    place: Placement) -> Result | None:
    """:func:`logistic` with the design's sums at ``place``; None where only the host can
    say (a refusal in the host's order, a design or fit in doubt)."""
    from scipy import stats

    d = design(frame, [spec.outcome], spec.covariates, spec.categorical, k, build=False)
    y = binary(d.used, spec.outcome, "the outcome")
    ids = d.ids
    with_event, without = distinct(ids[y == 1]), distinct(ids[y == 0])
    if len(with_event) == 0 or len(without) == 0 \
            or any(_separates(d, name, y) for name in spec.categorical):
        return None  # refused by the host, in its words
    fitted = _placed_fit(place, d, y, sums.logistic)
    if fitted is None:
        return None
    terms, term_pids = _intercept_terms(d)
    n, p = len(y), len(fitted.params)
    bse = np.sqrt(np.diag(fitted.inverse))
    half = stats.norm.ppf(0.975) * bse
    table = np.column_stack([fitted.params, bse, fitted.params - half, fitted.params + half,
                             2 * stats.norm.sf(np.abs(fitted.params / bse))])
    share = float(y.mean())
    ll_null = float(len(y) * (share * math.log(share) + (1 - share) * math.log1p(-share)))
    pseudo_r_squared = 1 - fitted.llf / ll_null
    steps, fit_steps = sensitivity.logistic_bounds(fitted.most, fitted.max_logit,
                                                   sensitivity.rows_per_person(ids), share, ll_null,
                                                   pseudo_r_squared)
    table = _rounded(table, steps, None, rounding)
    cells = coefficient_cells(terms, term_pids, CellKind.COEFFICIENT, COEFFICIENT_COLUMNS, table)
    cells += statistic_cells({"pseudo_r_squared": pseudo_r_squared, "log_likelihood": fitted.llf,
                              "ll_null": ll_null, "aic": -2 * fitted.llf + 2 * p}, d.everyone,
                             fit_steps, rounding)
    facts = {"residual_df": float(n - p), "n_obs": float(len(d.everyone)),
             "n_parameters": float(p), "events": float(len(with_event)),
             "non_events": float(len(without))}
    levels = {**d.levels, "outcome=1": with_event, "outcome=0": without}
    return Result(AnalysisKind.LOGISTIC, spec.model_dump(mode="json"), cells, facts=facts,
                  levels=levels, notes=d.notes, influence=fitted.influence)


def _intercept_terms(d: Design) -> tuple[list[str], list[PidArray]]:
    """:func:`_with_intercept`'s terms and their participants, without its matrix."""
    return [INTERCEPT, *d.terms], [d.everyone, *d.term_pids]
