"""Linking a suspect file's rows to master participants by their values, not their IDs.

A leaked copy may have lost or re-keyed its ID column, shuffled its rows, renamed, dropped and
reordered its columns, rounded or jittered its numbers, mixed several recipients' copies and
been padded with rows of people who are not in the cohort. Linkage therefore works from values:

1. **Columns** are matched to master columns by their distributions at the suspect column's own
   grid (quantiles for numbers and dates, code frequencies for categories, value sets for
   text), one-to-one (Hungarian assignment), ignoring names except to break exact ties.
2. **A first pass** on a sample of rows links confidently (nearest master row far better than
   the next) using the unambiguous numeric columns. Those links settle what distributions
   cannot: twin columns (three spirometry readings), which categorical columns are still exact
   (and may block), and each numeric column's error scale and offset (rounding, marks, noise).
3. **An ID column** that survived and belongs to a recipient's pseudonym map links rows
   directly, but only where the values agree with the master row it names.
4. **The full pass** blocks on the exact columns and finds each row's nearest master rows in
   error-scaled units with a k-d tree (on the most discriminating columns, with a lower bound
   that keeps the answer exact for all columns). A link is accepted only when the best row is
   within the chi-square acceptance region and the next is clearly worse (log-likelihood
   margin), at a radius calibrated on the master itself: master rows stand in for foreign
   people, and the radius shrinks until at most ``ALPHA`` of them would be linked to somebody
   else. Wrong links stay rare, and foreign or synthetic rows mostly stay unlinked.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.special import chdtri  # chi-square inverse survival: scipy.stats is slow to import

from strongroom import sets
from strongroom.cohort.dictionary import Dictionary, Role, ValueType
from strongroom.cohort.model import EID, parse_column_name
from strongroom.errors import Invalid
from strongroom.extracts import arrays
from strongroom.extracts.periods import infer_calendar

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Kind = Literal["code", "number", "date", "text"]

STATS_ROWS = 20_000  # rows sampled for distribution comparisons
FIRST_PASS_ROWS = 4_000  # suspect rows linked in the first pass
MIN_LINKS = 30  # first-pass links needed to refine columns and error scales
MAX_COST = 0.25  # distribution distance above which a column matches nothing
TREE_DIMS = 4  # numeric columns the k-d tree searches on (the most discriminating)
CANDIDATES = 4  # nearest rows per query, checked on all columns
TAIL = 1e-6  # chi-square tail outside the acceptance region for a true match
MARGIN = 16.0  # best must beat second by this in d² (likelihood ratio e^8 ≈ 3,000)
ALPHA = 2e-4  # share of foreign (master) rows that may link to someone: wrong-link budget
CALIBRATION_ROWS = 20_000
_LEVELS = np.linspace(0.02, 0.98, 49)
_SENTINEL = -1e9  # missing values, in error-scaled units: far from every real value
_D2_ROWS = 2_048  # suspect rows per step of a whole-master distance pass
_BLOCK = 1e10  # spacing between blocks on the block axis: never within reach
_ID_LOW, _ID_HIGH = 1_000_000, 10_000_000
_GRID_SHARE = 0.4  # share of values on a grid for it to count as the column's grid


@dataclass(frozen=True)
class ColumnSpec:
    """What linkage needs to know about a master column."""

    name: str
    kind: Kind
    unit: float = 1.0  # one unit of recorded precision (1 for codes and dates)
    keyable: bool = False  # exact and unmarked: may be used to block


@dataclass
class Linked:
    """Which master participant each suspect row is, as far as values can tell."""

    columns: dict[str, str]  # suspect column -> master column
    eids: IntArray  # per suspect row; -1 when unlinked
    values: dict[str, FloatArray]  # master column -> suspect values per row (NaN missing)
    rows_read: int
    grids: dict[str, float] = field(default_factory=dict)  # master column -> suspect grid
    scales: dict[str, float] = field(default_factory=dict)  # error scale per numeric column
    offsets: dict[str, float] = field(default_factory=dict)  # median suspect − master
    keys: list[str] = field(default_factory=list)  # master columns used as exact blocks
    id_links: dict[str, int] = field(default_factory=dict)  # recipient -> rows linked by ID
    # the master's columns as linkage made them (:func:`master_columns` takes them again)
    made: MasterColumns | None = field(default=None, repr=False, compare=False)

    @property
    def rows_linked(self) -> int:
        return int(np.count_nonzero(self.eids >= 0))


@dataclass(frozen=True)
class MasterColumns:
    """A master frame's code, number and date columns as linkage compares them, made once
    (:func:`master_columns` hands them out again, read-only, for that same frame)."""

    frame: pl.DataFrame
    values: Mapping[str, FloatArray]
    kinds: Mapping[str, Kind]


def master_columns(master: pl.DataFrame, specs: Mapping[str, ColumnSpec],
                   linked: Linked | Planned | None = None) -> dict[str, FloatArray]:
    """:func:`comparable_values` of ``master.select([EID, *specs])``: each column that
    ``linked`` made of this very frame (``master`` is the frame it was linked to) under the
    same kind is taken from it, read-only, instead of being made again (the same numbers)."""
    made = linked.made if linked is not None else None
    have = made.values if made is not None and made.frame is master else {}
    reuse = {c for c, spec in specs.items()
             if c in have and made is not None and made.kinds.get(c) == spec.kind}
    rest = {c: spec for c, spec in specs.items() if c not in reuse}
    fresh = comparable_values(master.select([EID, *rest]), rest) if rest else {}
    out = {}
    for column in specs:
        if column in reuse:
            view = have[column].view()
            view.flags.writeable = False
            out[column] = view
        elif column in fresh:
            out[column] = fresh[column]
    return out


def column_specs(
    columns: Iterable[str], dictionary: Dictionary, marked: Collection[str] = ()
) -> dict[str, ColumnSpec]:
    """Specs for participant-table columns, from the dictionary; ``marked`` never block."""
    specs: dict[str, ColumnSpec] = {}
    for name in columns:
        if name == EID:
            continue
        try:
            fld = dictionary.field(parse_column_name(name, dictionary).field_id)
        except (KeyError, ValueError) as exc:
            raise Invalid(f"master column {name!r} is not a dictionary column: {exc}") from exc
        exact = name not in marked
        if fld.is_categorical:
            specs[name] = ColumnSpec(name, "code", 1.0, exact)
        elif fld.is_numeric:
            integer = fld.value_type == ValueType.INTEGER
            keyable = exact and integer and fld.role != Role.MEASUREMENT
            specs[name] = ColumnSpec(name, "number", 10.0 ** -(fld.precision or 0), keyable)
        elif fld.value_type == ValueType.DATE:
            specs[name] = ColumnSpec(name, "date", 1.0, exact)
        else:
            specs[name] = ColumnSpec(name, "text", 1.0, exact)
    return specs


def link(
    suspect: pl.DataFrame,
    master: pl.DataFrame,
    dictionary: Dictionary,
    id_maps: Mapping[str, pl.DataFrame] | None = None,
    *,
    marked: Collection[str] = (),
    seed: int = 0,
) -> Linked:
    """Link ``suspect`` rows to ``master`` (``eid`` + unmarked columns) by values.

    ``id_maps`` maps each recipient to its pseudonym map (``pid``, ``eid``); ``marked`` names
    master columns that carry fingerprint marks (never used as exact blocks).
    """
    return plan(suspect, master, dictionary, id_maps, marked=marked, seed=seed).finish()


def plan(
    suspect: pl.DataFrame,
    master: pl.DataFrame,
    dictionary: Dictionary,
    id_maps: Mapping[str, pl.DataFrame] | None = None,
    *,
    marked: Collection[str] = (),
    seed: int = 0,
    pool: Executor | None = None,
) -> Planned:
    """:func:`link`'s first half: the suspect's columns matched to the master's, their
    values, blocks and error scales (:class:`Planned`); ``Planned.finish`` links the rows.
    What needs only the columns (the linkage-free readings) can start in between.

    ``pool``: the master's columns are made ready on one of its threads while the suspect's
    are parsed on this one (the same numbers: neither side draws from the other's)."""
    if EID not in master.columns:
        raise Invalid("the master table needs an 'eid' column")
    specs = column_specs(master.columns, dictionary, marked)
    return plan_frames(suspect, master, specs, id_maps, seed=seed, pool=pool)


def link_frames(
    suspect: pl.DataFrame,
    master: pl.DataFrame,
    specs: Mapping[str, ColumnSpec],
    id_maps: Mapping[str, pl.DataFrame] | None = None,
    *,
    mutual: bool = False,
    seed: int = 0,
) -> Linked:
    """:func:`link` with the master columns described by ``specs`` rather than a dictionary.

    ``mutual`` keeps a link only if no second suspect row comes near its master row: for
    small masters (decoys), where the master's own spacing says little about how crowded
    the suspect is; it also refuses duplicated rows, so it is off for the cohort.
    """
    return plan_frames(suspect, master, specs, id_maps, mutual=mutual, seed=seed).finish()


@dataclass
class Planned:
    """A suspect whose columns are matched to the master's (``columns``, ``values``: as
    :class:`Linked` will hold them), its rows not yet linked (:meth:`finish`)."""

    columns: dict[str, str]  # suspect column -> master column
    values: dict[str, FloatArray]  # master column -> suspect values per row (NaN missing)
    rows_read: int
    plan: _Plan
    table: _Master
    rng: np.random.Generator
    mutual: bool
    id_column: _Column | None
    id_maps: Mapping[str, pl.DataFrame]
    made: MasterColumns | None = field(default=None, repr=False)

    def finish(self) -> Linked:
        """Link the rows (the full pass, then any surviving ID column)."""
        plan, table = self.plan, self.table
        eids = np.full(self.rows_read, -1, dtype=np.int64)
        if plan.ready:
            found = _match(plan, table, self.rng, self.mutual)
            eids = np.where(found >= 0, table.eids[np.maximum(found, 0)], -1)
        id_links: dict[str, int] = {}
        if self.id_column is not None and self.id_maps:
            eids, id_links = _link_ids(self.id_column, self.id_maps, plan, table, eids)
        return Linked(
            columns=self.columns,
            eids=eids,
            values=self.values,
            rows_read=self.rows_read,
            grids={m: plan.suspect[s].grid for s, m in plan.mapping.items()},
            scales=dict(plan.sigma),
            offsets=dict(plan.bias),
            keys=list(plan.keys),
            id_links=id_links,
            made=self.made,
        )


def plan_frames(
    suspect: pl.DataFrame,
    master: pl.DataFrame,
    specs: Mapping[str, ColumnSpec],
    id_maps: Mapping[str, pl.DataFrame] | None = None,
    *,
    mutual: bool = False,
    seed: int = 0,
    pool: Executor | None = None,
) -> Planned:
    """:func:`plan` with the master columns described by ``specs`` (:func:`link_frames`)."""
    rng = np.random.default_rng(seed)
    made = pool.submit(_Master.of, master, specs, rng) if pool is not None else None
    profiles = {name: _profile(suspect[name]) for name in suspect.columns}
    table = made.result() if made is not None else _Master.of(master, specs, rng)
    id_column = _id_column(profiles, id_maps or {})
    candidates = [p for name, p in profiles.items() if name != id_column]
    costs = _costs(candidates, table)
    plan = _plan(candidates, table, costs, rng)
    return Planned(
        columns=plan.mapping,
        values={m: plan.suspect[s].values for s, m in plan.mapping.items()
                if plan.suspect[s].kind != "text" and table.specs[m].kind != "text"},
        rows_read=suspect.height,
        plan=plan,
        table=table,
        rng=rng,
        mutual=mutual,
        id_column=profiles[id_column] if id_column is not None else None,
        id_maps=id_maps or {},
        made=MasterColumns(master, table.values,
                           {name: spec.kind for name, spec in table.specs.items()}),
    )


def link_known(
    suspect: pl.DataFrame,
    master: pl.DataFrame,
    specs: Mapping[str, ColumnSpec],
    columns: Mapping[str, str],
    *,
    scales: Mapping[str, float] | None = None,
    offsets: Mapping[str, float] | None = None,
    keys: Collection[str] | None = None,
    mutual: bool = False,
    seed: int = 0,
) -> IntArray:
    """Master ``eid`` per suspect row (−1: unlinked), with the columns already matched.

    For a second master (decoys) once :func:`link` has matched the suspect's columns and
    measured their error scales and offsets against the cohort: ``columns`` maps suspect to
    master columns, ``scales``/``offsets`` default to rounding plus one mark unit and 0, and
    ``keys`` (exact blocking columns) default to keyable columns whose values all occur in
    the master. ``mutual``: see :func:`link_frames`.
    """
    rng = np.random.default_rng(seed)
    mapping = {s: m for s, m in columns.items() if s in suspect.columns and m in master.columns
               and m in specs}
    table = _Master.of(master, {m: specs[m] for m in mapping.values()}, rng)
    plan = _Plan({s: _profile(suspect[s]) for s in mapping}, mapping)
    plan.keys = ([m for m in keys if m in mapping.values()] if keys is not None
                 else _exact_keys(plan, table))
    plan.numeric = [m for m in mapping.values()
                    if m not in plan.keys and table.specs[m].kind in ("number", "date")]
    _default_scales(plan, table)
    plan.sigma.update({m: v for m, v in (scales or {}).items() if m in plan.sigma and v > 0})
    plan.bias.update({m: v for m, v in (offsets or {}).items() if m in plan.bias})
    if not plan.ready or suspect.height == 0:
        return np.full(suspect.height, -1, dtype=np.int64)
    found = _match(plan, table, rng, mutual)
    return np.where(found >= 0, table.eids[np.maximum(found, 0)], -1).astype(np.int64)


def comparable_values(frame: pl.DataFrame, specs: Mapping[str, ColumnSpec]
                      ) -> dict[str, FloatArray]:
    """``frame``'s code, number and date columns (dates as days) as linkage compares them:
    the master side of :class:`Linked`'s ``values`` (``frame`` holds ``eid``)."""
    return _Master.of(frame, specs, np.random.default_rng(0)).values


# -- the columns of either side ------------------------------------------------------------


@dataclass
class _Column:
    """A suspect column as numbers (codes, measures, dates as days) or as text."""

    name: str
    kind: Literal["number", "date", "text"]
    values: FloatArray  # NaN where missing (all NaN for text)
    source: pl.Series  # what ``text`` is made of (strings for text), null where missing
    grid: float  # the coarsest power of ten the values sit on (0 = none; dates: 1 day, or
    # the calendar period they were truncated to)

    @cached_property
    def text(self) -> pl.Series:
        """Canonical strings, null where missing: made when first compared as text (500,000
        numbers as strings cost more than the rest of a column's profile)."""
        return _canonical(self.source)

    def text_at(self, rows: IntArray) -> pl.Series:
        """``text`` of some rows only (the canonical form is made value by value)."""
        return _canonical(self.source.gather(rows))

    @property
    def missing(self) -> float:  # the canonical form is null exactly where its source is
        return float(self.source.null_count() / max(self.source.len(), 1))


def _profile(series: pl.Series) -> _Column:
    """Parse one suspect column: numbers (even as strings), dates, or text."""
    if series.dtype in (pl.Date, pl.Datetime):
        days = _days(series)
        return _Column(series.name, "date", days, series, _date_grid(days))
    if series.dtype == pl.Boolean:
        series = series.cast(pl.Float64)
    if series.dtype.is_numeric():
        values = _floats(_no_nan(series.cast(pl.Float64)))
        return _Column(series.name, "number", values, series, apparent_grid(values))
    raw = series.cast(pl.String).str.strip_chars()
    strings = pl.select(
        pl.when(raw == "").then(None).otherwise(raw).alias(series.name)
    ).to_series()
    present = strings.len() - strings.null_count()
    numbers = strings.cast(pl.Float64, strict=False)
    if present and numbers.len() - numbers.null_count() >= 0.98 * present:
        values = _floats(_no_nan(numbers))
        return _Column(series.name, "number", values, numbers, apparent_grid(values))
    dates = strings.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    if present and dates.len() - dates.null_count() >= 0.98 * present:
        days = _days(dates)
        return _Column(series.name, "date", days, dates, _date_grid(days))
    nan = np.full(strings.len(), np.nan)
    return _Column(series.name, "text", nan, strings, 0.0)


def _no_nan(series: pl.Series) -> pl.Series:
    """``series.fill_nan(None)``: the series itself when it holds no NaN (as it then is:
    no second column made of half a million values)."""
    return series.fill_nan(None) if bool(series.is_nan().any()) else series


def _floats(series: pl.Series) -> FloatArray:
    """A Float64 series as a float64 array, NaN where missing: the array NumPy is handed
    (a column with missing values: one of its own; without: a read-only view of the
    series, which nothing writes to — no copy of half a million values, no fresh pages)."""
    out: FloatArray = np.require(series.to_numpy(), dtype=np.float64, requirements=["C"])
    return out


def _date_grid(days: FloatArray) -> float:
    """1 day, or the length of the calendar period the dates were truncated to."""
    calendar = infer_calendar(days)
    return calendar.days if calendar is not None else 1.0


def _days(series: pl.Series) -> FloatArray:
    days = series.cast(pl.Date).cast(pl.Int32).cast(pl.Float64).to_numpy()
    return np.asarray(days, dtype=np.float64)


def _canonical(series: pl.Series) -> pl.Series:
    """Strings that compare equal across types: 4060, 4060.0 and "4060" all read "4060"."""
    if series.dtype.is_float():
        whole = series.round(0) == series
        as_int = series.cast(pl.Int64, strict=False).cast(pl.String)
        return pl.select(
            pl.when(whole).then(as_int).otherwise(series.cast(pl.String)).alias(series.name)
        ).to_series()
    return series.cast(pl.String)


def apparent_grid(values: FloatArray) -> float:
    """The coarsest power of ten (10⁶ … 10⁻⁶) that most present values are multiples of."""
    present = values[~np.isnan(values) & (values != 0)]  # zero sits on every grid
    if present.size == 0:
        return 0.0
    if present.size > 20_000:
        present = present[:: present.size // 20_000]
    for exponent in range(6, -7, -1):
        step = 10.0**exponent
        units = present / step
        on_grid = np.abs(units - np.rint(units)) <= 1e-6 + np.abs(units) * 1e-12
        if np.mean(on_grid & (np.rint(units) != 0)) >= _GRID_SHARE:
            return step
    return 0.0


@dataclass
class _Master:
    """Master columns as arrays, with a sample for distribution statistics."""

    eids: IntArray
    specs: dict[str, ColumnSpec]
    values: dict[str, FloatArray]  # codes, numbers and dates (as days)
    text: dict[str, pl.Series]
    sample: IntArray  # row indices for distribution statistics
    sd: dict[str, float]

    @classmethod
    def of(
        cls, frame: pl.DataFrame, specs: Mapping[str, ColumnSpec], rng: np.random.Generator
    ) -> _Master:
        if frame.height == 0:
            raise Invalid("the master table is empty; there is nothing to link to")
        eids = frame[EID].cast(pl.Int64).to_numpy().astype(np.int64)
        values: dict[str, FloatArray] = {}
        text: dict[str, pl.Series] = {}
        for name, spec in specs.items():
            if name not in frame.columns:
                continue
            col = frame[name]
            if spec.kind == "text":
                text[name] = _canonical(col) if col.dtype.is_numeric() else col.cast(pl.String)
            elif spec.kind == "date" or col.dtype in (pl.Date, pl.Datetime):
                values[name] = _days(col)
            else:
                values[name] = _floats(_no_nan(col.cast(pl.Float64)))
        n = frame.height
        sample = np.sort(rng.choice(n, size=min(n, STATS_ROWS), replace=False)).astype(np.int64)
        sd = {name: _sd(v[sample]) for name, v in values.items()}
        kept = {name: specs[name] for name in [*values, *text]}
        return cls(eids, kept, values, text, sample, sd)

    @property
    def names(self) -> list[str]:
        return list(self.specs)


def _sd(values: FloatArray) -> float:
    present = values[~np.isnan(values)]
    return float(np.std(present)) if present.size > 1 else 0.0


# -- matching columns by their distributions ---------------------------------------------


@dataclass
class _Summary:
    """A column's distribution: a sample of present values, their quantiles and code table."""

    values: FloatArray  # present values (a sample)
    missing: float
    quantiles: FloatArray
    codes: FloatArray | None  # distinct values, when all are whole numbers and few
    shares: FloatArray | None


def _summary(values: FloatArray, missing: float) -> _Summary:
    nan = np.isnan(values)
    # every value present and more than the sample: the sample taken from the values
    # themselves, not from a copy of them all (the same positions)
    present = values if values.size > STATS_ROWS and not nan.any() else values[~nan]
    if present.size > STATS_ROWS:
        present = present[np.linspace(0, present.size - 1, STATS_ROWS).astype(np.int64)]
    quantiles = np.quantile(present, _LEVELS) if present.size else np.zeros(0)
    codes = shares = None
    if present.size and np.all(present == np.rint(present)):
        codes, _, counts = arrays.unique(present, return_counts=True)
        if codes.size <= 5_000:
            shares = counts / present.size
        else:
            codes = None
    return _Summary(present, missing, quantiles, codes, shares)


def _costs(columns: list[_Column], master: _Master) -> FloatArray:
    """Distribution distance of every suspect column to every master column (inf: cannot)."""
    costs = np.full((len(columns), len(master.names)), np.inf)
    summaries = {name: _summary(master.values[name][master.sample],
                                float(np.mean(np.isnan(master.values[name][master.sample]))))
                 for name in master.values}
    cache: dict[tuple[str, float], FloatArray] = {}
    # a suspect column's canonical strings are compared only with text master columns: none,
    # none made (20,000 strings per column)
    texts = any(master.specs[name].kind == "text" for name in master.names)
    for i, col in enumerate(columns):
        mine = _summary(col.values, col.missing)
        text = (col.text if col.source.len() <= STATS_ROWS else col.text_at(
            np.linspace(0, col.source.len() - 1, STATS_ROWS).astype(np.int64))) if texts else None
        for j, name in enumerate(master.names):
            if master.specs[name].kind == "text":
                assert text is not None  # made above whenever a master column is text
                costs[i, j] = _text_cost(text, master.text[name].gather(master.sample))
            elif mine.values.size:
                costs[i, j] = _cost(col, mine, master.specs[name], summaries[name],
                                    master.sd[name], cache)
    return costs


def _cost(
    col: _Column,
    mine: _Summary,
    spec: ColumnSpec,
    ref: _Summary,
    sd: float,
    cache: dict[tuple[str, float], FloatArray],
) -> float:
    missing = abs(mine.missing - ref.missing)
    if spec.kind == "code":
        if col.kind != "number" or mine.codes is None or ref.codes is None:
            return math.inf
        return _code_cost(mine, ref) + missing
    if (spec.kind == "date") != (col.kind == "date") or col.kind == "text":
        return math.inf
    if sd <= 0 or col.grid >= sd or ref.values.size == 0:  # constant, or rounded past use
        return math.inf
    grid = col.grid if col.grid > spec.unit * 1.5 else 0.0
    key = (spec.name, grid)
    if key not in cache:
        cache[key] = (np.quantile(np.rint(ref.values / grid) * grid, _LEVELS)
                      if grid else ref.quantiles)
    finer = 0.0 < col.grid < spec.unit / 1.5  # more decimals than the master records
    return float(np.mean(np.abs(mine.quantiles - cache[key])) / sd) + missing + finer


def _code_cost(mine: _Summary, ref: _Summary) -> float:
    """Total variation distance between two code frequency tables."""
    assert mine.codes is not None and mine.shares is not None
    assert ref.codes is not None and ref.shares is not None
    codes = sets.union(mine.codes, ref.codes)
    ps = np.zeros(codes.size)
    pm = np.zeros(codes.size)
    ps[np.searchsorted(codes, mine.codes)] = mine.shares
    pm[np.searchsorted(codes, ref.codes)] = ref.shares
    return float(0.5 * np.abs(ps - pm).sum())


def _text_cost(s: pl.Series, m: pl.Series) -> float:
    s, m = s.drop_nulls(), m.drop_nulls()
    if s.len() == 0 or m.len() == 0:
        return math.inf
    fs = s.rename("v").value_counts(normalize=True, name="ps")
    fm = m.rename("v").value_counts(normalize=True, name="pm")
    both = fs.join(fm, on="v", how="full", coalesce=True).fill_null(0.0)
    return 0.5 * float(np.abs(both["ps"].to_numpy() - both["pm"].to_numpy()).sum())


def _assign(costs: FloatArray, bonus: FloatArray | None = None) -> list[tuple[int, int]]:
    """One-to-one assignment of suspect to master columns; pairs above the cap are dropped."""
    if costs.size == 0:
        return []
    work = np.where(np.isfinite(costs), costs, 1e6)
    if bonus is not None:
        work = work - bonus
    rows, cols = linear_sum_assignment(work)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)
            if costs[i, j] <= MAX_COST]


