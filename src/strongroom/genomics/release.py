"""The genetics rules on a GWAS's results: which variants may leave, with what, and why not.

A variant is withheld (left out whole, never rounded) when its minor allele is carried fewer
than ``min_mac`` times in the analysed group (or, for a 0/1 trait, fewer than ``min_group_mac``
times among the cases or among the controls), or when releasing it would give the
likelihood-ratio membership test more than ``max_power`` power at ``alpha``
(``membership.select_releasable``: the most significant variants are admitted first). Allele
frequencies are shown only for groups of at least ``min_frequency_group``. The counts of what
was withheld, and why, go with the release; the variants themselves do not.

The membership bound holds per group of people, not per trait or request: every group a
release describes is bounded — the analysed group, and for a 0/1 trait its cases and its
controls too (a case-control effect with the group's frequency gives each side's
frequencies) — against what every earlier release spent on overlapping people (a
:class:`MembershipLedger`: this request's earlier traits, the project's and other projects'
releases), and what is released is charged to each group before the next trait is weighed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
from pyroaring import BitMap
from scipy import stats

from strongroom.enclave.results import PidArray
from strongroom.genomics import membership
from strongroom.genomics.study import VARIANT_COLUMNS, GwasRun, Spread

_Z95 = float(stats.norm.isf(0.025))


@dataclass(frozen=True)
class GeneticRules:
    """The ``genetics`` section of the output rules (outputs/rules.yaml)."""

    min_mac: int
    min_group_mac: int
    min_frequency_group: int
    alpha: float
    max_power: float
    max_residual_share: float = 0.5
    # the coarsest rounding a released figure may have: an effect's step in its standard
    # errors, −log10 p's in its own units. A figure's step is at least one participant's pull
    # on it, so a variant whose step would be coarser is withheld rather than released less
    # precisely. 2 and 100,000 never bind: the rule above (one participant moves the effect
    # by less than a standard error) already keeps every effect's step under two.
    max_effect_step: float = 2.0
    max_log10_p_step: float = 100_000.0


class MembershipLedger(Protocol):
    """What releases have spent of the membership budget, by group of people."""

    def spent(self, group: PidArray) -> membership.Spent | None:
        """Everything spent so far on people of ``group`` (overlapping groups charged)."""
        ...

    def charge(self, group: PidArray, added: membership.Spent) -> None:
        """Record what a release spent on ``group``."""
        ...


class FreshLedger:
    """A ledger of one request with nothing spent before it (for tests and benchmarks)."""

    def __init__(self) -> None:
        self.charges: list[tuple[BitMap, membership.Spent]] = []

    def spent(self, group: PidArray) -> membership.Spent | None:
        return membership.spent_on(self.charges, BitMap(np.asarray(group, dtype=np.uint32)))

    def charge(self, group: PidArray, added: membership.Spent) -> None:
        self.charges.append((BitMap(np.asarray(group, dtype=np.uint32)), added))


@dataclass
class Released:
    table: pl.DataFrame  # what the researcher receives: one row per released variant and trait
    withheld: dict[str, int] = field(default_factory=dict)  # reason -> variants × traits
    power: dict[str, float] = field(default_factory=dict)  # per trait: the LR power reached
    frequencies: bool = True  # whether allele frequencies are shown

    @property
    def count(self) -> int:
        return self.table.height


def release(run: GwasRun, rules: GeneticRules, ledger: MembershipLedger | None = None, *,
            shown_n: dict[str, float] | None = None, count_base: int = 1,
            salt: bytes = b"") -> Released:
    """Apply the rules to every trait of ``run``; ``ledger``: what earlier releases spent of
    the membership budget on each group, charged with what this one releases; ``shown_n``:
    each group's size as shown (rounded), which the frequencies are shown over;
    ``count_base``: allele counts go to multiples of it; ``salt``: the request's key, for the
    keyed rounding draws."""
    ledger = ledger if ledger is not None else FreshLedger()
    parts = []
    out = Released(pl.DataFrame())
    floor = max(rules.min_mac, run.spec.min_mac)
    logistic = run.spec.model == "logistic"
    for trait in run.spec.traits:
        rows = run.results.filter(pl.col("trait") == trait).sort("variant")
        n = int(run.groups[trait].size)
        unfitted = rows["error"].is_not_null() | rows["beta"].is_null() | rows["se"].is_null()
        _count(out, "could not be fitted (plink2's error codes: constant, collinear, "
                    "no convergence)", int(unfitted.sum()))
        rows = rows.filter(~unfitted)
        rare = rows["mac"] < floor
        _count(out, f"minor allele count below {floor}", int(rare.sum()))
        rows = rows.filter(~rare)
        if logistic:
            few = (rows["mac_cases"] < rules.min_group_mac) | (
                rows["mac_controls"] < rules.min_group_mac)
            _count(out, f"minor allele count below {rules.min_group_mac} among the cases or "
                        "among the controls", int(few.sum()))
            rows = rows.filter(~few)
        shown = (shown_n or {}).get(trait, float(n))
        steps = _steps(rows, run, trait, shown)
        swayed = steps.moved >= rows["se"].to_numpy()
        _count(out, "one participant could move the effect by a standard error or more (too "
                    "few carriers for their own values to be lost in it)", int(swayed.sum()))
        rows, steps = rows.filter(pl.Series(~swayed)), steps.where(~swayed)
        coarse = _coarse(steps, rows["se"].to_numpy(), rules)
        _count(out, f"its effect would be rounded to more than {rules.max_effect_step:g} of its "
                    f"standard error, or its -log10 p to more than {rules.max_log10_p_step:g}, "
                    "the precision the rules ask for (each step is at least what one "
                    "participant moves the figure by)", int(coarse.sum()))
        rows, steps = rows.filter(pl.Series(~coarse)), steps.where(~coarse)
        if rows.height:
            chosen, power = _bounded(rows, run, trait, rules, ledger, logistic)
            _count(out, f"releasing them would let a membership test tell participants "
                        f"(of the group, or of its cases or controls) from others with more "
                        f"than {rules.max_power:g} power at a {rules.alpha:g} false-positive "
                        "rate, with what was released before on these people",
                   int((~chosen).sum()))
            rows, steps = rows.filter(pl.Series(chosen)), steps.where(chosen)
            out.power[trait] = power
        parts.append(_rounded(rows, steps, run, trait, shown, count_base, salt))
    out.frequencies = all(run.groups[t].size >= rules.min_frequency_group
                          for t in run.spec.traits)
    table = pl.concat(parts, how="vertical_relaxed") if parts else run.results.clear()
    out.table = _shown(table, logistic, out.frequencies)
    return out


def _bounded(rows: pl.DataFrame, run: GwasRun, trait: str, rules: GeneticRules,
             ledger: MembershipLedger, logistic: bool) -> tuple[npt.NDArray[np.bool_], float]:
    """Which of ``rows`` may be released with every group they describe held to the bound;
    each group is charged what the release spends on it. Returns the mask and the highest
    power any group reaches."""
    groups: list[tuple[PidArray, npt.NDArray[np.float64], npt.NDArray[np.float64] | None]] = [
        (run.groups[trait], rows["alt_freq"].to_numpy(), None)]
    if logistic:
        pids, values = run.vectors[trait]
        analysed = np.isin(pids, run.groups[trait])
        cases, controls = pids[analysed & (values == 1)], pids[analysed & (values == 0)]
        n_cases = rows["n_cases"].to_numpy().astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            case_freq = rows["alt_count_cases"].to_numpy() / (2 * n_cases)
            control_freq = ((rows["alt_count"] - rows["alt_count_cases"]).to_numpy()
                            / (2 * (rows["n"].to_numpy() - n_cases)))
        case_freq = np.nan_to_num(case_freq, nan=0.5)
        control_freq = np.nan_to_num(control_freq, nan=0.5)
        # each side measured against the other, which the release shows: the variants
        # released first are those where the sides differ most, far more than sampling
        # (the red team read the cases' frequencies back from the odds ratios to 0.009)
        groups += [(cases, case_freq, control_freq), (controls, control_freq, case_freq)]
    p_values = rows["p"].to_numpy()
    befores = [ledger.spent(pids) for pids, *_ in groups]
    chosen = np.ones(rows.height, dtype=bool)
    for (pids, pool, reference), before in zip(groups, befores, strict=True):  # withhold more
        at = np.flatnonzero(chosen)
        n = int(pids.size)
        selection = membership.select_releasable(
            n, pool[at], _reference(reference, pool, n)[at], rules.max_power, rules.alpha,
            p_values=p_values[at], spent=before)
        chosen[at[~selection.released]] = False
    power = 0.0
    for (pids, pool, reference), before in zip(groups, befores, strict=True):
        n = int(pids.size)
        added = membership.spent_on_variants(n, pool, _reference(reference, pool, n), chosen)
        power = max(power, membership.power_of(added if before is None else before + added,
                                               rules.alpha))
        ledger.charge(pids, added)
    return chosen, power


def _reference(given: npt.NDArray[np.float64] | None, pool: npt.NDArray[np.float64], n: int
               ) -> npt.NDArray[np.float64]:
    return attackers_reference(pool, n) if given is None else given


def attackers_reference(pool: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """The reference the membership rule measures a group against: the strongest attacker's,
    who knows the population's frequencies exactly (Sankararaman et al.'s setting), from which
    a group of ``n`` departs by sampling alone: by √(p(1−p)/2n) per variant, its expected
    deviation. The cohort outside the group is no such reference: when the group is most of
    the cohort, its few others are noise, and when the group is small, the attacker's panel
    may be larger than they are."""
    reference: npt.NDArray[np.float64] = np.clip(pool - np.sqrt(pool * (1 - pool) / (2 * n)),
                                                 0.0, 1.0)
    return reference


def _rounded(rows: pl.DataFrame, steps: _Steps, run: GwasRun, trait: str, n: float,
             base: int, salt: bytes) -> pl.DataFrame:
    """Release precision: each effect to what one participant could move it (its step, shown
    as ``beta_step``), each standard error to three significant digits, each allele count to
    a multiple of ``base`` (all by keyed unbiased draws), the group's size as shown; −log10 p
    from the unrounded statistic, to what one participant could move it; the test statistic
    and interval from the rounded effect and standard error. One participant moves an effect
    Σ g̃·r / Σ g̃² by at most 2·max|r| / Σ g̃² (a residualised dosage is within about 2 of
    zero), where Σ g̃² = σ² / SE² for a least-squares fit and 1 / SE² for a logistic one
    (whose residuals are within 1)."""
    if rows.is_empty():
        return rows.with_columns(pl.col("n").cast(pl.Float64),
                                 pl.lit(None, pl.Float64).alias("beta_step"),
                                 pl.lit(None, pl.Float64).alias("neg_log10_p"))
    se = rows["se"].to_numpy()
    # keyed by the project and the group, not the request, the trait or its name: every GWAS
    # over these people draws alike at each variant, so copies of a trait, jittered or not,
    # and the same GWAS asked again round alike and their mean averages nothing away
    key = hashlib.sha256(np.sort(run.groups[trait]).astype("<i8").tobytes()).digest()
    variants = rows["variant"].to_numpy()
    beta = keyed_round(rows["beta"].to_numpy(), steps.beta, salt, "beta", key, variants)
    se_r = np.maximum(keyed_round(se, steps.digits, salt, "se", key, variants), steps.digits)
    counts = keyed_round(rows["alt_count"].to_numpy(), np.full(rows.height, float(base)), salt,
                         "alleles", key, variants)
    neg_log10_p = keyed_log10_p(steps.exact, steps.nudge, steps.df, salt, key, variants)
    with np.errstate(under="ignore"):
        p = np.power(10.0, -neg_log10_p)
    return rows.with_columns(
        pl.Series("beta", beta), pl.Series("beta_step", steps.beta), pl.Series("se", se_r),
        pl.Series("stat", beta / se_r), pl.Series("p", np.where(p > 0, p, np.nan)
                                                  ).fill_nan(None),
        pl.Series("neg_log10_p", neg_log10_p), pl.lit(n).alias("n"),
        pl.Series("alt_freq", np.round(np.clip(counts / (2 * max(n, 1.0)), 0.0, 1.0), 4)))


@dataclass(frozen=True)
class _Steps:
    """How finely a trait's released figures are rounded, variant by variant."""

    moved: npt.NDArray[np.float64]  # what one participant moves the effect by
    digits: npt.NDArray[np.float64]  # the standard error's: three significant digits
    beta: npt.NDArray[np.float64]  # the effect's: a power of two, at least one's pull
    exact: npt.NDArray[np.float64]  # the unrounded statistic, β / SE
    nudge: npt.NDArray[np.float64]  # what one participant moves the statistic by
    df: int | None  # the statistic's degrees of freedom (None: a logistic fit's normal)

    def where(self, keep: npt.NDArray[np.bool_]) -> _Steps:
        """The steps of the variants ``keep`` leaves, in order."""
        return _Steps(self.moved[keep], self.digits[keep], self.beta[keep], self.exact[keep],
                      self.nudge[keep], self.df)


