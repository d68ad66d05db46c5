"""Secondary suppression: hide enough further cells that no hidden cell can be worked out.

A table's cells sit on a grid: coordinates are the row labels plus the column label, and cells
of one :attr:`Cell.table`, one kind and one row depth share a grid. Along every line of the
grid (all coordinates fixed but one) the parts add up to the line's total: the margin cell
where the table shows one, otherwise a total assumed known from elsewhere (a category's size
is rarely secret), so a hidden cell alone on a line could be recovered by subtraction. Counts,
percentages, sums, means and SDs are treated this way (means and SDs combine with counts into
totals); medians, quantiles and extremes do not add up and are left alone.

The procedure, to a fixed point:

1. **derived cells**: a percentage whose numerator or denominator is a hidden count is hidden
   (and the count behind a hidden percentage); the sum, mean and SD of one row over the same
   participants likewise. "The same" is within the threshold's keyed line (enclave/margin.py),
   as repeats are: a count of everyone beside a hidden 100% share says it to within a few
   people, and were only identical groups hidden, what is shown would tell whether the share
   was 100% or one short;
2. **lines**: every line with exactly one hidden cell gets its smallest remaining cell hidden
   too (non-zero parts before zeros, parts before margins);
3. **audit**: the whole system of line relations is solved for the hidden cells; any hidden
   cell the relations still determine (e.g. a cell bridging two blocks of hidden cells) gets
   the smallest remaining cell on one of its lines hidden, and the loop goes on. A hidden cell
   that remains determined with nothing left to hide is reported as unprotected.

Only exact recovery is prevented; the ranges an intruder can bound a hidden count to (from
non-negativity) are not audited.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from strongroom.enclave import margin
from strongroom.enclave.results import Cell, CellKind
from strongroom.outputs.labels import as_read

ADDITIVE = frozenset({CellKind.COUNT, CellKind.PERCENT, CellKind.SUM, CellKind.MEAN,
                      CellKind.SD})
# kinds that give each other away when they describe the same participants: a count and its
# percentage (either side of it); a sum, mean and SD of one variable (same row; a summary's
# other variables share the participants but not the values)
PARTNERS: dict[CellKind, frozenset[CellKind]] = {
    CellKind.COUNT: frozenset({CellKind.PERCENT}),
    CellKind.PERCENT: frozenset({CellKind.COUNT}),
    CellKind.SUM: frozenset({CellKind.MEAN, CellKind.SD}),
    CellKind.MEAN: frozenset({CellKind.SUM, CellKind.SD}),
    CellKind.SD: frozenset({CellKind.SUM, CellKind.MEAN}),
}
SAME_ROW = frozenset({CellKind.SUM, CellKind.MEAN, CellKind.SD})

GridKey = tuple[str, CellKind, int]  # (table, kind, row depth)
Hide = Callable[[int, str], None]


@dataclass(frozen=True)
class Relation:
    """One line of a grid: Σ coefficient × value is known (0 with a margin, else the total)."""

    grid: GridKey
    cells: tuple[int, ...]
    coefficients: tuple[int, ...]  # -1 for the line's margin (its total), +1 for its parts


@dataclass
class Protection:
    """What secondary suppression added, and what it could not protect."""

    secondary: dict[int, str] = field(default_factory=dict)  # cell -> plain-words why
    unprotected: set[int] = field(default_factory=set)  # hidden yet still determined


def relations(cells: Sequence[Cell], eligible: Collection[int]) -> list[Relation]:
    """The line relations among the ``eligible`` cells (those of additive kinds in tables)."""
    grids: dict[GridKey, list[int]] = defaultdict(list)
    for i in eligible:
        cell = cells[i]
        if cell.kind in ADDITIVE:
            grids[(cell.table, cell.kind, len(cell.row))].append(i)
    out: list[Relation] = []
    for key, members in grids.items():
        out.extend(_grid_relations(key, members, cells))
    return out


def protect(cells: Sequence[Cell], primary: Collection[int], eligible: Collection[int],
            *, relate: bool = True, threshold: int = 1) -> Protection:
    """Secondary suppression for ``primary`` hidden cells; only ``eligible`` cells are hidden.

    ``relate`` False: the table's lines do not add up (e.g. rows that are different
    variables), so only derived cells are hidden. ``threshold``: groups that differ by fewer
    people than its keyed line count as the same participants (1: only identical ones).
    """
    allowed = set(eligible)
    hidden = set(primary)
    result = Protection()
    if not hidden:
        return result
    lines = relations(cells, allowed) if relate else []
    by_cell: dict[int, list[Relation]] = defaultdict(list)
    for rel in lines:
        for i in rel.cells:
            by_cell[i].append(rel)
    groups = _group_index(cells, allowed)

    def hide(i: int, why: str) -> None:
        hidden.add(i)
        result.secondary[i] = why

    while True:
        added = (_derived(cells, hidden, groups, hide, threshold)
                 + _lines(cells, lines, by_cell, hidden, hide))
        if added:
            continue
        for j in sorted(determined(lines, hidden) - result.unprotected):
            pick = _smallest(cells, {i for rel in by_cell[j] for i in rel.cells} - hidden,
                             by_cell, hidden)
            if pick is None:
                result.unprotected.add(j)
                continue
            hide(pick, f"it shares a row or column with {where(cells[j])}, which the "
                       "table's other hidden cells and totals would still give away")
            added = 1
            break  # re-run the cheap rules before auditing again
        if not added:
            return result


MAX_SYSTEM = 4_000_000  # relations × hidden cells of one grid solved at once (32 MB)


class TooLargeToProveError(Exception):
    """The table's system of totals is too large to prove its hidden cells safe."""


