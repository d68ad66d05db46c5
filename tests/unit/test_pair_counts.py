"""The counting shortcuts the anonymiser's speed rests on give exactly what sorting gives:
(class, value) pairs counted in a dense table, and keys made dense as columns are combined."""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.privacy.classes import ColumnCodes, combine, densify
from strongroom.privacy.sensitive import pairs


def sorted_pairs(ids: np.ndarray, ranks: np.ndarray, values: int,
                 weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = ids * values + ranks
    unique, inverse = np.unique(key, return_inverse=True)
    count = np.bincount(inverse, weights=weights).astype(np.float64)
    return unique // values, unique % values, count


@pytest.mark.parametrize("classes", [1, 50, 5_000, 400_000])  # the last: the sorting path
@pytest.mark.parametrize("weighted", [False, True])
def test_pairs_counted_densely_equal_pairs_counted_by_sorting(classes: int,
                                                              weighted: bool) -> None:
    rng = np.random.default_rng(classes)
    rows, values = 20_000, 7
    ids = rng.integers(0, classes, rows)
    ranks = rng.integers(0, values, rows)
    weights = rng.integers(1, 9, rows).astype(np.float64) if weighted else None
    for got, want in zip(pairs(ids, ranks, values, weights),
                         sorted_pairs(ids, ranks, values, weights), strict=True):
        np.testing.assert_array_equal(got, want)


def test_combining_many_columns_keeps_the_key_order() -> None:
    rng = np.random.default_rng(1)
    rows = 3_000
    columns = [ColumnCodes(rng.integers(0, card, rows), card, 0)
               for card in (2, 90, 17, 300, 41, 5, 1000)]
    key, cardinality = combine(columns, rows)
    ids, count = densify(key, cardinality)
    stacked = np.stack([c.codes for c in columns], axis=1)
    _, want = np.unique(stacked, axis=0, return_inverse=True)  # lexicographic
    np.testing.assert_array_equal(ids, want.ravel())
    assert count == int(want.max()) + 1
