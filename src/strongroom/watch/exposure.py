"""Which participants each project has received record-level: sealed roaring bitmaps of master
IDs, one per export, so "distinct participants in 30 days" is exact, not a sum of row counts."""

from __future__ import annotations

import datetime as dt

from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.cohort.crypto import MasterKey, decrypt, encrypt
from strongroom.watch.models import ExposureRow

CONTEXT = "watch-exposure"


def seal(key: MasterKey, members: BitMap) -> bytes:
    return encrypt(members.serialize(), key, CONTEXT)


def union_since(db: Session, key: MasterKey, column: str, target_id: str,
                since: dt.datetime) -> BitMap:
    """Every participant exported to the project (or institution) since ``since``."""
    where = getattr(ExposureRow, column) == target_id
    sealed = db.scalars(select(ExposureRow.members_sealed).where(where,
                                                                 ExposureRow.at >= since))
    return BitMap.union(BitMap(), *(BitMap.deserialize(decrypt(s, key, CONTEXT))
                                    for s in sealed))


def reserve(db: Session, key: MasterKey, project_id: str, institution_id: str,
            at: dt.datetime, members: BitMap) -> ExposureRow:
    """Count an export before it runs (the caller deletes the row if the export fails)."""
    row = ExposureRow(project_id=project_id, institution_id=institution_id, at=at,
                      participants=len(members), members_sealed=seal(key, members))
    db.add(row)
    return row
