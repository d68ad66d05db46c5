"""The SQL side of the enclave, end to end on a small synthetic cohort: the project view, the
locked DuckDB connection, dataset definitions (stored sealed) and aggregate SQL."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.model import Cohort, parse_column_name
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave import aggregate, definitions
from strongroom.enclave.aggregate import aggregate_sql
from strongroom.enclave.engine import Limits, locked_connection, release, run
from strongroom.enclave.results import CellKind
from strongroom.enclave.view import ProjectSchema, project_view, schema_of
from strongroom.errors import DataRefusal, Invalid, NotFound
from tests.leaks import binary_leaks, stored_bytes, text_leaks

# sex, birth year, assessment centre, BMI; hospital diagnoses; the date (only) of death
GRANT = (31, 34, 54, 21001, 41270, 41280, 40000)
LIMITS = Limits(seconds=20.0)


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return synthesise(2000, 11)


@pytest.fixture(scope="module")
def pseudonyms(cohort: Cohort) -> pl.DataFrame:
    """Random 7-digit IDs for 95% of the cohort: the rest have none and must not appear."""
    rng = np.random.default_rng(5)
    eids = cohort.participants["eid"].to_numpy()
    chosen = rng.choice(eids, size=int(len(eids) * 0.95), replace=False)
    pids = 1_000_000 + rng.choice(9_000_000, size=len(chosen), replace=False)
    return pl.DataFrame({"eid": chosen, "pid": pids})


@pytest.fixture(scope="module")
def view(cohort: Cohort, pseudonyms: pl.DataFrame, dictionary: Dictionary
         ) -> dict[str, pl.DataFrame]:
    return project_view(cohort, pseudonyms, GRANT, dictionary)


@pytest.fixture(scope="module")
def schema(view: dict[str, pl.DataFrame]) -> ProjectSchema:
    return schema_of(view)


# -- the view -------------------------------------------------------------------------------


def test_view_holds_pseudonyms_and_granted_columns_only(
    view: dict[str, pl.DataFrame], cohort: Cohort, pseudonyms: pl.DataFrame,
    dictionary: Dictionary,
) -> None:
    assert all("eid" not in frame.columns for frame in view.values())
    participants = view["participants"]
    granted = [c for c in cohort.participants.columns
               if c != "eid" and parse_column_name(c, dictionary).field_id in GRANT]
    assert participants.columns == ["pid", *granted]
    assert "p21001_i0" in granted and "p54_i0" in granted
    assert participants.height == pseudonyms.height < cohort.n_participants
    assert set(participants["pid"]) == set(pseudonyms["pid"])
    assert participants["pid"].is_sorted()  # not the cohort's eid order
    # no master ID value anywhere in the view
    eids = cohort.participants["eid"].implode()
    assert not any(frame[c].cast(pl.Int64, strict=False).is_in(eids).any()
                   for frame in view.values() for c in frame.columns
                   if frame[c].dtype.is_integer())


def test_view_values_are_the_cohorts(
    view: dict[str, pl.DataFrame], cohort: Cohort, pseudonyms: pl.DataFrame
) -> None:
    expected = (cohort.participants.join(pseudonyms, on="eid")
                .select("pid", "p34", "p21001_i0").sort("pid"))
    assert view["participants"].select("pid", "p34", "p21001_i0").equals(expected)


def test_event_tables_are_limited_to_the_grant(
    view: dict[str, pl.DataFrame], cohort: Cohort, pseudonyms: pl.DataFrame
) -> None:
    assert set(view) == {"participants", "diagnoses", "deaths"}  # no operations, no cancers
    assert view["diagnoses"].columns == ["pid", "array_index", "code", "date"]
    assert view["deaths"].columns == ["pid", "instance", "date"]  # cause and age not granted
    inside = cohort.events["diagnoses"].join(pseudonyms, on="eid", how="semi")
    assert view["diagnoses"].height == inside.height < cohort.events["diagnoses"].height


def test_a_granted_event_table_the_cohort_lacks_is_empty_with_its_schema(
    cohort: Cohort, pseudonyms: pl.DataFrame, dictionary: Dictionary
) -> None:
    without = Cohort(cohort.participants,
                     {k: v for k, v in cohort.events.items() if k != "operations"})
    view = project_view(without, pseudonyms, (31, 41272), dictionary)
    assert view["operations"].height == 0
    assert view["operations"].schema == pl.Schema(
        {"pid": pl.Int64, "array_index": pl.Int32, "code": pl.String})


def test_a_grant_of_unknown_fields_is_refused(
    cohort: Cohort, pseudonyms: pl.DataFrame, dictionary: Dictionary
) -> None:
    with pytest.raises(Invalid, match="999999"):
        project_view(cohort, pseudonyms, (31, 999999), dictionary)


@pytest.mark.parametrize("sql", [
    "SELECT pid, p4080_i0_a0 FROM participants",  # a field not granted
    "SELECT pid, cause FROM deaths",  # a column of a granted table, not granted
    "SELECT pid FROM operations",  # a table with no granted field
    "SELECT pid, eid FROM participants",
])
def test_ungranted_columns_cannot_be_reached(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, sql: str
) -> None:
    with pytest.raises(Invalid):
        definitions.build(view, schema, "probe", sql, LIMITS)


# -- the locked connection ------------------------------------------------------------------


def test_a_locked_connection_cannot_be_unlocked(view: dict[str, pl.DataFrame]) -> None:
    con = locked_connection(view, LIMITS)
    for statement in ("SET enable_external_access = true", "SET lock_configuration = false",
                      "SET memory_limit = '64GB'", "SET threads = 64",
                      "SET temp_directory = '/tmp'", "RESET enable_external_access",
                      "SET autoload_known_extensions = true"):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
    con.close()


def test_files_extensions_and_settings_are_unreachable_even_past_the_guard(
    view: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    """Defence in depth: raw SQL straight into the locked connection, no guard in front."""
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    con = locked_connection(view, LIMITS)
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"SELECT * FROM '{secret}'",
                f"SELECT * FROM read_text('{secret}')", f"SELECT * FROM glob('{tmp_path}/*')"):
        with pytest.raises(Invalid):
            run(con, sql, LIMITS)
    out = tmp_path / "out.csv"
    for statement in (f"COPY participants TO '{out}'", f"ATTACH '{tmp_path / 'x.db'}' AS x",
                      "INSTALL httpfs", "LOAD httpfs", f"EXPORT DATABASE '{tmp_path / 'dump'}'"):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.csv"]
    # nor Python objects: DuckDB would otherwise read a variable of the calling frame by name
    cohort_in_memory = pl.DataFrame({"eid": [1_234_567]})
    with pytest.raises(Invalid, match="cohort_in_memory does not exist"):
        run(con, "SELECT * FROM cohort_in_memory", LIMITS)
    assert cohort_in_memory.height == 1
    con.close()


def test_the_tables_are_copies_not_views_over_python_objects(
    view: dict[str, pl.DataFrame]
) -> None:
    con = locked_connection(view, LIMITS)
    kinds = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
    assert [k[0] for k in kinds] == sorted(view)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (0,)
    con.close()


def test_connections_never_see_each_others_tables(view: dict[str, pl.DataFrame]) -> None:
    """Projects share the locked database, never tables: each connection has its own."""
    mine = locked_connection({"participants": view["participants"]}, LIMITS)
    other = locked_connection({"other_project": view["participants"].head(5)}, LIMITS)
    assert run(other, "SELECT count(*) AS n FROM other_project", LIMITS)["n"][0] == 5
    with pytest.raises(Invalid, match="other_project does not exist"):
        run(mine, "SELECT * FROM other_project", LIMITS)
    with pytest.raises(Invalid, match="participants does not exist"):
        run(other, "SELECT * FROM participants", LIMITS)
    release(other)
    later = locked_connection({}, LIMITS)
    with pytest.raises(Invalid, match="other_project does not exist"):
        run(later, "SELECT * FROM other_project", LIMITS)  # gone with its connection
    release(mine)
    release(later)


def test_the_time_limit_stops_a_runaway_query() -> None:
    # within the size bound (one row per record), but each row builds and rewrites a text of
    # 10,000 characters: two billion characters in all
    pids = np.arange(20) + 1_000_000
    big = {"participants": pl.DataFrame({"pid": pids}),
           "events": pl.DataFrame({"pid": np.repeat(pids, 10_000),
                                   "value": np.arange(200_000, dtype=np.float64)})}
    sql = ("SELECT pid, length(regexp_replace(lpad(CAST(value AS VARCHAR), 10000, 'ab'), 'a', "
           "'b', 'g')) AS n FROM events")
    with pytest.raises(DataRefusal, match=r"the time limit of 0.2 s"):
        definitions.build(big, schema_of(big), "slow", sql, Limits(seconds=0.2))


def test_a_query_that_could_grow_past_the_row_limit_is_refused_before_it_runs(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    # the bound counts every participant as if they all matched: refused whatever the data
    # (enclave/sizes.py), so the refusal says nothing about anyone's value
    largest = max(view, key=lambda name: view[name].height)
    thrice = " UNION ALL ".join([f"SELECT pid FROM {largest}"] * 3)
    for sql in (thrice, thrice + " WHERE pid IS NULL",
                "SELECT a.pid FROM diagnoses a JOIN diagnoses b ON a.pid = b.pid "
                "WHERE a.code = 'none such'"):
        with pytest.raises(Invalid, match="could hold up to") as refused:
            definitions.build(view, schema, "big", sql, Limits(max_rows=100))
        assert not isinstance(refused.value, DataRefusal)
    # a definition may always be as large as the tables it reads
    made, _ = definitions.build(view, schema, "all", "SELECT pid FROM participants",
                                Limits(max_rows=1))
    assert made.rows == view["participants"].height


def test_the_memory_limit_stops_a_greedy_query() -> None:
    # within the size bound (one row per participant), but each holds a list of 10,000
    # texts of 10,000 characters: a gigabyte each
    pids = np.arange(20) + 1_000_000
    big = {"participants": pl.DataFrame({"pid": pids}),
           "events": pl.DataFrame({"pid": np.repeat(pids, 5_000),
                                   "value": np.arange(100_000, dtype=np.float64)})}
    sql = "SELECT pid, list(lpad('', 10000, 'x')) AS texts FROM events GROUP BY pid"
    with pytest.raises(DataRefusal, match="the memory limit of 8MB"):
        definitions.build(big, schema_of(big), "greedy", sql, Limits(memory="8MB"))


def test_a_value_that_cannot_be_converted_is_null_not_an_error(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    # an error here would say "someone's code is not a number": the cast becomes TRY_CAST
    _, frame = definitions.build(view, schema, "bad", "SELECT pid, CAST(code AS INTEGER) AS c "
                                 "FROM diagnoses", LIMITS)
    assert frame["c"].null_count() == frame.height


# Each expression would fail on some participants' values and not on others', so whether the
# query ran would answer a question about the data; under the guard none of them can fail.
DATA_ERRORS = [
    "CAST(code AS INTEGER)",
    "code = 5",  # an implicit cast of text to a number
    "strptime(code, '%Y')",
    "make_date(p34, CAST(p54_i0 AS INTEGER), 1)",
    "p34 // (p31 - p31)",
    "p34 % (p31 - p31)",
    "CAST(p34 AS BIGINT) * 9223372036854775807",
    "date_add(date, INTERVAL (p34 * 1000000) DAY)",
    "CASE WHEN p21001_i0 > 30 THEN CAST('x' AS INTEGER) ELSE 1 END",
    "abs(CAST(p34 - 1000000000 AS INTEGER) * 3)",
]


@pytest.mark.parametrize("expression", DATA_ERRORS)
def test_a_participant_s_value_cannot_make_a_query_fail(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, expression: str
) -> None:
    sql = (f"SELECT p.pid, {expression} AS x FROM participants p "
           "JOIN diagnoses d ON d.pid = p.pid")
    definitions.build(view, schema, "probe", sql, LIMITS)  # runs: no error to observe
    aggregate = (f"SELECT p.p31, count(*) AS n FROM participants p JOIN diagnoses d "
                 f"ON d.pid = p.pid WHERE {expression} IS NULL GROUP BY p.p31")
    aggregate_sql(view, schema, aggregate, LIMITS, {"sql": aggregate})


@pytest.mark.parametrize("condition", [
    "WHERE d.code", "WHERE NOT d.code", "WHERE p.p31 = 1 AND (d.code OR p.p31 = 0)",
    "WHERE CASE WHEN d.code THEN true ELSE false END", "WHERE 'x'",
])
def test_text_standing_alone_as_a_condition_cannot_make_a_query_fail(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, condition: str
) -> None:
    # DuckDB casts a condition's text to BOOLEAN, which fails on 'I21…' and not on 'true':
    # whether the query ran would say whether anyone's code is a truth value
    sql = (f"SELECT p.p31, count(*) AS n FROM participants p JOIN diagnoses d "
           f"ON d.pid = p.pid {condition} GROUP BY p.p31")
    aggregate_sql(view, schema, sql, LIMITS, {"sql": sql})


# -- definitions ----------------------------------------------------------------------------

OBESE = ("SELECT p.pid, p.p31 AS sex, p.p21001_i0 AS bmi, count(d.pid) AS diagnoses "
         "FROM participants p LEFT JOIN diagnoses d ON p.pid = d.pid "
         "WHERE p.p21001_i0 >= 30 GROUP BY p.pid, p.p31, p.p21001_i0")


def test_a_definition_is_built_over_the_view(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    definition, frame = definitions.build(view, schema, "obese", OBESE, LIMITS)
    reference = view["participants"].filter(pl.col("p21001_i0") >= 30)
    assert set(frame["pid"]) == set(reference["pid"])
    assert definition.columns == {"pid": "BIGINT", "sex": "BIGINT", "bmi": "DOUBLE",
                                  "diagnoses": "BIGINT"}
    assert definition.rows == definition.participants == reference.height
    assert definition.size_ok
    public = definition.public()
    assert set(public) == {"name", "sql", "created_at", "columns", "size_ok"}  # no sizes


def test_a_definition_round_trips_sealed(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, tmp_path: Path
) -> None:
    definition, frame = definitions.build(view, schema, "obese", OBESE, LIMITS)
    key = MasterKey.generate()
    where = tmp_path / "definitions"
    definitions.save(where, key, "project:p-1", definition, frame)
    loaded, back = definitions.load(where, key, "project:p-1", "obese")
    assert loaded == definition
    assert back.equals(frame)
    pids = frame["pid"].to_list()
    bmis = frame["bmi"].drop_nulls().to_list()
    on_disk = stored_bytes(where)
    # the test can fail: the plain Parquet holds the values in its binary encoding
    import io
    plain = io.BytesIO()
    frame.write_parquet(plain, compression="zstd")
    assert binary_leaks(plain.getvalue(), ints=pids[:50])
    assert not binary_leaks(on_disk, ints=pids, floats=bmis)
    assert not text_leaks(on_disk, pids + bmis)
    meta = (where / "obese.json").read_text()
    assert not text_leaks(meta.encode(), pids + bmis)


def test_a_sealed_definition_refuses_the_wrong_key_or_project(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, tmp_path: Path
) -> None:
    definition, frame = definitions.build(view, schema, "obese", OBESE, LIMITS)
    key = MasterKey.generate()
    definitions.save(tmp_path, key, "project:p-1", definition, frame)
    with pytest.raises(Invalid, match="could not be decrypted"):
        definitions.load(tmp_path, MasterKey.generate(), "project:p-1", "obese")
    with pytest.raises(Invalid, match="could not be decrypted"):
        definitions.load(tmp_path, key, "project:p-2", "obese")
    (tmp_path / "obese.parquet.srenc").rename(tmp_path / "other.parquet.srenc")
    (tmp_path / "obese.json").rename(tmp_path / "other.json")
    with pytest.raises(Invalid, match="could not be decrypted"):  # bound to its name too
        definitions.load(tmp_path, key, "project:p-1", "other")


def test_definitions_are_listed_and_dropped(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, tmp_path: Path
) -> None:
    key = MasterKey.generate()
    for name in ("women", "men"):
        sex = 0 if name == "women" else 1
        d, f = definitions.build(view, schema, name,
                                 f"SELECT pid FROM participants WHERE p31 = {sex}", LIMITS)
        definitions.save(tmp_path, key, "project:p-1", d, f)
    assert [d.name for d in definitions.list_(tmp_path)] == ["men", "women"]
    before = definitions.stamp(tmp_path, "men")
    assert before > 0 and definitions.stamp(tmp_path, "nobody") == 0
    d, f = definitions.build(view, schema, "men", "SELECT pid FROM participants WHERE p31 = 1 "
                             "AND p34 > 1950", LIMITS)
    definitions.save(tmp_path, key, "project:p-1", d, f)
    assert definitions.stamp(tmp_path, "men") != before  # saved again: caches see the change
    definitions.drop(tmp_path, "men")
    assert [d.name for d in definitions.list_(tmp_path)] == ["women"]
    with pytest.raises(NotFound):
        definitions.load(tmp_path, key, "project:p-1", "men")
    with pytest.raises(NotFound):
        definitions.drop(tmp_path, "men")
    assert definitions.list_(tmp_path / "nothing-here") == []


def test_a_staged_definition_exists_for_no_reader_until_published(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, tmp_path: Path
) -> None:
    """Guarantee: a definition is listed, loaded or stamped only once published (its answer's
    moment, Outputs.define), and one discarded leaves nothing behind."""
    key = MasterKey.generate()
    d, f = definitions.build(view, schema, "men", "SELECT pid FROM participants WHERE p31 = 1",
                             LIMITS)
    staged = definitions.stage(tmp_path, key, "project:p-1", d, f)
    assert definitions.list_(tmp_path) == [] and definitions.stamp(tmp_path, "men") == 0
    with pytest.raises(NotFound):
        definitions.load(tmp_path, key, "project:p-1", "men")
    early, frame = definitions.load_staged(staged, key, "project:p-1")
    stamp = staged.stamp()
    staged.publish()
    assert [x.name for x in definitions.list_(tmp_path)] == ["men"]
    assert definitions.stamp(tmp_path, "men") == stamp  # a cache warmed staged is found
    loaded, back = definitions.load(tmp_path, key, "project:p-1", "men")
    assert loaded == early == d and back.equals(frame)
    again = definitions.stage(tmp_path, key, "project:p-1", d, f)
    again.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["men.json", "men.parquet.srenc"]
    # one a stopped process left a day ago is removed by the next staging, a fresh one kept
    left, fresh = (definitions.stage(tmp_path, key, "project:p-1", d, f) for _ in range(2))
    old = time.time() - definitions.STALE_SECONDS - 60
    for path in (left.data, left.meta):
        os.utime(path, (old, old))
    definitions.stage(tmp_path, key, "project:p-1", d, f).discard()
    assert not left.data.exists() and not left.meta.exists() and fresh.data.exists()


def test_the_size_threshold_is_flagged(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    # the four highest BMIs (participants are selected by their values, never by pid)
    fifth = view["participants"]["p21001_i0"].drop_nulls().sort(descending=True)[4]
    sql = f"SELECT pid FROM participants WHERE p21001_i0 > {fifth}"
    small, _ = definitions.build(view, schema, "few", sql, LIMITS)
    assert small.participants == 4 and not small.size_ok
    assert not small.public()["size_ok"]
    just, _ = definitions.build(view, schema, "few", sql, LIMITS, min_participants=4)
    assert just.size_ok


def test_earlier_definitions_can_be_built_on(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    made, obese = definitions.build(view, schema, "obese", OBESE, LIMITS)
    assert made.bound(LIMITS.max_rows).per_pid == 1  # one row per participant, from its SQL
    sql = ("SELECT o.pid, o.bmi FROM obese o JOIN deaths d ON o.pid = d.pid "
           "WHERE d.date IS NOT NULL")
    definition, frame = definitions.build(view, schema, "obese_dead", sql, LIMITS,
                                          earlier={"obese": obese},
                                          bounds={"obese": made.bound(LIMITS.max_rows)})
    dead = set(view["deaths"]["pid"])
    assert set(frame["pid"]) == set(obese["pid"]) & dead
    assert definition.columns == {"pid": "BIGINT", "bmi": "DOUBLE"}


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT p31, p34 FROM participants", "must return a pid column"),
    ("SELECT p34 AS pid FROM participants", "output column pid must be the pid"),
    ("SELECT pid + 1 AS pid FROM participants", "output column pid must be the pid"),
    ("SELECT CAST(pid AS VARCHAR) AS pid FROM participants", "output column pid must be"),
    ("SELECT d.pid FROM participants p LEFT JOIN deaths d ON p.pid = d.pid",
     "of the table in FROM or of an inner join"),
])
def test_a_definition_must_return_project_pids(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, sql: str, reason: str
) -> None:
    with pytest.raises(Invalid, match=reason):
        definitions.build(view, schema, "d", sql, LIMITS)


@pytest.mark.parametrize("name", ["Bad", "1st", "with-dash", "../escape", "", "participants",
                                  "diagnoses", "x" * 64, "eid"])
def test_definition_names_are_identifiers_apart_from_the_view(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, name: str, tmp_path: Path
) -> None:
    with pytest.raises(Invalid):
        definitions.build(view, schema, name, "SELECT pid FROM participants", LIMITS)
    if name not in view:
        with pytest.raises(Invalid):
            definitions.load(tmp_path, MasterKey.generate(), "c", name)


HOSTILE = [
    "COPY participants TO '{out}'",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_parquet('{secret}')",
    "SELECT * FROM '{secret}'",
    "ATTACH '{out}' AS x",
    "PRAGMA database_list",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT getenv('HOME') AS pid",
    "WITH RECURSIVE t(pid) AS (SELECT 1 UNION ALL SELECT pid + 1 FROM t) SELECT pid FROM t",
    "SELECT a.pid FROM participants a, participants b, participants c",
    "SELECT a.pid FROM participants a JOIN participants b ON true",
    "SELECT pid FROM participants; COPY participants TO '{out}'",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_sql_is_refused_through_the_whole_path(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, tmp_path: Path, template: str
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("pid\n1234567\n")
    sql = template.format(out=tmp_path / "out.csv", secret=secret)
    with pytest.raises(Invalid):
        definitions.build(view, schema, "hostile", sql, LIMITS)
    with pytest.raises(Invalid):
        aggregate_sql(view, schema, sql, LIMITS, {"sql": sql})
    assert [p.name for p in tmp_path.iterdir()] == ["secret.csv"]


# -- aggregate SQL --------------------------------------------------------------------------


def _reference_contributors(frame: pl.DataFrame, keys: list[str], value: str | None
                            ) -> dict[tuple[str, ...], list[int]]:
    rows = frame if value is None else frame.filter(pl.col(value).is_not_null())
    grouped = rows.group_by(keys).agg(pl.col("pid").unique().sort())
    return {tuple(str(v) for v in r[:-1]): r[-1] for r in grouped.iter_rows()}


def test_aggregate_cells_have_exact_contributors(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    sql = ("SELECT p31 AS sex, p54_i0 AS centre, count(*) AS n, avg(p21001_i0) AS bmi, "
           "sum(p21001_i0) AS total FROM participants WHERE p34 < 1960 "
           "GROUP BY sex, centre")
    result = aggregate_sql(view, schema, sql, LIMITS, {"sql": sql})
    rows = view["participants"].filter(pl.col("p34") < 1960).rename(
        {"p31": "sex", "p54_i0": "centre"})
    everyone = _reference_contributors(rows, ["sex", "centre"], None)
    with_bmi = _reference_contributors(rows, ["sex", "centre"], "p21001_i0")
    assert {c.row for c in result.cells} == set(everyone)
    assert [c.row for c in result.cells] == sorted(
        (c.row for c in result.cells), key=lambda r: (int(r[0]), int(r[1])))
    for cell in result.cells:
        group = rows.filter((pl.col("sex") == int(cell.row[0]))
                            & (pl.col("centre") == int(cell.row[1])))
        if cell.column == "n":
            assert cell.kind == CellKind.COUNT
            assert cell.contributors.tolist() == everyone[cell.row]
            assert cell.value == group.height
        else:
            assert cell.contributors.tolist() == with_bmi[cell.row]
            bmi = group.filter(pl.col("p21001_i0").is_not_null()).sort("pid")["p21001_i0"]
            assert cell.magnitudes is not None
            assert np.allclose(cell.magnitudes, bmi.abs().to_numpy())
            assert cell.distinct_values == bmi.n_unique()
            expected = bmi.mean() if cell.column == "bmi" else bmi.sum()
            assert cell.value == pytest.approx(expected)
            assert cell.kind == (CellKind.MEAN if cell.column == "bmi" else CellKind.SUM)


def test_quantiles_count_participants_on_each_side(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    sql = ("SELECT p31 AS sex, median(p21001_i0) AS med, quantile_cont(p21001_i0, 0.9) AS q9, "
           "min(p34) AS lo, max(p34) AS hi, mode(p34) AS mo, stddev(p21001_i0) AS sd "
           "FROM participants GROUP BY sex")
    result = aggregate_sql(view, schema, sql, LIMITS, {})
    for cell in result.cells:
        group = view["participants"].filter(pl.col("p31") == int(cell.row[0]))
        bmi = group["p21001_i0"].drop_nulls().to_numpy()
        births = group["p34"].drop_nulls()
        if cell.column in ("med", "q9"):
            q = 0.5 if cell.column == "med" else 0.9
            assert cell.kind == (CellKind.MEDIAN if q == 0.5 else CellKind.QUANTILE)
            assert cell.value == pytest.approx(np.quantile(bmi, q))
            assert cell.below == int((bmi < cell.value).sum())
            assert cell.above == int((bmi > cell.value).sum())
        elif cell.column == "lo":
            assert (cell.kind, cell.value) == (CellKind.MIN, births.min())
        elif cell.column == "hi":
            assert (cell.kind, cell.value) == (CellKind.MAX, births.max())
        elif cell.column == "mo":
            counts = births.value_counts()
            top = counts.filter(pl.col("count") == counts["count"].max())["p34"].min()
            assert (cell.kind, cell.value) == (CellKind.MODE, top)
            assert cell.distinct_values == births.n_unique()
        else:
            assert cell.value == pytest.approx(np.std(bmi, ddof=1))


def test_rows_duplicated_by_a_join_inflate_the_count_not_the_contributors(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    sql = ("SELECT p.p31 AS sex, count(*) AS n FROM participants p "
           "JOIN diagnoses d ON p.pid = d.pid GROUP BY sex")
    result = aggregate_sql(view, schema, sql, LIMITS, {})
    joined = view["participants"].join(view["diagnoses"], on="pid")
    for cell in result.cells:
        group = joined.filter(pl.col("p31") == int(cell.row[0]))
        assert cell.value == group.height  # rows, as the SQL says
        assert cell.contributors.tolist() == sorted(group["pid"].unique().to_list())
        assert len(cell.contributors) < cell.value  # people, not rows
    assert any("counts rows" in note for note in result.notes)


@pytest.mark.parametrize("having", [
    "count(*) >= 100", "count(DISTINCT pid) >= 100", "max(p21001_i0) > 40", "true"])
def test_having_is_refused_with_what_to_do_instead(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, having: str
) -> None:
    """HAVING saw the exact figures the check winsorises and rounds, so whether a group came
    back could give a group's exact size (catalogue: "HAVING count(DISTINCT pid) bisected")."""
    sql = ("SELECT p54_i0 AS centre, count(*) AS n FROM participants "
           f"GROUP BY centre HAVING {having}")
    with pytest.raises(Invalid) as refused:
        aggregate_sql(view, schema, sql, LIMITS, {})
    assert "HAVING" in str(refused.value) and "filter the released table" in str(refused.value)


