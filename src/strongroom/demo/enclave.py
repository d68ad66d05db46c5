"""The demo's tour of the enclave: safe analyses released, and leaks tried and stopped.

Run through the same services the API calls, so the demo shows what a researcher would see: verdicts
and reasons, never values. The honest analyses are the demo researcher's, in the first project; the
attacks are the custodian's red team's, in a project of its own
(:data:`strongroom.demo.world.RED_TEAM_PROJECT`), so that the answers they spend and the refusals
they meet are charged to nobody a newcomer signs in as. The attacks are those an approved researcher
could try against the output check (see docs/explanation/output-check.md): labels that are
participants' values, a definition that copies one participant's value onto every row, a value
changed for one person, three releases that add up to one person, a count of nine accomplices and
the target (the threshold's own line, drawn per request), everyone but those nine and the target
beside everyone (the differencing line, drawn per pair: the newer cell is hidden), and a model fixed
by one participant. The attacker's prior knowledge (the target's sex, birth year and blood pressure)
is read here from the view, as a neighbour or a published record would give it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.demo.world import RED_TEAM_PROJECT, STUDY_PROJECT, DemoWorld
from strongroom.errors import Conflict, Invalid
from strongroom.platform import Platform
from strongroom.progress import Progress

BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p20116_i0 AS smoking, "
        "p21001_i0 AS bmi, p4080_i0_a0 AS sbp FROM participants")


@dataclass(frozen=True)
class TourStop:
    what: str
    verdict: str
    status: str
    reason: str  # the first reason the check gave, if any
    by: str = "researcher"  # who asked: the demo "researcher" or the "red team"


# TARGET stands for SQL true for one participant (their sex, birth year and blood pressure)
STOPS: list[tuple[str, str, dict[str, Any]]] = [
    ("smoking status by sex (crosstab)", "analyse",
     {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "smoking"}),
    ("mean systolic blood pressure by decade of birth", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT floor(birth_year / 10) * 10 AS decade, count(sbp) AS n, "
             "avg(sbp) AS mean_sbp FROM base WHERE sbp IS NOT NULL GROUP BY decade"}),
    ("BMI and blood pressure as GROUP BY labels (women born in 1950, BP 140 to 142)",
     "analyse",
     {"kind": "aggregate_sql", "sql": "SELECT bmi, sbp, count(*) AS n FROM base "
                                      "WHERE sex = 0 AND birth_year = 1950 "
                                      "AND sbp BETWEEN 140 AND 142 GROUP BY bmi, sbp"}),
    ("a definition copying one participant's BMI onto every row (scalar subquery)", "define",
     {"name": "copied",
      "sql": "SELECT pid, (SELECT max(bmi) FROM base WHERE TARGET) AS x FROM base"}),
    ("the sum of BMI of those born 1945 to 1965", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT sum(bmi) AS s FROM base WHERE birth_year BETWEEN 1945 AND 1965"}),
    ("the same sum with one person's BMI set to 0 (differencing by values)", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT sum(CASE WHEN TARGET THEN 0 ELSE bmi END) AS s FROM base "
             "WHERE birth_year BETWEEN 1945 AND 1965"}),
    ("three counts that add up to one person: born before 1945, or the target", "analyse",
     {"kind": "aggregate_sql", "sql": "SELECT count(bmi) AS n, sum(bmi) AS s FROM base "
                                      "WHERE bmi IS NOT NULL AND (birth_year < 1945 OR TARGET)"}),
    ("… born after 1965", "analyse",
     {"kind": "aggregate_sql", "sql": "SELECT count(bmi) AS n, sum(bmi) AS s FROM base "
                                      "WHERE bmi IS NOT NULL AND birth_year > 1965"}),
    ("… born before 1945 or after 1965 (with the two above: the target alone)", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT count(bmi) AS n, sum(bmi) AS s FROM base "
             "WHERE bmi IS NOT NULL AND (birth_year < 1945 OR birth_year > 1965)"}),
    ("a count of nine known people and the target if their BMI is over 30 (the threshold's "
     "own line: keyed per request)", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT count(*) AS n FROM base WHERE NINE OR (TARGET AND bmi > 30)"}),
    ("everyone born 1945 to 1965 (a count)", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT count(*) AS n FROM base WHERE birth_year BETWEEN 1945 AND 1965"}),
    ("… all of them but nine known people and the target if their BMI is over 30 (two "
     "releases apart by a group of about k: the newer cell is hidden, at a line keyed per "
     "pair)", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT count(*) AS n FROM base WHERE birth_year BETWEEN 1945 AND 1965 "
             "AND NOT coalesce(NINE OR (TARGET AND bmi > 30), false)"}),
    ("everyone born before 1945 with the target, beside the same with the target only if "
     "their BMI is over 20, 25, 30, 35 or 40, in one output (which cells are identical would "
     "say the BMI: a repeat is hidden like a count one person apart)", "analyse",
     {"kind": "aggregate_sql",
      "sql": "SELECT count(CASE WHEN birth_year < 1945 OR TARGET THEN 1 END) AS u, "
             "count(CASE WHEN birth_year < 1945 OR (TARGET AND bmi > 20) THEN 1 END) AS o20, "
             "count(CASE WHEN birth_year < 1945 OR (TARGET AND bmi > 25) THEN 1 END) AS o25, "
             "count(CASE WHEN birth_year < 1945 OR (TARGET AND bmi > 30) THEN 1 END) AS o30, "
             "count(CASE WHEN birth_year < 1945 OR (TARGET AND bmi > 35) THEN 1 END) AS o35, "
             "count(CASE WHEN birth_year < 1945 OR (TARGET AND bmi > 40) THEN 1 END) AS o40 "
             "FROM base"}),
    ("a flag that is 1 for the target alone", "define",
     {"name": "flagged",
      "sql": "SELECT pid, bmi, sex, CASE WHEN TARGET THEN 1 ELSE 0 END AS flag FROM base"}),
    ("… a regression of BMI on sex and that flag", "analyse",
     {"kind": "ols", "definition": "flagged", "outcome": "bmi", "covariates": ["sex", "flag"]}),
]


HONEST = 2  # the first STOPS are the researcher's own analyses; the rest are the attacks


def tour(platform: Platform, world: DemoWorld, who: Principal,
         red_team: Principal, progress: Progress | None = None) -> list[TourStop]:
    """Define a dataset, run the tour, ask for each output to be released: the honest
    analyses as ``who`` (the researcher leading the first project), the attacks as
    ``red_team`` in the red team's project (both signed in); ``progress`` is told of each
    stop (len(STOPS) in all)."""
    stops = _stops(platform, who, world.projects[0][0], STOPS[:HONEST], "researcher",
                   progress)
    return stops + _stops(platform, red_team, world.projects[RED_TEAM_PROJECT][0],
                          STOPS[HONEST:], "red team", progress)


def _stops(platform: Platform, who: Principal, project_id: str,
           steps: list[tuple[str, str, dict[str, Any]]], by: str,
           progress: Progress | None = None) -> list[TourStop]:
    platform.outputs.define(who, project_id, "base", BASE)
    aimed = any("TARGET" in str(request) for _, _, request in steps)
    target, nine = _a_target(platform, project_id) if aimed else ("", "")
    stops = []
    for what, step, request in steps:
        request = {k: v.replace("TARGET", target).replace("NINE", nine)
                   if isinstance(v, str) else v for k, v in request.items()}
        try:
            if step == "define":
                platform.outputs.define(who, project_id, request["name"], request["sql"])
                stops.append(TourStop(what, "defined", "kept inside", "", by))
            else:
                stops.append(_analyse(platform, who, project_id, what, request, by))
        except Invalid as refusal:  # refused before anything was computed
            stops.append(TourStop(what, "refused", "nothing ran", refusal.reasons[0], by))
        if progress is not None:
            progress(f"{len(stops)} of {len(steps)}, {by}", 1)
    return stops


def _analyse(platform: Platform, who: Principal, project_id: str, what: str,
             request: dict[str, Any], by: str) -> TourStop:
    view = platform.outputs.analyse(who, project_id, request)
    try:
        asked = platform.outputs.request_release(
            who, view.output.id, "demo: shows what the check does with this output")
    except Conflict as clash:
        return TourStop(what, view.report.verdict.value, "refused at release", clash.reasons[0],
                        by)
    reasons = asked.reasons
    return TourStop(what, view.report.verdict.value, asked.status.value,
                    reasons[0] if reasons else "", by)


def _a_target(platform: Platform, project_id: str) -> tuple[str, str]:
    """SQL true for one participant born 1945–1965 (what an attacker knows of a neighbour),
    and SQL true for nine others born then too (accomplices whom the attacker knows to be in
    the cohort)."""
    with platform.access.transaction() as db:
        project = db.get(Project, project_id)
        assert project is not None
    _, base = platform.enclave.definition(project, "base")
    alone = (base.drop_nulls(["sex", "birth_year", "sbp", "bmi"])
             .filter(pl.col("birth_year").is_between(1946, 1964))
             .filter(pl.len().over("sex", "birth_year", "sbp") == 1)
             .sort("pid").head(1))
    row = alone.row(0, named=True)
    nine = (base.drop_nulls(["sex", "birth_year", "sbp"])
            .filter(pl.col("birth_year").is_between(1945, 1965))
            .group_by("sex", "birth_year", "sbp").len().filter(pl.col("len") == 9)
            .sort("sex", "birth_year", "sbp").head(1))
    group = "(1 = 0)" if nine.is_empty() else "(sex = {sex} AND birth_year = {birth_year} " \
        "AND sbp = {sbp})".format(**nine.row(0, named=True))
    return (f"(sex = {row['sex']} AND birth_year = {row['birth_year']} AND sbp = {row['sbp']})",
            group)


@dataclass(frozen=True)
class GwasHit:
    """One of the released GWAS's strongest variants, beside what the custodian planted."""

    variant: str
    beta: float
    neg_log10_p: float  # −log10 p: a hit at 500,000 can be past what a float p holds
    planted: str  # the planted locus it is (or sits beside), or ""


