"""Safe labels: a label that leaves is held by at least the threshold of participants.

Group labels are released values. ``GROUP BY bmi`` or ``GROUP BY sex || '-' || bmi`` turns
labels into participants' own values, and a small group shown "suppressed" still shows its
label. The guarantee: *every label in an output (a row's group keys, a crosstab's column
category) is held by at least the threshold of distinct participants in that output*. Cells
whose label fails are left out of the output altogether, label and all (``removed``); they
stay in the check as hidden cells, so that secondary suppression still keeps their counts from
being worked out from the totals.

- Aggregate SQL shows only the key combinations that occur: a row's whole tuple of keys is
  its label, so the row's participants (everyone behind any of its cells) must reach the
  threshold.
- Frequencies, histograms and crosstabs show a grid of categories (or bins): each row
  category and each column category must be held by enough participants; a small
  combination of two common categories is an ordinary suppressed cell (every combination is
  shown, so its presence says nothing). A histogram's bins with fewer than k are left out, so
  its tails no longer show where the extreme values lie.
- Other analyses label rows with variable names, statistics or bins chosen by the researcher
  (not data), or with model and survival levels, which the level rules check.

A label that is a code of the data dictionary (smoking "-3", a crosstab's column "0", a model's
``sex=1``) is read by its meaning wherever a person reads it: the check's reasons and the
checker's table say ``row "Prefer not to answer (-3)"``, the meaning with its code beside it
(:class:`Meanings`), so that the file (which keeps the codes) can still be matched. Meanings
are public metadata, a function of the code alone: a reason may name a meaning exactly where
it may name its code (:func:`namable`).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strongroom.enclave import margin
from strongroom.enclave.analyses.frame import MISSING, TOTAL
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, PidArray, Result
from strongroom.outputs.tidy import meaning as meaning_of
from strongroom.sets import distinct

GRIDS = frozenset({AnalysisKind.FREQUENCY, AnalysisKind.CROSSTAB, AnalysisKind.HISTOGRAM})
RULE = "labels"


def unsafe_cells(result: Result, threshold: int) -> set[int]:
    """The cells whose labels are held by fewer than ``threshold`` participants."""
    if result.kind is AnalysisKind.AGGREGATE_SQL:
        return _rows_below(result.cells, threshold)
    if result.kind in GRIDS:
        return _categories_below(result, threshold)
    return set()


def _rows_below(cells: list[Cell], threshold: int) -> set[int]:
    members: dict[tuple[str, ...], list[PidArray]] = defaultdict(list)
    for cell in cells:
        members[cell.row].append(cell.contributors)
    small = {row for row, sets in members.items() if row and _below(sets, threshold, row)}
    return {i for i, cell in enumerate(cells) if cell.row in small}


def _categories_below(result: Result, threshold: int) -> set[int]:
    crosstab = result.kind is AnalysisKind.CROSSTAB
    rows: dict[str, list[PidArray]] = defaultdict(list)
    columns: dict[str, list[PidArray]] = defaultdict(list)
    for cell in result.cells:
        label = _row_label(cell)
        if label is not None:
            rows[label].append(cell.contributors)
        if crosstab and cell.column != TOTAL:
            columns[cell.column].append(cell.contributors)
    small_rows = {label for label, sets in rows.items() if _below(sets, threshold, "row", label)}
    small_columns = {label for label, sets in columns.items()
                     if _below(sets, threshold, "column", label)}
    return {i for i, cell in enumerate(result.cells)
            if _row_label(cell) in small_rows
            or (crosstab and cell.column != TOTAL and cell.column in small_columns)}


def _row_label(cell: Cell) -> str | None:
    """The data label of a grid cell's row (None for the total row)."""
    if not cell.row or (cell.margin and cell.row == (TOTAL,)):
        return None
    return cell.row[0]


def _below(sets: list[PidArray], threshold: int, *what: object) -> bool:
    """Whether fewer than ``threshold`` distinct participants are in the sets together
    (one large set settles it: the union is only counted when every set is small)."""
    if any(s.size >= margin.highest(threshold) for s in sets):
        return False
    if not sets:
        return True
    # from k to 2k − 1 by the threshold's own draw for these members (enclave/margin.py):
    # a category kept by the analysis (winsor.recoded) keeps its label too
    members = distinct(np.concatenate(sets))
    return margin.short(int(members.size), threshold, *margin.THRESHOLD, members=members)


# survival tables: a group's label in each row, an interval's in the second place
_LIFE_TABLES = frozenset({AnalysisKind.KAPLAN_MEIER, AnalysisKind.CUMULATIVE_INCIDENCE})
MAX_LABEL = 200  # characters: a category's name, a band, a date; never a paragraph
_KEPT = MAX_LABEL - 16


