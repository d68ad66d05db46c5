"""Row-local SQL: a participant's rows may depend only on that participant's own records.

The guarantee: in a checked definition (and in the row-level part of aggregate SQL), the
rows that belong to participant *p* are a function of *p*'s rows in the project's tables and
earlier definitions, and of nothing else. No value can be copied from one participant onto
another's row, so an aggregate's contributors are exactly the participants whose values it
holds, and differencing and the output check count the right people.

What keeps it (each a refusal with its reason, checked on the qualified tree, scope by scope):

- aggregates only with ``GROUP BY`` that includes ``pid``; ``DISTINCT`` only with ``pid``
  selected; window functions only ``PARTITION BY pid``; no ``LIMIT``/``OFFSET``;
- subqueries only as participant selection, ``pid IN (SELECT pid FROM …)``, not correlated
  with the outer query (derived tables and CTEs are checked as queries of their own); no
  scalar subqueries, ``EXISTS``, ``ANY`` or ``ALL``;
- every join has ``a.pid = b.pid`` as one of its top-level conditions; no RIGHT or FULL joins,
  and the ``pid`` a query selects, groups, partitions or de-duplicates by comes from a table
  that is never null-extended (FROM or an inner join), so no NULL ``pid`` gathers several
  participants' rows into one group;
- ``pid`` itself appears only where it names a participant: selected as ``pid``, joined on,
  grouped or partitioned by, ordered by, counted, tested with ``IS [NOT] NULL`` or with
  ``pid IN (SELECT pid …)``; never in arithmetic, comparisons with values, ``CASE`` or lists
  (which would pick people by pseudonym);
- in ``UNION``/``INTERSECT``/``EXCEPT`` every branch puts ``pid`` in the same position.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from strongroom.enclave.sqlguard import conjuncts, plain_sql
from strongroom.enclave.view import PID

_PID_USES = ("pid may only be selected (as pid), joined on (a.pid = b.pid), grouped or "
             "partitioned by, counted, or tested with pid IN (SELECT pid FROM … WHERE …)")
_SELECTION = ("select participants with pid IN (SELECT pid FROM <table> WHERE …), or join "
              "the table on pid and aggregate with GROUP BY pid")


def reasons(query: exp.Query, *, named_pid: bool = True) -> list[str]:
    """Every reason the checked, qualified query is not row-local, each named once.

    ``named_pid``: a selected ``pid`` must keep its name (definitions, whose output tables
    other SQL reads); the row-level query of aggregate SQL names its own columns.
    """
    found: list[str] = []
    for scope in traverse_scope(query):
        for reason in _scope_reasons(scope, named_pid and not _is_selection(scope)):
            if reason not in found:
                found.append(reason)
    # a LIMIT on a parenthesised query belongs to no scope's SELECT: found wherever it is
    for node in query.find_all(exp.Subquery):
        for reason in _limit_reasons(node):
            if reason not in found:
                found.append(reason)
    return found


def _scope_reasons(scope: Scope, named_pid: bool) -> list[str]:
    node = scope.expression
    found: list[str] = []
    if scope.is_subquery and not scope.is_derived_table:
        found += _subquery_reasons(scope)
    if isinstance(node, exp.SetOperation):
        found += _limit_reasons(node) + _branch_reasons(node)
    elif isinstance(node, exp.Select):
        found += _select_reasons(node, named_pid)
    return found


# -- subqueries ----------------------------------------------------------------------------


def _subquery_reasons(scope: Scope) -> list[str]:
    top = _top(scope.expression)
    if not _is_selection(scope) and not isinstance(top.parent, exp.Union | exp.Intersect
                                                       | exp.Except):
        return [_subquery_refusal(top)]
    if scope.external_columns:
        return ["a subquery refers to the outer query's columns (a correlated subquery); "
                "write the condition inside it on its own tables, or join on pid"]
    return []


def _top(node: exp.Expr) -> exp.Expr:
    """The subquery as its parent sees it (through parentheses and set operations)."""
    while isinstance(node.parent, exp.Subquery | exp.SetOperation):
        node = node.parent
    return node


def _is_selection(scope: Scope) -> bool:
    """Whether the scope is (a branch of) the query of ``pid IN (SELECT pid …)``."""
    top = _top(scope.expression)
    member = top.parent
    return (isinstance(member, exp.In) and member.args.get("query") is top
            and is_pid(member.this) and all(_projects_only_pid(s) for s in _branches(top)))


def _projects_only_pid(select: exp.Expr) -> bool:
    return (isinstance(select, exp.Select) and len(select.expressions) == 1
            and is_pid(select.expressions[0].unalias()))


def _subquery_refusal(top: exp.Expr) -> str:
    parent = top.parent
    if isinstance(parent, exp.Exists):
        what = "EXISTS (…)"
    elif isinstance(parent, exp.Any | exp.All):
        what = "ANY/ALL (…)"
    elif isinstance(parent, exp.In):
        what = "IN (SELECT …) on a value other than pid, or selecting more than pid"
    else:
        what = "a scalar subquery"
    return (f"{what} would let one participant's row depend on other participants' values; "
            + _SELECTION)


# -- one SELECT ----------------------------------------------------------------------------


def _own_nodes(select: exp.Select) -> list[exp.Expr]:
    """The select's nodes, not descending into nested queries (checked as their own scopes)."""
    return list(select.walk(prune=lambda n: n is not select
                             and isinstance(n, exp.Query | exp.Subquery | exp.With)))