def _steps(rows: pl.DataFrame, run: GwasRun, trait: str, n: float) -> _Steps:
    spread = run.spread.get(trait)
    se = rows["se"].to_numpy()
    logistic = run.spec.model == "logistic"
    moved = _moved(rows, run, trait)
    digits = 10.0 ** (np.floor(np.log10(np.maximum(se, 1e-300))) - 2)  # 3 significant
    # a power of two: a step worked out from the exact SE would be read back from the
    # released effect (m·step) and give the exact Σ g̃² of each release (the fifth review)
    step = np.exp2(np.ceil(np.log2(np.maximum(moved, digits))))
    df = None if logistic else (spread.df if spread is not None else max(int(n) - 2, 1))
    exact = rows["beta"].to_numpy() / se
    nudge = _moved_stat(exact, se, moved, spread, logistic, int(run.groups[trait].size))
    return _Steps(moved, digits, step, exact, nudge, df)


def _coarse(steps: _Steps, se: npt.NDArray[np.float64],
            rules: GeneticRules) -> npt.NDArray[np.bool_]:
    """Which variants' figures would be rounded more coarsely than the rules allow. Each
    released figure is within one step of the exact one (keyed_round), so every variant
    released is within ``max_effect_step`` standard errors and ``max_log10_p_step`` of its
    exact fit. Decided from the steps alone, which the release shows beside each effect."""
    if se.size == 0:
        return np.zeros(0, dtype=np.bool_)
    _, p_step = log10_p_step(steps.exact, steps.nudge, steps.df)
    coarse: npt.NDArray[np.bool_] = ((steps.beta > rules.max_effect_step * se)
                                     | (p_step > rules.max_log10_p_step))
    return coarse


