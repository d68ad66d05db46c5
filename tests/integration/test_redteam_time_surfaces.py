"""Red team: what still tells how long something took, around the scheduled answer.

Time is an output (outputs/timing.py): an analysis is answered at the first step of its
schedule its run reached, a definition at its floor, a job at its expected moment. The
attacker here is a researcher with two clients: one makes a request whose running time hangs
on one participant's value, the other reads everything they may read meanwhile (lists,
polls, refusals of their own requests). Each test reads the truth custodian-side (the
enclave's lock held by the test, the database's rows) and asks whether anything the second
client sees before the answer's moment differs between a fast run and a slow one.

Leaks found are ``xfail(strict=True)``: each fails while the leak is there, and shows as an
unexpected pass (a failure to update) once it is fixed. Surfaces that hold are plain tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest
from sqlalchemy import func, select

from strongroom.access import projects
from strongroom.access.authorize import authorize
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.permissions import Action
from strongroom.attacks import runner
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service
from strongroom.errors import Conflict, RateLimited, Refused
from strongroom.genomics.formats import open_genotypes
from strongroom.outputs import timing
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.outputs.render import Format
from strongroom.outputs.requests import OutputView, list_outputs
from strongroom.outputs.runs import RunStatus
from strongroom.outputs.service import Answered
from strongroom.watch.models import MeterRow
from tests.genotype_files import write_bed
from tests.redteam_world import (
    HONEST,
    SUBSET,
    attacker,
    module_cast,
    module_world,
    scheduled_fixture,
    settings_fixture,
    time_limit,
    until,
    views_lock,
)

pytestmark = pytest.mark.slow

world = module_world()
cast = module_cast()
settings = settings_fixture()
scheduled = scheduled_fixture()



def _ask(world: AttackWorld, who: Principal, project: str, sql: str) -> Answered:
    seen: list[Answered] = []
    world.platform.outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": sql},
                                   Format("json"), answered=seen.append)
    assert len(seen) == 1
    return seen[0]


def _reserved(world: AttackWorld, project: str) -> bool:
    """Custodian-side: the answer a run past its floor would spend is reserved (it runs)."""
    with world.platform.access.transaction() as db:
        return bool(db.scalar(select(func.count()).select_from(AnswerRow).where(
            AnswerRow.project_id == project, AnswerRow.what == "time",
            AnswerRow.spent.is_(True))))


def _recorded(world: AttackWorld, project: str) -> int:
    """Custodian-side: the project's outputs recorded, shown or not yet."""
    with world.platform.access.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(OutputRow).where(
            OutputRow.project_id == project)) or 0)


def _may_define(world: AttackWorld, who: Principal, project: str, name: str) -> bool:
    """The second client's probe: a definition, refused at once (nothing built, nothing
    spent) while the budget of answers is spent, built (and its answer given back) if not."""
    try:
        world.platform.outputs.define(who, project, name, SUBSET)
    except Conflict:
        return False
    return True


# -- the ration of answers: the time answer is given back at recording, not at the answer ----


def test_the_budget_a_run_reserves_comes_back_at_its_answer_s_moment_not_its_end(
        world: AttackWorld, settings: Callable[..., None],
        scheduled: list[float]) -> None:
    """A project's day of answers is one (answers_project_day). The first client's analysis
    reserves it for its time (outputs/timing.py: a run past its floor would spend it). The
    second client asks for a definition before the analysis's answer moment (the floor):
    refused at once if the budget is spent, built if the reservation came back. A fast run
    (recorded at once) and a slow one (held before it records), both within the floor and
    both answered at it, must look alike to the second client."""
    settings(answers_project_day=1)
    seen: dict[bool, bool] = {}
    # fast: recorded at once, then waiting for its answer's moment (the wait held here
    # until the probe is made: before, the reservation came back at the recording)
    who, project = attacker(world)
    outputs, waiting, moment, done = world.platform.outputs, threading.Event(), \
        threading.Event(), []
    recorded_sleep = outputs.sleep

    def wait(seconds: float) -> None:
        waiting.set()
        moment.wait(30)
    outputs.sleep = wait
    try:
        run = threading.Thread(target=lambda: done.append(_ask(world, who, project, HONEST)))
        run.start()
        assert waiting.wait(30) and _recorded(world, project) == 1  # the truth: recorded
        seen[False] = _may_define(world, who, project, "probe")
    finally:
        moment.set()
        outputs.sleep = recorded_sleep
    run.join(30)
    assert [(a.step, a.overran) for a in done] == [(0, False)]
    done.clear()
    # slow: the run is held before it records, still within its floor
    who, project = attacker(world)
    lock = views_lock(world)
    lock.acquire()
    try:
        run = threading.Thread(target=lambda: done.append(_ask(world, who, project, HONEST)))
        run.start()
        assert until(lambda: _reserved(world, project))  # the truth: it runs, reserved
        seen[True] = _may_define(world, who, project, "probe")
        assert _recorded(world, project) == 0  # the truth: not recorded yet
    finally:
        lock.release()
    run.join(30)
    assert [(a.step, a.overran) for a in done] == [(0, False)]  # answered at the floor too
    # what the second client saw before either answer's moment (the floor)
    assert seen[True] == seen[False], (
        f"a definition was {'built' if seen[False] else 'refused'} during the fast run's "
        f"floor and {'built' if seen[True] else 'refused'} during the slow one's")


