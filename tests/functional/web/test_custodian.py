"""The Custodian pages in a real browser: institutions, people (with the authenticator QR code
shown once), projects and export approval, the two-person lift, extracts and attribution."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from strongroom.access import institutions, pauses, projects
from strongroom.access.context import Principal, Via
from strongroom.access.models import Person
from strongroom.access.roles import Role
from strongroom.access.states import PauseLevel
from strongroom.cohort.model import EID
from strongroom.demo.world import DemoLogin
from strongroom.extracts import service as extracts
from strongroom.server.web import custodian
from tests.functional.web.conftest import Console, new_person, screenshot, sign_in

FIELDS = [31, 34, 48, 50, 4079, 4080, 21001, 21002, 30000, 30020, 30690, 30700, 30710, 30740,
          30750, 30760, 30780, 30870]
AsRole = Callable[[str], Page]
PURPOSE = "Cardiometabolic risk by sex, linked to a registry outside the enclave."


def principal_of(console: Console, login: DemoLogin) -> Principal:
    """A person of the test's own as the services see them (for setting the scene)."""
    with console.platform.access.transaction() as db:
        person = db.scalar(select(Person).where(Person.email == login.email))
    assert person is not None
    return Principal(person.id, person.institution_id, frozenset(Role(r) for r in login.roles),
                     Via.SESSION, source="127.0.0.1")


def project_asking_for_export(console: Console, title: str) -> tuple[str, Principal]:
    """A project of a researcher of the test's own whose export request waits for a decision."""
    researcher = principal_of(console, new_person(console, "researcher"))
    today = dt.date.today()
    ctx = console.platform.access
    project = projects.create(ctx, None, title=title, purpose=PURPOSE,
                              lead_id=researcher.person_id, starts_on=today,
                              expires_on=today + dt.timedelta(days=365), fields=FIELDS)
    projects.request_export(ctx, researcher, project.project.id,
                            "the registry link needs record-level rows")
    return project.project.id, researcher


PATHS = ("", "/institutions", "/people", "/projects", "/pauses", "/extracts", "/attribution")
OPEN = {  # role: the Custodian pages it may open (the others refuse it, with the reason)
    "researcher": set(),
    "output-checker": set(),
    "auditor": {"/extracts"},
    "security-analyst": {"/extracts", "/attribution"},
    "access-committee": {"", "/institutions", "/people", "/projects", "/pauses"},
    "custodian-admin": set(PATHS),
}


@pytest.mark.parametrize("role", list(OPEN))
def test_each_custodian_page_opens_only_for_the_roles_allowed(
        as_role: AsRole, console: Console, refusals: list[int], role: str) -> None:
    page = as_role(role)
    for path in PATHS:
        if path not in OPEN[role]:
            refusals.append(403)
        answer = page.goto(f"{console.base}/ui/custodian{path}")
        assert answer is not None
        if path in OPEN[role]:
            assert answer.status == 200, (role, path)
            expect(page.get_by_role("navigation", name="Custodian pages")).to_be_visible()
        else:
            assert answer.status == 403, (role, path)
            expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
            expect(page.get_by_role("alert")).to_contain_text(
                re.compile("you need one of these roles|pages are for"))


def test_the_overview_counts_what_needs_attention(as_role: AsRole, console: Console) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian")
    expect(page.get_by_role("heading", name="Custodian", exact=True)).to_be_visible()
    counted = page.get_by_test_id("count-institutions").locator(".count").inner_text()
    assert int(counted.replace(",", "")) >= 3  # the demo's three, and whatever tests added
    expect(page.get_by_test_id("count-projects")).to_be_visible()
    expect(page.get_by_test_id("count-extracts")).to_be_visible()
    cohort = page.get_by_test_id("cohort")  # the cohort in use, on the overview
    expect(cohort).to_contain_text("participants, ingested")
    expect(cohort.get_by_role("cell", name="participants", exact=True)).to_be_visible()
    screenshot(page, "custodian-overview")
    page.get_by_test_id("count-people").click()
    expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="grace.admin@custodian.example")).to_be_visible()


