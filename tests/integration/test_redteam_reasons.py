"""Red team: the reasons, statuses and classes of refusals, on every request that reads data.

Whatever a researcher observes that can hang on a participant's value is either the same
whatever the data or a rationed answer (outputs/answers.py). The earlier red teams
(test_redteam_metadata.py, test_redteam_time_surfaces.py) made the platform's own failures
once the data are read answers (``errors.failures_are_answers``). This module attacks what
surrounds a refusal: its reason's text (does one rationed refusal say more than one bit?),
its status and its class (is a refusal met after the data are read a free ``Invalid``
rather than a rationed ``DataRefusal``?), on definitions, aggregate SQL, analyses and the
output check.

Each test makes the truth custodian-side (a target's BMI read from the database by the
cast; where the platform's own code is made to fail, it fails only on the target's row, as
an engine's or a library's could) and reads what the attacker's client is told and the
answers spent. Leaks are ``xfail(strict=True)`` naming the fix; surfaces that hold are
plain tests stating the guarantee.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import duckdb
import pytest

from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import engine
from strongroom.outputs import answers
from tests.redteam_world import (
    attacker,
    module_cast,
    module_world,
    outcome,
)

pytestmark = pytest.mark.slow

world = module_world()
cast = module_cast()


def _spent(world: AttackWorld, who: Principal) -> int:
    """Custodian-side: the person's answers used today (outputs acted on or refused by the
    data, and definitions' reservations kept)."""
    with world.platform.access.transaction() as db:
        return answers.used(db, who.person_id, world.clock(),
                            world.platform.rations.of(db, who.person_id))


def _told(world: AttackWorld, who: Principal, project: str, request: dict[str, Any]) -> str:
    """An analysis through the output service, as every caller makes it: an answer (its
    verdict and, for a refusal, its reasons) or an error."""
    seen: list[str] = []

    def ask() -> None:
        view = world.platform.outputs.analyse(who, project, request)
        report = view.check_report
        seen.append(f"{report.verdict.value}: " + " | ".join(
            f.reason for f in report.findings if f.rule == "refused"))
    told = outcome(ask, named=True)
    return seen[0] if seen else told


# -- a refusal's reason: one rationed answer, how many bits? --------------------------------


def _frames(target: runner.Target, line: float) -> str:
    """A definition whose window frames are computed from the target's row: a ROWS frame
    with a negative offset if their BMI is over ``line`` (DuckDB: invalid input), a RANGE
    frame with one if it is over 30 and at most ``line`` (DuckDB: out of range)."""
    who = target.condition
    return ("SELECT pid, "
            f"sum(1) OVER (PARTITION BY pid ORDER BY bmi ROWS BETWEEN CASE WHEN {who} AND "
            f"bmi > {line} THEN -1 ELSE 0 END PRECEDING AND CURRENT ROW) AS a, "
            f"sum(1) OVER (PARTITION BY pid ORDER BY bmi RANGE BETWEEN CASE WHEN {who} AND "
            f"bmi > 30 AND bmi <= {line} THEN -1 ELSE 0 END PRECEDING AND CURRENT ROW) AS b "
            "FROM base")