# quotes in a label would end the quotes a reason puts around it, and what follows would
# escape the redaction of labels in reasons (service._without_labels): they become primes
_QUOTES = str.maketrans({'"': "″", "'": "′", "“": "″", "”": "″", "‘": "′", "’": "′"})


def shorten_long(result: Result) -> None:
    """Shorten every label longer than MAX_LABEL, in place, to its start, "…" and a digest of
    the whole (distinct labels stay distinct), and write its quote marks as primes. A label
    of thousands of characters is no category, and its length would set the output's size
    and the check's time: both answers about whoever holds it (a size limit met, a response
    slower, only if a row is shown)."""
    for cell in result.cells:
        cell.row = tuple(_label(part) for part in cell.row)
        cell.column = _label(cell.column)
        cell.table = _label(cell.table)
    # the levels' keys name the same labels (namable matches a cell's to them)
    group = result.spec.get("group") if result.kind in _LIFE_TABLES else None
    result.levels = {_level_key(key, group): pids for key, pids in result.levels.items()}


def _label(text: str) -> str:
    return _short(text.translate(_QUOTES))


def _level_key(key: str, group: object) -> str:
    """``level:<variable>=<label>`` as the cell that names the level shows it: a model's row
    is the whole ``<variable>=<label>``, a survival table's the group's label alone."""
    if not key.startswith("level:"):
        return key
    rest = key.removeprefix("level:")
    if isinstance(group, str) and rest.startswith(f"{group}="):
        return f"level:{group}={_label(rest.removeprefix(f'{group}='))}"
    return f"level:{_label(rest)}"


def _short(label: str) -> str:
    if len(label) <= MAX_LABEL:
        return label
    digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{label[:_KEPT]}…{digest}"


# what a finding may name of a cell (cell index -> the label texts it may quote) when the
# output is not released as it is; ANY_CELL: what any finding may name (the columns the
# researcher named in the request: their own words, shaped as names, never a value)
Namable = dict[int, frozenset[str]]
ANY_CELL = -1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def own_names(columns: Iterable[str]) -> Namable:
    """The researcher's column names that any reason may quote: only name-shaped ones, so
    that a column named like a value ("140", "31.2") never lets a value through."""
    return {ANY_CELL: frozenset(c for c in columns if _NAME.fullmatch(c))}
_NEVER = frozenset({AnalysisKind.GWAS, AnalysisKind.JOB_FILE})
_MODELS = frozenset({AnalysisKind.OLS, AnalysisKind.LOGISTIC, AnalysisKind.COX,
                     AnalysisKind.GLM})


def namable(result: Result, threshold: int, removed: set[int],
            meanings: Meanings | None = None) -> Namable:
    """The labels each cell's findings may name, for an output held or blocked: those the
    output would show if it were released (the guarantee above), so a reason can say which
    group and interval failed. A label held by too few, a model level or survival group held
    by too few, an interval only a few are followed into, and a GWAS's variants: never.
    ``meanings``: the same labels by the meanings of their codes, as the reasons name them."""
    if result.kind in _NEVER:
        return {}
    small_levels = {key for key, pids in result.levels.items()
                    if _below([pids], threshold, "level", key)}
    late = _late_intervals(result, threshold) if result.kind in _LIFE_TABLES else set()
    found: Namable = {}
    for i, cell in enumerate(result.cells):
        if i in removed or any(part in late for part in cell.row):
            continue
        if _level_keys(result, cell) & small_levels:
            continue
        found[i] = _named(cell.table, cell.row, cell.column)
        if meanings is not None:  # the same labels by their meanings (a function of them)
            found[i] |= _named(*meanings.cell(cell))
    return found


def _named(table: str, row: tuple[str, ...], column: str) -> frozenset[str]:
    parts = {*row, column, *([table] if table else [])}
    return frozenset({*parts, " / ".join(row), " | ".join(row)})


def _level_keys(result: Result, cell: Cell) -> set[str]:
    """The level keys (``level:<variable>=<value>``) a cell's labels name."""
    if result.kind in _MODELS and cell.row and "=" in cell.row[0]:
        return {f"level:{cell.row[0]}"}
    keys = set()
    if result.kind in _LIFE_TABLES and result.spec.get("group") and cell.row:
        keys.add(f"level:{result.spec['group']}={cell.row[0]}")
    if result.kind is AnalysisKind.CUMULATIVE_INCIDENCE and ":" in cell.column:
        # a cause's column (events:<cause>) names the cause
        keys.add(f"level:{result.spec.get('event')}={cell.column.partition(':')[2]}")
    return keys


def _late_intervals(result: Result, threshold: int) -> set[str]:
    """Survival intervals into which fewer than ``threshold`` are followed (in all groups):
    the grid reaches the longest follow-up, so such an interval's label tells of a few."""
    at_risk: dict[str, list[PidArray]] = defaultdict(list)
    for cell in result.cells:
        if cell.kind is CellKind.AT_RISK and len(cell.row) > 1:
            at_risk[cell.row[1]].append(cell.contributors)
    return {label for label, sets in at_risk.items()
            if _below(sets, threshold, "interval", label)}


