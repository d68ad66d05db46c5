"""Clear failures through the real CLI: a full disk, a damaged or unreachable metadata
database, a directory given as the key file. Each says what happened, that nothing was
changed, and what to do; exits 1 with no traceback; and the store is, byte for byte, as it
was. The full disk is real where this machine lets the test mount a small tmpfs (it does
here, as root), and is also injected at the OS call (``fsync`` raising ENOSPC) everywhere."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

import strongroom.cohort.store as store_module
from strongroom.audit.outbox import waiting
from strongroom.audit.tables import ENTRIES
from strongroom.cli import app
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.store import CONFIG, METADATA_DB, Store
from strongroom.cohort.synth import synthesise

WHO = ("--operator", "A. Tester", "--reason", "a test")  # ingest names who and why

REFUSED_URL = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # port 1: refused


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    # a clear failure is a message and exit 1, never a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.output
    return result


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the data directory -> its sha256 (the audit witness aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small cohort and one too big for the small disk (as synth directories)."""
    where = tmp_path_factory.mktemp("cohorts")
    small, big = where / "small", where / "big"
    write_cohort_dir(synthesise(200, 1), small, {"seed": 1, "participants": 200})
    write_cohort_dir(synthesise(20_000, 2), big, {"seed": 2, "participants": 20_000})
    return small, big


def made(root: Path, key: Path, cohort: Path) -> None:
    assert run("init", str(root), "--key-file", str(key)).exit_code == 0
    done = run("cohort", "ingest", str(cohort), "-d", str(root), "--key-file", str(key), *WHO)
    assert done.exit_code == 0, done.output
    with Store(root, None) as store, store.engine.connect() as conn:  # the CLI drained it
        logged = conn.execute(select(ENTRIES.c.subject)
                              .where(ENTRIES.c.type == "cohort.ingested")).scalars().all()
        current = store.current()
        assert current is not None and logged == [current.id] and waiting(conn) == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, mounted for the test (skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); the injected "
                    f"full disk below still runs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def assert_full_disk_refused(root: Path, key: Path, big: Path) -> None:
    before = snapshot(root)
    with Store.open(root, key) as store:
        current = store.current()
    assert current is not None
    full = run("cohort", "ingest", str(big), "-d", str(root), "--key-file", str(key), *WHO)
    assert full.exit_code == 1
    said = " ".join(full.output.split())
    assert "the disk is full" in said and "Nothing was changed" in said
    assert "Free space" in said
    assert snapshot(root) == before  # no half-written file, no staging left, nothing lost
    with Store.open(root, key) as store:
        now = store.current()
        assert now is not None and now.id == current.id
    info = run("cohort", "info", "-d", str(root), "--key-file", str(key))
    assert info.exit_code == 0 and "200 participants" in info.output


def test_a_full_disk_on_ingest_for_real(
        small_disk: Path, tmp_path: Path, cohorts: tuple[Path, Path]) -> None:
    small, big = cohorts
    root, key = small_disk / "data", tmp_path / "keys" / "master.key"
    made(root, key, small)
    assert_full_disk_refused(root, key, big)


def test_a_full_disk_on_ingest_injected_at_the_write(
        tmp_path: Path, cohorts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    small, big = cohorts
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    made(root, key, small)
    real = os.fsync

    def full(fd: int) -> None:  # the sealed tables' writes fail; the rest of the disk works
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".parquet.enc.tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(store_module.os, "fsync", full)
    assert_full_disk_refused(root, key, big)


def test_a_damaged_metadata_database_is_named_and_left_alone(
        tmp_path: Path, cohorts: tuple[Path, Path]) -> None:
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    made(root, key, cohorts[0])
    for extra in ("-wal", "-shm"):
        (root / f"{METADATA_DB}{extra}").unlink(missing_ok=True)
    (root / METADATA_DB).write_bytes(uuid.uuid4().bytes * 256)  # garbage, not a database
    before = snapshot(root)
    for command in (["cohort", "info"], ["cohort", "ingest", str(cohorts[0]), *WHO]):
        done = run(*command, "-d", str(root), "--key-file", str(key))
        said = " ".join(done.output.split())
        assert done.exit_code == 1, said
        assert "damaged" in said and "Nothing was changed" in said
        assert "Restore it from a backup" in said and "store recover" in said
        assert snapshot(root) == before


def test_an_unreachable_database_changes_nothing(
        tmp_path: Path, cohorts: tuple[Path, Path]) -> None:
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    refused = run("init", str(root), "--key-file", str(key), "--database-url", REFUSED_URL)
    said = " ".join(refused.output.split())
    assert refused.exit_code == 1 and "cannot reach the metadata database" in said
    assert "Nothing was created" in said and "--database-url" in said
    assert not root.exists() and not key.exists()
    # a store whose database goes away: every command says so, and touches nothing
    made(root, key, cohorts[0])
    config = yaml.safe_load((root / CONFIG).read_text())
    (root / CONFIG).write_text(yaml.safe_dump({**config, "database_url": REFUSED_URL}))
    before = snapshot(root)
    for command in (["cohort", "info"], ["store", "check"], ["audit", "verify"]):
        done = run(*command, "-d", str(root), "--key-file", str(key))
        said = " ".join(done.output.split())
        assert done.exit_code == 1, (command, said)
        assert "Connection refused" in said or "cannot reach" in said, (command, said)
    assert snapshot(root) == before


def test_a_directory_given_as_the_key_file(tmp_path: Path, cohorts: tuple[Path, Path]) -> None:
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    made(root, key, cohorts[0])
    before = snapshot(root)
    for command in (["cohort", "info"], ["store", "check"]):
        done = run(*command, "-d", str(root), "--key-file", str(key.parent))
        said = " ".join(done.output.split())
        assert done.exit_code == 1 and "is a directory" in said, said
        assert "changed" in said
    assert snapshot(root) == before
    shutil.rmtree(root)
