"""Researchers at once against a real server, on SQLite and on PostgreSQL (issue 52): the small
version of ``benchmarks/load.py``, sharing its driver (strongroom.attacks.load).

Ten clients, each a researcher with their own connection and loopback address (two in three
signing in with password and code, the rest with API tokens; two institutions, members of
projects led at the other), do mixed work for eight seconds: who-am-I, limits, grouped counts,
small record-level extracts, release requests, downloads of released outputs (bytes and table).
Then 30 requests, released together by a barrier, race at the last unit of three limits.
The ground truth is read custodian-side from the database.

Guarantees under test: no answer is a 5xx and no connection is dropped; every request served
has exactly one meter row (none lost, none duplicated), every extract served its exposure
row, every cell downloaded is metered; and no race at the last unit gets more than the limit
leaves (downloads at a cells limit with room for 5, extracts at a record-participants
allowance with room for one, analyses at an answer budget with one left). Latency is reported
by the benchmark, never asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from strongroom.attacks import load
from strongroom.attacks.world import AttackWorld
from strongroom.server.app import create_app
from tests.conftest import POSTGRES_URL, postgres_schema

pytestmark = pytest.mark.slow

CLIENTS = 10  # at once, however many the machine runs in parallel (the benchmark: 30, 100)
# long enough for every kind of work on a loaded machine: a release request follows its
# desk's own analysis (4-5 s at a load of 15 on 2 cores; a 4-s run missed it, a 6-s one just
# made it)
SECONDS = 8.0
COHORT = 1000
SEED = 7
TIMEOUT = 60.0  # an answer slower than this counts as a dropped connection


@dataclass
class Measured:
    database: str
    load: load.LoadResult
    races: dict[str, load.Overshoot]
    race_log: load.ServerLog

    def log(self) -> str:
        return (f"server log under load:\n{load.server_log_report(self.load.server_log)}\n"
                f"server log in the races:\n{load.server_log_report(self.race_log)}")


def _reachable() -> bool:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as con:
            con.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def measured(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    database = request.param
    if database == "postgresql" and not _reachable():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} (CI has it)")
    with (postgres_schema() if database == "postgresql" else nullcontext()) as url:
        root = tmp_path_factory.mktemp(f"load-{database}")
        world = AttackWorld.build(Path(root / "mixed"), cohort=COHORT, seed=SEED,
                                  database_url=url, networks=("127.0.0.0/8", "10.0.0.0/8"))
        try:
            result = load.run_load(world, create_app, database=database, clients=CLIENTS,
                                   seconds=SECONDS, seed=SEED, cohort=COHORT, timeout=TIMEOUT)
            race_log = load.ServerLog()
            races = load.race_all(world, create_app, database, racers=30, timeout=TIMEOUT,
                                  server_log=race_log)
        finally:
            world.close()
    print(f"\n{load.summary_table([result])}\n\n{load.load_table([result])}\n\n"
          f"{load.overshoot_table(races)}")
    yield Measured(database, result, {r.scenario: r for r in races}, race_log)


def test_the_load_ran_every_kind_of_work(measured: Measured) -> None:
    """The guarantees below mean something only if each kind of work was served."""
    r = measured.load
    assert r.led_elsewhere > 0 and r.institutions > 1 and r.projects > 1
    assert 0 < r.sessions < r.clients
    missing = [kind for kind in load.KINDS if r.served(kind) == 0]
    assert missing == [], (missing, load.refusals([r]))


def test_no_answer_is_a_server_error(measured: Measured) -> None:
    r = measured.load
    errors = {kind: s.server_errors for kind, s in r.kinds.items() if s.server_errors}
    assert errors == {}, f"{errors}\n{load.refusals([r])}\n{measured.log()}"


def test_no_connection_is_dropped(measured: Measured) -> None:
    r = measured.load
    dropped = {kind: dict(s.dropped) for kind, s in r.kinds.items() if s.dropped}
    assert dropped == {}, f"{dropped}\n{measured.log()}"


def test_every_request_served_has_exactly_one_meter_row(measured: Measured) -> None:
    r = measured.load
    wrong = {kind: (r.served(kind), r.metered(kind)) for kind in load.KINDS
             if r.served(kind) != r.metered(kind)}
    assert wrong == {}, f"(served, metered) by kind: {wrong}\n{measured.log()}"


def test_every_extract_served_has_its_exposure_and_its_participants_metered(
        measured: Measured) -> None:
    r, t = measured.load, measured.load.truth
    assert (t.exposures, t.exposure_participants) == (
        r.extracts_served, t.extract_participants_metered)


def test_every_cell_downloaded_is_metered(measured: Measured) -> None:
    r = measured.load
    assert r.cells_served > 0
    assert r.truth.cells_metered == r.cells_served


@pytest.mark.parametrize("scenario", ["downloads", "extracts", "answers"])
def test_requests_at_once_get_no_more_than_the_limit_leaves(measured: Measured,
                                                            scenario: str) -> None:
    race = measured.races[scenario]
    assert race.served > 0, f"nothing was served: {load.overshoot_table([race])}"
    assert race.over == 0, f"{load.overshoot_table([race])}\n{measured.log()}"
    assert race.dropped == 0 and not any(s >= 500 for s in race.statuses), \
        f"{load.overshoot_table([race])}\n{measured.log()}"
