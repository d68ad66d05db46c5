"""Every path that makes a record-level extract is held in the extract service itself: the
API a researcher calls, and the function a custodian's `strongroom extract create` (and the
console, and any script) calls. For each hold (a suspended project, a paused recipient or
institution, differential-privacy mode, a transfer limit) and each path: refused with the
reason, no file, no manifest, no exposure counted. Ground truth is read from the database."""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from strongroom.access import pauses, projects
from strongroom.access.models import Pause
from strongroom.access.permissions import Action
from strongroom.access.roles import Role
from strongroom.cohort.store import COHORT_DIR
from strongroom.errors import Refused
from strongroom.extracts import service
from strongroom.extracts.models import ExtractManifest
from strongroom.privacy.budget import BudgetRow
from strongroom.server.app import create_app
from strongroom.server.security import ACTION_KEY
from strongroom.watch.models import ExposureRow
from tests.access_world import World, build_world
from tests.cli_runner import leaf_commands
from tests.integration.test_watch_limits import client_for

HOLDS = ["project suspended", "recipient paused", "institution paused", "DP mode",
         "over the limit"]
PATHS = ["api", "custodian"]
# every route and command that makes a record-level extract, each exercised below
HELD_ROUTES = {"POST /projects/{project_id}/extracts"}
HELD_COMMANDS = {"extract create"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(tmp_path_factory.mktemp("holds"), cohort=1_500)
    assert built.researcher is not None
    projects.request_export(built.ctx, built.sign_in(built.researcher), built.project_id,
                            "registry linkage needs record-level rows")
    projects.decide_export(built.ctx, built.sign_in(built.staff[Role.ACCESS_COMMITTEE]),
                           built.project_id, True)
    yield built
    built.platform.close()


def _counts(world: World) -> tuple[int, int]:
    with world.ctx.transaction() as db:
        return (int(db.scalar(select(func.count()).select_from(ExtractManifest)) or 0),
                int(db.scalar(select(func.count()).select_from(ExposureRow)) or 0))


def _hold(world: World, hold: str) -> object:
    """Put the hold in place; returns what undoes it."""
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    assert world.researcher is not None
    if hold == "DP mode":
        world.platform.privacy.configure(admin, world.project_id, dp_mode=True,
                                         reason="the committee moved it to DP answers")
        return lambda: _forget_budget(world)  # leaving DP mode would end its history for good
    if hold == "over the limit":
        world.platform.watch.set_limits(admin, "project", world.project_id,
                                        {"record_participants": 100})
        return lambda: world.platform.watch.set_limits(
            world.sign_in(world.staff[Role.CUSTODIAN_ADMIN]), "project", world.project_id,
            {"record_participants": 1_000_000})
    level, target = {"project suspended": ("project", world.project_id),
                     "recipient paused": ("person", world.researcher.person_id),
                     "institution paused": ("institution", world.partner_id)}[hold]
    pauses.set_pause(world.ctx, admin, level, target, f"test: {hold}")
    return lambda: None  # _lift_all ends it


def _forget_budget(world: World) -> None:
    """The test's own reset: the project as if it had never had a DP budget."""
    with world.ctx.transaction() as db:
        db.execute(delete(BudgetRow).where(BudgetRow.project_id == world.project_id))


def _lift_all(world: World) -> None:
    """End every pause (the test's, and watch's own from the limit case) for the next case."""
    with world.ctx.transaction() as db:
        for pause in db.scalars(select(Pause).where(Pause.lifted_at.is_(None))):
            pause.lifted_at = world.ctx.clock()
            pause.lifted_by = "test"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("hold", HOLDS)
def test_every_hold_holds_on_every_path(world: World, hold: str, path: str,
                                        tmp_path: Path) -> None:
    undo = _hold(world, hold)
    before = _counts(world)
    out = tmp_path / "x.csv"
    try:
        if path == "api":
            assert world.researcher is not None
            answer = client_for(world, world.researcher).post(
                f"/projects/{world.project_id}/extracts", json={"format": "csv"})
            assert answer.status_code in (403, 429), answer.text
            reasons = " ".join(answer.json()["reasons"])
        else:  # exactly what `strongroom extract create` calls
            admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
            with pytest.raises(Refused) as refused:
                service.create_extract(world.ctx, admin, world.project_id, "csv", out,
                                       store=world.platform.store, watch=world.platform.watch)
            reasons = " ".join(refused.value.reasons)
    finally:
        undo()  # type: ignore[operator]
        _lift_all(world)
    word = {"DP mode": "differential-privacy", "over the limit": "limit"}.get(hold, "paused")
    assert word in reasons
    assert not out.exists()
    assert _counts(world) == before  # no manifest, no exposure


def test_with_no_hold_both_paths_make_an_extract(world: World, tmp_path: Path) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    made = service.create_extract(world.ctx, admin, world.project_id, "csv", tmp_path / "x.csv",
                                  store=world.platform.store, watch=world.platform.watch,
                                  rows=slice(0, 50))
    assert 40 <= made.participants <= 50  # a keyed 2% withheld (extracts/membership.py)
    assert made.rows == made.participants + made.decoys
    assert world.researcher is not None
    answer = client_for(world, world.researcher).post(
        f"/projects/{world.project_id}/extracts", json={"format": "csv", "limit": 50})
    assert answer.status_code == 200, answer.text


def test_over_the_limit_is_refused_before_a_participant_is_read(world: World) -> None:
    """The sealed participants table is moved away: a refusal that needed it would fail
    with a missing file, not with the limit."""
    undo = _hold(world, "over the limit")
    version = world.platform.store.current()
    assert version is not None
    sealed = world.platform.store.root / COHORT_DIR / version.id / "participants.parquet.enc"
    aside = sealed.with_name("aside")
    shutil.move(sealed, aside)
    try:
        admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
        with pytest.raises(Refused, match="limit of 100"):
            service.create_extract(world.ctx, admin, world.project_id, "csv",
                                   world.platform.store.root.parent / "never.csv",
                                   store=world.platform.store, watch=world.platform.watch)
    finally:
        shutil.move(aside, sealed)
        undo()  # type: ignore[operator]
        _lift_all(world)


def test_every_route_and_command_that_makes_an_extract_is_in_the_held_list(
        world: World) -> None:
    """Add a route or a command that makes record-level extracts and this fails until it is
    added above, where every hold is tried on it."""
    record_level = {Action.DATA_EXPORT.value, Action.EXTRACT_CREATE.value}
    spec = create_app(world.platform).openapi()
    routes = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
              for method, operation in item.items()
              if operation.get(ACTION_KEY) in record_level}
    assert routes == HELD_ROUTES
    assert _commands_calling("create_extract") == HELD_COMMANDS
    # no other module of the server (console pages included) or the CLI makes one
    src = Path(service.__file__).resolve().parents[1]
    callers = {str(p.relative_to(src)) for top in ("server", "cli")
               for p in (src / top).rglob("*.py") if "create_extract(" in p.read_text()}
    assert callers == {"server/routes/transfers.py", "cli/extracts.py"}


def _commands_calling(name: str) -> set[str]:
    return {path.removeprefix("strongroom ") for path, command in leaf_commands()
            if command.callback is not None
            and name in inspect.getsource(inspect.unwrap(command.callback))}
