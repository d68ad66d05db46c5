"""Marks in the order of a multi-answer field's codes: a keyed choice among equal codings.

A categorical field with several array columns (qualifications ``p6138_i0_a0 … a5``,
self-reported illnesses ``p20002_i0_a0 … a33``, illnesses of the father, medications) holds a
*set* of answers: ``{1, 6}`` written as ``(1, 6)`` or as ``(6, 1)`` means the same, and every
analysis that asks "does the participant report code c" (any array column) gives the same
answer for both. Which order a copy uses is therefore a free, keyed choice: a mark in columns
that carry no other (codes are never moved, issue 57), within the risk gate's rules — no code
changes, no new value, no finer precision; a row's set of codes is exactly the master's.

**Embedding.** For a row whose field holds ``k ≥ 2`` distinct codes, sorted ``c₁ < … < c_k``,
the copy writes them in the order built by inserting ``c₂ … c_k`` one by one before the list
(symbol 1) or after it (symbol 0), starting from ``[c₁]``: ``k − 1`` binary symbols. The
*position* of symbol ``j`` is the set itself (and ``j``), not the participant: every row of
the copy holding ``{1, 6}`` writes it in the same order. So the mark is read from each row's
tuple of the field alone, with no row linked to anyone; a re-pairer who keeps a field's array
columns together (as anyone keeping the data usable must: a tuple split across rows holds
duplicated or missing answers) keeps every mark. The codes stay in the array columns the row
used (a row with codes in ``a0`` and ``a1`` still has them there).

Each position is an int64 *surrogate* — a 64-bit hash of (field, sorted codes, ``j``) — under
the carrier's own tag (``p6138_i0_a*``: no storage column has that name), so its bias and
every recipient's symbol are the Tardos code's own draws (``codes.thresholds``,
``codes.symbols``): exactly Bernoulli(p) for an innocent, independent of every cell's mark,
of every other set and of every other recipient.

**Reading** (``read``): for each suspect row with ``k ≥ 2`` distinct codes in the field's
columns, symbol ``j`` reads ``+1`` when ``c_j`` stands before ``c₁``, ``−1`` after; the reading
of a position is the mean over the rows holding that set (``−1 … 1``). Only sets some master
participant holds are read. The readings are a function of the file, the master and the
carrier alone — never of a recipient's key — so an innocent's score on them is the sum of
independent two-point terms ``accuse``'s bound assumes, whatever the file is: sorted, as the
master, or another recipient's. They are scored with the linkage-free "values" evidence
(``multiset.gather``), one more set of positions in each of its readings.

**Analyses.** Any analysis of the set (a crosstab of "reports c", counts of answers, a
comorbidity index) is unchanged to the last digit. An analysis of one array column alone —
``a0`` read as the "first" answer, which the data never meant — sees the copy's order: that
change is measured (``benchmarks/extracts.py`` and the session-33 note in BENCHMARKS.md).

**Where the order means something** — a field whose array index pairs it with another field's
(self-reported illness ``20002`` with its year ``20008`` and age ``20009``; ICD-10 diagnoses
``41270`` with their dates ``41280``) — the field carries no order marks when the extract
holds its companion (``ALIGNED``): reordering one without the other would change what the data
say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary
from strongroom.extracts import codes
from strongroom.extracts.carriers import ORDER, Carrier, as_numbers
from strongroom.sets import distinct

MIN_ROWS = 20  # rows with two answers or more, or the field carries no order marks
SORTED = 0.9  # share of a suspect's rows in ascending (or descending) order: a sorted field
CONVENTION = 0.9  # master rows of a recurring set written in its usual order: a convention
_ARRAY = re.compile(r"^(p\d+_i\d+)_a(\d+)$")
_FIELD = re.compile(r"^p(\d+)(?:_|$)")
# fields whose array index pairs them with another field's (UK Biobank's companions)
ALIGNED: dict[int, tuple[int, ...]] = {
    20001: (20006, 20007), 20002: (20008, 20009), 20004: (20010, 20011),
    41270: (41280,), 41271: (41281,), 41272: (41282,), 41273: (41283,),
    40006: (40005, 40008), 40013: (40005, 40008),
}
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_MISSING = np.inf  # a missing slot, after sorting: last


def array_columns(columns: Iterable[str]) -> dict[str, list[str]]:
    """Array columns by their field instance (``p6138_i0``), in array order."""
    found: dict[str, list[tuple[int, str]]] = {}
    for column in columns:
        match = _ARRAY.match(column)
        if match:
            found.setdefault(match.group(1), []).append((int(match.group(2)), column))
    return {prefix: [c for _, c in sorted(items)] for prefix, items in found.items()
            if len(items) >= 2}


def carrier_name(prefix: str) -> str:
    return f"{prefix}_a*"


def prefix_of(carrier: Carrier) -> str:
    return carrier.column[:-3]


def columns_of(carrier: Carrier, columns: Iterable[str]) -> list[str]:
    """``carrier``'s array columns among ``columns``, in array order."""
    return array_columns(columns).get(prefix_of(carrier), [])


