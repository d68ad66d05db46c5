"""The privacy budget under fire: many requests at once never overspend it (SQLite and real
PostgreSQL), an exhausted budget refuses with what remains and what was asked, a failure keeps
its charge, and DP mode refuses exact analyses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import func, select

from strongroom.access.context import Principal
from strongroom.access.roles import Role
from strongroom.audit import EventType
from strongroom.errors import Conflict, Refused, ServiceError, Unavailable
from strongroom.outputs import answers
from strongroom.privacy import budget, dp
from strongroom.privacy.budget import SpendRow
from tests.access_world import World, build_world

WHY = "the access committee approved it"  # every DP change gives its reason

COUNT = {"kind": "count", "epsilon": "0.05"}


@pytest.fixture
def world(tmp_path: Path, database_url: str | None) -> Iterator[World]:
    built = build_world(tmp_path, database_url, cohort=300, fields=[31, 34, 21001])
    yield built
    built.platform.close()


@pytest.fixture
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    return world.sign_in(world.researcher)


@pytest.fixture
def committee(world: World) -> Principal:
    return world.sign_in(world.staff[Role.ACCESS_COMMITTEE])


def types(world: World) -> list[str]:
    return [e.type for e in world.platform.audit.entries()]


def spends(world: World) -> list[SpendRow]:
    with world.ctx.transaction() as db:
        return list(db.scalars(select(SpendRow).where(SpendRow.project_id == world.project_id)))


def test_parallel_queries_never_overspend(world: World, researcher: Principal,
                                          committee: Principal) -> None:
    """Twenty queries of ε 0.1 at once against ε 1: exactly ten are answered. (Twenty, not
    more: each query holds an answer of its person's ration while it runs, since whether a
    release fails can hang on the data, and a person's day is twenty: a twenty-first at once
    is refused for that, naming the ration, not the ε.)"""
    world.platform.privacy.configure(committee, world.project_id, reason=WHY, epsilon="1")
    start = threading.Barrier(20)
    tenth = {**COUNT, "epsilon": "0.1"}

    def ask(_: int) -> str:
        start.wait()
        try:
            world.platform.privacy.query(researcher, world.project_id, tenth)
            return "answered"
        except Conflict as refusal:
            assert "cannot pay" in str(refusal), refusal.reasons
            return "refused"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(ask, range(20)))
    assert outcomes.count("answered") == 10, outcomes
    view = world.platform.privacy.budget_of(committee, world.project_id)
    assert view.budget.epsilon_spent == 1 and view.budget.epsilon_remaining == 0
    assert view.budget.queries == 10
    rows = spends(world)
    assert len(rows) == 10 and {r.status for r in rows} == {"answered"}
    assert sum(Fraction(r.epsilon) for r in rows) == 1
    logged = types(world)
    assert logged.count(EventType.DP_QUERY_CHARGED) == 10
    assert logged.count(EventType.DP_QUERY_ANSWERED) == 10
    assert logged.count(EventType.DP_QUERY_REFUSED) == 10
    with world.ctx.transaction() as db:  # every answer held while they ran came back
        assert answers.used(db, researcher.person_id, world.ctx.clock(),
                            world.platform.rations.of(db, researcher.person_id)) == 0


def test_once_the_ration_is_spent_no_dp_query_runs_and_no_epsilon_is_charged(
        world: World, researcher: Principal, committee: Principal) -> None:
    """A DP query holds an answer of its person's ration while it runs (whether a release
    fails, or passes its floor, can hang on the data): once the ration is spent none runs,
    the refusal names the ration, and the project's ε is untouched."""
    privacy = world.platform.privacy
    privacy.configure(committee, world.project_id, reason=WHY, epsilon="1")
    held = []
    with world.ctx.transaction() as db:
        while (got := world.platform.rations.reserve(db, researcher, world.project_id,
                                                     "test")) is not None:
            held.append(got)
    try:
        with pytest.raises(Conflict, match="ration of answers"):
            privacy.query(researcher, world.project_id, COUNT)
        view = privacy.budget_of(committee, world.project_id)
        assert view.budget.epsilon_spent == 0 and view.budget.queries == 0
    finally:
        with world.ctx.transaction() as db:
            for answer in held:
                world.platform.rations.give_back(db, answer)
    privacy.query(researcher, world.project_id, COUNT)  # the ration back: it runs


def test_hundreds_of_concurrent_charges_spend_exactly_the_total(
        world: World, researcher: Principal, committee: Principal) -> None:
    """The ledger alone, harder: 240 charges of ε 1/150 from 24 threads against ε 1."""
    privacy = world.platform.privacy
    privacy.configure(committee, world.project_id, reason=WHY, epsilon="1")
    share = Fraction(1, 150)

    def charge(n: int) -> bool:
        request = budget.Charge(world.project_id, researcher.person_id, None, "count",
                                "participants", share, Fraction(0), {"n": n}, "0" * 64)
        try:
            budget.retrying(lambda: privacy._charge(request, f"dps_{n:012x}", researcher,
                                                    privacy.ctx.clock()))
            return True
        except Conflict:
            return False

    with ThreadPoolExecutor(24) as pool:
        charged = sum(pool.map(charge, range(240)))
    assert charged == 150
    with world.ctx.transaction() as db:
        found = budget.read(db, world.project_id)
        rows = db.scalar(select(func.count()).select_from(SpendRow))
    assert found.epsilon_spent == 1 and found.queries == 150 and rows == 150
    # each charge's event committed with it: one per charge that landed, none for the refused
    # (their transactions, event and all, rolled back) or for a retried conflict
    spends = [e.details["spend"] for e in world.platform.audit.entries()
              if e.type == "dp.query.charged"]
    with world.ctx.transaction() as db:
        landed = set(db.scalars(select(SpendRow.id)))
    assert len(spends) == len(set(spends)) == 150 and set(spends) == landed


