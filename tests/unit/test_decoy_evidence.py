"""Decoys as evidence: strict matching, the cohort's chance of a match, the exact tail."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.model import EID
from strongroom.extracts import decoy_evidence
from strongroom.extracts.decoys import DecoySet
from strongroom.extracts.linkage import ColumnSpec, Linked


def test_the_tail_is_the_exact_poisson_binomial() -> None:
    chances = np.array([0.1, 0.3, 0.05, 0.2])
    for k in range(5):
        exact = sum(math.prod(p if i in chosen else 1 - p for i, p in enumerate(chances))
                    for r in range(k, 5) for chosen in itertools.combinations(range(4), r))
        assert decoy_evidence.log_tail(chances, k) == pytest.approx(math.log(exact))
    assert decoy_evidence.log_tail(np.full(44, 1e-9), 44) == -700.0  # floored, still tiny


def _world(n: int = 5000) -> tuple[pl.DataFrame, DecoySet]:
    rng = np.random.default_rng(3)
    master = pl.DataFrame({EID: np.arange(n), "p34": rng.integers(1940, 1970, n),
                           "p30690_i0": np.round(rng.normal(5.7, 1.2, n), 3)})
    rows = pl.DataFrame({EID: [7_000_001, 7_000_002], "p34": [1950, 1960],
                         "p30690_i0": [5.123, 6.456]})
    specs = {"p34": ColumnSpec("p34", "number", 1.0, True),
             "p30690_i0": ColumnSpec("p30690_i0", "number", 0.001)}
    return master, DecoySet(rows, specs)


def _linked(values: dict[str, list[float]], unlinked: int) -> Linked:
    n = len(next(iter(values.values())))
    eids = np.full(n, 1, dtype=np.int64)
    eids[:unlinked] = -1
    return Linked({c: c for c in values}, eids, {c: np.array(v) for c, v in values.items()}, n,
                  grids={"p34": 1.0, "p30690_i0": 0.001})


def test_only_matches_on_every_column_count_and_coarse_ones_weigh_nothing() -> None:
    master, decoys = _world()
    linked = _linked({"p34": [1950, 1960, 1950], "p30690_i0": [5.123, 6.9, 5.0]}, 3)
    candidates = [("e", "7000001", 0), ("e", "7000002", 1)]
    weighed = decoy_evidence.weigh(linked, candidates, {"e": decoys}, master)["e"]
    assert weighed.found == ["7000001"]  # the second is a loose neighbour: 6.9 is not 6.456
    assert weighed.columns == 2 and weighed.log_p < math.log(0.02)  # 3 rows × 10 × 2/5001
    # year of birth alone: one cohort row in 30 shares it, so a match is no evidence
    only_year = _linked({"p34": [1950, 1960, 1950]}, 3)
    coarse = decoy_evidence.weigh(only_year, candidates, {"e": decoys}, master)["e"]
    assert coarse.found == ["7000001", "7000002"] and not coarse.listed
    assert coarse.log_p == 0.0 or coarse.log_p > math.log(0.5)
