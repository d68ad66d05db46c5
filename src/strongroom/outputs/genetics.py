"""A GWAS's output: the genetics rules, then the same check, ledger and release as every output.

What is released is a table of per-variant statistics (one row per variant and trait) with the
counts of what was withheld and why, and each trait's genomic inflation factor. Around it, the
ordinary check sees the GWAS as a fit: one statistic per trait whose support is the analysed
group, and the vectors of every trait and covariate it read, so that two GWAS over groups a few
people apart, or over a trait changed for a few people, clash in the differencing ledger like
any two models (their per-variant effects would give those people's genotypes).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from pyroaring import BitMap

from strongroom.enclave import margin
from strongroom.enclave.results import AnalysisKind, Cell, CellKind, PidArray, Result
from strongroom.enclave.steps import Rounding
from strongroom.genomics.membership import Spent, spent_on
from strongroom.genomics.release import GeneticRules, Released, release
from strongroom.genomics.study import VARIANT_COLUMNS, GwasRun
from strongroom.outputs.render import Format
from strongroom.outputs.rules import Rules
from strongroom.outputs.verdicts import SEVERITY, Finding, Verdict

RULE = "genetics"
INFLATED = 1.1  # a λ_GC above this is said on the output (1.0-1.1 is the usual range)
# the membership budget every GWAS spent, by group: one ledger for the platform, sealed under its
# key (outputs.service); each project kept its own SPENT_FILE before, read until the first save
BUDGET_FILE = "genetics/membership-budget.json"
SPENT_FILE = "genetic-releases.json"


def genetic_rules(rules: Rules) -> GeneticRules:
    return GeneticRules(rules.genetics_min_mac, rules.genetics_min_group_mac,
                        rules.genetics_min_frequency_group, rules.genetics_alpha,
                        rules.genetics_max_power, rules.genetics_max_residual_share,
                        rules.genetics_max_effect_step, rules.genetics_max_log10_p_step)


@dataclass
class GwasOutput:
    """What a GWAS leaves as, before the ordinary check has its say."""

    result: Result  # one statistic per trait, the vectors read: for the check and ledger
    released: Released
    findings: list[Finding]  # the genetics rules' (withheld variants)
    facts: dict[str, Any]


def prepare(run: GwasRun, rules: Rules, rounding: Rounding, ledger: RunningBudget,
            secret: bytes = b"") -> GwasOutput:
    """Apply the genetics rules to ``run``; ``ledger``: the membership budget every group of
    people has used in earlier GWAS (every project's), charged with this one's; ``secret``:
    the project's, keying the rounding draws of the released figures."""
    cells = []
    notes = list(run.notes)
    shown_n: dict[str, float] = {}
    for trait in run.spec.traits:
        group = run.groups[trait]
        # the group's size is a count of people like any other: rounded by a keyed draw, or
        # it would say whether one more person is in a group an attacker sized from outside
        shown_n[trait] = float(rounding(float(group.size), float(rules.count_base), "count",
                                        rules.count_base, margin.of(group)))
        # the group itself, compared in the ledger with every other GWAS's (overlap.GENOMES)
        cells.append(Cell(row=(trait,), column="n", kind=CellKind.GENOTYPES,
                          value=shown_n[trait], contributors=group))
        inflation = run.inflation(trait)
        shown = (round(inflation, 3) if inflation is not None and math.isfinite(inflation)
                 else None)
        cells.append(Cell(row=(trait,), column="lambda_gc", kind=CellKind.STATISTIC,
                          value=shown, contributors=group))
        if shown is not None and shown > INFLATED:
            remedy = ("add principal components of ancestry (principal_components: 10)"
                      if not run.spec.principal_components else "read the QQ plot")
            notes.append(f"λ_GC of {trait} is {shown:.2f} (about 1 when the statistics follow "
                         "the null): they are inflated, by population structure, relatedness, "
                         f"or a polygenic trait at this sample size; {remedy} before trusting "
                         "the p-values")
    released = release(run, genetic_rules(rules), ledger, shown_n=shown_n,
                       count_base=rules.count_base, salt=secret)
    facts: dict[str, Any] = {"n": shown_n, "variants_tested": run.tested,
                             "variants_released": released.table.select("id").n_unique()}
    findings = [Finding(RULE, rules.genetics_verdict,
                        f"{count:,} variant results withheld: {reason}")
                for reason, count in sorted(released.withheld.items())]
    if not released.frequencies:
        findings.append(Finding(RULE, Verdict.SUPPRESS, (
            f"allele frequencies are not shown: a group has fewer than "
            f"{rules.genetics_min_frequency_group:,} participants")))
    result = Result(AnalysisKind.GWAS, run.spec.model_dump(mode="json"), cells,
                    vectors=dict(run.vectors), notes=notes)
    return GwasOutput(result, released, findings, facts)


UNSAID = ("which variant results the genetics rules withhold, how many and why, is said with "
          "an output the check lets through, not with one it stopped: those counts are "
          "figures of the analysed group like any other (two groups a participant apart "
          "give that participant's genotypes through them)")


def unsaid(rules: Rules) -> Finding:
    """The genetics rules' one finding on a GWAS stopped (review or block, by the check or by
    these rules): the same whatever they withheld. Their counts by reason are figures of the
    group, and no one let the group through (two GWAS a participant apart, say): the
    observables red team
    read from a blocked GWAS's counts whether the one participant added carried a rare
    allele (tests/integration/test_redteam_observables.py). Its verdict is the project's
    genetics verdict, at least suppress: a constant, so it never moves with the data."""
    verdict = max(Verdict.SUPPRESS, rules.genetics_verdict, key=SEVERITY.__getitem__)
    return Finding(RULE, verdict, UNSAID)


def render(output: GwasOutput, fmt: Format, hidden: bool, *, annotated: bool = True) -> bytes:
    """The researcher's file: the variants as CSV, or everything as JSON. ``hidden``: the
    check hid the output's statistics (a clash): nothing per variant is written.
    ``annotated=False`` leaves out the variant annotation (chromosome, position, ID, alleles):
    what the raw-row scanner reads. The annotation is the custodian's variant table, never a
    participant's value, and positions are seven-digit numbers that would match participant
    IDs by chance."""
    table = output.released.table.head(0) if hidden else output.released.table
    if not annotated:
        table = table.drop(VARIANT_COLUMNS)
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
        "lambda_gc": {c.row[0]: c.value for c in output.result.cells
                      if c.column == "lambda_gc"},
        "withheld": output.released.withheld,
        "notes": output.result.notes,
        "columns": table.columns,
        "variants": [[_json(v) for v in row] for row in table.iter_rows()],
    }
    return json.dumps(payload, sort_keys=True, allow_nan=False).encode()


