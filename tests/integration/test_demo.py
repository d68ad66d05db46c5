"""The demo's story exists, through the real services: outputs waiting for the checkers, an
open alert with its suspensions and appeal, an extract's manifest, a leaked file attributed to
the right project, a DP budget partly spent; and the main researchers and projects, which the
console's tests use, are never paused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from strongroom.access import pauses
from strongroom.access.auth import verify_credentials
from strongroom.access.context import Principal, Via
from strongroom.access.totp import code_at
from strongroom.cohort.model import EID
from strongroom.demo import DemoResult, leaked_file
from strongroom.demo.story import MALLORY, SECOND_CHECKER, signposts
from strongroom.demo.world import MAIN_PROJECTS
from strongroom.extracts import manifest
from strongroom.extracts import service as extracts
from strongroom.outputs import requests
from strongroom.outputs.states import OutputStatus
from strongroom.platform import Platform
from strongroom.watch import alerts
from strongroom.watch.alerts import AlertFilter
from strongroom.watch.appeals import AppealStatus
from strongroom.watch.states import AlertStatus
from tests.access_world import SETTINGS
from tests.demo_world import PARTICIPANTS, demo_world

ROLES = ("custodian-admin", "access-committee", "output-checker", "researcher",
         "security-analyst", "auditor")


@dataclass
class Demo:
    result: DemoResult
    platform: Platform
    root: Path
    signed: dict[str, Principal] = field(default_factory=dict)

    def as_(self, email: str) -> Principal:
        """Signed in with the current code, as at the console (the demo used earlier codes),
        once per person (a code is good once), from an address of the test's own (sign-ins
        are rate-limited per address)."""
        if email not in self.signed:
            login = self.result.world.login(email)
            self.signed[email] = verify_credentials(
                self.platform.access, login.email, login.password,
                code_at(login.totp_secret, dt.datetime.now(dt.UTC)), "127.0.0.3", Via.SESSION)
        return self.signed[email]

    def first_of(self, role: str) -> Principal:
        """The demo's person of that role whom the console's tests sign in as."""
        return self.as_(next(p for p in self.result.world.logins if role in p.roles).email)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    # the run's demo world, as the console's tests read it (tests/demo_world.py: built once a
    # run, a copy of it here): 1,500 participants, 500 markers (a GWAS the check releases), no
    # jobs (the CLI's demo runs them: tests/functional/test_cli.py); its people acted with the
    # test worlds' settings (cheap password hashes, no timing floors: the tour and the story
    # waited a minute on them)
    root, result = demo_world(tmp_path_factory, "demo")
    platform = Platform.open(root, result.key_file, settings=SETTINGS)
    yield Demo(result, platform, root)
    platform.close()


def test_outputs_wait_for_the_checkers_and_a_first_approval_waits_for_a_second(
        demo: Demo) -> None:
    ctx = demo.platform.access
    checker = demo.first_of("output-checker")
    queue = {v.output.id: v for v in requests.list_outputs(ctx, checker, queue=True)}
    held = {h.output_id: h for h in demo.result.story.held}
    waiting = {i for i, h in held.items() if h.status in ("under_review", "approved_once")}
    assert len(waiting) == 3 and waiting <= set(queue)
    assert len({held[i].project_id for i in waiting}) == 2  # from two projects
    (once,) = [i for i in waiting if held[i].status == "approved_once"]
    kofi = demo.as_(SECOND_CHECKER)
    assert [r.reviewer for r in queue[once].reviews] == [kofi.person_id]
    (rejected,) = [i for i, h in held.items() if h.status == "rejected"]
    assert requests.read(ctx, checker, rejected).status is OutputStatus.REJECTED
    # the demo's first checker can give the second approval: the output is released
    done = demo.platform.outputs.review(checker, once, True, "agreed: structural zeros")
    assert done.status is OutputStatus.RELEASED


def test_an_open_alert_suspends_mallory_and_her_project_only(demo: Demo) -> None:
    story, world = demo.result.story, demo.result.world
    ctx = demo.platform.access
    security = demo.first_of("security-analyst")
    found = alerts.list_alerts(ctx, security, AlertFilter(detector="limit."))
    (alert,) = [a for a in found if a.alert.id == story.alert_id]
    assert alert.status is AlertStatus.OPEN and alert.alert.severity == "high"
    mallory = demo.as_(MALLORY)
    linkage = world.projects[MAIN_PROJECTS][0]
    assert (alert.alert.person_id, alert.alert.project_id) == (mallory.person_id, linkage)
    assert alert.appeal.status is AppealStatus.PENDING and alert.appeal.by == mallory.person_id
    admin = demo.first_of("custodian-admin")
    held = {(v.pause.level, v.pause.target_id) for v in pauses.list_pauses(ctx, admin)}
    assert held == {("person", mallory.person_id), ("project", linkage)}


def test_the_extract_has_a_manifest_and_its_leaked_rows_are_attributed_to_it(
        demo: Demo) -> None:
    story = demo.result.story
    assert story.extract is not None and story.leaked == leaked_file(demo.root)
    ctx = demo.platform.access
    mallory = demo.as_(MALLORY).person_id  # signed in outside the transaction below: a
    # sign-in writes, and SQLite's one writer is the open transaction (database is locked)
    with ctx.transaction() as db:
        record = manifest.get(db, story.extract.extract_id)
        assert record.project_id == demo.result.world.projects[MAIN_PROJECTS][0]
        assert record.recipient_id == mallory
        assert record.file_sha256 == story.extract.sha256
    leaked = pl.read_csv(story.leaked)
    assert EID not in leaked.columns and 0 < leaked.height < story.extract.rows
    report = extracts.attribute(ctx, demo.first_of("security-analyst"), story.leaked,
                                store=demo.platform.store)
    assert report.verdict == "attributed"
    assert [(a.project, a.extract_id) for a in report.accused] == [
        (record.project_id, record.id)]


def test_a_dp_project_has_spent_part_of_its_budget(demo: Demo) -> None:
    story = demo.result.story
    assert story.dp_project is not None and not story.notes
    view = demo.platform.privacy.budget_of(demo.first_of("researcher"), story.dp_project)
    assert view.budget.dp_mode and 0 < view.budget.epsilon_spent < view.budget.epsilon_total
    assert view.budget.queries == 3


def test_every_role_has_a_signpost_and_the_console_tests_people_are_free(demo: Demo) -> None:
    world = demo.result.world
    posts = signposts(world, demo.result.story)
    assert [p.role for p in posts] == [*ROLES, "red team"]
    researcher = next(p for p in world.logins if "researcher" in p.roles)
    assert researcher.email == "priya@northbridge.example"  # the console tests' researcher
    assert len(world.projects) == 6 and len({x.institution for x in world.logins}) == 4
    # the current code signs in every role's person the console tests use, right after the
    # demo (which signed its people in with the previous step's code)
    for role in ROLES:
        demo.first_of(role)


def test_the_tour_runs_a_gwas_and_refuses_one_aimed_at_a_participant(demo: Demo) -> None:
    stops = {s.what.split(" (")[0]: s for s in demo.result.tour}
    honest = stops["a GWAS of BMI among White women on the genotypes, with birth year and 10 "
                   "principal components"]
    assert honest.status == "released", honest
    aimed = [s for s in demo.result.tour if s.what.startswith("… its GWAS")]
    assert aimed and aimed[0].status != "released"
    released = demo.result.gwas
    assert released is not None and released.hits
    assert all(h.neg_log10_p >= 0 for h in released.hits)
    assert released.inflation is not None and released.inflation > 0  # stated, as printed
    held = demo.platform.genotypes.require_current()
    assert held.samples == PARTICIPANTS


def test_the_attacks_are_the_red_team_s_and_the_researcher_keeps_her_ration(demo: Demo) -> None:
    """The tour's attacks ran as the custodian's red team, in its own project; the demo
    researcher's study project holds every field the how-tos read, nothing asked in it, and
    most of her day's answers left (docs/how-to/explore-the-demo.md)."""
    from strongroom.access.models import Project
    from strongroom.access.projects import granted_fields
    from strongroom.demo.world import HOW_TO_FIELDS, RED_TEAM, RED_TEAM_PROJECT, STUDY_PROJECT
    from strongroom.outputs import answers
    from strongroom.outputs.models import OutputRow

    result, ctx = demo.result, demo.platform.access
    assert any(s.verdict == "block" for s in result.tour if s.by == "red team")
    assert {s.by for s in result.tour if s.verdict in ("block", "refused")} == {"red team"}
    red = demo.as_(RED_TEAM[0])
    priya = demo.first_of("researcher")
    red_project = result.world.projects[RED_TEAM_PROJECT][0]
    study = result.world.projects[STUDY_PROJECT][0]
    with ctx.transaction() as db:
        askers = set(db.scalars(select(OutputRow.requester)
                                .where(OutputRow.project_id == red_project)))
        assert askers == {red.person_id}
        assert not db.scalars(select(OutputRow.id).where(OutputRow.project_id == study)).all()
        project = db.get(Project, study)
        assert project is not None and project.lead_id == priya.person_id
        assert set(HOW_TO_FIELDS) <= set(granted_fields(db, study))
        ration = demo.platform.outputs._ration(db, priya.person_id)
        spent = {(b.scope.value, b.window.value): b for b in answers.budgets(
            db, priya.person_id, study, ctx.clock(), ration)}
    assert spent[("project", "day")].used == 0
    person = spent[("person", "day")]
    print(f"the demo researcher's day: {person.used} of {person.limit} answers spent")
    assert person.used <= 5  # her tour's two tables and her GWAS (no jobs here)
