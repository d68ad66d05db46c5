"""The cluster does the work (issue 56): on the Spark engine the cohort is sealed once per
cohort version on the cluster's storage, a project's view is cut from it on the executors, and
definitions and aggregate SQL read it there. The host never loads the cohort or a view of it
(its loaders are made to fail here), and the answers are DuckDB's, contributors included.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from benchmarks.cluster_memory import (
    AGGREGATES,
    COX_DEFINITION,
    COX_MODELS,
    DEFINITIONS,
    GRANT,
    MODEL_DEFINITION,
    MODELS,
)

from strongroom import sets
from strongroom.access.context import Principal
from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.model import PARTICIPANTS
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave import definitions, service
from strongroom.enclave.analyses import glm, regression, survival
from strongroom.enclave.analyses import proportional_hazards as ph
from strongroom.enclave.engines import DuckDBEngine
from strongroom.enclave.results import Result
from strongroom.enclave.sources import ClusterTable
from strongroom.enclave.spark import models
from strongroom.enclave.spark.cluster import LocalCluster
from strongroom.enclave.spark.engine import SID, SparkEngine
from strongroom.enclave.view import project_view, schema_of, view_plan
from strongroom.enclave.workspace import Enclave
from strongroom.errors import Invalid
from strongroom.outputs.render import Format
from strongroom.outputs.verdicts import Verdict
from tests.access_world import World, build_world
from tests.unit.test_cox_sums import exact_hazards, same_cox
from tests.unit.test_model_sums import exact_tables, same_fit

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(spark_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    engine = yaml.safe_load(spark_cluster.settings().yaml())["engine"]
    found = build_world(tmp_path_factory.mktemp("cluster-work"), cohort=1500, fields=GRANT,
                        engine=engine)
    yield found
    found.platform.close()


def _never(what: str) -> Any:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError(f"the host {what} on the Spark path")
    return refuse


def _same(a: Result, b: Result) -> None:
    assert [(c.row, c.column, c.kind) for c in a.cells] == \
        [(c.row, c.column, c.kind) for c in b.cells]
    for x, y in zip(a.cells, b.cells, strict=True):
        assert (x.value is None) == (y.value is None)
        if x.value is not None:
            assert x.value == pytest.approx(y.value, rel=1e-12, nan_ok=True)
        assert np.array_equal(np.sort(np.asarray(x.contributors)),
                              np.sort(np.asarray(y.contributors)))
    assert a.notes == b.notes


def test_the_host_never_loads_the_cohort_and_answers_as_duckdb(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    spark = world.platform.enclave
    engine = spark.engine
    assert isinstance(engine, SparkEngine)
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    where = service.scope(spark, who, world.project_id)
    # the same store and access context read by DuckDB on this machine, for the answers (its
    # view built now, before the store's loaders are made to fail)
    duck = Enclave(spark.ctx, spark.store, engine=DuckDBEngine())
    view = duck.tables(where.project, where.fields)
    for what, target, name in [("loaded the cohort", spark, "cohort"),
                               ("built a view in memory", spark, "tables"),
                               ("decrypted the cohort", spark.store, "load"),
                               ("decrypted the participants", spark.store,
                                "load_participants")]:
        monkeypatch.setattr(target, name, _never(what))

    sources = spark.sources(where.project, where.fields)
    assert all(isinstance(t, ClusterTable) for t in sources.values())  # no rows here
    assert schema_of(sources) == schema_of(view)  # the schema the researcher sees: the same
    assert {n: t.height for n, t in sources.items()} == {n: f.height for n, f in view.items()}
    participants = sources[PARTICIPANTS]
    assert isinstance(participants, ClusterTable) and participants.pids is not None
    assert sets.bitmap_values(participants.pids).tolist() == \
        view[PARTICIPANTS]["pid"].sort().to_list()
    sealed = engine.seals  # the cohort's tables and the project's pseudonyms, once
    assert sealed == len(spark.cohort_source().tables) + 1

    for name, sql in DEFINITIONS.items():
        made = service.define(spark, who, world.project_id, name, sql)
        _, rows = spark.definition(where.project, name)
        _, expected = duck.definition(where.project, name)  # the same sealed file
        # the rows as DuckDB makes them from the view it builds here
        checked, again = definitions.build(view, schema_of(view), name, sql, spark.limits)
        assert rows.sort(rows.columns).equals(again.sort(again.columns))
        assert (made.rows, made.participants) == (checked.rows, checked.participants)
        assert expected.equals(rows)
    for sql in AGGREGATES:
        request = {"kind": "aggregate_sql", "sql": sql}
        _, there = service.analyse(spark, who, world.project_id, request, threshold=10)
        _, here = service.analyse(duck, who, world.project_id, request, threshold=10)
        _same(here, there)
    assert engine.seals == sealed  # nothing of the cohort was sealed again


# a definition with several rows for some participants (one a diagnosis): its sums are
# taken with each participant's rows in one partition
REPEATED = ("diagnosed", "SELECT d.pid, p.p31 AS sex, p.p34 AS birth_year, "
            "CASE WHEN d.code LIKE 'I%' THEN 1 ELSE 0 END AS cardio "
            "FROM diagnoses d JOIN participants p ON d.pid = p.pid")
SEPARATED = {"kind": "logistic", "definition": "model", "outcome": "obese",
             "covariates": ["bmi", "sex"]}  # obese is bmi > 30: Newton never settles


def _both_engines(world: World) -> tuple[Enclave, SparkEngine, Enclave, Principal]:
    """The world's enclave on Spark, its engine, the same store's enclave on DuckDB, and the
    researcher signed in."""
    spark = world.platform.enclave
    engine = spark.engine
    assert isinstance(engine, SparkEngine)
    assert world.researcher is not None
    return spark, engine, Enclave(spark.ctx, spark.store, engine=DuckDBEngine()), \
        world.sign_in(world.researcher)


def _counted_jobs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for each job of sums the executors run from now on."""
    jobs: list[int] = []
    each = models.SparkRows.each

    def counted(self: models.SparkRows, work: Any) -> Any:
        jobs.append(1)
        return each(self, work)

    monkeypatch.setattr(models.SparkRows, "each", counted)
    return jobs


