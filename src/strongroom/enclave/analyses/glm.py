"""Generalised linear models from a checked formula (statsmodels), with their disclosure facts.

The formula (enclave/analyses/formula.py) is built into a model matrix by formulaic after it
has been checked; its categorical variables are recoded first as for the other models (a
level held by fewer than the threshold counted in the most common, which is the reference).
Every column of the matrix is a term: its coefficient's contributors are the participants
whose value of it is not 0 (a dummy, an interaction with one) or everyone (a number, a
spline basis), and ``Result.levels`` records, per term, the participants whose value differs
from its most common one, so that an interaction cell or a spline piece held by a few is
caught by the check's level rule, as a rare level is. Leverage (with the fit's weights),
release precision of every coefficient, the residual degrees of freedom and value-aware
differencing hold as for OLS and logistic regression.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from strongroom.enclave import winsor
from strongroom.enclave.analyses import sensitivity, sums
from strongroom.enclave.analyses.formula import CATEGORICAL, _factor, centred, term_name
from strongroom.enclave.analyses.frame import PID, distinct, encode, floats, person_codes, pids
from strongroom.enclave.analyses.regression import (
    COEFFICIENT_COLUMNS,
    INTERCEPT,
    MAX_LEVELS,
    MISSING_NOTE,
    REPEATED_NOTE,
    SINGLE_LEVEL,
    Placement,
    _rounded,
    binary,
    check_rank,
    coefficient_cells,
    influence,
    statistic_cells,
    support,
)
from strongroom.enclave.analyses.spec import GlmSpec
from strongroom.enclave.results import AnalysisKind, CellKind, FloatArray, PidArray, Result
from strongroom.enclave.steps import Rounding, nice_step
from strongroom.errors import Invalid

MAX_COLUMNS = 200  # terms of the model matrix: more is not a model of a cohort
ERRORS = {"model": "nonrobust", "robust": "HC1", "cluster": "cluster"}
ERRORS_NOTE = {
    "robust": "standard errors are robust to heteroscedasticity (HC1)",
    "cluster": "standard errors are clustered by participant (a participant's rows are not "
               "taken as independent)",
}


def glm(spec: GlmSpec, frame: pl.DataFrame, rounding: Rounding, k: int = 0) -> Result:
    """Fit the model; refuse what cannot be estimated, saying what to change."""
    parsed = spec.parsed()
    extra = [c for c in (spec.offset, spec.exposure, spec.weights) if c is not None]
    used = frame.select(PID, parsed.outcome, *parsed.variables, *extra).drop_nulls()
    notes = [MISSING_NOTE, REPEATED_NOTE, *([winsor.CATEGORY_NOTE] if parsed.categorical
                                            and k else []),
             *([ERRORS_NOTE[spec.errors]] if spec.errors in ERRORS_NOTE else [])]
    if used.height == 0:
        raise Invalid("no row has values for the outcome and every term")
    ids = pids(used)
    everyone = distinct(ids)
    data, levels = _columns(used, parsed.variables, parsed.categorical, ids, k)
    counts = {name: len(data[name].cat.categories) for name in parsed.categorical}
    if parsed.most_columns(counts) > MAX_COLUMNS:  # before the matrix is built
        raise Invalid(f"the formula makes more than {MAX_COLUMNS} terms (levels × spline "
                      "pieces × interactions): interact fewer or coarser variables")
    x, names = _matrix(parsed.right, data)
    if x.shape[1] > MAX_COLUMNS:
        raise Invalid(f"the formula makes more than {MAX_COLUMNS} terms (levels × spline "
                      "pieces × interactions): interact fewer or coarser variables")
    variables = [_variable(n, parsed.variables) for n in names]
    check_rank(x, variables)
    y = _outcome(spec, used, parsed.outcome)
    offset = _offset(spec, used)
    weights = floats(used, spec.weights) if spec.weights else None
    if weights is not None and (not np.all(np.isfinite(weights)) or np.any(weights < 0)
                                or not np.any(weights > 0)):
        raise Invalid(f"the weights {spec.weights!r} must be finite and not negative, and "
                      "not all zero")
    fit, irls = _fit(spec, y, x, offset, weights, ids)
    table = np.column_stack([fit.params[:x.shape[1]], fit.bse[:x.shape[1]],
                             np.asarray(fit.conf_int(0.05))[:x.shape[1]],
                             fit.pvalues[:x.shape[1]]])
    spread = 1.0 if spec.family == "binomial" else float(np.ptp(y))
    steps = _steps(x, irls, weights, spread, ids)
    df = float(fit.df_resid) if spec.family == "gaussian" else None
    table = _rounded(table, steps, df, rounding)
    terms = [term_name(n) for n in names]
    term_pids = [everyone if n == INTERCEPT else _rests_on(x[:, j], ids, everyone)
                 for j, n in enumerate(names)]
    cells = coefficient_cells(terms, term_pids, CellKind.COEFFICIENT, COEFFICIENT_COLUMNS,
                              table)
    if spec.family == "gaussian":  # judged on its exact value (near-perfect), never shown
        residuals = y - np.asarray(fit.fittedvalues, dtype=np.float64)
        r2 = 1 - float(residuals @ residuals) / float(((y - y.mean()) ** 2).sum())
        cells += statistic_cells({"r_squared": r2}, everyone,
                                 {"r_squared": sensitivity.HIDDEN}, rounding)
    facts = {"residual_df": float(fit.df_resid), "n_obs": float(len(everyone)),
             "n_parameters": float(x.shape[1])}
    for j, name in enumerate(names):
        if name != INTERCEPT:
            levels[f"support:{term_name(name)}"] = support(x[:, j], ids)
    _outcome_facts(spec.family, parsed.outcome, y, ids, facts, levels)
    if weights is not None:
        levels[f"support:{spec.weights}"] = support(weights, ids)
    leverage_weights = irls if weights is None else irls * weights
    return Result(AnalysisKind.GLM, spec.model_dump(mode="json"), cells, facts=facts,
                  levels=levels, notes=notes, influence=influence(x, ids, leverage_weights))



def _outcome_facts(family: str, outcome: str, y: FloatArray, ids: PidArray,
                   facts: dict[str, float], levels: dict[str, PidArray]) -> None:
    """What the check reads of the outcome, whichever engine summed the fit: a binomial
    model's events and non-events (counts and sets), another's outcome support."""
    if family == "binomial":
        with_event, without = distinct(ids[y == 1]), distinct(ids[y == 0])
        facts |= {"events": float(len(with_event)), "non_events": float(len(without))}
        levels |= {"outcome=1": with_event, "outcome=0": without}
    else:
        levels[f"support:{outcome}"] = support(y, ids)

def _columns(used: pl.DataFrame, variables: tuple[str, ...], categorical: tuple[str, ...],
             ids: PidArray, k: int) -> tuple[Any, dict[str, PidArray]]:
    """The variables as formulaic reads them (pandas), categorical ones recoded with their
    most common level first (the reference), and every level's participants."""
    import pandas as pd

    columns: dict[str, Any] = {}
    levels: dict[str, PidArray] = {}
    for name in variables:
        if name in categorical:
            coded = winsor.recoded(encode(used[name], missing=False, limit=MAX_LEVELS), ids, k)
            counts = np.bincount(coded.codes, minlength=len(coded))
            order = [coded.labels[j] for j in np.argsort(-counts, kind="stable")]
            if len(order) < 2:
                raise Invalid(SINGLE_LEVEL)
            labels = np.asarray(coded.labels, dtype=object)[coded.codes]
            columns[name] = pd.Categorical(labels, categories=order)
            for j, label in enumerate(coded.labels):
                levels[f"level:{name}={label}"] = distinct(ids[coded.codes == j])
            continue
        dtype = used.schema[name]
        if not (dtype.is_numeric() or isinstance(dtype, pl.Boolean)):
            raise Invalid(f"{name!r} is not numeric: write C({name}) for a categorical "
                          "variable, or derive a number from it in the dataset definition")
        columns[name] = floats(used, name)
    return pd.DataFrame(columns), levels


