"""The command line. Thin: every command composes a domain package's service functions.

Each command's module is imported only when that command runs: a researcher's
`strongroom enclave …` loads the HTTP client, not the platform, the cohort store and the
model libraries that a custodian's commands need (about 2 s before anything was asked).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

# name → "module:attribute": a Typer app (a group of commands) or one command's function, in
# the order `strongroom --help` lists them
COMMANDS: dict[str, str] = {
    "serve": "strongroom.cli.admin:serve",
    "login": "strongroom.cli.admin:login",
    "logout": "strongroom.cli.admin:logout",
    "password": "strongroom.cli.admin:password",
    "risk": "strongroom.cli.privacy:risk",
    "anonymise": "strongroom.cli.privacy:anonymise",
    "upgrade": "strongroom.cli.store:upgrade",
    "backup": "strongroom.cli.backups:backup",
    "restore": "strongroom.cli.backups:restore",
    "init": "strongroom.cli.store:init",
    "demo": "strongroom.cli.demo:demo",
    "cohort": "strongroom.cli.cohort:cohort_app",
    "genotypes": "strongroom.cli.genotypes:genotypes_app",
    "enclave": "strongroom.cli.enclave:enclave_app",
    "jobs": "strongroom.cli.jobs:jobs_app",
    "token": "strongroom.cli.tokens:token_app",
    "admin": "strongroom.cli.admin:admin_app",
    "audit": "strongroom.cli.audit:audit_app",
    "outputs": "strongroom.cli.outputs:outputs_app",
    "watch": "strongroom.cli.watch:watch_app",
    "dp": "strongroom.cli.dp:dp_app",
    "store": "strongroom.cli.store:store_app",
    "keys": "strongroom.cli.keys:keys_app",
    "attribute": "strongroom.cli.extracts:attribute",
    "extract": "strongroom.cli.extracts:extract_app",
}


# Typer's command classes are Click's (vendored by newer releases): typed Any here, so that
# either works
Command = Any


def load(name: str) -> Command:
    """The command ``name`` names in :data:`COMMANDS`, its module imported now."""
    module, attribute = COMMANDS[name].split(":")
    found: Any = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        command: Command = typer.main.get_group(found)
    else:
        one = typer.Typer(add_completion=False)
        one.command(name)(found)
        command = typer.main.get_command(one)
    command.name = name
    return command


class _Lazy(TyperGroup):
    """The root group: lists every command, imports one only when it is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(cls=_Lazy, no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """Strongroom: a trusted research environment for sensitive health cohorts."""


def main() -> None:
    """Entry point of the ``strongroom`` command."""
    app(prog_name="strongroom")


if __name__ == "__main__":
    main()
