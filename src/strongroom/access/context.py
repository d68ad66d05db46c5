"""What every access service needs: the database, the master key, the audit log, a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from strongroom.access.permissions import Action
from strongroom.access.roles import Role
from strongroom.audit import AuditEvent, AuditLog, EventType
from strongroom.audit.events import ATTEMPTS
from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Settings:
    """Security settings; the defaults are the issue's requirements."""

    lockout_after: int = 5  # consecutive failed logins lock the account …
    lockout_minutes: int = 15  # … for this long (or until an admin unlocks it)
    attempts_per_minute: int = 10  # per account and per source address
    token_max_days: int = 30
    session_idle_minutes: int = 15
    session_absolute_hours: int = 12
    password_profile: str = "RFC_9106_LOW_MEMORY"  # argon2-cffi profile for new hashes
    # a withheld output (its requester's ration of answers spent) is answered no sooner than
    # this after its request: how long the check took (longer when it suppresses) would
    # otherwise answer what the withheld report hides; and no sooner than the first step of
    # its schedule past the query time limit (outputs/timing.py withheld_moment)
    withheld_seconds: float = 10.0
    # a dataset definition is answered no sooner than this after its request, and one that
    # takes longer spends an answer of its author's ration: its running time grows with its
    # rows, which can hang on one person's value (0: no floor, and time spends nothing)
    definition_seconds: float = 2.0
    # an analysis (every kind: tables, models, aggregate SQL, GWAS) is answered at the first
    # step of its schedule that its run has reached (outputs/timing.py): a floor of this many
    # seconds times its kind's weight and the cohort's scale, then steps ``analysis_ladder``
    # times the last; a run past its floor spends an answer of its requester's ration, since
    # its step can hang on one person's value (0: no floor, and time spends nothing)
    analysis_seconds: float = 0.5
    analysis_ladder: float = 2.0
    # budgets of answers (outputs the check acted on or that sat just over its line,
    # definitions and jobs refused by the data: strongroom.outputs.answers), charged to the
    # person, the project and the institutions (the person's and the project lead's) at once;
    # the smallest remaining decides. A person's day is rules.yaml's answers.max_acted (20);
    # a day is a UTC day (answers.window_hours), a year a fixed period of answers_year_days
    answers_person_year: int = 200
    answers_project_day: int = 30
    answers_project_year: int = 400
    answers_institution_day: int = 60
    answers_institution_year: int = 1000
    answers_year_days: int = 365
    # the largest differential-privacy totals any project may be given (exact decimals or
    # fractions); the custodian's to set, for every project at once
    dp_epsilon_ceiling: str = "10"
    dp_delta_ceiling: str = "1e-5"
    # refuse a change that gives one person exact access (an exact-mode project) and DP access
    # (a DP-mode project) to the same field; either way the committee is shown every such pair
    refuse_exact_beside_dp: bool = False


class Via(StrEnum):
    SESSION = "session"
    TOKEN = "token"
    CLI = "cli"  # an operator on the server's own console, authenticated by password + TOTP


@dataclass(frozen=True)
class Principal:
    """An authenticated person making one request."""

    person_id: str
    institution_id: str
    roles: frozenset[Role]
    via: Via
    source: str | None = None  # the request's network address
    token_id: str | None = None
    token_project: str | None = None
    token_actions: frozenset[Action] = frozenset()
    session_id: str | None = None


@dataclass(frozen=True)
class _Open:
    """The transaction a thread (or task) is in: where a change's events are written."""

    engine: Engine
    session: Session
    staged: list[AuditEvent]  # changes' events, in the transaction
    attempts: list[AuditEvent]  # appended once it ends, committed or not


_OPEN: ContextVar[_Open | None] = ContextVar("strongroom_open_transaction", default=None)


@dataclass
class AccessContext:
    engine: Engine
    key: MasterKey
    audit: AuditLog
    dictionary: Dictionary
    root: Path  # the data directory: per-project files live under root/projects
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], dt.datetime] = utcnow
    # the current cohort's participant ids, to issue pseudonyms (None: no cohort yet)
    cohort_eids: Callable[[], np.ndarray] | None = None
    # told of every event once it is recorded (watch listens here); an observer must not raise
    observers: list[Callable[[AuditEvent], None]] = field(default_factory=list)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One database transaction; rows stay readable after it ends. Changes' events
        recorded inside it commit with it (or vanish with its rollback); attempts recorded
        inside it are appended as it ends, however it ends (not during it: on SQLite the
        audit writer would wait for this transaction's write lock). All are in the audit log,
        and told to the observers, before this returns or raises."""
        staged: list[AuditEvent] = []
        attempts: list[AuditEvent] = []
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                token = _OPEN.set(_Open(self.engine, session, staged, attempts))
                try:
                    yield session
                finally:
                    _OPEN.reset(token)
        finally:
            if attempts:
                self.audit.append_many(attempts)
                self._tell(attempts)
        if staged:
            self.audit.drain()
            self._tell(staged)

    def record(
        self,
        type: EventType,
        actor: Principal | str | None,
        subject: str | None = None,
        details: Mapping[str, Any] | None = None,
        sensitive: Mapping[str, str] | None = None,
    ) -> None:
        """Record an event. Inside :meth:`transaction` an event of a change is written in that
        transaction, so the change and its event commit together or not at all; an attempt
        (a refusal, a failure, a read: ``ATTEMPTS``) is appended as the transaction ends,
        whatever happens to it. Outside a transaction, appended at once."""
        who = actor.person_id if isinstance(actor, Principal) else actor
        extra = dict(sensitive or {})
        if isinstance(actor, Principal):
            if actor.source:
                extra.setdefault("source", actor.source)
            details = {"via": actor.via.value, **(details or {})}
        event = AuditEvent(type=type, actor=who, subject=subject,
                           details=dict(details or {}), sensitive=extra, at=None)
        open_ = _OPEN.get()
        if open_ is not None and open_.engine is self.engine:
            if type in ATTEMPTS:
                self.audit.check(event)  # a bad event fails here, not as the block ends
                open_.attempts.append(event)
            else:
                self.audit.stage(open_.session, event)
                open_.staged.append(event)
            return
        self.audit.append(event)
        self._tell([event])

    def _tell(self, events: list[AuditEvent]) -> None:
        for event in events:
            for observer in self.observers:
                observer(event)

    def project_dir(self, project_id: str) -> Path:
        return self.root / "projects" / project_id
