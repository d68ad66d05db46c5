"""The per-result disclosure check: every rule on every cell, by the cell's kind.

:func:`check` reads a :class:`~strongroom.enclave.results.Result` (cells with the distinct
participants behind them) and returns a :class:`~strongroom.outputs.verdicts.CheckReport`:
one :class:`Finding` per failed rule and cell, in plain words that name the cell by its labels
and the threshold, never a participant's value (nor the exact size of a small group, which
would give a hidden count away). A failing cell of a table (a count, percentage, magnitude or
quantile) is hidden, then secondary suppression (:mod:`strongroom.outputs.suppression`) hides
what would give it away; a failing cell that cannot be hidden (a coefficient, a model figure,
a Kaplan–Meier step) blocks the output. Anything the check does not recognise is blocked.

Differencing (of the shown cells against each other and against earlier releases) and the
raw-row scan are separate checks; a cell that differences comes back in ``hide`` (the output
service's ``_checked``) and is hidden here like any other.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from strongroom.enclave import margin
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.outputs.labels import RULE as LABELS_RULE
from strongroom.outputs.labels import unsafe_cells
from strongroom.outputs.precision import ROUNDED
from strongroom.outputs.rules import Rules
from strongroom.outputs.suppression import TooLargeToProveError, protect, where
from strongroom.outputs.verdicts import CheckReport, Finding, Verdict

# analyses whose output is a table a reader can show with gaps
TABLE_ANALYSES = frozenset({AnalysisKind.FREQUENCY, AnalysisKind.CROSSTAB, AnalysisKind.SUMMARY,
                            AnalysisKind.HISTOGRAM, AnalysisKind.AGGREGATE_SQL})
# tables whose rows are groups of one population, so that lines add up to totals (a summary's
# rows are different variables)
ADDITIVE_ANALYSES = TABLE_ANALYSES - {AnalysisKind.SUMMARY}
# cells of a table that can be hidden without making the rest meaningless
HIDEABLE = frozenset({CellKind.COUNT, CellKind.PERCENT, CellKind.SUM, CellKind.MEAN,
                      CellKind.SD, CellKind.MEDIAN, CellKind.QUANTILE})
MODELS = frozenset({AnalysisKind.OLS, AnalysisKind.LOGISTIC, AnalysisKind.COX,
                    AnalysisKind.GLM})
FITS = MODELS | {AnalysisKind.CORRELATION}  # leverage and covariate support are checked
# analyses whose statistics carry each participant's values (release precision needs them)
VALUED_ANALYSES = frozenset({AnalysisKind.SUMMARY, AnalysisKind.AGGREGATE_SQL})
MAGNITUDES = frozenset({CellKind.SUM, CellKind.MEAN})  # dominance rules need their magnitudes
SUPPORT_ONLY = frozenset({CellKind.COEFFICIENT, CellKind.HAZARD_RATIO, CellKind.CORRELATION,
                          CellKind.GENOTYPES,
                          CellKind.STATISTIC, CellKind.SURVIVAL, CellKind.INCIDENCE})
# life tables: counts per interval of a grid, and the estimates those counts give
LIFE_TABLES = frozenset({AnalysisKind.KAPLAN_MEIER, AnalysisKind.CUMULATIVE_INCIDENCE})
ESTIMATES = frozenset({CellKind.SURVIVAL, CellKind.INCIDENCE})
KM_COUNTS = frozenset({CellKind.AT_RISK, CellKind.EVENTS, CellKind.CENSORED})
COUNTS_OF_PEOPLE = frozenset({CellKind.COUNT, *KM_COUNTS})
# a model's or survival table's outcome counts: none is held like a few (no one had the event,
# or everyone did, answers for the one person a definition may have placed among the rest)
OUTCOME_FACTS = frozenset({"events", "non_events", "censored"})


def check(result: Result, rules: Rules, hide: Sequence[Finding] = ()) -> CheckReport:
    """Apply every rule in ``rules`` to ``result``; the verdict is the worst finding.

    ``hide``: suppressions found outside this result (cells that difference against what was
    released), hidden like the check's own, secondary suppression and all."""
    kind = result.kind
    if not isinstance(kind, AnalysisKind) or kind not in rules.analyses:
        finding = Finding("unknown", rules.unknown_verdict,
                          f"the analysis kind {str(kind)!r} is not one the output check knows; "
                          "it is refused rather than passed unchecked")
        return _report([finding], set(), rules)
    removed = unsafe_cells(result, rules.threshold)
    findings: list[Finding] = []
    for i, cell in enumerate(result.cells):
        found = _cell_findings(i, cell, result, rules)
        # nothing of a removed cell leaves: only the findings that hide it still say something
        findings.extend(f for f in found if i not in removed or f.verdict is Verdict.SUPPRESS)
    findings.extend(_fact_findings(result, rules))
    findings.extend(_model_findings(result, rules))
    findings.extend(hide)
    findings = [_settle(f, result) for f in findings]
    if removed:
        findings.append(_removed_finding(result, removed, rules))
    primary = {f.cell for f in findings if f.verdict is Verdict.SUPPRESS and f.cell is not None}
    primary |= removed
    eligible = {i for i in range(len(result.cells)) if hideable(result, i)} | removed
    try:
        protection = protect(result.cells, primary, eligible,
                             relate=result.kind in ADDITIVE_ANALYSES, threshold=rules.threshold)
    except TooLargeToProveError:  # fail closed: what cannot be proven safe does not leave
        findings.append(Finding("secondary_suppression", Verdict.BLOCK,
                                "the table hides too many cells to prove that none can be "
                                "worked out from its totals; coarsen its categories"))
        return _report(findings, primary, rules, removed, result.cells)
    for i, why in sorted(protection.secondary.items()):
        findings.append(Finding("secondary_suppression", Verdict.SUPPRESS,
                                f"{where(result.cells[i])} is hidden too: {why}", i))
    for i in sorted(protection.unprotected):
        findings.append(Finding("secondary_suppression", Verdict.BLOCK,
                                f"{where(result.cells[i])} would be hidden, but the table's "
                                "totals give it away and no other cell can be hidden to "
                                "prevent that; coarsen or drop the table's categories", i))
    hidden = primary | set(protection.secondary)
    findings.extend(_worth(result, hidden))
    return _report(findings, hidden, rules, removed, result.cells)


