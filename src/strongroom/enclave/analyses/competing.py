"""Competing risks: each cause's Aalen–Johansen cumulative incidence on the life-table grid.

Where people can leave follow-up by more than one event (death from the disease studied, or
from anything else first), one minus Kaplan–Meier overstates each cause's risk; the
cumulative incidence function F_c(t) = Σ_{s ≤ t} S(s−)·d_c(s)/n(s) does not (S the all-cause
Kaplan–Meier, d_c the events of cause c, n the number at risk). The estimates are
statsmodels' ``CumIncidenceRight`` (exact with tied times), read at the grid's ends.

The table is the Kaplan–Meier life table with one pair of columns per cause: for each
interval and group, the number at risk at its start (AT_RISK), censorings within it
(CENSORED), and per cause ``events:<cause>`` (EVENTS) and ``incidence:<cause>`` (INCIDENCE,
whose contributors are the at-risk set). The output check judges every cause's events, and
those at risk without them, as it judges a survival curve's events.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom import sets
from strongroom.enclave.analyses import sensitivity
from strongroom.enclave.analyses.frame import (
    IntArray,
    count_cell,
    distinct,
    floats,
    group_pids,
    last_per_pid,
    pids,
)
from strongroom.enclave.analyses.spec import CumulativeIncidenceSpec
from strongroom.enclave.analyses.survival import (
    followed,
    grid,
    groups_of,
    once_each,
    outcomes,
)
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, FloatArray, PidArray, Result
from strongroom.enclave.steps import Rounding
from strongroom.errors import Invalid

HIDDEN_NOTE = ("an incidence is shown only where more participants than one person's rows are "
               "followed to the interval's end (so that none can move it past its rounding); "
               "else it is empty")
EVENTS = "events"
INCIDENCE = "incidence"
CAUSE_NOTE = ("rows with a missing or negative time, or an event other than 0 (censored) or "
              "a cause from 1 to 10, are left out")



def column(figure: str, cause: str) -> str:
    """A cause's column: ``events:2``, ``incidence:2``."""
    return f"{figure}:{cause}"


def cumulative_incidence(spec: CumulativeIncidenceSpec, frame: pl.DataFrame,
                         rounding: Rounding) -> Result:
    """The life table of every group on the grid, with each cause's cumulative incidence."""
    used = once_each(followed(frame, spec.time, spec.event, spec.causes()), spec.time,
                     spec.event, spec.group)
    if used.height == 0:
        raise Invalid("no row has both a time and an event")
    t = floats(used, spec.time)
    ids = pids(used)
    cause = used[spec.event].cast(pl.Float64).to_numpy().astype(np.int64)
    index, ends, labels = grid(t, spec.width(), spec.unit)
    # no event at all is a table of numbers at risk and censored, blocked by the check as
    # any table with none of an outcome is (a refusal here had its own reason: the bit)
    causes = [int(c) for c in sets.distinct(cause[cause > 0])]
    groups, levels = groups_of(used, spec.group, ids)

    cells: list[Cell] = []
    for g, label in enumerate(groups.labels):
        rows = groups.codes == g
        cells += _life_table((label,), labels, ends, index[rows], t[rows], cause[rows],
                             ids[rows], causes, spec.round_to, label if spec.group else "",
                             rounding)
    facts, outcome = outcomes(ids, cause > 0)
    # each cause is a label the table shows: held by enough people, as a group's is
    levels |= {f"level:{spec.event}={c}": distinct(ids[cause == c]) for c in causes}
    levels |= outcome
    notes = [CAUSE_NOTE,
             "a participant on several rows (of one group) is followed once: to their first "
             "event (its cause), or censored at their last time", HIDDEN_NOTE]
    if spec.round_to is not None:
        notes.append(f"numbers at risk, events and censorings are rounded to the nearest "
                     f"multiple of {spec.round_to}; incidences are rounded to what one "
                     "participant could move them")
    return Result(AnalysisKind.CUMULATIVE_INCIDENCE, spec.model_dump(mode="json"), cells,
                  facts=facts, levels=levels, notes=notes)


