"""The cancer and death registries.

Cancer registry records reach back to 1971 (UK Biobank's registry linkage), so a large share
predate recruitment; early records were coded in ICD-9 and carry no ICD-10 code (they would sit
in field 40013). Deaths follow a Gompertz hazard (mortality roughly doubles every 7-8 years of
age) raised by smoking, diabetes, deprivation and the person's conditions, plus deaths from the
person's own cancers; the overall death rate is matched to the dictionary's participant count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strongroom.cohort.synth import codes
from strongroom.cohort.synth.context import CodeBook, Context
from strongroom.cohort.synth.draws import (
    DAYS_PER_YEAR,
    BoolArray,
    FloatArray,
    IntArray,
    age_weighted_dates,
    bernoulli_calibrated,
    choice_rows,
    day_of,
    gamma_frailty,
    segment_starts,
)

REGISTRY_START = day_of("1971-01-01")
ICD10_START = {0: day_of("1995-01-01"), 1: day_of("1997-01-01"), 2: day_of("1995-01-01")}
NEVER = np.iinfo(np.int64).max // 4  # a day that never comes

CANCER_PEOPLE = 89_766 / 502_413  # Showcase field 40005 participants
DEATHS = 30_203 / 502_413  # Showcase field 40000 participants
GOMPERTZ = 0.065  # log-hazard per year of age


@dataclass
class Cancers:
    person: IntArray
    site: IntArray  # index into codes.CANCER_SITES
    date: IntArray
    code: IntArray  # CodeBook id, -1 for ICD-9 era records
    histology: FloatArray  # NaN where not recorded
    behaviour: FloatArray
    fatal: IntArray  # day of death from this cancer, or NEVER


@dataclass
class Deaths:
    person: IntArray
    date: IntArray
    cause: IntArray  # CodeBook id
    from_cancer: BoolArray
    day: IntArray  # per participant: day of death, or NEVER


def cancers(rng: np.random.Generator, ctx: Context, book: CodeBook, share: float) -> Cancers:
    sites = codes.CANCER_SITES
    f = ctx.factors
    score = (
        0.4 * f["age10"] + 0.25 * f["male"] + 0.45 * f["current"] + 0.2 * f["former"]
        + 0.05 * f["bmi5"] - 1.2 * (f["black"] + f["south_asian"])
    )  # fmt: skip
    # Records after death are dropped later; ask for slightly more people up front.
    has = bernoulli_calibrated(rng, score, min(share * 1.015, 0.99))
    people = np.flatnonzero(has)
    counts = 1 + np.minimum(rng.poisson(0.33 * gamma_frailty(rng, people.shape[0], 0.8)), 16)
    person = np.repeat(people, counts)
    first = segment_starts(person) == 0

    weights = np.empty((person.shape[0], len(sites)))
    female = ctx.female[person]
    for s, site in enumerate(sites):
        allowed = np.ones(person.shape[0], dtype=np.bool_)
        if site.sex:
            allowed = female if site.sex == "F" else ~female
        # Relative risks are normalised over the cohort, so ``weight`` stays the site's share.
        relative = np.exp(ctx.score(dict(site.risk)))
        relative /= relative.mean()
        weights[:, s] = np.where(allowed, site.weight * relative[person], 0.0)
    site_of = choice_rows(rng, weights)
    # Second and later records often repeat the first site (several skin cancers, recurrences).
    first_site = site_of[first][np.cumsum(first) - 1]
    site_of = np.where(~first & (rng.random(person.shape[0]) < 0.45), first_site, site_of)

    min_age = np.array([s.min_age for s in sites])[site_of]
    slope = np.array([s.slope for s in sites])[site_of]
    birth = ctx.birth[person]
    start = np.maximum(birth + np.floor(min_age * DAYS_PER_YEAR).astype(np.int64), REGISTRY_START)
    end = ctx.end[person]
    keep = start < end
    person, site_of, start, end, slope = (
        person[keep],
        site_of[keep],
        start[keep],
        end[keep],
        slope[keep],
    )
    date = age_weighted_dates(rng, start, end, slope)

    order = np.lexsort((date, person))
    person, site_of, date = person[order], site_of[order], date[order]
    r = person.shape[0]
    code = np.empty(r, dtype=np.int64)
    histology = np.empty(r)
    for s, site in enumerate(sites):
        rows = np.flatnonzero(site_of == s)
        if rows.shape[0] == 0:
            continue
        names = [c for c, _ in site.icd10]
        p = np.array([w for _, w in site.icd10])
        code[rows] = book.ids(names)[rng.choice(len(names), size=rows.shape[0], p=p / p.sum())]
        h_codes = np.array([h for h, _ in site.histology], dtype=np.float64)
        hp = np.array([w for _, w in site.histology])
        histology[rows] = h_codes[rng.choice(h_codes.shape[0], size=rows.shape[0], p=hp / hp.sum())]
    icd9_era = date < np.array([ICD10_START[c] for c in (0, 1, 2)])[ctx.country[person]]
    code = np.where(icd9_era, -1, code)
    behaviour = np.array([s.behaviour for s in sites], dtype=np.float64)[site_of]
    histology[rng.random(r) < 0.0066] = np.nan  # Showcase: 40011 on 89,177 of 89,766
    behaviour[rng.random(r) < 0.0055] = np.nan

    age_dx = (date - ctx.birth[person]) / DAYS_PER_YEAR
    lethality = np.array([s.lethality for s in sites])[site_of]
    lethality = lethality * np.exp(0.02 * (age_dx - 65))
    # Cancers long before recruitment were survived: the participant came to the centre.
    lethality = np.where(date < ctx.recruited[person] - 3 * 365, 0.0, lethality)
    dies = rng.random(r) < np.minimum(lethality, 0.97)
    survival = np.array([s.survival for s in sites])[site_of]
    years = rng.gamma(1.3, survival / 1.3)
    fatal_day = date + 30 + np.floor(years * DAYS_PER_YEAR).astype(np.int64)
    fatal_day = np.maximum(fatal_day, ctx.recruited[person] + 30)
    fatal = np.where(dies & (fatal_day <= ctx.end[person]), fatal_day, NEVER)
    return Cancers(person, site_of, date, code, histology, behaviour, fatal)


def deaths(
    rng: np.random.Generator,
    ctx: Context,
    cancer: Cancers,
    has: dict[str, BoolArray],
    book: CodeBook,
    share: float,
) -> Deaths:
    n = ctx.n
    f = ctx.factors
    # Death from the person's own cancer: the earliest fatal record.
    cancer_day = np.full(n, NEVER, dtype=np.int64)
    np.minimum.at(cancer_day, cancer.person, cancer.fatal)
    record = _earliest_fatal(cancer, n)

    def cond(name: str) -> FloatArray:
        return has[name].astype(np.float64) if name in has else np.zeros(n)

    log_risk = (
        0.45 * f["male"] + 0.75 * f["current"] + 0.25 * f["former"] + 0.45 * f["diabetes"]
        + 0.12 * f["tdi"] + 0.12 * f["bmi5"] ** 2 - 0.1 * f["activity"]
        + 0.5 * cond("copd") + 0.35 * cond("ihd") + 0.8 * cond("heart_failure")
        + 1.0 * cond("dementia") + 0.4 * cond("stroke") + 0.3 * cond("ckd") + 1.2 * cond("liver")
        + 0.6 * cond("alcohol") + 0.8 * cond("parkinsons") + 0.3 * cond("af")
    )  # fmt: skip
    base = np.exp(log_risk + GOMPERTZ * (ctx.age - 65))
    follow = np.maximum(ctx.end - ctx.recruited, 0) / DAYS_PER_YEAR
    growth = np.expm1(GOMPERTZ * follow) / GOMPERTZ
    dead_of_cancer = cancer_day < NEVER

    lo, hi = -20.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        alive = np.exp(-np.exp(mid) * base * growth)
        expected = float(np.mean(np.where(dead_of_cancer, 1.0, 1.0 - alive)))
        lo, hi = (mid, hi) if expected < share else (lo, mid)
    scale = np.exp((lo + hi) / 2)
    e = rng.exponential(1.0, n)
    years = np.log1p(GOMPERTZ * e / (scale * base)) / GOMPERTZ
    other_day = np.where(
        years < follow, ctx.recruited + np.floor(years * DAYS_PER_YEAR).astype(np.int64), NEVER
    )
    other_day = np.maximum(other_day, ctx.recruited + 1)
    day = np.minimum(cancer_day, other_day)
    person = np.flatnonzero(day < NEVER)
    date = day[person]
    from_cancer = cancer_day[person] <= other_day[person]

    cause = np.empty(person.shape[0], dtype=np.int64)
    rows = np.flatnonzero(from_cancer)
    rec = record[person[rows]]
    site_default = np.array([book.id(s.icd10[0][0]) for s in codes.CANCER_SITES])
    cause[rows] = np.where(cancer.code[rec] >= 0, cancer.code[rec], site_default[cancer.site[rec]])
    rows = np.flatnonzero(~from_cancer)
    cause[rows] = _other_cause(rng, person[rows], date[rows], has, book)
    return Deaths(person, date, cause, from_cancer, day)


def _earliest_fatal(cancer: Cancers, n: int) -> IntArray:
    """Per participant, the index of the cancer record they die of (or -1)."""
    out = np.full(n, -1, dtype=np.int64)
    fatal = np.flatnonzero(cancer.fatal < NEVER)
    order = fatal[np.lexsort((cancer.fatal[fatal], cancer.person[fatal]))]
    first = order[segment_starts(cancer.person[order]) == 0]
    out[cancer.person[first]] = first
    return out


def _other_cause(
    rng: np.random.Generator,
    person: IntArray,
    date: IntArray,
    has: dict[str, BoolArray],
    book: CodeBook,
) -> IntArray:
    causes = codes.DEATH_CAUSES
    weights = np.empty((person.shape[0], len(causes)))
    for k, c in enumerate(causes):
        boosted = has[c.condition][person] if c.condition in has else np.zeros(len(person), bool)
        weights[:, k] = c.weight * np.where(boosted, c.boost, 1.0)
    chosen = choice_rows(rng, weights)
    out = np.empty(person.shape[0], dtype=np.int64)
    for k, c in enumerate(causes):
        rows = np.flatnonzero(chosen == k)
        names = [code for code, _ in c.icd10]
        p = np.array([w for _, w in c.icd10])
        out[rows] = book.ids(names)[rng.choice(len(names), size=rows.shape[0], p=p / p.sum())]
    covid = date >= day_of(codes.COVID_START)
    covid &= rng.random(person.shape[0]) < codes.COVID_DEATH_SHARE
    return np.where(covid, book.id(codes.COVID_DEATH), out)
