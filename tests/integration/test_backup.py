"""Backups and restores, on SQLite and PostgreSQL, taken while the platform writes.

Guarantee: *a backup is one encrypted file, holding no master key, that restores into an empty
directory a store whose audit log verifies with the same signed root and whose cohort reads
back identically; a backup altered anywhere restores nothing.* And a scrub reads every sealed
byte."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from strongroom.access.bootstrap import bootstrap
from strongroom.audit.events import EventType
from strongroom.audit.operators import Operator
from strongroom.audit.tables import CHECKPOINTS
from strongroom.audit.verify import verify as audit_verify
from strongroom.cli import app
from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.store import COHORT_DIR, Store, init_store, source_for
from strongroom.cohort.validate import validate
from strongroom.operations.backup import BackupError, backup, read_header, restore
from strongroom.platform import Platform
from tests.conftest import postgres_schema, small_cohort

BY = Operator("Test Operator", "the backup tests")
WHO = ("--operator", "Test Operator", "--reason", "the backup tests")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def other_engine_url(database_url: str | None) -> Iterator[str | None]:
    """Restore onto the other engine: a SQLite store onto an empty PostgreSQL schema, a
    PostgreSQL store onto SQLite (so both loaders run, and a custodian can move)."""
    if database_url is not None:
        yield None
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def live(tmp_path: Path, dictionary: Dictionary, database_url: str | None,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """A platform with a cohort, people and an audit history."""
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    key = tmp_path / "keys" / "master.key"
    with init_store(tmp_path / "data", key_file=key, database_url=database_url) as store:
        store.write_version(validate(small_cohort(), dictionary, "small"))
    with Platform.open(tmp_path / "data", key, checkpoint_every=10) as platform:
        bootstrap(platform.access, institution="Custodian", country="GB",
                  jurisdiction="UK GDPR", networks=["127.0.0.0/8"], email="a@example.org",
                  name="Admin")
        yield platform


def _key(platform: Platform) -> Path:
    return platform.store.root.parent / "keys" / "master.key"


def test_a_backup_taken_while_the_platform_writes_restores_the_same_store(
        live: Platform, tmp_path: Path, other_engine_url: str | None) -> None:
    stop = threading.Event()

    def write() -> None:  # the server's work goes on during the backup
        n = 0
        while not stop.is_set():
            live.access.record(EventType.AUDIT_VERIFIED, "operator", None, {"n": n})
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        made = backup(live.store, tmp_path / "backups" / "one.srbk",
                      by=BY, sign=live.audit.checkpoint)
    finally:
        stop.set()
        writer.join()
    assert made.audit_size > 0 and made.audit_root is not None
    blob = made.path.read_bytes()
    master = MasterKey.load(_key(live))
    assert master.secret not in blob and live.store.key.secret not in blob
    assert oct(made.path.stat().st_mode & 0o777) == "0o600"

    done = restore(made.path, tmp_path / "restored", source_for(_key(live)), other_engine_url,
                   by=BY)
    assert done.audit_root == made.audit_root
    with Platform.open(tmp_path / "restored", _key(live)) as restored:
        report = audit_verify(restored.store.engine, public_key=restored.audit.public_key,
                              witness=restored.witness)
        assert report.ok, report.problem
        assert restored.audit.public_key == live.audit.public_key
        with restored.store.engine.connect() as con:
            root = con.execute(select(CHECKPOINTS.c.root_hash)
                               .where(CHECKPOINTS.c.tree_size == made.audit_size)).scalar()
            people = con.execute(text("SELECT count(*) FROM access_people")).scalar()
        assert root is not None and bytes(root).hex() == made.audit_root
        assert people == 1
        source = dict(live.store.load().tables())
        assert all(frame.equals(source[name])
                   for name, frame in restored.store.load().tables())
        # the restored store goes on working: new entries on top of the old log
        restored.access.record(EventType.AUDIT_VERIFIED, "operator", None, {"after": True})
    with Platform.open(tmp_path / "restored", _key(live)) as again:
        assert audit_verify(again.store.engine, public_key=again.audit.public_key,
                            witness=again.witness).ok
    modes = {p.relative_to(tmp_path / "restored"): p.stat().st_mode & 0o777
             for p in (tmp_path / "restored").rglob("*") if p.name != ".lock"}
    assert all(m == (0o700 if (tmp_path / "restored" / p).is_dir() else 0o600)
               for p, m in modes.items()), modes


def test_a_damaged_or_foreign_backup_restores_nothing(live: Platform, tmp_path: Path) -> None:
    made = backup(live.store, tmp_path / "one.srbk", by=BY)
    # a bit flipped inside a sealed table of the cohort
    damaged = tmp_path / "damaged.srbk"
    with tarfile.open(made.path) as src, tarfile.open(damaged, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("participants.parquet.enc"):
                data = data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(BackupError, match="differs from its digest"):
        restore(damaged, tmp_path / "r1", source_for(_key(live)), by=BY)
    assert not (tmp_path / "r1").exists()
    assert not list(tmp_path.glob(".r1.restoring-*"))
    # the wrong master key
    other = tmp_path / "other.key"
    MasterKey.generate().save(other)
    with pytest.raises(BackupError, match="not this store's key"):
        restore(made.path, tmp_path / "r2", source_for(other), by=BY)
    # a directory that holds something
    (tmp_path / "r3").mkdir()
    (tmp_path / "r3" / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="not empty"):
        restore(made.path, tmp_path / "r3", source_for(_key(live)), by=BY)
    assert (tmp_path / "r3" / "keep.txt").read_text() == "mine"
    # an index swapped in from another backup of the same store
    second = backup(live.store, tmp_path / "two.srbk", by=BY)
    swapped = tmp_path / "swapped.srbk"
    with tarfile.open(made.path) as one, tarfile.open(second.path) as two, \
            tarfile.open(swapped, "w") as dst:
        for member in one.getmembers():
            source = two if member.name == "index.json.enc" else one
            found = source.getmember(member.name)
            dst.addfile(found, source.extractfile(found))
    with pytest.raises(BackupError, match="index does not open"):
        restore(swapped, tmp_path / "r4", source_for(_key(live)), by=BY)
    # never over an existing backup
    with pytest.raises(BackupError, match="already exists"):
        backup(live.store, made.path, by=BY)


def test_backup_and_restore_through_the_command_line(live: Platform, tmp_path: Path) -> None:
    root, key = live.store.root, _key(live)
    live.close()
    code, out = run("backup", str(tmp_path / "b.srbk"), "-d", str(root), "--key-file", str(key),
                    *WHO)
    assert code == 0, out
    assert read_header(tmp_path / "b.srbk")["store_id"] in root.joinpath(
        "strongroom.yaml").read_text()
    # no key named: the backup's keyring says where the master key is
    code, out = run("restore", str(tmp_path / "b.srbk"), str(tmp_path / "r"), *WHO)
    assert code == 0, out
    code, out = run("audit", "verify", "-d", str(tmp_path / "r"), "--key-file", str(key))
    assert code == 0, out
    with Platform.open(tmp_path / "r", key) as restored:
        kinds = [e.type for e in restored.audit.entries()]
    with Platform.open(root, key) as source:  # the backup's own event is after its snapshot
        assert EventType.STORE_BACKED_UP in [e.type for e in source.audit.entries()]
    assert EventType.STORE_RESTORED in kinds and EventType.STORE_BACKED_UP not in kinds
    code, out = run("restore", str(tmp_path / "b.srbk"), str(tmp_path / "r"), *WHO)
    assert code == 1 and "not empty" in out and "Traceback" not in out
    (tmp_path / "junk.srbk").write_bytes(b"not a tar file at all")
    code, out = run("restore", str(tmp_path / "junk.srbk"), str(tmp_path / "r5"),
                    "--key-file", str(key), *WHO)
    assert code == 1 and "not a Strongroom backup" in out


def test_a_scrub_reads_every_sealed_byte(live: Platform) -> None:
    root, key = live.store.root, _key(live)
    live.close()
    code, out = run("store", "scrub", "-d", str(root), "--key-file", str(key))
    assert code == 1 and "--operator NAME --reason TEXT" in out, out  # who scrubs, and why
    code, out = run("store", "scrub", "-d", str(root), "--key-file", str(key), *WHO)
    assert code == 0 and "all intact" in out, out
    table = next((root / COHORT_DIR).glob("*/diagnoses.parquet.enc"))
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0x10
    table.write_bytes(bytes(data))
    code, out = run("store", "scrub", "-d", str(root), "--key-file", str(key), *WHO)
    assert code == 1 and "table diagnoses differs from its digest" in out, out
    with Store.open(root, key) as store, store.engine.connect() as con:
        scrubs = con.execute(select(text("actor"), text("payload"))
                             .select_from(text("audit_entries"))
                             .where(text("type = 'store.scrubbed'"))).all()
    assert len(scrubs) == 2  # the refused one changed nothing, not even the log
    assert all(actor == "operator" and WHO[1] in details and WHO[3] in details
               for actor, details in scrubs), scrubs


def _rewrite(src: Path, dst: Path, change: Callable[[tarfile.TarFile, tarfile.TarFile], None]
             ) -> Path:
    with tarfile.open(src) as one, tarfile.open(dst, "w") as out:
        change(one, out)
    return dst


def _copy_all(one: tarfile.TarFile, out: tarfile.TarFile,
              edit: dict[str, Callable[[bytes], bytes]] | None = None) -> None:
    for member in one.getmembers():
        data = one.extractfile(member).read()  # type: ignore[union-attr]
        if edit and member.name in edit:
            data = edit[member.name](data)
            member.size = len(data)
        out.addfile(member, io.BytesIO(data))


def _extra(out: tarfile.TarFile, name: str, data: bytes, size: int | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    out.addfile(info, io.BytesIO(data))


ON_SQLITE = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])  # no engine's


@ON_SQLITE
@pytest.mark.parametrize("alteration", [
    "header edited", "keyring edited", "extra member", "traversing member",
    "repeated header", "oversized header", "symlink member"])
def test_any_alteration_of_a_backup_restores_nothing(live: Platform, tmp_path: Path,
                                                     alteration: str) -> None:
    """The header and keyring are in the clear but listed, with their digests, in the sealed
    index; nothing the index does not list may be in the file; nothing is read past the size
    it may have."""
    made = backup(live.store, tmp_path / "one.srbk", by=BY)
    bad = tmp_path / "bad.srbk"

    def change(one: tarfile.TarFile, out: tarfile.TarFile) -> None:
        if alteration == "header edited":
            _copy_all(one, out, {"BACKUP.json": lambda b: b.replace(b'"master"', b'"Master"')})
        elif alteration == "keyring edited":
            _copy_all(one, out, {"keyring.json": lambda b: b.replace(b"sealed_at", b"sealed_at",
                                                                      1) + b" "})
        elif alteration == "extra member":
            _copy_all(one, out)
            _extra(out, "files/planted.txt", b"mine")
        elif alteration == "traversing member":
            _copy_all(one, out)
            _extra(out, "../../escape.txt", b"mine")
        elif alteration == "repeated header":
            _copy_all(one, out)
            _extra(out, "BACKUP.json", b'{"format": "strongroom-backup/1"}')
        elif alteration == "oversized header":
            header = one.getmember("BACKUP.json")
            out.addfile(header, one.extractfile(header))
            for member in one.getmembers()[1:]:
                out.addfile(member, one.extractfile(member))
            big = tarfile.TarInfo("files/huge")
            big.size = 1 << 30  # declared, never read
            out.addfile(big, io.BytesIO(b"\0" * (1 << 16)))
        else:
            _copy_all(one, out)
            link = tarfile.TarInfo("files/link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            out.addfile(link)

    with suppress(tarfile.TarError, OSError):  # a truncated declared size is a bad tar too
        _rewrite(made.path, bad, change)
    with pytest.raises(BackupError):
        restore(bad, tmp_path / "r", source_for(_key(live)), by=BY)
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.restoring-*"))
    assert not (tmp_path.parent / "escape.txt").exists()


@ON_SQLITE
def test_a_restore_never_follows_a_link_and_a_backup_never_holds_a_master_key(
        live: Platform, tmp_path: Path) -> None:
    made = backup(live.store, tmp_path / "one.srbk", by=BY)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BackupError, match="not a link"):
        restore(made.path, tmp_path / "link", source_for(_key(live)), by=BY)
    assert not any((tmp_path / "elsewhere").iterdir())
    MasterKey.generate().save(live.store.root / "stray.key")  # an operator's mistake
    with pytest.raises(BackupError, match="master key file inside the data directory"):
        backup(live.store, tmp_path / "two.srbk", by=BY)
    assert not (tmp_path / "two.srbk").exists()
