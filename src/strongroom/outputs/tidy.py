"""A released output as a tidy table: one row per group, one column per figure, labelled.

The released record (JSON, :mod:`strongroom.outputs.render`) is a list of cells: what was
checked, exactly. Researchers and output checkers read tables, so this module lays the same
cells out as one: a column per group variable, named as the analysis named it, holding the
dictionary's meaning of each code (``sex`` "Female", with the code beside it in ``sex_code``),
and a column per figure (``count``, ``percent``, ``coef``, ``survival`` …); a hidden figure is
empty and named in the row's ``suppressed``. A model's ``term`` reads its levels by meaning
(``sex=Male``, the term as fitted in ``term_code``), and models get their exponentiated
effects beside the coefficients (odds ratios for a logistic model, with their confidence
limits).

Everything here is a function of the released record and of public metadata (the dictionary's
codings, the analysis's own names): it adds no figure the check did not pass. An exponentiated
effect is the exponential of a released coefficient, rounded to the same digits.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import polars as pl

from strongroom.enclave import steps
from strongroom.enclave.analyses.regression import INTERCEPT, MODEL_ROW_LABEL
from strongroom.enclave.results import AnalysisKind, CellKind
from strongroom.errors import Invalid

# column -> (code -> meaning): the value labels of a definition's coded columns
Labels = Mapping[str, Mapping[str, str]]
SUPPRESSED = "suppressed"  # the row's hidden figures, by name ("" when none)
CODE_SUFFIX = "_code"
# figures that count people or rows: whole numbers, shown without a decimal point
_COUNTS = frozenset({CellKind.COUNT, CellKind.AT_RISK, CellKind.EVENTS, CellKind.CENSORED})
# a model's ratio scale: exp(coef) and its limits, for models whose coefficients are logs
ODDS = ("odds_ratio", "or_ci_low", "or_ci_high")
RATES = ("rate_ratio", "rr_ci_low", "rr_ci_high")
_GLM_RATIOS = {"binomial": ODDS, "poisson": RATES, "negative_binomial": RATES}
_LIFE_TABLES = frozenset({AnalysisKind.KAPLAN_MEIER.value,
                          AnalysisKind.CUMULATIVE_INCIDENCE.value})
MODELS = frozenset({AnalysisKind.OLS.value, AnalysisKind.LOGISTIC.value, AnalysisKind.COX.value,
                    AnalysisKind.GLM.value})


def ratio_names(kind: str, spec: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The names of a model's exponentiated effects, if its coefficients are logs."""
    if kind == AnalysisKind.LOGISTIC.value:
        return ODDS
    if kind == AnalysisKind.GLM.value:
        return _GLM_RATIOS.get(str(spec.get("family", "gaussian")))
    return None


class TableFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


