"""A GWAS inside the enclave: a project's dataset definition against the sealed genotypes.

The definition gives each participant (by project pseudonym, ``pid``) their traits and
covariates; the project's pseudonym map ties pids to the store's eids, and so to the genotype
set's samples. Nothing here leaves: :class:`GwasRun` holds every variant's statistics and who
was analysed, for the genetics rules (``release.py``) and the output check to decide what may.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
from threadpoolctl import threadpool_limits

from strongroom import sets
from strongroom.enclave import margin, winsor
from strongroom.enclave.analyses.frame import check_schema, prepare
from strongroom.enclave.analyses.spec import GwasSpec
from strongroom.enclave.results import FloatArray, PidArray
from strongroom.enclave.spans import column_basis
from strongroom.errors import Invalid, reading_data
from strongroom.genomics.gwas import (
    Chunk,
    Distributed,
    genomic_inflation,
    linear_gwas,
    only_variants,
)
from strongroom.genomics.logistic import logistic_gwas
from strongroom.genomics.store import Genotypes, GenotypeSet

PID, EID = "pid", "eid"
THREADS = max(1, min(2, os.cpu_count() or 1))  # a GWAS uses the machine's two cores
VARIANT_COLUMNS = ("chrom", "pos", "id", "ref", "alt")


@dataclass(frozen=True)
class Spread:
    """How far one participant can move a trait's per-variant figures: the largest residual
    (after the covariates) and the residual variance, for release precision (release.py)."""

    largest: float
    variance: float
    df: int  # residual degrees of freedom of the fit without the variant
    # who the fit used and their residuals: compared, as a vector, with every release's (two
    # GWAS whose residuals differ for a few people differ by those people's genotypes)
    residuals: tuple[PidArray, FloatArray] | None = None


@dataclass
class GwasRun:
    """A GWAS's full results, custodian-side only."""

    spec: GwasSpec
    results: pl.DataFrame  # one row per tested variant and trait; variant columns, cohort_freq
    groups: dict[str, PidArray]  # per trait: the pids analysed (sorted)
    vectors: dict[str, tuple[PidArray, FloatArray]]  # what the fit read, per column
    genotyped: int  # samples in the genotype set (the membership rule's reference size)
    tested: int  # variants tested (after the researcher's own MAC and INFO filters)
    covariates: list[str]  # as fitted, dummies and principal components included
    spread: dict[str, Spread] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def inflation(self, trait: str) -> float | None:
        """λ_GC of a trait, or None when no variant gave a p-value."""
        p = self.results.filter(pl.col("trait") == trait)["p"].drop_nulls()
        return genomic_inflation(p) if p.len() else None


class GenotypeCluster(Protocol):
    """A cluster the association runs on (enclave/spark/genotypes.py): it holds a genotype
    set under its own keys and fits each chunk where it is."""

    def chunks(self, genotypes: Genotypes, held: GenotypeSet, rows: npt.NDArray[np.intp],
               wanted: npt.NDArray[np.int64]) -> Distributed:
        """The set's chunks, the samples at ``rows`` (in order) and the ``wanted`` variants."""
        ...


