"""From an analysis to a checked output, and from a request to a release.

The check of a result runs, in order: the per-cell rules and suppression (``check.py``), the
differencing of the cells still shown against each other and against everything already
released to the project and its institution (``ledger.py``), and the raw-row scanner over the
very bytes that would leave (``scanner.py``). The most severe finding decides. Contributor sets
go to the ledger only when an output is released, in the release's own transaction, after the
differencing is checked once more (another release may have landed meanwhile).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
import yaml
from pyroaring import BitMap
from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from strongroom import sets
from strongroom.access import projects
from strongroom.access.authorize import authorize
from strongroom.access.context import Principal
from strongroom.access.models import Institution, Person, Project
from strongroom.access.permissions import Action
from strongroom.audit import EventType
from strongroom.cohort.crypto import decrypt, encrypt
from strongroom.enclave import definitions as enclave_definitions
from strongroom.enclave import margin
from strongroom.enclave import service as enclave_service
from strongroom.enclave.analyses.spec import GwasSpec, parse_spec
from strongroom.enclave.definitions import Definition
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, PidArray, Result
from strongroom.enclave.workspace import Enclave, LruCache, MasterIds
from strongroom.errors import (
    Conflict,
    DataRefusal,
    Invalid,
    NotFound,
    Refused,
    failures_are_answers,
    is_failure,
    log_failure,
    reading_data,
)
from strongroom.genomics.store import Genotypes
from strongroom.outputs import (
    answers,
    combinations,
    contributions,
    precision,
    rations,
    requests,
    tidy,
    timing,
)
from strongroom.outputs.check import FITS, MAGNITUDES, check, hideable
from strongroom.outputs.contributions import ASCENDING, Vector, kind_of
from strongroom.outputs.labels import (
    ANY_CELL,
    GRIDS,
    Meanings,
    Namable,
    as_read,
    namable,
    own_names,
    read_as,
    shorten_long,
)
from strongroom.outputs.ledger import Ledger, Recording
from strongroom.outputs.models import OutputRow
from strongroom.outputs.overlap import (
    COUNT,
    GENOMES,
    OTHER,
    PERCENT,
    VALUES,
    bitmap,
    within_output,
)
from strongroom.outputs.overlap import RULE as WITHIN_RULE
from strongroom.outputs.rations import Rations
from strongroom.outputs.render import MEDIA_TYPE, Format, filename, render
from strongroom.outputs.rules import Rules, tighten
from strongroom.outputs.scanner import RowIndex, scan
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.suppression import where
from strongroom.outputs.tidy import TableFormat
from strongroom.outputs.verdicts import SEVERITY, CheckReport, Finding, Verdict
from strongroom.watch.limits import Gate

T = TypeVar("T")
PAST_RATION_WORKERS = 2  # runs past the ration at once (each bounded by its deadline)
PAST_RATION_NICE = 10  # their threads' priority (outputs.service._low_priority)

if TYPE_CHECKING:  # the GWAS path imports its numerics (SciPy) only when a GWAS runs
    from strongroom.outputs.genetics import Budget, GwasOutput

CELLS = "cells"


@dataclass(frozen=True)
class Contributors:
    """The shown cells' participant sets in master-ID space, and the shown statistics'
    contributions (each participant's own total), kept sealed until release."""

    labels: list[str]
    sets: list[BitMap]
    population: BitMap
    vectors: list[Vector] = field(default_factory=list)
    key: bytes = b""  # the request's margin key: release re-checks at the analysis's lines
    # what each set counts (overlap.COUNT, PERCENT, VALUES, OTHER); empty: all COUNT (kept
    # before families were: the cautious reading)
    families: list[str] = field(default_factory=list)
    # the sets that are their cells' own and that the analysis's earlier cells give by
    # construction (Cell.derived); None: kept before these were, the analysis's kind decides
    derived: list[int] | None = None
    # the ledger and the rules the check differenced against (``Outputs._mark``): a release
    # that finds them unchanged has nothing new to difference against
    checked_against: str = ""

    def to_bytes(self) -> bytes:
        blobs = [self.population.serialize(), *(s.serialize() for s in self.sets)]
        # statistics with the very same contributions (a variable's mean and SD, its
        # quantiles) are kept once: each later one names the first ("vector_same")
        first: dict[tuple[int, int], int] = {}
        same: list[int | None] = []
        values: list[bytes] = []
        for i, v in enumerate(self.vectors):
            at = first.setdefault((id(v.ids), id(v.values)), i)
            same.append(None if at == i else at)
            values.append(v.to_bytes() if at == i else b"")
        head = json.dumps({"labels": self.labels, "sizes": [len(b) for b in blobs],
                           "key": self.key.hex(), "families": self.families,
                           "derived": self.derived,
                           "checked_against": self.checked_against,
                           "vectors": [v.label for v in self.vectors],
                           "vector_kinds": [v.kind for v in self.vectors],
                           "vector_sizes": [len(b) for b in values],
                           "vector_same": same}).encode()
        return len(head).to_bytes(4, "big") + head + b"".join(blobs) + b"".join(values)

    @staticmethod
    def head(data: bytes) -> dict[str, Any]:
        """What :meth:`to_bytes` says of itself before its sets and vectors."""
        size = int.from_bytes(data[:4], "big")
        found: dict[str, Any] = json.loads(data[4:4 + size])
        return found

    @classmethod
    def from_bytes(cls, data: bytes) -> Contributors:
        head = cls.head(data)
        at, blobs = 4 + int.from_bytes(data[:4], "big"), []
        for length in head["sizes"]:
            blobs.append(BitMap.deserialize(data[at:at + length]))
            at += length
        vectors: list[Vector] = []
        labels = head.get("vectors", [])
        kinds = head.get("vector_kinds", [""] * len(labels))
        same = head.get("vector_same", [None] * len(labels))  # None: kept before it was
        for label, kind, length, like in zip(labels, kinds, head.get("vector_sizes", []),
                                             same, strict=True):
            if like is None:
                vectors.append(Vector.from_bytes(label, data[at:at + length], kind))
            else:
                vectors.append(vectors[like].named(label, kind))
            at += length
        return cls(head["labels"], blobs[1:], blobs[0], vectors,
                   bytes.fromhex(head.get("key", "")), head.get("families", []),
                   head.get("derived"), head.get("checked_against", ""))

    def cells(self) -> list[tuple[str, BitMap]]:
        return list(zip(self.labels, self.sets, strict=True))

    def kinds(self) -> list[str]:
        """Each set's family (COUNT for sets kept before families were)."""
        return self.families or [COUNT] * len(self.sets)


@dataclass(frozen=True)
class Measures:
    """What one analysis took, in counts only: for metering and the watch's detectors."""

    rows_scanned: int
    participants: int  # distinct participants behind the shown cells
    cells: int  # cells shown (not released: release is counted at download)
    # cells with k to 2k − 1 participants, shown or not: since the keyed margins
    # (enclave/margin.py) such cells are hidden by their draw, and probing is probing
    near_threshold: int
    # differencing against what was released (the ledger, values, spans), and what honest work
    # meets as often as attacks do: between the output's own cells (often missing values),
    # and combinations of three or more released groups (a sitting stepping one query through
    # its bands in a small category makes them); clashes below k itself, the few people
    # surely apart; a clash by the keyed line's draw (k to 2k − 1) is not evidence of an
    # attempt, and honest outputs a dozen people apart from earlier ones meet it often
    differencing: int
    differencing_within: int
    # 1 when the run passed its schedule's floor (outputs/timing.py): answered at a later
    # step, its time an answer; repeats are timing bisection (the ``queries.overrun``
    # detector), so every caller's meter has it: the API, the console, the jobs
    late: int = 0

    @classmethod
    def of(cls, result: Result, held: Contributors, sure: Mapping[str, int],
           threshold: int, rows: int, *, answered: bool, late: bool = False) -> Measures:
        """The output's measures. What the check saw and the output does not show (cells near
        the line, differencing found, the participants behind it) is counted only when the
        output was an answer (acted on, or near its line, and rationed): detectors suspend on
        these counts (alone, or a medium signal with two other groups agreeing), and a count
        an unrationed output adds would be read back, for free, from whether the next
        request is suspended (a red team: a cell of 2k − 1 people, released whole and
        unrationed, was metered near the line; 39 of them and a probe suspended the attacker
        only when the target was obese, 3 of 3, no answer spent). An output released whole
        is metered as reading the whole cohort (``rows``): broad, whatever its groups."""
        sizes = [len(members) for _, members in held.cells()]
        if not answered:
            return cls(rows, rows, len(sizes), 0, 0, 0, int(late))
        near = sum(1 for c in result.cells if threshold <= c.contributors.size < 2 * threshold)
        return cls(rows, len(held.population), len(sizes), near,
                   sum(sure.get(kind, 0) for kind in AGAINST_RELEASED),
                   sum(sure.get(kind, 0) for kind in (WITHIN_RULE, COMBINED)), int(late))


    @classmethod
    def refused(cls, rows: int, *, answered: bool, late: bool = False) -> Measures:
        """An output refused once it read the data: no cells, and metered as an output
        released whole is unless it was an answer (a withheld refusal, the ration spent,
        metered otherwise than a withheld output that ran told the refusal, for free, to
        the reconstruction detector's count of analyses and a suspension by corroboration)."""
        return cls(rows, 0 if answered else rows, 0, 0, 0, 0, int(late))


# the kinds of keyed decision (enclave/margin.py) that difference against released outputs
AGAINST_RELEASED = ("ledger", contributions.RULE, "span", "partition")
# the combination audit's: three or more released groups whose sum and differences give a
# small one; counted with the differencing within outputs (an alert, never a suspension):
# a sitting of honest sweeps through a small category met it three times in a day in one
# run of four of the watch simulation, and suspended that partner
COMBINED = "atom"


class Outputs:
    """The output services over one enclave: rules, ledger, and the raw-row index.

    ``gate``: the transfer limits, held before an analysis or a definition runs and before a
    download reads a byte; ``exact_guard``: raises to refuse an exact analysis (a project in
    differential-privacy mode)."""

    def __init__(self, enclave: Enclave, *, gate: Gate,
                 exact_guard: Callable[[Principal, str], None],
                 rations: Rations | None = None, genotypes: Genotypes | None = None):
        self.enclave = enclave
        self.genotypes = genotypes
        self.ctx = enclave.ctx
        self.gate = gate
        self.exact_guard = exact_guard
        self.rations = rations or Rations(self.ctx)
        self.base_rules = self.rations.base_rules
        self.ledger = Ledger(self.ctx.engine, self.ctx.key)
        self._genetics_thread_lock = threading.Lock()
        # where runs past their requester's ration do their work, each within its deadline
        # (_Timer.bounded): a run past it is left to finish here, so they are few
        self.past_ration = ThreadPoolExecutor(PAST_RATION_WORKERS,
                                              thread_name_prefix="past-ration",
                                              initializer=_low_priority)
        self._index = LruCache(1)
        # how an answer waits for its step (outputs/timing.py); tests may record instead
        self.sleep: Callable[[float], None] = time.sleep

    def hold(self, principal: Principal, project_id: str) -> None:
        """What :meth:`analyse` meets first, met ahead of it: a submitted run meets its
        authorisation and limits when it is submitted (outputs/runs.py), as the synchronous
        call does before anything runs; the run meets them again, counted once."""
        self._hold(principal, project_id)

    def _hold(self, principal: Principal, project_id: str) -> None:
        """Authorised to analyse the project, and within its limits (the gate counts the
        request only once it is known to be theirs to make)."""
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.DATA_ANALYSE, project_id)
        self.gate.hold(principal, project_id, Action.DATA_ANALYSE.value)

    # -- what the check needs --------------------------------------------------------------

    def rules_for(self, project_id: str) -> Rules:
        """The shipped rules, tightened by the project's own file if it has one."""
        return self.rations.rules_for(project_id)

    def set_project_rules(self, principal: Principal, project_id: str,
                          overrides: Mapping[str, Any]) -> Rules:
        """Tighten a project's rules (the access team's decision, audited)."""
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.PROJECT_WRITE, project_id)
        rules = tighten(self.base_rules, overrides)  # refuses any loosening, with reasons
        where = self.ctx.project_dir(project_id)
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = where / (rations.RULES_FILE + ".tmp")
        staging.write_text(yaml.safe_dump(dict(overrides), sort_keys=True))
        staging.replace(where / rations.RULES_FILE)
        self.ctx.record(EventType.PROJECT_UPDATED, principal, project_id,
                        {"output_rules": dict(overrides), "rules_version": rules.version_id})
        return rules

    def index(self) -> RowIndex:
        """The raw-row scanner's index: the cohort's records and IDs (built once per cohort
        version, in seconds) and every live project's pseudonyms (added as projects appear)."""
        with self.ctx.transaction() as db:
            live = {p.id: p for p in db.scalars(select(Project)
                                                 .where(Project.key_sealed.is_not(None)))}
        index = self._index.get(self.enclave.version(), lambda: RowIndex.build(
            self.enclave.cohort().participants, self.ctx.dictionary))
        index.ids.sync({p.id: self.enclave.pseudonym_stamp(p) for p in live.values()},
                       lambda project: self.enclave.pseudonym_map(live[project])["pid"]
                       .to_numpy())
        return index

    # -- define: a refusal once the data are read is an answer --------------------------------

    def define(self, principal: Principal, project_id: str, name: str,
               sql: str) -> Definition:
        """Build a dataset definition (enclave/service.py), its refusal rationed: whether a
        definition meets the row, time or memory limit can hang on one person's value, so an
        answer is reserved before it runs and given back unless the data refused it; once
        the ration is spent no definition runs at all. Every caller defines through here."""
        self._hold(principal, project_id)
        with self.ctx.transaction() as db:
            answer = answers.charge(db, principal.person_id, project_id, self.ctx.clock(),
                                    self._ration(db, principal.person_id), "definition")
        if isinstance(answer, answers.Spent):
            raise Conflict([DEFINITIONS_SPENT, answer.explain()])
        started = time.monotonic()
        try:
            with failures_are_answers():  # a failure once the data are read: an answer
                pending = enclave_service.stage_definition(self.enclave, principal,
                                                           project_id, name, sql)
        except BaseException as error:
            self._answer_definition(answer, started, refused=isinstance(error, DataRefusal))
            raise
        # a size verdict a margin drew (a population one participant more or fewer could
        # tip) answered a question about that participant: the answer stays spent, as an
        # output shown just over its line spends one (answers.near)
        drawn = enclave_definitions.size_drawn(pending.definition.participants)
        try:
            self._read_back(project_id, pending)
            self._answer_definition(answer, started, refused=drawn, then=pending.publish)
        except BaseException:
            pending.discard()  # never answered: it never was (gone already once published)
            raise
        return pending.definition

    def _answer_definition(self, answer: int, started: float, refused: bool,
                           then: Callable[[], object] | None = None) -> None:
        """Answer a definition asked for at ``started``. Its running time is an answer too:
        slower than the floor, the answer stays spent and it is answered at the step of the
        ladder it reached (never sooner), as analyses are (outputs/timing.py); faster, at
        the floor, like every other. ``then`` (publishing it: only now does it exist for any
        reader, list or analysis) and the answer given back come at that moment, not at the
        build's end: sooner, a second client's list or a request the ration refused or let
        through meanwhile would time the build."""
        floor = self.ctx.settings.definition_seconds
        if floor > 0:  # 0 switches the floor off; an engine's latency only adds to one
            floor += self.enclave.engine.floor_seconds
        took = time.monotonic() - started
        spent = refused or (floor > 0 and took > floor)
        if floor > 0:
            ladder = timing.Schedule(floor, self.ctx.settings.analysis_ladder)
            step = ladder.due(took, time.monotonic() - started)
            time.sleep(max(0.0, started + ladder.at(step) - time.monotonic()))
        try:
            if then is not None:
                then()
        finally:
            if not spent:
                with self.ctx.transaction() as db:
                    answers.give_back(db, answer)

    def _read_back(self, project_id: str, pending: enclave_service.PendingDefinition) -> None:
        """Open a new definition (staged), and the project's master IDs, on a thread of their
        own: the first analysis of it then waits for neither (they are built once, under the
        caches' locks), and the definition's answer, timed to its floor, waits for nothing."""
        def read() -> None:
            try:
                with self.ctx.transaction() as db:
                    project = db.get(Project, project_id)
                if project is not None:
                    try:
                        self.enclave.warm_definition(project, pending.staged)
                    except (NotFound, FileNotFoundError):  # published already (no floor)
                        self.enclave.definition(project, pending.definition.name)
                    self.enclave.master_ids(project)
            except BaseException as failure:
                if not is_failure(failure):
                    raise
                # the first analysis opens them anyway, and says what failed
                log_failure(logging.getLogger(__name__), failure,
                            "reading back the definition %r of %s failed",
                            pending.definition.name, project_id)

        threading.Thread(target=read, name="strongroom-definition", daemon=True).start()

    # -- analyse → checked output ----------------------------------------------------------

    def analyse(self, principal: Principal, project_id: str, request: Mapping[str, Any],
                fmt: Format = Format.JSON,
                measured: Callable[[Measures], None] | None = None,
                name: str | None = None,
                answered: Callable[[Answered], None] | None = None) -> requests.OutputView:
        """Run, check and record an analysis; ``measured`` is told what it took (for watch);
        ``name``: the output's file name (a job's declared path), if not the kind's own;
        ``answered`` is told the step of its schedule it was answered at.

        Time is an output (outputs/timing.py): once the request is authorised and within its
        limits, it is answered at the first step of its schedule (a floor, then a doubling
        ladder, fixed by the request and published settings) that its run has reached, and a
        run past its floor spends an answer (reserved before it runs, given back in the
        recording transaction if it was within the floor, or if the output is an answer
        already: one answer, not two). A withheld output is answered no sooner than
        ``Settings.withheld_seconds`` after the request either, so the check's running time
        answers nothing."""
        timer = _Timer(self, principal, project_id, request, time.monotonic())
        view: requests.OutputView | None = None
        try:
            if isinstance(request, Mapping) and request.get("kind") == AnalysisKind.GWAS.value:
                view = self._gwas(principal, project_id, request, fmt, measured, timer, name)
            else:
                view = self._analyse(principal, project_id, request, fmt, measured, name,
                                     timer)
        finally:
            # however it ends (an output, a refusal of its text, an error), at its step
            done = timer.finish(view is not None and view.check_report.withheld)
            if answered is not None and done is not None:
                answered(done)
        assert view is not None
        # access judged again at the answer's moment, which the schedule fixes, and not when
        # the output was recorded, a moment its work sets: a project's or a training's expiry
        # at midnight, or a pause, falling between a quick run's recording and a slow one's
        # refused the slow one at its own step and withheld the quick one (a red team's 18 of
        # 18, nothing spent). The output stays recorded, for the checkers; its requester,
        # refused now, cannot read it.
        with self.ctx.transaction() as db:
            authorize(self.ctx, db, principal, Action.DATA_ANALYSE, project_id)
        return view

    def schedule(self, request: Mapping[str, Any]) -> timing.Schedule:
        """When an analysis request may be answered (outputs/timing.py): from the request,
        the settings and the published sizes of the cohort and the genotype store."""
        seconds = self.ctx.settings.analysis_seconds
        ratio = self.ctx.settings.analysis_ladder
        if seconds <= 0:
            return timing.Schedule(0.0, ratio)
        held = self.genotypes.current() if (
            self.genotypes is not None and request.get("kind") == AnalysisKind.GWAS.value
        ) else None
        return timing.schedule_for(request, seconds=seconds, ratio=ratio,
                                   participants=self.enclave.participants(),
                                   variants=int(held.variants) if held is not None else 0,
                                   latency=self.enclave.engine.floor_seconds)

    def _analyse(self, principal: Principal, project_id: str, request: Mapping[str, Any],
                 fmt: Format, measured: Callable[[Measures], None] | None,
                 named: str | None = None, timer: _Timer | None = None
                 ) -> requests.OutputView:
        self._hold(principal, project_id)
        if timer is not None:
            timer.begin()
        self.exact_guard(principal, project_id)
        rules = self.rules_for(project_id)
        # every "is this group held by k?" of this request is drawn at k plus a margin keyed
        # by the request's lineage (enclave/margin.py): in the enclave and in the check
        where = enclave_service.scope(self.enclave, principal, project_id)
        key = enclave_service.decision_key(self.enclave, where.project, request)
        # the statistics' contributions are packed while the output is rendered, scanned and
        # recorded (each GLM's five vectors took a tenth of a second, one after another)
        with ThreadPoolExecutor(2, thread_name_prefix="pack") as pool:
            def work() -> _Made:
                """Everything that reads the data or what was made of it, up to the record
                (the run, the check, the labels, the rendering, the raw-row scan)."""
                with margin.keyed(key):
                    scope, result = enclave_service.analyse(
                        self.enclave, principal, project_id, request,
                        threshold=rules.threshold, where=where)
                    # before anything is rendered or compared
                    precision.apply(result, rules.threshold,
                                    enclave_service.rounding(self.enclave, scope.project),
                                    rules.count_base, rules.fact_counts)
                    shorten_long(result)
                    _fits(result, fmt)
                    with self.ctx.transaction() as db:
                        institution = _institution(db, scope.project)
                    # the reasons name cells by the meanings of their codes (labels.py)
                    meanings = self._meanings(project_id, result.kind.value, request,
                                              self.ctx.clock())
                    with read_as(meanings):
                        report, held, findings, sure = self._checked(
                            result, rules, institution, project_id,
                            self.enclave.master_ids(scope.project), key)
                    sayable = (namable(result, rules.threshold, report.removed, meanings)
                               | _own(request))
                packed = contributions.pack_ahead(held.vectors, pool)
                payload = render(result, report.suppressed, fmt, report.removed)
                name = output_name(named, request, fmt)
                findings += scan(self.index(), payload, name)
                return _Made(scope, result, report, held, findings, sure, sayable, packed,
                             payload, name)
            try:
                # a failure anywhere there, whatever its kind, is an answer, rationed as one
                with failures_are_answers():
                    made = _bounded(timer, work)
            except DataRefusal as refusal:
                refused = self._refused(principal, project_id, request, fmt, refusal, timer,
                                        named)
                if measured is not None:  # a run cut off or refused once it read the data
                    measured(Measures.refused(self.enclave.participants(),
                                              answered=refused.output.acted,
                                              late=_late(timer, refused.output.acted)))
                return refused
            where, result, report, held = made.scope, made.result, made.report, made.held
            findings, sure, sayable, packed = made.findings, made.sure, made.sayable, made.packed
            payload, name = made.payload, made.name
            # a group shown just over the line answered as much as one hidden below it
            acted = (answers.acted(CheckReport.worst(findings), report.suppressed)
                     or answers.near(map(len, held.sets), rules.threshold))
            view = requests.record_output(
                self.ctx, principal, project_id, payload=payload, media_type=MEDIA_TYPE[fmt],
                filename=name, report=_settled(findings, report, None, sayable),
                kind=result.kind, spec=dict(request),
                settle=self._settler(principal, project_id, findings, report, acted,
                                     sayable, timer),
                shown_at=timer.shown_at if timer is not None else None, authorized=True)
            packed()
        self._keep(where.project, view.output.id, held)
        if measured is not None:
            measured(Measures.of(result, held, sure, rules.threshold,
                                 self.enclave.participants(), answered=view.output.acted,
                                 late=_late(timer, view.output.acted)))
        return view

    def _gwas(self, principal: Principal, project_id: str, request: Mapping[str, Any],
              fmt: Format, measured: Callable[[Measures], None] | None,
              timer: _Timer | None = None, named: str | None = None
              ) -> requests.OutputView:
        """A GWAS over the sealed genotypes: the genetics rules withhold variants, then the
        ordinary check (a fit per trait, its vectors differenced against every release), the
        raw-row scan and the ration, as for any analysis. Needs the project's genotype grant."""
        from strongroom.genomics.study import gwas_refused, run_gwas
        from strongroom.outputs import genetics

        self._hold(principal, project_id)
        if timer is not None:
            timer.begin()
        self.exact_guard(principal, project_id)
        with self.ctx.transaction() as db:
            granted = projects.has_genotypes(db, project_id)
        if not granted:
            raise Refused(f"project {project_id} holds no genotype grant; the custodian grants "
                          "it (PUT /projects/{id}/genotypes) once the access committee has "
                          "approved genetic analyses")
        genotypes = self.genotypes
        if genotypes is None or genotypes.current() is None:
            raise Conflict("this Strongroom holds no genotypes yet; a custodian ingests them "
                           "(strongroom genotypes ingest)")
        rules = self.rules_for(project_id)
        where = enclave_service.scope(self.enclave, principal, project_id)
        body = dict(request)
        defined = body.pop("definition", None)
        if not isinstance(defined, str):
            raise Invalid("name the dataset definition to analyse: \"definition\": \"<name>\"")
        spec = parse_spec(body)
        assert isinstance(spec, GwasSpec)
        key = enclave_service.decision_key(self.enclave, where.project, request)
        # one GWAS at a time reads and charges the membership budget: two at once would each
        # spend what the other spends (the red team: 8 at once, 8 budgets)
        with self._genetic_turn(timer) as ours:
            with margin.keyed(key):
                def work() -> tuple[GwasOutput, CheckReport, Contributors, list[Finding],
                                    dict[str, int], bytes, str, genetics.RunningBudget]:
                    """The run, the genetics rules, the check, the rendering and the scan;
                    and first what they read (the definition's rows, the pseudonyms), whose
                    caches another project's build can hold: within the run's deadline."""
                    if not ours:  # another GWAS's turn outlasted this run's deadline
                        assert timer is not None
                        raise timer.too_long()
                    _, frame = enclave_service.definition(self.enclave, where.project, defined)
                    pseudonyms = self.enclave.pseudonym_map(where.project)
                    ledger = genetics.RunningBudget(self._genetic_budget(), pseudonyms)
                    run = run_gwas(spec, frame, pseudonyms, genotypes, rules.threshold,
                                   rules.genetics_max_residual_share,
                                   rules.regression_max_leverage,
                                   cluster=self.enclave.engine.genotype_cluster())
                    with reading_data():  # what the rules make of the data is one too
                        out = genetics.prepare(
                            run, rules, enclave_service.rounding(self.enclave, where.project),
                            ledger, enclave_service.figure_secret(self.enclave,
                                                                  where.project))
                    out.result.spec = dict(request)
                    # the size limit, met on the whole output before the check: what the
                    # genetics rules let through, and so the bytes, hang on the data, so a
                    # GWAS too large to keep is an answer, never a free error
                    whole = genetics.render(out, fmt, hidden=False)
                    _gwas_fits(whole)
                    with self.ctx.transaction() as db:
                        institution = _institution(db, where.project)
                    report, held, findings, sure = self._checked(
                        out.result, rules, institution, project_id,
                        self.enclave.master_ids(where.project), key)
                    blocked = bool(findings) and CheckReport.worst(findings) is Verdict.BLOCK
                    payload = genetics.render(out, fmt, hidden=True) if blocked else whole
                    name = output_name(named, request, fmt)
                    findings += scan(self.index(), genetics.render(
                        out, fmt, hidden=blocked, annotated=False), name)
                    # how many variants the genetics rules withheld, and why, are figures of
                    # the analysed group: said with an output the check let through, never
                    # with one stopped, by the check or by the genetics rules themselves (a
                    # project's genetics verdict review or block): genetics.unsaid
                    stopped = SEVERITY[CheckReport.worst([*findings, *out.findings])] >= \
                        SEVERITY[Verdict.REVIEW]
                    findings += [genetics.unsaid(rules)] if stopped else out.findings
                    return out, report, held, findings, sure, payload, name, ledger
                try:
                    # a failure anywhere there, whatever its kind, is an answer, rationed as one
                    with failures_are_answers():
                        out, report, held, findings, sure, payload, name, ledger = \
                            _bounded(timer, work)
                except DataRefusal:
                    # one reason, whichever of the run's checks (or the platform) refused it:
                    # which it was can hang on one participant's value, and the refusal is
                    # one rationed answer, one bit
                    one = DataRefusal(gwas_refused(spec, rules.threshold,
                                                   rules.genetics_max_residual_share,
                                                   rules.regression_max_leverage))
                    refused = self._refused(principal, project_id, request, fmt, one, timer,
                                            named)
                    if measured is not None:  # as an analysis refused by the data is
                        measured(Measures.refused(self.enclave.participants(),
                                                  answered=refused.output.acted,
                                                  late=_late(timer, refused.output.acted)))
                    return refused
            acted = (answers.acted(CheckReport.worst(findings), report.suppressed)
                     or answers.near(map(len, held.sets), rules.threshold))
            view = requests.record_output(
                self.ctx, principal, project_id, payload=payload, media_type=MEDIA_TYPE[fmt],
                filename=name, report=_settled(findings, report, None), kind=AnalysisKind.GWAS,
                spec=dict(request), settle=self._settler(principal, project_id, findings, report,
                                                         acted, timer=timer),
                shown_at=timer.shown_at if timer is not None else None, authorized=True)
            self._keep(where.project, view.output.id, held)
            if measured is not None:  # metered like any analysis: the people it read
                measured(Measures.of(out.result, held, sure, rules.threshold,
                                     self.enclave.participants(), answered=view.output.acted,
                                     late=_late(timer, view.output.acted)))
            # the membership budget is spent when the output exists, released or not (cautious)
            self._save_genetic_budget(ledger.earlier + ledger.added)
            return view

    def _genetic_budget(self) -> Budget:
        """What every GWAS released on this platform spent of the membership budget, by group
        of people (store eids): one person's genotypes are theirs whichever project's release
        describes them, and a closed project's releases stay out in the world. Kept under the
        platform's key, not a project's, so closing a project forgets nothing. Before there
        was one ledger, each project kept its own: those are read until the first save."""
        from strongroom.outputs import genetics

        path = self.ctx.root / genetics.BUDGET_FILE
        if path.exists():
            return genetics.budget_from(decrypt(path.read_bytes(), self.ctx.key,
                                                genetics.BUDGET_FILE))
        with self.ctx.transaction() as db:
            projects_ = list(db.scalars(select(Project).where(Project.key_sealed.is_not(None))))
        earlier: Budget = []
        for project in projects_:
            legacy = self.ctx.project_dir(project.id) / genetics.SPENT_FILE
            if legacy.exists():
                earlier += genetics.budget_from(decrypt(legacy.read_bytes(),
                                                        self.enclave.key(project),
                                                        genetics.SPENT_FILE))
        return earlier

    def _save_genetic_budget(self, budget: Budget) -> None:
        from strongroom.outputs import genetics

        path = self.ctx.root / genetics.BUDGET_FILE
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = path.with_suffix(".tmp")
        staging.write_bytes(encrypt(genetics.budget_bytes(budget), self.ctx.key,
                                    genetics.BUDGET_FILE))
        staging.replace(path)

    @contextmanager
    def _genetic_turn(self, timer: _Timer | None) -> Iterator[bool]:
        """The membership budget, held by one GWAS from reading it to charging it: a thread
        lock for this process and an advisory file lock for any other (the CLI, a second
        server). Yields whether the turn is this run's. Waiting for it is part of the run's
        time, so another GWAS's running time, any project's, says nothing for free: within
        the ration a wait that takes the run past its floor spends an answer, as the run's
        own time would; past it, the turn is waited for only until the run's deadline
        (``_Timer.left``), and a run that did not get it in time is refused as one that ran
        too long is, answered at the one withheld moment. (Waited for without a bound, a
        requester past the ration was answered at the step that another project's GWAS,
        within its own floor, released the budget: its running time, which its floor hides
        from its own requester, read right 17 times of 18, nothing spent.)"""
        from strongroom.outputs import genetics

        path = self.ctx.root / genetics.BUDGET_FILE
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        left = timer.left() if timer is not None else None
        until = None if left is None else time.monotonic() + left
        if not self._genetics_thread_lock.acquire(timeout=-1 if left is None else left):
            yield False
            return
        try:
            with open(path.with_suffix(".lock"), "a") as handle:
                if not _flock_by(handle, until):
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            self._genetics_thread_lock.release()

    def _refused(self, principal: Principal, project_id: str, request: Mapping[str, Any],
                 fmt: Format, refusal: DataRefusal,
                 timer: _Timer | None = None, named: str | None = None
                 ) -> requests.OutputView:
        """An analysis refused once it had read the data, kept as a blocked output: whether
        it fails can answer a question about one person (an outcome constant but for them,
        a follow-up too long only if their value is large), so the refusal is an answer,
        rationed like any output the check acted on, and withheld once the ration is spent."""
        kind = AnalysisKind(str(request.get("kind")))
        rules = self.rules_for(project_id)
        empty = render(Result(kind, dict(request), [], notes=[
            "the analysis was refused while it ran; the check's findings say why"]), set(), fmt)
        findings = [Finding(REFUSED_RULE, Verdict.BLOCK, reason) for reason in refusal.reasons]
        report = CheckReport(Verdict.BLOCK, findings, rules_version=rules.version_id,
                             thresholds=rules.as_dict())
        return requests.record_output(
            self.ctx, principal, project_id, payload=empty, media_type=MEDIA_TYPE[fmt],
            filename=output_name(named, request, fmt), report=report, kind=kind,
            spec=dict(request), settle=self._settler(principal, project_id, findings, report,
                                                     True, _own(request), timer),
            shown_at=timer.shown_at if timer is not None else None, authorized=True)

    def _settler(self, principal: Principal, project_id: str, findings: Sequence[Finding],
                 report: CheckReport, acted: bool,
                 named: Namable | None = None,
                 timer: _Timer | None = None) -> requests.Settle:
        """Read and spend the budgets of answers where the output is recorded (one
        transaction, under their locks: the person's, the project's, the institutions'):
        the report to keep, and whether it is an answer. ``timer``: the run's schedule, whose
        answer reserved for time is settled first (outputs/timing.py)."""
        def settle(db: Session) -> tuple[CheckReport, bool]:
            if timer is not None:
                timer.settle(db, acted)
            # past the ration at its begin, withheld whatever the budgets say now: read again
            # at the recording, a moment the run's work sets, a budget given back meanwhile
            # (a definition's at its floor, a day's at midnight) released a slow run's output
            # at its own step and withheld a quick one's (a red team's 18 of 18, nothing spent)
            spent = timer.spent if timer is not None and timer.unreserved else (
                # the run's reservation, held until its answer, is not counted against it
                answers.rationed(db, principal.person_id, project_id, self.ctx.clock(),
                                 self._ration(db, principal.person_id),
                                 excluding=timer.returning if timer else None))
            kept = _settled(findings, report, spent, named)
            answer = acted and spent is None
            if timer is not None:
                timer.withheld = kept.withheld
                if answer:  # the output is the answer its run reserved: charged in its place
                    timer.replaced(db)
            return kept, answer
        return settle

    def reserve_answer(self, db: Session, principal: Principal, project_id: str,
                       what: str, at: dt.datetime | None = None) -> int | None:
        """Spend one of the person's answers ahead of work whose outcome would be one (a job
        whose real run may end otherwise than its dummy run): its id, or None if spent.
        ``at``: the moment it is dated, if not now."""
        return self.rations.reserve(db, principal, project_id, what, at)

    def give_back_answer(self, db: Session, answer_id: int) -> None:
        self.rations.give_back(db, answer_id)

    def _ration(self, db: Session, person_id: str) -> answers.Ration:
        return self.rations.of(db, person_id)

    def download(self, principal: Principal, output_id: str,
                 measured: Callable[[str, int], None] | None = None) -> requests.Download:
        """A released output's bytes, within the project's limits on cells and bytes released
        (held here, before a byte is read, for every caller); ``measured`` is told the project
        and the cells it gives away (for the meter)."""
        def within_limits(row: OutputRow) -> None:
            # a job's own file (a figure, its own table) has no checked cells: its bytes count
            cells = (0 if row.kind == AnalysisKind.JOB_FILE.value
                     else self.shown_cells(row.project_id, row.id))
            self.gate.hold(principal, row.project_id, Action.OUTPUT_DOWNLOAD.value,
                           cells=cells, bytes_out=row.size)
            if measured is not None:
                measured(row.project_id, cells)

        return requests.download(self.ctx, principal, output_id, within_limits)

    def table(self, principal: Principal, output_id: str, fmt: TableFormat,
              measured: Callable[[str, int], None] | None = None) -> requests.Download:
        """A released output as a labelled table (outputs/tidy.py): a download like any other,
        held to the same limits and recorded the same way, of the same checked figures."""
        row = requests.read(self.ctx, principal, output_id).output
        if row.kind == AnalysisKind.JOB_FILE.value:
            raise Invalid(f"output {output_id} is a file a job wrote; it has no table form: "
                          f"download it as it is (GET /outputs/{output_id}/download)")
        got = self.download(principal, output_id, measured)
        frame = self.readable(row, got.payload)
        stem = row.filename.rsplit(".", 1)[0]
        return requests.Download(tidy.encode(frame, fmt), tidy.MEDIA_TYPE[fmt],
                                 f"{stem}.{fmt.value}")

    def readable(self, row: OutputRow, payload: bytes) -> pl.DataFrame:
        """An output's checked bytes as a labelled table; the caller has authorised reading
        them (a download, or an output checker's review)."""
        if row.kind == AnalysisKind.GWAS.value:
            from strongroom.outputs.genetics import read_table
            return read_table(payload, row.media_type)
        naming = enclave_service.naming(self.enclave, row.project_id, row.spec, row.created_at)
        if row.media_type == MEDIA_TYPE[Format.CSV]:
            return tidy.tidy_csv(payload, row.spec, row.kind, naming.labels, naming.keys)
        return tidy.tidy(tidy.record_of(payload), naming.labels, naming.keys)

    def meanings(self, row: OutputRow) -> Meanings:
        """What the codes in an output's labels mean (for the reasons and the checker's
        table), as its table would label them (``readable``)."""
        return self._meanings(row.project_id, row.kind, row.spec, row.created_at)

    def _meanings(self, project_id: str, kind: str, spec: Mapping[str, Any],
                  made_at: dt.datetime) -> Meanings:
        if kind in (AnalysisKind.GWAS.value, AnalysisKind.JOB_FILE.value):
            return Meanings(kind)
        naming = enclave_service.naming(self.enclave, project_id, spec, made_at)
        return Meanings(kind, dict(spec), naming.labels, tuple(naming.keys or ()))

    def shown_cells(self, project_id: str, output_id: str) -> int:
        """How many counts of groups an output gives away (its shown cells and the
        denominators of its percentages): what its release would let out."""
        with self.ctx.transaction() as db:
            project = db.get(Project, project_id)
        if project is None:
            raise NotFound(f"there is no project {project_id}")
        return len(Contributors.head(self._unsealed_cells(project, output_id))["labels"])

    def _checked(self, result: Result, rules: Rules, institution: str, project_id: str,
                 eids: MasterIds, key: bytes
                 ) -> tuple[CheckReport, Contributors, list[Finding], dict[str, int]]:
        """The check, then differencing of the cells it shows against each other and against
        everything released. A table's cell that differences is hidden like any other (with
        secondary suppression), and what is still shown is differenced again; what cannot be
        hidden (a model's figure, a clash left after ``MAX_ROUNDS``) blocks the output.

        Each clash is a decision on the size of the group two releases differ by, so each is
        taken at the threshold's keyed line (enclave/margin.py), and costs a cell, not the
        output: at a fixed k, "everyone" beside "everyone but k − 1 accomplices and the target
        if obese" passes only for an obese target."""
        mark = self._mark(institution, rules)  # before the ledger is read: see _mark
        built = _Built()
        everyone = [built.members(c.contributors, eids) for c in result.cells]
        hide: list[Finding] = []
        sure: dict[str, int] = {}
        for _ in range(MAX_ROUNDS):
            before = margin.sure()
            report = check(result, rules, hide)
            held, positions, valued = _shown(result, report, everyone, eids, key, built,
                                             rules.few_values)
            found = _at(within_output(held.cells(), rules.threshold, held.kinds()),
                        positions)
            found += _at(self.ledger.check(institution, project_id, held.cells(),
                                           held.population, rules.threshold,
                                           families=held.kinds()), positions)
            found += self._combined(institution, held, rules.threshold, positions, valued,
                                    grid=result.kind in GRIDS,
                                    share=rules.genetics_max_residual_share,
                                    cap=rules.genetics_max_traits_per_group)
            # below k itself, for the watch (Measures): the most any round found (the first
            # round sees the output as asked; later ones only what is still shown)
            for kind, n in margin.sure().items():
                sure[kind] = max(sure.get(kind, 0), n - before.get(kind, 0))
            more = {f.cell: f for f in found if f.verdict is Verdict.BLOCK
                    and f.cell is not None and hideable(result, f.cell)
                    and f.cell not in report.suppressed}
            if not more:
                break
            hide += [Finding(f.rule, Verdict.SUPPRESS, f"{where(result.cells[i])} is hidden: "
                             f"{f.reason}", i) for i, f in sorted(more.items())]
        held = replace(held, checked_against=mark)
        return report, held, [*report.findings, *found], sure

    def _mark(self, institution: str, rules: Rules, session: Session | None = None) -> str:
        """What differencing was decided against: the institution's ledger (how many
        releases it holds; nothing is ever taken out of it) and the rules it reads. Taken
        before the check reads the ledger, so a release recorded while it ran changes the
        mark; found unchanged at release, under the institution's lock, the ledger is the
        very one the check's last round read and passed, and there is nothing new."""
        return json.dumps([institution, self.ledger.releases(institution, session=session),
                           rules.threshold, rules.genetics_max_residual_share,
                           rules.genetics_max_traits_per_group])

    def _combined(self, institution: str, held: Contributors, threshold: int,
                  positions: list[int], valued: Sequence[int | None], *,
                  session: Session | None = None, grid: bool = False,
                  structured: bool = False, share: float = 0.5,
                  cap: int = 100) -> list[Finding]:
        """What combinations with everything released would disclose: statistics whose
        contributions differ for a few people (within the output and against the ledger),
        and small groups (or none) that adding and subtracting released counts would
        determine; ``structured``: for cells kept before derived cells were, whether the
        analysis's shape, not the researcher's SQL, ties its own groups (combinations)."""
        earlier_vectors = self.ledger.released_vectors(institution, session=session)
        earlier = self.ledger.released_groups(institution, session=session)
        found = contributions.clashes(held.vectors, [], threshold, within=True)
        found += contributions.span_clashes(held.vectors, [], threshold)
        findings = contributions.findings(held.vectors, found, threshold, "", valued,
                                          rule=WITHIN_RULE)
        found = contributions.clashes(held.vectors, earlier_vectors, threshold, within=False)
        found += contributions.span_clashes(held.vectors, earlier_vectors, threshold)
        findings += contributions.findings(held.vectors, found, threshold,
                                           " (released earlier)", valued)
        findings += [Finding(contributions.CONCENTRATED, Verdict.BLOCK, (
            f"{held.vectors[i].label!r} differs from {other!r} mostly for a few participants: "
            "every variant's effect would differ by their genotypes; analyse a trait as "
            "measured, over a group that differs from earlier ones by many"))
            for i, other in contributions.concentrated_clashes(
                held.vectors, earlier_vectors, threshold, share, cap)]
        findings += [Finding(contributions.RULE, Verdict.BLOCK, (
            f"{held.vectors[i].label!r} takes one value in each group whose count has been "
            f"released, but for fewer participants than the threshold of {threshold}: with "
            "those counts it gives the own values of those few; use a variable as measured, "
            "not one built from constants per group"), valued[i])
            for i, _ in contributions.partition_clashes(
                held.vectors, [*_by_release(earlier), list(held.sets)], threshold)]
        if grid and not earlier:
            # a table of categories and its margins alone: secondary suppression has already
            # solved its whole linear system, so no combination of its cells is left to audit
            return findings
        # a statistic's group is left out: its size is not shown, and what adding and
        # subtracting its values could give is a few people's values to within the sum of
        # the steps rounded to, each as wide as one person's range (precision.py); an audit
        # that hid it when the combination is one person and showed it when it is nobody
        # would answer whether that person is in it (and hiding both cost a fifth of the
        # honest analyses)
        before = [(label, members) for label, members, family in earlier if family != VALUES]
        mine = [k for k, family in enumerate(held.kinds()) if family != VALUES]
        groups = [members for _, members in before] + [held.sets[k] for k in mine]
        labels = [label for label, _ in before] + [held.labels[k] for k in mine]
        new = {len(before) + at: positions[k] for at, k in enumerate(mine)}
        # kept before derived cells were: the analysis's kind says whether its ties are its own
        own = (set(held.derived) if held.derived is not None
               else set(range(len(held.sets))) if structured else set())
        derived = {len(before) + at for at, k in enumerate(mine) if k in own}
        try:
            exposures = combinations.exposed(groups, list(new), threshold, derived=derived)
        except combinations.TooManyGroupsError as many:
            return [*findings, Finding(
                combinations.RULE, Verdict.REVIEW,
                f"{many.count:,} released groups are too many to audit every combination of "
                "their counts quickly; output checkers decide")]
        return findings + combinations.findings(exposures, labels, threshold, new)

    def _cells_path(self, project_id: str, output_id: str) -> Any:
        return self.ctx.project_dir(project_id) / "outputs" / f"{output_id}.{CELLS}.srenc"

    def _keep(self, project: Project, output_id: str, held: Contributors) -> None:
        path = self._cells_path(project.id, output_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sealed = encrypt(held.to_bytes(), self.enclave.key(project), f"{CELLS}:{output_id}")
        staging = path.with_suffix(".tmp")
        staging.write_bytes(sealed)
        staging.replace(path)

    def _held(self, project: Project, output_id: str) -> Contributors:
        return Contributors.from_bytes(self._unsealed_cells(project, output_id))

    def _unsealed_cells(self, project: Project, output_id: str) -> bytes:
        path = self._cells_path(project.id, output_id)
        return decrypt(path.read_bytes(), self.enclave.key(project), f"{CELLS}:{output_id}")

    # -- release ---------------------------------------------------------------------------

    def _on_release(self, row: OutputRow, passes: dict[str, _Pass]) -> None:
        """Inside the release's transaction: under the institution's lock (a no-op write on
        its row, held to the commit), so that two releases sent at once are decided one after
        the other, find the ledger as the release's differencing pass read it (its mark), and
        write the rows that pass sealed. Nothing here takes a time that depends on the output
        or the ledger but the insert of the output's own rows: the differencing itself ran
        before the transaction (:meth:`_differenced_again`). Without a pass, or with one that
        read a ledger that has moved since (another release recorded meanwhile, or a rule
        changed), it raises _Unprepared: the transaction rolls back, and the pass is done
        (again) outside it before the release is tried again (:meth:`_released`)."""
        if row.kind == AnalysisKind.JOB_FILE.value:
            return  # a job's own file: no contributor sets; two checkers released it
        done = passes.get(row.id)
        if done is None:
            raise _Unprepared(row.id)
        if done.error is not None:
            raise done.error
        db = object_session(row)
        assert db is not None
        project = db.get(Project, row.project_id)
        assert project is not None
        institution = _institution(db, project)
        db.execute(update(Institution).where(Institution.id == institution)
                   .values(id=Institution.id))
        if done.mark != self._mark(institution, self.rules_for(project.id), session=db):
            raise _Unprepared(row.id)  # read a ledger that has moved since: difference again
        if done.clashes:
            raise Conflict([f.reason for f in done.clashes])
        assert done.recording is not None
        self.ledger.write(done.recording, session=db)

    def _released(self, act: Callable[[requests.OnRelease], T]) -> T:
        """Run a workflow step that may release an output (``act(on_release)``), the
        release's differencing done outside its transaction: the step is tried, and if it
        releases an output with no differencing pass, or one that read a ledger that has
        moved since, the transaction rolls back, the pass is done (again), and the step is
        tried again (at most ``MAX_PASSES`` passes: a ledger that kept moving refuses)."""
        passes: dict[str, _Pass] = {}
        for tried in range(MAX_PASSES + 1):
            try:
                return act(lambda row: self._on_release(row, passes))
            except _Unprepared as unprepared:
                if tried == MAX_PASSES:
                    break  # no pass that would be thrown away
                passes[unprepared.output_id] = self._differenced_again(unprepared.output_id)
        raise _LedgerBusy("other releases kept being recorded in the institution's "
                          "differencing ledger while this one was differenced against it; "
                          "nothing was released and nothing spent: ask again")

    def _differenced_again(self, output_id: str) -> _Pass:
        """A release's differencing pass, outside every transaction but short reads: the
        ledger's mark taken first (:meth:`_mark`), then, unless the check's own mark is that
        one (nothing new since the check), every differencing rule against the ledger as read
        (:meth:`_clashes_again`), and the release's ledger rows sealed. Whatever fails is
        kept, and raised where it was raised before: in the release's transaction."""
        try:
            with self.ctx.transaction() as db:
                row = db.get(OutputRow, output_id)
                if row is None:
                    raise NotFound(f"there is no output {output_id}")
                project = db.get(Project, row.project_id)
                assert project is not None
                institution = _institution(db, project)
                project_id, kind = row.project_id, row.kind
            held = self._held(project, output_id)
            rules = self.rules_for(project_id)
            with margin.keyed(held.key) if held.key else nullcontext():  # the analysis's lines
                mark = self._mark(institution, rules)  # before the ledger is read: see _mark
                clashes = ([] if held.checked_against and held.checked_against == mark
                           else self._clashes_again(institution, rules, project_id, kind,
                                                    held))
            recording = None if clashes else self.ledger.sealed(
                institution, project_id, output_id, held.cells(), held.population,
                vectors=held.vectors, families=held.kinds())
            return _Pass(mark, clashes, recording)
        except Exception as error:  # kept: raised in the release's transaction
            return _Pass("", [], None, error)

    def _clashes_again(self, institution: str, rules: Rules, project_id: str, kind: str,
                       held: Contributors) -> list[Finding]:
        """What refuses the release: what is shown now differencing against what was
        released since the check (or under rules changed since)."""
        threshold = rules.threshold
        clashes = self.ledger.check(institution, project_id, held.cells(),
                                    held.population, threshold, families=held.kinds())
        positions = list(range(len(held.sets)))
        grid = kind in {k.value for k in GRIDS}
        clashes += [f for f in self._combined(institution, held, threshold, positions,
                                              [None] * len(held.vectors), grid=grid,
                                              structured=kind != (
                                                  AnalysisKind.AGGREGATE_SQL.value),
                                              share=rules.genetics_max_residual_share,
                                              cap=rules.genetics_max_traits_per_group)
                    if f.verdict is Verdict.BLOCK]
        return clashes

    def request_release(self, principal: Principal, output_id: str,
                        justification: str | None = None) -> requests.OutputView:
        """Ask for release. The ration of answers holds here too: once the requester's is
        spent, the output is withheld (to people, whatever it holds) before anything is
        checked again; and a release the ledger refuses is an answer, so an answer is
        reserved first (under the person's lock) and given back only if the release asked
        nothing of the check."""
        started = time.monotonic()
        before = self._reserve(principal, output_id)
        # a release that goes on to the ledger (before is not None) is answered on its
        # schedule; one the workflow refuses at once read nothing and is answered at once
        # (with the workflow's own reason: no cohort is read for it)
        schedule = timing.release_schedule(
            seconds=self.ctx.settings.analysis_seconds, ratio=self.ctx.settings.analysis_ladder,
            participants=self.enclave.participants()) if before is not None else timing.Schedule(0)
        try:
            return self._released(lambda on_release: requests.request_release(
                self.ctx, principal, output_id, justification, on_release=on_release))
        except _LedgerBusy:  # others' releases, not this output's data: nothing spent
            raise
        except Conflict:  # the ledger refused it (an answer): the reservation stands
            before = None
            raise
        finally:
            # time is an output here too: differencing again against what was released since
            # the check takes as long as the earlier cells near this one's exact sizes take to
            # open (a cell one person larger meets other cells), so the release is answered
            # on a schedule of its own, and a release past the floor keeps its answer
            took = time.monotonic() - started
            if schedule.overran(took):
                before = None
            self._give_back(output_id, before)
            if schedule.timed:
                step = schedule.due(took, time.monotonic() - started)
                self.sleep(max(0.0, started + schedule.at(step) - time.monotonic()))

    def _reserve(self, principal: Principal, output_id: str) -> bool | None:
        """Withhold the output if its requester's ration is spent; otherwise mark it as an
        answer until the release is done. Returns what to restore (None: nothing)."""
        with self.ctx.transaction() as db:
            row = db.get(OutputRow, output_id)
            if row is None or row.requester != principal.person_id or row.report.get(
                    "withheld") or row.status != OutputStatus.CHECKED.value:
                return None  # the workflow refuses these itself, with its reasons
            spent = answers.rationed(db, principal.person_id, row.project_id,
                                     self.ctx.clock(), self._ration(db, principal.person_id))
            if spent is not None:
                report = requests.report_of(row)
                withheld = _settled(report.findings, report, spent)
                row.report, row.verdict = withheld.as_dict(), withheld.verdict.value
                return None
            before, row.acted = row.acted, True
            return before

    def _give_back(self, output_id: str, before: bool | None) -> None:
        """After a release that went through (or failed for a reason of its own), the output
        counts as it did at analysis."""
        if before is None or before:
            return
        with self.ctx.transaction() as db:
            db.execute(update(OutputRow).where(OutputRow.id == output_id).values(acted=before))

    def review(self, principal: Principal, output_id: str, approve: bool,
               reason: str) -> requests.OutputView:
        return self._released(lambda on_release: requests.review(
            self.ctx, principal, output_id, approve, reason, on_release=on_release))

    def scan_file(self, data: bytes, name: str) -> list[Finding]:
        """The raw-row scanner on any file (for the custodian's command line)."""
        return scan(self.index(), data, name)


@dataclass(frozen=True)
class _Made:
    """What an analysis's work on the data made, up to its record (``Outputs._analyse``)."""

    scope: enclave_service.Scope
    result: Result
    report: CheckReport
    held: Contributors
    findings: list[Finding]
    sure: dict[str, int]
    sayable: Namable
    packed: Callable[[], None]
    payload: bytes
    name: str


@dataclass(frozen=True)
class Answered:
    """When an analysis was answered: its schedule's ``step`` (0: the floor), that step's
    time after the request (``seconds``), whether its run passed the floor (``overran``:
    its time was an answer, spent unless the output was one already), and the answer's
    ``moment`` on the platform's clock (the request's moment and the step's wait: never when
    a thread got round to saying so)."""

    step: int
    seconds: float
    overran: bool
    schedule: timing.Schedule
    moment: dt.datetime | None = None


def _low_priority() -> None:
    """A past-ration worker's thread at nice 10 (Linux sets a thread's own priority by its
    id): work left running past its deadline takes the cores from nothing but the like."""
    with suppress(OSError):  # not permitted here: the deadline still holds, at equal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PAST_RATION_NICE)


def _bounded(timer: _Timer | None, work: Callable[[], T]) -> T:
    """The work that reads the data, within the run's deadline if it has one
    (``_Timer.bounded``)."""
    return timer.bounded(work) if timer is not None else work()


def _flock_by(handle: IO[str], until: float | None) -> bool:
    """Take ``handle``'s exclusive advisory lock, waiting for it until the monotonic moment
    ``until`` (for ever if None); whether it was taken."""
    if until is None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return True
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= until:
                return False
            time.sleep(0.01)


def _late(timer: _Timer | None, answered: bool) -> bool:
    """Whether the meter says the run passed its floor: only when that cost an answer (its
    output's, or the one reserved for its time). Past the ration nothing is reserved, and a
    lateness metered then would reach the overrun detector, and a suspension by
    corroboration, for free."""
    return timer is not None and timer.overran and (answered or timer.kept)


class _Timer:
    """One analysis's schedule (outputs/timing.py): begun once the request is authorised and
    within its limits (an answer reserved for its time), settled in the transaction that
    records its output, finished when it is answered."""

    def __init__(self, outputs: Outputs, principal: Principal, project_id: str,
                 request: Mapping[str, Any], started: float) -> None:
        self.outputs, self.principal, self.project_id = outputs, principal, project_id
        self.request = request
        self.started = started
        self.schedule: timing.Schedule | None = None
        self.answer: int | None = None
        self.took: float | None = None  # when the output was recorded
        self.arrived = outputs.ctx.clock()  # the request's moment, as the requester knows it
        self.withheld = False  # the recorded report's (settle's)
        self.back = True  # whether the reserved answer comes back at the answer (settle's)
        self.kept = False  # whether the answer reserved for its time was kept (settle's)
        self.unreserved = False  # timed, and nothing left to reserve: past the ration (begin's)
        self.spent: Finding | None = None  # why it is withheld, past the ration (begin's)

    @property
    def overran(self) -> bool:
        """Whether the recorded run passed its floor (known once settled): what
        :class:`Answered` says, for the meter before the answer's wait."""
        return (self.schedule is not None and self.took is not None
                and self.schedule.overran(self.took))

    def begin(self) -> None:
        """Fix the schedule and reserve the answer a run past its floor would spend."""
        if self.schedule is not None:
            return
        self.schedule = self.outputs.schedule(
            self.request if isinstance(self.request, Mapping) else {})
        if self.schedule.timed:
            # dated at the earliest moment the output can be (its floor's), as the output
            # it stands for is dated at its answer's: both count in the same periods, so
            # the output charged in its place (``replaced``) changes no budget's reading,
            # even when a budget renews between the request and the answer
            floor = self.arrived + dt.timedelta(seconds=self.schedule.at(0))
            with self.outputs.ctx.transaction() as db:
                self.answer = self.outputs.reserve_answer(db, self.principal,
                                                          self.project_id, "time", at=floor)
                if self.answer is None:  # past the ration: withheld, decided now
                    self.spent = answers.rationed(
                        db, self.principal.person_id, self.project_id,
                        self.outputs.ctx.clock(),
                        self.outputs._ration(db, self.principal.person_id))
            self.unreserved = self.answer is None and self.spent is not None

    @property
    def returning(self) -> int | None:
        """The reserved answer that comes back at the answer's moment (settled), if any."""
        return self.answer if self.back else None

    def settle(self, db: Session, acted: bool) -> None:
        """In the recording transaction, before the budgets are read: whether the reserved
        answer comes back (unless the run passed its floor and the output is not an answer
        already). It comes back at the answer's moment (``finish``), not now: back at the
        recording, a request refused or let through by the ration meanwhile would tell when
        a run within its floor really ended."""
        self.took = time.monotonic() - self.started
        overran = self.schedule is not None and self.schedule.overran(self.took)
        self.back = not (overran and not acted)
        if self.answer is not None and not self.back:
            self.answer, self.kept = None, True  # kept: spent on the time

    def replaced(self, db: Session) -> None:
        """In the recording transaction, once the output is known to be an answer (acted on,
        or refused by the data, and not withheld): it is charged in place of the answer
        reserved for the run's time, which comes back now, so the budgets read the same
        from the reservation to the answer's moment whatever the check found. (Charged
        beside it until the answer, a request refused or let through by the ration
        meanwhile told that the check acted, and when the run was recorded.)"""
        if self.answer is not None:
            self.outputs.give_back_answer(db, self.answer)
            self.answer = None

    def shown_at(self) -> dt.datetime:
        """The moment the recorded output is answered (its ``created_at``: no list shows it
        sooner), from the request's moment, its schedule and the step the run reached, as
        ``finish`` waits for it: never the moment it was recorded, which would tell how long
        the run took."""
        seconds = 0.0
        if self.schedule is not None and self.schedule.timed:
            took = self.took if self.took is not None else time.monotonic() - self.started
            seconds = self.schedule.at(self.schedule.step(took))
        if self.withheld:
            seconds = max(seconds, self.withheld_at())
        return self.arrived + dt.timedelta(seconds=seconds)

    def withheld_at(self) -> float:
        """The soonest a withheld output is answered, in seconds after its request: the
        first step of its schedule past the longer of the query time limit and its floor
        (with its recording's share, ``timing.RECORDING_SHARE``) and past
        ``Settings.withheld_seconds``. Past the ration the step of a run's time spends
        nothing (there is nothing left to spend), so it must say nothing: every run is
        answered at this one moment, refused if it is not done in time (:meth:`bounded`).
        (At ``withheld_seconds`` alone, a run between the step below 10 s and the limit was
        answered a step later than a quick one, for free.)"""
        assert self.schedule is not None
        return timing.withheld_moment(self.schedule,
                                      self.outputs.ctx.settings.withheld_seconds,
                                      self.outputs.enclave.limits.seconds)

    def bounded(self, work: Callable[[], T]) -> T:
        """Do the work on the data, up to the record: the run (its SQL, its fit), the check,
        the rendering and the scan. Past the ration (nothing could be reserved for the run's
        time, so the step it reached would spend nothing), it must end by
        ``timing.run_deadline`` of the withheld moment, or it is refused as the query time
        limit refuses SQL; what is left (the record, the contributor sets kept, the meter)
        has the recording's share. The red team found both halves: a logistic fit that ran
        all its iterations when one participant's value separated the outcome was answered
        steps later than one that converged (the limit bounds SQL only), and a check of
        2,048 groups slowed past the moment by that fit still running beside it (when only
        the run was bounded), 3 of 3 targets each, for free. Within the ration no deadline is
        needed: a run past its floor spends an answer.

        The work runs on a worker of ``Outputs.past_ration`` and this thread waits for it
        until the deadline; past it, the worker is left to finish and its result dropped.
        Nothing interrupts it (an exception thrown into a thread can land inside a lock's or
        a connection's bookkeeping). The workers are few and run at a low priority (work
        left running takes the cores only from other such work), and a request that waits
        for one waits within its own deadline, so its moment is the same whoever kept them
        busy."""
        left = self.left()
        if left is None:
            return work()
        running = self.outputs.past_ration.submit(contextvars.copy_context().run, work)
        try:
            return running.result(timeout=left)
        except TimeoutError:
            if running.done():  # the work's own (a library's timeout): a failure as any
                raise
            running.cancel()  # never started (the workers were busy): never will
            raise self.too_long() from None

    def left(self) -> float | None:
        """Past the ration, the seconds left until the run's deadline (``bounded``), for the
        work and anything it waits for that other requests hold; within it, None: no bound
        (a run past its floor spends an answer, whatever it waited for)."""
        if not self.unreserved:
            return None
        due = timing.run_deadline(self.withheld_at())
        return max(0.0, due - (time.monotonic() - self.started))

    def too_long(self) -> DataRefusal:
        """The refusal of a run past its deadline once its requester's ration is spent."""
        due = timing.run_deadline(self.withheld_at())
        return DataRefusal(
            f"the analysis took longer than {due:,.1f} s, the most one may take once its "
            "requester's ration of answers is spent (its time would answer what the withheld "
            "report hides); it is refused, as a query past its time limit is")

    def finish(self, withheld: bool) -> Answered | None:
        """Wait until the step the run reached; give back an answer still reserved (nothing
        was recorded: the text was refused) if the run was within its floor."""
        if self.schedule is None:
            return None
        took = self.took if self.took is not None else time.monotonic() - self.started
        overran = self.schedule.overran(took)
        # nothing recorded (the text was refused): back if the run was within its floor
        back = self.back if self.took is not None else not overran
        step = decided = self.schedule.step(took)
        # recording after the step was decided may have taken the run past it: never sooner,
        # and a step passed so is a run past its step like any other (how long the recording
        # took can hang on the output: a run tuned to end just before its floor would
        # otherwise tell it for free), so the reserved answer stays spent
        while self.schedule.timed and self.schedule.at(step) < time.monotonic() - self.started:
            step += 1
        if step > decided:
            overran, back = True, False
        until = self.schedule.at(step) if self.schedule.timed else 0.0
        if withheld:
            until = max(until, self.withheld_at())
        self.outputs.sleep(max(0.0, self.started + until - time.monotonic()))
        if self.answer is not None and back:  # at the answer's moment, not the recording's
            with self.outputs.ctx.transaction() as db:
                self.outputs.give_back_answer(db, self.answer)
            self.answer = None
        return Answered(step, self.schedule.at(step), overran, self.schedule,
                        self.arrived + dt.timedelta(seconds=until))


REFUSED_RULE = "refused"  # an analysis refused while it ran (see Outputs._refused)
DEFINITIONS_SPENT = (
    "no new dataset definitions until your ration of answers comes back: the output check "
    "has answered as many questions as it may within a budget this request is charged to "
    "(outputs acted on or near its line, and definitions refused once they read the data), "
    "and a definition's refusal would be another; analyse the definitions you have (their "
    "outputs go to the output checkers) or wait for the budget to renew")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def output_name(named: str | None, request: Mapping[str, Any], fmt: Format) -> str:
    """An output's file name: the one asked for (a job's declared path, the API's ``name``),
    else one made from the request (render.filename). From the request alone, never from the
    run: a refused output (blocked, perhaps withheld) is named as an answered one would be,
    so its name cannot tell a withheld refusal from a withheld answer."""
    return named or filename(str(request.get("kind")), fmt, request)


def _fits(result: Result, fmt: Format) -> None:
    """Refuse an output too large to keep, by the size of the whole result, before the check:
    a size limit met only when a row is shown would answer whether the check removed it. (What
    is released is never larger: hiding a cell adds at most one byte, allowed for here.) The
    size still depends on the data, so the refusal is a DataRefusal: a blocked, rationed
    output, never a free error."""
    if len(render(result, set(), fmt)) + len(result.cells) > requests.MAX_BYTES:
        raise DataRefusal(f"the result is larger than {requests.MAX_BYTES:,} bytes, the most "
                          "an output of aggregates may be; ask for fewer groups or fewer "
                          "statistics")


def _gwas_fits(payload: bytes) -> None:
    """Refuse a GWAS's output too large to keep, by its whole rendering, before the check
    (as :func:`_fits` does for every other analysis): the variants the genetics rules
    release, and so its size, hang on the analysed people's genotypes and values. A
    DataRefusal: a blocked, rationed output, never the free error ``record_output`` would
    raise (the observables red team: the limit met only when one participant's value let
    more through answered 422, nothing spent)."""
    if len(payload) > requests.MAX_BYTES:
        raise DataRefusal(f"the result is larger than {requests.MAX_BYTES:,} bytes, the most "
                          "an output may be; ask for fewer variants (min_info, min_mac) or "
                          "fewer traits")


def _settled(findings: Sequence[Finding], report: CheckReport,
             spent: Finding | None, named: Namable | None = None) -> CheckReport:
    """The report kept with an output: the worst verdict of ``findings`` (and of the ration's
    finding, withheld, when ``spent``), naming only the cells' ``named`` labels once people
    must decide (outputs/labels.py)."""
    found = [*findings, *([spent] if spent is not None else [])]
    verdict = CheckReport.worst(found)
    if SEVERITY[verdict] >= SEVERITY[Verdict.REVIEW]:
        found = _one_differencing([_without_labels(f, named or {}) for f in found])
    return CheckReport(verdict, found, report.suppressed, report.rules_version,
                       report.thresholds, report.removed, withheld=spent is not None)


DIFFERENCING = "differencing"  # the ledger's rule, and the prefix of every overlap rule
DIFFERENCING_REASON = (
    "figures of this output, with each other or with what has been released before, rest on "
    "the same participants but for fewer than a line drawn from the threshold (perhaps "
    "none), or add and subtract to a group that small; which figures, and how, is not said, "
    "since that would itself say something about those few. Group more coarsely, drop the "
    "groups that overlap, or ask for fewer figures at once")


def _one_differencing(findings: list[Finding]) -> list[Finding]:
    """An output not released as it is says *that* its figures difference, in one reason,
    never which flavour or which cells: which of within-output repeats, value clashes, ledger
    repeats and combinations fired can differ for one person (a survival table whose groups
    overlap gave three reasons when the target was obese and one when lean)."""
    overlap = [f for f in findings if f.rule.split(".")[0] == DIFFERENCING]
    if not overlap:
        return findings
    rest = [f for f in findings if f.rule.split(".")[0] != DIFFERENCING]
    return [*rest, Finding(DIFFERENCING, CheckReport.worst(overlap), DIFFERENCING_REASON)]


def _own(request: Mapping[str, Any]) -> Namable:
    """The columns the request names (labels.own_names); none for one that does not parse
    or for aggregate SQL, whose names are in its text."""
    try:
        return own_names(parse_spec({k: v for k, v in request.items()
                                     if k != "definition"}).reads())
    except Invalid:
        return {}


def _without_labels(finding: Finding, named: Namable) -> Finding:
    """A reason without the quoted labels it may not name, for outputs that are not released
    as they are.

    Group labels can be participants' own values (``GROUP BY bmi, sbp``); a blocked output's
    reasons must not hand them over. A finding about one cell keeps that cell's own labels
    where its output would show them (``named``), so it says which group and interval
    failed; anything else it quotes becomes “…”. The cell index still says which cell.
    """
    allowed = named.get(ANY_CELL, frozenset()) | (
        named.get(finding.cell, frozenset()) if finding.cell is not None else frozenset())

    def label(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0)[1:-1] in allowed else "“…”"
    return Finding(finding.rule, finding.verdict, _QUOTED.sub(label, finding.reason),
                   finding.cell)


MAX_PASSES = 4  # a release's differencing, redone while the ledger moved under it


@dataclass(frozen=True)
class _Pass:
    """A release's differencing, done outside its transaction (Outputs._differenced_again):
    the mark of the ledger and rules it read, what clashed, the ledger rows to write if
    nothing did, or what failed."""

    mark: str
    clashes: list[Finding]
    recording: Recording | None
    error: Exception | None = None


class _LedgerBusy(Conflict):
    """A release not tried to its end: the ledger moved under every pass (other releases,
    not this output's data), so its answer is given back."""


class _Unprepared(Exception):  # noqa: N818 - not an error: a signal to difference first
    """Raised in a release's transaction (rolling it back) when the output's differencing
    pass is missing or read a ledger that has moved since."""

    def __init__(self, output_id: str) -> None:
        super().__init__(output_id)
        self.output_id = output_id


MAX_ROUNDS = 4  # hide what differences, check again; a clash left after this many blocks



@dataclass
class _Built:
    """What each round of the check builds alike: each statistic's vector (by cell, and by
    fit variable), each group's participants in master-ID space, sorted, and each cell's set
    of them. Groups are known by their participants (a fit's variables, a table's cells and
    its margins hold their own copies of the same IDs: each is mapped and sorted once)."""

    vectors: dict[int | str, Vector] = field(default_factory=dict)
    groups: dict[bytes, tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]] = field(
        default_factory=dict)
    sets: dict[bytes, BitMap] = field(default_factory=dict)
    _named: dict[int, bytes] = field(default_factory=dict)
    _values: dict[tuple[bytes, int], tuple[object, npt.NDArray[np.float64]]] = field(
        default_factory=dict)

    def _name(self, pids: PidArray) -> bytes:
        if id(pids) not in self._named:  # the arrays live as long as the result does
            self._named[id(pids)] = hashlib.blake2b(
                np.ascontiguousarray(pids).tobytes(), digest_size=16).digest()
        return self._named[id(pids)]

    def members(self, pids: PidArray, eids: MasterIds) -> BitMap:
        name = self._name(pids)
        if name not in self.sets:
            self.sets[name] = _members(eids, pids)
        return self.sets[name]

    def vector(self, label: str, pids: PidArray, values: npt.ArrayLike, kind: str,
               eids: MasterIds) -> Vector:
        name = self._name(pids)
        if name not in self.groups:
            found = eids(pids)
            order = contributions.sorting(found)
            self.groups[name] = (found if order is ASCENDING else found[order], order)
        ids, order = self.groups[name]
        # cells sharing their contributions (a variable's mean and SD) share them here too,
        # sorted once and kept once (Contributors.to_bytes)
        if (name, id(values)) not in self._values:
            found = np.asarray(values, dtype=np.float64)
            self._values[(name, id(values))] = (
                values, found if order is ASCENDING else found[order])
        return Vector(label, ids, self._values[(name, id(values))][1], kind)


