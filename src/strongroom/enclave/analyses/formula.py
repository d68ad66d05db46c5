"""Model formulas a researcher may write, read without running any of their text.

A formula (``diabetes ~ cr(age, df=4) + bmi * C(sex) + C(smoking)``) is parsed by formulaic,
whose factors are Python expressions it would evaluate. Researchers' text is hostile, so
every factor is parsed here first and must be one of a short list of shapes; anything else is
refused, naming what is allowed (fail closed):

- a column of the definition (``bmi``);
- ``C(column)``: a categorical variable (its reference is its most common level; a level held
  by fewer than the threshold is counted in it, as for ``categorical`` elsewhere);
- ``cr(column, df=N)``, ``bs(column, df=N, degree=D)``: natural cubic and B-splines;
- ``poly(column, degree=D)``, ``center(column)``, ``scale(column)``;
- terms joined by ``+``, interactions by ``:`` and ``*``; the intercept is always fitted.

Only then does formulaic evaluate the formula, with the columns and its own transforms.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from strongroom.enclave.view import PID
from strongroom.errors import Invalid

ANSI = re.compile(r"\x1b\[[0-9;]*m|[⧛⧚]")  # formulaic's highlighting of where it stopped
MAX_FORMULA = 1000  # characters
MAX_TERMS = 50
MAX_DF = 10  # spline bases per variable
MAX_DEGREE = 3
MAX_LEVELS_GUESS = 100  # a categorical variable whose levels are not given: as many as allowed
CATEGORICAL = "C"
SPLINES = frozenset({"cr", "bs"})
NUMERIC = frozenset({"center", "scale", "poly"})
# the keyword arguments each transform takes, and their bounds
KEYWORDS: dict[str, dict[str, tuple[int, int]]] = {
    "C": {}, "center": {}, "scale": {},
    "cr": {"df": (3, MAX_DF)},
    "bs": {"df": (3, MAX_DF), "degree": (1, MAX_DEGREE)},
    "poly": {"degree": (1, MAX_DEGREE)},
}
ALLOWED = ("a column; C(column); cr(column, df=3…10); bs(column, df=3…10, degree=1…3); "
           "poly(column, degree=1…3); center(column); scale(column); joined by +, with : or * "
           "for interactions")


@dataclass(frozen=True)
class Parsed:
    """What a checked formula reads."""

    outcome: str
    variables: tuple[str, ...]  # every column the right-hand side reads, once, in order
    categorical: tuple[str, ...]  # those inside C()
    right: str  # the right-hand side, as formulaic wrote it back (terms in its order)
    terms: tuple[tuple[str, ...], ...] = ()  # each term's factors (the intercept left out)

    def most_columns(self, levels: Mapping[str, int]) -> int:
        """An upper bound on the model matrix's columns, from the terms alone and each
        categorical variable's number of ``levels``: checked before the matrix is built (an
        interaction of splines of splines is millions of columns)."""
        total = 0
        for term in self.terms:
            size = 1
            for factor in term:
                size *= _columns(factor, levels)
            total += size
        return total


@functools.lru_cache(maxsize=256)
def parse(text: str) -> Parsed:
    """The formula's outcome and variables, or :class:`Invalid` naming every problem."""
    from formulaic import Formula
    from formulaic.errors import FormulaicError
    from formulaic.formula import SimpleFormula

    if len(text) > MAX_FORMULA:
        raise Invalid(f"the formula is longer than {MAX_FORMULA} characters")
    if text.count("~") != 1:
        raise Invalid("write the formula as `outcome ~ terms`, e.g. "
                      "`diabetes ~ cr(age, df=4) + bmi * C(sex)`")
    _within_bounds(text)
    try:
        formula = Formula(text)
    except (FormulaicError, SyntaxError, ValueError, TypeError) as exc:
        first = ANSI.sub("", str(exc)).strip().splitlines()[0] if str(exc).strip() else ""
        raise Invalid(f"the formula could not be read: {first}") from None
    except RecursionError:
        raise Invalid("the formula is nested too deeply") from None
    if not (isinstance(formula.lhs, SimpleFormula) and isinstance(formula.rhs, SimpleFormula)):
        raise Invalid("write one formula, `outcome ~ terms` (no `|` parts)")
    lhs = list(formula.lhs)
    if len(lhs) != 1 or len(lhs[0].factors) != 1:
        raise Invalid("the left of ~ must be one column: the outcome")
    outcome = _column(lhs[0].factors[0].expr, "the outcome")
    problems: list[str] = []
    variables: dict[str, None] = {}
    categorical: dict[str, None] = {}
    numeric: set[str] = set()
    terms = list(formula.rhs)
    if len(terms) > MAX_TERMS:
        raise Invalid(f"the formula has more than {MAX_TERMS} terms")
    if not any(str(t) == "1" for t in terms):
        problems.append("the intercept is always fitted: remove `- 1` or `+ 0`")
    for term in terms:
        for factor in term.factors:
            if str(factor.expr) == "1":
                continue
            try:
                name, transform = _factor(str(factor.expr))
            except Invalid as refusal:
                problems.extend(refusal.reasons)
                continue
            variables.setdefault(name, None)
            if transform == CATEGORICAL:
                categorical.setdefault(name, None)
            else:
                numeric.add(name)
    both = [v for v in categorical if v in numeric]
    if both:
        problems.append(f"{both[0]!r} is used both as a number and inside C(): pick one")
    if outcome in variables:
        problems.append(f"the outcome {outcome!r} is also on the right of ~")
    if problems:
        raise Invalid(list(dict.fromkeys(problems)))
    if not variables:
        raise Invalid("the formula has no covariate on the right of ~")
    kept = tuple(tuple(str(f.expr) for f in t.factors) for t in terms if str(t) != "1")
    return Parsed(outcome, tuple(variables), tuple(categorical), str(formula.rhs), kept)


