"""Linear GWAS over streamed genotype chunks, computing what ``plink2 --glm`` computes.

Per variant and trait the model is ``trait ~ 1 + dosage + covariates`` by least squares, on
the samples whose trait, covariates and genotype are all present. Covariates are projected
out once per set of samples (a QR of the standardised covariates); each chunk then costs a
few matrix products whatever the number of traits (Frisch–Waugh–Lovell). A variant with
missing calls is fitted exactly on its own samples: the covariate cross-products are
downdated by the few samples it lacks, as plink2 drops them for that variant alone.

plink2's refusals are kept, with its error codes: too few samples, a constant genotype,
a genotype correlated above ``max_corr`` with a covariate, a variance inflation factor above
``max_vif``. Its covariate rules are kept too: covariates constant over the samples are
dropped, and (for quantitative traits) a sample that alone makes a covariate non-constant is
dropped. Collinear covariates are refused with an error naming them.
"""

from __future__ import annotations

import abc
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import special

from strongroom.errors import Invalid

F64 = NDArray[np.float64]
Chunk = tuple[int, NDArray[np.float32]]
"""A slice of the genotype matrix: the index of its first variant and its dosages,
float32 samples × variants, NaN where a call is missing."""

MAX_CORR: Final = 0.999  # plink2 --glm's defaults (--max-corr, --vif)
MAX_VIF: Final = 50.0
GENOME_WIDE: Final = 5e-8
CHI2_MEDIAN: Final = float(special.chdtri(1, 0.5))  # 0.4549…, the null median of a 1-df χ²

# plink2's ERRCODE values, reported as they are so results can be compared line by line
TOO_FEW_SAMPLES: Final = "SAMPLE_CT<=PREDICTOR_CT"
CONSTANT_GENOTYPE: Final = "CONST_OMITTED_ALLELE"
CORR_TOO_HIGH: Final = "CORR_TOO_HIGH"
VIF_INFINITE: Final = "VIF_INFINITE"
VIF_TOO_HIGH: Final = "VIF_TOO_HIGH"
INVALID_RESULT: Final = "INVALID_RESULT"
UNFINISHED: Final = "UNFINISHED"  # out of iterations; the fit is reported all the same
ERRORS: Final = (None, TOO_FEW_SAMPLES, CONSTANT_GENOTYPE, CORR_TOO_HIGH, VIF_INFINITE,
                 VIF_TOO_HIGH, INVALID_RESULT, "LOGISTIC_CONVERGE_FAIL", "FIRTH_CONVERGE_FAIL",
                 "SEPARATION", UNFINISHED)
ERROR_CODE = {name: code for code, name in enumerate(ERRORS)}

_SINGULAR = 1e-14  # plink2's kMatrixSingularRcond, on a correlation-matrix Schur complement


class GwasInputError(Invalid, ValueError):
    """Phenotypes, covariates or genotype chunks that a GWAS cannot use as given."""


# --------------------------------------------------------------------------------------------
# inputs


def _matrix(values: ArrayLike, n: int | None, what: str) -> F64:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise GwasInputError(f"{what} must be a samples × columns array; got {array.ndim} "
                             "dimensions")
    if n is not None and array.shape[0] != n:
        raise GwasInputError(f"{what} has {array.shape[0]} rows but the phenotypes have {n}: "
                             "give one row per sample, in the genotypes' sample order")
    if np.isinf(array).any():
        raise GwasInputError(f"{what} holds infinite values; use NaN for a missing value")
    return array


def _names(names: Sequence[str] | None, count: int, stem: str, what: str) -> list[str]:
    if names is None:
        return [f"{stem}{i + 1}" for i in range(count)]
    names = [str(name) for name in names]
    if len(names) != count:
        raise GwasInputError(f"{len(names)} {what} names given for {count} columns")
    if len(set(names)) != len(names):
        raise GwasInputError(f"{what} names must be distinct; got {names}")
    return names


