"""Hostile jobs that read a participant's value off the *shape* of a job's real run.

The guarantee: **what a researcher can see of a job's real run — which outputs exist, their
names, order and sizes, its status, its failure reason, its walls, its start and end times —
is the same whatever the participants' values, except for the checked content of released
outputs and at most one rationed answer per job.**

Each attack is run twice, with the target's value on either side of the attack's line (or,
for the bits, two targets of different values), read custodian-side: the real runs did
differ (their facts, kept for the custodian, say so), and the researcher's view of the two
jobs — the API's job and each of its outputs as the researcher reads them, which the console,
the command line and the client show — is byte for byte the same once the job's and outputs'
ids and the code's digests (the researcher's own) are set aside. Every such job costs its
answer and raises a ``jobs.shape`` alert for the security team. Real sandboxed jobs
(bubblewrap, control groups), one world for the module.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import delete, func, select

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.attacks.observables import (
    BIT_JOB,
    BIT_OUTPUTS,
    BITS,
    FAILING_PAIRS,
    FINISHED_PAIRS,
    NAMES,
    OWN,
    R_BIT_JOB,
    R_FAILING_PAIRS,
    R_FINISHED_PAIRS,
    archive,
    job_view,
    r_script,
    script,
)
from strongroom.errors import RateLimited
from strongroom.jobs import sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.service import DUMMY_FAILED, PLATFORM_FAILED, REAL_FAILED, ROUTE
from strongroom.jobs.states import ENDED, JobStatus
from strongroom.outputs import requests
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.server.job_schemas import PipelineJobOut, job_out
from strongroom.server.workbench_schemas import output_out
from strongroom.watch.models import AlertRow, MeterRow
from tests.access_world import World
from tests.jobs_world import (
    COHORT,
    FIELDS,
    LIMITS,
    build_jobs_world,
    pipeline,
    planned,
    run_job,
)
from tests.redteam_world import until

# the API's view of a job and of an output, as JSON
SHOWS = (lambda job: job_out(job).model_dump(mode="json"),
         lambda view: output_out(view).model_dump(mode="json"))

pytestmark = pytest.mark.skipif(sandbox.unavailable() is not None,
                                reason=str(sandbox.unavailable()))
NEEDS_R = pytest.mark.skipif(shutil.which("Rscript") is None,
                             reason="R is not installed (make install installs it)")

# small, so that every wall is met in a second or two
SHAPE_LIMITS = replace(LIMITS, wall_seconds=3, cpu_seconds=2, memory_bytes=512 << 20,
                       processes=32, file_bytes=2 << 20, output_bytes=4 << 20)
# the jobs, their branches (which wall the real run meets, on the target's row only) and
# the pairs are shared with the benchmark (benchmarks/disclosure.py --observables)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_jobs_world(tmp_path_factory.mktemp("shape"))
    found.platform.jobs.limits = SHAPE_LIMITS
    yield found
    found.platform.close()


@pytest.fixture(autouse=True)
def ration(world: World) -> Iterator[None]:
    """Each test starts with the ration whole (the module spends more answers than a day
    holds; that each job spends one is asserted where it matters)."""
    with world.ctx.transaction() as db:
        db.execute(delete(AnswerRow))
    yield


def targets(world: World) -> list[tuple[str, float]]:
    """The real participants and their BMI, read custodian-side (ground truth)."""
    project = world.platform.jobs._project(world.project_id)
    frame = world.platform.enclave.definition(project, "cohort")[1]
    return sorted((str(p), float(b)) for p, b in zip(frame["pid"].to_list(),
                                                     frame["bmi"].to_list(), strict=True)
                  if b is not None)


def attack(world: World, target: str, line: float, above: str, below: str, *,
           outputs: str = OWN, plan: str = "[]", expected: int | None = None,
           body: str | None = None, language: str = "python") -> JobRow:
    if language == "r":
        code = body or r_script(target, line, above, below)
        yaml, where = pipeline(outputs, run="Rscript analysis/study.R"), "analysis/study.R"
    else:
        code = body or script(target, line, above, below)
        yaml, where = pipeline(outputs), "analysis/study.py"
    if expected is not None:
        yaml = yaml.replace("    run:", f"    expected_seconds: {expected}\n    run:")
    return run_job(world, {"project.yaml": yaml, where: code, "plans/study.json": plan})


def seen(world: World, row: JobRow) -> str:
    """The researcher's view of a job, as the API gives it (the console, the command line
    and the client show the same): the job, and each of its outputs in the order listed,
    as its researcher reads it; the ids and the code's digests (the researcher's own, not the
    data's) set aside, and the moments (the tests' jobs run without the ladder, seen as they
    end: test_the_end_is_seen_at_the_same_moment_whichever_wall holds them with it)."""
    assert world.researcher is not None
    return json.dumps(job_view(world.platform, world.sign_in(world.researcher), row, SHOWS))


def alerts(world: World, detector: str = "jobs.shape") -> int:
    with world.ctx.transaction() as db:
        return sum(a.count for a in db.scalars(select(AlertRow)
                                               .where(AlertRow.detector == detector)))


def spent(world: World) -> int:
    with world.ctx.transaction() as db:
        return len(list(db.scalars(select(AnswerRow).where(AnswerRow.what == "job",
                                                           AnswerRow.spent.is_(True)))))


def both_sides(world: World, above: str, below: str, **kw: object
               ) -> tuple[JobRow, JobRow, int, int]:
    """The attack run with the target's value above its line, then below (ground truth:
    the target's BMI, custodian-side); the answers spent and the alerts raised by the two."""
    target, bmi = targets(world)[0]
    answers, raised = spent(world), alerts(world)
    high = attack(world, target, bmi - 1.0, above, below, **kw)  # type: ignore[arg-type]
    low = attack(world, target, bmi + 1.0, above, below, **kw)  # type: ignore[arg-type]
    return high, low, spent(world) - answers, alerts(world) - raised


