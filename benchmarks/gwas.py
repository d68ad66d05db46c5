"""The GWAS engine against plink2 --glm on the same PLINK 1 files, in the same run: CPU time and
peak memory of each, side by side, alternating.

    python benchmarks/gwas.py --participants 50000 --variants 20000 --missing 1 --repeat 3
    python benchmarks/gwas.py --participants 500000 --variants 20000 --model linear
    python benchmarks/gwas.py --participants 100000 --variants 2000 --traits 10 --model linear

Writes (or reuses, under --workdir) a .bed/.bim/.fam with bed-reader's streaming writer
(random genotypes, minor allele frequency log-uniform on [0.001, 0.5]; --missing is the
fraction of variants with 0.5% of their calls missing), 10 covariates, the quantitative traits
and, from the same values, case/control traits (the top 30% cases, plink's 1/2 coding) as
plink2 --covar/--pheno files. Then, --repeat rounds, for each --model (linear, logistic or
both), plink2 --glm (--threads 2, one run for all traits; logistic with its default
firth-fallback, as ours) and ours in a fresh process (the .bed read --chunk variants at a
time and decoded by table lookup, as the enclave decodes its sealed store; linear_gwas or
logistic_gwas with firth_fallback=True, two threads, results written as Parquet),
alternating which goes first. Each child's CPU time (user + system) and peak RSS are its own,
from os.wait4. Prints, with each figure, the load average and CPU model, and the ratios
ours/plink2 in CPU and memory; then the medians as JSON and how far our beta and SE are from
plink2's printed ones (linear: relative; logistic: in units of plink2's SE, ordinary and Firth
fits apart, and the variants where one used Firth and the other not). With several traits it
also times one plink2 run per trait (--separate-plink2).

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
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    if not all((where / f"{stem}{args.traits}.tsv").exists() for stem in ("pheno", "cc")):
        _phenotypes(where, args.traits, args.seed)
    return where


def _write_tsv(path: Path, ids: list[str], values: np.ndarray, names: list[str]) -> None:
    pl.DataFrame({"#FID": ids, "IID": ids} | {c: np.round(values[:, i], 6)
                                              for i, c in enumerate(names)}
                 ).write_csv(path, separator="\t")


def _phenotypes(where: Path, traits: int, seed: int) -> None:
    """Traits with ten causal variants each, and age, over standard normal noise; and from the
    same values case/control traits, the top 30% cases (plink's 1 control, 2 case)."""
    from bed_reader import open_bed

    rng = np.random.default_rng([seed, traits])
    with open_bed(where / "genotypes.bed") as bed:
        causal = np.sort(rng.choice(bed.sid_count, 10, replace=False))
        g = np.nan_to_num(bed.read(index=np.s_[:, causal], dtype="float32"))
        ids = [str(i) for i in bed.iid]
    age = pl.read_csv(where / "covar.tsv", separator="\t")["c0"].to_numpy()
    values = (g @ rng.normal(0, 0.05, (10, traits)) + 0.02 * age[:, None]
              + rng.normal(size=(len(ids), traits)))
    names = [f"y{t + 1}" for t in range(traits)]
    cases = values > np.quantile(values, 0.7, axis=0)  # plink's coding: 1 control, 2 case
    pl.DataFrame({"#FID": ids, "IID": ids} | {c: cases[:, i].astype(np.int8) + 1
                                              for i, c in enumerate(names)}
                 ).write_csv(where / f"cc{traits}.tsv", separator="\t")
    _write_tsv(where / f"pheno{traits}.tsv", ids, values, names)


CPU_MODEL = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child (and its threads)
    user: float
    system: float
    peak_mib: float  # the child's peak RSS
    load: float  # 1-minute load average when it started


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Wall and CPU seconds, peak RSS and stdout of a child process (its own rusage)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"{cmd[0]} failed:\n{out[-3000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_stime,
               usage.ru_maxrss / 1024, load), out


def _plink2_cmd(where: Path, model: str, traits: int, out: str,
                pheno: list[str] | None = None) -> list[str]:
    cols = "cols=+a1count,+beta" + (",+firth" if model == "logistic" else "")
    cmd = [PLINK2, "--bfile", str(where / "genotypes"),
           "--pheno", str(where / f"{'cc' if model == 'logistic' else 'pheno'}{traits}.tsv"),
           "--covar", str(where / "covar.tsv"), "--glm", "omit-ref", "hide-covar",
           *(["firth-fallback"] if model == "logistic" else []), cols,
           "--threads", "2", "--out", str(where / out)]
    cmd += ["--pheno-name", *(pheno or [f"y{t + 1}" for t in range(traits)])]
    return cmd


