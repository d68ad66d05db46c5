"""Where OpenDP runs: its own Python environment, and a small pool of worker processes.

OpenDP's Polars API accepts plans only from the exact Polars release it was built with, so it
cannot share Strongroom's environment (see :mod:`strongroom.privacy.dp_engine`). The engine's
environment is made once by ``strongroom dp setup`` (a virtual environment with
:data:`REQUIREMENT`, beside the main one by default); ``STRONGROOM_DP_PYTHON`` names another
interpreter (one whose Polars matches OpenDP's, even the main one).

Workers are forked by one fork server per pool, which imports Polars and OpenDP once (about
two seconds) as the first is asked for; a worker is then ready in milliseconds, sharing the
imported pages. They are started by :meth:`EnginePool.warm` (the plan engine as the server
starts, a project's release engine before its query's charge), so a query costs its own work.
Each project's releases run on :data:`WORKERS` of their own, stopped after
:data:`IDLE_SECONDS` unasked (``STRONGROOM_DP_IDLE_SECONDS``); every project's plans on one
engine (see :class:`EnginePool`). Prepared columns travel over the worker's stdin as Arrow
IPC and are never written to disk. A worker that dies or overruns its time limit is killed and
replaced; its query fails (``Unavailable``).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import polars as pl

from strongroom.errors import Unavailable
from strongroom.privacy.dp_engine import READY, WORKER_PID

REQUIREMENT = "opendp[polars]==0.16.0"  # pins polars==1.36.1 itself; kept apart for that
ENV_PYTHON = "STRONGROOM_DP_PYTHON"
ENV_IDLE = "STRONGROOM_DP_IDLE_SECONDS"
ENGINE_FILE = Path(__file__).with_name("dp_engine.py")
WORKERS = 1  # concurrent DP releases per project
IDLE_SECONDS = 600.0  # a project's release engines stop after this long unasked
PLAN_WORKERS = 1  # plans read no rows and take milliseconds: one small engine of their own
TIMEOUT_SECONDS = 300.0
START_SECONDS = 120.0  # for a fork server's imports (about a second; more on a busy machine)
FORK_SECONDS = 10.0  # for one fork (milliseconds): past it, the fork server is started again
_HEAD = struct.Struct(">I")
_BODY = struct.Struct(">Q")


def default_environment() -> Path:
    """The engine's environment when none is named: inside the running environment."""
    return Path(sys.prefix) / "opendp-engine"


def engine_python() -> Path:
    named = os.environ.get(ENV_PYTHON)
    if named:
        return Path(named)
    return default_environment() / "bin" / "python"


def setup_command(environment: Path) -> list[list[str]]:
    """The commands that make the engine's environment (``strongroom dp setup`` runs them):
    with uv where the running environment has it (`make install` puts it there; it installs
    in seconds what pip takes a minute over), else with pip."""
    python = environment / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"
    # compiled as installed (pip's default): each engine process starts without compiling
    install = ([str(uv), "pip", "install", "--quiet", "--compile-bytecode", "--python",
                str(python), REQUIREMENT]
               if uv.is_file() else [str(python), "-m", "pip", "install", "--quiet", REQUIREMENT])
    return [[sys.executable, "-m", "venv", str(environment)], install]


def idle_seconds() -> float:
    """How long a project's release engine is kept unasked: ``STRONGROOM_DP_IDLE_SECONDS``,
    or :data:`IDLE_SECONDS` (each costs about 20 MB of its own while it lives)."""
    named = os.environ.get(ENV_IDLE)
    try:
        return float(named) if named else IDLE_SECONDS
    except ValueError:
        raise ValueError(f"{ENV_IDLE} must be a number of seconds, not {named!r}") from None


def missing_reason(python: Path) -> str:
    return (f"the differential-privacy engine is not installed ({python} does not exist); "
            f"the operator runs `strongroom dp setup` once (or sets {ENV_PYTHON} to a Python "
            f"that has {REQUIREMENT})")


