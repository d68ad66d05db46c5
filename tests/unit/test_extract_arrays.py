"""``extracts.arrays.unique`` gives ``np.unique``'s answer from one sort."""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.extracts import arrays

RNG = np.random.default_rng(2)
CASES = {
    "few ints": RNG.integers(0, 50, 1000),
    "wide ints": RNG.integers(-10**12, 10**12, 5000),
    "empty": np.array([], dtype=np.int64),
    "one": np.array([3]),
    "floats": RNG.random(100).round(1),
    "hashes": RNG.integers(0, 2**63, 3000, dtype=np.int64).astype(np.uint64),
    "2-D": RNG.integers(0, 5, (30, 4)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unique_is_numpys(name: str) -> None:
    values = CASES[name]
    distinct, inverse, counts = arrays.unique(values, return_inverse=True, return_counts=True)
    want = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    assert np.array_equal(distinct, want[0]) and distinct.dtype == want[0].dtype
    assert np.array_equal(inverse, want[1].ravel())
    assert np.array_equal(counts, want[2])
    assert np.array_equal(arrays.unique(values)[0], np.unique(values))
