"""Red team (issue 54): the GWAS membership bound per group, attacked end to end.

The guarantee attacked: whatever GWAS outputs are released about a group of people (many
traits, requests, projects, institutions, a 0/1 trait's cases and controls), Sankararaman's LR
attacker holding a candidate's genotype and the population frequencies has at most 10% power
at a 5% false-positive rate.

The world is tests/integration/test_membership_bound.py's: 3,000 participants at 3,000
independent variants of known population frequencies (the attacker's reference). Membership is
read custodian-side from the store. Each attack works on its own group (disjoint birth years),
so one attack's spending does not shelter another's. The attacker sums the LR statistic over
every release (each scored with its own group's released frequencies) and calibrates the
threshold on half the people outside every group it attacks, measuring on the other half.

Broken: closing a project (its key destroyed) drops its spending from the ledger, so each new
project over the same group starts afresh (held while the projects are open: the control);
requests in flight together each read the same "spent" and each spend the whole budget, and
two in one project lose one's spending for good; a logistic GWAS's cases (a subgroup the
attacker picks with a 0/1 trait) are over the bound, their frequencies worked out from the
odds ratios, because the variants are chosen for their case/control difference; and a 0/1
trait fitted "linear" leaves its cases unbounded altogether.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.roles import Role
from strongroom.enclave import service
from strongroom.genomics.membership import lr_statistic
from strongroom.outputs.genetics import frame_of
from strongroom.outputs.render import Format
from strongroom.outputs.verdicts import Verdict
from tests.access_world import World
from tests.gwas_world import FIELDS, stored
from tests.membership_world import build_membership_world

ALPHA, BOUND = 0.05, 0.10
PRIMES = (7919, 104729, 1299709, 15485863, 179424673, 2038074743, 982451653, 32452843,
          49979687, 86028121, 122949829, 160481219, 198491317, 236887699, 275604541, 314606869)
CASES = 0.35
TRAITS = ("p21001_i0 AS bmi, p4080_i0_a0 AS sbp, ln(p21001_i0) AS log_bmi, "
          "p4080_i0_a0 / p21001_i0 AS sbp_per_bmi, p4080_i0_a0 * p21001_i0 AS sbp_bmi, "
          "p4080_i0_a0 - 3 * p21001_i0 AS sbp_less_bmi, p34 AS birth_year, "
          "sqrt(p4080_i0_a0) AS root_sbp, "
          # traits no one's genotype explains, as many as an attacker likes: each releases
          # other variants (its own top hits by chance)
          + ", ".join(f"(p21001_i0 * {a} + p4080_i0_a0 * {k + 3}.7) % 1 AS r{k}"
                      for k, a in enumerate(PRIMES))
          # a 0/1 trait whose cases are whichever subgroup the attacker chose
          + f", CASE WHEN (p21001_i0 * {PRIMES[0]} + p4080_i0_a0 * 3.7) % 1 < {CASES} THEN 1 "
          "ELSE 0 END AS chosen")
FIRST = ["bmi", "sbp", "log_bmi", "sbp_per_bmi"]
SECOND = ["root_sbp"]


def _sql(where: str) -> str:
    return (f"SELECT pid, p31 AS sex, {TRAITS} FROM participants WHERE p21001_i0 IS NOT NULL "
            f"AND p4080_i0_a0 IS NOT NULL AND {where}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, np.ndarray,
                                                                        np.ndarray, np.ndarray]]:
    """The world; every participant's genotypes (eid order), their eids, the population's
    ALT frequencies."""
    found, g, eids, truth = build_membership_world(tmp_path_factory.mktemp("redteam-membership"))
    yield found, g, eids, truth
    found.platform.close()


def _members(world: World, lo: int, hi: int) -> np.ndarray:
    """A group's eids, custodian-side: born in [lo, hi), with BMI and blood pressure."""
    people = world.platform.store.load().participants
    year = pl.col("p34").cast(pl.Int64)
    return people.filter(pl.col("p21001_i0").is_not_null() & pl.col("p4080_i0_a0").is_not_null()
                         & (year >= lo) & (year < hi))["eid"].to_numpy()


