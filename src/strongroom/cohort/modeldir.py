"""A cohort in the storage model as a directory of plain Parquet files.

This is the hand-over format between ``cohort synth`` and ``cohort ingest`` (synthetic data
only: real participant data lives in the encrypted store, never in such a directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from strongroom.cohort.model import EVENT_TABLES, PARTICIPANTS, Cohort

MANIFEST = "cohort.json"
FORMAT = "strongroom-cohort-dir/1"


def write_cohort_dir(cohort: Cohort, out: Path, metadata: dict[str, Any] | None = None) -> None:
    """Write one Parquet file per table, then the manifest (its presence marks completeness)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    tables = {}
    for name, frame in cohort.tables():
        frame.write_parquet(out / f"{name}.parquet", compression="zstd")
        tables[name] = {"file": f"{name}.parquet", "rows": frame.height}
    manifest = {"format": FORMAT, "tables": tables, **(metadata or {})}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def is_cohort_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def read_cohort_dir(path: Path) -> Cohort:
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path / MANIFEST} is not a {FORMAT} manifest")
    tables = manifest["tables"]
    participants = pl.read_parquet(path / tables[PARTICIPANTS]["file"])
    events = {
        t.name: pl.read_parquet(path / tables[t.name]["file"])
        for t in EVENT_TABLES
        if t.name in tables
    }
    return Cohort(participants, events)
