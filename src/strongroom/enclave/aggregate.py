"""Aggregate SQL: ``SELECT <keys>, <aggregates> … GROUP BY <keys>`` with exact contributors.

DuckDB is not asked for the aggregates. The checked query is rewritten into a row-level one
(``pid``, the key expressions and the aggregates' arguments, one row per joined row) that runs
in the locked connection, and the aggregation is done here in Polars. The semantics are
therefore Strongroom's own, and every cell knows exactly which participants are behind it.

Only shapes whose contributors are certain are accepted: one table with ``pid`` in FROM, joins
to other tables with ``pid`` on ``pid = pid`` (so every row belongs to one participant), WHERE
conditions on the row's own participant (subqueries only as ``pid IN (SELECT pid …)``), and
each output column a group key or one aggregate of a listed kind. Anything else is refused as
an unknown aggregation. Rows multiplied by a join count in ``count(*)`` (that is what the SQL
says) but never add contributors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sqlglot import exp

from strongroom import sets
from strongroom.enclave import margin, rowlocal, sizes, winsor
from strongroom.enclave.analyses.frame import increasing, nearest_rows
from strongroom.enclave.analyses.tables import MAX_CELLS
from strongroom.enclave.engine import Limits
from strongroom.enclave.engines import WEIGHT, DuckDBEngine, Engine
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.enclave.sizes import Size
from strongroom.enclave.sources import Table
from strongroom.enclave.sqlguard import (
    check_select,
    plain_sql,
    referenced_columns,
    shared,
)
from strongroom.enclave.view import PID, ProjectSchema
from strongroom.errors import Invalid, reading_data

NULL_LABEL = "NULL"  # how a NULL group key is labelled in a cell's row

# sqlglot's class for each aggregate a researcher may use, and the cell kind it produces.
# Semantics are Strongroom's: NULLs are skipped; stddev is the sample SD; median and
# quantile_cont interpolate linearly; mode is the smallest of the most frequent values.
AGGREGATES: dict[type[exp.Expr], CellKind] = {
    exp.Count: CellKind.COUNT,
    exp.Sum: CellKind.SUM,
    exp.Avg: CellKind.MEAN,
    exp.Stddev: CellKind.SD,
    exp.StddevSamp: CellKind.SD,
    exp.Median: CellKind.MEDIAN,
    exp.PercentileCont: CellKind.QUANTILE,
    exp.Min: CellKind.MIN,
    exp.Max: CellKind.MAX,
    exp.Mode: CellKind.MODE,
}
NAMED_AGGREGATES: dict[str, CellKind] = {"mean": CellKind.MEAN}  # DuckDB names sqlglot lacks
_MAGNITUDE = {CellKind.SUM, CellKind.MEAN}
_DISTINCT_VALUES = {CellKind.MEAN, CellKind.SD, CellKind.SUM, CellKind.MODE}
_SIDES = {CellKind.MEDIAN, CellKind.QUANTILE}
_VALUED = _MAGNITUDE | _SIDES | {CellKind.SD}  # cells that carry each participant's values
_CLIPPED = _MAGNITUDE | {CellKind.SD, CellKind.COUNT}  # winsorised (counts: of rows)
# Group keys built by joining several values into one label (kind 1 of the output check):
# refused, since one such label can carry a whole row.
_TEXT_BUILDERS: tuple[type[exp.Expr], ...] = (
    exp.DPipe, exp.Concat, exp.ConcatWs, exp.ArrayToString, exp.Array, exp.ArrayConcat)

SHAPE = ("Write SELECT <group keys>, <aggregates> FROM <table with pid> [JOIN <table with pid> "
         "ON a.pid = b.pid] [WHERE …] GROUP BY <keys>, each aggregate one of count, "
         "sum, avg/mean, stddev, median, quantile_cont, min, max, mode")


# HAVING was tested on the raw figures, before winsorising and rounding: whether a group's
# row came back then said what its released count does not (a group's exact size by
# bisection, or a target's copied rows over a line), so it is refused, not reasoned about.
HAVING = ("HAVING is not part of an aggregate query: its test would see the exact figures, "
          "which the output check winsorises and rounds before anything leaves. Groups "
          "under the project's threshold are already removed; filter the released table for "
          "larger groups, or select the people in WHERE")


def unknown(detail: str) -> Invalid:
    return Invalid(f"an unknown aggregation: {detail}; the query's contributors cannot be "
                   f"established. {SHAPE}")


@dataclass(frozen=True)
class Aggregate:
    """One aggregate output column."""

    name: str
    kind: CellKind
    arg: exp.Expr | None  # None: count(*)
    distinct: bool = False  # count(DISTINCT x)
    q: float | None = None  # QUANTILE: the probability; MEDIAN: 0.5


@dataclass(frozen=True)
class Plan:
    keys: list[tuple[str, exp.Expr]]  # output name, expression, in SELECT order
    aggregates: list[Aggregate]
    order: list[str]  # output columns in SELECT order
    rows: exp.Select  # the row-level query: _pid, _k0…, _a0…
    joined: bool


def aggregate_sql(
    tables: Mapping[str, Table],
    schema: ProjectSchema,
    sql: str,
    limits: Limits,
    spec: dict[str, Any],
    k: int = 0,
    bounds: Mapping[str, Size] | None = None,
    engine: Engine | None = None,
) -> Result:
    """Run an aggregate query; one cell per (group, aggregate) with its exact contributors.

    ``k`` (the project's threshold; 0 for the enclave's own tests, the output service always
    passes it): a group key's value held by fewer than k participants is counted under the
    key's most common value, and every sum, mean, SD and count of rows is of contributions
    winsorised at the k-th smallest and largest of its participants (winsor.py).

    ``bounds``: the size bounds of the tables that are definitions (:mod:`sizes`); a table
    without one is bounded by its own rounded size, right only for the project's tables.
    ``engine``: where the row-level query runs (DuckDB on this machine unless given)."""
    query = check_select(sql, schema)
    plan = plan_of(query, tables)
    _, most = sizes.admit(plan.rows, tables, limits.max_rows, dict(bounds or {}))
    # the row-level query also reads each source's pid, which the researcher's need not name
    used = {table: columns | {PID} for table, columns in referenced_columns(query).items()}
    # weighted: an engine may give identical rows once, with their number (WEIGHT)
    frame = (engine or DuckDBEngine()).select(tables, used, plan.rows, limits, most,
                                              weighted=True)
    with reading_data():  # read from the rows: a refusal may depend on their values
        cells = cells_of(frame, plan, k)
    notes = []
    if k >= 1:  # from the query alone: the notes never say whether anything was moved
        if plan.keys:
            notes.append(winsor.CATEGORY_NOTE)
        if any(a.kind in _CLIPPED and not a.distinct for a in plan.aggregates):
            notes.append(winsor.NOTE)
    if plan.joined:
        notes.append("count(*) counts rows: a participant with several joined rows is counted "
                     "once per row; the output check counts distinct participants")
    return Result(AnalysisKind.AGGREGATE_SQL, dict(spec), cells, notes=notes)


def key_names(sql: str) -> list[str] | None:
    """The output names of an aggregate query's group keys, in SELECT order, from its text
    (None if it is not one): the names of a released table's label columns."""
    try:
        query = shared(sql)  # only read
        if not isinstance(query, exp.Select):
            return None
        keys, _, _ = _outputs(query, _group_keys(query))
    except Invalid:
        return None
    return [name for name, _ in keys]