def _matrix(right: str, data: Any) -> tuple[FloatArray, list[str]]:
    """The model matrix of the checked right-hand side (formulaic's own transforms only)."""
    from formulaic import model_matrix
    from formulaic.errors import FormulaicError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matrix = model_matrix(centred(right), data, na_action="raise")
    except (FormulaicError, ValueError, np.linalg.LinAlgError) as exc:
        raise Invalid("the formula's terms could not be built from the rows used (a spline "
                      f"over too few distinct values?): {type(exc).__name__}") from None
    return np.asarray(matrix, dtype=np.float64), [str(c) for c in matrix.columns]


def _variable(column: str, variables: tuple[str, ...]) -> str:
    """The first variable a matrix column reads, for messages (never a level's value)."""
    return next((v for v in variables if v in column), column)


def _rests_on(column: FloatArray, ids: PidArray, everyone: PidArray) -> PidArray:
    """A term's participants: where it is not 0 when it is 0 for most (a dummy or an
    interaction with one); everyone for a number or a spline piece."""
    nonzero = column != 0
    if nonzero.mean() < 0.5 and np.all((column == 0) | (column == 1)):
        return distinct(ids[nonzero])
    return everyone


def _outcome(spec: GlmSpec, used: pl.DataFrame, name: str) -> FloatArray:
    if spec.family == "binomial":
        y = binary(used, name, "the outcome")
        if np.all(y == y[0]):
            raise Invalid(f"the outcome {name!r} takes a single value in the rows used")
        return y
    dtype = used.schema[name]
    if not (dtype.is_numeric() or isinstance(dtype, pl.Boolean)):
        raise Invalid(f"the outcome {name!r} is not numeric")
    y = floats(used, name)
    if spec.family in ("poisson", "negative_binomial") and (
            np.any(y < 0) or not np.all(y == np.round(y))):
        raise Invalid(f"the outcome {name!r} must be a count (0, 1, 2 …) for a "
                      f"{spec.family} model")
    if np.ptp(y) == 0:
        raise Invalid(f"the outcome {name!r} is the same on every row used")
    return y


