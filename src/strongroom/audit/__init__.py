"""The tamper-evident audit log: every state change and data access, in a signed Merkle log.

See docs/explanation/audit-log.md. Entries are RFC 9162 Merkle leaves in the metadata
database; Ed25519-signed checkpoints go to the database and to a witness file outside it.
"""

from strongroom.audit.checkpoints import Checkpoint
from strongroom.audit.events import DESCRIPTIONS, AuditEvent, EventType
from strongroom.audit.keys import salt_key_from_secret, signing_key_from_secret
from strongroom.audit.log import AuditError, AuditLog, AuditReceipt, StoredEntry
from strongroom.audit.verify import (
    Tampering,
    VerifyReport,
    verify,
    verify_consistency,
    verify_inclusion,
)

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
    "verify",
    "verify_consistency",
    "verify_inclusion",
]
