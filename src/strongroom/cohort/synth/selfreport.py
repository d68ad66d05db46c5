"""Touchscreen and nurse-interview answers about health, consistent with the baseline states.

Diabetes (2443), vascular problems (6150), medication (6177 men, 6153 women) and the
self-reported illness codes (20002) are read off the same states that shaped HbA1c, blood
pressure and LDL, so a researcher cross-checking them finds what they would in UK Biobank.
"""

from __future__ import annotations

import numpy as np

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth import codes
from strongroom.cohort.synth.demographics import Demographics, pack_slots
from strongroom.cohort.synth.draws import (
    BoolArray,
    FloatArray,
    IntArray,
    by_rank,
    choice_by_group,
    gamma_frailty,
    segment_starts,
)
from strongroom.cohort.synth.health import Health
from strongroom.cohort.synth.lifestyle import Lifestyle
from strongroom.cohort.synth.measures import Body
from strongroom.cohort.synth.targets import participant_share

# Field 2178 (coding 100508) among those who answered: excellent, good, fair, poor.
HEALTH_RATING = (0.1656, 0.5787, 0.2097, 0.046)
ILLNESS_FIELD = 20002
ILLNESS_SLOTS = 34


def generate(
    rng: np.random.Generator,
    p: Demographics,
    life: Lifestyle,
    b: Body,
    h: Health,
    dictionary: Dictionary,
) -> dict[int, FloatArray]:
    n = p.n
    values: dict[int, FloatArray] = {}
    worse = (
        0.3 * p.tdi_z + 0.07 * (b.bmi - 26) + 0.5 * life.current + 0.1 * life.former
        + 1.0 * h.diabetes_diagnosed + 0.8 * h.cvd + 0.6 * h.copd + 0.25 * h.asthma
        + 0.3 * h.depression + 0.1 * (p.age - 56.5) / 10 - 0.3 * life.activity
        + rng.standard_normal(n)
    )  # fmt: skip
    values[2178] = (1 + by_rank(worse, HEALTH_RATING)).astype(np.float64)[:, None]
    values[2443] = h.diabetes_diagnosed.astype(np.float64)[:, None]

    vascular = np.stack((h.mi, h.angina, h.stroke, h.hypertension), axis=1)
    values[6150] = pack_slots(vascular, np.arange(1, 5), empty_code=-7)

    men = np.stack((h.statin, h.bp_med, h.insulin), axis=1)
    women = np.stack((h.statin, h.bp_med, h.insulin, h.hrt, h.pill), axis=1)
    values[6177] = np.where(p.female[:, None], np.nan, pack_slots(men, np.arange(1, 4), -7))
    women_slots = pack_slots(women, np.arange(1, 6), -7)
    values[6153] = np.where(p.female[:, None], women_slots, np.nan)

    values[ILLNESS_FIELD] = _illnesses(rng, p, h, dictionary)
    return values


def _illnesses(rng: np.random.Generator, p: Demographics, h: Health, d: Dictionary) -> FloatArray:
    """Field 20002: each participant's self-reported illnesses in array slots."""
    n = p.n
    people: list[IntArray] = []
    found: list[IntArray] = []

    for code, state, chance in codes.SELF_REPORT_LINKED:
        hit = np.flatnonzero(h.state(state) & (rng.random(n) < chance))
        people.append(hit)
        found.append(np.full(hit.shape[0], code, dtype=np.int64))

    linked = np.zeros(n, dtype=np.bool_)
    for hit in people:
        linked[hit] = True
    # Other illnesses: a Poisson number per person, codes drawn by sex and age band. Reporting
    # is clustered (gamma frailty): some people list many conditions, most a few or none.
    other = codes.SELF_REPORT_OTHER
    band_mid = np.arange(37.5, 75, 5)
    table = np.zeros((2 * band_mid.shape[0], len(other) + 1))
    for k, (_, share, sex, slope) in enumerate(other):
        # a one-sex code's cohort share is twice its share within that sex, roughly
        w = share * (2.0 if sex else 1.0) * np.exp(slope * (band_mid - 56.5) / 10)
        table[: band_mid.shape[0], k] = 0.0 if sex == "M" else w
        table[band_mid.shape[0] :, k] = 0.0 if sex == "F" else w
    tail_codes = _tail_codes(d)
    if tail_codes.shape[0]:
        table[:, -1] = codes.SELF_REPORT_TAIL_RATE
    band = np.clip(((p.age - 35) // 5).astype(np.int64), 0, band_mid.shape[0] - 1)
    group = band + band_mid.shape[0] * (~p.female).astype(np.int64)
    frailty = gamma_frailty(rng, n, 1.2)
    expected = frailty * table.sum(axis=1)[group]
    scale = _scale_for(linked, expected, participant_share(d, ILLNESS_FIELD, 385_860 / 502_413))
    count = rng.poisson(scale * expected)
    owner = np.repeat(np.arange(n, dtype=np.int64), count)
    drawn = choice_by_group(rng, group[owner], table)
    listed = np.array([code for code, *_ in other] + [0], dtype=np.int64)[drawn]
    is_tail = drawn == len(other)
    if tail_codes.shape[0]:
        weights = 1.0 / rng.permutation(np.arange(1, tail_codes.shape[0] + 1))  # Zipf tail
        listed[is_tail] = rng.choice(tail_codes, size=int(is_tail.sum()), p=weights / weights.sum())
    people.append(owner)
    found.append(listed)

    owner = np.concatenate(people)
    code_of = np.concatenate(found)
    # Unique (person, code) pairs, then a random order within each person (answers were given
    # in no particular order): both by sorting packed int64 keys.
    pair = np.sort((owner << 20) | code_of)
    keep = np.ones(pair.shape[0], dtype=np.bool_)
    keep[1:] = pair[1:] != pair[:-1]
    pair = pair[keep]
    shuffle = rng.integers(0, 1 << 20, size=pair.shape[0])
    key = np.sort(((pair >> 20) << 40) | (shuffle << 20) | (pair & ((1 << 20) - 1)))
    owner, code_of = key >> 40, key & ((1 << 20) - 1)
    slot = segment_starts(owner)
    keep = slot < ILLNESS_SLOTS
    width = max(int(slot[keep].max(initial=0)) + 1, 1)
    out = np.full((n, width), np.nan)
    out[owner[keep], slot[keep]] = code_of[keep]
    return out


def _scale_for(linked: BoolArray, expected: FloatArray, target: float) -> float:
    """Multiplier on unlinked reporting rates that gives ``target`` with at least one code."""
    lo, hi = 0.0, 20.0
    for _ in range(50):
        mid = (lo + hi) / 2
        share = float(np.mean(np.where(linked, 1.0, 1.0 - np.exp(-mid * expected))))
        lo, hi = (mid, hi) if share < target else (lo, mid)
    return (lo + hi) / 2


def _tail_codes(d: Dictionary) -> IntArray:
    """Rarer selectable codes of coding 6 that the tables above do not list."""
    fld = d.fields.get(ILLNESS_FIELD)
    coding = d.coding_of(fld) if fld is not None else None
    if coding is None:
        return np.zeros(0, dtype=np.int64)
    listed = {c for c, _, _ in codes.SELF_REPORT_LINKED} | {c for c, *_ in codes.SELF_REPORT_OTHER}
    pool = coding.selectable or frozenset(coding.codes)
    tail = sorted(int(c) for c in pool if int(c) > 0 and int(c) != 99999 and int(c) not in listed)
    return np.array(tail, dtype=np.int64)
