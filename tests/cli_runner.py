"""The command line run in-process (Typer's runner) from a folder, as a researcher runs it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer.main
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


def leaf_commands(group: Any = None, prefix: str = "strongroom") -> list[tuple[str, Any]]:
    """(path, command) for every leaf command under ``group`` (the whole CLI by default),
    each module imported as the root imports it when its command is asked for."""
    group = group if group is not None else typer.main.get_group(app)
    with typer.Context(group) as ctx:
        named = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    found: list[tuple[str, Any]] = []
    for name, command in named:
        assert command is not None, f"{prefix} {name} is listed but cannot be loaded"
        if hasattr(command, "commands"):  # a group
            found += leaf_commands(command, f"{prefix} {name}")
        else:
            found.append((f"{prefix} {name}", command))
    return found
