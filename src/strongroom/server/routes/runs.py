"""Analyses submitted and polled (outputs/runs.py): a long analysis answered without holding
a connection open for it. The synchronous POST /projects/{id}/analyses still answers too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from strongroom.access.context import AccessContext
from strongroom.access.permissions import Action
from strongroom.outputs import requests as output_requests
from strongroom.outputs.render import named
from strongroom.outputs.runs import Runs, RunStatus
from strongroom.server.run_schemas import RunOut, run_out
from strongroom.server.security import Caller, acts, measure
from strongroom.server.workbench_schemas import AnalysisIn, output_out
from strongroom.watch.shapes import fingerprint

router = APIRouter(tags=["enclave"])


def runs_of(request: Request) -> Runs:
    found: Runs = request.app.state.platform.runs
    return found


Work = Annotated[Runs, Depends(runs_of)]


@router.post("/projects/{project_id}/analysis-runs", response_model=RunOut, status_code=202,
             openapi_extra=acts(Action.DATA_ANALYSE))
def submit(project_id: str, body: AnalysisIn, who: Caller, work: Work, request: Request,
           response: Response) -> RunOut:
    """Submit an analysis to run in the background; the answer, at once, is its run (poll
    it at ``poll``, the Location header). It runs through the same service as POST
    /projects/{id}/analyses and is answered at the same moment of its schedule."""
    measure(request, project_id=project_id)  # the limits are held by the service
    digest, shape = fingerprint(body.analysis)
    measure(request, query_digest=digest, query_shape=shape)
    row = work.submit(who, project_id, body.analysis, body.format,
                      name=None if body.name is None else named(body.name, body.format))
    response.headers["Location"] = f"/analysis-runs/{row.id}"
    return run_out(work.get(who, row.id))


@router.get("/analysis-runs/{run_id}", response_model=RunOut,
            openapi_extra=acts(Action.OUTPUT_READ))
def poll(run_id: str, who: Caller, work: Work) -> RunOut:
    """A run's state: running (with the time's progress through its schedule), then done
    (its output, as the synchronous call answers it), refused or failed (the synchronous
    call's status and reasons) or lost (to a restart). Only its submitter sees it."""
    view = work.get(who, run_id)
    output = None
    if view.run.status == RunStatus.DONE.value and view.run.output_id is not None:
        ctx: AccessContext = work.ctx
        output = output_out(output_requests.read(ctx, who, view.run.output_id))
    return run_out(view, output)