def _ambiguous(costs: FloatArray, i: int, j: int) -> bool:
    """Whether another master column fits suspect column ``i`` nearly as well as ``j``."""
    others = np.delete(costs[i], j)
    return bool(others.size and others.min() <= costs[i, j] + max(0.02, costs[i, j]))


# -- the plan: columns, blocks and error scales --------------------------------------------


@dataclass
class _Plan:
    suspect: dict[str, _Column]  # suspect columns by name
    mapping: dict[str, str]  # suspect column -> master column
    keys: list[str] = field(default_factory=list)  # master columns used as exact blocks
    numeric: list[str] = field(default_factory=list)  # master columns in the distance
    sigma: dict[str, float] = field(default_factory=dict)
    bias: dict[str, float] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return bool(self.keys or self.numeric)

    def source(self, master_column: str) -> _Column:
        for s, m in self.mapping.items():
            if m == master_column:
                return self.suspect[s]
        raise KeyError(master_column)


def _plan(
    columns: list[_Column], master: _Master, costs: FloatArray, rng: np.random.Generator
) -> _Plan:
    names = master.names
    bonus = np.array([[0.005 * (c.name == n) for n in names] for c in columns]).reshape(
        costs.shape
    )
    pairs = _assign(costs, bonus)
    clear = {columns[i].name: names[j] for i, j in pairs if not _ambiguous(costs, i, j)}
    # a column that kept its master name is believed where too few rows settle the
    # distributions (a short suspect), if its values could be that column's at all and no
    # other column took the name's place
    assigned = {columns[i].name: names[j] for i, j in pairs}
    named = {c.name: c.name for i, c in enumerate(columns)
             if c.name in names and np.isfinite(costs[i, names.index(c.name)])
             and all(m != c.name or s == c.name for s, m in assigned.items())}
    plan = _Plan({c.name: c for c in columns}, {**named, **clear})
    first = _Plan(plan.suspect, clear)
    first.numeric = [m for m in clear.values() if master.specs[m].kind in ("number", "date")]
    if not first.numeric:  # nothing unambiguous: try every assigned numeric column
        first.mapping = {columns[i].name: names[j] for i, j in pairs}
        first.numeric = [
            m for m in first.mapping.values() if master.specs[m].kind in ("number", "date")
        ]
    _default_scales(first, master)
    for m in first.numeric:  # even resolution, so that no one column decides alone
        first.sigma[m] = max(first.sigma[m], master.sd[m] / 1000.0)
    rows, found = _first_pass(first, master, rng)
    rows, found = _clean(first, master, rows, found)
    if rows.size >= MIN_LINKS:
        plan.mapping = _refine(columns, master, costs, rows, found)
        plan.keys = _verified_keys(plan, master, rows, found)
    else:
        plan.keys = _exact_keys(plan, master)
    plan.numeric = [
        m for m in plan.mapping.values()
        if m not in plan.keys and master.specs[m].kind in ("number", "date")
    ]
    _default_scales(plan, master)
    if rows.size >= MIN_LINKS:
        _estimate_scales(plan, master, rows, found)
    return plan