def run_gwas(spec: GwasSpec, frame: pl.DataFrame, pseudonyms: pl.DataFrame,
             genotypes: Genotypes, k: int, max_share: float = 0.5,
             max_leverage: float = 0.125, cluster: GenotypeCluster | None = None) -> GwasRun:
    """Fit ``spec`` over the definition ``frame`` (``pid`` and the columns it names) for the
    participants of ``pseudonyms`` (``eid``, ``pid``) who are genotyped; ``k`` is the project's
    threshold, below which a categorical covariate's level joins its reference, at which
    quantitative traits are winsorised, and which, with ``max_share``, each trait's residual
    variation must be spread over; ``max_leverage`` bounds what the researcher's covariates
    may single out (:func:`_spread`). ``cluster``: where the association runs when the
    enclave's engine is a cluster (principal components are taken here, from the store)."""
    check_schema(frame, spec.reads())
    held = genotypes.require_current()
    with reading_data():
        used = prepare(frame, spec.reads())
        if used[PID].is_duplicated().any():
            raise Invalid("a GWAS reads one row per participant: aggregate the definition by "
                          "pid first (GROUP BY pid)")
        rows, used = _genotyped(used, pseudonyms, genotypes.samples(held))
        if used.height < max(k, 2):
            raise Invalid("too few of the definition's participants are genotyped for a GWAS")
        traits = _traits(used, spec)
        covariates, names = _covariates(used, spec, k)
        own = covariates.shape[1]  # the researcher's; principal components come after
        tested = _tested(genotypes.variants(held), spec)

        def chunks(rows: npt.NDArray[np.intp] = rows) -> Iterator[Chunk]:
            yield from ahead(genotypes.chunks(held, rows))

        if spec.principal_components:
            from strongroom.genomics.pca import genotype_pcs

            components = genotype_pcs(chunks, spec.principal_components).scores
            covariates = np.hstack([covariates, components])
            names += [f"PC{i + 1}" for i in range(components.shape[1])]
        pids = used[PID].to_numpy().astype(np.int64)
        if spec.model == "linear" and k >= 1:  # no few participants set a trait's range
            traits = np.column_stack([winsor.clip_rows(traits[:, j], pids, k)
                                      for j in range(traits.shape[1])])
        spread = {t: _spread(traits[:, j], covariates, pids, k, max_share, spec, t, own,
                             max_leverage) for j, t in enumerate(spec.traits)}
        if spec.model == "linear":  # after the spread checks: their one reason covers a trait
            _not_two_valued(traits, spec, k, max_share, max_leverage)
        fit: Callable[..., pl.DataFrame] = (logistic_gwas if spec.model == "logistic"
                                            else linear_gwas)
        # the engine splits each chunk's variants between threads, each with one BLAS thread
        wanted = tested["index"].to_numpy()
        # the samples no trait uses are left out as each chunk is decoded, not gathered out
        # of it again by the engine (a trait's design then takes no copy of its rows)
        analysed = np.isfinite(covariates).all(axis=1) & np.isfinite(traits).any(axis=1)
        source = (only_variants(chunks(rows[analysed]), wanted) if cluster is None
                  else cluster.chunks(genotypes, held, rows[analysed], wanted))
        with threadpool_limits(limits=1, user_api="blas"):
            raw = fit(source, traits[analysed], covariates[analysed], trait_names=spec.traits,
                      covariate_names=names, threads=THREADS)
    results = raw.join(tested.rename({"index": "variant"}), on="variant", how="inner")
    groups = {t: np.sort(pids[np.isfinite(traits[:, j]) & np.isfinite(covariates).all(axis=1)])
              for j, t in enumerate(spec.traits)}  # as the engine drops them
    vectors = {}
    for c in spec.reads():  # what the fit read: the traits as winsorised
        name = c
        if c in spec.traits:
            values = traits[:, spec.traits.index(c)]
        elif used.schema[c].is_numeric() or used.schema[c] == pl.Boolean:
            values = used[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
            name = f"{c} (covariate)"  # compared with covariates only (outputs/contributions)
        else:
            continue
        present = np.isfinite(values)
        vectors[name] = (pids[present], values[present])
    for trait, fitted in spread.items():
        if fitted.residuals is not None:
            vectors[f"{trait} (residual)"] = fitted.residuals
    return GwasRun(spec, results, groups, vectors, held.samples, tested.height, names, spread)


def _spread(y: FloatArray, covariates: FloatArray, pids: PidArray, k: int, max_share: float,
            spec: GwasSpec, name: str, own: int, max_leverage: float) -> Spread:
    """Refuse a trait whose variation, once the covariates are accounted for, rests on fewer
    than k participants, or of which k participants hold more than ``max_share``: each
    variant's effect is Σ g̃·r / Σ g̃², so a residual r that is zero but for a few gives those
    few's genotypes and values (a trait that is 0 but for the target, or a covariate's exact
    copy but for them). A 0/1 trait needs k cases and k controls. Both at the keyed line.

    And refuse covariates that single a few participants out: the researcher's own (the
    first ``own`` columns; principal components come from the genotypes) may give no one a
    leverage above ``max_leverage``. A covariate that is 1 for the target alone, however
    disguised (``z + 10000·[target]``), fits their trait exactly and takes them out of every
    effect, and the same GWAS without it then differs by their genotypes."""
    use = np.isfinite(y) & np.isfinite(covariates).all(axis=1)
    n = int(use.sum())
    if own and leverage(np.column_stack([np.ones(n), covariates[use][:, :own]])).max() \
            > max_leverage:
        raise Invalid(trait_refused(spec, k, max_share, max_leverage))
    if spec.model == "logistic":
        cases = int(y[use].sum())
        for count, what in ((cases, "cases"), (n - cases, "controls")):
            if margin.short(count, k, "gwas", name, what):
                raise Invalid(trait_refused(spec, k, max_share, max_leverage))
    design = np.column_stack([np.ones(n), covariates[use]])
    fitted, *_ = np.linalg.lstsq(design, y[use], rcond=None)
    r = y[use] - design @ fitted
    squares = np.sort(np.square(r))[::-1]
    total = float(squares.sum())
    moving = int((squares > 1e-18 * max(total, 1e-300)).sum()) if total > 0 else 0
    top = float(squares[:margin.reach(k, "gwas share", name)].sum())
    if margin.short(moving, k, "gwas", name, "varies") or top > max_share * total:
        raise Invalid(trait_refused(spec, k, max_share, max_leverage))
    df = n - design.shape[1] - 1
    return Spread(float(np.sqrt(squares[0])), total / max(df, 1), df, (pids[use], r))


def trait_refused(spec: GwasSpec, k: int, max_share: float, max_leverage: float) -> str:
    """One reason for every trait the data refuse, naming neither the trait nor the rule:
    which of several traits failed first, and which rule it failed, are answers about the
    data (the red team: a refusal must say one bit, not which)."""
    # no apostrophe: the output check's reasons quote text between two
    rules = (f" (each rests on at least {k} participants, none of {k} holding more than "
             f"{max_share:.0%} of its variation; the own row of no participant fixes more "
             f"than {max_leverage:.0%} of their fitted value; a case-control trait has {k} "
             "cases and controls)")
    which = "the trait" if len(spec.traits) == 1 else f"one of the {len(spec.traits)} traits"
    return (f"{which} cannot be fitted on these rows: its covariates single out a few "
            "participants, or it has too few cases or controls, or its variation rests on "
            "too few participants, or, fitted linear, it takes two values (fit a 0/1 trait "
            "as case-control, model logistic, whose cases and controls are held to the "
            f"membership bound as groups){rules}. Which trait and which rule are answers "
            "about the data, so neither is said: use covariates as measured and categories "
            "held by many, and analyse traits as measured")


def gwas_refused(spec: GwasSpec, k: int, max_share: float, max_leverage: float) -> str:
    """The one reason of every GWAS refused once it has read the data, whatever refused it
    (the output service gives it in place of the run's own): a trait the rules refuse, a
    case-control trait holding other values than 0 and 1, a definition with a participant's
    rows repeated, too few genotyped, an output too large to keep, a failure of the platform
    while it ran. Each of those can hang on one participant's value, so which one it was
    would make one rationed refusal say more than one bit (the observables red team, three
    outcomes in one answer: tests/integration/test_redteam_observables.py)."""
    return (f"{trait_refused(spec, k, max_share, max_leverage)}. Or else the GWAS could not "
            "be made from this definition once it was read: a case-control trait holds other "
            "values than 0 and 1, a participant has more than one row (GROUP BY pid), too few "
            "participants are genotyped, its output is larger than an output may be (ask for "
            "fewer variants, with min_info or min_mac, or fewer traits), or the platform "
            "failed while it ran; which of these it was is an answer about the data too, so "
            "it is not said either")


def _not_two_valued(traits: FloatArray, spec: GwasSpec, k: int, max_share: float,
                    max_leverage: float) -> None:
    """Refuse a two-valued trait fitted by least squares: its cases' and controls' frequencies
    come back from the effects unbounded; a logistic GWAS bounds each side as a group."""
    for values in traits.T:
        if sets.distinct(values[np.isfinite(values)]).size == 2:
            raise Invalid(trait_refused(spec, k, max_share, max_leverage))


def leverage(design: FloatArray) -> FloatArray:
    """Each row's leverage in a least-squares fit on ``design``: the diagonal of its hat
    matrix, the share of a participant's own value in their fitted value (1/m for a
    combination of covariates that only m participants share)."""
    q = column_basis(design)
    h: FloatArray = np.einsum("ij,ij->i", q, q)
    return h


def _genotyped(used: pl.DataFrame, pseudonyms: pl.DataFrame,
               samples: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.intp], pl.DataFrame]:
    """The definition's genotyped participants, in the genotype set's order, and the rows of
    the set they are at."""
    at = pl.DataFrame({EID: samples, "row": np.arange(samples.size)})
    joined = (used.join(pseudonyms.select(EID, PID), on=PID, how="inner")
              .join(at, on=EID, how="inner").sort("row"))
    return joined["row"].to_numpy().astype(np.intp), joined.drop(EID, "row")


