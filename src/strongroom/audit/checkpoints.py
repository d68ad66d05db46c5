"""Signed checkpoints (tree heads), their exported JSON form, and the witness file.

A checkpoint signs this text with Ed25519 (four lines after the format line, each ending in a
newline), so anyone holding the public key can check an exported checkpoint offline::

    strongroom-audit-checkpoint/1
    <log id: SHA-256 of the raw public key, hex>
    <tree size, decimal>
    <root hash, hex>
    <timestamp, UTC, microseconds, e.g. 2026-04-01T12:00:00.000000+00:00>

The witness file keeps one exported checkpoint per line outside the database, so that a
database restored from an older backup, or rewritten after the fact, disagrees with it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from strongroom.audit.events import format_at
from strongroom.audit.keys import key_id, public_key_bytes, public_key_from_hex

FORMAT = "strongroom-audit-checkpoint/1"


def signed_text(log_id: str, tree_size: int, root_hash: bytes, at: dt.datetime) -> str:
    return f"{FORMAT}\n{log_id}\n{tree_size}\n{root_hash.hex()}\n{format_at(at)}\n"


@dataclass(frozen=True)
class Checkpoint:
    """The signed root of the first ``tree_size`` entries."""

    tree_size: int
    root_hash: bytes
    at: dt.datetime
    signature: bytes
    key_id: str

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, tree_size: int, root_hash: bytes,
             at: dt.datetime) -> Checkpoint:
        log_id = key_id(key.public_key())
        signature = key.sign(signed_text(log_id, tree_size, root_hash, at).encode())
        return cls(tree_size, root_hash, at, signature, log_id)

    def signed_text(self) -> str:
        return signed_text(self.key_id, self.tree_size, self.root_hash, self.at)

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        """Whether ``public_key`` signed exactly this checkpoint."""
        if self.key_id != key_id(public_key):
            return False
        try:
            public_key.verify(self.signature, self.signed_text().encode())
        except (InvalidSignature, ValueError):
            return False
        return True

    def export(self, public_key: Ed25519PublicKey) -> dict[str, Any]:
        """Everything needed to anchor this checkpoint elsewhere and check it later, offline."""
        return {
            "format": FORMAT,
            "log_id": self.key_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "timestamp": format_at(self.at),
            "public_key": public_key_bytes(public_key).hex(),
            "signature": self.signature.hex(),
            "signed_text": self.signed_text(),
            "algorithms": "RFC 9162 Merkle tree (SHA-256); Ed25519 signature over signed_text",
        }

    @classmethod
    def from_export(cls, data: dict[str, Any]) -> Checkpoint:
        """The checkpoint in an exported dict; ValueError when it is not one."""
        try:
            if data["format"] != FORMAT:
                raise ValueError(f"format is {data['format']!r}, not {FORMAT!r}")
            checkpoint = cls(
                tree_size=int(data["tree_size"]),
                root_hash=bytes.fromhex(data["root_hash"]),
                at=dt.datetime.fromisoformat(data["timestamp"]),
                signature=bytes.fromhex(data["signature"]),
                key_id=str(data["log_id"]),
            )
            if "public_key" in data and key_id(public_key_from_hex(data["public_key"])) != \
                    checkpoint.key_id:
                raise ValueError("its public key does not match its log id")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a Strongroom audit checkpoint: {exc}") from exc
        if checkpoint.tree_size < 0 or len(checkpoint.root_hash) != 32 \
                or checkpoint.at.tzinfo is None:
            raise ValueError("not a Strongroom audit checkpoint: bad size, root or timestamp")
        return checkpoint


def append_witness(path: Path, checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> None:
    """Append one checkpoint as a JSON line and fsync it (and the directory, when new)."""
    new = not path.exists()
    if new:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = json.dumps(checkpoint.export(public_key), sort_keys=True, separators=(",", ":"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_witness(path: Path) -> list[dict[str, Any]]:
    """The exported checkpoints in a witness file, oldest first (none if it does not exist).

    A last line without its newline is a write cut short by a crash and is ignored; any other
    line that is not JSON is returned as ``{"unreadable": line number}`` for the verifier.
    """
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # cut short by a crash
    found: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        found.append(data if isinstance(data, dict) else {"unreadable": number})
    return found
