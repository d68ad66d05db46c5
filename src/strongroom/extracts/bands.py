"""The band-origin carrier: where an extract's bands of a quasi-identifier start.

When the risk gate releases a quasi-identifier in numeric bands (year of birth in 5-year
bands, say), the bands may start anywhere on the column's unit grid without changing their
width, their labels' format or what the anonymisation weighs. Each project's band key
(``codes.project_band_key``) chooses, per attribute (a field's columns together), one of
``CHOICES`` origins inside the narrowest band (``hierarchies.origin_grid``, never 0: see
there): index ``⌊u·CHOICES / 2³²⌋`` for ``u`` the AES pseudo-random function (``codes.py``)
under that key, on the block ``(0, tag of the attribute)`` — a tag no column and no other
carrier uses. ``CHOICES`` divides 2³², so the index is *exactly* uniform on ``0 … CHOICES −
1``, and it is independent of every extract's symbols, of which participants it withholds,
and of every other attribute and project (distinct PRF inputs, or distinct keys).

Per project and not per extract, because a project's extracts share pseudonyms: joined, two
extracts banded from different origins intersect to bands narrower than the gate released
(an attacker review narrowed hundreds of years of birth below k with four). A project's
extracts therefore band alike, and a match is evidence about the project: when it holds
several registered extracts the band test gives none of them evidence (``band_evidence``).

The origin is never stored: attribution derives it again from the key. The manifest keeps,
per attribute released in bands, its field, columns, unit, the candidate origins and the width
and level the gate chose (``Banded``); old manifests have none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from strongroom.extracts import codes
from strongroom.privacy.gate import ORIGIN_CHOICES

CHOICES = ORIGIN_CHOICES
assert codes.SCALE % CHOICES == 0, "the origin index is exactly uniform only if CHOICES | 2³²"
_TAG_PREFIX = "\0strongroom band origin v1\0"  # no storage column starts with a NUL


def origin_index(key: bytes, attribute: str) -> int:
    """The extract's keyed origin index (0 … ``CHOICES`` − 1) for ``attribute``."""
    tag = np.array([codes.column_tag(_TAG_PREFIX + attribute)], dtype=np.uint64)
    u = int(codes.prf_u32(key, np.zeros(1, dtype=np.int64), tag)[0])
    return (u * CHOICES) >> 32


def chooser(key: bytes) -> Callable[[str], int]:
    """What ``gate.check(..., origins=...)`` takes: the extract's index per attribute."""
    return lambda attribute: origin_index(key, attribute)


@dataclass(frozen=True)
class Banded:
    """One attribute an extract released in bands with a keyed origin (manifest JSON)."""

    attribute: str  # the gate's attribute ("field 34")
    field_id: int | None
    columns: tuple[str, ...]
    unit: float
    grid: tuple[float, ...]  # the candidate origins
    width: float  # the bands' width as released
    level: str

    def origin(self, key: bytes) -> float:
        """Where this extract's bands start (derived from its key, never stored)."""
        return self.grid[origin_index(key, self.attribute)]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Banded:
        return cls(str(data["attribute"]),
                   int(data["field"]) if data.get("field") is not None else None,
                   tuple(str(c) for c in data["columns"]), float(data["unit"]),
                   tuple(float(g) for g in data["grid"]), float(data["width"]),
                   str(data["level"]))


def banded_of(records: list[dict[str, Any]] | None) -> tuple[Banded, ...]:
    """A manifest's banded attributes; none for manifests made before this carrier."""
    return tuple(Banded.from_json(r) for r in records or ())
