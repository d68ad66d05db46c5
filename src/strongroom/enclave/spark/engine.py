"""The enclave's checked SQL on a Spark cluster.

Tables reach the cluster as Parquet under modular encryption, written by Strongroom into the
cluster's store with keys only Strongroom's key service unwraps (:mod:`.keys`), and dropped
(their files removed, their master keys forgotten) when they leave the cache or the engine
closes. The cohort itself is sealed there once per cohort version, table by table and a chunk
of rows at a time (:meth:`SparkEngine.seal`), keyed by the content it was made from; a
project's view is then a plan, not a copy (:meth:`SparkEngine.project_view`): the executors
cut it from the cohort's Parquet and join it to the project's pseudonyms (sealed there too)
for each query, so the host never holds the cohort or a view of it. A frame handed to
:meth:`SparkEngine.select` (a definition's rows; a table in a test) is published the first
time a query reads it.
A query runs as the guard passed it, translated to Spark SQL and checked again
(:mod:`.dialect`), in a session of its own (temporary views no other query sees; a key
service token that opens only the tables it reads, revoked when it ends) over only the
columns it reads, stopped after ``limits.seconds`` (its jobs cancelled) and bounded to
``most`` + 1 rows. What comes back is a Polars frame, as from DuckDB.

Errors raised while Spark reads data can quote a value (a string that failed to convert);
for those only the kind of failure is reported, never Spark's message.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import shutil
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pyroaring import BitMap64
from sqlglot import exp

from strongroom import sets
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EID, PARTICIPANTS
from strongroom.enclave.engine import Limits, plain_types, stopped
from strongroom.enclave.engines import SPARK_FLOOR_SECONDS, SPARK_LIMITS, WEIGHT
from strongroom.enclave.sources import ClusterTable, CohortSource, Sealed, Table
from strongroom.enclave.spark.cluster import (
    SparkSettings,
    client_jar,
    close_session,
    keyed_session,
    open_session,
)
from strongroom.enclave.spark.dialect import spark_sql
from strongroom.enclave.spark.genotypes import ClusterGenotypes
from strongroom.enclave.spark.keys import KeyService
from strongroom.enclave.spark.surrogates import SID, Surrogates
from strongroom.enclave.view import PID, view_plan
from strongroom.errors import DataRefusal, Invalid

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from strongroom.enclave.analyses.regression import Placement

_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
ROWS_PER_FILE = 100_000
IDS_SLICE = 500_000  # a project's pseudonyms given their surrogates this many at a time
# the frames kept published on the cluster's storage, in bytes of their rows, as the
# enclave's own cache of definitions (workspace.DEFINITIONS_HELD); a frame is not held here,
# and its copy goes when it does (a frame the enclave has let go of is never asked for again)
PUBLISHED_HELD = 256 << 20
# Spark reads unsigned Parquet integers as wider signed ones (UINT64 as a decimal): the
# enclave's tables are published already widened, so both engines see the same types.
_WIDER: dict[type[pl.DataType], type[pl.DataType]] = {
    pl.UInt8: pl.Int16, pl.UInt16: pl.Int32, pl.UInt32: pl.Int64, pl.UInt64: pl.Int64}
@dataclass
class _Published:
    # the frame published, not held here (the enclave's cache holds a definition while it
    # is used): once it is gone its id() may be another frame's, and its copy is let go of
    frame: weakref.ref[pl.DataFrame]
    path: Path
    identifier: str
    size: int  # its rows' bytes, as published


@dataclass
class SealedCopy:
    """Rows sealed on the cluster under a content key: where, and what they are."""

    path: Path
    identifier: str  # the footer's master key (and every column's, unless ``columns``)
    schema: pl.Schema  # as the rows were handed over (before any transform and widening)
    height: int
    columns: dict[str, str]  # each column's own master key, if it has one (as written)

    def identifiers(self, columns: Iterable[str]) -> list[str]:
        """The master keys that open ``columns`` (as written) of these rows."""
        return [self.identifier, *(self.columns[c] for c in columns if c in self.columns)]


class SparkEngine:
    """Checked queries on the cluster ``settings`` names; ``secret`` derives its keys.

    The driver starts with the first query (a command that runs none, such as
    ``strongroom audit verify``, never waits for a cluster)."""

    name = "spark"

    def __init__(self, settings: SparkSettings, secret: bytes, cache_size: int = 64,
                 limits: Limits | None = None, sealed_size: int = 32,
                 floor_seconds: float = SPARK_FLOOR_SECONDS):
        self.settings = settings
        self.limits = limits or SPARK_LIMITS
        self.floor_seconds = floor_seconds
        self.keys = KeyService(secret, settings.key_host, settings.key_port)
        # this engine's own folder in the cluster's store: the only files it ever removes
        self.folder = settings.store / f"session-{uuid.uuid4().hex}"
        self._spark: SparkSession | None = None
        self._published: OrderedDict[int, _Published] = OrderedDict()
        self._cache_size = cache_size
        self._sealed: OrderedDict[str, SealedCopy] = OrderedDict()
        self._sealed_size = sealed_size
        self.seals = 0  # how many times rows were sealed (tests read it: once per content)
        self._surrogates: OrderedDict[str, Surrogates] = OrderedDict()
        # each published folder's schema as Spark read it the first time (see read_parquet)
        self._schemas: dict[Path, StructType] = {}
        self._lock = threading.RLock()
        self._genotypes = ClusterGenotypes(self)

    @property
    def spark(self) -> SparkSession:
        with self._lock:
            if self._spark is None:
                self.keys.start()
                try:
                    self._spark = open_session(self.settings, client_jar())
                except BaseException:
                    self.keys.close()
                    raise
                self.folder.mkdir(parents=True, mode=0o700)
            return self._spark

    # -- tables on the cluster ------------------------------------------------------------

    def publish(self, frame: pl.DataFrame, keep: Iterable[pl.DataFrame] = ()) -> Path:
        """Where ``frame`` is on the cluster, as encrypted Parquet (written the first time),
        for as long as the caller holds ``frame`` (its copy goes once the frame has).
        ``keep``: frames the same query reads, never let go of to make room for this one."""
        self.spark  # noqa: B018 (started: the key service and the folder exist)
        with self._lock:
            found = self._published.get(id(frame))
            if found is not None and found.frame() is frame:
                self._published.move_to_end(id(frame))
                return found.path
            for gone in [k for k, p in self._published.items() if p.frame() is None]:
                self._drop(self._published.pop(gone))  # its id() may be this frame's
            identifier = self.keys.new_identifier()
            path = self.folder / identifier
            path.mkdir(mode=0o700)
            _write(frame, path, self.keys, identifier)
            self._published[id(frame)] = _Published(weakref.ref(frame), path, identifier,
                                                    int(frame.estimated_size()))
            # at most cache_size frames, and PUBLISHED_HELD bytes of them on the cluster's
            # storage (the newest kept whatever its size)
            kept = {id(frame), *(id(f) for f in keep)}
            while True:
                held = [k for k in self._published if k not in kept]
                if not held or (len(self._published) <= self._cache_size and sum(
                        p.size for p in self._published.values()) <= PUBLISHED_HELD):
                    break
                self._drop(self._published.pop(held[0]))
            return path

    def read_parquet(self, session: SparkSession, path: Path) -> DataFrame:
        """The folder ``path`` this engine published, read in ``session``. Spark learns a
        folder's schema by a job of its own on the executors (a footer read and decrypted);
        the folder never changes, so that is done the first time only, and later queries read
        it with the schema it gave then."""
        with self._lock:
            schema = self._schemas.get(path)
        if schema is not None:
            return session.read.schema(schema).parquet(str(path))
        frame = session.read.parquet(str(path))
        with self._lock:
            self._schemas[path] = frame.schema
        return frame

    def forget_schema(self, path: Path) -> None:
        with self._lock:
            self._schemas.pop(path, None)

    def _drop(self, published: _Published | SealedCopy) -> None:
        self.forget_schema(published.path)
        self.keys.forget(published.identifier)
        if isinstance(published, SealedCopy):
            for identifier in published.columns.values():
                self.keys.forget(identifier)
        shutil.rmtree(published.path, ignore_errors=True)

    def _surrogates_of(self, cohort: CohortSource) -> Surrogates:
        """The version's surrogates for its eids: drawn the first time (from the participant
        table's eid column), the same for every table and project after that."""
        with self._lock:
            found = self._surrogates.get(cohort.version)
            if found is not None:
                self._surrogates.move_to_end(cohort.version)
                return found
            members = BitMap64()  # the participant table's eids, a chunk at a time
            for chunk in cohort.read(PARTICIPANTS):
                members |= sets.bitmap(chunk[EID].cast(pl.Int64).drop_nulls().to_numpy())
            found = Surrogates(members)
            self._surrogates[cohort.version] = found
            while len(self._surrogates) > 2:  # a version two ingests old: off the cluster
                _, old = self._surrogates.popitem(last=False)
                for key in [k for k in self._sealed if k.endswith(f"-{old.tag}")]:
                    self._drop(self._sealed.pop(key))
            return found

    def seal(self, rows: Sealed) -> SealedCopy:
        """``rows`` on the cluster as encrypted Parquet: sealed the first time their content
        key is seen (read and written a chunk at a time), the same copy after that."""
        self.spark  # noqa: B018 (started: the key service and the folder exist)
        with self._lock:
            found = self._sealed.get(rows.key)
            if found is not None:
                self._sealed.move_to_end(rows.key)
                return found
            identifier = self.keys.new_identifier()
            path = self.folder / identifier
            path.mkdir(mode=0o700)
            columns: dict[str, str] = {}
            try:
                schema, height = _write_chunks(rows, path, self.keys, identifier, columns)
            except BaseException:
                for made in (identifier, *columns.values()):
                    self.keys.forget(made)
                shutil.rmtree(path, ignore_errors=True)
                raise
            copy = SealedCopy(path, identifier, schema, height, columns)
            self.seals += 1
            self._sealed[rows.key] = copy
            while len(self._sealed) > self._sealed_size:
                _, old = self._sealed.popitem(last=False)
                self._drop(old)
            return copy

    def project_view(self, cohort: CohortSource, pseudonyms: Callable[[], pl.DataFrame],
                     fields: Iterable[int], dictionary: Dictionary) -> dict[str, Table]:
        """A project's view as tables on the cluster: the cohort's tables sealed there (once
        per cohort version), the project's pseudonyms too, and each view table a plan the
        executors run (:class:`ClusterTable`); its size (and the participants' pids) counted
        there. An event table the cohort does not hold is an empty frame with its schema."""
        surrogates = self._surrogates_of(cohort)
        sealed = {name: _cohort_rows(cohort, name, surrogates) for name in cohort.tables}
        copies = {name: self.seal(rows) for name, rows in sealed.items()}
        plan = view_plan({name: copy.schema for name, copy in copies.items()}, fields,
                         dictionary)
        def ids_rows() -> Iterator[pl.DataFrame]:
            """The project's surrogates and pids, a slice of its pseudonyms at a time (made
            again if its sealed copy has gone: 16 bytes a participant, not held with the
            view, nor are the pseudonyms)."""
            mapping = pseudonyms()
            for start in range(0, max(mapping.height, 1), IDS_SLICE):
                part = mapping.slice(start, IDS_SLICE)
                sids, found = surrogates.of(part[EID])
                yield pl.DataFrame({SID: sids, PID: part[PID].cast(pl.Int64).to_numpy()}
                                   ).filter(pl.Series(found))

        digest = hashlib.sha256(surrogates.tag.encode())
        for made in ids_rows():
            for column in (SID, PID):
                digest.update(made[column].to_numpy().tobytes())
        ids = Sealed(f"ids-{digest.hexdigest()[:32]}-{surrogates.tag}", ids_rows)
        ids_path = self.seal(ids).path
        # what reading and writing the cohort's chunks left in Arrow's allocator (its pages
        # kept for reuse): back to the system, the sealing done
        pa.default_memory_pool().release_unused()
        view: dict[str, Table] = {}
        # the tables' sizes: read their surrogates only
        opened = [i for c in copies.values() for i in c.identifiers([SID])]
        with self.reading([ids_path], opened) as session:
            for name, projection in plan.items():
                if projection.source is None:
                    view[name] = pl.DataFrame(schema=projection.schema)
                    continue
                table = ClusterTable(projection.schema, 0, sealed[projection.source], ids,
                                     projection.kept)
                frame = self._view_frame(session, table, copies[projection.source].path,
                                         ids_path, [PID])
                if name == PARTICIPANTS:
                    known = self._bitmap(frame.select(PID))
                    view[name] = ClusterTable(projection.schema, len(known), table.rows, ids,
                                              table.kept, known)
                else:
                    counted = self.collect_arrow(frame.groupBy().count())
                    view[name] = ClusterTable(projection.schema,
                                              int(counted.column(0)[0].as_py()), table.rows,
                                              ids, table.kept)
        return view

    def _bitmap(self, frame: DataFrame) -> BitMap64:
        """The values of ``frame``'s one integer column as a bitmap: each executor's part made
        there and sent back serialised (about a bit a participant), so that their array is
        never brought here."""
        made = BitMap64()
        for part in self.collect_arrow(frame.mapInArrow(_bitmap_part, "part binary")
                                       ).column("part"):
            made |= BitMap64.deserialize(part.as_py())
        return made

    # -- queries --------------------------------------------------------------------------

    def select(self, tables: Mapping[str, Table], used: Mapping[str, set[str]],
               query: exp.Query, limits: Limits, most: int, *,
               weighted: bool = False) -> pl.DataFrame:
        # refused here, before anything is published, if it would answer otherwise on Spark
        text = spark_sql(query, _kinds(tables, used))
        missing = sorted(set(used) - set(tables))
        if missing:
            raise Invalid(f"the tables {', '.join(missing)} are in the project's schema but "
                          "not loaded; ask the custodian to check the project view")
        for name in used:
            if not _TABLE_NAME.fullmatch(name):
                raise Invalid(f"{name!r} is not a table name (lower-case letters, digits, _)")
        paths: dict[str, list[Path]] = {}
        opened: list[str] = []  # a cohort table's footer and the columns the query reads
        for name, columns in used.items():
            table = tables[name]
            if isinstance(table, ClusterTable):
                rows = self.seal(table.rows)
                paths[name] = [rows.path, self.seal(table.ids).path]
                opened += rows.identifiers([SID, *(c for c in table.kept if c in columns)])
            elif isinstance(table, pl.DataFrame):
                paths[name] = [self.publish(table, keep=[
                    t for t in (tables[u] for u in used) if isinstance(t, pl.DataFrame)])]
            else:
                raise TypeError(f"the Spark engine reads frames and cluster tables, not "
                                f"{type(table).__name__}")
        published = [found[-1] for found in paths.values()]  # a frame's, or a view's ids
        with self.reading(published, opened) as session:
            for name, columns in used.items():
                table = tables[name]
                keep = [c for c in table.columns if c in columns] or table.columns[:1]
                if isinstance(table, ClusterTable):
                    source, ids = paths[name]
                    self._view_frame(session, table, source, ids, keep) \
                        .createOrReplaceTempView(name)
                else:
                    self.read_parquet(session, paths[name][0]).select(*keep) \
                        .createOrReplaceTempView(name)
            bounded = f"SELECT * FROM ({text}) AS _result LIMIT {most + 1}"  # noqa: S608
            return self._collect(session, bounded, limits, most, weighted)

    def _collect(self, session: SparkSession, text: str, limits: Limits,
                 most: int, weighted: bool = False) -> pl.DataFrame:
        from pyspark.errors import AnalysisException

        try:
            query = session.sql(text)
            if weighted:
                query = _weighted(query)
        except AnalysisException as exc:  # about the query's words: no data was read yet
            raise Invalid(f"Spark could not run the query: {_first(exc)}") from None
        frame = _as_duckdb(pl.from_arrow(self.collect_arrow(query, limits)))  # type: ignore[arg-type]
        rows = (int(frame[WEIGHT].sum()) if WEIGHT in frame.columns and frame.height
                else frame.height)
        if rows > most:
            raise DataRefusal(f"the query returns more than {most:,} rows, the most one "
                              "query may produce; narrow it with WHERE or aggregate it")
        return frame

    def collect_arrow(self, frame: DataFrame, limits: Limits | None = None) -> pa.Table:
        """``frame``'s rows at the driver, its jobs cancelled after ``limits.seconds``;
        a failure reported by its kind only (Spark's messages can quote values)."""
        from py4j.protocol import Py4JError
        from pyspark.errors import AnalysisException, PySparkException

        context = frame.sparkSession.sparkContext
        group = f"strongroom-{uuid.uuid4().hex}"
        state = {"stopped": False}

        def stop() -> None:
            state["stopped"] = True
            context.cancelJobGroup(group)

        context.setJobGroup(group, "an enclave query", interruptOnCancel=True)
        timer = threading.Timer(limits.seconds, stop) if limits is not None else None
        if timer is not None:
            timer.start()
        try:
            return frame.toArrow()
        except AnalysisException as exc:
            raise Invalid(f"Spark could not run the query: {_first(exc)}") from None
        except (PySparkException, Py4JError) as exc:
            raise _failure(exc, limits, state["stopped"]) from None
        finally:
            if timer is not None:
                timer.cancel()
            context.setJobGroup("", "")

    @contextmanager
    def reading(self, paths: Iterable[Path], identifiers: Iterable[str] = ()
                ) -> Iterator[SparkSession]:
        """A session for one query (its own temporary views) that can open the published
        ``paths`` and nothing else: its key service token is granted for their master keys
        alone (and ``identifiers``: a sealed cohort table's footer and the columns the query
        reads), and revoked when the query is done. (A published folder is named by its
        master key's identifier; a genotype set's after ``genotypes-``.)"""
        token = self.keys.grant([*(p.name.removeprefix("genotypes-") for p in paths),
                                 *identifiers])
        try:
            yield keyed_session(self.spark, self.keys, token)
        finally:
            self.keys.revoke(token)

    def _view_frame(self, session: SparkSession, table: ClusterTable, rows: Path, ids: Path,
                    columns: list[str]) -> DataFrame:
        """A view table on the executors: the cohort table's rows joined on eid to the
        project's pseudonyms, with ``pid`` for ``eid``, reading only ``columns`` of the
        view's."""
        kept = [c for c in table.kept if c in columns]
        source = self.read_parquet(session, rows).select(SID, *kept)
        pseudonyms = self.read_parquet(session, ids)
        return source.join(pseudonyms, on=SID, how="inner").select(
            *(c for c in table.columns if c in columns))

    def release(self) -> None:
        """Give back to the system what a request left free on the host: a request here
        takes seconds, and what its rows took (a definition's, aggregate SQL's, a model's:
        hundreds of MB at 5,000,000 participants) was otherwise kept by the allocators
        (Python's cycles, Arrow's pool, glibc's heap) and added to the next request's peak
        (BENCHMARKS.md, "5,000,000 participants against 500,000"). A few milliseconds to a
        few hundred."""
        import ctypes
        import gc

        gc.collect()
        pa.default_memory_pool().release_unused()
        # not glibc: its allocator returns what it will
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)

    def genotype_cluster(self) -> ClusterGenotypes:
        """Where a GWAS's association runs: the genotype sets this engine publishes."""
        return self._genotypes

    def model_rows(self) -> Placement:
        """Where a model's row-level sums are taken: its narrow rows sealed on the cluster
        for one fit, each sum a job on the executors (:mod:`.models`)."""
        from strongroom.enclave.spark.models import model_rows

        return partial(model_rows, self)

    def close(self) -> None:
        with self._lock:
            self._genotypes.close()
            for published in self._published.values():
                self._drop(published)
            self._published.clear()
            for copy in self._sealed.values():
                self._drop(copy)
            self._sealed.clear()
            self._schemas.clear()
            if self._spark is not None:
                close_session()
                self._spark = None
            self.keys.close()
            shutil.rmtree(self.folder, ignore_errors=True)


# what identical rows can be counted as one by: values that compare equal only when they
# are the same (a double's -0.0 and NaNs would be made one by Spark's grouping)
_EXACT_TYPES = ("ByteType", "ShortType", "IntegerType", "LongType", "StringType", "DateType",
                "TimestampType", "TimestampNTZType", "BooleanType")


def _bitmap_part(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """On an executor: its part of a column of integers as one serialised bitmap."""
    made = BitMap64()
    for batch in batches:
        made |= sets.bitmap(batch.column(0).drop_null().to_numpy())
    yield pa.RecordBatch.from_pydict({"part": [made.serialize()]})


def _weighted(query: DataFrame) -> DataFrame:
    """``query``'s identical rows as one, with their number in ``WEIGHT``, when every column
    is of a type whose equal values are the same (else ``query`` as it is): for aggregate
    SQL's row-level rows, whose participants' joined rows are mostly alike, fewer rows cross
    to the driver and the host."""
    from pyspark.sql import functions

    fields = query.schema.fields
    if not fields or any(type(f.dataType).__name__ not in _EXACT_TYPES for f in fields) \
            or WEIGHT in query.columns:
        return query
    return query.groupBy(*query.columns).agg(functions.count(functions.lit(1)).alias(WEIGHT))


def _kinds(tables: Mapping[str, Table], used: Mapping[str, set[str]]) -> dict[str, str]:
    """Each column name the query may read and its kind (``other`` where two tables differ)."""
    kinds: dict[str, str] = {}
    for name, columns in used.items():
        schema = tables[name].schema if name in tables else {}
        for column in columns:
            dtype = schema.get(column)
            kind = ("other" if dtype is None else "float" if dtype.is_float()
                    else "int" if dtype.is_integer() else "string" if dtype == pl.String
                    else "date" if dtype == pl.Date else "bool" if dtype == pl.Boolean
                    else "other")
            kinds[column] = kind if kinds.get(column, kind) == kind else "other"
    return kinds


def _as_duckdb(frame: pl.DataFrame) -> pl.DataFrame:
    """Spark's result as DuckDB gives it: timestamps without a time zone (the session's is
    UTC; DuckDB's TIMESTAMP has none) and decimals as 64-bit numbers."""
    zoned = [pl.col(c).dt.replace_time_zone(None) for c, t in frame.schema.items()
             if isinstance(t, pl.Datetime) and t.time_zone is not None]
    return plain_types(frame.with_columns(zoned) if zoned else frame)


def _cohort_rows(cohort: CohortSource, name: str, surrogates: Surrogates) -> Sealed:
    """A cohort table as the cluster holds it: the version's surrogates for its eids, each
    column under a master key of its own."""
    plain = cohort.sealed(name)
    return Sealed(f"{plain.key}-{surrogates.tag}", plain.read, surrogates.replace,
                  by_column=True)


def _write(frame: pl.DataFrame, path: Path, keys: KeyService, identifier: str,
           first: int = 0, columns: Mapping[str, str] | None = None) -> int:
    """``frame`` as encrypted Parquet files in ``path``, numbered from ``first`` (each
    column under its own key in ``columns``, if given); the next number."""
    if columns and set(columns) != set(frame.columns):
        raise ValueError("every column of a table sealed column by column needs its own key")
    widened = frame.with_columns(pl.col(c).cast(_WIDER[type(t)]) for c, t in frame.schema.items()
                                 if type(t) in _WIDER)
    table = widened.to_arrow(compat_level=pl.CompatLevel.oldest())
    factory, kms, config = keys.encryption(identifier, columns)
    rows = int(table.num_rows)
    files = max(1, math.ceil(rows / ROWS_PER_FILE))
    step = math.ceil(rows / files) if rows else 1
    for i in range(files):
        properties = factory.file_encryption_properties(kms, config)
        pq.write_table(table.slice(i * step, step), path / f"part-{first + i:05d}.parquet",
                       encryption_properties=properties)
    return first + files


def _write_chunks(rows: Sealed, path: Path, keys: KeyService, identifier: str,
                  columns: dict[str, str]) -> tuple[pl.Schema, int]:
    """Each chunk of ``rows`` transformed and written as it comes, into files of up to
    ``ROWS_PER_FILE`` rows (a chunk only ever in memory); the rows' schema as handed over,
    and their number. ``columns``: filled with each written column's own master key, if
    ``rows`` are sealed column by column."""
    schema: pl.Schema | None = None
    height = 0
    files = _Files(path, keys, identifier)
    try:
        for handed in rows.read():
            if schema is None:
                schema = handed.schema
            elif handed.schema != schema:
                raise ValueError("the chunks of one table differ in their columns or types")
            chunk = rows.transform(handed) if rows.transform is not None else handed
            del handed
            if rows.by_column and not columns:
                columns.update({c: keys.new_identifier() for c in chunk.columns})
            if chunk.height or not files.made:  # the first, even empty: the table's schema
                files.add(chunk, columns or None)
                height += chunk.height
    finally:
        files.close()
    if schema is None:
        raise ValueError("a table to seal came without even an empty chunk (its schema)")
    return schema, height


class _Files:
    """Encrypted Parquet files in ``path`` of up to ``ROWS_PER_FILE`` rows each, written a
    chunk at a time (each chunk a row group)."""

    def __init__(self, path: Path, keys: KeyService, identifier: str):
        self.path = path
        self.keys = keys
        self.identifier = identifier
        self.made = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0

    def add(self, chunk: pl.DataFrame, columns: Mapping[str, str] | None) -> None:
        if columns and set(columns) != set(chunk.columns):
            raise ValueError("every column of a table sealed column by column needs its own "
                             "key")
        widened = chunk.with_columns(pl.col(c).cast(_WIDER[type(t)])
                                     for c, t in chunk.schema.items() if type(t) in _WIDER)
        table = widened.to_arrow(compat_level=pl.CompatLevel.oldest())
        offset, total = 0, int(table.num_rows)
        while True:
            if self._writer is None:
                factory, kms, config = self.keys.encryption(self.identifier, columns)
                self._writer = pq.ParquetWriter(
                    self.path / f"part-{self.made:05d}.parquet", table.schema,
                    encryption_properties=factory.file_encryption_properties(kms, config))
                self.made += 1
            part = table.slice(offset, ROWS_PER_FILE - self._rows)
            self._writer.write_table(part)
            self._rows += int(part.num_rows)
            offset += int(part.num_rows)
            if self._rows >= ROWS_PER_FILE:
                self.close()
            if offset >= total:
                return

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._rows = 0


def _failure(exc: Exception, limits: Limits | None, timed_out: bool) -> DataRefusal:
    """One reason whatever stopped the query once it read the data (engine.stopped): which
    limit or which of Spark's error classes it was is an answer about the data."""
    log.info("a Spark query stopped once it had read the data: %s%s",
             _condition(exc) or type(exc).__name__, " (its time limit)" if timed_out else "")
    return stopped(limits if limits is not None else Limits())


def _condition(exc: Exception) -> str | None:
    """Spark's error class, read from the error (never its message, which can quote data)."""
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    condition = getter() if getter is not None else None
    if condition:
        return str(condition).split(".")[0]
    found = re.search(r"\[([A-Z][A-Z_]+)(\.[A-Z_]+)?\]", str(exc))
    return found.group(1) if found else None


def _first(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
