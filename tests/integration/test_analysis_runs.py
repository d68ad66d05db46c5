"""Analyses submitted and polled (outputs/runs.py), attacked.

Guarantee under test (docs/explanation/design.md): *a run's observable state (status,
progress, the moment it shows done, its size and order) is a function of the request, the
published schedule and the time since submission only, until the scheduled answer moment.*
A run is its submitter's (anyone else is told it does not exist, as for an id that does
not), goes through the same service as the synchronous call (the same answer, the same
refusals with the same status and reasons), a person has at most four in flight, and a run a
restart lost says so.

The world's clock is the test's (tests/access_world.py): progress is read from it, so the
polls of two runs are compared exactly; the schedule's floor is real seconds
(``analysis_seconds``), so a run is really held until its step.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from strongroom.access.context import Principal
from strongroom.access.tokens import new_id
from strongroom.audit.tables import ENTRIES
from strongroom.errors import Conflict, NotFound, ServiceError
from strongroom.outputs.runs import LOST, MAX_IN_FLIGHT, Runs, RunStatus, progress
from strongroom.outputs.timing import Schedule
from strongroom.server.app import create_app
from strongroom.server.security import CSRF_HEADER
from strongroom.server.statuses import HTTP_STATUS
from strongroom.server.web.pages import CSRF_COOKIE, PREFIX
from tests.access_world import INSIDE, PASSWORD, Member, World, build_world

pytestmark = pytest.mark.slow

COUNTS = {"kind": "aggregate_sql",
          "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"}
# 400 participants scale the unit to a quarter: aggregate SQL's floor is a quarter of it
UNIT = 24.0
FLOOR = UNIT / 4  # 6 s: polls within it even on a loaded machine


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(Path(tmp_path_factory.mktemp("runs")), cohort=400)
    yield built
    built.platform.close()


@pytest.fixture()
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    return world.sign_in(world.researcher)


@pytest.fixture()
def floored(world: World) -> Iterator[float]:
    """Aggregate SQL answered no sooner than FLOOR real seconds after submission."""
    ctx = world.ctx
    saved = ctx.settings
    ctx.settings = dataclasses.replace(saved, analysis_seconds=UNIT, analysis_ladder=2.0)
    try:
        yield FLOOR
    finally:
        ctx.settings = saved


def _settle(world: World) -> None:
    """Every run of this process answered (none left in flight for the next test)."""
    runs = world.platform.runs
    for run_id in list(runs._threads):
        assert runs.wait(run_id, 120)


def _events(world: World, kind: str) -> list[dict[str, Any]]:
    with world.ctx.engine.connect() as con:
        return [json.loads(p) for p in con.execute(
            select(ENTRIES.c.payload).where(ENTRIES.c.type == kind)).scalars()]


def _client(world: World, member: Member) -> TestClient:
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000))
    login = client.post("/auth/login", json={"email": member.email, "password": PASSWORD,
                                             "code": world.code(member)})
    assert login.status_code == 200, login.text
    client.headers[CSRF_HEADER] = login.json()["csrf_token"]
    return client


def _poll_until_ended(client: TestClient, where: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        answer = client.get(where)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


# -- the same service, the same answers ----------------------------------------------------


def test_a_submitted_run_is_answered_as_the_synchronous_call_and_audited(
        world: World) -> None:
    assert world.researcher is not None
    with _client(world, world.researcher) as client:
        sync = client.post(f"/projects/{world.project_id}/analyses", json={"analysis": COUNTS})
        assert sync.status_code == 201, sync.text
        submitted = client.post(f"/projects/{world.project_id}/analysis-runs",
                                json={"analysis": COUNTS})
        assert submitted.status_code == 202, submitted.text
        run = submitted.json()
        assert submitted.headers["location"] == run["poll"] == f"/analysis-runs/{run['id']}"
        assert run["status"] == "running" and run["output"] is None
        assert run["elapsed"] >= 0 and run["floor"] == 0.0  # the world's: no floor
        ended = _poll_until_ended(client, run["poll"])
    assert ended["status"] == "done" and ended["problem"] is None
    assert ended["step"] is None and ended["progress"] is None  # done: no progress shown
    # the output as the synchronous call answers it (but for its own id and moment)
    mine, theirs = dict(ended["output"]), dict(sync.json())
    for varying in ("id", "created_at"):
        mine.pop(varying), theirs.pop(varying)
    assert mine == theirs
    # each state change recorded: submitted, then ended with its output
    submitted_events = [e for e in _events(world, "enclave.analysis_run.submitted")
                        if e["subject"] == run["id"]]
    ended_events = [e for e in _events(world, "enclave.analysis_run.ended")
                    if e["subject"] == run["id"]]
    assert len(submitted_events) == 1 and len(ended_events) == 1
    assert ended_events[0]["details"]["status"] == "done"
    assert ended_events[0]["details"]["output"] == ended["output"]["id"]


REFUSED = [
    pytest.param({"kind": "aggregate_sql", "sql": "SELECT p31 FROM participants"},
                 id="no-aggregate"),
    pytest.param({"kind": "crosstab", "definition": "nowhere", "rows": "a", "columns": "b"},
                 id="unknown-definition"),
    pytest.param({"kind": "no-such-kind"}, id="unknown-kind"),
]


@pytest.mark.parametrize("request_", REFUSED)
def test_a_refused_run_says_what_the_synchronous_call_says(
        world: World, request_: dict[str, Any]) -> None:
    assert world.researcher is not None
    with _client(world, world.researcher) as client:
        sync = client.post(f"/projects/{world.project_id}/analyses",
                           json={"analysis": request_})
        assert sync.status_code >= 400, sync.text
        run = client.post(f"/projects/{world.project_id}/analysis-runs",
                          json={"analysis": request_})
        assert run.status_code == 202, run.text
        ended = _poll_until_ended(client, run.json()["poll"])
    assert ended["status"] == "refused" and ended["output"] is None
    assert ended["problem"]["status"] == sync.status_code
    assert ended["problem"]["error"] == sync.json()["error"]
    assert ended["problem"]["reasons"] == sync.json()["reasons"]


def test_a_project_not_theirs_is_refused_at_submission_as_synchronously(
        world: World) -> None:
    assert world.outsider is not None
    with _client(world, world.outsider) as client:
        sync = client.post(f"/projects/{world.project_id}/analyses", json={"analysis": COUNTS})
        run = client.post(f"/projects/{world.project_id}/analysis-runs",
                          json={"analysis": COUNTS})
    assert sync.status_code == run.status_code == 403
    assert sync.json() == run.json()


def test_the_run_s_http_statuses_are_the_server_s() -> None:
    from strongroom.outputs import runs

    assert {k: v for k, v in runs.HTTP_STATUS.items() if k != "internal"} == HTTP_STATUS


# -- existence is an output ----------------------------------------------------------------


def test_another_person_polling_a_run_is_told_it_does_not_exist_as_for_a_missing_id(
        world: World) -> None:
    assert world.researcher is not None and world.outsider is not None
    with _client(world, world.researcher) as owner:
        run = owner.post(f"/projects/{world.project_id}/analysis-runs",
                         json={"analysis": COUNTS}).json()
        _poll_until_ended(owner, run["poll"])
        missing = new_id("run")  # an id of the same form, that no run has
        own_missing = owner.get(f"/analysis-runs/{missing}")
    with _client(world, world.outsider) as other:
        theirs = other.get(run["poll"])
        absent = other.get(f"/analysis-runs/{missing}")

    def seen(answer: Any, run_id: str) -> tuple[int, str, list[tuple[str, str]]]:
        headers = sorted((k, v) for k, v in answer.headers.items()
                         if k.lower() not in ("x-request-id", "date"))
        return answer.status_code, answer.text.replace(run_id, "RUN"), headers

    assert theirs.status_code == 404
    assert seen(theirs, run["id"]) == seen(absent, missing) == seen(own_missing, missing)


def test_a_token_of_another_project_does_not_see_its_person_s_run(
        world: World, researcher: Principal) -> None:
    runs = world.platform.runs
    row = runs.submit(researcher, world.project_id, COUNTS)
    _settle(world)
    elsewhere = dataclasses.replace(researcher, token_project="prj_elsewhere")
    with pytest.raises(NotFound) as caught:
        runs.get(elsewhere, row.id)
    assert caught.value.reasons == [f"there is no analysis run {row.id}"]


# -- time is an output ---------------------------------------------------------------------


def _polls(world: World, who: Principal, run_id: str, times: int) -> list[tuple[Any, ...]]:
    """What a poller sees, once every half second of the world's clock."""
    seen = []
    for _ in range(times):
        world.clock.advance(seconds=0.5)
        view = world.platform.runs.get(who, run_id)
        shown = view.progress
        seen.append((view.run.status, shown.step if shown else None,
                     shown.at if shown else None, shown.share if shown else None,
                     view.run.output_id is None, view.run.reasons))
    return seen


