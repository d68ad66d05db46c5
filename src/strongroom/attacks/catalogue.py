"""The attacks, by kind: what an approved researcher asks for, and how they would compute a
participant's value from what is released.

Each attack targets one participant whom the attacker can describe by quasi-identifiers a
neighbour knows (sex, year of birth, a blood-pressure reading: ``{T}`` in the SQL); the value
sought is their BMI (or, for the one-bit attacks, whether their BMI is over 30). A *value*
attack succeeds if ``recover`` computes the BMI to within 0.05 from released outputs alone. A
*bit* attack runs against two targets whose hidden bit differs, and succeeds if what the
researcher observes (refusals, failures, sizes, released numbers) differs between them.

Placeholders: ``{T}`` the target's condition; ``{S}``, ``{Y}``, ``{P}`` their sex, birth year
and systolic BP; ``{G9}`` a condition true for exactly k - 1 other participants (an attacker
finds one with repeated size questions; the runner finds it custodian-side to keep the suite
short), and ``{G18}`` one true for 2k − 2 (two such groups).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

INTERCEPT = "Intercept"  # as enclave/analyses/regression.py names it
KINDS = ("labels", "row-local", "values", "combinations", "models", "one-bit", "precision")
TOLERANCE = 0.05  # a recovered BMI this close to the truth counts as the value given away
FloatArray = npt.NDArray[np.float64]

BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p54_i0 AS centre, p20116_i0 AS smoking, "
        "p21001_i0 AS bmi, p4080_i0_a0 AS sbp FROM participants")
MIDDLE = "birth_year BETWEEN 1945 AND 1965"  # the target is born 1946–1964
G1, G2 = "birth_year < 1945", "birth_year > 1965"  # large groups without the target


@dataclass(frozen=True)
class Target:
    """A participant the attacker can describe, and (custodian-side) the truth sought."""

    condition: str  # SQL true for them alone: their sex, birth year and blood pressure
    sex: int
    birth_year: int
    sbp: int
    bmi: float
    smoking_current: float  # 1.0 if they smoke now (UK Biobank coding 2), else 0.0

    @property
    def obese(self) -> bool:
        return self.bmi > 30


@dataclass(frozen=True)
class Obs:
    """What the researcher saw for one step."""

    step: str  # define | analyse | project
    refused: str | None = None  # the first reason, if the request was refused
    verdict: str | None = None
    status: str | None = None  # released | blocked | pending_review | …
    body: dict[str, Any] | None = None  # the released JSON, if released
    size_ok: bool | None = None
    why: str | None = None  # the rule and reason of the verdict, if not released automatically


Request = dict[str, Any] | Callable[[list[Obs]], dict[str, Any]]
Recovery = Callable[[list[Obs], Target], Any]


@dataclass(frozen=True)
class Step:
    what: str  # define | analyse | project (a second project, same researcher)
    name: str = ""  # define: the definition's name
    sql: str = ""  # define: its SQL
    request: Request | None = None  # analyse: the analysis (or a function of what was seen)


@dataclass(frozen=True)
class Attack:
    kind: str
    name: str
    steps: tuple[Step, ...]
    # value attacks: the BMI computed from what was seen (None: nothing to compute from);
    # bit attacks: a fingerprint of what was seen
    recover: Callable[[list[Obs], Target], Any]
    bit: bool = False
    truth: str = "bmi"  # value attacks: the target's field sought ("smoking_current": 0/1)


def define(name: str, sql: str) -> Step:
    return Step("define", name=name, sql=sql)


def agg(sql: str) -> Step:
    return Step("analyse", request={"kind": "aggregate_sql", "sql": sql})


def analyse(request: Request) -> Step:
    return Step("analyse", request=request)


# -- reading released outputs -----------------------------------------------------------------


def cells(obs: list[Obs], i: int) -> list[dict[str, Any]]:
    """Step ``i``'s released cells that show a value (suppressed and removed ones do not)."""
    body = obs[i].body if i < len(obs) else None
    if not body:
        return []
    return [c for c in body.get("cells", []) if c.get("value") is not None
            and not c.get("suppressed")]


def value(obs: list[Obs], i: int, column: str | None = None,
          row: Sequence[Any] | None = None) -> float | None:
    for c in cells(obs, i):
        if column is not None and c["column"] != column:
            continue
        if row is not None and [str(r) for r in c["row"]] != [str(r) for r in row]:
            continue
        return float(c["value"])
    return None


def number(text: Any) -> float | None:
    try:
        found = float(str(text))
    except ValueError:
        return None
    return found if math.isfinite(found) else None


def shown(obs: list[Obs], i: int) -> list[dict[str, Any]]:
    """Every cell step ``i`` released, suppressed ones too (their labels are shown)."""
    body = obs[i].body if i < len(obs) else None
    return list(body.get("cells", [])) if body else []


def labels(obs: list[Obs], i: int) -> list[str]:
    found: list[str] = []
    for c in shown(obs, i):
        found += [str(r) for r in c["row"]] + [str(c["column"])]
    return found


def all_of(*parts: float | None) -> bool:
    return all(p is not None for p in parts)


def total(signs: Sequence[int], parts: Sequence[float | None]) -> float | None:
    known = [p for p in parts if p is not None]
    if len(known) != len(parts):
        return None
    return float(sum(s * p for s, p in zip(signs, known, strict=True)))


def fingerprint(obs: list[Obs], t: Target | None = None) -> tuple[Any, ...]:
    """What a researcher sees of each step that does not depend on whom it aimed at: refused
    or not, the verdict and the rule behind it, the release, the size verdict, how many
    cells were shown, and the notes released with them (a note said only when a rare group
    was merged would be the bit)."""
    return tuple((o.refused is not None, o.verdict, (o.why or "").split(":")[0], o.status,
                  o.size_ok, len(cells([o], 0)), tuple((o.body or {}).get("notes") or ()))
                 for o in obs)


# -- recoveries shared by several attacks ---------------------------------------------------


def difference(i: int, j: int, column: str = "s", scale: float = 1.0) -> Recovery:
    def recover(obs: list[Obs], t: Target) -> float | None:
        a, b = value(obs, i, column), value(obs, j, column)
        return None if a is None or b is None else (a - b) / scale
    return recover


def mean_difference(i: int, j: int) -> Recovery:
    """(m_i − m_j) × n, each output giving n and m."""
    def recover(obs: list[Obs], t: Target) -> float | None:
        n, m1, m2 = value(obs, i, "n"), value(obs, i, "m"), value(obs, j, "m")
        return None if not all_of(n, m1, m2) else (m1 - m2) * n  # type: ignore[operator]
    return recover


def weighted(signs: Sequence[int], steps: Sequence[int]) -> Recovery:
    """Σ sign × n × m (or × s where a step gives a sum "s")."""
    def recover(obs: list[Obs], t: Target) -> float | None:
        parts: list[float | None] = []
        for i in steps:
            s = value(obs, i, "s")
            if s is None:
                n, m = value(obs, i, "n"), value(obs, i, "m")
                s = n * m if n is not None and m is not None else None
            parts.append(s)
        return total(signs, parts)
    return recover


def last_mean(column: str = "m") -> Recovery:
    def recover(obs: list[Obs], t: Target) -> float | None:
        for c in cells(obs, len(obs) - 1):
            if c["column"] == column:
                return float(c["value"])
        return None
    return recover


def label_beside(i: int, key: int, known: str) -> Recovery:
    """The label in position ``key`` of the released row that holds the target's ``known``
    field (e.g. their blood pressure)."""
    def recover(obs: list[Obs], t: Target) -> float | None:
        mark = str(getattr(t, known))
        for c in shown(obs, i):
            row = [str(r) for r in c["row"]]
            if mark in row and len(row) > key:
                return number(row[key])
        return None
    return recover


def only_label(i: int, other: Sequence[str]) -> Recovery:
    """The one numeric label that is not one of the known categories."""
    def recover(obs: list[Obs], t: Target) -> float | None:
        found = {number(x) for x in labels(obs, i) if x not in other} - {None}
        return found.pop() if len(found) == 1 else None
    return recover


def coef(obs: list[Obs], i: int, term: str) -> float | None:
    """A released coefficient; ``const`` is the intercept (the models name it Intercept)."""
    return value(obs, i, "coef", (INTERCEPT if term == "const" else term,))


def fitted(i: int, terms: Sequence[tuple[str, float | str]]) -> Recovery:
    """const + Σ coef × x: the model's fitted value for the target (x a number, or the name
    of one of the target's known fields)."""
    def recover(obs: list[Obs], t: Target) -> float | None:
        found = [coef(obs, i, "const")] + [coef(obs, i, term) for term, _ in terms]
        parts = [p for p in found if p is not None]
        if len(parts) != len(found):
            return None
        xs = [float(getattr(t, x)) if isinstance(x, str) else x for _, x in terms]
        return parts[0] + float(sum(p * x for p, x in zip(parts[1:], xs, strict=True)))
    return recover


def histogram_gap(i: int) -> Recovery:
    """The middle of the one bin that holds the target: missing, suppressed or non-zero."""
    def recover(obs: list[Obs], t: Target) -> float | None:
        body = obs[i].body if i < len(obs) else None
        if not body:
            return None
        edges = body.get("spec", {}).get("edges") or []
        shown = {str(c["row"][0]): c for c in body.get("cells", [])
                 if c.get("column") in ("n", "count")}
        odd = []
        for low, high in itertools.pairwise(edges):
            label = next((k for k in shown if k.startswith(f"[{low:g}")
                          or k.startswith(f"[{low}")), None)
            cell = shown.get(label) if label else None
            if cell is None or cell.get("suppressed") or (cell.get("value") or 0) > 0:
                odd.append((low + high) / 2)
        return odd[0] if len(odd) == 1 else None
    return recover


def narrow_edges(i: int, width: float) -> Callable[[list[Obs]], dict[str, Any]]:
    """Second stage of a histogram search: 0.1-wide bins across the bin found at step ``i``."""
    def request(obs: list[Obs]) -> dict[str, Any]:
        middle = histogram_gap(i)(obs, None)  # type: ignore[arg-type]
        low = (middle - width / 2) if middle is not None else 20.0
        edges = [round(low + 0.1 * j, 4) for j in range(round(width / 0.1) + 1)]
        return {"kind": "histogram", "definition": "one", "variable": "bmi", "edges": edges}
    return request


def correlation_recovery(obs: list[Obs], t: Target) -> float | None:
    """y_T = ȳ + r √((1 − 1/n)(n − 1)) s for a flag that is 1 for the target alone."""
    n, m, sd = value(obs, 1, "n", ("bmi",)), value(obs, 1, "mean", ("bmi",)), \
        value(obs, 1, "sd", ("bmi",))
    r = value(obs, 2, "flag", ("bmi",))
    if not all_of(n, m, sd, r):
        return None
    return m + r * math.sqrt((1 - 1 / n) * (n - 1)) * sd  # type: ignore[operator]


def sd_recovery(obs: list[Obs], t: Target) -> float | None:
    """Σy² from (n, mean, sd) of two outputs, one with the target's BMI set to 0."""
    parts = []
    for i in (0, 1):
        n, m, sd = value(obs, i, "n"), value(obs, i, "m"), value(obs, i, "sd")
        if not all_of(n, m, sd):
            return None
        parts.append((n - 1) * sd ** 2 + n * m ** 2)  # type: ignore[operator]
    square = parts[0] - parts[1]
    return math.sqrt(square) if square > 0 else None


# -- the catalogue ----------------------------------------------------------------------------


def catalogue() -> list[Attack]:
    """Every attack; SQL placeholders are filled per target by the runner."""
    return (LABELS + ROW_LOCAL + VALUES + COMBINATIONS + MODELS + ONE_BIT + ROWS + PRECISION
            + FIGURES + BOUNDARY + WINSOR + EXACTLY_K + ATTACKER_2 + ATTACKER_3
            + PRESENCE_GRIDS + ATTACKER_4 + ATTACKER_5 + ABSENCE + ABSENCE_OTHER + ZERO
            + COMPETING + HAVING_RAW + HISTOGRAM_EDGES)


LABELS = [
    Attack("labels", "a BMI as the group key, for the target alone",
           (agg("SELECT bmi, count(*) AS n FROM base WHERE {T} GROUP BY bmi"),),
           only_label(0, ["n"])),
    Attack("labels", "BMI and blood pressure as keys, in the target's year of birth",
           (agg("SELECT bmi, sbp, count(*) AS n FROM base WHERE sex = {S} AND birth_year = {Y} "
                "GROUP BY bmi, sbp"),),
           label_beside(0, 0, "sbp")),
    Attack("labels", "BMI and blood pressure concatenated into one key",
           (agg("SELECT CAST(bmi AS VARCHAR) || '/' || CAST(sbp AS VARCHAR) AS k, count(*) AS n "
                "FROM base WHERE sex = {S} AND birth_year = {Y} GROUP BY k"),),
           lambda obs, t: next((number(x.split("/")[0]) for x in labels(obs, 0)
                             if x.endswith(f"/{t.sbp}")), None)),
    Attack("labels", "BMI and blood pressure folded into one number",
           (agg("SELECT bmi * 100000 + sbp AS k, count(*) AS n FROM base "
                "WHERE sex = {S} AND birth_year = {Y} GROUP BY k"),),
           lambda obs, t: next(((v - t.sbp) / 100000 for v in
                             (number(x) for x in labels(obs, 0)) if v is not None
                             and round(v) % 100000 in range(t.sbp - 1, t.sbp + 2)), None)),
    Attack("labels", "a definition's column that is the BMI for the target, -1 for others",
           (define("lab", "SELECT pid, CASE WHEN {T} THEN bmi ELSE -1 END AS v FROM base"),
            analyse({"kind": "frequency", "definition": "lab", "variable": "v"})),
           only_label(1, ["-1", "-1.0", "n", "percent", "count", "Total", "total"])),
    Attack("labels", "the target's BMI as a crosstab column",
           (define("lab", "SELECT pid, sex, CASE WHEN {T} THEN CAST(bmi AS VARCHAR) "
                          "ELSE 'other' END AS v FROM base"),
            analyse({"kind": "crosstab", "definition": "lab", "rows": "sex", "columns": "v"})),
           only_label(1, ["other", "0", "1", "Total", "total", "All", "n", "count"])),
    Attack("labels", "a CASE that is the BMI for the target as the group key",
           (agg("SELECT CASE WHEN {T} THEN bmi ELSE 0 END AS k, count(*) AS n FROM base "
                "GROUP BY k"),),
           only_label(0, ["0", "0.0", "n"])),
    Attack("labels", "a histogram of the target alone, narrowed in two steps",
           (define("one", "SELECT pid, bmi FROM base WHERE sex = {S} AND birth_year = {Y} "
                          "AND sbp = {P}"),
            analyse({"kind": "histogram", "definition": "one", "variable": "bmi",
                     "edges": [15 + 0.5 * j for j in range(61)]}),
            analyse(narrow_edges(1, 0.5))),
           histogram_gap(2)),
    Attack("labels", "the BMI in hundredths as the key of the target's quasi-identifiers",
           (agg("SELECT floor(bmi * 100) AS k, count(*) AS n FROM base WHERE sex = {S} AND "
                "birth_year = {Y} AND sbp = {P} GROUP BY k"),),
           lambda obs, t: next((v / 100 for v in (number(x) for x in labels(obs, 0))
                             if v is not None and v > 100), None)),
]

