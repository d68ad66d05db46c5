"""Which participants each project (and the person it went to, and their institution) has
received record-level: sealed roaring bitmaps of master IDs, one per export, so "distinct
participants in 30 days" or "ever" is exact, not a sum of row counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.cohort.crypto import MasterKey, decrypt, encrypt
from strongroom.watch import charges
from strongroom.watch.models import ExposureRow

CONTEXT = "watch-exposure"


def seal(key: MasterKey, members: BitMap) -> bytes:
    return encrypt(members.serialize(), key, CONTEXT)


def union_since(db: Session, key: MasterKey, column: str, target_id: str,
                since: dt.datetime, jobs: Collection[str] | None = None,
                until: dt.datetime | None = None, within: str | None = None) -> BitMap:
    """Every participant exported to the project (or person, or institution) since ``since``:
    everything charged to it (watch/charges.py).

    ``jobs``: count only ordinary exports and those of these (running) jobs; None: all.
    ``until``: only exports before it. ``within``: only that project's (an institution's
    share of its limit).
    """
    where = [charges.exposure_taken(db, column, target_id), ExposureRow.at >= since]
    if within is not None:
        where.append(ExposureRow.project_id == within)
    if until is not None:
        where.append(ExposureRow.at < until)
    if jobs is not None:
        where.append(ExposureRow.job_id.is_(None) | ExposureRow.job_id.in_(list(jobs)))
    sealed = db.scalars(select(ExposureRow.members_sealed).where(*where))
    return BitMap.union(BitMap(), *(BitMap.deserialize(decrypt(s, key, CONTEXT))
                                    for s in sealed))


def reserve(db: Session, key: MasterKey, project_id: str, institution_id: str,
            at: dt.datetime, members: BitMap, job_id: str | None = None,
            person_id: str | None = None) -> ExposureRow:
    """Count an export before it runs (the caller deletes the row if the export fails)."""
    row = ExposureRow(project_id=project_id, institution_id=institution_id, at=at,
                      participants=len(members), members_sealed=seal(key, members),
                      job_id=job_id, person_id=person_id)
    db.add(row)
    return row
