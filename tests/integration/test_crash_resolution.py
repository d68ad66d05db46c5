"""An ingest, a backup or a restore killed with SIGKILL at each of its steps is all or nothing,
and the audit log says which (issue 53, items 4, 6 and 7).

The child process is real and dies for real, as in test_audit_outbox.py: it patches the step
*at* which it is to die to ``kill -9`` itself (the patch only chooses the moment; the
database, the files, the journal and the command line are the real ones). No test hook is
compiled into the code. The parent then opens the store as any later command would.

- An ingest cut off anywhere before its commit is rolled back by the next open by itself
  (``cohort.ingest_rolled_back``; the version before stays current; nothing quarantined, the
  store opens); one cut off after its commit keeps its version (``cohort.ingested`` once).
- A backup cut off before its file is in place leaves no file at its path and no ``.partial``
  after the next open (``store.backup_abandoned``); one cut off after its rename is recorded
  by the next open (``store.backed_up``, once, with who ran it) and restores.
- A restore cut off before its rename leaves no store at its path (the next restore there
  removes its staging); one cut off after leaves a store whose log has ``store.restored``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

import strongroom.platform
from strongroom.audit.outbox import waiting
from strongroom.audit.tables import ENTRIES
from strongroom.audit.verify import verify as audit_verify
from strongroom.cohort import recovery
from strongroom.cohort.journal import JOURNAL_DIR
from strongroom.cohort.store import COHORT_DIR, QUARANTINE_DIR, Store, init_store
from strongroom.cohort.validate import validate
from strongroom.operations.backup import read_header
from strongroom.platform import Platform, open_audit
from tests.cli_runner import cli
from tests.conftest import small_cohort
from tests.kill_points import run_child

WHO = ["--operator", "Ada Operator", "--reason", "CHG-1234 nightly"]

CHILD = r'''
import os, signal, sys
from pathlib import Path

point, root, key, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])

import strongroom.cohort.journal as journal
import strongroom.cohort.store as store_module
import strongroom.operations.backup as backup_module

kind, step = point.split(":")
calls = {"n": 0}
def third(*args, **kwargs):
    calls["n"] += 1
    return calls["n"] == 3

if point == "ingest:intent":  # the intent is durable; nothing sealed yet
    after(journal, "begin", lambda root, kind, *a: kind == "ingest")
elif point == "ingest:sealing":  # some tables sealed in the staging directory
    after(store_module.Store, "_write_table")
elif point == "ingest:sealed":  # every file sealed and flushed, not yet renamed into place
    before(store_module.os, "rename", lambda src, dst: Path(src).name.startswith(".staging-"))
elif point == "ingest:renamed":  # in place; the database transaction open, not committed
    after(store_module.Store, "_retire_old")
elif point == "ingest:committed":  # the version and its event committed; the intent not removed
    before(journal, "finish", lambda intent: intent.kind == "ingest")
elif point == "backup:intent":
    after(journal, "begin", lambda root, kind, *a: kind == "backup")
elif point == "backup:writing":  # the partial file half written
    after(backup_module, "_add", third)
elif point == "backup:written":  # the partial file whole and flushed, not renamed
    after(journal, "update", lambda intent, **more: intent.kind == "backup")
elif point == "backup:renamed":  # the backup at its path, its event not committed
    after(backup_module.os, "rename", lambda src, dst: str(src).endswith(".partial"))
elif point == "backup:recorded":  # its event committed; the intent not removed
    before(journal, "finish", lambda intent: intent.kind == "backup")
elif point == "restore:loading":  # the database loaded in the staging directory
    after(backup_module.dbdump, "load")
elif point == "restore:staged":  # its event in the restored outbox; not renamed into place
    before(backup_module.os, "rename", lambda src, dst: Path(dst) == out)
elif point == "restore:renamed":  # the store at its path; no process has opened it yet
    after(backup_module.os, "rename", lambda src, dst: Path(dst) == out)
else:
    raise SystemExit(f"no point {point}")

if kind == "ingest":
    from strongroom.cohort.dictionary import shipped_dictionary
    from strongroom.cohort.validate import validate
    from tests.conftest import small_cohort

    with store_module.Store.open(root, key) as store:
        store.write_version(validate(small_cohort(), shipped_dictionary(), "small"))
else:
    from strongroom.cli import app

    who = ["--operator", "Ada Operator", "--reason", "CHG-1234 nightly"]
    if kind == "backup":
        args = ["backup", str(out), "-d", str(root), "--key-file", str(key), *who]
    else:
        args = ["restore", sys.argv[5], str(out), "--key-file", str(key), *who]
    app(args, prog_name="strongroom", standalone_mode=False)
print("finished")
'''


def crash(point: str, root: Path, key: Path, out: Path, *extra: str) -> None:
    """Run the child; it must die of SIGKILL at ``point`` (not finish, not fail)."""
    done = run_child(CHILD, [point, str(root), str(key), str(out), *extra],
                     drop=["STRONGROOM_MASTER_KEY", "STRONGROOM_KEY_FILE"])
    assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr[-3000:])
    assert "finished" not in done.stdout


@pytest.fixture
def made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path, str]]:
    """A store with one cohort version: (root, key, that version's id)."""
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    monkeypatch.delenv("STRONGROOM_KEY_FILE", raising=False)
    key = tmp_path / "keys" / "master.key"
    with init_store(tmp_path / "data", key_file=key) as store:
        first = store.write_version(validate(small_cohort(), store.dictionary, "small")).id
    yield tmp_path / "data", key, first


def events(store: Store, type: str) -> list[dict[str, object]]:
    """The details of every ``type`` entry, once the outbox is drained and the log signed."""
    with open_audit(store) as audit:
        public = audit.public_key
        found = [dict(e.details, subject=e.subject, actor=e.actor) for e in audit.entries()
                 if e.type == type]
    with store.engine.connect() as conn:
        assert waiting(conn) == 0
    report = audit_verify(store.engine, public_key=public,
                          witness=store.root / strongroom.platform.WITNESS)
    assert report.ok, report.summary()
    return found


def count(store: Store, type: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ENTRIES)
                                .where(ENTRIES.c.type == type)).scalar_one())


