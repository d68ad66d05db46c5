"""Checking, upgrading and recovering a data directory that will not open.

``check`` only reads. ``upgrade`` brings the metadata database to the code's schema.
``recover`` re-registers sealed versions the database lost, from their sealed manifests (or, for
versions written before manifests, from their sealed tables): it never deletes, and never
registers a directory that is not provably this store's (sealed under its key, for that id).
Both hold the data directory alone (:meth:`Store.exclusive`): while anything else has the store
open (a running server, another command) they refuse, having read and changed nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, MetaData, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from strongroom import migrations
from strongroom.audit.events import JSON, AuditEvent, EventType
from strongroom.audit.keys import salt_key_from_secret
from strongroom.audit.operators import Operator
from strongroom.audit.outbox import stage
from strongroom.cohort import journal
from strongroom.cohort.crypto import DecryptionError, decrypt
from strongroom.cohort.model import PARTICIPANTS
from strongroom.cohort.store import (
    COHORT_DIR,
    MANIFEST,
    CohortVersion,
    Store,
    StoreError,
    StoreIdentity,
    context,
    fsync_dir,
    version_id_of,
)


@dataclass
class Report:
    """What a check found: problems stop the store opening; notes do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(store: Store) -> Report:
    """Everything that would stop ``store`` opening, and what else is odd; reads only."""
    report = Report()
    file = store.sqlite_file()
    if file is not None and (not file.exists() or file.stat().st_size == 0):
        report.problems.append(f"the metadata database {file} is "
                               f"{'empty' if file.exists() else 'missing'}")
        _sealed_on_disk(store, report, known=set())
        return report
    try:
        found = migrations.state(store.engine)
    except OperationalError as exc:
        report.problems.append(f"cannot read the metadata database {store.database}: "
                               f"{str(exc.orig).strip()}")
        return report
    if found.schema is migrations.Schema.EMPTY:
        report.problems.append(f"the metadata database {store.database} holds no tables")
        _sealed_on_disk(store, report, known=set())
        return report
    if found.schema is migrations.Schema.NEWER:
        report.problems.append(migrations.newer_schema(found))
        return report
    if found.schema is not migrations.Schema.CURRENT:
        report.problems.append(f"the schema is {found.revision or 'unversioned (16a023a)'}, "
                               f"the code's is {found.head} ({found.schema.value}): back the "
                               f"store up, then run {upgrade_hint(store)}")
        return report
    with Session(store.engine) as session:
        owners = list(session.scalars(select(StoreIdentity.store_id)))
        known = {v.id: v for v in session.scalars(select(CohortVersion))}
    if owners != [store.config.store_id]:
        report.problems.append(f"the database belongs to {owners or 'no store'}, not to "
                               f"{store.config.store_id}")
        return report
    layout = store.layout()
    for name in layout.missing:
        what = "current version" if known[name].current else "kept version"
        (report.problems if known[name].current else report.notes).append(
            f"{what} {name} is in the database but its files are not on disk")
    if layout.staging:
        report.notes.append(f"{len(layout.staging)} unfinished write(s) to remove on open")
    if layout.retired:
        report.notes.append(f"{len(layout.retired)} retired version(s) to remove on open")
    _sealed_on_disk(store, report, known=set(known) | _cut_off(store, report, set(known)))
    for name in layout.live:
        report.problems.extend(_digests(store, store.root / COHORT_DIR / name, known[name]))
    if not report.problems:
        report.notes.append(f"{len(layout.live)} sealed version(s), all known and intact")
    return report


def _sealed_on_disk(store: Store, report: Report, known: set[str]) -> None:
    for where in _candidates(store):
        if where.parent.name == COHORT_DIR and where.name in known:
            continue
        try:
            version = _read_version(store, where)
        except StoreError as exc:
            report.problems.append(f"{where.relative_to(store.root)}: {exc}; left as it is")
            continue
        report.problems.append(
            f"{where.relative_to(store.root)} is a sealed version of this store "
            f"({version.participants:,} participants, written "
            f"{version.created_at:%Y-%m-%d %H:%M} UTC) that the database does not know: "
            f"`strongroom store recover -d {store.root} --operator NAME --reason TEXT` "
            f"registers it")


