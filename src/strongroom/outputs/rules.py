"""The disclosure rules in force: loaded from versioned YAML, checked strictly, only tightened.

:func:`load_rules` reads ``rules.yaml`` (shipped next to this module) or a custodian's file and
refuses anything it does not understand: an unknown key, a missing setting, a wrong type or an
out-of-range value is :class:`~strongroom.errors.Invalid` with every reason. :func:`tighten`
applies a project's overrides, which may only make the rules stricter; a loosening names the
setting. ``version_id`` binds a check report to the exact bytes (and overrides) applied.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from strongroom.enclave.results import AnalysisKind, CellKind
from strongroom.errors import Invalid
from strongroom.outputs.verdicts import SEVERITY, Verdict

SHIPPED = Path(__file__).with_name("rules.yaml")
SUPPORTED_VERSIONS = frozenset({1})

_ANY = frozenset({Verdict.SUPPRESS, Verdict.REVIEW, Verdict.BLOCK})
_NOT_HIDDEN = frozenset({Verdict.REVIEW, Verdict.BLOCK})
_ONLY_BLOCK = frozenset({Verdict.BLOCK})

Stricter = Literal["higher", "lower", "severer"]


@dataclass(frozen=True)
class Setting:
    """One leaf of the YAML: where it lives, its field in :class:`Rules`, what is valid."""

    field: str
    kind: Literal["int", "number", "verdict"]
    stricter: Stricter
    low: float = 0.0  # valid range, inclusive
    high: float = float("inf")
    verdicts: frozenset[Verdict] = _ANY


# section -> key -> setting. Every setting must be present in a rules file.
SCHEMA: dict[str, dict[str, Setting]] = {
    "threshold": {
        "min_participants": Setting("threshold", "int", "higher", low=1),
        "few_values": Setting("few_values", "int", "higher", low=2),
        "verdict": Setting("threshold_verdict", "verdict", "severer"),
    },
    "dominance_p": {
        "p": Setting("dominance_p", "number", "higher", low=0, high=100),
        "verdict": Setting("dominance_p_verdict", "verdict", "severer"),
    },
    "dominance_nk": {
        "n": Setting("dominance_n", "int", "higher", low=1),
        "k": Setting("dominance_k", "number", "lower", low=1, high=99.999),
        "verdict": Setting("dominance_nk_verdict", "verdict", "severer"),
    },
    "extremes": {"verdict": Setting("extremes_verdict", "verdict", "severer",
                                    verdicts=_NOT_HIDDEN)},
    "identical_values": {
        "min_distinct": Setting("identical_min_distinct", "int", "higher", low=2),
        "verdict": Setting("identical_verdict", "verdict", "severer"),
    },
    "quantiles": {
        "min_each_side": Setting("quantile_min_each_side", "int", "higher", low=1),
        "verdict": Setting("quantile_verdict", "verdict", "severer"),
    },
    "regression": {
        "min_residual_df": Setting("regression_min_residual_df", "int", "higher", low=1),
        "min_level_participants": Setting("regression_min_level", "int", "higher", low=1),
        "max_leverage": Setting("regression_max_leverage", "number", "lower", low=0, high=1),
        "verdict": Setting("regression_verdict", "verdict", "severer", verdicts=_NOT_HIDDEN),
        "max_r_squared": Setting("regression_max_r_squared", "number", "lower", low=0, high=1),
        "near_perfect_verdict": Setting("regression_near_perfect_verdict", "verdict",
                                        "severer", verdicts=_NOT_HIDDEN),
    },
    "kaplan_meier": {
        "min_at_risk": Setting("km_min_at_risk", "int", "higher", low=1),
        "min_events": Setting("km_min_events", "int", "higher", low=1),
        "min_censored": Setting("km_min_censored", "int", "higher", low=1),
        "verdict": Setting("km_verdict", "verdict", "severer", verdicts=_NOT_HIDDEN),
    },
    "rounding": {
        "count_base": Setting("count_base", "int", "higher", low=1),
        "verdict": Setting("rounding_verdict", "verdict", "severer", verdicts=_NOT_HIDDEN),
    },
    "genetics": {
        "min_minor_allele_count": Setting("genetics_min_mac", "int", "higher", low=1),
        "min_case_control_minor_allele_count": Setting("genetics_min_group_mac", "int",
                                                       "higher", low=1),
        "min_frequency_group": Setting("genetics_min_frequency_group", "int", "higher", low=1),
        # a higher false-positive rate asks more of the bound: the test is easier to pass
        "membership_alpha": Setting("genetics_alpha", "number", "higher", low=1e-9, high=0.5),
        "membership_max_power": Setting("genetics_max_power", "number", "lower", low=0,
                                        high=1),
        "max_residual_share": Setting("genetics_max_residual_share", "number", "lower",
                                      low=0.01, high=1),
        "max_traits_per_group": Setting("genetics_max_traits_per_group", "int", "lower",
                                        low=1),
        "max_effect_step": Setting("genetics_max_effect_step", "number", "lower", low=1e-6,
                                   high=2),
        "max_log10_p_step": Setting("genetics_max_log10_p_step", "number", "lower", low=1e-6,
                                    high=100_000),
        "verdict": Setting("genetics_verdict", "verdict", "severer"),
    },
    "unknown": {"verdict": Setting("unknown_verdict", "verdict", "severer",
                                   verdicts=_ONLY_BLOCK)},
    "answers": {
        "max_acted": Setting("answers_max_acted", "int", "lower", low=0),
        "window_hours": Setting("answers_window_hours", "int", "higher", low=1),
        "verdict": Setting("answers_verdict", "verdict", "severer", verdicts=_NOT_HIDDEN),
    },
}
LIST_SECTIONS = ("analyses", "facts")
# sections that once were rules: read (a custodian's older file, a project's stored overrides)
# and ignored, so that retiring a rule neither breaks a project nor loosens it silently
RETIRED: dict[str, str] = {
    "zeros": "since session 14 a zero, 0% or 100% is held to the threshold like any few: a "
             "zero sent to people beside a one hidden answered whether one person had the "
             "attribute",
}
FACT_LISTS = ("counts", "statistics")


@dataclass(frozen=True)
class Rules:
    """The effective thresholds and verdicts (field names follow :data:`SCHEMA`)."""

    version: int
    version_id: str  # "v<version>-<12 hex of the YAML's SHA-256>[+<12 hex of overrides>]"
    threshold: int
    few_values: int  # a mean or sum over at most this many distinct values hides a frequency
    threshold_verdict: Verdict
    dominance_p: float
    dominance_p_verdict: Verdict
    dominance_n: int
    dominance_k: float
    dominance_nk_verdict: Verdict
    extremes_verdict: Verdict
    identical_min_distinct: int
    identical_verdict: Verdict
    quantile_min_each_side: int
    quantile_verdict: Verdict
    regression_min_residual_df: int
    regression_min_level: int
    regression_max_leverage: float  # the largest share of a fit one participant may hold
    regression_verdict: Verdict
    regression_max_r_squared: float
    regression_near_perfect_verdict: Verdict
    km_min_at_risk: int
    km_min_events: int
    km_min_censored: int
    km_verdict: Verdict
    count_base: int  # released counts go to multiples of this, by a keyed unbiased draw
    rounding_verdict: Verdict
    genetics_min_mac: int
    genetics_min_group_mac: int  # among cases and among controls of a 0/1 trait
    genetics_min_frequency_group: int
    genetics_alpha: float
    genetics_max_power: float
    genetics_max_residual_share: float  # of a trait's variation, the most k people may hold
    genetics_max_traits_per_group: int  # GWAS traits released over much the same people
    genetics_max_effect_step: float  # an effect's rounding step, in its standard errors
    genetics_max_log10_p_step: float  # −log10 p's rounding step
    genetics_verdict: Verdict
    unknown_verdict: Verdict
    answers_max_acted: int  # outputs a person may see acted on automatically in the window
    answers_window_hours: int
    answers_verdict: Verdict
    analyses: Mapping[AnalysisKind, frozenset[CellKind]]  # cell kinds accepted per analysis
    fact_counts: frozenset[str]
    fact_statistics: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        """The settings in the YAML's shape (JSON-able), for a check report."""
        flat = _flat(self)
        out: dict[str, Any] = {"version": self.version, "version_id": self.version_id}
        for section, keys in SCHEMA.items():
            out[section] = {key: _jsonable(flat[s.field]) for key, s in keys.items()}
        out["analyses"] = {a.value: sorted(k.value for k in kinds)
                           for a, kinds in self.analyses.items()}
        out["facts"] = {"counts": sorted(self.fact_counts),
                        "statistics": sorted(self.fact_statistics)}
        return out


