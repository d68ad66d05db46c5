"""Build a data dictionary from UK Biobank's public Showcase schema files.

Reads ``Data_Dictionary_Showcase.tsv`` (fields), an encodings table (``encoding_id, value, meaning,
selectable``, as in the Showcase schema download) and the Showcase summary statistics, and
joins them with Strongroom's curation (role and recorded precision per field), which the Showcase
does not have. Used to build the shipped dictionary and to make a dictionary for a custodian's
own extract.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

import yaml

from strongroom.cohort.dictionary import Coding, Dictionary, Field, Role, ValueType


@dataclass(frozen=True)
class Curation:
    """Strongroom's judgement of a field: its role and how many decimals are recorded."""

    role: Role
    precision: int | None = None


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_showcase_fields(path: Path) -> dict[int, dict[str, str]]:
    """Rows of ``Data_Dictionary_Showcase.tsv`` keyed by field ID."""
    with _open_text(path) as fh:
        return {int(row["FieldID"]): row for row in csv.DictReader(fh, delimiter="\t")}


def read_encodings(path: Path, wanted: Iterable[int] | None = None) -> dict[int, Coding]:
    """Codings from a Showcase encodings table (CSV or TSV, optionally gzipped).

    Accepts both the schema download's layout (``encoding_id,code_id,value,meaning,selectable``)
    and the ``Codings.tsv`` layout (``Coding, Value, Meaning``).
    """
    keep = None if wanted is None else set(wanted)
    codes: dict[int, dict[str, str]] = defaultdict(dict)
    selectable: dict[int, set[str]] = defaultdict(set)
    with _open_text(path) as fh:
        dialect = "excel-tab" if fh.readline().count("\t") else "excel"
        fh.seek(0)
        for row in csv.DictReader(fh, dialect=dialect):
            cid = int(row.get("encoding_id") or row["Coding"])
            if keep is not None and cid not in keep:
                continue
            value = _canonical_code(row.get("value", row.get("Value", "")))
            meaning = row.get("meaning", row.get("Meaning", ""))
            codes[cid].setdefault(value, meaning)
            if (row.get("selectable") or "").strip() in ("1", "1.0"):
                selectable[cid].add(value)
    return {
        cid: Coding(cid, dict(values), frozenset(selectable.get(cid, ())))
        for cid, values in codes.items()
    }


def _canonical_code(value: str) -> str:
    """``-1.000`` (as some coding files print integers) becomes ``-1``; other codes unchanged."""
    text = value.strip()
    return text.split(".", 1)[0] if _INTEGER_WITH_ZEROS.fullmatch(text) else text


_INTEGER_WITH_ZEROS = re.compile(r"-?[1-9]\d*\.0+|-?0\.0+")


def read_stats(path: Path) -> dict[int, tuple[float, float]]:
    """Showcase means and SDs: ``field_id, mean, sd``."""
    with _open_text(path) as fh:
        return {
            int(row["field_id"]): (float(row["mean"]), float(row["sd"]))
            for row in csv.DictReader(fh)
            if row["mean"] and row["sd"]
        }


def load_curation(path: Path | None = None) -> dict[int, Curation]:
    """The curated roles and precisions (``cohort/data/fields.yaml`` by default)."""
    if path is None:
        text = resources.files("strongroom.cohort.data").joinpath("fields.yaml").read_text()
    else:
        text = path.read_text()
    raw: Mapping[str, Any] = yaml.safe_load(text)
    return {
        int(fid): Curation(Role(entry["role"]), entry.get("precision"))
        for fid, entry in raw["fields"].items()
    }


def default_role(value_type: ValueType, name: str) -> Role:
    """A conservative role for a field the curation does not name."""
    lowered = name.lower()
    if value_type in (ValueType.DATE, ValueType.TIME):
        return Role.EVENT_DATE
    if value_type in (ValueType.INTEGER, ValueType.CONTINUOUS) and "age" not in lowered:
        return Role.MEASUREMENT
    return Role.SENSITIVE


def build_dictionary(
    showcase: Path,
    encodings: Path,
    field_ids: Iterable[int],
    *,
    stats: Path | None = None,
    curation: Mapping[int, Curation] | None = None,
) -> Dictionary:
    """A dictionary of ``field_ids`` from the Showcase files, with curated roles and precision."""
    rows = read_showcase_fields(showcase)
    ids = sorted(set(field_ids))
    unknown = [fid for fid in ids if fid not in rows]
    if unknown:
        raise ValueError(f"fields not in the Showcase dictionary {showcase}: {unknown}")
    curation = curation or {}
    means = read_stats(stats) if stats else {}
    coding_ids = {int(rows[fid]["Coding"]) for fid in ids if rows[fid]["Coding"].strip()}
    codings = read_encodings(encodings, coding_ids)
    missing = coding_ids - codings.keys()
    if missing:
        raise ValueError(f"codings {sorted(missing)} are not in {encodings}")
    fields = {fid: _field_from_row(rows[fid], curation.get(fid), means.get(fid)) for fid in ids}
    return Dictionary(fields, codings, source=f"UK Biobank Showcase ({showcase.name})")


def _field_from_row(
    row: Mapping[str, str], curated: Curation | None, stat: tuple[float, float] | None
) -> Field:
    value_type = ValueType.from_showcase(row["ValueType"])
    name = row["Field"].strip()
    units = row["Units"].strip()
    return Field(
        field_id=int(row["FieldID"]),
        name=name,
        value_type=value_type,
        role=curated.role if curated else default_role(value_type, name),
        unit="" if units == "NA" else units,
        coding_id=int(row["Coding"]) if row["Coding"].strip() not in ("", "NA") else None,
        instances=int(row["Instances"]),
        arrays=int(row["Array"]),
        precision=curated.precision if curated else None,
        participants=int(row["Participants"]),
        mean=stat[0] if stat else None,
        sd=stat[1] if stat else None,
        sexed=row["Sexed"].strip(),
        description=row["Notes"].strip(),
    )
