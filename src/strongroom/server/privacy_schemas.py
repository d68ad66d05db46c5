"""The API's shapes for differential privacy: queries, answers, a project's mode and budget.

Privacy amounts travel as exact text (``"0.1"``, ``"1/3"``): a budget is exact arithmetic, and
a float would not say what was charged.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from strongroom.privacy.budget import Budget, SpendRow, loaded, show
from strongroom.privacy.mixed_access import MixedAccess

if TYPE_CHECKING:  # only named: the service brings the enclave (a second of the CLI's start)
    from strongroom.privacy.service import BudgetView, DPAnswer

Amount = str | float | int


class DPQueryIn(BaseModel):
    query: dict[str, Any] = Field(description=(
        "{\"kind\": \"count\" | \"sum\" | \"mean\" | \"quantile\" | \"histogram\", \"table\": "
        "\"participants\" or an event table, \"epsilon\": \"0.1\", \"where\": [...], …}; see "
        "docs/how-to/query-with-differential-privacy.md"))


class EstimateOut(BaseModel):
    label: str = Field(description="the statistic (count, sum, mean, q0.5) or the group")
    value: float | int | None
    ci_lower: float | None = Field(description="the confidence interval (None: quantiles, "
                                               "whose accuracy is in ranks)")
    ci_upper: float | None
    rank_error: float | None = Field(description="quantiles: ± rows around the target rank")


class NoiseOut(BaseModel):
    statistic: str
    distribution: str
    scale: float = Field(description="the noise's scale in the answer's units (quantiles: "
                                     "in ranks)")


class DPAnswerOut(BaseModel):
    spend_id: str
    project_id: str
    kind: str
    table: str
    epsilon: str = Field(description="charged to the budget, exactly")
    delta: str
    epsilon_used: float = Field(description="what OpenDP proves the release cost (≤ epsilon)")
    confidence: float
    estimates: list[EstimateOut]
    noise: list[NoiseOut]
    notes: list[str]
    epsilon_remaining: str
    delta_remaining: str


def answer_out(found: DPAnswer) -> DPAnswerOut:
    return DPAnswerOut(
        spend_id=found.spend_id, project_id=found.project_id, kind=found.kind,
        table=found.table, epsilon=show(found.epsilon), delta=show(found.delta),
        epsilon_used=found.epsilon_used, confidence=found.confidence,
        estimates=[EstimateOut(label=e.label, value=e.value, ci_lower=e.ci_lower,
                               ci_upper=e.ci_upper, rank_error=e.rank_error)
                   for e in found.estimates],
        noise=[NoiseOut(statistic=n.statistic, distribution=n.distribution, scale=n.scale)
               for n in found.noise],
        notes=found.notes, epsilon_remaining=show(found.budget.epsilon_remaining),
        delta_remaining=show(found.budget.delta_remaining))


class DPSettingsIn(BaseModel):
    mode: Literal["dp", "exact"] | None = Field(None, description=(
        "dp: only differentially private queries (exact analyses refused); exact: both"))
    epsilon: Amount | None = Field(None, description="the project's total ε budget")
    delta: Amount | None = Field(None, description="the project's total δ budget")
    reason: str = Field(min_length=10, max_length=2000, description=(
        "why: kept in the audit log and shown to the security team"))


class MixedAccessOut(BaseModel):
    person: str
    fields: list[int]
    dp_projects: list[str]
    exact_projects: list[str]


def mixed_out(found: list[MixedAccess]) -> list[MixedAccessOut]:
    return [MixedAccessOut(person=m.person_id, fields=m.fields, dp_projects=m.dp_projects,
                           exact_projects=m.exact_projects) for m in found]


class SpendOut(BaseModel):
    id: str
    person_id: str
    kind: str
    table: str
    epsilon: str
    delta: str
    status: str = Field(description="charged, answered or failed (a charge is never refunded)")
    charged_at: dt.datetime
    finished_at: dt.datetime | None


class BudgetOut(BaseModel):
    project_id: str
    mode: Literal["dp", "exact"]
    epsilon_total: str
    epsilon_spent: str
    epsilon_remaining: str
    delta_total: str
    delta_spent: str
    delta_remaining: str
    queries: int
    updated_at: dt.datetime | None
    updated_by: str | None
    left_dp_at: dt.datetime | None = Field(None, description=(
        "when the project left DP mode: its DP history ended there"))
    left_dp_reason: str | None = None
    spends: list[SpendOut] = Field(description="the latest charges, newest first")
    mixed_access: list[MixedAccessOut] = Field(default_factory=list, description=(
        "members who read the project's fields exactly in one project and under DP in "
        "another (shown when a mode is set)"))


def budget_out(view: BudgetView) -> BudgetOut:
    found: Budget = view.budget
    return BudgetOut(
        project_id=found.project_id, mode="dp" if found.dp_mode else "exact",
        epsilon_total=show(found.epsilon_total), epsilon_spent=show(found.epsilon_spent),
        epsilon_remaining=show(found.epsilon_remaining),
        delta_total=show(found.delta_total), delta_spent=show(found.delta_spent),
        delta_remaining=show(found.delta_remaining), queries=found.queries,
        updated_at=found.updated_at, updated_by=found.updated_by,
        left_dp_at=found.left_at, left_dp_reason=found.left_reason,
        spends=[_spend(s) for s in view.spends], mixed_access=mixed_out(view.mixed))


def _spend(row: SpendRow) -> SpendOut:
    return SpendOut(id=row.id, person_id=row.person_id, kind=row.kind, table=row.table_name,
                    epsilon=show(loaded(row.epsilon)), delta=show(loaded(row.delta)),
                    status=row.status, charged_at=row.charged_at, finished_at=row.finished_at)
