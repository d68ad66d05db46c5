"""The evidence beside the fingerprint: which participants a suspect holds, and its decoys.

``gather`` reads both from a suspect already linked to the cohort and hands them to
``accuse.score`` as ``Other`` evidence, which shares the 10⁻⁹ between every kind
(``accuse.WEIGHTS``). Attribution (``service.attribute``) and the benchmark call it alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from strongroom.extracts import accuse, decoy_evidence, decoys, membership
from strongroom.extracts.linkage import Linked


@dataclass(frozen=True)
class Gathered:
    subsets: dict[str, membership.Evidence]  # extract id -> participants held
    decoys: dict[str, decoy_evidence.DecoyEvidence]  # extract id -> decoys matched, weighed
    decoy_extracts: int  # extracts with decoys: each could be matched by chance

    def other(self) -> dict[str, accuse.Other]:
        return {
            "membership": accuse.Other({e: v.log_p for e, v in self.subsets.items()},
                                       sum(v.positions > 0 for v in self.subsets.values())),
            "decoys": accuse.Other({e: v.log_p for e, v in self.decoys.items()},
                                   self.decoy_extracts),
        }


def gather(suspect: pl.DataFrame, linked: Linked, recipients: Sequence[accuse.Recipient],
           decoy_sets: Mapping[str, decoys.DecoySet], master: pl.DataFrame) -> Gathered:
    """Membership evidence for every recipient; decoys of any extract among the suspect rows
    not linked to real participants, kept only when they match on every column present."""
    subsets = membership.evidence(linked.eids, {r.extract_id: (r.key, r.withheld)
                                                for r in recipients})
    sets = {e: s for e, s in decoy_sets.items() if s.rows.height}
    candidates = decoys.match_decoys(suspect, sets, linked=linked) if sets else []
    weighed = decoy_evidence.weigh(linked, candidates, sets, master)
    return Gathered(subsets, weighed, len(sets))
