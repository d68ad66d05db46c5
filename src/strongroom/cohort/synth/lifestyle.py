"""Smoking, alcohol, physical activity, sleep and diet, shaped by age, sex and deprivation.

Category shares are UK Biobank's baseline answers; the integer fields use distributions tuned
so that their mean and SD equal the Showcase values (which exclude the negative answer codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth.demographics import Demographics
from strongroom.cohort.synth.draws import (
    BoolArray,
    FloatArray,
    IntArray,
    by_rank,
    lognormal_moments,
)
from strongroom.cohort.synth.targets import moments

# Field 20116 among those who answered: never 54.9%, previous 34.6%, current 10.5%.
EVER_SMOKED = 0.451
CURRENT_AMONG_EVER = 0.232
# Field 1558, codes 1 (daily) … 6 (never), shares among those who answered.
ALCOHOL_SHARES = (0.2033, 0.2315, 0.2582, 0.1113, 0.1148, 0.0809)
# Field 22032 (IPAQ group, coding 100700): low, moderate, high.
IPAQ_SHARES = (0.189, 0.401, 0.410)
# Field 884, days/week of moderate activity 0..7 (mean 4.31, SD 2.14).
ACTIVE_DAYS = (0.0574, 0.0488, 0.1138, 0.1501, 0.1260, 0.1921, 0.0606, 0.2512)
# Field 1160, hours of sleep 3..12 (mean 7.13, SD 1.04).
SLEEP_HOURS = np.arange(3, 13)
SLEEP_SHARES = (0.0018, 0.0095, 0.0397, 0.1873, 0.4050, 0.2978, 0.0458, 0.0099, 0.0017, 0.0015)
# Field 1289, tablespoons of cooked vegetables a day (mean 2.76, SD 2.05); "less than one" is
# its own code (-10) and is added with the other answer codes.
VEG_SPOONS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20])
VEG_SHARES = (0.0595, 0.153, 0.3161, 0.2321, 0.1118, 0.0547, 0.0318, 0.011, 0.0132, 0.002,
              0.0063, 0.0037, 0.0027, 0.0023)  # fmt: skip


@dataclass
class Lifestyle:
    smoking: IntArray  # 0 never, 1 previous, 2 current
    pack_years: FloatArray  # NaN for never-smokers
    alcohol: IntArray  # coding 100402, 1 daily … 6 never
    activity: FloatArray  # standardised latent activity
    values: dict[int, FloatArray]

    @property
    def current(self) -> BoolArray:
        return np.asarray(self.smoking == 2)

    @property
    def former(self) -> BoolArray:
        return np.asarray(self.smoking == 1)


def generate(rng: np.random.Generator, people: Demographics, d: Dictionary) -> Lifestyle:
    n = people.n
    male = (~people.female).astype(np.float64)
    age10 = (people.age - 56.5) / 10
    values: dict[int, FloatArray] = {}

    # Men, older and more deprived participants more often ever smoked; current smoking falls
    # with age (quitting) and rises steeply with deprivation.
    ever_score = 0.4 * male + 0.12 * age10 + 0.3 * people.tdi_z - 0.08 * people.education
    ever_score = ever_score - 0.8 * people.south_asian * people.female + rng.standard_normal(n)
    ever = by_rank(ever_score, (1 - EVER_SMOKED, EVER_SMOKED)).astype(np.bool_)
    current_score = -0.5 * age10 + 0.45 * people.tdi_z - 0.1 * people.education
    current_score = current_score + rng.standard_normal(n)
    smoking = np.zeros(n, dtype=np.int64)
    smoking[ever] = 1 + by_rank(current_score[ever], (1 - CURRENT_AMONG_EVER, CURRENT_AMONG_EVER))

    # Pack years (field 20161): skewed, heavier in current smokers, men and older people.
    pack_years = np.full(n, np.nan)
    log_score = (
        0.45 * (smoking == 2) + 0.25 * male + 0.25 * age10 + 0.12 * people.tdi_z
        + 0.75 * rng.standard_normal(n)
    )  # fmt: skip
    pack_years[ever] = np.maximum(lognormal_moments(log_score[ever], *moments(d, 20161)), 0.1)

    drink_score = (
        0.45 * male + 0.12 * age10 - 0.25 * people.tdi_z + 0.12 * people.education
        - 1.6 * people.south_asian - 0.8 * people.black + 0.15 * (smoking > 0)
        + rng.standard_normal(n)
    )  # fmt: skip
    alcohol = 6 - by_rank(drink_score, ALCOHOL_SHARES[::-1])

    # Activity: retired participants report more moderate activity; deprivation less.
    activity = 0.15 * age10 - 0.12 * people.tdi_z - 0.1 * (smoking == 2) + rng.standard_normal(n)
    values[884] = by_rank(activity + 0.5 * rng.standard_normal(n), ACTIVE_DAYS).astype(np.float64)[
        :, None
    ]
    values[22032] = by_rank(activity + 0.6 * rng.standard_normal(n), IPAQ_SHARES).astype(
        np.float64
    )[:, None]

    sleep_score = -0.08 * people.tdi_z + 0.05 * age10 + rng.standard_normal(n)
    values[1160] = SLEEP_HOURS[by_rank(sleep_score, SLEEP_SHARES)].astype(np.float64)[:, None]
    veg_score = 0.25 * people.female + 0.1 * people.education - 0.1 * people.tdi_z + 0.1 * age10
    veg = VEG_SPOONS[by_rank(veg_score + rng.standard_normal(n), VEG_SHARES)].astype(np.float64)
    values[1289] = veg[:, None]

    values[20116] = smoking.astype(np.float64)[:, None]
    values[20161] = pack_years[:, None]
    values[1558] = alcohol.astype(np.float64)[:, None]
    return Lifestyle(smoking, pack_years, alcohol, activity, values)
