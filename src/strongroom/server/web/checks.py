"""The output checker's pages: the review queue, an output under review, and the decision.

Everything here is what ``/outputs`` gives a checker: the queue (``list_outputs(queue=True)``),
an output's report and reviews (``read``), its bytes while it waits for review
(``content_for_review``, audited as a data access) and the review itself (``Outputs.review``,
which holds the two-reviewer rule: neither the requester nor a project member, never twice).
The table shown is drawn from the very bytes that would leave, so a checker judges exactly
what would be released. The helpers that turn those bytes into a table and a chart are used
by the researcher's pages too (``workspace.py``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.permissions import Action
from strongroom.enclave.analyses.frame import TOTAL
from strongroom.enclave.results import AnalysisKind
from strongroom.errors import Invalid, ServiceError
from strongroom.outputs import requests
from strongroom.outputs.labels import Meanings
from strongroom.outputs.requests import MIN_REJECTION, OutputView
from strongroom.outputs.service import verdict_words
from strongroom.outputs.states import AWAITING_REVIEW, OutputAction, OutputStatus
from strongroom.outputs.tidy import CODE_SUFFIX, SUPPRESSED
from strongroom.outputs.verdicts import Finding, Verdict
from strongroom.server.routes.enclave import Work, outputs_of
from strongroom.server.security import acts
from strongroom.server.statuses import status_of
from strongroom.server.web import charts
from strongroom.server.web.names import Names
from strongroom.server.web.pages import PREFIX, Access, Waiting, paged, render, section
from strongroom.server.web.pages import kind as kind_words

router = APIRouter(include_in_schema=False)
Checker = Annotated[Principal, Depends(section("Output checks"))]
JOB_FILE = AnalysisKind.JOB_FILE.value
MAX_TEXT_SHOWN = 200_000  # characters of a job's own text file or code shown on the page

APPROVALS_NEEDED = 2  # the workflow's rule (outputs/states.py): two different checkers
MAX_CELLS_SHOWN = 2000  # a table of aggregates; more is cut with a note
MAX_BARS = 60
STATUS_WORDS = {
    OutputStatus.CHECKED: "checked, release not asked for",
    OutputStatus.UNDER_REVIEW: "waiting for two output checkers",
    OutputStatus.APPROVED_ONCE: "approved once, waiting for a second checker",
    OutputStatus.RELEASED: "released",
    OutputStatus.REJECTED: "rejected by an output checker",
    OutputStatus.BLOCKED: "blocked by the automated check",
    OutputStatus.WITHDRAWN: "withdrawn by the researcher",
}
# after a decision, the page says what happened in one of these fixed sentences
NOTICES = {
    "approved": "You approved it. A second, different output checker must approve it too.",
    "released": "You approved it as the second checker: it is released to the project.",
    "rejected": "You rejected it. The researcher reads your reason.",
}
# -- an output's bytes as a table and a chart (shared with the researcher's pages) --------

@dataclass
class Table:
    """An output's cells as rows × columns, as the bytes say (suppressed cells marked)."""

    columns: list[str]
    rows: list[tuple[str, list[str]]]
    facts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chart: Markup | None = None
    cut: int = 0  # cells left out of the page (the file holds them all)
    suppressed: int = 0
    # (row, column position) -> the check's reasons about that cell, for output checkers
    flagged: dict[tuple[int, int], str] = field(default_factory=dict)
    head: str = "Row"  # the first column's heading
    across: str = ""  # the variable whose categories head the columns (a crosstab's)


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return str(value)
    if isinstance(value, bool):
        return str(value)
    number = float(value)
    return f"{number:,.0f}" if number.is_integer() else f"{number:.6g}"


# a figure's name in a file as a table's heading says it ("at_risk": "at risk")
HEADINGS = {"neg_log10_p": "−log10 p", "se": "SE", "chrom": "chromosome", "pos": "position"}


def heading(name: str) -> str:
    return HEADINGS.get(name, name.replace("_", " "))


