"""The world the console's pages are tested on: the demo's, built once a run
(tests/demo_world.py, which tests/integration/test_demo.py copies too) and copied for the
session.

This test runs first of the browser tests (conftest.py puts it there), so the world's build
(unless the other module built it first) and its copy, the session's largest cost, are its own
time, not that of whichever page test happens to come first; and a demo that no longer leaves
what the pages' tests look for fails here, saying what is missing, before any of them does.
"""

from __future__ import annotations

from tests.functional.web.conftest import Console

ROLES = ["custodian-admin", "access-committee", "output-checker", "researcher",
         "security-analyst", "auditor"]


def test_the_demo_world_holds_what_the_pages_are_tested_on(console: Console) -> None:
    demo = console.demo
    for role in ROLES:  # as_role signs in as the demo's person of each role
        assert any(role in login.roles for login in demo.world.logins), role
    story = demo.story
    # the home pages' cards: a suspension in force, outputs waiting for the checkers
    assert story.alert_id is not None and len(story.suspended) == 2, story.notes
    assert any(h.status in ("under_review", "approved_once") for h in story.held)
    # the first project's workspace: released tour outputs and GWAS; the red team's: blocked ones
    assert any(stop.verdict == "block" for stop in demo.tour)
    assert any(stop.status == "released" for stop in demo.tour)
    assert demo.gwas, "the tour's GWAS was not released"
