"""Signing in and out, each role's home page, and what the console refuses."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.functional.web.conftest import Console, fresh_code, new_person, screenshot, sign_in

HOMES = {  # role: the sections its home page offers
    "custodian-admin": {"Custodian", "Security"},
    "access-committee": {"Custodian"},
    "output-checker": {"Output checks"},
    "researcher": {"Workspace"},
    "security-analyst": {"Security"},
    "auditor": {"Security"},
}


def test_the_sign_in_page_is_what_a_new_user_sees_first(page: Page, console: Console) -> None:
    page.goto(console.base + "/")
    expect(page).to_have_url(console.base + "/ui/login?next=/ui/&why=signin")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")


@pytest.mark.parametrize("role", list(HOMES))
def test_each_role_lands_on_its_home_page(page: Page, console: Console, role: str) -> None:
    sign_in(page, console, new_person(console, role))
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    offered = {name.strip() for name in page.locator("main .cards h2").all_inner_texts()}
    assert offered == HOMES[role]
    expect(page.get_by_test_id("who")).to_contain_text(role)
    for title in HOMES[role]:  # each card says what waits there, and links to it
        card = page.get_by_test_id("card-" + title.lower().replace(" ", "-"))
        expect(card.locator("ul.waiting li").first).to_be_visible()
    if role in ("custodian-admin", "security-analyst"):
        # the demo's story: Mallory Vance and her project are suspended
        held = page.get_by_test_id("card-security").get_by_role(
            "link", name=re.compile(r"suspensions in force"))
        expect(held).to_have_text(re.compile(r"^[1-9]\d* suspensions in force$"))
    if role == "output-checker":
        expect(page.get_by_test_id("card-output-checks")).to_contain_text(
            re.compile(r"[1-9]\d* outputs waiting for your review"))
    if role == "custodian-admin":
        screenshot(page, "home")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(console.base + "/ui/")  # the session is gone
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_wrong_code_is_refused_with_a_clear_message(page: Page, console: Console,
                                                      refusals: list[int]) -> None:
    refusals.append(401)
    login = new_person(console, "researcher")
    page.goto(console.base + "/ui/login")
    page.get_by_label("Email").fill(login.email)
    page.get_by_label("Password").fill(login.password)
    wrong = str((int(pyotp.TOTP(login.totp_secret).now()) + 500_000) % 1_000_000).zfill(6)
    page.get_by_label("Authenticator code").fill(wrong)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("the email, password or code is wrong")
    expect(page.get_by_label("Email")).to_have_value(login.email)  # nothing typed is lost


def test_the_next_link_never_leaves_the_console(page: Page, console: Console) -> None:
    login = new_person(console, "researcher")
    page.goto(console.base + "/ui/login?next=//evil.example/x")
    page.get_by_label("Email").fill(login.email)
    page.get_by_label("Password").fill(login.password)
    page.get_by_label("Authenticator code").fill(fresh_code(login.totp_secret))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.base + "/ui/")


def test_a_form_without_the_csrf_token_is_refused(page: Page, console: Console) -> None:
    sign_in(page, console, new_person(console, "researcher"))
    answer = page.request.post(console.base + "/ui/logout", form={"csrf_token": "forged"})
    assert answer.status == 403
    assert "CSRF" in answer.text()
    page.goto(console.base + "/ui/")  # still signed in: the forged sign-out did nothing
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
