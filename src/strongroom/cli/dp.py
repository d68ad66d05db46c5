"""`strongroom dp …`: differentially private queries, a project's DP mode and budget, and the
DP engine's environment.

`dp query` is a researcher's command and goes through the HTTP API with the researcher's token
(data is reached only from the institution's registered networks, never at the server's
console); `dp budget` and `dp mode` are the access team's and run at the console as the person
signed in with `strongroom login`, like `strongroom outputs …`; `dp setup` is the operator's.
Output is the API's JSON.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.cli.admin import admin, emit
from strongroom.cli.common import DEFAULT_DATA_DIR, DataDir, KeyFile, console, on_use, refusals
from strongroom.cli.remote import Ca, ProjectId, Token, Url, json_argument, remote, show

if TYPE_CHECKING:
    from pydantic import BaseModel

    from strongroom.privacy import dp_runtime
    from strongroom.server import privacy_schemas
else:  # imported when a command first uses them (cli/common.py on_use)
    dp_runtime = on_use("strongroom.privacy.dp_runtime")
    privacy_schemas = on_use("strongroom.server.privacy_schemas")

# dp_runtime.ENV_PYTHON, written here: reading it would import Polars to list the options
# (tests/unit/test_cli_start.py holds the two equal)
ENV_PYTHON = "STRONGROOM_DP_PYTHON"

dp_app = typer.Typer(help="Differential privacy: DP queries, a project's DP mode and budget.",
                     no_args_is_help=True)

@dp_app.command("query")
def query(
    project: ProjectId,
    spec: Annotated[str, typer.Argument(help="The query as JSON, or @file.json, e.g. "
                                             "'{\"kind\": \"count\", \"epsilon\": \"0.1\"}'.")],
    url: Url,
    token: Token,
    ca: Ca = None,
) -> None:
    """Ask a differentially private question; its ε is charged to the project's budget."""
    body = json_argument(spec, "query")
    with remote(url, token, ca) as client:
        show(client.privacy.query(project, body))


@dp_app.command("budget")
def budget(project: ProjectId, data_dir: DataDir = DEFAULT_DATA_DIR,
           key_file: KeyFile = None) -> None:
    """A project's DP mode, its budget (exact: total, spent, remaining) and latest charges."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        emit(privacy_schemas.budget_out(platform.privacy.budget_of(who, project)))


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
        result: BaseModel = privacy_schemas.budget_out(platform.privacy.configure(
            who, project, reason=reason, dp_mode=dp, epsilon=epsilon, delta=delta))
        emit(result)


@dp_app.command("setup")
def setup(environment: Annotated[Path | None, typer.Option(
        help="Where to make the engine's environment (default: inside the running one). "
             f"Elsewhere, point {ENV_PYTHON} at its bin/python.")] = None) -> None:
    """Make the DP engine's own Python environment (OpenDP pins its own Polars)."""
    where = environment or dp_runtime.default_environment()
    with refusals():
        for command in dp_runtime.setup_command(where):
            console.print(" ".join(command), highlight=False, markup=False)
            done = subprocess.run(command, check=False)  # noqa: S603 (our own commands)
            if done.returncode != 0:
                raise ValueError(f"`{' '.join(command)}` failed (exit {done.returncode})")
    console.print(f"the DP engine's environment is ready: {where}")
