"""Dictionary labels where a person reads an output, end to end (issue 55: ``survival.csv``
smoking 0/1/2, ``cox.csv`` ``sex=1``, the check's reasons quoting ``row "-3"``, the
checker's table headed ``0`` and ``1``). One platform (SQLite, a 3,000-participant synthetic
cohort) serves the module; each test defines what it needs under its own names."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from collections.abc import Iterator

import polars as pl
import pytest
from fastapi.testclient import TestClient

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.roles import Role
from strongroom.demo.story import SMALL_CELLS_TO_PEOPLE
from strongroom.enclave import service
from strongroom.outputs import requests
from strongroom.outputs.render import Format
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.tidy import TableFormat
from strongroom.outputs.verdicts import Verdict
from strongroom.server.app import create_app
from strongroom.server.web.pages import PREFIX
from tests.access_world import INSIDE, PASSWORD, World, build_world

FIELDS = [31, 34, 53, 189, 2443, 20116, 21001, 40000, 40001]  # 40000, 40001: deaths
# docs/how-to/run-a-study.md's population: its deaths joined as a subquery
STUDY = """
SELECT p.pid, p.p31 AS sex, 2008 - p.p34 AS age, p.p21001_i0 AS bmi,
       p.p189 AS deprivation, p.p20116_i0 AS smoking,
       CASE WHEN p.p2443_i0 = 1 THEN 1 ELSE 0 END AS diabetes,
       least((coalesce(d.died, DATE '2023-01-01') - p.p53_i0) / 365.25, 12) AS years,
       CASE WHEN d.died IS NOT NULL AND d.died - p.p53_i0 <= 12 * 365.25 THEN 1 ELSE 0 END
         AS died
FROM participants p
LEFT JOIN (SELECT pid, min(date) AS died FROM deaths GROUP BY pid) d ON p.pid = d.pid
WHERE p.p21001_i0 IS NOT NULL AND p.p189 IS NOT NULL AND p.p20116_i0 >= 0
  AND (d.died IS NULL OR d.died > p.p53_i0)
"""
BASE = "SELECT pid, p31 AS sex, p20116_i0 AS smoking FROM participants"
# a crosstab with structural zeros, which the rules send to two output checkers
GROUPED = ("SELECT pid, p31 AS sex, CASE WHEN p31 = 0 THEN 'a' WHEN p34 >= 1950 THEN 'b' "
           "ELSE 'c' END AS grp FROM participants")
QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'")
SMOKING = {"Prefer not to answer (-3)", "Never (0)", "Previous (1)", "Current (2)"}
SEX = {"Female (0)", "Male (1)"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_world(tmp_path_factory.mktemp("labels"), cohort=3000, fields=FIELDS)
    yield found
    found.platform.close()


@pytest.fixture(scope="module")
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    for name, sql in (("study", STUDY), ("base", BASE), ("grouped", GROUPED)):
        service.define(world.platform.enclave, who, world.project_id, name, sql)
    return who


def analyse(world: World, who: Principal, analysis: dict[str, object]) -> requests.OutputView:
    return world.platform.outputs.analyse(who, world.project_id, analysis, Format.JSON)


def quoted(reasons: list[str]) -> set[str]:
    """The labels the reasons quote, a cell's row and column (differencing's 'a / b') apart."""
    return {part for reason in reasons for a, b in QUOTED.findall(reason)
            for part in re.split(r" / | \| ", a or b)}


def test_the_checks_reasons_quote_meanings_where_they_quoted_codes(
        world: World, researcher: Principal) -> None:
    view = analyse(world, researcher, {"kind": "crosstab", "definition": "grouped",
                                       "rows": "sex", "columns": "grp"})
    assert view.report.verdict is Verdict.SUPPRESS, view.reasons
    reasons = [f.reason for f in view.report.findings if f.cell is not None]
    # the structural zero (no woman is in group b) is hidden, and says so by sex's words
    assert 'row "Female (0)", column "b"' in " ".join(reasons), reasons
    said = quoted(reasons)
    assert said <= SEX | {"a", "b", "c", "Total"}, said  # grp is computed: as it is
    assert not said & {"0", "1"}, said  # never a bare code where the coding has words


def test_the_how_tos_cox_model_reads_its_levels_by_meaning(
        world: World, researcher: Principal) -> None:
    view = analyse(world, researcher, {
        "kind": "cox", "definition": "study", "time": "years", "event": "died",
        "unit": "years", "covariates": ["age", "sex", "smoking"],
        "categorical": ["sex", "smoking"]})
    released = world.platform.outputs.request_release(researcher, view.output.id)
    assert released.status is OutputStatus.RELEASED, released.reasons
    got = world.platform.outputs.table(researcher, view.output.id, TableFormat.CSV)
    frame = pl.read_csv(io.BytesIO(got.payload))
    levels = dict(zip(frame["term_code"], frame["level"], strict=True))
    # cox.csv: the term by the dictionary's words (as the console shows it), the term as
    # fitted beside it (machine-readable: as the record and the check name it)
    assert levels["sex=1"] == "Male"
    assert levels["smoking=1"] == "Previous" and levels["smoking=2"] == "Current"
    terms = dict(zip(frame["term_code"], frame["term"], strict=True))
    assert terms["sex=1"] == "sex=Male" and terms["smoking=2"] == "smoking=Current"
    assert terms["age"] == "age"
    # the record (the checked bytes) keeps the codes: the check saw what is released
    record = json.loads(world.platform.outputs.download(researcher, view.output.id).payload)
    assert {c["row"][0] for c in record["cells"]} >= {"sex=1", "smoking=1", "smoking=2"}
    # the console's table of the released model reads its terms by the same words
    page = signed_in(world, Role.RESEARCHER).get(
        f"{PREFIX}/workspace/outputs/{view.output.id}/released")
    assert page.status_code == 200, page.text[:500]
    shown = html.unescape(page.text)
    assert "smoking=Current" in shown and "sex=Male" in shown, shown[:2000]
    assert not re.search(r"\b(?:sex|smoking)=\d", shown), shown[:2000]


def test_the_how_tos_survival_table_is_labelled_by_smoking(
        world: World, researcher: Principal) -> None:
    # what its table would be labelled by (the survival table itself needs more deaths
    # than 3,000 participants give to pass)
    spec = {"kind": "kaplan_meier", "definition": "study", "time": "years",
            "event": "died", "group": "smoking", "unit": "years", "interval": 2}
    naming = service.naming(world.platform.enclave, world.project_id, spec, world.clock())
    assert naming.labels["smoking"]["2"] == "Current"
    assert naming.labels["sex"]["0"] == "Female"
    assert "died" not in naming.labels  # computed: no coding


def checker(world: World) -> TestClient:
    return signed_in(world, Role.OUTPUT_CHECKER)


def signed_in(world: World, role: Role) -> TestClient:
    """The console, signed in as the world's person of ``role``."""
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                        follow_redirects=False)
    member = world.member(role)
    answer = client.post(f"{PREFIX}/login", data={"email": member.email, "password": PASSWORD,
                                                  "code": world.code(member)})
    assert answer.status_code == 303, answer.text
    return client


