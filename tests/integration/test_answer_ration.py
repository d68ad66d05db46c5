"""Rationed answers (rules.yaml ``answers``): whether the check acts on an output answers a
yes/no question about a small group, so a person's outputs acted on automatically are counted
across all their projects, and once the ration is spent every output of theirs goes to the
output checkers, acted on or not: what the researcher sees stops depending on the data.

Guarantee under test: after ``max_acted`` outputs acted on in the window, no verdict a person
receives (in any project) tells whether a small group exists.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service, sizes
from strongroom.enclave.engine import Limits
from strongroom.errors import Conflict, DataRefusal, Invalid
from strongroom.outputs import answers, requests
from strongroom.outputs.models import AnswerRow
from strongroom.outputs.render import Format
from strongroom.outputs.requests import OutputView
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import Verdict
from tests.redteam_world import time_limit

pytestmark = pytest.mark.slow

# a sum with one large contribution only if the target is obese: winsorised, it is all ones
# either way (the check blocks it as identical values), so it spends an answer every time
PROBE = ("SELECT sum(CASE WHEN {T} AND bmi > 30 THEN 1000 ELSE 1 END) AS s FROM base")
# what winsorisation cannot absorb, a group of exactly k: nine accomplices and the target
# only if obese hold a one; with ten the sum stands (released), with nine it is clipped to
# all zeros and blocked as identical values (the check acts)
ORACLE = ("SELECT sum(CASE WHEN ({G9}) OR ({T} AND bmi > 30) THEN 1 ELSE 0 END) AS s "
          "FROM base")
CLEAN = {"kind": "frequency", "definition": "base", "variable": "sex"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackWorld]:
    built = AttackWorld.build(Path(tmp_path_factory.mktemp("ration")))
    yield built
    built.close()


@pytest.fixture(scope="module")
def cast(world: AttackWorld) -> runner.Cast:
    return runner.cast(world)


def _probe(world: AttackWorld, who: Principal, project_id: str,
           target: runner.Target) -> OutputView:
    return world.platform.outputs.analyse(
        who, project_id, {"kind": "aggregate_sql",
                          "sql": PROBE.replace("{T}", target.condition)}, Format("json"))


def _oracle(world: AttackWorld, who: Principal, project_id: str, target: runner.Target,
            nine: str) -> OutputView:
    sql = ORACLE.replace("{T}", target.condition).replace("{G9}", nine)
    return world.platform.outputs.analyse(who, project_id, {"kind": "aggregate_sql", "sql": sql},
                                          Format("json"))


def _ration(world: AttackWorld, project_id: str, most: int = 3) -> None:
    """The project's ration tightened to ``most`` answers a day (a project may only ration
    harder, and a person's ration is the strictest of their projects'): the tests that spend
    a ration to its last answer spend a few, not the shipped 20 (the first test's)."""
    world.platform.outputs.set_project_rules(world.staff("custodian-admin"), project_id,
                                              {"answers": {"max_acted": most}})


def _seen(world: AttackWorld, who: Principal, view: OutputView) -> tuple[object, ...]:
    """Everything the requester can read of an output, and its status once asked for."""
    shown = view.report.as_dict()
    asked = world.platform.outputs.request_release(who, view.output.id, runner.NOTE)
    return json.dumps(shown, sort_keys=True), asked.status, asked.reasons


def test_the_ration_ends_the_oracle_in_every_project_and_returns_with_the_window(
        world: AttackWorld, cast: runner.Cast) -> None:
    who, first = world.researcher()
    service.define(world.platform.enclave, who, first, "base", BASE)
    second = runner.another_project(world, who)
    rules = world.platform.outputs.rules_for(first)
    assert rules.answers_max_acted == 20 and rules.answers_window_hours == 24  # shipped

    # while the ration lasts, the check's action answers the question (the limit left)
    fat, thin, nine = cast.obese[0], cast.lean[0], cast.nines[0]
    # (the obese target's ten ones stand only by their keyed margin, enclave/margin.py; the
    # lean target's nine never do: clipped to all zeros, blocked as identical values)
    _oracle(world, who, first, fat, nine)
    assert _oracle(world, who, first, thin, nine).report.verdict is Verdict.BLOCK  # all 0
    with world.platform.access.transaction() as db:
        spent = answers.used(db, who.person_id, world.clock(),
                             answers.Ration.strictest([rules]))
    for n in range(2, 60):  # the attacker keeps asking, alternating projects and targets
        project = (first, second)[n % 2]
        target = cast.obese[n % len(cast.obese)] if n % 2 else cast.lean[n % len(cast.lean)]
        spent += (_oracle(world, who, project, target, nine).report.verdict
                  is not Verdict.RELEASE)
        if spent >= rules.answers_max_acted:
            break
    with world.platform.access.transaction() as db:
        assert answers.used(db, who.person_id, world.clock(),
                            answers.Ration.strictest([rules])) == 20

    # spent: an obese and a lean target, and a table with nothing small, all look the same
    obese = _oracle(world, who, first, fat, nine)
    lean = _oracle(world, who, second, thin, nine)
    clean = world.platform.outputs.analyse(who, first, CLEAN, Format("json"))
    # what the check found is kept for the output checkers
    found = {name: {(f.rule, f.verdict) for f in view.check_report.findings}
             for name, view in (("obese", obese), ("lean", lean), ("clean", clean))}
    assert (answers.RULE, Verdict.REVIEW) in found["obese"]
    assert ("identical_values", Verdict.BLOCK) in found["lean"]
    assert lean.check_report.verdict is Verdict.BLOCK
    assert found["clean"] == {(answers.RULE, Verdict.REVIEW)}
    seen = [_seen(world, who, view) for view in (obese, lean, clean)]
    assert seen[0][:2] == seen[1][:2] == (seen[0][0], OutputStatus.UNDER_REVIEW)
    assert seen[0] == seen[1]
    reason = next(f.reason for f in clean.report.findings if f.rule == answers.RULE)
    # which budget, what is left of it, when it renews (a fixed period: the UTC day), whom to ask
    assert "your own budget of 20 answers a day (0 left; it renews at 2026-06-02 00:00 UTC)" \
        in reason and "custodian" in reason
    assert [f.rule for f in obese.report.findings] == [answers.RULE]
    assert obese.digest == lean.digest == (None, None)  # no digest to test a guess against

    # the checkers see all of it, and what the check blocked they may only reject
    checker = world.checker()
    ctx = world.platform.access
    assert requests.read(ctx, checker, lean.output.id).report.verdict is Verdict.BLOCK
    assert requests.read(ctx, who, lean.output.id).report.verdict is Verdict.REVIEW
    listed = {v.output.id: v.report.verdict for v in requests.list_outputs(ctx, checker)}
    assert listed[lean.output.id] is Verdict.BLOCK
    with pytest.raises(Conflict, match="may only reject"):
        world.platform.outputs.review(checker, lean.output.id, True, "looks fine to me")

    # another researcher is not touched by this one's ration
    other, project = world.researcher()
    service.define(world.platform.enclave, other, project, "base", BASE)
    assert world.platform.outputs.analyse(other, project, CLEAN,
                                          Format("json")).report.verdict is Verdict.RELEASE

    # a day on, the ration is back
    world.clock.advance(24 * 3600 + 60)
    assert world.platform.outputs.analyse(who, first, CLEAN,
                                          Format("json")).report.verdict is Verdict.RELEASE


def test_a_project_may_only_ration_harder(world: AttackWorld) -> None:
    from strongroom.outputs.rules import tighten

    base = world.platform.outputs.base_rules
    assert tighten(base, {"answers": {"max_acted": 5}}).answers_max_acted == 5
    assert tighten(base, {"answers": {"window_hours": 72}}).answers_window_hours == 72
    with pytest.raises(Invalid, match="max_acted"):
        tighten(base, {"answers": {"max_acted": 50}})
    with pytest.raises(Invalid, match="verdict"):
        tighten(base, {"answers": {"verdict": "release_with_suppression"}})


def test_asking_for_release_is_rationed_too(world: AttackWorld, cast: runner.Cast) -> None:
    """Outputs prepared while the ration lasted are withheld when asked for once it is spent;
    and a release the ledger refuses (it would single out a few) is an answer that counts."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    _ration(world, project)
    outputs = world.platform.outputs
    rules = outputs.rules_for(project)
    every = "SELECT count(*) AS n FROM base WHERE birth_year < 1945"
    plus = every + f" OR {cast.obese[0].condition}"
    first, second = (outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": sql},
                                     Format("json")) for sql in (every, plus))
    kept = outputs.analyse(who, project, CLEAN, Format("json"))
    assert {v.report.verdict for v in (first, second, kept)} == {Verdict.RELEASE}
    assert outputs.request_release(who, first.output.id).status is OutputStatus.RELEASED
    with pytest.raises(Conflict):  # one participant apart from what was released
        outputs.request_release(who, second.output.id)
    with world.platform.access.transaction() as db:
        assert answers.used(db, who.person_id, world.clock(),
                            answers.Ration.strictest([rules])) == 1

    for n in range(rules.answers_max_acted):  # spend the rest (a sum over one person)
        outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": PROBE.replace(
            "{T}", cast.obese[n % len(cast.obese)].condition) + f" WHERE {n} = {n}"},
            Format("json"))
    asked = outputs.request_release(who, kept.output.id, runner.NOTE)
    assert asked.status is OutputStatus.UNDER_REVIEW
    assert [f.rule for f in asked.report.findings] == [answers.RULE]

    # a checker's decision on it answers what the check would have said: it counts
    ration = answers.Ration.strictest([rules])
    with world.platform.access.transaction() as db:
        before = answers.used(db, who.person_id, world.clock(), ration)
    outputs.review(world.checker(), kept.output.id, False,
                   "a withheld output of a researcher probing small groups")
    with world.platform.access.transaction() as db:
        assert answers.used(db, who.person_id, world.clock(), ration) == before + 1


def test_requests_sent_at_once_cannot_share_the_last_answer(
        world: AttackWorld, cast: runner.Cast) -> None:
    """The ration is read and spent in the transaction that records the output, under a lock
    on the person: twelve probes in parallel with one answer left get exactly one."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    _ration(world, project)
    outputs = world.platform.outputs
    limit = outputs.rules_for(project).answers_max_acted
    for n in range(limit - 1):
        _probe(world, who, project, cast.obese[n % len(cast.obese)])
    with ThreadPoolExecutor(max_workers=6) as pool:
        views = list(pool.map(lambda t: _probe(world, who, project, t),
                              (cast.obese * 2)[:12]))
    answered = [v for v in views if not v.check_report.withheld]
    assert len(answered) == 1, [v.report.verdict for v in views]
    with world.platform.access.transaction() as db:
        assert answers.used(db, who.person_id, world.clock(), answers.Ration(
            limit, 24, Verdict.REVIEW)) == limit


def test_a_person_s_ration_is_the_strictest_of_their_projects(world: AttackWorld,
                                                              cast: runner.Cast) -> None:
    """A project that rations harder holds its researcher in every project: the ration is
    one per person, so asking from the laxer project gives nothing more."""
    who, strict = world.researcher()
    lax = runner.another_project(world, who)
    for project in (strict, lax):
        service.define(world.platform.enclave, who, project, "base", BASE)
    world.platform.outputs.set_project_rules(world.staff("custodian-admin"), strict,
                                              {"answers": {"max_acted": 3}})
    kinds = [_probe(world, who, lax, cast.obese[n]).check_report.withheld for n in range(5)]
    assert kinds == [False, False, False, True, True]


def test_a_withheld_answer_takes_the_same_time_whatever_the_check_did(
        tmp_path: Path) -> None:
    """Past the ration the check still runs (its checkers need the findings), and it takes
    longer when it suppresses: an attacker's review told obese from lean targets by the
    response time alone. A withheld output is answered no sooner than the platform's floor
    after its request, so every probe takes the floor (the floor is a lower bound the service
    enforces; that the check fits under it is measured by the attack scripts, not here)."""
    floor = 1.0
    slow = AttackWorld.build(tmp_path, withheld_seconds=floor)
    try:
        people = runner.cast(slow)
        who = runner.spent(slow, people)
        assert who is not None
        project = runner.another_project(slow, who)
        service.define(slow.platform.enclave, who, project, "base", BASE)
        for target in (people.obese[0], people.lean[0]):
            started = time.monotonic()
            view = _probe(slow, who, project, target)
            assert view.check_report.withheld
            assert time.monotonic() - started >= floor
    finally:
        slow.close()


# A definition that works hard only if the target is obese: as many copies of their row as
# the size bound allows (enclave/sizes.py counts every participant as if they all matched,
# so with a few thousand participants that is 2^10 of one person's rows), each building
# texts of 10,000 characters. Its size is never refused, but its time is the data's: past
# the time limit it is refused after reading the data, and its running time is an answer.
SLOW_TEXTS = 100  # a gigabyte of text when the target is obese: seconds
SLOW_LIMIT = 1.0  # the time limit the slow definition meets, when it is slow


def _copies(world: AttackWorld, texts: int) -> str:
    """The slow definition, with ``{T}`` for the target's condition."""
    people = world.platform.enclave.cohort().participants.height
    doublings = (Limits().max_rows // sizes.rounded(people)).bit_length() - 1
    built = ", ".join(f"lpad(CAST(b.bmi AS VARCHAR), 10000, '{i % 10}') AS t{i}"
                      for i in range(texts))
    return ("WITH d0 AS (SELECT pid FROM base WHERE {T} AND bmi > 30), "
            + ", ".join(f"d{j} AS (SELECT pid FROM d{j - 1} UNION ALL SELECT pid FROM d{j - 1})"
                        for j in range(1, doublings + 1))
            + f" SELECT b.pid, {built} FROM base b JOIN d{doublings} ON b.pid = d{doublings}.pid")


def test_a_definition_refused_by_the_data_is_an_answer_and_none_run_once_spent(
        world: AttackWorld, cast: runner.Cast) -> None:
    """Guarantee: a definition refused once it read the data spends one answer; a definition
    built, or refused for its text, spends none; once the ration is spent no definition runs,
    and the refusal reads the same whoever the definition aims at."""
    who, project = world.researcher()
    _ration(world, project)
    outputs = world.platform.outputs
    ration = answers.Ration.strictest([outputs.rules_for(project)])

    def used() -> int:
        with world.platform.access.transaction() as db:
            return answers.used(db, who.person_id, world.clock(), ration)

    outputs.define(who, project, "base", BASE)
    with pytest.raises(Invalid, match="not a definition name"):
        outputs.define(who, project, "Bad Name", BASE)
    with pytest.raises(Invalid):  # the guard refuses it before any data is read
        outputs.define(who, project, "files", "SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(Invalid, match="could hold up to"):  # so does the size bound
        outputs.define(who, project, "many", "WITH d0 AS (SELECT pid FROM base), " + ", ".join(
            f"d{j} AS (SELECT pid FROM d{j - 1} UNION ALL SELECT pid FROM d{j - 1})"
            for j in range(1, 24)) + " SELECT pid FROM d23")
    slow = _copies(world, SLOW_TEXTS)
    with time_limit(world, SLOW_LIMIT):
        assert outputs.define(who, project, "lean", slow.replace("{T}", cast.lean[0].condition))
        assert used() == 0
        with pytest.raises(DataRefusal, match="the time limit of"):
            outputs.define(who, project, "fat", slow.replace("{T}", cast.obese[0].condition))
    assert used() == 1
    with world.platform.access.transaction() as db:
        kept = db.scalars(select(AnswerRow).where(AnswerRow.requester == who.person_id)).all()
    assert [(a.what, a.spent) for a in kept] == [("definition", False)] * 5 + [
        ("definition", True)]

    for n in range(ration.max_acted - 1):  # spend the rest
        _probe(world, who, project, cast.obese[n % len(cast.obese)])
    assert used() == ration.max_acted
    refusals = []
    for target in (cast.obese[1], cast.lean[1]):
        with pytest.raises(Conflict) as refused:
            outputs.define(who, project, "again", slow.replace("{T}", target.condition))
        refusals.append(refused.value.reasons)
    assert refusals[0] == refusals[1] and "ration of answers" in refusals[0][0]
    with pytest.raises(Conflict):  # nothing runs, however harmless
        outputs.define(who, project, "plain", BASE)
    assert used() == ration.max_acted  # a refusal before reading answers nothing
    assert "again" not in {d.name for d in service.list_definitions(
        world.platform.enclave, who, project)}

    world.clock.advance(24 * 3600 + 60)  # a day on, definitions run again
    assert outputs.define(who, project, "plain", BASE).size_ok


def test_definitions_sent_at_once_cannot_share_the_last_answer(
        world: AttackWorld, cast: runner.Cast) -> None:
    """An answer is reserved before a definition runs: with one left, of six definitions sent
    at once that would each be refused by the data, exactly one reads the data."""
    who, project = world.researcher()
    _ration(world, project)
    outputs = world.platform.outputs
    outputs.define(who, project, "base", BASE)
    limit = outputs.rules_for(project).answers_max_acted
    for n in range(limit - 1):
        _probe(world, who, project, cast.obese[n % len(cast.obese)])

    slow = _copies(world, SLOW_TEXTS).replace("{T}", cast.obese[0].condition)

    def attempt(n: int) -> str:
        try:
            outputs.define(who, project, f"d{n}", slow)
        except DataRefusal:
            return "read"
        except Conflict:
            return "spent"
        return "built"

    with time_limit(world, SLOW_LIMIT), ThreadPoolExecutor(max_workers=6) as pool:
        seen = sorted(pool.map(attempt, range(6)))
    # exactly one reads the data: refused by it ("read"), or, on a loaded machine where the
    # slow query still ends inside the limit, built; the other five find the answer spent
    assert seen[1:] == ["spent"] * 5 and seen[0] in ("built", "read"), seen


def test_a_definition_is_answered_at_its_floor_and_a_slower_one_spends_an_answer(
        world: AttackWorld, cast: runner.Cast) -> None:
    """Guarantee: how long a definition takes says nothing for free. Each is answered no
    sooner than ``Settings.definition_seconds`` after its request; one that takes longer
    (a thousand copies of an obese target's row with long texts, none for a lean one) keeps its
    reserved answer, so a search by running time is rationed like one by refusals."""
    ctx = world.platform.access
    saved = ctx.settings
    who, project = world.researcher()
    outputs = world.platform.outputs
    ration = answers.Ration.strictest([outputs.rules_for(project)])

    def used() -> int:
        with ctx.transaction() as db:
            return answers.used(db, who.person_id, world.clock(), ration)

    def timed(name: str, sql: str) -> float:
        started = time.monotonic()
        outputs.define(who, project, name, sql)
        return time.monotonic() - started

    big = _copies(world, 20)
    lean, fat = (big.replace("{T}", t[0].condition) for t in (cast.lean, cast.obese))
    seen: set[bool] = set()  # whether a definition spent its answer, for each outcome seen
    try:
        # this machine's own times first, with no floor (nothing is kept): the floor is then
        # set between them. On a loaded machine (the other test worker busy) a lean run took
        # 1.5 s and the obese one 1.0 s, so a trial whose times cross is tried again; the
        # rule itself is checked on every run, whatever its time
        ctx.settings = dataclasses.replace(saved, definition_seconds=0.0)
        timed("base", BASE)
        for trial in range(4):
            ctx.settings = dataclasses.replace(saved, definition_seconds=0.0)
            quick = max(timed(f"lean{trial}a", lean), timed(f"lean{trial}b", lean))
            slow = timed(f"fat{trial}a", fat)
            assert used() == 0
            if slow <= 2 * quick:
                continue
            floor = quick ** 0.35 * slow ** 0.65
            ctx.settings = dataclasses.replace(saved, definition_seconds=floor)
            assert timed(f"base{trial}", BASE) >= floor and used() == 0
            for name, sql in ((f"lean{trial}", lean), (f"fat{trial}", fat)):
                before = used()
                took = timed(name, sql)
                assert took >= floor
                spent = used() - before == 1
                # answered at the floor, it kept nothing; past it, at the ladder's next step
                # (twice the floor) or later, and its answer stays spent
                assert spent == (took >= 2 * floor), (name, took, floor, spent)
                seen.add(spent)
            with ctx.transaction() as db:  # this researcher's next trial: a whole ration
                db.execute(delete(AnswerRow).where(AnswerRow.requester == who.person_id))
            if seen == {True, False}:
                break
        assert seen == {True, False}, "no trial had a lean definition within its floor and " \
            "an obese one past it: the machine's load crossed their times four times"
    finally:
        ctx.settings = saved
