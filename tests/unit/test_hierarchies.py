"""Generalisation hierarchies: each level as stated, each a coarsening of the one below."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth import synthesise
from strongroom.errors import Invalid
from strongroom.privacy import hierarchies as h


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return synthesise(3000, 23).participants


def _names(hierarchy: h.Hierarchy) -> list[str]:
    return [level.name for level in hierarchy.levels]


def _nested(hierarchy: h.Hierarchy, series: pl.Series) -> None:
    """Values sharing a label at one level share one at every level above; * is last."""
    labels = [hierarchy.apply(series, i) for i in range(hierarchy.height)]
    for lower, upper in itertools.pairwise(labels):
        pairs = pl.DataFrame({"lo": lower.cast(pl.String), "up": upper}).unique()
        assert pairs.group_by("lo").len()["len"].max() == 1, hierarchy.column
    assert labels[-1].unique().to_list() == [h.ANY]
    present = series.fill_nan(None) if series.dtype.is_float() else series
    for inner in labels[1:-1]:  # missing stays missing below *
        assert inner.is_null().to_list() == present.is_null().to_list()


def test_every_dictionary_hierarchy_nests(people: pl.DataFrame, dictionary: Dictionary
                                          ) -> None:
    columns = ["p31", "p34", "p52", "p53_i0", "p54_i0", "p21000_i0", "p189", "p21003_i0",
               "p709_i0", "p6138_i0_a0", "p20118", "p36_i0"]
    tree = h.build(people, columns, dictionary)
    sources = {c: tree.by_column[c].source for c in columns}
    assert sources == {"p31": "categories", "p34": "year of birth", "p52": "month",
                       "p53_i0": "date", "p54_i0": "assessment centre",
                       "p21000_i0": "ethnic background", "p189": "quintiles",
                       "p21003_i0": "numeric bands", "p709_i0": "numeric bands",
                       "p6138_i0_a0": "categories", "p20118": "categories",
                       "p36_i0": "categories"}
    for column in columns:
        _nested(tree.by_column[column], people[column])


def test_year_of_birth_month_and_dates() -> None:
    years = pl.Series("p34", [1937, 1950, 1954, 1955, None])
    yob = h.year_of_birth("p34")
    assert _names(yob) == ["year", "5-year band", "10-year band", "20-year band", "*"]
    assert yob.apply(years, 1).to_list() == ["1935–1939", "1950–1954", "1950–1954",
                                             "1955–1959", None]
    assert yob.apply(years, 3).to_list() == ["1920–1939", "1940–1959", "1940–1959",
                                             "1940–1959", None]
    months = pl.Series("p52", [1, 3, 4, 12])
    assert h.month("p52").apply(months, 1).to_list() == ["Q1", "Q1", "Q2", "Q4"]
    days = pl.Series("d", [dt.date(2008, 3, 14), dt.date(2009, 11, 2), None])
    when = h.dates("d")
    assert [when.apply(days, i).to_list() for i in (1, 2, 3)] == [
        ["2008-03", "2009-11", None], ["2008-Q1", "2009-Q4", None], ["2008", "2009", None]]


def test_icd10_codes_to_category_block_and_chapter(dictionary: Dictionary) -> None:
    codes = pl.Series("c", ["I210", "C50.9", "E119", "K00", "Z999", "S720", "T14", "U071",
                            None, "junk"])
    icd = h.icd10("c", dictionary)
    assert _names(icd) == ["code", "category", "block", "chapter", "*"]
    assert icd.apply(codes, 1).to_list()[:3] == ["I21", "C50", "E11"]
    assert icd.apply(codes, 2).to_list()[:4] == ["I20-I25", "C50-C50", "E10-E14", "K00-K14"]
    assert icd.apply(codes, 3).to_list() == [
        "Chapter IX", "Chapter II", "Chapter IV", "Chapter XI", "Chapter XXI", "Chapter XIX",
        "Chapter XIX", "Chapter XXII", None, "other"]
    without_blocks = h.icd10("c")
    assert _names(without_blocks) == ["code", "category", "chapter", "*"]
    _nested(icd, codes)


def test_townsend_quintiles_ethnicity_and_centres(people: pl.DataFrame,
                                                  dictionary: Dictionary) -> None:
    townsend = h.quintiles("p189", people["p189"])
    groups = townsend.apply(people["p189"], 1).drop_nulls().value_counts()
    shares = groups["count"].to_numpy() / groups["count"].sum()
    assert sorted(groups["p189"].to_list()) == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert np.all(np.abs(shares - 0.2) < 0.02)
    ethnic = h.ethnicity("e", dictionary)
    codes = pl.Series("e", [1001, 1003, 3002, 4001, 5, -3, None])
    assert ethnic.apply(codes, 1).to_list() == [
        "White", "White", "Asian or Asian British", "Black or Black British", "Chinese",
        "not stated", None]
    centres = pl.Series("c", [11003, 11005, 11010, 11022])
    assert h.centre("c", dictionary).apply(centres, 1).to_list() == [
        "Wales", "Scotland", "England", "Wales"]


def test_numeric_bands_are_round_and_nested() -> None:
    ages = pl.Series("age", np.arange(40, 71))
    bands = h.numeric_bands("age", ages, integer=True)
    assert _names(bands) == ["value", "bands of 2", "bands of 4", "bands of 8", "*"]
    _nested(bands, ages)
    fractions = pl.Series("x", [0.05, 0.1, 0.3, 0.31, 1.6, float("nan")])
    real = h.numeric_bands("x", fractions, integer=False)
    assert real.apply(fractions, 1).to_list() == ["[0.0, 0.1)", "[0.1, 0.2)", "[0.3, 0.4)",
                                                  "[0.3, 0.4)", "[1.6, 1.7)", None]
    _nested(real, fractions)
    constant = h.numeric_bands("k", pl.Series("k", [3, 3]), integer=True)
    assert _names(constant) == ["value", "*"]


def test_arx_style_tables_and_types(dictionary: Dictionary) -> None:
    table = h.Hierarchy.from_table("work", [["Private", "Non-Government", "*"],
                                            ["State-gov", "Government", "*"]])
    assert _names(table) == ["value", "level 1", "*"]
    assert table.apply(pl.Series("work", ["State-gov", "Private", "Other"]), 1).to_list() == [
        "Government", "Non-Government", "Other"]  # a value not in the table keeps its own
    with pytest.raises(Invalid, match="equal length"):
        h.Hierarchy.from_table("w", [["a", "b", "*"], ["c", "*"]])
    assert h.for_series("d", pl.Series("d", [dt.date(2020, 1, 1)])).source == "date"
    assert h.for_series("c", pl.Series("c", ["I21", "C509", "E11"])).source == "ICD-10"
    assert h.for_series("s", pl.Series("s", ["red", "blue"])).source == "categories"
    assert h.for_series("i", pl.Series("i", [1, 50])).source == "numeric bands"
    with pytest.raises(Invalid, match="levels 0–1"):
        h.categories("s").apply(pl.Series("s", ["a"]), 2)


def test_columns_of_one_field_move_together(people: pl.DataFrame,
                                            dictionary: Dictionary) -> None:
    columns = ["p4080_i0_a0", "p4080_i0_a1", "p31"]
    tree = h.build(people, columns, dictionary)
    assert tree.attributes() == ["field 4080", "field 31"]
    assert tree.columns_of("field 4080") == ["p4080_i0_a0", "p4080_i0_a1"]
    first, second = (tree.by_column[c] for c in columns[:2])
    assert first.levels[1:] == second.levels[1:]  # bands cut from the pooled values
    given = h.build(people, ["p31"], dictionary, overrides={"p31": h.categories("p31")})
    assert given.attributes() == ["p31"]
    with pytest.raises(Invalid, match="not in the table"):
        h.build(people, ["p99999"], dictionary)