def load_rules(path: str | Path | None = None) -> Rules:
    """The rules in ``path`` (default: the shipped rules.yaml), validated strictly."""
    source = Path(path) if path is not None else SHIPPED
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise Invalid(f"cannot read the rules file {source}: {exc.strerror}; "
                      "give the path of a readable rules YAML") from exc
    return parse_rules(raw, name=source.name)


@functools.lru_cache(maxsize=16)
def parse_rules(raw: bytes, name: str = "rules.yaml") -> Rules:
    """Rules from the bytes of a rules YAML; ``name`` appears in the reasons. Parsed once
    per text (a refusal is not kept): every platform's answer rations read the shipped file,
    and parsing its YAML was a second of every ten a test process spent opening platforms.
    Rules are immutable, so the one parsed copy is shared."""
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise Invalid(f"{name} is not valid YAML ({exc.__class__.__name__}); fix its syntax") \
            from exc
    if not isinstance(doc, dict):
        raise Invalid(f"{name} must be a mapping of rule sections, not {_typename(doc)}")
    reasons: list[str] = []
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        reasons.append(f"{name}: version must be a whole number, one of "
                       f"{sorted(SUPPORTED_VERSIONS)}")
    elif version not in SUPPORTED_VERSIONS:
        reasons.append(f"{name}: version {version} is not supported; this Strongroom reads "
                       f"versions {sorted(SUPPORTED_VERSIONS)}")
    for key in doc:
        if key != "version" and key not in SCHEMA and key not in LIST_SECTIONS \
                and key not in RETIRED:
            reasons.append(f"{name}: unknown section {key!r}; known sections are "
                           f"{', '.join([*SCHEMA, *LIST_SECTIONS])}")
    values: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        values |= _section(doc.get(section), section, keys, name, reasons, partial=False)
    analyses = _analyses(doc.get("analyses"), name, reasons, partial=False)
    facts = _facts(doc.get("facts"), name, reasons, partial=False)
    if reasons or not isinstance(version, int):
        raise Invalid(reasons)
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return Rules(version=version, version_id=f"v{version}-{digest}", **values,
                 analyses=MappingProxyType(analyses), fact_counts=facts["counts"],
                 fact_statistics=facts["statistics"])