@dataclass(frozen=True)
class ReleasedGwas:
    """The tour's released GWAS of BMI, as the researcher downloads it."""

    hits: list[GwasHit]  # its strongest variants
    inflation: float | None  # its λ_GC, as the output states it (None: not stated)


GWAS = {"kind": "gwas", "definition": "base", "traits": ["bmi"],
        "covariates": ["sex", "birth_year"], "categorical": ["sex"], "principal_components": 10}
# The researcher's GWAS is of women only: a GWAS of BMI over everyone with sex, birth year and
# ten principal components is the one run-a-gwas.md asks for, and a second GWAS whose
# residuals differ from a released one's mostly for a few people is blocked (across projects:
# outputs/contributions.py), so the demo's own would block the how-to's in the study project.
# Of White ethnic background (field 21000, coding 1001: 1, 1001-1003), as UK Biobank's GWAS
# commonly are: ten components of the demo's 4,000 markers find its African and European
# ancestry but not its small East Asian, admixed and South Asian groups (R² 0.2-0.5), whose
# BMI differs, so over all women λ_GC read 1.13-1.16 of stratification; among White women
# 1.02 (benchmarks/gwas_calibration.py --white, BENCHMARKS.md)
WOMEN = ("SELECT pid, p34 AS birth_year, p21001_i0 AS bmi FROM participants "
         "WHERE p31 = 0 AND p21000_i0 IN (1, 1001, 1002, 1003)")
