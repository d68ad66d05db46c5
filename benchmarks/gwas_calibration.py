"""Is the demo's GWAS of BMI calibrated? λ_GC and the planted loci, at the demo's size.

    .venv/bin/python benchmarks/gwas_calibration.py --participants 20000
    .venv/bin/python benchmarks/gwas_calibration.py --participants 500000   # the demo's size

Synthesises the cohort, simulates its genotypes (the demo's 2,000 markers by default) and plants
the causal loci exactly as `strongroom demo` does, then fits BMI ~ sex + birth year + 10
principal components as the enclave does (`genotype_pcs`, `linear_gwas`), and prints λ_GC with
and without the components, the ten strongest variants beside the planted loci, the time of each
stage, and the machine's load. Issue 54's target: λ_GC within 1.00-1.10 at 500,000 with the
planted loci as the top hits.

It also prints why λ_GC is what it is (``--women`` fits among women only, as the demo does):

- **PC quality**: how much of each participant's true ancestry (the share of their two
  haplotypes from each simulated population, which the simulation knows and the enclave does
  not) the components explain (R² of each share regressed on them).
- **λ_GC by trait and covariates**: BMI as planted; BMI before planting (the same non-genetic
  ethnicity effect, no genetic one: any inflation is stratification); pure noise (λ must be
  1); each with no components, the enclave's components, ethnic background as a covariate, and
  the true ancestry shares (a diagnosis only: the enclave does not know them).
- **LD reach**: λ_GC of planted BMI over the markers more than 5 Mb from every planted locus.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.cohort.synth import synthesise
from strongroom.genomics import ancestry
from strongroom.genomics.formats import open_genotypes
from strongroom.genomics.gwas import genomic_inflation, linear_gwas
from strongroom.genomics.pca import genotype_pcs
from strongroom.genomics.plant import plant
from strongroom.genomics.simulate import FOUNDERS, simulate

WHITE = [1, 1001, 1002, 1003]  # ethnic background (field 21000, coding 1001): White
FAR = 5_000_000  # bp from a planted locus beyond which a marker counts as unlinked to it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--variants", type=int, default=2_000)
    parser.add_argument("--unlinked", type=int, default=0,
                        help="unlinked markers drawn at the populations' frequencies, besides")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--women", action="store_true", help="women only, as the demo's GWAS")
    parser.add_argument("--white", action="store_true",
                        help="participants of White ethnic background only (field 21000 codes "
                             "1, 1001-1003), as UK Biobank GWAS commonly are")
    parser.add_argument("--components", type=int, default=10,
                        help="principal components as covariates (the enclave offers 10)")
    parser.add_argument("--founders", type=int, default=FOUNDERS,
                        help="haplotypes a population's regions are simulated for, at most "
                             "(simulate's founders; a larger figure simulates every haplotype)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="strongroom-calibration-") as tmp:
        start = time.perf_counter()
        cohort = synthesise(args.participants, seed=args.seed)
        timings["synthesise"] = time.perf_counter() - start
        start = time.perf_counter()
        sim = simulate(cohort.participants.select("eid", "p21000_i0"), args.variants,
                       args.seed, Path(tmp) / "genotypes", unlinked=args.unlinked,
                       founders=args.founders)
        timings["simulate"] = time.perf_counter() - start
        people = plant(cohort, sim).participants
        unplanted = cohort.participants["p21001_i0"].cast(pl.Float64).fill_null(np.nan)
        keep = np.ones(people.height, dtype=bool)
        if args.women:
            keep &= people["p31"].to_numpy() == 0
        if args.white:
            keep &= people["p21000_i0"].cast(pl.Int64).is_in(WHITE).fill_null(False).to_numpy()
        rows = np.flatnonzero(keep)
        with open_genotypes(sim.prefix.with_suffix(".bed")) as source:
            # held as int8 (no call is missing): 500,000 × 8,000 as float32 would be 16 GB
            held = [(first, np.asfortranarray(np.nan_to_num(d[rows], nan=-1).astype(np.int8)))
                    for first, d in source.chunks(max(1, 8_000_000 // source.n_samples))]

    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        for first, d in held:
            yield first, np.where(d < 0, np.float32(np.nan), d.astype(np.float32))

    people = people[rows]
    bmi = people["p21001_i0"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    null_bmi = unplanted.to_numpy()[rows]
    noise = np.random.default_rng([args.seed, 99]).standard_normal(rows.size)
    traits = np.column_stack([bmi, null_bmi, noise])
    names = ["bmi", "bmi before planting", "noise"]
    base = np.column_stack([people["p34"].cast(pl.Float64).to_numpy()] + (
        [] if args.women else [people["p31"].cast(pl.Float64).to_numpy()]))
    start = time.perf_counter()
    k = args.components
    pcs = genotype_pcs(chunks, k)
    timings["principal components"] = time.perf_counter() - start
    shares = _shares(sim.ancestry["ancestry"].to_list())[rows]
    print(f"principal components from {pcs.variant_count} markers; R² of each true ancestry "
          f"share on the {k} PCs: " + ", ".join(
              f"{p} {_r2(shares[:, i], pcs.scores):.3f}"
              for i, p in enumerate(ancestry.POPULATIONS) if shares[:, i].std() > 0))
    ethnicity = people["p21000_i0"].cast(pl.Int64).fill_null(-1).to_numpy()
    codes, counts = np.unique(ethnicity, return_counts=True)
    dummies = np.column_stack([(ethnicity == c).astype(float) for c in codes[counts >= 30][1:]])
    varying = shares[:, shares.std(axis=0) > 0][:, 1:]
    results = {}
    fits = [("no PCs", base), (f"{k} PCs", np.column_stack([base, pcs.scores])),
            ("ethnic background", np.column_stack([base, dummies])),
            ("true ancestry shares", np.column_stack([base, varying]))]
    if args.white:  # one population: its few codes are no ancestry, and every share is EUR's
        fits = fits[:2]
    for name, covariates in fits:
        start = time.perf_counter()
        results[name] = linear_gwas(chunks(), traits, covariates, trait_names=names)
        timings[f"GWAS ({name})"] = time.perf_counter() - start
        lam = {t: genomic_inflation(results[name].filter(pl.col("trait") == t)["p"]
                                    .drop_nulls()) for t in names}
        print(f"λ_GC with {name:22s}: " + ", ".join(f"{t} {v:.3f}" for t, v in lam.items()))
        if sim.unlinked.size:
            linked = results[name].filter(~pl.col("variant").is_in(sim.unlinked.tolist())
                                          & (pl.col("trait") == "bmi"))["p"].drop_nulls()
            free = results[name].filter(pl.col("variant").is_in(sim.unlinked.tolist())
                                        & (pl.col("trait") == "bmi"))["p"].drop_nulls()
            print(f"   bmi over the {linked.len()} simulated-region markers "
                  f"{genomic_inflation(linked):.3f}, over the {free.len()} unlinked "
                  f"{genomic_inflation(free):.3f}")
    planted = sim.causal.filter(pl.col("trait") == "bmi")
    where = sim.variants.with_row_index("variant").with_columns(pl.col("variant").cast(pl.Int64))
    loci = planted.join(where.rename({"variant": "index"}), on="index").select("chrom", "pos")
    far = where.join(loci, on="chrom", how="left").group_by("variant").agg(
        ((pl.col("pos") - pl.col("pos_right")).abs().min().fill_null(10 * FAR)).alias("gap"))
    unlinked = far.filter(pl.col("gap") > FAR)["variant"]
    bmi_pcs = results[f"{k} PCs"].filter(pl.col("trait") == "bmi")
    print(f"λ_GC of bmi with {k} PCs over the {unlinked.len()} markers > {FAR / 1e6:.0f} Mb from "
          f"every planted locus: "
          f"{genomic_inflation(bmi_pcs.filter(pl.col('variant').is_in(unlinked.implode()))['p']):.3f}")
    top = (bmi_pcs.join(where, on="variant")
           .join(planted.select("index", "locus").rename({"index": "variant"}), on="variant",
                 how="left")
           .sort("p").head(10))
    print(top.select("id", "beta", "p", "locus"))
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f"; load {os.getloadavg()[0]:.2f} at the end")


def _shares(labels: list[str]) -> np.ndarray:
    """Each participant's share of haplotypes from each population, from "EUR" or "AFR+EUR"."""
    out = np.zeros((len(labels), len(ancestry.POPULATIONS)))
    index = {p: i for i, p in enumerate(ancestry.POPULATIONS)}
    for row, label in enumerate(labels):
        parts = label.split("+")
        for part in parts:
            out[row, index[part]] += 1.0 / len(parts)
    return out


def _r2(y: np.ndarray, x: np.ndarray) -> float:
    design = np.column_stack([np.ones(x.shape[0]), x])
    fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(1 - np.var(y - fitted) / np.var(y))


if __name__ == "__main__":
    main()
