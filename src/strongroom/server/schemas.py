"""The API's request and response shapes (they are the OpenAPI spec's schemas).

Responses never carry secrets that were not asked for: password hashes, sealed TOTP secrets,
token and session digests and project keys have no field here.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from strongroom.access.models import Person, Training
from strongroom.access.pauses import PauseView
from strongroom.access.permissions import Action
from strongroom.access.presets import PRESETS
from strongroom.access.projects import ProjectView
from strongroom.access.roles import Role
from strongroom.access.states import PauseLevel, PauseState
from strongroom.cohort.dictionary import Coding
from strongroom.cohort.dictionary import Field as DictionaryField
from strongroom.server.privacy_schemas import MixedAccessOut, mixed_out

Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=254,
                                          pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Purpose = Annotated[str, StringConstraints(min_length=20, max_length=5000)]
NewPassword = Annotated[str, StringConstraints(min_length=12, max_length=256)]


class TokenAction(StrEnum):
    """The actions an API token may carry (a test checks these are the rules' by_token ones)."""

    SELF_READ = Action.SELF_READ.value
    PROJECT_READ = Action.PROJECT_READ.value
    DATA_ANALYSE = Action.DATA_ANALYSE.value
    DATA_EXPORT = Action.DATA_EXPORT.value
    OUTPUT_READ = Action.OUTPUT_READ.value
    OUTPUT_REQUEST = Action.OUTPUT_REQUEST.value
    OUTPUT_DOWNLOAD = Action.OUTPUT_DOWNLOAD.value


Id = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z]{3}_[0-9a-f]+$")]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Problem(BaseModel):
    """Every refusal and error: what kind, and sentences saying what is wrong and what to do."""

    error: str = Field(description="invalid, not-found, conflict, unauthenticated, forbidden, "
                                   "rate-limited or unavailable")
    reasons: list[str]


# -- authentication ------------------------------------------------------------------------

class LoginIn(BaseModel):
    email: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    code: Annotated[str, StringConstraints(min_length=6, max_length=8)] = Field(
        description="the 6-digit code from the authenticator app")


class PasswordIn(BaseModel):
    current: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new: NewPassword


class SessionOut(BaseModel):
    person_id: str
    roles: list[Role]
    csrf_token: str = Field(description="send as X-CSRF-Token with every POST, PUT, PATCH "
                                        "or DELETE made with the session cookie")
    expires_at: dt.datetime = Field(description="absolute limit; 15 minutes idle also ends it")


class MeOut(BaseModel):
    person_id: str
    institution_id: str
    roles: list[Role]
    via: str
    token_project: str | None = None
    token_actions: list[Action] = []


class TokenPreset(StrEnum):
    """The token presets (a test checks these are access/presets.py's)."""

    STUDY = "study"
    JOBS = "jobs"
    READ = "read"
    EXPORT = "export"


class TokenIn(BaseModel):
    project_id: Id
    preset: TokenPreset | None = Field(None, description=(
        "a named set of actions for one way of working (access/presets.py): "
        + "; ".join(f"{p.name}: {', '.join(sorted(p.actions))}" for p in PRESETS.values())))
    actions: Annotated[list[TokenAction], Field(max_length=len(Action), description=(
        "actions beside the preset's (at least one when there is no preset)"))] = []
    days: int = Field(ge=1, le=30)
    label: Annotated[str, StringConstraints(max_length=100)] = ""


class TokenOut(Out):
    id: str
    project_id: str
    actions: list[str]
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class NewTokenOut(BaseModel):
    token: TokenOut
    secret: str = Field(description="shown once; send as 'Authorization: Bearer <secret>'")


class RoleOut(BaseModel):
    role: Role
    description: str


# -- institutions and people ---------------------------------------------------------------

class InstitutionIn(BaseModel):
    name: Text200
    country: Country = Field(description="ISO 3166-1 alpha-2 code, e.g. GB")
    jurisdiction: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    networks: Annotated[list[Annotated[str, StringConstraints(max_length=64)]],
                        Field(max_length=100)] = []


