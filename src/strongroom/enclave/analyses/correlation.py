"""Correlation matrices (Pearson or Spearman), each pair over the rows holding both values.

A CORRELATION cell's contributors are the participants with both values present. A variable
that is constant over a pair's rows has no correlation: the cell shows nothing (None).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom.enclave.analyses import sensitivity
from strongroom.enclave.analyses.frame import distinct, finite, floats, pids, require_numeric
from strongroom.enclave.analyses.regression import influence, support
from strongroom.enclave.analyses.spec import CorrelationSpec
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, FloatArray, PidArray, Result
from strongroom.enclave.steps import Rounding


def correlation(spec: CorrelationSpec, frame: pl.DataFrame, rounding: Rounding) -> Result:
    """The full square matrix, row and column named by variable, diagonal included."""
    for name in spec.variables:
        require_numeric(frame, name, "a correlation")
    ids = pids(frame)
    values = {name: floats(frame, name) for name in spec.variables}
    present = {name: ~np.isnan(x) for name, x in values.items()}
    complete = {name: bool(mask.all()) for name, mask in present.items()}
    ranked: dict[str, FloatArray] = {}  # ranks over all rows, for variables with no gaps
    found: dict[tuple[str, str], Cell] = {}
    for i, a in enumerate(spec.variables):
        for b in spec.variables[i:]:
            both = present[a] & present[b]
            if spec.method == "spearman" and complete[a] and complete[b]:
                for name in (a, b):
                    if name not in ranked:
                        ranked[name] = _ranks(values[name])
                r = _pearson(ranked[a], ranked[b])
            else:
                r = _coefficient(values[a][both], values[b][both], spec.method)
            if a != b:  # the diagonal is 1 whatever anyone's values
                r = sensitivity.shown(r, _step(values[a][both], values[b][both], ids[both],
                                               spec.method), rounding)
            found[a, b] = found[b, a] = Cell((a,), b, CellKind.CORRELATION, r,
                                              distinct(ids[both]))
    cells = [found[a, b] if found[a, b].row == (a,) else
             Cell((a,), b, CellKind.CORRELATION, found[a, b].value, found[a, b].contributors)
             for a in spec.variables for b in spec.variables]
    notes = (["a variable is constant (or has fewer than two values) over some pair's rows, so "
              "that correlation is not defined and shows nothing"]
             if any(c.value is None for c in cells) else [])
    # what each variable's correlations rest on: a variable that differs from its usual value
    # for one person gives that person's standardised value of the other away
    levels = {f"support:{name}": support(x[present[name]], ids[present[name]])
              for name, x in values.items()}
    return Result(AnalysisKind.CORRELATION, spec.model_dump(mode="json"), cells, notes=notes,
                  levels=levels, influence=_influence(values, present, ids))


def _step(a: FloatArray, b: FloatArray, ids: PidArray, method: str) -> float:
    """What one participant can move the coefficient by."""
    if method == "spearman":
        return sensitivity.correlation_step(_ranks(a), _ranks(b), ids, ranks=True)
    return sensitivity.correlation_step(a, b, ids, ranks=False)


def _influence(values: dict[str, FloatArray], present: dict[str, npt.NDArray[np.bool_]],
               ids: PidArray) -> float:
    """The largest leverage of one participant in any variable (as the single covariate of a
    regression with an intercept): 1/n + their squared distance from the mean over the sum."""
    most = 0.0
    for name, x in values.items():
        if ids.size and present[name].any():
            kept = x[present[name]]
            spread = float(np.sum((kept - kept.mean()) ** 2))
            if spread > 0:
                most = max(most, influence(np.column_stack([np.ones(kept.size), kept]),
                                           ids[present[name]]))
    return most


def _coefficient(x: FloatArray, y: FloatArray, method: str) -> float | None:
    if method == "spearman":  # Pearson on average ranks, as scipy and R define it
        x, y = _ranks(x), _ranks(y)
    return _pearson(x, y)


def _ranks(x: FloatArray) -> FloatArray:
    """Average ranks (ties share their mean rank)."""
    # Imported here: scipy.stats takes ~1.5 s to import, and every CLI command would pay it.
    from scipy.stats import rankdata

    ranks: FloatArray = rankdata(x)
    return ranks


def _pearson(x: FloatArray, y: FloatArray) -> float | None:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    return finite(float(np.dot(dx, dy) / np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))))