def test_a_fast_and_a_slow_run_look_the_same_until_their_floor(
        world: World, researcher: Principal, floored: float) -> None:
    """The same request twice: once answered as fast as it runs, once held for 1.5 s on the
    lock of the enclave's project views (a run slowed by contention, as by an expensive
    row, after its submission and its limits, which never read a view); both
    are polled alike and are seen alike, and both show done only after the floor."""
    runs = world.platform.runs
    schedule = world.platform.outputs.schedule(COUNTS)
    assert schedule == Schedule(floored, 2.0)

    def one(slow: bool) -> tuple[list[tuple[Any, ...]], float, str]:
        lock = world.platform.enclave._views._lock
        if slow:
            lock.acquire()
        started = time.monotonic()
        try:
            row = runs.submit(researcher, world.project_id, COUNTS)
            if slow:
                time.sleep(1.5)  # the run waits for the lock all this time
        finally:
            if slow:
                lock.release()
        seen = _polls(world, researcher, row.id, 4)  # within the floor, by the real clock
        assert time.monotonic() - started < floored, "the machine was too slow to poll"
        assert runs.wait(row.id, 60)
        took = time.monotonic() - started
        return seen, took, row.id

    fast, fast_took, fast_id = one(slow=False)
    slow, slow_took, slow_id = one(slow=True)
    assert fast == slow
    assert [s[0] for s in fast] == ["running"] * 4
    # progress is the elapsed share of the floor by the world's clock, nothing else
    assert [s[3] for s in fast] == [progress(schedule, 0.5 * i).share for i in range(1, 5)]
    assert [s[3] for s in fast] == [0.08, 0.17, 0.25, 0.33]
    # each shows done once answered, at its floor or after, never before
    assert fast_took >= floored and slow_took >= floored
    for run_id in (fast_id, slow_id):
        view = runs.get(researcher, run_id)
        assert view.run.status == "done" and view.progress is None