def held_project(world: World) -> str:
    """A project of the researcher's whose rules send small cells to two output checkers
    (the demo's), so that its structural zeros are theirs to judge."""
    assert world.researcher is not None
    today = world.clock().date()
    made = projects.create(world.ctx, None, title="Held for review",
                           purpose="Structural zeros for the output checkers, by sex.",
                           lead_id=world.researcher.person_id, starts_on=today,
                           expires_on=today + dt.timedelta(days=90), fields=FIELDS)
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    world.platform.outputs.set_project_rules(admin, made.project.id, SMALL_CELLS_TO_PEOPLE)
    return made.project.id


def test_the_checkers_table_and_reasons_read_codes_by_meaning(
        world: World, researcher: Principal) -> None:
    project_id = held_project(world)
    service.define(world.platform.enclave, researcher, project_id, "grouped", GROUPED)
    view = world.platform.outputs.analyse(researcher, project_id, {
        "kind": "crosstab", "definition": "grouped", "rows": "sex", "columns": "grp"},
        Format.JSON)
    assert view.report.verdict is Verdict.REVIEW, view.reasons
    world.platform.outputs.request_release(researcher, view.output.id,
                                           "the zero cells are structural: a is by sex")
    # a held output's reasons keep the labels (by meaning) the output would show
    said = quoted([f.reason for f in view.report.findings])
    assert said & SEX and not said & {"0", "1"}, said
    page = checker(world).get(f"{PREFIX}/checks/outputs/{view.output.id}")
    assert page.status_code == 200, page.text[:500]
    cells = page.text.split('data-testid="cells"', 1)[1].split("</table>")[0]
    rows = [html.unescape(r) for r in re.findall(r'<th scope="row">([^<]*)</th>', cells)]
    assert rows[:2] == ["Female (0)", "Male (1)"], rows  # not "0" and "1"
    # the reasons on the flagged cells
    flagged = [html.unescape(r) for r in re.findall(r'title="([^"]*)"', cells)]
    assert flagged and all("Female (0)" in r or "Male (1)" in r for r in flagged), flagged
