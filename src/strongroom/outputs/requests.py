"""Release requests: record a checked output, ask for its release, review, withdraw, download.

The moves are those of :mod:`strongroom.outputs.states`; this module adds who may take them
(the requester asks and withdraws; two different output checkers, neither the requester nor a
member of the project, review), the bytes (sealed under the project's key, named by their
SHA-256) and the audit record. A release writes ``output.released`` with everything needed to
account for it later: the digest, the rules, thresholds and verdict applied, the reviewers.

Every status change is a conditional update (``WHERE status = <the status read>``): when two
checkers approve at once, exactly one of them is first; the other's attempt is replayed on the
new status and becomes the second approval.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn, TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from strongroom.access.authorize import authorize, is_member, projects_of
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Project, ProjectMember
from strongroom.access.permissions import RULES, Action
from strongroom.access.roles import Role
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.db import affected
from strongroom.enclave.results import AnalysisKind
from strongroom.errors import Conflict, Invalid, NotFound, Refused
from strongroom.outputs import files
from strongroom.outputs.check import NOTHING_LEFT
from strongroom.outputs.models import OutputRow, ReviewRow
from strongroom.outputs.states import (
    AWAITING_REVIEW,
    FINAL,
    Actor,
    Move,
    OutputAction,
    OutputStatus,
    advance,
)
from strongroom.outputs.verdicts import SEVERITY, CheckReport, Finding, Verdict

MEDIA_TYPES = {"application/json": ".json", "text/csv": ".csv",
               # a job's own files (jobs/files.py), for the output checkers
               "image/png": ".png", "image/svg+xml": ".svg", "text/plain": ".txt",
               "text/markdown": ".md"}
PNG = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 64 * 1024 * 1024  # a table of aggregates; anything larger is not one
MIN_JUSTIFICATION = 20
MIN_REJECTION = 10
MAX_TEXT = 5000
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ATTEMPTS = 3  # replays of a decision that lost a race with another one

OnRelease = Callable[[OutputRow], None]
T = TypeVar("T")

# Which permission each action needs (the rules themselves are in access/permissions.py).
PERMISSION: dict[OutputAction, Action] = {
    OutputAction.REQUEST: Action.OUTPUT_REQUEST,
    OutputAction.WITHDRAW: Action.OUTPUT_REQUEST,
    OutputAction.APPROVE: Action.OUTPUT_REVIEW,
    OutputAction.REJECT: Action.OUTPUT_REVIEW,
}


@dataclass(frozen=True)
class OutputView:
    output: OutputRow
    reviews: list[ReviewRow]
    # the reader oversees outputs and is independent of this one (not its requester, not a
    # member of its project): they read the whole check report, withheld or not
    independent: bool = False

    @property
    def status(self) -> OutputStatus:
        return OutputStatus(self.output.status)

    @property
    def report(self) -> CheckReport:
        """What the check says, as the reader may read it: whole to an independent overseer,
        else as its requester may (withheld: only that it waits, see CheckReport.shown)."""
        whole = report_of(self.output)
        return whole if self.independent else whole.shown()

    @property
    def digest(self) -> tuple[str, int] | tuple[None, None]:
        """The bytes' SHA-256 and size, once released: before that they would let a
        researcher test a guess of the content (a few numbers in a known layout) offline."""
        if self.status is not OutputStatus.RELEASED:
            return None, None
        return self.output.sha256, self.output.size

    @property
    def check_report(self) -> CheckReport:
        """Everything the check found: for output checkers and the audit log."""
        return report_of(self.output)

    @property
    def reasons(self) -> list[str]:
        """Why it is not simply released: the check's reasons, then any checker's rejection."""
        found = [f.reason if f.cell is None else f"cell {f.cell}: {f.reason}"
                 for f in self.report.findings if f.verdict is not Verdict.RELEASE]
        return found + [f"an output checker rejected it: {r.reason}" for r in self.reviews
                        if r.decision == OutputAction.REJECT]


class Download(NamedTuple):
    payload: bytes
    media_type: str
    filename: str


class _RacedError(Exception):
    """Another decision changed the output between this one's read and its write."""


