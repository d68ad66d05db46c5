"""The re-identification risk report for any table: what an attacker holding the
quasi-identifiers could learn, under an explicit sampling frame.

``assess(frame, quasi_identifiers, sensitive, sampling=...)`` computes, with vectorised
group-bys only:

- k-anonymity, the distribution of equivalence-class sizes, sample uniques, records in classes
  smaller than a threshold k;
- per sensitive attribute: distinct, entropy and recursive (c, l)-diversity and t-closeness
  (``sensitive.py``), and the combined figures over all of them as pycanon combines them;
- prosecutor risk (the attacker knows the person is in the table): 1/f for a class of size f;
- journalist risk (the attacker does not know): E[1/F | f] over the sampling frame, and
  marketer risk (the share re-identified by matching everyone);
- population uniques by Pitman, Zayatz and SNB and Dankar's choice (``estimators.py``).

The sampling frame is stated, never assumed: ``SamplingFrame.cohort(n)`` says the table is the
whole population an attacker could look in (journalist = prosecutor risk, population uniques
are the sample uniques); ``SamplingFrame.population(n, N)`` or ``.fraction(n, π)`` says it was
drawn from a larger population. No participant value ever enters the report, only counts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from strongroom.errors import Invalid
from strongroom.privacy import estimators
from strongroom.privacy.classes import Classes, Missing, check_columns, equivalence_classes
from strongroom.privacy.sensitive import PerClass, per_class

DEFAULT_K = 5  # classes smaller than this are reported as at risk (1/k = 0.2)
SIZE_BANDS = ((1, 1), (2, 2), (3, 4), (5, 9), (10, 19), (20, 49), (50, 99), (100, None))
FLOOR_SLACK = 1e-9  # exp(ln 2) may round to 1.9999999999999998; its floor is still 2


@dataclass(frozen=True)
class SamplingFrame:
    """Who an attacker could be looking for: the table's own people, or a population."""

    kind: str  # "cohort" | "population"
    sample: int  # n, rows in the table
    population: int  # N

    @classmethod
    def cohort(cls, rows: int) -> SamplingFrame:
        return cls("cohort", rows, rows)

    @classmethod
    def of_population(cls, rows: int, population: int) -> SamplingFrame:
        if population < rows:
            raise Invalid(f"the population ({population:,}) cannot be smaller than the table "
                          f"({rows:,} rows); give the size of the population it was drawn from")
        return cls("population", rows, int(population))

    @classmethod
    def of_fraction(cls, rows: int, fraction: float) -> SamplingFrame:
        if not 0.0 < fraction <= 1.0:
            raise Invalid(f"the sampling fraction must be in (0, 1], not {fraction}; it is "
                          f"the share of the population that is in the table")
        return cls("population", rows, max(rows, round(rows / fraction)))

    @property
    def fraction(self) -> float:
        return self.sample / self.population if self.population else 1.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "sample": self.sample, "population": self.population,
                "sampling_fraction": self.fraction}


@dataclass(frozen=True)
class Diversity:
    """One sensitive attribute (or all of them combined)."""

    attribute: str
    distance: str  # "ordered" | "equal" | "max over attributes"
    values: int
    l_distinct: int
    l_entropy: float  # exp(min H)
    recursive_c: int | None  # for l = l_distinct; None when l < 2 (no c exists)
    t_closeness: float
    classes_one_value: int  # classes holding a single value: anyone in them is disclosed

    @property
    def l_entropy_floor(self) -> int:
        """pycanon's entropy l: the integer part of exp(min H)."""
        return math.floor(self.l_entropy + FLOOR_SLACK)

    def to_json(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "distance": self.distance,
                "values": self.values, "l_distinct": self.l_distinct,
                "l_entropy": self.l_entropy, "l_entropy_floor": self.l_entropy_floor,
                "recursive_c_l": {"c": self.recursive_c, "l": self.l_distinct},
                "t_closeness": self.t_closeness,
                "classes_with_one_value": self.classes_one_value}


@dataclass(frozen=True)
class Risk:
    """One attacker model's risk: the highest, the average, and how many records exceed."""

    highest: float
    average: float
    records_at_highest: int
    records_above_threshold: int

    def to_json(self) -> dict[str, Any]:
        return {"highest": self.highest, "average": self.average,
                "records_at_highest": self.records_at_highest,
                "records_above_threshold": self.records_above_threshold}