def test_an_admin_adds_an_institution_after_a_bad_try(as_role: AsRole, console: Console,
                                                       refusals: list[int]) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/institutions")
    page.get_by_label("Name").fill("Westmarch Institute")
    page.get_by_label("Country").fill("G1")
    page.get_by_label("Jurisdiction").fill("UK GDPR")
    page.get_by_label("Networks, one per line").fill("203.0.113.0/24\nnot-a-network")
    refusals.append(400)
    page.get_by_role("button", name="Add institution").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("must be an ISO 3166 two-letter code")
    expect(page.get_by_label("Name")).to_have_value("Westmarch Institute")  # nothing lost
    page.get_by_label("Country").fill("GB")
    refusals.append(400)
    page.get_by_role("button", name="Add institution").click()
    expect(page.get_by_role("alert")).to_contain_text("not-a-network")
    page.get_by_label("Networks, one per line").fill("203.0.113.0/24")
    page.get_by_role("button", name="Add institution").click()
    row = page.get_by_role("row").filter(has_text="Westmarch Institute")
    expect(row).to_contain_text("203.0.113.0/24")
    expect(row).to_contain_text("active")
    screenshot(page, "custodian-institutions")


def test_revoking_an_institution_asks_for_a_reason_first(as_role: AsRole, console: Console,
                                                         refusals: list[int]) -> None:
    made = institutions.create(console.platform.access, None, name="Doomed College",
                               country="GB", jurisdiction="UK GDPR")
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/institutions")
    page.get_by_test_id(f"institution-{made.id}").get_by_role("link", name="Revoke…").click()
    expect(page.get_by_role("heading", name="Revoke Doomed College?")).to_be_visible()
    refusals.append(400)
    page.get_by_label("Reason (kept in the audit log)").fill(" ")
    page.get_by_role("button", name="Revoke Doomed College").click()
    expect(page.get_by_role("alert")).to_contain_text("give a reason for the revocation")
    page.get_by_label("Reason (kept in the audit log)").fill("data sharing agreement ended")
    page.get_by_role("button", name="Revoke Doomed College").click()
    row = page.get_by_test_id(f"institution-{made.id}")
    expect(row).to_contain_text("data sharing agreement ended")
    row.get_by_role("button", name="Reinstate").click()
    expect(page.get_by_test_id(f"institution-{made.id}")).to_contain_text("active")


def test_an_admin_adds_a_person_and_sees_the_enrolment_once(
        as_role: AsRole, console: Console, browser: Browser, refusals: list[int]) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/people")
    screenshot(page, "custodian-people")
    page.get_by_label("Name").fill("Rosalind Newcomer")
    page.get_by_label("Email").fill("rosalind@northbridge")  # the browser lets it through
    page.get_by_role("combobox", name=re.compile("^Institution")).select_option(
        label="Northbridge University")
    refusals.append(400)
    page.get_by_role("button", name="Add person").click()
    expect(page.get_by_role("alert")).to_contain_text("give at least one role")
    expect(page.get_by_role("alert")).to_contain_text("is not an email address")
    expect(page.get_by_label("Name")).to_have_value("Rosalind Newcomer")
    page.get_by_label("Email").fill("rosalind@northbridge.example")
    page.get_by_role("checkbox", name=re.compile("^researcher")).check()
    page.get_by_role("button", name="Add person").click()
    expect(page.get_by_role("heading", name="Rosalind Newcomer is registered")).to_be_visible()
    qr = page.get_by_test_id("totp-qr").locator("svg")
    expect(qr).to_be_visible()
    assert qr.bounding_box() is not None and qr.bounding_box()["width"] > 100  # type: ignore[index]
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    password = page.get_by_test_id("password").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    screenshot(page, "custodian-person-enrolled")
    # what was shown works: the new person signs in with it
    context = browser.new_context()
    try:
        newcomer = context.new_page()
        sign_in(newcomer, console, DemoLogin("rosalind@northbridge.example", "Rosalind", "",
                                             ["researcher"], password, secret))
        expect(newcomer.get_by_role("heading", name="Welcome")).to_be_visible()
    finally:
        context.close()
    page.goto(console.base + "/ui/custodian/people")
    row = page.get_by_role("row").filter(has_text="rosalind@northbridge.example")
    expect(row).to_contain_text("pending")
    row.get_by_role("link", name="Rosalind Newcomer").click()
    page.get_by_label("Vetting").select_option("approved")
    page.get_by_role("button", name="Set vetting").click()
    expect(page.get_by_test_id("vetting")).to_have_text("approved")
    page.get_by_label("Role to grant").select_option("auditor")
    page.get_by_role("button", name="Grant role").click()
    expect(page.get_by_test_id("roles")).to_contain_text("auditor")
    page.get_by_role("button", name="Revoke auditor").click()
    expect(page.get_by_test_id("roles")).not_to_contain_text("auditor")


