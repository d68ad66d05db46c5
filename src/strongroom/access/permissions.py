"""Who may: each action, the roles that may take it, and what it needs of the project.

"When may" (expiry, revocation, pauses, networks) is :mod:`strongroom.access.policies`; the two
are kept apart so that each can be read, tested and changed on its own. Deny by default: an
action without a rule here is refused, and a test fails for any endpoint without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from strongroom.access.roles import Role


class Action(StrEnum):
    SELF_READ = "self.read"
    SELF_UPDATE = "self.update"
    TOKEN_MANAGE = "token.manage"
    ROLES_READ = "roles.read"
    INSTITUTION_READ = "institution.read"
    INSTITUTION_WRITE = "institution.write"
    INSTITUTION_REVOKE = "institution.revoke"
    PERSON_READ = "person.read"
    PERSON_WRITE = "person.write"
    PROJECT_READ = "project.read"
    PROJECT_CREATE = "project.create"
    PROJECT_WRITE = "project.write"
    PROJECT_CLOSE = "project.close"
    EXPORT_REQUEST = "export.request"
    EXPORT_APPROVE = "export.approve"
    DATA_ANALYSE = "data.analyse"
    DATA_EXPORT = "data.export"
    PAUSE_READ = "pause.read"
    PAUSE_SET = "pause.set"
    PAUSE_LIFT = "pause.lift"
    AUDIT_READ = "audit.read"
    OUTPUT_READ = "output.read"
    OUTPUT_REQUEST = "output.request"
    OUTPUT_REVIEW = "output.review"
    OUTPUT_DOWNLOAD = "output.download"
    EXTRACT_CREATE = "extract.create"
    EXTRACT_READ = "extract.read"
    ATTRIBUTE = "attribute"
    WATCH_READ = "watch.read"
    WATCH_RESPOND = "watch.respond"
    WATCH_APPEAL = "watch.appeal"
    WATCH_APPEAL_REVIEW = "watch.appeal.review"
    WATCH_LIMITS_SET = "watch.limits.set"
    RISK_READ = "risk.read"
    WATCH_JOB_DECLARE = "watch.job.declare"


class Kind(StrEnum):
    """What an action touches decides which "when may" policies apply to it."""

    SELF = "self"  # the person's own account
    ADMIN = "admin"  # the platform's records; no participant data
    OVERSIGHT = "oversight"  # reading the audit log and controls: never blocked by pauses
    DATA = "data"  # participant data of one project


class Grant(StrEnum):
    ANALYSE = "analyse"
    EXPORT = "export"


ALL_ROLES = frozenset(Role)
ADMINS = frozenset({Role.CUSTODIAN_ADMIN})
OVERSEERS = frozenset({Role.CUSTODIAN_ADMIN, Role.SECURITY_ANALYST, Role.AUDITOR})
READERS = frozenset({Role.CUSTODIAN_ADMIN, Role.ACCESS_COMMITTEE, Role.SECURITY_ANALYST,
                     Role.AUDITOR})


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    kind: Kind
    description: str
    member: bool = False  # a researcher must be a member of the project
    grant: Grant | None = None  # the project must hold this permission
    by_token: bool = False  # may be used with a project-scoped API token


RULES: dict[Action, Rule] = {
    Action.SELF_READ: Rule(ALL_ROLES, Kind.SELF, "see one's own account", by_token=True),
    Action.SELF_UPDATE: Rule(ALL_ROLES, Kind.SELF, "change one's own password"),
    Action.TOKEN_MANAGE: Rule(frozenset({Role.RESEARCHER}), Kind.DATA,
                              "issue an API token for a project's data (only when you may "
                              "reach its data yourself)", member=True, grant=Grant.ANALYSE),
    Action.ROLES_READ: Rule(ALL_ROLES, Kind.SELF, "read the role descriptions"),
    Action.INSTITUTION_READ: Rule(READERS, Kind.ADMIN, "list and read institutions"),
    Action.INSTITUTION_WRITE: Rule(ADMINS, Kind.ADMIN,
                                   "register institutions and their network ranges"),
    Action.INSTITUTION_REVOKE: Rule(ADMINS, Kind.ADMIN,
                                    "revoke or reinstate an institution"),
    Action.PERSON_READ: Rule(READERS, Kind.ADMIN, "list and read people"),
    Action.PERSON_WRITE: Rule(ADMINS, Kind.ADMIN,
                              "register people, their roles, training, vetting, ORCID iDs; "
                              "unlock; link accounts that are one human (or mark them not)"),
    Action.PROJECT_READ: Rule(READERS | {Role.RESEARCHER, Role.OUTPUT_CHECKER}, Kind.ADMIN,
                              "read a project (researchers: their own projects)",
                              member=True, by_token=True),
    Action.PROJECT_CREATE: Rule(frozenset({Role.ACCESS_COMMITTEE, Role.CUSTODIAN_ADMIN}),
                                Kind.ADMIN, "create a project for an approved application"),
    Action.PROJECT_WRITE: Rule(frozenset({Role.ACCESS_COMMITTEE, Role.CUSTODIAN_ADMIN}),
                               Kind.ADMIN, "change a project's members and field grants"),
    Action.PROJECT_CLOSE: Rule(frozenset({Role.ACCESS_COMMITTEE, Role.CUSTODIAN_ADMIN}),
                               Kind.ADMIN, "end or revoke a project (destroys its key)"),
    Action.EXPORT_REQUEST: Rule(frozenset({Role.RESEARCHER}), Kind.DATA,
                                "ask for a project's export permission", member=True,
                                grant=Grant.ANALYSE),
    Action.EXPORT_APPROVE: Rule(frozenset({Role.ACCESS_COMMITTEE}), Kind.ADMIN,
                                "approve or decline a project's export permission"),
    Action.DATA_ANALYSE: Rule(frozenset({Role.RESEARCHER}), Kind.DATA,
                              "analyse a project's data inside the enclave", member=True,
                              grant=Grant.ANALYSE, by_token=True),
    Action.DATA_EXPORT: Rule(frozenset({Role.RESEARCHER}), Kind.DATA,
                             "take a record-level extract of a project", member=True,
                             grant=Grant.EXPORT, by_token=True),
    Action.PAUSE_READ: Rule(OVERSEERS | {Role.ACCESS_COMMITTEE}, Kind.OVERSIGHT,
                            "see pauses"),
    Action.PAUSE_SET: Rule(frozenset({Role.CUSTODIAN_ADMIN, Role.SECURITY_ANALYST}),
                           Kind.OVERSIGHT, "pause the platform, an institution, a project or "
                           "a person"),
    Action.PAUSE_LIFT: Rule(ADMINS, Kind.OVERSIGHT,
                            "lift a pause (platform and institution: two admins)"),
    Action.AUDIT_READ: Rule(OVERSEERS, Kind.OVERSIGHT,
                            "read and verify the audit log, export checkpoints"),
    Action.OUTPUT_READ: Rule(OVERSEERS | {Role.RESEARCHER, Role.OUTPUT_CHECKER}, Kind.ADMIN,
                             "see a project's outputs, their checks and verdicts "
                             "(researchers: their own projects)", member=True, by_token=True),
    Action.OUTPUT_REQUEST: Rule(frozenset({Role.RESEARCHER}), Kind.DATA,
                                "ask for an output to be released, or withdraw the request",
                                member=True, grant=Grant.ANALYSE, by_token=True),
    Action.OUTPUT_REVIEW: Rule(frozenset({Role.OUTPUT_CHECKER}), Kind.DATA,
                               "review an output held for review (two checkers, neither the "
                               "requester)"),
    Action.OUTPUT_DOWNLOAD: Rule(frozenset({Role.RESEARCHER}), Kind.DATA,
                                 "download a released output (only released bytes)",
                                 member=True, grant=Grant.ANALYSE, by_token=True),
    Action.EXTRACT_CREATE: Rule(ADMINS, Kind.ADMIN,
                                "make a traceable record-level extract for a project that "
                                "holds the export permission", grant=Grant.EXPORT),
    Action.EXTRACT_READ: Rule(OVERSEERS, Kind.OVERSIGHT, "read extract manifests"),
    Action.ATTRIBUTE: Rule(frozenset({Role.SECURITY_ANALYST, Role.CUSTODIAN_ADMIN}),
                           Kind.OVERSIGHT, "attribute a leaked file to its recipient"),
    Action.WATCH_READ: Rule(OVERSEERS, Kind.OVERSIGHT,
                            "list, read and export watch alerts (OCSF, ECS, CEF)"),
    Action.WATCH_RESPOND: Rule(frozenset({Role.SECURITY_ANALYST, Role.CUSTODIAN_ADMIN}),
                               Kind.OVERSIGHT, "acknowledge, resolve or reopen a watch alert"),
    # SELF: a suspended person must still be able to appeal their own suspension
    Action.WATCH_APPEAL: Rule(frozenset({Role.RESEARCHER}), Kind.SELF,
                              "appeal an automatic suspension (your own, or your project's "
                              "as its lead)"),
    Action.WATCH_APPEAL_REVIEW: Rule(ADMINS, Kind.OVERSIGHT,
                                     "decide an appeal: uphold the suspension, or lift it "
                                     "(a lift takes two custodian admins)"),
    Action.RISK_READ: Rule(READERS, Kind.ADMIN, "read the re-identification risk report "
                           "of a project's extract candidate (counts, never rows)"),
    Action.WATCH_LIMITS_SET: Rule(ADMINS, Kind.ADMIN, "set a project's or institution's "
                                  "transfer limits and approve declared large jobs"),
    Action.WATCH_JOB_DECLARE: Rule(frozenset({Role.RESEARCHER}), Kind.ADMIN,
                                   "declare a large job for a project ahead of running it",
                                   member=True, grant=Grant.ANALYSE),
}

ROLE_WORDS = {role: role.value.replace("-", " ") for role in Role}


def who_may(action: Action, roles: frozenset[Role]) -> list[str]:
    """Reasons the roles cannot take the action (empty when one of them may)."""
    rule = RULES.get(action)
    if rule is None:
        return [f"no rule allows {action.value}; it is refused by default"]
    if roles & rule.roles:
        return []
    needed = ", ".join(sorted(ROLE_WORDS[r] for r in rule.roles))
    return [f"to {rule.description} you need one of these roles: {needed}"]
