"""Genotype files for tests, in the three formats custodians hold, made by the real tools:
PLINK 1 by bed-reader, PLINK 2 and BGEN by plink2 converting that file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt

PLINK2 = shutil.which("plink2")
ALLELES = np.array(list("ACGT"))


def genotypes(n: int, m: int, seed: int, missing: float = 0.02) -> npt.NDArray[np.float32]:
    """Samples × variants hard calls with a spread of allele frequencies and a few missing."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.02, 0.5, m)
    g = rng.binomial(2, freq, (n, m)).astype(np.float32)
    g[rng.random((n, m)) < missing] = np.nan
    return g


def write_bed(stem: Path, g: npt.NDArray[np.float32], ids: list[str], seed: int = 0,
              chrom: str = "1") -> Path:
    import bed_reader

    rng = np.random.default_rng(seed)
    m = g.shape[1]
    a1 = rng.integers(0, 4, m)
    a2 = (a1 + 1 + rng.integers(0, 3, m)) % 4
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = stem.with_suffix(".bed")
    bed_reader.to_bed(path, g, properties={
        "fid": ids, "iid": ids, "chromosome": [chrom] * m,
        "sid": [f"rs{1000 + j}" for j in range(m)],
        "bp_position": 10_000 + 1_000 * np.arange(m),
        "allele_1": ALLELES[a1], "allele_2": ALLELES[a2]})
    return path


def convert(bed: Path, kind: str) -> Path:
    """The same genotypes as PLINK 2 (``pgen``) or BGEN 1.2 (``bgen``, 8 bits, REF first)."""
    assert PLINK2 is not None, "plink2 is needed (apt-get install plink2)"
    out = bed.with_name(f"{bed.stem}-{kind}")
    args = ["--make-pgen"] if kind == "pgen" else ["--export", "bgen-1.2", "bits=8", "ref-first"]
    subprocess.run([PLINK2, "--bfile", str(bed.with_suffix("")), *args, "--out", str(out)],
                   check=True, capture_output=True)
    return out.with_suffix(f".{kind}")