def _traits(used: pl.DataFrame, spec: GwasSpec) -> FloatArray:
    columns = []
    for name in spec.traits:
        dtype = used.schema[name]
        if not (dtype.is_numeric() or dtype == pl.Boolean):
            raise Invalid(f"trait {name!r} is not numeric; a GWAS trait is a measurement or a "
                          "0/1 flag")
        columns.append(used[name].cast(pl.Float64).fill_null(np.nan).to_numpy())
    traits = np.column_stack(columns)
    if spec.model == "logistic":
        present = traits[np.isfinite(traits)]
        if not np.isin(present, (0.0, 1.0)).all():
            raise Invalid(f"a logistic GWAS's trait must be 0/1 (or true/false); "
                          f"{spec.traits[0]!r} holds other values")
    return traits


def _covariates(used: pl.DataFrame, spec: GwasSpec, k: int) -> tuple[FloatArray, list[str]]:
    """Numeric covariates as they are; each categorical one as indicators of its levels but
    the reference (its most common level), a level held by fewer than ``k`` joining it."""
    columns: list[FloatArray] = []
    names: list[str] = []
    for name in spec.covariates:
        series = used[name]
        if name in spec.categorical:
            text = series.cast(pl.String)
            counts = text.drop_nulls().value_counts(sort=True)
            levels = [v for v, c in counts.iter_rows() if c >= max(k, 1)][1:]
            for level in sorted(levels):
                indicator = (text == level).cast(pl.Float64).to_numpy().copy()
                indicator[text.is_null().to_numpy()] = np.nan
                columns.append(indicator)
                names.append(f"{name}={level}")
        elif series.dtype.is_numeric() or series.dtype == pl.Boolean:
            columns.append(series.cast(pl.Float64).fill_null(np.nan).to_numpy().copy())
            names.append(name)
        else:
            raise Invalid(f"covariate {name!r} is text: list it in categorical too")
    if not columns:
        return np.zeros((used.height, 0)), names
    return np.column_stack(columns), names


def _tested(variants: pl.DataFrame, spec: GwasSpec) -> pl.DataFrame:
    """The variants the researcher asked to test (their INFO filter), with the cohort's ALT
    frequency (the membership rule's reference) and their index in the set."""
    table = variants.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
    if spec.min_info > 0:
        table = table.filter(pl.col("info") >= spec.min_info)
    return table.select("index", *VARIANT_COLUMNS, "info", cohort_freq="alt_freq")


def ahead(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """``chunks``, each decrypted and decoded in a thread while the one before is fitted:
    NumPy's decoding lets the other threads run, so the two overlap on two cores."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="genotypes") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk
