"""How many rows a checked query could produce, bounded from its SQL before any row is read.

The guarantee: whether a query is refused for its size is decided from its text, the sizes
of the project's tables (rounded up to a power of two) and the bounds of the definitions it
reads, never from a participant's value. A query whose result, or any relation it builds on
the way (a join, a CTE, a union, a derived table), could hold more than the limit is refused
before it runs, with the relation named; one that could not is never stopped for its rows.

Why: a limit checked on the actual result answers a yes/no question. "Double the target's
row 23 times if their BMI is over 30" passes five million rows only if it is; whether the
definition is refused is then the answer. The bound counts every participant as if they all
met the condition, so the same text is refused (or not) whoever the target is.

The bound is a (rows, rows for one participant) pair, combined bottom-up: a table is its
rounded size (the participants table holds one row per participant; an event table, as far
as the bound knows, could hold all its rows for one); a join on ``pid`` multiplies each
side's rows by the other side's rows per participant; ``UNION`` adds; ``GROUP BY pid`` leaves
one row per participant; ``WHERE``, ``HAVING``, ``DISTINCT`` and windows never add rows.
Joins that are not on ``pid`` (refused elsewhere in definitions) multiply whole sizes.

Left alone: the work a bounded query does still varies a little with the data (a filter
that keeps one more row), so its run time and memory are not constant; the swing one
participant can cause is their own rows' share of each relation (docs/explanation/
output-check.md, "What the check cannot promise").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlglot import exp

from strongroom.cohort.model import PARTICIPANTS
from strongroom.enclave import rowlocal
from strongroom.enclave.sources import Table
from strongroom.enclave.sqlguard import conjuncts, plain_sql
from strongroom.enclave.view import PID
from strongroom.errors import Invalid


@dataclass(frozen=True)
class Size:
    """At most ``rows`` rows, of which at most ``per_pid`` belong to one participant."""

    rows: int
    per_pid: int

    def capped(self, rows: int) -> Size:
        return Size(min(self.rows, rows), min(self.per_pid, rows))


def rounded(n: int) -> int:
    """``n`` rounded up to a power of two: a table's size as a bound may use it (the bound
    then says nothing finer about how many rows it holds)."""
    return 1 << max(n - 1, 0).bit_length()


def of_tables(tables: Mapping[str, Table]) -> dict[str, Size]:
    """The bounds of the project's own tables: their sizes, rounded up."""
    return {name: Size(rounded(frame.height),
                       1 if name == PARTICIPANTS else rounded(frame.height))
            for name, frame in tables.items()}


def limit(max_rows: int, tables: Mapping[str, Size]) -> int:
    """The most rows a query may be able to produce: ``max_rows``, or twice the project's
    largest table (rounded) if that is more, so that a definition may always hold a table it
    reads beside the participants (a LEFT JOIN) or beside another table (a UNION)."""
    return max([max_rows, *(2 * size.rows for size in tables.values())])


def admit(query: exp.Query, tables: Mapping[str, Table], max_rows: int,
          definitions: Mapping[str, Size | None]) -> tuple[Size, int]:
    """The bound of a query over the project's ``tables`` and earlier ``definitions`` (their
    stored bounds; None for one made before bounds were kept, taken to be as large as a
    query may be), and the limit it was held to; refused as :func:`check` refuses. A
    definition's frame among ``tables`` is bounded by its stored bound, never its size."""
    own = of_tables({name: frame for name, frame in tables.items()
                     if name not in definitions})
    most = limit(max_rows, own)
    sources = {**own, **{name: bound or Size(most, most)
                         for name, bound in definitions.items()}}
    return check(query, sources, most), most


def check(query: exp.Query, sources: Mapping[str, Size], most: int) -> Size:
    """The bound of a checked, qualified query's result; refused (:class:`Invalid`, before
    any row is read, so never an answer about the data) if it or any relation on its way
    could exceed ``most`` rows."""
    bounder = _Bounder(sources)
    result = bounder.query(query, {})
    over = [(what, size) for what, size in bounder.relations if size.rows > most]
    if over:
        named, size = over[0]  # the first, in the order the query builds them: where it grows
        what = named if isinstance(named, str) else named()
        raise Invalid(f"{what} could hold up to {size.rows:,} rows (counting every "
                      f"participant as if they all matched), more than the {most:,} one query "
                      "may produce; join event tables to participants rather than to each "
                      "other, aggregate one participant's events first (GROUP BY pid), and "
                      "avoid unions that repeat rows")
    return result


