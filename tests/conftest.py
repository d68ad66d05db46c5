"""Shared fixtures: small hand-made cohorts and fresh data directories."""

from __future__ import annotations

import gc
import os
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest

# A project's DP release engine lives ten idle minutes in a server (about 20 MB each); a test
# process makes dozens of projects in minutes, so here each is stopped after seconds unasked.
os.environ.setdefault("STRONGROOM_DP_IDLE_SECONDS", "15")
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.model import Cohort
from strongroom.cohort.store import Store, init_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "research-data"
TESTS = Path(__file__).resolve().parent

# Markers by where a test lives (the rest are declared in the modules, `pytestmark`), so that
# `make test-fast` can leave out what needs PostgreSQL, a browser or minutes; CI runs all.
BROWSER = TESTS / "functional" / "web"
BROWSER_IDS = str(BROWSER.relative_to(TESTS.parent)) + "/"  # how node ids begin there


# modules whose tests take minutes together: their tests are dealt in turn, in the order
# collected, into this many scopes of a minute or so each (a worker that takes up another
# module in between builds the module's world again: a second or two)
SPLIT_INTO_SCOPES = {"tests/integration/test_disclosure_attacks.py": 5}
# modules that use the session's loopback Spark cluster (``spark_cluster``): one scope, so one
# worker starts the master and its two workers' JVMs once for all of them, not once per worker
# that happens to take one (tests/unit/test_test_scopes.py checks the list is complete)
SPARK_MODULES = frozenset(f"tests/integration/{name}.py" for name in (
    "test_engine_conformance", "test_cluster_walls", "test_redteam_cluster",
    "test_cluster_work", "test_spark_how_to"))


# The scopes that hold a worker longest, with their seconds on a worker (a quiet 2-core run's
# figures, rounded; tests/budget.py prints the ten slowest modules of every run): dealt out
# first, heaviest first, so the end of a run is small modules filling both workers, never one
# long module alone. xdist's own order is by number of tests, which put a module of ten
# one-minute tests among the last (a split module's seconds are shared by its scopes). The rest
# keep xdist's order after these (tests/unit/test_test_scopes.py checks each one exists).
LONG_SCOPES = {
    "spark": 170,
    "browser": 240,
    "tests/integration/test_disclosure_attacks.py": 160,
    "tests/functional/test_demo_how_tos.py": 140,
    "tests/integration/test_permission_matrix.py": 80,
    "tests/integration/test_job_shape_channel.py": 100,
    "tests/integration/test_job_attacks.py": 75,
    "tests/functional/test_watch_scenarios.py": 70,
    "tests/integration/test_under_load.py": 70,
    "tests/integration/test_attribution_dates.py": 65,
    "tests/integration/test_access.py": 60,
    # session 58: modules of a dozen tests and a minute, which xdist's order (by number of
    # tests) put among the last
    "tests/integration/test_redteam_time_surfaces.py": 55,
    "tests/integration/test_redteam_metadata.py": 45,
    "tests/integration/test_redteam_shared_state.py": 40,  # session 60: DP engines, releases
    "tests/unit/test_budget.py": 40,
}


def scope_seconds(scope: str) -> float:
    """A scope's expected seconds on a worker (LONG_SCOPES; 0 for the rest)."""
    module = scope.split("::", 1)[0]
    return LONG_SCOPES.get(module, 0) / (SPLIT_INTO_SCOPES.get(module, 1) if "::" in scope else 1)


# modules left out of `make test-fast` (the quick loop, under two minutes) though none of their
# tests is long: each holds seconds of sandboxed jobs, R, genotype files, upgrades or attack
# campaigns, and together they were 60 % of the loop's time (issue 59). CI runs them all.
QUICK_LOOP_LEAVES_OUT = frozenset(f"tests/{name}.py" for name in (
    "integration/test_job_shape_channel", "integration/test_jobs", "integration/test_job_attacks",
    "integration/test_sandbox_walls", "integration/test_r_jobs", "integration/test_r_study",
    "integration/test_gwas_attacks", "integration/test_genotype_damage",
    "integration/test_genomics_membership_attack", "integration/test_redteam_membership",
    "integration/test_crash_resolution", "integration/test_store_in_use",
    "integration/test_upgrade_atomic", "integration/test_upgrade_history",
    "integration/test_audit_outbox", "integration/test_conformance", "integration/test_demo",
    "integration/test_extracts", "integration/test_attribution_categorical",
    "integration/test_watch_limits", "integration/test_genotype_store",
    "integration/test_backup", "integration/test_disclosure_differencing",
    "unit/test_sizes", "unit/test_genomics_simulate",
    # session 41: each builds an attribution or membership world, runs R, or starts the CLI
    # in fresh interpreters (its import walls)
    "integration/test_attribution_dates", "integration/test_attribution_repaired",
    "integration/test_attribution_union", "integration/test_membership_bound",
    "integration/test_redteam_r_jobs", "integration/test_rmarkdown_jobs",
    "integration/test_web_permissions", "unit/test_cli_imports", "unit/test_cli_start",
    # session 60: OpenDP's engines started, and releases held for seconds
    "integration/test_redteam_shared_state",
    # session 62: fork servers hung, killed and restarted (a fork's time limit waited out)
    "unit/test_dp_fork_server"))


