"""A job's scratch where only the job's own processes can see it, gone when the platform goes.

A job's decrypted inputs and what it writes live in a tmpfs mounted in a mount namespace of
its own (``unshare --mount``), held open by one keeper process. The host sees an empty
folder where it is mounted; the platform reaches in through the keeper
(``/proc/KEEPER/root/…``, which only root may follow) and starts each sandbox inside it
(``nsenter``). The keeper ends with the platform, however the platform ends (its parent-death
signal, and the end of its input pipe), and the sandboxes with it (bubblewrap's
``--die-with-parent``); once the last process in the namespace is gone the kernel frees the
tmpfs, so nothing decrypted is left in memory or on disk for anyone to find, not even after
``kill -9``. An empty mount point is all a crash leaves; :func:`leftovers` finds those (and
older releases' scratch folders) for the jobs service to remove and record.

The folder is locked (``flock``) while its job runs, so that a second platform process on
the same store never removes a running job's scratch: the lock goes with the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "strongroom-"
_PROC_ROOT = re.compile(r"^/proc/(\d+)/root(/.*)$")
# mount the tmpfs in the new namespace, say so, then hold the namespace until the input ends
_KEEPER = ('mount -t tmpfs -o mode=0711,nosuid,nodev tmpfs "$1" && echo ready '
           '&& exec cat >/dev/null')


def possible() -> bool:
    """Whether scratch can be kept in a namespace of its own here (root, with unshare)."""
    return os.geteuid() == 0 and _works()


@dataclass(frozen=True)
class Inside:
    """Where a path in a vault is: its keeper's process and the path in its namespace."""

    pid: int
    path: str

    def enter(self) -> list[str]:
        """The command prefix that runs the rest in the vault's mount namespace."""
        return ["nsenter", f"--target={self.pid}", "--mount", "--"]


def where(path: Path | str) -> Inside | None:
    """The vault ``path`` lies in, if it is one's (``/proc/PID/root/…``)."""
    found = _PROC_ROOT.match(str(path))
    return Inside(int(found.group(1)), found.group(2)) if found else None


@contextlib.contextmanager
def opened(job_id: str, parent: Path) -> Iterator[Path]:
    """A new vault for ``job_id``: yields the path the platform reads and writes it by."""
    point = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{job_id}-", dir=parent))
    lock = _lock(point)
    keeper = None
    try:
        keeper = subprocess.Popen(
            [*_dying_with(os.getpid()), "unshare", "--mount", "--propagation", "private",
             "--", "sh", "-c", _KEEPER, "keeper", str(point)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
        assert keeper.stdout is not None
        if keeper.stdout.readline() != b"ready\n":
            raise OSError("the job's scratch could not be mounted: " + (
                keeper.stderr.read().decode(errors="replace").strip() if keeper.stderr
                else "no reason given"))
        yield Path(f"/proc/{keeper.pid}/root{point}")
    finally:
        if keeper is not None:
            _end(keeper)
        os.close(lock)
        with contextlib.suppress(OSError):
            point.rmdir()


def mount_tmpfs(inside: Inside, *, size: int, inodes: int, uid: int, gid: int) -> bool:
    """A tmpfs of its own on ``inside`` (bytes and inodes capped), owned by the job's user."""
    return subprocess.run(
        [*inside.enter(), "mount", "-t", "tmpfs", "-o",
         f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={gid},nosuid,nodev,noexec",
         "tmpfs", inside.path], capture_output=True, check=False).returncode == 0


def unmount(inside: Inside) -> None:
    subprocess.run([*inside.enter(), "umount", "-l", inside.path], capture_output=True,
                   check=False)


def leftovers(parent: Path) -> list[tuple[str, Path]]:
    """Jobs' scratch folders under ``parent`` that no process holds (a platform stopped while
    they ran), each with its job's ID: the caller removes those of its own store's jobs. A
    folder locked by a live process is a running job's, and is not listed."""
    found = []
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            name = entry.name
            if not name.startswith(PREFIX) or entry.is_symlink() or not entry.is_dir():
                continue
            job_id = name[len(PREFIX):].rsplit("-", 1)[0]
            try:
                fd = _lock(entry)
            except OSError:
                continue  # a live platform's running job
            os.close(fd)
            found.append((job_id, entry))
    return found


def destroy(folder: Path) -> None:
    """Unmount whatever is mounted beneath ``folder`` (deepest first), then remove it to any
    depth (``rm`` recurses without Python's recursion limit)."""
    below = str(folder.resolve()) + "/"
    with contextlib.suppress(OSError):
        points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                  .splitlines() if len(line.split()) > 4]
        for point in sorted((p for p in points if p.startswith(below)), key=len,
                            reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], capture_output=True,
                   check=False)


def _lock(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _end(keeper: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if keeper.stdin is not None:
            keeper.stdin.close()
    with contextlib.suppress(ProcessLookupError):
        keeper.kill()
    keeper.wait()
    for pipe in (keeper.stdout, keeper.stderr):
        if pipe is not None:
            pipe.close()


# the platform's process id, then what the keeper runs: ended at once if the platform is gone
_PARENT = '[ "$PPID" = "$1" ] || exit 1; shift; exec "$@"'


def _dying_with(platform: int) -> list[str]:
    """The prefix that makes the keeper, before it starts, killed when the platform's thread
    that made it ends (setpriv's parent-death signal, kept by each exec that follows; the
    keeper's process id stays its own), and ended at once if the platform is gone already.
    (A ``preexec_fn`` in Python did this, but it made every job fork the whole platform.)"""
    return ["setpriv", "--pdeathsig", "KILL", "--", "sh", "-c", _PARENT, "keeper",
            str(platform)]


@functools.cache
def _works() -> bool:
    return subprocess.run([*_dying_with(os.getpid()), "unshare", "--mount", "--propagation",
                           "private", "--", "true"],
                          capture_output=True, check=False).returncode == 0
