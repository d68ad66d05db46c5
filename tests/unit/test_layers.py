"""The layout's promises, read from the source: no domain package imports the packages that
compose them (cli/, server/, client/), nothing in the product imports the demo (demo/, which
composes the platform from above and is itself held to the first rule), and the entry points
that carry a protection are the ones the composing code calls (a route cannot forget a ration
it never sees)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import strongroom

ROOT = Path(strongroom.__file__).parent
COMPOSERS = ("cli", "server", "client")


@functools.cache  # every test reads the same source: parsed once (3 s a parse)
def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(ROOT.rglob("*.py"))]


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_domain_package_imports_the_code_that_composes_it() -> None:
    upward = []
    for path, tree in _modules():
        top = path.relative_to(ROOT).parts[0]
        if top in COMPOSERS or not (ROOT / top).is_dir():
            continue  # a composer, or a module at the top (platform.py); demo/ is held to it
        upward += [f"{path.relative_to(ROOT)} imports {name}" for name in _imports(tree)
                   if name.split(".")[:2] in (["strongroom", c] for c in COMPOSERS)]
    assert upward == []


def test_nothing_in_the_product_imports_the_demo() -> None:
    """The demo is a package of its own (demo/): only the CLI's `strongroom demo` calls it."""
    inward = []
    for path, tree in _modules():
        top = path.relative_to(ROOT).parts[0]
        if top == "demo" or path.relative_to(ROOT).as_posix() == "cli/demo.py":
            continue
        inward += [f"{path.relative_to(ROOT)} imports {name}" for name in _imports(tree)
                   if name == "strongroom.demo" or name.startswith("strongroom.demo.")]
    assert inward == []
    assert not list(ROOT.glob("demo_*.py")), "the demo's modules belong in demo/"


def test_definitions_are_made_through_the_output_service_that_rations_their_refusals() -> None:
    """enclave.service.define answers a refusal read from the data for free; everything that
    acts for a researcher defines through Outputs.define (outputs/service.py)."""
    direct = []
    for path, tree in _modules():
        where = path.relative_to(ROOT)
        if where.parts[0] in ("enclave", "outputs"):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "define" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("service", "enclave_service")):
                direct.append(f"{where}:{node.lineno}")
    allowed = {"attacks/runner.py"}  # its setup defines the attacker's base, unattacked
    assert {d.split(":")[0] for d in direct} <= allowed, direct
