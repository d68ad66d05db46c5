"""Who the participants are: sex, birth, recruitment, centre, ethnicity, deprivation, household.

Shares are UK Biobank's published baseline distributions (Showcase field summaries); the
dependencies (London centres more ethnically diverse, Glasgow and Liverpool more deprived,
younger participants more often graduates) are what researchers expect to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth.draws import (
    BoolArray,
    FloatArray,
    IntArray,
    by_rank,
    choice_by_group,
    day_of,
    match_within,
    standardise,
    whole_years_between,
    year_month_day,
)
from strongroom.cohort.synth.targets import moments

FEMALE_SHARE = 0.544  # Showcase field 31: 273,3xx women of 502,4xx


@dataclass(frozen=True)
class Centre:
    code: int
    name: str
    size: float  # thousands recruited at baseline (approximate Showcase field 54 counts)
    opened: str
    closed: str
    country: str  # E, S or W: decides urban/rural scheme and hospital-record coverage
    deprivation: float  # shift in Townsend units against the cohort mean
    diversity: float  # multiplier on the odds of a minority ethnic background


# The 22 baseline centres: the 21 of the main phase and the Stockport pilot, which is where all
# 2006 recruitment dates come from. Imaging centres and the Cheadle revisit centre are later visits.
CENTRES: tuple[Centre, ...] = (
    Centre(10003, "Stockport (pilot)", 3.8, "2006-03-13", "2006-12-15", "E", 0.0, 0.8),
    Centre(11001, "Manchester", 14.1, "2007-03-01", "2008-04-30", "E", 1.3, 2.0),
    Centre(11008, "Bury", 27.8, "2007-04-16", "2008-09-30", "E", 0.3, 1.3),
    Centre(11016, "Liverpool", 32.7, "2007-07-02", "2009-01-30", "E", 1.6, 0.6),
    Centre(11004, "Glasgow", 17.7, "2007-06-04", "2008-08-29", "S", 1.9, 0.6),
    Centre(11006, "Stoke", 18.4, "2007-09-03", "2008-10-31", "E", 0.6, 0.6),
    Centre(11003, "Cardiff", 17.4, "2007-11-01", "2009-02-27", "W", 0.5, 0.8),
    Centre(11007, "Reading", 29.0, "2007-11-01", "2009-05-29", "E", -0.8, 1.6),
    Centre(11010, "Leeds", 44.9, "2007-12-03", "2009-10-30", "E", 0.3, 1.3),
    Centre(11011, "Bristol", 43.7, "2008-01-14", "2009-11-30", "E", -0.3, 0.7),
    Centre(11005, "Edinburgh", 17.6, "2008-03-03", "2009-05-29", "S", -0.4, 0.7),
    Centre(11017, "Middlesborough", 19.0, "2008-02-04", "2009-03-31", "E", 1.7, 0.4),
    Centre(11013, "Nottingham", 39.5, "2008-02-18", "2009-12-18", "E", 0.2, 1.2),
    Centre(11014, "Sheffield", 30.0, "2008-04-01", "2009-10-30", "E", 0.4, 0.9),
    Centre(11009, "Newcastle", 37.5, "2008-05-01", "2010-03-31", "E", 0.8, 0.5),
    Centre(11018, "Hounslow", 28.4, "2008-04-01", "2010-05-28", "E", 0.9, 6.0),
    Centre(11020, "Croydon", 26.0, "2008-10-01", "2010-06-30", "E", 0.7, 5.0),
    Centre(11021, "Birmingham", 30.1, "2008-11-03", "2010-06-30", "E", 1.4, 4.5),
    Centre(11012, "Barts", 15.0, "2009-02-02", "2010-07-09", "E", 3.0, 7.0),
    Centre(11002, "Oxford", 11.9, "2009-05-01", "2010-06-30", "E", -1.0, 1.3),
    Centre(11022, "Swansea", 3.0, "2009-12-01", "2010-06-30", "W", 0.6, 0.4),
    Centre(11023, "Wrexham", 1.15, "2010-03-15", "2010-07-30", "W", -0.2, 0.3),
)

# Age at recruitment: invitations went to people aged 40-69, so the shares rise to the early
# sixties and fall away fast either side (a few 37-39 and 70-73 year-olds attended).
_AGES = np.arange(37, 74)
_AGE_WEIGHTS = np.concatenate(
    (
        [0.02, 0.05, 0.54],  # 37-39
        np.linspace(1.8, 5.0, 26),  # 40-65
        [5.0, 3.5, 3.5, 2.8],  # 66-69
        [0.2, 0.03, 0.01, 0.005],  # 70-73
    )
)

# Field 21000 (coding 1001) at baseline: code -> share of participants who answered.
ETHNICITY: dict[int, float] = {
    1001: 0.8834, 1002: 0.0255, 1003: 0.0326, 1: 0.0011, 2: 0.0001, 2001: 0.0012,
    2002: 0.0008, 2003: 0.0016, 2004: 0.0020, 3: 0.0001, 3001: 0.0114, 3002: 0.0035,
    3003: 0.0004, 3004: 0.0035, 4: 0.0001, 4001: 0.0090, 4002: 0.0064, 4003: 0.0002,
    5: 0.0031, 6: 0.0091, -1: 0.0004, -3: 0.0033,
}  # fmt: skip
WHITE = frozenset({1001, 1002, 1003, 1})
SOUTH_ASIAN = frozenset({3001, 3002, 3003, 3004, 3})
BLACK = frozenset({4001, 4002, 4003, 4})

# Field 20118 (coding 91): England/Wales and Scottish urban-rural classifications.
URBAN_RURAL_EW: dict[int, float] = {
    5: 0.847, 6: 0.058, 7: 0.052, 8: 0.030, 1: 0.001, 2: 0.002, 3: 0.005, 4: 0.004, 9: 0.001,
}  # fmt: skip
URBAN_RURAL_S: dict[int, float] = {
    11: 0.43, 12: 0.27, 13: 0.09, 14: 0.02, 15: 0.005, 16: 0.14, 17: 0.03, 18: 0.01, 9: 0.005,
}  # fmt: skip
RURAL = frozenset({3, 4, 7, 8, 16, 17, 18})

# Highest qualification (shares of answers to field 6138), lowest-ranked first.
_QUALIFICATION_LEVELS = ("none", "cse", "vocational", "olevel", "alevel", "degree")
_QUALIFICATION_SHARES = (0.17, 0.055, 0.12, 0.215, 0.11, 0.33)
# Chance of also ticking each other qualification, given the highest one.
_ALSO_TICKED: dict[str, dict[int, float]] = {
    "degree": {2: 0.45, 3: 0.80, 4: 0.06, 5: 0.08, 6: 0.30},
    "alevel": {3: 0.85, 4: 0.08, 5: 0.15, 6: 0.25},
    "olevel": {4: 0.12, 5: 0.20, 6: 0.20},
    "cse": {5: 0.25, 6: 0.15},
}
_HIGHEST_CODE = {"degree": 1, "alevel": 2, "olevel": 3, "cse": 4}

# Field 738 (coding 100294) among those who gave a band; -1/-3 are added at assembly.
INCOME_SHARES = (0.225, 0.251, 0.258, 0.212, 0.054)  # bands 1..5
# Field 709: number in household, 1..8.
HOUSEHOLD_SHARES = (0.1942, 0.5976, 0.118, 0.0736, 0.014, 0.002, 0.0004, 0.0001)

CENSOR = day_of("2022-10-31")  # end of linked hospital, death and cancer records


@dataclass
class Demographics:
    n: int
    female: BoolArray
    birth: IntArray  # day of birth (kept internal: UKB releases only year and month)
    recruited: IntArray  # field 53, day
    age: FloatArray  # exact age at recruitment in years
    centre_index: IntArray  # index into CENTRES
    country: IntArray  # 0 England, 1 Scotland, 2 Wales
    ethnicity: IntArray  # coding 1001 code
    south_asian: BoolArray
    black: BoolArray
    white: BoolArray
    townsend: FloatArray
    tdi_z: FloatArray
    rural: BoolArray
    education: IntArray  # 0 none … 5 degree
    income: IntArray  # 1..5
    household: IntArray
    lost: IntArray  # day lost to follow-up, or CENSOR
    values: dict[int, FloatArray]
    device_ids: list[str]
    device: IntArray  # index into device_ids


def generate(rng: np.random.Generator, n: int, d: Dictionary) -> Demographics:
    values: dict[int, FloatArray] = {}
    female = rng.random(n) < FEMALE_SHARE

    sizes = np.array([c.size for c in CENTRES])
    centre = rng.choice(len(CENTRES), size=n, p=sizes / sizes.sum())
    opened = np.array([day_of(c.opened) for c in CENTRES])
    closed = np.array([day_of(c.closed) for c in CENTRES])
    span = closed[centre] - opened[centre]
    position = rng.random(n)
    recruited = _weekday(rng, opened[centre] + np.floor(position * span).astype(np.int64))

    age_years = rng.choice(_AGES, size=n, p=_AGE_WEIGHTS / _AGE_WEIGHTS.sum())
    birth = recruited - np.floor((age_years + rng.random(n)) * 365.25).astype(np.int64)
    birth = np.clip(birth, day_of("1934-01-01"), day_of("1971-12-31"))  # Showcase field 34 range
    birth_year, birth_month, _ = year_month_day(birth)
    age = (recruited - birth) / 365.25

    country_of = {"E": 0, "S": 1, "W": 2}
    country = np.array([country_of[c.country] for c in CENTRES])[centre]

    ethnic = _ethnicity(rng, centre)
    south_asian = np.isin(ethnic, list(SOUTH_ASIAN))
    black = np.isin(ethnic, list(BLACK))
    white = np.isin(ethnic, list(WHITE))

    urban = _urban_rural(rng, country)
    rural = np.isin(urban, list(RURAL))

    # Townsend: area deprivation, bounded below and skewed right (Showcase min -6.3, max 11).
    shift = np.array([c.deprivation for c in CENTRES])[centre] / 3.1
    latent = shift - 0.45 * rural + 0.5 * (~white) + 0.9 * rng.standard_normal(n)
    townsend = match_within(np.exp(0.42 * latent), *moments(d, 189), -6.26, 11.0)
    tdi_z = standardise(townsend)

    # Younger and less deprived participants more often hold degrees (UKB: 33% overall).
    edu_score = -0.045 * (age - 56.5) - 0.35 * tdi_z + 0.15 * (~female) + rng.standard_normal(n)
    education = by_rank(edu_score, _QUALIFICATION_SHARES)

    household_score = -0.03 * np.abs(age - 50) + 0.1 * (~female) + 0.4 * south_asian
    household = 1 + by_rank(household_score + rng.standard_normal(n), HOUSEHOLD_SHARES)

    income_score = (
        0.35 * education
        - 0.05 * np.maximum(age - 58, 0)
        - 0.35 * tdi_z
        + 0.35 * np.minimum(household, 3)
        + rng.standard_normal(n)
    )
    income = 1 + by_rank(income_score, INCOME_SHARES)

    lost = np.full(n, CENSOR, dtype=np.int64)
    gone = rng.random(n) < 1298 / 502_413  # Showcase field 191
    after = np.floor(rng.random(int(gone.sum())) * (CENSOR - recruited[gone])).astype(np.int64)
    lost[gone] = recruited[gone] + after
    values[191] = np.where(gone, lost, np.nan).astype(np.float64)[:, None]

    device_ids, device = _devices(rng, centre, position)

    values[31] = (~female).astype(np.float64)[:, None]
    values[34] = birth_year.astype(np.float64)[:, None]
    values[52] = birth_month.astype(np.float64)[:, None]
    values[53] = recruited.astype(np.float64)[:, None]
    values[54] = np.array([c.code for c in CENTRES], dtype=np.float64)[centre][:, None]
    values[21003] = whole_years_between(birth, recruited).astype(np.float64)[:, None]
    values[21000] = ethnic.astype(np.float64)[:, None]
    values[189] = townsend[:, None]
    values[20118] = urban.astype(np.float64)[:, None]
    values[6138] = _qualifications(rng, education)
    values[738] = income.astype(np.float64)[:, None]
    values[709] = household.astype(np.float64)[:, None]

    return Demographics(
        n=n, female=female, birth=birth, recruited=recruited, age=age, centre_index=centre,
        country=country, ethnicity=ethnic, south_asian=south_asian, black=black, white=white,
        townsend=townsend, tdi_z=tdi_z, rural=rural, education=education, income=income,
        household=household, lost=lost, values=values, device_ids=device_ids, device=device,
    )  # fmt: skip


def _weekday(rng: np.random.Generator, day: IntArray) -> IntArray:
    """Centres worked weekdays and some Saturdays, never Sundays (1970-01-01 was a Thursday)."""
    weekday = (day + 3) % 7  # 0 Monday … 6 Sunday
    moved = (weekday == 6) | ((weekday == 5) & (rng.random(day.shape[0]) < 0.75))
    return np.where(moved, day - weekday + rng.integers(0, 5, size=day.shape[0]), day)


def _ethnicity(rng: np.random.Generator, centre: IntArray) -> IntArray:
    codes = np.array(list(ETHNICITY), dtype=np.int64)
    base = np.array(list(ETHNICITY.values()))
    minority = ~np.isin(codes, list(WHITE | {-1, -3}))
    diversity = np.array([c.diversity for c in CENTRES])
    sizes = np.array([c.size for c in CENTRES])
    # Normalise the centre multipliers so that the cohort-wide shares stay UKB's.
    diversity = diversity / np.average(diversity, weights=sizes)
    table = np.where(minority[None, :], base[None, :] * diversity[:, None], base[None, :])
    white_total = base[~minority].sum()
    table[:, ~minority] *= (1 - table[:, minority].sum(axis=1, keepdims=True)) / white_total
    return codes[choice_by_group(rng, centre, np.clip(table, 1e-9, None))]


def _urban_rural(rng: np.random.Generator, country: IntArray) -> IntArray:
    out = np.empty(country.shape[0], dtype=np.int64)
    for scheme, mask in ((URBAN_RURAL_S, country == 1), (URBAN_RURAL_EW, country != 1)):
        codes = np.array(list(scheme), dtype=np.int64)
        p = np.array(list(scheme.values()))
        out[mask] = codes[rng.choice(codes.shape[0], size=int(mask.sum()), p=p / p.sum())]
    return out


def _qualifications(rng: np.random.Generator, education: IntArray) -> FloatArray:
    """Field 6138 as array slots: every qualification ticked, in code order; -7 if none."""
    n = education.shape[0]
    ticked = np.zeros((n, 6), dtype=np.bool_)  # codes 1..6
    for level, name in enumerate(_QUALIFICATION_LEVELS):
        rows = education == level
        if name in _HIGHEST_CODE:
            ticked[rows, _HIGHEST_CODE[name] - 1] = True
        for code, p in _ALSO_TICKED.get(name, {}).items():
            ticked[rows, code - 1] |= rng.random(int(rows.sum())) < p
        if name == "vocational":  # NVQ/HND and/or other professional only
            k = int(rows.sum())
            pick = rng.random(k)
            ticked[rows, 4] = pick < 0.6
            ticked[rows, 5] = (pick >= 0.45) | (pick < 0.1)
    return pack_slots(ticked, np.arange(1, 7), empty_code=-7)


def pack_slots(ticked: BoolArray, codes: IntArray, empty_code: int | None) -> FloatArray:
    """Left-justify ticked codes into array slots (UKB fills a0, a1 … in order)."""
    n, k = ticked.shape
    slot = np.cumsum(ticked, axis=1) - 1
    out = np.full((n, k), np.nan)
    rows, cols = np.nonzero(ticked)
    out[rows, slot[rows, cols]] = codes[cols]
    if empty_code is not None:
        out[~ticked.any(axis=1), 0] = empty_code
    width = max(int(ticked.sum(axis=1).max(initial=0)), 1)
    return out[:, :width]


def _devices(
    rng: np.random.Generator, centre: IntArray, position: FloatArray
) -> tuple[list[str], IntArray]:
    """Field 36: each centre had a few Omron monitors, replaced over time."""
    per_centre = rng.integers(2, 6, size=len(CENTRES))
    serials = rng.choice(np.arange(1000, 10000), size=int(per_centre.sum()), replace=False)
    first = np.concatenate(([0], np.cumsum(per_centre)[:-1]))
    k = per_centre[centre]
    slot = np.minimum(np.floor(position * k).astype(np.int64), k - 1)
    swapped = rng.random(centre.shape[0]) < 0.15  # several devices in use at once
    slot = np.where(swapped, rng.integers(0, 1 << 30, size=centre.shape[0]) % k, slot)
    return [str(s) for s in serials], first[centre] + slot
