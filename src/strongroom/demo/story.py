"""The demo's story: something waiting for every role when the console opens.

All of it happens through the same services the API calls, as the demo's people:

- outputs held for the output checkers' review: the first two projects' rules are tightened
  so that small cells (zeros included) go to two checkers rather than being hidden, and four
  crosstabs with structural zeros wait there: one untouched, one with a first approval
  (Kofi's) waiting for a second, one rejected with a comment, one from another project;
- Mallory, at a commercial partner, on a linkage project with the export permission and a low
  record-level limit, takes a fingerprinted extract, then asks for a bulk one over the limit:
  watch refuses it before anything is made, raises a high alert and suspends her and her
  project (never the main researchers or projects); she appeals;
- some of her extract's rows, ID column dropped and shuffled, are left beside the data
  directory as a "leaked" file for ``strongroom attribute`` and the console's attribution page;
- a project in differential-privacy mode with part of its budget spent.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import select

from strongroom.access import projects
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Person, Project
from strongroom.access.permissions import Action
from strongroom.cohort.model import EID
from strongroom.demo.world import (
    MAIN_PROJECTS,
    RED_TEAM,
    RED_TEAM_PROJECT,
    STUDY_PROJECT,
    DemoWorld,
    sign_in,
)
from strongroom.errors import Refused, Unavailable
from strongroom.extracts.service import ExtractResult, create_extract
from strongroom.platform import Platform
from strongroom.privacy import budget
from strongroom.progress import Staged
from strongroom.watch import appeals
from strongroom.watch.history import Observation
from strongroom.watch.models import AlertRow

ADMIN = "ada.admin@custodian.example"
COMMITTEE = "access@custodian.example"
CHECKER, SECOND_CHECKER = "checker@custodian.example", "kofi.checker@custodian.example"
RESEARCHER, CAMILLE = "priya@northbridge.example", "camille@lumiere.example"
# Priya's colleague on the first project: his outputs wait for the checkers there (Priya sees
# them in the project's workspace), so that the answers they spend are not hers
TOM = "tom@northbridge.example"
MALLORY = "mallory@eastgate.example"

# Mallory's extract story, for a cohort of n participants: a first extract of the first
# min(400, n/5) participants; a record-level limit of min(1,000, n/2) distinct participants in
# 30 days; then a bulk page of as many again after the first, which breaks the limit. Below
# STORY_MIN participants the risk gate would refuse pages that small, so the story is skipped.
STORY_MIN = 1_000
FIRST_EXTRACT, RECORD_LIMIT = 400, 1_000
LEAKED_ROWS = 300
EXTRACT_ROUTE = "POST /projects/{project_id}/extracts"  # as the gateway meters it


@dataclass(frozen=True)
class Held:
    """An output waiting for (or refused by) the output checkers."""

    output_id: str
    project_id: str
    what: str
    status: str


@dataclass(frozen=True)
class Story:
    """What the story left (no participant values). The extract's file went to its recipient
    and is gone; its manifest stays, and the leaked rows sit at ``leaked``."""

    held: list[Held]
    extract: ExtractResult | None = None
    alert_id: str | None = None
    suspended: list[str] = field(default_factory=list)  # "Name (per_…)", "project Name (prj_…)"
    leaked: Path | None = None
    dp_project: str | None = None
    dp_spent: str = "0"  # ε spent of dp_total
    dp_total: str = "0"
    notes: list[str] = field(default_factory=list)  # what the story had to skip, and why
    timings: dict[str, float] = field(default_factory=dict)


class People:
    """Each demo person signed in once and reused: a code's time step is good only once."""

    def __init__(self, ctx: AccessContext, world: DemoWorld):
        self.ctx, self.world = ctx, world
        self._signed: dict[str, Principal] = {}

    def __call__(self, email: str) -> Principal:
        if email not in self._signed:
            self._signed[email] = sign_in(self.ctx, self.world.login(email))
        return self._signed[email]