def _project(world: World, title: str, lead: str = "outsider") -> str:
    member = world.outsider if lead == "outsider" else world.researcher
    assert member is not None
    today = world.clock().date()
    made = projects.create(world.ctx, None, title=title, purpose="the same people again",
                           lead_id=member.person_id, starts_on=today,
                           expires_on=today + dt.timedelta(days=300), fields=FIELDS).project.id
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    projects.set_genotypes(world.ctx, admin, made, True)
    return made


def _gwas(world: World, project_id: str, who: str | Principal, lo: int, hi: int,
          traits: list[str], model: str = "linear", name: str = "group") -> pl.DataFrame:
    if isinstance(who, str):
        member = world.researcher if who == "researcher" else world.outsider
        assert member is not None
        principal = world.sign_in(member)
    else:
        principal = who
    service.define(world.platform.enclave, principal, project_id, name,
                   _sql(f"p34 >= {lo} AND p34 < {hi}"))
    view = world.platform.outputs.analyse(principal, project_id, {
        "kind": "gwas", "definition": name, "traits": traits, "model": model,
        "covariates": ["sex"], "categorical": ["sex"], "principal_components": 0},
        Format("json"))
    return frame_of(stored(world, view))


def _attack(g: np.ndarray, eids: np.ndarray, members: np.ndarray, outside: np.ndarray,
            truth: np.ndarray, releases: list[tuple[int, pl.DataFrame]]) -> tuple[float, float,
                                                                                 int]:
    """The LR attack summed over ``releases`` ((group size, table)): (power on ``members``,
    false-positive rate, distinct variants used); the threshold set on half of ``outside``
    (eids in none of the attacked groups), the rate measured on the other half."""
    rows = {int(e): k for k, e in enumerate(eids)}
    at_members = np.array([rows[int(e)] for e in members])
    at_outside = np.array([rows[int(e)] for e in outside])
    calibrate, measure = at_outside[::2], at_outside[1::2]
    used: set[str] = set()

    def score(people: np.ndarray) -> np.ndarray:
        total = np.zeros(people.size)
        for n, table in releases:
            if table.is_empty() or "alt_freq" not in table.columns:
                continue
            union = table.group_by("id").agg(pl.col("alt_freq").first())
            used.update(union["id"].to_list())
            at = np.array([int(i.removeprefix("rs")) - 1000 for i in union["id"].to_list()])
            total += lr_statistic(g[np.ix_(people, at)], union["alt_freq"].to_numpy(),
                                  truth[at], floor=1 / (4 * n))
        return total

    threshold = np.quantile(score(calibrate), 1 - ALPHA, method="higher")
    return (float((score(at_members) > threshold).mean()),
            float((score(measure) > threshold).mean()), len(used))


def _bound(n: int) -> float:
    return BOUND + 2.5 * float(np.sqrt(BOUND * (1 - BOUND) / n))  # sampling error, as the suite's


def _outside(world: World, eids: np.ndarray, *groups: np.ndarray) -> np.ndarray:
    return eids[~np.isin(eids, np.concatenate(groups))]


# -- a project's budget forgotten when its key is destroyed ------------------------------------


