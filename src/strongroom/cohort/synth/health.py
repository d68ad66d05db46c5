"""Health at recruitment: family history, diabetes, hypertension, heart disease, medication.

These states drive the measures (treated blood pressure, statin-lowered LDL, diabetic HbA1c),
the self-reported fields and the hospital records that follow, so that all three agree.
Prevalences are UK Biobank baseline figures (self-report and medication fields).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strongroom.cohort.synth.demographics import Demographics
from strongroom.cohort.synth.draws import (
    BoolArray,
    FloatArray,
    IntArray,
    bernoulli_calibrated,
    sigmoid,
)
from strongroom.cohort.synth.lifestyle import Lifestyle
from strongroom.cohort.synth.measures import Body, Latent


@dataclass(frozen=True)
class FatherIllness:
    name: str
    code: int  # coding 1010
    share: float  # of participants reporting it
    age_slope: float  # log-odds per 10 years of the participant's age (older fathers)
    group: int  # the touchscreen screen it was on (1 or 2)


# Field 20107, instance 0, shares of participants (Showcase).
FATHER: tuple[FatherIllness, ...] = (
    FatherIllness("heart", 1, 0.275, 0.25, 1),
    FatherIllness("stroke", 2, 0.115, 0.3, 1),
    FatherIllness("hypertension", 8, 0.205, 0.0, 1),
    FatherIllness("bronchitis", 6, 0.07, 0.1, 1),
    FatherIllness("diabetes", 9, 0.085, -0.1, 1),
    FatherIllness("dementia", 10, 0.055, 0.4, 1),
    FatherIllness("parkinsons", 11, 0.022, 0.2, 2),
    FatherIllness("depression", 12, 0.04, -0.2, 2),
    FatherIllness("lung_cancer", 3, 0.075, 0.15, 2),
    FatherIllness("bowel_cancer", 4, 0.045, 0.1, 2),
    FatherIllness("prostate_cancer", 13, 0.055, 0.2, 2),
    FatherIllness("breast_cancer", 5, 0.0015, 0.0, 2),
)
FATHER_UNKNOWN = 0.035  # did not know their father's history (-11 and -21)
FATHER_REFUSED = 0.004  # -13 and -23


@dataclass
class Health:
    father: dict[str, BoolArray]
    diabetes: BoolArray  # has diabetes at recruitment, diagnosed or not
    diabetes_diagnosed: BoolArray
    type1: BoolArray
    diabetes_onset: IntArray  # day; after recruitment for the undiagnosed
    hypertension: BoolArray  # diagnosed
    hypertension_onset: IntArray
    bp_med: BoolArray
    statin: BoolArray
    insulin: BoolArray
    hrt: BoolArray
    pill: BoolArray
    mi: BoolArray
    angina: BoolArray
    stroke: BoolArray
    af: BoolArray
    copd: BoolArray
    asthma: BoolArray
    hypothyroid: BoolArray
    depression: BoolArray
    cvd_onset: IntArray
    other_onset: IntArray  # onset of the remaining baseline states, before recruitment
    values: dict[int, FloatArray]

    @property
    def cvd(self) -> BoolArray:
        return np.asarray(self.mi | self.angina | self.stroke)

    def state(self, name: str) -> BoolArray:
        """A baseline state by name (the names the code tables use)."""
        derived = {
            "chd": self.mi | self.angina,
            "diabetes_t2": self.diabetes & ~self.type1,
        }
        if name in derived:
            return np.asarray(derived[name])
        value = getattr(self, name)
        if not (isinstance(value, np.ndarray) and value.dtype == np.bool_):
            raise KeyError(f"no baseline state called {name!r}")
        return value

    def onset(self, name: str) -> IntArray:
        """The day a baseline state began (only meaningful where the state is present)."""
        if name in ("hypertension",):
            return self.hypertension_onset
        if name in ("diabetes", "diabetes_t2", "type1"):
            return self.diabetes_onset
        if name in ("chd", "mi", "angina", "stroke"):
            return self.cvd_onset
        return self.other_onset


def generate(
    rng: np.random.Generator, p: Demographics, life: Lifestyle, b: Body, lat: Latent
) -> Health:
    n = p.n
    male = (~p.female).astype(np.float64)
    age10 = (p.age - 56.5) / 10
    values: dict[int, FloatArray] = {}
    father, values[20107] = _father(rng, p)

    d_score = (
        0.5 * age10 + 0.5 * male + 0.12 * (b.bmi - 26) + 1.1 * p.south_asian + 0.6 * p.black
        + 0.2 * p.tdi_z + 0.7 * father["diabetes"] + 0.2 * life.current
    )  # fmt: skip
    diabetes = bernoulli_calibrated(rng, d_score, 0.063)
    type1 = diabetes & (rng.random(n) < 0.07)
    diagnosed = type1 | (diabetes & (rng.random(n) < 0.83))
    years_since = np.where(
        type1, p.age - rng.uniform(5, 35, n), rng.exponential(6.0, n)
    )  # type 1 starts in youth
    onset = p.recruited - np.floor(np.minimum(years_since, p.age - 2) * 365.25).astype(np.int64)
    # Undiagnosed diabetes is found within a few years of recruitment.
    found = p.recruited + np.floor(rng.exponential(2.5, n) * 365.25).astype(np.int64)
    diabetes_onset = np.where(diagnosed, onset, found)

    ht_score = (
        0.06 * lat.sbp + 0.35 * age10 + 0.05 * (b.bmi - 26) + 0.5 * diabetes
        + 0.4 * father["hypertension"]
    )  # fmt: skip
    hypertension = bernoulli_calibrated(rng, ht_score, 0.275)
    ht_onset = p.recruited - np.floor(rng.exponential(7.0, n) * 365.25).astype(np.int64)
    bp_med = (hypertension & (rng.random(n) < 0.72)) | (rng.random(n) < 0.01)

    cvd_score = (
        0.8 * age10 + 0.9 * male + 0.6 * life.current + 0.2 * life.former + 0.6 * diabetes
        + 0.5 * hypertension + 0.25 * p.tdi_z + 0.15 * lat.ldl + 0.4 * father["heart"]
        + 0.4 * p.south_asian
    )  # fmt: skip
    mi = bernoulli_calibrated(rng, cvd_score, 0.023)
    angina = bernoulli_calibrated(rng, cvd_score + 1.8 * mi, 0.031)
    stroke_score = cvd_score - 0.4 * male + 0.4 * hypertension + 0.3 * father["stroke"]
    stroke = bernoulli_calibrated(rng, stroke_score, 0.014)
    cvd_onset = p.recruited - np.floor(rng.exponential(5.0, n) * 365.25).astype(np.int64)
    af = bernoulli_calibrated(
        rng, 0.9 * age10 + 0.5 * male + 0.05 * (b.bmi - 26) + 0.4 * hypertension, 0.012
    )
    packs = np.nan_to_num(life.pack_years)
    copd = bernoulli_calibrated(rng, 0.04 * packs + 0.4 * age10 + 0.3 * p.tdi_z, 0.02)
    asthma = bernoulli_calibrated(
        rng, 0.2 * p.female + 0.04 * (b.bmi - 26) + 0.15 * p.tdi_z - 0.1 * age10, 0.118
    )
    hypothyroid = bernoulli_calibrated(rng, 1.5 * p.female + 0.4 * age10, 0.049)
    depression = bernoulli_calibrated(
        rng, 0.6 * p.female + 0.3 * p.tdi_z + 0.3 * life.current - 0.2 * age10, 0.058
    )
    other_onset = p.recruited - np.floor(rng.exponential(8.0, n) * 365.25).astype(np.int64)

    statin_score = (
        2.5 * (mi | angina) + 1.5 * stroke + 1.4 * diabetes + 0.8 * hypertension + 0.6 * age10
        + 0.4 * male + 0.8 * lat.ldl
    )  # fmt: skip
    statin = bernoulli_calibrated(rng, statin_score, 0.173)
    insulin = type1 | (diagnosed & (rng.random(n) < 0.12))
    # HRT peaked in women in their fifties; the pill is for the under-50s.
    hrt = p.female & (rng.random(n) < 0.16 * sigmoid(-0.15 * (np.abs(p.age - 57) - 6) * 2))
    pill = p.female & (p.age < 50) & (rng.random(n) < 0.06)

    return Health(
        father=father, diabetes=diabetes, diabetes_diagnosed=diagnosed, type1=type1,
        diabetes_onset=diabetes_onset, hypertension=hypertension, hypertension_onset=ht_onset,
        bp_med=bp_med, statin=statin, insulin=insulin, hrt=hrt, pill=pill, mi=mi,
        angina=angina, stroke=stroke, af=af, copd=copd, asthma=asthma, hypothyroid=hypothyroid,
        depression=depression, cvd_onset=cvd_onset, other_onset=other_onset, values=values,
    )  # fmt: skip


def _father(rng: np.random.Generator, p: Demographics) -> tuple[dict[str, BoolArray], FloatArray]:
    """Field 20107: the father's illnesses, with UKB's per-screen "none"/"don't know" codes."""
    n = p.n
    age10 = (p.age - 56.5) / 10
    unknown = rng.random(n) < FATHER_UNKNOWN + FATHER_REFUSED
    refused = unknown & (rng.random(n) < FATHER_REFUSED / (FATHER_UNKNOWN + FATHER_REFUSED))
    has: dict[str, BoolArray] = {}
    for ill in FATHER:
        logit = np.log(ill.share / (1 - ill.share)) + ill.age_slope * age10
        has[ill.name] = (rng.random(n) < sigmoid(logit)) & ~unknown

    columns: list[FloatArray] = []
    for group in (1, 2):
        members = [ill for ill in FATHER if ill.group == group]
        ticked = np.stack([has[ill.name] for ill in members], axis=1)
        codes = np.array([ill.code for ill in members], dtype=np.float64)
        slots = np.where(ticked, codes[None, :], np.nan)
        any_ticked = ticked.any(axis=1)
        none = np.where(~any_ticked & ~unknown, -10 * group - 7, np.nan)
        answer = np.where(refused, -10 * group - 3, np.where(unknown, -10 * group - 1, none))
        columns.append(np.column_stack((slots, answer)))
    return has, _left_justify(np.concatenate(columns, axis=1))


def _left_justify(slots: FloatArray) -> FloatArray:
    """Move each row's non-null values to the first array slots, keeping their order."""
    present = ~np.isnan(slots)
    order = np.argsort(~present, axis=1, kind="stable")
    packed = np.take_along_axis(slots, order, axis=1)
    width = max(int(present.sum(axis=1).max(initial=0)), 1)
    return packed[:, :width]
