"""The command line end to end, as a custodian runs it: real processes (forked from a server
that has imported Strongroom once, and one fresh interpreter), real files; the demo's full run
in this process, so that its people act with the test worlds' settings."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.access_world import SETTINGS
from tests.cli_runner import cli
from tests.kill_points import Done, run_child

WHO = ("--operator", "A. Tester", "--reason", "a test")  # ingest names who and why

pytestmark = pytest.mark.slow  # the demo and ingest commands in subprocesses


CLI = "from strongroom.cli import main\nmain()\n"


def run(*args: str, env: dict[str, str] | None = None) -> Done:
    """`strongroom ARGS` in a process of its own, forked from a server that has imported
    Strongroom (tests/kill_points.run_child): a fresh interpreter spent seconds of CPU on
    imports before each command's first line."""
    return run_child(CLI, args, env={**os.environ, **(env or {})})


def run_fresh(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m strongroom.cli ARGS` in a fresh interpreter, as the installed command runs."""
    return subprocess.run([sys.executable, "-m", "strongroom.cli", *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture
def store_dir(tmp_path: Path) -> tuple[Path, Path]:
    data, key = tmp_path / "data", tmp_path / "secrets" / "master.key"
    done = run("init", str(data), "--key-file", str(key))
    assert done.returncode == 0, done.stderr
    assert "master key written to" in done.stdout
    return data, key


def info(data: Path, key: Path) -> dict[str, object]:
    done = run("cohort", "info", "-d", str(data), "--key-file", str(key), "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_synth_ingest_info(tmp_path: Path, store_dir: tuple[Path, Path]) -> None:
    data, key = store_dir
    out = tmp_path / "synth"
    done = run("cohort", "synth", "--participants", "3000", "--seed", "5", "--out", str(out))
    assert done.returncode == 0, done.stderr
    done = run("cohort", "ingest", str(out), "-d", str(data), "--key-file", str(key), *WHO)
    assert done.returncode == 0, done.stderr
    summary = info(data, key)
    version = summary["version"]
    assert isinstance(version, dict)
    assert version["participants"] == 3000
    assert {"participants", "diagnoses", "operations", "deaths", "cancers"} <= set(
        version["tables"])


def test_bad_file_is_refused_and_changes_nothing(
    tmp_path: Path, store_dir: tuple[Path, Path]
) -> None:
    data, key = store_dir
    good = tmp_path / "good.csv"
    good.write_text("eid,31-0.0,34-0.0\n1000017,0,1950\n1000025,1,1961\n")
    done = run("cohort", "ingest", str(good), "-d", str(data), "--key-file", str(key), *WHO)
    assert done.returncode == 0, done.stderr
    before = info(data, key)["version"]
    bad = tmp_path / "bad.csv"
    bad.write_text("eid,31-0.0,34-0.0\n1000017,0,1950\n1000025,3,1961\n1000025,1,19x1\n")
    done = run("cohort", "ingest", str(bad), "-d", str(data), "--key-file", str(key), *WHO)
    assert done.returncode == 1
    assert "nothing was changed" in done.stderr
    assert "field 31 (Sex), row 2: code is not in coding 9" in done.stderr
    assert "field 34 (Year of birth), row 3" in done.stderr and "'19x1'" in done.stderr
    assert "duplicate eid" in done.stderr
    assert "Traceback" not in done.stderr
    assert info(data, key)["version"] == before


def test_wrong_key_is_a_clear_refusal(tmp_path: Path, store_dir: tuple[Path, Path]) -> None:
    data, _ = store_dir
    other = tmp_path / "other"
    assert run("init", str(other), "--key-file", str(tmp_path / "other.key")).returncode == 0
    done = run("cohort", "info", "-d", str(data), "--key-file", str(tmp_path / "other.key"))
    assert done.returncode == 1
    assert "not this store's key" in done.stderr


def test_not_a_data_directory(tmp_path: Path) -> None:
    done = run("cohort", "info", "-d", str(tmp_path))
    assert done.returncode == 1
    assert "strongroom init" in done.stderr


def test_convert_between_styles(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("eid,31-0.0,4080-0.0,4080-0.1\n1000017,0,143,139\n1000025,1,128,\n")
    target = tmp_path / "out.tab"
    done = run("cohort", "convert", str(source), str(target), "--style", "rtab")
    assert done.returncode == 0, done.stderr
    lines = target.read_text().splitlines()
    assert lines[0].split("\t")[0] == "f.eid"
    assert "f.4080.0.1" in lines[0]
    assert "NA" in lines[2]


def test_demo_runs_its_jobs_and_is_made_again_over_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`strongroom demo` at the least its story needs (1,000 participants: the extract, the
    alert and the leaked file), with its two jobs (run nowhere else), then made again over
    itself, smaller; in this process (Typer's runner), its people acting with the test worlds'
    settings: no timing floors on their answers, and cheap password hashes. Its genotypes, its
    GWAS, its stages piped and its whole report are read in
    tests/functional/test_demo_how_tos.py, whose world the demo makes."""
    from strongroom.cli import demo as command
    from strongroom.demo import run_demo

    monkeypatch.setattr(command, "run_demo", functools.partial(run_demo, settings=SETTINGS))
    demo_dir = tmp_path / "demo"
    status, out, err = cli("demo", "--dir", str(demo_dir), "--participants", "1000",
                           "--variants", "0", "--no-serve", cwd=tmp_path)
    assert status == 0, err
    assert "1,000 participants" in out
    assert (tmp_path / "demo.key").is_file()
    assert out.count("totp: ") == 12 and out.count("\n  project prj_") == 6
    assert "[demo] running two jobs in their sandboxes: done in " in out
    assert "simulating genotypes" not in out  # none asked for
    assert f"strongroom attribute {tmp_path / 'demo-leaked.csv'}" in out
    assert (tmp_path / "demo-leaked.csv").is_file()
    # made again over the first, smaller, with no jobs: the recreation is what is tested
    monkeypatch.setattr(command, "run_demo",
                        functools.partial(run_demo, settings=SETTINGS, jobs=False))
    status, again, err = cli("demo", "--dir", str(demo_dir), "--participants", "500",
                             "--variants", "0", "--no-serve", cwd=tmp_path)
    assert status == 0, err
    assert "500 participants" in again and "1,000 participants" not in again
    assert not (tmp_path / "demo-leaked.csv").exists()  # the first run's, cleared


def test_demo_never_deletes_a_foreign_directory(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    done = run_fresh("demo", "--dir", str(precious), "--participants", "100", "--no-serve")
    assert done.returncode == 1
    assert "not made by `strongroom demo`" in done.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"
