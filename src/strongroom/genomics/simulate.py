"""Synthetic genotypes for the synthetic cohort: a coalescent simulation with a published human
demography, so that allele frequencies, linkage disequilibrium and population structure have
real shapes, written as PLINK 1 files one variant at a time.

Markers are spread over the 22 autosomes in proportion to their length (GRCh38, stdpopsim's
HomSap genome). Each chromosome's share is simulated as independent regions of about 1 Mb
(``markers_per_mb`` sets the density, 1,000 by default: one marker a kilobase, between a
genotyping array and imputed data; denser means fewer, shorter simulations), at the
chromosome's mean recombination rate. msprime runs the most recent 25 generations as a discrete
Wright–Fisher model (a coalescent is wrong when the sample outnumbers the population, and it is
faster there), then the standard coalescent. From each region's biallelic SNPs it picks common
ones (MAF ≥ 1% in the cohort) and a share (``low_frequency_share``) of low-frequency ones
(MAF < 1%, at least 0.1% or one allele); REF is the ancestral allele, ALT the derived.

Unlinked markers (``unlinked``, none by default) stand for the bulk of a genotyping array: markers
far apart across the genome, each inherited independently of the others. Each takes the
population allele frequencies of a common marker (MAF ≥ 5%) of a simulated region, drawn at
random (a common marker lends them to three unlinked ones on average when there are three times
as many): a participant's two alleles are independent draws at the frequencies of the
populations their two haplotypes come from (to 1/256). They carry ancestry as a genome does
and no linkage, which 2,000 markers in some thirty simulated regions cannot: principal components
of those regions follow their few local genealogies more than ancestry, and at 500,000
participants the demo's GWAS of BMI had λ_GC 4.96 with ten of them (issue 54). Each region's
unlinked markers are placed on its chromosome between it and the next region, so the files stay
in genome order. They carry no effect.

A large cohort's regions are simulated for a pool of founder haplotypes, at most ``FOUNDERS`` per
population, and each participant's haplotype in a region is one of its population's founders
(every founder carrying as many of the population's haplotypes as the others, give or take one,
afresh in each region). The coalescent over a million haplotypes was four fifths of the
simulation's CPU at 500,000 participants (404 of 497 CPU-s); from the founders, allele
frequencies and LD are as before, and a founder shared over a 1 Mb region is what distant
relatives share (a trait of noise reads λ_GC 0.97 at 500,000, with the components). Below
``FOUNDERS`` haplotypes a population, as in the tests, every haplotype is simulated.

Regions are simulated by worker processes while the main process decodes the previous region's
picked sites, sums each participant's two haplotypes, accumulates the genetic scores of the
causal variants and hands the dosages to bed-reader's writer: nothing holds the samples ×
variants matrix. Files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import msprime
import numpy as np
import numpy.typing as npt
import polars as pl
import stdpopsim
import tskit
from bed_reader import create_bed

from strongroom import sets
from strongroom.cohort import model
from strongroom.genomics import ancestry, plant
from strongroom.progress import Progress

REGION_TARGET = 1_000_000  # bp a simulated region aims at
MIN_REGION = 50_000  # bp: enough common sites even when a chromosome's share is a few markers
CAUSAL_MARKERS = 5  # markers a causal locus brings to its region (it and its neighbours)
CAUSAL_ROOM = 4 * MIN_REGION  # how far a causal region may grow if short of sites
CAUSAL_GAP = 5_000_000  # bp between a causal region and any other: LD does not reach
DEDICATED_FROM = 4  # loci get their own regions from this many times their markers
MARKERS_PER_MB = 1_000.0
COMMON_MAF = 0.01
LOW_MAF_FLOOR = 0.001
LOW_FREQUENCY_SHARE = 0.1
WRIGHT_FISHER_GENERATIONS = 25
ATTEMPTS = 6  # a region short of sites is simulated again, twice as long, up to this often
UNLINKED_MAF = 0.05  # unlinked markers take their frequencies from markers at least this common
UNLINKED_BATCH = 16  # unlinked markers drawn at once
POOL_FROM = 20_000  # participants from which regions are simulated in worker processes
FOUNDERS = 50_000  # haplotypes a population's regions are simulated for, at most (docstring)
MISSING = -127  # bed-reader's missing call for int8 vectors

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class SimulationInputError(ValueError):
    """Input that genotypes cannot be simulated for."""


@dataclass(frozen=True)
class Simulated:
    """What :func:`simulate` wrote and what the tests and :func:`plant.plant` need to know."""

    prefix: Path  # the files are prefix.bed, prefix.bim and prefix.fam
    variants: pl.DataFrame  # chrom, pos, id, ref, alt, in file order
    causal: pl.DataFrame  # id, index (0-based variant index), trait, locus, effect, alt_freq
    scores: pl.DataFrame  # eid, genetic values: bmi, sbp (measured scale), diabetes (log odds)
    ancestry: pl.DataFrame  # eid, ancestry ("EUR", or "AFR+EUR" for two populations)
    seed: int
    unlinked: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))  # their indices

    @property
    def bed(self) -> Path:
        return _with_suffix(self.prefix, ".bed")

    @property
    def bim(self) -> Path:
        return _with_suffix(self.prefix, ".bim")

    @property
    def fam(self) -> Path:
        return _with_suffix(self.prefix, ".fam")


@dataclass(frozen=True)
class Region:
    """A stretch of a chromosome simulated on its own, and how many markers it gives."""

    chrom: str
    start: int  # 0-based offset in the chromosome
    length: int
    room: int  # how far it may grow, if it comes up short of sites
    markers: int
    recombination_rate: float
    hosts: int = -1  # the group of plant.LOCI it is simulated for (plant.GROUP a group), if any


@dataclass(frozen=True)
class _Task:
    index: int
    region: Region
    sample_counts: tuple[int, ...]
    seed: int
    low_share: float
    unlinked: int = 0  # unlinked markers whose frequencies this region gives
    unlinked_span: tuple[int, int] = (0, 0)  # 1-based positions they may take (first, last)


@dataclass(frozen=True)
class _Sites:
    """A region's picked markers: a tree sequence holding only them, and their description."""

    ts: tskit.TreeSequence
    pos: IntArray  # 1-based, in the chromosome
    ref: list[str]
    alt: list[str]
    alt_freq: FloatArray