# what GWAS spent of the membership budget: (the group, as store eids; what that release added)
Budget = list[tuple[BitMap, Spent]]


class RunningBudget:
    """The membership ledger of one GWAS request (genomics.release.MembershipLedger): what
    earlier releases spent (``earlier``, every project's), plus what this request's traits
    have spent so far (``added``, which the project then keeps). Groups come as the project's
    pids and are charged as store eids, so one person is one person across projects."""

    def __init__(self, earlier: Budget, pseudonyms: pl.DataFrame):
        self.earlier = earlier
        self.added: Budget = []
        by_pid = pseudonyms.select("pid", "eid").sort("pid")
        self._pids = by_pid["pid"].to_numpy()
        self._eids_by_pid = by_pid["eid"].to_numpy().astype(np.uint32)

    def spent(self, group: PidArray) -> Spent | None:
        return spent_on(self.earlier + self.added, self._eids(group))

    def charge(self, group: PidArray, added: Spent) -> None:
        self.added.append((self._eids(group), added))

    def _eids(self, group: PidArray) -> BitMap:
        return BitMap(self._eids_by_pid[np.searchsorted(self._pids, group)])


def increment(after: Spent, before: Spent | None) -> Spent:
    """What one release added to the budget (``after`` is the running total it reached)."""
    if before is None:
        return after
    return Spent(after.separation - before.separation, after.var_null - before.var_null,
                 after.var_member - before.var_member, after.third_null - before.third_null,
                 after.third_member - before.third_member, after.variants - before.variants)


def budget_bytes(budget: Budget) -> bytes:
    return json.dumps([{"members": base64.b64encode(members.serialize()).decode(),
                        "spent": asdict(spent)} for members, spent in budget]).encode()


def budget_from(data: bytes) -> Budget:
    return [(BitMap.deserialize(base64.b64decode(entry["members"])), Spent(**entry["spent"]))
            for entry in json.loads(data)]


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


def figures(table: pl.DataFrame) -> list[tuple[str, bytes]]:
    """A Manhattan and a QQ plot (PNG) per trait, drawn from a released table alone: they show
    nothing the table does not."""
    from strongroom.genomics.plots import manhattan_png, qq_png

    drawn = []
    for trait in table["trait"].unique(maintain_order=True).to_list():
        rows = table.filter(pl.col("trait") == trait).with_row_index("variant")
        results = rows.select(pl.col("variant").cast(pl.Int64), "trait", _p_of(rows))
        if results["p"].drop_nulls().len() == 0:
            continue
        drawn.append((f"{trait}: Manhattan plot of the released variants",
                      manhattan_png(results, rows.select("chrom", "pos"), title=trait)))
        drawn.append((f"{trait}: QQ plot of the released variants",
                      qq_png(results, title=f"{trait}, released variants")))
    return drawn


def _p_of(rows: pl.DataFrame) -> pl.Expr:
    """p, from −log10 p where p itself is below what a float holds (never drawn as 0)."""
    if "neg_log10_p" not in rows.columns:
        return pl.col("p")
    return pl.max_horizontal(pl.lit(10.0) ** -pl.col("neg_log10_p"),
                             pl.lit(TINY)).alias("p")


TINY = 2.2250738585072014e-308  # the smallest normal float: where p is drawn past it


def read_table(payload: bytes, media_type: str) -> pl.DataFrame:
    """A released GWAS output's variants, from its JSON or its CSV."""
    if media_type == "application/json":
        return frame_of(payload)
    return pl.read_csv(io.BytesIO(payload), infer_schema_length=None)
