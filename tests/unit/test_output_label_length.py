"""Labels longer than a category's name are shortened before the check (start, "…", digest):
distinct labels stay distinct, and no label's length can set an output's size or the check's
time (each an answer about whoever holds it)."""

from __future__ import annotations

import numpy as np

from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.outputs.labels import MAX_LABEL, shorten_long


def test_long_labels_are_shortened_and_stay_distinct() -> None:
    long_a, long_b = "x" * 10_000 + "a", "x" * 10_000 + "b"
    cells = [Cell((long_a,), "y" * 5000, CellKind.COUNT, 12.0, np.arange(12)),
             Cell((long_b,), "n", CellKind.COUNT, 15.0, np.arange(12, 27)),
             Cell(("short",), "n", CellKind.COUNT, 30.0, np.arange(27, 57))]
    result = Result(AnalysisKind.AGGREGATE_SQL, {}, cells)
    shorten_long(result)
    a, b, short = result.cells
    assert len(a.row[0]) <= MAX_LABEL and len(b.row[0]) <= MAX_LABEL
    assert a.row[0] != b.row[0] and a.row[0].startswith("xxx") and "…" in a.row[0]
    assert len(a.column) <= MAX_LABEL and short.row == ("short",) and short.column == "n"
