"""`strongroom dp …`: differentially private queries, a project's DP mode and budget, and the
DP engine's environment.

`dp query` is a researcher's command and goes through the HTTP API with the researcher's token
(data is reached only from the institution's registered networks, never at the server's
console); `dp budget` and `dp mode` are the access team's and run at the console as the person
signed in with `strongroom login`, like `strongroom outputs …`; `dp setup` is the operator's.
Output is the API's JSON.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from strongroom.cli.admin import admin, emit
from strongroom.cli.common import DEFAULT_DATA_DIR, DataDir, KeyFile, console, errors, refusals
from strongroom.client import Client, StrongroomError
from strongroom.privacy import dp_runtime
from strongroom.server.privacy_schemas import budget_out

dp_app = typer.Typer(help="Differential privacy: DP queries, a project's DP mode and budget.",
                     no_args_is_help=True)

ProjectId = Annotated[str, typer.Argument(help="The project's id (prj_…).")]


def _query_of(text: str) -> dict[str, Any]:
    """A query as JSON text, or ``@path`` to a JSON file."""
    source = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        found = json.loads(source)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"the query is not JSON ({exc.msg}); give it as JSON text or "
                                 f"@file.json") from None
    if not isinstance(found, dict):
        raise typer.BadParameter("the query must be a JSON object")
    return found


@dp_app.command("query")
def query(
    project: ProjectId,
    spec: Annotated[str, typer.Argument(help="The query as JSON, or @file.json, e.g. "
                                             "'{\"kind\": \"count\", \"epsilon\": \"0.1\"}'.")],
    url: Annotated[str, typer.Option(envvar="STRONGROOM_URL",
                                     help="The Strongroom server, e.g. https://sr.example.org.")],
    token: Annotated[str, typer.Option(envvar="STRONGROOM_TOKEN",
                                       help="Your API token for the project (srt_…).")],
    ca: Annotated[Path | None, typer.Option(envvar="STRONGROOM_CA", help=(
        "The server's CA or self-signed certificate file (default: the system's CAs)."))]
    = None,
) -> None:
    """Ask a differentially private question; its ε is charged to the project's budget."""
    body = _query_of(spec)
    try:
        with Client(url, token=token, verify=ca or True) as client:
            print(json.dumps(client.privacy.query(project, body), indent=2))
    except StrongroomError as exc:
        errors.print(f"refused ({exc.status}):", markup=False)
        for reason in exc.reasons:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1) from None


@dp_app.command("budget")
def budget(project: ProjectId, data_dir: DataDir = DEFAULT_DATA_DIR,
           key_file: KeyFile = None) -> None:
    """A project's DP mode, its budget (exact: total, spent, remaining) and latest charges."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        emit(budget_out(platform.privacy.budget_of(who, project)))


@dp_app.command("mode")
def mode(
    project: ProjectId,
    dp: Annotated[bool | None, typer.Option(
        "--dp/--exact", help="DP mode (exact analyses refused) or exact analyses allowed.")]
    = None,
    epsilon: Annotated[str | None, typer.Option(
        help="The project's total ε budget, exact (\"1\", \"0.5\", \"1/3\").")] = None,
    delta: Annotated[str | None, typer.Option(
        help="The project's total δ budget (every query offered today spends δ 0).")] = None,
    reason: Annotated[str, typer.Option(
        help="Why (at least 10 characters): audited and shown to the security team.")] = "",
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Set a project's DP mode and budget totals (access committee or custodian admin),
    within the platform's ceiling. --exact on a DP project ends its DP history for good."""
    with admin(data_dir, key_file) as (platform, who):
        result: BaseModel = budget_out(platform.privacy.configure(
            who, project, reason=reason, dp_mode=dp, epsilon=epsilon, delta=delta))
        emit(result)


@dp_app.command("setup")
def setup(environment: Annotated[Path | None, typer.Option(
        help="Where to make the engine's environment (default: inside the running one). "
             f"Elsewhere, point {dp_runtime.ENV_PYTHON} at its bin/python.")] = None) -> None:
    """Make the DP engine's own Python environment (OpenDP pins its own Polars)."""
    where = environment or dp_runtime.default_environment()
    with refusals():
        for command in dp_runtime.setup_command(where):
            console.print(" ".join(command), highlight=False)
            done = subprocess.run(command, check=False)  # noqa: S603 (our own commands)
            if done.returncode != 0:
                raise ValueError(f"`{' '.join(command)}` failed (exit {done.returncode})")
    console.print(f"the DP engine's environment is ready: {where}")
