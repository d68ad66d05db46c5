"""Analyses submitted and polled: a long analysis (a GWAS at 500,000 takes minutes) answered
without holding a connection open for it.

A run is submitted (its id at once) and polled (its state) until it is answered. It runs
through :meth:`Outputs.analyse`, the same service as the synchronous call, so authorisation,
rate limits, the ration of answers and the output check are the service's, and the watch
meters it as the request it stands for. Who may analyse and the limits are met at
submission too (:meth:`Outputs.hold`: a refusal at once, as the synchronous call gives it),
on the submission's own meter row, which the run completes with what it read: one data
request per run.

Time is an output (outputs/timing.py), and polling must not undo that: *a run's observable
state (status, progress, the moment it shows done, its size and order) is a function of the
request, the published schedule and the time since submission only, until the scheduled
answer moment.* So:

- its schedule is fixed at submission from the request and published settings
  (:meth:`Outputs.schedule`), and it starts at once (a thread of its own, never a queue
  whose wait would hang on other runs' running times);
- while it runs, a poll reads only the row written at submission: ``running``, the step of the
  schedule the *time since submission* has reached and the elapsed share of that step
  (:func:`progress`), never anything of the real computation;
- it shows ``done`` (or ``refused``, ``failed``) only once :meth:`Outputs.analyse` has
  returned, which is at the step of the schedule its run reached (no sooner than
  ``timing.withheld_moment`` for a withheld output), exactly when the synchronous call answers.

A run is its submitter's: polled by anyone else (another person, or a token of another
project), it is not found, with the same answer as an id that does not exist. A person has
at most :data:`MAX_IN_FLIGHT` runs in flight. A run a restart lost (``recover``, at start-up)
is ``lost`` with a reason saying to submit it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strongroom.access.authorize import authorize, reasons_against
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.errors import (
    Conflict,
    NotFound,
    RateLimited,
    ServiceError,
    is_failure,
    log_failure,
)
from strongroom.outputs import timing
from strongroom.outputs.models import AnalysisRunRow
from strongroom.outputs.render import Format
from strongroom.outputs.service import Measures, Outputs
from strongroom.watch.history import Observation
from strongroom.watch.models import MeterRow
from strongroom.watch.service import RESERVED, TICKET, Ticket, Watch
from strongroom.watch.shapes import fingerprint

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4  # a person's runs not yet answered, at once
GATEWAY_SECONDS = 10.0  # at most this long for the submission's answer to be metered
ROUTE = "RUN /projects/{project_id}/analyses"  # how the watch meters a run
LOST = ("the platform restarted before this analysis was answered, so it will not be; "
        "submit it again")
FAILED = "the platform could not run this analysis (see the server log); submit it again"
# a service error's kind, as the synchronous call answers it (server/statuses.py)
HTTP_STATUS = {"invalid": 400, "unauthenticated": 401, "forbidden": 403, "not-found": 404,
               "conflict": 409, "rate-limited": 429, "unavailable": 503, "internal": 500}


class RunStatus(StrEnum):
    RUNNING = "running"  # submitted, not yet answered
    DONE = "done"  # answered with its checked output
    REFUSED = "refused"  # answered with the refusal the synchronous call would give
    FAILED = "failed"  # the platform could not run it
    LOST = "lost"  # a restart stopped it before it was answered


ENDED = frozenset({RunStatus.DONE, RunStatus.REFUSED, RunStatus.FAILED, RunStatus.LOST})


@dataclass(frozen=True)
class Progress:
    """Where the time since submission stands on the run's schedule: the ``step`` whose
    moment is next (``at`` seconds after submission) and the elapsed ``share`` of that step
    (None for an untimed schedule, answered at once). Never anything of the computation."""

    step: int
    at: float
    share: float | None


def progress(schedule: timing.Schedule, elapsed: float) -> Progress:
    """The elapsed share of the schedule's current step, ``elapsed`` seconds after
    submission: a function of the schedule and the time only."""
    if not schedule.timed:
        return Progress(0, 0.0, None)
    step = 0
    while step < timing.MAX_STEPS + 1 and schedule.at(step) < elapsed:
        step += 1
    start = 0.0 if step == 0 else schedule.at(step - 1)
    end = schedule.at(step)
    share = min(1.0, max(0.0, (elapsed - start) / (end - start)))
    return Progress(step, end, round(share, 2))


@dataclass(frozen=True)
class RunView:
    """What a poll shows: the run's row, and its progress while it runs."""

    run: AnalysisRunRow
    schedule: timing.Schedule
    progress: Progress | None  # while running
    elapsed: float


@dataclass
class Meter:
    """What an analysis measured of itself, for its one meter row (a run's, a job's planned
    output's)."""

    counts: dict[str, int] = field(default_factory=dict)

    def __call__(self, m: Measures) -> None:
        for name in (f.name for f in fields(Measures) if f.name != "cells"):
            self.counts[name] = int(getattr(m, name))