def test_progress_is_the_time_s_share_of_the_schedule_s_step() -> None:
    schedule = Schedule(2.0, 2.0)
    assert progress(schedule, 0.0).share == 0.0
    assert (progress(schedule, 1.0).step, progress(schedule, 1.0).share) == (0, 0.5)
    assert (progress(schedule, 3.0).step, progress(schedule, 3.0).at,
            progress(schedule, 3.0).share) == (1, 4.0, 0.5)
    assert progress(Schedule(0.0), 5.0).share is None  # untimed: answered at once


# -- limits and restarts -------------------------------------------------------------------


def test_a_fifth_run_in_flight_is_refused_saying_what_to_do(
        world: World, researcher: Principal, floored: float) -> None:
    runs = world.platform.runs
    _settle(world)
    started = [runs.submit(researcher, world.project_id, COUNTS) for _ in range(MAX_IN_FLIGHT)]
    with pytest.raises(Conflict) as caught:
        runs.submit(researcher, world.project_id, COUNTS)
    assert "wait until one of them is answered" in caught.value.reasons[0]
    assert f"{MAX_IN_FLIGHT} analyses running" in caught.value.reasons[0]
    _settle(world)
    assert all(runs.get(researcher, r.id).run.status == "done" for r in started)
    # answered, they are no longer in flight
    again = runs.submit(researcher, world.project_id, COUNTS)
    _settle(world)
    assert runs.get(researcher, again.id).run.status == "done"


def test_a_run_a_restart_lost_says_so_when_polled(
        world: World, researcher: Principal) -> None:
    """The run is held on the enclave's views lock while a new server starts over the same
    database: its start-up ends the run as lost, and the old thread's answer cannot undo it."""
    runs = world.platform.runs
    lock = world.platform.enclave._views._lock
    with lock:
        row = runs.submit(researcher, world.project_id, COUNTS)
        restarted = Runs(world.platform.outputs, world.platform.watch)
        assert restarted.recover() == [row.id]
        view = restarted.get(researcher, row.id)
    assert runs.wait(row.id, 60)
    for reader in (restarted, runs):
        view = reader.get(researcher, row.id)
        assert view.run.status == RunStatus.LOST.value
        assert view.run.reasons == [LOST] and view.run.error == "unavailable"
    ended = [e for e in _events(world, "enclave.analysis_run.ended") if e["subject"] == row.id]
    assert [e["details"]["status"] for e in ended] == ["lost"]


