"""The timing channel (issue 50, channel 3): how long an aggregate query took.

Guarantee under test: *the time a researcher waits for any request that touches real data
is a function of the request and published settings only, never of participants' values,
and the work one row can cause is bounded.* An analysis is answered at the first step of its
schedule (outputs/timing.py) its run reached; a run past its floor spends an answer; and the
SQL guard refuses every expression whose cost one row could amplify (enclave/amplifiers.py).

The attack: an aggregate query whose released output is the same every time (counts by sex)
evaluates an expensive allowed expression only on the target's row, and only when their BMI
is over m; the attacker bisects m on the response time. Each amplifier below is either
refused, with its reason, before anything is read, or answered at the same step of the same
schedule whether the target's BMI is over m or under it, and spends the same answers. The
truth (the target's BMI) is read custodian-side (attacks/runner.py ``cast``); the time is
compared by the step the service reports, never by a raw duration.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE, Target
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service
from strongroom.errors import DataRefusal, Invalid
from strongroom.outputs import answers, timing
from strongroom.outputs.render import Format
from strongroom.outputs.requests import OutputView
from strongroom.outputs.service import Answered
from strongroom.outputs.verdicts import Verdict

pytestmark = pytest.mark.slow

# a floor far above what a 3,000-participant aggregate takes, even on a loaded machine: the
# suite records the waits instead of sleeping them, so it costs nothing to be generous
FLOOR = 4.0
# what the attacker's query releases: counts by sex over everyone, the same every time
PROBE = ("SELECT sex, count(*) AS n FROM base WHERE CASE WHEN {T} AND bmi > {M} THEN {X} "
         "ELSE true END GROUP BY sex")
LONG = "lpad(CAST(bmi AS VARCHAR), 10000, 'a')"
# the most expensive allowed expression: two patterns of about 100 steps per character over
# texts of 10,000 characters, within the work per row (amplifiers.MAX_ROW_WORK)
ALLOWED = "a{1,9}[ab]{1,9}a{1,9}[ab]{1,9}a{1,9}[ab]{1,9}a{1,9}[ab]{1,9}a{1,9}c"
# (summed, not OR-ed with true, which DuckDB folds away before evaluating anything)
STRONGEST = (f"(CASE WHEN regexp_matches({LONG}, '{ALLOWED}') THEN 1 ELSE 0 END + "
             f"CASE WHEN regexp_matches(rpad(CAST(bmi AS VARCHAR), 10000, 'a'), '{ALLOWED}x') "
             "THEN 1 ELSE 0 END) >= 0")
# eight sorted lists of 10,000 characters each: about 20 ms of one core for one row, the
# costliest allowed per row that was found (the patterns above compile once and cost little)
SORTS = " + ".join(f"array_length(list_sort(string_split(lpad(CAST(bmi AS VARCHAR), 10000, "
                   f"'{i}'), '')))" for i in range(8)) + " >= 0"

# (name, the expensive expression {X} or a whole query, a word its refusal must hold)
REFUSED = [
    ("regex counted repetition (the issue's)",
     "regexp_matches(lpad('', 100000, 'a'), '(a{1,100}){1,100}b') OR true", "counted"),
    ("regex counted repetition over a row's text",
     f"regexp_matches({LONG}, '(a|aa){{1,1000}}b') OR true", "counted"),
    ("regex a character repeated a thousand times",
     f"regexp_matches({LONG}, '[a-z]{{1,1000}}[a-z]{{1,1000}}b') OR true", "more than 10"),
    ("regex nested quantifiers", f"regexp_matches({LONG}, '(a+)+b') OR true", "nested"),
    ("regex_extract counted repetition",
     f"length(regexp_extract({LONG}, '(a|aa){{1,1000}}b')) >= 0", "counted"),
    ("regex_replace counted repetition",
     f"length(regexp_replace({LONG}, '(a{{1,100}}){{1,100}}', 'b', 'g')) >= 0", "counted"),
    ("the ~ operator with a long pattern", f"{LONG} ~ '{'a?' * 60}b' OR true", "longer than"),
    ("a pattern built from the data",
     "regexp_matches('aaaa', lpad('a', CAST(bmi AS INTEGER), 'a') || '+b') OR true",
     "written in the query"),
    ("lpad to a length computed from the data",
     "length(lpad('', CAST(bmi * 100000 AS INTEGER), 'a')) >= 0", "pads to"),
    ("lpad to a huge length", "length(lpad('', 100000000, 'a')) >= 0", "pads to"),
    ("repeat", "length(repeat('a', 100000000)) >= 0", "repeat"),
    ("SIMILAR TO", f"{LONG} SIMILAR TO '(a|aa)*b' OR true", "SIMILAR"),
    ("regexp_full_match", f"regexp_full_match({LONG}, 'a+b') OR true", "regexp_full_match"),
    ("a LIKE pattern that is a long built text",
     f"{LONG} LIKE rpad('%', 10000, '%a') OR true", "character steps"),
    ("stacked LIKEs", " OR ".join(f"{LONG} LIKE '%a%a%a%a%a%a%a%a%a%a%a%a%a%a%{i}%b'"
                                  for i in range(12)) + " OR true", "character steps"),
    ("nested lists: sorted splits of long texts",
     " OR ".join(f"array_length(list_sort(string_split(lpad(CAST(bmi AS VARCHAR), 10000, "
                 f"'{i}'), ''))) > 0" for i in range(16)), "character steps"),
    ("range() producing a huge list", "array_length(range(100000000)) > 0", "range"),
    ("generate_series", "array_length(generate_series(1, 100000000)) > 0", "generate_series"),
    ("a lambda over a list (a user function's nearest kin)",
     "array_length(list_transform(string_split(bmi::VARCHAR, ''), x -> x || x)) > 0",
     "lambda"),
    ("printf padding", "length(printf('%100000000d', 1)) > 0", "printf"),
]
QUERIES = [
    ("a recursive CTE counting to a million",
     "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 1000000) "
     "SELECT sex, count(*) AS n FROM base WHERE {T} AND bmi > {M} AND "
     "(SELECT max(x) FROM r) > 0 GROUP BY sex", "RECURSIVE"),
    ("a cross join of the view with itself",
     "SELECT sex, count(*) AS n FROM base WHERE pid IN (SELECT a.pid FROM base a CROSS JOIN "
     "base b WHERE a.bmi > {M}) GROUP BY sex", "cross join"),
    ("the view joined with itself on a shared value",
     "SELECT sex, count(*) AS n FROM base WHERE pid IN (SELECT a.pid FROM base a JOIN base b "
     "ON a.sex = b.sex WHERE {T} AND a.bmi > {M}) GROUP BY sex", "mix participants"),
    ("string_agg of a long text", "SELECT sex, string_agg(lpad(CAST(bmi AS VARCHAR), 10000, "
     "'a'), ',') AS s FROM base WHERE {T} AND bmi > {M} GROUP BY sex", "not allowed"),
    ("unnest of a huge list", "SELECT sex, count(*) AS n FROM base, unnest(range(1000000)) "
     "WHERE {T} AND bmi > {M} GROUP BY sex", "UNNEST"),
    ("a macro (a user-defined function)",
     "CREATE MACRO slow(x) AS regexp_matches(x, '(a|aa){1,1000}b')", "CREATE"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackWorld]:
    built = AttackWorld.build(Path(tmp_path_factory.mktemp("timing")))
    yield built
    built.close()


@pytest.fixture(scope="module")
def cast(world: AttackWorld) -> runner.Cast:
    return runner.cast(world)


@pytest.fixture()
def scheduled(world: AttackWorld) -> Iterator[list[float]]:
    """The platform with a floor on every analysis, its waits recorded rather than slept."""
    ctx, outputs = world.platform.access, world.platform.outputs
    saved, sleep = ctx.settings, outputs.sleep
    waits: list[float] = []
    ctx.settings = dataclasses.replace(saved, analysis_seconds=FLOOR, analysis_ladder=2.0)
    outputs.sleep = waits.append
    try:
        yield waits
    finally:
        ctx.settings, outputs.sleep = saved, sleep


def _attacker(world: AttackWorld) -> tuple[Principal, str]:
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    return who, project


def _used(world: AttackWorld, who: Principal, project: str) -> int:
    outputs = world.platform.outputs
    ration = answers.Ration.strictest([outputs.rules_for(project)])
    with world.platform.access.transaction() as db:
        return answers.used(db, who.person_id, world.clock(), ration)


def _ask(world: AttackWorld, who: Principal, project: str,
         sql: str) -> tuple[OutputView, Answered]:
    seen: list[Answered] = []
    view = world.platform.outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": sql},
                                          Format("json"), answered=seen.append)
    assert len(seen) == 1
    return view, seen[0]


def _sides(target: Target) -> tuple[str, str]:
    """The bisection's two questions for one target: a line just under their BMI (the
    expensive branch runs) and just over it (it does not); the truth read custodian-side."""
    return f"{target.bmi - 0.05:.2f}", f"{target.bmi + 0.05:.2f}"


def _refusal(world: AttackWorld, who: Principal, project: str, sql: str) -> str:
    """The refusal's reasons; it is answered at the floor, as everything else is."""
    seen: list[Answered] = []
    request = {"kind": "aggregate_sql", "sql": sql}
    with pytest.raises(Invalid) as caught:
        world.platform.outputs.analyse(who, project, request, Format("json"),
                                       answered=seen.append)
    assert not isinstance(caught.value, DataRefusal)  # refused for its text, before reading
    floor = world.platform.outputs.schedule(request).floor
    assert [(a.step, a.seconds, a.overran) for a in seen] == [(0, floor, False)]
    return " | ".join(caught.value.reasons)


