"""The synthetic cohort keeps the storage model's contract: schema, codes, precision, sexes."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from strongroom.cohort import model
from strongroom.cohort.dictionary import Dictionary, ValueType, shipped_dictionary
from strongroom.cohort.synth import CENSOR, STAGES, codes, synthesise
from strongroom.cohort.synth.draws import (
    age_weighted_dates,
    by_rank,
    days,
    intercept_for,
    sigmoid,
    whole_years_between,
    year_month_day,
)

N = 6_000
SEED = 20260421
CENSOR_DATE = date(2022, 10, 31)
GENERATED_TABLES = ("diagnoses", "operations", "deaths", "cancers")


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture(scope="module")
def cohort(dictionary: Dictionary) -> model.Cohort:
    return synthesise(N, SEED, dictionary)


def participant_fields(d: Dictionary) -> list:
    return [f for f in d if model.event_table_of(f.field_id) is None]


def slots(frame: pl.DataFrame, fld, d: Dictionary) -> pl.Series:
    """All instance-0 array slots of a field, stacked, without nulls."""
    names = [model.column_name(fld, 0, a) for a in range(fld.arrays)]
    return pl.concat([frame[name] for name in names]).drop_nulls()


# -- schema ------------------------------------------------------------------------------


def test_participant_columns_and_types_follow_the_model(cohort, dictionary):
    expected = {model.EID: pl.Int64()}
    for fld in participant_fields(dictionary):
        for a in range(fld.arrays):
            expected[model.column_name(fld, 0, a)] = model.storage_dtype(fld, dictionary)
    assert dict(cohort.participants.schema) == expected
    assert cohort.participants.height == N


def test_event_tables_follow_the_model(cohort, dictionary):
    assert set(cohort.events) == set(GENERATED_TABLES)
    for name in GENERATED_TABLES:
        schema = model.event_schema(model.event_table(name), dictionary)
        assert dict(cohort.events[name].schema) == schema, name
        assert cohort.events[name].height > 0


def test_eids_are_unique_seven_digit_and_sorted(cohort):
    eid = cohort.participants[model.EID]
    assert eid.null_count() == 0
    assert eid.n_unique() == N
    assert eid.min() >= 1_000_000
    assert eid.max() <= 9_999_999
    assert eid.is_sorted()


def test_event_rows_are_sorted_by_eid_then_index_and_belong_to_participants(cohort):
    eids = cohort.participants[model.EID]
    for name in GENERATED_TABLES:
        frame = cohort.events[name]
        index = "array_index" if "array_index" in frame.columns else "instance"
        assert frame.equals(frame.sort([model.EID, index])), name
        assert frame.select(pl.struct(model.EID, index).is_unique().all()).item(), name
        assert frame[model.EID].is_in(eids.implode()).all(), name
        first = frame.group_by(model.EID).agg(pl.col(index).min())
        assert (first[index] == 0).all(), name


def test_array_indices_are_dense_and_within_the_field(cohort, dictionary):
    for name, field_id in (("diagnoses", 41270), ("operations", 41272)):
        frame = cohort.events[name]
        per = frame.group_by(model.EID).agg(
            pl.col("array_index").max().alias("top"), pl.len().alias("count")
        )
        assert (per["top"] == per["count"] - 1).all()
        assert per["top"].max() < dictionary.field(field_id).arrays


# -- determinism -----------------------------------------------------------------------


def test_same_seed_gives_identical_frames(dictionary):
    a = synthesise(1_500, 7, dictionary)
    b = synthesise(1_500, 7, dictionary)
    assert a.participants.equals(b.participants)
    assert set(a.events) == set(b.events)
    for name in a.events:
        assert a.events[name].equals(b.events[name]), name


def test_without_hospital_records_every_other_table_is_the_same(dictionary):
    """What decoys draw (participants, and the cancers and deaths that exclude the ill)."""
    full = synthesise(1_500, 7, dictionary)
    lean = synthesise(1_500, 7, dictionary, hospital=False)
    assert lean.participants.equals(full.participants)
    assert set(lean.events) == set(full.events)
    for name in ("cancers", "deaths"):
        assert lean.events[name].equals(full.events[name]), name
    for name in ("diagnoses", "operations"):
        assert full.events[name].height and not lean.events[name].height, name
        assert lean.events[name].schema == full.events[name].schema, name


def test_different_seeds_differ(dictionary):
    a = synthesise(1_500, 7, dictionary)
    b = synthesise(1_500, 8, dictionary)
    assert not a.participants.equals(b.participants)
    assert not a.events["diagnoses"].equals(b.events["diagnoses"])


# -- codes -----------------------------------------------------------------------------


def _allowed(d: Dictionary, coding_id: int) -> set[str]:
    coding = d.codings[coding_id]
    missing = set(coding.missing_codes)
    return set(coding.selectable or coding.codes) | missing


def test_every_categorical_value_is_a_code_of_its_coding(cohort, dictionary):
    checked = 0
    for fld in participant_fields(dictionary):
        coding = dictionary.coding_of(fld)
        if coding is None:
            continue
        values = slots(cohort.participants, fld, dictionary).cast(pl.String).unique().to_list()
        if fld.is_categorical:
            allowed = _allowed(dictionary, fld.coding_id)
            assert set(values) <= allowed, (fld.field_id, set(values) - allowed)
        else:  # integer fields whose coding lists only their answer codes (-1, -3 …)
            negatives = {v for v in values if int(v) < 0}
            assert negatives <= set(coding.codes), (fld.field_id, negatives)
        checked += 1
    assert checked >= 20


def test_event_codes_exist_in_their_codings(cohort, dictionary):
    e = cohort.events
    icd = set(dictionary.codings[19].selectable)
    opcs = set(dictionary.codings[240].selectable)
    assert set(e["diagnoses"]["code"].unique()) <= icd
    assert set(e["operations"]["code"].unique()) <= opcs
    assert set(e["deaths"]["cause"].drop_nulls().unique()) <= icd
    assert set(e["cancers"]["code"].drop_nulls().unique()) <= icd
    histology = {int(c) for c in _allowed(dictionary, 38)}
    behaviour = {int(c) for c in _allowed(dictionary, 39)}
    assert set(e["cancers"]["histology"].drop_nulls().unique()) <= histology
    assert set(e["cancers"]["behaviour"].drop_nulls().unique()) <= behaviour


def test_cancer_codes_are_neoplasms(cohort):
    codes_seen = cohort.events["cancers"]["code"].drop_nulls()
    assert codes_seen.str.contains(r"^(C|D[0-4])").all()


def test_curated_tables_use_only_existing_codes(dictionary):
    icd, opcs = dictionary.codings[19], dictionary.codings[240]
    histology, illness = dictionary.codings[38], dictionary.codings[6]

    def leaf(coding, code: str) -> bool:
        return code in coding.codes and (not coding.selectable or code in coding.selectable)

    bad: list[tuple[str, str]] = []
    for cond in codes.CONDITIONS:
        bad += [(cond.name, c) for c, _ in cond.icd10 + cond.also + cond.later if not leaf(icd, c)]
        bad += [(cond.name, c) for b, _ in cond.ops for c in b if not leaf(opcs, c)]
    for theme in codes.THEMES:
        bad += [(theme.name, c) for c, _ in theme.primary + theme.secondary if not leaf(icd, c)]
        bad += [(theme.name, c) for b, _ in theme.ops for c in b if not leaf(opcs, c)]
    for site in codes.CANCER_SITES:
        bad += [(site.name, c) for c, _ in site.icd10 if not leaf(icd, c)]
        bad += [(site.name, site.history)] if not leaf(icd, site.history) else []
        bad += [(site.name, str(h)) for h, _ in site.histology if not leaf(histology, str(h))]
        bad += [(site.name, c) for b, _ in site.ops for c in b if not leaf(opcs, c)]
    for cause in codes.DEATH_CAUSES:
        bad += [(cause.name, c) for c, _ in cause.icd10 if not leaf(icd, c)]
    bad += [("background", c) for c, _ in codes.BACKGROUND if not leaf(icd, c)]
    bad += [("ops background", c) for c, _ in codes.OPS_BACKGROUND if not leaf(opcs, c)]
    bad += [("secondaries", c) for c, _ in codes.CANCER_SECONDARIES if not leaf(icd, c)]
    bad += [("covid", codes.COVID_DEATH)] if not leaf(icd, codes.COVID_DEATH) else []
    for code, *_ in codes.SELF_REPORT_LINKED + codes.SELF_REPORT_OTHER:
        bad += [("20002", str(code))] if not leaf(illness, str(code)) else []
    assert bad == []


def test_condition_risks_name_known_factors():
    known = {
        "age10", "male", "female", "bmi5", "current", "former", "packs10", "alcohol",
        "activity", "tdi", "south_asian", "black", "diabetes", "hypertension", "statin",
        "sbp20", "ldl", "hba1c10", "creat", "fev_low",
    }  # fmt: skip
    known |= {f"father_{name}" for name in ("heart", "stroke", "diabetes", "bowel_cancer",
                                            "lung_cancer")}  # fmt: skip
    for cond in codes.CONDITIONS:
        assert set(cond.risk) <= known, (cond.name, set(cond.risk) - known)
        known.add(cond.name)  # later conditions may depend on earlier ones


# -- values ----------------------------------------------------------------------------


def test_values_respect_recorded_precision(cohort, dictionary):
    for fld in participant_fields(dictionary):
        if fld.value_type != ValueType.CONTINUOUS or fld.precision is None:
            continue
        x = slots(cohort.participants, fld, dictionary).to_numpy()
        scaled = x * 10**fld.precision
        assert np.allclose(scaled, np.round(scaled), atol=1e-6), fld.field_id
    for name in ("deaths", "cancers"):
        ages = cohort.events[name]["age"].drop_nulls().to_numpy()
        assert np.allclose(ages * 10, np.round(ages * 10), atol=1e-6)


def test_bmi_is_weight_over_height_squared(cohort):
    p = cohort.participants.drop_nulls(["p21001_i0", "p21002_i0", "p50_i0"])
    recomputed = (p["p21002_i0"] / (p["p50_i0"] / 100) ** 2).round(4)
    assert (recomputed - p["p21001_i0"]).abs().max() < 1e-9
    assert p.height > 0.99 * N * 0.99
    nulls = cohort.participants.filter(pl.col("p21001_i0").is_null())
    assert (nulls["p21002_i0"].is_null() | nulls["p50_i0"].is_null()).all()


@pytest.mark.parametrize(
    ("column", "low", "high"),
    [
        ("p34", 1934, 1971),
        ("p21003_i0", 37, 73),
        ("p50_i0", 120, 215),
        ("p21002_i0", 30, 250),
        ("p21001_i0", 12, 75),
        ("p4080_i0_a0", 70, 270),
        ("p4079_i0_a0", 30, 150),
        ("p102_i0_a0", 30, 180),
        ("p30750_i0", 15, 180),
        ("p30760_i0", 0.2, 5),
        ("p30870_i0", 0.2, 15),
        ("p30710_i0", 0.08, 100),
        ("p3062_i0_a0", 0.3, 9),
        ("p20023_i0", 150, 2000),
        ("p189", -6.3, 11.0),
    ],
)
def test_values_are_plausible(cohort, column, low, high):
    x = cohort.participants[column].drop_nulls()
    assert x.len() > 0
    assert low <= x.min() and x.max() <= high, (column, x.min(), x.max())


def test_age_agrees_with_birth_and_attendance(cohort):
    p = cohort.participants
    attended = p["p53_i0"]
    years = attended.dt.year() - p["p34"]
    age = p["p21003_i0"]
    # UKB releases year and month of birth only: age is the birthday count, so it is one of two.
    assert ((age == years) | (age == years - 1)).all()
    same_month_later = (attended.dt.month() > p["p52"]) & (age != years)
    assert not same_month_later.any()
    assert attended.min() >= date(2006, 1, 1)
    assert attended.max() <= date(2010, 12, 31)
    assert (attended.dt.weekday() != 7).all()  # centres were shut on Sundays


def test_pilot_centre_alone_recruited_in_2006(cohort):
    p = cohort.participants
    in_2006 = p.filter(pl.col("p53_i0").dt.year() == 2006)
    assert (in_2006["p54_i0"] == 10003).all()
    assert set(p["p54_i0"].unique()) <= {10003, *range(11001, 11024)}


def test_sex_specific_fields_only_for_that_sex(cohort, dictionary):
    p = cohort.participants
    for fld in participant_fields(dictionary):
        if fld.sexed not in ("Female", "Male"):
            continue
        other = 1 if fld.sexed == "Female" else 0  # coding 9: 0 female, 1 male
        columns = [model.column_name(fld, 0, a) for a in range(fld.arrays)]
        wrong = p.filter(pl.col("p31") == other).select(columns)
        assert wrong.null_count().sum_horizontal().item() == wrong.height * len(columns)
        right = p.filter(pl.col("p31") != other)[columns[0]]
        assert right.null_count() < 0.05 * right.len()


def test_sex_specific_diagnoses_and_cancers(cohort):
    sex = cohort.participants.select(model.EID, "p31")
    for name in ("diagnoses", "cancers"):
        frame = cohort.events[name].join(sex, on=model.EID).drop_nulls("code")
        men = frame.filter(pl.col("p31") == 1)["code"]
        women = frame.filter(pl.col("p31") == 0)["code"]
        assert not men.str.contains(r"^(C5[1-8]|D06|D25|N8|N9[0-5]|O)").any(), name
        assert not women.str.contains(r"^(C6[0-3]|N4[0-9]|N5[01])").any(), name


def test_pack_years_only_for_ever_smokers(cohort):
    p = cohort.participants
    with_packs = p.filter(pl.col("p20161_i0").is_not_null())
    assert with_packs["p20116_i0"].is_in([1, 2]).all()


def test_multi_answer_codes_stand_alone(cohort, dictionary):
    """A "none of the above" or "prefer not to answer" fills slot 0 and nothing else."""
    p = cohort.participants
    for field_id in (6138, 6150, 6153, 6177):
        fld = dictionary.field(field_id)
        a0, a1 = model.column_name(fld, 0, 0), model.column_name(fld, 0, 1)
        special = p.filter(pl.col(a0) < 0)
        assert special.height > 0, field_id
        assert special[a1].is_null().all(), field_id
        ticked = p.filter(pl.col(a0) > 0)
        assert (ticked[a1].is_null() | (ticked[a1] > ticked[a0])).all(), field_id


def test_event_dates_are_after_birth_and_not_after_the_censor_date(cohort):
    birth_year = cohort.participants.select(model.EID, "p34", "p53_i0")
    for name in GENERATED_TABLES:
        frame = cohort.events[name].join(birth_year, on=model.EID)
        assert (frame["date"].dt.year() >= frame["p34"]).all(), name
        assert frame["date"].max() <= CENSOR_DATE, name
    deaths = cohort.events["deaths"].join(birth_year, on=model.EID)
    assert (deaths["date"] > deaths["p53_i0"]).all()
    assert deaths[model.EID].is_unique().all()


def test_no_events_after_death(cohort):
    death = cohort.events["deaths"].select(model.EID, pl.col("date").alias("died"))
    for name in ("diagnoses", "operations", "cancers"):
        late = cohort.events[name].join(death, on=model.EID).filter(pl.col("date") > pl.col("died"))
        assert late.height == 0, name


def test_censor_constant_is_the_documented_date():
    assert date(1970, 1, 1).toordinal() + CENSOR == CENSOR_DATE.toordinal()


# -- API -------------------------------------------------------------------------------


def test_progress_advances_sum_to_one_hundred(dictionary):
    calls: list[tuple[str, int]] = []
    synthesise(500, 1, dictionary, progress=lambda stage, advance: calls.append((stage, advance)))
    assert sum(advance for _, advance in calls) == 100
    assert all(advance > 0 for _, advance in calls)
    assert [stage for stage, _ in calls if stage != "tables"] == [
        s for s in STAGES if s != "tables"
    ]


def test_a_smaller_dictionary_gives_only_its_columns(dictionary):
    small = dictionary.subset([31, 34, 50, 21001, 4080, 41270, 41280, 40000, 40001, 40007])
    cohort = synthesise(400, 3, small)
    assert cohort.participants.columns == [
        model.EID, "p31", "p34", "p50_i0", "p4080_i0_a0", "p4080_i0_a1", "p21001_i0",
    ]  # fmt: skip
    assert set(cohort.events) == {"diagnoses", "deaths"}
    assert cohort.events["deaths"].columns == [model.EID, "instance", "date", "cause", "age"]


@pytest.mark.parametrize("n", [1, 2, 17])
def test_tiny_cohorts_keep_the_contract(dictionary, n):
    for seed in range(3):
        cohort = synthesise(n, seed, dictionary)
        assert cohort.participants.height == n
        for name in GENERATED_TABLES:
            schema = model.event_schema(model.event_table(name), dictionary)
            assert dict(cohort.events[name].schema) == schema


def test_refuses_an_empty_cohort():
    with pytest.raises(ValueError, match="at least one participant"):
        synthesise(0, 1)


# -- helpers ---------------------------------------------------------------------------


def test_by_rank_gives_exact_shares_in_score_order():
    score = np.arange(1_000, dtype=np.float64)[::-1]
    cats = by_rank(score, (0.2, 0.3, 0.5))
    assert np.bincount(cats).tolist() == [200, 300, 500]
    assert cats[0] == 2 and cats[-1] == 0


def test_intercept_for_hits_the_target_share():
    score = np.random.default_rng(1).normal(0, 2, 200_000)
    a = intercept_for(score, 0.063)
    # calibrated on a 100,000-row subsample: good to a tenth of a percentage point
    assert math.isclose(float(sigmoid(a + score).mean()), 0.063, abs_tol=1e-3)


def test_dates_round_trip_and_ages_count_birthdays():
    d = days(np.array([1951, 2000, 1970]), np.array([2, 2, 1]), np.array([28, 29, 1]))
    y, m, dd = year_month_day(d)
    assert (y.tolist(), m.tolist(), dd.tolist()) == ([1951, 2000, 1970], [2, 2, 1], [28, 29, 1])
    birth = days(np.array([1950]), np.array([6]), np.array([15]))
    on = days(np.array([2008, 2008]), np.array([6, 6]), np.array([14, 15]))
    assert whole_years_between(np.repeat(birth, 2), on).tolist() == [57, 58]


def test_age_weighted_dates_stay_in_range_and_lean_late():
    rng = np.random.default_rng(5)
    start = np.zeros(50_000, dtype=np.int64)
    end = np.full(50_000, 3652, dtype=np.int64)
    late = age_weighted_dates(rng, start, end, 0.3)
    flat = age_weighted_dates(rng, start, end, 0.0)
    assert late.min() >= 0 and late.max() <= 3652
    assert late.mean() > flat.mean() + 300
