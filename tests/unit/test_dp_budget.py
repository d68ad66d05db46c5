"""The privacy budget's arithmetic is exact, and its ledger never pays for more than it holds."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

import strongroom.access.models  # noqa: F401  (the tables the ledger refers to)
from strongroom.db import Base
from strongroom.errors import Conflict, Invalid
from strongroom.privacy import budget
from strongroom.privacy.budget import BudgetRow, Charge, SpendRow
from strongroom.privacy.service import below

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
PROJECT = "prj_000000000001"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """The ledger's two tables in SQLite (foreign keys off: no projects or people needed)."""
    made = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    Base.metadata.create_all(made, tables=[BudgetRow.__table__, SpendRow.__table__])
    return made


def configure(engine: Engine, **values: object) -> tuple[budget.Budget, budget.Budget]:
    with Session(engine, expire_on_commit=False) as db, db.begin():
        return budget.configure(db, PROJECT, by="per_admin", now=NOW, **{  # type: ignore[arg-type]
            "dp_mode": None, "epsilon_total": None, "delta_total": None, **values})


def spend(engine: Engine, epsilon: str, n: int = 0) -> budget.Budget:
    request = Charge(PROJECT, "per_researcher", None, "count", "participants",
                     Fraction(epsilon), Fraction(0), {"kind": "count"}, "0" * 64)
    with Session(engine, expire_on_commit=False) as db, db.begin():
        return budget.charge(db, f"dps_{n:012d}", request, NOW)


# -- exact amounts ---------------------------------------------------------------------------

@pytest.mark.parametrize(("given_as", "exact"), [
    ("0.1", Fraction(1, 10)), (0.1, Fraction(1, 10)), ("1/3", Fraction(1, 3)),
    ("1e-6", Fraction(1, 10**6)), (2, Fraction(2)), (" 0.25 ", Fraction(1, 4)),
    (Fraction(3, 7), Fraction(3, 7)), ("0", Fraction(0)),
])
def test_amounts_are_read_exactly(given_as: object, exact: Fraction) -> None:
    assert budget.amount(given_as, "epsilon") == exact


@pytest.mark.parametrize(("given_as", "why"), [
    ("-0.1", "negative"), ("ten", "decimal"), ("1/0", "decimal"), (True, "number"),
    (None, "number"), ("1e-13", "finer"), ("1" * 41, "too long"), (float("nan"), "decimal"),
])
def test_bad_amounts_are_refused_with_a_reason(given_as: object, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        budget.amount(given_as, "epsilon")


@pytest.mark.parametrize(("value", "text"), [
    (Fraction(1, 10), "0.1"), (Fraction(1, 3), "1/3"), (Fraction(5), "5"), (Fraction(0), "0"),
    (Fraction(3, 2), "1.5"), (Fraction(1, 10**6), "0.000001"), (Fraction(1, 8), "0.125"),
    (Fraction(-7, 4), "-1.75"), (Fraction(2, 3) - Fraction(1, 6), "0.5"),
])
def test_amounts_are_shown_exactly(value: Fraction, text: str) -> None:
    assert budget.show(value) == text
    assert Fraction(text) == value


@given(st.fractions(min_value=Fraction(1, 10**12), max_value=Fraction(1000),
                    max_denominator=10**12))
def test_stored_text_round_trips_and_shown_text_is_exact(value: Fraction) -> None:
    assert budget.loaded(budget.stored(value)) == value
    assert Fraction(budget.show(value)) == value


@given(st.fractions(min_value=Fraction(1, 10**12), max_value=Fraction(100),
                    max_denominator=10**12))
def test_opendp_is_never_given_more_than_was_charged(value: Fraction) -> None:
    given_to_opendp = below(value)
    assert Fraction(given_to_opendp) <= value
    assert given_to_opendp > 0


# -- the ledger ------------------------------------------------------------------------------

def test_ten_queries_of_a_tenth_fit_a_budget_of_one_exactly(engine: Engine) -> None:
    configure(engine, epsilon_total=Fraction(1))
    for n in range(10):
        after = spend(engine, "0.1", n)
    assert after.epsilon_spent == 1 and after.epsilon_remaining == 0
    assert sum([0.1] * 10) != 1.0  # what floats would have made of it
    with pytest.raises(Conflict) as refused:
        spend(engine, "0.1", 10)
    reason = str(refused.value)
    assert "asks ε 0.1" in reason and "ε 0 of 1 remains" in reason, reason
    with Session(engine) as db:
        assert len(db.scalars(select(SpendRow)).all()) == 10
        assert db.get(BudgetRow, PROJECT).epsilon_spent == "1/1"  # type: ignore[union-attr]


def test_three_tenths_fit_where_floats_would_refuse_the_third(engine: Engine) -> None:
    configure(engine, epsilon_total=budget.amount("0.3", "e"))
    assert 0.1 + 0.1 + 0.1 > 0.3  # a float ledger would refuse the third query
    for n in range(3):
        spend(engine, "0.1", n)
    with pytest.raises(Conflict):
        spend(engine, "1e-12", 3)  # not even the smallest amount is left


def test_a_project_without_a_budget_spends_nothing(engine: Engine) -> None:
    with pytest.raises(Conflict, match="no differential-privacy budget"):
        spend(engine, "0.1")


def test_the_budget_may_grow_but_never_shrink_below_what_is_spent(engine: Engine) -> None:
    before, after = configure(engine, dp_mode=True, epsilon_total=Fraction(1))
    assert (before.dp_mode, after.dp_mode, after.epsilon_total) == (False, True, 1)
    spend(engine, "0.6")
    with pytest.raises(Conflict, match=r"below the 0\.6 already spent"):
        configure(engine, epsilon_total=Fraction(1, 2))
    _, grown = configure(engine, epsilon_total=Fraction(2))
    assert grown.epsilon_remaining == Fraction(14, 10) and grown.dp_mode  # mode kept
    _, exact = configure(engine, dp_mode=False)
    assert not exact.dp_mode and exact.epsilon_total == 2


def test_a_write_against_a_moved_row_loses_and_is_retried(engine: Engine) -> None:
    configure(engine, epsilon_total=Fraction(1))
    with Session(engine) as stale:
        row = stale.get(BudgetRow, PROJECT)
        assert row is not None
        spend(engine, "0.5")  # another request moves the row meanwhile
        with pytest.raises(budget._RacedError):
            budget._move(stale, row, epsilon_spent="0/1")
    tries: list[int] = []

    def attempt() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise budget._RacedError
        return "done"

    assert budget.retrying(attempt) == "done" and len(tries) == 3
    with Session(engine) as db:
        assert budget.read(db, PROJECT).epsilon_spent == Fraction(1, 2)  # not overwritten


def test_a_finished_charge_stays_spent(engine: Engine) -> None:
    configure(engine, epsilon_total=Fraction(1))
    spend(engine, "0.25", 1)
    with Session(engine) as db, db.begin():
        budget.finish(db, "dps_000000000001", "failed", {"error": "EngineError"}, NOW)
    with Session(engine) as db, db.begin():  # a second ending does not overwrite the first
        budget.finish(db, "dps_000000000001", "answered", {}, NOW)
    with Session(engine) as db:
        row = db.get(SpendRow, "dps_000000000001")
        assert row is not None and row.status == "failed" and row.outcome == {
            "error": "EngineError"}
        assert budget.read(db, PROJECT).epsilon_spent == Fraction(1, 4)
        assert [s.id for s in budget.spends(db, PROJECT)] == ["dps_000000000001"]
