"""Console pages for the custodian: institutions, people, projects, pauses, extracts, attribution.

Every page calls the same access and extracts services as the API routes in
``server/routes/admin.py`` and ``cli/extracts.py``, with the signed-in person's principal, so the
services decide who may do what (e.g. only the access committee approves an export permission,
a platform or institution pause needs two custodian admins to lift). The pages only hide the
buttons a person's roles cannot use. A form that fails is shown again with the service's
reasons and what was typed; a form that works redirects to the page showing the result.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from strongroom.access import identity, institutions, pauses, people, projects
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Person
from strongroom.access.pauses import PauseView
from strongroom.access.permissions import Action, who_may
from strongroom.access.roles import ROLE_DESCRIPTIONS, Role
from strongroom.access.states import ExportStatus, PauseLevel, PauseState, Vetting
from strongroom.errors import Invalid, NotFound, Refused, ServiceError
from strongroom.extracts import manifest as extract_manifest
from strongroom.extracts import service as extracts
from strongroom.extracts import tables as suspect_tables
from strongroom.platform import Platform
from strongroom.server.security import acts
from strongroom.server.statuses import status_of
from strongroom.server.web import charts
from strongroom.server.web.names import Names, readable
from strongroom.server.web.pages import PREFIX, Access, Waiting, paged, render, section

router = APIRouter(include_in_schema=False)
BASE = PREFIX + "/custodian"
MAX_SUSPECT_BYTES = suspect_tables.MAX_BYTES  # a leaked 500,000-row CSV is well under this
CHUNK = 1 << 20

Custodian = Annotated[Principal, Depends(section("Custodian"))]


# extracts and attribution: the custodian's records and the security analyst's tool
Overseer = Annotated[Principal, Depends(section("Custodian", "Security"))]


def _platform(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


def _may(who: Principal, *actions: Action) -> dict[str, bool]:
    return {a.name.lower(): not who_may(a, who.roles) for a in actions}


def _see(where: str) -> Response:
    return RedirectResponse(where, status_code=303)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


@dataclass
class Failed:
    """A form that did not work: the status, the reasons and what was typed."""

    status: int
    errors: list[str]
    form: dict[str, Any]


def _attempt(change: Callable[[], object], form: dict[str, Any]) -> Failed | None:
    try:
        change()
    except ServiceError as exc:
        return Failed(status_of(exc), exc.reasons, form)
    return None


# -- overview ------------------------------------------------------------------------------

def waiting(ctx: AccessContext, who: Principal) -> list[Waiting]:
    """What waits for a custodian: the home page's card."""
    views = projects.list_visible(ctx, who)
    held = pauses.list_pauses(ctx, who)
    return [
        Waiting("export requests waiting for a decision", _requested(views),
                f"{BASE}/projects#requests"),
        Waiting("lifts waiting for a second admin", len(_lifts(held)), f"{BASE}/pauses"),
        Waiting("pauses and suspensions in force", len(held), f"{BASE}/pauses"),
    ]


def _requested(views: list[projects.ProjectView]) -> int:
    """Projects whose export request waits for the committee."""
    return sum(v.project.export == ExportStatus.REQUESTED for v in views)


def _lifts(held: list[pauses.PauseView]) -> list[pauses.PauseView]:
    """Pauses whose lift waits for a second custodian admin."""
    return [v for v in held if v.state is PauseState.LIFT_REQUESTED]


