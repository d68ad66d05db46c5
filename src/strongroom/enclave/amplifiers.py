"""Bounded work per row: no expression may make one row cost more than a fixed amount.

How long a query runs is an observable (docs/explanation/output-check.md, "Observables:
time"). An attacker who can make one row's expression expensive (a regular expression with
counted repetition over a long built string, ``lpad`` to a huge length, a pattern computed
from the data), and evaluate it only on the target's row when their value exceeds m, reads
the value from the response time by bisection. The output service answers on a fixed
schedule (outputs/timing.py) and charges an answer for every run past its floor; this module
keeps the work one row can cause small and bounded *from the query's text alone*, so that the
schedule's floor is out of one row's reach:

- a regular expression (``regexp_matches``, ``~``, ``regexp_extract``, ``regexp_replace``) is
  a pattern written in the query, of at most :data:`MAX_PATTERN` characters, with no nested
  quantifiers (a quantifier over something already quantified), counted repetition
  (``{n,m}``) only of a single character or class and at most :data:`MAX_COUNT` times, and a
  compiled size (each repetition expanded) of at most :data:`MAX_PROGRAM`; its options, too,
  are written in the query;
- ``lpad``/``rpad`` pad to a whole number written in the query, at most ``MAX_TEXT``;
- every query's *work per row*, estimated from its text (each text function costs the longest
  text it reads, a pattern match that times its pattern's size), is at most
  :data:`MAX_ROW_WORK` character steps: about a millisecond of one core.

The guard's allow-list already closes the rest of the class: ``repeat``, ``range``,
``generate_series``, ``unnest``, ``string_agg``, lambdas and ``list_transform``,
``SIMILAR TO``, ``GLOB``, ``regexp_full_match``, ``regexp_extract_all``, ``printf`` and
``format`` are not allowed; ``WITH RECURSIVE`` and cross joins are refused; every built text
is cut at ``MAX_TEXT`` (``sqlguard._cap_text``); and the rows a query can build, however many
for one participant, are bounded from its text (enclave/sizes.py).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

MAX_TEXT = 10_000  # the longest text a function builds (sqlguard cuts every built text here)
MAX_PATTERN = 100  # characters in a regular expression
MAX_COUNT = 10  # the most a counted repetition ({n,m}) may repeat
MAX_PROGRAM = 100  # a pattern's size with every repetition expanded
MAX_ROW_WORK = 2_000_000  # character steps one row's expressions may take, all together

_REGEX: tuple[type[exp.Expr], ...] = (exp.RegexpLike, exp.RegexpExtract, exp.RegexpReplace)
_REGEX_OPTIONS: dict[type[exp.Expr], str] = {
    exp.RegexpLike: "flag", exp.RegexpExtract: "parameters", exp.RegexpReplace: "modifiers"}
_NUMBER_TEXT = 32  # a number, date or truth value written as text
_LIST_FACTOR = 16  # sorting or deduplicating a list: about log₂ of its length per element
_LISTS: tuple[type[exp.Expr], ...] = (exp.ArraySort, exp.ArrayDistinct, exp.ArrayOverlaps,
                                       exp.ArrayContains)
_LIKE: tuple[type[exp.Expr], ...] = (exp.Like, exp.ILike)
# functions whose result is a text as long as their first argument's
_SAME_LENGTH: tuple[type[exp.Expr], ...] = (exp.Upper, exp.Lower, exp.Trim, exp.Substring,
                                            exp.Left, exp.Right, exp.Try, exp.Paren,
                                            exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least,
                                            exp.Case, exp.If)


@dataclass(frozen=True)
class Work:
    """A query's estimated work per row, and its most expensive part (for the reason)."""

    steps: int
    costliest: exp.Expr | None


def reasons(tree: exp.Expr, tables: Mapping[str, Mapping[str, str]] | None = None
            ) -> list[str]:
    """Every reason the query's work per row is not bounded, each with what to do;
    ``tables``: the project's schema (table → column → DuckDB type), so that a column that is
    a number or a date everywhere counts as a short text."""
    found: list[str] = []
    for node in tree.walk():
        reason = node_reason(node)
        if reason and reason not in found:
            found.append(reason)
    if found:
        return found
    work = row_work(tree, short_columns(tables or {}))
    if work.steps > MAX_ROW_WORK:
        part = work.costliest.sql("duckdb") if work.costliest is not None else "the query"
        if len(part) > 80:
            part = part[:77] + "..."
        found.append(
            f"the query's expressions could take about {work.steps:,} character steps for "
            f"one row (the most allowed is {MAX_ROW_WORK:,}), most of it in {part}: how long "
            "a query runs must not hang on one participant's row. Match patterns against "
            "columns as they are rather than against long built texts, use fewer or shorter "
            "patterns, or split the work into definitions")
    return found