def _select_reasons(select: exp.Select, named_pid: bool) -> list[str]:
    nodes = _own_nodes(select)
    anchored, found = anchored_sources(select)
    found += _limit_reasons(select)
    grouped = any(is_pid(key, anchored) for key in _group(select))
    windows = [n for n in nodes if isinstance(n, exp.Window)]
    aggregates = [n for n in nodes if _is_aggregate(n) and not isinstance(n.parent, exp.Window)]
    if aggregates and not grouped:
        found.append(f"the aggregate {plain_sql(aggregates[0])} is taken over several "
                     "participants' rows; in a definition aggregate one participant's rows "
                     "with GROUP BY pid (aggregates over people belong in an analysis)")
    if select.args.get("group") is not None and not grouped:
        found.append("GROUP BY without pid merges different participants' rows; include "
                     "pid in GROUP BY")
    for window in windows:
        if not any(is_pid(p, anchored) for p in window.args.get("partition_by") or []):
            found.append("a window function over other participants' rows (it can copy one "
                         "participant's value onto others); use OVER (PARTITION BY pid …)")
    distinct = select.args.get("distinct")
    if distinct is not None:
        on = distinct.args.get("on")
        keys = on.expressions if isinstance(on, exp.Tuple) else ([on] if on else [])
        if on is not None and not any(is_pid(k, anchored) for k in keys):
            found.append("DISTINCT ON without pid keeps one row for several participants; "
                         "include pid in DISTINCT ON")
        if on is None and not any(is_pid(p.unalias(), anchored)
                                  for p in select.expressions):
            found.append("SELECT DISTINCT without pid merges different participants' rows; "
                         "select pid too")
    for join in select.args.get("joins") or []:
        if not _joins_on_pid(join):
            found.append(f"the join of {join.this.alias_or_name} is not on pid "
                         "(JOIN … ON a.pid = b.pid): its rows would mix participants")
    found += _pid_reasons(select, nodes, named_pid, anchored)
    return found


def anchored_sources(select: exp.Select) -> tuple[set[str], list[str]]:
    """The sources whose pid is never NULL in this select's rows, and refused outer joins."""
    source = select.args.get("from_")
    anchored = {source.this.alias_or_name} if source is not None else set()
    found: list[str] = []
    for join in select.args.get("joins") or []:
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if side in ("RIGHT", "FULL"):
            found.append(f"{side} JOIN can give rows without a participant; swap the tables "
                         "and use LEFT JOIN")
        elif not side and kind in ("", "INNER"):
            anchored.add(join.this.alias_or_name)
    return anchored, found


def _limit_reasons(query: exp.Expr) -> list[str]:
    if any(query.args.get(k) for k in ("limit", "offset", "fetch")):
        return ["LIMIT and OFFSET pick rows by their position among all participants; "
                "select people by their own values instead"]
    return []


def _group(select: exp.Select) -> list[exp.Expr]:
    group = select.args.get("group")
    return list(group.expressions) if group is not None else []


