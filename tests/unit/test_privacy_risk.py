"""The risk report: hand-worked examples for every metric, missing values, sampling frames,
the population estimators against simulated populations, and order independence."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from strongroom.errors import Invalid
from strongroom.privacy import estimators
from strongroom.privacy.classes import equivalence_classes
from strongroom.privacy.risk import SamplingFrame, assess

# Eight people; classes (1,F) ×3, (2,M) ×4, (3,F) ×1.
HAND = pl.DataFrame({
    "band": [1, 1, 1, 2, 2, 2, 2, 3],
    "sex": ["F", "F", "F", "M", "M", "M", "M", "F"],
    "disease": ["x", "y", "y", "x", "x", "x", "z", "y"],
    "score": [1, 2, 3, 1, 1, 1, 5, 4],
})


def test_k_classes_uniques_and_prosecutor_risk_by_hand() -> None:
    r = assess(HAND, ["band", "sex"])
    assert (r.k, r.classes, r.sample_uniques) == (1, 3, 1)
    assert r.size_histogram == [(1, 1), (3, 1), (4, 1)]
    assert r.records_below_threshold == 8  # every class is smaller than 5
    assert r.prosecutor.highest == 1.0 and r.prosecutor.records_at_highest == 1
    assert r.prosecutor.average == pytest.approx(3 / 8)
    assert r.prosecutor.records_above_threshold == 8  # 1/3, 1/4 and 1 all exceed 1/5
    assert r.journalist == r.prosecutor and r.marketer == pytest.approx(3 / 8)  # cohort frame
    assert r.population_uniques["uniques"] == 1
    bands = {b["sizes"]: (b["classes"], b["records"]) for b in r.bands()}
    assert bands["1"] == (1, 1) and bands["3–4"] == (2, 7) and bands["5–9"] == (0, 0)


def test_l_diversity_entropy_and_t_closeness_by_hand() -> None:
    r = assess(HAND, ["band", "sex"], ["disease", "score"])
    disease, score = r.diversity
    assert disease.distance == "equal" and score.distance == "ordered"
    assert disease.l_distinct == 1 and score.l_distinct == 1  # the unique class holds one value
    assert disease.l_entropy == pytest.approx(1.0) and disease.recursive_c is None
    # equal distance: classes 7/24, 3/8 and 5/8 from (x ½, y ⅜, z ⅛)
    assert disease.t_closeness == pytest.approx(0.625)
    # ordered distance over 1…5: classes 14/96, 1/8 and 1/2
    assert score.t_closeness == pytest.approx(0.5)
    assert r.combined is not None
    assert r.combined.t_closeness == pytest.approx(0.625) and r.combined.l_distinct == 1


def test_per_class_emd_and_entropy_by_hand() -> None:
    from strongroom.privacy.sensitive import per_class

    classes = equivalence_classes(HAND, ["band", "sex"])
    disease = per_class(classes, HAND["disease"], ordered=False)
    score = per_class(classes, HAND["score"], ordered=True)
    assert disease.emd.tolist() == pytest.approx([7 / 24, 3 / 8, 5 / 8])
    assert score.emd.tolist() == pytest.approx([14 / 96, 1 / 8, 1 / 2])
    h1 = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    h2 = -(3 / 4 * math.log(3 / 4) + 1 / 4 * math.log(1 / 4))
    assert disease.entropy.tolist() == pytest.approx([h1, h2, 0.0])
    assert score.distinct.tolist() == [3, 2, 1]


def test_recursive_c_l_counts_in_descending_order() -> None:
    """Machanavajjhala et al.: r₁ < c(r_l + … + r_m) with r₁ the *most* frequent value."""
    two = HAND.filter(pl.col("band") < 3)  # classes x,y,y and x,x,x,z
    d = assess(two, ["band", "sex"], ["disease"]).diversity[0]
    assert d.l_distinct == 2
    assert d.recursive_c == 4  # class x,x,x,z: 3 < c·1 needs c = 4; class y,y,x needs 3


def test_values_pycanon_gives_on_its_own_example() -> None:
    """Recorded from pycanon 1.3.6 on this table (not a dependency): k, l and t agree; its
    recursive c (1) sorts counts ascending, and its entropy l floors exp(ln 2) to 1."""
    table = pl.DataFrame({"a": [1, 1, 1, 2, 2, 2, 2], "s": ["x", "y", "y", "x", "x", "x", "z"],
                          "n": [1.0, 2, 3, 1, 1, 1, 5]})
    r = assess(table, ["a"], ["s", "n"])
    assert r.k == 3
    s, n = r.diversity
    assert s.l_distinct == 2 and s.t_closeness == pytest.approx(0.38095238095238093, abs=1e-15)
    assert n.t_closeness == pytest.approx(0.14285714285714285, abs=1e-15)
    assert s.recursive_c == 4  # pycanon says 1
    halves = pl.DataFrame({"a": [1, 1, 2, 2, 2, 2], "s": ["x", "y", "x", "y", "z", "z"]})
    assert assess(halves, ["a"], ["s"]).diversity[0].l_entropy_floor == 2  # pycanon says 1


def test_missing_is_a_value_of_its_own() -> None:
    frame = pl.DataFrame({"year": [1950, 1950, None, None, 1960], "sex": [0, 0, 1, 1, 1],
                          "bmi": [1.0, float("nan"), None, 2.0, 3.0]})
    r = assess(frame, ["year", "sex"])
    assert (r.k, r.classes, r.rows_with_missing) == (1, 3, 2)  # (null, 1) is a class of two
    nan_and_null = assess(frame, ["bmi"])
    assert nan_and_null.classes == 4  # NaN and null are one missing value
    ignored = assess(frame, ["year", "sex"], missing="ignore")
    assert (ignored.k, ignored.classes, ignored.rows_left_out) == (1, 2, 2)


def test_a_missing_sensitive_value_counts_and_sorts_last() -> None:
    frame = pl.DataFrame({"q": [1, 1, 2, 2], "v": [1.0, None, 1.0, 2.0]})
    d = assess(frame, ["q"], ["v"]).diversity[0]
    assert d.values == 3 and d.l_distinct == 2
    # order 1, 2, missing; overall ½, ¼, ¼. Class 1: ½, 0, ½ → |0| + |−¼| + 0 = ¼, over m−1 = 2
    assert d.t_closeness == pytest.approx(0.125)


def test_population_frame_journalist_and_marketer_risk() -> None:
    frame = pl.DataFrame({"q": [1, 2, 2, 3, 3, 3]})
    r = assess(frame, ["q"], sampling=SamplingFrame.of_fraction(6, 0.1))
    e1 = 0.1 / 0.9 * math.log(10)  # E[1/F | f=1] = p/q·ln(1/p)
    assert r.journalist.highest == pytest.approx(e1)
    expected = estimators.inverse_population_size(np.array([1, 2, 3]), 0.1)
    assert r.marketer == pytest.approx((expected * [1, 2, 3]).sum() / 6)
    assert r.prosecutor.highest == 1.0  # the prosecutor knows the person is in the table
    assert r.population_uniques["models"]["zayatz"]["converged"]
    assert r.frame.population == 60


@pytest.mark.parametrize("fraction", [0.0077, 0.1, 0.5, 0.7, 0.99])
def test_expected_inverse_population_size_matches_the_sum(fraction: float) -> None:
    sizes = np.array([1, 2, 3, 7, 20])
    got = estimators.inverse_population_size(sizes, fraction)
    for f, value in zip(sizes, got, strict=True):
        extra = np.arange(0, 400_000)
        pmf = stats.nbinom.pmf(extra, f, fraction)
        assert value == pytest.approx((pmf / (f + extra)).sum(), rel=1e-9)
    assert estimators.inverse_population_size(sizes, 1.0).tolist() == pytest.approx(1 / sizes)


def test_inverse_population_size_past_the_recurrence() -> None:
    big = np.array([estimators.RECURRENCE_CAP + 10])
    value = estimators.inverse_population_size(big, 0.2)[0]
    assert value == pytest.approx(0.2 / big[0], rel=1e-4)


def _crp(population: int, theta: float, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Class sizes of a Pitman–Yor (Chinese restaurant) process population. An existing table
    is picked ∝ (size − α) by picking a random earlier person's table ∝ size and keeping it
    with probability 1 − α/size."""
    sizes = [1]
    seat = [0]  # each person's table
    uniform = rng.random((population, 3))
    for n in range(1, population):
        u = uniform[n]
        if u[0] < (theta + alpha * len(sizes)) / (theta + n):
            sizes.append(1)
            seat.append(len(sizes) - 1)
            continue
        while True:
            table = seat[int(u[1] * n)]
            if u[2] < 1 - alpha / sizes[table]:
                break
            u = rng.random(3)
        sizes[table] += 1
        seat.append(table)
    return np.asarray(sizes)


