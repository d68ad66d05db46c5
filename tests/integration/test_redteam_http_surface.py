"""Red team: the HTTP surface a researcher sees (the API, the console, the Python client).

What the earlier red teams closed (which files a job wrote, one failure reason, the walls,
time on schedules, failures after the data are read as answers, one refusal text) is
attacked here from what HTTP adds: headers and sizes, ids and moments, listings, the console's
pages, the ration's state between a request and its answer, and the client's exceptions.
Each attack asks the same question with a target participant's BMI just over a line and
just under it (the truth read custodian-side, the line drawn a tenth either side of it) and
compares what the researcher's client is told. Guarantees held here, one a sentence:

- A withheld output's API record, its console page and the response's headers and
  ``Content-Length`` are byte for byte the same whatever the data (ids and moments masked),
  whether the check acted on it or not, and whether the data refused it or it was answered
  (its file name is the request's, never ``<kind>.json`` for a refusal).
- An output exists for no listing, and its ``created_at`` is not before its schedule's
  moment: the moment and the listing (order, count) are the same over the line and under it.
- Between a request and its answer's moment, the budgets of answers read the same whatever
  the check found: an acted-on output is charged in place of the answer its run reserved,
  so no concurrent request (a definition refused for the ration, say) can tell when the
  run was recorded or whether the check acted before the answer is given (within a day,
  and on both sides of UTC midnight when the answer comes after it).
- A polled run (the API's and the console's htmx fragment) ends with the same record and
  the same fragment over the line and under it.
- A project's definitions list (its columns, its ``size_ok``, its count) and its dummy-data
  zip are the same over the line and under it.
- The differentially private budget's spends (status, moments) are the same over the line
  and under it.
- Asking for a withheld output's release answers the same (review), and its download and
  table are refused alike.
- Output ids are random, never ordered by the moment they were made.
- ``GET /metrics`` (watch's alerts by detector, the audit log's counts) answers only the
  platform team's scraper, never a researcher: a withheld output's findings feed watch's
  detectors, and the counters moved with them.
- No response carries a ``Server-Timing``, ``ETag``, ``Last-Modified`` or ``Retry-After``
  header on these requests, and the Python client's exception says what the API said.

Leaks found and fixed: a withheld refusal's file name (``<kind>.json``), an acted-on output
charged beside its run's reservation until the answer (and, across a budget's renewal, in
the new period while the reservation was the old one's), and public ``/metrics``.

The waits of schedules are recorded, not slept (tests/redteam_world.py's ``scheduled``); the
moments compared are the platform's clock's, which the test moves.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from strongroom.access.context import Principal
from strongroom.access.models import WebSession
from strongroom.access.tokens import SESSION_PREFIX, digest, new_id, new_secret
from strongroom.attacks import runner
from strongroom.attacks.world import AttackWorld
from strongroom.client import Client, StrongroomError
from strongroom.outputs import answers, requests
from strongroom.outputs.models import OutputRow
from strongroom.server.app import create_app
from strongroom.server.security import CSRF_HEADER, SESSION_COOKIE
from strongroom.watch.models import AlertRow, MeterRow
from tests.redteam_world import (
    FLOOR,
    attacker,
    dp_target,
    module_cast,
    module_world,
    scheduled_fixture,
    settings_fixture,
    until,
)

pytestmark = pytest.mark.slow

world = module_world()
cast = module_cast()
settings = settings_fixture()
scheduled = scheduled_fixture()

INSIDE = "10.1.2.3"  # in the attack world's registered networks
# the check acts only if the target is at or under the line: nine others and the target
# over it hold a one (ten: the sum stands), else nine (clipped to zeros: identical values)
# the check acts only if the target is over the line (a group of one, removed); under it
# the table is empty and nothing is acted on
ALONE = ("SELECT sex, count(*) AS n FROM base WHERE {T} AND bmi > {L} GROUP BY sex")
ORACLE = ("SELECT sum(CASE WHEN ({G9}) OR ({T} AND bmi > {L}) THEN 1 ELSE 0 END) AS s "
          "FROM base")
# refused once it has read the data only if the target is over the line (a binomial
# outcome of 2 on their row alone: "must hold 0/1"); answered otherwise
MODEL = ("SELECT pid, CASE WHEN {T} AND bmi > {L} THEN 2 ELSE sex END AS y, birth_year "
         "FROM base")
GLM = {"kind": "glm", "definition": "model", "formula": "y ~ birth_year", "family": "binomial"}
VOLATILE = re.compile(r"(out|run|def|ses|dps|prj|per|ins)_[0-9a-f]{12}|\d{4}-\d\d-\d\dT[0-9:.]+"
                      r"(Z|[+-]\d\d:\d\d)?|\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?( UTC)?|"
                      r"[Rr]esearcher ?\d+|Attack [^<\"]*")
HEADERS_NEVER = ("server-timing", "etag", "last-modified", "retry-after", "x-runtime")


def _lines(target: runner.Target) -> dict[str, float]:
    """Lines a tenth over and under the target's BMI: the target is over the first."""
    return {"over": round(target.bmi - 0.1, 2), "under": round(target.bmi + 0.1, 2)}


