"""Who runs an operator command and why: `--operator NAME --reason TEXT`, or the person signed in
at this console (`strongroom login`) with `--reason`. Each operator command's audit event
carries them (strongroom.audit.operators); a command run without them changes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.audit.operators import Operator

if TYPE_CHECKING:
    from strongroom.platform import Platform

OperatorName = Annotated[str | None, typer.Option(
    "--operator", help="Who runs this (your name), kept in the audit log. Required unless "
    "you are signed in at this console (`strongroom login --as EMAIL`) where the command "
    "allows it.")]
Reason = Annotated[str | None, typer.Option(
    "--reason", help="Why it is run (a ticket, a change request), kept in the audit log.")]


def named(name: str | None, reason: str | None, command: str) -> Operator:
    """The operator named on the command line; a clear refusal if either part is missing."""
    if name is None or reason is None:
        raise ValueError(
            f"say who runs `strongroom {command}` and why: add --operator NAME --reason TEXT "
            f"(both kept in the audit log). Nothing was changed.")
    return Operator(name, reason)


def named_or_signed_in(platform: Platform, name: str | None, reason: str | None,
                       command: str) -> Operator:
    """The operator named on the command line, else the person signed in at this console."""
    if name is not None or reason is None:
        return named(name, reason, command)
    from strongroom.cli import session
    from strongroom.errors import Unauthenticated

    try:
        who = session.resume(platform.access, platform, changes_state=True)
    except Unauthenticated:
        raise ValueError(
            f"say who runs `strongroom {command}`: add --operator NAME, or sign in at this "
            f"console first (`strongroom login --as EMAIL`). Nothing was changed.") from None
    return Operator(who.person_id, reason, person_id=who.person_id)
