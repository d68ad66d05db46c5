"""Ingest end to end through the library: formats, merging of baskets, atomic refusal."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from strongroom.cohort.ingest import ingest
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.problems import IngestError
from strongroom.cohort.store import Store
from strongroom.cohort.synth import synthesise
from tests.leaks import binary_leaks, everything_stored, stored_bytes, text_leaks

BASKET_A = (
    "eid,31-0.0,34-0.0,21001-0.0,41270-0.0,41270-0.1,41280-0.0,41280-0.1\n"
    "1000017,0,1950,27.3817,I10,E119,2011-05-17,2013-09-30\n"
    "1000025,1,1961,31.0422,,,,\n"
)
BASKET_B = "f.eid\tf.4080.0.0\tf.4080.0.1\n1000017\t143\t139\n1000025\t128\tNA\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_baskets_merge_on_eid(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path, "ukb1.csv", BASKET_A)
    b = write(tmp_path, "ukb2.tab", BASKET_B)
    version = ingest(store, [a, b])
    assert version.participants == 2
    assert [s["name"] for s in version.sources] == ["ukb1.csv", "ukb2.tab"]
    cohort = store.load()
    p = cohort.participants.sort("eid")
    assert p["p4080_i0_a1"].to_list() == [139, None]
    assert p["p21001_i0"].to_list() == [27.3817, 31.0422]
    d = cohort.events["diagnoses"]
    assert d.select("eid", "array_index", "code").rows() == [
        (1000017, 0, "I10"), (1000017, 1, "E119")]


def test_a_field_in_two_baskets_is_a_conflict(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path, "ukb1.csv", BASKET_A)
    b = write(tmp_path, "ukb2.csv", "eid,31-0.0\n1000017,0\n")
    with pytest.raises(IngestError, match="each field may come from one input only"):
        ingest(store, [a, b])
    assert store.current() is None


def test_problems_from_every_file_are_reported_together(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path, "ukb1.csv", BASKET_A.replace("I10", "I1O"))
    b = write(tmp_path, "ukb2.tab", BASKET_B.replace("139", "13.9"))
    with pytest.raises(IngestError) as info:
        ingest(store, [a, b])
    text = "\n".join(str(p) for p in info.value.problems)
    assert "ukb1.csv" in text and "'I1O'" in text and "coding 19" in text
    assert "ukb2.tab" in text and "'13.9'" in text
    assert store.current() is None


def test_bad_file_after_good_one_leaves_the_good_cohort(store: Store, tmp_path: Path) -> None:
    first = ingest(store, [write(tmp_path, "ukb1.csv", BASKET_A)])
    with pytest.raises(IngestError):
        ingest(store, [write(tmp_path, "bad.csv", "eid,31-0.0\n1,0\n1,1\n")])
    current = store.current()
    assert current is not None and current.id == first.id
    assert store.load().participants.height == 2


def test_missing_path_and_plain_directory(store: Store, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        ingest(store, [tmp_path / "nope.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="not a cohort directory"):
        ingest(store, [tmp_path / "empty"])


def test_synthetic_cohort_leaves_no_plaintext_at_rest(store: Store, tmp_path: Path) -> None:
    cohort = synthesise(2_000, seed=11)
    write_cohort_dir(cohort, tmp_path / "synth")
    ingest(store, [tmp_path / "synth"])
    blob = everything_stored(store)
    p = cohort.participants
    eids = p["eid"].to_list()
    bmis = p["p21001_i0"].drop_nulls().to_list()
    dates = cohort.events["diagnoses"]["date"].cast(pl.String).unique().to_list()
    assert text_leaks(blob, [*eids, *bmis, *dates]) == []
    assert binary_leaks(blob, eids, bmis) == []
    assert b"PAR1" not in blob


BAD_INPUTS = {
    "unknown field": ("eid,31-0.0,99999-0.0\n1000017,0,5\n", "field 99999 is not in the data"),
    "array outside the field": ("eid,4080-0.7\n1000017,120\n", "array slots 0–1, not 7"),
    "wrong type": ("eid,34-0.0\n1000017,nineteen fifty\n", "expected a whole number"),
    "code outside coding": ("eid,20116-0.0\n1000017,5\n", "code is not in coding 90"),
    "impossible date": ("eid,53-0.0\n1000017,2008-02-30\n", "not a valid date"),
    "future date": ("eid,53-0.0\n1000017,2099-01-01\n", "date is in the future"),
    "duplicate eid": ("eid,31-0.0\n1000017,0\n1000017,1\n", "duplicate eid"),
    "missing eid": ("31-0.0,34-0.0\n0,1950\n", "eid"),
    "short row": ("eid,31-0.0,34-0.0\n1000017,0\n", "row"),
    "event before birth": (
        "eid,34-0.0,41270-0.0,41280-0.0\n1000017,1950,I10,1949-12-31\n", "event-before-birth"),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_each_kind_of_bad_input_changes_nothing(store: Store, tmp_path: Path, kind: str) -> None:
    first = ingest(store, [write(tmp_path, "good.csv", BASKET_A)])
    before = stored_bytes(store.root / "cohort")
    text, expected = BAD_INPUTS[kind]
    with pytest.raises(IngestError) as info:
        ingest(store, [write(tmp_path, "bad.csv", text)])
    assert any(expected in str(p) for p in info.value.problems), info.value.summary()
    assert all(p.source == "bad.csv" for p in info.value.problems)
    current = store.current()
    assert current is not None and current.id == first.id
    assert stored_bytes(store.root / "cohort") == before
    assert store.load().participants.height == 2
