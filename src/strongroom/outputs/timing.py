"""Time is an output: when an analysis is answered, on a schedule fixed by the request.

How long a computation on the real data took can hang on one participant's value (an
expensive expression evaluated only on their row, when their value is over a line). So an
analysis is never answered when it finishes: it is answered at the first step of its
*schedule* that its run has reached: the floor F if done by then, else F·r, F·r², … (r the
ladder's ratio). The floor and the ladder are a function of the request (its kind, and for a
GWAS the traits it asks for) and of published settings and sizes (``Settings.analysis_seconds``
and ``analysis_ladder``, the cohort's participants and the genotype store's variants), never of
a participant's value. A run that passed its floor is an answer (its step is data), spent from
its requester's ration (outputs/answers.py); one within the floor spends nothing.

Why these floors (docs/explanation/output-check.md, "Observables: time"): F is
``analysis_seconds`` (0.5 s) for aggregate SQL and the tables, a grouped count's p99 at
500,000 participants on a loaded machine (about 0.3 s) below it, so honest tables never spend
an answer on time; a summary or correlation reads every value (×4); models and survival fit
(×8: the how-to's study's Cox, Kaplan–Meier and GLMs take 1–3 s at 500,000); a GWAS fits
every variant (×128 per 2,000 variants and trait). Each scales with the cohort, to the next
power of two of its participants over 500,000 (at least a quarter). An engine whose every
request takes seconds whatever its work (a Spark cluster schedules jobs on its executors) adds
its ``floor_seconds`` to the floor of each kind it runs (``ON_ENGINE``; strongroom.yaml's
``engine:``), so that its honest requests do not all pass their floors and spend answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.enclave.results import AnalysisKind

REFERENCE_PARTICIPANTS = 500_000  # the cohort size the floors are stated for
REFERENCE_VARIANTS = 2_000  # a GWAS's floor is stated for this many variants per trait
MIN_SCALE = 0.25  # floors never fall below a quarter of their stated value
MAX_STEPS = 12  # steps above the floor a run can be answered at: at most log2(13) bits

# each kind's floor in units of ``Settings.analysis_seconds``
WEIGHTS: dict[AnalysisKind, float] = {
    AnalysisKind.AGGREGATE_SQL: 1, AnalysisKind.FREQUENCY: 1, AnalysisKind.CROSSTAB: 1,
    AnalysisKind.HISTOGRAM: 1, AnalysisKind.SUMMARY: 4, AnalysisKind.CORRELATION: 4,
    AnalysisKind.OLS: 8, AnalysisKind.LOGISTIC: 8, AnalysisKind.GLM: 8, AnalysisKind.COX: 8,
    AnalysisKind.KAPLAN_MEIER: 8, AnalysisKind.CUMULATIVE_INCIDENCE: 8,
    AnalysisKind.GWAS: 128,
}
DEFAULT_WEIGHT = 8  # a kind not listed (none today): as a model
# the kinds an engine runs where it keeps the rows (aggregate SQL; the models whose sums it
# takes: analyses/run.py's _PLACED; a GWAS's association), to which its ``floor_seconds`` is
# added; the rest are computed here from a definition's rows, on any engine
ON_ENGINE = frozenset({AnalysisKind.AGGREGATE_SQL, AnalysisKind.OLS, AnalysisKind.LOGISTIC,
                       AnalysisKind.GLM, AnalysisKind.COX, AnalysisKind.GWAS})
DP_WEIGHT = 1  # a DP query (privacy/service.py): one pass over its prepared rows


@dataclass(frozen=True)
class Schedule:
    """When a request may be answered: ``floor``, then each step ``ratio`` times the last."""

    floor: float
    ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.floor < 0 or not math.isfinite(self.floor):
            raise ValueError("a schedule's floor is a finite number of seconds, at least 0")
        if self.ratio <= 1 or not math.isfinite(self.ratio):
            raise ValueError("a schedule's ladder ratio must be above 1")

    @property
    def timed(self) -> bool:
        """Whether time is scheduled at all (a floor of 0: answered at once, nothing spent)."""
        return self.floor > 0

    def step(self, took: float) -> int:
        """The first step a run of ``took`` seconds has reached: 0 if within the floor. Runs
        past the last step are answered at that last step's time or later (never sooner)."""
        if not self.timed or took <= self.floor:
            return 0
        # the smallest j with floor·ratio^j ≥ took (a guard for floating error on each side)
        j = max(1, math.ceil(math.log(took / self.floor, self.ratio) - 1e-12))
        while self.at(j) < took:
            j += 1
        while j > 1 and self.at(j - 1) >= took:
            j -= 1
        return min(j, MAX_STEPS + 1)

    def at(self, step: int) -> float:
        """When step ``step`` is answered, in seconds after the request."""
        return self.floor * self.ratio ** step

    def due(self, took: float, elapsed: float) -> int:
        """The step a run of ``took`` seconds is answered at, when ``elapsed`` seconds have
        already passed since its request (recording it may have taken it past its step):
        never sooner than either."""
        step = self.step(took)
        while self.timed and self.at(step) < elapsed:
            step += 1
        return step

    def overran(self, took: float) -> bool:
        """Whether a run of ``took`` seconds passed the floor: its time is then an answer."""
        return self.timed and took > self.floor


