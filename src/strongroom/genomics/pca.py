"""Principal components of the genotypes, for use as GWAS covariates.

The components are those of the standardised genotypes ((dosage − 2p) / √(2p(1−p)), a
missing call counted as the mean) of the common variants (MAF ≥ 5% by default), thinned to one
per ``min_spacing_bp`` like plink2's ``--bp-space``. They come from a randomised SVD (Halko,
Martinsson & Tropp 2011) streamed over the chunks: one pass multiplies the genotypes by a
random matrix, a second projects them on the basis that product spans; each optional power
iteration adds two passes. Genotypes' spectrum is flat beyond the few components that carry
structure, so the plain two passes find a poor basis (a correlation of 0.1 to 0.9 with the
exact components in the tests); two power iterations (six passes, the default) recover them
to 0.9999. When the kept markers' dosages fit in ``HOLD_BYTES`` as bytes (500,000 people ×
6,000 markers is 3 GB), they are held from the first pass and the later passes read them there
rather than decrypting the genotypes again; otherwise only samples × (components +
oversampling) numbers are held, never the genotype matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import sparse

from strongroom.genomics.gwas import F64, Chunk, GwasInputError, read_chunk

MAX_R2 = 0.2  # LD pruning before PCA, as plink2 --indep-pairwise 50 5 0.2 is commonly run
EXACT_BYTES = 1 << 30  # kept markers' genotypes held for exact components up to this (float32)
HOLD_BYTES = 3 << 30  # kept markers' dosages (int8) held for the randomised SVD up to this


@dataclass(frozen=True)
class PrincipalComponents:
    scores: F64  # samples × k, each component with mean 0 and variance 1 over the samples
    eigenvalues: F64  # k: eigenvalues of the genetic relationship matrix X Xᵀ / m
    variants: NDArray[np.int64]  # indices of the variants used

    @property
    def variant_count(self) -> int:
        return int(self.variants.size)


@dataclass
class _Selection:
    """Which variants of each chunk are used, and how each is standardised."""

    chunks: dict[int, tuple[NDArray[np.intp], F64, F64]]  # first index → columns, mean, 1/sd

    def held(self, first: int, kept: NDArray[np.int8]) -> F64:
        """A held chunk's kept markers (int8 dosages, -1 missing), standardised."""
        _, mean, inv_sd = self.chunks[first]
        x = (kept.astype(np.float64) - mean) * inv_sd
        x[kept < 0] = 0.0
        return x

    def standardised(self, first: int, dosages: NDArray[np.float32]) -> F64:
        """A chunk's kept markers read again (too many to hold), each dosage as its nearest
        hard call, as they are held (``held``): the two paths give the same components."""
        cols, mean, inv_sd = self.chunks.get(first, (np.zeros(0, np.intp), np.zeros(0),
                                                     np.zeros(0)))
        x = (np.rint(dosages[:, cols]).astype(np.float64) - mean) * inv_sd
        return np.asarray(np.nan_to_num(x, nan=0.0, copy=False))


class _Dense:
    """A chunk's kept markers, standardised (read again from the store at each pass)."""

    def __init__(self, x: F64):
        self.x = x
        self.columns = x.shape[1]

    def times(self, b: F64) -> F64:
        """X @ b (samples × b's columns)."""
        out: F64 = self.x @ b
        return out

    def t_times(self, y: F64) -> F64:
        """Xᵀ @ y (markers × y's columns)."""
        out: F64 = self.x.T @ y
        return out


class _Held:
    """A chunk's kept markers held as int8 dosages G (−1 missing), multiplied as their
    standardised genotypes X = (G − mean) / sd (a missing call 0) without making X: G as float64
    once, the centring and scaling applied to the small matrices, the missing calls corrected
    as a sparse matrix. Each pass of the randomised SVD made X whole in four passes over samples
    × markers float64 (at 230,000 samples and 7,000 markers, 13 GB written a pass, six passes:
    most of the demo's GWAS's time)."""

    def __init__(self, kept: NDArray[np.int8], mean: F64, inv_sd: F64):
        self.kept = kept
        self.columns = kept.shape[1]
        self.inv_sd = inv_sd
        self.shift = mean * inv_sd  # X = G / sd − shift, column by column
        # what the missing calls' X is off by (G is −1 there, X 0), found once: a few percent
        # of the calls at most, where finding them at each pass cost a tenth of the passes
        rows, cols = np.nonzero(kept < 0)
        self.missing = sparse.csr_matrix(
            (((1.0 + mean) * inv_sd)[cols], (rows, cols)), shape=kept.shape) if rows.size \
            else None

    def times(self, b: F64) -> F64:
        """X @ b (samples × b's columns)."""
        out: F64 = self.kept.astype(np.float64) @ (self.inv_sd[:, None] * b)
        out -= self.shift @ b
        if self.missing is not None:
            out += self.missing @ b
        return out

    def t_times(self, y: F64) -> F64:
        """Xᵀ @ y (markers × y's columns)."""
        out: F64 = self.inv_sd[:, None] * (self.kept.astype(np.float64).T @ y)
        out -= np.outer(self.shift, y.sum(axis=0))
        if self.missing is not None:
            out += self.missing.T @ y
        return out