class _Bounder:
    def __init__(self, sources: Mapping[str, Size]) -> None:
        self.sources = sources
        # every pid of a project table is a participant's (the view joins each table to
        # the same pseudonyms), so distinct pids are at most the participants
        self.people = sources[PARTICIPANTS].rows if PARTICIPANTS in sources else None
        # each relation with its name, or how to name it (only a refusal needs the SQL text)
        self.relations: list[tuple[str | Callable[[], str], Size]] = []

    def _seen(self, what: str | Callable[[], str], size: Size) -> Size:
        self.relations.append((what, size))
        return size

    def query(self, node: exp.Expr, ctes: Mapping[str, Size], label: str = "") -> Size:
        ctes = self._with(node, ctes)
        if isinstance(node, exp.Subquery | exp.Paren):
            return self.query(node.this, ctes, label)
        if isinstance(node, exp.SetOperation):
            left, right = self.query(node.this, ctes), self.query(node.expression, ctes)
            if isinstance(node, exp.Intersect):
                size = Size(min(left.rows, right.rows), min(left.per_pid, right.per_pid))
            elif isinstance(node, exp.Except):
                size = left
            elif node.args.get("distinct") and self.people is not None and all(
                    _only_pid(branch) for branch in (node.this, node.expression)):
                size = Size(min(left.rows + right.rows, self.people), 1)
            else:
                size = Size(left.rows + right.rows, left.per_pid + right.per_pid)
            return self._seen(label or (lambda: f"the union ({_short(node)})"),
                              self._limited(node, size))
        if isinstance(node, exp.Select):
            return self._select(node, ctes, label)
        raise Invalid(f"the enclave cannot bound the size of {_short(node)}; write it as a "
                      "SELECT")  # the guard admits nothing else, so this is a safety net

    def _with(self, node: exp.Expr, ctes: Mapping[str, Size]) -> Mapping[str, Size]:
        with_ = node.args.get("with_")
        if with_ is None:
            return ctes
        known = dict(ctes)
        for cte in with_.expressions:
            known[cte.alias_or_name] = self.query(cte.this, known,
                                                  f"the CTE {cte.alias_or_name}")
        return known

    def _select(self, select: exp.Select, ctes: Mapping[str, Size], label: str) -> Size:
        for sub in _selections(select):
            self.query(sub, ctes)  # pid IN (SELECT …): a relation of its own
        source = select.args.get("from_")
        size = self._source(source.this, ctes) if source is not None else Size(1, 1)
        each = {source.this.alias_or_name: size} if source is not None else {}
        for join in select.args.get("joins") or []:
            right = self._source(join.this, ctes)
            each[join.this.alias_or_name] = right
            kind = (join.args.get("kind") or "").upper()
            side = (join.args.get("side") or "").upper()
            left_join = side == "LEFT"
            if kind in ("SEMI", "ANTI"):
                pass  # the left rows that have (or lack) a match: never more of them
            elif kind not in ("", "INNER", "OUTER") or side in ("RIGHT", "FULL"):
                # not a join this bound reads (row-local SQL has none): every pair, and
                # every row of either side unmatched
                rows = (size.rows + 1) * (right.rows + 1)
                size = Size(rows, rows)
            elif _on_pid(join, join.this.alias_or_name):
                # each participant's rows on the left meet theirs on the right; a left
                # join also keeps a left row that meets none
                rows = min(size.rows * right.per_pid,
                           (size.rows if left_join else 0) + right.rows * size.per_pid)
                size = Size(rows, size.per_pid * right.per_pid)
            else:
                rows = size.rows * (max(right.rows, 1) if left_join else right.rows)
                size = Size(rows, rows)
            size = self._seen(f"the join of {join.this.alias_or_name}", size)
        anchored, _ = rowlocal.anchored_sources(select)
        size = self._grouped(select, size, anchored,
                             {a for a, s in each.items() if s.per_pid == 1 and a in anchored})
        return self._seen(label or (lambda: f"the query ({_short(select)})"),
                          self._limited(select, size))

    def _source(self, node: exp.Expr, ctes: Mapping[str, Size]) -> Size:
        while isinstance(node, exp.Subquery | exp.Paren) and isinstance(node.this, exp.Table
                                                                         | exp.Subquery):
            node = node.this  # FROM (events): the table itself
        if isinstance(node, exp.Table):
            name = node.name
            if name in ctes:
                return ctes[name]
            if name in self.sources:
                return self.sources[name]
            raise Invalid(f"the enclave does not know the size of {name!r}")  # safety net
        return self.query(node, ctes)

    def _grouped(self, select: exp.Select, size: Size, anchored: set[str],
                 single: set[str]) -> Size:
        """``anchored``: the sources whose ``pid`` is never NULL here (FROM, inner joins);
        ``single``: those of them with one row per participant, whose columns are fixed by
        ``pid`` (grouping by them beside it still gives one row per participant). A column
        of a LEFT-joined source is NULL on some of a participant's rows and not on others."""
        group = select.args.get("group")
        keys = list(group.expressions) if group is not None else []
        if not keys:
            if any(isinstance(n, exp.AggFunc) and not isinstance(n.parent, exp.Window)
                   for n in _own_nodes(select)):
                return Size(1, 1)
            distinct = select.args.get("distinct")
            if distinct is not None and self.people is not None and _one_each(
                    select, distinct, anchored):
                return Size(min(size.rows, self.people), 1)
            return size
        by_pid = [k for k in keys if rowlocal.is_pid(k, anchored)]
        if not by_pid:
            return Size(size.rows, size.rows)
        if all(k in by_pid or (isinstance(k, exp.Column) and k.table in single)
               for k in keys):  # one row per participant
            rows = size.rows if self.people is None else min(size.rows, self.people)
            return Size(rows, 1)
        return size

    @staticmethod
    def _limited(node: exp.Expr, size: Size) -> Size:
        limit = node.args.get("limit")
        count = limit.expression if isinstance(limit, exp.Limit) else None
        if isinstance(count, exp.Literal) and count.is_int:
            return size.capped(int(count.this))
        return size


