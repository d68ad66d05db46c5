"""Analyses that overrun their time floor are metered late and watched (issue 50).

An analysis past its schedule's floor is answered at a later step (outputs/timing.py): an
answer about the data, the signal a timing bisection leaves. The output service meters it
(``Measures.late``, the meter's ``late`` column) for every caller; through the real API, a
researcher whose analyses overrun a tiny floor three times in a day raises ``queries.overrun``
(medium, no suspension); honest analyses within a generous floor raise nothing and are
metered on time. The waits are recorded, not slept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from strongroom.access import pauses
from strongroom.access.models import Pause
from strongroom.server.app import create_app
from strongroom.server.security import CSRF_HEADER
from strongroom.watch.models import AlertRow, MeterRow
from tests.access_world import INSIDE, PASSWORD, World, build_world

ROUTE = "POST /projects/{project_id}/analyses"
COUNT = {"kind": "frequency", "definition": "base", "variable": "sex"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path, cohort=800)
    assert built.researcher is not None
    outputs = built.platform.outputs
    outputs.ctx.settings = dataclasses.replace(outputs.ctx.settings, definition_seconds=0.0)
    outputs.sleep = lambda _: None  # the steps are computed as shipped, the waits skipped
    outputs.define(built.sign_in(built.researcher), built.project_id, "base",
                   "SELECT pid, p31 AS sex FROM participants")
    yield built
    built.platform.close()


@pytest.fixture
def client(world: World) -> TestClient:
    assert world.researcher is not None
    made = TestClient(create_app(world.platform), client=(INSIDE, 50000))
    answer = made.post("/auth/login", json={"email": world.researcher.email,
                                             "password": PASSWORD,
                                             "code": world.code(world.researcher)})
    assert answer.status_code == 200, answer.text
    made.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    return made


def floor(world: World, seconds: float) -> None:
    ctx = world.platform.outputs.ctx
    ctx.settings = dataclasses.replace(ctx.settings, analysis_seconds=seconds)


def analyse(client: TestClient, world: World, times: int) -> None:
    for _ in range(times):
        done = client.post(f"/projects/{world.project_id}/analyses",
                           json={"analysis": COUNT})
        assert done.status_code == 201, done.text
        world.clock.advance(minutes=5)


def overrun_alerts(world: World) -> list[AlertRow]:
    with world.ctx.transaction() as db:
        return list(db.scalars(select(AlertRow)
                               .where(AlertRow.detector == "queries.overrun")))


def late(world: World) -> list[int]:
    with world.ctx.transaction() as db:
        return [row.late for row in db.scalars(select(MeterRow).where(MeterRow.route == ROUTE)
                                               .order_by(MeterRow.at))]


def test_honest_analyses_within_their_floor_are_on_time_and_raise_nothing(
        world: World, client: TestClient) -> None:
    floor(world, 40.0)  # a 10 s floor at 800 participants: no count on any machine passes it
    analyse(client, world, 4)
    assert late(world) == [0, 0, 0, 0]
    assert overrun_alerts(world) == []


def test_three_overruns_in_a_day_raise_the_alert_and_suspend_nobody(
        world: World, client: TestClient) -> None:
    floor(world, 1e-6)  # every run passes a floor of a microsecond
    analyse(client, world, 2)
    assert late(world) == [1, 1] and overrun_alerts(world) == []
    analyse(client, world, 1)
    assert late(world) == [1, 1, 1]
    raised = overrun_alerts(world)
    assert [a.severity for a in raised] == ["medium"]
    with world.ctx.transaction() as db:
        assert list(db.scalars(select(Pause).where(Pause.kind == pauses.SUSPENSION))) == []