def _same_refusal(world: World, enclaves: tuple[Enclave, Enclave], who: Principal,
                  request: dict[str, Any]) -> list[str]:
    """``request`` refused by both enclaves with the same reasons, which are returned."""
    refusals = []
    for enclave in enclaves:
        with pytest.raises(Invalid) as refused:
            service.analyse(enclave, who, world.project_id, request, threshold=10)
        refusals.append(refused.value.reasons)
    assert refusals[0] == refusals[1]
    return refusals[0]


def _checked_on_the_executors(world: World, who: Principal, request: dict[str, Any],
                              jobs: list[int]) -> None:
    """``request`` through the output service, whose check reads the facts and sets the
    executors' sums give it: a verdict, and jobs run for it."""
    jobs.clear()
    checked = world.platform.outputs.analyse(who, world.project_id, request, Format("json"))
    assert checked.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS, Verdict.REVIEW), \
        checked.report.findings
    assert jobs


# the model requests, in two tests (each a few Spark jobs a Newton step: together they were
# the suite's most CPU, over its per-test budget); the first also tries a fit the executors
# cannot settle and the output service's door
MODEL_REQUESTS = {
    "ols-and-logistic": MODELS,
    "repeated-rows-and-glms": [
        {"kind": "logistic", "definition": "diagnosed", "outcome": "cardio",
         "covariates": ["sex", "birth_year"], "categorical": ["sex"]},
        {"kind": "glm", "definition": "model", "family": "binomial",
         "formula": "obese ~ birth_year + C(sex) + C(centre)"},
        {"kind": "glm", "definition": "model", "family": "gaussian",
         "formula": "bmi ~ birth_year + C(centre)"}],
}


