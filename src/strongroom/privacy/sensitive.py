"""What a class reveals about a sensitive attribute: l-diversity and t-closeness, per class.

Definitions (Machanavajjhala et al. 2007; Li, Li and Venkatasubramanian 2007), as pycanon
states them:

- distinct l-diversity: the number of distinct values in the class;
- entropy l-diversity: exp(H), H = −Σ p log p over the class's values (natural log);
- recursive (c, l)-diversity: with the class's counts in *descending* order r₁ ≥ r₂ ≥ … ≥ r_m,
  the class satisfies it when r₁ < c·(r_l + … + r_m); the smallest such integer c is
  ⌊r₁ / (r_l + … + r_m)⌋ + 1, computed here in integers;
- t-closeness: the Earth Mover's Distance between the class's distribution and the whole
  table's. Ordered distance for numeric and date attributes, (1/(m−1)) Σᵢ |Σ_{j≤i} (q_j − p_j)|
  over the m values present in the table in sorted order; equal distance for categorical ones,
  ½ Σ |q − p|.

Missing is one more value; in the ordered distance it sits after the largest value.
Everything is computed from (class, value) pair counts with NumPy, never per class in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from strongroom.privacy.classes import Classes, column_codes


@dataclass(frozen=True)
class PerClass:
    """One sensitive attribute's statistics for every class."""

    column: str
    ordered: bool  # ordered distance (numeric, dates) or equal distance (categories)
    values: int  # distinct values in the whole table, missing counted as one
    distinct: np.ndarray  # int64 per class
    entropy: np.ndarray  # float64 per class, natural log
    emd: np.ndarray  # float64 per class
    pair_class: np.ndarray  # (class, value) pairs, sorted by class then count descending
    pair_count: np.ndarray
    pair_rank: np.ndarray  # position of the pair within its class (0 = most frequent)

    def recursive_c(self, l: int) -> np.ndarray:  # noqa: E741 — the literature's name
        """Per class, the smallest integer c with r₁ < c·(r_l + … + r_m); 0 where m < l."""
        count = self.distinct.size
        top = np.zeros(count, dtype=np.int64)
        first = self.pair_rank == 0
        top[self.pair_class[first]] = self.pair_count[first]
        tail_rows = self.pair_rank >= l - 1
        tail = np.bincount(self.pair_class[tail_rows], weights=self.pair_count[tail_rows],
                           minlength=count).astype(np.int64)
        c = np.zeros(count, dtype=np.int64)
        ok = tail > 0
        c[ok] = top[ok] // tail[ok] + 1
        return c


def per_class(classes: Classes, series: pl.Series, *, ordered: bool) -> PerClass:
    """l-diversity and t-closeness statistics of ``series`` within each class."""
    codes = column_codes(series)
    ranks, values = value_ranks(codes.codes, codes.cardinality, codes.missing > 0)
    inside = classes.ids >= 0
    count = classes.count
    overall = np.bincount(ranks, minlength=values) / ranks.size
    pair_class, pair_value, pair_count = pairs(classes.ids[inside], ranks[inside], values)
    sizes = classes.sizes.astype(np.float64)
    share = pair_count / sizes[pair_class]
    distinct = np.bincount(pair_class, minlength=count).astype(np.int64)
    entropy = -np.bincount(pair_class, weights=share * np.log(share), minlength=count)
    emd = emd_per_class(pair_class, pair_value, pair_count, sizes, overall, count,
                        ordered=ordered)
    order = np.lexsort((-pair_count, pair_class))
    pair_class, pair_count = pair_class[order], pair_count[order]
    starts = np.searchsorted(pair_class, np.arange(count))
    rank = np.arange(pair_class.size) - starts[pair_class]
    return PerClass(str(series.name), ordered, values, distinct, entropy, emd,
                    pair_class, pair_count.astype(np.int64), rank)