def _fill(sql: str, target: runner.Target, line: float, nine: str = "false") -> str:
    return sql.format(T=target.condition, L=line, G9=nine)


def _browser(world: AttackWorld, who: Principal) -> TestClient:
    """The researcher's browser (and API client): a signed-in session, as POST /auth/login
    makes it (the attack world's people are signed in already; only the cookie is new)."""
    ctx = world.platform.access
    secret, csrf = new_secret(SESSION_PREFIX), new_secret()
    now = world.clock()
    with ctx.transaction() as db:
        db.add(WebSession(id=new_id("ses"), digest=digest(secret), csrf_digest=digest(csrf),
                          person_id=who.person_id, created_at=now, last_seen_at=now))
    made = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                      base_url="https://testserver")
    made.cookies.set(SESSION_COOKIE, secret)
    made.headers[CSRF_HEADER] = csrf
    return made


def _spend_all(world: AttackWorld, who: Principal, project: str, leave: int = 0) -> None:
    """Custodian-side: the person's day's answers spent but ``leave`` (as earlier outputs
    acted on would have spent them)."""
    ctx = world.platform.access
    with ctx.transaction() as db:
        ration = world.platform.rations.of(db, who.person_id)
        limit = min(b.limit for b in answers.budgets(db, who.person_id, project,
                                                     world.clock(), ration))
        used = answers.used(db, who.person_id, world.clock(), ration)
        for _ in range(limit - used - leave):
            got = answers.charge(db, who.person_id, project, world.clock(), ration, "test")
            assert isinstance(got, int)


def _rules(world: AttackWorld, output_id: str) -> set[str]:
    """Custodian-side: the rules of the whole check report (what was withheld)."""
    with world.platform.access.transaction() as db:
        row = db.get(OutputRow, output_id)
        assert row is not None
        return {f.rule for f in requests.report_of(row).findings}


def _masked(text: str) -> str:
    return VOLATILE.sub("…", text)


def _seen(response: Any) -> tuple[int, str, list[str]]:
    """A response as the researcher compares it: status, body (ids and moments masked) and
    header names (the request id's value aside)."""
    return (response.status_code, _masked(response.text),
            sorted(k.lower() for k in response.headers))


def _no_side_headers(response: Any) -> None:
    present = {k.lower() for k in response.headers}
    assert not present & set(HEADERS_NEVER), present


def _analysis(sql: str, name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"analysis": {"kind": "aggregate_sql", "sql": sql}}
    if name is not None:
        body["name"] = name
    return body


# -- withheld outputs: the record, the page, the headers ------------------------------------


def _withheld(world: AttackWorld, sql: str | dict[str, Any], name: str | None = None,
              model: str | None = None
              ) -> tuple[tuple[int, str, list[str]], int, str, dict[str, Any]]:
    """A new researcher with their answers spent asks ``sql`` (or an analysis, of the
    definition ``model``) through the API: what they see of the answer, its
    Content-Length, its console page (masked) and its record."""
    who, project = attacker(world)
    if model is not None:
        world.platform.outputs.define(who, project, "model", model)
    _spend_all(world, who, project)
    browser = _browser(world, who)
    body = _analysis(sql, name) if isinstance(sql, str) else {"analysis": sql, **(
        {"name": name} if name is not None else {})}
    answered = browser.post(f"/projects/{project}/analyses", json=body)
    assert answered.status_code == 201, answered.text
    _no_side_headers(answered)
    record = answered.json()
    page = browser.get(f"/ui/workspace/outputs/{record['id']}")
    assert page.status_code == 200, page.text
    _no_side_headers(page)
    return (_seen(answered), int(answered.headers["content-length"]),
            _masked(page.text), record)