# -- definitions: listed when built, not when answered ---------------------------------------


def test_a_definition_is_listed_no_sooner_than_it_is_answered(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """The definition's floor is 1.5 s (``definition_seconds``, a real wait). One build is
    fast, the other held 0.5 s by the test (the truth). A second client lists the project's
    definitions every 10 ms while the first client waits for its answer: each must first see
    it only once its answer's moment (the floor) has come, whatever the build took."""
    settings(definition_seconds=1.5)
    enclave, lock = world.platform.enclave, views_lock(world)
    listed: dict[float, float | None] = {}
    for held in (0.0, 0.5):
        who, project = attacker(world)
        name = f"d{int(held * 10)}"
        asked, answered = time.monotonic(), threading.Event()

        def define(who: Principal = who, project: str = project, name: str = name,
                   answered: threading.Event = answered) -> None:
            try:
                world.platform.outputs.define(who, project, name, SUBSET)
            finally:
                answered.set()
        owned = bool(held) and lock.acquire()
        try:
            thread = threading.Thread(target=define)
            thread.start()
            first: float | None = None
            while not answered.is_set():
                if owned and time.monotonic() - asked >= held:
                    lock.release()
                    owned = False
                if first is None and name in {d.name for d in service.list_definitions(
                        enclave, who, project)}:
                    first = time.monotonic() - asked
                time.sleep(0.01)
        finally:
            if owned:
                lock.release()
        thread.join(30)
        listed[held] = first
    # its answer's moment is the floor's (the build within it): listed from then, not before
    # (the defining client's reply follows a moment later, after its answer is given back)
    assert all(first is None or first >= 1.5 for first in listed.values()), (
        f"listed before its answer, this many seconds after it was asked for: {listed}")


class _FirstWait:
    """The enclave views' lock, noting when a thread other than the one that made it first
    asked for it: when the held work began to wait, whatever the machine's load before."""

    def __init__(self, lock: Any):
        self.lock, self.owner = lock, threading.get_ident()
        self.first: float | None = None

    def _note(self) -> None:
        if self.first is None and threading.get_ident() != self.owner:
            self.first = time.monotonic()

    def acquire(self, *args: Any) -> bool:
        self._note()
        return bool(self.lock.acquire(*args))

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_definition_past_its_floor_is_answered_at_a_step_of_a_ladder(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """Floor 0.1 s; the build is held 1.1 s by the test from the moment it first waits for
    the views (however late a loaded machine gets it there). An analysis past its floor is
    answered at the next step of its ladder (0.1 · 2^j: 1.6 s here), and so is a definition
    (before, it was answered when it ended, about 1.1 s: its time as fine as the clock)."""
    settings(definition_seconds=0.1, analysis_ladder=2.0)
    who, project = attacker(world)
    enclave = world.platform.enclave
    lock = _FirstWait(views_lock(world))
    took: list[float] = []
    failed: list[BaseException] = []

    def define() -> None:
        started = time.monotonic()
        try:
            world.platform.outputs.define(who, project, "held", SUBSET)
        except BaseException as error:  # shown by the test, not lost in its thread
            failed.append(error)
        finally:
            took.append(time.monotonic() - started)
    enclave._views._lock = lock  # type: ignore[assignment]
    lock.acquire()
    try:
        thread = threading.Thread(target=define)
        thread.start()
        while lock.first is None and thread.is_alive():  # the truth: the build is waiting
            time.sleep(0.01)
        waited = lock.first
        time.sleep(1.1)
    finally:
        released = time.monotonic()
        lock.release()
        thread.join(120)
        enclave._views._lock = lock.lock
    assert not thread.is_alive() and not failed, failed
    assert waited is not None, "the definition never waited for the views"
    ladder = timing.Schedule(0.1, 2.0)
    step = ladder.step(released - waited - 0.05)  # the least the build took, less a margin
    with world.platform.access.transaction() as db:  # custodian-side: its answer spent
        assert db.scalar(select(func.count()).select_from(AnswerRow).where(
            AnswerRow.project_id == project, AnswerRow.what == "definition",
            AnswerRow.spent.is_(True))) == 1
    assert took[0] >= ladder.at(step), (
        f"answered {took[0]:.3f} s after it was asked, not at a step of "
        f"{[round(ladder.at(j), 2) for j in range(6)]}")


# -- the rate limit: a job's planned output is metered at its recording -----------------------


def _held_while_the_clock_moves(lock: Any, taken: threading.Event, clock: Any,
                                seconds: float) -> None:
    """Hold the enclave's views a moment while the world's clock moves on ``seconds``."""
    with lock:
        taken.set()
        time.sleep(0.3)
        clock.advance(seconds)


def test_a_job_s_planned_output_is_metered_at_no_moment_but_its_request_s(
        world: AttackWorld, scheduled: list[float]) -> None:
    """A job's planned outputs go through the output service as the analysis requests they
    stand for (``Jobs._analysed``). Before, each wrote a meter row of its own, a data
    request, when its output was recorded, before its answer. Here one planned analysis is
    slowed by 20 s of the world's clock, within its floor, and one is not (the truth, made
    by the test). Its one meter row must stand at its request's moment either way, so that
    a minute and a second after the request, the project's rate (1 data request a minute,
    set by a custodian admin) answers the attacker's next request alike after both (before:
    let through after the fast one, refused after the slow one "retry in 19 s")."""
    admin, clock = world.staff("custodian-admin"), world.clock
    seen: dict[bool, object] = {}
    for slow in (False, True):
        who, project = attacker(world)
        arrived = clock()
        holder = threading.Thread(target=_held_while_the_clock_moves, args=(
            views_lock(world), taken := threading.Event(), clock, 20.0))
        if slow:
            holder.start()
            taken.wait()
        seen_answer: list[Answered] = []
        world.platform.jobs._analysed(SimpleNamespace(project_id=project), who,
                                      {"kind": "aggregate_sql", "sql": HONEST},
                                      Format("json"), "planned.json", seen_answer.append)
        if slow:
            holder.join()
        assert [(a.step, a.overran) for a in seen_answer] == [(0, False)]
        assert (clock() - arrived).total_seconds() >= (20.0 if slow else 0.0)
        with world.platform.access.transaction() as db:  # custodian-side: one row, its request's
            rows = db.scalars(select(MeterRow).where(MeterRow.project_id == project)).all()
            assert [((r.at - arrived).total_seconds(), r.status, r.via) for r in rows] == [
                (0.0, 201, "job")]
        outputs = world.platform.outputs
        world.platform.watch.set_limits(admin, "project", project, {"requests": 1})
        clock.advance(61.0 - (clock() - arrived).total_seconds())
        try:
            outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": HONEST},
                            Format("json"))
            seen[slow] = "answered"
        except RateLimited as refused:
            seen[slow] = f"retry after {refused.retry_after} s"
    assert seen[True] == seen[False], seen


# -- DP queries: no schedule, and each spend shows its own running time ----------------------


class _SlowedEngine:
    """The DP engine pool, its release moving the world's clock on ``seconds`` (as a run that
    took that long on the data would): the test's truth."""

    def __init__(self, pool: Any, clock: Any, seconds: float) -> None:
        self.pool, self.clock, self.seconds = pool, clock, seconds

    def call(self, header: dict[str, Any], rows: Any, owner: str = "") -> Any:
        if header.get("op") == "release":
            self.clock.advance(self.seconds)
        return self.pool.call(header, rows, owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


def test_a_dp_spend_shows_no_running_time(world: AttackWorld,
                                         settings: Callable[..., None]) -> None:
    """Two DP counts, one whose release took 20 s of the world's clock (the truth, made
    by the test around the engine) and one that took none: what a second client of the
    project reads of the spends (their moments) must not differ, and each is answered at
    its floor (a real wait), not when its release ended. Before, a DP query had no
    schedule and its spend showed ``finished_at − charged_at``: the release's own time."""
    # a quarter at 3,000: 2 s, well past a count's release on a loaded machine
    settings(analysis_seconds=8.0, analysis_ladder=2.0)
    privacy = world.platform.privacy
    committee = world.staff("access-committee")
    who, project = world.researcher()
    privacy.configure(committee, project, reason="the access committee approved it",
                      epsilon="1")
    floor = privacy.schedule().floor
    assert floor == pytest.approx(2.0)
    engine = privacy._engine_of
    shown: list[float] = []
    for seconds in (0.0, 20.0):
        pool = engine()
        privacy._engine_of = lambda pool=pool, seconds=seconds: _SlowedEngine(
            pool, world.clock, seconds)
        asked, started = world.clock(), time.monotonic()
        try:
            answer = privacy.query(who, project, {"kind": "count", "epsilon": "0.05"})
        finally:
            privacy._engine_of = engine  # its own again
        assert time.monotonic() - started >= floor
        spend, = (s for s in privacy.budget_of(who, project).spends
                  if s.id == answer.spend_id)
        assert spend.finished_at is not None and spend.charged_at == asked  # clock unmoved
        shown.append((spend.finished_at - spend.charged_at).total_seconds())
    assert shown == [floor, floor], f"finished_at − charged_at: {shown}"


class _HeldEngine(_SlowedEngine):
    """The DP engine pool, its release held ``seconds`` of real time (the test's truth)."""

    def call(self, header: dict[str, Any], rows: Any, owner: str = "") -> Any:
        if header.get("op") == "release":
            time.sleep(self.seconds)
        return self.pool.call(header, rows, owner)


def test_a_dp_release_past_its_floor_spends_an_answer_and_one_within_it_none(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """A DP release's step is data, as an analysis's is: one held 2 s past a 1 s floor
    is answered at a step of the ladder (2 s or later) and keeps the answer reserved for its
    time, spent; one within the floor gives it back (the truth: the answers' rows). A fast
    query that a loaded machine took past its floor (its answer kept) is tried again."""
    settings(analysis_seconds=4.0, analysis_ladder=2.0)  # a quarter at 3,000: 1 s
    privacy = world.platform.privacy
    committee = world.staff("access-committee")
    engine = privacy._engine_of

    def spent(who: Principal) -> int:
        with world.platform.access.transaction() as db:
            return db.scalar(select(func.count()).select_from(AnswerRow).where(
                AnswerRow.requester == who.person_id, AnswerRow.what == "dp",
                AnswerRow.spent.is_(True))) or 0

    def timed(held: float) -> tuple[float, int]:
        who, project = world.researcher()
        privacy.configure(committee, project, reason="the access committee approved it",
                          epsilon="1")
        pool = engine()
        privacy._engine_of = lambda pool=pool, held=held: _HeldEngine(pool, None, held)
        started = time.monotonic()
        try:
            privacy.query(who, project, {"kind": "count", "epsilon": "0.05"})
        finally:
            privacy._engine_of = engine  # its own again
        return time.monotonic() - started, spent(who)
    for _trial in range(3):
        quick, kept = timed(0.0)
        assert quick >= 1.0, quick  # never before its floor
        if not kept:
            break
    assert kept == 0, f"every trial's fast query passed its floor ({quick:.2f} s): too loaded"
    slow, kept = timed(2.0)
    assert kept == 1 and slow >= 2.0, (slow, kept)


# -- what holds ------------------------------------------------------------------------------


def test_a_polled_run_shows_running_between_its_recording_and_its_answer(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """A submitted run (outputs/runs.py) is recorded long before its floor (1 s, really
    waited): between the two, a poll shows it running, with no output and no end, its
    progress from the schedule alone, and no list shows its output (the truth: its row is
    in the database)."""
    settings(analysis_seconds=4.0, analysis_ladder=2.0)  # a quarter at 3,000: 1 s
    runs = world.platform.runs
    who, project = attacker(world)
    row = runs.submit(who, project, {"kind": "aggregate_sql", "sql": HONEST})
    assert until(lambda: _recorded(world, project) == 1)  # the truth: recorded
    polled = runs.get(who, row.id)
    assert polled.run.status == RunStatus.RUNNING.value
    assert polled.run.output_id is None and polled.run.ended_at is None
    assert polled.schedule.floor == pytest.approx(1.0)
    assert polled.progress is not None and polled.progress.step == 0  # the clock's, alone
    assert list_outputs(world.platform.access, who, project) == []
    assert runs.wait(row.id, 30)
    assert runs.get(who, row.id).run.status == RunStatus.DONE.value


def test_an_output_s_time_and_place_in_the_list_are_the_schedule_s(
        world: AttackWorld, scheduled: list[float]) -> None:
    """Two outputs of one request moment, one run held 0.3 s (the truth): both are shown at
    the same moment (the floor), and the list orders them by that moment and their ids
    alone (ids drawn at random), never by when they were recorded."""
    who, project = attacker(world)
    lock, clock = views_lock(world), world.clock
    arrived = clock()
    times = []
    for held in (0.0, 0.3):
        done: list[Answered] = []
        _asked_while(lock, bool(held), lambda done=done: done.append(
            _ask(world, who, project, HONEST)), lambda held=held: time.sleep(held))
        assert [(a.step, a.overran) for a in done] == [(0, False)]
    views = list_outputs(world.platform.access, who, project)
    assert views == []  # the world's clock is short of the floor: none shown yet
    floor = world.platform.outputs.schedule({"kind": "aggregate_sql", "sql": HONEST}).floor
    clock.advance(floor)
    views = list_outputs(world.platform.access, who, project)
    times = [(v.output.created_at - arrived).total_seconds() for v in views]
    assert times == [floor, floor]
    assert [v.output.id for v in views] == sorted(v.output.id for v in views)


# ones and twos in the tails: suppressed whatever margin a project draws (one column: the
# four of before made secondary suppression a third of the module's CPU)
ACTED = "SELECT sbp, count(*) AS n FROM base GROUP BY sbp"


def _spend_the_day(world: AttackWorld, who: Principal, project: str,
                   maybe_spent: bool = False) -> None:
    """Spend the project's day of answers (``answers_project_day=1``): an acted output
    (``maybe_spent``: or withheld, an earlier output having spent it already)."""
    spent = world.platform.outputs.analyse(
        who, project, {"kind": "aggregate_sql", "sql": ACTED}, Format("json"))
    assert spent.output.acted or (maybe_spent and spent.check_report.withheld)


def _past_the_ration(world: AttackWorld, who: Principal, project: str,
                     asked: list[dict[str, object]]) -> tuple[list[OutputView], list[Answered]]:
    """Each request analysed in turn: its output and when it was answered."""
    seen: list[Answered] = []
    views = [world.platform.outputs.analyse(who, project, request, Format("json"),
                                            answered=seen.append) for request in asked]
    return views, seen


def _answered_alike(views: list[OutputView], seen: list[Answered], runs: str,
                    stopped: str) -> None:
    """Both withheld (past the ration), answered at one moment, the second (the slow run)
    refused at its deadline (custodian-side: its report says so)."""
    assert [v.check_report.withheld for v in views] == [True, True]
    assert seen[0].moment == seen[1].moment, (
        f"{runs} answered at {seen[0].moment} and {seen[1].moment}")
    assert stopped in " ".join(f.reason for f in views[1].check_report.findings)


def _asked_while(lock: threading.Lock, held: bool, ask: Callable[[], object],
                 meanwhile: Callable[[], None]) -> None:
    """``ask`` in a thread of its own, the views' ``lock`` held (``held``: the run waits for
    it) while ``meanwhile`` runs; then the run let go and waited for."""
    if held:
        lock.acquire()
    try:
        run = threading.Thread(target=ask)
        run.start()
        meanwhile()
    finally:
        if held:
            lock.release()
    run.join(30)


def test_past_the_ration_a_run_the_time_limit_bounds_is_answered_at_one_moment(
        world: AttackWorld, settings: Callable[..., None], scheduled: list[float]) -> None:
    """Guarantee: once a person's ration is spent (every output withheld, a run past its
    floor spends nothing more), a run the query time limit bounds is answered at one moment
    however long it took. The project's day is one answer, spent by an acted output; then a
    quick run and one held 1.7 s (the truth, timed here) are both withheld. The floor is 1 s
    (ladder 1, 2, 4 s), withheld outputs wait 1.5 s and the limit is 2 s: before, the quick
    one was answered at 1.5 s and the held one at 2 s, its step, for free."""
    settings(answers_project_day=1, analysis_seconds=4.0, withheld_seconds=1.5)
    with time_limit(world, 2.0):
        who, project = attacker(world)
        _spend_the_day(world, who, project)
        lock = views_lock(world)
        moments, took, withheld = {}, {}, []

        def ask(done: list[Answered]) -> None:
            view = world.platform.outputs.analyse(
                who, project, {"kind": "aggregate_sql", "sql": HONEST}, Format("json"),
                answered=done.append)
            withheld.append(view.check_report.withheld)
        for held in (0.0, 1.7):
            done: list[Answered] = []
            started = time.monotonic()
            if held:
                lock.acquire()
            try:
                run = threading.Thread(target=ask, args=(done,))
                run.start()
                if held:
                    time.sleep(held)
            finally:
                if held:
                    lock.release()
            run.join(30)
            took[held] = time.monotonic() - started
            assert len(done) == 1 and done[0].moment is not None
            moments[held] = done[0].moment
        assert took[1.7] > 1.7 > 1.5 + 0.1 > took[0.0]  # the truth: the held run was slow
        assert withheld == [True, True]  # past the ration
        assert moments[0.0] == moments[1.7], (
            f"withheld outputs answered {moments[0.0]} after a quick run and "
            f"{moments[1.7]} after a slow one")


def test_past_the_ration_at_its_begin_an_output_is_withheld_whatever_is_given_back_after(
        world: AttackWorld, settings: Callable[..., None], scheduled: list[float]) -> None:
    """Guarantee: an analysis asked past the ration is withheld, and answered at the one
    withheld moment, whatever budget comes back while it runs. The red team's: the budgets
    were read again when its run was recorded, a moment its work set, so a day's ration
    renewed at midnight (or a definition's answer given back at its floor) between a quick
    run's recording and a slow one's released the slow run's output, at its own step, and
    withheld the quick one's: 18 of 18 targets, nothing spent. Here the day is spent, and
    midnight passes while one run is held (the truth: held 1 s past it) and not the other."""
    settings(answers_project_day=1, analysis_seconds=1.0, withheld_seconds=1.5)
    who, project = attacker(world)
    _spend_the_day(world, who, project)
    lock = views_lock(world)
    shown: dict[float, tuple[bool, dt.timedelta]] = {}
    for held in (0.0, 1.0):
        done: list[Answered] = []
        views: list[OutputView] = []
        asked = world.clock()

        def midnight(held: float = held) -> None:
            time.sleep(0.3)  # begun, past the ration (the quick one recorded too)
            world.clock.advance(86400.0)  # midnight: the day's answers come back
            time.sleep(held)
        _asked_while(lock, bool(held), lambda done=done, views=views: views.append(
            world.platform.outputs.analyse(who, project, {"kind": "aggregate_sql",
                                                          "sql": HONEST},
                                           Format("json"), answered=done.append)), midnight)
        assert len(done) == 1 and len(views) == 1
        assert done[0].moment is not None
        shown[held] = (views[0].check_report.withheld, done[0].moment - asked)
        _spend_the_day(world, who, project, maybe_spent=True)  # past the ration again
    assert shown[0.0] == shown[1.0] and shown[0.0][0], (
        f"past the ration at its begin, a quick run was {shown[0.0]} (withheld, answered "
        f"after) and one recorded after midnight {shown[1.0]}")


def test_access_is_judged_at_the_answer_s_moment_not_at_the_recording(
        world: AttackWorld, settings: Callable[..., None], scheduled: list[float]) -> None:
    """Guarantee: whether an analysis is answered or refused for access, and when, follows
    its request and schedule, not when its run was recorded. The red team's: access was
    judged again in the recording transaction, so on a project's last day a quick run
    recorded before midnight was withheld (201, at the withheld moment) and a slow one
    recorded after it refused at its own step (403): 18 of 18, nothing spent (a pause
    landing mid-run the same). Here the clock moves with the schedule's waits; the project
    expires at midnight, 1.5 s after the request; one run is held past midnight (the
    truth: its recording's moment, custodian-side) and one is not."""
    settings(answers_project_day=1, analysis_seconds=1.0, withheld_seconds=1.5)
    who, project = attacker(world)
    _spend_the_day(world, who, project)
    outputs = world.platform.outputs
    outputs.sleep = world.clock.advance  # the clock moves with the schedule's waits
    lock = views_lock(world)
    seen: dict[float, tuple[str, object]] = {}
    for held in (0.0, 3.0):
        midnight = dt.datetime.combine(world.clock().date() + dt.timedelta(days=1),
                                       dt.time(), tzinfo=dt.UTC)
        with world.platform.access.transaction() as db:
            row = db.get(Project, project)
            assert row is not None
            ends = row.expires_on
            row.expires_on = world.clock().date()  # its last day
        world.clock.now = midnight - dt.timedelta(seconds=1.5)
        asked = world.clock()
        done: list[Answered] = []
        outcome: list[str] = []

        def ask(done: list[Answered] = done, outcome: list[str] = outcome) -> None:
            try:
                view = outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": HONEST},
                                       Format("json"), answered=done.append)
                outcome.append(f"answered, withheld {view.check_report.withheld}")
            except Refused as refused:
                outcome.append(f"refused: {refused}")
        def past_midnight(held: float = held) -> None:
            if held:  # the held run is recorded after midnight
                time.sleep(0.3)
                world.clock.advance(held)
        _asked_while(lock, bool(held), ask, past_midnight)
        assert len(done) == 1 and done[0].moment is not None and len(outcome) == 1
        seen[held] = (outcome[0].split(":")[0], done[0].moment - asked)
        world.clock.now = midnight + dt.timedelta(days=1, hours=9)  # a new day, and project
        with world.platform.access.transaction() as db:
            row = db.get(Project, project)
            assert row is not None
            row.expires_on = ends + dt.timedelta(days=2)
        _spend_the_day(world, who, project, maybe_spent=True)
    assert seen[0.0] == seen[3.0], (
        f"asked 1.5 s before the project's end, a quick run was {seen[0.0]} and one "
        f"recorded after it {seen[3.0]}")


GWAS = {"kind": "gwas", "definition": "base", "traits": ["sbp"], "covariates": ["sex"],
        "principal_components": 0}


def _genotyped(world: AttackWorld, root: Path, who_project: tuple[Principal, str]) -> None:
    """The world's genotypes (32 variants, ingested once per module) and the project's
    grant of them."""
    platform = world.platform
    if platform.genotypes.current() is None:
        eid = platform.store.load().participants["eid"].to_numpy()
        rng = np.random.default_rng(3)
        g = rng.binomial(2, 0.3, size=(eid.size, 32)).astype(np.float32)
        with open_genotypes(write_bed(root / "array", g, [str(e) for e in eid])) as source:
            platform.genotypes.ingest(source)
    projects.set_genotypes(platform.access, world.staff("custodian-admin"), who_project[1],
                           True)


SHARED = {  # what a GWAS waits for that other requests, any project's, hold
    "turn": lambda world: world.platform.outputs._genetics_thread_lock,  # the membership budget
    "definitions": lambda world: world.platform.enclave._definitions._lock,  # their rows' cache
    "views": views_lock,
}


@pytest.mark.parametrize("shared", list(SHARED))
def test_past_the_ration_a_gwas_waits_for_what_others_hold_only_within_its_deadline(
        world: AttackWorld, settings: Callable[..., None], scheduled: list[float],
        tmp_path: Path, shared: str) -> None:
    """Guarantee: past the ration, a GWAS is answered at the one withheld moment whatever
    other requests hold what it waits for: the membership budget, one GWAS's at a time, and
    the caches of definitions' rows and of views, one build at a time (held here by the
    test, as another project's GWAS or build holds them while it runs). The red team's: the
    turn was waited for outside the run's deadline, so a researcher past the ration was
    answered at the step another project's GWAS, within its own floor, let the budget go:
    that GWAS's running time, which its floor hides from its own requester, read right 17
    of 18 times, nothing spent; the definition's rows were read outside it too. Here the
    withheld moment is 2 s and each is held 2.5 s (the truth: how long the request took) or
    not at all."""
    settings(answers_project_day=1, analysis_seconds=1 / 64, withheld_seconds=1.5)
    who, project = attacker(world)
    _genotyped(world, tmp_path, (who, project))
    _spend_the_day(world, who, project)
    lock = SHARED[shared](world)
    # once first: what the first GWAS of a process loads (its modules, the definition's
    # rows) is not what is measured
    world.platform.outputs.analyse(who, project, GWAS, Format("json"))
    shown: dict[float, tuple[bool, dt.timedelta]] = {}
    took: dict[float, float] = {}
    with time_limit(world, 1.0):
        for held in (0.0, 2.5):
            done: list[Answered] = []
            views: list[OutputView] = []
            asked, started = world.clock(), time.monotonic()
            _asked_while(lock, bool(held), lambda done=done, views=views: views.append(
                world.platform.outputs.analyse(who, project, GWAS, Format("json"),
                                               answered=done.append)),
                         lambda held=held: time.sleep(held))
            took[held] = time.monotonic() - started
            assert len(done) == 1 and done[0].moment is not None and len(views) == 1
            shown[held] = (views[0].check_report.withheld, done[0].moment - asked)
    assert took[2.5] > 2.5  # the truth: held past the withheld moment
    assert shown[0.0] == shown[2.5] and shown[0.0][0], (
        f"past the ration, a GWAS that had the {shared} at once was {shown[0.0]} (withheld, "
        f"answered after) and one that waited for it {shown[2.5]}")


COPIES = 7  # the separating definition copies every row 2^7 times: 384,000 rows


def _separating(targets: list[runner.Target]) -> str:
    """One definition with an outcome per target (``y0``, ``y1``, …): in the group ``xa``
    (the old, and the targets) every outcome is 0 but the target's own, which is 1 if their
    BMI is over 30. A lean target's outcome separates on ``xa`` (a logistic fit runs all its
    iterations); an obese target's does not (it converges in a few): the red team's."""
    anyone = " OR ".join(t.condition for t in targets)
    outcomes = ", ".join(
        f"CASE WHEN {t.condition} THEN CASE WHEN bmi > 30 THEN 1 ELSE 0 END "
        f"WHEN birth_year < 1945 OR {anyone} THEN 0 ELSE sbp % 2 END AS y{i}"
        for i, t in enumerate(targets))
    rows = (f"SELECT pid, CASE WHEN birth_year < 1945 OR {anyone} THEN 1 ELSE 0 END AS xa, "
            f"sbp, birth_year, sex, {outcomes} FROM base WHERE sbp IS NOT NULL AND "
            "birth_year IS NOT NULL AND sex IS NOT NULL")
    return (f"WITH d0 AS ({rows}), "
            + ", ".join(f"d{j} AS (SELECT * FROM d{j - 1} UNION ALL SELECT * FROM d{j - 1})"
                        for j in range(1, COPIES + 1))
            + f" SELECT * FROM d{COPIES}")


def _fit_seconds(frame: pl.DataFrame, outcome: str) -> float:
    """Custodian-side, the truth: how long the fit takes on the definition's rows, alone."""
    import statsmodels.api as sm

    x = sm.add_constant(frame.select("xa", "sbp", "birth_year", "sex").to_numpy()
                        .astype(float))
    started = time.monotonic()
    # a separated fit may fail outright: its time is what counts
    with warnings.catch_warnings(), contextlib.suppress(Exception):
        warnings.simplefilter("ignore")
        sm.Logit(frame[outcome].to_numpy().astype(float), x).fit(disp=0, maxiter=200)
    return time.monotonic() - started


def test_past_the_ration_a_model_s_fit_is_stopped_at_its_deadline(
        world: AttackWorld, cast: runner.Cast, settings: Callable[..., None],
        scheduled: list[float]) -> None:
    """Guarantee: past the ration every analysis is answered at one moment, however long
    its fit (which the query time limit does not bound) would take. The red team's attack:
    a logistic fit whose outcome separates only when the target is lean runs all its
    iterations, answered at 64 s against 16 s past the ration, 3 of 3 targets, nothing
    spent. Here (floor 0.5 s, limit 0.6 s: withheld outputs answered at 1 s, a run's
    deadline 0.8 s) an obese and a lean target's fits are answered at the same moment, the
    slow one refused at its deadline (custodian-side: its report says so)."""
    targets = [cast.obese[0], cast.lean[0]]
    who, project = attacker(world)
    world.platform.outputs.define(who, project, "big", _separating(targets))
    with world.platform.access.transaction() as db:
        row = db.get(Project, project)
        assert row is not None
    frame = world.platform.enclave.definition(row, "big")[1]
    truth = [_fit_seconds(frame, f"y{i}") for i in range(len(targets))]
    settings(answers_project_day=1, analysis_seconds=0.25, withheld_seconds=0.0)
    with time_limit(world, 0.6):
        _spend_the_day(world, who, project)
        views, seen = _past_the_ration(world, who, project, [
            {"kind": "logistic", "definition": "big", "outcome": f"y{i}",
             "covariates": ["xa", "sbp", "birth_year", "sex"]} for i in range(len(targets))])
    assert truth[1] > 0.8, truth  # the truth: the lean target's fit runs past the deadline
    _answered_alike(views, seen, f"fits of {truth[0]:.2f} and {truth[1]:.2f} s",
                    "the analysis took longer than 0.8 s")


def _copies_numbered(doublings: int) -> str:
    """Every participant 2^doublings times, each copy numbered ``c``: grouped by ``c`` and
    ``sex``, a table of 2^(doublings+1) large groups whose check compares every pair."""
    cols = "pid, sex, bmi"
    made = [f"d0 AS (SELECT {cols}, 0 AS c FROM base)"] + [
        f"d{j} AS (SELECT {cols}, 2 * c AS c FROM d{j - 1} UNION ALL "
        f"SELECT {cols}, 2 * c + 1 AS c FROM d{j - 1})" for j in range(1, doublings + 1)]
    return "WITH " + ", ".join(made) + f" SELECT * FROM d{doublings}"


MANY_GROUPS = "SELECT c, sex, count(*) AS n, avg(bmi) AS m FROM dup GROUP BY c, sex"


def test_past_the_ration_the_check_is_within_the_deadline_too(
        world: AttackWorld, settings: Callable[..., None], scheduled: list[float]) -> None:
    """Guarantee: past the ration, the work after the run (the check, the rendering, the
    scan) is bounded with it. The red team's attack on the run's deadline alone: a table of
    2,048 groups, whose check (every pair of groups compared) ran past the withheld moment
    only while an abandoned fit (a lean target's) still ran beside it: answered at 32 s
    against 16 s, 3 of 3 pairs, nothing spent. Here a table whose check takes longer than
    the deadline (the truth: timed without one) and a quick table are answered at the same
    moment, the slow one refused at its deadline."""
    who, project = attacker(world)
    world.platform.outputs.define(who, project, "dup", _copies_numbered(7))
    started = time.monotonic()  # the truth: the whole analysis, no schedule, no deadline
    world.platform.outputs.analyse(who, project, {"kind": "aggregate_sql",
                                                  "sql": MANY_GROUPS}, Format("json"))
    truth = time.monotonic() - started
    settings(answers_project_day=1, analysis_seconds=1.0, withheld_seconds=0.0)
    # floor 0.25 s; the withheld moment the step past 1.25 × the limit; the deadline 0.8 ×
    limit = 0.4 * truth
    with time_limit(world, limit):
        _spend_the_day(world, who, project, maybe_spent=True)
        views, seen = _past_the_ration(world, who, project, [
            {"kind": "aggregate_sql", "sql": sql} for sql in (HONEST, MANY_GROUPS)])
    deadline = timing.run_deadline(timing.withheld_moment(seen[0].schedule, 0.0, limit))
    assert truth > deadline, (truth, deadline)  # the truth: the check runs past it
    _answered_alike(views, seen, f"a quick table and one of {truth:.2f} s",
                    "the analysis took longer than")


def test_the_custodian_s_clocks_are_not_the_researcher_s_to_read(world: AttackWorld) -> None:
    """The real moments are kept custodian-side only: the audit log (each output's
    ``output.checked`` row is written at its recording) and the watch's meter (durations,
    alerts). A researcher may read neither, in any project or none."""
    who, project = world.researcher()
    ctx = world.platform.access
    for action in (Action.AUDIT_READ, Action.WATCH_READ):
        for where in (None, project):
            with ctx.transaction() as db, pytest.raises(Refused):
                authorize(ctx, db, who, action, where)
    auditor = world.staff("auditor")  # and the refusal is the role's, not the call's
    with ctx.transaction() as db:
        authorize(ctx, db, auditor, Action.AUDIT_READ, None)
        authorize(ctx, db, auditor, Action.WATCH_READ, None)
