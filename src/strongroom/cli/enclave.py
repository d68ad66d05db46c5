"""`strongroom enclave …`: a researcher's work in the enclave, at the command line.

The same verbs as the Python client (`Client.enclave`, `.outputs`, `.transfers`), through the
HTTP API with the project's API token (``STRONGROOM_URL``, ``STRONGROOM_TOKEN`` and, for a
self-signed server, ``STRONGROOM_CA``): see what you may use, take the dummy data, define
populations, analyse, read verdicts, ask for release, download the released figures as a
labelled table. Answers are the API's JSON; refusals print every reason and exit 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.common import PlainStages, console, errors, stage_report
from strongroom.cli.remote import (
    Ca,
    ProjectId,
    Token,
    Url,
    json_argument,
    output_outcome,
    remote,
    show,
    written,
)
from strongroom.progress import Stages

enclave_app = typer.Typer(help="Your work in the enclave, over the API with your token: "
                               "schema, dummy data, definitions, analyses, verdicts, release, "
                               "downloads.", no_args_is_help=True)

OutputId = Annotated[str, typer.Argument(help="The output's id (out_…).")]


class As(StrEnum):
    """What `download` writes: the released record itself, or it as a labelled table."""

    RECORD = "record"
    CSV = "csv"
    PARQUET = "parquet"


def _text(value: str) -> str:
    """SQL as text, or ``@path`` to a file holding it."""
    return Path(value[1:]).read_text() if value.startswith("@") else value


@enclave_app.command("whoami")
def whoami(url: Url, token: Token, ca: Ca = None) -> None:
    """Who the token is, for which project, and what it may do."""
    with remote(url, token, ca) as client:
        show(client.me())


@enclave_app.command("tokens")
def tokens(url: Url, token: Token, ca: Ca = None) -> None:
    """Your API tokens (never their secrets): what each allows, and until when."""
    with remote(url, token, ca) as client:
        show(client.tokens.list())


@enclave_app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (tok_…).")],
           url: Url, token: Token, ca: Ca = None) -> None:
    """Revoke one of your API tokens (this one too: it stops working at once)."""
    with remote(url, token, ca) as client:
        show(client.tokens.revoke(token_id))


@enclave_app.command("projects")
def list_projects(url: Url, token: Token, ca: Ca = None) -> None:
    """The projects you may see."""
    with remote(url, token, ca) as client:
        show(client.projects.list())


@enclave_app.command("project")
def project(project_id: ProjectId, url: Url, token: Token, ca: Ca = None) -> None:
    """One project: its state, members, fields and dates."""
    with remote(url, token, ca) as client:
        show(client.projects.get(project_id))


@enclave_app.command("schema")
def schema(project_id: ProjectId, url: Url, token: Token, ca: Ca = None) -> None:
    """The granted fields: their ids, names, types, units, instances, arrays and codings (a
    small coding's codes and meanings in full; `coding` looks up a larger one)."""
    with remote(url, token, ca) as client:
        show(client.projects.schema(project_id))


@enclave_app.command("coding")
def coding(project_id: ProjectId,
           coding_id: Annotated[int, typer.Argument(help="A coding a granted field uses.")],
           url: Url, token: Token, ca: Ca = None,
           search: Annotated[str | None, typer.Option(
               help="Only codes whose code or meaning holds this (any case).")] = None,
           offset: Annotated[int, typer.Option(help="Codes to skip.")] = 0,
           limit: Annotated[int, typer.Option(help="Codes to show (1 to 1000).")] = 100,
           ) -> None:
    """The codes and meanings of a coding (an ICD-10 chapter, a medication list …)."""
    with remote(url, token, ca) as client:
        show(client.projects.coding(project_id, coding_id, search=search, offset=offset,
                                    limit=limit))


@enclave_app.command("dummy")
def dummy(project_id: ProjectId, url: Url, token: Token, ca: Ca = None,
          out: Annotated[Path, typer.Option(help="Where to write the zip.")] = Path(
              "dummy.zip")) -> None:
    """The project's dummy data (synthetic participants, exactly its tables and definitions)."""
    with remote(url, token, ca) as client:
        written(out, client.enclave.dummy(project_id), " (dummy data)")


@enclave_app.command("define")
def define(project_id: ProjectId,
           name: Annotated[str, typer.Argument(help="The definition's name (a-z, 0-9, _).")],
           sql: Annotated[str, typer.Argument(help="One SELECT returning pid, or @file.sql.")],
           url: Url, token: Token, ca: Ca = None) -> None:
    """Define an analysis population; you get its columns and whether it is large enough."""
    with remote(url, token, ca) as client:
        found = client.enclave.define(project_id, name, _text(sql))
    show(found)
    if found.get("size_ok") is False:  # kept, as asked; its analyses will be refused
        errors.print(f"{name} holds too few participants to analyse: widen it (its analyses "
                     "are refused until then)", markup=False)


@enclave_app.command("definitions")
def definitions(project_id: ProjectId, url: Url, token: Token, ca: Ca = None) -> None:
    """The project's dataset definitions."""
    with remote(url, token, ca) as client:
        show(client.enclave.definitions(project_id))


@enclave_app.command("drop")
def drop(project_id: ProjectId, name: Annotated[str, typer.Argument(help="The definition.")],
         url: Url, token: Token, ca: Ca = None) -> None:
    """Drop a dataset definition."""
    with remote(url, token, ca) as client:
        client.enclave.drop(project_id, name)
    console.print(f"dropped {name}")


class _PlainOnStderr(PlainStages):
    """Plain progress lines on standard error: standard output carries the answer's JSON
    (``strongroom enclave analyse … | jq`` reads it alone)."""

    def _line(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=sys.stderr, flush=True)


@contextmanager
def analysis_progress() -> Iterator[Stages]:
    """A run's progress as it is polled: Rich on a terminal (standard error), else plain
    flushed lines on standard error (a log, a pipe)."""
    if errors.is_terminal:
        with stage_report("analyse", plain=False) as stages:
            yield stages
    else:
        yield _PlainOnStderr("analyse")


class RunShown:
    """A submitted analysis's polls as stages (cli/common.py): one stage per step of its
    schedule, its bar the elapsed share of that step. The share is the time's alone (the
    server never shows how far the computation itself has gone: time is an output)."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self.step: int | None = None
        self.shown = 0
        self.started = time.monotonic()

    def __call__(self, run: dict[str, Any]) -> None:
        if run.get("status") != "running":
            if self.step is not None:
                self.stages.end(time.monotonic() - self.started)
                self.step = None
            return
        step, share = run.get("step"), run.get("progress")
        if step != self.step or self.step is None:
            if self.step is not None:
                self.stages.end(time.monotonic() - self.started)
            self.step, self.shown = step, 0
            at = run.get("step_at") or 0.0
            if share is None:
                self.stages.begin(f"run {run.get('id')}: running")
            elif not step:
                self.stages.begin(f"run {run.get('id')}: answered at its floor, {at:.1f} s "
                                  "after submission if done by then", total=100)
            else:
                self.stages.begin(f"run {run.get('id')}: past its floor, answered at step "
                                  f"{step}, {at:.1f} s after submission", total=100)
        if share is not None:
            percent = int(100 * float(share))
            if percent > self.shown:
                self.stages.advance(percent - self.shown)
                self.shown = percent


@enclave_app.command("analyse")
def analyse(project_id: ProjectId,
            spec: Annotated[str, typer.Argument(help=(
                "The analysis as JSON or @file.json, e.g. '{\"kind\": \"crosstab\", "
                "\"definition\": \"adults\", \"rows\": \"sex\", \"columns\": \"smoking\"}' "
                "(docs/reference/analyses.md)."))],
            url: Url, token: Token, ca: Ca = None,
            release: Annotated[bool, typer.Option(
                help="Ask for release at once if the verdict allows it.")] = False,
            table: Annotated[Path | None, typer.Option(
                help="Ask for release at once and, once released, write the output as a "
                     "labelled table to this file (Parquet for .parquet, else CSV).")] = None,
            wait: Annotated[bool, typer.Option(
                help="Wait for the answer, showing its progress (--no-wait: print the "
                     "submitted run and return; read it with `strongroom enclave run RUN_ID`).")]
            = True,
            at_once: Annotated[bool, typer.Option(
                "--at-once", help="One request held open until the answer, as before runs "
                                  "were polled (a proxy's timeout or a laptop's sleep can "
                                  "cut it; by default it is submitted and polled).")]
            = False) -> None:
    """Run an analysis inside; the answer is its verdict and reasons, never its values
    (refused, or blocked by the check: exit 1; held for review: said on standard error,
    exit 0). It is submitted and polled, with its progress through its schedule shown."""
    asked = json_argument(spec, "analysis")
    with remote(url, token, ca) as client:
        if not wait:
            show(client.enclave.analyse(project_id, asked, wait=False))
            return
        if at_once:
            found = client.enclave.analyse_now(project_id, asked)
        else:
            with analysis_progress() as stages:
                found = client.enclave.analyse(project_id, asked, progress=RunShown(stages))
        if (release or table) and found["verdict"] in ("release", "release_with_suppression"):
            found = client.outputs.request_release(found["id"])
        labelled = None
        if table is not None and found.get("status") == "released":
            labelled = client.outputs.table(
                found["id"], "parquet" if table.suffix == ".parquet" else "csv")
    show(found)
    if labelled is not None and table is not None:
        written(table, labelled, " (the labelled table)", to=errors)
        return
    if table is not None:
        errors.print(f"not released (verdict {found.get('verdict')}, status "
                     f"{found.get('status')}): nothing was written to {table}", markup=False)
    output_outcome(found)  # blocked: exit 1; held for review: said, exit 0
    if table is not None:
        raise typer.Exit(1)


@enclave_app.command("run")
def run(run_id: Annotated[str, typer.Argument(help="The analysis run's id (run_…).")],
        url: Url, token: Token, ca: Ca = None,
        wait: Annotated[bool, typer.Option(
            help="Wait for its answer, showing its progress (--no-wait: its state now).")]
        = False) -> None:
    """A submitted analysis's run: running (its progress), done (its output), refused,
    failed or lost (with the reasons; exit 1)."""
    with remote(url, token, ca) as client:
        if wait:
            with analysis_progress() as stages:
                found = client.enclave.wait(run_id, progress=RunShown(stages))
            show(found)
            output_outcome(found)
            return
        state = client.enclave.run(run_id)
    show(state)
    problem = state.get("problem")
    if isinstance(problem, dict):
        errors.print(f"refused ({problem.get('status')}):", markup=False)
        for reason in problem.get("reasons") or []:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1)


@enclave_app.command("outputs")
def outputs(url: Url, token: Token, ca: Ca = None,
            project_id: Annotated[str | None, typer.Option(
                "--project", help="Only this project's outputs.")] = None,
            status: Annotated[str | None, typer.Option(
                help="Only outputs in this state (checked, requested, released, …).")]
            = None) -> None:
    """Your outputs, newest first, with their verdicts."""
    with remote(url, token, ca) as client:
        show(client.outputs.list(project_id, status))


@enclave_app.command("status")
def status(output_id: OutputId, url: Url, token: Token, ca: Ca = None) -> None:
    """An output's state, verdict and every finding with its reason."""
    with remote(url, token, ca) as client:
        show(client.outputs.get(output_id))


@enclave_app.command("release")
def release(output_id: OutputId, url: Url, token: Token, ca: Ca = None,
            justification: Annotated[str | None, typer.Option(
                help="Why it should leave (output checkers read it when they must decide).")]
            = None) -> None:
    """Ask for release: at once if the check allows it, else held for two output checkers
    (said on standard error, exit 0); blocked by the check exits 1."""
    with remote(url, token, ca) as client:
        found = client.outputs.request_release(output_id, justification)
    show(found)
    output_outcome(found)


@enclave_app.command("withdraw")
def withdraw(output_id: OutputId, url: Url, token: Token, ca: Ca = None) -> None:
    """Withdraw a request for release."""
    with remote(url, token, ca) as client:
        show(client.outputs.withdraw(output_id))


@enclave_app.command("download")
def download(output_id: OutputId, url: Url, token: Token, ca: Ca = None,
             as_: Annotated[As, typer.Option(
                 "--as", help="record: the released bytes as checked; csv or parquet: them "
                              "as a labelled table.")] = As.CSV,
             out: Annotated[Path | None, typer.Option(
                 help="Where to write it (default: standard output for text, "
                      "OUTPUT.parquet for Parquet).")] = None) -> None:
    """Download a released output (only released outputs leave)."""
    with remote(url, token, ca) as client:
        payload = (client.outputs.download(output_id) if as_ is As.RECORD
                   else client.outputs.table(output_id, as_.value))
    if out is None and as_ is As.PARQUET:
        out = Path(f"{output_id}.parquet")
    if out is None:
        print(payload.decode("utf-8"), end="")
        return
    written(out, payload)


@enclave_app.command("limits")
def limits(project_id: ProjectId, url: Url, token: Token, ca: Ca = None) -> None:
    """The transfer limits that hold for your transfers in the project: the project's, your
    own and your institutions' (yours and the lead's, the smallest of each)."""
    with remote(url, token, ca) as client:
        show(client.transfers.limits(project_id))


@enclave_app.command("declared")
def declared(project_id: ProjectId, url: Url, token: Token, ca: Ca = None) -> None:
    """The large transfers declared for the project, and whether they were approved."""
    with remote(url, token, ca) as client:
        show(client.transfers.declared(project_id))


@enclave_app.command("extract")
def extract(project_id: ProjectId, url: Url, token: Token, ca: Ca = None,
            out: Annotated[Path, typer.Option(help="Where to write the extract.")] = Path(
                "extract.csv"),
            format: Annotated[str, typer.Option(help="csv or parquet.")] = "csv",
            offset: Annotated[int, typer.Option(min=0, help="First participant of a page.")]
            = 0,
            limit: Annotated[int | None, typer.Option(min=1, help="Participants in the page.")]
            = None) -> None:
    """A traceable record-level extract (only with the project's export permission; its
    participants count against the 30-day limit before anything is made)."""
    with remote(url, token, ca) as client:
        written(out, client.transfers.extract(project_id, format, offset, limit),
                "; it is fingerprinted to you")


@enclave_app.command("budget")
def budget(project_id: ProjectId, url: Url, token: Token, ca: Ca = None) -> None:
    """The project's differential-privacy budget (`strongroom dp query` spends it)."""
    with remote(url, token, ca) as client:
        show(client.privacy.budget(project_id))

