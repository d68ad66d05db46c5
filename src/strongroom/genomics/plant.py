"""Causal variants: the loci given an effect on BMI, systolic blood pressure and diabetes, where
they go among the simulated markers, and adding their genetic component to a cohort.

Effects are per allele on the measured scale (kg/m², mmHg) or the log odds (diabetes), with the
allele frequency each locus is looked for at:

- BMI: the eight loci of Willer et al. 2009 (Nat Genet 41:25) and Speliotes et al. 2010
  (Nat Genet 42:937), their published sizes (FTO 0.39 kg/m² at 42%, MC4R 0.23 at 24%, …).
- Diabetes: TCF7L2 at OR 1.40 (published 1.37–1.40, risk allele 30%) and seven loci at
  OR 1.12–1.20 (Voight et al. 2010, Nat Genet 42:579).
- Systolic BP: common loci are 0.3–1.1 mmHg per allele (Ehret et al. 2011, Nature 478:103),
  too small for a GWAS of 20,000 to see; the lead here is 1.6 mmHg, the rest 0.5–1.1.

With ``effect_scale`` 1 (the default) a GWAS of about 20,000 participants finds the leads at
p < 5e-8: FTO gives χ² ≈ 80 (n·2pq·β²/σ² with σ = 4.2 kg/m²), the SBP lead ≈ 65 (σ = 19 mmHg)
and TCF7L2 ≈ 45 at 5% prevalence; the smaller loci need UK Biobank's size, as in life.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.optimize import brentq
from scipy.special import expit, logit

from strongroom.cohort import model

if TYPE_CHECKING:
    from strongroom.genomics.simulate import Simulated

TRAITS: tuple[str, ...] = ("bmi", "sbp", "diabetes")
FIELD_OF = {"bmi": 21001, "sbp": 4080, "diabetes": 2443}
# BMI: UK Biobank's observed range (Showcase field 21001, 12.1–74.7); SBP: as the generator clips.
PLAUSIBLE = {"bmi": (12.0, 75.0), "sbp": (70.0, 270.0)}
DECIMALS = {"bmi": 4, "sbp": 0}  # as recorded (the dictionary's precision)
COMMON = 0.05  # causal loci sit on markers at least this frequent, when the region has one

FloatArray = npt.NDArray[np.float64]


class Simulating(Protocol):
    """A simulated region, as far as placing loci goes (simulate.Region)."""

    @property
    def hosts(self) -> int: ...


class PlantError(ValueError):
    """Genetic scores that do not fit the cohort they are planted into."""


@dataclass(frozen=True)
class Locus:
    """A causal locus: its trait, a name saying what it is modelled on, its effect per allele
    (kg/m², mmHg or log odds) and the minor allele frequency it is placed at."""

    trait: str
    name: str
    effect: float
    maf: float


# Interleaved by rank, so that when markers are few the leads of every trait are placed first.
LOCI: tuple[Locus, ...] = (
    Locus("bmi", "FTO-like", 0.39, 0.42),
    Locus("diabetes", "TCF7L2-like", float(np.log(1.40)), 0.30),
    Locus("sbp", "SBP lead", 1.6, 0.35),
    Locus("bmi", "TMEM18-like", 0.31, 0.17),
    Locus("diabetes", "CDKN2B-like", float(np.log(1.20)), 0.18),
    Locus("sbp", "CYP17A1-like", 1.1, 0.10),
    Locus("bmi", "MC4R-like", 0.23, 0.24),
    Locus("diabetes", "IGF2BP2-like", float(np.log(1.14)), 0.30),
    Locus("sbp", "ATP2B1-like", 0.85, 0.17),
    Locus("bmi", "SEC16B-like", 0.22, 0.19),
    Locus("diabetes", "KCNJ11-like", float(np.log(1.14)), 0.36),
    Locus("sbp", "FGF5-like", 0.7, 0.32),
    Locus("bmi", "BDNF-like", 0.19, 0.22),
    Locus("diabetes", "PPARG-like", float(np.log(1.14)), 0.12),
    Locus("sbp", "SH2B3-like", 0.6, 0.47),
    Locus("bmi", "GNPDA2-like", 0.18, 0.43),
    Locus("diabetes", "HHEX-like", float(np.log(1.13)), 0.42),
    Locus("sbp", "CSK-like", 0.5, 0.35),
    Locus("bmi", "SH2B1-like", 0.15, 0.40),
    Locus("diabetes", "CDKAL1-like", float(np.log(1.12)), 0.31),
    Locus("sbp", "NPR3-like", 0.5, 0.38),
    Locus("bmi", "NEGR1-like", 0.13, 0.39),
    Locus("diabetes", "SLC30A8-like", float(np.log(1.12)), 0.30),
)


GROUP = len(TRAITS)  # loci sharing a region of their own: consecutive in LOCI, one per trait


def place(regions: Sequence[Simulating], seed: int) -> list[list[Locus]]:
    """The loci each region hosts: every locus in the region simulated for its group, if the
    layout made them (simulate.layout); otherwise spread at random, one a region until every region
    has one."""
    hosted: list[list[Locus]] = [[] for _ in regions]
    if any(r.hosts >= 0 for r in regions):
        for index, region in enumerate(regions):
            if region.hosts >= 0:
                hosted[index] += LOCI[region.hosts * GROUP:(region.hosts + 1) * GROUP]
        return hosted
    order = np.random.default_rng([seed, 7]).permutation(len(regions))
    for k, locus in enumerate(LOCI):
        hosted[int(order[k % len(regions)])].append(locus)
    return hosted


def pick(
    loci: list[Locus], alt_freq: FloatArray, seed: int, region: int
) -> dict[int, tuple[Locus, float]]:
    """For each locus a marker of the region (row) and its effect on the ALT allele: the marker
    whose minor allele frequency is nearest the locus's, its direction at random. Loci the
    region has no free common marker for are left out."""
    maf = np.minimum(alt_freq, 1 - alt_freq)
    free = maf >= COMMON
    if not free.any():
        free = maf > 0
    rng = np.random.default_rng([seed, 8, region])
    chosen: dict[int, tuple[Locus, float]] = {}
    for locus in loci:
        if not free.any():
            break
        row = int(np.argmin(np.where(free, np.abs(maf - locus.maf), np.inf)))
        free[row] = False
        chosen[row] = (locus, float(rng.choice((-1.0, 1.0))) * locus.effect)
    return chosen


def plant(
    cohort: model.Cohort, genetics: Simulated | pl.DataFrame, seed: int | None = None
) -> model.Cohort:
    """The cohort with each participant's genetic component added to BMI, systolic BP and
    doctor-diagnosed diabetes; every other column and table is returned as it was.

    ``genetics`` is a :class:`Simulated` or a frame of ``eid`` and the genetic values ``bmi``,
    ``sbp`` (measured scale) and ``diabetes`` (log odds). Scores are centred on the cohort's
    mean so the traits keep their distribution's centre. BMI and SBP gain the score, clipped to
    the plausible range and rounded as recorded; a known diabetes status (0/1) is redrawn from a
    logistic liability: the person's liability is drawn consistent with their status at the
    cohort's prevalence, the score added (less a constant that keeps the expected prevalence),
    and the status is whether it is now above threshold, so each allele multiplies the odds by
    exp(effect). Missing values stay missing; participants without genetic scores (not
    genotyped) are left as they were. ``seed`` defaults to the simulation's.
    """
    scores = genetics if isinstance(genetics, pl.DataFrame) else genetics.scores
    if seed is None:
        seed = 0 if isinstance(genetics, pl.DataFrame) else genetics.seed
    missing = [c for c in (model.EID, *TRAITS) if c not in scores.columns]
    if missing:
        raise PlantError(
            f"genetic scores lack column(s) {', '.join(missing)}; pass simulate()'s result or "
            f"its .scores frame"
        )
    people = cohort.participants
    stray = scores.join(people.select(model.EID), on=model.EID, how="anti")
    if stray.height:
        raise PlantError(
            f"{stray.height} participant(s) with genetic scores are not in the cohort (first eid "
            f"{stray[model.EID][0]}); simulate genotypes for this cohort's participants"
        )
    joined = people.select(model.EID).join(
        scores.select(model.EID, *TRAITS), on=model.EID, how="left", maintain_order="left"
    )
    columns: dict[str, pl.Series] = {}
    for trait in TRAITS:
        g = joined[trait].cast(pl.Float64).to_numpy()
        g = g - np.nanmean(g) if np.isfinite(g).any() else g
        for name in _columns_of(people, FIELD_OF[trait]):
            values = people[name]
            if trait == "diabetes":
                new = _redraw_status(values, g, np.random.default_rng([seed, 2443]))
            else:
                new = _shifted(values, g, trait)
            columns[name] = pl.Series(name, new).fill_nan(None).cast(values.dtype)
    return model.Cohort(people.with_columns(**columns), cohort.events)


def _columns_of(people: pl.DataFrame, field_id: int) -> list[str]:
    pattern = re.compile(rf"p{field_id}(?:_i\d+)?(?:_a\d+)?")
    return [c for c in people.columns if pattern.fullmatch(c)]


def _shifted(values: pl.Series, g: FloatArray, trait: str) -> FloatArray:
    x = values.cast(pl.Float64).to_numpy()
    low, high = PLAUSIBLE[trait]
    moved = np.round(np.clip(x + g, low, high), DECIMALS[trait])
    return np.where(np.isnan(g), x, moved)  # NaN (missing) values stay NaN either way


def _redraw_status(values: pl.Series, g: FloatArray, rng: np.random.Generator) -> FloatArray:
    status = values.cast(pl.Float64).to_numpy()
    known = np.isin(status, (0.0, 1.0)) & ~np.isnan(g)
    out = status.copy()
    prevalence = status[known].mean() if known.any() else 0.0
    if not 0 < prevalence < 1:
        return out
    base = float(logit(prevalence))
    below = float(expit(-base))  # P(logistic noise puts a person below threshold)
    u = rng.random(status.shape[0])
    case = status == 1
    noise = np.where(case, logit(below + u * (1 - below)), logit(u * below))
    score = g[known]
    # a constant shift keeps the expected prevalence (odds ratios do not average to one)
    shift = (
        brentq(lambda d: float(expit(base + score - d).mean()) - prevalence, -50.0, 50.0)
        if np.ptp(score) > 0
        else float(score[0])
    )
    liability = base + noise[known] + score - shift
    out[known] = (liability > 0).astype(np.float64)
    return out
