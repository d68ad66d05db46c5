"""Red team: the metadata around an answer, on the newest surfaces.

What a researcher reads is checked; what leaks is what surrounds it: whether something
exists, its status, its reasons, its order and size, and its moments. The attacker here is a
researcher with two clients who makes a request whose work, success or failure hangs on one
participant's value, and reads everything they may read meanwhile and afterwards without
spending an answer of their ration: polled analysis runs (outputs/runs.py), definitions
sealed under a staged name until their answer's moment (definitions.Staged), dummy data, DP
spends (privacy/service.py), and the ration itself.

Each test makes the truth custodian-side (the enclave's lock held by the test, a platform
error raised only when the target's value is over the line, as an engine's or a library's
could be) and reads the ground truth from the database. Leaks are ``xfail(strict=True)``
naming the fix (an unexpected pass says it is fixed); surfaces that hold are plain tests,
each stating the guarantee it would fail without.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.world import AttackWorld, Clock
from strongroom.enclave import service
from strongroom.outputs import answers
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.outputs.runs import MAX_IN_FLIGHT, RunStatus
from strongroom.privacy.dp_runtime import EngineError
from tests.redteam_world import (
    HONEST,
    SUBSET,
    attacker,
    dp_target,
    module_cast,
    module_world,
    outcome,
    scheduled_fixture,
    settings_fixture,
    until,
    views_lock,
)

pytestmark = pytest.mark.slow

world = module_world()
cast = module_cast()
settings = settings_fixture()
scheduled = scheduled_fixture()



@pytest.fixture()
def real_time(world: AttackWorld) -> Iterator[None]:
    """The world's clock moves with the real one for a test (timestamps then tell real
    moments, as on a server); after it, it stands where the test left it."""
    origin, call = time.monotonic(), Clock.__call__

    def now(self: Clock) -> dt.datetime:
        return self.now + dt.timedelta(seconds=time.monotonic() - origin)
    Clock.__call__ = now  # type: ignore[method-assign]
    try:
        yield
    finally:
        Clock.__call__ = call  # type: ignore[method-assign]
        world.clock.advance(time.monotonic() - origin)


def _spent(world: AttackWorld, project: str, what: str | None = None) -> int:
    """Custodian-side: the project's answers kept spent (of ``what``, if given)."""
    with world.platform.access.transaction() as db:
        query = select(func.count()).select_from(AnswerRow).where(
            AnswerRow.project_id == project, AnswerRow.spent.is_(True))
        if what is not None:
            query = query.where(AnswerRow.what == what)
        return int(db.scalar(query) or 0)


def _recorded(world: AttackWorld, project: str) -> int:
    """Custodian-side: the project's outputs recorded, shown or not yet."""
    with world.platform.access.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(OutputRow).where(
            OutputRow.project_id == project)) or 0)


# -- analysis runs: submitted and polled -----------------------------------------------------


def test_a_polled_run_s_ended_at_is_its_answer_s_moment_whatever_it_took(
        world: AttackWorld, settings: Callable[..., None], real_time: None) -> None:
    """*A run's ``ended_at`` (shown by every poll, the console's run page and ``enclave run``)
    is written at its answer's moment, the step of its schedule, never when its computation
    ended.* Floor 3 s, really waited, on a clock that moves with the real one; one run fast,
    one held 0.6 s by the test (the truth), both within the floor: each shows
    ``ended_at − submitted_at`` at the floor, the two within the thread's scheduling of
    each other (written at the computation's end they would be 0.0 and 0.6 s). (At a 1 s
    floor a loaded CI machine took every trial's runs past it: no evidence either way.)"""
    settings(analysis_seconds=12.0, analysis_ladder=2.0)  # a quarter at 3,000: 3 s
    runs, lock = world.platform.runs, views_lock(world)
    for _trial in range(3):  # a loaded machine may take a run past its floor: try again
        shown: dict[float, float] = {}
        for held in (0.0, 0.6):
            who, project = attacker(world)
            owned = bool(held) and lock.acquire()
            try:
                row = runs.submit(who, project, {"kind": "aggregate_sql", "sql": HONEST})
                if owned:
                    time.sleep(held)
            finally:
                if owned:
                    lock.release()
            assert runs.wait(row.id, 30)
            polled = runs.get(who, row.id).run
            assert polled.status == RunStatus.DONE.value and polled.ended_at is not None
            if _spent(world, project, "time"):  # the truth: past its floor (the load's)
                break
            shown[held] = (polled.ended_at - polled.submitted_at).total_seconds()
        if len(shown) == 2:
            break
    assert len(shown) == 2, "every trial's run passed its floor: the machine is too loaded"
    assert all(seconds >= 3.0 for seconds in shown.values()), shown
    assert abs(shown[0.6] - shown[0.0]) < 0.25, shown


