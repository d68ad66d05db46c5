"""Ingest: read input files, merge them, validate everything, then store a new cohort version.

Several wide files (UK Biobank "baskets") are merged on eid; event tables are concatenated.
Nothing is written unless every file reads cleanly and every value validates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from strongroom.audit.operators import Operator
from strongroom.cohort.formats import read_table
from strongroom.cohort.model import EID, Cohort
from strongroom.cohort.modeldir import is_cohort_dir, read_cohort_dir
from strongroom.cohort.problems import IngestError, Problem
from strongroom.cohort.store import CohortVersion, Store
from strongroom.cohort.validate import validate
from strongroom.progress import Progress


@dataclass(frozen=True)
class Input:
    """One input as read: its storage-model tables and where it came from."""

    name: str
    cohort: Cohort
    files: list[dict[str, Any]]


def ingest(
    store: Store,
    paths: Sequence[Path],
    *,
    relax: Iterable[str] = (),
    progress: Progress | None = None,
    by: Operator | None = None,
) -> CohortVersion:
    """Validate ``paths`` against the store's dictionary and store them as the new cohort
    (``by``: the operator, named in its audit event)."""
    if not paths:
        raise IngestError([Problem("(no input)", "give at least one file or cohort directory")])
    inputs, problems = read_inputs(paths, store, progress)
    typed: list[Input] = []
    for item in inputs:  # each input checked on its own first, so rows are its own rows
        try:
            cohort = validate(item.cohort, store.dictionary, item.name, relax=relax)
        except IngestError as exc:
            problems += exc.problems
            continue
        typed.append(Input(item.name, cohort, item.files))
    if problems:
        raise IngestError(problems)
    cohort = typed[0].cohort
    if len(typed) > 1:  # then across inputs: conflicts, duplicates, orphans, dates vs birth
        label = " + ".join(i.name for i in typed)
        cohort = validate(merge(typed), store.dictionary, label, relax=relax)
    if progress:
        progress("validated", 1)
    sources = [f for i in inputs for f in i.files]
    return store.write_version(cohort, sources, progress, by=by)


def read_inputs(
    paths: Sequence[Path], store: Store, progress: Progress | None = None
) -> tuple[list[Input], list[Problem]]:
    inputs: list[Input] = []
    problems: list[Problem] = []
    for path in paths:
        if not path.exists():
            problems.append(Problem(str(path), "no such file or directory"))
            continue
        if is_cohort_dir(path):
            files = sorted(p for p in path.iterdir() if p.is_file())
            inputs.append(Input(path.name, read_cohort_dir(path), [_describe(p) for p in files]))
        elif path.is_dir():
            problems.append(Problem(str(path), "a directory, but not a cohort directory made by "
                                    "`strongroom cohort synth --out DIR` (no cohort.json)"))
            continue
        else:
            try:
                result = read_table(path, store.dictionary)
            except IngestError as exc:  # unreadable: report it beside the other files' problems
                problems += exc.problems
                continue
            problems += result.problems
            if EID in result.cohort.participants.columns:  # else the reader said so already
                inputs.append(Input(path.name, result.cohort, [_describe(path)]))
        if progress:
            progress(f"read {path.name}", 1)
    return inputs, problems


def merge(inputs: list[Input]) -> Cohort:
    """One cohort from several validated inputs: participants joined on eid, events stacked.

    A field present in two inputs is a conflict and refused.
    """
    seen: dict[str, str] = {}
    conflicts: list[Problem] = []
    for item in inputs:
        for column in item.cohort.participants.columns:
            if column != EID and column in seen:
                conflicts.append(Problem(item.name, f"column also in {seen[column]}; "
                                         "each field may come from one input only", column))
            seen.setdefault(column, item.name)
    if conflicts:
        raise IngestError(conflicts)
    participants = inputs[0].cohort.participants
    for item in inputs[1:]:
        participants = participants.join(item.cohort.participants, on=EID, how="full",
                                         coalesce=True)
    events: dict[str, list[pl.DataFrame]] = {}
    for item in inputs:
        for name, frame in item.cohort.events.items():
            events.setdefault(name, []).append(frame)
    return Cohort(participants, {n: pl.concat(fs, how="diagonal") for n, fs in events.items()})


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "sha256": digest.hexdigest(), "bytes": path.stat().st_size}
