"""Value-aware differencing and the combination audit, on hand-made vectors and sets.

Guarantees under test: a combination of two statistics (any scale and shift, a constant per
known group) or of several over the same people that isolates fewer than k participants is
found; unrelated statistics and honest repeats are not flagged; a combination of any number of
released counts that determines a group of fewer than k is found.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from strongroom.outputs import contributions
from strongroom.outputs.combinations import exposed, findings
from strongroom.outputs.contributions import (
    _DENSE,
    Vector,
    _best_line,
    _cells_of,
    _cuttings,
    clashes,
    leftover,
    span_clashes,
)


def vec(ids: np.ndarray, values: np.ndarray, label: str = "v") -> Vector:
    return Vector.of(label, ids, values)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=20, max_value=60_000), st.integers(min_value=1, max_value=9),
       st.floats(min_value=-5, max_value=5).filter(lambda a: abs(a) > 0.01),
       st.floats(min_value=-100, max_value=100), st.integers(min_value=0, max_value=2**31))
def test_a_few_changed_values_are_found_whatever_the_scale_and_shift(
        n: int, changed: int, alpha: float, beta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10_000_000, n, replace=False))
    x = rng.normal(27, 5, n).round(4)
    y = alpha * x + beta
    who = rng.choice(n, min(changed, n - 2), replace=False)
    y[who] = 0.0 if beta != 0.0 else 1.0  # a CASE that sets the targets' values
    assert 0 < leftover(vec(ids, y), vec(ids, x), 10) < 10


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=9_000, max_value=40_000), st.integers(min_value=0, max_value=30),
       st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**31))
def test_the_probe_spares_only_lines_that_cannot_isolate_fewer(
        n: int, changed: int, upto: int, seed: int) -> None:
    """Each line is tried on a probe of the points first: the count with the probe equals the
    exact count wherever it is below ``upto``, and is at least ``upto`` wherever that is."""
    rng = np.random.default_rng(seed)
    x = rng.normal(27, 5, n).round(3)
    y = 2.5 * x - 4 if seed % 3 else rng.normal(140, 20, n)  # related, or not
    y[rng.choice(n, changed, replace=False)] = 0.0
    if seed % 5 == 0:  # clipped at a bound held by many: not counted off either way
        y = np.minimum(y, np.sort(y)[-40])
    exact = _best_line(x, y, 10)
    probed = _best_line(x, y, 10, upto)
    assert probed == exact if exact < upto else probed >= upto


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=9_000, max_value=30_000), st.integers(min_value=0, max_value=30),
       st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**31))
def test_the_probe_spares_only_fits_that_cannot_isolate_fewer(
        n: int, changed: int, upto: int, seed: int) -> None:
    """The same for fits by several statistics (span_clashes): with the probe, the count is
    exact wherever it is below ``upto``, and at least ``upto`` wherever that is."""
    from strongroom.outputs import contributions

    rng = np.random.default_rng(seed)
    basis = [rng.normal(27, 5, n).round(3), rng.normal(140, 20, n).round(1)]
    x = (basis[0] - 2 * basis[1] + 7 if seed % 3 else rng.normal(0, 1, n))  # related, or not
    x[rng.choice(n, changed, replace=False)] = 0.0
    probed = contributions._off_span(x, basis, 10, upto)
    saved = contributions._PROBE
    contributions._PROBE = 10**9  # no probe: every fit counted over everyone
    try:
        exact = contributions._off_span(x, basis, 10, upto)
    finally:
        contributions._PROBE = saved
    assert probed == exact if exact < upto else probed >= upto


def test_zero_padding_with_other_people_does_not_hide_a_change() -> None:
    rng = np.random.default_rng(1)
    ids = np.arange(5000)
    x = rng.normal(27, 5, 5000)
    padded_ids = np.arange(9000)
    y = np.concatenate([x, np.zeros(4000)])
    y[17] = 0.0
    assert leftover(vec(padded_ids, y), vec(ids, x), 10) == 1


def test_unrelated_statistics_and_honest_repeats_are_not_flagged() -> None:
    rng = np.random.default_rng(2)
    ids = np.arange(20_000)
    bmi, sbp = rng.normal(27, 5, 20_000), rng.normal(140, 20, 20_000)
    assert leftover(vec(ids, bmi), vec(ids, sbp), 10) >= 10
    assert leftover(vec(ids, bmi), vec(ids, bmi.copy()), 10) == 0
    men = ids[::2]
    assert leftover(vec(men, bmi[::2]), vec(ids, bmi), 10) >= 10  # a subgroup's mean
    found = clashes([vec(ids, bmi, "a"), vec(ids, sbp, "b")], [], 10, within=True)
    assert found == []


def test_three_statistics_over_the_same_people_are_fitted_together() -> None:
    rng = np.random.default_rng(3)
    ids = np.arange(3000)
    x, z = rng.normal(27, 5, 3000), rng.normal(140, 20, 3000)
    z_changed = z.copy()
    z_changed[42] = 0.0
    found = span_clashes([vec(ids, z_changed, "z")], [vec(ids, x, "x"), vec(ids, x + z, "y")],
                         10)
    assert found and found[0][2] == 1
    assert span_clashes([vec(ids, z, "z")], [vec(ids, x, "x"), vec(ids, x + z, "y")], 10) == []


def test_vectors_survive_their_bytes() -> None:
    v = vec(np.array([5, 3, 9]), np.array([1.5, -2.0, 3.25]))
    back = Vector.from_bytes("v", v.to_bytes())
    assert back.ids.tolist() == [3, 5, 9] and back.values.tolist() == [-2.0, 1.5, 3.25]


def test_three_counts_that_isolate_one_person_are_found() -> None:
    x, y = BitMap(range(0, 100)), BitMap(range(100, 250))
    groups = [x | BitMap([500]), y, x | y]
    found = exposed(groups, [2], 10)
    assert [e.size for e in found] == [1] and sorted(found[0].groups) == [0, 1, 2]
    assert exposed(groups[:2], [1], 10) == []  # two disjoint groups say nothing more


@pytest.mark.parametrize("cells", [2, 5])
def test_margins_without_their_cells_determine_nothing(cells: int) -> None:
    rng = np.random.default_rng(cells)
    people = np.arange(2000)
    a = rng.integers(0, cells, 2000)
    b = rng.integers(0, 2, 2000)
    rows = [BitMap(people[a == i].tolist()) for i in range(cells)]
    cols = [BitMap(people[b == j].tolist()) for j in range(2)]
    # every inner cell is an atom; row and column totals alone never give one, and their
    # tie (each set of totals adds up to everyone) is the table's shape: the column totals
    # are its margins, derived from the rows
    margins = range(cells, cells + 2)
    assert exposed([*rows, *cols], list(range(cells + 2)), 10 ** 6, derived=margins) == []
    # asked for by a researcher's SQL, the same tie is a count that follows from the others
    assert [e.size for e in exposed([*rows, *cols], list(range(cells + 2)), 10 ** 6)] == [0]


def test_a_count_that_follows_from_others_is_treated_as_a_group_of_a_few() -> None:
    """Absent or present, the target's combination reports the same cell."""
    x, y = BitMap(range(0, 100)), BitMap(range(100, 250))
    for target in (BitMap([500]), BitMap()):  # the target has the attribute, or not
        for new in ([2], [0, 1, 2]):  # the third released alone, or all three in one
            found = exposed([x | target, y, x | y], new, 10)
            assert [(e.size, sorted(e.groups)) for e in found] == [(len(target), [0, 1, 2])]
            assert findings(found, ["a", "b", "c"], 10, {g: g for g in new})[0].cell == 2


