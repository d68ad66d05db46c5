"""People: their institution, roles, vetting, training, and their two factors."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from strongroom.access import passwords, totp
from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.identity import accounts_of
from strongroom.access.models import Institution, Person, PersonRole, Training
from strongroom.access.names import optional_orcid
from strongroom.access.permissions import Action
from strongroom.access.roles import Role
from strongroom.access.states import InstitutionStatus, PersonStatus, Vetting, advance
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.cohort.crypto import MasterKey, decrypt, encrypt
from strongroom.db import affected
from strongroom.errors import Conflict, Invalid, NotFound

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
VETTING_ACTIONS = {Vetting.APPROVED: "approve", Vetting.REJECTED: "reject",
                   Vetting.LAPSED: "lapse"}


@dataclass(frozen=True)
class NewPerson:
    """A registered person and the secrets shown to them once (never stored in the clear)."""

    person: Person
    roles: list[Role]
    password: str | None  # set when Strongroom generated it
    totp_secret: str
    totp_uri: str


def seal_totp(key: MasterKey, person_id: str, secret: str) -> bytes:
    return encrypt(secret.encode(), key, f"totp:{person_id}")


def open_totp(key: MasterKey, person: Person) -> str:
    return decrypt(person.totp_sealed, key, f"totp:{person.id}").decode()


def get(db: Session, person_id: str) -> Person:
    found = db.get(Person, person_id)
    if found is None:
        raise NotFound(f"there is no person {person_id}")
    return found


def roles_of(db: Session, person_id: str) -> frozenset[Role]:
    return frozenset(Role(r) for r in db.scalars(
        select(PersonRole.role).where(PersonRole.person_id == person_id)))


def parse_roles(names: Iterable[str]) -> list[Role]:
    out = []
    for name in names:
        try:
            out.append(Role(name))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise Invalid(f"{name!r} is not a role; the roles are: {known}") from None
    return sorted(set(out))


def create(ctx: AccessContext, principal: Principal | None, *, institution_id: str,
           email: str, name: str, roles: Iterable[str], password: str | None = None,
           vetting: Vetting = Vetting.PENDING, orcid: str | None = None) -> NewPerson:
    """Register a person; their TOTP secret (and password, if generated) are returned once.
    An ORCID iD another account already has is accepted: the two are then one human and share
    one person allowance (strongroom.access.identity), and the audit event names the others."""
    email = email.strip().lower()
    problems = []
    try:
        orcid = optional_orcid(orcid)
    except Invalid as exc:
        problems.extend(exc.reasons)
    if not EMAIL.match(email) or len(email) > 254:
        problems.append(f"{email!r} is not an email address")
    if not 1 <= len(name.strip()) <= 200:
        problems.append("name must be 1 to 200 characters")
    role_list = parse_roles(roles)
    if not role_list:
        problems.append("give at least one role")
    generated = None
    if password is None:
        password = generated = secrets.token_urlsafe(18)
    try:
        passwords.check_policy(password)
    except passwords.WeakPasswordError as exc:
        problems.append(str(exc))
    if problems:
        raise Invalid(problems)
    if principal is not None:  # before the deliberately slow hash: no free CPU for anyone
        with ctx.transaction() as db:
            authorize(ctx, db, principal, Action.PERSON_WRITE)
    password_hash = passwords.hash_password(password, ctx.settings.password_profile)
    secret = totp.new_secret()
    with ctx.transaction() as db:
        if principal is not None:
            authorize(ctx, db, principal, Action.PERSON_WRITE)
        institution = db.get(Institution, institution_id)
        if institution is None:
            raise NotFound(f"there is no institution {institution_id}")
        if institution.status != InstitutionStatus.ACTIVE:
            raise Conflict(f"institution {institution_id} is {institution.status}; "
                           f"reinstate it before adding people")
        if db.scalar(select(Person.id).where(Person.email == email)):
            raise Conflict(f"someone is already registered with {email}")
        person_id = new_id("per")
        person = Person(id=person_id, institution_id=institution_id, email=email,
                        name=name.strip(), orcid=orcid, password_hash=password_hash,
                        totp_sealed=seal_totp(ctx.key, person_id, secret),
                        vetting=vetting, status=PersonStatus.ACTIVE, created_at=ctx.clock())
        db.add(person)
        db.flush()
        db.add_all(PersonRole(person_id=person_id, role=r.value) for r in role_list)
        # the accounts this one is the same human as, from the first day: an allowance
        # shared is visible where the account was made, not only when a limit bites
        same = [a for a in accounts_of(db, person_id) if a != person_id]
        ctx.record(EventType.PERSON_CREATED, principal or "operator", person_id,
                   {"institution": institution_id, "roles": [r.value for r in role_list],
                    "vetting": vetting.value, "same_human_as": same},
                   {"email": email} | ({"orcid": orcid} if orcid else {}))
    return NewPerson(person, role_list, generated, secret,
                     totp.provisioning_uri(secret, email))


def list_all(ctx: AccessContext, principal: Principal,
             institution_id: str | None = None) -> list[tuple[Person, frozenset[Role]]]:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_READ)
        query = select(Person).order_by(Person.email)
        if institution_id is not None:
            query = query.where(Person.institution_id == institution_id)
        return [(p, roles_of(db, p.id)) for p in db.scalars(query)]


def names(ctx: AccessContext, principal: Principal) -> dict[str, str]:
    """Everyone's name, by ID, for those who may read people (``list_all`` without each
    person's roles): what a page names beside a person's ID."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_READ)
        return {pid: name for pid, name in db.execute(select(Person.id, Person.name))}