# -- the plan -------------------------------------------------------------------------------


def plan_of(query: exp.Query, tables: Mapping[str, Table]) -> Plan:
    """Check the query's shape and derive the row-level query from it."""
    if not isinstance(query, exp.Select):
        raise unknown("UNION, INTERSECT and EXCEPT combine groups")
    extra = [k for k, v in query.args.items()
             if v and k not in ("expressions", "from_", "joins", "where", "group")]
    if query.args.get("having"):
        raise Invalid(HAVING)
    if extra:
        raise unknown(f"{', '.join(k.rstrip('_').upper() for k in extra)} is not part of an "
                      "aggregate query (results come sorted by their group keys)")
    if query.find(exp.Window):
        raise unknown("window functions")
    aliases = _sources(query, tables)
    keys_in_group = _group_keys(query)
    keys, aggregates, order = _outputs(query, keys_in_group)
    from_alias = aliases[0]
    rows = exp.Select(expressions=[
        exp.alias_(exp.column(PID, table=from_alias, quoted=True), "_pid", quoted=True),
        *(exp.alias_(expr.copy(), f"_k{i}", quoted=True) for i, (_, expr) in enumerate(keys)),
        *(exp.alias_(a.arg.copy(), f"_a{j}", quoted=True)
          for j, a in enumerate(aggregates) if a.arg is not None),
    ])
    for arg in ("from_", "joins", "where"):
        if query.args.get(arg):
            rows.set(arg, query.args[arg].copy() if arg != "joins"
                     else [j.copy() for j in query.args[arg]])
    # each row the aggregates read is one participant's own (enclave/rowlocal.py)
    refused = rowlocal.reasons(rows, named_pid=False)
    if refused:
        raise Invalid(refused)
    return Plan(keys, aggregates, order, rows, bool(query.args.get("joins")))


def _has_pid(table: exp.Expr, tables: Mapping[str, Table]) -> bool:
    return (isinstance(table, exp.Table) and table.name in tables
            and PID in tables[table.name].columns)


