"""The encrypted cohort store: a data directory, its metadata database and sealed Parquet files.

Layout of a data directory::

    strongroom.yaml         configuration (store id, key id, key file path, database URL)
    keyring.json            the store key, sealed under the master key (cohort/keyring.py)
    dictionary.json.gz      the data dictionary every ingest is validated against
    metadata.db             SQLite metadata database (unless a database URL is configured)
    cohort/<version>/       one sealed Parquet file per table (``<table>.parquet.enc``) and
                            the version's sealed manifest (``manifest.json.enc``)
    quarantine/<version>/   sealed versions the database did not know (see below)

The master key is never inside the directory: it seals the store key (``keyring.json``), from
which every other key hangs, so it can be rotated or moved to an HSM without re-encrypting.
A new cohort version is written in full to a
staging directory (``cohort/.staging-<id>``), flushed to disk, renamed into place, and only then
made current in one database transaction; a failure or crash at any point leaves the previous
version current and intact.

Nothing is deleted that the store cannot prove is its own leftover: a staging directory, or a
version the database has marked retired. Opening checks that the database is this store's (its
``store_identity`` row) at the code's schema revision, and that every sealed version on disk is
one it knows; an unknown version (the database missing, empty, swapped or restored from an older
backup) is moved to ``quarantine/`` unharmed and the store refuses to open until
``strongroom store recover`` has re-registered it from its sealed manifest.

Every change is audited in the database transaction that makes it (the audit outbox): an
ingest's event commits with the version becoming current; removing leftovers, which happens to
files outside the database, is recorded first (the intent, naming what goes) and done after,
so a crash in between leaves the event and files that the next open removes (they are provably
leftovers), never a removal without its event.

Two locks, both ``flock`` on files in the data directory. ``.lock`` (exclusive, held briefly):
one writer at a time (open's checks, an ingest, a backup, a recovery, a key rotation).
``.in-use`` (held for a store's lifetime): every open store, from ``Store.open`` (or
``init_store``) until ``close``, holds it shared, so any number may be open at once, in any
number of processes; ``strongroom upgrade`` and ``strongroom store recover`` take it
exclusively and without waiting (:meth:`Store.exclusive`), so they refuse, changing nothing,
while anything (a running server, another command) has the store open, and an open waits for
neither: it refuses while one of them runs. The kernel releases both when a process dies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from sqlalchemy import JSON, Boolean, Integer, String, exists, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom import migrations
from strongroom.audit import events
from strongroom.audit.keys import salt_key_from_secret
from strongroom.audit.operators import SYSTEM, Operator
from strongroom.audit.outbox import stage
from strongroom.audit.tables import ENTRIES, OUTBOX
from strongroom.cohort import journal, keyring
from strongroom.cohort.crypto import ENV_KEY, MasterKey, SealedFile, decrypt, encrypt
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary_bytes
from strongroom.cohort.keyring import Keyring
from strongroom.cohort.keysources import (
    KeySource,
    KeySourceError,
    KeySpec,
    RawKeySource,
    open_source,
)
from strongroom.cohort.model import EID, EVENT_TABLES, PARTICIPANTS, Cohort
from strongroom.db import Base, UTCDateTime, explain, make_engine
from strongroom.progress import Progress

CONFIG = "strongroom.yaml"
METADATA_DB = "metadata.db"
DICTIONARY = "dictionary.json.gz"
COHORT_DIR = "cohort"
QUARANTINE_DIR = "quarantine"
MANIFEST = "manifest.json.enc"
STAGING_PREFIX = ".staging-"
LOCK = ".lock"
IN_USE = ".in-use"  # held shared by every open store, exclusively by upgrade and recover
KEEP_VERSIONS = 2  # the current version and the one before it (for rollback)
ENV_KEY_FILE = "STRONGROOM_KEY_FILE"
BACKUP_HEADER = "BACKUP.json"  # a backup's first member (strongroom.operations.backup)


class StoreError(Exception):
    """The store cannot do what was asked; the message says why and what to do."""


class CohortVersion(Base):
    """One ingested cohort. Counts and hashes only: no participant value is ever stored here."""

    __tablename__ = "cohort_versions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    current: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    participants: Mapped[int] = mapped_column(Integer)
    tables: Mapped[dict[str, Any]] = mapped_column(JSON)  # name -> {rows, bytes, sha256 of sealed}
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # name, sha256, bytes
    dictionary_digest: Mapped[str] = mapped_column(String(64))
    # set before its files are removed: only a retired version's files are ever deleted
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StoreIdentity(Base):
    """The one store this database belongs to (a database of another store, or none, is
    never taken for this one's)."""

    __tablename__ = "store_identity"

    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class StoreConfig:
    store_id: str
    key_id: str
    key_file: str | None
    database_url: str | None = None
    # where the enclave's SQL runs: absent for DuckDB here; {kind: spark, master: …, store: …}
    # for a Spark cluster (enclave/engines.py, enclave/spark/cluster.py SparkSettings)
    engine: dict[str, Any] | None = None
    # the job sandbox's limits over its defaults (jobs/settings.py): wall_seconds, memory, …
    jobs: dict[str, Any] | None = None

    @classmethod
    def load(cls, root: Path) -> StoreConfig:
        path = root / CONFIG
        if not path.is_file():
            raise StoreError(
                f"{root} is not a Strongroom data directory (no {CONFIG}); "
                f"create one with `strongroom init {root}`"
            )
        data = yaml.safe_load(path.read_text())
        engine = data.get("engine")
        if engine is not None and not isinstance(engine, dict):
            raise StoreError(f"{path}: engine: is a mapping (kind: spark, master: …, store: …), "
                             f"not {type(engine).__name__}; nothing was opened")
        jobs = data.get("jobs")
        if jobs is not None and not isinstance(jobs, dict):
            raise StoreError(f"{path}: jobs: is a mapping of the job sandbox's limits "
                             f"(wall_seconds: 3600, memory: 8GiB, …), not "
                             f"{type(jobs).__name__}; nothing was opened")
        return cls(data["store_id"], data["key_id"], data.get("key_file"),
                   data.get("database_url"), engine, jobs)

    def save(self, root: Path) -> None:
        text = yaml.safe_dump({
            "store_id": self.store_id,
            "key_id": self.key_id,
            "key_file": self.key_file,
            "database_url": self.database_url,
            **({"engine": self.engine} if self.engine is not None else {}),
            **({"jobs": self.jobs} if self.jobs is not None else {}),
        }, sort_keys=False)
        atomic_write(root / CONFIG, text.encode())


def default_key_file(store_id: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "strongroom" / "keys" / f"{store_id}.key"


def init_store(
    root: Path,
    *,
    key_file: Path | None = None,
    dictionary: Dictionary | None = None,
    database_url: str | None = None,
    key_source: KeySpec | None = None,
) -> Store:
    """Create a data directory, its store key and (unless one is given, in the environment or
    in a token) its master key, kept outside the directory."""
    root = root.resolve()
    if (root / CONFIG).exists():
        raise StoreError(f"{root} is already a Strongroom data directory")
    if root.exists() and any(root.iterdir()):
        raise StoreError(f"{root} exists and is not empty; choose a new directory")
    store_id = uuid.uuid4().hex[:12]
    if database_url is not None:  # before anything is made: a refusal leaves nothing behind
        _require_reachable(database_url)
    master, stored_at = _new_master(root, store_id, key_file, key_source)
    store_key = MasterKey.generate()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    (root / COHORT_DIR).mkdir(mode=0o700)
    keyring.save(root, Keyring.seal(store_id, store_key, master))
    if dictionary is None:  # the shipped file as it is: re-compressing it costs a second
        (root / DICTIONARY).write_bytes(shipped_dictionary_bytes())
    else:
        dictionary.save(root / DICTIONARY)
    StoreConfig(store_id, store_key.key_id, stored_at, database_url).save(root)
    store = Store(root, master)
    try:
        store._hold_in_use()
        found = migrations.state(store.engine)
        if found.schema is not migrations.Schema.EMPTY:
            raise StoreError(
                f"the metadata database {store.database} already holds tables; give an "
                f"empty database (one database, or PostgreSQL schema, per store)")
        migrations.upgrade(store.engine)
        store.claim()
        for made in root.iterdir():  # configuration, dictionary, metadata.db: the owner's only
            if made.is_file():
                made.chmod(0o600)
    except BaseException:
        store.close()
        raise
    return store


def _new_master(root: Path, store_id: str, key_file: Path | None,
                spec: KeySpec | None) -> tuple[KeySource, str | None]:
    """The new store's master key and the key file it is in (None when it is not a file)."""
    if spec is not None and spec.kind != "file":
        try:
            return open_source(spec), None
        except KeySourceError as exc:
            raise StoreError(f"{exc}; nothing was created") from None
    env = MasterKey.from_env()
    if env is not None and spec is None:  # a key from the environment is written nowhere
        return RawKeySource(env, KeySpec("env")), None
    key_path = Path(str(spec.path)) if spec is not None else \
        (key_file or default_key_file(store_id)).resolve()
    if key_path.is_relative_to(root):
        raise StoreError(f"the key file must live outside the data directory, not at {key_path}")
    if key_path.exists():
        raise StoreError(f"{key_path} already exists; refusing to overwrite a key")
    key = MasterKey.generate()
    key.save(key_path)
    return RawKeySource(key, KeySpec("file", path=str(key_path))), str(key_path)


def _require_reachable(url: str) -> None:
    engine = make_engine(url)
    try:
        migrations.state(engine)
    except DBAPIError as exc:
        raise StoreError(f"{explain(exc, 'the --database-url given')}. Nothing was created: "
                         f"no directory, no key.") from exc
    finally:
        engine.dispose()


class Store:
    """An open data directory with its store key (opened by its master key).

    ``Store(root, key)`` itself makes none of the checks :meth:`open` makes and holds no lock
    (the repair commands use it: those checks are what they repair); :meth:`open` and
    :func:`init_store` also hold the data directory's in-use lock, shared, until ``close``."""

    def __init__(self, root: Path, key: MasterKey | KeySource | None = None):
        self._in_use: io.FileIO | None = None  # held from open until close
        self.root = root.resolve()
        self.config = StoreConfig.load(self.root)
        try:
            self.keyring = keyring.load(self.root)
            self.master = (RawKeySource(key, KeySpec("file", path="(given)"))
                           if isinstance(key, MasterKey) else key or self._find_source())
            self.key = self._store_key()
        except KeySourceError as exc:
            raise StoreError(f"{exc}. Nothing was changed.{self._stale_key_file()}") from None
        if self.key.key_id != self.config.key_id:
            raise StoreError(
                f"the key given (id {self.key.key_id}) is not this store's key "
                f"(id {self.config.key_id}); give the right key file or {ENV_KEY}"
            )
        url = self.config.database_url or f"sqlite:///{self.root / METADATA_DB}"
        self.engine = make_engine(url)
        self._dictionary: Dictionary | None = None

    def _stale_key_file(self) -> str:
        """A hint when the key refused came from STRONGROOM_KEY_FILE while the keyring names
        another key: the environment was set before a rotation (a service unit's, say)."""
        named = os.environ.get(ENV_KEY_FILE)
        if not named or self.keyring is None or self.keyring.master.path == str(
                Path(named).resolve()):
            return ""
        return (f" {ENV_KEY_FILE} is set ({named}), but the keyring names "
                f"{self.keyring.master.describe()}: the master key was rotated since it was set. "
                f"Remove {ENV_KEY_FILE} from the environment (a systemd unit's too): the "
                f"keyring says where the key is, so no rotation needs it changed again.")

    def _store_key(self) -> MasterKey:
        if self.keyring is not None:
            return self.keyring.open(self.master)
        raw = self.master.raw()  # a store made before keyrings: its master is its store key
        if raw is None:
            raise KeySourceError(f"{self.root} has no keyring, so its master key must be its "
                                 f"key file or {ENV_KEY}")
        return raw

    @classmethod
    def open(cls, root: Path, key_file: Path | None = None) -> Store:
        """Open a data directory (use as a context manager, or call ``close``), refusing one
        whose database is not this store's at the code's schema or whose sealed versions it
        does not all know."""
        store = cls(root, source_for(key_file) if key_file else None)
        try:
            store._hold_in_use()  # before anything is read or written; close() releases it
            with store.lock():
                store._require_schema()
                store._require_identity()
                store.resolve()
                store._require_known_versions()
                store._require_key_opens_data()
                store._remove_leftovers(retired=False)
        except DBAPIError as exc:
            store.close()
            raise StoreError(f"{explain(exc)} (the database: {store.database}). Nothing was "
                             f"changed.") from exc
        except BaseException:
            store.close()
            raise
        return store

    @property
    def database(self) -> str:
        """The metadata database, for messages (never with a password)."""
        return self.engine.url.render_as_string(hide_password=True)

    def sqlite_file(self) -> Path | None:
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(str(url.database))

    def _require_schema(self) -> None:
        file = self.sqlite_file()
        if file is not None and (not file.exists() or file.stat().st_size == 0):
            raise StoreError(self._no_database(
                f"the metadata database {file} is {'empty' if file.exists() else 'missing'}"))
        found = migrations.state(self.engine)
        match found.schema:
            case migrations.Schema.CURRENT:  # an upgrade killed after its commit left a copy
                migrations.discard_stale_copy(self.engine)
                return
            case migrations.Schema.EMPTY:
                raise StoreError(self._no_database(
                    f"the metadata database {self.database} holds no tables"))
            case migrations.Schema.UNVERSIONED | migrations.Schema.OLDER:
                raise StoreError(
                    f"the metadata database is at schema "
                    f"{found.revision or 'of 16a023a (before schema versions)'}, and this "
                    f"release needs {found.head}. Nothing was changed. Back it up, then run "
                    f"`strongroom upgrade -d {self.root} --operator NAME --reason TEXT`.")
            case migrations.Schema.NEWER:  # a downgrade: nothing is written to it
                raise StoreError(migrations.newer_schema(found) + ".")

    def _no_database(self, what: str) -> str:
        return (f"{what}, but {self.root} is an initialised store: the database may be "
                f"misconfigured, deleted, or restored from elsewhere. Nothing was changed "
                f"and no sealed file was touched. Point the store at its database (the URL "
                f"in {self.root / CONFIG}), restore it from a backup, or run `strongroom "
                f"store recover -d {self.root} --operator NAME --reason TEXT` to rebuild the "
                f"cohort's records from the sealed versions (people, projects and the audit "
                f"log are only in the database).")

    def _require_identity(self) -> None:
        with self._session() as session:
            owners = list(session.scalars(select(StoreIdentity.store_id)))
        if owners != [self.config.store_id]:
            raise StoreError(
                f"the metadata database {self.database} belongs to "
                f"{'store ' + ', '.join(owners) if owners else 'no store'}, not to this one "
                f"({self.config.store_id}). Nothing was changed. Point {self.root / CONFIG} at "
                f"this store's database, or restore it from a backup.")

    def claim(self) -> None:
        """Record that this database is this store's (a new or upgraded database)."""
        with self._session() as session, session.begin():
            if session.get(StoreIdentity, self.config.store_id) is None:
                session.add(StoreIdentity(store_id=self.config.store_id,
                                          claimed_at=dt.datetime.now(dt.UTC)))

    def resolve(self) -> None:
        """Finish or undo what a crash cut off, as the journal names it, each outcome recorded
        in the audit log (once: an outcome already recorded is not recorded again). Call with
        the lock, once the database is known to be this store's."""
        for intent in journal.pending(self.root):
            if intent.kind == "ingest":
                self._resolve_ingest(intent)
            else:
                self._resolve_backup(intent)
            journal.finish(intent)

    def _recorded(self, session: Session, type: events.EventType, subject: str) -> bool:
        """Whether an event of ``type`` about ``subject`` is in the log or its outbox."""
        return any(session.scalar(select(exists().where(table.c.type == type.value,
                                                        table.c.subject == subject)))
                   for table in (ENTRIES, OUTBOX))

    def _resolve_ingest(self, intent: journal.Intent) -> None:
        """An ingest that did not finish: if the database recorded its version, it did (its
        ``cohort.ingested`` committed with it); if not, roll it back: its files (the journal
        names them: no one else's) are removed after the event that says so commits."""
        version_id = intent.id
        final = self.root / COHORT_DIR / version_id
        staging = self.root / COHORT_DIR / f"{STAGING_PREFIX}{version_id}"
        with self._session() as session:
            if session.get(CohortVersion, version_id) is not None:
                return
            done = self._recorded(session, events.EventType.COHORT_INGEST_ROLLED_BACK,
                                  version_id)
        ours = [p for p in (final, staging) if p.is_dir() and not p.is_symlink()]
        if not done:
            with self._session() as session, session.begin():
                self.audit(session, events.EventType.COHORT_INGEST_ROLLED_BACK, SYSTEM,
                           version_id, {
                               "cut_off": ("after its files were sealed and renamed into "
                                           "place, before the database recorded it"
                                           if final in ours else "while its files were "
                                           "being sealed" if ours else "before it wrote "
                                           "anything"),
                               "removed": [str(p.relative_to(self.root)) for p in ours],
                               "started_at": intent.data.get("started_at")})
        for path in ours:
            shutil.rmtree(path)

    def _resolve_backup(self, intent: journal.Intent) -> None:
        """A backup that did not finish: if its file is at its path, whole (it is renamed
        there only once written and flushed) and this backup's, record ``store.backed_up``;
        if not, remove its partial file (its name carries the backup's id: no one else's)
        and record ``store.backup_abandoned``."""
        data, backup_id = intent.data, intent.id
        out, partial = Path(data["out"]), Path(data["partial"])
        with self._session() as session:
            made = self._recorded(session, events.EventType.STORE_BACKED_UP, backup_id)
            dropped = self._recorded(session, events.EventType.STORE_BACKUP_ABANDONED,
                                     backup_id)
        whole = (data.get("bytes") is not None and out.is_file() and not out.is_symlink()
                 and out.stat().st_size == data["bytes"] and backup_id_of(out) == backup_id)
        who = {"operator": data.get("operator"), "reason": data.get("reason")}
        if whole and not made:
            with self._session() as session, session.begin():
                self.audit(session, events.EventType.STORE_BACKED_UP,
                           data.get("actor") or "operator", backup_id,
                           {**data.get("report", {}), **who, "path": str(out),
                            "recorded_on_open": True})
        elif not whole and not dropped and not made:
            with self._session() as session, session.begin():
                self.audit(session, events.EventType.STORE_BACKUP_ABANDONED, SYSTEM,
                           backup_id, {**who, "path": str(out),
                                       "removed_partial": partial.is_file(),
                                       "started_at": data.get("started_at")})
        if not whole and partial.name == partial_name(out, backup_id):
            partial.unlink(missing_ok=True)

    def _require_known_versions(self) -> None:
        layout = self.layout()
        for name in layout.unknown:
            self._quarantine(name)
        held = sorted(p.name for p in self.quarantine_dir.iterdir()) \
            if self.quarantine_dir.is_dir() else []
        if held:
            raise StoreError(
                f"{len(held)} sealed cohort version(s) are not in the metadata database "
                f"({', '.join(held)}); they are held unharmed in {self.quarantine_dir}. The "
                f"database may be missing, swapped or restored from an older backup. Nothing "
                f"was deleted. See `strongroom store check -d {self.root}`; `strongroom store "
                f"recover -d {self.root} --operator NAME --reason TEXT` registers them again "
                f"from their sealed manifests.")
        current = self.current()
        if current is not None and current.id in layout.missing:
            raise StoreError(
                f"the current cohort version {current.id} is in the metadata database but "
                f"its sealed files are not in {self.root / COHORT_DIR}. Nothing was changed. "
                f"Restore the data directory from a backup.")

    def _require_key_opens_data(self) -> None:
        """The store key opens what is sealed: the current version's manifest (a keyring
        swapped for one holding another store key would otherwise seal new data under it)."""
        current = self.current()
        where = None if current is None else self.root / COHORT_DIR / current.id
        if where is None or not (where / MANIFEST).is_file():
            return  # nothing sealed yet, or a version sealed before manifests
        try:
            self.open_manifest(where)
        except StoreError:
            raise StoreError(
                f"the store key (from {self.root / keyring.KEYRING}) does not open the current "
                f"cohort version's sealed manifest: keyring.json or {CONFIG} was replaced or "
                f"altered. Nothing was changed; restore them from a backup") from None

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE_DIR

    def _quarantine(self, name: str) -> None:
        self.quarantine_dir.mkdir(mode=0o700, exist_ok=True)
        target = self.quarantine_dir / name
        if target.exists():  # never overwrite what is already held
            target = self.quarantine_dir / f"{name}.{uuid.uuid4().hex[:8]}"
        os.rename(self.root / COHORT_DIR / name, target)
        fsync_dir(self.quarantine_dir)

    def layout(self) -> Layout:
        """What ``cohort/`` holds against what the database knows (reads only)."""
        with self._session() as session:
            known = {v.id: v.retired_at is not None for v in session.scalars(select(CohortVersion))}
        on_disk = sorted(p.name for p in (self.root / COHORT_DIR).iterdir()
                         if p.is_dir() and not p.is_symlink())
        return Layout(
            staging=[n for n in on_disk if n.startswith(STAGING_PREFIX)],
            retired=[n for n in on_disk if known.get(n) is True],
            live=[n for n in on_disk if known.get(n) is False],
            unknown=[n for n in on_disk if n not in known and not n.startswith(STAGING_PREFIX)],
            missing=sorted(v for v, retired in known.items()
                           if not retired and v not in on_disk))

    def _remove_leftovers(self, *, retired: bool) -> None:
        """Remove only what is provably the store's own leftover: its staging directories,
        and (``retired``: right after an ingest retired them) the files of retired versions,
        never the current one's. Opening removes staging only, so a database edited to
        retire everything cannot make an open delete a sealed version. Call with the lock.

        The audit event is committed before the first file goes (intent first): a crash
        part-way leaves the event and leftovers that the next open removes again."""
        layout = self.layout()
        current = self.current()
        doomed = [name for name in [*layout.staging, *(layout.retired if retired else [])]
                  if current is None or name != current.id]
        if not doomed:
            return
        with self._session() as session, session.begin():
            self.audit(session, events.EventType.STORE_SWEPT, "system", self.config.store_id,
                       {"unfinished": [n for n in doomed if n in layout.staging],
                        "retired": [n for n in doomed if n not in layout.staging]})
        for name in doomed:
            shutil.rmtree(self.root / COHORT_DIR / name, ignore_errors=True)

    def audit(self, db: Session, type: events.EventType, actor: str, subject: str | None,
              details: dict[str, events.JSON]) -> None:
        """Write an audit event in ``db``'s open transaction: it commits with the change
        (the audit writer moves it into the log; see strongroom.audit.outbox)."""
        stage(db, events.AuditEvent(type, actor, subject, details),
              salt_key_from_secret(self.key.secret))

    def close(self) -> None:
        """Release the metadata database's connections and the in-use lock (again: nothing)."""
        try:
            self.engine.dispose()
        finally:
            held, self._in_use = self._in_use, None
            if held is not None:
                held.close()  # closing the file releases its flock

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _find_source(self) -> KeySource:
        """The master key: the environment's, a key file named in the environment, then where
        the keyring (or, before keyrings, the configuration) says it is."""
        env = MasterKey.from_env()
        if env is not None:
            return RawKeySource(env, KeySpec("env"))
        path = os.environ.get(ENV_KEY_FILE)
        if path:
            return source_for(Path(path))
        if self.keyring is not None:
            return open_source(self.keyring.master)
        if not self.config.key_file:
            raise StoreError(
                f"no master key: set {ENV_KEY} or {ENV_KEY_FILE}, or pass --key-file"
            )
        return source_for(Path(self.config.key_file))

    def rotate_master(self, new: KeySource) -> Keyring:
        """Seal the store key under ``new`` instead, atomically (the keyring is replaced in one
        rename); the data, and every key derived from the store key, stay as they are."""
        if new.spec.kind == "file" and Path(str(new.spec.path)).resolve().is_relative_to(
                self.root):
            raise StoreError(f"the master key file must live outside the data directory, not "
                             f"at {new.spec.path}; nothing was changed")
        with self.lock():
            ring = Keyring.seal(self.config.store_id, self.key, new)
            keyring.save(self.root, ring)
            self.keyring, self.master = ring, new
            key_file = new.spec.path if new.spec.kind == "file" else None
            self.config = replace(self.config, key_file=key_file)
            self.config.save(self.root)
        return ring

    def _session(self) -> Session:
        # Records are plain values once read: keep them usable after the session closes.
        return Session(self.engine, expire_on_commit=False)

    @property
    def dictionary(self) -> Dictionary:
        if self._dictionary is None:
            self._dictionary = Dictionary.load(self.root / DICTIONARY)
        return self._dictionary

    # -- versions -----------------------------------------------------------------------

    def current(self) -> CohortVersion | None:
        with self._session() as session:
            return session.scalar(select(CohortVersion).where(CohortVersion.current))

    def versions(self) -> list[CohortVersion]:
        """The versions whose files are kept (newest first); retired ones are history."""
        with self._session() as session:
            return list(session.scalars(
                select(CohortVersion).where(CohortVersion.retired_at.is_(None))
                .order_by(CohortVersion.created_at.desc())
            ))

    def write_version(
        self,
        cohort: Cohort,
        sources: Iterable[dict[str, Any]] = (),
        progress: Progress | None = None,
        by: Operator | None = None,
    ) -> CohortVersion:
        """Seal and store a validated cohort as the new current version, atomically.
        ``by``: the operator who ingests it, named in its audit event (a test's or a demo's
        own store: plain ``operator``)."""
        with self.lock():
            return self._write_version(cohort, list(sources), progress, by)

    def _write_version(
        self, cohort: Cohort, sources: list[dict[str, Any]], progress: Progress | None,
        by: Operator | None,
    ) -> CohortVersion:
        version_id = str(uuid.uuid4())
        staging = self.root / COHORT_DIR / f"{STAGING_PREFIX}{version_id}"
        final = self.root / COHORT_DIR / version_id
        # the intent first: a crash from here on leaves a record naming what this ingest
        # makes, and the next open rolls it back (Store._resolve) instead of quarantining it
        intent = journal.begin(self.root, "ingest", version_id, {"step": "sealing"})
        try:
            staging.mkdir(mode=0o700)
            tables = {}
            for name, frame in cohort.tables():
                tables[name] = self._write_table(staging, version_id, name, frame)
                if progress:
                    progress(name, 1)
            record = CohortVersion(
                id=version_id,
                created_at=dt.datetime.now(dt.UTC),
                current=True,
                participants=cohort.n_participants,
                tables=tables,
                sources=sources,
                dictionary_digest=self.dictionary.digest,
            )
            atomic_write(staging / MANIFEST, self.seal_manifest(record))
            fsync_dir(staging)
            # a crash from here until the commit leaves a sealed version the database does
            # not know, which the intent explains: the next open rolls it back, audited
            os.rename(staging, final)
            fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if not final.exists():  # nothing of it is left: the ingest simply failed
                journal.finish(intent)
            raise
        # the version, the retirement of those past retention and the ingest's audit event
        # commit together. If the commit's outcome is unknown (it may have landed), the files
        # are kept: if it did not, the next open quarantines them and `store recover`
        # registers them
        with self._committing(final), self._session() as session, session.begin():
            session.execute(update(CohortVersion).values(current=False))
            session.add(record)
            session.flush()
            retired: list[events.JSON] = list(self._retire_old(session))
            self.audit(session, events.EventType.COHORT_INGESTED,
                       by.actor if by else "operator", version_id, {
                **(by.details() if by else {}),
                "participants": record.participants,
                "tables": {name: {"rows": t["rows"], "sha256": t["sha256"]}
                           for name, t in tables.items()},
                "sources": [{k: v for k, v in s.items() if k in ("name", "sha256", "bytes")}
                            for s in sources],
                "retired": retired})
        journal.finish(intent)  # a crash before this: the next open finds the version recorded
        self._remove_leftovers(retired=True)
        return record

    @contextlib.contextmanager
    def _committing(self, final: Path) -> Iterator[None]:
        """Say what a failed commit of the version sealed at ``final`` leaves."""
        try:
            yield
        except DBAPIError as exc:
            raise StoreError(
                f"{explain(exc)} (the database: {self.database}). The new cohort version was "
                f"sealed but most likely not recorded: the version stored before is unchanged, "
                f"and the new one's files are kept in {final} with an intent naming them. Once "
                f"the database works, the next open keeps the version if the database recorded "
                f"it, or rolls it back (removes its files, recorded in the audit log) if not; "
                f"then ingest again.") from exc

    def _write_table(self, where: Path, version_id: str, name: str,
                     frame: pl.DataFrame) -> dict[str, Any]:
        buffer = io.BytesIO()
        pq.write_table(frame.to_arrow(), buffer, compression="zstd")
        sealed = encrypt(buffer.getvalue(), self.key, context(self.config, version_id, name))
        atomic_write(where / f"{name}.parquet.enc", sealed)
        return {"rows": frame.height, "columns": frame.width, "bytes": len(sealed),
                "sha256": hashlib.sha256(sealed).hexdigest()}

    def seal_manifest(self, version: CohortVersion) -> bytes:
        """The version's record, sealed under the master key: what `store recover` reads to
        register a version the database lost (counts and digests only, as the record)."""
        return encrypt(json.dumps(_manifest(version)).encode(), self.key,
                       context(self.config, version.id, "manifest"))

    def open_manifest(self, where: Path) -> CohortVersion:
        """A sealed version's record from its manifest; :class:`StoreError` if it has none or
        it is not this store's (sealed under another key, or for another version id)."""
        path = where / MANIFEST
        if not path.is_file():
            raise StoreError(f"{where.name} has no manifest")
        try:
            plain = decrypt(path.read_bytes(), self.key,
                            context(self.config, version_id_of(where.name), "manifest"))
        except Exception as exc:  # InvalidTag: another store's, another id, or altered
            raise StoreError(f"{where.name}'s manifest is not this store's") from exc
        data = json.loads(plain)
        return CohortVersion(
            id=data["id"], created_at=dt.datetime.fromisoformat(data["created_at"]),
            current=False, participants=data["participants"], tables=data["tables"],
            sources=data["sources"], dictionary_digest=data["dictionary_digest"])

    def _retire_old(self, session: Session) -> list[str]:
        """Mark versions past retention retired (the record stays), so their files may go;
        in the caller's transaction. Returns their ids."""
        kept = session.scalars(select(CohortVersion).where(CohortVersion.retired_at.is_(None))
                               .order_by(CohortVersion.created_at.desc())).all()
        old = [v.id for v in kept[KEEP_VERSIONS:] if not v.current]
        if old:
            session.execute(update(CohortVersion).where(CohortVersion.id.in_(old))
                            .values(retired_at=dt.datetime.now(dt.UTC)))
        return old

    def _open_in_use(self) -> io.FileIO:
        """The in-use lock's file, made (the owner's only) if it is not there yet. Each call
        is a new open file description, whose flock conflicts with every other one, this
        process's included."""
        return io.FileIO(self.root / IN_USE, "r",
                         opener=lambda path, flags: os.open(path, flags | os.O_CREAT, 0o600))

    def _hold_in_use(self) -> None:
        """Hold the in-use lock shared until ``close`` (any number of open stores share it);
        refused at once, not waited for, while an upgrade or a recovery holds it."""
        handle = self._open_in_use()
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(
                f"the store at {self.root} is being upgraded or recovered by another process "
                f"(an upgrade or a store recovery holds it alone until it finishes). Nothing "
                f"was changed. Wait until it has finished, then try again.") from None
        except BaseException:
            handle.close()
            raise
        self._in_use = handle

    @contextlib.contextmanager
    def exclusive(self, again: str) -> Iterator[None]:
        """This store alone: nothing else has the data directory open, in any process (nor
        another open store in this one), until the block ends; for ``upgrade`` and ``recover``,
        which change what an open store relies on. Not waited for: while anything holds the
        in-use lock this raises :class:`StoreError` at once, before anything is read or
        written, saying to stop it and run ``again`` (the command, as printed) again.

        A store that holds the lock shared itself (opened with :meth:`open`) converts it for
        the block and takes it back shared after; a store made with ``Store(root, key)``
        takes it in a file description of its own, released after."""
        own = self._in_use
        handle = own if own is not None else self._open_in_use()
        try:
            try:
                # on our own handle this converts shared to exclusive; if it is refused the
                # kernel has already dropped our shared lock: the finally takes it back
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"the store at {self.root} is open in another process (a running "
                    f"`strongroom serve`, or another command), or by another open store in "
                    f"this one. Nothing was changed. Stop it, then run {again} "
                    f"again.") from None
            yield
        finally:
            if own is None:
                handle.close()
            else:  # shared again, as open left it (waits only if another took it meanwhile)
                fcntl.flock(handle, fcntl.LOCK_SH)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time per data directory (ingest, open's clean-up, recovery)."""
        with open(self.root / LOCK, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading ------------------------------------------------------------------------

    def _current_or_refuse(self) -> CohortVersion:
        version = self.current()
        if version is None:
            raise StoreError(
                "the store holds no cohort yet; add one with `strongroom cohort ingest "
                "FILE… --operator NAME --reason TEXT`")
        return version

    def load(self, tables: Iterable[str] | None = None) -> Cohort:
        """Decrypt the current cohort into memory (it is never written out in the clear)."""
        version = self._current_or_refuse()
        wanted = set(tables) if tables is not None else set(version.tables)
        frames = {
            name: self._read_table(version.id, name)
            for name in version.tables
            if name in wanted
        }
        participants = frames.pop(PARTICIPANTS, pl.DataFrame())
        order = [t.name for t in EVENT_TABLES]
        return Cohort(participants, {n: frames[n] for n in order if n in frames})

    def load_participants(self, pick: Callable[[list[str]], list[str]]) -> pl.DataFrame:
        """The current participant table with only the columns ``pick`` chooses from all of
        its names: the whole table is decrypted, but only those columns are decoded."""
        version = self._current_or_refuse()
        where = self.root / COHORT_DIR / version.id
        blob = (where / f"{PARTICIPANTS}.parquet.enc").read_bytes()
        plain = decrypt(blob, self.key, context(self.config, version.id, PARTICIPANTS))
        source = pq.ParquetFile(io.BytesIO(plain))
        columns = pick(list(source.schema_arrow.names))
        frame = pl.from_arrow(source.read(columns=columns))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def eids(self, version_id: str | None = None) -> np.ndarray:
        """The participant ids of ``version_id`` (the current cohort's by default; int64, in
        the table's order), read a chunk of the one column at a time: the table's other
        columns are never decoded, nor its whole plaintext held (a project's pseudonyms
        are issued from these; at 500,000 participants the whole table decoded took 650 MB
        for 4 MB of ids: benchmarks/store_eids.py)."""
        version_id = version_id or self._current_or_refuse().id
        parts = [chunk[EID].cast(pl.Int64).to_numpy()
                 for chunk in self.read_chunks(version_id, PARTICIPANTS, columns=[EID])]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def read_chunks(self, version_id: str, name: str, rows: int = 100_000,
                    columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """One sealed table of the kept version ``version_id``, decrypted and decoded
        ``rows`` at a time; at least one chunk, with the table's schema, even when it holds
        no rows; ``columns``: those only (the others are not decoded). The file is read and
        opened a segment at a time as the Parquet reader reaches it (:class:`SealedFile`):
        what is held is a row group's compressed columns and a chunk, whatever the table's
        size, not the table's bytes."""
        with SealedFile(self.root / COHORT_DIR / version_id / f"{name}.parquet.enc",
                        self.key, context(self.config, version_id, name)) as plain:
            source = pq.ParquetFile(plain)
            first = True
            for batch in source.iter_batches(batch_size=rows, columns=columns):
                chunk = pl.from_arrow(batch)
                assert isinstance(chunk, pl.DataFrame)
                first = False
                yield chunk
            if first:
                schema = source.schema_arrow
                if columns is not None:
                    schema = pa.schema([schema.field(c) for c in columns])
                empty = pl.from_arrow(schema.empty_table())
                assert isinstance(empty, pl.DataFrame)
                yield empty

    def _read_table(self, version_id: str, name: str) -> pl.DataFrame:
        return self.read_table_at(self.root / COHORT_DIR / version_id, version_id, name)

    def read_table_at(self, where: Path, version_id: str, name: str) -> pl.DataFrame:
        """One sealed table of version ``version_id`` kept at ``where`` (``InvalidTag`` if it
        was not sealed by this store for that version and table)."""
        blob = (where / f"{name}.parquet.enc").read_bytes()
        plain = decrypt(blob, self.key, context(self.config, version_id, name))
        frame = pl.from_arrow(pq.read_table(io.BytesIO(plain)))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection over the decrypted current cohort."""
        cohort = self.load(tables)
        con = duckdb.connect(":memory:")
        for name, frame in cohort.tables():
            if frame.width:
                con.register(f"_{name}_arrow", frame.to_arrow())
                # table names come from model.TABLE_NAMES, never from input
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "_{name}_arrow"')  # noqa: S608
                con.unregister(f"_{name}_arrow")
        return con


def source_for(key_file: Path) -> RawKeySource:
    """The master key in ``key_file``."""
    return RawKeySource(MasterKey.load(key_file), KeySpec("file", path=str(key_file.resolve())))


def context(config: StoreConfig, version_id: str, table: str) -> str:
    """What a sealed table or manifest is bound to: its store, version and name."""
    return f"strongroom/{config.store_id}/{version_id}/{table}"


def version_id_of(name: str) -> str:
    """A quarantined copy may carry a suffix (``<id>.<random>``); the id is the first part."""
    return name.split(".")[0]


def _manifest(version: CohortVersion) -> dict[str, Any]:
    return {"id": version.id, "created_at": version.created_at.isoformat(),
            "participants": version.participants, "tables": version.tables,
            "sources": version.sources, "dictionary_digest": version.dictionary_digest}


def partial_name(out: Path, backup_id: str) -> str:
    """The hidden name a backup is written under beside ``out`` until it is whole: it carries
    the backup's id, so a leftover is provably that backup's."""
    return f".{out.name}.{backup_id}.partial"


def backup_id_of(path: Path) -> str | None:
    """The id in a backup file's header (its first member), or None if it is not one."""
    try:
        with tarfile.open(path, "r:") as tar:
            first = tar.next()
            if first is None or first.name != BACKUP_HEADER or first.size > 1 << 16:
                return None
            handle = tar.extractfile(first)
            header = json.loads(handle.read()) if handle is not None else None
    except (tarfile.TarError, OSError, ValueError):
        return None
    found = header.get("backup_id") if isinstance(header, dict) else None
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class Layout:
    """``cohort/`` against the database: each directory name in one list."""

    staging: list[str]  # the store's own unfinished writes: leftovers
    retired: list[str]  # versions the database retired: their files may go
    live: list[str]  # versions the database knows and keeps
    unknown: list[str]  # sealed versions the database does not know: quarantined on open
    missing: list[str]  # versions the database keeps whose files are not here


def atomic_write(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` in full, or what it held before (a failure, say a full disk,
    removes the half-written temporary file and names ``path`` in the error)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
