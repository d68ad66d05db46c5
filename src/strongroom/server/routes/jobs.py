"""Jobs: a researcher's own code, run in the sandbox next to the data (jobs/service.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from strongroom.access.permissions import Action
from strongroom.jobs.service import Jobs
from strongroom.server.job_schemas import PipelineJobIn, PipelineJobOut, job_out
from strongroom.server.security import Caller, acts, measure

router = APIRouter(tags=["jobs"])


def jobs_of(request: Request) -> Jobs:
    found: Jobs = request.app.state.platform.jobs
    return found


Work = Annotated[Jobs, Depends(jobs_of)]


@router.post("/projects/{project_id}/pipeline-jobs", response_model=PipelineJobOut, status_code=202,
             openapi_extra=acts(Action.DATA_ANALYSE))
def submit(project_id: str, body: PipelineJobIn, who: Caller, work: Work,
           request: Request) -> PipelineJobOut:
    """Run an action of the project's pipeline in the sandbox: first on dummy data, then on
    the real data. The answer is the queued job; read it again for its status and outputs."""
    measure(request, project_id=project_id)  # the limits are held by the service
    return job_out(work.start(who, project_id, body.archive(), body.action))


@router.get("/projects/{project_id}/pipeline-jobs", response_model=list[PipelineJobOut],
            openapi_extra=acts(Action.PROJECT_READ))
def list_jobs(project_id: str, who: Caller, work: Work) -> list[PipelineJobOut]:
    return [job_out(row) for row in work.of_project(who, project_id)]


@router.get("/pipeline-jobs/{job_id}", response_model=PipelineJobOut,
            openapi_extra=acts(Action.PROJECT_READ))
def get_job(job_id: str, who: Caller, work: Work) -> PipelineJobOut:
    return job_out(work.get(who, job_id))


@router.get("/pipeline-jobs/{job_id}/code", openapi_extra=acts(Action.PROJECT_READ),
            response_class=Response,
            responses={200: {"content": {"application/zip": {}},
                             "description": "the code the job ran, as submitted"}})
def job_code(job_id: str, who: Caller, work: Work) -> Response:
    """The code a job ran: for its project's members and for the output checkers, who review
    its outputs beside it."""
    return Response(work.code(who, job_id), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{job_id}-code.zip"'})
