"""Release precision: a statistic is shown no finer than one participant can move it.

Six significant digits make every differencing attack exact: the means of 10,000 and of the
same 10,000 with one person's value changed differ in their fifth digit. The guarantee: *a
sum, mean, standard deviation or quantile is rounded to a step at least as large as the most
that any one of its participants could change it*, so that two releases differing in one
person's contribution differ by at most one step, and that step is as wide as the whole range
of a person's possible contribution. The step is a "nice" number (1, 2 or 5 × 10ⁿ) so that a
reader sees ordinary rounding:

- contributions are winsorised (enclave/winsor.py), so up to r of them sit at a bound that is
  one participant's own value (r the clip's rank, k plus a keyed margin, at most 2k − 1):
  where 2k − 1 or fewer hold a bound, 2k − 1 times its distance to the next value inside
  counts as spread (moving that one participant moves them all);
- a sum: the largest contribution's size (or the spread of contributions, if larger); a
  count of rows where some participant has several rows is the sum of each one's rows;
- a mean over n participants: the spread of their values / n;
- a standard deviation: the most one value can change it, min(spread / √(n−1),
  spread² / (SD·(n−1)));
- a median or other quantile: the step is wide enough that the rounded value's interval holds
  at least the threshold of participants' values, so it no longer pins any one person, and at
  least k times the widest gap between neighbouring values within k ranks of it, the most one
  participant crossing it can move it (others' values set around a gap at a cut made the
  quantile jump across the gap with the side of the cut the target was on).

Statistics over many people lose nothing a reader needs (a mean BMI of 500,000 is shown to
the fourth decimal); statistics over few are coarse, as they should be. Each step is worked
out from the cell's own contributions (``Cell.values``); a cell of these kinds without them is
not rounded here and the check refuses it as unknown.
"""

from __future__ import annotations

import math

import numpy as np

from strongroom.enclave import margin
from strongroom.enclave.results import Cell, CellKind, FloatArray, Result
from strongroom.enclave.steps import Rounding, nice_step

ROUNDED = frozenset({CellKind.SUM, CellKind.MEAN, CellKind.SD, CellKind.MEDIAN,
                     CellKind.QUANTILE})
NOTE = ("sums, means, SDs and quantiles are rounded to a step at least as large as one "
        "participant could move them (see the output check's release precision)")


def apply(result: Result, threshold: int, rounding: Rounding, count_base: int = 1,
          fact_counts: frozenset[str] = frozenset()) -> None:
    """Round each statistic of ``result`` to its release precision, in place (``rounding``:
    the project's, up or down by a keyed draw of the request and the cell, see
    steps.Rounding), and each count of people to a multiple of ``count_base`` (below)."""
    touched = False
    # a variable's mean, SD and quantiles share one array of contributions: sorted once
    ordered: dict[int, tuple[object, FloatArray]] = {}
    for cell in result.cells:
        if (cell.kind in ROUNDED or _counts_rows(cell)) and cell.value is not None \
                and cell.values is not None:
            if id(cell.values) not in ordered:
                ordered[id(cell.values)] = (cell.values, finite_sorted(cell.values))
            step = step_for(cell, threshold, ordered[id(cell.values)][1])
            if step > 0:
                cell.value = rounding(cell.value, step, "figure", str(cell.kind),
                                      *_members(cell), margin.of(cell.values))
                touched = True
    if touched and NOTE not in result.notes:
        result.notes.append(NOTE)
    if count_base > 1:
        _counts(result, rounding, count_base)
        _facts(result, rounding, count_base, fact_counts)


def _facts(result: Result, rounding: Rounding, base: int, counts: frozenset[str]) -> None:
    """A model's counts of people (``counts``: the rules' fact counts, n_obs, events …)
    rounded like any count, and the residual degrees of freedom moved with n_obs (n_obs less
    the parameters would give the exact n back); the exact ones kept for the check."""
    for name in sorted(counts & result.facts.keys()):
        exact = result.facts[name]
        result.exact_facts[name] = exact
        result.facts[name] = float(rounding(exact, float(base), "fact", name))
    if "n_obs" in result.exact_facts and "residual_df" in result.facts:
        moved = result.facts["n_obs"] - result.exact_facts["n_obs"]
        result.exact_facts["residual_df"] = result.facts["residual_df"]
        result.facts["residual_df"] += moved


COUNTS = frozenset({CellKind.COUNT, CellKind.AT_RISK, CellKind.EVENTS, CellKind.CENSORED})


def _counts(result: Result, rounding: Rounding, base: int) -> None:
    """Every count of people to a multiple of ``base``, up with the chance of the fraction of
    a base it is past the multiple below (so unbiased), by a draw of the request and the cell
    (steps.Rounding): a count is exact otherwise, and a group whose size an attacker knows
    from outside (accomplices) says by it whether one more person is in it. Each count then
    tells one person's presence one time in ``base``, and no calibrating count (another
    request's, or another cell's of this one) shares its draw. A count the researcher asked to
    be rounded (``round_to``) is rounded so from its exact value, to the larger base.
    Percentages are of the rounded counts, their numerator's and denominator's own cells: a
    percentage of exact counts would give them back (and its own draw, a second look)."""
    shown: dict[tuple[object, ...], float] = {}  # a count's participants -> its rounded value
    for cell in result.cells:
        if cell.kind not in COUNTS or cell.value is None or _counts_rows(cell):
            continue
        exact = cell.exact if cell.exact is not None else cell.value
        step = max(base, cell.rounded_to or 1)
        members = _members(cell)
        cell.value = float(rounding(exact, float(step), "count", step, *members))
        cell.exact, cell.rounded_to = exact, step
        shown.setdefault(members, cell.value)
    for cell in result.cells:
        if cell.kind is not CellKind.PERCENT or cell.value is None:
            continue
        top = shown.get(_members(cell))
        bottom = None if cell.denominator is None else shown.get((margin.of(cell.denominator),))
        # a percentage whose counts are not cells of this result: its own draws, coarse
        if top is None or bottom is None:
            den = cell.denominator.size if cell.denominator is not None else 0
            top = rounding(cell.value * den / 100, float(base), "count", base, *_members(cell))
            bottom = rounding(float(den), float(base), "count", base,
                              margin.of(cell.denominator if cell.denominator is not None
                                        else np.zeros(0, dtype=np.int64)))
        cell.value = 100.0 * top / bottom if bottom else None
    result.notes = [n for n in result.notes if not n.startswith("counts are rounded to")]
    result.notes.append(f"counts of people are rounded to a multiple of {base} (or of the base "
                        "asked for, if larger), up or down at random so that they are right on "
                        "average; percentages are of the rounded counts")