def _select(first: int, dosages: NDArray[np.float32], min_maf: float,
            positions: tuple[NDArray[np.str_], NDArray[np.int64]] | None, spacing: int,
            last: dict[str, int], max_r2: float = 1.0) -> tuple[NDArray[np.intp], F64, F64]:
    called = ~np.isnan(dosages)
    present = called.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # summed where called: no copy
        p = np.add.reduce(dosages, axis=0, dtype=np.float64, where=called) / (2.0 * present)
    maf = np.minimum(p, 1.0 - p)
    candidates = np.flatnonzero((present > 0) & (maf >= min_maf) & (maf > 0))
    if positions is not None and spacing > 0:
        chrom, pos = positions
        keep = []
        for j in candidates:
            c, x = str(chrom[first + j]), int(pos[first + j])
            if c not in last or x - last[c] >= spacing:
                keep.append(j)
                last[c] = x
        candidates = np.asarray(keep, dtype=np.intp)
    sd = np.sqrt(2.0 * p[candidates] * (1.0 - p[candidates]))
    if max_r2 < 1.0 and candidates.size > 1:
        kept = _pruned(dosages[:, candidates], 2.0 * p[candidates], 1.0 / sd, max_r2)
        candidates, sd = candidates[kept], sd[kept]
    return candidates, 2.0 * p[candidates], 1.0 / sd


def _pruned(dosages: NDArray[np.float32], mean: F64, inv_sd: F64, max_r2: float
            ) -> NDArray[np.intp]:
    """Which of a chunk's columns to keep so that no two kept are correlated above
    ``max_r2`` (greedy, in file order, as plink2 --indep-pairwise does in a window): a block of
    markers in linkage disequilibrium is one haplotype's worth of information, and left whole
    it outweighs ancestry in the leading components, which then correct nothing."""
    # in float32, in place: r² is compared with a threshold of 0.2, and float32's error on it
    # (under 1e-6 over 500,000 samples) decides nothing; in float64 this was most of a
    # GWAS's principal components' time
    x = np.array(dosages, dtype=np.float32, order="F")
    x -= mean.astype(np.float32)
    x *= inv_sd.astype(np.float32)
    np.nan_to_num(x, copy=False, nan=0.0)
    r2 = np.square((x.T @ x).astype(np.float64) / x.shape[0])
    kept: list[int] = []
    for j in range(r2.shape[0]):
        if not kept or float(r2[j, kept].max()) <= max_r2:
            kept.append(j)
    return np.asarray(kept, dtype=np.intp)


