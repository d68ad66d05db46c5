"""Backups: one encrypted file that restores a whole store, taken while the server runs.

A backup is a tar file::

    BACKUP.json       what it is and which master key opens it (no secret)
    keyring.json      the store key, sealed under the master key, as the store holds it
    index.json.enc    every member's digest, the schema revision and the audit log's root
    database/<t>.enc  each table of the metadata database (JSON lines), sealed
    files/<path>      every file of the data directory: sealed files as they are (they are
                      already encrypted), the rest (configuration, dictionary, the audit
                      witness) sealed

Everything but the header and the keyring is sealed under the store key, with the backup's id
in every context: the index cannot be swapped between backups, nor a member altered, without
the restore refusing. The master key is never in a backup; the store key is, only as sealed.

Consistency: the store's lock is held (no ingest, recovery or key rotation meanwhile); the
audit witness is read before the database, so every checkpoint it holds is in the snapshot;
the database is one snapshot (``dbdump.snapshot``). The backup is written to a temporary name,
flushed, and renamed: a file at the named path is always a whole backup.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.audit.events import AuditEvent, EventType
from strongroom.audit.keys import salt_key_from_secret
from strongroom.audit.operators import Operator
from strongroom.audit.outbox import stage
from strongroom.audit.tables import CHECKPOINTS
from strongroom.cohort import journal, keyring
from strongroom.cohort.crypto import KEY_FILE_FORMAT as MASTER_KEY_FORMAT
from strongroom.cohort.crypto import MAGIC, DecryptionError, MasterKey, decrypt, encrypt
from strongroom.cohort.journal import JOURNAL_DIR
from strongroom.cohort.keyring import KEYRING, Keyring
from strongroom.cohort.keysources import KeySource, KeySourceError
from strongroom.cohort.store import (
    BACKUP_HEADER,
    COHORT_DIR,
    CONFIG,
    IN_USE,
    LOCK,
    METADATA_DB,
    STAGING_PREFIX,
    Store,
    StoreConfig,
    fsync_dir,
    partial_name,
)
from strongroom.db import make_engine
from strongroom.operations import dbdump

FORMAT = "strongroom-backup/1"
HEADER = BACKUP_HEADER
INDEX = "index.json.enc"
RESTORING = ".restoring"  # a restore's marker in its staging directory, removed once renamed
SMALL = 1 << 16  # the header, keyring and index are small; a larger one is not a backup's


class BackupError(Exception):
    """A backup cannot be made or restored; the message says why and what to do."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    backup_id: str
    files: int
    tables: int
    rows: int
    bytes: int
    audit_size: int
    audit_root: str | None
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    root: Path
    backup_id: str
    files: int
    rows: int
    audit_size: int
    audit_root: str | None
    seconds: float


def _context(store_id: str, backup_id: str, member: str) -> str:
    return f"strongroom-backup/{store_id}/{backup_id}/{member}"


def _skipped(relative: Path) -> bool:
    """What a backup leaves out: the live database (dumped instead), the locks, the keyring
    (a member of its own), unfinished writes, the journal of unfinished operations and a
    restore's marker."""
    first = relative.parts[0]
    return (first in (LOCK, IN_USE, KEYRING, JOURNAL_DIR, RESTORING)
            or first.startswith(METADATA_DB)
            or (relative.name.startswith(".") and relative.name.endswith(".tmp"))
            or (first == COHORT_DIR and len(relative.parts) > 1
                and relative.parts[1].startswith(STAGING_PREFIX))
            or relative.name.startswith(".snapshot-"))