def test_the_in_flight_limit_answers_alike_while_earlier_runs_wait_or_work(
        world: AttackWorld, scheduled: list[float]) -> None:
    """*Whether a person's next run is refused for having four in flight, and the words of
    the refusal, are a function of their earlier runs' schedules only, never of whether
    those runs' computations have ended.* Four runs recorded at once and waiting for their
    answer's moment (the truth: their outputs are in the database) against four held before
    they record anything: a fifth submission is refused alike, and each of the four polls
    ``running`` alike. (Counted by the rows' ``ended_at``, or by outputs recorded, the
    fifth would be let through after fast runs only: a bit per submission, for nothing.)"""
    runs, outputs, lock = world.platform.runs, world.platform.outputs, views_lock(world)
    seen: dict[bool, tuple[str, list[str]]] = {}
    for slow in (False, True):
        who, project = attacker(world)
        waiting, moment = threading.Semaphore(0), threading.Event()

        def wait(seconds: float, waiting: threading.Semaphore = waiting,
                 moment: threading.Event = moment) -> None:
            waiting.release()
            moment.wait(30)
        outputs.sleep = wait
        owned = slow and lock.acquire()
        try:
            rows = [runs.submit(who, project, {"kind": "aggregate_sql", "sql": HONEST})
                    for _ in range(MAX_IN_FLIGHT)]
            if slow:
                assert _recorded(world, project) == 0  # the truth: none has run
            else:
                assert all(waiting.acquire(timeout=30) for _ in rows)
                assert _recorded(world, project) == MAX_IN_FLIGHT  # the truth: all ran
            fifth = outcome(lambda who=who, project=project: runs.submit(
                who, project, {"kind": "aggregate_sql", "sql": HONEST}))
            seen[slow] = (fifth, [runs.get(who, r.id).run.status for r in rows])
        finally:
            if owned:
                lock.release()
            moment.set()
        assert all(runs.wait(r.id, 30) for r in rows)
        outputs.sleep = scheduled.append
    assert seen[True] == seen[False], seen
    assert seen[False][0].startswith("conflict: you have 4 analyses running"), seen