def tighten(base: Rules, overrides: Mapping[str, Any]) -> Rules:
    """``base`` with a project's ``overrides`` (the YAML's shape, any subset of settings).

    Each override must be at least as strict as the base: a higher minimum, a higher p, a
    lower k, a more severe verdict, a subset of accepted kinds or facts. Anything else, or
    an unknown setting, is :class:`Invalid` naming the setting.
    """
    if not isinstance(overrides, Mapping):
        raise Invalid(f"project rule overrides must be a mapping, not {_typename(overrides)}")
    if not overrides:
        return base
    name = "project overrides"
    reasons: list[str] = []
    changes: dict[str, Any] = {}
    current = _flat(base)
    for section, body in overrides.items():
        if section in SCHEMA:
            given = _section(body, section, SCHEMA[section], name, reasons, partial=True)
            for key, setting in SCHEMA[section].items():
                if setting.field in given:
                    value = given[setting.field]
                    if not _at_least_as_strict(setting, value, current[setting.field]):
                        reasons.append(
                            f"{section}.{key}: {_jsonable(value)} would loosen the rule (in "
                            f"force: {_jsonable(current[setting.field])}); a project may only "
                            f"tighten ({_direction(setting)})")
                    changes[setting.field] = value
        elif section == "analyses":
            given_kinds = _analyses(body, name, reasons, partial=True)
            merged = dict(base.analyses)
            for analysis, kinds in given_kinds.items():
                allowed = base.analyses.get(analysis, frozenset())
                extra = kinds - allowed
                if extra:
                    reasons.append(f"analyses.{analysis.value}: "
                                   f"{', '.join(sorted(k.value for k in extra))} would widen "
                                   "what is accepted; a project may only remove kinds")
                merged[analysis] = kinds
            changes["analyses"] = MappingProxyType(merged)
        elif section in RETIRED:
            continue  # kept in the version id (the overrides' hash), read as nothing
        elif section == "facts":
            given_facts = _facts(body, name, reasons, partial=True)
            for key, names in given_facts.items():
                field = f"fact_{key}"
                extra = names - current[field]
                if extra:
                    reasons.append(f"facts.{key}: {', '.join(sorted(extra))} would widen what "
                                   "is accepted; a project may only remove facts")
                changes[field] = names
        else:
            reasons.append(f"{name}: unknown section {section!r} (the version cannot be "
                           "overridden); known sections are "
                           f"{', '.join([*SCHEMA, *LIST_SECTIONS])}")
    if reasons:
        raise Invalid(reasons)
    canon = json.dumps(overrides, sort_keys=True, default=str).encode()
    version_id = f"{base.version_id}+{hashlib.sha256(canon).hexdigest()[:12]}"
    return replace(base, version_id=version_id, **changes)


