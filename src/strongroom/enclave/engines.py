"""Where checked SQL runs: one interface, two engines.

Definitions and aggregate queries hand an engine the project's tables, the columns the query
reads and the *checked* query tree (:mod:`strongroom.enclave.sqlguard`); the engine gives back
the result as a Polars frame. Contributor sets, the output check, the ledger and metering are
computed from that frame, so none of them knows which engine ran.

- :class:`DuckDBEngine` (the default): an in-memory, locked DuckDB on this machine
  (:mod:`strongroom.enclave.engine`).
- :class:`strongroom.enclave.spark.engine.SparkEngine`: a Spark cluster reading the tables as
  encrypted Parquet, the query translated to Spark SQL after the guard passed it; a GWAS's
  association runs there too, over the genotype set published the same way. Its project
  views are built there as well (:meth:`Engine.project_view`): the cohort is sealed on the
  cluster's storage once per version, and the host never holds it. So are the row-level sums
  of OLS, logistic regression, GLMs and Cox models (:meth:`Engine.model_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl
from sqlglot import exp

from strongroom.enclave.engine import Limits, locked_connection, needed, release, run
from strongroom.enclave.sources import CohortSource, Table
from strongroom.enclave.sqlguard import DIALECT

if TYPE_CHECKING:
    from strongroom.cohort.dictionary import Dictionary
    from strongroom.enclave.analyses.regression import Placement
    from strongroom.genomics.study import GenotypeCluster


WEIGHT = "_w"  # a weighted result's column: how many identical rows a row stands for


class Engine(Protocol):
    name: str
    limits: Limits  # what its queries may use, unless the enclave is given others
    # seconds added to every answer's floor on this engine (outputs/timing.py): what any
    # request takes here whatever its work, so that honest ones answer within their floors
    floor_seconds: float

    def select(self, tables: Mapping[str, Table], used: Mapping[str, set[str]],
               query: exp.Query, limits: Limits, most: int, *,
               weighted: bool = False) -> pl.DataFrame:
        """The result of the checked ``query`` over ``tables`` (of which it reads ``used``),
        held to ``limits``; ``most``: the rows its size bound allows (enclave/sizes.py).
        ``weighted``: the engine may give identical rows once, with a column ``_w`` saying
        how many they are (so that fewer rows travel), when that changes no value."""
        ...

    def project_view(self, cohort: CohortSource, pseudonyms: Callable[[], pl.DataFrame],
                     fields: Iterable[int], dictionary: Dictionary) -> Mapping[str, Table] | None:
        """A project's view where this engine's queries read it, made from ``cohort`` a
        table at a time (None: this engine reads views built in memory here).
        ``pseudonyms`` reads the project's (``eid``, ``pid``) when they are needed: they
        are not held with the view."""
        ...

    def genotype_cluster(self) -> GenotypeCluster | None:
        """Where a GWAS's association runs when not on this machine (None: here)."""
        ...

    def model_rows(self) -> Placement | None:
        """Where a model's row-level sums are taken when not on this machine (None: here):
        OLS, logistic regression, GLMs and Cox models hand it their narrow rows for one fit
        (analyses/sums.py, analyses/cox_sums.py)."""
        ...

    def release(self) -> None:
        """After a request: give back to the system what its rows left free here (an engine
        whose requests take milliseconds need not)."""
        ...

    def close(self) -> None: ...


class DuckDBEngine:
    """A locked in-memory DuckDB per query, holding copies of only the columns it reads."""

    name = "duckdb"

    def __init__(self, limits: Limits | None = None, floor_seconds: float = 0.0):
        self.limits = limits or DUCKDB_LIMITS
        self.floor_seconds = floor_seconds

    def select(self, tables: Mapping[str, Table], used: Mapping[str, set[str]],
               query: exp.Query, limits: Limits, most: int, *,
               weighted: bool = False) -> pl.DataFrame:
        frames = {name: table for name, table in tables.items()
                  if isinstance(table, pl.DataFrame)}
        if any(name not in frames for name in used if name in tables):
            raise TypeError("DuckDB reads frames in this process, not tables on a cluster")
        con = locked_connection(needed(frames, used), limits)
        try:
            # copy=False: the tree is not used again (sqlglot copies a tree to write it)
            return run(con, query.sql(dialect=DIALECT, copy=False), limits, most)
        finally:
            release(con)

    def project_view(self, cohort: CohortSource, pseudonyms: Callable[[], pl.DataFrame],
                     fields: Iterable[int], dictionary: Dictionary) -> None:
        return None  # views are built in memory here (enclave/view.py)

    def genotype_cluster(self) -> None:
        return None

    def model_rows(self) -> None:
        return None  # models are fitted here, over the rows in memory

    def release(self) -> None:
        return None  # a request takes milliseconds; a collection each would cost more

    def close(self) -> None:
        return None


