"""The command line run in-process (Typer's runner) from a folder, as a researcher runs it."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from strongroom.cli import app


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``strongroom ARGS`` run in ``cwd``."""
    before = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(before)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return done.exit_code, done.stdout, done.stderr
