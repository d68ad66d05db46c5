"""The enclave's checked SQL on DuckDB and on a loopback Spark cluster, side by side, as the
cohort grows: 1×, 2×, 5× and 10× UK Biobank's 500,000 participants.

    python benchmarks/engines.py [--scales 1,2,5,10] [--base 500000] [--repeat 3] [--json PATH]

A 500,000-participant synthetic cohort is made once and its project view (the tables a
researcher's SQL reads, participants' pids instead of eids) tiled to each scale with fresh
pids, so 10× is 5,000,000 participants and about 40 million diagnoses. At each scale every
query below runs on both engines through the code researchers' requests run through
(``definitions.build``, ``aggregate_sql``: the guard, the engine, contributor sets); the
Spark engine's first query also publishes the tables (encrypted Parquet), reported apart.
The cluster is a standalone master and two workers of one core each on this machine
(``LocalCluster``), so the two engines have the same two cores.

Prints a Markdown table (every scale and query), the crossover (the smallest scale at which
Spark is the faster, per query), the Spark cluster's throughput per executor core, and the
figures as one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave import definitions
from strongroom.enclave.aggregate import aggregate_sql
from strongroom.enclave.engine import Limits
from strongroom.enclave.engines import DuckDBEngine, Engine
from strongroom.enclave.spark.cluster import LocalCluster
from strongroom.enclave.spark.engine import SparkEngine
from strongroom.enclave.view import project_view, schema_of

GRANT = (31, 34, 54, 20116, 21001, 4080, 41270, 41280, 40000)
TILE = 10_000_000  # pids of tile k are k × TILE + the base's (all below TILE)
LIMITS = Limits(seconds=3600.0, memory="12GB", max_rows=100_000_000)

# The demo's study, as a researcher writes it: two definitions (a row per participant) and
# the aggregate tables of its table 1 and outcomes.
QUERIES: list[tuple[str, str, str]] = [
    ("definition", "study population",
     "SELECT pid, p31 AS sex, p34 AS born, p20116_i0 AS smoking, p21001_i0 AS bmi, "
     "p4080_i0_a0 AS sbp FROM participants WHERE p21001_i0 IS NOT NULL"),
    ("definition", "first circulatory diagnosis",
     "SELECT pid, min(date) AS first FROM diagnoses WHERE code LIKE 'I%' GROUP BY pid"),
    ("aggregate", "count by sex × smoking",
     "SELECT p31 AS sex, p20116_i0 AS smoking, count(*) AS n FROM participants "
     "GROUP BY p31, p20116_i0"),
    ("aggregate", "mean, sd of BMI by sex × centre",
     "SELECT p31 AS sex, p54_i0 AS centre, count(*) AS n, avg(p21001_i0) AS bmi, "
     "stddev(p21001_i0) AS sd FROM participants GROUP BY p31, p54_i0"),
    ("aggregate", "median, 90th centile of SBP by sex",
     "SELECT p31 AS sex, median(p4080_i0_a0) AS med, quantile_cont(p4080_i0_a0, 0.9) AS q9 "
     "FROM participants GROUP BY p31"),
    ("aggregate", "diagnosed people by sex (join)",
     "SELECT p.p31 AS sex, count(DISTINCT d.pid) AS people, count(*) AS diagnoses "
     "FROM participants p JOIN diagnoses d ON p.pid = d.pid GROUP BY p.p31"),
    ("aggregate", "circulatory cases by sex (IN)",
     "SELECT p31 AS sex, count(*) AS n FROM participants WHERE pid IN "
     "(SELECT pid FROM diagnoses WHERE code LIKE 'I%') GROUP BY p31"),
]


def base_view(participants: int, seed: int) -> dict[str, pl.DataFrame]:
    cohort = synthesise(participants, seed)
    eids = cohort.participants["eid"].to_numpy()
    rng = np.random.default_rng(seed)
    pids = 1_000_000 + rng.choice(TILE - 1_000_000, size=eids.size, replace=False)
    return project_view(cohort, pl.DataFrame({"eid": eids, "pid": pids}), GRANT,
                        shipped_dictionary())


def tiled(view: dict[str, pl.DataFrame], scale: int) -> dict[str, pl.DataFrame]:
    return {name: pl.concat([frame.with_columns(pl.col("pid") + k * TILE) for k in range(scale)],
                            rechunk=True) for name, frame in view.items()}


def run(kind: str, sql: str, view: dict[str, pl.DataFrame], engine: Engine) -> int:
    schema = schema_of(view)
    if kind == "definition":
        _, frame = definitions.build(view, schema, "d", sql, LIMITS, engine=engine)
        return frame.height
    out = aggregate_sql(view, schema, sql, LIMITS, {"kind": "aggregate_sql", "sql": sql}, k=10,
                        engine=engine)
    return len(out.cells)


def timed(call: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,2,5,10")
    parser.add_argument("--base", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker-memory", default="5g")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]

    start = time.perf_counter()
    view = base_view(args.base, 31)
    print(f"base view of {args.base:,} participants in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    figures: dict[str, object] = {"base": args.base, "scales": {}}
    with tempfile.TemporaryDirectory(prefix="strongroom-engines-") as scratch, \
            LocalCluster(Path(scratch), workers=2, cores=1, memory=args.worker_memory) as cluster:
        spark = SparkEngine(cluster.settings(executor_memory=args.worker_memory,
                                             driver_memory="6g"), secrets.token_bytes(32))
        duck = DuckDBEngine()
        try:
            for scale in scales:
                tables = tiled(view, scale)
                rows = {name: frame.height for name, frame in tables.items()}
                spark.spark  # noqa: B018 (the driver started: publication alone is timed)
                start = time.perf_counter()
                for name in ("participants", "diagnoses"):
                    spark.publish(tables[name])
                published = time.perf_counter() - start
                lines = []
                for kind, label, sql in QUERIES:
                    d, d_size = timed(partial(run, kind, sql, tables, duck), args.repeat)
                    s, s_size = timed(partial(run, kind, sql, tables, spark), args.repeat)
                    assert d_size == s_size, (label, d_size, s_size)
                    lines.append({"kind": kind, "query": label, "duckdb_s": d, "spark_s": s,
                                  "size": d_size})
                figures["scales"][scale] = {  # type: ignore[index]
                    "participants": rows["participants"], "rows": rows,
                    "publish_s": published, "queries": lines}
                print(f"{scale}×: {rows['participants']:,} participants, published in "
                      f"{published:.1f} s", file=sys.stderr, flush=True)
                spark.close()  # its tables and keys go; the next scale publishes its own
                spark = SparkEngine(cluster.settings(executor_memory=args.worker_memory,
                                                     driver_memory="6g"),
                                    secrets.token_bytes(32))
        finally:
            spark.close()
    print("| scale | participants / diagnoses | query | DuckDB | Spark | Spark / DuckDB |")
    print("|---|---|---|---|---|---|")
    for scale, data in figures["scales"].items():  # type: ignore[attr-defined]
        size = f"{data['rows']['participants']:,} / {data['rows']['diagnoses']:,}"
        print(f"| {scale}× | {size} | Spark's publication of both tables | — | "
              f"{data['publish_s']:.1f} s | — |")
        for line in data["queries"]:
            print(f"| {scale}× | {size} | {line['kind']}: {line['query']} | "
                  f"{line['duckdb_s']:.2f} s | {line['spark_s']:.2f} s | "
                  f"{line['spark_s'] / line['duckdb_s']:.2f} |")
    crossover = {}
    for _, label, _ in QUERIES:
        wins = [scale for scale, data in figures["scales"].items()  # type: ignore[attr-defined]
                for line in data["queries"]
                if line["query"] == label and line["spark_s"] < line["duckdb_s"]]
        crossover[label] = min(wins) if wins else None
    figures["crossover"] = crossover
    top = max(scales)
    data = figures["scales"][top]  # type: ignore[index]
    scan = data["rows"]["participants"] + data["rows"]["diagnoses"]
    joined = next(x for x in data["queries"] if "join" in x["query"])
    figures["spark_rows_per_core_s"] = scan / joined["spark_s"] / 2
    print("\nCrossover (the smallest scale at which Spark is faster): "
          + "; ".join(f"{k}: {v}×" if v else f"{k}: none up to {top}×"
                      for k, v in crossover.items()) + ".")
    print(f"\nSpark's throughput on the join at {top}×: "
          f"{figures['spark_rows_per_core_s']:,.0f} rows per executor core per second.")
    text = json.dumps(figures, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
