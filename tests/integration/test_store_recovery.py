"""Nothing sealed is lost when the metadata database is: deleted, emptied, swapped for another
store's, or rolled back to an older backup. Each case on SQLite and PostgreSQL: the store refuses
to open saying what is wrong, every sealed byte is still on disk (read custodian-side, file by
file), and ``store recover`` gives back the same cohort. Also: schema versions, the upgrade of a
data directory made by the previous release (kept as a fixture), and retention that only removes
what the database retired."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest
import yaml
from sqlalchemy import select, text
from typer.testing import CliRunner

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom import migrations
from strongroom.audit.verify import verify as audit_verify
from strongroom.cli import app
from strongroom.cohort import recovery
from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.store import (
    COHORT_DIR,
    CONFIG,
    CohortVersion,
    Store,
    StoreError,
    init_store,
)
from strongroom.cohort.validate import validate
from strongroom.db import Base, make_engine
from strongroom.platform import Platform
from tests.conftest import POSTGRES_URL, postgres_schema, schema_of, small_cohort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "previous-release"
LOSSES = ["deleted", "emptied", "swapped", "older backup"]


def sealed(root: Path) -> dict[str, str]:
    """Every sealed file under cohort/ and quarantine/, as 'version/file' -> sha256 (where a
    version sits does not matter: that it is all there, byte for byte, does)."""
    found = {}
    for top in (root / COHORT_DIR, root / "quarantine"):
        for path in top.glob("*/*.enc") if top.is_dir() else []:
            found[f"{path.parent.name.split('.')[0]}/{path.name}"] = \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def frames(store: Store) -> dict[str, pl.DataFrame]:
    return dict(store.load().tables())


def key_of(store: Store) -> Path:
    return store.root.parent / "keys" / "master.key"


@pytest.fixture
def filled(store: Store, dictionary: Dictionary) -> Store:
    """A store with two cohort versions (the second current)."""
    cohort = validate(small_cohort(), dictionary, "small")
    store.write_version(cohort)
    store.write_version(cohort.__class__(cohort.participants.head(2), cohort.events))
    return store


def _set_database(root: Path, url: str | None) -> None:
    config = yaml.safe_load((root / CONFIG).read_text())
    config["database_url"] = url
    (root / CONFIG).write_text(yaml.safe_dump(config))


def _lose(store: Store, loss: str, tmp_path: Path, other_url: str | None) -> None:
    """Do to the store's database what an operator's mistake would."""
    store.close()
    url = store.config.database_url
    if loss == "deleted":
        if url is None:
            for path in store.root.glob("metadata.db*"):
                path.unlink()
        else:  # a misconfigured URL: an empty database
            _set_database(store.root, other_url)
    elif loss == "emptied":
        if url is None:
            for path in store.root.glob("metadata.db*"):
                path.unlink()
            (store.root / "metadata.db").write_bytes(b"")
        else:
            with store.engine.begin() as con:
                for table in reversed(Base.metadata.sorted_tables):
                    con.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
                con.execute(text("DROP TABLE alembic_version"))
    elif loss == "swapped":
        other = init_store(tmp_path / "other", key_file=tmp_path / "other.key",
                           database_url=other_url)
        other.close()
        if url is None:
            for path in store.root.glob("metadata.db*"):
                path.unlink()
            shutil.copy(tmp_path / "other" / "metadata.db", store.root / "metadata.db")
        else:
            _set_database(store.root, other_url)
    elif loss == "older backup":  # the database as it was before the second version
        newest = store.versions()[0].id
        with store.engine.begin() as con:
            con.execute(text("DELETE FROM cohort_versions WHERE id = :id"), {"id": newest})
            con.execute(text("UPDATE cohort_versions SET current = true"))
    store.engine.dispose()


@pytest.fixture
def other_url(database_url: str | None) -> Iterator[str | None]:
    """A second, empty PostgreSQL schema (None on SQLite)."""
    if database_url is None:
        yield None
        return
    with postgres_schema() as url:
        yield url


@pytest.mark.parametrize("loss", LOSSES)
def test_a_lost_database_loses_no_sealed_byte(filled: Store, loss: str, tmp_path: Path,
                                              other_url: str | None) -> None:
    before = sealed(filled.root)
    expected = frames(filled)
    versions = {v.id for v in filled.versions()}
    assert len(before) == 2 * 3  # two versions, three sealed files each (with the manifest)
    _lose(filled, loss, tmp_path, other_url)
    for _ in range(2):  # the second open must refuse too (nothing was "cleaned" the first time)
        with pytest.raises(StoreError, match="Nothing was") as refused:
            Store.open(filled.root, key_of(filled))
        assert sealed(filled.root) == before
    assert "strongroom" in str(refused.value)  # it says what to run
    if loss == "swapped":  # the operator points the store back at its own database
        _set_database(filled.root, filled.config.database_url)
        if filled.config.database_url is None:
            _lose(filled, "deleted", tmp_path, other_url)
    raw = Store(filled.root, MasterKey.load(key_of(filled)))
    # a swapped PostgreSQL database was refused before anything was looked at
    assert recovery.check(raw).ok is (loss == "swapped" and filled.config.database_url is not None)
    recovery.recover(raw)
    raw.close()
    assert sealed(filled.root) == before
    assert not (filled.root / "quarantine").exists()
    with Store.open(filled.root, key_of(filled)) as reopened:
        assert {v.id for v in reopened.versions()} == versions
        got = frames(reopened)  # the newest sealed version is current again, whatever
        assert {n: f.equals(expected[n]) for n, f in got.items()} == \
            dict.fromkeys(expected, True)  # version the database (an older backup) named
        assert recovery.check(reopened).ok


def test_recovery_passes_over_a_damaged_newer_version(filled: Store) -> None:
    """A database that names the older version current, the newer one known but a byte of its
    sealed files changed: the older, sound one stays current, and the log says why."""
    newest, older = (v.id for v in filled.versions())
    filled.close()
    with filled.engine.begin() as con:
        con.execute(text("UPDATE cohort_versions SET current = (id = :id)"), {"id": older})
    filled.engine.dispose()
    damaged = filled.root / COHORT_DIR / newest / "participants.parquet.enc"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 1
    damaged.write_bytes(bytes(data))
    raw = Store(filled.root, MasterKey.load(key_of(filled)))
    staged = _count(raw, "audit_outbox")
    done = recovery.recover(raw)
    current = raw.current()
    assert _count(raw, "audit_outbox") == staged + 1  # store.recovered, saying so
    raw.close()
    assert [line for line in done if line.startswith(f"passed over version {newest}")], done
    assert current is not None and current.id == older


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the file case
def test_a_store_cli_command_on_a_lost_database_exits_1_with_the_reason(
        filled: Store, tmp_path: Path) -> None:
    _lose(filled, "deleted", tmp_path, None)
    before = sealed(filled.root)
    runner = CliRunner()
    args = ["-d", str(filled.root), "--key-file", str(key_of(filled))]
    info = runner.invoke(app, ["cohort", "info", *args])
    assert info.exit_code == 1 and "metadata database" in info.output
    assert info.exception is None or isinstance(info.exception, SystemExit)
    check = runner.invoke(app, ["store", "check", *args])
    assert check.exit_code == 1 and "does not know" in check.output
    assert sealed(filled.root) == before
    done = runner.invoke(app, ["store", "recover", *args, "--operator", "Test Operator",
                               "--reason", "the database was deleted"])
    assert done.exit_code == 0, done.output
    assert "registered version" in done.output
    assert runner.invoke(app, ["store", "check", *args]).exit_code == 0
    with Platform.open(filled.root, key_of(filled)) as platform:
        platform.audit.checkpoint()
        events = [e for e in platform.audit.entries() if e.type == "store.recovered"]
        # each step is recorded in the transaction that made it: together, what was printed
        actions = [line for e in events for line in e.details["actions"]]
        printed = "".join(done.output.split())  # the console wraps long paths
        assert actions and all("".join(line.split()) in printed for line in actions)
        assert sum("registered version" in line for line in actions) == \
            printed.count("registeredversion") > 0


def test_a_directory_not_sealed_by_this_store_is_held_never_registered(
        filled: Store, tmp_path: Path) -> None:
    foreign = filled.root / COHORT_DIR / str(uuid.uuid4())
    foreign.mkdir()
    (foreign / "participants.parquet.enc").write_bytes(b"not ours")
    filled.close()
    with pytest.raises(StoreError, match="not in the metadata database"):
        Store.open(filled.root, key_of(filled))
    raw = Store(filled.root, MasterKey.load(key_of(filled)))
    done = recovery.recover(raw)
    raw.close()
    assert any("left quarantine" in line and "not this store's" in line for line in done)
    assert (filled.root / "quarantine" / foreign.name / "participants.parquet.enc").read_bytes() \
        == b"not ours"
    with pytest.raises(StoreError, match="quarantine"):  # until a person moves it away
        Store.open(filled.root, key_of(filled))


def test_retention_retires_before_it_removes(store: Store, dictionary: Dictionary) -> None:
    cohort = validate(small_cohort(), dictionary, "small")
    ids = [store.write_version(cohort).id for _ in range(3)]
    assert sorted(p.name for p in (store.root / COHORT_DIR).iterdir()) == sorted(ids[1:])
    with store.engine.connect() as con:
        retired = con.execute(select(CohortVersion.id).where(
            CohortVersion.retired_at.is_not(None))).scalars().all()
    assert retired == [ids[0]]  # the record stays: what was held, and when it went


# -- schema versions ---------------------------------------------------------------------------

def test_a_new_store_is_at_the_head_revision_and_matches_the_code(store: Store) -> None:
    found = migrations.state(store.engine)
    assert found.schema is migrations.Schema.CURRENT and found.revision == migrations.head()
    assert migrations.differences(store.engine, Base.metadata) == []


def test_a_newer_or_unversioned_schema_is_refused_with_what_to_do(store: Store) -> None:
    store.close()
    with store.engine.begin() as con:
        con.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer Strongroom"):
        Store.open(store.root, key_of(store))
    with store.engine.begin() as con:
        con.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(StoreError, match="strongroom upgrade"):
        Store.open(store.root, key_of(store))
    store.engine.dispose()


def _previous_release(tmp_path: Path, database_url: str | None) -> Path:
    """The data directory the previous release (16a023a) made, unpacked; on PostgreSQL its
    database dump loaded into this test's schema."""
    kind = "sqlite" if database_url is None else "postgresql"
    root = tmp_path / "previous"
    with tarfile.open(FIXTURES / f"16a023a-{kind}.tar.gz") as archive:
        archive.extractall(root, filter="data")
    if database_url is not None:
        schema = schema_of(database_url)
        dump = gzip.decompress((root / "metadata.sql.gz").read_bytes()).decode()
        plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(dump.replace("__SCHEMA__", schema).encode())
        _set_database(root, database_url)
    return root


