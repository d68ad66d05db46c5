"""A GWAS from a researcher's request to a released table, through the real services: the
genotype grant, the genetics rules, and the differencing ledger against a leaker's variants.

One platform (SQLite, a 3,000-participant synthetic cohort) serves the module. Its genotypes are
drawn so that a few variants track BMI (the true hits, known here) and a few are rare; the
ground truth is read custodian-side from the store, never from what the researcher receives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.enclave import service
from strongroom.errors import Refused
from strongroom.genomics.formats import open_genotypes
from strongroom.outputs import files, requests
from strongroom.outputs.genetics import frame_of
from strongroom.outputs.render import Format
from strongroom.outputs.verdicts import Verdict
from tests.access_world import World, build_world
from tests.genotype_files import write_bed

FIELDS = [31, 34, 21001, 4080, 2443]
BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p21001_i0 AS bmi, p4080_i0_a0 AS sbp, "
        "CASE WHEN p2443_i0 = 1 THEN 1 ELSE 0 END AS diabetes "
        "FROM participants WHERE p21001_i0 IS NOT NULL")
M, HITS, RARE = 300, (10, 50, 120), (200, 201, 202)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gwas")
    found = build_world(root, cohort=3000, fields=FIELDS)
    people = found.platform.store.load().participants
    eid = people["eid"].to_numpy()
    bmi = people["p21001_i0"].fill_null(strategy="mean").to_numpy()
    rng = np.random.default_rng(11)
    freq = rng.uniform(0.1, 0.5, M)
    z = (bmi - bmi.mean()) / bmi.std()
    g = np.empty((eid.size, M), dtype=np.float32)
    for j in range(M):
        p = np.full(eid.size, freq[j])
        if j in HITS:  # the allele is commoner the higher the BMI: a true association
            p = 1 / (1 + np.exp(-(np.log(freq[j] / (1 - freq[j])) + 0.6 * z)))
        g[:, j] = rng.binomial(2, p)
    for j in RARE:  # three carriers each
        g[:, j] = 0
        g[rng.choice(eid.size, 3, replace=False), j] = 1
    bed = write_bed(root / "genotypes" / "array", g, [str(e) for e in eid])
    with open_genotypes(bed) as source:
        found.platform.genotypes.ingest(source)
    yield found
    found.platform.close()


@pytest.fixture(scope="module")
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    service.define(world.platform.enclave, who, world.project_id, "base", BASE)
    return who


def gwas(world: World, who: Principal, fmt: str = "json", **spec: object
         ) -> requests.OutputView:
    request = {"kind": "gwas", "definition": "base", "traits": ["bmi"],
               "covariates": ["sex", "birth_year"], "categorical": ["sex"],
               "principal_components": 0, **spec}
    return world.platform.outputs.analyse(who, world.project_id, request, Format(fmt))


def granted(world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    if not projects.read(world.ctx, admin, world.project_id).genotypes:
        projects.set_genotypes(world.ctx, admin, world.project_id, True)


def _file(world: World, view: requests.OutputView) -> bytes:
    """The output's bytes as kept (custodian-side: a blocked output is never downloaded)."""
    with world.ctx.transaction() as db:
        project = db.get(Project, view.output.project_id)
        assert project is not None
        return files.load(world.ctx, project, view.output.sha256)


def test_a_project_without_a_genotype_grant_is_refused(world: World,
                                                        researcher: Principal) -> None:
    with pytest.raises(Refused, match="genotype grant"):
        gwas(world, researcher)


def test_the_true_hits_are_released_and_the_rare_variants_withheld(
        world: World, researcher: Principal) -> None:
    granted(world)
    view = gwas(world, researcher)
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.report.findings
    body = json.loads(_file(world, view))
    table = frame_of(_file(world, view))
    ids = set(table["id"].to_list())
    hits = {f"rs{1000 + j}" for j in HITS}
    assert hits <= ids
    assert table.filter(pl.col("id").is_in(list(hits)))["p"].max() < 5e-8
    assert not {f"rs{1000 + j}" for j in RARE} & ids
    assert any("minor allele count below 20" in r for r in body["withheld"])
    assert "alt_freq" in table.columns  # a group of thousands: frequencies are shown
    assert 0.8 < body["lambda_gc"]["bmi"] < 1.5
    eid = str(world.platform.store.load().participants["eid"][0])
    assert eid not in _file(world, view).decode()


def test_a_gwas_over_the_group_less_one_person_is_blocked(
        world: World, researcher: Principal) -> None:
    granted(world)
    first = gwas(world, researcher)
    world.platform.outputs.request_release(researcher, first.output.id)
    people = world.platform.store.load().participants.drop_nulls("p21001_i0")
    target_bmi = people["p21001_i0"][17]
    service.define(world.platform.enclave, researcher, world.project_id, "all_but_one",
                   BASE + f" AND p21001_i0 <> {target_bmi}")
    second = gwas(world, researcher, definition="all_but_one")
    assert second.report.verdict is Verdict.BLOCK
    assert frame_of(_file(world, second)).height == 0


def test_a_trait_changed_for_one_person_is_blocked(world: World,
                                                   researcher: Principal) -> None:
    """Two GWAS over the same people whose trait differs for one of them: their effects
    differ by that person's genotypes times the change, so the second is refused."""
    granted(world)
    first = gwas(world, researcher)
    world.platform.outputs.request_release(researcher, first.output.id)
    people = world.platform.store.load().participants.drop_nulls("p21001_i0")
    target_bmi = people["p21001_i0"][29]
    changed = BASE.replace("p21001_i0 AS bmi",
                           f"CASE WHEN p21001_i0 = {target_bmi} THEN p21001_i0 + 10 "
                           "ELSE p21001_i0 END AS bmi")
    service.define(world.platform.enclave, researcher, world.project_id, "one_changed", changed)
    second = gwas(world, researcher, definition="one_changed")
    assert second.report.verdict is Verdict.BLOCK
    assert frame_of(_file(world, second)).height == 0


def test_a_logistic_gwas_reports_odds_ratios_and_withholds_rare_alleles_among_cases(
        world: World, researcher: Principal) -> None:
    granted(world)
    view = gwas(world, researcher, traits=["diabetes"], model="logistic",
                covariates=["sex", "bmi"], categorical=["sex"])
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.report.findings
    table = frame_of(_file(world, view))
    assert {"odds_ratio", "or_ci_low", "or_ci_high", "z"} <= set(table.columns)
    assert (table["or_ci_low"] <= table["odds_ratio"]).all()
    body = json.loads(_file(world, view))
    assert any("among the cases or among the controls" in r or "below 20" in r
               for r in body["withheld"])


def test_a_small_group_gets_no_allele_frequencies(world: World,
                                                  researcher: Principal) -> None:
    granted(world)
    service.define(world.platform.enclave, researcher, world.project_id, "older",
                   BASE + " AND p34 < 1942")
    view = gwas(world, researcher, definition="older")
    assert view.report.verdict is Verdict.SUPPRESS, view.report.findings
    assert "alt_freq" not in frame_of(_file(world, view)).columns
    assert any("allele frequencies are not shown" in f.reason for f in view.report.findings)
