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


def _sorted(ids: np.ndarray) -> np.ndarray:
    """Distinct IDs in order: by a mark per possible ID when the set is dense in its range (a
    scatter and one pass, where a sort of 250,000 IDs took 14 ms on a slow machine), else by
    a sort. Duplicates, which a set drops anyway, go either way."""
    if ids.size > 4096 and int(ids.max()) < 32 * ids.size:
        marks = np.zeros(int(ids.max()) + 1, dtype=np.bool_)
        marks[ids] = True
        return np.flatnonzero(marks).astype(np.uint32)
    return np.sort(ids)


def bitmap(eids: np.ndarray) -> BitMap:
    """A compressed set of participant IDs (fast: built from a typed buffer, not a loop)."""
    ids = np.asarray(eids, dtype=np.uint32)
    typed = array.array("I")  # sorted input builds ten times faster than unsorted
    typed.frombytes(_sorted(ids).tobytes())
    found = BitMap()
    found.update(typed)
    return found


def within_output(cells: Sequence[tuple[str, BitMap]], threshold: int) -> list[Finding]:
    """Pairs of distinct shown cells whose sets differ by too few people: below the
    threshold's keyed line for the pair (enclave.margin); each finding names the later cell."""
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
            pairs += 1
            if pairs > MAX_PAIRS:
                return [Finding(RULE, Verdict.BLOCK, "the output has too many cells of nearly "
                                "equal size to compare; split it into smaller outputs")]
            apart = cells[a][1].symmetric_difference_cardinality(cells[b][1])
            first, second = sorted((int(a), int(b)))
            drawn = threshold <= apart < top  # the difference is built only where it decides
            if apart > 0 and margin.short(apart, threshold, RULE, members=np.asarray(
                    (cells[first][1] ^ cells[second][1]).to_array()) if drawn else None):
                findings.append(Finding(
                    RULE, Verdict.BLOCK,
                    f"cells {cells[first][0]!r} and {cells[second][0]!r} differ by too few "
                    f"participants (the threshold of {threshold}, drawn per pair), so "
                    "together they would disclose those few; drop one of them or group "
                    "differently", second))
    return findings
