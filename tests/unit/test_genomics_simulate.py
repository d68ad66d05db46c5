"""Simulated genotypes: real PLINK 1 files (read back by bed-reader and plink2), the same for a
seed, population structure and LD of the right shape, planted effects that a regression finds,
and bad input refused without leaving a file behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
import statsmodels.api as sm
from bed_reader import open_bed

from strongroom.cohort.model import Cohort
from strongroom.cohort.synth.generator import synthesise
from strongroom.genomics import ancestry
from strongroom.genomics.plant import LOCI, TRAITS, PlantError, plant
from strongroom.genomics.simulate import (
    Simulated,
    SimulationInputError,
    _founders_of,
    simulate,
)

PLINK2 = "/usr/bin/plink2"
N, M = 2000, 300
SCALE = 6.0  # effects six times life size, so that 2,000 people pin them down

Matrix = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return synthesise(N, seed=3)


@pytest.fixture(scope="module")
def sim(cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    out = tmp_path_factory.mktemp("geno") / "cohort"
    ticks: list[int] = []
    result = simulate(
        cohort.participants.select("eid", "p21000_i0"), M, 11, out,
        progress=lambda _stage, advance: ticks.append(advance), effect_scale=SCALE,
    )  # fmt: skip
    assert sum(ticks) == 100
    return result


@pytest.fixture(scope="module")
def dosages(sim: Simulated) -> Matrix:
    with open_bed(sim.bed) as bed:
        values: Matrix = bed.read(dtype=np.float32)
    return values


def people(**counts: int) -> pl.DataFrame:
    """``people(c1001=3, c4002=2)``: that many participants of each ethnic background code."""
    codes = [int(k[1:].replace("m", "-")) for k, n in counts.items() for _ in range(n)]
    return pl.DataFrame({"eid": np.arange(1, len(codes) + 1) * 7 + 1_000_000,
                         "p21000_i0": codes})  # fmt: skip


def test_the_files_are_plink1_in_the_people_s_order(
    sim: Simulated, cohort: Cohort, dosages: Matrix
) -> None:
    eid = cohort.participants["eid"].cast(pl.String).to_list()
    with open_bed(sim.bed) as bed:
        assert bed.shape == (N, M)
        assert bed.iid.tolist() == eid and bed.fid.tolist() == eid
        assert bed.sid.tolist() == sim.variants["id"].to_list()
        assert bed.allele_1.tolist() == sim.variants["alt"].to_list()  # allele 1 is ALT
        assert bed.allele_2.tolist() == sim.variants["ref"].to_list()
        assert bed.chromosome.tolist() == sim.variants["chrom"].to_list()
        assert bed.bp_position.tolist() == sim.variants["pos"].to_list()
    v = sim.variants
    assert v.columns == ["chrom", "pos", "id", "ref", "alt"]
    assert sorted(set(v["chrom"].cast(pl.Int64))) == list(range(1, 23))
    assert v.group_by("chrom").agg(ok=pl.col("pos").diff().drop_nulls().min() > 0)["ok"].all()
    assert v["ref"].is_in(list("ACGT")).all() and v["alt"].is_in(list("ACGT")).all()
    assert (v["ref"] != v["alt"]).all()
    assert v["id"].n_unique() == M
    assert not np.isnan(dosages).any() and set(np.unique(dosages)) <= {0.0, 1.0, 2.0}
    maf = np.minimum(dosages.mean(axis=0) / 2, 1 - dosages.mean(axis=0) / 2)
    assert maf.min() > 0
    assert 0.8 <= (maf >= 0.01).mean() < 1  # mostly common, some low-frequency
    assert (maf < 0.01).sum() >= 0.05 * M


def test_plink2_reads_the_files_and_counts_alt(
    sim: Simulated, dosages: Matrix, tmp_path: Path
) -> None:
    subprocess.run(
        [PLINK2, "--bfile", str(sim.prefix), "--freq", "--threads", "1", "--out",
         str(tmp_path / "freq")], check=True, capture_output=True,
    )  # fmt: skip
    freq = pl.read_csv(tmp_path / "freq.afreq", separator="\t")
    assert freq["ID"].to_list() == sim.variants["id"].to_list()
    assert freq["ALT"].to_list() == sim.variants["alt"].to_list()
    ours = dosages.mean(axis=0) / 2
    assert np.allclose(freq["ALT_FREQS"].to_numpy(), ours, atol=1e-6)


def test_the_same_seed_writes_the_same_files_with_or_without_workers(tmp_path: Path) -> None:
    crowd = people(c1001=150, c4001=30, c2003=5, cm1=5)
    here = simulate(crowd, 60, 5, tmp_path / "here", workers=0)
    pooled = simulate(crowd, 60, 5, tmp_path / "pooled", workers=1)
    other = simulate(crowd, 60, 6, tmp_path / "other", workers=0)
    for suffix in (".bed", ".bim", ".fam"):
        here_bytes = (tmp_path / f"here{suffix}").read_bytes()
        assert here_bytes == (tmp_path / f"pooled{suffix}").read_bytes()
    assert here.causal.equals(pooled.causal) and here.scores.equals(pooled.scores)
    assert here.bed.read_bytes() != other.bed.read_bytes()


def _fst(x: Matrix, y: Matrix) -> float:
    """Hudson's F_ST from two groups' genotypes, ratio of averages over variants."""
    p1, p2 = x.mean(axis=0) / 2, y.mean(axis=0) / 2
    n1, n2 = 2 * x.shape[0], 2 * y.shape[0]
    within = p1 * (1 - p1) * n1 / (n1 - 1) + p2 * (1 - p2) * n2 / (n2 - 1)
    between = p1 * (1 - p2) + p2 * (1 - p1)
    return float(1 - within.sum() / between.sum())


def test_allele_frequencies_differ_between_ancestries_as_they_should(tmp_path: Path) -> None:
    crowd = people(c1001=400, c4002=200, c3001=200, c5=200, c2001=50)
    result = simulate(crowd, 400, 2, tmp_path / "mix")
    with open_bed(result.bed) as bed:
        x = bed.read(dtype=np.float32)
    labels = np.array(result.ancestry["ancestry"].to_list())
    group = {name: x[labels == name] for name in ("EUR", "AFR", "SAS", "ASIA", "AFR+EUR")}
    eur = group["EUR"]
    halves = _fst(eur[:200], eur[200:])
    eur_afr, eur_sas, eur_asia = (_fst(eur, group[k]) for k in ("AFR", "SAS", "ASIA"))
    assert abs(halves) < 0.01
    assert eur_afr > 0.05 and eur_afr > 10 * abs(halves)
    assert 0.005 < eur_sas < eur_asia  # South Asians sit between Europeans and East Asians
    assert _fst(eur, group["AFR+EUR"]) < eur_afr  # one parent's genome from each side
    assert list(result.ancestry["eid"]) == list(crowd["eid"])


def test_unlinked_markers_carry_ancestry_and_no_linkage(tmp_path: Path) -> None:
    """Unlinked markers (issue 54): as many as asked, in genome order among the rest, drawn at
    each population's frequencies (Europeans and Africans differ as on the simulated regions),
    and independent of one another within a population (no LD between neighbours)."""
    crowd = people(c1001=600, c4002=300, c2001=60, cm3=10)
    result = simulate(crowd, 200, 4, tmp_path / "free", unlinked=400)
    v = result.variants
    assert v.height == 600 and v["id"].n_unique() == 600
    assert v.group_by("chrom").agg(ok=pl.col("pos").diff().drop_nulls().min() > 0)["ok"].all()
    assert result.unlinked.size == 400 and np.unique(result.unlinked).size == 400
    with open_bed(result.bed) as bed:
        assert bed.shape == (970, 600)
        x = bed.read(dtype=np.float32)
    labels = np.array(result.ancestry["ancestry"].to_list())
    free = np.zeros(600, dtype=bool)
    free[result.unlinked] = True
    eur, afr = x[labels == "EUR"], x[labels == "AFR"]
    assert _fst(eur[:, free], afr[:, free]) > 0.05
    assert abs(_fst(eur[:300, free], eur[300:, free])) < 0.01
    linked_fst = _fst(eur[:, ~free], afr[:, ~free])
    assert 0.5 * linked_fst < _fst(eur[:, free], afr[:, free]) < 2 * linked_fst
    mixed = x[labels == "AFR+EUR"][:, free].mean(axis=0)
    middle = (eur[:, free].mean(axis=0) + afr[:, free].mean(axis=0)) / 2
    assert np.corrcoef(mixed, middle)[0, 1] > 0.9  # one haplotype from each side
    columns = np.flatnonzero(free & (eur.std(axis=0) > 0))
    r = np.corrcoef(eur[:, columns].T)
    neighbours = np.array([r[i, i + 1] ** 2 for i in range(columns.size - 1)])
    assert np.nanmean(neighbours) < 0.01  # 1/600 expected by chance
    assert not np.isin(result.causal["index"].to_numpy(), result.unlinked).any()


def test_a_large_population_is_drawn_from_founders_each_carrying_its_share() -> None:
    """Above ``founders`` haplotypes a population, each participant's haplotype in a region is
    one of their own population's founders, every founder carrying as many as the others give
    or take one, shuffled afresh in each region; a population within the cap is its own."""
    lineage = ancestry.assign(np.array([1001.0] * 300 + [4002.0] * 40 + [2001.0] * 10), 3)
    counts = lineage.sample_counts
    pool = np.minimum(counts, 100)
    assert (pool < counts).any() and (pool == counts).any()
    first, second = _founders_of(lineage, pool, 3, 0)
    nodes = np.column_stack([first, second])
    starts = np.concatenate([[0], np.cumsum(pool)[:-1]])
    for p, (start, size) in enumerate(zip(starts, pool, strict=True)):
        carried = nodes[lineage.populations == p]
        if size == 0:
            assert carried.size == 0
            continue
        assert carried.min() >= start and carried.max() < start + size, p
        shares = np.bincount(carried - start, minlength=size)
        assert shares.max() - shares.min() <= 1, p
    again = np.column_stack(_founders_of(lineage, pool, 3, 0))
    other = np.column_stack(_founders_of(lineage, pool, 3, 1))
    assert np.array_equal(again, nodes) and not np.array_equal(other, nodes)
    own = np.column_stack(_founders_of(lineage, counts, 3, 0))
    assert np.array_equal(own, lineage.haplotypes)


def test_a_founder_pool_keeps_the_planted_loci_on_top_and_the_rest_calibrated(
    cohort: Cohort, tmp_path: Path
) -> None:
    """The demo's 500,000 draw each population's regions from 50,000 founders (each carried by
    some seventeen participants' haplotypes); here 2,000 from 300 a population, a dozen each:
    the planted BMI lead is still its trait's top variant, and a trait of noise is calibrated
    over the linked and unlinked markers (λ_GC near 1, ten principal components)."""
    from strongroom.genomics.gwas import GENOME_WIDE, linear_gwas
    from strongroom.genomics.pca import genotype_pcs

    result = simulate(cohort.participants.select("eid", "p21000_i0"), M, 11,
                      tmp_path / "pooled", effect_scale=SCALE, unlinked=3 * M, founders=300)
    with open_bed(result.bed) as bed:
        x: Matrix = bed.read(dtype=np.float32)
    planted = plant(cohort, result).participants
    bmi = planted["p21001_i0"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    noise = np.random.default_rng(5).standard_normal(bmi.shape[0])
    pcs = genotype_pcs(lambda: [(0, x)], 10).scores
    found = linear_gwas([(0, x)], np.column_stack([bmi, noise]), pcs,
                        trait_names=["bmi", "noise"])
    lead = result.causal.filter(pl.col("locus") == "FTO-like").row(0, named=True)
    rows = found.filter(pl.col("trait") == "bmi").sort("p")
    assert rows["variant"][0] == lead["index"] and rows["p"][0] < GENOME_WIDE
    stat = found.filter(pl.col("trait") == "noise")["stat"].drop_nulls().to_numpy()
    assert stat.size > 3 * M and 0.8 < np.median(np.square(stat)) / 0.4549 < 1.2


def test_ld_decays_with_distance(sim: Simulated, dosages: Matrix) -> None:
    v = sim.variants
    chrom, pos = v["chrom"].to_numpy(), v["pos"].to_numpy()
    near = np.flatnonzero((chrom[:-1] == chrom[1:]) & (np.diff(pos) < 5_000))
    r = np.corrcoef(dosages.T)
    adjacent = np.array([r[i, i + 1] ** 2 for i in near])
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, M, (2000, 2))
    apart = pairs[chrom[pairs[:, 0]] != chrom[pairs[:, 1]]]
    far = r[apart[:, 0], apart[:, 1]] ** 2
    assert near.size > 100
    assert adjacent.mean() > 0.1
    assert adjacent.mean() > 20 * far.mean()


def test_ethnic_background_maps_to_ancestry() -> None:
    codes = np.array([1001, 4001, 3002, 5, 2001, 2003, 6, 2, np.nan, -1, -3], dtype=np.float64)
    labels = ancestry.assign(codes, 0).labels
    assert labels[:8] == ["EUR", "AFR", "SAS", "ASIA", "AFR+EUR", "EUR+SAS", "ADMIX", "ADMIX"]
    assert set(labels[8:]) <= set(labels[:8])  # unknowns drawn from the known backgrounds
    assert ancestry.assign(np.array([np.nan, -1.0]), 0).labels == ["ADMIX", "ADMIX"]
    lineage = ancestry.assign(codes, 0)
    assert sorted(lineage.haplotypes.ravel()) == list(range(2 * codes.shape[0]))


def _dosage(dosages: Matrix, sim: Simulated, locus: str) -> tuple[npt.NDArray[np.float64], float]:
    row = sim.causal.filter(pl.col("locus") == locus).row(0, named=True)
    return dosages[:, row["index"]].astype(np.float64), float(row["effect"])


def test_planted_effects_are_found_by_a_regression(
    sim: Simulated, cohort: Cohort, dosages: Matrix
) -> None:
    assert set(sim.causal["trait"]) == set(TRAITS)
    assert sim.causal.height == len(LOCI)
    assert (np.minimum(sim.causal["alt_freq"], 1 - sim.causal["alt_freq"]) >= 0.05).all()
    planted = plant(cohort, sim).participants
    for trait, locus, column in (("bmi", "FTO-like", "p21001_i0"),
                                 ("sbp", "SBP lead", "p4080_i0_a0")):  # fmt: skip
        x, effect = _dosage(dosages, sim, locus)
        y = planted[column].cast(pl.Float64).to_numpy()
        keep = ~np.isnan(y)
        beta = np.polyfit(x[keep], y[keep], 1)[0]
        assert np.sign(beta) == np.sign(effect), trait
        assert abs(beta - effect) < 0.3 * abs(effect), (trait, beta, effect)
    x, effect = _dosage(dosages, sim, "TCF7L2-like")
    status = planted["p2443_i0"].to_numpy()
    keep = np.isin(status, (0, 1))
    fit = sm.Logit(status[keep], sm.add_constant(x[keep])).fit(disp=0)
    assert np.sign(fit.params[1]) == np.sign(effect)
    assert abs(fit.params[1] - effect) < 0.3 * abs(effect), (fit.params[1], effect)


def test_plant_adds_the_centred_score_and_leaves_the_rest(sim: Simulated, cohort: Cohort) -> None:
    before = cohort.participants
    after = plant(cohort, sim).participants
    changed = {"p21001_i0", "p4080_i0_a0", "p4080_i0_a1", "p2443_i0"}
    assert after.drop(changed).equals(before.drop(changed))
    score = sim.scores["bmi"].to_numpy()
    old, new = before["p21001_i0"].to_numpy(), after["p21001_i0"].to_numpy()
    known = ~np.isnan(old)
    assert np.array_equal(np.isnan(new), ~known)  # missing stays missing
    inside = known & (new > 12) & (new < 75)
    assert np.allclose(new[inside] - old[inside], (score - score.mean())[inside], atol=1e-4)
    status_before, status_after = before["p2443_i0"], after["p2443_i0"]
    unknown = ~status_before.is_in([0, 1]).fill_null(False)
    assert status_after.filter(unknown).equals(status_before.filter(unknown))
    assert abs(status_after.filter(~unknown).mean() - status_before.filter(~unknown).mean()) < 0.02


def test_plant_with_no_genetic_effect_changes_nothing(cohort: Cohort) -> None:
    zero = cohort.participants.select("eid", *(pl.lit(0.0).alias(t) for t in TRAITS))
    assert plant(cohort, zero).participants.equals(cohort.participants)


def test_plant_refuses_scores_of_people_not_in_the_cohort(cohort: Cohort) -> None:
    stray = pl.DataFrame({"eid": [1], **{t: [0.1] for t in TRAITS}})
    with pytest.raises(PlantError, match="not in the cohort"):
        plant(cohort, stray)
    with pytest.raises(PlantError, match="lack column"):
        plant(cohort, stray.drop("sbp"))


def test_missing_calls_come_at_the_rate_asked(tmp_path: Path) -> None:
    result = simulate(people(c1001=400), 50, 1, tmp_path / "gaps", missing_rate=0.05)
    with open_bed(result.bed) as bed:
        share = np.isnan(bed.read(dtype=np.float32)).mean()
    assert 0.04 < share < 0.06


def test_one_participant_and_one_variant_are_enough(tmp_path: Path) -> None:
    result = simulate(people(c1001=1), 1, 1, tmp_path / "tiny")
    with open_bed(result.bed) as bed:
        assert bed.shape == (1, 1)
        assert bed.read()[0, 0] == 1.0  # one person: only a heterozygous site varies


@pytest.mark.parametrize(
    ("crowd", "variants", "error"),
    [
        (pl.DataFrame({"eid": [], "p21000_i0": []}, schema={"eid": pl.Int64,
                                                          "p21000_i0": pl.Int64}),
         10, "at least one participant"),
        (people(c1001=3), 0, "variants must be"),
        (people(c1001=3, c7=1), 10, "not in UK Biobank coding 1001"),
        (people(c1001=3).drop("p21000_i0"), 10, "needs columns"),
        (pl.concat([people(c1001=2), people(c1001=1)]), 10, "repeats"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_writes_nothing(
    crowd: pl.DataFrame, variants: int, error: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=error):
        simulate(crowd, variants, 1, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("founders", [0, -3, 2.5, True])
def test_a_founder_pool_that_is_no_whole_number_is_refused(founders: object,
                                                           tmp_path: Path) -> None:
    with pytest.raises(SimulationInputError, match="founders must be a whole number"):
        simulate(people(c1001=3), 10, 1, tmp_path / "bad", founders=founders)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(SimulationInputError, match="too few polymorphic sites"):
        simulate(people(c1001=1), 100_000, 1, tmp_path / "dense", markers_per_mb=1e6)
    assert list(tmp_path.iterdir()) == []


def test_our_gwas_finds_the_planted_loci_genome_wide(
    sim: Simulated, cohort: Cohort, dosages: Matrix
) -> None:
    """The planted BMI and SBP leads come out of Strongroom's own GWAS (with the first ten
    principal components as covariates, as in the enclave) at p < 5e-8, each its trait's top
    variant or beside it (the same locus)."""
    from strongroom.genomics.gwas import GENOME_WIDE, linear_gwas
    from strongroom.genomics.pca import genotype_pcs

    planted = plant(cohort, sim).participants
    traits = np.column_stack([planted[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
                              for c in ("p21001_i0", "p4080_i0_a0")])
    pcs = genotype_pcs(lambda: [(0, dosages)], 10).scores
    results = linear_gwas([(0, dosages)], traits, pcs, trait_names=["bmi", "sbp"])
    for trait, locus in (("bmi", "FTO-like"), ("sbp", "SBP lead")):
        lead = sim.causal.filter(pl.col("locus") == locus).row(0, named=True)
        rows = results.filter(pl.col("trait") == trait)
        assert rows.filter(pl.col("variant") == lead["index"])["p"][0] < GENOME_WIDE, trait
        top = rows.sort("p")["variant"][0]
        same_chrom = sim.variants["chrom"][top] == sim.variants["chrom"][lead["index"]]
        assert same_chrom and abs(sim.variants["pos"][top] - sim.variants["pos"][lead["index"]]
                                  ) < 1_000_000, (trait, top, lead["index"])


def test_each_causal_locus_has_a_region_of_its_own_far_from_the_rest() -> None:
    """With markers enough, a locus tags only its own few neighbours: the rest of the markers
    are null, as in a real genome (inside the big regions every marker was in LD with its
    locus, and the demo's GWAS of BMI was inflated on nearly every chromosome)."""
    from strongroom.genomics import plant as planting
    from strongroom.genomics.simulate import CAUSAL_GAP, CAUSAL_MARKERS, _reach, layout

    regions = layout(2000, 1000.0, 7)
    assert sum(r.markers for r in regions) == 2000
    causal = [r for r in regions if r.hosts >= 0]
    groups = -(-len(planting.LOCI) // planting.GROUP)
    assert sorted(r.hosts for r in causal) == list(range(groups))
    order = [(int(r.chrom), r.start) for r in regions]
    assert order == sorted(order)
    for region in causal:
        for other in regions:
            if other is region or other.chrom != region.chrom:
                continue
            low, high = sorted((region, other), key=lambda r: r.start)
            assert high.start - (low.start + _reach(low)) >= CAUSAL_GAP
    hosted = planting.place(regions, 7)
    assert sorted(locus.name for h in hosted for locus in h) == sorted(
        locus.name for locus in planting.LOCI)  # every locus, once
    for h, r in zip(hosted, regions, strict=True):
        assert bool(h) == (r.hosts >= 0)
        assert len({locus.trait for locus in h}) == len(h)  # no trait twice in a region
        assert not h or r.markers == CAUSAL_MARKERS * len(h)
    # too few markers for regions of their own: the loci share the regions, as before
    few = layout(300, 1000.0, 7)
    assert all(r.hosts < 0 for r in few) and sum(len(h) for h in planting.place(few, 7)) == len(
        planting.LOCI)
