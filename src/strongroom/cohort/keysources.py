"""Where the master key lives: a key file, the environment, or a PKCS#11 token (an HSM).

The master key encrypts one thing: the store key, in the keyring (``cohort/keyring.py``).
Everything else (every sealed file's data key, the projects' keys, the audit log's signing
key) hangs from the store key, so the master key can be rotated, or moved into an HSM, without
re-encrypting data. A source only wraps and unwraps: a token's key never leaves the token.

A source is named by a short text, kept in the keyring so that the store knows where its key
is (never the key itself, nor a PIN):

- ``file:/etc/strongroom/master.key`` — a key file (its owner's only, 0600);
- ``env`` — base64 in ``STRONGROOM_MASTER_KEY``;
- ``pkcs11:token=strongroom;object=master?module-path=/usr/lib/softhsm/libsofthsm2.so`` — an
  AES-256 key in a PKCS#11 token (RFC 7512's URI form); the user PIN is read from
  ``STRONGROOM_PKCS11_PIN``, or from a file named by ``pin-source=file:…`` (its owner's only).
"""

from __future__ import annotations

import abc
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.cohort.crypto import ENV_KEY, MasterKey

ENV_PIN = "STRONGROOM_PKCS11_PIN"
NONCE = 12


class KeySourceError(Exception):
    """The master key cannot be reached or does not open what it should; says what to do."""


@dataclass(frozen=True)
class KeySpec:
    """Where a master key is: no secret, safe to store and to print."""

    kind: str  # "file", "env" or "pkcs11"
    path: str | None = None  # file: the key file
    module: str | None = None  # pkcs11: the token's library
    token: str | None = None  # pkcs11: the token's label
    label: str | None = None  # pkcs11: the key object's label
    pin_file: str | None = None  # pkcs11: a file holding the user PIN (else ENV_PIN)

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """``file:PATH``, a bare path, ``env`` or a ``pkcs11:`` URI."""
        if text == "env":
            return cls("env")
        if text.startswith("pkcs11:"):
            return cls._pkcs11(text)
        path = text.removeprefix("file:")
        if not path:
            raise KeySourceError("a key source is file:PATH, env, or a pkcs11: URI")
        return cls("file", path=str(Path(path).expanduser().resolve()))

    @classmethod
    def _pkcs11(cls, uri: str) -> KeySpec:
        body, _, query = uri.removeprefix("pkcs11:").partition("?")
        path = dict(p.split("=", 1) for p in body.split(";") if "=" in p)
        extra = dict(parse_qsl(query))
        spec = cls("pkcs11", module=extra.get("module-path"),
                   token=unquote(path.get("token", "")) or None,
                   label=unquote(path.get("object", "")) or None,
                   pin_file=(extra["pin-source"].removeprefix("file:")
                             if "pin-source" in extra else None))
        missing = [name for name, value in (("token", spec.token), ("object", spec.label),
                                            ("module-path", spec.module)) if not value]
        if missing:
            raise KeySourceError(
                f"the pkcs11 URI {uri!r} lacks {', '.join(missing)}: give it as "
                f"pkcs11:token=LABEL;object=KEY?module-path=/path/to/module.so")
        return spec

    def __str__(self) -> str:
        if self.kind == "pkcs11":
            query = f"module-path={self.module}"
            if self.pin_file:
                query += f"&pin-source=file:{self.pin_file}"
            return (f"pkcs11:token={quote(self.token or '')};object={quote(self.label or '')}"
                    f"?{query}")
        return "env" if self.kind == "env" else f"file:{self.path}"

    def describe(self) -> str:
        match self.kind:
            case "env":
                return f"the {ENV_KEY} environment variable"
            case "pkcs11":
                return f"key {self.label!r} in PKCS#11 token {self.token!r} ({self.module})"
            case _:
                return f"key file {self.path}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeySpec:
        return cls(**{k: data[k] for k in ("kind", "path", "module", "token", "label",
                                           "pin_file") if k in data})


