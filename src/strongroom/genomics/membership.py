"""How far released allele frequencies let an attacker tell who was in the group, and which
variants may be released so that stays below a bound.

Homer et al. (2008, PLoS Genet 4:e1000167) showed that someone holding a person's genotype and a
reference panel's allele frequencies can tell from a group's per-variant frequencies whether the
person was in the group. Sankararaman, Obozinski, Jordan & Halperin (2009, Nat Genet 41:965,
"Genomic privacy and limits of individual detection in a pool") gave the most powerful such test,
the likelihood-ratio (LR) test, and its power: at false-positive rate α it grows with m/n
(variants released / people in the group). Strongroom releases only the variants that keep that
power at or below a bound, and withholds (never perturbs) the rest.

The attacker modelled: holds the person's genotype, the released group frequencies ``p_pool`` and
a reference population's frequencies ``p_ref``, and knows ``n``. The best reference an attacker
can have is the population's true frequencies, so Strongroom should pass the best estimate of
those it holds: the frequencies of the cohort *outside* the group (:func:`reference_outside`).
The whole cohort's frequencies include the group and are pulled towards it by n/N, which makes
the computed power slightly too low (by a factor of about (1 − n/N)² in the separation); they
are an acceptable proxy only when the group is a small share of the cohort. A noisier reference
errs the safe way: its noise adds to the computed separation (as much as to the variance), so
the computed power is above that of an attacker holding the true frequencies.

Variants are treated as independent, which is conservative under linkage disequilibrium: the LR
statistic's separation is a sum, which LD leaves as it is, while the positive correlation of
linked variants adds to its variance; and linked variants carry partly the same information,
so even an attacker who models the LD has fewer than m independent variants' worth.

Genotypes follow the package convention: dosage = ALT count 0–2, NaN missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyroaring import BitMap
from scipy.stats import norm

DEFAULT_ALPHA = 1e-3
OVERLAP = 0.5  # an earlier group sharing this share of a new one's members is charged to it
SKEW_LIMIT = 0.5  # largest |skewness| the third-cumulant correction is applied with


class MembershipInputError(ValueError):
    """The frequencies, sizes or bounds given to the membership rule cannot be used."""


@dataclass(frozen=True)
class LRTerms:
    """Per-variant moments of the LR statistic (Sankararaman et al. 2009) for one person.

    ``separation`` is E[L | member] − E[L | not member]; ``var_null`` and ``var_member`` its
    variance under each hypothesis, ``third_null`` and ``third_member`` its third cumulant. All
    add over independent variants.
    """

    separation: NDArray[np.float64]
    var_null: NDArray[np.float64]
    var_member: NDArray[np.float64]
    third_null: NDArray[np.float64]
    third_member: NDArray[np.float64]


@dataclass(frozen=True)
class Spent:
    """What releases have already spent for a group: sums of the LR statistic's per-variant
    moments (:class:`LRTerms`) over the variants released. They add, so earlier releases carry
    over."""

    separation: float = 0.0
    var_null: float = 0.0
    var_member: float = 0.0
    third_null: float = 0.0
    third_member: float = 0.0
    variants: int = 0

    def scaled(self, share: float) -> Spent:
        """What a group holding ``share`` of this spend's people is charged of it."""
        return Spent(self.separation * share, self.var_null * share, self.var_member * share,
                     self.third_null * share, self.third_member * share,
                     round(self.variants * share))

    def __add__(self, other: Spent) -> Spent:
        return Spent(
            self.separation + other.separation,
            self.var_null + other.var_null,
            self.var_member + other.var_member,
            self.third_null + other.third_null,
            self.third_member + other.third_member,
            self.variants + other.variants,
        )


@dataclass(frozen=True)
class Selection:
    """Which variants may be released, in file order.

    ``released`` is the mask; ``power`` the LR test's power on the released variants together
    with anything ``spent`` before; ``spent`` the running total to hand to the next release for
    the same group; ``reasons`` maps each withheld variant's index to why.
    """

    released: NDArray[np.bool_]
    power: float
    spent: Spent
    reasons: dict[int, str] = field(repr=False)

    @property
    def withheld(self) -> int:
        return int((~self.released).sum())


