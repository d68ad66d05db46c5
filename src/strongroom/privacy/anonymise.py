"""Anonymisation: the least information loss that meets k (and l, t) with limited suppression.

Every quasi-identifier attribute has a hierarchy of levels (``hierarchies.py``); a
*transformation* picks one level per attribute, and the transformations form a lattice. A
transformation is acceptable when, after generalising, the records in classes that miss a
target (fewer than k records, fewer than l distinct values of a sensitive attribute, or further
than t from the table's distribution) number at most the suppression limit; those records are
suppressed (every quasi-identifier blanked). The suppressed records form a class of their own,
so when there are fewer than k of them the smallest remaining classes are suppressed with them.

Information loss is the Loss metric (Iyengar 2002, ARX's "Loss"): for each record and
attribute, (values merged under its label − 1) / (distinct values − 1), 1 for a suppressed
record, averaged over records and attributes. Precision (Sweeney) is reported too.

The search (like ARX's Flash and El Emam's OLA) relies on two monotone facts: generalising
never increases the records that miss k or distinct-l (classes only merge), and the loss
without suppression, G, only grows. Transformations are visited in order of G; one whose G
already reaches the best loss found cannot win, nor can anything after it, so the search stops
there with the optimum. A transformation with too many records missing k or l tags every one
below it as failing; a binary search up a chain of cheap generalisations from it tags the
most. t-closeness is not monotone under suppression (a merged class can move further from the
table), so missing t alone tags nothing (more evaluations, still exact; each evaluation counts
classes and (class, value) pairs in dense tables rather than sorting them).
Lattices above ``EXACT_LIMIT`` transformations are searched greedily instead (reported as not
proved optimal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from strongroom import sets
from strongroom.errors import Invalid, Refused
from strongroom.privacy.classes import ColumnCodes, check_columns, column_codes, combine, densify
from strongroom.privacy.hierarchies import Everything, Hierarchies, Hierarchy
from strongroom.privacy.sensitive import emd_per_class, pairs, value_ranks

EXACT_LIMIT = 200_000  # lattices up to this many transformations are searched exactly
DEFAULT_SUPPRESSION = 0.02
_EPS = 1e-12


@dataclass(frozen=True)
class Targets:
    """What the released table must meet."""

    k: int = 5
    l: int | None = None  # noqa: E741 — distinct l-diversity of every sensitive attribute
    t: float | None = None  # t-closeness of every sensitive attribute
    suppression_limit: float = DEFAULT_SUPPRESSION  # share of records that may be suppressed
    sensitive: tuple[str, ...] = ()
    ordered: frozenset[str] | None = None  # sensitive attributes with the ordered distance

    def check(self) -> None:
        if self.k < 1:
            raise Invalid(f"k must be at least 1, not {self.k}")
        if self.l is not None and self.l < 1:
            raise Invalid(f"l must be at least 1, not {self.l}")
        if self.t is not None and not 0.0 <= self.t <= 1.0:
            raise Invalid(f"t must be between 0 and 1, not {self.t}")
        if not 0.0 <= self.suppression_limit <= 1.0:
            raise Invalid(f"the suppression limit is a share of records, between 0 and 1, "
                          f"not {self.suppression_limit}")
        if (self.l is not None or self.t is not None) and not self.sensitive:
            raise Invalid("l-diversity and t-closeness need at least one sensitive attribute")

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "l": self.l, "t": self.t,
                "suppression_limit": self.suppression_limit, "sensitive": list(self.sensitive)}


@dataclass(frozen=True)
class Solution:
    """The transformation chosen and what it costs. No participant values."""

    attributes: list[str]
    levels: dict[str, int]  # attribute -> level
    level_names: dict[str, str]  # column -> the level's name
    rows: int
    suppressed: int
    classes: int
    loss: float  # Loss metric, suppression included
    precision: float
    optimal: bool  # proved optimal (exact search) or greedy
    lattice: int
    evaluated: int
    seconds: float
    targets: Targets

    @property
    def suppressed_share(self) -> float:
        return self.suppressed / self.rows if self.rows else 0.0

    @property
    def changed(self) -> bool:
        return self.suppressed > 0 or any(self.levels.values())

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets.to_json(), "levels": dict(self.levels),
                "generalisation": dict(self.level_names), "rows": self.rows,
                "suppressed": self.suppressed, "suppressed_share": self.suppressed_share,
                "classes": self.classes, "loss": self.loss, "precision": self.precision,
                "search": "exact" if self.optimal else "greedy", "lattice": self.lattice,
                "evaluated": self.evaluated, "seconds": round(self.seconds, 4)}


@dataclass
class Anonymised:
    """The released table, and which of its rows were suppressed."""

    frame: pl.DataFrame
    solution: Solution
    suppressed_rows: np.ndarray  # bool per row


# -- the problem, prepared once ----------------------------------------------------------------

@dataclass
class _Attribute:
    name: str
    columns: list[str]
    height: int
    codes: list[np.ndarray]  # per level: int64 code per compressed row
    cardinality: list[int]
    loss: list[np.ndarray]  # per level: Loss metric per compressed row
    mean_loss: np.ndarray  # per level: weighted mean over records


@dataclass
class _Sensitive:
    ranks: np.ndarray  # per compressed row
    values: int
    overall: np.ndarray
    ordered: bool


@dataclass
class _Evaluation:
    levels: tuple[int, ...]
    monotone: bool  # records missing k or l ≤ the limit: holds for every generalisation above
    satisfies: bool  # records missing any target ≤ the limit
    acceptable: bool
    suppressed_mask: np.ndarray | None  # per compressed row
    suppressed: int
    classes: int
    loss: float
    precision: float


@dataclass
class _Problem:
    rows: int
    group: np.ndarray  # compressed row of each original row
    weights: np.ndarray  # records per compressed row
    attributes: list[_Attribute]
    sensitive: list[_Sensitive]
    targets: Targets
    limit: int  # records that may be suppressed
    cache: dict[tuple[int, ...], _Evaluation] = field(default_factory=dict)

    def evaluate(self, levels: tuple[int, ...]) -> _Evaluation:
        found = self.cache.get(levels)
        if found is None:
            found = self._evaluate(levels)
            self.cache[levels] = found
        return found

    def _evaluate(self, levels: tuple[int, ...]) -> _Evaluation:
        parts = [ColumnCodes(a.codes[h], a.cardinality[h], 0)
                 for a, h in zip(self.attributes, levels, strict=True)]
        key, cardinality = combine(parts, self.weights.size)
        ids, count = densify(key, cardinality)
        sizes = np.bincount(ids, weights=self.weights, minlength=count)
        failing = sizes < self.targets.k
        for s in self.sensitive:
            failing |= self._misses_sensitive(ids, count, sizes, s, closeness=False)
        monotone = int(sizes[failing].sum()) <= self.limit
        if monotone and self.targets.t is not None:
            for s in self.sensitive:
                failing |= self._misses_sensitive(ids, count, sizes, s, diversity=False)
        missing = int(sizes[failing].sum())
        satisfies = missing <= self.limit
        if not satisfies:
            return _Evaluation(levels, monotone, False, False, None, missing, count, math.inf,
                               0.0)
        failing = self._pad(failing, sizes)
        suppressed_rows = failing[ids]
        suppressed = int(self.weights[suppressed_rows].sum())
        acceptable = suppressed <= self.limit and self._suppressed_ok(suppressed_rows)
        kept = ~suppressed_rows
        q = len(self.attributes)
        lost = sum((a.loss[h] * self.weights)[kept].sum()
                   for a, h in zip(self.attributes, levels, strict=True))
        steps = sum(self.weights[kept].sum() * (h / (a.height - 1) if a.height > 1 else 0.0)
                    for a, h in zip(self.attributes, levels, strict=True))
        loss = (lost + q * suppressed) / (self.rows * q)
        precision = 1.0 - (steps + q * suppressed) / (self.rows * q)
        classes = int((~failing).sum()) + (1 if suppressed else 0)
        return _Evaluation(levels, True, True, acceptable, suppressed_rows, suppressed,
                           classes, float(loss), float(precision))

    def _misses_sensitive(self, ids: np.ndarray, count: int, sizes: np.ndarray,
                          s: _Sensitive, *, diversity: bool = True,
                          closeness: bool = True) -> np.ndarray:
        pc, pv, pn = pairs(ids, s.ranks, s.values, self.weights)
        out = np.zeros(count, dtype=bool)
        if diversity and self.targets.l is not None:
            out |= np.bincount(pc, minlength=count) < self.targets.l
        if closeness and self.targets.t is not None:
            out |= emd_per_class(pc, pv, pn, sizes, s.overall, count,
                                 ordered=s.ordered) > self.targets.t + _EPS
        return out

    def _pad(self, failing: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Suppressed records are a class too: fewer than k of them take the smallest others."""
        short = self.targets.k - int(sizes[failing].sum())
        if not failing.any() or short <= 0:
            return failing
        candidates = np.flatnonzero(~failing)
        order = candidates[np.argsort(sizes[candidates], kind="stable")]
        reach = np.searchsorted(np.cumsum(sizes[order]), short) + 1
        padded = failing.copy()
        padded[order[:reach]] = True
        return padded

    def _suppressed_ok(self, suppressed_rows: np.ndarray) -> bool:
        if not suppressed_rows.any() or not self.sensitive:
            return True
        ids = np.where(suppressed_rows, 0, 1)
        size = np.array([self.weights[suppressed_rows].sum(), self.weights[~suppressed_rows].sum()])
        return not any(self._misses_sensitive(ids, 2, size, s)[0] for s in self.sensitive)


