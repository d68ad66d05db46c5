"""Allow-listed dates as carriers: sparse ±1-day marks on typed dates, read back exactly at day
level and by calendar period when a suspect truncated them, and the gate's word on them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary
from strongroom.errors import Refused
from strongroom.extracts import accuse, carriers, codes
from strongroom.extracts.periods import PERIOD_DAYS
from strongroom.privacy import gate

MASTER = MasterKey(bytes(range(32)))
BIAS = codes.bias_key(MASTER)
DATE = "p53_i0"  # date of attending the assessment centre: role event_date
FIRST = dt.date(2006, 3, 13)


def _frame(n: int = 20_000, days: int = 1_600, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    visits = pl.Series(DATE, rng.integers(0, days, n).astype(np.int32)) + (
        FIRST - dt.date(1970, 1, 1)).days
    return pl.DataFrame({
        "eid": np.arange(n, dtype=np.int64) + 1_000_000,
        "p31": rng.integers(0, 2, n),
        DATE: visits.cast(pl.Date).scatter([5, 17], None),
    })


def _carrier(frame: pl.DataFrame, dictionary: Dictionary) -> carriers.Carrier:
    (carrier,) = carriers.choose(frame, dictionary, [DATE], allow=[53]).carriers
    return carrier


def test_an_allow_listed_date_carries_sparse_day_marks(dictionary: Dictionary) -> None:
    frame = _frame()
    assert "event_date" in carriers.choose(frame, dictionary, [DATE]).skipped[DATE]
    carrier = _carrier(frame, dictionary)
    assert carrier.kind == carriers.DATE and carrier.amplitude == 1.0 and carrier.decimals == 0
    assert carrier.sd > 400  # days: the cap applies, as f·δ² ≤ 2.5e-6·SD² allows far more
    # every date on a month's edge, and the rest of the cap from the other days (issue 57)
    assert carrier.edges
    rest = (carriers.MAX_DENSITY - carriers.EDGE_SHARE) / (1 - carriers.EDGE_SHARE)
    assert abs(carrier.density - rest) < 1e-5
    days = carriers.as_numbers(frame[DATE])
    assert carrier.low == np.nanmin(days) and carrier.high == np.nanmax(days)
    as_text = frame.with_columns(pl.col(DATE).cast(pl.String))
    assert "not as dates" in carriers.choose(as_text, dictionary, [DATE], allow=[53]).skipped[DATE]
    narrow = _frame(days=100)  # an SD of 29 days: under 1% of cells would be allowed
    assert "of its SD" in carriers.choose(narrow, dictionary, [DATE], allow=[53]).skipped[DATE]


def test_marks_move_chosen_dates_by_one_day_and_keep_type_range_and_mean(
        dictionary: Dictionary) -> None:
    frame = _frame()
    carrier = _carrier(frame, dictionary)
    one = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e1"))
    two = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e2"))
    assert one[DATE].dtype == pl.Date and one[DATE].null_count() == 2
    before = carriers.as_numbers(frame[DATE])
    moved = carriers.as_numbers(one[DATE]) - before
    present = ~np.isnan(moved)
    assert set(moved[present]) == {-1.0, 0.0, 1.0}
    assert one[DATE].min() == frame[DATE].min() and one[DATE].max() == frame[DATE].max()
    chosen = carrier.marked(BIAS, frame["eid"].to_numpy(), before)
    assert not (moved[present & ~chosen] != 0).any()  # only the keyed share moves …
    share = float(np.mean(moved[present] != 0))
    assert abs(share - carriers.MAX_DENSITY) < 0.01  # … all of it but the range's ends
    edge = carriers.month_edge(before)
    assert np.all(moved[edge & present & (before > carrier.low) & (before < carrier.high)] != 0)
    up = int(np.sum(moved == 1))
    down = int(np.sum(moved == -1))
    assert abs(up - down) < 4 * np.sqrt(up + down)  # symmetric: biases symmetric about 1/2
    assert abs(float(np.nanmean(moved))) / carrier.sd < 1e-3
    other = carriers.as_numbers(two[DATE]) - before
    assert np.array_equal(other[present] != 0, moved[present] != 0)  # the same cells …
    both = present & (moved != 0)
    assert (other[both] != moved[both]).mean() > 0.2  # … different symbols (E 2p(1−p) ≈ 0.29)


def test_the_manifest_keeps_the_kind_and_old_manifests_read_as_numbers(
        dictionary: Dictionary) -> None:
    carrier = _carrier(_frame(), dictionary)
    data = carrier.to_json()
    assert data["kind"] == "date" and carriers.Carrier.from_json(data) == carrier
    numeric = carriers.Carrier("p50_i0", 50, 1, 0.1, 9.5, 140.0, 200.0, 0.02)
    assert "kind" not in numeric.to_json()  # manifests of numeric carriers read as before
    assert carriers.Carrier.from_json(numeric.to_json()).kind == carriers.NUMBER
    with pytest.raises(ValueError, match="kind"):
        carriers.Carrier.from_json(data | {"kind": "time"})


def _read(copy: pl.DataFrame, frame: pl.DataFrame, carrier: carriers.Carrier
          ) -> accuse.Marks:
    eids = frame["eid"].to_numpy()
    master = accuse.master_values(frame, eids, [DATE])
    return accuse.read_marks([carrier], eids, {DATE: carriers.as_numbers(copy[DATE])}, master,
                             BIAS)


def _truth(frame: pl.DataFrame, copy: pl.DataFrame, marks: accuse.Marks) -> np.ndarray:
    """The symbols actually embedded at the positions read (custodian-side ground truth)."""
    moved = carriers.as_numbers(copy[DATE]) - carriers.as_numbers(frame[DATE])
    by_eid = dict(zip(frame["eid"].to_list(), moved, strict=True))
    return np.array([by_eid[e] for e in marks.eids])


def test_a_day_level_copy_reads_its_symbols_exactly(dictionary: Dictionary) -> None:
    frame = _frame()
    carrier = _carrier(frame, dictionary)
    copy = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e1"))
    master = accuse.master_values(frame, frame["eid"].to_numpy(), [DATE])[DATE]
    assert master.dtype == np.float64
    assert np.array_equal(master, carriers.as_numbers(frame[DATE]), equal_nan=True)
    marks = _read(copy, frame, carrier)
    model = marks.models[DATE]
    assert model.grid == 1.0 and model.calendar == "" and model.sigma == 0.0
    assert len(marks) > 0.09 * frame.height
    assert np.array_equal(np.sign(marks.weight), _truth(frame, copy, marks))  # every symbol
    assert np.all(np.abs(marks.weight) > 0.999)  # read as hard marks


@pytest.mark.parametrize(("period", "truncate"), [
    ("month", lambda d: d.dt.truncate("1mo")),
    ("month", lambda d: d.dt.truncate("1mo").dt.offset_by("14d")),  # the 15th of its month
    ("quarter", lambda d: d.dt.truncate("1q")),
    ("year", lambda d: d.dt.truncate("1y")),
    ("week", lambda d: d.dt.truncate("1w")),
])
def test_a_truncated_copy_reads_only_cells_across_a_period_s_end(
        dictionary: Dictionary, period: str, truncate: object) -> None:
    frame = _frame()
    carrier = _carrier(frame, dictionary)
    guilty = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e1"))
    assert callable(truncate)
    copy = guilty.with_columns(truncate(pl.col(DATE)))
    marks = _read(copy, frame, carrier)
    model = marks.models[DATE]
    assert model.calendar == period and model.grid == PERIOD_DAYS[period]
    truth = _truth(frame, guilty, marks)
    strong = np.abs(marks.weight) > 0.5
    # every reading is the symbol embedded (never a −δ read off the truncation) …
    assert np.array_equal(np.sign(marks.weight[strong]), truth[strong])
    # … and readings exist only where m ± 1 day fall in different periods: of the cells
    # marked, those on a month's edge (every one for months, a third for quarters, a twelfth
    # for years) and, for weeks, those a day from a week's end
    share = len(marks) / model.cells
    edges = carriers.EDGE_SHARE / carriers.MAX_DENSITY
    expected = {"week": 2 / 7, "month": edges, "quarter": edges / 3, "year": edges / 12}[period]
    assert 0.6 * expected < share < 1.4 * expected
    # an innocent recipient is never named on such a copy
    recipients = [accuse.Recipient(e, codes.recipient_key(MASTER, e), frozenset([carrier]))
                  for e in ("e1", "e2", "e3")]
    scores = {s.extract_id: s for s in accuse.score(marks, recipients)}
    assert not scores["e2"].accused and not scores["e3"].accused


def test_a_day_model_would_misread_a_month_truncation(dictionary: Dictionary) -> None:
    """Why the calendar reading exists: a day-level model reads every truncated date as moved
    back by about half a month, a −δ leaning of every cell (the reading the calendar avoids)."""
    frame = _frame()
    carrier = _carrier(frame, dictionary)
    copy = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e1"))
    y = carriers.as_numbers(copy[DATE].dt.truncate("1mo"))
    m = carriers.as_numbers(frame[DATE])
    use = ~np.isnan(y) & ~np.isnan(m)
    sigma, outlier = accuse.fit_model(y[use], m[use], carrier, 1.0)
    naive = accuse.soft_symbols(y[use], m[use], carrier, 1.0, sigma, outlier)
    assert float(np.mean(naive < 0)) > 0.8 and float(np.mean(naive)) < -0.02
    truncated = pl.Series(DATE, y).fill_nan(None).cast(pl.Int32).cast(pl.Date)
    marks = _read(frame.with_columns(truncated), frame, carrier)
    assert abs(float(np.mean(marks.weight))) < 0.2  # balanced: only boundary cells, ± alike


def test_the_gate_names_a_day_level_date_that_stops_k(dictionary: Dictionary) -> None:
    frame = _frame(n=3_000)  # about two participants a day
    carrier = _carrier(frame, dictionary)
    marked = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e1"))
    with pytest.raises(Refused) as refused:
        gate.check(marked, dictionary, ["p31", DATE], fixed=[DATE])
    (reason,) = [r for r in refused.value.reasons if DATE in r and "allow-list" in r]
    assert "to the day" in reason and "field 53 off the allow-list" in reason
    # generalised like any quasi-identifier when it carries no marks
    assert gate.check(frame, dictionary, ["p31", DATE]).solution is not None


def test_the_file_the_gate_measures_is_the_marked_one(dictionary: Dictionary) -> None:
    frame = _frame(n=40_000, days=800)  # fifty a day: day-level dates meet k
    carrier = _carrier(frame, dictionary)
    marked = carriers.fingerprint(frame, [carrier], BIAS, codes.recipient_key(MASTER, "e1"))
    decision = gate.check(marked, dictionary, ["p31", DATE], gate.GatePolicy(k=20),
                          fixed=[DATE])
    assert decision.summary()["kept_for_marks"] == [DATE]
    released = decision.release(marked)
    assert released[DATE].dtype == pl.Date
    final = decision.enforce(released)
    assert decision.final is not None and decision.final.k >= 20
    assert decision.final_suppressed == 0  # nothing blanked after the gate: marks kept
    assert (final[DATE] != frame[DATE]).sum() > 0.05 * frame.height