def _section(body: Any, section: str, keys: Mapping[str, Setting], name: str,
             reasons: list[str], *, partial: bool) -> dict[str, Any]:
    """The validated settings of one section, keyed by their :class:`Rules` field."""
    if body is None and not partial:
        reasons.append(f"{name}: section {section!r} is missing")
        return {}
    if not isinstance(body, Mapping):
        reasons.append(f"{name}: {section} must be a mapping of settings, not {_typename(body)}")
        return {}
    out: dict[str, Any] = {}
    for key in body:
        if key not in keys:
            reasons.append(f"{name}: unknown setting {section}.{key}; {section} has "
                           f"{', '.join(keys)}")
    for key, setting in keys.items():
        if key not in body:
            if not partial:
                reasons.append(f"{name}: {section}.{key} is missing")
            continue
        value, problem = _value(setting, body[key])
        if problem:
            reasons.append(f"{name}: {section}.{key} {problem}")
        else:
            out[setting.field] = value
    return out


def _value(setting: Setting, raw: Any) -> tuple[Any, str]:
    """(value, "") or (None, what is wrong)."""
    if setting.kind == "verdict":
        allowed = sorted(_verdict_name(v) for v in setting.verdicts)
        if not isinstance(raw, str) or raw not in allowed:
            return None, f"must be one of {', '.join(allowed)}, not {raw!r}"
        return Verdict[raw.upper()], ""
    number_ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    if setting.kind == "int" and (not number_ok or not isinstance(raw, int)):
        return None, f"must be a whole number, not {raw!r}"
    if not number_ok:
        return None, f"must be a number, not {raw!r}"
    if not setting.low <= raw <= setting.high:
        high = "" if setting.high == float("inf") else f" and ≤ {setting.high:g}"
        return None, f"must be ≥ {setting.low:g}{high}, not {raw!r}"
    return (int(raw) if setting.kind == "int" else float(raw)), ""


