"""The work one row can cause is bounded from the query's text (enclave/amplifiers.py):
amplifiers are refused with what is wrong and what to do; researchers' patterns pass."""

from __future__ import annotations

import pytest

from strongroom.enclave.amplifiers import MAX_ROW_WORK, pattern_reason, row_work
from strongroom.enclave.sqlguard import check_select, parse
from strongroom.enclave.view import ProjectSchema
from strongroom.errors import Invalid

SCHEMA = ProjectSchema({
    "participants": {"pid": "BIGINT", "p31": "BIGINT", "p21001_i0": "DOUBLE"},
    "diagnoses": {"pid": "BIGINT", "code": "VARCHAR", "date": "DATE"},
})
LONG = "lpad(CAST(p21001_i0 AS VARCHAR), 10000, 'a')"


def refused(sql: str) -> str:
    with pytest.raises(Invalid) as caught:
        check_select(sql, SCHEMA)
    return " | ".join(caught.value.reasons)


HONEST_PATTERNS = ["^I2[0-5]", r"\d{4}", "a+", r"(\d+\.)?\d+", "(E10|E11)+", "^[A-Z]{1,3}",
                   "(?i)diab", "[[:alpha:]]+", "x{2,}", "^C(0|1)[0-9]"]
AMPLIFYING = [
    ("(a{1,100}){1,100}b", "counted"), ("(a|aa){1,1000}b", "counted"),
    ("(.*a){20}b", "counted"), ("(a+)+b", "nested"), ("(a*)*b", "nested"),
    ("([ab]+c)*d", "nested"), ("[a-z]{1,1000}b", "more than 10"), ("x{11}", "more than 10"),
    ("a{1,10}" * 12, "expands"), ("a?" * 60 + "b", "longer than"), (r"\pL", "could not"),
    ("(?=a)b", "lookaround"), (r"(a)\1", "refers back"),
]


@pytest.mark.parametrize("pattern", HONEST_PATTERNS)
def test_researchers_patterns_pass(pattern: str) -> None:
    assert pattern_reason(pattern) is None
    check_select(f"SELECT pid FROM diagnoses WHERE regexp_matches(code, '{pattern}')", SCHEMA)


@pytest.mark.parametrize(("pattern", "word"), AMPLIFYING)
def test_amplifying_patterns_are_refused_with_what_to_do(pattern: str, word: str) -> None:
    for sql in (f"SELECT pid FROM diagnoses WHERE regexp_matches(code, '{pattern}')",
                f"SELECT pid, regexp_extract(code, '{pattern}') AS x FROM diagnoses",
                f"SELECT pid, regexp_replace(code, '{pattern}', 'x') AS x FROM diagnoses",
                f"SELECT pid FROM diagnoses WHERE code ~ '{pattern}'"):
        reason = refused(sql)
        assert word in reason and "write a plainer pattern" in reason, reason


@pytest.mark.parametrize(("expression", "word"), [
    ("regexp_matches(code, code)", "written in the query"),
    ("regexp_matches(code, 'a' || code)", "written in the query"),
    ("regexp_matches(code, 'a', code)", "options"),
    ("lpad(code, CAST(p21001_i0 AS INTEGER), 'a') = 'x'", "pads to"),
    ("rpad(code, 100001, 'a') = 'x'", "pads to"),
    ("lpad(code, 2.5, 'a') = 'x'", "pads to"),
])
def test_computed_patterns_and_lengths_are_refused(expression: str, word: str) -> None:
    sql = (f"SELECT d.pid FROM diagnoses d JOIN participants p ON d.pid = p.pid "
           f"WHERE {expression}")
    assert word in refused(sql)


def test_the_work_per_row_is_bounded_across_the_whole_query() -> None:
    one = f"{LONG} LIKE '%a%a%a%a%a%a%a%a%b'"
    assert check_select(f"SELECT pid FROM participants WHERE {one}", SCHEMA)
    many = " OR ".join([one] * 40)
    reason = refused(f"SELECT pid FROM participants WHERE {many}")
    assert "character steps" in reason and f"{MAX_ROW_WORK:,}" in reason
    assert "split the work into definitions" in reason
    # a LIKE pattern that is a long built text costs its length times the text's
    assert "character steps" in refused(
        f"SELECT pid FROM participants WHERE {LONG} LIKE rpad('%', 10000, '%a')")
    # lists sorted from long texts
    sorts = " + ".join(f"array_length(list_sort(string_split(lpad(CAST(p21001_i0 AS VARCHAR), "
                       f"10000, '{i}'), '')))" for i in range(16))
    assert "character steps" in refused(f"SELECT pid FROM participants WHERE {sorts} > 0")


def test_numbers_and_dates_count_as_short_texts_and_text_columns_as_long() -> None:
    short = row_work(parse("SELECT upper(CAST(p21001_i0 AS VARCHAR)) FROM participants"),
                     frozenset({"p21001_i0"}))
    long = row_work(parse("SELECT upper(code) FROM diagnoses"), frozenset({"p21001_i0"}))
    assert short.steps < 100 < 10_000 <= long.steps


@pytest.mark.parametrize(("sql", "word"), [
    ("SELECT repeat('a', 100000000) FROM participants", "repeat"),
    ("SELECT range(100000000) FROM participants", "range"),
    ("SELECT generate_series(1, 100000000) FROM participants", "generate_series"),
    ("SELECT * FROM participants, unnest(range(10))", "UNNEST"),
    ("SELECT string_agg(code, ',') FROM diagnoses", "not allowed"),
    ("SELECT list_transform([1, 2], x -> x + 1) FROM participants", "lambda"),
    ("SELECT pid FROM diagnoses WHERE code SIMILAR TO '(a|aa)*b'", "SIMILAR"),
    ("SELECT pid FROM diagnoses WHERE code GLOB 'a*'", "GLOB"),
    ("SELECT regexp_full_match(code, 'a') FROM diagnoses", "regexp_full_match"),
    ("SELECT regexp_extract_all(code, 'a') FROM diagnoses", "regexp_extract_all"),
    ("SELECT regexp_split_to_array(code, 'a') FROM diagnoses", "regexp_split_to_array"),
    ("SELECT printf('%100000000d', 1) FROM participants", "printf"),
    ("SELECT format('{:>100000000}', 1) FROM participants", "format"),
    ("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT * FROM r",
     "RECURSIVE"),
    ("SELECT a.pid FROM participants a CROSS JOIN participants b", "cross join"),
    ("SELECT a.pid FROM participants a, participants b", "cross join"),
    ("SELECT a.pid FROM participants a JOIN participants b ON a.p31 < b.p31", "equality"),
    ("CREATE MACRO slow(x) AS x", "CREATE"),
    ("CREATE FUNCTION slow(x) AS x", "CREATE"),
])
def test_the_allow_list_closes_the_rest_of_the_class(sql: str, word: str) -> None:
    assert word.lower() in refused(sql).lower()
