"""Decoy search patterns as STIX 2.1 indicators, for MISP, OpenCTI and partners' own tools.

A partner platform should be able to recognise a Strongroom leak when one surfaces, without
ever holding a decoy's values. Each decoy becomes one indicator whose pattern names keyed
digests of its values, never the values:

    digest(v, e) = HMAC-SHA256(key, "strongroom-decoy-value:v1:" + n + "e" + e)

where ``e`` is a decimal exponent (the grid the value is written on: −3 for 5.213) and
``n = round(v / 10^e)`` (5213). Digests are per value, so a row matches whatever the columns are
called and in whatever order they stand; the pattern asks for several of the decoy's
measurement values in the *same row*:

    [x-strongroom-row:value_hmacs[*] = '…' AND x-strongroom-row:value_hmacs[*] = '…' AND …]
    OR [ … the same values rounded ten times coarser … ]

(a value lying exactly half-way between two coarser steps contributes ``(… OR …)`` of both
roundings, since spreadsheets round half away from zero and others to even). Decoys with many
measurements get two or three disjoint groups of values, so a copy that kept only some columns
can still match one group.

What a MISP or OpenCTI user can match: these platforms store and share the indicators (with
their TLP:RED marking) but have no observable for "a row of a table", so they cannot evaluate
the patterns themselves. The partner's matching service, which holds the key (agreed out of
band and named by ``x_strongroom_key_id``), turns a found file into ``x-strongroom-row``
observations — per row, the digests of every numeric cell at the grid its column is written on
— and evaluates the patterns; :func:`match_indicators` is that service's reference
implementation. A match is a lead for the custodian, who attributes with ``strongroom
attribute``; verbatim, renamed, reordered, shuffled, re-typed and 10×-rounded copies match,
noisy ones do not.

Exposure: without the key, the bundle reveals nothing about the decoys (nor which extract they
belong to: indicator IDs are keyed too). A key holder can test guesses one value at a time, so
the key must be held as closely as the decoys themselves — hence TLP:RED, and a key per partner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from strongroom.cohort.model import EID
from strongroom.errors import Invalid
from strongroom.extracts.decoys import DecoyRegistry, DecoySet
from strongroom.extracts.linkage import ColumnSpec, apparent_grid

TLP_RED_ID = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_RED: dict[str, Any] = {  # FIRST TLP 2.0, as published by OASIS (cti-stix-common-objects)
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": TLP_RED_ID,
    "created": "2022-10-01T00:00:00.000Z",
    "name": "TLP:RED",
    "extensions": {TLP_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": "red"}},
}
OBJECT = "x-strongroom-row"
PROPERTY = "value_hmacs"
SCHEME = "strongroom-decoy-value:v1"
GROUP_SIZE = 6  # decoy values a pattern asks for together
MIN_GROUP = 4  # fewer would be too common to mean anything
MAX_GROUPS = 3
MIN_BITS = 50.0  # chance match ≤ 2⁻⁵⁰ per row and indicator: ~10⁻⁵ over 10¹⁰ pairs
COARSER = (0, 1)  # grids: as recorded, and ten times coarser
_COMPARISON = re.compile(rf"{OBJECT}:{PROPERTY}\[\*\] = '([0-9a-f]{{64}})'")


def value_digest(key: bytes, units: int, exponent: int) -> str:
    """The keyed digest of the value ``units × 10^exponent``."""
    message = f"{SCHEME}:{units}e{exponent}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def indicator_id(key: bytes, extract_id: str, pid: int | str) -> str:
    """A stable indicator ID for one decoy, keyed so that it reveals neither extract nor pid."""
    raw = hmac.new(key, f"strongroom-indicator:{extract_id}:{pid}".encode(),
                   hashlib.sha256).digest()
    return f"indicator--{uuid.UUID(bytes=raw[:16], version=4)}"


def decoy_indicators(
    registry: DecoyRegistry | Mapping[str, DecoySet],
    extract_ids: Iterable[str],
    key: bytes,
    *,
    key_id: str,
    created: dt.datetime | None = None,
    custodian: str = "Strongroom data custodian",
) -> dict[str, Any]:
    """A STIX 2.1 bundle: the TLP:RED marking, the custodian, one indicator per decoy.

    Decoys with fewer than ``MIN_GROUP`` measurement values are left out (their pattern would
    match ordinary people); ``key`` is the HMAC key shared with the partner, ``key_id`` names it.
    """
    if len(key) < 16:
        raise Invalid("the indicator key must be at least 16 bytes of secret")
    sets = registry.sets if isinstance(registry, DecoyRegistry) else registry
    when = _timestamp(created or dt.datetime.now(dt.UTC))
    identity = _identity(custodian, when)
    objects: list[dict[str, Any]] = [dict(TLP_RED), identity]
    for extract_id in extract_ids:
        if extract_id not in sets:
            raise Invalid(f"no decoys are registered for extract {extract_id}")
        decoys = sets[extract_id]
        spread = _spread(decoys)
        for row in decoys.rows.iter_rows(named=True):
            pattern = decoy_pattern(row, decoys.specs, key, spread)
            if pattern is None:
                continue
            objects.append(_indicator(indicator_id(key, extract_id, row[EID]), pattern, when,
                                      identity["id"], key_id))
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def decoy_pattern(row: Mapping[str, Any], specs: Mapping[str, ColumnSpec], key: bytes,
                  spread: Mapping[str, float]) -> str | None:
    """The STIX pattern for one decoy row (``None`` when it has too few measurements).

    Values are grouped, most informative first; an observation is written only if its values
    carry at least ``MIN_BITS`` of information at its grid (about log₂(SD / step) + 2 bits
    each, from the column's ``spread``), so that no ordinary row matches one by chance.
    """
    measured = sorted(
        ((-_bits(spread.get(name, 0.0), spec.unit), name) for name, spec in specs.items()
         if spec.kind == "number" and not spec.keyable and row.get(name) is not None
         and math.isfinite(float(row[name]))),
    )
    names = [name for _, name in measured]
    groups = [names[i:i + GROUP_SIZE] for i in range(0, len(names), GROUP_SIZE)]
    groups = [g for g in groups if len(g) >= MIN_GROUP][:MAX_GROUPS]
    observations = []
    for group in groups:
        for coarser in COARSER:
            step = 10.0**coarser
            if sum(_bits(spread.get(n, 0.0), specs[n].unit * step) for n in group) < MIN_BITS:
                continue
            terms = []
            for name in group:
                exponent = _exponent(specs[name].unit) + coarser
                digests = [value_digest(key, n, exponent)
                           for n in _roundings(float(row[name]), exponent)]
                terms.append(_either(digests))
            observations.append("[" + " AND ".join(terms) + "]")
    return " OR ".join(observations) if observations else None


def _bits(sd: float, step: float) -> float:
    """Information in one value written on ``step`` (a normal's entropy, floored at 0)."""
    return max(math.log2(sd / step) + 2.05, 0.0) if sd > 0 else 0.0


def _spread(decoys: DecoySet) -> dict[str, float]:
    """Each numeric column's SD among the decoys (a proxy for the population's)."""
    out = {}
    for name, spec in decoys.specs.items():
        if spec.kind == "number":
            values = decoys.rows[name].cast(pl.Float64).drop_nulls().to_numpy()
            out[name] = float(np.std(values)) if values.size > 1 else 0.0
    return out


def _either(digests: Sequence[str]) -> str:
    comparisons = [f"{OBJECT}:{PROPERTY}[*] = '{d}'" for d in digests]
    return comparisons[0] if len(comparisons) == 1 else "(" + " OR ".join(comparisons) + ")"


def _exponent(unit: float) -> int:
    return round(math.log10(unit))


def _roundings(value: float, exponent: int) -> list[int]:
    """The whole numbers of 10^exponent steps a tool may round ``value`` to (two at a tie)."""
    steps = value / 10.0**exponent
    low = math.floor(steps)
    if abs(steps - low - 0.5) < 1e-6:  # half-way: half-even and half-up differ
        return [low, low + 1]
    return [round(steps)]


def _indicator(ident: str, pattern: str, when: str, creator: str, key_id: str
               ) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": ident,
        "created": when,
        "modified": when,
        "created_by_ref": creator,
        "name": "Strongroom decoy record",
        "description": (
            "A row of a leaked Strongroom extract holds a decoy participant. Values are "
            f"matched as keyed digests ({SCHEME}, HMAC-SHA256 over '<units>e<exponent>'); "
            "report a match to the data custodian, who attributes the file."),
        "indicator_types": ["attribution"],
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": when,
        "labels": ["strongroom", "decoy", "data-leak"],
        "object_marking_refs": [TLP_RED_ID],
        "x_strongroom_key_id": key_id,
        "x_strongroom_scheme": SCHEME,
    }


def _identity(name: str, when: str) -> dict[str, Any]:
    ident = uuid.uuid5(uuid.NAMESPACE_URL, f"strongroom:custodian:{name}")
    return {"type": "identity", "spec_version": "2.1", "id": f"identity--{ident}",
            "created": when, "modified": when, "name": name, "identity_class": "organization"}


def _timestamp(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# -- the partner's side: matching a found file ------------------------------------------------


def parse_pattern(pattern: str) -> list[list[list[str]]]:
    """A pattern as observations (OR) of terms (AND) of digest alternatives (OR).

    Only the shape :func:`decoy_pattern` writes is accepted; anything else is refused.
    """
    observations = []
    for part in _split(pattern.strip(), " OR ", brackets="[]"):
        if not (part.startswith("[") and part.endswith("]")):
            raise Invalid(f"not a Strongroom decoy pattern: {pattern[:80]!r}")
        terms = []
        for term in _split(part[1:-1], " AND ", brackets="()"):
            inner = term[1:-1] if term.startswith("(") and term.endswith(")") else term
            alternatives = []
            for comparison in inner.split(" OR "):
                found = _COMPARISON.fullmatch(comparison.strip())
                if found is None:
                    raise Invalid(f"not a Strongroom decoy comparison: {comparison[:80]!r}")
                alternatives.append(found.group(1))
            terms.append(alternatives)
        observations.append(terms)
    return observations


def _split(text: str, separator: str, brackets: str) -> list[str]:
    """Split on ``separator`` outside the given pair of brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char == brackets[0]:
            depth += 1
        elif char == brackets[1]:
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i].strip())
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


def match_indicators(frame: pl.DataFrame, bundle: Mapping[str, Any], key: bytes) -> list[str]:
    """IDs of the bundle's indicators that some row of ``frame`` matches.

    Each numeric column's cells are digested at the grid the column is written on (its
    coarsest power of ten); a row matches an indicator when it holds every digest of one of
    the indicator's observations.
    """
    indicators = [o for o in bundle.get("objects", []) if o.get("type") == "indicator"]
    parsed = {o["id"]: parse_pattern(o["pattern"]) for o in indicators}
    wanted = {d for obs in parsed.values() for terms in obs for alts in terms for d in alts}
    rows_of = _rows_by_digest(frame, key, wanted)
    matched = []
    for ident, observations in parsed.items():
        for terms in observations:
            rows: set[int] | None = None
            for alternatives in terms:
                holding = set().union(*(rows_of.get(d, set()) for d in alternatives))
                rows = holding if rows is None else rows & holding
                if not rows:
                    break
            if rows:
                matched.append(ident)
                break
    return matched


def _rows_by_digest(frame: pl.DataFrame, key: bytes, wanted: set[str]) -> dict[str, set[int]]:
    """For each wanted digest, the rows holding a cell with it (one HMAC per distinct value)."""
    out: dict[str, set[int]] = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype == pl.String:
            column = column.str.strip_chars().cast(pl.Float64, strict=False)
        if not column.dtype.is_numeric():
            continue
        values = np.asarray(column.cast(pl.Float64).to_numpy(), dtype=np.float64)
        grid = apparent_grid(values)
        if grid <= 0:
            continue
        exponent = _exponent(grid)
        units = np.rint(values / 10.0**exponent)
        present = np.isfinite(units)
        distinct, inverse = np.unique(units[present], return_inverse=True)
        rows = np.flatnonzero(present)
        for i, n in enumerate(distinct):
            digest = value_digest(key, int(n), exponent)
            if digest in wanted:
                out.setdefault(digest, set()).update(rows[inverse == i].tolist())
    return out