def _moved_stat(stat: npt.NDArray[np.float64], se: npt.NDArray[np.float64],
                moved: npt.NDArray[np.float64], spread: Spread | None, logistic: bool,
                n: int) -> npt.NDArray[np.float64]:
    """The most one participant moves each test statistic β / SE: their effect on β over SE,
    and on SE itself (through the residual variance, by up to max r² / n of it, and through
    Σ g̃², by up to g̃² ≤ 4 of it), scaled by the statistic."""
    if logistic or spread is None:
        relative_se = 2.0 * np.square(se)  # Σ w·g̃² = 1 / SE², one participant's w·g̃² ≤ 1
    else:
        variance = max(spread.variance, 1e-300)
        relative_se = 0.5 * (reach(spread) ** 2 / (variance * max(n, 1))
                             + 4.0 * np.square(se) / variance)
    nudge: npt.NDArray[np.float64] = moved / se + np.abs(stat) * relative_se
    return nudge


def keyed_log10_p(stat: npt.NDArray[np.float64], nudge: npt.NDArray[np.float64],
                  df: int | None, salt: bytes, key: bytes, variants: npt.NDArray[np.int64]
                  ) -> npt.NDArray[np.float64]:
    """−log10 p of the unrounded statistics, each to a power-of-two step at least what moving
    its statistic by ``nudge`` (one participant) moves it, by keyed unbiased draws: as
    precise as the effect's own rounding allows, without the rounded effect's and standard
    error's errors compounded (issue 54: p-values from unrounded statistics). −log10 p rises
    with |stat|, so the most a nudge moves it is upwards."""
    exact, step = log10_p_step(stat, nudge, df)
    rounded = keyed_round(exact, step, salt, "neg_log10_p", key, variants)
    return np.maximum(rounded, 0.0)


