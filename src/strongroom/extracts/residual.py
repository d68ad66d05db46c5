"""The rows a named recipient's copy cannot have held: what a union of copies leaves.

Colluders who pool their copies and keep one row per participant (the *union*) wipe out the
membership evidence: every participant withheld from one colluder is in the file, from
another's copy. When each row is kept from a colluder chosen at random, every colluder's
marks are in a third of the rows and the fingerprints name each of them. But a leaker who
concatenates the copies and drops duplicates keeps the *first* copy's row wherever it has
one; the second copy then supplies only the rows of the participants withheld from the
first (its 2%), and the fingerprints, summed over every row, see the second's marks diluted
fifty-fold.

Those rows are exactly the ones the first copy cannot have held. So once recipients are
named (``accuse.accused``), the linked rows whose participant is withheld from *every* named
recipient (``membership.withheld`` under their keys) are read again, alone, and every other
recipient is scored on them with the fingerprint's two scores (kind ``residual``; its
p-value is the smaller of the two scores' bounds, doubled).

**The bound.** For a recipient ``j`` not named in the first pass, the named set is a
function of the file and of the *other* recipients' keys (each is named on its own evidence;
band keys are per project, but ``j``'s symbol key is independent of them), so the residual
rows are chosen without looking at ``j``'s key, and under the null hypothesis ``j``'s symbols
on them are independent Bernoulli(p) draws: the fingerprint's bound holds unchanged. A
recipient named in the first pass is not scored again. The kind takes its own share of the
10⁻⁹ (``accuse.WEIGHTS``, 0.1 per recipient, counted whether or not it runs), so the
system-wide bound over every (recipient, kind) is still 10⁻⁹.

**What it leaves.** One pass: ``c`` colluders concatenated in order and deduplicated leave
the second's marks in about ``r·n`` rows (``r`` the withheld share, 2%) and name it from
about 1,000 rows of the file up (2,000 rows: ln P about −60); the third's rows are those
withheld from both others (``r²·n``, one row in 2,500), which carry too little to name it —
only its decoys, which no deduplication can merge, remain of its copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from strongroom.extracts import accuse, membership
from strongroom.extracts.carriers import Carrier

KIND = "residual"


@dataclass(frozen=True)
class Residual:
    """The second pass: which recipients' copies bounded the rows, how many rows were read."""

    named: tuple[str, ...]  # the recipients named in the first pass, whose withheld sets used
    rows: int  # linked rows whose participant is withheld from every one of them
    positions: int  # marked cells read on those rows
    log_p: dict[str, float]  # extract id -> ln p-value (the two scores' best, doubled)

    def other(self, recipients: int) -> accuse.Other:
        return accuse.Other(self.log_p, recipients)


def rows(eids: np.ndarray, named: Sequence[accuse.Recipient]) -> np.ndarray:
    """Linked rows (``eids`` ≥ 0) whose participant is withheld from every recipient in
    ``named`` (none when no named recipient withheld anyone)."""
    eids = np.asarray(eids, dtype=np.int64)
    named = [r for r in named if r.withheld > 0]
    out = eids >= 0
    if not named:
        return np.zeros(len(eids), dtype=np.bool_)
    for recipient in named:
        where = np.flatnonzero(out)
        out[where] = membership.withheld(recipient.key, eids[where], recipient.withheld)
    return out


def gather(eids: np.ndarray, suspect: dict[str, np.ndarray], master: pl.DataFrame,
           carriers: Sequence[Carrier], recipients: Sequence[accuse.Recipient],
           named: Sequence[str], bias_key: bytes, seed: int = 0,
           cap: int = accuse.MAX_POSITIONS) -> Residual:
    """Score every recipient not in ``named`` on the rows the named ones cannot have held."""
    by_id = {r.extract_id: r for r in recipients}
    first = [by_id[e] for e in named if e in by_id]
    keep = rows(eids, first)
    if not keep.any():
        return Residual(tuple(named), 0, 0, {})
    masked = np.where(keep, np.asarray(eids, dtype=np.int64), -1)
    others = [r for r in recipients if r.extract_id not in set(named)]
    marks, scores = accuse.judge(masked, suspect, master, carriers, others, bias_key,
                                 seed=seed, cap=cap)
    log_p = {s.extract_id: min(0.0, s.log_p + math.log(2)) for s in scores}
    return Residual(tuple(named), int(keep.sum()), len(marks), log_p)


def amend(scores: Sequence[accuse.Score], log_p: Mapping[str, float]) -> list[accuse.Score]:
    """``scores`` with the residual kind's p-values in place of the empty ones they were
    first given (their union already counted the kind), best first."""
    return accuse.amend(scores, KIND, log_p)
