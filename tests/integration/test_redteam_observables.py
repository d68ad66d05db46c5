"""Red team: what a researcher observes around GWAS requests, DP queries, definitions and
output listings, through the real HTTP API (the FastAPI app over httpx) and the console.

Earlier red teams closed what is released and much of what surrounds it (a job's files, a
refusal's wording for definitions and fits, time on schedules, withheld outputs' bytes, the
DP budget's spends). This module asks the same questions of the GWAS path, whose output is
rendered, sized and refused by code of its own (outputs/service.py ``_gwas``,
genomics/study.py, outputs/genetics.py), and of the listings around it. Each attack asks the
same thing with a target participant's BMI over a line and under it (the truth read
custodian-side, the lines a tenth either side of it) and compares everything the
researcher's client is told: status, body (ids and moments masked), headers,
``Content-Length``, listings, the answers spent. Guarantees, one a sentence:

- *A GWAS whose rendered output meets the size limit is a rationed, blocked output, never a
  free error*: a GWAS's payload grows with the variants the genetics rules release, which
  hang on the analysed people's genotypes and values, so a limit met only when one
  participant's value lets a variant through is an answer (as ``_fits`` makes it for every
  other analysis); once the ration is spent, too large and small enough look alike.
  (Leaked: the limit was met in ``record_output`` as a free ``Invalid``, 422, nothing
  spent; fixed in ``Outputs._gwas``.)
- *A GWAS refused once it has read the data says one thing, whatever refused it*: its
  refusal is one rationed answer, one bit, never which of the run's checks the data failed
  (a logistic trait not 0/1, duplicated rows, too few genotyped, a trait the rules refuse,
  a failure of the platform's own). (Leaked: each had its own reason, so one answer told
  three outcomes apart; fixed in ``Outputs._gwas``.)
- *A GWAS stopped (review or block, by the check or by its own genetics rules) says that it
  was stopped, never how many of its variants the genetics rules withheld, or why*: those
  counts are figures of a group no one let through. (Leaked: a blocked GWAS of a released
  group plus one participant, or one a project's genetics verdict sent to review, said "one
  participant could move the effect" or "minor allele count below 20" as that participant
  carried a rare allele or not; fixed by ``genetics.unsaid``.)
- *A definition's size verdict that a margin drew is an answer*: a population from half the
  threshold to twice it has its ``size_ok`` drawn, one participant apart drawing apart one
  time in fifteen, and a no-op change of the text draws again. (Leaked: its reserved answer
  was given back, so the draws could be averaged for nothing; fixed in ``Outputs.define``
  with ``definitions.size_drawn``.)
- A withheld GWAS's API record, headers and ``Content-Length`` are the same whether it was
  too large to keep or not; an output listing's order, count and size (API and console)
  are the request's, never whether the data refused what it lists (held).
- A DP answer's status, headers, labels, notes, noise scales, ε charged and proved, the
  budget left, the budget's spends and the project's page are the same whether the one row
  its filter keeps exists (held).

The truth is custodian-side throughout: the cast's BMIs, the database's answers and the
outputs' stored sizes. Where the platform's limit is moved (the output size limit, 64 MiB,
met at scale by a genotype store of millions of variants), it is moved to between the two
sizes the two worlds' GWAS render, as an attacker tunes a request (``min_info``,
``min_mac``, the traits) until it sits at the limit.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.attacks import runner
from strongroom.attacks.world import AttackWorld
from strongroom.genomics.formats import open_genotypes
from strongroom.outputs import answers, genetics
from strongroom.outputs import requests as output_requests
from strongroom.outputs.models import OutputRow
from tests.genotype_files import write_bed
from tests.integration.test_redteam_http_surface import (
    _browser,
    _masked,
    _no_side_headers,
    _spend_all,
)
from tests.redteam_world import attacker, dp_target, module_cast, module_world, outcome

pytestmark = pytest.mark.slow

world = module_world()
cast = module_cast()

M = 60  # variants: common ones, so a GWAS of everyone releases most of them


def _carrier(cast: runner.Cast) -> runner.Target:
    return cast.lean[6]


def _other(cast: runner.Cast) -> runner.Target:
    return cast.lean[7]


def _eid(people: pl.DataFrame, target: runner.Target) -> int:
    """Custodian-side: the target's eid (their sex, birth year and blood pressure)."""
    found = people.filter((pl.col("p31") == target.sex) & (pl.col("p34") == target.birth_year)
                          & (pl.col("p4080_i0_a0") == target.sbp))
    assert found.height == 1, found.height
    return int(found["eid"][0])


