"""The extracts table: one manifest per record-level extract, kept by the custodian.

A manifest holds what attribution needs to recognise the extract again (its carriers with
their precision and amplitude, the id of its symbol key, its decoys sealed under the master
key) and what an investigation needs to prove it (the file's SHA-256, its format, who made it
for whom and when). The project is named by id without a foreign key: a manifest is evidence
and must outlive any later change to the project's row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from strongroom.db import Base, UTCDateTime


class ExtractManifest(Base):
    __tablename__ = "extracts_manifests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    institution_id: Mapped[str] = mapped_column(String(32), index=True)
    recipient_id: Mapped[str] = mapped_column(String(32))  # the person it was issued to
    key_id: Mapped[str] = mapped_column(String(16))  # public id of the derived symbol key
    fields: Mapped[list[int]] = mapped_column(JSON)
    columns: Mapped[list[str]] = mapped_column(JSON)  # storage columns in the file
    carriers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # Carrier.to_json() each
    decoys_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # decoy registry, encrypted
    decoy_count: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)  # participants + decoys
    cohort_version: Mapped[str] = mapped_column(String(36))
    file_sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(32))
    # share of eligible participants withheld under the extract's key (membership.py); 0 for
    # extracts made before the participant-subset carrier
    withheld_share: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # attributes released in bands with a keyed origin: field, columns, unit, candidate
    # origins, width and level (``bands.Banded``), never the origin itself; [] for extracts
    # made before the band-origin carrier, or with no banded quasi-identifier
    bands: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
