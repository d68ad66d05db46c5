"""Differentially private aggregates over a project's view: what may be asked, and the answer.

A query names one table of the project's view (``participants`` or an event table), optional
row conditions, and one aggregate: ``count``, ``sum``, ``mean``, ``quantile`` or
``histogram`` (counts per group). The privacy unit is the participant: the participants table
holds one row per participant; on an event table every row carries the participant's ``pid``
and OpenDP truncates each participant to ``max_rows`` rows (or, for a histogram, to one row in
each of at most ``max_groups`` groups) before anything is counted. Values are clipped to the
query's public ``bounds``; groups come from public keys (the dictionary's coding, the query's
own list, or numeric ``bins``), never from the data.

Queries run only over the view's own tables, never over dataset definitions: a definition is
arbitrary SQL over everyone's rows and could copy one participant's value into other
participants' rows, which would break the privacy unit.

Work is split by what it may touch. :func:`plan` reads only the query, the view's schema and
the dictionary (its errors say nothing about the data, so they come before any charge).
:func:`frame` prepares the rows (conditions, clipping, keys, a random sample within each
participant's bound), vectorised in Polars and NumPy. :func:`answer` turns the engine's
released numbers into estimates with their noise scales and confidence intervals.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

import numpy as np
import polars as pl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import PARTICIPANTS, event_table, parse_column_name
from strongroom.errors import Invalid
from strongroom.privacy import budget
from strongroom.privacy.dp_engine import GROUP, PID, VALUE

Column = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Scalar = str | int | float
MAX_KEYS = 20_000  # every ICD-10 code fits
MANY_GROUPS = 32  # above this many keys a participant counts in DEFAULT_MAX_GROUPS by default
DEFAULT_MAX_GROUPS = 10
MISSING = "(missing)"
_INTEGER_LIMIT = 1_000_000_000  # |bound| × 10^d: fits 32 bits; the engine's overflow proof
_MAX_DECIMALS = 6


class Kind(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    QUANTILE = "quantile"
    HISTOGRAM = "histogram"


Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null",
             "starts_with"]


class Condition(BaseModel):
    """A row condition: ``{"column": "p31", "op": "==", "value": 1}`` (row by row only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: Column
    op: Op
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> Self:
        if self.op in ("is_null", "not_null"):
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not 1 <= len(self.value) <= MAX_KEYS:
                raise ValueError(f"{self.op} takes a list of 1 to {MAX_KEYS} values")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"{self.op} takes one value")
        return self


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    table: Column = PARTICIPANTS
    where: list[Condition] = Field(default_factory=list, max_length=20)
    epsilon: Scalar = Field(description="the privacy loss this query may spend, e.g. \"0.1\"")
    confidence: float = Field(0.95, ge=0.5, le=0.999,
                              description="the level of the confidence intervals returned")
    max_rows: int | None = Field(None, ge=1, le=1000, description=(
        "event tables: rows kept per participant (default 1); a random sample when more"))

    @field_validator("epsilon")
    @classmethod
    def _exact(cls, value: Scalar) -> str:
        try:
            exact = budget.amount(value, "epsilon")
        except Invalid as exc:
            raise ValueError(exc.reasons[0]) from None
        if exact <= 0:
            raise ValueError("epsilon must be above 0")
        return budget.show(exact)

    def reads(self) -> list[str]:
        return []


class CountQuery(_Query):
    """Participants (or, with ``max_rows`` above 1 on an event table, rows) meeting ``where``."""

    kind: Literal[Kind.COUNT] = Kind.COUNT


class _Bounded(_Query):
    column: Column
    bounds: tuple[float, float] = Field(description="public [lower, upper]: values are "
                                                    "clipped to it; it sets the noise")

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        lo, hi = bounds
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise ValueError("bounds must be two finite numbers, the lower first")
        return bounds

    def reads(self) -> list[str]:
        return [self.column]


class SumQuery(_Bounded):
    """The sum of a numeric column, each value clipped to ``bounds``."""

    kind: Literal[Kind.SUM] = Kind.SUM


class MeanQuery(_Bounded):
    """The mean of a numeric column's known values, each clipped to ``bounds``."""

    kind: Literal[Kind.MEAN] = Kind.MEAN


class QuantileQuery(_Bounded):
    """Quantiles of a numeric column, chosen among ``candidates`` evenly spaced in ``bounds``
    (ε is shared evenly among them)."""

    kind: Literal[Kind.QUANTILE] = Kind.QUANTILE
    quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.5], min_length=1, max_length=9)
    candidates: int = Field(1001, ge=11, le=100_001)