def determined(lines: Iterable[Relation], hidden: Collection[int]) -> set[int]:
    """Hidden cells whose value follows exactly from the shown cells and the line totals.

    Per grid, the relations restricted to the hidden cells form a matrix A; a hidden cell j is
    determined iff every solution of A·x = 0 has x_j = 0 (its row of A's null-space basis is
    zero).
    """
    hide = set(hidden)
    per_grid: dict[GridKey, list[Relation]] = defaultdict(list)
    for rel in lines:
        if hide.intersection(rel.cells):
            per_grid[rel.grid].append(rel)
    found: set[int] = set()
    for rels in per_grid.values():
        unknowns = sorted({i for rel in rels for i in rel.cells if i in hide})
        if len(rels) * len(unknowns) > MAX_SYSTEM:
            raise TooLargeToProveError
        column = {i: n for n, i in enumerate(unknowns)}
        a = np.zeros((len(rels), len(unknowns)))
        for r, rel in enumerate(rels):
            for i, coef in zip(rel.cells, rel.coefficients, strict=True):
                if i in column:
                    a[r, column[i]] = coef
        _, s, vt = np.linalg.svd(a)
        rank = int((s > 1e-9 * max(1.0, float(s.max(initial=0.0)))).sum())
        null = vt[rank:].T  # columns span the null space
        norms = np.linalg.norm(null, axis=1) if null.size else np.zeros(len(unknowns))
        found.update(i for i, norm in zip(unknowns, norms, strict=True) if norm < 1e-9)
    return found


def _grid_relations(key: GridKey, members: list[int], cells: Sequence[Cell]) -> list[Relation]:
    coords = {i: (*cells[i].row, cells[i].column) for i in members}
    dims = key[2] + 1
    out: list[Relation] = []
    for d in range(dims):
        totals = _total_labels(members, coords, cells, d)
        lines: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i in members:
            lines[coords[i][:d] + coords[i][d + 1:]].append(i)
        for line in lines.values():
            if len(line) < 2:
                continue  # a lone cell is no sum of parts
            coefs = tuple(-1 if coords[i][d] in totals else 1 for i in line)
            out.append(Relation(key, tuple(line), coefs))
    return out


def _total_labels(members: list[int], coords: dict[int, tuple[str, ...]],
                  cells: Sequence[Cell], d: int) -> set[str]:
    """Labels of dimension ``d`` that only margin cells carry: the totals along that axis."""
    margin_only: dict[str, bool] = {}
    for i in members:
        label = coords[i][d]
        margin_only[label] = margin_only.get(label, True) and cells[i].margin
    totals = {label for label, only in margin_only.items() if only}
    return totals if len(totals) < len(margin_only) else set()


GroupIndex = dict[tuple[CellKind, int], list[int]]


