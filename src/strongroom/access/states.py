"""Workflow states as data: every status, and the actions that move between them.

A test checks each table is complete (every state has a row; every target is a state), and
``docs/reference/access.md`` shows them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from strongroom.errors import Conflict


class InstitutionStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class PersonStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class Vetting(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    LAPSED = "lapsed"


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    REVOKED = "revoked"


class ExportStatus(StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    APPROVED = "approved"


class PauseLevel(StrEnum):
    PLATFORM = "platform"
    INSTITUTION = "institution"
    PROJECT = "project"
    PERSON = "person"


class PauseState(StrEnum):
    ACTIVE = "active"
    LIFT_REQUESTED = "lift-requested"
    LIFTED = "lifted"


# Levels whose lift needs a second, different custodian admin.
TWO_PERSON_LIFT = frozenset({PauseLevel.PLATFORM, PauseLevel.INSTITUTION})

TRANSITIONS: dict[type[StrEnum], dict[StrEnum, dict[str, StrEnum]]] = {
    InstitutionStatus: {
        InstitutionStatus.ACTIVE: {"revoke": InstitutionStatus.REVOKED},
        InstitutionStatus.REVOKED: {"reinstate": InstitutionStatus.ACTIVE},
    },
    PersonStatus: {
        PersonStatus.ACTIVE: {"deactivate": PersonStatus.DEACTIVATED},
        PersonStatus.DEACTIVATED: {"reactivate": PersonStatus.ACTIVE},
    },
    Vetting: {
        Vetting.PENDING: {"approve": Vetting.APPROVED, "reject": Vetting.REJECTED},
        Vetting.APPROVED: {"lapse": Vetting.LAPSED, "reject": Vetting.REJECTED},
        Vetting.REJECTED: {"approve": Vetting.APPROVED},
        Vetting.LAPSED: {"approve": Vetting.APPROVED, "reject": Vetting.REJECTED},
    },
    ProjectStatus: {
        ProjectStatus.ACTIVE: {"end": ProjectStatus.ENDED, "revoke": ProjectStatus.REVOKED},
        ProjectStatus.ENDED: {},  # terminal: the project's key is destroyed
        ProjectStatus.REVOKED: {},
    },
    ExportStatus: {
        ExportStatus.NONE: {"request": ExportStatus.REQUESTED},
        ExportStatus.REQUESTED: {"approve": ExportStatus.APPROVED,
                                 "decline": ExportStatus.NONE},
        ExportStatus.APPROVED: {"withdraw": ExportStatus.NONE},
    },
    PauseState: {
        PauseState.ACTIVE: {"request-lift": PauseState.LIFT_REQUESTED,
                            "lift": PauseState.LIFTED},
        PauseState.LIFT_REQUESTED: {"lift": PauseState.LIFTED},
        PauseState.LIFTED: {},
    },
}


S = TypeVar("S", bound=StrEnum)


def advance(current: S, action: str, what: str) -> S:
    """The state ``action`` leads to from ``current``, or a Conflict saying what is possible."""
    table = TRANSITIONS[type(current)][current]
    if action not in table:
        allowed = ", ".join(sorted(table)) or "nothing (it is final)"
        raise Conflict(f"{what} is {current.value}: it cannot {action}; "
                       f"from {current.value} it can {allowed}")
    return table[action]  # type: ignore[return-value]