def choose(frame: pl.DataFrame, dictionary: Dictionary, columns: Sequence[str]
           ) -> tuple[list[Carrier], dict[str, str]]:
    """The multi-answer categorical fields of ``frame`` that carry order marks, and why
    each other multi-column categorical field does not."""
    chosen: list[Carrier] = []
    skipped: dict[str, str] = {}
    present = {int(m.group(1)) for m in map(_FIELD.match, columns) if m}
    for prefix, cols in sorted(array_columns(columns).items()):
        field_id = int(prefix[1:].split("_")[0])
        if field_id not in dictionary.fields or not dictionary.field(field_id).is_categorical:
            continue
        companions = [f for f in ALIGNED.get(field_id, ()) if f in present]
        if companions:
            skipped[carrier_name(prefix)] = (
                f"its array index pairs it with field(s) {', '.join(map(str, companions))} "
                f"in this extract: its order means something")
            continue
        matrix = _matrix(frame, cols)
        if int(_usable(matrix).sum()) < MIN_ROWS:
            skipped[carrier_name(prefix)] = f"fewer than {MIN_ROWS} rows with two answers"
            continue
        convention = _convention(matrix[_usable(matrix)])
        if convention >= CONVENTION:
            skipped[carrier_name(prefix)] = (
                f"the data write each set of its answers in one order ({convention:.0%} of "
                f"rows whose set recurs; the coding's list order, say): its first array "
                f"column may be read as meaning something, so its order stays as recorded")
            continue
        chosen.append(Carrier(column=carrier_name(prefix), field_id=field_id, decimals=0,
                              amplitude=1.0, sd=0.0, low=0.0, high=0.0, kind=ORDER))
    return chosen, skipped


