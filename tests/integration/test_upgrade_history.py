"""Every earlier release's data directory upgrades, with that release's own history in it.

Each archive in tests/fixtures/previous-release/ was made by an earlier release's own code
playing its own demo (people, projects, outputs reviewed, released and rejected, an extract,
an alert with a suspension and an appeal, DP spending; genotypes and jobs where it had them;
see make.py there). Here `strongroom upgrade -d DIR` runs over each, then: no row of any table
is lost or altered (on the columns it had), the audit chain verifies (`strongroom audit
verify`), the watch's state (alerts, suspensions, limits) and the DP budgets are as they were,
every reviewed output's sealed bytes still open and match their digest, every row loads
through this release's models, and no sealed file changed.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom import migrations
from strongroom.access.models import Project
from strongroom.cli import app
from strongroom.cohort.dictionary import shipped_dictionary_bytes
from strongroom.cohort.store import CONFIG, Store, StoreError
from strongroom.db import Base, make_engine
from strongroom.errors import Invalid
from strongroom.outputs import files
from strongroom.outputs.models import OutputRow
from strongroom.outputs.states import OutputStatus
from strongroom.platform import Platform
from tests.conftest import POSTGRES_URL, postgres_schema, schema_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "previous-release"
ARCHIVES = sorted(p.name for p in FIXTURES.glob("*.tar.gz"))

# Opening the upgraded store appends to these (the upgrade's own event, a checkpoint), claims
# an unclaimed database (a release before store identities) and drains the outbox.
GROWS = {"audit_entries", "audit_checkpoints", "store_identity"}
DRAINED = {"audit_outbox"}
# the watch's state, the DP budgets and what was reviewed: compared row for row, named in
# failures of their own
WATCHED = ["watch_alerts", "access_pauses", "watch_limits", "privacy_budgets",
           "privacy_spends", "outputs_reviews", "outputs_outputs", "extracts_manifests"]
REVIEWED = {OutputStatus.RELEASED, OutputStatus.APPROVED_ONCE, OutputStatus.REJECTED,
            OutputStatus.UNDER_REVIEW}
OPERATOR = ["--operator", "Upgrade Test", "--reason", "the upgrade test"]


@dataclass
class Unpacked:
    root: Path
    key: Path
    url: str


def unpack(archive: str, into: Path, database_url: str | None) -> Unpacked:
    """An archive's data directory, as its release left it; on PostgreSQL its dump loaded
    into ``database_url``'s schema; the shipped dictionary put back where it was left out."""
    root = into / archive.split(".")[0]
    with tarfile.open(FIXTURES / archive) as tar:
        tar.extractall(root, filter="data")
    digest = root / "dictionary.json.gz.sha256"
    if digest.exists():
        shipped = shipped_dictionary_bytes()
        assert hashlib.sha256(shipped).hexdigest() == digest.read_text().strip(), \
            "the shipped dictionary changed since this fixture was made: rebuild it (make.py)"
        (root / "dictionary.json.gz").write_bytes(shipped)
        digest.unlink()
    config = yaml.safe_load((root / CONFIG).read_text())
    if database_url is not None:
        schema = schema_of(database_url)
        dump = gzip.decompress((root / "metadata.sql.gz").read_bytes()).decode()
        plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as con:
            con.execute(dump.replace("__SCHEMA__", schema).encode())
        (root / "metadata.sql.gz").unlink()
    config["database_url"] = database_url
    (root / CONFIG).write_text(yaml.safe_dump(config))
    return Unpacked(root, root / "master.key", database_url or f"sqlite:///{root / 'metadata.db'}")


Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def rows(engine: Engine) -> Rows:
    """Every table's columns and rows (sorted), as the database holds them."""
    found: Rows = {}
    with engine.connect() as con:
        for table in inspect(con).get_table_names():
            if table == "alembic_version":
                continue
            columns = [c["name"] for c in inspect(con).get_columns(table)]
            listed = ", ".join(f'"{c}"' for c in columns)
            got = con.execute(text(f'SELECT {listed} FROM "{table}"')).all()
            found[table] = columns, sorted((tuple(r) for r in got), key=repr)
    return found


