"""``extracts.arrays.unique`` gives ``np.unique``'s answer from one sort; the linkage-free
reading's blocks and counts in arrays give the answers of the sorts they replaced."""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.extracts import arrays, multiset
from strongroom.extracts.carriers import Carrier

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


def _blocks_by_sorting(suspect: dict[str, np.ndarray], master: dict[str, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``multiset.blocks_of`` as it was: ``np.unique`` per column, then dense ranks."""
    n = len(next(iter(suspect.values())))
    ids = np.zeros(n + len(next(iter(master.values()))), dtype=np.int64)
    for column in sorted(set(suspect) & set(master)):
        both = np.concatenate([suspect[column], master[column]])
        _, code = np.unique(both, return_inverse=True)
        ids = np.unique(ids * (int(code.max(initial=0)) + 1) + code.ravel(),
                        return_inverse=True)[1].ravel()
    return ids[:n], ids[n:]


def test_blocks_are_numbered_as_sorting_numbered_them() -> None:
    rng = np.random.default_rng(4)
    levels = [np.nan, -3.0, -1.0, 0.0, 1.0, 2.5, 7.0, 1e9, np.inf, -np.inf, 1e6]
    for _ in range(2000):
        width = int(rng.integers(1, 4))
        chosen = [rng.choice(levels[:int(rng.integers(1, len(levels) + 1))],
                             int(rng.integers(1, 5))) for _ in range(width)]
        suspect = {f"c{j}": rng.choice(chosen[j], int(rng.integers(0, 40)) or 1)
                   for j in range(width)}
        rows = len(suspect["c0"])
        suspect = {c: np.resize(v, rows) for c, v in suspect.items()}
        master = {f"c{j}": rng.choice(chosen[j], int(rng.integers(1, 60))) for j in range(width)}
        cohort = len(master["c0"])
        master = {c: np.resize(v, cohort) for c, v in master.items()}
        for mine, theirs in zip(multiset.blocks_of(suspect, master),
                                _blocks_by_sorting(suspect, master), strict=True):
            assert np.array_equal(mine, theirs)


@pytest.mark.parametrize("blocked", [False, True])
def test_a_column_read_in_arrays_reads_as_by_sorted_tables(
        blocked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    n = 20_000
    eids = np.arange(1_000_000, 1_000_000 + n, dtype=np.int64)
    master = rng.integers(1400, 1900, n).astype(np.float64)
    master[rng.random(n) < 0.05] = np.nan
    carrier = Carrier("p50_i0", 50, 0, 1.0, 9.0, 1400.0, 1899.0, density=0.1)
    suspect = master + rng.choice([-1.0, 0.0, 1.0], n)
    blocks = ((rng.integers(0, 30, n), rng.integers(0, 30, n)) if blocked else None)
    bias = bytes(range(32))
    dense = multiset.read_column(carrier, suspect, eids, master, bias, blocks)
    monkeypatch.setattr(multiset, "_dense_read", lambda *_: None)  # the sorted tables
    for mine, theirs in zip(dense, multiset.read_column(carrier, suspect, eids, master, bias,
                                                        blocks), strict=True):
        assert np.array_equal(mine, theirs)
    assert len(dense[0]) > 100


def test_isin_is_numpys_on_floats_and_edge_values() -> None:
    """``arrays.isin`` (a binary search among the distinct wanted values) says what
    ``np.isin`` says: −0.0 is 0.0, NaN is in nothing, infinities are themselves."""
    rng = np.random.default_rng(9)
    odd = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e300, -1e-300, 2.5])
    for _ in range(200):
        values = np.concatenate([rng.choice(odd, rng.integers(0, 40)),
                                 rng.normal(size=rng.integers(0, 60)).round(1)])
        wanted = np.concatenate([rng.choice(odd, rng.integers(0, 5)),
                                 rng.normal(size=rng.integers(0, 8)).round(1)])
        assert np.array_equal(arrays.isin(values, wanted), np.isin(values, wanted))
    ints = rng.integers(0, 9, 50)
    assert np.array_equal(arrays.isin(ints, np.array([2, 3])), np.isin(ints, [2, 3]))


def test_the_strongest_readings_are_those_a_partition_finds() -> None:
    """Both readings' ``strongest`` take the strongest value as the cut when it alone fills
    the cap, without a partition: the same positions as the partition's cut, ties drawn
    alike."""
    from strongroom.extracts import accuse

    rng = np.random.default_rng(4)
    for trial in range(200):
        n = int(rng.integers(2, 3000))
        cap = int(rng.integers(1, n))
        strength = np.where(rng.random(n) < rng.random(), 1.0,
                            rng.random(n).round(int(rng.integers(1, 4))))
        cut = float(np.partition(strength, n - cap)[n - cap])
        above, tied = np.flatnonzero(strength > cut), np.flatnonzero(strength == cut)
        want = np.sort(np.concatenate([above, np.random.default_rng(trial).choice(
            tied, cap - len(above), replace=False)]))
        assert np.array_equal(multiset.strongest(strength, cap,
                                                 np.random.default_rng(trial)), want)
        w = strength * np.where(rng.random(n) < 0.5, -1.0, 1.0)
        line = -np.partition(-strength, cap - 1)[cap - 1]
        tiebreak = np.random.default_rng(trial).random(n)
        above, tied = np.flatnonzero(strength > line), np.flatnonzero(strength == line)
        need = cap - len(above)
        if need < len(tied):
            tied = tied[np.argpartition(tiebreak[tied], need - 1)[:need]] if need else tied[:0]
        assert np.array_equal(accuse.strongest(w, cap, trial),
                              np.sort(np.concatenate([above, tied])))
