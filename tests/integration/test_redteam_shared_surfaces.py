"""Red team (third round): the surfaces a researcher reads (API routes, console pages, the CLI
over them), for figures pooled over an institution or state of another project.

The guarantee attacked: what a researcher sees depends only on their own requests and data
they may see, never on what another project (or institution) is doing or was answered.

Each finding is a plain test that fails while it is there: the reader (role researcher) reads
a free surface of their own project over HTTP, as their browser or client would, before and
after something changes in ANOTHER project (or the institution's split), and what they read
must not change (or must say what holds for them).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import WebSession
from strongroom.access.tokens import SESSION_PREFIX, digest, new_id, new_secret
from strongroom.attacks.world import AttackWorld
from strongroom.errors import Refused
from strongroom.server.app import create_app
from strongroom.server.security import CSRF_HEADER, SESSION_COOKIE
from tests.redteam_world import module_world

pytestmark = pytest.mark.slow

world = module_world()

INSIDE = "10.1.2.3"  # in the attack world's registered networks


def _browser(world: AttackWorld, who: Principal) -> TestClient:
    """The researcher's API client: a signed-in session (as POST /auth/login makes it)."""
    ctx = world.platform.access
    secret, csrf = new_secret(SESSION_PREFIX), new_secret()
    now = world.clock()
    with ctx.transaction() as db:
        db.add(WebSession(id=new_id("ses"), digest=digest(secret), csrf_digest=digest(csrf),
                          person_id=who.person_id, created_at=now, last_seen_at=now))
    made = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                      base_url="https://testserver")
    made.cookies.set(SESSION_COOKIE, secret)
    made.headers[CSRF_HEADER] = csrf
    return made


# -- lead 1: a project's page names its members' OTHER projects and their modes -------------


def test_project_view_shows_no_other_projects_state(world: AttackWorld) -> None:
    """GET /projects/{id} (and GET /projects, `strongroom enclave project`) is free to any
    member. Its ``mixed_access`` lists, for every member of the project, the fields they read
    exactly in one project and under DP in another, naming those other projects: projects
    the reader is no member of, of another institution here. The reader's colleague on
    their project also leads a project of their own; the access committee then puts that
    project (not the reader's) in DP mode. The reader's view of their own project must not
    change: it names a project they may not read, its mode and its field grants."""
    ctx, committee = world.platform.access, world.staff("access-committee")
    reader, mine = world.researcher()
    colleague, theirs = world.researcher()  # another institution, their own project
    projects.add_member(ctx, committee, mine, colleague.person_id)
    client = _browser(world, reader)
    before = client.get(f"/projects/{mine}")
    assert before.status_code == 200, before.text
    assert client.get(f"/projects/{theirs}").status_code == 403  # not the reader's to read
    world.platform.privacy.configure(committee, theirs, dp_mode=True, epsilon="1",
                                     reason="the access committee approved it")
    after = client.get(f"/projects/{mine}").json()
    assert after["mixed_access"] == before.json()["mixed_access"], (
        f"another project's state (its id, its DP mode, its fields) read from this "
        f"project's own page: {after['mixed_access']}")


# -- lead 2: the limits page shows the institution's pooled limits, not this project's share --


def test_limits_shown_are_the_ones_that_hold(world: AttackWorld) -> None:
    """GET /projects/{id}/limits (`strongroom enclave limits`) says it shows "the transfer
    limits that hold for the caller's transfers in a project". The institution's are shown
    pooled, as the custodian set them (20 cells a day), while what holds is this project's
    share of them (10: split between the institution's two active projects, access/shares.py).
    A download of 12 released cells, within the limit shown, is refused (and suspends the
    person and the project). What the page shows must be what holds."""
    watch, admin = world.platform.watch, world.staff("custodian-admin")
    reader, mine = world.researcher()
    world.researcher(institution_id=reader.institution_id)  # a colleague's project
    watch.set_limits(admin, "institution", reader.institution_id, {"cells": 20})
    shown = _browser(world, reader).get(f"/projects/{mine}/limits").json()
    try:
        watch.hold(reader, mine, "output.download", cells=12)
        said = "answered"
    except Refused as refused:
        said = " | ".join(refused.reasons)[:200]
    assert said == "answered" or shown["institution"]["cells"] < 12, (
        f"the limits page says {shown['institution']['cells']} cells a day for the "
        f"institution; 12 were refused: {said}")