def _shown(result: Result, report: CheckReport, everyone: list[BitMap],
           eids: MasterIds, key: bytes, built: _Built, few: int
           ) -> tuple[Contributors, list[int], list[int | None]]:
    """What the shown cells give away (their groups and statistics, in master-ID space), the
    cell each group comes from, and the cell each statistic is (None: a fit's variable).
    ``built``: what earlier rounds of the check built of the same result."""
    shown = [i for i in range(len(result.cells)) if i not in report.suppressed]
    valued: list[int | None] = [i for i in shown if result.cells[i].values is not None]
    vectors = []
    for i in shown:
        cell = result.cells[i]
        if cell.values is None:
            continue
        if i not in built.vectors:
            built.vectors[i] = built.vector(_label(result, i), cell.contributors, cell.values,
                                            kind_of(cell.kind.value, cell.level), eids)
        vectors.append(built.vectors[i])
    # a fit's variables leave through its shown figures: none shown (a survival table that
    # ends before its first interval), none to difference
    for name, (pids, values) in sorted(result.vectors.items() if shown else ()):
        if name not in built.vectors:
            built.vectors[name] = built.vector(f"{result.kind.value} variable {name}", pids,
                                               values, "", eids)
        vectors.append(built.vectors[name])
        valued.append(None)  # the fit's variable, not one cell
    groups, positions = _released_groups(result, shown, everyone, eids, few)
    held = Contributors([label for label, _, _ in groups], [g for _, g, _ in groups],
                        BitMap.union(BitMap(), *everyone), vectors, key,
                        [family for _, _, family in groups],
                        [k for k, i in enumerate(positions[:len(shown)])
                         if result.cells[i].derived or result.cells[i].margin])
    return held, positions, valued


