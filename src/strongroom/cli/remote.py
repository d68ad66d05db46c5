"""What a researcher's commands share: the server, the token, and refusals printed.

Researchers reach the data from their institution's registered networks, never at the
server's console, so their commands (`enclave`, `jobs`, `dp query`) go through the HTTP API
with a project's API token, exactly as the Python client does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from strongroom.cli.common import console, errors
from strongroom.client import Client, StrongroomError

Url = Annotated[str, typer.Option(envvar="STRONGROOM_URL",
                                  help="The Strongroom server, e.g. https://sr.example.org.")]
Token = Annotated[str, typer.Option(envvar="STRONGROOM_TOKEN",
                                    help="Your API token for the project (srt_…).")]
Ca = Annotated[Path | None, typer.Option(envvar="STRONGROOM_CA", help=(
    "The server's CA or self-signed certificate file (default: the system's CAs)."))]
ProjectId = Annotated[str, typer.Argument(help="The project's id (prj_…).")]


@contextmanager
def remote(url: str, token: str | None, ca: Path | None) -> Iterator[Client]:
    """A client for the server; a refusal is printed with every reason, and exits 1."""
    try:
        with Client(url, token=token, verify=ca or True) as client:
            yield client
    except StrongroomError as exc:
        errors.print(f"refused ({exc.status}):", markup=False)
        for reason in exc.reasons:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1) from None


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