def _is_aggregate(node: exp.Expr) -> bool:
    return isinstance(node, exp.AggFunc) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in ("mean", "list", "string_agg"))


def _joins_on_pid(join: exp.Join) -> bool:
    joined = join.this.alias_or_name
    on = join.args.get("on")
    if on is None:
        return False
    for term in conjuncts(on):
        if isinstance(term, exp.EQ) and is_pid(term.left) and is_pid(term.right):
            sides = _tables(term.left), _tables(term.right)
            if (joined in sides[0]) != (joined in sides[1]):
                return True
    return False


def _tables(node: exp.Expr) -> set[str]:
    return {c.table for c in node.find_all(exp.Column)}


# -- where pid may appear --------------------------------------------------------------------


def is_pid(node: exp.Expr | None, anchored: set[str] | None = None) -> bool:
    """A participant's pid as it stands: a pid column, or COALESCE of them (JOIN USING);
    with ``anchored``, one of them from a source whose pid is never NULL."""
    node = node.unnest() if node is not None else None
    parts = ([node.this, *node.expressions] if isinstance(node, exp.Coalesce)
             else [node] if node is not None else [])
    if not parts or not all(isinstance(p, exp.Column) and p.name == PID for p in parts):
        return False
    return anchored is None or any(isinstance(p, exp.Column) and p.table in anchored
                                   for p in parts)


def _pid_reasons(select: exp.Select, nodes: list[exp.Expr], named_pid: bool,
                 anchored: set[str]) -> list[str]:
    found: list[str] = []
    for projection in select.expressions:
        if projection.alias_or_name == PID and not is_pid(projection.unalias(), anchored):
            found.append(f"the output column pid must be the pid of the table in FROM or of an "
                         f"inner join, as it stands, not {plain_sql(projection.unalias())}")
        elif named_pid and is_pid(projection.unalias()) and projection.alias_or_name != PID:
            found.append(f"pid is selected as {projection.alias_or_name!r}; keep the name pid")
    for node in nodes:
        if not (isinstance(node, exp.Column) and node.name == PID):
            continue
        if isinstance(node.parent, exp.Coalesce) and is_pid(node.parent):
            node = node.parent
        if not _pid_use_ok(node, select):
            found.append(f"pid is used in {_context(node)}; {_PID_USES}")
    return found


def _pid_use_ok(node: exp.Expr, select: exp.Select) -> bool:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        node, parent = parent, parent.parent
    if parent is select or (isinstance(parent, exp.Alias) and parent.parent is select):
        return True  # selected
    if isinstance(parent, exp.Group | exp.Ordered):
        return True
    if isinstance(parent, exp.Window):
        return node in (parent.args.get("partition_by") or [])
    if isinstance(parent, exp.EQ):
        return is_pid(parent.left) and is_pid(parent.right)
    if isinstance(parent, exp.In):
        return parent.this is node and parent.args.get("query") is not None
    if isinstance(parent, exp.Is):
        return isinstance(parent.expression, exp.Null)
    if isinstance(parent, exp.Distinct):
        return True  # count(DISTINCT pid), DISTINCT ON (pid)
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Distinct):
        return True
    return isinstance(parent, exp.Count)


def _context(node: exp.Expr) -> str:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    text = plain_sql(parent if parent is not None else node)
    return text if len(text) <= 80 else text[:77] + "…"


def _branches(node: exp.Expr) -> list[exp.Expr]:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    while isinstance(node, exp.Subquery):
        node = node.this
    if isinstance(node, exp.SetOperation):
        return _branches(node.left) + _branches(node.right)
    return [node]


def _branch_reasons(union: exp.SetOperation) -> list[str]:
    """Every branch of a set operation has pid where the first has it, and only there."""
    branches = [b for b in _branches(union) if isinstance(b, exp.Select)]
    if not branches:
        return []
    first = [p.alias_or_name == PID for p in branches[0].expressions]
    for branch in branches[1:]:
        here = [is_pid(p.unalias()) for p in branch.expressions]
        if here != first:
            return ["the branches of UNION/INTERSECT/EXCEPT must each select pid in the same "
                    "position (and no other column in its place)"]
    return []
