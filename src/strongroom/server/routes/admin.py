"""Administration: institutions, people, projects, field grants, export approval, pauses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from strongroom.access import identity, institutions, pauses, people, projects
from strongroom.access.permissions import Action
from strongroom.access.roles import Role
from strongroom.server.schemas import (
    AccountOut,
    AccountsOut,
    ActiveIn,
    CloseIn,
    CodeOut,
    CodingOut,
    ExportDecisionIn,
    ExportRequestIn,
    FieldOut,
    FieldsIn,
    GenotypesIn,
    InstitutionIn,
    InstitutionOut,
    InstitutionPatch,
    LinkIn,
    LinkOut,
    MemberIn,
    NewPersonOut,
    OrcidIn,
    PauseIn,
    PauseOut,
    PersonIn,
    PersonOut,
    ProjectIn,
    ProjectOut,
    RevokeIn,
    RoleIn,
    SuspectOut,
    TrainingIn,
    UnlinkIn,
    VettingIn,
    field_out,
    pause_out,
    person_out,
    project_out,
)
from strongroom.server.security import Caller, Ctx, acts

router = APIRouter()


# -- institutions --------------------------------------------------------------------------

@router.get("/institutions", response_model=list[InstitutionOut], tags=["institutions"],
            openapi_extra=acts(Action.INSTITUTION_READ))
def list_institutions(who: Caller, ctx: Ctx) -> list[InstitutionOut]:
    return [InstitutionOut.model_validate(i) for i in institutions.list_all(ctx, who)]


@router.post("/institutions", response_model=InstitutionOut, status_code=201,
             tags=["institutions"], openapi_extra=acts(Action.INSTITUTION_WRITE))
def create_institution(body: InstitutionIn, who: Caller, ctx: Ctx) -> InstitutionOut:
    return InstitutionOut.model_validate(institutions.create(
        ctx, who, name=body.name, country=body.country, jurisdiction=body.jurisdiction,
        networks=body.networks))


@router.get("/institutions/{institution_id}", response_model=InstitutionOut,
            tags=["institutions"], openapi_extra=acts(Action.INSTITUTION_READ))
def read_institution(institution_id: str, who: Caller, ctx: Ctx) -> InstitutionOut:
    return InstitutionOut.model_validate(institutions.read(ctx, who, institution_id))


@router.patch("/institutions/{institution_id}", response_model=InstitutionOut,
              tags=["institutions"], openapi_extra=acts(Action.INSTITUTION_WRITE))
def update_institution(institution_id: str, body: InstitutionPatch, who: Caller,
                       ctx: Ctx) -> InstitutionOut:
    return InstitutionOut.model_validate(institutions.update_details(
        ctx, who, institution_id, name=body.name, jurisdiction=body.jurisdiction,
        networks=body.networks))


@router.post("/institutions/{institution_id}/revoke", response_model=InstitutionOut,
             tags=["institutions"], openapi_extra=acts(Action.INSTITUTION_REVOKE))
def revoke_institution(institution_id: str, body: RevokeIn, who: Caller,
                       ctx: Ctx) -> InstitutionOut:
    """Cut the institution off: every person, session, token and project of it, at once."""
    return InstitutionOut.model_validate(
        institutions.revoke(ctx, who, institution_id, body.reason))


@router.post("/institutions/{institution_id}/reinstate", response_model=InstitutionOut,
             tags=["institutions"], openapi_extra=acts(Action.INSTITUTION_REVOKE))
def reinstate_institution(institution_id: str, who: Caller, ctx: Ctx) -> InstitutionOut:
    return InstitutionOut.model_validate(institutions.reinstate(ctx, who, institution_id))


# -- people --------------------------------------------------------------------------------

@router.get("/people", response_model=list[PersonOut], tags=["people"],
            openapi_extra=acts(Action.PERSON_READ))
def list_people(who: Caller, ctx: Ctx, institution_id: str | None = None) -> list[PersonOut]:
    return [person_out(p, r) for p, r in people.list_all(ctx, who, institution_id)]


@router.post("/people", response_model=NewPersonOut, status_code=201, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def create_person(body: PersonIn, who: Caller, ctx: Ctx) -> NewPersonOut:
    """Register a person; their TOTP secret (and a generated password) are shown once."""
    new = people.create(ctx, who, institution_id=body.institution_id, email=body.email,
                        name=body.name, roles=[r.value for r in body.roles],
                        password=body.password, orcid=body.orcid)
    return NewPersonOut(person=person_out(new.person, frozenset(new.roles)),
                        password=new.password, totp_secret=new.totp_secret,
                        totp_uri=new.totp_uri)


@router.get("/people/{person_id}", response_model=PersonOut, tags=["people"],
            openapi_extra=acts(Action.PERSON_READ))
def read_person(person_id: str, who: Caller, ctx: Ctx) -> PersonOut:
    return person_out(*people.read(ctx, who, person_id))


@router.post("/people/{person_id}/roles", response_model=PersonOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def grant_role(person_id: str, body: RoleIn, who: Caller, ctx: Ctx) -> PersonOut:
    people.grant_role(ctx, who, person_id, body.role.value)
    return person_out(*people.read(ctx, who, person_id))


@router.delete("/people/{person_id}/roles/{role}", response_model=PersonOut, tags=["people"],
               openapi_extra=acts(Action.PERSON_WRITE))
def revoke_role(person_id: str, role: Role, who: Caller, ctx: Ctx) -> PersonOut:
    people.revoke_role(ctx, who, person_id, role.value)
    return person_out(*people.read(ctx, who, person_id))


@router.post("/people/{person_id}/training", response_model=PersonOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def record_training(person_id: str, body: TrainingIn, who: Caller, ctx: Ctx) -> PersonOut:
    people.record_training(ctx, who, person_id, course=body.course,
                           completed_on=body.completed_on, expires_on=body.expires_on)
    return person_out(*people.read(ctx, who, person_id))


@router.post("/people/{person_id}/vetting", response_model=PersonOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def set_vetting(person_id: str, body: VettingIn, who: Caller, ctx: Ctx) -> PersonOut:
    people.set_vetting(ctx, who, person_id, body.status)
    return person_out(*people.read(ctx, who, person_id))


@router.post("/people/{person_id}/unlock", response_model=PersonOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def unlock(person_id: str, who: Caller, ctx: Ctx) -> PersonOut:
    people.unlock(ctx, who, person_id)
    return person_out(*people.read(ctx, who, person_id))


@router.post("/people/{person_id}/active", response_model=PersonOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def set_active(person_id: str, body: ActiveIn, who: Caller, ctx: Ctx) -> PersonOut:
    people.set_active(ctx, who, person_id, body.active)
    return person_out(*people.read(ctx, who, person_id))


# -- projects ------------------------------------------------------------------------------

@router.get("/projects", response_model=list[ProjectOut], tags=["projects"],
            openapi_extra=acts(Action.PROJECT_READ))
def list_projects(who: Caller, ctx: Ctx) -> list[ProjectOut]:
    return [project_out(v) for v in projects.list_visible(ctx, who)]


@router.post("/projects", response_model=ProjectOut, status_code=201, tags=["projects"],
             openapi_extra=acts(Action.PROJECT_CREATE))
def create_project(body: ProjectIn, who: Caller, ctx: Ctx) -> ProjectOut:
    return project_out(projects.create(
        ctx, who, title=body.title, purpose=body.purpose, lead_id=body.lead_id,
        starts_on=body.starts_on, expires_on=body.expires_on, fields=body.fields,
        members=body.members))


@router.get("/projects/{project_id}", response_model=ProjectOut, tags=["projects"],
            openapi_extra=acts(Action.PROJECT_READ))
def read_project(project_id: str, who: Caller, ctx: Ctx) -> ProjectOut:
    return project_out(projects.read(ctx, who, project_id))


@router.post("/projects/{project_id}/members", response_model=ProjectOut, tags=["projects"],
             openapi_extra=acts(Action.PROJECT_WRITE))
def add_member(project_id: str, body: MemberIn, who: Caller, ctx: Ctx) -> ProjectOut:
    return project_out(projects.add_member(ctx, who, project_id, body.person_id))


@router.delete("/projects/{project_id}/members/{person_id}", response_model=ProjectOut,
               tags=["projects"], openapi_extra=acts(Action.PROJECT_WRITE))
def remove_member(project_id: str, person_id: str, who: Caller, ctx: Ctx) -> ProjectOut:
    return project_out(projects.remove_member(ctx, who, project_id, person_id))


@router.put("/projects/{project_id}/fields", response_model=ProjectOut, tags=["projects"],
            openapi_extra=acts(Action.PROJECT_WRITE))
def set_fields(project_id: str, body: FieldsIn, who: Caller, ctx: Ctx) -> ProjectOut:
    """Replace the project's field grants with this list."""
    return project_out(projects.set_fields(ctx, who, project_id, body.fields))


