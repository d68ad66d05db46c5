"""Differential privacy's services: DP queries, a project's mode and budget, and DP mode's
refusal of exact analyses.

A query runs in this order, so that the budget never pays for a request that could not run
and never misses one that did: authorise (``data.analyse``, as every enclave call); check the
query against the view's schema and build its OpenDP measurement over no rows, on an engine
no release uses (errors here say nothing about the data, cost nothing, and wait on no one's
release); charge ε and δ to the ledger in one locked transaction (refused, saying what
remains, when it does not fit); prepare the rows and release through OpenDP; record how it
ended. A failure after the charge keeps the charge (see :mod:`strongroom.privacy.budget`).
Every step is in the audit log.

A project in DP mode answers open-ended questions only this way: :meth:`Privacy.refuse_exact`
is the predicate the output service calls before any exact analysis.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from strongroom.access import projects
from strongroom.access.authorize import authorize
from strongroom.access.context import Principal
from strongroom.access.permissions import Action
from strongroom.access.tokens import new_id
from strongroom.audit import EventType
from strongroom.enclave import service as enclave_service
from strongroom.enclave.workspace import Enclave, LruCache
from strongroom.errors import Conflict, Invalid, Refused, ServiceError, Unavailable, is_failure
from strongroom.outputs import timing
from strongroom.outputs.rations import Rations
from strongroom.privacy import budget, dp, mixed_access
from strongroom.privacy.budget import Budget, SpendRow
from strongroom.privacy.dp_runtime import EngineError, EnginePool, engine
from strongroom.privacy.mixed_access import MixedAccess
from strongroom.watch.limits import Gate


@dataclass(frozen=True)
class BudgetView:
    """A project's DP mode, its budget and its latest charges."""

    budget: Budget
    spends: list[SpendRow]
    # members reading its fields exactly elsewhere (shown when a mode is set)
    mixed: list[MixedAccess] = field(default_factory=list)


@dataclass(frozen=True)
class DPAnswer:
    """A released DP answer: estimates with intervals, the noise, what it cost and what is left."""

    spend_id: str
    project_id: str
    kind: str
    table: str
    epsilon: Fraction  # charged
    delta: Fraction
    epsilon_used: float  # what OpenDP's privacy map proves (≤ charged)
    confidence: float
    estimates: list[dp.Estimate]
    noise: list[dp.Noise]
    notes: list[str]
    budget: Budget  # after this charge


PLANS_KEPT = 64  # a project's engine headers kept accepted
DP_SPENT = (
    "no DP query runs until your ration of answers comes back: a query that fails once it "
    "has read the data, or runs past its time floor, is an answer of its own (its ε bounds "
    "the noisy figures, not that), and a budget of such answers this request is charged to "
    "is spent; wait for the budget to renew, nothing was charged to the project's ε")


def below(value: Fraction) -> float:
    """The largest float not above ``value``: OpenDP is never given more than was charged."""
    found = float(value)
    if Fraction(found) > value:
        found = math.nextafter(found, 0.0)
    return found


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


