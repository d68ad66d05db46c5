"""docs/how-to/run-the-tests.md walked as written (issue 55), without running the suite inside
itself: every command it gives names a Makefile target, a registered marker, a test file and a
test that exist; every file and setting it names is there and read. (Its commands themselves are
what CI runs: `make test` is the README's test command, `.ci/run` CI's own script.)"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
PAGE = ROOT / "docs" / "how-to" / "run-the-tests.md"
TEXT = PAGE.read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _commands() -> list[list[str]]:
    """Each command of the page's shell blocks and inline code, as its words (comments off)."""
    lines = [line.split("  #")[0] for block in re.findall(r"```sh\n(.*?)```", TEXT, re.S)
             for line in block.splitlines()]
    lines += re.findall(r"`((?:make|bash|\.venv/bin/pytest) [^`]+)`", TEXT)
    return [shlex.split(line) for line in lines if line.strip()]


def _markers() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {m.split(":")[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]}


def _problems(command: list[str]) -> list[str]:
    found: list[str] = []
    match command:
        case ["make", target, *settings]:
            if not re.search(rf"^{re.escape(target)}:", MAKEFILE, re.M):
                found.append(f"no Makefile target {target!r}")
            for setting in settings:
                name = setting.split("=")[0]
                if not re.search(rf"\b{name}\b", MAKEFILE):
                    found.append(f"the Makefile reads no {name}")
        case ["bash", script]:
            if not (ROOT / script).is_file():
                found.append(f"no script {script}")
        case [".venv/bin/pytest", *options]:
            words = iter(options)
            paths: list[Path] = []
            for word in words:
                if word == "-m":
                    used = set(re.findall(r"\w+", next(words))) - {"not", "and", "or"}
                    found += [f"no marker {m!r}" for m in sorted(used - _markers())]
                elif word == "-k":
                    wanted = next(words)
                    tests = " ".join(p.read_text() for p in paths if p.is_file())
                    if not re.search(rf"def test_\w*{re.escape(wanted)}", tests):
                        found.append(f"no test matching -k {wanted!r} in {paths}")
                elif word == "-n":
                    next(words)
                elif not word.startswith("-"):
                    paths.append(ROOT / word)
                    if not paths[-1].exists():
                        found.append(f"no {word}")
        case _:
            found.append("a command this walk does not know: teach it")
    return found


def test_every_command_names_what_exists() -> None:
    commands = _commands()
    assert len(commands) >= 6, commands
    problems = {" ".join(c): p for c in commands if (p := _problems(c))}
    assert not problems, f"{PAGE.name} gives commands that cannot run as written: {problems}"


def test_every_file_and_setting_it_names_is_there_and_read() -> None:
    for path in re.findall(r"`((?:tests|benchmarks|src|docs)/[\w/.-]+\.(?:py|md))`", TEXT):
        assert (ROOT / path).is_file(), f"{PAGE.name} names {path}, which is not there"
    read = MAKEFILE + (ROOT / ".ci" / "run").read_text() + " ".join(
        p.read_text() for p in [*(ROOT / "tests").glob("*.py"), *(ROOT / "src").rglob("*.py")])
    for name in set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", TEXT)):
        assert name in read, f"{PAGE.name} names the setting {name}, which nothing reads"


def test_the_walk_finds_what_is_not_there() -> None:
    assert _problems(["make", "no-such-target"]) == ["no Makefile target 'no-such-target'"]
    assert _problems([".venv/bin/pytest", "-m", "not gpu", "tests/unit"]) == ["no marker 'gpu'"]
    assert _problems([".venv/bin/pytest", "tests/unit/test_output_check.py", "-k",
                      "no_such_rule"])[0].startswith("no test matching")
    assert _problems(["make", "test", "TEST_NOTHING=1"]) == ["the Makefile reads no TEST_NOTHING"]