def test_withheld_output_same_bytes_whether_the_check_acted(
        world: AttackWorld, cast: runner.Cast) -> None:
    target = cast.obese[0]
    seen = {side: _withheld(world, _fill(ORACLE, target, line, cast.nines[0]))
            for side, line in _lines(target).items()}
    over, under = seen["over"], seen["under"]
    assert over[3]["findings"] and {f["rule"] for f in over[3]["findings"]} == {"answers"}
    # the SQL (the line) is the request's own: it is in the spec and the name's digest
    _same(_strip_request(over), _strip_request(under))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    """Equal, or a diff of the first part that differs (pages are long)."""
    for x, y in zip(a, b, strict=True):
        if x != y and isinstance(x, str) and isinstance(y, str):
            diff = "\n".join(difflib.unified_diff(x.splitlines(), y.splitlines(), lineterm="",
                                                   n=1))
            raise AssertionError(diff[:3000])
        assert x == y


def _strip_request(seen: tuple[tuple[int, str, list[str]], int, str, dict[str, Any]]
                   ) -> tuple[Any, ...]:
    (status, _body, headers), length, page, record = seen
    record = {k: v for k, v in record.items()
              if k not in ("id", "created_at", "spec", "filename", "project_id", "requester")}
    page = re.sub(r"aggregate_sql-[0-9a-f]{8}|bmi &gt; [0-9.]+|bmi > [0-9.]+|"
                  r"(Attack|Researcher|researcher)[^<\"]*", "…", page)
    return status, headers, length, page, json.dumps(record, sort_keys=True)


def test_withheld_refusal_looks_like_a_withheld_answer(
        world: AttackWorld, cast: runner.Cast) -> None:
    """Refused by the data (over) or answered (under): once withheld, the same record, the
    same page, the same size; the name asked for is kept either way."""
    target = cast.obese[1]
    seen = {side: _withheld(world, GLM, name="probe", model=_fill(MODEL, target, line))
            for side, line in _lines(target).items()}
    assert "refused" in _rules(world, seen["over"][3]["id"])  # the data refused it
    assert "refused" not in _rules(world, seen["under"][3]["id"])
    assert seen["over"][3]["filename"] == seen["under"][3]["filename"] == "probe.json"
    _same(_strip_request(seen["over"]), _strip_request(seen["under"]))
    unnamed = {side: _withheld(world, GLM, model=_fill(MODEL, target, line))
               for side, line in _lines(target).items()}
    assert unnamed["over"][3]["filename"] == unnamed["under"][3]["filename"], [
        s[3]["filename"] for s in unnamed.values()]
    _same(_strip_request(unnamed["over"]), _strip_request(unnamed["under"]))


def test_release_asked_of_a_withheld_output_answers_the_same(
        world: AttackWorld, cast: runner.Cast) -> None:
    """Asking for a withheld output's release moves it to review, over the line or under
    it, refused by the data or answered: the same record, page and size."""
    target = cast.obese[5]
    seen = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        world.platform.outputs.define(who, project, "model", _fill(MODEL, target, line))
        _spend_all(world, who, project)
        browser = _browser(world, who)
        made = browser.post(f"/projects/{project}/analyses", json={"analysis": GLM})
        assert made.status_code == 201, made.text
        asked = browser.post(f"/outputs/{made.json()['id']}/request", json={
            "justification": "the study's main model, for the paper's second table"})
        _no_side_headers(asked)
        page = browser.get(f"/ui/workspace/outputs/{made.json()['id']}")
        download = browser.get(f"/outputs/{made.json()['id']}/download")
        table = browser.get(f"/outputs/{made.json()['id']}/table")
        seen[side] = (_seen(asked), int(asked.headers["content-length"]),
                      _masked(page.text), _seen(download), _seen(table))
    assert "review" in seen["over"][0][1]
    _same(seen["over"], seen["under"])


# -- moments and listings ------------------------------------------------------------------