def test_closing_projects_gives_their_group_a_fresh_budget_each_time(
        world: tuple[World, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Two projects open together share the group's budget (the control: the second gets
    little); closed, each later project gets it whole."""
    found, g, eids, truth = world
    lo, hi = 1900, 1946
    members = _members(found, lo, hi)
    outside = _outside(found, eids, members)
    admin = found.sign_in(found.staff[Role.CUSTODIAN_ADMIN])
    released: list[tuple[int, pl.DataFrame]] = []
    open_now: list[str] = []
    for k in range(9):
        j = k if k < 2 else k - 1  # the control released nothing: its traits asked again
        made = _project(found, f"Look {k + 1}")
        released.append((members.size, _gwas(found, made, "outsider", lo, hi,
                                              [f"r{2 * j}", f"r{2 * j + 1}"])))
        power, fpr, used = _attack(g, eids, members, outside, truth, released)
        print(f"\n{members.size} people, project {k + 1} ({len(open_now) + 1} open): "
              f"{released[-1][1].height} rows, {used} variants in all, power {power:.3f} at "
              f"FPR {fpr:.3f} (bound {_bound(members.size):.3f})")
        open_now.append(made)
        if k == 0:
            continue  # the control: the second project asks while the first is open
        for done in open_now:
            projects.close(found.ctx, admin, done, revoke=False, reason="finished")
        open_now = []
    assert power <= _bound(members.size)


RACERS = 8


# -- requests racing the budget ----------------------------------------------------------


def test_requests_at_once_each_get_the_whole_budget(
        world: tuple[World, np.ndarray, np.ndarray, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    found, g, eids, truth = world
    lo, hi = 1952, 1958
    members = _members(found, lo, hi)
    outside = _outside(found, eids, _members(found, 1900, 1952), members)
    outputs = found.platform.outputs
    read = outputs._genetic_budget
    together = threading.Barrier(RACERS, timeout=5)
    serialised = []

    def in_step() -> object:
        budget = read()
        try:
            together.wait()  # both requests have read what was spent: then both run on
        except threading.BrokenBarrierError:
            serialised.append(True)  # something held one request back: no race
        return budget

    monkeypatch.setattr(outputs, "_genetic_budget", in_step)
    tables: dict[int, pl.DataFrame] = {}
    failures: list[BaseException] = []
    leads = ["researcher"] + ["outsider"] * (RACERS - 1)
    made = [_project(found, f"Racer {k}", lead=lead) for k, lead in enumerate(leads)]
    assert found.researcher is not None and found.outsider is not None
    signed = {"researcher": found.sign_in(found.researcher),
              "outsider": found.sign_in(found.outsider)}  # signed in once, before the race

    def request(k: int) -> None:
        try:
            tables[k] = _gwas(found, made[k], signed[leads[k]], lo, hi,
                              [f"r{8 + k}"])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=request, args=(k,)) for k in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    released = [(members.size, tables[k]) for k in range(RACERS)]
    power, fpr, used = _attack(g, eids, members, outside, truth, released)
    print(f"\n{members.size} people, {RACERS} requests at once "
          f"({'serialised' if serialised else 'raced'}): "
          f"{' + '.join(str(t.height) for t in tables.values())} rows, {used} variants, power "
          f"{power:.3f} at FPR {fpr:.3f} (bound {_bound(members.size):.3f})")
    assert power <= _bound(members.size)


# -- a 0/1 trait's cases: a subgroup the attacker picks ---------------------------------------


def _case_frequencies(odds_ratio: np.ndarray, freq: np.ndarray, n: float, cases: float
                      ) -> np.ndarray:
    """The cases' ALT frequency from what a logistic GWAS releases (odds ratio, the group's
    frequency, n) and the number of cases: p = (n1·p1 + n0·p0)/n and OR = p1(1−p0)/(p0(1−p1)),
    solved for p1 by bisection."""
    n0 = n - cases
    lo, hi = np.full(freq.size, 1e-9), np.full(freq.size, 1 - 1e-9)

    def gap(p1: np.ndarray) -> np.ndarray:
        p0 = np.clip((n * freq - cases * p1) / n0, 1e-9, 1 - 1e-9)
        rising: np.ndarray = p1 * (1 - p0) - odds_ratio * p0 * (1 - p1)  # rises with p1
        return rising

    for _ in range(60):
        mid = (lo + hi) / 2
        up = gap(mid) < 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    result: np.ndarray = (lo + hi) / 2
    return result


def test_the_cases_of_a_logistic_gwas_are_bounded_too(
        world: tuple[World, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The cases' frequencies, worked out from the odds ratios, the group's frequencies, n and
    the number of cases (a count anyone may ask for), against the bound on the cases."""
    found, g, eids, truth = world
    lo, hi = 1958, 1980
    members = _members(found, lo, hi)
    people = found.platform.store.load().participants.filter(
        pl.col("eid").is_in(members.tolist()))
    draw = np.fmod(people["p21001_i0"].to_numpy() * PRIMES[0]
                   + people["p4080_i0_a0"].to_numpy().astype(np.float64) * 3.7, 1.0)
    cases = people["eid"].to_numpy()[draw < CASES]
    outside = _outside(found, eids, _members(found, 1900, 1958), members)
    made = _project(found, "Cases")
    table = _gwas(found, made, "outsider", lo, hi, ["chosen"], model="logistic")
    assert "alt_freq" in table.columns and table.height
    p1 = _case_frequencies(table["odds_ratio"].to_numpy(), table["alt_freq"].to_numpy(),
                           float(table["n"][0]), float(cases.size))
    as_cases = table.with_columns(pl.Series("alt_freq", p1))
    power, fpr, used = _attack(g, eids, cases, outside, truth, [(cases.size, as_cases)])
    group_power, group_fpr, _ = _attack(g, eids, members, outside, truth,
                                        [(members.size, table)])
    # custodian-side: the cases' exact frequencies, for comparison
    at = np.array([int(i.removeprefix("rs")) - 1000 for i in table["id"].to_list()])
    exact = g[np.ix_(np.isin(eids, cases), at)].mean(axis=0) / 2
    exact_power, _, _ = _attack(g, eids, cases, outside, truth,
                                [(cases.size, table.with_columns(pl.Series("alt_freq", exact)))])
    # why: the variants are chosen for their case/control difference, so the cases' departure
    # from the population is several times the one standard error the rule assumes
    z = (exact - truth[at]) / np.sqrt(truth[at] * (1 - truth[at]) / (2 * cases.size))
    print(f"\ncases' departure from the population on the released variants: mean z^2 "
          f"{float(np.mean(z ** 2)):.1f} (the rule's model: 1)")
    print(f"{cases.size} cases of {members.size}: {used} variants (case frequencies worked "
          f"out within {np.abs(p1 - exact).max():.4f}), power on the cases {power:.3f} at FPR "
          f"{fpr:.3f} ({exact_power:.3f} with the exact ones; bound {_bound(cases.size):.3f}); "
          f"on the group {group_power:.3f} at {group_fpr:.3f}")
    assert power <= _bound(cases.size)


