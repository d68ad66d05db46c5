"""Every path that hands out participant data meets the transfer limits, whoever calls it: each
API route and console web page whose action reads data, and each command-line command, is
refused once its project is over its limits, by the service it calls (the gate inside
``Outputs``, ``Privacy`` and ``create_extract``), not by the route. A new route or command that
produces data without an entry here fails the test, as does one that gets through.

Guarantee under test: with the project's request rate at 0, no data route answers with data
(429, nothing run), and the same holds for a Python caller of the services.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from strongroom.access import projects
from strongroom.access.roles import Role
from strongroom.errors import RateLimited, Refused
from strongroom.extracts.service import create_extract
from strongroom.outputs.render import Format
from strongroom.server import web
from strongroom.server.app import create_app
from strongroom.server.security import ACTION_KEY, CSRF_HEADER
from tests.access_world import INSIDE, PASSWORD, World, build_world
from tests.cli_runner import leaf_commands
from tests.jobs_world import archive

pytestmark = pytest.mark.slow

DATA = {"data.analyse", "data.export", "output.download"}
JOB = base64.b64encode(archive({"project.yaml": (
    "version: 1\nactions:\n  study:\n    run: python a.py\n    outputs:\n"
    "      notes: {path: output/notes.txt, kind: text}\n"), "a.py": "pass\n"})).decode()
# routes with such an action that hand out no participant data, and why
NO_DATA = {
    "GET /projects/{project_id}/definitions": "the researcher's own definitions (name, SQL)",
    "DELETE /projects/{project_id}/definitions/{name}": "drops a definition",
    "GET /projects/{project_id}/dummy": "synthetic rows with the schema, nobody's values",
    "GET /ui/workspace/projects/{project_id}/dummy": "synthetic rows, as above",
    "GET /projects/{project_id}/schema": "the fields the project may analyse",
    "GET /projects/{project_id}/codings/{coding_id}": "a coding's codes and meanings (public "
                                                      "metadata of the dictionary)",
}
# Every command-line command, placed: DATA hands a project's data out of the platform (and
# calls the gated service), the rest say why they do not. A new command fails the test until
# it is placed here.
CLI_DATA = {"extract create": "create_extract, held by its gate (test above)"}
_ADMIN = "administers people, projects, pauses or the store; no participant value leaves"
_OVERSIGHT = "oversight of the audit log or watch alerts; no participant value leaves"
CLI_NOT_DATA = {
    **dict.fromkeys([
        "admin bootstrap", "admin institution add", "admin institution list",
        "admin institution networks", "admin institution reinstate",
        "admin institution revoke", "admin pause lift", "admin pause list", "admin pause set",
        "admin person active", "admin person add", "admin person list", "admin person role",
        "admin person show", "admin person training", "admin person unlock",
        "admin person orcid", "admin person link", "admin person unlink",
        "admin person accounts", "admin person duplicates", "admin person links",
        "admin person vetting", "admin project add", "admin project close",
        "admin project export", "admin project fields", "admin project genotypes",
        "admin project list",
        "admin project member", "admin project show", "init", "login", "logout",
        "password", "serve", "upgrade", "store check", "store recover", "store scrub",
        "keys show", "keys rotate", "backup", "restore", "dp setup",
        "dp budget", "dp mode", "outputs rules", "outputs list", "outputs show",
        "outputs review"], _ADMIN),
    **dict.fromkeys([
        "audit checkpoint", "audit show", "audit verify", "watch ack", "watch alerts",
        "watch appeal", "watch deliveries", "watch destinations", "watch export",
        "watch reopen", "watch resolve", "watch review", "watch show", "watch tail",
        "extract indicators", "attribute"], _OVERSIGHT),
    "dp query": "goes through the HTTP API with the researcher's token (held there)",
    "outputs content": "an output checker reads the bytes under review, not a researcher",
    "outputs scan": "scans a file the custodian gives it for participants' rows",
    "cohort convert": "converts the custodian's own files, outside any project",
    "cohort synth": "writes synthetic participants", "cohort ingest": "data in, not out",
    "cohort info": "counts and sizes of the store, never values",
    "genotypes ingest": "genotypes in, not out", "genotypes info": "counts and digests only",
    "risk": "a re-identification report on a file the custodian gives it",
    "anonymise": "anonymises a file the custodian gives it",
    "demo": "builds a demonstration platform on synthetic data",
    "jobs dummy": "downloads the project's dummy data (synthetic) through the HTTP API",
    "jobs run": "runs a researcher's code on dummy data on their own machine",
    "jobs submit": "goes through the HTTP API with the researcher's token (held there)",
    "jobs status": "reads a job through the HTTP API (status, reasons, the dummy run's log)",
    "jobs list": "lists a project's jobs through the HTTP API",
    "jobs code": "the researcher's own code, as submitted, through the HTTP API",
    **dict.fromkeys(["token issue", "token list", "token revoke"],
                    "a researcher's own API tokens through the HTTP API, signed in"),
    "token presets": "prints the token presets; reaches nothing",
    **dict.fromkeys([f"enclave {c}" for c in (
        "whoami", "tokens", "revoke", "projects", "project", "schema", "coding", "dummy",
        "define",
        "definitions", "drop", "analyse", "outputs", "status", "release", "withdraw",
        "download", "limits", "declared", "extract", "budget", "run")],
        "goes through the HTTP API with the researcher's token: the routes are held there"),
}


@dataclass
class Scene:
    world: World
    client: TestClient
    output: str  # a released output


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    world = build_world(tmp_path_factory.mktemp("held"), cohort=800)
    assert world.researcher is not None
    ctx = world.ctx
    me = world.sign_in(world.researcher)
    projects.request_export(ctx, me, world.project_id,
                            "registry linkage needs record-level rows")
    projects.decide_export(ctx, world.sign_in(world.staff[Role.ACCESS_COMMITTEE]),
                           world.project_id, True)
    outputs = world.platform.outputs
    outputs.define(me, world.project_id, "base", "SELECT pid, p31 AS sex FROM participants")
    view = outputs.analyse(me, world.project_id,
                           {"kind": "frequency", "definition": "base", "variable": "sex"})
    assert outputs.request_release(me, view.output.id).status.value == "released"
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000))
    answer = client.post("/auth/login", json={"email": world.researcher.email,
                                              "password": PASSWORD,
                                              "code": world.code(world.researcher)})
    assert answer.status_code == 200, answer.text
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    world.platform.watch.set_limits(admin, "project", world.project_id, {"requests": 0})
    yield Scene(world, client, view.output.id)
    world.platform.close()


def _routes(client: TestClient) -> list[str]:
    """Every API operation (the OpenAPI spec) and console page whose action reads data."""
    spec = client.app.openapi()  # type: ignore[attr-defined]
    found = [f"{method.upper()} {path}" for path, operations in spec["paths"].items()
             for method, operation in operations.items()
             if operation.get(ACTION_KEY) in DATA]
    found += [f"{method} {route.path}" for module in web.ROUTERS for route in module.routes
              if isinstance(route, APIRoute)
              and (route.openapi_extra or {}).get(ACTION_KEY) in DATA
              for method in sorted(route.methods)]
    return sorted(set(found))


def _requests(s: Scene) -> dict[str, Callable[[], Any]]:
    p, c, out = s.world.project_id, s.client, s.output
    return {
        "POST /projects/{project_id}/definitions": lambda: c.post(
            f"/projects/{p}/definitions", json={"name": "again", "sql":
                                                "SELECT pid FROM participants"}),
        "POST /projects/{project_id}/analyses": lambda: c.post(
            f"/projects/{p}/analyses", json={"analysis": {
                "kind": "frequency", "definition": "base", "variable": "sex"}}),
        "POST /projects/{project_id}/analysis-runs": lambda: c.post(
            f"/projects/{p}/analysis-runs", json={"analysis": {
                "kind": "frequency", "definition": "base", "variable": "sex"}}),
        "GET /outputs/{output_id}/download": lambda: c.get(f"/outputs/{out}/download"),
        "GET /outputs/{output_id}/table": lambda: c.get(f"/outputs/{out}/table"),
        "POST /projects/{project_id}/dp/queries": lambda: c.post(
            f"/projects/{p}/dp/queries", json={"query": {"kind": "count", "epsilon": "0.1"}}),
        "POST /projects/{project_id}/extracts": lambda: c.post(
            f"/projects/{p}/extracts", json={"format": "csv", "offset": 0, "limit": 50}),
        "POST /ui/workspace/projects/{project_id}/definitions": lambda: c.post(
            f"/ui/workspace/projects/{p}/definitions",
            data={"name": "again", "sql": "SELECT pid FROM participants"}),
        "POST /ui/workspace/projects/{project_id}/analyses": lambda: c.post(
            f"/ui/workspace/projects/{p}/analyses",
            data={"kind": "frequency", "definition": "base", "variables": "sex"}),
        "GET /ui/workspace/outputs/{output_id}/download": lambda: c.get(
            f"/ui/workspace/outputs/{out}/download"),
        "GET /ui/workspace/outputs/{output_id}/released": lambda: c.get(
            f"/ui/workspace/outputs/{out}/released"),
        "POST /projects/{project_id}/pipeline-jobs": lambda: c.post(
            f"/projects/{p}/pipeline-jobs", json={"action": "study", "code": JOB}),
        "POST /ui/workspace/projects/{project_id}/jobs": lambda: c.post(
            f"/ui/workspace/projects/{p}/jobs", data={"action": "study"},
            files={"code": ("repo.zip", base64.b64decode(JOB), "application/zip")}),
    }


def test_every_data_route_is_refused_over_the_limit_by_its_service(scene: Scene) -> None:
    routes = _routes(scene.client)
    calls = _requests(scene)
    assert len(routes) >= 10, routes  # the enumeration sees the routes
    unplaced = [r for r in routes if r not in calls and r not in NO_DATA]
    assert unplaced == [], f"routes that hand out data with no request here: {unplaced}"
    got_through = {}
    for route in routes:
        if route in NO_DATA:
            continue
        answer = calls[route]()
        text = answer.text
        # a limit of none: no wait would do, so no Retry-After (an extract, metered by the
        # rows it takes, is slowed by the requests already made: a 429)
        if answer.status_code == 403 and "however long" in text:
            assert "Retry-After" not in answer.headers
        elif answer.status_code != 429 or "try again in" not in text:
            got_through[route] = (answer.status_code, text[:200])
        elif not route.split()[1].startswith("/ui/"):
            assert int(answer.headers["Retry-After"]) >= 1
    assert got_through == {}


def test_python_callers_meet_the_same_gate(scene: Scene, tmp_path: Path) -> None:
    world = scene.world
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    outputs = world.platform.outputs
    for call in (
            lambda: outputs.define(me, world.project_id, "again", "SELECT pid FROM participants"),
            lambda: outputs.analyse(me, world.project_id, {
                "kind": "frequency", "definition": "base", "variable": "sex"}, Format("json")),
            lambda: outputs.download(me, scene.output),
            lambda: world.platform.privacy.query(me, world.project_id,
                                                 {"kind": "count", "epsilon": "0.1"}),
            lambda: create_extract(world.ctx, world.sign_in(world.staff[Role.CUSTODIAN_ADMIN]),
                                   world.project_id, "csv", tmp_path / "x.csv",
                                   store=world.platform.store, watch=world.platform.watch)):
        with pytest.raises((RateLimited, Refused)):
            call()
    assert not (tmp_path / "x.csv").exists()


def test_every_command_is_placed_and_the_data_ones_are_held() -> None:
    """``extract create`` calls create_extract, whose gate the tests above meet; every other
    command is named with the reason it hands out no project's data."""
    commands = {path.removeprefix("strongroom ") for path, _ in leaf_commands()}
    placed = set(CLI_DATA) | set(CLI_NOT_DATA)
    assert commands - placed == set(), "commands not yet placed as data or not"
    assert placed - commands == set(), "placed commands that no longer exist"