class Runs:
    """Submit analyses to run in the background and poll them; built once beside Outputs."""

    def __init__(self, outputs: Outputs, watch: Watch, *,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.outputs, self.watch = outputs, watch
        self.ctx: AccessContext = outputs.ctx
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, principal: Principal, project_id: str, request: Mapping[str, Any],
               fmt: Format = Format.JSON, name: str | None = None) -> AnalysisRunRow:
        """Start an analysis in the background and answer its run at once. Who may analyse
        the project is asked first (as the synchronous call does, before anything runs); the
        rest (limits, ration, the check) is the service's, in the run."""
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.DATA_ANALYSE, project_id)
        self._check_in_flight(principal)
        # the limits, at once, as the synchronous call meets them: its meter row reserved on
        # the submission's own (the gateway's ticket, over HTTP), which the run completes,
        # so that a run is one data request, as the synchronous call is
        gateway = TICKET.get()
        ticket = gateway if gateway is not None else Ticket()
        token = TICKET.set(ticket)
        try:
            self.outputs.hold(principal, project_id)
        finally:
            TICKET.reset(token)
        schedule = self.outputs.schedule(request if isinstance(request, Mapping) else {})
        with self._lock, self.ctx.transaction() as db:
            self._check_in_flight(principal, db)
            kind = str(request.get("kind", "")) if isinstance(request, Mapping) else ""
            row = AnalysisRunRow(
                id=new_id("run"), project_id=project_id, requester=principal.person_id,
                kind=kind[:32], status=RunStatus.RUNNING.value, submitted_at=self.ctx.clock(),
                floor=schedule.floor, ratio=schedule.ratio, reasons=[])
            db.add(row)
            self.ctx.record(EventType.ENCLAVE_ANALYSIS_RUN_SUBMITTED, principal, row.id, {
                "project": project_id, "kind": row.kind, "floor": schedule.floor,
                "ratio": schedule.ratio})
            db.flush()
            db.expunge(row)
        thread = threading.Thread(target=self._run, name=f"analysis-{row.id}", daemon=True,
                                  args=(row.id, principal, project_id, dict(request), fmt,
                                        name, ticket.row_id, gateway is not None))
        with self._lock:
            self._threads[row.id] = thread
        thread.start()  # at once: its schedule counts from its submission
        return row

    def _check_in_flight(self, principal: Principal, db: Session | None = None) -> None:
        """At most ``max_in_flight`` runs of a person not yet answered."""
        with nullcontext(db) if db is not None else self.ctx.transaction() as held:
            flying = held.scalar(select(func.count()).select_from(AnalysisRunRow).where(
                AnalysisRunRow.requester == principal.person_id,
                AnalysisRunRow.status == RunStatus.RUNNING.value)) or 0
        if flying >= self.max_in_flight:
            raise Conflict(f"you have {flying} analyses running, the most at once; wait "
                           "until one of them is answered (poll it: strongroom enclave "
                           "run RUN_ID) and submit this one then")

    def _run(self, run_id: str, principal: Principal, project_id: str,
             request: dict[str, Any], fmt: Format, name: str | None, row_id: int | None,
             answered_by_gateway: bool) -> None:
        meter = Meter()
        status, error, reasons = RunStatus.DONE, None, []
        retry: int | None = None
        output_id: str | None = None
        moments: list[dt.datetime | None] = []  # the answer's, as the output service schedules it
        started = time.perf_counter()
        try:
            # the run's limits are counted on the row its submission reserved (one request)
            with self.watch.request() as ticket:
                ticket.row_id = row_id
                try:
                    view = self.outputs.analyse(principal, project_id, request, fmt,
                                                measured=meter, name=name,
                                                answered=lambda done: moments.append(
                                                    done.moment))
                    output_id = view.output.id
                except ServiceError as refusal:
                    status, error, reasons = RunStatus.REFUSED, refusal.status, refusal.reasons
                    retry = refusal.retry_after if isinstance(refusal, RateLimited) else None
                except BaseException as failure:
                    if not is_failure(failure):
                        raise
                    log_failure(log, failure, "analysis run %s could not be run", run_id)
                    status, error, reasons = RunStatus.FAILED, "internal", [FAILED]
                took = time.perf_counter() - started
                # shown ended first, at the step analyse returned at: the watch's judging of
                # what the run measured (which takes as long as it takes) comes after
                self._end(run_id, principal, status, output_id, error, reasons, retry,
                          at=next((m for m in moments if m is not None), None))
                if answered_by_gateway:
                    self._after_gateway(ticket.row_id)
                self._meter(principal, project_id, request, meter,
                            201 if error is None else HTTP_STATUS.get(error, 400), took,
                            ticket)
        finally:
            with self._lock:
                self._threads.pop(run_id, None)

    def _after_gateway(self, row_id: int | None, timeout: float = GATEWAY_SECONDS) -> None:
        """Wait (a moment, after the run is shown ended) for the gateway to have metered the
        submission's answer on the row: the run's measures then complete it last."""
        deadline = time.monotonic() + timeout
        while row_id is not None and time.monotonic() < deadline:
            with self.ctx.transaction() as db:
                row = db.get(MeterRow, row_id)
                if row is None or row.status != RESERVED:
                    return
            time.sleep(0.05)

    def _meter(self, principal: Principal, project_id: str, request: Mapping[str, Any],
               meter: Meter, status: int, seconds: float, ticket: Any) -> None:
        """The run as one metered request (its reserved row completed), as the gateway meters
        the synchronous call."""
        digest, shape = fingerprint(request)
        self.watch.observe(Observation(
            at=self.ctx.clock(), action=Action.DATA_ANALYSE.value, route=ROUTE, status=status,
            person_id=principal.person_id, institution_id=principal.institution_id,
            project_id=project_id, token_id=principal.token_id, source=principal.source,
            via=principal.via.value, query_digest=digest, query_shape=shape,
            duration_ms=round(seconds * 1000, 3), **meter.counts), ticket)

    def _end(self, run_id: str, principal: Principal | str, status: RunStatus,
             output_id: str | None, error: str | None, reasons: list[str],
             retry: int | None, at: dt.datetime | None = None) -> bool:
        """Record how a run ended (once: a run already ended, e.g. lost, stays so), ``at``
        its answer's moment (its schedule's step, never when this thread got to it: on a
        loaded machine that is later, by however long the machine makes it)."""
        with self.ctx.transaction() as db:
            row = db.get(AnalysisRunRow, run_id)
            if row is None or row.status != RunStatus.RUNNING.value:
                return False
            row.status, row.output_id, row.error = status.value, output_id, error
            row.reasons, row.retry_after = list(reasons), retry
            row.ended_at = at if at is not None else self.ctx.clock()
            self.ctx.record(EventType.ENCLAVE_ANALYSIS_RUN_ENDED, principal, run_id, {
                "project": row.project_id, "status": row.status, "output": output_id,
                "error": error, "reasons": list(reasons)})
        return True

    # -- polling ------------------------------------------------------------------------------

    def get(self, principal: Principal, run_id: str) -> RunView:
        """A run's state, for its submitter only: anyone else is told it does not exist, in
        the same words as for an id that does not."""
        with self.ctx.transaction() as db:
            # who may poll at all (the same for every id, so it tells nothing of any run): a
            # reader of outputs, or a token that may analyse (it submitted the run)
            self._may(db, principal, None)
            row = db.get(AnalysisRunRow, run_id) if isinstance(run_id, str) else None
            if row is None or row.requester != principal.person_id or (
                    principal.token_project is not None
                    and row.project_id != principal.token_project):
                raise NotFound(f"there is no analysis run {run_id}")
            self._may(db, principal, row.project_id)
            db.expunge(row)
        schedule = timing.Schedule(row.floor, row.ratio)
        elapsed = max(0.0, (self.ctx.clock() - row.submitted_at).total_seconds())
        shown = progress(schedule, elapsed) if row.status == RunStatus.RUNNING.value else None
        return RunView(row, schedule, shown, elapsed)

    def _may(self, db: Session, principal: Principal, project_id: str | None) -> None:
        """Reading outputs, or analysing (a token scoped to analyse polls what it ran)."""
        reasons, _ = reasons_against(self.ctx, db, principal, Action.OUTPUT_READ, project_id)
        if reasons:
            authorize(self.ctx, db, principal, Action.DATA_ANALYSE, project_id)

    def wait(self, run_id: str, timeout: float = 3600.0) -> bool:
        """Wait for this process's thread of a run to end (tests, and closing)."""
        with self._lock:
            thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Before the platform closes: a moment for runs about to be answered (a run still
        going when the process stops is lost, and says so after the restart)."""
        with self._lock:
            threads = list(self._threads.values())
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- restarts -----------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Runs a stopped platform left running: lost, each saying so (at start-up, before
        any run of this process begins). Answers the ids ended."""
        with self.ctx.transaction() as db:
            left = list(db.scalars(select(AnalysisRunRow.id).where(
                AnalysisRunRow.status == RunStatus.RUNNING.value)))
        with self._lock:
            ours = set(self._threads)
        return [run_id for run_id in left if run_id not in ours
                and self._end(run_id, "outputs", RunStatus.LOST, None, "unavailable", [LOST],
                              None)]


def http_status(row: AnalysisRunRow) -> int | None:
    """The HTTP status the synchronous call would have answered (None while it runs)."""
    if row.status == RunStatus.DONE.value:
        return 201
    if row.error is None:
        return None
    return HTTP_STATUS.get(row.error, 400)