def test_an_exhausted_budget_refuses_saying_what_remains_and_what_was_asked(
        world: World, researcher: Principal, committee: Principal) -> None:
    world.platform.privacy.configure(committee, world.project_id, reason=WHY, epsilon="0.3")
    for _ in range(3):
        world.platform.privacy.query(researcher, world.project_id, {"kind": "count",
                                                                   "epsilon": "0.1"})
    with pytest.raises(Conflict) as refused:
        world.platform.privacy.query(researcher, world.project_id, {"kind": "count",
                                                                   "epsilon": "0.1"})
    assert "asks ε 0.1" in str(refused.value) and "ε 0 of 0.3 remains" in str(refused.value)
    assert types(world)[-1] == EventType.DP_QUERY_REFUSED
    assert len(spends(world)) == 3


def test_a_project_without_a_budget_and_bad_queries_cost_nothing(
        world: World, researcher: Principal, committee: Principal) -> None:
    with pytest.raises(Conflict, match="no differential-privacy budget"):
        world.platform.privacy.query(researcher, world.project_id, COUNT)
    world.platform.privacy.configure(committee, world.project_id, reason=WHY, epsilon="1")
    with pytest.raises(ServiceError, match="no column"):
        world.platform.privacy.query(researcher, world.project_id, {
            "kind": "mean", "column": "p99999", "bounds": [0, 1], "epsilon": "0.5"})
    assert spends(world) == []


def test_a_failure_after_the_charge_keeps_the_charge(
        world: World, researcher: Principal, committee: Principal,
        monkeypatch: pytest.MonkeyPatch) -> None:
    world.platform.privacy.configure(committee, world.project_id, reason=WHY, epsilon="1")

    def broken(*_: object) -> None:
        raise RuntimeError("the rows could not be prepared")

    monkeypatch.setattr(dp, "frame", broken)
    with pytest.raises(Unavailable, match="charge stays spent"):
        world.platform.privacy.query(researcher, world.project_id, COUNT)
    (row,) = spends(world)
    assert row.status == "failed" and row.outcome == {"error": "RuntimeError"}
    view = world.platform.privacy.budget_of(researcher, world.project_id)
    assert view.budget.epsilon_spent == Fraction(1, 20)
    failed = [e for e in world.platform.audit.entries() if e.type == EventType.DP_QUERY_FAILED]
    assert failed and "prepared" not in failed[0].payload  # kinds only, never messages


def test_dp_mode_refuses_exact_analyses_and_exact_mode_allows_them(
        world: World, researcher: Principal, committee: Principal) -> None:
    exact = {"kind": "aggregate_sql",
             "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"}
    world.platform.privacy.configure(committee, world.project_id, reason=WHY, dp_mode=True,
                                     epsilon="1")
    with pytest.raises(Refused) as refused:
        world.platform.outputs.analyse(researcher, world.project_id, exact)
    assert f"/projects/{world.project_id}/dp/queries" in str(refused.value)
    assert types(world)[-1] == EventType.ENCLAVE_ANALYSIS_REFUSED
    answer = world.platform.privacy.query(researcher, world.project_id, {
        "kind": "histogram", "column": "p31", "epsilon": "0.5"})
    assert [e.label for e in answer.estimates] == ["0", "1"]
    assert sum(e.value for e in answer.estimates) == pytest.approx(300, abs=40)  # type: ignore[misc]
    world.platform.privacy.configure(committee, world.project_id, reason=WHY, dp_mode=False)
    assert world.platform.outputs.analyse(researcher, world.project_id, exact).output.id


def test_only_the_access_team_sets_mode_and_budget(world: World, researcher: Principal,
                                                   committee: Principal) -> None:
    with pytest.raises(Refused):
        world.platform.privacy.configure(researcher, world.project_id, reason=WHY, epsilon="100")
    view = world.platform.privacy.configure(committee, world.project_id, reason=WHY, dp_mode=True,
                                            epsilon="2", delta="1e-6")
    assert (view.budget.dp_mode, view.budget.epsilon_total) == (True, 2)
    assert view.budget.delta_total == Fraction(1, 10**6)
    set_events = [e for e in world.platform.audit.entries() if e.type == EventType.DP_BUDGET_SET]
    assert set_events[-1].details["epsilon_total"] == "2"
    assert set_events[-1].details["was_epsilon_total"] == "0"
