"""Linking a leaked copy's rows to the cohort by values, under every attack in issue 5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.synth.generator import synthesise
from strongroom.errors import Invalid
from strongroom.extracts.linkage import Linked, apparent_grid, column_specs, link
from strongroom.extracts.tables import file_sha256, read_suspect

QIS = ["p31", "p34", "p54_i0", "p52"]
MEASURES = [
    "p48_i0", "p49_i0", "p50_i0", "p21001_i0", "p21002_i0", "p23099_i0", "p30000_i0",
    "p30020_i0", "p30690_i0", "p30700_i0", "p30710_i0", "p30740_i0", "p30750_i0",
    "p30760_i0", "p30780_i0", "p30870_i0",
]  # fmt: skip
COLUMNS = QIS + MEASURES
TRUTH = "__eid"  # the test's own record of who each row is; dropped before linking


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture(scope="module")
def master() -> pl.DataFrame:
    return synthesise(3000, 11).participants.select(["eid", *COLUMNS])


@pytest.fixture(scope="module")
def strangers() -> pl.DataFrame:
    """People who are not in the cohort (another synthetic draw)."""
    return synthesise(3000, 12).participants.select(["eid", *COLUMNS])


def units(dictionary: Dictionary) -> dict[str, float]:
    return {name: spec.unit for name, spec in column_specs(COLUMNS, dictionary).items()}


def released(master: pl.DataFrame, dictionary: Dictionary, seed: int) -> pl.DataFrame:
    """A recipient's copy: fresh 7-digit pids, every measurement moved ±1 recorded unit."""
    rng = np.random.default_rng(seed)
    unit = units(dictionary)
    out = master.select(
        pl.Series("pid", rng.choice(9_000_000, master.height, replace=False) + 1_000_000),
        *QIS,
        *[(pl.col(c) + pl.Series(rng.choice([-1.0, 1.0], master.height) * unit[c])).round(6)
          for c in MEASURES],
        pl.col("eid").alias(TRUTH),
    )
    return out


def disguise(copy: pl.DataFrame, seed: int, keep_id: bool = False) -> pl.DataFrame:
    """What every leaker does: drop the ID, shuffle rows, rename and reorder columns."""
    rng = np.random.default_rng(seed)
    if not keep_id:
        copy = copy.drop("pid", strict=False)
    copy = copy.sample(fraction=1.0, shuffle=True, seed=seed)
    names = [c for c in copy.columns if c != TRUTH]
    order = [names[i] for i in rng.permutation(len(names))]
    renamed = {c: f"field {COLUMNS.index(c)}" for c in order if c != "pid"}
    return copy.select([*order, TRUTH]).rename(renamed)