GWAS_STOPS: list[tuple[str, str, dict[str, Any]]] = [
    ("White women, for a GWAS among them", "define", {"name": "women", "sql": WOMEN}),
    ("a GWAS of BMI among White women on the genotypes, with birth year and 10 principal "
     "components (the project holds a genotype grant)", "analyse",
     {**GWAS, "definition": "women", "covariates": ["birth_year"], "categorical": []}),
    ("a trait that is the target's BMI and 0 for everyone else", "define",
     {"name": "solo", "sql": "SELECT pid, CASE WHEN TARGET THEN bmi ELSE 0 END AS y, sex, "
                             "birth_year FROM base WHERE bmi IS NOT NULL"}),
    ("… its GWAS (every variant's effect would be the target's genotype times their BMI)",
     "analyse", {**GWAS, "definition": "solo", "traits": ["y"], "principal_components": 0}),
]


def gwas_tour(platform: Platform, world: DemoWorld, committee: Principal,
              who: Principal, red_team: Principal,
              progress: Progress | None = None) -> list[TourStop]:
    """The access committee grants the first project, the study project and the red team's
    their genotypes; the first project's lead runs a GWAS while the red team tries to read one
    participant's genotypes through one. The two run side by side, as two people's requests
    do on a server: each is answered at its schedule's floor (outputs/timing.py, 256 s each at
    the demo's 8,000 variants at 500,000), which they wait out together rather than one after
    the other; the red team's is refused within seconds, so the researcher's fit has the
    machine."""
    for index in (0, STUDY_PROJECT, RED_TEAM_PROJECT):
        projects.set_genotypes(platform.access, committee, world.projects[index][0], True)
    people = [(who, 0, "researcher")] * 2 + [(red_team, RED_TEAM_PROJECT, "red team")] * 2
    steps = list(zip(GWAS_STOPS, people, strict=True))

    def walk(mine: list[tuple[tuple[str, str, dict[str, Any]], tuple[Principal, int, str]]]
             ) -> list[TourStop]:
        stops = []
        for (what, step, request), (person, index, by) in mine:
            project_id = world.projects[index][0]
            target = _a_target(platform, project_id)[0] if "TARGET" in str(request) else ""
            request = {k: v.replace("TARGET", target) if isinstance(v, str) else v
                       for k, v in request.items()}
            if step == "define":
                platform.outputs.define(person, project_id, request["name"], request["sql"])
                stops.append(TourStop(what, "defined", "kept inside", "", by))
            else:
                stops.append(_analyse(platform, person, project_id, what, request, by))
            if progress is not None:
                progress(by, 1)
        return stops

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-gwas") as pool:
        walks = [pool.submit(walk, steps[:2]), pool.submit(walk, steps[2:])]
        return [stop for done in walks for stop in done.result()]


