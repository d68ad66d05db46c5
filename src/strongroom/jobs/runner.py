"""Running a job's actions: the layout every run sees, in the sandbox or (a researcher's own
machine, on dummy data) outside it.

Inside a run the repository is at ``/job`` (read-only), its inputs are Parquet files in
``/job/inputs`` (CSV files for an R action, as ``strongroom jobs dummy`` downloads them: R
reads no Parquet from Debian's packages), the outputs are written to ``/job/output`` (an R
Markdown document's rendering too: ``jobs/r/knit.R``), and
:mod:`strongroom.sdc` (or its R face, ``jobs/r/strongroom.R``) writes the plan to
``$STRONGROOM_PLAN``. Relative paths (``inputs/cohort.parquet``,
``output/table1.csv``) therefore work the same everywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.enclave.dummy import _csv as csv_of
from strongroom.errors import Refused
from strongroom.jobs import code as job_code
from strongroom.jobs import identity, sandbox, vault
from strongroom.jobs.pipeline import Action, Pipeline
from strongroom.sdc import INPUTS_ENV, PLAN_ENV

SHM = Path("/dev/shm")  # noqa: S108 (a private folder is made in it, mode 0700)
SCRATCH = SHM if SHM.is_dir() else None  # decrypted inputs in memory, where they can be
PLAN_FILE = "plan.jsonl"
NOTEBOOK_MODULE = "strongroom_notebook"
RSCRIPT = "Rscript"
RMARKDOWN = "rmarkdown"  # an R Markdown document: Rscript runs knit.R on it
R_RUNNERS = frozenset({RSCRIPT, RMARKDOWN})
R_LIBRARY = "/job-lib/strongroom.R"  # sandbox.R_LIBRARY, inside
R_KNIT = "/job-lib/strongroom_knit.R"  # sandbox.R_KNIT, inside
# R's settings for a job: sdc for R and the monitor before the script; no library of the
# user's (R's are in /usr, read-only); no .Renviron from the code or the home folder
R_ENV = {"R_PROFILE_USER": R_LIBRARY, "R_LIBS_USER": "/job-lib/R", "R_ENVIRON_USER": "/dev/null"}
INODES = 10_000  # files and folders a run may make in its writable folders
# runs a script: (argv, code, inputs, output, plan folders, limits, name) -> how it ended
Runs = Callable[[list[str], Path, Path, Path, Path, sandbox.Limits, str], sandbox.Ending]


@dataclass
class Run:
    """One run of one action: how it ended and what it asked for."""

    ending: sandbox.Ending
    plan: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)  # declared outputs it wrote
    problems: list[str] = field(default_factory=list)  # plan lines that were not plans

    def outcome(self) -> tuple[Any, ...]:
        """What a researcher could tell apart: ended well or not, the plan, which files, the
        limits met and walls tried."""
        return (self.ending.ok, json.dumps(self.plan, sort_keys=True), sorted(self.files),
                sorted(self.ending.walls))

    def log(self) -> str:
        return (self.ending.stdout.decode(errors="replace")
                + self.ending.stderr.decode(errors="replace"))


def chain(pipeline: Pipeline, names: list[str], files: dict[str, bytes], root: Path,
          inputs: Callable[[str, Path], None], *, limits: sandbox.Limits, name: str,
          runs_in: Runs | None = None) -> list[Run]:
    """Run the actions ``names`` in order, each reading the outputs of those it needs
    (``inputs`` writes an input as Parquet where it is asked to); stop at the first that
    fails. ``runs_in``: what runs the script (the sandbox, unless said otherwise)."""
    carried: dict[str, dict[str, bytes]] = {}
    runs = []
    for at in names:
        action = pipeline.actions[at]
        run = _action(action, files, root / at, inputs, {
            path: data for need in action.needs for path, data in carried[need].items()},
            limits=limits, name=f"{name}-{at}", runs_in=runs_in or sandboxed)
        runs.append(run)
        if not run.ending.ok:
            break
        carried[at] = run.files
    return runs


def _action(action: Action, files: dict[str, bytes], root: Path,
            inputs: Callable[[str, Path], None], carried: dict[str, bytes], *,
            limits: sandbox.Limits, name: str, runs_in: Runs) -> Run:
    code, data, writable = root / "code", root / "inputs", root / "rw"
    for d in (code, data, writable):
        d.mkdir(parents=True)
    with _bounded(writable, limits.output_bytes) as full:
        out, plan = writable / "output", writable / "plan"
        out.mkdir()
        plan.mkdir()
        _give(out, plan)
        job_code.write(files, code)
        (code / "output").mkdir(exist_ok=True)
        (code / "inputs").mkdir(exist_ok=True)
        for input_name in action.inputs:
            inputs(input_name, data / f"{input_name}.parquet")
            if action.runner in R_RUNNERS:
                _as_csv(data / f"{input_name}.parquet")
        # the outputs of the actions it needs, as they wrote them, where they wrote them
        job_code.write({str(PurePosixPath(*PurePosixPath(p).parts[1:])): data
                        for p, data in carried.items()}, out)
        argv = [sys.executable, "-B", action.script]
        if action.runner == "notebook":
            argv = [sys.executable, "-B", "-m", NOTEBOOK_MODULE, action.script]
        elif action.runner == RSCRIPT:
            argv = [rscript(), action.script]
        elif action.runner == RMARKDOWN:
            argv = [rscript(), R_KNIT, knitr(action.script)]
        ending = runs_in(argv, code, data, out, plan, limits, name)
        run = Run(ending, [])
        # read once every process of the run is gone, and only plain files inside
        if full() or sandbox.folder_size(writable) > limits.output_bytes:
            # the output folder's, not scratch's: the job's own "no space" was this
            ending.walls = [*(w for w in ending.walls if w is not sandbox.Wall.SPACE),
                            sandbox.Wall.OUTPUT_SIZE]
            return run
        run.plan, run.problems = read_plan(_regular(plan / PLAN_FILE, plan, 1 << 20))
        for declared in action.outputs.values():
            written = _regular(out.joinpath(*PurePosixPath(declared.path).parts[1:]), out,
                               limits.file_bytes)
            if written is not None:
                run.files[declared.path] = written
    if run.problems and ending.ok:
        ending.exit_code, ending.stderr = 1, ending.stderr + "\n".join(
            run.problems).encode()
    return run


def rscript() -> str:
    """Where Rscript is (Refused, saying how to install it, where it is not)."""
    found = shutil.which(RSCRIPT, path="/usr/bin:/bin")
    if found is None:
        raise Refused("R is not installed here, so an 'Rscript' action cannot run: install "
                      "it (apt-get install r-base-core r-cran-data.table r-cran-survival "
                      "r-cran-jsonlite, as the project's .ci/run does)")
    return found


# where Debian's R and the custodian's installs keep packages (all under /usr, read-only)
R_SITE_LIBRARIES = ("/usr/lib/R/site-library", "/usr/lib/R/library",
                    "/usr/local/lib/R/site-library")


def knitr(document: str) -> str:
    """``document``, once knitr is known to be installed (Refused, saying how, where not)."""
    if not any((Path(d) / "knitr" / "DESCRIPTION").is_file() for d in R_SITE_LIBRARIES):
        raise Refused("knitr is not installed here, so an 'rmarkdown' action cannot run: "
                      "install it (apt-get install r-cran-knitr, as the project's .ci/run "
                      "does)")
    return document


def _as_csv(parquet: Path) -> None:
    """An input for R: the Parquet file as the CSV file the dummy data's zip holds (the same
    writer), in its place."""
    import polars as pl

    parquet.with_suffix(".csv").write_bytes(csv_of(pl.read_parquet(parquet)))
    parquet.unlink()


def _give(*folders: Path) -> None:
    """The job's writable folders to the job's host user (the platform made them)."""
    if os.geteuid() == 0:
        user = identity.job_user()
        for folder in folders:
            os.chown(folder, user.uid, user.gid)


def _regular(path: Path, inside: Path, most: int) -> bytes | None:
    """The bytes of ``path`` if it is a plain file under ``inside`` reached through no link
    (a link the job made would point the platform at its own files), at most ``most``: each
    folder on the way is opened from the one before without following links."""
    parts = PurePosixPath(os.path.relpath(path, inside)).parts
    if not parts or ".." in parts or "." in parts:
        return None
    try:
        at = os.open(inside, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=at)
            os.close(at)
            at = below
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=at)
    except OSError:
        return None
    finally:
        os.close(at)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device: not an output
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(most + 1)
    return data if len(data) <= most else None


@contextlib.contextmanager
def _bounded(folder: Path, size: int) -> Iterator[Callable[[], bool]]:
    """A tmpfs of its own on ``folder`` (bytes and inodes capped by the kernel; no setuid,
    devices or programs; owned by the job's user) where it can be mounted, in the job's vault
    if it has one; else the sandbox's watch and the size read after the run hold it. Yields
    whether the kernel's cap was met (read after the run)."""
    inside = vault.where(folder)
    user = identity.job_user()
    if inside is not None:
        mounted = vault.mount_tmpfs(inside, size=size, inodes=INODES, uid=user.uid,
                                    gid=user.gid)
    else:
        mounted = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o",
             f"size={size},nr_inodes={INODES},mode=0700,uid={user.uid},gid={user.gid},"
             "nosuid,nodev,noexec", "tmpfs", str(folder)],
            capture_output=True, check=False).returncode == 0

    def full() -> bool:
        if not mounted:
            return False
        found = os.statvfs(folder)
        return found.f_bavail == 0 or found.f_favail == 0
    try:
        yield full
    finally:
        if mounted and inside is not None:
            vault.unmount(inside)
        elif mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def read_plan(text: bytes | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The plan lines the script wrote (problems: lines that are not a plan's)."""
    if text is None:
        return [], []
    plan, problems = [], []
    for n, line in enumerate(text.decode(errors="replace").splitlines(), 1):
        try:
            item = json.loads(line)
        except ValueError:
            problems.append(f"strongroom.sdc plan line {n} is not JSON; write the plan only "
                            "through strongroom.sdc")
            continue
        if not (isinstance(item, dict) and set(item) == {"output", "analysis"}
                and isinstance(item["output"], str) and isinstance(item["analysis"], dict)):
            problems.append(f"strongroom.sdc plan line {n} is not a planned output")
            continue
        plan.append(item)
    return plan, problems


@contextlib.contextmanager
def scratch(job_id: str) -> Iterator[Path]:
    """A private place in memory for one job's decrypted inputs and outputs, gone after: a
    vault (vault.py) that no other process sees and that the kernel frees if the platform
    dies, where the platform is root; else a folder in ``/dev/shm`` only the platform and the
    job's user may enter, removed when the job ends (and by :func:`leftovers` after a
    crash)."""
    if vault.possible():
        with vault.opened(job_id, SCRATCH or Path(tempfile.gettempdir())) as inside:
            yield inside
        return
    folder = Path(tempfile.mkdtemp(prefix=f"{vault.PREFIX}{job_id}-", dir=SCRATCH))
    lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    if os.geteuid() == 0:  # the job's user enters it to reach its mounts, no one else
        os.chown(folder, 0, identity.job_user().gid)
        folder.chmod(0o750)
    else:
        folder.chmod(0o700)
    try:
        yield folder
    finally:
        # rm walks a tree of any depth (shutil.rmtree recurses, and a job can nest
        # thousands of folders); the decrypted inputs must not outlive the job
        subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], check=False,
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def leftovers() -> list[tuple[str, Path]]:
    """Jobs' scratch that a stopped platform left and no live process holds: (job, folder)."""
    return vault.leftovers(SCRATCH or Path(tempfile.gettempdir()))


def destroy(folder: Path) -> dict[str, int]:
    """Remove a job's scratch left behind: what it held (files and bytes), for the record."""
    held = {"files": 0, "bytes": 0}
    for _, _, names in os.walk(folder):
        held["files"] += len(names)
    held["bytes"] = sandbox.folder_size(folder)
    vault.destroy(folder)
    return held


def sandboxed(argv: list[str], code: Path, data: Path, out: Path, plan: Path,
              limits: sandbox.Limits, name: str) -> sandbox.Ending:
    """In a new sandbox (the enclave's way, and a researcher's where bubblewrap runs)."""
    return sandbox.run(
        argv, [sandbox.Mount(code, "/job"), sandbox.Mount(data, "/job/inputs"),
               sandbox.Mount(out, "/job/output", writable=True),
               sandbox.Mount(plan, "/job-plan", writable=True)],
        limits=limits, name=name, output=out,
        env={PLAN_ENV: f"/job-plan/{PLAN_FILE}", INPUTS_ENV: "/job/inputs", **_notebook(argv),
             **(R_ENV if _is_r(argv) else {})})


def _is_r(argv: list[str]) -> bool:
    return Path(argv[0]).name == RSCRIPT


def _notebook(argv: list[str]) -> dict[str, str]:
    """A notebook's runner starts its kernel: the monitor lets that one program be."""
    return {"STRONGROOM_NOTEBOOK": "1"} if NOTEBOOK_MODULE in argv else {}


def unsandboxed(argv: list[str], code: Path, data: Path, out: Path, plan: Path,
                limits: sandbox.Limits, name: str) -> sandbox.Ending:
    """Outside any sandbox, with the same layout: for a researcher's machine without
    bubblewrap, on dummy data only (the enclave never runs a job this way)."""
    (code / "inputs").rmdir()
    (code / "inputs").symlink_to(data)
    (code / "output").rmdir()
    (code / "output").symlink_to(out)
    library = code.parent / "job-lib"
    (library / "strongroom").mkdir(parents=True)
    shutil.copy(sandbox.SDC, library / "strongroom" / "sdc.py")
    shutil.copy(sandbox.NOTEBOOK, library / "strongroom_notebook.py")
    (library / "strongroom" / "__init__.py").touch()
    shutil.copy(sandbox.R_LIBRARY, library / "strongroom.R")
    shutil.copy(sandbox.R_KNIT, library / "strongroom_knit.R")
    argv = [str(library / "strongroom_knit.R") if a == R_KNIT else a for a in argv]
    env = {**os.environ, "PYTHONPATH": str(library), "MPLBACKEND": "Agg",
           PLAN_ENV: str(plan / PLAN_FILE), INPUTS_ENV: str(data), **_notebook(argv)}
    if _is_r(argv):
        env |= {"R_PROFILE_USER": str(library / "strongroom.R"), "R_ENVIRON_USER": "/dev/null"}
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=code, env=env, capture_output=True,
                              timeout=limits.wall_seconds, check=False)
    except subprocess.TimeoutExpired as late:
        return sandbox.Ending(None, None, time.monotonic() - started, late.stdout or b"",
                              late.stderr or b"", [sandbox.Wall.TIME])
    return sandbox.Ending(done.returncode if done.returncode >= 0 else None,
                          -done.returncode if done.returncode < 0 else None,
                          time.monotonic() - started, done.stdout, done.stderr)
