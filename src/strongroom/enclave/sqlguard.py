"""The SQL guard: one SELECT over the project's tables, granted columns and listed functions.

Researchers' SQL is parsed with sqlglot (DuckDB dialect) and every node of the tree must be of
a listed kind; every function must be listed; every table must be a project table or a CTE;
every column must resolve, through sqlglot's qualifier, to a column the project may read. What
the guard does not recognise it refuses (fail closed), naming the construct and what is allowed
instead. The caller runs the *checked tree* regenerated as SQL, never the original text, so
DuckDB executes exactly what was checked.

The locked connection (:mod:`strongroom.enclave.engine`) is the second wall: even a statement
that got past the guard could not read files, load extensions or change settings.
"""

from __future__ import annotations

import functools
import re

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import OptimizeError, ParseError, SqlglotError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokenizer_core import TokenType

from strongroom.enclave import amplifiers
from strongroom.enclave.amplifiers import MAX_TEXT
from strongroom.enclave.view import ProjectSchema
from strongroom.errors import Invalid

DIALECT = "duckdb"
MAX_SQL_CHARS = 100_000
# Beyond these, checking itself gets slow (sqlglot's scoping is quadratic in depth): refused.
MAX_NODES = 20_000
MAX_DEPTH = 200

# The shape of a query: what a SELECT with CTEs, joins, subqueries and set operations is made
# of. Everything else (PIVOT, UNNEST, LATERAL, VALUES, TABLESAMPLE, lambdas, parameters, struct
# access, COLUMNS(), time travel, …) is refused because it is not in this list.
ALLOWED_NODES: frozenset[type[exp.Expr]] = frozenset({
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.With, exp.CTE,
    exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Qualify, exp.Order, exp.Ordered,
    exp.Limit, exp.Offset, exp.Distinct, exp.Table, exp.TableAlias, exp.Alias, exp.Column,
    exp.Identifier, exp.Star, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Tuple,
    exp.Var, exp.Interval, exp.DataType, exp.DataTypeParam, exp.Window, exp.WindowSpec,
    exp.Filter, exp.Bracket, exp.Array,
    # operators: arithmetic, comparison, logic, pattern matching, concatenation
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
    exp.And, exp.Or, exp.Not, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.DPipe,
    exp.Any, exp.All,
})

# Functions sqlglot knows by class: plain scalar, aggregate and window functions. Nothing that
# reads files, settings or the environment, generates rows, or draws random numbers.
ALLOWED_FUNCTIONS: frozenset[type[exp.Func]] = frozenset({
    # conditionals and casts
    exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Cast, exp.TryCast,
    exp.Try, exp.Exists,
    # aggregates
    exp.Count, exp.CountIf, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Median, exp.Mode,
    exp.Stddev, exp.StddevSamp, exp.StddevPop, exp.Variance, exp.VariancePop,
    exp.PercentileCont, exp.PercentileDisc, exp.Quantile, exp.Corr, exp.CovarSamp,
    exp.LogicalAnd, exp.LogicalOr, exp.ArrayAgg, exp.ArgMin, exp.ArgMax,
    # window functions
    exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile,
    exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
    # dates
    exp.Year, exp.Quarter, exp.Month, exp.Week, exp.WeekOfYear, exp.Day, exp.DayOfWeek,
    exp.DayOfYear, exp.Extract, exp.DateDiff, exp.DateAdd, exp.DateSub, exp.TimestampTrunc,
    exp.DateTrunc, exp.DateFromParts, exp.LastDay, exp.CurrentDate, exp.TimeToStr,
    exp.StrToTime, exp.StrToDate,
    # strings
    exp.Upper, exp.Lower, exp.Length, exp.Substring, exp.Trim, exp.Concat, exp.ConcatWs,
    exp.Left, exp.Right, exp.Replace, exp.Contains, exp.StartsWith, exp.EndsWith,
    exp.StrPosition, exp.Pad, exp.RegexpLike, exp.RegexpExtract, exp.RegexpReplace, exp.Split,
    # maths
    exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Trunc, exp.Sign, exp.Sqrt, exp.Ln, exp.Log,
    exp.Exp, exp.Pow, exp.IsNan, exp.IsInf,
    # lists
    exp.ArrayContains, exp.ArraySize, exp.ArrayDistinct, exp.ArraySort,
    exp.ArrayToString, exp.ArrayOverlaps,
})

