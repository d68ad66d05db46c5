"""Every command the code tells a person to run parses as printed.

Messages name fix-its in backticks (`strongroom upgrade -d DIR --operator NAME --reason TEXT`).
This finds each backticked `strongroom …` in the source's strings (docstrings aside: they are
read by developers), fills an f-string's fields with a real directory (they are paths or ids
in every hint), and parses it with the command line's own parser, exactly as a shell would
hand it over: an unknown command or option, a missing or extra argument fails here. Capitals
(NAME, TEXT, DIR) are the values a person types in their place; a hint naming a family of
commands (`strongroom dp …`) or alternatives (`--approve|--reject`) is read as each.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from strongroom.cli import app

try:  # newer Typer releases vendor Click; older ones use it
    from typer._click import exceptions as clicks  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    from click import exceptions as clicks  # type: ignore[no-redef,unused-ignore]

SRC = Path(__file__).resolve().parents[2] / "src" / "strongroom"
HINT = re.compile(r"`(strongroom(?: [^`]*)?)`")
FIELD = "\x00"  # where an f-string's field was


def _docstrings(nodes: list[ast.AST]) -> set[int]:
    found = set()
    for node in nodes:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else FIELD for v in node.values)
    return None


def hints() -> Iterator[tuple[str, str]]:
    """(where, hint) for every backticked command in a string the code can show."""
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text()
        if "`strongroom" not in source:  # no hint in it: not worth parsing (most modules)
            continue
        nodes = list(ast.walk(ast.parse(source, str(path))))  # walked once (2 s a run)
        skip = _docstrings(nodes)
        skip |= {id(v) for n in nodes if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in nodes:
            text = _text(node)
            if text is None or id(node) in skip:
                continue
            for hint in HINT.findall(text):
                yield f"{path.relative_to(SRC.parent)}:{getattr(node, 'lineno', 0)}", hint


def variants(hint: str, directory: str) -> list[list[str]]:
    """The argument lists a hint stands for (without the program's name)."""
    words = shlex.split(hint.replace(FIELD, directory))[1:]
    # after an option, "…" is its value (`--text …`); elsewhere, a family whose named part
    # must exist (`strongroom dp …`)
    words = [w if w != "…" or i == 0 or not words[i - 1].startswith("-") else "TEXT"
             for i, w in enumerate(words)]
    if "…" in words:
        words = words[:words.index("…")]
    words = [w.rstrip("…") for w in words]
    out: list[list[str]] = [[]]
    for word in words:
        choices = word.split("|") if "|" in word and not word.startswith("|") else [word]
        out = [[*done, c] for done in out for c in choices]
    return out


def parse(args: list[str]) -> None:
    """Parse ``args`` as `strongroom` would, down to the command, running nothing."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("strongroom", list(args))
    while hasattr(command, "resolve_command"):  # a group: on to the command it names
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])),
                *ctx.args]
        if not rest:
            return
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)


FOUND = sorted(set(hints()))


def _who_runs() -> dict[str, set[str]]:
    """Commands that refuse to run without saying who and why (strongroom.cli.operators):
    `named` needs --operator and --reason; `named_or_signed_in` at least --reason."""
    needs: dict[str, set[str]] = {}
    for path in (SRC / "cli").glob("*.py"):
        text = path.read_text()
        for command in re.findall(r'\bnamed\(\w+, \w+, "([^"]+)"\)', text):
            needs[command] = {"--operator", "--reason"}
        for command in re.findall(r'\bnamed_or_signed_in\(\w+, \w+, \w+, "([^"]+)"\)', text):
            needs.setdefault(command, {"--reason"})
    return needs


WHO_RUNS = _who_runs()
# files another change owns at the time of writing, whose hints are theirs to fix: expected
# to fail, and the test fails once they run as printed, so the entry goes
ELSEWHERE: dict[str, str] = {}


def test_hints_are_found_and_a_wrong_form_fails() -> None:
    assert len(FOUND) > 40
    assert any("strongroom upgrade -d" in hint for _, hint in FOUND)
    assert {"upgrade", "store recover", "restore"} <= set(WHO_RUNS)
    for wrong in (["upgrade", "/srv/strongroom"], ["store", "recover", "/srv/strongroom"],
                  ["store", "check", "/srv/strongroom"]):  # the forms issue 53 found
        with pytest.raises(clicks.UsageError, match="unexpected extra argument"):
            parse(wrong)


def problem(hint: str, directory: str) -> str | None:
    """Why ``hint`` would not run as printed, or None."""
    for args in variants(hint, directory):
        named = " ".join(w for w in args if not w.startswith("-"))
        for command, options in WHO_RUNS.items():
            if (" " + named + " ").startswith(" " + command.split(" --")[0] + " ") and \
                    all(o in args for o in command.split()[1:] if o.startswith("-")):
                missing = options - set(args)
                if missing:
                    return f"refused without {', '.join(sorted(missing))}"
        try:
            parse(args)
        except (typer.Exit, getattr(clicks, "Exit", typer.Exit)) as done:  # --help
            if done.exit_code != 0:
                return f"exits {done.exit_code}"
        except getattr(clicks, "NoArgsIsHelpError", ()):  # a family's group: it exists
            pass
        except clicks.UsageError as exc:
            return str(exc.format_message())
    return None


@pytest.mark.parametrize(("where", "hint"), FOUND, ids=[f"{w} {h}" for w, h in FOUND])
def test_a_hint_runs_as_printed(where: str, hint: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    if hint.split()[1:2] == [FIELD]:
        pytest.skip("names a command given by the caller, not a hint")
    # a value the command asks for (a password) is what the person types when asked; a
    # researcher's server and token are in their environment, as the client's docs set them
    monkeypatch.setattr(typer.core.TyperOption, "prompt_for_value", lambda *_: "typed")
    monkeypatch.setenv("STRONGROOM_URL", "https://strongroom.example")
    monkeypatch.setenv("STRONGROOM_TOKEN", "srt_example")
    wrong = problem(hint, str(tmp_path))
    file = where.rsplit(":", 1)[0]
    if file in ELSEWHERE and "store recover" in hint:
        assert wrong is not None, f"{where}: `{hint}` runs now: remove {file} from ELSEWHERE"
        pytest.xfail(f"{ELSEWHERE[file]}: {wrong}")
    assert wrong is None, f"{where}: `{hint}` does not run as printed: {wrong}"