def test_output_moment_and_listing_follow_the_schedule(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float]) -> None:
    """``created_at`` is the request's moment plus its step, and the output is listed (API
    and console) from then on, never before: the same over the line and under it."""
    target = cast.lean[0]
    seen = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        browser = _browser(world, who)
        asked = world.clock()
        answered = browser.post(f"/projects/{project}/analyses",
                                json=_analysis(_fill(ORACLE, target, line, cast.nines[1])))
        assert answered.status_code == 201, answered.text
        created = dt.datetime.fromisoformat(answered.json()["created_at"])
        before = browser.get("/outputs", params={"project_id": project}).json()
        tab = browser.get(f"/ui/workspace/projects/{project}", params={"tab": "results"})
        world.clock.advance(FLOOR)
        after = browser.get("/outputs", params={"project_id": project}).json()
        seen[side] = ((created - asked.astimezone(dt.UTC)).total_seconds(), len(before),
                      len(after), answered.json()["id"] in tab.text)
    floor = world.platform.outputs.schedule({"kind": "aggregate_sql"}).at(0)
    assert floor > 0
    assert seen["over"] == seen["under"] == (floor, 0, 1, False), seen


def test_ids_say_nothing_of_order_or_time(world: AttackWorld) -> None:
    """Output, run and definition ids are random (``<prefix>_`` and 48 random bits): two
    made one after the other are not ordered by their ids more often than by chance."""
    who, project = attacker(world)
    browser = _browser(world, who)
    ids = [browser.post(f"/projects/{project}/analyses", json={"analysis": {
        "kind": "frequency", "definition": "base", "variable": "sex"}}).json()["id"]
        for _ in range(12)]
    assert all(re.fullmatch(r"out_[0-9a-f]{12}", i) for i in ids)
    rises = sum(a < b for a, b in itertools.pairwise(ids))
    assert rises not in (0, len(ids) - 1)  # sorted by chance: 2 in 12! orders


# -- the ration between a request and its answer --------------------------------------------


def _answered_while(world: AttackWorld, browser: TestClient, project: str, sql: str,
                    probe: Callable[[float], None], scheduled: list[float]) -> str:
    """The analysis of ``sql`` asked over HTTP, with ``probe`` run where the service waits for
    its answer's moment; its verdict (the clock moved on a minute after)."""
    outputs = world.platform.outputs
    outputs.sleep = probe
    answered = browser.post(f"/projects/{project}/analyses", json=_analysis(sql))
    outputs.sleep = scheduled.append
    assert answered.status_code == 201, answered.text
    world.clock.advance(60)
    return str(answered.json()["verdict"])


@pytest.mark.parametrize("midnight", [False, True], ids=["within-a-day", "across-midnight"])
def test_ration_reads_the_same_until_the_answer(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float], midnight: bool) -> None:
    """A definition asked while an analysis waits for its answer's moment (the schedule's
    wait, here the moment the service sleeps) is refused for the ration or built the same
    way whether the check acted on the analysis or not; also when the analysis is asked just
    before the day's budget renews and answered after (its output is the new day's)."""
    target = cast.obese[2]
    seen: dict[str, Any] = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        if midnight:  # three seconds before the UTC day ends; the floor ends after it
            now = world.clock()
            world.clock.advance((dt.datetime.combine(now.date() + dt.timedelta(days=1),
                                                     dt.time(), dt.UTC) - now
                                 ).total_seconds() - 3)
        _spend_all(world, who, project, leave=1 if midnight else 2)
        browser = _browser(world, who)
        probes: list[tuple[int, str]] = []

        def probe(_: float, browser: TestClient = browser, project: str = project,
                  probes: list[tuple[int, str]] = probes) -> None:
            got = browser.post(f"/projects/{project}/definitions", json={
                "name": f"probe{len(probes)}", "sql": "SELECT pid, sex FROM base"})
            probes.append((got.status_code, _masked(got.text)[:120]))
        seen[side] = (probes, _answered_while(world, browser, project,
                                              _fill(ALONE, target, line), probe, scheduled))
    assert seen["over"][1] != "release" and seen["under"][1] == "release", seen
    assert seen["over"][0] == seen["under"][0], seen