@router.get(BASE, openapi_extra=acts(Action.INSTITUTION_READ))
def overview(request: Request, who: Custodian, ctx: Access) -> Response:
    """What needs a custodian's eye: counts that link to their pages."""
    views = projects.list_visible(ctx, who)
    held = pauses.list_pauses(ctx, who)
    may = _may(who, Action.EXTRACT_READ, Action.ATTRIBUTE)
    counts = [
        ("Institutions", len(institutions.list_all(ctx, who)), f"{BASE}/institutions"),
        ("People", len(people.list_all(ctx, who)), f"{BASE}/people"),
        ("Projects", len(views), f"{BASE}/projects"),
        ("Export requests waiting", _requested(views), f"{BASE}/projects#requests"),
        ("Active pauses", sum(v.pause.kind == pauses.MANUAL for v in held), f"{BASE}/pauses"),
        ("Active suspensions", sum(v.pause.kind == pauses.SUSPENSION for v in held),
         f"{BASE}/pauses#suspensions"),
    ]
    if may["extract_read"]:
        counts.append(("Extracts", len(extracts.manifests(ctx, who)), f"{BASE}/extracts"))
    return render(request, "custodian/overview.html", who, counts=counts, may=may,
                  lifts=_lifts(held), cohort=_cohort(_platform(request)))


def _cohort(platform: Platform) -> dict[str, Any] | None:
    """The cohort in use, as its version records it: counts and dates, no participant value
    (None before the first ingest)."""
    version = platform.store.current()
    if version is None:
        return None
    return {"id": version.id, "participants": version.participants,
            "ingested": version.created_at,
            "tables": sorted((name, int(t.get("rows", 0))) for name, t in version.tables.items())}


# -- institutions --------------------------------------------------------------------------

def _institutions_page(request: Request, who: Principal, ctx: AccessContext,
                       failed: Failed | None = None, q: str = "", page: int = 1) -> Response:
    listed = paged(institutions.list_all(ctx, who),
                   lambda i: f"{i.name} {i.id} {i.country} {i.jurisdiction} {i.status}", q, page)
    return render(request, "custodian/institutions.html", who,
                  status=failed.status if failed else 200,
                  errors=failed.errors if failed else [],
                  form=failed.form if failed else {},
                  institutions=listed.items, listed=listed,
                  may=_may(who, Action.INSTITUTION_WRITE, Action.INSTITUTION_REVOKE))


@router.get(BASE + "/institutions", openapi_extra=acts(Action.INSTITUTION_READ))
def list_institutions(request: Request, who: Custodian, ctx: Access, q: str = "",
                      page: int = 1) -> Response:
    return _institutions_page(request, who, ctx, q=q, page=page)


@router.post(BASE + "/institutions", openapi_extra=acts(Action.INSTITUTION_WRITE))
def add_institution(request: Request, who: Custodian, ctx: Access,
                    name: Annotated[str, Form()] = "", country: Annotated[str, Form()] = "",
                    jurisdiction: Annotated[str, Form()] = "",
                    networks: Annotated[str, Form()] = "") -> Response:
    form = {"name": name, "country": country, "jurisdiction": jurisdiction,
            "networks": networks}
    failed = _attempt(lambda: institutions.create(
        ctx, who, name=name, country=country.strip().upper(), jurisdiction=jurisdiction,
        networks=_lines(networks)), form)
    if failed:
        return _institutions_page(request, who, ctx, failed)
    return _see(f"{BASE}/institutions?added=1")


@router.get(BASE + "/institutions/{institution_id}/revoke",
            openapi_extra=acts(Action.INSTITUTION_READ))
def confirm_revoke(request: Request, institution_id: str, who: Custodian,
                   ctx: Access) -> Response:
    """The confirmation step: what revoking does, and the reason to record."""
    return render(request, "custodian/revoke.html", who,
                  institution=institutions.read(ctx, who, institution_id), reason="")


@router.post(BASE + "/institutions/{institution_id}/revoke",
             openapi_extra=acts(Action.INSTITUTION_REVOKE))
def revoke_institution(request: Request, institution_id: str, who: Custodian, ctx: Access,
                       reason: Annotated[str, Form()] = "") -> Response:
    try:
        institutions.revoke(ctx, who, institution_id, reason)
    except ServiceError as exc:
        return render(request, "custodian/revoke.html", who, status=status_of(exc),
                      errors=exc.reasons, reason=reason,
                      institution=institutions.read(ctx, who, institution_id))
    return _see(f"{BASE}/institutions")


@router.post(BASE + "/institutions/{institution_id}/reinstate",
             openapi_extra=acts(Action.INSTITUTION_REVOKE))