def lr_terms(
    n: int, p_pool: ArrayLike, p_ref: ArrayLike, *, floor: float | None = None
) -> LRTerms:
    """Per-variant moments of Sankararaman's LR statistic.

    For a diploid genotype g (ALT count) the statistic is (Sankararaman et al. 2009, main text,
    the LR statistic; Supplementary Methods, its distribution under the null and alternative)

        L = Σ_j  g_j log(p̂_j / p_j) + (2 − g_j) log((1 − p̂_j) / (1 − p_j))
          = Σ_j  2 b_j + g_j (a_j − b_j),   a_j = log(p̂_j/p_j),  b_j = log((1−p̂_j)/(1−p_j)),

    with p̂ the group's frequencies and p the reference's. A non-member's genotype is
    Binomial(2, p), a member's (a random one of the group) Binomial(2, p̂), so per variant

        E[L|member] − E[L|non-member] = 2 (p̂ − p)(a − b)
        Var[L|non-member] = 2 p (1 − p)(a − b)²,   Var[L|member] = 2 p̂ (1 − p̂)(a − b)²,

    and third cumulants 2 p (1 − p)(1 − 2p)(a − b)³ and 2 p̂ (1 − p̂)(1 − 2p̂)(a − b)³. For
    p̂ − p of sampling size, separation and variances are each about 1/n (the paper's m/n
    result). Frequencies are clipped to [floor, 1 − floor] first, floor = 1/(4n) (half an
    allele of the group) unless given, so a variant absent from the group or the reference
    costs a finite, large amount.
    """
    pool, ref = _frequencies(p_pool, p_ref)
    _check_n(n)
    eps = _floor(n, floor)
    pool = np.clip(pool, eps, 1 - eps)
    ref = np.clip(ref, eps, 1 - eps)
    # log-odds difference = a − b, the weight of each ALT allele in L
    weight = (np.log(pool) - np.log1p(-pool)) - (np.log(ref) - np.log1p(-ref))
    null_var, member_var = 2 * ref * (1 - ref), 2 * pool * (1 - pool)
    return LRTerms(
        separation=2 * (pool - ref) * weight,
        var_null=null_var * weight**2,
        var_member=member_var * weight**2,
        third_null=null_var * (1 - 2 * ref) * weight**3,
        third_member=member_var * (1 - 2 * pool) * weight**3,
    )


def power_of(spent: Spent, alpha: float = DEFAULT_ALPHA, *, skew: bool = True) -> float:
    """The LR test's power at false-positive rate ``alpha`` from the statistic's summed moments,
    by the normal approximation (Sankararaman et al. 2009, Supplementary Methods):

        threshold t = μ₀ + z₁₋α σ₀,   power = Φ((μ₁ − μ₀ − z₁₋α σ₀) / σ₁).

    With ``skew`` (the default) the power is the larger of that and the same with the third
    cumulants taken into account: the threshold by Cornish–Fisher, z₁₋α + (z² − 1) γ₀ / 6, the
    members' tail by Edgeworth, 1 − Φ(x) + φ(x) γ₁ (x² − 1) / 6, γ the skewness. On realistic
    MAF spectra the non-members' statistic is skewed to the left (rare alleles the group lacks
    weigh heavily against their carriers), its 1e-3 tail is lighter than a normal's, and the
    plain approximation understates the attack's power: on ten simulated groups of 1,000 (the
    red-team test's set-up) it gave 0.087–0.092 for releases the attack measured at 0.098 on
    average; the corrected power, 0.099–0.100. The skewness used is clipped to
    ±``SKEW_LIMIT``, and the correction is only ever allowed to raise the power.

    With nothing released the test can only guess: power = α.
    """
    _check_alpha(alpha)
    return float(_power(_moments(spent), alpha, skew))


