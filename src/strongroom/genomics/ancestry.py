"""Where each participant's two genomes come from: ethnic background to populations, and the
demography the populations share.

The demography is stdpopsim's ``AmericanAdmixture_4B18`` (Browning et al. 2018, built on
Gravel et al. 2011): AFR, EUR, ASIA (East Asian, CHB-like) and ADMIX (admixed 12 generations
ago, 1/6 AFR, 1/3 EUR, 1/2 ASIA). It has no South Asian population, yet most of UK Biobank's
Asian participants are Indian, Pakistani or Bangladeshi, who sit between Europeans and East
Asians on the principal components. So a fifth population, SAS, is added: formed 400 generations
ago (10,000 years) from EUR (60%) and ASIA (40%) and kept at 12,000 since (ANI and ASI ancestry
approximated by the model's two Eurasian branches). Measured on simulated common markers
(Hudson's F_ST): SAS–EUR 0.03, SAS–ASIA 0.06, EUR–ASIA 0.13, EUR–AFR 0.16, the 1000 Genomes
orders of size (about 0.03, 0.07, 0.11, 0.15).

Ethnic background (UK Biobank field 21000, coding 1001) picks the population of each of the
two haplotypes:

- White (1, 1001, 1002, 1003): EUR + EUR.
- Black or Black British (4, 4001–4003): AFR + AFR.
- Asian or Asian British (3, 3001–3004): SAS + SAS; Chinese (5): ASIA + ASIA.
- Mixed, White and Black Caribbean or African (2001, 2002): EUR + AFR; White and Asian (2003):
  EUR + SAS — one parent's genome from each side, as for the first-generation mixed.
- Mixed unspecified or other (2, 2004) and Other ethnic group (6): ADMIX + ADMIX, the model's
  multi-way admixed population standing in for a heterogeneous group.
- Unknown (-1 do not know, -3 prefer not to answer, missing): the background of a randomly
  drawn participant whose background is known. Not answering says nothing about ancestry, and
  in UK Biobank those who did not answer cluster genetically like the cohort at large; a
  population of their own would draw a spurious cluster on the PCs. With nobody known, ADMIX.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import msprime
import numpy as np
import numpy.typing as npt
import stdpopsim

from strongroom import sets

MODEL = "AmericanAdmixture_4B18"
POPULATIONS: tuple[str, ...] = ("AFR", "EUR", "ASIA", "ADMIX", "SAS")
AFR, EUR, ASIA, ADMIX, SAS = range(len(POPULATIONS))

SAS_SIZE = 12_000
SAS_GENERATIONS = 400
SAS_FROM = {"EUR": 0.6, "ASIA": 0.4}

ETHNICITY_FIELD = 21000
ETHNICITY_COLUMN = "p21000_i0"

_ANCESTRY_OF: dict[int, tuple[int, int]] = {
    **dict.fromkeys((1, 1001, 1002, 1003), (EUR, EUR)),
    **dict.fromkeys((4, 4001, 4002, 4003), (AFR, AFR)),
    **dict.fromkeys((3, 3001, 3002, 3003, 3004), (SAS, SAS)),
    5: (ASIA, ASIA),
    2001: (EUR, AFR),
    2002: (EUR, AFR),
    2003: (EUR, SAS),
    **dict.fromkeys((2, 2004, 6), (ADMIX, ADMIX)),
}
UNKNOWN = (-1, -3)
KNOWN_CODES = frozenset(_ANCESTRY_OF)

IntArray = npt.NDArray[np.int64]


class EthnicityError(ValueError):
    """Ethnic background codes that coding 1001 does not have."""


@dataclass(frozen=True)
class Ancestry:
    """Each participant's two haplotypes: the population each comes from, and which sample
    node of the simulation (in msprime's order) carries it."""

    populations: IntArray  # n × 2, indices into POPULATIONS
    haplotypes: IntArray  # n × 2, sample node ids
    sample_counts: IntArray  # haplotypes to sample per population, in POPULATIONS order

    @property
    def labels(self) -> list[str]:
        """``EUR`` for two haplotypes from one population, ``AFR+EUR`` (sorted) for two."""
        names = np.array(POPULATIONS)
        pair = np.sort(self.populations, axis=1)
        first, second = names[pair[:, 0]], names[pair[:, 1]]
        return [a if a == b else f"{a}+{b}" for a, b in zip(first, second, strict=True)]

    def sample_sets(self) -> list[msprime.SampleSet]:
        """One haploid sample set per population, so that node ids follow POPULATIONS order."""
        return [
            msprime.SampleSet(int(count), population=name, ploidy=1)
            for name, count in zip(POPULATIONS, self.sample_counts, strict=True)
            if count > 0
        ]


def assign(ethnicity: npt.NDArray[np.float64], seed: int) -> Ancestry:
    """The ancestry of each participant from their ethnic background (NaN for missing)."""
    known = ~np.isnan(ethnicity)
    codes = ethnicity[known].astype(np.int64)
    bad = sets.difference(codes, np.array([*KNOWN_CODES, *UNKNOWN]))
    if bad.size:
        raise EthnicityError(
            f"ethnic background codes {', '.join(map(str, bad[:10].tolist()))} are not in "
            f"UK Biobank coding 1001 (field {ETHNICITY_FIELD}); recode them to a coding 1001 "
            f"value, or to -1 or null when unknown"
        )
    keys = np.array(sorted(_ANCESTRY_OF), dtype=np.int64)
    table = np.array([_ANCESTRY_OF[int(k)] for k in keys], dtype=np.int64)
    row = np.full(ethnicity.shape[0], -1, dtype=np.int64)
    at = np.searchsorted(keys, codes).clip(max=keys.shape[0] - 1)
    row[known] = np.where(keys[at] == codes, at, -1)
    unknown = row < 0
    populations = np.empty((ethnicity.shape[0], 2), dtype=np.int64)
    populations[~unknown] = table[row[~unknown]]
    if unknown.any():
        donors = np.flatnonzero(~unknown)
        if donors.size:
            rng = np.random.default_rng([seed, ETHNICITY_FIELD])
            populations[unknown] = populations[rng.choice(donors, size=int(unknown.sum()))]
        else:
            populations[unknown] = ADMIX
    return _with_haplotypes(populations)


def _with_haplotypes(populations: IntArray) -> Ancestry:
    flat = populations.ravel()
    # Sorted by population (stably), the k-th haplotype is sample node k: msprime numbers
    # sample nodes in the order of the sample sets, one set per population.
    order = np.argsort(flat, kind="stable")
    node = np.empty_like(order)
    node[order] = np.arange(order.shape[0])
    counts = np.bincount(flat, minlength=len(POPULATIONS)).astype(np.int64)
    return Ancestry(populations, node.reshape(-1, 2), counts)


@cache
def _model() -> Any:
    return stdpopsim.get_species("HomSap").get_demographic_model(MODEL)


def demography() -> msprime.Demography:
    """stdpopsim's four-population model with the South Asian population added."""
    dem = copy.deepcopy(_model().model)
    dem.add_population(
        name="SAS", initial_size=SAS_SIZE, description="South Asian (EUR/ASIA admixed, added)"
    )
    dem.add_admixture(
        time=SAS_GENERATIONS,
        derived="SAS",
        ancestral=list(SAS_FROM),
        proportions=list(SAS_FROM.values()),
    )
    dem.sort_events()
    names = tuple(p.name for p in dem.populations)
    assert names == POPULATIONS, names  # sample node order depends on it
    return dem


def mutation_rate() -> float:
    """The rate the demography was inferred with (Gravel et al.), so diversity comes out right."""
    return float(_model().mutation_rate)
