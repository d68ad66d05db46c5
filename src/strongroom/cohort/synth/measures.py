"""Physical measures and blood assays as structural equations, then matched to the Showcase.

Each measure is built from the person's age, sex, ethnicity, deprivation, lifestyle, body size
and baseline health, plus noise; one affine map per field then sets the cohort mean and SD to the
dictionary's Showcase values. The affine step keeps every correlation, so the dependencies set
here survive. Coefficient strengths were checked against NHANES 2009-12 adults aged 40-70
(R package NHANES, de-duplicated, n=2,362), which gives: SBP +0.45 mmHg per year of age,
+3.3 in men, readings 1 and 2 r=0.93; SBP-DBP r=0.40; HDL -0.02 mmol/L per BMI unit, -0.31 in
men, HDL-BMI r=-0.34; height-weight r=0.46. UK Biobank's automated readings are steeper with
age and BMI than NHANES (which includes treated hypertensives), so SBP uses +0.55/year.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth.demographics import Demographics
from strongroom.cohort.synth.draws import (
    FloatArray,
    lognormal_moments,
    match_moments,
    match_within,
    skewed_moments,
    standardise,
)
from strongroom.cohort.synth.lifestyle import Lifestyle
from strongroom.cohort.synth.targets import moments

if TYPE_CHECKING:
    from strongroom.cohort.synth.health import Health


@dataclass
class Body:
    height: FloatArray  # cm
    weight: FloatArray  # kg
    bmi: FloatArray
    values: dict[int, FloatArray]


@dataclass
class Latent:
    """Each person's usual, untreated levels, before medication and measurement noise."""

    sbp: FloatArray
    ldl: FloatArray


@dataclass
class Measured:
    sbp: FloatArray  # mean of the two readings
    ldl: FloatArray
    hdl: FloatArray
    hba1c: FloatArray
    creatinine: FloatArray
    fev_ratio: FloatArray  # FEV1/FVC of the first blow
    values: dict[int, FloatArray]


def body(rng: np.random.Generator, p: Demographics, life: Lifestyle, d: Dictionary) -> Body:
    n = p.n
    male = (~p.female).astype(np.float64)
    age = p.age - 56.5
    # Height: sex, a secular trend (older cohorts shorter), deprivation, ancestry.
    z = rng.standard_normal(n)
    height_raw = (
        np.where(p.female, 162.6 + 6.2 * z, 175.9 + 6.8 * z)
        - 0.12 * age - 0.5 * p.tdi_z - 4.5 * p.south_asian - 1.5 * ~p.white
    )  # fmt: skip
    height = match_moments(height_raw, *moments(d, 50))
    # BMI: right-skewed (UKB skew ~0.9), higher with deprivation, lower in active people and
    # current smokers, slightly higher in ex-smokers.
    bmi_score = (
        0.2 * male + 0.15 * age / 10 + 0.3 * p.tdi_z - 0.2 * life.current + 0.1 * life.former
        - 0.25 * life.activity + 0.3 * p.black - 0.4 * (p.ethnicity == 5) + rng.standard_normal(n)
    )  # fmt: skip
    bmi = skewed_moments(bmi_score, *moments(d, 21001), sigma=0.29)
    # Weight follows from BMI and height, so BMI = weight / height² holds for every row.
    weight = bmi * (height / 100) ** 2
    waist = match_moments(
        2.3 * bmi + 11 * male + 0.12 * age + 4.5 * rng.standard_normal(n), *moments(d, 48)
    )
    hip = match_moments(1.6 * bmi - 0.8 * male + 3.6 * rng.standard_normal(n), *moments(d, 49))
    fat = match_moments(
        1.05 * bmi + 11.5 * p.female + 0.08 * age + 2.6 * rng.standard_normal(n),
        *moments(d, 23099),
    )
    values = {
        50: height[:, None],
        21002: weight[:, None],
        21001: bmi[:, None],
        48: waist[:, None],
        49: hip[:, None],
        23099: np.clip(fat, 5, 70)[:, None],
    }
    return Body(height, weight, bmi, values)


def latent(rng: np.random.Generator, p: Demographics, life: Lifestyle, b: Body) -> Latent:
    n = p.n
    male = (~p.female).astype(np.float64)
    sbp = (
        0.55 * (p.age - 56.5) + 3.5 * male + 0.7 * (b.bmi - 26) + 3.0 * (life.alcohol == 1)
        + 2.5 * p.black + 0.5 * p.tdi_z + 14.0 * rng.standard_normal(n)
    )  # fmt: skip
    ldl = (
        0.18 * p.female * (p.age > 52) + 0.012 * (p.age - 56.5) + 0.03 * (b.bmi - 26)
        - 0.15 * p.south_asian + 0.8 * rng.standard_normal(n)
    )  # fmt: skip
    return Latent(sbp, ldl)


