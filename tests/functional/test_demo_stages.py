"""`strongroom demo` says what it is doing as it does it: with standard output piped (a log, as
`make demo > log` makes it), each stage is a plain line, flushed as it happens, with its
progress; on a terminal the same stages are Rich progress (cli/common.py: stage_report). The
demo itself, piped, is read in tests/functional/test_demo_how_tos.py, whose world it makes."""

from __future__ import annotations

import io
import sys

import pytest

from strongroom.cli.common import PlainStages


def test_plain_stages_say_each_stage_its_tenths_and_its_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    now = iter(range(100))
    stages = PlainStages("demo", clock=lambda: float(next(now)))
    stages.begin("simulating genotypes", 100)
    for _ in range(20):
        stages.advance(5, "genotypes")
    stages.end(12.34)
    stages.begin("ingesting the cohort")  # no total: the steps it names
    stages.advance(1, "read participants.csv")
    stages.advance(1, "read participants.csv")
    stages.end(0.5)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[demo] simulating genotypes…"
    assert lines[1:10] == [f"[demo] simulating genotypes… {p}%" for p in range(10, 100, 10)]
    assert lines[10] == "[demo] simulating genotypes: done in 12.3 s"
    assert lines[11:] == ["[demo] ingesting the cohort…",
                          "[demo] ingesting the cohort… read participants.csv",
                          "[demo] ingesting the cohort: done in 0.5 s"]


def test_rich_stages_keep_a_line_per_stage_each_finished() -> None:
    """On a terminal: a Rich task per stage, its description the stage (and the step it
    reached), complete when it ends, whether or not it had a total."""
    from rich.console import Console
    from rich.progress import Progress

    from strongroom.cli.common import RichStages

    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress(console=screen) as bar:
        stages = RichStages(bar, "demo")
        stages.begin("simulating genotypes", 100)
        stages.advance(40, "genotypes")
        assert bar.tasks[0].completed == 40
        assert bar.tasks[0].description == "demo: simulating genotypes (genotypes)"
        stages.end(1.5)
        stages.begin("touring the enclave")  # no total: shown as going, then done
        assert bar.tasks[1].total is None
        stages.end(2.0)
    assert [t.finished for t in bar.tasks] == [True, True]
    assert [t.description for t in bar.tasks] == ["demo: simulating genotypes",
                                                  "demo: touring the enclave"]
