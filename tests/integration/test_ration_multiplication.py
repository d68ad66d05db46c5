"""The ration of answers does not multiply (issue 50, channel 4): answers are budgeted per
person, per project and per institution (the asker's and the project lead's), per day and per
year, and a question the check could have acted on is counted whether or not it did.

Guarantee under test: *the answers a group of researchers can draw about the participants is
bounded per person, per project and per institution, per day and over a year, whatever the
number of members, accounts or projects; and a question the check could have acted on is
counted whether or not it did.* Each attack below tries to draw more than the smallest budget
that applies to it, by adding members, a second project, a second institution, a second
account, or questions built so that the check never acts; the answers drawn are counted
custodian-side, from the database, not from what the service says of itself.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from strongroom.access.models import Project
from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.observables import answered, charged, institution_of, member, probe
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service
from strongroom.errors import Conflict
from strongroom.outputs import answers
from strongroom.outputs.models import OutputRow
from strongroom.outputs.render import Format
from strongroom.outputs.verdicts import Verdict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackWorld]:
    built = AttackWorld.build(Path(tmp_path_factory.mktemp("multiply")))
    yield built
    built.close()


@pytest.fixture(scope="module")
def cast(world: AttackWorld) -> runner.Cast:
    return runner.cast(world)


@contextmanager
def budgets(world: AttackWorld, **limits: int) -> Iterator[None]:
    """The custodian's Settings with ``limits`` (answers_… fields), for one attack."""
    ctx = world.platform.access
    saved = ctx.settings
    ctx.settings = dataclasses.replace(saved, **{f"answers_{k}": v for k, v in limits.items()})
    try:
        yield
    finally:
        ctx.settings = saved


# the probe, its counting and ground truth are shared with the benchmark
# (benchmarks/disclosure.py --observables): strongroom/attacks/observables.py
_probe, _answered, _member, _institution = probe, answered, member, institution_of


# -- the attacks -----------------------------------------------------------------------------


def test_members_added_to_a_project_share_its_budget(world: AttackWorld,
                                                     cast: runner.Cast) -> None:
    """Three members of one project and its lead, each of their own institution, each ask
    three questions: together they draw the project's day (6), not what they asked (12),
    each well inside their own day (20) and institution's."""
    lead, project = world.researcher()
    service.define(world.platform.enclave, lead, project, "base", BASE)
    members = [lead, *(_member(world, project) for _ in range(3))]
    with budgets(world, project_day=6):
        views = [_probe(world, who, project, cast, n)
                 for n in range(3) for who in members]
        assert _answered(views) == 6
        assert charged(world, project=project) == 6
        # once spent, every member's output is withheld, however harmless
        clean = world.platform.outputs.analyse(members[2], project, {
            "kind": "frequency", "definition": "base", "variable": "sex"}, Format("json"))
        assert clean.check_report.withheld
        reason = next(f.reason for f in clean.report.findings if f.rule == answers.RULE)
        assert f"project {project}: budget of 6 answers a day (0 left" in reason


def test_a_second_project_adds_nothing_to_a_person_s_day(world: AttackWorld,
                                                         cast: runner.Cast) -> None:
    """One researcher leading two projects, alternating: the shipped person's day (20)
    holds across both, with the shipped project and institution budgets above it."""
    who, first = world.researcher()
    second = runner.another_project(world, who)
    service.define(world.platform.enclave, who, first, "base", BASE)
    views = [_probe(world, who, (first, second)[n % 2], cast, n) for n in range(24)]
    assert _answered(views) == 20
    assert charged(world, person=who.person_id) == 20
    assert charged(world, project=first) + charged(world, project=second) == 20


def test_a_second_institution_is_held_by_the_lead_institution(world: AttackWorld,
                                                              cast: runner.Cast) -> None:
    """A project led from one institution, with members from two others: every member's
    answers are charged to the lead's institution too, so they draw its day (7)."""
    lead, project = world.researcher()
    service.define(world.platform.enclave, lead, project, "base", BASE)
    lead_institution = _institution(world, lead)
    members = [_member(world, project), _member(world, project)]
    with budgets(world, institution_day=7):
        views = [_probe(world, who, project, cast, n) for n in range(6) for who in members]
        assert _answered(views) == 7
        assert charged(world, institution=lead_institution) == 7
        # the lead finds the institution's budget spent by the others
        assert _probe(world, lead, project, cast, 99).check_report.withheld