def test_ties_with_earlier_releases_count_for_every_analysis_but_copies_do_not() -> None:
    x, y = BitMap(range(0, 100)), BitMap(range(100, 250))
    # a table of x and y after the count of both: the table's own shape ties nothing here
    assert [e.size for e in exposed([x | y, x, y], [1, 2], 10, derived=[1, 2])] == [0]
    assert exposed([x, x, y, y], [1, 3], 10) == []  # copies: the pairwise rules speak
    assert exposed([x | y, x], [1], 10) == []  # two groups tie nothing


def test_only_a_derived_group_passes_a_tie_with_its_own_analysis() -> None:
    """Three groups of one survival table, G1 with the target if obese, G2, and G1 with G2:
    their first numbers at risk are not derived, so the tie (lean) is hidden as the
    exposure (obese) is; the same tie at a margin of the analysis passes."""
    x, y = BitMap(range(0, 100)), BitMap(range(100, 250))
    for target in (BitMap([500]), BitMap()):
        found = exposed([x | target, y, x | y], [0, 1, 2], 10)
        assert [e.size for e in found] == [len(target)]
    assert exposed([x, y, x | y], [0, 1, 2], 10, derived=[2]) == []
    # derived, but tied to an earlier release rather than to its own cells: hidden
    assert [e.size for e in exposed([x, y, x | y], [2], 10, derived=[2])] == [0]


