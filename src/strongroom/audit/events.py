"""Audit events: a stable event-type enum, the event record, and its canonical leaf form.

An event type's string value is part of the log's format: once shipped it never changes
(entries signed years ago name it). New types may be added; none may be renamed or removed.

The leaf of an entry is a JSON object with its keys in this fixed order and no whitespace,
ASCII only (everything else escaped), nested objects with sorted keys::

    {"seq":41,"at":"2026-04-01T12:00:00.000000+00:00","type":"data.accessed",
     "actor":"per_…","subject":"prj_…","details":{…},"sensitive":{"source":"<hmac hex>"}}

The fixed order puts ``seq`` first, so a verifier can check a row's position and indexed
columns against its content with a prefix comparison instead of parsing a million documents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | list[JSON] | dict[str, JSON] | None"


class EventType(StrEnum):
    """What happened. Values are stable forever; add members, never rename or remove them."""

    # authentication
    AUTH_LOGIN_SUCCEEDED = "auth.login.succeeded"
    AUTH_LOGIN_FAILED = "auth.login.failed"
    AUTH_LOGIN_LOCKED = "auth.login.locked"
    AUTH_MFA_ENROLLED = "auth.mfa.enrolled"
    AUTH_MFA_FAILED = "auth.mfa.failed"
    AUTH_MFA_REPLAYED = "auth.mfa.replayed"
    AUTH_LOGOUT = "auth.logout"
    AUTH_SESSION_EXPIRED = "auth.session.expired"
    AUTH_PASSWORD_CHANGED = "auth.password.changed"
    AUTH_TOKEN_ISSUED = "auth.token.issued"
    AUTH_TOKEN_REVOKED = "auth.token.revoked"
    AUTH_TOKEN_REFUSED = "auth.token.refused"
    # institutions, people, projects
    INSTITUTION_CREATED = "institution.created"
    INSTITUTION_UPDATED = "institution.updated"
    INSTITUTION_REVOKED = "institution.revoked"
    INSTITUTION_REINSTATED = "institution.reinstated"
    PERSON_CREATED = "person.created"
    PERSON_UPDATED = "person.updated"
    PERSON_ROLE_GRANTED = "person.role.granted"
    PERSON_ROLE_REVOKED = "person.role.revoked"
    PERSON_TRAINING_RECORDED = "person.training.recorded"
    PERSON_VETTING_CHANGED = "person.vetting.changed"
    PERSON_UNLOCKED = "person.unlocked"
    PERSON_DEACTIVATED = "person.deactivated"
    PERSON_LINKED = "person.linked"
    PERSON_UNLINKED = "person.unlinked"
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    PROJECT_MEMBER_ADDED = "project.member.added"
    PROJECT_MEMBER_REMOVED = "project.member.removed"
    PROJECT_FIELDS_GRANTED = "project.fields.granted"
    PROJECT_FIELDS_REVOKED = "project.fields.revoked"
    PROJECT_EXPORT_REQUESTED = "project.export.requested"
    PROJECT_EXPORT_APPROVED = "project.export.approved"
    PROJECT_ENDED = "project.ended"
    PROJECT_REVOKED = "project.revoked"
    PROJECT_KEY_DESTROYED = "project.key.destroyed"
    PROJECT_PSEUDONYMS_ISSUED = "project.pseudonyms.issued"
    # pauses, refusals, data access, the log itself
    PAUSE_SET = "pause.set"
    PAUSE_LIFT_REQUESTED = "pause.lift.requested"
    PAUSE_LIFTED = "pause.lifted"
    ACCESS_REFUSED = "access.refused"
    DATA_ACCESSED = "data.accessed"
    AUDIT_VERIFIED = "audit.verified"
    # operating the store
    STORE_UPGRADED = "store.upgraded"
    STORE_RECOVERED = "store.recovered"
    STORE_KEY_ROTATED = "store.key.rotated"
    STORE_BACKED_UP = "store.backed_up"
    STORE_RESTORED = "store.restored"
    STORE_SCRUBBED = "store.scrubbed"
    STORE_SWEPT = "store.swept"
    STORE_BACKUP_ABANDONED = "store.backup_abandoned"
    COHORT_INGEST_ROLLED_BACK = "cohort.ingest_rolled_back"
    AUDIT_LOSS_ACCEPTED = "audit.loss_accepted"
    COHORT_INGESTED = "cohort.ingested"
    GENOTYPES_INGESTED = "genotypes.ingested"
    PROJECT_GENOTYPES_GRANTED = "project.genotypes.granted"
    PROJECT_GENOTYPES_REVOKED = "project.genotypes.revoked"
    # the enclave and its outputs
    ENCLAVE_DEFINITION_CREATED = "enclave.definition.created"
    ENCLAVE_DEFINITION_DROPPED = "enclave.definition.dropped"
    ENCLAVE_ANALYSIS_RUN = "enclave.analysis.run"
    ENCLAVE_ANALYSIS_REFUSED = "enclave.analysis.refused"
    ENCLAVE_DUMMY_DOWNLOADED = "enclave.dummy.downloaded"
    OUTPUT_CHECKED = "output.checked"
    ENCLAVE_ANALYSIS_RUN_SUBMITTED = "enclave.analysis_run.submitted"
    ENCLAVE_ANALYSIS_RUN_ENDED = "enclave.analysis_run.ended"
    JOB_SUBMITTED = "job.submitted"
    JOB_ENDED = "job.ended"
    JOB_SCRATCH_DESTROYED = "job.scratch_destroyed"
    OUTPUT_REQUESTED = "output.requested"
    OUTPUT_REVIEWED = "output.reviewed"
    OUTPUT_RELEASED = "output.released"
    OUTPUT_BLOCKED = "output.blocked"
    OUTPUT_REJECTED = "output.rejected"
    OUTPUT_WITHDRAWN = "output.withdrawn"
    OUTPUT_DOWNLOADED = "output.downloaded"
    # record-level extracts and attribution
    EXTRACT_CREATED = "extract.created"
    EXTRACT_REFUSED = "extract.refused"
    ATTRIBUTION_RUN = "attribution.run"
    AUDIT_CHECKPOINT_EXPORTED = "audit.checkpoint.exported"
    # differential privacy: budgets and the queries charged to them
    DP_BUDGET_SET = "dp.budget.set"
    DP_BUDGET_REFUSED = "dp.budget.refused"
    DP_MODE_LEFT = "dp.mode.left"
    DP_QUERY_CHARGED = "dp.query.charged"
    DP_QUERY_ANSWERED = "dp.query.answered"
    DP_QUERY_FAILED = "dp.query.failed"
    DP_QUERY_REFUSED = "dp.query.refused"
    # watch: the alert lifecycle, appeals, delivery to the security team's tools
    WATCH_ALERT_ACKNOWLEDGED = "watch.alert.acknowledged"
    WATCH_ALERT_RESOLVED = "watch.alert.resolved"
    WATCH_ALERT_REOPENED = "watch.alert.reopened"
    WATCH_APPEAL_FILED = "watch.appeal.filed"
    WATCH_APPEAL_UPHELD = "watch.appeal.upheld"
    WATCH_APPEAL_LIFTED = "watch.appeal.lifted"
    WATCH_DELIVERY_FAILED = "watch.delivery.failed"
    # watch: limits, alerts, suspensions
    WATCH_LIMIT_REFUSED = "watch.limit.refused"
    WATCH_ALERT_RAISED = "watch.alert.raised"
    WATCH_SUSPENDED = "watch.suspended"
    WATCH_LIMITS_SET = "watch.limits.set"
    WATCH_JOB_DECLARED = "watch.job.declared"
    WATCH_JOB_APPROVED = "watch.job.approved"


DESCRIPTIONS: dict[EventType, str] = {
    EventType.EXTRACT_REFUSED: "An extract was refused by the re-identification risk gate.",
    EventType.WATCH_LIMIT_REFUSED: "A request over a hard limit was refused before it ran.",
    EventType.WATCH_ALERT_RAISED: "Watch raised an alert (or counted a repeat of one).",
    EventType.WATCH_SUSPENDED: "Watch suspended a person, project or institution "
                               "automatically.",
    EventType.WATCH_LIMITS_SET: "A project's or institution's transfer limits were changed.",
    EventType.WATCH_JOB_DECLARED: "A project declared a large job ahead of running it.",
    EventType.WATCH_JOB_APPROVED: "A custodian admin approved a declared large job.",
    EventType.AUTH_LOGIN_SUCCEEDED: "A person signed in with password and second factor.",
    EventType.AUTH_LOGIN_FAILED: "A sign-in attempt failed (wrong password or unknown account).",
    EventType.AUTH_LOGIN_LOCKED: "An account was locked after repeated failed sign-ins.",
    EventType.AUTH_MFA_ENROLLED: "A person enrolled a second factor (TOTP).",
    EventType.AUTH_MFA_FAILED: "A second-factor code was wrong.",
    EventType.AUTH_MFA_REPLAYED: "A second-factor code was used twice and refused.",
    EventType.AUTH_LOGOUT: "A person signed out.",
    EventType.AUTH_SESSION_EXPIRED: "A session ended by idle or absolute timeout.",
    EventType.AUTH_PASSWORD_CHANGED: "A person's password was changed.",
    EventType.AUTH_TOKEN_ISSUED: "An API token was issued.",
    EventType.AUTH_TOKEN_REVOKED: "An API token was revoked.",
    EventType.AUTH_TOKEN_REFUSED: "An API token was presented and refused.",
    EventType.INSTITUTION_CREATED: "An institution was registered.",
    EventType.INSTITUTION_UPDATED: "An institution's details were changed.",
    EventType.INSTITUTION_REVOKED: "An institution's access was revoked.",
    EventType.INSTITUTION_REINSTATED: "A revoked institution was reinstated.",
    EventType.PERSON_CREATED: "A person's account was created.",
    EventType.PERSON_UPDATED: "A person's details were changed.",
    EventType.PERSON_ROLE_GRANTED: "A role was granted to a person.",
    EventType.PERSON_ROLE_REVOKED: "A role was taken from a person.",
    EventType.PERSON_TRAINING_RECORDED: "A person's completed training was recorded.",
    EventType.PERSON_VETTING_CHANGED: "A person's vetting status changed.",
    EventType.PERSON_UNLOCKED: "A locked account was unlocked by an administrator.",
    EventType.PERSON_DEACTIVATED: "A person's account was deactivated.",
    EventType.PERSON_LINKED: "A custodian said two accounts are one human (they share one "
                             "person allowance) or two humans who only look alike, and why.",
    EventType.PERSON_UNLINKED: "A custodian ended their link between two accounts, and why.",
    EventType.PROJECT_CREATED: "A project was created.",
    EventType.PROJECT_UPDATED: "A project's details were changed.",
    EventType.PROJECT_MEMBER_ADDED: "A person was added to a project.",
    EventType.PROJECT_MEMBER_REMOVED: "A person was removed from a project.",
    EventType.PROJECT_FIELDS_GRANTED: "Data fields were granted to a project.",
    EventType.PROJECT_FIELDS_REVOKED: "Data fields were withdrawn from a project.",
    EventType.PROJECT_EXPORT_REQUESTED: "An export of results out of a project was requested.",
    EventType.PROJECT_EXPORT_APPROVED: "An export of results out of a project was approved.",
    EventType.PROJECT_ENDED: "A project reached its end and was closed.",
    EventType.PROJECT_REVOKED: "A project's approval was revoked.",
    EventType.PROJECT_KEY_DESTROYED: "A project's key was destroyed (its data made unreadable).",
    EventType.PROJECT_PSEUDONYMS_ISSUED: "Project-specific participant pseudonyms were issued.",
    EventType.PAUSE_SET: "Access was paused (for a person, project, institution or all).",
    EventType.PAUSE_LIFT_REQUESTED: "Lifting a pause was requested.",
    EventType.PAUSE_LIFTED: "A pause was lifted.",
    EventType.ACCESS_REFUSED: "An action was refused; the details list every reason.",
    EventType.DATA_ACCESSED: "Participant data was read (query, extract or download).",
    EventType.AUDIT_VERIFIED: "The audit log was verified; the details give the outcome.",
    EventType.STORE_UPGRADED: "The metadata database was upgraded to a new schema revision.",
    EventType.STORE_RECOVERED: "Sealed cohort versions the database had lost were registered "
                               "again (`strongroom store recover -d DIR --operator NAME "
                               "--reason TEXT`).",
    EventType.STORE_KEY_ROTATED: "The master key was rotated: the store key was sealed under a "
                                 "new master key (phase begun, then done, with both key ids).",
    EventType.STORE_BACKED_UP: "An encrypted backup of the store was written (`strongroom "
                               "backup OUT --reason TEXT`); the details give its id, size and "
                               "audit root.",
    EventType.STORE_RESTORED: "The store was restored from a backup (`strongroom restore "
                              "ARCHIVE INTO --operator NAME --reason TEXT`); the details give "
                              "the backup's id and audit root.",
    EventType.STORE_SCRUBBED: "Every sealed file was read and checked against its digest "
                              "(`strongroom store scrub --operator NAME --reason TEXT`); the "
                              "details give the outcome, who ran it and why.",
    EventType.STORE_SWEPT: "The store set out to remove its own leftovers (unfinished writes, "
                           "retired versions); written before the files go.",
    EventType.STORE_BACKUP_ABANDONED: "A backup cut off before its file was whole was found "
                                      "on the next open or backup; its partial file was "
                                      "removed and no backup exists at its path.",
    EventType.COHORT_INGEST_ROLLED_BACK: "An ingest cut off before its version was recorded "
                                         "was found on the next open and rolled back: its "
                                         "sealed files removed, the version before current.",
    EventType.AUDIT_LOSS_ACCEPTED: "An operator acknowledged, with a reason, that the log "
                                   "lost history its witness or anchors had signed (a "
                                   "database rebuilt or restored); `audit verify` then "
                                   "reports the loss instead of failing.",
    EventType.COHORT_INGESTED: "A new cohort version was sealed and made current (counts "
                               "and digests of its sources; never a value).",
    EventType.GENOTYPES_INGESTED: "A genotype set was sealed in chunks and made current "
                                  "(sample and variant counts, digests of its files).",
    EventType.PROJECT_GENOTYPES_GRANTED: "A project was granted its members' analyses of "
                                         "the genotypes (GWAS inside the enclave).",
    EventType.PROJECT_GENOTYPES_REVOKED: "A project's genotype grant was withdrawn.",
    EventType.ENCLAVE_DEFINITION_CREATED: "A dataset definition was created inside the enclave.",
    EventType.ENCLAVE_DEFINITION_DROPPED: "A dataset definition was deleted.",
    EventType.ENCLAVE_ANALYSIS_RUN: "An analysis ran inside the enclave; its output was checked.",
    EventType.ENCLAVE_ANALYSIS_REFUSED: "An analysis or SQL statement was refused before it ran.",
    EventType.ENCLAVE_DUMMY_DOWNLOADED: "A dummy dataset with a project's schema was taken.",
    EventType.OUTPUT_CHECKED: "An output was checked for disclosure.",
    EventType.ENCLAVE_ANALYSIS_RUN_SUBMITTED: "An analysis was submitted to run in the background "
                                      "(its run id, kind and schedule), to be polled.",
    EventType.ENCLAVE_ANALYSIS_RUN_ENDED: "A submitted analysis run ended: done (its output), "
                                  "refused or failed (its reasons), or lost to a restart.",
    EventType.JOB_SUBMITTED: "A researcher's job was accepted to run in the sandbox, with "
                             "the SHA-256 of its code and of each file.",
    EventType.JOB_ENDED: "A job ended (finished, failed or refused), with its outputs, the "
                         "walls it met and what it used.",
    EventType.JOB_SCRATCH_DESTROYED: "A job's scratch space, left by a platform that stopped "
                                     "while the job ran, was found and destroyed at start.",
    EventType.OUTPUT_REQUESTED: "A researcher asked for an output to be released.",
    EventType.OUTPUT_REVIEWED: "An output checker approved or rejected an output.",
    EventType.OUTPUT_RELEASED: "An output was released (its SHA-256 and the rules applied).",
    EventType.OUTPUT_BLOCKED: "An output was blocked by the automated check.",
    EventType.OUTPUT_REJECTED: "An output held for review was rejected.",
    EventType.OUTPUT_WITHDRAWN: "A release request was withdrawn by the researcher.",
    EventType.OUTPUT_DOWNLOADED: "A released output was downloaded.",
    EventType.EXTRACT_CREATED: "A traceable record-level extract was made (its manifest).",
    EventType.ATTRIBUTION_RUN: "A suspect file was attributed (its verdict and hashes).",
    EventType.AUDIT_CHECKPOINT_EXPORTED: "A signed checkpoint was exported for anchoring.",
    EventType.DP_BUDGET_SET: "A project's differential-privacy mode or budget was set (with "
                             "the reason given).",
    EventType.DP_BUDGET_REFUSED: "A change to a project's DP mode or budget was refused (above "
                                 "the ceiling, below the spend, after leaving DP mode, or "
                                 "mixed access).",
    EventType.DP_MODE_LEFT: "A project left differential-privacy mode: its DP history ended "
                            "(what it spent, how many answers, and why).",
    EventType.DP_QUERY_CHARGED: "A DP query's privacy loss was charged to its project's budget.",
    EventType.DP_QUERY_ANSWERED: "A DP query was answered (its ε, δ and noise scales).",
    EventType.DP_QUERY_FAILED: "A charged DP query failed; its charge stays spent.",
    EventType.DP_QUERY_REFUSED: "A DP query was refused before any charge; the details say "
                                "why.",
    EventType.WATCH_ALERT_ACKNOWLEDGED: "A watch alert was acknowledged by the security team.",
    EventType.WATCH_ALERT_RESOLVED: "A watch alert was resolved; the details give the reason.",
    EventType.WATCH_ALERT_REOPENED: "A resolved watch alert was reopened.",
    EventType.WATCH_APPEAL_FILED: "A suspended person, or their project's lead, appealed a "
                                  "suspension.",
    EventType.WATCH_APPEAL_UPHELD: "An appeal was reviewed and the suspension upheld.",
    EventType.WATCH_APPEAL_LIFTED: "An appeal was granted: a custodian admin asked for, or "
                                   "confirmed, the suspension's lift.",
    EventType.WATCH_DELIVERY_FAILED: "An alert could not be delivered to a security tool "
                                     "after every retry.",
}


# Events that record an attempt or a read, not a change: appended at once, even inside a
# transaction that then rolls back (a refusal is recorded because the change did not happen).
# Every other event records a change and, recorded inside the change's transaction, commits
# with it (see strongroom.audit.outbox).
ATTEMPTS: frozenset[EventType] = frozenset({
    EventType.AUTH_LOGIN_FAILED, EventType.AUTH_MFA_FAILED, EventType.AUTH_MFA_REPLAYED,
    EventType.AUTH_TOKEN_REFUSED, EventType.ACCESS_REFUSED, EventType.DATA_ACCESSED,
    EventType.AUDIT_VERIFIED, EventType.AUDIT_CHECKPOINT_EXPORTED,
    EventType.ENCLAVE_ANALYSIS_REFUSED, EventType.ENCLAVE_DUMMY_DOWNLOADED,
    EventType.OUTPUT_DOWNLOADED, EventType.EXTRACT_REFUSED, EventType.ATTRIBUTION_RUN,
    EventType.DP_QUERY_FAILED, EventType.DP_QUERY_REFUSED, EventType.WATCH_LIMIT_REFUSED,
    EventType.WATCH_DELIVERY_FAILED, EventType.DP_BUDGET_REFUSED,
})


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened. ``sensitive`` values are only ever stored as salted hashes."""

    type: EventType
    actor: str | None  # "per_…", "system" or "operator"
    subject: str | None = None  # id of the thing acted on
    details: Mapping[str, JSON] = field(default_factory=dict)  # plain, non-sensitive
    sensitive: Mapping[str, str] = field(default_factory=dict)  # IP, email, user agent …
    at: dt.datetime | None = None  # timezone-aware; the log fills it in when None