def reinstate_institution(request: Request, institution_id: str, who: Custodian,
                          ctx: Access) -> Response:
    failed = _attempt(lambda: institutions.reinstate(ctx, who, institution_id), {})
    if failed:
        return _institutions_page(request, who, ctx, failed)
    return _see(f"{BASE}/institutions")


# -- people --------------------------------------------------------------------------------

def _people_page(request: Request, who: Principal, ctx: AccessContext,
                 failed: Failed | None = None, q: str = "", page: int = 1) -> Response:
    places = institutions.list_all(ctx, who)
    names = {i.id: i.name for i in places}
    listed = paged(people.list_all(ctx, who), lambda pr: (
        f"{pr[0].name} {pr[0].email} {pr[0].id} {names.get(pr[0].institution_id, '')} "
        f"{' '.join(pr[1])} {pr[0].status} {pr[0].vetting}"), q, page)
    return render(request, "custodian/people.html", who,
                  status=failed.status if failed else 200,
                  errors=failed.errors if failed else [],
                  form=failed.form if failed else {"roles": []},
                  people=listed.items, listed=listed,
                  names=names, suspects=identity.duplicates(ctx, who),
                  links=identity.links(ctx, who),
                  open_institutions=[i for i in places if i.status == "active"],
                  all_roles=[(r.value, ROLE_DESCRIPTIONS[r]) for r in Role],
                  may=_may(who, Action.PERSON_WRITE))


@router.get(BASE + "/people", openapi_extra=acts(Action.PERSON_READ))
def list_people(request: Request, who: Custodian, ctx: Access, q: str = "",
                page: int = 1) -> Response:
    return _people_page(request, who, ctx, q=q, page=page)


