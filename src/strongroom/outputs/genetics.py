"""A GWAS's output: the genetics rules, then the same check, ledger and release as every output.

What is released is a table of per-variant statistics (one row per variant and trait) with the
counts of what was withheld and why, and each trait's genomic inflation factor. Around it, the
ordinary check sees the GWAS as a fit: one statistic per trait whose support is the analysed
group, and the vectors of every trait and covariate it read, so that two GWAS over groups a few
people apart, or over a trait changed for a few people, clash in the differencing ledger like
any two models (their per-variant effects would give those people's genotypes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from strongroom.enclave import margin
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.enclave.steps import Rounding
from strongroom.genomics.membership import Spent
from strongroom.genomics.release import GeneticRules, Released, release
from strongroom.genomics.study import GwasRun
from strongroom.outputs.render import Format
from strongroom.outputs.rules import Rules
from strongroom.outputs.verdicts import Finding, Verdict

RULE = "genetics"
SPENT_FILE = "genetic-releases.json"  # per project, sealed: membership budget spent per group


def genetic_rules(rules: Rules) -> GeneticRules:
    return GeneticRules(rules.genetics_min_mac, rules.genetics_min_group_mac,
                        rules.genetics_min_frequency_group, rules.genetics_alpha,
                        rules.genetics_max_power)


@dataclass
class GwasOutput:
    """What a GWAS leaves as, before the ordinary check has its say."""

    result: Result  # one statistic per trait, the vectors read: for the check and ledger
    released: Released
    findings: list[Finding]  # the genetics rules' (withheld variants)
    facts: dict[str, Any]


def prepare(run: GwasRun, rules: Rules, rounding: Rounding,
            spent: dict[str, Spent]) -> GwasOutput:
    """Apply the genetics rules to ``run``; ``spent``: the membership budget each trait's
    group has used in this project's earlier GWAS."""
    released = release(run, genetic_rules(rules), spent)
    cells = []
    facts: dict[str, Any] = {"variants_tested": run.tested,
                             "variants_released": released.table.select("id").n_unique()}
    shown_n: dict[str, float] = {}
    for trait in run.spec.traits:
        group = run.groups[trait]
        # the group's size is a count of people like any other: rounded by a keyed draw, or
        # it would say whether one more person is in a group an attacker sized from outside
        shown_n[trait] = float(rounding(float(group.size), float(rules.count_base), "count",
                                        rules.count_base, margin.of(group)))
        inflation = run.inflation(trait)
        cells.append(Cell(row=(trait,), column="lambda_gc", kind=CellKind.STATISTIC,
                          value=round(inflation, 4) if math.isfinite(inflation) else None,
                          contributors=group))
    facts["n"] = shown_n
    findings = [Finding(RULE, rules.genetics_verdict,
                        f"{count:,} variant results withheld: {reason}")
                for reason, count in sorted(released.withheld.items())]
    if not released.frequencies:
        findings.append(Finding(RULE, Verdict.SUPPRESS, (
            f"allele frequencies are not shown: a group has fewer than "
            f"{rules.genetics_min_frequency_group:,} participants")))
    result = Result(AnalysisKind.GWAS, run.spec.model_dump(mode="json"), cells,
                    vectors=dict(run.vectors), notes=list(run.notes))
    return GwasOutput(result, released, findings, facts)


def render(output: GwasOutput, fmt: Format, hidden: bool) -> bytes:
    """The researcher's file: the variants as CSV, or everything as JSON. ``hidden``: the
    check hid the output's statistics (a clash): nothing per variant is written."""
    table = output.released.table.head(0) if hidden else output.released.table
    if fmt is Format.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.columns)
        for row in table.iter_rows():
            writer.writerow([_text(v) for v in row])
        return buffer.getvalue().encode()
    payload = {
        "kind": AnalysisKind.GWAS.value, "spec": output.result.spec,
        "facts": output.facts,
        "lambda_gc": {c.row[0]: c.value for c in output.result.cells},
        "withheld": output.released.withheld,
        "notes": output.result.notes,
        "columns": table.columns,
        "variants": [[_json(v) for v in row] for row in table.iter_rows()],
    }
    return json.dumps(payload, sort_keys=True, allow_nan=False).encode()


def group_key(eids: np.ndarray) -> str:
    """A group's name in the spent-budget file: a digest of its members (never the members)."""
    return hashlib.sha256(np.sort(eids).astype("<i8").tobytes()).hexdigest()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def _json(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def frame_of(payload: bytes) -> pl.DataFrame:
    """A JSON GWAS output's variants as a frame (for tests and readers)."""
    data = json.loads(payload)
    return pl.DataFrame(data["variants"], schema=data["columns"], orient="row")
