"""An output's release workflow as data: its statuses, the moves between them, their events.

An output starts CHECKED (the automated check has run, nothing has been asked). Asking for its
release moves it by the check's verdict: release or release-with-suppression go out at once,
review waits for two different output checkers, block stops it (the researcher sees why).
Every other (status, action) pair is refused with a reason; a unit test checks the table is
complete and :func:`diagram` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from strongroom.audit.events import EventType
from strongroom.errors import Conflict
from strongroom.outputs.verdicts import Verdict


class OutputStatus(StrEnum):
    CHECKED = "checked"  # exists; its release has not been asked for
    UNDER_REVIEW = "under_review"  # waits for two different output checkers
    APPROVED_ONCE = "approved_once"  # one checker approved; a second, different one must
    RELEASED = "released"  # its bytes may be downloaded by the project's members
    REJECTED = "rejected"  # an output checker refused it, with a reason
    BLOCKED = "blocked"  # the automated check refused it: nothing leaves
    WITHDRAWN = "withdrawn"  # the requester took the request back


class OutputAction(StrEnum):
    REQUEST = "request"  # ask for release (justification required for review verdicts)
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"


class Actor(StrEnum):
    """Who takes a move: the researcher who ran the analysis, or an independent checker."""

    REQUESTER = "requester"
    CHECKER = "output checker"


@dataclass(frozen=True)
class Move:
    """One transition: where it leads, who may take it, and the audit events it records."""

    target: OutputStatus
    by: Actor
    events: tuple[EventType, ...]
    verdict: Verdict | None = None  # a request's move depends on the check's verdict


_REQUESTED = EventType.OUTPUT_REQUESTED
_REVIEWED = EventType.OUTPUT_REVIEWED
_RELEASED = EventType.OUTPUT_RELEASED

TRANSITIONS: dict[OutputStatus, dict[OutputAction, tuple[Move, ...]]] = {
    OutputStatus.CHECKED: {
        OutputAction.REQUEST: (
            Move(OutputStatus.RELEASED, Actor.REQUESTER, (_REQUESTED, _RELEASED),
                 Verdict.RELEASE),
            Move(OutputStatus.RELEASED, Actor.REQUESTER, (_REQUESTED, _RELEASED),
                 Verdict.SUPPRESS),
            Move(OutputStatus.UNDER_REVIEW, Actor.REQUESTER, (_REQUESTED,), Verdict.REVIEW),
            Move(OutputStatus.BLOCKED, Actor.REQUESTER, (_REQUESTED, EventType.OUTPUT_BLOCKED),
                 Verdict.BLOCK),
        ),
    },
    OutputStatus.UNDER_REVIEW: {
        OutputAction.APPROVE: (Move(OutputStatus.APPROVED_ONCE, Actor.CHECKER, (_REVIEWED,)),),
        OutputAction.REJECT: (Move(OutputStatus.REJECTED, Actor.CHECKER,
                                   (_REVIEWED, EventType.OUTPUT_REJECTED)),),
        OutputAction.WITHDRAW: (Move(OutputStatus.WITHDRAWN, Actor.REQUESTER,
                                     (EventType.OUTPUT_WITHDRAWN,)),),
    },
    OutputStatus.APPROVED_ONCE: {
        OutputAction.APPROVE: (Move(OutputStatus.RELEASED, Actor.CHECKER,
                                    (_REVIEWED, _RELEASED)),),
        OutputAction.REJECT: (Move(OutputStatus.REJECTED, Actor.CHECKER,
                                   (_REVIEWED, EventType.OUTPUT_REJECTED)),),
        OutputAction.WITHDRAW: (Move(OutputStatus.WITHDRAWN, Actor.REQUESTER,
                                     (EventType.OUTPUT_WITHDRAWN,)),),
    },
    OutputStatus.RELEASED: {},
    OutputStatus.REJECTED: {},
    OutputStatus.BLOCKED: {},
    OutputStatus.WITHDRAWN: {},
}

# Why a final status admits nothing more: the reason every refused action from it carries.
FINAL: dict[OutputStatus, str] = {
    OutputStatus.RELEASED: "its bytes have left the enclave, which cannot be undone; "
                           "members of the project may download it",
    OutputStatus.REJECTED: "an output checker rejected it (see the reason); change the "
                           "analysis and ask for the new output's release",
    OutputStatus.BLOCKED: "the automated check blocked it (see the reasons); nothing of it "
                          "leaves, so change the analysis and check it again",
    OutputStatus.WITHDRAWN: "its request was withdrawn; run the analysis again for a new "
                            "output if you still need it",
}

# The statuses that wait for an output checker: the review queue.
AWAITING_REVIEW = frozenset({OutputStatus.UNDER_REVIEW, OutputStatus.APPROVED_ONCE})


def refusal(current: OutputStatus, action: OutputAction, verdict: Verdict,
            what: str = "the output") -> str | None:
    """Why ``action`` cannot be taken from ``current`` (None: it can)."""
    moves = TRANSITIONS[current].get(action, ())
    if any(m.verdict in (None, verdict) for m in moves):
        return None
    if current in FINAL:
        return f"{what} is {current.value}: it cannot {action.value}; {FINAL[current]}"
    allowed = ", ".join(a.value for a in TRANSITIONS[current])
    return (f"{what} is {current.value}: it cannot {action.value}; from {current.value} it "
            f"can {allowed}")


def advance(current: OutputStatus, action: OutputAction, verdict: Verdict,
            what: str = "the output") -> Move:
    """The move ``action`` makes from ``current`` for an output of ``verdict``, or a Conflict."""
    reason = refusal(current, action, verdict, what)
    if reason is not None:
        raise Conflict(reason)
    (move,) = (m for m in TRANSITIONS[current][action] if m.verdict in (None, verdict))
    return move


def diagram() -> str:
    """The workflow as a Mermaid state diagram (for the docs), drawn from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", f"    [*] --> {OutputStatus.CHECKED.value}: checked"]
    for status, actions in TRANSITIONS.items():
        for action, moves in actions.items():
            for move in moves:
                guard = f" [{move.verdict.value}]" if move.verdict else ""
                events = ", ".join(e.value for e in move.events)
                lines.append(f"    {status.value} --> {move.target.value}: {action.value}"
                             f"{guard} by {move.by.value} / {events}")
    lines += [f"    {status.value} --> [*]" for status in FINAL]
    return "\n".join(lines) + "\n"
