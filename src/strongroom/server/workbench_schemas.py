"""The API's shapes for the enclave (definitions, analyses) and the outputs (checks, release)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from strongroom.outputs.render import Format
from strongroom.outputs.states import OutputStatus

if TYPE_CHECKING:  # only named: importing them brings the enclave and the check (the CLI's start)
    from strongroom.enclave.definitions import Definition
    from strongroom.outputs.requests import OutputView


class DefinitionIn(BaseModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")] = Field(
        description="lower-case identifier; later SQL may refer to the definition by it")
    sql: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] = Field(
        description="one SELECT (DuckDB dialect) over the project's tables; must return pid")


class DefinitionOut(BaseModel):
    name: str
    sql: str
    created_at: dt.datetime
    columns: dict[str, str]
    size_ok: bool = Field(description="whether it holds at least the threshold of participants "
                                      "(exact sizes are not shown)")


def definition_out(definition: Definition) -> DefinitionOut:
    return DefinitionOut.model_validate(definition.public())


class AnalysisIn(BaseModel):
    analysis: dict[str, Any] = Field(
        description="the analysis: {\"kind\": \"crosstab\", \"definition\": \"<name>\", "
                    "\"rows\": …} or {\"kind\": \"aggregate_sql\", \"sql\": \"SELECT … GROUP BY "
                    "…\"}; see docs/reference/analyses.md")
    format: Format = Format.JSON
    name: str | None = Field(
        None, max_length=200,
        description="the output's file name, without its extension (letters, digits, _ and "
                    "-; anything else becomes -); by default one made from the request, e.g. "
                    "crosstab-adults-sex-smoking")


class FindingOut(BaseModel):
    rule: str
    verdict: str
    reason: str
    cell: int | None


class ReviewOut(BaseModel):
    reviewer: str
    decision: str
    reason: str
    at: dt.datetime


class OutputOut(BaseModel):
    id: str
    project_id: str
    requester: str
    status: OutputStatus
    verdict: str = Field(description="release, release_with_suppression, review or block")
    findings: list[FindingOut]
    suppressed: list[int] = Field(description="indexes of the analysis's cells hidden")
    removed: list[int] = Field(description="indexes of the analysis's cells left out of the "
                               "file, labels and all (their labels are held by too few)")
    rules_version: str
    thresholds: dict[str, Any]
    kind: str
    spec: dict[str, Any]
    sha256: str | None = Field(description="the bytes' SHA-256, once released (before, it "
                                            "would let a guess of the content be tested)")
    media_type: str
    filename: str
    size: int | None = Field(description="the bytes' size, once released")
    created_at: dt.datetime
    requested_at: dt.datetime | None
    decided_at: dt.datetime | None
    justification: str | None
    reviews: list[ReviewOut]


def output_out(view: OutputView) -> OutputOut:
    row, report = view.output, view.report
    sha256, size = view.digest
    return OutputOut(
        id=row.id, project_id=row.project_id, requester=row.requester, status=view.status,
        verdict=report.verdict.value,
        findings=[FindingOut(**f.as_dict()) for f in report.findings],
        suppressed=sorted(report.suppressed), removed=sorted(report.removed),
        rules_version=report.rules_version, thresholds=report.thresholds, kind=row.kind,
        spec=row.spec, sha256=sha256,
        media_type=row.media_type, filename=row.filename, size=size,
        created_at=row.created_at, requested_at=row.requested_at, decided_at=row.decided_at,
        justification=row.justification,
        reviews=[ReviewOut(reviewer=r.reviewer, decision=r.decision, reason=r.reason, at=r.at)
                 for r in view.reviews])


class ReleaseIn(BaseModel):
    justification: Annotated[str, StringConstraints(max_length=5000)] | None = Field(
        default=None, description="why the output is needed; required when it is held for "
                                  "review (at least 20 characters)")


class ReviewIn(BaseModel):
    approve: bool
    reason: Annotated[str, StringConstraints(max_length=5000)] = Field(
        default="", description="required to reject (the researcher reads it)")