def node_reason(node: exp.Expr) -> str | None:
    """A reason to refuse one node that could make one row's work unbounded."""
    if isinstance(node, _REGEX):
        return _regex_reason(node)
    if isinstance(node, exp.Pad):
        return _pad_reason(node)
    return None


def _regex_reason(node: exp.Expr) -> str | None:
    name = _name(node)
    pattern = node.args.get("expression")
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return (f"the pattern of {name}() must be text written in the query, not computed "
                "from the data: a pattern built per row could make one participant's row "
                "take any time")
    options = node.args.get(_REGEX_OPTIONS[type(node)])
    if options is not None and not (isinstance(options, exp.Literal) and options.is_string
                                    and len(options.this) <= 8):
        return f"the options of {name}() must be a few letters written in the query ('i', 'g')"
    return pattern_reason(pattern.this, name)


def pattern_reason(pattern: str, name: str = "regexp_matches") -> str | None:
    """Why a regular expression could cost one row more than a bounded time, or None."""
    advice = ("write a plainer pattern (alternatives and single repeats such as "
              "'^E1[0-4]', '\\d{4}', 'a+'), or test a prefix with starts_with() or LIKE 'E11%'")
    if len(pattern) > MAX_PATTERN:
        return (f"the pattern of {name}() is longer than {MAX_PATTERN} characters; {advice}")
    try:
        parsed = _parsed(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return (f"the pattern {pattern!r} of {name}() could not be read as a plain regular "
                f"expression; {advice}")
    try:
        size = _program(parsed, nested=False)
    except _AmplifierError as refused:
        return f"the pattern {pattern!r} of {name}() {refused.args[0]}; {advice}"
    if size > MAX_PROGRAM:
        return (f"the pattern {pattern!r} of {name}() expands to about {size} steps per "
                f"character (at most {MAX_PROGRAM}): each repetition is matched as that many "
                f"copies; {advice}")
    return None


class _AmplifierError(Exception):
    """A pattern construct whose cost a constant in the query can multiply."""


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_SINGLE = ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY")
_MAXREPEAT = re._constants.MAXREPEAT  # type: ignore[attr-defined]


def _program(items: object, nested: bool) -> int:
    """The pattern's size with repetitions expanded; raises on a nested quantifier or a
    counted repetition of more than one character, or of more than MAX_COUNT. An optional
    part (``?``) repeats nothing and is not a quantifier here."""
    size = 0
    for op, value in items:  # type: ignore[attr-defined]
        name = str(op)
        if name in _REPEATS:
            low, high, inner = value
            if (low, high) == (0, 1):
                size += _program(inner, nested) + 1
                continue
            if nested:
                raise _AmplifierError("repeats something already repeated (a nested quantifier)")
            unbounded = high == _MAXREPEAT
            counted = not (unbounded and low <= 1)
            single = len(inner) == 1 and str(inner[0][0]) in _SINGLE
            if counted and not single:
                raise _AmplifierError("repeats a group a counted number of times ({n,m}); "
                                 "counted repetition is allowed of one character or class")
            times = low if unbounded else high
            if counted and times > MAX_COUNT:
                raise _AmplifierError(f"repeats more than {MAX_COUNT} times")
            size += max(times, 1) * _program(inner, nested=True) + 1
        elif name == "SUBPATTERN":
            size += _program(value[-1], nested) + 1
        elif name == "BRANCH":
            size += sum(_program(branch, nested) for branch in value[1]) + 1
        elif name in ("ASSERT", "ASSERT_NOT"):
            raise _AmplifierError("uses a lookaround, which DuckDB's RE2 does not support")
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise _AmplifierError("refers back to a group, which DuckDB's RE2 does not support")
        elif name == "ATOMIC_GROUP":
            size += _program(value, nested) + 1
        else:
            size += 1
    return size


def _parsed(pattern: str) -> object:
    """Python's parse of a pattern (RE2's syntax is, for what is allowed, a subset)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re._parser.parse(pattern)  # type: ignore[attr-defined]


def _pad_reason(node: exp.Pad) -> str | None:
    length = node.args.get("expression")
    if isinstance(length, exp.Least):  # the guard's own cap (sqlguard._cap_text)
        length = length.this
    if (isinstance(length, exp.Literal) and length.is_number
            and float(length.this).is_integer() and 0 <= float(length.this) <= MAX_TEXT):
        return None
    side = "lpad" if node.args.get("is_left") else "rpad"
    return (f"the length {side}() pads to must be a whole number of at most {MAX_TEXT:,} "
            "written in the query, not computed from the data: a length built per row could "
            "make one participant's row take any time or memory")


def short_columns(tables: Mapping[str, Mapping[str, str]]) -> frozenset[str]:
    """Column names that are a number, a date or a truth value in every table holding them."""
    kinds: dict[str, set[bool]] = {}
    for columns in tables.values():
        for name, kind in columns.items():
            text = kind.upper().startswith(("VARCHAR", "TEXT", "BLOB")) or kind.endswith("]")
            kinds.setdefault(name.lower(), set()).add(text)
    return frozenset(name for name, texts in kinds.items() if texts == {False})


def row_work(tree: exp.Expr, short: frozenset[str] = frozenset()) -> Work:
    """The estimated character steps all of a query's expressions take for one row: each
    function reads its arguments' longest texts (a column's text is taken as ``MAX_TEXT``
    long, a definition may hold built texts, unless it is in ``short``: a number or a date),
    a pattern match times its pattern's size, a list sorted times ``_LIST_FACTOR``."""
    lengths: dict[int, int] = {}
    steps, costliest, most = 0, None, -1
    for node in reversed(list(tree.walk())):  # children before parents
        length, cost = _measure(node, lengths, short)
        lengths[id(node)] = length
        steps += cost
        if cost > most:
            costliest, most = node, cost
    return Work(steps, costliest)