def _sources(query: exp.Select, tables: Mapping[str, Table]) -> list[str]:
    """Aliases of FROM and joined tables; each a table with pid, joined on pid = pid."""
    source = query.args.get("from_")
    if source is None or not _has_pid(source.this, tables):
        raise unknown("FROM must name one project table or definition that has a pid column")
    aliases = [source.this.alias_or_name]
    for join in query.args.get("joins") or []:
        if not _has_pid(join.this, tables):
            raise unknown("every joined table must be a project table or definition with pid")
        side, kind = (join.args.get("side") or "").upper(), (join.args.get("kind") or "").upper()
        if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER", "SEMI", "ANTI"):
            raise unknown(f"{side} {kind} JOIN can produce rows without a participant".strip())
        alias = join.this.alias_or_name
        if not _joins_on_pid(join.args.get("on"), alias, aliases):
            raise unknown(f"the join of {alias} is not on pid = pid, so its rows would mix "
                          "participants")
        aliases.append(alias)
    return aliases


def _joins_on_pid(on: exp.Expr | None, alias: str, earlier: list[str]) -> bool:
    if on is None:
        return False
    terms = [on.unnest()]
    while any(isinstance(t, exp.And) for t in terms):
        terms = [p.unnest() for t in terms
                 for p in ((t.left, t.right) if isinstance(t, exp.And) else (t,))]
    for term in terms:
        if (isinstance(term, exp.EQ) and isinstance(term.left, exp.Column)
                and isinstance(term.right, exp.Column)
                and term.left.name == PID and term.right.name == PID):
            sides = {term.left.table, term.right.table}
            if alias in sides and sides - {alias} <= set(earlier) and len(sides) == 2:
                return True
    return False


def _group_keys(query: exp.Select) -> list[exp.Expr]:
    group = query.args.get("group")
    if group is None:
        return []
    extra = [k for k, v in group.args.items() if v and k != "expressions"]
    if extra:
        raise unknown(f"GROUP BY {', '.join(k.upper() for k in extra)}: list the keys instead")
    for key in group.expressions:
        if _is_aggregate_anywhere(key) or key.find(exp.Select, exp.Window):
            raise unknown("a group key holding an aggregate, window function or subquery")
        built = next((b for b in key.find_all(*_TEXT_BUILDERS)
                      if len({(c.table, c.name) for c in b.find_all(exp.Column)}) > 1), None)
        if built is not None:
            raise Invalid(f"the group key {plain_sql(key)} builds text from several values "
                          f"({plain_sql(built)}): labels are released, so each key must be "
                          "one field, band or category; group by the fields separately")
    return list(group.expressions)


def _outputs(
    query: exp.Select, group: list[exp.Expr]
) -> tuple[list[tuple[str, exp.Expr]], list[Aggregate], list[str]]:
    keys: list[tuple[str, exp.Expr]] = []
    aggregates: list[Aggregate] = []
    order: list[str] = []
    for projection in query.expressions:
        name, inner = projection.alias_or_name, projection.unalias().unnest()
        if name in order:
            raise Invalid(f"two output columns are named {name!r}; give each its own name")
        order.append(name)
        if _is_aggregate_anywhere(inner):
            aggregates.append(_aggregate(name, inner))
        elif any(inner == key for key in group):
            keys.append((name, inner))
        else:
            raise unknown(f"the output column {name!r} is neither a group key nor an aggregate")
    for key in group:
        if not any(key == expr for _, expr in keys):
            raise unknown(f"the group key {plain_sql(key)} is not an output column, so its "
                          "rows could not be labelled")
    if not aggregates:
        raise unknown("no aggregate in the SELECT list")
    return keys, aggregates, order


def _is_aggregate(node: exp.Expr) -> bool:
    return isinstance(node, exp.AggFunc) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in NAMED_AGGREGATES)


def _is_aggregate_anywhere(node: exp.Expr) -> bool:
    return any(_is_aggregate(n) for n in node.walk())


def _aggregate(name: str, node: exp.Expr) -> Aggregate:
    """One listed aggregate of a plain argument; anything else is an unknown aggregation."""
    if not _is_aggregate(node):
        raise unknown(f"{name!r} computes with an aggregate's result (an aggregate inside "
                      "other arithmetic)")
    if isinstance(node, exp.Anonymous):
        kind = NAMED_AGGREGATES[node.name.lower()]
        if len(node.expressions) != 1:
            raise unknown(f"{node.name}() takes one argument")
        return _plain(name, kind, node.expressions[0])
    kind_of = AGGREGATES.get(type(node))
    if kind_of is None or not isinstance(node, exp.Func):
        raise unknown(f"{node.key}() is not a listed aggregate")
    extra = [k for k, v in node.args.items()
             if v and k not in ("this", "expression", "big_int")]
    if extra or (node.args.get("expression") is not None
                 and not isinstance(node, exp.PercentileCont)):
        raise unknown(f"{name!r} gives {node.sql_name().lower()}() extra arguments")
    arg = node.this
    if isinstance(node, exp.Count):
        if isinstance(arg, exp.Star):
            return Aggregate(name, CellKind.COUNT, None)
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1 or arg.args.get("on"):
                raise unknown("count(DISTINCT …) of more than one expression")
            counted = arg.expressions[0]
            if not (isinstance(counted, exp.Column) and counted.name == PID):
                # a count of distinct values moves by one when one person's value is unlike
                # the others': count(DISTINCT CASE WHEN <them> … THEN 1 ELSE 0 END) is 1 or 2
                raise Invalid(f"{name!r} counts distinct values of "
                              f"{plain_sql(counted)}; only participants may be counted "
                              "distinctly (count(DISTINCT pid)); count rows or people instead")
            return _plain(name, CellKind.COUNT, counted, distinct=True)
    q = 0.5 if kind_of == CellKind.MEDIAN else None
    if isinstance(node, exp.PercentileCont):
        q = _probability(node.args.get("expression"))
    return _plain(name, kind_of, arg, q=q)


