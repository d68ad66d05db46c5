"""The data dictionary: what every field is, how it is coded, and how sensitive it is.

Field IDs, value types, codings, instances, arrays and Showcase statistics carry over from UK
Biobank's public Showcase. ``role`` and ``precision`` are Strongroom's own: the output checker,
the risk assessment and the fingerprinting all read them, so they are first-class attributes.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any


class ValueType(StrEnum):
    INTEGER = "integer"
    CONTINUOUS = "continuous"
    CATEGORICAL_SINGLE = "categorical_single"
    CATEGORICAL_MULTIPLE = "categorical_multiple"
    DATE = "date"
    TIME = "time"
    TEXT = "text"

    @classmethod
    def from_showcase(cls, label: str) -> ValueType:
        """Map a Showcase ``ValueType`` label ("Categorical single", "Date" …) to the enum."""
        try:
            return _SHOWCASE_VALUE_TYPES[label.strip()]
        except KeyError:
            raise ValueError(
                f"Showcase value type {label!r} is not supported by Strongroom "
                f"(supported: {', '.join(sorted(_SHOWCASE_VALUE_TYPES))})"
            ) from None


_SHOWCASE_VALUE_TYPES = {
    "Integer": ValueType.INTEGER,
    "Continuous": ValueType.CONTINUOUS,
    "Categorical single": ValueType.CATEGORICAL_SINGLE,
    "Categorical multiple": ValueType.CATEGORICAL_MULTIPLE,
    "Date": ValueType.DATE,
    "Time": ValueType.TIME,
    "Text": ValueType.TEXT,
}


class Role(StrEnum):
    """How a field bears on disclosure. Read by the output check, risk assessment and marks."""

    DIRECT_IDENTIFIER = "direct_identifier"  # identifies a person on its own (IDs)
    QUASI_IDENTIFIER = "quasi_identifier"  # identifies in combination (birth year, sex, centre)
    SENSITIVE = "sensitive"  # what must not be learnt about a person (diagnoses, income)
    MEASUREMENT = "measurement"  # physical and biochemical measures; may carry fingerprints
    EVENT_DATE = "event_date"  # dates of events; identifying when linked with other sources


ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.DIRECT_IDENTIFIER: "identifies a participant on its own; never released",
    Role.QUASI_IDENTIFIER: "identifies a participant in combination with other fields",
    Role.SENSITIVE: "a fact about a participant that must not be disclosed",
    Role.MEASUREMENT: "a physical or laboratory measurement",
    Role.EVENT_DATE: "the date of an event; identifying when linked with other sources",
}

# Meanings that UK Biobank uses for "no real answer". Codes with these meanings are the
# field's missing-value codes (−1, −3, −7, −10 …), whatever number the coding gives them.
_MISSING_MEANINGS = (
    "do not know",
    "prefer not to answer",
    "none of the above",
    "date uncertain or unknown",
    "preferred not to answer",
    "less than one",
)


@dataclass(frozen=True)
class Coding:
    """A UK Biobank coding: the codes a categorical field may take, and their meanings."""

    coding_id: int
    codes: Mapping[str, str]  # code -> meaning
    selectable: frozenset[str] = frozenset()  # leaves of a hierarchical coding; empty = all

    @property
    def integer_codes(self) -> bool:
        """Whether every code is an integer (then values are stored as integers)."""
        return all(_is_int(code) for code in self.codes)

    @property
    def missing_codes(self) -> tuple[str, ...]:
        """Codes whose meaning is a refusal or "do not know" (UKB's −1, −3, −7 …)."""
        return tuple(sorted(
            (
                code
                for code, meaning in self.codes.items()
                if _is_int(code)
                and int(code) < 0
                and meaning.strip().lower().startswith(_MISSING_MEANINGS)
            ),
            key=int,
            reverse=True,
        ))

    def meaning(self, code: str) -> str | None:
        return self.codes.get(code)


@dataclass(frozen=True)
class Field:
    """One UK Biobank field, with Strongroom's role and recorded precision."""

    field_id: int
    name: str
    value_type: ValueType
    role: Role
    unit: str = ""
    coding_id: int | None = None
    instances: int = 1
    arrays: int = 1
    precision: int | None = None  # decimals actually recorded, for numeric fields
    participants: int = 0  # Showcase participant count (drives synthetic missingness)
    mean: float | None = None  # Showcase mean, for integer and continuous fields
    sd: float | None = None
    sexed: str = "Unisex"
    description: str = ""

    @property
    def is_numeric(self) -> bool:
        return self.value_type in (ValueType.INTEGER, ValueType.CONTINUOUS)

    @property
    def is_categorical(self) -> bool:
        return self.value_type in (
            ValueType.CATEGORICAL_SINGLE,
            ValueType.CATEGORICAL_MULTIPLE,
        )


@dataclass
class Dictionary:
    """The fields and codings a store knows. Anything not in it is refused at ingest."""

    fields: dict[int, Field]
    codings: dict[int, Coding]
    source: str = ""
    cohort_size: int = 502_413  # Showcase denominator for participant counts
    _digest: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for fld in self.fields.values():
            if fld.coding_id is not None and fld.coding_id not in self.codings:
                raise ValueError(
                    f"field {fld.field_id} ({fld.name}) names coding {fld.coding_id}, "
                    "which the dictionary does not contain"
                )

    def __contains__(self, field_id: object) -> bool:
        return field_id in self.fields

    def __iter__(self) -> Iterator[Field]:
        return iter(sorted(self.fields.values(), key=lambda f: f.field_id))

    def __len__(self) -> int:
        return len(self.fields)

    def field(self, field_id: int) -> Field:
        try:
            return self.fields[field_id]
        except KeyError:
            raise KeyError(
                f"field {field_id} is not in the data dictionary; "
                "add it to the dictionary before ingesting data that uses it"
            ) from None

    def coding_of(self, fld: Field) -> Coding | None:
        return None if fld.coding_id is None else self.codings[fld.coding_id]

    def missing_codes(self, fld: Field) -> tuple[str, ...]:
        coding = self.coding_of(fld)
        return () if coding is None else coding.missing_codes

    def by_role(self, role: Role) -> list[Field]:
        return [f for f in self if f.role == role]

    def subset(self, field_ids: Iterable[int]) -> Dictionary:
        """A dictionary of just these fields (and the codings they use)."""
        chosen = {fid: self.field(fid) for fid in field_ids}
        codings = {
            f.coding_id: self.codings[f.coding_id]
            for f in chosen.values()
            if f.coding_id is not None
        }
        return Dictionary(chosen, codings, source=self.source, cohort_size=self.cohort_size)

    # -- persistence -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "strongroom-dictionary/1",
            "source": self.source,
            "cohort_size": self.cohort_size,
            "fields": [
                {k: v for k, v in asdict(f).items() if v is not None and v != ""}
                for f in self
            ],
            "codings": {
                str(c.coding_id): {
                    "codes": dict(c.codes),
                    **({"selectable": sorted(c.selectable)} if c.selectable else {}),
                }
                for c in sorted(self.codings.values(), key=lambda c: c.coding_id)
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dictionary:
        if data.get("format") != "strongroom-dictionary/1":
            raise ValueError(
                f"not a Strongroom dictionary (format {data.get('format')!r}); "
                "expected 'strongroom-dictionary/1'"
            )
        codings = {
            int(cid): Coding(int(cid), dict(c["codes"]), frozenset(c.get("selectable", ())))
            for cid, c in data["codings"].items()
        }
        fields: dict[int, Field] = {}
        for raw in data["fields"]:
            values = dict(raw)
            values["value_type"] = ValueType(values["value_type"])
            values["role"] = Role(values["role"])
            fld = Field(**values)
            fields[fld.field_id] = fld
        return cls(fields, codings, source=data.get("source", ""),
                   cohort_size=data.get("cohort_size", 502_413))

    def save(self, path: Path) -> None:
        payload = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        if path.suffix == ".gz":  # mtime=0: the same dictionary always gives the same bytes
            payload = gzip.compress(payload, mtime=0)
        path.write_bytes(payload)

    @classmethod
    def load(cls, path: Path) -> Dictionary:
        try:
            raw = path.read_bytes()
            if raw == shipped_dictionary_bytes():  # most data directories hold the shipped one
                return shipped_dictionary()
            return cls.from_json(json.loads(gzip.decompress(raw) if path.suffix == ".gz"
                                            else raw))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read data dictionary {path}: {exc}") from exc

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON: which dictionary a cohort was validated against."""
        if self._digest is None:
            canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(canonical.encode()).hexdigest()
        return self._digest


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


SHIPPED_DICTIONARY = "dictionary.json.gz"


@functools.cache
def shipped_dictionary_bytes() -> bytes:
    """The shipped dictionary's file, byte for byte (a new data directory gets a copy)."""
    return resources.files("strongroom.cohort.data").joinpath(SHIPPED_DICTIONARY).read_bytes()


@functools.cache
def shipped_dictionary() -> Dictionary:
    """The dictionary of the fields Strongroom's synthetic cohort generates (read once: a
    Dictionary is never changed after it is made)."""
    return Dictionary.from_json(json.loads(gzip.decompress(shipped_dictionary_bytes())))
