"""The researcher's pages: their projects and, per project, the workspace.

A project's workspace shows its dataset definitions (and a form to add one), a form to run an
analysis, the results with the check's verdict and reasons, the released files, the project's
differential-privacy budget and its dummy data. Each page calls what the API's route calls,
with the same watch guard and measures (``routes/enclave.py``, ``routes/outputs.py``), so a
definition made here is metered, limited and audited exactly as one made with the client.
An analysis answers with its verdict, never its values; values are shown only once released
(reading them then is a download: limited and audited).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from strongroom.access import auth, projects
from strongroom.access.context import Principal
from strongroom.access.permissions import RULES, Action
from strongroom.access.presets import PRESETS
from strongroom.enclave import service
from strongroom.enclave.analyses.spec import KINDS
from strongroom.enclave.results import AnalysisKind
from strongroom.errors import Invalid, ServiceError
from strongroom.jobs.code import MAX_ARCHIVE
from strongroom.jobs.service import Jobs
from strongroom.jobs.states import ENDED, JobStatus
from strongroom.outputs import requests
from strongroom.outputs.render import Format
from strongroom.outputs.requests import MIN_JUSTIFICATION
from strongroom.outputs.runs import RunStatus
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import Verdict
from strongroom.privacy.budget import show
from strongroom.server.routes.enclave import Work
from strongroom.server.routes.jobs import Work as JobsWork
from strongroom.server.routes.jobs import jobs_of
from strongroom.server.routes.privacy import Dp
from strongroom.server.routes.runs import Work as RunsWork
from strongroom.server.security import acts, measure
from strongroom.server.statuses import status_of
from strongroom.server.web import charts
from strongroom.server.web.checks import STATUS_WORDS, describe, labelled_table, table_of
from strongroom.server.web.pages import PREFIX, Access, Waiting, paged, render, section
from strongroom.watch.shapes import fingerprint

router = APIRouter(include_in_schema=False)
Researcher = Annotated[Principal, Depends(section("Workspace"))]
HOME = PREFIX + "/workspace"

# How the form's "variables" fill each kind's spec, in order ("*": the rest as a list,
# "?": optional). The help beside the form is drawn from this table.
FILLS: dict[str, tuple[str, ...]] = {
    "frequency": ("variable",),
    "histogram": ("variable",),
    "crosstab": ("rows", "columns"),
    "summary": ("variables*",),
    "correlation": ("variables*",),
    "ols": ("outcome", "covariates*"),
    "logistic": ("outcome", "covariates*"),
    "kaplan_meier": ("time", "event", "group?"),
    "cumulative_incidence": ("time", "event", "group?"),  # event: 0 censored, 1, 2 … causes
    "cox": ("time", "event", "covariates*"),
    "glm": ("formula",),  # typed whole: "diabetes ~ cr(age, df=4) + bmi * C(sex)"
    "gwas": ("traits*",),  # covariates and the rest in more options
}
ALL_KINDS = [*KINDS, AnalysisKind.AGGREGATE_SQL.value]
FORMATS = [f.value for f in Format]
_SPLIT = re.compile(r"[,\s]+")
# after a change, the page says what happened in one of these fixed sentences
NOTICES = {
    "defined": "The dataset definition is built inside the enclave.",
    "analysed": "The analysis ran and its output was checked; ask for its release below.",
    "released": "Released: the file is yours to download.",
    "under_review": "Held for review: two output checkers will look at it.",
    "blocked": "Blocked by the automated check: nothing of it leaves (see the reasons).",
    "withdrawn": "You withdrew the request.",
}


# -- the analysis form ------------------------------------------------------------------

def _fill(kind: str, names: list[str], problems: list[str]) -> dict[str, Any]:
    """The spec's variable fields from the names typed, in FILLS's order."""
    slots = FILLS[kind]
    spec: dict[str, Any] = {}
    needed = [s for s in slots if not s.endswith(("*", "?"))]
    if len(names) < len(needed) + sum(s.endswith("*") for s in slots):
        problems.append(f"a {kind} analysis takes these variables, in order: "
                        f"{_takes(kind)}; you gave {len(names) or 'none'}")
        return spec
    rest = list(names)
    for slot in slots:
        if slot.endswith("*"):
            spec[slot[:-1]] = rest
            rest = []
        elif rest:
            spec[slot.rstrip("?")] = rest.pop(0)
    if rest:
        problems.append(f"a {kind} analysis takes these variables, in order: "
                        f"{_takes(kind)}; remove {', '.join(rest)}")
    return spec


def _takes(kind: str) -> str:
    words = []
    for slot in FILLS[kind]:
        if slot.endswith("*"):
            words.append(f"then one or more {slot[:-1]}")
        elif slot.endswith("?"):
            words.append(f"optionally {slot[:-1]}")
        else:
            words.append(slot)
    return ", ".join(words)


def _options(text: str, problems: list[str]) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        problems.append('more options must be a JSON object, e.g. {"bins": 20} or '
                        '{"round_to": 5}')
        return {}
    clash = sorted(set(found) & {"kind", "definition"})
    if clash:
        problems.append(f"set {' and '.join(clash)} with the form's fields, not in more "
                        f"options")
    return found


def spec_from_form(kind: str, definition: str, variables: str, sql: str,
                   options: str) -> dict[str, Any]:
    """The analysis the form asks for, as the API's JSON; Invalid with every problem."""
    problems: list[str] = []
    if kind not in ALL_KINDS:
        raise Invalid(f"choose the kind of analysis: one of {', '.join(ALL_KINDS)}")
    if kind == AnalysisKind.AGGREGATE_SQL:
        if not sql.strip():
            problems.append("aggregate SQL needs its query: SELECT … GROUP BY …")
        spec: dict[str, Any] = {"kind": kind, "sql": sql}
    else:
        if not definition:
            problems.append("choose the dataset definition to analyse")
        if kind == AnalysisKind.GLM:  # the formula as typed: its commas are its own
            if not variables.strip():
                problems.append('a glm takes its formula in Variables, e.g. "diabetes ~ '
                                'cr(age, df=4) + bmi * C(sex)", and its family in more '
                                'options, e.g. {"family": "binomial"}')
            filled: dict[str, Any] = {"formula": variables.strip()}
        else:
            filled = _fill(kind, [n for n in _SPLIT.split(variables) if n], problems)
        spec = {"kind": kind, "definition": definition, **filled}
    spec.update({k: v for k, v in _options(options, problems).items()
                 if k not in ("kind", "definition")})
    if problems:
        raise Invalid(problems)
    return spec


