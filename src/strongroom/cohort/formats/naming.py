"""The three ways UK Biobank extracts name their columns, and how a header maps to FieldKeys.

=========  ==========  ==================================================  =========================
style      eid column  data column                                         written by
=========  ==========  ==================================================  =========================
ukbconv    ``eid``     ``31-0.0``, ``41270-0.3`` (field-instance.array)    ``ukbconv … csv`` / txt
rtab       ``f.eid``   ``f.31.0.0``, ``f.41270.0.3``                       ``ukbconv … r`` (.tab)
rap        ``eid``     ``p31``, ``p21001_i0``, ``p4080_i0_a1``, ``p41270_a3``  UKB Research Analysis
                                                                           Platform (RAP) exports
=========  ==========  ==================================================  =========================

ukbconv and R names always carry instance and array; RAP names carry ``_i`` only when the field
has several instances and ``_a`` only when it has several array slots, so a RAP name can only be
checked against the dictionary. RAP's ``dx extract_dataset`` prefixes names with the entity
(``participant.eid``, ``participant.p31``); the prefix is accepted on reading.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from strongroom.cohort.dictionary import Dictionary, Field
from strongroom.cohort.model import FieldKey, column_name
from strongroom.cohort.problems import Problem


class Naming(StrEnum):
    """A column-naming style (independent of the file's container: text or Parquet)."""

    UKBCONV = "ukbconv"
    RTAB = "rtab"
    RAP = "rap"


EID_NAMES: dict[Naming, str] = {Naming.UKBCONV: "eid", Naming.RTAB: "f.eid", Naming.RAP: "eid"}
RAP_ENTITY = "participant."  # prefix written by dx extract_dataset

_N = r"(?:0|[1-9]\d*)"  # no leading zeros: "31-00.0" would not survive a round trip
_PATTERNS: dict[Naming, re.Pattern[str]] = {
    Naming.UKBCONV: re.compile(rf"(?P<field>[1-9]\d*)-(?P<instance>{_N})\.(?P<array>{_N})"),
    Naming.RTAB: re.compile(rf"f\.(?P<field>[1-9]\d*)\.(?P<instance>{_N})\.(?P<array>{_N})"),
    Naming.RAP: re.compile(
        rf"(?:participant\.)?p(?P<field>[1-9]\d*)(?:_i(?P<instance>{_N}))?(?:_a(?P<array>{_N}))?"
    ),
}
_EXAMPLES: dict[Naming, str] = {
    Naming.UKBCONV: "'31-0.0'",
    Naming.RTAB: "'f.31.0.0'",
    Naming.RAP: "'p31', 'p21001_i0' or 'p41270_a3'",
}


def is_eid(name: str, naming: Naming) -> bool:
    """Whether ``name`` is the participant-ID column in this style."""
    if naming == Naming.RAP:
        return name in ("eid", RAP_ENTITY + "eid")
    return name == EID_NAMES[naming]


def parse_name(name: str, naming: Naming) -> FieldKey:
    """The FieldKey a data column name stands for; ``ValueError`` if it is not in ``naming``.

    RAP names are parsed by syntax only (a missing suffix means index 0); whether the suffixes
    fit the field is checked by :func:`fits_layout`, which needs the dictionary.
    """
    match = _PATTERNS[naming].fullmatch(name)
    if match is None:
        raise ValueError(
            f"column {name!r} is not a {naming} column name (expected e.g. {_EXAMPLES[naming]})"
        )
    return FieldKey(
        int(match["field"]), int(match["instance"] or 0), int(match["array"] or 0)
    )


def naming_of(name: str) -> Naming | None:
    """The style a single data column name is written in, if any."""
    for naming, pattern in _PATTERNS.items():
        if pattern.fullmatch(name):
            return naming
    return None


def detect_naming(header: Sequence[str]) -> Naming:
    """The style most of the header is written in (ties and empty headers: ukbconv)."""
    scores = {naming: sum(1 for name in header if _PATTERNS[naming].fullmatch(name))
              for naming in Naming}
    scores[Naming.RTAB] += EID_NAMES[Naming.RTAB] in header
    scores[Naming.RAP] += RAP_ENTITY + "eid" in header
    # max() keeps the first of equal scores: ukbconv, the most common style, wins ties
    return max(Naming, key=lambda naming: scores[naming])


def format_key(key: FieldKey, fld: Field, naming: Naming) -> str:
    """The column name of one instance and array slot of ``fld`` in ``naming``."""
    if naming == Naming.UKBCONV:
        return f"{key.field_id}-{key.instance}.{key.array}"
    if naming == Naming.RTAB:
        return f"f.{key.field_id}.{key.instance}.{key.array}"
    return column_name(fld, key.instance, key.array)


def fits_layout(name: str, key: FieldKey, fld: Field, naming: Naming) -> bool:
    """Whether ``name`` is spelt as ``naming`` spells ``key`` for this field.

    Only RAP names can fail: ``p21001`` for a field with several instances is ambiguous.
    """
    if naming != Naming.RAP:
        return True
    return name.removeprefix(RAP_ENTITY) == format_key(key, fld, naming)


@dataclass(frozen=True)
class Column:
    """One accepted data column of a header."""

    position: int  # 0-based position in the header
    name: str  # as written in the header
    key: FieldKey


@dataclass
class Header:
    """A header resolved against a naming style: where eid is, which columns to read."""

    naming: Naming
    eid: int | None  # position of the eid column, None if absent
    columns: list[Column] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def resolve_header(
    header: Sequence[str],
    dictionary: Dictionary,
    source: str,
    naming: Naming | None = None,
) -> Header:
    """Sort a header into eid, data columns, and problems (each offending column is dropped).

    Reports names that do not parse in the file's style, RAP names that do not fit the field's
    layout, a second eid column and duplicate columns (two names for the same field, instance
    and array; the first is kept). Unknown fields and out-of-range indices are left to
    :func:`strongroom.cohort.formats.wide.to_model`, which checks every key once.
    """
    naming = naming if naming is not None else detect_naming(header)
    resolved = Header(naming, None)
    first: dict[FieldKey, Column] = {}
    for position, name in enumerate(header):
        where = f"column {position + 1}"
        if is_eid(name, naming):
            if resolved.eid is None:
                resolved.eid = position
            else:
                resolved.problems.append(Problem(
                    source, f"second participant ID column ({where}); dropped", field=name))
            continue
        try:
            key = parse_name(name, naming)
        except ValueError as exc:
            other = naming_of(name)
            hint = (f"; it is in {other} style, but the file is in {naming} style"
                    if other is not None and other != naming else "")
            resolved.problems.append(Problem(
                source, f"{exc} ({where}){hint}; column dropped", field=name))
            continue
        if key.field_id in dictionary:
            fld = dictionary.field(key.field_id)
            if not fits_layout(name, key, fld, naming):
                expected = format_key(key, fld, naming)
                # RAP itself exports an array field as one column of lists ("p41270")
                hint = ("; export array fields with one column per array slot"
                        if fld.arrays > 1 and "_a" not in name else "")
                resolved.problems.append(Problem(
                    source,
                    f"column name does not fit field {fld.field_id} ({fld.instances} "
                    f"instance(s), {fld.arrays} array slot(s)): expected {expected!r} "
                    f"({where}){hint}; column dropped",
                    field=name,
                ))
                continue
        if key in first:
            kept = first[key]
            resolved.problems.append(Problem(
                source,
                f"duplicate column: {where} holds the same field, instance and array as "
                f"column {kept.position + 1} ({kept.name!r}); the later one is dropped",
                field=name,
            ))
            continue
        column = Column(position, name, key)
        first[key] = column
        resolved.columns.append(column)
    return resolved
