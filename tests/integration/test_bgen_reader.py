"""bgen.py reads BGEN exactly as the specification and the reference reader (cbgen, the ``bgen``
C library) do: on plink2's exports (layouts 1 and 2) and on files of imputed probabilities at
every bit depth, compressed or not, with missing samples. (The reference reader cannot read
uncompressed layout 2 at all: it reads the sample count where the block length is. There the
specification's arithmetic is the oracle.)"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from strongroom.genomics import bgen
from strongroom.genomics.formats import GenotypeFileError, open_direct, open_genotypes
from tests.genotype_files import PLINK2, genotypes, write_bed

cbgen = pytest.importorskip("cbgen")


def _reference(path: Path) -> np.ndarray:
    """ALT dosages as cbgen reads them (its metafile in a temporary folder)."""
    meta = path.with_suffix(".metafile")
    with cbgen.bgen_file(path) as f:
        f.create_metafile(meta, verbose=False)
        with cbgen.bgen_metafile(meta) as mf:
            offsets = np.concatenate([mf.read_partition(k).variants.offset
                                      for k in range(mf.npartitions)])
        columns = []
        for offset in offsets:
            p = f.read_genotype(int(offset), precision=64).probability
            columns.append((p[:, 1] + 2 * p[:, 2]).astype(np.float32))
    return np.column_stack(columns)


def write_bgen(path: Path, probs: np.ndarray, missing: np.ndarray, bits: int,
               compressed: bool) -> tuple[Path, np.ndarray]:
    """A layout-2 BGEN of unphased diploid probabilities (samples × variants × 2: P(AA),
    P(AB)), written by the specification, with sample IDs; and the ALT dosages it holds."""
    n, m, _ = probs.shape
    top = (1 << bits) - 1
    ids = b"".join(struct.pack("<H", len(s)) + s for s in (f"s{i}".encode() for i in range(n)))
    samples = struct.pack("<II", 8 + len(ids), n) + ids
    header = struct.pack("<III4sI", 20, m, n, b"bgen", (1 << 31) | (2 << 2) | int(compressed))
    out = [struct.pack("<I", len(header) + len(samples)), header, samples]
    expected = np.full((n, m), np.nan, dtype=np.float32)
    for j in range(m):
        # integers that sum to at most top, as writers round them
        a = np.floor(probs[:, j, 0] * top + 0.5).astype(np.uint64)
        b = np.minimum(np.floor(probs[:, j, 1] * top + 0.5).astype(np.uint64), top - a)
        a[missing[:, j]] = 0
        b[missing[:, j]] = 0
        values = np.column_stack([a, b]).ravel()
        dosage = (b + 2.0 * (top - a - b)) / top
        expected[~missing[:, j], j] = dosage[~missing[:, j]]
        bitstream = ((values[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
        packed = np.packbits(bitstream.ravel(), bitorder="little").tobytes()
        ploidy = np.where(missing[:, j], 0x82, 2).astype(np.uint8).tobytes()
        plain = struct.pack("<IHBB", n, 2, 2, 2) + ploidy + bytes([0, bits]) + packed
        ident = b"".join(struct.pack("<H", len(t)) + t
                         for t in (f"v{j}".encode(), f"rs{j}".encode(), b"1"))
        alleles = struct.pack("<IH", 1000 + j, 2) + struct.pack("<I", 1) + b"A" \
            + struct.pack("<I", 1) + b"G"
        block = (struct.pack("<II", len(zlib.compress(plain)) + 4, len(plain))
                 + zlib.compress(plain)) if compressed else struct.pack("<I", len(plain)) + plain
        out.append(ident + alleles + block)
    path.write_bytes(b"".join(out))
    return path, expected


@pytest.mark.parametrize("bits", [1, 3, 8, 11, 16, 24, 32])
@pytest.mark.parametrize("compressed", [True, False])
def test_imputed_probabilities_read_as_the_reference_reads_them(
        tmp_path: Path, bits: int, compressed: bool) -> None:
    rng = np.random.default_rng(bits)
    n, m = 37, 9
    raw = rng.dirichlet([1.0, 1.0, 1.0], size=(n, m))[:, :, :2]
    missing = rng.random((n, m)) < 0.1
    path, expected = write_bgen(tmp_path / "imputed.bgen", raw, missing, bits, compressed)
    with open_direct(path) as source:
        ours = source.read(0, m)
        assert source.samples == [f"s{i}" for i in range(n)]
    assert np.array_equal(np.isnan(ours), missing)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    if compressed:
        np.testing.assert_allclose(ours, _reference(path), rtol=0, atol=1e-6)


@pytest.mark.skipif(PLINK2 is None, reason="plink2 is needed (apt-get install plink2)")
@pytest.mark.parametrize("export", ["bgen-1.1", "bgen-1.2 bits=8", "bgen-1.2 bits=16",
                                    "bgen-1.3"])
def test_plink2_exports_read_as_written(tmp_path: Path, export: str) -> None:
    n, m = 41, 23
    calls = genotypes(n, m, seed=4)
    bed = write_bed(tmp_path / "calls", calls, [str(1000 + i) for i in range(n)])
    kind, *options = export.split()
    subprocess.run([str(PLINK2), "--bfile", str(bed.with_suffix("")), "--export", kind,
                    *options, "ref-first", "--out", str(tmp_path / "out")],
                   check=True, capture_output=True)
    path = tmp_path / "out.bgen"
    if kind == "bgen-1.3":  # plink2 writes 1.3 with zstd: refused, saying how to export it
        with pytest.raises(GenotypeFileError, match="zstd-compressed"):
            open_genotypes(path)
        return
    with open_genotypes(path) as source:
        ours = source.read(0, m)
    # ALT is the second allele: with ref-first, the .bed's allele 1, whose count was written
    np.testing.assert_array_equal(ours, calls)
    if kind == "bgen-1.2":
        np.testing.assert_allclose(ours, _reference(path), rtol=0, atol=1e-6)


def test_the_walk_finds_what_the_reference_index_finds(tmp_path: Path) -> None:
    assert shutil.which("plink2")
    n, m = 29, 31
    bed = write_bed(tmp_path / "calls", genotypes(n, m, seed=2), [str(1000 + i) for i in range(n)])
    subprocess.run([str(PLINK2), "--bfile", str(bed.with_suffix("")), "--export", "bgen-1.2",
                    "--out", str(tmp_path / "out")], check=True, capture_output=True)
    path = tmp_path / "out.bgen"
    shape = bgen.walk(path)
    meta = tmp_path / "index.metafile"
    with cbgen.bgen_file(path) as f:
        f.create_metafile(meta, verbose=False)
    with cbgen.bgen_metafile(meta) as mf:
        variants = mf.read_partition(0).variants
        assert [b.start - 8 for b in shape.blocks] == [int(o) for o in variants.offset]
        assert shape.rsid == [r.decode() for r in variants.rsid]
        assert [",".join(a) for a in shape.alleles] == [a.decode() for a in variants.allele_ids]