@router.put("/projects/{project_id}/genotypes", response_model=ProjectOut, tags=["projects"],
            openapi_extra=acts(Action.PROJECT_WRITE))
def set_genotypes(project_id: str, body: GenotypesIn, who: Caller, ctx: Ctx) -> ProjectOut:
    """Grant (or withdraw) the project's analyses of the genotypes."""
    return project_out(projects.set_genotypes(ctx, who, project_id, body.granted))


@router.post("/projects/{project_id}/export/request", response_model=ProjectOut,
             tags=["projects"], openapi_extra=acts(Action.EXPORT_REQUEST))
def request_export(project_id: str, body: ExportRequestIn, who: Caller,
                   ctx: Ctx) -> ProjectOut:
    return project_out(projects.request_export(ctx, who, project_id, body.justification))


@router.post("/projects/{project_id}/export/decision", response_model=ProjectOut,
             tags=["projects"], openapi_extra=acts(Action.EXPORT_APPROVE))
def decide_export(project_id: str, body: ExportDecisionIn, who: Caller,
                  ctx: Ctx) -> ProjectOut:
    return project_out(projects.decide_export(ctx, who, project_id, body.approve))


@router.post("/projects/{project_id}/close", response_model=ProjectOut, tags=["projects"],
             openapi_extra=acts(Action.PROJECT_CLOSE))
