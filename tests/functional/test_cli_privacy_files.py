"""`strongroom risk` and `strongroom anonymise` take what the Python API takes: any delimiter,
hierarchies from files in ARX's CSV layout, the ordered distance named per column. Run as a
real process; each figure is compared with the API's own on the same rows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from strongroom.cli import app
from strongroom.privacy import hierarchies
from strongroom.privacy.anonymise import Targets, anonymise
from strongroom.privacy.hierarchies import Hierarchy

ROWS = 800


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command, in this process through Typer's runner (the process boundary itself is
    tested in test_cli.py): standard output and error apart, as a shell sees them."""
    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout,
                                       result.stderr)


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    rng = np.random.default_rng(5)
    return pl.DataFrame({
        "age": rng.integers(20, 80, ROWS), "sex": rng.choice(["F", "M"], ROWS),
        "zip": rng.choice(["81667", "81668", "81669", "81670", "81671"], ROWS),
        "disease": rng.choice(["flu", "asthma", "gastritis", "ulcer"], ROWS),
        "code": rng.integers(0, 4, ROWS), "score": rng.integers(1, 6, ROWS)})


def arx_rows() -> list[list[str]]:
    """ARX's layout for age: the value, its 5-year band, its 10-year band, then *."""
    return [[str(a), f"{a // 5 * 5}-{a // 5 * 5 + 4}", f"{a // 10 * 10}-{a // 10 * 10 + 9}",
             "*"] for a in range(20, 80)]


@pytest.fixture(scope="module")
def files(table: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("files")
    found = {"semicolon": root / "table.csv", "pipe": root / "table.txt",
             "comma": root / "comma.csv", "age": root / "age.csv",
             "short": root / "short.csv", "ragged": root / "ragged.csv"}
    table.write_csv(found["semicolon"], separator=";")
    table.write_csv(found["pipe"], separator="|")
    table.write_csv(found["comma"])
    found["age"].write_text("\n".join(";".join(r) for r in arx_rows()) + "\n")
    found["short"].write_text("\n".join(";".join(r) for r in arx_rows()[:-3]) + "\n")
    found["ragged"].write_text("20;20-24;*\n21;20-24\n")
    return found


def test_any_delimiter_gives_the_same_report(files: dict[str, Path]) -> None:
    reports = []
    for name, extra in (("comma", ()), ("semicolon", ()), ("semicolon", ("--delimiter", ";")),
                        ("pipe", ("--delimiter", "|"))):
        done = run("risk", str(files[name]), "--qi", "age,sex,zip", "--sensitive", "disease",
                   "--population", "80000", "--json", *extra)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["rows"] == ROWS and report["quasi_identifiers"] == ["age", "sex", "zip"]
        reports.append({k: report[k] for k in ("k_anonymity", "classes", "sample_uniques",
                                               "population_uniques", "diversity")})
    assert all(r == reports[0] for r in reports)  # the delimiter changes no figure
    wrong = run("risk", str(files["semicolon"]), "--qi", "age", "--delimiter", "ab")
    assert wrong.returncode == 1 and "one character" in wrong.stderr


def test_ordered_is_named_per_column(files: dict[str, Path]) -> None:
    done = run("risk", str(files["semicolon"]), "--qi", "age,sex", "--sensitive",
               "code,score", "--ordered", "score", "--json")
    assert done.returncode == 0, done.stderr
    distances = {d["attribute"]: d["distance"] for d in json.loads(done.stdout)["diversity"]}
    assert distances == {"code": "equal", "score": "ordered"}
    stray = run("risk", str(files["semicolon"]), "--qi", "age", "--sensitive", "code",
                "--ordered", "score")
    assert stray.returncode == 1 and "not among the sensitive" in stray.stderr


def test_anonymise_with_an_arx_hierarchy_file_matches_the_api(
        table: pl.DataFrame, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "released.csv"
    done = run("anonymise", str(files["semicolon"]), "--qi", "age,sex,zip", "--k", "5",
               "--sensitive", "disease", "--l", "2", "--hierarchy", f"age={files['age']}",
               "--suppression-limit", "0.02", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    solution = json.loads(done.stdout)["solution"]
    given = {"age": Hierarchy.from_table("age", arx_rows())}
    api = anonymise(table, hierarchies.build(table, ["age", "sex", "zip"], overrides=given),
                    Targets(k=5, l=2, suppression_limit=0.02, sensitive=("disease",),
                            ordered=frozenset()))
    assert solution["levels"] == api.solution.levels
    assert solution["loss"] == pytest.approx(api.solution.loss)
    released = pl.read_csv(out)
    labels = {row[solution["levels"]["age"]] for row in arx_rows()} if \
        0 < solution["levels"]["age"] < 4 else None
    if labels is not None:  # the file's own labels, nothing else (suppressed rows blank)
        assert set(released["age"].drop_nulls().cast(pl.String)) <= labels
    assert json.loads(done.stdout)["after"]["k"] >= 5


def test_hierarchy_files_that_would_leak_or_cannot_be_read_are_refused(
        files: dict[str, Path], tmp_path: Path) -> None:
    out = str(tmp_path / "x.csv")
    base = ("anonymise", str(files["semicolon"]), "--qi", "age,sex", "--out", out)
    cases = [
        (("--hierarchy", f"age={files['short']}"), "have no row in its hierarchy file"),
        (("--hierarchy", f"age={files['ragged']}"), "rows of equal length"),
        (("--hierarchy", "age"), "COLUMN=FILE"),
        (("--hierarchy", f"zip={files['age']}"), "not among the quasi-identifiers"),
        (("--hierarchy", f"age={tmp_path / 'none.csv'}"), "no hierarchy file"),
    ]
    for extra, said in cases:
        done = run(*base, *extra)
        assert done.returncode == 1 and said in done.stderr, (extra, done.stderr)
    assert not Path(out).exists()
