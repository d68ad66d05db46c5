"""Every endpoint × every role × every state, expected outcomes generated from the declared rules.

The expectation comes from ``permissions.RULES`` (who may) and the kind of action (which "when
may" states stop it). A route without a declared action, or without an example request here,
fails the test: a new endpoint cannot slip in without rules.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from strongroom.access import auth, pauses, people, projects
from strongroom.access.context import Principal
from strongroom.access.models import Institution, Pause, Project, Training
from strongroom.access.permissions import RULES, Action, Kind
from strongroom.access.roles import Role
from strongroom.access.states import PauseLevel
from strongroom.access.tokens import new_id
from strongroom.access.totp import code_at
from strongroom.enclave import service
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import Verdict
from strongroom.platform import Platform
from strongroom.server.app import create_app
from strongroom.server.security import ACTION_KEY, CSRF_HEADER, PUBLIC
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.raising import raise_alert
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity
from tests.access_world import INSIDE, OUTSIDE, PASSWORD, Clock, Member, World, build_world
from tests.jobs_world import archive

WHY = "the access committee approved it"  # every DP change gives its reason
PIPELINE = ("version: 1\nactions:\n  study:\n    run: python a.py\n    outputs:\n"
            "      notes: {path: output/notes.txt, kind: text}\n")
JOB_CODE = archive({"project.yaml": PIPELINE, "a.py": "pass\n", "plans/study.json": "[]"})
MISSING_SCRIPT = archive({"project.yaml": PIPELINE})

pytestmark = pytest.mark.slow  # every endpoint × role × state

STATES = ["normal", "institution-revoked", "person-paused", "platform-paused",
          "institution-paused", "project-paused", "project-expired", "training-expired",
          "outside-network"]
# the state in which watch's detectors judge the sweep too (it raises no suspension that would
# turn a cell the rules allow into a refusal); in the others every request is still metered,
# but no detector reads the growing history (half of each state's time), and the gate alone
# decides
WATCHED = "normal"
DATA_ONLY = {"platform-paused", "institution-paused", "project-paused", "project-expired",
             "training-expired", "outside-network"}


def expected_allowed(action: Action, role: Role, state: str) -> bool:
    rule = RULES[action]
    if role not in rule.roles:
        return False
    if state == "institution-revoked":
        return False
    if state == "person-paused":
        return rule.kind is Kind.SELF
    if state in DATA_ONLY:
        return rule.kind is not Kind.DATA
    return True


@dataclass
class Ids:
    project: str
    victim_project: str
    victim_institution: str
    victim_person: str
    victim_pause: str
    token: str
    researcher: str
    checked: str  # outputs in each state, for the outputs routes
    under_review: str
    also_under_review: str
    released: str
    job: str  # a declared large job, for the approval route
    alert: str = ""  # a watch alert about the researcher holding a suspension, to appeal
    pipeline_job: str = ""  # a researcher's job (queued, never run), for the jobs routes
    analysis_run: str = ""  # a researcher's analysis run (answered), for its poll


_n = itertools.count()


def examples(ids: Ids) -> dict[tuple[str, str], Callable[[], tuple[str, Any]]]:
    """One valid request per route: (path, JSON body). Destructive ones aim at victims."""
    today = dt.date(2026, 11, 21)
    p, vp, vi, vpe = ids.project, ids.victim_project, ids.victim_institution, ids.victim_person
    return {
        ("POST", "/auth/logout"): lambda: ("/auth/logout", None),
        ("GET", "/auth/me"): lambda: ("/auth/me", None),
        ("POST", "/auth/password"): lambda: ("/auth/password", {
            "current": PASSWORD, "new": PASSWORD + " changed"}),
        ("GET", "/auth/tokens"): lambda: ("/auth/tokens", None),
        ("POST", "/auth/tokens"): lambda: ("/auth/tokens", {
            "project_id": p, "actions": ["data.analyse"], "days": 7}),
        ("DELETE", "/auth/tokens/{token_id}"): lambda: (f"/auth/tokens/{ids.token}", None),
        ("GET", "/roles"): lambda: ("/roles", None),
        ("GET", "/institutions"): lambda: ("/institutions", None),
        ("POST", "/institutions"): lambda: ("/institutions", {
            "name": f"New {next(_n)}", "country": "DE", "jurisdiction": "EU GDPR",
            "networks": ["10.9.0.0/16"]}),
        ("GET", "/institutions/{institution_id}"): lambda: (f"/institutions/{vi}", None),
        ("PATCH", "/institutions/{institution_id}"): lambda: (
            f"/institutions/{vi}", {"networks": ["10.8.0.0/16"]}),
        ("POST", "/institutions/{institution_id}/revoke"): lambda: (
            f"/institutions/{vi}/revoke", {"reason": "matrix"}),
        ("POST", "/institutions/{institution_id}/reinstate"): lambda: (
            f"/institutions/{vi}/reinstate", None),
        ("GET", "/people"): lambda: ("/people", None),
        ("POST", "/people"): lambda: ("/people", {
            "institution_id": vi, "email": f"new{next(_n)}@victim.test", "name": "New",
            "roles": ["auditor"], "password": PASSWORD}),
        ("GET", "/people/{person_id}"): lambda: (f"/people/{vpe}", None),
        ("POST", "/people/{person_id}/roles"): lambda: (f"/people/{vpe}/roles",
                                                        {"role": "auditor"}),
        ("DELETE", "/people/{person_id}/roles/{role}"): lambda: (
            f"/people/{vpe}/roles/auditor", None),
        ("POST", "/people/{person_id}/training"): lambda: (f"/people/{vpe}/training", {
            "course": "Refresher", "completed_on": str(today),
            "expires_on": str(today + dt.timedelta(days=300))}),
        ("POST", "/people/{person_id}/vetting"): lambda: (f"/people/{vpe}/vetting",
                                                          {"status": "lapsed"}),
        ("POST", "/people/{person_id}/unlock"): lambda: (f"/people/{vpe}/unlock", None),
        ("POST", "/people/{person_id}/active"): lambda: (f"/people/{vpe}/active",
                                                         {"active": False}),
        ("POST", "/people/{person_id}/orcid"): lambda: (f"/people/{vpe}/orcid",
                                                        {"orcid": "0000-0002-1825-0097"}),
        ("GET", "/people/{person_id}/accounts"): lambda: (f"/people/{vpe}/accounts", None),
        ("GET", "/identity/duplicates"): lambda: ("/identity/duplicates", None),
        ("GET", "/identity/links"): lambda: ("/identity/links", None),
        ("POST", "/identity/links"): lambda: ("/identity/links", {  # distinct: no allowance
            "person_id": vpe, "same_as": ids.researcher, "relation": "distinct",
            "reason": "matrix"}),
        ("POST", "/identity/unlink"): lambda: ("/identity/unlink", {
            "person_id": vpe, "same_as": ids.researcher, "reason": "matrix"}),
        ("GET", "/projects"): lambda: ("/projects", None),
        ("POST", "/projects"): lambda: ("/projects", {
            "title": "New", "purpose": "A new approved purpose for testing",
            "lead_id": ids.researcher, "starts_on": str(today),
            "expires_on": str(today + dt.timedelta(days=30)), "fields": [31]}),
        ("GET", "/projects/{project_id}"): lambda: (f"/projects/{p}", None),
        ("POST", "/projects/{project_id}/members"): lambda: (
            f"/projects/{vp}/members", {"person_id": vpe}),
        ("DELETE", "/projects/{project_id}/members/{person_id}"): lambda: (
            f"/projects/{vp}/members/{vpe}", None),
        ("PUT", "/projects/{project_id}/fields"): lambda: (f"/projects/{vp}/fields",
                                                           {"fields": [31, 34]}),
        ("PUT", "/projects/{project_id}/genotypes"): lambda: (f"/projects/{vp}/genotypes",
                                                              {"granted": True}),
        ("POST", "/projects/{project_id}/export/request"): lambda: (
            f"/projects/{p}/export/request",
            {"justification": "Registry linkage needs record-level rows"}),
        ("POST", "/projects/{project_id}/export/decision"): lambda: (
            f"/projects/{vp}/export/decision", {"approve": False}),
        ("POST", "/projects/{project_id}/close"): lambda: (
            f"/projects/{vp}/close", {"reason": "matrix", "revoke": False}),
        ("GET", "/projects/{project_id}/schema"): lambda: (f"/projects/{p}/schema", None),
        ("GET", "/projects/{project_id}/codings/{coding_id}"): lambda: (
            f"/projects/{p}/codings/9", None),
        ("GET", "/pauses"): lambda: ("/pauses", None),
        ("POST", "/pauses"): lambda: ("/pauses", {"level": "project", "target_id": vp,
                                                  "reason": "matrix"}),
        ("POST", "/pauses/{pause_id}/lift"): lambda: (f"/pauses/{ids.victim_pause}/lift",
                                                      None),
        ("POST", "/projects/{project_id}/definitions"): lambda: (
            f"/projects/{p}/definitions",
            {"name": f"d{next(_n)}", "sql": "SELECT pid, p31 FROM participants"}),
        ("GET", "/projects/{project_id}/definitions"): lambda: (
            f"/projects/{p}/definitions", None),
        ("DELETE", "/projects/{project_id}/definitions/{name}"): lambda: (
            f"/projects/{p}/definitions/never_defined", None),
        ("GET", "/projects/{project_id}/dummy"): lambda: (f"/projects/{p}/dummy", None),
        ("POST", "/projects/{project_id}/analyses"): lambda: (f"/projects/{p}/analyses", {
            "analysis": {"kind": "frequency", "definition": "base", "variable": "sex"}}),
        ("POST", "/projects/{project_id}/analysis-runs"): lambda: (
            f"/projects/{p}/analysis-runs", {
                "analysis": {"kind": "frequency", "definition": "base", "variable": "sex"}}),
        ("GET", "/analysis-runs/{run_id}"): lambda: (f"/analysis-runs/{ids.analysis_run}",
                                                     None),
        ("GET", "/outputs"): lambda: ("/outputs", None),
        ("GET", "/outputs/{output_id}"): lambda: (f"/outputs/{ids.checked}", None),
        ("POST", "/outputs/{output_id}/request"): lambda: (
            f"/outputs/{ids.checked}/request", {}),
        ("POST", "/outputs/{output_id}/withdraw"): lambda: (
            f"/outputs/{ids.also_under_review}/withdraw", None),
        ("POST", "/outputs/{output_id}/review"): lambda: (
            f"/outputs/{ids.under_review}/review", {"approve": True, "reason": "fine"}),
        ("GET", "/outputs/{output_id}/content"): lambda: (
            f"/outputs/{ids.under_review}/content", None),
        ("GET", "/outputs/{output_id}/download"): lambda: (
            f"/outputs/{ids.released}/download", None),
        ("GET", "/outputs/{output_id}/table"): lambda: (
            f"/outputs/{ids.released}/table?format=parquet", None),
        # more ε than the project's budget holds: refused (409) once authorised, engine unused
        ("POST", "/projects/{project_id}/dp/queries"): lambda: (
            f"/projects/{p}/dp/queries", {"query": {"kind": "count", "epsilon": "2"}}),
        ("GET", "/projects/{project_id}/dp/budget"): lambda: (f"/projects/{p}/dp/budget", None),
        ("PUT", "/projects/{project_id}/dp"): lambda: (
            f"/projects/{vp}/dp", {"mode": "dp", "epsilon": "1", "reason": WHY}),
        ("POST", "/projects/{project_id}/extracts"): lambda: (
            f"/projects/{p}/extracts", {"format": "csv", "limit": 50}),
        ("GET", "/projects/{project_id}/limits"): lambda: (f"/projects/{p}/limits", None),
        ("GET", "/projects/{project_id}/risk"): lambda: (f"/projects/{p}/risk?k=5", None),
        ("PUT", "/watch/limits/{scope}/{target_id}"): lambda: (
            f"/watch/limits/project/{vp}", {"values": {"cells": 30_000}}),
        ("POST", "/projects/{project_id}/jobs"): lambda: (f"/projects/{p}/jobs", {
            "description": "the annual refresh of our linkage", "record_participants": 100,
            "starts_at": "2026-11-22T00:00:00Z", "ends_at": "2026-11-29T00:00:00Z"}),
        ("GET", "/projects/{project_id}/jobs"): lambda: (f"/projects/{p}/jobs", None),
        ("POST", "/watch/jobs/{job_id}/approve"): lambda: (f"/watch/jobs/{ids.job}/approve",
                                                           None),
        # a pipeline whose script is missing: refused (400) once the caller may submit, so the
        # matrix queues no job
        ("POST", "/projects/{project_id}/pipeline-jobs"): lambda: (
            f"/projects/{p}/pipeline-jobs",
            {"action": "study", "code": base64.b64encode(MISSING_SCRIPT).decode()}),
        ("GET", "/projects/{project_id}/pipeline-jobs"): lambda: (
            f"/projects/{p}/pipeline-jobs", None),
        ("GET", "/pipeline-jobs/{job_id}"): lambda: (f"/pipeline-jobs/{ids.pipeline_job}", None),
        ("GET", "/pipeline-jobs/{job_id}/code"): lambda: (
            f"/pipeline-jobs/{ids.pipeline_job}/code", None),
        ("GET", "/watch/alerts"): lambda: ("/watch/alerts?status=open&limit=10", None),
        ("GET", "/watch/alerts/{alert_id}"): lambda: (f"/watch/alerts/{ids.alert}", None),
        ("POST", "/watch/alerts/{alert_id}/acknowledge"): lambda: (
            f"/watch/alerts/{ids.alert}/acknowledge", {"note": "matrix"}),
        ("POST", "/watch/alerts/{alert_id}/resolve"): lambda: (
            f"/watch/alerts/{ids.alert}/resolve", {"reason": "resolved by the matrix"}),
        ("POST", "/watch/alerts/{alert_id}/reopen"): lambda: (
            f"/watch/alerts/{ids.alert}/reopen", {"reason": "matrix"}),
        ("POST", "/watch/alerts/{alert_id}/appeal"): lambda: (
            f"/watch/alerts/{ids.alert}/appeal", {"text": "an appeal written for the matrix"}),
        ("POST", "/watch/alerts/{alert_id}/appeal/review"): lambda: (
            f"/watch/alerts/{ids.alert}/appeal/review",
            {"decision": "uphold", "reason": "upheld by the matrix"}),
        ("GET", "/watch/alerts/{alert_id}/export"): lambda: (
            f"/watch/alerts/{ids.alert}/export?format=cef", None),
        ("GET", "/audit/entries"): lambda: ("/audit/entries?limit=5", None),
        ("POST", "/audit/verify"): lambda: ("/audit/verify", None),
        ("POST", "/audit/checkpoint"): lambda: ("/audit/checkpoint", None),
        ("GET", "/audit/proofs/inclusion"): lambda: (
            "/audit/proofs/inclusion?seq=0&tree_size=2", None),
        ("GET", "/audit/proofs/consistency"): lambda: (
            "/audit/proofs/consistency?old_size=1&new_size=2", None),
    }


def api_routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path, declared action) for every operation in the OpenAPI spec; logout last."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            action = operation.get(ACTION_KEY)
            assert action is not None, f"{method.upper()} {path} declares no action: add " \
                                       f"openapi_extra=acts(...) so it has rules"
            found.append((method.upper(), path, action))
    assert len(found) >= 36
    return sorted(found, key=lambda r: (r[1] == "/auth/logout", r[1], r[0]))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Ids, World]]:
    root = tmp_path_factory.mktemp("matrix")
    world = build_world(root, cohort=400)
    ctx = world.ctx
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    r = world.researcher
    assert r is not None
    from strongroom.access import institutions
    victim_inst = institutions.create(ctx, admin, name="Victim Institute", country="GB",
                                      jurisdiction="UK GDPR", networks=["10.0.0.0/8"])
    victim = people.create(ctx, admin, institution_id=victim_inst.id, email="v@victim.test",
                           name="Victim", roles=["researcher"], password=PASSWORD)
    victim_project = projects.create(ctx, admin, title="Victim project",
                                     purpose="A project that the matrix may close",
                                     lead_id=r.person_id, starts_on=world.clock().date(),
                                     expires_on=world.clock().date() + dt.timedelta(days=90),
                                     fields=[31])
    projects.request_export(ctx, world.sign_in(r), victim_project.project.id,
                            "so that the committee has something to decide")
    pause = pauses.set_pause(ctx, admin, "person", victim.person.id, "matrix victim")
    token = auth.issue_token(ctx, world.sign_in(r), world.project_id, ["data.analyse"], 7)
    outputs = enclave_outputs(world)
    world.platform.privacy.configure(admin, world.project_id, reason=WHY,
                                     epsilon="1")  # a DP budget
    projects.request_export(ctx, world.sign_in(r), world.project_id,
                            "registry linkage needs record-level rows")
    projects.decide_export(ctx, world.sign_in(world.staff[Role.ACCESS_COMMITTEE]),
                           world.project_id, True)
    job = world.platform.watch.declare_job(
        world.sign_in(r), world.project_id, "a one-off re-extraction for the matrix",
        record_participants=100, starts_at=world.clock(),
        ends_at=world.clock() + dt.timedelta(days=3))
    ids = Ids(world.project_id, victim_project.project.id, victim_inst.id, victim.person.id,
              pause.pause.id, token.token.id, r.person_id, *outputs, job.id)
    ids.alert = watch_alert(world, admin)
    ids.pipeline_job = world.platform.jobs.submit(world.sign_in(r), world.project_id,
                                                  JOB_CODE, "study").id
    ids.analysis_run = world.platform.runs.submit(world.sign_in(r), world.project_id, {
        "kind": "frequency", "definition": "base", "variable": "sex"}).id
    world.platform.runs.close(60)
    world.platform.close()
    yield root, ids, world


def watch_alert(world: World, admin: Principal) -> str:
    """An alert about the researcher that holds a suspension (of a person of its own, so
    that nobody the matrix signs in is paused by it), for the watch routes."""
    assert world.researcher is not None
    other = people.create(world.ctx, admin, institution_id=world.partner_id,
                          email="held@partner.test", name="Held", roles=["researcher"],
                          password=PASSWORD)
    held = pauses.set_pause(world.ctx, admin, "person", other.person.id, "matrix alert")
    found = Signal(detector="drip.coverage", severity=Severity.HIGH,
                   subject=Subject(world.researcher.person_id, world.partner_id,
                                   world.project_id),
                   title="matrix drip", reasons=["the matrix raised it"], dedup="matrix")
    with world.ctx.transaction() as db:
        alert, _ = raise_alert(db, found, world.clock())
        alert.suspensions = [held.pause.id]
    return alert.id


def enclave_outputs(world: World) -> tuple[str, str, str, str]:
    """A definition, and outputs checked, under review (two) and released."""
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    work = world.platform.outputs
    service.define(work.enclave, who, world.project_id, "base",
                   "SELECT pid, p31 AS sex, CASE WHEN p34 < 1950 THEN 'early' ELSE 'late' END "
                   "AS era, CASE WHEN p21001_i0 >= 30 THEN 'b' WHEN p31 = 0 THEN 'a' ELSE 'c' "
                   "END AS grp FROM participants")  # grp's b holds both sexes: were a and
    # c alone, one sex's each, every figure but the zeros would repeat a total and be hidden,
    # and no checker is sent a table of zeros
    safe = {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "era"}
    zeros = {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "grp"}
    checked = work.analyse(who, world.project_id, safe).output.id
    released = work.analyse(who, world.project_id, safe).output.id
    assert work.request_release(who, released).status is OutputStatus.RELEASED
    # the project's rules send small cells (its structural zeros) to two checkers
    work.set_project_rules(world.sign_in(world.staff[Role.CUSTODIAN_ADMIN]), world.project_id,
                           {"threshold": {"verdict": "review"}})
    held = []
    for _ in range(2):
        view = work.analyse(who, world.project_id, zeros)
        assert view.report.verdict is Verdict.REVIEW, view.reasons
        work.request_release(who, view.output.id, "structural zeros: group a is one sex only")
        held.append(view.output.id)
    return checked, held[0], held[1], released


def apply_state(world: World, state: str, members: dict[Role, Member]) -> None:
    with world.ctx.transaction() as db:
        today = world.clock().date()
        institutions = {m.institution_id for m in members.values()}
        if state == "institution-revoked":
            db.execute(update(Institution).where(Institution.id.in_(institutions))
                       .values(status="revoked"))
        elif state == "project-expired":
            db.execute(update(Project).values(expires_on=today - dt.timedelta(days=1)))
        elif state == "training-expired":
            db.execute(update(Training).values(expires_on=today - dt.timedelta(days=1)))
        else:
            targets: dict[str, list[str | None]] = {
                "person-paused": [m.person_id for m in members.values()],
                "platform-paused": [None],
                "institution-paused": list(institutions),
                "project-paused": [world.project_id],
            }.get(state, [])
            level = state.split("-")[0]
            for target in targets:
                db.add(Pause(id=new_id("pau"), level=PauseLevel(level).value,
                             target_id=target, reason=f"matrix {state}", set_by="test",
                             set_at=world.clock()))


@pytest.mark.parametrize("state", STATES)
def test_every_endpoint_role_and_state(state: str, template: tuple[Path, Ids, World],
                                       tmp_path: Path) -> None:
    root, ids, built = template
    shutil.copytree(root / "data", tmp_path / "data")
    clock = Clock(built.clock() + dt.timedelta(minutes=1))
    platform = Platform.open(tmp_path / "data", root / "master.key", clock=clock,
                             settings=built.ctx.settings)
    if state != WATCHED:
        platform.watch.policy = DetectorPolicy(enabled=frozenset())
    world = World(platform, clock, built.staff, built.researcher, built.outsider,
                  built.partner_id, built.project_id)
    members = {role: world.member(role) for role in Role}
    source = OUTSIDE if state == "outside-network" else INSIDE
    app = create_app(platform)
    with ExitStack() as entered:
        clients: dict[Role, tuple[TestClient, str]] = {}
        for role, member in members.items():
            # entered: one event loop serves the client's requests, not one loop per request
            client = entered.enter_context(TestClient(app, client=(source, 50000)))
            answer = client.post("/auth/login", json={
                "email": member.email, "password": PASSWORD,
                "code": code_at(member.totp_secret, clock())})
            assert answer.status_code == 200, answer.text
            clients[role] = (client, answer.json()["csrf_token"])
        apply_state(world, state, members)

        requests = examples(ids)
        checked = 0
        for method, path, declared in api_routes(app):
            if declared == PUBLIC:
                continue
            assert (method, path) in requests, f"add an example request for {method} {path}"
            action = Action(declared)
            for role in Role:
                client, csrf = clients[role]
                url, body = requests[(method, path)]()
                answer = client.request(method, url, json=body, headers={CSRF_HEADER: csrf})
                cell = f"{method} {path} as {role.value} when {state}"
                assert answer.status_code < 500, f"{cell}: {answer.status_code} {answer.text}"
                if expected_allowed(action, role, state):
                    assert answer.status_code not in (401, 403), f"{cell}: refused {answer.text}"
                else:
                    assert answer.status_code == 403, \
                        f"{cell}: {answer.status_code} {answer.text}"
                    assert answer.json()["reasons"], cell
                checked += 1
    platform.close()
    assert checked >= 35 * len(Role)


def test_the_action_table_matches_hand_checked_cells() -> None:
    """A few cells written out by hand, so the generated expectations cannot drift into nonsense."""
    assert expected_allowed(Action.INSTITUTION_REVOKE, Role.CUSTODIAN_ADMIN, "normal")
    assert not expected_allowed(Action.INSTITUTION_REVOKE, Role.SECURITY_ANALYST, "normal")
    assert expected_allowed(Action.PAUSE_SET, Role.SECURITY_ANALYST, "platform-paused")
    assert not expected_allowed(Action.PAUSE_LIFT, Role.SECURITY_ANALYST, "normal")
    assert not expected_allowed(Action.DATA_ANALYSE, Role.RESEARCHER, "training-expired")
    assert not expected_allowed(Action.DATA_ANALYSE, Role.CUSTODIAN_ADMIN, "normal")
    assert expected_allowed(Action.AUDIT_READ, Role.AUDITOR, "platform-paused")
    assert not expected_allowed(Action.PERSON_WRITE, Role.AUDITOR, "normal")
    assert not expected_allowed(Action.SELF_READ, Role.RESEARCHER, "institution-revoked")
    assert expected_allowed(Action.SELF_READ, Role.RESEARCHER, "person-paused")
