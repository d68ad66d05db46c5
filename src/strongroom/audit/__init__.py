"""The tamper-evident audit log: every state change and data access, in a signed Merkle log.

See docs/explanation/audit-log.md. Entries are RFC 9162 Merkle leaves in the metadata
database; Ed25519-signed checkpoints go to the database and to a witness file outside it.

The names below are imported from their modules when first used (PEP 562), so that a module
needing only the event names (``strongroom.audit.events``) does not load the database layer:
a command's ``--help`` stays under a second of CPU (issue 55). The checker itself is
``strongroom.audit.verify.verify``: ``strongroom.audit.verify`` is its module's name, which a
name imported on first use could not also be.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strongroom.audit.checkpoints import Checkpoint
    from strongroom.audit.events import DESCRIPTIONS, AuditEvent, EventType
    from strongroom.audit.keys import salt_key_from_secret, signing_key_from_secret
    from strongroom.audit.log import AuditError, AuditLog, AuditReceipt, StoredEntry
    from strongroom.audit.verify import (
        Tampering,
        VerifyReport,
        verify_consistency,
        verify_inclusion,
    )

_HOME = {
    "Checkpoint": "checkpoints",
    "DESCRIPTIONS": "events", "AuditEvent": "events", "EventType": "events",
    "salt_key_from_secret": "keys", "signing_key_from_secret": "keys",
    "AuditError": "log", "AuditLog": "log", "AuditReceipt": "log", "StoredEntry": "log",
    "Tampering": "verify", "VerifyReport": "verify",
    "verify_consistency": "verify", "verify_inclusion": "verify",
}  # fmt: skip

__all__ = [
    "DESCRIPTIONS",
    "AuditError",
    "AuditEvent",
    "AuditLog",
    "AuditReceipt",
    "Checkpoint",
    "EventType",
    "StoredEntry",
    "Tampering",
    "VerifyReport",
    "salt_key_from_secret",
    "signing_key_from_secret",
    "verify_consistency",
    "verify_inclusion",
]  # every name of _HOME (tests/unit/test_cli_start.py)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # once: later reads are plain attribute reads
    return value
