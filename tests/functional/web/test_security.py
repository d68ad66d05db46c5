"""The Security pages in a real browser: an alert (and the suspension it set) made through the
watch service on a researcher and project of the test's own, then worked by the analyst from
the list to resolved; the charts, the audit log's verification, exports, appeals and the
two-admin lift; and who may see and do what."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pyroaring import BitMap
from sqlalchemy import select

from strongroom.access import projects
from strongroom.access.context import Principal, Via
from strongroom.access.models import Person
from strongroom.access.roles import Role
from strongroom.errors import Refused
from strongroom.watch import appeals
from strongroom.watch.history import Observation
from strongroom.watch.limits import Planned
from strongroom.watch.models import AlertRow
from tests.functional.web.conftest import Console, new_person, screenshot, sign_in

LIMIT = 100  # distinct participants record-level in 30 days, for the test's own project
_projects = itertools.count(1)


@dataclass(frozen=True)
class Incident:
    """A researcher of the test's own over the record-level limit: an alert, suspensions."""

    alert_id: str
    project_id: str
    title: str
    institution_id: str
    researcher: Principal


def _principal(console: Console, email: str, role: Role) -> Principal:
    with console.platform.access.transaction() as db:
        person = db.scalar(select(Person).where(Person.email == email))
    assert person is not None
    return Principal(person.id, person.institution_id, frozenset({role}), Via.SESSION,
                     source="127.0.0.1")


def _history(console: Console, who: Principal, project_id: str) -> None:
    """Forty-five past days of ordinary downloads: what the charts' baseline rests on."""
    now = console.platform.access.clock()
    with console.platform.access.transaction() as db:
        for day in range(1, 46):
            db.add(Observation(
                at=now - dt.timedelta(days=day, hours=1), action="output.download",
                route="GET /outputs/{output_id}/download", status=200,
                person_id=who.person_id, institution_id=who.institution_id,
                project_id=project_id, source="127.0.0.1", via="session",
                cells=40 + 10 * (day % 5), bytes_out=6_000 + 500 * (day % 3)).to_row())


def make_incident(console: Console) -> Incident:
    """Through the watch service, as the extract route does: one export under the limit
    (reserved), then one over it (refused: an alert, the person and project suspended)."""
    ctx, watch = console.platform.access, console.platform.watch
    login = new_person(console, "researcher")
    researcher = _principal(console, login.email, Role.RESEARCHER)
    today = ctx.clock().date()
    title = f"Security console test project {next(_projects)}"
    project = projects.create(
        ctx, None, title=title,
        purpose="A project of the security pages' own tests, over a low limit on purpose.",
        lead_id=researcher.person_id, starts_on=today - dt.timedelta(days=1),
        expires_on=today + dt.timedelta(days=365), fields=[31]).project
    admin = _principal(console, console.login_of("custodian-admin").email,
                       Role.CUSTODIAN_ADMIN)
    watch.set_limits(admin, "project", project.id, {"record_participants": LIMIT})
    _history(console, researcher, project.id)
    watch.guard(researcher, project.id, "data.export", Planned(record_members=BitMap(
        range(1, 61))))
    with pytest.raises(Refused, match=f"limit of {LIMIT}"):
        watch.guard(researcher, project.id, "data.export",
                    Planned(record_members=BitMap(range(40, 160))))
    with ctx.transaction() as db:
        alert = db.scalar(select(AlertRow).where(AlertRow.project_id == project.id))
    assert alert is not None and len(alert.suspensions) == 2
    return Incident(alert.id, project.id, title, researcher.institution_id, researcher)


@pytest.fixture(scope="module")
def incident(console: Console) -> Incident:
    return make_incident(console)


def _open(page: Page, console: Console, path: str) -> None:
    page.goto(console.base + "/ui/security" + path)


