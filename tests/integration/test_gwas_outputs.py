"""A GWAS from a researcher's request to a released table, through the real services: the
genotype grant, the genetics rules, and the differencing ledger.

One platform (SQLite, a 3,000-participant synthetic cohort, tests/gwas_world.py) serves the
module; the ground truth (which variants track BMI, which are rare) is known custodian-side.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from strongroom.access.context import Principal
from strongroom.enclave import service
from strongroom.errors import Refused
from strongroom.outputs.genetics import frame_of
from strongroom.outputs.verdicts import Verdict
from tests.access_world import World
from tests.gwas_world import BASE, HITS, RARE, build_gwas_world, granted, gwas, stored


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_gwas_world(tmp_path_factory.mktemp("gwas"))
    yield found
    found.platform.close()


@pytest.fixture(scope="module")
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    service.define(world.platform.enclave, who, world.project_id, "base", BASE)
    return who


def test_a_project_without_a_genotype_grant_is_refused(world: World,
                                                        researcher: Principal) -> None:
    with pytest.raises(Refused, match="genotype grant"):
        gwas(world, researcher)


def test_the_true_hits_are_released_and_the_rare_variants_withheld(
        world: World, researcher: Principal) -> None:
    granted(world)
    view = gwas(world, researcher)
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.report.findings
    body = json.loads(stored(world, view))
    table = frame_of(stored(world, view))
    ids = set(table["id"].to_list())
    hits = {f"rs{1000 + j}" for j in HITS}
    assert hits <= ids
    assert table.filter(pl.col("id").is_in(list(hits)))["p"].max() < 5e-8
    # −log10 p beside p, the same figure (and given alone where p is below a float's reach)
    assert (table["p"] > 0).all()
    np.testing.assert_allclose(table["neg_log10_p"], -np.log10(table["p"]), rtol=1e-5)
    assert not {f"rs{1000 + j}" for j in RARE} & ids
    assert any("minor allele count below 20" in r for r in body["withheld"])
    assert "alt_freq" in table.columns  # a group of thousands: frequencies are shown
    assert 0.8 < body["lambda_gc"]["bmi"] < 1.5
    # an inflated λ_GC is said in words on the output, a calibrated one is not
    said = any("λ_GC of bmi" in note for note in body["notes"])
    assert said == (body["lambda_gc"]["bmi"] > 1.1)
    eid = str(world.platform.store.load().participants["eid"][0])
    assert eid not in stored(world, view).decode()


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
    assert frame_of(stored(world, second)).height == 0


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
    assert frame_of(stored(world, second)).height == 0


def test_a_logistic_gwas_reports_odds_ratios_and_withholds_rare_alleles_among_cases(
        world: World, researcher: Principal) -> None:
    """BMI as a covariate, after the module's BMI GWAS released it as a trait: a covariate
    is compared with covariates only (``contributions._family``), so the clip and the few
    without a diabetes status no longer block it, as they did in one new project of 20."""
    granted(world)
    view = gwas(world, researcher, traits=["diabetes"], model="logistic",
                covariates=["sex", "bmi"], categorical=["sex"])
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.report.findings
    table = frame_of(stored(world, view))
    assert {"odds_ratio", "or_ci_low", "or_ci_high", "z"} <= set(table.columns)
    assert (table["or_ci_low"] <= table["odds_ratio"]).all()
    body = json.loads(stored(world, view))
    assert any("among the cases or among the controls" in r or "below 20" in r
               for r in body["withheld"])


def test_a_small_group_gets_no_allele_frequencies(world: World,
                                                  researcher: Principal) -> None:
    granted(world)
    service.define(world.platform.enclave, researcher, world.project_id, "older",
                   BASE + " AND p34 < 1942")
    view = gwas(world, researcher, definition="older")
    assert view.report.verdict is Verdict.SUPPRESS, view.report.findings
    assert "alt_freq" not in frame_of(stored(world, view)).columns
    assert any("allele frequencies are not shown" in f.reason for f in view.report.findings)


def test_positions_that_look_like_participant_ids_do_not_block_a_gwas(
        world: World, researcher: Principal, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Variant positions are seven-digit numbers like participant IDs; they come from the
    custodian's variant table, so the raw-row scanner reads the statistics without them."""
    import numpy as np

    from strongroom.genomics.formats import open_genotypes
    from tests.genotype_files import write_bed

    granted(world)
    people = world.platform.store.load().participants
    eids = people["eid"].to_numpy()
    held = world.platform.genotypes.require_current()
    calls = np.concatenate([d for _, d in world.platform.genotypes.chunks(held)], axis=1)
    bed = write_bed(tmp_path_factory.mktemp("ids") / "array", calls,
                    [str(e) for e in world.platform.genotypes.samples(held)], seed=0)
    bim = bed.with_suffix(".bim")
    rows = [line.split("\t") for line in bim.read_text().splitlines()]
    positions = np.sort(eids)[: len(rows)]  # every position is some participant's ID
    bim.write_text("".join("\t".join([*r[:3], str(p), *r[4:]]) + "\n"
                           for r, p in zip(rows, positions, strict=True)))
    with open_genotypes(bed) as source:  # the same variants, now at ID-like positions
        world.platform.genotypes.ingest(source)
    view = gwas(world, researcher, traits=["sbp"])
    assert view.report.verdict is Verdict.SUPPRESS, view.report.findings
    assert not [f for f in view.report.findings if "participant IDs" in f.reason]