def read_chunk(chunk: Chunk, n: int) -> tuple[int, NDArray[np.float32]]:
    """Check one chunk's shape and type; return it as (first index, float32 F-order dosages)."""
    first, dosages = chunk
    array = np.asarray(dosages)
    if array.ndim != 2 or array.shape[0] != n:
        raise GwasInputError(f"a genotype chunk must be samples × variants with {n} rows; got "
                             f"shape {array.shape}")
    if array.dtype != np.float32:
        raise GwasInputError(f"genotype chunks hold float32 dosages (NaN missing); got "
                             f"{array.dtype}: read them with dtype='float32'")
    return int(first), np.asfortranarray(array)


@dataclass
class Design:
    """The samples one analysis uses and its covariates projected to an orthonormal basis.

    ``basis`` spans the intercept and the standardised covariates ``z`` on these samples,
    ``[1, z] = basis @ r``; its first column is the constant 1/√n.
    """

    rows: NDArray[np.intp] | None  # samples used, None for all
    n: int
    kept: list[int]  # covariates kept (constant ones are dropped)
    covariates: F64  # n × c, raw values of the kept covariates
    basis: F64  # n × k, k = 1 + c
    r: F64  # k × k
    corr_inv: F64  # c × c, inverse of the covariates' correlation matrix
    rest32: NDArray[np.float32] = field(init=False)  # basis[:, 1:] in float32
    _local: threading.local = field(init=False, default_factory=threading.local)

    def __post_init__(self) -> None:
        self.rest32 = np.asfortranarray(self.basis[:, 1:], dtype=np.float32)

    # a design travels to a cluster's workers with the fit (enclave/spark/genotypes.py); each
    # process makes its own scratch buffers
    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def k(self) -> int:
        return int(self.basis.shape[1])

    def take(self, dosages: NDArray[np.float32]) -> NDArray[np.float32]:
        return dosages if self.rows is None else np.asfortranarray(dosages[self.rows])

    def scratch(self, columns: int) -> F64:
        """A float64 samples × ``columns`` buffer, reused by each thread (fresh pages cost as
        much as the copy into them)."""
        buffer: F64 | None = getattr(self._local, "buffer", None)
        if buffer is None or buffer.shape[1] < columns:
            buffer = self._local.buffer = np.empty((self.n, columns), order="F")
        return buffer[:, :columns]


def _constant_columns(values: F64) -> NDArray[np.bool_]:
    return np.asarray((values == values[:1]).all(axis=0))


def _drop_lone_samples(mask: NDArray[np.bool_], covariates: F64) -> NDArray[np.bool_]:
    """plink2, quantitative traits: a sample that alone makes a covariate non-constant goes."""
    mask = mask.copy()
    changed = True
    while changed:
        changed = False
        for j in range(covariates.shape[1]):
            idx = np.flatnonzero(mask)
            if idx.size < 3:
                return mask
            col = covariates[idx, j]
            differs = col != col[0]
            count = int(differs.sum())
            if count == 1:
                lone = idx[differs]
            elif count == idx.size - 1 and (col[differs] == col[differs][0]).all():
                lone = idx[:1]
            else:
                continue
            mask[lone] = False
            changed = True
    return mask


def design(mask: NDArray[np.bool_], covariates: F64, names: Sequence[str], *, traits: str,
           quantitative: bool, max_corr: float = MAX_CORR, max_vif: float = MAX_VIF) -> Design:
    """Samples and covariate basis for a set of samples (those with every value present);
    ``traits`` names the traits that use them, for messages."""
    if quantitative and covariates.shape[1]:
        mask = _drop_lone_samples(mask, covariates)
    rows = np.flatnonzero(mask)
    n = rows.size
    kept = [int(j) for j in np.flatnonzero(~_constant_columns(covariates[rows]))] if n else []
    raw = np.ascontiguousarray(covariates[rows][:, kept])
    c = len(kept)
    if n <= c + 2:
        raise GwasInputError(f"only {n} samples have {traits} and every covariate, too few "
                             f"for {c} covariates: drop covariates or check missing values")
    mean = raw.mean(axis=0)
    sd = raw.std(axis=0, ddof=1)
    z = (raw - mean) / sd
    corr = (z.T @ z) / (n - 1)
    _check_covariates(corr, [names[j] for j in kept], max_corr, max_vif)
    basis, r = np.linalg.qr(np.column_stack([np.ones(n), z]))
    if basis[0, 0] < 0:  # so that the first column is +1/√n
        basis, r = -basis, -r
    return Design(rows=None if n == mask.size else rows, n=n, kept=kept,
                  covariates=raw, basis=np.asfortranarray(basis), r=r,
                  corr_inv=np.linalg.inv(corr) if c else np.zeros((0, 0)))