class Privacy:
    """The DP services over one enclave (its views and access context)."""

    def __init__(self, enclave: Enclave, *, gate: Gate, rations: Rations,
                 engine_of: Callable[[], EnginePool] = engine):
        self.enclave = enclave
        self.ctx = enclave.ctx
        self.gate = gate  # the transfer limits, held before a query reads anything
        self.rations = rations  # a release past its floor spends an answer of its asker's
        self._engine_of = engine_of
        # engine headers OpenDP has accepted, a cache per project: what one project asked
        # (or how much, evicting another's) moves no other project's answer or its time
        self._plans: dict[str, LruCache] = {}
        self._plans_lock = threading.Lock()

    def warm(self) -> None:
        """Start the DP plan engine (seconds), so that no query's time holds its start."""
        self._engine_of().warm()

    # -- mode and budget ---------------------------------------------------------------

    def budget_of(self, principal: Principal, project_id: str, spends: int = 20) -> BudgetView:
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.PROJECT_READ, project_id)
            return BudgetView(budget.read(db, project_id),
                              budget.spends(db, project_id, spends))

    def ceiling(self) -> budget.Ceiling:
        """The custodian's largest totals, read from the platform's settings."""
        settings = self.ctx.settings
        return budget.Ceiling(budget.amount(settings.dp_epsilon_ceiling, "the ε ceiling"),
                              budget.amount(settings.dp_delta_ceiling, "the δ ceiling"))

    def configure(self, principal: Principal, project_id: str, *, reason: str,
                  dp_mode: bool | None = None, epsilon: object = None,
                  delta: object = None) -> BudgetView:
        """Set DP mode and the budget's totals (the access committee's or an admin's call),
        within the platform's ceiling, with a reason kept in the audit log.

        Leaving DP mode ends the project's DP history (see :func:`budget.configure`); the
        security team is shown every change (watch raises an alert from the audit event).
        """
        if dp_mode is None and epsilon is None and delta is None:
            raise Invalid("say what to set: mode, epsilon (the total) or delta (the total)")
        if len(reason.strip()) < 10:
            raise Invalid("give the reason for this change in at least 10 characters; it is "
                          "kept in the audit log and shown to the security team")
        eps = None if epsilon is None else budget.amount(epsilon, "epsilon")
        dlt = None if delta is None else budget.amount(delta, "delta")
        if dlt is not None and dlt >= 1:
            raise Invalid("delta must be below 1 (it is a probability)")
        ceiling = self.ceiling()

        def attempt() -> tuple[Budget, Budget, list[MixedAccess]]:
            with self.ctx.transaction() as db:
                project = authorize(self.ctx, db, principal, Action.PROJECT_WRITE, project_id)
                assert project is not None
                before, after = budget.configure(
                    db, project_id, dp_mode=dp_mode, epsilon_total=eps, delta_total=dlt,
                    by=principal.person_id, now=self.ctx.clock(), reason=reason.strip(),
                    ceiling=ceiling)
                found: list[MixedAccess] = []
                if after.dp_mode != before.dp_mode:
                    db.flush()
                    found = mixed_access.mixed_access(db, project_id, projects.view(
                        db, project).members)
                    if self.ctx.settings.refuse_exact_beside_dp:
                        mixed_access.refuse(found, project_id)
                # the change's events commit with it (the audit outbox)
                self.ctx.record(EventType.DP_BUDGET_SET, principal, project_id, {
                    "reason": reason.strip(),
                    "dp_mode": after.dp_mode, "was_dp_mode": before.dp_mode,
                    "epsilon_total": budget.show(after.epsilon_total),
                    "was_epsilon_total": budget.show(before.epsilon_total),
                    "delta_total": budget.show(after.delta_total),
                    "was_delta_total": budget.show(before.delta_total),
                    "ceiling": {"epsilon": budget.show(ceiling.epsilon),
                                "delta": budget.show(ceiling.delta)},
                    **({"mixed_access": [m.as_dict() for m in found]} if found else {})})
                if after.left_at is not None and before.left_at is None:
                    self.ctx.record(EventType.DP_MODE_LEFT, principal, project_id, {
                        "reason": reason.strip(),
                        "epsilon_spent": budget.show(after.epsilon_spent),
                        "delta_spent": budget.show(after.delta_spent),
                        "answers": after.queries,
                        "note": "the answers released in DP mode stay differentially "
                                "private; exact analyses from now on pass the output check "
                                "as exact; the project cannot enter DP mode again"})
                return before, after, found

        try:
            _, after, found = budget.retrying(attempt)
        except Conflict as refusal:
            self.ctx.record(EventType.DP_BUDGET_REFUSED, principal, project_id,
                            {"reason": reason.strip(), "reasons": refusal.reasons})
            raise
        with self.ctx.transaction() as db:
            return BudgetView(after, budget.spends(db, project_id), found)

    # -- DP mode's hook on exact analyses ------------------------------------------------

    def refuse_exact(self, principal: Principal, project_id: str) -> None:
        """Refuse an exact analysis of a project in DP mode (after the usual authorisation),
        and, under ``Settings.refuse_exact_beside_dp``, one by a person who reads the same
        fields under DP elsewhere (access made before the policy was set)."""
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.DATA_ANALYSE, project_id)
            in_dp_mode = budget.read(db, project_id).dp_mode
            mixed = ([] if in_dp_mode or not self.ctx.settings.refuse_exact_beside_dp else
                     mixed_access.mixed_access(db, project_id, [principal.person_id]))
        if mixed:
            reason = (f"{mixed[0].sentence()}; the platform's policy refuses exact answers on "
                      f"fields a person also reads under differential privacy; ask the access "
                      f"committee to change the projects' fields or modes")
            self.ctx.record(EventType.ENCLAVE_ANALYSIS_REFUSED, principal, project_id,
                            {"what": "exact analysis", "reasons": [reason]})
            raise Refused(reason)
        if not in_dp_mode:
            return
        reason = (f"project {project_id} is in differential-privacy mode: exact analyses are "
                  f"refused, because enough exact answers rebuild participants' values; ask "
                  f"differentially private questions instead (POST /projects/{project_id}/"
                  f"dp/queries, client.privacy.query, `strongroom dp query {project_id} SPEC`)")
        self.ctx.record(EventType.ENCLAVE_ANALYSIS_REFUSED, principal, project_id,
                        {"what": "exact analysis", "reasons": [reason]})
        raise Refused(reason)

    # -- DP queries ----------------------------------------------------------------------

    def query(self, principal: Principal, project_id: str,
              request: Mapping[str, Any]) -> DPAnswer:
        """Answer one DP query, charging the project's budget first, on its schedule
        (outputs/timing.py ``dp_schedule``): at the first step its release reached, and its
        spend's moments are its charge's and that step's, never the release's own (how
        long a release took is outside what ε bounds). The schedule counts from the charge:
        what comes before it reads no participant's value (the plan is built over no rows),
        and an engine's start, seconds long, must not spend the floor: engines are warmed
        before it. Nothing before
        the charge waits on work that reads data: the plan has an engine of its own
        (:class:`EnginePool`); a wait for a release's engine comes after, on the schedule."""
        where = enclave_service.scope(self.enclave, principal, project_id)
        self.gate.hold(principal, project_id, Action.DATA_ANALYSE.value)
        pool = self._engine_of()
        answer: int | None = None
        try:
            query = dp.parse_query(request)
            tables = self.enclave.tables(where.project, where.fields)
            planned = dp.plan(query, {n: dict(f.schema) for n, f in tables.items()},
                              self.ctx.dictionary)
            epsilon = Fraction(query.epsilon)
            header = {**planned.engine, "epsilon": below(epsilon)}
            self._check_plan(pool, header, planned, project_id, epsilon)
            pool.warm(project_id)  # its own release engine, started before the charge
            spend_id = new_id("dps")
            spec = dict(request)
            asked, started = self.ctx.clock(), time.monotonic()
            answer = self._reserve(principal, project_id)
            charged = budget.retrying(lambda: self._charge(budget.Charge(
                project_id, principal.person_id, principal.token_id, query.kind.value,
                query.table, epsilon, Fraction(0), spec, _digest(spec)), spend_id, principal,
                asked))
        except (Invalid, Conflict, Unavailable) as refusal:
            if answer is not None:  # refused before anything was read: nothing to answer
                self._settle(answer, overran=False)
            self.ctx.record(EventType.DP_QUERY_REFUSED, principal, project_id,
                            {"kind": str(request.get("kind")), "reasons": refusal.reasons})
            raise
        try:
            rows = dp.frame(planned, tables, np.random.default_rng())
            raw = pool.call({**header, "op": "release"}, rows, owner=project_id)
            if float(raw["epsilon"]) > header["epsilon"]:  # OpenDP's own map, checked again
                raise Unavailable("OpenDP proved a privacy loss above the charge; the answer "
                                  "is withheld")
            released = dp.answer(planned, raw)
        except BaseException as exc:
            if not is_failure(exc):
                raise
            self._failed(principal, project_id, spend_id, exc,
                         self._answer_at(asked, started, answer, failed=True))
            raise Unavailable(
                f"the query failed after its ε was charged (spend {spend_id}); the charge "
                f"stays spent, and so does an answer of your ration, since a failure can "
                f"depend on the data; tell the custodian's team if it recurs") from exc
        noise = [{"statistic": n.statistic, "distribution": n.distribution, "scale": n.scale}
                 for n in released.noise]
        answered_at = self._answer_at(asked, started, answer)
        with self.ctx.transaction() as db:  # the answer and its event commit together
            budget.finish(db, spend_id, "answered",
                          {"noise": noise, "epsilon_used": released.epsilon_used},
                          answered_at)
            self.ctx.record(EventType.DP_QUERY_ANSWERED, principal, project_id, {
                "spend": spend_id, "kind": query.kind.value, "epsilon": budget.show(epsilon),
                "epsilon_used": released.epsilon_used, "noise": noise})
        return DPAnswer(spend_id, project_id, query.kind.value, query.table, epsilon,
                        Fraction(0), released.epsilon_used, query.confidence,
                        released.estimates, released.noise, released.notes, charged)

    def schedule(self) -> timing.Schedule:
        """When a DP query may be answered: published settings and the cohort's size only."""
        settings = self.ctx.settings
        return timing.dp_schedule(seconds=settings.analysis_seconds,
                                  ratio=settings.analysis_ladder,
                                  participants=self.enclave.participants())

    def _reserve(self, principal: Principal, project_id: str) -> int:
        """An answer of the asker's ration, reserved before the release reads anything:
        whether a release fails, or runs past its floor, can hang on one participant's row,
        and ε bounds the noisy figures, not that (an ε of 0.000001 is accepted). Once the
        ration is spent no query runs, and nothing is charged."""
        with self.ctx.transaction() as db:
            answer = self.rations.reserve(db, principal, project_id, "dp")
        if answer is None:
            raise Conflict(DP_SPENT)
        return answer

    def _settle(self, answer: int, overran: bool) -> None:
        if not overran:
            with self.ctx.transaction() as db:
                self.rations.give_back(db, answer)

    def _answer_at(self, asked: dt.datetime, started: float, answer: int,
                   failed: bool = False) -> dt.datetime:
        """Wait for the step of the schedule the release reached; its moment, on the
        platform's clock, from the charge's. A release that failed, or ran past its floor,
        keeps the answer reserved for it, spent (its failure, its step, is data); one
        answered within its floor gives it back, at that moment (sooner, a request the
        ration refused or let through meanwhile would time the release)."""
        schedule = self.schedule()
        took = time.monotonic() - started
        step = schedule.due(took, took)  # past the ladder's last step too: at a step
        time.sleep(max(0.0, started + schedule.at(step) - time.monotonic()))
        self._settle(answer, failed or schedule.overran(took))
        return asked + dt.timedelta(seconds=schedule.at(step))

    def _check_plan(self, pool: EnginePool, header: dict[str, Any], planned: dp.Plan,
                    project_id: str, epsilon: Fraction) -> None:
        """OpenDP builds the measurement over no rows: a plan that cannot be built costs
        nothing. Plans depend on the header alone, so a header the project asked before is
        not rebuilt. Whether it can be paid is judged every time, before the cache, and the
        cache is the project's own: keyed by the header alone, shared by every project and
        judging the budget only on a miss, a refusal's words told a researcher of another
        institution whether any project had asked that exact query (a red team's 18 of 18,
        nothing spent). The pool builds it on its plan engine, which runs no release: on a
        release's engine, a refusal for the ration waited while another project's releases
        held both, and its latency read their running time (12 of 12, nothing spent)."""
        self._affordable(project_id, epsilon)  # no engine work for what cannot be paid
        key = json.dumps(header, sort_keys=True)

        def build() -> bool:
            try:
                pool.call({**header, "op": "plan"}, planned.empty())
            except EngineError as failure:
                why = failure.message or failure.kind
                raise Invalid(f"OpenDP cannot answer this query: {why}") from None
            return True

        with self._plans_lock:
            plans = self._plans.setdefault(project_id, LruCache(PLANS_KEPT))
        plans.get(key, build)

    def _affordable(self, project_id: str, epsilon: Fraction) -> None:
        """Refuse at once a query the budget plainly cannot pay for (no engine work)."""
        with self.ctx.transaction() as db:
            budget.check_fits(budget.read(db, project_id), epsilon, Fraction(0))

    def _charge(self, request: budget.Charge, spend_id: str, principal: Principal,
                asked: dt.datetime) -> Budget:
        """Charge the query's loss at its request's moment; the charge and its event commit
        together."""
        with self.ctx.transaction() as db:
            charged = budget.charge(db, spend_id, request, asked)
            self.ctx.record(EventType.DP_QUERY_CHARGED, principal, request.project_id, {
                "spend": spend_id, "kind": request.kind, "table": request.table,
                "epsilon": budget.show(request.epsilon), "delta": "0",
                "spec_sha256": request.spec_sha256,
                "epsilon_remaining": budget.show(charged.epsilon_remaining)})
            return charged

    def _failed(self, principal: Principal, project_id: str, spend_id: str,
                exc: BaseException, at: dt.datetime) -> None:
        """Record the failure by its kind only (its message might quote the data), at its
        answer's moment (``at``)."""
        kind = exc.kind if isinstance(exc, EngineError) else type(exc).__name__
        with self.ctx.transaction() as db:
            budget.finish(db, spend_id, "failed", {"error": kind}, at)
        reasons = exc.reasons if isinstance(exc, ServiceError) else []
        self.ctx.record(EventType.DP_QUERY_FAILED, principal, project_id,
                        {"spend": spend_id, "error": kind, "reasons": reasons})