def simulate(
    people: pl.DataFrame,
    variants: int,
    seed: int,
    out: str | Path,
    progress: Progress | None = None,
    *,
    effect_scale: float = 1.0,
    missing_rate: float = 0.0,
    low_frequency_share: float = LOW_FREQUENCY_SHARE,
    markers_per_mb: float = MARKERS_PER_MB,
    workers: int | None = None,
    unlinked: int = 0,
    founders: int = FOUNDERS,
) -> Simulated:
    """Simulate ``variants`` markers for ``people`` (``eid`` and ethnic background
    ``p21000_i0``) and write ``out.bed/.bim/.fam`` in their order, FID = IID = eid.

    The same seed gives the same files. ``effect_scale`` multiplies every causal effect;
    ``missing_rate`` blanks that share of calls at random (the scores use the true genotypes);
    ``unlinked`` adds that many unlinked markers (module docstring) to the ``variants``;
    ``founders`` caps the haplotypes a population's regions are simulated for (module docstring);
    ``workers`` is how many processes simulate regions (default: up to two for 20,000 people or
    more, none below; they are spawned, so a script calling this needs the
    ``if __name__ == "__main__":`` guard). ``progress(stage, advance)`` advances sum to 100.
    """
    eid, ethnicity = _check(people, variants, out)
    _check_options(effect_scale, missing_rate, low_frequency_share, markers_per_mb, workers)
    if isinstance(founders, bool) or not isinstance(founders, int | np.integer) or founders < 1:
        raise SimulationInputError(f"founders must be a whole number ≥ 1, not {founders!r}")
    if isinstance(unlinked, bool) or not isinstance(unlinked, int | np.integer) or unlinked < 0:
        raise SimulationInputError(f"unlinked must be a whole number ≥ 0, not {unlinked!r}")
    n = eid.shape[0]
    lineage = ancestry.assign(ethnicity, seed)
    regions = layout(variants, markers_per_mb, seed)
    hosted = plant.place(regions, seed)
    pool = np.minimum(lineage.sample_counts, founders)
    counts = tuple(int(c) for c in pool)
    spans = _unlinked_spans(regions)
    shares = _unlinked_shares(regions, spans, int(unlinked))
    tasks = [_Task(i, r, counts, seed, low_frequency_share, int(shares[i]), spans[i])
             for i, r in enumerate(regions)]
    total = variants + int(unlinked)
    unlinked_at: list[IntArray] = []
    present = np.flatnonzero(pool > 0)  # haplotypes are in population order
    offsets = np.concatenate([[0], np.cumsum(pool)[:-1]])
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if n >= POOL_FROM else 0

    prefix = Path(out)
    prefix = prefix.with_name(prefix.name.removesuffix(".bed"))
    temp = prefix.with_name(f"{prefix.name}.partial-{uuid.uuid4().hex[:8]}")
    temps = [_with_suffix(temp, s) for s in (".bed", ".bim", ".fam")]
    ids = eid.astype(str)
    writer: create_bed | None = None
    scores = np.zeros((n, len(plant.TRAITS)), dtype=np.float64)
    missing_rng = np.random.default_rng([seed, 5])
    tables: list[pl.DataFrame] = []
    causal: list[dict[str, object]] = []
    dosage = np.empty(n, dtype=np.int8)
    written = 0
    ticked = 0
    try:
        writer = create_bed(
            temps[0], iid_count=n, sid_count=total, properties={"fid": ids, "iid": ids},
            bim_location=temps[1], fam_location=temps[2], num_threads=1,
        )  # fmt: skip
        for task, sites in _regions(tasks, workers):
            hap_a, hap_b = _founders_of(lineage, pool, seed, task.index)
            chosen = plant.pick(hosted[task.index], sites.alt_freq, seed, task.index)
            table = _variant_table(task.region.chrom, sites)
            population_freq = np.zeros((table.height, len(ancestry.POPULATIONS)))
            for row, variant in enumerate(sites.ts.variants(copy=False, isolated_as_missing=False)):
                g = variant.genotypes
                if task.unlinked:
                    population_freq[row, present] = np.add.reduceat(
                        g, offsets[present], dtype=np.int64) / pool[present]
                np.add(g[hap_a], g[hap_b], out=dosage, casting="unsafe")
                if row in chosen:
                    locus, effect = chosen[row][0], chosen[row][1] * effect_scale
                    trait = plant.TRAITS.index(locus.trait)
                    scores[:, trait] += effect * dosage
                    causal.append({"id": table["id"][row], "index": written + row,
                                   "trait": locus.trait, "locus": locus.name, "effect": effect,
                                   "alt_freq": float(sites.alt_freq[row])})  # fmt: skip
                if missing_rate > 0:
                    call = dosage.copy()
                    call[missing_rng.random(n) < missing_rate] = MISSING
                    writer.write(call)
                else:
                    writer.write(dosage)
            written += table.height
            tables.append(table)
            if task.unlinked:
                extra = _unlinked_table(task, sites, seed)
                rng = np.random.default_rng([seed, 31, task.index])
                draws = _unlinked_dosages(_sources(population_freq, sites.alt_freq,
                                                   task.unlinked, rng),
                                          lineage.populations, rng)
                for call in draws:
                    if missing_rate > 0:
                        call[missing_rng.random(n) < missing_rate] = MISSING
                    writer.write(call)
                unlinked_at.append(written + np.arange(extra.height, dtype=np.int64))
                written += extra.height
                tables.append(extra)
            done = 100 * written // total
            if progress is not None and done > ticked:
                progress("genotypes", done - ticked)
                ticked = done
        writer.close()
        variant_table = pl.concat(tables)
        _write_bim(variant_table, temps[1])
        finals = [_with_suffix(prefix, s) for s in (".bed", ".bim", ".fam")]
        for src, dst in zip(temps, finals, strict=True):
            src.replace(dst)
    except BaseException:
        if writer is not None:
            with contextlib.suppress(ValueError):
                writer.close()  # refuses an incomplete file and removes it; the rest goes here
        for path in temps:
            path.unlink(missing_ok=True)
        raise
    return Simulated(
        prefix=prefix,
        variants=variant_table,
        causal=pl.DataFrame(causal, schema=_CAUSAL_SCHEMA),
        scores=pl.DataFrame(
            {model.EID: eid, **{t: scores[:, i] for i, t in enumerate(plant.TRAITS)}}
        ),
        ancestry=pl.DataFrame({model.EID: eid, "ancestry": lineage.labels}),
        seed=seed,
        unlinked=np.concatenate(unlinked_at) if unlinked_at else np.zeros(0, np.int64),
    )