GWAS_SHOWN = 25  # the strongest variants a page shows (the file holds every one)
GWAS_COLUMNS = ("chrom", "pos", "id", "ref", "alt", "beta", "odds_ratio", "se", "p",
                "neg_log10_p")


def _strongest(table: pl.DataFrame) -> pl.DataFrame:
    """Strongest first: by −log10 p where the file has it (a p below 1e-308 is not 0)."""
    if "neg_log10_p" in table.columns:
        return table.sort("neg_log10_p", descending=True, nulls_last=True)
    return table.sort("p", nulls_last=True)


def _gwas_table(payload: bytes, media_type: str) -> Table | None:
    """A GWAS output as its strongest variants, its facts and its Manhattan and QQ plots
    (drawn from the released table alone); None if the output is not a GWAS."""
    from strongroom.outputs import genetics

    try:
        body = json.loads(payload) if media_type == "application/json" else {}
        if media_type == "application/json" and body.get("kind") != "gwas":
            return None
        table = genetics.read_table(payload, media_type)
    except (UnicodeDecodeError, ValueError, KeyError, pl.exceptions.PolarsError):
        return None
    if "trait" not in table.columns or "p" not in table.columns:
        return None
    shown = [c for c in GWAS_COLUMNS if c in table.columns]
    rows = [(str(r["trait"]), [_shown(r[c]) for c in shown])
            for r in _strongest(table).head(GWAS_SHOWN).iter_rows(named=True)]
    facts = [(f"λ_GC {trait}", _shown(v)) for trait, v in (body.get("lambda_gc") or {}).items()]
    facts += [(f"n {trait}", _shown(v)) for trait, v in
              ((body.get("facts") or {}).get("n") or {}).items()]
    facts += [(f"withheld: {reason}", str(n)) for reason, n in
              (body.get("withheld") or {}).items()]
    image = Markup('<img alt="{}" src="data:image/png;base64,{}">')
    images = Markup("").join(image.format(name, base64.b64encode(png).decode())
                             for name, png in genetics.figures(table))
    return Table([heading(c) for c in shown], rows, facts,
                 [str(n) for n in body.get("notes") or []],
                 images or None, max(table.height - GWAS_SHOWN, 0), head="Trait")


