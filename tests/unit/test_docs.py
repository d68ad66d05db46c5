"""A command or option that is not documented does not exist for its users."""

from __future__ import annotations

from pathlib import Path

import click
import typer

from strongroom.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "cli.md"


def commands(group: click.Group, prefix: str = "strongroom") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append((path, command))
    return found


def test_every_command_and_option_is_documented() -> None:
    text = DOC.read_text()
    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    listed = commands(root)
    assert len(listed) >= 5
    for path, command in listed:
        assert f"`{path}" in text, f"{path} is not in docs/reference/cli.md"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert f"`{param.opts[0]}`" in text, f"{path} {param.opts[0]} is not documented"