# -- what an output's codes mean, wherever a person reads them --------------------------------

# column -> (code -> meaning): the dictionary's codings of the columns an output groups by
Codings = Mapping[str, Mapping[str, str]]
_NOT_CODES = frozenset({TOTAL, MISSING, ""})
_TERM_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")  # a model's categorical part


@dataclass(frozen=True)
class Meanings:
    """The meanings of the codes in one output's labels: which variable labels each place
    of a cell (a crosstab's rows and columns, a survival table's group, aggregate SQL's keys
    by name, a model's categorical terms), and the codings of those that have one
    (:func:`strongroom.enclave.service.naming`). A label shows as its meaning with the code
    beside it, ``Prefer not to answer (-3)``; one with no meaning (a total, a computed
    category, an unknown code) as it is."""

    kind: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    codings: Codings = field(default_factory=dict)
    keys: Sequence[str] = ()

    def row(self, row: Sequence[str]) -> tuple[str, ...]:
        if self.kind in _MODEL_KINDS:
            return tuple(self.term(part) if i == 0 else part for i, part in enumerate(row))
        names = self._row_variables()
        return tuple(self._said(part, names[i] if i < len(names) else None)
                     for i, part in enumerate(row))

    def column(self, column: str) -> str:
        if self.kind == AnalysisKind.CROSSTAB.value:
            return self._said(column, self.spec.get("columns"))
        if self.kind == AnalysisKind.CUMULATIVE_INCIDENCE.value and ":" in column:
            figure, _, cause = column.partition(":")  # a cause's column: events:2
            said = self._said(cause, self.spec.get("event"))
            return column if said == cause else f"{figure}:{said}"
        return column

    def table(self, table: str) -> str:
        if self.kind in _LIFE_TABLE_KINDS:
            return self._said(table, self.spec.get("group"))
        return table

    def term(self, term: str) -> str:
        """A model's term by meaning: ``sex=1`` is ``sex=Male (sex=1)``, an interaction
        ``sex=1:smoking=2`` is ``sex=Male:smoking=Current (sex=1:smoking=2)``."""
        parts = []
        for part in term.split(":"):
            found = _TERM_PART.fullmatch(part)
            if found is not None and found.group(1) in self.codings:
                name, code = found.groups()
                meaning = meaning_of(code, self.codings[name])
                part = part if meaning is None else f"{name}={_plain(meaning)}"
            parts.append(part)
        said = ":".join(parts)
        return term if said == term else f"{said} ({term})"

    def cell(self, cell: Cell) -> tuple[str, tuple[str, ...], str]:
        """A cell's table, row and column as a person reads them."""
        return (self.table(cell.table) if cell.table else cell.table, self.row(cell.row),
                self.column(cell.column))

    def _row_variables(self) -> list[str | None]:
        if self.kind == AnalysisKind.FREQUENCY.value:
            return [self.spec.get("variable")]
        if self.kind == AnalysisKind.CROSSTAB.value:
            return [self.spec.get("rows")]
        if self.kind in _LIFE_TABLE_KINDS:
            return [self.spec.get("group")]
        if self.kind == AnalysisKind.AGGREGATE_SQL.value:
            return list(self.keys)
        return []

    def _said(self, code: str, variable: object) -> str:
        if not isinstance(variable, str) or variable not in self.codings or code in _NOT_CODES:
            return code
        meaning = meaning_of(code, self.codings[variable])
        if meaning is None or meaning == code:
            return code
        return f"{_plain(meaning)} ({code})"


_MODEL_KINDS = frozenset(k.value for k in _MODELS)
_LIFE_TABLE_KINDS = frozenset(k.value for k in _LIFE_TABLES)


def _plain(meaning: str) -> str:
    """A meaning as a quoted label may hold it: its quotes as primes (see _QUOTES)."""
    return _short(meaning.translate(_QUOTES))


_READING: ContextVar[Meanings | None] = ContextVar("strongroom_meanings", default=None)


@contextmanager
def read_as(meanings: Meanings | None) -> Iterator[None]:
    """Within this block, the cells that reasons name (suppression.where) are named by the
    meanings of their codes."""
    token = _READING.set(meanings)
    try:
        yield
    finally:
        _READING.reset(token)


def reading() -> Meanings | None:
    """The meanings that the reasons being written name cells by (None: as they are)."""
    return _READING.get()


def as_read(cell: Cell) -> tuple[str, tuple[str, ...], str]:
    """A cell's table, row and column as the reasons being written name it."""
    meanings = _READING.get()
    return (cell.table, cell.row, cell.column) if meanings is None else meanings.cell(cell)