def test_a_total_without_groups_and_a_definition_as_source(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    _, obese = definitions.build(view, schema, "obese", OBESE, LIMITS)
    tables = {**view, "obese": obese}
    both = schema.merged(schema_of({"obese": obese}))
    sql = "SELECT count(*) AS n, avg(bmi) AS bmi FROM obese WHERE sex = 1"
    result = aggregate_sql(tables, both, sql, LIMITS, {})
    men = obese.filter(pl.col("sex") == 1)
    assert [c.row for c in result.cells] == [(), ()]
    assert result.cells[0].value == men.height
    assert result.cells[0].contributors.tolist() == sorted(men["pid"].to_list())
    assert result.cells[1].value == pytest.approx(men["bmi"].mean())


def test_a_filter_on_membership_keeps_contributors_exact(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    sql = ("SELECT p31 AS sex, count(*) AS n FROM participants WHERE pid IN "
           "(SELECT pid FROM diagnoses WHERE code LIKE 'I%') GROUP BY sex")
    result = aggregate_sql(view, schema, sql, LIMITS, {})
    cases = view["diagnoses"].filter(pl.col("code").str.starts_with("I"))["pid"].implode()
    rows = view["participants"].filter(pl.col("pid").is_in(cases))
    for cell in result.cells:
        group = rows.filter(pl.col("p31") == int(cell.row[0]))
        assert cell.contributors.tolist() == sorted(group["pid"].to_list())


@pytest.mark.parametrize("sql", [
    "SELECT p31, var_samp(p21001_i0) FROM participants GROUP BY p31",  # not a listed kind
    "SELECT p31, string_agg(CAST(p34 AS VARCHAR), ',') FROM participants GROUP BY p31",
    "SELECT p31, count(*) * 2 AS n FROM participants GROUP BY p31",  # inside arithmetic
    "SELECT p31, sum(p21001_i0) / count(*) AS m FROM participants GROUP BY p31",
    "SELECT p31, sum(avg(p21001_i0)) FROM participants GROUP BY p31",  # nested
    "SELECT p31, count(*) OVER () FROM participants",  # window
    "SELECT p31, count(*) FILTER (WHERE p34 > 1950) FROM participants GROUP BY p31",
    "SELECT p31, sum(DISTINCT p21001_i0) FROM participants GROUP BY p31",
    "SELECT p31, quantile_cont(p21001_i0, 1.5) FROM participants GROUP BY p31",
    "SELECT p31, quantile_cont(p21001_i0, [0.1, 0.9]) FROM participants GROUP BY p31",
    "SELECT p31, max(p21001_i0, 3) FROM participants GROUP BY p31",  # top-3 list
    "SELECT p31, p34, count(*) FROM participants GROUP BY p31",  # p34 not a key
    "SELECT count(*) FROM participants GROUP BY p31",  # a key not shown
    "SELECT p31 FROM participants GROUP BY p31",  # no aggregate
    "SELECT s.p31, count(*) FROM (SELECT pid, p31 FROM participants) s GROUP BY s.p31",
    "WITH s AS (SELECT pid, p31 FROM participants) SELECT p31, count(*) FROM s GROUP BY p31",
    "SELECT p31, count(*) FROM participants GROUP BY p31 UNION "
    "SELECT p31, count(*) FROM participants GROUP BY p31",
    "SELECT p31, count(*) FROM participants GROUP BY p31 ORDER BY 2 LIMIT 1",
    "SELECT a.p31, avg(b.p21001_i0) FROM participants a JOIN participants b "
    "ON a.p34 = b.p34 GROUP BY a.p31",  # rows mixing two participants
    "SELECT a.p31, count(*) FROM participants a RIGHT JOIN diagnoses d ON a.pid = d.pid "
    "GROUP BY a.p31",
    "SELECT p31, count(*) FROM participants WHERE p34 > "
    "(SELECT p34 FROM participants WHERE pid = 1234567) GROUP BY p31",  # targets a person
    "SELECT p.p31, count(*) FROM participants p JOIN diagnoses d ON p.pid = d.pid AND "
    "d.date > (SELECT max(date) FROM deaths) GROUP BY p.p31",
    "SELECT p31, count(*) FROM participants GROUP BY ROLLUP (p31)",
    "SELECT p31, count(*) FROM participants GROUP BY ALL",
    "SELECT DISTINCT p31, count(*) FROM participants GROUP BY p31",
])
def test_an_unknown_aggregation_is_refused(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, sql: str
) -> None:
    with pytest.raises(Invalid) as caught:
        aggregate_sql(view, schema, sql, LIMITS, {"sql": sql})
    reasons = " ".join(caught.value.reasons)
    assert ("an unknown aggregation" in reasons or "not allowed" in reasons
            or "other participants' values" in reasons)
    if "an unknown aggregation" in reasons:
        assert "contributors cannot be established" in reasons


def test_a_non_numeric_statistic_is_refused(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    with pytest.raises(Invalid, match="numeric argument"):
        aggregate_sql(view, schema, "SELECT max(date) AS last FROM deaths", LIMITS, {})


def test_wide_duckdb_types_come_back_as_64_bit_numbers(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    sql = ("SELECT p.pid, sum(d.array_index) AS total, 1.5 AS half FROM participants p "
           "JOIN diagnoses d ON p.pid = d.pid GROUP BY p.pid")
    definition, _ = definitions.build(view, schema, "wide", sql, LIMITS)
    assert definition.columns == {"pid": "BIGINT", "total": "BIGINT", "half": "DOUBLE"}
    with pytest.raises(Invalid, match="INTERVAL"):
        definitions.build(view, schema, "span", "SELECT pid, INTERVAL 1 DAY AS span "
                          "FROM participants", LIMITS)


COUNTS = "count(*) AS n, count(p.p21001_i0) AS with_bmi"


@pytest.mark.parametrize(("keys", "group", "tail", "counted"), [
    ("p.p31 AS sex, p.p54_i0 AS centre", "sex, centre", "", True),
    ("p.p21001_i0 > 30 AS obese, p.p31 AS sex", "obese, sex", "", True),  # boolean, NULLs
    ("CASE WHEN p.p34 > 1955 THEN p.p54_i0 END AS late", "late", "", True),  # NULL keys
    ("p.p34 - 1960 AS born", "born", "", True),  # negative
    ("", "", "", True),  # one group of everyone
    ("p.p31 AS sex", "sex", " AND d.code LIKE 'I%'", True),  # joined rows repeat pids
    ("CAST(p.p31 AS VARCHAR) AS sex", "sex", "", False),  # text keys: the Polars group-by
    ("p.p34 * 1000 AS born, p.p54_i0 AS centre", "born, centre", "", False),  # too many codes
])
def test_counts_by_whole_number_keys_match_the_general_path(
    view: dict[str, pl.DataFrame], schema: ProjectSchema, monkeypatch: pytest.MonkeyPatch,
    keys: str, group: str, tail: str, counted: bool,
) -> None:
    """Counts by whole-number keys are gathered in NumPy; adding a statistic sends the same
    groups through the Polars group-by. Every count cell must come out the same, contributors
    and order included."""
    source = ("participants p JOIN diagnoses d ON p.pid = d.pid" if "d.code" in tail
              else "participants p")
    where = f" WHERE {tail[5:]}" if tail else ""
    by = f" GROUP BY {group}" if group else ""
    shown = f"{keys}, " if keys else ""
    counts_only = f"SELECT {shown}{COUNTS} FROM {source}{where}{by}"
    with_stat = f"SELECT {shown}{COUNTS}, max(p.p34) AS last FROM {source}{where}{by}"
    with monkeypatch.context() as patch:
        if counted:  # the counts must not take the general path
            patch.setattr(aggregate, "_grouped", _not_taken)
        fast = aggregate_sql(view, schema, counts_only, LIMITS, {}).cells
    general = [c for c in aggregate_sql(view, schema, with_stat, LIMITS, {}).cells
               if c.column != "last"]
    assert [(c.row, c.column, c.kind, c.value) for c in fast] == [
        (c.row, c.column, c.kind, c.value) for c in general]
    for a, b in zip(fast, general, strict=True):
        assert a.contributors.tolist() == b.contributors.tolist()
    assert fast  # the comparison covered some cells


def _not_taken(*_: object) -> None:
    raise AssertionError("counts by whole-number keys took the general path")


def test_more_groups_than_a_table_may_have_are_refused() -> None:
    """GROUP BY on participants' own values makes one group per person: not an aggregate."""
    from strongroom.enclave.analyses.tables import MAX_CELLS
    n = MAX_CELLS + 1
    frame = pl.DataFrame({"pid": np.arange(1_000_000, 1_000_000 + n, dtype=np.int64),
                          "x": np.arange(n, dtype=np.int64)})
    tables = {"participants": frame}
    with pytest.raises(Invalid) as refused:
        aggregate_sql(tables, schema_of(tables),
                      "SELECT x, count(*) AS n FROM participants GROUP BY x", Limits(), {})
    assert "groups" in str(refused.value) and "coarser" in str(refused.value)


def test_a_total_too_large_to_keep_is_null_not_an_error(
    view: dict[str, pl.DataFrame], schema: ProjectSchema
) -> None:
    # a participant with two diagnoses and a BMI over 30 would overflow 64 bits: an error
    # would tell whether any such participant exists
    sql = ("SELECT p.pid, sum(CASE WHEN p.p21001_i0 > 30 THEN 9223372036854775807 ELSE 0 END) "
           "AS s FROM participants p JOIN diagnoses d ON d.pid = p.pid GROUP BY p.pid")
    _, frame = definitions.build(view, schema, "huge", sql, LIMITS)
    assert frame["s"].null_count() > 0
