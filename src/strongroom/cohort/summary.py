"""A summary of the stored cohort for custodians: sizes and counts, never participant values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.cohort.store import COHORT_DIR, Store


@dataclass(frozen=True)
class StoreSummary:
    root: str
    store_id: str
    key_id: str
    dictionary_fields: int
    dictionary_digest: str
    version: dict[str, Any] | None
    stored_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarise(store: Store) -> StoreSummary:
    current = store.current()
    version = None
    if current is not None:
        version = {
            "id": current.id,
            "created_at": current.created_at.isoformat(),
            "participants": current.participants,
            "tables": current.tables,
            "sources": current.sources,
        }
    return StoreSummary(
        root=str(store.root),
        store_id=store.config.store_id,
        key_id=store.config.key_id,
        dictionary_fields=len(store.dictionary),
        dictionary_digest=store.dictionary.digest,
        version=version,
        stored_bytes=_bytes_under(store.root / COHORT_DIR),
    )


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
