"""Every allowance that applies is charged, and none is overshot by a race (issue 52).

Guarantees, each tried here as the leaker would, the ground truth read custodian-side:

* a transfer is charged to the project, to every account of the human it goes to, and to
  both the person's own institution and the project's lead's: colleagues who are members of
  projects led elsewhere stop within their own institution's allowance, each project within
  its share of it (access/shares.py: split evenly among the institution's active projects,
  so that no project's exports move another's refusals);
* one human with two accounts has one person allowance;
* a person near their lifetime allowance raises a high alert whatever the pace (a geometric
  drip that takes most of what is left each fortnight);
* check and reservation are one transaction: thirty requests at once for the last units of
  an allowance are let through exactly as many times as there is room, and a request's meter
  row exists from its reservation (one row per request; released if it failed).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroaring import BitMap
from sqlalchemy import func, select

from strongroom.access import institutions, projects, shares
from strongroom.access.context import Principal
from strongroom.access.models import Person
from strongroom.access.roles import Role
from strongroom.errors import Refused
from strongroom.outputs import answers
from strongroom.watch.exposure import union_since
from strongroom.watch.history import Observation
from strongroom.watch.limits import Planned
from strongroom.watch.models import AlertRow, MeterRow
from strongroom.watch.service import RESERVED
from tests.access_world import Member, World, _add, build_world


@pytest.fixture
def world(tmp_path: Path, database_url: str | None) -> Iterator[World]:
    built = build_world(tmp_path, database_url)
    yield built
    built.platform.close()


def _admin(world: World) -> Principal:
    return world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])


def _institution(world: World, name: str) -> str:
    return institutions.create(world.ctx, None, name=name, country="GB",
                               jurisdiction="UK GDPR", networks=["10.0.0.0/8"]).id


def _researcher(world: World, institution_id: str, email: str) -> Member:
    return _add(world.ctx, institution_id, email, [Role.RESEARCHER], world.clock().date())


def _project(world: World, lead: Member, *members: Member) -> str:
    today = world.clock().date()
    project = projects.create(world.ctx, None, title=f"study led by {lead.email}",
                              purpose="registry linkage of hospital records",
                              lead_id=lead.person_id, starts_on=today,
                              expires_on=today.replace(year=today.year + 1),
                              fields=[31]).project.id
    for member in members:
        projects.add_member(world.ctx, _admin(world), project, member.person_id)
    return project


def _take(world: World, who: Member, project: str, members: range) -> bool:
    """A record-level export of ``members`` as the watch's gate sees it: True if let through."""
    try:
        world.platform.watch.guard(world.sign_in(who), project, "data.export",
                                   Planned(record_members=BitMap(members)))
    except Refused:
        return False
    return True


def test_colleagues_in_projects_led_elsewhere_stop_within_their_institutions_allowance(
        world: World) -> None:
    ring = _institution(world, "Ring University")
    colleagues = [_researcher(world, ring, f"colleague{i}@ring.test") for i in range(3)]
    leads = [_researcher(world, _institution(world, f"Lead {i}"), f"lead{i}@lead{i}.test")
             for i in range(3)]
    studies = [_project(world, lead, colleague)
               for lead, colleague in zip(leads, colleagues, strict=True)]
    world.platform.watch.set_limits(_admin(world), "institution", ring,
                                    {"record_participants": 2_500,
                                     "lifetime_participants": 2_500})
    # three projects: a share of 833 each
    taken = [_take(world, c, p, range(i * 1_000, i * 1_000 + 800))
             for i, (c, p) in enumerate(zip(colleagues, studies, strict=True))]
    assert taken == [True, True, True]
    assert not _take(world, colleagues[0], studies[0], range(900, 1_000))  # past its share
    with world.ctx.transaction() as db:  # custodian-side: what the ring's institution received
        received = union_since(db, world.ctx.key, "institution_id", ring,
                               world.clock() - dt.timedelta(days=30))
        suspended = db.scalar(select(func.count()).select_from(AlertRow).where(
            AlertRow.detector.like("limit.%"), AlertRow.institution_id == ring))
    assert len(received) == 2_400 <= 2_500
    assert suspended == 1


