"""The command line. Thin: every command composes a domain package's service functions.

Each command's module is imported only when that command runs: a researcher's
`strongroom enclave …` loads the HTTP client, not the platform, the cohort store and the
model libraries that a custodian's commands need (about 2 s before anything was asked).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

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


# name → the command's help as `strongroom --help` lists it, kept here so that the list is
# shown without importing every command's module (which took 3 s of CPU on a quiet machine,
# 8 s on a busy one); tests/unit/test_cli_start.py checks each against the command's own
SUMMARIES: dict[str, str] = {
    "serve": "Serve the HTTP API (its OpenAPI spec at /openapi.json).",
    "login": "Sign in at this console (password + authenticator code) for the admin commands.",
    "logout": "End this console's session.",
    "password": "Change your own password (signed in with `strongroom login --as EMAIL`); "
                "other\nsessions end.",
    "risk": "Measure a table's re-identification risk: k, uniques, l, t, attacker risks.",
    "anonymise": "Generalise and suppress quasi-identifiers: the least loss meeting k (and l, "
                 "t).",
    "upgrade": "Bring the metadata database to this release's schema (back it up first).",
    "backup": "Write an encrypted backup of the store (safe while the server runs).",
    "restore": "Restore a backup into a new directory; its audit log verifies with the same "
               "root.",
    "init": "Create a data directory, its store key and its master key.",
    "demo": "The main job: a synthetic cohort and its genotypes ingested encrypted, demo people "
            "and\nprojects, a tour of the enclave and a GWAS, served.",
    "cohort": "The cohort: synthesise, ingest, convert, inspect.",
    "genotypes": "Genotypes: ingest PLINK 1, PLINK 2 or BGEN files; describe what is held.",
    "enclave": "Your work in the enclave, over the API with your token: schema, dummy data, "
               "definitions, analyses, verdicts, release, downloads.",
    "jobs": "Jobs: your own code, tried on dummy data here and run next to the real data in "
            "the enclave.",
    "token": "Your API tokens: issue one for a project (signed in with your password and "
             "code), list them, revoke one.",
    "admin": "Administration: institutions, people, projects, pauses (sign in first with "
             "`strongroom login --as EMAIL`).",
    "audit": "The tamper-evident audit log.",
    "outputs": "Outputs: the review queue, verdicts, reviews, rules, the raw-row scanner.",
    "watch": "Watch: alerts, the live view, SIEM exports, appeals, delivery (sign in first "
             "with `strongroom login --as EMAIL`).",
    "dp": "Differential privacy: DP queries, a project's DP mode and budget.",
    "store": "The data directory: check it, recover what its database lost.",
    "keys": "The master key: where it is, and rotating it.",
    "attribute": "Name the recipient a leaked file came from, or say it is inconclusive.",
    "extract": "Traceable record-level extracts (sign in first with "
               "`strongroom login --as EMAIL`).",
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
    """The root group: lists every command, imports one only when it is asked for (its help
    lists them by :data:`SUMMARIES`, importing none)."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if self._listing:  # only its name and help are read: a stand-in, not loaded
                return TyperCommand(cmd_name, help=SUMMARIES[cmd_name])
            self.commands[cmd_name] = load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(cls=_Lazy, no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """Strongroom: a trusted research environment for sensitive health cohorts."""


def main() -> None:
    """Entry point of the ``strongroom`` command."""
    app(prog_name="strongroom")


if __name__ == "__main__":
    main()