def tell(platform: Platform, world: DemoWorld, who: People, leaked: Path,
         participants: int, staged: Staged | None = None) -> Story:
    """Play the whole story; ``leaked`` is where the leaked file goes (outside the directory);
    ``staged``: where its stages are timed and reported (its own, if None)."""
    staged = staged or Staged()
    notes: list[str] = []
    with staged.stage("outputs for review", "outputs for the output checkers"):
        held = hold_outputs(platform, world, who)
    dp_project = world.projects[MAIN_PROJECTS + 1][0]
    with staged.stage("differential privacy", "a differentially private budget, partly spent"):
        spent = spend_budget(platform, who, dp_project, notes)
    timings = {k: staged.timings[k] for k in ("outputs for review", "differential privacy")}
    story = Story(held, dp_project=dp_project, dp_spent=spent, dp_total=DP_TOTAL, notes=notes,
                  timings=timings)
    if participants < STORY_MIN:
        notes.append(f"a cohort of {participants:,} is too small for the extract story "
                     f"(at least {STORY_MIN:,}): no extract, alert, suspension or leaked file")
        return story
    with staged.stage("extract, alert and leak", "an extract, a refused one, an alert"):
        extract, alert_id, suspended = extract_and_suspend(
            platform, who, world.projects[MAIN_PROJECTS][0], leaked, participants)
    timings["extract, alert and leak"] = staged.timings["extract, alert and leak"]
    return replace(story, extract=extract, alert_id=alert_id, suspended=suspended,
                   leaked=leaked)


# -- outputs for the output checkers ---------------------------------------------------------

# The first two projects' rules, tightened by the access team: a cell short of the threshold
# (a zero included) goes to two output checkers instead of being hidden automatically.
SMALL_CELLS_TO_PEOPLE = {"threshold": {"verdict": "review"}}
# Crosstabs whose zero cells are zeros by construction: held for the checkers by that rule.
# each participant's programme: bowel screening from 60 whatever their sex, else one offered
# to one sex only (its zeros are structural; the bowel column keeps the table worth reading:
# with two sex-only columns every figure but the zeros repeats a total, and is hidden)
SCREENING = ("SELECT pid, p31 AS sex, CASE WHEN p21003_i0 >= 60 THEN 'bowel screening' "
             "WHEN p31 = 0 THEN 'cervical screening' ELSE 'prostate examination' END "
             "AS screening FROM participants")
AGE_BANDS = ("SELECT pid, CASE WHEN p21003_i0 < 50 THEN 'under 50' WHEN p21003_i0 < 60 "
             "THEN '50 to 59' ELSE '60 and over' END AS age_band, CASE WHEN p21003_i0 >= 50 "
             "THEN 'invited' ELSE 'not yet invited' END AS bowel_screening FROM participants")
HBA1C = ("SELECT pid, CASE WHEN p30750_i0 IS NULL THEN 'not measured' WHEN p30750_i0 >= 48 "
         "THEN '48 mmol/mol or more' ELSE 'below 48 mmol/mol' END AS hba1c_band, "
         "CASE WHEN p30750_i0 >= 48 THEN 'in the diabetes range' ELSE 'not in the diabetes "
         "range' END AS hba1c_range FROM participants")


