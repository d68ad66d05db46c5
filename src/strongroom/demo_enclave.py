"""The demo's tour of the enclave: one safe analysis released, two disclosive ones stopped.

Run as the demo researcher who leads the first project, through the same services the API
calls, so the demo shows what a researcher would see: verdicts and reasons, never values.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.access.context import Principal
from strongroom.demo_world import DemoWorld
from strongroom.enclave import service
from strongroom.errors import Invalid
from strongroom.platform import Platform

BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p20116_i0 AS smoking, "
        "p21001_i0 AS bmi, p4080_i0_a0 AS sbp FROM participants")
TOUR = [
    ("smoking status by sex (crosstab)",
     {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "smoking"}),
    ("everyone's BMI, blood pressure and birth year as GROUP BY labels",
     {"kind": "aggregate_sql",
      "sql": "SELECT bmi, sbp, birth_year, count(*) AS n FROM base GROUP BY bmi, sbp, birth_year"}),
    ("the count of everyone", {"kind": "aggregate_sql", "sql": "SELECT count(*) AS n FROM base"}),
    ("the count of everyone but one (differencing)",
     {"kind": "aggregate_sql", "sql": "SELECT count(*) AS n FROM all_but_one"}),
]


@dataclass(frozen=True)
class TourStop:
    what: str
    verdict: str
    status: str
    reason: str  # the first reason the check gave, if any


def tour(platform: Platform, world: DemoWorld, who: Principal) -> list[TourStop]:
    """Define a dataset, run the tour's analyses, ask for each to be released (``who``: the
    researcher leading the first project, signed in)."""
    project_id = world.projects[0][0]
    service.define(platform.enclave, who, project_id, "base", BASE)
    service.define(platform.enclave, who, project_id, "all_but_one",
                   "SELECT * FROM base WHERE pid <> (SELECT min(pid) FROM base)")
    stops = []
    for what, analysis in TOUR:
        try:
            view = platform.outputs.analyse(who, project_id, analysis)
        except Invalid as refusal:  # refused before anything was computed
            stops.append(TourStop(what, "refused", "nothing ran", refusal.reasons[0]))
            continue
        asked = platform.outputs.request_release(
            who, view.output.id, "demo: shows what the check does with this output")
        reasons = asked.reasons
        stops.append(TourStop(what, view.report.verdict.value, asked.status.value,
                              reasons[0] if reasons else ""))
    return stops