def lr_power(
    n: int,
    p_pool: ArrayLike,
    p_ref: ArrayLike,
    alpha: float = DEFAULT_ALPHA,
    *,
    floor: float | None = None,
    spent: Spent | None = None,
    skew: bool = True,
) -> float:
    """Power of Sankararaman's LR membership test at false-positive rate ``alpha`` against a
    group of ``n`` people whose released ALT frequencies are ``p_pool``, for an attacker using
    reference frequencies ``p_ref`` (see the module note on which reference to pass).

    Moments per variant from :func:`lr_terms`, summed over variants (independence, conservative
    under LD), plus anything ``spent`` before; power by :func:`power_of` (``skew=False``: the
    paper's plain normal approximation). In the paper's regime this is Φ(√(m/n) − z₁₋α).
    """
    terms = lr_terms(n, p_pool, p_ref, floor=floor)
    total = _sum(terms, np.ones(terms.separation.size, dtype=bool)) + (spent or Spent())
    return power_of(total, alpha, skew=skew)


def separation_budget(bound: float, alpha: float = DEFAULT_ALPHA) -> float:
    """The summed separation D at which Φ(√D − z₁₋α) reaches ``bound``: (z₁₋α + Φ⁻¹(bound))².

    In the paper's regime the LR statistic's variance equals its separation, and this is its
    power. It never falls when a variant is added (the normal approximation with the exact
    variances can, for a variant whose variance far exceeds its separation: an artefact, since
    the exact LR test never loses power from more data and an attacker may leave variants out),
    so the selection holds D to it as well as holding the power to the bound.
    """
    _check_bound(bound, alpha)
    return float((norm.isf(alpha) + norm.ppf(bound)) ** 2)


def select_releasable(
    n: int,
    p_pool: ArrayLike,
    p_ref: ArrayLike,
    bound: float,
    alpha: float = DEFAULT_ALPHA,
    order: ArrayLike | None = None,
    *,
    p_values: ArrayLike | None = None,
    spent: Spent | None = None,
    floor: float | None = None,
    skew: bool = True,
) -> Selection:
    """Choose the variants that may be released so the LR membership test's power at ``alpha``
    stays at or below ``bound``; withhold the others (nothing is rounded or perturbed).

    Variants are admitted one at a time, first come first served: a variant is admitted when,
    with it, (1) the power by :func:`power_of` is ≤ ``bound`` and (2) the summed separation is
    within :func:`separation_budget`; otherwise it is withheld and the next one is tried. The
    admission order is ``order`` (a permutation of variant indices) if given, else ascending
    ``p_values`` (the researchers' hits first; NaN last; ties in file order) if given, else
    file order. ``spent`` is what earlier releases for the same group used (see
    :func:`spent_before` and :attr:`Selection.spent`); it is charged before anything new.
    ``skew`` as in :func:`power_of`.
    """
    terms = lr_terms(n, p_pool, p_ref, floor=floor)
    m = terms.separation.size
    _check_bound(bound, alpha)
    sequence = _admission_order(m, order, p_values)
    prior = spent or Spent()
    budget = separation_budget(bound, alpha)

    # rows: separation, var_null, var_member, third_null, third_member; in admission order
    moments = np.stack(
        [terms.separation, terms.var_null, terms.var_member, terms.third_null, terms.third_member]
    )[:, sequence]
    admitted = np.zeros(m, dtype=bool)  # in admission order
    total = _moments(prior)

    # First come, first served, computed a window at a time. The separation budget only
    # shrinks, so a variant over what is left of it now can never be admitted: drop those.
    # In a window, every variant before the first one that fits on its own is withheld (each
    # was tried in the same state); from that one on, variants are admitted while they fit
    # together, and the first that does not is withheld. The window widens while nothing fits.
    candidates = np.flatnonzero(moments[0] <= budget - total[0])
    pos, width = 0, 1024
    while pos < candidates.size:
        window = candidates[pos : pos + width]
        trial = total[:, None] + moments[:, window]
        alone = (trial[0] <= budget) & (_power(trial, alpha, skew) <= bound)
        if not alone.any():
            pos += window.size
            width *= 2
            continue
        first = int(np.argmax(alone))
        run = window[first:]
        together = total[:, None] + np.cumsum(moments[:, run], axis=1)
        fits = (together[0] <= budget) & (_power(together, alpha, skew) <= bound)
        taken = run.size if fits.all() else int(np.argmin(fits))  # ≥ 1: the first fits
        admitted[run[:taken]] = True
        total = together[:, taken - 1]
        pos += first + taken + (0 if taken == run.size else 1)
        width = 1024

    released = np.zeros(m, dtype=bool)
    released[sequence[admitted]] = True
    reason = f"membership-inference power would exceed {bound:g} at {alpha:g}"
    if prior.variants:
        reason += f" (with the {prior.variants} variants released before for this group)"
    d, v0, v1, k0, k1 = total.tolist()
    reached = Spent(d, v0, v1, k0, k1, prior.variants + int(admitted.sum()))
    return Selection(
        released=released,
        power=power_of(reached, alpha, skew=skew),
        spent=reached,
        reasons=dict.fromkeys(np.flatnonzero(~released).tolist(), reason),
    )


