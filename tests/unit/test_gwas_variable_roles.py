"""A GWAS's traits and covariates in the differencing check, attacked.

Guarantee: two GWAS whose per-variant effects would differ by a few participants' genotypes
clash (a trait over groups a few apart, or a covariate changed for a few, or their residuals);
a trait beside another GWAS's covariate, which gives nothing, does not. An honest GWAS of
diabetes adjusted for BMI, after one of BMI over much the same group, was blocked before.

Ground truth is built here: the raw values, the clip each trait was winsorised at, and who is
in which group.
"""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.outputs.contributions import Vector, clashes, span_clashes
from tests.unit.test_span_clips import K, clipped

N = 3000


def world(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.arange(N, dtype=np.int64)
    bmi = np.round(rng.normal(27, 4, N), 1)
    missing = rng.choice(N, 6, replace=False)  # a few with no diabetes status
    return ids, bmi, missing


def found(new: list[Vector], earlier: list[Vector]) -> bool:
    return bool(clashes(new, earlier, K, within=True) or span_clashes(new, earlier, K))


def trait(ids: np.ndarray, values: np.ndarray, rank: int = K + 3) -> Vector:
    return Vector.of("gwas variable bmi (release out_a)", ids, clipped(values, rank))


def covariate(ids: np.ndarray, values: np.ndarray, release: str = "") -> Vector:
    return Vector.of(f"gwas variable bmi (covariate){release}", ids, values)


@pytest.mark.parametrize("seed", range(12))
def test_a_trait_beside_a_covariate_of_a_few_fewer_people_is_not_a_clash(seed: int) -> None:
    ids, bmi, missing = world(seed)
    kept = np.setdiff1d(ids, missing)
    assert not found([covariate(kept, bmi[kept])], [trait(ids, bmi)])


def test_a_trait_over_a_few_fewer_people_is_still_a_clash() -> None:
    """The attack the covariate's family must not hide: the same trait, a few apart."""
    ids, bmi, missing = world(1)
    kept = np.setdiff1d(ids, missing)
    new = Vector.of("gwas variable bmi", kept, clipped(bmi[kept], K + 3))
    assert found([new], [trait(ids, bmi)])


def test_a_covariate_over_a_few_fewer_people_is_a_clash() -> None:
    ids, bmi, missing = world(2)
    kept = np.setdiff1d(ids, missing)
    assert found([covariate(kept, bmi[kept])], [covariate(ids, bmi, " (release out_b)")])


def test_a_covariate_changed_for_one_person_is_a_clash() -> None:
    """A GWAS adjusted for BMI, then again with the target's BMI changed: the effects'
    difference is the target's genotypes times the change in their residual."""
    ids, bmi, _ = world(3)
    changed = bmi.copy()
    changed[17] = 80.0
    assert found([covariate(ids, changed)], [covariate(ids, bmi, " (release out_b)")])


def test_a_covariate_released_before_roles_were_kept_is_compared_as_a_trait() -> None:
    """A covariate in the ledger from before is labelled as a trait: a new trait a few apart
    from it still clashes (the cautious side)."""
    ids, bmi, missing = world(4)
    kept = np.setdiff1d(ids, missing)
    legacy = Vector.of("gwas variable bmi (release out_old)", ids, bmi)
    new = Vector.of("gwas variable bmi", kept, clipped(bmi[kept], K + 3))
    assert found([new], [legacy])


def test_one_gwas_trait_and_covariate_are_not_compared_with_each_other() -> None:
    ids, bmi, missing = world(5)
    kept = np.setdiff1d(ids, missing)
    assert not found([Vector.of("gwas variable bmi", ids, clipped(bmi, K + 3)),
                      covariate(kept, bmi[kept])], [])
