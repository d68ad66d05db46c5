"""One run of a job's code in a bubblewrap sandbox, with its walls and limits.

The walls: a host user of its own, never root (identity.py); new user, PID, network, IPC,
UTS and mount namespaces (no network device but loopback, nothing to connect to); a seccomp
filter on the kernel's dangerous calls (syscalls.py); a read-only file system of the runtime
(``/usr`` and the Python environment; R, its packages and ``/etc/R`` where installed), the
job's code and inputs, a writable output folder, size-capped ``/tmp`` and ``/dev/shm`` tmpfs,
all of ``/proc`` read-only, and nothing else: not the data directory, the key files, the
metadata database or another project's files; an empty environment; no capabilities, no
setuid, no new user namespaces. Where the platform is root the whole scratch lives in a
vault (vault.py) that dies with the platform. The limits: the job's processes and memory
held by a control group (cgroups.py), CPU seconds and file size by rlimits, wall time and
the output folder's size watched from outside; its CPU priority low (``Limits.low_priority``).
A try at a wall is reported by the monitor (sitecustomize.py for Python, r/strongroom.R for
R) through a pipe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from strongroom.errors import Refused
from strongroom.jobs import cgroups, identity, syscalls, vault

BWRAP = "bwrap"
JOB_NICE = 10  # Limits.low_priority: its processes' nice (without a CPU group, their weight)
NOBODY = 65534
LOG_BYTES = 1 << 20  # kept of each of stdout and stderr (the rest is cut, and said to be)
HOOK = Path(__file__).with_name("sitecustomize.py")
NOTEBOOK = Path(__file__).with_name("notebook.py")
SDC = Path(__file__).parent.parent / "sdc.py"
R_LIBRARY = Path(__file__).parent / "r" / "strongroom.R"  # sdc for R, and R's monitor
R_KNIT = Path(__file__).parent / "r" / "knit.R"  # renders an R Markdown action's document
R_SETTINGS = Path("/etc/R")  # Debian's R reads its Renviron and Rprofile.site here
# Debian's alternatives: links to the programs and libraries chosen among several (R's BLAS
# and LAPACK, the `which` R's utils runs as it loads), read-only
ALTERNATIVES = Path("/etc/alternatives")


class Wall(StrEnum):
    """Why a run was stopped, or what it tried (an alert for the watch)."""

    TIME = "time"  # wall-clock limit
    CPU = "cpu"  # CPU seconds
    MEMORY = "memory"
    PROCESSES = "processes"
    FILE_SIZE = "file_size"  # one file larger than the limit
    OUTPUT_SIZE = "output_size"  # the output folder larger than the limit
    NETWORK = "network"  # a network call (there is no network; it only failed)
    PROGRAM = "program"  # started another program
    MONITOR = "monitor"  # closed or broke the monitor's pipe
    SYSCALL = "syscall"  # a system call the filter forbids (syscalls.py): ended at once
    SPACE = "space"  # filled /tmp or /dev/shm (each a capped tmpfs)


STOPPING = frozenset({Wall.TIME, Wall.CPU, Wall.MEMORY, Wall.PROCESSES, Wall.FILE_SIZE,
                      Wall.OUTPUT_SIZE, Wall.MONITOR, Wall.SYSCALL, Wall.SPACE})
# what the monitor's lines may report: tries, never what stopped a run (the job writes them)
TRIED = frozenset({Wall.NETWORK, Wall.PROGRAM})
SIGSYS_EXIT = 128 + signal.SIGSYS  # bubblewrap's exit status for a job ended by the filter
# bubblewrap's exit status for a job the kernel ended at its file size or CPU limit (Python
# ignores SIGXFSZ and says "File too large"; R, like most programs, is ended by it)
SIGXFSZ_EXIT = 128 + signal.SIGXFSZ
SIGXCPU_EXIT = 128 + signal.SIGXCPU
REASON: dict[Wall, str] = {
    Wall.TIME: "it ran longer than its wall-time limit and was stopped",
    Wall.CPU: "it used more CPU time than its limit and was stopped",
    Wall.MEMORY: "it asked for more memory than its limit",
    Wall.PROCESSES: "it started more processes than its limit",
    Wall.FILE_SIZE: "it wrote a file larger than the limit",
    Wall.OUTPUT_SIZE: "its output folder grew past the limit and it was stopped",
    Wall.NETWORK: "it tried to use the network; the sandbox has none",
    Wall.PROGRAM: "it tried to start another program",
    Wall.MONITOR: "it broke the sandbox's monitor pipe and was stopped",
    Wall.SYSCALL: ("it made a system call the sandbox forbids (ptrace, mount, namespaces, "
                   "keyrings, BPF, kernel modules, clocks…) and was ended"),
    Wall.SPACE: "it filled its scratch space (/tmp or /dev/shm) past the limit",
}


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 3600.0
    cpu_seconds: int = 4 * 3600
    memory_bytes: int = 8 << 30
    processes: int = 64
    file_bytes: int = 256 << 20
    output_bytes: int = 512 << 20
    tmp_bytes: int = 1 << 30
    shm_bytes: int = 256 << 20
    # the job's processes at a low CPU priority (nice 10 and no way back up, in a CPU group
    # of an eighth of a session's weight: cgroups.make): the server's requests take the
    # cores first, so a job that keeps them busy or not (on a participant's value) moves
    # anyone's response time less, and the job still runs on a busy machine. False shares
    # the cores evenly (tests whose walls are seconds, beside a busy test run)
    low_priority: bool = True


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str  # inside the sandbox
    writable: bool = False


@dataclass
class Ending:
    """How a run ended."""

    exit_code: int | None
    signal: int | None
    seconds: float
    stdout: bytes
    stderr: bytes
    walls: list[Wall] = field(default_factory=list)  # what stopped it or what it tried
    tries: list[str] = field(default_factory=list)  # the monitor's lines (event, arguments)
    memory_peak: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not any(w in STOPPING for w in self.walls)

    def reason(self) -> str:
        """Why it failed, in words (empty when it did not)."""
        if self.ok:
            return ""
        said = [REASON[w] for w in self.walls if w in STOPPING]
        if said:
            return "; ".join(said)
        if self.signal is not None:
            return f"it was ended by signal {signal.Signals(self.signal).name}"
        return f"it exited with status {self.exit_code}"


_LIVE: set[subprocess.Popen[bytes]] = set()  # the sandboxes running now, for stop_all
_LIVE_LOCK = threading.Lock()


def stop_all() -> None:
    """End every sandbox this process is running (the platform is stopping)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        _kill(process)


