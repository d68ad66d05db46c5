"""Operator commands say who runs them and why (issue 53, item 4): without `--operator` and
`--reason` each refuses, saying what to add, and changes nothing; with them, its audit event
names the operator and the reason; signed in at the console, the person is the actor."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyotp
import pytest

from strongroom.access.bootstrap import bootstrap
from strongroom.cohort.store import init_store
from strongroom.cohort.validate import validate
from strongroom.platform import Platform
from tests.cli_runner import cli
from tests.conftest import small_cohort

WHO = ["--operator", "Ada Operator", "--reason", "CHG-7"]


@pytest.fixture
def made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for name in ("STRONGROOM_MASTER_KEY", "STRONGROOM_KEY_FILE", "STRONGROOM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    with init_store(root, key_file=key) as store:
        store.write_version(validate(small_cohort(), store.dictionary, "small"))
    return root, key


def digest(root: Path) -> dict[str, str]:
    """Every file of the data directory but the lock, by content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"
            and not p.name.startswith("metadata.db")}


def test_each_operator_command_refuses_without_who_and_why(
        made: tuple[Path, Path], tmp_path: Path) -> None:
    root, key = made
    d = ["-d", str(root), "--key-file", str(key)]
    with Platform.open(root, key):
        pass  # the ingest's event into the signed log: what any open does
    before = digest(root)
    commands = {
        "upgrade": ["upgrade", *d],
        "backup": ["backup", str(tmp_path / "b.srbk"), *d],
        "keys rotate": ["keys", "rotate", "--to", f"file:{tmp_path / 'new.key'}", "--create",
                        *d],
        "store recover": ["store", "recover", *d],
        "audit verify --accept-loss": ["audit", "verify", "--accept-loss", *d],
        "cohort ingest": ["cohort", "ingest", str(tmp_path / "cohort"), *d],
        "genotypes ingest": ["genotypes", "ingest", str(tmp_path / "calls.bed"), *d],
    }
    for name, args in commands.items():
        for missing in ([], ["--operator", "Ada"], ["--reason", "why"]):
            code, out, err = cli(*args, *missing, cwd=tmp_path)
            said = " ".join((out + err).split())
            assert code == 1 and "Traceback" not in said, (name, said)
            assert "Nothing was changed" in said, (name, said)
            assert "--operator" in said or "sign in" in said, (name, said)
    assert digest(root) == before
    assert not (tmp_path / "b.srbk").exists() and not (tmp_path / "new.key").exists()
    code, _, err = cli("restore", str(tmp_path / "none.srbk"), str(tmp_path / "r"),
                         cwd=tmp_path)
    assert code == 1 and "--operator NAME --reason TEXT" in " ".join(err.split())
    assert not (tmp_path / "r").exists()


def test_the_events_name_the_operator_or_the_person_signed_in(
        made: tuple[Path, Path], tmp_path: Path) -> None:
    root, key = made
    d = ["-d", str(root), "--key-file", str(key)]
    assert cli("backup", str(tmp_path / "one.srbk"), *d, *WHO, cwd=tmp_path)[0] == 0
    code, _, err = cli("keys", "rotate", "--to", f"file:{tmp_path / 'new.key'}", "--create",
                         *d, *WHO, cwd=tmp_path)
    assert code == 0, err
    key = tmp_path / "new.key"
    d = ["-d", str(root), "--key-file", str(key)]
    with Platform.open(root, key) as platform:
        admin = bootstrap(platform.access, institution="Custodian", country="GB",
                          jurisdiction="UK GDPR", networks=["127.0.0.0/8"],
                          email="ada@custodian.test", name="Ada Admin",
                          password="correct horse battery staple")
    code, _, err = cli("login", "--as", "ada@custodian.test", "--password",
                         "correct horse battery staple", "--code",
                         pyotp.TOTP(admin.totp_secret).now(), *d, cwd=tmp_path)
    assert code == 0, err
    code, _, err = cli("backup", str(tmp_path / "two.srbk"), *d, "--reason", "CHG-8",
                         cwd=tmp_path)
    assert code == 0, err
    with Platform.open(root, key) as platform:
        entries = [e for e in platform.audit.entries()
                   if e.type in ("store.backed_up", "store.key.rotated")]
    named = [(e.type, e.actor, e.details["operator"], e.details["reason"]) for e in entries]
    person = admin.person.id
    assert named == [("store.backed_up", "operator", "Ada Operator", "CHG-7"),
                     ("store.key.rotated", "operator", "Ada Operator", "CHG-7"),
                     ("store.key.rotated", "operator", "Ada Operator", "CHG-7"),
                     ("store.backed_up", person, person, "CHG-8")]


def test_an_ingest_names_its_operator(made: tuple[Path, Path], tmp_path: Path) -> None:
    root, key = made
    d = ["-d", str(root), "--key-file", str(key)]
    assert cli("cohort", "synth", "--participants", "200", "--seed", "3", "--out",
               str(tmp_path / "cohort"), cwd=tmp_path)[0] == 0
    code, _, err = cli("cohort", "ingest", str(tmp_path / "cohort"), *d, *WHO, cwd=tmp_path)
    assert code == 0, err
    with Platform.open(root, key) as platform:
        (event,) = [e for e in platform.audit.entries() if e.type == "cohort.ingested"][-1:]
    assert (event.actor, event.details["operator"], event.details["reason"]) == (
        "operator", "Ada Operator", "CHG-7")
