"""Each token preset allows every action the commands of its how-tos need.

What a command needs is read from the code, not written here: each `strongroom …` command of a
how-to is found among the command line's commands; the client methods its function calls,
and the requests those make (following a method into the others it calls, as `jobs.wait`
polls `jobs.get`), are read from their source; and each request's action is the one its route
declares in the server's own OpenAPI spec. A `curl` with a bearer token is read the same way
from its address. A how-to that names a command a preset's token cannot run fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from strongroom.access.permissions import RULES, Action
from strongroom.access.presets import PRESETS
from strongroom.access.roles import Role
from strongroom.client import api
from strongroom.server.app import create_app
from strongroom.server.security import ACTION_KEY, PUBLIC
from tests.cli_runner import leaf_commands

HOW_TOS = Path(__file__).parents[2] / "docs" / "how-to"
Route = tuple[str, str]  # (METHOD, path with every parameter as {})
# the client's plumbing: name → the HTTP method (None: the call's first argument says)
PLUMBING: dict[str, str | None] = {"_object": None, "request": None, "_objects": "GET",
                                   "content": "GET", "post_content": "POST"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


@cache
def declared() -> dict[Route, str]:
    """Every route of the server and the action it declares."""
    found = {}
    for path, operations in create_app(None).openapi()["paths"].items():
        for method, operation in operations.items():
            found[(method.upper(), _shape(path))] = operation[ACTION_KEY]
    return found


def _text(node: ast.expr) -> str | None:
    """A path as written (an f-string's values as {}), or None if it is not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}"
                       for v in node.values)
    return None


def _plumbing(call: ast.Call, name: str) -> Route:
    method = PLUMBING[name]
    args = list(call.args)
    if method is None:
        first = args.pop(0)
        assert isinstance(first, ast.Constant), ast.unparse(call)
        method = str(first.value).upper()
    path = _text(args[0])
    assert path is not None, f"a path that is not literal: {ast.unparse(call)}"
    return method, _shape(path)


@cache
def sections() -> dict[str, type]:
    """The client's sections by attribute (``client.jobs`` → Jobs), from Client.__init__."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(api.Client.__init__)))
    found = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and isinstance(node.targets[0], ast.Attribute)):
            found[node.targets[0].attr] = getattr(api, node.value.func.id)
    return found


def _source(function: Callable[..., Any]) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


@cache
def client_method(section: str | None, name: str) -> frozenset[Route]:
    """The requests ``client.SECTION.NAME`` (or ``client.NAME``) makes."""
    owner = sections()[section] if section else api.Client
    if section is None and name in PLUMBING:
        raise AssertionError("plumbing is read where it is called")
    found: set[Route] = set()
    for call in ast.walk(_source(getattr(owner, name))):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            continue
        f = call.func
        target = f.value
        if (isinstance(target, ast.Attribute) and target.attr == "_c"
                and f.attr in PLUMBING) or (section is None and isinstance(target, ast.Name)
                                            and target.id == "self" and f.attr in PLUMBING):
            found.add(_plumbing(call, f.attr))
        elif isinstance(target, ast.Name) and target.id == "self" and hasattr(owner, f.attr):
            found |= client_method(section, f.attr)
        elif (isinstance(target, ast.Attribute) and target.attr in sections()
              and isinstance(target.value, ast.Attribute) and target.value.attr == "_c"):
            found |= client_method(target.attr, f.attr)
    return frozenset(found)


def command_routes(function: Callable[..., Any]) -> set[Route]:
    """The requests a command's function makes through its ``client``."""
    found: set[Route] = set()
    for call in ast.walk(_source(function)):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            continue
        f = call.func
        if isinstance(f.value, ast.Name) and f.value.id == "client":
            if f.attr in PLUMBING:
                found.add(_plumbing(call, f.attr))
            else:
                found |= client_method(None, f.attr)
        elif (isinstance(f.value, ast.Attribute) and isinstance(f.value.value, ast.Name)
              and f.value.value.id == "client"):
            found |= client_method(f.value.attr, f.attr)
    return found


@cache
def token_commands() -> dict[str, Callable[..., Any]]:
    """Every command that takes a project's API token: ``"enclave analyse"`` → its function."""
    return {path.removeprefix("strongroom "): command.callback
            for path, command in leaf_commands()
            if any(p.name == "token" for p in command.params)}


def _blocks(text: str) -> list[str]:
    """The shell lines of a how-to's code blocks, continuation lines joined."""
    lines: list[str] = []
    blocks: list[str] = []
    body: list[str] = []
    language: str | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, body = line[3:].strip(), []
            else:
                if language in ("bash", "sh", "console", ""):
                    blocks.append("\n".join(body) + "\n")
                language = None
        elif language is not None:
            body.append(line)
    for block in blocks:
        held = ""
        for line in block.replace("\\\n", " ").splitlines():
            held = f"{held} {line.strip()}" if held else line
            if held.count("'") % 2 == 0:  # a quoted argument may go on over lines
                lines.append(held)
                held = ""
    return lines


