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
        [--participants 500000] [--seed 1] [--pcs 0] [--scan-copies 0]

``--scan-copies N``: then the output check's raw-row scan alone, in a process of its own (its
peak is its own), on the released GWAS table repeated N times with its statistics jittered in
their shown digits (another GWAS of N times the variants, to the scanner), against the same
cohort index: its time, peak and findings.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.access import projects
from strongroom.attacks.world import AttackWorld
from strongroom.genomics.formats import open_genotypes
from strongroom.outputs import scanner
from strongroom.outputs import service as output_service
from strongroom.outputs.verdicts import Finding

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
    parser.add_argument("--scan-copies", type=int, default=0)
    parser.add_argument("--scan-only", type=Path, help=argparse.SUPPRESS)  # the child's input
    args = parser.parse_args()
    if args.scan_only:
        scan_copies(args.scan_only, args.scan_copies)
        return
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
        scanned: list[tuple[scanner.RowIndex, bytes, str]] = []
        real_scan = output_service.scan  # type: ignore[attr-defined]

        def keep(index: scanner.RowIndex, data: bytes, name: str) -> list[Finding]:
            if name.startswith("gwas-"):
                scanned.append((index, data, name))
            return real_scan(index, data, name)

        output_service.scan = keep  # type: ignore[attr-defined]  # the check's input, kept
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
        if args.scan_copies and scanned:
            kept = Path(tmp) / "scan.pickle"
            kept.write_bytes(pickle.dumps(scanned[-1], protocol=5))
            subprocess.run([sys.executable, __file__, "--scan-only", str(kept),
                            "--scan-copies", str(args.scan_copies)], check=True)
        world.close()
    for what, seconds in timings.items():
        print(f"{what}: {seconds:.1f} s")
    ours = timings["GWAS in the enclave (request to checked output)"]
    theirs = timings["plink2 --glm on the plain .bed"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{held.samples:,} × {held.variants:,}, {args.pcs} PCs: enclave / plink2 = "
          f"{ours / theirs:.2f}; peak {peak:,.0f} MiB")


def scan_copies(kept: Path, copies: int) -> None:
    """The raw-row scan alone, on the GWAS table repeated ``copies`` times (each copy after
    the first with its statistics moved by about 1% and shown to the same significant digits)."""
    index, data, name = pickle.loads(kept.read_bytes())
    doc = json.loads(data)
    rng = np.random.default_rng(0)
    rows = []
    for copy in range(copies):
        for variant in doc["variants"]:
            row = list(variant)
            for at in (3, 5, 7, 8, 9, 10):  # frequency, β, SE, the interval, t
                if copy and isinstance(row[at], float):
                    moved = row[at] * (1 + rng.normal(0, 0.01))
                    row[at] = float(np.format_float_positional(
                        moved, precision=4, unique=True, fractional=False))
            rows.append(row)
    doc["variants"] = rows
    table = json.dumps(doc).encode()
    before = _high_water()
    started = time.perf_counter()
    found = scanner.scan(index, table, name)
    took = time.perf_counter() - started
    peak = _high_water()
    print(f"raw-row scan of {len(rows):,} rows ({len(table) / 1e6:.1f} MB): {took:.1f} s; "
          f"peak {peak:,.0f} MiB ({before:,.0f} before); "
          + ("; ".join(f.reason for f in found)[:200] or "nothing found"))


def _high_water() -> float:
    """This process's peak resident MiB (VmHWM: getrusage's counts the parent's from before the
    exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


if __name__ == "__main__":
    main()
