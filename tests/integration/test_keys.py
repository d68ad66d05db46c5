"""The master key: it seals one store key, rotates without re-encrypting, and can live in a
PKCS#11 token (SoftHSM, the real library, a token of this module's own).

Guarantee: *the data of a store opens only through the master key its keyring names; rotating
it changes which key that is, atomically and audited, and changes no sealed byte and no key
derived from the store key.*"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom.audit.events import EventType
from strongroom.audit.verify import verify as audit_verify
from strongroom.cli import app
from strongroom.cohort import keyring, recovery
from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.keysources import (
    ENV_PIN,
    KeySourceError,
    KeySpec,
    Pkcs11KeySource,
    create_source,
    trusted_module,
)
from strongroom.cohort.store import COHORT_DIR, Store, StoreError, init_store, source_for
from strongroom.cohort.validate import validate
from strongroom.db import Base
from strongroom.platform import Platform
from tests.conftest import small_cohort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "previous-release"

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "31415926"


def sealed_bytes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / COHORT_DIR).rglob("*.enc"))}


WHO = ("--operator", "Test Operator", "--reason", "the key tests")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def made(tmp_path: Path, dictionary: Dictionary, database_url: str | None,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A store with a cohort and some audit history (on SQLite and PostgreSQL); its root and
    key file."""
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    monkeypatch.delenv("STRONGROOM_KEY_FILE", raising=False)
    key = tmp_path / "keys" / "master.key"
    with init_store(tmp_path / "data", key_file=key, database_url=database_url) as store:
        store.write_version(validate(small_cohort(), dictionary, "small"))
    with Platform.open(tmp_path / "data", key) as platform:
        for n in range(5):
            platform.access.record(EventType.AUDIT_VERIFIED, "operator", None, {"n": n})
    yield tmp_path / "data", key


def test_a_new_store_seals_a_random_store_key_under_its_master(made: tuple[Path, Path]) -> None:
    root, key = made
    ring = keyring.load(root)
    assert ring is not None
    master = MasterKey.load(key)
    assert ring.master_key_id == master.key_id != ring.store_key_id
    assert oct((root / keyring.KEYRING).stat().st_mode & 0o777) == "0o600"
    text = (root / keyring.KEYRING).read_text()
    assert master.secret.hex() not in text and master.secret not in text.encode()
    with Store.open(root, key) as store:
        assert store.key.key_id == ring.store_key_id == store.config.key_id
        assert store.key.secret != master.secret


def test_rotation_reseals_the_store_key_and_nothing_else(made: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    root, old = made
    before = sealed_bytes(root)
    with Store.open(root, old) as store:
        cohort = dict(store.load().tables())
    new = tmp_path / "keys" / "next.key"
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{new}", "--create", "-d", str(root),
                    "--key-file", str(old))
    assert code == 0, out
    assert sealed_bytes(root) == before  # no sealed byte re-encrypted
    with pytest.raises(StoreError, match="not this store's key"):
        Store.open(root, old)
    with Platform.open(root, new) as platform:
        assert {n: f.equals(cohort[n]) for n, f in platform.store.load().tables()} == \
            dict.fromkeys(cohort, True)
        report = audit_verify(platform.store.engine, public_key=platform.audit.public_key,
                              witness=platform.witness)
        assert report.ok, report.problem  # the signing key hangs from the store key
        rotations = [e.details for e in platform.audit.entries()
                     if e.type == EventType.STORE_KEY_ROTATED]
    assert [r["phase"] for r in rotations] == ["begun", "done"]
    assert rotations[1]["to"]["key_id"] == MasterKey.load(new).key_id
    assert rotations[1]["from"]["key_id"] == MasterKey.load(old).key_id
    # the configuration follows, so the store opens with no key named at all
    code, out = run("keys", "show", "-d", str(root))
    assert code == 0 and str(new) in out.replace("\n", ""), out


def test_a_rotation_to_the_key_in_use_or_an_unreadable_key_changes_nothing(
        made: tuple[Path, Path], tmp_path: Path) -> None:
    root, key = made
    ring = (root / keyring.KEYRING).read_bytes()
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{key}", "-d", str(root), "--key-file",
                    str(key))
    assert code == 1 and "the one in use" in out
    shared = tmp_path / "shared.key"
    MasterKey.generate().save(shared)
    shared.chmod(0o644)
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{shared}", "-d", str(root), "--key-file",
                    str(key))
    assert code == 1 and "chmod 600" in out
    assert (root / keyring.KEYRING).read_bytes() == ring