class InstitutionPatch(BaseModel):
    name: Text200 | None = None
    jurisdiction: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    networks: Annotated[list[Annotated[str, StringConstraints(max_length=64)]],
                        Field(max_length=100)] | None = None


class InstitutionOut(Out):
    id: str
    name: str
    country: str
    jurisdiction: str
    networks: list[str]
    status: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_reason: str | None


class RevokeIn(BaseModel):
    reason: Reason


class PersonIn(BaseModel):
    institution_id: Id
    email: Email
    name: Text200
    roles: Annotated[list[Role], Field(min_length=1, max_length=len(Role))]
    password: NewPassword | None = Field(
        default=None, description="leave out to have one generated and shown once")
    orcid: Annotated[str, StringConstraints(max_length=60)] | None = Field(
        default=None, description="ORCID iD, 0000-0000-0000-000X or https://orcid.org/…; "
        "accounts with one ORCID share one person allowance")


class TrainingOut(Out):
    course: str
    completed_on: dt.date
    expires_on: dt.date


class PersonOut(BaseModel):
    id: str
    institution_id: str
    email: str
    name: str
    roles: list[Role]
    vetting: str
    status: str
    mfa_confirmed: bool
    locked_until: dt.datetime | None
    orcid: str | None = None
    training: list[TrainingOut] = []


class NewPersonOut(BaseModel):
    person: PersonOut
    password: str | None = Field(description="generated password, shown once (null if given)")
    totp_secret: str = Field(description="shown once: the authenticator app's secret")
    totp_uri: str = Field(description="shown once: otpauth:// URI for a QR code")


class RoleIn(BaseModel):
    role: Role


class TrainingIn(BaseModel):
    course: Text200
    completed_on: dt.date
    expires_on: dt.date


class VettingIn(BaseModel):
    status: Annotated[str, StringConstraints(pattern="^(approved|rejected|lapsed)$")]


class ActiveIn(BaseModel):
    active: bool


class OrcidIn(BaseModel):
    orcid: Annotated[str, StringConstraints(max_length=60)] | None = Field(
        description="ORCID iD (0000-0000-0000-000X or https://orcid.org/…); null clears it")


class AccountsOut(BaseModel):
    person_id: str
    accounts: list[str] = Field(description="every account treated as the same human, this "
                                            "one included: they share one person allowance")


class LinkIn(BaseModel):
    person_id: Id
    same_as: Id
    relation: Annotated[str, StringConstraints(pattern="^(same|distinct)$")] = Field(
        default="same", description="same: one human (one person allowance); distinct: two "
                                    "humans who only look alike")
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]


class UnlinkIn(BaseModel):
    person_id: Id
    same_as: Id
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]


class LinkOut(Out):
    id: int
    person_id: str
    same_as: str
    relation: str
    reason: str
    linked_by: str
    at: dt.datetime


class AccountOut(Out):
    id: str
    name: str
    email: str
    orcid: str | None
    institution_id: str
    status: str


class SuspectOut(BaseModel):
    accounts: list[AccountOut]
    why: list[str]
    shared: bool = Field(description="true: these accounts share one person allowance now; "
                                     "false: a weaker hint, for a custodian to link or not")


# -- projects ------------------------------------------------------------------------------

class ProjectIn(BaseModel):
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    purpose: Purpose
    lead_id: Id
    starts_on: dt.date
    expires_on: dt.date
    fields: Annotated[list[Annotated[int, Field(ge=0, le=10**7)]], Field(max_length=5000)] = []
    members: Annotated[list[Id], Field(max_length=500)] = []


class ProjectOut(BaseModel):
    id: str
    title: str
    purpose: str
    lead_id: str
    starts_on: dt.date
    expires_on: dt.date
    status: str
    export: str
    key_id: str
    key_destroyed: bool
    members: list[str]
    fields: list[int]
    mixed_access: list[MixedAccessOut] = Field(default_factory=list, description=(
        "members who read one of its fields exactly in one project and under differential "
        "privacy in another"))
    genotypes: bool = Field(False, description="holds a genotype grant (GWAS in the enclave)")


