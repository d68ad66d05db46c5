"""What the red team's modules share (tests/integration/test_redteam_*.py): an attack world
per module, its cast of targets, settings changed for one test, a floor whose waits are
recorded rather than slept, and the attacker's first steps.

Each module takes the fixtures it needs by assignment (``world = module_world()``), so each
builds its own world (xdist sends a module to one worker) and no module's changes reach
another's."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service
from strongroom.errors import ServiceError
from strongroom.outputs.models import AnswerRow

FLOOR = 32.0  # as test_timing_channel: an 8 s floor at the world's 3,000 participants
HONEST = "SELECT sex, count(*) AS n FROM base GROUP BY sex"
SUBSET = "SELECT pid, sex FROM base"


def module_world() -> Any:
    """A module's attack world, built once for it."""
    @pytest.fixture(scope="module", name="world")
    def world(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackWorld]:
        name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        built = AttackWorld.build(Path(tmp_path_factory.mktemp(name.replace("_", "-"))))
        yield built
        built.close()
    return world


def module_cast() -> Any:
    """The world's cast of targets (obese and lean), found once per module."""
    @pytest.fixture(scope="module", name="cast")
    def cast(world: AttackWorld) -> runner.Cast:
        return runner.cast(world)
    return cast


def settings_fixture() -> Any:
    """Change the platform's settings for one test; restored after it."""
    @pytest.fixture(name="settings")
    def settings(world: AttackWorld) -> Iterator[Callable[..., None]]:
        ctx = world.platform.access
        saved = ctx.settings

        def change(**values: Any) -> None:
            ctx.settings = dataclasses.replace(ctx.settings, **values)
        try:
            yield change
        finally:
            ctx.settings = saved
    return settings


def scheduled_fixture() -> Any:
    """A floor on every analysis, its waits recorded rather than slept."""
    @pytest.fixture(name="scheduled")
    def scheduled(world: AttackWorld,
                  settings: Callable[..., None]) -> Iterator[list[float]]:
        outputs = world.platform.outputs
        sleep = outputs.sleep
        waits: list[float] = []
        settings(analysis_seconds=FLOOR, analysis_ladder=2.0)
        outputs.sleep = waits.append
        try:
            yield waits
        finally:
            outputs.sleep = sleep
    return scheduled


@contextmanager
def time_limit(world: AttackWorld, seconds: float) -> Iterator[None]:
    """The enclave's query time limit set to ``seconds`` for the block (a probe meets it, or
    the deadlines reckoned from it, soon)."""
    enclave = world.platform.enclave
    saved = enclave.limits
    enclave.limits = dataclasses.replace(saved, seconds=seconds)
    try:
        yield
    finally:
        enclave.limits = saved


def attacker(world: AttackWorld) -> tuple[Principal, str]:
    """A new researcher leading a new project (fresh budgets), with the definition ``base``."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    return who, project


def colleagues(world: AttackWorld, same: bool = True
               ) -> tuple[tuple[Principal, str], tuple[Principal, str]]:
    """Two researchers of one new institution (``same``; else of two), each leading a
    project of their own (each with the definition ``base``): the victim's and the
    attacker's."""
    victim, theirs = world.researcher()
    spy, mine = world.researcher(institution_id=victim.institution_id if same else None)
    for who, project in ((victim, theirs), (spy, mine)):
        service.define(world.platform.enclave, who, project, "base", BASE)
    return (victim, theirs), (spy, mine)


def dp_project(world: AttackWorld, epsilon: str) -> tuple[Principal, str]:
    """A new researcher's project in DP mode (ε ``epsilon``, set by the access committee)."""
    who, project = world.researcher()
    world.platform.privacy.configure(world.staff("access-committee"), project,
                                     reason="the access committee approved it",
                                     epsilon=epsilon)
    return who, project


def answers_spent(world: AttackWorld, project: str) -> int:
    """Custodian-side: the answers a project has spent (its ration's cost)."""
    from sqlalchemy import func, select

    with world.platform.access.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(AnswerRow).where(
            AnswerRow.project_id == project, AnswerRow.spent.is_(True))) or 0)


def views_lock(world: AttackWorld) -> Any:
    """The enclave's views: held, every build and analysis waits (as an expensive query holds
    the engine): the test's way to make a run slow by as much as it likes."""
    return world.platform.enclave._views._lock


def until(found: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``found`` came true within ``timeout`` seconds (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found():
            return True
        time.sleep(0.01)
    return False


def outcome(call: Callable[[], object], named: bool = False) -> str:
    """What a researcher's client is told: an answer, or the error's status and reasons
    (``named``: its class too, which decides whether the output service rations it)."""
    try:
        call()
    except ServiceError as error:
        kind = f"{type(error).__name__} " if named else ""
        return f"{kind}{error.status}: {' | '.join(error.reasons)}"
    except Exception as error:  # the API's 500: "internal", nothing more
        return f"internal ({type(error).__name__})"
    return "answered"


def dp_target(world: AttackWorld, target: runner.Target
              ) -> tuple[Principal, str, list[dict[str, Any]]]:
    """A new researcher's project in DP mode (ε 1, set by the access committee), and a DP
    filter that keeps ``target``'s row alone, and only if their BMI is over 30."""
    who, project = world.researcher()
    world.platform.privacy.configure(world.staff("access-committee"), project,
                                     reason="the access committee approved it", epsilon="1")
    where = [{"column": "p31", "op": "==", "value": target.sex},
             {"column": "p34", "op": "==", "value": target.birth_year},
             {"column": "p4080_i0_a0", "op": "==", "value": target.sbp},
             {"column": "p21001_i0", "op": ">", "value": 30}]
    return who, project, where
