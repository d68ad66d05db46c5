"""The API's shapes for analyses submitted and polled (outputs/runs.py)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from strongroom.outputs.runs import RunView, http_status
from strongroom.server.workbench_schemas import OutputOut


class RunProblemOut(BaseModel):
    """How a run that was not answered with an output ended: what the synchronous call
    (POST /projects/{id}/analyses) would have answered, status, error and reasons alike."""

    status: int = Field(description="the HTTP status the synchronous call would answer")
    error: str = Field(description="its kind: invalid, forbidden, conflict, rate-limited…")
    reasons: list[str]
    retry_after: int | None = Field(None, description="seconds to wait, for rate-limited")


class RunOut(BaseModel):
    id: str
    project_id: str
    kind: str
    status: str = Field(description="running, then done, refused, failed or lost")
    submitted_at: dt.datetime
    ended_at: dt.datetime | None
    poll: str = Field(description="where to read it again")
    floor: float = Field(description="its schedule's first step, in seconds after "
                                     "submission (0: answered as soon as it is done)")
    ratio: float = Field(description="each later step is this many times the last")
    elapsed: float = Field(description="seconds since submission, as the server reads them")
    step: int | None = Field(description="while running: the schedule's step the time since "
                                         "submission has reached (0: the floor)")
    step_at: float | None = Field(description="while running: when that step is due, in "
                                               "seconds after submission")
    progress: float | None = Field(description="while running: the elapsed share of that "
                                               "step, from the time alone, never from the "
                                               "computation (none for an untimed schedule)")
    output: OutputOut | None = Field(None, description="done: the output, as the synchronous "
                                                       "call answers it")
    problem: RunProblemOut | None = Field(None, description="refused, failed or lost: why")


def run_out(view: RunView, output: OutputOut | None = None) -> RunOut:
    row, shown = view.run, view.progress
    problem = None
    code = http_status(row)
    if row.error is not None and code is not None:
        problem = RunProblemOut(status=code, error=row.error, reasons=list(row.reasons),
                                retry_after=row.retry_after)
    return RunOut(
        id=row.id, project_id=row.project_id, kind=row.kind, status=row.status,
        submitted_at=row.submitted_at, ended_at=row.ended_at, poll=f"/analysis-runs/{row.id}",
        floor=row.floor, ratio=row.ratio, elapsed=round(view.elapsed, 3),
        step=shown.step if shown is not None else None,
        step_at=shown.at if shown is not None else None,
        progress=shown.share if shown is not None else None,
        output=output, problem=problem)