class MemberIn(BaseModel):
    person_id: Id


class GenotypesIn(BaseModel):
    granted: bool = Field(description="true to grant the genotypes, false to withdraw them")


class FieldsIn(BaseModel):
    fields: Annotated[list[Annotated[int, Field(ge=0, le=10**7)]], Field(max_length=5000)]


class ExportRequestIn(BaseModel):
    justification: Purpose


class ExportDecisionIn(BaseModel):
    approve: bool


class CloseIn(BaseModel):
    revoke: bool = Field(False, description="true: revoke for cause; false: end normally")
    reason: Reason


class FieldOut(Out):
    field_id: int
    name: str
    value_type: str
    role: str
    unit: str
    instances: int
    arrays: int
    description: str = ""
    coding_id: int | None = None  # the codes' meanings: GET /projects/{id}/codings/{coding}
    # a small coding's codes and meanings in full (code -> meaning); a larger one's by lookup
    codes: dict[str, str] | None = None
    codes_total: int = 0


SCHEMA_CODES = 50  # codings up to this many codes are shown in the schema itself


def field_out(field: DictionaryField, coding: Coding | None) -> FieldOut:
    small = coding is not None and len(coding.codes) <= SCHEMA_CODES
    return FieldOut(field_id=field.field_id, name=field.name, value_type=field.value_type,
                    role=field.role, unit=field.unit, instances=field.instances,
                    arrays=field.arrays, description=field.description,
                    coding_id=field.coding_id,
                    codes=dict(coding.codes) if small and coding is not None else None,
                    codes_total=0 if coding is None else len(coding.codes))


class CodeOut(BaseModel):
    code: str
    meaning: str


class CodingOut(BaseModel):
    coding_id: int
    total: int  # codes matching the search (those returned are at most the limit)
    codes: list[CodeOut]


# -- pauses --------------------------------------------------------------------------------

class PauseIn(BaseModel):
    level: PauseLevel
    target_id: Id | None = None
    reason: Reason


class PauseOut(BaseModel):
    id: str
    level: str
    target_id: str | None
    reason: str
    set_by: str
    set_at: dt.datetime
    state: PauseState
    lift_requested_by: str | None
    lifted_by: str | None
    lifted_at: dt.datetime | None


# -- audit ---------------------------------------------------------------------------------

class AuditEntryOut(BaseModel):
    seq: int
    at: dt.datetime
    type: str
    actor: str | None
    subject: str | None
    details: dict[str, object]
    leaf_hash: str


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None
    kind: str | None
    problem: str | None
    seconds: float


class ProofOut(BaseModel):
    tree_size: int
    hashes: list[str]


# -- from domain records -------------------------------------------------------------------

def person_out(person: Person, roles: frozenset[Role],
               training: list[Training] | None = None) -> PersonOut:
    return PersonOut(id=person.id, institution_id=person.institution_id, email=person.email,
                     name=person.name, roles=sorted(roles), vetting=person.vetting,
                     status=person.status, mfa_confirmed=person.mfa_confirmed,
                     locked_until=person.locked_until, orcid=person.orcid,
                     training=[TrainingOut.model_validate(t) for t in training or []])


def project_out(view: ProjectView) -> ProjectOut:
    p = view.project
    return ProjectOut(id=p.id, title=p.title, purpose=p.purpose, lead_id=p.lead_id,
                      starts_on=p.starts_on, expires_on=p.expires_on, status=p.status,
                      export=p.export, key_id=p.key_id, key_destroyed=p.key_sealed is None,
                      members=view.members, fields=view.fields,
                      mixed_access=mixed_out(view.mixed), genotypes=view.genotypes)


def pause_out(view: PauseView) -> PauseOut:
    p = view.pause
    return PauseOut(id=p.id, level=p.level, target_id=p.target_id, reason=p.reason,
                    set_by=p.set_by, set_at=p.set_at, state=view.state,
                    lift_requested_by=p.lift_requested_by, lifted_by=p.lifted_by,
                    lifted_at=p.lifted_at)
