"""The CLI's progress of a submitted analysis (cli/enclave.py ``RunShown``): a stage per step
of the run's schedule, advanced by the elapsed share the server reports (the time's, never
the computation's), said as plain lines on standard error when it is not a terminal, so that
standard output carries the answer's JSON alone."""

from __future__ import annotations

import pytest

from strongroom.cli.enclave import RunShown, _PlainOnStderr


def _run(status: str, step: int | None, at: float | None, share: float | None) -> dict[str, object]:
    return {"id": "run_x", "status": status, "step": step, "step_at": at, "progress": share}


def test_a_run_s_steps_are_stages_and_its_share_their_progress(
        capsys: pytest.CaptureFixture[str]) -> None:
    clock = iter(range(100))
    shown = RunShown(_PlainOnStderr("analyse", clock=lambda: float(next(clock))))
    for polled in (_run("running", 0, 4.0, 0.0), _run("running", 0, 4.0, 0.25),
                   _run("running", 0, 4.0, 0.75), _run("running", 1, 8.0, 0.5),
                   _run("done", None, None, None)):
        shown(polled)
    out, err = capsys.readouterr()
    assert out == ""  # standard output is the answer's
    lines = err.splitlines()
    assert lines[0] == ("[analyse] run run_x: answered at its floor, 4.0 s after submission "
                        "if done by then…")
    assert "[analyse] run run_x: answered at its floor, 4.0 s after submission if done by " \
           "then… 75%" in lines
    assert any(line.startswith("[analyse] run run_x: past its floor, answered at step 1, "
                               "8.0 s after submission…") for line in lines)
    assert lines[-1].startswith("[analyse] run run_x: past its floor") and "done in" in lines[-1]


def test_an_untimed_run_says_it_runs_and_when_it_ended(
        capsys: pytest.CaptureFixture[str]) -> None:
    shown = RunShown(_PlainOnStderr("analyse", clock=lambda: 0.0))
    shown(_run("running", 0, 0.0, None))
    shown(_run("refused", None, None, None))
    _, err = capsys.readouterr()
    assert err.splitlines()[0] == "[analyse] run run_x: running…"
    assert "done in" in err.splitlines()[-1]
