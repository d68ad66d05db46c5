"""Console pages for the security team: alerts and their timelines, per-partner charts,
suspensions and appeals, the audit log's verification, and exports for a SIEM.

Every page calls the same services as the API's /watch, /audit and /admin routes with the
signed-in person's principal; the services decide who may change what (an auditor reads only:
the buttons are not shown, and the services would refuse them anyway). Charts show counts and
distinct-participant totals only, never a participant's identity or values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import numpy as np
import polars as pl
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pyroaring import BitMap
from sqlalchemy import select

from strongroom.access import institutions, oversight, pauses, projects
from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import RULES, Action
from strongroom.access.states import PauseState
from strongroom.audit import EventType, StoredEntry
from strongroom.cohort.crypto import decrypt
from strongroom.errors import Invalid, NotFound, ServiceError
from strongroom.server.security import acts
from strongroom.server.web import charts, names
from strongroom.server.web.pages import PER_PAGE, PREFIX, Access, Waiting, render, section, when
from strongroom.watch import alerts, appeals, exposure
from strongroom.watch.alerts import AlertView
from strongroom.watch.delivery import DeliveryRow
from strongroom.watch.detectors.frames import SECURITY_ACTIONS
from strongroom.watch.detectors.robust import median_spread
from strongroom.watch.exports import MEDIA_TYPES, Format, document
from strongroom.watch.exports import render as export_line
from strongroom.watch.limits import allowance
from strongroom.watch.models import AlertRow, ExposureRow, MeterRow
from strongroom.watch.policy import limits_for
from strongroom.watch.states import AlertStatus, Severity

router = APIRouter(include_in_schema=False)
HOME = PREFIX + "/security"
Analyst = Annotated[Principal, Depends(section("Security"))]

HTTP = {"invalid": 400, "unauthenticated": 401, "forbidden": 403, "not-found": 404,
        "conflict": 409, "rate-limited": 429, "unavailable": 503}
SHOWN_DAYS = 60  # the transfer charts' span
BASELINE_DAYS = 60  # each day's baseline: the active days of the 60 before it (as the detector)
REACH_DAYS = 30  # the record-level limit's window
MAX_ID = 64
EXTENSIONS = {Format.OCSF: "ocsf.json", Format.ECS: "ecs.json", Format.CEF: "cef"}
METERS = (("cells", "Cells released per day", ""),
          ("bytes_out", "Bytes out per day", " B"),
          ("record_rows", "Record-level rows exported per day", " rows"))


def _may(who: Principal, action: Action) -> bool:
    """Whether to offer a button: the service still decides when it is pressed."""
    return bool(who.roles & RULES[action].roles)


def _url(*parts: str) -> str:
    return HOME + "".join("/" + quote(p, safe="") for p in parts)


def _short(value: str, what: str) -> str | None:
    """A filter's value from a link or form: empty is "any"; too long is refused plainly."""
    text = value.strip()
    if len(text) > MAX_ID:
        raise Invalid(f"{what} is at most {MAX_ID} characters")
    return text or None


def _filter(status: str, severity: str, detector: str = "", project: str = "",
            institution: str = "") -> alerts.AlertFilter:
    return alerts.parse_filter(status=_short(status, "a status"),
                               severity=_short(severity, "a severity"),
                               detector=_short(detector, "a detector"),
                               project_id=_short(project, "a project id"),
                               institution_id=_short(institution, "an institution id"))


def _format(value: str) -> Format:
    try:
        return Format(value.strip().lower())
    except ValueError:
        raise Invalid(f"{value[:20]!r} is not an export format; use one of: "
                      f"{', '.join(f.value for f in Format)}") from None


# -- the overview -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditStatus:
    """The audit log's last verification, in words."""

    ok: bool | None  # None: never verified
    sentence: str