@pytest.mark.parametrize("step", ["intent", "sealing", "sealed", "renamed"])
def test_an_ingest_cut_off_before_its_commit_is_rolled_back_by_the_next_open(
        made: tuple[Path, Path, str], tmp_path: Path, step: str) -> None:
    root, key, first = made
    crash(f"ingest:{step}", root, key, tmp_path / "unused")
    assert (root / JOURNAL_DIR).is_dir()  # the intent survived the kill
    with Store(root, None) as raw:  # `store check` says so, and that it is no problem
        report = recovery.check(raw)
    assert report.ok and any("cut off" in note for note in report.notes), report
    with Store.open(root, key) as store:  # opens: nothing held, no operator needed
        assert store.current() is not None and store.current().id == first
        assert [v.id for v in store.versions()] == [first]
        rolled = events(store, "cohort.ingest_rolled_back")
        assert count(store, "cohort.ingested") == 1  # the first ingest's only
    assert len(rolled) == 1 and rolled[0]["actor"] == "system"
    left = sorted(p.name for p in (root / COHORT_DIR).iterdir())
    assert left == [first]  # the cut-off version's files, sealed or staged, are gone
    assert rolled[0]["subject"] not in left
    assert bool(rolled[0]["removed"]) == (step != "intent")
    assert not (root / QUARANTINE_DIR).exists() and not (root / JOURNAL_DIR).exists()
    with Platform.open(root, key) as platform:  # and again: nothing recorded twice
        assert count(platform.store, "cohort.ingest_rolled_back") == 1


def test_an_ingest_cut_off_after_its_commit_keeps_its_version(
        made: tuple[Path, Path, str], tmp_path: Path) -> None:
    root, key, first = made
    crash("ingest:committed", root, key, tmp_path / "unused")
    with Store.open(root, key) as store:
        current = store.current()
        assert current is not None and current.id != first
        ingested = events(store, "cohort.ingested")
        assert count(store, "cohort.ingest_rolled_back") == 0
    assert [e["subject"] for e in ingested] == [first, current.id]
    assert not (root / JOURNAL_DIR).exists()


