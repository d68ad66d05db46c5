"""Every console page is reachable only by the roles allowed, and by nobody signed out.

The pages are found from the console's routers (every GET route under /ui without path
parameters), so a page added later is covered without touching this test; its section
(the first path segment after /ui) says who may open it (``pages.SECTIONS``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from strongroom.access.roles import Role
from strongroom.server import web
from strongroom.server.app import create_app
from strongroom.server.web.pages import PREFIX, SECTIONS, SHARED, roles_of_sections
from strongroom.watch.models import MeterRow
from tests.access_world import INSIDE, PASSWORD, World, build_world

OPEN = {f"{PREFIX}/login"}  # the sign-in form is for everyone
ANY_SIGNED_IN = {f"{PREFIX}/"}  # the home page: every signed-in person


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(tmp_path_factory.mktemp("web"), cohort=500)
    yield built
    built.platform.close()


def pages() -> list[str]:
    return sorted({r.path for router in web.ROUTERS for r in router.routes
                   if isinstance(r, APIRoute) and r.path.startswith(PREFIX + "/")
                   and "GET" in r.methods and "{" not in r.path})


def allowed(path: str) -> frozenset[Role] | None:
    """The roles that may open ``path`` (None: anyone signed in)."""
    if path in ANY_SIGNED_IN:
        return None
    for shared, titles in SHARED.items():
        if path == shared or path.startswith(shared + "/"):
            return roles_of_sections(*titles)
    for _, href, roles in SECTIONS:
        if path == href or path.startswith(href + "/"):
            return roles
    raise AssertionError(f"{path} belongs to no section: add it to pages.SECTIONS")


def signed_in(world: World, role: Role) -> TestClient:
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                        follow_redirects=False)
    member = world.member(role)
    answer = client.post(f"{PREFIX}/login", data={"email": member.email, "password": PASSWORD,
                                                  "code": world.code(member)})
    assert answer.status_code == 303, answer.text
    return client


def test_there_are_pages_to_check(world: World) -> None:
    found = pages()
    assert f"{PREFIX}/" in found and f"{PREFIX}/login" in found


@pytest.fixture(scope="module")
def answers(world: World) -> dict[tuple[Role, str], tuple[int, str]]:
    """Every role's answer to every page: (status, text)."""
    found = {}
    for role in Role:
        client = signed_in(world, role)
        for path in pages():
            if path not in OPEN:
                answer = client.get(path)
                found[(role, path)] = (answer.status_code, answer.text)
    return found


@pytest.mark.parametrize("role", list(Role))
def test_each_page_opens_only_for_the_roles_allowed(
        answers: dict[tuple[Role, str], tuple[int, str]], role: Role) -> None:
    for path in pages():
        if path in OPEN:
            continue
        roles = allowed(path)
        status, text = answers[(role, path)]
        if roles is None or role in roles:
            # inside the section the services decide: the page, or their own refusal
            assert status in (200, 403), (role, path, text[:300])
            assert "pages are for" not in text, (role, path)
        else:
            assert status == 403, (role, path, status)
            assert "pages are for" in text, (role, path)


def test_every_page_opens_for_someone(
        answers: dict[tuple[Role, str], tuple[int, str]]) -> None:
    closed = [path for path in pages() if path not in OPEN
              and not any(answers[(role, path)][0] == 200 for role in Role)]
    assert not closed, closed


def test_signed_out_every_page_sends_to_sign_in(world: World) -> None:
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                        follow_redirects=False)
    for path in pages():
        if path in OPEN:
            continue
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith(f"{PREFIX}/login?next="), path


def test_pages_carry_the_strict_content_security_policy(world: World) -> None:
    answer = TestClient(create_app(world.platform)).get(f"{PREFIX}/login")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert answer.headers["x-frame-options"] == "DENY"


def test_pages_are_never_kept_but_their_assets_are_by_content(world: World) -> None:
    client = TestClient(create_app(world.platform))
    page = client.get(f"{PREFIX}/login")
    assert page.headers["cache-control"] == "no-store"  # a page may hold data: never kept
    named = re.findall(rf'"({PREFIX}/static/[^"?]+)\?v=([0-9a-f]{{16}})"', page.text)
    assert {path.rsplit("/", 1)[-1] for path, _ in named} >= {
        "pico.min.css", "app.css", "app.js", "htmx.min.js", "favicon.svg"}
    for path, digest in named:
        answer = client.get(f"{path}?v={digest}")
        assert answer.status_code == 200, path
        assert hashlib.sha256(answer.content).hexdigest()[:16] == digest, path
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable", path


def test_a_page_that_does_not_exist_is_an_html_404(world: World) -> None:
    answer = TestClient(create_app(world.platform)).get(f"{PREFIX}/no-such-page")
    assert answer.status_code == 404 and "text/html" in answer.headers["content-type"]




def test_reading_a_project_page_is_not_metered_as_the_projects_transfer(world: World) -> None:
    client = signed_in(world, Role.CUSTODIAN_ADMIN)
    answer = client.get(f"{PREFIX}/custodian/projects/{world.project_id}")
    assert answer.status_code == 200, answer.text[:300]
    with world.ctx.transaction() as db:
        row = db.scalars(select(MeterRow).where(
            MeterRow.route == f"GET {PREFIX}/custodian/projects/{{project_id}}")
            .order_by(MeterRow.id.desc())).first()
    assert row is not None and row.person_id == world.staff[Role.CUSTODIAN_ADMIN].person_id
    assert row.project_id is None and row.bytes_out > 0