def _cut_off(store: Store, report: Report, known: set[str]) -> set[str]:
    """Versions an ingest cut off by a crash left, which its intent explains: the next open
    rolls them back by itself (a note, not a problem). Returns their ids."""
    cut = {i.id for i in journal.pending(store.root) if i.kind == "ingest"} - known
    if cut:
        report.notes.append(f"{len(cut)} ingest(s) cut off before the database recorded them "
                            f"({', '.join(sorted(cut))}): the next open rolls them back and "
                            f"records it in the audit log")
    return cut


def _candidates(store: Store) -> list[Path]:
    """Sealed version directories: in ``cohort/`` (not staging) and in ``quarantine/``."""
    found = [p for p in sorted((store.root / COHORT_DIR).iterdir())
             if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    if store.quarantine_dir.is_dir():
        found += sorted(p for p in store.quarantine_dir.iterdir()
                        if p.is_dir() and not p.is_symlink())
    return found


def _read_version(store: Store, where: Path) -> CohortVersion:
    """The version's record from its sealed manifest, or rebuilt from its sealed tables when
    it predates manifests; either way only what this store's key opens for that id."""
    try:
        version = store.open_manifest(where)
    except StoreError as missing:
        if (where / "manifest.json.enc").exists():
            raise
        version = _from_tables(store, where, missing)
    if version.id != version_id_of(where.name):
        raise StoreError(f"its manifest names version {version.id}")
    problems = _digests(store, where, version)
    if problems:  # a directory that is not what was sealed is never registered
        raise StoreError("; ".join(problems))
    return version


def _from_tables(store: Store, where: Path, why: StoreError) -> CohortVersion:
    version_id = version_id_of(where.name)
    tables: dict[str, object] = {}
    participants = 0
    for sealed in sorted(where.glob("*.parquet.enc")):
        name = sealed.name.removesuffix(".parquet.enc")
        try:
            frame = store.read_table_at(where, version_id, name)
        except Exception as exc:  # InvalidTag: not sealed by this store for this version
            raise StoreError(f"{why}, and its table {name} is not this store's") from exc
        tables[name] = {"rows": frame.height, "columns": frame.width,
                        "bytes": sealed.stat().st_size}
        if name == PARTICIPANTS:
            participants = frame.height
    if PARTICIPANTS not in tables:  # without a manifest, not a version without its people
        raise StoreError(f"{why}, and it has no {PARTICIPANTS} table")
    written = dt.datetime.fromtimestamp(os.stat(where).st_mtime, dt.UTC)
    return CohortVersion(id=version_id, created_at=written, current=False,
                         participants=participants, tables=tables,
                         sources=[{"recovered": "from sealed tables (no manifest)"}],
                         dictionary_digest=store.dictionary.digest)


def _digests(store: Store, where: Path, version: CohortVersion) -> list[str]:
    """Sealed tables whose bytes differ from the digest recorded when they were written."""
    found = (_table_problem(version.id, name, info, _sealed(where, name))
             for name, info in version.tables.items())
    return [problem for problem in found if problem is not None]


def _sealed(where: Path, table: str) -> bytes | None:
    path = where / f"{table}.parquet.enc"
    return path.read_bytes() if path.is_file() else None


def _table_problem(version_id: str, name: str, info: dict[str, object],
                   data: bytes | None) -> str | None:
    """What is wrong with a sealed table's bytes against its record, if anything."""
    if data is None:
        return f"version {version_id}: table {name} is missing"
    if "sha256" in info and hashlib.sha256(data).hexdigest() != info["sha256"]:
        return f"version {version_id}: table {name} differs from its digest"
    if len(data) != info.get("bytes", len(data)):
        return f"version {version_id}: table {name} has another size"
    return None


@dataclass(frozen=True)
class Scrub:
    """What a scrub read: every kept version's sealed files, digest and authentication."""

    files: int
    bytes: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def scrub(store: Store) -> Scrub:
    """Read every sealed file of every kept version: its digest against the one recorded when
    it was sealed, then every segment's authentication tag (a flipped bit anywhere is found,
    not only where a query happens to read). Reads only."""
    files = size = 0
    problems: list[str] = []
    for version in store.versions():
        where = store.root / COHORT_DIR / version.id
        for name, info in version.tables.items():
            data = _sealed(where, name)  # read once: the digest, then every tag
            problem = _table_problem(version.id, name, info, data)
            if problem is not None:
                problems.append(problem)
                continue
            assert data is not None  # a missing table is a problem above
            files += 1
            size += len(data)
            try:
                decrypt(data, store.key, context(store.config, version.id, name))
            except DecryptionError as exc:
                problems.append(f"version {version.id}: table {name} does not open: {exc}")
        if (where / MANIFEST).is_file():
            files += 1
            try:
                store.open_manifest(where)
            except StoreError as exc:
                problems.append(f"version {version.id}: {exc}")
    return Scrub(files, size, problems)


def upgrade_hint(store: Store) -> str:
    """The command that upgrades ``store``, as it runs when pasted."""
    return f"`strongroom upgrade -d {store.root} --operator NAME --reason TEXT`"


def recover_hint(store: Store) -> str:
    """The command that recovers ``store``, as it runs when pasted."""
    return f"`strongroom store recover -d {store.root} --operator NAME --reason TEXT`"


def upgrade(store: Store, metadata: MetaData, *, by: Operator | None = None) -> list[str]:
    """Bring the database to the code's schema, all or nothing (see
    :func:`strongroom.migrations.upgrade`). Refuses, changing nothing, while anything else
    has the store open (a running server would find its schema changed under it), an empty
    database (that is `recover`'s) and a newer one; refuses to commit a result whose tables
    differ from ``metadata``; then claims an unclaimed database for this store (or refuses
    one another store claimed)."""
    with store.exclusive(upgrade_hint(store)):
        return _upgrade(store, metadata, by)


def _upgrade(store: Store, metadata: MetaData, by: Operator | None) -> list[str]:
    found = migrations.state(store.engine)
    if found.schema is migrations.Schema.EMPTY:
        raise StoreError(f"the metadata database {store.database} holds no tables: there is "
                         f"nothing to upgrade. Restore it from a backup, or run `strongroom "
                         f"store recover -d {store.root} --operator NAME --reason TEXT`.")
    if found.schema is migrations.Schema.NEWER:
        raise StoreError(migrations.newer_schema(found))

    def record(con: Connection, applied: list[str]) -> None:  # commits with the upgrade
        drift = migrations.differences(con, metadata)
        if drift:
            raise StoreError("the upgraded tables would still differ from this release's ("
                             + "; ".join(drift) + "): the database was not made by a "
                             "Strongroom release this one can upgrade")
        stage(con, AuditEvent(EventType.STORE_UPGRADED, _actor(by), store.config.store_id,
                              {"revisions": list[JSON](applied), **_who(by)}),
              salt_key_from_secret(store.key.secret))

    try:
        applied = migrations.upgrade(store.engine, then=record)
    except migrations.UpgradeError as exc:
        raise StoreError(f"{exc}. No sealed file was touched.") from exc
    _claim_if_unclaimed(store)
    return applied


def _claim_if_unclaimed(store: Store) -> None:
    with Session(store.engine) as session:
        owners = list(session.scalars(select(StoreIdentity.store_id)))
        known = set(session.scalars(select(CohortVersion.id)
                                    .where(CohortVersion.retired_at.is_(None))))
    on_disk = {version_id_of(p.name) for p in _candidates(store)}
    if not owners and known - on_disk:  # it knows versions this directory never held
        raise StoreError(
            f"the database names no owner and knows cohort versions that are not in "
            f"{store.root} ({', '.join(sorted(known - on_disk))}): it looks like another "
            f"store's. Nothing was changed; point {store.root / 'strongroom.yaml'} at this "
            f"store's database")
    if not owners:
        store.claim()
    elif owners != [store.config.store_id]:
        raise StoreError(f"the database belongs to store {', '.join(owners)}, not to "
                         f"{store.config.store_id}: point the store at its own database")


def recover(store: Store, *, by: Operator | None = None) -> list[str]:
    """Register every sealed version of this store that the database does not know, move
    quarantined ones back, and make the newest current if none is. Returns what was done.
    Each step's ``store.recovered`` names ``by`` (who ran it and why). Refuses, changing
    nothing, while anything else has the store open."""
    done: list[str] = []
    with store.exclusive(recover_hint(store)), store.lock():
        found = migrations.state(store.engine)
        if found.schema is migrations.Schema.EMPTY:
            migrations.upgrade(store.engine)
            done.append(f"created the metadata tables (schema {found.head}) in the empty "
                        f"database {store.database}")
        elif found.schema is migrations.Schema.NEWER:
            raise StoreError(migrations.newer_schema(found))
        elif found.schema is not migrations.Schema.CURRENT:
            raise StoreError(f"the database's schema is {found.schema.value}: run "
                             f"{upgrade_hint(store)} first")
        _claim_if_unclaimed(store)
        recorded = 0  # done[:recorded] is in the audit outbox
        with Session(store.engine, expire_on_commit=False) as session:
            known = {v.id for v in session.scalars(select(CohortVersion))}
        for where in _candidates(store):
            version_id = version_id_of(where.name)
            in_cohort = where.parent.name == COHORT_DIR
            if in_cohort and version_id in known:
                continue
            try:
                version = _read_version(store, where)
            except StoreError as exc:
                done.append(f"left {where.relative_to(store.root)} where it is: {exc}")
                continue
            target = store.root / COHORT_DIR / version_id
            if not in_cohort and target.exists():
                done.append(f"left {where.relative_to(store.root)} in quarantine: "
                            f"{COHORT_DIR}/{version_id} already exists")
                continue
            lines = []
            if version_id not in known:
                source = "tables" if "recovered" in str(version.sources) else "manifest"
                lines.append(f"registered version {version_id} ({version.participants:,} "
                             f"participants) from its sealed {source}")
            if not in_cohort:
                lines.append(f"moved version {version_id} back from quarantine")
            # the registration and its event commit together; the move back (a rename, outside
            # the database) is recorded with them and done after: a crash in between leaves it
            # registered and still in quarantine, where the next `recover` finishes the move
            with Session(store.engine) as session, session.begin():
                if version_id not in known:
                    session.add(version)
                _audit(store, by, session, version_id, [*done[recorded:], *lines])
            known.add(version_id)
            done.extend(lines)
            recorded = len(done)
            if not in_cohort:
                os.rename(where, target)
                fsync_dir(target.parent)
        if store.quarantine_dir.is_dir() and not any(store.quarantine_dir.iterdir()):
            store.quarantine_dir.rmdir()
        made = _make_newest_current(store, done[recorded:], by)
        if not made and done[recorded:]:  # the tables made, or what was left as it was
            with Session(store.engine) as session, session.begin():
                _audit(store, by, session, store.config.store_id, done[recorded:])
        done.extend(made)
    return done


def _make_newest_current(store: Store, unrecorded: list[str],
                         by: Operator | None = None) -> list[str]:
    """The newest version whose sealed files are here and match their digests becomes current
    (audited with the ``unrecorded`` steps before it), if it is not already: a database
    restored from an older backup names an older version current, or none, or one whose files
    are gone. Every ingest makes its version current, so the newest sound one is the one
    that was; a damaged newer one is passed over, and said so. Whatever it returns, it has
    audited with ``unrecorded``."""
    current = store.current()
    passed: list[str] = []
    newest = None
    for version in store.versions():  # newest first
        where = store.root / COHORT_DIR / version.id
        if not where.is_dir():
            continue
        damaged = _digests(store, where, version)
        if not damaged:
            newest = version
            break
        passed.append(f"passed over version {version.id}, newer but damaged "
                      f"({'; '.join(damaged)})")
    if newest is None or (current is not None and current.id == newest.id):
        if passed:  # nothing changes, but what was passed over is said in the log
            with Session(store.engine) as session, session.begin():
                _audit(store, by, session, store.config.store_id, [*unrecorded, *passed])
        return passed
    if current is None:
        was = ""
    elif not (store.root / COHORT_DIR / current.id).is_dir():
        was = f" (the current {current.id}'s files are not here)"
    else:
        was = f" instead of the older {current.id} the database named"
    lines = [*passed, f"made version {newest.id}, the newest present whose sealed files "
                      f"verify, current{was}"]
    with Session(store.engine) as session, session.begin():
        session.execute(update(CohortVersion).values(current=False))
        session.execute(update(CohortVersion).where(CohortVersion.id == newest.id)
                        .values(current=True))
        _audit(store, by, session, newest.id, [*unrecorded, *lines])
    return lines


def _audit(store: Store, by: Operator | None, session: Session, version_id: str,
           lines: list[str]) -> None:
    store.audit(session, EventType.STORE_RECOVERED, _actor(by), version_id,
                {"actions": list[JSON](lines), **_who(by)})


def _actor(by: Operator | None) -> str:
    return by.actor if by is not None else "operator"


def _who(by: Operator | None) -> dict[str, JSON]:
    """Who ran an operator step and why (none when code, not a person at the console, ran
    it: a test, a benchmark)."""
    return by.details() if by is not None else {}