def test_a_project_made_later_takes_nothing_past_the_institution_s_whole(
        world: World) -> None:
    """Shares are the limit split among the projects active now; the institution's whole is
    checked beside them, so a project approved after another took the whole limit takes
    nothing more (the shares alone would have let it take its own half)."""
    ring = _institution(world, "Late University")
    first = _researcher(world, ring, "first@late.test")
    one = _project(world, first)
    world.platform.watch.set_limits(_admin(world), "institution", ring,
                                    {"record_participants": 1_000,
                                     "lifetime_participants": 1_000})
    assert _take(world, first, one, range(0, 1_000))  # alone: the whole limit
    second = _researcher(world, ring, "second@late.test")
    two = _project(world, second)  # approved later: a share of 500
    assert not _take(world, second, two, range(5_000, 5_010))
    with world.ctx.transaction() as db:  # custodian-side: what the institution received
        received = union_since(db, world.ctx.key, "institution_id", ring,
                               world.clock() - dt.timedelta(days=30))
    assert len(received) == 1_000


def test_another_projects_approved_job_moves_no_refusal_here(world: World) -> None:
    """An approved job adds room to its own project's share; the institution's whole, which
    counts every project's use, has every project's jobs' room too: a project whose share is
    free is not refused because another project used its job's room (a red team's 2 of 2)."""
    ring = _institution(world, "Job University")
    one, two = (_researcher(world, ring, f"{who}@job.test") for who in ("p", "q"))
    mine, theirs = _project(world, one), _project(world, two)
    admin = _admin(world)
    world.platform.watch.set_limits(admin, "institution", ring,
                                    {"record_participants": 1_000,
                                     "lifetime_participants": 1_000})  # a share of 500
    now = world.clock()
    job = world.platform.watch.declare_job(
        world.sign_in(two), theirs, "a linkage refresh", record_participants=400,
        starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(days=2))
    world.platform.watch.approve_job(admin, job.id)
    assert _take(world, two, theirs, range(0, 900))  # their share and their job's room
    assert _take(world, one, mine, range(10_000, 10_200))  # this share: all of it free
    with world.ctx.transaction() as db:  # custodian-side: the institution's bound held
        received = union_since(db, world.ctx.key, "institution_id", ring,
                               world.clock() - dt.timedelta(days=30))
    assert len(received) == 1_100 <= 1_000 + 400


def test_another_projects_ended_job_moves_no_refusal_here(world: World) -> None:
    """The whole's room is every job in force within the window, not only now: another
    project's job that let 400 cells through and then ended within the day lowered the whole
    below what it had let through, and a request within this share was refused, and its
    person and project suspended (a review, session 61). A request that reaches only the
    whole (its projects moved within the window) is refused with nobody suspended."""
    ring = _institution(world, "Ended Job University")
    one, two = (_researcher(world, ring, f"{who}@ended.test") for who in ("p", "q"))
    mine, theirs = _project(world, one), _project(world, two)
    admin = _admin(world)
    watch = world.platform.watch
    watch.set_limits(admin, "institution", ring, {"cells": 1_000})  # a share of 500
    now = world.clock()
    job = watch.declare_job(world.sign_in(two), theirs, "a linkage refresh", cells=400,
                            starts_at=now - dt.timedelta(hours=1),
                            ends_at=now + dt.timedelta(hours=1))
    watch.approve_job(admin, job.id)
    watch.hold(world.sign_in(two), theirs, "output.download", cells=900)
    world.clock.advance(hours=2)  # their job ended; its 900 cells stay in the day's window
    watch.hold(world.sign_in(one), mine, "output.download", cells=200)  # within its 500
    third = _researcher(world, ring, "r@ended.test")
    late = _project(world, third)  # approved within the day: shares of 333
    with pytest.raises(Refused) as refused:
        watch.hold(world.sign_in(third), late, "output.download", cells=333)
    assert "nobody is suspended" in " ".join(refused.value.reasons)
    assert "900" not in " ".join(refused.value.reasons)  # no count of others' use
    with world.ctx.transaction() as db:
        raised = db.scalars(select(AlertRow.detector).where(
            AlertRow.project_id == late)).all()
    assert raised == []
    watch.hold(world.sign_in(third), late, "output.download", cells=1)  # not suspended


