"""Differencing at release: what was released since the check is differenced against, under
the institution's lock, on SQLite and PostgreSQL.

Guarantee: no output is released whose shown cells difference against an output released
before it, whether that one was released before this one was checked, between its check and
its release, or at the same moment (two requests sent at once). A release with nothing new
in the ledger and no rule changed since its check is recorded without checking again (the
check's last round read that very ledger), which is what makes a release quick.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service
from strongroom.errors import Conflict
from strongroom.outputs.render import Format
from strongroom.outputs.requests import OutputView
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import Verdict
from tests.conftest import postgres_schema

EVERY = "SELECT count(*) AS n FROM base WHERE birth_year < 1945"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackWorld]:
    root = Path(tmp_path_factory.mktemp(f"release-{request.param}"))
    if request.param == "sqlite":
        built = AttackWorld.build(root)
        yield built
        built.close()
        return
    with postgres_schema() as url:
        built = AttackWorld.build(root, database_url=url)
        yield built
        built.close()


@pytest.fixture(scope="module")
def cast(world: AttackWorld) -> runner.Cast:
    return runner.cast(world)


def _pair(world: AttackWorld, cast: runner.Cast) -> tuple[Principal, OutputView, OutputView]:
    """A new researcher (a new institution: an empty ledger) and two counts, each passed by
    the check, one participant apart: released together they give that participant's age
    band."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    views = [world.platform.outputs.analyse(who, project, {"kind": "aggregate_sql", "sql": sql},
                                            Format("json"))
             for sql in (EVERY, EVERY + f" OR {cast.obese[0].condition}")]
    assert [v.report.verdict for v in views] == [Verdict.RELEASE] * 2, [v.reasons for v in views]
    return who, views[0], views[1]


def test_released_after_the_check_is_differenced_against(world: AttackWorld,
                                                         cast: runner.Cast) -> None:
    who, first, second = _pair(world, cast)
    outputs = world.platform.outputs
    assert outputs.request_release(who, first.output.id).status is OutputStatus.RELEASED
    with pytest.raises(Conflict, match="fewer than"):
        outputs.request_release(who, second.output.id)


def test_two_releases_sent_at_once_are_differenced_one_after_the_other(
        world: AttackWorld, cast: runner.Cast) -> None:
    """Each was checked against the same empty ledger; sent at once, exactly one is released
    (without the institution's lock both read the ledger before either was recorded)."""
    def release(who: Principal, view: OutputView, start: threading.Barrier) -> str:
        start.wait()
        try:
            return world.platform.outputs.request_release(who, view.output.id).status.value
        except Conflict:
            return "refused"

    for _ in range(3):
        who, first, second = _pair(world, cast)
        start = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            got = sorted(pool.map(release, (who, who), (first, second), (start, start)))
        assert got == ["refused", OutputStatus.RELEASED.value]


def test_a_rule_changed_since_the_check_means_checking_again(world: AttackWorld,
                                                            cast: runner.Cast) -> None:
    """The mark names the ledger and the rules the check read: a changed threshold, or a
    release recorded meanwhile, changes it; nothing else does."""
    who, first, _ = _pair(world, cast)
    outputs = world.platform.outputs
    project = first.output.project_id
    institution = who.institution_id
    rules = outputs.rules_for(project)
    mark = outputs._mark(institution, rules)
    assert outputs._mark(institution, rules) == mark
    admin = world.staff("custodian-admin")
    outputs.set_project_rules(admin, project,
                              {"threshold": {"min_participants": rules.threshold + 5}})
    assert outputs._mark(institution, outputs.rules_for(project)) != mark
    outputs.set_project_rules(admin, project, {})
    assert outputs.request_release(who, first.output.id).status is OutputStatus.RELEASED
    assert outputs._mark(institution, rules) != mark


def test_a_ledger_that_keeps_moving_refuses_the_release_and_spends_nothing(
        world: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """Other releases recorded under every pass (the ledger's mark moves each time it is
    read): the release is refused, nothing is released, and its answer is given back (the
    refusal is others' doing, not this output's data); one pass fewer than the tries."""
    from sqlalchemy import select

    from strongroom.outputs import service as outputs_service
    from strongroom.outputs.models import OutputRow

    who, first, _ = _pair(world, cast)
    outputs = world.platform.outputs
    moves = iter(range(1_000_000))
    monkeypatch.setattr(outputs, "_mark", lambda *args, **kwargs: f"moved {next(moves)}")
    passes: list[str] = []
    real = outputs._differenced_again
    monkeypatch.setattr(outputs, "_differenced_again",
                        lambda output_id: passes.append(output_id) or real(output_id))
    with pytest.raises(Conflict, match="kept being recorded"):
        outputs.request_release(who, first.output.id)
    assert len(passes) == outputs_service.MAX_PASSES
    with world.platform.access.transaction() as db:  # custodian-side
        row = db.scalars(select(OutputRow).where(OutputRow.id == first.output.id)).one()
        assert row.status != OutputStatus.RELEASED.value
        assert not row.acted  # its answer given back