def _at(findings: list[Finding], positions: list[int]) -> list[Finding]:
    """Findings about released groups, moved to the cells the groups come from."""
    return [Finding(f.rule, f.verdict, f.reason, None if f.cell is None else positions[f.cell])
            for f in findings]


def _released_groups(result: Result, shown: list[int], everyone: list[BitMap],
                     eids: MasterIds, few: int
                     ) -> tuple[list[tuple[str, BitMap, str]], list[int]]:
    """Every group of participants whose count an output gives away, with the cell it comes
    from: each shown cell's contributors, and each shown percentage's denominator (count ÷
    percentage is the denominator's count, even when the table shows no margins).

    A fit (a model, a correlation) gives none away: its counts of people are rounded by a
    keyed draw and its estimates to what one participant can move (precision.py), so its
    complete cases are no count to subtract; what a refit over a few people fewer would give
    is its variables' values, which value differencing compares (contributions.py).

    A sum or mean over at most ``few`` distinct contributions is a count in disguise: the sum
    of an indicator is the number who hold 1, and a mean times its count is the same. So the
    holders of each value but the most common are released groups too: two hundred indicator
    sums over a cyclic design of classes, each set holding k − 1 accomplices and the target
    if obese, were "everyone" each to the set rules, and added up to that group's size."""
    if result.kind in FITS:
        return [], []
    groups = [(_label(result, i), everyone[i], _family(result.cells[i])) for i in shown]
    positions = list(shown)
    for i in shown:
        for holders in _value_holders(result.cells[i], few):
            groups.append((f"{_label(result, i)} (the holders of one of its values)",
                           _members(eids, holders), COUNT))
            positions.append(i)
    seen: set[bytes] = set()
    for i in shown:
        denominator = result.cells[i].denominator
        if denominator is None or denominator.tobytes() in seen:
            continue
        seen.add(denominator.tobytes())
        groups.append((f"{_label(result, i)} (its denominator)", _members(eids, denominator),
                       PERCENT))
        positions.append(i)
    return groups, positions