def test_ration_reads_the_same_after_a_renewal_until_the_answer(
        world: AttackWorld, cast: runner.Cast, scheduled: list[float]) -> None:
    """As above, the probe asked after the UTC day has renewed (the project rations one
    answer a day) and before the analysis asked three seconds before it is answered."""
    target = cast.obese[6]
    outputs = world.platform.outputs
    seen: dict[str, Any] = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        outputs.set_project_rules(world.staff("custodian-admin"), project,
                                  {"answers": {"max_acted": 1}})
        now = world.clock()
        world.clock.advance((dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(),
                                                 dt.UTC) - now).total_seconds() - 3)
        browser = _browser(world, who)
        probes: list[int] = []

        def probe(_: float, browser: TestClient = browser, project: str = project,
                  probes: list[int] = probes) -> None:
            world.clock.advance(4)  # the new day, before the answer's moment (its floor)
            probes.append(browser.post(f"/projects/{project}/definitions", json={
                "name": f"probe{len(probes)}", "sql": "SELECT pid, sex FROM base"}).status_code)
        seen[side] = (probes, _answered_while(world, browser, project,
                                              _fill(ALONE, target, line), probe, scheduled))
    assert seen["over"][1] != "release" and seen["under"][1] == "release", seen
    assert seen["over"][0] == seen["under"][0], seen


# -- polled runs -------------------------------------------------------------------------


def test_polled_run_ends_the_same(world: AttackWorld, cast: runner.Cast) -> None:
    target = cast.obese[3]
    seen = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        world.platform.outputs.define(who, project, "model", _fill(MODEL, target, line))
        _spend_all(world, who, project)
        browser = _browser(world, who)
        run = browser.post(f"/projects/{project}/analysis-runs",
                           json={"analysis": GLM, "name": "probe"})
        assert run.status_code == 202, run.text
        _no_side_headers(run)
        poll = run.json()["poll"]
        assert _until(lambda p=poll, b=browser: b.get(p).json()["status"] != "running")
        ended = browser.get(poll)
        fragment = browser.get(f"/ui/workspace/analysis-runs/{run.json()['id']}/state")
        _no_side_headers(ended)
        body = ended.json()
        body["elapsed"] = 0
        body["output"] = {k: v for k, v in body["output"].items() if k != "spec"}
        seen[side] = (ended.status_code, _masked(json.dumps(body, sort_keys=True)),
                      fragment.status_code, len(_masked(fragment.text)))
    assert seen["over"] == seen["under"], seen


def _until(found: Callable[[], bool]) -> bool:
    return until(found, timeout=30.0)


# -- definitions, the dummy zip, the DP budget ----------------------------------------------


def _dummy_cut(members: dict[str, tuple[int, bytes]], sql: str) -> pl.DataFrame:
    """``sql`` run on the dummy zip's own ``base`` rows (synthetic: no participant's)."""
    base = pl.read_csv(io.BytesIO(members["base.csv"][1]))  # noqa: F841 (read by DuckDB)
    return duckdb.sql(sql).pl().sort("pid")


def test_definitions_and_dummy_zip_same(world: AttackWorld, cast: runner.Cast) -> None:
    """The definitions listed, the dummy zip and the page say the same whichever side of
    the line the target is. The dummy's own rows of the cut are the cut of the dummy's base
    (its synthetic rows, the same on both sides), so they move only when a synthetic
    participant lies between the lines, and exactly as the cut on the dummy says."""
    target = cast.lean[1]
    who, project = attacker(world)
    browser = _browser(world, who)
    seen = {}
    for side, line in _lines(target).items():
        sql = f"SELECT pid, bmi FROM base WHERE NOT ({target.condition} AND bmi > {line})"
        made = browser.post(f"/projects/{project}/definitions", json={"name": "cut",
                                                                         "sql": sql})
        assert made.status_code == 201, made.text
        listed = browser.get(f"/projects/{project}/definitions")
        zipped = browser.get(f"/projects/{project}/dummy")
        assert zipped.status_code == 200
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
            members = {i.filename: (i.file_size, z.read(i.filename)) for i in z.infolist()}
        cut = pl.read_csv(io.BytesIO(members["cut.csv"][1])).sort("pid")
        assert cut.equals(_dummy_cut(members, sql)), side
        members = {k: v for k, v in members.items() if not k.startswith("cut.")}
        page = browser.get(f"/ui/workspace/projects/{project}", params={"tab": "analyse"})
        for r in (made, listed, zipped, page):
            _no_side_headers(r)
        body = [{k: v for k, v in d.items() if k not in ("sql", "created_at")}
                for d in listed.json()]
        seen[side] = (body, members, len(re.sub(r"bmi &gt; [0-9.]+", "", _masked(page.text))))
        assert browser.delete(f"/projects/{project}/definitions/cut").status_code == 204
    assert seen["over"][0] == seen["under"][0]
    assert seen["over"][1] == seen["under"][1]
    assert seen["over"][2] == seen["under"][2]