class _Worker:
    """One engine process, forked by the fork server (so not our child: it is known by a
    pidfd, which names it whatever its pid becomes); one request at a time. Stopping it is
    safe to repeat and to race (a pool closing while a failed call retires it): the pidfd is
    closed once, and nothing is signalled through it after (its number may be another's)."""

    def __init__(self, pid: int, pidfd: int, requests: int, answers: int):
        self.pid = pid
        self._pidfd = pidfd
        self.stdin: IO[bytes] = open(requests, "wb")  # noqa: SIM115 (closed by stop)
        self.stdout: IO[bytes] = open(answers, "rb")  # noqa: SIM115 (closed by stop)
        self._lock = threading.Lock()  # the pidfd's: held to signal through it or close it

    def call(self, header: dict[str, Any], payload: bytes, timeout: float) -> dict[str, Any]:
        head = json.dumps(header).encode()
        watchdog = threading.Timer(timeout, self.kill)  # a hung worker cannot hang us
        watchdog.start()
        try:
            self.stdin.write(_HEAD.pack(len(head)) + head + _BODY.pack(len(payload)))
            self.stdin.write(payload)
            self.stdin.flush()
            size = _HEAD.unpack(_read(self.stdout, _HEAD.size))[0]
            answer: dict[str, Any] = json.loads(_read(self.stdout, size))
            return answer
        finally:
            watchdog.cancel()

    def alive(self) -> bool:
        with self._lock:
            return self._pidfd >= 0 and not _ended(self._pidfd, 0)

    def kill(self) -> None:
        with self._lock, contextlib.suppress(OSError):  # ended already
            if self._pidfd >= 0:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def wait(self, timeout: float) -> None:
        """Until the process has ended; ``TimeoutError`` past ``timeout`` seconds."""
        with self._lock:
            pidfd = os.dup(self._pidfd) if self._pidfd >= 0 else -1
        if pidfd < 0:
            return  # stopped: it has ended
        try:
            if not _ended(pidfd, timeout):
                raise TimeoutError(f"engine process {self.pid} still runs")
        finally:
            os.close(pidfd)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # it may have gone already
            self.stdin.close()  # the worker ends when its input ends
        try:
            self.wait(5)
        except TimeoutError:
            self.kill()
            with contextlib.suppress(TimeoutError):
                self.wait(30)
        with self._lock:
            pidfd, self._pidfd = self._pidfd, -1
            if pidfd >= 0:
                os.close(pidfd)
        self.stdout.close()


