"""`strongroom audit …`: verify the log, export checkpoints, read entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.access import oversight
from strongroom.cli.common import DEFAULT_DATA_DIR, DataDir, KeyFile, console, errors, refusals
from strongroom.platform import Platform

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _anchors(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not an exported checkpoint (JSON): {exc}") from None
    return out


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[list[Path] | None, typer.Option(
        help="An exported checkpoint kept outside Strongroom (repeat).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Check every entry against the signed checkpoints; exit 1 at the first bad entry."""
    with refusals(), Platform.open(data_dir, key_file) as platform:
        report = oversight.verify_log(platform.access, None, platform.witness,
                                      _anchors(anchor or []))
    if as_json:
        print(json.dumps({"ok": report.ok, "entries": report.entries,
                          "checkpoints": report.checkpoints, "kind": report.kind,
                          "first_bad_seq": report.first_bad_seq, "problem": report.problem,
                          "seconds": round(report.seconds, 3)}, indent=2))
    else:
        (console if report.ok else errors).print(report.summary(), markup=False)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write it to this file.")
                   ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Sign the log now and export the checkpoint, to keep (anchor) outside Strongroom."""
    with refusals(), Platform.open(data_dir, key_file) as platform:
        exported = oversight.export_checkpoint(platform.access, None)
    text = json.dumps(exported, indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"checkpoint of {exported['tree_size']} entries written to {out}")


@audit_app.command("show")
def audit_show(
    start: Annotated[int, typer.Option(min=0, help="First entry.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=oversight.MAX_PAGE, help="How many.")
                     ] = 50,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Print entries as JSON lines (sensitive values appear only as salted hashes)."""
    with refusals(), Platform.open(data_dir, key_file) as platform:
        for entry in platform.audit.entries(start, start + limit):
            print(json.dumps({"seq": entry.seq, "at": entry.at.isoformat(),
                              "type": entry.type, "actor": entry.actor,
                              "subject": entry.subject, "details": entry.details}))
