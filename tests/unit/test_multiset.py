"""Marks read from each column's values alone (``multiset.py``): no row linked, the same bound.

A copy whose columns were each shuffled on their own (every row re-paired with every other)
still names its recipient; files from no copy, or from another recipient's, never name an
innocent, and an innocent's p-value is a p-value (checked on keys never used for the file).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from strongroom.cohort.crypto import MasterKey
from strongroom.extracts import accuse, codes, multiset
from strongroom.extracts.carriers import Carrier
from tests.innocence import INNOCENT

MASTER = MasterKey(b"\x09" * 32)
BIAS = codes.bias_key(MASTER)
N = 3000
World = tuple[np.ndarray, dict[str, np.ndarray], list[Carrier]]


def _carrier(column: str, decimals: int, values: np.ndarray, density: float = 1.0) -> Carrier:
    present = values[np.isfinite(values)]
    return Carrier(column=column, field_id=int(column[1:].split("_")[0]), decimals=decimals,
                   amplitude=10.0**-decimals, sd=float(np.std(present)),
                   low=float(present.min()), high=float(present.max()), density=density)


@pytest.fixture(scope="module")
def world() -> World:
    rng = np.random.default_rng(5)
    eids = rng.choice(np.arange(1_000_000, 9_000_000), N, replace=False).astype(np.int64)
    master = {
        "p21001_i0": np.round(rng.normal(26, 4, N), 4),
        "p30690_i0": np.round(rng.normal(5.7, 1.2, N), 3),
        "p30760_i0": np.round(rng.gamma(3, 0.5, N), 3),  # crowded: many shared neighbours
        "p50_i0": np.round(rng.normal(168, 9, N), 0),  # sparse marks on a coarse grid
    }
    master["p30690_i0"][:60] = np.nan
    return eids, master, [_carrier("p21001_i0", 4, master["p21001_i0"]),
                          _carrier("p30690_i0", 3, master["p30690_i0"]),
                          _carrier("p30760_i0", 3, master["p30760_i0"]),
                          _carrier("p50_i0", 0, master["p50_i0"], density=0.1)]


def _copy(world: World, extract_id: str) -> dict[str, np.ndarray]:
    eids, master, carriers = world
    key = codes.recipient_key(MASTER, extract_id)
    out = {}
    for carrier in carriers:
        m = master[carrier.column]
        marked = carrier.markable(m) & carrier.chosen(BIAS, eids)
        tags = np.full(int(marked.sum()), codes.column_tag(carrier.column), np.uint64)
        ones = codes.symbols(key, eids[marked], tags, codes.thresholds(BIAS, eids[marked], tags))
        value = m.copy()
        value[marked] += np.where(ones, carrier.amplitude, -carrier.amplitude)
        out[carrier.column] = np.round(value, carrier.decimals)
    return out


def _columns_shuffled(copy: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: v[rng.permutation(len(v))] for c, v in copy.items()}


REGISTERED = [f"ext_{i:03d}" for i in range(30)]


def _evidence(world: World, suspect: dict[str, np.ndarray],
              ids: list[str] = REGISTERED) -> multiset.ValueEvidence:
    eids, master, carriers = world
    marks = multiset.read(carriers, suspect, eids, master, BIAS)
    recipients = [accuse.Recipient(i, codes.recipient_key(MASTER, i), frozenset(carriers))
                  for i in ids]
    return multiset.evidence(marks, recipients)


def _named(found: multiset.ValueEvidence) -> set[str]:
    union = math.log(max(1, found.other().hypotheses))
    return {e for e in found.scores if found.log_p(e) + union <= math.log(accuse.THRESHOLD)}


def test_a_copy_with_every_column_shuffled_alone_names_its_recipient(world: World) -> None:
    """ln P(values) of the leaker −2,653 from 3,000 rows (8,720 positions; the coarse column
    adds almost nothing); the 29 innocents ≥ −3.4, as the least of 29 p-values is."""
    found = _evidence(world, _columns_shuffled(_copy(world, "ext_004"), 1))
    assert _named(found) == {"ext_004"}
    assert found.log_p("ext_004") < -1000
    assert min(found.log_p(e) for e in REGISTERED if e != "ext_004") > INNOCENT
    assert {"p21001_i0", "p30690_i0", "p30760_i0"} <= set(found.marks.models)


def test_half_the_rows_name_but_a_coarse_sparse_column_alone_does_not(world: World) -> None:
    """A coarse column (integers, 10% of cells marked) holds ~46 values per integer: its
    multiset barely differs between copies (ln P −1.6 here), so it names no one alone; a
    fine column's half names its recipient."""
    copy = _copy(world, "ext_011")
    half = np.random.default_rng(2).permutation(N)[: N // 2]
    coarse = _evidence(world, {"p50_i0": copy["p50_i0"][half]})
    assert not _named(coarse)
    both = _evidence(world, {c: copy[c][half] for c in ("p30690_i0", "p50_i0")})
    assert _named(both) == {"ext_011"}


def test_two_copies_mixed_cell_by_cell_name_both_and_no_one_else(world: World) -> None:
    a, b = _copy(world, "ext_001"), _copy(world, "ext_002")
    rng = np.random.default_rng(3)
    mixed = {c: np.where(rng.random(N) < 0.5, a[c], b[c]) for c in a}
    found = _evidence(world, _columns_shuffled(mixed, 4))
    assert _named(found) == {"ext_001", "ext_002"}


def test_the_raw_cohort_and_rounded_values_name_no_one(world: World) -> None:
    _, master, _ = world
    raw = _evidence(world, _columns_shuffled(master, 5))
    assert not _named(raw)
    assert min(raw.log_p(e) for e in REGISTERED) > INNOCENT
    copy = _copy(world, "ext_007")
    rounded = {c: np.round(v, 1) for c, v in copy.items() if c != "p50_i0"}
    found = _evidence(world, rounded)  # rounded 100x coarser: no column is read at all
    assert len(found.marks) == 0 and not _named(found)


def test_an_innocents_p_value_is_a_p_value(world: World) -> None:
    """Keys never used for the file: P(p ≤ a) ≤ a (200 null recipients, one file each of
    three kinds: a guilty copy, two copies mixed, the raw cohort)."""
    _, master, _ = world
    nulls = [f"null_{i:03d}" for i in range(200)]
    for suspect in (_copy(world, "ext_020"),
                    {c: np.where(np.arange(N) % 2 == 0, v, _copy(world, "ext_021")[c])
                     for c, v in _copy(world, "ext_020").items()},
                    dict(master)):
        found = _evidence(world, _columns_shuffled(suspect, 6), nulls)
        p = np.exp([found.log_p(e) for e in nulls])
        for a in (0.01, 0.05, 0.2, 0.5):
            assert np.mean(p <= a) <= a + 3 * math.sqrt(a * (1 - a) / len(nulls)), a


def test_a_reading_is_one_per_position_and_needs_the_neighbour(world: World) -> None:
    eids, master, carriers = world
    carrier = carriers[0]
    m = master[carrier.column][:5]
    step = carrier.amplitude
    suspect = np.array([m[0] + step, m[0] + step, m[1] - step, m[2] + 7 * step])
    who, w = multiset.read_column(carrier, suspect, eids[:5], m, BIAS)
    found = dict(zip(who.tolist(), w.tolist(), strict=True))
    assert found[int(eids[0])] == 1.0 and found[int(eids[1])] == -1.0  # clipped: one position
    assert int(eids[2]) not in found  # nothing one mark away from its value


def test_the_cap_keeps_the_strongest_readings_and_still_names(world: World) -> None:
    eids, master, carriers = world
    rng = np.random.default_rng(0)
    strength = np.array([0.2, 1.0, 0.5, 1.0, 1.0, 0.1, 0.5])
    kept = multiset.strongest(strength, 4, rng)
    assert len(kept) == 4 and list(kept) == sorted(kept)
    assert set(strength[kept]) == {1.0, 0.5}  # every 1.0, one of the two 0.5s
    suspect = _columns_shuffled(_copy(world, "ext_009"), 7)
    marks = multiset.read(carriers, suspect, eids, master, BIAS, cap=500)
    assert len(marks) == 500 and marks.capped_from > 500
    recipients = [accuse.Recipient(i, codes.recipient_key(MASTER, i), frozenset(carriers))
                  for i in REGISTERED]
    found = multiset.evidence(marks, recipients)
    assert _named(found) == {"ext_009"}


def test_the_values_kind_takes_its_own_share_of_the_bound(world: World) -> None:
    """Combined with the row-linked fingerprint by the weighted union, never added to it:
    the bound is the strongest kind's p-value over its weight, times Σ weight·hypotheses."""
    _, master, carriers = world
    suspect = _columns_shuffled(_copy(world, "ext_004"), 8)
    found = _evidence(world, suspect)
    recipients = [accuse.Recipient(i, codes.recipient_key(MASTER, i), frozenset(carriers))
                  for i in REGISTERED]
    nothing_linked = accuse.read_marks(carriers, np.full(N, -1), suspect, master, BIAS)
    scores = {s.extract_id: s for s in accuse.score(nothing_linked, recipients,
                                                    other={multiset.KIND: found.other()})}
    total = accuse.WEIGHTS[multiset.KIND] * len(REGISTERED)  # no linked position: no other
    leaker = scores["ext_004"]
    assert leaker.accused
    assert leaker.log_bound == pytest.approx(found.log_p("ext_004") + math.log(total))
    assert leaker.kind_log_p[accuse.ALL_KINDS.index(multiset.KIND)] == found.log_p("ext_004")
    assert found.log_p("ext_004") == pytest.approx(found.scores["ext_004"].log_p + math.log(2))
    assert [e for e, s in scores.items() if s.accused] == ["ext_004"]


def test_blocks_of_exact_columns_sharpen_a_coarse_columns_reading(world: World) -> None:
    """Within blocks of sex, year and month of birth (what a re-pairer keeps), a coarse sparse
    column's values have a few candidates each instead of ~50: ln P −10.7 (not named) becomes
    −131 (3,000 rows of height in whole centimetres, 10% of cells marked)."""
    eids, master, carriers = world
    rng = np.random.default_rng(9)
    keys = {"p31": rng.integers(0, 2, N).astype(float),
            "p34": rng.integers(1940, 1976, N).astype(float),
            "p52": rng.integers(1, 13, N).astype(float)}
    keys["p52"][:30] = np.nan  # missing is a value of its own
    copy = _copy(world, "ext_011")
    order = rng.permutation(N)  # rows shuffled, each value kept with its row's keys
    suspect = {"p50_i0": copy["p50_i0"][order]}
    mine = {c: v[order] for c, v in keys.items()}
    exact = multiset.exact_columns(mine, keys)
    assert set(exact) == set(keys)
    assert not multiset.exact_columns({"p31": mine["p31"] + 0.5}, keys)  # not its values
    blocks = multiset.blocks_of(mine, exact)
    assert len(blocks[0]) == N and len(blocks[1]) == N
    assert np.array_equal(blocks[0], blocks[1][order])  # the same rows, the same blocks
    recipients = [accuse.Recipient(i, codes.recipient_key(MASTER, i), frozenset(carriers))
                  for i in REGISTERED]
    plain = multiset.evidence(multiset.read(carriers, suspect, eids, master, BIAS), recipients)
    within = multiset.evidence(multiset.read(carriers, suspect, eids, master, BIAS,
                                             blocks=blocks), recipients)
    assert not _named(plain)
    assert within.log_p("ext_011") < -30 and _named(within) == {"ext_011"}


def test_an_innocents_p_value_within_blocks_is_a_p_value(world: World) -> None:
    """The blocked reading's null law, on a guilty copy and the raw cohort re-paired within
    blocks of sex and month (200 keys never used for the file)."""
    eids, master, carriers = world
    rng = np.random.default_rng(12)
    keys = {"p31": rng.integers(0, 2, N).astype(float),
            "p52": rng.integers(1, 13, N).astype(float)}
    block = keys["p31"] * 100 + keys["p52"]
    blocks = multiset.blocks_of(keys, keys)
    nulls = [f"null_{i:03d}" for i in range(200)]
    recipients = [accuse.Recipient(i, codes.recipient_key(MASTER, i), frozenset(carriers))
                  for i in nulls]
    for source in (_copy(world, "ext_020"), dict(master)):
        suspect = {}
        for column, v in source.items():  # each column shuffled within each block
            out = np.empty(N)
            for b in np.unique(block):
                rows = np.flatnonzero(block == b)
                out[rows] = v[rng.permutation(rows)]
            suspect[column] = out
        marks = multiset.read(carriers, suspect, eids, master, BIAS, blocks=blocks)
        found = multiset.evidence(marks, recipients)
        p = np.exp([found.log_p(e) for e in nulls])
        for a in (0.01, 0.05, 0.2, 0.5):
            assert np.mean(p <= a) <= a + 3 * math.sqrt(a * (1 - a) / len(nulls)), a
