"""The API's shapes for record-level extracts, transfer limits and declared large jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from strongroom.watch.models import DeclaredJob
from strongroom.watch.policy import Limits


class ExtractIn(BaseModel):
    format: Literal["csv", "parquet"] = "csv"
    offset: int = Field(0, ge=0, description="first participant (in master-ID order) of a page")
    limit: int | None = Field(None, ge=1, le=10_000_000,
                              description="participants in the page (none: all from offset)")


class LimitsOut(BaseModel):
    record_participants: int = Field(description="distinct participants received "
                                                 "record-level per 30 days")
    cells: int = Field(description="cells released per day")
    bytes: int = Field(description="bytes out per day")
    requests: int = Field(description="data requests per minute")
    lifetime_participants: int = Field(description="distinct participants received "
                                                   "record-level, ever")
    suspend_institution: bool


def limits_out(limits: Limits) -> LimitsOut:
    return LimitsOut.model_validate(limits.to_json())


class ProjectLimitsOut(BaseModel):
    project: LimitsOut
    person: LimitsOut | None = Field(None, description="the caller's own, over every account "
                                                      "of theirs")
    institution: LimitsOut = Field(description="this project's share of the caller's "
                                               "institution's and of the project lead's "
                                               "institution's (each split evenly among its "
                                               "active projects), the smaller of each")


class LimitsIn(BaseModel):
    values: dict[str, Any] = Field(description="the limits to change, e.g. {\"cells\": 50000}; "
                                               "names as in LimitsOut")


class JobIn(BaseModel):
    description: str = Field(min_length=1, max_length=2000)
    record_participants: int = Field(0, ge=0, le=2**31 - 1)
    cells: int = Field(0, ge=0, le=2**31 - 1)
    bytes_out: int = Field(0, ge=0, le=2**62)
    starts_at: dt.datetime
    ends_at: dt.datetime


class JobOut(BaseModel):
    id: str
    project_id: str
    description: str
    record_participants: int
    cells: int
    bytes_out: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    declared_by: str
    approved_by: str | None
    approved_at: dt.datetime | None


def job_out(job: DeclaredJob) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)
