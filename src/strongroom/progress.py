"""How long-running work says how far it has got.

- ``Progress``, ``progress(stage, advance)``: the callback domain work reports through (a
  synthesis, an ingest, a genotype simulation); its advances sum to the work's total.
- ``Stages``: a job of several such steps (the demo) says when each stage begins, how far it
  has got and when it ends; :class:`Staged` times each stage and feeds both.

Domain packages call them; the CLI turns them into Rich progress on a terminal and into plain,
flushed lines otherwise (``cli/common.py``). One definition for all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

Progress = Callable[[str, int], None]


class Stages(Protocol):
    """A job's stages as they go: each begun (with its total, 0 when it cannot say), advanced
    (``what``: the step it reached, if it names one) and ended."""

    def begin(self, stage: str, total: int = 0) -> None: ...

    def advance(self, step: int, what: str = "") -> None: ...

    def end(self, seconds: float) -> None: ...


class Staged:
    """Runs a job's stages one after another: each timed into :attr:`timings` (by its key)
    and reported to ``stages``, if any, under its label."""

    def __init__(self, stages: Stages | None = None) -> None:
        self.stages = stages
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, key: str, label: str = "", total: int = 0) -> Iterator[Progress]:
        """``with staged.stage("ingest", "ingesting the cohort") as tick:`` ... pass ``tick``
        to the work as its ``progress`` (a ``total`` > 0: the sum of its advances)."""
        start = time.perf_counter()
        if self.stages is not None:
            self.stages.begin(label or key, total)

        def tick(what: str, step: int) -> None:
            if self.stages is not None:
                self.stages.advance(step, what)

        try:
            yield tick
        finally:
            self.timings[key] = time.perf_counter() - start
            if self.stages is not None:
                self.stages.end(self.timings[key])
