"""The output checker's pages in a real browser: the queue, an output, the decision.

The outputs under review are made through the services by a researcher of the tests' own on a
project of their own (a crosstab with structural zeros, which the project's rules send to
review);
the whole path from the researcher's form to the download is in test_workspace.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from strongroom.access.context import Principal
from strongroom.outputs import requests
from strongroom.outputs.states import OutputStatus
from tests.functional.web.conftest import Console, new_person, screenshot, sign_in
from tests.functional.web.test_workspace import WHY, held_output, own_project, principal_of

RoleOf = Callable[[str], Page]


@dataclass(frozen=True)
class Lab:
    researcher: Principal
    project_id: str
    title: str
    name: str  # the researcher's, as pages show people


@pytest.fixture(scope="module")
def lab(console: Console) -> Lab:
    login = new_person(console, "researcher")
    project_id, title = own_project(console, login)
    return Lab(principal_of(console, login), project_id, title, login.name)


def test_the_queue_shows_each_output_with_its_verdict_and_reasons(
        console: Console, lab: Lab, as_role: RoleOf) -> None:
    output_id = held_output(console, lab.researcher, lab.project_id)
    checker = as_role("output-checker")
    checker.goto(console.base + "/ui/checks")
    row = checker.get_by_test_id("queue-mine").locator(f"tr[data-output='{output_id}']")
    expect(row).to_contain_text(lab.title)
    expect(row).to_contain_text(lab.name)
    expect(row.get_by_test_id("verdict")).to_have_text("needs review")
    expect(row.get_by_test_id("reasons")).to_contain_text("threshold")
    expect(row.get_by_test_id("approvals")).to_contain_text("0 of 2 approvals; 2 more needed")
    screenshot(checker, "checks-queue")

    row.get_by_role("link", name=re.compile(r"^crosstab-.+\.json$")).click()  # by its name
    expect(checker.get_by_role("heading", level=1)).to_have_text(re.compile(r"^crosstab-"))
    expect(checker.get_by_text(output_id)).to_be_visible()  # its id beside it
    expect(checker.get_by_test_id("justification")).to_have_text(WHY)
    cells = checker.get_by_test_id("cells")
    expect(cells).to_contain_text("Total")  # the very table that would be released
    flagged = cells.get_by_test_id("flagged")  # the cells the findings are about, marked
    expect(flagged.first).to_be_visible()
    expect(cells.locator("td.flagged[title*='threshold']").first).to_be_visible()
    expect(checker.get_by_test_id("flagged-note")).to_be_visible()
    # its only counts shown are two zeros: no empty chart above the table (issue 55)
    expect(checker.locator("figure.chart svg")).to_have_count(0)
    expect(checker.get_by_role("button", name="Approve")).to_be_visible()
    screenshot(checker, "checks-output")


def test_the_queue_searches_by_project_and_pages_each_list(
        console: Console, lab: Lab, as_role: RoleOf) -> None:
    output_id = held_output(console, lab.researcher, lab.project_id)
    checker = as_role("output-checker")
    checker.goto(console.base + "/ui/checks")
    checker.get_by_label("Search the queue").fill(lab.project_id)
    checker.get_by_role("button", name="Search").click()
    mine = checker.get_by_test_id("queue-mine").locator("tbody tr")
    expect(mine.first).to_contain_text(lab.title)
    assert mine.count() == len(checker.locator(f"tbody tr:has-text('{lab.project_id}')")
                               .all())  # only this project's outputs
    expect(checker.get_by_test_id("queue-mine").locator(
        f"tr[data-output='{output_id}']")).to_be_visible()
    expect(checker.get_by_test_id("shown").first).to_contain_text(f"match “{lab.project_id}”")
    checker.get_by_label("Search the queue").fill("no such output anywhere")
    checker.get_by_role("button", name="Search").click()
    expect(checker.get_by_test_id("queue-mine")).to_have_count(0)

    # by kind (the kinds waiting are offered, in words), and by the output's name
    checker.get_by_label("Search the queue").fill("")
    checker.get_by_label("Kind of output").select_option("crosstab")
    checker.get_by_role("button", name="Search").click()
    assert "kind=crosstab" in checker.url
    kinds = checker.get_by_test_id("queue-mine").locator("tbody tr td:first-child small")
    expect(kinds.first).to_contain_text("crosstab")
    assert all(k.startswith("crosstab") for k in kinds.all_inner_texts())
    checker.goto(console.base + "/ui/checks?kind=gwas")
    expect(checker.locator(f"tr[data-output='{output_id}']")).to_have_count(0)
    checker.goto(console.base + "/ui/checks?q=crosstab-grouped-sex-grp")
    expect(checker.get_by_test_id("queue-mine").locator(
        f"tr[data-output='{output_id}']")).to_be_visible()


def test_a_rejection_without_a_comment_is_refused_with_the_reason(
        console: Console, lab: Lab, as_role: RoleOf, refusals: list[int]) -> None:
    output_id = held_output(console, lab.researcher, lab.project_id)
    checker = as_role("output-checker")
    checker.goto(f"{console.base}/ui/checks/outputs/{output_id}")
    refusals.append(400)
    checker.get_by_role("button", name="Reject").click()
    expect(checker.get_by_role("alert")).to_contain_text("a rejection needs a comment")
    expect(checker.get_by_test_id("status")).to_have_text("waiting for two output checkers")
    assert not refusals

    checker.get_by_label("Comment").fill("Too fine: band the groups more coarsely.")
    checker.get_by_role("button", name="Reject").click()
    expect(checker.get_by_test_id("notice")).to_contain_text("You rejected it")
    expect(checker.get_by_test_id("status")).to_have_text("rejected by an output checker")
    view = requests.read(console.platform.access, lab.researcher, output_id)
    assert view.status is OutputStatus.REJECTED
    assert "band the groups" in " ".join(view.reasons)  # what the researcher reads


def test_no_checker_reviews_twice_and_the_page_says_why(page: Page, console: Console,
                                                        lab: Lab) -> None:
    output_id = held_output(console, lab.researcher, lab.project_id)
    sign_in(page, console, new_person(console, "output-checker"))
    page.goto(f"{console.base}/ui/checks/outputs/{output_id}")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("approvals")).to_contain_text("1 of 2 approvals; 1 more needed")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_test_id("why-not")).to_contain_text("reviewed it already")
    page.goto(console.base + "/ui/checks")  # now among those waiting for someone else
    other = page.get_by_test_id("queue-others").locator(f"tr[data-output='{output_id}']")
    expect(other).to_contain_text("you reviewed it")

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "strongroom_csrf")
    again = page.request.post(f"{console.base}/ui/checks/outputs/{output_id}/review",
                              form={"csrf_token": csrf, "decision": "approve"})
    assert again.status == 409  # the service holds the rule whatever the page shows
    assert "already reviewed" in again.text()


def test_a_researcher_cannot_open_the_output_checks(page: Page, console: Console,
                                                    as_role: RoleOf,
                                                    refusals: list[int]) -> None:
    refusals.append(403)
    researcher = as_role("researcher")
    researcher.goto(console.base + "/ui/checks")
    expect(researcher.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(researcher.get_by_role("alert")).to_contain_text("the Output checks pages are for")
    assert not refusals