_CAUSAL_SCHEMA = {
    "id": pl.String, "index": pl.Int64, "trait": pl.String, "locus": pl.String,
    "effect": pl.Float64, "alt_freq": pl.Float64,
}  # fmt: skip


def _founders_of(lineage: ancestry.Ancestry, founders: IntArray, seed: int,
                 region: int) -> tuple[IntArray, IntArray]:
    """Which simulated haplotype each participant's first and second haplotype is in a region:
    their own where the population is simulated whole, else one of its ``founders``, each
    founder taken by the population's haplotypes in turn after a shuffle of the region's own."""
    if np.array_equal(founders, lineage.sample_counts):
        return lineage.haplotypes[:, 0], lineage.haplotypes[:, 1]
    rng = np.random.default_rng([seed, 41, region])
    node = np.empty(int(lineage.sample_counts.sum()), dtype=np.int64)
    start = founder = 0
    for count, pool in zip(lineage.sample_counts.tolist(), founders.tolist(), strict=True):
        node[start:start + count] = founder + rng.permutation(count) % max(pool, 1)
        start, founder = start + count, founder + pool
    return node[lineage.haplotypes[:, 0]], node[lineage.haplotypes[:, 1]]


def layout(variants: int, markers_per_mb: float, seed: int) -> list[Region]:
    """The regions to simulate, in genome order: each autosome's share of the markers (by
    length) in regions of about 1 Mb, one to a slot of the chromosome, placed at random within
    it; and, when there are markers enough, short regions of their own for the causal loci,
    one for each group of ``plant.GROUP`` (a locus of each trait: no GWAS sees two of its own
    loci in one region), ``CAUSAL_MARKERS`` markers a locus, away from the rest. A locus then
    tags only its own few neighbours, as a hit does in a real genome, and the rest of the
    markers are null: with the
    loci inside the big regions, every marker of a region was in LD with its locus, and at
    500,000 participants the GWAS of BMI found −log10 p of 50 to 110 on nearly every
    chromosome and λ_GC 13.8 (issue 54)."""
    chroms = _autosomes()
    lengths = np.array([c.length for c in chroms], dtype=np.float64)
    loci = len(plant.LOCI)
    groups = -(-loci // plant.GROUP)
    dedicated = groups if variants >= DEDICATED_FROM * loci * CAUSAL_MARKERS else 0
    rng = np.random.default_rng([seed, 22])
    regions: list[Region] = []
    sizes = [CAUSAL_MARKERS * len(plant.LOCI[g * plant.GROUP:(g + 1) * plant.GROUP])
             for g in range(dedicated)]
    quotas = _apportion(variants - sum(sizes), lengths)
    for chrom, quota in zip(chroms, quotas, strict=True):
        if quota == 0:
            continue
        span = max(quota / markers_per_mb * 1e6, MIN_REGION)
        k = int(min(max(1, round(span / REGION_TARGET)), quota))
        slot = int(chrom.length) // k
        length = int(min(span / k, slot))
        for i, markers in enumerate(_apportion(int(quota), np.ones(k))):
            start = i * slot + int(rng.integers(0, slot - length + 1))
            regions.append(
                Region(chrom.id, start, length, (i + 1) * slot - start, int(markers),
                       float(chrom.recombination_rate))
            )  # fmt: skip
    causal_rng = np.random.default_rng([seed, 23])
    for group, markers in enumerate(sizes):
        regions.append(_clear_of(regions, chroms, lengths, causal_rng, group, markers))
    order = {c.id: i for i, c in enumerate(chroms)}
    return sorted(regions, key=lambda r: (order[r.chrom], r.start))


def _clear_of(regions: list[Region], chroms: tuple[stdpopsim.Chromosome, ...],
              lengths: FloatArray, rng: np.random.Generator, group: int,
              markers: int) -> Region:
    """A group of causal loci's own region, on a chromosome drawn by length: room to grow to
    ``CAUSAL_ROOM`` bp, at least ``CAUSAL_GAP`` bp from as far as any other region may grow
    (LD does not reach that far)."""
    for _ in range(1000):
        chrom = chroms[int(rng.choice(len(chroms), p=lengths / lengths.sum()))]
        start = int(rng.integers(0, int(chrom.length) - CAUSAL_ROOM))
        end = start + CAUSAL_ROOM
        if all(end + CAUSAL_GAP <= r.start or start >= r.start + _reach(r) + CAUSAL_GAP
               for r in regions if r.chrom == chrom.id):
            return Region(chrom.id, start, MIN_REGION, CAUSAL_ROOM, markers,
                          float(chrom.recombination_rate), hosts=group)
    raise SimulationInputError("the genome has no room left for a causal locus's own region; "
                               "lower markers_per_mb")


def _reach(region: Region) -> int:
    """How far a region may grow when it is simulated again for want of sites."""
    return int(min(region.room, region.length * 2 ** (ATTEMPTS - 1)))


def _apportion(total: int, weights: FloatArray) -> IntArray:
    """``total`` split in proportion to ``weights`` in whole numbers (largest remainder)."""
    exact = total * weights / weights.sum()
    whole: IntArray = np.floor(exact).astype(np.int64)
    short = total - int(whole.sum())
    whole[np.argsort(-(exact - whole), kind="stable")[:short]] += 1
    return whole


@cache
def _autosomes() -> tuple[stdpopsim.Chromosome, ...]:
    genome = stdpopsim.get_species("HomSap").genome
    return tuple(genome.get_chromosome(str(c)) for c in range(1, 23))


def _regions(tasks: list[_Task], workers: int) -> Iterator[tuple[_Task, _Sites]]:
    """Each region's sites in order, simulated ahead by ``workers`` processes (0: here)."""
    if workers == 0:
        for task in tasks:
            yield task, simulate_region(task)
        return
    # spawn, not fork: the parent holds Polars' and bed-reader's threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        ahead: deque[tuple[_Task, Future[_Sites]]] = deque()
        pending = iter(tasks)
        for task in pending:
            ahead.append((task, pool.submit(simulate_region, task)))
            if len(ahead) > workers:  # at most `workers` + 1 regions held at once
                first, future = ahead.popleft()
                yield first, future.result()
        while ahead:
            first, future = ahead.popleft()
            yield first, future.result()


def simulate_region(task: _Task) -> _Sites:
    """Simulate one region and pick its markers (runs in a worker process)."""
    region = task.region
    dem = _demography()
    samples = [
        msprime.SampleSet(count, population=name, ploidy=1)
        for name, count in zip(ancestry.POPULATIONS, task.sample_counts, strict=True)
        if count > 0
    ]
    for attempt in range(ATTEMPTS):
        length = min(region.length * 2**attempt, region.room)
        ancestry_seed, mutation_seed, pick_seed = (
            int(s) % (2**31 - 1) + 1
            for s in np.random.SeedSequence([task.seed, task.index, attempt]).generate_state(3)
        )
        ts = msprime.sim_ancestry(
            samples=samples,
            demography=dem,
            sequence_length=length,
            recombination_rate=region.recombination_rate,
            ploidy=2,
            model=[
                msprime.DiscreteTimeWrightFisher(duration=WRIGHT_FISHER_GENERATIONS),
                msprime.StandardCoalescent(),
            ],
            random_seed=ancestry_seed,
        )
        ts = msprime.sim_mutations(ts, rate=ancestry.mutation_rate(), random_seed=mutation_seed)
        count = _derived_counts(ts)
        sites = _pick(ts, count, region, task.low_share, np.random.default_rng(pick_seed))
        if sites is not None:
            return sites
        if length == region.room:
            break
    raise SimulationInputError(
        f"chromosome {region.chrom} region at {region.start} has too few polymorphic sites for "
        f"{region.markers} markers; lower markers_per_mb"
    )


@cache
def _demography() -> msprime.Demography:
    return ancestry.demography()


def _pick(ts: tskit.TreeSequence, count: IntArray, region: Region, low_share: float,
          rng: np.random.Generator) -> _Sites | None:  # fmt: skip
    """The region's markers from its sites (``count``: each one's derived allele count), or
    None if it has too few."""
    haplotypes = ts.num_samples
    single = count >= 0
    minor = np.minimum(count, haplotypes - count)
    common = single & (minor >= COMMON_MAF * haplotypes)
    low = single & ~common & (minor >= max(1, math.ceil(LOW_MAF_FLOOR * haplotypes)))
    n_low = min(round(region.markers * low_share), int(low.sum()))
    n_common = min(region.markers - n_low, int(common.sum()))
    n_low = min(region.markers - n_common, int(low.sum()))
    if n_low + n_common < region.markers:
        return None
    keep = np.sort(
        np.concatenate([
            rng.choice(np.flatnonzero(common), n_common, replace=False),
            rng.choice(np.flatnonzero(low), n_low, replace=False),
        ])
    )  # fmt: skip
    kept = ts.delete_sites(sets.difference(np.arange(ts.num_sites), keep))
    ref = [ts.site(int(s)).ancestral_state for s in keep]
    alt = [ts.site(int(s)).mutations[0].derived_state for s in keep]
    pos = region.start + ts.sites_position[keep].astype(np.int64) + 1
    return _Sites(kept, pos, ref, alt, count[keep] / haplotypes)


def _unlinked_spans(regions: list[Region]) -> list[tuple[int, int]]:
    """Where each region's unlinked markers may go (1-based, inclusive): past as far as it may
    grow, up to the next region's start (or its chromosome's end). None for causal regions."""
    ends = {c.id: int(c.length) for c in _autosomes()}
    spans = []
    for i, region in enumerate(regions):
        following = regions[i + 1] if i + 1 < len(regions) else None
        last = (following.start if following is not None and following.chrom == region.chrom
                else ends[region.chrom])
        first = region.start + _reach(region) + 1
        spans.append((first, last) if region.hosts < 0 and last >= first else (0, -1))
    return spans


def _unlinked_shares(regions: list[Region], spans: list[tuple[int, int]],
                     unlinked: int) -> IntArray:
    """How many unlinked markers each region gives: in proportion to its markers, among the
    regions with room for ten times their share."""
    weights = np.array([r.markers if r.hosts < 0 else 0 for r in regions], dtype=np.float64)
    room = np.array([last - first + 1 for first, last in spans], dtype=np.float64)
    if unlinked == 0:
        return np.zeros(len(regions), dtype=np.int64)
    while True:
        if weights.sum() == 0:
            raise SimulationInputError(f"no room between the regions for {unlinked} unlinked "
                                       f"markers; ask for fewer")
        shares = _apportion(unlinked, weights)
        crowded = room < 10 * shares
        if not crowded.any():
            return shares
        weights[crowded] = 0


def _sources(population_freq: FloatArray, alt_freq: FloatArray, count: int,
             rng: np.random.Generator) -> FloatArray:
    """``count`` unlinked markers' population frequencies: each those of a common marker of the
    region (MAF ≥ ``UNLINKED_MAF``; any polymorphic one if none is), drawn at random."""
    maf = np.minimum(alt_freq, 1 - alt_freq)
    common = np.flatnonzero(maf >= UNLINKED_MAF)
    if common.size == 0:
        common = np.flatnonzero(maf > 0)
    picked: FloatArray = population_freq[rng.choice(common, count, replace=common.size < count)]
    return picked


def _unlinked_table(task: _Task, sites: _Sites, seed: int) -> pl.DataFrame:
    """The region's unlinked markers' chromosome, positions and alleles (at random)."""
    rng = np.random.default_rng([seed, 32, task.index])
    first, last = task.unlinked_span
    pos = np.sort(first + rng.choice(last - first + 1, task.unlinked, replace=False))
    bases = np.array(list("ACGT"))
    ref = rng.integers(0, 4, task.unlinked)
    alt = (ref + rng.integers(1, 4, task.unlinked)) % 4
    return _variant_table(task.region.chrom, dataclasses.replace(
        sites, pos=pos.astype(np.int64), ref=bases[ref].tolist(), alt=bases[alt].tolist()))


def _unlinked_dosages(freq: FloatArray, populations: IntArray,
                      rng: np.random.Generator) -> Iterator[npt.NDArray[np.int8]]:
    """Each unlinked marker's dosages (``freq``: markers × populations): each of a
    participant's two alleles drawn independently at the frequency of the population its
    haplotype comes from (``populations``: participants × 2), to 1/256."""
    # a uniform byte below round(256 f) is an allele at frequency f
    threshold = np.rint(freq * 256).astype(np.int16)
    first, second = populations[:, 0], populations[:, 1]
    n = populations.shape[0]
    for start in range(0, freq.shape[0], UNLINKED_BATCH):
        rows = threshold[start:start + UNLINKED_BATCH]
        draw = np.frombuffer(rng.bytes(2 * rows.shape[0] * n), dtype=np.uint8)
        draw = draw.reshape(2, rows.shape[0], n)
        dosage = (draw[0] < np.take(rows, first, axis=1)).view(np.int8)
        dosage += (draw[1] < np.take(rows, second, axis=1)).view(np.int8)
        yield from dosage


def _derived_counts(ts: tskit.TreeSequence) -> IntArray:
    """Each site's derived allele count, -1 where the site has more than one mutation."""
    site, position = ts.mutations_site, ts.sites_position
    single = (np.bincount(site, minlength=ts.num_sites) == 1)[site]
    node = np.full(ts.num_sites, -1, dtype=np.int64)
    node[site[single]] = ts.mutations_node[single]
    count = np.full(ts.num_sites, -1, dtype=np.int64)
    # plain integers, not Site objects: this loop meets every site, tens of thousands a region
    for tree in ts.trees():
        first, last = np.searchsorted(position, tree.interval)
        for s in range(int(first), int(last)):
            if node[s] >= 0:
                count[s] = tree.num_samples(int(node[s]))
    return count


def _variant_table(chrom: str, sites: _Sites) -> pl.DataFrame:
    pos = pl.Series("pos", sites.pos, dtype=pl.Int64)
    ref = pl.Series("ref", sites.ref, dtype=pl.String)
    alt = pl.Series("alt", sites.alt, dtype=pl.String)
    frame = pl.DataFrame({"chrom": pl.Series([chrom] * pos.len(), dtype=pl.String)})
    return frame.with_columns(pos, ref, alt).select(
        "chrom",
        "pos",
        pl.concat_str([pl.col("chrom"), pl.col("pos"), pl.col("ref"), pl.col("alt")],
                      separator=":").alias("id"),
        "ref",
        "alt",
    )  # fmt: skip


def _write_bim(table: pl.DataFrame, path: Path) -> None:
    """The .bim for the table (allele 1 = ALT, which the .bed counts): it is only known once
    every region is simulated, so it replaces the placeholder bed-reader wrote at the start."""
    table.select(
        "chrom", "id", pl.lit(0).alias("cm"), "pos", "alt", "ref"
    ).write_csv(path, separator="\t", include_header=False)  # fmt: skip


def _with_suffix(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


def _check(people: pl.DataFrame, variants: int, out: str | Path) -> tuple[IntArray, FloatArray]:
    if isinstance(variants, bool) or not isinstance(variants, int | np.integer) or variants < 1:
        raise SimulationInputError(f"variants must be a whole number ≥ 1, not {variants!r}")
    column = next((c for c in (ancestry.ETHNICITY_COLUMN, "p21000") if c in people.columns), None)
    if model.EID not in people.columns or column is None:
        raise SimulationInputError(
            f"people needs columns {model.EID!r} and {ancestry.ETHNICITY_COLUMN!r} (ethnic "
            f"background, field {ancestry.ETHNICITY_FIELD}); it has {people.columns[:10]}"
        )
    if people.height == 0:
        raise SimulationInputError("people is empty: genotypes need at least one participant")
    eids = people[model.EID]
    if eids.null_count() or not eids.dtype.is_integer():
        raise SimulationInputError(f"{model.EID} must be whole numbers with none missing")
    if eids.n_unique() != eids.len():
        raise SimulationInputError(
            f"{model.EID} repeats ({eids.len() - eids.n_unique()} duplicate(s)); each "
            f"participant must appear once"
        )
    ethnicity = people[column]
    if not (ethnicity.dtype.is_integer() or ethnicity.dtype == pl.Null):
        raise SimulationInputError(
            f"{column} must hold integer coding 1001 codes, not {ethnicity.dtype}"
        )
    parent = Path(out).parent
    if not parent.is_dir():
        raise SimulationInputError(f"cannot write to {out}: folder {parent} does not exist")
    eid: IntArray = eids.cast(pl.Int64).to_numpy()
    codes: FloatArray = ethnicity.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return eid, codes


def _check_options(effect_scale: float, missing_rate: float, low_share: float,
                   markers_per_mb: float, workers: int | None) -> None:  # fmt: skip
    if not (math.isfinite(effect_scale) and effect_scale >= 0):
        raise SimulationInputError(f"effect_scale must be ≥ 0, not {effect_scale}")
    if not 0 <= missing_rate < 1:
        raise SimulationInputError(f"missing_rate must be in [0, 1), not {missing_rate}")
    if not 0 <= low_share <= 1:
        raise SimulationInputError(f"low_frequency_share must be in [0, 1], not {low_share}")
    if not (math.isfinite(markers_per_mb) and markers_per_mb > 0):
        raise SimulationInputError(f"markers_per_mb must be > 0, not {markers_per_mb}")
    if workers is not None and workers < 0:
        raise SimulationInputError(f"workers must be ≥ 0, not {workers}")
