"""Which columns carry a coding when the definition joins a subquery (issue 55: the how-to's
study population joins its deaths as a subquery, and its survival and Cox tables came out
with smoking 0/1/2 and ``sex=1`` where the dictionary's words were promised)."""

from __future__ import annotations

import pytest

from strongroom.cohort.dictionary import Dictionary
from strongroom.enclave.aggregate import key_names
from strongroom.enclave.codings import coded_columns, value_labels
from strongroom.enclave.sqlguard import DIALECT, parse, shared
from strongroom.outputs.tidy import term_parts

# docs/how-to/run-a-study.md, step 1, as written
STUDY = """
SELECT p.pid, p.p31 AS sex, 2008 - p.p34 AS age, p.p21001_i0 AS bmi,
       p.p189 AS deprivation, p.p20116_i0 AS smoking,
       CASE WHEN p.p2443_i0 = 1 THEN 1 ELSE 0 END AS diabetes,
       least((coalesce(d.died, DATE '2023-01-01') - p.p53_i0) / 365.25, 12) AS years,
       CASE WHEN d.died IS NOT NULL AND d.died - p.p53_i0 <= 12 * 365.25 THEN 1 ELSE 0 END
         AS died,
       CASE WHEN d.died IS NULL OR d.died - p.p53_i0 > 12 * 365.25 THEN 0
            WHEN d.cause LIKE 'I%' THEN 1 ELSE 2 END AS cause
FROM participants p
LEFT JOIN (SELECT pid, min(date) AS died, arg_min(cause, date) AS cause FROM deaths
           GROUP BY pid) d ON p.pid = d.pid
WHERE p.p21001_i0 IS NOT NULL AND p.p189 IS NOT NULL AND p.p20116_i0 >= 0
  AND (d.died IS NULL OR d.died > p.p53_i0)
"""


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT p.pid, p.p31 AS sex, d.died FROM participants p "
     "LEFT JOIN (SELECT pid, min(date) AS died FROM deaths GROUP BY pid) d ON p.pid = d.pid",
     {"sex": 31}),
    # a subquery's column that passes a field through carries it out
    ("SELECT q.pid, q.s AS sex FROM (SELECT pid, p31 AS s FROM participants) q", {"sex": 31}),
    ("SELECT q.pid, s FROM (SELECT pid, p31 + 1 AS s FROM participants) q", {}),
    # an unqualified name the subquery does not give comes from the plain table
    ("SELECT p.pid, p20116_i0 AS smoking FROM participants p "
     "JOIN (SELECT pid FROM deaths) d ON p.pid = d.pid", {"smoking": 20116}),
    ("SELECT q.* FROM (SELECT * FROM base) q", {}),
    ("SELECT * FROM (SELECT * FROM base) q", {"sex": 31}),
    # a subquery with no alias, or a set operation, is not followed
    ("SELECT p.p31 AS sex FROM participants p JOIN (SELECT pid FROM deaths UNION "
     "SELECT pid FROM deaths) d ON p.pid = d.pid", {}),
])
def test_a_subquery_beside_a_table_leaves_the_tables_codings(
        dictionary: Dictionary, sql: str, expected: dict[str, int]) -> None:
    assert coded_columns(sql, dictionary, {"base": {"sex": 31}}) == expected


def test_the_how_tos_study_population_labels_sex_and_smoking(dictionary: Dictionary) -> None:
    found = coded_columns(STUDY, dictionary, {})
    assert found == {"sex": 31, "smoking": 20116}  # diabetes, died, cause: computed
    labels = value_labels(found, dictionary)
    assert term_parts("sex=1", labels) == ("sex", "Male")
    assert term_parts("smoking=2", labels) == ("smoking", "Current")


AGGREGATE = ("SELECT p31 AS sex, CASE WHEN p21001_i0 >= 30 THEN 1 ELSE 0 END AS obese, "
             "count(*) AS n, avg(p21001_i0) AS bmi FROM participants "
             "GROUP BY p31, CASE WHEN p21001_i0 >= 30 THEN 1 ELSE 0 END")


@pytest.mark.parametrize("sql", [STUDY, AGGREGATE, "SELECT q.* FROM (SELECT * FROM base) q"])
def test_naming_an_output_reads_the_shared_tree_and_leaves_it_as_parsed(
        dictionary: Dictionary, sql: str) -> None:
    """The columns' codes and the group keys' names are read from the one tree parsed for the
    text (no copy each time an output is listed): reading it changes nothing in it."""
    tree = shared(sql)
    before = tree.sql(DIALECT), repr(tree)
    coded_columns(sql, dictionary, {"base": {"sex": 31}})
    key_names(sql)
    assert shared(sql) is tree
    assert (tree.sql(DIALECT), repr(tree)) == before
    assert parse(sql) is not tree and parse(sql) == tree  # a copy for those who change it


def test_the_group_keys_names_are_read_from_the_text() -> None:
    assert key_names(AGGREGATE) == ["sex", "obese"]
    assert key_names(STUDY) is None  # not an aggregate query
    assert key_names("DROP TABLE participants") is None
