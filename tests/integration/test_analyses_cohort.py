"""Analyses over dataset definitions built from a synthetic cohort, checked against Polars."""

from __future__ import annotations

import datetime as dt
from functools import partial

import polars as pl
import pytest

from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave.analyses.run import run as run_with
from strongroom.enclave.results import CellKind
from strongroom.enclave.steps import Rounding

run = partial(run_with, rounding=Rounding(b"a key for these figures only"))

CENSOR = dt.date(2023, 1, 1)


@pytest.fixture(scope="module")
def cohort() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per participant, one row per diagnosis), with pseudonyms as pid."""
    c = synthesise(3000, seed=11)
    people = c.participants.select(
        pid=pl.col("eid") + 3_000_000, sex="p31", born="p34", bmi="p21001_i0",
        recruited="p53_i0", eid="eid")
    deaths = c.events["deaths"].group_by("eid").agg(died=pl.col("date").min())
    people = people.join(deaths, on="eid", how="left").with_columns(
        days=(pl.coalesce("died", pl.lit(CENSOR)) - pl.col("recruited")).dt.total_days(),
        dead=pl.col("died").is_not_null().cast(pl.Int64))
    diagnoses = people.join(c.events["diagnoses"].select("eid", "code"), on="eid")
    diagnoses = diagnoses.with_columns(chapter=pl.col("code").str.slice(0, 1))
    return people.drop("eid"), diagnoses.drop("eid")


def test_a_crosstab_over_diagnoses_counts_people_not_rows(
        cohort: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, diagnoses = cohort
    result = run({"kind": "crosstab", "rows": "sex", "columns": "chapter",
                  "percentages": "column"}, diagnoses)
    expected = diagnoses.group_by("sex", "chapter").agg(rows=pl.len(),
                                                       people=pl.col("pid").n_unique())
    assert expected["rows"].sum() > expected["people"].sum()  # people have several diagnoses
    for sex, chapter, _rows, people in expected.iter_rows():
        found = [c for c in result.cells if c.kind == CellKind.COUNT
                 and c.row == (str(sex),) and c.column == chapter]
        assert len(found) == 1
        assert found[0].value == people == len(found[0].contributors)
    grand = next(c for c in result.cells if c.row == ("Total",) and c.column == "Total"
                 and c.kind == CellKind.COUNT)
    assert grand.value == diagnoses["pid"].n_unique() == len(grand.contributors)


def test_summary_matches_polars(cohort: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    people, _ = cohort
    result = run({"kind": "summary", "variables": ["bmi"], "quantiles": [0.9]}, people)
    by = {c.column: c for c in result.cells}
    bmi = people["bmi"].drop_nulls()
    assert by["n"].value == len(bmi)
    assert by["mean"].value == pytest.approx(bmi.mean())
    assert by["sd"].value == pytest.approx(bmi.std())
    median = by["median"].value
    assert median == pytest.approx(bmi.quantile(0.5, interpolation="linear"))
    assert by["median"].below == (bmi < median).sum()
    assert by["p90"].value == pytest.approx(bmi.quantile(0.9, interpolation="linear"))


def test_models_and_life_tables_run_on_the_cohort(
        cohort: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    people, _ = cohort
    ols = run({"kind": "ols", "outcome": "bmi", "covariates": ["born", "sex"],
               "categorical": ["sex"]}, people)
    assert ols.facts["n_obs"] == people["bmi"].drop_nulls().len()
    assert {"level:sex=0", "level:sex=1", "support:born", "support:bmi"} == set(ols.levels)
    km = run({"kind": "kaplan_meier", "time": "days", "event": "dead", "group": "sex"}, people)
    first = [c for c in km.cells if c.kind == CellKind.AT_RISK and c.row[1].startswith("[0,")]
    assert sum(c.value or 0 for c in first) == people.height
    assert sum(c.value or 0 for c in km.cells if c.kind == CellKind.EVENTS) == people["dead"].sum()
    cox = run({"kind": "cox", "time": "days", "event": "dead", "covariates": ["born", "sex"],
               "categorical": ["sex"]}, people)
    assert all(c.value is not None for c in cox.cells if c.kind == CellKind.HAZARD_RATIO)
    assert cox.facts["events"] == people["dead"].sum()
