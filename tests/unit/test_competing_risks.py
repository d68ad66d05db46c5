"""Competing risks: Aalen–Johansen cumulative incidence on the life-table grid, its rounding
step, and how the output check, the reasons and the labelled table treat it.

Guarantee: every cause's incidence is the Aalen–Johansen estimate at a grid end, rounded to
a step that one participant's follow-up (left out, or moved to any time and cause) cannot
exceed; every cause's events per interval, and those at risk without them, are held to the
survival table's lines; a cause held by few people blocks the table and is never named."""

from __future__ import annotations

import json
import math
import warnings
from functools import partial

import numpy as np
import polars as pl
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter

from strongroom.enclave.analyses import competing
from strongroom.enclave.analyses.run import run as run_with
from strongroom.enclave.analyses.spec import parse_spec
from strongroom.enclave.results import AnalysisKind, CellKind, Result
from strongroom.enclave.steps import Rounding
from strongroom.errors import Invalid
from strongroom.outputs.check import check
from strongroom.outputs.labels import namable
from strongroom.outputs.render import Format, render
from strongroom.outputs.rules import load_rules
from strongroom.outputs.tidy import tidy

run = partial(run_with, rounding=Rounding(b"a key for these figures only"))
RULES = load_rules()
CIF = {"kind": "cumulative_incidence", "time": "t", "event": "cause", "unit": "years"}


def cohort(n: int = 3000, seed: int = 3, ties: bool = False) -> pl.DataFrame:
    """Two causes competing, and censoring; times untied unless ``ties``."""
    rng = np.random.default_rng(seed)
    first, second = rng.exponential(8.0, n), rng.exponential(12.0, n)
    censor = rng.uniform(2.0, 10.0, n)
    t = np.minimum(np.minimum(first, second), censor)
    cause = np.where(censor <= np.minimum(first, second), 0, np.where(first < second, 1, 2))
    if ties:
        t = np.ceil(t * 4) / 4
    return pl.DataFrame({"pid": np.arange(1000, 1000 + n), "t": t, "cause": cause,
                         "arm": rng.choice(["A", "B"], n)})


def value(result: Result, row: tuple[str, ...], column: str) -> float | None:
    found = [c.value for c in result.cells if c.row == row and c.column == column]
    assert len(found) == 1, (row, column)
    return found[0]


def exact(result: Result) -> dict[tuple[tuple[str, ...], str], float]:
    """Each incidence before rounding, and its step, read from a run without rounding."""
    return {(c.row, c.column): c.value for c in result.cells
            if c.kind is CellKind.INCIDENCE and c.value is not None}


def test_the_spec_parses_and_refuses_what_a_life_table_refuses() -> None:
    spec = parse_spec({**CIF, "group": "arm", "interval": 2})
    assert spec.kind is AnalysisKind.CUMULATIVE_INCIDENCE and spec.reads() == ["t", "cause", "arm"]
    for bad, reason in (({**CIF, "event": "t"}, "different columns"),
                        ({**CIF, "interval": 0}, "interval"),
                        ({**CIF, "causes": [1]}, "not a field")):
        with pytest.raises(Invalid) as caught:
            parse_spec(bad)
        assert reason in " ".join(caught.value.reasons)


def test_each_cause_matches_lifelines_aalen_johansen_at_the_grid_ends() -> None:
    frame = cohort()
    result = run(CIF, frame)
    t, cause = frame["t"].to_numpy(), frame["cause"].to_numpy()
    ends = np.arange(1.0, math.ceil(t.max()) + 1)
    estimates = competing.incidence(t, cause, [1, 2], ends)
    index = np.maximum(np.ceil(t).astype(np.int64) - 1, 0)
    steps = competing.steps(index, cause > 0, t, ends, 1)
    for c in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = AalenJohansenFitter(calculate_variance=False).fit(t, cause, c)
        curve = fitted.cumulative_density_
        for k, end in enumerate(ends):
            truth = float(curve[curve.index <= end].iloc[-1, 0])
            assert estimates[c - 1, k] == pytest.approx(truth, abs=1e-9)
            row = ("All", f"{'[' if k == 0 else '('}{k}, {k + 1}] years")
            shown = value(result, row, f"incidence:{c}")
            if math.isfinite(steps[k]):
                assert shown is not None and abs(shown - truth) <= steps[k], (c, k, truth)
            else:  # nobody followed past the last end: no step hides one person there
                assert shown is None and k == len(ends) - 1


