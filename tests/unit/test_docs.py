"""A command or option that is not documented does not exist for its users."""

from __future__ import annotations

from pathlib import Path

from tests.cli_runner import leaf_commands

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "cli.md"


def test_every_command_and_option_is_documented() -> None:
    text = DOC.read_text()
    listed = leaf_commands()
    assert len(listed) >= 5
    checked = 0
    for path, command in listed:
        assert f"`{path}" in text, f"{path} is not in docs/reference/cli.md"
        for param in command.params:
            opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
            if opts and param.name != "help":
                assert f"`{opts[0]}`" in text, f"{path} {opts[0]} is not documented"
                checked += 1
    assert checked >= 10, "options were not found: the test would pass vacuously"


def test_access_and_api_reference_pages_are_current() -> None:
    """docs/reference/access.md and api.md are generated from the declared tables."""
    from scripts.build_reference import (
        ACCESS_DOC,
        ANALYSES_DOC,
        API_DOC,
        OUTPUTS_DOC,
        render_access,
        render_analyses,
        render_api,
        render_outputs,
    )

    assert ACCESS_DOC.read_text() == render_access(), "run `make reference`"
    assert API_DOC.read_text() == render_api(), "run `make reference`"
    assert OUTPUTS_DOC.read_text() == render_outputs(), "run `make reference`"
    assert ANALYSES_DOC.read_text() == render_analyses(), "run `make reference`"
    assert API_DOC.read_text().count("| `") >= 36
