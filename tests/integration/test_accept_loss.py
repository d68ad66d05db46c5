"""After a recovery onto an empty database the audit log tells the truth: its witness signed a
history the database no longer holds. `audit verify` says so (rolled back, then forked once
the new log grows past the witness's sizes), and keeps failing until an operator acknowledges
the loss with who and why (`--accept-loss`); then it passes and reports the acknowledgement.
An acknowledgement never covers tampering: an edited log is refused (issue 53, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from strongroom.access import institutions
from strongroom.cohort.store import init_store
from strongroom.cohort.validate import validate
from strongroom.platform import Platform
from tests.cli_runner import cli
from tests.conftest import small_cohort

WHO = ["--operator", "Ada Operator", "--reason", "INC-77 metadata.db lost, rebuilt"]


@pytest.fixture
def rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A store with a signed history in its witness whose database was lost and recovered."""
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    monkeypatch.delenv("STRONGROOM_KEY_FILE", raising=False)
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    with init_store(root, key_file=key) as store:
        store.write_version(validate(small_cohort(), store.dictionary, "small"))
    with Platform.open(root, key) as platform:
        for n in range(12):
            institutions.create(platform.access, None, name=f"College {n}", country="GB",
                                jurisdiction="UK GDPR")
        platform.audit.checkpoint()  # the witness file holds the history's signed root
    for path in root.glob("metadata.db*"):
        path.unlink()
    code, out, err = cli("store", "recover", "-d", str(root), "--key-file", str(key), *WHO,
                         cwd=tmp_path)
    assert code == 0, out + err
    return root, key


def verify(root: Path, key: Path, *more: str) -> tuple[int, str]:
    code, out, err = cli("audit", "verify", "-d", str(root), "--key-file", str(key), *more,
                         cwd=root.parent)
    return code, " ".join((out + err).split())


def test_a_lost_history_fails_until_an_operator_accepts_it_and_then_passes(
        rebuilt: tuple[Path, Path]) -> None:
    root, key = rebuilt
    code, said = verify(root, key)
    assert code == 1 and "FAILED (rolled-back)" in said and "--accept-loss" in said, said
    with Platform.open(root, key) as platform:  # the new log grows past the witness's size
        for n in range(20):
            institutions.create(platform.access, None, name=f"Again {n}", country="GB",
                                jurisdiction="UK GDPR")
        platform.audit.checkpoint()
    code, said = verify(root, key)
    assert code == 1 and "FAILED (forked)" in said and "rebuilt" in said, said
    assert "--accept-loss" in said
    code, said = verify(root, key, "--accept-loss")  # who and why are required
    assert code == 1 and "--operator NAME --reason TEXT" in said and "Nothing was" in said
    code, said = verify(root, key, "--accept-loss", *WHO)
    assert code == 0, said
    assert "acknowledged by Ada Operator (INC-77 metadata.db lost, rebuilt)" in said
    code, said = verify(root, key)  # from now on, as long as the log is intact
    assert code == 0 and "audit log OK" in said and "lost history acknowledged" in said
    with Platform.open(root, key) as platform:
        accepted = [e for e in platform.audit.entries() if e.type == "audit.loss_accepted"]
    assert len(accepted) == 1 and accepted[0].details["operator"] == "Ada Operator"
    assert accepted[0].details["checkpoints"]
    code, said = verify(root, key, "--accept-loss", *WHO)  # nothing more to accept
    assert code == 1 and "no loss to accept" in said


def test_tampering_is_never_accepted_as_a_loss(rebuilt: tuple[Path, Path]) -> None:
    root, key = rebuilt
    with Platform.open(root, key) as platform:
        platform.audit.checkpoint()
        with platform.store.engine.begin() as con:
            con.execute(text("UPDATE audit_entries SET payload = replace(payload, "
                             "'registered', 'REGISTERED') WHERE seq = 0"))
    code, said = verify(root, key, "--accept-loss", *WHO)
    assert code == 1 and "not a lost history an operator can accept" in said, said
    assert "FAILED (edited)" in said
    with Platform.open(root, key) as platform:
        assert not [e for e in platform.audit.entries() if e.type == "audit.loss_accepted"]