@pytest.mark.parametrize(("name", "expensive", "word"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_amplifier_is_refused_for_its_text_whatever_the_target(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float], name: str,
        expensive: str, word: str) -> None:
    who, project = _attacker(world)
    target = cast.obese[0]
    reasons = {_refusal(world, who, project, PROBE.replace("{T}", target.condition)
                        .replace("{M}", m).replace("{X}", expensive))
               for m in _sides(target)}
    assert len(reasons) == 1, reasons  # the same refusal over m and under it
    reason = reasons.pop()
    assert word.lower() in reason.lower(), reason
    # it says what to do, not only what is wrong
    assert any(w in reason for w in ("use ", "write ", "Match ", "select ", "join ", "must ",
                                     "only ")), reason
    assert _used(world, who, project) == 0  # nothing read, nothing spent


@pytest.mark.parametrize(("name", "sql", "word"), QUERIES, ids=[q[0] for q in QUERIES])
def test_each_amplifying_query_shape_is_refused_for_its_text(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float], name: str, sql: str,
        word: str) -> None:
    who, project = _attacker(world)
    target = cast.obese[0]
    reasons = {_refusal(world, who, project, sql.replace("{T}", target.condition)
                        .replace("{M}", m)) for m in _sides(target)}
    assert len(reasons) == 1, reasons
    assert word.lower() in reasons.pop().lower()
    assert _used(world, who, project) == 0


