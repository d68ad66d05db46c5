"""The audit log on SQLite and PostgreSQL: durable, ordered, concurrent appends; proofs."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select, text

from strongroom.audit import (
    AuditError,
    AuditEvent,
    AuditLog,
    Checkpoint,
    EventType,
    merkle,
    verify_consistency,
    verify_inclusion,
)
from strongroom.audit.checkpoints import read_witness
from strongroom.audit.tables import CHECKPOINTS, ENTRIES
from strongroom.audit.verify import verify
from strongroom.db import create_all, make_engine
from tests.audit_keys import KEY, PUBLIC, SALT


def url_for(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(url_for(database_url, tmp_path))
    create_all(made)
    yield made
    made.dispose()


def open_log(engine: Engine, tmp_path: Path, **kw: object) -> AuditLog:
    kw.setdefault("witness", tmp_path / "audit" / "checkpoints.jsonl")
    return AuditLog(engine, signing_key=KEY, salt_key=SALT, **kw)  # type: ignore[arg-type]


def event(i: int, **kw: object) -> AuditEvent:
    fields: dict[str, object] = {"type": EventType.DATA_ACCESSED, "actor": f"per_{i % 7}",
                                 "subject": f"prj_{i % 3}", "details": {"i": i}}
    fields.update(kw)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_append_then_verify(engine: Engine, tmp_path: Path) -> None:
    with open_log(engine, tmp_path) as log:
        when = dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        first = log.append(event(0, at=when))
        rest = log.append_many(event(i) for i in range(1, 25))
        assert [first.seq, *(r.seq for r in rest)] == list(range(25))
        entries = list(log.entries())
        assert [e.seq for e in entries] == list(range(25))
        assert [e.leaf_hash for e in entries] == [first.leaf_hash, *(r.leaf_hash for r in rest)]
        assert entries[0].at == when and entries[0].type == "data.accessed"
        assert entries[3].details == {"i": 3} and entries[3].actor == "per_3"
        assert all(e.at.tzinfo is not None for e in entries)
        assert [e.seq for e in log.entries(5, 8)] == [5, 6, 7]
        assert log.size() == 25
        for e in entries:
            assert merkle.leaf_hash(e.payload.encode()) == e.leaf_hash
            assert json.loads(e.payload)["seq"] == e.seq
    report = verify(engine, public_key=PUBLIC, witness=tmp_path / "audit" / "checkpoints.jsonl")
    assert report.ok, report.summary()
    assert report.entries == 25 and report.signed_size == 25  # close() signed the tail
    assert report.checkpoints == 2  # the database's and the witness's
    assert report.first_bad_seq is None and report.kind is None and report.problem is None


def test_checkpoints_every_n_events_and_every_t_seconds(engine: Engine, tmp_path: Path) -> None:
    witness = tmp_path / "audit" / "checkpoints.jsonl"
    with open_log(engine, tmp_path, checkpoint_every=10, checkpoint_seconds=3600) as log:
        for i in range(25):
            log.append(event(i))
        assert [c.tree_size for c in log.checkpoints()] == [10, 20]
        latest = log.latest_checkpoint()
        assert latest is not None and latest.tree_size == 20 and latest.verify(PUBLIC)
    assert [c.tree_size for c in log.checkpoints()] == [10, 20, 25]  # close signed the tail
    assert [d["tree_size"] for d in read_witness(witness)] == [10, 20, 25]
    with open_log(engine, tmp_path, checkpoint_every=1000, checkpoint_seconds=0) as log:
        log.append(event(25))
        log.append(event(26))
        assert [c.tree_size for c in log.checkpoints()][-2:] == [26, 27]


def test_forced_checkpoints_and_export(engine: Engine, tmp_path: Path) -> None:
    with open_log(engine, tmp_path, checkpoint_every=1000) as log:
        empty = log.checkpoint()
        assert empty.tree_size == 0 and empty.root_hash == merkle.EMPTY_ROOT
        log.append_many(event(i) for i in range(5))
        cp = log.checkpoint()
        assert cp.tree_size == 5 and cp.verify(PUBLIC)
        assert log.checkpoint() == cp  # nothing new: the same checkpoint
        exported = log.export_checkpoint()
        assert json.loads(json.dumps(exported)) == exported
        assert Checkpoint.from_export(exported) == cp
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(exported["public_key"]))
        public.verify(bytes.fromhex(exported["signature"]), exported["signed_text"].encode())
        assert merkle.root([e.leaf_hash for e in log.entries()]).hex() == exported["root_hash"]
    assert verify(engine, public_key=PUBLIC, anchors=[exported]).ok


def test_sensitive_values_are_never_stored_in_the_clear(
    engine: Engine, tmp_path: Path, database_url: str | None
) -> None:
    secrets = {"source": "198.51.100.231", "email": "ada.lovelace.1815@example.org",
               "user_agent": "Mozilla/5.0 (StrongroomTest; rv:99.0) Distinctive/7.7"}
    with open_log(engine, tmp_path) as log:
        log.append(AuditEvent(EventType.AUTH_LOGIN_FAILED, None, "per_9", {"reason": "password"},
                              secrets))
        log.append_many(event(i) for i in range(3))
        stored = next(iter(log.entries())).sensitive
        assert stored == {k: log.hash_sensitive(k, v) for k, v in secrets.items()}
    haystack = []
    with engine.connect() as conn:
        for table in (ENTRIES, CHECKPOINTS):
            for row in conn.execute(select(table)):
                haystack.append(repr(tuple(row)))
    haystack.append((tmp_path / "audit" / "checkpoints.jsonl").read_text())
    if database_url is None:
        engine.dispose()
        for path in tmp_path.glob("audit.db*"):
            haystack.append(path.read_bytes().decode("latin-1"))
    blob = "\n".join(haystack)
    assert log.hash_sensitive("email", secrets["email"]) in blob  # the search can find things
    for value in secrets.values():
        assert value not in blob
        assert value.encode().hex() not in blob


def test_eight_threads_append_contiguously(engine: Engine, tmp_path: Path) -> None:
    seqs: list[int] = []
    lock = threading.Lock()
    with open_log(engine, tmp_path, checkpoint_every=500) as log:

        def work(k: int) -> None:
            mine = [log.append(event(k * 1000 + i, actor=f"per_t{k}")).seq for i in range(500)]
            with lock:
                seqs.extend(mine)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(seqs) == list(range(4000))
    with engine.connect() as conn:
        rows = conn.execute(select(ENTRIES.c.seq, ENTRIES.c.actor, ENTRIES.c.payload)
                            .order_by(ENTRIES.c.seq)).all()
    assert [r.seq for r in rows] == list(range(4000))
    by_thread: dict[str, list[int]] = {}
    for r in rows:  # each thread's events are in the log in the order it appended them
        by_thread.setdefault(r.actor, []).append(json.loads(r.payload)["details"]["i"])
    assert all(v == sorted(v) and len(v) == 500 for v in by_thread.values())
    report = verify(engine, public_key=PUBLIC, witness=tmp_path / "audit" / "checkpoints.jsonl")
    assert report.ok and report.entries == 4000, report.summary()


def test_an_append_is_durable_when_it_returns(
    engine: Engine, tmp_path: Path, database_url: str | None
) -> None:
    with open_log(engine, tmp_path) as log:
        receipt = log.append(event(0, subject="prj_durable"))
        other = make_engine(url_for(database_url, tmp_path))
        try:
            with other.connect() as conn:
                row = conn.execute(select(ENTRIES).where(ENTRIES.c.seq == receipt.seq)).one()
        finally:
            other.dispose()
        assert row.subject == "prj_durable" and bytes(row.leaf_hash) == receipt.leaf_hash


def test_proofs_from_a_real_log_verify_against_its_checkpoints(
    engine: Engine, tmp_path: Path
) -> None:
    with open_log(engine, tmp_path, checkpoint_every=1000) as log:
        checkpoints = []
        for size in (1, 6, 13, 32, 45):
            log.append_many(event(i) for i in range(log.size(), size))
            checkpoints.append(log.checkpoint())
        entries = list(log.entries())
        for cp in checkpoints:
            for seq in range(cp.tree_size):
                proof = log.inclusion_proof(seq, cp.tree_size)
                assert verify_inclusion(entries[seq].leaf_hash, seq, cp.tree_size, proof,
                                        cp.root_hash)
            assert not verify_inclusion(entries[0].leaf_hash, 0, cp.tree_size,
                                        log.inclusion_proof(0, cp.tree_size), bytes(32))
        for old in checkpoints:
            for new in checkpoints:
                if old.tree_size <= new.tree_size:
                    proof = log.consistency_proof(old.tree_size, new.tree_size)
                    assert verify_consistency(old.tree_size, new.tree_size, old.root_hash,
                                              new.root_hash, proof)
        with pytest.raises(AuditError, match="holds 45 entries, not 46"):
            log.inclusion_proof(0, 46)


def test_a_reopened_log_carries_on_the_same_tree(engine: Engine, tmp_path: Path) -> None:
    with open_log(engine, tmp_path, checkpoint_every=10) as log:
        log.append_many(event(i) for i in range(15))
    # an unsigned tail left by a process that stopped without closing
    crashed = open_log(engine, tmp_path, checkpoint_every=1000, checkpoint_seconds=3600)
    crashed.append_many(event(i) for i in range(15, 18))
    with open_log(engine, tmp_path, checkpoint_every=1000) as log:
        assert log.append(event(18)).seq == 18
        cp = log.checkpoint()
    crashed.close()
    assert cp.tree_size == 19
    assert cp.root_hash == merkle.root([e.leaf_hash for e in log.entries()])
    report = verify(engine, public_key=PUBLIC, witness=tmp_path / "audit" / "checkpoints.jsonl")
    assert report.ok, report.summary()


def test_two_writers_on_one_database_interleave(engine: Engine, tmp_path: Path) -> None:
    """A CLI command appending next to the server: sequence clashes are resolved."""
    with open_log(engine, tmp_path) as a, open_log(engine, tmp_path) as b:
        got = []
        for i in range(6):
            got.append((a if i % 2 else b).append(event(i)).seq)
        got += [r.seq for r in a.append_many(event(i) for i in range(6, 9))]
    assert got == list(range(9))
    report = verify(engine, public_key=PUBLIC, witness=tmp_path / "audit" / "checkpoints.jsonl")
    assert report.ok and report.entries == 9, report.summary()


def test_bad_events_fail_in_the_caller_and_a_closed_log_refuses(
    engine: Engine, tmp_path: Path
) -> None:
    log = open_log(engine, tmp_path)
    with pytest.raises(TypeError):
        log.append(event(0, details={"x": {1, 2}}))
    with pytest.raises(ValueError, match="timezone-aware"):
        log.append(event(0, at=dt.datetime(2026, 1, 1)))
    assert log.size() == 0
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append(event(1))
    log.close()  # closing twice is harmless


def test_writer_errors_reach_the_caller(engine: Engine, tmp_path: Path) -> None:
    with open_log(engine, tmp_path) as log:
        log.append(event(0))
        with engine.begin() as conn:  # sabotage: the table goes away under the writer
            conn.execute(text("DROP TABLE audit_entries"))
        with pytest.raises(Exception, match="audit_entries"):
            log.append(event(1))
        create_all(engine)
        assert log.append(event(2)).seq == 1  # the failed batch did not advance the tree


def test_a_restart_reads_only_the_tail_unless_the_checkpoint_is_bad(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_log(engine, tmp_path, checkpoint_every=8) as log:
        log.append_many(event(i) for i in range(20))
    with caplog.at_level("WARNING", logger="strongroom.audit.log"):
        open_log(engine, tmp_path).close()
    assert not caplog.records  # the stored frontier folded to the signed root
    with engine.begin() as conn:  # a frontier that does not fold to its root is not trusted
        conn.execute(text("UPDATE audit_checkpoints SET frontier = :f WHERE tree_size = 20"),
                     {"f": bytes(64)})
    with caplog.at_level("WARNING", logger="strongroom.audit.log"), \
            open_log(engine, tmp_path) as log:
        assert log.append(event(20)).seq == 20
    assert "rebuilding the tree" in caplog.text
    report = verify(engine, public_key=PUBLIC, witness=tmp_path / "audit" / "checkpoints.jsonl")
    assert report.ok and report.signed_size == 21, report.summary()


def test_unusual_text_round_trips_and_verifies(engine: Engine, tmp_path: Path) -> None:
    odd = AuditEvent(EventType.PERSON_UPDATED, 'per_"quoted"\\', "prj_é 漢字 \U0001f600",
                     {"note": "line\nbreak\ttab \u2028", "ü": [None, True, 1.5]})
    with open_log(engine, tmp_path) as log:
        log.append(event(0, actor=None, subject=None))
        log.append(odd)
        stored = list(log.entries())
    assert stored[1].actor == odd.actor and stored[1].subject == odd.subject
    assert stored[1].details == odd.details and stored[0].actor is None
    assert stored[1].payload.isascii()
    report = verify(engine, public_key=PUBLIC)
    assert report.ok, report.summary()


def test_a_failing_witness_does_not_fail_committed_events(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "witness-is-a-directory"
    blocked.mkdir()
    with caplog.at_level("ERROR", logger="strongroom.audit.log"), \
            open_log(engine, tmp_path, witness=blocked, checkpoint_every=2) as log:
        receipts = log.append_many(event(i) for i in range(3))
    assert [r.seq for r in receipts] == [0, 1, 2]
    assert "could not write audit checkpoint 3 to the witness file" in caplog.text
    assert verify(engine, public_key=PUBLIC).ok