# DuckDB functions sqlglot does not model (it parses them as "anonymous"), by DuckDB name.
ALLOWED_NAMED_FUNCTIONS: frozenset[str] = frozenset({
    "mean", "date_part", "datepart", "isfinite", "isinf", "prefix", "suffix",
    "list_extract", "list_element", "array_extract", "list_position", "list_has_all",
    "try_strptime",
})

# First words of statements that are not queries, so a refusal can name them even when sqlglot
# cannot parse the rest (EXPORT DATABASE …).
_STATEMENTS = frozenset({
    "COPY", "ATTACH", "DETACH", "PRAGMA", "SET", "RESET", "INSTALL", "LOAD", "FORCE",
    "CREATE", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "TRUNCATE", "EXPORT", "IMPORT",
    "CALL", "VACUUM", "CHECKPOINT", "USE", "DESCRIBE", "SHOW", "SUMMARIZE", "BEGIN", "COMMIT",
    "ROLLBACK", "PREPARE", "EXECUTE", "DEALLOCATE", "PIVOT", "UNPIVOT", "MERGE", "UPSERT",
    "REPLACE", "EXPLAIN", "ANALYZE", "COMMENT", "GRANT", "REVOKE", "START", "END", "ABORT",
})

# Plain words for constructs a researcher may meet in a refusal.
_NAMES: dict[type[exp.Expr], str] = {
    exp.Placeholder: "query parameters ($1, ?)",
    exp.Lambda: "lambda functions (x -> …)",
    exp.Pivot: "PIVOT/UNPIVOT",
    exp.Unnest: "UNNEST",
    exp.Explode: "UNNEST",
    exp.Values: "VALUES lists",
    exp.TableSample: "TABLESAMPLE",
    exp.Lateral: "LATERAL",
    exp.Dot: "struct field access",
    exp.Struct: "struct literals",
    exp.Columns: "COLUMNS(…)",
    exp.HistoricalData: "time travel (AT …)",
    exp.Rollup: "ROLLUP",
    exp.Cube: "CUBE",
    exp.GroupingSets: "GROUPING SETS",
    exp.Into: "SELECT … INTO",
    exp.GenerateSeries: "range()/generate_series()",
    exp.TableColumn: "a whole table row as one value",
    exp.PositionalColumn: "positional columns (#1)",
    exp.Slice: "list slices",
    exp.PropertyEQ: "named arguments (a := …)",
}

_ALLOWED = ALLOWED_NODES | ALLOWED_FUNCTIONS

ALLOWED_SUMMARY = ("a single SELECT (WITH and UNION allowed) over the project's tables, using "
                   "the listed functions")


def check_select(sql: str, schema: ProjectSchema) -> exp.Query:
    """The checked, fully qualified query; refuses anything else with every reason found.

    A tree of its own each time (callers rewrite it): a copy of the one checked for that text
    and schema, the tables and columns in their order (a request's definition and analysis,
    and every project reading the same text over the same grant, check the same SQL; the
    check is a pure function of the two, and a copy costs a fraction of it). SQL refused is
    checked again each time. What the cache saves is a few milliseconds inside a definition's
    or an analysis's time floor, which is all a researcher sees of it."""
    key = tuple((table, tuple(columns.items())) for table, columns in schema.tables.items())
    return _checked(sql, key).copy()


@functools.lru_cache(maxsize=256)
def _checked(sql: str, key: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]) -> exp.Query:
    """:func:`check_select`'s tree for ``sql`` over the schema ``key`` spells out, never
    handed out itself (only copies of it)."""
    schema = ProjectSchema({table: dict(columns) for table, columns in key})
    tree = parse(sql)
    reasons = scan(tree, schema)
    # the work one row can cause, bounded from the text (enclave/amplifiers.py)
    reasons += [r for r in amplifiers.reasons(tree, schema.tables) if r not in reasons]
    if reasons:
        raise Invalid(reasons)
    name_outputs(tree)
    qualified = _qualify(tree, schema)
    # the qualified tree is checked again: qualification may read a name as a struct field
    reasons = (scan(qualified, schema) + _unresolved(qualified, schema)
               + _unqualified(qualified) + _bad_joins(qualified))
    if reasons:
        raise Invalid(reasons)
    return harden(_deterministic(qualified))


