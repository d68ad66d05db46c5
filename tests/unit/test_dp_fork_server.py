"""The DP engines' fork server (privacy/dp_runtime.py ``_ForkServer``, dp_engine.py
``fork_server``) under failure: a server that hangs or dies, stops that race, descriptors,
zombies, threads forked over, a closed pool, and noise that stays each worker's own.

From a review of the commit that brought it (helper-90): the first two tests failed on it (a
wedged server held every project's engine start for 300 s; two stops at once closed one
pidfd twice), the rest held and are kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from strongroom.errors import Unavailable
from strongroom.privacy import dp_runtime
from strongroom.privacy.dp_runtime import EnginePool, engine


@pytest.fixture(scope="module")
def python() -> Path:
    found = engine()
    if not found.available():
        pytest.skip("no DP engine environment")
    return found.python


def _fds(pid: int) -> dict[int, str]:
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return found


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of each process whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def _threads(pid: int) -> list[str]:
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as comm:
            names.append(comm.read().strip())
    return sorted(names)


# -- a wedged fork server stalls no project's engine start for long ----------------------

def test_a_wedged_fork_server_stalls_no_other_projects_engine_start(
        python: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork server that stops answering (stopped, frozen) is given FORK_SECONDS for a
    fork (milliseconds), then killed and started again: another project's engine start
    waits seconds behind it, not the 300 s of the request time limit (as it did, the lock
    held throughout)."""
    monkeypatch.setattr(dp_runtime, "FORK_SECONDS", 3.0)  # the limit, not its figure, tested
    fresh = EnginePool(python)
    stalled: Any = None
    threads: list[threading.Thread] = []
    took: dict[str, float] = {}

    def warm(owner: str) -> None:
        started = time.monotonic()
        fresh.warm(owner)
        took[owner] = time.monotonic() - started

    try:
        fresh.warm()  # the fork server up, the plan engine forked
        stalled = fresh._forks._process
        assert stalled is not None
        os.kill(stalled.pid, signal.SIGSTOP)  # wedged: alive, answering nothing
        threads = [threading.Thread(target=warm, args=(o,), daemon=True)
                   for o in ("prj_a", "prj_b")]
        threads[0].start()
        time.sleep(0.5)
        threads[1].start()  # another project's first query, before its charge
        threads[1].join(30)
        assert not threads[1].is_alive(), (
            "prj_b's engine start waited over 30 s on prj_a's request to a wedged fork server")
        threads[0].join(30)
        assert set(took) == {"prj_a", "prj_b"}
        assert stalled.poll() is not None  # killed, and another started
        assert all(w.alive() for s in fresh._releases.values() for w in s._all)
    finally:
        if stalled is not None and stalled.poll() is None:
            os.kill(stalled.pid, signal.SIGCONT)
        for thread in threads:
            thread.join(60)
        fresh.close()


# -- stop() is safe to race: the pidfd is closed once ------------------------------------

def test_two_stops_at_once_close_the_pidfd_once(python: Path) -> None:
    """Two stops at once (the pool's close() at shutdown and a failing call's retirement)
    close the worker's pidfd once: a second close raised EBADF out of ``_Slots.close()``
    (the rest of its workers left running) or, the number reused meanwhile, closed
    another's descriptor."""
    fresh = EnginePool(python)
    errors: list[BaseException] = []
    try:
        fresh.warm("prj_a")
        worker, = fresh._releases["prj_a"]._all
        os.kill(worker.pid, signal.SIGSTOP)  # busy: it will not end on EOF at once

        def stop() -> None:
            try:
                worker.stop()
            except BaseException as exc:
                errors.append(exc)

        stops = [threading.Thread(target=stop) for _ in range(2)]
        for thread in stops:
            thread.start()
        for thread in stops:
            thread.join(60)
        assert errors == [], f"a second stop() failed: {errors!r}"
    finally:
        fresh.close()


# -- what held in the review --------------------------------------------------------------

