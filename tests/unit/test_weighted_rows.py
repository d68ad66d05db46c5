"""Aggregate SQL over weighted rows (issue 56): an engine may give a row-level query's
identical rows once with their number (``_w``, as the Spark engine does so that fewer rows
cross to the host); every cell, its contributors and what the output check reads of it are
then those of the rows as they were."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
import pytest
from sqlglot import exp

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave import aggregate
from strongroom.enclave.aggregate import aggregate_sql
from strongroom.enclave.engine import Limits
from strongroom.enclave.engines import WEIGHT, DuckDBEngine
from strongroom.enclave.results import Cell
from strongroom.enclave.sources import Table
from strongroom.enclave.view import project_view, schema_of

GRANT = (31, 34, 54, 21001, 41270, 41280, 40000)
LIMITS = Limits(seconds=60.0)


class Weighing(DuckDBEngine):
    """DuckDB's rows, identical ones given once with their number."""

    def select(self, tables: Mapping[str, Table], used: Mapping[str, set[str]],
               query: exp.Query, limits: Limits, most: int, *,
               weighted: bool = False) -> pl.DataFrame:
        frame = super().select(tables, used, query, limits, most)
        if not weighted:
            return frame
        self.heaviest = frame.group_by(frame.columns).len()["len"].max()
        return frame.group_by(frame.columns).agg(pl.len().alias(WEIGHT)).sample(
            fraction=1.0, shuffle=True, seed=4)  # in no particular order, as from a cluster


@pytest.fixture(scope="module")
def view() -> dict[str, pl.DataFrame]:
    cohort = synthesise(800, 9)
    eids = cohort.participants["eid"].to_numpy()
    pids = 1_000_000 + np.random.default_rng(2).choice(8_000_000, eids.size, replace=False)
    return project_view(cohort, pl.DataFrame({"eid": eids, "pid": pids}), GRANT,
                        shipped_dictionary())


def _same(a: Cell, b: Cell) -> None:
    assert (a.row, a.column, a.kind) == (b.row, b.column, b.kind)
    for name, x in vars(a).items():
        y = getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, name
            assert np.allclose(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                               rtol=1e-12, equal_nan=True), name
        elif isinstance(x, float) and isinstance(y, float):
            assert x == pytest.approx(y, rel=1e-12, nan_ok=True), name
        else:
            assert x == y, name


@pytest.mark.parametrize("sql", [
    # counts (of rows, values, participants) by whole-number keys: from the weights
    "SELECT p.p31 AS sex, count(*) AS n, count(d.code) AS coded FROM participants p "
    "JOIN diagnoses d ON p.pid = d.pid GROUP BY p.p31",
    "SELECT p.p54_i0 AS centre, count(*) AS n FROM participants p JOIN diagnoses d "
    "ON p.pid = d.pid GROUP BY p.p54_i0",
    "SELECT count(*) AS n FROM diagnoses",
    "SELECT p.p31 AS sex, count(DISTINCT d.pid) AS people, count(*) AS n "
    "FROM participants p JOIN diagnoses d ON p.pid = d.pid GROUP BY p.p31",
    "SELECT p.p54_i0 AS centre, count(DISTINCT d.pid) AS dead, count(d.date) AS dated "
    "FROM participants p LEFT JOIN deaths d ON p.pid = d.pid GROUP BY p.p54_i0",
    # anything else: the rows given back as they were
    "SELECT d.code AS code, count(*) AS n FROM participants p JOIN diagnoses d "
    "ON p.pid = d.pid GROUP BY d.code",
    "SELECT p.p31 AS sex, sum(p.p34) AS born, median(p.p34) AS med, max(p.p34) AS latest "
    "FROM participants p JOIN diagnoses d ON p.pid = d.pid GROUP BY p.p31",
    "SELECT p31 AS sex, count(*) AS n, avg(p21001_i0) AS bmi FROM participants GROUP BY p31",
])
@pytest.mark.parametrize("k", [0, 10])
def test_weighted_rows_give_the_cells_of_the_rows(sql: str, k: int,
                                                   view: dict[str, pl.DataFrame]) -> None:
    spec = {"kind": "aggregate_sql", "sql": sql}
    plain = aggregate_sql(view, schema_of(view), sql, LIMITS, spec, k=k, engine=DuckDBEngine())
    weighing = Weighing()
    weighed = aggregate_sql(view, schema_of(view), sql, LIMITS, spec, k=k, engine=weighing)
    if "diagnoses" in sql and "d.code" not in sql:  # a participant's rows alike
        assert weighing.heaviest > 1  # rows were given once for several
    assert len(plain.cells) == len(weighed.cells) > 0
    for a, b in zip(plain.cells, weighed.cells, strict=True):
        _same(a, b)
    assert plain.notes == weighed.notes


@pytest.mark.parametrize("sql", [
    "SELECT p.p31 AS sex, count(DISTINCT d.pid) AS people, count(*) AS n "
    "FROM participants p JOIN diagnoses d ON p.pid = d.pid GROUP BY p.p31",
    "SELECT p.p54_i0 AS centre, count(DISTINCT d.pid) AS dead, count(d.date) AS dated "
    "FROM participants p LEFT JOIN deaths d ON p.pid = d.pid GROUP BY p.p54_i0",
])
@pytest.mark.parametrize("k", [0, 10])
def test_distinct_participants_counted_by_codes_are_the_groups_counts(
        sql: str, k: int, view: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"kind": "aggregate_sql", "sql": sql}
    coded = aggregate_sql(view, schema_of(view), sql, LIMITS, spec, k=k)
    monkeypatch.setattr(aggregate, "_counted", lambda *_, **__: None)  # the general path
    grouped = aggregate_sql(view, schema_of(view), sql, LIMITS, spec, k=k)
    assert len(coded.cells) == len(grouped.cells) > 0
    for a, b in zip(coded.cells, grouped.cells, strict=True):
        _same(a, b)
