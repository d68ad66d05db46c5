"""`strongroom jobs …`: a researcher's own code, tried on dummy data at home and run next to
the real data in the enclave.

`jobs dummy` downloads the project's dummy data (its tables and dataset definitions, rebuilt
over synthetic participants) into ``dummy/``; `jobs run ACTION --dummy` runs an action of
``project.yaml`` on it, on this machine, with exactly the layout the enclave gives it (in
bubblewrap where it is installed); `jobs submit` sends the repository to run on the real data
and `jobs status` reads how it went. The last three go through the HTTP API with the
researcher's token.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from strongroom.cli.common import console, errors
from strongroom.cli.remote import Ca, Token, Url, job_outcome, remote, written

jobs_app = typer.Typer(help="Jobs: your own code, tried on dummy data here and run next to the "
                            "real data in the enclave.", no_args_is_help=True)

Repo = Annotated[Path, typer.Option(help="The repository holding project.yaml.")]
DUMMY = Path("dummy")


@jobs_app.command("dummy")
def dummy(project: Annotated[str, typer.Argument(help="The project's id (prj_…).")],
          url: Url, token: Token, ca: Ca = None,
          into: Annotated[Path, typer.Option(help="Where to put it.")] = DUMMY) -> None:
    """Download the project's dummy data (synthetic: no real participant) for `jobs run`."""
    with remote(url, token, ca) as client:
        payload = client.content(f"/projects/{project}/dummy")
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        names = [n for n in archive.namelist() if PurePosixPath(n).name == n]
        for name in names:
            (into / name).write_bytes(archive.read(name))
    held = sorted(n for n in names if n.endswith(".parquet"))
    console.print(f"dummy data in {into}/: {', '.join(held)}")


@jobs_app.command("run")
def run_local(
    action: Annotated[str, typer.Argument(help="The action of project.yaml to run.")],
    dummy_data: Annotated[bool, typer.Option(
        "--dummy", help="Run on dummy data (the only data a job runs on outside).")] = False,
    data: Annotated[Path, typer.Option(help="The dummy data: a folder of Parquet files (from "
                                            "`jobs dummy`) or the dummy zip.")] = DUMMY,
    repo: Repo = Path("."),
    sandboxed: Annotated[bool, typer.Option(
        help="Run in bubblewrap, as the enclave does (--no-sandboxed where it is not "
             "installed).")] = True,
) -> None:
    """Run ACTION (and the actions it needs) on dummy data, with the enclave's layout: the
    outputs land in output/, the plan of strongroom.sdc outputs and the log are printed."""
    from strongroom.jobs import local

    if not dummy_data:
        raise typer.BadParameter("outside the enclave a job runs on dummy data only: add "
                                 "--dummy (`strongroom jobs submit ACTION --project ID` runs "
                                 "it on the real data)")
    try:
        report = local.run(repo, action, data, sandboxed=sandboxed)
    except local.LocalError as problem:
        errors.print("refused:", markup=False)
        for reason in problem.reasons:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1) from None
    console.print(report.log, markup=False, highlight=False)
    for item in report.plan:
        console.print(f"planned: {item['output']}: {json.dumps(item['analysis'])}",
                      markup=False, highlight=False)
    for path in report.written:
        console.print(f"wrote {path}", markup=False)
    for output in report.unwritten:
        errors.print(f"not written: {output} (in the enclave a run must write every declared "
                     "output, or the job fails)", markup=False)
    if not report.ok:
        errors.print(f"failed: {report.reason}", markup=False)
        raise typer.Exit(1)


@jobs_app.command("submit")
def submit(action: Annotated[str, typer.Argument(help="The action of project.yaml to run.")],
           project: Annotated[str, typer.Option(help="The project's id (prj_…).")],
           url: Url, token: Token, ca: Ca = None, repo: Repo = Path("."),
           wait: Annotated[bool, typer.Option(help="Wait until it ends.")] = False) -> None:
    """Send the repository to run ACTION next to the real data; print the job (a job that
    failed or was refused exits 1, with its reasons on standard error)."""
    with remote(url, token, ca) as client:
        job: dict[str, Any] = client.jobs.submit(project, action, repo)
        if wait:
            try:
                job = client.jobs.wait(job["id"])
            except TimeoutError:
                errors.print(f"job {job['id']} has not ended within an hour; it goes on: "
                             f"`strongroom jobs status {job['id']}` tells how it ends",
                             markup=False)
                raise typer.Exit(1) from None
    print(json.dumps(job, indent=2))
    job_outcome(job)


@jobs_app.command("status")
def status(job: Annotated[str, typer.Argument(help="The job's id (job_…).")],
           url: Url, token: Token, ca: Ca = None) -> None:
    """A job's status, reasons and outputs (with their verdicts)."""
    with remote(url, token, ca) as client:
        found = client.jobs.get(job)
        found["verdicts"] = {name: client.outputs.get(output_id)["verdict"]
                             for name, output_id in found["outputs"].items()}
    print(json.dumps(found, indent=2))


@jobs_app.command("list")
def list_jobs(project: Annotated[str, typer.Argument(help="The project's id (prj_…).")],
              url: Url, token: Token, ca: Ca = None) -> None:
    """The project's jobs, newest first."""
    with remote(url, token, ca) as client:
        print(json.dumps(client.jobs.list(project), indent=2))


@jobs_app.command("code")
def code(job: Annotated[str, typer.Argument(help="The job's id (job_…).")],
         url: Url, token: Token, ca: Ca = None,
         out: Annotated[Path, typer.Option(help="Where to write the zip.")] = Path("code.zip")
         ) -> None:
    """The code a job ran, as submitted (its SHA-256 is in the audit log)."""
    with remote(url, token, ca) as client:
        written(out, client.jobs.code(job))