def _qr(uri: str) -> Markup:
    """The otpauth URI as an inline SVG QR code (drawn by segno; no text of the person's)."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=4, light="#fff",
                                                 svgclass="qr", title="Authenticator QR code")
    return Markup(svg)  # noqa: S704 — segno's own markup; the URI is only in the path's data


@router.post(BASE + "/people", openapi_extra=acts(Action.PERSON_WRITE))
def add_person(request: Request, who: Custodian, ctx: Access,
               institution_id: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
               name: Annotated[str, Form()] = "",
               roles: Annotated[list[str] | None, Form()] = None,
               password: Annotated[str, Form()] = "",
               orcid: Annotated[str, Form()] = "") -> Response:
    """Register a person and show their authenticator enrolment once (never again)."""
    chosen = roles or []
    form = {"institution_id": institution_id, "email": email, "name": name, "roles": chosen,
            "orcid": orcid}
    if not institution_id:
        return _people_page(request, who, ctx,
                            Failed(400, ["choose the person's institution"], form))
    try:
        new = people.create(ctx, who, institution_id=institution_id, email=email, name=name,
                            roles=chosen, password=password or None, orcid=orcid or None)
    except ServiceError as exc:
        return _people_page(request, who, ctx, Failed(status_of(exc), exc.reasons, form))
    answer = render(request, "custodian/enrolled.html", who, new=new, qr=_qr(new.totp_uri))
    answer.headers["Cache-Control"] = "no-store"  # the secrets must not stay in a cache
    return answer


def _person_page(request: Request, who: Principal, ctx: AccessContext, person_id: str,
                 failed: Failed | None = None) -> Response:
    person, roles, training = people.read(ctx, who, person_id)
    return render(request, "custodian/person.html", who,
                  status=failed.status if failed else 200,
                  errors=failed.errors if failed else [],
                  person=person, person_roles=sorted(r.value for r in roles),
                  training=training,
                  same_human=[a for a in identity.same_human(ctx, who, person_id)
                              if a != person_id],
                  institution=institutions.read(ctx, who, person.institution_id),
                  other_roles=[r.value for r in Role if r not in roles],
                  vettings=[v.value for v in Vetting if v is not Vetting.PENDING],
                  may=_may(who, Action.PERSON_WRITE))


@router.get(BASE + "/people/{person_id}", openapi_extra=acts(Action.PERSON_READ))
def read_person(request: Request, person_id: str, who: Custodian, ctx: Access) -> Response:
    return _person_page(request, who, ctx, person_id)


def _change_person(request: Request, who: Principal, ctx: AccessContext, person_id: str,
                   change: Callable[[], object]) -> Response:
    failed = _attempt(change, {})
    if failed:
        return _person_page(request, who, ctx, person_id, failed)
    return _see(f"{BASE}/people/{person_id}")


@router.post(BASE + "/people/{person_id}/roles", openapi_extra=acts(Action.PERSON_WRITE))
def grant_role(request: Request, person_id: str, who: Custodian, ctx: Access,
               role: Annotated[str, Form()] = "") -> Response:
    return _change_person(request, who, ctx, person_id,
                          lambda: people.grant_role(ctx, who, person_id, role))


@router.post(BASE + "/people/{person_id}/roles/revoke",
             openapi_extra=acts(Action.PERSON_WRITE))
def revoke_role(request: Request, person_id: str, who: Custodian, ctx: Access,
                role: Annotated[str, Form()] = "") -> Response:
    return _change_person(request, who, ctx, person_id,
                          lambda: people.revoke_role(ctx, who, person_id, role))


@router.post(BASE + "/people/{person_id}/vetting", openapi_extra=acts(Action.PERSON_WRITE))
def set_vetting(request: Request, person_id: str, who: Custodian, ctx: Access,
                status: Annotated[str, Form()] = "") -> Response:
    return _change_person(request, who, ctx, person_id,
                          lambda: people.set_vetting(ctx, who, person_id, status))


@router.post(BASE + "/people/{person_id}/active", openapi_extra=acts(Action.PERSON_WRITE))
def set_active(request: Request, person_id: str, who: Custodian, ctx: Access,
               active: Annotated[str, Form()] = "") -> Response:
    return _change_person(request, who, ctx, person_id,
                          lambda: people.set_active(ctx, who, person_id, active == "yes"))


@router.post(BASE + "/people/{person_id}/orcid", openapi_extra=acts(Action.PERSON_WRITE))
def set_orcid(request: Request, person_id: str, who: Custodian, ctx: Access,
              orcid: Annotated[str, Form()] = "") -> Response:
    """Record (or, left empty, clear) a person's ORCID iD."""
    return _change_person(request, who, ctx, person_id,
                          lambda: identity.set_orcid(ctx, who, person_id, orcid or None))


def _linked(request: Request, who: Principal, ctx: AccessContext, change: Callable[[], object],
            form: dict[str, Any]) -> Response:
    failed = _attempt(change, form)
    if failed:
        return _people_page(request, who, ctx, failed)
    return _see(f"{BASE}/people#duplicates")


@router.post(BASE + "/people/links", openapi_extra=acts(Action.PERSON_WRITE))
def link_accounts(request: Request, who: Custodian, ctx: Access,
                  person_id: Annotated[str, Form()] = "", same_as: Annotated[str, Form()] = "",
                  relation: Annotated[str, Form()] = identity.SAME,
                  reason: Annotated[str, Form()] = "") -> Response:
    """Link two accounts as one human (one person allowance), or mark them distinct."""
    return _linked(request, who, ctx, lambda: identity.link(
        ctx, who, person_id.strip(), same_as.strip(), reason=reason, relation=relation),
        {"person_id": person_id, "same_as": same_as, "relation": relation, "reason": reason})


@router.post(BASE + "/people/unlink", openapi_extra=acts(Action.PERSON_WRITE))
def unlink_accounts(request: Request, who: Custodian, ctx: Access,
                    person_id: Annotated[str, Form()] = "",
                    same_as: Annotated[str, Form()] = "",
                    reason: Annotated[str, Form()] = "") -> Response:
    """End a custodian's link between two accounts."""
    return _linked(request, who, ctx, lambda: identity.unlink(
        ctx, who, person_id.strip(), same_as.strip(), reason=reason), {})


