"""Run one analysis spec over a dataset definition: check the frame, then dispatch by kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from strongroom.enclave.analyses import correlation, regression, summary, survival, tables
from strongroom.enclave.analyses.frame import prepare
from strongroom.enclave.analyses.spec import AnySpec, parse_spec
from strongroom.enclave.results import AnalysisKind, Result
from strongroom.errors import Invalid

_RUNNERS: dict[AnalysisKind, Callable[[Any, pl.DataFrame], Result]] = {
    AnalysisKind.FREQUENCY: tables.frequency,
    AnalysisKind.CROSSTAB: tables.crosstab,
    AnalysisKind.HISTOGRAM: tables.histogram,
    AnalysisKind.SUMMARY: summary.summary,
    AnalysisKind.OLS: regression.ols,
    AnalysisKind.LOGISTIC: regression.logistic,
    AnalysisKind.KAPLAN_MEIER: survival.kaplan_meier,
    AnalysisKind.COX: survival.cox,
    AnalysisKind.CORRELATION: correlation.correlation,
}


def run(spec: AnySpec | Mapping[str, Any], frame: pl.DataFrame) -> Result:
    """The analysis's :class:`Result`, or :class:`Invalid` saying what to change.

    ``frame`` is a dataset definition: a ``pid`` column and the columns the spec names.
    """
    typed = parse_spec(spec) if isinstance(spec, Mapping) else spec
    runner = _RUNNERS.get(typed.kind)
    if runner is None:  # a spec kind without a runner is refused, never guessed at
        raise Invalid(f"analyses of kind {typed.kind.value} are not run here")
    return runner(typed, prepare(frame, typed.reads()))