# -- the project's page -----------------------------------------------------------------

def _budget(dp: Dp, who: Principal, project_id: str) -> dict[str, Any]:
    found = dp.budget_of(who, project_id, spends=10)
    b = found.budget
    title = "Differential-privacy budget (ε) used"
    return {"budget": b, "spends": found.spends, "show": show,
            "meter": charts.meter(float(b.epsilon_spent), float(b.epsilon_total), title,
                                  unit=" ε")}


# the project page's tabs, in order: what each shows is project.html's
TABS = (("overview", "Overview"), ("analyse", "Definitions and analyses"), ("jobs", "Jobs"),
        ("results", "Results"))


MAX_LISTED = 5_000  # a project's newest outputs the results tab filters and pages through
RESULTS_PER_PAGE = 25
JOBS_SHOWN = 50  # the newest of a project's jobs its tab lists


@dataclass(frozen=True)
class Shown:
    """The results tab's filters: a status, a kind, words of a name or id (empty: any), and
    the page of what matches."""

    status: str = ""
    kind: str = ""
    q: str = ""
    page: int = 1

    def keeps(self, view: requests.OutputView) -> bool:
        return ((not self.status or view.status.value == self.status)
                and (not self.kind or view.output.kind == self.kind))

    @property
    def filtered(self) -> bool:
        return bool(self.status or self.kind or self.q)

    def keep(self) -> list[tuple[str, str]]:
        """What a page link carries besides the search and the page: the tab, the filters."""
        return [("tab", "results"), *((k, v) for k, v in (("status", self.status),
                                                          ("kind", self.kind)) if v)]