def test_the_strongest_allowed_amplifier_answers_at_the_same_step_over_and_under_the_line(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float]) -> None:
    """The most work the guard lets one row cause, only on the target's row and only when
    their BMI is over m: answered at the floor either way, and nothing spent, for every pair
    of targets (obese and lean, so the branch runs on some and not others)."""
    who, project = _attacker(world)
    seen: set[tuple[int, float, bool]] = set()
    for target in (*cast.obese[:3], *cast.lean[:3]):
        for m, expensive in itertools.product(_sides(target), (STRONGEST, SORTS)):
            sql = (PROBE.replace("{T}", target.condition).replace("{M}", m)
                   .replace("{X}", expensive))
            view, answered = _ask(world, who, project, sql)
            assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS)
            seen.add((answered.step, answered.seconds, answered.overran))
    floor = FLOOR * timing.scale(world.platform.enclave.cohort().participants.height)
    assert seen == {(0, floor, False)}  # one step: the floor, whoever and wherever m is
    assert _used(world, who, project) == 0


def test_the_schedule_is_the_request_s_not_the_data_s(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float]) -> None:
    """The floor is fixed before anything is read, from the request and published sizes:
    over m or under it, obese target or lean, each kind's schedule is the same."""
    outputs = world.platform.outputs
    floors = set()
    for target in (cast.obese[0], cast.lean[0]):
        for m in _sides(target):
            sql = PROBE.replace("{T}", target.condition).replace("{M}", m).replace(
                "{X}", STRONGEST)
            floors.add(outputs.schedule({"kind": "aggregate_sql", "sql": sql}))
    floor = FLOOR * timing.scale(world.platform.enclave.cohort().participants.height)
    assert len(floors) == 1 and floors.pop().floor == floor
    model = outputs.schedule({"kind": "logistic", "definition": "base"})
    assert model.floor == 8 * floor  # a model's weight: its own fixed schedule


