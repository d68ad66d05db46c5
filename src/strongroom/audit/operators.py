"""Who ran an operator command, and why: what the command's audit event says about its actor.

An operator command (an upgrade, a backup, a restore, a key rotation, a recovery, an accepted
loss) runs at the machine's console, often before any person can sign in (the database may be
old, empty or not yet restored). So it names its operator and a reason, both kept in the
event's details; a person signed in at the console is its actor by their id as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.audit.events import JSON

MAX_TEXT = 500  # a name or reason longer than this is not one


@dataclass(frozen=True)
class Operator:
    """The person behind an operator command: a name (or a signed-in person's id) and why."""

    name: str
    reason: str
    person_id: str | None = None  # the person signed in at this console, if one is

    def __post_init__(self) -> None:
        for label, value in (("--operator", self.name), ("--reason", self.reason)):
            if not value.strip():
                raise ValueError(f"{label} is empty: say who runs this command and why")
            if len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
                raise ValueError(f"{label} must be one line of at most {MAX_TEXT} characters")

    @property
    def actor(self) -> str:
        """The event's actor column: the person's id if signed in, else ``operator``."""
        return self.person_id or "operator"

    def details(self) -> dict[str, JSON]:
        """What the event's details say of who and why."""
        return {"operator": self.name, "reason": self.reason}


# what the store does by itself (an open resolving a crash's leftovers): no person ran it
SYSTEM = "system"
