"""Every change is recorded with the change: a process killed (SIGKILL, no clean-up) at each
step between a change and its audit entry leaves either both or neither, never one alone and
never an entry twice, on SQLite and PostgreSQL.

The child process is real and dies for real: it patches the step *after* which it is to die
to call ``kill -9`` on itself (the patch only chooses the moment; the database, the files and
the audit writer are the real ones). The parent then opens the store, whose audit writer drains
what the crash left in the outbox, and checks the change against the log.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

import strongroom.platform
from strongroom.access.models import Institution
from strongroom.audit.outbox import waiting
from strongroom.audit.tables import ENTRIES
from strongroom.audit.verify import verify as audit_verify
from strongroom.cohort.store import COHORT_DIR, STAGING_PREFIX, CohortVersion, Store, init_store
from strongroom.cohort.validate import validate
from strongroom.platform import Platform, open_audit
from tests.conftest import small_cohort
from tests.kill_points import run_child

# Each step is patched to run, then kill the process: "after X" is the instant after X.

CHILD = r'''
import os, signal, sys
from pathlib import Path

point, root, key = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

OPEN = False  # the store is open: the writer's own first drain is behind us

import strongroom.audit.log as log
import strongroom.cohort.store as store_module
from strongroom.access import institutions
from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.store import Store
from strongroom.cohort.validate import validate
from strongroom.platform import Platform
from tests.conftest import small_cohort

if point == "staged":  # the event is in the change's transaction, which has not committed
    after(log.AuditLog, "stage")
elif point == "committed":  # the change and its event committed; the writer not yet asked
    before(log.AuditLog, "drain", lambda self: OPEN)
elif point == "drained-uncommitted":  # outbox rows deleted, entries inserted, not committed
    after(log.AuditLog, "_write", lambda self, conn, events, staged, **_: bool(staged))
elif point == "drained":  # the drain committed; its callers not yet told
    after(log.AuditLog, "_try_commit", lambda self, events, **kw: kw["drain"]
          and self._frontier.size > 0)
elif point == "ingest-staged":  # the version sealed and renamed in, its row not committed
    after(store_module.Store, "_retire_old")
elif point == "ingest-committed":  # the version current, its event committed, no sweep yet
    after(store_module.Store, "_remove_leftovers", lambda self, *, retired: retired)
elif point == "sweep-intent":  # the sweep's event committed, no file removed yet
    store_module.shutil.rmtree = lambda *a, **k: die()

if point.startswith(("ingest", "sweep")):
    with Store.open(root, key) as store:
        store.write_version(validate(small_cohort(), shipped_dictionary(), "small"))
else:
    with Platform.open(root, key) as platform:
        OPEN = True  # read by the patch
        institutions.create(platform.access, None, name="Crash College", country="GB",
                            jurisdiction="UK GDPR")
print("finished")
'''


def crash(root: Path, key: Path, point: str) -> None:
    """Run the child; it must die of SIGKILL at ``point`` (not finish, not fail)."""
    done = run_child(CHILD, [point, str(root), str(key)], drop=["STRONGROOM_MASTER_KEY"],
                     timeout=120)
    assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr[-2000:])
    assert "finished" not in done.stdout


@pytest.fixture
def root(store: Store, tmp_path: Path) -> Iterator[Path]:
    store.close()
    yield store.root


def key_of(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "master.key"


def entries_of(store: Store, type: str, subject: str | None = None) -> int:
    query = select(func.count()).select_from(ENTRIES).where(ENTRIES.c.type == type)
    if subject is not None:
        query = query.where(ENTRIES.c.subject == subject)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def verified(store: Store) -> bool:
    with open_audit(store) as audit:  # drains what the crash left, signs the tail
        public = audit.public_key
    with store.engine.connect() as conn:
        assert waiting(conn) == 0
    report = audit_verify(store.engine, public_key=public,
                          witness=store.root / strongroom.platform.WITNESS)
    return report.ok


@pytest.mark.parametrize("point,changed", [
    ("staged", False), ("committed", True), ("drained-uncommitted", True), ("drained", True),
])
def test_a_change_and_its_event_survive_a_crash_together(
        root: Path, tmp_path: Path, point: str, changed: bool) -> None:
    crash(root, key_of(tmp_path), point)
    with Store(root, None) as raw:
        with raw.engine.connect() as conn:
            made = conn.execute(select(Institution.id)
                                .where(Institution.name == "Crash College")).scalars().all()
        assert verified(raw)
        assert len(made) == int(changed)
        # the event exactly once if the change happened, else not at all
        assert entries_of(raw, "institution.created") == int(changed)
        if changed:
            assert entries_of(raw, "institution.created", made[0]) == 1
    with Platform.open(root, key_of(tmp_path)) as platform:  # and the store opens as usual
        assert platform.audit.size() == entries_of(platform.store, "institution.created")


def test_an_ingest_killed_before_its_commit_records_nothing_and_loses_nothing(
        root: Path, tmp_path: Path) -> None:
    crash(root, key_of(tmp_path), "ingest-staged")
    with Store(root, None) as raw:
        assert raw.current() is None and entries_of(raw, "cohort.ingested") == 0
        assert verified(raw)
        # the sealed files are there, and the intent naming them: the next open rolls the
        # ingest back, audited (tests/integration/test_crash_resolution.py has every step)
        sealed = [p for p in (root / COHORT_DIR).iterdir() if not p.name.startswith(".")]
        assert len(sealed) == 1
    with Store.open(root, key_of(tmp_path)) as store:
        assert store.current() is None and not sealed[0].exists()
        assert verified(store)
        assert entries_of(store, "cohort.ingest_rolled_back", sealed[0].name) == 1


def test_an_ingest_killed_after_its_commit_has_its_event(root: Path, tmp_path: Path) -> None:
    crash(root, key_of(tmp_path), "ingest-committed")
    with Store(root, None) as raw:
        current = raw.current()
        assert current is not None
        assert verified(raw)
        assert entries_of(raw, "cohort.ingested", current.id) == 1


def test_a_sweep_killed_after_its_intent_finishes_on_the_next_open(
        root: Path, tmp_path: Path) -> None:
    leftover = root / COHORT_DIR / f"{STAGING_PREFIX}interrupted"
    leftover.mkdir()
    crash(root, key_of(tmp_path), "sweep-intent")  # dies in the open's sweep
    assert leftover.is_dir()  # nothing removed without its event …
    with Store(root, None) as raw:
        assert verified(raw)
        assert entries_of(raw, "store.swept") == 1  # … and the event came first
    with Store.open(root, key_of(tmp_path)) as store:  # the next open finishes the removal
        assert not leftover.exists()
        assert verified(store)
        assert entries_of(store, "store.swept") == 2


def test_an_ingest_records_its_version_and_what_it_retired(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    with init_store(tmp_path / "data", key_file=key_of(tmp_path)) as store:
        cohort = validate(small_cohort(), store.dictionary, "small")
        ids = [store.write_version(cohort).id for _ in range(3)]
        with open_audit(store) as audit:
            events = [e for e in audit.entries() if e.type == "cohort.ingested"]
            swept = [e for e in audit.entries() if e.type == "store.swept"]
        with store.engine.connect() as conn:
            retired = conn.execute(select(CohortVersion.id)
                                   .where(CohortVersion.retired_at.is_not(None))).scalars().all()
    assert [e.subject for e in events] == ids
    assert events[-1].details["retired"] == [ids[0]] == retired
    assert events[-1].details["participants"] == 3
    assert swept[-1].details["retired"] == [ids[0]]
    assert "1000017" not in str([e.payload for e in events])  # counts and digests, no value


def test_a_rolled_back_change_leaves_no_event_but_its_refusal_stays(
        root: Path, tmp_path: Path) -> None:
    from strongroom.audit.events import EventType

    with Platform.open(root, key_of(tmp_path)) as platform:
        ctx = platform.access
        with pytest.raises(RuntimeError), ctx.transaction():
            ctx.record(EventType.PROJECT_CREATED, "operator", "prj_never", {})
            ctx.record(EventType.ACCESS_REFUSED, "operator", "prj_never", {"why": "test"})
            raise RuntimeError("the change fails after both were recorded")
        with ctx.transaction():
            ctx.record(EventType.PROJECT_UPDATED, "operator", "prj_kept", {})
        types = [(e.type, e.subject) for e in platform.audit.entries()]
    assert ("project.created", "prj_never") not in types
    assert ("access.refused", "prj_never") in types  # an attempt is kept whatever happens
    assert ("project.updated", "prj_kept") in types  # in the log once the block returns