def _selections(select: exp.Select) -> list[exp.Expr]:
    """The queries of this select's own ``IN (SELECT …)`` terms (not those of nested queries,
    which are bounded with their own select)."""
    found = []
    for node in select.walk(prune=lambda n: n is not select and isinstance(n, exp.Query)):
        if isinstance(node, exp.In) and node.args.get("query") is not None:
            found.append(node.args["query"])
    return found


def _own_nodes(select: exp.Select) -> list[exp.Expr]:
    """The select's nodes, not those of queries nested in it (bounded on their own)."""
    return list(select.walk(prune=lambda n: n is not select and isinstance(n, exp.Query)))


def _one_each(select: exp.Select, distinct: exp.Distinct, anchored: set[str]) -> bool:
    """SELECT DISTINCT pid, or DISTINCT ON (pid): at most one row per participant (not
    DISTINCT ON (pid, day), which keeps one a day)."""
    on = distinct.args.get("on")
    if on is None:
        return _only_pid(select)
    keys = on.expressions if isinstance(on, exp.Tuple) else [on]
    return all(rowlocal.is_pid(key, anchored) for key in keys)


def _only_pid(query: exp.Expr) -> bool:
    """A SELECT of ``pid`` alone (its rows are participants, at most one each if distinct)."""
    query = query.unnest() if isinstance(query, exp.Paren) else query
    while isinstance(query, exp.Subquery):
        query = query.this
    return (isinstance(query, exp.Select) and len(query.expressions) == 1
            and query.expressions[0].alias_or_name == PID
            and rowlocal.is_pid(query.expressions[0].unalias()))


def _on_pid(join: exp.Join, joined: str) -> bool:
    """``a.pid = b.pid`` between the joined table and one before it, as a top-level term."""
    on = join.args.get("on")
    return on is not None and any(
        isinstance(term, exp.EQ) and _is_pid(term.left) and _is_pid(term.right)
        and (_table(term.left) == joined) != (_table(term.right) == joined)
        for term in conjuncts(on))


def _table(node: exp.Expr) -> str:
    return node.table if isinstance(node, exp.Column) else ""


def _is_pid(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and node.name == PID


def _short(node: exp.Expr) -> str:
    bare = node.copy()
    bare.set("with_", None)
    text = " ".join(plain_sql(bare).split())
    return text if len(text) <= 80 else text[:77] + "…"
