"""The fixed keys the audit tests sign and salt with (never a real platform's)."""

from __future__ import annotations

from strongroom.audit import salt_key_from_secret, signing_key_from_secret

SECRET = bytes(range(32))
KEY = signing_key_from_secret(SECRET)
SALT = salt_key_from_secret(SECRET)
PUBLIC = KEY.public_key()