# -- projects ------------------------------------------------------------------------------

def _researchers(ctx: AccessContext, who: Principal) -> list[Person]:
    return [p for p, roles in people.list_all(ctx, who) if Role.RESEARCHER in roles]


def _projects_page(request: Request, who: Principal, ctx: AccessContext,
                   failed: Failed | None = None, q: str = "", page: int = 1) -> Response:
    views = projects.list_visible(ctx, who)
    researchers = _researchers(ctx, who)
    names = {p.id: p.name for p, _ in people.list_all(ctx, who)}
    listed = paged(views, lambda v: (f"{v.project.title} {v.project.id} {v.project.status} "
                                     f"{v.project.export} {names.get(v.project.lead_id, '')}"),
                   q, page)
    return render(request, "custodian/projects.html", who, listed=listed,
                  status=failed.status if failed else 200,
                  errors=failed.errors if failed else [],
                  form=failed.form if failed else {"members": [], "picked": []},
                  dictionary=_dictionary(ctx),
                  projects=listed.items, researchers=researchers, names=names,
                  requests=[v for v in views if v.project.export == ExportStatus.REQUESTED],
                  today=dt.date.today(),
                  may=_may(who, Action.PROJECT_CREATE, Action.EXPORT_APPROVE))


@router.get(BASE + "/projects", openapi_extra=acts(Action.PROJECT_READ))
def list_projects(request: Request, who: Custodian, ctx: Access, q: str = "",
                  page: int = 1) -> Response:
    return _projects_page(request, who, ctx, q=q, page=page)


def _date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"the {what} {value!r} is not a date such as 2026-01-31") from None


def _field_ids(text: str, picked: list[str] | None = None) -> list[int]:
    """The ids typed and the ones picked from the dictionary, once each, in order."""
    words = [*text.replace(",", " ").split(), *(picked or [])]
    bad = [t for t in words if not t.isdigit()]
    if bad:
        raise Invalid(f"field ids are whole numbers such as 31 or 21001, not "
                      f"{', '.join(repr(b) for b in bad[:5])}")
    return list(dict.fromkeys(int(t) for t in words))


def _dictionary(ctx: AccessContext) -> list[tuple[str, list[tuple[int, str, bool]]]]:
    """The data dictionary's fields by role, for picking grants (ids stay the truth)."""
    by_role: dict[str, list[tuple[int, str, bool]]] = {}
    for f in sorted(ctx.dictionary, key=lambda f: (f.role.value, f.name)):
        by_role.setdefault(f.role.value, []).append(
            (f.field_id, f.name, f.coding_id is not None))
    return sorted(by_role.items())


@router.post(BASE + "/projects", openapi_extra=acts(Action.PROJECT_CREATE))
def create_project(request: Request, who: Custodian, ctx: Access,
                   title: Annotated[str, Form()] = "", purpose: Annotated[str, Form()] = "",
                   lead_id: Annotated[str, Form()] = "",
                   members: Annotated[list[str] | None, Form()] = None,
                   starts_on: Annotated[str, Form()] = "",
                   expires_on: Annotated[str, Form()] = "",
                   fields: Annotated[str, Form()] = "",
                   picked: Annotated[list[str] | None, Form()] = None) -> Response:
    form = {"title": title, "purpose": purpose, "lead_id": lead_id, "members": members or [],
            "starts_on": starts_on, "expires_on": expires_on, "fields": fields,
            "picked": picked or []}
    made: list[str] = []

    def create() -> None:
        if not lead_id:
            raise Invalid("choose the project's lead (a researcher)")
        made.append(projects.create(
            ctx, who, title=title, purpose=purpose, lead_id=lead_id,
            starts_on=_date(starts_on, "start date"),
            expires_on=_date(expires_on, "expiry date"), fields=_field_ids(fields, picked),
            members=members or []).project.id)

    failed = _attempt(create, form)
    if failed:
        return _projects_page(request, who, ctx, failed)
    return _see(f"{BASE}/projects/{made[0]}")


