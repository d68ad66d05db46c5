"""Record-level extracts (researchers on projects with the export permission), the transfer
limits that hold before they run, and large jobs declared and approved in advance."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from strongroom.access.permissions import Action
from strongroom.errors import Invalid
from strongroom.extracts import service as extracts_service
from strongroom.extracts.service import create_extract
from strongroom.platform import Platform
from strongroom.server.security import Caller, acts, measure
from strongroom.server.transfer_schemas import (
    ExtractIn,
    JobIn,
    JobOut,
    LimitsIn,
    LimitsOut,
    ProjectLimitsOut,
    job_out,
    limits_out,
)

router = APIRouter(tags=["transfers"])

MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def platform_of(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


@router.post("/projects/{project_id}/extracts", response_class=Response,
             openapi_extra=acts(Action.DATA_EXPORT),
             responses={200: {"content": {m: {} for m in MEDIA.values()},
                              "description": "the fingerprinted extract"}})
def take_extract(project_id: str, body: ExtractIn, who: Caller, request: Request) -> Response:
    """A traceable record-level extract for you (the export permission is needed).

    Its participants count against the project's 30-day limit before anything is made;
    over the limit, nothing is made, and the person and project are suspended.
    """
    platform = platform_of(request)
    measure(request, project_id=project_id)
    rows = slice(body.offset, None if body.limit is None else body.offset + body.limit)
    where = platform.access.project_dir(project_id)
    if not where.is_dir():
        raise Invalid(f"project {project_id} has no files yet; it cannot take an extract")
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        out = Path(tmp) / f"{project_id}-extract.{body.format}"
        made = create_extract(platform.access, who, project_id, body.format, out,
                              store=platform.store, watch=platform.watch,
                              action=Action.DATA_EXPORT, rows=rows)
        payload = out.read_bytes()
    measure(request, record_rows=made.rows, participants=made.participants)
    return Response(payload, media_type=MEDIA[body.format], headers={
        "Content-Disposition": f'attachment; filename="{out.name}"',
        "X-Strongroom-Extract": made.extract_id})


@router.get("/projects/{project_id}/risk", openapi_extra=acts(Action.RISK_READ))
def candidate_risk(project_id: str, who: Caller, request: Request,
                   k: int = Query(5, ge=2, le=1000)) -> dict[str, Any]:
    """The re-identification risk report of the project's extract candidate: k-anonymity,
    class sizes, sample uniques, l-diversity, t-closeness, prosecutor / journalist / marketer
    risk and population-uniqueness estimates (counts only)."""
    platform = platform_of(request)
    return extracts_service.candidate_risk(platform.access, who, project_id,
                                           store=platform.store, k=k)


@router.get("/projects/{project_id}/limits", response_model=ProjectLimitsOut,
            openapi_extra=acts(Action.PROJECT_READ))
def read_limits(project_id: str, who: Caller, request: Request) -> ProjectLimitsOut:
    """The transfer limits that hold for the caller's transfers in a project: the project's,
    the caller's own (over every account of theirs), and their institutions' (the smallest of
    their own institution's and the project lead's). Every one applies."""
    project, person, institution = platform_of(request).watch.limits(who, project_id)
    return ProjectLimitsOut(project=limits_out(project), person=limits_out(person),
                            institution=limits_out(institution))


@router.put("/watch/limits/{scope}/{target_id}", response_model=LimitsOut,
            openapi_extra=acts(Action.WATCH_LIMITS_SET))
def set_limits(scope: str, target_id: str, body: LimitsIn, who: Caller,
               request: Request) -> LimitsOut:
    """Change a project's or an institution's limits (scope: project | institution)."""
    return limits_out(platform_of(request).watch.set_limits(who, scope, target_id,
                                                            body.values))


@router.post("/projects/{project_id}/jobs", response_model=JobOut, status_code=201,
             openapi_extra=acts(Action.WATCH_JOB_DECLARE))
def declare_job(project_id: str, body: JobIn, who: Caller, request: Request) -> JobOut:
    """Declare a large job ahead of running it; a custodian admin approves it."""
    return job_out(platform_of(request).watch.declare_job(
        who, project_id, body.description, record_participants=body.record_participants,
        cells=body.cells, bytes_out=body.bytes_out, starts_at=body.starts_at,
        ends_at=body.ends_at))


@router.get("/projects/{project_id}/jobs", response_model=list[JobOut],
            openapi_extra=acts(Action.PROJECT_READ))
def list_jobs(project_id: str, who: Caller, request: Request) -> list[JobOut]:
    return [job_out(j) for j in platform_of(request).watch.jobs(who, project_id)]


@router.post("/watch/jobs/{job_id}/approve", response_model=JobOut,
             openapi_extra=acts(Action.WATCH_LIMITS_SET))
def approve_job(job_id: str, who: Caller, request: Request) -> JobOut:
    return job_out(platform_of(request).watch.approve_job(who, job_id))