# -- one answer on every engine ---------------------------------------------------------------

# window functions whose answer depends on the order of rows that their ORDER BY ties
_TIE_SENSITIVE: tuple[type[exp.Expr], ...] = (
    exp.RowNumber, exp.Ntile, exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue)


def _deterministic(tree: exp.Query) -> exp.Query:
    """The checked tree rewritten so that rows its orderings tie cannot change its answer.

    SQL leaves the order of tied rows to the engine, and two engines (or two runs of one)
    take them in different orders: ``lag(x) OVER (ORDER BY date)`` over two rows of one date,
    ``arg_min(cause, date)`` over two causes of one date, an unordered ``list(x)``. Each is
    given one answer, the same on DuckDB and on Spark:

    - a list without ORDER BY is ordered by its values (one of the orders it could have had),
      and so is the list list_distinct gives;
    - ``arg_min(x, y)`` and ``arg_max(x, y)`` among rows of equal ``y`` take the least (for
      arg_max the greatest) ``x`` — rows with a NULL ``x`` or ``y`` are skipped, as DuckDB
      skips them;
    - a window function that picks rows by their order (row_number, ntile, lag, lead,
      first_value, last_value, nth_value, and any aggregate over a ROWS frame) has its ORDER
      BY completed with every column its SELECT reads (in a grouped SELECT, its grouping),
      so rows it still ties are alike in everything the query can see.

    ``last_value`` and ``nth_value`` over the default frame (whose end is the current row's
    last tie) are refused: they would name an arbitrary tied row."""
    for listed in list(tree.find_all(exp.ArrayAgg)):
        value = listed.this
        if not isinstance(value, (exp.Order, exp.Distinct)):
            listed.set("this", exp.Order(this=value.copy(), expressions=[
                exp.Ordered(this=value.copy(), nulls_first=False)]))
    for distinct in list(tree.find_all(exp.ArrayDistinct)):
        if not isinstance(distinct.parent, exp.ArraySort):
            distinct.replace(exp.ArraySort(this=distinct.copy()))
    for node in list(tree.find_all(exp.ArgMin, exp.ArgMax)):
        x, y = node.this, node.expression
        key = exp.Struct(expressions=[
            exp.PropertyEQ(this=exp.to_identifier("k"), expression=y.copy()),
            exp.PropertyEQ(this=exp.to_identifier("t"), expression=x.copy())])
        node.set("expression", exp.Case(ifs=[exp.If(
            this=exp.or_(exp.Is(this=y.copy(), expression=exp.Null()),
                         exp.Is(this=x.copy(), expression=exp.Null())),
            true=exp.Null())], default=key))
    for scope in traverse_scope(tree):
        keys = _tie_breakers(scope)
        for window in scope.expression.find_all(exp.Window):
            if window.find_ancestor(exp.Select) is not scope.expression:
                continue
            spec = window.args.get("spec")
            rows = spec is not None and str(spec.args.get("kind") or "").upper() == "ROWS"
            if isinstance(window.this, (exp.LastValue, exp.NthValue)) and not rows:
                name = "last_value" if isinstance(window.this, exp.LastValue) else "nth_value"
                raise Invalid(f"{name}() over the default frame names an arbitrary row among "
                              "the current row's ties, which differs between engines and runs: "
                              "give it a ROWS frame, e.g. OVER (PARTITION BY pid ORDER BY date "
                              "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
            if not keys or not (isinstance(window.this, _TIE_SENSITIVE) or rows):
                continue
            order = window.args.get("order")
            if order is None:
                order = exp.Order(expressions=[])
                window.set("order", order)
            present = {o.this.sql(DIALECT) for o in order.expressions}
            for text, column in keys:
                if text not in present:
                    order.append("expressions", exp.Ordered(this=column.copy(),
                                                            nulls_first=False))
    return tree


def _tie_breakers(scope: Scope) -> list[tuple[str, exp.Expr]]:
    """What tells a SELECT's rows apart: the columns it reads, or in a grouped SELECT its
    grouping (its rows are the groups), by their SQL."""
    select = scope.expression
    group = select.args.get("group") if isinstance(select, exp.Select) else None
    found: dict[str, exp.Expr]
    if group is not None:
        found = {e.sql(DIALECT): e for e in group.expressions}
    elif isinstance(select, exp.Select) and any(
            agg.find_ancestor(exp.Window, exp.Select) is select
            for agg in select.find_all(exp.AggFunc)):
        found = {}  # an aggregate without GROUP BY: one row
    else:
        found = {column.sql(DIALECT): column for column in scope.columns
                 if column.table and column.table in scope.sources}
    return sorted(found.items())


# -- no errors from data ----------------------------------------------------------------------

# What is never wrapped in TRY (DuckDB refuses TRY around aggregates, window functions and
# subqueries) and what needs no wrapping (it cannot fail on any value).
_UNWRAPPABLE: tuple[type[exp.Expr], ...] = (exp.AggFunc, exp.Window, exp.Query, exp.Subquery)
_INERT: tuple[type[exp.Expr], ...] = (
    exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Star, exp.Identifier, exp.DataType,
    exp.Var, exp.Alias, exp.Ordered, exp.Distinct, exp.Tuple, exp.Interval, exp.Try,
    exp.DataTypeParam)


def harden(tree: exp.Query) -> exp.Query:
    """The checked tree rewritten so that no participant's value can make it fail.

    A query that fails on some rows and not on others answers a yes/no question about the
    data (``CAST(code AS INT)`` fails if anyone's code is not a number; ``x // 0`` under a
    ``CASE`` on one person). Every maximal computation that holds no aggregate, window or
    subquery is wrapped in DuckDB's ``TRY(…)``, which gives NULL where it would have failed;
    casts and ``strptime`` inside aggregates become their ``TRY_`` forms. Top-level ``AND``
    terms are wrapped one by one and ``a.pid = b.pid`` is left as it is, so joins keep their
    hash join. What can still fail (time and memory limits) is reported without naming a
    row, and every refusal is recorded and metered (:mod:`strongroom.enclave.service`).
    """
    chosen: list[exp.Expr] = []

    def prune(node: exp.Expr) -> bool:
        if _wraps(node):
            chosen.append(node)
            return True
        return False

    _cap_text(tree)
    _bare_conditions(tree)
    for _ in tree.walk(prune=prune):
        pass
    for node in chosen:  # moved into its TRY, not copied (copying cost a long query seconds)
        wrapper = exp.Try()
        node.replace(wrapper)
        wrapper.set("this", node)
    for cast in list(tree.find_all(exp.Cast)):
        if type(cast) is exp.Cast:
            cast.replace(exp.TryCast(**cast.args))
    for parse in tree.find_all(exp.StrToTime, exp.StrToDate):
        parse.set("safe", True)
    return tree


def _bare_conditions(tree: exp.Expr) -> None:
    """A column or literal standing alone as a condition (``WHERE code``, ``CASE WHEN code``,
    ``… AND NOT code``) is cast to BOOLEAN by DuckDB, which fails on text that is not a
    truth value; it becomes ``TRY_CAST(… AS BOOLEAN)`` (NULL there), as a written cast
    would."""
    spots = [node.this for node in tree.find_all(exp.Where, exp.Having, exp.If)]
    spots += [join.args.get("on") for join in tree.find_all(exp.Join)]
    while spots:
        spot = spots.pop()
        if isinstance(spot, (exp.And, exp.Or)):
            spots += [spot.this, spot.expression]
        elif isinstance(spot, (exp.Not, exp.Paren)):
            spots.append(spot.this)
        elif isinstance(spot, (exp.Column, exp.Literal)):
            spot.replace(exp.TryCast(this=spot.copy(), to=exp.DataType.build("BOOLEAN")))


# Text that functions build is cut at MAX_TEXT (enclave/amplifiers.py), so no value can make a
# query build a gigabyte string and fail on the memory limit instead of answering.
_TEXT_BUILDERS: tuple[type[exp.Expr], ...] = (
    exp.DPipe, exp.Concat, exp.ConcatWs, exp.Replace, exp.RegexpReplace, exp.Pad,
    exp.ArrayToString)
MAX_REPLACEMENT = 100  # characters in a literal replacement text


def _cap_text(tree: exp.Expr) -> None:
    """Every built text cut at MAX_TEXT and every pad length at most MAX_TEXT, innermost
    first, so that no level of nesting can grow past it."""
    limit = exp.Literal.number(MAX_TEXT)
    for node in reversed(list(tree.find_all(*_TEXT_BUILDERS))):
        if isinstance(node, exp.Pad):
            node.set("expression", exp.Least(this=node.args["expression"].copy(),
                                             expressions=[limit.copy()]))
        node.replace(exp.Left(this=node.copy(), expression=limit.copy()))


def _replacement_reason(node: exp.Expr) -> str | None:
    if not isinstance(node, exp.Replace | exp.RegexpReplace):
        return None
    replacement = node.args.get("replacement")
    if (isinstance(replacement, exp.Literal) and replacement.is_string
            and len(replacement.this) <= MAX_REPLACEMENT):
        return None
    return (f"the replacement in replace()/regexp_replace() must be text of at most "
            f"{MAX_REPLACEMENT} characters written in the query")


def _wraps(node: exp.Expr) -> bool:
    if isinstance(node, (*_INERT, *_UNWRAPPABLE, exp.And)) or isinstance(node.parent, exp.Try):
        return False
    if isinstance(node.parent, exp.Window) and node.arg_key == "this":
        return False  # the window function itself: TRY(rank()) OVER … is not SQL
    if isinstance(node, exp.Anonymous) and node.name.lower() in ("mean",):
        return False  # an aggregate sqlglot does not know by class
    if not isinstance(node, exp.Func | exp.Binary | exp.Unary | exp.Predicate | exp.Bracket):
        return False
    if _pid_equality(node.unnest()):
        return False  # (a.pid = b.pid) too: the join keeps its condition, and its hash join
    return not any(isinstance(n, _UNWRAPPABLE) or (isinstance(n, exp.Anonymous)
                                                     and n.name.lower() == "mean")
                   for n in node.walk())


def _pid_equality(node: exp.Expr) -> bool:
    """``a.pid = b.pid`` (a join) or ``COALESCE(a.pid, b.pid)`` (JOIN … USING): kept bare."""
    parts = ([node.left, node.right] if isinstance(node, exp.EQ)
             else [node.this, *node.expressions] if isinstance(node, exp.Coalesce) else [])
    return bool(parts) and all(isinstance(p, exp.Column) and p.name == "pid" for p in parts)


def plain_sql(node: exp.Expr) -> str:
    """A checked node as SQL without the TRY(…) the guard added, for reasons a researcher reads."""
    bare = node.copy().transform(lambda n: n.this if isinstance(n, exp.Try) else n)
    return str(bare.sql(DIALECT))


# -- parsing ------------------------------------------------------------------------------


def parse(sql: str) -> exp.Query:
    """Exactly one SELECT statement, parsed; other statements are refused by name. A tree of
    its own each time (callers qualify and rewrite it): a copy of the one parsed for that text
    (a request's definition, its analysis and the names of its output parse the same SQL a
    dozen times; a copy costs a seventh of a parse). SQL refused is parsed again each time."""
    tree = _parsed(sql).copy()
    assert isinstance(tree, exp.Select | exp.SetOperation)
    return tree


def shared(sql: str) -> exp.Query:
    """:func:`parse`'s tree for ``sql`` without a copy, shared with every other caller: for
    readers that only look at it (the names and codes of an output's columns, read each time
    an output is listed, for each of its project's definitions). Never change it."""
    tree = _parsed(sql)
    assert isinstance(tree, exp.Select | exp.SetOperation)
    return tree


@functools.lru_cache(maxsize=512)
def _parsed(sql: str) -> exp.Query:
    """:func:`parse`'s tree for ``sql``, never handed out itself (only copies of it)."""
    if not sql.strip():
        raise Invalid("the SQL is empty; write one SELECT over the project's tables")
    if len(sql) > MAX_SQL_CHARS:
        raise Invalid(f"the SQL is longer than {MAX_SQL_CHARS:,} characters; split it into "
                      "definitions that build on each other")
    try:
        firsts = _first_words(sql)
    except TokenError as exc:
        raise Invalid(f"the SQL could not be read: {_parse_message(exc)}") from None
    refused = [w for w in firsts if w in _STATEMENTS]
    if refused:
        raise Invalid(_statement_reason(refused[0]))
    try:
        statements = [s for s in Dialect.get_or_raise(DIALECT).parse(sql) if s is not None]
    except (ParseError, TokenError) as exc:
        raise Invalid(f"the SQL could not be parsed: {_parse_message(exc)}") from None
    except RecursionError:
        raise Invalid("the SQL is nested too deeply to check; simplify it") from None
    if len(statements) != 1 or len(firsts) > 1:
        raise Invalid("exactly one statement is allowed (no ';' between statements): "
                      + ALLOWED_SUMMARY)
    tree = statements[0]
    _check_size(tree)
    if not isinstance(tree, exp.Select | exp.SetOperation):
        word = tree.name.upper() if isinstance(tree, exp.Command) else tree.key.upper()
        raise Invalid(_statement_reason(word))
    return tree


def _check_size(tree: exp.Expr) -> None:
    """Refuse trees too big or too deep to check quickly (iteratively: no recursion limit)."""
    nodes, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise Invalid(f"the SQL is too large or too deeply nested to check (at most "
                          f"{MAX_NODES:,} parts, nested {MAX_DEPTH} deep); split it into "
                          "definitions that build on each other")
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def _first_words(sql: str) -> list[str]:
    """The first word of each non-empty statement, upper-cased, comments skipped."""
    tokens = Dialect.get_or_raise(DIALECT).tokenize(sql)
    firsts: list[str] = []
    start = True
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            start = True
        elif start:
            firsts.append(token.text.upper())
            start = False
    return firsts


def _statement_reason(word: str) -> str:
    return f"{word} statements are not allowed: only {ALLOWED_SUMMARY}"


def _parse_message(exc: SqlglotError) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        first = errors[0]
        return f"{first.get('description')} at line {first.get('line')}, column {first.get('col')}"
    return str(exc).splitlines()[0]


# -- the walk -------------------------------------------------------------------------------


def scan(tree: exp.Expr, schema: ProjectSchema) -> list[str]:
    """Every reason to refuse the parsed tree before qualification, each named once."""
    reasons: list[str] = []
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for node in tree.walk():
        reason = _node_reason(node, schema, ctes)
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons


def _node_reason(node: exp.Expr, schema: ProjectSchema, ctes: set[str]) -> str | None:
    if isinstance(node, exp.Identifier) and node.name.lower() == "eid":
        return ("the master participant ID (eid) does not exist in the enclave; "
                "participants are identified by the project's pseudonym, pid")
    if isinstance(node, exp.Anonymous):
        return _anonymous_reason(node)
    if type(node) not in _ALLOWED:
        if isinstance(node, exp.Func):
            return _function_reason(node)
        what = _NAMES.get(type(node), f"the construct {node.key.upper()}")
        return f"not allowed: {what}; only {ALLOWED_SUMMARY}"
    if isinstance(node, exp.With) and node.args.get("recursive"):
        return ("WITH RECURSIVE is not allowed (a recursive query can run without bound); "
                "use ordinary CTEs")
    if isinstance(node, exp.Table):
        return _table_reason(node, schema, ctes)
    if isinstance(node, exp.Column) and (node.args.get("db") or node.args.get("catalog")):
        return (f"{node.sql(DIALECT)} has too many parts: name a column as column or "
                "table.column")
    if isinstance(node, exp.Join):
        return _join_shape_reason(node)
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.USERDEFINED:
        return f"the type {node.sql(DIALECT)} is not a DuckDB type"
    return _window_argument_reason(node) or _replacement_reason(node)


# window functions whose count or offset argument fails on some values (ntile(0)); DuckDB's
# TRY cannot wrap a window function, so the argument must be a number written in the query
_WINDOW_COUNTS: dict[type[exp.Expr], str] = {exp.Ntile: "this", exp.NthValue: "offset",
                                             exp.Lag: "offset", exp.Lead: "offset"}


def _window_argument_reason(node: exp.Expr) -> str | None:
    key = _WINDOW_COUNTS.get(type(node))
    argument = node.args.get(key) if key else None
    if argument is None or (isinstance(argument, exp.Literal) and argument.is_number
                            and float(argument.this) >= 1):
        return None
    name = node.sql_name().lower() if isinstance(node, exp.Func) else node.key
    return (f"the count or offset of {name}() must be a whole number of at least 1 written "
            "in the query, not computed from the data (a value that makes it fail would "
            "answer a question about the data)")


def _anonymous_reason(node: exp.Anonymous) -> str | None:
    name = node.name.lower()
    if isinstance(node.parent, exp.Table):
        return _table_function_reason(name)
    if name in ALLOWED_NAMED_FUNCTIONS:
        return None
    return (f"the function {name}() is not allowed: use plain arithmetic, comparison, CASE, "
            "CAST, date, string, maths, list, aggregate and window functions")


def _function_reason(node: exp.Func) -> str:
    name = _spelling(node)
    if isinstance(node.parent, exp.Table):
        return _table_function_reason(name)
    return (f"the function {name}() is not allowed: use plain arithmetic, comparison, CASE, "
            "CAST, date, string, maths, list, aggregate and window functions")


def _spelling(node: exp.Func) -> str:
    """How DuckDB spells a function sqlglot knows by class (``unnest``, not ``explode``)."""
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\(", node.sql(DIALECT))
    return (match[1] if match else node.sql_name()).lower()


def _table_function_reason(name: str) -> str:
    return (f"table functions such as {name}() are not allowed (no files, catalogs or "
            "generated rows): select from the project's tables")


def _table_reason(node: exp.Table, schema: ProjectSchema, ctes: set[str]) -> str | None:
    if not isinstance(node.this, exp.Identifier):
        return None  # a table function: its own node is refused
    name = node.name
    if node.args.get("db") or node.args.get("catalog"):
        return (f"{node.sql(DIALECT)} names a schema or database: use the project's table "
                "names alone")
    extra = [k for k, v in node.args.items() if v and k not in ("this", "alias", "db", "catalog")]
    if extra:
        return f"table options ({', '.join(extra)}) on {name} are not allowed"
    if any(ch in name for ch in "/\\.:~*?"):
        return (f"{name!r} looks like a file path or URL: files and URLs cannot be read; "
                "select from the project's tables")
    if name.lower() in schema.tables or name.lower() in ctes:
        return None
    return (f"there is no table {name!r} in this project: its tables are "
            f"{', '.join(sorted(schema.tables))} (and the query's own CTEs)")


def _join_shape_reason(node: exp.Join) -> str | None:
    method = (node.args.get("method") or "").upper()
    kind = (node.args.get("kind") or "").upper()
    if method:
        return (f"{method} JOIN is not allowed: join with JOIN … ON a = b (or USING) on "
                "matching columns")
    if kind == "CROSS" or not (node.args.get("on") or node.args.get("using")):
        return ("cross joins (CROSS JOIN, or tables listed with commas) are not allowed: "
                "they multiply rows without bound; join with JOIN … ON a = b")
    return None


# -- after qualification --------------------------------------------------------------------


def name_outputs(tree: exp.Expr) -> None:
    """Give unnamed output expressions their SQL text as name (rather than ``_col_1``)."""
    select: exp.Expr = tree
    while isinstance(select, exp.SetOperation):
        select = select.left
    if not isinstance(select, exp.Select):
        return
    for projection in list(select.expressions):
        if not isinstance(projection, exp.Alias | exp.Column | exp.Star):
            projection.replace(exp.alias_(projection.copy(), projection.sql(DIALECT),
                                          quoted=True))


def _qualify(tree: exp.Query, schema: ProjectSchema) -> exp.Query:
    try:
        qualified = qualify(tree, schema=dict(schema.tables), dialect=DIALECT,
                            validate_qualify_columns=True, quote_identifiers=True,
                            identify=True)
    except OptimizeError as exc:
        message = str(exc).split(". Line:")[0]
        raise Invalid(f"{message}: only the project's granted columns can be used "
                      "(see the project's schema)") from None
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError,
            RecursionError) as exc:
        raise Invalid(f"the SQL could not be checked ({type(exc).__name__}); simplify it") from None
    assert isinstance(qualified, exp.Select | exp.SetOperation)
    return qualified


def _unresolved(tree: exp.Query, schema: ProjectSchema) -> list[str]:
    """Columns that do not resolve to a granted column of a source in scope (fail closed)."""
    reasons: list[str] = []
    for scope in traverse_scope(tree):
        for column in scope.columns:
            source = _source(scope, column.table)
            if isinstance(source, exp.Table) and source.name.lower() in schema.tables:
                ok = schema.has(source.name.lower(), column.name)
            else:
                ok = source is not None
            if not ok:
                reasons.append(f"the column {column.sql(DIALECT)} is not one the project may "
                               "read")
    return reasons


def _unqualified(tree: exp.Query) -> list[str]:
    """Names left without a table after qualification (a whole row, a struct): only an
    ORDER BY may name an output column that way."""
    reasons: list[str] = []
    for column in tree.find_all(exp.Column):
        if column.table:
            continue
        select = column.find_ancestor(exp.Select)
        in_order = column.find_ancestor(exp.Order) is not None
        if not (in_order and select is not None and column.name in select.named_selects):
            reasons.append(f"{column.sql(DIALECT)} is not a column of the project's tables "
                           "(whole rows cannot be selected as one value)")
    return reasons


def _source(scope: Scope, table: str) -> exp.Table | Scope | None:
    current: Scope | None = scope
    while current is not None:
        found = current.sources.get(table)
        if found is not None:
            return found
        current = current.parent
    return None


def _bad_joins(tree: exp.Query) -> list[str]:
    reasons: list[str] = []
    for join in tree.find_all(exp.Join):
        if not _has_equality(join):
            reasons.append(
                f"the join of {join.this.alias_or_name} has no equality between its columns "
                "and another table's (a cross join in disguise): join with ON a.x = b.x")
    return reasons


def _has_equality(join: exp.Join) -> bool:
    """Whether the ON condition's top-level AND holds ``joined.x = other.y``."""
    joined = join.this.alias_or_name
    on = join.args.get("on")
    if on is None:
        return False
    for conjunct in conjuncts(on):
        if isinstance(conjunct, exp.Try):  # the guard's own wrapping (harden)
            conjunct = conjunct.this
        if not isinstance(conjunct, exp.EQ):
            continue
        left = {c.table for c in conjunct.left.find_all(exp.Column)}
        right = {c.table for c in conjunct.right.find_all(exp.Column)}
        if left and right and ((joined in left) != (joined in right)):
            return True
    return False


def conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The terms of a top-level AND, parentheses removed."""
    condition = condition.unnest()
    if isinstance(condition, exp.And):
        return conjuncts(condition.left) + conjuncts(condition.right)
    return [condition]


def referenced_columns(tree: exp.Query) -> dict[str, set[str]]:
    """The project tables a checked query reads, each with the columns it reads from them."""
    used: dict[str, set[str]] = {}
    for scope in traverse_scope(tree):
        for source in scope.sources.values():
            if isinstance(source, exp.Table):
                used.setdefault(source.name.lower(), set())
        for column in scope.columns:
            origin = _source(scope, column.table)
            if isinstance(origin, exp.Table):
                used.setdefault(origin.name.lower(), set()).add(column.name)
    return used