def test_pitman_recovers_the_uniques_of_a_pitman_population() -> None:
    rng = np.random.default_rng(3)
    # built in chunks: the restaurant process is exchangeable, so the sizes depend only on
    # (θ, α); a cheaper equivalent for a large population: many independent restaurants
    population = np.concatenate([_crp(4_000, 40.0, 0.5, rng) for _ in range(40)])
    sample = rng.binomial(population, 0.05)
    sample = sample[sample > 0]
    truth = int((population == 1).sum())
    found = estimators.pitman(estimators.Histogram.of(sample), int(population.sum()))
    assert found.converged and found.uniques is not None
    assert found.uniques == pytest.approx(truth, rel=0.35)


def test_snb_recovers_the_uniques_of_a_negative_binomial_population() -> None:
    rng = np.random.default_rng(0)
    alpha, beta, classes = 0.8, 0.3, 60_000
    population = 1 + rng.negative_binomial(alpha, beta, classes)
    sample = rng.binomial(population, 0.3)
    hist = estimators.Histogram.of(sample[sample > 0])
    truth, size = int((population == 1).sum()), int(population.sum())
    known = estimators.snb(hist, size, classes=classes)  # the model itself, K given
    assert known.converged and known.uniques == pytest.approx(truth, rel=0.02)
    assert known.parameters["alpha"] == pytest.approx(alpha, rel=0.1)
    assert known.parameters["beta"] == pytest.approx(beta, rel=0.1)
    assert estimators.shlosser(hist, hist.rows / size) == pytest.approx(classes, rel=0.1)
    found = estimators.snb(hist, size)  # K estimated: the estimate's main error
    assert found.converged and found.uniques == pytest.approx(truth, rel=0.25)