def test_a_lost_run_answers_with_the_status_a_client_reads_as_unavailable(
        world: World) -> None:
    assert world.researcher is not None
    researcher = world.sign_in(world.researcher)
    runs = world.platform.runs
    with world.platform.enclave._views._lock:
        row = runs.submit(researcher, world.project_id, COUNTS)
        Runs(world.platform.outputs, world.platform.watch).recover()
    assert runs.wait(row.id, 60)
    with _client(world, world.researcher) as client:
        body = client.get(f"/analysis-runs/{row.id}").json()
    assert body["status"] == "lost"
    assert body["problem"] == {"status": 503, "error": "unavailable", "reasons": [LOST],
                               "retry_after": None}


def test_service_errors_are_stored_by_their_kind() -> None:
    assert issubclass(Conflict, ServiceError) and Conflict.status in HTTP_STATUS


# -- the console ---------------------------------------------------------------------------


def _page_client(world: World, member: Member) -> TestClient:
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                        follow_redirects=False)
    answer = client.post(f"{PREFIX}/login", data={"email": member.email, "password": PASSWORD,
                                                  "code": world.code(member)})
    assert answer.status_code == 303, answer.text
    client.headers[CSRF_HEADER] = client.cookies.get(CSRF_COOKIE) or ""
    return client


def _submit_form(client: TestClient, world: World, sql: str) -> str:
    form = {"kind": "aggregate_sql", "sql": sql, "format": "json",
            "csrf_token": client.cookies.get(CSRF_COOKIE) or ""}
    answer = client.post(f"{PREFIX}/workspace/projects/{world.project_id}/analyses", data=form)
    assert answer.status_code == 303, answer.text
    where = answer.headers["location"]
    assert where.startswith(f"{PREFIX}/workspace/analysis-runs/run_")
    return where