def test_the_lead_s_institution_is_charged_too(world: World) -> None:
    """A member from elsewhere still uses the allowance of the institution leading the study."""
    assert world.researcher is not None
    guest = _researcher(world, _institution(world, "Guest College"), "guest@guest.test")
    study = _project(world, world.researcher, guest)
    with world.ctx.transaction() as db:  # a share of 1,500 for the study
        led = shares.active_projects(db, world.partner_id)
    world.platform.watch.set_limits(_admin(world), "institution", world.partner_id,
                                    {"record_participants": 1_500 * led})
    assert _take(world, guest, study, range(0, 1_000))
    assert not _take(world, guest, study, range(1_000, 2_000))  # the lead's institution: full


def test_one_human_with_two_accounts_has_one_person_allowance(world: World) -> None:
    first = _add(world.ctx, world.partner_id, "ann.smith@partner.test", [Role.RESEARCHER],
                 world.clock().date())
    second = _add(world.ctx, world.partner_id, "asmith@partner.test", [Role.RESEARCHER],
                  world.clock().date())
    with world.ctx.transaction() as db:  # the same name, written otherwise
        for person_id, name in ((first.person_id, "Dr Ann Smith"),
                                (second.person_id, "Smith, Ann")):
            row = db.get(Person, person_id)
            assert row is not None
            row.name = name
    one, two = _project(world, first), _project(world, second)
    world.platform.watch.set_limits(_admin(world), "person", first.person_id,
                                    {"record_participants": 1_000})
    assert _take(world, first, one, range(0, 700))
    assert not _take(world, second, two, range(700, 1_400))  # the second account: same human


def test_a_geometric_drip_raises_a_high_alert_before_the_allowance_is_gone(
        world: World) -> None:
    assert world.researcher is not None
    project = world.export_project("drip", "a patient drip of record-level rows", [31])
    world.platform.watch.set_limits(_admin(world), "project", project,
                                    {"lifetime_participants": 1_000,
                                     "record_participants": 1_000})
    start, left = 0, 1_000
    for _ in range(3):  # 60% of what is left, every fifteen days
        take = int(left * 0.6)
        assert _take(world, world.researcher, project, range(start, start + take))
        start, left = start + take, left - take
        world.clock.advance(days=15)
    with world.ctx.transaction() as db:
        alerts = db.scalars(select(AlertRow).where(AlertRow.detector == "coverage.lifetime",
                                                   AlertRow.project_id == project)).all()
    assert alerts and all(a.severity == "high" for a in alerts)
    assert any("of it)" in r for a in alerts for r in a.reasons)  # says the share taken