def _cells(payload: bytes, media_type: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cells (row labels, column, kind, value, suppressed) and, for JSON, the rest."""
    text = payload.decode("utf-8")
    if media_type == "application/json":
        body = json.loads(text)
        return list(body.get("cells", [])), body
    cells = []
    for line in csv.DictReader(io.StringIO(text)):
        cells.append({"row": line["row"].split(" | "), "column": line["column"],
                      "kind": line["kind"], "value": line["value"] or None,
                      "suppressed": line["suppressed"] == "yes"})
    return cells, {}


def _count_bars(cells: list[dict[str, Any]], title: str) -> Markup | None:
    """Bars of the shown counts (margins left out); None when there is nothing to draw."""
    counts = [c for c in cells if c["kind"] == "count" and not c["suppressed"]
              and c["value"] is not None and TOTAL not in c["row"] and c["column"] != TOTAL]
    if not counts or len(counts) > MAX_BARS or not any(float(c["value"]) for c in counts):
        return None  # nothing to draw: no bars, or only zeros (an empty chart says nothing)
    several = len({c["column"] for c in counts}) > 1
    items = [(" · ".join(c["row"]) + (f" / {c['column']}" if several else ""),
              float(c["value"])) for c in counts]
    return charts.bars(items, title, counts=True)


_MODEL_HEADS = frozenset({AnalysisKind.OLS, AnalysisKind.LOGISTIC, AnalysisKind.COX,
                          AnalysisKind.GLM})


def row_head(said: Meanings) -> str:
    """What a table's rows are, as its first column's heading: the variable (or variables)
    whose categories label them ("smoking", "sex · interval"), "Term" for a model's terms,
    "Variable" for a summary's; "Row" only when nothing names them."""
    spec, kind = said.spec, said.kind

    def named(*keys: str) -> list[str]:
        return [str(spec[k]) for k in keys if isinstance(spec.get(k), str) and spec[k]]

    if kind in (AnalysisKind.FREQUENCY, AnalysisKind.HISTOGRAM):
        found = named("variable")
    elif kind == AnalysisKind.CROSSTAB:
        found = named("rows")
    elif kind in (AnalysisKind.KAPLAN_MEIER, AnalysisKind.CUMULATIVE_INCIDENCE):
        found = [*named("group"), "interval"]
    elif kind == AnalysisKind.AGGREGATE_SQL:
        found = [str(k) for k in said.keys]
    elif kind in _MODEL_HEADS:
        found = ["Term"]
    elif kind in (AnalysisKind.SUMMARY, AnalysisKind.CORRELATION):
        found = ["Variable"]
    else:
        found = []
    return " · ".join(found) or "Row"


def table_of(payload: bytes, media_type: str, title: str,
             flagged: Mapping[int, str] | None = None,
             meanings: Meanings | None = None) -> Table:
    """The table a person reads (aggregates only: the bytes passed the output check).

    ``flagged``: the check's reasons by position of a cell in the bytes, to mark them;
    ``meanings``: the output's codes by their meanings, the code beside each (as the
    check's reasons name them: outputs/labels.py)."""
    said = meanings or Meanings("")
    gwas = _gwas_table(payload, media_type)
    if gwas is not None:
        return gwas
    try:
        cells, body = _cells(payload, media_type)
    except (UnicodeDecodeError, ValueError, KeyError):
        raise Invalid("the output's bytes cannot be read as a table; download the file "
                      "instead") from None
    cells = [{**c, "row": list(said.row([str(x) for x in c["row"]])),
              "column": said.column(str(c["column"]))} for c in cells]
    columns: dict[tuple[str, str], None] = {}
    named: dict[str, set[str]] = {}
    rows: dict[str, dict[tuple[str, str], str]] = {}
    reasons: dict[tuple[str, tuple[str, str]], str] = {}
    for position, cell in enumerate(cells[:MAX_CELLS_SHOWN]):
        key = (str(cell["column"]), str(cell["kind"]))
        columns.setdefault(key, None)
        named.setdefault(key[0], set()).add(key[1])
        label = " · ".join(str(x) for x in cell["row"]) or "(all)"
        rows.setdefault(label, {})[key] = ("suppressed" if cell["suppressed"]
                                           else _shown(cell["value"]))
        if flagged and position in flagged:
            reasons[(label, key)] = flagged[position]
    heads = [name if len(named[name]) == 1 else f"{name} ({kind})" for name, kind in columns]
    facts = [(str(k), _shown(v)) for k, v in sorted(dict(body.get("facts") or {}).items())]
    order = list(columns)
    marks = {(r, order.index(key)): reason for r, label in enumerate(rows)
             for (at, key), reason in reasons.items() if at == label}
    return Table(heads, [(label, [values.get(k, "") for k in columns])
                         for label, values in rows.items()],
                 facts, [str(n) for n in body.get("notes") or []],
                 _count_bars(cells, title), max(len(cells) - MAX_CELLS_SHOWN, 0),
                 sum(1 for c in cells if c["suppressed"]), marks,
                 row_head(said) if meanings is not None else "Row",
                 str(said.spec.get("columns") or "")
                 if said.kind == AnalysisKind.CROSSTAB else "")


def labelled_table(frame: pl.DataFrame, payload: bytes, media_type: str,
                   title: str) -> Table:
    """A released output as its labelled table (outputs/tidy.py): group variables by the
    dictionary's meanings, a column per figure; the notes and model facts from the record."""
    shown = [c for c in frame.columns if not c.endswith(CODE_SUFFIX) and c != SUPPRESSED]
    keys = [c for c in shown if frame.schema[c] == pl.String()]
    rows = []
    for row in frame.head(MAX_CELLS_SHOWN).iter_rows(named=True):
        hidden = set(str(row.get(SUPPRESSED) or "").split("; "))
        rows.append((_shown(row[shown[0]]), [
            "suppressed" if c in hidden else _shown(row[c]) for c in shown[1:]]))
    try:
        cells, body = _cells(payload, media_type)
    except (UnicodeDecodeError, ValueError, KeyError):
        cells, body = [], {}
    counted = [(" · ".join(str(r[k]) for k in keys), float(r["count"]))
               for r in frame.iter_rows(named=True)
               if "count" in frame.columns and r["count"] is not None
               and TOTAL not in {r[k] for k in keys}]
    chart = _curves(frame, keys) or (charts.bars(counted, title, counts=True)
                                     if 0 < len(counted) <= MAX_BARS
                                     and any(n for _, n in counted) else None)
    facts = [(str(k), _shown(v)) for k, v in sorted(dict(body.get("facts") or {}).items())]
    return Table([c if c in keys else heading(c) for c in shown[1:]], rows, facts,
                 [str(n) for n in body.get("notes") or []], chart,
                 max(frame.height - MAX_CELLS_SHOWN, 0),
                 sum(1 for c in cells if c.get("suppressed")), head=shown[0])


MAX_CURVES = 12  # lines one survival chart draws; more is a table's job


def _curves(frame: pl.DataFrame, keys: list[str]) -> Markup | None:
    """A life table's survival (Kaplan–Meier) or cumulative incidence (competing risks) as
    step curves, one per group (and cause), by the interval ends: the released figures
    only, a hidden one ending its line."""
    figure = next((f for f in ("survival", "incidence") if f in frame.columns), None)
    if figure is None or "end" not in frame.columns:
        return None
    names = [k for k in keys if k != "interval"]
    lines: dict[str, list[tuple[float, float | None]]] = {}
    for row in frame.iter_rows(named=True):
        name = " · ".join(str(row[k]) for k in names) or "All"
        if row["end"] is not None:
            lines.setdefault(name, []).append((float(row["end"]), row[figure]))
    if not lines or len(lines) > MAX_CURVES:
        return None
    what = "Survival" if figure == "survival" else "Cumulative incidence"
    return charts.steps(lines, f"{what} by interval", start=1.0 if figure == "survival"
                        else 0.0)


# -- what the pages say about an output -------------------------------------------------

@dataclass(frozen=True)
class RuleFound:
    """One rule's findings on an output, summed up for a list: the cells and a reason."""

    rule: str
    verdict: str
    cells: list[int]
    whole: bool  # a finding about the whole output (not one cell)
    reason: str  # the first finding's reason (the others differ only in the cell)


def by_rule(findings: list[Finding]) -> list[RuleFound]:
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        if f.verdict is not Verdict.RELEASE:
            groups.setdefault((f.rule, f.verdict.value), []).append(f)
    return [RuleFound(rule, verdict, [f.cell for f in found if f.cell is not None],
                      any(f.cell is None for f in found), found[0].reason)
            for (rule, verdict), found in groups.items()]


def approvals(view: OutputView) -> int:
    return sum(r.decision == OutputAction.APPROVE for r in view.reviews)


def still_needed(view: OutputView) -> int:
    """Approvals still needed before release (0 once it is out of review)."""
    if view.status not in AWAITING_REVIEW:
        return 0
    return max(APPROVALS_NEEDED - approvals(view), 0)


def describe(view: OutputView) -> dict[str, Any]:
    """What every page shows beside an output: its verdict and reasons, its status, reviews.
    The whole check report only to an overseer independent of it (``OutputView.report``: a
    requester whose answers were rationed, or their colleagues, see only that it waits)."""
    report = view.report
    verdict = report.verdict
    return {"view": view, "row": view.output, "verdict": verdict.value,
            "verdict_words": verdict_words(verdict), "reasons": view.reasons,
            "findings": report.findings, "rules": by_rule(report.findings),
            "status": view.status.value,
            "status_words": STATUS_WORDS[view.status], "approvals": approvals(view),
            "needed": still_needed(view), "reviews": view.reviews,
            "tone": _tone(verdict), "awaiting": view.status in AWAITING_REVIEW}


def _tone(verdict: Verdict) -> str:
    return {Verdict.RELEASE: "ok", Verdict.SUPPRESS: "ok", Verdict.REVIEW: "warn",
            Verdict.BLOCK: "bad"}[verdict]


def _titles(ctx: Access, who: Principal) -> dict[str, str]:
    return projects.titles(ctx, who)


# -- pages ------------------------------------------------------------------------------

def waiting(ctx: Access, who: Principal) -> list[Waiting]:
    """What waits for an output checker: the home page's card."""
    return [Waiting("outputs waiting for your review",
                    len(requests.list_outputs(ctx, who, queue=True)), PREFIX + "/checks")]


@router.get(PREFIX + "/checks", openapi_extra=acts(Action.OUTPUT_READ))
def queue(request: Request, who: Checker, ctx: Access, q: str = "", kind: str = "",
          page: int = 1, others_page: int = 1) -> Response:
    """Outputs waiting for review: those this checker may review, then those they may not;
    a kind and a search (output, its name, kind, project, asker) narrow both, each pages by
    itself."""
    mine = requests.list_outputs(ctx, who, queue=True)
    open_ids = {v.output.id for v in mine}
    waiting = [v for status in sorted(AWAITING_REVIEW)
               for v in requests.list_outputs(ctx, who, status=status)]
    others = sorted((v for v in waiting if v.output.id not in open_ids),
                    key=lambda v: v.output.created_at, reverse=True)
    kinds = sorted({v.output.kind for v in [*mine, *others]})
    titles = _titles(ctx, who)
    names = Names(ctx, who)

    def text(v: OutputView) -> str:
        o = v.output
        return (f"{o.id} {o.filename} {o.kind} {kind_words(o.kind)} {o.project_id} "
                f"{titles.get(o.project_id, '')} {o.requester} {names.get(o.requester) or ''}")

    def of_kind(views: list[OutputView]) -> list[OutputView]:
        return [v for v in views if not kind or v.output.kind == kind]

    keep = [("kind", kind)] if kind else []
    listed = paged(of_kind(mine), text, q, page,
                   keep=[*keep, ("others_page", str(others_page))])
    listed_others = paged(of_kind(others), text, q, others_page, param="others_page",
                          keep=[*keep, ("page", str(listed.page))])
    return render(request, "checks/queue.html", who, titles=titles, kinds=kinds, kind=kind,
                  mine=[describe(v) for v in listed.items],
                  others=[describe(v) for v in listed_others.items],
                  listed=listed, listed_others=listed_others,
                  me=who.person_id, needed_total=APPROVALS_NEEDED)


@dataclass(frozen=True)
class JobFile:
    """A file a job wrote by itself, as a checker sees it: the image, or the text."""

    image: str | None  # a data: URI (shown in <img>, which runs nothing in an SVG)
    text: str | None


def _content(ctx: Access, who: Principal, view: OutputView, meanings: Meanings | None = None
             ) -> tuple[Table | JobFile | None, list[str]]:
    """The bytes under review as a table (a job's own file: as it is), or why they are not
    shown."""
    if view.status not in AWAITING_REVIEW:
        return None, [f"the output is {STATUS_WORDS[view.status]}: checkers see its content "
                      f"only while it waits for review"]
    try:
        found = requests.content_for_review(ctx, who, view.output.id)
    except ServiceError as exc:
        return None, exc.reasons
    if view.output.kind == JOB_FILE:
        if found.media_type.startswith("image/"):
            encoded = base64.b64encode(found.payload).decode()
            return JobFile(f"data:{found.media_type};base64,{encoded}", None), []
        return JobFile(None, found.payload[:MAX_TEXT_SHOWN].decode(errors="replace")), []
    return table_of(found.payload, found.media_type, "Counts in this output",
                    flagged_positions(view), meanings), []


def flagged_positions(view: OutputView) -> dict[int, str]:
    """The check's reasons by the position of their cell in the bytes (a cell left out for
    its label is not in them), for the output checker, who reads the whole report."""
    report = view.check_report
    removed = sorted(report.removed)
    found: dict[int, list[str]] = {}
    for finding in report.findings:
        if finding.cell is None or finding.cell in report.removed \
                or finding.verdict is Verdict.RELEASE:
            continue
        position = finding.cell - sum(1 for r in removed if r < finding.cell)
        found.setdefault(position, []).append(f"{finding.rule}: {finding.reason}")
    return {p: "\n".join(reasons) for p, reasons in found.items()}


def _code(request: Request, who: Principal, view: OutputView) -> list[tuple[str, str]]:
    """The code of the job that wrote a file, file by file (for a job's own file only)."""
    job = view.output.spec.get("job") if view.output.kind == JOB_FILE else None
    if not isinstance(job, str):
        return []
    try:
        archive = request.app.state.platform.jobs.code(who, job)
    except ServiceError as exc:
        return [("(not shown)", "; ".join(exc.reasons))]
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        return [(name, files.read(name)[:MAX_TEXT_SHOWN].decode(errors="replace"))
                for name in sorted(files.namelist())]


def _output_page(request: Request, who: Principal, ctx: Access, output_id: str, *,
                 status: int = 200, errors: list[str] | None = None, comment: str = "",
                 done: str | None = None) -> Response:
    view = requests.read(ctx, who, output_id)
    mine = [r for r in view.reviews if r.reviewer == who.person_id]
    # the notice of a decision, while it is still this checker's latest word on the output
    notice = NOTICES.get(done or "") if mine and _outcome(view) == done else None
    table, hidden = _content(ctx, who, view, outputs_of(request).meanings(view.output))
    code = _code(request, who, view) if view.status in AWAITING_REVIEW else []
    may_review = output_id in {v.output.id for v in requests.list_outputs(
        ctx, who, view.output.project_id, queue=True)}
    return render(request, "checks/output.html", who, status=status,
                  o=describe(view),
                  title=_titles(ctx, who).get(view.output.project_id, ""), table=table,
                  hidden=hidden, may_review=may_review, errors=errors or [],
                  comment=comment, notice=notice, me=who.person_id,
                  spec=json.dumps(view.output.spec, indent=1, sort_keys=True),
                  min_rejection=MIN_REJECTION, code=code,
                  job_file=table if isinstance(table, JobFile) else None)


@router.get(PREFIX + "/checks/outputs/{output_id}", openapi_extra=acts(Action.OUTPUT_READ))
def output_page(request: Request, output_id: str, who: Checker, ctx: Access,
                done: str | None = None) -> Response:
    return _output_page(request, who, ctx, output_id, done=done)


@router.post(PREFIX + "/checks/outputs/{output_id}/review",
             openapi_extra=acts(Action.OUTPUT_REVIEW))
def decide(request: Request, output_id: str, who: Checker, ctx: Access, work: Work,
           decision: Annotated[str, Form()] = "",
           comment: Annotated[str, Form()] = "") -> Response:
    """Approve or reject; a rejection needs a comment the researcher can act on."""
    problems = []
    if decision not in ("approve", "reject"):
        problems.append("choose Approve or Reject")
    elif decision == "reject" and len(comment.strip()) < MIN_REJECTION:
        problems.append(f"a rejection needs a comment of at least {MIN_REJECTION} characters "
                        f"saying why: the researcher reads it to change the analysis")
    if problems:
        return _output_page(request, who, ctx, output_id, status=400, errors=problems,
                            comment=comment)
    try:
        view = work.review(who, output_id, decision == "approve", comment)
    except ServiceError as exc:
        return _output_page(request, who, ctx, output_id, status=status_of(exc),
                            errors=exc.reasons, comment=comment)
    return RedirectResponse(f"{PREFIX}/checks/outputs/{output_id}?done={_outcome(view)}",
                            status_code=303)


def _outcome(view: OutputView) -> str:
    """What the latest decision did, in NOTICES's words."""
    if view.status is OutputStatus.REJECTED:
        return "rejected"
    return "released" if view.status is OutputStatus.RELEASED else "approved"

