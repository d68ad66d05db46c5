"""Where `make test` puts the tests' temporary files: a folder of this user's on a RAM-backed
file system (/dev/shm) when it has room for a whole run (the suite's stores peak under 1 GiB;
4 GiB asked, so a small container's 64 MiB /dev/shm is passed over), else the usual TMPDIR.

The tests' stores are throwaway. On tmpfs every fsync the product makes (SQLite at
synchronous=FULL, the audit log, sealed files written and renamed) still happens and returns at
once; on this kind of machine's virtual disk they took about half the suite's wall time
(test_disclosure_attacks.py: 154 s on the disk, 79 s on tmpfs, the same CPU). Run as a script:
prints the folder, made private to this user."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RAM = Path("/dev/shm")
ROOM = 4 * 2**30  # bytes free on the RAM file system before the tests use it


def folder_for_tests(ram: Path = RAM, room: int = ROOM) -> Path:
    """The folder, made (0700) if it is on the RAM file system; the usual one otherwise."""
    try:
        roomy = ram.is_dir() and shutil.disk_usage(ram).free >= room
    except OSError:
        roomy = False
    if not roomy:
        return Path(tempfile.gettempdir())
    folder = ram / f"strongroom-tests-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():
        # someone else's, or a link planted to send the tests' files elsewhere: not used
        return Path(tempfile.gettempdir())
    folder.chmod(0o700)
    return folder


if __name__ == "__main__":
    print(folder_for_tests())
