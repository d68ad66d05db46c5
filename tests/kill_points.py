"""Children killed at a named step, for the crash tests (the audit outbox, an upgrade, ingests,
backups and restores).

``HOOKS`` is what a child's script can call: ``die`` (SIGKILL, no cleanup) and
``before``/``after`` to patch a function so that the child dies around its call.

``run_child`` runs such a script in a real child process, as ``python -c SCRIPT ARGS…`` would,
but forked from a server that has already imported Strongroom: a fresh interpreter spends
seconds importing it (polars, DuckDB, SciPy, FastAPI…) before the first line of the script,
and the crash tests start dozens. The child is a process of its own (its own memory, file
descriptors and exit status; a patch it makes is its own); only the imports are shared.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HOOKS = r'''
import os, signal

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(owner, name, when=lambda *a, **k: True):
    original = getattr(owner, name)
    def patched(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            die()
        return result
    setattr(owner, name, patched)

def before(owner, name, when=lambda *a, **k: True):
    original = getattr(owner, name)
    def patched(*args, **kwargs):
        if when(*args, **kwargs):
            die()
        return original(*args, **kwargs)
    setattr(owner, name, patched)
'''

# what the server imports once, so that its children start at the script's first line. The
# server is multiprocessing's one forkserver of this process, which the genotype readers' children
# fork from too (strongroom/genomics/isolated.py): whichever starts it first fixes what it
# imports, so it imports what both need (the readers' own extensions too), whoever starts it
# (``share_forkserver``, called as each test process starts). Were it started by a genotype test
# with the readers' list alone, every crash test's child imported Strongroom again (about a
# minute of CPU over a run)
PRELOAD = ["strongroom.platform", "strongroom.cli", "strongroom.migrations",
           "strongroom.operations.backup", "strongroom.cohort.recovery",
           "strongroom.genomics.isolated", "bed_reader", "pgenlib"]


@dataclass(frozen=True)
class Done:
    """A finished child: as ``subprocess.run`` reports one (-9: killed by SIGKILL)."""

    returncode: int
    stdout: str
    stderr: str


def share_forkserver() -> multiprocessing.context.ForkServerContext:
    """The process's forkserver context, its preload ``PRELOAD`` whoever starts the server
    (it is started at the first child, by a crash test or a genotype read): the genotype
    readers' context is made first, so that its own (shorter) list cannot replace this one."""
    from strongroom.genomics import isolated

    context: multiprocessing.context.ForkServerContext = isolated._children()
    context.set_forkserver_preload(PRELOAD)
    return context


def _server() -> multiprocessing.context.ForkServerContext:
    return share_forkserver()


def _child(script: str, args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """In the child: the environment, folder, arguments and output a ``python -c`` child
    would have, then the script."""
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the process's own)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO)
    sys.argv = ["-c", *args]
    try:
        exec(compile(script, "<child>", "exec"), {"__name__": "__main__"})
    except SystemExit as stop:
        code = stop.code
        sys.stdout.flush()
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_child(script: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              drop: Sequence[str] = (), timeout: float = 180) -> Done:
    """Run ``HOOKS + script`` with ``args`` (``sys.argv[1:]``) in a child forked from the
    preloaded server; ``env`` (default: this process's) less the names in ``drop``."""
    environment = {**(os.environ if env is None else env)}
    for name in drop:
        environment.pop(name, None)
    with tempfile.TemporaryDirectory() as scratch:
        out, err = Path(scratch) / "out", Path(scratch) / "err"
        out.touch()
        err.touch()
        child = _server().Process(target=_child, args=(HOOKS + script, list(args), environment,
                                                       str(out), str(err)))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise TimeoutError(f"the child ran past {timeout} s: {err.read_text()[-2000:]}")
        return Done(child.exitcode, out.read_text(), err.read_text())