def pytest_configure(config: pytest.Config) -> None:
    """The process's one forkserver imports what the crash tests' children and the genotype
    readers' children both need, whichever of them starts it (tests/kill_points.py)."""
    from tests.kill_points import share_forkserver

    share_forkserver()


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark the PostgreSQL and the browser tests, and the quick loop's leave-outs as slow
    (as each test is collected)."""
    if str(Path(str(item.fspath)).relative_to(TESTS.parent)) in QUICK_LOOP_LEAVES_OUT:
        item.add_marker(pytest.mark.slow)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("database_url") == "postgresql":
        item.add_marker(pytest.mark.postgres)
    if Path(str(item.fspath)).is_relative_to(BROWSER):
        item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Any:
    """Pytest keeps the test modules it has rewritten (their asserts) in __pycache__ even where
    PYTHONDONTWRITEBYTECODE is set (CI, these machines), which otherwise left every process to
    rewrite all of them afresh as it collected: 13 of each worker's 32 CPU-s of collection. A
    run reads a module's copy only while the module is unchanged (its size and time)."""
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = writes


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: unknown without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under xdist, each module's tests run on one worker (its built world, module-scoped,
    is built once) and the browser tests all on one (they share one served console and one
    Chromium). xdist's own ``loadgroup`` would do this with markers, but it renames node ids
    in a way pytest 9 ignores."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):  # type: ignore[misc]
        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            self.dealt: dict[str, dict[str, int]] = {}  # module: its test ids' turns
            self.ordered = False  # the queue put in LONG_SCOPES' order (at the first deal)

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module.startswith(BROWSER_IDS):
                return "browser"
            if module in SPARK_MODULES:
                return "spark"
            if module in SPLIT_INTO_SCOPES:  # minutes of tests: dealt into a few scopes
                # first called in collection order (schedule), then again as each test ends
                turns = self.dealt.setdefault(module, {})
                turn = turns.setdefault(nodeid, len(turns))
                return f"{module}::{turn % SPLIT_INTO_SCOPES[module]}"
            return module

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the first deal: the whole queue is known; the long first
                self.ordered = True
                for scope in sorted(self.workqueue, key=scope_seconds, reverse=True):
                    if scope_seconds(scope):
                        self.workqueue.move_to_end(scope)
                for scope in list(self.workqueue):  # ...then the rest, in xdist's order
                    if not scope_seconds(scope):
                        self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return ByModule(config, log)


@pytest.fixture(scope="session")
def dictionary() -> Dictionary:
    return shipped_dictionary()


# The metadata database runs on SQLite by default and PostgreSQL in production: store tests run
# on both. PostgreSQL runs on this machine (and CI's); a test database URL can be given.
POSTGRES_URL = os.environ.get(
    "STRONGROOM_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as con:
            con.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: start it, or set "
                    f"STRONGROOM_TEST_DATABASE_URL ({exc.orig})")
    try:
        # a commit returns without waiting for its WAL to reach the disk (synchronous_commit
        # off: the same transactions, isolation and constraints; only a crash of PostgreSQL
        # itself could lose the last of them, and no test crashes it)
        yield (f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
               f"%20-csynchronous_commit%3Doff")
    finally:
        try:
            _drop_schema(admin, schema)
        finally:
            admin.dispose()


def schema_of(url: str) -> str:
    """The schema a URL of ``postgres_schema`` puts its tables in."""
    found = re.search(r"search_path%3D(\w+)", url)
    assert found is not None, f"not a test schema's URL: {url}"
    return found[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the data directory) or a fresh PostgreSQL schema for this test."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_schema() as url:
        yield url


def _drop_schema(admin: Engine, schema: str) -> None:
    """Drop a test's schema. A connection the test left open in a transaction would block the
    drop for ever: wait a bounded time, collect garbage (an unreferenced connection goes back to
    its pool, rolled back), try once more, then fail saying why instead of hanging the run."""
    for attempt, wait in enumerate(("5s", "30s")):
        try:
            with admin.begin() as con:
                con.execute(text(f"SET LOCAL lock_timeout = '{wait}'"))
                con.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError as exc:
            if attempt:
                pytest.fail(f"could not drop the test schema {schema}: a connection was left "
                            f"open in a transaction (use `with engine.connect() as con:`) "
                            f"({exc.orig})")
            gc.collect()


@pytest.fixture
def store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> Iterator[Store]:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    with init_store(tmp_path / "data", key_file=tmp_path / "keys" / "master.key",
                    database_url=database_url) as opened:
        yield opened


