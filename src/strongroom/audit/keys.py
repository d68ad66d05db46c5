"""The log's keys, derived from the store's master secret so that no new key file is needed.

HKDF-SHA256 with distinct ``info`` strings gives independent keys: knowing the salt key (say,
a custodian checking whether an address appears in the log) reveals nothing of the signing key.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SIGNING_INFO = b"strongroom audit checkpoint signing key v1"
_SALT_INFO = b"strongroom audit sensitive-value salt key v1"


def _derive(secret: bytes, info: bytes) -> bytes:
    if len(secret) < 32:
        raise ValueError("the audit keys are derived from a secret of at least 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def signing_key_from_secret(secret: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key that signs checkpoints."""
    return Ed25519PrivateKey.from_private_bytes(_derive(secret, _SIGNING_INFO))


def salt_key_from_secret(secret: bytes) -> bytes:
    """The 32-byte HMAC key under which sensitive values are hashed."""
    return _derive(secret, _SALT_INFO)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def key_id(key: Ed25519PublicKey) -> str:
    """The log id: SHA-256 of the raw public key, hex (as RFC 9162 names a log by its key)."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()
