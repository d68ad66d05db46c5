"""Marks in the order of a multi-answer field's codes (``orders.py``): no code changes, read
from each row's tuple alone, scored under the same bound.

A copy keeps every row's set of answers (and the array columns it used); only the order
differs between recipients. A copy whose rows were shuffled and cut names its recipient; a
sorted copy, the raw cohort or another recipient's copy never names an innocent, and an
innocent's p-value is a p-value (keys never used for the file).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.extracts import accuse, codes, multiset, orders
from strongroom.extracts.carriers import ORDER, Carrier
from tests.innocence import INNOCENT

MASTER = MasterKey(b"\x0b" * 32)
BIAS = codes.bias_key(MASTER)
N = 3000
ILLNESS, QUALIFICATIONS = "p20002_i0_a*", "p6138_i0_a*"
CARRIERS = [Carrier(ILLNESS, 20002, 0, 1.0, 0.0, 0.0, 0.0, kind=ORDER),
            Carrier(QUALIFICATIONS, 6138, 0, 1.0, 0.0, 0.0, 0.0, kind=ORDER)]
REGISTERED = [f"ext_{i:03d}" for i in range(30)]


def _answers(rng: np.random.Generator, prefix: str, slots: int, codes_: np.ndarray,
             most: int) -> dict[str, pl.Series]:
    rows = np.full((N, slots), np.nan)
    for i in range(N):
        k = int(rng.integers(0, most + 1))
        rows[i, :k] = rng.choice(codes_, k, replace=False)  # the master's order: as reported
    return {f"{prefix}_a{j}": pl.Series(f"{prefix}_a{j}", rows[:, j]).fill_nan(None)
            .cast(pl.Int64) for j in range(slots)}


@pytest.fixture(scope="module")
def master() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    return pl.DataFrame({
        "eid": np.arange(1_000_000, 1_000_000 + N),
        **_answers(rng, "p20002_i0", 8, np.arange(1065, 1500), 4),
        **_answers(rng, "p6138_i0", 6, np.array([1, 2, 3, 4, 5, 6]), 4),
        "p4080_i0_a0": rng.integers(100, 180, N), "p4080_i0_a1": rng.integers(100, 180, N),
    })


def _copy(master: pl.DataFrame, extract_id: str) -> pl.DataFrame:
    return orders.embed(master, CARRIERS, BIAS, codes.recipient_key(MASTER, extract_id))


def _values(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].cast(pl.Float64).to_numpy() for c in frame.columns if c != "eid"}


def _evidence(master: pl.DataFrame, suspect: pl.DataFrame,
              ids: list[str] = REGISTERED) -> multiset.ValueEvidence:
    extra = multiset.read_orders(CARRIERS, _values(suspect), master)
    marks = multiset.read(CARRIERS, {}, master["eid"].to_numpy(), {}, BIAS, extra=extra)
    recipients = [accuse.Recipient(i, codes.recipient_key(MASTER, i), frozenset(CARRIERS))
                  for i in ids]
    return multiset.evidence(marks, recipients)


def _named(found: multiset.ValueEvidence) -> set[str]:
    union = math.log(max(1, found.other().hypotheses))
    return {e for e in found.scores if found.log_p(e) + union <= math.log(accuse.THRESHOLD)}


def _sets(frame: pl.DataFrame, prefix: str) -> list[tuple[float, ...]]:
    rows = frame.select([c for c in frame.columns if c.startswith(prefix)]).to_numpy()
    return [tuple(sorted(float(v) for v in r if v is not None and v == v)) for r in rows]


def test_a_copy_keeps_every_rows_answers_in_the_columns_it_used(master: pl.DataFrame) -> None:
    copy = _copy(master, "ext_001")
    for prefix in ("p20002_i0", "p6138_i0"):
        assert _sets(copy, prefix) == _sets(master, prefix)
        for c in (c for c in master.columns if c.startswith(prefix)):
            assert copy[c].is_null().to_list() == master[c].is_null().to_list()
            assert copy[c].dtype == master[c].dtype
    assert copy["p4080_i0_a0"].equals(master["p4080_i0_a0"])  # not a carrier: untouched
    first = (copy["p20002_i0_a0"] != master["p20002_i0_a0"]).sum()
    assert first > 0.2 * int((master["p20002_i0_a1"].is_not_null()).sum())  # a0 does move
    other = _copy(master, "ext_002")
    assert not copy.equals(other)  # recipients differ only in order


def test_same_set_same_order_within_a_copy(master: pl.DataFrame) -> None:
    copy = _copy(master, "ext_003")
    cols = [f"p6138_i0_a{j}" for j in range(6)]
    seen: dict[tuple[float, ...], tuple[float, ...]] = {}
    for row in copy.select(cols).rows():
        written = tuple(float(v) for v in row if v is not None)
        if len(written) >= 2:
            assert seen.setdefault(tuple(sorted(written)), written) == written


def test_choose_takes_multi_answer_categories_only(master: pl.DataFrame) -> None:
    dictionary = shipped_dictionary()
    chosen, skipped = orders.choose(master, dictionary, [c for c in master.columns
                                                         if c != "eid"])
    assert {c.column for c in chosen} == {ILLNESS, QUALIFICATIONS}  # not blood pressure
    with_year = master.with_columns(pl.lit(2001).alias("p20008_i0_a0"),
                                    pl.lit(2003).alias("p20008_i0_a1"))
    chosen, skipped = orders.choose(with_year, dictionary,
                                    [c for c in with_year.columns if c != "eid"])
    assert {c.column for c in chosen} == {QUALIFICATIONS}
    assert "20008" in skipped[ILLNESS]  # its array index pairs it with the year: kept as is
    # qualifications written in the coding's order (a0 the highest listed): a convention
    cols = [f"p6138_i0_a{j}" for j in range(6)]
    rows = np.sort(master.select(cols).cast(pl.Float64).to_numpy(), axis=1)
    listed = master.with_columns([pl.Series(c, rows[:, j]).fill_nan(None).cast(pl.Int64)
                                  for j, c in enumerate(cols)])
    chosen, skipped = orders.choose(listed, dictionary, [c for c in listed.columns
                                                         if c != "eid"])
    assert {c.column for c in chosen} == {ILLNESS}
    assert "one order" in skipped[QUALIFICATIONS]


def test_a_shuffled_cut_copy_names_its_recipient_and_a_sorted_one_no_one(
        master: pl.DataFrame) -> None:
    """3,000 rows: ln P about −1,600 (≈ 3,700 positions, nearly all of the illnesses');
    half the rows, shuffled, still name; a field sorted in every row is not read."""
    copy = _copy(master, "ext_004")
    half = copy[np.random.default_rng(1).permutation(N)[: N // 2]]
    found = _evidence(master, half)
    assert _named(found) == {"ext_004"}
    assert found.log_p("ext_004") < -200
    assert min(found.log_p(e) for e in REGISTERED if e != "ext_004") > INNOCENT
    cols = [c for c in copy.columns if c.startswith("p20002_i0")]
    rows = np.sort(copy.select(cols).cast(pl.Float64).to_numpy(), axis=1)  # NaN last
    tidy = copy.with_columns([pl.Series(c, rows[:, j]).fill_nan(None)
                              for j, c in enumerate(cols)])
    # the sorted field is not read at all (no noise): the qualifications' ~100 positions
    # (6 codes: few sets) still name, ln P about −44
    found = _evidence(master, tidy)
    assert set(found.marks.models) == {QUALIFICATIONS} and _named(found) == {"ext_004"}
    alone = _evidence(master, tidy.drop([c for c in copy.columns if c.startswith("p6138")]))
    assert len(alone.marks) == 0 and not _named(alone)


def test_the_raw_cohort_and_two_copies_mixed(master: pl.DataFrame) -> None:
    raw = _evidence(master, master)
    assert not _named(raw) and min(raw.log_p(e) for e in REGISTERED) > INNOCENT
    a, b = _copy(master, "ext_005"), _copy(master, "ext_006")
    mixed = pl.concat([a[: N // 2], b[N // 2:]])
    assert _named(_evidence(master, mixed)) == {"ext_005", "ext_006"}


def test_an_innocents_p_value_is_a_p_value(master: pl.DataFrame) -> None:
    """Keys never used for the file: P(p ≤ a) ≤ a (300 null recipients; a guilty copy, two
    copies mixed row by row, the raw cohort: an order no key chose)."""
    nulls = [f"null_{i:03d}" for i in range(300)]
    a, b = _copy(master, "ext_020"), _copy(master, "ext_021")
    for suspect in (a, pl.concat([a[::2], b[1::2]]), master):
        found = _evidence(master, suspect, nulls)
        p = np.exp([found.log_p(e) for e in nulls])
        for alpha in (0.01, 0.05, 0.2, 0.5):
            assert np.mean(p <= alpha) <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / 300), alpha


def test_a_reading_is_the_mean_over_rows_of_one_set() -> None:
    carrier = CARRIERS[1]
    cols = [f"p6138_i0_a{j}" for j in range(3)]
    master = {cols[0]: np.array([1.0, 2.0, 5.0]), cols[1]: np.array([6.0, 1.0, np.nan]),
              cols[2]: np.array([np.nan, 3.0, np.nan])}
    suspect = {cols[0]: np.array([6.0, 1.0, 1.0, 3.0, 7.0, 4.0]),
               cols[1]: np.array([1.0, 6.0, 6.0, 2.0, 8.0, 4.0]),
               cols[2]: np.array([np.nan, np.nan, np.nan, 1.0, np.nan, np.nan])}
    who, idx, w = orders.read([(5, carrier)], suspect, master)
    # {1, 6}: 6 before 1 once, after twice → −1/3; {1, 2, 3} as (3, 2, 1): 2 and 3 before 1;
    # {7, 8} is no master set; {4, 4} repeats a code: neither is read
    assert sorted(np.round(w, 6).tolist()) == [-0.333333, 1.0, 1.0]
    assert set(idx.tolist()) == {5} and len(set(who.tolist())) == 3
