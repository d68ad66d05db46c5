"""Where checked SQL runs: one interface, two engines.

Definitions and aggregate queries hand an engine the project's tables, the columns the query
reads and the *checked* query tree (:mod:`strongroom.enclave.sqlguard`); the engine gives back
the result as a Polars frame. Contributor sets, the output check, the ledger and metering are
computed from that frame, so none of them knows which engine ran.

- :class:`DuckDBEngine` (the default): an in-memory, locked DuckDB on this machine
  (:mod:`strongroom.enclave.engine`).
- :class:`strongroom.enclave.spark.engine.SparkEngine`: a Spark cluster reading the tables as
  encrypted Parquet, the query translated to Spark SQL after the guard passed it; a GWAS's
  association runs there too, over the genotype set published the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl
from sqlglot import exp

from strongroom.enclave.engine import Limits, locked_connection, needed, release, run
from strongroom.enclave.sqlguard import DIALECT

if TYPE_CHECKING:
    from strongroom.genomics.study import GenotypeCluster


class Engine(Protocol):
    name: str

    def select(self, tables: Mapping[str, pl.DataFrame], used: Mapping[str, set[str]],
               query: exp.Query, limits: Limits, most: int) -> pl.DataFrame:
        """The result of the checked ``query`` over ``tables`` (of which it reads ``used``),
        held to ``limits``; ``most``: the rows its size bound allows (enclave/sizes.py)."""
        ...

    def genotype_cluster(self) -> GenotypeCluster | None:
        """Where a GWAS's association runs when not on this machine (None: here)."""
        ...

    def close(self) -> None: ...


class DuckDBEngine:
    """A locked in-memory DuckDB per query, holding copies of only the columns it reads."""

    name = "duckdb"

    def select(self, tables: Mapping[str, pl.DataFrame], used: Mapping[str, set[str]],
               query: exp.Query, limits: Limits, most: int) -> pl.DataFrame:
        con = locked_connection(needed(tables, used), limits)
        try:
            # copy=False: the tree is not used again (sqlglot copies a tree to write it)
            return run(con, query.sql(dialect=DIALECT, copy=False), limits, most)
        finally:
            release(con)

    def genotype_cluster(self) -> None:
        return None

    def close(self) -> None:
        return None


def engine_from(config: Mapping[str, Any] | None, secret: bytes) -> Engine:
    """The engine ``strongroom.yaml``'s ``engine:`` section names (DuckDB when it is absent).

    ``secret``: what the Spark engine's key service derives the cluster's master keys from.
    """
    kind = (config or {}).get("kind", "duckdb")
    if kind == "duckdb":
        if set(config or {}) - {"kind"}:
            raise ValueError("the DuckDB engine takes no settings in strongroom.yaml's engine:")
        return DuckDBEngine()
    if kind == "spark":
        from strongroom.enclave.spark.cluster import SparkSettings
        from strongroom.enclave.spark.engine import SparkEngine

        return SparkEngine(SparkSettings.from_config(config or {}), secret)
    raise ValueError(f"strongroom.yaml's engine: kind is {kind!r}; it is 'duckdb' (the "
                     "default) or 'spark'")
