"""Output bytes at rest: named by their SHA-256, sealed under the project's key.

``<project dir>/outputs/<sha256>.srenc``. The digest names the file and is bound into the
encryption context, and reading verifies it again, so what is downloaded is provably what was
checked and reviewed. Closing a project destroys its key, and with it every output.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from strongroom.access.context import AccessContext
from strongroom.access.keys import open_project_key
from strongroom.access.models import Project
from strongroom.cohort.crypto import DecryptionError, decrypt, encrypt
from strongroom.errors import Refused

FOLDER = "outputs"
SUFFIX = ".srenc"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class TamperedOutput(Refused):
    """The stored bytes are missing or are not the bytes recorded: nothing is handed out."""


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _context(project_id: str, sha256: str) -> str:
    return f"output:{project_id}:{sha256}"


def path_of(ctx: AccessContext, project_id: str, sha256: str) -> Path:
    if not _HEX64.fullmatch(sha256):  # the name comes from our own row; still, no traversal
        raise ValueError("an output's SHA-256 is 64 lowercase hex digits")
    return ctx.project_dir(project_id) / FOLDER / f"{sha256}{SUFFIX}"


def save(ctx: AccessContext, project: Project, payload: bytes) -> str:
    """Seal ``payload`` under the project's key (atomic write); its SHA-256."""
    sha256 = digest(payload)
    target = path_of(ctx, project.id, sha256)
    if target.exists():
        try:  # the same bytes are already stored (outputs are content-addressed)
            load(ctx, project, sha256)
            return sha256
        except TamperedOutput:
            pass  # a damaged copy: replace it with the bytes just checked
    sealed = encrypt(payload, open_project_key(ctx.key, project), _context(project.id, sha256))
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = target.with_name(f".{sha256}.{secrets.token_hex(4)}.tmp")  # one per writer
    with open(staging, "wb") as out:
        out.write(sealed)
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, target)
    return sha256


def load(ctx: AccessContext, project: Project, sha256: str) -> bytes:
    """The stored bytes, after checking they are exactly the bytes whose digest is recorded."""
    where = path_of(ctx, project.id, sha256)
    key = open_project_key(ctx.key, project)  # refused once the project's key is destroyed
    problem = "the output's stored file does not match the bytes that were checked"
    try:
        payload = decrypt(where.read_bytes(), key, _context(project.id, sha256))
    except FileNotFoundError:
        raise TamperedOutput(f"the output's stored file is missing; nothing is handed out; "
                             f"tell the custodian's team (SHA-256 {sha256})") from None
    except DecryptionError:
        raise TamperedOutput(f"{problem} (it was altered or replaced); nothing is handed out; "
                             f"tell the custodian's team (SHA-256 {sha256})") from None
    if not hmac.compare_digest(digest(payload), sha256):
        raise TamperedOutput(f"{problem} (its SHA-256 differs); nothing is handed out; tell "
                             f"the custodian's team (SHA-256 {sha256})")
    return payload