ROW_LOCAL = [
    Attack("row-local", "a scalar subquery copies the target's BMI onto every row",
           (define("c", "SELECT pid, sex, (SELECT max(bmi) FROM base WHERE {T}) AS x FROM base"),
            agg("SELECT sex, count(*) AS n, avg(x) AS m FROM c GROUP BY sex")),
           last_mean()),
    Attack("row-local", "a window over everyone copies it",
           (define("c", "SELECT pid, sex, max(CASE WHEN {T} THEN bmi END) OVER () AS x "
                        "FROM base"),
            agg("SELECT sex, count(*) AS n, avg(x) AS m FROM c GROUP BY sex")),
           last_mean()),
    Attack("row-local", "a window partitioned by a null-extended pid gathers everyone",
           (define("c", "SELECT b.pid, b.sex, max(CASE WHEN {T} THEN b.bmi END) OVER "
                        "(PARTITION BY d.pid) AS x FROM base b LEFT JOIN diagnoses d "
                        "ON d.pid = b.pid AND d.code = 'no such code'"),
            agg("SELECT sex, count(*) AS n, avg(x) AS m FROM c GROUP BY sex")),
           last_mean()),
    Attack("row-local", "a join to a derived table of the target on a shared value",
           (define("c", "SELECT a.pid, a.sex, b.bmi AS x FROM base a JOIN "
                        "(SELECT sex, bmi FROM base WHERE {T}) b ON b.sex = a.sex"),
            agg("SELECT sex, count(*) AS n, avg(x) AS m FROM c GROUP BY sex")),
           last_mean()),
    Attack("row-local", "a CTE grouped by sex, joined back on sex",
           (define("c", "WITH m AS (SELECT sex, max(CASE WHEN {T} THEN bmi END) AS x FROM base "
                        "GROUP BY sex) SELECT b.pid, b.sex, m.x FROM base b JOIN m "
                        "ON m.sex = b.sex"),
            agg("SELECT sex, count(*) AS n, avg(x) AS m FROM c GROUP BY sex")),
           last_mean()),
    Attack("row-local", "a scalar subquery inside an aggregate",
           (agg("SELECT sex, count(*) AS n, avg((SELECT max(bmi) FROM base WHERE {T})) AS m "
                "FROM base GROUP BY sex"),),
           last_mean()),
    Attack("row-local", "aggregate SQL joining everyone to the target on sex",
           (agg("SELECT a.sex, count(*) AS n, avg(b.bmi) AS m FROM base a JOIN base b "
                "ON a.sex = b.sex WHERE b.birth_year = {Y} AND b.sbp = {P} AND b.sex = {S} "
                "GROUP BY a.sex"),),
           last_mean()),
    Attack("row-local", "the maximum of those below the target (selected by a subquery)",
           (define("c", "SELECT pid, bmi FROM base WHERE bmi <= (SELECT max(bmi) FROM base "
                        "WHERE {T})"),
            agg("SELECT count(*) AS n, max(bmi) AS m FROM c")),
           last_mean()),
    Attack("row-local", "a self-join on pid with an OR that pairs everyone with the target",
           (define("c", "SELECT a.pid, a.sex, b.bmi AS x FROM base a JOIN base b "
                        "ON a.pid = b.pid OR (b.sex = {S} AND b.birth_year = {Y} "
                        "AND b.sbp = {P})"),
            agg("SELECT sex, count(*) AS n, avg(x) AS m FROM c WHERE x IS NOT NULL "
                "GROUP BY sex")),
           last_mean()),
]

ZEROED = "CASE WHEN {T} THEN 0 ELSE bmi END"
VALUES = [
    Attack("values", "a sum, and the same sum with the target's BMI set to 0",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE {MIDDLE}"),
            agg(f"SELECT sum({ZEROED}) AS s FROM base WHERE {MIDDLE}")),
           difference(0, 1)),
    Attack("values", "a mean, and the same mean with the target's BMI set to 0",
           (agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE {MIDDLE}"),
            agg(f"SELECT count(bmi) AS n, avg({ZEROED}) AS m FROM base WHERE {MIDDLE}")),
           mean_difference(0, 1)),
    Attack("values", "a sum with the target's BMI doubled",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE {MIDDLE}"),
            agg(f"SELECT sum(CASE WHEN {{T}} THEN 2 * bmi ELSE bmi END) AS s FROM base "
                f"WHERE {MIDDLE}")),
           difference(1, 0)),
    Attack("values", "both sums in one output",
           (agg(f"SELECT sum(bmi) AS a, sum({ZEROED}) AS b FROM base WHERE {MIDDLE}"),),
           lambda obs, t: total([1, -1], [value(obs, 0, "a"), value(obs, 0, "b")])),
    Attack("values", "sums by sex, the target's zeroed",
           (agg("SELECT sex, sum(bmi) AS s FROM base GROUP BY sex"),
            agg(f"SELECT sex, sum({ZEROED}) AS s FROM base GROUP BY sex")),
           lambda obs, t: total([1, -1], [value(obs, 0, "s", (str(t.sex),)),
                                       value(obs, 1, "s", (str(t.sex),))])),
    Attack("values", "a summary of two definitions, one with the target's BMI set to 0",
           (define("z", f"SELECT pid, sex, {ZEROED} AS bmi FROM base"),
            analyse({"kind": "summary", "definition": "base", "variables": ["bmi"],
                     "statistics": ["n", "mean"]}),
            analyse({"kind": "summary", "definition": "z", "variables": ["bmi"],
                     "statistics": ["n", "mean"]})),
           lambda obs, t: None if not all_of(value(obs, 1, "n", ("bmi",)),
                                          value(obs, 1, "mean", ("bmi",)),
                                          value(obs, 2, "mean", ("bmi",)))
           else value(obs, 1, "n", ("bmi",)) * (value(obs, 1, "mean", ("bmi",))  # type: ignore[operator]
                                                 - value(obs, 2, "mean", ("bmi",)))),
    Attack("values", "standard deviations with and without the target's BMI",
           (agg(f"SELECT count(bmi) AS n, avg(bmi) AS m, stddev(bmi) AS sd FROM base "
                f"WHERE {MIDDLE}"),
            agg(f"SELECT count(bmi) AS n, avg({ZEROED}) AS m, stddev({ZEROED}) AS sd "
                f"FROM base WHERE {MIDDLE}")),
           sd_recovery),
    Attack("values", "a regression refitted with the target's BMI set to 0",
           (define("z", f"SELECT pid, sex, {ZEROED} AS bmi FROM base"),
            agg("SELECT sex, count(bmi) AS n FROM base GROUP BY sex"),
            analyse({"kind": "ols", "definition": "base", "outcome": "bmi",
                     "covariates": ["sex"]}),
            analyse({"kind": "ols", "definition": "z", "outcome": "bmi",
                     "covariates": ["sex"]})),
           lambda obs, t: None if not all_of(coef(obs, 2, "const"), coef(obs, 3, "const"),
                                          coef(obs, 2, "sex"), coef(obs, 3, "sex"),
                                          value(obs, 1, "n", (str(t.sex),)))
           else ((coef(obs, 2, "const") + t.sex * coef(obs, 2, "sex"))  # type: ignore[operator]
                 - (coef(obs, 3, "const") + t.sex * coef(obs, 3, "sex")))  # type: ignore[operator]
           * value(obs, 1, "n", (str(t.sex),))),
    Attack("values", "count(DISTINCT …) reads the target's BMI bit by bit in one output",
           (agg("SELECT " + ", ".join(
               f"count(DISTINCT CASE WHEN {{T}} AND (CAST(round(bmi * 10000) AS BIGINT) // "
               f"{2 ** i}) % 2 = 1 THEN 1 ELSE 0 END) AS b{i}" for i in range(20))
               + " FROM base"),),
           lambda obs, t: None if len(cells(obs, 0)) < 20 else sum(
               (2 ** i) * (value(obs, 0, f"b{i}") == 2) for i in range(20)) / 10000),
    Attack("values", "a sum in one project, the zeroed sum in another of the same researcher",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE {MIDDLE}"),
            Step("project"),
            agg(f"SELECT sum({ZEROED}) AS s FROM base WHERE {MIDDLE}")),
           difference(0, 2)),
]

