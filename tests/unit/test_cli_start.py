"""`strongroom --help` starts quickly: it lists every command without importing any of them.

Before, listing the commands imported each one's module (the platform, the model libraries,
uvicorn: 2.9 s of CPU on a quiet machine, 8 s on a busy one). The list now comes from
``strongroom.cli.SUMMARIES``; these tests hold it to what each command says of itself.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from typing import Any

import pytest
import typer.main

from strongroom.cli import COMMANDS, SUMMARIES, app, load

PROBE = """
import sys
sys.argv = ["strongroom", "--help"]
from strongroom.cli import main
try:
    main()
except SystemExit:
    pass
print("MODULES", " ".join(sorted(m for m in sys.modules if m.startswith("strongroom"))))
"""


def test_the_summaries_are_each_commands_own_help() -> None:
    assert list(SUMMARIES) == list(COMMANDS)
    for name in COMMANDS:
        command = load(name)
        assert SUMMARIES[name] == (command.short_help or command.help or ""), name


def _help(group: Any, capsys: pytest.CaptureFixture[str]) -> str:
    try:
        group.main(["--help"], prog_name="strongroom")
    except SystemExit as exc:
        assert exc.code == 0
    return capsys.readouterr().out


def test_the_help_lists_the_commands_as_if_every_one_were_loaded(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    lazy = _help(typer.main.get_group(app), capsys)
    group = typer.main.get_group(app)
    for name in COMMANDS:
        group.commands[name] = load(name)
    loaded = _help(group, capsys)
    assert lazy == loaded
    assert "token" in lazy and "enclave" in lazy and "Commands" in lazy


def test_help_imports_no_command_and_takes_under_a_second_of_cpu() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True, env={**os.environ, "COLUMNS": "100"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    modules = done.stdout.rsplit("MODULES", 1)[1].split()
    assert modules == ["strongroom", "strongroom.cli"], modules
    assert "serve" in done.stdout
    assert cpu < 1.0, f"strongroom --help took {cpu:.2f} s of CPU"