@pytest.mark.parametrize("step", ["intent", "writing", "written"])
def test_a_backup_cut_off_before_its_file_is_whole_leaves_nothing_and_says_so(
        made: tuple[Path, Path, str], tmp_path: Path, step: str) -> None:
    root, key, _ = made
    out = tmp_path / "backups" / "night.srbk"
    out.parent.mkdir()
    crash(f"backup:{step}", root, key, out)
    assert not out.exists()
    if step != "intent":
        assert [p.name.endswith(".partial") for p in out.parent.iterdir()] == [True]
    with Store.open(root, key) as store:  # any open resolves it (so does the next backup)
        abandoned = events(store, "store.backup_abandoned")
        assert count(store, "store.backed_up") == 0
    assert list(out.parent.iterdir()) == []  # the .partial, provably this backup's, removed
    assert len(abandoned) == 1 and abandoned[0]["removed_partial"] == (step != "intent")
    assert abandoned[0]["operator"] == "Ada Operator"
    assert abandoned[0]["reason"] == "CHG-1234 nightly"
    assert not (root / JOURNAL_DIR).exists()


@pytest.mark.parametrize("step", ["renamed", "recorded"])
def test_a_backup_cut_off_once_its_file_is_in_place_is_recorded_once(
        made: tuple[Path, Path, str], tmp_path: Path, step: str) -> None:
    root, key, _ = made
    out = tmp_path / "backups" / "night.srbk"
    out.parent.mkdir()
    crash(f"backup:{step}", root, key, out)
    assert out.is_file()
    with Platform.open(root, key) as platform:
        backed = events(platform.store, "store.backed_up")
        assert count(platform.store, "store.backup_abandoned") == 0
    assert len(backed) == 1
    assert backed[0]["subject"] == read_header(out)["backup_id"]
    assert backed[0]["operator"] == "Ada Operator" and backed[0]["bytes"] == out.stat().st_size
    assert backed[0].get("recorded_on_open", False) == (step == "renamed")
    assert [p.name for p in out.parent.iterdir()] == ["night.srbk"]
    # and it is a whole backup: it restores
    code, said, err = cli("restore", str(out), str(tmp_path / "restored"), "--key-file",
                          str(key), *WHO, cwd=tmp_path)
    assert code == 0, said + err


@pytest.fixture
def archive(made: tuple[Path, Path, str], tmp_path: Path) -> Path:
    root, key, _ = made
    code, said, err = cli("backup", str(tmp_path / "b.srbk"), "-d", str(root), "--key-file",
                          str(key), *WHO, cwd=tmp_path)
    assert code == 0, said + err
    return tmp_path / "b.srbk"


@pytest.mark.parametrize("step", ["loading", "staged"])
def test_a_restore_cut_off_before_its_rename_leaves_no_store(
        made: tuple[Path, Path, str], archive: Path, tmp_path: Path, step: str) -> None:
    _, key, _ = made
    into = tmp_path / "restored"
    crash(f"restore:{step}", tmp_path, key, into, str(archive))
    assert not into.exists()
    assert [p.name for p in tmp_path.glob(".restored.restoring-*")]  # its staging, killed
    code, said, err = cli("restore", str(archive), str(into), "--key-file", str(key), *WHO,
                          cwd=tmp_path)
    assert code == 0, said + err
    assert not list(tmp_path.glob(".restored.restoring-*"))  # the next restore removed it
    with Store.open(into, key) as store:
        restored = events(store, "store.restored")
    assert len(restored) == 1 and restored[0]["operator"] == "Ada Operator"


def test_a_restore_cut_off_after_its_rename_has_its_event(
        made: tuple[Path, Path, str], archive: Path, tmp_path: Path) -> None:
    _, key, _ = made
    into = tmp_path / "restored"
    crash("restore:renamed", tmp_path, key, into, str(archive))
    with Store.open(into, key) as store:
        restored = events(store, "store.restored")
    assert len(restored) == 1
    assert restored[0]["backup_id"] == read_header(archive)["backup_id"]
    assert restored[0]["reason"] == "CHG-1234 nightly"
    assert not list(tmp_path.glob(".restored.restoring-*"))