def unavailable() -> str | None:
    """Why jobs cannot run on this machine (None: they can)."""
    if shutil.which(BWRAP) is None:
        return ("bubblewrap is not installed; install it (apt-get install bubblewrap, or "
                "'make install') to run jobs")
    for program in ("prlimit", "setpriv"):
        if shutil.which(program, path="/usr/bin:/bin") is None:
            return (f"{program} is not installed; install util-linux (apt-get install "
                    "util-linux) to run jobs (it sets a job's limits, and ends it with the "
                    "platform)")
    return cgroups.available()


# a process's open files (the usual soft limit; the platform's own, 20,000, was inherited):
# each netlink socket's receive queue is memory no group counts (syscalls.RECEIVE_BUFFERS)
OPEN_FILES = 1024
# the kernel memory a job's group is charged for each file it holds (open, or mapped and
# closed: a mapping keeps its file open past RLIMIT_NOFILE): about 430 bytes measured, so a
# conservative 256 here
FILE_COST = 256


def shared_budgets(limits: Limits) -> list[str]:
    """What one job's limits would let it spend of a budget the whole host shares, which no
    group of the job's can hold: said at the server's start (a custodian's setting to
    change), not refused. A red team held 120,000 of the host's open files (fs.file-max)
    from two processes with four descriptors open, each file mapped a page and closed: the
    job's memory, which each such file is charged against, is the only bound, and past
    fs.file-max every unprivileged program on the host (the database's) gets ENFILE."""
    problems = []
    file_max = _sysctl("fs/file-max")
    if file_max is not None and limits.memory_bytes // FILE_COST > file_max:
        problems.append(
            f"a job's memory ({limits.memory_bytes >> 20:,} MiB) could hold "
            f"{limits.memory_bytes // FILE_COST:,} open files, and the host allows "
            f"{file_max:,} in all (fs.file-max): a job could leave none for the host's other "
            "programs. Raise it (sysctl -w fs.file-max=9223372036854775807, as systemd "
            "does) or lower jobs: memory in strongroom.yaml")
    # a socket's queue: its receive buffer, and a netlink error reply copying a whole
    # message of its send buffer's size (neither may be raised: syscalls.SOCKET_BUFFERS)
    queues = limits.processes * OPEN_FILES * ((_sysctl("net/core/rmem_default") or 0)
                                              + (_sysctl("net/core/wmem_default") or 0))
    if queues > limits.memory_bytes:
        problems.append(
            f"a job's {limits.processes} processes of {OPEN_FILES:,} sockets each could hold "
            f"{queues >> 20:,} MiB in netlink receive queues (net.core.rmem_default and "
            "wmem_default each), "
            f"memory no control group counts, above the job's own ({limits.memory_bytes >> 20:,}"
            " MiB): lower jobs: processes, or net.core.rmem_default")
    if _sysctl("debug/exception-trace") == 1:
        problems.append(
            "the kernel logs every segmentation fault with the process's name, which a job "
            "chooses (15 bytes of participant data a line, and a flood of them suppresses "
            "the host's own lines): set debug.exception-trace=0 (sysctl -w)")
    tcp = _sysctl("net/ipv4/tcp_mem", field=2)
    if (cgroups.ROOT / "cgroup.controllers").exists() and tcp is not None \
            and limits.memory_bytes > tcp * os.sysconf("SC_PAGE_SIZE") // 2:
        problems.append(
            f"cgroup v2 counts a job's TCP buffers in its memory ({limits.memory_bytes >> 20:,}"
            f" MiB), more than half the host's TCP pool (net.ipv4.tcp_mem, "
            f"{tcp * os.sysconf('SC_PAGE_SIZE') >> 20:,} MiB): a job could leave the host's "
            "sockets (the server's, the database's) none. Lower jobs: memory, or raise "
            "net.ipv4.tcp_mem")
    return problems