def test_the_analyst_works_an_alert_from_the_list_to_resolved(
        as_role: Callable[[str], Page], console: Console, incident: Incident,
        refusals: list[int]) -> None:
    page = as_role("security-analyst")
    _open(page, console, "")
    expect(page.get_by_role("heading", name="Security overview")).to_be_visible()
    page.get_by_role("button", name="Verify the audit log now").click()
    expect(page.get_by_test_id("audit-status")).to_contain_text("Verified up to entry")
    expect(page.get_by_role("link", name=incident.alert_id).first).to_be_visible()
    screenshot(page, "security-overview")

    page.get_by_role("link", name="Alerts", exact=True).click()
    page.get_by_label("Status").select_option("open")
    page.get_by_label("Severity").select_option("high")
    page.get_by_role("button", name="Show alerts").click()
    page.get_by_role("link", name=incident.alert_id).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("over a hard limit")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("Raised by watch (limit.record-participants, high)")
    # who and what by name, beside their IDs
    with console.platform.access.transaction() as db:
        name = db.get(Person, incident.researcher.person_id).name  # type: ignore[union-attr]
    expect(timeline).to_contain_text(
        f"Suspended person {name} ({incident.researcher.person_id})")
    expect(timeline).to_contain_text(
        f"Suspended project {incident.title} ({incident.project_id})")
    expect(page.get_by_text(f"limit of {LIMIT}").first).to_be_visible()  # its reasons
    # the evidence in words: a list of records as a table, never raw JSON
    expect(page.locator("dl.evidence dt", has_text="Breaches")).to_be_visible()
    breaches = page.locator("dl.evidence table").first
    expect(breaches.locator("th", has_text="Meter")).to_be_visible()
    expect(breaches.locator("td", has_text=f"{LIMIT:,}").first).to_be_visible()
    assert "{" not in page.locator("dl.evidence").inner_text()
    screenshot(page, "security-alert")

    page.get_by_label("Note (optional").fill("calling the project lead")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id("alert-status")).to_have_text("acknowledged")
    expect(timeline).to_contain_text("Acknowledged")

    refusals.append(400)  # resolving without a reason is refused, and says why
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_role("alert")).to_contain_text("say why the alert is resolved")
    expect(page.get_by_test_id("alert-status")).to_have_text("acknowledged")

    page.get_by_label("Why is it resolved?").fill("a paged cohort build, agreed with the PI")
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_test_id("alert-status")).to_have_text("resolved")
    expect(timeline).to_contain_text("Resolved")
    expect(timeline).to_contain_text("a paged cohort build, agreed with the PI")
    # resolving never lifts a suspension
    expect(page.get_by_text("Lifting a suspension takes two custodian admins")).to_be_visible()


def test_a_bad_filter_is_refused_with_a_clear_message(
        as_role: Callable[[str], Page], console: Console, refusals: list[int]) -> None:
    page = as_role("security-analyst")
    refusals.append(400)
    _open(page, console, "/alerts?status=burning")
    expect(page.get_by_role("alert")).to_contain_text("'burning' is not an alert status")
    expect(page.get_by_role("button", name="Show alerts")).to_be_visible()