def kept(before: Rows, after: Rows, table: str) -> list[tuple[Any, ...]]:
    """``table``'s rows after, on the columns it had before."""
    columns, _ = before[table]
    names, got = after[table]
    at = [names.index(c) for c in columns]
    return sorted((tuple(r[i] for i in at) for r in got), key=repr)


def sealed(root: Path) -> dict[str, str]:
    """Every sealed file (cohort versions, genotypes, projects' outputs) by its digest."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for top in ("cohort", "genotypes", "projects") if (root / top).is_dir()
            for p in sorted((root / top).rglob("*")) if p.is_file()}


@pytest.fixture(params=[pytest.param(a, marks=[pytest.mark.postgres] if "-postgresql" in a else [])
                        for a in ARCHIVES], ids=ARCHIVES)
def fixture_store(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Unpacked]:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    archive = str(request.param)
    if archive.endswith("-postgresql.tar.gz"):
        with postgres_schema() as url:
            yield unpack(archive, tmp_path, url)
    else:
        yield unpack(archive, tmp_path, None)


def test_an_earlier_release_s_data_directory_upgrades_with_its_history(
        fixture_store: Unpacked) -> None:
    root, key = fixture_store.root, fixture_store.key
    engine = make_engine(fixture_store.url)
    try:
        was = migrations.state(engine)
        before = rows(engine)
    finally:
        engine.dispose()
    assert was.schema in (migrations.Schema.UNVERSIONED, migrations.Schema.OLDER)
    assert before["outputs_outputs"][1] and before["audit_entries"][1]
    files_before = sealed(root)
    with pytest.raises(StoreError, match="strongroom upgrade -d"):
        Store.open(root, key)

    runner = CliRunner()
    args = ["-d", str(root), "--key-file", str(key)]
    done = runner.invoke(app, ["upgrade", *args, *OPERATOR])
    assert done.exit_code == 0, done.output
    assert "upgraded the metadata database" in done.output
    again = runner.invoke(app, ["upgrade", *args, *OPERATOR])
    assert again.exit_code == 0 and "already at this release's schema" in again.output
    verified = runner.invoke(app, ["audit", "verify", *args])
    assert verified.exit_code == 0, verified.output

    engine = make_engine(fixture_store.url)
    try:
        assert migrations.state(engine).schema is migrations.Schema.CURRENT
        assert migrations.differences(engine, Base.metadata) == []
        after = rows(engine)
    finally:
        engine.dispose()
    for table in WATCHED:  # named first: these are what a custodian would miss
        if table in before:
            assert kept(before, after, table) == before[table][1], table
    lost = {t: (len(r), len(after[t][1])) for t, (_, r) in before.items()
            if t not in GROWS | DRAINED and kept(before, after, t) != r}
    assert lost == {}, f"tables whose rows changed (before, after): {lost}"
    for table in GROWS & set(before):
        got = set(kept(before, after, table))
        assert all(r in got for r in before[table][1]), f"{table} lost rows"
    assert all(not after[t][1] for t in DRAINED & set(after))
    assert sealed(root) == files_before

    with Platform.open(root, key) as platform:
        upgraded = [e for e in platform.audit.entries() if e.type == "store.upgraded"]
        assert len(upgraded) == 1 and upgraded[0].details["operator"] == "Upgrade Test"
        assert upgraded[0].details["revisions"][-1] == migrations.head()
        assert platform.store.load().participants.height > 0
        with Session(platform.store.engine) as session:
            for mapper in Base.registry.mappers:  # every row loads through today's models
                session.scalars(select(mapper.class_)).all()
            reviewed = [o for o in session.scalars(select(OutputRow))
                        if o.status in REVIEWED]
            projects = {p.id: p for p in session.scalars(select(Project))}
        if (root / ".strongroom-demo").exists():  # a demo's history (16a023a's is a tour)
            assert {o.status for o in reviewed} >= {
                OutputStatus.RELEASED, OutputStatus.REJECTED, OutputStatus.APPROVED_ONCE}
        for output in reviewed:  # the sealed bytes open under today's code, digest and all
            payload = files.load(platform.access, projects[output.project_id], output.sha256)
            assert len(payload) == output.size
            if output.status == OutputStatus.RELEASED and output.kind != "job_file":
                try:  # and as a labelled table, where its form allows one
                    assert platform.outputs.readable(output, payload).width > 0
                except Invalid as exc:
                    assert "download its record" in str(exc)
