"""`strongroom risk` and `strongroom anonymise` at the console: real files, a real process for
the main paths, the same app in-process for the refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from strongroom.cli import app
from strongroom.cohort.synth import synthesise


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strongroom.cli", *args], capture_output=True,
                          text=True, check=False, env=dict(os.environ))


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    people = synthesise(3000, 41).participants.select(
        ["eid", "p31", "p34", "p52", "p54_i0", "p21000_i0", "p20116_i0", "p21001_i0"])
    path = tmp_path_factory.mktemp("privacy") / "cohort.csv"
    people.write_csv(path)
    return path


def test_risk_report_from_dictionary_roles(cohort_csv: Path) -> None:
    done = run("risk", str(cohort_csv), "--sensitive", "p20116_i0",
               "--sampling-fraction", "0.006", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["quasi_identifiers"] == ["p31", "p34", "p52", "p54_i0", "p21000_i0"]
    assert report["rows"] == 3000 and report["k_anonymity"] >= 1
    assert report["sampling_frame"]["kind"] == "population"
    assert set(report["population_uniques"]["models"]) == {"pitman", "zayatz", "snb"}
    assert report["diversity"][0]["distance"] == "equal"  # smoking status is categorical
    text = run("risk", str(cohort_csv), "--qi", "p31,p34", "--population", "60000")
    assert text.returncode == 0, text.stderr
    assert "k-anonymity: k =" in text.stdout and "journalist" in text.stdout
    assert "quasi-identifiers: p31, p34" in text.stdout


def test_anonymise_writes_a_table_meeting_k(cohort_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "released.parquet"
    done = run("anonymise", str(cohort_csv), "--k", "5", "--l", "2", "--sensitive",
               "p20116_i0", "--suppression-limit", "0.05", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["after"]["k"] >= 5 and result["after"]["l_distinct"] >= 2
    assert result["solution"]["suppressed_share"] <= 0.05
    released = pl.read_parquet(out)
    original = pl.read_csv(cohort_csv)
    assert released.height == original.height
    assert released["p21001_i0"].equals(original["p21001_i0"])  # not a quasi-identifier
    again = run("anonymise", str(cohort_csv), "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr


runner = CliRunner()


def test_refusals_say_what_is_wrong_and_what_to_do(cohort_csv: Path, tmp_path: Path) -> None:
    cases = [
        (["risk", str(cohort_csv), "--qi", "p31,nope"], "'nope'"),
        (["risk", str(tmp_path / "absent.csv")], "no file"),
        (["risk", str(tmp_path)], "is a folder"),
        (["risk", str(cohort_csv), "--population", "10", "--sampling-fraction", "0.1"],
         "not both"),
        (["risk", str(cohort_csv), "--population", "10"], "cannot be smaller"),
        (["risk", str(cohort_csv), "--missing", "drop"], "--missing"),
        (["anonymise", str(cohort_csv), "--k", "5", "--l", "2", "--out",
          str(tmp_path / "x.csv")], "sensitive attribute"),
        (["anonymise", str(cohort_csv), "--out", str(tmp_path / "x.xlsx")], ".csv, .tsv"),
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("p31,p34\n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02garbage")
    no_roles = tmp_path / "plain.csv"
    no_roles.write_text("a,b\n1,2\n3,4\n")
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not really")
    cases += [(["risk", str(empty)], "is empty"), (["risk", str(header_only)], "no data rows"),
              (["risk", str(binary)], "binary"), (["risk", str(no_roles)], "--qi COLUMN"),
              (["risk", str(damaged)], "Parquet but cannot be read")]
    for args, message in cases:
        done = runner.invoke(app, args)
        assert done.exit_code == 1, (args, done.output)
        assert message in " ".join(done.output.split()), (args, done.output)  # unwrapped
    assert not (tmp_path / "x.xlsx").exists()


def test_tsv_and_a_plain_table_with_named_columns(tmp_path: Path) -> None:
    plain = tmp_path / "people.tsv"
    pl.DataFrame({"town": ["a", "a", "b", "b", "b"], "year": [1950, 1950, 1960, 1960, 1961],
                  "illness": ["x", "y", "x", "x", "z"]}).write_csv(plain, separator="\t")
    done = runner.invoke(app, ["risk", str(plain), "--qi", "town", "--qi", "year",
                               "--sensitive", "illness", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["k_anonymity"] == 1 and report["classes"] == 3
    assert report["diversity"][0]["l_distinct"] == 1