def the_real_runs_differed(high: JobRow, low: JobRow) -> None:
    """Custodian-side: the two real runs ended differently (the channel was there)."""
    facts = [{k: row.usage["real"].get(k) for k in ("problems", "walls", "exit_code", "signal")}
             for row in (high, low)]
    assert facts[0] != facts[1], facts


# -- chosen walls, exit statuses, signals, unreadable outputs ---------------------------------

@pytest.mark.parametrize(("above", "below"), FAILING_PAIRS,
                         ids=[f"{a}-{b}" for a, b in FAILING_PAIRS])
def test_which_wall_the_real_run_met_is_not_seen(world: World, above: str, below: str) -> None:
    high, low, answers, raised = both_sides(world, above, below)
    the_real_runs_differed(high, low)
    assert high.status == low.status == "failed"
    assert high.reasons == low.reasons == [REAL_FAILED]
    assert high.walls == low.walls == []  # the dummy run's walls: it met none
    assert seen(world, high) == seen(world, low)
    assert answers == 2 and raised == 2  # each job's answer spent, each an alert


@pytest.mark.parametrize("language", ["python", pytest.param("r", marks=NEEDS_R)])
def test_which_outputs_were_written_is_not_seen(world: World, language: str) -> None:
    """The bit-per-output attack: b{i} written when bit i of the target's BMI × 10 is 1.
    The custodian's record of the real run gives the value back; the researcher reads one
    failure, the same for two participants of different values."""
    body = R_BIT_JOB if language == "r" else BIT_JOB
    people = targets(world)
    first = people[0]
    second = next(p for p in people if round(p[1] * 10) != round(first[1] * 10))
    answers, raised = spent(world), alerts(world)
    rows = [attack(world, t, 0.0, "plain", "plain", outputs=BIT_OUTPUTS,
                   body=body.format(target=t), language=language) for t, _ in (first, second)]
    for row, (_, bmi) in zip(rows, (first, second), strict=True):
        missing = {p.split("'")[1] for p in row.usage["real"]["problems"]}
        read = sum(1 << i for i in range(BITS) if f"b{i}" not in missing)
        assert read == round(bmi * 10)  # the channel, as the custodian's record holds it
        assert row.status == "failed" and row.reasons == [REAL_FAILED] and row.outputs == {}
    assert seen(world, rows[0]) == seen(world, rows[1])
    assert "was not written" not in seen(world, rows[0])
    assert spent(world) - answers == 2 and alerts(world) - raised == 2