def test_a_cell_worked_out_from_its_row_column_and_total_is_found() -> None:
    people = list(range(1000))
    total = BitMap(people)
    row = BitMap(people[:500])
    col = BitMap(people[:3] + people[500:800])  # the row-column cell holds 3 people
    rest = BitMap(people[800:])  # the other cell of the other row
    found = exposed([total, row, col, rest], [3], 10)
    assert any(e.size == 3 for e in found)


def test_winsorised_participants_at_every_bound_move_with_it_in_pairs_and_fits() -> None:
    """Zeroing one person's value shifts the low bound of a winsorised statistic (the k − 1
    below it move with it): those at a bound in every release still leave only that person
    off the fit, for a pair and for three statistics fitted together."""
    from strongroom.enclave.winsor import clip
    k = 10
    ids = np.arange(300, dtype=np.int64)
    r = np.random.default_rng(3).normal(27.0, 4.0, ids.size)
    zeroed = np.where(ids == 150, 0.0, r)  # a participant in the bulk
    a, b = Vector.of("a", ids, clip(r, k)), Vector.of("b", ids, clip(zeroed, k))
    assert leftover(a, b, k) == 1
    x, y = Vector.of("x", ids, clip(r, k)), Vector.of("y", ids, clip(3 * r, k))
    z = Vector.of("z", ids, clip(2 * zeroed, k))
    assert [n for _, _, n in span_clashes([z], [x, y], k)] == [1]


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.integers(min_value=0, max_value=6),
       st.booleans(), st.integers(min_value=0, max_value=2**31))
def test_each_participants_cell_is_the_same_placed_by_table_or_by_search(
        n: int, groups: int, large: bool, seed: int) -> None:
    """Cells are placed by a table indexed by id where the ids are small (pseudonyms), else
    searched; both give each participant the XOR of the keys of the groups they are in."""
    rng = np.random.default_rng(seed)
    top = 2**32 - 1 if large else 10_000_000
    ids = np.sort(rng.choice(np.arange(top - 5_000, top) if large else top, n, replace=False)
                  ).astype(np.int64)
    assert (ids[-1] >= _DENSE) == large
    cut = [BitMap(rng.choice(ids, rng.integers(0, n + 1), replace=False).astype(np.uint32)
                  .tolist()) for _ in range(groups)]
    keys = rng.integers(1, 2**63 - 1, size=max(1, groups)).astype(np.uint64)
    found = _cells_of(ids, BitMap(ids.astype(np.uint32).tolist()), cut, keys)
    expected = np.zeros(n, dtype=np.uint64)
    for group, key in zip(cut, keys, strict=False):
        inside = np.isin(ids, np.asarray(list(group), dtype=np.int64))
        if 0 < inside.sum() < n:
            expected[inside] ^= key
    if not any(0 < len(g) < n for g in cut):  # no group cuts them
        assert found is None
    else:
        assert found is not None and np.array_equal(found, expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=300), st.lists(st.integers(0, 5), min_size=0,
                                                          max_size=5),
       st.integers(min_value=0, max_value=2**31))
def test_all_releases_together_cut_as_the_xor_of_each_releases_cells(
        n: int, sizes: list[int], seed: int) -> None:
    """The finest cutting (every release's groups at once) is made from each release's own
    cells: the same cells as cutting by every group at once."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10_000_000, n, replace=False)).astype(np.int64)
    partitions = [[BitMap(rng.choice(ids, rng.integers(0, n + 1), replace=False)
                          .astype(np.uint32).tolist()) for _ in range(size)]
                  for size in sizes]
    keys = rng.integers(1, 2**63 - 1, size=max(1, sum(sizes))).astype(np.uint64)
    together, *each = _cuttings(ids, partitions, keys)
    assert len(each) == len(partitions)
    every = _cells_of(ids, BitMap(ids.astype(np.uint32).tolist()),
                      [g for part in partitions for g in part], keys)
    if every is None:
        assert together is None
    else:
        assert together is not None and np.array_equal(together, every)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=12),
       st.booleans(), st.integers(min_value=0, max_value=2**31))
def test_each_groups_atoms_are_read_from_one_member_of_each(
        n: int, count: int, large: bool, seed: int) -> None:
    """The release matrix (groups × atoms) read through one member per atom is the one read
    through every member: an atom's members are in exactly the same groups."""
    from strongroom.outputs.combinations import _atoms, _membership
    rng = np.random.default_rng(seed)
    start = 2**32 - 10_000 if large else 0
    ids = np.sort(rng.choice(np.arange(start, start + 10_000), n, replace=False))
    groups = [BitMap(rng.choice(ids, rng.integers(1, n + 1), replace=False).tolist())
              for _ in range(count)]
    positions, atom_of, sizes, representatives, _ = _atoms(groups)
    assert sizes.sum() == len(BitMap.union(BitMap(), *groups))
    got = _membership(groups, representatives).toarray()
    expected = np.stack([np.bincount(atom_of[at], minlength=sizes.size) > 0
                         for at in positions]).astype(float)
    assert np.array_equal(got, expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=3_000), st.integers(min_value=0, max_value=9),
       st.booleans(), st.integers(min_value=0, max_value=2**31))