def test_dp_budget_spends_same(world: AttackWorld, cast: runner.Cast) -> None:
    target = cast.obese[4]
    seen = {}
    for side, line in _lines(target).items():
        who, project, where = dp_target(world, target)
        where[-1]["value"] = line
        browser = _browser(world, who)
        answered = browser.post(f"/projects/{project}/dp/queries", json={"query": {
            "kind": "count", "table": "participants", "epsilon": "0.1", "where": where}})
        assert answered.status_code == 200, answered.text
        _no_side_headers(answered)
        budget = browser.get(f"/projects/{project}/dp/budget")
        body = budget.json()
        seen[side] = (_masked(json.dumps(body["spends"], sort_keys=True)),
                      body["epsilon_spent"], body["queries"])
    assert seen["over"] == seen["under"], seen


# -- public telemetry ----------------------------------------------------------------------

# two counts of one group: they differ by the target alone if over the line (differencing
# between the output's own cells), else they are the same people
WITHIN = ("SELECT count(*) AS n, count(CASE WHEN {T} AND bmi > {L} THEN NULL ELSE 1 END) "
          "AS m FROM base")
PRIMER = ("SELECT count(*) AS n, count(CASE WHEN {T} THEN NULL ELSE 1 END) AS m FROM base "
          "WHERE {i} = {i}")


def _differencing_alerts(world: AttackWorld, who: Principal) -> int:
    """Custodian-side: the person's queries.differencing alerts."""
    with world.platform.access.transaction() as db:
        return len(list(db.scalars(select(AlertRow).where(
            AlertRow.detector == "queries.differencing",
            AlertRow.person_id == who.person_id))))


def _alerts(browser: TestClient) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families
    got = browser.get("/metrics")
    if got.status_code != 200:
        return {}
    return {s.labels.get("detector", ""): s.value
            for family in text_string_to_metric_families(got.text)
            for s in family.samples if s.name == "strongroom_alerts_total"}


def test_public_metrics_say_nothing_of_a_withheld_output(
        world: AttackWorld, cast: runner.Cast) -> None:
    target = cast.lean[2]
    seen = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        _spend_all(world, who, project)
        browser = _browser(world, who)
        for i in range(9):  # withheld, each found to difference within (custodian-side)
            made = browser.post(f"/projects/{project}/analyses", json=_analysis(
                PRIMER.format(T=target.condition, i=i)))
            assert made.status_code == 201, made.text
            world.clock.advance(61)  # under the request rate
        before = _alerts(browser)
        made = browser.post(f"/projects/{project}/analyses",
                            json=_analysis(_fill(WITHIN, target, line)))
        assert made.status_code == 201, made.text
        assert {f["rule"] for f in made.json()["findings"]} == {"answers"}  # withheld
        after = _alerts(browser)
        seen[side] = ({k: v - before.get(k, 0.0) for k, v in after.items()
                       if v != before.get(k, 0.0)}, browser.get("/metrics").status_code)
        # the custodian's scraper still reads them; the watch counts what the check found
        # only from outputs that were answers (its counts suspend, alone or with two other
        # groups of detectors agreeing): a withheld output's findings stay on its report
        scraper = TestClient(create_app(world.platform), client=("127.0.0.1", 50000))
        assert scraper.get("/metrics").status_code == 200
        seen[side] += (_differencing_alerts(world, who),)
    assert seen["over"] == seen["under"] == ({}, 404, 0), seen


