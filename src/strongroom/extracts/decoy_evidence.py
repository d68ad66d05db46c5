"""Decoys as evidence: how unlikely the decoys found in a suspect are, were it not the copy.

``decoys.match_decoys`` proposes candidates (a suspect row nearest a decoy). A candidate counts
only when the row **matches the decoy on every column present** in the suspect: codes exactly,
numbers and dates within one step of the suspect's own grid (at least one unit of recorded
precision, after the offset linkage measured), a missing decoy value missing too. Loose
neighbours (a row of integer columns near some decoy) are dropped here.

**The bound.** Under the null hypothesis — the file holds no row of extract ``j``'s copy — a
suspect row could match one of ``j``'s decoys only by chance. That chance is taken from the
cohort's own value distribution: ``q_d``, the share of cohort rows that pass the *same* match
test against decoy ``d`` on the same columns, counted with one added (a decoy is no real row)
and multiplied by ``SAFETY`` (10) for what a finite cohort cannot show. With ``U`` suspect rows
left unlinked (linked rows are real participants and never searched), decoy ``d`` is matched
by chance with probability at most ``π_d = min(1, U·q_d)``. Treating the decoys' chance
matches as independent, the number ``K`` of ``j``'s decoys matched is at most a sum of
independent ``Bernoulli(π_d)``, and the evidence is its exact upper tail ``P(K ≥ k)``
(a Poisson-binomial law, computed over all of ``j``'s decoys, not only those found).

This is a model-based bound (rows drawn like the cohort's, decoys matched independently), not
the fingerprint's distribution-free one; it gets a small share of the 10⁻⁹ (``accuse.WEIGHTS``)
and, with columns as coarse as a few integers, ``q_d`` is large and the decoys weigh nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from strongroom.cohort.model import EID
from strongroom.extracts import linkage
from strongroom.extracts.decoys import DecoySet
from strongroom.extracts.linkage import Linked

SAFETY = 10.0  # q_d is the cohort's matching share (plus one row) times this
LIST_LOG_P = math.log(1e-6)  # decoys are listed only for extracts whose evidence passes this


@dataclass(frozen=True)
class DecoyEvidence:
    """One extract's decoys in a suspect file."""

    extract_id: str
    found: list[str]  # decoy pseudonyms matched on every column present
    decoys: int  # decoys the extract holds
    columns: int  # columns the match was judged on
    chance: float  # Σ π_d: expected chance matches under the null
    log_p: float  # ln P(K ≥ found) under the null

    @property
    def listed(self) -> bool:
        """Strong enough to be shown as found (an innocent's chance of it is ≤ 10⁻⁶)."""
        return bool(self.found) and self.log_p <= LIST_LOG_P


def weigh(linked: Linked, candidates: Sequence[tuple[str, str, int]],
          sets: Mapping[str, DecoySet], master: pl.DataFrame) -> dict[str, DecoyEvidence]:
    """Each extract with a candidate: its strictly matched decoys and the bound on them."""
    unlinked = int(np.count_nonzero(linked.eids < 0))
    by_extract: dict[str, list[tuple[str, int]]] = {}
    for extract_id, decoy, row in candidates:
        by_extract.setdefault(extract_id, []).append((decoy, row))
    cache: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
    out = {}
    for extract_id, hits in by_extract.items():
        decoy_set = sets[extract_id]
        columns = _present(linked, decoy_set)
        if not columns:
            continue
        specs = {c: decoy_set.specs[c] for c in columns}
        if tuple(columns) not in cache:
            cache[tuple(columns)] = linkage.master_columns(master, specs, linked)
        cohort = cache[tuple(columns)]
        decoys = linkage.comparable_values(decoy_set.rows.select([EID, *columns]), specs)
        tolerance = {c: _tolerance(linked, c, specs[c].kind, specs[c].unit) for c in columns}
        pids = [str(p) for p in decoy_set.rows[EID].to_list()]
        found = sorted({decoy for decoy, row in hits
                        if _matches({c: linked.values[c][row] - linked.offsets.get(c, 0.0)
                                     for c in columns},
                                    {c: decoys[c][pids.index(decoy)] for c in columns},
                                    tolerance)})
        n = len(next(iter(cohort.values())))
        shares = np.array([(_count(cohort, {c: decoys[c][i] for c in columns}, tolerance) + 1)
                           / (n + 1) for i in range(len(pids))])
        chances = np.minimum(1.0, SAFETY * max(unlinked, 1) * shares)
        out[extract_id] = DecoyEvidence(extract_id, found, len(pids), len(columns),
                                        float(chances.sum()), log_tail(chances, len(found)))
    return out


def _present(linked: Linked, decoy_set: DecoySet) -> list[str]:
    """Decoy columns the suspect holds with any value (text columns are not compared)."""
    return sorted(c for c in set(linked.columns.values()) & set(decoy_set.specs)
                  if c in linked.values and decoy_set.specs[c].kind != "text"
                  and bool(np.any(~np.isnan(linked.values[c]))))


def _tolerance(linked: Linked, column: str, kind: str, unit: float) -> float:
    if kind == "code":
        return 0.0
    return max(unit, linked.grids.get(column, 0.0)) * (1 + 1e-9)


def _matches(row: Mapping[str, float], decoy: Mapping[str, float],
             tolerance: Mapping[str, float]) -> bool:
    for column, want in decoy.items():
        got = row[column]
        if math.isnan(want) or math.isnan(got):
            if not (math.isnan(want) and math.isnan(got)):
                return False
        elif abs(got - want) > tolerance[column] + 1e-9 * abs(want):
            return False
    return True


def _count(cohort: Mapping[str, np.ndarray], decoy: Mapping[str, float],
           tolerance: Mapping[str, float]) -> int:
    """Cohort rows passing the match test against ``decoy`` (narrowed column by column)."""
    rows: np.ndarray | None = None
    for column, want in decoy.items():
        values = cohort[column] if rows is None else cohort[column][rows]
        if math.isnan(want):
            keep = np.isnan(values)
        else:
            with np.errstate(invalid="ignore"):
                keep = np.abs(values - want) <= tolerance[column] + 1e-9 * abs(want)
        rows = np.flatnonzero(keep) if rows is None else rows[keep]
        if len(rows) == 0:
            return 0
    return 0 if rows is None else len(rows)


def log_tail(chances: np.ndarray, found: int) -> float:
    """``ln P(K ≥ found)`` for ``K`` a sum of independent ``Bernoulli(chances)`` (exact)."""
    if found <= 0:
        return 0.0
    law = np.zeros(len(chances) + 1)  # law[k] = P(K = k), built one decoy at a time
    law[0] = 1.0
    for pi in chances:
        law[1:] = law[1:] * (1 - pi) + law[:-1] * pi
        law[0] *= 1 - pi
    tail = float(np.sum(law[found:]))
    return max(math.log(tail), -700.0) if tail > 0 else -700.0