def log10_p_step(stat: npt.NDArray[np.float64], nudge: npt.NDArray[np.float64],
                 df: int | None) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each statistic's exact −log10 p, and the power of two at least what moving the
    statistic by ``nudge`` moves it (a step worked out exactly would be read back from the
    released figure, as for effects)."""
    _, exact = p_values(stat, df)
    _, nudged = p_values(np.abs(stat) + nudge, df)
    step = np.exp2(np.ceil(np.log2(np.maximum(nudged - exact, 1e-6))))
    return exact, step


def p_values(stat: npt.NDArray[np.float64], df: int | None
             ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Two-sided p-values of z (``df`` None) or t statistics, and their −log10, worked out on
    the log scale so that a strong hit is never p = 0: p is NaN where a float cannot hold it
    (below about 1e-308), and −log10 p is always given (GWAS-SSF's neg_log_10_p_value)."""
    magnitude = np.abs(stat)
    log_p = np.log(2.0) + (stats.norm.logsf(magnitude) if df is None
                           else stats.t.logsf(magnitude, df))
    p = np.exp(log_p)
    return np.where(p > 0, p, np.nan), -log_p / np.log(10.0)


def _moved(rows: pl.DataFrame, run: GwasRun, trait: str) -> npt.NDArray[np.float64]:
    """The most one participant moves each variant's effect (see :func:`_rounded`)."""
    se = rows["se"].to_numpy()
    spread = run.spread.get(trait)
    if run.spec.model == "logistic" or spread is None:
        return np.asarray(2.0 * np.square(se), dtype=np.float64)
    return np.asarray(2.0 * reach(spread) * np.square(se) / max(spread.variance, 1e-300),
                      dtype=np.float64)