# a .bed byte -> its four samples' counts of allele 1 (plink2's A1 with omit-ref: the ALT)
_BED_CODES = np.array([2.0, np.nan, 1.0, 0.0], dtype=np.float32)  # 00, 01 missing, 10, 11
_BED_TABLE = _BED_CODES[np.array([[(b >> (2 * k)) & 3 for k in range(4)] for b in range(256)])]


def bed_chunks(path: Path, n: int, m: int, chunk: int, seconds: list[float]
               ) -> Iterator[tuple[int, np.ndarray]]:
    """A variant-major .bed's dosages, ``chunk`` variants at a time, as float32 samples ×
    variants (NaN missing), decoded by table lookup as the enclave decodes its sealed store
    (genomics/encoding.py); each chunk is fitted before the next is read, so one buffer
    serves them all. Reading time is added to ``seconds[0]``."""
    from strongroom.genomics import encoding

    per = -(-n // 4)
    raw = np.empty(chunk * per, dtype=np.uint8)
    buffer = np.empty((chunk, per, 4), dtype=np.float32)
    with path.open("rb") as f:
        if f.read(3) != b"\x6c\x1b\x01":
            sys.exit(f"{path} is not a variant-major PLINK 1 .bed")
        for s in range(0, m, chunk):
            t0 = time.perf_counter()
            c = min(chunk, m - s)
            if f.readinto(memoryview(raw)[:c * per]) != c * per:
                sys.exit(f"{path} ends early")
            out = buffer[:c]
            encoding.look_up(_BED_TABLE, raw[:c * per].reshape(c, per), out)
            seconds[0] += time.perf_counter() - t0
            yield s, out.reshape(c, per * 4)[:, :n].T


def ours(where: Path, model: str, traits: int, chunk: int, threads: int) -> None:
    """The child process: stream, fit, write; print its phases' seconds as JSON."""
    began = time.perf_counter()
    if model == "logistic":
        from strongroom.genomics.logistic import logistic_gwas as gwas
    else:
        from strongroom.genomics.gwas import linear_gwas as gwas
    imported = time.perf_counter()
    iids = [line.split()[1] for line in (where / "genotypes.fam").read_text().splitlines()]
    m = sum(1 for _ in (where / "genotypes.bim").open())
    order = pl.DataFrame({"iid": iids})
    covar = order.join(pl.read_csv(where / "covar.tsv", separator="\t"), left_on="iid",
                       right_on="IID", how="left", maintain_order="left")
    stem = "cc" if model == "logistic" else "pheno"
    pheno = order.join(pl.read_csv(where / f"{stem}{traits}.tsv", separator="\t"),
                       left_on="iid", right_on="IID", how="left", maintain_order="left")
    names = [f"y{t + 1}" for t in range(traits)]
    read = [0.0]
    loaded = time.perf_counter()
    y = pheno.select(names).to_numpy().astype(np.float64)
    results = gwas(bed_chunks(where / "genotypes.bed", order.height, m, chunk, read),
                   y - 1.0 if model == "logistic" else y,
                   covar.select(pl.col(r"^c\d+$")).to_numpy(), trait_names=names,
                   threads=threads)
    fitted = time.perf_counter()
    results.write_parquet(where / f"ours_{model}{traits}.parquet")
    print(json.dumps({"import_seconds": imported - began, "inputs_seconds": loaded - imported,
                      "read_seconds": read[0], "fit_seconds": fitted - loaded - read[0],
                      "write_seconds": time.perf_counter() - fitted}))


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
    mine = pl.read_parquet(where / f"ours_linear{traits}.parquet")
    theirs = pl.read_parquet(where / f"spark{traits}.parquet")
    worst = 0.0
    for col in ("beta", "se", "p"):
        a, b = mine[col].fill_null(np.nan).to_numpy(), theirs[col].fill_null(np.nan).to_numpy()
        ok = np.isfinite(a) & (a != 0)
        worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]) / np.abs(a[ok]))))
    return worst