def _verified_words(ok: bool, entries: int, at: dt.datetime, first_bad: int | None,
                    kind: str | None, problem: str | None = None) -> AuditStatus:
    if ok:
        upto = f"up to entry {entries - 1:,}" if entries else "(the log was empty)"
        return AuditStatus(True, f"Verified {upto} at {when(at)}: {entries:,} entries, "
                                 f"each hash and signed checkpoint checked.")
    where = f"entry {first_bad:,}" if first_bad is not None else "a checkpoint"
    return AuditStatus(False, f"Broken at {where} ({kind or 'unknown'}), found at {when(at)}"
                              + (f": {problem}" if problem else "") + ". Tell the custodian "
                              "and keep the database as it is for investigation.")


def _last_verification(ctx: AccessContext, who: Principal) -> AuditStatus:
    entry = oversight.last_of(ctx, who, EventType.AUDIT_VERIFIED)
    if entry is None:
        return AuditStatus(None, "The audit log has not been verified yet.")
    d = entry.details
    bad = d.get("first_bad_seq")
    return _verified_words(bool(d.get("ok")), int(d.get("entries") or 0), entry.at,
                           int(bad) if bad is not None else None, d.get("kind"))


def _unresolved(ctx: AccessContext, who: Principal) -> list[AlertView]:
    found: list[AlertView] = []
    for state in (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED):
        found += alerts.list_alerts(ctx, who, alerts.AlertFilter(status=state),
                                    limit=alerts.MAX_LIMIT)
    return sorted(found, key=lambda v: v.alert.last_at, reverse=True)


def _held(ctx: AccessContext, who: Principal, *, lifted: bool = False) -> list[Any]:
    return [v for v in pauses.list_pauses(ctx, who, include_lifted=lifted)
            if v.pause.kind == pauses.SUSPENSION]


def waiting(ctx: AccessContext, who: Principal) -> list[Waiting]:
    """What waits for security: the home page's card."""
    unresolved = _unresolved(ctx, who)
    severe = {Severity.HIGH.value, Severity.CRITICAL.value}
    return [
        Waiting("unresolved alerts", len(unresolved), HOME + "/alerts"),
        Waiting("of them high or critical",
                sum(v.alert.severity in severe for v in unresolved), HOME + "/alerts"),
        Waiting("suspensions in force", len(_held(ctx, who)), HOME + "/suspensions"),
    ]


@router.get(HOME, openapi_extra=acts(Action.WATCH_READ))
def overview(request: Request, who: Analyst, ctx: Access) -> Response:
    unresolved = _unresolved(ctx, who)
    counts = Counter((v.alert.severity, v.alert.status) for v in unresolved)
    levels = list(reversed(Severity))
    by_severity = [(s.value, counts[(s.value, "open")], counts[(s.value, "acknowledged")])
                   for s in levels]
    chart = charts.bars([(s, o + a) for s, o, a in by_severity],
                        "Unresolved alerts by severity", unit=" alerts", counts=True)
    return render(request, "security/overview.html", who, by_severity=by_severity,
                  chart=chart, latest=unresolved[:8], total=len(unresolved),
                  held=_held(ctx, who), audit=_last_verification(ctx, who))


@router.post(HOME + "/audit/verify", openapi_extra=acts(Action.AUDIT_READ))
def verify_audit(request: Request, who: Analyst, ctx: Access) -> Response:
    """Run the same verification as `strongroom audit verify`; its outcome is audited, and
    the overview reads it back from there."""
    oversight.verify_log(ctx, who, request.app.state.platform.witness)
    return RedirectResponse(HOME + "#audit", status_code=303)


# -- alerts -------------------------------------------------------------------------------------

