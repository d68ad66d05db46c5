"""Two of a leaker's cheap counters undone before marks are read (issue 57): codes re-coded to
their text labels (``labels.as_codes``), and every date of a column moved by a constant
(``multiset.date_shift``). Both rules read the file, the dictionary and the master alone."""

from __future__ import annotations

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Coding, Dictionary, Field, Role, ValueType
from strongroom.extracts import labels, multiset


def _dictionary() -> Dictionary:
    smoking = Coding(90, {"-3": "Prefer not to answer", "0": "Never", "1": "Previous",
                          "2": "Current"})
    sex = Coding(9, {"0": "Female", "1": "Male"})
    illness = Coding(6, {"1065": "Hypertension", "1226": "Hypothyroidism/myxoedema",
                         "1260": "Myasthenia gravis", "1437": "Myasthenia gravis"})
    fields = {
        20116: Field(20116, "Smoking status", ValueType.CATEGORICAL_SINGLE, Role.SENSITIVE,
                     coding_id=90, instances=4),
        31: Field(31, "Sex", ValueType.CATEGORICAL_SINGLE, Role.QUASI_IDENTIFIER, coding_id=9),
        20002: Field(20002, "Non-cancer illness", ValueType.CATEGORICAL_MULTIPLE,
                     Role.SENSITIVE, coding_id=6, instances=4, arrays=34),
        21000: Field(21000, "Ethnic background", ValueType.CATEGORICAL_SINGLE,
                     Role.QUASI_IDENTIFIER, coding_id=1001, instances=3),
    }
    ethnic = Coding(1001, {"1": "White", "1001": "British", "1002": "Irish",
                           "3": "Asian or Asian British", "3001": "Indian",
                           "-3": "Prefer not to answer"})
    return Dictionary(fields, {9: sex, 90: smoking, 6: illness, 1001: ethnic}, source="test")


def test_text_labels_read_back_as_codes() -> None:
    frame = pl.DataFrame({
        "p20116_i0": ["Never", "current ", None, "Previous", "Prefer not to answer"],
        "renamed": ["Never", "Never", "Current", "Previous", "Never"],  # found by its values
        "p31": ["Male", "Female", "Male", "*", "Female"],  # "*" is no label: missing
        "p20002_i0_a0": ["Hypertension", "Myasthenia gravis", None, "Hypertension", None],
        "note": ["a", "b", "c", "d", "e"],  # no coding's labels: left as text
        "p21001_i0": ["26.1", "25.0", "24.2", "23.3", "22.0"],  # numbers: left alone
    })
    out, decoded = labels.as_codes(frame, _dictionary(), [20116, 31, 20002])
    assert sorted(decoded) == ["p20002_i0_a0", "p20116_i0", "p31", "renamed"]
    assert out["p20116_i0"].to_list() == [0.0, 2.0, None, 1.0, -3.0]
    assert out["renamed"].to_list() == [0.0, 0.0, 2.0, 1.0, 0.0]
    assert out["p31"].to_list() == [1.0, 0.0, 1.0, None, 0.0]
    # a meaning two codes share reads as missing: no label says which
    assert out["p20002_i0_a0"].to_list() == [1065.0, None, None, 1065.0, None]
    assert out["note"].to_list() == frame["note"].to_list()
    assert out["p21001_i0"].to_list() == frame["p21001_i0"].to_list()


def test_a_renamed_column_two_codings_fit_stays_text() -> None:
    dictionary = _dictionary()
    twin = Coding(91, dict(dictionary.codings[90].codes))
    fields = {**dictionary.fields, 1239: Field(1239, "Current tobacco", ValueType.
                                               CATEGORICAL_SINGLE, Role.SENSITIVE, coding_id=91)}
    both = Dictionary(fields, {**dictionary.codings, 91: twin}, source="test")
    frame = pl.DataFrame({"x": ["Never", "Current", "Previous"]})
    out, decoded = labels.as_codes(frame, both, [20116, 1239])
    assert not decoded and out["x"].dtype == pl.String


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Master dates and fine blocks (a handful of participants each), and a copy's rows."""
    rng = np.random.default_rng(seed)
    master = rng.integers(13_000, 14_500, n).astype(np.float64)  # 2005-2009, days
    blocks = rng.integers(0, n // 4, n)
    rows = rng.choice(n, 2_000, replace=False)
    copy = master[rows].copy()
    marked = rng.random(len(rows)) < 0.1
    copy[marked] += rng.choice([-1.0, 1.0], int(marked.sum()))
    return master, blocks, rows, copy


def test_a_constant_shift_is_found_within_blocks_and_only_there() -> None:
    master, blocks, rows, copy = _world(50_000, 1)
    rng = np.random.default_rng(0)
    fine = (blocks[rows], blocks)
    assert multiset.date_shift(copy, master, fine, rng) == 0  # as issued
    for days in (37, -200, 1, 365):
        assert multiset.date_shift(copy + days, master, fine, rng) == days
    # no blocks (every row one block): the cohort has a date on every day, no shift is taken
    whole = (np.zeros(len(rows), np.int64), np.zeros(len(master), np.int64))
    assert multiset.date_shift(copy + 37, master, whole, rng) == 0
    # the raw cohort's own dates: no shift
    raw = master[rows]
    assert multiset.date_shift(raw, master, fine, rng) == 0
    # dates of no one in the cohort: no shift
    other = np.random.default_rng(9).integers(13_000, 14_500, 2_000).astype(np.float64)
    assert multiset.date_shift(other, master, fine, rng) == 0


def test_the_gates_group_labels_stay_text_and_a_leakers_labels_are_read() -> None:
    """Ethnic background released by group ("White": also code 1's meaning) is the gate's
    text, compared by linkage level by level; the same field re-coded by a leaker (British,
    Irish, Indian) reads back as its codes."""
    dictionary = _dictionary()
    grouped = pl.DataFrame({"p21000_i0": ["White", "Asian or Asian British", "not stated", "*",
                                          "White"]})
    out, decoded = labels.as_codes(grouped, dictionary, [21000])
    assert not decoded and out["p21000_i0"].to_list() == grouped["p21000_i0"].to_list()
    relabelled = pl.DataFrame({"p21000_i0": ["British", "Irish", "White", "Indian", None]})
    out, decoded = labels.as_codes(relabelled, dictionary, [21000])
    assert decoded == ["p21000_i0"]
    assert out["p21000_i0"].to_list() == [1001.0, 1002.0, 1.0, 3001.0, None]
