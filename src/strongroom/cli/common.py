"""What every command shares: consoles, common options, and one way to refuse."""

from __future__ import annotations

import errno
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from strongroom.errors import ServiceError
from strongroom.progress import Stages

if TYPE_CHECKING:
    from strongroom.platform import Platform

console = Console()
# an error is one line however long its paths (the terminal wraps it; a script greps it)
errors = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="STRONGROOM_DATA_DIR",
                 help="The Strongroom data directory."),
]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="STRONGROOM_KEY_FILE",
                 help="The store's master key file (kept outside the data directory)."),
]
DEFAULT_DATA_DIR = Path("strongroom-data")


def on_use(name: str) -> ModuleType:
    """The module ``name``, executed when one of its attributes is first read: a command
    group's ``--help`` then does not pay for the database layer, Polars and the services its
    commands call (issue 55: a command starts in under a second of CPU). Modules bound this
    way are imported under ``if TYPE_CHECKING`` too, so mypy checks their use.

    Any import of the module elsewhere executes it there and then, as a first import would
    (the module is not bound on its package, so ``from package import module`` imports it).
    A package is refused: one whose ``__init__`` imports its own modules would run a module
    twice were it imported by its full name first (``package.module``), two copies of every
    class; a command imports a package where it uses it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    if spec.submodule_search_locations is not None:
        raise ValueError(f"{name} is a package: import it where it is used")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def open_platform(data_dir: Path, key_file: Path | None = None) -> Platform:
    """`Platform.open`, its modules imported when a command opens it, not when the CLI loads
    the command (the services, the jobs, the analyses: about 1.3 s of CPU that a custodian's
    `--help`, and every refusal before the store is opened, paid)."""
    from strongroom.platform import Platform

    return Platform.open(data_dir, key_file)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn expected failures into a clear message and exit code 1 (no traceback)."""
    try:
        yield
    except Exception as exc:
        said = refusal(exc)
        if said is None:
            raise
        for line in said:
            errors.print(line, markup=False)
        raise typer.Exit(1) from None


def refusal(exc: Exception) -> list[str] | None:
    """What to print for an expected failure, or None for one that is not expected.

    The store's error classes are imported here, when a command has failed, so that a
    command that never opens the store (a researcher's, over the API) starts without them."""
    from sqlalchemy.exc import DBAPIError

    from strongroom.cohort.crypto import DecryptionError
    from strongroom.cohort.keysources import KeySourceError
    from strongroom.cohort.problems import IngestError
    from strongroom.cohort.store import StoreError
    from strongroom.db import explain
    from strongroom.operations.backup import BackupError

    if isinstance(exc, ServiceError):
        return [f"refused ({exc.status}):", *(f"  - {reason}" for reason in exc.reasons)]
    if isinstance(exc, IngestError):
        return [exc.summary()]
    if isinstance(exc, StoreError | DecryptionError | KeySourceError | BackupError
                  | FileExistsError | FileNotFoundError | ValueError):
        return [f"error: {exc}"]
    if isinstance(exc, DBAPIError):  # a damaged, full or unreachable metadata database
        # a failed statement rolls its transaction back, and the store writes files before
        # the transaction that makes them count: nothing is changed by a failure here
        return [f"error: {explain(exc)}. Nothing was changed."]
    if isinstance(exc, OSError):  # a full disk, a directory where a file belongs, no permission
        return [f"error: {os_failure(exc)}"]
    return None