def _sysctl(name: str, field: int = 0) -> int | None:
    try:
        return int(Path("/proc/sys", name).read_text().split()[field])
    except (OSError, ValueError, IndexError):
        return None


def run(argv: list[str], mounts: list[Mount], *, limits: Limits, name: str,
        env: dict[str, str] | None = None, output: Path | None = None,
        cwd: str = "/job") -> Ending:
    """Run ``argv`` in a new sandbox holding only ``mounts`` (and the runtime); ``output``:
    the host folder whose size is watched (mounted among ``mounts``)."""
    problem = unavailable()
    if problem:
        raise Refused(problem)
    enter, mounts = _entered(mounts)
    monitor_r, monitor_w = os.pipe()
    if os.geteuid() == 0:  # R's monitor reopens it by /proc/self/fd (the job's user must)
        user = identity.job_user()
        os.fchown(monitor_w, user.uid, user.gid)
    filter_fd = syscalls.descriptor()
    disguises = _disguises()
    group = cgroups.make(name, memory=limits.memory_bytes, processes=limits.processes,
                         low_priority=limits.low_priority)
    try:
        guard = _guard(group)
    except BaseException:
        for fd in (monitor_r, monitor_w, filter_fd, *disguises):
            os.close(fd)
        group.stop()
        group.remove()
        raise
    binds = [*_runtime(), *_binds(mounts)]
    args = [*_held(group, limits), *enter, BWRAP, *_walls(limits, env or {}, monitor_w),
            *_parents(binds), *binds, *_sealed(limits, disguises),
            "--seccomp", str(filter_fd), "--chdir", cwd, "--", *identity.job_user().drop(),
            *argv]
    passed = (monitor_w, filter_fd, *disguises)
    started = time.monotonic()
    walls: list[Wall] = []
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=passed, start_new_session=True, env={"PATH": "/usr/bin:/bin"})
    except BaseException:
        for fd in (monitor_r, *passed):
            os.close(fd)
        _release(guard)
        group.stop()
        group.remove()
        raise
    for fd in passed:
        os.close(fd)
    with _LIVE_LOCK:
        _LIVE.add(process)
    out, err, tries = _Drain(process.stdout), _Drain(process.stderr), _Drain(monitor_r)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_output, args=(output, limits, process, walls,
                                                           stop), daemon=True)
    watcher.start()
    try:
        process.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        walls.append(Wall.TIME)
    finally:
        stop.set()
        _kill(process)
        with _LIVE_LOCK:
            _LIVE.discard(process)
        _release(guard)
        group.stop()
        usage = group.usage()
        group.remove()
        for drain in (out, err, tries):
            drain.join()
    seconds = time.monotonic() - started
    code = process.returncode
    ending = Ending(code if code is not None and code >= 0 else None,
                    -code if code is not None and code < 0 else None, seconds,
                    out.data, err.data, walls, tries.data.decode(errors="replace").splitlines(),
                    usage.memory_peak)
    _classify(ending, usage)
    return ending