def _prepare(frame: pl.DataFrame, hierarchies: Hierarchies, targets: Targets) -> _Problem:
    columns = [c for a in hierarchies.attributes() for c in hierarchies.columns_of(a)]
    check_columns(frame, columns, "quasi-identifier")
    check_columns(frame, list(targets.sensitive), "sensitive")
    bottom = [column_codes(frame[c]) for c in [*columns, *targets.sensitive]]
    key, cardinality = combine(bottom, frame.height)
    group, distinct = densify(key, cardinality)
    weights = np.bincount(group, minlength=distinct).astype(np.float64)
    representative = np.empty(distinct, dtype=np.int64)
    representative[group] = np.arange(frame.height)
    compressed = frame[representative]
    attributes = [_attribute(name, [hierarchies.by_column[c] for c in
                                    hierarchies.columns_of(name)], compressed, weights)
                  for name in hierarchies.attributes()]
    sensitive = []
    for name in targets.sensitive:
        codes = column_codes(frame[name])
        ranks, values = value_ranks(codes.codes, codes.cardinality, codes.missing > 0)
        ordered = (name in targets.ordered if targets.ordered is not None
                   else frame[name].dtype.is_numeric() or frame[name].dtype.is_temporal())
        sensitive.append(_Sensitive(ranks[representative], values,
                                    np.bincount(ranks, minlength=values) / frame.height,
                                    ordered))
    limit = math.floor(targets.suppression_limit * frame.height + _EPS)
    return _Problem(frame.height, group, weights, attributes, sensitive, targets, limit)