# a table with more than this share of its figures hidden says so, with what to ask instead
MOSTLY_HIDDEN = 0.5
NOTHING_LEFT = "nothing_left"  # the rule of a table that keeps nothing: never released
MOSTLY = "mostly_hidden"
# whether what is left is worth releasing: said beside the disclosure rules, never a verdict
WORTH = frozenset({NOTHING_LEFT, MOSTLY})
COARSER = ("ask for coarser groups instead (fewer categories or wider bands, fewer "
           "variables crossed at once, or a larger definition)")


def _worth(result: Result, hidden: set[int]) -> list[Finding]:
    """Whether what a table keeps is worth releasing: one whose every figure is hidden, or
    that keeps only counts of nobody, holds nothing, and its release is refused with this
    reason (requests.NOTHING_LEFT: no checker is asked to pass an empty table); one mostly
    hidden says so. Neither changes the verdict: which cells are hidden is what the table
    shows anyway, and saying how many adds nothing."""
    if result.kind not in TABLE_ANALYSES or not hidden or not result.cells:
        return []
    kept = [c for i, c in enumerate(result.cells) if i not in hidden]  # totals say something
    if all(c.kind in (CellKind.COUNT, CellKind.PERCENT) and not c.value for c in kept):
        return [Finding(NOTHING_LEFT, Verdict.SUPPRESS,
                        "every figure of this table would be hidden (or is a count of no "
                        "one), so there is nothing to release; " + COARSER)]
    if len(hidden) > MOSTLY_HIDDEN * len(result.cells):
        return [Finding(MOSTLY, Verdict.SUPPRESS,
                        f"{len(hidden)} of its {len(result.cells)} figures would be hidden, "
                        f"so it says little; " + COARSER)]
    return []


def _report(findings: list[Finding], suppressed: set[int], rules: Rules,
            removed: set[int] | None = None, cells: list[Cell] | None = None) -> CheckReport:
    if removed and cells is not None:
        findings = _unnamed(findings, [where(cells[i]) for i in sorted(removed)])
    return CheckReport(verdict=CheckReport.worst(findings), findings=findings,
                       suppressed=suppressed, rules_version=rules.version_id,
                       thresholds=rules.as_dict(), removed=set(removed or ()))