# past the ration, the share of a withheld output's moment left after its run's deadline (the
# run, check, rendering and scan bounded by it) for its record, its contributor sets kept and
# its meter (an output is at most requests.MAX_BYTES: under a second to seal and write)
RECORDING_SHARE = 0.25


def withheld_moment(schedule: Schedule, withheld_seconds: float, limit_seconds: float) -> float:
    """When a withheld output is answered, at the soonest, in seconds after its request: the
    first step of its ``schedule`` at or past both ``withheld_seconds`` (the check's own time
    says nothing) and the longer of the query time limit and the floor, with its recording's
    share. Past the ration a run's time spends nothing, so the run must end by this moment
    less that share (:func:`run_deadline`) and every run is answered at it. Not timed:
    ``withheld_seconds``."""
    if not schedule.timed:
        return withheld_seconds
    bound = max(withheld_seconds, max(limit_seconds, schedule.floor) * (1 + RECORDING_SHARE))
    return schedule.at(schedule.due(0.0, bound))


def run_deadline(moment: float) -> float:
    """By when (seconds after its request) a run answered at ``moment`` must have ended, its
    recording's share left for it: never sooner than the query time limit or the floor."""
    return moment / (1 + RECORDING_SHARE)


def dp_schedule(*, seconds: float, ratio: float, participants: int) -> Schedule:
    """A differentially private query's schedule: its release reads the prepared rows once,
    as aggregate SQL does (weight 1), scaled with the cohort. Its ε bounds what its figures
    say; its running time is outside that bound, so it is answered on a schedule too. It runs
    on this machine whatever the engine (privacy/service.py), so no engine's latency is added."""
    if seconds <= 0:
        return Schedule(0.0, ratio)
    return Schedule(seconds * DP_WEIGHT * scale(participants), ratio)


def scale(participants: int) -> float:
    """The cohort's size over the reference, rounded up to a power of two (≥ MIN_SCALE)."""
    ratio = max(participants, 1) / REFERENCE_PARTICIPANTS
    return max(MIN_SCALE, 2.0 ** math.ceil(math.log2(ratio)))


RELEASE_WEIGHT = 1  # asking for release: the differencing ledger read again near its cells


def release_schedule(*, seconds: float, ratio: float, participants: int) -> Schedule:
    """The schedule of a release request that goes on to the differencing ledger: whatever
    the output's kind, one floor of ``seconds`` scaled to the cohort. Differencing again
    against what was released since the output's check opens every earlier cell whose size
    is near the new cells' exact sizes, so its time moves with one person more or less in a
    cell; it is answered on this schedule, and a pass past the floor is an answer."""
    if seconds <= 0:
        return Schedule(0.0, ratio)
    return Schedule(seconds * RELEASE_WEIGHT * scale(participants), ratio)


def schedule_for(request: Mapping[str, Any], *, seconds: float, ratio: float,
                 participants: int, variants: int = 0, latency: float = 0.0) -> Schedule:
    """The schedule of one analysis request: a function of the request (its kind; a GWAS's
    traits), the settings (``seconds``: the floor's unit; ``ratio``: the ladder's), the
    published sizes (the cohort's ``participants``, the genotype store's ``variants``) and
    the engine's ``latency`` (``Engine.floor_seconds``, 0 on DuckDB: added to the floor of
    the kinds it runs, ``ON_ENGINE``)."""
    if seconds <= 0:
        return Schedule(0.0, ratio)
    try:
        kind = AnalysisKind(str(request.get("kind")))
    except ValueError:
        kind = None
    weight = WEIGHTS.get(kind, DEFAULT_WEIGHT) if kind is not None else DEFAULT_WEIGHT
    size = scale(participants)
    if kind is AnalysisKind.GWAS:
        traits = request.get("traits")
        count = len(traits) if isinstance(traits, list | tuple) and traits else 1
        per = max(variants, 1) * count / REFERENCE_VARIANTS
        size *= max(1.0, 2.0 ** math.ceil(math.log2(per))) if per > 1 else 1.0
    on_engine = kind is None or kind in ON_ENGINE  # a kind not known: the longer floor
    return Schedule(seconds * weight * size + (latency if on_engine else 0.0), ratio)
