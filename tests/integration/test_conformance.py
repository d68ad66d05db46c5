"""Conformance with files in the wild: fake UKB extracts shipped by public UKB tools.

Each fixture is read into the storage model, written back in its own style (and as RAP CSV
and Parquet), and read again; the set of non-missing cells must not change. The cells are
taken from the files by an independent parser (regexes and Polars here, not the package's
own naming code), so a bug shared by reader and writer cannot hide itself.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from strongroom.cohort import showcase
from strongroom.cohort.dictionary import Dictionary, ValueType
from strongroom.cohort.formats import ROW, Style, read_table, write_table
from strongroom.cohort.model import EVENT_TABLES, Cohort
from strongroom.cohort.problems import IngestError
from strongroom.cohort.store import Store, init_store
from strongroom.cohort.validate import RULE_EVENT_BEFORE_BIRTH, validate

RESEARCH = Path(__file__).resolve().parents[2].parent / "shared" / "research-data"
FAKES = RESEARCH / "ukb-fake-examples"
SCHEMA = RESEARCH / "ukb-schema"

pytestmark = pytest.mark.skipif(not FAKES.is_dir(), reason=f"fixtures not found in {FAKES}")


@dataclass(frozen=True)
class Fixture:
    name: str
    style: Style
    write_as: str  # file name to write the same style to (its suffix picks the separator)
    dropped: dict[str, str]  # column -> why the reader drops it (a fixture defect)
    refused: dict[int, str]  # field -> why validation refuses its values (a fixture defect)
    relax: tuple[str, ...] = ()  # validation rules the fixture cannot meet


_OUT_OF_RANGE_4080 = {f"4080-{i}.{a}": "has array slots 0–1" for i in (0, 1) for a in (2, 3)}
_DDMMYYYY = "not a valid date"

FIXTURES = [
    Fixture("ukbtools_ukbxxxx.tab", Style.RTAB, "out.tab", {},
            {54: "code is not in coding 10"}),  # 11015 and 11019 are not assessment centres
    Fixture("ukbwranglr_dummy_ukb_main.tsv", Style.UKBCONV, "out.tsv", _OUT_OF_RANGE_4080, {},
            relax=(RULE_EVENT_BEFORE_BIRTH,)),  # random dates: events before birth
    Fixture(
        "ukbwranglr_resources_tofu_dummy_ukb_data.csv", Style.UKBCONV, "out.csv",
        {"20076-0.0": "not in the data dictionary",
         **{f"40008-{i}.0": "has instances 0–16" for i in range(17, 31)}},
        {  # tofu writes dates as dd/mm/yyyy, and ICD-9 node ids instead of codes
            **dict.fromkeys((130706, 130708, 130710, 130712, 130714, 132202), _DDMMYYYY),
            **dict.fromkeys((40005, 41280, 41281), _DDMMYYYY),
            41271: "code is not in coding 87",
            40013: "code is not in coding 87",
        },
    ),
]
IDS = [f.name.split("_")[0] + "-" + f.name.rsplit(".", 1)[-1] for f in FIXTURES]

# Coding 819 (special dates of the "first occurrence" fields, UKB Showcase) is missing from
# the tofu encodings lookup, so it is supplied here.
CODING_819 = {
    "1900-01-01": "Code has no event date",
    "1901-01-01": "Code has event date before participant's date of birth",
    "1902-02-02": "Code has event date matching participant's date of birth",
    "1903-03-03": "Code has event date after participant's date of birth and falls in the "
                  "same calendar year as date of birth",
    "1909-09-09": "Code has event date in the future and is presumed to be a place-holder or "
                  "other system default",
    "2037-07-07": "Code has event date in the future and is presumed to be a place-holder or "
                  "other system default",
}


# -- independent view of a file ------------------------------------------------------------

_TEXT_NAMES = re.compile(r"(?:f\.)?(\d+)[-.](\d+)\.(\d+)")
_RAP_NAMES = re.compile(r"p(\d+)(?:_i(\d+))?(?:_a(\d+))?")
Cell = tuple[int, int, int, int, object]  # eid, field, instance, array, normalised value


def raw_frame(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    with path.open() as fh:
        first = fh.readline()
    return pl.read_csv(path, separator="\t" if "\t" in first else ",", infer_schema=False,
                       null_values=["NA"])


def key_of(name: str) -> tuple[int, int, int]:
    match = _TEXT_NAMES.fullmatch(name) or _RAP_NAMES.fullmatch(name)
    assert match is not None, name
    return int(match[1]), int(match[2] or 0), int(match[3] or 0)


def normalise(value: object, vt: ValueType) -> object:
    """Text and typed values on one footing: floats as floats, dates as dates."""
    if not isinstance(value, str):
        return value
    if vt == ValueType.CONTINUOUS:
        return float(value)
    if vt == ValueType.DATE:
        for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
            try:
                return dt.datetime.strptime(value, fmt).date()
            except ValueError:
                pass
        return value
    if re.fullmatch(r"-?\d+", value) and vt != ValueType.TEXT:
        return int(value)
    return value


def cells(path: Path, dictionary: Dictionary, skip: Iterable[str] = (),
          skip_fields: Iterable[int] = ()) -> set[Cell]:
    frame = raw_frame(path)
    eid = next(c for c in frame.columns if c.endswith("eid"))
    keys = {name: key_of(name) for name in frame.columns if name != eid and name not in skip}
    keys = {name: key for name, key in keys.items() if key[0] not in set(skip_fields)}
    types = {name: dictionary.field(key[0]).value_type for name, key in keys.items()}
    long = (
        frame.select(pl.col(eid).cast(pl.Int64).alias("_eid"),
                     *(pl.col(name).cast(pl.String) for name in keys))
        .unpivot(index="_eid")
        .filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
    )
    return {(e, *keys[name], normalise(v, types[name])) for e, name, v in long.iter_rows()}


def columns_with_values(path: Path) -> set[str]:
    frame = raw_frame(path)
    counts = frame.select(
        (pl.col(c).is_not_null() & (pl.col(c).cast(pl.String) != "")).sum() for c in frame.columns
    ).row(0, named=True)
    return {c for c, n in counts.items() if n}


# -- dictionaries ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encodings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tofu encodings plus the two codings these fixtures need that it lacks (13, 819)."""
    tofu = pl.read_csv(SCHEMA / "tofu_df_lkp_encodings.csv.gz", infer_schema=False)
    shipped = pl.read_csv(FAKES / "ukbwranglr_dummy_Codings.tsv", separator="\t",
                          infer_schema=False).filter(pl.col("Coding") == "13")
    extra = pl.DataFrame({
        "encoding_id": ["13"] * shipped.height + ["819"] * len(CODING_819),
        "value": [*shipped["Value"], *CODING_819],
        "meaning": [*shipped["Meaning"], *CODING_819.values()],
    }).with_columns(code_id=pl.lit(""), selectable=pl.lit("1.0"))
    assert not set(tofu["encoding_id"].unique()) & {"13", "819"}, "tofu has them now"
    path = tmp_path_factory.mktemp("schema") / "encodings.csv"
    pl.concat([tofu, extra.select(tofu.columns)]).write_csv(path)
    return path


