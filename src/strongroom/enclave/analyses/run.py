"""Run one analysis spec over a dataset definition: check the frame, then dispatch by kind."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from strongroom.enclave.analyses import correlation, regression, summary, survival, tables
from strongroom.enclave.analyses.frame import check_schema, prepare
from strongroom.enclave.analyses.spec import AnySpec, parse_spec
from strongroom.enclave.results import AnalysisKind, FloatArray, PidArray, Result
from strongroom.enclave.steps import Rounding
from strongroom.enclave.view import PID
from strongroom.errors import Invalid, reading_data

# tables and summaries leave their statistics exact for release precision (outputs/precision.py)
# to round with the same Rounding; fits round their own, since their p-values are worked out
# from the rounded figures
_RUNNERS: dict[AnalysisKind, Callable[[Any, pl.DataFrame, Rounding], Result]] = {
    AnalysisKind.FREQUENCY: lambda spec, frame, _: tables.frequency(spec, frame),
    AnalysisKind.CROSSTAB: lambda spec, frame, _: tables.crosstab(spec, frame),
    AnalysisKind.HISTOGRAM: lambda spec, frame, _: tables.histogram(spec, frame),
    AnalysisKind.SUMMARY: lambda spec, frame, _: summary.summary(spec, frame),
    AnalysisKind.OLS: regression.ols,
    AnalysisKind.LOGISTIC: regression.logistic,
    AnalysisKind.KAPLAN_MEIER: survival.kaplan_meier,
    AnalysisKind.COX: survival.cox,
    AnalysisKind.CORRELATION: correlation.correlation,
}


def run(spec: AnySpec | Mapping[str, Any], frame: pl.DataFrame, *,
        rounding: Rounding) -> Result:
    """The analysis's :class:`Result`, or :class:`Invalid` saying what to change.

    ``frame`` is a dataset definition: a ``pid`` column and the columns the spec names;
    ``rounding`` the project's rounding of released figures (steps.Rounding).
    """
    typed = parse_spec(spec) if isinstance(spec, Mapping) else spec
    runner = _RUNNERS.get(typed.kind)
    if runner is None:  # a spec kind without a runner is refused, never guessed at
        raise Invalid(f"analyses of kind {typed.kind.value} are not run here")
    check_schema(frame, typed.reads())  # a mistake in the request: the same whatever the data
    with reading_data():  # from here on a refusal may depend on participants' values
        prepared = prepare(frame, typed.reads())
        result = runner(typed, prepared, rounding)
    if typed.kind in FITS:
        result.vectors = vectors(prepared, typed.reads())
    return result


# analyses whose figures are fitted to every participant's values: their vectors are kept
FITS = frozenset({AnalysisKind.OLS, AnalysisKind.LOGISTIC, AnalysisKind.COX,
                  AnalysisKind.KAPLAN_MEIER, AnalysisKind.CORRELATION})


def vectors(frame: pl.DataFrame, columns: list[str]) -> dict[str, tuple[PidArray, FloatArray]]:
    """Each column over the complete rows, as (pids, each participant's own total).

    Text (a category) becomes a stable number per value, so that a category changed for one
    participant shows as a changed value.
    """
    used = frame.select(PID, *columns).drop_nulls()
    found: dict[str, tuple[PidArray, FloatArray]] = {}
    for name in columns:
        column = used[name]
        if column.dtype.is_numeric() or column.dtype == pl.Boolean:
            numbers = column.cast(pl.Float64)
        else:
            text = column.cast(pl.String)
            codes = {v: float(zlib.crc32(v.encode())) for v in text.unique().to_list()}
            numbers = text.replace_strict(codes, return_dtype=pl.Float64)
        totals = (pl.DataFrame({PID: used[PID], "x": numbers}).group_by(PID).agg(pl.col("x").sum())
                  .sort(PID))
        found[name] = (totals[PID].cast(pl.Int64).to_numpy(), totals["x"].to_numpy())
    return found
