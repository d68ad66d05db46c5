"""`strongroom --help` starts quickly: it lists every command without importing any of them.

Before, listing the commands imported each one's module (the platform, the model libraries,
uvicorn: 2.9 s of CPU on a quiet machine, 8 s on a busy one). The list now comes from
``strongroom.cli.SUMMARIES``; these tests hold it to what each command says of itself.

A command's own ``--help`` starts quickly too (issue 55): its module imports the services its
commands call when one first runs (``cli/common.py`` ``on_use``), not to list their options.
"""

from __future__ import annotations

import json
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


# what no command's --help may import (why: the test below)
HEAVY = ("sqlalchemy", "polars", "duckdb", "numpy", "scipy", "strongroom.platform", "httpx")
# a command whose --help cannot avoid one of them, with the reason: none today
UNAVOIDABLE: dict[str, tuple[str, ...]] = {}

HELPS = """
import contextlib, io, json, sys
from strongroom.cli import COMMANDS, app, load

heavy = {heavy!r}
unavoidable = {unavoidable!r}
imported = {{}}  # "group command" → the heavy modules its --help imported first
for name in sorted(COMMANDS, key=lambda name: name in unavoidable):  # theirs last
    command = load(name)
    for sub in [[], *([each] for each in getattr(command, "commands", {{}}))]:
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            try:
                app([name, *sub, "--help"], prog_name="strongroom")
            except SystemExit as exc:
                assert exc.code == 0, (name, sub, exc.code)
        assert "Usage:" in shown.getvalue(), (name, sub)
        seen = {{m for found in imported.values() for m in found}}
        imported[" ".join([name, *sub])] = [m for m in heavy
                                            if m in sys.modules and m not in seen]
print("IMPORTED", json.dumps(imported))
"""


def test_no_commands_help_imports_the_database_the_data_libraries_or_the_platform() -> None:
    """Every command group's and command's ``--help``, in one interpreter, in turn: each
    imports none of ``HEAVY`` (but what ``UNAVOIDABLE`` lets it, run last).

    ``HEAVY`` is the database layer (SQLAlchemy), the data and model libraries (Polars,
    DuckDB, NumPy, SciPy) and the platform (``strongroom.platform``: every service): listing
    a command's options paid 1 to 5 s of CPU for them (issue 55: a command starts in under a
    second). And the HTTP client (httpx, which the researchers' commands send their requests
    with): about 0.15 s of their half second, paid only once a request is sent. Not listed:
    Pydantic, which Typer imports itself as it builds the commands.

    The modules a command uses are imported when it runs (``cli/common.py`` ``on_use``); the
    names its options need (enums, defaults) come from light modules or are written in the
    command's module (the next test holds them to the services' own)."""
    probe = HELPS.format(heavy=HEAVY, unavoidable=UNAVOIDABLE)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, env={**os.environ, "COLUMNS": "100"})
    imported = json.loads(done.stdout.rsplit("IMPORTED", 1)[1])
    assert {path.split()[0] for path in imported} == set(COMMANDS)
    assert len(imported) > len(COMMANDS)  # the groups' commands too
    wrong = {path: found for path, found in imported.items()
             if set(found) - set(UNAVOIDABLE.get(path.split()[0], ()))}
    assert wrong == {}


def test_the_defaults_written_in_the_commands_are_the_services_own() -> None:
    """Values the options show, written in the command's module so that listing the options
    does not import the service that holds them: each is the service's own."""
    from strongroom.access import oversight
    from strongroom.cli import audit, cohort, demo, dp, extracts, privacy, watch
    from strongroom.cohort import validate
    from strongroom.demo import DEMO_VARIANTS
    from strongroom.extracts import membership
    from strongroom.privacy import anonymise, dp_runtime, risk
    from strongroom.watch import alerts

    assert watch.MAX_LIMIT == alerts.MAX_LIMIT
    assert audit.MAX_PAGE == oversight.MAX_PAGE
    assert dp.ENV_PYTHON == dp_runtime.ENV_PYTHON
    assert cohort.CONSISTENCY_RULES == validate.CONSISTENCY_RULES
    assert extracts.WITHHELD_SHARE == membership.SHARE
    assert privacy.DEFAULT_K == risk.DEFAULT_K
    assert privacy.DEFAULT_SUPPRESSION == anonymise.DEFAULT_SUPPRESSION
    assert demo.DEMO_VARIANTS == DEMO_VARIANTS