def test_thirty_requests_at_once_for_the_last_cells_let_through_exactly_the_room(
        world: World) -> None:
    assert world.researcher is not None
    watch = world.platform.watch
    watch.set_limits(_admin(world), "project", world.project_id,
                     {"cells": 36 * 5, "requests": 10**6})
    who = world.sign_in(world.researcher)
    gate = threading.Barrier(30)
    served: list[bool] = []

    def download() -> None:
        gate.wait()
        try:
            watch.hold(who, world.project_id, "output.download", cells=36)
            served.append(True)
        except Refused:
            served.append(False)

    threads = [threading.Thread(target=download) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with world.ctx.transaction() as db:
        cells = db.scalar(select(func.sum(MeterRow.cells)).where(
            MeterRow.project_id == world.project_id))
        rows = db.scalar(select(func.count()).select_from(MeterRow).where(
            MeterRow.project_id == world.project_id, MeterRow.action == "output.download"))
    assert served.count(True) == 5
    assert cells == 36 * 5 and rows == 5


def test_a_request_s_reservation_is_its_one_meter_row_and_a_failure_releases_it(
        world: World) -> None:
    assert world.researcher is not None
    watch = world.platform.watch
    who = world.sign_in(world.researcher)

    def served(status: int) -> MeterRow:
        with watch.request() as ticket:
            watch.hold(who, world.project_id, "output.download", cells=10, bytes_out=100)
            watch.hold(who, world.project_id, "output.download", cells=5)
        watch.observe(Observation(at=world.clock(), action="output.download",
                                  route="GET /outputs/{output_id}/download", status=status,
                                  person_id=who.person_id, project_id=world.project_id,
                                  cells=15 if status == 200 else 0), ticket)
        with world.ctx.transaction() as db:
            row = db.get(MeterRow, ticket.row_id)
            assert row is not None
            return row

    ok, failed = served(200), served(500)
    assert (ok.status, ok.cells, ok.bytes_out) == (200, 15, 100)
    assert (failed.status, failed.cells, failed.bytes_out) == (500, 0, 0)
    watch.hold(who, world.project_id, "output.download", cells=7)  # no HTTP: the CLI, a job
    with world.ctx.transaction() as db:
        rows = db.scalars(select(MeterRow).where(MeterRow.project_id == world.project_id)
                          .order_by(MeterRow.id)).all()
    assert len(rows) == 3  # one per request: the reservation became the record
    assert (rows[-1].status, rows[-1].cells) == (RESERVED, 7)


def test_one_human_with_two_accounts_has_one_answer_budget(world: World) -> None:
    first, second = (_add(world.ctx, world.partner_id, email, [Role.RESEARCHER],
                          world.clock().date())
                     for email in ("bo.lee@partner.test", "blee@partner.test"))
    with world.ctx.transaction() as db:
        for person_id in (first.person_id, second.person_id):
            row = db.get(Person, person_id)
            assert row is not None
            row.name = "Bo Lee"
    one, two = _project(world, first), _project(world, second)
    with world.ctx.transaction() as db:
        ration = world.platform.outputs._ration(db, first.person_id)
        day = ration.limit(answers.Scope.PERSON, answers.Window.DAY)
        charged = [answers.reserve(db, first.person_id, one, world.clock(), ration,
                                   "definition") for _ in range(day)]
        assert None not in charged
        # the second account's first answer: the human's day is spent
        assert answers.reserve(db, second.person_id, two, world.clock(), ration,
                               "definition") is None


def test_the_limits_shown_are_the_ones_that_hold(world: World) -> None:
    """A member from elsewhere is shown the smallest of their own institution's and the
    lead's limits, each as this project's share of it, and their own (the smallest over their
    accounts)."""
    assert world.researcher is not None
    home = _institution(world, "Home College")
    guest = _researcher(world, home, "guest@home.test")
    study = _project(world, world.researcher, guest)
    admin = _admin(world)
    world.platform.watch.set_limits(admin, "institution", home, {"cells": 300})
    world.platform.watch.set_limits(admin, "institution", world.partner_id, {"bytes": 4_000})
    world.platform.watch.set_limits(admin, "person", guest.person_id, {"requests": 7})
    project, person, institution = world.platform.watch.limits(world.sign_in(guest), study)
    with world.ctx.transaction() as db:  # the shares: the lead's institution has several
        led = shares.active_projects(db, world.partner_id)
        assert shares.active_projects(db, home) == 1 and led > 1
    assert (institution.cells, institution.bytes) == (300, 4_000 // led)
    assert person.requests == 7 and project.requests > 7