def _check_covariates(corr: F64, names: Sequence[str], max_corr: float, max_vif: float) -> None:
    c = corr.shape[0]
    for i in range(c):
        for j in range(i):
            if abs(corr[i, j]) > max_corr:
                raise GwasInputError(
                    f"covariates {names[j]!r} and {names[i]!r} are correlated "
                    f"({corr[i, j]:.4f}) beyond {max_corr}: drop one of them")
    if not c:
        return
    try:
        vif = np.diag(np.linalg.inv(corr))
    except np.linalg.LinAlgError:
        vif = np.full(c, np.inf)
    worst = int(np.argmax(vif))
    if not np.isfinite(vif[worst]) or vif[worst] > max_vif:
        raise GwasInputError(
            f"covariate {names[worst]!r} is almost a combination of the others (variance "
            f"inflation {vif[worst]:.1f} > {max_vif}): drop it or one of those it depends on")


@dataclass(frozen=True)
class Inputs:
    traits: F64  # n × t
    covariates: F64  # n × c
    trait_names: list[str]
    covariate_names: list[str]

    @property
    def n(self) -> int:
        return int(self.traits.shape[0])

    def describe(self, traits: Sequence[int]) -> str:
        return "trait" + ("s " if len(traits) > 1 else " ") + ", ".join(
            repr(self.trait_names[j]) for j in traits)


def inputs(phenotypes: ArrayLike, covariates: ArrayLike | None,
           trait_names: Sequence[str] | None, covariate_names: Sequence[str] | None) -> Inputs:
    traits = _matrix(phenotypes, None, "phenotypes")
    n = traits.shape[0]
    covs = np.zeros((n, 0)) if covariates is None else _matrix(covariates, n, "covariates")
    return Inputs(traits, covs, _names(trait_names, traits.shape[1], "trait", "trait"),
                  _names(covariate_names, covs.shape[1], "covariate", "covariate"))


def trait_groups(data: Inputs) -> list[tuple[NDArray[np.bool_], list[int]]]:
    """Traits grouped by the samples they use (trait and every covariate present)."""
    covariates_ok = np.isfinite(data.covariates).all(axis=1)
    groups: dict[bytes, tuple[NDArray[np.bool_], list[int]]] = {}
    for j in range(data.traits.shape[1]):
        mask = covariates_ok & np.isfinite(data.traits[:, j])
        groups.setdefault(np.packbits(mask).tobytes(), (mask, []))[1].append(j)
    return list(groups.values())


# --------------------------------------------------------------------------------------------
# per-chunk statistics shared by linear and logistic regression


@dataclass
class VariantSums:
    """Per variant, on the samples the design uses minus those missing the variant's call."""

    n: NDArray[np.int64]  # samples used
    total: F64  # Σ dosage
    squares: F64  # Σ dosage²
    products: F64  # (1 + t) × v: Σ dosage × each column of the design's ``extra``
    proj: F64  # k × v: basis' dosage (0 for missing calls)
    downdate: F64 | None  # v × k × k: basis rows of missing samples, Σ q qᵀ (None: none)
    missing: list[NDArray[np.intp]]  # per variant, the missing samples (empty arrays if none)