def close_project(project_id: str, body: CloseIn, who: Caller, ctx: Ctx) -> ProjectOut:
    """End or revoke the project; its key is destroyed and its sealed files unreadable."""
    return project_out(projects.close(ctx, who, project_id, revoke=body.revoke,
                                      reason=body.reason))


@router.get("/projects/{project_id}/schema", response_model=list[FieldOut],
            tags=["projects"], openapi_extra=acts(Action.DATA_ANALYSE))
def project_schema(project_id: str, who: Caller, ctx: Ctx) -> list[FieldOut]:
    """The fields this project may analyse (a data access: every "when may" applies), each
    with its coding: a small one's codes and meanings in full, a larger one's by lookup."""
    return [field_out(f, ctx.dictionary.coding_of(f))
            for f in projects.schema(ctx, who, project_id)]


@router.get("/projects/{project_id}/codings/{coding_id}", response_model=CodingOut,
            tags=["projects"], openapi_extra=acts(Action.DATA_ANALYSE))
def project_coding(project_id: str, coding_id: int, who: Caller, ctx: Ctx,
                   search: Annotated[str | None, Query(max_length=200)] = None,
                   offset: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int, Query(ge=1, le=projects.MAX_CODES)] = 100
                   ) -> CodingOut:
    """The codes and meanings of a coding a granted field uses; ``search`` keeps those whose
    code or meaning holds it (any case), ``offset`` and ``limit`` page through the rest."""
    found = projects.coding(ctx, who, project_id, coding_id, search=search, offset=offset,
                            limit=limit)
    return CodingOut(coding_id=found.coding_id, total=found.total,
                     codes=[CodeOut(code=c, meaning=m) for c, m in found.codes])