@NEEDS_R
@pytest.mark.parametrize(("above", "below"), R_FAILING_PAIRS,
                         ids=[f"{a}-{b}" for a, b in R_FAILING_PAIRS])
def test_which_wall_an_r_jobs_real_run_met_is_not_seen(world: World, above: str,
                                                       below: str) -> None:
    """The same walls chosen from R (Rscript in the same sandbox): the same one view."""
    high, low, answers, raised = both_sides(world, above, below, language="r")
    the_real_runs_differed(high, low)
    assert high.status == low.status == "failed"
    assert high.reasons == low.reasons == [REAL_FAILED]
    assert high.walls == low.walls == []
    assert seen(world, high) == seen(world, low)
    assert answers == 2 and raised == 2


@NEEDS_R
@pytest.mark.parametrize(("above", "below"), R_FINISHED_PAIRS,
                         ids=[f"{a}-{b}" for a, b in R_FINISHED_PAIRS])
def test_an_r_jobs_finished_outputs_say_nothing_of_how_they_were_written(
        world: World, above: str, below: str) -> None:
    high, low, answers, raised = both_sides(world, above, below, language="r")
    assert high.status == low.status == "finished", (high.reasons, low.reasons)
    assert list(high.outputs) == list(low.outputs) == list(NAMES)
    assert seen(world, high) == seen(world, low)
    assert answers == 0 and raised == 0


# -- finished jobs: order, sizes, placeholders, tries -----------------------------------------

@pytest.mark.parametrize(("above", "below"), FINISHED_PAIRS,
                         ids=[f"{a}-{b}" for a, b in FINISHED_PAIRS])
def test_a_finished_jobs_outputs_say_nothing_of_how_they_were_written(
        world: World, above: str, below: str) -> None:
    high, low, answers, raised = both_sides(world, above, below)
    assert high.status == low.status == "finished", (high.reasons, low.reasons)
    assert list(high.outputs) == list(low.outputs) == list(NAMES)  # declared order
    assert seen(world, high) == seen(world, low)
    if above == "network":  # a try on the real run only: ended otherwise than on the dummy
        assert high.walls == [] and high.usage["real"]["walls"] == ["network"]
        assert answers == 1 and raised == 1  # the answer kept, and an alert
    else:  # ended alike: the answer given back, nothing to alert on
        assert answers == 0 and raised == 0


@pytest.fixture
def moving(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Principal]:
    """The module's clock moved in real time (it is frozen otherwise, which hides what takes
    the data's time), a 4-s ladder, and the researcher signed in; the clock never goes back
    afterwards (a code is accepted once)."""
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    start = time.monotonic()
    monkeypatch.setattr(type(world.clock), "__call__", lambda self: self.now + dt.timedelta(
        seconds=time.monotonic() - start) if self is world.clock else self.now)
    monkeypatch.setattr(world.platform.jobs, "end_ladder", (4.0, 8.0))
    try:
        yield who
    finally:
        world.clock.advance(seconds=time.monotonic() - start + 1)


def test_a_finished_jobs_moments_are_its_start_and_its_due_step_whatever_it_kept(
        world: World, moving: Principal) -> None:
    """The moments a researcher reads of a finished job (its end, each of its own files')
    took none of the data's time: a large file kept first or last (hashing and sealing it
    took its size's time) is seen at the job's end exactly, and the end is its due step
    after the start. An attack timed the files' ``created_at`` against each other for a bit
    a pair, free (39 of 40 bits), with the clock moving."""
    target, bmi = targets(world)[0]
    ends = _moments_of_two(world, moving, target, bmi)
    assert all(4.0 <= end < 4.5 for end in ends), ends  # the step, and the start's commit