def _attribute(name: str, hierarchies: list[Hierarchy], compressed: pl.DataFrame,
               weights: np.ndarray) -> _Attribute:
    heights = {h.height for h in hierarchies}
    if len(heights) != 1:
        raise Invalid(f"the columns of {name} have hierarchies of different heights; "
                      f"give them one hierarchy each")
    height = heights.pop()
    bottoms = [column_codes(compressed[h.column]) for h in hierarchies]
    codes, cards, losses = [], [], []
    for level in range(height):
        per_column = []
        loss = np.zeros(compressed.height)
        for h, bottom in zip(hierarchies, bottoms, strict=True):
            labels = h.apply(compressed[h.column], level)
            coded = column_codes(labels)
            per_column.append(coded)
            loss += _loss(bottom, coded, weights)
        key, card = combine(per_column, compressed.height)
        dense, card = densify(key, card)
        codes.append(dense)
        cards.append(card)
        losses.append(loss / len(hierarchies))
    total = weights.sum()
    mean = np.array([(loss * weights).sum() / total for loss in losses])
    return _Attribute(name, [h.column for h in hierarchies], height, codes, cards, losses, mean)


def _loss(bottom: ColumnCodes, coded: ColumnCodes, weights: np.ndarray) -> np.ndarray:
    """Per row: (distinct recorded values sharing its label − 1) / (distinct values − 1)."""
    present = bottom.codes > 0
    distinct = sets.distinct(bottom.codes[present]).size
    if distinct < 2:
        return np.zeros(bottom.codes.size)
    pair = sets.distinct(coded.codes[present] * bottom.cardinality + bottom.codes[present])
    merged = np.bincount(pair // bottom.cardinality, minlength=coded.cardinality)
    out = np.zeros(bottom.codes.size)
    out[present] = (merged[coded.codes[present]] - 1) / (distinct - 1)
    return out


# -- the search --------------------------------------------------------------------------------

def search(frame: pl.DataFrame, hierarchies: Hierarchies, targets: Targets) -> tuple[
        Solution, np.ndarray]:
    """The transformation with the least loss meeting ``targets``, and the suppressed rows.

    Raises ``Refused`` (with the reasons) when no transformation can meet them.
    """
    started = time.perf_counter()
    targets.check()
    if frame.height == 0:
        raise Invalid("the table has no rows; there is nothing to anonymise")
    problem = _prepare(frame, hierarchies, targets)
    heights = [a.height for a in problem.attributes]
    lattice = int(np.prod(heights, dtype=np.float64))
    top = tuple(h - 1 for h in heights)
    if not problem.evaluate(top).acceptable:
        raise Refused(_impossible(problem, top))
    if lattice <= EXACT_LIMIT:
        best, optimal = _exact(problem, heights), True
    else:
        best, optimal = _greedy(problem, heights), False
    assert best.suppressed_mask is not None
    solution = Solution(
        attributes=[a.name for a in problem.attributes],
        levels={a.name: h for a, h in zip(problem.attributes, best.levels, strict=True)},
        level_names={c: hierarchies.by_column[c].levels[h].name
                     for a, h in zip(problem.attributes, best.levels, strict=True)
                     for c in a.columns},
        rows=frame.height, suppressed=best.suppressed, classes=best.classes, loss=best.loss,
        precision=best.precision, optimal=optimal, lattice=lattice,
        evaluated=len(problem.cache), seconds=time.perf_counter() - started, targets=targets)
    return solution, best.suppressed_mask[problem.group]


def _exact(problem: _Problem, heights: list[int]) -> _Evaluation:
    nodes = np.indices(heights).reshape(len(heights), -1).T.astype(np.int16)
    bound = np.zeros(len(nodes))
    for i, attribute in enumerate(problem.attributes):
        bound += attribute.mean_loss[nodes[:, i]]
    bound /= len(heights)
    order = np.lexsort((nodes.sum(axis=1), bound))
    failed = np.zeros(len(nodes), dtype=bool)
    best: _Evaluation | None = None
    for index in order:
        if best is not None and bound[index] >= best.loss - _EPS:
            break
        if failed[index]:
            continue
        node = tuple(int(v) for v in nodes[index])
        found = problem.evaluate(node)
        if found.acceptable and (best is None or found.loss < best.loss - _EPS):
            best = found
        if not found.monotone:
            failed |= np.all(nodes <= nodes[index], axis=1)
            _climb(problem, nodes, failed, node, heights)
    assert best is not None  # the top node is acceptable
    return best


def _climb(problem: _Problem, nodes: np.ndarray, failed: np.ndarray, node: tuple[int, ...],
           heights: list[int]) -> None:
    """Binary-search a chain of cheapest generalisations above a failing node; tag failures."""
    chain = [node]
    current = list(node)
    while any(c < h - 1 for c, h in zip(current, heights, strict=True)):
        step = min((i for i in range(len(current)) if current[i] < heights[i] - 1),
                   key=lambda i: problem.attributes[i].mean_loss[current[i] + 1]
                   - problem.attributes[i].mean_loss[current[i]])
        current[step] += 1
        chain.append(tuple(current))
    low, high = 0, len(chain) - 1  # chain[low] fails, chain[high] (the top) satisfies
    while high - low > 1:
        middle = (low + high) // 2
        if problem.evaluate(chain[middle]).monotone:
            high = middle
        else:
            low = middle
    if low > 0:
        failed |= np.all(nodes <= np.asarray(chain[low], dtype=np.int16), axis=1)


def _greedy(problem: _Problem, heights: list[int]) -> _Evaluation:
    """Raise one attribute at a time (least loss per record put right), then walk back down."""
    current = tuple(0 for _ in heights)
    while not problem.evaluate(current).acceptable:
        base = problem.evaluate(current)
        options = []
        for i, h in enumerate(heights):
            if current[i] < h - 1:
                up = tuple(v + (j == i) for j, v in enumerate(current))
                found = problem.evaluate(up)
                gain = base.suppressed - found.suppressed if not found.acceptable else math.inf
                cost = problem.attributes[i].mean_loss[up[i]] - problem.attributes[i].mean_loss[
                    current[i]]
                options.append((-(gain / max(cost, _EPS)), found.loss, up))
        current = min(options)[2]
    best = problem.evaluate(current)
    improved = True
    while improved:
        improved = False
        for i in range(len(heights)):
            if best.levels[i] > 0:
                down = tuple(v - (j == i) for j, v in enumerate(best.levels))
                found = problem.evaluate(down)
                if found.acceptable and found.loss < best.loss - _EPS:
                    best, improved = found, True
    return best


def _impossible(problem: _Problem, top: tuple[int, ...]) -> list[str]:
    t = problem.targets
    found = problem.evaluate(top)
    reasons = [f"no generalisation meets the targets (k={t.k}"
               + (f", l={t.l}" if t.l is not None else "")
               + (f", t={t.t}" if t.t is not None else "")
               + f") with at most {t.suppression_limit:.1%} of records suppressed: even with "
               f"every quasi-identifier generalised to *, {found.suppressed:,} of "
               f"{problem.rows:,} records would have to be suppressed"]
    if problem.rows < t.k:
        reasons.append(f"the table has only {problem.rows:,} rows, fewer than k={t.k}")
    reasons.append("to go on: remove quasi-identifier or sensitive columns, lower the "
                   "targets, or allow more suppression")
    return reasons


# -- applying a solution -----------------------------------------------------------------------

def generalise(frame: pl.DataFrame, hierarchies: Hierarchies,
               level_names: Mapping[str, str]) -> pl.DataFrame:
    """The quasi-identifier columns at the named levels (no suppression); others unchanged."""
    out = []
    for column, name in level_names.items():
        hierarchy = hierarchies.by_column[column]
        level = next(i for i, lv in enumerate(hierarchy.levels) if lv.name == name)
        if level:
            out.append(generalise_column(frame[column], hierarchy, level))
    return frame.with_columns(out) if out else frame


def generalise_column(series: pl.Series, hierarchy: Hierarchy, level: int) -> pl.Series:
    """One column at ``level``, computed on its distinct values and mapped back."""
    if level == 0:
        return series
    rule = hierarchy.levels[level].rule
    if isinstance(rule, Everything):
        return rule.apply(series)
    values = series.fill_nan(None) if series.dtype.is_float() else series
    distinct = values.drop_nulls().unique()
    labels = hierarchy.apply(distinct, level)
    return values.replace_strict(distinct, labels, default=None,
                                 return_dtype=pl.String).alias(series.name)


def suppress(frame: pl.DataFrame, columns: Sequence[str], rows: np.ndarray) -> pl.DataFrame:
    """Blank ``columns`` in the rows marked True."""
    if not rows.any():
        return frame
    mask = pl.Series("_suppressed", rows)
    return frame.with_columns([pl.when(mask).then(None).otherwise(pl.col(c)).alias(c)
                               for c in columns])


def anonymise(frame: pl.DataFrame, hierarchies: Hierarchies, targets: Targets) -> Anonymised:
    """Search, then generalise and suppress: the table ready to release."""
    solution, rows = search(frame, hierarchies, targets)
    columns = [c for a in hierarchies.attributes() for c in hierarchies.columns_of(a)]
    released = suppress(generalise(frame, hierarchies, solution.level_names), columns, rows)
    return Anonymised(released, solution, rows)
