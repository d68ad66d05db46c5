"""The console's names beside IDs (server/web/names.py): each kind through its own permission,
so a researcher reads the names of their own projects and their people, never another
project's (issue 55)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.access import people, projects
from strongroom.access.roles import Role
from strongroom.errors import Refused
from strongroom.server.web.names import Names
from tests.access_world import World, build_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path)
    yield built
    built.platform.close()


def test_each_reader_names_only_what_they_may_read(world: World) -> None:
    ctx, today = world.ctx, world.clock().date()
    assert world.researcher is not None and world.outsider is not None
    theirs = projects.create(ctx, None, title="Somebody else's study",
                             purpose="Another team's question entirely",
                             lead_id=world.outsider.person_id, starts_on=today,
                             expires_on=today + dt.timedelta(days=90), fields=[31]).project.id
    mine, me = world.project_id, world.researcher.person_id
    outsider, partner = world.outsider.person_id, world.partner_id
    checker = world.staff[Role.OUTPUT_CHECKER].person_id
    admin = world.staff[Role.CUSTODIAN_ADMIN].person_id

    researcher = Names(ctx, world.sign_in(world.researcher))
    assert researcher(mine) == "Blood pressure"
    assert researcher(me) == "researcher@partner.test"  # their own name (the world's names)
    # another project, its lead, the staff and the institutions stay IDs
    for unknown in (theirs, outsider, checker, partner):
        assert researcher(unknown) == unknown
        assert researcher.beside(f"see {unknown}") == f"see {unknown}"
    assert researcher.beside(f"{mine} by {outsider}") == \
        f"Blood pressure ({mine}) by {outsider}"
    assert set(researcher.all()) == {mine, me}
    assert researcher(None) == "—"

    # an output checker reads every project and the people on them, not the staff's names
    # or the institutions (no person.read, no institution.read)
    reviewer = Names(ctx, world.sign_in(world.staff[Role.OUTPUT_CHECKER]))
    assert reviewer(theirs) == "Somebody else's study"
    assert reviewer(outsider) == "outsider@ailleurs.test"
    assert reviewer(me) == "researcher@partner.test"
    assert reviewer(checker) == "output-checker@custodian.test"  # their own
    assert reviewer(admin) == admin and reviewer(partner) == partner

    # a custodian admin reads every kind, and a form's list says which kind each is
    custodian = Names(ctx, world.sign_in(world.staff[Role.CUSTODIAN_ADMIN]))
    assert custodian(partner) == "Partner University"
    assert custodian(checker) == "output-checker@custodian.test"
    labelled = custodian.labelled()
    assert labelled[theirs] == "project Somebody else's study"
    assert labelled[partner] == "institution Partner University"
    assert labelled[outsider] == "person outsider@ailleurs.test"


def test_people_on_names_the_people_of_the_projects_one_may_read(world: World) -> None:
    assert world.researcher is not None and world.outsider is not None
    found = projects.people_on(world.ctx, world.sign_in(world.researcher))
    assert found == {world.researcher.person_id: "researcher@partner.test"}
    assert projects.people_on(world.ctx, world.sign_in(world.outsider)) == {}


def test_titles_and_names_are_read_through_their_permissions(world: World) -> None:
    assert world.researcher is not None
    researcher = world.sign_in(world.researcher)
    assert projects.titles(world.ctx, researcher) == {world.project_id: "Blood pressure"}
    with pytest.raises(Refused):  # a researcher reads no list of people
        people.names(world.ctx, researcher)
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    named = people.names(world.ctx, admin)
    assert named[world.researcher.person_id] == "researcher@partner.test"
    assert named == {p.id: p.name for p, _ in people.list_all(world.ctx, admin)}
