"""Wide Parquet: read with any of the three header styles, keeping the file's types; written
with RAP names and typed columns (the form UKB's Research Analysis Platform exports)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.formats._files import atomic_output, unreadable
from strongroom.cohort.formats.naming import resolve_header
from strongroom.cohort.formats.text import WideRead
from strongroom.cohort.formats.wide import from_model
from strongroom.cohort.model import EID, Cohort
from strongroom.cohort.problems import ROW, Problem


def read_parquet(path: Path, dictionary: Dictionary, source: str) -> WideRead:
    """Read a wide Parquet file; ``_row`` is the 1-based row in the file."""
    try:
        # pyarrow's ParquetFile, not Polars or pq.read_table: it reads files with duplicate
        # column names, which we report rather than refuse
        table = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(path, str(exc).splitlines()[0]) from exc
    header = resolve_header(table.column_names, dictionary, source)
    problems = list(header.problems)
    if table.num_rows == 0:
        problems.append(Problem(source, "the file has no data rows"))

    positions, names = [], []
    if header.eid is not None:
        positions.append(header.eid)
        names.append(EID)
    keys = {}
    for column in header.columns:
        dtype = table.schema.field(column.position).type
        if pa.types.is_nested(dtype):
            problems.append(Problem(
                source,
                f"column holds {dtype} values; export array fields with one column per "
                "array slot (p41270_a0, p41270_a1 …); column dropped",
                field=column.name,
            ))
            continue
        positions.append(column.position)
        names.append(column.name)
        keys[column.name] = column.key
    frame = pl.from_arrow(table.select(positions).rename_columns(names))
    assert isinstance(frame, pl.DataFrame)  # a Table always gives a DataFrame
    frame = frame.with_columns(
        # Dictionary-encoded text (pandas categoricals) is still text to the validator;
        # "" is a missing value in every UKB format.
        pl.col(pl.Categorical, pl.Enum).cast(pl.String),
    ).with_columns(
        pl.col(pl.String).replace("", None),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW),
    )
    ordered = [EID] if EID in frame.columns else []
    return WideRead(frame.select(*ordered, ROW, *keys), keys, header.naming, problems)


def write_parquet(cohort: Cohort, path: Path, dictionary: Dictionary) -> None:
    """Write the cohort wide with RAP column names and its own (storage) types."""
    wide, _ = from_model(cohort, dictionary)
    with atomic_output(path) as fh:
        wide.write_parquet(fh, compression="zstd")