def small_cohort() -> Cohort:
    """Three participants with distinctive values, as text (as a CSV reader returns them)."""
    participants = pl.DataFrame({
        "eid": ["1000017", "1000025", "1000033"],
        "p31": ["0", "1", "0"],
        "p34": ["1950", "1961", "1944"],
        "p53_i0": ["2008-03-14", "2009-11-02", "2007-06-30"],
        "p21001_i0": ["27.3817", "31.0422", "22.9931"],
        "p4080_i0_a0": ["143", "128", "151"],
        "p4080_i0_a1": ["139", "131", "149"],
        "p20116_i0": ["0", "2", "1"],
        "p36_i0": ["BPDEV-77123", "BPDEV-77124", "BPDEV-77125"],
    })
    diagnoses = pl.DataFrame({
        "eid": ["1000017", "1000017", "1000033"],
        "array_index": ["0", "1", "0"],
        "code": ["I10", "E119", "C509"],
        "date": ["2011-05-17", "2013-09-30", "2015-01-08"],
    })
    return Cohort(participants, {"diagnoses": diagnoses})


# Every JVM of a Spark test (the master, the workers, the executors they start and the driver)
# compiles with C1 only and collects with one thread: the suites' queries are small and short,
# so C2's compilations and the parallel collector's threads were most of their CPU time (two
# CPU-minutes of six JVMs' warming up, half of it saved); the same cluster, the same queries.
QUICK_JVMS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def quick_jvms() -> str:
    """QUICK_JVMS, and the classes every Spark JVM loads first (its RPC, security, logging and
    Scala's) read from a class-data archive rather than parsed and verified from Spark's jars
    again by each: 3.9 CPU-s of a JVM's start became 1.8 here. The archive is made once on a
    machine (by Spark's own submission client, run against nothing, on the class path every
    Spark JVM here begins with: cluster.class_path) and kept beside the key client's jar; the
    JDK checks it against its own build and the class path's jars, and a JVM it does not fit
    loads its classes as before."""
    import hashlib
    import shutil
    import subprocess

    from strongroom.enclave.spark.cluster import class_path, client_jar, spark_home

    jars = spark_home() / "jars"
    java = shutil.which("java")
    if java is None:
        return QUICK_JVMS
    real = Path(java).resolve()
    listed = sorted((p.name, p.stat().st_size) for p in jars.glob("*.jar"))
    path = os.pathsep.join(class_path(spark_home()))
    digest = hashlib.sha256(f"{real}:{real.stat().st_mtime_ns}:{listed}:{QUICK_JVMS}:{path}"
                            .encode()).hexdigest()[:16]
    archive = client_jar().parent / f"spark-classes-{digest}.jsa"
    if not archive.exists():
        made = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
        subprocess.run([java, f"-XX:ArchiveClassesAtExit={made}", "-cp", path,
                        "org.apache.spark.deploy.Client", "kill", "spark://127.0.0.1:1",
                        "driver-00000000000000-0000"],
                       env={**os.environ, "JAVA_TOOL_OPTIONS": QUICK_JVMS},
                       capture_output=True, timeout=300, check=False)
        if not made.exists():
            return QUICK_JVMS
        made.replace(archive)  # whole, or not at all
    return f"{QUICK_JVMS} -XX:SharedArchiveFile={archive}"


# The one test that ends the Spark scope's application (it checks that nothing is left on the
# workers afterwards): run after every other test, so that one application (one driver, one
# executor on each worker, started once, warm) answers the whole scope's queries.
ENDS_THE_APPLICATION = ("tests/integration/test_cluster_walls.py::"
                        "test_nothing_is_left_on_the_workers_after_the_application")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test that ends the Spark application last (in its scope, under xdist)."""
    last = [item for item in items if item.nodeid == ENDS_THE_APPLICATION]
    if last:
        items[:] = [item for item in items if item not in last] + last


_APPLICATION: dict[str, Any] = {"held": False}


def end_the_application() -> None:
    """Let the scope's Spark application end (as soon as no engine is open): from then on,
    each engine starts its own again, and ends it as it closes."""
    from strongroom.enclave.spark.cluster import close_session

    if _APPLICATION["held"]:
        _APPLICATION["held"] = False
        close_session()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A loopback standalone master and two workers, started once per test process and shared
    by the Spark modules that run there (the conformance suite, the cluster's walls), with
    one application on it that every module's engines share (PySpark's one context a process,
    :func:`open_session`), held open between modules until :func:`end_the_application`."""
    from strongroom.enclave.spark.cluster import LocalCluster, client_jar, open_session

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAVA_TOOL_OPTIONS", quick_jvms())  # read by every JVM started meanwhile
        with LocalCluster(tmp_path_factory.mktemp("spark"), workers=2) as running:
            open_session(running.settings(), client_jar())
            _APPLICATION["held"] = True
            try:
                yield running
            finally:
                end_the_application()
