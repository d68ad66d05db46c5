"""Dummy data has exactly the project's schema, so code written on it runs on the real view."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.model import Cohort
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave import definitions
from strongroom.enclave.dummy import dummy_tables, dummy_zip
from strongroom.enclave.engine import Limits
from strongroom.enclave.view import ProjectSchema, project_view, schema_of
from strongroom.errors import Invalid

GRANTS = [
    (31, 34, 21001),  # participant fields only
    (31, 54, 41270, 41280),  # diagnoses with codes and dates
    (34, 40000, 40001, 40005, 40006, 40008),  # deaths and part of the cancer registry
    (31, 41272),  # operations: codes without dates
    (20002, 6150, 4080, 53),  # array fields and instanced dates
]


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture(scope="module")
def real(dictionary: Dictionary) -> tuple[Cohort, pl.DataFrame]:
    """The stand-in for the custodian's cohort, with its project pseudonyms."""
    cohort = synthesise(400, 21, dictionary)
    rng = np.random.default_rng(9)
    pids = 1_000_000 + rng.choice(9_000_000, size=cohort.n_participants, replace=False)
    return cohort, pl.DataFrame({"eid": cohort.participants["eid"], "pid": pids})


def real_view(real: tuple[Cohort, pl.DataFrame], grant: tuple[int, ...],
              dictionary: Dictionary) -> dict[str, pl.DataFrame]:
    return project_view(real[0], real[1], grant, dictionary)


@pytest.mark.parametrize("grant", GRANTS)
def test_dummy_schema_is_exactly_the_real_views(
    real: tuple[Cohort, pl.DataFrame], dictionary: Dictionary, grant: tuple[int, ...]
) -> None:
    view = real_view(real, grant, dictionary)
    schema = schema_of(view)
    dummy = dummy_tables(schema, dictionary, n=150, seed=1)
    assert schema_of(dummy) == schema
    assert list(dummy) == list(view)
    for name, frame in dummy.items():
        assert frame.schema == view[name].schema  # Polars types too, not only DuckDB names
    assert dummy["participants"].height == 150
    assert "eid" not in {c for frame in dummy.values() for c in frame.columns}


def test_dummy_values_are_realistic_and_not_the_real_ones(
    real: tuple[Cohort, pl.DataFrame], dictionary: Dictionary
) -> None:
    view = real_view(real, (31, 34, 21001, 41270, 41280), dictionary)
    dummy = dummy_tables(schema_of(view), dictionary, n=300, seed=2)
    people = dummy["participants"]
    assert people["pid"].is_unique().all()
    assert people["pid"].min() >= 1_000_000 and people["pid"].max() <= 9_999_999
    assert not people["pid"].is_in(view["participants"]["pid"].implode()).any()
    assert set(people["p31"].drop_nulls()) <= {0, 1}
    assert 20 < people["p21001_i0"].mean() < 32  # BMI-like, not noise
    assert dummy["diagnoses"].height > 0
    assert dummy["diagnoses"]["pid"].is_in(people["pid"].implode()).all()


def test_dummy_data_is_the_same_for_the_same_seed(
    real: tuple[Cohort, pl.DataFrame], dictionary: Dictionary
) -> None:
    schema = schema_of(real_view(real, GRANTS[1], dictionary))
    first = dummy_tables(schema, dictionary, n=100, seed=4)
    again = dummy_tables(schema, dictionary, n=100, seed=4)
    other = dummy_tables(schema, dictionary, n=100, seed=5)
    assert all(first[t].equals(again[t]) for t in first)
    assert not first["participants"].equals(other["participants"])


def test_an_absent_event_table_is_kept_empty_with_its_schema(
    real: tuple[Cohort, pl.DataFrame], dictionary: Dictionary
) -> None:
    cohort, ids = real
    without = Cohort(cohort.participants,
                     {k: v for k, v in cohort.events.items() if k != "operations"})
    schema = schema_of(project_view(without, ids, (31, 41272, 41282), dictionary))
    dummy = dummy_tables(schema, dictionary, n=100, seed=0)
    assert schema_of(dummy) == schema
    assert dummy["operations"].height > 0  # the dummy has events even if the real view has none


DEFINITIONS = [
    "SELECT pid, p31 AS sex, p21001_i0 AS bmi FROM participants WHERE p21001_i0 >= 30",
    "WITH mi AS (SELECT pid, min(date) AS first_mi FROM diagnoses WHERE code LIKE 'I21%' "
    "GROUP BY pid) SELECT p.pid, p.p34, m.first_mi, year(m.first_mi) - p.p34 AS age_at_mi "
    "FROM participants p LEFT JOIN mi m ON p.pid = m.pid",
    "SELECT * FROM participants",
]


@pytest.mark.parametrize("sql", DEFINITIONS)
def test_a_definition_written_on_the_dummy_runs_on_the_real_view(
    real: tuple[Cohort, pl.DataFrame], dictionary: Dictionary, sql: str
) -> None:
    view = real_view(real, (31, 34, 21001, 41270, 41280), dictionary)
    schema = schema_of(view)
    dummy = dummy_tables(schema, dictionary, n=200, seed=3)
    on_dummy, _ = definitions.build(dummy, schema_of(dummy), "d", sql, Limits())
    on_real, _ = definitions.build(view, schema, "d", sql, Limits())
    assert on_dummy.columns == on_real.columns


def test_the_dummy_zip_holds_parquet_csv_and_a_readme(
    real: tuple[Cohort, pl.DataFrame], dictionary: Dictionary
) -> None:
    schema = schema_of(real_view(real, GRANTS[1], dictionary))
    tables = dummy_tables(schema, dictionary, n=80, seed=6)
    blob = dummy_zip(tables)
    assert blob == dummy_zip(tables)  # the same bytes for the same data
    archive = zipfile.ZipFile(io.BytesIO(blob))
    assert sorted(archive.namelist()) == sorted(
        ["README.txt"] + [f"{t}.{ext}" for t in tables for ext in ("parquet", "csv")])
    assert "SYNTHETIC" in archive.read("README.txt").decode()
    for name, frame in tables.items():
        back = pl.read_parquet(io.BytesIO(archive.read(f"{name}.parquet")))
        assert back.equals(frame)
        csv = pl.read_csv(io.BytesIO(archive.read(f"{name}.csv")))
        assert csv.columns == frame.columns and csv.height == frame.height


def test_a_schema_naming_something_outside_the_view_is_refused(
    dictionary: Dictionary,
) -> None:
    with pytest.raises(Invalid, match="not a table of the project view"):
        dummy_tables(ProjectSchema({"participants": {"pid": "BIGINT"},
                                    "secrets": {"pid": "BIGINT"}}), dictionary, n=10)
    with pytest.raises(Invalid, match="not a dictionary field"):
        dummy_tables(ProjectSchema({"participants": {"pid": "BIGINT", "eid": "BIGINT"}}),
                     dictionary, n=10)