@dataclass
class RiskReport:
    """Every figure; ``to_json`` for machines, ``text`` for people. Counts only, no values."""

    rows: int
    quasi_identifiers: list[str]
    sensitive: list[str]
    missing: str
    rows_with_missing: int
    rows_left_out: int
    classes: int
    k: int
    threshold_k: int
    records_below_threshold: int
    sample_uniques: int
    size_histogram: list[tuple[int, int]]  # (class size, classes of that size)
    frame: SamplingFrame
    prosecutor: Risk
    journalist: Risk
    marketer: float
    population_uniques: dict[str, Any]
    diversity: list[Diversity] = field(default_factory=list)
    combined: Diversity | None = None
    seconds: float = 0.0

    @property
    def meets(self) -> bool:
        """Whether every class has at least ``threshold_k`` records."""
        return self.k >= self.threshold_k

    def bands(self) -> list[dict[str, Any]]:
        """Class sizes in bands: classes and records in each."""
        sizes = np.array([s for s, _ in self.size_histogram], dtype=np.int64)
        counts = np.array([c for _, c in self.size_histogram], dtype=np.int64)
        out = []
        for low, high in SIZE_BANDS:
            inside = (sizes >= low) & (sizes <= (high if high is not None else sizes.max(
                initial=0)))
            label = f"{low}" if high == low else (f"{low}+" if high is None else f"{low}–{high}")
            out.append({"sizes": label, "classes": int(counts[inside].sum()),
                        "records": int((sizes[inside] * counts[inside]).sum())})
        return out

    def summary(self) -> dict[str, Any]:
        """The figures an audit event or a manifest records."""
        return {"rows": self.rows, "quasi_identifiers": list(self.quasi_identifiers),
                "k": self.k, "classes": self.classes, "sample_uniques": self.sample_uniques,
                "records_below_k": self.records_below_threshold, "threshold_k": self.threshold_k,
                "prosecutor_highest": self.prosecutor.highest,
                "prosecutor_average": self.prosecutor.average,
                "rows_with_missing": self.rows_with_missing}

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "quasi_identifiers": self.quasi_identifiers,
            "sensitive": self.sensitive, "missing": self.missing,
            "rows_with_missing_quasi_identifier": self.rows_with_missing,
            "rows_left_out": self.rows_left_out,
            "k_anonymity": self.k, "classes": self.classes,
            "threshold_k": self.threshold_k, "meets_threshold": self.meets,
            "records_below_threshold": self.records_below_threshold,
            "sample_uniques": self.sample_uniques,
            "class_sizes": self.bands(),
            "class_size_histogram": [{"size": s, "classes": c} for s, c in self.size_histogram],
            "sampling_frame": self.frame.to_json(),
            "prosecutor": self.prosecutor.to_json(), "journalist": self.journalist.to_json(),
            "marketer": self.marketer, "population_uniques": self.population_uniques,
            "diversity": [d.to_json() for d in self.diversity],
            "combined": self.combined.to_json() if self.combined else None,
            "seconds": round(self.seconds, 4),
        }

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def text(self) -> str:
        return render_text(self)


def assess(frame: pl.DataFrame, quasi_identifiers: Sequence[str],
           sensitive: Sequence[str] = (), *, sampling: SamplingFrame | None = None,
           ordered: Collection[str] | None = None, threshold_k: int = DEFAULT_K,
           missing: Missing = "value") -> RiskReport:
    """The risk report of ``frame`` with these quasi-identifiers and sensitive attributes.

    ``ordered`` names the sensitive attributes measured with the ordered distance; by default
    numeric and date columns are, others use the equal distance. ``sampling`` defaults to the
    cohort frame (the table is the population).
    """
    started = time.perf_counter()
    if not quasi_identifiers:
        raise Invalid("name at least one quasi-identifier column")
    if frame.height == 0:
        raise Invalid("the table has no rows; there is no risk to measure")
    if threshold_k < 1:
        raise Invalid(f"the threshold k must be at least 1, not {threshold_k}")
    check_columns(frame, list(sensitive), "sensitive")
    overlap = sorted(set(quasi_identifiers) & set(sensitive))
    if overlap:
        raise Invalid(f"column(s) {', '.join(overlap)} are named both quasi-identifier and "
                      f"sensitive; a column is one or the other")
    sampling = sampling or SamplingFrame.cohort(frame.height)
    if sampling.sample != frame.height:
        raise Invalid(f"the sampling frame is for {sampling.sample:,} rows but the table has "
                      f"{frame.height:,}")
    classes = equivalence_classes(frame, quasi_identifiers, missing)
    with_missing = int(frame.select(pl.any_horizontal(
        [_missing(c, frame.schema[c]) for c in quasi_identifiers])).to_series().sum())
    report = _anonymity(classes, frame.height, sampling, threshold_k)
    diversity = [_diversity(per_class(classes, frame[s], ordered=_is_ordered(frame[s], ordered)))
                 for s in sensitive]
    combined = _combine(classes, frame, list(sensitive), ordered) if len(sensitive) > 1 else (
        diversity[0] if diversity else None)
    return RiskReport(
        rows=frame.height, quasi_identifiers=list(quasi_identifiers), sensitive=list(sensitive),
        missing=missing, rows_with_missing=with_missing, rows_left_out=classes.left_out,
        diversity=diversity, combined=combined, seconds=time.perf_counter() - started,
        **report)


