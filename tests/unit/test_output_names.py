"""Outputs are named from their request, or by the researcher, never only by their kind: ten
outputs of one kind are told apart (issue 55). The name goes into a Content-Disposition header
as it is, so it holds nothing but letters, digits, _ and -."""

from __future__ import annotations

import pytest

from strongroom.errors import Invalid
from strongroom.outputs.render import Format, filename, named


def test_an_output_is_named_from_what_it_is_of() -> None:
    assert filename("crosstab", Format.JSON, {"kind": "crosstab", "definition": "adults",
                                              "rows": "sex", "columns": "smoking"}) == \
        "crosstab-adults-sex-smoking.json"
    assert filename("summary", Format.CSV, {"definition": "adults",
                                            "variables": ["bmi", "sbp"]}) == \
        "summary-adults-bmi-sbp.csv"
    one = filename("aggregate_sql", Format.JSON, {"sql": "SELECT count(*) FROM adults"})
    other = filename("aggregate_sql", Format.JSON, {"sql": "SELECT avg(bmi) FROM adults"})
    assert one.startswith("aggregate_sql-") and one != other  # told apart by their SQL
    assert filename("gwas", Format.CSV, None) == "gwas.csv"


def test_a_name_is_made_safe_for_a_header_or_refused() -> None:
    assert named("Table 1: BMI by sex", Format.CSV) == "Table-1-BMI-by-sex.csv"
    assert named('x"; filename="evil.exe\r\nSet-Cookie: a=b', Format.JSON) == \
        "x-filename-evil-exe-Set-Cookie-a-b.json"
    assert len(named("a" * 500, Format.JSON)) <= 80 + len(".json")
    with pytest.raises(Invalid, match="letters or digits"):
        named("../..", Format.JSON)
    crafted = filename("crosstab", Format.JSON, {"definition": "a\r\nb", "rows": "../x"})
    assert crafted == "crosstab-a-b-x.json"