def test_a_jobs_meter_row_is_its_start_not_its_real_runs_end(
        world: World, moving: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's own meter row is written before its end is due, as of its start: at the
    clock's now it said when the real run ended, and the request rate limit's Retry-After
    read that moment back to the second, for free (a red team's 4 of 4 two-bit values). Here
    the real run sleeps 2 s or not on the target's BMI; the row's moment is the start both
    ways, and a minute later the rate limit's wait is the researcher's own requests' both ways."""
    monkeypatch.setattr(world.platform.jobs, "limits", replace(SHAPE_LIMITS, wall_seconds=10))
    target, bmi = targets(world)[0]
    said, took = [], []
    for line in (bmi - 1.0, bmi + 1.0):  # over the line: the real run sleeps 2 s
        with world.ctx.transaction() as db:
            db.execute(delete(MeterRow))  # the researcher waited out the minute before
        row = attack(world, target, line, "slow", "plain", expected=4)
        assert row.status == "finished" and row.started_at is not None, row.reasons
        took.append(row.usage["seconds"])  # ground truth: the real run's, custodian-side
        with world.ctx.transaction() as db:
            metered = db.scalars(select(MeterRow).where(MeterRow.via == "job",
                                                        MeterRow.route == ROUTE)).one()
            late = (metered.at - row.created_at).total_seconds()
        assert 0 <= late < 1.0, late  # its submission, not its real run's end
        world.clock.advance(seconds=(row.started_at + dt.timedelta(seconds=60.5)
                                     - world.clock()).total_seconds())
        said.append(_retry_after(world, moving))
    # the runs did differ: the first slept 2 s (a fast run's start alone took 1.95 s on a
    # machine at load 12, so no margin over the other is asked)
    assert took[0] >= 2.0 and took[0] > took[1], took
    # the job's row out of the window both ways: the wait is the researcher's own first
    # request's (60 s less however long the requests took: 59 or 60), where a row at the real
    # run's end, 2 s later on one side, would be the oldest and leave within about 2 s
    assert all(s is not None and s > 10 for s in said), said


def test_nothing_a_later_request_reads_is_written_before_the_jobs_due_moment(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guarantee: what a job leaves for later requests to read (its meter row: the rate
    limit's count, the detectors' history, their alerts) is written at its due moment,
    however long its real run took. A red team's: the row, dated at the start, was written
    as the real run ended, so the requests the rate limit let through mid-job said whether
    it had (18 of 18 bits, a BMI bisected, nothing spent). Here the real run sleeps 2 s or
    not on the target's BMI (the truth: its seconds, custodian-side), due at 4 s; the job's
    row, polled custodian-side as the rate limit counts it, is first there at 4 s both ways."""
    monkeypatch.setattr(world.platform.jobs, "limits", replace(SHAPE_LIMITS, wall_seconds=10))
    target, bmi = targets(world)[0]
    first, took = [], []
    for line in (bmi - 1.0, bmi + 1.0):  # over the line: the real run sleeps 2 s
        with world.ctx.transaction() as db:
            db.execute(delete(MeterRow))
        done: list[JobRow] = []
        job = threading.Thread(target=lambda line=line, done=done: done.append(
            attack(world, target, line, "slow", "plain", expected=4)))
        asked = time.monotonic()
        job.start()
        seen_at = None
        while job.is_alive() or seen_at is None:
            with world.ctx.transaction() as db:
                rows = db.scalar(select(func.count()).select_from(MeterRow).where(
                    MeterRow.via == "job", MeterRow.route == ROUTE))
            if rows and seen_at is None:
                seen_at = time.monotonic() - asked
            if not job.is_alive() and seen_at is None:
                break
            time.sleep(0.05)
        job.join()
        assert done and done[0].status == "finished", done and done[0].reasons
        took.append(done[0].usage["seconds"])
        first.append(seen_at)
    assert took[0] >= 2.0 and took[0] > took[1], took  # the truth: the runs differed
    assert all(at is not None and at >= 3.95 for at in first), (
        f"the job's meter row was there {first} s after asking, the real runs took {took}")


SLEEPS = """
import time
from strongroom import sdc
frame = sdc.read('cohort')
row = frame[frame['pid'].astype(str) == '{target}']
if len(row) and float(row['bmi'].iloc[0]) > {line}:
    time.sleep(3)
open('output/notes.txt', 'w').write('done')
"""
NOTES = "notes: {path: output/notes.txt, kind: text}"


def test_another_projects_job_ahead_moves_no_moment_of_a_job_for_free(
        world: World, moving: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guarantee: what a researcher sees of their job's moments is their own submission and
    schedule, whoever's jobs ran ahead of it: its end, its planned outputs' moments, and a
    refusal. Jobs' sandboxed runs go one at a time, platform-wide. The red teams': a job's
    time counted from its turn, so its end moved with the end of the job ahead of it, any
    project's, and told that job's step (its late end, an answer about its project's data)
    to a researcher of another institution: 18 of 18, 6 of 6 over HTTP, nothing spent; then,
    counted from the submission, its planned outputs were still made at its turn (18 of 18),
    and a job past the ration was refused at its turn, at the step the wait reached (18 of
    18). Here the first project's job sleeps 3 s on the target's BMI (ladder 4, 8 s: late,
    its end at 8 s or past it, the truth); another institution's job, which plans one
    frequency and expects 16 s, is submitted just after it, and then a job of theirs past
    the ration, expecting 2 s: the first is seen to end 16 s after its submission, on time,
    its planned output made at once, nothing spent; the second refused 2 s after its own."""
    assert world.outsider is not None
    jobs = world.platform.jobs
    monkeypatch.setattr(jobs, "limits", replace(SHAPE_LIMITS, wall_seconds=10))
    target, bmi = targets(world)[0]
    today = world.clock().date()
    other = projects.create(world.ctx, None, title="Another study",
                            purpose="An unrelated study, elsewhere",
                            lead_id=world.outsider.person_id,
                            starts_on=today - dt.timedelta(days=5),
                            expires_on=today + dt.timedelta(days=300), fields=FIELDS
                            ).project.id
    outsider = world.sign_in(world.outsider)
    world.platform.outputs.define(outsider, other, "cohort", COHORT)

    def theirs(expected: int, plan: str, body: str) -> JobRow:
        return jobs.start(outsider, other, archive({
            "project.yaml": pipeline(NOTES + "\nsexes: {path: output/sexes.csv, kind: table}")
            .replace("    run:", f"    expected_seconds: {expected}\n    run:"),
            "plans/study.json": plan, "analysis/study.py": body}), "study")
    ahead = jobs.start(moving, world.project_id, archive({
        "project.yaml": pipeline(NOTES), "plans/study.json": "[]",
        "analysis/study.py": SLEEPS.format(target=target, line=bmi - 1.0)}), "study")
    time.sleep(0.3)
    behind = theirs(16, planned(("sexes", {"kind": "frequency", "definition": "cohort",
                                           "variable": "sex"})),
                    "from strongroom import sdc\nsdc.frequency('sexes', 'cohort', 'sex')\n"
                    "open('output/notes.txt', 'w').write('hello')\n")

    def made_planned() -> bool:  # custodian-side: its planned output recorded
        with world.ctx.transaction() as db:
            return bool(db.scalar(select(func.count()).select_from(OutputRow).where(
                OutputRow.project_id == other)))
    assert until(made_planned, 10)
    with world.ctx.transaction() as db:  # their ration spent (the job behind's is reserved)
        while world.platform.outputs.reserve_answer(db, outsider, other, "test") is not None:
            pass
    spent = theirs(2, "[]", "open('output/notes.txt', 'w').write('hello')\n")
    for job, who in ((behind, outsider), (ahead, moving), (spent, outsider)):
        assert until(lambda job=job, who=who: JobStatus(jobs.get(who, job.id).status) in ENDED,
                     60)
    first, seen, refused = (jobs.get(moving, ahead.id), jobs.get(outsider, behind.id),
                            jobs.get(outsider, spent.id))
    assert first.ended_at is not None and seen.ended_at is not None
    # the truth: the job ahead was late, and the others waited for it
    assert (first.ended_at - first.created_at).total_seconds() >= 8.0, first.reasons
    assert seen.status == "finished", seen.reasons
    assert (seen.ended_at - seen.created_at).total_seconds() == 16.0, (
        f"a job that waited for another project's job was seen to end "
        f"{(seen.ended_at - seen.created_at).total_seconds()} s after its submission, "
        "where it expected 16")
    made = requests.read(world.platform.access, outsider, seen.outputs["sexes"])
    assert (made.output.created_at - seen.created_at).total_seconds() < 2.0, (
        "its planned output was made when the job ahead let it run, "
        f"{(made.output.created_at - seen.created_at).total_seconds()} s after its submission")
    assert refused.status == "refused" and refused.ended_at is not None, refused.reasons
    assert (refused.ended_at - refused.created_at).total_seconds() == 2.0, (
        f"a job past the ration was refused {(refused.ended_at - refused.created_at)} after "
        "its submission, where it expected 2 s")
    with world.ctx.transaction() as db:  # nothing of theirs spent on a job
        assert not list(db.scalars(select(AnswerRow).where(
            AnswerRow.requester == world.outsider.person_id, AnswerRow.what == "job",
            AnswerRow.spent.is_(True))))


def test_a_job_the_platform_cannot_run_ends_at_its_own_moment(
        world: World, moving: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guarantee: a job that fails before its real run for the platform's reasons (an error
    of its own, not a refusal) ends at its own expected moment, as a refused one does. The
    red team's: such a job was abandoned at the failure's moment, which, after its turn,
    was the moment the job ahead of it (another project's) ended: 4 of 4, an answer each.
    Here the dummy inputs cannot be written (the truth: the error raised, at once)."""
    def broken(*_: object) -> object:
        raise OSError("no room to write the dummy inputs")
    monkeypatch.setattr(world.platform.jobs, "_dummy_inputs", broken)
    job = world.platform.jobs.start(moving, world.project_id, archive({
        "project.yaml": pipeline(NOTES, inputs="[]").replace(
            "    run:", "    expected_seconds: 3\n    run:"),
        "plans/study.json": "[]",
        "analysis/study.py": "open('output/notes.txt', 'w').write('hello')\n"}), "study")
    assert until(lambda: JobStatus(world.platform.jobs.get(moving, job.id).status) in ENDED,
                 30)
    ended = world.platform.jobs.get(moving, job.id)
    assert ended.status == "refused" and ended.ended_at is not None, ended.reasons
    assert ended.reasons == [PLATFORM_FAILED]
    assert (ended.ended_at - ended.created_at).total_seconds() == 3.0, (
        f"ended {(ended.ended_at - ended.created_at)} after its submission, not at its "
        "expected 3 s")


def _retry_after(world: World, who: Principal) -> int | None:
    """The researcher's data requests until the rate limit refuses one: its Retry-After
    (the requests' rows removed after, so that the module's next tests start unlimited)."""
    try:
        for _ in range(200):
            try:
                world.platform.watch.hold(who, world.project_id, "data.analyse")
            except RateLimited as refused:
                return refused.retry_after
        return None
    finally:
        with world.ctx.transaction() as db:
            db.execute(delete(MeterRow))


def _moments_of_two(world: World, who: Principal, target: str, bmi: float) -> list[float]:
    """Each job's end less its start, as the researcher reads them, once each of its own
    files was found shown at its end."""
    jobs = world.platform.jobs
    ends = []
    for line in (bmi - 1.0, bmi + 1.0):  # its b0 large, then its b2 (ground truth: the BMI)
        row = attack(world, target, line, "big_first", "big_last", expected=4)
        assert row.status == "finished" and row.started_at is not None, row.reasons
        shown = jobs.get(who, row.id)
        assert shown.ended_at is not None and len(shown.outputs) == len(NAMES)
        for output in shown.outputs.values():
            read = requests.read(world.platform.access, who, output)
            assert read.output.created_at == shown.ended_at  # not when it was kept
        ends.append((shown.ended_at - shown.created_at).total_seconds())
    return ends


def test_outputs_are_listed_in_declared_order_planned_or_not(world: World) -> None:
    """A planned output (made before either run) between two of the job's own files: the
    job lists them as project.yaml declares them, whatever order they were made in."""
    outputs = ("b0: {path: output/b0.txt, kind: text}\n"
               "smokers: {path: output/smokers.csv, kind: table}\n"
               "b1: {path: output/b1.txt, kind: text}\n"
               "b2: {path: output/b2.txt, kind: text}")
    plan = planned(("smokers", {"kind": "frequency", "definition": "cohort",
                                "variable": "smoking"}))
    body = """\
from strongroom import sdc
sdc.frequency("smokers", "cohort", "smoking")
for n in ("b2", "b1", "b0"):
    open(f"output/{n}.txt", "w").write(n)
"""
    row = attack(world, "", 0.0, "plain", "plain", outputs=outputs, plan=plan, body=body)
    assert row.status == "finished", row.reasons
    assert list(row.outputs) == ["b0", "smokers", "b1", "b2"]
    assert json.loads(seen(world, row))["names"] == ["b0", "smokers", "b1", "b2"]


# -- the one answer, the dummy run's own facts, the clock --------------------------------------

def test_finished_or_failed_is_the_one_answer_and_it_is_spent(world: World) -> None:
    high, low, answers, raised = both_sides(world, "memory", "plain")
    assert (high.status, low.status) == ("failed", "finished")
    assert answers == 1 and raised == 1  # the failure's answer stays spent, and alerts
    one, other = json.loads(seen(world, high)), json.loads(seen(world, low))
    differ = {k for k in one["job"] if one["job"][k] != other["job"][k]}
    assert differ == {"status", "reasons", "outputs"}  # nothing but the one answer


def test_the_dummy_runs_failure_is_its_own_and_names_no_output_or_wall(world: World) -> None:
    """A dummy run that did not end well fails with one reason, whatever it met: which
    declared output it left unwritten, or which wall it met, it does not say (a dummy run
    could read it off what an earlier job's real run left on the shared machine: its page
    cache, its load); the custodian keeps which, the researcher meets it at home."""
    body = "open('output/b0.txt', 'w').write('x')\n"
    row = attack(world, "", 0.0, "plain", "plain", body=body)
    assert row.status == "failed" and row.reasons == [DUMMY_FAILED]
    view = seen(world, row)
    for random_id in (row.project_id, row.requester):  # a random id may hold "b1"
        view = view.replace(random_id, "…")
    assert "b1" not in view and "b2" not in json.dumps(row.reasons)
    assert sorted(map(list, row.usage["dummy"]["unwritten"])) == [["b1", "output/b1.txt"],
                                                                 ["b2", "output/b2.txt"]]
    walled = attack(world, "", 0.0, "plain", "plain",
                    body="blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20))\n")
    assert walled.status == "failed" and walled.reasons == [DUMMY_FAILED]
    assert "memory" in walled.walls and walled.usage["dummy"]["walls"] == ["memory"]
    assert "memory" not in seen(world, walled)  # the wall is the custodian's


def test_the_end_is_seen_at_the_same_moment_whichever_wall(world: World) -> None:
    """With the ladder in force, a job that declares its expected time is seen to end then,
    whether its real run met the memory wall at once or the time wall seconds later."""
    jobs = world.platform.jobs
    jobs.end_ladder = (8.0, 16.0)
    target, bmi = targets(world)[0]
    took = []
    try:
        for line in (bmi - 1.0, bmi + 1.0):
            started = time.monotonic()
            row = attack(world, target, line, "memory", "time", expected=8)
            took.append(time.monotonic() - started)
            assert row.status == "failed" and row.reasons == [REAL_FAILED]
    finally:
        jobs.end_ladder = ()
    assert min(took) >= 8.0 and max(took) - min(took) < 1.0, took


def test_the_researchers_view_holds_no_real_run_usage() -> None:
    """The real run's seconds, memory, rows, walls and exit status are the custodian's."""
    assert not {"usage", "dummy_log"} & set(PipelineJobOut.model_fields)