def _missing(column: str, dtype: pl.DataType) -> pl.Expr:
    expr = pl.col(column).is_null()
    return expr | pl.col(column).is_nan() if dtype.is_float() else expr


def _is_ordered(series: pl.Series, ordered: Collection[str] | None) -> bool:
    if ordered is not None:
        return series.name in ordered
    return series.dtype.is_numeric() or series.dtype.is_temporal() or series.dtype == pl.Boolean


def _anonymity(classes: Classes, rows: int, sampling: SamplingFrame,
               threshold_k: int) -> dict[str, Any]:
    sizes = classes.sizes
    hist = estimators.Histogram.of(sizes)
    inside = classes.rows
    below = int(sizes[sizes < threshold_k].sum())
    threshold = 1.0 / threshold_k
    k = classes.k
    prosecutor = Risk(
        highest=1.0 / k if k else 0.0,
        average=classes.count / inside if inside else 0.0,
        records_at_highest=int(sizes[sizes == k].sum()) if k else 0,
        records_above_threshold=int(sizes[1.0 / np.maximum(sizes, 1) > threshold].sum()))
    if sampling.kind == "cohort":
        journalist = prosecutor
        marketer = prosecutor.average
        uniques: dict[str, Any] = {
            "note": "the table is the population (cohort frame): the population uniques are "
                    "the sample uniques", "uniques": hist.count(1),
            "proportion": hist.count(1) / rows}
    else:
        expected = estimators.inverse_population_size(hist.sizes, sampling.fraction)
        per_record = hist.sizes * hist.classes
        highest = float(expected[0]) if expected.size else 0.0
        journalist = Risk(
            highest=highest,
            average=float((per_record * expected).sum() / inside) if inside else 0.0,
            records_at_highest=int(per_record[0]) if expected.size else 0,
            records_above_threshold=int(per_record[expected > threshold].sum()))
        marketer = journalist.average
        uniques = _uniqueness(hist, sampling)
    return {"classes": classes.count, "k": k, "threshold_k": threshold_k,
            "records_below_threshold": below, "sample_uniques": hist.count(1),
            "size_histogram": [(int(s), int(c)) for s, c in zip(hist.sizes, hist.classes,
                                                                 strict=True)],
            "frame": sampling, "prosecutor": prosecutor, "journalist": journalist,
            "marketer": marketer, "population_uniques": uniques}


def _uniqueness(hist: estimators.Histogram, sampling: SamplingFrame) -> dict[str, Any]:
    if hist.rows == 0:
        return {"note": "no rows are in any class", "uniques": None, "proportion": None}
    found = estimators.population_uniqueness(hist, sampling.population)
    chosen = found.chosen
    return {
        "note": (f"Dankar et al.'s rule picks {chosen}" if chosen else
                 "no model gives an estimate (see each model's note)"),
        "model": chosen, "uniques": found.uniques,
        "proportion": None if found.uniques is None else found.uniques / sampling.population,
        "models": {name: e.to_json(sampling.population) for name, e in found.estimates.items()},
    }


def _diversity(stats: PerClass) -> Diversity:
    l_distinct = int(stats.distinct.min()) if stats.distinct.size else 0
    c = int(stats.recursive_c(l_distinct).max()) if l_distinct >= 2 else None
    return Diversity(
        attribute=stats.column, distance="ordered" if stats.ordered else "equal",
        values=stats.values, l_distinct=l_distinct,
        l_entropy=float(np.exp(stats.entropy.min())) if stats.entropy.size else 0.0,
        recursive_c=c, t_closeness=float(stats.emd.max()) if stats.emd.size else 0.0,
        classes_one_value=int((stats.distinct < 2).sum()))