@pytest.mark.parametrize("which", MODEL_REQUESTS)
def test_models_are_summed_on_the_executors_and_answer_as_on_the_host(
        world: World, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """OLS, logistic regression and binomial and Gaussian GLMs on the Spark engine: the
    design's sums taken on the executors (the host's own design and fit made to fail), the
    Result the host's own: its
    cells, contributors, facts, id sets and vectors, the exact coefficients to 1e-7. A fit
    the sums cannot settle is the host's, refusal and all."""
    spark, engine, duck, who = _both_engines(world)
    for name, sql in (MODEL_DEFINITION, REPEATED):
        service.define(spark, who, world.project_id, name, sql)
    requests = MODEL_REQUESTS[which]
    first = which == "ols-and-logistic"
    jobs = _counted_jobs(monkeypatch)
    if first:  # a fit the executors cannot settle falls back to the host: the same refusal
        _same_refusal(world, (duck, spark), who, SEPARATED)
        assert jobs  # tried on the executors first
    with exact_tables() as exact:
        here = [service.analyse(duck, who, world.project_id, r, threshold=10)[1]
                for r in requests]
    before = set(engine.folder.iterdir())
    monkeypatch.setattr(regression, "_with_intercept", _never("built a model's design"))
    monkeypatch.setattr(regression, "check_rank", _never("checked a design's rank"))
    monkeypatch.setattr(glm, "check_rank", _never("checked a model matrix's rank"))
    monkeypatch.setattr(glm, "_fit", _never("fitted a GLM"))
    jobs.clear()
    for i, (request, host) in enumerate(zip(requests, here, strict=True)):
        with exact_tables() as caught:
            _, there = service.analyse(spark, who, world.project_id, request, threshold=10)
        same_fit(host, there, [exact[i], caught[0]])
    assert len(jobs) >= 3 * len(requests)
    assert set(engine.folder.iterdir()) == before  # each fit's rows removed from the cluster
    if first:  # and through the output service, whose check reads the facts and sets it gets
        _checked_on_the_executors(world, who, MODELS[0], jobs)


# follow-up to each diagnosis, several rows for some participants: their rows in one partition
EPISODES = ("episodes", "SELECT d.pid, p.p31 AS sex, p.p34 AS birth_year, "
            "date_diff('day', DATE '1997-01-01', d.date) / 365.25 AS years, "
            "CASE WHEN d.code LIKE 'I%' THEN 1 ELSE 0 END AS cardio "
            "FROM diagnoses d JOIN participants p ON d.pid = p.pid")
# in two tests, as the models' are; the first also tries a fit that cannot settle
COX_REQUESTS = {
    "one-row-each": COX_MODELS,
    "episodes": [{"kind": "cox", "definition": "episodes", "time": "years", "event": "cardio",
                  "unit": "years", "covariates": ["sex", "birth_year"],
                  "categorical": ["sex"]}],
}


@pytest.mark.parametrize("which", COX_REQUESTS)
def test_cox_models_are_summed_on_the_executors_and_answer_as_on_the_host(
        world: World, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """Cox models on the Spark engine: Efron's per-time sums, the delta-betas, leverages and
    Harrell's C taken on the executors (the host's own fit, rank check, residuals, leverages
    and C made to fail), the Result the host's own: cells, contributors, facts, id sets and
    vectors, the exact hazard ratios to 1e-7 and the same steps. A fit the executors cannot
    settle is the host's, refusal and all."""
    spark, engine, duck, who = _both_engines(world)
    for name, sql in (COX_DEFINITION, EPISODES):
        service.define(spark, who, world.project_id, name, sql)
    requests = COX_REQUESTS[which]
    first = which == "one-row-each"
    jobs = _counted_jobs(monkeypatch)
    if first:  # the event as a covariate separates: tried on the executors, refused by the host
        separated = {**COX_MODELS[0], "covariates": ["birth_year", "flag"], "categorical": []}
        assert _same_refusal(world, (duck, spark), who, separated) == [survival.NOT_CONVERGED]
        assert jobs
    with exact_hazards() as exact:
        here = [service.analyse(duck, who, world.project_id, r, threshold=10)[1]
                for r in requests]
    before = set(engine.folder.iterdir())
    for module, name in ((ph, "fit"), (ph, "_Efron"), (ph, "concordance"),
                         (survival, "score_residuals"), (survival, "check_rank"),
                         (survival, "influence")):
        monkeypatch.setattr(module, name, _never(f"fitted a Cox model ({name})"))
    jobs.clear()
    for i, (request, host) in enumerate(zip(requests, here, strict=True)):
        with exact_hazards() as caught:
            _, there = service.analyse(spark, who, world.project_id, request, threshold=10)
        same_cox(host, there, [exact[i], caught[0]])
    assert len(jobs) >= 6 * len(requests)  # moments, two a Newton step, the facts
    assert set(engine.folder.iterdir()) == before  # each fit's rows removed from the cluster
    if first:  # and through the output service, whose check reads the facts and sets it gets
        _checked_on_the_executors(world, who, COX_MODELS[0], jobs)


def test_the_host_holds_definitions_up_to_its_budget_and_a_query_keeps_what_it_reads(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decrypted definitions the enclave keeps, and the frames the engine keeps published,
    are bounded in bytes (at 5,000,000 participants a study's four definitions held 500 MB
    on the host); with both budgets at one byte a query over two definitions still reads
    both (neither is let go of to make room for the other) and answers as DuckDB, and what
    earlier queries published is gone from the host and the cluster."""
    from strongroom.enclave.spark import engine as spark_engine

    spark, engine, duck, who = _both_engines(world)
    monkeypatch.setattr(spark_engine, "PUBLISHED_HELD", 1)
    held = spark._definitions.of(world.project_id)  # the project's own cache
    monkeypatch.setattr(held, "budget", 1)
    for name, sql in DEFINITIONS.items():
        service.define(spark, who, world.project_id, f"{name}_b", sql)
        service.definition(spark, service.scope(spark, who, world.project_id).project,
                           f"{name}_b")
    assert len(held._items) == 1  # the newest, whatever it weighs
    earlier = [engine.publish(pl.DataFrame({"pid": [1, 2], "x": [0.5, 1.5]})),
               *(p.path for p in engine._published.values())]
    request = {"kind": "aggregate_sql",
               "sql": "SELECT o.sex, count(*) AS n, avg(o.bmi) AS bmi FROM obese_b o "
                      "JOIN firsts_b f ON o.pid = f.pid GROUP BY o.sex"}
    _, there = service.analyse(spark, who, world.project_id, request, threshold=10)
    _, here = service.analyse(duck, who, world.project_id, request, threshold=10)
    _same(here, there)
    assert len(engine._published) == 2  # the query's two, kept though over the budget
    assert not any(path.exists() for path in earlier)
    monkeypatch.setattr(spark_engine, "PUBLISHED_HELD", 1 << 30)
    passing = pl.DataFrame({"pid": [3], "x": [2.5]})
    gone = engine.publish(passing)
    del passing  # not held by the engine: its copy goes with it, at the next publishing
    gc.collect()
    assert engine.publish(pl.DataFrame({"pid": [4], "x": [0.5]})).exists()
    assert not gone.exists()


def _cluster_participants(world: World) -> tuple[SparkEngine, Principal, Any, ClusterTable]:
    """The enclave's Spark engine, the researcher signed in, their scope of the world's
    project, and that project's participants as the cluster holds them."""
    enclave = world.platform.enclave
    engine = enclave.engine
    assert isinstance(engine, SparkEngine)
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    where = service.scope(enclave, who, world.project_id)
    participants = enclave.sources(where.project, where.fields)[PARTICIPANTS]
    assert isinstance(participants, ClusterTable)
    return engine, who, where, participants


def test_a_query_token_opens_only_the_columns_it_reads_and_no_master_ids(
        world: World) -> None:
    """The cohort on the cluster is one set of files every project's views are cut from, so
    its keys are column by column: a query's token opens the footer, the surrogate IDs and the
    columns that query reads, never another column (another project's grant), and the
    master IDs are not there to open (a random surrogate stands for each eid)."""
    import pyarrow.parquet as pq

    enclave = world.platform.enclave
    engine, _, where, participants = _cluster_participants(world)
    copy = engine.seal(participants.rows)  # the copy already sealed: the same one
    assert set(copy.columns) == {SID, *(c for c in copy.schema.names() if c != "eid")}
    assert len(set(copy.columns.values())) == len(copy.columns)  # a key for each column
    with engine.reading([], copy.identifiers([SID, "p31"])) as session:
        read = session.read.parquet(str(copy.path))
        assert "eid" not in read.columns
        assert read.select("p31").toArrow().num_rows == copy.height
        with pytest.raises(Exception, match=r"KeyAccessDenied|access denied"):
            read.select("p21001_i0").toArrow()
    # the surrogates are not the master IDs
    factory, kms, _ = engine.keys.encryption(copy.identifier)
    decryption = factory.file_decryption_properties(kms, pq.encryption.DecryptionConfiguration())
    part = sorted(copy.path.glob("*.parquet"))[0]
    sids = pq.read_table(part, columns=[SID], decryption_properties=decryption)[SID]
    eids = set(enclave.pseudonym_map(where.project)["eid"].to_list())
    assert not eids & set(sids.to_pylist())
    for path in engine.folder.rglob("*.parquet"):  # not even the column names in the clear
        data = path.read_bytes()
        assert data[:4] == b"PARE" and b"p21001_i0" not in data


def test_the_host_keeps_no_pseudonyms_and_seals_them_again_when_their_copy_has_gone(
        world: World) -> None:
    """The project's (eid, pid) pairs are read from their sealed file to make the view, and
    again only when their copy on the cluster has gone: the host does not hold them (80 MB at
    5,000,000 participants), and a query after the copy went answers as DuckDB does."""
    import gc

    enclave = world.platform.enclave
    engine, who, _, _ = _cluster_participants(world)
    gc.collect()
    held = [f for f in gc.get_objects()
            if isinstance(f, pl.DataFrame) and {"eid", "pid"} <= set(f.columns)]
    assert not held, [f.shape for f in held]
    [key] = [k for k in engine._sealed if k.startswith("ids-")]
    engine._drop(engine._sealed.pop(key))
    request = {"kind": "aggregate_sql",
               "sql": "SELECT p31 AS sex, count(*) AS n, avg(p34) AS born FROM participants "
                      "GROUP BY p31"}
    _, there = service.analyse(enclave, who, world.project_id, request, threshold=10)
    duck = Enclave(enclave.ctx, enclave.store, engine=DuckDBEngine())
    _, here = service.analyse(duck, who, world.project_id, request, threshold=10)
    _same(here, there)
    assert [k for k in engine._sealed if k.startswith("ids-")] == [key]  # sealed again


def test_the_view_plan_is_the_view(tmp_path: Path) -> None:
    """The plan a cluster builds a view by has the single machine's names and types, for
    a grant of participant fields, event fields and fields of a table the cohort lacks."""
    dictionary = shipped_dictionary()
    cohort = synthesise(200, 3)
    ids = pl.DataFrame({"eid": cohort.participants["eid"],
                        "pid": np.arange(cohort.participants.height) + 1_000_000})
    schemas = {name: frame.schema for name, frame in cohort.tables()}
    for grant in (GRANT, [31], [41270, 40000], [31, 20002]):
        built = project_view(cohort, ids, grant, dictionary)
        planned = view_plan(schemas, grant, dictionary)
        assert list(planned) == list(built)
        for name, frame in built.items():
            assert planned[name].schema == frame.schema, (grant, name)
        lacking = {n: s for n, s in schemas.items() if n != "diagnoses"}
        less = view_plan(lacking, grant, dictionary)
        if "diagnoses" in less:
            assert less["diagnoses"].source is None
            assert less["diagnoses"].schema == built["diagnoses"].schema


def test_a_version_two_ingests_old_leaves_the_cluster(world: World) -> None:
    """A new cohort version is sealed beside the last; the one before that is removed from
    the cluster's storage and its keys forgotten (a request still running on the last
    version keeps its files)."""
    enclave = world.platform.enclave
    engine, who, _, first = _cluster_participants(world)
    old = engine.seal(first.rows)
    request = {"kind": "aggregate_sql",
               "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"}
    for seed, kept in ((11, True), (12, False)):
        enclave.store.write_version(synthesise(1500, seed))
        _, answer = service.analyse(enclave, who, world.project_id, request, threshold=10)
        assert answer.cells  # the new version's view, sealed and read
        assert old.path.exists() is kept
        assert (old.identifier in engine.keys._live) is kept
        assert all((i in engine.keys._live) is kept for i in old.columns.values())