def report_of(row: OutputRow) -> CheckReport:
    stored = row.report
    return CheckReport(
        verdict=Verdict(stored["verdict"]),
        findings=[Finding(f["rule"], Verdict(f["verdict"]), f["reason"], f["cell"])
                  for f in stored["findings"]],
        suppressed=set(stored["suppressed"]), rules_version=stored["rules_version"],
        thresholds=stored["thresholds"], removed=set(stored.get("removed", ())),
        withheld=bool(stored.get("withheld", False)))


def findings_summary(report: CheckReport) -> dict[str, Any]:
    """Counts per rule and verdict: what the audit log keeps of the findings (no values)."""
    by_rule: dict[str, dict[str, int]] = {}
    for f in report.findings:
        counts = by_rule.setdefault(f.rule, {})
        counts[f.verdict.value] = counts.get(f.verdict.value, 0) + 1
    return {"findings": len(report.findings), "by_rule": by_rule,
            "cells_suppressed": len(report.suppressed)}


def _json(value: Any, what: str, problems: list[str]) -> Any:
    """``value`` as plain JSON types (what the database and the audit log store)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        problems.append(f"the {what} is not plain JSON (numbers must be finite)")
        return None


def payload_problems(payload: bytes, media_type: str, filename: str) -> list[str]:
    problems = []
    if not payload:
        problems.append("the output is empty")
    elif len(payload) > MAX_BYTES:
        problems.append(f"the output is larger than {MAX_BYTES:,} bytes, the most an output "
                        f"of aggregates may be")  # no size: it would tell what was hidden
    suffix = MEDIA_TYPES.get(media_type)
    if suffix is None:
        problems.append(f"media type {media_type!r} is not one an output may have; use one of "
                        f"{', '.join(sorted(MEDIA_TYPES))}")
    if not _FILENAME.fullmatch(filename):
        problems.append("the file name may hold only letters, digits, '.', '_' and '-' (at "
                        "most 100, starting with a letter or digit)")
    elif suffix is not None and not filename.endswith(suffix):
        problems.append(f"a {media_type} output's file name must end in {suffix}")
    if problems:
        return problems
    if media_type == "image/png":
        return [] if payload.startswith(PNG) else ["the output is not a PNG image"]
    try:  # fail closed: bytes that are not what they claim to be are not recorded
        text = payload.decode("utf-8")
        if media_type == "application/json":
            json.loads(text)
        elif "\x00" in text:
            problems.append("the output holds NUL characters")
    except (UnicodeDecodeError, ValueError, RecursionError):
        problems.append(f"the output is not valid UTF-8 {MEDIA_TYPES[media_type][1:].upper()}")
    return problems


def _report_json(report: CheckReport, problems: list[str]) -> dict[str, Any]:
    worst = CheckReport.worst(report.findings)
    if SEVERITY[report.verdict] < SEVERITY[worst]:
        problems.append(f"the check's verdict ({report.verdict.value}) is milder than its "
                        f"findings ({worst.value}); refusing to record it")
    if not report.rules_version.strip():
        problems.append("the check's report does not name the rules version it applied")
    stored = _json(report.as_dict(), "check's report", problems)
    return stored if isinstance(stored, dict) else {}


Settle = Callable[[Session], tuple[CheckReport, bool]]


def record_output(ctx: AccessContext, principal: Principal, project_id: str, *,
                  payload: bytes, media_type: str, filename: str, report: CheckReport,
                  kind: AnalysisKind, spec: dict[str, Any], acted: bool = False,
                  settle: Settle | None = None,
                  shown_at: Callable[[], dt.datetime] | None = None,
                  authorized: bool = False) -> OutputView:
    """Keep a checked output (status CHECKED); called by the enclave after an analysis.
    ``acted``: the check hid, removed or found something (an answer, rationed per person).
    ``settle(db)``, if given, runs in the recording transaction before the row is added and
    returns the report to keep and ``acted`` in place of those given (the ration of answers
    is read and spent there, atomically). ``shown_at()``, asked after ``settle``: the moment
    the output is answered (its schedule's step, outputs/timing.py), which becomes its
    ``created_at``: no list or read shows it sooner, and its time says nothing of how long
    the run took (the recording's own moment would: time is an output). ``authorized``: the
    caller authorised the request and judges access again at its answer's moment (the
    output service), not at the recording, a moment the run's work sets."""
    problems = payload_problems(payload, media_type, filename)
    stored_report = _report_json(report, problems)
    stored_spec = _json(spec, "analysis specification", problems)
    if kind not in set(AnalysisKind):
        problems.append(f"{kind!r} is not a kind of analysis")
    if problems:
        raise Invalid(problems)
    with ctx.transaction() as db:
        project = (db.get(Project, project_id) if authorized
                   else authorize(ctx, db, principal, Action.DATA_ANALYSE, project_id))
        assert project is not None
        if settle is not None:
            report, acted = settle(db)
            stored_report = _report_json(report, problems)
            if problems:
                raise Invalid(problems)
        sha256 = files.save(ctx, project, payload)  # the file first: no row names absent bytes
        row = OutputRow(id=new_id("out"), project_id=project_id,
                        requester=principal.person_id,
                        created_at=shown_at() if shown_at is not None else ctx.clock(),
                        status=OutputStatus.CHECKED.value, sha256=sha256,
                        media_type=media_type, filename=filename, size=len(payload),
                        verdict=report.verdict.value, report=stored_report,
                        kind=AnalysisKind(kind).value, spec=stored_spec, acted=acted)
        db.add(row)
        db.flush()
        view = OutputView(row, [])
        ctx.record(EventType.OUTPUT_CHECKED, principal, row.id,
                   {"project": project_id, "sha256": sha256, "size": len(payload),
                    "media_type": media_type, "kind": row.kind, "verdict": row.verdict,
                    "rules_version": report.rules_version,
                    "thresholds": stored_report["thresholds"], **findings_summary(report)})
    return view


def request_release(ctx: AccessContext, principal: Principal, output_id: str,
                    justification: str | None = None, *,
                    on_release: OnRelease | None = None) -> OutputView:
    """Ask for release: by the verdict, released, held for review, or blocked.

    ``on_release`` runs inside the release's transaction, before it commits, with the row
    (``sqlalchemy.orm.object_session(row)`` is that transaction): record the differencing
    ledger there so that it and the release commit together. Raising stops the release.
    """
    text = (justification or "").strip() or None
    if text is not None and not MIN_JUSTIFICATION <= len(text) <= MAX_TEXT:
        raise Invalid(f"a justification is {MIN_JUSTIFICATION} to {MAX_TEXT} characters")
    return _act(ctx, principal, output_id, OutputAction.REQUEST, justification=text,
                on_release=on_release)


def review(ctx: AccessContext, principal: Principal, output_id: str, approve: bool,
           reason: str, *, on_release: OnRelease | None = None) -> OutputView:
    """An output checker's decision; the second different approval releases the output."""
    reason = reason.strip()
    if not approve and len(reason) < MIN_REJECTION:
        raise Invalid(f"say why you reject it, in at least {MIN_REJECTION} characters: the "
                      f"researcher reads it")
    if len(reason) > MAX_TEXT:
        raise Invalid(f"a review's reason is at most {MAX_TEXT} characters")
    action = OutputAction.APPROVE if approve else OutputAction.REJECT
    return _act(ctx, principal, output_id, action, reason=reason, on_release=on_release)


def withdraw(ctx: AccessContext, principal: Principal, output_id: str) -> OutputView:
    """The requester takes back a request still waiting for review."""
    return _act(ctx, principal, output_id, OutputAction.WITHDRAW)


def _act(ctx: AccessContext, principal: Principal, output_id: str, action: OutputAction, *,
         justification: str | None = None, reason: str = "",
         on_release: OnRelease | None = None) -> OutputView:
    def attempt() -> tuple[OutputView, Move]:
        with ctx.transaction() as db:
            row = _get(db, output_id)
            authorize(ctx, db, principal, PERMISSION[action], row.project_id)
            # a withheld report goes to people whatever the check said, so that the status
            # the requester sees does not answer what the verdict would have
            shown = report_of(row).shown()
            verdict = shown.verdict
            if action is OutputAction.REQUEST and verdict is Verdict.REVIEW:
                _worth_reviewing(row.id, shown)
            move = advance(OutputStatus(row.status), action, verdict, f"output {row.id}")
            _check_actor(ctx, db, principal, row, move, action)
            if action is OutputAction.APPROVE and row.verdict == Verdict.BLOCK:
                raise Conflict(f"output {row.id}: the automated check blocked it (see its "
                               "findings); an output checker may only reject it")
            now = ctx.clock()
            if action is OutputAction.REQUEST:
                if verdict is Verdict.REVIEW and justification is None:
                    raise Invalid(f"this output needs review by two output checkers: explain "
                                  f"in at least {MIN_JUSTIFICATION} characters why it should "
                                  f"be released")
                _transition(db, row, move, now, justification=justification,
                            requested_at=now)
            elif move.by is Actor.CHECKER and move.target in FINAL and row.report.get(
                    "withheld"):
                # the decision on a withheld output answers what the check would have said:
                # it counts against the requester's ration like an output acted on
                _transition(db, row, move, now, acted=True)
            else:
                _transition(db, row, move, now)
            if move.by is Actor.CHECKER:
                _add_review(db, row, principal, action, reason, now)
            if move.target is OutputStatus.RELEASED and on_release is not None:
                on_release(row)
            view = _view(db, row, principal)
            for event in move.events:  # committed with the move, or not at all
                ctx.record(event, principal, view.output.id,
                           _details(event, view, action, reason))
            return view, move

    view, _ = _retrying(attempt)
    return view


def _worth_reviewing(output_id: str, shown: CheckReport) -> None:
    """A table the check left with nothing (check.NOTHING_LEFT: every figure hidden, or only
    counts of no one) is not sent to the output checkers to pass an empty table (its
    requester read the same finding before asking). Read from what the requester may see, so
    a withheld report (which hides it) goes to people as every withheld report does."""
    for finding in shown.findings:
        if finding.rule == NOTHING_LEFT:
            raise Conflict(f"output {output_id} is not sent to the output checkers: "
                           f"{finding.reason}")


def _retrying(attempt: Callable[[], T]) -> T:
    for _ in range(_ATTEMPTS):
        try:
            return attempt()
        except _RacedError:
            continue  # the transaction rolled back; read the new status and decide again
    raise Conflict("the output kept changing while you acted on it; read it again and retry")


def _transition(db: Session, row: OutputRow, move: Move, now: dt.datetime,
                **values: Any) -> None:
    """Move ``row`` only if nobody else has moved it since it was read."""
    if move.target in FINAL:
        values["decided_at"] = now
    values["status"] = move.target.value
    done = affected(db.execute(
        update(OutputRow).where(OutputRow.id == row.id, OutputRow.status == row.status)
        .values(**values).execution_options(synchronize_session=False)))
    if done != 1:
        raise _RacedError
    for name, value in values.items():
        set_committed_value(row, name, value)  # the loaded row in step, without a 2nd write


def _check_actor(ctx: AccessContext, db: Session, principal: Principal, row: OutputRow,
                 move: Move, action: OutputAction) -> None:
    if move.by is Actor.REQUESTER:
        if principal.person_id != row.requester:
            _refuse(ctx, principal, PERMISSION[action], row, [
                f"only the person who ran this analysis ({row.requester}) may "
                f"{action.value} its release"])
        return
    _independent(ctx, db, principal, row, PERMISSION[action])
    if db.scalar(select(ReviewRow.id).where(ReviewRow.output_id == row.id,
                                            ReviewRow.reviewer == principal.person_id)):
        raise Conflict("you have already reviewed this output; a second, different output "
                       "checker must review it")


def _independent(ctx: AccessContext, db: Session, principal: Principal, row: OutputRow,
                 action: Action) -> None:
    """Only a checker independent of the output reviews it, or reads what it holds."""
    reasons = []
    if principal.person_id == row.requester:
        reasons.append("you asked for this output's release; two other output checkers must "
                       "review it")
    project = db.get(Project, row.project_id)
    if project is not None and is_member(db, project, principal.person_id):
        reasons.append(f"you are a member of project {row.project_id}; its outputs are "
                       f"reviewed by output checkers independent of it")
    if reasons:
        _refuse(ctx, principal, action, row, reasons)


def _add_review(db: Session, row: OutputRow, principal: Principal, action: OutputAction,
                reason: str, now: dt.datetime) -> None:
    db.add(ReviewRow(output_id=row.id, reviewer=principal.person_id, decision=action.value,
                     reason=reason, at=now))
    try:
        db.flush()
    except IntegrityError:  # the same checker, twice at once: the unique pair holds
        raise Conflict("you have already reviewed this output; a second, different output "
                       "checker must review it") from None


def _refuse(ctx: AccessContext, principal: Principal, action: Action, row: OutputRow,
            reasons: list[str]) -> NoReturn:
    """Audit and raise a refusal (called before anything is written, as authorize() is)."""
    ctx.record(EventType.ACCESS_REFUSED, principal, row.project_id,
               {"action": action.value, "output": row.id, "reasons": reasons})
    raise Refused(reasons)


def _get(db: Session, output_id: str) -> OutputRow:
    found = db.get(OutputRow, output_id)
    if found is None:
        raise NotFound(f"there is no output {output_id}")
    return found


def _view(db: Session, row: OutputRow, reader: Principal) -> OutputView:
    reviews = db.scalars(select(ReviewRow).where(ReviewRow.output_id == row.id)
                         .order_by(ReviewRow.at, ReviewRow.id))
    mine = projects_of(db, reader.person_id)
    return OutputView(row, list(reviews), _reads_whole(reader, row, mine))


def _reads_whole(reader: Principal, row: OutputRow, member_of: set[str]) -> bool:
    """Whether ``reader`` sees the whole check report: the requester's colleagues do not (a
    ration is one person's, and a team shares what it reads)."""
    return (_oversees(reader) and reader.person_id != row.requester
            and row.project_id not in member_of)


def release_record(view: OutputView) -> dict[str, Any]:
    """What ``output.released`` keeps: enough to account for the release years later."""
    row, report = view.output, view.check_report
    return {"project": row.project_id, "sha256": row.sha256, "size": row.size,
            "media_type": row.media_type, "filename": row.filename, "kind": row.kind,
            "requester": row.requester, "verdict": row.verdict,
            "rules_version": report.rules_version, "thresholds": row.report["thresholds"],
            "suppressed": sorted(report.suppressed), **findings_summary(report),
            "reviewers": [r.reviewer for r in view.reviews
                          if r.decision == OutputAction.APPROVE]}


def _details(event: EventType, view: OutputView, action: OutputAction,
             reason: str) -> dict[str, Any]:
    row = view.output
    base: dict[str, Any] = {"project": row.project_id, "sha256": row.sha256,
                            "status": row.status}
    if event is EventType.OUTPUT_RELEASED:
        return release_record(view)
    if event is EventType.OUTPUT_REQUESTED:
        return {**base, "verdict": row.verdict, "justification": row.justification}
    if event is EventType.OUTPUT_BLOCKED:
        return {**base, "verdict": row.verdict,
                "rules_version": view.check_report.rules_version,
                **findings_summary(view.check_report)}
    if event in (EventType.OUTPUT_REVIEWED, EventType.OUTPUT_REJECTED):
        return {**base, "decision": action.value, "reason": reason,
                "approvals": sum(r.decision == OutputAction.APPROVE for r in view.reviews)}
    return base


def _oversees(principal: Principal) -> bool:
    """Roles that read every project's outputs (researchers read their own projects')."""
    return bool(principal.roles & (RULES[Action.OUTPUT_READ].roles - {Role.RESEARCHER}))


def _projects_of(person_id: str) -> Any:
    return or_(
        OutputRow.project_id.in_(select(ProjectMember.project_id)
                                 .where(ProjectMember.person_id == person_id)),
        OutputRow.project_id.in_(select(Project.id).where(Project.lead_id == person_id)))


def _status(value: str) -> OutputStatus:
    try:
        return OutputStatus(value)
    except ValueError:
        raise Invalid(f"{value!r} is not an output status; use one of "
                      f"{', '.join(OutputStatus)}") from None


def list_outputs(ctx: AccessContext, principal: Principal, project_id: str | None = None,
                 status: OutputStatus | str | None = None, *, queue: bool = False,
                 limit: int = 500) -> list[OutputView]:
    """Outputs the principal may see, newest first.

    ``queue``: those waiting for review that this person may still review (not their own
    request, not their project's, not reviewed by them already).
    """
    if not 1 <= limit <= 10_000:
        raise Invalid("limit is 1 to 10,000")
    me = principal.person_id
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.OUTPUT_READ, project_id)
        # an output is shown from the moment it is answered (record_output's shown_at)
        query = select(OutputRow).where(OutputRow.created_at <= ctx.clock())
        if project_id is not None:
            query = query.where(OutputRow.project_id == project_id)
        if principal.token_project is not None:
            query = query.where(OutputRow.project_id == principal.token_project)
        if not _oversees(principal):
            query = query.where(_projects_of(me))
        if status is not None:
            query = query.where(OutputRow.status == _status(status).value)
        if queue:
            query = query.where(
                OutputRow.status.in_([s.value for s in AWAITING_REVIEW]),
                OutputRow.requester != me, ~_projects_of(me),
                OutputRow.id.not_in(select(ReviewRow.output_id)
                                    .where(ReviewRow.reviewer == me)))
        rows = list(db.scalars(query.order_by(OutputRow.created_at.desc(), OutputRow.id)
                               .limit(limit)))
        reviews: dict[str, list[ReviewRow]] = {row.id: [] for row in rows}
        for found in db.scalars(select(ReviewRow).where(ReviewRow.output_id.in_(list(reviews)))
                                .order_by(ReviewRow.at, ReviewRow.id)):
            reviews[found.output_id].append(found)
        member_of = projects_of(db, principal.person_id)
        return [OutputView(row, reviews[row.id], _reads_whole(principal, row, member_of))
                for row in rows]