def backup(store: Store, out: Path, *, by: Operator,
           sign: Callable[[], object] | None = None) -> BackupReport:
    """Write a backup of ``store`` to ``out`` (refusing to overwrite one) and record
    ``store.backed_up`` with who made it and why. ``sign`` (the audit log's ``checkpoint``)
    signs everything logged so far first, so that the backup's root covers it.

    All or nothing, and the log says which: an intent naming the backup is journalled first,
    the file is written under a hidden name carrying the backup's id, flushed, renamed into
    place, and only then recorded; a crash anywhere leaves the intent, and the next open (or
    backup) records the backup if its file is whole at ``out``, or removes the partial file
    and records ``store.backup_abandoned``."""
    started = time.perf_counter()
    out = out.resolve()
    if out.exists():
        raise BackupError(f"{out} already exists; choose a new name (a backup never "
                          f"overwrites another)")
    if out.is_relative_to(store.root):
        raise BackupError(f"write the backup outside the data directory, not to {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    backup_id = uuid.uuid4().hex
    members: list[dict[str, Any]] = []
    partial = out.with_name(partial_name(out, backup_id))
    with store.lock():
        store.resolve()  # a backup cut off before this one: recorded, its partial removed
        intent = journal.begin(store.root, "backup", backup_id, {
            "out": str(out), "partial": str(partial), "actor": by.actor, **by.details()})
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    tables, audit = _write_members(store, tar, backup_id, members, sign)
                raw.flush()
                os.fsync(raw.fileno())
            report = {"backup_id": backup_id, "bytes": partial.stat().st_size,
                      "files": sum(m["name"].startswith("files/") for m in members),
                      "rows": sum(t.rows for t in tables), "audit_size": int(audit["size"]),
                      "audit_root": audit["root"]}
            intent = journal.update(intent, bytes=report["bytes"], report=report)
            os.rename(partial, out)
        except BaseException:
            partial.unlink(missing_ok=True)  # nothing at ``out``: the backup simply failed
            journal.finish(intent)
            raise
        # the file is whole at ``out``: a failure from here leaves the intent, and the next
        # open records the backup that exists
        fsync_dir(out.parent)
        with Session(store.engine) as session, session.begin():
            store.audit(session, EventType.STORE_BACKED_UP, by.actor, backup_id,
                        {**report, **by.details(), "path": str(out)})
        journal.finish(intent)
    return BackupReport(out, backup_id, int(report["files"]), len(tables), int(report["rows"]),
                        int(report["bytes"]), int(audit["size"]), audit["root"],
                        time.perf_counter() - started)


def _write_members(store: Store, tar: tarfile.TarFile, backup_id: str,
                   members: list[dict[str, Any]], sign: Callable[[], object] | None
                   ) -> tuple[list[dbdump.TableDump], dict[str, Any]]:
    """Every member of the backup, into ``tar`` (with the store's lock held)."""
    config = store.config
    ring = keyring.load(store.root)
    if sign is not None:
        sign()
    # the witness before the database: every checkpoint it names is in the snapshot
    files = _files(store.root)
    witness = [f for f in files if f.parts[0] == "audit"]
    copies = {f: (store.root / f).read_bytes() for f in witness}
    with dbdump.snapshot(store.engine, store.root) as con:
        revision, tables = dbdump.dump(con)
        head = con.execute(select(CHECKPOINTS.c.tree_size, CHECKPOINTS.c.root_hash)
                           .order_by(CHECKPOINTS.c.tree_size.desc()).limit(1)).first()
    header = json.dumps(_header(store, ring, backup_id), indent=1).encode()
    _add(tar, HEADER, header)  # first: what the journal's resolution reads (backup_id_of)
    members.append(_member(HEADER, header, "plain"))
    if ring is not None:
        ring_bytes = ring.to_json().encode()
        _add(tar, KEYRING, ring_bytes)
        members.append(_member(KEYRING, ring_bytes, "plain"))
    for table in tables:
        name = f"database/{table.name}.enc"
        sealed = encrypt(table.lines, store.key, _context(config.store_id, backup_id, name))
        members.append(_member(name, sealed, "sealed", rows=table.rows))
        _add(tar, name, sealed)
    for relative in files:
        data = copies.get(relative)
        if data is None:
            data = (store.root / relative).read_bytes()
        if MASTER_KEY_FORMAT.encode() in data[:200]:
            raise BackupError(
                f"{store.root / relative} is a master key file inside the data "
                f"directory; a backup never holds a master key: move it out "
                f"(`strongroom keys rotate -d {store.root} --to file:PATH --create "
                f"--reason TEXT`, "
                f"PATH outside it) and try again")
        name = f"files/{relative.as_posix()}"
        if data.startswith(MAGIC):
            members.append(_member(name, data, "as-is"))
        else:
            data = encrypt(data, store.key, _context(config.store_id, backup_id, name))
            members.append(_member(name, data, "sealed"))
        _add(tar, name, data)
    audit: dict[str, Any] = {"size": int(head.tree_size) if head else 0,
                             "root": bytes(head.root_hash).hex() if head else None}
    index: dict[str, Any] = {
        "format": FORMAT, "backup_id": backup_id, "store_id": config.store_id,
        "schema": revision, "members": members, "audit": audit}
    _add(tar, INDEX, encrypt(json.dumps(index).encode(), store.key,
                             _context(config.store_id, backup_id, INDEX)))
    return tables, audit


def _files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink()
                             and not _skipped((here / d).relative_to(root)))
        for name in sorted(filenames):
            relative = (here / name).relative_to(root)
            if not (here / name).is_symlink() and not _skipped(relative):
                found.append(relative)
    return found