def incidence(t: FloatArray, cause: IntArray, causes: list[int],
              ends: FloatArray) -> FloatArray:
    """Each cause's Aalen–Johansen cumulative incidence at each end (causes × ends)."""
    from statsmodels.duration.survfunc import CumIncidenceRight

    out = np.zeros((len(causes), len(ends)), dtype=np.float64)
    if not (cause > 0).any():
        return out
    with warnings.catch_warnings():  # its standard errors divide by zero at the last time
        warnings.simplefilter("ignore", RuntimeWarning)
        fitted = CumIncidenceRight(t, cause)
    at = np.searchsorted(fitted.times, ends, side="right") - 1
    for i, c in enumerate(causes):
        if c <= len(fitted.cinc):
            curve = np.asarray(fitted.cinc[c - 1], dtype=np.float64)
            out[i] = np.where(at >= 0, curve[np.maximum(at, 0)], 0.0)
    return out


def steps(index: IntArray, happened: npt.NDArray[np.bool_], t: FloatArray,
          ends: FloatArray, m: int) -> list[float]:
    """The rounding step of every cause's incidence at each end (sensitivity.incidence_step),
    from counts per interval only: r, those followed to the end or later, bounds every risk
    set up to it from below, and H, the sum over intervals so far of their events over their
    own r, bounds the all-cause Nelson–Aalen hazard from above (each event of an interval
    has at least that interval's r at risk, and at least itself).

    One participant moves each count by at most m, wherever in an interval their follow-up
    ends, so the step is as stable as a count. (The smallest risk set the estimate used, at
    the last event, is a closer bound, but one participant decides which event is last: an
    event placed late, with few at risk, made the step ten times coarser, or hid the
    figure, only when the target had it.)"""
    ordered = np.sort(t)
    remaining = len(t) - np.searchsorted(ordered, ends, side="left")
    events = np.bincount(index[happened], minlength=len(ends))
    hazard = np.cumsum(events / np.maximum(remaining, 1))
    return [sensitivity.incidence_step(float(h), int(r), m)
            for h, r in zip(hazard, remaining, strict=True)]


def _life_table(group: tuple[str, ...], labels: list[str], ends: FloatArray, index: IntArray,
                t: FloatArray, cause: IntArray, ids: PidArray, causes: list[int],
                round_to: int | None, table: str, rounding: Rounding) -> list[Cell]:
    k = len(labels)
    happened = cause > 0
    events = {c: np.bincount(index[cause == c], minlength=k) for c in causes}
    event_pids = {c: group_pids(np.where(cause == c, index, -1), ids, k) for c in causes}
    censored = np.bincount(index[~happened], minlength=k)
    censored_pids = group_pids(np.where(happened, -1, index), ids, k)
    at_risk = np.cumsum((sum(events.values()) + censored)[::-1])[::-1]
    people, last = last_per_pid(ids, index)
    m = sensitivity.rows_per_person(ids)
    estimates = incidence(t, cause, causes, ends)
    step = steps(index, happened, t, ends, m)
    cells: list[Cell] = []
    for i, label in enumerate(labels):
        row = (*group, label)
        risk = people[last >= i]
        cells.append(count_cell(row, "at_risk", int(at_risk[i]), risk, round_to,
                                CellKind.AT_RISK, table=table, derived=i > 0))
        for j, c in enumerate(causes):
            cells += [
                count_cell(row, column(EVENTS, str(c)), int(events[c][i]), event_pids[c][i],
                           round_to, CellKind.EVENTS, table=table),
                Cell(row, column(INCIDENCE, str(c)), CellKind.INCIDENCE,
                     sensitivity.shown(float(estimates[j, i]), step[i], rounding)
                     if at_risk[i] else None, risk, table=table),
            ]
        # last, as in Kaplan–Meier's rows: the count that completes the interval's sum (at
        # risk = events + censored + those still followed) is the one the combination audit
        # hides, and a censoring count can be hidden where events cannot
        cells.append(count_cell(row, "censored", int(censored[i]), censored_pids[i], round_to,
                                CellKind.CENSORED, table=table))
    return cells
