"""Differencing by values and by combinations, end to end through the real services.

Each attack picks a target whose quasi-identifiers single them out (read custodian-side from
the project's view), asks for two to four outputs as a researcher, releases what the check
lets out, and then tries to compute the target's value from the released numbers only. The
ground truth is read from the view the enclave holds, never from an output.

Guarantees under test (docs/explanation/output-check.md):
- no two released statistics are such that a combination of them and of known counts is a sum
  over fewer than k participants (value-aware differencing, within an output and against the
  ledger);
- no combination of released counts, over any number of releases, determines a group of
  fewer than k participants (the combination audit);
- statistics are shown no finer than one participant can move them (release precision).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl
import pytest

from strongroom.access.context import Principal
from strongroom.enclave import service
from strongroom.errors import Conflict, Invalid
from strongroom.outputs import requests
from strongroom.outputs.render import Format
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import Verdict
from tests.access_world import World, build_world

FIELDS = [31, 34, 54, 20116, 21001, 4080]
BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p54_i0 AS centre, p20116_i0 AS smoking, "
        "p21001_i0 AS bmi, p4080_i0_a0 AS sbp FROM participants")


@dataclass
class Target:
    condition: str  # SQL that is true for the target alone (their quasi-identifiers)
    bmi: float
    birth_year: int
    sex: int
    sbp: float


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_world(tmp_path_factory.mktemp("differencing"), cohort=3000, fields=FIELDS)
    yield found
    found.platform.close()


@pytest.fixture(autouse=True)
def a_new_day(world: World) -> None:
    """Each attack on a day of its own: hidden cells are answers, rationed per person per day
    (outputs/answers.py); the module's one researcher would spend the ration on the attacks
    before it, and the ration is tested in test_answer_ration.py."""
    world.clock.advance(hours=25)


@pytest.fixture(scope="module")
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    service.define(world.platform.enclave, who, world.project_id, "base", BASE)
    return who


def _unique(world: World) -> pl.DataFrame:
    """Participants unique by (sex, birth year, systolic BP), read custodian-side."""
    with world.ctx.transaction() as db:
        from strongroom.access.models import Project
        project = db.get(Project, world.project_id)
        assert project is not None
    _, base = world.platform.enclave.definition(project, "base")
    return (base.drop_nulls(["bmi", "sbp", "birth_year", "sex"])
            .filter(pl.len().over("sex", "birth_year", "sbp") == 1))


def _target(r: dict[str, object]) -> Target:
    return Target(f"(sex = {r['sex']} AND birth_year = {r['birth_year']} AND sbp = {r['sbp']})",
                  float(r["bmi"]), int(r["birth_year"]), int(r["sex"]),  # type: ignore[arg-type]
                  float(r["sbp"]))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def targets(world: World, researcher: Principal) -> list[Target]:
    """The 40 with the lowest systolic BP (not by pid: pids are random)."""
    unique = _unique(world).sort("sbp", "birth_year", "sex").head(40)
    return [_target(r) for r in unique.iter_rows(named=True)]


@pytest.fixture(scope="module")
def bulk_target(world: World, researcher: Principal) -> Target:
    """One whose systolic BP is in the bulk (125–135), far from any tail a clip touches."""
    unique = _unique(world).filter(pl.col("sbp").is_between(125, 135))
    return _target(unique.sort("sbp", "birth_year", "sex").row(0, named=True))


REASONS: list[str] = []  # the last refusal's reasons, for a failing assertion's message


def ask(world: World, who: Principal, sql: str) -> dict[str, float] | None:
    """Run aggregate SQL; release it if the check allows; the released cells, or None (none
    shown)."""
    REASONS.clear()
    try:
        view = world.platform.outputs.analyse(who, world.project_id,
                                              {"kind": "aggregate_sql", "sql": sql},
                                              Format.JSON)
    except Invalid as refused:
        REASONS.extend(refused.reasons)
        return None
    REASONS.extend(f.reason for f in view.report.findings)
    if view.report.verdict not in (Verdict.RELEASE, Verdict.SUPPRESS):
        return None
    try:
        released = world.platform.outputs.request_release(who, view.output.id)
    except Conflict as clash:
        REASONS.append(str(clash))
        return None
    if released.status is not OutputStatus.RELEASED:
        return None
    body = json.loads(requests.download(world.ctx, who, view.output.id).payload)
    # a cell that differences is hidden, not the output blocked: nothing shown is nothing
    return {f"{'|'.join(c['row'])}/{c['column']}": c["value"] for c in body["cells"]
            if c["value"] is not None} or None


def recovered(estimate: float | None, truth: float) -> bool:
    return estimate is not None and abs(estimate - truth) < 0.005


# the honest outputs first: the attacks' releases are in the ledger for the rest of the module


def test_honest_group_statistics_are_still_released(world: World,
                                                    researcher: Principal) -> None:
    by_sex = ask(world, researcher,
                 "SELECT sex, count(bmi) AS n, avg(bmi) AS bmi FROM base GROUP BY sex")
    assert by_sex is not None, REASONS
    by_smoking = ask(world, researcher,
                     "SELECT smoking, count(sbp) AS n, avg(sbp) AS sbp FROM base "
                     "WHERE smoking >= 0 GROUP BY smoking")
    assert by_smoking is not None, REASONS


def test_means_are_shown_no_finer_than_one_participant_moves_them(
        world: World, researcher: Principal) -> None:
    got = ask(world, researcher,
              "SELECT centre, count(bmi) AS n, avg(bmi) AS bmi FROM base GROUP BY centre")
    assert got is not None, REASONS
    means = {k: v for k, v in got.items() if k.endswith("/bmi")}
    assert means
    for value in means.values():
        assert round(value, 3) == value  # 2,000-odd people with BMIs spanning ~30 units


def test_a_value_zeroed_for_one_person_in_a_second_release_is_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    t = targets[0]
    first = ask(world, researcher, "SELECT sum(bmi) AS s FROM base")
    second = ask(world, researcher,
                 f"SELECT sum(CASE WHEN {t.condition} THEN 0 ELSE bmi END) AS s FROM base")
    estimate = first["/s"] - second["/s"] if first and second else None
    assert not recovered(estimate, t.bmi)
    assert first is None or second is None, "the second sum differs from the first in one " \
        "person's value"


def test_the_same_trick_inside_one_output_is_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    t = next(x for x in targets[1:] if x.sex == 0)
    got = ask(world, researcher,
              f"SELECT avg(bmi) AS a, avg(CASE WHEN {t.condition} THEN 2 * bmi ELSE bmi END) "
              "AS b, count(bmi) AS n FROM base WHERE sex = 0")
    estimate = (got["/b"] - got["/a"]) * got["/n"] if got and {"/a", "/b", "/n"} <= got.keys() \
        else None
    assert not recovered(estimate, t.bmi)


def test_a_scaled_copy_with_one_value_changed_is_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    t = next(x for x in targets[2:] if x.birth_year > 1945)
    first = ask(world, researcher, "SELECT sum(bmi) AS s FROM base WHERE birth_year > 1945")
    second = ask(world, researcher,
                 f"SELECT sum(CASE WHEN {t.condition} THEN 0 ELSE 3 * bmi + 7 END) AS s "
                 "FROM base WHERE birth_year > 1945")
    assert first is None or second is None, REASONS


def test_three_releases_that_isolate_one_person_are_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    t = next(x for x in targets if 1951 <= x.birth_year <= 1958)
    low = ask(world, researcher,
              f"SELECT count(*) AS n, sum(bmi) AS s FROM base WHERE birth_year < 1947 "
              f"OR {t.condition}")
    high = ask(world, researcher,
               "SELECT count(*) AS n, sum(bmi) AS s FROM base WHERE birth_year > 1962")
    both = ask(world, researcher,
               "SELECT count(*) AS n, sum(bmi) AS s FROM base "
               "WHERE birth_year < 1947 OR birth_year > 1962")
    # the counts' combination is one person, so the third count is hidden; the sums' is
    # left to their precision: each is rounded to a step at least one person's whole range
    counts = [x["/n"] for x in (low, high, both) if x is not None and "/n" in x]
    assert len(counts) < 3, "three counts released whose combination is one person"
    sums = [x["/s"] for x in (low, high, both) if x is not None and "/s" in x]
    estimate = sums[0] + sums[1] - sums[2] if len(sums) == 3 else None
    assert not recovered(estimate, t.bmi)


def test_four_releases_in_a_ring_are_caught(world: World, researcher: Principal,
                                            targets: list[Target]) -> None:
    t = targets[4]
    a = ask(world, researcher, f"SELECT count(*) AS n FROM base WHERE centre = 11010 OR "
                               f"{t.condition}")
    b = ask(world, researcher, "SELECT count(*) AS n FROM base WHERE centre = 11009")
    c = ask(world, researcher, "SELECT count(*) AS n FROM base WHERE centre = 11010 "
                               "OR centre = 11009")
    known = [x for x in (a, b, c) if x is not None]
    assert len(known) < 3, "three counts released whose combination is one person"


def test_a_model_refitted_with_one_outcome_changed_is_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    t = targets[5]
    enclave = world.platform.enclave
    service.define(enclave, researcher, world.project_id, "refit",
                   f"SELECT pid, sex, birth_year, CASE WHEN {t.condition} THEN bmi + 100 "
                   "ELSE bmi END AS bmi FROM base")
    fits = []
    for name in ("base", "refit"):
        view = world.platform.outputs.analyse(
            researcher, world.project_id,
            {"kind": "ols", "definition": name, "outcome": "bmi",
             "covariates": ["sex", "birth_year"]}, Format.JSON)
        fits.append(view.report.verdict)
        if view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS):
            world.platform.outputs.request_release(researcher, view.output.id)
    assert fits[1] is Verdict.BLOCK, "the refit differs from the fit in one person's outcome"


def test_three_statistics_whose_values_combine_to_one_person_are_caught(
        world: World, researcher: Principal, targets: list[Target],
        bulk_target: Target) -> None:
    """x, x + sbp and sbp with the target's zeroed: (x + sbp) − x − sbp′ is the target's sbp.
    Winsorised, each statistic's tails are clipped at its own bounds, so the relation fails
    for dozens of participants (the combination is a sum over many), and for a target among
    sbp's lowest k zeroing moves nothing that is released. An attacker undoes the clip with
    a variable whose tails are held by many (sex) and sbp capped by the query (at least k at
    each cap, joint tails included): the combination is then one person, and it is caught."""
    where = "FROM base WHERE sbp IS NOT NULL AND bmi IS NOT NULL"
    lowest = targets[6]
    x = ask(world, researcher, f"SELECT sum(bmi) AS s {where}")
    y = ask(world, researcher, f"SELECT sum(bmi + sbp) AS s {where}")
    z = ask(world, researcher,
            f"SELECT sum(CASE WHEN {lowest.condition} THEN 0 ELSE sbp END) AS s {where}")
    estimate = y["/s"] - x["/s"] - z["/s"] if x and y and z else None
    assert estimate is None or abs(estimate - lowest.sbp) > 1.0
    t, sbp = bulk_target, "least(greatest(sbp, 110), 160)"
    x = ask(world, researcher, f"SELECT sum(sex) AS s {where}")
    y = ask(world, researcher, f"SELECT sum(sex + {sbp}) AS s {where}")
    z = ask(world, researcher,
            f"SELECT sum(CASE WHEN {t.condition} THEN 0 ELSE {sbp} END) AS s {where}")
    assert x is None or y is None or z is None, "x + sbp − x − sbp′ is the target's sbp"


def test_three_statistics_in_one_output_that_combine_to_one_person_are_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    t = targets[7]
    got = ask(world, researcher,
              "SELECT sum(birth_year) AS x, sum(birth_year + bmi) AS y, "
              f"sum(CASE WHEN {t.condition} THEN 0 ELSE bmi END) AS z "
              "FROM base WHERE bmi IS NOT NULL")
    estimate = got["/y"] - got["/x"] - got["/z"] if got and {"/x", "/y", "/z"} <= got.keys() \
        else None
    # blocked when the three clipped contribution vectors combine exactly to the target (the
    # value-aware differencing); since each statistic's clip has its own keyed rank
    # (enclave/margin.py) they may not, and then the released sums do not give the BMI either
    assert not recovered(estimate, t.bmi)


def test_a_mean_of_constants_per_released_group_but_the_target_is_caught(
        world: World, researcher: Principal, targets: list[Target]) -> None:
    """The zoom: 80 groups whose counts are released, a mean where everyone has their group's
    constant (chosen afresh each time) but the target, who has their BMI less a guess. One
    release gives the value within its step, and the step shrinks with the guess's error; an
    attacker's review had a BMI to 4 decimals in a dozen means. Each such mean is blocked."""
    t = targets[21]
    key = "(coalesce(sbp, 0) * 7 + birth_year * 13 + sex * 29) % 80"
    counts = ask(world, researcher, f"SELECT {key} AS g, count(*) AS n FROM base GROUP BY g")
    assert counts is not None and len(counts) == 80, REASONS
    for guess, width in ((27.0, 20.0), (t.bmi + 0.3, 0.6)):
        constants = [round(width * ((g * 37) % 80 / 80 - 0.5), 6) for g in range(80)]
        cases = " ".join(f"WHEN {key} = {g} THEN {c!r}" for g, c in enumerate(constants))
        got = ask(world, researcher, f"SELECT avg(CASE WHEN {t.condition} THEN bmi - {guess} "
                                     f"{cases} END) AS m FROM base")
        assert got is None, got
        # the partition rule, or (the mean's people being the groups' union) the tie that
        # hides what the released counts give exactly, as a group of a few would be
        assert any("takes one value in each group" in r or "perhaps none" in r
                   for r in REASONS), REASONS
    # a measured variable over the same groups is no such thing, however finely other
    # releases cut it (cells smaller than k count whole: their counts are nobody's)
    for fine in ("SELECT sex, birth_year, count(*) AS n FROM base GROUP BY sex, birth_year",
                 "SELECT centre, smoking, count(*) AS n FROM base GROUP BY centre, smoking"):
        ask(world, researcher, fine)
    honest = ask(world, researcher, "SELECT floor(birth_year / 10) * 10 AS decade, "
                                    "count(sbp) AS n, avg(sbp) AS m FROM base "
                                    "WHERE sbp IS NOT NULL GROUP BY decade")
    assert honest is not None, REASONS
