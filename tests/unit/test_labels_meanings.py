"""Codes by their meanings wherever a person reads a cell (issue 55: the check's reasons
quoted ``row "-3"``, the checker's table was headed ``0`` and ``1``): the reasons, the
labels a held output's reasons may keep, and the checker's table."""

from __future__ import annotations

import json

import numpy as np

from strongroom.enclave.results import AnalysisKind, Cell, CellKind, Result
from strongroom.outputs.check import check
from strongroom.outputs.labels import Meanings, as_read, namable, read_as
from strongroom.outputs.render import Format, render
from strongroom.outputs.rules import load_rules
from strongroom.outputs.service import _settled
from strongroom.outputs.suppression import where
from strongroom.outputs.verdicts import CheckReport, Finding, Verdict
from strongroom.server.web.checks import table_of

RULES = load_rules()
SEX = {"0": "Female", "1": "Male"}
SMOKING = {"-3": "Prefer not to answer", "0": "Never", "1": "Previous", "2": "Current"}
CODINGS = {"sex": SEX, "smoking": SMOKING}
CROSSTAB = Meanings(AnalysisKind.CROSSTAB.value, {"rows": "smoking", "columns": "sex"},
                    CODINGS)


def count(row: tuple[str, ...], column: str, n: int, start: int, margin: bool = False,
          table: str = "") -> Cell:
    return Cell(row, column, CellKind.COUNT, float(n),
                np.arange(start, start + n, dtype=np.int64), margin=margin, table=table)


def crosstab() -> Result:
    """smoking × sex with its margins, "Prefer not to answer" held by a few women."""
    cells, start, totals = [], 0, {"0": 0, "1": 0}
    for smoking, sizes in (("-3", (8, 25)), ("0", (400, 300)), ("2", (150, 120))):
        for sex, n in zip(("0", "1"), sizes, strict=True):
            cells.append(count((smoking,), sex, n, start))
            totals[sex] += n
            start += n
        cells.append(count((smoking,), "Total", sum(sizes), start - sum(sizes), margin=True))
    cells += [count(("Total",), sex, n, 0, margin=True) for sex, n in totals.items()]
    cells.append(count(("Total",), "Total", start, 0, margin=True))
    return Result(AnalysisKind.CROSSTAB, {"rows": "smoking", "columns": "sex"}, cells)


# -- which variable's coding reads each place -----------------------------------------------

def test_a_crosstab_reads_its_rows_and_columns_by_their_own_codings() -> None:
    assert CROSSTAB.row(("-3",)) == ("Prefer not to answer (-3)",)
    assert CROSSTAB.column("0") == "Female (0)"  # sex's 0, not smoking's "Never"
    assert CROSSTAB.row(("Total",)) == ("Total",) and CROSSTAB.column("Total") == "Total"
    assert CROSSTAB.row(("(missing)",)) == ("(missing)",)
    assert CROSSTAB.row(("7",)) == ("7",)  # a code the coding does not know: as it is
    assert CROSSTAB.row(("2.0",)) == ("Current (2.0)",)  # from a float column


def test_uncoded_variables_and_kinds_without_codes_keep_their_labels() -> None:
    computed = Meanings(AnalysisKind.CROSSTAB.value, {"rows": "era", "columns": "sex"},
                        CODINGS)
    assert computed.row(("1",)) == ("1",) and computed.column("1") == "Male (1)"
    summary = Meanings(AnalysisKind.SUMMARY.value, {"variables": ["sex"]}, CODINGS)
    assert summary.row(("sex",)) == ("sex",) and summary.column("mean") == "mean"
    assert Meanings("").row(("0",)) == ("0",)


def test_a_survival_table_reads_its_group_in_the_table_and_the_row() -> None:
    km = Meanings(AnalysisKind.KAPLAN_MEIER.value, {"group": "smoking"}, CODINGS)
    cell = count(("0", "[0, 2] years"), "events", 20, 0, table="0")
    assert km.cell(cell) == ("Never (0)", ("Never (0)", "[0, 2] years"), "events")
    causes = Meanings(AnalysisKind.CUMULATIVE_INCIDENCE.value,
                      {"group": "sex", "event": "smoking"}, CODINGS)
    assert causes.column("incidence:2") == "incidence:Current (2)"
    assert causes.column("at_risk") == "at_risk"


