"""Researchers' SQL on Spark: the guarded DuckDB tree, written as Spark SQL and checked again.

Researchers write one dialect (DuckDB's) whichever engine runs it. The guard
(:mod:`strongroom.enclave.sqlguard`) checks the DuckDB tree; sqlglot then writes that tree as
Spark SQL. The translation is checked too, before Spark sees it: it is parsed back as Spark SQL
and every function in it must be one the guard lists (by sqlglot's class) or one of a few
Spark functions by name that the translation is known to produce with the same meaning. What
else appears (a DuckDB function Spark lacks, kept by name; an approximate percentile standing
in for an exact one) is refused with its name, so no query gives a different answer on Spark
than on DuckDB, and no name can reach Spark's own functions that call Java (``reflect``,
``java_method``), which Spark SQL would otherwise run.
"""

from __future__ import annotations

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
})
# Functions Spark knows by these names, produced by translating listed DuckDB functions.
_NAMED: frozenset[str] = frozenset({"MEAN", "DATE_PART", "MAKE_DATE"})


def spark_sql(query: exp.Query) -> str:
    """The checked query as Spark SQL; refused if the translation holds anything unlisted.

    Where Spark's meaning differs, the DuckDB meaning is written out: ``round(x, s)``
    (:func:`_round`) and ``/`` (:func:`_divide`).

    The guard's ``TRY(…)`` wrappers (:func:`~strongroom.enclave.sqlguard.harden`: no value
    may make a query fail) are dropped: Spark has no such function, and the session runs
    with ANSI mode off (:mod:`.cluster`), where a failed cast, a division by zero or an index
    out of range gives NULL, as under TRY. ``TRY_CAST`` stays ``TRY_CAST``."""
    query = query.copy()
    for node in reversed(list(query.walk(bfs=False))):  # a node's children before it
        if isinstance(node, exp.Try):
            node.replace(node.this)
        elif isinstance(node, exp.Round) and node.args.get("decimals") is not None:
            node.replace(_round(node))
        elif type(node) is exp.Div:
            node.replace(_divide(node))
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
    f = f"({p} - FLOOR({p}))"
    text = (f"SIGN(CAST(({value}) AS DOUBLE)) * (FLOOR({p}) + CASE WHEN {f} > 0.5 OR "
            f"({f} = 0.5 AND {e} >= 0) THEN 1 ELSE 0 END) / {scale}")
    return sqlglot.parse_one(text, read=SPARK)


def _first(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