def _measure(node: exp.Expr, lengths: dict[int, int],
             short: frozenset[str]) -> tuple[int, int]:
    """(the longest text the node can give, the steps it takes for one row)."""
    def of(child: exp.Expr | None) -> int:
        return lengths.get(id(child), _NUMBER_TEXT) if child is not None else 0

    children = [c for c in node.iter_expressions()]
    read = sum(of(c) for c in children)
    if isinstance(node, exp.Literal):
        return (len(node.this) if node.is_string else _NUMBER_TEXT), 0
    if isinstance(node, exp.Column):
        return (_NUMBER_TEXT if node.name.lower() in short else MAX_TEXT), 0
    if isinstance(node, exp.Alias | exp.Paren | exp.Try):
        return of(node.this), 0
    if isinstance(node, exp.Cast | exp.TryCast):
        return min(of(node.this), MAX_TEXT), of(node.this)
    if isinstance(node, exp.Pad):
        length = node.args.get("expression")
        if isinstance(length, exp.Least):
            length = length.this
        made = (int(float(length.this)) if isinstance(length, exp.Literal)
                and length.is_number else MAX_TEXT)
        made = min(max(made, of(node.this)), MAX_TEXT)
        return made, made + read
    if isinstance(node, exp.DPipe | exp.Concat | exp.ConcatWs | exp.ArrayToString):
        made = min(read, MAX_TEXT)
        return made, made
    if isinstance(node, _REGEX):
        pattern = node.args.get("expression")
        size = MAX_PATTERN
        if isinstance(pattern, exp.Literal) and pattern.is_string:
            try:
                size = _program(_parsed(pattern.this), nested=False)
            except (re.error, _AmplifierError, RecursionError, OverflowError, ValueError):
                size = MAX_PATTERN
        text = of(node.this)
        made = MAX_TEXT if isinstance(node, exp.RegexpReplace) else text
        return min(made, MAX_TEXT), text * max(size, 1) + read
    if isinstance(node, _LIKE):
        pattern = node.expression
        size = (len(pattern.this) if isinstance(pattern, exp.Literal) and pattern.is_string
                else of(pattern))
        return _NUMBER_TEXT, of(node.this) * max(size, 1) + read
    if isinstance(node, exp.Replace):
        return MAX_TEXT, of(node.this) * max(1, of(node.expression)) // 8 + read
    if isinstance(node, exp.Split):
        return of(node.this), read
    if isinstance(node, _LISTS):
        return of(node.this), read * _LIST_FACTOR
    if isinstance(node, _SAME_LENGTH):
        return max((of(c) for c in children), default=_NUMBER_TEXT), read
    if isinstance(node, exp.Func | exp.Binary | exp.Unary | exp.Predicate | exp.Bracket):
        return _NUMBER_TEXT, read
    return max((of(c) for c in children), default=_NUMBER_TEXT), 0


def _name(node: exp.Expr) -> str:
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\(", node.sql("duckdb"))
    return (match[1] if match else node.key).lower()
