"""Differential privacy that cannot be side-stepped, each promise tried against the real platform:

- a project in DP mode never gets a record-level extract, even with export approved after;
- a budget is set only within the custodian's ceiling, each change (and each refusal) audited
  with its reason and raised as an alert the security team lists;
- leaving DP mode ends the project's DP history: what it spent stays on record, nothing more
  is charged, it cannot come back, and what follows is checked as exact;
- one person's exact and DP access to the same field across projects is shown to the
  committee on every change that makes it, and refused when the policy says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.audit import EventType
from strongroom.errors import Conflict, Invalid, Refused
from strongroom.extracts import service as extracts
from strongroom.privacy.budget import SpendRow
from strongroom.privacy.mixed_access import MixedAccess
from strongroom.server.web.pages import PREFIX
from strongroom.watch.alerts import AlertFilter, list_alerts
from strongroom.watch.states import Severity
from tests.access_world import World, build_world
from tests.integration.test_web_permissions import signed_in

WHY = "the committee approved DP answers for this project"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path, cohort=300, fields=[31, 34])
    yield built
    built.platform.close()


@pytest.fixture
def committee(world: World) -> Principal:
    return world.sign_in(world.staff[Role.ACCESS_COMMITTEE])


@pytest.fixture
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    return world.sign_in(world.researcher)


def events(world: World, kind: EventType) -> list[dict[str, object]]:
    return [dict(e.details) for e in world.platform.audit.entries() if e.type == kind]


def alerts(world: World, detector: str) -> list[tuple[str, str, list[str]]]:
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    return [(a.alert.severity, a.alert.project_id or "", a.alert.reasons)
            for a in list_alerts(world.ctx, analyst, AlertFilter(detector=detector))]


def other_project(world: World, fields: list[int], title: str = "Sex ratio",
                  lead: str | None = None) -> str:
    assert world.researcher is not None
    today = world.clock().date()
    return projects.create(world.ctx, None, title=title, purpose="A second look at the cohort",
                           lead_id=lead or world.researcher.person_id, starts_on=today,
                           expires_on=today.replace(year=today.year + 1),
                           fields=fields).project.id


def test_export_approved_after_dp_mode_still_gets_no_extract(
        world: World, committee: Principal, researcher: Principal, tmp_path: Path) -> None:
    world.platform.privacy.configure(committee, world.project_id, dp_mode=True, epsilon="1",
                                     reason=WHY)
    projects.request_export(world.ctx, researcher, world.project_id,
                            "registry linkage needs record-level rows")
    projects.decide_export(world.ctx, committee, world.project_id, True)
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    out = tmp_path / "rows.csv"
    with pytest.raises(Refused, match="differential-privacy mode: record-level"):
        extracts.create_extract(world.ctx, admin, world.project_id, "csv", out,
                                store=world.platform.store, watch=world.platform.watch)
    assert not out.exists()
    assert events(world, EventType.EXTRACT_CREATED) == []


def test_a_budget_stays_within_the_ceiling_and_every_change_is_explained_and_shown(
        world: World, committee: Principal) -> None:
    privacy = world.platform.privacy
    with pytest.raises(Invalid, match="give the reason"):
        privacy.configure(committee, world.project_id, epsilon="1", reason="  ")
    with pytest.raises(Conflict, match="above the platform's ceiling of 10"):
        privacy.configure(committee, world.project_id, epsilon="100000",
                          reason="the lead needs many more answers")
    with pytest.raises(Conflict, match=r"δ 0\.001 is above the platform's ceiling of 0\.00001"):
        privacy.configure(committee, world.project_id, epsilon="1", delta="1/1000",
                          reason="the lead needs approximate DP")
    assert privacy.budget_of(committee, world.project_id).budget.updated_at is None  # unset
    (refused, _) = events(world, EventType.DP_BUDGET_REFUSED)
    assert refused["reason"] == "the lead needs many more answers"
    shown = alerts(world, "dp.budget.refused")
    assert len(shown) == 2 and {s for s, _, _ in shown} == {Severity.LOW}
    assert any("the lead needs many more answers" in " ".join(r) for _, _, r in shown)

    view = privacy.configure(committee, world.project_id, dp_mode=True, epsilon="10", reason=WHY)
    assert view.budget.epsilon_total == 10
    (set_,) = events(world, EventType.DP_BUDGET_SET)
    assert (set_["reason"], set_["epsilon_total"], set_["was_epsilon_total"]) == (WHY, "10", "0")
    assert set_["ceiling"] == {"epsilon": "10", "delta": "0.00001"}
    (shown_set,) = alerts(world, "dp.budget.set")
    assert shown_set[1] == world.project_id and WHY in shown_set[2][0]

    world.ctx.settings = replace(world.ctx.settings, dp_epsilon_ceiling="20")  # the custodian
    assert privacy.configure(committee, world.project_id, epsilon="20",
                             reason="renewed for a second year").budget.epsilon_total == 20
    assert len(alerts(world, "dp.budget.set")) == 2  # each change its own alert


def test_leaving_dp_mode_ends_the_project_s_dp_history(
        world: World, committee: Principal, researcher: Principal) -> None:
    privacy = world.platform.privacy
    privacy.configure(committee, world.project_id, dp_mode=True, epsilon="1", reason=WHY)
    privacy.query(researcher, world.project_id, {"kind": "count", "epsilon": "0.25"})
    left = privacy.configure(committee, world.project_id, dp_mode=False,
                             reason="the study moved to exact, checked outputs")
    assert left.budget.left_at is not None and not left.budget.dp_mode
    (ended,) = events(world, EventType.DP_MODE_LEFT)
    assert (ended["epsilon_spent"], ended["answers"]) == ("0.25", 1)
    assert ended["reason"] == "the study moved to exact, checked outputs"
    (shown,) = alerts(world, "dp.mode.left")
    assert shown[0] == Severity.MEDIUM and "0.25" in shown[2][0]

    with pytest.raises(Conflict, match="DP history is closed"):
        privacy.query(researcher, world.project_id, {"kind": "count", "epsilon": "0.25"})
    for change in ({"dp_mode": True}, {"epsilon": "2"}):
        with pytest.raises(Conflict, match="cannot enter DP mode again"):
            privacy.configure(committee, world.project_id, reason="back to DP answers", **change)
    after = privacy.budget_of(committee, world.project_id)
    assert (after.budget.epsilon_spent, after.budget.queries) == (0.25, 1)  # stays on record
    with world.ctx.transaction() as db:
        assert [r.status for r in db.scalars(select(SpendRow))] == ["answered"]
    exact = {"kind": "aggregate_sql",
             "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"}
    assert world.platform.outputs.analyse(researcher, world.project_id, exact).output.id


def test_exact_and_dp_access_to_one_field_is_shown_to_the_committee(
        world: World, committee: Principal) -> None:
    assert world.researcher is not None
    person = world.researcher.person_id
    exact = other_project(world, [31])
    view = world.platform.privacy.configure(committee, world.project_id, dp_mode=True,
                                            epsilon="1", reason=WHY)
    assert view.mixed == [MixedAccess(person, [31], [world.project_id], [exact])]
    (set_,) = events(world, EventType.DP_BUDGET_SET)
    assert set_["mixed_access"] == [{"person": person, "fields": [31],
                                     "dp_projects": [world.project_id],
                                     "exact_projects": [exact]}]
    assert projects.read(world.ctx, committee, exact).mixed == view.mixed
    page = signed_in(world, Role.ACCESS_COMMITTEE).get(f"{PREFIX}/custodian/projects/{exact}")
    assert page.status_code == 200 and 'data-testid="mixed-access"' in page.text
    # each project by its title beside its id (server/web/pages.py named())
    assert re.search(rf"exactly in [^<(]+ \({exact}\), under DP in [^<(]+ "
                     rf"\({world.project_id}\)", page.text), page.text
    third = other_project(world, [34], "Smoking")
    (made,) = [e for e in events(world, EventType.PROJECT_CREATED) if "mixed_access" in e]
    assert made["mixed_access"] == [{"person": person, "fields": [34],
                                     "dp_projects": [world.project_id],
                                     "exact_projects": [third]}]
    projects.close(world.ctx, world.sign_in(world.staff[Role.CUSTODIAN_ADMIN]), exact,
                   revoke=False, reason="finished")
    assert projects.read(world.ctx, committee, world.project_id).mixed == [
        MixedAccess(person, [34], [world.project_id], [third])]  # an ended project reads nothing


def test_the_policy_refuses_every_change_that_mixes_exact_and_dp_access(
        world: World, committee: Principal) -> None:
    world.ctx.settings = replace(world.ctx.settings, refuse_exact_beside_dp=True)
    privacy = world.platform.privacy
    exact = other_project(world, [31])
    with pytest.raises(Conflict, match=r"reads field\(s\) 31 exactly in prj_"):
        privacy.configure(committee, world.project_id, dp_mode=True, epsilon="1", reason=WHY)
    assert not privacy.budget_of(committee, world.project_id).budget.dp_mode  # rolled back
    projects.set_fields(world.ctx, committee, exact, [21001])  # no longer shared
    privacy.configure(committee, world.project_id, dp_mode=True, epsilon="1", reason=WHY)

    with pytest.raises(Conflict, match=r"field\(s\) 34 exactly"):
        projects.set_fields(world.ctx, committee, exact, [21001, 34])
    assert projects.read(world.ctx, committee, exact).fields == [21001]
    with world.ctx.transaction() as db:
        before = db.scalar(select(func.count()).select_from(Project))
    with pytest.raises(Conflict, match="refuse_exact_beside_dp"):
        other_project(world, [31, 4080], "Blood pressure, exactly")
    with world.ctx.transaction() as db:
        assert db.scalar(select(func.count()).select_from(Project)) == before  # nothing made
    assert world.outsider is not None
    outsider = world.outsider.person_id
    other_project(world, [31], "Sex ratio, elsewhere", lead=outsider)  # nobody reads it twice
    with pytest.raises(Conflict, match=f"{outsider} reads field"):
        projects.add_member(world.ctx, committee, world.project_id, outsider)
    assert outsider not in projects.read(world.ctx, committee, world.project_id).members
    refusals = events(world, EventType.DP_BUDGET_REFUSED)
    assert len(refusals) == 1 and "refuse_exact_beside_dp" in str(refusals[0]["reasons"])


def test_under_the_policy_access_mixed_before_it_gets_no_exact_answer(
        world: World, committee: Principal, researcher: Principal) -> None:
    """Access mixed before the policy was set is not grandfathered: the exact side refuses."""
    exact = other_project(world, [31])
    world.platform.privacy.configure(committee, world.project_id, dp_mode=True, epsilon="1",
                                     reason=WHY)
    query = {"kind": "aggregate_sql",
             "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"}
    assert world.platform.outputs.analyse(researcher, exact, query).output.id  # no policy yet
    world.ctx.settings = replace(world.ctx.settings, refuse_exact_beside_dp=True)
    with pytest.raises(Refused, match=r"reads field\(s\) 31 exactly"):
        world.platform.outputs.analyse(researcher, exact, query)