def test_requests_at_once_in_one_project_both_stay_in_its_ledger(
        world: tuple[World, np.ndarray, np.ndarray, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    found, _, _, _ = world
    outputs = found.platform.outputs
    read = outputs._genetic_budget
    together = threading.Barrier(2, timeout=5)

    def in_step() -> object:
        budget = read()
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait()
        return budget

    charged = len(read())
    monkeypatch.setattr(outputs, "_genetic_budget", in_step)
    made = _project(found, "One project, two requests")
    assert found.outsider is not None
    principal = found.sign_in(found.outsider)
    failures: list[BaseException] = []

    def request(k: int) -> None:
        try:
            _gwas(found, made, principal, 1900, 1946, [f"r{k}"], name=f"group{k}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=request, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    kept = len(read()) - charged
    print(f"\ntwo requests at once in one project: the ledger keeps {kept} of 2 charges")
    assert kept == 2


# -- a 0/1 trait fitted as a linear model: the cases are not bounded at all ------------------


def test_the_cases_of_a_linear_gwas_of_a_0_1_trait(
        world: tuple[World, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """A linear fit of y on g: beta = cov(g, y) / var(g), so the cases' frequency is
    p + beta·p(1−p)/π (π the share of cases). Before the fix: 250 cases of 706, 90 variants,
    power on the cases 0.41-0.44 (bound 0.147). Now a two-valued trait is refused as a linear
    fit, and its logistic GWAS bounds the cases (the test above)."""
    found, _, _, _ = world
    made = _project(found, "Linear cases")
    assert found.outsider is not None
    principal = found.sign_in(found.outsider)
    service.define(found.platform.enclave, principal, made, "group",
                   _sql("p34 >= 1946 AND p34 < 1952"))
    view = found.platform.outputs.analyse(principal, made, {
        "kind": "gwas", "definition": "group", "traits": ["chosen"], "model": "linear",
        "covariates": ["sex"], "categorical": ["sex"], "principal_components": 0},
        Format("json"))
    assert view.report.verdict is Verdict.BLOCK
    assert any("cannot be fitted on these rows" in f.reason for f in view.report.findings)
    assert "variants" not in json.loads(stored(found, view))