def measured(
    rng: np.random.Generator,
    p: Demographics,
    life: Lifestyle,
    b: Body,
    lat: Latent,
    h: Health,
    d: Dictionary,
) -> Measured:
    n = p.n
    male = (~p.female).astype(np.float64)
    age = p.age - 56.5
    values: dict[int, FloatArray] = {}
    normal = rng.standard_normal

    # Blood pressure: two automated readings; the first runs higher (white-coat, then settling).
    sbp_true = lat.sbp - 6.0 * h.bp_med + 1.5 * h.diabetes
    sbp_pair = np.stack((sbp_true + 1.5 + 5.5 * normal(n), sbp_true - 1.5 + 5.5 * normal(n)), 1)
    values[4080] = np.clip(_match_slots(sbp_pair, *moments(d, 4080)), 70, 270)
    dbp_true = (
        0.42 * (lat.sbp - lat.sbp.mean()) - 0.25 * age + 2.5 * male + 0.45 * (b.bmi - 26)
        - 3.0 * h.bp_med + 7.5 * normal(n)
    )  # fmt: skip
    dbp_pair = np.stack((dbp_true + 1.0 + 4.5 * normal(n), dbp_true - 1.0 + 4.5 * normal(n)), 1)
    values[4079] = np.clip(_match_slots(dbp_pair, *moments(d, 4079)), 30, 150)
    pulse_true = (
        -2.5 * male + 0.2 * (b.bmi - 26) + 3.0 * life.current + 2.5 * h.diabetes
        - 2.0 * life.activity - 0.05 * age + 9.5 * normal(n)
    )  # fmt: skip
    pulse_pair = np.stack(
        (pulse_true + 0.8 + 3.5 * normal(n), pulse_true - 0.8 + 3.5 * normal(n)), 1
    )
    # Resting pulse is right-skewed (bradycardic athletes are rarer than tachycardic smokers).
    pulse_pair = np.exp(0.15 * pulse_pair / pulse_pair.std())
    values[102] = np.clip(_match_slots(pulse_pair, *moments(d, 102)), 30, 200)

    # Lipids: statins lower LDL by about a third; HDL higher in women and drinkers, lower with
    # BMI, smoking and diabetes; triglycerides log-normal, inverse to HDL. Total cholesterol is
    # built from its parts (Friedewald: TC ≈ LDL + HDL + TG/2.2), so the four stay coherent.
    ldl = match_moments(lat.ldl - 1.25 * h.statin, *moments(d, 30780))
    hdl_noise = normal(n)
    hdl_log = (
        0.225 * p.female - 0.022 * (b.bmi - 26) + 0.06 * (life.alcohol <= 2) - 0.06 * life.current
        - 0.05 * h.diabetes - 0.05 * p.south_asian + 0.21 * hdl_noise
    )  # fmt: skip
    hdl = skewed_moments(hdl_log, *moments(d, 30760), sigma=0.25)
    tg_log = (
        0.18 * male + 0.035 * (b.bmi - 26) + 0.25 * h.diabetes + 0.006 * age
        + 0.05 * (life.alcohol == 1) + 0.08 * life.current - 0.18 * hdl_noise + 0.38 * normal(n)
    )  # fmt: skip
    tg = lognormal_moments(tg_log, *moments(d, 30870))
    tc = match_moments(ldl + hdl + tg / 2.2 + 0.15 * normal(n), *moments(d, 30690))
    values[30780] = ldl[:, None]
    values[30760] = np.maximum(hdl, 0.2)[:, None]
    values[30870] = np.maximum(tg, 0.23)[:, None]
    values[30690] = np.maximum(tc, 0.6)[:, None]

    # Glycaemia: modest rise with age and BMI in everyone; far higher in diabetes, highest in
    # diagnosed (often treated but long-standing) and type 1.
    diab_excess = np.where(
        h.diabetes,
        np.where(h.diabetes_diagnosed, 16.0, 10.0) * np.exp(0.45 * normal(n) - 0.1),
        0.0,
    )
    hba1c_raw = (
        0.12 * age + 0.15 * (b.bmi - 26) + 1.5 * p.south_asian + 1.5 * p.black
        + 0.6 * life.current + 2.5 * normal(n) + 2.0 * np.exp(0.5 * normal(n)) + diab_excess
    )  # fmt: skip
    hba1c = match_within(hba1c_raw, *moments(d, 30750), 15, 180)
    glucose_raw = (
        np.exp(0.13 * normal(n)) * (1 + 0.004 * age + 0.005 * (b.bmi - 26))
        + 0.035 * diab_excess * np.exp(0.35 * normal(n))
    )  # fmt: skip
    values[30750] = hba1c[:, None]
    values[30740] = match_within(glucose_raw, *moments(d, 30740), 0.9, 40)[:, None]

    # Creatinine: muscle mass (men), age, and a kidney-disease tail.
    ckd = rng.random(n) < 0.01 + 0.02 * h.diabetes + 0.01 * h.hypertension
    creat_log = 0.21 * male + 0.004 * age + 0.003 * (b.bmi - 26) + 0.12 * normal(n) + 0.45 * ckd
    creatinine = match_within(np.exp(creat_log), *moments(d, 30700), 10, 1500)
    values[30700] = creatinine[:, None]

    # Inflammation and blood counts.
    crp_log = (
        0.09 * (b.bmi - 26) + 0.35 * life.current + 0.1 * p.female + 0.01 * age
        + 0.1 * h.diabetes - 0.1 * life.activity + normal(n)
    )  # fmt: skip
    crp = lognormal_moments(crp_log, *moments(d, 30710))
    values[30710] = match_within(crp, *moments(d, 30710), 0.08, 80)[:, None]  # assay range
    wbc_log = (
        0.13 * life.current + 0.012 * (b.bmi - 26) + 0.05 * standardise(crp_log)
        - 0.15 * p.black + 0.2 * normal(n)
    )  # fmt: skip
    wbc = skewed_moments(wbc_log, *moments(d, 30000), sigma=0.27)
    values[30000] = match_within(wbc, *moments(d, 30000), 0.5, 100)[:, None]
    iron_deficient = p.female & (rng.random(n) < 0.04)
    hb_raw = 13.45 + 1.45 * male + 0.25 * life.current - 0.5 * p.black - 1.6 * iron_deficient
    hb_raw = hb_raw - 0.005 * age + 0.85 * normal(n)
    values[30020] = match_within(hb_raw, *moments(d, 30020), 5, 22)[:, None]

    # Spirometry: three blows. Volume rises with height, falls with age, smoking and pack years;
    # the FEV1/FVC ratio falls with age and smoking (obstruction).
    packs = np.nan_to_num(life.pack_years)
    fvc_true = (
        0.055 * (b.height - 169) + 0.35 * male - 0.028 * age - 0.15 * life.current
        - 0.05 * life.former - 0.004 * packs - 0.4 * p.black - 0.35 * p.south_asian
        - 0.012 * (b.bmi - 26) + 0.45 * normal(n)
    )  # fmt: skip
    fvc_true = fvc_true + 3.6
    ratio = (
        0.77 - 0.0025 * age - 0.035 * life.current - 0.012 * life.former - 0.0012 * packs
        - 0.12 * h.copd + 0.045 * normal(n)
    )  # fmt: skip
    effort = 1 - np.where(rng.random((n, 3)) < 0.06, rng.uniform(0.05, 0.35, (n, 3)), 0.0)
    fvc_blows = np.maximum(fvc_true, 0.6)[:, None] * effort * (1 + 0.035 * normal((n, 3)))
    ratio_blows = np.clip(ratio[:, None] * (1 + 0.02 * normal((n, 3))), 0.25, 0.99)
    fvc = _match_slots(fvc_blows, *moments(d, 3062))
    fev = _match_slots(fvc_blows * ratio_blows, *moments(d, 3063))
    fvc = np.maximum(fvc, 0.3)
    values[3062] = fvc
    values[3063] = np.clip(fev, 0.2, fvc)

    rt_log = (
        0.011 * age + 0.03 * p.female - 0.03 * p.education + 0.03 * p.tdi_z
        + 0.04 * h.diabetes + 0.17 * normal(n)
    )  # fmt: skip
    values[20023] = match_within(np.exp(rt_log), *moments(d, 20023), 150, 2000)[:, None]

    return Measured(
        sbp=values[4080].mean(axis=1), ldl=ldl, hdl=hdl, hba1c=hba1c, creatinine=creatinine,
        fev_ratio=values[3063][:, 0] / values[3062][:, 0], values=values,
    )  # fmt: skip


def _match_slots(x: FloatArray, mean: float, sd: float) -> FloatArray:
    """One affine map across all array slots, so slot differences and correlations survive."""
    flat = match_moments(x.reshape(-1), mean, sd)
    return flat.reshape(x.shape)