def test_the_console_submits_the_form_and_its_page_polls_to_the_output(
        world: World, floored: float) -> None:
    assert world.researcher is not None
    with _page_client(world, world.researcher) as client:
        where = _submit_form(client, world, COUNTS["sql"])
        page = client.get(where)
        assert page.status_code == 200, page.text
        # while it runs (within its 6 s floor): the page polls its fragment with htmx, shows
        # the time's share of the floor, and no inline script or style (a strict CSP)
        assert f'hx-get="{where}/state"' in page.text and 'hx-trigger="every 1s"' in page.text
        assert "<progress" in page.text and 'data-status="running"' in page.text
        assert "<script>" not in page.text and "style=" not in page.text
        fragment = client.get(f"{where}/state", headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert 'data-status="running"' in fragment.text
        _settle(world)
        done = client.get(f"{where}/state", headers={"HX-Request": "true"})
        assert done.status_code == 204
        assert done.headers["HX-Redirect"].startswith(f"{PREFIX}/workspace/outputs/out_")
        # without script, the page itself goes to the output once answered
        assert client.get(where).headers["location"] == done.headers["HX-Redirect"]


def test_the_console_shows_a_refused_run_s_reasons_and_hides_another_s_run(
        world: World) -> None:
    assert world.researcher is not None and world.outsider is not None
    with _page_client(world, world.researcher) as client:
        where = _submit_form(client, world, "SELECT p31 FROM participants")
        _settle(world)
        fragment = client.get(f"{where}/state", headers={"HX-Request": "true"})
        page = client.get(where)
        sync = client.post(f"/projects/{world.project_id}/analyses", json={"analysis": {
            "kind": "aggregate_sql", "sql": "SELECT p31 FROM participants"}})
    assert fragment.status_code == 200  # htmx swaps in a 2xx answer only
    assert 'data-status="refused"' in fragment.text and "hx-trigger" not in fragment.text
    assert sync.status_code == 400 and page.status_code == 200  # the run's page is there
    assert 'data-status="refused"' in page.text
    for reason in sync.json()["reasons"]:
        assert str(escape(reason)) in fragment.text
    run_id = where.rsplit("/", 1)[1]
    with _page_client(world, world.outsider) as other:
        theirs = other.get(where)
        missing = new_id("run")
        absent = other.get(where.replace(run_id, missing))
    assert theirs.status_code == absent.status_code == 404
    assert theirs.text.replace(run_id, "RUN") == absent.text.replace(missing, "RUN")


def test_a_run_is_metered_as_the_request_it_stands_for(
        world: World, researcher: Principal) -> None:
    """One meter row per run, completing the row its limits were reserved on, with what it
    read: the watch's detectors judge a run as they judge the synchronous call."""
    from strongroom.outputs.runs import ROUTE
    from strongroom.watch.models import MeterRow

    def rows() -> list[MeterRow]:
        with world.ctx.transaction() as db:
            found = list(db.scalars(select(MeterRow).where(
                MeterRow.person_id == researcher.person_id)))
            for row in found:
                db.expunge(row)
        return found

    before = {r.id for r in rows()}
    runs = world.platform.runs
    runs.submit(researcher, world.project_id, COUNTS)
    _settle(world)
    new = [r for r in rows() if r.id not in before]
    assert [(r.route, r.status, r.action) for r in new] == [(ROUTE, 201, "data.analyse")]
    assert new[0].rows_scanned > 0 and new[0].query_digest
    # over HTTP too: the submission's own row is the run's, completed by it (after the
    # gateway metered the 202), so a run is one data request, as the synchronous call is
    assert world.researcher is not None
    with _client(world, world.researcher) as client:
        before = {r.id for r in rows()}
        run = client.post(f"/projects/{world.project_id}/analysis-runs",
                          json={"analysis": COUNTS}).json()
        _poll_until_ended(client, run["poll"])
        _settle(world)
    taken = [r for r in rows() if r.id not in before and r.action == "data.analyse"]
    assert [(r.route, r.status) for r in taken] == [(ROUTE, 201)]
    assert taken[0].rows_scanned > 0


def test_a_rate_limited_run_says_what_the_synchronous_call_says(tmp_path: Path) -> None:
    """Over the project's request rate, the run is refused by the service's gate as the
    synchronous call is: 429, the same reasons (but for the seconds to wait), Retry-After."""
    import re

    from strongroom.access.roles import Role

    world = build_world(tmp_path, cohort=400)
    try:
        admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
        world.platform.watch.set_limits(admin, "project", world.project_id, {"requests": 1})
        assert world.researcher is not None
        with _client(world, world.researcher) as client:
            url = f"/projects/{world.project_id}/analyses"
            assert client.post(url, json={"analysis": COUNTS}).status_code == 201
            sync = client.post(url, json={"analysis": COUNTS})
            assert sync.status_code == 429, sync.text
            run = client.post(f"/projects/{world.project_id}/analysis-runs",
                              json={"analysis": COUNTS})

        def words(reasons: list[str]) -> list[str]:
            return [re.sub(r"\d+", "N", r) for r in reasons]

        # refused at its submission, before anything runs, as the synchronous call is
        assert run.status_code == 429, run.text
        assert run.json()["error"] == sync.json()["error"]
        assert words(run.json()["reasons"]) == words(sync.json()["reasons"])
        assert int(run.headers["Retry-After"]) >= 1 and int(sync.headers["Retry-After"]) >= 1
    finally:
        world.platform.close()


def test_the_engine_s_own_seconds_are_part_of_every_floor_it_runs(
        world: World, researcher: Principal, floored: float) -> None:
    """An engine whose requests take seconds whatever their work (Spark: strongroom.yaml's
    engine: floor_seconds:) has them added to the published floor of what it runs (aggregate
    SQL here) and of definitions, not of what is computed here (a crosstab of a definition);
    a definition is answered no sooner than its floor with them."""
    engine = world.platform.enclave.engine
    assert engine.floor_seconds == 0.0  # DuckDB's own
    crosstab = {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "sex"}
    assert world.platform.outputs.schedule(crosstab).floor == floored
    ctx, saved = world.ctx, world.ctx.settings
    engine.floor_seconds = 0.75
    ctx.settings = dataclasses.replace(saved, definition_seconds=0.25)
    try:
        assert world.platform.outputs.schedule(COUNTS) == Schedule(floored + 0.75, 2.0)
        assert world.platform.outputs.schedule(crosstab).floor == floored
        started = time.monotonic()
        world.platform.outputs.define(researcher, world.project_id, "latency",
                                      "SELECT pid, p31 AS sex FROM participants")
        assert time.monotonic() - started >= 1.0  # 0.25 s, and the engine's 0.75
    finally:
        engine.floor_seconds = 0.0
        ctx.settings = saved