def _members(cell: Cell) -> tuple[object, ...]:
    """A cell named by its participants (enclave/margin.py, ``of``): copies of one group share
    one draw, so 300 copies of a count are one rounded count, not an average to take."""
    return (margin.of(cell.contributors),)


def finite_sorted(values: FloatArray) -> FloatArray:
    """A statistic's contributions as :func:`step_for` reads them: the finite ones, sorted."""
    x = np.asarray(values, dtype=np.float64)
    return np.sort(x[np.isfinite(x)])


def step_for(cell: Cell, threshold: int, ordered: FloatArray | None = None) -> float:
    """The rounding step of a statistic (0: nothing to round, e.g. no spread at all);
    ``ordered``: its contributions as :func:`finite_sorted` gives them, if at hand."""
    assert cell.values is not None and cell.value is not None
    x = finite_sorted(cell.values) if ordered is None else ordered
    n = x.size
    if n == 0:
        return 0.0
    low, high = float(x[0]), float(x[-1])
    spread = high - low
    if cell.kind is not CellKind.MEDIAN and cell.kind is not CellKind.QUANTILE:
        # winsorised contributions (enclave/winsor.py): up to the clip's rank (k plus its
        # keyed margin, at most 2k − 1) sit at a bound that is one participant's own value,
        # so moving that one moves them all
        top = margin.highest(threshold)
        spread = max(spread, top * bound_gap(x, top))
    if cell.kind is CellKind.SUM or _counts_rows(cell):
        return nice_step(max(abs(low), abs(high), spread))
    if cell.kind is CellKind.MEAN:
        return nice_step(max(spread, abs(high) if n == 1 else 0.0) / n)
    if cell.kind is CellKind.SD:
        if n < 2:
            return 0.0
        bound = spread / math.sqrt(n - 1)
        sd = abs(cell.value)
        if sd > 0:
            bound = min(bound, spread * spread / (sd * (n - 1)))
        return nice_step(bound)
    # a quantile: wide enough that `threshold` participants' values fall within half a step,
    # and `threshold` times the widest gap between neighbouring values within `threshold`
    # ranks of it: one participant crossing it shifts every rank by at most one, so moves it
    # by at most one such gap, a tenth of a step at k = 10 (the others' values set around a
    # gap at a cut, the side of the cut the target was on moved the quantile across the gap,
    # and the k values nearest it, all on one side, made a step finer than the gap)
    return nice_step(max(2.0 * _reach(x, cell.value, threshold),
                         threshold * _widest_gap(x, cell.value, threshold)))


def _reach(ordered: FloatArray, at: float, k: int) -> float:
    """How far from ``at`` its ``k``-th nearest value is (all of them, if fewer): the k
    nearest lie within k places of where ``at`` falls in the sorted values."""
    where = int(np.searchsorted(ordered, at))
    near = np.sort(np.abs(ordered[max(where - k, 0):where + k] - at))
    return float(near[min(k, near.size) - 1])


def _widest_gap(ordered: FloatArray, at: float, ranks: int) -> float:
    """The widest gap between neighbouring values within ``ranks`` ranks of ``at`` (of
    every value tied with it: a quantile inside a run of ties is at any of their ranks);
    ``ordered``: the values, sorted."""
    first = int(np.searchsorted(ordered, at, side="left"))
    last = int(np.searchsorted(ordered, at, side="right"))
    window = ordered[max(first - ranks - 1, 0):last + ranks + 1]
    return float(np.diff(window).max()) if window.size > 1 else 0.0


def bound_gap(ordered: FloatArray, threshold: int) -> float:
    """How far a winsorised statistic's bound could move when one participant moves: a bound
    held by no more than ``threshold`` contributions (the k clipped to it, its own holder
    among them) drops to the next value inside when one of them leaves it, and all of them
    with it; one held by more stays put. Read from the clipped contributions alone, sorted
    (``ordered``)."""
    n = ordered.size
    if n < 2:
        return 0.0
    gap = 0.0
    top, bottom = ordered[-1], ordered[0]
    at_top = n - int(np.searchsorted(ordered, top, side="left"))
    if at_top <= threshold and at_top < n:
        gap = float(top - ordered[-at_top - 1])
    at_bottom = int(np.searchsorted(ordered, bottom, side="right"))
    if at_bottom <= threshold and at_bottom < n:
        gap = max(gap, float(ordered[at_bottom] - bottom))
    return gap


def _counts_rows(cell: Cell) -> bool:
    """A count of rows where someone has several: the sum of each participant's rows."""
    return cell.kind is CellKind.COUNT and cell.values is not None
