"""The participant-subset carrier: exact withheld share, exact null law, guilty copies."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.model import EID
from strongroom.extracts import codes, membership
from tests.innocence import INNOCENT

MASTER = MasterKey(b"\x09" * 32)
EIDS = np.arange(1_000_000, 1_050_000, dtype=np.int64)


def _key(i: int) -> bytes:
    return codes.recipient_key(MASTER, f"ext_{i:03d}")


def test_the_withheld_share_is_keyed_and_near_its_rate() -> None:
    one, two = (membership.withheld(_key(i), EIDS, membership.SHARE) for i in (1, 2))
    assert abs(one.mean() - membership.SHARE) < 4 * math.sqrt(0.02 * 0.98 / len(EIDS))
    assert 0 < (one & two).sum() < 3 * len(EIDS) * membership.SHARE**2  # independent keys
    assert np.array_equal(one, membership.withheld(_key(1), EIDS, membership.SHARE))
    assert not membership.withheld(_key(1), EIDS, 0.0).any()
    frame = pl.DataFrame({EID: EIDS, "x": np.ones(len(EIDS))})
    kept = membership.withhold(frame, _key(1), membership.SHARE)
    assert kept.height == len(EIDS) - one.sum()
    assert not set(kept[EID].to_list()) & set(EIDS[one].tolist())


def test_a_guilty_copy_holds_none_of_its_withheld() -> None:
    held = EIDS[~membership.withheld(_key(1), EIDS, membership.SHARE)]
    rows = np.random.default_rng(1).choice(held, 1500, replace=False)
    linked = np.concatenate([rows, [-1, -1]])  # unlinked rows count for nothing
    found = membership.evidence(linked, {f"ext_{i:03d}": (_key(i), membership.SHARE)
                                         for i in range(1, 30)})
    assert found["ext_001"].withheld == 0 and found["ext_001"].positions == 1500
    assert found["ext_001"].log_p == pytest.approx(1500 * math.log1p(-0.02), rel=1e-6)
    assert found["ext_001"].log_p < math.log(1e-9 / (0.1 * 1000 / 2.2))
    assert all(found[f"ext_{i:03d}"].log_p > -12 for i in range(2, 30))


def test_the_null_law_is_exact_binomial() -> None:
    """Innocent extracts against files they never touched: P(p ≤ α) ≤ α at every α."""
    rng = np.random.default_rng(5)
    keys = {f"ext_{i:03d}": (_key(i), membership.SHARE) for i in range(400)}
    logs = []
    for _ in range(5):
        rows = rng.choice(EIDS, 300, replace=False)
        logs += [e.log_p for e in membership.evidence(rows, keys).values()]
    p = np.exp(np.array(logs))
    for alpha in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(p <= alpha) <= alpha + 3 * math.sqrt(alpha / len(p)), alpha


def test_old_extracts_have_no_positions() -> None:
    found = membership.evidence(EIDS[:100], {"old": (_key(1), 0.0)})
    assert found["old"] == membership.Evidence(0, 0, 0.0)


def test_the_tail_stays_finite_far_out() -> None:
    assert membership.log_lower_tail(0, 490_000, 0.02) == pytest.approx(490_000 * math.log(0.98))
    assert membership.log_lower_tail(3, 300, 0.02) == pytest.approx(
        math.log(sum(math.comb(300, k) * 0.02**k * 0.98 ** (300 - k) for k in range(4))))
    assert membership.log_lower_tail(6, 300, 0.02) == 0.0  # at the mean: 1, a valid bound
    assert membership.log_lower_tail(100, 100, 0.02) == 0.0


# -- rows that match a class of participants, not one (classes.py) ---------------------------

def test_the_weighted_tail_is_the_binomial_one_at_zero_with_unit_weights() -> None:
    tail = membership.log_weighted_lower_tail(0.0, np.array([1.0]), np.array([1500.0]), 0.02)
    assert tail == pytest.approx(1500 * math.log1p(-0.02), rel=1e-6)
    # at or above the mean there is no evidence; 1 is a valid bound
    assert membership.log_weighted_lower_tail(30.0, np.array([1.0]), np.array([1500.0]),
                                              0.02) == 0.0


def test_the_weighted_null_law_holds_at_every_level() -> None:
    """Innocent extracts against weighted participants they never touched, the weights mixed
    as class sizes make them: P(bound ≤ α) ≤ α."""
    rng = np.random.default_rng(8)
    keys = {f"ext_{i:03d}": (_key(i), membership.SHARE) for i in range(300)}
    logs = []
    for _ in range(4):
        eids = rng.choice(EIDS, 3000, replace=False)
        weights = 1.0 / rng.integers(1, 40, size=len(eids))
        logs += [e.log_p for e in membership.weighted_evidence(eids, weights, keys).values()]
    p = np.exp(np.array(logs))
    for alpha in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(p <= alpha) <= alpha + 3 * math.sqrt(alpha / len(p)), alpha


def test_a_guilty_copy_of_classes_is_told_from_innocents() -> None:
    """Rows each matching a class of 2 (the true member and another): the guilty extract's
    withheld participants are never a row's true member."""
    rng = np.random.default_rng(9)
    first, second = EIDS[:25_000], EIDS[25_000:]  # the rows' members; their class-mates
    held = first[~membership.withheld(_key(1), first, membership.SHARE)]
    truth = rng.choice(held, 20_000, replace=False)
    others = rng.choice(second, len(truth), replace=False)
    eids = np.concatenate([truth, others])
    weights = np.full(len(eids), 0.5)
    keys = {f"ext_{i:03d}": (_key(i), membership.SHARE) for i in range(1, 20)}
    found = membership.weighted_evidence(eids, weights, keys)
    assert found["ext_001"].log_p < math.log(1e-9 / 100)
    assert all(found[f"ext_{i:03d}"].log_p > INNOCENT for i in range(2, 20))


