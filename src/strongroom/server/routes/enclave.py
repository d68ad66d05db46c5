"""The enclave: dataset definitions, dummy data, analyses (answered with checked outputs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from strongroom.access.permissions import Action
from strongroom.enclave import service
from strongroom.outputs.render import named
from strongroom.outputs.service import Outputs
from strongroom.server.metering import measuring
from strongroom.server.security import Caller, acts, measure
from strongroom.server.workbench_schemas import (
    AnalysisIn,
    DefinitionIn,
    DefinitionOut,
    OutputOut,
    definition_out,
    output_out,
)
from strongroom.watch.shapes import fingerprint

router = APIRouter(tags=["enclave"])


def outputs_of(request: Request) -> Outputs:
    found: Outputs = request.app.state.platform.outputs
    return found


Work = Annotated[Outputs, Depends(outputs_of)]


@router.post("/projects/{project_id}/definitions", response_model=DefinitionOut,
             status_code=201, openapi_extra=acts(Action.DATA_ANALYSE))
def define(project_id: str, body: DefinitionIn, who: Caller, work: Work,
           request: Request) -> DefinitionOut:
    """Build a participant-level table inside the enclave; only its schema is returned."""
    measure(request, project_id=project_id)  # the limits are held by the service
    digest, shape = fingerprint({"sql": body.sql})
    measure(request, query_digest=digest, query_shape=shape)
    return definition_out(work.define(who, project_id, body.name, body.sql))


@router.get("/projects/{project_id}/definitions", response_model=list[DefinitionOut],
            openapi_extra=acts(Action.DATA_ANALYSE))
def list_definitions(project_id: str, who: Caller, work: Work) -> list[DefinitionOut]:
    return [definition_out(d)
            for d in service.list_definitions(work.enclave, who, project_id)]


@router.delete("/projects/{project_id}/definitions/{name}", status_code=204,
               openapi_extra=acts(Action.DATA_ANALYSE))
def drop_definition(project_id: str, name: str, who: Caller, work: Work) -> Response:
    service.drop_definition(work.enclave, who, project_id, name)
    return Response(status_code=204)


@router.get("/projects/{project_id}/dummy", openapi_extra=acts(Action.DATA_ANALYSE),
            response_class=Response,
            responses={200: {"content": {"application/zip": {}},
                             "description": "synthetic tables with the project's schema"}})
def dummy_data(project_id: str, who: Caller, work: Work) -> Response:
    """Synthetic data with exactly the project's tables and columns, to write code outside."""
    payload = service.dummy_data(work.enclave, who, project_id)
    return Response(payload, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{project_id}-dummy.zip"'})


@router.post("/projects/{project_id}/analyses", response_model=OutputOut, status_code=201,
             openapi_extra=acts(Action.DATA_ANALYSE))
def analyse(project_id: str, body: AnalysisIn, who: Caller, work: Work,
            request: Request) -> OutputOut:
    """Run an analysis and check its output; the answer is the verdict, never the values.

    Ask for release (POST /outputs/{id}/request) and download the released bytes.
    """
    measure(request, project_id=project_id)  # the limits are held by the service
    digest, shape = fingerprint(body.analysis)
    measure(request, query_digest=digest, query_shape=shape)
    return output_out(work.analyse(who, project_id, body.analysis, body.format,
                                   measuring(request),
                                   name=None if body.name is None else named(body.name,
                                                                             body.format)))
