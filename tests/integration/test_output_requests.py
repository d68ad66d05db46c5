"""The output room's release workflow on SQLite and PostgreSQL: verdicts, two-checker review,
independence of reviewers, withdrawal, tamper-evident bytes, and the audit record."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import object_session

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.keys import open_project_key
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.audit import EventType
from strongroom.cohort.crypto import encrypt
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.errors import Conflict, Invalid, Refused
from strongroom.outputs import files, requests
from strongroom.outputs.models import OutputRow, ReviewRow
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import CheckReport, Finding, Verdict
from tests.access_world import Member, World, _add, build_world

RULES_VERSION = "rules 1 (sha256:5f1c0a)"
THRESHOLDS = {"min_participants": 10, "dominance_p": 0.1}
JUSTIFICATION = "The table goes into the paper's second figure, by sex."
# tests of files and input checks: the database plays no part, so one is enough
SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])


@pytest.fixture
def world(tmp_path: Path, database_url: str | None,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    built = build_world(tmp_path, database_url)
    yield built
    built.platform.close()


def person(world: World, email: str, roles: list[Role]) -> Member:
    home = world.staff[Role.CUSTODIAN_ADMIN].institution_id
    return _add(world.ctx, home, email, roles, world.clock().date())


def researcher(world: World) -> Principal:
    assert world.researcher is not None
    return world.sign_in(world.researcher)


def checkers(world: World) -> tuple[Principal, Principal]:
    second = person(world, "checker2@custodian.test", [Role.OUTPUT_CHECKER])
    return world.sign_in(world.staff[Role.OUTPUT_CHECKER]), world.sign_in(second)


def report(verdict: Verdict) -> CheckReport:
    findings = {
        Verdict.RELEASE: [],
        Verdict.SUPPRESS: [Finding("threshold", Verdict.SUPPRESS,
                                   "fewer than 10 participants in this cell", cell=1)],
        Verdict.REVIEW: [Finding("threshold", Verdict.REVIEW, "fewer than 10 participants "
                                 "(a project that sends small cells to people)", cell=0)],
        Verdict.BLOCK: [Finding("differencing", Verdict.BLOCK, "this cell and one already "
                                "released differ by 1 participant", cell=0)],
    }[verdict]
    suppressed = {1} if verdict is Verdict.SUPPRESS else set()
    return CheckReport(verdict, findings, suppressed, RULES_VERSION, dict(THRESHOLDS))


def payload_of(verdict: Verdict, salt: int = 0) -> bytes:
    """A real result's public JSON: what the enclave renders for the check's verdict."""
    cells = [Cell(("female",), "count", CellKind.COUNT, 120.0 + salt, np.arange(120)),
             Cell(("male",), "count", CellKind.COUNT, 4.0, np.arange(200, 204))]
    result = Result(AnalysisKind.FREQUENCY, {"variable": "sex", "salt": salt}, cells)
    public = result.public(report(verdict).suppressed)
    return json.dumps(public, sort_keys=True).encode()


def record(world: World, who: Principal, verdict: Verdict, salt: int = 0,
           project_id: str | None = None) -> requests.OutputView:
    return requests.record_output(
        world.ctx, who, project_id or world.project_id, payload=payload_of(verdict, salt),
        media_type="application/json", filename="sex.json", report=report(verdict),
        kind=AnalysisKind.FREQUENCY, spec={"variable": "sex"})


def events(world: World, kind: EventType) -> list[dict[str, Any]]:
    return [e.details for e in world.platform.audit.entries() if e.type == kind.value]


def test_release_and_suppression_verdicts_go_out_on_request(world: World) -> None:
    who = researcher(world)
    for salt, verdict in enumerate([Verdict.RELEASE, Verdict.SUPPRESS]):
        view = record(world, who, verdict, salt)
        assert view.status is OutputStatus.CHECKED and view.output.id.startswith("out_")
        with pytest.raises(Refused, match="not released"):  # checked is not released
            requests.download(world.ctx, who, view.output.id)
        released = requests.request_release(world.ctx, who, view.output.id)
        assert released.status is OutputStatus.RELEASED and released.reviews == []
        got = requests.download(world.ctx, who, view.output.id)
        assert got == (payload_of(verdict, salt), "application/json", "sex.json")
        assert json.loads(got.payload)["cells"][1]["value"] == (
            None if verdict is Verdict.SUPPRESS else 4.0)
        sha = files.digest(payload_of(verdict, salt))
        for kind in (EventType.OUTPUT_CHECKED, EventType.OUTPUT_REQUESTED,
                     EventType.OUTPUT_RELEASED, EventType.OUTPUT_DOWNLOADED):
            assert any(e["sha256"] == sha for e in events(world, kind)), kind
        (release,) = [e for e in events(world, EventType.OUTPUT_RELEASED)
                      if e["sha256"] == sha]
        assert release["rules_version"] == RULES_VERSION
        assert release["thresholds"] == THRESHOLDS
        assert release["verdict"] == verdict.value and release["reviewers"] == []
        assert release["suppressed"] == sorted(report(verdict).suppressed)
    (checked, _) = events(world, EventType.OUTPUT_CHECKED)
    assert checked["rules_version"] == RULES_VERSION and checked["findings"] == 0
    with pytest.raises(Conflict, match="cannot be undone"):  # nothing moves a release
        requests.request_release(world.ctx, who, view.output.id)


def test_a_blocked_output_releases_nothing_and_says_why(world: World) -> None:
    who = researcher(world)
    view = record(world, who, Verdict.BLOCK)
    blocked = requests.request_release(world.ctx, who, view.output.id, JUSTIFICATION)
    assert blocked.status is OutputStatus.BLOCKED
    assert blocked.reasons == ["cell 0: this cell and one already released differ by 1 "
                               "participant"]
    with pytest.raises(Refused, match="blocked, not released"):
        requests.download(world.ctx, who, view.output.id)
    first, _ = checkers(world)
    with pytest.raises(Conflict, match="blocked"):
        requests.review(world.ctx, first, view.output.id, True, "")
    with pytest.raises(Refused, match="not waiting for review"):
        requests.content_for_review(world.ctx, first, view.output.id)
    (block,) = events(world, EventType.OUTPUT_BLOCKED)
    assert block["by_rule"] == {"differencing": {"block": 1}}
    assert block["sha256"] == view.output.sha256
    assert not events(world, EventType.OUTPUT_RELEASED)


def test_review_needs_two_different_checkers_and_releases_the_bytes_reviewed(
        world: World) -> None:
    who = researcher(world)
    view = record(world, who, Verdict.REVIEW)
    out = view.output.id
    with pytest.raises(Invalid, match="explain"):
        requests.request_release(world.ctx, who, out)
    with pytest.raises(Invalid, match="20 to"):
        requests.request_release(world.ctx, who, out, "please")
    held = requests.request_release(world.ctx, who, out, JUSTIFICATION)
    assert held.status is OutputStatus.UNDER_REVIEW
    assert held.output.justification == JUSTIFICATION
    first, second = checkers(world)
    seen = requests.content_for_review(world.ctx, first, out)
    assert seen.payload == payload_of(Verdict.REVIEW)
    once = requests.review(world.ctx, first, out, True, "zero is structural")
    assert once.status is OutputStatus.APPROVED_ONCE
    with pytest.raises(Conflict, match="already reviewed"):
        requests.review(world.ctx, first, out, True, "")
    with pytest.raises(Refused, match="approved_once, not released"):
        requests.download(world.ctx, who, out)
    done = requests.review(world.ctx, second, out, True, "")
    assert done.status is OutputStatus.RELEASED
    assert [r.reviewer for r in done.reviews] == [first.person_id, second.person_id]
    assert requests.download(world.ctx, who, out).payload == seen.payload
    (release,) = events(world, EventType.OUTPUT_RELEASED)
    assert release["reviewers"] == [first.person_id, second.person_id]
    assert release["sha256"] == files.digest(seen.payload)
    assert release["by_rule"] == {"threshold": {"review": 1}}
    reviewed = events(world, EventType.OUTPUT_REVIEWED)
    assert [(e["status"], e["approvals"]) for e in reviewed] == [("approved_once", 1),
                                                                 ("released", 2)]


def test_neither_the_requester_nor_a_project_member_may_review(world: World) -> None:
    committee = world.sign_in(world.staff[Role.ACCESS_COMMITTEE])
    both = person(world, "both@custodian.test", [Role.RESEARCHER, Role.OUTPUT_CHECKER])
    colleague = person(world, "colleague@custodian.test",
                       [Role.RESEARCHER, Role.OUTPUT_CHECKER])
    for member in (both, colleague):
        projects.add_member(world.ctx, committee, world.project_id, member.person_id)
    requester = world.sign_in(both)
    out = record(world, requester, Verdict.REVIEW).output.id
    requests.request_release(world.ctx, requester, out, JUSTIFICATION)
    with pytest.raises(Refused) as caught:
        requests.review(world.ctx, requester, out, True, "")
    assert len(caught.value.reasons) == 2  # the requester, and a member: both reasons
    with pytest.raises(Refused, match="member of project"):
        requests.review(world.ctx, world.sign_in(colleague), out, True, "")
    projects.remove_member(world.ctx, committee, world.project_id, both.person_id)
    with pytest.raises(Refused, match="asked for this output's release"):
        requests.review(world.ctx, world.sign_in(both), out, False, "my own work, rejected")
    with pytest.raises(Refused, match="output checker"):  # a researcher without the role
        requests.review(world.ctx, researcher(world), out, True, "")
    refusals = [e for e in events(world, EventType.ACCESS_REFUSED)
                if e["action"] == "output.review"]
    assert len(refusals) == 4
    auditor = world.sign_in(world.staff[Role.AUDITOR])
    assert requests.read(world.ctx, auditor, out).reviews == []  # nothing was recorded


def test_a_rejection_needs_a_reason_and_is_final(world: World) -> None:
    who = researcher(world)
    out = record(world, who, Verdict.REVIEW).output.id
    requests.request_release(world.ctx, who, out, JUSTIFICATION)
    first, second = checkers(world)
    requests.review(world.ctx, first, out, True, "")
    with pytest.raises(Invalid, match="say why"):
        requests.review(world.ctx, second, out, False, "no")
    rejected = requests.review(world.ctx, second, out, False, "the zero reveals a rare group")
    assert rejected.status is OutputStatus.REJECTED
    assert "an output checker rejected it: the zero reveals a rare group" in rejected.reasons
    assert rejected.output.decided_at is not None
    third = world.sign_in(person(world, "checker3@custodian.test", [Role.OUTPUT_CHECKER]))
    with pytest.raises(Conflict, match="rejected it"):
        requests.review(world.ctx, third, out, True, "")
    with pytest.raises(Refused, match="rejected, not released"):
        requests.download(world.ctx, who, out)
    (rejection,) = events(world, EventType.OUTPUT_REJECTED)
    assert rejection["reason"] == "the zero reveals a rare group"


def test_only_the_requester_withdraws_and_only_while_under_review(world: World) -> None:
    who = researcher(world)
    committee = world.sign_in(world.staff[Role.ACCESS_COMMITTEE])
    colleague = person(world, "colleague@partner.test", [Role.RESEARCHER])
    projects.add_member(world.ctx, committee, world.project_id, colleague.person_id)
    out = record(world, who, Verdict.REVIEW).output.id
    with pytest.raises(Conflict, match="can request"):  # nothing asked yet
        requests.withdraw(world.ctx, who, out)
    requests.request_release(world.ctx, who, out, JUSTIFICATION)
    with pytest.raises(Refused, match="only the person who ran this analysis"):
        requests.withdraw(world.ctx, world.sign_in(colleague), out)
    first, _ = checkers(world)
    requests.review(world.ctx, first, out, True, "")
    gone = requests.withdraw(world.ctx, who, out)
    assert gone.status is OutputStatus.WITHDRAWN
    with pytest.raises(Conflict, match="withdrawn"):
        requests.review(world.ctx, first, out, True, "")
    (withdrawal,) = events(world, EventType.OUTPUT_WITHDRAWN)
    assert withdrawal["sha256"] == gone.output.sha256


@SQLITE_ONLY
def test_a_tampered_or_missing_file_is_never_handed_out(world: World) -> None:
    who = researcher(world)
    out = record(world, who, Verdict.RELEASE).output
    requests.request_release(world.ctx, who, out.id)
    stored = files.path_of(world.ctx, world.project_id, out.sha256)
    original = stored.read_bytes()
    assert payload_of(Verdict.RELEASE) not in original  # sealed, not plain
    flipped = bytearray(original)
    flipped[-5] ^= 0x01
    stored.write_bytes(bytes(flipped))
    with pytest.raises(files.TamperedOutput, match="altered or replaced"):
        requests.download(world.ctx, who, out.id)
    with world.ctx.transaction() as db:  # someone holding the project key swaps the bytes
        project = db.get(Project, world.project_id)
        assert project is not None
        key = open_project_key(world.ctx.key, project)
    other = payload_of(Verdict.RELEASE, salt=7)
    stored.write_bytes(encrypt(other, key, f"output:{world.project_id}:{out.sha256}"))
    with pytest.raises(files.TamperedOutput, match="SHA-256 differs"):
        requests.download(world.ctx, who, out.id)
    stored.unlink()
    with pytest.raises(files.TamperedOutput, match="missing"):
        requests.download(world.ctx, who, out.id)
    stored.write_bytes(original)
    assert requests.download(world.ctx, who, out.id).payload == payload_of(Verdict.RELEASE)
    refusals = [e for e in events(world, EventType.ACCESS_REFUSED)
                if e["action"] == "output.download" and e.get("sha256") == out.sha256]
    assert len(refusals) == 3
    assert len(events(world, EventType.OUTPUT_DOWNLOADED)) == 1


def test_another_projects_researcher_sees_nothing_and_checkers_see_the_queue(
        world: World) -> None:
    who = researcher(world)
    assert world.outsider is not None
    outsider = world.sign_in(world.outsider)
    released = record(world, who, Verdict.RELEASE).output.id
    requests.request_release(world.ctx, who, released)
    waiting = record(world, who, Verdict.REVIEW, salt=1).output.id
    requests.request_release(world.ctx, who, waiting, JUSTIFICATION)
    record(world, who, Verdict.BLOCK, salt=2)
    for attempt in (requests.read, requests.download):
        with pytest.raises(Refused, match="not a member"):
            attempt(world.ctx, outsider, released)
    with pytest.raises(Refused, match="not a member"):
        requests.list_outputs(world.ctx, outsider, world.project_id)
    assert requests.list_outputs(world.ctx, outsider) == []
    assert len(requests.list_outputs(world.ctx, who)) == 3
    assert [v.output.id for v in requests.list_outputs(
        world.ctx, who, status=OutputStatus.RELEASED)] == [released]
    with pytest.raises(Invalid, match="not an output status"):
        requests.list_outputs(world.ctx, who, status="gone")
    first, second = checkers(world)
    assert len(requests.list_outputs(world.ctx, first)) == 3
    assert [v.output.id for v in requests.list_outputs(world.ctx, first, queue=True)] \
        == [waiting]
    requests.review(world.ctx, first, waiting, True, "")
    assert requests.list_outputs(world.ctx, first, queue=True) == []  # reviewed already
    (queued,) = requests.list_outputs(world.ctx, second, queue=True)
    assert queued.status is OutputStatus.APPROVED_ONCE and len(queued.reviews) == 1
    with pytest.raises(Refused, match="researcher"):  # checkers never download
        requests.download(world.ctx, first, released)


def race(world: World, out: str, first: Principal, second: Principal,
         problems: list[BaseException]) -> requests.OutputView:
    """``second`` approves and commits between ``first``'s read and write. On SQLite no
    transaction can commit inside another (one writer at a time, db.py): there ``second``
    is sent at that moment and waits its turn, deciding on what ``first`` committed."""
    engine = world.platform.store.engine
    one_writer = serial(world)
    raced = threading.Event()
    racers: list[threading.Thread] = []

    def other_checker() -> None:
        try:
            requests.review(world.ctx, second, out, True, "fine by me")
        except BaseException as exc:  # surfaced by the caller's assertions
            problems.append(exc)

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE outputs_outputs") and not raced.is_set():
            raced.set()
            racer = threading.Thread(target=other_checker)
            racer.start()
            racers.append(racer)
            if not one_writer:
                racer.join()

    event.listen(engine, "before_cursor_execute", before)
    try:
        return requests.review(world.ctx, first, out, True, "agreed")
    finally:
        event.remove(engine, "before_cursor_execute", before)
        for racer in racers:
            racer.join()
        assert raced.is_set()


def serial(world: World) -> bool:
    return world.platform.store.engine.dialect.name == "sqlite"


def test_two_checkers_approving_at_once_count_once_each(world: World) -> None:
    """The first checker's decision is replayed on the status the second one committed, so
    together they release it exactly once (neither counts as "first" twice)."""
    who = researcher(world)
    out = record(world, who, Verdict.REVIEW).output.id
    requests.request_release(world.ctx, who, out, JUSTIFICATION)
    first, second = checkers(world)
    problems: list[BaseException] = []
    race(world, out, first, second, problems)
    assert problems == []
    view = requests.read(world.ctx, first, out)
    assert view.status is OutputStatus.RELEASED
    order = [first, second] if serial(world) else [second, first]
    assert [r.reviewer for r in view.reviews] == [p.person_id for p in order]
    assert len(events(world, EventType.OUTPUT_RELEASED)) == 1


def test_one_checker_approving_twice_at_once_counts_once(world: World) -> None:
    who = researcher(world)
    out = record(world, who, Verdict.REVIEW).output.id
    requests.request_release(world.ctx, who, out, JUSTIFICATION)
    first, _ = checkers(world)
    again = world.sign_in(world.staff[Role.OUTPUT_CHECKER])  # the same person, a 2nd session
    problems: list[BaseException] = []
    if serial(world):  # the second session waits its turn and finds the first's review
        race(world, out, first, again, problems)
        assert len(problems) == 1 and isinstance(problems[0], Conflict)
        assert "already reviewed" in str(problems[0])
    else:
        with pytest.raises(Conflict, match="already reviewed"):
            race(world, out, first, again, problems)
        assert problems == []
    view = requests.read(world.ctx, first, out)
    assert view.status is OutputStatus.APPROVED_ONCE and len(view.reviews) == 1
    with world.ctx.transaction() as db, pytest.raises(IntegrityError):  # the backstop
        db.add(ReviewRow(output_id=out, reviewer=first.person_id, decision="approve",
                         reason="", at=world.clock()))
        db.flush()


def test_the_release_hook_commits_with_the_release_or_stops_it(world: World) -> None:
    who = researcher(world)
    out = record(world, who, Verdict.RELEASE).output.id

    def refuse(row: OutputRow) -> None:
        assert row.status == OutputStatus.RELEASED  # called after the move, before commit
        raise Refused("the differencing ledger moved since the check; check it again")

    with pytest.raises(Refused, match="ledger"):
        requests.request_release(world.ctx, who, out, on_release=refuse)
    assert requests.read(world.ctx, who, out).status is OutputStatus.CHECKED
    assert not events(world, EventType.OUTPUT_RELEASED)
    seen: list[str] = []

    def ledger(row: OutputRow) -> None:
        db = object_session(row)
        assert db is not None
        seen.append(db.scalars(select(OutputRow.status).where(OutputRow.id == row.id)).one())

    assert requests.request_release(world.ctx, who, out, on_release=ledger).status \
        is OutputStatus.RELEASED
    assert seen == ["released"]  # the hook's session sees the uncommitted release


@SQLITE_ONLY
def test_bad_outputs_are_refused_with_every_reason_and_change_nothing(world: World) -> None:
    who = researcher(world)
    before = world.platform.audit.size()
    with pytest.raises(Invalid) as caught:
        requests.record_output(world.ctx, who, world.project_id, payload=b"{}",
                               media_type="application/zip", filename="../x.zip",
                               report=CheckReport(Verdict.RELEASE, [], rules_version=""),
                               kind=AnalysisKind.FREQUENCY, spec={})
    assert len(caught.value.reasons) == 3  # media type, file name, rules version
    lying = CheckReport(Verdict.RELEASE, report(Verdict.BLOCK).findings,
                        rules_version=RULES_VERSION)
    with pytest.raises(Invalid, match="milder than its findings"):
        requests.record_output(world.ctx, who, world.project_id, payload=b"{}",
                               media_type="application/json", filename="x.json",
                               report=lying, kind=AnalysisKind.FREQUENCY, spec={})
    for payload, media_type, name in ((b"{not json", "application/json", "x.json"),
                                      (b"\xff\xfe", "text/csv", "x.csv"),
                                      (b"", "text/csv", "x.csv")):
        with pytest.raises(Invalid):
            requests.record_output(world.ctx, who, world.project_id, payload=payload,
                                   media_type=media_type, filename=name,
                                   report=report(Verdict.RELEASE),
                                   kind=AnalysisKind.FREQUENCY, spec={})
    with pytest.raises(Invalid, match="plain JSON"):
        requests.record_output(world.ctx, who, world.project_id, payload=b"a\n1\n",
                               media_type="text/csv", filename="x.csv",
                               report=report(Verdict.RELEASE), kind=AnalysisKind.FREQUENCY,
                               spec={"x": float("nan")})
    assert world.platform.audit.size() == before
    assert requests.list_outputs(world.ctx, who) == []


@SQLITE_ONLY
def test_the_same_bytes_twice_share_one_sealed_file(world: World) -> None:
    who = researcher(world)
    a = record(world, who, Verdict.RELEASE).output
    b = record(world, who, Verdict.RELEASE).output
    assert a.id != b.id and a.sha256 == b.sha256
    folder = world.ctx.project_dir(world.project_id) / files.FOLDER
    assert [p.name for p in folder.iterdir()] == [f"{a.sha256}{files.SUFFIX}"]
