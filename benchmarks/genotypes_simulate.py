"""Simulated genotypes for a synthetic cohort, timed: one command, each step in a fresh process
so that its peak memory is its own.

    python benchmarks/genotypes_simulate.py --participants 500000 --variants 20000
    python benchmarks/genotypes_simulate.py --participants 20000 --variants 20000 --gwas

Synthesises the cohort once (cached in --workdir), then simulates the genotypes (PLINK 1 files
in --workdir) and plants the genetic effects. Prints one JSON line: wall seconds of the
simulation and of planting, peak RSS of the main process and of the largest worker, the file
sizes. With --gwas, runs plink2 --glm on the planted BMI, SBP (mean of the two readings) and
diabetes, adjusted for sex and age, and adds each causal variant's p-value.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

COLUMNS = ["eid", "p31", "p21003_i0", "p21000_i0", "p21001_i0", "p4080_i0_a0", "p4080_i0_a1",
           "p2443_i0"]  # fmt: skip
PLINK2 = "/usr/bin/plink2"


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def cohort(n: int, path: Path) -> None:
    from strongroom.cohort.synth import synthesise

    synthesise(n, seed=1).participants.select(COLUMNS).write_parquet(path)


def genotypes(people_path: Path, variants: int, prefix: Path, workers: int | None,
              gwas: bool) -> dict[str, object]:  # fmt: skip
    from strongroom.cohort.model import Cohort
    from strongroom.genomics.plant import plant
    from strongroom.genomics.simulate import simulate

    participants = pl.read_parquet(people_path)
    start = time.perf_counter()
    sim = simulate(participants.select("eid", "p21000_i0"), variants, 1, prefix, workers=workers)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    planted = plant(Cohort(participants, {}), sim).participants
    plant_seconds = time.perf_counter() - start
    result: dict[str, object] = {
        "participants": participants.height, "variants": variants, "seconds": round(seconds, 1),
        "plant_seconds": round(plant_seconds, 2), "peak_mib": round(peak_mib()),
        "worker_peak_mib": round(peak_mib(resource.RUSAGE_CHILDREN)),
        "bed_mib": round(sim.bed.stat().st_size / 2**20),
        "ancestry": dict(sim.ancestry["ancestry"].value_counts().iter_rows()),
    }  # fmt: skip
    if gwas:
        result["gwas"] = _gwas(sim.prefix, planted, sim.causal)
    return result


def _gwas(prefix: Path, planted: pl.DataFrame, causal: pl.DataFrame) -> list[dict[str, object]]:
    """plink2 --glm on the planted traits; each causal variant's estimate and p-value."""
    work = Path(tempfile.mkdtemp(prefix="gwas-", dir=prefix.parent))
    pheno = planted.select(
        pl.col("eid").alias("#FID"), pl.col("eid").alias("IID"),
        pl.col("p21001_i0").alias("bmi"),
        pl.mean_horizontal("p4080_i0_a0", "p4080_i0_a1").alias("sbp"),
        # plink2's case/control coding: 1 control, 2 case
        pl.when(pl.col("p2443_i0").is_in([0, 1])).then(pl.col("p2443_i0") + 1).alias("diabetes"),
    )  # fmt: skip
    covar = planted.select(pl.col("eid").alias("#FID"), pl.col("eid").alias("IID"),
                           pl.col("p31").alias("sex"), pl.col("p21003_i0").alias("age"))
    pheno.write_csv(work / "pheno.tsv", separator="\t", null_value="NA")
    covar.write_csv(work / "covar.tsv", separator="\t", null_value="NA")
    subprocess.run(
        [PLINK2, "--bfile", str(prefix), "--pheno", str(work / "pheno.tsv"),
         "--covar", str(work / "covar.tsv"), "--glm", "omit-ref", "hide-covar", "firth-fallback",
         "--threads", "2", "--out", str(work / "out")],
        check=True, capture_output=True,
    )  # fmt: skip
    rows: list[dict[str, object]] = []
    for trait in ("bmi", "sbp", "diabetes"):
        path = next(work.glob(f"out.{trait}.glm.*"))
        table = pl.read_csv(path, separator="\t", null_values="NA", infer_schema_length=0)
        hits = table.join(causal.filter(pl.col("trait") == trait), left_on="ID", right_on="id")
        estimate = "OR" if "OR" in table.columns else "BETA"
        for row in hits.iter_rows(named=True):
            rows.append({"trait": trait, "locus": row["locus"], "effect": round(row["effect"], 3),
                         "alt_freq": round(row["alt_freq"], 3),
                         estimate.lower(): float(row[estimate]), "p": float(row["P"])})  # fmt: skip
        rows.append({"trait": trait, "non_causal_min_p": float(
            table.join(causal, left_on="ID", right_on="id", how="anti")["P"].cast(pl.Float64).min()
        )})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "genosim")
    parser.add_argument("--gwas", action="store_true", help="run plink2 --glm on planted traits")
    parser.add_argument("--step", choices=["cohort", "genotypes"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    people = args.workdir / f"cohort-{args.participants}.parquet"
    prefix = args.workdir / f"genotypes-{args.participants}x{args.variants}"
    if args.step == "cohort":
        cohort(args.participants, people)
    elif args.step == "genotypes":
        print(json.dumps(genotypes(people, args.variants, prefix, args.workers, args.gwas)))
    else:
        if not people.exists():
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--step", "cohort"],
                           check=True)  # fmt: skip
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--step", "genotypes"],
                       check=True)  # fmt: skip


if __name__ == "__main__":
    main()