def test_an_institution_s_people_in_different_projects_share_its_budget(
        world: AttackWorld, cast: runner.Cast) -> None:
    """Two researchers of one institution, each leading a project of their own: their
    institution's day (9) holds both, whatever the projects. It is split between the two
    (4 each, the odd one unused): what one project draws moves nothing of the other's, so
    neither can read the other's answers from its own refusals (tests/integration/
    test_redteam_shared_state.py), and together they draw no more than the day."""
    first, one = world.researcher()
    institution = _institution(world, first)
    second, other = world.researcher(institution)
    for who, project in ((first, one), (second, other)):
        service.define(world.platform.enclave, who, project, "base", BASE)
    with budgets(world, institution_day=9):
        views = [_probe(world, first, one, cast, n) for n in range(6)]
        assert _answered(views) == 4  # its share, though the institution has 5 left
        views = [_probe(world, second, other, cast, n) for n in range(6)]
        assert _answered(views) == 4  # the first project's spending took none of it
        assert charged(world, institution=institution) == 8


def test_a_project_made_within_the_day_draws_nothing_past_the_institution_s_whole(
        world: AttackWorld, cast: runner.Cast) -> None:
    """The shares are the day split among the projects active now: one project alone draws
    the whole day (8); a second approved later that day finds its share (4) but the
    institution's whole spent, so the two together draw no more than the day (a review
    found 12 against 8 before the whole was checked beside the shares)."""
    first, one = world.researcher()
    institution = _institution(world, first)
    service.define(world.platform.enclave, first, one, "base", BASE)
    with budgets(world, institution_day=8):
        views = [_probe(world, first, one, cast, n) for n in range(9)]
        assert _answered(views) == 8
        second, other = world.researcher(institution)  # approved later that day
        service.define(world.platform.enclave, second, other, "base", BASE)
        views = [_probe(world, second, other, cast, n) for n in range(4)]
        assert _answered(views) == 0
        assert charged(world, institution=institution) == 8


def test_two_accounts_of_one_person_in_different_projects(world: AttackWorld,
                                                          cast: runner.Cast) -> None:
    """One human with two accounts (two emails, one institution), each in its own project,
    and a third project the first joins as a member: the institution's day (9) and year
    (12), split among its three projects (3 and 4 each), hold all of them, and the year
    goes on holding them the next day."""
    one, first = world.researcher()
    institution = _institution(world, one)
    two, second = world.researcher(institution)
    third = world.project(one)
    for who, project in ((one, first), (two, second), (one, third)):
        service.define(world.platform.enclave, who, project, "base", BASE)
    accounts = ((one, first), (two, second), (one, third))
    with budgets(world, institution_day=9, institution_year=12):
        views = [_probe(world, who, project, cast, n)
                 for n in range(5) for who, project in accounts]
        assert _answered(views) == 9
        world.clock.advance(24 * 3600)  # the next day: the year is what is left
        views = [_probe(world, who, project, cast, 100 + n)
                 for n in range(3) for who, project in accounts]
        assert _answered(views) == 3
        assert charged(world, institution=institution) == 12
        refused = next(v for v in views if v.check_report.withheld)
        reason = next(f.reason for f in refused.report.findings if f.rule == answers.RULE)
        assert f"institution {institution} (yours and the project lead): budget of 4 " \
               f"answers a year, the share of this project (the limit split evenly among " \
               f"the projects of the institution active within its window) (0 left" in reason


