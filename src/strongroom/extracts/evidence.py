"""The evidence beside the fingerprint: which participants a suspect holds, its decoys, and
where its bands of quasi-identifiers start.

``gather`` reads them from a suspect already linked to the cohort and hands them to
``accuse.score`` as ``Other`` evidence, which shares the 10⁻⁹ between every kind
(``accuse.WEIGHTS``). Attribution (``service.attribute``) and the benchmark call it alike.
Attribution adds one more kind, the marks read from each column's values with no row linked
(``multiset.gather``, kind "values").

The membership test needs no confident link, only a rule that names a participant per row
without looking at any extract's key (the null law holds for any such rule). Besides the
linkage's links, a row left unlinked counts for the participant it matches *exactly* on every
column present, when exactly one does (``exact_unique``): coarse columns (a few integers)
leave most rows with a near twin that the linkage's margin refuses, but an exact and unique
match is still far more often right than wrong, and a wrong one costs only power. A row that
matches several participants (a class, generalised columns read through their hierarchy)
counts for each of them in proportion (``classes.py``).

The band origins (``band_evidence.py``) are read from the file alone, linked or not, and
enter as a product with the membership p-value under its own exact law (kind "bands").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EID
from strongroom.extracts import (
    accuse,
    arrays,
    band_evidence,
    classes,
    decoy_evidence,
    decoys,
    linkage,
    membership,
)
from strongroom.extracts.linkage import Linked


@dataclass(frozen=True)
class Gathered:
    subsets: dict[str, membership.Evidence]  # extract id -> participants held
    decoys: dict[str, decoy_evidence.DecoyEvidence]  # extract id -> decoys matched, weighed
    decoy_extracts: int  # extracts with decoys: each could be matched by chance
    bands: dict[str, band_evidence.BandEvidence] = field(default_factory=dict)
    band_readings: list[band_evidence.Reading] = field(default_factory=list)

    def other(self) -> dict[str, accuse.Other]:
        none = membership.Evidence(0, 0, 0.0)
        combined = {e: band_evidence.combined_log_p(
                        v, self.subsets.get(e, none).log_p,
                        self.subsets.get(e, none).positions > 0)
                    for e, v in self.bands.items()}
        return {
            "membership": accuse.Other({e: v.log_p for e, v in self.subsets.items()},
                                       sum(v.positions > 0 for v in self.subsets.values())),
            "decoys": accuse.Other({e: v.log_p for e, v in self.decoys.items()},
                                   self.decoy_extracts),
            "bands": accuse.Other(combined, sum(v.considered > 0 for v in self.bands.values())),
        }


Origins = tuple[list[band_evidence.Reading], dict[str, band_evidence.BandEvidence]]


def band_origins(read: list[band_evidence.Reading], recipients: Sequence[accuse.Recipient]
                 ) -> Origins:
    """The bands a suspect shows (``band_evidence.readings``) and each recipient's
    band-origin evidence: a function of the file, the master and the recipients alone (no
    link), so attribution makes it while the rows are linked (:func:`gather`'s
    ``origins``)."""
    projects = Counter(r.project_id for r in recipients if r.project_id)
    return read, band_evidence.evidence(read, {
        r.extract_id: (r.band_key, r.fields, r.banded, projects[r.project_id] > 1)
        for r in recipients})


def gather(suspect: pl.DataFrame, linked: Linked, recipients: Sequence[accuse.Recipient],
           decoy_sets: Mapping[str, decoys.DecoySet], master: pl.DataFrame,
           dictionary: Dictionary, origins: Origins | None = None,
           pool: Executor | None = None) -> Gathered:
    """Membership evidence for every recipient; decoys of any extract among the suspect rows
    not linked to real participants, kept only when they match on every column present.
    ``origins``: :func:`band_origins` of the same suspect, master and recipients, made
    already; ``pool``: the recipients' membership tests on its threads too."""
    held = np.where(linked.eids >= 0, linked.eids, exact_unique(linked, master, dictionary))
    eids, weights = classes.weights(suspect, linked, master, dictionary, held)
    subsets = membership.weighted_evidence(eids, weights, {r.extract_id: (r.key, r.withheld)
                                                           for r in recipients}, pool)
    sets = {e: s for e, s in decoy_sets.items() if s.rows.height}
    candidates = decoys.match_decoys(suspect, sets, linked=linked) if sets else []
    weighed = decoy_evidence.weigh(linked, candidates, sets, master)
    read, bands = (origins if origins is not None else band_origins(
        band_evidence.readings(suspect, master, dictionary), recipients))
    return Gathered(subsets, weighed, len(sets), bands, read)


def exact_unique(linked: Linked, master: pl.DataFrame, dictionary: Dictionary) -> np.ndarray:
    """Per suspect row the linkage left unlinked, the one master participant equal to it on
    every column present (codes, numbers and dates as linkage reads them; missing matches
    missing); −1 if none or several, and for rows already linked."""
    columns = sorted(c for c in set(linked.columns.values()) & set(linked.values)
                     if c in master.columns and bool(np.any(~np.isnan(linked.values[c]))))
    out = np.full(len(linked.eids), -1, dtype=np.int64)
    wanted = np.flatnonzero(linked.eids < 0)  # rows the linkage left: the others are linked
    if not columns or len(wanted) == 0:
        return out
    specs = linkage.column_specs(columns, dictionary)
    values = linkage.master_columns(master, specs, linked)
    # only master rows equal to some wanted row on the most selective column can be equal on
    # every column: the others are left out before the frames are made and joined (a filter
    # that keeps a superset of the join's rows, numbers compared as numbers, so the same
    # answer; the join no longer encodes every participant's row)
    keep = arrays.could_match(values, {c: linked.values[c][wanted] for c in columns})
    cohort = pl.DataFrame({EID: master[EID].cast(pl.Int64).filter(pl.Series(keep)),
                           **{f"c{i}": values[c][keep] for i, c in enumerate(columns)}})
    cohort = cohort.with_columns(pl.col(f"c{i}").fill_nan(None) for i in range(len(columns)))
    keys = [f"c{i}" for i in range(len(columns))]
    rows = pl.DataFrame({"row": wanted,
                         **{f"c{i}": linked.values[c][wanted] for i, c in enumerate(columns)}})
    rows = rows.with_columns(pl.col(k).fill_nan(None) for k in keys)
    # only the participants equal to some row, each combination counted whole
    cohort = cohort.join(rows.select(keys).unique(), on=keys, how="semi", nulls_equal=True)
    unique = (cohort.group_by(keys).agg(pl.col(EID).first(), pl.len().alias("n"))
              .filter(pl.col("n") == 1).drop("n"))
    found = rows.join(unique, on=keys, how="inner", nulls_equal=True)
    out[found["row"].to_numpy()] = found[EID].to_numpy()
    return out