def test_one_rationed_refusal_tells_at_most_one_bit(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A definition refused once it has read the data is one answer, and says one bit:
    refused or not, never which of several refusals.* Three targets, lean, obese under a
    line and obese over it (custodian-side); one definition each, the same but for the
    target's condition: the refusal's reason differs between the two obese ones."""
    heavy = sorted(cast.obese, key=lambda t: t.bmi)
    line = (heavy[0].bmi + heavy[-1].bmi) / 2
    assert heavy[0].bmi <= line < heavy[-1].bmi
    seen: dict[str, tuple[str, int]] = {}
    for label, target in (("lean", cast.lean[0]), ("obese", heavy[0]),
                          ("very obese", heavy[-1])):
        who, project = attacker(world)
        told = outcome(lambda who=who, project=project, target=target:
                       world.platform.outputs.define(who, project, "frames",
                                                     _frames(target, line)), named=True)
        seen[label] = (told, _spent(world, who))
    # the refusals are rationed (an answer kept spent) …
    assert seen["lean"] == ("answered", 0), seen
    assert seen["obese"][1] >= 1 and seen["very obese"][1] >= 1, seen
    # … but one answer told three outcomes apart
    assert len({told for told, _ in seen.values()}) <= 2, seen


EDGES = (0, 25, 30, 35, 100)  # BMI bands: one covariate each


def _copies(target: runner.Target) -> str:
    """A definition whose covariates ``c0`` … ``c3`` are each a copy of ``sex``, but on the
    target's row when their BMI is in the covariate's band (0.5 there: between the values
    of many, so no winsorising moves it). Every copy but that one is collinear with ``sex``."""
    copies = ", ".join(f"CASE WHEN {target.condition} AND bmi > {low} AND bmi <= {high} "
                       f"THEN 0.5 ELSE sex END AS c{i}"
                       for i, (low, high) in enumerate(itertools.pairwise(EDGES)))
    return f"SELECT pid, birth_year AS y, sex, {copies} FROM base"


def test_a_fit_s_refusal_does_not_name_what_the_data_decided(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A model refused by the data says that it was refused, one answer, never which of
    its covariates the data picked out.* Targets with BMIs in three of four bands
    (custodian-side); OLS of ``y`` on ``sex`` and the four copies: the refusal's reason
    names a different set of covariates for each band."""
    bands: dict[int, runner.Target] = {}
    for target in (*cast.lean, *cast.obese):
        band = next(i for i, high in enumerate(EDGES[1:]) if target.bmi <= high)
        bands.setdefault(band, target)
    assert len(bands) >= 3, bands
    seen: dict[int, tuple[str, frozenset[str], int]] = {}
    for band, target in sorted(bands.items()):
        who, project = attacker(world)
        world.platform.outputs.define(who, project, "model", _copies(target))
        before = _spent(world, who)
        told = _told(world, who, project, {
            "kind": "ols", "definition": "model", "outcome": "y",
            "covariates": ["sex", "c0", "c1", "c2", "c3"]})
        named = frozenset(re.findall(r"'(\w+)'", told.split(" is constant")[0]))
        seen[band] = (told, named, _spent(world, who) - before)
    # each refused once the data were read, and rationed …
    assert all(t.startswith("block: the covariates are collinear") and spent >= 1
               for t, _, spent in seen.values()), seen
    # … but one answer told the bands apart
    assert len({named for _, named, _ in seen.values()}) <= 2, seen


# -- a query's error met while reading: a free Invalid? --------------------------------------


def _query_error_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The truth made by the test: DuckDB raises an error of a class the enclave reads as a
    mistake in the query (``NotImplementedException``, which DuckDB raises while executing
    too, for a value a vector operation does not support) only when the query returns a row,
    that is only when its filter on the target's value let their row through. Raised where
    DuckDB executes (``con.sql(…).pl()``, whose frame ``plain_types`` receives)."""
    real = engine.plain_types

    def plain_types(frame: Any) -> Any:
        if frame.height:
            raise duckdb.NotImplementedException("Not implemented Error: met on a value")
        return real(frame)
    monkeypatch.setattr(engine, "plain_types", plain_types)


def test_a_query_error_met_while_executing_an_aggregate_is_an_answer(
        world: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """*Whatever DuckDB raises once a query executes (after it has bound: the query's own
    mistakes are found then) is a DataRefusal, a blocked and rationed output, never a free
    ``Invalid``.* Aggregate SQL over the obese and the lean target, ``… AND bmi > 30``; the
    engine fails only on a row (the truth). Before: ``engine.failure`` read the error's class
    alone, and a ``NotImplementedException`` (or a binder, catalog or parser one) met while
    executing was "DuckDB could not run the query", free: a bit per request, no answer spent."""
    attackers = {t.obese: attacker(world) for t in (cast.obese[0], cast.lean[0])}
    _query_error_when_read(monkeypatch)
    seen: dict[bool, tuple[str, int]] = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attackers[target.obese]
        sql = (f"SELECT sex, count(*) AS n FROM base WHERE {target.condition} AND bmi > 30 "
               "GROUP BY sex")
        told = _told(world, who, project, {"kind": "aggregate_sql", "sql": sql})
        seen[target.obese] = (told, _spent(world, who))
    assert seen[True][0].startswith("block: the query stopped once it had read the data"), seen
    assert seen[True][1] >= 1, seen  # rationed
    assert "DuckDB could not run the query" not in seen[True][0], seen


def test_a_query_error_met_while_executing_a_definition_spends_its_answer(
        world: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """*A definition that meets any error once its query executes keeps its answer spent.*
    As above, for a definition of the target's row if their BMI is over 30. Before: an
    ``Invalid`` (not a DataRefusal), so ``Outputs.define`` gave its answer back: free."""
    attackers = {t.obese: attacker(world) for t in (cast.obese[0], cast.lean[0])}
    _query_error_when_read(monkeypatch)
    seen: dict[bool, tuple[str, int]] = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attackers[target.obese]
        told = outcome(lambda who=who, project=project, target=target:
                       world.platform.outputs.define(
                           who, project, "one", f"SELECT pid, bmi FROM base WHERE "
                           f"{target.condition} AND bmi > 30"), named=True)
        seen[target.obese] = (told, _spent(world, who))
    assert seen[True][0].startswith(
        "DataRefusal invalid: the query stopped once it had read the data"), seen
    assert seen[True][1] >= 1, seen


def test_a_query_s_own_mistake_is_still_told_for_free(world: AttackWorld) -> None:
    """*A mistake DuckDB finds when it binds the query (before it reads a row) is a free
    ``Invalid`` with DuckDB's words, whatever the data.* (The fix above must not make every
    honest typo cost an answer.)"""
    who, project = attacker(world)
    told = outcome(lambda: world.platform.outputs.define(
        who, project, "typo", "SELECT pid, strftime(CAST(bmi AS DATE), CAST(sex AS VARCHAR)) "
        "AS s FROM base"), named=True)
    assert told.startswith("Invalid invalid: DuckDB could not run the query: Binder Error"), told
    assert _spent(world, who) == 0


# -- the output check: after the data are read, outside failures_are_answers -----------------


def test_an_error_in_the_output_check_once_the_data_are_read_is_an_answer(
        world: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """*Whether the output check fails on a result is an answer, rationed, like a failure of
    the run itself.* The check fails (as a library's error on a value would) only when a
    cell has a contributor, that is only when the filter on the target's BMI let their row
    through (the truth)."""
    outputs = world.platform.outputs
    real = outputs._checked

    def checked(result: Any, *args: Any, **kwargs: Any) -> Any:
        if any(cell.contributors.size for cell in result.cells):
            raise FloatingPointError("the check failed on the real data")
        return real(result, *args, **kwargs)
    attackers = {t.obese: attacker(world) for t in (cast.obese[0], cast.lean[0])}
    monkeypatch.setattr(outputs, "_checked", checked)
    seen: dict[bool, tuple[str, int]] = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attackers[target.obese]
        sql = (f"SELECT sex, count(*) AS n FROM base WHERE {target.condition} AND bmi > 30 "
               "GROUP BY sex")
        seen[target.obese] = (_told(world, who, project, {"kind": "aggregate_sql",
                                                          "sql": sql}),
                              _spent(world, who))
    assert not seen[True][0].startswith("internal"), seen
    assert seen[True][1] >= 1, f"the failure spent nothing: {seen}"


# -- analyses: a refusal inside a fit ---------------------------------------------------------


def test_a_fit_refused_by_one_participant_s_value_is_a_rationed_blocked_output(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*An analysis refused by a value it read (here a binomial GLM's outcome, 2 on the
    target's row when their BMI is over 30: "must hold 0/1") is answered as a blocked
    output, rationed, with the status of any output; never a free ``Invalid``.* A binomial
    outcome is not winsorised, so the value reaches the fit (the truth)."""
    seen: dict[bool, tuple[str, int]] = {}
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attacker(world)
        world.platform.outputs.define(
            who, project, "model", f"SELECT pid, CASE WHEN {target.condition} AND bmi > 30 "
            "THEN 2 ELSE sex END AS y, birth_year FROM base")
        before = _spent(world, who)
        told = _told(world, who, project, {"kind": "glm", "definition": "model",
                                           "formula": "y ~ birth_year", "family": "binomial"})
        seen[target.obese] = (told, _spent(world, who) - before)
    assert seen[True][0].startswith("block: the outcome 'y' must hold 0/1"), seen
    assert seen[True][1] >= 1, seen
    assert not seen[False][0].startswith("internal") and "Invalid" not in seen[False][0], seen


# -- a library's panic met on one participant's row: outside every handler? -----------------

# a group key past the range of Polars' dates on the target's row alone: Polars panics (a
# PyO3 PanicException, a BaseException) when it reads the group's label, where the enclave's
# handlers caught Exception only. A red team: HTTP 500 for obese targets, 201 for lean ones,
# 16 of 16, no answer spent, and BMI read to 0.12 by bisection; a polled run stayed running
PANIC_KEY = ("CASE WHEN {T} AND bmi > 30 THEN CAST('infinity' AS DATE) "
             "ELSE DATE '2000-01-01' END")


def test_a_library_s_panic_on_one_participant_s_row_is_an_answer(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A failure of a library met once the data are read, a Rust panic included, is a
    DataRefusal: a blocked output and one answer, never an error that escapes for free.*
    Aggregate SQL grouped by a key that is a date past Polars' range only on the obese
    target's row, and a frequency of such a column of a definition: the lean targets'
    requests are answered, the obese ones' refused by the data, each an answer, and nothing
    escapes the output service."""
    for target in (cast.obese[0], cast.lean[0]):
        key = PANIC_KEY.format(T=target.condition)
        who, project = attacker(world)
        before = _spent(world, who)
        told = _told(world, who, project, {"kind": "aggregate_sql", "sql": (
            f"SELECT {key} AS v, count(*) AS n FROM base GROUP BY v")})
        world.platform.outputs.define(who, project, "dated", f"SELECT pid, {key} AS v FROM base")
        counted = _told(world, who, project, {"kind": "frequency", "definition": "dated",
                                              "variable": "v"})
        if target.obese:  # the truth: the panic was met on their row
            assert told.startswith("block: the platform could not complete this"), told
            assert counted.startswith("block: the platform could not complete this"), counted
            assert _spent(world, who) - before >= 2
        else:
            assert not told.startswith(("internal", "block")), told
            assert not counted.startswith(("internal", "block")), counted


def test_a_polled_run_that_met_a_panic_ends_and_frees_its_place(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A submitted run ends whatever its analysis met, a library's panic included, and
    stops counting against the person's runs in flight.* The same aggregate as above,
    submitted and polled, for the obese and the lean target: each run ends ``done`` (the
    obese one's output refused by the data), none stays ``running``."""
    from strongroom.outputs.runs import RunStatus

    runs = world.platform.runs
    for target in (cast.obese[0], cast.lean[0]):
        who, project = attacker(world)
        row = runs.submit(who, project, {"kind": "aggregate_sql", "sql": (
            f"SELECT {PANIC_KEY.format(T=target.condition)} AS v, count(*) AS n "
            "FROM base GROUP BY v")})
        assert runs.wait(row.id, 60), "the run never ended"
        polled = runs.get(who, row.id).run
        assert polled.status == RunStatus.DONE.value and polled.output_id, polled
