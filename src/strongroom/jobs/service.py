"""Jobs: a researcher's own code, run next to the data, with only checked outputs let out.

A job is one action of the project's pipeline (pipeline.py) and the actions it needs. It runs
twice in the sandbox (sandbox.py): first on dummy data with exactly the project's schema, then
on the real data. What may leave, and how:

- **planned outputs**: the analyses the script asked for through :mod:`strongroom.sdc`. The
  platform runs the *dummy run's* plan itself, through the output service (the same engine,
  rules, ledger, suppression, ration and watch as any analysis), so no number in them was made
  by the job. The real run must make the same plan; a plan that depends on the data is refused.
- **the job's own files** (declared, not planned): kept with the check's best reading (the
  raw-row scanner; figures re-encoded with their metadata dropped) and sent to two output
  checkers, with the code that made them, whatever they hold.
- **nothing else**: undeclared files, internal outputs and both runs' logs stay inside.

What the researcher sees of the real run is **one fixed shape**, the same whatever the
participants' values: every declared output of the job's own, in declared order (a
placeholder where one cannot be kept), or the whole job failed with one constant reason
(:data:`REAL_FAILED`), whatever happened: a missing or unreadable output, a wall, an exit
status, a signal, another plan. The real run's walls, exit status, usage and problems are the
custodian's (the job's ``usage``, the audit log), never the researcher's. So are the dummy
run's: a run here reads a machine that earlier jobs' real runs shared (its page cache, its
load), so a dummy run that did not end well fails with one constant reason
(:data:`DUMMY_FAILED`) whatever it met, and no wall either run met or tried is shown; the
researcher meets the same dummy data at home (``strongroom jobs run ACTION --dummy``).

Whether the real run ends as the dummy run did is an answer about the data (a script can fail
on purpose when one person's value is large), so each job reserves one of the person's ration
of answers and gives it back only when both runs ended alike; a job whose runs did not is
metered so (``diverged``) and raises a ``jobs.shape`` alert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
from sqlalchemy import func, select

from strongroom.access.authorize import authorize, reasons_against
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action as Permission
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.cohort.crypto import decrypt, encrypt
from strongroom.enclave import definitions
from strongroom.enclave import service as enclave_service
from strongroom.enclave.view import schema_of
from strongroom.enclave.workspace import Enclave, LruCache, ProjectCaches
from strongroom.errors import (
    Conflict,
    DataRefusal,
    Invalid,
    NotFound,
    RateLimited,
    Refused,
    ServiceError,
    is_failure,
    log_failure,
)
from strongroom.jobs import cgroups, runner, sandbox
from strongroom.jobs import code as job_code
from strongroom.jobs import files as job_files
from strongroom.jobs.models import JobRow
from strongroom.jobs.pipeline import (
    FILE,
    Action,
    OutputKind,
    Pipeline,
    parse,
    submitted_plan,
)
from strongroom.jobs.runner import Run
from strongroom.jobs.states import ENDED, JobStatus, move
from strongroom.outputs.models import OutputRow
from strongroom.outputs.render import Format
from strongroom.outputs.requests import OutputView
from strongroom.outputs.runs import HTTP_STATUS, Meter
from strongroom.outputs.service import Answered, Outputs
from strongroom.watch.history import Observation
from strongroom.watch.service import Watch
from strongroom.watch.shapes import fingerprint

log = logging.getLogger(__name__)

FOLDER = "jobs"
# a job's own files are kept before its end is due and shown from that end: until then
# their moment is this, which no list reaches (outputs are listed from their moment on)
UNTIL_ITS_END = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
DUMMY_PARTICIPANTS = 1000
DUMMIES_KEPT = 2  # a project's dummy inputs kept made (Jobs._dummy_tables)
# the moments (seconds from its start) at which a job's end may be seen, past its expected
# time (the action's ``expected_seconds``, else the first step): a doubling ladder, so an honest
# job waits at most as long again; the step it ends at is an answer, and spends one
END_LADDER = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 5120.0, 10240.0)
LATE = ("it ran past its expected time (the action's expected_seconds in project.yaml, or "
        "the first step of the ladder if none is given, counted from its submission, with any "
        "wait for the jobs ahead of it), so it was seen to end at the next "
        "step: which step that is depends on the real data, and it was counted against your "
        "ration of answers; declare a longer expected_seconds to end at that moment instead")
# the one reason a failed real run gives, whatever happened: the same words for a missing or
# unreadable output, a wall, an exit status, a signal or another plan (each would carry bits)
REAL_FAILED = (
    "it failed on the real data: the real run did not end as it did on the dummy data (it "
    "stopped, met a limit, planned otherwise, or did not write every declared output as a "
    "plain file within the limits). What happened stays inside the enclave, whatever it was, "
    "and it was counted against your ration of answers; run it on your machine on the dummy "
    "data with 'strongroom jobs run ACTION --dummy' and make it robust to the data")
# the one reason a dummy run that did not end well gives, whatever happened: a run here reads a
# machine that earlier jobs' real runs shared (its page cache, its load), so how the dummy run
# ended (the wall it met, an output it skipped, another plan) could carry what they read; the
# researcher meets the same dummy data at home, where its log says which
DUMMY_FAILED = (
    "it failed on the dummy data here: it met a limit or a wall, did not write every output "
    "declared in project.yaml as a plain file within the limits, or planned otherwise than the "
    "plan submitted with it. Which is not said, whatever it was (a run on this shared machine "
    "can read what earlier jobs left on it), and it was counted against your ration of "
    "answers; run it on your machine with 'strongroom jobs run ACTION --dummy' (the same dummy "
    "data, the same layout), read its log and submit the plan it writes")
MAX_WAITING = 3  # a person's jobs queued or running at once (jobs run one at a time)
POOL = 256  # threads for jobs in flight, each mostly waiting its turn
MAX_PLAN = 50  # planned outputs per action (many small outputs are a channel)
ROUTE = "JOB /projects/{project_id}/jobs"
STOPPED = "the platform stopped before it ended; submit it again"
PLATFORM_FAILED = ("the platform could not run it (the custodian's team can read why in the "
                   "server log); check project.yaml, then submit it again or tell them")
LEFT_FOR = dt.timedelta(days=7)  # how far back start-up looks for a stopped job's groups


@dataclass(frozen=True)
class _Finish:
    """What is left of a job whose real run went as planned: ``keep`` its own files (before
    its end is reckoned), then, at its end, ``settle`` (kept, on time) its status and answer."""

    keep: Callable[[], bool]
    settle: Callable[[bool, bool], tuple[JobStatus, list[str]]]


class Jobs:
    """Submit and run jobs; built once in the platform's composition root."""

    def __init__(self, enclave: Enclave, outputs: Outputs, watch: Watch, *,
                 limits: sandbox.Limits | None = None,
                 dummy_participants: int = DUMMY_PARTICIPANTS,
                 end_ladder: tuple[float, ...] = END_LADDER) -> None:
        self.enclave, self.outputs, self.watch = enclave, outputs, watch
        self.ctx: AccessContext = enclave.ctx
        self.limits = limits or sandbox.Limits()
        self.dummy_participants = dummy_participants
        self.end_ladder = end_ladder
        # one job's runs at a time, beside the server's requests (a job may use the machine's
        # cores); jobs waiting for their end to be due wait beside it
        self._running = threading.Semaphore(1)
        # when each job submitted here was submitted (monotonic): its time counts from then
        self._submitted: dict[str, float] = {}
        self._closing = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # the dummy inputs last made, by what they are made of (see _dummy_tables)
        self._dummies = ProjectCaches(lambda: LruCache(DUMMIES_KEPT))  # each project's own

    def start(self, principal: Principal, project_id: str, archive: bytes,
              action: str) -> JobRow:
        """Submit a job and run it in the background (the server's way); its status is read
        with :meth:`get`."""
        row = self.submit(principal, project_id, archive, action)
        with self._lock:
            if self._pool is None:
                # a thread for every job in flight (each waits its turn on ``_running``), so
                # that none stays queued while others' jobs run: a job's status shows nothing
                # of anyone else's (at most MAX_WAITING a person)
                self._pool = ThreadPoolExecutor(max_workers=POOL, thread_name_prefix="job")
            self._pool.submit(self._background, row.id, principal)
        return row

    def _background(self, job_id: str, principal: Principal) -> None:
        try:
            self.run(job_id, principal)
        except ServiceError as refusal:  # a refusal meant for the caller (a rate, a pause)
            self._abandon(job_id, "; ".join(_reasons(refusal)))
        except BaseException as failure:  # the job is ended as refused, with the reason, below
            if not is_failure(failure):
                raise
            log_failure(log, failure, "job %s could not be run", job_id)
            self._abandon(job_id, PLATFORM_FAILED)

    def _abandon(self, job_id: str, reason: str) -> None:
        self._submitted.pop(job_id, None)  # a job that never ran keeps no moment here
        with self.ctx.transaction() as db:
            row = db.get(JobRow, job_id)
            if row is not None and JobStatus(row.status) not in ENDED:
                row.status, row.reasons = JobStatus.REFUSED.value, [reason]
                row.ended_at = self.ctx.clock()
                self.ctx.record(EventType.JOB_ENDED, "jobs", job_id, {
                    "project": row.project_id, "status": row.status, "reasons": [reason]})

    def recover(self) -> None:
        """Jobs left queued or running by a platform that stopped: ended, to be submitted
        again (nothing of theirs was released)."""
        with self.ctx.transaction() as db:
            left = list(db.scalars(select(JobRow.id).where(JobRow.status.in_(
                [JobStatus.QUEUED.value, JobStatus.RUNNING.value]))))
        for job_id in left:
            self._abandon(job_id, STOPPED)
        self._destroy_leftovers()

    def _destroy_leftovers(self) -> None:
        """Scratch a stopped platform left behind (decrypted inputs and outputs, where it
        could not be kept in a vault; an empty mount point where it was), destroyed and
        recorded. Only this store's jobs' scratch that no live process holds is touched."""
        with self.ctx.transaction() as db:
            ended = set(db.scalars(select(JobRow.id).where(JobRow.status.in_(
                [s.value for s in ENDED]), JobRow.ended_at >= self.ctx.clock() - LEFT_FOR)))
        cgroups.leftovers(ended)  # what still runs of an ended job killed first: its scratch
        found = runner.leftovers()  # is then no live process's
        with self.ctx.transaction() as db:
            ours = set(db.scalars(select(JobRow.id).where(JobRow.id.in_(
                [job_id for job_id, _ in found])))) if found else set()
        for job_id, folder in found:
            if job_id not in ours:
                continue
            held = runner.destroy(folder)
            with self.ctx.transaction():
                self.ctx.record(EventType.JOB_SCRATCH_DESTROYED, "jobs", job_id, {
                    "folder": str(folder), "files": held["files"], "bytes": held["bytes"]})
            log.warning("destroyed job %s's scratch left by a stopped platform (%s files)",
                        job_id, held["files"])

    def close(self) -> None:
        """Stop: the running job's sandboxes are ended (their scratch goes with them) and
        the job is ended as stopped, to be submitted again."""
        self._closing.set()
        sandbox.stop_all()
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, principal: Principal, project_id: str, archive: bytes,
               action: str) -> JobRow:
        """Accept a job (QUEUED) once its code and pipeline are understood; nothing runs yet.
        Every problem with project.yaml is named before anything runs."""
        self._hold(principal, project_id)
        problem = sandbox.unavailable()
        if problem:
            raise Refused(problem)
        files = job_code.unpack(archive)
        pipeline = _pipeline(files)
        pipeline.action(action)
        pipeline.check_inputs(self._held(principal, project_id))
        submitted_plan(files, action)
        with self.ctx.transaction() as db:
            waiting = db.scalar(select(func.count()).select_from(JobRow).where(
                JobRow.requester == principal.person_id,
                JobRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))) or 0
        if waiting >= MAX_WAITING:
            raise Conflict(f"you have {waiting} jobs queued or running, the most at once; "
                           "submit this one when one of them has ended")
        row = JobRow(id=new_id("job"), project_id=project_id, requester=principal.person_id,
                     action=action, status=JobStatus.QUEUED.value, created_at=self.ctx.clock(),
                     code_sha256=hashlib.sha256(archive).hexdigest(),
                     files=job_code.digests(files), pipeline=files[FILE].decode(),
                     plan=[], outputs={}, reasons=[], walls=[], usage={}, dummy_log="")
        self._seal(row, "code.zip", archive)
        with self.ctx.transaction() as db:
            db.add(row)
            self.ctx.record(EventType.JOB_SUBMITTED, principal, row.id, {
                "project": project_id, "action": action, "code_sha256": row.code_sha256,
                "files": row.files})
        self._submitted[row.id] = time.monotonic()
        return row

    def _hold(self, principal: Principal, project_id: str) -> None:
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Permission.DATA_ANALYSE, project_id)
        self.watch.hold(principal, project_id, Permission.DATA_ANALYSE.value)

    def _held(self, principal: Principal, project_id: str) -> set[str]:
        """The names a job may read: the project's tables and dataset definitions."""
        where = enclave_service.scope(self.enclave, principal, project_id)
        tables = self.enclave.tables(where.project, where.fields)
        made = definitions.list_(self.enclave.definitions_dir(project_id))
        return set(tables) | {d.name for d in made}

    # -- reading ------------------------------------------------------------------------------

    def get(self, principal: Principal, job_id: str) -> JobRow:
        with self.ctx.transaction() as db:
            row = db.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"there is no job {job_id}")
            authorize(self.ctx, db, principal, Permission.PROJECT_READ, row.project_id)
            db.expunge(row)
        return row

    def of_project(self, principal: Principal, project_id: str) -> list[JobRow]:
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Permission.PROJECT_READ, project_id)
            rows = list(db.scalars(select(JobRow).where(JobRow.project_id == project_id)
                                   .order_by(JobRow.created_at.desc())))
            for row in rows:
                db.expunge(row)
        return rows

    def code(self, principal: Principal, job_id: str) -> bytes:
        """The code a job ran, as submitted (a zip): for its project's members, and for the
        output checkers, who review its outputs beside it."""
        with self.ctx.transaction() as db:
            row = db.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"there is no job {job_id}")
            member, _ = reasons_against(self.ctx, db, principal, Permission.PROJECT_READ,
                                        row.project_id)
            if member:
                authorize(self.ctx, db, principal, Permission.OUTPUT_REVIEW, row.project_id)
            db.expunge(row)
        return self._unseal(row, "code.zip")

    # -- running --------------------------------------------------------------------------------

    def run(self, job_id: str, principal: Principal) -> JobRow:
        """Run a queued job to its end: dummy, then real, then its outputs checked.
        ``principal``: the requester as they submitted it (authorisation is read again at
        each step, so a suspension or revocation since stops the job)."""
        with self.ctx.transaction() as db:
            row = db.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"there is no job {job_id}")
            row.status = move(row.status, JobStatus.RUNNING).value
            row.started_at = self.ctx.clock()
            db.flush()
            db.expunge(row)
        finish: _Finish | None = None
        # Its time counts from its submission, and everything it shows (its end, its planned
        # outputs, a refusal) is fixed by that moment and its own schedule, never by when
        # the job ahead of it, any project's, let the runs go. Its access, its rate, its
        # ration and its planned outputs are judged and made at once; only its sandboxed
        # runs wait their turn (``_running``: one job's runs at a time, held to its end's
        # moment, so that the next job's runs start when this one was due, not when its
        # real run happened to end). A wait that takes it past its expected time is its
        # step, an answer reserved before the wait and spent, as its run's time is. Counted
        # from its turn, its end, its planned outputs' moments and the refusal of a job past
        # the ration or the rate moved with the end of another project's job ahead of it,
        # and so told that job's step, an answer about that project's data, to a researcher
        # of another institution for free (red teams: 18 of 18, 6 of 6 over HTTP, 18 of 18
        # for the planned outputs, 18 of 18 past the ration).
        submitted = self._submitted.pop(job_id, None)
        started = submitted if submitted is not None else time.monotonic()
        # the moment its time counts from, as ``started``, on the platform's clock
        begun = row.created_at if submitted is not None else self.ctx.clock()
        with ExitStack() as turn:
            try:
                status, reasons, finish = self._run(
                    row, principal, started, lambda: turn.enter_context(self._running))
            except ServiceError as refusal:
                if "real" in row.usage:
                    # raised while the platform gave the real run its inputs or read what it
                    # left: the refusal's words (and that it was one) are about the real
                    # data, so the custodian keeps them and the researcher reads the one
                    # reason, as for any failure of the real run
                    log.warning("job %s: refused once its real run started: %s", row.id,
                                "; ".join(_reasons(refusal)))
                    row.usage["real"] = {"alike": False, "problems": [
                        f"the platform refused it once the real run started: {r}"
                        for r in _reasons(refusal)]}
                    status, reasons = JobStatus.FAILED, [REAL_FAILED, *row.reasons]
                else:
                    status, reasons = JobStatus.REFUSED, _reasons(refusal)
            except BaseException as failure:
                if not is_failure(failure):
                    raise
                if "real" not in row.usage:
                    # before the real run: the platform's fault, or the job's (a folder
                    # where an output goes), ended at its own moment like any refusal, not
                    # at the failure's (after its turn, that moment was the job ahead's end:
                    # a red team read another project's step off it); what was reserved
                    # stays spent
                    log_failure(log, failure, "job %s could not be run", row.id)
                    status, reasons = JobStatus.REFUSED, [PLATFORM_FAILED]
                else:
                    # once the real run started, whatever broke may be the job's doing on
                    # the real data: the one reason, as any failure
                    log_failure(log, failure, "job %s: its real run could not be run or "
                                "read", row.id)
                    status, reasons = JobStatus.FAILED, [REAL_FAILED, *row.reasons]
            # its own files kept before its end is reckoned (keeping them takes their size's
            # time), hidden until that end: nothing after the wait below takes the data's time
            kept = finish.keep() if finish is not None else False
            expected = row.usage.get("expected_seconds")
            due, on_time = self._due(started, expected)
            # a platform closing does not wait out the job's due moment (an hour, or more)
            self._closing.wait(max(0.0, due - (time.monotonic() - started)))
            if "tries" in row.usage:  # it ran: metered as of its start, and written at its
                # due moment. A row at the clock's now said when its real run ended (the
                # rate limit's Retry-After read it back to the second, for free); one dated
                # at the start but written as the real run ended still counted in the rate
                # limit's minute from then, so the requests it let through mid-job told the
                # moment (a red team's 18 of 18 bits, BMI bisected, nothing spent). Whatever
                # a later request can read (the limits' counts, the detectors' history, their
                # alerts and suspensions) is written at a scheduled moment, not only dated.
                self._meter(row, principal, late=not on_time and "real" in row.usage,
                            at=begun)
            if self._closing.is_set():  # stopped mid-run by close(): nothing it met is news
                status, reasons = JobStatus.REFUSED, [STOPPED]
            elif finish is not None:
                status, reasons = finish.settle(kept, on_time)
            # its end, and its own files' moment, are the due moment, not the clock's now
            return self._end(row, principal, status, reasons,
                             at=begun + dt.timedelta(seconds=due))

    def _due(self, started: float, expected: float | None) -> tuple[float, bool]:
        """When the job's end is due (seconds from ``started``), and whether that moment
        answers nothing.

        A job done within its expected time (the action's ``expected_seconds``, else the
        ladder's first step) ends exactly then, whatever the real run took: the moment is the
        researcher's own number. One past it ends at the ladder's next step, and which step
        that is depends on the real run (a run that slept for a participant's value), so it
        is an answer: the caller keeps its answer spent."""
        took = time.monotonic() - started
        due = expected if expected is not None else (
            self.end_ladder[0] if self.end_ladder else None)
        if due is None:  # no ladder (tests): seen as it ends
            return took, True
        if took <= due:
            return due, True
        return next((step for step in self.end_ladder if step >= took), took), False

    def _run(self, row: JobRow, principal: Principal, started: float,
             wait_turn: Callable[[], object]) -> tuple[JobStatus, list[str], _Finish | None]:
        self._hold(principal, row.project_id)
        files = job_code.unpack(self._unseal(row, "code.zip"))
        pipeline = _pipeline(files)
        chain = pipeline.order(row.action)
        action = pipeline.actions[row.action]
        expected = (float(action.expected_seconds) if action.expected_seconds is not None
                    else None)
        # known before anything can refuse it: a job refused later (its ration spent, a wall
        # of its dummy run) ends at its own expected moment too
        row.usage["expected_seconds"] = expected
        return self._runs(row, principal, files, pipeline, chain, action, started, wait_turn)

    def _runs(self, row: JobRow, principal: Principal, files: dict[str, bytes],
              pipeline: Pipeline, chain: list[str], action: Action, begun: float,
              wait_turn: Callable[[], object]) -> tuple[JobStatus, list[str],
                                                         _Finish | None]:
        submitted = submitted_plan(files, row.action)
        where = enclave_service.scope(self.enclave, principal, row.project_id)
        with self.ctx.transaction() as db:
            answer = self.outputs.reserve_answer(db, principal, row.project_id, "job")
        if answer is None:
            raise Conflict(JOBS_SPENT)
        read: dict[str, int] = {}
        # one step after the other, nothing beside another (beside a run, the check took
        # twice as long on two cores): first the submitted plan (made on the researcher's
        # machine before any of this) through the output check, whose outputs the
        # researcher sees as each is made. They are analyses the researcher could ask for
        # by hand, each checked and rationed as such, so they need not wait for the runs.
        # Then the dummy run (its plan must be the one submitted), then the real run
        row.plan = submitted[:MAX_PLAN]
        planned = self._planned(row, principal, action, submitted)
        # from the job's start to its planned outputs checked: for the custodian
        row.usage["checked_seconds"] = round(time.monotonic() - begun, 3)
        row.outputs.update(_in_order(action, planned[0]))
        row.reasons = list(planned[1])  # what is said whatever the runs do
        wait_turn()  # the sandboxed runs, one job's at a time
        with runner.scratch(row.id) as scratch:
            dummy = runner.chain(pipeline, chain, files, scratch / "dummy",
                                 self._dummy_inputs(where),
                                 limits=self.limits, name=f"strongroom-{row.id}-dummy")
            row.dummy_log = dummy[-1].log()  # custodian-side: see submitted_plan
            row.walls = sorted({w.value for r in dummy for w in r.ending.walls})
            row.usage["tries"] = _tries(dummy)
            # its walls (the row's, as its tries) and what went wrong: the custodian's
            problem = _dummy_problem(action, submitted, dummy[-1])
            if problem:
                row.usage["dummy"] = problem
                return JobStatus.FAILED, [DUMMY_FAILED, *planned[1]], None
            # until the real run's facts are read: a platform failure from here on is told
            # as any failure of the real run (Jobs.run)
            row.usage["real"] = {"alike": False, "problems": [
                "the platform could not run or read the real run (see the server log)"]}
            real = runner.chain(pipeline, chain, files, scratch / "real",
                                self._real_inputs(where, read),
                                limits=self.limits, name=f"strongroom-{row.id}-real")
        self._keep_log(row, real)
        # the real run's facts: the custodian's (the job's usage, the audit log), never the
        # researcher's; the job's walls stay the dummy run's
        row.usage |= {"rows": read.get("rows", 0),
                      "seconds": round(sum(r.ending.seconds for r in real), 3),
                      "dummy_seconds": round(sum(r.ending.seconds for r in dummy), 3),
                      "memory_peak": max(r.ending.memory_peak for r in real),
                      "tries": _tries(dummy + real)}
        alike = [r.outcome() for r in dummy] == [r.outcome() for r in real]
        problems = _went_wrong(real, chain, submitted)
        found: list[tuple[str, job_files.Kept]] = []
        if not problems:  # read now, before the end is due: reading takes the data's time
            found, problems = self._own(row, action, submitted, real[-1])
        row.usage["real"] = {
            "alike": alike and not problems, "problems": problems,
            "walls": sorted({w.value for r in real for w in r.ending.walls}),
            "exit_code": real[-1].ending.exit_code, "signal": real[-1].ending.signal}
        if problems:
            # one fixed shape: every declared output, or this one reason, whatever it was
            # (a missing output, a wall, an exit status, another plan); the answer stays spent
            return JobStatus.FAILED, [REAL_FAILED, *planned[1]], None

        def settle(kept: bool, on_time: bool) -> tuple[JobStatus, list[str]]:
            """At its end: give the answer back only now, when all went as on the dummy
            data, its own files were all kept and the job ended when it was expected to
            (anything unforeseen keeps it spent)."""
            if not kept:
                row.usage["real"]["problems"] = ["its own files could not all be kept "
                                                 "(see the server log)"]
                row.usage["real"]["alike"] = False
                row.outputs = _in_order(action, {n: row.outputs[n] for n in planned[0]})
                return JobStatus.FAILED, [REAL_FAILED, *planned[1]]
            row.outputs = _in_order(action, row.outputs)
            reasons = list(planned[1])
            if not on_time:
                reasons.append(LATE)
            if alike and on_time:
                with self.ctx.transaction() as db:
                    self.outputs.give_back_answer(db, answer)
            return JobStatus.FINISHED, reasons
        return JobStatus.FINISHED, planned[1], _Finish(
            lambda: self._keep_own(row, principal, found), settle)

    # -- inputs ---------------------------------------------------------------------------------

    def _real_inputs(self, where: enclave_service.Scope,
                     read: dict[str, int]) -> Callable[[str, Path], None]:
        """The project's real tables and definitions (``read`` counts the rows written)."""
        tables = self.enclave.tables(where.project, where.fields)

        def write(name: str, path: Path) -> None:
            frame = tables.get(name)
            if frame is None:
                frame = enclave_service.definition(self.enclave, where.project, name)[1]
            frame.write_parquet(path)
            read["rows"] = read.get("rows", 0) + frame.height
        return write

    def _dummy_inputs(self, where: enclave_service.Scope) -> Callable[[str, Path], None]:
        """The project's tables as dummy data, and its definitions rebuilt over them."""
        tables = self._dummy_tables(where)

        def write(name: str, path: Path) -> None:
            if name not in tables:
                raise Invalid(f"the definition {name!r} cannot be built over the dummy data")
            tables[name].write_parquet(path)
        return write

    def _dummy_tables(self, where: enclave_service.Scope) -> dict[str, pl.DataFrame]:
        """:func:`enclave_service.dummy_inputs`, made once for what it is made of: the
        project (its seed), the schema of its view, the number of dummy participants, the
        enclave's limits and each definition's name, SQL and stamp (a definition saved
        again is built again). Every job's dummy run reads them, and synthesising them cost
        about as much CPU as a job's run (0.3 s of 1,000 participants). The frames are only
        ever written out (write_parquet), never changed."""
        directory = self.enclave.definitions_dir(where.project.id)
        schema = schema_of(self.enclave.sources(where.project, where.fields))
        key = (where.project.id, repr(sorted(schema.tables.items())), self.dummy_participants,
               repr(self.enclave.limits),
               tuple((d.name, d.sql, definitions.stamp(directory, d.name))
                     for d in definitions.list_(directory)))
        return self._dummies.get(where.project.id, key, lambda: enclave_service.dummy_inputs(
            self.enclave, where, self.dummy_participants))

    # -- outputs --------------------------------------------------------------------------------

    def _planned(self, row: JobRow, principal: Principal, action: Action,
                 plan: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
        """The dummy run's plan through the output service: each planned output, by name,
        and what could not be made."""
        outputs: dict[str, str] = {}
        reasons: list[str] = []
        for at, item in enumerate(plan[:MAX_PLAN]):
            name = item["output"]
            declared = action.outputs.get(name)
            if declared is None or declared.kind not in (OutputKind.TABLE, OutputKind.MODEL):
                reasons.append(f"sdc output {name!r} is not declared as a table or model "
                               f"output of action {row.action!r} in project.yaml; not run")
                continue
            fmt = Format.CSV if declared.path.endswith(".csv") else Format.JSON
            try:
                view = self._analysed(row, principal, item["analysis"], fmt,
                                      PurePosixPath(declared.path).name)
            except RateLimited as refusal:  # so would the rest be: said once, not run
                reasons += [f"sdc output {name!r}: {r}" for r in _reasons(refusal)]
                rest = [str(i["output"]) for i in plan[at + 1:MAX_PLAN]]
                if rest:
                    reasons.append(f"sdc outputs {', '.join(map(repr, rest))} were not run "
                                   "(the same rate limit); submit the job again later")
                break
            except (Invalid, DataRefusal, Refused) as refusal:
                reasons += [f"sdc output {name!r}: {r}" for r in _reasons(refusal)]
                continue
            outputs[name] = view.output.id
        if len(plan) > MAX_PLAN:
            reasons.append(f"only the first {MAX_PLAN} planned outputs were run")
        return outputs, reasons

    def _own(self, row: JobRow, action: Action, plan: list[dict[str, Any]], real: Run
             ) -> tuple[list[tuple[str, job_files.Kept]], list[str]]:
        """The files the job wrote itself, declared and not planned, read for the output
        checkers: each name with the file to keep, and what went wrong (for the custodian:
        any of it fails the job with the one constant reason, for the bytes are the real
        run's). A file that cannot be kept as written is kept as a placeholder (files.py)."""
        found: list[tuple[str, job_files.Kept]] = []
        problems = [f"output {name!r} ({path}) was not written as a plain file within the "
                    "limits" for name, path in _unwritten(action, plan, real)]
        for name, declared in _own_declared(action, plan):
            data = real.files.get(declared.path)
            if data is None:
                continue
            try:
                found.append((name, job_files.prepare(
                    self.outputs, row.project_id, data=data, path=declared.path,
                    kind=declared.kind, job={"job": row.id, "action": row.action,
                                             "output": name, "code_sha256": row.code_sha256,
                                             "script": action.script})))
            except BaseException as problem:
                if not is_failure(problem):
                    raise
                log_failure(log, problem, "job %s: output %s could not be read", row.id, name)
                problems.append(f"output {name!r} could not be read for the checkers "
                                f"({type(problem).__name__})")
        return found, problems

    def _keep_own(self, row: JobRow, principal: Principal,
                  found: list[tuple[str, job_files.Kept]]) -> bool:
        """Keep the files read by :meth:`_own`, hidden until the job's end (:meth:`_end`
        shows them at its moment): whether all of them were."""
        for name, kept in found:
            try:
                view = job_files.keep(self.ctx, principal, row.project_id, kept,
                                      shown_at=lambda: UNTIL_ITS_END)
            except BaseException as failure:
                if not is_failure(failure):
                    raise
                log_failure(log, failure, "job %s: output %s could not be kept", row.id, name)
                return False
            row.outputs[name] = view.output.id
        return True

    # -- ending -------------------------------------------------------------------------------

    def _meter(self, row: JobRow, principal: Principal, *, late: bool,
               at: dt.datetime) -> None:
        """The job as one metered request: what its real run read, its tries at the walls,
        whether its real run ended otherwise than its dummy run and whether it ended late
        (the ``jobs.shape`` detector's); the planned outputs are metered as analyses of
        their own."""
        real = row.usage.get("real")
        self.watch.observe(Observation(
            at=at, action=Permission.DATA_ANALYSE.value, route=ROUTE, status=200,
            person_id=principal.person_id, institution_id=principal.institution_id,
            project_id=row.project_id, via="job", walls=int(row.usage.get("tries", 0)),
            diverged=int(real is not None and not real["alike"]), late=int(late),
            rows_scanned=int(row.usage.get("rows", 0)),
            duration_ms=round(1000 * float(row.usage.get("seconds", 0.0)), 3)))

    def _analysed(self, row: JobRow, principal: Principal, analysis: Any, fmt: Format,
                  name: str, answered: Callable[[Answered], None] | None = None
                  ) -> OutputView:
        """A planned output through the output service, metered as the analysis request it
        stands for: one meter row, reserved at its request's moment (``watch.request``, as
        an analysis run's) and completed with what it measured once it is answered. Never a
        row of its own at the moment it was recorded: that moment, before its answer's
        step, would tell the rate limit's refusals (and their Retry-After) how long it ran."""
        meter, status = Meter(), 201
        with self.watch.request() as ticket:
            try:
                return self.outputs.analyse(principal, row.project_id, analysis, fmt,
                                            measured=meter, name=name, answered=answered)
            except ServiceError as refusal:
                status = HTTP_STATUS.get(refusal.status, 400)
                raise
            except BaseException:
                status = 500
                raise
            finally:
                digest, shape = fingerprint(analysis if isinstance(analysis, Mapping) else {})
                self.watch.observe(Observation(
                    at=self.ctx.clock(), action=Permission.DATA_ANALYSE.value,
                    route=ROUTE + " sdc", status=status, person_id=principal.person_id,
                    institution_id=principal.institution_id, project_id=row.project_id,
                    token_id=principal.token_id, source=principal.source, via="job",
                    query_digest=digest, query_shape=shape, **meter.counts), ticket)

    def _end(self, row: JobRow, principal: Principal, status: JobStatus,
             reasons: list[str], at: dt.datetime) -> JobRow:
        """The job ended, at ``at`` (its due moment, not the clock's now), its own files
        shown from then."""
        with self.ctx.transaction() as db:
            stored = db.get(JobRow, row.id)
            assert stored is not None
            stored.status = move(stored.status, status).value
            stored.ended_at = at
            for output in db.scalars(select(OutputRow).where(
                    OutputRow.id.in_(list(row.outputs.values())),
                    OutputRow.created_at == UNTIL_ITS_END)):
                output.created_at = stored.ended_at
            for column in ("dummy_log", "walls", "usage", "outputs", "plan"):
                setattr(stored, column, getattr(row, column))
            stored.reasons = reasons
            digests = {name: db.scalar(select(OutputRow.sha256).where(OutputRow.id == oid))
                       for name, oid in row.outputs.items()}
            self.ctx.record(EventType.JOB_ENDED, principal, row.id, {
                "project": row.project_id, "status": status.value, "reasons": reasons,
                "walls": row.walls, "outputs": row.outputs, "output_sha256": digests,
                "code_sha256": row.code_sha256, "usage": row.usage})
            db.flush()
            db.expunge(stored)
        return stored

    # -- sealed files -------------------------------------------------------------------------

    def _path(self, row: JobRow, what: str) -> Path:
        return self.ctx.project_dir(row.project_id) / FOLDER / f"{row.id}.{what}.srenc"

    def _seal(self, row: JobRow, what: str, data: bytes) -> None:
        path = self._path(row, what)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        project = self._project(row.project_id)
        staging = path.with_suffix(".tmp")
        staging.write_bytes(encrypt(data, self.enclave.key(project), f"job:{row.id}:{what}"))
        staging.replace(path)

    def _unseal(self, row: JobRow, what: str) -> bytes:
        project = self._project(row.project_id)
        return decrypt(self._path(row, what).read_bytes(), self.enclave.key(project),
                       f"job:{row.id}:{what}")

    def _project(self, project_id: str) -> Any:
        from strongroom.access.models import Project

        with self.ctx.transaction() as db:
            project = db.get(Project, project_id)
            if project is None:
                raise NotFound(f"there is no project {project_id}")
            db.expunge(project)
        return project

    def _keep_log(self, row: JobRow, real: list[Run]) -> None:
        self._seal(row, "log.txt", "\n".join(r.log() for r in real).encode())


JOBS_SPENT = (
    "no job runs on the real data until your ration of answers comes back: whether a job "
    "ends as it did on the dummy data is an answer about the data, and the output check has "
    "answered as many questions as it may for you within its window; wait for it to move on")


def _pipeline(files: dict[str, bytes]) -> Pipeline:
    try:
        text = files[FILE].decode()
    except UnicodeDecodeError:
        raise Invalid(f"{FILE} is not UTF-8 text") from None
    return parse(text, files)


def _own_declared(action: Action, plan: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The outputs a run writes itself, in declared order: not planned, not internal."""
    planned = {item["output"] for item in plan}
    return [(name, declared) for name, declared in action.outputs.items()
            if name not in planned and declared.kind is not OutputKind.INTERNAL]


def _unwritten(action: Action, plan: list[dict[str, Any]], run: Run) -> list[tuple[str, str]]:
    """The outputs ``run`` should have written itself and did not (as a plain file, reached
    through no link, within the limits): names and paths."""
    return [(name, declared.path) for name, declared in _own_declared(action, plan)
            if declared.path not in run.files]


def _dummy_problem(action: Action, plan: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """How the dummy run did not end well, for the custodian (the researcher reads
    :data:`DUMMY_FAILED` whatever it is); empty when it ended well."""
    if not run.ending.ok:
        return {"ended": run.ending.reason() or "it failed",
                "walls": sorted(w.value for w in run.ending.walls if w in sandbox.STOPPING)}
    if run.plan != plan:
        return {"ended": "it planned otherwise than the plan submitted with it"}
    unwritten = _unwritten(action, plan, run)
    if unwritten:
        return {"ended": "it did not write every declared output", "unwritten": unwritten}
    return {}


def _went_wrong(real: list[Run], chain: list[str], plan: list[dict[str, Any]]) -> list[str]:
    """What went wrong in the real run, for the custodian (the researcher reads
    :data:`REAL_FAILED` whatever it is)."""
    last = real[-1]
    if not last.ending.ok or len(real) != len(chain):
        return [f"action {chain[len(real) - 1]!r}: {last.ending.reason() or 'it failed'}"]
    if last.plan != plan:
        return ["it planned otherwise on the real data than on the dummy data"]
    return []


def _tries(runs: Iterable[Run]) -> int:
    """The runs' tries at the sandbox's walls, as the monitor reported them."""
    return sum(1 for r in runs for line in r.ending.tries
               if line.split("\t", 1)[0] in {w.value for w in sandbox.Wall})


def _in_order(action: Action, outputs: dict[str, str]) -> dict[str, str]:
    """``outputs`` in the order project.yaml declares them (whatever order they were made)."""
    return {name: outputs[name] for name in action.outputs if name in outputs}


def _reasons(refusal: Exception) -> list[str]:
    reasons = getattr(refusal, "reasons", None)
    return list(reasons) if reasons else [str(refusal)]


def _seed(project_id: str) -> int:
    return int.from_bytes(hashlib.sha256(project_id.encode()).digest()[:4], "big")
