"""The risk gate every record-level extract passes before it is written.

``check`` measures the extract candidate's re-identification risk over its quasi-identifier
columns (the dictionary's ``quasi_identifier`` and ``event_date`` fields). When every class has
at least k records it lets the rows through unchanged. Otherwise it anonymises: the least-loss
generalisation of the quasi-identifier columns meeting k (and l, t when asked) with at most the
suppression limit of records suppressed (``anonymise.py``). Only quasi-identifier columns
change; measurement columns stay exactly as they are, because they carry the extract's
fingerprints. When no generalisation can meet the targets it refuses, with the report's
reasons.

A quasi-identifier that carries fingerprints (``fixed``: a field the custodian allow-listed
for marks, such as a date kept to the day) is never generalised, only suppressed, and the
gate measures the rows as marked. When such a column on its own (or the fixed ones together)
leaves more participants below k than may be suppressed, no generalisation of the others can
help: the refusal names the column and says to take its field off the allow-list for this
extract (it is then generalised like any quasi-identifier and carries no marks).

Decoy participants are added after the check: ``generalise`` gives them the same
generalisation, and ``enforce`` blanks the quasi-identifiers of any row of the finished file
(in practice a decoy) left in a class smaller than k, so that the file as written meets k and
no decoy stands out as the only member of its class. ``summary`` is what the audit log and the
extract's record keep: counts and level names, never values.

**Keyed band origins** (extracts only). ``check(..., origins=...)`` takes a keyed choice per
attribute (a field's columns together): each attribute whose hierarchy has numeric bands
starts them at one of ``ORIGIN_CHOICES`` origins on its unit grid inside the narrowest band
(``hierarchies.origin_grid``: year of birth in 5-year bands from 1941, 1942, 1943 or 1944
plus multiples of 5), every level of the attribute at the same origin so the levels still
nest. The widths, the level names and the label format are unchanged, and so is what the
search weighs (classes and the Loss metric depend on how many values share a band, not where
bands start), so the extract is as useful as one banded from 0. ``banded`` says which
attributes ended up in bands, at which width, for the manifest (the origin is not kept: it is
derived again from the project's band key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import Dictionary, ValueType
from strongroom.errors import Refused
from strongroom.privacy import fields, hierarchies
from strongroom.privacy.anonymise import (
    DEFAULT_SUPPRESSION,
    Solution,
    Targets,
    anonymise,
    generalise,
    suppress,
)
from strongroom.privacy.classes import equivalence_classes
from strongroom.privacy.risk import RiskReport, assess

DEFAULT_K = 5
ORIGIN_CHOICES = 4  # keyed band origins per attribute: a fixed count, so 1/4 is exact


@dataclass(frozen=True)
class GatePolicy:
    """What an extract must meet; the defaults are the custodian's floor."""

    k: int = DEFAULT_K
    suppression_limit: float = DEFAULT_SUPPRESSION
    l: int | None = None  # noqa: E741 — distinct l-diversity of the sensitive columns
    t: float | None = None
    sensitive: tuple[str, ...] = ()

    def targets(self, dictionary: Dictionary, columns: Sequence[str]) -> Targets:
        return Targets(k=self.k, l=self.l, t=self.t, suppression_limit=self.suppression_limit,
                       sensitive=self.sensitive,
                       ordered=frozenset(set(self.sensitive)
                                         - fields.categorical(self.sensitive, dictionary)))

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "suppression_limit": self.suppression_limit, "l": self.l,
                "t": self.t, "sensitive": list(self.sensitive)}


@dataclass(frozen=True)
class BandOrigin:
    """Where one attribute's bands start in this extract (custodian-side only)."""

    attribute: str
    columns: tuple[str, ...]
    field_id: int | None
    unit: float  # the columns' recorded step: origins lie on it
    grid: tuple[float, ...]  # the ORIGIN_CHOICES origins the key chose from
    origin: float


