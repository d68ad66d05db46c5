"""strongroom.yaml's engine: section — every problem named at once, no wall switched off, and
the Spark engine's translation refusals that need no cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot

from strongroom.cohort.store import StoreConfig, StoreError
from strongroom.enclave.engines import DuckDBEngine, engine_from
from strongroom.enclave.spark.cluster import SparkSettings
from strongroom.enclave.spark.dialect import spark_sql
from strongroom.errors import Invalid

SECRET = bytes(range(32))


def test_no_engine_section_is_duckdb() -> None:
    assert isinstance(engine_from(None, SECRET), DuckDBEngine)
    assert isinstance(engine_from({"kind": "duckdb"}, SECRET), DuckDBEngine)


def test_duckdb_takes_no_settings() -> None:
    with pytest.raises(ValueError, match="takes no settings"):
        engine_from({"kind": "duckdb", "master": "x"}, SECRET)


def test_each_engine_adds_its_own_seconds_to_the_answers_floors(tmp_path: Path) -> None:
    """``floor_seconds``: 0 on DuckDB, 30 on Spark (its requests take seconds whatever their
    work), or what strongroom.yaml says; nonsense is refused, naming the setting."""
    from strongroom.enclave.engines import SPARK_FLOOR_SECONDS, floor_seconds_from

    assert engine_from(None, SECRET).floor_seconds == 0.0
    assert engine_from({"kind": "duckdb", "floor_seconds": 2}, SECRET).floor_seconds == 2.0
    assert SPARK_FLOOR_SECONDS == 30.0 and floor_seconds_from(None, SPARK_FLOOR_SECONDS) == 30.0
    assert floor_seconds_from(12.5, SPARK_FLOOR_SECONDS) == 12.5
    for bad in (-1, "30", True, float("nan"), float("inf"), 3601, [30]):
        with pytest.raises(ValueError, match=r"engine: floor_seconds: is a number of seconds"):
            engine_from({"kind": "duckdb", "floor_seconds": bad}, SECRET)


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match=r"'hive'.*'duckdb'.*'spark'"):
        engine_from({"kind": "hive"}, SECRET)


def test_every_problem_in_the_spark_settings_is_named_at_once() -> None:
    with pytest.raises(ValueError) as refused:
        SparkSettings.from_config({"kind": "spark", "mastr": "spark://x:7077",
                                   "conf": {"spark.io.encryption.enabled": "false",
                                            "spark.sql.ansi.enabled": "true",
                                            "spark.executor.extraJavaOptions": "-Dx=y",
                                            "spark.executor.cores": "4"}})
    text = str(refused.value)
    for problem in ("unknown setting 'mastr'", "'master' is required", "'store' is required",
                    "spark.io.encryption.enabled", "spark.sql.ansi.enabled",
                    "spark.executor.extraJavaOptions"):
        assert problem in text
    assert "spark.executor.cores" not in text  # not a wall: allowed


def test_spark_settings_take_what_a_custodian_writes(tmp_path: Path) -> None:
    settings = SparkSettings.from_config({
        "kind": "spark", "master": "yarn", "store": str(tmp_path), "key_host": "10.0.4.12",
        "key_port": 8601, "executor_memory": "8g", "driver_memory": "6g",
        "python": "/opt/strongroom/bin/python", "conf": {"spark.executor.cores": 4}})
    assert settings.master == "yarn" and settings.store == tmp_path
    assert settings.key_port == 8601 and settings.driver_memory == "6g"
    assert settings.conf == {"spark.executor.cores": "4"}


def test_a_store_config_whose_engine_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "strongroom.yaml").write_text("store_id: s\nkey_id: k\nkey_file: null\n"
                                              "engine: spark\n")
    with pytest.raises(StoreError, match="engine: is a mapping"):
        StoreConfig.load(tmp_path)


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT substring(code, 0, 2) FROM t", "start a whole number from 1"),
    ("SELECT left(code, -1) FROM t", "n a whole number from 0"),
    ("SELECT code FROM t WHERE code LIKE pattern", "pattern written in the query"),
    ("SELECT regexp_matches(code, 'a+') FROM t", "Java's, not DuckDB's RE2"),
    ("SELECT CAST(x AS VARCHAR) FROM t", "may have a fraction"),
    ("SELECT CAST(coalesce(y, x) AS INTEGER) FROM t", "type follows from the query"),
    ("SELECT coalesce(code, x) FROM t", "over text and numbers"),
    ("SELECT date_diff('hour', d, d) FROM t", "use day, week, month, quarter or year"),
    ("SELECT strftime(d, '%j') FROM t", "of %Y, %y, %m, %d, %H, %M, %S"),
    ("SELECT extract(epoch FROM d) FROM t", "has no equivalent on the Spark engine"),
])
def test_a_construct_spark_would_answer_otherwise_is_refused_by_name(sql: str,
                                                                    reason: str) -> None:
    kinds = {"code": "string", "x": "float", "d": "date", "pattern": "string"}
    with pytest.raises(Invalid, match=reason):
        spark_sql(sqlglot.parse_one(sql, read="duckdb"), kinds)  # type: ignore[arg-type]


@pytest.mark.parametrize(("sql", "written"), [
    ("SELECT log(x) FROM t", "LOG(10, "),  # base 10 as on DuckDB (Spark's LOG(x) is ln)
    ("SELECT dayofweek(d) FROM t", "DAYOFWEEK(d) - 1"),
    ("SELECT CAST(x AS INTEGER) FROM t", "BROUND("),
    ("SELECT CAST(code AS INTEGER) FROM t", "ROUND(CAST((code) AS DECIMAL(38, 18)), 0)"),
    ("SELECT code FROM t WHERE code LIKE 'a\\%'", "ESCAPE '!'"),
    ("SELECT date_diff('month', d, d) FROM t", "MONTH(d) - MONTH(d)"),
])
def test_a_construct_is_written_with_duckdbs_meaning(sql: str, written: str) -> None:
    kinds = {"code": "string", "x": "float", "d": "date"}
    assert written in spark_sql(sqlglot.parse_one(sql, read="duckdb"), kinds)  # type: ignore[arg-type]


@pytest.mark.parametrize("separator", ["\\E(", "\\E.\\Q", "a|b", ".", "\\", "'"])
def test_a_split_separator_is_text_never_a_regex(separator: str) -> None:
    """string_split's separator reaches Spark as a Java regex: every character is escaped,
    so none (not even \\E, which would end sqlglot's \\Q quoting) is read as a pattern."""
    literal = separator.replace("'", "''")
    text = spark_sql(sqlglot.parse_one(  # type: ignore[arg-type]
        f"SELECT string_split(code, '{literal}') FROM t", read="duckdb"), {"code": "string"})
    pattern = sqlglot.parse_one(text, read="spark").find(sqlglot.exp.RegexpSplit)
    assert pattern is not None
    regex = pattern.expression.name
    assert re.fullmatch(regex, separator) and not re.fullmatch(regex, "x" + separator)