def genotype_pcs(chunks: Callable[[], Iterable[Chunk]], n_components: int = 10, *,
                 variants: pl.DataFrame | None = None, min_maf: float = 0.05,
                 min_spacing_bp: int = 0, max_r2: float = MAX_R2, oversample: int = 10,
                 power_iterations: int = 2, seed: int = 0) -> PrincipalComponents:
    """Top ``n_components`` principal components of the genotypes ``chunks()`` yields.

    ``chunks`` is called once per pass (2 + 2 × ``power_iterations`` times; once when the
    kept markers' dosages fit in ``HOLD_BYTES``) and must yield the same chunks each time.
    Markers are pruned for linkage disequilibrium within each chunk (no two kept with r² above
    ``max_r2``; 1 keeps all). When the kept markers' standardised genotypes fit in
    ``EXACT_BYTES`` (float32), the components are exact (an eigendecomposition of their
    cross-product, one pass in all) and the randomised SVD is not used.
    ``variants`` (the variant table) is needed only to thin by position
    (``min_spacing_bp`` > 0).
    """
    if n_components < 1:
        raise GwasInputError("ask for at least one principal component")
    if min_spacing_bp > 0 and variants is None:
        raise GwasInputError("thinning by position needs the variant table: pass variants=")
    positions = None
    if variants is not None:
        positions = (variants["chrom"].cast(pl.String).to_numpy(),
                     variants["pos"].cast(pl.Int64).to_numpy())
    width = n_components + oversample
    selection = _Selection({})
    last: dict[str, int] = {}
    held: list[tuple[int, NDArray[np.int8]]] | None = []  # the kept markers, while they fit
    held_bytes = 0
    y: F64 | None = None
    n = 0
    for first, dosages in _read(chunks()):
        n = dosages.shape[0]
        cols, mean, inv_sd = _select(first, dosages, min_maf, positions, min_spacing_bp, last,
                                     max_r2)
        selection.chunks[first] = (cols, mean, inv_sd)
        if held is None:
            y = _projected(y, _Dense(selection.standardised(first, dosages)), first, seed,
                           width)
            continue
        # held as hard calls, each dosage rounded to the nearest (as plink2's --pca reads
        # hard calls): cast alone, an imputed 1.9 was held as 1
        kept = np.rint(np.nan_to_num(dosages[:, cols], nan=-1.0)).astype(np.int8)
        held.append((first, kept))
        held_bytes += kept.nbytes
        if held_bytes > HOLD_BYTES:  # too many to hold: each pass reads the genotypes again
            for earlier, dosage in held:
                y = _projected(y, _Held(dosage, *selection.chunks[earlier][1:]), earlier, seed,
                               width)
            held = None
    used = np.concatenate([first + c for first, (c, _, _) in sorted(selection.chunks.items())]
                          ) if selection.chunks else np.zeros(0, np.int64)
    if held is not None and 4 * n * used.size <= EXACT_BYTES and used.size >= n_components:
        return _exact(np.hstack([selection.held(first, kept).astype(np.float32)
                                 for first, kept in held]), n_components, used)
    if used.size < width:
        raise GwasInputError(
            f"only {used.size} variants pass MAF ≥ {min_maf} and the thinning, too few for "
            f"{n_components} components with {oversample} extra: relax the filters")
    kept_chunks = None if held is None else [
        (first, _Held(kept, *selection.chunks[first][1:])) for first, kept in held]

    def blocks() -> Iterator[tuple[int, _Dense | _Held]]:
        """Each chunk's kept markers: held here, else read and standardised again."""
        if kept_chunks is not None:
            for first, held_block in kept_chunks:
                yield first, held_block
        else:
            for first, dosages in _read(chunks()):
                yield first, _Dense(selection.standardised(first, dosages))

    if kept_chunks is not None:
        for first, kept_block in kept_chunks:
            y = _projected(y, kept_block, first, seed, width)
    assert y is not None
    basis = np.linalg.qr(y)[0]
    for _ in range(power_iterations):
        z = [block.t_times(basis) for _, block in blocks()]
        y = np.zeros((n, width))
        for (_, block), part in zip(blocks(), z, strict=True):
            y += block.times(part)
        basis = np.linalg.qr(y)[0]
    b = np.hstack([block.t_times(basis).T for _, block in blocks()])
    u_small, s, _ = np.linalg.svd(b, full_matrices=False)
    u = basis @ u_small[:, :n_components]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(n_components)])
    return PrincipalComponents(scores=u * signs * np.sqrt(n),
                               eigenvalues=s[:n_components] ** 2 / used.size,
                               variants=used.astype(np.int64))


def _projected(y: F64 | None, x: _Dense | _Held, first: int, seed: int, width: int) -> F64:
    """``y`` plus one chunk's standardised genotypes times its random test matrix."""
    omega = np.random.default_rng([seed, first]).standard_normal((x.columns, width))
    return x.times(omega) if y is None else y + x.times(omega)


def _exact(x: NDArray[np.float32], k: int, used: NDArray[np.int64]) -> PrincipalComponents:
    """The top ``k`` components of standardised genotypes ``x`` (samples × markers), exactly:
    the eigenvectors of xᵀx (markers × markers, summed in float64 a block of samples at a
    time), projected back."""
    n, m = x.shape
    if n < m:
        values, u = _exact_by_samples(x, k)
    else:
        gram = np.zeros((m, m))
        for start in range(0, n, _BLOCK):
            block = x[start:start + _BLOCK].astype(np.float64)
            gram += block.T @ block
        values, vectors = np.linalg.eigh(gram)
        top = np.argsort(values)[::-1][:k]
        values, vectors = np.maximum(values[top], 1e-300), vectors[:, top]
        u = np.vstack([x[start:start + _BLOCK].astype(np.float64) @ vectors
                       for start in range(0, n, _BLOCK)]) / np.sqrt(values)
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(k)])
    return PrincipalComponents(scores=u * signs * np.sqrt(n), eigenvalues=values / m,
                               variants=used.astype(np.int64))


_BLOCK = 65_536  # samples at a time through the exact path's products


def _exact_by_samples(x: NDArray[np.float32], k: int) -> tuple[F64, F64]:
    """With fewer samples than markers, the same components from the samples' side: X Xᵀ
    (samples × samples, summed in float64 a block of markers at a time) has the nonzero
    eigenvalues of XᵀX, and its unit eigenvectors are X v / √λ, the scores themselves (an
    eigendecomposition of the smaller matrix: a 1,500-sample study of 3,500 markers took
    seconds on the markers' side)."""
    n, m = x.shape
    gram = np.zeros((n, n))
    step = max(1, (1 << 25) // max(n, 1))  # markers at a time: 256 MiB of float64
    for start in range(0, m, step):
        block = x[:, start:start + step].astype(np.float64)
        gram += block @ block.T
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:k]
    return np.maximum(values[top], 1e-300), vectors[:, top]


def _read(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
    n: int | None = None
    for first, dosages in chunks:
        rows = np.asarray(dosages).shape[0]
        n = rows if n is None else n
        yield read_chunk((first, dosages), n)