def test_one_cause_is_one_minus_kaplan_meier_and_ties_are_exact() -> None:
    frame = cohort(ties=True).with_columns(pl.col("cause").clip(0, 1))
    result = run({**CIF, "interval": 1}, frame)
    t, e = frame["t"].to_numpy(), frame["cause"].to_numpy()
    estimates = competing.incidence(t, e, [1], np.arange(1.0, math.ceil(t.max()) + 1))
    survival = KaplanMeierFitter().fit(t, e).survival_function_at_times(
        np.arange(1.0, math.ceil(t.max()) + 1)).to_numpy()
    assert np.allclose(estimates[0], 1 - survival, atol=1e-12)
    assert {c.column for c in result.cells} == {"at_risk", "censored", "events:1",
                                                "incidence:1"}


def test_the_life_table_balances_and_each_cause_s_events_are_its_people() -> None:
    frame = cohort(400, seed=8)
    result = run({**CIF, "group": "arm", "interval": 2}, frame)
    for arm in ("A", "B"):
        mine = frame.filter(pl.col("arm") == arm)
        rows = list(dict.fromkeys(c.row for c in result.cells if c.row[0] == arm))
        risk = [value(result, r, "at_risk") for r in rows]
        assert risk[0] == mine.height
        for k in range(len(rows) - 1):
            gone = sum(value(result, rows[k], col) or 0
                       for col in ("censored", "events:1", "events:2"))
            assert risk[k + 1] == risk[k] - gone
        first = next(c for c in result.cells if c.row == rows[0] and c.column == "events:2")
        truth = mine.filter((pl.col("cause") == 2) & (pl.col("t") <= 2))["pid"].sort()
        assert first.contributors.tolist() == truth.to_list()
    assert set(result.levels) >= {"level:arm=A", "level:cause=1", "level:cause=2"}
    assert result.facts["events"] == frame.filter(pl.col("cause") > 0).height


def test_several_rows_follow_a_participant_to_their_first_event_and_its_cause() -> None:
    frame = pl.DataFrame({"pid": [1, 1, 1, 2, 2, 3], "t": [5.0, 2.0, 3.0, 4.0, 1.0, 2.5],
                          "cause": [1, 2, 1, 0, 0, 1]})
    result = run({**CIF, "interval": 10}, frame)
    row = ("All", "[0, 10] years")
    assert value(result, row, "at_risk") == 3
    assert value(result, row, "events:2") == 1  # pid 1's first event, at 2, was cause 2
    assert value(result, row, "events:1") == 1 and value(result, row, "censored") == 1