def _project_page(request: Request, who: Principal, ctx: AccessContext, project_id: str,
                  failed: Failed | None = None) -> Response:
    view = projects.read(ctx, who, project_id)
    names = {p.id: p.name for p, _ in people.list_all(ctx, who)}
    fields = [(f, ctx.dictionary.fields[f].name if f in ctx.dictionary.fields else "?")
              for f in view.fields]
    return render(request, "custodian/project.html", who,
                  status=failed.status if failed else 200,
                  errors=failed.errors if failed else [],
                  view=view, project=view.project, names=names, fields=fields,
                  dictionary=_dictionary(ctx),
                  chosen={int(p) for p in (failed.form.get("picked") or [])
                          if str(p).isdigit()} if failed and failed.form else set(view.fields),
                  may=_may(who, Action.PROJECT_WRITE, Action.EXPORT_APPROVE,
                           Action.RISK_READ))


@router.get(BASE + "/projects/{project_id}", openapi_extra=acts(Action.PROJECT_READ))
def read_project(request: Request, project_id: str, who: Custodian, ctx: Access) -> Response:
    return _project_page(request, who, ctx, project_id)


@router.get(BASE + "/projects/{project_id}/risk", openapi_extra=acts(Action.RISK_READ))
def project_risk(request: Request, project_id: str, who: Custodian) -> Response:
    """The re-identification risk of an extract of the project's granted fields (a fragment
    the project page loads on request: it reads the whole cohort, counts only)."""
    platform = _platform(request)
    try:
        report = extracts.candidate_risk(platform.access, who, project_id,
                                         store=platform.store)
    except ServiceError as exc:
        return render(request, "custodian/_risk.html", who, status=status_of(exc),
                      errors=exc.reasons, report=None)
    bands = [(row["sizes"], float(row["records"])) for row in report["class_sizes"]]
    chart = charts.bars(bands, "Participants by the size of their class", unit=" people",
                        counts=True)
    return render(request, "custodian/_risk.html", who, errors=[], report=report,
                  chart=chart)


@router.post(BASE + "/projects/{project_id}/fields", openapi_extra=acts(Action.PROJECT_WRITE))
def set_fields(request: Request, project_id: str, who: Custodian, ctx: Access,
               fields: Annotated[str, Form()] = "",
               picked: Annotated[list[str] | None, Form()] = None) -> Response:
    """Replace the grants with the fields picked from the dictionary (and any typed)."""
    failed = _attempt(lambda: projects.set_fields(ctx, who, project_id,
                                                  _field_ids(fields, picked)),
                      {"fields": fields, "picked": picked or []})
    if failed:
        return _project_page(request, who, ctx, project_id, failed)
    return _see(f"{BASE}/projects/{project_id}")


@router.post(BASE + "/projects/{project_id}/genotypes",
             openapi_extra=acts(Action.PROJECT_WRITE))
def set_genotypes(request: Request, project_id: str, who: Custodian, ctx: Access,
                  granted: Annotated[str, Form()] = "") -> Response:
    failed = _attempt(lambda: projects.set_genotypes(ctx, who, project_id, granted == "true"),
                      {"granted": granted})
    if failed:
        return _project_page(request, who, ctx, project_id, failed)
    return _see(f"{BASE}/projects/{project_id}")


@router.post(BASE + "/projects/{project_id}/export",
             openapi_extra=acts(Action.EXPORT_APPROVE))
def decide_export(request: Request, project_id: str, who: Custodian, ctx: Access,
                  decision: Annotated[str, Form()] = "") -> Response:
    def decide() -> None:
        if decision not in ("approve", "refuse"):
            raise Invalid("choose approve or refuse")
        projects.decide_export(ctx, who, project_id, decision == "approve")

    failed = _attempt(decide, {})
    if failed:
        return _project_page(request, who, ctx, project_id, failed)
    return _see(f"{BASE}/projects/{project_id}")


# -- pauses --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PauseRow:
    """A pause as the page shows it: its target by name, and where its lift stands."""

    view: PauseView
    target: str
    set_by: str
    lift: str
    button: str | None  # the lift button's label, or None when nothing is left to do


