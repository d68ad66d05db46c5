"""A project's pids in master-ID space: what the ledger compares across an institution's
projects. The set of a result's contributors comes out sorted by marking positions (large
sets) or sorting them (small ones); both must give the same distinct master IDs as a plain
sort, and a pid that is not the project's must refuse the result. Positions are found by a
table over the pid range for a large project and by a search for a small one: both are tried."""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.enclave.workspace import MasterIds
from strongroom.errors import Invalid


@pytest.fixture(scope="module", params=[5_000, 200_000], ids=["searched", "by a table"])
def ids(request: pytest.FixtureRequest) -> tuple[MasterIds, np.ndarray, np.ndarray]:
    size = request.param
    rng = np.random.default_rng(7)
    pids = rng.choice(np.arange(1_000_000, 10_000_000), size, replace=False)
    eids = rng.choice(np.arange(1_000_000, 6_000_000), size, replace=False)
    order = np.argsort(eids)
    master = MasterIds(pids[order], eids[order].astype(np.uint32))
    assert (master._ranks is None) == (size * MasterIds.DENSE < 10_000_000)
    return master, pids, eids


@pytest.mark.parametrize("size", [0, 1, 50, 312, 313, 2_000, 5_000, 9_000])
def test_the_distinct_master_ids_are_those_of_a_sort(
    ids: tuple[MasterIds, np.ndarray, np.ndarray], size: int
) -> None:
    master, pids, eids = ids
    rng = np.random.default_rng(size)
    chosen = rng.integers(0, len(pids), size)  # with repeats, as joined rows give
    assert master(pids[chosen]).tolist() == eids[chosen].tolist()  # in the rows' order
    assert master.distinct(pids[chosen]).tolist() == sorted(set(eids[chosen].tolist()))


@pytest.mark.parametrize("foreign", [-1, 0, 10_000_000, 2**40, None])
def test_a_pid_outside_the_project_refuses_the_result(
    ids: tuple[MasterIds, np.ndarray, np.ndarray], foreign: int | None
) -> None:
    """Out of the pid range, or in it but not the project's (None: such a 7-digit pid)."""
    master, pids, _ = ids
    if foreign is None:
        foreign = int(np.setdiff1d(np.arange(1_000_000, 1_010_000), pids)[0])
    mixed = np.concatenate([pids[:100], [foreign]])
    for convert in (master, master.distinct):
        with pytest.raises(Invalid, match="outside the project's view"):
            convert(mixed)
