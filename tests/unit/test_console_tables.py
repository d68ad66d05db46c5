"""The checker's and researcher's tables on the console: headed by what their rows are, and
no chart of nothing (issue 55)."""

from __future__ import annotations

import json

from strongroom.enclave.results import AnalysisKind
from strongroom.outputs.labels import Meanings
from strongroom.outputs.render import Format, render
from strongroom.server.web.checks import row_head, table_of
from tests.unit.test_labels_meanings import CROSSTAB, crosstab


def test_a_tables_first_column_is_headed_by_its_rows_variable() -> None:
    table = table_of(render(crosstab(), {0, 1}, Format.JSON), "application/json", "Counts",
                     None, CROSSTAB)
    assert (table.head, table.across) == ("smoking", "sex")  # not "Row"; the columns' too
    assert table.chart is not None  # counts to draw
    plain = table_of(render(crosstab(), set(), Format.JSON), "application/json", "Counts")
    assert (plain.head, plain.across) == ("Row", "")  # nothing says what the rows are
    said = [
        ("frequency", {"variable": "smoking"}, "smoking"),
        ("histogram", {"variable": "bmi"}, "bmi"),
        ("kaplan_meier", {"group": "sex"}, "sex · interval"),
        ("cumulative_incidence", {}, "interval"),
        ("cox", {"time": "years"}, "Term"), ("glm", {}, "Term"),
        ("summary", {"variables": ["bmi"]}, "Variable"),
        ("gwas", {}, "Row"),
    ]
    for kind, spec, head in said:
        assert row_head(Meanings(kind, spec)) == head, kind
    assert row_head(Meanings(AnalysisKind.AGGREGATE_SQL.value, {}, {}, ("sex", "smoking"))
                    ) == "sex · smoking"


def test_a_table_whose_only_counts_shown_are_zeros_has_no_chart() -> None:
    body = json.loads(render(crosstab(), set(), Format.JSON))
    for cell in body["cells"]:  # all hidden but two zeros, as a held crosstab can be
        if cell["column"] != "Total" and cell["row"] != ["Total"]:
            cell["value"], cell["suppressed"] = None, True
    body["cells"][0].update(value=0, suppressed=False)
    body["cells"][1].update(value=0, suppressed=False)
    table = table_of(json.dumps(body).encode(), "application/json", "Counts", None, CROSSTAB)
    assert table.chart is None
    assert table.rows[0][1][:2] == ["0", "0"]  # the zeros are in the table still
