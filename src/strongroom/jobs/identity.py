"""Who a job is on the host: a dedicated unprivileged user, never the platform's, never root.

Bubblewrap maps the sandbox's ``nobody`` to the user that started it. Started by root, the
job would be host root in every check the kernel makes outside the sandbox's own user
namespace (``/proc/sys``, a setuid file left in a folder the host sees). So a platform that
runs as root starts each sandbox as ``strongroom-job``, a system user with no home, no shell
and no groups, made here the first time it is needed (``useradd``); where it cannot be made,
``nobody``. A platform that runs as another user cannot change user: its jobs run as that
user, unprivileged already (docs/explanation/job-sandbox.md says what that leaves).
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

USER = "strongroom-job"
# what bubblewrap, run by root, leaves the job's first step so that it can become its user
DROPPING = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
NOBODY = "nobody"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostUser:
    uid: int
    gid: int
    name: str

    def drop(self) -> list[str]:
        """The job's first step in a sandbox that root started: become this user, with no
        groups and no capability, not even in the bounding set (empty when the platform is
        unprivileged: the sandbox's user namespace maps it already)."""
        if os.geteuid() != 0:
            return []
        return ["/usr/bin/setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]


@functools.cache
def job_user() -> HostUser:
    """The host user jobs run as (made once, where the platform is root and it is missing)."""
    if os.geteuid() != 0:
        return HostUser(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    found = _lookup(USER)
    if found is None and shutil.which("useradd"):
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
             "Strongroom jobs (sandboxed researchers' code)", USER],
            capture_output=True, check=False)
        if done.returncode not in (0, 9):  # 9: made meanwhile by another process
            log.warning("could not make the user %s (%s); jobs run as %s", USER,
                        done.stderr.decode(errors="replace").strip(), NOBODY)
        found = _lookup(USER)
    found = found or _lookup(NOBODY)
    if found is None or found.uid == 0 or found.gid == 0:
        raise RuntimeError(f"neither {USER} nor {NOBODY} is an unprivileged user here; "
                           f"make {USER} (useradd --system {USER}) to run jobs")
    return found


def _lookup(name: str) -> HostUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return HostUser(entry.pw_uid, entry.pw_gid, name)