def _plain(
    name: str, kind: CellKind, arg: exp.Expr | None, distinct: bool = False,
    q: float | None = None,
) -> Aggregate:
    if arg is None or isinstance(arg, exp.Distinct | exp.Star):
        raise unknown(f"{name!r}: DISTINCT or * is allowed only in count")
    if _is_aggregate_anywhere(arg):
        raise unknown(f"{name!r} nests one aggregate in another")
    if arg.find(exp.Select, exp.Window):
        raise unknown(f"{name!r} aggregates a subquery or window function")
    if kind != CellKind.COUNT and isinstance(arg, exp.Column) and arg.name == PID:
        raise Invalid(f"{name!r} takes {kind.value} of pid: pseudonyms are not values; only "
                      "count(DISTINCT pid) may use pid")
    return Aggregate(name, kind, arg, distinct, q)


def _probability(node: exp.Expr | None) -> float:
    if isinstance(node, exp.Literal) and node.is_number:
        q = float(node.this)
        if 0.0 <= q <= 1.0:
            return q
    raise unknown("quantile_cont needs one probability between 0 and 1, e.g. 0.25")


# -- the cells ------------------------------------------------------------------------------
#
# Each group's rows are gathered once, with the pid of each row behind each aggregate (in row
# order), its value and what its rules need. Rows arrive sorted by pid (the view and
# definitions are stored so, and DuckDB keeps the order of a plain scan; otherwise they are
# sorted here once), so each group's pids are sorted and their duplicates are neighbours:
# contributors, per-pid magnitudes and the participants either side of a quantile then take
# one vectorised pass, with no sort by group. Counts grouped by whole-number keys (codes,
# years, flags) are gathered by NumPy from the keys' codes; anything else by a Polars group-by.

_MAX_KEY_CODES = 1 << 16  # combinations of whole-number keys counted directly (a radix sort)
_CODED = {pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.Boolean}


@dataclass(frozen=True)
class _Gathered:
    """One aggregate over every group: group ``g``'s rows are ``pids[offsets[g]:offsets[g+1]]``
    (and ``x``, the argument's values, alike)."""

    pids: np.ndarray
    offsets: np.ndarray
    values: list[Any]
    x: np.ndarray | None = None
    distinct: list[Any] | None = None
    weights: np.ndarray | None = None  # the rows each of ``pids`` stands for (None: one)


def cells_of(frame: pl.DataFrame, plan: Plan, k: int = 0) -> list[Cell]:
    """One cell per (group, aggregate), groups sorted by their keys; rare key values merged
    and contributions winsorised at ``k`` (0: as they are). A ``WEIGHT`` column (an
    engine's identical rows given once, :data:`WEIGHT`): each row stands for that many."""
    keys = [f"_k{i}" for i in range(len(plan.keys))]
    frame = _by_pid(frame)
    weights = None
    if WEIGHT in frame.columns:
        counted = frame[WEIGHT].cast(pl.Int64).to_numpy()
        frame = frame.drop(WEIGHT)
        weights = counted if counted.size and int(counted.max()) > 1 else None
    once = weights is None and increasing(frame["_pid"].to_numpy())  # one row each
    frame = _merged_keys(frame, keys, k, once)
    columns = iter(f"_a{j}" for j, a in enumerate(plan.aggregates) if a.arg is not None)
    inputs = [(a, next(columns) if a.arg is not None else None) for a in plan.aggregates]
    found = _counted(frame, keys, inputs, weights)
    if found is None:
        if weights is not None:  # the rows as the query gave them (in pid order still)
            frame = frame[np.repeat(np.arange(frame.height), weights)]
        found = _grouped(frame, keys, inputs)
    labels, gathered = found
    if len(labels) * len(inputs) > MAX_CELLS:  # the same limit as any table of the enclave
        # the number of groups is not named: it would count the data's distinct values
        raise Invalid(f"the query gives more than the {MAX_CELLS:,} cells an output may have "
                      "(groups × aggregates); group on coarser keys (bands, categories) so "
                      "that each row is a real group")
    by_aggregate = [_cells(g, a, labels, k, once)
                    for g, (a, _) in zip(gathered, inputs, strict=True)]
    return [cells[g] for g in range(len(labels)) for cells in by_aggregate]