@pytest.fixture(scope="module")
def dictionaries(encodings: Path) -> dict[str, Dictionary]:
    return {fixture.name: dictionary_for(fixture, encodings) for fixture in FIXTURES}


def dictionary_for(fixture: Fixture, encodings: Path) -> Dictionary:
    """Exactly the fields the fixture uses (those the Showcase knows)."""
    header = raw_frame(FAKES / fixture.name).columns
    ids = {key_of(name)[0] for name in header if not name.endswith("eid")}
    known = set(showcase.read_showcase_fields(SCHEMA / "Data_Dictionary_Showcase.tsv"))
    return showcase.build_dictionary(
        SCHEMA / "Data_Dictionary_Showcase.tsv", encodings, ids & known,
        stats=SCHEMA / "tofu_df_showcase_desc_stats.csv.gz",
    )


def without_fields(cohort: Cohort, fields: set[int]) -> Cohort:
    """The cohort minus the columns of these fields (the fixture's refused values)."""
    participants = cohort.participants.select(
        c for c in cohort.participants.columns
        if not (c.startswith("p") and int(c[1:].split("_")[0]) in fields))
    events = {}
    for table in EVENT_TABLES:
        if table.name not in cohort.events:
            continue
        gone = [c for c, fid in table.columns.items() if fid in fields]
        frame = cohort.events[table.name].drop(gone, strict=False)
        values = [c for c in table.columns if c in frame.columns]
        if values:
            events[table.name] = frame.filter(~pl.all_horizontal(pl.col(values).is_null()))
    return Cohort(participants, events)


def without_empty_columns(frame: pl.DataFrame) -> pl.DataFrame:
    counts = frame.null_count().row(0, named=True)
    return frame.select(c for c, n in counts.items() if n < frame.height or not frame.height)


def typed_fixture(fixture: Fixture, dictionary: Dictionary) -> tuple[Cohort, set[Cell]]:
    """The fixture read and validated (minus the fields it holds refused values in), and its
    non-missing cells as the source file has them: what every lossless round trip must keep."""
    refused = set(fixture.refused)
    source = FAKES / fixture.name
    result = read_table(source, dictionary)
    typed = validate(without_fields(result.cohort, refused), dictionary, fixture.name,
                     relax=fixture.relax)
    original = cells(source, dictionary, skip=fixture.dropped, skip_fields=refused)
    assert original, "the comparison must have something to compare"
    return typed, original