def pairs(ids: np.ndarray, ranks: np.ndarray, values: int,
          weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (class, value) pairs, sorted, and how many rows (or weight) each has.

    Counted into a dense table of every (class, value) when it is no larger than a few times
    the rows (a pass, no sort: the anonymiser calls this for every transformation it tries),
    else by sorting the pairs' keys.
    """
    key = ids * values + ranks
    span = (int(ids.max()) + 1) * values if ids.size else 0
    if span <= max(4 * ids.size, 1 << 16):
        table = np.bincount(key, weights=weights, minlength=span)
        present = np.flatnonzero(np.bincount(key, minlength=span) if weights is not None
                                 else table)
        return present // values, present % values, table[present].astype(np.float64)
    if weights is None:
        unique, count = np.unique(key, return_counts=True)
        return unique // values, unique % values, count.astype(np.float64)
    unique, inverse = np.unique(key, return_inverse=True)
    count = np.bincount(inverse, weights=weights)
    return unique // values, unique % values, count


def emd_per_class(pair_class: np.ndarray, pair_value: np.ndarray, pair_count: np.ndarray,
                  sizes: np.ndarray, overall: np.ndarray, count: int, *,
                  ordered: bool) -> np.ndarray:
    """Each class's Earth Mover's Distance to ``overall`` (pairs sorted by class, value)."""
    if ordered:
        return _ordered_emd(pair_class, pair_value, pair_count, sizes, overall, count)
    share = pair_count / sizes[pair_class]
    return _equal_emd(pair_class, pair_value, share, overall, count)


def value_ranks(codes: np.ndarray, cardinality: int, has_missing: bool
                 ) -> tuple[np.ndarray, int]:
    """Consecutive ranks 0 … m−1 of the values present, missing (code 0) last."""
    present = np.bincount(codes, minlength=cardinality) > 0
    present_values = present.copy()
    present_values[0] = False
    rank_of = np.cumsum(present_values) - 1
    values = int(present_values.sum())
    if has_missing:
        rank_of[0] = values
        values += 1
    return rank_of[codes].astype(np.int64), max(values, 1)


def _equal_emd(pair_class: np.ndarray, pair_value: np.ndarray, share: np.ndarray,
               overall: np.ndarray, count: int) -> np.ndarray:
    """½ Σ_v |q_v − p_v|; values absent from a class contribute their overall share p_v."""
    p = overall[pair_value]
    inside = np.bincount(pair_class, weights=np.abs(share - p) - p, minlength=count)
    return 0.5 * (inside + 1.0)


def _ordered_emd(pair_class: np.ndarray, pair_value: np.ndarray, pair_count: np.ndarray,
                 sizes: np.ndarray, overall: np.ndarray, count: int) -> np.ndarray:
    """(1/(m−1)) Σᵢ |Qᵢ − Pᵢ| with Q, P cumulative, summed segment by segment.

    Within a class the cumulative Q is constant between consecutive values it holds, and P
    rises, so each segment's Σ |c − Pᵢ| splits where P crosses c (prefix sums of P).
    """
    m = overall.size
    if m < 2:
        return np.zeros(count)
    cumulative = np.cumsum(overall)
    prefix = np.concatenate(([0.0], np.cumsum(cumulative)))
    running = np.cumsum(pair_count)
    class_start = np.searchsorted(pair_class, np.arange(count))
    before = np.concatenate(([0], running))[class_start][pair_class]
    level = (running - before) / sizes[pair_class]  # Q after each pair's value
    last = np.r_[pair_class[1:] != pair_class[:-1], True]
    start = pair_value
    end = np.where(last, m - 1, np.r_[pair_value[1:], 0] - 1)
    split = np.clip(np.searchsorted(cumulative, level, side="left"), start, end + 1)
    segment = (level * (split - start) - (prefix[split] - prefix[start])
               + (prefix[end + 1] - prefix[split]) - level * (end + 1 - split))
    total = np.bincount(pair_class, weights=segment, minlength=count)
    first_value = pair_value[class_start]
    total += prefix[first_value]  # before a class's first value Q is 0: Σ Pᵢ
    return total / (m - 1)