def test_a_suspension_counts_only_what_answered(world: AttackWorld, cast: runner.Cast) -> None:
    """*Whether the watch suspends a person (their next request refused) hangs only on
    outputs that were answers.* Detectors suspend on what the check saw and the output does
    not show (cells near the line, differencing found); a cell of 2k − 1 people is released
    whole and spends no answer, yet was metered near the line. A red team filled the day
    with 39 near cells (one output, an answer) and asked a probe whose group is 2k − 1 people
    if the target is obese and 2k if lean: the next request was refused (suspended) for
    obese targets only, 3 of 3, the probe spending nothing. Both now go on alike, and what
    the watch meters of each request (custodian-side) is the same: a one-cell probe of 19 or
    20 people, released whole, no longer meters its participants (19 against 20)."""
    spare = next(t for t in (*cast.obese, *cast.lean)
                 if t not in (cast.obese[0], cast.lean[0]))
    group = f"(({cast.nines[0]}) OR ({cast.nines[1]}) OR {spare.condition})"  # 2k − 1 = 19
    fill = (f"SELECT CASE WHEN {group} THEN 'a' ELSE 'b' END AS v, "
            + ", ".join(f"count(*) AS n{i}" for i in range(39)) + " FROM base GROUP BY v")
    seen = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attacker(world)
        browser = _browser(world, who)
        told = []
        probe = f"{group} OR ({target.condition} AND NOT bmi > 30)"  # 19 if obese, else 20
        for sql in (fill, f"SELECT CASE WHEN {probe} THEN 'a' ELSE 'b' END AS v, count(*) AS n "
                          "FROM base GROUP BY v",
                    "SELECT sex, count(*) AS n FROM base GROUP BY sex",
                    f"SELECT count(*) AS n FROM base WHERE {probe}"):
            world.clock.advance(5)
            made = browser.post(f"/projects/{project}/analyses", json=_analysis(sql))
            told.append((made.status_code, made.json().get("verdict")))
        with world.platform.access.transaction() as db:  # custodian-side: the meter's rows
            metered = [(m.participants, m.near_threshold, m.differencing, m.differencing_within)
                       for m in db.scalars(select(MeterRow).where(
                           MeterRow.person_id == who.person_id,
                           MeterRow.route.endswith("/analyses")).order_by(MeterRow.id))]
        seen[target.obese] = (told, metered)
    assert seen[True] == seen[False], seen
    assert seen[True][0][2][0] == 201, seen  # nobody suspended by a free probe


def test_past_the_ration_the_meter_reads_a_refusal_as_any_output(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*Past the ration (every output withheld, none an answer), what the meter records of an
    analysis is the same whether the data refused it or it ran.* A binomial GLM whose
    outcome is 2 on the target's row if they are obese (the data refuse it) and 0/1 else:
    withheld either way. Before, the refusal metered no participants and the run the whole
    cohort: the reconstruction detector counted the lean probe as one of the day's analyses
    and not the obese one, and a red team turned that into a suspension by corroboration
    for lean targets only (3 of 3, no answer spent)."""
    seen = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attacker(world)
        world.platform.outputs.define(
            who, project, "model", f"SELECT pid, CASE WHEN {target.condition} AND bmi > 30 "
            "THEN 2 ELSE sex END AS y, birth_year FROM base")
        _spend_all(world, who, project)
        world.clock.advance(5)
        made = _browser(world, who).post(f"/projects/{project}/analyses", json={"analysis": {
            "kind": "glm", "definition": "model", "formula": "y ~ birth_year",
            "family": "binomial"}})
        assert made.status_code == 201, made.text
        with world.platform.access.transaction() as db:  # custodian-side
            metered = [(m.participants, m.near_threshold, m.differencing, m.late)
                       for m in db.scalars(select(MeterRow).where(
                           MeterRow.person_id == who.person_id,
                           MeterRow.route.endswith("/analyses")))]
            refused = db.get(OutputRow, made.json()["id"])
            assert refused is not None
            seen[target.obese] = (metered, {f.get("rule") for f in refused.report["findings"]})
    assert seen[True][0] == seen[False][0], seen
    assert "refused" in seen[True][1] and "refused" not in seen[False][1], seen  # the truth


# -- the Python client ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
def test_client_error_says_what_the_api_said(world: AttackWorld, cast: runner.Cast) -> None:
    """The client's exception for a definition refused by the ration: the API's status,
    kind and reasons, nothing else, the same whatever the data asked before."""
    who, project = attacker(world)
    _spend_all(world, who, project)
    client = Client("https://testserver")
    client._http = _browser(world, who)  # the client over the in-process app
    told = []
    for name in ("late", "later"):
        with pytest.raises(StrongroomError) as caught:
            client.enclave.define(project, name, "SELECT pid FROM base")
        told.append(caught.value)
    error = told[0]
    assert (error.status, error.error) == (409, "conflict")
    assert str(told[0]) == str(told[1]) == "; ".join(error.reasons)
    assert error.retry_after is None


@pytest.fixture(autouse=True)
def _fresh_clock(world: AttackWorld) -> Iterator[None]:
    """Each attack a minute after the last: sessions stay fresh, budgets of other tests'
    people are their own."""
    world.clock.advance(60)
    yield