def split(suspect: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    return suspect.drop(TRUTH), suspect[TRUTH].to_numpy()


def outcome(linked: Linked, truth: np.ndarray) -> tuple[float, int, int]:
    """Share of cohort rows linked, wrong links, and strangers linked."""
    real = truth >= 0
    found = linked.eids >= 0
    wrong = int(np.count_nonzero(found & real & (linked.eids != truth)))
    strangers = int(np.count_nonzero(found & ~real))
    return float(np.mean(found[real])), wrong, strangers


def rounded(copy: pl.DataFrame, dictionary: Dictionary, factor: int) -> pl.DataFrame:
    unit = units(dictionary)
    numeric = [c for c in COLUMNS if c in MEASURES or c == "p34"]
    return copy.with_columns(
        ((pl.col(c) / (unit[c] * factor)).round(0) * unit[c] * factor).alias(c) for c in numeric
    )


def check(linked: Linked, truth: np.ndarray, at_least: float) -> None:
    share, wrong, strangers = outcome(linked, truth)
    assert share >= at_least
    assert wrong <= linked.rows_linked // 1000  # wrong links under 0.1%
    assert strangers <= max(1, int(np.count_nonzero(truth < 0)) // 1000)


def mapped_right(linked: Linked) -> bool:
    """Every matched column is the one it was renamed from ("field k" was COLUMNS[k])."""
    return all(COLUMNS[int(s.split()[1])] == m for s, m in linked.columns.items())


def test_dropped_id_shuffled_renamed_rows_all_link(master, dictionary):
    copy = released(master, dictionary, 1)
    suspect, truth = split(disguise(copy, 2))
    linked = link(suspect, master, dictionary)
    check(linked, truth, 0.99)
    assert len(linked.columns) == len(COLUMNS)
    assert mapped_right(linked)
    assert set(linked.keys) == set(QIS)  # exact categorical and integer columns block


@pytest.mark.parametrize(("factor", "at_least"), [(10, 0.99), (100, 0.9)])
def test_rounded_coarser_still_links(master, dictionary, factor, at_least):
    copy = rounded(released(master, dictionary, 3), dictionary, factor)
    suspect, truth = split(disguise(copy, 4))
    linked = link(suspect, master, dictionary)
    check(linked, truth, at_least)
    assert mapped_right(linked)
    grid = {m: g for m, g in linked.grids.items() if m == "p30690_i0"}
    assert grid == {"p30690_i0": pytest.approx(0.001 * factor)}


def test_noise_of_ten_mark_units_still_links(master, dictionary):
    rng = np.random.default_rng(5)
    unit = units(dictionary)
    copy = released(master, dictionary, 5).with_columns(
        (pl.col(c) + pl.Series(rng.normal(0, 10 * unit[c], master.height))).alias(c)
        for c in MEASURES)
    suspect, truth = split(disguise(copy, 6))
    linked = link(suspect, master, dictionary)
    check(linked, truth, 0.99)
    assert linked.scales["p30690_i0"] == pytest.approx(0.01, rel=0.3)  # the noise, measured


def test_five_informative_columns_link(master, dictionary):
    copy = released(master, dictionary, 7).select(
        "p31", "p50_i0", "p21001_i0", "p30690_i0", "p30740_i0", TRUTH)
    suspect, truth = split(disguise(copy, 8))
    check(link(suspect, master, dictionary), truth, 0.9)


def test_uninformative_columns_link_nobody_wrongly(master, dictionary):
    copy = released(master, dictionary, 9).select("p31", "p34", "p48_i0", TRUTH)
    suspect, truth = split(disguise(copy, 10))
    linked = link(suspect, master, dictionary)
    _, wrong, _ = outcome(linked, truth)
    assert wrong <= linked.rows_linked // 1000


@pytest.mark.parametrize("how", ["cells", "rows"])
def test_mixed_copies_of_three_recipients_link(master, dictionary, how):
    copies = [released(master, dictionary, 20 + i) for i in range(3)]
    rng = np.random.default_rng(13)
    pick = rng.integers(0, 3, size=(master.height, len(COLUMNS)))
    if how == "rows":
        pick[:] = pick[:, :1]
    mixed = copies[0].with_columns(
        pl.Series(c, np.choose(pick[:, j], [cp[c].to_numpy() for cp in copies]))
        for j, c in enumerate(COLUMNS))
    suspect, truth = split(disguise(mixed, 14))
    check(link(suspect, master, dictionary), truth, 0.99)


def test_half_foreign_rows_stay_unlinked(master, strangers, dictionary):
    ours = released(master, dictionary, 15)
    theirs = released(strangers, dictionary, 16).with_columns(pl.lit(-1, pl.Int64).alias(TRUTH))
    suspect, truth = split(disguise(pl.concat([ours, theirs]), 17))
    linked = link(suspect, master, dictionary)
    check(linked, truth, 0.99)


def test_half_synthetic_rows_stay_unlinked(master, dictionary):
    ours = released(master, dictionary, 18)
    fake = ours.select(
        [ours[c].sample(ours.height, with_replacement=True, seed=i)
         for i, c in enumerate(ours.columns) if c != TRUTH]
    ).with_columns(pl.lit(-1, pl.Int64).alias(TRUTH))
    suspect, truth = split(disguise(pl.concat([ours, fake]), 19))
    check(link(suspect, master, dictionary), truth, 0.99)


def test_nobody_from_the_cohort_links_nobody(master, strangers, dictionary):
    theirs = released(strangers, dictionary, 30).with_columns(pl.lit(-1, pl.Int64).alias(TRUTH))
    suspect, _ = split(disguise(theirs, 31))
    linked = link(suspect, master, dictionary)
    assert linked.rows_linked <= suspect.height // 1000


def write_excel(frame: pl.DataFrame, path: Path) -> None:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("leak")
    sheet.append(frame.columns)
    for row in frame.iter_rows():
        sheet.append([None if v is None else v for v in row])
    book.save(path)


@pytest.mark.parametrize("fmt", ["csv", "semicolon", "tsv", "parquet", "excel"])
def test_round_trips_and_retyping_lose_nothing(master, dictionary, tmp_path, fmt):
    copy = disguise(released(master, dictionary, 40), 41)
    truth = copy[TRUTH].to_numpy()
    data = copy.drop(TRUTH)
    strings = data.with_columns(pl.col(data.columns[0]).cast(pl.String))  # numbers as text
    path = tmp_path / f"leak.{fmt}"
    if fmt == "csv":
        strings.write_csv(path)
    elif fmt == "semicolon":  # a European spreadsheet: semicolons and decimal commas
        data.with_columns(pl.col(c).cast(pl.String).str.replace(".", ",", literal=True)
                          for c in data.columns).write_csv(path, separator=";")
    elif fmt == "tsv":
        data.write_csv(path, separator="\t")
    elif fmt == "parquet":
        strings.write_parquet(path)
    else:
        write_excel(strings, path)
    suspect = read_suspect(path)
    assert suspect.height == data.height
    check(link(suspect, master, dictionary), truth, 0.99)


def test_surviving_pseudonyms_link_through_their_map(master, dictionary):
    copy = released(master, dictionary, 50)
    id_map = pl.DataFrame({"pid": copy["pid"], "eid": copy[TRUTH]})
    stranger_map = pl.DataFrame({"pid": np.arange(3000) + 2_000_000, "eid": copy[TRUTH]})
    suspect, truth = split(disguise(copy, 51, keep_id=True))
    linked = link(suspect, master, dictionary, {"A": id_map, "B": stranger_map})
    check(linked, truth, 0.99)
    assert linked.id_links == {"A": master.height}


def test_reshuffled_pseudonyms_are_not_believed(master, dictionary):
    copy = released(master, dictionary, 52)
    id_map = pl.DataFrame({"pid": copy["pid"], "eid": copy[TRUTH]})
    shuffled = copy.with_columns(pl.Series("pid", np.random.default_rng(0).permutation(
        copy["pid"].to_numpy())))
    suspect, truth = split(disguise(shuffled, 53, keep_id=True))
    linked = link(suspect, master, dictionary, {"A": id_map})
    check(linked, truth, 0.99)  # linked by values instead, and rightly
    assert linked.id_links.get("A", 0) <= 5


def test_linked_values_are_the_suspects_numbers(master, dictionary):
    copy = released(master, dictionary, 60)
    suspect, _ = split(disguise(copy, 61))
    linked = link(suspect, master, dictionary)
    source = {m: s for s, m in linked.columns.items()}["p30690_i0"]
    np.testing.assert_array_equal(linked.values["p30690_i0"],
                                  suspect[source].cast(pl.Float64).fill_null(np.nan).to_numpy())
    assert linked.rows_read == suspect.height


def test_apparent_grid():
    assert apparent_grid(np.array([1.25, 2.5, 3.75, np.nan, 0.0])) == 0.01
    assert apparent_grid(np.array([1950.0, 1960.0, 1940.0])) == 10.0
    assert apparent_grid(np.array([0.1 + 0.2, 0.7])) == 0.1  # binary fractions do not matter
    assert apparent_grid(np.random.default_rng(0).normal(size=100)) == 0.0


def test_bad_masters_are_refused(master, dictionary):
    with pytest.raises(Invalid, match="eid"):
        link(master.drop("eid"), master.drop("eid"), dictionary)
    with pytest.raises(Invalid, match="not a dictionary column"):
        link(master, master.with_columns(pl.lit(1).alias("height")), dictionary)
    with pytest.raises(Invalid, match="empty"):
        link(master, master.head(0), dictionary)


# -- reading suspect files ---------------------------------------------------------------------


def test_text_files_are_sniffed_and_typed(tmp_path):
    path = tmp_path / "leak.txt"
    path.write_text('\ufeffa|b|"c|d"\n1|x| 2.5\nNA|y|\n3|z|-1e3\n')
    frame = read_suspect(path)
    assert frame.columns == ["a", "b", "c|d"]
    assert frame["a"].dtype == pl.Float64 and frame["a"].to_list() == [1.0, None, 3.0]
    assert frame["b"].dtype == pl.String
    assert frame["c|d"].to_list() == [2.5, None, -1000.0]


def test_decimal_commas_read_as_numbers(tmp_path):
    path = tmp_path / "leak.csv"
    path.write_text("x;y\n1,25;a\n2,5;b\n")
    assert read_suspect(path)["x"].to_list() == [1.25, 2.5]


def test_excel_is_told_by_content_not_name(tmp_path):
    path = tmp_path / "leak.dat"
    write_excel(pl.DataFrame({"v": ["1.5", "2"], "w": [1, None]}), path)
    frame = read_suspect(path)
    assert frame["v"].to_list() == [1.5, 2.0] and frame["w"].to_list() == [1.0, None]


@pytest.mark.parametrize(("content", "reason"), [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "legacy Excel"),
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"a,b\x00\x01\x02", "binary"),
    (b"", "empty"),
    (b"only\none\ncolumn\n", "single column"),
    (b"a,b\n", "no data rows"),
    (b"PAR1 not really", "Parquet"),
    (b"PK\x03\x04 not a workbook", "xlsx"),
])
def test_unreadable_files_are_refused_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "leak"
    path.write_bytes(content)
    with pytest.raises(Invalid, match=reason):
        read_suspect(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(Invalid, match="cannot read"):
        read_suspect(tmp_path / "nowhere.csv")


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_sha256(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_a_short_suspect_with_its_names_links(master, dictionary):
    copy = released(master, dictionary, 90).head(20)
    suspect, truth = copy.drop("pid", TRUTH), copy[TRUTH].to_numpy()
    check(link(suspect, master, dictionary), truth, 0.95)