# -- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_reader_reports_exactly_the_fixture_defects(
    fixture: Fixture, dictionaries: dict[str, Dictionary]
) -> None:
    dictionary = dictionaries[fixture.name]
    result = read_table(FAKES / fixture.name, dictionary)
    assert result.style == fixture.style
    got = {p.field: p.message for p in result.problems}
    assert set(got) == set(fixture.dropped)
    for column, why in fixture.dropped.items():
        assert why in got[column]
    assert all(ROW in frame.columns for _, frame in result.cohort.tables())


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_text_round_trip_in_the_same_style(
    fixture: Fixture, dictionaries: dict[str, Dictionary], tmp_path: Path
) -> None:
    dictionary = dictionaries[fixture.name]
    source = FAKES / fixture.name
    result = read_table(source, dictionary)
    out = tmp_path / fixture.write_as
    write_table(result.cohort, out, fixture.style, dictionary)
    assert read_table(out, dictionary).problems == []
    original = cells(source, dictionary, skip=fixture.dropped)
    assert original, "the comparison must have something to compare"
    assert cells(out, dictionary) == original
    expected_columns = columns_with_values(source) - set(fixture.dropped)
    assert set(raw_frame(out).columns) == expected_columns


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_validation_refuses_exactly_the_fixture_defects(
    fixture: Fixture, dictionaries: dict[str, Dictionary]
) -> None:
    dictionary = dictionaries[fixture.name]
    result = read_table(FAKES / fixture.name, dictionary)
    if not fixture.refused:
        validate(result.cohort, dictionary, fixture.name, relax=fixture.relax)
        return
    with pytest.raises(IngestError) as info:
        validate(result.cohort, dictionary, fixture.name, relax=fixture.relax)
    refused: dict[int, set[str]] = {}
    for problem in info.value.problems:
        match = re.search(r"(\d+) \(", problem.field)
        assert match is not None, str(problem)
        refused.setdefault(int(match[1]), set()).add(problem.message)
    assert set(refused) == set(fixture.refused)
    for field, why in fixture.refused.items():
        assert any(why in m for m in refused[field]), (field, refused[field])


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_typed_round_trip_in_every_style(
    fixture: Fixture, dictionaries: dict[str, Dictionary], tmp_path: Path
) -> None:
    """read -> validate -> write (same style, RAP CSV, Parquet) -> read -> validate."""
    dictionary = dictionaries[fixture.name]
    typed, original = typed_fixture(fixture, dictionary)
    for style, name in ((fixture.style, fixture.write_as), (Style.RAP, "rap.csv"),
                        (Style.PARQUET, "wide.parquet")):
        out = tmp_path / name
        write_table(typed, out, style, dictionary)
        assert cells(out, dictionary) == original, style
        again = read_table(out, dictionary)
        assert (again.style, again.problems) == (style, [])
        retyped = validate(again.cohort, dictionary, name, relax=fixture.relax)
        for (table, got), (_, want) in zip(retyped.tables(), typed.tables(), strict=True):
            assert without_empty_columns(got).equals(without_empty_columns(want)), (style, table)


def test_fixture_event_tables_are_what_their_fields_say(
    dictionaries: dict[str, Dictionary]
) -> None:
    """The ukbwranglr main file has every event table; each event keeps its own slot."""
    fixture = FIXTURES[1]
    dictionary = dictionaries[fixture.name]
    cohort = read_table(FAKES / fixture.name, dictionary).cohort
    assert set(cohort.events) == {t.name for t in EVENT_TABLES}  # all six
    raw = raw_frame(FAKES / fixture.name)
    d = cohort.events["diagnoses"]
    for eid, slot, code, date in d.select("eid", "array_index", "code", "date").rows():
        row = raw.filter(pl.col("eid") == eid)
        assert row[f"41270-0.{slot}"].item() == code
        assert row[f"41280-0.{slot}"].item() == date
    deaths = cohort.events["deaths"]
    for eid, instance, date, cause in deaths.select("eid", "instance", "date", "cause").rows():
        row = raw.filter(pl.col("eid") == eid)
        assert (row[f"40000-{instance}.0"].item(), row[f"40001-{instance}.0"].item()) == (
            date, cause)


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_store_round_trip_in_the_same_style(
    fixture: Fixture, dictionaries: dict[str, Dictionary], tmp_path: Path
) -> None:
    """read -> validate -> encrypted store -> load -> write in the same style: no loss."""
    dictionary = dictionaries[fixture.name]
    typed, original = typed_fixture(fixture, dictionary)
    with init_store(tmp_path / "data", key_file=tmp_path / "master.key",
                    dictionary=dictionary) as store:
        store.write_version(typed)
    with Store.open(store.root, tmp_path / "master.key") as reopened:
        loaded = reopened.load()
    out = tmp_path / fixture.write_as
    write_table(loaded, out, fixture.style, dictionary)
    assert cells(out, dictionary) == original
