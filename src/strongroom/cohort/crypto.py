"""Encryption at rest for cohort files: AES-256-GCM envelope encryption in segments.

Each file gets a fresh 256-bit data key, wrapped (AES-GCM) under the store's master key, which
lives outside the store (a key file or the environment). The payload is split into segments of
``SEGMENT`` bytes, each sealed with AES-GCM under a nonce made of a random per-file prefix, the
segment counter and a last-segment flag (the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár), so a reordered, truncated, extended or spliced file fails to decrypt. The
header (key id, wrapped key, context) is bound to every segment as associated data, and the
context names the table and cohort version, so a file cannot be swapped for another one either.

Only ``cryptography``'s AESGCM primitive is used; nothing cryptographic is hand-rolled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SRENC1\n"
SEGMENT = 16 * 1024 * 1024
KEY_BYTES = 32
KEY_FILE_FORMAT = "strongroom-master-key/1"
ENV_KEY = "STRONGROOM_MASTER_KEY"  # base64 master key, overrides the key file


class DecryptionError(Exception):
    """A file could not be decrypted: wrong key, or the bytes were altered."""


@dataclass(frozen=True)
class MasterKey:
    """The store's master key. Never logged, never written inside the store."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, not {len(self.secret)}")

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return f"MasterKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def key_id(self) -> str:
        """A public name for the key: lets the store say "wrong key" without holding it."""
        return hashlib.sha256(b"strongroom key id\0" + self.secret).hexdigest()[:16]

    def save(self, path: Path) -> None:
        """Write the key file readable by its owner only; refuse to overwrite a key."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = json.dumps({
            "format": KEY_FILE_FORMAT,
            "key_id": self.key_id,
            "key": base64.b64encode(self.secret).decode(),
        })
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(payload + "\n")

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        """Read a key file: refused if it is a directory, or if anyone but its owner may read
        or write it (a key others can read is a key others have)."""
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a master key file; give the key "
                             "file itself (nothing was read or changed)")
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ValueError(
                    f"master key file {path} can be read or written by others (mode "
                    f"{mode:04o}); nothing was opened: make it its owner's only with "
                    f"`chmod 600 {path}`, and consider the key exposed if others could read it")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != KEY_FILE_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, not {KEY_FILE_FORMAT!r}")
            return cls(base64.b64decode(data["key"], validate=True))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"master key file {path} does not exist; give the store's key with "
                f"--key-file or the {ENV_KEY} environment variable"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a Strongroom master key file: {exc}") from None

    @classmethod
    def from_env(cls) -> MasterKey | None:
        value = os.environ.get(ENV_KEY)
        if not value:
            return None
        try:
            return cls(base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise ValueError(f"{ENV_KEY} is not a base64 32-byte key: {exc}") from None


def encrypt(plaintext: bytes, key: MasterKey, context: str) -> bytes:
    """Seal ``plaintext`` for storage; ``context`` must be given again to open it."""
    data_key = AESGCM.generate_key(bit_length=256)
    wrap_nonce = secrets.token_bytes(12)
    prefix = secrets.token_bytes(7)
    header = json.dumps({
        "key_id": key.key_id,
        "context": context,
        "wrap_nonce": base64.b64encode(wrap_nonce).decode(),
        "wrapped_key": base64.b64encode(
            AESGCM(key.secret).encrypt(wrap_nonce, data_key, context.encode())
        ).decode(),
        "prefix": base64.b64encode(prefix).decode(),
        "segment": SEGMENT,
    }, sort_keys=True).encode()
    aad = hashlib.sha256(header).digest()
    sealer = AESGCM(data_key)
    parts = [MAGIC, struct.pack(">I", len(header)), header]
    count = max(1, -(-len(plaintext) // SEGMENT))
    for i in range(count):
        chunk = plaintext[i * SEGMENT:(i + 1) * SEGMENT]
        sealed = sealer.encrypt(_nonce(prefix, i, i == count - 1), chunk, aad)
        parts += [struct.pack(">I", len(sealed)), sealed]
    return b"".join(parts)


def decrypt(blob: bytes, key: MasterKey, context: str) -> bytes:
    """Open a sealed file; raise :class:`DecryptionError` on any mismatch or alteration."""
    if not blob.startswith(MAGIC):
        raise DecryptionError("not a Strongroom encrypted file (bad magic)")
    try:
        pos = len(MAGIC)
        (hlen,) = struct.unpack_from(">I", blob, pos)
        header_bytes = blob[pos + 4:pos + 4 + hlen]
        header = json.loads(header_bytes)
        pos += 4 + hlen
    except (struct.error, ValueError) as exc:
        raise DecryptionError(f"corrupt header: {exc}") from None
    if header["key_id"] != key.key_id:
        raise DecryptionError(
            f"file was sealed with key {header['key_id']}, not the key given ({key.key_id})"
        )
    if header["context"] != context:
        raise DecryptionError(f"file belongs to {header['context']!r}, not {context!r}")
    aad = hashlib.sha256(header_bytes).digest()
    prefix = base64.b64decode(header["prefix"])
    try:
        data_key = AESGCM(key.secret).decrypt(
            base64.b64decode(header["wrap_nonce"]),
            base64.b64decode(header["wrapped_key"]),
            context.encode(),
        )
        opener = AESGCM(data_key)
        out = []
        i = 0
        while pos < len(blob):
            (slen,) = struct.unpack_from(">I", blob, pos)
            sealed = blob[pos + 4:pos + 4 + slen]
            pos += 4 + slen
            last = pos >= len(blob)
            out.append(opener.decrypt(_nonce(prefix, i, last), sealed, aad))
            i += 1
        if i == 0:
            raise DecryptionError("file is truncated: no segments")
    except (InvalidTag, struct.error) as exc:
        raise DecryptionError(
            "file was altered, truncated or sealed under another key: authentication failed"
        ) from exc
    return b"".join(out)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