def _combine(classes: Classes, frame: pl.DataFrame, sensitive: list[str],
             ordered: Collection[str] | None) -> Diversity:
    """All sensitive attributes at once, as pycanon's ``gen=True`` combines them."""
    stats = [per_class(classes, frame[s], ordered=_is_ordered(frame[s], ordered))
             for s in sensitive]
    distinct = np.minimum.reduce([s.distinct for s in stats])
    l_distinct = int(distinct.min()) if distinct.size else 0
    entropy = np.minimum.reduce([s.entropy for s in stats])
    c = (int(max(s.recursive_c(l_distinct).max() for s in stats)) if l_distinct >= 2
         else None)
    return Diversity(
        attribute=", ".join(sensitive), distance="max over attributes",
        values=max(s.values for s in stats), l_distinct=l_distinct,
        l_entropy=float(np.exp(entropy.min())) if entropy.size else 0.0, recursive_c=c,
        t_closeness=max(float(s.emd.max()) for s in stats),
        classes_one_value=int((distinct < 2).sum()))


# -- the readable report ----------------------------------------------------------------------

def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "—"


def render_text(r: RiskReport) -> str:
    """The report for people: plain text, counts and shares only."""
    lines = [
        "Re-identification risk",
        "",
        f"rows {r.rows:,}; quasi-identifiers: {', '.join(r.quasi_identifiers)}",
        f"missing values are {'a value of their own' if r.missing == 'value' else 'left out'}"
        f" ({r.rows_with_missing:,} rows have a missing quasi-identifier"
        + (f"; {r.rows_left_out:,} rows left out" if r.rows_left_out else "") + ")",
        f"sampling frame: {_frame_text(r.frame)}",
        "",
        f"k-anonymity: k = {r.k:,} ({r.classes:,} classes)",
        f"sample uniques: {r.sample_uniques:,} ({_pct(r.sample_uniques, r.rows)} of rows)",
        f"records in classes smaller than {r.threshold_k}: {r.records_below_threshold:,} "
        f"({_pct(r.records_below_threshold, r.rows)})",
        "",
        "class sizes     classes      records",
    ]
    lines += [f"  {b['sizes']:<10} {b['classes']:>10,} {b['records']:>12,}" for b in r.bands()]
    threshold = 1 / r.threshold_k
    lines += [
        "",
        f"risk (threshold {threshold:.2f}):   highest   average   records above threshold",
        f"  prosecutor          {r.prosecutor.highest:8.4f}  {r.prosecutor.average:8.4f}   "
        f"{r.prosecutor.records_above_threshold:,}",
        f"  journalist          {r.journalist.highest:8.4f}  {r.journalist.average:8.4f}   "
        f"{r.journalist.records_above_threshold:,}",
        f"  marketer                      {r.marketer:8.4f}",
        "",
        "population uniques: " + _uniques_text(r.population_uniques),
    ]
    for name, model in r.population_uniques.get("models", {}).items():
        value = ("no estimate — " + model["note"] if model["uniques"] is None
                 else f"{model['uniques']:,.0f} ({100 * model['proportion']:.4f}% of the "
                      f"population)")
        lines.append(f"  {name:<8} {value}")
    if r.diversity:
        lines += ["", "sensitive attributes:   l (distinct)  l (entropy)  (c, l) recursive  "
                      "t-closeness"]
        for d in [*r.diversity, *([r.combined] if len(r.diversity) > 1 and r.combined else [])]:
            c = f"({d.recursive_c}, {d.l_distinct})" if d.recursive_c is not None else "none (l<2)"
            lines.append(f"  {d.attribute[:22]:<22} {d.l_distinct:>12,} {d.l_entropy:>12.3f}  "
                         f"{c:>16}  {d.t_closeness:.4f} ({d.distance})")
    lines += ["", f"computed in {r.seconds:.3f} s"]
    return "\n".join(lines)


def _frame_text(frame: SamplingFrame) -> str:
    if frame.kind == "cohort":
        return "the table is the whole population (cohort)"
    return (f"a sample of {frame.sample:,} from a population of {frame.population:,} "
            f"(sampling fraction {frame.fraction:.4g})")


def _uniques_text(uniques: dict[str, Any]) -> str:
    if uniques.get("uniques") is None:
        return str(uniques.get("note", "no estimate"))
    value = uniques["uniques"]
    return f"{value:,.0f} ({100 * uniques['proportion']:.4f}%) — {uniques['note']}"
