"""The journal: what an operation that writes files outside its database transaction set out to
do, kept in the data directory so that the next open can finish or undo what a crash cut off.

An ingest seals a cohort version's files and then records it in the database; a backup writes
its file and then records ``store.backed_up``. Neither can make the file and the row one
transaction, so each first writes an *intent* here (a small JSON file, flushed and its directory
flushed: it survives a power cut), then does its work, then removes the intent. An intent
found by the next open (under the store's lock, so never one a live process is still working
on) is an operation that did not finish, and names exactly what it made: the store resolves it
(strongroom.cohort.store: ``Store._resolve``) and records in the audit log what it did.

Layout: ``journal/<kind>-<id>.json``, 0600, in a 0700 directory. Nothing else goes there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_DIR = "journal"
KINDS = ("ingest", "backup")
_NAME = re.compile(r"^(ingest|backup)-([0-9a-f-]{32,36})\.json$")


@dataclass(frozen=True)
class Intent:
    """One unfinished operation: its kind, its id (a version's or a backup's) and what it
    recorded as it went."""

    path: Path
    kind: str
    id: str
    data: dict[str, Any]


def begin(root: Path, kind: str, ident: str, data: dict[str, Any]) -> Intent:
    """Write the intent durably, before the operation makes anything."""
    if kind not in KINDS:
        raise ValueError(f"no journal kind {kind!r}")
    where = root / JOURNAL_DIR
    where.mkdir(mode=0o700, exist_ok=True)
    intent = Intent(where / f"{kind}-{ident}.json", kind, ident,
                    {"started_at": dt.datetime.now(dt.UTC).isoformat(), **data})
    _write(intent)
    return intent


def update(intent: Intent, **more: Any) -> Intent:
    """Record a step reached (durably, replacing the file in one rename)."""
    moved = Intent(intent.path, intent.kind, intent.id, {**intent.data, **more})
    _write(moved)
    return moved


def finish(intent: Intent) -> None:
    """The operation finished (or was resolved): remove its intent, durably."""
    intent.path.unlink(missing_ok=True)
    _sync(intent.path.parent)
    with contextlib.suppress(OSError):  # not empty: another intent (or a stranger's file)
        intent.path.parent.rmdir()  # an empty journal leaves the directory as it was
        _sync(intent.path.parent.parent)


def pending(root: Path) -> list[Intent]:
    """Every intent left by an operation that did not finish, oldest name first. A file in the
    journal that is not an intent this release writes is refused: it is not ignored."""
    where = root / JOURNAL_DIR
    if not where.is_dir():
        return []
    found = []
    for path in sorted(where.iterdir()):
        if path.name.endswith(".tmp") and _NAME.match(path.name[1:-4]):
            path.unlink(missing_ok=True)  # our own half-written intent: the operation never began
            continue
        match = _NAME.match(path.name)
        try:
            if match is None or path.is_symlink() or not path.is_file():
                raise ValueError("not a name the journal uses")
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"{path} is not a journal entry this release wrote ({exc}): nothing was "
                f"changed. Move it out of {where} (after reading it), then try again") from None
        found.append(Intent(path, match.group(1), match.group(2), data))
    return found


def _write(intent: Intent) -> None:
    tmp = intent.path.with_name(f".{intent.path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**intent.data, "kind": intent.kind, "id": intent.id}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, intent.path)
    _sync(intent.path.parent)


def _sync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
