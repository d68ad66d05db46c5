"""The people who use Strongroom, declared as data: each role with what it is for."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTODIAN_ADMIN = "custodian-admin"
    ACCESS_COMMITTEE = "access-committee"
    OUTPUT_CHECKER = "output-checker"
    RESEARCHER = "researcher"
    SECURITY_ANALYST = "security-analyst"
    AUDITOR = "auditor"


ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.CUSTODIAN_ADMIN: "Runs the platform for the data custodian: institutions, people, "
                          "projects, revocation and pauses (lifting a platform or institution "
                          "pause takes two of them).",
    Role.ACCESS_COMMITTEE: "Approves applications: creates projects, grants fields, and alone "
                           "approves a project's export permission.",
    Role.OUTPUT_CHECKER: "Reviews results that ask to leave the enclave and approves or "
                         "rejects their release.",
    Role.RESEARCHER: "Analyses the data of the projects they are a member of, inside the "
                     "enclave; never receives participant-level rows.",
    Role.SECURITY_ANALYST: "Watches transfers and alerts, reads the audit log, pauses access "
                           "and attributes leaked files.",
    Role.AUDITOR: "Reads everything that happened and verifies the audit log; changes nothing.",
}