def _matrix(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return np.column_stack([as_numbers(frame[c]) for c in columns]) if columns else (
        np.empty((frame.height, 0)))


def _sorted(matrix: np.ndarray) -> np.ndarray:
    """Each row's codes ascending, missing (``inf``) last."""
    out: np.ndarray = np.sort(np.where(np.isnan(matrix), _MISSING, matrix), axis=1)
    return out


def _usable(matrix: np.ndarray) -> np.ndarray:
    """Rows with at least two codes, all distinct."""
    ordered = _sorted(matrix)
    count = np.isfinite(ordered).sum(axis=1)
    repeated = np.any((ordered[:, 1:] == ordered[:, :-1]) & np.isfinite(ordered[:, 1:]), axis=1)
    out: np.ndarray = (count >= 2) & ~repeated
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on uint64 arrays (wrapping)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: np.ndarray = x ^ (x >> np.uint64(31))
        return out


def _set_hashes(carrier: Carrier, ordered: np.ndarray) -> np.ndarray:
    """A 64-bit name for each row's sorted set of codes (``ordered``: :func:`_sorted`),
    whatever the number of array columns around them."""
    return _set_hashes_of(ordered, codes.column_tag(carrier.column))


def _set_hashes_of(ordered: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 64-bit name for each row's finite codes in the order given (``inf``: none, last)."""
    h = np.full(len(ordered), np.uint64(seed), dtype=np.uint64)
    with np.errstate(over="ignore", invalid="ignore"):
        for slot in range(ordered.shape[1]):
            value = ordered[:, slot]
            present = np.isfinite(value)
            if not present.any():
                break
            code = np.where(present, value, 0.0).astype(np.int64).view(np.uint64)
            h = np.where(present, _mix(h ^ _mix(code + np.uint64(slot + 1))), h)
    return h


def _surrogates(hashes: np.ndarray, j: int) -> np.ndarray:
    """Position ids (int64, ≥ 0) of symbol ``j`` of the sets named ``hashes``."""
    with np.errstate(over="ignore"):
        out: np.ndarray = (_mix(hashes + np.uint64(j) * np.uint64(0x9E3779B97F4A7C15))
                           >> np.uint64(1)).astype(np.int64)
    return out


def embed(frame: pl.DataFrame, order_carriers: Sequence[Carrier], bias_key: bytes,
          key: bytes) -> pl.DataFrame:
    """``frame`` with each carrier field's codes in the recipient's keyed order (rows with
    fewer than two distinct codes, or a repeated code, as they were)."""
    out = []
    for carrier in order_carriers:
        cols = columns_of(carrier, frame.columns)
        if len(cols) < 2:
            continue
        matrix = _matrix(frame, cols)
        use = _usable(matrix)
        if not use.any():
            continue
        ordered = _sorted(matrix[use])
        tag = np.uint64(codes.column_tag(carrier.column))
        hashes = _set_hashes(carrier, ordered)
        keys = np.zeros(ordered.shape)  # c₁ at 0; c_j at −j (before) or +j (after)
        for j in range(1, ordered.shape[1]):
            present = np.isfinite(ordered[:, j])
            if not present.any():
                keys[:, j] = np.inf
                continue
            who = _surrogates(hashes[present], j)
            tags = np.full(len(who), tag, dtype=np.uint64)
            ones = codes.symbols(key, who, tags, codes.thresholds(bias_key, who, tags))
            column = np.full(len(ordered), np.inf)
            column[present] = np.where(ones, -j, j)
            keys[:, j] = column
        placed = np.take_along_axis(ordered, np.argsort(keys, axis=1, kind="stable"), axis=1)
        occupied = ~np.isnan(matrix[use])  # codes go back into the slots the row used
        rank = np.cumsum(occupied, axis=1) - 1
        rows = np.where(occupied, np.take_along_axis(placed, np.maximum(rank, 0), axis=1),
                        np.nan)
        marked = matrix.copy()
        marked[use] = rows
        for i, c in enumerate(cols):
            out.append(pl.Series(c, marked[:, i]).fill_nan(None).cast(frame[c].dtype))
    return frame.with_columns(out) if out else frame


def read(order_carriers: Sequence[tuple[int, Carrier]], suspect: Mapping[str, np.ndarray],
         master: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (surrogate ids), carrier indices and soft symbols read from the suspect's
    tuples of each carrier field, with no row linked. ``order_carriers``: (index in the
    caller's carrier list, carrier); ``suspect``/``master``: column -> codes as numbers."""
    parts_eid, parts_idx, parts_w = [], [], []
    for index, carrier in order_carriers:
        cols = columns_of(carrier, set(suspect) & set(master))
        if len(cols) < 2:
            continue
        matrix = np.column_stack([np.asarray(suspect[c], dtype=np.float64) for c in cols])
        use = _usable(matrix)
        if not use.any():
            continue
        rows = matrix[use]
        if _canonical(rows):
            continue
        ordered = _sorted(rows)
        hashes = _set_hashes(carrier, ordered)
        reference = np.column_stack([np.asarray(master[c], dtype=np.float64) for c in cols])
        known = distinct(_set_hashes(carrier, _sorted(reference[_usable(reference)])))
        held = np.isin(hashes, known)  # sets no participant holds say nothing
        rows, ordered, hashes = rows[held], ordered[held], hashes[held]
        if len(rows) == 0:
            continue
        slot = np.where(np.isnan(rows), np.inf, np.arange(rows.shape[1])[None, :])
        first = _slot_of(rows, slot, ordered[:, 0])
        for j in range(1, ordered.shape[1]):
            present = np.isfinite(ordered[:, j])
            if not present.any():
                break
            before = _slot_of(rows[present], slot[present], ordered[present, j]) \
                < first[present]
            name, at = np.unique(hashes[present], return_inverse=True)
            total = np.bincount(at.ravel(), weights=np.where(before, 1.0, -1.0))
            count = np.bincount(at.ravel())
            parts_eid.append(_surrogates(name, j))
            parts_idx.append(np.full(len(name), index, dtype=np.int32))
            parts_w.append(total / count)
    if not parts_eid:
        return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0)
    return np.concatenate(parts_eid), np.concatenate(parts_idx), np.concatenate(parts_w)


def _packed(rows: np.ndarray) -> np.ndarray:
    """Each row's codes in the order written, gaps closed (missing, NaN, last)."""
    slots = np.where(np.isnan(rows), np.inf, np.arange(rows.shape[1])[None, :])
    out: np.ndarray = np.take_along_axis(rows, np.argsort(slots, axis=1, kind="stable"), axis=1)
    return out


def _convention(rows: np.ndarray) -> float:
    """How consistently ``rows`` (usable rows of the master) write one set in one order:
    among rows whose set recurs, the share written in their set's most common order (1.0
    when the order is a function of the set — sorted, or grouped as the questionnaire
    listed them; about ``1/k!``… for an order as reported). Rows all sorted count as 1.0
    even when no set recurs."""
    if _canonical(rows):
        return 1.0
    sets = _set_hashes_of(_sorted(rows))
    written = _set_hashes_of(np.where(np.isnan(_packed(rows)), np.inf, _packed(rows)))
    _, set_at, set_count = np.unique(sets, return_inverse=True, return_counts=True)
    recurs = set_count[set_at.ravel()] >= 2
    if not recurs.any():
        return 0.0
    pairs = np.unique(np.column_stack([sets[recurs], written[recurs]]), axis=0,
                      return_counts=True)
    modal: dict[int, int] = {}
    for (name, _), count in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        modal[name] = max(modal.get(name, 0), count)
    return float(sum(modal.values()) / int(recurs.sum()))


def _canonical(rows: np.ndarray) -> bool:
    """Whether ``SORTED`` of the rows hold their codes in ascending (or descending) order
    (any gaps between them skipped): a field a seller sorted holds no order marks, and
    reading it would only add noise. (Copies hold about half of each.)"""
    steps = np.diff(_packed(rows), axis=1)
    known = np.isfinite(steps)
    up = np.all(np.where(known, steps > 0, True), axis=1)
    down = np.all(np.where(known, steps < 0, True), axis=1)
    return bool(max(float(np.mean(up)), float(np.mean(down))) >= SORTED)


def _slot_of(rows: np.ndarray, slot: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Each row's slot holding ``code`` (its first, if any)."""
    found = np.where(rows == code[:, None], slot, np.inf)
    out: np.ndarray = found.min(axis=1)
    return out
