"""The disclosure rules file: strict loading, version digests, and tighten-only overrides."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from strongroom.enclave.results import AnalysisKind, CellKind
from strongroom.errors import Invalid
from strongroom.outputs.rules import SCHEMA, SHIPPED, Rules, load_rules, parse_rules, tighten
from strongroom.outputs.verdicts import Verdict


def shipped_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SHIPPED.read_bytes())
    return doc


def reasons(exc: pytest.ExceptionInfo[Invalid]) -> str:
    return " | ".join(exc.value.reasons)


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_shipped_rules_load_with_the_documented_defaults() -> None:
    rules = load_rules()
    assert rules.version == 1
    assert rules.threshold == 10
    assert rules.threshold_verdict is Verdict.SUPPRESS
    assert (rules.dominance_p, rules.dominance_n, rules.dominance_k) == (10.0, 2, 85.0)
    assert rules.extremes_verdict is Verdict.BLOCK
    assert rules.identical_verdict is Verdict.BLOCK
    assert rules.quantile_min_each_side == 10
    assert (rules.regression_min_residual_df, rules.regression_min_level) == (10, 10)
    assert (rules.km_min_at_risk, rules.km_min_events, rules.km_min_censored) == (10, 10, 10)
    assert rules.rounding_verdict is Verdict.BLOCK
    assert rules.unknown_verdict is Verdict.BLOCK
    assert set(rules.analyses) == set(AnalysisKind)  # every analysis has its accepted kinds
    assert rules.analyses[AnalysisKind.KAPLAN_MEIER] >= {CellKind.SURVIVAL, CellKind.AT_RISK}
    assert {"n_obs", "events"} <= rules.fact_counts
    assert "residual_df" in rules.fact_statistics


def test_version_id_is_the_version_and_the_digest_of_the_bytes() -> None:
    rules = load_rules()
    digest = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()[:12]
    assert rules.version_id == f"v1-{digest}"
    assert re.fullmatch(r"v1-[0-9a-f]{12}", rules.version_id)
    # a byte changed (even a comment) is a different version
    assert parse_rules(SHIPPED.read_bytes() + b"\n# edited\n").version_id != rules.version_id


def test_as_dict_round_trips_through_yaml(tmp_path: Path) -> None:
    rules = load_rules()
    doc = rules.as_dict()
    doc.pop("version_id")
    again = load_rules(write(tmp_path, doc))
    assert {k: v for k, v in vars(again).items() if k != "version_id"} == \
        {k: v for k, v in vars(rules).items() if k != "version_id"}


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(surprise={"x": 1}), "unknown section 'surprise'"),
    (lambda d: d["threshold"].update(min_particpants=12),
     "unknown setting threshold.min_particpants"),
    (lambda d: d["threshold"].pop("min_participants"), "threshold.min_participants is missing"),
    (lambda d: d.pop("quantiles"), "section 'quantiles' is missing"),
    (lambda d: d["threshold"].update(min_participants=True), "must be a whole number"),
    (lambda d: d["threshold"].update(min_participants=10.5), "must be a whole number"),
    (lambda d: d["threshold"].update(min_participants="ten"), "must be a whole number"),
    (lambda d: d["threshold"].update(min_participants=0), "must be ≥ 1"),
    (lambda d: d["dominance_p"].update(p="10%"), "must be a number"),
    (lambda d: d["dominance_nk"].update(k=100), "≤ 99.999"),
    (lambda d: d["quantiles"].update(verdict="ignore"),
     "must be one of block, review, suppress"),
    (lambda d: d["extremes"].update(verdict="suppress"), "must be one of block, review"),
    (lambda d: d["unknown"].update(verdict="review"), "must be one of block"),
    (lambda d: d.update(version=2), "version 2 is not supported"),
    (lambda d: d.update(version="1"), "version must be a whole number"),
    (lambda d: d["analyses"].update(ols=["coefficient", "wobble"]), "unknown cell kinds wobble"),
    (lambda d: d["analyses"].update(magic=["count"]), "analyses.magic is not an analysis kind"),
    (lambda d: d["analyses"].update(ols="coefficient"), "must be a list of names"),
    (lambda d: d["facts"].update(extra=["x"]), "unknown setting facts.extra"),
    (lambda d: d["facts"]["counts"].append("aic"), "listed both as counts and as statistics"),
])
def test_a_bad_rules_file_is_refused_with_its_reason(tmp_path: Path, change: Any,
                                                     expected: str) -> None:
    doc = shipped_doc()
    change(doc)
    with pytest.raises(Invalid) as exc:
        load_rules(write(tmp_path, doc))
    assert expected in reasons(exc)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = shipped_doc()
    doc["threshold"]["min_participants"] = -1
    doc["quantiles"]["verdict"] = "maybe"
    doc["bogus"] = 1
    with pytest.raises(Invalid) as exc:
        load_rules(write(tmp_path, doc))
    assert len(exc.value.reasons) == 3


@pytest.mark.parametrize("raw", [b"- a list\n- not a mapping\n", b"threshold: [unclosed\n", b""])
def test_a_file_that_is_not_a_rules_mapping_is_refused(raw: bytes) -> None:
    with pytest.raises(Invalid):
        parse_rules(raw)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid) as exc:
        load_rules(tmp_path / "absent.yaml")
    assert "cannot read the rules file" in reasons(exc)


def test_a_retired_section_is_read_and_ignored(tmp_path: Path) -> None:
    """An older rules file and a project's stored overrides may still hold ``zeros``."""
    doc = shipped_doc()
    assert "zeros" not in doc
    doc["zeros"] = {"verdict": "review"}
    assert load_rules(write(tmp_path, doc)).as_dict() == load_rules().as_dict() | {
        "version_id": load_rules(write(tmp_path, doc)).version_id}
    base = load_rules()
    kept = tighten(base, {"zeros": {"verdict": "suppress"}})
    assert kept.as_dict() | {"version_id": base.version_id} == base.as_dict()


