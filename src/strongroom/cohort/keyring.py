"""The keyring: the store key, sealed under the master key, in ``keyring.json``.

Key hierarchy::

    master key (a key file, the environment, or a PKCS#11 token; never in the store)
      └─ store key (random, 32 bytes; sealed in keyring.json)
           ├─ each sealed file's data key (in the file's header)
           ├─ each project's key (sealed on its row)
           └─ the audit log's signing and salt keys, the ledger's MAC key, … (HKDF)

Rotating the master key re-seals the store key and nothing else, so it takes milliseconds
whatever the cohort's size, and every derived key (so every audit signature and pseudonym)
stays as it was. The keyring file is replaced atomically: at any instant it holds the store key
sealed under exactly one master key.

A store made before keyrings has none: its master key *is* its store key. The first rotation
gives it a keyring whose store key is that old master key's bytes (so nothing needs
re-encrypting); the old key file then opens nothing by itself through Strongroom, but whoever
kept a copy of it holds the store key. docs/how-to/operate.md says so.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from strongroom.cohort.crypto import KEY_BYTES, MasterKey
from strongroom.cohort.keysources import KeySource, KeySourceError, KeySpec

KEYRING = "keyring.json"
FORMAT = "strongroom-keyring/1"


@dataclass(frozen=True)
class Keyring:
    store_id: str
    store_key_id: str  # the store key's public name (strongroom.yaml's key_id)
    master: KeySpec  # where the master key is
    master_key_id: str
    sealed: bytes  # the store key, sealed under the master key
    sealed_at: dt.datetime

    @staticmethod
    def _context(store_id: str, store_key_id: str, master: KeySpec, master_key_id: str,
                 sealed_at: dt.datetime) -> str:
        """What the sealed store key is bound to: every other field of the keyring, so that
        none can be changed without the seal failing."""
        return "strongroom/store-key/" + json.dumps(
            [store_id, store_key_id, master.to_dict(), master_key_id, sealed_at.isoformat()],
            sort_keys=True, separators=(",", ":"))

    @classmethod
    def seal(cls, store_id: str, store_key: MasterKey, master: KeySource) -> Keyring:
        """Seal ``store_key`` under ``master`` and check that it opens again."""
        at = dt.datetime.now(dt.UTC)
        sealed = master.wrap(store_key.secret, cls._context(
            store_id, store_key.key_id, master.spec, master.key_id, at))
        ring = cls(store_id, store_key.key_id, master.spec, master.key_id, sealed, at)
        if ring.open(master).secret != store_key.secret:  # pragma: no cover - a token fault
            raise KeySourceError(f"{master.spec.describe()} did not give back the store key "
                                 f"it sealed; nothing was changed")
        return ring

    def open(self, master: KeySource) -> MasterKey:
        """The store key; :class:`KeySourceError` if ``master`` is not the key that sealed it."""
        if master.key_id != self.master_key_id:
            raise KeySourceError(
                f"the master key given ({master.spec.describe()}, id {master.key_id}) is not "
                f"this store's key: its master key is id {self.master_key_id} "
                f"({self.master.describe()}); give that key")
        secret = master.unwrap(self.sealed, self._context(
            self.store_id, self.store_key_id, self.master, self.master_key_id, self.sealed_at))
        if len(secret) != KEY_BYTES:
            raise KeySourceError("the keyring holds no store key of the right length")
        key = MasterKey(secret)
        if key.key_id != self.store_key_id:
            raise KeySourceError(f"the keyring's store key has id {key.key_id}, not "
                                 f"{self.store_key_id}: the keyring was altered")
        return key

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "store_id": self.store_id, "store_key_id": self.store_key_id,
            "master": self.master.to_dict(), "master_key_id": self.master_key_id,
            "sealed": base64.b64encode(self.sealed).decode(),
            "sealed_at": self.sealed_at.isoformat()}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Keyring:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, not {FORMAT!r}")
            return cls(data["store_id"], data["store_key_id"],
                       KeySpec.from_dict(data["master"]), data["master_key_id"],
                       base64.b64decode(data["sealed"], validate=True),
                       dt.datetime.fromisoformat(data["sealed_at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise KeySourceError(f"{where} is not a Strongroom keyring ({exc}); restore it "
                                 f"from a backup: without it the store's data cannot be read") \
                from None


def load(root: Path) -> Keyring | None:
    """The store's keyring, or None for a store made before keyrings."""
    path = root / KEYRING
    if not path.exists():
        return None
    return Keyring.from_json(path.read_text(), str(path))


def save(root: Path, ring: Keyring) -> None:
    """Replace the keyring atomically (written, flushed, renamed, directory flushed)."""
    path = root / KEYRING
    tmp = path.with_name(f".{KEYRING}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