@dataclass
class GateDecision:
    """What the gate found and what it does to the rows."""

    policy: GatePolicy
    quasi_identifiers: list[str]
    id_column: str
    before: RiskReport | None
    after: RiskReport | None = None
    solution: Solution | None = None
    suppressed_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    hierarchies: hierarchies.Hierarchies | None = None
    final: RiskReport | None = None  # the file as written, decoys included
    final_suppressed: int = 0
    fixed: list[str] = field(default_factory=list)  # quasi-identifiers kept as recorded
    origins: dict[str, BandOrigin] = field(default_factory=dict)  # attribute -> its origin

    @property
    def action(self) -> str:
        if not self.quasi_identifiers:
            return "none: no quasi-identifier columns"
        return "anonymised" if self.solution is not None else "none: the targets are met"

    def release(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The participants' rows as released: generalised, and the chosen rows suppressed."""
        if self.solution is None or self.hierarchies is None:
            return frame
        rows = np.isin(frame[self.id_column].to_numpy(), self.suppressed_ids)
        return suppress(self.generalise(frame), self.quasi_identifiers, rows)

    def generalise(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Any rows with the extract's columns (decoys) at the chosen levels."""
        if self.solution is None or self.hierarchies is None:
            return frame
        return generalise(frame, self.hierarchies, self.solution.level_names)

    def enforce(self, released: pl.DataFrame) -> pl.DataFrame:
        """The finished file meeting k: rows left in smaller classes lose their
        quasi-identifiers (padded so that the blanked rows are k or more)."""
        if not self.quasi_identifiers:
            return released
        out, blanked = enforce_k(released, self.quasi_identifiers, self.policy.k)
        self.final_suppressed = int(blanked.sum())
        self.final = assess(out, self.quasi_identifiers, threshold_k=self.policy.k)
        return out

    def banded(self) -> list[dict[str, Any]]:
        """Attributes released in bands with a keyed origin: their field, columns, unit,
        candidate origins and the width and level chosen — not the origin (for the manifest;
        attribution derives it from the project's band key)."""
        if self.solution is None or self.hierarchies is None:
            return []
        out = []
        for attribute, placed in sorted(self.origins.items()):
            hierarchy = self.hierarchies.by_column[placed.columns[0]]
            rule = hierarchy.levels[self.solution.levels.get(attribute, 0)].rule
            if isinstance(rule, hierarchies.Bands):
                out.append({"attribute": attribute, "field": placed.field_id,
                            "columns": list(placed.columns), "unit": placed.unit,
                            "grid": list(placed.grid), "width": rule.width,
                            "level": self.solution.level_names[placed.columns[0]]})
        return out

    def summary(self) -> dict[str, Any]:
        """For the audit log and the extract's record: counts and level names only."""
        out: dict[str, Any] = {"policy": self.policy.to_json(),
                               "quasi_identifiers": list(self.quasi_identifiers),
                               "action": self.action}
        if self.fixed:
            out["kept_for_marks"] = list(self.fixed)
        if self.before is not None:
            out["before"] = self.before.summary()
        if self.solution is not None:
            out["generalisation"] = dict(self.solution.level_names)
            out["suppressed"] = self.solution.suppressed
            out["loss"] = round(self.solution.loss, 6)
            out["search"] = "exact" if self.solution.optimal else "greedy"
        if self.after is not None:
            out["after"] = self.after.summary()
        if self.final is not None:
            out["file"] = {"k": self.final.k, "classes": self.final.classes,
                           "sample_uniques": self.final.sample_uniques,
                           "rows": self.final.rows, "blanked_after_decoys": self.final_suppressed}
        return out


def check(frame: pl.DataFrame, dictionary: Dictionary, columns: Sequence[str],
          policy: GatePolicy | None = None, *, id_column: str = "eid",
          fixed: Sequence[str] = (),
          origins: Callable[[str], int] | None = None) -> GateDecision:
    """Measure the candidate's risk; anonymise its quasi-identifiers if k is not met.

    ``fixed`` columns (fingerprint carriers) are never generalised, only suppressed.
    ``origins``: for extracts, the keyed index (0 … ``ORIGIN_CHOICES`` − 1) of each banded
    attribute's origin; without it every band starts at 0.
    Raises ``Refused`` with the report's reasons when no generalisation can meet the policy.
    """
    policy = policy or GatePolicy()
    qis = fields.quasi_identifiers(columns, dictionary)
    if not qis:
        return GateDecision(policy, [], id_column, None)
    before = assess(frame, qis, policy.sensitive, threshold_k=policy.k)
    kept = [c for c in qis if c in set(fixed)]
    decision = GateDecision(policy, qis, id_column, before, fixed=kept)
    if before.meets and _diverse_enough(before, policy):
        return decision
    keep = {c: hierarchies.Hierarchy(c, (hierarchies.Level("value", hierarchies.Keep()),),
                                     "carries fingerprints") for c in kept}
    tree = hierarchies.build(frame, qis, dictionary, overrides=keep)
    placed: dict[str, BandOrigin] = {}
    if origins is not None:
        tree, placed = _with_origins(tree, dictionary, origins)
    try:
        done = anonymise(frame.select([*qis, *policy.sensitive]), tree,
                         policy.targets(dictionary, columns))
    except Refused as exc:
        raise Refused([*_reasons(before, policy),
                       *_fixed_reasons(frame, kept, dictionary, policy),
                       *exc.reasons]) from None
    decision.hierarchies = tree
    decision.origins = placed
    decision.solution = done.solution
    decision.suppressed_ids = frame[id_column].filter(pl.Series(done.suppressed_rows)).to_numpy()
    decision.after = assess(done.frame, qis, policy.sensitive, threshold_k=policy.k)
    return decision


def _with_origins(tree: hierarchies.Hierarchies, dictionary: Dictionary,
                  choose: Callable[[str], int]
                  ) -> tuple[hierarchies.Hierarchies, dict[str, BandOrigin]]:
    """``tree`` with each banded attribute's bands at its keyed origin (one per attribute)."""
    by_column = dict(tree.by_column)
    placed: dict[str, BandOrigin] = {}
    for attribute in tree.attributes():
        columns = tree.columns_of(attribute)
        widths = hierarchies.band_widths(by_column[columns[0]])
        if not widths:
            continue
        unit = _unit(by_column[columns[0]], columns[0], dictionary)
        grid = hierarchies.origin_grid(widths[0], unit, ORIGIN_CHOICES) if unit else ()
        if len(grid) != ORIGIN_CHOICES:
            continue
        index = choose(attribute)
        if not 0 <= index < ORIGIN_CHOICES:
            raise ValueError(f"a band origin's index is 0–{ORIGIN_CHOICES - 1}, not {index}")
        fld = fields.field_of(columns[0], dictionary)
        placed[attribute] = BandOrigin(attribute, tuple(columns),
                                       fld.field_id if fld is not None else None, unit, grid,
                                       grid[index])
        for column in columns:
            by_column[column] = hierarchies.with_origin(by_column[column], grid[index])
    return hierarchies.Hierarchies(by_column, tree.groups), placed


def _unit(hierarchy: hierarchies.Hierarchy, column: str, dictionary: Dictionary) -> float:
    """The step the column is recorded on (0: unknown, no keyed origin)."""
    if any(isinstance(lv.rule, hierarchies.Bands) and lv.rule.integer
           for lv in hierarchy.levels):
        return 1.0
    fld = fields.field_of(column, dictionary)
    return 10.0 ** -fld.precision if fld is not None and fld.precision is not None else 0.0


def _diverse_enough(report: RiskReport, policy: GatePolicy) -> bool:
    if report.combined is None:
        return True
    ok_l = policy.l is None or report.combined.l_distinct >= policy.l
    ok_t = policy.t is None or report.combined.t_closeness <= policy.t
    return ok_l and ok_t


def _reasons(report: RiskReport, policy: GatePolicy) -> list[str]:
    return [f"the extract's quasi-identifiers ({', '.join(report.quasi_identifiers)}) leave "
            f"{report.records_below_threshold:,} of {report.rows:,} participants in classes "
            f"smaller than k={policy.k} ({report.sample_uniques:,} unique)"]


def _fixed_reasons(frame: pl.DataFrame, kept: Sequence[str], dictionary: Dictionary,
                   policy: GatePolicy) -> list[str]:
    """Which quasi-identifiers kept as recorded (they carry marks) stop k, and what to do.

    With every other quasi-identifier at ``*`` the classes are the kept columns' own, so when
    those leave more participants below k than may be suppressed, nothing else can help."""
    limit = policy.suppression_limit * frame.height
    if not kept or assess(frame, kept, threshold_k=policy.k).records_below_threshold <= limit:
        return []
    alone = {c: assess(frame, [c], threshold_k=policy.k).records_below_threshold for c in kept}
    blamed = [c for c in kept if alone[c] > limit]
    ids = {c: str(fld.field_id) if (fld := fields.field_of(c, dictionary)) else "?"
           for c in kept}
    if not blamed:
        return [f"the columns kept as recorded because their fields are allow-listed to carry "
                f"fingerprints ({', '.join(kept)}) together leave more than {int(limit):,} of "
                f"{frame.height:,} participants (the suppression limit) in classes smaller "
                f"than k={policy.k}: take one of fields {', '.join(ids[c] for c in kept)} off "
                f"the allow-list for this extract"]
    reasons = []
    for column in blamed:
        fld = fields.field_of(column, dictionary)
        what = "to the day" if fld is not None and fld.value_type is ValueType.DATE else (
            "as recorded")
        reasons.append(
            f"{column} is kept {what} because field {ids[column]} is allow-listed to carry "
            f"fingerprints, and on its own it leaves {alone[column]:,} of {frame.height:,} "
            f"participants in classes smaller than k={policy.k} (at most {int(limit):,} may "
            f"be suppressed), whatever the other quasi-identifiers are generalised to: take "
            f"field {ids[column]} off the allow-list for this extract (it is then generalised "
            f"like any quasi-identifier and carries no marks)")
    return reasons


def enforce_k(frame: pl.DataFrame, columns: Sequence[str], k: int
              ) -> tuple[pl.DataFrame, np.ndarray]:
    """Blank ``columns`` in rows whose class is smaller than k; if the blank rows (with any
    blank already) are then fewer than k, blank the smallest other classes too."""
    classes = equivalence_classes(frame, columns)
    small = classes.row_sizes() < k
    if not small.any():
        return frame, small
    blank = frame.select(pl.all_horizontal([pl.col(c).is_null() for c in columns])
                         ).to_series().to_numpy()
    short = k - int((small | blank).sum())
    if short > 0:
        big = np.flatnonzero(classes.sizes >= k)
        for cls in big[np.argsort(classes.sizes[big], kind="stable")]:
            small |= classes.ids == cls
            short -= int(classes.sizes[cls])
            if short <= 0:
                break
    return suppress(frame, columns, small), small
