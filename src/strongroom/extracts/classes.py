"""Which participants a suspect's rows could be, when no row can be told apart from its class.

A copy of only codes, categories and generalised quasi-identifiers (a year of birth in 10-year
bands, a date as its quarter, a centre as its nation) links almost no row to one participant:
the risk gate made every combination of its quasi-identifiers common, and the linkage's margin
refuses the rest. Each row still matches a *class*: the participants equal to it on every
column present, generalised columns compared through the hierarchy level the copy shows.

``weights`` turns the rows into a weight per participant: 1 for a row linked to them (by the
linkage or an exact, unique match), and ``1/c`` for each member of a row's class of ``c``
(classes above ``MAX_CLASS`` are left out: they carry almost nothing and would cost every
recipient's key a pass over them). The weights are the expected number of the copy's rows
that are each participant, if a row is equally likely to be any member of its class.

The membership test (``membership.weighted_evidence``) needs nothing more from them: the
weights are worked out from the suspect and the cohort alone, without looking at any
extract's key, so under the null hypothesis (the copy holds no row of extract ``j``) whether
each participant is withheld from ``j`` is still an independent Bernoulli(r), whatever rule
made the weights. A wrong class costs power, never soundness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EID, parse_column_name
from strongroom.extracts import arrays, band_evidence, linkage
from strongroom.extracts.linkage import Linked
from strongroom.privacy import fields as privacy_fields
from strongroom.privacy import hierarchies

MAX_CLASS = 64  # a row matching more participants than this adds no weight
# share of a suspect column's values that must be labels of the level: rows whose value is
# not a label match no class (they weigh nothing), so this only decides that the column is
# read at all; at 98%, 2% of rows with junk in one column removed it from the reading
MATCH_SHARE = 0.9
MIN_LABELS = 2  # a column with one value (or none) says nothing about anyone


@dataclass(frozen=True)
class Generalised:
    """A suspect column read as one master quasi-identifier at one level of its hierarchy."""

    suspect: str
    master: str
    level: str  # the level's name ("10-year band", "quarter", …)
    labels: pl.Series  # the master column at that level, one label per master row


def generalised_columns(suspect: pl.DataFrame, master: pl.DataFrame, dictionary: Dictionary,
                        taken: Mapping[str, str]) -> list[Generalised]:
    """The suspect's unlinked columns that are a master quasi-identifier at some level.

    ``taken``: suspect column → master column already linked (neither side is used again).
    Each suspect column takes the finest level whose labels hold nearly all its values."""
    free_master = [c for c in master.columns if c != EID and c not in set(taken.values())
                   and _is_quasi_identifier(c, dictionary)]
    found: list[Generalised] = []
    used: set[str] = set()
    for name in suspect.columns:
        if name in taken:
            continue
        values = suspect[name].cast(pl.String, strict=False).drop_nulls()
        distinct = values.unique()
        if distinct.len() < MIN_LABELS:
            continue
        best: Generalised | None = None
        reading = band_evidence.read_labels(name, values)  # bands may start at a keyed origin
        origin = reading.residue if reading is not None and reading.residue is not None else 0.0
        for column in free_master:
            if column in used:
                continue
            for level, labels in _levels(column, master, dictionary, origin):
                known = set(labels.drop_nulls().unique().to_list())
                if len(known) < MIN_LABELS:
                    continue
                share = values.is_in(list(known)).sum() / values.len()
                if share >= MATCH_SHARE and (best is None or len(known) > best.labels.n_unique()):
                    best = Generalised(name, column, level, labels)
        if best is not None:
            used.add(best.master)
            found.append(best)
    return found


def _is_quasi_identifier(column: str, dictionary: Dictionary) -> bool:
    try:
        fld = dictionary.field(parse_column_name(column, dictionary).field_id)
    except (KeyError, ValueError):
        return False
    return fld.role in privacy_fields.QUASI_IDENTIFYING_ROLES


def _levels(column: str, master: pl.DataFrame, dictionary: Dictionary, origin: float = 0.0
            ) -> list[tuple[str, pl.Series]]:
    """Every level of the column's hierarchy but the top (*), as labels of the master rows;
    bands from ``origin`` (read from the suspect's own labels, never from a key)."""
    series = master[column]
    fld = dictionary.field(parse_column_name(column, dictionary).field_id)
    hierarchy = hierarchies.for_field(column, fld, dictionary, series)
    if origin:
        hierarchy = hierarchies.with_origin(hierarchy, origin)
    out = []
    for index, level in enumerate(hierarchy.levels[:-1]):
        out.append((level.name, hierarchy.apply(series, index).cast(pl.String, strict=False)))
    return out


def weights(suspect: pl.DataFrame, linked: Linked, master: pl.DataFrame,
            dictionary: Dictionary, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each participant's expected number of rows in the suspect: ``(eids, weights)``.

    ``held``: per suspect row, the participant it is linked to (−1 if none). Linked rows
    weigh 1 for their participant; every other row ``1/c`` for each member of its class."""
    eids = [held[held >= 0]]
    weight = [np.ones(int(np.count_nonzero(held >= 0)))]
    rest = np.flatnonzero(held < 0)
    generalised = generalised_columns(suspect, master, dictionary, linked.columns)
    exact = sorted(c for c in set(linked.columns.values()) & set(linked.values)
                   if c in master.columns and bool(np.any(~np.isnan(linked.values[c]))))
    if len(rest) and (exact or generalised):
        members, shares = _classes(rest, suspect, linked, master, dictionary, exact,
                                   generalised)
        eids.append(members)
        weight.append(shares)
    all_eids = np.concatenate(eids).astype(np.int64)
    all_weights = np.concatenate(weight)
    if len(all_eids) == 0:
        return all_eids, all_weights
    order = np.argsort(all_eids)
    ordered = all_eids[order]
    if len(ordered) < 2 or bool(np.all(ordered[1:] != ordered[:-1])):
        # each participant once (every row linked, or classes beside no link): its own
        # weight is its sum, and sorted by eid is the frame's order below
        return ordered, all_weights[order]
    frame = (pl.DataFrame({EID: all_eids, "w": all_weights}).group_by(EID)
             .agg(pl.col("w").sum()).sort(EID))
    return frame[EID].to_numpy(), frame["w"].to_numpy()


def _classes(rows: np.ndarray, suspect: pl.DataFrame, linked: Linked, master: pl.DataFrame,
             dictionary: Dictionary, exact: Sequence[str], generalised: Sequence[Generalised]
             ) -> tuple[np.ndarray, np.ndarray]:
    """The members of ``rows``' classes, each weighing (rows of its class) / (class size)."""
    keys = [f"k{i}" for i in range(len(exact) + len(generalised))]
    master_values = (linkage.master_columns(master, linkage.column_specs(exact, dictionary),
                                            linked)
                     if exact else {})
    # only master rows that can fall in some row's class on an exact column are joined (the
    # same classes, each still counted whole: ``arrays.could_match``)
    keep = (pl.Series(arrays.could_match(master_values,
                                         {c: linked.values[c][rows] for c in exact}))
            if exact else None)
    cohort = pl.DataFrame({
        EID: master[EID].cast(pl.Int64),
        **{keys[i]: master_values[c] for i, c in enumerate(exact)},
        **{keys[len(exact) + i]: g.labels for i, g in enumerate(generalised)}}
    ) if keep is None else pl.DataFrame({
        EID: master[EID].cast(pl.Int64).filter(keep),
        **{keys[i]: master_values[c][keep.to_numpy()] for i, c in enumerate(exact)},
        **{keys[len(exact) + i]: g.labels.filter(keep) for i, g in enumerate(generalised)}})
    cohort = cohort.with_columns(pl.col(k).fill_nan(None) for k in keys[:len(exact)])
    wanted = pl.DataFrame({
        "row": rows,
        **{keys[i]: linked.values[c][rows] for i, c in enumerate(exact)},
        **{keys[len(exact) + i]: suspect[g.suspect].cast(pl.String, strict=False)
           .gather(rows) for i, g in enumerate(generalised)}})
    wanted = wanted.with_columns(pl.col(k).fill_nan(None) for k in keys[:len(exact)])
    # only the classes some row falls in, each counted whole (every member of it is kept)
    cohort = cohort.join(wanted.select(keys).unique(), on=keys, how="semi", nulls_equal=True)
    sizes = cohort.group_by(keys).agg(pl.len().alias("c")).filter(pl.col("c") <= MAX_CLASS)
    counted = (wanted.group_by(keys).agg(pl.len().alias("m"))
               .join(sizes, on=keys, how="inner", nulls_equal=True))
    members = cohort.join(counted, on=keys, how="inner", nulls_equal=True)
    return (members[EID].to_numpy(),
            (members["m"].cast(pl.Float64) / members["c"].cast(pl.Float64)).to_numpy())