def _agreement(where: Path, model: str, out: str, traits: int) -> dict[str, float]:
    """How far our beta and SE are from plink2's printed ones: relative (linear) or in units
    of plink2's SE, ordinary and Firth fits apart (logistic: plink2 fits in single
    precision); and on how many variants one of the two gave a result and the other not, or
    one used Firth and the other not."""
    mine = pl.read_parquet(where / f"ours_{model}{traits}.parquet")
    worst: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        worst[key] = max(worst.get(key, 0.0), value)

    suffix = "glm.logistic.hybrid" if model == "logistic" else "glm.linear"
    for t in range(1, traits + 1):
        theirs = pl.read_csv(where / f"{out}.y{t}.{suffix}", separator="\t", null_values="NA",
                             infer_schema_length=None)
        rows = mine.filter(pl.col("trait") == f"y{t}")
        a_beta = theirs["BETA"].fill_null(np.nan).to_numpy().astype(float)
        a_se = theirs["SE"].fill_null(np.nan).to_numpy().astype(float)
        b_beta = rows["beta"].fill_null(np.nan).to_numpy()
        b_se = rows["se"].fill_null(np.nan).to_numpy()
        keep("result_mismatches", worst.get("result_mismatches", 0.0)
             + float((np.isfinite(a_se) != np.isfinite(b_se)).sum()))
        if model == "linear":
            for key, a, b in (("beta", a_beta, b_beta), ("se", a_se, b_se)):
                ok = np.isfinite(a) & np.isfinite(b) & (a != 0)
                keep(f"max_rel_diff_{key}", float(np.max(np.abs(a[ok] - b[ok]) / np.abs(a[ok]),
                                                        initial=0.0)))
            continue
        firth_theirs = (theirs["FIRTH?"] == "Y").to_numpy()
        firth_ours = (rows["test"] == "firth").to_numpy()
        keep("firth_ours", worst.get("firth_ours", 0.0) + float(firth_ours.sum()))
        keep("firth_plink2", worst.get("firth_plink2", 0.0) + float(firth_theirs.sum()))
        keep("firth_mismatches", worst.get("firth_mismatches", 0.0)
             + float((firth_theirs != firth_ours).sum()))
        ok = np.isfinite(a_se) & np.isfinite(b_se) & (a_se > 0) & (firth_theirs == firth_ours)
        for kind, which in (("logistic", ~firth_ours), ("firth", firth_ours)):
            sel = ok & which
            for key, a, b in (("beta", a_beta, b_beta), ("se", a_se, b_se)):
                keep(f"max_diff_{key}_in_se_{kind}",
                     float(np.max(np.abs(a[sel] - b[sel]) / a_se[sel], initial=0.0)))
            keep(f"median_diff_beta_in_se_{kind}", float(np.median(
                np.abs(a_beta[sel] - b_beta[sel]) / a_se[sel])) if sel.any() else 0.0)
    return {key: float(f"{value:.3g}") for key, value in worst.items()}


