"""Is the demo's GWAS of BMI calibrated? λ_GC and the planted loci, at the demo's size.

    .venv/bin/python benchmarks/gwas_calibration.py --participants 20000
    .venv/bin/python benchmarks/gwas_calibration.py --participants 500000   # the demo's size

Synthesises the cohort, simulates its genotypes (the demo's 2,000 markers by default) and plants
the causal loci exactly as `strongroom demo` does, then fits BMI ~ sex + birth year + 10
principal components as the enclave does (`genotype_pcs`, `linear_gwas`), and prints λ_GC with
and without the components, the ten strongest variants beside the planted loci, the time of each
stage, and the machine's load. Issue 54's target: λ_GC within 1.00-1.10 at 500,000 with the
planted loci as the top hits.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.cohort.synth import synthesise
from strongroom.genomics.formats import open_genotypes
from strongroom.genomics.gwas import genomic_inflation, linear_gwas
from strongroom.genomics.pca import genotype_pcs
from strongroom.genomics.plant import plant
from strongroom.genomics.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--variants", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="strongroom-calibration-") as tmp:
        start = time.perf_counter()
        cohort = synthesise(args.participants, seed=args.seed)
        timings["synthesise"] = time.perf_counter() - start
        start = time.perf_counter()
        sim = simulate(cohort.participants.select("eid", "p21000_i0"), args.variants,
                       args.seed, Path(tmp) / "genotypes")
        timings["simulate"] = time.perf_counter() - start
        people = plant(cohort, sim).participants
        with open_genotypes(sim.prefix.with_suffix(".bed")) as source:
            chunks = list(source.chunks(max(1, 8_000_000 // source.n_samples)))
    bmi = people["p21001_i0"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    base = np.column_stack([people["p31"].cast(pl.Float64).to_numpy(),
                            people["p34"].cast(pl.Float64).to_numpy()])
    start = time.perf_counter()
    pcs = genotype_pcs(lambda: iter(chunks), 10)
    timings["principal components"] = time.perf_counter() - start
    twenty = genotype_pcs(lambda: iter(chunks), 20).scores
    ethnicity = people["p21000_i0"].cast(pl.Int64).fill_null(-1).to_numpy()
    codes, counts = np.unique(ethnicity, return_counts=True)
    dummies = np.column_stack([(ethnicity == c).astype(float) for c in codes[counts >= 30][1:]])
    results = {}
    for name, covariates in (("sex, birth year", base),
                             ("sex, birth year, 20 PCs", np.column_stack([base, twenty])),
                             ("sex, birth year, ethnic background",
                              np.column_stack([base, dummies])),
                             ("sex, birth year, 10 PCs", np.column_stack([base, pcs.scores]))):
        start = time.perf_counter()
        results[name] = linear_gwas(iter(chunks), bmi, covariates, trait_names=["bmi"])
        timings[f"GWAS ({name})"] = time.perf_counter() - start
        print(f"λ_GC with {name}: {genomic_inflation(results[name]['p'].drop_nulls()):.3f}")
    print(f"principal components from {pcs.variant_count} LD-pruned markers")
    planted = sim.causal.filter(pl.col("trait") == "bmi").select("index", "locus")
    top = (results["sex, birth year, 10 PCs"].join(sim.variants.with_row_index("variant")
                                                   .with_columns(pl.col("variant").cast(pl.Int64)),
                                                   on="variant")
           .join(planted.rename({"index": "variant"}), on="variant", how="left")
           .sort("p").head(10))
    print(top.select("id", "beta", "p", "locus"))
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f"; load {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
