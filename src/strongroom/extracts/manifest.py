"""Manifests: recording an extract, reading them back, and what attribution derives from them.

Decoy registries are sealed (AES-256-GCM, ``cohort.crypto``) under the master key with the
extract id as context, so the database alone never reveals which rows are decoys. Symbol keys
are not stored at all: they are derived again from the master key and the extract id
(``codes.recipient_key``); the manifest keeps only the key's public id, checked on use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.cohort.crypto import MasterKey, decrypt, encrypt
from strongroom.errors import NotFound, Unavailable
from strongroom.extracts import bands, codes
from strongroom.extracts.accuse import Recipient
from strongroom.extracts.carriers import Carrier
from strongroom.extracts.models import ExtractManifest


def _context(extract_id: str) -> str:
    return f"extract-decoys:{extract_id}"


def seal_decoys(master: MasterKey, extract_id: str, registry: bytes) -> bytes:
    return encrypt(registry, master, _context(extract_id))


def open_decoys(master: MasterKey, manifest: ExtractManifest) -> bytes:
    return decrypt(manifest.decoys_sealed, master, _context(manifest.id))


def get(db: Session, extract_id: str) -> ExtractManifest:
    found = db.get(ExtractManifest, extract_id)
    if found is None:
        raise NotFound(f"there is no extract {extract_id}")
    return found


def list_all(db: Session) -> list[ExtractManifest]:
    return list(db.scalars(select(ExtractManifest).order_by(ExtractManifest.created_at,
                                                            ExtractManifest.id)))


def carriers_of(manifest: ExtractManifest) -> list[Carrier]:
    return [_carrier(c) for c in manifest.carriers]


_PARSED: dict[tuple[tuple[str, type, Any], ...], Carrier] = {}  # a carrier's JSON -> the carrier


def _carrier(data: dict[str, Any]) -> Carrier:
    """``Carrier.from_json``, parsed once per distinct JSON: a thousand manifests share a
    handful of carriers (the same columns of the same cohort version)."""
    try:
        key = tuple((k, type(v), v) for k, v in data.items())  # 1, 1.0 and True apart
        found = _PARSED.get(key)
    except TypeError:  # a value that cannot be hashed: parse (and refuse) as before
        return Carrier.from_json(data)
    if found is None:
        found = Carrier.from_json(data)
        if len(_PARSED) < 10_000:
            _PARSED[key] = found
    return found


def recipient_of(master: MasterKey, manifest: ExtractManifest) -> Recipient:
    """The extract as the scorer sees it; refuses a manifest whose key no longer derives."""
    key = codes.recipient_key(master, manifest.id)
    if codes.key_id(key) != manifest.key_id:
        raise Unavailable(f"extract {manifest.id}'s symbol key does not derive from this "
                          f"master key (key id {manifest.key_id}); attribution cannot score "
                          f"it — check that the store's own master key is in use")
    return Recipient(manifest.id, key, frozenset(carriers_of(manifest)),
                     float(manifest.withheld_share or 0.0), frozenset(manifest.fields),
                     bands.banded_of(manifest.bands),
                     codes.project_band_key(master, manifest.project_id), manifest.project_id)


def recipients(master: MasterKey, manifests: Sequence[ExtractManifest]) -> list[Recipient]:
    return [recipient_of(master, m) for m in manifests]


def public_view(manifest: ExtractManifest) -> dict[str, Any]:
    """Everything in a manifest except the sealed decoys, as JSON-ready values."""
    return {
        "extract": manifest.id, "project": manifest.project_id,
        "institution": manifest.institution_id, "recipient": manifest.recipient_id,
        "key_id": manifest.key_id, "fields": list(manifest.fields),
        "columns": list(manifest.columns), "carriers": list(manifest.carriers),
        "decoys": manifest.decoy_count, "rows": manifest.rows,
        "cohort_version": manifest.cohort_version, "file_sha256": manifest.file_sha256,
        "format": manifest.format, "created_at": manifest.created_at.isoformat(),
        "created_by": manifest.created_by,
    } | ({"withheld_share": manifest.withheld_share} if manifest.withheld_share else {}) | (
        {"bands": list(manifest.bands)} if manifest.bands else {})


def digest(manifest: ExtractManifest) -> str:
    """SHA-256 of the manifest's canonical JSON (sealed decoys by their own hash)."""
    body = public_view(manifest) | {
        "decoys_sealed_sha256": hashlib.sha256(manifest.decoys_sealed).hexdigest()}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
