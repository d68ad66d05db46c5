"""What every command shares: consoles, common options, and one way to refuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import DBAPIError

from strongroom.cohort.crypto import DecryptionError
from strongroom.cohort.keysources import KeySourceError
from strongroom.cohort.problems import IngestError
from strongroom.cohort.store import StoreError
from strongroom.errors import ServiceError
from strongroom.operations.backup import BackupError

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


@contextmanager
def refusals() -> Iterator[None]:
    """Turn expected failures into a clear message and exit code 1 (no traceback)."""
    try:
        yield
    except ServiceError as exc:
        errors.print(f"refused ({exc.status}):", markup=False)
        for reason in exc.reasons:
            errors.print(f"  - {reason}", markup=False)
        raise typer.Exit(1) from None
    except IngestError as exc:
        errors.print(exc.summary(), markup=False)
        raise typer.Exit(1) from None
    except (StoreError, DecryptionError, KeySourceError, BackupError, FileExistsError,
            FileNotFoundError, ValueError) as exc:
        errors.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    except DBAPIError as exc:  # a corrupt, unreadable or unreachable metadata database
        errors.print(f"error: the metadata database cannot be read ({str(exc.orig).strip()}); "
                     f"nothing was changed. See `strongroom store check`.", markup=False)
        raise typer.Exit(1) from None


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