def test_no_descriptor_leaks_over_many_starts_stops_and_failures(python: Path) -> None:
    """After 12 projects' engines, workers killed, a watchdog kill, the fork server
    killed and restarted, and close(): the parent is back to its own descriptors, the fork
    server holds only its socket and /dev/null, each worker only its two pipe ends and
    /dev/null (none of another worker's), and no zombie stays under the fork server."""
    me = os.getpid()
    fresh = EnginePool(python, size=2)
    ours: set[str] = set()  # the pool's pipes and socket, by inode (numbers are reused)
    try:
        fresh.warm()
        for i in range(12):
            fresh.warm(f"p{i}")
        server = fresh._forks._process
        assert server is not None
        assert _threads(server.pid) in (["python"], ["jemalloc_bg_thd", "python"])
        for i in range(0, 12, 3):
            for worker in fresh._releases[f"p{i}"]._all:
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait(30)  # SIGKILL lands asynchronously
        for i in range(0, 12, 3):
            fresh.warm(f"p{i}")  # replaced
        for victim in fresh._releases["p1"]._all:
            os.kill(victim.pid, signal.SIGSTOP)  # whichever is taken is hung
        fresh.timeout = 0.5
        with pytest.raises(Unavailable):
            fresh.call({"op": "release"}, pl.DataFrame({"pid": [1]}), owner="p1")
        fresh.timeout = dp_runtime.TIMEOUT_SECONDS
        # both slots back: the other (hung) worker at once, and the failed one's replacement
        # once started in the background (the queue is last in, first out: one get returned
        # the hung worker, and the replacement's fork could then be under way at the checks
        # below, its pipe ends still held by the fork server: a failure seen on a CI run)
        slots = fresh._releases["p1"]
        back = [slots._free.get(timeout=60) for _ in range(slots.size)]
        for worker in back:
            slots._free.put(worker)
        deadline = time.monotonic() + 15  # it closes its copies just after answering
        while time.monotonic() < deadline and sorted(_fds(server.pid)) != [0, 1, 2]:
            time.sleep(0.1)
        live = [w for s in fresh._releases.values() for w in s._all] + fresh._plans._all
        pipes = {}
        for worker in live:
            held = _fds(worker.pid)
            assert sorted(held) == [0, 1, 2], (worker.pid, worker.alive(), held)
            pipes[worker.pid] = (held[0], held[1])
        assert len({p for pair in pipes.values() for p in pair}) == 2 * len(pipes)
        assert sorted(_fds(server.pid)) == [0, 1, 2]
        mine = _fds(me)
        for worker in live:  # two pipe ends and a pidfd each, open here
            held = {mine[worker.stdin.fileno()], mine[worker.stdout.fileno()]}
            assert all(h.startswith("pipe:") for h in held) and len(held) == 2
            assert "pidfd" in mine[worker._pidfd]
            ours |= held
        assert fresh._forks._control is not None
        ours.add(mine[fresh._forks._control.fileno()])
        deadline = time.monotonic() + 15  # the fork server reaps every REAP_SECONDS
        while time.monotonic() < deadline and any(s == "Z" for _, s in _children(server.pid)):
            time.sleep(0.5)
        assert not [p for p, s in _children(server.pid) if s == "Z"]
        server.kill()
        server.wait()
        fresh.warm("later")
        assert fresh._forks._process is not None and fresh._forks._process.pid != server.pid
    finally:
        fresh.close()
    assert ours and not ours & set(_fds(me).values())  # every one closed


def test_a_fork_server_that_dies_mid_request_is_replaced_at_once(python: Path) -> None:
    """A fork server killed with a request in it: the waiting start sees the socket
    end (not the 300 s timeout) and forks from a fresh server."""
    fresh = EnginePool(python)
    done: list[float] = []
    try:
        fresh.warm()
        server = fresh._forks._process
        assert server is not None
        os.kill(server.pid, signal.SIGSTOP)
        started = time.monotonic()
        waiting = threading.Thread(target=lambda: (fresh.warm("prj_a"),
                                                   done.append(time.monotonic() - started)),
                                   daemon=True)
        waiting.start()
        time.sleep(1.0)
        server.kill()
        waiting.join(120)
        assert done and done[0] < 60
        worker, = fresh._releases["prj_a"]._all
        assert worker.alive() and worker.call({"op": "ping"}, b"", 60)["ok"]
    finally:
        fresh.close()


def test_stop_on_a_dead_worker_is_quick_and_repeatable(python: Path) -> None:
    """stop() on a worker already killed returns at once, twice over."""
    fresh = EnginePool(python)
    try:
        fresh.warm("prj_a")
        worker, = fresh._releases["prj_a"]._all
        worker.kill()
        worker.wait(30)
        started = time.monotonic()
        worker.stop()
        worker.stop()
        worker.kill()  # after stop: suppressed (but see the report on fd reuse)
        assert time.monotonic() - started < 1 and not worker.alive()
    finally:
        fresh.close()


def test_close_then_warm_neither_hangs_nor_starts_anything(python: Path) -> None:
    """A closed pool starts no engine; its calls are refused, not hung."""
    fresh = EnginePool(python)
    fresh.warm("prj_a")
    fresh.close()
    fresh.warm("prj_b")
    assert fresh._forks._process is None
    assert all(not s._all for s in fresh._releases.values())
    with pytest.raises(Unavailable):
        fresh.call({"op": "release"}, pl.DataFrame({"pid": [1]}), owner="prj_b")


def test_a_draw_before_the_fork_would_still_not_be_shared(python: Path,
                                                          tmp_path: Path) -> None:
    """Even a draw in the forking process leaves two forked
    children's noise different in this OpenDP build: the invariant 'nothing sampled in
    the fork server' is kept, and a slip would not repeat noise across workers."""
    script = tmp_path / "draws.py"
    script.write_text(
        "import os, sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        f"sys.path.insert(0, {str(dp_runtime.ENGINE_FILE.parent)!r})\n"
        "import dp_engine\n"
        "dp = dp_engine._opendp()\n"
        "m = dp.m.make_laplace(dp.atom_domain(T=float, nan=False),\n"
        "                      dp.absolute_distance(T=float), 1.0)\n"
        "m(0.0)\n"
        "outs = []\n"
        "for _ in range(2):\n"
        "    r, w = os.pipe()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.write(w, repr([m(0.0) for _ in range(20)]).encode()); os._exit(0)\n"
        "    os.close(w); outs.append(os.read(r, 100000)); os.waitpid(pid, 0)\n"
        "print(outs[0] != outs[1])\n")
    done = subprocess.run([str(python), "-I", str(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.stdout.strip() == "True", done.stderr