def _walls(limits: Limits, env: dict[str, str], monitor: int) -> list[str]:
    if os.geteuid() == 0:
        # started by root, a user namespace would map the job to host root: none is made,
        # and the job's first step (identity.HostUser.drop) becomes its own host user, with
        # no capability left; the filter forbids the namespaces bubblewrap's flag would
        who = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
               "--unshare-cgroup-try", "--cap-drop", "ALL",
               *(arg for cap in identity.DROPPING for arg in ("--cap-add", cap))]
    else:  # unprivileged already: the sandbox's nobody is this user
        who = ["--unshare-all", "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
               "--cap-drop", "ALL", "--disable-userns"]
    args = [*who, "--die-with-parent", "--new-session", "--clearenv", "--hostname", "job"]
    values = {"HOME": "/tmp", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
              "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/.matplotlib",
              "PYTHONPATH": "/job-lib", "PYTHONDONTWRITEBYTECODE": "1",
              "STRONGROOM_MONITOR_FD": str(monitor), "OPENBLAS_NUM_THREADS": "1",
              "OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": str(os.cpu_count() or 1), **env}
    for key, value in values.items():
        args += ["--setenv", key, value]
    return [*args, "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]


def _entered(mounts: list[Mount]) -> tuple[list[str], list[Mount]]:
    """Mounts whose sources are in a vault: the prefix that starts the sandbox inside it, and
    the sources as they are named there (all must be in the same vault, or none)."""
    places = [vault.where(m.source) for m in mounts]
    held = [p for p in places if p is not None]
    if not held:
        return [], mounts
    if len(held) != len(mounts) or len({p.pid for p in held}) != 1:
        raise ValueError("a sandbox's mounts must all be in one vault, or none")
    return held[0].enter(), [Mount(Path(p.path), m.target, m.writable)
                             for p, m in zip(held, mounts, strict=True)]


def _parents(binds: list[str]) -> list[str]:
    """The folders above each bind's target, made readable first (bubblewrap run by root
    makes them 0700, which the job's own user could not pass)."""
    targets = [binds[i + 2] for i, op in enumerate(binds) if op in ("--bind", "--ro-bind")]
    made: list[str] = []
    for target in targets:
        for above in reversed(Path(target).parents[:-1]):
            path = str(above)
            if path not in made and not any(path == t or path.startswith(t.rstrip("/") + "/")
                                            for t in targets):
                made.append(path)
    return [arg for path in made for arg in ("--perms", "0755", "--dir", path)]


def _sealed(limits: Limits, disguises: dict[int, str]) -> list[str]:
    """Once everything is in place: the kernel's settings read-only, the host's identity
    hidden (:func:`_disguises`; the PCI bus's devices an empty folder), ``/dev/shm`` capped,
    and the root, ``/dev`` and ``/job-lib`` read-only (their tmpfs had no size cap), and the
    whole of ``/proc`` read-only: not a list of its writable files (``/proc/pressure``'s
    triggers were missed by one), every one of them, the job's own processes' included."""
    args = []
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq"):
        if Path(path).exists():
            args += ["--ro-bind", path, path]
    # no terminals: each is drawn from one count the host's containers share (kernel.pty.max)
    args += ["--ro-bind", "/dev/null", "/dev/pts/ptmx"]
    if Path("/proc/bus").exists():
        args += ["--tmpfs", "/proc/bus", "--remount-ro", "/proc/bus"]
    for fd, path in disguises.items():
        if Path(path).exists():
            args += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    return [*args, "--perms", "1777", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm",
            "--remount-ro", "/proc", "--remount-ro", "/dev", "--remount-ro", "/"]


def _disguises() -> dict[int, str]:
    """What a job reads in ``/proc`` of the host's identity, in place of the host's own (a
    file descriptor each, for bubblewrap to copy; the caller closes them). A red team read
    the host's boot id, its kernel's command line (the virtual machine's control addresses
    among it), its kernel build and its boot time, each equal to the host's: facts that tie
    a job's outputs to a machine and say when it was restarted. Now the boot id is drawn
    for the run, the command line is empty, the kernel's version is its release alone (which
    ``uname`` gives anyway), and the boot time, the host's CPU counters and its uptime are
    the run's start and zeros."""
    now = int(time.time())
    cpus = "".join(f"cpu{i} 0 0 0 0 0 0 0 0 0 0\n" for i in range(os.cpu_count() or 1))
    made = {"/proc/sys/kernel/random/boot_id": f"{uuid.uuid4()}\n",
            "/proc/cmdline": "\n",
            "/proc/version": f"Linux version {os.uname().release}\n",
            "/proc/stat": (f"cpu  0 0 0 0 0 0 0 0 0 0\n{cpus}intr 0\nctxt 0\nbtime {now}\n"
                           "processes 0\nprocs_running 1\nprocs_blocked 0\nsoftirq 0\n"),
            "/proc/uptime": "0.00 0.00\n"}
    disguises: dict[int, str] = {}
    for path, text in made.items():
        fd = os.memfd_create("strongroom-proc")
        disguises[fd] = path
        os.write(fd, text.encode())
        os.lseek(fd, 0, os.SEEK_SET)
    return disguises


def _runtime() -> list[str]:
    """The operating system's programs and libraries (R and its packages among them, in
    ``/usr``), R's settings and the Python environment, read-only."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.exists():
            args += ["--ro-bind", top, top]
    if Path("/etc/fonts").is_dir():  # fontconfig's settings, for figures' text
        args += ["--ro-bind", "/etc/fonts", "/etc/fonts"]
    if R_SETTINGS.is_dir():  # R's settings (/usr/lib/R/etc links there); R itself is in /usr
        args += ["--ro-bind", str(R_SETTINGS), str(R_SETTINGS)]
    if ALTERNATIVES.is_dir():
        args += ["--ro-bind", str(ALTERNATIVES), str(ALTERNATIVES)]
    for prefix in sorted({sys.base_prefix, sys.prefix}):
        if not prefix.startswith("/usr/"):
            args += ["--ro-bind", prefix, prefix]
    # the in-job library and the monitor, and nothing else of Strongroom
    args += ["--dir", "/job-lib/strongroom", "--ro-bind", str(HOOK), "/job-lib/sitecustomize.py",
             "--ro-bind", str(SDC), "/job-lib/strongroom/sdc.py",
             "--ro-bind", str(NOTEBOOK), "/job-lib/strongroom_notebook.py",
             "--ro-bind", str(R_LIBRARY), "/job-lib/strongroom.R",
             "--ro-bind", str(R_KNIT), "/job-lib/strongroom_knit.R",
             "--ro-bind", "/dev/null", "/job-lib/strongroom/__init__.py"]
    return args


def _binds(mounts: list[Mount]) -> list[str]:
    args: list[str] = []
    for m in mounts:
        args += ["--bind" if m.writable else "--ro-bind", str(m.source), m.target]
    return args


# a shell that puts itself in the job's groups (each path in turn, up to "--"), then runs
# the rest: exec keeps its process, so all that follows is in the groups from its start
# (one it cannot join ends the run with status 125 before bubblewrap starts)
JOIN = ('[ "$PPID" = "$1" ] || exit 125; shift; '
        'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"')


# The guard: stays out of the job's groups, armed to hear of the platform's death (TERM),
# and then kills whatever is in them until they are empty; it checks first that the platform
# is still its parent (a death before the signal was armed is missed otherwise)
GUARD = ('P=$1; shift; '
         'empty() { for i in $(seq 200); do n=0; for f in "$@"; do for p in $(cat "$f"); do '
         'kill -9 "$p" 2>/dev/null; n=1; done; done; [ $n = 0 ] && return; sleep 0.02; done; }; '
         'trap \'kill $! 2>/dev/null; empty "$@"; exit 0\' TERM; '
         '[ "$PPID" = "$P" ] || { empty "$@"; exit 0; }; echo armed; '
         'while :; do sleep 3600 & wait $!; done')


def _guard(group: cgroups.Group) -> subprocess.Popen[bytes]:
    """A process that empties the job's groups if the platform dies while the job runs.
    Each step of the sandbox's start dies with its parent, but not at once: bubblewrap's own
    inner process arms its parent-death signal a moment after it is made, and a platform
    killed in that moment left the job running, its decrypted inputs readable, until the
    next start (a red team's, 10 of 18 kills between 9 and 60 ms)."""
    argv = ["setpriv", "--pdeathsig=TERM", "/bin/sh", "-c", GUARD, "guard", str(os.getpid()),
            *(str(d / "cgroup.procs") for d in group.dirs)]
    guard = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, env={"PATH": "/usr/bin:/bin"})
    assert guard.stdout is not None
    if guard.stdout.readline() != b"armed\n":
        _release(guard)
        raise OSError("the job's guard could not be started")
    return guard


def _release(guard: subprocess.Popen[bytes]) -> None:
    """The run is over, and the platform empties the groups itself: the guard goes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(guard.pid, signal.SIGKILL)
    guard.wait()
    if guard.stdout is not None:
        guard.stdout.close()


def _held(group: cgroups.Group, limits: Limits) -> list[str]:
    """The prefix that starts the sandbox in the job's groups and under its rlimits: the
    shell joins the groups, then prlimit sets the limits and execs the rest, before
    bubblewrap starts. (A ``preexec_fn`` in Python did this, but it made every run fork the
    whole platform: some 30 ms of its CPU and the copy's page faults, per run.)"""
    # core 1, not 0: the kernel ignores a core limit of 0 when cores go to a program (a
    # pipe in core_pattern), and would hand the job's memory to a root helper on the host;
    # a limit of 1 it refuses outright
    # RLIMIT_NICE 0: no process of the job may raise its priority again
    lowered = ["nice", "-n", str(JOB_NICE)] if limits.low_priority else []
    # the platform's death kills the chain from its first step (setpriv arms it, and every
    # exec keeps it), and the shell then checks the platform is still its parent: a platform
    # killed in the milliseconds before bubblewrap armed its own left a job running, its
    # decrypted inputs with it (a red team's, 10 of 18 kills between 9 and 60 ms)
    return ["setpriv", "--pdeathsig=KILL", "/bin/sh", "-c", JOIN, "sh", str(os.getpid()),
            *(str(d / "cgroup.procs") for d in group.dirs), "--",
            "prlimit", f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",
            f"--fsize={limits.file_bytes}:{limits.file_bytes}", "--core=1:1", "--nice=0:0",
            f"--nofile={OPEN_FILES}:{OPEN_FILES}",
            "--", *lowered]


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping the first ``LOG_BYTES``."""

    def __init__(self, pipe: object) -> None:
        super().__init__(daemon=True)
        self.fd = pipe if isinstance(pipe, int) else pipe.fileno()  # type: ignore[attr-defined]
        self.pipe = pipe
        self.data = b""
        self.start()

    def run(self) -> None:
        kept = bytearray()
        cut = False
        while chunk := os.read(self.fd, 65536):
            room = LOG_BYTES - len(kept)
            kept += chunk[:max(room, 0)]
            cut = cut or len(chunk) > room
        self.data = bytes(kept) + (b"\n[cut: more than 1 MiB]\n" if cut else b"")
        if isinstance(self.pipe, int):
            os.close(self.pipe)
        else:
            self.pipe.close()  # type: ignore[attr-defined]


def _watch_output(output: Path | None, limits: Limits, process: subprocess.Popen[bytes],
                  walls: list[Wall], stop: threading.Event) -> None:
    while output is not None and not stop.wait(0.2):
        if folder_size(output) > limits.output_bytes:
            walls.append(Wall.OUTPUT_SIZE)
            _kill(process)
            return


def folder_size(folder: Path, most_entries: int = 100_000) -> int:
    """The bytes under ``folder`` (any depth: no recursion); a folder of more than
    ``most_entries`` entries counts as endless. Each folder is opened from the one above it
    without following links: a job that swaps a folder for a link to a host folder while
    this runs would otherwise have root walk the host folder and tell it the size."""
    total, entries = 0, 0
    try:
        stack = [os.open(folder, os.O_RDONLY | os.O_DIRECTORY)]
    except OSError:
        return 0
    while stack:
        at = stack.pop()
        try:
            with os.scandir(at) as found:
                for entry in found:
                    entries += 1
                    if entries > most_entries:
                        for fd in stack:
                            os.close(fd)
                        return 1 << 62
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY
                                                 | os.O_NOFOLLOW, dir_fd=at))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError as error:  # a link swapped in, or gone: not counted
                        if error.errno in (errno.EMFILE, errno.ENFILE):
                            raise  # more folders than can be held open: endless
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                for fd in stack:
                    os.close(fd)
                return 1 << 62
        finally:
            os.close(at)
    return total


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


_STDERR_WALLS = ((b"MemoryError", Wall.MEMORY), (b"Cannot allocate memory", Wall.MEMORY),
                 (b"cannot allocate vector of size", Wall.MEMORY),  # R's
                 (b"Resource temporarily unavailable", Wall.PROCESSES),
                 (b"File too large", Wall.FILE_SIZE),
                 (b"No space left on device", Wall.SPACE))


def _classify(ending: Ending, usage: cgroups.Usage) -> None:
    """What stopped the run, and what it tried, from the kernel's counters, the signals, the
    monitor's lines and (for what only the job's own errors show) its stderr."""
    walls = ending.walls
    if usage.memory_limited:
        walls.append(Wall.MEMORY)
    if usage.processes_limited:
        walls.append(Wall.PROCESSES)
    if not walls and (ending.signal == signal.SIGXCPU or (
            ending.signal == signal.SIGKILL and ending.seconds >= 1.0)):
        walls.append(Wall.CPU)  # the kernel's CPU limit (SIGKILL past the hard one)
    if ending.signal == signal.SIGXFSZ or ending.exit_code == SIGXFSZ_EXIT:
        walls.append(Wall.FILE_SIZE)
    if ending.exit_code == SIGXCPU_EXIT and Wall.CPU not in walls:
        walls.append(Wall.CPU)
    if ending.exit_code == 86:
        walls.append(Wall.MONITOR)
    if ending.exit_code == SIGSYS_EXIT:
        walls.append(Wall.SYSCALL)
    if not ending.ok or ending.exit_code != 0:
        for needle, wall in _STDERR_WALLS:
            if needle in ending.stderr[-65536:] and not (
                    wall is Wall.SPACE and Wall.OUTPUT_SIZE in walls):
                walls.append(wall)
    for line in ending.tries:  # the job writes these: they name tries, never a stop
        kind = line.split("\t", 1)[0]
        if kind in {w.value for w in TRIED}:
            walls.append(Wall(kind))
    ending.walls = list(dict.fromkeys(walls))

