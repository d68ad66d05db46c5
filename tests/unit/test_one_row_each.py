"""Participant-level rows (one per participant, in pid order) take short cuts past the sorts
that find each group's distinct participants: the short cuts must give exactly what the
general path gives for the same rows in another order (which takes the sorts)."""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.enclave import margin, winsor
from strongroom.enclave.analyses.frame import distinct, group_pids, increasing


def _rows(seed: int, n: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(1_000_000, 10_000_000), n, replace=False))
    # skewed levels, some rare, some missing (−1)
    codes = np.minimum(rng.geometric(0.5, n) - 1, groups - 1).astype(np.int64)
    codes[rng.random(n) < 0.05] = -1
    return ids.astype(np.int64), codes


@pytest.mark.parametrize("seed", range(6))
def test_the_short_cuts_give_what_the_sorts_give(seed: int) -> None:
    ids, codes = _rows(seed, 3_000 + 500 * seed, 12)
    shuffle = np.random.default_rng(seed + 100).permutation(len(ids))
    assert increasing(ids) and not increasing(ids[shuffle])
    assert distinct(ids[shuffle]).tolist() == distinct(ids).tolist() == ids.tolist()
    fast, slow = group_pids(codes, ids, 12), group_pids(codes[shuffle], ids[shuffle], 12)
    assert [g.tolist() for g in fast] == [g.tolist() for g in slow]
    assert [g.tolist() for g in fast] == [ids[codes == g].tolist() for g in range(12)]
    with margin.keyed(bytes(32)):
        moved, remain = winsor.rare_to_common(codes, ids, 12, 10)
        moved_slow, remain_slow = winsor.rare_to_common(codes[shuffle], ids[shuffle], 12, 10)
    assert remain.tolist() == remain_slow.tolist()
    assert moved[shuffle].tolist() == moved_slow.tolist()
    assert not remain.all()  # some levels were rare, so the comparison moved something


def test_repeated_pids_take_the_general_path() -> None:
    ids = np.array([1_000_001, 1_000_001, 1_000_002, 1_000_003], dtype=np.int64)
    codes = np.array([0, 0, 1, 0], dtype=np.int64)
    assert not increasing(ids)
    assert [g.tolist() for g in group_pids(codes, ids, 2)] == [[1_000_001, 1_000_003],
                                                                 [1_000_002]]
