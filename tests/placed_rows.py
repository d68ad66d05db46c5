"""Rows placed as a cluster places them, in this process: the executors' arithmetic run here
over a frame split by participant, counting what was placed and summed, for the tests of the
models whose sums an engine takes (analyses/sums.py, cox_sums.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Any

import polars as pl

from strongroom.enclave.analyses import sums


class Counting:
    """``place=`` for ``run``: rows summed here, split in ``parts``, counting the frames placed
    and the sums taken; each placed frame must be the narrow one, of ``columns`` alone."""

    def __init__(self, columns: Collection[str], parts: int = 3) -> None:
        self.columns = frozenset(columns)
        self.parts = parts
        self.placed = 0
        self.jobs = 0

    def __call__(self, frame: pl.DataFrame) -> contextlib.AbstractContextManager[sums.Rows]:
        self.placed += 1
        outer = self

        class Rows(sums.LocalRows):
            def each(self, work: sums.Partial) -> dict[str, Any]:
                outer.jobs += 1
                return super().each(work)

        assert set(frame.columns) <= self.columns, sorted(set(frame.columns) - self.columns)
        return contextlib.nullcontext(Rows(frame, self.parts))
