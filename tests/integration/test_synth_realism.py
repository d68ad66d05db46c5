"""The synthetic cohort behaves like UK Biobank: marginals, dependencies, events and gaps."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from strongroom.cohort import model
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.synth import synthesise

N = 50_000
MEASURED = (
    48, 49, 50, 102, 189, 3062, 3063, 4079, 4080, 20023, 20161, 21001, 21002, 23099,
    30000, 30020, 30690, 30700, 30710, 30740, 30750, 30760, 30780, 30870,
)  # fmt: skip
# Integer answers whose distributions were tuned to the Showcase mean and SD.
COUNTED = (709, 884, 1160, 1289)


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture(scope="module")
def cohort(dictionary: Dictionary) -> model.Cohort:
    return synthesise(N, 1234, dictionary)


@pytest.fixture(scope="module")
def people(cohort: model.Cohort) -> pl.DataFrame:
    return cohort.participants


def values(people: pl.DataFrame, d: Dictionary, field_id: int) -> pl.Series:
    fld = d.field(field_id)
    series = pl.concat(
        [people[model.column_name(fld, 0, a)].cast(pl.Float64) for a in range(fld.arrays)]
    ).drop_nulls()
    return series.filter(series >= 0) if field_id in COUNTED else series


def corr(people: pl.DataFrame, a: str, b: str) -> float:
    return float(people.select(pl.corr(a, b)).item())


@pytest.mark.parametrize("field_id", MEASURED + COUNTED)
def test_mean_and_sd_match_the_showcase(people, dictionary, field_id):
    fld = dictionary.field(field_id)
    x = values(people, dictionary, field_id)
    assert fld.mean is not None and fld.sd is not None
    assert abs(x.mean() - fld.mean) < 0.05 * fld.sd + 0.01 * abs(fld.mean), field_id
    assert abs(x.std() / fld.sd - 1) < 0.06, field_id


def test_birth_year_matches_the_showcase(people, dictionary):
    fld = dictionary.field(34)
    assert abs(people["p34"].mean() - fld.mean) < 0.3
    assert abs(people["p34"].std() - fld.sd) < 0.3
    assert abs(people["p21003_i0"].mean() - 56.5) < 0.5  # UKB's baseline age


def test_missingness_follows_the_dictionary(people, dictionary):
    for fld in dictionary:
        if model.event_table_of(fld.field_id) is not None or not fld.participants:
            continue
        observed = people[model.column_name(fld, 0, 0)].null_count() / N
        expected = max(0.0, 1 - fld.participants / dictionary.cohort_size)
        assert abs(observed - expected) < 0.015, (fld.field_id, observed, expected)


def test_blood_assays_go_missing_together(people):
    no_blood = people.filter(pl.col("p30690_i0").is_null())
    assert no_blood["p30750_i0"].is_null().mean() > 0.8


def test_sex_ratio_and_smoking_shares(people):
    assert abs((people["p31"] == 0).mean() - 0.544) < 0.01
    smoking = people["p20116_i0"].drop_nulls()
    assert abs((smoking == 0).mean() - 0.547) < 0.02
    assert abs((smoking == 1).mean() - 0.345) < 0.02
    assert abs((smoking == 2).mean() - 0.104) < 0.015


def test_blood_pressure_readings_agree_and_rise_with_age_and_bmi(people):
    assert corr(people, "p4080_i0_a0", "p4080_i0_a1") > 0.8
    assert corr(people, "p4079_i0_a0", "p4079_i0_a1") > 0.75
    assert corr(people, "p4080_i0_a0", "p21003_i0") > 0.15
    assert corr(people, "p4080_i0_a0", "p21001_i0") > 0.1
    assert 0.3 < corr(people, "p4080_i0_a0", "p4079_i0_a0") < 0.8
    # first reading runs higher than the second
    assert (people["p4080_i0_a0"] - people["p4080_i0_a1"]).mean() > 1


def test_body_size_is_coherent(people):
    assert corr(people, "p50_i0", "p21002_i0") > 0.4
    assert corr(people, "p48_i0", "p21001_i0") > 0.7
    by_sex = people.group_by("p31").agg(pl.mean("p23099_i0"), pl.mean("p50_i0")).sort("p31")
    women, men = by_sex.row(0, named=True), by_sex.row(1, named=True)
    assert women["p23099_i0"] > men["p23099_i0"] + 7
    assert men["p50_i0"] > women["p50_i0"] + 10


def test_lipids_depend_on_sex_and_bmi(people):
    by_sex = people.group_by("p31").agg(pl.mean("p30760_i0"), pl.mean("p30700_i0")).sort("p31")
    women, men = by_sex.row(0, named=True), by_sex.row(1, named=True)
    assert women["p30760_i0"] > men["p30760_i0"] + 0.2  # HDL
    assert men["p30700_i0"] > women["p30700_i0"] + 10  # creatinine
    assert corr(people, "p30760_i0", "p21001_i0") < -0.2
    assert corr(people, "p30690_i0", "p30780_i0") > 0.8
    assert corr(people, "p30870_i0", "p30760_i0") < -0.2
    triglycerides = people["p30870_i0"].drop_nulls()
    assert triglycerides.mean() > triglycerides.median()  # right-skewed


def test_diabetics_have_far_higher_hba1c(people):
    diab = people.filter(pl.col("p2443_i0") == 1)
    others = people.filter(pl.col("p2443_i0") == 0)
    assert 0.04 < diab.height / N < 0.065
    assert diab["p30750_i0"].mean() > others["p30750_i0"].mean() + 12
    assert diab["p30740_i0"].mean() > others["p30740_i0"].mean() + 2


def test_lungs_decline_with_age_and_smoking(people):
    assert corr(people, "p3062_i0_a0", "p21003_i0") < -0.15
    assert corr(people, "p3062_i0_a0", "p50_i0") > 0.4
    ratio = people.select(
        (pl.col("p3063_i0_a0") / pl.col("p3062_i0_a0")).alias("ratio"), "p20116_i0"
    ).drop_nulls()
    by_smoking = ratio.group_by("p20116_i0").agg(pl.mean("ratio"))
    means = dict(zip(by_smoking["p20116_i0"], by_smoking["ratio"], strict=True))
    assert means[2] < means[0] - 0.02


def test_self_reports_agree_with_measures(people):
    high_bp = people.filter(pl.any_horizontal(pl.col(f"p6150_i0_a{a}") == 4 for a in range(4)))
    assert 0.22 < high_bp.height / N < 0.33
    assert high_bp["p4080_i0_a0"].mean() > people["p4080_i0_a0"].mean() + 5
    worse = people.group_by("p2178_i0").agg(pl.mean("p189"), pl.mean("p21001_i0")).sort("p2178_i0")
    excellent = worse.filter(pl.col("p2178_i0") == 1).row(0, named=True)
    poor = worse.filter(pl.col("p2178_i0") == 4).row(0, named=True)
    assert poor["p189"] > excellent["p189"] + 1
    assert poor["p21001_i0"] > excellent["p21001_i0"] + 1


def test_most_people_have_hospital_records_with_realistic_codes(cohort):
    diagnoses = cohort.events["diagnoses"]
    share = diagnoses[model.EID].n_unique() / N
    assert 0.79 < share < 0.85
    per_person = diagnoses.height / diagnoses[model.EID].n_unique()
    assert 7 < per_person < 13
    counts = diagnoses.group_by(model.EID).len()["len"]
    assert counts.var() > 2 * counts.mean()  # over-dispersed
    top = diagnoses.group_by("code").len().sort("len", descending=True)
    assert top["code"][0] == "I10"
    assert diagnoses["code"].n_unique() > 500
    common = set(top["code"].head(60))
    assert {"I10", "K573", "I251", "E785", "K219"} <= common


def test_older_smokers_and_diabetics_have_more_records(cohort, people):
    counts = cohort.events["diagnoses"].group_by(model.EID).len()
    joined = (
        people.select(model.EID, "p21003_i0", "p20116_i0", "p2443_i0")
        .join(counts, on=model.EID, how="left")
        .with_columns(pl.col("len").fill_null(0))
    )
    older = joined.filter(pl.col("p21003_i0") >= 60)["len"].mean()
    younger = joined.filter(pl.col("p21003_i0") < 50)["len"].mean()
    assert older > younger * 1.3
    smokers = joined.filter(pl.col("p20116_i0") == 2)["len"].mean()
    never = joined.filter(pl.col("p20116_i0") == 0)["len"].mean()
    assert smokers > never
    diabetic = joined.filter(pl.col("p2443_i0") == 1)["len"].mean()
    assert diabetic > joined["len"].mean() * 1.3


def test_comorbidities_cluster(cohort, people):
    diagnoses = cohort.events["diagnoses"]
    has = diagnoses.group_by(model.EID).agg(
        pl.col("code").is_in(["I10"]).any().alias("ht"),
        pl.col("code").str.starts_with("E11").any().alias("t2d"),
        pl.col("code").str.starts_with("I25").any().alias("ihd"),
    )
    p_ihd_given_t2d = has.filter(pl.col("t2d"))["ihd"].mean()
    p_ihd_given_no_t2d = has.filter(~pl.col("t2d"))["ihd"].mean()
    assert p_ihd_given_t2d > 1.5 * p_ihd_given_no_t2d
    assert has.filter(pl.col("t2d"))["ht"].mean() > has["ht"].mean() * 1.3
    diabetics = people.filter(pl.col("p2443_i0") == 1).select(model.EID)
    coded = has.join(diabetics, on=model.EID)["t2d"].mean()
    assert coded > 0.5


def test_operations_follow_their_diagnoses(cohort):
    ops = cohort.events["operations"]
    diagnoses = cohort.events["diagnoses"]
    assert 0.75 < ops[model.EID].n_unique() / N < 0.86
    cataract_ops = ops.filter(pl.col("code") == "C751").select(model.EID).unique()
    cataract = diagnoses.filter(pl.col("code").str.contains("^H2[56]")).select(model.EID)
    assert cataract_ops.join(cataract, on=model.EID, how="semi").height > 0.9 * cataract_ops.height
    hips = ops.filter(pl.col("code").is_in(["W371", "W381", "W391", "W931"])).select(model.EID)
    hip_oa = diagnoses.filter(pl.col("code").str.starts_with("M16")).select(model.EID)
    assert hips.join(hip_oa, on=model.EID, how="semi").height > 0.9 * hips.height


def test_deaths_are_six_percent_with_linked_causes(cohort):
    deaths = cohort.events["deaths"]
    assert 0.045 < deaths.height / N < 0.075
    assert 60 < deaths["age"].mean() < 72
    records = pl.concat(
        [
            cohort.events["diagnoses"].select(model.EID, pl.col("code").str.slice(0, 3)),
            cohort.events["cancers"].select(model.EID, pl.col("code").str.slice(0, 3)),
        ]
    ).drop_nulls()
    linked = deaths.select(model.EID, pl.col("cause").str.slice(0, 3).alias("code")).join(
        records, on=[model.EID, "code"], how="semi"
    )
    assert linked.height > 0.8 * deaths.height
    cancer_deaths = deaths["cause"].str.contains("^C").mean()
    assert 0.3 < cancer_deaths < 0.6


def test_smokers_and_men_die_more(cohort, people):
    dead = cohort.events["deaths"].select(model.EID).with_columns(pl.lit(True).alias("dead"))
    joined = people.select(model.EID, "p31", "p20116_i0").join(dead, on=model.EID, how="left")
    joined = joined.with_columns(pl.col("dead").fill_null(False))
    rate = joined.group_by("p20116_i0").agg(pl.mean("dead"))
    rates = dict(zip(rate["p20116_i0"], rate["dead"], strict=True))
    assert rates[2] > 1.5 * rates[0]
    by_sex = joined.group_by("p31").agg(pl.mean("dead")).sort("p31")["dead"]
    assert by_sex[1] > 1.2 * by_sex[0]


def test_cancer_registry_has_ukb_shape(cohort, dictionary):
    cancers = cohort.events["cancers"]
    people_share = cancers[model.EID].n_unique() / N
    expected = dictionary.field(40005).participants / dictionary.cohort_size
    assert abs(people_share - expected) < 0.02
    assert 1.15 < cancers.height / cancers[model.EID].n_unique() < 1.5
    assert 52 < cancers["age"].mean() < 63
    assert cancers["code"].drop_nulls().str.starts_with("C44").mean() > 0.15
    assert cancers.filter(pl.col("code").is_null())["date"].max() < date(1997, 1, 1)
    in_situ = cancers.filter(pl.col("code").str.starts_with("D0"))
    assert (in_situ["behaviour"].drop_nulls() == 2).all()


def test_hospital_cancers_match_the_registry(cohort):
    malignant_not_skin = pl.col("code").str.contains("^C(?:[0-3]|[5-9]|4[0-3])")
    recent = cohort.events["cancers"].filter(
        (pl.col("date") >= date(2000, 1, 1)) & malignant_not_skin
    )
    seen = recent.join(cohort.events["diagnoses"], on=[model.EID, "code"], how="semi")
    assert seen.height > 0.75 * recent.height


def test_event_dates_lie_between_birth_and_the_censor_date(cohort, people):
    births = people.select(model.EID, "p34")
    for name in ("diagnoses", "operations", "deaths", "cancers"):
        frame = cohort.events[name].join(births, on=model.EID)
        assert (frame["date"].dt.year() >= frame["p34"]).all(), name
        assert frame["date"].max() <= date(2022, 10, 31), name
    hospital = cohort.events["diagnoses"]["date"]
    assert (hospital >= date(1997, 1, 1)).mean() > 0.95
    by_year = cohort.events["diagnoses"].group_by(pl.col("date").dt.year()).len().sort("date")
    assert (
        by_year.filter(pl.col("date") == 2019)["len"].item()
        > 1.5 * by_year.filter(pl.col("date") == 2000)["len"].item()
    )