def _project_context(who: Principal, ctx: Access, work: Work, dp: Dp, jobs: Jobs,
                     project_id: str, shown: Shown) -> dict[str, Any]:
    found = projects.read(ctx, who, project_id)
    try:
        definitions, refused = service.list_definitions(work.enclave, who, project_id), []
    except ServiceError as exc:  # e.g. training lapsed: the page says so, beside the rest
        definitions, refused = [], exc.reasons
    views = requests.list_outputs(ctx, who, project_id, limit=MAX_LISTED)
    listed = paged([v for v in views if shown.keeps(v)],
                   lambda v: f"{v.output.filename} {v.output.id}", shown.q, shown.page,
                   RESULTS_PER_PAGE, keep=shown.keep())
    released = [v for v in views if v.status is OutputStatus.RELEASED]
    all_jobs = jobs.of_project(who, project_id)
    return {"project": found.project, "members": found.members, "fields": found.fields,
            "jobs": all_jobs[:JOBS_SHOWN], "jobs_total": len(all_jobs),
            "definitions": definitions, "refused": refused,
            "outputs": [describe(v) for v in listed.items], "listed": listed,
            "outputs_total": len(views), "outputs_more": len(views) == MAX_LISTED,
            "released": [describe(v) for v in released[:RESULTS_PER_PAGE]],
            "released_total": len(released),
            "statuses": [(s.value, STATUS_WORDS[s]) for s in OutputStatus],
            "output_kinds": sorted({v.output.kind for v in views}), "shown": shown,
            "tabs": TABS, "kinds": ALL_KINDS, "fills": {k: _takes(k) for k in FILLS},
            "formats": FORMATS, **_budget(dp, who, project_id)}


def _project_page(request: Request, who: Principal, ctx: Access, work: Work, dp: Dp,
                  project_id: str, *, status: int = 200, tab: str = "overview",
                  shown: Shown = Shown(), **extra: Any) -> Response:
    if tab not in dict(TABS):
        raise Invalid(f"this project page has no tab {tab[:40]!r}; its tabs are "
                      + ", ".join(key for key, _ in TABS))
    if shown.status and shown.status not in {s.value for s in OutputStatus}:
        raise Invalid(f"no output status {shown.status[:40]!r}; choose one of the list")
    context = {"definition": {"name": "", "sql": ""}, "definition_errors": [],
               "job_errors": [], "job_action": "",
               "analysis": {"kind": "frequency", "definition": "", "variables": "",
                            "sql": "", "options": "", "format": "json"},
               "analysis_errors": [], "notice": None, "tab": tab, **extra}
    return render(request, "workspace/project.html", who, status=status,
                  **_project_context(who, ctx, work, dp, jobs_of(request), project_id, shown),
                  **context)


def waiting(ctx: Access, who: Principal) -> list[Waiting]:
    """A researcher's projects: the home page's card."""
    return [Waiting("your projects", len(projects.list_visible(ctx, who)), HOME)]


@router.get(HOME, openapi_extra=acts(Action.PROJECT_READ))
def home(request: Request, who: Researcher, ctx: Access) -> Response:
    """The researcher's projects."""
    mine = projects.list_visible(ctx, who)
    return render(request, "workspace/home.html", who, projects=mine)


@router.get(HOME + "/projects/{project_id}", openapi_extra=acts(Action.PROJECT_READ))
def project_page(request: Request, project_id: str, who: Researcher, ctx: Access, work: Work,
                 dp: Dp, done: str | None = None, tab: str = "overview", status: str = "",
                 kind: str = "", q: str = "", page: int = 1) -> Response:
    """A project, one tab at a time; the results tab filtered by status, kind, name or id,
    a page at a time."""
    return _project_page(request, who, ctx, work, dp, project_id, tab=tab,
                         shown=Shown(status, kind, q.strip(), page),
                         notice=NOTICES.get(done or ""))


@router.post(HOME + "/projects/{project_id}/definitions",
             openapi_extra=acts(Action.DATA_ANALYSE))
def define(request: Request, project_id: str, who: Researcher, ctx: Access, work: Work,
           dp: Dp, name: Annotated[str, Form()] = "",
           sql: Annotated[str, Form()] = "") -> Response:
    """Build a dataset definition (checked SQL); bad SQL comes back with the check's reasons."""
    typed = {"name": name, "sql": sql}
    problems = [m for m, bad in (("name the definition", not name.strip()),
                                 ("write the SELECT that defines it", not sql.strip())) if bad]
    if problems:
        return _project_page(request, who, ctx, work, dp, project_id, status=400,
                             tab="analyse", definition=typed, definition_errors=problems)
    try:
        measure(request, project_id=project_id)  # the limits are held by the service
        digest, shape = fingerprint({"sql": sql})
        measure(request, query_digest=digest, query_shape=shape)
        work.define(who, project_id, name.strip(), sql)
    except ServiceError as exc:
        return _project_page(request, who, ctx, work, dp, project_id,
                             status=status_of(exc), tab="analyse", definition=typed,
                             definition_errors=exc.reasons)
    return RedirectResponse(f"{HOME}/projects/{project_id}?tab=analyse&done=defined",
                            status_code=303)