def variant_sums(d: Design, dosages: NDArray[np.float32], extra: F64) -> VariantSums:
    """Cross-products of each variant's dosages with the covariate basis and ``extra``.

    The projections on the covariates run in float32: they are taken on a basis orthogonal to
    the mean, so they are small beside the variance they are subtracted from (relative error
    ~1e-9, ≲1e-7 when covariates explain half the genotype's variance). Sums, squares and
    products with ``extra`` (the traits) run in float64, so that counts are exact; the
    float64 copy is made a block of columns at a time into a buffer that is reused. Missing
    calls count as 0 in these sums (a float32 copy of the variants that have any), and the
    basis rows of the samples lacking each such variant are summed for the downdate.
    """
    g32 = d.take(dosages)
    v = g32.shape[1]
    with np.errstate(invalid="ignore"):
        lacks = np.isnan(g32.sum(axis=0))
    n = np.full(v, d.n, dtype=np.int64)
    missing: list[NDArray[np.intp]] = [_NONE] * v
    downdate = np.zeros((v, d.k, d.k)) if lacks.any() else None
    proj = np.zeros((d.k, v))
    if d.k > 1 and not lacks.all():
        proj[1:] = d.rest32.T @ g32  # NaN for variants with missing calls: redone below
    products = np.empty((extra.shape[1], v))
    squares = np.empty(v)
    width = max(1, _BLOCK_BYTES // (8 * d.n))
    for start in range(0, v, width):
        cols = slice(start, min(v, start + width))
        block = d.scratch(cols.stop - cols.start)
        np.copyto(block, g32[:, cols])
        at = np.flatnonzero(lacks[cols])
        if at.size:
            sub = block if at.size == block.shape[1] else block[:, at]
            absent = np.isnan(sub)
            sub[absent] = 0.0
            if sub is not block:
                block[:, at] = sub
            col, row = np.nonzero(absent.T)  # by variant, then sample
            bounds = np.searchsorted(col, np.arange(at.size + 1))
            for i, j in enumerate((start + at).tolist()):
                rows = row[bounds[i]:bounds[i + 1]]
                missing[j] = rows
                n[j] -= rows.size
                q = d.basis[rows]
                downdate[j] = q.T @ q  # type: ignore[index]
        products[:, cols] = extra.T @ block  # extra's first column is 1: Σ dosage
        squares[cols] = np.einsum("ij,ij->j", block, block)
    if lacks.any():
        _exact_projections(d, g32, np.flatnonzero(lacks), proj)
    total = products[0]
    complete = ~lacks
    proj[0, complete] = total[complete] / np.sqrt(d.n)  # basis[:, 0] is 1/√n
    return VariantSums(n, total, squares, products, proj, downdate, missing)


def _exact_projections(d: Design, g32: NDArray[np.float32], at: NDArray[np.intp],
                       proj: F64) -> None:
    """``proj[:, at]``, the basis' dosages of the variants with missing calls (as 0), exactly,
    in float64: the downdate subtracts from these, so an error here is not small beside what
    remains. A slab of samples at a time, every such variant at once: the basis (samples × k)
    is then read once a chunk; taken a block of a few columns at a time, as the other sums
    are, it was read again for every block (at 200,000 samples, a block is two variants), and
    most of a chunk with missing calls went on reading it."""
    rows = max(1, _BLOCK_BYTES // (8 * at.size))
    out = np.zeros((d.k, at.size))
    every = at.size == g32.shape[1]
    for r in range(0, d.n, rows):
        slab = (g32[r:r + rows] if every else g32[r:r + rows][:, at]).astype(np.float64)
        np.nan_to_num(slab, copy=False, nan=0.0)
        out += d.basis[r:r + rows].T @ slab
    proj[:, at] = out


_BLOCK_BYTES: Final = 1 << 22  # float64 copies of dosages are made this much at a time
_NONE: Final = np.zeros(0, dtype=np.intp)


def check_variants(d: Design, s: VariantSums, max_corr: float, max_vif: float) -> NDArray[np.int8]:
    """plink2's per-variant refusals, as codes into ERRORS (0: fit it)."""
    v = s.n.size
    c = d.k - 1
    err = np.zeros(v, dtype=np.int8)
    nf = s.n.astype(np.float64)
    var_ss = s.squares - s.total**2 / nf
    err[var_ss <= 1e-12 * np.maximum(s.squares, 1.0)] = ERROR_CODE[CONSTANT_GENOTYPE]
    err[s.n <= d.k + 1] = ERROR_CODE[TOO_FEW_SAMPLES]
    if c == 0:
        return err
    # On each variant's samples: sums and centred cross-products of the standardised
    # covariates z ([1, z] = basis r), and of z with the genotype.
    zsum = np.zeros((v, c))
    zss = np.full((v, c), d.n - 1.0)
    corr_inv = np.broadcast_to(d.corr_inv, (v, c, c))
    if s.downdate is not None:
        corr_inv = corr_inv.copy()
        for j in np.flatnonzero(s.n < d.n):
            cross = d.r.T @ (np.eye(d.k) - s.downdate[j]) @ d.r
            zsum[j] = cross[0, 1:]
            css = cross[1:, 1:] - np.outer(zsum[j], zsum[j]) / nf[j]
            zss[j] = np.diag(css)
            corr = css / np.sqrt(np.outer(zss[j], zss[j]))
            if c > 1 and np.abs(corr[np.tril_indices(c, -1)]).max() > max_corr:
                err[j] = err[j] or ERROR_CODE[CORR_TOO_HIGH]
                continue
            try:
                corr_inv[j] = np.linalg.inv(corr)
            except np.linalg.LinAlgError:
                err[j] = err[j] or ERROR_CODE[VIF_INFINITE]
    zg = (d.r[:, 1:].T @ s.proj).T  # v × c: Σ z g
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (zg - zsum * (s.total / nf)[:, None]) / np.sqrt(zss * var_ss[:, None])
        b = np.einsum("vij,vj->vi", corr_inv, r)
        schur = 1.0 - np.einsum("vi,vi->v", r, b)  # 1 / the genotype's VIF
        vif_cov = np.einsum("vii->vi", corr_inv) + b**2 / schur[:, None]
    ok = err == 0
    for code, hit in ((CORR_TOO_HIGH, (np.abs(r) > max_corr).any(axis=1)),
                      (VIF_INFINITE, np.abs(schur) < _SINGULAR),
                      (VIF_TOO_HIGH, (1.0 / schur > max_vif) | (vif_cov > max_vif).any(axis=1))):
        hit &= ok
        err[hit] = ERROR_CODE[code]
        ok &= ~hit
    return err


# --------------------------------------------------------------------------------------------
# linear regression


@dataclass
class _LinearGroup:
    design: Design
    traits: list[int]
    extra: F64  # n × (1 + t): [1, residualised traits]
    yy: F64  # t: residual sum of squares of each trait on the covariates

    @classmethod
    def build(cls, d: Design, y: F64, traits: list[int]) -> _LinearGroup:
        ys = y if d.rows is None else y[d.rows]
        resid = ys - d.basis @ (d.basis.T @ ys)
        return cls(d, traits, np.asfortranarray(np.column_stack([np.ones(d.n), resid])),
                   np.einsum("ij,ij->j", resid, resid))


def _linear_block(group: _LinearGroup, first: int, dosages: NDArray[np.float32],
                  max_corr: float, max_vif: float) -> Block:
    d = group.design
    s = variant_sums(d, dosages, group.extra)
    err = check_variants(d, s, max_corr, max_vif)
    v, t = s.n.size, len(group.traits)
    gy = s.products[1:].T  # v × t: Σ g × residualised trait
    yy = np.broadcast_to(group.yy, (v, t)).copy()
    u = s.proj
    gpg = s.squares - np.einsum("kv,kv->v", u, u)
    gpy = gy.copy()
    if s.downdate is not None:
        resid = group.extra[:, 1:]
        for j in np.flatnonzero(s.n < d.n):
            rows = s.missing[j]
            b = np.eye(d.k) - s.downdate[j]
            w = -(d.basis[rows].T @ resid[rows])  # k × t: basisᵀ resid on the samples kept
            sol = np.linalg.solve(b, np.column_stack([u[:, j], w]))
            gpg[j] = s.squares[j] - u[:, j] @ sol[:, 0]
            gpy[j] = gy[j] - w.T @ sol[:, 0]
            yy[j] = group.yy - np.einsum("ij,ij->j", resid[rows], resid[rows]) - np.einsum(
                "kt,kt->t", w, sol[:, 1:])
    df = (s.n - d.k - 1).astype(np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = gpy / gpg[:, None]
        rss = yy - beta * gpy
        sigma2 = rss / df
        se = np.sqrt(sigma2 / gpg[:, None])
        tstat = beta / se
    errs = np.repeat(err[:, None], t, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        errs[(errs == 0) & ~(sigma2 / gpg[:, None] >= 1e-20)] = ERROR_CODE[INVALID_RESULT]
    with np.errstate(invalid="ignore"):
        p = 2.0 * special.stdtr(np.broadcast_to(df, tstat.shape), -np.abs(tstat))
    bad = errs != 0
    for a in (beta, se, tstat, p):
        a[bad] = np.nan
    return {
        "variant": np.repeat(first + np.arange(v, dtype=np.int64), t),
        "trait_idx": np.tile(np.asarray(group.traits, dtype=np.int64), v),
        "n": np.repeat(s.n, t),
        "alt_count": np.repeat(s.total, t),
        "beta": beta.ravel(), "se": se.ravel(), "stat": tstat.ravel(), "p": p.ravel(),
        "error": errs.ravel(),
    }


def linear_gwas(chunks: Iterable[Chunk] | Distributed, phenotypes: ArrayLike,
                covariates: ArrayLike | None = None, *,
                trait_names: Sequence[str] | None = None,
                covariate_names: Sequence[str] | None = None,
                max_corr: float = MAX_CORR, max_vif: float = MAX_VIF,
                threads: int = 1) -> pl.DataFrame:
    """Least-squares association of each variant with each quantitative trait.

    ``phenotypes`` is samples × traits (or one trait as a vector), ``covariates`` samples ×
    covariates, NaN where missing, rows in the genotypes' sample order; the intercept is
    added here. Returns one row per variant and trait, in variant order, traits in the order
    given: ``variant`` (index in the genotypes), ``trait``, ``test`` ("linear"), ``n``
    (samples used), ``alt_count`` (Σ ALT dosage over them), ``alt_freq``, ``mac`` (minor
    allele count), ``beta``, ``se``, ``stat`` (t), ``p`` and ``error`` (plink2's ERRCODE, or
    null; beta to p are null when it is set). ``threads`` > 1 splits each chunk's variants
    between threads: then let BLAS run one thread each (OPENBLAS_NUM_THREADS=1).
    ``chunks`` on a cluster (:class:`Distributed`) are fitted there.
    """
    data = inputs(phenotypes, covariates, trait_names, covariate_names)
    groups = [
        _LinearGroup.build(design(mask, data.covariates, data.covariate_names,
                                  traits=data.describe(traits), quantitative=True,
                                  max_corr=max_corr, max_vif=max_vif),
                           data.traits[:, traits], traits)
        for mask, traits in trait_groups(data)
    ]

    def fit(first: int, dosages: NDArray[np.float32]) -> list[Block]:
        return [_linear_block(group, first, dosages, max_corr, max_vif) for group in groups]

    blocks = fitted(fit, chunks, data.n, threads)
    return results_frame(blocks, data.trait_names, test="linear")


Block = dict[str, NDArray[np.generic]]
Fit = Callable[[int, NDArray[np.float32]], list[Block]]
"""Fits one chunk ``(first, dosages)``: a block of result columns per trait group."""


class Distributed(abc.ABC):
    """Genotype chunks held on a cluster: each chunk is fitted where it is, by ``fit``
    (a closure over the design and traits, shipped to the workers), and only the result
    columns come back. The same fit as on one machine, so the same statistics."""

    @abc.abstractmethod
    def fit_each(self, fit: Fit, n: int) -> list[Block]:
        """``fit`` on every chunk (``n`` samples each, checked by :func:`read_chunk`)."""


def fitted(fit: Fit, chunks: Iterable[Chunk] | Distributed, n: int, threads: int
           ) -> list[Block]:
    """``fit`` on each chunk: where the chunks are held when they are on a cluster, here
    (in ``threads`` threads) otherwise."""
    if isinstance(chunks, Distributed):
        return chunks.fit_each(fit, n)
    return in_parallel(fit, checked_chunks(chunks, n), threads)


def only_variants(chunks: Iterable[Chunk], wanted: NDArray[np.int64]) -> Iterator[Chunk]:
    """Each chunk cut to the ``wanted`` variants, re-indexed as runs of consecutive ones (the
    engine reports a chunk's variants by their position from its first)."""
    for first, dosages in chunks:
        m = dosages.shape[1]
        keep = np.isin(np.arange(first, first + m), wanted)
        if keep.all():
            yield first, dosages
            continue
        at = np.flatnonzero(keep)
        if at.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(at) != 1) + 1
        for run in np.split(at, breaks):
            yield first + int(run[0]), np.asfortranarray(dosages[:, run[0]:run[-1] + 1])


def in_parallel(fit: Fit, chunks: Iterable[Chunk], threads: int) -> list[Block]:
    """``fit`` on each chunk, or on ``threads`` slices of its variants at once."""
    if threads <= 1:
        return [block for first, dosages in chunks for block in fit(first, dosages)]
    blocks: list[Block] = []
    with ThreadPoolExecutor(threads) as pool:
        for first, dosages in chunks:
            bounds = np.linspace(0, dosages.shape[1], threads + 1).astype(int).tolist()
            parts = [pool.submit(fit, first + a, dosages[:, a:b])
                     for a, b in itertools.pairwise(bounds) if b > a]
            blocks += [block for part in parts for block in part.result()]
    return blocks


def checked_chunks(chunks: Iterable[Chunk], n: int) -> Iterator[Chunk]:
    for chunk in chunks:
        yield read_chunk(chunk, n)


def results_frame(blocks: Sequence[Block], trait_names: Sequence[str],
                  test: str | NDArray[np.generic], extra: Sequence[str] = ()) -> pl.DataFrame:
    """One frame from per-chunk columns, sorted by variant then trait."""
    if blocks:
        cols = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    else:
        cols = {key: np.zeros(0) for key in ("variant", "trait_idx", "n", "alt_count", "beta",
                                             "se", "stat", "p", "error", *extra)}
    order = np.lexsort((cols["trait_idx"], cols["variant"]))
    cols = {key: value[order] for key, value in cols.items()}
    n = cols["n"].astype(np.int64)
    alt = cols["alt_count"].astype(np.float64)
    alleles = 2.0 * n
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = np.where(n > 0, alt / alleles, np.nan)
    tests = np.full(n.size, test) if isinstance(test, str) else np.asarray(test)[order]
    errors = pl.Series(cols["error"].astype(np.int8)).replace_strict(
        dict(enumerate(ERRORS)), return_dtype=pl.String)
    frame = pl.DataFrame({
        "variant": cols["variant"].astype(np.int64),
        "trait": np.asarray(trait_names, dtype=str)[cols["trait_idx"].astype(np.int64)],
        "test": tests.astype(str),
        "n": n,
        "alt_count": alt,
        "alt_freq": freq,
        "mac": np.minimum(alt, alleles - alt),
        **{key: cols[key] for key in extra},
        "beta": cols["beta"], "se": cols["se"], "stat": cols["stat"], "p": cols["p"],
        "error": errors,
    }, schema_overrides={"trait": pl.String, "test": pl.String, "error": pl.String})
    return frame.with_columns(pl.col("alt_freq", "mac", "beta", "se", "stat", "p").fill_nan(None))


def genomic_inflation(p_values: ArrayLike | pl.Series) -> float:
    """λ_GC: the median χ² (1 df) implied by the p-values over its null median 0.4549."""
    p = np.asarray(p_values.to_numpy() if isinstance(p_values, pl.Series) else p_values,
                   dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size == 0:
        raise GwasInputError("no p-values to compute λ from: every test failed or none ran")
    return float(np.median(special.chdtri(1, p)) / CHI2_MEDIAN)