@pytest.fixture(scope="module")
def genotyped(world: AttackWorld, cast: runner.Cast,
              tmp_path_factory: pytest.TempPathFactory) -> AttackWorld:
    """The world's participants genotyped at M common variants and one rare one (custodian-
    side): the rare one's minor allele is carried once by 19 participants and by the
    ``_carrier`` target, not by the ``_other`` target, so one more participant takes it to the
    genetics rules' floor (a minor allele count of 20) or leaves it below."""
    people = world.platform.store.load().participants
    eid = people["eid"].to_numpy()
    rng = np.random.default_rng(5)
    freq = rng.uniform(0.15, 0.5, M)
    g = rng.binomial(2, freq, size=(eid.size, M)).astype(np.float32)
    carrier, other = (_eid(people, t) for t in (_carrier(cast), _other(cast)))
    rare = np.zeros(eid.size, dtype=np.float32)
    analysed = (people["p4080_i0_a0"].is_not_null() & people["p31"].is_not_null()).to_numpy()
    pool = np.flatnonzero(analysed & (eid != carrier) & (eid != other))
    rare[rng.choice(pool, 19, replace=False)] = 1
    rare[eid == carrier] = 1
    g = np.column_stack([g, rare])
    root = Path(tmp_path_factory.mktemp("observables-genotypes"))
    bed = write_bed(root / "array", g, [str(e) for e in eid])
    with open_genotypes(bed) as source:
        world.platform.genotypes.ingest(source)
    return world


def _gwas_project(world: AttackWorld) -> tuple[Principal, str]:
    """A new researcher's new project with the definition ``base`` and a genotype grant."""
    who, project = attacker(world)
    projects.set_genotypes(world.platform.access, world.staff("custodian-admin"), project,
                           True)
    return who, project


@contextlib.contextmanager
def _membership_as_it_was(world: AttackWorld) -> Iterator[None]:
    """Custodian-side: the platform's membership budget restored after the block, so each
    world's GWAS meets the same budget (the test's own bookkeeping, not the attack's)."""
    path = world.platform.access.root / genetics.BUDGET_FILE
    before = path.read_bytes() if path.exists() else None
    try:
        yield
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def _spent(world: AttackWorld, who: Principal) -> int:
    with world.platform.access.transaction() as db:
        return answers.used(db, who.person_id, world.clock(),
                            world.platform.rations.of(db, who.person_id))


def _lines(target: runner.Target) -> dict[str, float]:
    return {"over": round(target.bmi - 0.1, 2), "under": round(target.bmi + 0.1, 2)}


GWAS = {"kind": "gwas", "definition": "g", "traits": ["y"], "covariates": ["sex"],
        "principal_components": 0}


def _ask(browser: TestClient, project: str, analysis: dict[str, Any]) -> Any:
    return browser.post(f"/projects/{project}/analyses", json={"analysis": analysis,
                                                               "name": "probe"})


def _seen(response: Any) -> tuple[int, str, list[str], str]:
    return (response.status_code, _masked(response.text),
            sorted(k.lower() for k in response.headers),
            response.headers.get("content-length", ""))


# -- the size limit on a GWAS's rendered output ---------------------------------------------

# the target's trait is kept only if their BMI is over the line: the group, its allele
# counts, its rounding draws and so the rendered bytes differ by one participant
SIZED = ("SELECT pid, sex, CASE WHEN {T} AND bmi <= {L} THEN NULL ELSE sbp END AS y "
         "FROM base WHERE sbp IS NOT NULL")


def _stored_size(world: AttackWorld, output_id: str) -> int:
    with world.platform.access.transaction() as db:
        row = db.get(OutputRow, output_id)
        assert row is not None
        return int(row.size)