def test_zayatz_by_hand_and_when_the_sample_is_everyone() -> None:
    hist = estimators.Histogram.of(np.array([1, 1, 1, 2, 3]))
    n, population = 8, 80
    once = stats.hypergeom.pmf(1, population, np.array([1, 2, 3]), n)
    expected = 3 * (3 * once[0] / (3 * once[0] + once[1] + once[2])) / (n / population)
    assert estimators.zayatz(hist, population).uniques == pytest.approx(expected)
    assert estimators.zayatz(hist, n).uniques == pytest.approx(3.0)


def test_estimators_that_cannot_fit_say_so_and_never_report_zero() -> None:
    all_unique = estimators.Histogram.of(np.ones(50, dtype=np.int64))
    pitman = estimators.pitman(all_unique, 10_000)
    assert not pitman.converged and pitman.uniques is None and "no maximum" in pitman.note
    snb = estimators.snb(estimators.Histogram.of(np.array([1, 1, 3, 4])), 100)
    assert not snb.converged and snb.uniques is None and "size 2" in snb.note
    none = estimators.population_uniqueness(all_unique, 10_000)
    assert none.chosen == "zayatz" and none.uniques is not None and none.uniques > 0
    no_uniques = estimators.population_uniqueness(estimators.Histogram.of(np.array([2, 3])),
                                                  100)
    assert no_uniques.uniques == 0.0 and "no sample uniques" in \
        no_uniques.estimates["pitman"].note


