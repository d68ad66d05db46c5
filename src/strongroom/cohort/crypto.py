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
import bisect
import hashlib
import io
import json
import os
import secrets
import stat
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def encrypt(plaintext: bytes | memoryview, key: MasterKey, context: str) -> bytes:
    """Seal ``plaintext`` for storage; ``context`` must be given again to open it (a
    memoryview is sealed a segment at a time without a copy of it)."""
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
        pos += 4 + hlen
    except struct.error as exc:
        raise DecryptionError(f"corrupt header: {exc}") from None
    opener, prefix, aad = _open_header(header_bytes, key, context)
    try:
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
        raise DecryptionError(AUTHENTICATION) from exc
    return b"".join(out)


AUTHENTICATION = "file was altered, truncated or sealed under another key: authentication failed"


def _open_header(header_bytes: bytes, key: MasterKey,
                 context: str) -> tuple[AESGCM, bytes, bytes]:
    """A sealed file's header checked against ``key`` and ``context``: the segments' opener,
    their nonces' prefix and their associated data."""
    try:
        header = json.loads(header_bytes)
    except ValueError as exc:
        raise DecryptionError(f"corrupt header: {exc}") from None
    if header["key_id"] != key.key_id:
        raise DecryptionError(
            f"file was sealed with key {header['key_id']}, not the key given ({key.key_id})"
        )
    if header["context"] != context:
        raise DecryptionError(f"file belongs to {header['context']!r}, not {context!r}")
    try:
        data_key = AESGCM(key.secret).decrypt(
            base64.b64decode(header["wrap_nonce"]),
            base64.b64decode(header["wrapped_key"]),
            context.encode(),
        )
    except InvalidTag as exc:
        raise DecryptionError(AUTHENTICATION) from exc
    return AESGCM(data_key), base64.b64decode(header["prefix"]), \
        hashlib.sha256(header_bytes).digest()


class SealedFile(io.RawIOBase):
    """A sealed file read as its plaintext, seekable, a segment at a time: each segment is
    read from disk and decrypted (authenticated) when a read first reaches it, and at most
    ``cached`` decrypted segments are held, so a reader that wants a range at a time (a
    Parquet file's footer, then its row groups) never holds the whole file, sealed or open.
    The last segment is opened at once (a truncated file is refused here, as by
    :func:`decrypt`); every byte read has been authenticated. :class:`DecryptionError` as
    :func:`decrypt` raises it."""

    def __init__(self, path: Path, key: MasterKey, context: str, cached: int = 2):
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        try:
            self._index(key, context)
        except BaseException:
            self._file.close()
            raise
        self._cached: OrderedDict[int, bytes] = OrderedDict()
        self._room = max(1, cached)
        self._pos = 0
        self._segment(len(self._sealed) - 1)

    def _index(self, key: MasterKey, context: str) -> None:
        """The header checked, and each segment's place in the file and in the plaintext
        (their lengths only are read here)."""
        size = os.fstat(self._file.fileno()).st_size
        start = self._file.read(len(MAGIC) + 4)
        if not start.startswith(MAGIC):
            raise DecryptionError("not a Strongroom encrypted file (bad magic)")
        if len(start) < len(MAGIC) + 4:
            raise DecryptionError("corrupt header: the file ends inside it")
        (hlen,) = struct.unpack_from(">I", start, len(MAGIC))
        header_bytes = self._file.read(hlen)
        self._opener, self._prefix, self._aad = _open_header(header_bytes, key, context)
        pos = len(MAGIC) + 4 + hlen
        self._sealed: list[tuple[int, int]] = []  # (offset in the file, sealed length)
        self._starts: list[int] = []  # each segment's first byte in the plaintext
        plain = 0
        while pos < size:
            self._file.seek(pos)
            length = self._file.read(4)
            if len(length) < 4:
                raise DecryptionError(AUTHENTICATION)
            (slen,) = struct.unpack(">I", length)
            if slen < 16 or pos + 4 + slen > size:
                raise DecryptionError(AUTHENTICATION)
            self._sealed.append((pos + 4, slen))
            self._starts.append(plain)
            plain += slen - 16  # each segment's GCM tag
            pos += 4 + slen
        if not self._sealed:
            raise DecryptionError("file is truncated: no segments")
        self._size = plain

    def _segment(self, i: int) -> bytes:
        found = self._cached.get(i)
        if found is not None:
            self._cached.move_to_end(i)
            return found
        offset, slen = self._sealed[i]
        self._file.seek(offset)
        sealed = self._file.read(slen)
        try:
            found = self._opener.decrypt(_nonce(self._prefix, i, i == len(self._sealed) - 1),
                                         sealed, self._aad)
        except InvalidTag as exc:
            raise DecryptionError(AUTHENTICATION) from exc
        self._cached[i] = found
        while len(self._cached) > self._room:
            self._cached.popitem(last=False)
        return found

    @property
    def size(self) -> int:
        """The plaintext's length."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            segment = self._segment(i)
            at = self._pos - self._starts[i]
            n = min(len(view) - done, len(segment) - at)
            view[done:done + n] = segment[at:at + n]
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._cached.clear()
        super().close()


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