@router.get(HOME + "/alerts", openapi_extra=acts(Action.WATCH_READ))
def alert_list(request: Request, who: Analyst, ctx: Access, status: str = "",
               severity: str = "", detector: str = "", project: str = "",
               institution: str = "", page: int = 1) -> Response:
    """Alerts by filter, newest first, PER_PAGE at a time (paged in the database: there may
    be hundreds of thousands)."""
    shown = {"status": status, "severity": severity, "detector": detector,
             "project": project, "institution": institution}
    base: dict[str, Any] = {"statuses": [s.value for s in AlertStatus],
                            "severities": [s.value for s in reversed(Severity)],
                            "shown": shown}
    try:
        flt = _filter(status, severity, detector, project, institution)
    except Invalid as exc:
        return render(request, "security/alerts.html", who, status=400, errors=exc.reasons,
                      rows=[], **base)
    page = min(max(page, 1), alerts.MAX_OFFSET // PER_PAGE)
    found = alerts.list_alerts(ctx, who, flt, limit=PER_PAGE + 1, offset=(page - 1) * PER_PAGE)
    kept = [(k, v) for k, v in shown.items() if v]

    def link(to: int) -> str:
        return "?" + urlencode([*kept, ("page", str(to))])

    return render(request, "security/alerts.html", who, rows=found[:PER_PAGE], page=page,
                  newer=link(page - 1) if page > 1 else None,
                  older=link(page + 1) if len(found) > PER_PAGE else None, **base)


@dataclass(frozen=True)
class Moment:
    """One line of an alert's timeline."""

    at: dt.datetime
    order: int  # the audit entry's seq (-1: from the alert itself)
    what: str
    who: str | None = None
    detail: str | None = None


def _moment(entry: StoredEntry) -> Moment | None:
    d = entry.details
    target = f"{d.get('level', '')} {d.get('target') or ''}".strip()
    words: dict[str, tuple[str, str | None]] = {
        EventType.WATCH_ALERT_ACKNOWLEDGED: ("Acknowledged", d.get("reason")),
        EventType.WATCH_ALERT_RESOLVED: ("Resolved", d.get("reason")),
        EventType.WATCH_ALERT_REOPENED: ("Reopened", d.get("reason")),
        EventType.WATCH_SUSPENDED: (f"Suspended {target} ({entry.subject})", None),
        EventType.PAUSE_LIFT_REQUESTED: (
            f"Lift of the suspension of {target} asked; a second custodian admin must "
            f"confirm it", None),
        EventType.PAUSE_LIFTED: (f"Suspension of {target} lifted", None),
        EventType.WATCH_APPEAL_FILED: (f"Appealed (as the {d.get('as', 'appellant')})",
                                       d.get("text")),
        EventType.WATCH_APPEAL_UPHELD: ("Appeal reviewed: suspension upheld", d.get("reason")),
        EventType.WATCH_APPEAL_LIFTED: (
            "Appeal reviewed: suspension lifted" if d.get("confirmed")
            else "Appeal reviewed: lift asked; a second custodian admin must confirm",
            d.get("reason")),
    }
    found = words.get(entry.type)
    if found is None:
        return None
    actor = None if entry.actor == pauses.WATCH else entry.actor
    return Moment(entry.at, entry.seq, found[0], actor, found[1])


def _timeline(ctx: AccessContext, who: Principal, alert: AlertRow) -> list[Moment]:
    """Raised and repeated from the alert itself; every later move from the audit log (a
    reopened alert forgets who resolved it, the log does not)."""
    moments = [Moment(alert.first_at, -1, f"Raised by watch ({alert.detector}, "
                                          f"{alert.severity})", None, alert.title)]
    if alert.count > 1:
        moments.append(Moment(alert.last_at, -1, f"Repeated: seen {alert.count:,} times, "
                              f"first {when(alert.first_at)}, last {when(alert.last_at)}"))
    subjects = [alert.id, *(alert.suspensions or [])]
    for entry in oversight.entries_about(ctx, who, subjects):
        moment = _moment(entry)
        if moment is not None:
            moments.append(moment)
    known = names.readable(ctx, who)  # who and what by name, beside their IDs
    return sorted((dataclasses.replace(m, what=names.beside(m.what, known),
                                       who=m.who and names.beside(m.who, known))
                   for m in moments), key=lambda m: (m.at, m.order))


# a piece of an alert's evidence as a person reads it: its name in words, and either a
# sentence ("text"), name–value pairs ("pairs") or a small table ("table": headers, rows)
Evidence = tuple[str, str, Any]


def _words(key: str) -> str:
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _plain(value: Any) -> str:
    """A value in words: numbers with their thousands marked, lists joined, yes and no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{_words(k).lower()} {_plain(v)}" for k, v in value.items())
    if isinstance(value, str) and _TAG.fullmatch(value):  # a meter's, a rule's name
        return value.replace("_", " ")
    return str(value)


_TAG = re.compile(r"[a-z]+(?:_[a-z0-9]+)+")


def _evidence(evidence: dict[str, Any]) -> list[Evidence]:
    """Each piece of an alert's evidence (counts and digests only) in words: a record as its
    fields, a list of records as a table, anything else as a line; never raw JSON."""
    shown: list[Evidence] = []
    for name, value in sorted((evidence or {}).items()):
        if isinstance(value, dict) and value:
            shown.append((_words(name), "pairs", [(_words(k), _plain(v))
                                                  for k, v in value.items()]))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            shown.append((_words(name), "table", ([_words(c) for c in columns],
                                                  [[_plain(row.get(c)) for c in columns]
                                                   for row in value])))
        else:
            shown.append((_words(name), "text", _plain(value)))
    return shown


def _alert_page(request: Request, who: Principal, ctx: AccessContext, alert_id: str, *,
                status: int = 200, errors: Sequence[str] = (), form: str = "",
                typed: dict[str, str] | None = None) -> Response:
    view = alerts.get(ctx, who, alert_id)
    a = view.alert
    return render(request, "security/alert.html", who, status=status, alert=a,
                  appeal=view.appeal, timeline=_timeline(ctx, who, a),
                  evidence=_evidence(a.evidence), errors=list(errors), form=form,
                  typed=typed or {}, formats=[f.value for f in Format],
                  may_respond=_may(who, Action.WATCH_RESPOND),
                  may_review=_may(who, Action.WATCH_APPEAL_REVIEW),
                  url=_url("alerts", a.id))


@router.get(HOME + "/alerts/{alert_id}", openapi_extra=acts(Action.WATCH_READ))
def alert_page(request: Request, alert_id: str, who: Analyst, ctx: Access) -> Response:
    return _alert_page(request, who, ctx, alert_id)


def _act(request: Request, who: Principal, ctx: AccessContext, alert_id: str, form: str,
         typed: dict[str, str], change: Callable[[], object]) -> Response:
    """Run one change; on a refusal show the alert again with the reasons and what was typed
    (post/redirect/get on success)."""
    try:
        change()
    except NotFound:
        raise
    except ServiceError as exc:
        return _alert_page(request, who, ctx, alert_id, status=HTTP[exc.status],
                           errors=exc.reasons, form=form, typed=typed)
    return RedirectResponse(_url("alerts", alert_id), status_code=303)


@router.post(HOME + "/alerts/{alert_id}/acknowledge", openapi_extra=acts(Action.WATCH_RESPOND))
def acknowledge(request: Request, alert_id: str, who: Analyst, ctx: Access,
                note: Annotated[str, Form()] = "") -> Response:
    return _act(request, who, ctx, alert_id, "acknowledge", {"note": note},
                lambda: alerts.acknowledge(ctx, who, alert_id, note))


@router.post(HOME + "/alerts/{alert_id}/resolve", openapi_extra=acts(Action.WATCH_RESPOND))
def resolve(request: Request, alert_id: str, who: Analyst, ctx: Access,
            reason: Annotated[str, Form()] = "") -> Response:
    return _act(request, who, ctx, alert_id, "resolve", {"reason": reason},
                lambda: alerts.resolve(ctx, who, alert_id, reason))


@router.post(HOME + "/alerts/{alert_id}/reopen", openapi_extra=acts(Action.WATCH_RESPOND))
def reopen(request: Request, alert_id: str, who: Analyst, ctx: Access,
           reason: Annotated[str, Form()] = "") -> Response:
    return _act(request, who, ctx, alert_id, "reopen", {"reopen": reason},
                lambda: alerts.reopen(ctx, who, alert_id, reason))


@router.post(HOME + "/alerts/{alert_id}/appeal/review",
             openapi_extra=acts(Action.WATCH_APPEAL_REVIEW))
def review_appeal(request: Request, alert_id: str, who: Analyst, ctx: Access,
                  decision: Annotated[str, Form()] = "",
                  reason: Annotated[str, Form()] = "") -> Response:
    def decide() -> object:
        if decision not in ("uphold", "lift"):
            raise Invalid("choose to uphold the suspension or to lift it")
        return appeals.review(ctx, who, alert_id, decision == "lift", reason)
    return _act(request, who, ctx, alert_id, "review", {"review": reason}, decide)


def _download(body: str, fmt: Format, name: str) -> Response:
    return Response(body, media_type=MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}.{EXTENSIONS[fmt]}"'})


@router.get(HOME + "/alerts/{alert_id}/export", openapi_extra=acts(Action.WATCH_READ))
def export_alert(alert_id: str, who: Analyst, ctx: Access, format: str = "ocsf") -> Response:
    """One alert as a SIEM reads it (the API's /watch/alerts/{id}/export)."""
    fmt = _format(format)
    alert = alerts.get(ctx, who, alert_id).alert
    return _download(export_line(alert, fmt) + "\n", fmt, alert.id)


# -- suspensions and appeals --------------------------------------------------------------------

def _alert_or_none(ctx: AccessContext, who: Principal, alert_id: str) -> Any:
    """A suspension's alert, or None when it is gone (a suspension set by hand through the
    service, or an alert of a store restored without it): the page still lists the rest."""
    try:
        return alerts.get(ctx, who, alert_id)
    except NotFound:
        return None


def _suspensions_page(request: Request, who: Principal, ctx: AccessContext, *,
                      status: int = 200, errors: Sequence[str] = ()) -> Response:
    every = _held(ctx, who, lifted=True)
    active = [v for v in every if v.state is not PauseState.LIFTED]
    lifted = sorted((v for v in every if v.state is PauseState.LIFTED),
                    key=lambda v: v.pause.lifted_at, reverse=True)[:20]
    alert_ids = list(dict.fromkeys(v.pause.alert_id for v in [*active, *lifted]
                                   if v.pause.alert_id))[:50]
    appealed = [view for view in (_alert_or_none(ctx, who, a) for a in alert_ids)
                if view is not None and view.appeal.status is not appeals.AppealStatus.NONE]
    return render(request, "security/suspensions.html", who, status=status,
                  errors=list(errors), active=active, lifted=lifted, appealed=appealed,
                  may_lift=_may(who, Action.PAUSE_LIFT))


@router.get(HOME + "/suspensions", openapi_extra=acts(Action.PAUSE_READ))
def suspensions(request: Request, who: Analyst, ctx: Access) -> Response:
    return _suspensions_page(request, who, ctx)


@router.post(HOME + "/suspensions/{pause_id}/lift", openapi_extra=acts(Action.PAUSE_LIFT))
def lift(request: Request, pause_id: str, who: Analyst, ctx: Access) -> Response:
    """Ask for, or confirm, a suspension's lift (two different custodian admins)."""
    try:
        pauses.lift(ctx, who, pause_id)
    except NotFound:
        raise
    except ServiceError as exc:
        return _suspensions_page(request, who, ctx, status=HTTP[exc.status],
                                 errors=exc.reasons)
    return RedirectResponse(HOME + "/suspensions", status_code=303)


# -- per-partner charts -------------------------------------------------------------------------

@router.get(HOME + "/partners", openapi_extra=acts(Action.INSTITUTION_READ))
def partners(request: Request, who: Analyst, ctx: Access) -> Response:
    open_by = Counter[str]()
    for view in _unresolved(ctx, who):
        for key in (view.alert.institution_id, view.alert.project_id):
            if key:
                open_by[key] += 1
    return render(request, "security/partners.html", who,
                  institutions=institutions.list_all(ctx, who),
                  projects=[v.project for v in projects.list_visible(ctx, who)],
                  open_by=open_by)


def _daily(ctx: AccessContext, who: Principal, column: str, target: str,
           today: dt.date) -> pl.DataFrame:
    """Per day (zeros on quiet days) the requests and what left, over the shown days and
    the baseline before them; security events (failed sign-ins …) are not transfers."""
    start = today - dt.timedelta(days=SHOWN_DAYS + BASELINE_DAYS - 1)
    since = dt.datetime.combine(start, dt.time(), dt.UTC)
    with ctx.transaction() as db:
        authorize(ctx, db, who, Action.WATCH_READ)
        rows = db.execute(select(MeterRow.at, MeterRow.action, MeterRow.cells,
                                 MeterRow.bytes_out, MeterRow.record_rows)
                          .where(getattr(MeterRow, column) == target,
                                 MeterRow.at >= since)).all()
    schema = {"at": pl.Datetime("us", "UTC"), "action": pl.String(), "cells": pl.Int64(),
              "bytes_out": pl.Int64(), "record_rows": pl.Int64()}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    per_day = (frame.filter(~pl.col("action").is_in(sorted(SECURITY_ACTIONS)))
               .group_by(pl.col("at").dt.date().alias("day"))
               .agg(pl.len().alias("requests"), *(pl.col(m).sum() for m, _, _ in METERS)))
    days = pl.DataFrame({"day": pl.date_range(start, today, "1d", eager=True)})
    return days.join(per_day, on="day", how="left").fill_null(0).sort("day")


def _bands(daily: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each shown day's baseline (median and robust spread of the active days among the
    ``BASELINE_DAYS`` before it), one column per meter."""
    values = daily.select(m for m, _, _ in METERS).to_numpy().astype(np.float64)
    active = daily["requests"].to_numpy() > 0
    medians = np.zeros((SHOWN_DAYS, len(METERS)))
    spreads = np.zeros_like(medians)
    for i in range(SHOWN_DAYS):
        end = BASELINE_DAYS + i
        past = values[end - BASELINE_DAYS:end][active[end - BASELINE_DAYS:end]]
        medians[i], spreads[i] = median_spread(past)
    return medians, spreads


def _transfer_charts(ctx: AccessContext, who: Principal, column: str,
                     target: str) -> tuple[list[tuple[str, Markup]], dict[str, int]]:
    today = ctx.clock().date()
    daily = _daily(ctx, who, column, target, today)
    shown = daily.tail(SHOWN_DAYS)
    medians, spreads = _bands(daily)
    labels = [d.strftime("%m-%d") for d in shown["day"]]
    drawn = []
    for j, (meter, title, unit) in enumerate(METERS):
        band = charts.Band(low=list(np.maximum(medians[:, j] - spreads[:, j], 0.0)),
                           high=list(medians[:, j] + spreads[:, j]),
                           label=f"baseline: median ± robust spread of the active days in "
                                 f"the {BASELINE_DAYS} days before each day")
        drawn.append((title, charts.series(labels, shown[meter].to_list(), title,
                                           band=band, unit=unit)))
    totals = {m: int(shown[m].sum()) for m, _, _ in METERS}
    totals["requests"] = int(shown["requests"].sum())
    return drawn, totals


def _reach_chart(ctx: AccessContext, who: Principal, scope: str,
                 target: str) -> tuple[Markup, int, int]:
    """Distinct participants reached record-level in the last 30 days, day by day, against
    the allowance (the limit plus approved declared jobs in force, for a project)."""
    now = ctx.clock()
    first = now.date() - dt.timedelta(days=REACH_DAYS)
    column = getattr(ExposureRow, f"{scope}_id")
    with ctx.transaction() as db:
        authorize(ctx, db, who, Action.WATCH_READ)
        rows = db.execute(select(ExposureRow.at, ExposureRow.members_sealed)
                          .where(column == target,
                                 ExposureRow.at >= now - dt.timedelta(days=REACH_DAYS))
                          .order_by(ExposureRow.at)).all()
        limit = limits_for(db, scope, target).record_participants
        if scope == "project":
            limit += allowance(db, target, now).record_participants
    reached, counts, i = BitMap(), [], 0
    days = [first + dt.timedelta(days=k) for k in range(REACH_DAYS + 1)]
    for day in days:
        while i < len(rows) and rows[i].at.date() <= day:
            reached |= BitMap.deserialize(decrypt(rows[i].members_sealed, ctx.key,
                                                  exposure.CONTEXT))
            i += 1
        counts.append(len(reached))  # how many, never who
    chart = charts.series([d.strftime("%m-%d") for d in days], counts,
                          "Distinct participants reached record-level, last 30 days",
                          limit=limit, unit=" participants")
    return chart, counts[-1], limit


def _partner_page(request: Request, who: Principal, ctx: AccessContext, kind: str,
                  target: str, name: str, facts: list[tuple[str, str]]) -> Response:
    drawn, totals = _transfer_charts(ctx, who, f"{kind}_id", target)
    reach, reached, limit = _reach_chart(ctx, who, kind, target)
    return render(request, "security/partner.html", who, kind=kind, target=target,
                  name=name, facts=facts, transfers=drawn, totals=totals, reach=reach,
                  reached=reached, limit=limit, days=SHOWN_DAYS)


@router.get(HOME + "/partners/institutions/{institution_id}",
            openapi_extra=acts(Action.WATCH_READ))
def institution_charts(request: Request, institution_id: str, who: Analyst,
                       ctx: Access) -> Response:
    found = institutions.read(ctx, who, institution_id)
    return _partner_page(request, who, ctx, "institution", found.id, found.name,
                         [("Country", found.country), ("Status", found.status)])


# ``{project}``, not ``{project_id}``: the meter would count this page as the project's own
# traffic (and the analyst's reading as its transfers)
@router.get(HOME + "/partners/projects/{project}", openapi_extra=acts(Action.WATCH_READ))
def project_charts(request: Request, project: str, who: Analyst, ctx: Access) -> Response:
    found = projects.read(ctx, who, project).project
    return _partner_page(request, who, ctx, "project", found.id, found.title,
                         [("Status", found.status), ("Export permission", found.export),
                          ("Lead", found.lead_id)])


# -- exports ------------------------------------------------------------------------------------

def _outbox(rows: Sequence[DeliveryRow]) -> dict[str, dict[str, Any]]:
    """Per destination: how many delivered, waiting and failed; the latest delivery and
    problem (the outbox keeps the newest 200)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:  # newest first
        entry = seen.setdefault(row.destination, {"delivered": 0, "pending": 0, "failed": 0,
                                                  "last_delivered": None, "last_error": None})
        entry[row.status] = entry.get(row.status, 0) + 1
        if row.delivered_at and entry["last_delivered"] is None:
            entry["last_delivered"] = row.delivered_at
        if row.last_error and entry["last_error"] is None:
            entry["last_error"] = row.last_error
    return seen


@router.get(HOME + "/exports", openapi_extra=acts(Action.WATCH_READ))
def exports(request: Request, who: Analyst, ctx: Access) -> Response:
    with ctx.transaction() as db:  # the same right as reading alerts (as the CLI's)
        authorize(ctx, db, who, Action.WATCH_READ)
    delivery = request.app.state.platform.delivery
    return render(request, "security/exports.html", who,
                  formats=[f.value for f in Format],
                  statuses=[s.value for s in AlertStatus],
                  severities=[s.value for s in reversed(Severity)],
                  destinations=delivery.destinations.public(),
                  outbox=_outbox(delivery.status()))


@router.get(HOME + "/exports/alerts", openapi_extra=acts(Action.WATCH_READ))
def export_alerts(who: Analyst, ctx: Access, format: str = "ocsf", status: str = "",
                  severity: str = "") -> Response:
    """Alerts (up to 1,000, newest first): a JSON array of OCSF or ECS objects, or CEF
    lines."""
    fmt = _format(format)
    views = alerts.list_alerts(ctx, who, _filter(status, severity), limit=alerts.MAX_LIMIT)
    if fmt is Format.CEF:
        body = "".join(export_line(v.alert, fmt) + "\n" for v in views)
    else:
        body = json.dumps([document(v.alert, fmt) for v in views], indent=1,
                          sort_keys=True, ensure_ascii=False) + "\n"
    stamp = ctx.clock().strftime("%Y%m%dT%H%M%SZ")
    return _download(body, fmt, f"strongroom-alerts-{stamp}")