def hash_sensitive(salt_key: bytes, name: str, value: str) -> str:
    """HMAC-SHA256(salt_key, name NUL value), hex: linkable by a key holder, unreadable else."""
    if "\0" in name:
        raise ValueError("a sensitive field's name cannot contain NUL")
    message = name.encode() + b"\0" + value.encode("utf-8", "surrogatepass")
    return hmac.new(salt_key, message, hashlib.sha256).hexdigest()


def format_at(at: dt.datetime) -> str:
    """The canonical timestamp: UTC, microseconds, ``+00:00``."""
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    if at.tzinfo is not dt.UTC:
        at = at.astimezone(dt.UTC)
    return at.isoformat(timespec="microseconds")


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def leaf_head(seq: int, at: str, type: str, actor: str | None, subject: str | None) -> str:
    """The start of a leaf up to ``subject``: what a row's own columns must reproduce."""
    return (f'{{"seq":{seq},"at":"{at}","type":{encode_basestring_ascii(type)},'
            f'"actor":{_text(actor)},"subject":{_text(subject)},')


def leaf_tail(event: AuditEvent, salt_key: bytes) -> str:
    """The rest of a leaf (details and hashed sensitive values); raises if not JSON-able."""
    if not isinstance(event.type, EventType):
        raise TypeError(f"an audit event's type must be an EventType, not {event.type!r}")
    hashed = {name: hash_sensitive(salt_key, name, value)
              for name, value in event.sensitive.items()}
    return f'"details":{_json(dict(event.details))},"sensitive":{_json(hashed)}}}'