def _ended(pidfd: int, timeout: float) -> bool:
    """Whether the process of ``pidfd`` has ended, waiting up to ``timeout`` seconds."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)  # readable once it has exited
    return bool(poller.poll(int(timeout * 1000)))


class _ForkServer:
    """The engine's interpreter with Polars and OpenDP imported once, forking each worker
    (milliseconds, the imported pages shared) rather than each worker importing them
    (about 1.4 CPU-s and 120 MB of its own each: a server with dozens of projects' engines,
    or a test run that makes hundreds of projects; benchmarks/dp_engine_start.py). Started
    on first use, again where it has died; every call waits for the one before (a fork
    takes milliseconds)."""

    def __init__(self, python: Path):
        self.python = python
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._closed = False

    def start_worker(self) -> _Worker:
        """A new worker, Polars and OpenDP imported; ``OSError`` if none can be had."""
        with self._lock:
            for _ in range(2):  # a server that had died is started once more
                if self._closed:
                    raise OSError("the engine pool is closed")
                worker = self._fork(self._server())
                if worker is not None:
                    return worker
                self._stop_server(kill=True)
            raise OSError("the differential-privacy engine could not start a worker")

    def _server(self) -> socket.socket:
        if self._control is None or self._process is None or self._process.poll() is not None:
            self._stop_server()
            try:
                self._control = self._started()
            except BaseException:
                self._stop_server(kill=True)
                raise
        return self._control

    def _started(self) -> socket.socket:
        """A new fork server's end of its socket, once it has imported Polars and OpenDP
        (its first word); ``OSError`` if it did not within :data:`START_SECONDS`."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:  # BLAS kept to one thread: no thread pool of its own forked over
                self._process = subprocess.Popen(  # noqa: S603 (our interpreter, our file)
                    [str(self.python), "-I", str(ENGINE_FILE), "--fork-server"],
                    stdin=theirs.fileno(), stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, close_fds=True,
                    env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
            finally:
                theirs.close()
            ours.settimeout(START_SECONDS)
            if ours.recv(1) != READY:
                raise OSError("the fork server ended before its imports were done")
        except BaseException:
            ours.close()
            raise
        # a fork takes milliseconds: a server that does not answer one soon has gone wrong,
        # and is killed and started again, not waited for while other projects queue
        ours.settimeout(FORK_SECONDS)
        return ours

    def _fork(self, control: socket.socket) -> _Worker | None:
        requests = os.pipe()
        answers = os.pipe()
        try:
            socket.send_fds(control, [b"fork"], [requests[0], answers[1]])
            message, fds, _, _ = socket.recv_fds(control, WORKER_PID.size, 1,
                                                 socket.MSG_CMSG_CLOEXEC)
        except OSError:  # it died (or hung past the time limit)
            message, fds = b"", []
        finally:
            os.close(requests[0])  # the worker's ends, now its own
            os.close(answers[1])
        pid = WORKER_PID.unpack(message)[0] if len(message) == WORKER_PID.size else 0
        if pid and len(fds) == 1:
            return _Worker(pid, fds[0], requests[1], answers[0])
        for fd in (*fds, requests[1], answers[0]):
            os.close(fd)
        return None

    def _stop_server(self, kill: bool = False) -> None:
        """Stop the fork server: at once (``kill``: it failed to answer), or when its
        socket ends (it returns at end of input)."""
        control, process = self._control, self._process
        self._control = self._process = None
        if control is not None:
            control.close()
        if process is not None:
            if kill:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_server()


def _read(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError("the engine process ended")
        data += more
    return data


@dataclass
class EngineError(Exception):
    """The engine answered that the query failed: its kind and, for plans only, why."""

    kind: str
    message: str


class _Slots:
    """Up to ``size`` workers forked by one fork server, each started when warmed or on first use;
    callers wait for a free one. Every slot taken goes back, whatever fails (a start the
    system refuses, a worker that dies): a lost slot would hang every later caller."""

    def __init__(self, forks: _ForkServer, size: int):
        self.forks = forks
        self.size = size
        self._free: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(size):
            self._free.put(None)  # a slot; its worker starts on first use
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.leases = 0  # callers between looking these slots up and being done (the pool's)

    def call(self, header: dict[str, Any], payload: bytes, timeout: float) -> dict[str, Any]:
        worker = self._free.get()
        answered = False
        try:
            if worker is not None and not worker.alive():
                self._retire(worker)  # it died between requests
                worker = None
            if worker is None:
                worker = self._start()
            answer = worker.call(header, payload, timeout)
            answered = True
        except (OSError, EOFError, ValueError) as exc:
            raise Unavailable("the differential-privacy engine stopped while answering; "
                              "try again, and tell the custodian's team if it recurs") from exc
        finally:
            if answered:
                self._free.put(worker)
            else:  # its stream may be mid-message: never reuse it
                self._retire(worker)
                try:
                    threading.Thread(target=self._replace, name="dp-replace",
                                     daemon=True).start()
                except RuntimeError:  # no thread to be had: the next call starts it
                    self._free.put(None)
        return answer

    def _replace(self) -> None:
        """A fresh worker in a failed one's slot, started now rather than by whoever asks
        next: a release that failed (its time limit, its memory) failed on its data, and
        the next query must not pay for the start."""
        self._free.put(self._ready(self._start_or_none()))

    def _ready(self, worker: _Worker | None) -> _Worker | None:
        """The worker once it has imported OpenDP, or None (retired) if it could not."""
        if worker is None:
            return None
        try:
            worker.call({"op": "ping"}, b"", TIMEOUT_SECONDS)
        except (OSError, EOFError, ValueError):
            self._retire(worker)  # the next call starts another, and says why if it fails
            return None
        return worker

    def warm(self) -> None:
        """Start every slot's worker that has not started, and wait until each answers,
        waiting for no busy one: a slot taken is started already (its holder started it),
        and only an empty one is held, while its worker starts, which whoever took it next
        would have done. A start that fails leaves its slot empty, for the next call."""
        taken: list[_Worker | None] = []
        with contextlib.suppress(queue.Empty):
            while True:
                taken.append(self._free.get_nowait())
        cold: list[_Worker | None] = []
        for worker in taken:
            if worker is not None and worker.alive():
                self._free.put(worker)
            else:
                self._retire(worker)
                cold.append(self._start_or_none())  # all at once: each imports on its own
        for worker in cold:
            self._free.put(self._ready(worker))

    def idle(self) -> bool:
        """Nobody holds or is about to use these slots (every slot is back, no lease)."""
        return self.leases == 0 and self._free.qsize() == self.size

    def _start_or_none(self) -> _Worker | None:
        try:
            return self._start()
        except OSError:  # the system refused a process (EAGAIN, ENOMEM): the slot stays
            return None

    def _start(self) -> _Worker:
        worker = self.forks.start_worker()
        with self._lock:
            if not self._closed:
                self._all.append(worker)
                return worker
        worker.stop()  # closed meanwhile: nothing may outlive close()
        raise OSError("the engine pool is closed")

    def _retire(self, worker: _Worker | None) -> None:
        if worker is None:
            return
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


class EnginePool:
    """OpenDP's workers over one interpreter: ``size`` for each project's releases, and
    :data:`PLAN_WORKERS` for every project's plans. A release's time is its data's, so a
    release waits only for its own project's (a wait for another project's, taken after the
    charge, put that project's release time into this answer's step and ration: a red team,
    8 of 8, tests/integration/test_redteam_shared_state_3.py). A plan is built before
    anything is charged and reads no rows (its frame must be empty), so the plan engine's
    queue holds only work whose time is its query's (test_redteam_shared_state.py). A
    project's engines are stopped once idle for :data:`IDLE_SECONDS`, by a reaper of their
    own, never in another request's time."""

    def __init__(self, python: Path, size: int = WORKERS, timeout: float = TIMEOUT_SECONDS,
                 idle: float = IDLE_SECONDS):
        self.python = python
        self.timeout = timeout
        self.size = size
        self.idle = idle
        self._releases: dict[str, _Slots] = {}  # each project's
        self._used: dict[str, float] = {}  # when each project last asked (monotonic)
        self._lock = threading.Lock()
        self._forks = _ForkServer(python)
        self._plans = _Slots(self._forks, PLAN_WORKERS)
        self._reaper: threading.Thread | None = None

    def available(self) -> bool:
        return self.python.exists()

    def call(self, header: dict[str, Any], frame: pl.DataFrame, owner: str = ""
             ) -> dict[str, Any]:
        """Run one request (a release on ``owner``'s engines: its project's); raises
        :class:`EngineError` if the engine says it failed."""
        if not self.available():
            raise Unavailable(missing_reason(self.python))
        release = header.get("op") == "release"
        if not release and frame.height:
            raise ValueError("only a release reads rows: the plan engine is for work whose "
                             "time is its query's alone")
        if release:
            with self._leased(owner) as slots:
                answer = slots.call(header, _ipc(frame), self.timeout)
        else:
            answer = self._plans.call(header, _ipc(frame), self.timeout)
        if not answer.get("ok"):
            raise EngineError(str(answer.get("error", "")), str(answer.get("message", "")))
        return answer

    def warm(self, owner: str | None = None) -> None:
        """Start the plan engine, and (``owner``) that project's release engines, where not
        started yet (milliseconds each, forked; the fork server's own start, about a second,
        falls to the first). A release's step is timed from its charge, so an engine started
        there would spend its floor: the server warms the plan engine as it starts, and a
        query warms its project's engines before its charge."""
        if self.available():
            self._plans.warm()
            if owner is not None:
                with self._leased(owner) as slots:
                    slots.warm()

    @contextlib.contextmanager
    def _leased(self, owner: str) -> Iterator[_Slots]:
        """``owner``'s release slots, held from the reaper while in use; its idle time
        counts from when the use ends."""
        with self._lock:
            slots = self._releases.get(owner)
            if slots is None:
                slots = self._releases[owner] = _Slots(self._forks, self.size)
            slots.leases += 1
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="dp-reaper",
                                                daemon=True)
                self._reaper.start()
        try:
            yield slots
        finally:
            with self._lock:
                slots.leases -= 1
                self._used[owner] = time.monotonic()

    def _reap(self) -> None:
        """Stop the engines of projects idle for ``idle`` seconds, all their workers free."""
        while True:
            time.sleep(max(1.0, self.idle / 4))
            now = time.monotonic()
            with self._lock:
                idle = [o for o, s in self._releases.items()
                        if o in self._used and now - self._used[o] > self.idle and s.idle()]
                gone = [self._releases.pop(o) for o in idle]
                for owner in idle:
                    self._used.pop(owner, None)
            for slots in gone:
                slots.close()

    def close(self) -> None:
        with self._lock:
            every = [*self._releases.values(), self._plans]
            self._releases.clear()
        for slots in every:
            slots.close()
        self._forks.close()


def _ipc(frame: pl.DataFrame) -> bytes:
    """Arrow IPC in the oldest layout Polars writes: the engine's Polars may be older."""
    sink = io.BytesIO()
    frame.write_ipc_stream(sink, compat_level=pl.CompatLevel.oldest())
    return sink.getvalue()


_POOLS: dict[Path, EnginePool] = {}
_POOLS_LOCK = threading.Lock()


def engine() -> EnginePool:
    """The process's pool for the configured interpreter (engines are stateless: shared)."""
    python = engine_python()
    with _POOLS_LOCK:
        pool = _POOLS.get(python)
        if pool is None:
            pool = _POOLS[python] = EnginePool(python, idle=idle_seconds())
        return pool


@atexit.register
def _close_all() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
    for pool in pools:
        pool.close()