def _failing_when_over(monkeypatch: pytest.MonkeyPatch, line: float) -> None:
    """The truth made by the test: aggregate SQL meets an error of the platform's (not a
    refusal: a library's, an engine's, the host's memory) only when the target's row is
    read, that is only when the query's filter on their value let it through: as a bug met
    only on some values would. The query below filters on ``bmi > line``."""
    real = service.aggregate_sql

    def aggregate(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if any(cell.contributors.size for cell in result.cells):
            raise MemoryError("the platform failed on the real data")
        return result
    monkeypatch.setattr(service, "aggregate_sql", aggregate)


def test_an_analysis_that_fails_once_it_has_read_the_data_spends_an_answer(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """*Whether an analysis fails once it has read the data is an answer: either it looks
    the same whatever the data, or it spends one.* Runs over one obese and one lean target,
    asking ``… WHERE <target> AND bmi > 30``; the platform fails only on the obese target's
    row (the truth). Each run is polled to its end; the answer the run reserved for its time
    must stay spent when it failed."""
    _failing_when_over(monkeypatch, 30)
    runs = world.platform.runs
    seen: dict[bool, tuple[str, int]] = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attacker(world)
        sql = (f"SELECT sex, count(*) AS n FROM base WHERE {target.condition} AND bmi > 30 "
               "GROUP BY sex")
        row = runs.submit(who, project, {"kind": "aggregate_sql", "sql": sql})
        assert runs.wait(row.id, 30)
        polled = runs.get(who, row.id).run
        with world.platform.access.transaction() as db:  # custodian-side: answers used
            used = answers.used(db, who.person_id, world.clock(),
                                world.platform.rations.of(db, who.person_id))
        seen[target.obese] = (polled.status, used)
    # what the attacker reads: both done (before: failed for the obese target, 500 to the
    # synchronous call), the failure a blocked output, rationed: an answer spent
    assert seen[True][0] == seen[False][0] == RunStatus.DONE.value, seen
    assert seen[True][1] >= 1, f"the failure spent nothing: {seen}"


# -- definitions: sealed under a staged name until their answer's moment ---------------------


def _defining(world: AttackWorld, who: Principal, project: str, name: str, sql: str,
              held: float, probe: Callable[[], object], every: float = 0.02
              ) -> tuple[list[tuple[float, object]], float]:
    """Define ``name`` in a thread (its build held ``held`` s by the test: the truth) and
    ``probe`` every ``every`` s until it is answered: what each probe saw and the moment
    (after the request) it had seen it all, and when the answer came."""
    lock, answered, seen = views_lock(world), threading.Event(), []
    asked = time.monotonic()

    def define() -> None:
        try:
            world.platform.outputs.define(who, project, name, sql)
        finally:
            answered.set()
    owned = bool(held) and lock.acquire()
    try:
        thread = threading.Thread(target=define)
        thread.start()
        while not answered.is_set():
            if owned and time.monotonic() - asked >= held:
                lock.release()
                owned = False
            found = probe()
            seen.append((time.monotonic() - asked, found))  # when it had all it saw
            time.sleep(every)
    finally:
        if owned:
            lock.release()
    took = time.monotonic() - asked
    thread.join(30)
    return seen, took


def test_a_redefinition_shows_the_old_one_until_its_answer_s_moment(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """*Redefining a name changes nothing any reader sees (the list, its SQL and moment,
    the dummy data) before the new definition's answer's moment, whatever its build took.*
    ``x`` exists; it is defined again, once fast and once held 0.5 s (the truth), under a
    3 s floor: a second client listing the project and downloading its dummy data every
    20 ms sees the old ``x`` and the old zip, unchanged, until the floor, then the new. (At a
    0.9 s floor a loaded CI machine once gave no probe back before it, and at 1.5 s one failed
    under a load of nine: no evidence either way. Even at 3 s a machine at load ten once gave
    none, so a trial that saw nothing before the floor is run again, at most twice.)"""
    settings(definition_seconds=3.0)
    enclave = world.platform.enclave
    seen: dict[float, set[object]] = {}
    for held in (0.0, 0.5, 0.0, 0.5, 0.0, 0.5):
        if seen.get(held):  # this trial has seen what it came for
            continue
        who, project = attacker(world)
        world.platform.outputs.define(who, project, "x", SUBSET)
        before = service.dummy_data(enclave, who, project, n=50)
        old = {d.name: (d.sql, d.created_at) for d in service.list_definitions(
            enclave, who, project)}["x"]

        def probe(who: Principal = who, project: str = project) -> object:
            listed = {d.name: (d.sql, d.created_at)
                      for d in service.list_definitions(enclave, who, project)}
            return listed.get("x"), service.dummy_data(enclave, who, project, n=50)
        probes, took = _defining(world, who, project, "x", "SELECT pid, bmi FROM base",
                                 held, probe)
        assert took >= 3.0
        seen[held] = {(x == old, zipped == before) for at, (x, zipped) in probes
                      if at < 2.9}
        listed = {d.name: d.sql for d in service.list_definitions(enclave, who, project)}
        assert listed["x"] == "SELECT pid, bmi FROM base"  # then the new one
    assert seen[0.0] == seen[0.5] == {(True, True)}, seen


LATE = object()  # a probe not made: past the moments the test reads


def test_a_staged_name_cannot_be_dropped_or_raced_into_telling_its_build(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """*Dropping a name while it is staged, and defining it again from a second client, are
    answered from the request moments alone.* ``y`` is defined (fast, or held 0.4 s: the
    truth) under a 2 s floor; meanwhile the second client's drop of ``y`` is refused as
    for a name never defined, and a second ``y`` asked 0.1 s later is the one that stands
    once both are answered (the later answer's moment publishes last). (At a 0.6 s floor a
    loaded machine's build passed it: then its answer came last, at the ladder's next step.
    At 2 s a load of nine did so once: a trial whose build passed its floor is made again.)"""
    settings(definition_seconds=2.0)
    outputs, enclave = world.platform.outputs, world.platform.enclave
    seen: dict[float, tuple[set[str], str]] = {}
    trials, again_left = [0.0, 0.4], 2
    while trials:
        held = trials.pop(0)
        who, project = attacker(world)
        second: list[str] = []
        started = time.monotonic()

        def probe(who: Principal = who, project: str = project,
                  started: float = started) -> object:
            # only before the second y's answer (2.1 s): a drop after it, on a machine
            # slow to return the first, dropped the y that was to stand
            if time.monotonic() - started > 1.8:
                return LATE
            return outcome(lambda: service.drop_definition(enclave, who, project, "y"))

        def again(who: Principal = who, project: str = project,
                  second: list[str] = second) -> None:
            time.sleep(0.1)
            second.append(outcome(lambda: outputs.define(who, project, "y",
                                                          "SELECT pid, smoking FROM base")))
        racer = threading.Thread(target=again)
        racer.start()
        probes, took = _defining(world, who, project, "y", SUBSET, held, probe, every=0.05)
        racer.join(30)
        assert second == ["answered"]
        if took > 3.0 and again_left:  # the load took its build past its floor (answered
            trials.append(held)  # at the next step, as it should be): made again
            again_left -= 1
            continue
        stands = {d.name: d.sql for d in service.list_definitions(enclave, who, project)}
        drops = {str(told) for _, told in probes if told is not LATE}
        seen[held] = (drops, stands["y"])
    assert seen[0.0] == seen[0.4], seen
    assert seen[0.0][1] == "SELECT pid, smoking FROM base"
    assert all(d.startswith("not-found: the project has no definition named 'y'")
               for d in seen[0.0][0]), seen


def _raising_when_over(world: AttackWorld, monkeypatch: pytest.MonkeyPatch,
                       line: float) -> None:
    """The truth made by the test: the engine meets an error of the platform's (not a
    DataRefusal) only when a definition's rows hold a BMI over ``line``."""
    engine = world.platform.enclave.engine
    real = engine.select

    def select_(*args: Any, **kwargs: Any) -> Any:
        frame = real(*args, **kwargs)
        if "bmi" in frame.columns and frame.height and (frame["bmi"].max() or 0) > line:
            raise MemoryError("the platform failed on the real data")
        return frame
    monkeypatch.setattr(engine, "select", select_)


def test_a_definition_that_fails_once_it_has_read_the_data_spends_an_answer(
        world: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """*Whether a definition fails once it has read the data is an answer, kept spent.*
    One obese and one lean target, each alone in a definition of their BMI; the engine
    fails only when it reads a BMI over 30 (the truth)."""
    attackers = {target.obese: attacker(world) for target in (cast.obese[0], cast.lean[0])}
    _raising_when_over(world, monkeypatch, 30)
    seen: dict[bool, tuple[str, int]] = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attackers[target.obese]
        told = outcome(lambda who=who, project=project, target=target:
                        world.platform.outputs.define(
                            who, project, "one", f"SELECT pid, bmi FROM base WHERE "
                            f"{target.condition}"))
        seen[target.obese] = (told, _spent(world, project, "definition"))
    assert seen[True][0] != seen[False][0]  # what the attacker reads differs …
    assert seen[True][1] >= 1, f"… and the failure spent nothing: {seen}"


def test_a_definition_s_columns_and_verdict_follow_its_text_not_the_target(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A definition's answer (its columns and their types, its size verdict) is the same
    for a population whose one member's value is over the line and one whose is not.* A
    conditional column over many participants that is set only on the target's row when
    their BMI is over 30 (NULL everywhere else) types alike either way."""
    seen = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attacker(world)
        made = world.platform.outputs.define(
            who, project, "flag", "SELECT pid, CASE WHEN " + target.condition +
            " AND bmi > 30 THEN 1 END AS f, CASE WHEN " + target.condition +
            " AND bmi > 30 THEN 'x' END AS t FROM base WHERE birth_year BETWEEN 1945 AND 1965")
        seen[target.obese] = made.public()["columns"], made.size_ok
    assert seen[True] == seen[False], seen


# -- DP queries: the failure path ------------------------------------------------------------


class _FailingEngine:
    """The DP engine pool, its release failing (as the engine's memory or time wall would)
    only when it is given a row: the query below keeps the target's row only when their BMI
    is over the line. The test's truth."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def call(self, header: dict[str, Any], rows: Any, owner: str = "") -> Any:
        if header.get("op") == "release" and rows.height:
            raise EngineError("memory", "")
        return self.pool.call(header, rows, owner)

    def warm(self, owner: str | None = None) -> None:
        self.pool.warm(owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


def test_a_dp_query_that_fails_after_its_charge_spends_an_answer(
        world: AttackWorld, cast: runner.Cast, settings: Callable[..., None]) -> None:
    """*Whether a DP query fails once it has read the data is rationed, not bought with an
    ε the researcher picks.* A count of the target alone if their BMI is over 30, ε =
    0.000001; the engine fails only when it is given a row (the truth)."""
    privacy = world.platform.privacy
    engine = privacy._engine_of
    seen: dict[bool, tuple[str, str, int]] = {}
    try:
        for target in (cast.obese[0], cast.lean[0]):
            who, project, where = dp_target(world, target)
            pool = engine()
            privacy._engine_of = lambda pool=pool: _FailingEngine(pool)
            told = outcome(lambda who=who, project=project, where=where: privacy.query(
                who, project, {"kind": "count", "epsilon": "0.000001",
                               "where": where}))
            spend = privacy.budget_of(who, project).spends[0]
            seen[target.obese] = (told.split(":")[0], spend.status, _spent(world, project))
    finally:
        privacy._engine_of = engine
    assert seen[True][:2] == ("unavailable", "failed") and seen[False][:2] == (
        "answered", "answered"), seen
    assert seen[True][2] >= 1, f"the failure cost ε = 0.000001 and no answer: {seen}"


def test_a_dp_spend_reads_charged_until_its_answer_s_moment(
        world: AttackWorld, cast: runner.Cast, settings: Callable[..., None]) -> None:
    """*While a DP query waits for its step, a second client reading the project's spends
    sees it ``charged``, with no end, whether its release is done or not; and its failure,
    like its answer, shows at its step.* Floor 0.5 s, really waited; the release fails at
    once for the obese target and answers at once for the lean one (the truth): the spend
    polled at 0.25 s reads ``charged`` with no ``finished_at`` for both."""
    settings(analysis_seconds=2.0, analysis_ladder=2.0)  # a quarter at 3,000: 0.5 s
    privacy = world.platform.privacy
    engine = privacy._engine_of
    seen: dict[bool, tuple[str, object]] = {}
    try:
        for target in (cast.obese[0], cast.lean[0]):
            who, project, where = dp_target(world, target)
            pool = engine()
            privacy._engine_of = lambda pool=pool: _FailingEngine(pool)
            thread = threading.Thread(target=lambda who=who, project=project, where=where:
                                      outcome(lambda: privacy.query(who, project, {
                                          "kind": "count", "epsilon": "0.01",
                                          "where": where})))
            thread.start()
            assert until(lambda who=who, project=project: bool(
                privacy.budget_of(who, project).spends))
            time.sleep(0.25)
            spend = privacy.budget_of(who, project).spends[0]
            seen[target.obese] = (spend.status, spend.finished_at)
            thread.join(30)
    finally:
        privacy._engine_of = engine
    assert seen[True] == seen[False] == ("charged", None), seen


def test_no_definition_probe_is_refused_by_an_earlier_definition_s_reservation(
        world: AttackWorld, settings: Callable[..., None]) -> None:
    """*A definition's reserved answer comes back at its answer's moment: a second client's
    definition asked meanwhile, under a budget of one answer a project-day, is refused alike
    whatever the first's build took.* Floor 0.6 s; the first build fast or held 0.3 s (the
    truth); the probe asked at 0.15 s."""
    settings(definition_seconds=0.6, answers_project_day=1)
    outputs = world.platform.outputs
    seen: dict[float, str] = {}
    for held in (0.0, 0.3):
        who, project = attacker(world)
        first = threading.Event()

        def probe(who: Principal = who, project: str = project,
                  first: threading.Event = first) -> object:
            if first.is_set():
                return None
            first.set()
            time.sleep(0.15)
            return outcome(lambda: outputs.define(who, project, "probe", SUBSET))
        probes, _ = _defining(world, who, project, "d", SUBSET, held, probe)
        seen[held] = next(str(p) for _, p in probes if p is not None).replace(project, "P")
    assert seen[0.0] == seen[0.3], seen
    assert seen[0.0].startswith("conflict:"), seen


# -- dummy data: built in the engine that real-data requests share ---------------------------


class _Held:
    """Tables of about 1 MB each in the one DuckDB database that queries with these limits
    share (enclave/engine.py), as a concurrent request's copied tables fill it: the
    attacker's calibration, made with honest requests of their own (here, by the test)."""

    def __init__(self, limits: Any) -> None:
        from strongroom.enclave import engine

        self.cursor, self.tables = engine._database(limits).cursor(), []

    def fill(self) -> None:
        while True:
            name = f"held_{len(self.tables)}"
            try:
                self.cursor.execute(f"CREATE TEMP TABLE {name} AS SELECT range AS i, "
                                    "lpad('', 1000, 'x') || range::VARCHAR AS s "
                                    "FROM range(1000)")
            except Exception:  # the database's memory limit: full
                return
            self.tables.append(name)

    def free(self, tables: int) -> None:
        for _ in range(min(tables, len(self.tables))):
            self.cursor.execute(f"DROP TABLE {self.tables.pop()}")

    def close(self) -> None:
        self.free(len(self.tables))
        self.cursor.close()


def test_dummy_data_does_not_tell_what_a_concurrent_definition_holds(
        world: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """*Dummy data (the zip's files) is a function of the project's schema and its
    definitions' text only, whatever else runs.* ``big`` is the target's row with 60 texts
    of 10,000 characters if their BMI is over 30 (empty otherwise; 30,000 steps a text,
    within the per-row bound), ``copies`` 50 copies of it, ``pad2`` a definition whose dummy
    build sorts on 30 KB a row. The attacker calibrates the shared engine's headroom with
    honest load (the test holds it) to 10 to 20 MB more than the dummy build needs, then
    defines ``probe`` (reading ``copies``: it copies 30 MB into the engine only for an obese
    target; the truth, read custodian-side from DuckDB) and downloads dummy data while it
    runs: the zip must hold the same files for both targets. Before, dummy data was built in
    the real data's shared DuckDB database (one memory limit, one pool of threads) and left
    out silently a definition that failed there: ``pad2`` was missing for the obese target
    alone, a bit per definition within its floor, spending nothing. It is built in a
    database of its own now (``Limits.pool``, ``dummy_inputs``)."""
    import io
    import zipfile

    from strongroom.enclave import engine, engines

    enclave, outputs = world.platform.enclave, world.platform.outputs
    columns = ", ".join(f"s{i}" for i in range(60))

    def memory() -> float:  # custodian-side: what the shared database holds, in MB
        cursor = engine._database(enclave.limits).cursor()
        try:
            held = cursor.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
            return float(held.fetchone()[0]) / 2**20  # type: ignore[index]
        finally:
            cursor.close()
    def armed(target: runner.Target) -> tuple[Principal, str]:
        who, project = attacker(world)
        texts = ", ".join(f"CASE WHEN {target.condition} AND bmi > 30 THEN lpad('', 10000, "
                          f"'x') ELSE '' END AS s{i}" for i in range(60))
        outputs.define(who, project, "big", f"SELECT pid, {texts} FROM base WHERE "
                                            f"{target.condition}")
        outputs.define(who, project, "copies", " UNION ALL ".join(
            [f"SELECT pid, {columns} FROM big"] * 50))
        outputs.define(who, project, "pad2", "SELECT pid, sex FROM base ORDER BY " + ", ".join(
            f"lpad(CAST(bmi AS VARCHAR), 10000, '{c}')" for c in "xyz"))
        return who, project

    def files(who: Principal, project: str) -> list[str]:
        zipped = service.dummy_data(enclave, who, project)
        return sorted(name for name in zipfile.ZipFile(io.BytesIO(zipped)).namelist()
                      if name.endswith(".parquet"))
    attackers = {target.obese: armed(target) for target in (cast.obese[0], cast.lean[0])}
    whole = files(*attackers[False])
    assert "pad2.parquet" in whole
    # the calibration (honest load, in 10 MB steps): the least headroom the zip is whole at
    held, freed = _Held(enclave.limits), 30
    try:
        held.fill()
        held.free(freed)
        while files(*attackers[False]) != whole:
            held.free(10)
            freed += 10
    finally:
        held.close()
    seen: dict[bool, tuple[list[str], float]] = {}
    real = engines.run
    for obese, (who, project) in attackers.items():
        held = _Held(enclave.limits)
        try:
            held.fill()
            # 10 to 20 MB more than the download needs, and room for the probe itself
            held.free(max(freed + 10, 50))
            during: list[tuple[list[str], float]] = []

            def run(con: Any, sql: str, limits: Any, most: int | None = None,
                    during: list[tuple[list[str], float]] = during,
                    who: Principal = who, project: str = project) -> Any:
                if not during:  # the probe's query, its tables copied: the download now
                    during.append(([], memory()))  # (the download's own queries pass)
                    during[0] = (files(who, project), during[0][1])
                return real(con, sql, limits, most)
            monkeypatch.setattr(engines, "run", run)
            try:
                outputs.define(who, project, "probe", f"SELECT pid, {columns} FROM copies")
            finally:
                monkeypatch.setattr(engines, "run", real)
            assert _spent(world, project, "definition") == 0  # the truth: all free
            seen[obese] = during[0]
        finally:
            held.close()
    # the truth: the probe held some 30 MB more in the shared engine for the obese target
    assert seen[True][1] - seen[False][1] > 20, seen
    assert seen[True][0] == seen[False][0], (
        f"the zip downloaded while the probe ran: {seen[True][0]} (obese) against "
        f"{seen[False][0]} (lean)")
