"""The researcher's API tokens page in a real browser (Workspace → a project → API tokens):
issue a token of a preset, see its secret once, use it against the real server, revoke it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from strongroom.access.presets import PRESETS
from strongroom.client import Client, StrongroomError
from tests.functional.web.conftest import Console, new_person, screenshot, sign_in
from tests.functional.web.test_workspace import own_project


def test_a_researcher_issues_a_token_of_a_preset_sees_it_once_and_revokes_it(
        page: Page, console: Console, refusals: list[int]) -> None:
    lead = new_person(console, "researcher")
    project_id, title = own_project(console, lead)
    sign_in(page, console, lead)
    page.goto(f"{console.base}/ui/workspace/projects/{project_id}")
    page.get_by_test_id("tabs").get_by_role("link", name="API tokens").click()  # a tab
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_test_id("tabs").get_by_role("link", name="API tokens")
           ).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("You have no token for this project in force.")).to_be_visible()
    for preset in PRESETS:  # every preset is offered, the study one first and chosen
        expect(page.locator(f'input[name="preset"][value="{preset}"]')).to_have_count(1)
    expect(page.locator('input[name="preset"][value="study"]')).to_be_checked()

    page.get_by_label("Label").fill("laptop")
    page.get_by_label("Days until it expires").fill("7")
    page.get_by_role("button", name="Issue the token").click()
    secret = page.get_by_test_id("secret").input_value()
    assert secret.startswith("srt_")
    expect(page.get_by_test_id("new-token")).to_contain_text("shown this once")
    expect(page.get_by_test_id("tokens")).to_contain_text("laptop")
    screenshot(page, "workspace-tokens")

    with Client(console.base, token=secret) as program:  # the real server, with the token
        me = program.me()
        assert me["token_project"] == project_id
        assert set(me["token_actions"]) == {a.value for a in PRESETS["study"].actions}
        assert program.projects.schema(project_id)  # data.analyse: the study's

    page.goto(f"{console.base}/ui/workspace/projects/{project_id}/tokens")
    assert secret not in page.content()  # once: never again
    expect(page.get_by_test_id("tokens")).to_contain_text("laptop")

    # nothing chosen: refused with the reason, nothing issued
    refusals.append(400)
    page.locator('input[name="preset"][value=""]').check()
    page.get_by_role("button", name="Issue the token").click()
    expect(page.get_by_role("alert")).to_contain_text("at least one action")
    expect(page.get_by_test_id("tokens").locator("tbody tr")).to_have_count(1)

    # a preset and an action beside it
    page.locator('input[name="preset"][value="read"]').check()
    page.get_by_text("More actions").click()
    page.locator('input[name="action"][value="output.download"]').check()
    page.get_by_label("Label").fill("reader")
    page.get_by_role("button", name="Issue the token").click()
    expect(page.get_by_test_id("new-token")).to_contain_text(
        "output.download, output.read, project.read, self.read")

    page.get_by_role("button", name="Revoke laptop").click()
    expect(page.get_by_test_id("notice")).to_contain_text("revoked")
    expect(page.get_by_test_id("ended-tokens")).to_contain_text("laptop")
    expect(page.get_by_test_id("tokens")).not_to_contain_text("laptop")
    with Client(console.base, token=secret) as program, \
            pytest.raises(StrongroomError) as stopped:
        program.me()
    assert stopped.value.status == 401 and "revoked" in str(stopped.value)

    kinds = {(e.type, e.details.get("preset")) for e in console.platform.access.audit.entries()
             if e.type in ("auth.token.issued", "auth.token.revoked")}
    assert {("auth.token.issued", "study"), ("auth.token.issued", "read"),
            ("auth.token.revoked", None)} <= kinds
    assert title
