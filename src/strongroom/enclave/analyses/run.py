"""Run one analysis spec over a dataset definition: check the frame, then dispatch by kind."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

from strongroom.enclave import winsor
from strongroom.enclave.analyses import (
    competing,
    correlation,
    glm,
    regression,
    summary,
    survival,
    tables,
)
from strongroom.enclave.analyses.frame import check_schema, increasing, prepare
from strongroom.enclave.analyses.spec import (
    AnySpec,
    CorrelationSpec,
    CoxSpec,
    GlmSpec,
    LifeTableSpec,
    LogisticSpec,
    OlsSpec,
    parse_spec,
)
from strongroom.enclave.results import AnalysisKind, FloatArray, PidArray, Result
from strongroom.enclave.steps import Rounding
from strongroom.enclave.view import PID
from strongroom.errors import Invalid, reading_data

# tables and summaries leave their statistics exact for release precision (outputs/precision.py)
# to round with the same Rounding; fits round their own, since their p-values are worked out
# from the rounded figures
_RUNNERS: dict[AnalysisKind, Callable[[Any, pl.DataFrame, Rounding, int], Result]] = {
    AnalysisKind.FREQUENCY: lambda spec, frame, _, k: tables.frequency(spec, frame, k),
    AnalysisKind.CROSSTAB: lambda spec, frame, _, k: tables.crosstab(spec, frame, k),
    AnalysisKind.HISTOGRAM: lambda spec, frame, _, k: tables.histogram(spec, frame, k),
    AnalysisKind.SUMMARY: lambda spec, frame, _, k: summary.summary(spec, frame, k),
    AnalysisKind.OLS: regression.ols,
    AnalysisKind.LOGISTIC: regression.logistic,
    AnalysisKind.KAPLAN_MEIER: lambda spec, frame, r, _: survival.kaplan_meier(spec, frame, r),
    AnalysisKind.CUMULATIVE_INCIDENCE:
        lambda spec, frame, r, _: competing.cumulative_incidence(spec, frame, r),
    AnalysisKind.COX: survival.cox,
    AnalysisKind.GLM: glm.glm,
    AnalysisKind.CORRELATION: lambda spec, frame, r, _: correlation.correlation(spec, frame, r),
}


# fits whose row-level sums an engine may take where it keeps rows (analyses/sums.py)
_PLACED: dict[AnalysisKind, tuple[Callable[..., Result | None], Callable[..., Result]]] = {
    AnalysisKind.OLS: (regression.ols_placed, regression.ols),
    AnalysisKind.LOGISTIC: (regression.logistic_placed, regression.logistic),
    AnalysisKind.GLM: (glm.glm_placed, glm.glm),
    AnalysisKind.COX: (survival.cox_placed, survival.cox),
}


def run(spec: AnySpec | Mapping[str, Any], frame: pl.DataFrame, *,
        rounding: Rounding, k: int = 0, place: regression.Placement | None = None) -> Result:
    """The analysis's :class:`Result`, or :class:`Invalid` saying what to change.

    ``frame`` is a dataset definition: a ``pid`` column and the columns the spec names;
    ``rounding`` the project's rounding of released figures (steps.Rounding); ``k`` the
    project's threshold, at which values are winsorised and rare categories merged
    (winsor.py; 0, for the enclave's own tests, leaves them as they are: the output service
    always passes the threshold); ``place``: where the engine takes a model's row-level
    sums (``Engine.model_rows``; None: here), for the fits that can (OLS, logistic,
    binomial and Gaussian GLMs of columns and categories, and Cox models).
    """
    typed = parse_spec(spec) if isinstance(spec, Mapping) else spec
    runner = _RUNNERS.get(typed.kind)
    if place is not None and typed.kind in _PLACED:
        runner = regression.placed(*_PLACED[typed.kind], place)
    if runner is None:  # a spec kind without a runner is refused, never guessed at
        raise Invalid(f"analyses of kind {typed.kind.value} are not run here")
    check_schema(frame, typed.reads())  # a mistake in the request: the same whatever the data
    with reading_data():  # from here on a refusal may depend on participants' values
        prepared = prepare(frame, typed.reads())
        merged: list[str] = []
        if isinstance(typed, LifeTableSpec):  # counts of people: one row each (and vectors)
            prepared, merged = survival.life_table_rows(prepared, typed, k)
        if typed.kind in FITS and k >= 1:
            # a correlation is over the rows where each pair is present: each column its own
            together = [] if typed.kind is AnalysisKind.CORRELATION else typed.reads()
            prepared = winsorised(prepared, clipped_columns(typed), together, k)
        result = runner(typed, prepared, rounding, k)
        result.notes += merged
    if typed.kind in FITS:
        # what the fit read, clipped: value-aware differencing must see what was released
        result.vectors = vectors(prepared, typed.reads())
        if k >= 1:
            result.notes.append(winsor.NOTE)
    return result


def preload() -> None:
    """Import the model libraries the analyses import on first use (statsmodels, formulaic,
    lifelines: two seconds or so), so that no researcher's first model waits for them."""
    import formulaic  # noqa: F401
    import lifelines  # noqa: F401
    import statsmodels.api
    import statsmodels.duration.survfunc  # noqa: F401