def _offset(spec: GlmSpec, used: pl.DataFrame) -> FloatArray | None:
    if spec.offset:
        return floats(used, spec.offset)
    if spec.exposure:
        exposure = floats(used, spec.exposure)
        if np.any(exposure <= 0):
            raise Invalid(f"the exposure {spec.exposure!r} must be more than 0 on every row "
                          "used (its log is the offset)")
        return np.log(exposure)
    return None


def _fit(spec: GlmSpec, y: FloatArray, x: FloatArray, offset: FloatArray | None,
         weights: FloatArray | None, ids: PidArray) -> tuple[Any, FloatArray]:
    """The fit and its working weights (the IRLS weights at the estimate).

    Without prior weights each family is fitted by its own maximum-likelihood model (least
    squares, Logit, Poisson, NegativeBinomial: Newton steps on a 500,000-row design take a
    fraction of IRLS's least-squares solves, and give the same estimates and model-based
    errors, the links being canonical); with weights, by the GLM's IRLS."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    kwargs: dict[str, Any] = {"cov_type": ERRORS[spec.errors]}
    if spec.errors == "cluster":
        kwargs["cov_kwds"] = {"groups": person_codes(ids)}
    fit: Any = None
    converged = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if spec.family == "gaussian":
                fit = sm.WLS(y, x, weights=1.0 if weights is None else weights).fit(**kwargs)
                converged, irls = True, np.ones_like(y)
            elif weights is not None:
                family = {"binomial": sm.families.Binomial(),
                          "poisson": sm.families.Poisson()}[spec.family]
                fit = sm.GLM(y, x, family=family, offset=offset, var_weights=weights).fit(
                    maxiter=200, **kwargs)
                converged = bool(getattr(fit, "converged", True))
                irls = np.asarray(family.variance(np.asarray(fit.fittedvalues)),
                                  dtype=np.float64)
            else:
                model, start = _likelihood(spec.family, y, x, offset)
                fit = model.fit(start_params=start, disp=0, maxiter=500, **kwargs)
                converged = bool(fit.mle_retvals.get("converged", False))
                mu = np.asarray(fit.predict(), dtype=np.float64)
                irls = (mu * (1 - mu) if spec.family == "binomial" else
                        mu / (1 + float(fit.params[-1]) * mu)
                        if spec.family == "negative_binomial" else mu)
        except (PerfectSeparationError, np.linalg.LinAlgError, ValueError):
            converged = False
    separated = any("separation" in str(w.message).lower() for w in caught)
    if fit is None or not converged or separated or not np.all(np.isfinite(fit.params)) \
            or not np.all(np.isfinite(fit.bse)):
        raise Invalid(f"the {spec.family} model did not converge: a term may (almost) "
                      "separate the outcome or be on a very large scale, or a level have no "
                      "events; band, rescale, merge levels or leave it out")
    return fit, irls


def _likelihood(family: str, y: FloatArray, x: FloatArray,
                offset: FloatArray | None) -> tuple[Any, FloatArray | None]:
    """The family's own maximum-likelihood model, and where to start it."""
    import statsmodels.api as sm

    # the design's rank was checked (check_rank): statsmodels need not decompose it again
    if family == "binomial":
        return sm.Logit(y, x, offset=offset, check_rank=False), None
    if family == "poisson":
        return sm.Poisson(y, x, offset=offset, check_rank=False), None
    # started from the Poisson fit: statsmodels' own start overflows when the events are
    # rare against a long exposure
    start = sm.Poisson(y, x, offset=offset, check_rank=False).fit(disp=0, maxiter=200).params
    return sm.NegativeBinomial(y, x, offset=offset, check_rank=False), np.append(start, 0.1)


