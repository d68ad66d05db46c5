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
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from strongroom.enclave import margin
from strongroom.enclave.analyses.frame import TOTAL
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, PidArray, Result

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
    members = np.unique(np.concatenate(sets))
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


def namable(result: Result, threshold: int, removed: set[int]) -> Namable:
    """The labels each cell's findings may name, for an output held or blocked: those the
    output would show if it were released (the guarantee above), so a reason can say which
    group and interval failed. A label held by too few, a model level or survival group held
    by too few, an interval only a few are followed into, and a GWAS's variants: never."""
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
        parts = {*cell.row, cell.column, *([cell.table] if cell.table else [])}
        found[i] = frozenset({*parts, " / ".join(cell.row), " | ".join(cell.row)})
    return found


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
