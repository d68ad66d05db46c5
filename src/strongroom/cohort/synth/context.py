"""What the event generators need to know about each participant, gathered in one place."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from strongroom.cohort.synth.demographics import CENSOR, Demographics
from strongroom.cohort.synth.draws import BoolArray, FloatArray, IntArray, standardise
from strongroom.cohort.synth.health import FATHER, Health
from strongroom.cohort.synth.lifestyle import Lifestyle
from strongroom.cohort.synth.measures import Body, Latent, Measured


@dataclass
class Context:
    n: int
    female: BoolArray
    birth: IntArray
    recruited: IntArray
    age: FloatArray  # at recruitment
    country: IntArray
    end: IntArray  # last day of follow-up: censor date or loss to follow-up (deaths come later)
    factors: dict[str, FloatArray]  # named risk factors, for the tables' ``risk`` mappings
    health: Health

    def score(self, risk: dict[str, float] | None, rows: IntArray | None = None) -> FloatArray:
        """Σ coefficient × factor over the named factors, for all people or some rows."""
        size = self.n if rows is None else rows.shape[0]
        total = np.zeros(size)
        for name, beta in (risk or {}).items():
            values = self.factors[name]
            total += beta * (values if rows is None else values[rows])
        return total


def build(
    p: Demographics, life: Lifestyle, b: Body, lat: Latent, m: Measured, h: Health
) -> Context:
    male = (~p.female).astype(np.float64)
    creat_z = np.zeros(p.n)
    for sex in (p.female, ~p.female):
        creat_z[sex] = standardise(np.log(m.creatinine[sex]))
    factors: dict[str, FloatArray] = {
        "age10": (p.age - 56.5) / 10,
        "male": male,
        "female": 1.0 - male,
        "bmi5": (b.bmi - 26.0) / 5,
        "current": life.current.astype(np.float64),
        "former": life.former.astype(np.float64),
        "packs10": np.nan_to_num(life.pack_years) / 10,
        "alcohol": (life.alcohol == 1).astype(np.float64),
        "activity": life.activity,
        "tdi": p.tdi_z,
        "south_asian": p.south_asian.astype(np.float64),
        "black": p.black.astype(np.float64),
        "diabetes": h.diabetes.astype(np.float64),
        "hypertension": h.hypertension.astype(np.float64),
        "statin": h.statin.astype(np.float64),
        "sbp20": (m.sbp - 140.0) / 20,
        "ldl": standardise(lat.ldl),
        "hba1c10": (m.hba1c - 36.0) / 10,
        "creat": creat_z,
        "fev_low": (0.74 - m.fev_ratio) / 0.07,
    }
    for ill in FATHER:
        factors[f"father_{ill.name}"] = h.father[ill.name].astype(np.float64)
    return Context(
        n=p.n, female=p.female, birth=p.birth, recruited=p.recruited, age=p.age,
        country=p.country, end=np.minimum(p.lost, CENSOR), factors=factors, health=h,
    )  # fmt: skip


class CodeBook:
    """Codes as small integers while generating, turned back into strings at the end."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self._index: dict[str, int] = {}

    def id(self, code: str) -> int:
        found = self._index.get(code)
        if found is None:
            found = self._index[code] = len(self.codes)
            self.codes.append(code)
        return found

    def ids(self, codes: list[str] | tuple[str, ...]) -> IntArray:
        return np.array([self.id(code) for code in codes], dtype=np.int64)

    def lookup(self) -> npt.NDArray[np.str_]:
        return np.array(self.codes, dtype=np.str_)