def _lift_state(view: PauseView, names: dict[str, str]) -> tuple[str, str | None]:
    pause = view.pause
    if view.state is PauseState.LIFTED:
        return (f"lifted by {names.get(pause.lifted_by or '', pause.lifted_by)}", None)
    if not pauses.needs_two(pause):
        return ("one custodian admin can lift it", "Lift")
    if view.state is PauseState.LIFT_REQUESTED:
        asked = names.get(pause.lift_requested_by or "", pause.lift_requested_by)
        return (f"approval 1 of 2: {asked} asked to lift it; still needed: a different "
                f"custodian admin to confirm", "Confirm lift (second admin)")
    return ("needs two custodian admins: approvals 0 of 2 (one asks, a different one "
            "confirms)", "Ask to lift (first admin)")


def _pauses_page(request: Request, who: Principal, ctx: AccessContext,
                 failed: Failed | None = None) -> Response:
    known = Names(ctx, who)
    targets = known.labelled()
    names = {k: v for k, v in known.all().items() if k.startswith("per_")}
    names["watch"] = "watch (automatic)"
    rows = []
    for view in reversed(pauses.list_pauses(ctx, who, include_lifted=True)):
        lift, button = _lift_state(view, names)
        target = ("the whole platform" if view.pause.target_id is None
                  else targets.get(view.pause.target_id, view.pause.target_id))
        rows.append(PauseRow(view, target, names.get(view.pause.set_by, view.pause.set_by),
                             lift, button))
    current = [r for r in rows if r.view.state is not PauseState.LIFTED]
    return render(request, "custodian/pauses.html", who,
                  status=failed.status if failed else 200,
                  errors=failed.errors if failed else [],
                  form=failed.form if failed else {},
                  manual=[r for r in current if r.view.pause.kind == pauses.MANUAL],
                  suspensions=[r for r in current if r.view.pause.kind == pauses.SUSPENSION],
                  lifted=[r for r in rows if r.view.state is PauseState.LIFTED][:20],
                  targets=sorted(targets.items(), key=lambda kv: kv[1]),
                  levels=[v.value for v in PauseLevel],
                  may=_may(who, Action.PAUSE_SET, Action.PAUSE_LIFT))


@router.get(BASE + "/pauses", openapi_extra=acts(Action.PAUSE_READ))
def list_pauses(request: Request, who: Custodian, ctx: Access) -> Response:
    return _pauses_page(request, who, ctx)


@router.post(BASE + "/pauses", openapi_extra=acts(Action.PAUSE_SET))
def set_pause(request: Request, who: Custodian, ctx: Access,
              level: Annotated[str, Form()] = "", target_id: Annotated[str, Form()] = "",
              reason: Annotated[str, Form()] = "") -> Response:
    form = {"level": level, "target_id": target_id, "reason": reason}
    failed = _attempt(lambda: pauses.set_pause(ctx, who, level, target_id.strip() or None,
                                               reason), form)
    if failed:
        return _pauses_page(request, who, ctx, failed)
    return _see(f"{BASE}/pauses")


@router.post(BASE + "/pauses/{pause_id}/lift", openapi_extra=acts(Action.PAUSE_LIFT))
def lift_pause(request: Request, pause_id: str, who: Custodian, ctx: Access) -> Response:
    failed = _attempt(lambda: pauses.lift(ctx, who, pause_id), {})
    if failed:
        return _pauses_page(request, who, ctx, failed)
    return _see(f"{BASE}/pauses")


# -- extracts ------------------------------------------------------------------------------

def _labels(ctx: AccessContext, who: Principal) -> dict[str, str]:
    """Names of institutions, projects and people, where the person may read them."""
    return readable(ctx, who)


@router.get(BASE + "/extracts", openapi_extra=acts(Action.EXTRACT_READ))
def list_extracts(request: Request, who: Overseer, ctx: Access) -> Response:
    found = list(reversed(extracts.manifests(ctx, who)))
    return render(request, "custodian/extracts.html", who, extracts=found,
                  labels=_labels(ctx, who))