def spent_on(budget: Iterable[tuple[BitMap, Spent]], group: BitMap) -> Spent | None:
    """What earlier releases (each a group of people and what it spent) spent on ``group``:
    every earlier group holding at least half of its members is charged in full, and any other
    in proportion to the share of its members it holds, so that neither a group a few people
    from another nor a patchwork of groups each overlapping it a little comes with a fresh
    budget. Cautious: an overlapping group's variants count as if their members were all in
    this one."""
    total: Spent | None = None
    for members, spent in budget:
        if not len(group):
            break
        share = len(members & group) / len(group)
        if share == 0:
            continue
        charged = spent if share >= OVERLAP else spent.scaled(share)
        total = charged if total is None else total + charged
    return total


def spent_on_variants(n: int, p_pool: ArrayLike, p_ref: ArrayLike, released: ArrayLike, *,
                      floor: float | None = None) -> Spent:
    """What releasing the ``released`` variants (a mask) of a group of ``n`` spends."""
    terms = lr_terms(n, p_pool, p_ref, floor=floor)
    return _sum(terms, np.asarray(released, dtype=bool))


def spent_before(
    previous_ids: Iterable[str],
    ids: Sequence[str] | ArrayLike,
    n: int,
    p_pool: ArrayLike,
    p_ref: ArrayLike,
    *,
    floor: float | None = None,
) -> Spent:
    """What a project's earlier releases for (nearly) the same group have spent, to pass as
    ``spent`` to :func:`select_releasable`.

    Simple and conservative: each previously released variant counts once, at its moments with
    today's frequencies (the same as then if the group is the same); a variant released again
    now is charged again on top. A previous id not among ``ids`` (frequencies unknown here) is
    charged as an average variant of this group, or as 1/n (the paper's expected separation
    per variant), whichever is larger. This does not bound differencing between two groups that
    differ by a few people: that is the differencing ledger's job.
    """
    terms = lr_terms(n, p_pool, p_ref, floor=floor)
    names = np.asarray(ids, dtype=str)
    if names.shape != terms.separation.shape:
        raise MembershipInputError(
            f"ids has {names.size} entries but the frequencies have {terms.separation.size}: "
            "give one id per variant, in the same order"
        )
    previous = set(previous_ids)
    known = np.isin(names, list(previous))
    unknown = len(previous - set(names[known].tolist()))
    per_unknown = max(1.0 / n, float(terms.separation.mean()) if terms.separation.size else 0.0)
    # an unknown variant as one in the paper's regime: separation = variance, no skew
    charge = per_unknown * unknown
    return _sum(terms, known) + Spent(charge, charge, charge, variants=unknown)


