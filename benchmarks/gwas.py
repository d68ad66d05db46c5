"""The GWAS engine against plink2 --glm on the same PLINK 1 files, in the same run.

    python benchmarks/gwas.py --participants 500000 --variants 20000 --traits 1
    python benchmarks/gwas.py --participants 100000 --variants 2000 --traits 10

Writes (or reuses, under --workdir) a .bed/.bim/.fam with bed-reader's streaming writer
(random genotypes, minor allele frequency log-uniform on [0.001, 0.5]; --missing adds missing
calls), 10 covariates and the traits as plink2 --covar/--pheno files. Then runs, --repeat
times in turn: plink2 --glm (linear, --threads 2, one run for all traits) and ours in a fresh
process (bed-reader reading --chunk variants at a time with 2 threads, linear_gwas, results
written as Parquet). With several traits it also times one plink2 run per trait
(--separate-plink2). Prints wall seconds, sample-variants per second for both, their ratio,
both peak RSS and how far our beta and SE are from plink2's printed ones.

--spark adds the same GWAS on a loopback Spark cluster (a standalone master and two workers
of one core each, the enclave's Spark engine): the chunks packed as the sealed store holds
them and published as encrypted Parquet (timed apart), then fitted on the executors; its
statistics are compared with ours (to 1e-6) and with plink2's, and its throughput per
executor core is the figure a cluster's size is planned from (docs/how-to/run-on-spark.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

COVARIATES = 10
PLINK2 = "/usr/bin/plink2"


def _dataset(args: argparse.Namespace) -> Path:
    """The genotypes and covariates (written once per size, seed and missingness)."""
    from bed_reader import create_bed

    n, m = args.participants, args.variants
    where = Path(args.workdir) / f"n{n}_m{m}_miss{args.missing}_s{args.seed}"
    if not (where / "complete").exists():
        where.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        ids = [f"p{i}" for i in range(n)]
        maf = np.exp(rng.uniform(np.log(0.001), np.log(0.5), m))
        alt = np.where(rng.random(m) < 0.5, maf, 1.0 - maf)
        chrom = np.sort(rng.integers(1, 23, m)).astype(str)
        props = {"fid": ids, "iid": ids, "chromosome": chrom,
                 "sid": [f"rs{j}" for j in range(m)],
                 "bp_position": np.arange(m, dtype=np.int64) * 1000 + 1,
                 "allele_1": ["A"] * m, "allele_2": ["G"] * m}
        with create_bed(where / "genotypes.bed", iid_count=n, sid_count=m,
                        properties=props) as bed:
            for j in range(m):
                g = rng.binomial(2, alt[j], n).astype(np.int8)
                if args.missing and rng.random() < args.missing:
                    g[rng.random(n) < 0.005] = -127  # bed-reader's missing call
                bed.write(g)
        covars = np.column_stack([rng.uniform(40, 70, n), rng.integers(0, 2, n),
                                  rng.normal(size=(n, COVARIATES - 2))])
        _write_tsv(where / "covar.tsv", ids, covars, [f"c{i}" for i in range(COVARIATES)])
        (where / "complete").write_text(f"{time.perf_counter() - started:.0f} s to write\n")
    if not (where / f"pheno{args.traits}.tsv").exists():
        _phenotypes(where, args.traits, args.seed)
    return where


def _write_tsv(path: Path, ids: list[str], values: np.ndarray, names: list[str]) -> None:
    pl.DataFrame({"#FID": ids, "IID": ids} | {c: np.round(values[:, i], 6)
                                              for i, c in enumerate(names)}
                 ).write_csv(path, separator="\t")


def _phenotypes(where: Path, traits: int, seed: int) -> None:
    """Traits with ten causal variants each, and age, over standard normal noise."""
    from bed_reader import open_bed

    rng = np.random.default_rng([seed, traits])
    with open_bed(where / "genotypes.bed") as bed:
        causal = np.sort(rng.choice(bed.sid_count, 10, replace=False))
        g = np.nan_to_num(bed.read(index=np.s_[:, causal], dtype="float32"))
        ids = [str(i) for i in bed.iid]
    age = pl.read_csv(where / "covar.tsv", separator="\t")["c0"].to_numpy()
    values = (g @ rng.normal(0, 0.05, (10, traits)) + 0.02 * age[:, None]
              + rng.normal(size=(len(ids), traits)))
    _write_tsv(where / f"pheno{traits}.tsv", ids, values, [f"y{t + 1}" for t in range(traits)])


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"{cmd[0]} failed:\n{out[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, out


def _plink2(where: Path, traits: int, out: str, pheno: list[str] | None = None
            ) -> tuple[float, float]:
    cmd = [PLINK2, "--bfile", str(where / "genotypes"), "--pheno",
           str(where / f"pheno{traits}.tsv"),
           "--covar", str(where / "covar.tsv"), "--glm", "omit-ref", "hide-covar",
           "cols=+a1count,+beta", "--threads", "2", "--out", str(where / out)]
    if pheno:
        cmd += ["--pheno-name", *pheno]
    seconds, peak, _ = _timed(cmd)
    return seconds, peak


def ours(where: Path, traits: int, chunk: int, threads: int) -> None:
    """The child process: stream, fit, write; print seconds and peak RSS as JSON."""
    from bed_reader import open_bed

    from strongroom.genomics.gwas import linear_gwas

    started = time.perf_counter()
    bed = open_bed(where / "genotypes.bed", num_threads=2)
    order = pl.DataFrame({"iid": bed.iid.astype(str)})
    covar = order.join(pl.read_csv(where / "covar.tsv", separator="\t"), left_on="iid",
                       right_on="IID", how="left", maintain_order="left")
    pheno = order.join(pl.read_csv(where / f"pheno{traits}.tsv", separator="\t"), left_on="iid",
                       right_on="IID", how="left", maintain_order="left")
    names = [f"y{t + 1}" for t in range(traits)]
    with bed:
        m = bed.sid_count
        chunks = ((s, bed.read(index=np.s_[:, s:s + chunk], dtype="float32"))
                  for s in range(0, m, chunk))
        results = linear_gwas(chunks, pheno.select(names).to_numpy(),
                              covar.select(pl.col(r"^c\d+$")).to_numpy(), trait_names=names,
                              threads=threads)
    results.write_parquet(where / f"ours{traits}.parquet")
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def on_spark(where: Path, traits: int, chunk: int) -> None:
    """The child process for --spark: publish the packed chunks, fit them on the cluster,
    write the results; print the seconds of each step as JSON."""
    import secrets
    import tempfile

    from bed_reader import open_bed

    from strongroom.enclave.spark.cluster import LocalCluster
    from strongroom.enclave.spark.engine import SparkEngine
    from strongroom.enclave.spark.genotypes import SparkChunks
    from strongroom.genomics import encoding
    from strongroom.genomics.gwas import linear_gwas

    bed = open_bed(where / "genotypes.bed", num_threads=2)
    order = pl.DataFrame({"iid": bed.iid.astype(str)})
    covar = order.join(pl.read_csv(where / "covar.tsv", separator="\t"), left_on="iid",
                       right_on="IID", how="left", maintain_order="left")
    pheno = order.join(pl.read_csv(where / f"pheno{traits}.tsv", separator="\t"),
                       left_on="iid", right_on="IID", how="left", maintain_order="left")
    names = [f"y{t + 1}" for t in range(traits)]
    n, m = bed.iid_count, bed.sid_count
    with tempfile.TemporaryDirectory(prefix="strongroom-gwas-spark-") as scratch, \
            LocalCluster(Path(scratch), workers=2, cores=1, memory="4g") as cluster:
        engine = SparkEngine(cluster.settings(executor_memory="3g"), secrets.token_bytes(32))
        try:
            started = time.perf_counter()
            engine.spark  # noqa: B018 (the driver and the key service)
            startup = time.perf_counter() - started
            packing = [0.0]

            def packed() -> Iterator[tuple[int, bytes]]:
                """The chunks as the sealed store holds them (packing is ingest's work, so
                it is timed apart from the publication)."""
                for s in range(0, m, chunk):
                    began = time.perf_counter()
                    data = encoding.encode(bed.read(index=np.s_[:, s:s + chunk],
                                                    dtype="float32"))
                    packing[0] += time.perf_counter() - began
                    yield s, data

            started = time.perf_counter()
            with bed:
                path = engine.genotype_cluster().publish("bench", packed())
            published = time.perf_counter() - started - packing[0]
            started = time.perf_counter()
            results = linear_gwas(SparkChunks(engine, path, np.arange(n, dtype=np.intp),
                                              np.arange(m, dtype=np.int64)),
                                  pheno.select(names).to_numpy(),
                                  covar.select(pl.col(r"^c\d+$")).to_numpy(), trait_names=names)
            fitted = time.perf_counter() - started
        finally:
            engine.close()
    results.write_parquet(where / f"spark{traits}.parquet")
    print(json.dumps({"startup_seconds": startup, "pack_seconds": packing[0],
                      "publish_seconds": published, "fit_seconds": fitted}))


def _spark_agreement(where: Path, traits: int) -> float:
    mine = pl.read_parquet(where / f"ours{traits}.parquet")
    theirs = pl.read_parquet(where / f"spark{traits}.parquet")
    worst = 0.0
    for col in ("beta", "se", "p"):
        a, b = mine[col].fill_null(np.nan).to_numpy(), theirs[col].fill_null(np.nan).to_numpy()
        ok = np.isfinite(a) & (a != 0)
        worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]) / np.abs(a[ok]))))
    return worst


def _agreement(where: Path, out: str, traits: int) -> dict[str, float]:
    mine = pl.read_parquet(where / f"ours{traits}.parquet")
    worst = {"beta": 0.0, "se": 0.0}
    for t in range(1, traits + 1):
        path = where / (f"{out}.y{t}.glm.linear")
        theirs = pl.read_csv(path, separator="\t", null_values="NA", infer_schema_length=None)
        rows = mine.filter(pl.col("trait") == f"y{t}")
        for ours_col, col in (("beta", "BETA"), ("se", "SE")):
            a = theirs[col].fill_null(np.nan).to_numpy().astype(float)
            b = rows[ours_col].fill_null(np.nan).to_numpy()
            ok = np.isfinite(a) & (a != 0)
            worst[ours_col] = max(worst[ours_col],
                                  float(np.max(np.abs(a[ok] - b[ok]) / np.abs(a[ok]))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--traits", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/strongroom-gwas-bench")
    parser.add_argument("--chunk", type=int, default=0,
                        help="variants per read (default: about 256 MiB of float32)")
    parser.add_argument("--missing", type=float, default=0.0,
                        help="fraction of variants with 0.5%% of calls missing")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--separate-plink2", action="store_true",
                        help="also time one plink2 run per trait")
    parser.add_argument("--threads", type=int, default=2,
                        help="ours: threads sharing each chunk, BLAS single-threaded in each")
    parser.add_argument("--haswell-blas", action="store_true",
                        help="keep this workplace's OPENBLAS_CORETYPE=Haswell for ours")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spark", action="store_true",
                        help="also run it on a loopback Spark cluster (two workers)")
    parser.add_argument("--ours", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--on-spark", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    chunk = args.chunk or max(8, (256 << 20) // (4 * args.participants))
    if args.ours:
        ours(Path(args.ours), args.traits, chunk, args.threads)
        return
    if args.on_spark:
        on_spark(Path(args.on_spark), args.traits, chunk)
        return
    where = _dataset(args)
    print(f"data: {where} ({(where / 'complete').read_text().strip()}), chunk {chunk} variants")
    cells = args.participants * args.variants
    # Two threads in all for both: plink2 --threads 2; ours two threads over each chunk's
    # variants, each with single-threaded BLAS (or one thread with 2-thread BLAS).
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(max(1, 2 // args.threads)))
    if not args.haswell_blas:  # this workplace pins an old kernel; a TRE machine would not
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    rows = []
    for _ in range(args.repeat):
        p_sec, p_mib = _plink2(where, args.traits, f"plink2_t{args.traits}")
        o_sec, _, out = _timed([sys.executable, __file__, "--ours", str(where),
                                "--traits", str(args.traits), "--chunk", str(chunk),
                                "--threads", str(args.threads)], env=env)
        inner = json.loads(out.strip().splitlines()[-1])
        rows.append((p_sec, p_mib, o_sec, inner["peak_mib"]))
        print(f"plink2 {p_sec:7.1f} s {cells / p_sec:12.3e} sample-variants/s "
              f"peak {p_mib:6.0f} MiB | ours {o_sec:7.1f} s {cells / o_sec:12.3e} "
              f"sample-variants/s peak {inner['peak_mib']:6.0f} MiB | plink2/ours time "
              f"{p_sec / o_sec:5.2f}", flush=True)
    p_sec, p_mib, o_sec, o_mib = (float(np.median([r[i] for r in rows])) for i in range(4))
    gap = _agreement(where, f"plink2_t{args.traits}", args.traits)
    summary = {"participants": args.participants, "variants": args.variants,
               "traits": args.traits, "missing": args.missing, "repeats": args.repeat,
               "threads": args.threads, "blas": env.get("OPENBLAS_CORETYPE", "native"),
               "plink2_seconds": round(p_sec, 2), "ours_seconds": round(o_sec, 2),
               "plink2_throughput": float(f"{cells / p_sec:.4g}"),
               "ours_throughput": float(f"{cells / o_sec:.4g}"),
               "speed_ratio_ours_over_plink2": round(p_sec / o_sec, 3),
               "plink2_peak_mib": round(p_mib), "ours_peak_mib": round(o_mib),
               "max_rel_diff_beta": float(f"{gap['beta']:.3g}"),
               "max_rel_diff_se": float(f"{gap['se']:.3g}")}
    if args.spark:
        s_sec, _, out = _timed([sys.executable, __file__, "--on-spark", str(where),
                                    "--traits", str(args.traits), "--chunk", str(chunk)],
                                   env=dict(env, OPENBLAS_NUM_THREADS="1"))
        inner = json.loads(out.strip().splitlines()[-1])
        fit = inner["fit_seconds"]
        summary |= {"spark_seconds_all": round(s_sec, 2),
                    "spark_startup_seconds": round(inner["startup_seconds"], 2),
                    "spark_pack_seconds": round(inner.get("pack_seconds", 0.0), 2),
                    "spark_publish_seconds": round(inner["publish_seconds"], 2),
                    "spark_fit_seconds": round(fit, 2),
                    "spark_throughput_per_core": float(f"{cells / fit / 2:.4g}"),
                    "speed_ratio_spark_fit_over_ours": round(o_sec / fit, 3),
                    "speed_ratio_spark_fit_over_plink2": round(p_sec / fit, 3),
                    "max_rel_diff_spark_vs_ours": float(
                        f"{_spark_agreement(where, args.traits):.3g}")}
        print(f"spark: start {inner['startup_seconds']:.1f} s, publish "
              f"{inner['publish_seconds']:.1f} s, fit {fit:.1f} s "
              f"({cells / fit / 2:.3e} sample-variants/s per executor core)", flush=True)
    if args.separate_plink2 and args.traits > 1:
        started = time.perf_counter()
        for t in range(1, args.traits + 1):
            _plink2(where, args.traits, f"plink2_single_y{t}", [f"y{t}"])
        separate = time.perf_counter() - started
        summary |= {"plink2_separate_runs_seconds": round(separate, 2),
                    "speed_ratio_ours_over_plink2_separate": round(separate / o_sec, 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