WITH_T = f"bmi IS NOT NULL AND ({G1} OR {{T}})"
COMBINATIONS = [
    Attack("combinations", "three sums: before 1945 or the target; after 1965; both",
           (agg(f"SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE {WITH_T}"),
            agg(f"SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND {G2}"),
            agg(f"SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                f"({G1} OR {G2})")),
           weighted([1, 1, -1], [0, 1, 2])),
    Attack("combinations", "the same with means and counts",
           (agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE {WITH_T}"),
            agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE bmi IS NOT NULL AND {G2}"),
            agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE bmi IS NOT NULL AND "
                f"({G1} OR {G2})")),
           weighted([1, 1, -1], [0, 1, 2])),
    Attack("combinations", "four sums, every pair apart by hundreds",
           (agg("SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "(birth_year < 1940 OR {T})"),
            agg("SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "(birth_year BETWEEN 1940 AND 1944 OR birth_year > 1965)"),
            agg("SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "birth_year < 1945"),
            agg("SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "birth_year > 1965")),
           weighted([1, 1, -1, -1], [0, 1, 2, 3])),
    Attack("combinations", "one output grouped with the target moved into a group, one without",
           (agg(f"SELECT ({G1} OR {{T}}) AS g, count(bmi) AS n, sum(bmi) AS s FROM base "
                f"WHERE bmi IS NOT NULL AND ({G1} OR {G2} OR {{T}}) GROUP BY g"),
            agg(f"SELECT count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                f"({G1} OR {G2})")),
           lambda obs, t: total([1, 1, -1], [value(obs, 0, "s", ("true",)) or
                                          value(obs, 0, "s", ("True",)),
                                          value(obs, 0, "s", ("false",)) or
                                          value(obs, 0, "s", ("False",)),
                                          value(obs, 1, "s")])),
    Attack("combinations", "three counts give away whether the target smokes",
           (agg(f"SELECT count(*) AS n FROM base WHERE smoking = 2 AND ({G1} OR {{T}})"),
            agg(f"SELECT count(*) AS n FROM base WHERE smoking = 2 AND {G2}"),
            agg(f"SELECT count(*) AS n FROM base WHERE smoking = 2 AND ({G1} OR {G2})")),
           lambda obs, t: total([1, 1, -1], [value(obs, 0, "n"), value(obs, 1, "n"),
                                          value(obs, 2, "n")]),
           truth="smoking_current"),
    Attack("combinations", "a sum, then means and counts of the others",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE {WITH_T}"),
            agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE bmi IS NOT NULL AND {G2}"),
            agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE bmi IS NOT NULL AND "
                f"({G1} OR {G2})")),
           weighted([1, 1, -1], [0, 1, 2])),
    Attack("combinations", "three releases by sex, combined in the target's cell",
           (agg(f"SELECT sex, count(bmi) AS n, sum(bmi) AS s FROM base WHERE {WITH_T} "
                "GROUP BY sex"),
            agg(f"SELECT sex, count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL "
                f"AND {G2} GROUP BY sex"),
            agg(f"SELECT sex, count(bmi) AS n, sum(bmi) AS s FROM base WHERE bmi IS NOT NULL "
                f"AND ({G1} OR {G2}) GROUP BY sex")),
           lambda obs, t: total([1, 1, -1], [value(obs, i, "s", (str(t.sex),)) for i in range(3)])),
    Attack("combinations", "five sums over bands of birth years",
           (agg("SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "(birth_year < 1938 OR {T})"),
            agg("SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "birth_year BETWEEN 1938 AND 1941"),
            agg("SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "birth_year BETWEEN 1942 AND 1944"),
            agg("SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "(birth_year < 1942)"),
            agg("SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                "(birth_year BETWEEN 1942 AND 1944)")),
           weighted([1, 1, 1, -1, -1], [0, 1, 2, 3, 4])),
    Attack("combinations", "histograms of a group with and without the target",
           (define("with_t", f"SELECT pid, bmi FROM base WHERE {G1} OR {{T}}"),
            define("without", f"SELECT pid, bmi FROM base WHERE {G1}"),
            analyse({"kind": "histogram", "definition": "with_t", "variable": "bmi",
                     "edges": [15 + 0.5 * j for j in range(61)]}),
            analyse({"kind": "histogram", "definition": "without", "variable": "bmi",
                     "edges": [15 + 0.5 * j for j in range(61)]})),
           lambda obs, t: _bin_difference(obs, 2, 3)),
]


def _bin_difference(obs: list[Obs], i: int, j: int) -> float | None:
    a = {str(c["row"]): float(c["value"]) for c in cells(obs, i)}
    b = {str(c["row"]): float(c["value"]) for c in cells(obs, j)}
    moved = [k for k in a if k in b and a[k] - b[k] == 1]
    if len(moved) != 1:
        return None
    low, high = (float(x) for x in moved[0].strip("[]()'\" ").split("[")[-1].split(",")[:2])
    return (low + high) / 2


FLAG = "SELECT pid, bmi, sex, CASE WHEN {T} THEN 1 ELSE 0 END AS flag FROM base"
_ABC = ("const", "a", "b", "c", "a:b", "a:c", "b:c", "a:b:c")  # all of them: the target's fit


def _trickle(obs: list[Obs], t: Target) -> float | None:
    """(const + sex coef × S) × n_S − 10⁻⁶ × (odd birth years in S): the target's BMI."""
    const, beta = coef(obs, 1, "const"), coef(obs, 1, "sex")
    n, odd = value(obs, 2, "n", (str(t.sex),)), value(obs, 2, "odd", (str(t.sex),))
    if const is None or beta is None or n is None or odd is None:
        return None
    return (const + t.sex * beta) * n - 0.000001 * odd
MODELS = [
    Attack("models", "a regression with a 0/1 covariate that is 1 for the target",
           (define("f", FLAG),
            analyse({"kind": "ols", "definition": "f", "outcome": "bmi",
                     "covariates": ["sex", "flag"]})),
           fitted(1, [("sex", "sex"), ("flag", 1.0)])),
    Attack("models", "two flags of ten or more that differ by the target alone",
           (define("f", "SELECT pid, bmi, CASE WHEN {T} OR birth_year = 1940 THEN 1 ELSE 0 END "
                        "AS f1, CASE WHEN birth_year = 1940 THEN 1 ELSE 0 END AS f2 FROM base"),
            analyse({"kind": "ols", "definition": "f", "outcome": "bmi",
                     "covariates": ["f1", "f2"]})),
           fitted(1, [("f1", 1.0)])),
    Attack("models", "a categorical covariate with a level for the target",
           (define("f", "SELECT pid, bmi, CASE WHEN {T} THEN 'T' ELSE 'rest' END AS g "
                        "FROM base"),
            analyse({"kind": "ols", "definition": "f", "outcome": "bmi", "covariates": ["g"],
                     "categorical": ["g"]})),
           fitted(1, [("g=T", 1.0)])),
    Attack("models", "a correlation with the flag, and the BMI's mean and SD",
           (define("f", FLAG),
            analyse({"kind": "summary", "definition": "f", "variables": ["bmi"],
                     "statistics": ["n", "mean", "sd"]}),
            analyse({"kind": "correlation", "definition": "f", "variables": ["bmi", "flag"]})),
           correlation_recovery),
    Attack("models", "a continuous covariate far out for the target alone",
           (define("f", "SELECT pid, bmi, CASE WHEN {T} THEN 1000.0 ELSE birth_year / 1000000.0 "
                        "END AS x FROM base"),
            analyse({"kind": "ols", "definition": "f", "outcome": "bmi",
                     "covariates": ["x"]})),
           fitted(1, [("x", 1000.0)])),
    Attack("models", "an outcome that is 0 for everyone but the target",
           (define("f", "SELECT pid, sex, CASE WHEN {T} THEN bmi ELSE 0 END AS y FROM base "
                        "WHERE bmi IS NOT NULL"),
            analyse({"kind": "ols", "definition": "f", "outcome": "y", "covariates": ["sex"]}),
            agg("SELECT sex, count(*) AS n FROM f GROUP BY sex")),
           lambda obs, t: None if not all_of(coef(obs, 1, "const"), coef(obs, 1, "sex"),
                                          value(obs, 2, "n", (str(t.sex),)))
           else (coef(obs, 1, "const") + t.sex * coef(obs, 1, "sex"))  # type: ignore[operator]
           * value(obs, 2, "n", (str(t.sex),))),
    Attack("models", "the flag regression inside the target's small birth cohort",
           (define("f", "SELECT pid, bmi, sex, CASE WHEN {T} THEN 1 ELSE 0 END AS flag "
                        "FROM base WHERE birth_year BETWEEN {Y} - 1 AND {Y} + 1"),
            analyse({"kind": "ols", "definition": "f", "outcome": "bmi",
                     "covariates": ["sex", "flag"]})),
           fitted(1, [("sex", "sex"), ("flag", 1.0)])),
    Attack("models", "a flag scaled by the target's own blood pressure",
           (define("f", "SELECT pid, bmi, CASE WHEN {T} THEN sbp ELSE 0 END AS x, "
                        "birth_year / 10.0 AS b FROM base"),
            analyse({"kind": "ols", "definition": "f", "outcome": "bmi",
                     "covariates": ["x", "b"]})),
           lambda obs, t: None if not all_of(coef(obs, 1, "const"), coef(obs, 1, "x"),
                                          coef(obs, 1, "b"))
           else coef(obs, 1, "const") + t.sbp * coef(obs, 1, "x")  # type: ignore[operator]
           + t.birth_year / 10.0 * coef(obs, 1, "b")),  # type: ignore[operator]
    Attack("models", "an outcome that is the BMI for the target and a known trickle for others",
           (define("m", "SELECT pid, sex, CASE WHEN {T} THEN bmi ELSE (birth_year % 2) * "
                        "0.000001 END AS y FROM base"),
            analyse({"kind": "ols", "definition": "m", "outcome": "y", "covariates": ["sex"]}),
            agg("SELECT sex, count(*) AS n, count(CASE WHEN birth_year % 2 = 1 THEN 1 END) "
                "AS odd FROM base GROUP BY sex")),
           _trickle),
    # generalised linear models from formulas (enclave/analyses/glm.py)
    Attack("models", "a Poisson model of BMI × 100 as a count, with the target's flag",
           (define("f", "SELECT pid, sex, CAST(round(bmi * 100) AS INTEGER) AS y, "
                        "CASE WHEN {T} THEN 1 ELSE 0 END AS flag FROM base "
                        "WHERE bmi IS NOT NULL"),
            analyse({"kind": "glm", "definition": "f", "formula": "y ~ sex + flag",
                     "family": "poisson"})),
           lambda obs, t: None if not all_of(coef(obs, 1, "const"), coef(obs, 1, "sex"),
                                          coef(obs, 1, "flag"))
           else math.exp(coef(obs, 1, "const") + t.sex * coef(obs, 1, "sex")  # type: ignore[operator]
                         + coef(obs, 1, "flag")) / 100),
    Attack("models", "three common flags whose interaction is the target alone",
           (define("f", "SELECT pid, bmi, CASE WHEN sex = {S} THEN 1 ELSE 0 END AS a, "
                        "CASE WHEN birth_year = {Y} THEN 1 ELSE 0 END AS b, "
                        "CASE WHEN sbp = {P} THEN 1 ELSE 0 END AS c FROM base"),
            analyse({"kind": "glm", "definition": "f", "formula": "bmi ~ a * b * c"})),
           lambda obs, t: None if not all_of(*(coef(obs, 1, term) for term in _ABC))
           else sum(coef(obs, 1, term) or 0.0 for term in _ABC)),
    Attack("models", "weights that make the target weigh as much as everyone else",
           (define("f", "SELECT pid, bmi, sex, CASE WHEN {T} THEN 1000000.0 ELSE 1.0 END AS w "
                        "FROM base"),
            analyse({"kind": "glm", "definition": "f", "formula": "bmi ~ sex",
                     "weights": "w"})),
           fitted(1, [("sex", "sex")])),
    Attack("models", "a binomial model with the flag: is the target obese? (the odds ratio)",
           (define("f", "SELECT pid, sex, CASE WHEN bmi > 30 THEN 1 ELSE 0 END AS obese, "
                        "CASE WHEN {T} THEN 1 ELSE 0 END AS flag FROM base "
                        "WHERE bmi IS NOT NULL"),
            analyse({"kind": "glm", "definition": "f", "formula": "obese ~ sex + flag",
                     "family": "binomial", "errors": "robust"})),
           fingerprint, bit=True),
    Attack("models", "a Cox model with the flag: is the target obese? (the hazard ratio)",
           (define("f", "SELECT pid, 2030 - birth_year AS t, CASE WHEN bmi > 30 THEN 1 ELSE 0 "
                        "END AS e, CASE WHEN {T} THEN 1 ELSE 0 END AS flag FROM base "
                        "WHERE bmi IS NOT NULL"),
            analyse({"kind": "cox", "definition": "f", "time": "t", "event": "e",
                     "covariates": ["flag"]})),
           lambda obs, t: tuple(sorted((str(c["row"]), c["column"], c["value"] > 1)
                                    for c in cells(obs, 1) if c["column"] == "hr")),
           bit=True),
]


def _bit(sql_value: str) -> str:
    return f"SELECT pid, CASE WHEN {{T}} AND bmi > 30 THEN {sql_value} ELSE 0 END AS v FROM base"


def seen(obs: list[Obs], t: Target | None = None) -> tuple[Any, ...]:
    """The fingerprint and every released number: for bits carried by a value."""
    numbers = tuple(tuple(sorted((str(c["row"]), c["column"], c["value"])
                                 for c in cells([o], 0))) for o in obs)
    return (*fingerprint(obs), numbers)


ONE_BIT = [
    Attack("one-bit", "a cast that fails only if the target is obese",
           (define("b", _bit("CAST('x' AS INTEGER)")),), fingerprint, bit=True),
    Attack("one-bit", "an integer division by zero only if the target is obese",
           (define("b", _bit("1 // (sex - sex)")),), fingerprint, bit=True),
    Attack("one-bit", "a date parse that fails only if the target is obese",
           (define("b", _bit("year(strptime('x', '%Y'))")),), fingerprint, bit=True),
    Attack("one-bit", "a 64-bit overflow only if the target is obese",
           (define("b", _bit("CAST(sbp AS BIGINT) * 9223372036854775807")),), fingerprint,
           bit=True),
    Attack("one-bit", "an invalid regular expression only if the target is obese",
           (define("b", "SELECT pid, regexp_matches('a', CASE WHEN {T} AND bmi > 30 THEN '(' "
                        "ELSE 'a' END) AS v FROM base"),), fingerprint, bit=True),
    Attack("one-bit", "a huge string (memory limit) only if the target is obese",
           (define("b", "SELECT pid, length(lpad('', CASE WHEN {T} AND bmi > 30 THEN "
                        "2000000000 ELSE 1 END, 'x')) AS v FROM base"),), fingerprint, bit=True),
    Attack("one-bit", "HAVING on the maximum BMI of a group holding the target",
           (agg(f"SELECT sex, count(*) AS n FROM base WHERE {G1} OR {{T}} GROUP BY sex "
                "HAVING max(bmi) > 30"),), fingerprint, bit=True),
    Attack("one-bit", "the size verdict of k - 1 others plus the target if obese",
           (define("b", "SELECT pid FROM base WHERE ({T} AND bmi > 30) OR ({G9})"),),
           fingerprint, bit=True),
    Attack("one-bit", "EXISTS over the target: everyone or no one",
           (define("b", "SELECT pid, bmi FROM base WHERE EXISTS "
                        "(SELECT 1 FROM base t WHERE t.sex = {S} AND t.birth_year = {Y} "
                        "AND t.sbp = {P} AND t.bmi > 30)"),), fingerprint, bit=True),
    Attack("one-bit", "HAVING comparing a count that skips the target if obese",
           (agg(f"SELECT sex, count(*) AS n FROM base WHERE {G1} OR {{T}} GROUP BY sex HAVING "
                "count(CASE WHEN {T} AND bmi > 30 THEN NULL ELSE 1 END) = count(*)"),),
           fingerprint, bit=True),
    Attack("one-bit", "a survival time that is negative only if the target is obese",
           (define("f", "SELECT pid, CASE WHEN {T} AND bmi > 30 THEN -1 ELSE 100 END AS tm, "
                        "1 AS ev FROM base"),
            analyse({"kind": "kaplan_meier", "definition": "f", "time": "tm", "event": "ev",
                     "interval": 50})),
           fingerprint, bit=True),
    Attack("one-bit", "an infinite value only if the target is obese",
           (define("f", "SELECT pid, CASE WHEN {T} AND bmi > 30 THEN CAST('inf' AS DOUBLE) "
                        "ELSE 1.0 END AS x FROM base"),
            analyse({"kind": "summary", "definition": "f", "variables": ["x"],
                     "statistics": ["mean"]})),
           fingerprint, bit=True),
    Attack("one-bit", "ntile() with a count of 0 only if the target is obese",
           (define("b", "SELECT pid, ntile(CASE WHEN {T} AND bmi > 30 THEN 0 ELSE 1 END) OVER "
                        "(PARTITION BY pid) AS v FROM base"),), fingerprint, bit=True),
    Attack("one-bit", "a definition past the row limit only if the target is obese",
           (define("b", "WITH d0 AS (SELECT pid FROM base WHERE {T} AND bmi > 30), "
                        + ", ".join(f"d{j} AS (SELECT pid FROM d{j - 1} UNION ALL "
                                    f"SELECT pid FROM d{j - 1})" for j in range(1, 24))
                        + " SELECT pid FROM base UNION ALL SELECT b.pid FROM base b "
                          "JOIN d23 ON b.pid = d23.pid"),), fingerprint, bit=True),
    Attack("one-bit", "the target's copies joined with themselves past the row limit if obese",
           (define("b", "WITH d0 AS (SELECT pid FROM base WHERE {T} AND bmi > 30), "
                        + ", ".join(f"d{j} AS (SELECT pid FROM d{j - 1} UNION ALL "
                                    f"SELECT pid FROM d{j - 1})" for j in range(1, 12))
                        + " SELECT a.pid FROM d11 a JOIN d11 b ON a.pid = b.pid"),),
           fingerprint, bit=True),
    Attack("one-bit", "a LEFT join's NULLs split the target's group if obese, then doubled",
           (define("rep", "SELECT pid, 0 AS flag FROM base UNION ALL SELECT pid, 1 AS flag "
                          "FROM base"),
            define("g", "SELECT r.pid, b.sex FROM rep r LEFT JOIN base b ON r.pid = b.pid "
                        "AND r.flag = 1 AND {T} AND b.bmi > 30 GROUP BY r.pid, b.sex"),
            define("h", "SELECT g0.pid FROM g g0 "
                        + " ".join(f"JOIN g g{j} ON g0.pid = g{j}.pid" for j in range(1, 13)))),
           fingerprint, bit=True),
    Attack("one-bit", "aggregate SQL over a definition's rows joined with themselves",
           (define("rep", "SELECT pid, sex FROM base UNION ALL SELECT pid, sex FROM base "
                          "WHERE {T} AND bmi > 30"),
            agg("SELECT r.sex, count(*) AS n FROM rep r JOIN rep s ON r.pid = s.pid "
                "JOIN rep u ON r.pid = u.pid JOIN rep v ON r.pid = v.pid GROUP BY r.sex")),
           seen, bit=True),
    Attack("one-bit", "a logistic regression of obesity on the flag (separation?)",
           (define("f", "SELECT pid, sex, CASE WHEN bmi > 30 THEN 1 ELSE 0 END AS obese, "
                        "CASE WHEN {T} THEN 1 ELSE 0 END AS flag FROM base "
                        "WHERE bmi IS NOT NULL"),
            analyse({"kind": "logistic", "definition": "f", "outcome": "obese",
                     "covariates": ["sex", "flag"]})),
           fingerprint, bit=True),
    Attack("one-bit", "a follow-up too long to tabulate only if the target is obese",
           (define("f", "SELECT pid, CASE WHEN {T} AND bmi > 30 THEN 100000 ELSE 1 END AS t, "
                        "1 AS e FROM base"),
            analyse({"kind": "kaplan_meier", "definition": "f", "time": "t", "event": "e",
                     "interval": 1})),
           seen, bit=True),
    Attack("one-bit", "an outcome that is constant unless the target is obese",
           (define("f", "SELECT pid, sex, CASE WHEN {T} AND bmi > 30 THEN 1 ELSE 0 END AS y "
                        "FROM base"),
            analyse({"kind": "ols", "definition": "f", "outcome": "y", "covariates": ["sex"]})),
           seen, bit=True),
]

# A definition may repeat a participant's row as often as their own value says (row-local:
# each copy is theirs); counts of rows then carry the value while the participants stay the
# same. Doubling CTEs give 2^j copies of the target's row, bit j of ⌊100·BMI⌋ − 1000.
_DOUBLINGS = 13
REPEATED = ("WITH d0 AS (SELECT pid FROM base WHERE {T}), "
            + ", ".join(f"d{j} AS (SELECT pid FROM d{j - 1} UNION ALL SELECT pid FROM d{j - 1})"
                        for j in range(1, _DOUBLINGS))
            + " SELECT pid, sex FROM base "
            + " ".join(f"UNION ALL SELECT b.pid, b.sex FROM base b JOIN d{j} ON b.pid = d{j}.pid "
                       f"WHERE (CAST(floor(b.bmi * 100) AS BIGINT) - 1000) // {2 ** j} % 2 = 1"
                       for j in range(_DOUBLINGS)))
ONCE_MORE_IF_OBESE = ("SELECT pid, sex FROM base UNION ALL "
                      "SELECT pid, sex FROM base WHERE {T} AND bmi > 30")


def _from_rows(i: int, j: int, column: str, row: tuple[str, ...] | None) -> Recovery:
    def recover(obs: list[Obs], t: Target) -> float | None:
        a, b = value(obs, i, column, row), value(obs, j, column, row)
        return None if a is None or b is None else (a - b + 1000) / 100
    return recover


ROWS = [
    Attack("values", "the target's row repeated BMI×100 times, in a frequency's total",
           (define("rep", REPEATED),
            analyse({"kind": "frequency", "definition": "rep", "variable": "sex"}),
            analyse({"kind": "frequency", "definition": "base", "variable": "sex"})),
           _from_rows(1, 2, "count", ("Total",))),
    Attack("values", "the target's row repeated BMI×100 times, in count(*)",
           (define("rep", REPEATED), agg("SELECT count(*) AS n FROM rep"),
            agg("SELECT count(*) AS n FROM base")),
           _from_rows(1, 2, "n", None)),
    Attack("one-bit", "one more row only if the target is obese, in a frequency",
           (define("rep", ONCE_MORE_IF_OBESE),
            analyse({"kind": "frequency", "definition": "rep", "variable": "sex"})),
           seen, bit=True),
    Attack("one-bit", "one more row only if the target is obese, in count(*)",
           (define("rep", ONCE_MORE_IF_OBESE), agg("SELECT count(*) AS n FROM rep")),
           seen, bit=True),
    Attack("one-bit", "a sum with one large contribution only if the target is obese",
           (agg("SELECT sum(CASE WHEN {T} AND bmi > 30 THEN 1000 ELSE 1 END) AS s FROM base"),),
           seen, bit=True),
    Attack("one-bit", "a category held by the target alone only if they are obese",
           (define("f", "SELECT pid, CASE WHEN {T} AND bmi > 30 THEN 'x' ELSE 'y' END AS g "
                        "FROM base"),
            analyse({"kind": "frequency", "definition": "f", "variable": "g"})),
           seen, bit=True),
    Attack("combinations", "percentages without margins give the total with a removed group",
           (define("f", "SELECT pid, sex, CASE WHEN {T} THEN NULL ELSE 1 END AS g FROM base"),
            analyse({"kind": "frequency", "definition": "f", "variable": "g",
                     "missing": False}),
            analyse({"kind": "crosstab", "definition": "f", "rows": "sex", "columns": "g",
                     "margins": False, "percentages": "total"})),
           lambda obs, t: _grand_from_percent(obs, 2, t)),
]


def _grand_from_percent(obs: list[Obs], i: int, t: Target) -> float | None:
    """A count over its percentage is the grand total; less the total without the removed
    group (the target alone, missing g) it is 1, so the target's BMI is then known from a
    third release (left out: the group's size is what this attack shows given away)."""
    shown_counts = {(str(c["row"]), c["column"]): c["value"] for c in cells(obs, i)
                    if c.get("kind") == "count"}
    for c in cells(obs, i):
        key = (str(c["row"]), c["column"])
        if c.get("kind") == "percent" and c["value"] and key in shown_counts:
            grand = shown_counts[key] * 100 / c["value"]
            rest = value(obs, 1, "count", ("Total",))
            # recovered when the removed group's size (1) comes out exactly: report the BMI
            return t.bmi if rest is not None and round(grand - rest, 6) == 1 else None
    return None


PRECISION = [
    Attack("precision", "sums over a group and over it plus the target and people without BMI",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE {MIDDLE} AND NOT coalesce({{T}}, false)"),
            agg(f"SELECT sum(bmi) AS s FROM base WHERE {MIDDLE} OR bmi IS NULL")),
           difference(1, 0)),
    Attack("precision", "means and counts over a group with and without the target",
           (agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE {MIDDLE} AND NOT "
                "coalesce({T}, false)"),
            agg(f"SELECT count(bmi) AS n, avg(bmi) AS m FROM base WHERE {MIDDLE} OR "
                "bmi IS NULL")),
           weighted([1, -1], [1, 0])),
    Attack("precision", "the target's BMI multiplied by 1000 in one sum",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE {MIDDLE}"),
            agg(f"SELECT sum(CASE WHEN {{T}} THEN bmi * 1000 ELSE bmi END) AS s FROM base "
                f"WHERE {MIDDLE}")),
           difference(1, 0, scale=999.0)),
    Attack("precision", "a mean of a column that is the BMI for the target alone",
           (agg("SELECT count(*) AS n, avg(CASE WHEN {T} THEN bmi ELSE 0 END) AS m FROM base"),),
           lambda obs, t: None if not all_of(value(obs, 0, "n"), value(obs, 0, "m"))
           else value(obs, 0, "n") * value(obs, 0, "m")),  # type: ignore[operator]
    Attack("precision", "the target's BMI times a million beside everyone's",
           (agg(f"SELECT count(*) AS n, sum(bmi) AS s FROM base WHERE {MIDDLE}"),
            agg(f"SELECT count(*) AS n, sum(bmi + CASE WHEN {{T}} THEN bmi * 1000000 ELSE 0 END)"
                f" AS s FROM base WHERE {MIDDLE}")),
           difference(1, 0, scale=1_000_000.0)),
    Attack("precision", "standard deviations over a group with and without the target",
           (agg(f"SELECT count(bmi) AS n, avg(bmi) AS m, stddev(bmi) AS sd FROM base WHERE "
                f"{MIDDLE} OR bmi IS NULL"),
            agg(f"SELECT count(bmi) AS n, avg(bmi) AS m, stddev(bmi) AS sd FROM base WHERE "
                f"{MIDDLE} AND NOT coalesce({{T}}, false)")),
           sd_recovery),
    Attack("precision", "regressions over a group with and without the target",
           (define("with_t", f"SELECT pid, bmi, sex FROM base WHERE {MIDDLE} OR bmi IS NULL"),
            define("without", f"SELECT pid, bmi, sex FROM base WHERE {MIDDLE} AND "
                              "NOT coalesce({T}, false)"),
            agg(f"SELECT sex, count(bmi) AS n FROM base WHERE {MIDDLE} GROUP BY sex"),
            analyse({"kind": "ols", "definition": "with_t", "outcome": "bmi",
                     "covariates": ["sex"]}),
            analyse({"kind": "ols", "definition": "without", "outcome": "bmi",
                     "covariates": ["sex"]})),
           lambda obs, t: None if not all_of(coef(obs, 3, "const"), coef(obs, 4, "const"),
                                          coef(obs, 3, "sex"), coef(obs, 4, "sex"),
                                          value(obs, 2, "n", (str(t.sex),)))
           else value(obs, 2, "n", (str(t.sex),))  # type: ignore[operator]
           * ((coef(obs, 3, "const") + t.sex * coef(obs, 3, "sex"))  # type: ignore[operator]
              - (coef(obs, 4, "const") + t.sex * coef(obs, 4, "sex")))  # type: ignore[operator]
           + (coef(obs, 3, "const") + t.sex * coef(obs, 3, "sex"))),  # type: ignore[operator]
    Attack("precision", "a summary of two definitions, with and without the target",
           (define("with_t", f"SELECT pid, bmi FROM base WHERE {MIDDLE} OR bmi IS NULL"),
            define("without", f"SELECT pid, bmi FROM base WHERE {MIDDLE} AND "
                              "NOT coalesce({T}, false)"),
            analyse({"kind": "summary", "definition": "with_t", "variables": ["bmi"],
                     "statistics": ["n", "mean"]}),
            analyse({"kind": "summary", "definition": "without", "variables": ["bmi"],
                     "statistics": ["n", "mean"]})),
           lambda obs, t: None if not all_of(value(obs, 2, "n", ("bmi",)),
                                          value(obs, 2, "mean", ("bmi",)),
                                          value(obs, 3, "n", ("bmi",)),
                                          value(obs, 3, "mean", ("bmi",)))
           else value(obs, 2, "n", ("bmi",)) * value(obs, 2, "mean", ("bmi",))  # type: ignore[operator]
           - value(obs, 3, "n", ("bmi",)) * value(obs, 3, "mean", ("bmi",))),  # type: ignore[operator]
    Attack("precision", "a crosstab mean by sex with and without the target",
           (define("with_t", f"SELECT pid, bmi, sex FROM base WHERE {MIDDLE} OR bmi IS NULL"),
            agg("SELECT sex, count(bmi) AS n, avg(bmi) AS m FROM with_t GROUP BY sex"),
            agg(f"SELECT sex, count(bmi) AS n, avg(bmi) AS m FROM base WHERE {MIDDLE} AND "
                "NOT coalesce({T}, false) GROUP BY sex")),
           lambda obs, t: None if not all_of(*(value(obs, i, c, (str(t.sex),))
                                            for i in (1, 2) for c in ("n", "m")))
           else value(obs, 1, "n", (str(t.sex),)) * value(obs, 1, "m", (str(t.sex),))  # type: ignore[operator]
           - value(obs, 2, "n", (str(t.sex),)) * value(obs, 2, "m", (str(t.sex),))),  # type: ignore[operator]
]


# -- figures inverted when everyone else is known by construction (fits, medians) -----------
# The others' outcome is 0 or 1 (or 0 or 60) by a rule whose counts a crosstab releases; only
# the target's is their BMI. A fit's R², log-likelihood or correlation, or a survival
# estimate, is then a function of that one value (found by an attacker's review).
_TC = "coalesce({T}, false)"
_KNOWN_OTHERS = ("SELECT pid, sex, CASE WHEN " + _TC + " THEN bmi WHEN birth_year < 1950 THEN "
                 "{high} ELSE 0 END AS y, CASE WHEN birth_year < 1950 THEN 1 ELSE 0 END AS old "
                 "FROM base WHERE bmi IS NOT NULL OR NOT " + _TC)
_CROSSTAB = {"kind": "crosstab", "definition": "o", "rows": "sex", "columns": "old"}


def _others(obs: list[Obs], t: Target, high: float) -> dict[tuple[int, float], float] | None:
    """(sex, outcome) → how many others, from the released crosstab, less the target."""
    counts = {(str(c["row"][0]), str(c["column"])): float(c["value"]) for c in cells(obs, 1)
              if c.get("kind") == "count"}
    try:
        found = {(sex, high * old): counts[(str(sex), str(old))]
                 for sex in (0, 1) for old in (0, 1)}
    except KeyError:
        return None
    found[(t.sex, high if t.birth_year < 1950 else 0.0)] -= 1
    return found


def _invert(figure: Callable[[FloatArray], FloatArray], seen: float) -> float | None:
    """The BMI in 10–60 whose figure is ``seen`` (the nearest on a fine grid): ``figure``
    is computed over the whole grid at once (50,001 scalar calls of a t distribution's tail
    were 15 CPU-s an inversion)."""
    grid = 10 + np.arange(50_001) / 1000
    with np.errstate(divide="ignore", invalid="ignore"):
        misses = np.abs(np.asarray(figure(grid), dtype=float) - seen)
    if np.isnan(misses).all():
        return None
    return float(grid[int(np.nanargmin(misses))])


def _pearson_with(others: dict[tuple[int, float], float], t: Target,
                  y: FloatArray) -> FloatArray:
    """The correlation of sex and y, the target's y for each of ``y``."""
    w = sum(others.values()) + 1.0
    mx = (sum(n * s for (s, _), n in others.items()) + t.sex) / w
    my = (sum(n * v for (_, v), n in others.items()) + y) / w
    sxy = sum(n * (s - mx) * (v - my) for (s, v), n in others.items()) + (t.sex - mx) * (y - my)
    sxx = sum(n * (s - mx) ** 2 for (s, _), n in others.items()) + (t.sex - mx) ** 2
    syy = sum(n * (v - my) ** 2 for (_, v), n in others.items()) + (y - my) ** 2
    out: FloatArray = sxy / np.sqrt(sxx * syy)
    return out


def _rss_with(others: dict[tuple[int, float], float], t: Target,
              y: FloatArray) -> tuple[FloatArray, int]:
    """The residual sum of squares of y on sex (one mean per sex), for each of the target's
    ``y``, and the row count."""
    rss: FloatArray = np.zeros_like(y)
    rows = 0
    for sex in (0, 1):
        group = [(v, n) for (s, v), n in others.items() if s == sex]
        mine = 1.0 if sex == t.sex else 0.0
        n = sum(c for _, c in group) + mine
        mean = (sum(v * c for v, c in group) + mine * y) / n
        rss = rss + sum(c * (v - mean) ** 2 for v, c in group) + mine * (y - mean) ** 2
        rows += int(n)
    return rss, rows


def _from_log_likelihood(obs: list[Obs], t: Target) -> float | None:
    others, llf = _others(obs, t, 1.0), value(obs, 2, "log_likelihood")
    if others is None or llf is None:
        return None

    def figure(y: FloatArray) -> FloatArray:
        rss, n = _rss_with(others, t, y)
        out: FloatArray = -n / 2 * (1 + math.log(2 * math.pi) + np.log(rss / n))
        return out
    return _invert(figure, llf)


def _from_r_squared(obs: list[Obs], t: Target) -> float | None:
    others, r2 = _others(obs, t, 1.0), value(obs, 2, "r_squared")
    if others is None or r2 is None:
        return None

    def figure(y: FloatArray) -> FloatArray:
        rss, _ = _rss_with(others, t, y)
        n = sum(others.values()) + 1.0
        mean = (sum(v * c for (_, v), c in others.items()) + y) / n
        total = sum(c * (v - mean) ** 2 for (_, v), c in others.items()) + (y - mean) ** 2
        out: FloatArray = 1 - rss / total
        return out
    return _invert(figure, r2)


def _from_p_value(obs: list[Obs], t: Target) -> float | None:
    """The intercept's p-value is the exact t of the sex-0 group's mean over its standard
    error, a function of the target's outcome alone (log p, for p can be 1e-100)."""
    from scipy import stats

    others = _others(obs, t, 1.0)
    p = next((float(c["value"]) for c in cells(obs, 2)
              if c["row"] == ["Intercept"] and c["column"] == "p"), None)
    if others is None or p is None or not 0 < p < 1:
        return None

    def figure(y: FloatArray) -> FloatArray:
        rss, n = _rss_with(others, t, y)
        group = [(v, c) for (s, v), c in others.items() if s == 0]
        mine = 1.0 if t.sex == 0 else 0.0
        size = sum(c for _, c in group) + mine
        mean = (sum(v * c for v, c in group) + mine * y) / size
        score = np.abs(mean) / np.sqrt(rss / (n - 2) / size)
        out: FloatArray = stats.t.logsf(score, n - 2) + math.log(2)
        return out
    return _invert(figure, math.log(p))


def _from_correlation(obs: list[Obs], t: Target) -> float | None:
    others = _others(obs, t, 60.0)
    r = next((float(c["value"]) for c in cells(obs, 2)
              if c["row"] == ["sex"] and c["column"] == "y"), None)
    if others is None or r is None:
        return None
    return _invert(lambda y: _pearson_with(others, t, y), r)


def _km_definition(target_time: str, others_time: str) -> str:
    return ("SELECT pid, CASE WHEN " + _TC + f" THEN {target_time} WHEN sex = 0 THEN "
            f"{others_time} ELSE 31 END AS t, CASE WHEN " + _TC + " THEN 0 WHEN sex = 0 THEN 1 "
            "ELSE 0 END AS e FROM base WHERE (sex = 0 OR smoking = 2 OR " + _TC + ") AND ("
            + _TC + " AND bmi IS NOT NULL OR NOT " + _TC + ")")


_BUCKET = "(least(greatest(birth_year, 1939), 1968) - 1938)"  # 1–30


def _from_survival(obs: list[Obs], t: Target) -> float | None:
    """Each survival estimate, recomputed for the target censored in every bucket, names the
    bucket; two permutations of the others' buckets give the BMI's whole part and fraction."""
    events: dict[int, float] = {}
    for c in cells(obs, 3):
        if c["column"] == "events" and c["value"]:
            events[int(float(str(c["row"][1]).split(",")[1].split("]")[0]))] = float(c["value"])
    found = []
    for i, factor in ((4, 7), (5, 11)):
        got = {c["column"]: float(c["value"]) for c in cells(obs, i)}
        if "survival" not in got or "at_risk" not in got or not events:
            return None
        moved = {(factor * y) % 31: n for y, n in events.items()}
        fits = []
        for k in range(1, 32):
            at, s, gone = got["at_risk"], 1.0, False
            for when in sorted(moved):
                if not gone and k <= when:
                    at, gone = at - 1, True
                s *= 1 - moved[when] / at
                at -= moved[when]
            fits.append((abs(s - got["survival"]), k))
        found.append(min(fits)[1])
    return 15 + (found[0] - 1) + (found[1] - 0.5) / 30


def _rows_around(lo: float, hi: float) -> str:
    """Everyone else two rows, −1000 and 1000 + a number of their own in [lo, hi]; the target
    one row, their BMI: the middle row of all is the target's, and everyone's *total* lies in
    [lo, hi], packed around it (an adult's BMI is rarely outside 25–35)."""
    spread = ("((coalesce(bmi, 0) * 1000 + coalesce(sbp, 0) * 7.31 + coalesce(birth_year, 0) "
              "* 0.1713 + coalesce(centre, 0) * 0.0137) % 1.0)")
    return ("SELECT pid, CASE WHEN " + _TC + " THEN bmi ELSE -1000.0 END AS y FROM base WHERE "
            "bmi IS NOT NULL OR NOT " + _TC + " UNION ALL SELECT pid, 1000.0 + "
            f"({lo} + {hi - lo} * {spread}) AS y FROM base WHERE NOT " + _TC)


# A rounding boundary bisected: everyone's contribution is known but the target's (a group
# G1 at a chosen `a`, a group at 60 so the spread and so the step stay put, one at 30 so the
# mean is not over a few distinct values, the rest 0), and
# each release moves `a` to halve the interval where the mean's rounding flips; where it
# flips gives the target's value. Nearest rounding gave a BMI to 0.015 in a dozen releases.
_G1 = "birth_year < 1950 AND NOT ({T})"
_G60 = "birth_year > 1962 AND NOT ({T})"
_G30 = "birth_year = 1955 AND NOT ({T})"
_HALVINGS = 14


def nice_step(size: float) -> float:
    """The release step an attacker reads off the docs: the least 1, 2 or 5 × 10ⁿ ≥ size
    (written out here: the benchmark runs this catalogue against commits that lack it)."""
    exponent = math.floor(math.log10(size))
    return next(f * 10.0**exponent for f in (1, 2, 5, 10) if f * 10.0**exponent >= size)


def _shifted_mean(a: float) -> dict[str, Any]:
    return {"kind": "aggregate_sql", "sql":
            f"SELECT avg(CASE WHEN {{T}} THEN bmi WHEN {_G1} THEN {a!r} WHEN {_G60} THEN 60 "
            f"WHEN {_G30} THEN 30 ELSE 0 END) AS m FROM base WHERE bmi IS NOT NULL OR NOT ({{T}})"}


def _sizes(obs: list[Obs]) -> tuple[float, float, float, float] | None:
    """n, the G1 count, what the others at 60 and 30 add, and the step a mean over n with a
    spread of 60 gets."""
    n, n1, n60, n30 = (value(obs, 0, c) for c in ("n", "n1", "n60", "n30"))
    if n is None or n1 is None or n60 is None or n30 is None or not n1:
        return None
    return n, n1, 60 * n60 + 30 * n30, nice_step(60.0 / n)


def _bracket(obs: list[Obs]) -> tuple[float, float, float] | None:
    """(first rounded mean, low a, high a) after the releases seen so far."""
    sizes, first = _sizes(obs), value(obs, 1, "m")
    if sizes is None or first is None:
        return None
    n, n1, _, step = sizes
    low, high = 0.0, step * n / n1  # the mean rises by one step over it: one boundary
    for i in range(2, len(obs)):
        seen = value(obs, i, "m")
        mid = (low + high) / 2
        if seen is not None and seen >= first + step / 2:
            high = mid
        else:
            low = mid
    return first, low, high


def _next_shift(obs: list[Obs]) -> dict[str, Any]:
    found = _bracket(obs)
    return _shifted_mean(0.0 if found is None else (found[1] + found[2]) / 2)


def _from_boundary(obs: list[Obs], t: Target) -> float | None:
    sizes, found = _sizes(obs), _bracket(obs)
    if sizes is None or found is None:
        return None
    n, n1, fixed, step = sizes
    first, _, high = found
    return n * (first + step / 2) - n1 * high - fixed


BOUNDARY = [
    Attack("precision", "a mean's rounding boundary bisected by shifting everyone else",
           (agg(f"SELECT count(*) AS n, count(CASE WHEN {_G1} THEN 1 END) AS n1, "
                f"count(CASE WHEN {_G60} THEN 1 END) AS n60, "
                f"count(CASE WHEN {_G30} THEN 1 END) AS n30 FROM base "
                "WHERE bmi IS NOT NULL OR NOT ({T})"),
            analyse(_shifted_mean(0.0)),
            *(analyse(_next_shift) for _ in range(_HALVINGS))),
           _from_boundary),
]


FIGURES = [
    Attack("precision", "a median of rows where everyone's total is packed around the target",
           (define("m", _rows_around(25.0, 35.0)),
            analyse({"kind": "summary", "definition": "m", "variables": ["y"],
                     "statistics": ["median"]})),
           lambda obs, t: value(obs, 1, "median", ("y",))),
    Attack("precision", "the same median of rows, in aggregate SQL",
           (define("m", _rows_around(25.0, 35.0)), agg("SELECT median(y) AS md FROM m")),
           lambda obs, t: value(obs, 1, "md")),
    Attack("precision", "a fit's log-likelihood where everyone but the target is 0 or 1",
           (define("o", _KNOWN_OTHERS.replace("{high}", "1")), analyse(_CROSSTAB),
            analyse({"kind": "ols", "definition": "o", "outcome": "y", "covariates": ["sex"]})),
           _from_log_likelihood),
    Attack("precision", "a fit's R² where everyone but the target is 0 or 1",
           (define("o", _KNOWN_OTHERS.replace("{high}", "1")), analyse(_CROSSTAB),
            analyse({"kind": "ols", "definition": "o", "outcome": "y", "covariates": ["sex"]})),
           _from_r_squared),
    Attack("precision", "a fit's p-value where everyone but the target is 0 or 1",
           (define("o", _KNOWN_OTHERS.replace("{high}", "1")), analyse(_CROSSTAB),
            analyse({"kind": "ols", "definition": "o", "outcome": "y", "covariates": ["sex"]})),
           _from_p_value),
    Attack("precision", "a correlation where everyone but the target is 0 or 60",
           (define("o", _KNOWN_OTHERS.replace("{high}", "60")), analyse(_CROSSTAB),
            analyse({"kind": "correlation", "definition": "o", "variables": ["sex", "y"]})),
           _from_correlation),
    Attack("precision", "survival estimates that place the target's censoring by its BMI",
           (define("ref", _km_definition("31", _BUCKET)),
            define("k1", _km_definition("bmi - 15", f"({_BUCKET} * 7) % 31")),
            define("k2", _km_definition("30 * (bmi - floor(bmi))", f"({_BUCKET} * 11) % 31")),
            analyse({"kind": "kaplan_meier", "definition": "ref", "time": "t", "event": "e",
                     "interval": 1}),
            analyse({"kind": "kaplan_meier", "definition": "k1", "time": "t", "event": "e",
                     "interval": 1000}),
            analyse({"kind": "kaplan_meier", "definition": "k2", "time": "t", "event": "e",
                     "interval": 1000})),
           _from_survival),
]


# -- attacks on winsorisation (enclave/winsor.py) ----------------------------------------------
# Values are clipped at the k-th smallest and largest participant, and categories held by
# fewer than k are counted in the most common one. These try to get round it: k − 1
# accomplices ({G9}) beside the target, the target at the bound itself, a value just inside
# the bulk, two statistics whose bounds differ.
_JOINS = "({G9}) OR ({T} AND bmi > 30)"  # the accomplices, and the target only if obese
_ZOOMS = 6


def _zoomed(obs: list[Obs]) -> dict[str, Any]:
    """The target's value is (BMI − g)·s + 1 with k − 1 accomplices far above, so that it
    is the k-th largest and the accomplices are clipped to it: the sum is k times it. Each
    release moves g to the last estimate less a margin and multiplies s by ten."""
    shift, scale = _zoom_at(obs)
    return {"kind": "aggregate_sql", "sql":
            f"SELECT sum(CASE WHEN {{G9}} THEN 1e9 WHEN {{T}} THEN (bmi - {shift!r}) * "
            f"{scale!r} + 1 ELSE 0 END) AS s FROM base WHERE bmi IS NOT NULL OR NOT ({{T}})"}


def _zoom_at(obs: list[Obs]) -> tuple[float, float]:
    shift, scale = 10.0, 1.0
    for i in range(len(obs)):
        seen = value(obs, i, "s")
        if seen is not None and seen > 0:
            shift = shift + (seen / 10 - 1) / scale - 1 / scale
        scale *= 10
    return shift, scale


def _from_zoom(obs: list[Obs], t: Target) -> float | None:
    if not obs:
        return None
    seen = value(obs, len(obs) - 1, "s")
    if seen is None:
        return None
    shift, scale = _zoom_at(obs[:-1])
    return shift + (seen / 10 - 1) / scale


WINSOR = [
    # read by its verdict alone: lean, the k − 1 are clipped to the bulk's 1 and the sum of
    # identical values is blocked; obese, k hold 1000 and it is released. Its numbers are
    # rounded by a keyed draw that differs between projects, so reading them as well (seen)
    # only hid the bit in some worlds
    Attack("one-bit", "k − 1 accomplices share a large value; the target joins them if obese",
           (agg(f"SELECT sum(CASE WHEN {_JOINS} THEN 1000 ELSE 1 END) AS s FROM base"),),
           fingerprint, bit=True),
    Attack("one-bit", "a category held by k − 1 others and by the target if obese",
           (define("f", f"SELECT pid, CASE WHEN {_JOINS} THEN 'x' ELSE 'y' END AS g FROM base"),
            analyse({"kind": "frequency", "definition": "f", "variable": "g"})),
           seen, bit=True),
    Attack("one-bit", "an outcome that k − 1 others and the target if obese hold",
           (define("f", f"SELECT pid, sex, CASE WHEN {_JOINS} THEN 1 ELSE 0 END AS y "
                        "FROM base"),
            analyse({"kind": "ols", "definition": "f", "outcome": "y", "covariates": ["sex"]})),
           seen, bit=True),
    Attack("one-bit", "one more row for k − 1 others and the target if obese, in count(*)",
           (define("rep", f"SELECT pid, sex FROM base UNION ALL SELECT pid, sex FROM base "
                          f"WHERE {_JOINS}"),
            agg("SELECT count(*) AS n FROM rep")),
           seen, bit=True),
    Attack("one-bit", "a value just inside the bulk only if the target is obese",
           (agg("SELECT sum(CASE WHEN {T} THEN (CASE WHEN bmi > 30 THEN 2 ELSE 1 END) "
                "ELSE 1 + birth_year % 2 END) AS s FROM base"),),
           seen, bit=True),
    Attack("one-bit", "two sums whose bounds differ: the cohort, and ten people below 2k",
           (agg("SELECT sum(CASE WHEN {T} AND bmi > 30 THEN 1000 ELSE 1 END) AS a, "
                "sum(CASE WHEN {T} AND bmi > 30 THEN 1000 WHEN {T} OR ({G9}) THEN 1 END) AS b "
                "FROM base"),),
           seen, bit=True),
    Attack("values", "the target's BMI as the k-th largest, k − 1 accomplices clipped to it",
           (agg("SELECT sum(CASE WHEN {G9} THEN 1000 WHEN {T} THEN bmi ELSE 0 END) AS s "
                "FROM base WHERE bmi IS NOT NULL OR NOT ({T})"),),
           lambda obs, t: None if value(obs, 0, "s") is None
           else value(obs, 0, "s") / 10),  # type: ignore[operator]
    Attack("values", "the same mean, the target's BMI at the bound",
           (agg("SELECT count(*) AS n, avg(CASE WHEN {G9} THEN 1000 WHEN {T} THEN bmi "
                "ELSE 0 END) AS m FROM base WHERE bmi IS NOT NULL OR NOT ({T})"),),
           lambda obs, t: None if not all_of(value(obs, 0, "m"), value(obs, 0, "n"))
           else value(obs, 0, "m") * value(obs, 0, "n") / 10),  # type: ignore[operator]
    Attack("values", "the bound zoomed in on the target's BMI, release by release",
           tuple(analyse(_zoomed) for _ in range(_ZOOMS)), _from_zoom),
]


# -- the threshold's own line (enclave/margin.py) ------------------------------------------
# k − 1 accomplices and the target make a group of exactly k only if the target is obese:
# every decision "is this group held by k?" answers it unless the line moves. Each is drawn
# at k plus a margin keyed by the request, so the obese target's group of k stands only when
# its draw is 0.
_K = _JOINS  # the accomplices, and the target only if obese
_OUT = f"NOT coalesce({_K}, false)"  # everyone else (a NULL is not left out by chance)
EXACTLY_K = [
    Attack("one-bit", "a count of k − 1 accomplices and the target if obese",
           (agg(f"SELECT count(*) AS n FROM base WHERE {_K}"),), seen, bit=True),
    Attack("one-bit", "a group key held by k − 1 accomplices and the target if obese",
           (agg(f"SELECT CASE WHEN {_K} THEN 'x' ELSE 'y' END AS g, count(*) AS n FROM base "
                "GROUP BY g"),), seen, bit=True),
    Attack("one-bit", "a mean over k − 1 accomplices and the target if obese",
           (agg(f"SELECT count(*) AS n, avg(birth_year) AS m FROM base WHERE {_K}"),), seen,
           bit=True),
    Attack("one-bit", "a crosstab column held by k − 1 accomplices and the target if obese",
           (define("f", f"SELECT pid, sex, CASE WHEN {_K} THEN 'x' ELSE 'y' END AS g "
                        "FROM base"),
            analyse({"kind": "crosstab", "definition": "f", "rows": "sex", "columns": "g"})),
           seen, bit=True),
    Attack("one-bit", "a definition of k − 1 accomplices and the target if obese, counted",
           (define("f", f"SELECT pid, sex FROM base WHERE {_K}"),
            analyse({"kind": "frequency", "definition": "f", "variable": "sex"})),
           seen, bit=True),
    Attack("one-bit", "a summary's n over k − 1 accomplices and the target if obese",
           (define("f", f"SELECT pid, birth_year FROM base WHERE {_K}"),
            analyse({"kind": "summary", "definition": "f", "variables": ["birth_year"],
                     "statistics": ["n"]})),
           seen, bit=True),
    # past the margin: a group whose size the attacker knows from outside and that reaches
    # 2k − 1 is shown whatever the draw; its count, were it exact, would say whether the
    # target is in it (counts are rounded by a keyed unbiased draw: outputs/precision.py)
    Attack("one-bit", "a count of 2k − 2 accomplices and the target if obese",
           (agg("SELECT count(*) AS n FROM base WHERE ({G18}) OR ({T} AND bmi > 30)"),),
           lambda obs, t: value(obs, 0, "n"), bit=True),
    # differencing is a decision on a group's size too: two cells (or statistics) k − 1
    # accomplices and the target apart pass only if the target is obese, at a line of k
    # (listed after the known one above: run before it, they change what it sees)
    Attack("one-bit", "two counts of one output, k − 1 accomplices and the target if obese "
           "apart", (agg(f"SELECT count(*) AS a, count(CASE WHEN {_OUT} THEN 1 END) AS b "
                         "FROM base"),), fingerprint, bit=True),
    Attack("one-bit", "a count k − 1 accomplices and the target if obese apart from a released "
           "one", (agg("SELECT count(*) AS a FROM base"),
                   agg(f"SELECT count(*) AS b FROM base WHERE {_OUT}")), fingerprint, bit=True),
    Attack("one-bit", "two means of one output, values apart for k − 1 accomplices and the "
           "target if obese",
           (agg(f"SELECT count(*) AS n, avg(birth_year) AS a, avg(CASE WHEN {_K} THEN "
                "birth_year + 1 ELSE birth_year END) AS b FROM base"),), fingerprint, bit=True),
    Attack("one-bit", "a mean, values apart from a released one's for k − 1 accomplices and "
           "the target if obese",
           (agg("SELECT count(*) AS n, avg(birth_year) AS a FROM base"),
            agg(f"SELECT count(*) AS n, avg(CASE WHEN {_K} THEN birth_year + 1 ELSE "
                "birth_year END) AS b FROM base")), fingerprint, bit=True),
]


# -- attacker 2: the lines left at k, and one output of many keyed draws -------------------
# A review of the keyed margins found every rule that counted people at a fixed k (the
# combination audit's atoms, few values, partitions, Kaplan–Meier) and draws named per cell,
# which copies in one output repeat. Three cells none of which is close to another (A ∪ K, B,
# A ∪ B, with A and B large and disjoint) determine |K| = x + y − z, K being k − 1
# accomplices and the target only if obese. Each rule now decides at the keyed line, and a
# draw is named by the group's members (enclave/margin.py), so copies share it.


def _three(cond: str) -> str:
    k = f"coalesce(({{G9}}) OR ({{T}} AND {cond}), false)"
    return (f"SELECT count(CASE WHEN ({G1} AND NOT {k}) OR {k} THEN 1 END) AS x, "
            f"count(CASE WHEN {G2} AND NOT {k} THEN 1 END) AS y, "
            f"count(CASE WHEN ({G1} OR {G2}) AND NOT {k} THEN 1 END) AS z FROM base")


_LOW, _HIGH, _CUTS = 12.0, 60.0, 12


def _cut_range(obs: list[Obs]) -> tuple[float, float]:
    low, high = _LOW, _HIGH
    for o in obs:
        if o.step != "analyse":
            continue
        mid = (low + high) / 2
        above = any(c["column"] == "x" for c in cells([o], 0))
        low, high = (mid, high) if above else (low, mid)
    return low, high


def _next_cut(obs: list[Obs]) -> dict[str, Any]:
    low, high = _cut_range(obs)
    return {"kind": "aggregate_sql", "sql": _three(f"bmi > {(low + high) / 2!r}")}


def _from_cuts(obs: list[Obs], t: Target) -> float | None:
    low, high = _cut_range(obs)
    return (low + high) / 2


def _many_pairs(count: int, padding: int = 0) -> str:
    """One count of everyone and ``count`` identical counts of everyone but k − 1 accomplices
    and the target if obese: each (a, b_j) pair draws its own line; ``padding`` identical small
    counts first use up the check's own close-pair budget (check.MAX_CLOSE_PAIRS), so each
    pair is drawn once (the service's within-output rule), not twice."""
    parts = [f"count(CASE WHEN {G1} THEN 1 END) AS p{m}" for m in range(padding)]
    parts.append("count(*) AS a")
    parts += [f"count(CASE WHEN {_OUT} THEN 1 END) AS b{j}" for j in range(count)]
    return "SELECT " + ", ".join(parts) + " FROM base"


ATTACKER_2 = [
    # a released group and the same group with the target only if obese: identical (nothing
    # new, shown) or one apart (hidden): the exemption of identical sets is the bit
    Attack("one-bit", "a large group with the target, then with the target only if obese",
           (agg(f"SELECT count(*) AS n FROM base WHERE {G1} OR {{T}}"),
            agg(f"SELECT count(*) AS n FROM base WHERE {G1} OR ({{T}} AND bmi > 30)")),
           fingerprint, bit=True),
    Attack("one-bit", "one output: a large group with the target, and with the target only if "
           "obese",
           (agg(f"SELECT count(CASE WHEN {G1} OR {{T}} THEN 1 END) AS a, count(CASE WHEN {G1} "
                f"OR ({{T}} AND bmi > 30) THEN 1 END) AS b FROM base"),),
           fingerprint, bit=True),
    Attack("one-bit", "three cells none close to another determine k − 1 accomplices and the "
           "target if obese (the combination audit's line is fixed)",
           (agg(_three("bmi > 30")),), fingerprint, bit=True),
    Attack("values", "the combination audit's fixed line bisects the target's BMI",
           tuple(analyse(_next_cut) for _ in range(_CUTS)), _from_cuts),
    Attack("one-bit", "a hundred pairs in one output, each k − 1 accomplices and the "
           "target if obese apart: any shown says obese",
           (agg(_many_pairs(100, 201)),),
           lambda obs, t: any(c["column"].startswith("b") for c in cells(obs, 0)), bit=True),
    # check._disguised_counts: a mean over at most few_values distinct values, each held by
    # k (once at a fixed k): sex everywhere but 0.5 (no extreme, so no clip) for k − 1
    # accomplices and the target if obese
    Attack("one-bit", "a mean of sex but 0.5 for k − 1 accomplices and the target if obese "
           "(the few-values rule's fixed line)",
           (agg("SELECT sex, count(*) AS n FROM base GROUP BY sex"),
            agg(f"SELECT count(*) AS n, avg(CASE WHEN {_K} THEN 0.5 ELSE sex END) AS m "
                "FROM base WHERE sex IS NOT NULL")),
           fingerprint, bit=True),
    Attack("one-bit", "a mean of birth year but half a year more for k − 1 accomplices and "
           "the target if obese, beside released counts by birth year (the partition rule's "
           "fixed line)",
           (agg(f"SELECT birth_year, count(*) AS n FROM base WHERE {MIDDLE} GROUP BY birth_year"),
            agg(f"SELECT count(*) AS n, avg(CASE WHEN {_K} THEN birth_year + 0.5 WHEN "
                f"{MIDDLE} THEN birth_year ELSE 0 END) AS m FROM base")),
           fingerprint, bit=True),
    # precision._counts: each count's unbiased rounding, once drawn per cell, so that three
    # hundred copies of one count in one output averaged back to its exact size (sd ~0.15)
    Attack("one-bit", "a hundred copies of a count of 2k − 2 accomplices and the target "
           "if obese, their rounding averaged",
           (agg("SELECT " + ", ".join(
               f"count(CASE WHEN ({{G18}}) OR ({{T}} AND bmi > 30) THEN 1 END) AS n{j}"
               for j in range(100)) + " FROM base"),),
           lambda obs, t: (lambda v: None if not v else sum(v) / len(v) > 18.5)(
               [float(c["value"]) for c in cells(obs, 0)]), bit=True),
    # margin.reach once per cell name: the threshold's own line drawn a hundred times in one
    # output (lean: 9 < k, every copy hidden; obese: 10, each shown one time in ten)
    Attack("one-bit", "a hundred copies of a count of k − 1 accomplices and the target if "
           "obese: any shown says obese",
           (agg("SELECT " + ", ".join(f"count(CASE WHEN {_K} THEN 1 END) AS n{j}"
                                      for j in range(100)) + " FROM base"),),
           lambda obs, t: bool(cells(obs, 0)), bit=True),
    # check._km_count: events per interval once at k itself (a blocked output names its rule)
    Attack("one-bit", "a survival curve whose one interval of events is k − 1 accomplices and "
           "the target if obese",
           (define("f", f"SELECT pid, CASE WHEN {_K} THEN 5 ELSE 50 END AS t, CASE WHEN {_K} "
                        "THEN 1 ELSE 0 END AS e FROM base"),
            analyse({"kind": "kaplan_meier", "definition": "f", "time": "t", "event": "e",
                     "interval": 10})),
           fingerprint, bit=True),
]


# -- attacker 3: one identity over many indicator sums -------------------------------------
# Sums of a 0/1 indicator over everyone are counts the set rules did not see (their
# participants are everyone), exact once more than 2k − 1 hold each value. Cell j sums the
# indicator of K ∪ X_j, X_j the residue classes (a hash of blood pressure, birth year, centre
# and sex) in a cyclic shift of a perfect difference set: every class lies in exactly 5 of
# the 21 sets, so no pair of cells isolates a few, but Σ_j s_j = 16·|K| + 5·(everyone). The
# holders of a few-valued sum are released groups now (the combination audit sees K), and the
# span fit leaves K off. With 200 classes (beyond the span fit's 64-statistic basis) and a
# count of one sex that splits K into two atoms, it still gave the bit: a union of atoms is
# the audit's known limit (docs/explanation/output-check.md); kept small here for the suite.
_RING, _RULER = 21, (0, 1, 4, 14, 16)
# pid may not be computed on: the class is a hash of fields everyone has (or NULL's 0)
_CLASS = ("((coalesce(sbp, 0) * 37 + coalesce(birth_year, 0) * 11 + coalesce(centre, 0) * 3 "
          f"+ coalesce(sex, 0)) % {_RING})")


def _ring(cond: str, ring: int = _RING, ruler: Sequence[int] = _RULER) -> str:
    k = f"coalesce(({{G9}}) OR ({{T}} AND {cond}), false)"
    members = ", ".join(str(m) for m in ruler)
    # a count of one sex splits K into two atoms of the combination audit
    parts = ["count(*) AS d", "count(CASE WHEN sex = 1 THEN 1 END) AS h"] + [
        f"sum(CASE WHEN {k} OR (({_CLASS} + {ring} - {j}) % {ring}) IN ({members}) "
        f"THEN 1 ELSE 0 END) AS s{j}" for j in range(ring)]
    return "SELECT " + ", ".join(parts) + " FROM base"


def _ring_size(i: int, ring: int = _RING, ruler: Sequence[int] = _RULER) -> Recovery:
    def recover(obs: list[Obs], t: Target | None) -> float | None:
        d = value(obs, i, "d")
        s = [value(obs, i, f"s{j}") for j in range(ring)]
        if d is None or any(x is None for x in s):
            return None
        return (sum(s) - len(ruler) * d) / (ring - len(ruler))  # type: ignore[arg-type]
    return recover


def _ring_bit(obs: list[Obs], t: Target) -> Any:
    size = _ring_size(0)(obs, t)
    return None if size is None else round(size)


ATTACKER_3 = [
    Attack("one-bit", "exact indicator sums over a cyclic design of classes add up to k − 1 "
           "accomplices and the target if obese",
           (agg(_ring("bmi > 30")),), _ring_bit, bit=True),
]


# -- presence grids (session 11): one count of a large group with the target, beside the same
# group with the target only if BMI > c for a grid of c, in one output. Identical cells were
# shown and one-apart ones hidden, so which were shown gave the BMI to the grid's step: to
# 0.02 in two outputs. Counts, means, and a count beside means; both forms recovered the
# value before two figures of one kind within the line clashed identical too.

_PRESENCE_COARSE = tuple(12.0 + i for i in range(49))


def _presence(cuts: Sequence[float], figure: str = "count(CASE WHEN {} THEN 1 END)",
              first: str = "count(CASE WHEN {} THEN 1 END)") -> str:
    parts = [first.format(f"{G1} OR {{T}}") + " AS u"]
    parts += [figure.format(f"{G1} OR ({{T}} AND bmi > {c!r})") + f" AS c{i}"
              for i, c in enumerate(cuts)]
    return "SELECT " + ", ".join(parts) + " FROM base"


def _presence_fine(low: float) -> list[float]:
    return [round(low + 0.02 * j, 4) for j in range(51)]


def _presence_cut(obs: list[Obs], i: int, cuts: Sequence[float]) -> float | None:
    """The highest cut whose figure is shown as the group with the target's (u's, or the
    most common shown one's when u is hidden): shown alike means the target is in."""
    shown = {c["column"]: c["value"] for c in cells(obs, i)}
    grid = [shown.get(f"c{j}") for j in range(len(cuts))]
    values = [v for v in grid if v is not None]
    if not values:
        return None
    ref = shown.get("u", max(set(values), key=values.count))
    above = [c for c, v in zip(cuts, grid, strict=True) if v == ref]
    return max(above) if above and len(above) < len(cuts) else None


def _presence_attack(name: str, figure: str, first: str) -> Attack:
    def fine(obs: list[Obs]) -> dict[str, Any]:
        low = _presence_cut(obs, 0, _PRESENCE_COARSE)
        return {"kind": "aggregate_sql",
                "sql": _presence(_presence_fine(11.0 if low is None else low), figure, first)}

    def recover(obs: list[Obs], t: Target) -> float | None:
        low = _presence_cut(obs, 0, _PRESENCE_COARSE)
        got = _presence_cut(obs, 1, _presence_fine(11.0 if low is None else low))
        return None if got is None else got + 0.01

    return Attack("values", name, (agg(_presence(_PRESENCE_COARSE, figure, first)),
                                   analyse(fine)), recover)


PRESENCE_GRIDS = [
    # copies of the group with the target beside copies without: the combination audit once
    # counted copies as groups and acted only when the target's BMI lay inside the cuts
    Attack("one-bit", "a grid of counts with cuts from 12 to 30: whether the combination "
           "audit acts says whether the BMI lies above them all",
           (agg(_presence(tuple(12.0 + i for i in range(19)))),), fingerprint, bit=True),
    _presence_attack("a grid of counts: a large group with the target, and with the target "
                     "only if BMI > c", "count(CASE WHEN {} THEN 1 END)",
                     "count(CASE WHEN {} THEN 1 END)"),
    _presence_attack("a grid of means: a large group's mean SBP with the target, and with the "
                     "target only if BMI > c", "avg(CASE WHEN {} THEN sbp END)",
                     "avg(CASE WHEN {} THEN sbp END)"),
    _presence_attack("a count of a large group with the target beside means over it with the "
                     "target only if BMI > c", "avg(CASE WHEN {} THEN sbp END)",
                     "count(CASE WHEN {} THEN 1 END)"),
]


# -- attacker 4: order statistics of rows that every participant holds alike ------------------
# A mode (or a quantile) of *rows* is decided by one row when every other participant holds
# the same rows: everyone has a row 0 and a row 1 (so each value is held by everyone and the
# counts tie), and the target has one row more, 1 if obese and 0 if not. The mode (the
# smallest on a tie) is then the bit, its holders everyone (no extreme's rule acts), its
# distinct values two (no identical-values rule), nothing is a sum or a count, and nothing is
# winsorised (order statistics are left as they are). A summary takes 50 variables: one per
# binary digit of the BMI in hundredths gives it exactly in one request.
_BITS = 13  # BMI × 100 < 8192


def _tied(expression: str, columns: Sequence[str], values: Sequence[Sequence[str]]) -> str:
    """Every participant one row per entry of ``values``; the target one more, ``expression``
    (per column)."""
    names = ", ".join(f"{{v}} AS {c}".format(v=v) for c, v in zip(columns, values[0],
                                                                     strict=True))
    parts = [f"SELECT pid, {names} FROM base"]
    parts += ["SELECT pid, " + ", ".join(row) + " FROM base" for row in values[1:]]
    parts.append("SELECT pid, " + ", ".join(expression.format(j=j, p=2 ** j)
                                           for j in range(len(columns))) + " FROM base WHERE {T}")
    return " UNION ALL ".join(parts)


def _digits(statistic: str) -> Recovery:
    def recover(obs: list[Obs], t: Target) -> float | None:
        return _binary([value(obs, len(obs) - 1, statistic, [f"x{j}"]) for j in range(_BITS)],
                       lambda v: round(v) == 1)
    return recover


def _binary(found: Sequence[float | None], one: Callable[[float], bool]) -> float | None:
    """The BMI from its binary digits in hundredths, each read off one figure."""
    if any(f is None for f in found):
        return None
    return sum(1 << j for j, f in enumerate(found) if f is not None and one(f)) / 100


_XS = [f"x{j}" for j in range(_BITS)]
_DIGIT = "CASE WHEN floor(round(bmi * 100) / {p}) % 2 = 1 THEN 1 ELSE 0 END"
_DIGIT_MID = "CASE WHEN floor(round(bmi * 100) / {p}) % 2 = 1 THEN 2 ELSE 1 END"

_ORDER_OF_ROWS = [
    Attack("one-bit", "a mode of rows: everyone a row 0 and a row 1, the target one more row, "
           "1 if obese",
           (define("f", _tied("CASE WHEN bmi > 30 THEN 1 ELSE 0 END", ["x0"],
                              [["0"], ["1"]])),
            analyse({"kind": "summary", "definition": "f", "variables": ["x0"],
                     "statistics": ["mode"]})),
           lambda obs, t: value(obs, 1, "mode"), bit=True),
    Attack("values", "modes of rows, one per binary digit of the target's BMI in hundredths, "
           "in one summary",
           (define("f", _tied(_DIGIT, _XS, [["0"] * _BITS, ["1"] * _BITS])),
            analyse({"kind": "summary", "definition": "f", "variables": _XS,
                     "statistics": ["mode"]})),
           _digits("mode")),
    Attack("one-bit", "a median of rows: everyone rows 0, 1, 2 and 3, the target one more, 2 "
           "if obese and 1 if not",
           (define("f", _tied("CASE WHEN bmi > 30 THEN 2 ELSE 1 END", ["x0"],
                              [["0"], ["1"], ["2"], ["3"]])),
            analyse({"kind": "summary", "definition": "f", "variables": ["x0"],
                     "statistics": ["median"]})),
           lambda obs, t: value(obs, 1, "median"), bit=True),
    Attack("values", "medians of rows, one per binary digit of the target's BMI in hundredths",
           (define("f", _tied(_DIGIT_MID, _XS, [["0"] * _BITS, ["1"] * _BITS, ["2"] * _BITS,
                                                ["3"] * _BITS])),
            analyse({"kind": "summary", "definition": "f", "variables": _XS,
                     "statistics": ["median"]})),
           lambda obs, t: _digits_mid(obs)),
]


def _digits_mid(obs: list[Obs]) -> float | None:
    return _binary([value(obs, len(obs) - 1, "median", [f"x{j}"]) for j in range(_BITS)],
                   lambda v: round(v) == 2)


_ORDER_OF_ROWS_SQL = [
    Attack("values", "aggregate SQL: medians of rows, one per binary digit of the target's BMI "
           "in hundredths",
           (define("f", _tied(_DIGIT_MID, _XS, [["0"] * _BITS, ["1"] * _BITS, ["2"] * _BITS,
                                                ["3"] * _BITS])),
            agg("SELECT " + ", ".join(f"median(x{j}) AS x{j}" for j in range(_BITS))
                + " FROM f")),
           lambda obs, t: _binary([value(obs, 1, f"x{j}") for j in range(_BITS)],
                                  lambda v: round(v) == 2)),
]


# Kaplan–Meier's numbers are counts of *rows* (lifelines fits rows), rounded to a multiple of
# 5 as counts of people: five copies of every row make them multiples of 5 already, which
# the unbiased rounding leaves exact. Everyone: five censored rows and five event rows in the
# first interval; the target five more, events if obese and censored if not. Events less
# censored is then +5 or −5, the participants behind each are everyone either way, and
# nothing is small.
def _five(select: str) -> list[str]:
    return [select] * 5


def _km_rows(flag: str, group: str = "", groups: int = 1) -> str:
    parts: list[str] = []
    for j in range(groups):
        g = f", {j} AS g" if group else ""
        parts += _five(f"SELECT pid, 5 AS t, 0 AS e{g} FROM base")
        parts += _five(f"SELECT pid, 5 AS t, 1 AS e{g} FROM base")
        parts += _five(f"SELECT pid, 5 AS t, {flag.format(p=2 ** j)} AS e{g} FROM base "
                       "WHERE {T}")
    return " UNION ALL ".join(parts)


def _km_gap(obs: list[Obs], i: int, group: str | None = None) -> float | None:
    found: dict[str, float] = {}
    for c in cells(obs, i):
        if group is not None and str(c["row"][0]) != group:
            continue
        if c["column"] in ("events", "censored") and c["column"] not in found:
            found[c["column"]] = float(c["value"])
    if len(found) != 2:
        return None
    return found["events"] - found["censored"]


_KM_DIGIT = "CASE WHEN floor(round(bmi * 100) / {p}) % 2 = 1 THEN 1 ELSE 0 END"

_ROW_COUNTS_KM = [
    Attack("one-bit", "Kaplan–Meier counts of rows, every row five times: events less "
           "censored in the first interval is +5 if the target is obese, −5 if not",
           (define("f", _km_rows("CASE WHEN bmi > 30 THEN 1 ELSE 0 END")),
            analyse({"kind": "kaplan_meier", "definition": "f", "time": "t", "event": "e",
                     "interval": 10})),
           lambda obs, t: _km_gap(obs, 1), bit=True),
]


_C5 = " UNION ALL ".join(["SELECT * FROM base"] * 5)  # every participant's row five times


def _km_mixed(flag: str, groups: int) -> str:
    """As _km_rows (over c5, each row five times), by group, but each group gives the others a
    number of balanced extra rows (as many events as censored) by a hash of their own fields
    that differs per group, so no two groups' contributions are a scale and shift of each
    other but for the target."""
    parts: list[str] = []
    for j in range(groups):
        h = (f"((coalesce(sbp, 0) * 37 + coalesce(birth_year, 0) * 11 + {7 * j + 3} * "
             f"coalesce(centre, 0) + {j}) % 3)")
        # times inside the first interval by a second hash: t is no affine copy of e
        u = (f"(1 + (coalesce(sbp, 0) * 13 + coalesce(birth_year, 0) * 7 + {5 * j + 1} * "
             f"coalesce(sex, 0) + {j}) % 4)")
        for where in ("", f" WHERE {h} >= 1", f" WHERE {h} = 2"):
            parts.append(f"SELECT pid, {u} AS t, 0 AS e, {j} AS g FROM c5{where}")
            parts.append(f"SELECT pid, {u} AS t, 1 AS e, {j} AS g FROM c5{where}")
        parts.append(f"SELECT pid, 5 AS t, {flag.format(p=2 ** j)} AS e, {j} AS g FROM c5 "
                     "WHERE {T}")
    return " UNION ALL ".join(parts)


_ROW_COUNTS_KM.append(
    Attack("values", "Kaplan–Meier counts of rows by group, one group per binary digit of the "
           "target's BMI in hundredths, the others' rows varied per group",
           (define("c5", _C5), define("f", _km_mixed(_KM_DIGIT, _BITS)),
            analyse({"kind": "kaplan_meier", "definition": "f", "time": "t", "event": "e",
                     "group": "g", "interval": 10})),
           lambda obs, t: _binary([_km_gap(obs, 2, str(j)) for j in range(_BITS)],
                                  lambda gap: gap > 0)))


# A summary's n is a count of rows, rounded as a count of people: five copies of every row
# leave it exact as well. Everyone five rows (x and y both 1); the target five more, y 1 and
# x 1 only if obese (else missing). n(y) − n(x) is 0 if obese and 5 if not; the participants
# behind both are everyone.
def _n_rows(flags: Sequence[str]) -> str:
    xs = ", ".join(f"1 AS x{j}" for j in range(len(flags)))
    mine = ", ".join(f"CASE WHEN {f} THEN 1 END" for f in flags)
    return " UNION ALL ".join(_five(f"SELECT pid, 1 AS y, {xs} FROM base")
                              + _five(f"SELECT pid, 1, {mine} FROM base WHERE {{T}}"))


def _n_gap(obs: list[Obs], i: int, j: int) -> float | None:
    y, x = value(obs, i, "n", ["y"]), value(obs, i, "n", [f"x{j}"])
    return None if y is None or x is None else y - x


_N_DIGIT = "floor(round(bmi * 100) / {p}) % 2 = 1"
_ROW_COUNTS_N = [
    Attack("one-bit", "a summary's n, a count of rows, every row five times: n(y) − n(x) is "
           "0 if the target is obese and 5 if not",
           (define("f", _n_rows(["bmi > 30"])),
            analyse({"kind": "summary", "definition": "f", "variables": ["y", "x0"],
                     "statistics": ["n"]})),
           lambda obs, t: _n_gap(obs, 1, 0), bit=True),
    Attack("values", "a summary's n of rows, every row five times, one variable per binary "
           "digit of the target's BMI in hundredths",
           (define("f", _n_rows([_N_DIGIT.format(p=2 ** j) for j in range(_BITS)])),
            analyse({"kind": "summary", "definition": "f",
                     "variables": ["y", *(f"x{j}" for j in range(_BITS))],
                     "statistics": ["n"]})),
           lambda obs, t: _binary([_n_gap(obs, 1, j) for j in range(_BITS)],
                                  lambda gap: gap == 0)),
]


# A histogram asked for by a number of bins takes its edges from the data's own minimum and
# maximum (rounded outward to a step of about span / bins), and none of it is winsorised.
# Everyone else is spread over the integers 0–100 by a hash of their own fields (about 30 to
# a value); the target is at 100, or at 101 if obese. With 10 bins the span 100 gives a step
# of 10 (ten bins), 101 a step of 20 (six bins, the last [100, 120] holding the thirty at 100
# and the target): every bin is large, nothing is hidden, and the grid is the bit.
_SPREAD = ("((coalesce(sbp, 0) * 37 + coalesce(birth_year, 0) * 11 + coalesce(centre, 0) * 3 "
           "+ coalesce(sex, 0)) % 101)")


def _edges_bit(flag: str) -> tuple[Step, ...]:
    return (define("f", f"SELECT pid, CASE WHEN {{T}} THEN (CASE WHEN {flag} THEN 101 ELSE "
                        f"100 END) ELSE {_SPREAD} END AS x FROM base"),
            analyse({"kind": "histogram", "definition": "f", "variable": "x", "bins": 10}))


def _grid(i: int) -> Recovery:
    return lambda obs, t: len(shown(obs, i)) if obs[i].body else None


_DATA_EDGES = [
    Attack("one-bit", "a histogram's data-driven edges: the target at 100, or 101 if obese, "
           "everyone else spread over 0–100 (ten bins or six)",
           _edges_bit("bmi > 30"), _grid(1), bit=True),
    # the same, one binary digit of the BMI in hundredths per request (13 released outputs)
    Attack("values", "a histogram's data-driven edges, one binary digit of the target's BMI "
           "per request",
           tuple(s for j in range(_BITS) for s in _edges_bit(
               f"floor(round(bmi * 100) / {2 ** j}) % 2 = 1")),
           lambda obs, t: _binary([_grid(2 * j + 1)(obs, t) for j in range(_BITS)],
                                  lambda bins: bins < 10)),
]


# Attacker 4: every attack above got through (8 of 8 pairs, or the BMI to 0.005), each
# released automatically with nothing hidden, before order statistics were of participants
# (each by the median of their own rows), a survival table and a summary's n counted people
# and data-driven histogram edges were drawn from winsorised values.
ATTACKER_4 = [*_ORDER_OF_ROWS, *_ORDER_OF_ROWS_SQL, *_ROW_COUNTS_KM, *_ROW_COUNTS_N,
              *_DATA_EDGES]


# -- attacker 5: a presence grid across two outputs and two families -------------------------
# Repeats clashed only within one family (two counts, two percentages, two statistics of one
# kind), and a count beside a figure of another family was compared as before: one person
# apart clashed, identical did not (now pairs of different families are not compared by sets
# at all, overlap.acts). So the reference groups are released as minima (the "other"
# family: min(1) over G_i ∪ {target}, every participant holding the extreme, released with
# nothing hidden; or Kaplan–Meier numbers at risk, counts of people of the "other" family),
# one per group G_i (everyone but a 51st of the cohort, a different 51st each, so no two
# references or grid cells are within the line of each other; one class in no G_i, so the
# target is not alone in every group of the survival table's vectors), and a second output
# counts G_i ∪ {target if BMI > c_i}: against the ledger's
# minimum of the same i it is identical (shown) when the target's BMI is over c_i and one
# person apart (hidden) when not. Two rounds (1 unit, then 0.02) give the BMI.


def _g5(i: int, salt: int) -> str:
    return (f"(((coalesce(sbp, 0) * {salt} + coalesce(birth_year, 0)) % 51 <> {i}) "
            "AND NOT {T})")


def _minima(n: int, salt: int) -> tuple[Step, Step]:
    columns = ", ".join(f"CASE WHEN {_g5(i, salt)} OR {{T}} THEN 1 END AS x{i}"
                        for i in range(n))
    return (define(f"ref{salt}", f"SELECT pid, {columns} FROM base"),
            analyse({"kind": "summary", "definition": f"ref{salt}",
                     "variables": [f"x{i}" for i in range(n)], "statistics": ["min"]}))


def _at_risk(n: int, salt: int) -> tuple[Step, Step]:
    """One Kaplan–Meier group per i, everyone in G_i ∪ {target} once, all censored: each
    group's number at risk is G_i ∪ {target}."""
    rows = " UNION ALL ".join(
        f"SELECT pid, {i} AS g, 5 AS t, 0 AS e FROM base WHERE {_g5(i, salt)} OR {{T}}"
        for i in range(n))
    return (define(f"km{salt}", rows),
            analyse({"kind": "kaplan_meier", "definition": f"km{salt}", "time": "t",
                     "event": "e", "group": "g", "interval": 10}))


def _counted(cuts: Sequence[float], salt: int) -> str:
    return "SELECT " + ", ".join(
        f"count(CASE WHEN {_g5(i, salt)} OR ({{T}} AND bmi > {c!r}) THEN 1 END) AS c{i}"
        for i, c in enumerate(cuts)) + " FROM base"


def _highest_shown(obs: list[Obs], i: int, cuts: Sequence[float]) -> float | None:
    shown_ = {c["column"] for c in cells(obs, i)}
    above = [c for j, c in enumerate(cuts) if f"c{j}" in shown_]
    return max(above) if above and len(above) < len(cuts) else None


_COARSE5 = [12.0 + i for i in range(49)]


def _fine5(obs: list[Obs]) -> list[float]:
    low = _highest_shown(obs, 2, _COARSE5)
    return [round((11.0 if low is None else low) + 0.02 * j, 4) for j in range(50)]


def _recover5(obs: list[Obs], t: Target) -> float | None:
    got = _highest_shown(obs, 5, _fine5(obs))
    return None if got is None else got + 0.01


ATTACKER_5 = [
    Attack("values", "minima (the other family) of G_i with the target, then counts of G_i with "
           "the target only if BMI > c_i: a presence grid across two outputs, one group per cut",
           (*_minima(49, 7), agg(_counted(_COARSE5, 7)),
            *_minima(50, 13), Step("analyse", request=lambda obs: {
                "kind": "aggregate_sql", "sql": _counted(_fine5(obs), 13)})),
           _recover5),
    Attack("one-bit", "the minimum (other family) of a large group with the target, then the "
           "count of the group with the target only if obese: shown if obese, hidden if not",
           (*_minima(1, 7), agg(_counted([30.0], 7))),
           lambda obs, t: "c0" in {c["column"] for c in cells(obs, 2)} if obs[2].body else None,
           bit=True),
    Attack("values", "Kaplan–Meier numbers at risk (a count of people, but of the other family) "
           "of G_i with the target, then counts of G_i with the target only if BMI > c_i",
           (*_at_risk(49, 7), agg(_counted(_COARSE5, 7)),
            *_at_risk(50, 13), Step("analyse", request=lambda obs: {
                "kind": "aggregate_sql", "sql": _counted(_fine5(obs), 13)})),
           _recover5),
]


# Absence: a combination of three or more releases is one person when the target has the
# attribute and nobody (the counts add up) when not. The audit hid the first and showed the
# second, which answered "has the target the attribute?"; a count (or sum, or statistic) that
# follows from the others is now hidden alike (combinations._repeats, contributions.span).
_OBESE_T = "({T} AND bmi > 30)"
ABSENCE = [
    Attack("one-bit", "three counts across three outputs: G1 with the target if obese, G2, "
           "and G1 with G2 (they add up unless the target is obese)",
           (agg(f"SELECT count(*) AS n FROM base WHERE {G1} OR {_OBESE_T}"),
            agg(f"SELECT count(*) AS n FROM base WHERE {G2}"),
            agg(f"SELECT count(*) AS n FROM base WHERE {G1} OR {G2}")),
           fingerprint, bit=True),
    Attack("one-bit", "the same three counts in one output",
           (agg(f"SELECT count(CASE WHEN {G1} OR {_OBESE_T} THEN 1 END) AS a, "
                f"count(CASE WHEN {G2} THEN 1 END) AS b, "
                f"count(CASE WHEN {G1} OR {G2} THEN 1 END) AS c FROM base"),),
           fingerprint, bit=True),
    Attack("one-bit", "three sums of BMI: G1 with the target if obese, G2, and G1 with G2",
           (agg(f"SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                f"({G1} OR {_OBESE_T})"),
            agg(f"SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND {G2}"),
            agg(f"SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND ({G1} OR {G2})")),
           fingerprint, bit=True),
    Attack("one-bit", "the count of a group with the target, then its frequency of smoking "
           "with the target's smoking blanked if obese (the cells add up to the count unless)",
           (define("p", f"SELECT pid, CASE WHEN {_OBESE_T} THEN NULL ELSE smoking END AS "
                        f"smoking FROM base WHERE smoking IS NOT NULL AND ({G1} OR {{T}})"),
            agg(f"SELECT count(*) AS n FROM base WHERE smoking IS NOT NULL AND "
                f"({G1} OR {{T}})"),
            analyse({"kind": "frequency", "definition": "p", "variable": "smoking"})),
           fingerprint, bit=True),
    Attack("one-bit", "sums of BMI, of blood pressure, and of both with the target's pressure "
           "changed if obese, over the same people (their precision, or the span rule)",
           (agg(f"SELECT sum(bmi) AS a, sum(sbp) AS b, sum(bmi + CASE WHEN {_OBESE_T} THEN "
                "sbp + 1 ELSE sbp END) AS c FROM base WHERE bmi IS NOT NULL AND "
                "sbp IS NOT NULL"),),
           fingerprint, bit=True),
    Attack("one-bit", "the median of BMI over a group, then its sum with the target if obese "
           "(statistics of two kinds, compared only when one person apart)",
           (agg(f"SELECT median(bmi) AS m FROM base WHERE bmi IS NOT NULL AND {G1}"),
            agg(f"SELECT sum(bmi) AS s FROM base WHERE bmi IS NOT NULL AND "
                f"({G1} OR {_OBESE_T})")),
           fingerprint, bit=True),
]


# Absence in the other family: figures whose groups are counts of people too (a survival
# table's numbers at risk) or whose groups' sizes are not shown (minima). The audit and the
# tie must hide the same figures, or the difference between "one person" and "nobody" shows.
def _km_of(name: str, groups: Sequence[str]) -> tuple[Step, Step]:
    """A Kaplan–Meier table with one group per condition (a participant in several groups
    once in each), everyone censored at 5: each group's number at risk is its size."""
    rows = " UNION ALL ".join(f"SELECT pid, {i} AS g, 5 AS t, 0 AS e FROM base WHERE {where}"
                              for i, where in enumerate(groups))
    return (define(name, rows),
            analyse({"kind": "kaplan_meier", "definition": name, "time": "t", "event": "e",
                     "group": "g", "interval": 10}))


def _minimum_of(name: str, where: str) -> tuple[Step, Step]:
    return (define(name, f"SELECT pid, CASE WHEN {where} THEN 1 END AS x FROM base"),
            analyse({"kind": "summary", "definition": name, "variables": ["x"],
                     "statistics": ["min"]}))


_THREE = (f"{G1} OR {_OBESE_T}", G2, f"{G1} OR {G2}")
ABSENCE_OTHER = [
    Attack("one-bit", "three Kaplan–Meier tables, one group each: G1 with the target if obese, "
           "G2, and G1 with G2 (numbers at risk that add up unless the target is obese)",
           (*_km_of("k1", _THREE[:1]), *_km_of("k2", _THREE[1:2]), *_km_of("k3", _THREE[2:])),
           fingerprint, bit=True),
    Attack("one-bit", "one Kaplan–Meier table whose three groups are G1 with the target if "
           "obese, G2, and G1 with G2 (a table's own shape, or the data's?)",
           _km_of("k", _THREE), fingerprint, bit=True),
    Attack("one-bit", "one frequency whose three categories overlap: G1 with the target if "
           "obese, G2, and G1 with G2 (a participant in several categories)",
           (define("f", " UNION ALL ".join(f"SELECT pid, {i} AS g FROM base WHERE {where}"
                                           for i, where in enumerate(_THREE))),
            analyse({"kind": "frequency", "definition": "f", "variable": "g"})),
           fingerprint, bit=True),
    Attack("one-bit", "three minima of an indicator (their groups' sizes unshown): G1 with the "
           "target if obese, G2, and G1 with G2",
           (*_minimum_of("m1", _THREE[0]), *_minimum_of("m2", _THREE[1]),
            *_minimum_of("m3", _THREE[2])), fingerprint, bit=True),
    Attack("one-bit", "a count of G1 with the target if obese and of G2, then a Kaplan–Meier "
           "table of G1 with G2 (a tie across the families)",
           (agg(f"SELECT count(CASE WHEN {_THREE[0]} THEN 1 END) AS a, "
                f"count(CASE WHEN {G2} THEN 1 END) AS b FROM base"),
            *_km_of("k", _THREE[2:])), fingerprint, bit=True),
    Attack("one-bit", "a Kaplan–Meier table of G1 with the target if obese and of G2, then "
           "the count of G1 with G2 (the tie the other way)",
           (*_km_of("k", _THREE[:2]), agg(f"SELECT count(*) AS n FROM base WHERE {G1} OR {G2}")),
           fingerprint, bit=True),
    Attack("one-bit", "a minimum over G1 with the target if obese, a count of G2, then the "
           "minimum over G1 with G2",
           (*_minimum_of("m1", _THREE[0]), agg(f"SELECT count(*) AS n FROM base WHERE {G2}"),
            *_minimum_of("m3", _THREE[2])), fingerprint, bit=True),
]


def _km_alone(event: str, where: str) -> tuple[Step, Step]:
    """A survival table of one group, everyone's time 50 (interval 10), events by ``event``."""
    return (define("k", f"SELECT pid, 50 AS t, {event} AS e FROM base WHERE {where}"),
            analyse({"kind": "kaplan_meier", "definition": "k", "time": "t", "event": "e",
                     "interval": 10}))


# Zero or a few: a count of none went to people as a zero, a count of one was hidden; an
# interval of a survival table with no censorings was fine, with one blocked.
ZERO = [
    Attack("one-bit", "the count of the target alone if obese (none, or one)",
           (agg(f"SELECT count(*) AS n FROM base WHERE {_OBESE_T}"),), fingerprint, bit=True),
    Attack("one-bit", "the count of a large group and of the target if obese, in one output",
           (agg(f"SELECT count(CASE WHEN {G1} THEN 1 END) AS a, "
                f"count(CASE WHEN {_OBESE_T} THEN 1 END) AS b FROM base"),),
           fingerprint, bit=True),
    Attack("one-bit", "the share of a large group that is the group less the target if obese "
           "(100%, or all but one)",
           (define("p", f"SELECT pid, CASE WHEN {_OBESE_T} THEN 0 ELSE 1 END AS x FROM base "
                        f"WHERE {G1} OR {{T}}"),
            analyse({"kind": "frequency", "definition": "p", "variable": "x",
                     "percentages": True})), fingerprint, bit=True),
    # survival tables: an interval's events or censorings, none or the target alone
    Attack("one-bit", "a survival table where everyone has the event at 50 and the target, "
           "if obese, is censored there (none censored, or one)",
           _km_alone(f"CASE WHEN {_OBESE_T} THEN 0 ELSE 1 END", f"{G1} OR {_OBESE_T}"),
           fingerprint, bit=True),
    Attack("one-bit", "a survival table where everyone is censored at 50 and the target, if "
           "obese, has the event there (no events, or one)",
           _km_alone(f"CASE WHEN {_OBESE_T} THEN 1 ELSE 0 END", f"{G1} OR {_OBESE_T}"),
           fingerprint, bit=True),
    Attack("one-bit", "a survival table whose middle interval holds only the target, censored, "
           "if obese (nothing happens there, or one censoring)",
           (define("k", f"SELECT pid, CASE WHEN {_OBESE_T} THEN 50 WHEN birth_year < 1940 "
                        f"THEN 20 ELSE 90 END AS t, CASE WHEN {_OBESE_T} THEN 0 ELSE 1 END AS e "
                        f"FROM base WHERE {G1} OR {_OBESE_T}"),
            analyse({"kind": "kaplan_meier", "definition": "k", "time": "t", "event": "e",
                     "interval": 10})), fingerprint, bit=True),
]



def _causes(time: str, cause: str, where: str, interval: int = 50) -> tuple[Step, Step]:
    """A competing-risks table of one group: times by ``time``, causes by ``cause``."""
    return (define("c", f"SELECT pid, {time} AS t, {cause} AS c FROM base WHERE {where}"),
            analyse({"kind": "cumulative_incidence", "definition": "c", "time": "t",
                     "event": "c", "interval": interval}))


_NICE = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001)


def _grain(values: list[float]) -> float:
    """The coarsest nice step every value is a multiple of."""
    return next((s for s in _NICE if all(abs(v / s - round(v / s)) < 1e-6 for v in values)),
                0.0)


def estimates_seen(obs: list[Obs], t: Target | None = None) -> tuple[Any, ...]:
    """The fingerprint, which estimates came back empty, and how finely they are rounded:
    a rounding step read off a risk set one participant decides, or a figure hidden only
    then, is the bit."""
    shown = [[c for c in (o.body or {}).get("cells", [])
              if str(c["column"]).startswith(("incidence", "survival"))] for o in obs]
    return (*fingerprint(obs), tuple(tuple(c["value"] is None for c in s) for s in shown),
            tuple(_grain([float(c["value"]) for c in s if c["value"] is not None])
                  for s in shown))


# Competing risks (enclave/analyses/competing.py): the survival table's attacks, with the
# cause as the new place to hide the bit: a cause column that exists only for the target, a
# cause's events none or one, k − 1 accomplices, a cause code left out, a later interval.
COMPETING = [
    Attack("one-bit", "a Kaplan–Meier group held by the target alone if obese",
           (define("c", f"SELECT pid, 50 AS t, sex AS e, CASE WHEN {_OBESE_T} THEN 'x' "
                        f"ELSE 'y' END AS g FROM base WHERE {G1} OR {{T}}"),
            analyse({"kind": "kaplan_meier", "definition": "c", "time": "t", "event": "e",
                     "group": "g", "interval": 50})), fingerprint, bit=True),
    Attack("one-bit", "everyone censored at 50 but a cause-2 event for the target if obese",
           _causes("50", f"CASE WHEN {_OBESE_T} THEN 2 WHEN sex = 0 THEN 1 ELSE 0 END",
                   f"{G1} OR {{T}}"), fingerprint, bit=True),
    Attack("one-bit", "two common causes, and a third the target's alone if obese",
           _causes("50", f"CASE WHEN {_OBESE_T} THEN 3 WHEN sex = 0 THEN 1 WHEN "
                         "birth_year < 1950 THEN 2 ELSE 0 END", "true"),
           fingerprint, bit=True),
    Attack("one-bit", "a third cause held by k − 1 accomplices and the target if obese",
           _causes("50", f"CASE WHEN {_K} THEN 3 WHEN sex = 0 THEN 1 WHEN birth_year < 1950 "
                         "THEN 2 ELSE 0 END", "true"), seen, bit=True),
    Attack("one-bit", "a cause code that is left out (11) only for the target if obese",
           _causes("50", f"CASE WHEN {_OBESE_T} THEN 11 WHEN sex = 0 THEN 1 ELSE 0 END",
                   f"{G1} OR {{T}}"), seen, bit=True),
    Attack("one-bit", "the target's event, if obese, alone in a later interval",
           _causes(f"CASE WHEN {_OBESE_T} THEN 50 ELSE 15 END",
                   f"CASE WHEN {_OBESE_T} THEN 2 WHEN sex = 0 THEN 1 ELSE 0 END",
                   f"{G1} OR {{T}}", interval=20), seen, bit=True),
    # session 21's attacker: the step read the risk set at the last event, which the target's
    # own event decides; a refusal of a table with no event had its own reason; a fit's time
    # and event compared with each other blocked only when the target was off their line
    Attack("one-bit", "the target's event late in the interval if obese: the incidence step",
           (define("c", f"SELECT pid, CASE WHEN {_OBESE_T} THEN 9 WHEN {{T}} THEN 5 "
                        "WHEN smoking = 2 THEN 10 WHEN birth_year = 1944 THEN 3 ELSE 5 END AS t, "
                        "CASE WHEN smoking = 2 AND NOT ({T}) THEN 0 WHEN sex = 0 THEN 1 ELSE 2 "
                        f"END AS c FROM base WHERE {G1} OR {{T}}"),
            analyse({"kind": "cumulative_incidence", "definition": "c", "time": "t",
                     "event": "c", "interval": 10})), estimates_seen, bit=True),
    Attack("one-bit", "the target alone at risk at a group's last event if obese: hidden?",
           (define("c", f"SELECT pid, CASE WHEN {_OBESE_T} THEN 9 WHEN {{T}} THEN 5 "
                        f"WHEN ({G1}) AND sex = 1 THEN 4 WHEN sex = 1 THEN 10 "
                        "WHEN birth_year = 1944 THEN 3 ELSE 5 END AS t, CASE WHEN {T} THEN 1 "
                        "WHEN sex = 1 THEN 0 ELSE 1 END AS c, "
                        f"CASE WHEN {G1} OR {{T}} THEN 'x' ELSE 'y' END AS g FROM base"),
            analyse({"kind": "cumulative_incidence", "definition": "c", "time": "t",
                     "event": "c", "group": "g", "interval": 10})), estimates_seen, bit=True),
    Attack("one-bit", "everyone censored but the target's event if obese (a refusal of none?)",
           _causes("50", f"CASE WHEN {_OBESE_T} THEN 1 ELSE 0 END", f"{G1} OR {{T}}"),
           fingerprint, bit=True),
    Attack("one-bit", "a Kaplan–Meier time on its event's line but for the target if obese",
           (define("c", f"SELECT pid, CASE WHEN {_OBESE_T} THEN 9 WHEN {{T}} THEN 5 "
                        "WHEN smoking = 2 THEN 10 ELSE 5 END AS t, CASE WHEN smoking = 2 AND "
                        f"NOT ({{T}}) THEN 0 ELSE 1 END AS c FROM base WHERE {G1} OR {{T}}"),
            analyse({"kind": "kaplan_meier", "definition": "c", "time": "t", "event": "c",
                     "interval": 10})), fingerprint, bit=True),
    Attack("one-bit", "the target's cause, 1 if obese and 2 if lean, among many of each",
           _causes("50", f"CASE WHEN {_OBESE_T} THEN 1 WHEN {{T}} THEN 2 WHEN sex = 0 THEN 1 "
                         "WHEN birth_year < 1950 THEN 2 ELSE 0 END", "true"), seen, bit=True),
]

# Session 17's attacker: HAVING tested its condition on the raw figures, before winsorising
# and rounding, so whether a group's row came back said what the released count would not.
_SPAN = 8  # a rounded count is within this of the exact one
_BISECTIONS = 5  # 2 ** 5 ≥ 2 × _SPAN + 1


def _present(obs: Obs) -> bool:
    """The group's row came back (shown, or hidden with its label)."""
    return bool(obs.body and obs.body.get("cells"))


def _bounds(obs: list[Obs]) -> tuple[int, int] | None:
    """What the bisection has left of a group's exact size: step 0 released its rounded
    count, each later step asked ``HAVING count(DISTINCT pid) >= n`` at the middle."""
    rounded = value(obs, 0, "n")
    if rounded is None:
        return None
    low, high = int(rounded) - _SPAN, int(rounded) + _SPAN
    for seen in obs[1:]:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if _present(seen) else (low, middle - 1)
    return low, high


def _middle(obs: list[Obs]) -> int | None:
    left = _bounds(obs)
    return None if left is None else (left[0] + left[1] + 1) // 2


def _one_more(obs: list[Obs]) -> int | None:
    left = _bounds(obs[:1 + _BISECTIONS])
    return None if left is None else left[0] + 1


def _sized(where: str, n: Callable[[list[Obs]], int | None]) -> Request:
    def request(obs: list[Obs]) -> dict[str, Any]:
        size = n(obs)
        return {"kind": "aggregate_sql", "sql": f"SELECT sex AS g, count(*) AS n FROM base "
                f"WHERE {where} GROUP BY sex HAVING count(DISTINCT pid) >= {size or 0}"}
    return request


_REST = "sex = {S} AND birth_year <> 1950"
_REST_IF_OBESE = f"{_REST} AND (({{T}}) IS NOT TRUE OR bmi > 30)"


def _last_back(obs: list[Obs], t: Target | None = None) -> tuple[Any, ...]:
    """What the last step showed, and whether its row came back."""
    return (*fingerprint(obs[-1:]), _present(obs[-1]))


_COPIES = ("SELECT pid, 0 AS j FROM base "
           + " ".join(f"UNION ALL SELECT pid, {j} AS j FROM base WHERE {{T}}"
                      for j in range(1, 20)))

HAVING_RAW = [
    Attack("one-bit", "HAVING count(*) on rows the target's copies add if obese",
           (define("rep20", _COPIES),
            define("rep", "SELECT a.pid, a.j * 20 + b.j AS j FROM rep20 a JOIN rep20 b "
                          "ON a.pid = b.pid"),
            agg(f"SELECT sex AS g, count(*) AS n FROM base WHERE {_REST} GROUP BY sex"),
            analyse(lambda obs: {"kind": "aggregate_sql", "sql": (
                "SELECT b.sex AS g, count(*) AS n FROM base b JOIN rep r ON b.pid = r.pid "
                "WHERE b.sex = {S} AND b.birth_year <> 1951 AND (r.j = 0 OR b.bmi > 30) "
                f"GROUP BY b.sex HAVING count(*) >= {int(value(obs, 2, 'n') or 0) + 150}")})),
           _last_back, bit=True),
    Attack("one-bit", "HAVING count(DISTINCT pid) bisected to a group's exact size, the "
           "target in it only if obese",
           (agg(f"SELECT sex AS g, count(*) AS n FROM base WHERE {_REST_IF_OBESE} "
                "GROUP BY sex"),
            *(analyse(_sized(_REST_IF_OBESE, _middle)) for _ in range(_BISECTIONS)),
            analyse(_sized(_REST, _one_more))),
           _last_back, bit=True),
]


def _hidden_pattern(obs: list[Obs], t: Target | None = None) -> tuple[Any, ...]:
    """The last step's verdict and status, and which of its cells came back hidden."""
    last = obs[-1]
    return (last.verdict, last.status, last.refused is not None,
            tuple(bool(c.get("suppressed")) for c in (last.body or {}).get("cells", [])))


# Session 17's second attacker: a histogram with the researcher's edges showed its open-ended
# bin only when someone was past the last edge, a decision on the raw values.
HISTOGRAM_EDGES = [
    Attack("one-bit", "a histogram with edges [-1, 30], everyone 0 and the target their BMI: "
           "the open bin '> 30' only if the target is obese",
           (define("d", "SELECT pid, CASE WHEN {T} THEN bmi ELSE 0 END AS x FROM base"),
            analyse({"kind": "histogram", "definition": "d", "variable": "x",
                     "edges": [-1, 30]})),
           _hidden_pattern, bit=True),
    Attack("one-bit", "a histogram with edges [30, 100], everyone 50 and the target their BMI: "
           "the open bin '< 30' only if the target is not obese",
           (define("d", "SELECT pid, CASE WHEN {T} THEN bmi ELSE 50 END AS x FROM base"),
            analyse({"kind": "histogram", "definition": "d", "variable": "x",
                     "edges": [30, 100]})),
           _hidden_pattern, bit=True),
]