def test_a_gwas_too_large_to_keep_is_an_answer_not_a_free_error(
        genotyped: AttackWorld, cast: runner.Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    world = genotyped
    asked: dict[str, tuple[Principal, str, TestClient]] = {}
    sizes: dict[str, int] = {}
    # a target whose one participant moves the bytes: the rendered figures are keyed draws in
    # each new project, so the two sizes may by chance be equal
    for target in cast.lean[3:6]:
        for side, line in _lines(target).items():  # custodian-side: each world's payload size
            who, project = _gwas_project(world)
            world.platform.outputs.define(who, project, "g", SIZED.format(T=target.condition,
                                                                          L=line))
            _spend_all(world, who, project)  # withheld: nothing released, nothing in the ledger
            asked[side] = who, project, _browser(world, who)
            with _membership_as_it_was(world):
                made = _ask(asked[side][2], project, GWAS)
            assert made.status_code == 201, made.text
            sizes[side] = _stored_size(world, made.json()["id"])
        if sizes["over"] != sizes["under"]:
            break
    assert sizes["over"] != sizes["under"], sizes  # one participant moved the bytes
    # the limit between the two: met by the larger world's output only
    monkeypatch.setattr(output_requests, "MAX_BYTES", min(sizes.values()))
    seen, ids = {}, {}
    for side, (who, project, browser) in asked.items():  # the same request again
        before = _spent(world, who)
        with _membership_as_it_was(world):
            made = _ask(browser, project, GWAS)
        _no_side_headers(made)
        listed = browser.get("/outputs", params={"project_id": project})
        body = {k: v for k, v in made.json().items() if k != "spec"}
        seen[side] = (made.status_code, _masked(json.dumps(body, sort_keys=True)),
                      made.headers.get("content-length"), len(listed.json()),
                      _spent(world, who) - before)
        ids[side] = body.get("id")
    assert seen["over"] == seen["under"], seen
    # custodian-side: the larger world's GWAS did meet the limit (refused by the data, a
    # blocked output kept withheld), the smaller one's did not
    larger = max(sizes, key=sizes.__getitem__)
    for side, (who, _, _) in asked.items():
        again = output_requests.read(world.platform.access, who, ids[side])
        refused = "refused" in {f.rule for f in again.check_report.findings}
        assert refused is (side == larger), (side, again.check_report.findings)


# -- a GWAS's refusal: one answer, one bit --------------------------------------------------

# a logistic GWAS of a 0/1 trait: if the target's BMI is in (L1, L2] their trait is 2 (the
# run's check that a case-control trait is 0/1); if over L2 a covariate singles them out (the
# genetics rules' leverage check); else it runs
BANDED = ("SELECT pid, CASE WHEN {T} AND bmi > {L1} AND bmi <= {L2} THEN 2 "
          "WHEN sbp > 140 THEN 1 ELSE 0 END AS y, "
          "CASE WHEN {T} AND bmi > {L2} THEN 100000 ELSE birth_year END AS c "
          "FROM base WHERE sbp IS NOT NULL AND birth_year IS NOT NULL")
LOGISTIC = {"kind": "gwas", "definition": "g", "traits": ["y"], "model": "logistic",
            "covariates": ["c"], "principal_components": 0}


def _told(world: AttackWorld, who: Principal, output_id: str) -> str:
    """What the researcher reads of an output: its verdict and its refusal's reasons."""
    view = output_requests.read(world.platform.access, who, output_id)
    return f"{view.report.verdict.value}: " + " | ".join(
        f.reason for f in view.report.findings if f.rule == "refused")


def test_a_gwas_refused_by_the_data_says_one_thing_whatever_refused_it(
        genotyped: AttackWorld, cast: runner.Cast) -> None:
    world = genotyped
    target = cast.obese[3]
    b = target.bmi
    bands = {"under both": (b + 0.1, b + 0.2), "between": (b - 0.1, b + 0.1),
             "over both": (b - 0.2, b - 0.1)}
    seen: dict[str, tuple[str, int]] = {}
    for side, (low, high) in bands.items():
        who, project = _gwas_project(world)
        world.platform.outputs.define(who, project, "g", BANDED.format(
            T=target.condition, L1=round(low, 2), L2=round(high, 2)))
        browser = _browser(world, who)
        before = _spent(world, who)
        with _membership_as_it_was(world):
            made = _ask(browser, project, LOGISTIC)
        assert made.status_code == 201, made.text
        seen[side] = (_told(world, who, made.json()["id"]), _spent(world, who) - before)
    refusals = {s: told for s, (told, _) in seen.items() if told.startswith("block: ")}
    # the truth: both refused by the data, each an answer; the first ran
    assert set(refusals) == {"between", "over both"}, seen
    assert all(spent >= 1 for _, spent in seen.values()), seen
    # one answer, one bit: refused or not, never which of the run's checks refused it
    assert len(set(refusals.values())) == 1, refusals


# -- listings: order and count are the request's -------------------------------------------


# a covariate that singles the target out only if their BMI is over the line
SINGLED = ("SELECT pid, sbp AS y, CASE WHEN {T} AND bmi > {L} THEN 100000 ELSE birth_year "
           "END AS c FROM base WHERE sbp IS NOT NULL AND birth_year IS NOT NULL")


def test_an_output_listing_s_order_and_count_are_the_requests(
        genotyped: AttackWorld, cast: runner.Cast) -> None:
    """Two GWAS asked one after the other, the target's value deciding whether the first is
    refused by the data (over the line: a covariate singles them out), the ration spent:
    the listing (API and console), its order and its count are the same."""
    world = genotyped
    target = cast.lean[4]
    seen = {}
    for side, line in _lines(target).items():
        who, project = _gwas_project(world)
        world.platform.outputs.define(who, project, "g", SINGLED.format(
            T=target.condition, L=line))
        _spend_all(world, who, project)
        browser = _browser(world, who)
        made = []
        for i, analysis in enumerate((GWAS | {"covariates": ["c"]}, GWAS | {"covariates": []})):
            with _membership_as_it_was(world):
                asked = browser.post(f"/projects/{project}/analyses", json={
                    "analysis": analysis, "name": f"n{i}"})
            assert asked.status_code == 201, asked.text
            made.append(asked.json())
            world.clock.advance(61)
        # the truth, custodian-side: the first was refused by the data over the line only
        first = output_requests.read(world.platform.access, who, made[0]["id"])
        assert ("refused" in {f.rule for f in first.check_report.findings}) is (
            side == "over"), first.check_report.findings
        listed = browser.get("/outputs", params={"project_id": project})
        tab = browser.get(f"/ui/workspace/projects/{project}", params={"tab": "results"})
        for r in (listed, tab):
            _no_side_headers(r)
        order = [o["filename"] for o in listed.json()]
        assert order == [m["filename"] for m in reversed(made)], order  # newest first
        seen[side] = (order, listed.headers.get("content-length"),
                      len(re.sub(r"bmi &gt; [0-9.]+", "", _masked(tab.text))))
    assert seen["over"] == seen["under"], seen


# -- a GWAS the check blocked: what its report says of its variants -------------------------


def _reasons(world: AttackWorld, who: Principal, output_id: str) -> list[tuple[str, str]]:
    """What the researcher reads of an output's findings: rule and reason."""
    view = output_requests.read(world.platform.access, who, output_id)
    return [(f.rule, f.reason) for f in view.report.findings]


def test_a_blocked_gwas_says_nothing_of_its_variants(
        genotyped: AttackWorld, cast: runner.Cast) -> None:
    """*A GWAS the check blocked (its group a few people from a released one's) says that it
    is blocked, never how many of its variants the genetics rules withheld, or why*: those
    counts are figures of the blocked group, never checked, and two groups one participant
    apart give that participant's genotypes through them. A GWAS over everyone but two
    targets is released; then the same over everyone but one of them, adding the other: the
    one who carries the rare allele takes it to the floor (one fewer variant withheld as
    rare), the other does not (custodian-side). Both second GWAS are blocked; their reports
    must read the same."""
    world = genotyped
    pair = {"carrier": _carrier(cast), "other": _other(cast)}
    both = " OR ".join(f"({t.condition})" for t in pair.values())
    seen = {}
    for side, added in pair.items():
        left_out = next(t for t in pair.values() if t is not added)
        who, project = _gwas_project(world)
        world.platform.outputs.define(who, project, "a", f"SELECT * FROM base WHERE NOT "
                                      f"({both}) AND sbp IS NOT NULL")
        world.platform.outputs.define(who, project, "b", f"SELECT * FROM base WHERE NOT "
                                      f"({left_out.condition}) AND sbp IS NOT NULL")
        browser = _browser(world, who)
        ask = GWAS | {"traits": ["sbp"]}
        with _membership_as_it_was(world):
            first = _ask(browser, project, ask | {"definition": "a"})
            assert first.status_code == 201, first.text
            released = browser.post(f"/outputs/{first.json()['id']}/request", json={
                "justification": "the study's genome-wide scan of blood pressure"})
            assert released.json()["status"] == "released", released.text
            second = _ask(browser, project, ask | {"definition": "b"})
        assert second.status_code == 201, second.text
        assert second.json()["verdict"] == "block", second.text  # the truth: blocked
        seen[side] = (_reasons(world, who, first.json()["id"]),
                      _reasons(world, who, second.json()["id"]))
    # the released first GWAS's counts are its own (checked, over the same group either way)
    assert seen["carrier"][0] == seen["other"][0], seen
    # the blocked second's report: the same whoever was added
    assert seen["carrier"][1] == seen["other"][1], seen


# -- a definition's size verdict --------------------------------------------------------------

# nine accomplices, and the target if their BMI is over the line: 9 or 10 participants, both
# where the size verdict is drawn by a margin (enclave/definitions.py size_verdict); the
# ``{i} = {i}`` makes each text a fresh draw of the margin (it is keyed by the text)
NINE_AND_TARGET = "SELECT pid, sex FROM base WHERE ({G9}) OR ({T} AND bmi > {L} AND {i} = {i})"


def test_a_definition_s_drawn_size_verdict_is_an_answer(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A definition's size verdict that a margin drew (its population within the band one
    participant can tip) is an answer, spent from the ration; a free verdict is the same for
    populations one participant apart.* Before, every definition that was built gave its
    answer back: "nine people and the target if obese" told ``size_ok`` for nothing, one in
    fifteen draws apart, and a text changed in a no-op gave a fresh draw, so the odds were
    averaged for free (some 400 definitions a bit). A definition of everyone spends nothing."""
    target = cast.obese[6]
    seen: dict[str, list[tuple[bool, int]]] = {}
    for side, line in _lines(target).items():
        who, project = attacker(world)
        seen[side] = []
        for i in range(6):
            before = _spent(world, who)
            made = world.platform.outputs.define(who, project, f"d{i}", NINE_AND_TARGET.format(
                G9=cast.nines[2], T=target.condition, L=line, i=i))
            seen[side].append((made.size_ok, _spent(world, who) - before))
        before = _spent(world, who)
        world.platform.outputs.define(who, project, "everyone", "SELECT pid, sex FROM base")
        assert _spent(world, who) == before  # far from the band: nothing answered
    for (ok_over, spent_over), (ok_under, spent_under) in zip(seen["over"], seen["under"],
                                                              strict=True):
        # whatever the draw said, it was paid for, over the line and under it alike
        assert spent_over == spent_under == 1, seen
        assert ok_over == ok_under or spent_over, seen


# -- a DP query: everything around its noisy figures -------------------------------------------


def test_a_dp_answer_s_surroundings_are_the_same_over_the_line_and_under(
        world: AttackWorld, cast: runner.Cast) -> None:
    """*A DP answer says what its ε bounds (the noisy figures, and what is computed from
    them) and, around it, only what its request fixes*: its status, headers, the shape of
    its record (labels, notes, noise scales, ε charged and proved, the budget left) and the
    project's budget (API and console) are the same whether the one row its filter keeps
    exists or not (the target's BMI over the line, or under it)."""
    target = cast.obese[7]
    seen = {}
    for side, line in _lines(target).items():
        who, project, where = dp_target(world, target)
        where[-1]["value"] = line
        browser = _browser(world, who)
        shapes = []
        for query in ({"kind": "count", "table": "participants", "epsilon": "0.1",
                       "where": where},
                      {"kind": "mean", "table": "participants", "column": "p21001_i0",
                       "bounds": [10, 60], "epsilon": "0.1", "where": where}):
            answered = browser.post(f"/projects/{project}/dp/queries", json={"query": query})
            assert answered.status_code == 200, answered.text
            _no_side_headers(answered)
            world.clock.advance(61)  # the next query a minute on (spends at one moment
            body = answered.json()   # are listed by their random ids)
            shapes.append((sorted(answered.headers), [e["label"] for e in body["estimates"]],
                           body["notes"], body["noise"], body["epsilon"],
                           body["epsilon_used"], body["epsilon_remaining"], body["kind"]))
        budget = browser.get(f"/projects/{project}/dp/budget")
        page = browser.get(f"/ui/workspace/projects/{project}")
        _no_side_headers(budget)
        seen[side] = (shapes, _masked(json.dumps(budget.json()["spends"], sort_keys=True)),
                      budget.headers.get("content-length"), page.status_code,
                      len(re.sub(r"&gt; [0-9.]+|> [0-9.]+", "", _masked(page.text))))
    assert seen["over"] == seen["under"], seen


def test_a_gwas_its_own_genetics_rules_stopped_says_nothing_of_its_variants(
        genotyped: AttackWorld, cast: runner.Cast) -> None:
    """*The same when the genetics rules stop a GWAS themselves* (a project whose genetics
    verdict is review): a GWAS of everyone but one of two targets goes to review either way
    (a variant is withheld), but the rare variant is withheld as "minor allele count below
    20" when the carrier is left out and as "one participant could move the effect" when
    they are in (custodian-side): one answer, two outcomes, before anyone has released it."""
    world = genotyped
    pair = {"carrier": _carrier(cast), "other": _other(cast)}
    seen = {}
    for side, added in pair.items():
        left_out = next(t for t in pair.values() if t is not added)
        who, project = _gwas_project(world)
        world.platform.outputs.set_project_rules(world.staff("custodian-admin"), project,
                                                 {"genetics": {"verdict": "review"}})
        world.platform.outputs.define(who, project, "b", f"SELECT * FROM base WHERE NOT "
                                      f"({left_out.condition}) AND sbp IS NOT NULL")
        with _membership_as_it_was(world):
            made = _ask(_browser(world, who), project, GWAS | {"traits": ["sbp"],
                                                               "definition": "b"})
        assert made.status_code == 201, made.text
        assert made.json()["verdict"] == "review", made.text  # the truth: stopped
        seen[side] = _reasons(world, who, made.json()["id"])
    assert seen["carrier"] == seen["other"], seen


def test_another_projects_dp_query_moves_no_refusal_of_this_one(world: AttackWorld) -> None:
    """Guarantee: whether another project asked a DP query changes nothing a researcher is
    told of their own. The red team's: OpenDP's plans were cached by the query alone, shared
    by every project, and the budget judged only when a plan was built, so a researcher of
    another institution, their ration spent and their ε too small, was refused for the
    ration where another project had asked the very query and for the budget where none had
    (18 of 18, nothing spent). Here the other project asks one query and not another; this
    researcher asks both (the truth: the other project's spends, custodian-side)."""
    from strongroom.privacy import budget as dp_budget

    privacy = world.platform.privacy
    committee = world.staff("access-committee")
    other, theirs = world.researcher()
    privacy.configure(committee, theirs, reason="the access committee approved it",
                      epsilon="5")
    me, mine = world.researcher()
    privacy.configure(committee, mine, reason="the access committee approved it",
                      epsilon="0.01")
    with world.platform.access.transaction() as db:  # this researcher's ration: spent
        while privacy.rations.reserve(db, me, mine, "dp") is not None:
            pass
    told = {}
    for asked, epsilon in ((True, "0.052"), (False, "0.051")):
        if asked:
            privacy.query(other, theirs, {"kind": "count", "epsilon": epsilon})
        told[asked] = outcome(lambda epsilon=epsilon: privacy.query(
            me, mine, {"kind": "count", "epsilon": epsilon})).replace(epsilon, "ε")
    with world.platform.access.transaction() as db:
        assert [s.spec.get("epsilon") for s in dp_budget.spends(db, theirs, 10)] == ["0.052"]
    assert told[True] == told[False], told
