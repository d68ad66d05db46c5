"""What an analysis produces: a table of cells, each knowing the participants behind it.

A :class:`Cell` is one number a researcher would see. Its ``contributors`` are the distinct
participants (project pseudonyms, ``pid``) whose data produced it: the basis of every
disclosure rule, because thresholds count people, not rows. Contributors and magnitudes never
leave the server; :meth:`Result.public` is what may be shown once the output check allows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

PidArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class AnalysisKind(StrEnum):
    FREQUENCY = "frequency"
    CROSSTAB = "crosstab"
    SUMMARY = "summary"
    HISTOGRAM = "histogram"
    OLS = "ols"
    LOGISTIC = "logistic"
    KAPLAN_MEIER = "kaplan_meier"
    CUMULATIVE_INCIDENCE = "cumulative_incidence"  # competing risks (Aalen–Johansen)
    COX = "cox"
    GLM = "glm"  # a formula: splines, interactions; Gaussian, binomial, Poisson, neg. binomial
    CORRELATION = "correlation"
    AGGREGATE_SQL = "aggregate_sql"
    GWAS = "gwas"  # per-variant association statistics (genomics/, outputs/genetics.py)
    JOB_FILE = "job_file"  # a file a job wrote by itself: for the output checkers (jobs/)


class CellKind(StrEnum):
    """What a cell's number is; each kind has its own disclosure rules (unknown: refused)."""

    COUNT = "count"  # participants (or rows) in a group; histogram bins are counts too
    PERCENT = "percent"  # numerator / denominator × 100; both carry contributor sets
    SUM = "sum"  # magnitude: dominance rules apply
    MEAN = "mean"  # magnitude
    SD = "sd"  # spread of a magnitude
    MEDIAN = "median"  # a quantile at 0.5
    QUANTILE = "quantile"  # needs enough participants on each side
    MIN = "min"  # an individual's value: only where protected
    MAX = "max"
    MODE = "mode"
    COEFFICIENT = "coefficient"  # a regression estimate (and its SE, CI, p in the row)
    CORRELATION = "correlation"
    SURVIVAL = "survival"  # Kaplan–Meier estimate at the end of an interval
    INCIDENCE = "incidence"  # cumulative incidence of a cause at the end of an interval
    AT_RISK = "at_risk"  # participants at risk at the start of an interval
    EVENTS = "events"  # events within an interval
    CENSORED = "censored"  # censored within an interval
    HAZARD_RATIO = "hazard_ratio"
    STATISTIC = "statistic"  # a model-level figure (R², log-likelihood, n): support = all
    # a GWAS's analysed group (value: its rounded size): every per-variant figure carries the
    # group's genotype sums, so two such groups a few people apart give those people's
    # genotypes by subtraction; the ledger compares them with each other (overlap.GENOMES)
    GENOTYPES = "genotypes"


@dataclass
class Cell:
    """One number of a result, with what the output check needs to know about it."""

    row: tuple[str, ...]  # the group labels that identify the cell's row ("Total" for margins)
    column: str  # the rendered column it sits in ("count", "mean", "coef" …)
    kind: CellKind
    value: float | None  # None when there is nothing to show (e.g. empty group)
    contributors: PidArray  # distinct pids behind the value: sorted, unique, int64
    # per-contributor absolute contribution (one per entry of ``contributors``, same order),
    # for magnitude cells (SUM, MEAN): the dominance rules read these
    magnitudes: FloatArray | None = None
    denominator: PidArray | None = None  # PERCENT: the pids of the denominator
    below: int | None = None  # QUANTILE/MEDIAN: participants strictly below / above value
    above: int | None = None
    level: float | None = None  # QUANTILE/MEDIAN: the probability (0.5 for a median)
    distinct_values: int | None = None  # MEAN/SD/SUM/MODE: distinct values among contributors
    margin: bool = False  # a row or column total of a table (secondary suppression)
    # a figure its analysis's earlier cells give by construction, whatever the data (a number
    # at risk after the first interval; a margin is one too): its group's tie with them is
    # the analysis's shape, not the data's (outputs/combinations.py)
    derived: bool = False
    table: str = ""  # cells of one 2-D table share this (crosstab: "" = the whole result)
    rounded_to: int | None = None  # the rounding base the researcher claims for this value
    exact: float | None = None  # the unrounded value, required when ``rounded_to`` is claimed
    # MIN/MAX/MODE: distinct participants whose own value, at the shown precision (after any
    # claimed rounding), equals the shown value; the value is protected when enough share it
    holders: int | None = None
    # SUM/MEAN/SD/MEDIAN/QUANTILE: each contributor's own total of the values the statistic is
    # computed from (signed, aligned with ``contributors``). Release precision reads their
    # spread, and value-aware differencing compares them between outputs, so that two outputs
    # over the same people whose values differ for a few of them are caught. A COUNT of rows
    # carries each contributor's number of rows here (and in ``magnitudes``) when anyone has
    # several: it is then checked as the sum of those.
    values: FloatArray | None = None
    # SUM/MEAN/SD, and a COUNT of rows where someone has several: the figure is of
    # contributions winsorised at the project's threshold k (enclave/winsor.py). Below 2k
    # participants the clip collapses to their median, one participant's own value (or two
    # one's mean), so the check shows such a figure only from 2k participants
    winsorised: bool = False

    def __post_init__(self) -> None:
        self.contributors = np.asarray(self.contributors, dtype=np.int64)


@dataclass
class Result:
    """An analysis's cells plus the model facts some rules read."""

    kind: AnalysisKind
    spec: dict[str, Any]  # the analysis request as given (JSON-able)
    cells: list[Cell]
    # model-level facts: "residual_df", "n_obs", "events" …; and for regressions the
    # contributors of every categorical covariate level, keyed "level:<variable>=<value>"
    facts: dict[str, float] = field(default_factory=dict)
    # the exact value of each fact that release precision rounded (server-side only, for the
    # check's rules: outputs/precision.py rounds counts of people, and what follows from them)
    exact_facts: dict[str, float] = field(default_factory=dict)
    levels: dict[str, PidArray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # plain-words caveats for the researcher
    # models, survival and correlations: each variable the fit read, as (pids, each one's own
    # total), for value-aware differencing between outputs (a fit repeated with one person's
    # outcome changed moves its coefficients by that person's value)
    vectors: dict[str, tuple[PidArray, FloatArray]] = field(default_factory=dict)
    # models and correlations: the largest share of the fit one participant holds (the summed
    # leverage of their rows, 0–1; 1 means the fit reproduces their own value). Server-side
    # only, never shown; None where it was not measured (the check refuses such a model)
    influence: float | None = None

    def public(self, suppressed: set[int] | None = None,
               removed: set[int] | None = None) -> dict[str, Any]:
        """The JSON a researcher sees: no contributors; suppressed cells shown as null;
        ``removed`` cells (whose labels are not safe to show) left out, labels and all."""
        hidden = suppressed or set()
        gone = removed or set()
        return {
            "kind": self.kind.value,
            "spec": self.spec,
            "cells": [
                {"row": list(c.row), "column": c.column, "kind": c.kind.value,
                 "value": None if i in hidden else c.value,
                 "suppressed": i in hidden}
                for i, c in enumerate(self.cells) if i not in gone
            ],
            "facts": self.facts,
            "notes": self.notes,
        }