# -- identity across accounts --------------------------------------------------------------

@router.post("/people/{person_id}/orcid", response_model=PersonOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def set_orcid(person_id: str, body: OrcidIn, who: Caller, ctx: Ctx) -> PersonOut:
    """Record or clear (null) a person's ORCID iD; accounts with one ORCID are one human."""
    identity.set_orcid(ctx, who, person_id, body.orcid)
    return person_out(*people.read(ctx, who, person_id))


@router.get("/people/{person_id}/accounts", response_model=AccountsOut, tags=["people"],
            openapi_extra=acts(Action.PERSON_READ))
def accounts_of(person_id: str, who: Caller, ctx: Ctx) -> AccountsOut:
    """The accounts that share this person's allowance (the same human)."""
    return AccountsOut(person_id=person_id,
                       accounts=list(identity.same_human(ctx, who, person_id)))


@router.get("/identity/duplicates", response_model=list[SuspectOut], tags=["people"],
            openapi_extra=acts(Action.PERSON_READ))
def suspected_duplicates(who: Caller, ctx: Ctx) -> list[SuspectOut]:
    """Accounts that look like one human, and why: shared (one allowance now) or weaker."""
    return [SuspectOut(accounts=[AccountOut.model_validate(a) for a in s.accounts],
                       why=list(s.why), shared=s.shared)
            for s in identity.duplicates(ctx, who)]


@router.get("/identity/links", response_model=list[LinkOut], tags=["people"],
            openapi_extra=acts(Action.PERSON_READ))
def list_links(who: Caller, ctx: Ctx) -> list[LinkOut]:
    return [LinkOut.model_validate(k) for k in identity.links(ctx, who)]


@router.post("/identity/links", response_model=LinkOut, status_code=201, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def link(body: LinkIn, who: Caller, ctx: Ctx) -> LinkOut:
    """Say two accounts are one human (same: one person allowance) or two (distinct)."""
    return LinkOut.model_validate(identity.link(ctx, who, body.person_id, body.same_as,
                                                reason=body.reason, relation=body.relation))


@router.post("/identity/unlink", response_model=LinkOut, tags=["people"],
             openapi_extra=acts(Action.PERSON_WRITE))
def unlink(body: UnlinkIn, who: Caller, ctx: Ctx) -> LinkOut:
    """End a custodian's link between two accounts."""
    return LinkOut.model_validate(identity.unlink(ctx, who, body.person_id, body.same_as,
                                                  reason=body.reason))


# -- pauses --------------------------------------------------------------------------------

@router.get("/pauses", response_model=list[PauseOut], tags=["pauses"],
            openapi_extra=acts(Action.PAUSE_READ))
def list_pauses(who: Caller, ctx: Ctx, include_lifted: bool = False) -> list[PauseOut]:
    return [pause_out(v) for v in pauses.list_pauses(ctx, who, include_lifted)]


@router.post("/pauses", response_model=PauseOut, status_code=201, tags=["pauses"],
             openapi_extra=acts(Action.PAUSE_SET))
def set_pause(body: PauseIn, who: Caller, ctx: Ctx) -> PauseOut:
    return pause_out(pauses.set_pause(ctx, who, body.level.value, body.target_id, body.reason))


@router.post("/pauses/{pause_id}/lift", response_model=PauseOut, tags=["pauses"],
             openapi_extra=acts(Action.PAUSE_LIFT))
def lift_pause(pause_id: str, who: Caller, ctx: Ctx) -> PauseOut:
    """Lift a pause; a platform or institution pause needs a second admin to call this too."""
    return pause_out(pauses.lift(ctx, who, pause_id))
