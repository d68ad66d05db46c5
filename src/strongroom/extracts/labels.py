"""A suspect's text labels read back as the codes they stand for (issue 57).

A leaker may re-code a copy's categories from codes to their meanings (``1`` to ``Male``,
``1226`` to ``hypothyroidism/myxoedema``), as a spreadsheet export or a tidy data set would.
The labels say exactly what the codes said, so every mark that lives in codes — the order of a
multi-answer field's codes (``orders.py``), and the exact categories that block the
linkage-free reading (``multiset.py``) — is still there; only its spelling changed. This
module turns such a column back into numbers before linkage sees it.

A text column is decoded with the coding of the field its name names (``p20002_i0_a3``), or,
when it was renamed, with the one coding among the granted fields' whose meanings hold at
least ``SHARE`` of its present values (``*``, the gate's blank, not counted; several codings
fitting: the column is left as text). Values that are no meaning of that coding (a typo,
``*``) become missing. The rule reads the file and the data dictionary alone — never a
recipient's key — so every reading after it keeps its null law, and so does its bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from strongroom.cohort.dictionary import Coding, Dictionary
from strongroom.cohort.model import parse_column_name
from strongroom.privacy import hierarchies

SHARE = 0.9  # of a text column's present values (rows) that must be one coding's meanings
SUPPRESSED = "*"  # the risk gate's blank: missing, not a label
MIN_VALUES = 2  # distinct present values, or a column is not judged by its values


def _key(text: str) -> str:
    return " ".join(text.strip().lower().split())


def _decoder(coding: Coding) -> dict[str, float | None]:
    """A coding's meanings (case and spacing folded) -> its codes, for integer codings; a
    meaning two codes share reads as missing (no label says which)."""
    if not coding.integer_codes:
        return {}
    out: dict[str, float | None] = {}
    for code, meaning in coding.codes.items():
        key = _key(meaning)
        out[key] = None if key in out else float(int(code))
    return out


def _fits(decoder: Mapping[str, float | None], values: list[str], counts: list[int]) -> bool:
    """Whether ``SHARE`` of the rows (``values`` with their ``counts``) are labels of it."""
    total = sum(counts)
    found = sum(n for v, n in zip(values, counts, strict=True) if v in decoder)
    return total > 0 and found >= SHARE * total


def _generalised(column: str, values: list[str], dictionary: Dictionary,
                 coding: Coding) -> bool:
    """Whether every value is a label of a level above the codes in the column's hierarchy
    (ethnic background by group, whose labels are the parent codes' meanings; a centre by
    nation): the risk gate's release, which linkage compares level by level as text."""
    fld = dictionary.field(parse_column_name(column, dictionary).field_id)
    codes = pl.Series(column, [int(c) for c in coding.codes], dtype=pl.Int64)
    try:
        tree = hierarchies.for_field(column, fld, dictionary, codes)
    except (KeyError, ValueError):
        return False
    for level in tree.levels[1:-1]:
        labels = {_key(v) for v in level.rule.apply(codes).cast(pl.String).to_list()
                  if v is not None}
        if values and set(values) <= labels:
            return True
    return False


def _named_coding(column: str, dictionary: Dictionary) -> Coding | None:
    try:
        fld = dictionary.field(parse_column_name(column, dictionary).field_id)
    except (KeyError, ValueError):
        return None
    return dictionary.coding_of(fld) if fld.is_categorical else None


def as_codes(frame: pl.DataFrame, dictionary: Dictionary,
             fields: Iterable[int]) -> tuple[pl.DataFrame, list[str]]:
    """``frame`` with each column of text labels replaced by its codes (Float64, missing where
    a value is no label), and the names of the columns so decoded. ``fields``: the fields
    some registered extract was granted (their codings are the ones a renamed column may
    use)."""
    decoders: dict[int, dict[str, float | None]] = {}
    candidates: list[tuple[int, Mapping[str, float | None]]] = []
    for field_id in sorted(set(fields)):
        if field_id not in dictionary.fields:
            continue
        fld = dictionary.field(field_id)
        coding = dictionary.coding_of(fld) if fld.is_categorical else None
        if coding is None or coding.coding_id in decoders:
            continue
        decoders[coding.coding_id] = _decoder(coding)
        if decoders[coding.coding_id]:
            candidates.append((coding.coding_id, decoders[coding.coding_id]))
    changed: list[pl.Series] = []
    for column in frame.columns:
        series = frame[column]
        if series.dtype != pl.String:
            continue
        present = series.drop_nulls().str.strip_chars()
        present = present.filter(present != "")
        if present.len() == 0 or present.cast(pl.Float64, strict=False).null_count() == 0:
            continue  # numbers written as text: linkage reads those itself
        counted = present.filter(present != SUPPRESSED).value_counts()
        distinct = [_key(v) for v in counted[present.name].to_list()]
        weight = counted["count"].to_list()

        named = _named_coding(column, dictionary)
        if named is not None and _generalised(column, distinct, dictionary, named):
            continue  # the gate's group labels ("White", a nation): linkage reads those
        decoder: Mapping[str, float | None] | None = None
        if named is not None:
            decoder = decoders.get(named.coding_id) or _decoder(named)
        elif len(distinct) >= MIN_VALUES:
            fits = {cid for cid, d in candidates if _fits(d, distinct, weight)}
            if len(fits) == 1:
                decoder = decoders[fits.pop()]
        if not decoder or not _fits(decoder, distinct, weight):
            continue
        codes = [decoder.get(_key(v)) if v is not None else None for v in series.to_list()]
        changed.append(pl.Series(column, codes, dtype=pl.Float64))
    if not changed:
        return frame, []
    return frame.with_columns(changed), [s.name for s in changed]