def test_a_tampered_keyring_opens_nothing(made: tuple[Path, Path]) -> None:
    root, key = made
    path = root / keyring.KEYRING
    data = json.loads(path.read_text())
    sealed = bytearray(__import__("base64").b64decode(data["sealed"]))
    sealed[-1] ^= 1
    data["sealed"] = __import__("base64").b64encode(bytes(sealed)).decode()
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="did not seal this store key"):
        Store.open(root, key)
    path.write_text("{not json")
    with pytest.raises(StoreError, match="restore it from a backup"):
        Store.open(root, key)


def test_a_keyring_replaced_by_someone_without_the_master_key_is_refused(
        made: tuple[Path, Path], tmp_path: Path) -> None:
    """An attacker who can write the data directory seals a store key of their own under a
    master key of their own and points the configuration at it: new data would be sealed
    under a key they hold. The store key must open what is sealed and derive the key that
    signed the log, so the store refuses before writing anything."""
    root, _ = made
    theirs = tmp_path / "theirs.key"
    MasterKey.generate().save(theirs)
    ring = keyring.Keyring.seal(keyring.load(root).store_id,  # type: ignore[union-attr]
                                MasterKey.generate(), source_for(theirs))
    keyring.save(root, ring)
    config = (root / "strongroom.yaml").read_text()
    old_id = yaml.safe_load(config)["key_id"]
    (root / "strongroom.yaml").write_text(config.replace(old_id, ring.store_key_id))
    with pytest.raises(StoreError, match="does not open the current cohort version"):
        Store.open(root)
    code, out = run("cohort", "info", "-d", str(root))
    assert code == 1 and "replaced" in out and "Traceback" not in out


def test_a_keyring_rolled_back_to_a_retired_master_key_is_refused(
        made: tuple[Path, Path], tmp_path: Path) -> None:
    root, old = made
    before = (root / keyring.KEYRING).read_bytes()
    new = tmp_path / "keys" / "next.key"
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{new}", "--create", "-d", str(root),
                    "--key-file", str(old))
    assert code == 0, out
    (root / keyring.KEYRING).write_bytes(before)  # the old keyring, from any old backup
    with pytest.raises(StoreError, match="rolled back to a retired master key"):
        Platform.open(root, old)
    code, out = run("keys", "show", "-d", str(root), "--key-file", str(old))
    assert code == 1 and "rolled back" in out.replace("\n", " ")


def test_a_master_key_never_goes_inside_the_data_directory(made: tuple[Path, Path]) -> None:
    root, key = made
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{root / 'inside.key'}", "--create",
                    "-d", str(root), "--key-file", str(key))
    assert code == 1 and "outside the data directory" in out.replace("\n", " ")
    assert not (root / "inside.key").exists()


def test_a_token_library_only_root_can_change_is_loaded(tmp_path: Path) -> None:
    """A keyring (or a backup's) names the token's library: code this process would run.
    One in a directory others can write is refused before it is loaded."""
    planted = tmp_path / "evil.so"
    planted.write_bytes(b"\x7fELF not really")
    tmp_path.chmod(0o777)
    with pytest.raises(KeySourceError, match="not trusted"):
        Pkcs11KeySource(KeySpec("pkcs11", module=str(planted), token="t", label="k"))
    with pytest.raises(KeySourceError, match="absolute"):
        trusted_module("libsofthsm2.so")


