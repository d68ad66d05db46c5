"""Secrets handed to people (API tokens, session ids, CSRF tokens): random, stored only as hashes.

They carry 256 bits of entropy, so a plain SHA-256 is a sound one-way store (no slow hash
needed), and a lookup by hash is a constant-time index probe.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "srt_"
SESSION_PREFIX = "srs_"


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_id(prefix: str) -> str:
    """A short public identifier, e.g. ``per_3f9a1c2b7d5e``."""
    return f"{prefix}_{secrets.token_hex(6)}"