def os_failure(exc: OSError) -> str:
    """What an operating-system failure means, that the store is unchanged, and what to do.

    The store writes every file to a temporary name, flushed, then renamed into place, and a
    cohort version counts only once the database commits it: a failed write leaves what was
    stored before exactly as it was (a half-written file is removed or never named)."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full{where}: {exc.strerror or exc}. Nothing was changed: what "
                f"was being written was discarded, and everything stored before is intact. "
                f"Free space on that filesystem (or give the data directory a larger one), "
                f"then run the command again.")
    if exc.errno == errno.EISDIR:
        return (f"{exc.filename or 'a path given'} is a directory where a file was expected. "
                f"Nothing was changed. Give the file itself.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"not permitted{where}: {exc.strerror or exc}. Nothing was changed. Run as the "
                f"user that owns the data directory, or fix the path's permissions.")
    return (f"{exc.strerror or exc}{where}. Nothing was changed. Check the path, then run the "
            f"command again.")


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[str, int], None]]:
    """A Rich progress bar fed by domain callbacks ``(stage, advance)``; quiet if not a TTY."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=errors, disable=not errors.is_terminal) as bar:
        task = bar.add_task(label, total=total)

        def advance(stage: str, step: int) -> None:
            bar.update(task, advance=step, description=f"{label}: {stage}")

        yield advance
        bar.update(task, completed=total, description=f"{label}: done")



class RichStages:
    """A job's stages as Rich progress: a line per stage, with its bar and time (on stderr)."""

    def __init__(self, bar: Progress, label: str) -> None:
        self.bar, self.label = bar, label
        self.task: TaskID | None = None
        self.stage = ""

    def begin(self, stage: str, total: int = 0) -> None:
        self.stage = stage
        self.task = self.bar.add_task(f"{self.label}: {stage}", total=total or None)

    def advance(self, step: int, what: str = "") -> None:
        if self.task is not None:
            detail = f" ({what})" if what and what != self.stage else ""
            self.bar.update(self.task, advance=step,
                            description=f"{self.label}: {self.stage}{detail}")

    def end(self, seconds: float) -> None:
        if self.task is not None:
            done = self.bar.tasks[self.task]
            total = done.total if done.total is not None else 1
            self.bar.update(self.task, total=total, completed=total,
                            description=f"{self.label}: {self.stage}")
            self.task = None


class PlainStages:
    """A job's stages as plain lines on standard output, each flushed at once, for a log
    (``make demo > log``): ``[demo] simulating genotypes… 40%``. A stage's start and end are
    always said; its progress every tenth of its total, or each step it names (at most one a
    second) when it has no total."""

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.clock = label, clock
        self.stage, self.total, self.done, self.said, self.what = "", 0, 0, 0, ""
        self.last = 0.0

    def begin(self, stage: str, total: int = 0) -> None:
        self.stage, self.total, self.done, self.said, self.what = stage, total, 0, 0, ""
        self.last = self.clock()
        self._line(f"{stage}…")

    def advance(self, step: int, what: str = "") -> None:
        self.done += step
        if self.total:
            percent = min(100, 100 * self.done // self.total)
            if percent - self.said >= 10 and percent < 100:
                self.said = percent - percent % 10
                self._line(f"{self.stage}… {percent}%")
        elif what and what != self.what and self.clock() - self.last >= 1:
            self.what, self.last = what, self.clock()
            self._line(f"{self.stage}… {what}")

    def end(self, seconds: float) -> None:
        self._line(f"{self.stage}: done in {seconds:.1f} s")

    def _line(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=sys.stdout, flush=True)


class _Both:
    def __init__(self, *stages: RichStages | PlainStages) -> None:
        self.every = stages

    def begin(self, stage: str, total: int = 0) -> None:
        for s in self.every:
            s.begin(stage, total)

    def advance(self, step: int, what: str = "") -> None:
        for s in self.every:
            s.advance(step, what)

    def end(self, seconds: float) -> None:
        for s in self.every:
            s.end(seconds)


@contextmanager
def stage_report(label: str, *, plain: bool = True) -> Iterator[Stages]:
    """A job's stages as they go: Rich progress when standard error is a terminal, and plain
    flushed lines on standard output when that is not a terminal (a log, a pipe) or Rich is
    not shown, so that ``make demo > log`` says what it is doing as it does it (``plain``
    False: never on standard output, which carries a command's answer)."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    shown = errors.is_terminal
    plain = plain and (not sys.stdout.isatty() or not shown)
    with Progress(*columns, console=errors, disable=not shown) as bar:
        every: list[RichStages | PlainStages] = [RichStages(bar, label)] if shown else []
        if plain:
            every.append(PlainStages(label))
        yield _Both(*every)