def _unnamed(findings: list[Finding], names: list[str]) -> list[Finding]:
    """Reasons that do not name a removed cell (its label is what must not leave)."""
    if not names:
        return list(findings)
    # one pass per reason over every name (longest first, so no name eats part of another),
    # not one pass per name: the time must not grow with how many labels were left out
    pattern = re.compile("|".join(re.escape(n) for n in sorted(set(names), key=len,
                                                                reverse=True)))
    return [Finding(f.rule, f.verdict, pattern.sub("a cell left out for its label", f.reason),
                    f.cell) for f in findings]


def _removed_finding(result: Result, removed: set[int], rules: Rules) -> Finding:
    """One finding for every cell left out for its label; it names none of them."""
    rows = len({result.cells[i].row for i in removed})
    return Finding(LABELS_RULE, Verdict.SUPPRESS,
                   f"{len(removed)} cell{'s' if len(removed) != 1 else ''} in {rows} "
                   f"row{'s' if rows != 1 else ''} or column{'s' if rows != 1 else ''} "
                   f"{'are' if len(removed) != 1 else 'is'} left out, labels and all: "
                   f"their labels are held by fewer than {rules.threshold} participants, and "
                   "a label is a value of participants too; group by categories or bands that "
                   "many people share")


def hideable(result: Result, i: int) -> bool:
    cell = result.cells[i]
    if result.kind in LIFE_TABLES:  # the numbers at risk give it only roughly
        return cell.kind is CellKind.CENSORED
    return (isinstance(cell.kind, CellKind) and cell.kind in HIDEABLE
            and result.kind in TABLE_ANALYSES)


def _settle(finding: Finding, result: Result) -> Finding:
    """A suppression where nothing can be hidden (a model, a survival curve) is a block."""
    if finding.verdict is not Verdict.SUPPRESS:
        return finding
    if finding.cell is not None and hideable(result, finding.cell):
        return finding
    return Finding(finding.rule, Verdict.BLOCK,
                   f"{finding.reason}. It cannot be hidden from this kind of output without "
                   "giving it away, so the output is blocked", finding.cell)


# ---------------------------------------------------------------- cells


def _cell_findings(i: int, cell: Cell, result: Result, rules: Rules) -> Iterator[Finding]:
    accepted = rules.analyses[result.kind]
    if not isinstance(cell.kind, CellKind) or cell.kind not in accepted:
        yield _unknown(i, cell, rules, f"a {str(cell.kind)!r} cell is not something the "
                                       f"check knows in a {result.kind.value} result")
        return
    if not _is_set(cell.contributors):
        yield _unknown(i, cell, rules, "its participants are not established (they must be a "
                                       "sorted list of distinct participants)")
        return
    if (cell.kind in ROUNDED and result.kind in VALUED_ANALYSES and cell.value is not None
            and (cell.values is None or cell.values.shape != cell.contributors.shape)):
        yield _unknown(i, cell, rules, "each participant's own values are needed to set its "
                                       "release precision and were not given")
        return
    if cell.rounded_to is not None:
        yield from _rounding(i, cell, rules)
    if cell.kind in COUNTS_OF_PEOPLE and not _count_consistent(cell):
        yield _unknown(i, cell, rules, "it shows a count that its participants do not support")
        return
    if cell.value is None and cell.kind not in (CellKind.COUNT, CellKind.PERCENT):
        return  # nothing is shown
    rule = _RULES[cell.kind]
    yield from rule(i, cell, rules)