def _members(eids: MasterIds, pids: PidArray) -> BitMap:
    """A set of contributors in master-ID space (the ledger's)."""
    return bitmap(eids.distinct(pids))


def _family(cell: Cell) -> str:
    """What a shown cell's group is for pairwise differencing (overlap.acts, close)."""
    if cell.values is not None:
        return VALUES  # its contributions are compared instead (contributions.py)
    if cell.kind is CellKind.COUNT:
        return COUNT
    if cell.kind is CellKind.PERCENT:
        return PERCENT
    if cell.kind is CellKind.GENOTYPES:
        return GENOMES
    return OTHER


def _value_holders(cell: Cell, few: int) -> list[PidArray]:
    """The participants holding each of a few-valued sum's or mean's contributions, but the
    most common one's (its holders follow from the count)."""
    if cell.kind not in MAGNITUDES or cell.values is None or cell.value is None:
        return []
    values = np.asarray(cell.values, dtype=np.float64)
    if values.size != cell.contributors.size:
        return []
    if sets.distinct(values[:4 * few + 64]).size > few:  # many values among the first: not few
        return []
    distinct, codes, counts = np.unique(values, return_inverse=True, return_counts=True)
    if not 2 <= distinct.size <= few:
        return []
    common = int(np.argmax(counts))
    return [cell.contributors[codes == v] for v in range(distinct.size) if v != common]


def _label(result: Result, i: int) -> str:
    """A released group's label in the ledger and in differencing's reasons (by the meanings
    of its codes when the check runs within labels.read_as)."""
    _, row, column = as_read(result.cells[i])
    return f"{' | '.join(row)} / {column}"


def _by_release(groups: Sequence[tuple[str, BitMap, str]]) -> list[list[BitMap]]:
    """The ledger's released groups, one list per release (labels end "(release …)")."""
    releases: dict[str, list[BitMap]] = {}
    for label, members, _ in groups:
        releases.setdefault(label.rsplit("(release ", 1)[-1], []).append(members)
    return list(releases.values())


def _institution(db: Session, project: Project) -> str:
    """A project belongs to its lead's institution (differencing spans its projects)."""
    lead = db.get(Person, project.lead_id)
    assert lead is not None
    return lead.institution_id


def verdict_words(verdict: Verdict) -> str:
    return {Verdict.RELEASE: "may be released",
            Verdict.SUPPRESS: "may be released with the named cells suppressed",
            Verdict.REVIEW: "needs two output checkers to review it",
            Verdict.BLOCK: "is blocked"}[verdict]