MEDIA_TYPE = {TableFormat.CSV: "text/csv", TableFormat.PARQUET: "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class Cell:
    row: tuple[str, ...]
    column: str
    kind: str
    value: float | None
    suppressed: bool


def tidy(record: Mapping[str, Any], labels: Labels,
         key_names: Sequence[str] | None = None) -> pl.DataFrame:
    """The released record ``record`` (its JSON, parsed) as a labelled table.

    ``key_names``: the names of aggregate SQL's group keys (from its SELECT list)."""
    kind = str(record.get("kind"))
    spec = record.get("spec") or {}
    cells = [Cell(tuple(c["row"]), str(c["column"]), str(c["kind"]), c["value"],
                  bool(c["suppressed"])) for c in record.get("cells") or []]
    keys = _keys(kind, spec, key_names, cells)
    if kind == AnalysisKind.CROSSTAB.value:  # a grid: both categories are keys, kinds figures
        cells = [Cell((*c.row, c.column), c.kind, c.kind, c.value, c.suppressed) for c in cells]
    elif kind == AnalysisKind.CUMULATIVE_INCIDENCE.value:
        cells = _by_cause(cells)
    return _labelled(kind, _wide(cells, keys), keys, labels, ratio_names(kind, spec))


def tidy_csv(payload: bytes, spec: Mapping[str, Any], kind: str, labels: Labels,
             key_names: Sequence[str] | None = None) -> pl.DataFrame:
    """The same from a record released as CSV (rows joined with " | ")."""
    reader = csv.DictReader(io.StringIO(payload.decode("utf-8")))
    cells: list[dict[str, Any]] = []
    for line in reader:
        value = line["value"]
        cells.append({"row": line["row"].split(" | "), "column": line["column"],
                      "kind": line["kind"], "value": float(value) if value else None,
                      "suppressed": line["suppressed"] == "yes"})
    widths = {len(c["row"]) for c in cells}
    expected = len(_keys(kind, spec, key_names, []))
    if kind == AnalysisKind.CUMULATIVE_INCIDENCE.value:
        expected -= 1  # the cause is in the column's name
    if widths and widths != {expected}:
        raise Invalid("this output was released as CSV and a group label holds \" | \", so its "
                      "groups cannot be told apart here; download its record "
                      "(GET /outputs/{id}/download) or ask for the analysis as JSON")
    return tidy({"kind": kind, "spec": dict(spec), "cells": cells}, labels, key_names)


def _by_cause(cells: Sequence[Cell]) -> list[Cell]:
    """A competing-risks table by cause: a row per group, interval and cause, with that
    cause's events and incidence beside the interval's numbers at risk and censored."""
    causes = list(dict.fromkeys(c.column.partition(":")[2] for c in cells if ":" in c.column))
    out: list[Cell] = []
    for c in cells:
        if ":" in c.column:
            figure, _, cause = c.column.partition(":")
            out.append(Cell((*c.row, cause), figure, c.kind, c.value, c.suppressed))
        else:
            out += [Cell((*c.row, cause), c.column, c.kind, c.value, c.suppressed)
                    for cause in causes]
    return out


def _keys(kind: str, spec: Mapping[str, Any], key_names: Sequence[str] | None,
          cells: Sequence[Cell]) -> list[str]:
    """The names of a row's labels, in order."""
    if kind == AnalysisKind.FREQUENCY.value:
        return [str(spec.get("variable", "value"))]
    if kind == AnalysisKind.CROSSTAB.value:
        return [str(spec.get("rows", "rows")), str(spec.get("columns", "columns"))]
    if kind == AnalysisKind.HISTOGRAM.value:
        return ["bin"]
    if kind in (AnalysisKind.SUMMARY.value, AnalysisKind.CORRELATION.value):
        return ["variable"]
    if kind in MODELS:
        return ["term"]
    if kind == AnalysisKind.KAPLAN_MEIER.value:
        return [str(spec.get("group") or "group"), "interval"]
    if kind == AnalysisKind.CUMULATIVE_INCIDENCE.value:
        return [str(spec.get("group") or "group"), "interval", str(spec.get("event", "cause"))]
    if kind == AnalysisKind.AGGREGATE_SQL.value:
        width = max((len(c.row) for c in cells), default=len(key_names or []))
        names = list(key_names or [])
        if len(names) != width:
            names = [f"key{i + 1}" for i in range(width)]
        return names
    raise Invalid(f"an output of kind {kind!r} has no table form; download its record")


def _wide(cells: Sequence[Cell], keys: list[str]) -> pl.DataFrame:
    """One row per distinct row label (in the record's order), one column per figure."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    figures: list[str] = []
    kinds: dict[str, set[str]] = {}
    for cell in cells:
        row = rows.setdefault(cell.row, {**dict(zip(keys, cell.row, strict=False)),
                                         SUPPRESSED: []})
        if cell.column not in kinds:
            figures.append(cell.column)
            kinds[cell.column] = set()
        kinds[cell.column].add(cell.kind)
        row[cell.column] = cell.value
        if cell.suppressed:
            row[SUPPRESSED].append(cell.column)
    schema: dict[str, pl.DataType] = dict.fromkeys(keys, pl.String())
    for figure in figures:
        whole = kinds[figure] <= _COUNTS and all(
            r.get(figure) is None or float(r[figure]).is_integer() for r in rows.values())
        schema[figure] = pl.Int64() if whole else pl.Float64()
    schema[SUPPRESSED] = pl.String()
    data = [{**{k: r.get(k) for k in schema if k != SUPPRESSED},
             SUPPRESSED: "; ".join(r[SUPPRESSED])} for r in rows.values()]
    for row in data:
        for figure in figures:
            if row[figure] is not None and schema[figure] == pl.Int64():
                row[figure] = int(row[figure])
    return pl.DataFrame(data, schema=schema, orient="row") if data else pl.DataFrame(
        schema=schema)


def _labelled(kind: str, frame: pl.DataFrame, keys: list[str], labels: Labels,
              ratios: tuple[str, str, str] | None) -> pl.DataFrame:
    if kind in MODELS:
        frame = _terms(frame, labels)
        if ratios is not None:
            frame = _ratios(frame, *ratios)
    elif kind == AnalysisKind.HISTOGRAM.value:
        frame = _edges(frame)
    elif kind in _LIFE_TABLES:
        frame = _intervals(frame)
    for key in keys:
        if key in labels and key in frame.columns:
            frame = _with_meaning(frame, key, labels[key])
    if kind in _LIFE_TABLES and keys[0] == "group":
        frame = frame.drop("group")  # no grouping variable: one curve, "All"
    return frame.select([*[c for c in frame.columns if c != SUPPRESSED], SUPPRESSED])


def meaning(code: str, coding: Mapping[str, str]) -> str | None:
    """The coding's meaning of a label as released ("1", or "1.0" from a float column)."""
    if code in coding:
        return coding[code]
    try:
        number = float(code)
    except ValueError:
        return None
    return coding.get(str(int(number))) if number.is_integer() else None


def _with_meaning(frame: pl.DataFrame, key: str, coding: Mapping[str, str]) -> pl.DataFrame:
    """``key`` shown by meaning, its code kept beside it (totals and "(missing)" unchanged)."""
    codes = frame[key].to_list()
    meanings = [None if c is None else (meaning(c, coding) or c) for c in codes]
    at = frame.columns.index(key)
    return frame.with_columns(pl.Series(key, meanings, dtype=pl.String)).insert_column(
        at + 1, pl.Series(f"{key}{CODE_SUFFIX}", codes, dtype=pl.String))


_LEVEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")  # a categorical part: ``sex=1``


def term_parts(term: str, labels: Labels) -> tuple[str | None, str | None]:
    """A model term's variable and (for categorical parts) level, by meaning:
    ``sex=1`` is ("sex", "Male"); an interaction ``sex=1:smoking=2`` is ("sex:smoking",
    "Male:Current"), ``bmi:sex=1`` ("bmi:sex", "Male"); a spline piece
    ``cr(age, df=4)[0]`` is itself, with no level."""
    if term in (MODEL_ROW_LABEL, INTERCEPT):
        return None, None
    names: list[str] = []
    levels: list[str] = []
    for part in term.split(":"):
        found = _LEVEL.fullmatch(part)
        if found is None:
            names.append(part)
            continue
        name, level = found.groups()
        names.append(name)
        levels.append((meaning(level, labels[name]) or level) if name in labels else level)
    return ":".join(names), ":".join(levels) or None


def term_meaning(term: str, labels: Labels) -> str:
    """A model term with each coded level by its meaning: ``sex=1`` is ``sex=Male``, an
    interaction ``bmi:sex=1`` ``bmi:sex=Male``, ``smoking=2`` ``smoking=Current``; a level
    with no meaning (a computed column, an unknown code) and any other part as they are."""
    parts = []
    for part in term.split(":"):
        found = _LEVEL.fullmatch(part)
        if found is not None and found.group(1) in labels:
            name, level = found.groups()
            said = meaning(level, labels[name])
            part = part if said is None else f"{name}={said}"
        parts.append(part)
    return ":".join(parts)


def _terms(frame: pl.DataFrame, labels: Labels) -> pl.DataFrame:
    """A model's ``term`` by the meanings of its levels (``sex=Male``), the term as fitted
    beside it in ``term_code`` (``sex=1``, as the record and the check name it), then its
    variable and (for a categorical one) its level."""
    terms = frame["term"].to_list()
    parts = [term_parts(term, labels) for term in terms]
    return frame.with_columns(
        pl.Series("term", [term_meaning(t, labels) for t in terms], dtype=pl.String)
    ).insert_column(1, pl.Series(f"term{CODE_SUFFIX}", terms, dtype=pl.String)
                    ).insert_column(2, pl.Series("variable", [p[0] for p in parts],
                                                 dtype=pl.String)
                                    ).insert_column(3, pl.Series("level", [p[1] for p in parts],
                                                                 dtype=pl.String))


def _shown(value: float) -> float:
    return float(f"{value:.{steps.SIGNIFICANT}g}")


def _ratios(frame: pl.DataFrame, ratio: str, low: str, high: str) -> pl.DataFrame:
    """exp of the released coefficient and its limits (a function of released figures)."""
    def exp_of(column: str) -> pl.Series:
        values = frame[column].to_list() if column in frame.columns else [None] * frame.height
        return pl.Series([None if v is None or v > 700 else _shown(math.exp(v))
                          for v in values], dtype=pl.Float64)
    return frame.with_columns(exp_of("coef").alias(ratio), exp_of("ci_low").alias(low),
                              exp_of("ci_high").alias(high))


def _bounds(label: str) -> tuple[float | None, float | None]:
    """"[15, 20)" or "(1826, 3652] days" -> (15, 20); a label it cannot read -> (None, None)."""
    inner = label.split("]")[0].split(")")[0].lstrip("[(")
    low, _, high = inner.partition(",")
    try:
        return float(low), float(high)
    except ValueError:
        return None, None


def _edges(frame: pl.DataFrame) -> pl.DataFrame:
    bounds = [_bounds(b) for b in frame["bin"].to_list()]
    return frame.insert_column(1, pl.Series("lower", [b[0] for b in bounds], dtype=pl.Float64)
                               ).insert_column(2, pl.Series("upper", [b[1] for b in bounds],
                                                            dtype=pl.Float64))


def _intervals(frame: pl.DataFrame) -> pl.DataFrame:
    at = frame.columns.index("interval")
    bounds = [_bounds(b) for b in frame["interval"].to_list()]
    return frame.insert_column(at + 1, pl.Series("start", [b[0] for b in bounds],
                                                 dtype=pl.Float64)
                               ).insert_column(at + 2, pl.Series("end", [b[1] for b in bounds],
                                                                 dtype=pl.Float64))


def encode(frame: pl.DataFrame, fmt: TableFormat) -> bytes:
    """The table as the bytes of ``fmt``."""
    buffer = io.BytesIO()
    if fmt is TableFormat.CSV:
        frame.write_csv(buffer)
    else:
        frame.write_parquet(buffer)
    return buffer.getvalue()


def record_of(payload: bytes) -> dict[str, Any]:
    """A released JSON record, parsed."""
    parsed = json.loads(payload)
    if not isinstance(parsed, dict):
        raise Invalid("this output's record is not an analysis's table")
    return parsed
