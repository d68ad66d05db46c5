"""The SQL guard: hostile SQL is refused with its reason; researchers' ordinary SQL passes."""

from __future__ import annotations

import pytest
from sqlglot import exp

from strongroom.enclave.sqlguard import check_select, referenced_columns
from strongroom.enclave.view import ProjectSchema
from strongroom.errors import Invalid

SCHEMA = ProjectSchema({
    "participants": {"pid": "BIGINT", "p31": "BIGINT", "p34": "BIGINT",
                     "p21001_i0": "DOUBLE", "p53_i0": "DATE"},
    "diagnoses": {"pid": "BIGINT", "array_index": "INTEGER", "code": "VARCHAR",
                  "date": "DATE"},
})


def refused(sql: str) -> str:
    with pytest.raises(Invalid) as caught:
        check_select(sql, SCHEMA)
    return " | ".join(caught.value.reasons)


# (hostile SQL, a word the reason must contain)
HOSTILE = [
    # files, network, extensions, settings
    ("COPY participants TO '/tmp/out.csv'", "COPY"),
    ("COPY (SELECT * FROM participants) TO '/tmp/out.parquet' (FORMAT parquet)", "COPY"),
    ("ATTACH '/tmp/other.db' AS other", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
    ("SELECT * FROM read_parquet('/data/cohort.parquet')", "read_parquet"),
    ("SELECT * FROM read_json('/tmp/x.json')", "read_json"),
    ("SELECT * FROM read_text('/etc/hostname')", "read_text"),
    ("SELECT * FROM glob('/etc/*')", "glob"),
    ("SELECT * FROM sqlite_scan('/tmp/x.db', 't')", "sqlite_scan"),
    ("SELECT * FROM 'cohort.csv'", "file path or URL"),
    ('SELECT * FROM "cohort.parquet"', "file path or URL"),
    ("SELECT * FROM 'https://example.org/x.parquet'", "file path or URL"),
    ("SELECT * FROM 's3://bucket/x.parquet'", "file path or URL"),
    ("PRAGMA database_list", "PRAGMA"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD"),
    ("FORCE INSTALL httpfs", "FORCE"),
    ("SET enable_external_access = true", "SET"),
    ("RESET memory_limit", "RESET"),
    ("SELECT getenv('HOME')", "getenv"),
    ("SELECT current_setting('memory_limit')", "current_setting"),
    ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
    ("SELECT * FROM duckdb_tables()", "duckdb_tables"),
    ("SELECT * FROM duckdb_tables", "no table"),
    ("SELECT * FROM information_schema.tables", "schema or database"),
    ("SELECT * FROM memory.main.participants", "schema or database"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT query('SELECT 1')", "query"),
    ("SELECT * FROM query_table('participants')", "query_table"),
    ("EXPORT DATABASE '/tmp/dump'", "EXPORT"),
    ("IMPORT DATABASE '/tmp/dump'", "IMPORT"),
    ("CALL pragma_version()", "CALL"),
    ("CHECKPOINT", "CHECKPOINT"),
    ("DESCRIBE participants", "DESCRIBE"),
    ("SHOW TABLES", "SHOW"),
    # writing
    ("CREATE TABLE leak AS SELECT * FROM participants", "CREATE"),
    ("INSERT INTO participants VALUES (1, 1, 1, 1, NULL)", "INSERT"),
    ("UPDATE participants SET p31 = 0", "UPDATE"),
    ("DELETE FROM participants", "DELETE"),
    ("DROP TABLE participants", "DROP"),
    # runaway queries
    ("WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT * FROM t",
     "RECURSIVE"),
    ("WITH RECURSIVE bomb AS (SELECT pid FROM participants UNION ALL "
     "SELECT b.pid FROM bomb b JOIN participants p ON b.pid = p.pid) SELECT * FROM bomb",
     "RECURSIVE"),
    ("SELECT * FROM participants a, participants b, participants c", "cross join"),
    ("SELECT * FROM participants a CROSS JOIN participants b", "cross join"),
    ("SELECT * FROM participants a JOIN participants b ON true", "equality"),
    ("SELECT * FROM participants a JOIN participants b ON 1 = 1", "equality"),
    ("SELECT * FROM participants a JOIN participants b ON a.pid = a.pid", "equality"),
    ("SELECT * FROM participants a JOIN participants b ON a.pid = b.pid OR true", "equality"),
    ("SELECT * FROM participants a JOIN participants b ON a.p34 > b.p34", "equality"),
    ("SELECT * FROM participants NATURAL JOIN diagnoses", "NATURAL"),
    ("SELECT * FROM participants POSITIONAL JOIN diagnoses", "POSITIONAL"),
    ("SELECT * FROM participants a ASOF JOIN diagnoses d ON a.p53_i0 >= d.date", "ASOF"),
    ("SELECT unnest(range(1000000000))", "range"),
    ("SELECT * FROM range(1000000000)", "range"),
    ("SELECT * FROM generate_series(1, 1000000000)", "generate_series"),
    ("SELECT repeat('x', 1000000000)", "repeat"),
    # identity
    ("SELECT eid FROM participants", "eid"),
    ("SELECT pid AS eid FROM participants", "eid"),
    ("WITH eid AS (SELECT pid FROM participants) SELECT * FROM eid", "eid"),
    # ungranted
    ("SELECT p4080_i0_a0 FROM participants", "p4080_i0_a0"),
    ("SELECT participants.p4080_i0_a0 FROM participants", "p4080_i0_a0"),
    ("SELECT d.nope FROM diagnoses d", "nope"),
    ("SELECT * FROM deaths", "deaths"),
    ("SELECT s.p4080_i0_a0 FROM (SELECT pid FROM participants) s", "p4080_i0_a0"),
    # everything else not listed
    ("SELECT $1", "parameters"),
    ("SELECT list_transform([1, 2], x -> x + 1)", "lambda"),
    ("SELECT * FROM participants TABLESAMPLE 10%", "TABLESAMPLE"),
    ("SELECT * FROM (VALUES (1)) v(a)", "VALUES"),
    ("SELECT * FROM unnest([1, 2])", "UNNEST"),
    ("SELECT random()", "rand"),
    ("SELECT hash(pid) FROM participants", "hash"),
    ("SELECT version()", "version"),
    ("SELECT columns('p.*') FROM participants", "COLUMNS"),
    ("PIVOT participants ON p31 USING count(*)", "PIVOT"),
    ("SELECT pid FROM participants p, LATERAL (SELECT 1)", "LATERAL"),
    ("SELECT nextval('s')", "nextval"),
    ("", "empty"),
    ("SELEC pid FROM participants", "parse"),
]


@pytest.mark.parametrize(("sql", "word"), HOSTILE)
def test_hostile_sql_is_refused_with_its_reason(sql: str, word: str) -> None:
    assert word.lower() in refused(sql).lower()


SNEAKY = [
    # case changes, quoting, comments and whitespace around a forbidden function or statement
    ("SeLeCt * FrOm ReAd_CsV('/etc/passwd')", "read_csv"),
    ('SELECT * FROM "read_csv"(\'/etc/passwd\')', "read_csv"),
    ("SELECT /* harmless */ * FROM -- still harmless\n read_csv('/etc/passwd')", "read_csv"),
    ("/* leading comment */ COPY participants TO '/tmp/x.csv'", "COPY"),
    ("-- comment\nATTACH '/tmp/x.db'", "ATTACH"),
    ("  \n\tcopy participants to '/tmp/x.csv'", "COPY"),
    ('SELECT "EID" FROM participants', "eid"),
    ('SELECT "eid" FROM participants', "eid"),
    ("SELECT EiD FROM participants", "eid"),
    ("SELECT gEtEnV('HOME')", "getenv"),
    # hidden in nested subqueries, CTEs, unions and expressions
    ("SELECT pid FROM participants WHERE pid IN "
     "(SELECT pid FROM (SELECT * FROM read_csv('/etc/passwd')))", "read_csv"),
    ("WITH a AS (SELECT * FROM read_parquet('/x.parquet')) SELECT * FROM a", "read_parquet"),
    ("SELECT pid FROM participants UNION ALL SELECT * FROM read_csv('/x')", "read_csv"),
    ("SELECT pid, (SELECT getenv('HOME')) AS h FROM participants", "getenv"),
    ("SELECT CASE WHEN p31 = 1 THEN current_setting('threads') END FROM participants",
     "current_setting"),
    ("SELECT * FROM participants WHERE pid IN (SELECT a.pid FROM participants a, "
     "participants b)", "cross join"),
    ("SELECT * FROM (SELECT * FROM 'x.csv') s", "file path"),
    # names qualification would read as something other than a granted column
    ("SELECT participants FROM participants", "whole table row"),
    ('SELECT p FROM participants p', "whole table row"),
    ("SELECT p31.x FROM participants", "struct field"),
    ("SELECT p.pid FROM participants p JOIN diagnoses d ON d.pid = p.pid.x", "too many parts"),
    ("SELECT CAST(p31 AS p4080_i0_a0) FROM participants", "not a DuckDB type"),
    # several statements
    ("SELECT 1; SELECT 2", "one statement"),
    ("SELECT pid FROM participants; COPY participants TO '/tmp/x.csv'", "COPY"),
    ("SELECT pid FROM participants; DROP TABLE participants;", "DROP"),
    ("SELECT 1;;SELECT 2", "one statement"),
]


@pytest.mark.parametrize(("sql", "word"), SNEAKY)
def test_sneaky_variants_are_refused(sql: str, word: str) -> None:
    assert word.lower() in refused(sql).lower()


def test_a_refusal_says_what_is_allowed() -> None:
    reason = refused("SELECT getenv('HOME')")
    assert "use plain arithmetic" in reason
    reason = refused("COPY participants TO 'x.csv'")
    assert "only a single SELECT" in reason
    assert "there is no table 'deaths'" in refused("SELECT * FROM deaths")
    assert "diagnoses, participants" in refused("SELECT * FROM deaths")


def test_every_reason_is_given_at_once() -> None:
    reasons = refused("SELECT getenv('x'), random() FROM read_csv('y')")
    assert "getenv" in reasons and "rand" in reasons and "read_csv" in reasons


ORDINARY = [
    "SELECT * FROM participants",
    "FROM participants",
    "SELECT pid, p31, p21001_i0 FROM participants WHERE p21001_i0 > 30",
    "SELECT pid, p31 AS sex, p34 FROM participants ORDER BY p34 DESC LIMIT 10",
    "SELECT * EXCLUDE (p53_i0) FROM participants",
    "SELECT p.pid, count(*) AS n FROM participants p JOIN diagnoses d ON p.pid = d.pid "
    "WHERE d.code LIKE 'I2%' GROUP BY p.pid HAVING count(*) > 1",
    "WITH cases AS (SELECT DISTINCT pid FROM diagnoses WHERE code LIKE 'E11%') "
    "SELECT p.pid, CASE WHEN c.pid IS NULL THEN 0 ELSE 1 END AS diabetic "
    "FROM participants p LEFT JOIN cases c ON p.pid = c.pid",
    "SELECT p.pid, d.code FROM participants p JOIN diagnoses d USING (pid)",
    "SELECT pid, year(p53_i0) - p34 AS age, date_diff('day', p53_i0, DATE '2020-01-01') AS d, "
    "round(p21001_i0, 1) AS bmi, extract(month FROM p53_i0) AS m, "
    "date_part('year', p53_i0) AS y, strftime(p53_i0, '%Y') AS s FROM participants",
    "SELECT pid, coalesce(p21001_i0, 0) AS b, nullif(p31, 0), greatest(p34, 1950), "
    "least(p34, 1960), CAST(p34 AS VARCHAR) AS t, TRY_CAST('x' AS INTEGER) AS n, "
    "p34::DOUBLE AS f, abs(p21001_i0 - 25), sqrt(p21001_i0), ln(p21001_i0), "
    "p34 % 10, p34 // 10, -p34 FROM participants",
    "SELECT pid, upper(code), lower(code), substring(code, 1, 3), length(code), "
    "left(code, 1), code || 'x', trim(code), replace(code, '.', ''), "
    "starts_with(code, 'I'), regexp_matches(code, '^I2[0-5]') FROM diagnoses",
    "SELECT pid, list(code) AS codes, list_contains(list(code), 'I21') AS mi, "
    "len(list(code)) AS n FROM diagnoses GROUP BY pid",
    "SELECT pid, row_number() OVER (PARTITION BY pid ORDER BY date) AS k, "
    "lag(date) OVER (PARTITION BY pid ORDER BY date) AS before FROM diagnoses",
    "SELECT pid FROM diagnoses QUALIFY row_number() OVER (PARTITION BY pid ORDER BY date) = 1",
    "SELECT pid FROM participants WHERE pid IN (SELECT pid FROM diagnoses WHERE code = 'I21')",
    "SELECT pid FROM participants p WHERE EXISTS "
    "(SELECT 1 FROM diagnoses d WHERE d.pid = p.pid AND d.date > p.p53_i0)",
    "SELECT pid FROM participants UNION SELECT pid FROM diagnoses",
    "SELECT pid FROM participants EXCEPT SELECT pid FROM diagnoses",
    "SELECT pid FROM participants WHERE p31 IN (0, 1) AND p21001_i0 BETWEEN 18 AND 40 "
    "AND p53_i0 IS NOT NULL AND NOT p34 < 1940",
    "SELECT pid, avg(p21001_i0) OVER (PARTITION BY p31) AS m, median(p21001_i0) "
    "OVER (PARTITION BY p31) AS md FROM participants",
    "SELECT p31, count(*) FILTER (WHERE p34 > 1950) AS young, stddev(p21001_i0), "
    "quantile_cont(p21001_i0, 0.9), mode(p34), mean(p21001_i0) FROM participants GROUP BY p31",
    'SELECT "participants"."pid", "P31" FROM "participants"',
    "SELECT pid, p53_i0 + INTERVAL 1 DAY AS next_day FROM participants",
    "SELECT pid, p34 AS eidolon FROM participants",  # a name merely containing "eid"
    "SELECT pid FROM participants WHERE p34 = (SELECT max(p34) FROM participants)",
    "SELECT a.pid FROM participants a JOIN participants b ON a.p31 = b.p31 AND a.p34 < b.p34",
]


@pytest.mark.parametrize("sql", ORDINARY)
def test_ordinary_researcher_sql_passes(sql: str) -> None:
    checked = check_select(sql, SCHEMA)
    assert isinstance(checked, exp.Select | exp.SetOperation)
    # the checked tree regenerates as SQL that the guard accepts again
    check_select(checked.sql(dialect="duckdb"), SCHEMA)


def test_star_expands_to_granted_columns_only() -> None:
    checked = check_select("SELECT * FROM participants", SCHEMA)
    assert checked.named_selects == list(SCHEMA.tables["participants"])


def test_unnamed_outputs_are_named_by_their_text() -> None:
    checked = check_select("SELECT p31, count(*) FROM participants GROUP BY p31", SCHEMA)
    assert checked.named_selects == ["p31", "count(*)"]


def test_referenced_columns_lists_what_the_query_reads() -> None:
    checked = check_select(
        "SELECT p.p31, count(*) FROM participants p JOIN diagnoses d ON p.pid = d.pid "
        "WHERE d.code LIKE 'I%' GROUP BY p.p31", SCHEMA)
    assert referenced_columns(checked) == {"participants": {"pid", "p31"},
                                           "diagnoses": {"pid", "code"}}


def test_very_long_sql_is_refused() -> None:
    assert "longer than" in refused("SELECT " + " + ".join(["p34"] * 30_000)
                                    + " FROM participants")


def test_sql_too_deep_to_check_quickly_is_refused() -> None:
    # checking is quadratic in depth inside sqlglot: a 15,000-term sum would take minutes
    chain = "SELECT " + " + ".join(["p34"] * 15_000) + " AS x FROM participants"
    assert "too deeply nested" in refused(chain)
    parens = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    assert "nested too deeply" in refused(parens)


def test_a_long_list_of_ids_is_fine() -> None:
    ids = ", ".join(str(1_000_000 + i) for i in range(5000))
    check_select(f"SELECT pid FROM participants WHERE pid IN ({ids})", SCHEMA)


def test_a_checked_tree_kept_for_reuse_is_bound_to_its_text_and_its_grant() -> None:
    """The checked tree is reused only for the same text over the same grant, its columns in
    the same order; a caller rewriting the tree it got cannot change the next caller's."""
    sql = "SELECT * FROM participants WHERE p34 > 1950"
    first = check_select(sql, SCHEMA)
    first.set("where", None)  # a caller rewrites its own tree
    again = check_select(sql, SCHEMA)
    assert again.args.get("where") is not None and again is not first
    # the same text over a narrower grant is checked afresh: refused, not served from before
    narrow = ProjectSchema({"participants": {"pid": "BIGINT", "p31": "BIGINT"}})
    with pytest.raises(Invalid, match="p34"):
        check_select(sql, narrow)
    # a grant of the same columns in another order expands * in that order
    turned = ProjectSchema({"participants": dict(reversed(list(
        SCHEMA.tables["participants"].items())))})
    assert check_select("SELECT * FROM participants", turned).named_selects == \
        list(turned.tables["participants"])