def test_a_person_s_year_holds_across_days(world: AttackWorld, cast: runner.Cast) -> None:
    """Coming back day after day adds nothing beyond the person's year (25)."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    with budgets(world, person_year=25):
        first = [_probe(world, who, project, cast, n) for n in range(22)]
        world.clock.advance(24 * 3600)
        second = [_probe(world, who, project, cast, 100 + n) for n in range(7)]
    assert (_answered(first), _answered(second)) == (20, 5)
    assert charged(world, person=who.person_id) == 25


def test_definitions_refused_by_a_spent_project_budget_say_which(
        world: AttackWorld, cast: runner.Cast) -> None:
    """A member whose own day is untouched still cannot define once the project's is
    spent by a colleague; the refusal names the budget, its renewal and whom to ask."""
    lead, project = world.researcher()
    service.define(world.platform.enclave, lead, project, "base", BASE)
    member = _member(world, project)
    with budgets(world, project_day=3):
        for n in range(3):
            _probe(world, lead, project, cast, n)
        with pytest.raises(Conflict) as refused:
            world.platform.outputs.define(member, project, "again", BASE)
    text = " ".join(refused.value.reasons)
    assert "ration of answers" in text and f"project {project}: budget of 3" in text
    assert "renews at" in text and "custodian" in text


# -- near misses: a question the check could have acted on is counted ------------------------

COUNT = "SELECT count(*) AS n FROM base WHERE ({G}) OR ({T} AND bmi > 30) AND {r} = {r}"


def _size(world: AttackWorld, project_id: str, where: str) -> int:
    """Custodian-side: the participants of ``base`` a condition holds."""
    with world.platform.access.transaction() as db:
        project = db.get(Project, project_id)
        assert project is not None
    _, base = world.platform.enclave.definition(project, "base")
    return base.filter(pl.sql_expr(where)).height


@pytest.mark.parametrize("accomplices", [9, 18], ids=["k-1", "2k-2"])
def test_near_miss_questions_are_counted(world: AttackWorld, cast: runner.Cast,
                                         accomplices: int) -> None:
    """k − 1 accomplices and the target if obese (a group of k or k − 1), and 2k − 2
    accomplices and the target (2k − 1 or 2k − 2: just over the line), asked in many
    rewordings, each drawing its own margin: every output whose group the check could have
    acted on (below 2k − 1) spends an answer, released whole or not; so the questions
    answered are at most the person's day, and none goes free by sitting above the line."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    k = world.platform.outputs.rules_for(project).threshold
    group = cast.nines[0] if accomplices == 9 else f"({cast.nines[0]}) OR ({cast.nines[1]})"
    seen: list[tuple[int, bool, bool]] = []  # (group size, released whole, counted)
    for r in range(24):
        target = (cast.obese, cast.lean)[r % 2][r // 2 % len(cast.obese)]
        view = world.platform.outputs.analyse(who, project, {
            "kind": "aggregate_sql",
            "sql": COUNT.format(G=group, T=target.condition, r=r)}, Format("json"))
        with world.platform.access.transaction() as db:
            counted = bool(db.get(OutputRow, view.output.id).acted)  # type: ignore[union-attr]
        size = _size(world, project, f"({group}) OR ({target.condition} AND bmi > 30)")
        whole = (view.check_report.verdict is Verdict.RELEASE
                 and not view.check_report.suppressed)
        if not view.check_report.withheld:
            seen.append((size, whole, counted))
    assert {s for s, _, _ in seen} == {accomplices, accomplices + 1}
    for size, whole, counted in seen:
        if size < 2 * k - 1:  # the check could have acted: counted, whatever it did
            assert counted, (size, whole)
        else:  # above every line a margin draws: nothing the check could decide
            assert whole
    # the attack's point: outputs released whole yet counted (near misses) did occur; just
    # over the line (2k − 2) they are most of the answers; at k − 1 a group of k is released
    # whole only on a rare margin draw (keyed by the world's random key), so not asserted
    if accomplices == 18:
        assert any(whole and counted for _, whole, counted in seen)
    assert len(seen) <= 20 + sum(1 for s, _, _ in seen if s >= 2 * k - 1)
    assert charged(world, person=who.person_id) <= 20


# -- concurrency: reserve, then serve -------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_thirty_reservations_at_once_for_the_last_unit_let_one_through(
        tmp_path: Path, database_url: str | None) -> None:
    """Six members of one project, thirty reservations at once (five each) with one answer
    left of the project's day: exactly one is charged, on SQLite and on PostgreSQL."""
    built = AttackWorld.build(tmp_path, cohort=300, database_url=database_url)
    try:
        lead, project = built.researcher()
        members = [lead, *(_member(built, project) for _ in range(5))]
        ctx = built.platform.access
        ration = answers.Ration(20, 24, Verdict.REVIEW, answers.Limits(project_day=4))
        for who in members[:3]:
            with ctx.transaction() as db:
                assert isinstance(answers.charge(db, who.person_id, project, built.clock(),
                                                 ration, "job"), int)
        start = threading.Barrier(30)

        def attempt(n: int) -> bool:
            who = members[n % len(members)]
            start.wait()
            with ctx.transaction() as db:
                got = answers.charge(db, who.person_id, project, built.clock(), ration,
                                     "definition")
            return isinstance(got, int)

        with ThreadPoolExecutor(max_workers=30) as pool:
            through = sum(pool.map(attempt, range(30)))
        assert through == 1
        assert charged(built, project=project) == 4
    finally:
        built.close()