def _default_scales(plan: _Plan, master: _Master) -> None:
    """Error scales before any link: rounding to the suspect's grid plus one mark unit."""
    for m in plan.numeric:
        col = plan.source(m)
        unit = master.specs[m].unit
        plan.sigma[m] = math.sqrt(unit**2 + col.grid**2 / 12.0)
        plan.bias[m] = 0.0


def _clean(plan: _Plan, master: _Master, rows: IntArray, found: IntArray
           ) -> tuple[IntArray, IntArray]:
    """Drop first-pass links whose residuals are far outside the bulk of the others'.

    Residual scales here are robust (median absolute deviation), so a minority of chance
    links — common when the master is small — cannot widen them and slip through.
    """
    if rows.size < MIN_LINKS:
        return rows, found
    total = np.zeros(rows.size)
    count = np.zeros(rows.size)
    for m in plan.numeric:
        col = plan.source(m)
        r = col.values[rows] - master.values[m][found]
        present = ~np.isnan(r)
        if present.sum() < MIN_LINKS:
            continue
        center = float(np.median(r[present]))
        floor = max(master.specs[m].unit / 2, col.grid / math.sqrt(12.0))
        scale = max(1.4826 * float(np.median(np.abs(r[present] - center))), floor)
        total += np.where(present, ((r - center) / scale) ** 2, 0.0)
        count += present
    keep = total <= 9.0 * np.maximum(count, 1)  # root-mean-square z within 3
    return rows[keep], found[keep]


