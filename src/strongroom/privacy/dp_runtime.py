"""Where OpenDP runs: its own Python environment, and a small pool of worker processes.

OpenDP's Polars API accepts plans only from the exact Polars release it was built with, so it
cannot share Strongroom's environment (see :mod:`strongroom.privacy.dp_engine`). The engine's
environment is made once by ``strongroom dp setup`` (a virtual environment with
:data:`REQUIREMENT`, beside the main one by default); ``STRONGROOM_DP_PYTHON`` names another
interpreter (one whose Polars matches OpenDP's, even the main one).

Workers are started by :meth:`EnginePool.warm` (as the server starts, and before a query's
charge) and live as long as the process: starting one costs about two seconds (importing
Polars and OpenDP), a query then costs its own work. Releases run on
:data:`WORKERS` of them; plans on one of their own (see :class:`EnginePool`). Prepared columns
travel over the worker's stdin as Arrow IPC and are never written to disk. A worker that dies
or overruns its time limit is killed and replaced; its query fails (``Unavailable``).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import queue
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import polars as pl

from strongroom.errors import Unavailable

REQUIREMENT = "opendp[polars]==0.16.0"  # pins polars==1.36.1 itself; kept apart for that
ENV_PYTHON = "STRONGROOM_DP_PYTHON"
ENGINE_FILE = Path(__file__).with_name("dp_engine.py")
WORKERS = 2  # concurrent DP releases per server process
PLAN_WORKERS = 1  # plans read no rows and take milliseconds: one small engine of their own
TIMEOUT_SECONDS = 300.0
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


def missing_reason(python: Path) -> str:
    return (f"the differential-privacy engine is not installed ({python} does not exist); "
            f"the operator runs `strongroom dp setup` once (or sets {ENV_PYTHON} to a Python "
            f"that has {REQUIREMENT})")


class _Worker:
    """One engine process; one request at a time."""

    def __init__(self, python: Path):
        self.process = subprocess.Popen(  # noqa: S603 (our interpreter, our file)
            [str(python), "-I", str(ENGINE_FILE)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)

    def call(self, header: dict[str, Any], payload: bytes, timeout: float) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        head = json.dumps(header).encode()
        watchdog = threading.Timer(timeout, self.process.kill)  # a hung worker cannot hang us
        watchdog.start()
        try:
            stdin.write(_HEAD.pack(len(head)) + head + _BODY.pack(len(payload)))
            stdin.write(payload)
            stdin.flush()
            size = _HEAD.unpack(_read(stdout, _HEAD.size))[0]
            answer: dict[str, Any] = json.loads(_read(stdout, size))
            return answer
        finally:
            watchdog.cancel()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # it may have gone already
                self.process.stdin.close()  # the worker ends when its input ends
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


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
    """Up to ``size`` workers over one interpreter, each started when warmed or on first use;
    callers wait for a free one."""

    def __init__(self, python: Path, size: int):
        self.python = python
        self._free: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(size):
            self._free.put(None)  # a slot; its worker starts on first use
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

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
                threading.Thread(target=self._replace, name="dp-replace", daemon=True).start()
        return answer

    def _replace(self) -> None:
        """A fresh worker in a failed one's slot, started now rather than by whoever asks
        next: a release that failed (its time limit, its memory) failed on its data, and
        the next query, any project's, must not pay for the start."""
        try:
            worker = self._start()
        except OSError:
            self._free.put(None)  # the slot stays: the next call tries, and says why
            return
        self._free.put(self._ready(worker))

    def _ready(self, worker: _Worker) -> _Worker | None:
        """The worker once it has imported OpenDP, or None (retired) if it could not."""
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
        would have done."""
        taken: list[_Worker | None] = []
        with contextlib.suppress(queue.Empty):
            while True:
                taken.append(self._free.get_nowait())
        cold = []
        for worker in taken:
            if worker is not None and worker.alive():
                self._free.put(worker)
            else:
                self._retire(worker)
                cold.append(self._start())  # all at once: each imports on its own
        for worker in cold:
            self._free.put(self._ready(worker))

    def _start(self) -> _Worker:
        worker = _Worker(self.python)
        with self._lock:
            self._all.append(worker)
        return worker

    def _retire(self, worker: _Worker | None) -> None:
        if worker is None:
            return
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.stop()

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


class EnginePool:
    """OpenDP's workers over one interpreter, shared by every project: ``size`` for releases
    and :data:`PLAN_WORKERS` for plans, apart. A plan is built before anything is charged, so
    it never waits behind a release: a release's time is its data's (another project's, as
    often as not), and a free request's wait for one would time it. Only a release reads rows
    (a plan's frame must be empty), so the plan engine's queue holds only work whose time is
    its query's (tests/integration/test_redteam_shared_state.py)."""

    def __init__(self, python: Path, size: int = WORKERS, timeout: float = TIMEOUT_SECONDS):
        self.python = python
        self.timeout = timeout
        self._releases = _Slots(python, size)
        self._plans = _Slots(python, PLAN_WORKERS)

    def available(self) -> bool:
        return self.python.exists()

    def call(self, header: dict[str, Any], frame: pl.DataFrame) -> dict[str, Any]:
        """Run one request; :class:`EngineError` if the engine says it failed."""
        if not self.available():
            raise Unavailable(missing_reason(self.python))
        release = header.get("op") == "release"
        if not release and frame.height:
            raise ValueError("only a release reads rows: the plan engine is for work whose "
                             "time is its query's alone")
        slots = self._releases if release else self._plans
        answer = slots.call(header, _ipc(frame), self.timeout)
        if not answer.get("ok"):
            raise EngineError(str(answer.get("error", "")), str(answer.get("message", "")))
        return answer

    def warm(self) -> None:
        """Start every engine not started yet (about two seconds each, at once). A release's
        step is timed from its charge, so a cold engine started there would spend its
        floor; and whether one is cold says whether anyone, any project, asked since the
        server started. The server warms its engines as it starts; a query warms them again
        before its charge, for one that died."""
        if self.available():
            self._plans.warm()
            self._releases.warm()

    def close(self) -> None:
        self._releases.close()
        self._plans.close()


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
            pool = _POOLS[python] = EnginePool(python)
        return pool


@atexit.register
def _close_all() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
    for pool in pools:
        pool.close()