def test_each_partner_has_its_charts(as_role: Callable[[str], Page], console: Console,
                                     incident: Incident) -> None:
    page = as_role("security-analyst")
    _open(page, console, "/partners")
    page.get_by_role("link", name=incident.title, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(incident.title)
    reach = page.get_by_test_id("reach-chart").locator("svg desc")
    expect(reach).to_contain_text("last 60 participants")  # the refused export left none
    expect(reach).to_contain_text(f"limit {LIMIT} participants")
    transfers = page.locator("figure.transfer-chart svg")
    expect(transfers).to_have_count(3)
    for title in ("Cells released per day", "Bytes out per day",
                  "Record-level rows exported per day"):
        chart = page.locator(f"svg[aria-label='{title}']")
        expect(chart.locator("desc")).to_contain_text("60 points")
        expect(chart.locator("desc")).to_contain_text("shaded: baseline")
        expect(chart.locator("polygon.band")).to_have_count(1)
    screenshot(page, "security-partner-charts")

    _open(page, console, f"/partners/institutions/{incident.institution_id}")
    expect(page.locator("figure.transfer-chart svg")).to_have_count(3)
    expect(page.get_by_test_id("reach-chart").locator("svg desc")).to_contain_text("limit")


def test_an_alert_exports_as_ocsf_json(as_role: Callable[[str], Page], console: Console,
                                       incident: Incident, tmp_path: Path) -> None:
    page = as_role("security-analyst")
    _open(page, console, f"/alerts/{incident.alert_id}")
    with page.expect_download() as got:
        page.get_by_role("link", name="OCSF").click()
    finding = json.loads(Path(got.value.path()).read_text())
    assert finding["finding_info"]["uid"] == incident.alert_id
    assert got.value.suggested_filename == f"{incident.alert_id}.ocsf.json"

    _open(page, console, "/exports")
    page.get_by_label("Format").select_option("ocsf")
    with page.expect_download() as many:
        page.get_by_role("button", name="Download").click()
    every = json.loads(Path(many.value.path()).read_text())
    assert incident.alert_id in {f["finding_info"]["uid"] for f in every}
    expect(page.get_by_role("heading", name="Delivery destinations")).to_be_visible()
    screenshot(page, "security-exports")


def test_a_researcher_is_refused_the_security_pages(
        as_role: Callable[[str], Page], console: Console, refusals: list[int]) -> None:
    page = as_role("researcher")
    refusals.append(403)
    _open(page, console, "")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("the Security pages are for")


def test_an_auditor_reads_but_has_no_buttons_and_the_service_refuses_a_change(
        as_role: Callable[[str], Page], console: Console, incident: Incident) -> None:
    page = as_role("auditor")
    _open(page, console, f"/alerts/{incident.alert_id}")
    expect(page.get_by_test_id("timeline")).to_contain_text("Raised by watch")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    for name in ("Acknowledge", "Resolve", "Reopen"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    answer = page.request.post(f"{console.base}/ui/security/alerts/{incident.alert_id}/reopen",
                               form={"csrf_token": csrf, "reason": "an auditor tries"})
    assert answer.status == 403
    assert "to acknowledge, resolve or reopen a watch alert you need one of these roles" \
        in answer.text()
    _open(page, console, "/suspensions")  # reading is allowed; lifting is not offered
    expect(page.get_by_role("heading", name="Suspensions and appeals")).to_be_visible()
    expect(page.get_by_role("button", name="Ask to lift")).to_have_count(0)


def test_an_appeal_is_lifted_only_by_two_custodian_admins(
        page: Page, console: Console, refusals: list[int]) -> None:
    mine = make_incident(console)
    appeals.appeal(console.platform.access, mine.researcher, mine.alert_id,
                   "the extract was the approved linkage job, declared late by mistake")
    first, second = (new_person(console, "custodian-admin") for _ in range(2))

    sign_in(page, console, first)
    page.goto(f"{console.base}/ui/security/suspensions")
    expect(page.get_by_text("Lifting a suspension takes two custodian admins")).to_be_visible()
    # who and what is suspended, by name (the project by its title), the id beside it
    held = page.get_by_role("row").filter(has_text=mine.alert_id)
    expect(held.filter(has_text=mine.title)).to_contain_text(mine.project_id)
    with console.platform.access.transaction() as db:
        name = db.get(Person, mine.researcher.person_id).name
    expect(held.filter(has_text=name).filter(has_text=mine.researcher.person_id)).to_have_count(1)
    appeal = page.get_by_role("row").filter(has_text="waiting for review").filter(
        has_text=mine.alert_id)
    expect(appeal).to_contain_text(name)  # the appeal's author, by name
    screenshot(page, "security-suspensions")
    page.get_by_role("link", name=mine.alert_id).first.click()
    expect(page.get_by_test_id("appeal-status")).to_have_text("pending")
    refusals.append(400)  # a decision without a reason is refused, and says why
    page.get_by_role("button", name="Lift (asks a second admin)").click()
    expect(page.get_by_role("alert")).to_contain_text("a review's reason")
    page.get_by_label("Your reason").fill("the declared job covers this extract")
    page.get_by_role("button", name="Lift (asks a second admin)").click()
    expect(page.get_by_test_id("appeal-status")).to_have_text("lifting")
    expect(page.get_by_test_id("timeline")).to_contain_text(
        "a second custodian admin must confirm")
    refusals.append(409)  # the same admin cannot confirm their own lift
    page.get_by_label("Your reason").fill("confirming my own request")
    page.get_by_role("button", name="Confirm the lift").click()
    expect(page.get_by_role("alert")).to_contain_text("a different custodian admin")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, console, second)
    page.goto(f"{console.base}/ui/security/alerts/{mine.alert_id}")
    page.get_by_label("Your reason").fill("agreed: the declared job covers it")
    page.get_by_role("button", name="Confirm the lift").click()
    expect(page.get_by_test_id("appeal-status")).to_have_text("lifted")
    expect(page.get_by_test_id("timeline")).to_contain_text("Suspension of person")
    page.goto(f"{console.base}/ui/security/suspensions")
    expect(page.get_by_role("heading", name="Recently lifted")).to_be_visible()


def test_the_alert_list_pages_through_every_alert_that_matches(
        as_role: Callable[[str], Page], console: Console) -> None:
    """More alerts than a page holds: the page shows the newest 50, and its links walk to the
    rest, keeping the filter (the list once stopped at 200 without saying more existed)."""
    from strongroom.watch.raising import raise_alert
    from strongroom.watch.signals import Signal, Subject
    from strongroom.watch.states import Severity

    ctx = console.platform.access
    start = dt.datetime.now(dt.UTC)
    with ctx.transaction() as db:
        made = [raise_alert(db, Signal("paging.test", Severity.LOW, Subject(),
                                       f"paging alert {i}", ["a test of the list's pages"],
                                       dedup=str(i)), start + dt.timedelta(seconds=i))[0].id
                for i in range(57)]
    try:
        page = as_role("security-analyst")
        page.goto(console.base + "/ui/security/alerts?detector=paging.test")
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(50)
        expect(rows.first).to_contain_text("paging alert 56")  # newest first
        page.get_by_role("link", name="Older →").click()
        expect(rows).to_have_count(7)
        expect(rows.last).to_contain_text("paging alert 0")
        assert "detector=paging.test" in page.url
        expect(page.get_by_role("link", name="Older →")).to_have_count(0)
        page.get_by_role("link", name="← Newer").click()
        expect(rows).to_have_count(50)
    finally:
        with ctx.transaction() as db:
            for alert_id in made:
                db.delete(db.get(AlertRow, alert_id))