def test_the_committee_approves_an_export_request(as_role: AsRole, console: Console,
                                                  refusals: list[int]) -> None:
    project_id, _ = project_asking_for_export(console, "Registry linkage of blood pressure")
    page = as_role("access-committee")
    page.goto(console.base + "/ui/custodian/projects")
    request = page.get_by_test_id(f"request-{project_id}")
    expect(request).to_contain_text("Registry linkage of blood pressure")
    request.get_by_role("button", name="Approve export").click()
    expect(page.get_by_test_id("export-status")).to_have_text("approved")
    expect(page.get_by_role("cell", name="21001", exact=True)).to_be_visible()  # its grants
    page.goto(console.base + "/ui/custodian/projects")
    expect(page.get_by_test_id(f"request-{project_id}")).to_have_count(0)


def test_the_committee_creates_a_project_after_a_bad_try(as_role: AsRole, console: Console,
                                                         refusals: list[int]) -> None:
    lead = principal_of(console, new_person(console, "researcher"))
    page = as_role("access-committee")
    page.goto(console.base + "/ui/custodian/projects")
    page.get_by_label("Title").fill("Sleep and HbA1c")
    page.get_by_label("Purpose, as approved").fill("Too short")
    page.get_by_label("Lead").select_option(lead.person_id)
    page.get_by_label("Expires on").fill((dt.date.today() + dt.timedelta(days=700)).isoformat())
    page.get_by_label("Fields granted").fill("31, 30750, twelve")
    refusals.append(400)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("alert")).to_contain_text("'twelve'")
    page.get_by_label("Fields granted").fill("31, 30750")
    refusals.append(400)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 20 characters")
    expect(page.get_by_label("Title")).to_have_value("Sleep and HbA1c")
    page.get_by_label("Purpose, as approved").fill("How sleep duration relates to HbA1c.")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Sleep and HbA1c")).to_be_visible()
    expect(page.get_by_role("cell", name="30750", exact=True)).to_be_visible()
    expect(page.get_by_test_id("export-status")).to_have_text("none")
    expect(page.get_by_test_id("genotype-grant")).to_have_text("not granted")
    page.get_by_role("button", name="Grant the genotypes").click()
    expect(page.get_by_test_id("genotype-grant")).to_have_text("granted")
    page.get_by_role("button", name="Withdraw the genotype grant").click()
    expect(page.get_by_test_id("genotype-grant")).to_have_text("not granted")
    # grants are picked from the dictionary: the ticked fields replace the list
    picker = page.get_by_test_id("pick-fields")
    picker.locator("details").evaluate_all("groups => groups.forEach(g => { g.open = true })")
    picker.get_by_label("Waist circumference").check()
    picker.get_by_label("Sex").uncheck()
    page.get_by_role("button", name="Save field grants").click()
    expect(page.get_by_role("cell", name="48", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="31", exact=True)).to_have_count(0)
    expect(page.get_by_role("cell", name="30750", exact=True)).to_be_visible()
    page.goto(console.base + "/ui/custodian/projects")
    expect(page.get_by_role("row").filter(has_text="Sleep and HbA1c")).to_be_visible()
    screenshot(page, "custodian-projects")


def test_lifting_an_institution_pause_takes_two_admins(page: Page, console: Console,
                                                       browser: Browser,
                                                       refusals: list[int]) -> None:
    place = institutions.create(console.platform.access, None, name="Paused Polytechnic",
                                country="GB", jurisdiction="UK GDPR")
    first, second = new_person(console, "custodian-admin"), new_person(console, "custodian-admin")
    sign_in(page, console, first)
    page.goto(console.base + "/ui/custodian/pauses")
    page.get_by_label("Level").select_option("institution")
    page.get_by_label("What to pause").fill(place.id)
    page.get_by_label("Reason (shown to those it stops)").fill("suspected credential sharing")
    page.get_by_role("button", name="Pause", exact=True).click()
    row = page.get_by_role("row").filter(has_text="Paused Polytechnic")
    expect(row).to_contain_text("approvals 0 of 2")
    row.get_by_role("button", name="Ask to lift (first admin)").click()
    row = page.get_by_role("row").filter(has_text="Paused Polytechnic")
    expect(row).to_contain_text(f"approval 1 of 2: {first.name} asked to lift it")
    expect(row).to_contain_text("still needed: a different custodian admin")
    screenshot(page, "custodian-pauses")
    refusals.append(409)
    row.get_by_role("button", name="Confirm lift (second admin)").click()
    expect(page.get_by_role("alert")).to_contain_text("a different custodian admin must "
                                                      "confirm it")
    context = browser.new_context()
    try:
        other = context.new_page()
        sign_in(other, console, second)
        other.goto(console.base + "/ui/custodian/pauses")
        other.get_by_role("row").filter(has_text="Paused Polytechnic").get_by_role(
            "button", name="Confirm lift (second admin)").click()
        other.get_by_text("Recently lifted").click()
        lifted = other.get_by_role("row").filter(has_text="Paused Polytechnic")
        expect(lifted).to_contain_text(f"lifted by {second.name}")
        expect(lifted.get_by_role("button")).to_have_count(0)
    finally:
        context.close()