def _show(who: str, cells: int, run: Run) -> str:
    return (f"{who} wall {run.wall:7.1f} s, CPU {run.cpu:7.1f} s (user {run.user:.1f}, sys "
            f"{run.system:.1f}; {cells / run.cpu:.3e} sample-variants per CPU-second), peak "
            f"{run.peak_mib:6.0f} MiB, load {run.load:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--traits", type=int, default=1)
    parser.add_argument("--model", choices=("linear", "logistic", "both"), default="both")
    parser.add_argument("--workdir", default="/tmp/strongroom-gwas-bench")
    parser.add_argument("--chunk", type=int, default=0,
                        help="variants per read (default: about 24 MiB of float32, at least 128)")
    parser.add_argument("--missing", type=float, default=0.0,
                        help="fraction of variants with 0.5%% of calls missing")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--separate-plink2", action="store_true",
                        help="also time one plink2 run per trait (linear)")
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
    chunk = args.chunk or max(128, (24 << 20) // (4 * args.participants))
    models = ["linear", "logistic"] if args.model == "both" else [args.model]
    if args.ours:
        ours(Path(args.ours), models[0], args.traits, chunk, args.threads)
        return
    if args.on_spark:
        on_spark(Path(args.on_spark), args.traits, chunk)
        return
    where = _dataset(args)
    print(f"data: {where} ({(where / 'complete').read_text().strip()}), chunk {chunk} variants; "
          f"CPU {CPU_MODEL}, {os.cpu_count()} cores", flush=True)
    cells = args.participants * args.variants
    # Two threads in all for both: plink2 --threads 2; ours two threads over each chunk's
    # variants, each with single-threaded BLAS (or one thread with 2-thread BLAS).
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(max(1, 2 // args.threads)))
    if not args.haswell_blas:  # this workplace pins an old kernel; a TRE machine would not
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    runs: dict[str, list[tuple[Run, Run]]] = {model: [] for model in models}
    for round_ in range(args.repeat):
        for model in models:
            out = f"plink2_{model}_t{args.traits}"

            def plink2(model: str = model, out: str = out) -> Run:
                return _timed(_plink2_cmd(where, model, args.traits, out))[0]

            def mine(model: str = model) -> tuple[Run, dict[str, float]]:
                run, text = _timed([sys.executable, __file__, "--ours", str(where),
                                    "--model", model, "--traits", str(args.traits),
                                    "--chunk", str(chunk), "--threads", str(args.threads)],
                                   env=env)
                return run, json.loads(text.strip().splitlines()[-1])

            if round_ % 2 == 0:  # alternate which goes first
                theirs = plink2()
                own, phases = mine()
            else:
                own, phases = mine()
                theirs = plink2()
            runs[model].append((theirs, own))
            print(f"[{model} round {round_ + 1}] {_show('plink2', cells, theirs)}\n"
                  f"[{model} round {round_ + 1}] {_show('ours  ', cells, own)}; phases "
                  + ", ".join(f"{k.removesuffix('_seconds')} {v:.1f} s"
                              for k, v in phases.items()) +
                  f"\n[{model} round {round_ + 1}] ours/plink2: CPU {own.cpu / theirs.cpu:.2f}, "
                  f"memory {own.peak_mib / theirs.peak_mib:.2f}, wall "
                  f"{own.wall / theirs.wall:.2f} (CPU {CPU_MODEL})", flush=True)
    summary: dict[str, object] = {
        "participants": args.participants, "variants": args.variants, "traits": args.traits,
        "missing": args.missing, "repeats": args.repeat, "threads": args.threads,
        "blas": env.get("OPENBLAS_CORETYPE", "native"), "cpu_model": CPU_MODEL,
        "load_average_now": [round(x, 2) for x in os.getloadavg()]}
    for model, pairs in runs.items():
        def median(values: list[float]) -> float:
            return float(np.median(values))

        p_cpu, o_cpu = median([a.cpu for a, _ in pairs]), median([b.cpu for _, b in pairs])
        p_mib = median([a.peak_mib for a, _ in pairs])
        o_mib = median([b.peak_mib for _, b in pairs])
        p_wall, o_wall = median([a.wall for a, _ in pairs]), median([b.wall for _, b in pairs])
        summary[model] = {
            "plink2_cpu_seconds": round(p_cpu, 2), "ours_cpu_seconds": round(o_cpu, 2),
            "cpu_ratio_ours_over_plink2": round(o_cpu / p_cpu, 3),
            "cpu_ratios_each_round": [round(b.cpu / a.cpu, 3) for a, b in pairs],
            "plink2_peak_mib": round(p_mib), "ours_peak_mib": round(o_mib),
            "memory_ratio_ours_over_plink2": round(o_mib / p_mib, 3),
            "plink2_wall_seconds": round(p_wall, 2), "ours_wall_seconds": round(o_wall, 2),
            "wall_ratio_ours_over_plink2": round(o_wall / p_wall, 3),
            "load_each_round": [round(a.load, 2) for a, _ in pairs],
            "agreement": _agreement(where, model, f"plink2_{model}_t{args.traits}",
                                    args.traits)}
    if args.spark and "linear" in runs:
        s_run, out = _timed([sys.executable, __file__, "--on-spark", str(where),
                             "--traits", str(args.traits), "--chunk", str(chunk)],
                            env=dict(env, OPENBLAS_NUM_THREADS="1"))
        inner = json.loads(out.strip().splitlines()[-1])
        fit = inner["fit_seconds"]
        o_wall = float(np.median([b.wall for _, b in runs["linear"]]))
        summary |= {"spark_seconds_all": round(s_run.wall, 2),
                    "spark_startup_seconds": round(inner["startup_seconds"], 2),
                    "spark_pack_seconds": round(inner.get("pack_seconds", 0.0), 2),
                    "spark_publish_seconds": round(inner["publish_seconds"], 2),
                    "spark_fit_seconds": round(fit, 2),
                    "spark_throughput_per_core": float(f"{cells / fit / 2:.4g}"),
                    "speed_ratio_spark_fit_over_ours": round(o_wall / fit, 3),
                    "max_rel_diff_spark_vs_ours": float(
                        f"{_spark_agreement(where, args.traits):.3g}")}
        print(f"spark: start {inner['startup_seconds']:.1f} s, publish "
              f"{inner['publish_seconds']:.1f} s, fit {fit:.1f} s "
              f"({cells / fit / 2:.3e} sample-variants/s per executor core)", flush=True)
    if args.separate_plink2 and args.traits > 1 and "linear" in runs:
        cpu = 0.0
        for t in range(1, args.traits + 1):
            cpu += _timed(_plink2_cmd(where, "linear", args.traits, f"plink2_single_y{t}",
                                      [f"y{t}"]))[0].cpu
        o_cpu = float(np.median([b.cpu for _, b in runs["linear"]]))
        summary |= {"plink2_separate_runs_cpu_seconds": round(cpu, 2),
                    "cpu_ratio_ours_over_plink2_separate": round(o_cpu / cpu, 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