def test_unit_weights_keep_the_exact_binomial_test() -> None:
    rows = EIDS[:300]
    keys = {"a": (_key(1), membership.SHARE)}
    assert (membership.weighted_evidence(rows, np.ones(300), keys)
            == membership.evidence(rows, keys))


def test_a_participant_listed_twice_counts_once_with_both_weights() -> None:
    """Duplicates would make two terms of one Bernoulli: they are summed first."""
    keys = {"a": (_key(1), membership.SHARE)}
    rows = EIDS[:400]
    twice = membership.weighted_evidence(np.concatenate([rows, rows]), np.full(800, 0.5), keys)
    once = membership.weighted_evidence(rows, np.ones(400), keys)
    assert twice == once


def test_at_most_max_participants_are_read_chosen_without_a_key() -> None:
    """Past ``MAX_PARTICIPANTS`` the test reads the heaviest (linked first), ties by the lowest
    id — a rule of the file alone, so the kept indicators keep their exact null law; a guilty
    copy is still named far past the line."""
    cap = membership.MAX_PARTICIPANTS
    many = np.arange(2_000_000, 2_000_000 + cap + 10_000, dtype=np.int64)
    keys = {"a": (_key(1), membership.SHARE), "b": (_key(2), membership.SHARE)}
    shuffled = np.random.default_rng(3).permutation(many)
    capped = membership.evidence(shuffled, keys)
    assert capped == membership.evidence(many[:cap], keys)
    assert capped["a"].positions == cap
    # weights: the 10,000 highest ids linked (1), the rest class members (0.1): the linked
    # are kept whole and the lowest ids of the others fill the rest
    weights = np.where(many >= many[-10_000], 1.0, 0.1)
    kept = np.concatenate([many[:cap - 10_000], many[-10_000:]])
    got = membership.weighted_evidence(many, weights, keys)
    assert got == membership.weighted_evidence(kept, np.where(kept >= many[-10_000], 1.0, 0.1),
                                               keys)
    # a guilty copy (none of a's withheld) is named past the line on the kept ones alone
    withheld = membership.withheld(_key(1), many, membership.SHARE)
    guilty = membership.evidence(many[~withheld], keys)
    assert guilty["a"].withheld == 0 and guilty["a"].log_p < -900
    assert guilty["b"].log_p > math.log(1e-6)