def _names(body: Any, where: str, name: str, reasons: list[str]) -> list[str] | None:
    if not isinstance(body, list) or not all(isinstance(x, str) for x in body):
        reasons.append(f"{name}: {where} must be a list of names, not {_typename(body)}")
        return None
    return list(body)


def _analyses(body: Any, name: str, reasons: list[str], *,
              partial: bool) -> dict[AnalysisKind, frozenset[CellKind]]:
    if body is None and not partial:
        reasons.append(f"{name}: section 'analyses' is missing")
        return {}
    if not isinstance(body, Mapping):
        reasons.append(f"{name}: analyses must map analysis kinds to cell kinds, not "
                       f"{_typename(body)}")
        return {}
    known_analyses = {a.value for a in AnalysisKind}
    known_cells = {c.value for c in CellKind}
    out: dict[AnalysisKind, frozenset[CellKind]] = {}
    for analysis, kinds in body.items():
        if analysis not in known_analyses:
            reasons.append(f"{name}: analyses.{analysis} is not an analysis kind; known: "
                           f"{', '.join(sorted(known_analyses))}")
            continue
        names = _names(kinds, f"analyses.{analysis}", name, reasons)
        if names is None:
            continue
        unknown = [k for k in names if k not in known_cells]
        if unknown:
            reasons.append(f"{name}: analyses.{analysis} lists unknown cell kinds "
                           f"{', '.join(unknown)}; known: {', '.join(sorted(known_cells))}")
            continue
        out[AnalysisKind(analysis)] = frozenset(CellKind(k) for k in names)
    return out


def _facts(body: Any, name: str, reasons: list[str], *,
           partial: bool) -> dict[str, frozenset[str]]:
    if body is None and not partial:
        reasons.append(f"{name}: section 'facts' is missing")
        return {"counts": frozenset(), "statistics": frozenset()}
    if not isinstance(body, Mapping):
        reasons.append(f"{name}: facts must be a mapping with {', '.join(FACT_LISTS)}, not "
                       f"{_typename(body)}")
        return {"counts": frozenset(), "statistics": frozenset()}
    out: dict[str, frozenset[str]] = {}
    for key in body:
        if key not in FACT_LISTS:
            reasons.append(f"{name}: unknown setting facts.{key}; facts has "
                           f"{', '.join(FACT_LISTS)}")
    for key in FACT_LISTS:
        if key not in body:
            if not partial:
                reasons.append(f"{name}: facts.{key} is missing")
            continue
        names = _names(body[key], f"facts.{key}", name, reasons)
        if names is not None:
            out[key] = frozenset(names)
    if not partial and not reasons and out["counts"] & out["statistics"]:
        both = ", ".join(sorted(out["counts"] & out["statistics"]))
        reasons.append(f"{name}: facts {both} are listed both as counts and as statistics")
    return out


def _at_least_as_strict(setting: Setting, new: Any, old: Any) -> bool:
    if setting.stricter == "severer":
        return SEVERITY[new] >= SEVERITY[old]
    if setting.stricter == "higher":
        return bool(new >= old)
    return bool(new <= old)


def _direction(setting: Setting) -> str:
    return {"higher": "raise it", "lower": "lower it",
            "severer": "suppress < review < block"}[setting.stricter]


def _flat(rules: Rules) -> dict[str, Any]:
    return {f.name: getattr(rules, f.name) for f in fields(rules)}


def _verdict_name(verdict: Verdict) -> str:
    """How the YAML spells a verdict: suppress, review, block."""
    return verdict.name.lower()


def _jsonable(value: Any) -> Any:
    return _verdict_name(value) if isinstance(value, Verdict) else value


def _typename(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
