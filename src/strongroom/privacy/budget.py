"""A project's privacy budget: a persistent ledger of ε and δ, in exact arithmetic.

Amounts are :class:`fractions.Fraction` and stored as exact text (``"1/10"``), never floats:
ten queries of ε 0.1 spend exactly 1 and fit a budget of 1. A charge happens before the answer
is computed, in one transaction that locks the project's budget row (``SELECT … FOR UPDATE`` on
PostgreSQL) and moves it only if nobody has moved it since it was read (a version number, so
SQLite, which ignores the lock, is just as safe): however many requests arrive at once, the
sum of what was charged never exceeds the total. Every charge is a row of its own (who, with
which token, what kind of query, ε, δ, when, and how it ended).

A charge is never refunded. A computation that fails after its charge may have failed because
of the data (an error is a channel too), so its ε counts as spent; the row says it failed.

Totals stay within the platform's ceiling (``Settings.dp_epsilon_ceiling`` and
``dp_delta_ceiling``, the custodian's), and a project that leaves DP mode ends its DP history:
the row keeps when, by whom and why, what it spent stays on record, and nothing more is
charged to it, nor can it enter DP mode again (its exact answers since then would make any
later promise of differential privacy untrue).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.db import Base, UTCDateTime, affected
from strongroom.errors import Conflict, Invalid, Unavailable

T = TypeVar("T")
MAX_DENOMINATOR = 10**12  # ε 1e-12 is far below anything useful; bounds the ledger's text
_ATTEMPTS = 50


class BudgetRow(Base):
    """One project's DP settings and what it has spent (amounts as exact ``n/d`` text)."""

    __tablename__ = "privacy_budgets"

    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), primary_key=True)
    dp_mode: Mapped[bool] = mapped_column(Boolean)  # exact analyses refused when True
    epsilon_total: Mapped[str] = mapped_column(Text)
    epsilon_spent: Mapped[str] = mapped_column(Text)
    delta_total: Mapped[str] = mapped_column(Text)
    delta_spent: Mapped[str] = mapped_column(Text)
    queries: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)  # moves with every change: races lose
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(32))
    # set once, when the project leaves DP mode: its DP history ends there
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    left_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    left_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SpendRow(Base):
    """One charge to a project's budget, made before its query ran."""

    __tablename__ = "privacy_spends"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "dps_…"
    project_id: Mapped[str] = mapped_column(ForeignKey("access_projects.id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("access_people.id"))
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # count, sum, mean, quantile, histogram
    table_name: Mapped[str] = mapped_column(String(32))
    epsilon: Mapped[str] = mapped_column(Text)
    delta: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the query as asked
    spec_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # charged, then answered or failed
    charged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


# -- exact amounts ---------------------------------------------------------------------------

def amount(value: object, what: str) -> Fraction:
    """An exact non-negative amount from ``"0.1"``, ``"1/3"``, ``"1e-6"``, 2 or 0.25.

    A float is read as the decimal it prints as (0.1 is one tenth, not the binary double
    nearest it), so a client sending JSON numbers gets the arithmetic it expects.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Fraction):
        raise Invalid(f"{what} must be a number or a decimal or fraction in a string")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if len(text) > 40:
        raise Invalid(f"{what} is too long to be an amount; write it with at most 40 "
                      f"characters")
    try:
        exact = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise Invalid(f"{what} must be a decimal (0.1, 1e-6) or a fraction (1/3)") from None
    if exact < 0:
        raise Invalid(f"{what} cannot be negative")
    if exact.denominator > MAX_DENOMINATOR:
        raise Invalid(f"{what} is finer than 1e-12; round it")
    return exact


def stored(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def loaded(text: str) -> Fraction:
    return Fraction(text)


def show(value: Fraction) -> str:
    """Exact text: a decimal when the amount has one (``0.1``), else a fraction (``1/3``)."""
    d, twos, fives = value.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    whole, decimals = digits[:len(digits) - places], digits[len(digits) - places:]
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{decimals}".rstrip("0").rstrip(".") if places else f"{sign}{whole}"


# -- the ledger ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """A project's budget as read: exact totals and spends."""

    project_id: str
    dp_mode: bool
    epsilon_total: Fraction
    epsilon_spent: Fraction
    delta_total: Fraction
    delta_spent: Fraction
    queries: int
    updated_at: dt.datetime | None
    updated_by: str | None
    left_at: dt.datetime | None = None  # when the project left DP mode (its history ended)
    left_reason: str | None = None

    @property
    def epsilon_remaining(self) -> Fraction:
        return self.epsilon_total - self.epsilon_spent

    @property
    def delta_remaining(self) -> Fraction:
        return self.delta_total - self.delta_spent

    @classmethod
    def of(cls, row: BudgetRow) -> Budget:
        return cls(row.project_id, row.dp_mode, loaded(row.epsilon_total),
                   loaded(row.epsilon_spent), loaded(row.delta_total), loaded(row.delta_spent),
                   row.queries, row.updated_at, row.updated_by, row.left_at, row.left_reason)

    @classmethod
    def none(cls, project_id: str) -> Budget:
        """A project nobody has given a budget: exact analyses, nothing to spend."""
        return cls(project_id, False, Fraction(0), Fraction(0), Fraction(0), Fraction(0), 0,
                   None, None)


class _RacedError(Exception):
    """Another transaction moved the budget row between our read and our write."""


def _locked_row(db: Session, project_id: str) -> BudgetRow | None:
    return db.scalar(select(BudgetRow).where(BudgetRow.project_id == project_id)
                     .with_for_update())


def _move(db: Session, row: BudgetRow, **values: Any) -> None:
    """Write ``values`` only if the row is still at the version read (else :class:`_RacedError`)."""
    done = affected(db.execute(
        update(BudgetRow).where(BudgetRow.project_id == row.project_id,
                                BudgetRow.version == row.version)
        .values(version=row.version + 1, **values)
        .execution_options(synchronize_session=False)))
    if done != 1:
        raise _RacedError


def retrying(attempt: Callable[[], T]) -> T:
    """Run a budget transaction again when it lost a race (or SQLite's write lock)."""
    for n in range(_ATTEMPTS):
        try:
            return attempt()
        except (_RacedError, IntegrityError):  # lost to another writer: read again, decide again
            continue
        except OperationalError as exc:  # SQLite: "database is locked" under contention
            if "locked" not in str(exc.orig).lower():
                raise
            time.sleep(min(0.002 * (n + 1), 0.05))
    raise Unavailable("the privacy budget is changing too fast to be charged safely; try "
                      "again in a moment")


def read(db: Session, project_id: str) -> Budget:
    row = db.get(BudgetRow, project_id)
    return Budget.of(row) if row is not None else Budget.none(project_id)


@dataclass(frozen=True)
class Ceiling:
    """The platform's largest totals (the custodian's ``Settings``): no project's budget is set
    above them, whoever asks."""

    epsilon: Fraction
    delta: Fraction


def configure(db: Session, project_id: str, *, dp_mode: bool | None,
              epsilon_total: Fraction | None, delta_total: Fraction | None, by: str,
              now: dt.datetime, reason: str = "", ceiling: Ceiling | None = None,
              ) -> tuple[Budget, Budget]:
    """Set a project's mode and totals; (before, after).

    Refused: a total above the platform's ceiling; a total below what is spent (spent privacy
    cannot be given back); any change once the project has left DP mode. Leaving DP mode
    (``dp_mode=False`` on a project in it) ends the DP history with ``reason``.
    """
    row = _locked_row(db, project_id)
    before = Budget.of(row) if row is not None else Budget.none(project_id)
    if before.left_at is not None:
        raise Conflict(
            f"project {project_id} left differential-privacy mode on "
            f"{before.left_at:%Y-%m-%d} ({before.left_reason}); its DP history is closed: its "
            f"budget cannot change and it cannot enter DP mode again, since its exact answers "
            f"since then would make that promise untrue; a new DP study needs a new project")
    after = Budget(
        project_id,
        before.dp_mode if dp_mode is None else dp_mode,
        before.epsilon_total if epsilon_total is None else epsilon_total,
        before.epsilon_spent,
        before.delta_total if delta_total is None else delta_total,
        before.delta_spent, before.queries, now, by)
    problems = [f"{name} {show(total)} is above the platform's ceiling of {show(top)}"
                for name, total, top in (
                    ("ε", epsilon_total, ceiling.epsilon if ceiling else None),
                    ("δ", delta_total, ceiling.delta if ceiling else None))
                if total is not None and top is not None and total > top]
    if problems:
        raise Conflict(f"project {project_id}'s budget cannot be set there: "
                       f"{'; '.join(problems)}; the custodian sets the ceiling "
                       f"(Settings.dp_epsilon_ceiling, dp_delta_ceiling) for every project")
    short = [f"{name} {show(total)} is below the {show(spent)} already spent"
             for name, total, spent in (("ε", after.epsilon_total, after.epsilon_spent),
                                        ("δ", after.delta_total, after.delta_spent))
             if total < spent]
    if short:
        raise Conflict(f"project {project_id}'s budget cannot shrink below what it has spent: "
                       f"{'; '.join(short)}; spent privacy cannot be given back")
    values: dict[str, Any] = {
        "dp_mode": after.dp_mode, "epsilon_total": stored(after.epsilon_total),
        "delta_total": stored(after.delta_total), "updated_at": now, "updated_by": by}
    if before.dp_mode and not after.dp_mode:  # leaving: the DP history ends here
        values |= {"left_at": now, "left_by": by, "left_reason": reason}
        after = replace(after, left_at=now, left_reason=reason)
    if row is None:
        db.add(BudgetRow(project_id=project_id, epsilon_spent=stored(Fraction(0)),
                         delta_spent=stored(Fraction(0)), queries=0, version=0, **values))
        db.flush()  # a concurrent first setting fails on the primary key, not silently
    else:
        _move(db, row, **values)
    return before, after


def check_fits(budget: Budget, epsilon: Fraction, delta: Fraction) -> None:
    """Raise :class:`Conflict`, saying what remains and what was asked, unless it fits."""
    if budget.left_at is not None:
        raise Conflict(f"project {budget.project_id} left differential-privacy mode on "
                       f"{budget.left_at:%Y-%m-%d}: its DP history is closed and nothing more "
                       f"is charged to it; its exact analyses go through the output check")
    if budget.updated_at is None:
        raise Conflict(f"project {budget.project_id} has no differential-privacy budget; "
                       f"the access committee sets one (PUT /projects/{budget.project_id}/dp, "
                       f"`strongroom dp mode {budget.project_id}`)")
    if epsilon > budget.epsilon_remaining or delta > budget.delta_remaining:
        raise Conflict(
            f"project {budget.project_id}'s privacy budget cannot pay for this query: it asks "
            f"ε {show(epsilon)} (δ {show(delta)}) and ε {show(budget.epsilon_remaining)} of "
            f"{show(budget.epsilon_total)} remains (δ {show(budget.delta_remaining)} of "
            f"{show(budget.delta_total)}); ask for less, or ask the access committee whether "
            f"the budget may grow")


@dataclass(frozen=True)
class Charge:
    """What a query will spend, and who asks."""

    project_id: str
    person_id: str
    token_id: str | None
    kind: str
    table: str
    epsilon: Fraction
    delta: Fraction
    spec: dict[str, Any]
    spec_sha256: str


def charge(db: Session, spend_id: str, request: Charge, now: dt.datetime) -> Budget:
    """Spend ``request`` from its project's budget and record it; the budget after.

    Raise :class:`Conflict` (naming what remains and what was asked) when it does not fit;
    :class:`_RacedError` if another charge moved the row first (see :func:`retrying`).
    """
    row = _locked_row(db, request.project_id)
    budget = Budget.of(row) if row is not None else Budget.none(request.project_id)
    check_fits(budget, request.epsilon, request.delta)
    assert row is not None
    spent_e = budget.epsilon_spent + request.epsilon
    spent_d = budget.delta_spent + request.delta
    _move(db, row, epsilon_spent=stored(spent_e), delta_spent=stored(spent_d),
          queries=row.queries + 1)
    db.add(SpendRow(id=spend_id, project_id=request.project_id, person_id=request.person_id,
                    token_id=request.token_id, kind=request.kind, table_name=request.table,
                    epsilon=stored(request.epsilon), delta=stored(request.delta),
                    spec=request.spec, spec_sha256=request.spec_sha256, status="charged",
                    charged_at=now))
    return Budget(budget.project_id, budget.dp_mode, budget.epsilon_total, spent_e,
                  budget.delta_total, spent_d, budget.queries + 1, budget.updated_at,
                  budget.updated_by)


def finish(db: Session, spend_id: str, status: str, outcome: dict[str, Any],
           now: dt.datetime) -> None:
    """Record how a charged query ended (``answered`` or ``failed``); the charge stays."""
    db.execute(update(SpendRow).where(SpendRow.id == spend_id, SpendRow.status == "charged")
               .values(status=status, outcome=outcome, finished_at=now)
               .execution_options(synchronize_session=False))


def spends(db: Session, project_id: str, limit: int = 20) -> list[SpendRow]:
    """The project's latest charges, newest first."""
    return list(db.scalars(select(SpendRow).where(SpendRow.project_id == project_id)
                           .order_by(SpendRow.charged_at.desc(), SpendRow.id.desc())
                           .limit(limit)))