# Each engine's limits unless strongroom.yaml's engine: limits: says otherwise. A cluster
# schedules every query's jobs across executors and reads encrypted Parquet, so the same
# honest query takes far longer than in DuckDB here (the how-to's study at 20,000: up to a
# minute on a loopback cluster of two workers); ``memory`` and ``threads`` bound DuckDB only
# (a cluster's are its executors' settings).
DUCKDB_LIMITS = Limits()
SPARK_LIMITS = Limits(seconds=300.0)
# Each engine's seconds added to every answer's floor (outputs/timing.py), unless
# strongroom.yaml's engine: floor_seconds: says otherwise. A DuckDB query here starts in
# milliseconds; a Spark request schedules jobs on its executors and reads encrypted Parquet,
# seconds whatever its work (BENCHMARKS.md, session 47: the study at 500,000), and without
# this every honest request on a cluster would pass its floor and spend an answer.
DUCKDB_FLOOR_SECONDS = 0.0
SPARK_FLOOR_SECONDS = 30.0
MAX_FLOOR_SECONDS = 3600.0  # an hour: more is a mistake (every answer would wait for it)
_LIMIT_KEYS = {"seconds": float, "max_rows": int, "memory": str, "threads": int}


def limits_from(config: Any, default: Limits) -> Limits:
    """``engine: limits:`` from strongroom.yaml over ``default``; every problem named."""
    if config is None:
        return default
    if not isinstance(config, Mapping):
        raise ValueError("strongroom.yaml's engine: limits: is a mapping (seconds: 300, "
                         "max_rows: 5000000, memory: 512MB, threads: 2)")
    problems = [f"unknown limit {k!r} (known: {', '.join(_LIMIT_KEYS)})"
                for k in sorted(set(config) - set(_LIMIT_KEYS))]
    values: dict[str, Any] = {}
    for key, kind in _LIMIT_KEYS.items():
        if key in config:
            try:
                values[key] = kind(config[key])
            except (TypeError, ValueError):
                problems.append(f"{key}: {config[key]!r} is not a {kind.__name__}")
    if not problems:
        try:
            return replace(default, **values)
        except ValueError as exc:
            problems.append(str(exc))
    raise ValueError("strongroom.yaml's engine: limits: " + "; ".join(problems))


def floor_seconds_from(config: Any, default: float) -> float:
    """``engine: floor_seconds:`` (seconds added to every answer's floor), or ``default``."""
    if config is None:
        return default
    if isinstance(config, bool) or not isinstance(config, int | float) or not (
            math.isfinite(config) and 0 <= config <= MAX_FLOOR_SECONDS):
        raise ValueError(f"strongroom.yaml's engine: floor_seconds: is a number of seconds "
                         f"from 0 to {MAX_FLOOR_SECONDS:g} (added to every answer's floor on "
                         f"this engine), not {config!r}")
    return float(config)


def engine_from(config: Mapping[str, Any] | None, secret: bytes) -> Engine:
    """The engine ``strongroom.yaml``'s ``engine:`` section names (DuckDB when it is absent),
    with its ``limits:`` and ``floor_seconds:`` (each engine's own defaults otherwise).

    ``secret``: what the Spark engine's key service derives the cluster's master keys from.
    """
    settings = dict(config or {})
    kind = settings.pop("kind", "duckdb")
    limits = settings.pop("limits", None)
    floor = settings.pop("floor_seconds", None)
    if kind == "duckdb":
        if settings:
            raise ValueError("the DuckDB engine takes no settings in strongroom.yaml's engine: "
                             "but limits: and floor_seconds:")
        return DuckDBEngine(limits_from(limits, DUCKDB_LIMITS),
                            floor_seconds_from(floor, DUCKDB_FLOOR_SECONDS))
    if kind == "spark":
        from strongroom.enclave.spark.cluster import SparkSettings
        from strongroom.enclave.spark.engine import SparkEngine

        spark_settings = SparkSettings.from_config(settings)
        return SparkEngine(spark_settings, secret, limits=limits_from(limits, SPARK_LIMITS),
                           floor_seconds=floor_seconds_from(floor, SPARK_FLOOR_SECONDS))
    raise ValueError(f"strongroom.yaml's engine: kind is {kind!r}; it is 'duckdb' (the "
                     "default) or 'spark'")
