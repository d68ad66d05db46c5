"""Sealing genotypes into the store, and reading them back, at UK Biobank scale.

Ingests a PLINK 1 file set (default: the one `benchmarks/genotypes_simulate.py` writes, 500,000
× 20,000) into a fresh store whose cohort holds its samples, then reads every chunk back
(decrypt and decode: what one pass of a GWAS costs) for everyone and for a tenth of them.
Prints wall times, throughput and peak memory.

    python benchmarks/genotypes_store.py [--bed /tmp/genosim/genotypes-500000x20000.bed]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from strongroom.cohort.model import Cohort
from strongroom.cohort.store import init_store
from strongroom.genomics.formats import open_genotypes
from strongroom.genomics.store import Genotypes

DEFAULT = Path("/tmp/genosim/genotypes-500000x20000.bed")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bed", type=Path, default=DEFAULT)
    args = parser.parse_args()
    if not args.bed.is_file():
        raise SystemExit(f"{args.bed} is missing: write it with `python benchmarks/"
                         "genotypes_simulate.py --participants 500000 --variants 20000`")
    with tempfile.TemporaryDirectory(prefix="strongroom-gt-bench-") as tmp, \
            open_genotypes(args.bed) as source:
        eids = np.array([int(s) for s in source.samples], dtype=np.int64)
        store = init_store(Path(tmp) / "data", key_file=Path(tmp) / "master.key")
        store.write_version(Cohort(pl.DataFrame({"eid": eids}), {}))  # the samples' cohort
        genotypes = Genotypes(store)
        size = args.bed.stat().st_size
        started = time.perf_counter()
        held = genotypes.ingest(source)
        took = time.perf_counter() - started
        sealed = sum(c["bytes"] for c in held.chunks)
        print(f"ingest {held.samples:,} × {held.variants:,}: {took:.1f} s "
              f"({held.variants / took:,.0f} variants/s, {size / took / 2**20:.0f} MiB/s of "
              f".bed), {len(held.chunks)} chunks, {sealed / 2**20:,.0f} MiB sealed; "
              f"peak {peak_mib():,.0f} MiB")
        for share, label in ((1.0, "everyone"), (0.1, "a tenth")):
            rows = (None if share == 1.0 else
                    np.sort(np.random.default_rng(0).choice(held.samples,
                                                            int(held.samples * share),
                                                            replace=False)))
            started = time.perf_counter()
            total = 0.0
            for _, dosages in genotypes.chunks(held, rows):
                total += float(dosages[:, 0].sum())  # touch the decoded chunk
            took = time.perf_counter() - started
            print(f"read every chunk back for {label}: {took:.1f} s "
                  f"({held.samples * share * held.variants / took / 1e9:.2f} billion "
                  f"genotypes/s); peak {peak_mib():,.0f} MiB")
        store.close()


if __name__ == "__main__":
    main()