class HistogramQuery(_Query):
    """Participants per group of a column: its values (``keys``: given, or the dictionary's
    coding, cut to a ``prefix``) or numeric ``bins``."""

    kind: Literal[Kind.HISTOGRAM] = Kind.HISTOGRAM
    column: Column
    keys: list[Scalar] | None = Field(None, min_length=1, max_length=MAX_KEYS)
    prefix: int | None = Field(None, ge=1, le=10, description="group codes by their first "
                                                              "characters (ICD-10 A00 → A)")
    bins: list[float] | None = Field(None, min_length=2, max_length=101,
                                     description="increasing edges: groups [e0, e1) … [.., en]")
    missing: bool = Field(False, description="count missing values as a group of their own")
    max_groups: int | None = Field(None, ge=1, le=1000, description=(
        "event tables: groups a participant may count in (a random choice when more)"))

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.bins is not None:
            if self.keys is not None or self.prefix is not None:
                raise ValueError("bins group numbers: give bins, or keys/prefix, not both")
            if any(not math.isfinite(e) for e in self.bins) or any(
                    b <= a for a, b in pairwise(self.bins)):
                raise ValueError("bins must be finite and strictly increasing")
        if self.keys is not None and len({str(k) for k in self.keys}) != len(self.keys):
            raise ValueError("keys name a group twice")
        return self

    def reads(self) -> list[str]:
        return [self.column]


AnyQuery = Annotated[CountQuery | SumQuery | MeanQuery | QuantileQuery | HistogramQuery,
                     Field(discriminator="kind")]
_ADAPTER: TypeAdapter[AnyQuery] = TypeAdapter(AnyQuery)


def parse_query(data: Mapping[str, Any]) -> AnyQuery:
    """The typed query, or :class:`Invalid` with one reason per bad field (never the input)."""
    if not isinstance(data, Mapping):
        raise Invalid("a DP query must be an object with a kind and its fields")
    if data.get("kind") not in {k.value for k in Kind}:
        raise Invalid(f"kind must be one of: {', '.join(k.value for k in Kind)}")
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise Invalid([_reason(str(data.get("kind")), e) for e in exc.errors()]) from None


def _reason(kind: str, error: ErrorDetails) -> str:
    loc = [str(p) for p in error["loc"]]
    if loc and loc[0] == kind:
        loc = loc[1:]
    where = ".".join(loc) or "query"
    if error["type"] == "extra_forbidden":
        return f"{where}: not a field of a {kind} query"
    if error["type"] == "missing":
        return f"{where}: required for a {kind} query"
    message = error["msg"].removeprefix("Value error, ")
    return message if where == "query" else f"{where}: {message}"


# -- the plan: schema, dictionary and query only ----------------------------------------------

@dataclass(frozen=True)
class Plan:
    """Everything about a query that does not depend on the data."""

    query: AnyQuery
    unit: Literal["rows", "pid"]  # participants table: a row is a participant
    max_rows: int
    engine: dict[str, Any]  # the engine's header, without op and epsilon
    schema: dict[str, pl.DataType]  # of the frame sent to the engine
    labels: list[str] = field(default_factory=list)  # histogram groups, in key order
    keys: list[Any] = field(default_factory=list)  # their values in the table
    factor: int = 1  # sums travel as integers: value × factor
    notes: list[str] = field(default_factory=list)

    @property
    def alpha(self) -> float:
        return 1.0 - self.query.confidence

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)


_NUMERIC = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
            pl.Float32, pl.Float64)


