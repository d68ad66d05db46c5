"""The first custodian admin of an empty platform (there is nobody yet to authorise it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select

from strongroom.access import institutions, people
from strongroom.access.context import AccessContext
from strongroom.access.models import Person
from strongroom.access.people import NewPerson
from strongroom.access.roles import Role
from strongroom.access.states import Vetting
from strongroom.errors import Conflict


def bootstrap(ctx: AccessContext, *, institution: str, country: str, jurisdiction: str,
              networks: Sequence[str], email: str, name: str,
              password: str | None = None) -> NewPerson:
    """Register the custodian's institution and its first admin; refused once anyone exists."""
    with ctx.transaction() as db:
        if db.scalar(select(func.count()).select_from(Person)):
            raise Conflict("this platform already has people; custodian admins add others "
                           "with `strongroom admin person add --institution ID --email "
                           "EMAIL --name NAME --role ROLE`")
    home = institutions.create(ctx, None, name=institution, country=country,
                               jurisdiction=jurisdiction, networks=networks)
    admin = people.create(ctx, None, institution_id=home.id, email=email, name=name,
                          roles=[Role.CUSTODIAN_ADMIN.value], password=password,
                          vetting=Vetting.APPROVED)
    today = ctx.clock().date()
    people.record_training(ctx, None, admin.person.id, course="Strongroom custodian induction",
                           completed_on=today, expires_on=today + dt.timedelta(days=365))
    return admin
