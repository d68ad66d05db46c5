"""The researcher's workspace in a real browser: from a definition to a released file.

Tests that change state work as a researcher of their own (``new_person``) on a project of
their own; the main flow takes one output through two output checkers to its download.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from itertools import count
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect
from sqlalchemy import select

from strongroom.access import projects
from strongroom.access.auth import verify_credentials
from strongroom.access.context import Principal, Via
from strongroom.access.models import Person
from strongroom.demo.story import SMALL_CELLS_TO_PEOPLE
from strongroom.demo.world import RED_TEAM, RED_TEAM_PROJECT, DemoLogin
from strongroom.enclave import service
from strongroom.jobs import sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.states import JobStatus
from strongroom.outputs.verdicts import Verdict
from strongroom.privacy import budget
from tests.functional.web.conftest import Console, fresh_code, new_person, screenshot, sign_in

FIELDS = [31, 34, 54, 20116, 21001, 4080]
# sex, and a group that is structurally empty for one sex: the crosstab's zeros are held like
# any small cell, and go to review in a project whose rules send small cells to people (the
# demo's SMALL_CELLS_TO_PEOPLE)
GROUPED = ("SELECT pid, p31 AS sex, CASE WHEN p31 = 0 THEN 'a' WHEN p34 >= 1950 THEN 'b' "
           "ELSE 'c' END AS grp FROM participants")
WHY = "the zero cells are structural: group a is defined by sex"
_labs = count(1)


def person_id(console: Console, login: DemoLogin) -> str:
    with console.platform.access.transaction() as db:
        found = db.scalar(select(Person.id).where(Person.email == login.email))
    assert found is not None
    return found


def own_project(console: Console, lead: DemoLogin) -> tuple[str, str]:
    """A project led by ``lead`` (id, title): its state is the test's own. Its rules send
    small cells to two output checkers (so its structural zeros are theirs to judge)."""
    today = dt.date.today()
    title = f"Web lab {next(_labs)}"
    made = projects.create(console.platform.access, None, title=title,
                           purpose="Browser tests of the researcher's workspace pages.",
                           lead_id=person_id(console, lead), starts_on=today,
                           expires_on=today + dt.timedelta(days=90), fields=FIELDS)
    admin = principal_of(console, new_person(console, "custodian-admin"))
    console.platform.outputs.set_project_rules(admin, made.project.id, SMALL_CELLS_TO_PEOPLE)
    return made.project.id, title


def principal_of(console: Console, login: DemoLogin) -> Principal:
    """``login`` signed in to the services directly (for setting a test's scene)."""
    return verify_credentials(console.platform.access, login.email, login.password,
                              fresh_code(login.totp_secret), "127.0.0.1", Via.SESSION)


def held_output(console: Console, who: Principal, project_id: str) -> str:
    """An output held for review (a crosstab with structural zeros), as its researcher asks."""
    names = {d.name for d in service.list_definitions(console.platform.enclave, who,
                                                       project_id)}
    if "grouped" not in names:
        service.define(console.platform.enclave, who, project_id, "grouped", GROUPED)
    view = console.platform.outputs.analyse(who, project_id, {
        "kind": "crosstab", "definition": "grouped", "rows": "sex", "columns": "grp"})
    assert view.report.verdict is Verdict.REVIEW, view.reasons
    console.platform.outputs.request_release(who, view.output.id, WHY)
    return view.output.id


def give_budget(console: Console, project_id: str, epsilon: int) -> None:
    """A DP budget for the project (the access committee's decision, made for the scene)."""
    ctx = console.platform.access
    with ctx.transaction() as db:
        budget.configure(db, project_id, dp_mode=False, epsilon_total=Fraction(epsilon),
                         delta_total=Fraction(0), by="operator", now=ctx.clock())


def spend(page: Page, console: Console, project_id: str, epsilon: str) -> None:
    """A DP count through the API, with the page's own session (as a notebook would)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "strongroom_csrf")
    answer = page.request.post(f"{console.base}/projects/{project_id}/dp/queries",
                               data={"query": {"kind": "count", "epsilon": epsilon}},
                               headers={"X-CSRF-Token": csrf})
    assert answer.status == 200, answer.text()


@contextmanager
def another_page(browser: Browser, expected: list[int] | None = None) -> Iterator[Page]:
    """A second person's browser (its own context), held to the same rule: no console error
    except the refusals ``expected`` (HTTP statuses provoked on purpose)."""
    allowed = expected if expected is not None else []
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        for status in allowed:
            if f"status of {status} " in message.text:
                allowed.remove(status)
                return
        problems.append(f"console error: {message.text}")

    context = browser.new_context()
    opened = context.new_page()
    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        yield opened
    finally:
        context.close()
    assert not problems, problems


def open_project(page: Page, console: Console, title: str, tab: str | None = None) -> None:
    """The project's page from the workspace's list, on its ``tab`` (as its link reads)."""
    page.goto(console.base + "/ui/workspace")
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    if tab is not None:
        to_tab(page, tab)


def to_tab(page: Page, tab: str) -> None:
    page.get_by_test_id("tabs").get_by_role("link", name=re.compile(f"^{tab}")).click()
    expect(page.get_by_test_id("tabs").get_by_role("link", name=re.compile(f"^{tab}"))
           ).to_have_attribute("aria-current", "page")


def test_from_a_definition_to_a_released_file_through_two_checkers(
        browser: Browser, console: Console, as_role: Callable[[str], Page]) -> None:
    me = new_person(console, "researcher")
    project_id, title = own_project(console, me)
    refused: list[int] = [400]  # asking for a review without saying why
    with another_page(browser, refused) as mine:
        sign_in(mine, console, me)
        open_project(mine, console, title, tab="Definitions")
        mine.get_by_label("Definition name").fill("grouped")
        mine.get_by_label("SQL", exact=True).fill(GROUPED)
        mine.get_by_role("button", name="Define").click()
        expect(mine.get_by_test_id("notice")).to_contain_text("dataset definition is built")
        expect(mine.get_by_test_id("definitions")).to_contain_text("grouped")

        mine.get_by_label("Kind of analysis").select_option("crosstab")
        mine.get_by_label("Dataset definition").select_option("grouped")
        mine.get_by_label("Variables").fill("sex, grp")
        mine.get_by_role("button", name="Run and check").click()
        expect(mine.get_by_test_id("verdict")).to_have_text("needs review")
        expect(mine.get_by_test_id("reasons")).to_contain_text("threshold")
        output_id = mine.url.split("/outputs/")[1].split("?")[0]

        mine.get_by_role("button", name="Request release").click()  # no justification
        expect(mine.get_by_role("alert")).to_contain_text("explain in at least 20 characters")
        mine.get_by_label("Justification").fill(WHY)
        mine.get_by_role("button", name="Request release").click()
        expect(mine.get_by_test_id("status")).to_have_text("waiting for two output checkers")
        assert not refused

        checker = as_role("output-checker")
        checker.goto(console.base + "/ui/checks")
        row = checker.get_by_test_id("queue-mine").locator(f"tr[data-output='{output_id}']")
        expect(row).to_contain_text("threshold")
        expect(row).to_contain_text("0 of 2")
        row.get_by_role("link").first.click()
        expect(checker.get_by_test_id("cells")).to_be_visible()
        expect(checker.get_by_test_id("justification")).to_contain_text(WHY)
        checker.get_by_role("button", name="Approve").click()
        expect(checker.get_by_test_id("notice")).to_contain_text("A second, different")
        expect(checker.get_by_test_id("approvals")).to_contain_text("1 of 2")
        expect(checker.get_by_test_id("why-not")).to_contain_text("reviewed it already")

        second = new_person(console, "output-checker")
        with another_page(browser) as other:
            sign_in(other, console, second)
            other.goto(console.base + "/ui/checks")
            other.locator(f"tr[data-output='{output_id}'] a").first.click()
            other.get_by_label("Comment").fill("Agreed: structural zeros only.")
            other.get_by_role("button", name="Approve").click()
            expect(other.get_by_test_id("notice")).to_contain_text("it is released")
            expect(other.get_by_test_id("status")).to_have_text("released")

        mine.reload()
        expect(mine.get_by_test_id("status")).to_have_text("released")
        expect(mine.get_by_test_id("notice")).to_have_count(0)  # the old notice is gone
        with mine.expect_download() as fetched:
            mine.get_by_role("button", name=re.compile(r"Download crosstab-.+\.json")).click()
        body = json.loads(fetched.value.path().read_bytes())
        assert body["kind"] == "crosstab" and "contributors" not in json.dumps(body)
        mine.get_by_role("button", name="Show the table and chart").click()
        expect(mine.get_by_test_id("released-table")).to_be_visible()
        released = mine.get_by_test_id("released-table").get_by_test_id("cells")
        expect(released).to_contain_text("Female")  # p31's codes by the dictionary's words
        expect(released.locator("thead")).to_contain_text("sex")
        # two zeros are its only counts shown: no empty chart (issue 55)
        expect(mine.locator("#released-table svg.chart")).to_have_count(0)
        screenshot(mine, "workspace-result")

        give_budget(console, project_id, 1)
        spend(mine, console, project_id, "0.25")
        open_project(mine, console, title, tab="Results")
        expect(mine.get_by_test_id("released")).to_contain_text("crosstab-")  # by request
        expect(mine.get_by_test_id("results")).to_contain_text("released")
        screenshot(mine, "workspace-project")
        filters = mine.get_by_test_id("filters")
        filters.get_by_label("Status").select_option("released")
        filters.get_by_role("button", name="Show").click()
        expect(mine.get_by_test_id("results").locator("tbody tr")).to_have_count(1)
        mine.get_by_test_id("filters").get_by_label("Name or id").fill("no-such-output")
        mine.get_by_test_id("filters").get_by_role("button", name="Show").click()
        expect(mine.get_by_text("None of the results matches.")).to_be_visible()
        refused.append(400)  # a tab that is not there
        mine.goto(f"{console.base}/ui/workspace/projects/{project_id}?tab=nosuch")
        expect(mine.get_by_role("alert")).to_contain_text("its tabs are overview, analyse")


def test_bad_sql_comes_back_with_the_check_s_reasons(page: Page, console: Console,
                                                    refusals: list[int]) -> None:
    me = new_person(console, "researcher")
    _, title = own_project(console, me)
    sign_in(page, console, me)
    open_project(page, console, title, tab="Definitions")
    refusals.append(400)
    page.get_by_label("Definition name").fill("hostile")
    page.get_by_label("SQL", exact=True).fill("SELECT * FROM read_csv('/etc/passwd')")
    page.get_by_role("button", name="Define").click()
    expect(page.get_by_role("alert")).to_contain_text("read_csv")
    expect(page.get_by_label("SQL", exact=True)).to_have_value(
        "SELECT * FROM read_csv('/etc/passwd')")  # nothing typed is lost
    expect(page.get_by_label("Definition name")).to_have_value("hostile")
    assert not refusals


def _grouped(page: Page, console: Console) -> str:
    """A new researcher signed in, on their own project's definitions, defining GROUPED: the
    project's title."""
    me = new_person(console, "researcher")
    _, title = own_project(console, me)
    sign_in(page, console, me)
    open_project(page, console, title, tab="Definitions")
    page.get_by_label("Definition name").fill("grouped")
    page.get_by_label("SQL", exact=True).fill(GROUPED)
    page.get_by_role("button", name="Define").click()
    return title


def test_run_and_check_shows_the_run_s_progress_then_its_output(
        page: Page, console: Console) -> None:
    """The form submits the analysis; its page polls it (htmx, no inline script) with the
    time's share of its floor, then goes to its output (outputs/runs.py)."""
    _grouped(page, console)
    expect(page.get_by_test_id("definitions")).to_contain_text("grouped")
    ctx = console.platform.access
    saved = ctx.settings
    # a floor of 8 s for a crosstab at 1,500 participants (a quarter of the unit): long
    # enough to see the page poll, short enough to wait for
    ctx.settings = dataclasses.replace(saved, analysis_seconds=32.0)
    try:
        page.get_by_label("Kind of analysis").select_option("crosstab")
        page.get_by_label("Dataset definition").select_option("grouped")
        page.get_by_label("Variables").fill("sex, grp")
        page.get_by_role("button", name="Run and check").click()
        page.wait_for_url("**/ui/workspace/analysis-runs/run_*")
        expect(page.get_by_test_id("run-state")).to_have_attribute("data-status", "running")
        expect(page.locator("progress")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("if it is done by then")
        screenshot(page, "workspace-run")
        page.wait_for_url("**/ui/workspace/outputs/**", timeout=60_000)
    finally:
        ctx.settings = saved
    expect(page.get_by_test_id("verdict")).to_be_visible()


def test_an_analysis_form_with_the_wrong_variables_says_what_it_takes(
        page: Page, console: Console, refusals: list[int]) -> None:
    title = _grouped(page, console)
    refusals.append(400)
    page.get_by_label("Kind of analysis").select_option("crosstab")
    page.get_by_label("Dataset definition").select_option("grouped")
    page.get_by_label("Variables").fill("sex")
    page.get_by_role("button", name="Run and check").click()
    expect(page.get_by_role("alert")).to_contain_text("in order: rows, columns")
    expect(page.get_by_label("Variables")).to_have_value("sex")  # nothing typed is lost
    expect(page.get_by_label("Kind of analysis")).to_have_value("crosstab")
    page.get_by_label("Variables").fill("sex, nosuch")  # refused in its run: its page says
    page.get_by_role("button", name="Run and check").click()
    expect(page.get_by_role("alert")).to_contain_text("nosuch")
    assert not refusals

    # while an analysis runs the page says so, and its button cannot be pressed twice (the
    # submission stopped in the page, to read it mid-way)
    open_project(page, console, title, tab="Definitions")
    page.evaluate("window.addEventListener('submit', event => event.preventDefault())")
    page.get_by_role("button", name="Run and check").click()
    busy = page.get_by_role("button", name="Running and checking")
    expect(busy).to_have_attribute("aria-busy", "true")
    expect(busy).to_be_disabled()

    open_project(page, console, title, tab="Definitions")  # right at last; then asked, withdrawn
    page.get_by_label("Kind of analysis").select_option("crosstab")
    page.get_by_label("Dataset definition").select_option("grouped")
    page.get_by_label("Variables").fill("sex, grp")
    page.get_by_role("button", name="Run and check").click()
    page.get_by_label("Justification").fill(WHY)
    page.get_by_role("button", name="Request release").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Held for review")
    page.get_by_role("button", name="Withdraw the request").click()
    expect(page.get_by_test_id("status")).to_have_text("withdrawn by the researcher")


def test_the_privacy_budget_meter_shows_what_is_spent(page: Page, console: Console) -> None:
    me = new_person(console, "researcher")
    project_id, title = own_project(console, me)
    give_budget(console, project_id, 2)
    sign_in(page, console, me)
    spend(page, console, project_id, "0.5")
    open_project(page, console, title)
    meter = page.get_by_test_id("budget").locator("svg.meter")
    expect(meter).to_be_visible()
    expect(meter.locator("desc")).to_have_text("0.50 of 2 ε used")
    expect(page.get_by_test_id("budget")).to_contain_text("1.5 remains")


def test_the_dummy_data_is_a_zip_of_the_project_s_tables(page: Page, console: Console,
                                                        as_role: Callable[[str], Page]) -> None:
    researcher = as_role("researcher")
    title = console.demo.world.projects[0][1]
    open_project(researcher, console, title)
    with researcher.expect_download() as fetched:
        researcher.get_by_role("button", name="Download dummy data (zip)").click()
    with zipfile.ZipFile(io.BytesIO(fetched.value.path().read_bytes())) as found:
        assert any("participants" in name for name in found.namelist())


def test_the_demo_researcher_sees_the_tour_s_results(page: Page, console: Console,
                                                    as_role: Callable[[str], Page]) -> None:
    researcher = as_role("researcher")
    researcher.goto(console.base + "/ui/workspace")
    screenshot(researcher, "workspace-home")
    open_project(researcher, console, console.demo.world.projects[0][1], tab="Results")
    expect(researcher.get_by_test_id("released")).to_contain_text("crosstab")


def test_the_red_team_sees_its_attacks_blocked(page: Page, console: Console) -> None:
    """The tour's attacks are the custodian's red team's, in its own project."""
    sign_in(page, console, console.demo.world.login(RED_TEAM[0]))
    open_project(page, console, console.demo.world.projects[RED_TEAM_PROJECT][1], tab="Results")
    expect(page.get_by_test_id("results")).to_contain_text("blocked")
    to_tab(page, "Definitions")
    expect(page.get_by_test_id("definitions")).to_contain_text("flagged")


def test_a_released_gwas_shows_its_strongest_variants_and_its_plots(
        page: Page, console: Console, as_role: Callable[[str], Page]) -> None:
    researcher = as_role("researcher")
    open_project(researcher, console, console.demo.world.projects[0][1], tab="Results")
    researcher.get_by_test_id("released").get_by_role(
        "link", name=re.compile(r"^gwas-.+\.json$")).first.click()
    researcher.get_by_role("button", name="Show the table and chart").click()
    table = researcher.get_by_test_id("released-table")
    # the page reads the whole released file first ("a large one takes a few seconds"): a
    # GWAS's is the largest, and a loaded machine took more than the default 5 s
    expect(table).to_be_visible(timeout=30_000)
    expect(table.get_by_test_id("cells")).to_contain_text("bmi")
    expect(table.locator("img")).to_have_count(2)  # Manhattan and QQ, drawn from the table
    expect(table).to_contain_text("λ_GC bmi")
    screenshot(researcher, "workspace-gwas")


def test_an_output_checker_cannot_open_the_workspace(page: Page, console: Console,
                                                    as_role: Callable[[str], Page],
                                                    refusals: list[int]) -> None:
    refusals.append(403)
    checker = as_role("output-checker")
    checker.goto(console.base + "/ui/workspace")
    expect(checker.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(checker.get_by_role("alert")).to_contain_text("the Workspace pages are for")
    assert not refusals


JOB_YAML = """version: 1
actions:
  study:
    run: python analysis/study.py
    inputs: [people]
    outputs:
      by_sex: {path: output/by_sex.csv, kind: table}
      figure: {path: output/figure.png, kind: figure}
"""
JOB_SCRIPT = """import matplotlib.pyplot as plt
from strongroom import sdc

frame = sdc.read("people")
print("rows read:", len(frame))
sdc.frequency("by_sex", "people", "sex")
plt.hist(frame.birth_year, bins=10)
plt.savefig("output/figure.png")
"""


def ended(console: Console, job_id: str, within: float = 120.0) -> str:
    """The job's status once it has ended (finished, failed or refused)."""
    deadline = time.monotonic() + within
    while True:
        with console.platform.access.transaction() as db:
            status = db.scalar(select(JobRow.status).where(JobRow.id == job_id))
        assert status is not None, job_id
        if JobStatus(status) in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.REFUSED):
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status} after {within} s"
        time.sleep(0.1)


def test_a_job_from_upload_to_the_checkers_who_see_its_code(
        browser: Browser, console: Console, as_role: Callable[[str], Page],
        tmp_path: Path) -> None:
    if sandbox.unavailable():
        pytest.skip(str(sandbox.unavailable()))
    me = new_person(console, "researcher")
    project_id, title = own_project(console, me)
    console.platform.outputs.define(principal_of(console, me), project_id, "people",
                                    "SELECT pid, p31 AS sex, p34 AS birth_year FROM participants")
    console.platform.jobs.end_ladder = ()  # the ladder's wait is tests/…/test_jobs.py's
    repo = tmp_path / "repo.zip"
    with zipfile.ZipFile(repo, "w") as z:
        z.writestr("project.yaml", JOB_YAML)
        z.writestr("analysis/study.py", JOB_SCRIPT)
        z.writestr("plans/study.json", json.dumps([{"output": "by_sex", "analysis": {
            "kind": "frequency", "definition": "people", "variable": "sex"}}]))
    with another_page(browser) as mine:
        sign_in(mine, console, me)
        open_project(mine, console, title, tab="Jobs")
        mine.get_by_text("Run a job").click()
        mine.get_by_label("The repository, as a zip").set_input_files(str(repo))
        mine.get_by_label("Action").fill("study")
        mine.get_by_role("button", name="Run it").click()
        mine.wait_for_url("**/ui/workspace/jobs/*")
        # the job runs in the background (a dummy run, then the real one, each a Python of
        # its own in the sandbox); it is followed through the service, and its page read
        # once it ends (reloading the page every half second took CPU from the job)
        ended(console, mine.url.rsplit("/", 1)[1].split("?")[0])
        mine.reload()
        expect(mine.get_by_test_id("job-status")).to_have_text("finished")
        expect(mine.get_by_test_id("job-log")).to_contain_text("jobs run study --dummy")
        expect(mine.get_by_test_id("job-outputs")).to_contain_text("your code")
        screenshot(mine, "workspace-job")
        mine.get_by_role("link", name="figure").click()
        mine.get_by_label("Justification").fill("the distribution of birth years, figure 1")
        mine.get_by_role("button", name="Request release").click()
        expect(mine.get_by_test_id("status")).to_have_text("waiting for two output checkers")
        figure_id = mine.url.split("/outputs/")[1].split("?")[0]

        checker = as_role("output-checker")
        checker.goto(console.base + f"/ui/checks/outputs/{figure_id}")
        expect(checker.get_by_test_id("job-figure")).to_be_visible()
        expect(checker.get_by_test_id("job-code")).to_contain_text("plt.hist(frame.birth_year")
        screenshot(checker, "checks-job-figure")


def test_a_released_competing_risks_table_is_drawn_as_curves_with_a_legend(
        page: Page, console: Console) -> None:
    me = new_person(console, "researcher")
    project_id, _ = own_project(console, me)
    who = principal_of(console, me)
    service.define(console.platform.enclave, who, project_id, "causes",
                   "SELECT pid, (p34 % 20) / 2.0 + 0.25 AS years, "
                   "CASE WHEN p4080_i0_a0 > 150 THEN 1 WHEN p21001_i0 > 30 THEN 2 ELSE 0 END "
                   "AS cause "
                   "FROM participants WHERE p34 IS NOT NULL")
    view = console.platform.outputs.analyse(who, project_id, {
        "kind": "cumulative_incidence", "definition": "causes", "time": "years",
        "event": "cause", "unit": "years", "interval": 5})
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.reasons
    console.platform.outputs.request_release(who, view.output.id)
    sign_in(page, console, me)
    page.goto(f"{console.base}/ui/workspace/outputs/{view.output.id}")
    reading = page.get_by_test_id("reading")
    expect(reading).to_be_hidden()
    held: list[Route] = []  # the file's answer held back, as a large file's is by its size
    page.route("**/released", lambda route: held.append(route))
    page.get_by_role("button", name="Show the table and chart").click()
    expect(reading).to_be_visible()  # while it is read, the page says so
    expect(reading).to_contain_text("Reading the released file")
    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()
    table = page.get_by_test_id("released-table")
    expect(table.get_by_test_id("cells")).to_contain_text("incidence")
    expect(reading).to_be_hidden()  # and stops saying so when the table is there
    page.unroute("**/released")
    curves = table.locator("svg.chart polyline.step")
    expect(curves).to_have_count(2)  # one per cause
    expect(table.locator("svg.chart")).to_contain_text("1")  # the legend names the causes
    screenshot(page, "workspace-competing-risks")


def test_the_results_tab_filters_by_kind_and_name_and_pages_through_them(
        page: Page, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    from strongroom.server.web import workspace

    monkeypatch.setattr(workspace, "RESULTS_PER_PAGE", 2)  # the served app reads it per page
    me = new_person(console, "researcher")
    project_id, title = own_project(console, me)
    who = principal_of(console, me)
    service.define(console.platform.enclave, who, project_id, "grouped", GROUPED)
    for spec in ({"kind": "frequency", "variable": "sex"},
                 {"kind": "frequency", "variable": "grp"},
                 {"kind": "summary", "variables": ["sex"]}):
        console.platform.outputs.analyse(who, project_id, {"definition": "grouped", **spec})
    sign_in(page, console, me)
    open_project(page, console, title, tab="Results")
    results = page.get_by_test_id("results").locator("tbody tr")
    expect(results).to_have_count(2)
    expect(page.get_by_test_id("shown")).to_have_text("3 results; page 1 of 2.")
    page.get_by_role("link", name="Older →").click()
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("frequency-grouped-sex")  # the oldest, by name
    expect(page.get_by_test_id("tabs").get_by_role("link", name=re.compile("^Results"))
           ).to_have_attribute("aria-current", "page")

    filters = page.get_by_test_id("filters")
    filters.get_by_label("Kind").select_option("frequency")  # offered in words
    expect(filters.get_by_label("Kind").locator("option:checked")).to_have_text(
        "frequency table")
    filters.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("shown")).to_have_text("2 of 3 results match.")
    expect(results).to_have_count(2)
    filters = page.get_by_test_id("filters")
    filters.get_by_label("Name or id").fill("grp")
    filters.get_by_role("button", name="Show").click()
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("frequency-grouped-grp")
    assert "kind=frequency" in page.url and "q=grp" in page.url
