"""A model's row-level sums on the executors (:mod:`strongroom.enclave.analyses.sums`).

The host hands over a narrow frame of the model's complete rows (``pid``, the outcome, each
covariate as fitted); it is written into the engine's folder as encrypted Parquet under a
master key of its own, read in one session whose key service token opens that folder alone,
and removed, its key forgotten, when the fit is done. Each sum the fit asks for is a job: the
executors read their part of the rows (every participant's rows in one part: the frame is
partitioned by ``pid`` when a participant has several), run the fit's own function over it
with one BLAS thread, and send back its few numbers (Arrow IPC), which the driver combines.
Nothing row-level comes back.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from strongroom.enclave.analyses import sums
from strongroom.enclave.results import FloatArray

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from strongroom.enclave.spark.engine import SparkEngine

_SCHEMA = pa.schema([("part", pa.binary())])


class SparkRows:
    """A model's narrow rows on the cluster, as one session reads them (:class:`sums.Rows`)."""

    def __init__(self, engine: SparkEngine, rows: DataFrame, grouped: bool):
        self.engine = engine
        self.rows = rows
        self.grouped = grouped  # a participant may have several rows: a partition at once

    def each(self, work: sums.Partial) -> dict[str, FloatArray]:
        frame = self.rows.mapInArrow(_on_executor(work, self.grouped), "part binary")
        result = self.engine.collect_arrow(frame, self.engine.limits)
        # a part decoded at a time: a Cox model's are per event time, a few MB each
        return sums.reduce(_decoded(value.as_py()) for value in result.column("part"))


@contextmanager
def model_rows(engine: SparkEngine, frame: pl.DataFrame) -> Iterator[SparkRows]:
    """``frame`` on the cluster for one fit: sealed there, read by one session, removed."""
    engine.spark  # noqa: B018 (started: the key service and the engine's folder exist)
    identifier = engine.keys.new_identifier()
    path = engine.folder / identifier
    path.mkdir(mode=0o700)
    try:
        from strongroom.enclave.spark.engine import _write

        _write(frame, path, engine.keys, identifier)
        ids = frame[sums.PID].to_numpy()
        one_each = bool(np.all(ids[1:] > ids[:-1]))
        with engine.reading([path]) as session:
            rows = engine.read_parquet(session, path)
            if not one_each:  # a participant's rows together, for their sums
                rows = rows.repartition(engine.settings.shuffle_partitions, sums.PID)
            yield SparkRows(engine, rows, grouped=not one_each)
    finally:
        engine.forget_schema(path)
        engine.keys.forget(identifier)
        shutil.rmtree(path, ignore_errors=True)


def _on_executor(work: sums.Partial, grouped: bool
                 ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """What each executor runs over its part of the rows (pickled with ``work``): batch by
    batch where each participant has one row, else over the partition at once (a
    participant's rows are all in it, not always in one batch)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from threadpoolctl import threadpool_limits

        found = (b for b in batches if b.num_rows)
        parts: list[dict[str, FloatArray]] = []
        with threadpool_limits(limits=1, user_api="blas"):
            if grouped:
                held = list(found)
                if held:
                    parts.append(work(_columns(pa.Table.from_batches(held))))
            else:
                parts += [work(_columns(pa.Table.from_batches([b]))) for b in found]
        if parts:
            yield pa.RecordBatch.from_pydict({"part": [_encoded(sums.reduce(parts))]},
                                             schema=_SCHEMA)

    return run


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _encoded(part: dict[str, FloatArray]) -> bytes:
    table = pa.table({name: pa.array([np.asarray(value, dtype=np.float64)],
                                     pa.list_(pa.float64())) for name, value in part.items()})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _decoded(data: bytes) -> dict[str, FloatArray]:
    table = pa.ipc.open_stream(data).read_all()
    return {name: np.asarray(table.column(name)[0].values.to_numpy(zero_copy_only=False),
                             dtype=np.float64)
            for name in table.column_names}