def test_the_previous_release_s_data_directory_upgrades(tmp_path: Path,
                                                        database_url: str | None) -> None:
    root = _previous_release(tmp_path, database_url)
    key = root / "master.key"
    before = sealed(root)
    with pytest.raises(StoreError, match="strongroom upgrade"):
        Store.open(root, key)
    raw = Store(root, MasterKey.load(key))
    people_before = _count(raw, "access_people")
    applied = recovery.upgrade(raw, Base.metadata)
    assert applied == [f"{n:04d}" for n in range(1, int(migrations.head()) + 1)]
    assert recovery.upgrade(raw, Base.metadata) == []  # once is enough
    raw.close()
    assert sealed(root) == before
    with Platform.open(root, key) as platform:
        assert platform.store.load().participants.height == 300
        assert _count(platform.store, "access_people") == people_before > 0
        assert audit_verify(platform.store.engine, public_key=platform.audit.public_key,
                            witness=platform.witness).ok
        # the upgrade's event committed with the upgrade, and is in the signed log now
        upgraded = [e.details for e in platform.audit.entries() if e.type == "store.upgraded"]
        assert upgraded == [{"revisions": applied}]
    engine = make_engine(_url(root))
    try:
        assert migrations.differences(engine, Base.metadata) == []
        with engine.connect() as con:  # 0003: what the check acted on, read from verdicts
            rows = con.execute(text("SELECT verdict, acted FROM outputs_outputs")).all()
        assert rows and all(bool(acted) == (verdict != "release") for verdict, acted in rows)
    finally:
        engine.dispose()


def test_an_upgrade_refuses_a_database_that_is_not_a_release_s(tmp_path: Path) -> None:
    root = _previous_release(tmp_path, None)
    engine = make_engine(_url(root))
    with engine.begin() as con:  # older than any release this one knows
        con.execute(text("ALTER TABLE watch_meter DROP COLUMN differencing_within"))
    engine.dispose()
    raw = Store(root, MasterKey.load(root / "master.key"))
    with pytest.raises(StoreError, match="differencing_within"):
        recovery.upgrade(raw, Base.metadata)
    raw.close()


def _url(root: Path) -> str:
    config = yaml.safe_load((root / CONFIG).read_text())
    return config["database_url"] or f"sqlite:///{root / 'metadata.db'}"


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as con:
        return int(con.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