def read(ctx: AccessContext, principal: Principal, output_id: str) -> OutputView:
    """An output's status, check report and reviews (never its bytes)."""
    with ctx.transaction() as db:
        row = _get(db, output_id)
        authorize(ctx, db, principal, Action.OUTPUT_READ, row.project_id)
        return _view(db, row, principal)


def content_for_review(ctx: AccessContext, principal: Principal, output_id: str) -> Download:
    """The bytes of an output waiting for review, for an output checker to review them."""
    with ctx.transaction() as db:
        row = _get(db, output_id)
        project = authorize(ctx, db, principal, Action.OUTPUT_REVIEW, row.project_id)
        assert project is not None
        _independent(ctx, db, principal, row, Action.OUTPUT_REVIEW)
        if OutputStatus(row.status) not in AWAITING_REVIEW:
            _refuse(ctx, principal, Action.OUTPUT_REVIEW, row, [
                f"output {row.id} is {row.status}, not waiting for review; checkers see the "
                f"bytes of outputs under review only"])
    payload = _load(ctx, principal, project, row, Action.OUTPUT_REVIEW)
    ctx.record(EventType.DATA_ACCESSED, principal, row.project_id,
               {"what": "output-review", "output": row.id, "sha256": row.sha256})
    return Download(payload, row.media_type, row.filename)