def _count(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    n = cell.contributors.size
    if cell.value is None and n > 0:
        return  # not shown
    # a zero is held like a few: shown, it answers whether one person has what the cell counts
    yield from _threshold(i, cell, n, margin.THRESHOLD[1], rules)
    if _median_of_few(cell, rules):
        if cell.contributors.size >= rules.threshold:
            yield _few_to_winsorise(i, cell, rules)
        return
    if cell.magnitudes is not None:  # a count of rows: each participant's rows are theirs
        rows = np.asarray(cell.magnitudes, dtype=np.float64)
        yield from _disguised_counts(i, cell, rows, rules)
        yield from _dominance(i, cell, rows, rules)


def _percent(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    if cell.denominator is None or not _is_set(cell.denominator):
        yield _unknown(i, cell, rules, "a percentage needs the participants of its denominator")
        return
    num, den = cell.contributors.size, cell.denominator.size
    if num > den:
        yield _unknown(i, cell, rules, "its numerator has more participants than its "
                                       "denominator")
        return
    # 0% and 100% are held like a few either side: shown, they answer whether one person has,
    # or lacks, the attribute (a margin's 100% is its table's shape, not data)
    # the numerator's draw is its count's (the same people, the same question)
    yield from _threshold(i, cell, num, "participants are in its numerator", rules,
                          margin.THRESHOLD[1])
    yield from _threshold(i, cell, den, "participants are in its denominator", rules)
    if num < den or not cell.margin:
        yield from _threshold(i, cell, den - num, "participants are in its denominator but "
                                                  "not its numerator", rules)


def _magnitude(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    n = cell.contributors.size
    yield from _threshold(i, cell, n, margin.THRESHOLD[1], rules)
    if _median_of_few(cell, rules):
        if cell.contributors.size >= rules.threshold:
            yield _few_to_winsorise(i, cell, rules)
        return  # its values are all the median: the rules below would read that as data
    yield from _identical(i, cell, rules, required=True)
    magnitudes = cell.magnitudes
    if magnitudes is None:
        if cell.kind in MAGNITUDES:
            yield _unknown(i, cell, rules, "its per-participant contributions are needed for "
                                           "the dominance rules and were not given")
        return
    x = np.abs(np.asarray(magnitudes, dtype=np.float64))
    if x.shape != (n,) or not np.isfinite(x).all():
        yield _unknown(i, cell, rules, "its per-participant contributions do not match its "
                                       "participants")
        return
    yield from _disguised_counts(i, cell, x, rules)
    yield from _dominance(i, cell, x, rules)


def _quantile(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    yield from _threshold(i, cell, cell.contributors.size, margin.THRESHOLD[1], rules)
    if cell.below is None or cell.above is None:
        yield _unknown(i, cell, rules, "a quantile needs the numbers of participants below "
                                       "and above it")
        return
    least = rules.quantile_min_each_side
    below = margin.short(cell.below, least, "below", members=cell.contributors)
    if below or margin.short(cell.above, least, "above", members=cell.contributors):
        side = "below" if below else "above"
        yield Finding("quantiles", rules.quantile_verdict,
                      f"{where(cell)}: fewer than {_line(least)} participants lie {side} it, "
                      "so the value is close to the own values of a few people", i)
    yield from _identical(i, cell, rules, required=False)


def _extreme(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    # no separate support threshold: the holders are among the supporters
    holders = cell.holders
    if holders is None or margin.short(holders, rules.threshold, "holders",
                                       members=cell.contributors):
        yield Finding("extremes", rules.extremes_verdict,
                      f"{where(cell)} is a {cell.kind.value}: one participant's own value, "
                      f"shown only when {_line(rules.threshold)} participants or more share it "
                      "(round it coarsely or use a quantile)", i)
    if cell.kind is CellKind.MODE:
        yield from _identical(i, cell, rules, required=False)


def _support(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    yield from _threshold(i, cell, cell.contributors.size, margin.THRESHOLD[1], rules)


def _at_risk(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    # nobody left is fine (the times are winsorised: no one person ends the follow-up); a
    # few, by the keyed line. Events and censorings are judged per interval (_km_intervals)
    if _few(cell.contributors.size, rules.km_min_at_risk, cell.kind, cell.contributors):
        yield Finding("kaplan_meier", rules.km_verdict,
                      f"{where(cell)}: fewer than {_line(rules.km_min_at_risk)} participants at "
                      "risk (and more than none); widen the time intervals", i)


def _per_interval(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    return iter(())  # events and censorings: by their interval, in _km_intervals


_RULES = {
    CellKind.COUNT: _count, CellKind.PERCENT: _percent,
    CellKind.SUM: _magnitude, CellKind.MEAN: _magnitude, CellKind.SD: _magnitude,
    CellKind.MEDIAN: _quantile, CellKind.QUANTILE: _quantile,
    CellKind.MIN: _extreme, CellKind.MAX: _extreme, CellKind.MODE: _extreme,
    **{kind: _support for kind in SUPPORT_ONLY},
    CellKind.AT_RISK: _at_risk, CellKind.EVENTS: _per_interval,
    CellKind.CENSORED: _per_interval,
}


# ---------------------------------------------------------------- single rules


def _threshold(i: int, cell: Cell, n: int, what: str, rules: Rules,
               draw: str | None = None) -> Iterator[Finding]:
    # k plus the cell's keyed margin (enclave/margin.py): k − 1 accomplices and the target
    # must not make a shown count exactly when the target has the value asked about; the
    # reason names the range, never where in it the line was drawn
    k = rules.threshold
    # none is short without a draw and untallied (empty cells are everyday, not a sign)
    if n == 0 or margin.short(n, k, margin.THRESHOLD[0], draw or what,
                              members=cell.contributors):
        top = margin.highest(k)
        line = f"{k}" if top == k else f"the threshold ({k} to {top}, drawn per cell)"
        yield Finding("threshold", rules.threshold_verdict,
                      f"{where(cell)}: fewer than {line} distinct {what} (the threshold "
                      "counts people, not rows)", i)


def _line(least: int) -> str:
    """A keyed line as a researcher reads it (the margin's draw is not shown)."""
    top = margin.highest(least)
    return f"{least}" if top == least else f"its line ({least} to {top}, drawn per group)"


def _few(n: int, least: int, what: object, group: object) -> bool:
    """More than none but short of the line (``least`` plus its keyed margin, enclave/margin.py):
    a fixed line is the bit of k − 1 accomplices and the target, in every rule that counts
    people. ``group``: the participants (copies share the draw), or a name."""
    if isinstance(group, np.ndarray):
        return n > 0 and margin.short(n, least, what, members=group)
    return n > 0 and margin.short(n, least, what, group)


def _median_of_few(cell: Cell, rules: Rules) -> bool:
    """A winsorised figure over fewer than 2k participants: its clip bounds cross, so it is
    their median (one participant's own value, or two's mean). Below k the threshold hides
    it; either way no rule that reads its values may speak (identical values, say: below k
    they are always the median, from k by their draw, and "blocked below k, suppressed at
    k" was the bit of k − 1 accomplices and the target)."""
    return cell.winsorised and 0 < cell.contributors.size < 2 * rules.threshold


def _few_to_winsorise(i: int, cell: Cell, rules: Rules) -> Finding:
    # the threshold's verdict: like a small count, this depends on the number of
    # participants alone (shown beside it, or itself a count), never on their values
    return Finding("threshold", rules.threshold_verdict,
                   f"{where(cell)}: fewer than {2 * rules.threshold} distinct participants "
                   f"are behind it; winsorised at the {rules.threshold}th smallest and "
                   "largest, its figure would be the median, one participant's own value", i)


def _identical(i: int, cell: Cell, rules: Rules, *, required: bool) -> Iterator[Finding]:
    distinct = cell.distinct_values
    if distinct is None:
        if required:
            yield _unknown(i, cell, rules, "the number of distinct values behind it is not "
                                           "known, so identical values cannot be ruled out")
        return
    if distinct < rules.identical_min_distinct and cell.contributors.size > 0:
        yield _identical_finding(i, cell, rules)


def _identical_finding(i: int, cell: Cell, rules: Rules) -> Finding:
    return Finding("identical_values", rules.identical_verdict,
                   f"{where(cell)}: the values behind it are (nearly) all identical, so it "
                   "tells each contributor's own value", i)


def _disguised_counts(i: int, cell: Cell, x: npt.NDArray[np.float64],
                      rules: Rules) -> Iterator[Finding]:
    """A sum or mean is a count of the participants with non-zero values, or of each value;
    and where all but a few participants contribute the same value, it is (less that value
    times the group's count) the sum of those few's own values."""
    nonzero = int(np.count_nonzero(x))
    if _few(nonzero, rules.threshold, "non-zero", cell.contributors):
        yield Finding("threshold", rules.threshold_verdict,
                      f"{where(cell)}: fewer than {_line(rules.threshold)} distinct participants "
                      "contribute a non-zero value to it", i)
        return
    own = np.asarray(cell.values if cell.values is not None else x, dtype=np.float64)
    if own.size:
        _, counts = np.unique(own, return_counts=True)
        if _few(own.size - int(counts.max()), rules.threshold, "off the mode",
                cell.contributors):
            yield Finding("threshold", rules.threshold_verdict,
                          f"{where(cell)}: all but fewer than {_line(rules.threshold)} of its "
                          "participants contribute the same value, so it gives away the sum "
                          "of those few's own values", i)
            return
    distinct = cell.distinct_values
    if distinct is not None and distinct <= rules.few_values and x.size:
        _, counts = np.unique(x, return_counts=True)
        if _few(int(counts.min()), rules.threshold, "value", cell.contributors):
            yield Finding("threshold", rules.threshold_verdict,
                          f"{where(cell)} is over a variable with at most {rules.few_values} "
                          f"distinct values, so it is a frequency table in disguise; one of "
                          f"its values is held by fewer than {_line(rules.threshold)} "
                          "participants", i)


def _dominance(i: int, cell: Cell, x: npt.NDArray[np.float64],
               rules: Rules) -> Iterator[Finding]:
    total = float(x.sum())
    if total <= 0.0:
        return  # all zero: the identical-values rule speaks
    k = min(max(rules.dominance_n, 2), x.size)
    top = np.sort(np.partition(x, x.size - k)[x.size - k:])[::-1]
    largest = float(top[0])
    second = float(top[1]) if top.size > 1 else 0.0
    if total - largest - second < rules.dominance_p / 100.0 * largest:
        yield Finding("dominance_p", rules.dominance_p_verdict,
                      f"{where(cell)}: the other contributors together hold less than "
                      f"{rules.dominance_p:g}% of the largest contribution, so the "
                      "second-largest contributor could estimate the largest one's value "
                      f"to within {rules.dominance_p:g}% (p% rule)", i)
    share = float(top[: rules.dominance_n].sum()) / total
    if share > rules.dominance_k / 100.0:
        yield Finding("dominance_nk", rules.dominance_nk_verdict,
                      f"{where(cell)}: its {rules.dominance_n} largest contributors hold more "
                      f"than {rules.dominance_k:g}% of the total ((n,k) rule)", i)


def _rounding(i: int, cell: Cell, rules: Rules) -> Iterator[Finding]:
    base = cell.rounded_to
    value, exact = cell.value, cell.exact
    problem = ""
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        problem = "the claimed rounding base is not a whole number of at least 1"
    elif value is None:
        return
    elif exact is None or not math.isfinite(exact) or not math.isfinite(value):
        problem = "the exact value is not there to verify the claim against"
    elif abs(value / base - round(value / base)) > 1e-9:
        problem = f"the shown value is not a multiple of {base}"
    elif abs(value - exact) >= base:
        problem = f"the shown value is {base} or more away from the exact value"
    if problem:
        yield Finding("rounding", rules.rounding_verdict,
                      f"{where(cell)} is said to be rounded to a multiple of {base}, but "
                      f"{problem}", i)


def _unknown(i: int, cell: Cell, rules: Rules, why: str) -> Finding:
    return Finding("unknown", rules.unknown_verdict,
                   f"{where(cell)} cannot be checked: {why}; it is refused rather than "
                   "passed unchecked", i)


def _is_set(pids: npt.NDArray[np.int64]) -> bool:
    """Sorted, distinct, one-dimensional: a set of participants, as the contract requires."""
    return pids.ndim == 1 and (pids.size < 2 or bool((pids[1:] > pids[:-1]).all()))


def _count_consistent(cell: Cell) -> bool:
    """A count of people must be a finite number and, if non-zero, have people behind it."""
    value = cell.value
    if value is None:
        return True
    if not math.isfinite(value) or value < 0:
        return False
    return not (value > 0 and cell.contributors.size == 0)


# ---------------------------------------------------------------- whole results


def _fact_findings(result: Result, rules: Rules) -> Iterator[Finding]:
    for name, shown in result.facts.items():
        value = result.exact_facts.get(name, shown)  # the rules read exact counts
        if name in rules.fact_statistics:
            continue
        if name not in rules.fact_counts:
            yield Finding("unknown", rules.unknown_verdict,
                          f"the model figure {name!r} is not one the check knows; it is "
                          "refused rather than passed unchecked")
        elif not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            yield Finding("unknown", rules.unknown_verdict,
                          f"the figure {name!r} is not a number of participants")
        elif _few(int(value), rules.threshold, "fact", name) or (
                name in OUTCOME_FACTS and int(value) == 0):
            yield Finding("threshold", rules.threshold_verdict,
                          f"the figure {name!r} counts fewer than {_line(rules.threshold)} "
                          "participants (more than none, or none of an outcome)")


def _model_findings(result: Result, rules: Rules) -> Iterator[Finding]:
    if result.kind in MODELS:
        yield from _residual_df(result, rules)
        yield from _near_perfect(result, rules)
    if result.kind in FITS:
        yield from _influence(result, rules)
    yield from _levels(result, rules)
    if result.kind in LIFE_TABLES:
        yield from _km_steps(result, rules)
        yield from _km_intervals(result, rules)


def _residual_df(result: Result, rules: Rules) -> Iterator[Finding]:
    df = result.exact_facts.get("residual_df", result.facts.get("residual_df"))
    if df is None or not math.isfinite(df):
        yield Finding("unknown", rules.unknown_verdict,
                      "the model's residual degrees of freedom are not known, so it cannot "
                      "be checked; it is refused")
    elif df < rules.regression_min_residual_df:
        yield Finding("regression", rules.regression_verdict,
                      f"the model has fewer than {rules.regression_min_residual_df} residual "
                      "degrees of freedom: with so few participants per parameter the fit "
                      "comes close to their own values")


def _influence(result: Result, rules: Rules) -> Iterator[Finding]:
    """No participant may hold more than ``max_leverage`` of their own fitted value: else
    some combination of the covariates singles out fewer than about k people, and the fit
    gives their values back (a flag that is 1 for one person, or two flags that differ by
    one person)."""
    share = result.influence
    if share is None or not math.isfinite(share):
        yield Finding("unknown", rules.unknown_verdict,
                      "how much of the fit one participant holds (their leverage) was not "
                      "measured, so the output cannot be checked; it is refused")
    elif share > rules.regression_max_leverage:
        few = max(1, math.floor(1 / rules.regression_max_leverage))
        yield Finding("regression", rules.regression_verdict,
                      f"some combination of the covariates singles out fewer than {few} "
                      "participants (one participant holds more than "
                      f"{rules.regression_max_leverage:.3g} of their own fitted value), so the "
                      "fit gives their values back; band, merge or leave out the covariate "
                      "that isolates them")


def _near_perfect(result: Result, rules: Rules) -> Iterator[Finding]:
    # the exact R² where the enclave kept it: the shown one is rounded by a keyed draw
    shown = [c.exact if c.exact is not None else c.value for c in result.cells
             if c.kind is CellKind.STATISTIC and c.column == "r_squared"]
    fits = [f for f in shown if f is not None]
    if fits and fits[0] > rules.regression_max_r_squared:
        yield Finding("regression", rules.regression_near_perfect_verdict,
                      f"the covariates reproduce the outcome almost exactly (R² above "
                      f"{rules.regression_max_r_squared:g}): anyone who knows a participant's "
                      "covariates could read their outcome off the coefficients")


def _levels(result: Result, rules: Rules) -> Iterator[Finding]:
    """Every level of a categorical covariate, group or outcome needs enough participants;
    so does every numeric covariate's support (those not at its most common value)."""
    model = result.kind in FITS
    least = rules.regression_min_level if model else rules.threshold
    rule, verdict = (("regression", rules.regression_verdict) if model
                     else ("threshold", rules.threshold_verdict))
    for key, pids in sorted(result.levels.items()):
        label = key.removeprefix("level:")
        members = np.asarray(pids)
        if not _is_set(members):
            yield Finding("unknown", rules.unknown_verdict,
                          f"the participants of the level {label!r} are not established; "
                          "the output is refused")
        elif key.startswith("support:") and _few(members.size, least, "support", members):
            yield Finding(rule, verdict,
                          f"{key.removeprefix('support:')!r} differs from its most common value "
                          f"for fewer than {_line(least)} participants, so what the output says "
                          "about it describes those few people; band it or leave it out")
        elif members.size and margin.short(members.size, least, *margin.THRESHOLD,
                                           members=members):
            # the threshold's own draw: the analysis counted a level short of it in the most
            # common (winsor.recoded), so one kept here passes whenever the lines agree
            yield Finding(rule, verdict,
                          f"the level {label!r} is held by fewer than {_line(least)} participants: "
                          "what the output says about it describes those few people; merge "
                          "it with another level")


def _km_intervals(result: Result, rules: Rules) -> Iterator[Finding]:
    """In every interval anyone is at risk in, its events (of each cause), those at risk
    without such an event, and its censorings are each held like a few when short of their
    line, *zero included*: a zero shown where a one is acted on told whether one person
    (placed alone in an interval, or the only one without the event) had the event or was
    censored. Events and those without cannot be hidden (the estimate's step shows them), so
    they block; a censoring count is hidden (the numbers at risk, rounded, give it only
    roughly)."""
    rows: dict[tuple[str, tuple[str, ...]], dict[CellKind, list[int]]] = defaultdict(
        lambda: defaultdict(list))
    for i, cell in enumerate(result.cells):  # cells refused as unknown already say why
        if cell.kind in KM_COUNTS and _is_set(cell.contributors) and _count_consistent(cell):
            rows[(cell.table, cell.row)][cell.kind].append(i)
    for at in rows.values():
        risks = at.get(CellKind.AT_RISK, [])
        if len(risks) > 1:  # one interval, two numbers at risk: not a table the check reads
            yield _unknown(risks[1], result.cells[risks[1]], rules,
                           "an interval is shown with two numbers at risk")
            continue
        at_risk = result.cells[risks[0]].contributors if risks else None
        if at_risk is not None and at_risk.size == 0:
            continue  # nobody at risk: its zeros are the table's shape
        for i in at.get(CellKind.EVENTS, []):
            had = result.cells[i].contributors
            if _short(had, rules.km_min_events, CellKind.EVENTS):
                yield Finding("kaplan_meier", rules.km_verdict,
                              f"{where(result.cells[i])}: fewer than "
                              f"{_line(rules.km_min_events)} participants with events (none "
                              "included, while people are at risk); widen the time intervals",
                              i)
            if at_risk is not None and _short(np.setdiff1d(at_risk, had, assume_unique=True),
                                              rules.km_min_events, "without events"):
                yield Finding("kaplan_meier", rules.km_verdict,
                              f"{where(result.cells[i])}: fewer than "
                              f"{_line(rules.km_min_events)} of those at risk are without an "
                              "event (none included); widen the time intervals", i)
        for i in at.get(CellKind.CENSORED, []):
            if _short(result.cells[i].contributors, rules.km_min_censored, CellKind.CENSORED):
                yield Finding("kaplan_meier", Verdict.SUPPRESS,
                              f"{where(result.cells[i])}: fewer than "
                              f"{_line(rules.km_min_censored)} participants censored (none "
                              "included), so it is hidden", i)


def _short(members: npt.NDArray[np.int64], least: int, what: object) -> bool:
    """Short of the line, zero included (none is short without a draw, and untallied)."""
    return members.size == 0 or margin.short(members.size, least, what, members=members)


def _km_steps(result: Result, rules: Rules) -> Iterator[Finding]:
    """Every survival step must come with its numbers at risk and events, so it can be checked."""
    kinds: dict[tuple[str, tuple[str, ...]], set[CellKind]] = defaultdict(set)
    first: dict[tuple[str, tuple[str, ...]], int] = {}
    for i, cell in enumerate(result.cells):
        key = (cell.table, cell.row)
        kinds[key].add(cell.kind)
        first.setdefault(key, i)
    for key, present in kinds.items():
        if present & ESTIMATES and not {CellKind.AT_RISK, CellKind.EVENTS} <= present:
            i = first[key]
            yield _unknown(i, result.cells[i], rules, "a survival step is shown without its "
                                                      "numbers at risk and events in the same row")
