"""`strongroom audit …`: verify the log, export checkpoints, read entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom.audit.events import EventType
from strongroom.cli.common import (
    DEFAULT_DATA_DIR,
    DataDir,
    KeyFile,
    console,
    errors,
    on_use,
    open_platform,
    refusals,
)
from strongroom.cli.operators import OperatorName, Reason, named_or_signed_in

if TYPE_CHECKING:
    from strongroom.access import oversight
    from strongroom.audit import verify as verification
    from strongroom.audit.checkpoints import Checkpoint
    from strongroom.audit.operators import Operator
    from strongroom.platform import Platform
else:  # imported when a command first uses them (cli/common.py on_use)
    oversight = on_use("strongroom.access.oversight")
    verification = on_use("strongroom.audit.verify")  # `verify` is the checker's own name

# oversight.MAX_PAGE, written here: reading it would import the database layer to list the
# options (tests/unit/test_cli_start.py holds the two equal)
MAX_PAGE = 1000

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
    accept_loss: Annotated[bool, typer.Option(
        "--accept-loss", help="Acknowledge, in the log, that the witness's (or anchors') "
        "checkpoints this database disagrees with are a history it lost (a database "
        "restored or rebuilt by `store recover`); needs --operator and --reason.")] = False,
    operator: OperatorName = None,
    reason: Reason = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Check every entry against the signed checkpoints; exit 1 at the first bad entry."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        anchors = _anchors(anchor or [])
        if accept_loss:
            by = named_or_signed_in(platform, operator, reason, "audit verify --accept-loss")
            _accept_loss(platform, by, anchors)
        report = oversight.verify_log(platform.access, None, platform.witness, anchors)
    if as_json:
        print(json.dumps({"ok": report.ok, "entries": report.entries,
                          "checkpoints": report.checkpoints, "kind": report.kind,
                          "first_bad_seq": report.first_bad_seq, "problem": report.problem,
                          "acknowledged": report.acknowledged,
                          "seconds": round(report.seconds, 3)}, indent=2))
    else:
        (console if report.ok else errors).print(report.summary(), markup=False)
    if not report.ok:
        raise typer.Exit(1)


def _accept_loss(platform: Platform, by: Operator, anchors: list[dict[str, Any]]) -> None:
    """Record that the external checkpoints this database disagrees with are a lost history,
    then sign it: refused unless the only problem is such a loss (a rollback or a fork seen
    from the witness or anchors), never for an edited, deleted or truncated log."""
    lost: list[Checkpoint] = []
    found = verification.verify(platform.store.engine, public_key=platform.audit.public_key,
                   witness=platform.witness, anchors=anchors, lost=lost)
    if not found.ok:
        raise ValueError(f"{found.summary()}. That is not a lost history an operator can "
                         f"accept: nothing was recorded. Restore the database from a backup.")
    if not lost:
        raise ValueError("the log agrees with every witness and anchor checkpoint: there is "
                         "no loss to accept; nothing was recorded")
    platform.access.record(EventType.AUDIT_LOSS_ACCEPTED, by.actor, None, {
        "checkpoints": [{"tree_size": cp.tree_size, "root_hash": cp.root_hash.hex()}
                        for cp in lost],
        "entries_now": found.entries, **by.details()})
    platform.audit.checkpoint()  # an acknowledgement counts once a checkpoint covers it
    errors.print(f"recorded: {len(lost)} witness or anchor checkpoint(s), up to "
                 f"{max(cp.tree_size for cp in lost)} entries, belong to a history this "
                 f"database lost; acknowledged by {by.name} ({by.reason})", markup=False)


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write it to this file.")
                   ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Sign the log now and export the checkpoint, to keep (anchor) outside Strongroom."""
    with refusals(), open_platform(data_dir, key_file) as platform:
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
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="How many.")
                     ] = 50,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Print entries as JSON lines (sensitive values appear only as salted hashes)."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        for entry in platform.audit.entries(start, start + limit):
            print(json.dumps({"seq": entry.seq, "at": entry.at.isoformat(),
                              "type": entry.type, "actor": entry.actor,
                              "subject": entry.subject, "details": entry.details}))