def _estimate_scales(plan: _Plan, master: _Master, rows: IntArray, found: IntArray) -> None:
    """Each numeric column's offset and error scale, from confident first-pass links."""
    for m in plan.numeric:
        col = plan.source(m)
        r = col.values[rows] - master.values[m][found]
        r = r[~np.isnan(r)]
        if r.size < MIN_LINKS:
            continue
        low, high = np.quantile(r, [0.1, 0.9])
        bias = float(np.mean(r[(r >= low) & (r <= high)]))  # marks ±1 unit cancel out
        dev = np.abs(r - bias)
        dev = dev[dev <= np.quantile(dev, 0.99)]  # drop the odd wrong first-pass link
        floor = max(master.specs[m].unit / 2, col.grid / math.sqrt(12.0))
        plan.bias[m] = bias
        plan.sigma[m] = max(1.1 * float(np.sqrt(np.mean(dev**2))), floor)


def _first_pass(
    plan: _Plan, master: _Master, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Confident links for a sample of rows: the nearest row far nearer than the next."""
    empty = np.zeros(0, dtype=np.int64)
    if not plan.numeric:
        return empty, empty
    space = _Space.of(plan, master)
    rows = np.sort(rng.choice(space.n_suspect, size=min(space.n_suspect, FIRST_PASS_ROWS),
                              replace=False)).astype(np.int64)
    xs = space.suspect(rows)
    dims = _tree_dims(plan, master)
    tree = _tree(space.master(dims=dims))
    k = min(2 * CANDIDATES, space.n_master)
    _, idx = _as_2d(*tree.query(xs[:, dims], k=k, workers=-1))
    full = space.d2(xs, idx, missing_penalty=25.0)
    ordered = np.sort(full, axis=1)
    best = ordered[:, 0]
    second = ordered[:, 1] if k > 1 else np.full(best.size, np.inf)
    # far nearer than the next, and within 20 units of each column's (capped) resolution:
    # a nearest row that is merely the least far of a few (a tiny master) does not count
    confident = (second >= 16.0 * best + 1.0) & (best <= 400.0 * space.width)
    choice = np.take_along_axis(idx, np.argmin(full, axis=1)[:, None], axis=1)[:, 0]
    return rows[confident], choice[confident].astype(np.int64)


def _refine(
    columns: list[_Column], master: _Master, costs: FloatArray, rows: IntArray, found: IntArray
) -> dict[str, str]:
    """Re-match columns by row-wise agreement on linked rows (settles twin columns)."""
    names = master.names
    agree = np.full(costs.shape, np.inf)
    perm = _rotation(found.size)
    for i, col in enumerate(columns):
        for j, name in enumerate(names):
            if costs[i, j] <= 2 * MAX_COST:
                agree[i, j] = _agreement(col, name, master, rows, found, perm)
    pairs = _assign(agree)
    return {columns[i].name: names[j] for i, j in pairs}


def _rotation(n: int) -> IntArray:
    """Pairs each linked row with another (a rotation by half): agreement by chance."""
    return (np.arange(n, dtype=np.int64) + n // 2) % max(n, 1)


def _agreement(
    col: _Column, name: str, master: _Master, rows: IntArray, found: IntArray, perm: IntArray
) -> float:
    """How much better than chance suspect and master agree on linked rows (0 = perfectly)."""
    spec = master.specs[name]
    if spec.kind == "text":
        s, m = col.text.gather(rows), master.text[name].gather(found)
        s_nan, m_nan = s.is_null().to_numpy(), m.is_null().to_numpy()
        same = (s == m).fill_null(False).to_numpy()
        chance = (s == m.gather(perm)).fill_null(False).to_numpy()
        return _agreement_cost(~same, ~chance, s_nan, m_nan)
    sv, mv = col.values[rows], master.values[name][found]
    s_nan, m_nan = np.isnan(sv), np.isnan(mv)
    if spec.kind == "code":
        return _agreement_cost(sv != mv, sv != mv[perm], s_nan, m_nan)
    sd = master.sd[name]
    err, base = np.abs(sv - mv) / sd, np.abs(sv - mv[perm]) / sd
    both, chance_both = ~s_nan & ~m_nan, ~s_nan & ~m_nan[perm]
    if not both.any() or not chance_both.any():
        return math.inf
    a, c = float(np.median(err[both])), float(np.median(base[chance_both]))
    nan_mismatch = float(np.mean(s_nan != m_nan))
    return a + nan_mismatch if a <= 0.5 * c and nan_mismatch <= 0.05 else math.inf


def _agreement_cost(
    wrong: BoolArray, wrong_by_chance: BoolArray, s_nan: BoolArray, m_nan: BoolArray
) -> float:
    both = ~s_nan & ~m_nan
    if not both.any():
        return math.inf
    rate, chance = float(np.mean(wrong[both])), float(np.mean(wrong_by_chance[both]))
    nan_mismatch = float(np.mean(s_nan != m_nan))
    return rate + nan_mismatch if rate <= 0.5 * chance and nan_mismatch <= 0.05 else math.inf


def _exact_like(col: _Column, spec: ColumnSpec) -> bool:
    """Whether a suspect column still holds values at the master's own resolution."""
    if col.kind == "text" or spec.kind == "text":
        return True
    if spec.kind in ("code", "date"):
        return True
    return spec.unit / 1.01 <= col.grid <= spec.unit * 1.01


def _verified_keys(plan: _Plan, master: _Master, rows: IntArray, found: IntArray) -> list[str]:
    """Keyable columns that agree exactly on (almost) every confident link."""
    keys = []
    for s, m in plan.mapping.items():
        spec, col = master.specs[m], plan.suspect[s]
        if not spec.keyable or not _exact_like(col, spec):
            continue
        if spec.kind == "text":
            same = (col.text.gather(rows) == master.text[m].gather(found)).fill_null(False)
            both_null = col.text.gather(rows).is_null() & master.text[m].gather(found).is_null()
            agree = (same | both_null).to_numpy()
        else:
            sv, mv = col.values[rows], master.values[m][found]
            agree = (sv == mv) | (np.isnan(sv) & np.isnan(mv))
        if np.mean(agree) >= 0.99:
            keys.append(m)
    return keys


def _exact_keys(plan: _Plan, master: _Master) -> list[str]:
    """Without links: keyable columns whose values all occur in the master, in like shares."""
    keys = []
    for s, m in plan.mapping.items():
        spec, col = master.specs[m], plan.suspect[s]
        if not spec.keyable or not _exact_like(col, spec):
            continue
        if spec.kind == "text":
            inside = col.text.drop_nulls().is_in(master.text[m].drop_nulls().unique())
            share = float(np.mean(inside.to_numpy())) if inside.len() else 0.0
        else:
            present = col.values[~np.isnan(col.values)]
            ref = master.values[m]
            share = float(np.mean(np.isin(present, sets.distinct(ref[~np.isnan(ref)]))))
        if share >= 0.99:
            keys.append(m)
    return keys


# -- the full pass ---------------------------------------------------------------------------


@dataclass
class _Space:
    """The plan's numeric columns in error-scaled units; missing values at a far sentinel.

    Master columns are scaled only where needed (tree axes, candidates), never all at once.
    """

    suspect_values: list[FloatArray]
    master_values: list[FloatArray]
    bias: list[float]
    sigma: list[float]
    n_suspect: int
    n_master: int
    table: FloatArray | None = None  # every master row scaled (``_table``)

    @classmethod
    def of(cls, plan: _Plan, master: _Master) -> _Space:
        n_s = next(iter(plan.suspect.values())).values.size
        return cls(
            [plan.source(m).values for m in plan.numeric],
            [master.values[m] for m in plan.numeric],
            [plan.bias[m] for m in plan.numeric],
            [plan.sigma[m] for m in plan.numeric],
            n_s,
            master.eids.size,
        )

    @property
    def width(self) -> int:
        return len(self.sigma)

    def suspect(self, rows: IntArray | None = None) -> FloatArray:
        out = np.empty((self.n_suspect if rows is None else rows.size, self.width))
        for j, values in enumerate(self.suspect_values):
            v = values if rows is None else values[rows]
            out[:, j] = _scaled(v, self.bias[j], self.sigma[j])
        return out

    def master(self, rows: IntArray | None = None, dims: list[int] | None = None) -> FloatArray:
        dims = list(range(self.width)) if dims is None else dims
        out = np.empty((self.n_master if rows is None else rows.size, len(dims)))
        for i, j in enumerate(dims):
            v = self.master_values[j] if rows is None else self.master_values[j][rows]
            out[:, i] = _scaled(v, 0.0, self.sigma[j])
        return out

    def d2(self, xs: FloatArray, idx: IntArray, missing_penalty: float | None = None) -> FloatArray:
        """Squared distance on all numeric columns to each candidate (inf where none).

        A value missing on one side only is as far as the sentinel puts it (never a match),
        or costs ``missing_penalty`` when given (first pass: one odd gap must not decide).
        """
        valid = idx < self.n_master
        safe = np.where(valid, idx, 0)
        d2 = np.zeros(idx.shape)
        if idx.size >= self.n_master and self.width:  # as many candidates as master rows:
            # scale the master once, as rows, and take each candidate's row whole (one read
            # of its columns instead of one per column); the same terms, summed in order
            table = self._table()
            for start in range(0, len(idx), _D2_ROWS):
                rows = slice(start, start + _D2_ROWS)
                found = table[safe[rows]]  # rows × candidates × columns
                self._sum(xs[rows], found, d2[rows], missing_penalty)
            return np.where(valid, d2, np.inf)
        for j in range(self.width):
            s = xs[:, j, None]
            m = _scaled(self.master_values[j][safe], 0.0, self.sigma[j])
            diff = s - m
            term = diff * diff
            if missing_penalty is not None:
                term = np.where((s == _SENTINEL) != (m == _SENTINEL), missing_penalty, term)
            d2 += term
        return np.where(valid, d2, np.inf)


    def _table(self) -> FloatArray:
        """Every master row's scaled values, a row per participant (made once)."""
        if self.table is None:
            self.table = np.empty((self.n_master, self.width))
            for j in range(self.width):
                self.table[:, j] = _scaled(self.master_values[j], 0.0, self.sigma[j])
        return self.table

    def _sum(self, xs: FloatArray, found: FloatArray, d2: FloatArray,
             missing_penalty: float | None) -> None:
        """Add each column's squared difference to ``d2`` in column order (:meth:`d2`); the
        differences of every column at once, in ``found`` itself (a copy the caller
        gathered), then added column by column as before: the same sums.
        """
        gap = None
        if missing_penalty is not None:
            gap = (found == _SENTINEL) != (xs[:, None, :] == _SENTINEL)
        np.subtract(found, xs[:, None, :], out=found)
        np.multiply(found, found, out=found)
        if gap is not None and missing_penalty is not None:
            np.copyto(found, missing_penalty, where=gap)
        for j in range(self.width):
            d2 += found[:, :, j]


def _scaled(values: FloatArray, bias: float, sigma: float) -> FloatArray:
    """``(values − bias) / sigma``, the sentinel where that is NaN (in one new array)."""
    x: FloatArray = np.subtract(values, bias, dtype=np.float64)
    np.divide(x, sigma, out=x)
    np.copyto(x, _SENTINEL, where=np.isnan(x))
    return x


def _tree(points: FloatArray) -> cKDTree:
    # sliding-midpoint trees build fast and answer small-radius queries fast on this data
    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def _tree_dims(plan: _Plan, master: _Master) -> list[int]:
    """The numeric columns that separate people best (spread per error scale, if present)."""
    power = []
    for m in plan.numeric:
        present = 1.0 - float(np.mean(np.isnan(master.values[m][master.sample])))
        power.append(present * math.log1p(master.sd[m] / plan.sigma[m]))
    return [int(j) for j in np.argsort(power)[::-1][:TREE_DIMS]]


def _space_order(blocks: FloatArray, points: FloatArray, cell: float) -> IntArray:
    """The queries in an order that walks the tree's space: by block, then by cells of the
    given columns (``cell`` wide; missing values' sentinel in the first). A k-d tree answers
    neighbouring queries from the nodes it has just read, several times faster than queries
    in the file's (shuffled) order; each query's answer is its own in any order."""
    key = blocks.astype(np.int64) << 40
    for shift, j in zip((20, 0), range(points.shape[1]), strict=False):
        cells = np.clip(np.floor(points[:, j] / cell), -(2**19), 2**19 - 1)
        key |= (cells.astype(np.int64) + 2**19) << shift
    return np.argsort(key)


def _as_2d(reduced: FloatArray, idx: IntArray) -> tuple[FloatArray, IntArray]:
    if reduced.ndim == 1:
        return reduced[:, None], idx[:, None]
    return reduced, idx


def _thresholds(xs: FloatArray) -> FloatArray:
    """The acceptance region per row: chi-square on the row's present numeric values."""
    present = np.count_nonzero(xs != _SENTINEL, axis=1)
    table = np.zeros(xs.shape[1] + 1)
    if xs.shape[1]:
        table[1:] = chdtri(np.arange(1, xs.shape[1] + 1), TAIL)
    return np.asarray(table[present], dtype=np.float64)


@dataclass
class _Search:
    """A k-d tree over master rows: blocks on one axis, discriminating columns on the rest."""

    tree: cKDTree
    dims: list[int]
    space: _Space
    radius: float

    @classmethod
    def of(cls, space: _Space, dims: list[int], master_blocks: FloatArray) -> _Search:
        limit_max = float(chdtri(space.width, TAIL)) if space.width else 0.0
        radius = math.sqrt(limit_max + MARGIN + 1.0)
        points = np.column_stack([master_blocks * _BLOCK, space.master(dims=dims)])
        return cls(_tree(points), dims, space, radius)

    def nearest(
        self, blocks: FloatArray, points: FloatArray, k: int
    ) -> tuple[FloatArray, FloatArray, IntArray]:
        """The ``k`` best candidates' full d², their indices, and a bound for all others."""
        query = np.column_stack([blocks * _BLOCK, points[:, self.dims]])
        k = min(k, self.space.n_master)
        order = _space_order(blocks, points[:, self.dims[:2]], self.radius)
        near, at = _as_2d(*self.tree.query(query[order], k=k, workers=-1,
                                           distance_upper_bound=self.radius))
        reduced, idx = np.empty_like(near), np.empty(at.shape, dtype=np.int64)
        reduced[order], idx[order] = near, at  # each query's answer back in its row
        bound = np.where(np.isfinite(reduced[:, -1]), reduced[:, -1] ** 2, self.radius**2)
        return self.space.d2(points, idx), bound, idx


def _match(plan: _Plan, master: _Master, rng: np.random.Generator, mutual: bool = False
           ) -> IntArray:
    """Master row index per suspect row (−1: unlinked).

    ``mutual`` also asks each linked master row's nearest suspect rows: the link stands only
    if no other suspect row comes near it (for small masters such as decoys, whose own
    spacing says little about how crowded the suspect is around them).
    """
    space = _Space.of(plan, master)
    bs, bm = _blocks(plan, master)
    search = _Search.of(space, _tree_dims(plan, master) if plan.numeric else [], bm)
    factors = _calibrate(search, bm, rng)
    xs = space.suspect()
    present = np.count_nonzero(xs != _SENTINEL, axis=1)
    found, best = _accept(search, bs, xs, _thresholds(xs) * factors[present])
    if mutual and np.any(found >= 0):
        found = _mutual(search, bs, bm, xs, found, best)
    return found


def _mutual(search: _Search, bs: FloatArray, bm: FloatArray, xs: FloatArray,
            found: IntArray, best: FloatArray) -> IntArray:
    """Drop links whose master row has a second suspect row within reach."""
    at = np.flatnonzero(found >= 0)
    rows = found[at]
    xm = search.space.master(rows)
    points = np.column_stack([bs * _BLOCK, xs[:, search.dims]])
    query = np.column_stack([bm[rows] * _BLOCK, xm[:, search.dims]])
    k = min(CANDIDATES, xs.shape[0])
    reduced, idx = _as_2d(*_tree(points).query(query, k=k, workers=-1,
                                                distance_upper_bound=search.radius))
    idx = idx.astype(np.int64)
    valid = idx < xs.shape[0]
    diff = xm[:, None, :] - xs[np.where(valid, idx, 0)]
    d2 = np.where(valid & (idx != at[:, None]), np.sum(diff * diff, axis=2), np.inf)
    bound = np.where(np.isfinite(reduced[:, -1]), reduced[:, -1] ** 2, search.radius**2)
    other = np.minimum(d2.min(axis=1), bound)
    alone = other >= np.maximum(_thresholds(xm), best[at] + MARGIN)
    out = found.copy()
    out[at[~alone]] = -1
    return out


def _accept(
    search: _Search, blocks: FloatArray, points: FloatArray, limit: FloatArray
) -> tuple[IntArray, FloatArray]:
    """Rows whose best candidate lies within ``limit`` (negative: never) and beats the rest;
    with each row's best d²."""
    d2, bound, idx = search.nearest(blocks, points, CANDIDATES)
    order = np.argsort(d2, axis=1)
    best = np.take_along_axis(d2, order[:, :1], axis=1)[:, 0]
    second = (np.take_along_axis(d2, order[:, 1:2], axis=1)[:, 0]
              if d2.shape[1] > 1 else np.full(best.size, np.inf))
    second = np.minimum(second, bound)
    region = _thresholds(points)
    ok = (best <= limit) & (second >= np.maximum(region, best + MARGIN))
    choice = np.take_along_axis(idx, order[:, :1], axis=1)[:, 0]
    return np.where(ok, choice, -1).astype(np.int64), best


def _calibrate(search: _Search, bm: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Per number of present values, how far to shrink the acceptance region.

    Master rows stand in for foreign people: among those with the same number of present
    values, at most ``ALPHA`` (and none, in small strata) may fall near enough to another
    master row, and far enough from the rest, to be linked to it. A factor of −1 means even
    exact agreement would link such people wrongly: those rows are never linked.
    """
    space = search.space
    n = space.n_master
    rows = np.sort(rng.choice(n, size=min(n, CALIBRATION_ROWS), replace=False)).astype(np.int64)
    xr = space.master(rows)
    d2, bound, idx = search.nearest(bm[rows], xr, CANDIDATES + 1)
    d2 = np.where(idx == rows[:, None], np.inf, d2)  # not itself
    ordered = np.sort(d2, axis=1)
    nearest = np.minimum(ordered[:, 0], bound)
    second = np.minimum(ordered[:, 1], bound) if ordered.shape[1] > 1 else bound
    limit = _thresholds(xr)
    would = second >= np.maximum(limit, nearest + MARGIN)  # unambiguous, if near enough
    ratio = np.where(limit > 0, nearest / np.maximum(limit, 1e-300),
                     np.where(nearest <= 0, 0.0, np.inf))
    present = np.count_nonzero(xr != _SENTINEL, axis=1)
    factors = np.full(space.width + 1, -1.0)  # strata never seen are never linked
    for k in sets.distinct(present):
        stratum = present == k
        factors[k] = _factor(np.sort(ratio[stratum & would]), int(ALPHA * stratum.sum()))
    return factors


def _factor(ratios: FloatArray, allowed: int) -> float:
    if ratios.size <= allowed or ratios[allowed] >= 1.0:
        return 1.0
    if ratios[allowed] <= 0.0:
        return -1.0
    return float(np.nextafter(ratios[allowed], 0.0))


def _blocks(plan: _Plan, master: _Master) -> tuple[FloatArray, FloatArray]:
    """Dense block numbers shared by suspect and master rows (0 for all when no keys)."""
    n_s = next(iter(plan.suspect.values())).values.size
    n_m = master.eids.size
    if not plan.keys:
        return np.zeros(n_s), np.zeros(n_m)
    s_cols, m_cols = [], []
    for i, m in enumerate(plan.keys):
        col = plan.source(m)
        if master.specs[m].kind == "text":
            s_cols.append(col.text.alias(f"k{i}"))
            m_cols.append(master.text[m].alias(f"k{i}"))
        else:
            s_cols.append(_no_nan(pl.Series(f"k{i}", col.values)))
            m_cols.append(_no_nan(pl.Series(f"k{i}", master.values[m])))
    hashes = pl.concat([pl.DataFrame(s_cols), pl.DataFrame(m_cols)]).select(
        pl.struct(pl.all()).hash(seed=0)
    ).to_series().to_numpy()
    dense = arrays.unique(hashes, return_inverse=True)[1].astype(np.float64)
    return dense[:n_s], dense[n_s:]


# -- surviving ID columns ----------------------------------------------------------------------


def _id_column(profiles: Mapping[str, _Column], id_maps: Mapping[str, pl.DataFrame]) -> str | None:
    """The column that looks like seven-digit participant IDs and overlaps a pseudonym map."""
    if not id_maps:
        return None
    best, best_hits = None, 0
    for name, col in profiles.items():
        if col.kind != "number":
            continue
        present = col.values.size - int(np.count_nonzero(np.isnan(col.values)))
        # a column with too few values in the ID range cannot have enough whole ones there
        # (NaN is never in range): most columns are let go before any copy of their values
        if present == 0 or int(np.count_nonzero((col.values >= _ID_LOW)
                                                & (col.values < _ID_HIGH))) / present < 0.95:
            continue
        v = col.values[~np.isnan(col.values)]
        if np.mean((v >= _ID_LOW) & (v < _ID_HIGH) & (v == np.rint(v))) < 0.95:
            continue
        if arrays.unique(v)[0].size < 0.9 * v.size:
            continue
        hits = max(_significant_overlap(v, m) for m in id_maps.values())
        if hits > best_hits:
            best, best_hits = name, hits
    return best


def _significant_overlap(ids: FloatArray, id_map: pl.DataFrame) -> int:
    """IDs found in the map, if far more than a random seven-digit number would hit."""
    pids = id_map["pid"].to_numpy()
    hits = int(np.count_nonzero(np.isin(ids.astype(np.int64), pids)))
    expected = ids.size * pids.size / (_ID_HIGH - _ID_LOW)
    return hits if hits >= expected + 10.0 * math.sqrt(expected) + 10 else 0


def _link_ids(
    col: _Column,
    id_maps: Mapping[str, pl.DataFrame],
    plan: _Plan,
    master: _Master,
    eids: IntArray,
) -> tuple[IntArray, dict[str, int]]:
    """Link rows through a recipient's pseudonyms where values confirm the master row."""
    ids = np.where(np.isnan(col.values), -1, col.values).astype(np.int64)
    row_of = pl.DataFrame({EID: master.eids, "row": np.arange(master.eids.size)})
    out = eids.copy()
    counts: dict[str, int] = {}
    for recipient, id_map in id_maps.items():
        if not _significant_overlap(col.values[~np.isnan(col.values)], id_map):
            continue
        joined = (
            pl.DataFrame({"pid": ids, "at": np.arange(ids.size)})
            .join(id_map.select(pl.col("pid").cast(pl.Int64), pl.col(EID).cast(pl.Int64)),
                  on="pid")
            .join(row_of, on=EID)
        )
        at = joined["at"].to_numpy().astype(np.int64)
        rows = joined["row"].to_numpy().astype(np.int64)
        good = _confirmed(plan, master, at, rows)
        out[at[good]] = master.eids[rows[good]]
        counts[recipient] = int(np.count_nonzero(good))
    return out, {r: c for r, c in counts.items() if c}


def _confirmed(plan: _Plan, master: _Master, at: IntArray, rows: IntArray) -> BoolArray:
    """Whether each (suspect row, master row) pair agrees on blocks and numeric values."""
    ok = np.ones(at.size, dtype=np.bool_)
    if plan.keys:
        bs, bm = _blocks(plan, master)
        ok &= bs[at] == bm[rows]
    if plan.numeric:
        space = _Space.of(plan, master)
        xs = space.suspect(at)
        ok &= space.d2(xs, rows[:, None])[:, 0] <= _thresholds(xs)
    return ok