def _merged_keys(frame: pl.DataFrame, keys: list[str], k: int, once: bool) -> pl.DataFrame:
    """Each key's values held by fewer than ``k`` distinct participants (NULL included)
    replaced by the key's value held by most (the smallest on a tie), key by key, so that a
    rare value neither shows as a row nor leaves a gap in the others' counts; only when that
    value is held by ``k`` itself (a label that leaves is held by k). ``once``: each
    participant has one row."""
    if k < 1 or not keys or frame.height == 0:
        return frame
    merged = []
    for key in keys:
        rows = frame.select(key, "_pid") if once else frame.select(key, "_pid").unique()
        held = _held(rows, key)
        # nothing to move; or the most common value is rare too, and its label must not
        # leave (the safe labels leave the rows out instead)
        if int(held["len"].min()) >= margin.highest(k) or int(held["len"][0]) < k:  # type: ignore[arg-type]
            continue
        common = held[key][0]
        # below k always; from k to 2k − 1 by the threshold's own draw for its holders
        # (margin.THRESHOLD): a value kept then passes the threshold of its own count
        near = held.filter(pl.col("len") < margin.highest(k))
        holders = _holders(rows, key, near[key])
        rare = near.filter(pl.Series([margin.short(n, k, *margin.THRESHOLD,
                                                   members=holders[value])
                                      for value, n in near.iter_rows()], dtype=pl.Boolean))[key]
        if rare.len() == 0:
            continue
        is_rare = pl.col(key).is_in(rare.drop_nulls().implode())
        if rare.null_count():
            is_rare = is_rare | pl.col(key).is_null()
        merged.append(pl.when(is_rare).then(pl.lit(common, dtype=frame.schema[key]))
                      .otherwise(pl.col(key)).alias(key))
    return frame.with_columns(merged) if merged else frame