@router.post(HOME + "/projects/{project_id}/analyses", openapi_extra=acts(Action.DATA_ANALYSE))
def analyse(request: Request, project_id: str, who: Researcher, ctx: Access, work: Work,
            dp: Dp, runs: RunsWork, kind: Annotated[str, Form()] = "",
            definition: Annotated[str, Form()] = "", variables: Annotated[str, Form()] = "",
            sql: Annotated[str, Form()] = "", options: Annotated[str, Form()] = "",
            file_format: Annotated[str, Form(alias="format")] = "json") -> Response:
    """Submit an analysis; its run's page follows it to its checked output's page."""
    typed = {"kind": kind, "definition": definition, "variables": variables, "sql": sql,
             "options": options, "format": file_format}
    try:
        if file_format not in FORMATS:
            raise Invalid(f"choose the file's format: {' or '.join(FORMATS)}")
        spec = spec_from_form(kind, definition, variables, sql, options)
        measure(request, project_id=project_id)  # the limits are held by the service
        digest, shape = fingerprint(spec)
        measure(request, query_digest=digest, query_shape=shape)
        # submitted, and its page polls it (outputs/runs.py): no request is held open
        # while a model or a GWAS computes
        run = runs.submit(who, project_id, spec, Format(file_format))
    except ServiceError as exc:
        return _project_page(request, who, ctx, work, dp, project_id,
                             status=status_of(exc), tab="analyse", analysis=typed,
                             analysis_errors=exc.reasons)
    return RedirectResponse(f"{HOME}/analysis-runs/{run.id}", status_code=303)


@router.get(HOME + "/analysis-runs/{run_id}", openapi_extra=acts(Action.OUTPUT_READ))
def run_page(request: Request, run_id: str, who: Researcher, runs: RunsWork) -> Response:
    """A submitted analysis: its progress through its schedule (by the time alone), polled
    by htmx (``/state``, every second); once answered, its output's page. Without script,
    reloading the page follows it."""
    view = runs.get(who, run_id)
    if view.run.status == RunStatus.DONE.value and view.run.output_id is not None:
        return RedirectResponse(f"{HOME}/outputs/{view.run.output_id}?done=analysed",
                                status_code=303)
    # 200 whatever its end, as a job's page: the run is there; its reasons say why it was
    # refused (a refusal's status would be a page that failed to open)
    return render(request, "workspace/run.html", who, run=view.run, shown=view.progress)


@router.get(HOME + "/analysis-runs/{run_id}/state", openapi_extra=acts(Action.OUTPUT_READ))
def run_state(request: Request, run_id: str, who: Researcher, runs: RunsWork) -> Response:
    """The run's state as the page's fragment; once done, htmx is sent to its output."""
    view = runs.get(who, run_id)
    if view.run.status == RunStatus.DONE.value and view.run.output_id is not None:
        target = f"{HOME}/outputs/{view.run.output_id}?done=analysed"
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    # 200 whatever the run's end: htmx swaps in only a 2xx answer, and a refusal is shown
    return render(request, "workspace/_run.html", who, run=view.run, shown=view.progress)


@router.post(HOME + "/projects/{project_id}/jobs", openapi_extra=acts(Action.DATA_ANALYSE))
async def submit_job(request: Request, project_id: str, who: Researcher, ctx: Access,
                     work: Work, dp: Dp, jobs: JobsWork) -> Response:
    """Run an action of the uploaded repository (a zip) as a job; its page follows it."""
    form = await request.form(max_files=1, max_fields=4)
    action, code = str(form.get("action") or "").strip(), form.get("code")
    problems = [m for m, bad in (("name the action of project.yaml to run", not action),
                                 ("choose the repository's zip", not hasattr(code, "read")))
                if bad]
    try:
        if problems:
            raise Invalid(problems)
        archive = await code.read(MAX_ARCHIVE + 1)  # type: ignore[union-attr]
        measure(request, project_id=project_id)  # the limits are held by the service
        job = await run_in_threadpool(jobs.start, who, project_id, archive, action)
    except ServiceError as exc:
        await form.close()
        return await run_in_threadpool(
            _project_page, request, who, ctx, work, dp, project_id, status=status_of(exc),
            tab="jobs", job_errors=exc.reasons, job_action=action)
    await form.close()
    return RedirectResponse(f"{HOME}/jobs/{job.id}", status_code=303)


