"""Differential privacy: DP queries against a project's budget; its mode and budget."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from strongroom.access.permissions import Action
from strongroom.privacy.service import Privacy
from strongroom.server.privacy_schemas import (
    BudgetOut,
    DPAnswerOut,
    DPQueryIn,
    DPSettingsIn,
    answer_out,
    budget_out,
)
from strongroom.server.security import Caller, acts, measure
from strongroom.watch.shapes import fingerprint

router = APIRouter(tags=["privacy"])


def privacy_of(request: Request) -> Privacy:
    found: Privacy = request.app.state.platform.privacy
    return found


Dp = Annotated[Privacy, Depends(privacy_of)]


@router.post("/projects/{project_id}/dp/queries", response_model=DPAnswerOut,
             openapi_extra=acts(Action.DATA_ANALYSE))
def query(project_id: str, body: DPQueryIn, who: Caller, dp: Dp,
          request: Request) -> DPAnswerOut:
    """Answer a differentially private query, charging its ε to the project's budget first.

    The answer carries each estimate's confidence interval and the noise's scale, and what
    remains of the budget. A query the budget cannot pay for is refused (409), saying what
    remains and what was asked.
    """
    measure(request, project_id=project_id)  # the limits are held by the service
    digest, shape = fingerprint(body.query)
    measure(request, query_digest=digest, query_shape=shape)
    found = dp.query(who, project_id, body.query)
    measure(request, cells=len(found.estimates))
    return answer_out(found)


@router.get("/projects/{project_id}/dp/budget", response_model=BudgetOut,
            openapi_extra=acts(Action.PROJECT_READ))
def read_budget(project_id: str, who: Caller, dp: Dp) -> BudgetOut:
    """A project's DP mode, its privacy budget (exact: spent, remaining) and latest charges."""
    return budget_out(dp.budget_of(who, project_id))


@router.put("/projects/{project_id}/dp", response_model=BudgetOut,
            openapi_extra=acts(Action.PROJECT_WRITE))
def configure(project_id: str, body: DPSettingsIn, who: Caller, dp: Dp) -> BudgetOut:
    """Set a project's DP mode and budget totals with a reason, within the platform's ceiling.

    Never below what is already spent; leaving DP mode ends the project's DP history."""
    return budget_out(dp.configure(who, project_id, reason=body.reason,
                                   dp_mode=None if body.mode is None else body.mode == "dp",
                                   epsilon=body.epsilon, delta=body.delta))