def plan(query: AnyQuery, schema: Mapping[str, Mapping[str, pl.DataType]],
         dictionary: Dictionary) -> Plan:
    """Check the query against the view's schema and fix what the engine will do."""
    columns = schema.get(query.table)
    if columns is None:
        known = ", ".join(sorted(schema))
        raise Invalid(f"the project's view has no table {query.table!r}; DP queries read one "
                      f"of its own tables ({known}), never dataset definitions")
    for name in [c.column for c in query.where] + query.reads():
        if name not in columns:
            raise Invalid(f"table {query.table} has no column {name!r}; see the project's "
                          f"schema (GET /projects/{{id}}/schema)")
    for condition in query.where:
        _literal(condition, columns[condition.column])
    events = query.table != PARTICIPANTS
    if not events and query.max_rows not in (None, 1):
        raise Invalid("max_rows is for event tables: the participants table holds one row "
                      "per participant")
    max_rows = query.max_rows or 1
    notes = []
    if events:
        notes.append(f"each participant contributes at most {max_rows} row(s) of "
                     f"{query.table} (a random sample when they have more)")
    base: dict[str, Any] = {"unit": "pid" if events else "rows", "kind": query.kind.value,
                            "max_rows": max_rows}
    schema_out: dict[str, pl.DataType] = {PID: pl.Int32()} if events else {}
    if isinstance(query, CountQuery):
        if not events:
            schema_out = {PID: pl.Int32()}
        return Plan(query, "pid" if events else "rows", max_rows,
                    {**base, "alpha": 1 - query.confidence}, schema_out, notes=notes)
    if isinstance(query, HistogramQuery):
        return _histogram(query, columns, dictionary, base, schema_out, notes, max_rows)
    assert isinstance(query, _Bounded)
    if not isinstance(columns[query.column], _NUMERIC):
        raise Invalid(f"{query.column} is not numeric ({columns[query.column]}); a "
                      f"{query.kind.value} needs a number")
    lo, hi = query.bounds
    notes.append(f"values are clipped to [{lo:g}, {hi:g}]")
    if isinstance(query, QuantileQuery):
        candidates = np.linspace(lo, hi, query.candidates).tolist()
        notes.append(f"quantiles are chosen among {query.candidates} values spaced "
                     f"{(hi - lo) / (query.candidates - 1):.6g} apart")
        return Plan(query, base["unit"], max_rows,
                    {**base, "bounds": [lo, hi], "quantiles": list(query.quantiles),
                     "candidates": candidates, "alpha": 1 - query.confidence},
                    {**schema_out, VALUE: pl.Float64()}, notes=notes)
    factor = _factor(lo, hi)
    alpha = (1 - query.confidence) / (2 if isinstance(query, MeanQuery) else 1)
    return Plan(query, base["unit"], max_rows,
                {**base, "bounds": [round(lo * factor), round(hi * factor)], "alpha": alpha},
                {**schema_out, VALUE: pl.Int32()}, factor=factor, notes=notes)


def _factor(lo: float, hi: float) -> int:
    """10^d: values travel as integers (exact sums, no floating-point slack in the noise)."""
    widest = max(abs(lo), abs(hi), 1e-12)
    decimals = min(_MAX_DECIMALS, math.floor(math.log10(_INTEGER_LIMIT / widest)))
    if decimals < 0:
        raise Invalid(f"bounds as wide as {widest:g} are not supported; the engine sums "
                      f"values up to {_INTEGER_LIMIT:,}: rescale the column")
    return int(10**decimals)


def _literal(condition: Condition, dtype: pl.DataType) -> None:
    """Refuse a condition whose value cannot be compared with its column."""
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if condition.op in ("is_null", "not_null"):
        return
    if condition.op == "starts_with" and dtype != pl.String():
        raise Invalid(f"starts_with needs a text column; {condition.column} is {dtype}")
    for value in values:
        if value is not None:
            _convert(value, dtype, condition.column)


def _convert(value: Scalar, dtype: pl.DataType, column: str) -> Any:
    if isinstance(dtype, _NUMERIC):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{column} is a number: compare it with numbers")
        return value
    if dtype == pl.Date():
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise Invalid(f"{column} is a date: write dates as YYYY-MM-DD") from None
    if dtype == pl.String():
        if not isinstance(value, str):
            raise Invalid(f"{column} is text: compare it with text")
        return value
    raise Invalid(f"{column} ({dtype}) cannot be used in a condition")