def _steps(x: FloatArray, irls: FloatArray, weights: FloatArray | None, spread: float,
           ids: PidArray) -> FloatArray:
    """Per coefficient, the most one participant's outcome moved across its range could move
    it: one Newton step from the fit, ``(XᵀWX)⁻¹ xᵢ wᵢ Δy`` summed over their rows, doubled
    for the refit (as for logistic regression; OLS's exact bound is the Gaussian case)."""
    prior = np.ones(len(irls)) if weights is None else weights
    information = x.T @ (x * (irls * prior)[:, None])
    most = sensitivity.most_moved(information, x if weights is None else x * prior[:, None],
                                  ids)
    if most is None:
        return np.full(x.shape[1], sensitivity.HIDDEN)
    return np.array([nice_step(2 * spread * float(one)) for one in most])


def glm_placed(spec: GlmSpec, frame: pl.DataFrame, rounding: Rounding, k: int,
               place: Placement) -> Result | None:
    """:func:`glm` with the model matrix's sums at ``place`` (analyses/sums.py), for the
    binomial and Gaussian families with model-based errors, no offset, exposure or weights,
    and a formula of columns and ``C(column)`` only (no transform, no interaction); None for
    anything else, and wherever only the host can say (its refusals, in its order)."""
    from scipy import stats

    parsed = spec.parsed()
    if spec.family not in ("binomial", "gaussian") or spec.errors != "model" \
            or any(c is not None for c in (spec.offset, spec.exposure, spec.weights)) \
            or any(len(term) != 1 or _factor(term[0])[1] not in (None, CATEGORICAL)
                   for term in parsed.terms):
        return None
    used = frame.select(PID, parsed.outcome, *parsed.variables).drop_nulls()
    if used.height == 0:
        return None
    ids = pids(used)
    everyone = distinct(ids)
    data, levels = _columns(used, parsed.variables, parsed.categorical, ids, k)
    counts = {name: len(data[name].cat.categories) for name in parsed.categorical}
    if parsed.most_columns(counts) > MAX_COLUMNS:
        return None
    found = _recipe(parsed.right, data, parsed.categorical)
    if found is None:
        return None
    recipe, names, narrow = found
    try:
        y = _outcome(spec, used, parsed.outcome)
    except Invalid:
        return None  # the host's refusal, after its rank check
    narrow[PID] = ids
    narrow[sums.OUTCOME] = y
    rows = pl.DataFrame(narrow)
    where = place(rows)
    if where is None:
        return None
    with where as placed_rows:
        try:
            fitted = (sums.logistic if spec.family == "binomial" else sums.least_squares)(
                sums.Design(placed_rows, recipe, rows.height, _moderate(rows, recipe)))
        except sums.HostOnlyError:
            return None
    n, p = len(y), len(fitted.params)
    df = float(n - p)
    if spec.family == "binomial":
        bse = np.sqrt(np.diag(fitted.inverse))
        half = stats.norm.ppf(0.975) * bse
        pvalues = 2 * stats.norm.sf(np.abs(fitted.params / bse))
        spread = 1.0
    else:
        bse = np.sqrt(np.diag(fitted.inverse) * fitted.rss / df)
        half = stats.t.ppf(0.975, df) * bse
        pvalues = 2 * stats.t.sf(np.abs(fitted.params / bse), df)
        spread = float(np.ptp(y))
    table = np.column_stack([fitted.params, bse, fitted.params - half, fitted.params + half,
                             pvalues])
    steps = np.array([nice_step(2 * spread * float(one)) for one in fitted.most])
    table = _rounded(table, steps, df if spec.family == "gaussian" else None, rounding)
    terms = [term_name(name) for name in names]
    term_pids = [everyone]
    for j, name in enumerate(names[1:], start=1):
        column = sums.matrix_column(narrow, recipe.terms[j - 1])
        term_pids.append(_rests_on(column, ids, everyone))
        levels[f"support:{term_name(name)}"] = support(column, ids)
    cells = coefficient_cells(terms, term_pids, CellKind.COEFFICIENT, COEFFICIENT_COLUMNS,
                              table)
    if spec.family == "gaussian":
        r2 = 1 - fitted.rss / float(((y - y.mean()) ** 2).sum())
        cells += statistic_cells({"r_squared": r2}, everyone,
                                 {"r_squared": sensitivity.HIDDEN}, rounding)
    facts = {"residual_df": df, "n_obs": float(len(everyone)), "n_parameters": float(p)}
    _outcome_facts(spec.family, parsed.outcome, y, ids, facts, levels)
    notes = [MISSING_NOTE, REPEATED_NOTE, *([winsor.CATEGORY_NOTE] if parsed.categorical
                                            and k else [])]
    return Result(AnalysisKind.GLM, spec.model_dump(mode="json"), cells, facts=facts,
                  levels=levels, notes=notes, influence=fitted.influence)