def test_a_run_past_its_floor_spends_one_answer_and_is_answered_at_a_later_step(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float]) -> None:
    """With a floor shorter than any run, each output is answered at a step above it and
    spends an answer (one, even when the check acts on it too); within the floor, none."""
    ctx = world.platform.access
    who, project = _attacker(world)
    honest = "SELECT sex, count(*) AS n FROM base GROUP BY sex"
    _, answered = _ask(world, who, project, honest)
    assert (answered.step, answered.overran) == (0, False) and _used(world, who, project) == 0
    saved = ctx.settings
    ctx.settings = dataclasses.replace(saved, analysis_seconds=1e-6)
    try:
        view, answered = _ask(world, who, project, honest)
        assert answered.overran and answered.step >= 1
        assert answered.seconds == answered.schedule.at(answered.step)
        assert scheduled[-1] <= answered.seconds
        assert view.report.verdict is Verdict.RELEASE and _used(world, who, project) == 1
        # acted on by the check as well (a sum over one person): still one answer
        one = f"SELECT sum(bmi) AS s FROM base WHERE {cast.value.condition}"
        view, answered = _ask(world, who, project, one)
        assert answered.overran and view.report.verdict is not Verdict.RELEASE
        assert _used(world, who, project) == 2
    finally:
        ctx.settings = saved


def test_a_run_cut_off_at_the_time_limit_is_an_overrun_like_any_other(
        world: AttackWorld, scheduled: list[float]) -> None:
    """engine.Limits.seconds still stops a query; the refusal is an output kept blocked,
    answered on the schedule, and spends one answer, as an overrun does."""
    ctx, enclave = world.platform.access, world.platform.enclave
    who, project = _attacker(world)
    heavy = PROBE.replace("{T}", "true").replace("{M}", "0").replace("{X}", SORTS)
    saved_limits, saved = enclave.limits, ctx.settings
    enclave.limits = dataclasses.replace(saved_limits, seconds=0.05)
    ctx.settings = dataclasses.replace(saved, analysis_seconds=0.01)
    try:
        view, answered = _ask(world, who, project, heavy)
    finally:
        enclave.limits, ctx.settings = saved_limits, saved
    assert view.report.verdict is Verdict.BLOCK
    assert any("longer than the limit" in f.reason for f in view.check_report.findings)
    assert answered.overran and answered.step >= 1
    assert _used(world, who, project) == 1


def test_an_answer_waits_for_its_step(world: AttackWorld) -> None:
    """The wait is real: an honest count is answered no sooner than its floor."""
    ctx = world.platform.access
    who, project = _attacker(world)
    saved = ctx.settings
    ctx.settings = dataclasses.replace(saved, analysis_seconds=1.2)  # 0.3 s at 3,000
    try:
        started = time.monotonic()
        _, answered = _ask(world, who, project,
                           "SELECT sex, count(*) AS n FROM base GROUP BY sex")
        took = time.monotonic() - started
    finally:
        ctx.settings = saved
    assert took >= answered.seconds >= 0.3