def test_statistics_over_the_same_people_are_compared_as_any_others(
        n: int, changed: int, copy: bool, seed: int) -> None:
    """Two statistics over the same participants skip the merge of their lists: the count
    left over is the one the merge gives."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10_000_000, n, replace=False)).astype(np.int64)
    x = rng.normal(27, 5, n).round(3)
    y = 2 * x + 1
    y[:min(changed, n)] += 7.0
    a, b = vec(ids, x), vec(ids.copy() if copy else ids, y)
    both, in_a, in_b = np.intersect1d(a.ids, b.ids, assume_unique=True, return_indices=True)
    expected = _best_line(a.values[in_a], b.values[in_b], 10, 19) if both.size else 0
    assert leftover(a, b, 10, 19) == expected


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=9_000, max_value=20_000), st.integers(min_value=0, max_value=30),
       st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=2**31))
def test_a_probe_spares_only_counts_that_would_not_be_short(
        n: int, odd: int, groups: int, seed: int) -> None:
    """The partition audit's probe (a lower bound on those off their cells' values) decides
    nothing the exact count would not: the clashes found are the same with it and without."""
    import strongroom.outputs.contributions as contributions
    from strongroom.enclave import margin
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10_000_000, n, replace=False)).astype(np.int64)
    partitions = [[BitMap(ids[rng.random(n) < rng.uniform(0.1, 0.9)].astype(np.uint32)
                          .tolist()) for _ in range(groups)]]
    first = np.isin(ids, np.asarray(list(partitions[0][0]), dtype=np.int64))
    constant = np.where(first, 3.0, 1.0)  # a constant per group …
    constant[rng.choice(n, odd, replace=False)] = 7.0  # … but for a few
    news = [vec(ids, constant, "zoomed"), vec(ids, rng.normal(27, 5, n).round(2), "bmi"),
            vec(ids, (rng.random(n) < 0.01).astype(float), "rare")]
    with margin.keyed(b"one request's own margin key"):
        found = contributions.partition_clashes(news, partitions, 10)
        original = contributions._probed_apart
        try:
            contributions._probed_apart = lambda *_: False  # type: ignore[assignment]
            exact = contributions.partition_clashes(news, partitions, 10)
        finally:
            contributions._probed_apart = original
    assert [i for i, _ in found] == [i for i, _ in exact]
    assert 1 not in [i for i, _ in found]  # a measured variable is thousands off


def test_vectors_packed_ahead_are_packed_as_to_bytes_packs_them() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    ids = np.sort(rng.choice(10_000_000, 20_000, replace=False)).astype(np.int64)
    mean = Vector("mean", ids, rng.normal(size=ids.size), "linear")
    sd = mean.named("sd", "sd")  # the same arrays: packed once
    other = Vector("other", ids, rng.normal(size=ids.size), "linear")
    fresh = [Vector(v.label, v.ids.copy(), v.values.copy(), v.kind) for v in (mean, sd, other)]
    with ThreadPoolExecutor(2) as pool:
        kept = contributions.pack_ahead([mean, sd, other], pool)
        kept()
    assert "_packed" in mean.__dict__ and "_packed" in other.__dict__
    assert "_packed" not in sd.__dict__  # the second of a pair names the first
    for ahead, made in zip([mean, sd, other], fresh, strict=True):
        assert ahead.to_bytes() == made.to_bytes()
        back = Vector.from_bytes(ahead.label, ahead.to_bytes(), ahead.kind)
        assert np.array_equal(back.ids, ahead.ids) and np.array_equal(back.values, ahead.values)


@pytest.mark.parametrize("size, high", [(3_000, 9_999_999), (400_000, 9_999_999),
                                        (50, 1 << 30)], ids=["few", "many", "wide"])
def test_places_finds_each_ids_position_however_it_looks_them_up(size: int, high: int) -> None:
    """By a table over the id range (many ids) or by a search (few, or ids past the table's
    range): the same positions either way."""
    rng = np.random.default_rng(size)
    ids = np.sort(rng.choice(high, size, replace=False)).astype(np.int64)
    subset = np.sort(rng.choice(size, size // 3, replace=False))
    found = contributions.places(ids)(ids[subset].astype(np.uint32))  # as roaring sets give
    assert found.tolist() == subset.tolist()
