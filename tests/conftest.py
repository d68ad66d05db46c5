"""Shared fixtures: small hand-made cohorts and fresh data directories."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.model import Cohort
from strongroom.cohort.store import Store, init_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "research-data"


@pytest.fixture(scope="session")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    return init_store(tmp_path / "data", key_file=tmp_path / "keys" / "master.key")


def small_cohort() -> Cohort:
    """Three participants with distinctive values, as text (as a CSV reader returns them)."""
    participants = pl.DataFrame({
        "eid": ["1000017", "1000025", "1000033"],
        "p31": ["0", "1", "0"],
        "p34": ["1950", "1961", "1944"],
        "p53_i0": ["2008-03-14", "2009-11-02", "2007-06-30"],
        "p21001_i0": ["27.3817", "31.0422", "22.9931"],
        "p4080_i0_a0": ["143", "128", "151"],
        "p4080_i0_a1": ["139", "131", "149"],
        "p20116_i0": ["0", "2", "1"],
        "p36_i0": ["BPDEV-77123", "BPDEV-77124", "BPDEV-77125"],
    })
    diagnoses = pl.DataFrame({
        "eid": ["1000017", "1000017", "1000033"],
        "array_index": ["0", "1", "0"],
        "code": ["I10", "E119", "C509"],
        "date": ["2011-05-17", "2013-09-30", "2015-01-08"],
    })
    return Cohort(participants, {"diagnoses": diagnoses})
