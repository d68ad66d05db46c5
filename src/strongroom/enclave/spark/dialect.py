"""Researchers' SQL on Spark: the guarded DuckDB tree, written as Spark SQL and checked again.

Researchers write one dialect (DuckDB's) whichever engine runs it. The guard
(:mod:`strongroom.enclave.sqlguard`) checks the DuckDB tree; sqlglot then writes that tree as
Spark SQL. The translation is checked too, before Spark sees it: it is parsed back as Spark SQL
and every function in it must be one the guard lists (by sqlglot's class) or one of a few
Spark functions by name that the translation is known to produce with the same meaning. What
else appears (a DuckDB function Spark lacks, kept by name; an approximate percentile standing
in for an exact one) is refused with its name, so no query gives a different answer on Spark
than on DuckDB, and no name can reach Spark's own functions that call Java (``reflect``,
``java_method``), which Spark SQL would otherwise run. Before that, constructs whose meaning
differs between the engines (found by running the same expressions on both) are written out
with DuckDB's meaning, or refused by name where they cannot be (:data:`_REWRITES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from strongroom.enclave.sqlguard import ALLOWED_FUNCTIONS, ALLOWED_NODES
from strongroom.errors import Invalid

SPARK = "spark"

# Classes the Spark generator writes for listed DuckDB functions, with the same meaning.
_TRANSLATED: frozenset[type[exp.Func]] = frozenset({
    exp.RegexpSplit,  # string_split
    exp.StrToUnix,  # epoch
    exp.TimeStrToTime, exp.TsOrDsToDate, exp.TsOrDsAdd, exp.UnixToTime,
    exp.First, exp.Last, exp.ArrayAgg, exp.CurrentTimestamp, exp.DateStrToDate,
    exp.TimeStrToUnix,
    exp.SafeAdd, exp.SafeSubtract, exp.SafeMultiply,  # whole numbers' overflow as NULL
    exp.ArrayPosition, exp.ArrayExcept, exp.ArrayCompact, exp.Struct, exp.Reverse,
    exp.ArrayConcat, exp.Translate, exp.TimestampFromParts, exp.RegexpExtract, exp.Floor,
    exp.Transform,
})
# Functions Spark knows by these names, produced by translating listed DuckDB functions.
_NAMED: frozenset[str] = frozenset({"MEAN", "DATE_PART", "MAKE_DATE", "BROUND",
                                    "ARRAYS_OVERLAP", "ARRAY_REPEAT"})


def spark_sql(query: exp.Query, types: Mapping[str, str] | None = None) -> str:
    """The checked query as Spark SQL; refused if the translation holds anything unlisted.

    ``types``: the kind of each column the query may read (``float``, ``int``, ``string``,
    ``date``, ``bool``, ``other``; a name two tables give different kinds is ``other``), for
    the rewrites whose meaning depends on it (:func:`_kind`).

    Where Spark's meaning differs, the DuckDB meaning is written out (:data:`_REWRITES`), or
    the construct is refused by name where it cannot be: the rules were found by running
    the same expressions on both engines (tests/integration/test_engine_conformance.py).

    The guard's ``TRY(…)`` wrappers (:func:`~strongroom.enclave.sqlguard.harden`: no value
    may make a query fail) are dropped: Spark has no such function, and the session runs
    with ANSI mode off (:mod:`.cluster`), where a failed cast, a division by zero or an index
    out of range gives NULL, as under TRY."""
    query = query.copy()
    kinds = dict(types or {})
    nodes = list(reversed(list(query.walk(bfs=False))))  # a node's children before it
    for node in nodes:  # what DuckDB makes of each, read before anything is rewritten
        node.meta[_KIND] = _kind(node, kinds)
    for node in nodes:
        if isinstance(node, exp.Try):
            node.replace(node.this)
            continue
        rewrite = _REWRITES.get(type(node))
        if rewrite is not None:
            replaced = rewrite(node, kinds)
            if replaced is not node:
                replaced.meta[_KIND] = node.meta[_KIND]
                if node.meta.get(_FILTERED):
                    replaced.meta[_FILTERED] = True
                node.replace(replaced)
    try:
        text = query.sql(dialect=SPARK, unsupported_level=sqlglot.ErrorLevel.RAISE)
        again = sqlglot.parse_one(text, read=SPARK)
    except SqlglotError as exc:
        raise Invalid(f"the query cannot be written as Spark SQL ({_first(exc)}); "
                      "the Spark engine runs it only once it can") from None
    for node in again.walk():
        if not isinstance(node, exp.Func) or type(node) in ALLOWED_NODES:  # operators
            continue
        if isinstance(node, exp.Anonymous):
            if node.name.upper() not in _NAMED:
                raise Invalid(f"{node.name.lower()}() has no equivalent on the Spark engine; "
                              "write it with the functions listed in the reference")
        elif type(node) not in ALLOWED_FUNCTIONS and type(node) not in _TRANSLATED:
            raise Invalid(f"{node.sql(dialect=SPARK)[:60]!r} would run on Spark as "
                          f"{type(node).__name__}, which does not give DuckDB's answer; "
                          "write it another way (e.g. quantile_cont for percentiles)")
    return text


def _spark(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read=SPARK)


def _sql(node: exp.Expr | None) -> str:
    assert node is not None
    return node.sql(dialect=SPARK)


def _whole(node: exp.Expr | None) -> int | None:
    """A whole-number literal's value (a negative one too), else None."""
    if isinstance(node, exp.Neg):
        inner = _whole(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and node.is_int:
        return int(node.name)
    return None


def _substring(node: exp.Substring, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's start 0 or below counts positions before the first character; Spark's 0 is
    its 1. Only a start of 1 or more, and a length of 0 or more, are the same on both."""
    start, length = _whole(node.args.get("start")), node.args.get("length")
    if start is None or start < 1 or (length is not None and (_whole(length) or 0) < 0):
        raise Invalid("substring(s, start, length) runs on the Spark engine with start a whole "
                      "number from 1 and length one from 0 (a negative or computed start "
                      "means something else there)")
    if length is not None and _whole(length) is None:
        raise Invalid("substring(s, start, length) runs on the Spark engine with length a "
                      "whole number (a computed one may be negative, which differs there)")
    return node


def _left_right(node: exp.Left | exp.Right, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's left(s, -n) is all but the last n characters; Spark's is ''."""
    count = _whole(node.expression)
    if count is None or count < 0:
        raise Invalid(f"{type(node).__name__.lower()}(s, n) runs on the Spark engine with n a "
                      "whole number from 0")
    return node


def _like(node: exp.Like | exp.ILike, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's LIKE has no escape character; Spark's escapes with a backslash unless told
    otherwise. The pattern is given an escape character it does not hold, so every
    character in it means what it means on DuckDB."""
    if isinstance(node.parent, exp.Escape):
        return node  # the researcher named one: it means the same on both
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise Invalid("LIKE runs on the Spark engine with a pattern written in the query "
                      "(a computed pattern's backslashes would mean something else there)")
    free = next(c for c in "!#~^|@`$&" + "".join(map(chr, range(0x2400, 0x2500)))
                if c not in pattern.name)
    return exp.Escape(this=node.copy(), expression=exp.Literal.string(free))


def _logarithm(node: exp.Ln | exp.Log, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's log(x) is base 10 (Spark's is e); of 0 it is -inf and of a negative NaN
    (Spark's: NULL)."""
    if isinstance(node, exp.Ln):
        value, call = node.this, "LN({x})"
    elif node.args.get("expression") is None:
        value, call = node.this, "LOG10({x})"
    else:
        base = _sql(node.this)
        value, call = node.expression, f"LOG(CAST(({base}) AS DOUBLE), {{x}})"
    x = f"CAST(({_sql(value)}) AS DOUBLE)"
    return _spark(f"CASE WHEN {x} IS NULL THEN NULL WHEN ISNAN({x}) OR {x} < 0 THEN "
                  f"CAST('NaN' AS DOUBLE) WHEN {x} = 0 THEN CAST('-Infinity' AS DOUBLE) "
                  f"ELSE {call.format(x=x)} END")


# DuckDB's integer types and their ranges (a value outside is NULL under TRY_CAST and the
# guard's TRY; Spark with ANSI off wraps or saturates instead)
_T = exp.DataType.Type
_INTEGERS = {
    _T.TINYINT: (-(2**7), 2**7 - 1), _T.SMALLINT: (-(2**15), 2**15 - 1),
    _T.INT: (-(2**31), 2**31 - 1), _T.BIGINT: (-(2**63), 2**63 - 1),
    _T.UTINYINT: (0, 2**8 - 1), _T.USMALLINT: (0, 2**16 - 1), _T.UINT: (0, 2**32 - 1),
}
_TEXT = {_T.VARCHAR, _T.TEXT, _T.CHAR, _T.NVARCHAR}
# Spark has no unsigned types: each unsigned one in the next wider signed one
_SPARK_INTEGER = {_T.UTINYINT: "SMALLINT", _T.USMALLINT: "INT", _T.UINT: "BIGINT",
                  _T.TINYINT: "TINYINT", _T.SMALLINT: "SMALLINT", _T.INT: "INT",
                  _T.BIGINT: "BIGINT"}
_FLOAT_MAX = 3.4028234663852886e38  # a FLOAT beyond it is NULL on DuckDB, inf on Spark


def _cast(node: exp.Cast, kinds: Mapping[str, str]) -> exp.Expr:
    """To an integer DuckDB rounds: a double half to even (2.5 is 2), a decimal or numeric
    text half away from zero (2.5 is 3, '1e3' is 1000); Spark truncates. And DuckDB writes a
    double as text its own way ('10000000000.0', '1e-09'; Spark '1.0E10'), so a number that
    may be fractional is not cast to text on Spark. Where the operand's kind is not known
    from the query, the cast is refused."""
    target = node.to.this
    kind = _kind(node.this, kinds)
    if target in _INTEGERS:
        if kind not in ("int", "float", "decimal", "string", "bool"):
            raise Invalid("CAST(… AS an integer type) runs on the Spark engine only where the "
                          "value's type follows from the query (a column, a literal, or "
                          "arithmetic on them): wrap it in CAST(… AS DOUBLE) first")
        low, high = _INTEGERS[target]
        value = _sql(node.this)
        if kind == "bool":
            return node
        if kind == "int":  # out of the target's range: NULL, as DuckDB's TRY gives
            whole = f"({value})"
        elif kind == "float":  # a double's own value, ties to even (BROUND of a double is
            whole = f"BROUND(CAST(({value}) AS DOUBLE), 0)"  # exact at 0 places)
        else:  # decimal or numeric text: its digits, ties away from zero
            whole = f"ROUND(CAST(({value}) AS DECIMAL(38, 18)), 0)"
        spark_type = _SPARK_INTEGER.get(target, target.value)
        return _spark(f"CAST(CASE WHEN {whole} >= {low} AND {whole} < {high + 1} "
                      f"THEN {whole} END AS {spark_type})")
    if target == _T.FLOAT and kind in ("float", "decimal", "int"):
        x = f"CAST(({_sql(node.this)}) AS DOUBLE)"
        return _spark(f"CASE WHEN ABS({x}) > {_FLOAT_MAX} AND ABS({x}) < "
                      f"CAST('Infinity' AS DOUBLE) THEN NULL ELSE CAST({x} AS FLOAT) END")
    if target in _TEXT and kind in ("float", "decimal"):
        raise Invalid("CAST(… AS VARCHAR) of a number that may have a fraction runs "
                      "differently on the Spark engine (it writes 1.0E10 where DuckDB writes "
                      "10000000000.0): round it and cast to BIGINT first, or keep it a number")
    if target in _TEXT and kind not in ("int", "string", "date", "bool", "timestamp"):
        raise Invalid("CAST(… AS VARCHAR) runs on the Spark engine where the value's type "
                      "follows from the query (a column, a literal, a cast or a function's "
                      "result): cast it to its type first, e.g. CAST(CAST(v AS DATE) AS "
                      "VARCHAR)")
    return node


# what a function gives, whatever it is given
_INT_RESULTS = (exp.Year, exp.Quarter, exp.Month, exp.Week, exp.WeekOfYear, exp.Day,
                exp.DayOfWeek, exp.DayOfYear, exp.Length, exp.Count, exp.CountIf,
                exp.DateDiff, exp.StrPosition, exp.IntDiv, exp.Extract)
_LISTS = (exp.Array, exp.Split, exp.ArrayAgg, exp.ArrayDistinct, exp.ArraySort, exp.RegexpSplit)
_TIMESTAMP_RESULTS = (exp.StrToTime, exp.TimestampTrunc, exp.DateAdd, exp.DateSub)
_DATE_RESULTS = (exp.CurrentDate, exp.DateFromParts, exp.LastDay, exp.StrToDate)
_TEXT_RESULTS = (exp.Upper, exp.Lower, exp.Substring, exp.Trim, exp.Concat, exp.ConcatWs,
                 exp.Left, exp.Right, exp.Replace, exp.TimeToStr, exp.Pad, exp.DPipe)
_FLOAT_RESULTS = (exp.Avg, exp.Stddev, exp.StddevSamp, exp.StddevPop, exp.Variance,
                  exp.VariancePop, exp.Corr, exp.CovarSamp, exp.Sqrt, exp.Ln, exp.Log, exp.Exp,
                  exp.Pow, exp.Median, exp.Quantile, exp.PercentileCont)
# what a function gives: the kind of its first argument
_SAME_RESULTS = (exp.Paren, exp.Neg, exp.Round, exp.Floor, exp.Ceil, exp.Abs, exp.Trunc,
                 exp.Sum, exp.Min, exp.Max, exp.Try)
_CAST_KINDS = {**dict.fromkeys(_INTEGERS, "int"), **dict.fromkeys(_TEXT, "string"),
               _T.DATE: "date", _T.DOUBLE: "float", _T.FLOAT: "float", _T.DECIMAL: "decimal",
               _T.BOOLEAN: "bool", _T.TIMESTAMP: "timestamp", _T.TIMESTAMPNTZ: "timestamp"}


def _kind(node: exp.Expr | None, kinds: Mapping[str, str]) -> str:
    """What DuckDB would make of ``node``: int, float (a double), decimal, string, date,
    timestamp, bool, list, or other (not known from the query alone)."""
    if node is not None and _KIND in node.meta:
        return str(node.meta[_KIND])
    if isinstance(node, exp.Column):
        return kinds.get(node.name, "other")
    if isinstance(node, exp.Literal):
        return "string" if node.is_string else "int" if node.is_int else "decimal"
    if isinstance(node, exp.Cast):
        return _CAST_KINDS.get(node.to.this, "other")
    if isinstance(node, _INT_RESULTS):
        return "int"
    if isinstance(node, _DATE_RESULTS):
        return "date"
    if isinstance(node, _LISTS):
        return "list"
    if isinstance(node, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.IsNan,
                         exp.IsInf, exp.StartsWith, exp.EndsWith, exp.Contains)):
        return "bool"
    if isinstance(node, _TIMESTAMP_RESULTS) or (
            isinstance(node, (exp.Add, exp.Sub)) and _has_interval(node)):
        return "timestamp"
    if isinstance(node, _TEXT_RESULTS):
        return "string"
    if isinstance(node, _FLOAT_RESULTS):
        return "float"
    if isinstance(node, _SAME_RESULTS):
        return _kind(node.this, kinds)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        both = {_kind(node.this, kinds), _kind(node.expression, kinds)}
        for kind in ("other", "string", "date", "bool", "float", "decimal"):
            if kind in both:
                return "other" if kind in ("string", "date", "bool") else kind
        return "int"
    if isinstance(node, exp.Div):
        both = {_kind(node.this, kinds), _kind(node.expression, kinds)}
        return "float" if both <= {"int", "float"} else "other"
    if isinstance(node, (exp.Coalesce, exp.Greatest, exp.Least, exp.Case, exp.If)):
        found = _branch_kinds(node, kinds)
        if len(found) == 1:
            return found.pop()
        return "float" if found == {"int", "float"} else "decimal" if found == {
            "int", "decimal"} else "other"
    return "other"


def _branch_kinds(node: exp.Expr, kinds: Mapping[str, str]) -> set[str]:
    """The kinds of the values a CASE, IF, coalesce, greatest or least can give (NULLs
    aside)."""
    if isinstance(node, (exp.Case, exp.If)):
        values = [*(i.args.get("true") for i in node.args.get("ifs") or []),
                  node.args.get("true"), node.args.get("default")]
    else:
        values = [node.this, *node.expressions]
    return {_kind(v, kinds) for v in values if v is not None and not isinstance(v, exp.Null)}


def _has_interval(node: exp.Expr) -> bool:
    return any(side is not None and side.find(exp.Interval) is not None
               for side in (node.this, node.args.get("expression")))


_KIND = "strongroom_kind"


def _day_of_week(node: exp.DayOfWeek, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB counts Sunday as 0; Spark's dayofweek counts it as 1."""
    return _spark(f"(DAYOFWEEK({_sql(node.this)}) - 1)")


def _extract(node: exp.Extract, _: Mapping[str, str]) -> exp.Expr:
    unit = node.this.name.upper()
    if unit in ("DOW", "DAYOFWEEK"):
        return _spark(f"(DAYOFWEEK({_sql(node.expression)}) - 1)")
    if unit == "ISODOW":  # Monday 1 to Sunday 7
        return _spark(f"((DAYOFWEEK({_sql(node.expression)}) + 5) % 7 + 1)")
    if unit not in ("YEAR", "QUARTER", "MONTH", "DAY", "DOY", "DAYOFYEAR", "HOUR", "MINUTE"):
        raise Invalid(f"extract({unit.lower()} FROM …) has no equivalent on the Spark engine; "
                      "use year, quarter, month, day, dayofyear or dayofweek")
    return node


def _date_diff(node: exp.DateDiff, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's date_diff counts the boundaries crossed (months from January 31 to February
    1: 1); Spark's counts whole months (0). Days and weeks are the same on both."""
    unit = (node.unit.name if node.unit is not None else "DAY").upper().rstrip("S")
    later, earlier = _sql(node.this), _sql(node.expression)
    if unit in ("DAY", "WEEK"):  # DuckDB counts the days between the two dates
        days = f"DATEDIFF(CAST(({later}) AS DATE), CAST(({earlier}) AS DATE))"
        return _spark(days if unit == "DAY" else f"CAST(({days}) / 7 AS BIGINT)")  # toward 0
    years = f"(YEAR({later}) - YEAR({earlier}))"
    if unit == "YEAR":
        return _spark(years)
    if unit == "QUARTER":
        return _spark(f"({years} * 4 + QUARTER({later}) - QUARTER({earlier}))")
    if unit == "MONTH":
        return _spark(f"({years} * 12 + MONTH({later}) - MONTH({earlier}))")
    raise Invalid(f"date_diff('{unit.lower()}', …) has no equivalent on the Spark engine; "
                  "use day, week, month, quarter or year")


def _interval_arithmetic(node: exp.Expr, _: Mapping[str, str]) -> exp.Expr:
    """A date plus or minus an interval (or date_add) is a timestamp on DuckDB, a date on
    Spark."""
    if isinstance(node, (exp.DateAdd, exp.DateSub)) or _has_interval(node):
        return exp.Cast(this=exp.Paren(this=node.copy()),
                        to=exp.DataType.build("TIMESTAMP"))
    return node


# strftime's directives that Spark's date_format writes the same way
_FORMATS = {"%Y", "%m", "%d", "%H", "%M", "%S", "%y"}


def _strftime(node: exp.TimeToStr, _: Mapping[str, str]) -> exp.Expr:
    found = node.args.get("format")
    text = found.name if isinstance(found, exp.Literal) else None
    if text is None or any(d not in _FORMATS for d in re.findall(r"%.", text)) \
            or re.search(r"[A-Za-z']", re.sub(r"%.", "", text)):
        raise Invalid("strftime runs on the Spark engine with a format written in the query "
                      "of %Y, %y, %m, %d, %H, %M, %S and punctuation only")
    return node


def _is_nan(node: exp.IsNan, _: Mapping[str, str]) -> exp.Expr:
    """isnan(NULL) is NULL on DuckDB, false on Spark."""
    x = _sql(node.this)
    return _spark(f"CASE WHEN ({x}) IS NULL THEN NULL ELSE ISNAN({x}) END")


def _split(node: exp.Split, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's string_split splits on the separator's text; Spark's SPLIT on a Java regular
    expression. sqlglot quotes it as ``\\Q…\\E``, which a separator holding ``\\E`` ends
    early (a regex of the researcher's, or of a participant's value, run in the JVM). The
    separator is a literal here, each of its characters escaped for Java's regex alone, and
    the empty separator (characters on DuckDB, a trailing '' more on Spark) is refused."""
    separator = node.expression
    if not (isinstance(separator, exp.Literal) and separator.is_string and separator.name):
        raise Invalid("string_split runs on the Spark engine with a separator written in the "
                      "query, of one character or more")
    escaped = "".join(c if c.isalnum() and c.isascii() else "\\" + c
                      if c not in "\n\r" else {"\n": "\\n", "\r": "\\r"}[c]
                      for c in separator.name)
    pattern = exp.Literal.string(escaped)
    return exp.RegexpSplit(this=node.this, expression=pattern)


def _regex(node: exp.Expr, _: Mapping[str, str]) -> exp.Expr:
    raise Invalid(f"{type(node).__name__.replace('Regexp', 'regexp_').lower()}() does not run "
                  "on the Spark engine: its regular expressions are Java's, not DuckDB's RE2 "
                  "(other syntax, and a pattern can backtrack without end); use LIKE, "
                  "starts_with or contains")


def _whole_part(node: exp.Floor | exp.Ceil | exp.Trunc, _: Mapping[str, str]) -> exp.Expr:
    """Spark's FLOOR, CEIL and TRUNC of a double give a BIGINT (NaN is 0, 1e300 saturates);
    DuckDB's a double. A double of 2^52 or more is whole already."""
    if node.meta.get(_KIND) != "float" or node.args.get("decimals") is not None:
        return node
    x = f"CAST(({_sql(node.this)}) AS DOUBLE)"
    whole = {exp.Floor: f"FLOOR({x})", exp.Ceil: f"CEIL({x})",
             exp.Trunc: f"IF({x} < 0, CEIL({x}), FLOOR({x}))"}[type(node)]
    return _spark(f"CASE WHEN ISNAN({x}) OR ABS({x}) >= 4503599627370496.0 THEN {x} "
                  f"ELSE CAST({whole} AS DOUBLE) END")


def _sign(node: exp.Sign, _: Mapping[str, str]) -> exp.Expr:
    """sign(NaN) is 0 on DuckDB, NaN on Spark."""
    if node.meta.get(_KIND) not in ("float", "other"):
        return node
    x = _sql(node.this)
    return _spark(f"CASE WHEN ISNAN(CAST(({x}) AS DOUBLE)) THEN 0 ELSE SIGN({x}) END")


def _modulo(node: exp.Mod, kinds: Mapping[str, str]) -> exp.Expr:
    """A double modulo 0 is NaN on DuckDB, NULL on Spark."""
    if _kind(node.this, kinds) != "float" and _kind(node.expression, kinds) != "float":
        return node
    a, b = _sql(node.this), _sql(node.expression)
    return _spark(f"CASE WHEN CAST(({b}) AS DOUBLE) = 0 AND ({a}) IS NOT NULL "
                  f"THEN CAST('NaN' AS DOUBLE) ELSE ({a}) % ({b}) END")


_COMPARED = ("int", "float", "decimal", "date", "string", "bool", "timestamp")


def _comparison(node: exp.Expr, kinds: Mapping[str, str]) -> exp.Expr:
    """A text compared with a number or a date: DuckDB casts the text to the other's type (an
    error, so NULL, where it does not parse), Spark often the other way. Refused; cast one
    side explicitly. A FLOAT column against a decimal literal is refused too (DuckDB
    compares it as a FLOAT, Spark as a double)."""
    sides = [node.this, node.expression] if not isinstance(node, (exp.In, exp.Between)) else (
        [node.this, *node.expressions] if isinstance(node, exp.In)
        else [node.this, node.args.get("low"), node.args.get("high")])
    found = {_kind(side, kinds) for side in sides if side is not None
             and not isinstance(side, exp.Null)} & set(_COMPARED)
    if "string" in found and found - {"string"}:
        raise Invalid("a text compared with a number or a date means something else on the "
                      "Spark engine: cast one side, e.g. CAST(code AS INTEGER) = 12 or "
                      "d >= DATE '2020-01-01'")
    return node


def _mixed(node: exp.Expr, kinds: Mapping[str, str]) -> exp.Expr:
    """CASE, coalesce, greatest and least over text and a number (or a date): DuckDB makes
    the text the number (NULL where it does not parse), Spark the number text."""
    found = _branch_kinds(node, kinds)
    if "string" in found and found & {"int", "float", "decimal", "date"}:
        raise Invalid(f"{type(node).__name__.upper()} over text and numbers (or dates) gives "
                      "another type on the Spark engine: cast the values to one type")
    return node


def _concatenation(node: exp.Expr, kinds: Mapping[str, str]) -> exp.Expr:
    """A number joined to text is written as text its own way by each engine (1e+300 and
    1.0E300, nan and NaN)."""
    parts = [node.this, node.expression] if isinstance(node, exp.DPipe) else node.expressions
    if any(_kind(part, kinds) in ("float", "decimal") for part in parts):
        raise Invalid("a number that may have a fraction joined to text is written "
                      "differently on the Spark engine: round it and cast it to BIGINT first")
    return node


def _date_part(node: exp.Anonymous, _: Mapping[str, str]) -> exp.Expr:
    if node.name.upper() != "DATE_PART":
        return node
    part = node.expressions[0] if node.expressions else None
    unit = part.name.upper() if isinstance(part, exp.Literal) else ""
    value = _sql(node.expressions[1]) if len(node.expressions) > 1 else "NULL"
    if unit in ("DOW", "DAYOFWEEK"):
        return _spark(f"(DAYOFWEEK({value}) - 1)")
    if unit in ("YEAR", "QUARTER", "MONTH", "DAY", "DOY", "DAYOFYEAR"):
        return node
    raise Invalid(f"date_part('{unit.lower()}', …) has no equivalent on the Spark engine; use "
                  "year, quarter, month, day, dayofyear or dayofweek")


def _index(node: exp.Bracket, _: Mapping[str, str]) -> exp.Expr:
    """A list's index: 1-based on DuckDB, and a negative one counts from the end; sqlglot
    holds a literal one 0-based and writes it for Spark, which cannot count from the end."""
    found = [_whole(i) for i in node.expressions]
    if any(i is None or i < 0 for i in found):
        raise Invalid("a list is indexed on the Spark engine by a whole number from 1 written "
                      "in the query")
    return node


def _overflow(node: exp.Add | exp.Sub | exp.Mul, kinds: Mapping[str, str]) -> exp.Expr:
    """Whole numbers that overflow: NULL on DuckDB (its error, under the guard's TRY); Spark
    wraps round. Spark's try_add, try_subtract and try_multiply give NULL."""
    if isinstance(node, (exp.Add, exp.Sub)) and _has_interval(node):
        return _interval_arithmetic(node, kinds)
    if isinstance(node, exp.Sub) and _kind(node.this, kinds) == _kind(
            node.expression, kinds) == "date":  # days between, a whole number on DuckDB
        return _spark(f"DATEDIFF({_sql(node.this)}, {_sql(node.expression)})")
    if node.meta.get(_KIND) != "int":
        return node
    call = {exp.Add: "TRY_ADD", exp.Sub: "TRY_SUBTRACT", exp.Mul: "TRY_MULTIPLY"}[type(node)]
    return _spark(f"{call}({_sql(node.this)}, {_sql(node.expression)})")


def _negation(node: exp.Neg | exp.Abs, _: Mapping[str, str]) -> exp.Expr:
    """The negation (and the absolute value) of a whole number's least value overflows."""
    if node.meta.get(_KIND) != "int" or _whole(node) is not None:
        return node
    x = _sql(node.this)
    if isinstance(node, exp.Neg):
        return _spark(f"TRY_SUBTRACT(0, {x})")
    return _spark(f"IF(({x}) < 0, TRY_SUBTRACT(0, {x}), {x})")


def _round_places(node: exp.Round, _: Mapping[str, str]) -> exp.Expr:
    return _round(node) if node.args.get("decimals") is not None else node


def _division(node: exp.Div, _: Mapping[str, str]) -> exp.Expr:
    return _divide(node)


def _week(node: exp.Week, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's week is the ISO week, Spark's weekofyear."""
    return _spark(f"WEEKOFYEAR({_sql(node.this)})")


def _date_add(node: exp.DateAdd, kinds: Mapping[str, str]) -> exp.Expr:
    """date_add(d, INTERVAL …) is d + INTERVAL … on DuckDB; Spark's date_add takes days."""
    step = node.expression
    unit = node.args.get("unit")
    if isinstance(step, exp.Interval):
        return _interval_arithmetic(exp.Add(this=node.this.copy(), expression=step.copy()), kinds)
    if unit is not None and unit.name.upper() not in ("DAY", "DAYS"):
        return _interval_arithmetic(exp.Add(this=node.this.copy(), expression=exp.Interval(
            this=step.copy(), unit=exp.var(unit.name.upper()))), kinds)
    return _interval_arithmetic(node, kinds)


def _length(node: exp.Length, kinds: Mapping[str, str]) -> exp.Expr:
    """DuckDB's len of a list is its size (Spark's length takes text only)."""
    if _kind(node.this, kinds) == "list":
        return exp.ArraySize(this=node.this.copy())
    return node


def _percentile(node: exp.PercentileCont | exp.PercentileDisc | exp.Quantile,
                _: Mapping[str, str]) -> exp.Expr:
    """quantile_cont(x, p) is Spark's exact percentile(x, p); quantile_disc (and DuckDB's
    quantile) Spark's percentile_disc(p) WITHIN GROUP (ORDER BY x). One fraction written in
    the query, from 0 to 1."""
    name = {exp.PercentileCont: "quantile_cont", exp.PercentileDisc: "quantile_disc",
            exp.Quantile: "quantile"}[type(node)]
    fraction = node.expression if not isinstance(node, exp.Quantile) else node.args.get(
        "quantile")
    if not (isinstance(fraction, exp.Literal) and fraction.is_number
            and 0 <= float(fraction.name) <= 1):
        raise Invalid(f"{name}(x, p) runs on the Spark engine with p one fraction from 0 to 1 "
                      "written in the query (for several, one call each)")
    x = _sql(node.this)
    if isinstance(node, exp.PercentileCont):
        return _spark(f"PERCENTILE({x}, {fraction.name})")
    return exp.WithinGroup(
        this=exp.Anonymous(this="PERCENTILE_DISC", expressions=[fraction.copy()]),
        expression=exp.Order(expressions=[exp.Ordered(this=node.this.copy(),
                                                      nulls_first=False)]))


def _overlaps(node: exp.ArrayOverlaps, _: Mapping[str, str]) -> exp.Expr:
    """A NULL in a list matches nothing on DuckDB; Spark's arrays_overlap is NULL then."""
    a, b = _sql(node.this), _sql(node.expression)
    return _spark(f"CASE WHEN ({a}) IS NULL OR ({b}) IS NULL THEN NULL ELSE "
                  f"ARRAYS_OVERLAP(ARRAY_COMPACT({a}), ARRAY_COMPACT({b})) END")


def _contains(node: exp.ArrayContains, _: Mapping[str, str]) -> exp.Expr:
    """list_contains of a list holding a NULL: false on DuckDB where the value is not in it,
    NULL on Spark."""
    values, value = _sql(node.this), _sql(node.expression)
    return _spark(f"CASE WHEN ({values}) IS NULL OR ({value}) IS NULL THEN NULL ELSE "
                  f"ARRAY_CONTAINS(ARRAY_COMPACT({values}), {value}) END")


def _distinct(node: exp.ArrayDistinct, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's list_distinct drops NULLs (Spark's keeps one); the guard sorts its result."""
    return _spark(f"ARRAY_DISTINCT(ARRAY_COMPACT({_sql(node.this)}))")


def _make_date(node: exp.DateFromParts, kinds: Mapping[str, str]) -> exp.Expr:
    """Spark's make_date takes INTs: a BIGINT year would wrap round into one (2^62 is 0)."""
    for key in ("year", "month", "day"):
        part = node.args.get(key)
        if part is not None and _kind(part, kinds) == "int" and _whole(part) is None:
            node.set(key, _spark(f"CASE WHEN ({_sql(part)}) BETWEEN -2147483648 AND "
                                 f"2147483647 THEN CAST(({_sql(part)}) AS INT) END"))
    return node


def _is_inf(node: exp.IsInf, _: Mapping[str, str]) -> exp.Expr:
    x = f"CAST(({_sql(node.this)}) AS DOUBLE)"
    return _spark(f"CASE WHEN {x} IS NULL THEN NULL ELSE ABS({x}) = CAST('Infinity' AS DOUBLE) "
                  "END")


def _named(node: exp.Anonymous, kinds: Mapping[str, str]) -> exp.Expr:
    """DuckDB's functions sqlglot knows only by name, each written as Spark's equivalent or
    refused by name."""
    name = node.name.lower()
    args = node.expressions
    if name in ("date_part", "datepart"):
        return _date_part(exp.Anonymous(this="DATE_PART", expressions=[
            a.copy() for a in args]), kinds)
    if name == "isfinite":
        x = f"CAST(({_sql(args[0])}) AS DOUBLE)"
        return _spark(f"CASE WHEN {x} IS NULL THEN NULL ELSE NOT ISNAN({x}) AND "
                      f"ABS({x}) < CAST('Infinity' AS DOUBLE) END")
    if name in ("prefix", "suffix") and len(args) == 2:
        kind = exp.StartsWith if name == "prefix" else exp.EndsWith
        return kind(this=args[0].copy(), expression=args[1].copy())
    if name in ("list_extract", "list_element", "array_extract") and len(args) == 2:
        index = _whole(args[1])
        if index is None or index < 1 or _kind(args[0], kinds) not in ("list", "other"):
            raise Invalid(f"{name}(list, i) runs on the Spark engine on a list, with i a whole "
                          "number from 1 written in the query")
        return _spark(f"ELEMENT_AT({_sql(args[0])}, {index})")
    if name == "list_position" and len(args) == 2:
        return _spark(f"NULLIF(ARRAY_POSITION({_sql(args[0])}, {_sql(args[1])}), 0)")
    if name == "list_has_all" and len(args) == 2:
        a, b = _sql(args[0]), _sql(args[1])
        return _spark(f"CASE WHEN ({a}) IS NULL OR ({b}) IS NULL THEN NULL ELSE "
                      f"SIZE(ARRAY_EXCEPT(ARRAY_COMPACT({b}), {a})) = 0 END")
    if name == "try_strptime" and len(args) == 2:
        return _strptime(exp.StrToTime(this=args[0].copy(), format=args[1].copy(), safe=True),
                         kinds)
    return node


# strptime's numeric directives: DuckDB reads each as 1 to this many digits
_DIGITS = {"%Y": 4, "%y": 2, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2}


def _strptime(node: exp.StrToTime, _: Mapping[str, str]) -> exp.Expr:
    """strptime with a format of numeric directives and punctuation, read as DuckDB reads it:
    each directive 1 to 4 (%Y) or 2 digits, whitespace around the text skipped, a two-digit
    year (%y) 1969–2068. Spark's to_timestamp differs in each (yyyy needs four digits; yy
    is 2000–2099), so the digits are picked out and the time made from them."""
    found = node.args.get("format")
    text = found.name if isinstance(found, exp.Literal) and found.is_string else None
    parts = re.findall(r"%.|[^%]", text or "")
    directives = [p for p in parts if p.startswith("%")]
    if (text is None or any(d not in _DIGITS for d in directives)
            or len(set(directives)) != len(directives)
            or not ({"%Y", "%y"} & set(directives) and {"%m", "%d"} <= set(directives))
            or any(p.isalnum() or p in "\\^]" for p in parts if not p.startswith("%"))):
        raise Invalid("strptime runs on the Spark engine with a format written in the query "
                      "holding a year (%Y or %y), %m and %d, and %H, %M, %S and punctuation "
                      "only (e.g. '%d/%m/%Y')")
    pattern = "^\\s*" + "".join(f"([0-9]{{1,{_DIGITS[p]}}})" if p in _DIGITS else f"[{p}]"
                                for p in parts) + "\\s*$"
    value = _sql(node.this)

    def field(directive: str, default: str) -> str:
        if directive not in directives:
            return default
        group = directives.index(directive) + 1
        return (f"CAST(NULLIF(REGEXP_EXTRACT({value}, {_literal(pattern)}, {group}), '') "
                "AS INT)")

    year = field("%Y", "")
    if "%y" in directives:
        short = field("%y", "")
        year = f"(CASE WHEN {short} < 69 THEN 2000 ELSE 1900 END + {short})"
    second = field("%S", "0")
    return _spark(f"CASE WHEN {second} >= 60 THEN NULL ELSE MAKE_TIMESTAMP({year}, "
                  f"{field('%m', '1')}, {field('%d', '1')}, {field('%H', '0')}, "
                  f"{field('%M', '0')}, {second}) END")


def _str_to_date(node: exp.StrToDate, kinds: Mapping[str, str]) -> exp.Expr:
    found = node.args.get("format")
    parsed = _strptime(exp.StrToTime(this=node.this.copy(), safe=True,
                                     format=found.copy() if found is not None else None), kinds)
    return exp.Cast(this=parsed, to=exp.DataType.build("DATE"))


_FILTERED = "strongroom_filtered"


def _filtered(node: exp.Expr, value: str) -> str:
    """``value`` where the aggregate's FILTER (WHERE …) holds (the aggregate is written out
    with its condition inside, and the FILTER dropped: :func:`_filter`)."""
    if not isinstance(node.parent, exp.Filter):
        return value
    node.meta[_FILTERED] = True
    return f"CASE WHEN {_sql(node.parent.expression.this)} THEN {value} END"


def _filter(node: exp.Filter, _: Mapping[str, str]) -> exp.Expr:
    return node.this if node.this.meta.get(_FILTERED) else node


def _sum(node: exp.Sum, kinds: Mapping[str, str]) -> exp.Expr:
    """DuckDB sums whole numbers as a 38-digit number (HUGEINT), so nothing overflows on the
    way, arithmetic on the total is exact, and a total beyond BIGINT's range is NULL only
    when it leaves as a 64-bit number (engine.plain_types); Spark's BIGINT sum wraps round.
    Summed as DECIMAL(38, 0) on Spark, the total is DuckDB's."""
    inner = node.this
    distinct = isinstance(inner, exp.Distinct)
    if _kind(inner.expressions[0] if distinct else inner, kinds) != "int":
        return node
    value = _filtered(node, _sql(inner.expressions[0] if distinct else inner))
    return _spark(f"SUM({'DISTINCT ' if distinct else ''}CAST(({value}) AS DECIMAL(38, 0)))")


def _correlation(node: exp.Corr, _: Mapping[str, str]) -> exp.Expr:
    """corr of pairs with a constant side (or of one pair): NaN on DuckDB (0/0), NULL on
    Spark."""
    x, y = _filtered(node, _sql(node.this)), _filtered(node, _sql(node.expression))
    pairs = f"COUNT(CASE WHEN ({x}) IS NOT NULL AND ({y}) IS NOT NULL THEN 1 END)"
    return _spark(f"CASE WHEN {pairs} >= 1 AND CORR({x}, {y}) IS NULL THEN CAST('NaN' AS "
                  f"DOUBLE) ELSE CORR({x}, {y}) END")


def _list(node: exp.ArrayAgg, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB's list keeps NULLs and follows its ORDER BY; Spark's collect_list drops NULLs
    and keeps no order. A list ordered by its own value is written as the sorted values with
    the NULLs at the end (DuckDB's default), or at the start for NULLS FIRST; a list of no
    rows is NULL. The guard orders every list (sqlguard._deterministic)."""
    order = node.this
    if not (isinstance(order, exp.Order) and len(order.expressions) == 1
            and order.expressions[0].this == order.this):
        raise Invalid("list(x ORDER BY …) runs on the Spark engine ordered by the listed "
                      "value itself, list(x ORDER BY x) (by another value, its ties could "
                      "be listed in another order there)")
    value = _filtered(node, _sql(order.this))
    ordered = order.expressions[0]
    values = f"ARRAY_SORT(COLLECT_LIST({value}))"
    if ordered.args.get("desc"):
        values = f"REVERSE({values})"
    rows = _filtered(node, "1")
    nulls = f"ARRAY_REPEAT(NULL, CAST(COUNT({rows}) - COUNT({value}) AS INT))"
    parts = (nulls, values) if ordered.args.get("nulls_first") else (values, nulls)
    return _spark(f"CASE WHEN COUNT({rows}) = 0 THEN NULL ELSE CONCAT({parts[0]}, {parts[1]}) "
                  "END")


# Characters whose capital DuckDB writes as one character (its simple case mapping) and Java
# as several (its full mapping: ß is SS there, ﬁ is FI); found by running every character
# that either engine changes through both. Every other character's case is the same on both.
_UPPER_FROM = ("ßŉǰΐΰևẖẗẘẙẚὐὒὔὖᾀᾁᾂᾃᾄᾅᾆᾇᾈᾉᾊᾋᾌᾍᾎᾏᾐᾑᾒᾓᾔᾕᾖᾗᾘ"
    "ᾙᾚᾛᾜᾝᾞᾟᾠᾡᾢᾣᾤᾥᾦᾧᾨᾩᾪᾫᾬᾭᾮᾯᾲᾳᾴᾶᾷᾼῂῃῄῆῇῌῒΐῖῗῢ"
    "ΰῤῦῧῲῳῴῶῷῼﬀﬁﬂﬃﬄﬅﬆﬓﬔﬕﬖﬗ")
_UPPER_TO = ("ẞŉǰΐΰևẖẗẘẙẚὐὒὔὖᾈᾉᾊᾋᾌᾍᾎᾏᾈᾉᾊᾋᾌᾍᾎᾏᾘᾙᾚᾛᾜᾝᾞᾟᾘ"
    "ᾙᾚᾛᾜᾝᾞᾟᾨᾩᾪᾫᾬᾭᾮᾯᾨᾩᾪᾫᾬᾭᾮᾯᾲᾼᾴᾶᾷᾼῂῌῄῆῇῌῒΐῖῗῢ"
    "ΰῤῦῧῲῼῴῶῷῼﬀﬁﬂﬃﬄﬅﬆﬓﬔﬕﬖﬗ")
# stand-ins that no case mapping changes: the last code points of plane 16, private use
_STAND_INS = "".join(chr(0x10FFFD - i) for i in range(len(_UPPER_FROM)))


def _case(node: exp.Upper | exp.Lower, _: Mapping[str, str]) -> exp.Expr:
    """DuckDB maps each character alone; Java (Spark) maps some to several, and a final Σ to
    ς: the characters that differ are set aside before Spark's upper (or written as DuckDB's
    lower first: Σ as σ, İ as i) and given DuckDB's mapping after. A text holding one of
    the stand-ins (private-use characters at the end of plane 16) would be read as their
    character."""
    x = _sql(node.this)
    if isinstance(node, exp.Lower):
        return _spark(f"LOWER(TRANSLATE({x}, 'Σİ', 'σi'))")
    aside = f"TRANSLATE({x}, {_literal(_UPPER_FROM)}, {_literal(_STAND_INS)})"
    return _spark(f"TRANSLATE(UPPER({aside}), {_literal(_STAND_INS)}, {_literal(_UPPER_TO)})")


def _literal(text: str) -> str:
    return exp.Literal.string(text).sql(SPARK)


def _pad(node: exp.Pad, _: Mapping[str, str]) -> exp.Expr:
    """lpad and rpad with an empty fill where the text is shorter than asked: an error on
    DuckDB (NULL under the guard's TRY), the text as it is on Spark."""
    fill = node.args.get("fill_pattern")
    if fill is None:
        return node
    text, width = _sql(node.this), _sql(node.expression)
    return _spark(f"CASE WHEN ({_sql(fill)}) = '' AND LENGTH({text}) < ({width}) THEN NULL "
                  f"ELSE {_sql(node)} END")


def _count_if(node: exp.CountIf, _: Mapping[str, str]) -> exp.Expr:
    """count_if over rows whose condition is all NULL: NULL on DuckDB, 0 on Spark."""
    condition = _filtered(node, _sql(node.this))
    return _spark(f"CASE WHEN COUNT({condition}) = 0 THEN NULL ELSE COUNT_IF({condition}) END")


def _mode(node: exp.Mode, _: Mapping[str, str]) -> exp.Expr:
    raise Invalid("mode() returns any one of the most frequent values when several are as "
                  "frequent, and the Spark engine picks another one than DuckDB: count each "
                  "value instead (SELECT x, count(*) … GROUP BY x)")


def _population(node: exp.VariancePop | exp.StddevPop, _: Mapping[str, str]) -> exp.Expr:
    """var_pop and stddev_pop of one value: 0 on DuckDB whatever it is (NaN, ±inf too)."""
    x = _filtered(node, _sql(node.this))
    call = "VAR_POP" if isinstance(node, exp.VariancePop) else "STDDEV_POP"
    return _spark(f"CASE WHEN COUNT({x}) = 1 THEN CAST(0 AS DOUBLE) ELSE {call}({x}) END")


def _quantile(node: exp.PercentileCont | exp.Median, kinds: Mapping[str, str]) -> exp.Expr:
    """quantile_cont (and median) of numbers: DuckDB interpolates lo·(1 − d) + hi·d between
    the sorted values around (n − 1)·p (so an infinite neighbour gives ±inf); Spark's
    percentile lo + (hi − lo)·d (NaN there). Written out from the sorted values."""
    if _kind(node.this, kinds) not in ("int", "float"):
        return _percentile(node, kinds) if isinstance(node, exp.PercentileCont) else node
    fraction = "0.5"
    if isinstance(node, exp.PercentileCont):
        _percentile(node, kinds)  # refused unless one fraction from 0 to 1
        fraction = node.expression.name
    values = f"ARRAY_SORT(COLLECT_LIST(CAST(({_filtered(node, _sql(node.this))}) AS DOUBLE)))"
    v = "strongroom_sorted"  # the sorted values, named once (a lambda's argument)
    position = f"((SIZE({v}) - 1) * {fraction})"
    low, high = f"FLOOR({position})", f"CEIL({position})"
    below = f"ELEMENT_AT({v}, CAST({low} AS INT) + 1)"
    above = f"ELEMENT_AT({v}, CAST({high} AS INT) + 1)"
    at = (f"CASE WHEN SIZE({v}) = 0 THEN NULL WHEN {low} = {high} THEN {below} "
          f"ELSE {below} * ({high} - {position}) + {above} * ({position} - {low}) END")
    return _spark(f"ELEMENT_AT(TRANSFORM(ARRAY({values}), {v} -> {at}), 1)")


_REWRITES: dict[type[exp.Expr], Callable[[Any, Mapping[str, str]], exp.Expr]] = {
    exp.Round: _round_places,
    exp.Div: _division,
    exp.Substring: _substring,
    exp.Left: _left_right,
    exp.Right: _left_right,
    exp.Like: _like,
    exp.ILike: _like,
    exp.Ln: _logarithm,
    exp.Log: _logarithm,
    exp.Cast: _cast,
    exp.TryCast: _cast,
    exp.DayOfWeek: _day_of_week,
    exp.Extract: _extract,
    exp.DateDiff: _date_diff,
    exp.Add: _overflow,
    exp.Sub: _overflow,
    exp.Mul: _overflow,
    exp.Neg: _negation,
    exp.Abs: _negation,
    exp.Floor: _whole_part,
    exp.Ceil: _whole_part,
    exp.Trunc: _whole_part,
    exp.Sign: _sign,
    exp.Mod: _modulo,
    exp.EQ: _comparison, exp.NEQ: _comparison, exp.GT: _comparison, exp.GTE: _comparison,
    exp.LT: _comparison, exp.LTE: _comparison, exp.In: _comparison, exp.Between: _comparison,
    exp.DPipe: _concatenation,
    exp.Case: _mixed, exp.If: _mixed, exp.Coalesce: _mixed, exp.Greatest: _mixed,
    exp.Least: _mixed,
    exp.DateAdd: _date_add,
    exp.DateSub: _interval_arithmetic,
    exp.Concat: _concatenation,
    exp.Anonymous: _named,
    exp.Week: _week,
    exp.Length: _length,
    exp.PercentileCont: _quantile,
    exp.Median: _quantile,
    exp.PercentileDisc: _percentile,
    exp.Quantile: _percentile,
    exp.Upper: _case,
    exp.Lower: _case,
    exp.CountIf: _count_if,
    exp.Pad: _pad,
    exp.Mode: _mode,
    exp.VariancePop: _population,
    exp.StddevPop: _population,
    exp.ArrayOverlaps: _overlaps,
    exp.IsInf: _is_inf,
    exp.StrToTime: _strptime,
    exp.StrToDate: _str_to_date,
    exp.Sum: _sum,
    exp.Corr: _correlation,
    exp.ArrayAgg: _list,
    exp.Filter: _filter,
    exp.ArrayContains: _contains,
    exp.ArrayDistinct: _distinct,
    exp.DateFromParts: _make_date,
    exp.Bracket: _index,
    exp.TimeToStr: _strftime,
    exp.IsNan: _is_nan,
    exp.Split: _split,
    exp.RegexpLike: _regex,
    exp.RegexpExtract: _regex,
    exp.RegexpReplace: _regex,
}


def _divide(node: exp.Div) -> exp.Expr:
    """DuckDB's ``a / b``: IEEE division of doubles, so x/0 is ±inf and 0/0 NaN; Spark's
    (ANSI off) is NULL. A NaN numerator stays NaN (Spark orders NaN above every number, so it
    is tested first); a NULL stays NULL."""
    a = f"CAST(({node.this.sql(dialect=SPARK)}) AS DOUBLE)"
    b = f"CAST(({node.expression.sql(dialect=SPARK)}) AS DOUBLE)"
    text = (f"CASE WHEN {b} = 0 THEN CASE WHEN {a} IS NULL THEN NULL "
            f"WHEN ISNAN({a}) OR {a} = 0 THEN CAST('NaN' AS DOUBLE) "
            f"WHEN {a} > 0 THEN CAST('Infinity' AS DOUBLE) "
            f"ELSE CAST('-Infinity' AS DOUBLE) END ELSE {a} / {b} END")
    return sqlglot.parse_one(text, read=SPARK)


def _round(node: exp.Round) -> exp.Expr:
    """DuckDB's ``round(x, s)``: the exact binary value of x, rounded half away from zero.

    Spark's rounds x's shortest decimal form instead (0.35 is 0.4 there, 0.3 in DuckDB, whose
    double is 0.34999…). The same answer on Spark: the product x·10^s split exactly into
    p + e (Dekker's two-product in plain double arithmetic: 10^s for s ≤ 10 has at most 26
    significant bits, so x's two halves times it are exact), and a product whose fraction is
    exactly ½ rounds up only if e ≥ 0. Only a literal s from 0 to 10."""
    places = node.args["decimals"]
    if not (isinstance(places, exp.Literal) and places.is_int
            and 0 <= int(places.name) <= 10):
        raise Invalid("round(x, places) runs on the Spark engine with places a whole number "
                      "from 0 to 10")
    value = node.this.sql(dialect=SPARK)
    scale = f"{10 ** int(places.name)}.0"
    x = f"ABS(CAST(({value}) AS DOUBLE))"
    p = f"({x} * {scale})"
    c = f"(134217729.0 * {x})"
    high = f"({c} - ({c} - {x}))"
    e = f"(({high} * {scale} - {p}) + ({x} - {high}) * {scale})"
    f = f"({p} % 1.0)"  # p ≥ 0: its fraction, exactly (FLOOR would be a BIGINT on Spark)
    rounded = (f"SIGN(CAST(({value}) AS DOUBLE)) * (({p} - {f}) + CASE WHEN {f} > 0.5 OR "
               f"({f} = 0.5 AND {e} >= 0) THEN 1 ELSE 0 END) / {scale}")
    # NaN, ±inf and doubles of 2^52 or more (whole already) are their own rounding
    text = (f"CASE WHEN ISNAN(CAST(({value}) AS DOUBLE)) OR {x} >= 4503599627370496.0 "
            f"THEN CAST(({value}) AS DOUBLE) ELSE {rounded} END")
    return sqlglot.parse_one(text, read=SPARK)


def _first(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
