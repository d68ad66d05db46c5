"""Membership positions from exact, unique matches of rows the linkage left unlinked."""

from __future__ import annotations

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.model import EID
from strongroom.extracts import evidence
from strongroom.extracts.linkage import Linked


def test_only_exact_and_unique_matches_name_a_participant() -> None:
    master = pl.DataFrame({EID: [11, 12, 13, 14], "p31": [0, 1, 1, 0],
                           "p34": [1950, 1960, 1960, None]})
    values = {"p31": np.array([0.0, 1.0, 0.0, 0.0, 1.0]),
              "p34": np.array([1950.0, 1960.0, 1951.0, np.nan, 1960.0])}
    linked = Linked({"sex": "p31", "born": "p34"}, np.full(5, -1, dtype=np.int64), values, 5)
    found = evidence.exact_unique(linked, master, shipped_dictionary())
    # row 0 is 11 alone; rows 1 and 4 match 12 and 13 both; row 2 no one; row 3 is 14
    # (missing matches missing)
    assert found.tolist() == [11, -1, -1, 14, -1]
    linked.eids[0] = 12  # a row the linkage linked is left to it
    assert evidence.exact_unique(linked, master, shipped_dictionary()).tolist() == [
        -1, -1, -1, 14, -1]
