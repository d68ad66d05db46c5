"""`strongroom outputs …`: the output checkers' queue, reviews, rules and the raw-row scanner.

The same services as the API's /outputs routes, as the person signed in with `strongroom login`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml

from strongroom.cli.admin import admin, emit
from strongroom.cli.common import (
    DEFAULT_DATA_DIR,
    DataDir,
    KeyFile,
    console,
    on_use,
    open_platform,
    refusals,
)
from strongroom.errors import Refused
from strongroom.outputs.states import OutputStatus

if TYPE_CHECKING:
    from strongroom.access.context import Principal
    from strongroom.outputs import requests
    from strongroom.outputs import rules as shipped_rules
    from strongroom.server import workbench_schemas
else:  # imported when a command first uses them (cli/common.py on_use)
    requests = on_use("strongroom.outputs.requests")
    shipped_rules = on_use("strongroom.outputs.rules")
    workbench_schemas = on_use("strongroom.server.workbench_schemas")

outputs_app = typer.Typer(help="Outputs: the review queue, verdicts, reviews, rules, the "
                          "raw-row scanner.", no_args_is_help=True)

OutputId = Annotated[str, typer.Argument(help="The output's id (out_…).")]


@outputs_app.command("list")
def list_outputs(
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
    project: Annotated[str | None, typer.Option(help="Only this project's outputs.")] = None,
    status: Annotated[OutputStatus | None, typer.Option(help="Only outputs in this state.")]
    = None,
    queue: Annotated[bool, typer.Option(help="Only outputs waiting for an output checker.")]
    = False,
) -> None:
    """List the outputs you may see, newest first."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        listed = requests.list_outputs(platform.access, who, project, status, queue=queue)
        emit([workbench_schemas.output_out(v) for v in listed])


@outputs_app.command("show")
def show(output_id: OutputId, data_dir: DataDir = DEFAULT_DATA_DIR,
         key_file: KeyFile = None) -> None:
    """An output's verdict, every finding with its reason, its reviews and its SHA-256."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        emit(workbench_schemas.output_out(requests.read(platform.access, who, output_id)))


# reviewing reads the bytes under review: a data action, taken only from the checker's
# institution's registered networks (access/policies.py), which a console session has none of
AT_THE_CONSOLE = ("reviewing an output reads the bytes under review, which is done from your "
                  "institution's registered network, never at the server's console: open the "
                  "output in the web console (Output checks), or use the API "
                  "(GET /outputs/{id}/content, POST /outputs/{id}/review; "
                  "client.outputs.content and client.outputs.review)")


def _from_a_network(who: Principal) -> None:
    if who.source is None:  # signed in at this console (`strongroom login`)
        raise Refused(AT_THE_CONSOLE)


@outputs_app.command("content")
def content(output_id: OutputId, out: Annotated[Path, typer.Option(
                help="Where to write the bytes under review.")],
            data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Write the bytes of an output waiting for review, to review them (from a registered
    network only: at the server's console it says where to review instead)."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        _from_a_network(who)
        found = requests.content_for_review(platform.access, who, output_id)
    out.write_bytes(found.payload)
    console.print(f"wrote {len(found.payload):,} bytes ({found.media_type}) to {out}")


@outputs_app.command("review")
def review(
    output_id: OutputId,
    approve: Annotated[bool, typer.Option("--approve/--reject",
                                          help="Approve or reject the output.")],
    reason: Annotated[str, typer.Option(help="Why (required to reject).")] = "",
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Approve or reject an output under review (two different checkers release it; from a
    registered network only: at the server's console it says where to review instead)."""
    with admin(data_dir, key_file) as (platform, who):
        _from_a_network(who)
        emit(workbench_schemas.output_out(platform.outputs.review(who, output_id, approve, reason)))


@outputs_app.command("scan")
def scan(file: Annotated[Path, typer.Argument(help="A CSV, TSV, Parquet, JSON or text file.")],
         data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Look for participant-level rows or participant IDs in any file (exit 1 if found)."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        findings = platform.outputs.scan_file(file.read_bytes(), file.name)
    print(json.dumps([f.as_dict() for f in findings], indent=2))
    if findings:
        raise typer.Exit(1)


@outputs_app.command("rules")
def rules(
    project: Annotated[str | None, typer.Option(
        help="Show (or with --set, tighten) this project's rules.")] = None,
    set_file: Annotated[Path | None, typer.Option(
        "--set", help="A YAML file of overrides; a project may only tighten the rules.")]
    = None,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """The disclosure rules and thresholds in force (shipped, or a project's)."""
    if project is None:
        if set_file is not None:
            raise typer.BadParameter("--set needs --project: the shipped rules do not change")
        emit(shipped_rules.load_rules().as_dict())
        return
    with admin(data_dir, key_file, changes_state=set_file is not None) as (platform, who):
        if set_file is not None:
            overrides = yaml.safe_load(set_file.read_text()) or {}
            emit(platform.outputs.set_project_rules(who, project, overrides).as_dict())
        else:
            emit(platform.outputs.rules_for(project).as_dict())