def test_aggregate_sql_reads_each_key_by_its_name() -> None:
    keys = Meanings(AnalysisKind.AGGREGATE_SQL.value, {}, CODINGS, ("sex", "band"))
    assert keys.row(("1", "1")) == ("Male (1)", "1")


def test_a_models_categorical_terms_read_by_meaning_with_the_term_beside() -> None:
    cox = Meanings(AnalysisKind.COX.value, {}, CODINGS)
    assert cox.row(("sex=1",)) == ("sex=Male (sex=1)",)
    assert cox.term("sex=1:smoking=2") == "sex=Male:smoking=Current (sex=1:smoking=2)"
    assert cox.term("bmi:sex=0") == "bmi:sex=Female (bmi:sex=0)"
    assert cox.term("age") == "age" and cox.term("era=late") == "era=late"


def test_a_meaning_with_quotes_cannot_end_the_quotes_of_a_reason() -> None:
    quoted = Meanings(AnalysisKind.FREQUENCY.value, {"variable": "x"},
                      {"x": {"1": 'Don\'t know "yet"'}})
    assert quoted.row(("1",)) == ("Don′t know ″yet″ (1)",)


# -- the check's reasons ---------------------------------------------------------------------

def test_the_checks_reasons_name_cells_by_meaning_only_within_read_as() -> None:
    cell = count(("-3",), "0", 4, 0)
    assert where(cell) == 'row "-3", column "0"'  # no meanings given: as the record holds it
    with read_as(CROSSTAB):
        assert where(cell) == 'row "Prefer not to answer (-3)", column "Female (0)"'
        assert as_read(cell)[1] == ("Prefer not to answer (-3)",)
    assert where(cell) == 'row "-3", column "0"'


def test_a_crosstabs_suppression_reasons_quote_meanings_not_bare_codes() -> None:
    result = crosstab()
    with read_as(CROSSTAB):
        report = check(result, RULES)
    reasons = [f.reason for f in report.findings if f.cell is not None]
    assert report.suppressed and reasons
    assert any('row "Prefer not to answer (-3)", column "Female (0)"' in r for r in reasons)
    for bare in ('row "-3"', 'column "0"', 'column "1"', 'row "0"', 'row "2"'):
        assert not any(bare in r for r in reasons), bare
    # the record keeps its codes: it is what a program reads
    body = json.loads(render(result, report.suppressed, Format.JSON, report.removed))
    assert {c["column"] for c in body["cells"]} == {"0", "1", "Total"}


def test_a_held_outputs_reasons_keep_the_meanings_of_labels_they_may_name() -> None:
    result = crosstab()
    with read_as(CROSSTAB):
        report = check(result, RULES)
    said = 'row "Never (0)", column "Male (1)": fewer than the threshold'
    found = [Finding("threshold", Verdict.REVIEW, said, 4),
             Finding("threshold", Verdict.REVIEW, 'beside row "Current (2)"', 4)]
    held = CheckReport(Verdict.REVIEW, found, report.suppressed, report.rules_version,
                       report.thresholds, report.removed)
    kept = _settled(found, held, None,
                    namable(result, RULES.threshold, report.removed, CROSSTAB))
    # a cell's own labels, by meaning; another cell's never
    assert [f.reason for f in kept.findings] == [said, "beside row “…”"]
    without = _settled(found, held, None, namable(result, RULES.threshold, report.removed))
    assert [f.reason for f in without.findings] == [
        "row “…”, column “…”: fewer than the threshold", "beside row “…”"]


# -- the checker's table ---------------------------------------------------------------------

def test_the_checkers_table_is_headed_and_labelled_by_meaning() -> None:
    result = crosstab()
    payload = render(result, {0, 1}, Format.JSON)
    table = table_of(payload, "application/json", "Counts", {0: "threshold: small"}, CROSSTAB)
    assert table.columns == ["Female (0)", "Male (1)", "Total"]
    assert [label for label, _ in table.rows] == [
        "Prefer not to answer (-3)", "Never (0)", "Current (2)", "Total"]
    assert table.flagged == {(0, 0): "threshold: small"}  # the same cell, flagged
    plain = table_of(payload, "application/json", "Counts")
    assert plain.columns == ["0", "1", "Total"]  # no meanings given: as the record holds it
    csv = table_of(render(result, {0, 1}, Format.CSV), "text/csv", "Counts", None, CROSSTAB)
    assert csv.columns == table.columns and csv.rows == table.rows