def reference_outside(
    p_cohort: ArrayLike, n_cohort: int, p_group: ArrayLike, n_group: int
) -> NDArray[np.float64]:
    """ALT frequencies of the cohort outside the group: the best estimate Strongroom holds of the
    population frequencies an attacker's reference approximates, independent of the group.
    (Counts are taken as 2 × people, so missing calls make this approximate.)"""
    whole, group = _frequencies(p_cohort, p_group)
    _check_n(n_group)
    if not isinstance(n_cohort, int | np.integer) or n_cohort <= n_group:
        raise MembershipInputError(
            f"n_cohort is {n_cohort!r} but must be an integer larger than the group ({n_group}): "
            "with nobody outside the group there is no reference; pass another one"
        )
    outside = (n_cohort * whole - n_group * group) / (n_cohort - n_group)
    return np.clip(outside, 0.0, 1.0)


def lr_statistic(
    genotypes: ArrayLike, p_pool: ArrayLike, p_ref: ArrayLike, *, floor: float = 1e-4
) -> NDArray[np.float64]:
    """Sankararaman's LR statistic for each person (row) of ``genotypes`` (people × variants,
    ALT dosages, NaN missing): Σ_j g_j log(p̂_j/p_j) + (2 − g_j) log((1 − p̂_j)/(1 − p_j)).

    Large values say "in the group". A missing genotype contributes nothing. The statistic is a
    sum over variants, so chunks of variants can be scored separately and added. Frequencies are
    clipped to [floor, 1 − floor].
    """
    pool, ref = _frequencies(p_pool, p_ref)
    g = _genotypes(genotypes, pool.size)
    pool = np.clip(pool, floor, 1 - floor)
    ref = np.clip(ref, floor, 1 - floor)
    a = np.log(pool) - np.log(ref)
    b = np.log1p(-pool) - np.log1p(-ref)
    seen = ~np.isnan(g)
    return np.asarray(np.where(seen, g, 0.0) @ (a - b) + seen @ (2 * b), dtype=np.float64)


def homer_statistic(
    genotypes: ArrayLike, p_pool: ArrayLike, p_ref: ArrayLike
) -> NDArray[np.float64]:
    """Homer et al.'s (2008) distance test for each person (row): with Y_j = g_j / 2,
    D_j = |Y_j − p_ref_j| − |Y_j − p_pool_j| and T = mean(D) / (sd(D) / √m) over the person's
    non-missing variants. Large values say "in the group"."""
    pool, ref = _frequencies(p_pool, p_ref)
    g = _genotypes(genotypes, pool.size)
    y = g / 2
    dist = np.abs(y - ref) - np.abs(y - pool)
    m = np.sum(~np.isnan(dist), axis=1)
    mean = np.nanmean(dist, axis=1)
    sd = np.nanstd(dist, axis=1, ddof=1)
    return np.asarray(mean / (sd / np.sqrt(m)), dtype=np.float64)


def _moments(spent: Spent) -> NDArray[np.float64]:
    return np.array(
        [spent.separation, spent.var_null, spent.var_member, spent.third_null,
         spent.third_member]
    )


