"""Per-project data keys: random, sealed under the master key, destroyed when a project closes.

Whatever a project's files hold (its pseudonym map, later its derived tables and results) is
encrypted under the project's key; once the sealed key is gone, those bytes are unreadable even
with the master key — crypto-shredding, so closing a project needs no search for its files.
"""

from __future__ import annotations

from strongroom.access.models import Project
from strongroom.cohort.crypto import MasterKey, decrypt, encrypt
from strongroom.errors import Refused


def _context(project_id: str) -> str:
    return f"project-key:{project_id}"


def new_project_key(master: MasterKey, project_id: str) -> tuple[MasterKey, bytes]:
    """A fresh key and its sealed form (to store on the project's row)."""
    key = MasterKey.generate()
    return key, encrypt(key.secret, master, _context(project_id))


def open_project_key(master: MasterKey, project: Project) -> MasterKey:
    if project.key_sealed is None:
        raise Refused(f"project {project.id}'s key has been destroyed ({project.status}); "
                      f"nothing encrypted under it can be read again")
    return MasterKey(decrypt(project.key_sealed, master, _context(project.id)))