def test_dankar_rule_follows_the_sampling_fraction() -> None:
    rng = np.random.default_rng(11)
    population = 1 + rng.negative_binomial(0.8, 0.3, 20_000)
    low = rng.binomial(population, 0.05)
    high = rng.binomial(population, 0.4)
    small = estimators.population_uniqueness(estimators.Histogram.of(low[low > 0]),
                                             int(population.sum()))
    assert small.chosen in ("pitman", "zayatz")
    big = estimators.population_uniqueness(estimators.Histogram.of(high[high > 0]),
                                           int(population.sum()))
    values = {m: e.uniques for m, e in big.estimates.items()}
    assert big.chosen in ("snb", "zayatz")
    assert big.uniques == min(v for m, v in values.items() if m in ("snb", "zayatz") and v)


def test_reports_hold_counts_not_values() -> None:
    frame = pl.DataFrame({"town": ["Zanzibar", "Quxford", "Quxford"], "code": ["Q42", "Q42",
                                                                             "Z99"]})
    r = assess(frame, ["town"], ["code"])
    text = r.text() + json.dumps(r.to_json())
    for value in ("Zanzibar", "Quxford", "Q42", "Z99"):
        assert value not in text


def test_bad_input_is_refused_with_what_to_do() -> None:
    with pytest.raises(Invalid, match=r"'nope'.*not in the table"):
        assess(HAND, ["band", "nope"])
    with pytest.raises(Invalid, match="no rows"):
        assess(HAND.clear(), ["band"])
    with pytest.raises(Invalid, match="both quasi-identifier and sensitive"):
        assess(HAND, ["band"], ["band"])
    with pytest.raises(Invalid, match="at least one quasi-identifier"):
        assess(HAND, [])
    with pytest.raises(Invalid, match="several per cell"):
        assess(pl.DataFrame({"l": [[1], [2]]}), ["l"])
    with pytest.raises(Invalid, match="population"):
        SamplingFrame.of_population(10, 5)
    with pytest.raises(Invalid, match="sampling fraction"):
        SamplingFrame.of_fraction(10, 0.0)


# -- order does not matter --------------------------------------------------------------------

_cells = st.one_of(st.none(), st.integers(0, 3))
_rows = st.lists(st.tuples(_cells, st.sampled_from(["a", "b", None]), _cells,
                           st.sampled_from(["p", "q", "r", None]),
                           st.one_of(st.none(), st.floats(0, 3).map(round))),
                 min_size=1, max_size=40)


def _table(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"x": pl.Int64, "y": pl.String, "z": pl.Int64,
                                      "s": pl.String, "v": pl.Float64}, orient="row")


def _figures(frame: pl.DataFrame, fraction: float) -> dict[str, object]:
    r = assess(frame, ["x", "y", "z"], ["s", "v"],
               sampling=SamplingFrame.of_fraction(frame.height, fraction))
    out = r.to_json()
    out.pop("seconds")
    return out


@settings(max_examples=40, deadline=None)
@given(_rows, st.randoms(use_true_random=False), st.sampled_from([1.0, 0.05, 0.4]))
def test_shuffling_rows_changes_no_figure(rows: list[tuple[object, ...]], rnd: object,
                                          fraction: float) -> None:
    frame = _table(rows)
    order = list(range(frame.height))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    shuffled = frame[order]
    assert _figures(shuffled, fraction) == _figures(frame, fraction)
    assert _figures(frame.sort(["s", "v"], nulls_last=True), fraction) == \
        _figures(frame, fraction)