def _held(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    """Each value of ``key`` (NULL included) and its rows (``len``), most held first, then by
    value, NULL last; whole-number keys counted with one ``bincount`` (a group-by's cost
    is most of a grouped count's at 500,000 rows)."""
    series = rows[key]
    whole = series.cast(pl.Int64) if series.dtype in _CODED else None
    low, high = (whole.min(), whole.max()) if whole is not None else (None, None)
    if whole is None or low is None or int(high) - int(low) >= _MAX_KEY_CODES:  # type: ignore[arg-type]
        return rows.group_by(key).len().sort(["len", key], descending=[True, False],
                                             nulls_last=True)
    low, high = int(low), int(high)  # type: ignore[arg-type]
    null = high - low + 1  # NULL's code: after every value, as it sorts
    code = whole.fill_null(high + 1).to_numpy() - low
    counts = np.bincount(code, minlength=null + 1)
    present = np.flatnonzero(counts)
    order = present[np.lexsort((present, -counts[present]))]
    values = pl.Series(key, order + low, dtype=pl.Int64)
    if counts[null]:
        values = values.scatter(np.flatnonzero(order == null), None)
    return pl.DataFrame([values.cast(series.dtype),
                         pl.Series("len", counts[order], dtype=pl.UInt32)])


def _holders(rows: pl.DataFrame, key: str, values: pl.Series) -> dict[Any, np.ndarray]:
    """The distinct participants holding each of ``values`` (NULL included) of ``key``."""
    wanted = pl.col(key).is_in(values.drop_nulls().implode())
    if values.null_count():
        wanted = wanted | pl.col(key).is_null()
    return {value: np.asarray(pids, dtype=np.int64) for value, pids in
            rows.filter(wanted).group_by(key).agg(pl.col("_pid").unique()).iter_rows()}


def _grouped(
    frame: pl.DataFrame, keys: list[str], inputs: list[tuple[Aggregate, str | None]],
) -> tuple[list[tuple[str, ...]], list[_Gathered]]:
    """Any aggregates by any keys: one Polars group-by gathers each group's lists."""
    frame = frame.with_columns(_numeric(frame, c, a) for a, c in inputs if c is not None)
    exprs = [e for j, (a, c) in enumerate(inputs) for e in _exprs(j, a, c)]
    if keys:
        groups = frame.group_by(keys).agg(exprs).sort(keys, nulls_last=True)
    else:
        groups = frame.select(exprs)
    gathered = []
    for j, (aggregate, _) in enumerate(inputs):
        pids, offsets = _flat(groups, f"_p{j}")
        x = (_flat(groups, f"_x{j}")[0].astype(np.float64, copy=False)
             if aggregate.kind in _VALUED else None)
        distinct = groups[f"_d{j}"].to_list() if f"_d{j}" in groups.columns else None
        gathered.append(_Gathered(pids.astype(np.int64, copy=False), offsets,
                                  groups[f"_v{j}"].to_list(), x, distinct))
    return _labels(groups, keys), gathered


def _counted(
    frame: pl.DataFrame, keys: list[str], inputs: list[tuple[Aggregate, str | None]],
    weights: np.ndarray | None = None,
) -> tuple[list[tuple[str, ...]], list[_Gathered]] | None:
    """Counts (``count(*)``, ``count(x)``, ``count(DISTINCT pid)``) by whole-number or
    boolean keys, gathered by each row's key code; None for anything else (``_grouped`` then
    gathers it). ``weights``: the rows each of the frame's rows stands for (None: one each).

    Groups, their order (by key, NULL last) and their labels are those of ``_grouped``.
    """
    if any(a.kind != CellKind.COUNT or (a.distinct and (
            column is None or not frame.schema[column].is_integer())) for a, column in inputs):
        return None
    coded = _key_codes(frame, keys)
    if coded is None:
        return None
    code, counts, present, groups = coded
    order = np.argsort(code, kind="stable")  # radix: groups in order, each in pid order
    pids = frame["_pid"].to_numpy()[order].astype(np.int64, copy=False)
    ordered = weights[order] if weights is not None else None
    gathered = []
    for aggregate, column in inputs:
        if column is None:
            chosen, chosen_weights, sizes = pids, ordered, counts[present]
            rows = (sizes if weights is None else
                    np.bincount(code, weights=weights, minlength=len(counts))[present])
        else:
            has = frame[column].is_not_null().to_numpy()[order]
            chosen = pids[has]
            chosen_weights = ordered[has] if ordered is not None else None
            sizes = np.bincount(code[order[has]], minlength=len(counts))[present]
            rows = (sizes if chosen_weights is None else
                    np.bincount(code[order[has]], weights=chosen_weights,
                                minlength=len(counts))[present])
            if aggregate.distinct:  # the distinct values (pids) in each group
                pairs = np.unique(np.column_stack([
                    code[order[has]].astype(np.int64),
                    frame[column].cast(pl.Int64).fill_null(0).to_numpy()[order][has]]),
                    axis=0)
                rows = np.bincount(pairs[:, 0], minlength=len(counts))[present]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        gathered.append(_Gathered(chosen, offsets, [float(n) for n in rows],
                                  weights=chosen_weights))
    return _labels(groups, keys), gathered


def _key_codes(
    frame: pl.DataFrame, keys: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame] | None:
    """Each row's key code, the rows per code, the codes of the groups (in order) and their
    keys, when every key is a whole number or boolean and their combinations number at most
    ``_MAX_KEY_CODES``; else None. Without keys, one group holds every row (even none).

    A row's code is its keys in mixed radix (first key first; NULL after the largest value), so
    codes sort as the keys do.
    """
    if not keys:
        return (np.zeros(frame.height, dtype=np.uint16), np.array([frame.height]),
                np.zeros(1, dtype=np.int64), pl.DataFrame({"_group": [0]}))
    code: np.ndarray | None = None
    digits: list[tuple[str, int, int, bool]] = []  # key, lowest value, radix, has NULL
    space = 1
    for key in keys:
        series = frame[key]
        if series.dtype not in _CODED:
            return None
        whole = series if series.dtype == pl.Int64 else series.cast(pl.Int64)
        low, high = whole.min(), whole.max()
        low, high = (0, -1) if low is None else (int(low), int(high))  # type: ignore[arg-type]
        nulls = whole.null_count() > 0
        radix = high - low + 1 + nulls
        space *= radix
        if space > _MAX_KEY_CODES:
            return None
        digit = (whole.fill_null(low) if nulls else whole).to_numpy() - low  # below radix
        if nulls:
            digit[whole.is_null().to_numpy()] = radix - 1
        code = digit if code is None else code * radix + digit
        digits.append((key, low, radix, nulls))
    assert code is not None
    counts = np.bincount(code, minlength=space)
    present = np.flatnonzero(counts)
    columns: list[pl.Series] = []
    rest = present
    for key, low, radix, nulls in reversed(digits):
        digit, rest = rest % radix, rest // radix
        values = pl.Series(key, digit + low, dtype=pl.Int64)
        if nulls:
            values = values.scatter(np.flatnonzero(digit == radix - 1), None)
        columns.insert(0, values.cast(frame.schema[key]))
    return code.astype(np.uint16), counts, present, pl.DataFrame(columns)


def _by_pid(frame: pl.DataFrame) -> pl.DataFrame:
    pid = frame["_pid"]
    if pid.null_count():
        raise unknown("some rows have no pid")
    if not pid.is_sorted():
        frame = frame.sort("_pid")
    return frame


def _labels(groups: pl.DataFrame, keys: list[str]) -> list[tuple[str, ...]]:
    if not keys:
        return [()] * groups.height
    try:
        labels = groups.select(pl.col(k).cast(pl.String).fill_null(NULL_LABEL) for k in keys)
    except pl.exceptions.PolarsError:
        raise Invalid("a group key is a list or another value without a text form; group by "
                      "numbers, text or dates") from None
    return list(labels.iter_rows())


def _numeric(frame: pl.DataFrame, column: str, aggregate: Aggregate) -> pl.Expr:
    dtype = frame.schema[column]
    if aggregate.kind == CellKind.COUNT or dtype.is_numeric():
        return pl.col(column)
    if dtype == pl.Boolean:
        return pl.col(column).cast(pl.Int8)
    raise Invalid(f"{aggregate.name!r}: {aggregate.kind.value} needs a numeric argument, not "
                  f"{dtype}; for dates use e.g. year(date) or date_diff('day', a, b)")


def _exprs(j: int, aggregate: Aggregate, column: str | None) -> list[pl.Expr]:
    """The group-by outputs for aggregate ``j``: pids, values and what its rules need."""
    if column is None:
        return [pl.col("_pid").implode().alias(f"_p{j}"), pl.len().cast(pl.Float64).alias(f"_v{j}")]
    x = pl.col(column)
    present = x.is_not_null()
    value = {
        CellKind.SUM: x.sum(), CellKind.MEAN: x.mean(), CellKind.SD: x.std(ddof=1),
        CellKind.MEDIAN: x.median(), CellKind.MIN: x.min(), CellKind.MAX: x.max(),
        CellKind.MODE: x.drop_nulls().mode().min(),
        CellKind.QUANTILE: x.quantile(aggregate.q or 0.0, "linear"),
        CellKind.COUNT: x.drop_nulls().n_unique() if aggregate.distinct else x.count(),
    }[aggregate.kind]  # fmt: skip
    exprs = [pl.col("_pid").filter(present).implode().alias(f"_p{j}"),
             value.cast(pl.Float64).alias(f"_v{j}")]
    if aggregate.kind in _VALUED:
        exprs.append(x.filter(present).cast(pl.Float64).implode().alias(f"_x{j}"))
    if aggregate.kind in _DISTINCT_VALUES:
        exprs.append(x.drop_nulls().n_unique().alias(f"_d{j}"))
    return exprs


def _flat(groups: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (all values, offsets of each group's values)."""
    lists = groups[column].rechunk().to_arrow()
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    values = np.asarray(lists.flatten().to_numpy(zero_copy_only=False))
    return values, offsets - offsets[0]


def _cells(gathered: _Gathered, aggregate: Aggregate, labels: list[tuple[str, ...]],
           k: int = 0, once: bool = False) -> list[Cell]:
    """``once``: each participant has one row (each group's rows are its participants)."""
    n_groups = len(labels)
    pids, offsets, values = gathered.pids, gathered.offsets, gathered.values
    if once:
        starts, bounds, contributors, rows = np.arange(len(pids)), offsets, pids, None
    else:
        # the first row of each (group, pid) run: lists are sorted by pid within a group
        first = np.empty(len(pids), dtype=np.bool_)
        first[1:] = pids[1:] != pids[:-1]
        first[offsets[:-1][offsets[:-1] < len(pids)]] = True
        starts = np.flatnonzero(first)
        bounds = np.searchsorted(starts, offsets)  # each group's slice of ``contributors``
        contributors = pids[starts]
        rows = np.diff(np.append(starts, len(pids)))  # each participant's rows in the group
        if gathered.weights is not None and len(starts):  # each entry stands for its weight
            rows = np.add.reduceat(gathered.weights, starts).astype(np.int64)
    magnitudes = below = above = totals = None
    if gathered.x is not None:
        x = gathered.x
        run = starts if rows is None else np.repeat(np.arange(len(starts)), rows)
        # each participant's own total: release precision and value-aware differencing
        totals = np.bincount(run, weights=x, minlength=len(starts)).astype(np.float64)
        if aggregate.kind in _MAGNITUDE:
            magnitudes = np.bincount(run, weights=np.abs(x),
                                     minlength=len(starts)).astype(np.float64)
        elif aggregate.kind in _SIDES:
            group_of = np.repeat(np.arange(n_groups), np.diff(offsets))
            values = _of_participants(values, x, run, starts, group_of, aggregate, n_groups)
            cut = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            below = _participants_where(x < cut[group_of], run, bounds)
            above = _participants_where(x > cut[group_of], run, bounds)
            # a quantile is of rows: each participant's row nearest it, not their total, is
            # what release precision measures its neighbours and gaps by
            totals = nearest_rows(x, run, cut[group_of])[starts]
    elif (aggregate.kind == CellKind.COUNT and not aggregate.distinct and rows is not None
          and rows.max(initial=0) > 1):
        # a count of rows sums each participant's rows: when anyone has several, those are
        # their contributions (dominance, release precision and value differencing read them)
        totals = magnitudes = rows.astype(np.float64)
    distinct = gathered.distinct
    clipped: list[_Clipped | None] = [None] * n_groups
    if k >= 1 and aggregate.kind in _CLIPPED and not aggregate.distinct:
        clipped = _winsorised(gathered, aggregate, rows, bounds, k)
    cells = []
    for g in range(n_groups):
        lo, hi = bounds[g], bounds[g + 1]
        empty = hi == lo and aggregate.kind != CellKind.COUNT
        c = clipped[g]
        if c is not None:
            cells.append(Cell(
                row=labels[g], column=aggregate.name, kind=aggregate.kind,
                value=None if empty else _number(c.value), contributors=contributors[lo:hi],
                magnitudes=c.magnitudes, distinct_values=c.distinct, values=c.values,
                winsorised=True))
            continue
        cells.append(Cell(
            row=labels[g], column=aggregate.name, kind=aggregate.kind,
            value=None if empty else _number(values[g]), contributors=contributors[lo:hi],
            magnitudes=magnitudes[lo:hi] if magnitudes is not None else None,
            below=int(below[g]) if below is not None else None,
            above=int(above[g]) if above is not None else None,
            level=(0.5 if aggregate.kind == CellKind.MEDIAN else aggregate.q)
            if aggregate.kind in _SIDES else None,
            distinct_values=int(distinct[g]) if distinct is not None else None,
            values=totals[lo:hi] if totals is not None else None,
        ))  # fmt: skip
    return cells


def _of_participants(values: Sequence[float | None], x: np.ndarray, run: np.ndarray,
                     starts: np.ndarray, group_of: np.ndarray, aggregate: Aggregate,
                     n_groups: int) -> list[float | None]:
    """A quantile of participants, each by the median of their own rows in the group, when
    anyone has several: of rows, one participant's extra row broke a tie that everyone else's
    identical rows made (rows 0 to 3 each, the target one more, 2 if obese: the median of
    thirteen such variables was a BMI)."""
    if len(starts) == len(x):
        return list(values)
    q = 0.5 if aggregate.kind == CellKind.MEDIAN else (aggregate.q or 0.0)
    own = (pl.DataFrame({"g": group_of, "r": run, "x": x}).group_by("g", "r")
           .agg(pl.col("x").median()).group_by("g")
           .agg(pl.col("x").quantile(q, "linear")))
    found: list[float | None] = list(values)
    for g, v in own.iter_rows():
        if 0 <= g < n_groups:
            found[g] = None if v is None else float(v)
    return found


@dataclass(frozen=True)
class _Clipped:
    """One group's winsorised figure and what its rules read."""

    value: float | None
    magnitudes: np.ndarray | None
    values: np.ndarray | None
    distinct: int | None


def _winsorised(gathered: _Gathered, aggregate: Aggregate, rows: np.ndarray | None,
                bounds: np.ndarray, k: int) -> list[_Clipped | None]:
    """Per group, the sum, mean, SD or count of rows of its contributions winsorised at the
    k-th smallest and largest of its participants (winsor.py): a sum's and a count's
    per-participant totals (rows, for a count), a mean's and SD's row values (bounds set by
    participants) with each participant's rows weighted to at most the bulk's number.
    ``rows``: each participant's rows in their group, in contributor order (None: one each)."""
    offsets = gathered.offsets
    if aggregate.kind is CellKind.COUNT and (rows is None or rows.max(initial=0) <= 1):
        return [None] * (len(offsets) - 1)  # a count of participants: nothing to clip
    found: list[_Clipped | None] = []
    for g in range(len(offsets) - 1):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if hi == lo:
            found.append(None)
            continue
        if aggregate.kind is CellKind.COUNT:
            assert rows is not None
            own = winsor.clip(rows[lo:hi].astype(np.float64), k)
            several = own.max() > 1  # else a count of participants, as for anyone
            found.append(_Clipped(float(own.sum()), own if several else None,
                                  own if several else None, None))
            continue
        assert gathered.x is not None
        first, last = int(offsets[g]), int(offsets[g + 1])
        x = gathered.x[first:last]
        who = np.arange(hi - lo) if rows is None else np.repeat(np.arange(hi - lo), rows[lo:hi])
        if aggregate.kind is CellKind.SUM:
            own = winsor.clip(np.bincount(who, weights=x, minlength=hi - lo).astype(np.float64),
                              k)
            found.append(_Clipped(float(own.sum()), np.abs(own), own,
                                  int(sets.distinct(own).size)))
            continue
        x = winsor.clip_rows(x, who, k)
        w = winsor.row_weights(who, k)
        mean, sd = winsor.weighted_mean_sd(x, w)
        found.append(_Clipped(mean if aggregate.kind is CellKind.MEAN else sd,
                              np.bincount(who, weights=w * np.abs(x), minlength=hi - lo),
                              np.bincount(who, weights=w * x, minlength=hi - lo),
                              int(sets.distinct(x).size)))
    return found


def _participants_where(mask: np.ndarray, run: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per group, the distinct participants with at least one row where ``mask`` holds."""
    hit = (np.bincount(run, weights=mask, minlength=int(bounds[-1])) > 0).astype(np.int64)
    return np.diff(np.concatenate([[0], np.cumsum(hit)])[bounds])


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number
