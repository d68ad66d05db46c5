"""`strongroom demo` says what it is doing as it does it: with standard output piped (a log, as
`make demo > log` makes it), each stage is a plain line, flushed as it happens, with its
progress; on a terminal the same stages are Rich progress (cli/common.py: stage_report)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strongroom.cli.common import PlainStages

ROOT = Path(__file__).resolve().parents[2]
# the CLI's own entry point, its people acting with the test worlds' settings (cheap password
# hashes, no timing floors on answers: tests/functional/test_cli.py does the same in-process);
# the guard: the genotype reader's child processes start by importing this file
RUNNER = f"""
import functools
import sys

if __name__ == "__main__":
    sys.path.insert(0, {str(ROOT)!r})
    from strongroom.cli import demo as command
    from strongroom.demo import run_demo
    from tests.access_world import SETTINGS

    command.run_demo = functools.partial(run_demo, settings=SETTINGS, jobs=False)
    from strongroom.cli import main

    sys.argv = ["strongroom", *sys.argv[1:]]
    main()
"""


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


@pytest.mark.slow
def test_a_piped_demo_prints_each_stage_as_it_goes(tmp_path: Path) -> None:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    started = time.monotonic()
    with subprocess.Popen(
            [sys.executable, str(runner), "demo", "--dir", str(tmp_path / "demo"),
             "--participants", "1000", "--variants", "300", "--no-serve"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path) as child:
        assert child.stdout is not None and child.stderr is not None
        arrived = [(time.monotonic() - started, line.rstrip("\n")) for line in child.stdout]
        err = child.stderr.read()
        assert child.wait() == 0, err
    lines = [line for _, line in arrived]
    staged = [line for line in lines if line.startswith("[demo] ")]
    begun = [line[7:-1] for line in staged if line.endswith("…")]
    simulating = "simulating genotypes (300 markers in linked regions, 900 unlinked)"
    assert begun[:4] == ["synthesising 1,000 participants", simulating,
                         "ingesting the cohort (validated, encrypted)", "sealing the genotypes"]
    assert "touring the enclave (the red team's attacks too)" in begun
    assert "an extract, a refused one, an alert" in begun
    for stage in begun:  # each stage that began ended, with its time
        assert any(re.fullmatch(rf"\[demo\] {re.escape(stage)}: done in \d+\.\d s", line)
                   for line in staged), stage
    # progress within a stage: the simulation's tenths
    assert any(re.fullmatch(rf"\[demo\] {re.escape(simulating)}… \d+%", line)
               for line in staged)
    # flushed as they happened, not when the process ended: the first stage's line came
    # well before the last line (the whole run takes tens of seconds)
    first = next(t for t, line in arrived if line.startswith("[demo] synthesising"))
    assert arrived[-1][0] - first > 3, arrived[:3]
    # the stages come before the demo's report, which follows them
    assert lines.index(staged[-1]) < next(i for i, line in enumerate(lines)
                                          if "Participants by sex and smoking" in line)


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