@router.get(BASE + "/extracts/{extract_id}", openapi_extra=acts(Action.EXTRACT_READ))
def read_extract(request: Request, extract_id: str, who: Overseer, ctx: Access) -> Response:
    found = {m.id: m for m in extracts.manifests(ctx, who)}
    if extract_id not in found:
        raise NotFound(f"there is no extract {extract_id}")
    record = found[extract_id]
    fields = [(f, ctx.dictionary.fields[f].name if f in ctx.dictionary.fields else "?")
              for f in record.fields]
    return render(request, "custodian/extract.html", who, record=record, fields=fields,
                  digest=extract_manifest.digest(record), labels=_labels(ctx, who),
                  carriers=extract_manifest.carriers_of(record))


# -- attribution ---------------------------------------------------------------------------

def _bound(log_bound: float) -> str:
    """A false-accusation bound for people (10^x past what a float holds)."""
    if log_bound < -690:
        return f"10^{log_bound / math.log(10):.0f}"
    return f"{math.exp(min(log_bound, 0.0)):.2e}"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):,.0f} MiB"


@router.get(BASE + "/attribution", openapi_extra=acts(Action.ATTRIBUTE))
def attribution_form(request: Request, who: Overseer) -> Response:
    refused = who_may(Action.ATTRIBUTE, who.roles)  # the form only: the service checks all
    if refused:
        raise Refused(refused)
    return render(request, "custodian/attribution.html", who, report=None,
                  limit=_mib(MAX_SUSPECT_BYTES))


def _keep(upload: UploadFile, folder: Path) -> Path:
    """Copy the upload into ``folder`` (refusing it past the limit); the copy's path."""
    name = Path(upload.filename or "suspect").name or "suspect"
    target = folder / name
    size = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(CHUNK):
            size += len(chunk)
            if size > MAX_SUSPECT_BYTES:
                raise Invalid(f"the file is larger than {_mib(MAX_SUSPECT_BYTES)}; send a "
                              f"sample of its rows (a few thousand are plenty to attribute)")
            out.write(chunk)
    if size == 0:
        raise Invalid(f"{name} is empty; choose the suspect file (CSV, Parquet or Excel)")
    return target


@router.post(BASE + "/attribution", openapi_extra=acts(Action.ATTRIBUTE))
def attribute(request: Request, who: Overseer, ctx: Access,
              suspect: Annotated[UploadFile | None, File()] = None) -> Response:
    """Attribute an uploaded leak; the upload and its evidence pack live only in a temporary
    directory, deleted before the answer is sent (the audit log keeps the verdict)."""
    limit = _mib(MAX_SUSPECT_BYTES)
    if suspect is None or not suspect.filename:
        return render(request, "custodian/attribution.html", who, status=400, report=None,
                      limit=limit, errors=["choose the suspect file (CSV, Parquet or Excel)"])
    folder = Path(tempfile.mkdtemp(prefix="strongroom-attribute-"))
    try:
        path = _keep(suspect, folder)
        report = extracts.attribute(ctx, who, path, store=_platform(request).store,
                                    evidence=folder / "evidence.md")
        evidence = report.evidence_text()
    except ServiceError as exc:
        return render(request, "custodian/attribution.html", who, status=status_of(exc),
                      report=None, limit=limit, errors=exc.reasons)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return render(request, "custodian/attribution.html", who, report=report, limit=limit,
                  evidence=evidence, bound=_bound, labels=_labels(ctx, who),
                  extracts_by_project=_by_project(report.decoys_found))


def _by_project(hits: Iterable[extracts.DecoyHit]) -> list[tuple[str, str, int]]:
    """Decoys found, counted per extract: (extract, project, count)."""
    counts: dict[tuple[str, str], int] = {}
    for hit in hits:
        counts[(hit.extract_id, hit.project)] = counts.get((hit.extract_id, hit.project), 0) + 1
    return [(e, p, n) for (e, p), n in sorted(counts.items())]
