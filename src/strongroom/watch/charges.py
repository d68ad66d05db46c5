"""Whom a transfer is charged to, and so what a limit's usage counts.

Every transfer is charged to its project, to the person it goes to (every account of that
human: ``access.identity.accounts_of``), and to two institutions when they differ: the
person's own, and the one that leads the project. Each of their limits applies, and the
smallest wins. Charging only the lead's institution let colleagues at one institution, each a
member of a project led elsewhere, take more than their institution's allowance unseen.

A meter row stores the person's own institution; an exposure row the lead's. What an
institution took is therefore what was stored against it, plus what its people took in
projects led elsewhere (exposures), or what was taken in the projects it leads by people of
other institutions (meter rows).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from strongroom.access.identity import accounts_of
from strongroom.access.models import Person, Project
from strongroom.watch.models import ExposureRow, MeterRow


def people(db: Session, person_id: str) -> Sequence[str]:
    """The accounts whose takes count as this person's: one human, one allowance."""
    return accounts_of(db, person_id)


def _people_at(institution_id: str) -> ColumnElement[bool]:
    return select(Person.id).where(Person.institution_id == institution_id).scalar_subquery()


def _projects_led_at(institution_id: str) -> ColumnElement[bool]:
    return (select(Project.id).join(Person, Project.lead_id == Person.id)
            .where(Person.institution_id == institution_id).scalar_subquery())


def meter_taken(db: Session, column: str, target_id: str) -> ColumnElement[bool]:
    """Meter rows charged to the project, person or institution ``target_id``."""
    if column == "person_id":
        return MeterRow.person_id.in_(list(people(db, target_id)))
    if column == "institution_id":
        return or_(MeterRow.institution_id == target_id,
                   MeterRow.project_id.in_(_projects_led_at(target_id)))
    return getattr(MeterRow, column) == target_id  # type: ignore[no-any-return]


def exposure_taken(db: Session, column: str, target_id: str) -> ColumnElement[bool]:
    """Exposure rows (record-level exports) charged to ``target_id``."""
    if column == "person_id":
        return ExposureRow.person_id.in_(list(people(db, target_id)))
    if column == "institution_id":
        return or_(ExposureRow.institution_id == target_id,
                   ExposureRow.person_id.in_(_people_at(target_id)))
    return getattr(ExposureRow, column) == target_id  # type: ignore[no-any-return]