def download(ctx: AccessContext, principal: Principal, output_id: str,
             before: Callable[[OutputRow], object] | None = None) -> Download:
    """A released output's bytes, verified against the SHA-256 that was checked and reviewed.

    ``before`` sees the output once it may be downloaded and before any byte is read (watch's
    limits); it raises to stop the download.
    """
    with ctx.transaction() as db:
        row = _get(db, output_id)
        project = authorize(ctx, db, principal, Action.OUTPUT_DOWNLOAD, row.project_id)
        assert project is not None
        if row.status != OutputStatus.RELEASED:
            _refuse(ctx, principal, Action.OUTPUT_DOWNLOAD, row, [
                f"output {row.id} is {row.status}, not released; only released outputs "
                f"can be downloaded"])
    if before is not None:
        before(row)
    payload = _load(ctx, principal, project, row, Action.OUTPUT_DOWNLOAD)
    ctx.record(EventType.OUTPUT_DOWNLOADED, principal, row.id,
               {"project": row.project_id, "sha256": row.sha256, "size": row.size})
    return Download(payload, row.media_type, row.filename)


def _load(ctx: AccessContext, principal: Principal, project: Project, row: OutputRow,
          action: Action) -> bytes:
    try:
        return files.load(ctx, project, row.sha256)
    except files.TamperedOutput as exc:  # a security event: audited, then refused
        ctx.record(EventType.ACCESS_REFUSED, principal, row.project_id,
                   {"action": action.value, "output": row.id, "sha256": row.sha256,
                    "reasons": exc.reasons})
        raise