def gwas_hits(platform: Platform, world: DemoWorld, who: Principal, causal: pl.DataFrame,
              top: int = 8) -> ReleasedGwas | None:
    """The strongest variants of the tour's released GWAS, as the researcher downloads them,
    each named with the planted BMI locus it is, if any (the custodian's truth), and its λ_GC."""
    from strongroom.outputs import requests
    from strongroom.outputs.genetics import frame_of
    from strongroom.outputs.states import OutputStatus

    project_id = world.projects[0][0]
    released = [v.output for v in requests.list_outputs(platform.access, who, project_id,
                                                         OutputStatus.RELEASED)
                if v.output.kind == "gwas"]
    if not released:
        return None
    payload = requests.download(platform.access, who, released[-1].id).payload
    table = frame_of(payload)
    inflation = json.loads(payload).get("lambda_gc", {}).get("bmi")
    planted = dict(causal.filter(pl.col("trait") == "bmi").select("id", "locus").iter_rows())
    hits = [GwasHit(row["id"], row["beta"], row["neg_log10_p"], planted.get(row["id"], ""))
            for row in table.sort("neg_log10_p", descending=True, nulls_last=True).head(top)
            .iter_rows(named=True)]
    return ReleasedGwas(hits, float(inflation) if isinstance(inflation, int | float) else None)
