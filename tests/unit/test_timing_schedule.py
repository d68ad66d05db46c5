"""The schedule an analysis is answered on (outputs/timing.py): a floor, then a ladder of
steps, fixed by the request, the settings and published sizes, never by the data."""

from __future__ import annotations

import pytest

from strongroom.access.context import Settings
from strongroom.outputs import timing
from strongroom.outputs.timing import (
    MAX_STEPS,
    MIN_SCALE,
    ON_ENGINE,
    REFERENCE_PARTICIPANTS,
    Schedule,
    scale,
    schedule_for,
)


def test_the_shipped_floor_and_ladder() -> None:
    settings = Settings()
    assert (settings.analysis_seconds, settings.analysis_ladder) == (0.5, 2.0)
    grouped = schedule_for({"kind": "aggregate_sql", "sql": "SELECT 1"},
                           seconds=settings.analysis_seconds, ratio=settings.analysis_ladder,
                           participants=REFERENCE_PARTICIPANTS)
    assert grouped == Schedule(0.5, 2.0)


def test_a_run_is_answered_at_the_first_step_it_reached() -> None:
    plan = Schedule(0.5, 2.0)
    assert [plan.at(j) for j in range(4)] == [0.5, 1.0, 2.0, 4.0]
    for took, step in [(0.0, 0), (0.3, 0), (0.5, 0), (0.5001, 1), (1.0, 1), (1.0001, 2),
                       (3.9, 3), (4.0, 3), (4.01, 4)]:
        assert plan.step(took) == step, took
        assert plan.overran(took) is (step > 0)
        assert plan.at(plan.step(took)) >= took  # never answered before it is done
    assert plan.step(1e9) == MAX_STEPS + 1  # a bounded number of steps: bounded bits


def test_every_step_is_a_power_of_the_ratio_whatever_the_run() -> None:
    plan = Schedule(0.25, 3.0)
    seen = {plan.at(plan.step(t / 1000)) for t in range(1, 20_000, 7)}
    assert seen == {0.25 * 3.0 ** j for j in range(len(seen))}


def test_no_floor_means_no_schedule() -> None:
    plan = schedule_for({"kind": "cox"}, seconds=0.0, ratio=2.0, participants=10)
    assert not plan.timed and plan.step(100.0) == 0 and not plan.overran(100.0)


def test_the_floor_is_the_request_s_kind_and_published_sizes_only() -> None:
    def floor(request: dict[str, object], participants: int = REFERENCE_PARTICIPANTS,
              variants: int = 0) -> float:
        return schedule_for(request, seconds=0.5, ratio=2.0, participants=participants,
                            variants=variants).floor

    # the text of the query is not read: any aggregate SQL has the same floor
    assert floor({"kind": "aggregate_sql", "sql": "SELECT sex, count(*) FROM base"}) == \
        floor({"kind": "aggregate_sql", "sql": "SELECT … WHERE CASE WHEN … bmi > 30 …"})
    assert floor({"kind": "frequency"}) == floor({"kind": "crosstab"}) == 0.5
    assert floor({"kind": "summary"}) == 2.0
    assert floor({"kind": "cox"}) == floor({"kind": "logistic"}) == 4.0
    assert floor({"kind": "no such kind"}) == 4.0  # unknown: as a model
    # a GWAS by its variants and traits
    assert floor({"kind": "gwas", "traits": ["bmi"]}, variants=2_000) == 64.0
    assert floor({"kind": "gwas", "traits": ["bmi", "sbp"]}, variants=2_000) == 128.0
    assert floor({"kind": "gwas", "traits": ["bmi"]}, variants=100_000) == 64.0 * 64
    # the cohort's size, by powers of two, never below a quarter
    assert floor({"kind": "frequency"}, participants=1_000_000) == 1.0
    assert floor({"kind": "frequency"}, participants=3_000) == 0.5 * MIN_SCALE
    assert scale(REFERENCE_PARTICIPANTS + 1) == 2.0 and scale(250_000) == 0.5


def test_an_engine_s_latency_is_added_to_the_floor_of_the_kinds_it_runs() -> None:
    """A Spark request takes seconds whatever its work: its ``floor_seconds`` is added to the
    floors of what runs there (aggregate SQL, the models whose sums it takes, a GWAS), not to
    what is computed here from a definition's rows, and not when floors are off."""
    def floor(kind: str, latency: float, seconds: float = 0.5) -> float:
        return schedule_for({"kind": kind, "traits": ["bmi"]}, seconds=seconds, ratio=2.0,
                            participants=REFERENCE_PARTICIPANTS, variants=2_000,
                            latency=latency).floor

    for kind in ("aggregate_sql", "ols", "logistic", "glm", "cox", "gwas", "no such kind"):
        assert floor(kind, 30.0) == floor(kind, 0.0) + 30.0, kind
    for kind in ("frequency", "crosstab", "histogram", "summary", "correlation",
                 "kaplan_meier", "cumulative_incidence"):
        assert floor(kind, 30.0) == floor(kind, 0.0), kind
    assert floor("aggregate_sql", 30.0, seconds=0.0) == 0.0  # floors off: off on every engine


def test_the_kinds_on_the_engine_are_every_kind_it_can_run() -> None:
    """ON_ENGINE is complete and no more: every model whose sums an engine takes
    (analyses/run.py), and aggregate SQL and GWAS, which an engine runs."""
    from strongroom.enclave.analyses.run import _PLACED
    from strongroom.enclave.results import AnalysisKind

    assert set(_PLACED) <= ON_ENGINE
    assert {AnalysisKind.AGGREGATE_SQL, AnalysisKind.GWAS} <= ON_ENGINE
    assert ON_ENGINE - {AnalysisKind.AGGREGATE_SQL, AnalysisKind.GWAS} == set(_PLACED)


@pytest.mark.parametrize(("floor", "ratio"), [(-1.0, 2.0), (0.5, 1.0), (float("nan"), 2.0)])
def test_a_schedule_must_make_sense(floor: float, ratio: float) -> None:
    with pytest.raises(ValueError):
        Schedule(floor, ratio)


def test_a_withheld_output_waits_for_the_step_past_the_time_limit() -> None:
    """Past the ration a run's step spends nothing, so every run the query time limit bounds
    (with its recording's share) is answered at one step; and never before withheld_seconds."""
    ladder = timing.Schedule(0.5, 2.0)  # 0.5, 1, 2, 4, 8, 16 s
    assert timing.withheld_moment(ladder, 10.0, 10.0) == 16.0  # the shipped settings
    assert timing.withheld_moment(ladder, 20.0, 1.0) == 32.0  # withheld_seconds, at a step
    for limit in (0.1, 1.0, 7.0, 10.0, 60.0):
        moment = timing.withheld_moment(ladder, 0.0, limit)
        assert moment >= limit * (1 + timing.RECORDING_SHARE)
        assert ladder.due(limit, limit) <= ladder.due(0.0, moment)  # a run cut at the limit
    assert timing.withheld_moment(timing.Schedule(0.0), 10.0, 10.0) == 10.0  # not timed