def clipped_columns(spec: AnySpec) -> list[str]:
    """The numeric variables a fit reads whose values are winsorised: outcomes, numeric
    covariates, survival times and correlated variables (not categories, events or groups)."""
    if isinstance(spec, LifeTableSpec):
        return [spec.time]
    if isinstance(spec, CorrelationSpec):
        return list(spec.variables)
    if isinstance(spec, CoxSpec):
        return [spec.time, *(c for c in spec.covariates if c not in spec.categorical)]
    if isinstance(spec, OlsSpec | LogisticSpec):
        return [spec.outcome, *(c for c in spec.covariates if c not in spec.categorical)]
    if isinstance(spec, GlmSpec):  # a binomial outcome is 0/1; the weights are clipped too
        found = spec.parsed()
        return [*([found.outcome] if spec.family != "binomial" else []),
                *(v for v in found.variables if v not in found.categorical),
                *(c for c in (spec.offset, spec.exposure, spec.weights) if c is not None)]
    return []


def winsorised(frame: pl.DataFrame, columns: list[str], reads: list[str],
               k: int) -> pl.DataFrame:
    """``frame`` with each numeric column of ``columns`` clipped at the k-th smallest and
    largest participant among the rows the fit uses (complete in every column it reads; a
    correlation's, in that column). Other rows are left as they are: the fit drops them."""
    ids = frame[PID].to_numpy().astype(np.int64, copy=False)
    complete = (frame.select(pl.all_horizontal(pl.col(c).is_not_null() for c in reads))
                .to_series().to_numpy() if reads else np.ones(frame.height, dtype=np.bool_))
    changed = []
    for name in dict.fromkeys(columns):
        dtype = frame.schema[name]
        if not (dtype.is_numeric() or isinstance(dtype, pl.Boolean)):
            continue  # text is refused by the analysis with its reason
        x = frame[name].cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
        used = np.isfinite(x) & complete
        if used.all():  # every row (the usual model's): no copies of the rows used
            x = winsor.clip_rows(x, ids, k)
            changed.append(pl.Series(name, x, dtype=pl.Float64))  # nothing missing
            continue
        x[used] = winsor.clip_rows(x[used], ids[used], k)
        changed.append(pl.Series(name, x, dtype=pl.Float64).fill_nan(None))  # missing stays
    return frame.with_columns(changed) if changed else frame


# analyses whose figures are fitted to every participant's values: their vectors are kept
FITS = frozenset({AnalysisKind.OLS, AnalysisKind.LOGISTIC, AnalysisKind.COX, AnalysisKind.GLM,
                  AnalysisKind.KAPLAN_MEIER, AnalysisKind.CUMULATIVE_INCIDENCE,
                  AnalysisKind.CORRELATION})


def vectors(frame: pl.DataFrame, columns: list[str]) -> dict[str, tuple[PidArray, FloatArray]]:
    """Each column over the complete rows, as (pids, each participant's own total).

    Text (a category) becomes a stable number per value, so that a category changed for one
    participant shows as a changed value.
    """
    used = frame.select(PID, *dict.fromkeys(columns)).drop_nulls()
    numbers: list[pl.Series] = []
    for name in dict.fromkeys(columns):
        column = used[name]
        if column.dtype.is_numeric() or column.dtype == pl.Boolean:
            numbers.append(column.cast(pl.Float64))
        else:
            text = column.cast(pl.String)
            codes = {v: float(zlib.crc32(v.encode())) for v in text.unique().to_list()}
            numbers.append(text.replace_strict(codes, return_dtype=pl.Float64).alias(name))
    table = pl.DataFrame([used[PID], *numbers])
    # one pass for every column (each its own group-by and sort took 0.1 s at 500,000),
    # and none where each participant has one row; no sort where they are in pid order
    # already (a definition's usual rows: the sort copied every column, 190 MB at 5,000,000)
    if increasing(used[PID].cast(pl.Int64).to_numpy()):
        totals = table
    else:
        if used[PID].n_unique() < used.height:
            table = table.group_by(PID).agg(pl.all().sum())
        totals = table.sort(PID)
    ids = totals[PID].cast(pl.Int64).to_numpy()
    return {name: (ids, totals[name].to_numpy()) for name in columns}
