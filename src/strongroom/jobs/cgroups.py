"""Control groups for one job: its processes and its memory, counted by the kernel.

Rlimits are per process, and a process limit (RLIMIT_NPROC) is not enforced for root, which
the platform may run as; a control group holds every process a job starts, however many.
The job's group is made beneath the platform's own (so the platform's limits bound it too),
in cgroup v2 where its controllers are delegated, else in the v1 ``pids`` and ``memory``
hierarchies. Where neither can be written, :func:`available` says why, and jobs are refused
(a job whose processes cannot be held is not run).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
JOB_CPU_SHARES = 128  # cgroup v1: a session's is 1024
JOB_CPU_WEIGHT = 12  # cgroup v2: a session's is 100
# cgroup v1 counts a group's TCP buffers only where it is given a limit of their own, and
# they come from a pool the whole host shares (net.ipv4.tcp_mem: 2.2 GiB on this kind of
# machine): a job held 586 MiB of it from a group of 7 MiB, about 4 MiB a connection that
# never reads, and at the pool's top every TCP socket on the host (the server's, the
# database's) is refused memory. A job's TCP is loopback only: this is plenty. (cgroup v2
# counts socket memory in memory.max; sandbox.shared_budgets warns where that is too much.)
JOB_TCP_BYTES = 64 << 20


@dataclass(frozen=True)
class Usage:
    """What the kernel counted for a job's group."""

    memory_peak: int  # bytes
    memory_limited: bool  # the memory limit was met (allocations failed or the OOM killer ran)
    processes_limited: bool  # a fork was refused at the process limit


@dataclass(frozen=True)
class Group:
    """One job's groups: ``dirs`` are where its processes are put (v2: one; v1: two)."""

    dirs: tuple[Path, ...]
    v2: bool

    def usage(self) -> Usage:
        if self.v2:
            d = self.dirs[0]
            events = _keyed(d / "memory.events")
            return Usage(_int(d / "memory.peak"), events.get("max", 0) + events.get(
                "oom_kill", 0) > 0, _keyed(d / "pids.events").get("max", 0) > 0)
        pids, memory = self.dirs[:2]  # then the cpu group, if any
        return Usage(_int(memory / "memory.max_usage_in_bytes"),
                     _int(memory / "memory.failcnt") > 0,
                     _keyed(pids / "pids.events").get("max", 0) > 0)

    def stop(self) -> None:
        """Kill whatever is left in the groups (v2: the kernel's cgroup.kill, at once)."""
        for d in self.dirs:
            if (d / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
        for _ in range(100):
            alive = [int(p) for d in self.dirs
                     for p in _read(d / "cgroup.procs").split() if p.strip()]
            if not alive:
                break
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 9)
            time.sleep(0.02)

    def remove(self) -> None:
        """Remove the groups once their last process is gone: killed processes leave them
        when their new parent reaps them, which can take a while on a busy machine, so a
        group still busy is removed by a thread that keeps trying."""
        if not self._removed(tries=40):
            threading.Thread(target=self._removed, kwargs={"tries": 600}, daemon=True,
                             name="cgroup-cleanup").start()

    def _removed(self, tries: int) -> bool:
        for _ in range(tries):
            self.stop()
            for d in self.dirs:
                with contextlib.suppress(OSError):  # gone already, or still busy
                    d.rmdir()
            if not any(d.exists() for d in self.dirs):
                return True
            time.sleep(0.25)
        return False


@functools.cache
def available() -> str | None:
    """Why jobs' groups cannot be made here (None: they can); asked once a process."""
    try:
        group = make(f"strongroom-probe-{os.getpid()}-{secrets.token_hex(4)}",
                     memory=1 << 30, processes=8)
    except OSError as error:
        return (f"control groups cannot be written here ({error}); a job's processes and "
                "memory would not be held, so jobs are refused. Run Strongroom where cgroup v2 "
                "delegates 'pids' and 'memory' to it, or as root with cgroup v1")
    group.stop()
    group.remove()
    return None


def make(name: str, *, memory: int, processes: int, low_priority: bool = False) -> Group:
    """A new group ``name`` with the limits set (OSError if it cannot be made); ``low_priority``:
    a CPU weight an eighth of a session's, where the kernel's CPU controller is at hand.

    The kernel's automatic grouping gives each session (bubblewrap starts one) an equal
    share of the CPU whatever its processes' nice value, so a job's priority alone does not
    yield to the server: a job in a CPU group of its own is out of that grouping, and its
    group's weight is what counts (a red team timed the server's reads against a busy job
    through it). An eighth, not the least: a job of the least weight (``cpu.idle``) got no
    CPU at all on a machine already busy, and failed at its wall time."""
    own = _own()
    unified = ROOT / own.get("", "/").lstrip("/")
    if own.get("") is not None and {"pids", "memory"} <= set(
            _read(unified / "cgroup.controllers").split()):
        d = unified / name
        d.mkdir()
        (d / "pids.max").write_text(str(processes))
        (d / "memory.max").write_text(str(memory))
        if (d / "memory.swap.max").exists():
            (d / "memory.swap.max").write_text("0")
        if low_priority and (d / "cpu.weight").exists():  # the cpu controller delegated
            (d / "cpu.weight").write_text(str(JOB_CPU_WEIGHT))
        return Group((d,), v2=True)
    dirs = []
    controllers: list[tuple[str, dict[str, int]]] = [
        ("pids", {"pids.max": processes}),
        ("memory", {"memory.limit_in_bytes": memory,
                    "memory.kmem.tcp.limit_in_bytes": min(memory, JOB_TCP_BYTES)})]
    if low_priority and "cpu" in own and (ROOT / "cpu").is_dir():
        controllers.append(("cpu", {"cpu.shares": JOB_CPU_SHARES}))
    try:
        for controller, limits in controllers:
            base = ROOT / controller / own.get(controller, "/").lstrip("/")
            d = base / name
            d.mkdir()
            dirs.append(d)
            for knob, value in limits.items():
                (d / knob).write_text(str(value))
    except OSError:
        for d in dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return Group(tuple(dirs), v2=False)


def leftovers(job_ids: set[str]) -> int:
    """Remove the groups of the jobs ``job_ids`` (ended: none of them runs) that a stopped
    platform left, first killing whatever is still in them: how many. A platform killed as a
    sandbox started could leave the job running, its decrypted inputs with it, and a group
    with a live process was left alone as a running job's (a red team's)."""
    own = _own()
    bases = {ROOT / own[""].lstrip("/")} if "" in own else set()
    bases |= {ROOT / c / own[c].lstrip("/") for c in ("pids", "memory", "cpu") if c in own}
    removed = 0
    for base in bases:
        with contextlib.suppress(OSError):
            for d in base.iterdir():
                job = d.name.removeprefix("strongroom-").split("-", 1)[0]
                if d.name.startswith("strongroom-") and job in job_ids:
                    Group((d,), v2="" in own).stop()
                    with contextlib.suppress(OSError):
                        d.rmdir()
                        removed += 1
    return removed


def _own() -> dict[str, str]:
    """This process's group in each hierarchy ("" for v2)."""
    groups: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            groups[controller] = path
    return groups


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def _keyed(path: Path) -> dict[str, int]:
    pairs = (line.split() for line in _read(path).splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}