def test_a_store_made_before_keyrings_rotates_onto_one(tmp_path: Path) -> None:
    """The previous release's data directory (a fixture): its key file is its store key, so
    rotation seals those bytes and no data moves; the old key file alone opens it no more."""
    root = tmp_path / "previous"
    with tarfile.open(FIXTURES / "16a023a-sqlite.tar.gz") as archive:
        archive.extractall(root, filter="data")
    legacy = root / "master.key"
    legacy.chmod(0o600)
    with Store(root, MasterKey.load(legacy)) as raw:
        assert raw.keyring is None
        recovery.upgrade(raw, Base.metadata)
    before = sealed_bytes(root)
    new = tmp_path / "new.key"
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{new}", "--create", "-d", str(root),
                    "--key-file", str(legacy))
    assert code == 0, out
    assert "made before keyrings" in out
    assert sealed_bytes(root) == before
    with pytest.raises(StoreError, match="not this store's key"):
        Store.open(root, legacy)
    with Platform.open(root, new) as platform:
        assert platform.store.load().participants.height == 300
        assert audit_verify(platform.store.engine, public_key=platform.audit.public_key,
                            witness=platform.witness).ok


# -- a PKCS#11 token --------------------------------------------------------------------


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SoftHSM token; returns the key source URI of a key named 'master' in it."""
    if not SOFTHSM.exists():
        pytest.fail("SoftHSM is not installed: apt-get install softhsm2 (.ci/run does)")
    where = tmp_path_factory.mktemp("softhsm")
    (where / "tokens").mkdir()
    conf = where / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {where / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read when the library is first loaded
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "strongroom",
                    "--pin", PIN, "--so-pin", "27182818"], check=True, capture_output=True)
    yield f"pkcs11:token=strongroom;object=master?module-path={SOFTHSM}"
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def test_a_store_whose_master_key_is_in_a_token(token: str, tmp_path: Path,
                                                dictionary: Dictionary,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    monkeypatch.setenv(ENV_PIN, PIN)
    spec = KeySpec.parse(token)
    source = create_source(spec)
    assert isinstance(source, Pkcs11KeySource)
    code, out = run("init", str(tmp_path / "data"), "--key-source", token)
    assert code == 0, out
    assert not list(tmp_path.glob("**/*.key"))  # no key file anywhere
    with Store.open(tmp_path / "data") as store:  # the keyring says where the key is
        store.write_version(validate(small_cohort(), dictionary, "small"))
        assert store.keyring is not None and store.keyring.master.kind == "pkcs11"
    # the key cannot be read out of the token
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    with pkcs11.lib(str(SOFTHSM)).get_token(token_label="strongroom").open(
            user_pin=PIN) as session:
        key = session.get_key(label="master", key_type=KeyType.AES,
                              object_class=ObjectClass.SECRET_KEY)
        assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True
    monkeypatch.setenv(ENV_PIN, "00000000")
    with pytest.raises(StoreError, match=r"PIN .* is wrong"):
        Store.open(tmp_path / "data")
    monkeypatch.delenv(ENV_PIN)
    code, out = run("cohort", "info", "-d", str(tmp_path / "data"))
    assert code == 1 and ENV_PIN in out and "Traceback" not in out
    # out of the token and back: file, then a second key in the token
    monkeypatch.setenv(ENV_PIN, PIN)
    code, out = run("keys", "rotate", *WHO, "--to", f"file:{tmp_path / 'out.key'}", "--create",
                    "-d", str(tmp_path / "data"))
    assert code == 0, out
    second = token.replace("object=master", "object=second")
    code, out = run("keys", "rotate", *WHO, "--to", second, "--create", "-d",
                    str(tmp_path / "data"),
                    "--key-file", str(tmp_path / "out.key"))
    assert code == 0, out
    with Store.open(tmp_path / "data") as store:
        assert store.keyring is not None and store.keyring.master.label == "second"
        assert store.load().participants.height == 3
    with pytest.raises(StoreError, match="not this store's key"):
        Store.open(tmp_path / "data", tmp_path / "out.key")


def test_a_token_key_source_says_what_is_missing(token: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PIN, PIN)
    with pytest.raises(Exception, match="lacks module-path"):
        KeySpec.parse("pkcs11:token=strongroom;object=master")
    with pytest.raises(Exception, match="no PKCS#11 token labelled 'elsewhere'"):
        Pkcs11KeySource(KeySpec.parse(token.replace("token=strongroom", "token=elsewhere")))
    missing = Pkcs11KeySource(KeySpec.parse(token.replace("object=master", "object=absent")))
    with pytest.raises(Exception, match="holds no AES key labelled 'absent'"):
        missing.wrap(b"x" * 32, "context")
