"""Outputs: verdicts, release requests, reviews by two output checkers, downloads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from strongroom.access.permissions import Action
from strongroom.outputs import requests
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.tidy import TableFormat
from strongroom.server.routes.enclave import Work
from strongroom.server.security import Caller, Ctx, acts, measure
from strongroom.server.workbench_schemas import OutputOut, ReleaseIn, ReviewIn, output_out

router = APIRouter(tags=["outputs"])

TABLE: dict[int | str, dict[str, Any]] = {200: {
    "content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
    "description": "the released figures as a labelled table"}}
BYTES: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/csv": {}},
               "description": "the output's bytes, exactly as checked"}}


@router.get("/outputs", response_model=list[OutputOut], openapi_extra=acts(Action.OUTPUT_READ))
def list_outputs(who: Caller, ctx: Ctx, project_id: str | None = None,
                 status: OutputStatus | None = None, queue: bool = False) -> list[OutputOut]:
    """Outputs you may see; ``queue=true`` lists those waiting for an output checker."""
    return [output_out(v)
            for v in requests.list_outputs(ctx, who, project_id, status, queue=queue)]


@router.get("/outputs/{output_id}", response_model=OutputOut,
            openapi_extra=acts(Action.OUTPUT_READ))
def read_output(output_id: str, who: Caller, ctx: Ctx) -> OutputOut:
    return output_out(requests.read(ctx, who, output_id))


@router.post("/outputs/{output_id}/request", response_model=OutputOut,
             openapi_extra=acts(Action.OUTPUT_REQUEST))
def request_release(output_id: str, body: ReleaseIn, who: Caller, work: Work) -> OutputOut:
    """Released at once if the check allows it; held for two reviewers; or blocked."""
    return output_out(work.request_release(who, output_id, body.justification))


@router.post("/outputs/{output_id}/withdraw", response_model=OutputOut,
             openapi_extra=acts(Action.OUTPUT_REQUEST))
def withdraw(output_id: str, who: Caller, ctx: Ctx) -> OutputOut:
    return output_out(requests.withdraw(ctx, who, output_id))


@router.post("/outputs/{output_id}/review", response_model=OutputOut,
             openapi_extra=acts(Action.OUTPUT_REVIEW))
def review(output_id: str, body: ReviewIn, who: Caller, work: Work) -> OutputOut:
    """An output checker's decision; two different checkers must approve."""
    return output_out(work.review(who, output_id, body.approve, body.reason))


@router.get("/outputs/{output_id}/table", response_class=Response, responses=TABLE,
            openapi_extra=acts(Action.OUTPUT_DOWNLOAD))
def table(output_id: str, who: Caller, work: Work, request: Request,
          format: TableFormat = TableFormat.CSV) -> Response:
    """A released output as a tidy table: a column per group variable, holding the
    dictionary's labels (the codes beside them), and a column per figure; models with their
    odds ratios. CSV or Parquet; a download like /download, counted the same way."""
    return _bytes(work.table(who, output_id, format, lambda project_id, cells: measure(
        request, project_id=project_id, cells=cells)))


def _bytes(found: requests.Download) -> Response:
    return Response(found.payload, media_type=found.media_type, headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"'})


@router.get("/outputs/{output_id}/content", response_class=Response, responses=BYTES,
            openapi_extra=acts(Action.OUTPUT_REVIEW))
def content_for_review(output_id: str, who: Caller, ctx: Ctx) -> Response:
    """The bytes under review, for an output checker."""
    return _bytes(requests.content_for_review(ctx, who, output_id))


@router.get("/outputs/{output_id}/download", response_class=Response, responses=BYTES,
            openapi_extra=acts(Action.OUTPUT_DOWNLOAD))
def download(output_id: str, who: Caller, ctx: Ctx, work: Work, request: Request) -> Response:
    """A released output's bytes (only released outputs; verified against their SHA-256).

    The cells it shows count against the project's daily limit, checked before it is sent.
    """
    return _bytes(work.download(who, output_id, lambda project_id, cells: measure(
        request, project_id=project_id, cells=cells)))
