"""A reconstruction attack (Dinur and Nissim, 2003) on 250 secret bits with 500 subset sums.

The secret is a column of a 250-participant table (sex, made exactly balanced so guessing
the majority is worth 50 %). The attacker asks, for 500 random halves of the participants
(named by their pids), how many in the half have the bit set, and decodes the answers by least
squares and by Dinur and Nissim's linear program. Exact answers give every bit away. Through
DP mode, with the project's budget of ε = 1 in all, spent on 500 queries of ε 1/500 or on a
few sharper ones until it runs out, neither decoder does better than a coin (at most 65 %:
4.7 standard deviations of a coin's share over 250 bits, so chance never fails the test; the
DP bound itself, e^ε / (1 + e^ε) at ε 1, is 73 %).

``RECONSTRUCTION_BITS=500`` runs it at the scale it was first written for (1,000 queries).
The DP answers go through the real service: authorisation, the ledger, OpenDP.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import sparse
from scipy.optimize import linprog

import tests.access_world as access_world
from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.roles import Role
from strongroom.cohort.model import Cohort
from strongroom.enclave.service import scope
from strongroom.errors import Conflict, Refused
from tests.access_world import World, build_world

WHY = "the access committee approved it"  # every DP change gives its reason

pytestmark = pytest.mark.slow  # reconstruction attacks solve large systems

PARTICIPANTS = int(os.environ.get("RECONSTRUCTION_BITS", "250"))
QUERIES = 2 * PARTICIPANTS
ONE_SHARE = str(Fraction(1, QUERIES))  # ε of each answer when QUERIES spend a budget of one
COIN = 0.65  # the most a decoder may recover through DP mode
SECRET = "p31"
EXACT_SQL = {"kind": "aggregate_sql",
             "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"}


def balanced(n: int, seed: int) -> Cohort:
    """The synthetic cohort with the secret column exactly half ones, in random order."""
    cohort = access_world_synthesise(n, seed)
    bits = np.random.default_rng(seed).permutation(np.arange(n) % 2)
    return Cohort(cohort.participants.with_columns(pl.Series(SECRET, bits)), cohort.events)


access_world_synthesise = access_world.synthesise


@dataclass
class Target:
    """One project's view of the secret, and the attacker's subsets of its pids."""

    project_id: str
    pids: list[int]
    bits: np.ndarray
    subsets: np.ndarray  # QUERIES × PARTICIPANTS, 0/1


@dataclass
class Attack:
    world: World
    researcher: Principal
    committee: Principal
    targets: list[Target]


def target(world: World, researcher: Principal, project_id: str) -> Target:
    where = scope(world.platform.enclave, researcher, project_id)
    table = world.platform.enclave.tables(where.project, where.fields)["participants"]
    assert table.height == PARTICIPANTS
    subsets = (np.random.default_rng(2003).random((QUERIES, PARTICIPANTS)) < 0.5)
    return Target(project_id, table["pid"].to_list(), table[SECRET].to_numpy(),
                  subsets.astype(np.int8))


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(access_world, "synthesise", balanced)
        world = build_world(Path(tmp_path_factory.mktemp("reconstruction")),
                            cohort=PARTICIPANTS, fields=[31])
    assert world.researcher is not None
    researcher = world.sign_in(world.researcher)
    committee = world.sign_in(world.staff[Role.ACCESS_COMMITTEE])
    second = projects.create(
        world.ctx, None, title="Sex ratio, again", purpose="A second look at the same cohort",
        lead_id=world.researcher.person_id, starts_on=world.clock().date(),
        expires_on=world.clock().date().replace(year=2027), fields=[31]).project.id
    targets = [target(world, researcher, p) for p in (world.project_id, second)]
    # a thousand queries in a test's minute: the request rate is the watch's (metered by the
    # service, whoever calls it), not what this attack is about
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    for scope_, target_id in (("project", world.project_id), ("project", second),
                              ("person", researcher.person_id),
                              ("institution", researcher.institution_id)):
        world.platform.watch.set_limits(admin, scope_, target_id, {"requests": 10**6})
    for found in targets:
        world.platform.privacy.configure(committee, found.project_id, reason=WHY, dp_mode=True,
                                         epsilon="1")
    yield Attack(world, researcher, committee, targets)
    world.platform.close()


def least_squares(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    estimate, *_ = np.linalg.lstsq(a.astype(float), y, rcond=None)
    return (estimate > 0.5).astype(int)


def linear_program(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Dinur–Nissim: the x in [0, 1]^n nearest the answers in L1, rounded."""
    q, n = a.shape
    a_sparse = sparse.csr_matrix(a.astype(float))
    eye = sparse.identity(q, format="csr")
    # variables [x (n), e (q)]: minimise Σe subject to -e ≤ Ax − y ≤ e
    upper = sparse.vstack([sparse.hstack([a_sparse, -eye]), sparse.hstack([-a_sparse, -eye])])
    found = linprog(np.r_[np.zeros(n), np.ones(q)], A_ub=upper, b_ub=np.r_[y, -y],
                    bounds=[(0, 1)] * n + [(0, None)] * q, method="highs")
    assert found.status == 0, found.message
    return (found.x[:n] > 0.5).astype(int)


DECODERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "least squares": least_squares, "linear program": linear_program}


def recovered(decoder: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray,
              y: np.ndarray, bits: np.ndarray) -> float:
    return float(np.mean(decoder(a, y) == bits))


def ask(attack: Attack, found: Target, row: np.ndarray, epsilon: str) -> float:
    members = [pid for pid, inside in zip(found.pids, row, strict=True) if inside]
    answer = attack.world.platform.privacy.query(attack.researcher, found.project_id, {
        "kind": "sum", "column": SECRET, "bounds": [0, 1], "epsilon": epsilon,
        "where": [{"column": "pid", "op": "in", "value": members}]})
    value = answer.estimates[0].value
    assert value is not None
    return float(value)


def test_the_secret_is_balanced_so_a_guess_is_worth_half(attack: Attack) -> None:
    for found in attack.targets:
        assert found.bits.sum() == PARTICIPANTS // 2


@pytest.mark.parametrize("decoder", DECODERS)
def test_exact_answers_give_every_bit_away(attack: Attack, decoder: str) -> None:
    found = attack.targets[0]
    exact = found.subsets @ found.bits  # what an exact query interface would answer
    assert recovered(DECODERS[decoder], found.subsets, exact.astype(float), found.bits) == 1.0


@pytest.fixture(scope="module")
def budget_of_one(attack: Attack) -> np.ndarray:
    """The attacker's material: QUERIES DP answers of ε 1/QUERIES about the first target, the
    whole of its budget of one. Asked once, as a shared world (judged by the world budget):
    each answer goes through the whole privacy service, and the 500 of them were the suite's
    most CPU for one test (20-25 CPU-s on a slow day, against the per-test budget of 30)."""
    found = attack.targets[0]
    return np.array([ask(attack, found, row, ONE_SHARE) for row in found.subsets])


def test_dp_mode_with_a_budget_of_one_gives_nothing_away(attack: Attack,
                                                         budget_of_one: np.ndarray) -> None:
    """QUERIES DP answers of ε 1/QUERIES: the budget pays for exactly all of them, then stops."""
    found = attack.targets[0]
    with pytest.raises(Refused, match="differential-privacy mode"):
        attack.world.platform.outputs.analyse(attack.researcher, found.project_id, EXACT_SQL)
    answers = budget_of_one
    with pytest.raises(Conflict, match="cannot pay"):
        ask(attack, found, found.subsets[0], ONE_SHARE)
    view = attack.world.platform.privacy.budget_of(attack.researcher, found.project_id)
    assert view.budget.epsilon_spent == 1 and view.budget.queries == QUERIES
    exact = found.subsets @ found.bits
    assert np.abs(answers - exact).std() > QUERIES / 2  # Laplace noise of scale QUERIES
    for name, decoder in DECODERS.items():
        share = recovered(decoder, found.subsets, answers, found.bits)
        print(f"DP mode, {QUERIES} answers of ε 1/{QUERIES}: {name} recovers {share:.1%}")
        assert share <= COIN, f"{name} recovered {share:.1%} through DP mode"


def test_sharper_queries_until_the_budget_runs_out_give_nothing_away(attack: Attack) -> None:
    """ε 0.05 each: twenty answers, then every further query is refused."""
    found = attack.targets[1]
    answered: list[float] = []
    refused = 0
    for row in found.subsets:
        try:
            answered.append(ask(attack, found, row, "0.05"))
        except Conflict:
            refused += 1
            if refused >= 50:  # the attacker gives up; the budget will not move
                break
    assert len(answered) == 20
    rows = found.subsets[:len(answered)]
    for name, decoder in DECODERS.items():
        share = recovered(decoder, rows, np.array(answered), found.bits)
        print(f"DP mode, 20 answers of ε 0.05: {name} recovers {share:.1%}")
        assert share <= COIN, f"{name} recovered {share:.1%} from twenty sharper answers"