def _group_index(cells: Sequence[Cell], allowed: set[int]) -> GroupIndex:
    """Eligible cells of the derived kinds by (kind, size of each participant group)."""
    index: GroupIndex = defaultdict(list)
    for j in allowed:
        if cells[j].kind in PARTNERS:
            for group in _groups(cells[j]):
                index[(cells[j].kind, group.size)].append(j)
    return index


def _derived(cells: Sequence[Cell], hidden: set[int], index: GroupIndex, hide: Hide,
             threshold: int = 1) -> int:
    """Hide the cells that another hidden cell's participants would give away."""
    added = 0
    queue = sorted(hidden)
    reach = margin.highest(threshold) if threshold > 1 else 1
    while queue:
        i = queue.pop()
        a = cells[i]
        group = a.contributors  # a hidden percentage does not hide its denominator
        for kind in PARTNERS.get(a.kind, frozenset()):
            # |A Δ B| ≥ ||A| − |B||: only groups within the highest line in size can be near
            for size in range(max(group.size - reach + 1, 0), group.size + reach):
                for j in index.get((kind, size), []):
                    b = cells[j]
                    if j in hidden or (a.kind in SAME_ROW
                                       and (b.row, b.table) != (a.row, a.table)):
                        continue
                    if any(_near(group, g, threshold) for g in _groups(b)):
                        hide(j, f"it is derived from the same participants as {where(a)} "
                                "(or from all but a few of them), which is hidden")
                        added += 1
                        queue.append(j)
    return added


def _groups(cell: Cell) -> list[npt.NDArray[np.int64]]:
    """The participant sets a cell shows the size of (a percentage: both of its sides)."""
    groups = [cell.contributors]
    if cell.kind is CellKind.PERCENT and cell.denominator is not None:
        groups.append(cell.denominator)
    return groups


def _same(x: npt.NDArray[np.int64], y: npt.NDArray[np.int64]) -> bool:
    return x.shape == y.shape and (x.size == 0 or (x[0] == y[0] and x[-1] == y[-1]
                                                   and bool(np.array_equal(x, y))))


def _near(x: npt.NDArray[np.int64], y: npt.NDArray[np.int64], threshold: int) -> bool:
    """The same participants, or (threshold above 1) two groups that differ by fewer people
    than the pair's keyed line, drawn by the people they differ by (as repeats are)."""
    if _same(x, y):
        return True
    if threshold <= 1 or abs(x.size - y.size) >= margin.highest(threshold):
        return False
    apart = np.setxor1d(x, y, assume_unique=True)
    return apart.size > 0 and margin.short(apart.size, threshold, "secondary_suppression",
                                           members=apart)


def _lines(cells: Sequence[Cell], lines: list[Relation], by_cell: Mapping[int, list[Relation]],
           hidden: set[int], hide: Hide) -> int:
    added = 0
    for rel in lines:
        inside = [i for i in rel.cells if i in hidden]
        if len(inside) != 1:
            continue
        pick = _smallest(cells, set(rel.cells) - hidden, by_cell, hidden, rel)
        if pick is not None:
            hide(pick, f"otherwise {where(cells[inside[0]])}, hidden, could be worked out "
                       "from the rest of its row or column and the total")
            added += 1
    return added


def _smallest(cells: Sequence[Cell], candidates: set[int], by_cell: Mapping[int, list[Relation]],
              hidden: set[int], line: Relation | None = None) -> int | None:
    """The cell to hide as well: non-zero before zero, parts before margins, then a cell whose
    other line already has a lone hidden cell (closing a rectangle), then the smallest."""
    if not candidates:
        return None

    def closes(i: int) -> int:
        return sum(1 for rel in by_cell.get(i, []) if rel is not line
                   and sum(1 for j in rel.cells if j in hidden) == 1)

    def key(i: int) -> tuple[bool, bool, int, float, int]:
        value = abs(cells[i].value or 0.0)
        return (value == 0.0, cells[i].margin, -closes(i), value, i)

    return min(candidates, key=key)


def where(cell: Cell) -> str:
    """A cell named by its labels, as the reasons for a person show it: a code of the data
    dictionary by its meaning, the code beside it (``row "Prefer not to answer (-3)"``), when
    the reasons are written within labels.read_as."""
    table, row, column = as_read(cell)
    said = f'table "{table}", ' if table else ""
    return f'{said}row "{" / ".join(row)}", column "{column}"'
