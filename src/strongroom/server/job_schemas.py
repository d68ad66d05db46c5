"""The API's shapes for jobs: a researcher's code submitted to run next to the data."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from strongroom.jobs.code import MAX_ARCHIVE
from strongroom.jobs.models import JobRow
from strongroom.jobs.states import JobStatus


class PipelineJobIn(BaseModel):
    action: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")] = Field(
        description="the action of project.yaml to run (with the actions it needs)")
    code: Annotated[str, StringConstraints(min_length=4, max_length=MAX_ARCHIVE * 4 // 3 + 8)] = (
        Field(description="the repository as a zip, base64-encoded (project.yaml at its top); "
                          "the client and 'strongroom jobs submit' make it"))

    @field_validator("code")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("code is not base64") from None
        return value

    def archive(self) -> bytes:
        return base64.b64decode(self.code, validate=True)


class PipelineJobOut(BaseModel):
    id: str
    project_id: str
    requester: str
    action: str
    status: JobStatus
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    code_sha256: str
    files: dict[str, str] = Field(description="each file of the code and its SHA-256")
    plan: list[dict[str, Any]] = Field(description="the analyses asked for through "
                                                   "strongroom.sdc (on the dummy data)")
    outputs: dict[str, str] = Field(description="each output's name and its checked output's "
                                                "id (GET /outputs/{id}), in the order "
                                                "project.yaml declares them; once it has "
                                                "finished, every declared output is here")
    reasons: list[str] = Field(description="why it failed or was refused; a failure on the "
                                           "dummy data gives one reason and a failure on the "
                                           "real data another, each the same whatever "
                                           "happened (the walls met and tried, on either "
                                           "run, are the custodian's)")


def job_out(row: JobRow) -> PipelineJobOut:
    return PipelineJobOut(id=row.id, project_id=row.project_id, requester=row.requester,
                  action=row.action, status=JobStatus(row.status), created_at=row.created_at,
                  started_at=row.started_at, ended_at=row.ended_at, code_sha256=row.code_sha256,
                  files=row.files, plan=row.plan, outputs=row.outputs, reasons=row.reasons)