def reach(spread: Spread) -> float:
    """The largest residual as the release uses it: rounded up to a quarter of a power of two
    (2^(1/4): 19 %) times the residual SD. The exact figure would be read back from the
    rounding steps (each variant's step brackets it; a few hundred bracket it to a percent) and
    from which variants are withheld as swayed. The trait is winsorised at a keyed rank before
    the fit, so the largest residual is no one's extreme value (a trait that lifts its target
    to 11 SD is clipped with the rest: tests/integration/test_gwas_attacks.py), but a
    covariate can still set one participant's fitted value apart from the clipped others'."""
    sd = float(np.sqrt(max(spread.variance, 1e-300)))
    quarters = np.ceil(4.0 * np.log2(max(spread.largest / sd, 1.0))) / 4.0
    return sd * float(np.exp2(quarters))


def keyed_round(values: npt.NDArray[np.float64], step: npt.NDArray[np.float64], salt: bytes,
                what: str, key: bytes, variants: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.float64]:
    """Each value to a multiple of its step, up with the chance of the fraction of a step it
    is past the multiple below (unbiased), by a draw per variant keyed by ``salt`` (a secret),
    ``what`` and ``key``: the same figures draw the same, and no one can aim at a boundary."""
    seed = int.from_bytes(hashlib.sha256(salt + what.encode() + key).digest()[:8], "big")
    # one uniform per variant index, whichever variants this release holds
    stream = np.random.default_rng(seed).random(int(variants.max()) + 1 if variants.size else 0)
    draws = stream[variants]
    q = values / step
    low = np.floor(q)
    rounded: npt.NDArray[np.float64] = step * (low + (draws < q - low))
    return rounded


def _count(out: Released, reason: str, n: int) -> None:
    if n:
        out.withheld[reason] = out.withheld.get(reason, 0) + n


def _shown(rows: pl.DataFrame, logistic: bool, frequencies: bool) -> pl.DataFrame:
    """The released columns, in a GWAS summary statistics file's usual order."""
    effect = [pl.col("beta").exp().alias("odds_ratio"),
              (pl.col("beta") - _Z95 * pl.col("se")).exp().alias("or_ci_low"),
              (pl.col("beta") + _Z95 * pl.col("se")).exp().alias("or_ci_high")] if logistic \
        else [(pl.col("beta") - _Z95 * pl.col("se")).alias("ci_low"),
              (pl.col("beta") + _Z95 * pl.col("se")).alias("ci_high")]
    return rows.sort("trait", "variant").select(
        "trait", *VARIANT_COLUMNS, "test", "n", *(["alt_freq"] if frequencies else []),
        "info", "beta", "beta_step", "se", *effect,
        pl.col("stat").alias("z" if logistic else "t"), "p",
        "neg_log10_p")
