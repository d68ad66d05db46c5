"""A GWAS as a researcher asks for it, end to end inside the enclave, against plink2 on the
custodian's own files, in the same run.

Builds a platform over the synthetic cohort the genotype simulation was made for (same size and
seed, so the eids match), seals the simulation's PLINK 1 files into the store, and has a
researcher with a genotype grant define their traits and run a GWAS of BMI on ten covariates
through `Outputs.analyse`: the request, the definition, the genotypes decrypted chunk by chunk,
the fit, the genetics rules, the check, the recorded output. Then plink2 --glm fits the same
model on the plain .bed (the custodian's copy, which no researcher sees), with the traits and
covariates written custodian-side. Prints each step's wall time and the ratio.

    python benchmarks/gwas_enclave.py [--bed /tmp/genosim/genotypes-500000x20000.bed]
        [--participants 500000] [--seed 1] [--pcs 0]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import polars as pl

from strongroom.access import projects
from strongroom.attacks.world import AttackWorld
from strongroom.genomics.formats import open_genotypes

PLINK2 = "/usr/bin/plink2"
# ten covariates, as the target has: sex, birth year, two blood pressure readings,
# smoking (never / former / current as two indicators) and four of their products
COVARIATES = {
    "sex": "p31", "by": "p34 - 1950", "s0": "p4080_i0_a0 - 140", "s1": "p4080_i0_a1 - 140",
    "former": "CASE WHEN p20116_i0 = 1 THEN 1 ELSE 0 END",
    "current": "CASE WHEN p20116_i0 = 2 THEN 1 ELSE 0 END",
    "by2": "(p34 - 1950) * (p34 - 1950)", "s0sex": "(p4080_i0_a0 - 140) * p31",
    "bysex": "(p34 - 1950) * p31", "s1sq": "(p4080_i0_a1 - 140) * (p4080_i0_a1 - 140)",
}
SQL = ("SELECT pid, p21001_i0 AS bmi, " + ", ".join(f"{v} AS {k}" for k, v in COVARIATES.items())
       + " FROM participants WHERE p21001_i0 IS NOT NULL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bed", type=Path,
                        default=Path("/tmp/genosim/genotypes-500000x20000.bed"))
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pcs", type=int, default=0)
    args = parser.parse_args()
    if not args.bed.is_file():
        raise SystemExit(f"{args.bed} is missing: `python benchmarks/genotypes_simulate.py "
                         f"--participants {args.participants} --variants 20000` writes it")
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="strongroom-gwas-enclave-") as tmp:
        started = time.perf_counter()
        world = AttackWorld.build(Path(tmp), cohort=args.participants, seed=args.seed)
        timings["platform with the cohort"] = time.perf_counter() - started
        platform = world.platform
        started = time.perf_counter()
        with open_genotypes(args.bed) as source:
            held = platform.genotypes.ingest(source)
        timings["seal the genotypes"] = time.perf_counter() - started
        who, project_id = world.researcher()
        projects.set_genotypes(platform.access, world.staff("access-committee"), project_id,
                               True)
        platform.outputs.define(who, project_id, "traits", SQL)
        request = {"kind": "gwas", "definition": "traits", "traits": ["bmi"],
                   "covariates": list(COVARIATES), "principal_components": args.pcs}
        started = time.perf_counter()
        view = platform.outputs.analyse(who, project_id, request)
        timings["GWAS in the enclave (request to checked output)"] = (
            time.perf_counter() - started)
        print(f"verdict: {view.report.verdict.value}; "
              + "; ".join(f.reason for f in view.report.findings)[:300])
        # plink2 on the custodian's plain files, the same trait and covariates (made by the
        # same SQL over the custodian's cohort, so they are the researcher's exactly)
        con = platform.store.connect(["participants"])
        people = con.sql(SQL.replace("SELECT pid,", "SELECT eid,")).pl()
        pheno = Path(tmp) / "bmi.tsv"
        covar = Path(tmp) / "covar.tsv"
        ids = [pl.col("eid").alias("#FID"), pl.col("eid").alias("IID")]
        people.select(*ids, "bmi").write_csv(pheno, separator="\t")
        people.select(*ids, *COVARIATES).write_csv(covar, separator="\t", null_value="NA")
        started = time.perf_counter()
        command = [PLINK2, "--bfile", str(args.bed.with_suffix("")), "--pheno", str(pheno),
                   "--covar", str(covar), "--glm", "hide-covar", "omit-ref",
                   "--covar-variance-standardize", "--threads", "2",
                   "--out", str(Path(tmp) / "plink2")]
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"plink2 failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")
        timings["plink2 --glm on the plain .bed"] = time.perf_counter() - started
        world.close()
    for what, seconds in timings.items():
        print(f"{what}: {seconds:.1f} s")
    ours = timings["GWAS in the enclave (request to checked output)"]
    theirs = timings["plink2 --glm on the plain .bed"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{held.samples:,} × {held.variants:,}, {args.pcs} PCs: enclave / plink2 = "
          f"{ours / theirs:.2f}; peak {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