@router.get(HOME + "/jobs/{job_id}", openapi_extra=acts(Action.PROJECT_READ))
def job_page(request: Request, job_id: str, who: Researcher, ctx: Access,
             jobs: JobsWork) -> Response:
    """A job: its status, reasons, and its outputs with their verdicts."""
    job = jobs.get(who, job_id)
    outputs = {name: describe(requests.read(ctx, who, output_id))
               for name, output_id in job.outputs.items()}
    return render(request, "workspace/job.html", who, job=job, outputs=outputs,
                  ended=JobStatus(job.status) in ENDED)


@router.get(HOME + "/projects/{project_id}/dummy", openapi_extra=acts(Action.DATA_ANALYSE))
def dummy_data(project_id: str, who: Researcher, work: Work) -> Response:
    """Synthetic tables with the project's schema (the API's GET /projects/{id}/dummy)."""
    payload = service.dummy_data(work.enclave, who, project_id)
    return Response(payload, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{project_id}-dummy.zip"'})


# -- the project's API tokens -----------------------------------------------------------

TOKEN_DAYS = 30  # the form's default: the longest a token may last (Settings.token_max_days)


def _tokens_page(request: Request, who: Principal, ctx: Access, project_id: str, *,
                 status: int = 200, **extra: Any) -> Response:
    """The person's tokens for the project, a form to issue one, and (once) a new secret."""
    found = projects.read(ctx, who, project_id)
    mine = [t for t in auth.list_tokens(ctx, who) if t.project_id == project_id]
    now = ctx.clock()
    context: dict[str, Any] = {
        "issue": {"preset": "study", "actions": [], "days": min(TOKEN_DAYS,
                                                               ctx.settings.token_max_days),
                  "label": ""},
        "errors": [], "new": None, "notice": None, **extra}
    return render(request, "workspace/tokens.html", who, status=status, tabs=TABS,
                  project=found.project, presets=list(PRESETS.values()),
                  usable=sorted(a.value for a, r in RULES.items() if r.by_token),
                  active=[t for t in reversed(mine) if t.revoked_at is None
                          and t.expires_at > now],
                  ended=[t for t in reversed(mine) if t.revoked_at is not None
                         or t.expires_at <= now],
                  max_days=ctx.settings.token_max_days, **context)


@router.get(HOME + "/projects/{project_id}/tokens", openapi_extra=acts(Action.SELF_READ))
def tokens_page(request: Request, project_id: str, who: Researcher, ctx: Access,
                done: str | None = None) -> Response:
    return _tokens_page(request, who, ctx, project_id,
                        notice="The token was revoked: it stopped working at once."
                        if done == "revoked" else None)


@router.post(HOME + "/projects/{project_id}/tokens", openapi_extra=acts(Action.TOKEN_MANAGE))
async def issue_token(request: Request, project_id: str, who: Researcher,
                      ctx: Access) -> Response:
    """Issue a token of a preset (and any actions ticked); the page shows its secret once,
    in this answer only (never in an address, never again)."""
    form = await request.form(max_fields=20)
    preset = str(form.get("preset") or "")
    actions = [str(a) for a in form.getlist("action")]
    label = str(form.get("label") or "").strip()
    days_text = str(form.get("days") or "")
    typed = {"preset": preset, "actions": actions, "days": days_text, "label": label}
    try:
        if not days_text.isdigit():
            raise Invalid(f"give the days it lasts as a whole number, 1 to "
                          f"{ctx.settings.token_max_days}")
        new = await run_in_threadpool(auth.issue_token, ctx, who, project_id, actions,
                                      int(days_text), label, preset or None)
    except ServiceError as exc:
        return await run_in_threadpool(_tokens_page, request, who, ctx, project_id,
                                       status=status_of(exc), issue=typed,
                                       errors=exc.reasons)
    response = await run_in_threadpool(_tokens_page, request, who, ctx, project_id,
                                       status=201, new=new)
    response.headers["Cache-Control"] = "no-store"  # the secret is in this page only
    return response


@router.post(HOME + "/projects/{project_id}/tokens/{token_id}/revoke",
             openapi_extra=acts(Action.SELF_READ))
def revoke_token(request: Request, project_id: str, token_id: str, who: Researcher,
                 ctx: Access) -> Response:
    try:
        auth.revoke_token(ctx, who, token_id)
    except ServiceError as exc:
        return _tokens_page(request, who, ctx, project_id, status=status_of(exc),
                            errors=exc.reasons)
    return RedirectResponse(f"{HOME}/projects/{project_id}/tokens?done=revoked#tokens",
                            status_code=303)


# -- a result ---------------------------------------------------------------------------

def _result_page(request: Request, who: Principal, ctx: Access, output_id: str, *,
                 status: int = 200, errors: list[str] | None = None, justification: str = "",
                 done: str | None = None) -> Response:
    view = requests.read(ctx, who, output_id)
    # a notice of what the researcher's last step did, while it is still true
    still = done in ("analysed", "checked") and view.status is OutputStatus.CHECKED
    notice = NOTICES.get(done or "") if still or done == view.status.value else None
    project = projects.read(ctx, who, view.output.project_id).project
    return render(request, "workspace/result.html", who, status=status, o=describe(view),
                  project=project, errors=errors or [], justification=justification,
                  notice=notice, mine=view.output.requester == who.person_id,
                  needs_reason=view.report.verdict is Verdict.REVIEW,
                  min_justification=MIN_JUSTIFICATION,
                  spec=json.dumps(view.output.spec, indent=1, sort_keys=True))


@router.get(HOME + "/outputs/{output_id}", openapi_extra=acts(Action.OUTPUT_READ))
def result(request: Request, output_id: str, who: Researcher, ctx: Access,
           done: str | None = None) -> Response:
    return _result_page(request, who, ctx, output_id, done=done)


@router.post(HOME + "/outputs/{output_id}/request", openapi_extra=acts(Action.OUTPUT_REQUEST))
def request_release(request: Request, output_id: str, who: Researcher, ctx: Access,
                    work: Work, justification: Annotated[str, Form()] = "") -> Response:
    """Ask for release: released at once, held for two checkers, or blocked, by the verdict."""
    try:
        view = work.request_release(who, output_id, justification.strip() or None)
    except ServiceError as exc:
        return _result_page(request, who, ctx, output_id, status=status_of(exc),
                            errors=exc.reasons, justification=justification)
    return RedirectResponse(f"{HOME}/outputs/{output_id}?done={view.status.value}",
                            status_code=303)


@router.post(HOME + "/outputs/{output_id}/withdraw", openapi_extra=acts(Action.OUTPUT_REQUEST))
def withdraw(request: Request, output_id: str, who: Researcher, ctx: Access) -> Response:
    try:
        requests.withdraw(ctx, who, output_id)
    except ServiceError as exc:
        return _result_page(request, who, ctx, output_id, status=status_of(exc),
                            errors=exc.reasons)
    return RedirectResponse(f"{HOME}/outputs/{output_id}?done=withdrawn", status_code=303)


def _released(request: Request, who: Principal, ctx: Access, work: Work,
              output_id: str) -> requests.Download:
    """A released output's bytes, within the project's limits (as GET /outputs/{id}/download)."""
    return work.download(who, output_id, lambda project_id, cells: measure(
        request, project_id=project_id, cells=cells))


@router.get(HOME + "/outputs/{output_id}/download", openapi_extra=acts(Action.OUTPUT_DOWNLOAD))
def download(request: Request, output_id: str, who: Researcher, ctx: Access,
             work: Work) -> Response:
    found = _released(request, who, ctx, work, output_id)
    return Response(found.payload, media_type=found.media_type, headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"'})


@router.get(HOME + "/outputs/{output_id}/released", openapi_extra=acts(Action.OUTPUT_DOWNLOAD))
def released_table(request: Request, output_id: str, who: Researcher, ctx: Access,
                   work: Work) -> Response:
    """A released output as a table and a chart (reading it is a download: limited, audited).

    htmx asks for the fragment only; without script the link opens it as a page."""
    found = _released(request, who, ctx, work, output_id)
    row = requests.read(ctx, who, output_id).output
    try:  # the labelled table (outputs/tidy.py); a GWAS's own view, or the cells as they are
        if row.kind == AnalysisKind.GWAS.value:
            raise Invalid("a GWAS is shown by its strongest variants and its plots")
        table = labelled_table(work.readable(row, found.payload), found.payload,
                               found.media_type, "Counts in the released output")
    except (Invalid, ValueError, KeyError, pl.exceptions.PolarsError):
        table = table_of(found.payload, found.media_type, "Counts in the released output")
    page = ("workspace/_released.html" if request.headers.get("HX-Request") == "true"
            else "workspace/released.html")
    return render(request, page, who, table=table, output_id=output_id,
                  filename=found.filename)