def _histogram(query: HistogramQuery, columns: Mapping[str, pl.DataType],
               dictionary: Dictionary, base: dict[str, Any],
               schema_out: dict[str, pl.DataType], notes: list[str],
               max_rows: int) -> Plan:
    dtype = columns[query.column]
    if query.prefix is not None and dtype != pl.String():
        raise Invalid(f"prefix groups text codes; {query.column} is {dtype}")
    if query.bins is not None:
        if not isinstance(dtype, _NUMERIC):
            raise Invalid(f"bins group numbers; {query.column} is {dtype}")
        edges = query.bins
        keys: list[Any] = list(range(len(edges) - 1))
        labels = [f"[{a:g}, {b:g}{']' if i == len(edges) - 2 else ')'}"
                  for i, (a, b) in enumerate(pairwise(edges))]
    else:
        keys = _keys(query, dtype, dictionary)
        labels = [str(k) for k in keys]
    if query.missing:
        labels.append(MISSING)
    if len(labels) > MAX_KEYS:
        raise Invalid(f"{len(labels)} groups are too many (at most {MAX_KEYS}); use a prefix")
    events = base["unit"] == "pid"
    groups = len(labels)
    if events:
        groups = query.max_groups or (len(labels) if len(labels) <= MANY_GROUPS
                                      else DEFAULT_MAX_GROUPS)
        groups = min(groups, len(labels))
        notes.append(f"each participant counts once in each of at most {groups} group(s) "
                     f"(a random choice when they have more)")
    elif query.max_groups not in (None, 1):
        raise Invalid("max_groups is for event tables: on the participants table each "
                      "participant is in one group")
    return Plan(query, base["unit"], max_rows,
                {**base, "keys": len(labels), "max_groups": groups,
                 "alpha": 1 - query.confidence},
                {**schema_out, GROUP: pl.Int32()}, labels=labels, keys=keys, notes=notes)


def _keys(query: HistogramQuery, dtype: pl.DataType, dictionary: Dictionary) -> list[Any]:
    """The groups: the query's keys, else the codes of the column's field in the dictionary."""
    if query.keys is not None:
        return [_convert(k, dtype, query.column) for k in query.keys]
    coding = None
    try:
        if query.table == PARTICIPANTS:
            field_id = parse_column_name(query.column, dictionary).field_id
        else:
            field_id = event_table(query.table).columns[query.column]
        coding = dictionary.coding_of(dictionary.field(field_id))
    except (KeyError, ValueError):
        coding = None
    if coding is None:
        raise Invalid(f"{query.column} has no coding in the dictionary, so its groups are not "
                      f"public: name them with keys, or give numeric bins")
    codes = list(coding.codes)
    if query.prefix is not None:
        codes = sorted({c[:query.prefix] for c in codes})
    if isinstance(dtype, _NUMERIC):
        return [int(c) for c in codes]
    return codes


# -- the rows sent to the engine ----------------------------------------------------------

def frame(prepared: Plan, tables: Mapping[str, pl.DataFrame],
          rng: np.random.Generator) -> pl.DataFrame:
    """The columns the engine needs, with conditions applied and each participant's rows
    sampled within their bound. Never leaves memory."""
    query = prepared.query
    table = tables[query.table]
    if prepared.unit == "rows" and not _one_row_each(table[PID]):
        raise Invalid("the participants table does not hold one row per participant; "
                      "DP queries are refused until the custodian's team repairs it")
    rows = table.lazy()
    for condition in query.where:
        rows = rows.filter(_predicate(condition, table.schema[condition.column]))
    out = rows.select(_columns(prepared, table.schema)).drop_nulls().collect()
    if prepared.unit == "rows":
        return out
    if isinstance(query, HistogramQuery):  # OpenDP's group-by on (pid, group) proves the rest
        return _groups_within(out, int(prepared.engine["max_groups"]), len(prepared.labels),
                              rng)
    if isinstance(query, CountQuery) and prepared.max_rows == 1:
        return out  # OpenDP's group-by on pid counts each participant once
    return _sample_within(out, prepared.max_rows, rng)


def _groups_within(rows: pl.DataFrame, bound: int, keys: int,
                   rng: np.random.Generator) -> pl.DataFrame:
    """Each participant's distinct groups, at most ``bound`` of them chosen at random (fewer
    rows for OpenDP to serialise and group, too)."""
    pairs = rows[PID].cast(pl.Int64).to_numpy() * keys + rows[GROUP].to_numpy()
    pairs.sort(kind="stable")  # rows come sorted by pid: a merge sort finds the runs at once
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
    pids, groups = pairs // keys, pairs % keys  # sorted by participant
    keep = keep_at_most(pids, bound, rng)
    return pl.DataFrame({PID: pids[keep], GROUP: groups[keep]},
                        schema={PID: pl.Int32, GROUP: pl.Int32})


def _sample_within(rows: pl.DataFrame, bound: int, rng: np.random.Generator) -> pl.DataFrame:
    """At most ``bound`` rows per pid, chosen at random (untouched when none has more)."""
    keep = keep_at_most(rows[PID].to_numpy(), bound, rng)
    return rows if keep.all() else rows.filter(pl.Series(keep))


def _one_row_each(pids: pl.Series) -> bool:
    """Whether no pid repeats (the view is sorted by pid: strictly increasing is the quick
    proof; anything else is counted)."""
    if pids.len() < 2 or bool((pids.diff().drop_nulls() > 0).all()):
        return True
    return pids.n_unique() == pids.len()