def how_to_routes(name: str) -> dict[str, set[Route]]:
    """What the how-to runs with a token: its commands and curls → the requests each makes."""
    text = (HOW_TOS / name).read_text()
    found: dict[str, set[Route]] = {}
    for line in _blocks(text) + re.findall(r"`(strongroom [^`]+)`", text):
        line = line.split(" #")[0].strip()
        if line.startswith("strongroom "):
            words = shlex.split(line.replace("…", "x"))[1:]
            named = " ".join(words[:2])
            if named in token_commands():
                found[named] = command_routes(token_commands()[named])
        elif line.startswith("curl") and "Bearer" in line:
            address = re.search(r"https?://[^/\s]+(/\S*)", line)
            method = re.search(r"-X (\w+)", line)
            assert address is not None, line
            route = ((method.group(1) if method else "GET"), _shape(
                re.sub(r"/[a-z]{3}_[^/\s]*", "/{}", address.group(1))))
            found[line] = {route}
    for called in set(re.findall(r"\b(sr_\w+)\(", text)) & set(r_client_routes()):
        found[called] = set(r_client_routes()[called])  # the R client's calls
    for section, method in re.findall(r"\b(?:sr|client)\.(\w+)\.(\w+)\(", text):
        if section in sections():  # the Python client: the researcher's calls in it
            routes = {r for r in client_method(section, method) if _researchers(r)}
            if routes:
                found[f"{section}.{method}"] = routes
    return found


R_CLIENT = Path(__file__).parents[2] / "clients" / "r" / "strongroom" / "R"


@cache
def r_client_routes() -> dict[str, frozenset[Route]]:
    """Each function of the R client (clients/r/strongroom) → the requests it makes: its own
    (``sr_request(client, "METHOD", "/path")``, ``bytes(client, "/path")`` a GET) and those of
    the client's functions it calls (``sr_job_wait`` polls ``sr_job``)."""
    text = "\n".join(p.read_text() for p in sorted(R_CLIENT.glob("*.R")))
    starts = [(m.group(1), m.start()) for m in
              re.finditer(r"^`?([\w.%|]+)`? <- function", text, re.MULTILINE)]
    bodies = {name: text[at:(starts[i + 1][1] if i + 1 < len(starts) else len(text))]
              for i, (name, at) in enumerate(starts)}
    path = r'(?:sprintf\()?"(/[^"]*)"'
    own: dict[str, set[Route]] = {}
    for name, body in bodies.items():
        found = {(m, _shape(p.replace("%s", "{}"))) for m, p in
                 re.findall(r'sr_request\(client, "(\w+)",\s*' + path, body)}
        found |= {("GET", _shape(p.replace("%s", "{}"))) for p in
                  re.findall(r"bytes\(client, " + path, body)}
        own[name] = found
    reach: dict[str, frozenset[Route]] = {}
    for name in bodies:
        routes, seen, todo = set(own[name]), {name}, [name]
        while todo:
            for called in re.findall(r"\b(sr_\w+)\(", bodies[todo.pop()]):
                if called in bodies and called not in seen:
                    seen.add(called)
                    todo.append(called)
                    routes |= own[called]
        reach[name] = frozenset(routes)
    return reach


def test_the_r_client_is_read_to_its_requests() -> None:
    """The reading of the R client finds, for each call a researcher makes, requests the
    server serves (and the wait polls the job)."""
    routes = r_client_routes()
    for name in ("sr_define", "sr_analyse", "sr_request_release", "sr_table", "sr_job_submit",
                 "sr_job_wait", "sr_dummy"):
        assert routes[name], name
        assert routes[name] <= set(declared()), (name, routes[name] - set(declared()))
    assert ("GET", "/pipeline-jobs/{}") in routes["sr_job_wait"]


def _researchers(route: Route) -> bool:
    """Whether a route is a researcher's (a how-to for researchers quotes the custodian's
    calls too, e.g. `client.privacy.configure`, made signed in)."""
    action = declared()[route]
    return action == PUBLIC or Role.RESEARCHER in RULES[Action(action)].roles


def test_every_command_with_a_token_is_read_to_its_requests() -> None:
    """The reading above finds, for each token-taking command, requests the server serves."""
    assert {"jobs submit", "enclave analyse", "dp query"} <= set(token_commands())
    for name, function in token_commands().items():
        routes = command_routes(function)
        assert routes, f"strongroom {name}: no request found in its code"
        assert routes <= set(declared()), (name, routes - set(declared()))
    # jobs submit --wait polls the job: project.read, the action the old how-to left out
    assert ("GET", "/pipeline-jobs/{}") in command_routes(token_commands()["jobs submit"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_allows_every_action_its_how_tos_commands_need(preset: str) -> None:
    held = {a.value for a in PRESETS[preset].actions}
    for how_to in PRESETS[preset].how_tos:
        runs = how_to_routes(how_to)
        assert runs, f"{how_to} runs nothing with a token"
        for command, routes in runs.items():
            for route in routes:
                action = declared()[route]
                assert action == PUBLIC or action in held, (
                    f"{how_to}: `{command}` needs {action} ({route}), which the {preset} "
                    f"preset does not hold")
                assert action == PUBLIC or RULES[Action(action)].by_token, (how_to, command)


def test_the_how_tos_name_a_preset_for_their_token() -> None:
    """Each how-to whose commands need a token says which preset to issue it with, and the
    command that issues it parses."""
    for preset in PRESETS.values():
        for how_to in preset.how_tos:
            text = (HOW_TOS / how_to).read_text()
            assert f"--preset {preset.name}" in text, (how_to, preset.name)


def test_the_read_preset_reads_and_changes_nothing() -> None:
    held = PRESETS["read"].actions
    assert held == {Action.SELF_READ, Action.PROJECT_READ, Action.OUTPUT_READ}
    for name in ("enclave whoami", "enclave projects", "enclave outputs", "enclave status",
                 "jobs status", "jobs list", "enclave limits"):
        for route in command_routes(token_commands()[name]):
            assert declared()[route] in {a.value for a in held}, (name, route)