_POWER = re.compile(r"(\*\*|\^)\s*([^\s()+*:/^~|-]*)")
_PRODUCT = re.compile(r"(?<!\*)\*(?!\*)")
MAX_POWER = 3
MAX_PRODUCTS = 8  # `a * b * …` expands to 2^n terms


def _within_bounds(text: str) -> None:
    """Refuse, before formulaic reads it, a formula whose expansion would take long: a power
    of a sum is expanded one product at a time (`(x + z)**20` took 27 s), and a chain of
    products doubles the terms with each `*`."""
    powers = _POWER.findall(text)
    if any(not e.isdigit() or not 1 <= int(e) <= MAX_POWER for _, e in powers) \
            or len(powers) > MAX_POWER:
        raise Invalid(f"a formula may raise a sum to a power of 1 to {MAX_POWER} (`(a + b)**2`"
                      f"), at most {MAX_POWER} times")
    if len(_PRODUCT.findall(text)) > MAX_PRODUCTS:
        raise Invalid(f"a formula may hold at most {MAX_PRODUCTS} `*` (each doubles its terms); "
                      "write the interactions you need with `:`")


def _column(expr: str, what: str) -> str:
    name = expr.strip().strip("`")
    if not name.isidentifier() or name.startswith("__"):
        raise Invalid(f"{what} must be a column of the definition")
    if name == PID:
        raise Invalid("pid is the participant pseudonym and cannot be analysed")
    return name


def _factor(expr: str) -> tuple[str, str | None]:
    """(column, transform or None) of one factor, or Invalid naming what is allowed."""
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise Invalid(f"the term {expr!r} is not one of: {ALLOWED}") from None
    if isinstance(tree, ast.Name):
        return _column(tree.id, f"the term {expr!r}"), None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id in KEYWORDS and len(tree.args) == 1
            and isinstance(tree.args[0], ast.Name)):
        raise Invalid(f"the term {expr!r} is not one of: {ALLOWED}")
    transform, bounds = tree.func.id, KEYWORDS[tree.func.id]
    given = [k.arg for k in tree.keywords]
    if len(set(given)) != len(given):
        raise Invalid(f"the term {expr!r} names an argument twice")
    for keyword in tree.keywords:
        value = keyword.value
        if keyword.arg not in bounds or not (
                isinstance(value, ast.Constant) and type(value.value) is int):
            raise Invalid(f"the term {expr!r}: {transform}() takes "
                          f"{', '.join(f'{k}=N' for k in bounds) or 'only a column'}")
        low, high = bounds[keyword.arg]
        if not low <= value.value <= high:
            raise Invalid(f"the term {expr!r}: {keyword.arg} must be {low} to {high}")
    if transform in SPLINES and not any(k.arg == "df" for k in tree.keywords):
        raise Invalid(f"the term {expr!r}: give the spline's df (3 to {MAX_DF})")
    return _column(tree.args[0].id, f"the term {expr!r}"), transform


CENTRED = ", constraints='center'"
_CR = re.compile(r"\bcr\(([^()]*)\)")


def centred(right: str) -> str:
    """The checked right-hand side with each natural spline centred: unconstrained, its
    pieces add up to the intercept (collinear); centred, each piece is a contrast."""
    return _CR.sub(lambda m: f"cr({m.group(1)}{CENTRED})", right)


def _columns(factor: str, levels: Mapping[str, int]) -> int:
    """The columns one checked factor can give: a category's levels, a spline's df, a
    polynomial's degree, else one."""
    name, transform = _factor(factor)
    if transform == CATEGORICAL:
        return max(levels.get(name, MAX_LEVELS_GUESS), 1)
    call = ast.parse(factor.strip(), mode="eval").body
    given = {k.arg: k.value.value for k in getattr(call, "keywords", [])
             if isinstance(k.value, ast.Constant) and isinstance(k.value.value, int)}
    if transform in SPLINES:
        return int(given.get("df", MAX_DF))
    if transform == "poly":
        return int(given.get("degree", 1))
    return 1


def term_name(column: str) -> str:
    """A model matrix column as the output names it: ``C(sex)[T.1]`` is ``sex=1`` (as the
    other models name a level), an interaction ``bmi:C(sex)[T.1]`` is ``bmi:sex=1``."""
    parts = []
    for part in column.replace(CENTRED, "").split(":"):
        if part.startswith(f"{CATEGORICAL}(") and ")[T." in part and part.endswith("]"):
            inner, level = part[2:].split(")[T.", 1)
            parts.append(f"{inner}={level[:-1]}")
        else:
            parts.append(part)
    return ":".join(parts)
