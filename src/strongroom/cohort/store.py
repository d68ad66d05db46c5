"""The encrypted cohort store: a data directory, its metadata database and sealed Parquet files.

Layout of a data directory::

    strongroom.yaml         configuration (store id, key id, key file path, database URL)
    dictionary.json.gz      the data dictionary every ingest is validated against
    metadata.db             SQLite metadata database (unless a database URL is configured)
    cohort/<version>/       one sealed Parquet file per table (``<table>.parquet.enc``)

The master key is never inside the directory. A new cohort version is written in full to a
staging directory, flushed to disk, renamed into place, and only then made current in one
database transaction; a failure or crash at any point leaves the previous version current and
intact, and leftovers are swept on the next open.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import yaml
from sqlalchemy import JSON, Boolean, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.cohort.crypto import ENV_KEY, MasterKey, decrypt, encrypt
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary_bytes
from strongroom.cohort.model import EVENT_TABLES, PARTICIPANTS, Cohort
from strongroom.db import Base, UTCDateTime, create_all, make_engine
from strongroom.progress import Progress

CONFIG = "strongroom.yaml"
DICTIONARY = "dictionary.json.gz"
COHORT_DIR = "cohort"
STAGING_PREFIX = ".staging-"
LOCK = ".lock"
KEEP_VERSIONS = 2  # the current version and the one before it (for rollback)
ENV_KEY_FILE = "STRONGROOM_KEY_FILE"



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


@dataclass(frozen=True)
class StoreConfig:
    store_id: str
    key_id: str
    key_file: str | None
    database_url: str | None = None

    @classmethod
    def load(cls, root: Path) -> StoreConfig:
        path = root / CONFIG
        if not path.is_file():
            raise StoreError(
                f"{root} is not a Strongroom data directory (no {CONFIG}); "
                f"create one with `strongroom init {root}`"
            )
        data = yaml.safe_load(path.read_text())
        return cls(data["store_id"], data["key_id"], data.get("key_file"),
                   data.get("database_url"))

    def save(self, root: Path) -> None:
        text = yaml.safe_dump({
            "store_id": self.store_id,
            "key_id": self.key_id,
            "key_file": self.key_file,
            "database_url": self.database_url,
        }, sort_keys=False)
        _atomic_write(root / CONFIG, text.encode())


def default_key_file(store_id: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "strongroom" / "keys" / f"{store_id}.key"


def init_store(
    root: Path,
    *,
    key_file: Path | None = None,
    dictionary: Dictionary | None = None,
    database_url: str | None = None,
) -> Store:
    """Create a data directory and its master key (kept outside the directory)."""
    root = root.resolve()
    if (root / CONFIG).exists():
        raise StoreError(f"{root} is already a Strongroom data directory")
    if root.exists() and any(root.iterdir()):
        raise StoreError(f"{root} exists and is not empty; choose a new directory")
    store_id = uuid.uuid4().hex[:12]
    key_path = (key_file or default_key_file(store_id)).resolve()
    if key_path.is_relative_to(root):
        raise StoreError(f"the key file must live outside the data directory, not at {key_path}")
    key = MasterKey.from_env()
    stored_at: str | None = None  # a key from the environment is not written anywhere
    if key is None:
        if key_path.exists():
            raise StoreError(f"{key_path} already exists; refusing to overwrite a key")
        key = MasterKey.generate()
        key.save(key_path)
        stored_at = str(key_path)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    (root / COHORT_DIR).mkdir(mode=0o700)
    if dictionary is None:  # the shipped file as it is: re-compressing it costs a second
        (root / DICTIONARY).write_bytes(shipped_dictionary_bytes())
    else:
        dictionary.save(root / DICTIONARY)
    StoreConfig(store_id, key.key_id, stored_at, database_url).save(root)
    store = Store(root, key)
    create_all(store.engine)
    return store


class Store:
    """An open data directory with its master key."""

    def __init__(self, root: Path, key: MasterKey | None = None):
        self.root = root.resolve()
        self.config = StoreConfig.load(self.root)
        self.key = key or self._find_key()
        if self.key.key_id != self.config.key_id:
            raise StoreError(
                f"the key given (id {self.key.key_id}) is not this store's key "
                f"(id {self.config.key_id}); give the right key file or {ENV_KEY}"
            )
        url = self.config.database_url or f"sqlite:///{self.root / 'metadata.db'}"
        self.engine = make_engine(url)
        self._dictionary: Dictionary | None = None

    @classmethod
    def open(cls, root: Path, key_file: Path | None = None) -> Store:
        """Open a data directory (use as a context manager, or call ``close``)."""
        key = MasterKey.load(key_file) if key_file else None
        store = cls(root, key)
        try:
            create_all(store.engine)
            store.sweep()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Release the metadata database's connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _find_key(self) -> MasterKey:
        env = MasterKey.from_env()
        if env is not None:
            return env
        path = os.environ.get(ENV_KEY_FILE) or self.config.key_file
        if not path:
            raise StoreError(
                f"no master key: set {ENV_KEY} or {ENV_KEY_FILE}, or pass --key-file"
            )
        return MasterKey.load(Path(path))

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
        with self._session() as session:
            return list(session.scalars(
                select(CohortVersion).order_by(CohortVersion.created_at.desc())
            ))

    def write_version(
        self,
        cohort: Cohort,
        sources: Iterable[dict[str, Any]] = (),
        progress: Progress | None = None,
    ) -> CohortVersion:
        """Seal and store a validated cohort as the new current version, atomically."""
        with self._lock():
            return self._write_version(cohort, list(sources), progress)

    def _write_version(
        self, cohort: Cohort, sources: list[dict[str, Any]], progress: Progress | None
    ) -> CohortVersion:
        version_id = str(uuid.uuid4())
        staging = self.root / COHORT_DIR / f"{STAGING_PREFIX}{version_id}"
        final = self.root / COHORT_DIR / version_id
        staging.mkdir(mode=0o700)
        try:
            tables = {}
            for name, frame in cohort.tables():
                tables[name] = self._write_table(staging, version_id, name, frame)
                if progress:
                    progress(name, 1)
            _fsync_dir(staging)
            os.rename(staging, final)
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        record = CohortVersion(
            id=version_id,
            created_at=dt.datetime.now(dt.UTC),
            current=True,
            participants=cohort.n_participants,
            tables=tables,
            sources=sources,
            dictionary_digest=self.dictionary.digest,
        )
        try:
            with self._session() as session, session.begin():
                session.execute(update(CohortVersion).values(current=False))
                session.add(record)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        self._sweep()
        return record

    def _write_table(self, where: Path, version_id: str, name: str,
                     frame: pl.DataFrame) -> dict[str, Any]:
        buffer = io.BytesIO()
        pq.write_table(frame.to_arrow(), buffer, compression="zstd")
        sealed = encrypt(buffer.getvalue(), self.key, _context(self.config, version_id, name))
        _atomic_write(where / f"{name}.parquet.enc", sealed)
        return {"rows": frame.height, "columns": frame.width, "bytes": len(sealed)}

    def sweep(self) -> None:
        """Remove staging leftovers, versions no record names, and versions past retention."""
        with self._lock():
            self._sweep()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time per data directory (ingest and sweep)."""
        with open(self.root / LOCK, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _sweep(self) -> None:
        keep = {v.id for v in self.versions()[:KEEP_VERSIONS]}
        for entry in (self.root / COHORT_DIR).iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    # -- reading ------------------------------------------------------------------------

    def load(self, tables: Iterable[str] | None = None) -> Cohort:
        """Decrypt the current cohort into memory (it is never written out in the clear)."""
        version = self.current()
        if version is None:
            raise StoreError(
                "the store holds no cohort yet; add one with `strongroom cohort ingest`")
        wanted = set(tables) if tables is not None else set(version.tables)
        frames = {
            name: self._read_table(version.id, name)
            for name in version.tables
            if name in wanted
        }
        participants = frames.pop(PARTICIPANTS, pl.DataFrame())
        order = [t.name for t in EVENT_TABLES]
        return Cohort(participants, {n: frames[n] for n in order if n in frames})

    def _read_table(self, version_id: str, name: str) -> pl.DataFrame:
        blob = (self.root / COHORT_DIR / version_id / f"{name}.parquet.enc").read_bytes()
        plain = decrypt(blob, self.key, _context(self.config, version_id, name))
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


def _context(config: StoreConfig, version_id: str, table: str) -> str:
    return f"strongroom/{config.store_id}/{version_id}/{table}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