class KeySource(abc.ABC):
    """A master key that can seal and open a short secret (the store key)."""

    spec: KeySpec

    @property
    @abc.abstractmethod
    def key_id(self) -> str:
        """A public name for the key (never the key)."""

    @abc.abstractmethod
    def wrap(self, secret: bytes, context: str) -> bytes:
        """``secret`` sealed (AES-256-GCM) so that only this key, with ``context``, opens it."""

    @abc.abstractmethod
    def unwrap(self, sealed: bytes, context: str) -> bytes:
        """The secret :meth:`wrap` sealed; :class:`KeySourceError` if this key did not."""

    def raw(self) -> MasterKey | None:
        """The key's bytes where the source holds them (a file or the environment): a store
        made before keyrings uses them as its store key. A token's key is never read out."""
        return None


class RawKeySource(KeySource):
    """A master key held in this process: from a key file or the environment."""

    def __init__(self, key: MasterKey, spec: KeySpec):
        self._key = key
        self.spec = spec

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def wrap(self, secret: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        return nonce + AESGCM(self._key.secret).encrypt(nonce, secret, context.encode())

    def unwrap(self, sealed: bytes, context: str) -> bytes:
        try:
            return AESGCM(self._key.secret).decrypt(sealed[:NONCE], sealed[NONCE:],
                                                    context.encode())
        except InvalidTag:
            raise KeySourceError(f"{self.spec.describe()} did not seal this store key "
                                 f"(authentication failed)") from None

    def raw(self) -> MasterKey:
        return self._key


def trusted_module(module: str) -> Path:
    """A PKCS#11 module is code this process will run: it must be an absolute path to a
    regular file that only root can change, in directories only root can change (as sudo and
    ssh treat the files they trust), so that nobody who can write the data directory, a
    keyring or a backup can name a library of their own."""
    path = Path(module)
    if not path.is_absolute():
        raise KeySourceError(f"the PKCS#11 module-path must be absolute, not {module!r}")
    try:
        real = path.resolve(strict=True)
    except OSError:
        raise KeySourceError(f"the PKCS#11 module {module} does not exist; install the "
                             f"token's library or correct module-path") from None
    link = path.lstat()
    if path.is_symlink() and (link.st_uid != 0):
        raise KeySourceError(f"the PKCS#11 module {module} is a link that root does not own")
    for place in (real, *real.parents, *path.parents):
        info = place.stat()
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise KeySourceError(
                f"the PKCS#11 module {real} is not trusted: {place} can be changed by "
                f"someone other than root (owner uid {info.st_uid}, mode "
                f"{stat.S_IMODE(info.st_mode):04o}); install the token's library where only "
                f"root can write (e.g. /usr/lib)")
    if not stat.S_ISREG(real.stat().st_mode):
        raise KeySourceError(f"the PKCS#11 module {real} is not a regular file")
    return path


class Pkcs11KeySource(KeySource):
    """An AES-256 key in a PKCS#11 token: wrapping and unwrapping happen in the token."""

    def __init__(self, spec: KeySpec):
        module = trusted_module(str(spec.module))  # before anything is loaded
        import pkcs11  # imported here: only a store whose master is in a token needs it

        self.spec = spec
        self._pkcs11 = pkcs11
        try:
            library = pkcs11.lib(str(module))
        except (RuntimeError, OSError) as exc:
            raise KeySourceError(f"cannot load the PKCS#11 module {spec.module}: {exc}; "
                                 f"install the token's library or correct module-path") from None
        try:
            self._token = library.get_token(token_label=spec.token)
        except pkcs11.exceptions.NoSuchToken:
            raise KeySourceError(f"no PKCS#11 token labelled {spec.token!r} in "
                                 f"{spec.module}") from None
        self._pin = _pin(spec)
        self._key_id: str | None = None

    def _session(self) -> Any:
        try:
            return self._token.open(user_pin=self._pin, rw=True)
        except self._pkcs11.exceptions.PinIncorrect:
            raise KeySourceError(f"the PIN for PKCS#11 token {self.spec.token!r} is wrong "
                                 f"(check {ENV_PIN} or the pin-source file)") from None

    def _key(self, session: Any) -> Any:
        from pkcs11 import KeyType, ObjectClass

        try:
            return session.get_key(label=self.spec.label, key_type=KeyType.AES,
                                   object_class=ObjectClass.SECRET_KEY)
        except self._pkcs11.exceptions.NoSuchKey:
            raise KeySourceError(
                f"PKCS#11 token {self.spec.token!r} holds no AES key labelled "
                f"{self.spec.label!r}; create one with `strongroom keys rotate --to "
                f"'{self.spec}' --create --reason TEXT`") from None
        except self._pkcs11.exceptions.MultipleObjectsReturned:
            raise KeySourceError(f"PKCS#11 token {self.spec.token!r} holds several keys "
                                 f"labelled {self.spec.label!r}; labels must be unique") from None

    def _gcm(self, nonce: bytes, context: str) -> Any:
        from pkcs11.mechanisms import GCMParams

        return GCMParams(nonce, context.encode(), 128)

    @property
    def key_id(self) -> str:
        """A key check value: the first bytes of a fixed block sealed under the key (the
        usual way to name a key that cannot be read out)."""
        if self._key_id is None:
            check = self._seal(b"\0" * 16, b"\0" * NONCE, "strongroom key check value")
            self._key_id = hashlib.sha256(b"strongroom pkcs11 key\0" + check).hexdigest()[:16]
        return self._key_id

    def _seal(self, secret: bytes, nonce: bytes, context: str) -> bytes:
        from pkcs11 import Mechanism

        with self._session() as session:
            sealed: bytes = self._key(session).encrypt(
                secret, mechanism=Mechanism.AES_GCM, mechanism_param=self._gcm(nonce, context))
        return sealed

    def wrap(self, secret: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        return nonce + self._seal(secret, nonce, context)

    def unwrap(self, sealed: bytes, context: str) -> bytes:
        from pkcs11 import Mechanism

        with self._session() as session:
            try:
                opened: bytes = self._key(session).decrypt(
                    sealed[NONCE:], mechanism=Mechanism.AES_GCM,
                    mechanism_param=self._gcm(sealed[:NONCE], context))
            except self._pkcs11.exceptions.PKCS11Error:
                raise KeySourceError(f"{self.spec.describe()} did not seal this store key "
                                     f"(the token refused to open it)") from None
        return opened

    def create(self) -> None:
        """Generate the key in the token (AES-256, never extractable); refuse if one of
        that label exists."""
        from pkcs11 import Attribute, KeyType

        with self._session() as session:
            try:
                self._key(session)
            except KeySourceError:
                session.generate_key(KeyType.AES, 256, label=self.spec.label, store=True,
                                     template={Attribute.EXTRACTABLE: False,
                                               Attribute.SENSITIVE: True})
                return
        raise KeySourceError(f"PKCS#11 token {self.spec.token!r} already holds a key "
                             f"labelled {self.spec.label!r}; refusing to make another")


def _pin(spec: KeySpec) -> str:
    if spec.pin_file:
        path = Path(spec.pin_file)
        if not path.is_file():
            raise KeySourceError(f"the PIN file {path} does not exist")
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise KeySourceError(f"the PIN file {path} can be read by others; `chmod 600 "
                                 f"{path}` and consider the PIN exposed")
        return path.read_text().strip()
    pin = os.environ.get(ENV_PIN)
    if not pin:
        raise KeySourceError(f"the PKCS#11 token's user PIN is needed: set {ENV_PIN}, or "
                             f"add pin-source=file:PATH to the key source")
    return pin


def open_source(spec: KeySpec) -> KeySource:
    """The master key ``spec`` names, ready to wrap and unwrap."""
    match spec.kind:
        case "env":
            key = MasterKey.from_env()
            if key is None:
                raise KeySourceError(f"the key source is the environment, but {ENV_KEY} is "
                                     f"not set")
            return RawKeySource(key, spec)
        case "file":
            return RawKeySource(MasterKey.load(Path(str(spec.path))), spec)
        case "pkcs11":
            return Pkcs11KeySource(spec)
    raise KeySourceError(f"unknown key source kind {spec.kind!r}")


def create_source(spec: KeySpec) -> KeySource:
    """A new master key where ``spec`` says: a new key file (never over an existing one), or a
    new key in the token. The environment's key is made by whoever sets it."""
    match spec.kind:
        case "file":
            MasterKey.generate().save(Path(str(spec.path)))
            return open_source(spec)
        case "pkcs11":
            source = Pkcs11KeySource(spec)
            source.create()
            return source
    raise KeySourceError(f"a {spec.kind} key cannot be created by Strongroom; set "
                         f"{ENV_KEY} to a new base64 32-byte key instead")