def read(ctx: AccessContext, principal: Principal,
         person_id: str) -> tuple[Person, frozenset[Role], list[Training]]:
    with ctx.transaction() as db:
        if person_id != principal.person_id:
            authorize(ctx, db, principal, Action.PERSON_READ)
        else:
            authorize(ctx, db, principal, Action.SELF_READ)
        person = get(db, person_id)
        training = list(db.scalars(select(Training).where(Training.person_id == person_id)
                                   .order_by(Training.expires_on)))
        return person, roles_of(db, person_id), training


def grant_role(ctx: AccessContext, principal: Principal, person_id: str, role: str) -> None:
    (parsed,) = parse_roles([role])
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        get(db, person_id)
        if parsed in roles_of(db, person_id):
            raise Conflict(f"{person_id} already has the role {parsed.value}")
        db.add(PersonRole(person_id=person_id, role=parsed.value))
        ctx.record(EventType.PERSON_ROLE_GRANTED, principal, person_id, {"role": parsed.value})


def revoke_role(ctx: AccessContext, principal: Principal, person_id: str, role: str) -> None:
    (parsed,) = parse_roles([role])
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        get(db, person_id)
        gone = affected(db.execute(delete(PersonRole).where(
            PersonRole.person_id == person_id, PersonRole.role == parsed.value)))
        if not gone:
            raise Conflict(f"{person_id} does not have the role {parsed.value}")
        ctx.record(EventType.PERSON_ROLE_REVOKED, principal, person_id, {"role": parsed.value})


def record_training(ctx: AccessContext, principal: Principal | None, person_id: str, *,
                    course: str, completed_on: dt.date, expires_on: dt.date) -> Training:
    if not 1 <= len(course.strip()) <= 200:
        raise Invalid("course must be 1 to 200 characters")
    if expires_on <= completed_on:
        raise Invalid(f"training cannot expire ({expires_on}) on or before it was completed "
                      f"({completed_on})")
    if completed_on > ctx.clock().date():
        raise Invalid(f"training cannot be completed in the future ({completed_on})")
    with ctx.transaction() as db:
        if principal is not None:
            authorize(ctx, db, principal, Action.PERSON_WRITE)
        get(db, person_id)
        record = Training(person_id=person_id, course=course.strip(),
                          completed_on=completed_on, expires_on=expires_on)
        db.add(record)
        ctx.record(EventType.PERSON_TRAINING_RECORDED, principal or "operator", person_id,
                   {"course": course.strip(), "completed_on": completed_on.isoformat(),
                    "expires_on": expires_on.isoformat()})
    return record


def set_vetting(ctx: AccessContext, principal: Principal, person_id: str,
                status: str) -> Person:
    try:
        target = Vetting(status)
        action = VETTING_ACTIONS[target]
    except (ValueError, KeyError):
        raise Invalid(f"vetting can be set to approved, rejected or lapsed, not {status!r}"
                      ) from None
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        person = get(db, person_id)
        person.vetting = advance(Vetting(person.vetting), action, f"{person_id}'s vetting")
        ctx.record(EventType.PERSON_VETTING_CHANGED, principal, person_id, {"vetting": status})
    return person


def unlock(ctx: AccessContext, principal: Principal, person_id: str) -> Person:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        person = get(db, person_id)
        person.failed_logins, person.locked_until = 0, None
        ctx.record(EventType.PERSON_UNLOCKED, principal, person_id, {})
    return person


def set_active(ctx: AccessContext, principal: Principal, person_id: str,
               active: bool) -> Person:
    """Deactivate (sessions and tokens stop at once, by policy) or reactivate a person."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        person = get(db, person_id)
        person.status = advance(PersonStatus(person.status),
                                "reactivate" if active else "deactivate", person_id)
        ctx.record(EventType.PERSON_UPDATED if active else EventType.PERSON_DEACTIVATED,
                   principal, person_id, {"status": person.status})
    return person