def test_every_schema_setting_is_in_the_shipped_file() -> None:
    doc = shipped_doc()
    for section, keys in SCHEMA.items():
        assert set(doc[section]) == set(keys), section


# ---------------------------------------------------------------- tightening


@pytest.mark.parametrize("overrides", [
    {"threshold": {"min_participants": 20}},
    {"threshold": {"verdict": "block"}},
    {"threshold": {"few_values": 5}},
    {"dominance_p": {"p": 15}},
    {"dominance_nk": {"n": 3, "k": 70}},
    {"identical_values": {"min_distinct": 3}},
    {"quantiles": {"min_each_side": 25, "verdict": "review"}},
    {"regression": {"min_residual_df": 50, "min_level_participants": 20}},
    {"kaplan_meier": {"min_at_risk": 20, "min_events": 15, "min_censored": 15}},
    {"analyses": {"summary": ["count", "mean", "sd", "median"]}},
    {"facts": {"statistics": ["residual_df"]}},
    {"threshold": {"min_participants": 10}},  # equal is allowed
    # issue 54's precision: released effects within 0.1 SE, −log10 p within 0.1
    {"genetics": {"max_effect_step": 0.1, "max_log10_p_step": 0.1}},
])
def test_a_project_may_tighten(overrides: dict[str, Any]) -> None:
    base = load_rules()
    tight = tighten(base, overrides)
    assert tight.version_id.startswith(base.version_id + "+")
    assert tight != base
    assert tighten(base, overrides).version_id == tight.version_id  # deterministic


def test_tightened_values_are_applied() -> None:
    tight = tighten(load_rules(), {"threshold": {"min_participants": 20, "verdict": "review"},
                                   "dominance_nk": {"k": 70},
                                   "analyses": {"summary": ["count", "mean"]}})
    assert tight.threshold == 20
    assert tight.threshold_verdict is Verdict.REVIEW
    assert tight.dominance_k == 70.0
    assert tight.analyses[AnalysisKind.SUMMARY] == {CellKind.COUNT, CellKind.MEAN}
    assert tight.analyses[AnalysisKind.OLS] == load_rules().analyses[AnalysisKind.OLS]
    assert tight.as_dict()["threshold"] == {"min_participants": 20, "few_values": 3,
                                            "verdict": "review"}


@pytest.mark.parametrize(("overrides", "named"), [
    ({"threshold": {"min_participants": 5}}, "threshold.min_participants"),
    ({"threshold": {"few_values": 2}}, "threshold.few_values"),
    ({"dominance_p": {"p": 5}}, "dominance_p.p"),
    ({"dominance_nk": {"n": 1}}, "dominance_nk.n"),
    ({"dominance_nk": {"k": 95}}, "dominance_nk.k"),
    ({"extremes": {"verdict": "review"}}, "extremes.verdict"),
    ({"identical_values": {"verdict": "review"}}, "identical_values.verdict"),
    ({"quantiles": {"min_each_side": 3}}, "quantiles.min_each_side"),
    ({"regression": {"min_level_participants": 1}}, "regression.min_level_participants"),
    ({"kaplan_meier": {"min_at_risk": 5}}, "kaplan_meier.min_at_risk"),
    ({"rounding": {"verdict": "review"}}, "rounding.verdict"),
    ({"analyses": {"ols": ["coefficient", "statistic", "count"]}}, "analyses.ols"),
    ({"facts": {"counts": ["n", "my_secret_number"]}}, "facts.counts"),
    ({"genetics": {"max_effect_step": 3}}, "genetics.max_effect_step"),
])
def test_a_loosening_is_refused_naming_the_setting(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(Invalid) as exc:
        tighten(load_rules(), overrides)
    assert named in reasons(exc)


@pytest.mark.parametrize("overrides", [
    {"version": 2},
    {"thresholds": {"min_participants": 20}},
    {"threshold": {"minimum": 20}},
    {"threshold": {"min_participants": "20"}},
    {"unknown": {"verdict": "review"}},
])
def test_unknown_or_ill_typed_overrides_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        tighten(load_rules(), overrides)


def test_no_overrides_is_the_base() -> None:
    base = load_rules()
    assert tighten(base, {}) is base


def test_rules_are_immutable() -> None:
    rules: Rules = load_rules()
    with pytest.raises(AttributeError):
        rules.threshold = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        rules.analyses[AnalysisKind.OLS] = frozenset()  # type: ignore[index]