def hold_outputs(platform: Platform, world: DemoWorld, who: People) -> list[Held]:
    """Outputs for review: waiting, approved once (by Kofi), rejected (by Kofi), and another
    project's waiting one."""
    tom, camille = who(TOM), who(CAMILLE)
    main, other = world.projects[0][0], world.projects[1][0]
    for project in (main, other):
        platform.outputs.set_project_rules(who(ADMIN), project, SMALL_CELLS_TO_PEOPLE)
    platform.outputs.define(tom, main, "screening", SCREENING)
    platform.outputs.define(tom, main, "age_bands", AGE_BANDS)
    platform.outputs.define(camille, other, "hba1c", HBA1C)
    asks = [
        (tom, main, "sex by screening programme", "screening", "sex", "screening",
         "the zero cells are structural: below 60, cervical screening is offered to women "
         "only, prostate examination to men only"),
        (tom, main, "sex by screening programme, for the methods table", "screening",
         "screening", "sex", "structural zeros again (programmes are sex-specific); this "
         "orientation is the one the journal's template asks for"),
        (tom, main, "age band by bowel-screening invitation", "age_bands", "age_band",
         "bowel_screening", "the zeros follow from the invitation age of 50"),
        (camille, other, "HbA1c band by diabetes range", "hba1c", "hba1c_band",
         "hba1c_range", "both columns come from the same HbA1c value, so the empty cells "
         "are empty by definition"),
    ]
    held = []
    for person, project, what, definition, rows, columns, why in asks:
        view = platform.outputs.analyse(person, project, {
            "kind": "crosstab", "definition": definition, "rows": rows, "columns": columns})
        asked = platform.outputs.request_release(person, view.output.id, why)
        held.append(Held(view.output.id, project, what, asked.status.value))
    kofi = who(SECOND_CHECKER)
    once = platform.outputs.review(kofi, held[1].output_id, True,
                                   "structural zeros, as the justification says; a second "
                                   "checker must agree")
    held[1] = Held(held[1].output_id, held[1].project_id, held[1].what, once.status.value)
    rejected = platform.outputs.review(
        kofi, held[2].output_id, False, "this table only restates the invitation rule "
        "(age 50); tabulate the invitation against an outcome instead")
    held[2] = Held(held[2].output_id, held[2].project_id, held[2].what, rejected.status.value)
    return held


# -- the extract, the limit, the alert and the leak -----------------------------------------

