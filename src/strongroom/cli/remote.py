"""What a researcher's commands share: the server, the token, and refusals printed.

Researchers reach the data from their institution's registered networks, never at the
server's console, so their commands (`enclave`, `jobs`, `dp query`) go through the HTTP API
with a project's API token, exactly as the Python client does.

Exit codes (docs/reference/cli.md): 0 when what was asked was done, or is held for review by
output checkers (a line on standard error says so: that is not a failure, it waits for
people); 1 when it was refused, whether the server refused the request or answered with a
refusal (a job that failed or was refused, an output the check blocked or a checker
rejected); 2 for a command line that does not parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from strongroom.cli.common import console, errors

if TYPE_CHECKING:
    from strongroom.client import Client

Url = Annotated[str, typer.Option(envvar="STRONGROOM_URL",
                                  help="The Strongroom server, e.g. https://sr.example.org.")]
Token = Annotated[str, typer.Option(envvar="STRONGROOM_TOKEN",
                                    help="Your API token for the project (srt_…).")]
Ca = Annotated[Path | None, typer.Option(envvar="STRONGROOM_CA", help=(
    "The server's CA or self-signed certificate file (default: the system's CAs)."))]
ProjectId = Annotated[str, typer.Argument(help="The project's id (prj_…).")]


@contextmanager
def remote(url: str, token: str | None, ca: Path | None) -> Iterator[Client]:
    """A client for the server; a refusal is printed with every reason, and exits 1. The
    client (httpx) is imported here, when a command runs: not to list the options."""
    from strongroom.client import Client, StrongroomError

    try:
        with Client(url, token=token, verify=ca or True) as client:
            yield client
    except StrongroomError as exc:
        errors.print(f"refused ({exc.status}):", markup=False)
        for reason in exc.reasons:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1) from None


HELD = "held for review"
REFUSED_JOB = frozenset({"failed", "refused"})
# an output's state that means nothing of it leaves (the check blocked it; a checker rejected)
REFUSED_OUTPUT = frozenset({"blocked", "rejected"})


def job_outcome(job: dict[str, Any]) -> None:
    """After a job is printed: a failed or refused one says why on standard error, exit 1."""
    if job.get("status") in REFUSED_JOB:
        errors.print(f"job {job.get('id')} {job.get('status')}:", markup=False)
        for reason in job.get("reasons") or []:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1)


def output_outcome(output: dict[str, Any]) -> None:
    """After an output is printed: blocked or rejected exits 1 with the check's reasons; a
    review verdict, or a request waiting for checkers, says so and exits 0."""
    ident, status, verdict = output.get("id"), output.get("status"), output.get("verdict")
    if status in REFUSED_OUTPUT or verdict == "block":
        why = "blocked by the automated check" if status != "rejected" else \
            "rejected by an output checker"
        errors.print(f"output {ident} {why}: nothing of it leaves", markup=False)
        for finding in output.get("findings") or []:
            if finding.get("verdict") == "block":
                errors.print(f"  - {finding.get('reason')}", markup=False)
        for review in output.get("reviews") or []:
            if review.get("decision") == "reject":
                errors.print(f"  - {review.get('reason')}", markup=False)
        raise typer.Exit(1)
    if status in ("under_review", "approved_once"):
        errors.print(f"output {ident} is {HELD}: two output checkers decide its release "
                     f"(`strongroom enclave status {ident}` shows their decision)",
                     markup=False)
    elif verdict == "review" and status == "checked":
        errors.print(f"output {ident}: the check asks for review; ask for its release with "
                     f"a justification (`strongroom enclave release {ident} --justification "
                     f"TEXT`) and two output checkers decide", markup=False)


def show(value: Any) -> None:
    """The API's answer as JSON on standard output (for people and for scripts)."""
    print(json.dumps(value, indent=2, default=str))


def json_argument(text: str, what: str) -> dict[str, Any]:
    """A JSON object given as text, or ``@path`` to a JSON file."""
    source = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        found = json.loads(source)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"the {what} is not JSON ({exc.msg}); give it as JSON text "
                                 f"or @file.json") from None
    if not isinstance(found, dict):
        raise typer.BadParameter(f"the {what} must be a JSON object")
    return found


def written(out: Path, payload: bytes, note: str = "", to: Console = console) -> None:
    """Write bytes the API answered to ``out`` and say so (on ``to``: standard error where
    standard output carries the API's JSON)."""
    out.write_bytes(payload)
    to.print(f"wrote {len(payload):,} bytes to {out}{note}", markup=False)