def test_rows_with_an_event_code_that_is_no_cause_are_left_out() -> None:
    frame = pl.DataFrame({"pid": [1, 2, 3, 4, 5], "t": [1.0, 2.0, 3.0, 4.0, -1.0],
                          "cause": [1.0, 11.0, 0.5, -1.0, 2.0]})
    result = run({**CIF, "interval": 10}, frame)
    assert value(result, ("All", "[0, 10] years"), "at_risk") == 1
    assert any("left out" in n for n in result.notes)
    # no event at all: a table the check blocks (none of an outcome), never a refusal of
    # its own, which would say so only when the one event is missing
    censored = run({**CIF, "interval": 10}, frame.with_columns(pl.lit(0).alias("cause")))
    assert {c.column for c in censored.cells} == {"at_risk", "censored"}
    assert censored.facts["events"] == 0
    assert check(censored, RULES).verdict.value == "block"
    with pytest.raises(Invalid, match="must hold"):
        run(CIF, frame.with_columns(pl.lit("x").alias("cause")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_one_participant_moves_an_incidence_by_more_than_its_step(seed: int) -> None:
    """The step is the rounding that hides one participant: leave each out, or move their
    follow-up to any time and either cause, and no incidence at any grid end moves by more."""
    rng = np.random.default_rng(seed)
    n = 60
    t = np.round(rng.uniform(0.1, 5.0, n), 1)
    cause = rng.integers(0, 3, n)
    ends = np.arange(1.0, 6.0)
    causes = [1, 2]
    base = competing.incidence(t, cause, causes, ends)
    index = np.maximum(np.ceil(t).astype(np.int64) - 1, 0)
    bound = np.array(competing.steps(index, cause > 0, t, ends, 1))
    worst = np.zeros_like(bound)
    for i in range(n):
        variants = [(np.delete(t, i), np.delete(cause, i))]
        for new_t in (0.05, 2.5, 4.95, 5.0):
            for new_cause in (0, 1, 2):
                tt, cc = t.copy(), cause.copy()
                tt[i], cc[i] = new_t, new_cause
                variants.append((tt, cc))
        for tt, cc in variants:
            moved = competing.incidence(tt, cc, causes, ends)
            worst = np.maximum(worst, np.abs(moved - base).max(axis=0))
    finite = np.isfinite(bound)
    assert finite.any()
    assert np.all(worst[finite] <= bound[finite] / 2 + 1e-12), (worst, bound)


def test_a_real_table_passes_the_check_and_a_rare_cause_blocks_unnamed() -> None:
    frame = cohort(10_000)
    spec = {**CIF, "group": "arm", "interval": 2}
    report = check(run(spec, frame), RULES)
    assert report.verdict.value == "release_with_suppression", report.findings
    assert {f.reason.split('column "')[1].split('"')[0] for f in report.findings} == {
        "censored"}  # the first interval's censorings (none): hidden like a few
    # a third cause held by three people: its label and its counts describe them
    rare = frame.with_columns(pl.when(pl.col("pid") < 1003).then(7).otherwise(pl.col("cause"))
                              .alias("cause"))
    result = run(spec, rare)
    report = check(result, RULES)
    assert report.verdict.value == "block"
    assert any("cause=7" in f.reason for f in report.findings)
    named = namable(result, RULES.threshold, report.removed)
    assert not any("events:7" in labels or "incidence:7" in labels
                   for labels in named.values())
    assert any("events:1" in labels for labels in named.values())


def test_no_events_of_a_cause_while_people_are_at_risk_is_held_like_a_few() -> None:
    frame = cohort(2000, seed=4)
    # cause 2 only after the first year: none in the first interval, where all are at risk
    late = frame.with_columns(pl.when((pl.col("cause") == 2) & (pl.col("t") <= 1))
                              .then(0).otherwise(pl.col("cause")).alias("cause"))
    report = check(run(CIF, late), RULES)
    assert report.verdict.value == "block"
    assert any(f.rule == "kaplan_meier" and "events:2" in f.reason
               and "with events" in f.reason for f in report.findings)


def test_the_labelled_table_has_a_row_per_group_interval_and_cause() -> None:
    frame = cohort(2000, seed=6)
    result = run({**CIF, "group": "arm", "interval": 3}, frame)
    record = json.loads(render(result, set(), Format.JSON))
    table = tidy(record, {"cause": {"1": "Cancer", "2": "Other death"}})
    assert table.columns[:6] == ["arm", "interval", "start", "end", "cause", "cause_code"]
    assert {"at_risk", "censored", "events", "incidence"} <= set(table.columns)
    first = table.filter((pl.col("arm") == "A") & (pl.col("start") == 0))
    assert first["cause"].to_list() == ["Cancer", "Other death"]
    assert first["at_risk"].n_unique() == 1  # the interval's, beside each cause
    assert table.height == 2 * 2 * len({c.row[1] for c in result.cells})


def test_a_rare_group_or_cause_is_counted_in_the_most_common_and_said_so() -> None:
    """A group or cause of a few would be blocked, and a blocked table only when the few
    exist answers whether they do (a group that is the target alone if obese): they are
    counted in the most common group or cause instead, in the vectors too."""
    from strongroom.enclave.analyses.survival import GROUP_NOTE, RARE_CAUSE_NOTE

    frame = cohort(3000, seed=11)
    odd = frame.with_columns(
        pl.when(pl.col("pid") < 1003).then(pl.lit("x")).otherwise(pl.col("arm")).alias("arm"),
        pl.when(pl.col("pid").is_between(1010, 1011)).then(3).otherwise(pl.col("cause"))
        .alias("cause"))
    spec = {**CIF, "group": "arm", "interval": 2}
    merged = run(spec, odd, k=10)
    assert {c.row[0] for c in merged.cells} == {"A", "B"}
    assert {c.column for c in merged.cells} == {"at_risk", "censored", "events:1", "events:2",
                                                "incidence:1", "incidence:2"}
    assert GROUP_NOTE in merged.notes and RARE_CAUSE_NOTE in merged.notes
    assert {float(v) for v in merged.vectors["cause"][1]} <= {0.0, 1.0, 2.0}
    assert len(set(merged.vectors["arm"][1].tolist())) == 2
    # the notes are there whether or not anything was merged: else they would tell
    assert run(spec, frame, k=10).notes == merged.notes
    km = run({"kind": "kaplan_meier", "time": "t", "event": "cause", "group": "arm",
              "unit": "years", "interval": 2}, odd.with_columns(pl.col("cause").clip(0, 1)),
             k=10)
    assert {c.row[0] for c in km.cells} == {"A", "B"} and GROUP_NOTE in km.notes


def test_the_step_reads_counts_per_interval_not_where_in_it_an_event_falls() -> None:
    """One participant's event early or late in an interval (where few are at risk) leaves
    every step as it was: the step of the last event's risk set was ten times coarser, or
    hid the figure, only when the target's event was the late one."""
    rng = np.random.default_rng(4)
    n = 800
    t = np.where(rng.random(n) < 0.05, 10.0, 5.0)  # a few followed to the end, the rest 5
    cause = rng.integers(1, 3, n)
    ends = np.array([10.0])
    index = np.zeros(n, dtype=np.int64)
    early = competing.steps(index, cause > 0, t, ends, 1)
    late = t.copy()
    late[0] = 9.0  # the target's event, if obese, just before the end
    assert competing.steps(index, cause > 0, late, ends, 1) == early
