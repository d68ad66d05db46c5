"""The console's signed-in session: `strongroom login` keeps it in a file readable by its owner.

The CLI signs in exactly as the web does (password + TOTP → a session with 15-minute idle and
12-hour absolute limits), so the two-person rule and the audit trail hold at the console too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom.access.auth import NewSession, resume_session
from strongroom.access.context import AccessContext, Principal
from strongroom.errors import Unauthenticated

if TYPE_CHECKING:
    from strongroom.platform import Platform

ENV_SESSION_FILE = "STRONGROOM_SESSION_FILE"


def session_file(store_id: str) -> Path:
    if os.environ.get(ENV_SESSION_FILE):
        return Path(os.environ[ENV_SESSION_FILE])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "strongroom" / "sessions" / f"{store_id}.json"


def save(platform: Platform, new: NewSession, email: str) -> Path:
    path = session_file(platform.store.config.store_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"email": email, "person_id": new.principal.person_id,
                   "session": new.secret, "csrf": new.csrf}, fh)
    return path


def forget(platform: Platform) -> None:
    session_file(platform.store.config.store_id).unlink(missing_ok=True)


def resume(ctx: AccessContext, platform: Platform, changes_state: bool) -> Principal:
    path = session_file(platform.store.config.store_id)
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise Unauthenticated("you are not signed in at this console; run "
                              "`strongroom login --as EMAIL` first") from None
    return resume_session(ctx, saved["session"], saved["csrf"], changes_state, None)