def _power(moments: NDArray[np.float64], alpha: float, skew: bool) -> NDArray[np.float64]:
    """Power from summed moments (rows as in :func:`_moments`, any trailing shape)."""
    d, v0, v1, k0, k1 = moments
    z = norm.isf(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd0, sd1 = np.sqrt(v0), np.sqrt(v1)
        x = (z * sd0 - d) / sd1  # the threshold in members' standard units
        power = norm.sf(x)
        if skew:
            # the expansions hold for small skewness only (Cornish–Fisher's quantile stops
            # rising with z beyond |γ| = 3/z ≈ 1): one variant far out must not swing them
            g0 = np.clip(k0 / (v0 * sd0), -SKEW_LIMIT, SKEW_LIMIT)
            g1 = np.clip(k1 / (v1 * sd1), -SKEW_LIMIT, SKEW_LIMIT)
            x = ((z + (z * z - 1) * g0 / 6) * sd0 - d) / sd1
            corrected = norm.sf(x) + norm.pdf(x) * g1 * (x * x - 1) / 6
            power = np.maximum(power, np.clip(corrected, 0.0, 1.0))
    return np.asarray(np.where(v1 > 0, power, alpha), dtype=np.float64)


def _sum(terms: LRTerms, mask: NDArray[np.bool_]) -> Spent:
    return Spent(
        float(terms.separation[mask].sum()),
        float(terms.var_null[mask].sum()),
        float(terms.var_member[mask].sum()),
        float(terms.third_null[mask].sum()),
        float(terms.third_member[mask].sum()),
        int(mask.sum()),
    )


def _admission_order(
    m: int, order: ArrayLike | None, p_values: ArrayLike | None
) -> NDArray[np.intp]:
    if order is not None and p_values is not None:
        raise MembershipInputError(
            "give either order or p_values, not both: order is the admission order itself, "
            "p_values derive one (lowest first)"
        )
    if order is not None:
        sequence = np.asarray(order)
        if (
            sequence.shape != (m,)
            or not np.issubdtype(sequence.dtype, np.integer)
            or not np.array_equal(np.sort(sequence), np.arange(m))
        ):
            raise MembershipInputError(
                f"order must be a permutation of the {m} variant indices 0..{m - 1}, each once"
            )
        return sequence.astype(np.intp)
    if p_values is not None:
        p = np.asarray(p_values, dtype=float)
        if p.shape != (m,):
            raise MembershipInputError(
                f"p_values has shape {p.shape} but there are {m} variants: give one p-value each"
            )
        if np.any((p < 0) | (p > 1)):
            raise MembershipInputError("p_values must lie in [0, 1] (NaN for untested variants)")
        # NaN sorts last; a stable sort keeps file order among ties
        return np.argsort(p, kind="stable").astype(np.intp)
    return np.arange(m, dtype=np.intp)


def _frequencies(
    p_pool: ArrayLike, p_ref: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    pool = np.asarray(p_pool, dtype=float)
    ref = np.asarray(p_ref, dtype=float)
    for name, p in (("p_pool", pool), ("p_ref", ref)):
        if p.ndim != 1:
            raise MembershipInputError(f"{name} must be one frequency per variant (1-D)")
        bad = ~((p >= 0) & (p <= 1))  # NaN is bad too
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise MembershipInputError(
                f"{name} has {int(bad.sum())} values outside [0, 1] (first at variant {first}: "
                f"{p[first]!r}); frequencies must be ALT allele frequencies, and variants with "
                "none must be dropped before the check"
            )
    if pool.size != ref.size:
        raise MembershipInputError(
            f"p_pool has {pool.size} variants but p_ref has {ref.size}: align both to the same "
            "variants in the same order"
        )
    return pool, ref


def _genotypes(genotypes: ArrayLike, m: int) -> NDArray[np.float64]:
    g = np.asarray(genotypes, dtype=float)
    if g.ndim != 2 or g.shape[1] != m:
        raise MembershipInputError(
            f"genotypes has shape {g.shape} but must be people × {m} variants, the variants "
            "in the frequencies' order"
        )
    if np.any((g < 0) | (g > 2)):
        raise MembershipInputError("genotypes must be ALT dosages in [0, 2], NaN where missing")
    return g


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise MembershipInputError(
            f"n is {n!r} but must be the number of people in the group, an integer ≥ 1"
        )


def _floor(n: int, floor: float | None) -> float:
    eps = 1 / (4 * n) if floor is None else floor
    if not 0 < eps < 0.5:
        raise MembershipInputError(f"floor is {eps!r} but must lie in (0, 0.5)")
    return eps


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise MembershipInputError(
            f"alpha is {alpha!r} but must be a false-positive rate in (0, 1), e.g. 1e-3"
        )


def _check_bound(bound: float, alpha: float) -> None:
    _check_alpha(alpha)
    if not 0 < bound < 1:
        raise MembershipInputError(
            f"bound is {bound!r} but must be a power in (0, 1), e.g. 0.1"
        )
    if bound <= alpha:
        raise MembershipInputError(
            f"bound {bound:g} is not above alpha {alpha:g}: a test flagging a share alpha of "
            "everyone flags that share of the group by chance, so no release could meet it; "
            "raise the bound or lower alpha"
        )
