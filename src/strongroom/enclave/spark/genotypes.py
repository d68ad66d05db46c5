"""A GWAS's association on the Spark cluster: the genotype set published once, under the
engine's keys, and each chunk fitted by the executor that reads it.

Publishing: the sealed store's chunks are decrypted here, in memory, and written as they are
packed (two bits a call, :mod:`strongroom.genomics.encoding`) into encrypted Parquet in the
engine's folder, one row and one file per chunk, under a master key of their own that the key
service forgets when the set leaves the cluster. The whole set is published (every sample), so
every project's GWAS over it reads the same files; the samples a fit uses travel with the fit.

Fitting: the fit is the single-machine GWAS's own per-chunk function (a closure over the
covariate basis and the residualised traits, :func:`strongroom.genomics.gwas.fitted`), shipped
to the executors by PySpark (broadcast when large). Each executor decodes its chunks, cuts
them to the tested variants and the analysed samples, fits them with one BLAS thread and sends
back only the result columns (Arrow IPC): the statistics are the single machine's, to its
floating-point order of operations.
"""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from strongroom.genomics import encoding
from strongroom.genomics.gwas import Block, Distributed, Fit, only_variants, read_chunk

if TYPE_CHECKING:
    from strongroom.enclave.spark.engine import SparkEngine
    from strongroom.genomics.store import Genotypes, GenotypeSet

# one chunk a task where chunks are large; small ones are packed together by Spark
_PARTITION_BYTES = "16m"


@dataclass
class _PublishedSet:
    path: Path
    identifier: str


class ClusterGenotypes:
    """The genotype sets a :class:`SparkEngine` has published; at most ``keep`` at once."""

    def __init__(self, engine: SparkEngine, keep: int = 1):
        self.engine = engine
        self._keep = keep
        self._sets: dict[str, _PublishedSet] = {}
        self._lock = threading.Lock()

    def chunks(self, genotypes: Genotypes, held: GenotypeSet, rows: npt.NDArray[np.intp],
               wanted: npt.NDArray[np.int64]) -> SparkChunks:
        return SparkChunks(self.engine, self.publish(held.id, genotypes.packed(held)),
                           np.asarray(rows, dtype=np.intp), np.asarray(wanted, dtype=np.int64))

    def publish(self, set_id: str, packed: Iterable[tuple[int, bytes]]) -> Path:
        """Where the set ``set_id`` is on the cluster (its ``packed`` chunks written the first
        time)."""
        engine = self.engine
        engine.spark  # noqa: B018 (started: the key service and the engine's folder exist)
        with self._lock:
            found = self._sets.get(set_id)
            if found is not None:
                return found.path
            identifier = engine.keys.new_identifier()
            path = engine.folder / f"genotypes-{identifier}"
            path.mkdir(mode=0o700)
            try:
                _write_chunks(packed, path, engine, identifier)
            except BaseException:
                self._forget(_PublishedSet(path, identifier))
                raise
            while len(self._sets) >= self._keep:
                self._forget(self._sets.pop(next(iter(self._sets))))
            self._sets[set_id] = _PublishedSet(path, identifier)
            return path

    def _forget(self, published: _PublishedSet) -> None:
        self.engine.forget_schema(published.path)
        self.engine.keys.forget(published.identifier)
        shutil.rmtree(published.path, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            for published in self._sets.values():
                self._forget(published)
            self._sets.clear()


def _write_chunks(packed: Iterable[tuple[int, bytes]], path: Path, engine: SparkEngine,
                  identifier: str) -> None:
    factory, kms, config = engine.keys.encryption(identifier)
    for count, (first, plain) in enumerate(packed):
        table = pa.table({"first": pa.array([first], pa.int64()),
                          "chunk": pa.array([plain], pa.large_binary())})
        pq.write_table(table, path / f"chunk-{count:06d}.parquet", compression="none",
                       encryption_properties=factory.file_encryption_properties(kms, config))


class SparkChunks(Distributed):
    """A published set's chunks, the samples at ``rows`` and the ``wanted`` variants."""

    def __init__(self, engine: SparkEngine, path: Path, rows: npt.NDArray[np.intp],
                 wanted: npt.NDArray[np.int64]):
        self.engine = engine
        self.path = path
        self.rows = rows
        self.wanted = wanted

    def fit_each(self, fit: Fit, n: int) -> list[Block]:
        with self.engine.reading([self.path]) as session:
            session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "1")
            session.conf.set("spark.sql.files.maxPartitionBytes", _PARTITION_BYTES)
            job = _on_executor(fit, n, self.rows, self.wanted)
            frame = self.engine.read_parquet(session, self.path).mapInArrow(job,
                                                                            "block binary")
            result = self.engine.collect_arrow(frame)
        return [_block(value) for value in result.column("block").to_pylist()]


def _on_executor(fit: Fit, n: int, rows: npt.NDArray[np.intp], wanted: npt.NDArray[np.int64]
                 ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each executor runs over its chunks (pickled with what it closes over)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            for batch in batches:
                firsts = batch.column("first").to_pylist()
                for first, chunk in zip(firsts, batch.column("chunk").to_pylist(), strict=True):
                    dosages = encoding.decode(chunk, rows)
                    for part in only_variants([(first, dosages)], wanted):
                        for block in fit(*read_chunk(part, n)):
                            yield pa.RecordBatch.from_pydict({"block": [_ipc(block)]},
                                                             schema=_SCHEMA)

    return run


_SCHEMA = pa.schema([("block", pa.binary())])


def _ipc(block: Block) -> bytes:
    table = pa.table({name: pa.array(values) for name, values in block.items()})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _block(data: bytes) -> Block:
    table = pa.ipc.open_stream(data).read_all()
    return {name: table.column(name).to_numpy() for name in table.column_names}