def extract_and_suspend(platform: Platform, who: People, project_id: str, leaked: Path,
                        participants: int) -> tuple[ExtractResult, str, list[str]]:
    """Mallory's extract, its leaked rows, then her bulk extract refused and suspended."""
    ctx = platform.access
    mallory = who(MALLORY)
    projects.request_export(ctx, mallory, project_id,
                            "the registry links on record-level rows; aggregates cannot "
                            "validate an individual risk score")
    projects.decide_export(ctx, who(COMMITTEE), project_id, True)
    first = min(FIRST_EXTRACT, participants // 5)
    limit = min(RECORD_LIMIT, participants // 2)
    platform.watch.set_limits(who(ADMIN), "project", project_id,
                              {"record_participants": limit})
    with tempfile.TemporaryDirectory(dir=ctx.root, prefix=".demo-extract-") as tmp:
        out = Path(tmp) / f"{project_id}-extract.csv"
        made = take_extract(platform, mallory, project_id, slice(0, first), out)
        leak(out, leaked, min(LEAKED_ROWS, first * 3 // 4))
        try:  # a bulk page as large as the limit, after the first: over it, so refused
            take_extract(platform, mallory, project_id, slice(first, first + limit),
                         Path(tmp) / "bulk.csv")
        except Refused:
            pass
        else:
            raise AssertionError("the bulk extract was not refused: the story needs the limit")
    with ctx.transaction() as db:
        alert = db.scalars(select(AlertRow).where(AlertRow.project_id == project_id,
                                                  AlertRow.detector.startswith("limit."))
                           .order_by(AlertRow.first_at)).first()
        assert alert is not None, "the refused extract raised no alert"
        alert_id = alert.id
        person, project = db.get(Person, alert.person_id), db.get(Project, alert.project_id)
        assert person is not None and project is not None
        # names where a person reads, the IDs beside them for the commands
        suspended = [f"{person.name} ({alert.person_id})",
                     f"project {project.title} ({alert.project_id})"]
    appeals.appeal(ctx, mallory, alert_id,
                   "I thought the registry's full linkage had been approved as a large job; "
                   "please lift the suspension while the declaration is filed.")
    return made, alert_id, suspended


def take_extract(platform: Platform, who: Principal, project_id: str, rows: slice,
                 out: Path) -> ExtractResult:
    """What ``POST /projects/{id}/extracts`` does: watch's limit holds before anything is
    written (over it: refused, alerted, suspended), and the request is metered."""
    try:
        made = create_extract(platform.access, who, project_id, "csv", out,
                              store=platform.store, watch=platform.watch,
                              action=Action.DATA_EXPORT, rows=rows)
    except BaseException:
        _meter(platform, who, project_id, 403)
        raise
    _meter(platform, who, project_id, 200, made)
    return made


def _meter(platform: Platform, who: Principal, project_id: str, status: int,
           made: ExtractResult | None = None) -> None:
    """Meter the extract as the gateway would, so the partner's transfers show it."""
    platform.watch.observe(Observation(
        at=platform.access.clock(), action=Action.DATA_EXPORT.value, route=EXTRACT_ROUTE,
        status=status, person_id=who.person_id, institution_id=who.institution_id,
        project_id=project_id, source=who.source, via=who.via.value,
        bytes_out=made.path.stat().st_size if made else 0,
        record_rows=made.rows if made else 0, participants=made.participants if made else 0))


def leak(extract: Path, leaked: Path, rows: int) -> None:
    """Some of the extract's rows, shuffled, with the ID column dropped: what a careless
    recipient might post. ``strongroom attribute`` names the extract it came from."""
    frame = pl.read_csv(extract).drop(EID)
    order = np.random.default_rng(8).permutation(frame.height)[:rows]
    frame[order].write_csv(leaked)


# -- differential privacy ------------------------------------------------------------------

DP_TOTAL = "1"
DP_QUERIES: list[dict[str, Any]] = [
    {"kind": "count", "epsilon": "0.1"},
    {"kind": "mean", "column": "p21001_i0", "bounds": [10, 60], "epsilon": "0.2"},
    {"kind": "histogram", "column": "p31", "epsilon": "0.1"},
]


def spend_budget(platform: Platform, who: People, project_id: str, notes: list[str]) -> str:
    """DP mode with a budget of ε 1, and a few of the lead's questions charged to it."""
    platform.privacy.configure(who(COMMITTEE), project_id, dp_mode=True, epsilon=DP_TOTAL,
                               reason="approved for DP answers on the demo's cohort")
    priya = who(RESEARCHER)
    spent = "0"
    for query in DP_QUERIES:
        try:
            answer = platform.privacy.query(priya, project_id, query)
        except Unavailable as refusal:  # no DP engine: nothing is charged
            notes.append(f"no DP query was answered: {refusal.reasons[0]}")
            break
        spent = budget.show(answer.budget.epsilon_spent)
    return spent



# -- where to look -------------------------------------------------------------------------

@dataclass(frozen=True)
class Signpost:
    """Who to sign in as, for one role, and what they find in the console."""

    role: str
    email: str
    name: str
    finds: str


def signposts(world: DemoWorld, story: Story) -> list[Signpost]:
    """One per role, in the order a newcomer might visit them."""
    waiting = sum(h.status in ("under_review", "approved_once") for h in story.held)
    suspended = (f"alert {story.alert_id}: Mallory Vance's bulk extract refused over her "
                 f"project's limit, she and the project suspended, her appeal waiting"
                 if story.alert_id else "watch's alerts (the extract story was skipped)")
    leaked = (f"; attribute {story.leaked.name} to name its source" if story.leaked else "")
    study = "{1} ({0})".format(*world.projects[STUDY_PROJECT])
    finds = {
        "custodian-admin": "institutions, people, projects and field grants; Mallory's "
                           "suspension to review (lifting takes two admins); extracts",
        "access-committee": "export approvals and the differential-privacy budgets",
        "output-checker": f"the review queue: {waiting} outputs waiting, one with Kofi "
                          f"Mensah's first approval for you to second",
        "researcher": "the workspace: released and held outputs with their reasons, a DP "
                      "project's budget meter, and a project to follow the how-tos in, "
                      f"untouched, with your ration of answers: {study}",
        "security-analyst": suspended + leaked,
        "auditor": "the audit log's verification and the alerts",
    }
    out = []
    for role, what in finds.items():
        login = next(p for p in world.logins if role in p.roles)
        out.append(Signpost(role, login.email, login.name, what))
    red = world.login(RED_TEAM[0])
    out.append(Signpost("red team", red.email, red.name,
                        "the attacks on the output check, blocked and refused with the "
                        "check's reasons, and a job that tried the network, in "
                        f"{world.projects[RED_TEAM_PROJECT][1]}"))
    return out
