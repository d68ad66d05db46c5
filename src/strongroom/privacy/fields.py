"""Which dictionary field a column holds, and what the dictionary says to treat as what.

A column is recognised in any of UK Biobank's naming styles (``p34``, ``34-0.0``,
``f.34.0.0``). Quasi-identifiers by default are the columns whose field has the role
``quasi_identifier`` or ``event_date`` (dates identify when linked with other sources: a
surgery date found one participant of a leaked dataset); sensitive attributes are those with
the role ``sensitive``. Categorical fields are compared with the equal distance in
t-closeness even when their codes are stored as numbers (smoking status −3, 0, 1, 2 has no
order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from strongroom.cohort.dictionary import Dictionary, Field, Role
from strongroom.cohort.formats.naming import naming_of, parse_name
from strongroom.errors import Invalid
from strongroom.privacy.classes import check_columns

QUASI_IDENTIFYING_ROLES = (Role.QUASI_IDENTIFIER, Role.EVENT_DATE)


def field_of(column: str, dictionary: Dictionary | None) -> Field | None:
    """The dictionary field a column name stands for, or None."""
    if dictionary is None:
        return None
    naming = naming_of(column)
    if naming is None:
        return None
    key = parse_name(column, naming)
    return dictionary.fields.get(key.field_id)


def quasi_identifiers(columns: Sequence[str], dictionary: Dictionary) -> list[str]:
    """The columns whose field's role makes them quasi-identifying, in the table's order."""
    return [c for c in columns
            if (fld := field_of(c, dictionary)) is not None
            and fld.role in QUASI_IDENTIFYING_ROLES]


def sensitive_attributes(columns: Sequence[str], dictionary: Dictionary) -> list[str]:
    return [c for c in columns
            if (fld := field_of(c, dictionary)) is not None and fld.role == Role.SENSITIVE]


def categorical(columns: Sequence[str], dictionary: Dictionary | None) -> set[str]:
    """Columns the dictionary says hold categories (codes with no order)."""
    return {c for c in columns
            if (fld := field_of(c, dictionary)) is not None and fld.is_categorical}


@dataclass(frozen=True)
class Chosen:
    """The columns a report or an anonymisation works on."""

    quasi_identifiers: list[str]
    sensitive: list[str]
    ordered: frozenset[str]  # sensitive columns measured with the ordered distance


def choose(frame: pl.DataFrame, quasi: Sequence[str], sensitive: Sequence[str],
           dictionary: Dictionary | None, ordered: Sequence[str] | None = None) -> Chosen:
    """Named columns (``a,b`` or repeated), else the dictionary's quasi-identifiers.

    ``ordered``: the sensitive columns measured with the ordered distance, when named (else
    numeric and date columns the dictionary does not call categorical)."""
    qis = _names(quasi) or (quasi_identifiers(frame.columns, dictionary) if dictionary else [])
    if not qis:
        raise Invalid("no quasi-identifier columns: none of the table's columns is a data "
                      "dictionary field with the role quasi_identifier or event_date; name "
                      "them with --qi COLUMN (repeat, or separate with commas)")
    chosen = _names(sensitive)
    check_columns(frame, qis, "quasi-identifier")
    check_columns(frame, chosen, "sensitive")
    named = _names(ordered or [])
    if named:
        stray = sorted(set(named) - set(chosen))
        if stray:
            raise Invalid(f"--ordered names {', '.join(stray)}, not among the sensitive "
                          f"attributes; add them with --sensitive")
        return Chosen(qis, chosen, frozenset(named))
    unordered = categorical(chosen, dictionary)
    inferred = frozenset(s for s in chosen if s not in unordered and (
        frame[s].dtype.is_numeric() or frame[s].dtype.is_temporal()))
    return Chosen(qis, chosen, inferred)


def _names(given: Sequence[str]) -> list[str]:
    return [name.strip() for item in given for name in item.split(",") if name.strip()]
