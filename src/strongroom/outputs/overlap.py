"""Differencing inside one output: two shown cells whose participant sets barely differ.

``count(*)`` and ``count(bmi)`` of the same group, 100 and 99, tell that one person in the group
has no BMI; a mean over a group and over the same group less two tells their values. Between
outputs the ledger catches this; here the pairs are the output's own shown cells.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from pyroaring import BitMap

from strongroom.enclave import margin
from strongroom.outputs.verdicts import Finding, Verdict

RULE = "differencing.within"  # apart from the ledger's "differencing": see Measures
MAX_PAIRS = 200_000  # beyond this many close-sized pairs the output is refused as too fine


def bitmap(eids: np.ndarray) -> BitMap:
    """A compressed set of participant IDs, given distinct and ascending (enclave's
    ``MasterIds.distinct``): built from a typed buffer, ten times faster than unsorted."""
    typed = array.array("I")
    typed.frombytes(np.asarray(eids, dtype=np.uint32).tobytes())
    found = BitMap()
    found.update(typed)
    return found


def within_output(cells: Sequence[tuple[str, BitMap]], threshold: int,
                  families: Sequence[str] | None = None) -> list[Finding]:
    """Pairs of distinct shown cells whose sets differ by too few people: below the
    threshold's keyed line for the pair (enclave.margin); each finding names the later cell.

    ``families`` (one per cell, see :func:`acts`) say which pairs count: two counts of people
    within the line clash *identical included*, so that a count of "everyone with the target"
    beside one of "everyone with the target if obese" is hidden whether the two are the same
    people or one apart (were identical ones shown, which of them is hidden would say)."""
    families = list(families) if families is not None else [COUNT] * len(cells)
    sizes = np.array([len(s) for _, s in cells], dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    top = margin.highest(threshold)
    findings: list[Finding] = []
    pairs = 0
    for a_pos, a in enumerate(order):
        # |A Δ B| ≥ ||A| − |B||: only cells within the highest line in size can be too close
        for b in order[a_pos + 1:]:
            if sizes[b] - sizes[a] >= top:
                break
            first, second = sorted((int(a), int(b)))
            if not acts(families[first], families[second]):
                continue
            pairs += 1
            if pairs > MAX_PAIRS:
                return [Finding(RULE, Verdict.BLOCK, "the output has too many cells of nearly "
                                "equal size to compare; split it into smaller outputs")]
            apart = cells[a][1].symmetric_difference_cardinality(cells[b][1])
            if close(apart, threshold, families[first], families[second], RULE,
                     cells[first][1], cells[second][1]):
                findings.append(Finding(
                    RULE, Verdict.BLOCK,
                    f"cells {cells[first][0]!r} and {cells[second][0]!r} rest on the same "
                    f"participants but for fewer than a line drawn from the threshold of "
                    f"{threshold} (perhaps none), so the later one is not shown: it would "
                    "say nothing new, or tell those few apart; drop one of them or group "
                    "differently", second))
    return findings


# What a released group is, for pairwise differencing: a count of people (COUNT cells, the
# holders of a few-valued sum), a percentage's numerator or denominator, a statistic of
# values (compared by its contributions instead, contributions.py), or another figure.
COUNT, PERCENT, VALUES, OTHER = "count", "percent", "values", "other"
GENOMES = "genomes"  # a GWAS's analysed group: its genotype sums are in every figure


def acts(a: str, b: str) -> bool:
    """Whether two groups' sets are compared at all: two counts, or two percentages, and
    nothing else. Every pair compared must be judged alike identical and one person apart
    (``close``), and across families that would hide the ordinary (a frequency's count and
    percentage of one category, a summary's n beside its minimum, a survival table's number
    at risk beside a count of the group): a reference of one family beside a grid of another,
    shown when identical and hidden one apart, gave a BMI in two outputs. Across families
    the rounding of counts (a keyed draw per group) and the other rules speak; a statistic's
    contributions are compared by value differencing."""
    return a == b and a in (COUNT, PERCENT, GENOMES)


def close(apart: int, threshold: int, a: str, b: str, rule: str, one: BitMap,
          other: BitMap) -> bool:
    """Whether two compared groups (``one`` of family ``a``, ``other`` of ``b``) ``apart``
    people apart clash: below the pair's keyed line, drawn by the people they differ by (the
    set built only where the line is drawn). Identical ones clash too: the later repeats what
    the earlier says, and hiding it only then would tell identical from one apart. An
    identical pair is no attempt on anyone, so it is not tallied for the watch."""
    if not acts(a, b):
        return False
    if apart == 0:  # an empty group (a zero, a complement of nobody) repeats nothing
        # two GWAS over the same people (other traits) subtract to nothing: no one's genotypes
        return len(one) > 0 and a != GENOMES
    drawn = threshold <= apart < margin.highest(threshold)
    return margin.short(apart, threshold, rule, members=np.asarray(
        (one ^ other).to_array(), dtype=np.int64) if drawn else None)
