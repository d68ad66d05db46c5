"""Where a project's tables are: in memory here, or sealed on a cluster's storage.

Definitions and aggregate SQL read a project's tables for three things: their schema (what the
guard admits), their sizes (the bounds of enclave/sizes.py) and their rows (what the engine
runs the query over). With DuckDB the rows are frames in this process. With Spark they need
not be: a :class:`ClusterTable` is a project table whose schema and size are known here and
whose rows exist only on the cluster, as the cohort's encrypted Parquet (sealed there once per
cohort version, :class:`CohortSource`) joined on the executors to the project's pseudonyms.
Anything with ``schema``, ``columns`` and ``height`` (a Polars frame, a cluster table) is a
:data:`Table`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import polars as pl
from pyroaring import BitMap64

from strongroom import sets

CHUNK_ROWS = 16_384  # the rows of a cohort table decoded at a time while it is sealed


class Table(Protocol):
    """What the guard and the size bounds read of a project table (its rows: the engine's)."""

    @property
    def schema(self) -> pl.Schema: ...

    @property
    def columns(self) -> list[str]: ...

    @property
    def height(self) -> int: ...


@dataclass(frozen=True)
class Sealed:
    """Rows an engine can seal on its cluster: ``key`` names their content (the same key, the
    same rows), ``read`` gives them in chunks (at least one, empty if there are no rows),
    called only when no sealed copy is kept under ``key``."""

    key: str
    read: Callable[[], Iterable[pl.DataFrame]]
    # what each chunk becomes on the cluster (its schema, as handed over, is the chunks')
    transform: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    by_column: bool = False  # each column under a master key of its own


@dataclass(frozen=True)
class CohortSource:
    """A cohort version as an engine may read it, one table at a time.

    ``tables``: each table's name and the digest of its sealed file in the store (so a sealed
    copy is keyed by the content it was made from, not by a name that could be reused);
    ``read``: one table's rows, decrypted, in chunks of rows (so the host holds one table's
    compressed bytes and a chunk of its rows, once, while it is sealed)."""

    version: str
    tables: Mapping[str, str]
    read: Callable[[str], Iterable[pl.DataFrame]]

    def sealed(self, name: str) -> Sealed:
        digest = hashlib.sha256(f"{self.version}\0{name}\0{self.tables[name]}".encode())
        return Sealed("cohort-" + digest.hexdigest()[:32], lambda: self.read(name))


@dataclass(frozen=True, eq=False)
class ClusterTable:
    """A project table that lives on the cluster: ``rows`` (a cohort table, a surrogate of
    ``eid`` in its place) joined on it to ``ids`` (the project's surrogates and pids), keeping
    ``pid``, then ``kept`` (the table's index and its granted columns). ``schema`` and
    ``height`` are the table's as the single machine's view would have them; ``pids``: the
    participants' pids as a compressed bitmap (for the participant table, 1.1 MB at five
    million where their array takes 40 MB; None for an event table)."""

    schema: pl.Schema
    height: int
    rows: Sealed
    ids: Sealed
    kept: tuple[str, ...]
    pids: BitMap64 | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names())


def known_pids(tables: Mapping[str, Table], name: str, pid: str) -> BitMap64 | None:
    """The pids of table ``name`` among ``tables`` as a bitmap (:func:`sets.bitmap`; None:
    no such table)."""
    table = tables.get(name)
    if table is None:
        return None
    if isinstance(table, ClusterTable):
        return table.pids
    if isinstance(table, pl.DataFrame):
        return sets.bitmap(table[pid].cast(pl.Int64).drop_nulls().to_numpy())
    return None