def _header(store: Store, ring: Keyring | None, backup_id: str) -> dict[str, Any]:
    return {"format": FORMAT, "backup_id": backup_id, "store_id": store.config.store_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "store_key_id": store.config.key_id,
            "master": (ring.master.describe() if ring else "the store's key file (made "
                       "before keyrings: the master key is the store key)"),
            "master_key_id": ring.master_key_id if ring else store.config.key_id}


def _member(name: str, data: bytes, how: str, rows: int | None = None) -> dict[str, Any]:
    member: dict[str, Any] = {"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                              "bytes": len(data), "how": how}
    if rows is not None:
        member["rows"] = rows
    return member


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


# -- restore ----------------------------------------------------------------------------


def read_header(archive: Path) -> dict[str, Any]:
    """The backup's plain header: which store and master key (no secret). Authenticated only
    later, by the sealed index."""
    try:
        with tarfile.open(archive, "r:") as tar:
            header = json.loads(_read(_members(tar), tar, HEADER, SMALL))
    except (tarfile.TarError, OSError, ValueError, KeyError) as exc:
        raise BackupError(f"{archive} is not a Strongroom backup ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not all(
            isinstance(header.get(k), str) for k in ("store_id", "backup_id", "store_key_id")):
        raise BackupError(f"{archive} is not a Strongroom backup (its {HEADER} is not one)")
    return header


def read_keyring(archive: Path) -> Keyring | None:
    """The backup's keyring (None for a store made before keyrings): where its master key is.
    Authenticated only later, by the sealed index."""
    read_header(archive)
    with tarfile.open(archive, "r:") as tar:
        members = _members(tar)
        if KEYRING not in members:
            return None
        return Keyring.from_json(_read(members, tar, KEYRING, SMALL).decode(),
                                 "the backup's keyring")


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Every member by name: regular files only, each name once."""
    found: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if not member.isfile() or member.name in found:
            raise BackupError(f"the backup's member {member.name!r} is "
                              f"{'repeated' if member.name in found else 'not a file'}: it "
                              f"was altered; nothing was restored")
        found[member.name] = member
    return found


def _read(members: dict[str, tarfile.TarInfo], tar: tarfile.TarFile, name: str,
          most: int) -> bytes:
    """A member's bytes, refusing before reading one larger than it may be."""
    member = members[name]
    if member.size > most:
        raise BackupError(f"the backup's {name} is {member.size:,} bytes, more than it can "
                          f"be: it was altered; nothing was restored")
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def restore(archive: Path, into: Path, master: KeySource,
            database_url: str | None = None, *, by: Operator) -> RestoreReport:
    """Restore ``archive`` into ``into`` (new or empty) with the store's master key, onto
    SQLite in the directory or the empty database at ``database_url``. Everything is
    checked before it is written, and written beside ``into`` first: a failed restore leaves
    nothing behind.

    All or nothing, with its event: ``store.restored`` (who, why, which backup) is written into
    the restored database's audit outbox before the directory is renamed into place, so a
    restored store never exists without it (its first open moves it into the log), and a
    crash before the rename leaves no store at ``into`` (and a staging directory the next
    restore into ``into`` removes)."""
    started = time.perf_counter()
    if into.is_symlink() or not into.absolute().parent.is_dir():
        raise BackupError(f"{into} must be a new or empty directory (not a link) in an "
                          f"existing directory; nothing was changed")
    into = into.resolve()
    if into.exists() and any(into.iterdir()):
        raise BackupError(f"{into} is not empty: restore into a new or empty directory "
                          f"(nothing was changed)")
    header = read_header(archive)
    store_id, backup_id = header["store_id"], header["backup_id"]
    _remove_abandoned_restores(into)
    staging = into.with_name(f"{_restoring_prefix(into)}{uuid.uuid4().hex[:8]}")
    staging.mkdir(mode=0o700)
    marker = os.open(staging / RESTORING, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(marker, fcntl.LOCK_EX)  # held while this restore runs
        os.write(marker, json.dumps({"restoring": backup_id, "into": str(into),
                                     "staging": staging.name}).encode())
        with tarfile.open(archive, "r:") as tar:
            members = _members(tar)
            ring = Keyring.from_json(_read(members, tar, KEYRING, SMALL).decode(),
                                     "the backup's keyring") if KEYRING in members else None
            store_key = _store_key(ring, master, header)
            try:
                index = json.loads(decrypt(_read(members, tar, INDEX, 64 * SMALL), store_key,
                                           _context(store_id, backup_id, INDEX)))
            except DecryptionError as exc:
                raise BackupError(f"the backup's index does not open under this store's key "
                                  f"({exc}): the backup was altered, or is another store's") \
                    from None
            listed = {m["name"] for m in index["members"]}
            if set(members) != listed | {INDEX}:
                raise BackupError(f"the backup holds members its index does not list, or lacks "
                                  f"some it lists ({sorted(set(members) ^ (listed | {INDEX}))[:3]}"
                                  f"): it was altered; nothing was restored")
            tables: dict[str, bytes] = {}
            for member in index["members"]:
                data = _checked(members, tar, member)
                name = member["name"]
                if member["how"] == "plain":  # the header and keyring: checked, read above
                    continue
                if member["how"] == "sealed":
                    data = decrypt(data, store_key, _context(store_id, backup_id, name))
                if name.startswith("database/"):
                    tables[name.removeprefix("database/").removesuffix(".enc")] = data
                else:
                    _write(staging, name.removeprefix("files/"), data)
            if ring is not None:
                keyring.save(staging, ring)
        config = StoreConfig.load(staging)
        config = replace(config, key_file=master.spec.path if master.spec.kind == "file"
                         else None, database_url=database_url)
        config.save(staging)
        (staging / CONFIG).chmod(0o600)
        (staging / COHORT_DIR).mkdir(mode=0o700, exist_ok=True)
        url = database_url or f"sqlite:///{staging / METADATA_DB}"
        engine = make_engine(url)
        audit = index["audit"]
        try:
            rows = dbdump.load(engine, index["schema"], tables)
            with engine.begin() as con:  # the event, in the restored database, before it counts
                stage(con, AuditEvent(EventType.STORE_RESTORED, by.actor, store_id, {
                    "backup_id": backup_id, "rows": rows, "audit_size": int(audit["size"]),
                    "audit_root": audit["root"], **by.details()}),
                    salt_key_from_secret(store_key.secret))
        finally:
            engine.dispose()
        if database_url is None:
            (staging / METADATA_DB).chmod(0o600)
        if into.exists():
            into.rmdir()  # empty, checked above
        os.rename(staging, into)  # the restore's commit: before it, no store is at ``into``
        fsync_dir(into.parent)
        (into / RESTORING).unlink()  # a crash before this leaves it: backups skip it
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(marker)
    return RestoreReport(into, backup_id, sum(m["name"].startswith("files/")
                                               for m in index["members"]), rows,
                         int(audit["size"]), audit["root"], time.perf_counter() - started)


def _restoring_prefix(into: Path) -> str:
    return f".{into.name}.restoring-"


def _remove_abandoned_restores(into: Path) -> None:
    """Remove what a restore into ``into`` killed before its rename left beside it: only a
    staging directory of that name holding the marker a restore writes first, naming it, and
    that no running restore holds locked."""
    for staging in into.parent.glob(f"{_restoring_prefix(into)}*"):
        if staging.is_symlink() or not staging.is_dir():
            continue
        try:
            fd = os.open(staging / RESTORING, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # no marker (or being made): not provably an abandoned restore
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            named = json.loads(os.read(fd, SMALL) or b"{}")
        except (OSError, ValueError):
            continue  # a restore still running holds it, or the marker is not ours
        finally:
            os.close(fd)
        if isinstance(named, dict) and named.get("staging") == staging.name:
            shutil.rmtree(staging)


def _store_key(ring: Keyring | None, master: KeySource,
               header: dict[str, Any]) -> MasterKey:
    try:
        if ring is not None:
            return ring.open(master)
    except KeySourceError as exc:
        raise BackupError(f"{exc}; nothing was restored") from None
    raw = master.raw()
    if raw is None or raw.key_id != header["store_key_id"]:
        raise BackupError(f"this backup's store key (id {header['store_key_id']}) is its "
                          f"store's key file: give that key file; nothing was restored")
    return raw


def _checked(members: dict[str, tarfile.TarInfo], tar: tarfile.TarFile,
             member: dict[str, Any]) -> bytes:
    data = _read(members, tar, member["name"], int(member["bytes"]))
    if len(data) != member["bytes"] or hashlib.sha256(data).hexdigest() != member["sha256"]:
        raise BackupError(f"the backup's {member['name']} differs from its digest: the "
                          f"backup was altered or damaged; nothing was restored")
    return data


def _write(root: Path, relative: str, data: bytes) -> None:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or relative.startswith("/"):
        raise BackupError(f"the backup names a file outside the store ({relative})")
    for parent in reversed(path.relative_to(root.resolve()).parents[:-1]):
        (root / parent).mkdir(exist_ok=True, mode=0o700)  # each level its owner's only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())