def _predicate(condition: Condition, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(condition.column)
    op, value = condition.op, condition.value
    if op == "is_null":
        return column.is_null()
    if op == "not_null":
        return column.is_not_null()
    if op in ("in", "not_in"):
        assert isinstance(value, list)
        found = column.is_in(pl.Series([_convert(v, dtype, condition.column) for v in value],
                                       dtype=dtype).implode())
        return found if op == "in" else ~found
    assert value is not None and not isinstance(value, list)
    literal = pl.lit(_convert(value, dtype, condition.column), dtype=dtype)
    if op == "starts_with":
        return column.str.starts_with(str(value))
    compare = {"==": column.eq, "!=": column.ne, "<": column.lt, "<=": column.le,
               ">": column.gt, ">=": column.ge}[op]
    return compare(literal)


def _columns(prepared: Plan, schema: pl.Schema) -> list[pl.Expr]:
    query = prepared.query
    out = [pl.col(PID).cast(pl.Int32)] if PID in prepared.schema else []
    if isinstance(query, CountQuery):
        return out
    if isinstance(query, HistogramQuery):
        return [*out, _group(query, prepared, schema[query.column]).alias(GROUP)]
    assert isinstance(query, _Bounded)
    value = pl.col(query.column).cast(pl.Float64)
    value = pl.when(value.is_nan()).then(None).otherwise(value)
    if isinstance(query, QuantileQuery):
        return [*out, value.alias(VALUE)]
    lo, hi = query.bounds
    scaled = (value.clip(lo, hi) * prepared.factor).round().cast(pl.Int32)  # |·| ≤ 1e9
    return [*out, scaled.alias(VALUE)]


def _group(query: HistogramQuery, prepared: Plan, dtype: pl.DataType) -> pl.Expr:
    """Each row's group index (null: not one of the keys, dropped)."""
    column = pl.col(query.column)
    missing = len(prepared.labels) - 1 if query.missing else None
    if query.bins is not None:
        found = _bin_index(column.cast(pl.Float64), query.bins)
    else:
        source = column.str.slice(0, query.prefix) if query.prefix is not None else column
        found = source.replace_strict(prepared.keys, list(range(len(prepared.keys))),
                                      default=None, return_dtype=pl.Int32)
    if missing is not None:
        return pl.when(column.is_null()).then(pl.lit(missing, pl.Int32)).otherwise(found)
    return found.cast(pl.Int32)


def _bin_index(value: pl.Expr, edges: Sequence[float]) -> pl.Expr:
    """[e_i, e_i+1) → i; the last bin includes its upper edge; outside → null."""
    index = pl.lit(None, pl.Int32)
    for i in reversed(range(len(edges) - 1)):
        upper = value <= edges[i + 1] if i == len(edges) - 2 else value < edges[i + 1]
        index = pl.when((value >= edges[i]) & upper).then(pl.lit(i, pl.Int32)).otherwise(index)
    return index


def keep_at_most(pids: np.ndarray, bound: int, rng: np.random.Generator) -> np.ndarray:
    """A mask keeping, for each pid, a uniformly random ``bound`` of its rows (all if fewer)."""
    keep = np.ones(len(pids), dtype=bool)
    if len(pids) and bool(np.all(pids[1:] >= pids[:-1])):  # sorted: runs without a sort
        starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
        counts = np.diff(np.r_[starts, len(pids)])
        inverse = np.repeat(np.arange(len(starts)), counts)
    else:
        _, inverse, counts = np.unique(pids, return_inverse=True, return_counts=True)
    over = np.flatnonzero(counts[inverse] > bound)  # only participants above the bound
    if len(over) == 0:
        return keep
    # a random order within each participant: sort by (participant's rank + a uniform draw)
    order = over[np.argsort(inverse[over] + rng.random(len(over)), kind="stable")]
    ranks = inverse[order]
    starts = np.flatnonzero(np.r_[True, ranks[1:] != ranks[:-1]])
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep[order[position >= bound]] = False
    return keep


# -- the answer ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Noise:
    """The noise added to one released statistic, in the answer's own units."""

    statistic: str
    distribution: str
    scale: float


@dataclass(frozen=True)
class Estimate:
    """One released number and its confidence interval (or, for a quantile, rank error)."""

    label: str
    value: float | int | None
    ci_lower: float | None = None
    ci_upper: float | None = None
    rank_error: float | None = None  # quantiles: ± this many rows around the target rank


@dataclass(frozen=True)
class Released:
    estimates: list[Estimate]
    noise: list[Noise]
    epsilon_used: float
    notes: list[str]


def answer(prepared: Plan, released: Mapping[str, Any]) -> Released:
    """Estimates, noise and intervals from the engine's answer (post-processing only)."""
    query = prepared.query
    summary = {row["column"]: row for row in released["summary"]}
    columns: Mapping[str, list[Any]] = released["columns"]
    notes = list(prepared.notes)
    if isinstance(query, CountQuery | HistogramQuery):
        row = summary["len"]
        noise = [Noise("count", row["distribution"], float(row["scale"]))]
        accuracy = float(row["accuracy"])
        if isinstance(query, CountQuery):
            estimates = [_interval("count", int(columns["len"][0]), accuracy, 0)]
        else:
            counts = dict(zip(columns[GROUP], columns["len"], strict=True))
            estimates = [_interval(label, int(counts.get(i, 0)), accuracy, 0)
                         for i, label in enumerate(prepared.labels)]
        notes.append("counts carry integer noise: a small or empty group may show a "
                     "negative count")
        return Released(estimates, noise, float(released["epsilon"]), notes)
    assert isinstance(query, _Bounded)
    if isinstance(query, QuantileQuery):
        return _quantiles(query, prepared, released, notes)
    factor = prepared.factor
    total = columns["sum"][0] / factor
    total_row = summary["sum"]
    sum_scale = float(total_row["scale"]) / factor
    sum_accuracy = float(total_row["accuracy"]) / factor
    noise = [Noise("sum", total_row["distribution"], sum_scale)]
    if isinstance(query, SumQuery):
        return Released([_interval("sum", total, sum_accuracy, None)], noise,
                        float(released["epsilon"]), notes)
    count_row = summary["len"]
    noise.append(Noise("count", count_row["distribution"], float(count_row["scale"])))
    count = int(columns["len"][0])
    estimate = _mean(total, sum_accuracy, count, float(count_row["accuracy"]), query.bounds)
    notes.append("the mean is the noisy sum over the noisy count; its interval joins both "
                 "intervals (each at half the missing confidence)")
    return Released([estimate], noise, float(released["epsilon"]), notes)


def _interval(label: str, value: float | int, accuracy: float,
              floor: float | None) -> Estimate:
    lower = value - accuracy
    return Estimate(label, value, lower if floor is None else max(floor, lower),
                    value + accuracy)


def _mean(total: float, total_acc: float, count: int, count_acc: float,
          bounds: tuple[float, float]) -> Estimate:
    lo, hi = bounds
    value = min(hi, max(lo, total / max(count, 1)))
    fewest = count - count_acc
    if fewest <= 0:  # the count may be near zero: the interval is all the bounds
        return Estimate("mean", value, lo, hi)
    ratios = [(total + s * total_acc) / n for s in (-1, 1) for n in (fewest, count + count_acc)]
    return Estimate("mean", value, max(lo, min(ratios)), min(hi, max(ratios)))


def _quantiles(query: QuantileQuery, prepared: Plan, released: Mapping[str, Any],
               notes: list[str]) -> Released:
    """Each quantile with the rank accuracy of OpenDP's exponential mechanism.

    Scores are |#below − α·n| in rank units times α's denominator; the mechanism picks a
    candidate with probability ∝ exp(−score/scale), so a candidate whose rank is t rows
    further from the target than the best one wins with probability ≤ |C|·exp(−t/r), with r
    = 2·max(α, 1 − α)·k/ε_each the scale in rows. Hence ± r·ln(|C|/β) rows at level 1 − β.
    """
    each = float(released["epsilon_each"])
    estimates, noise = [], []
    beta = 1 - query.confidence
    for i, q in enumerate(query.quantiles):
        row = released["summary"][i]
        rows_scale = 2 * max(q, 1 - q) * prepared.max_rows / each
        error = rows_scale * math.log(query.candidates / beta)
        estimates.append(Estimate(f"q{q:g}", float(released["columns"][f"q{i}"][0]),
                                  rank_error=error))
        noise.append(Noise(f"q{q:g} (in ranks)", str(row["distribution"]), rows_scale))
    notes.append("a quantile's interval is in ranks: with the stated confidence the released "
                 "value's rank is within rank_error rows of the target rank, give or take "
                 "one candidate step")
    return Released(estimates, noise, float(released["epsilon"]), notes)