def test_a_pause_without_a_reason_is_refused_with_the_reason(
        as_role: AsRole, console: Console, refusals: list[int]) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/pauses")
    page.get_by_label("Level").select_option("person")
    page.get_by_label("What to pause").fill("per_0000")
    page.get_by_label("Reason (shown to those it stops)").fill("testing")
    refusals.append(404)
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("there is no person per_0000")
    expect(page.get_by_label("What to pause")).to_have_value("per_0000")


# -- extracts and attribution --------------------------------------------------------------

@dataclass
class Made:
    project_id: str
    result: extracts.ExtractResult
    frame: pl.DataFrame


@pytest.fixture(scope="module")
def extract(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    """An extract made through the service for a project of the test's own, approved by a
    committee member of its own."""
    project_id, _ = project_asking_for_export(console, "Extract for the console test")
    committee = principal_of(console, new_person(console, "access-committee"))
    projects.decide_export(console.platform.access, committee, project_id, True)
    admin = principal_of(console, new_person(console, "custodian-admin"))
    out = tmp_path_factory.mktemp("extract") / "made.csv"
    made = extracts.create_extract(console.platform.access, admin, project_id, "csv", out,
                                   store=console.platform.store,
                                   watch=console.platform.watch)
    yield Made(project_id, made, pl.read_csv(out))


def test_the_extracts_list_shows_the_manifest(as_role: AsRole, console: Console,
                                              extract: Made) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/extracts")
    row = page.get_by_test_id(f"extract-{extract.result.extract_id}")
    expect(row).to_contain_text("Extract for the console test")
    expect(row).to_contain_text(extract.result.key_id)
    row.get_by_role("link", name=extract.result.extract_id).click()
    manifest = page.get_by_test_id("manifest")
    expect(manifest).to_contain_text(extract.result.sha256)
    expect(manifest).to_contain_text(f"{extract.result.decoys}")
    expect(page.get_by_role("heading", name=re.compile("Fingerprint carriers"))).to_be_visible()
    screenshot(page, "custodian-extract-manifest")


def _leak(extract: Made, folder: Path) -> Path:
    """300 of the extract's rows, shuffled, its ID column dropped, as JSON lines (a CSV is
    read alike: the service's tests): a typical leak."""
    rng = np.random.default_rng(5)
    frame = extract.frame[rng.permutation(extract.frame.height)[:300]].drop(EID)
    path = folder / "found-on-a-forum.jsonl"
    frame.write_ndjson(path)
    return path


def test_attribution_names_the_project_a_leak_came_from(
        page: Page, console: Console, extract: Made, tmp_path: Path) -> None:
    sign_in(page, console, new_person(console, "security-analyst"))
    page.goto(console.base + "/ui/custodian/attribution")  # analysts attribute too
    page.get_by_label(re.compile("Suspect file")).set_input_files(_leak(extract, tmp_path))
    page.get_by_role("button", name="Attribute").click()
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_contain_text("attributed", timeout=60_000)
    accused = page.get_by_test_id("accused")
    expect(accused).to_have_count(1)
    expect(accused).to_contain_text(extract.project_id)
    expect(accused).to_contain_text(extract.result.extract_id)
    expect(page.get_by_test_id("rows-read")).to_have_text("300")
    expect(page.get_by_test_id("evidence")).to_contain_text("# Attribution evidence")
    screenshot(page, "custodian-attribution")


def test_attribution_refuses_bad_files_with_a_clear_message(
        as_role: AsRole, console: Console, tmp_path: Path, refusals: list[int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/attribution")
    junk = tmp_path / "notes.txt"
    junk.write_text("just one line of prose without any delimiter at all\n")
    page.get_by_label(re.compile("Suspect file")).set_input_files(junk)
    refusals.append(400)
    page.get_by_role("button", name="Attribute").click()
    expect(page.get_by_role("alert")).to_contain_text("notes.txt")
    monkeypatch.setattr(custodian, "MAX_SUSPECT_BYTES", 1024)  # the server runs in-process
    big = tmp_path / "big.csv"
    big.write_text("a,b\n" + "1,2\n" * 1000)
    page.get_by_label(re.compile("Suspect file")).set_input_files(big)
    refusals.append(400)
    page.get_by_role("button", name="Attribute").click()
    expect(page.get_by_role("alert")).to_contain_text("the file is larger than")
    assert not list(Path(custodian.tempfile.gettempdir()).glob("strongroom-attribute-*"))



def test_the_committee_measures_an_extracts_risk_with_the_class_sizes_drawn(
        as_role: AsRole, console: Console) -> None:
    project_id, _ = console.demo.world.projects[0]
    page = as_role("access-committee")
    page.goto(f"{console.base}/ui/custodian/projects/{project_id}")
    page.get_by_role("button", name="Measure the risk").click()
    summary = page.get_by_test_id("risk-summary")
    expect(summary).to_contain_text("k = ")
    expect(summary).to_contain_text("Prosecutor risk")
    chart = page.locator("#risk svg.chart")
    expect(chart).to_have_count(1)
    assert "bars; largest" in (chart.locator("desc").text_content() or "")
    screenshot(page, "custodian-project-risk")


def test_a_suspended_project_and_its_lead_say_so_on_every_page_about_them(
        as_role: AsRole, console: Console) -> None:
    """A project the watch suspended is not shown as plain "active": its page, the list and its
    lead's page say it is held, since when and why. (The suspensions are the test's own,
    without alerts, so they are taken away after: the other pages read their alerts.)"""
    project_id, lead = project_asking_for_export(console, "Suspended for a bulk pattern")
    ctx = console.platform.access
    made = []
    try:
        with ctx.transaction() as db:
            made.append(pauses.suspend(ctx, db, PauseLevel.PROJECT, project_id,
                                       "automatic: 40 near-identical queries in 10 minutes",
                                       "alt_test"))
        page = as_role("custodian-admin")
        page.goto(f"{console.base}/ui/custodian/projects/{project_id}")
        expect(page.get_by_test_id("held")).to_contain_text("Suspended automatically")
        expect(page.get_by_test_id("held")).to_contain_text("near-identical queries")
        expect(page.get_by_test_id("project-status")).to_contain_text("active, suspended")
        page.goto(f"{console.base}/ui/custodian/projects")
        expect(page.get_by_test_id(f"project-{project_id}")).to_contain_text("suspended")
        page.goto(f"{console.base}/ui/custodian/people/{lead.person_id}")
        expect(page.get_by_test_id("held")).to_have_count(0)  # the project is held, not its lead
        with ctx.transaction() as db:
            made.append(pauses.suspend(ctx, db, PauseLevel.PERSON, lead.person_id,
                                       "automatic: a drip", "alt_test2"))
        page.reload()
        expect(page.get_by_test_id("held")).to_contain_text("a drip")
        # the security page lists them though their alerts are not there (it was a 404)
        page.goto(f"{console.base}/ui/security/suspensions")
        expect(page.get_by_role("heading", name="Suspensions and appeals")).to_be_visible()
        expect(page.locator("main")).to_contain_text("a drip")
    finally:
        with ctx.transaction() as db:
            for pause in made:
                if pause is not None:
                    db.delete(db.merge(pause))


def test_the_people_list_searches_by_any_word(as_role: AsRole, console: Console) -> None:
    page = as_role("custodian-admin")
    page.goto(console.base + "/ui/custodian/people")
    everyone = page.locator("tbody tr[data-testid^='person-']").count()
    page.get_by_label("Search people").fill("checker")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr[data-testid^='person-']")
    expect(rows.first).to_contain_text("checker")
    assert 0 < rows.count() < everyone
    expect(page.get_by_test_id("shown")).to_contain_text("match “checker”")
