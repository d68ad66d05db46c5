"""Each way of tampering with the audit log, done with raw SQL, is caught and named.

Every test first checks that the untouched log verifies, then tampers, then expects
``ok is False``, the kind of tampering and the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from strongroom.audit import (
    AuditEvent,
    AuditLog,
    EventType,
    VerifyReport,
)
from strongroom.audit.verify import verify
from strongroom.db import create_all, make_engine
from tests.audit_keys import KEY, PUBLIC, SALT


class Setup:
    """A log of 35 entries with checkpoints at 10, 20, 30 and 35, witnessed."""

    def __init__(self, database_url: str | None, tmp_path: Path) -> None:
        self.sqlite = database_url is None
        self.db = tmp_path / "audit.db"
        self.url = database_url or f"sqlite:///{self.db}"
        self.witness = tmp_path / "audit" / "checkpoints.jsonl"
        self.engine = make_engine(self.url)
        create_all(self.engine)
        self.grow(35, witness=True)
        assert self.verify().ok, self.verify().summary()

    def log(self, *, witness: bool) -> AuditLog:
        return AuditLog(self.engine, signing_key=KEY, salt_key=SALT,
                        witness=self.witness if witness else None, checkpoint_every=1000,
                        checkpoint_seconds=3600)

    def grow(self, to: int, *, witness: bool, tag: str = "a") -> None:
        """Append up to ``to`` entries; sign at every multiple of 10 and at the end."""
        with self.log(witness=witness) as log:
            start = log.size()
            while start < to:
                stop = min(to, (start // 10 + 1) * 10)
                log.append_many(
                    AuditEvent(EventType.DATA_ACCESSED, f"per_{seq % 4}", f"prj_{tag}",
                               {"seq": seq, "branch": tag}, {"source": f"10.0.0.{seq}"})
                    for seq in range(start, stop))
                if stop % 10 == 0:
                    log.checkpoint()
                start = stop

    def sql(self, statement: str, **params: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def payload(self, seq: int) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(text("SELECT payload FROM audit_entries WHERE seq = :s"),
                                    {"s": seq}).scalar_one())

    def verify(self, **kw: object) -> VerifyReport:
        kw.setdefault("witness", self.witness)
        return verify(self.engine, public_key=PUBLIC, **kw)  # type: ignore[arg-type]


@pytest.fixture
def log(database_url: str | None, tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(database_url, tmp_path)
    yield setup
    setup.engine.dispose()


def failed(report: VerifyReport, kind: str, first_bad_seq: int | None) -> str:
    assert not report.ok, "tampering went unnoticed"
    assert (report.kind, report.first_bad_seq) == (kind, first_bad_seq), report.problem
    assert report.problem and report.summary().startswith(f"audit log FAILED ({kind})")
    return report.problem


def test_edited_payload(log: Setup) -> None:
    log.sql("UPDATE audit_entries SET payload = :p WHERE seq = 17",
            p=log.payload(17).replace('"branch":"a"', '"branch":"b"'))
    problem = failed(log.verify(), "edited", 17)
    assert "entry 17 was altered" in problem


def test_edited_payload_with_its_leaf_hash_rewritten(log: Setup) -> None:
    forged = log.payload(17).replace('"branch":"a"', '"branch":"b"')
    log.sql("UPDATE audit_entries SET payload = :p, leaf_hash = :h WHERE seq = 17", p=forged,
            h=hashlib.sha256(b"\x00" + forged.encode()).digest())
    problem = failed(log.verify(), "edited", 10)  # first seq of the checkpoint interval
    assert "entries 10..19" in problem


def test_edited_indexed_column(log: Setup) -> None:
    log.sql("UPDATE audit_entries SET actor = 'per_innocent' WHERE seq = 23")
    assert "columns no longer match" in failed(log.verify(), "edited", 23)


def test_edited_timestamp_column(log: Setup) -> None:
    with log.engine.connect() as conn:
        at = conn.execute(text("SELECT at FROM audit_entries WHERE seq = 5")).scalar_one()
    log.sql("UPDATE audit_entries SET at = :a WHERE seq = 5", a=at.replace(year=2020)
            if not isinstance(at, str) else at.replace("20", "19", 1))
    failed(log.verify(), "edited", 5)


def test_deleted_entry(log: Setup) -> None:
    log.sql("DELETE FROM audit_entries WHERE seq = 12")
    assert "entry 12 is missing" in failed(log.verify(), "deleted", 12)


def test_deleted_first_entry(log: Setup) -> None:
    log.sql("DELETE FROM audit_entries WHERE seq = 0")
    failed(log.verify(), "deleted", 0)


def test_reordered_entries(log: Setup) -> None:
    log.sql("UPDATE audit_entries SET seq = -1 WHERE seq = 14")
    log.sql("UPDATE audit_entries SET seq = 14 WHERE seq = 16")
    log.sql("UPDATE audit_entries SET seq = 16 WHERE seq = -1")
    assert "recorded as entry 16" in failed(log.verify(), "reordered", 14)


def test_truncated_log(log: Setup) -> None:
    log.sql("DELETE FROM audit_entries WHERE seq >= 33")
    problem = failed(log.verify(witness=None), "truncated", 33)
    assert "entries 33..34 were removed" in problem
    failed(log.verify(), "truncated", 33)  # with the witness too


def test_rolled_back_database(log: Setup, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    if log.sqlite:
        log.engine.dispose()  # the last connection folds the WAL into the file
        shutil.copy(log.db, backup)
    log.grow(52, witness=True)  # newer checkpoints at 40, 50, 52 reach the witness
    assert log.verify().ok
    if log.sqlite:  # restore the backup over the database
        log.engine.dispose()
        for extra in (Path(f"{log.db}-wal"), Path(f"{log.db}-shm")):
            extra.unlink(missing_ok=True)
        shutil.copy(backup, log.db)
    else:
        log.sql("DELETE FROM audit_entries WHERE seq >= 35")
        log.sql("DELETE FROM audit_checkpoints WHERE tree_size > 35")
    assert log.verify(witness=None).ok  # consistent on its own: only the witness can tell
    problem = failed(log.verify(), "rolled-back", 35)
    assert "restored to an earlier state" in problem
    anchor = json.loads(log.witness.read_text().splitlines()[-1])
    failed(log.verify(witness=None, anchors=[anchor]), "rolled-back", 35)


def test_forked_history(log: Setup) -> None:
    # rewrite everything after the checkpoint at 10, and sign the new branch with the real key
    log.sql("DELETE FROM audit_entries WHERE seq >= 10")
    log.sql("DELETE FROM audit_checkpoints WHERE tree_size > 10")
    log.grow(35, witness=False, tag="b")
    assert log.verify(witness=None).ok  # every entry and checkpoint in the database checks out
    problem = failed(log.verify(), "forked", 10)
    assert "entries 10..19" in problem


def test_bad_checkpoint_signature(log: Setup) -> None:
    with log.engine.connect() as conn:
        signature = bytes(conn.execute(text(
            "SELECT signature FROM audit_checkpoints WHERE tree_size = 20")).scalar_one())
    log.sql("UPDATE audit_checkpoints SET signature = :s WHERE tree_size = 20",
            s=bytes([signature[0] ^ 1]) + signature[1:])
    assert "does not verify" in failed(log.verify(), "bad-signature", 10)


def test_checkpoint_root_changed_without_the_key(log: Setup) -> None:
    log.sql("UPDATE audit_checkpoints SET root_hash = :r WHERE tree_size = 30", r=bytes(32))
    failed(log.verify(), "bad-signature", 20)


def test_altered_witness(log: Setup) -> None:
    lines = log.witness.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["root_hash"] = "00" * 32
    log.witness.write_text("\n".join([lines[0], json.dumps(forged), *lines[2:]]) + "\n")
    failed(log.verify(), "bad-signature", 10)
    log.witness.write_text("not json\n" + "\n".join(lines) + "\n")
    assert "not a readable checkpoint" in failed(log.verify(), "bad-signature", None)


def test_unsigned_tail_is_reported_not_hidden(log: Setup) -> None:
    log.sql("DELETE FROM audit_checkpoints WHERE tree_size = 35")
    report = log.verify(witness=None)
    assert report.ok and report.entries == 35 and report.signed_size == 30
    assert "the last 5 not yet signed" in report.summary()