SAMPLE = 256  # rows formulaic builds the matrix of, to name its columns and check the recipe


def _recipe(right: str, data: Any, categorical: tuple[str, ...]
            ) -> tuple[sums.Recipe, list[str], dict[str, Any]] | None:
    """The recipe of the model matrix's columns (formulaic's names and order, read from its
    matrix of the first rows, and held to it value for value there), its column names, and
    the narrow columns it reads (a categorical variable as its codes in formulaic's order,
    the reference first); None where a column is not a plain one or a level's dummy."""
    sample, names = _matrix(right, data.iloc[:SAMPLE])
    if not names or names[0] != INTERCEPT or len(names) > MAX_COLUMNS:
        return None
    narrow: dict[str, Any] = {}
    named: dict[str, str] = {}
    terms: list[tuple[str, int | None]] = []
    for name in names[1:]:
        variable, level = name, None
        if name.startswith(f"{CATEGORICAL}(") and ")[T." in name and name.endswith("]"):
            variable, label = name[2:-1].split(")[T.", 1)
            if variable not in categorical:
                return None
            categories = [str(c) for c in data[variable].cat.categories]
            if label not in categories:
                return None
            level = categories.index(label)
        elif name not in data.columns or name in categorical:
            return None
        if variable not in named:
            named[variable] = f"v{len(named)}"
            values = data[variable]
            narrow[named[variable]] = (
                np.asarray(values.cat.codes, dtype=np.int64) if variable in categorical
                else np.asarray(values, dtype=np.float64))
        terms.append((named[variable], level))
    recipe = sums.Recipe(tuple(terms))
    head = {column: values[:SAMPLE] for column, values in narrow.items()}
    head[sums.PID] = np.zeros(len(sample))
    if not np.array_equal(sums.matrix(head, recipe), sample):
        return None
    return recipe, names, narrow


def _moderate(rows: pl.DataFrame, recipe: sums.Recipe) -> bool:
    """regression._moderate of the matrix the recipe builds, from its columns' extremes."""
    peaks = [float(rows[column].abs().max() or 0.0)  # type: ignore[arg-type]
             for column in {c for c, level in recipe.terms if level is None}]
    return all(1e-100 < peak < 1e100 for peak in peaks)
